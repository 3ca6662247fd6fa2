"""Keys derived from the secret key (``cpaas_cli/secretbox.py``): one per purpose.

The secret key never enters the database; each purpose (API-key hashes,
session-token signatures, one-time codes) gets its own HMAC-derived key, so
one purpose's key says nothing about another's. The first configured key
makes new hashes and signatures; every configured key is accepted when
checking, so a key rotation does not lock anyone out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field

from cpaas_cli import secretbox
from cpaas_cli.errors import InvalidInput


@dataclass(frozen=True)
class IdentityKeys:
    raw: tuple[bytes, ...] = field(repr=False)
    where: str = ""

    def derive(self, purpose: str) -> tuple[bytes, ...]:
        return tuple(hmac.new(k, f"cpaas identity {purpose}".encode(), hashlib.sha256).digest() for k in self.raw)

    def __repr__(self) -> str:  # never the keys
        return f"<IdentityKeys from {self.where}: {len(self.raw)} key(s)>"


def from_texts(keys: list[str], where: str = "keys") -> IdentityKeys:
    return IdentityKeys(tuple(base64.urlsafe_b64decode(k.encode("ascii")) for k in keys), where)


def load(settings) -> IdentityKeys:
    """The configured secret keys; InvalidInput with the usual hint when none is configured."""
    source = secretbox.key_source(settings)
    if source is None:
        raise InvalidInput(f"identity needs the secret key (API keys, sessions, two-factor): {secretbox.HINT}")
    return from_texts(secretbox.read_keys(source), source.where)


def keyring(settings) -> secretbox.Keyring:
    ring = secretbox.load_keyring(settings)
    if ring is None:
        raise InvalidInput(f"identity needs the secret key: {secretbox.HINT}")
    return ring


def keyed_hash(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
