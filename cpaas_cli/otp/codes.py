"""The pure rules of one-time codes and integration keys: no database, no I/O.

Codes come from ``secrets`` (a CSPRNG). A code is kept only as an
HMAC-SHA256 under a key derived from the secret key (``identity.keys``,
purpose ``otp-code``) over ``<request id>:<code>``, so the same code in two
requests hashes differently and a stolen table allows no offline check. A
check compares in constant time (``hmac.compare_digest``) against the hash
under each configured key (a key rotation does not void codes in flight).

An integration's API key is ``<key id>:<secret>``, two 32-character hex
strings (the seed's form): the key id finds the row, the secret is kept as
an HMAC under the ``otp-key`` purpose. HTTP Basic credentials split it at the
colon, so ``curl -u <API key>`` sends it as user and password.
"""

from __future__ import annotations

import hmac
import re
import secrets
import string

from cpaas_cli.identity.keys import IdentityKeys, keyed_hash

DIGITS = (4, 6, 8)
NUMERIC = string.digits
# upper-case letters and digits, without the look-alikes 0/O and 1/I
ALPHANUMERIC = "".join(c for c in string.ascii_uppercase + string.digits if c not in "0O1I")
PLACEHOLDER = "{{code}}"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_REQUEST_ID = string.ascii_letters + string.digits
REQUEST_ID_LEN = 32
CLIENT_CODE = re.compile(r"^[A-Za-z0-9]{4,10}$")


def alphabet(code_type: str) -> str:
    return NUMERIC if code_type == "numeric" else ALPHANUMERIC


def new_code(digits: int, code_type: str) -> str:
    chars = alphabet(code_type)
    return "".join(secrets.choice(chars) for _ in range(digits))


def shape_problem(code: str, digits: int, code_type: str) -> str | None:
    """Why ``code`` cannot be a code of this integration (length, characters), or None."""
    if len(code) != digits:
        return f"{digits} characters expected"
    if code_type == "numeric" and not code.isdigit():
        return "digits only"
    if code_type == "alphanumeric" and not all(c in ALPHANUMERIC for c in code.upper()):
        return "letters and digits only"
    return None


def normal(code: str, code_type: str) -> str:
    """The form a code is hashed in (alphanumeric codes are not case-sensitive)."""
    return code.upper() if code_type == "alphanumeric" else code


def new_request_id() -> str:
    return "".join(secrets.choice(_REQUEST_ID) for _ in range(REQUEST_ID_LEN))


def code_hash(keys: IdentityKeys, request_id: str, code: str) -> str:
    return keyed_hash(keys.derive("otp-code")[0], f"{request_id}:{code}")


def code_matches(keys: IdentityKeys, request_id: str, code: str, stored: str) -> bool:
    ok = False
    for key in keys.derive("otp-code"):
        ok |= hmac.compare_digest(keyed_hash(key, f"{request_id}:{code}"), stored)
    return ok


def render(template: str, code: str) -> str:
    return template.replace(PLACEHOLDER, code)


def masked(template: str, digits: int) -> str:
    """The text as kept once the code left: the code replaced by asterisks."""
    return template.replace(PLACEHOLDER, "*" * digits)


def new_key(keys: IdentityKeys) -> tuple[str, str, str]:
    """(key id, key text shown once, hash of the secret)."""
    key_id, secret = secrets.token_hex(16), secrets.token_hex(16)
    return key_id, f"{key_id}:{secret}", keyed_hash(keys.derive("otp-key")[0], secret)


def split_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key text, else None."""
    key_id, sep, secret = text.strip().partition(":")
    if not sep or not _HEX32.match(key_id) or not _HEX32.match(secret):
        return None
    return key_id, secret


def key_matches(keys: IdentityKeys, secret: str, stored: str) -> bool:
    ok = False
    for key in keys.derive("otp-key"):
        ok |= hmac.compare_digest(keyed_hash(key, secret), stored)
    return ok
