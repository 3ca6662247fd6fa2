"""Readable reasons for a lost or failed SMPP link.

smpplib raises its own ``ConnectionError`` with no message both when the SMSC
closes the socket (``recv`` returns nothing) and when a socket call fails (the
``OSError`` is then only in the exception's context), so ``str(exc)`` is often
empty: :func:`why` looks at the exception and its cause or context and names
what happened. The library's class is passed in (``smpp.link_reason``): only
``smpp.py`` imports smpplib.
"""

from __future__ import annotations

import errno

_BY_ERRNO = {
    errno.ECONNRESET: "connection reset by the SMSC",
    errno.EPIPE: "connection closed by the SMSC (broken pipe)",
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNABORTED: "connection aborted",
    errno.ETIMEDOUT: "connection timed out",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ENOTCONN: "socket not connected",
}


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "read timed out"
    known = _BY_ERRNO.get(exc.errno or 0)
    if known:
        return known
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def why(exc: BaseException, library_error: type[BaseException]) -> str:
    """Why the link failed, in a few words (never empty). ``library_error`` is the
    SMPP library's own connection error (its message, often empty, says less
    than the socket error behind it)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError):  # TimeoutError, ConnectionResetError, …
            return _os_reason(cur)
        if not isinstance(cur, library_error) and str(cur):
            return str(cur)
        cur = cur.__cause__ or cur.__context__
    if isinstance(exc, library_error):
        return str(exc) or "connection closed by the SMSC"
    return str(exc) or type(exc).__name__
