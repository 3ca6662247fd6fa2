"""Throughput of analyse + split on generated mixed messages.

    .venv/bin/python benchmarks/segments.py [COUNT]

Generates COUNT (default 100,000) texts with a fixed seed: plain GSM-7, GSM-7
with extension characters, Cyrillic (UCS-2) and emoji texts, 10 to 480
characters long, then times analyse alone, split alone and both.
"""

from __future__ import annotations

import random
import sys
import time

from cpaas_cli.messaging.segments import RefAllocator, analyse, split

GSM = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,!?-:;'\"@£$éèà\n"
EXT = "€[]{}|^~\\"
CYR = "абвгдежзийклмнопрстуфхцчшщыэюя "
EMOJI = ["😀", "👍", "🎉", "❤", "✅"]


def make(n: int, seed: int = 6) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rnd.random()
        length = rnd.choice([rnd.randint(10, 160), rnd.randint(10, 160), rnd.randint(161, 480)])
        if kind < 0.55:
            text = "".join(rnd.choices(GSM, k=length))
        elif kind < 0.75:
            text = "".join(rnd.choices(GSM + EXT, k=length))
        elif kind < 0.9:
            text = "".join(rnd.choices(CYR, k=length))
        else:
            text = "".join(rnd.choices(GSM + "".join(EMOJI), k=length))
        out.append(text)
    return out


def timed(label: str, fn, texts: list[str]) -> None:
    t0 = time.perf_counter()
    total = fn(texts)
    dt = time.perf_counter() - t0
    print(f"{label:<16} {len(texts) / dt:>12,.0f} msgs/s   ({dt:.2f} s, {total:,} segments)")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    texts = make(n)
    refs = RefAllocator(start=0)
    print(f"{n:,} messages, {sum(map(len, texts)):,} characters")
    timed("analyse", lambda ts: sum(analyse(t).segments for t in ts), texts)
    timed("split", lambda ts: sum(len(split(t, ref=refs)) for t in ts), texts)
    timed("split packed", lambda ts: sum(len(split(t, ref=refs, packed=True)) for t in ts), texts)
    timed("analyse+split", lambda ts: sum(analyse(t).segments + len(split(t, ref=refs)) for t in ts), texts)


if __name__ == "__main__":
    main()
