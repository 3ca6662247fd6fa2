"""One exit-code enum and the exception family domain code raises.

Domain code raises a ``CpaasError`` subclass; the CLI layer prints its message
as one line on stderr and exits with its code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

ECHO_CHARS = 80  # characters of an input value an error message repeats
MAX_MESSAGE = 2000  # characters of a whole error message
_N = ECHO_CHARS + 1
_LONG_QUOTED = re.compile(rf"'(?:[^'\\\n]|\\.){{{_N},}}'|\"(?:[^\"\\\n]|\\.){{{_N},}}\"")


def bounded(message: str) -> str:
    """``message`` with every quoted value (a ``repr`` in it) cut to ``ECHO_CHARS``
    characters and "…", and the whole cut at ``MAX_MESSAGE``: a hostile or
    mistaken input (a 200 MB cell) is never echoed whole. The one place this is
    done: every CpaasError and Problem message passes here."""
    if len(message) <= ECHO_CHARS:
        return message
    cut = _LONG_QUOTED.sub(lambda m: m.group()[: ECHO_CHARS + 1] + "…" + m.group()[0], message[: 1 << 20])
    message = cut + ("…" if len(message) > 1 << 20 else "")
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    INVALID_INPUT = 4
    CONFLICT = 5
    UPSTREAM = 6
    INSUFFICIENT_CREDIT = 7
    DENIED = 8  # not authenticated, or not permitted (identity/access)
    INTERRUPTED = 130  # Ctrl-C (SIGINT) stopped a bulk run; the shell's code for it


@dataclass(frozen=True)
class Problem:
    """One bad value in an input: where it is and what is wrong."""

    field: str
    message: str
    row: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", bounded(self.message))

    def __str__(self) -> str:
        where = f"row {self.row}: " if self.row is not None else ""
        return f"{where}{self.field}: {self.message}"

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


class CpaasError(Exception):
    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, problems: list[Problem] | None = None):
        message = bounded(message)
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = list(problems or [])


class UsageError(CpaasError):
    """A required option is missing or options do not go together (exit 2)."""

    exit_code = ExitCode.USAGE


class NotFound(CpaasError):
    exit_code = ExitCode.NOT_FOUND


class InvalidInput(CpaasError):
    """Bad input; nothing was written."""

    exit_code = ExitCode.INVALID_INPUT

    @classmethod
    def from_problems(
        cls, problems: list[Problem], what: str = "input", *, outcome: str = "nothing was written"
    ) -> InvalidInput:
        """One message for the problems; ``outcome`` says what was (not) written
        (a chunked import names the chunks committed before the bad one)."""
        n = len(problems)
        first = str(problems[0]) if problems else ""
        msg = f"{n} invalid value{'s' if n != 1 else ''} in {what}; {outcome}"
        if n == 1:
            msg = f"{first}; {outcome}"
        return cls(msg, problems=problems)


class Conflict(CpaasError):
    exit_code = ExitCode.CONFLICT


class TooMany(Conflict):
    """A limit of attempts was reached (exit 5; HTTP 429): e.g. OTP sends to a number,
    checks of one code. ``retry_after``: seconds until another attempt may pass, if known."""

    def __init__(self, message: str, *, retry_after: int | None = None, problem_type: str | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        if problem_type:
            self.problem_type = problem_type
        self.problem_fields = {"retryAfter": retry_after} if retry_after is not None else {}


def refusal(cls: type[CpaasError], message: str, problem_type: str, **fields) -> CpaasError:
    """An error of ``cls`` whose HTTP answer names a narrower problem type (``problem_type``)
    and carries ``fields`` (the None ones left out) beside its detail."""
    exc = cls(message)
    exc.problem_type = problem_type  # type: ignore[attr-defined]
    exc.problem_fields = {k: v for k, v in fields.items() if v is not None}  # type: ignore[attr-defined]
    return exc


class Upstream(CpaasError):
    exit_code = ExitCode.UPSTREAM


class InsufficientCredit(CpaasError):
    exit_code = ExitCode.INSUFFICIENT_CREDIT


class Denied(CpaasError):
    """Not authenticated, or authenticated but not permitted (exit 8; HTTP 401/403)."""

    exit_code = ExitCode.DENIED


class Interrupted(CpaasError):
    """Ctrl-C stopped a bulk run; the message says what is stored (exit 130)."""

    exit_code = ExitCode.INTERRUPTED


def require(problems: list[Problem], what: str = "input") -> None:
    """Raise InvalidInput when any problem was collected."""
    if problems:
        raise InvalidInput.from_problems(problems, what)
