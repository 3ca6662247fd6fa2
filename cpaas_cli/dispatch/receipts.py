"""Delivery receipts, independent of any SMPP library: vendor message-id
normalisation, the de-facto receipt text (``id:… stat:… err:…``) and the status
map from a vendor's stat/err to our status.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cpaas_cli.errors import InvalidInput, Problem
from cpaas_cli.imports.textfile import load_yaml, read_utf8

# Our receipt statuses. The first five are final; "enroute" is an interim report.
DELIVERED, UNDELIVERED, EXPIRED, REJECTED, UNKNOWN, ENROUTE = (
    "delivered",
    "undelivered",
    "expired",
    "rejected",
    "unknown",
    "enroute",
)
FINAL_STATUSES = (DELIVERED, UNDELIVERED, EXPIRED, REJECTED, UNKNOWN)
STATUSES = (*FINAL_STATUSES, ENROUTE)

# SMPP 3.4 message_state TLV values, as the stat words of the receipt text.
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}

DEFAULT_STAT_MAP = {
    "DELIVRD": DELIVERED,
    "DELIVERED": DELIVERED,
    "UNDELIV": UNDELIVERED,
    "UNDELIVERABLE": UNDELIVERED,
    "DELETED": UNDELIVERED,
    "EXPIRED": EXPIRED,
    "REJECTD": REJECTED,
    "REJECTED": REJECTED,
    "UNKNOWN": UNKNOWN,
    "ENROUTE": ENROUTE,
    "ACCEPTD": ENROUTE,
    "BUFFRED": ENROUTE,
    "SCHEDULED": ENROUTE,
}

# ---------------------------------------------------------------- message ids

ID_FORMATS = ("auto", "text", "dec", "hex")
_HEX = re.compile(r"[0-9a-f]+")


def _id_text(value: str | bytes | None) -> str | None:
    """An id's text without NULs and surrounding space, lower-cased; None when empty."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    return value.replace("\x00", "").strip().lower() or None


def fold_message_id(value: str | bytes | None) -> str | None:
    """An id as the vendor wrote it, with case and leading zeros folded
    (``0000000A`` -> ``a``, ``00000010`` -> ``10``): never read in another base,
    so two distinct ids of one vendor never fold to one key."""
    text = _id_text(value)
    if text is None:
        return None
    return text.lstrip("0") or "0"


def normalise_message_id(value: str | bytes | None, fmt: str = "auto") -> str | None:
    """One canonical key for a vendor message id, so that the id in the
    submit_sm_resp and the id in the receipt compare equal.

    ``fmt`` says how the vendor writes the id, declared per connection: ``dec``
    or ``hex`` (numbers: the key is the decimal value, so case and leading
    zeros do not matter), ``text`` (opaque: trimmed and lower-cased), or
    ``auto`` (:func:`fold_message_id`: the id as written, case and leading
    zeros folded; whether a vendor's receipts write the id in another base is
    learned per connection, see ``receipt_match.IdRelation``). A vendor that writes
    hex in one place and decimal in the other is declared with
    ``SUBMIT:RECEIPT`` (see :func:`parse_id_formats`).
    """
    if fmt == "auto":
        return fold_message_id(value)
    text = _id_text(value)
    if text is None:
        return None
    if fmt == "text":
        return text
    if fmt == "dec":
        return str(int(text)) if text.isdigit() else text
    if fmt == "hex" and _HEX.fullmatch(text):
        return str(int(text, 16))
    return text


def parse_id_formats(spec: str | None) -> tuple[str, str]:
    """``auto`` | ``hex`` | ``dec`` | ``text``, or ``SUBMIT:RECEIPT`` (e.g. ``hex:dec``:
    hex in submit_sm_resp, decimal in receipts)."""
    text = (spec or "auto").strip().lower()
    submit, _, receipt = text.partition(":")
    receipt = receipt or submit
    for part in (submit, receipt):
        if part not in ID_FORMATS:
            raise InvalidInput(
                f"--message-id-format: {spec!r} is not one of {', '.join(ID_FORMATS)} or SUBMIT:RECEIPT",
                problems=[Problem("--message-id-format", f"unknown format {part!r}")],
            )
    return submit, receipt


# ---------------------------------------------------------------- receipt text

