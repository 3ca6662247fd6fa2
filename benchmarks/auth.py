"""Authentication throughput: API-key checks per second (prefix lookup + keyed
hash + scope and permission check, with the in-process cache) and the time one
password verification takes with the default (tuned) Argon2id profile.

Generates its own data in a temporary SQLite database (or the database given).

    .venv/bin/python benchmarks/auth.py [KEYS] [CHECKS] [--db URL]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n_keys = int(args[0]) if args else 200
    checks = int(args[1]) if len(args) > 1 else 200_000
    url = sys.argv[sys.argv.index("--db") + 1] if "--db" in sys.argv else None
    tmp = tempfile.mkdtemp(prefix="cpaas-auth-")
    url = url or f"sqlite:///{Path(tmp) / 'auth.db'}"

    from cryptography.fernet import Fernet

    os.environ.setdefault("CPAAS_SECRET_KEY", Fernet.generate_key().decode())
    os.environ["CPAAS_PASSWORD_PROFILE"] = "fast"  # for building the users; the timing below uses the default

    from cpaas_cli.db import migrate
    from cpaas_cli.db.engine import get_engine, session_scope
    from cpaas_cli.identity import apikeys, keys, passwords, users
    from cpaas_cli.tenancy import service as tenancy

    migrate.upgrade(url)
    engine = get_engine(url)
    ident = keys.from_texts([os.environ["CPAAS_SECRET_KEY"].split(",")[0]])
    texts: list[tuple[str, int]] = []
    with session_scope(engine, actor="bench") as s:
        owner, _ = tenancy.ensure_owner(s)
        tenancy.add_legal_entity(
            s,
            company_ref=owner.id,
            data=tenancy.LegalEntityInput(
                name="Bench SL", legal_name="Bench S.L.", country="ES", legal_id="B1", is_default=True
            ),
        )
        clients = [tenancy.create_company(s, name=f"Bench client {i}", kind="client") for i in range(10)]
        for i in range(n_keys):
            comp = clients[i % len(clients)]
            u = users.create(
                s,
                company=comp.id,
                data=users.UserInput(login=f"bench{i}", first_name="B", last_name="U"),
                department_name="Admin",
                roles=["Admin"],
            )
            _row, text = apikeys.create(s, ident, user=u, name="bench", scopes=["campaign"])
            texts.append((text, comp.id))
        del owner
    auth = apikeys.Authenticator(engine, ident)
    rng = random.Random(1)
    sample = [texts[rng.randrange(len(texts))] for _ in range(checks)]
    for text, cid in texts:  # warm the cache (a server's steady state)
        auth.authenticate(text, "campaign.send", cid)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for text, cid in sample:
        auth.authenticate(text, "campaign.send", cid)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    auth.close()
    print(
        f"API-key checks: {checks} over {n_keys} keys in {wall:.2f} s: {checks / wall:,.0f} checks/s "
        f"({checks / cpu:,.0f} per CPU-second)"
    )

    os.environ["CPAAS_PASSWORD_PROFILE"] = "default"
    digest = passwords.hash_password("Bench-pass-123")
    times = []
    for _ in range(5):
        c0 = time.process_time()
        assert passwords.matches(digest, "Bench-pass-123")
        times.append(time.process_time() - c0)
    t, m, p = passwords.PROFILES["default"]
    print(
        f"password verify (Argon2id t={t}, m={m // 1024} MiB, p={p}): "
        f"median {sorted(times)[2] * 1000:.0f} ms CPU (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"
    )


if __name__ == "__main__":
    main()
