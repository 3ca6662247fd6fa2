"""Secrets at rest: the database keeps a password only as a Fernet token
(AES-128-CBC with an HMAC-SHA256, from the ``cryptography`` package), made
with a key that is never in the database.

Where the key comes from (the first one given wins, as for every setting):
``--secret-key-file PATH``, then ``CPAAS_SECRET_KEY`` (the key itself), then
``[secrets] key_file`` in the config file (a relative path is taken from the
config file's folder). A key file holds one key per line (blank lines and
``#`` comments are skipped) and must not be readable by other users;
``CPAAS_SECRET_KEY`` may hold several keys separated by commas. The first key
encrypts, every key decrypts (MultiFernet): that is how secrets move from one
key to the next (``cpaas secrets rotate``).

Neither a key nor a decrypted secret is ever written to the database, the
audit trail, logs or output: messages name where the key came from, never
its value. ``cryptography`` is imported only when a key is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cpaas_cli.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from cpaas_cli.config import Settings

ENV_KEY = "CPAAS_SECRET_KEY"
HINT = (
    f"set {ENV_KEY}, or name a key file in the config ([secrets] key_file) or with --secret-key-file; "
    "`cpaas secrets new-key --out FILE` makes one"
)


@dataclass(frozen=True)
class KeySource:
    """Where the keys are: a file, or the text of CPAAS_SECRET_KEY (never shown)."""

    where: str  # for messages: "CPAAS_SECRET_KEY", "--secret-key-file /etc/cpaas/key", ...
    path: Path | None = None
    text: str | None = field(default=None, repr=False)


def key_source(settings: Settings, environ: Mapping[str, str] | None = None) -> KeySource | None:
    """The configured source of the keys, or None when none is configured."""
    env = os.environ if environ is None else environ
    if settings.secret_key_file:
        path = Path(settings.secret_key_file).expanduser()
        return KeySource(f"--secret-key-file {path}", path=path)
    if env.get(ENV_KEY, "").strip():
        return KeySource(ENV_KEY, text=env[ENV_KEY])
    configured = settings.section("secrets").get("key_file")
    if configured is None:
        return None
    where = f"config file {settings.config_path}" if settings.config_path else "config"
    if not isinstance(configured, str) or not configured.strip():
        raise InvalidInput(f"{where}: [secrets] key_file must be the path of a key file")
    path = Path(configured).expanduser()
    if not path.is_absolute() and settings.config_path is not None:
        path = settings.config_path.parent / path
    return KeySource(f"[secrets] key_file {path}", path=path)


def _read_file(path: Path) -> list[str]:
    try:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & 0o027:
            raise InvalidInput(
                f"secret key file {path} can be read or changed by other users (mode {mode & 0o777:o}): chmod 600 it"
            )
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise InvalidInput(f"secret key file {path} does not exist") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"secret key file {path} is not a key file (one Fernet key per line)") from None
    except OSError as exc:
        raise InvalidInput(f"secret key file {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def read_keys(source: KeySource) -> list[str]:
    """The keys of a source, checked (InvalidInput naming the source, never the key)."""
    from cryptography.fernet import Fernet

    keys = _read_file(source.path) if source.path is not None else [k.strip() for k in (source.text or "").split(",")]
    keys = [k for k in keys if k]
    if not keys:
        raise InvalidInput(f"{source.where} holds no key; {HINT}")
    for n, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            which = f"key {n} of {source.where}" if len(keys) > 1 else f"the key in {source.where}"
            raise InvalidInput(
                f"{which} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "`cpaas secrets new-key --out FILE` makes one"
            ) from None
    return keys


class Keyring:
    """Fernet keys: the first encrypts, every one decrypts."""

    def __init__(self, keys: list[str], where: str):
        from cryptography.fernet import Fernet, MultiFernet

        if not keys:
            raise ValueError("a keyring needs at least one key")
        self.where = where
        self.count = len(keys)
        self._keys = list(keys)
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def __repr__(self) -> str:  # never the keys
        return f"<Keyring from {self.where}: {self.count} key(s)>"

    def then(self, older: Keyring | None) -> Keyring:
        """This keyring's keys, then ``older``'s: encrypts with this one's first key, opens what either opens."""
        if older is None:
            return self
        return Keyring(self._keys + older._keys, f"{self.where} or {older.where}")

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str, what: str) -> str:
        """The clear text of ``token``; InvalidInput naming ``what`` when no key opens it."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise InvalidInput(
                f"{what} does not decrypt with the secret key from {self.where} "
                "(stored with another key? after `cpaas secrets rotate`, name the new key)"
            ) from None

    def rotate(self, token: str, what: str) -> str:
        """``token`` encrypted again with the first key (any key may open it)."""
        return self.encrypt(self.decrypt(token, what))


def load_keyring(settings: Settings, environ: Mapping[str, str] | None = None) -> Keyring | None:
    """The configured keyring, or None when no key is configured."""
    source = key_source(settings, environ)
    if source is None:
        return None
    return Keyring(read_keys(source), source.where)


def keyring_from_file(path: str | Path) -> Keyring:
    source = KeySource(f"key file {Path(path)}", path=Path(path))
    return Keyring(read_keys(source), source.where)


def write_new_key(path: str | Path) -> Path:
    """Write a fresh key to a new file readable by its owner only; an existing file is never replaced."""
    from cryptography.fernet import Fernet

    target = Path(path)
    key = Fernet.generate_key().decode("ascii")
    text = (
        "# cpaas secret key (Fernet). Keep it out of the database and its backups: without it the\n"
        "# stored passwords cannot be read. Name it in [secrets] key_file or CPAAS_SECRET_KEY.\n"
        f"{key}\n"
    )
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{target} already exists; a key file is never replaced (choose another name)") from None
    except OSError as exc:
        raise InvalidInput(f"{target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise InvalidInput(f"{target}: {exc.strerror or exc}") from None
    return target