_FIELD = re.compile(
    r"(?P<key>id|sub|dlvrd|submit\s+date|done\s+date|stat|err|text)\s*:\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ReceiptText:
    message_id: str | None
    stat: str | None
    err: str | None
    submitted_at: datetime | None
    done_at: datetime | None
    sub: str | None = None
    dlvrd: str | None = None
    text: str | None = None


def _receipt_time(value: str | None) -> datetime | None:
    """YYMMDDhhmm or YYMMDDhhmmss, read as UTC (vendors rarely say otherwise)."""
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    n = [int(value[i : i + 2]) for i in range(0, len(value), 2)]
    try:
        return datetime(2000 + n[0], n[1], n[2], n[3], n[4], n[5] if len(n) > 5 else 0, tzinfo=UTC)
    except ValueError:
        return None


def parse_receipt_text(raw: str | bytes | None) -> ReceiptText | None:
    """Parse the de-facto receipt text; None when it has neither id nor stat."""
    if raw is None:
        return None
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("latin-1")
    found: dict[str, str] = {}
    matches = list(_FIELD.finditer(raw))
    for i, m in enumerate(matches):
        key = re.sub(r"\s+", " ", m.group("key").lower())
        if key in found:
            continue
        if key == "text":
            found[key] = raw[m.end() :]
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(raw)
        found[key] = raw[m.end() : end].strip()
    if "id" not in found and "stat" not in found:
        return None
    return ReceiptText(
        message_id=found.get("id") or None,
        stat=(found.get("stat") or "").upper() or None,
        err=found.get("err") or None,
        submitted_at=_receipt_time(found.get("submit date")),
        done_at=_receipt_time(found.get("done date")),
        sub=found.get("sub"),
        dlvrd=found.get("dlvrd"),
        text=found.get("text"),
    )


# ---------------------------------------------------------------- status map


def _err_key(err: str | int | None) -> str | None:
    if err is None:
        return None
    text = str(err).strip().lower()
    if not text:
        return None
    return str(int(text)) if text.isdigit() else text


@dataclass(frozen=True)
class StatusMap:
    """Vendor stat (and optionally err) -> our status.

    ``stat`` overrides or extends the default stat table; ``err`` maps an error
    code to a status and wins over the stat (``"stat/err"`` keys, e.g.
    ``"UNDELIV/034"``, win over both). Error codes compare as numbers when they
    are digits ("000" == "0").
    """

    stat: Mapping[str, str] = field(default_factory=dict)
    err: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, source: str = "status map") -> StatusMap:
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{source}: expected a mapping")
        problems: list[Problem] = []
        if "stat" in data or "err" in data:
            stat_in, err_in = data.get("stat") or {}, data.get("err") or {}
            extra = set(data) - {"stat", "err"}
            for key in sorted(extra):
                problems.append(Problem(source, f"unknown section {key!r} (use 'stat' and 'err')"))
        else:
            stat_in, err_in = data, {}
        stat: dict[str, str] = {}
        err: dict[str, str] = {}
        for section, src, dst in (("stat", stat_in, stat), ("err", err_in, err)):
            if not isinstance(src, Mapping):
                problems.append(Problem(f"{source}.{section}", "expected a mapping"))
                continue
            for key, value in src.items():
                status = str(value).strip().lower()
                if status not in STATUSES:
                    problems.append(
                        Problem(f"{source}.{section}.{key}", f"{value!r} is not one of {', '.join(STATUSES)}")
                    )
                    continue
                if section == "stat":
                    word, _, code = str(key).partition("/")
                    dst[word.strip().upper() + (f"/{_err_key(code)}" if code else "")] = status
                else:
                    dst[_err_key(key) or ""] = status
        if problems:
            raise InvalidInput.from_problems(problems, source)
        return cls(stat=stat, err=err)

    @classmethod
    def load(cls, path: str | Path) -> StatusMap:
        """Read a JSON or YAML file (YAML is a superset, so one parser does both)."""
        p = Path(path)
        try:
            data = load_yaml(read_utf8(p, "--status-map"), f"--status-map: {p.name}")
        except yaml.YAMLError as exc:
            raise InvalidInput(f"--status-map: {p} is neither JSON nor YAML: {exc}") from exc
        return cls.from_dict(data, source=str(p.name))

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {"stat": dict(self.stat), "err": dict(self.err)}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    def status(self, stat: str | None, err: str | int | None = None) -> str:
        word = (stat or "").strip().upper()
        code = _err_key(err)
        if code is not None and f"{word}/{code}" in self.stat:
            return self.stat[f"{word}/{code}"]
        if code is not None and code in self.err:
            return self.err[code]
        if word in self.stat:
            return self.stat[word]
        return DEFAULT_STAT_MAP.get(word, UNKNOWN)
