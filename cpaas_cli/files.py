"""Every file the tool writes goes through here.

``safe_target`` decides whether a path may be written at all: never the
database file(s) (SQLite's file and its -wal/-shm/-journal), the config file
or the command's input file; an existing file only with ``force``; the parent
directory must exist. ``atomic_path`` / ``AtomicFile`` write to a temporary
file in the target's directory, fsync it and rename it over the target, so a
failed write (disk full, Ctrl-C, an error half-way) leaves the old file as it
was. A target that exists and is not a regular file (a terminal, a pipe,
/dev/null, /dev/full) is written directly: there is no old content to keep.

Spreadsheet formulas: ``guard_cell`` neutralises a text cell that a spreadsheet
would run as a formula (it starts with = + - @ TAB or CR, as OWASP's CSV
injection advice says) by putting a single quote in front. Values that are
plain numbers ("-0.01", "+34600123456", "1e3") are left alone, so money and
counts stay machine-readable. ``--raw-cells`` turns the guard off.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from cpaas_cli.errors import Conflict, CpaasError, InvalidInput

FORMULA_START = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Set once per invocation by the root command (``--raw-cells``); a plain
# module value, so threads (the background export worker) see it too.
_guard = {"on": True}


# ------------------------------------------------------------------ formulas


def set_formula_guard(on: bool) -> None:
    """Turn the spreadsheet-formula guard on (the default) or off (``--raw-cells``)."""
    _guard["on"] = bool(on)


def formula_guard() -> bool:
    return _guard["on"]


def guard_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    if type(value) is str and value and value[0] in FORMULA_START and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def formula_hint(delimiter: str) -> re.Pattern[str]:
    """A pattern that finds, in CSV/TSV text written with ``delimiter``, every
    place a cell may start with a formula character (false alarms allowed,
    misses not): a fast check of a whole chunk before ``guard_rows``."""
    bare = "=+\\-@\r" + ("\t" if delimiter != "\t" else "")  # csv leaves a CR unquoted
    return re.compile(f'(?:^|[{re.escape(delimiter)}\n])(?:"[=+\\-@\t\r]|[{bare}])')


_MARKS = tuple("\n" + c for c in FORMULA_START)


def guard_rows(rows: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    """``guard_cell`` over many rows. Column by column, a C-speed look (one join
    and a few substring searches) finds the columns that may need it, so a
    large export with no such cell costs little; only those are looked at cell by cell."""
    rows = rows if isinstance(rows, list) else list(rows)
    g = guard_cell
    if not rows or len(set(map(len, rows))) != 1:
        return [[g(v) for v in row] for row in rows]
    hot = []
    for i, col in enumerate(zip(*rows, strict=True)):
        text = "\n" + "\n".join(map(str, col))
        if any(m in text for m in _MARKS):
            hot.append(i)
    if not hot:
        return rows
    out: list[Sequence[Any]] = []
    for row in rows:
        cells = list(row)
        for i in hot:
            cells[i] = g(cells[i])
        out.append(cells)
    return out


# ------------------------------------------------------------------ targets


def database_files(url: str | None) -> list[Path]:
    """The files of a SQLite database URL (with its journal files); none for a server database."""
    if not url:
        return []
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception:  # noqa: BLE001 (a bad URL is reported where it is used)
        return []
    if not u.drivername.startswith("sqlite") or not u.database or u.database == ":memory:":
        return []
    db = Path(u.database.removeprefix("file:").split("?")[0])
    return [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal"))]


def _same(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def safe_target(
    path: str | Path,
    *,
    force: bool = False,
    protect: Iterable[tuple[str | Path, str]] = (),
    option: str = "--out",
) -> Path:
    """Check that ``path`` may be written; returns it as a Path.

    ``protect`` pairs a file that must never be written with what it is
    ("the database file", "the input file"). Refused: a protected file
    (exit 4, whatever ``force`` says), a directory or a missing parent
    directory (exit 4), an existing regular file without ``force`` (exit 5).
    """
    p = Path(path)
    for other, what in protect:
        if _same(p, Path(other)):
            raise InvalidInput(f"{option} {p}: that is {what}; choose another file (--force does not allow this)")
    if p.is_dir():
        raise InvalidInput(f"{option} {p}: is a directory; give a file name")
    parent = p.parent
    if not parent.is_dir():
        raise InvalidInput(f"{option} {p}: directory {parent} does not exist")
    if p.exists() and stat.S_ISREG(p.stat().st_mode) and not force:
        raise Conflict(f"{option} {p}: file exists; give --force to replace it")
    return p


# ------------------------------------------------------------------ writing


def write_error(path: Path, exc: OSError) -> CpaasError:
    """One line for an OS error writing ``path``: exit 4 for a bad place, 1 for the disk or device."""
    reason = exc.strerror or str(exc)
    kept = "; the old file is unchanged" if path.is_file() else ""
    bad_place = (errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EROFS)
    if exc.errno in bad_place:
        return InvalidInput(f"could not write {path}: {reason}{kept}")
    return CpaasError(f"could not write {path}: {reason}{kept}")


def _direct(path: Path) -> bool:
    """An existing target that is not a regular file (a device or a pipe) is written in place."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _begin(target: Path) -> Path | None:
    """A new temporary file next to ``target`` (None: write ``target`` in place)."""
    if _direct(target):
        return None
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:  # mode 0666 less the umask, as a plain new file gets
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise write_error(target, exc) from exc
        return tmp
    raise CpaasError(f"could not write {target}: no free temporary name in {target.parent}")


def _finish(target: Path, tmp: Path | None) -> None:
    """fsync the temporary file and rename it over ``target``."""
    if tmp is None:
        return
    try:
        with contextlib.suppress(FileNotFoundError):  # a replaced file keeps its permissions
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _drop(tmp)
        raise write_error(target, exc) from exc
    _sync_dir(target.parent)


def _drop(tmp: Path | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _sync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and
    renamed over ``path``, on any error it is removed and ``path`` is untouched.
    For writers that want a file name (zip files, images, PDFs)."""
    target = Path(path)
    tmp = _begin(target)
    try:
        yield tmp or target
    except OSError as exc:
        _drop(tmp)
        raise write_error(target, exc) from exc
    except BaseException:
        _drop(tmp)
        raise
    _finish(target, tmp)


class AtomicFile:
    """A binary file whose content replaces ``path`` only on ``commit``;
    ``abort`` (or an exception in a ``with`` block) removes it and leaves the
    old file as it was."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._tmp = _begin(self.path)
        try:
            self.fh: IO[bytes] = open(self._tmp or self.path, "wb")  # noqa: SIM115 (closed in commit/abort)
        except OSError as exc:
            _drop(self._tmp)
            raise write_error(self.path, exc) from exc

    def commit(self) -> None:
        try:
            self.fh.close()
        except OSError as exc:
            _drop(self._tmp)
            raise write_error(self.path, exc) from exc
        _finish(self.path, self._tmp)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        _drop(self._tmp)

    def __enter__(self) -> IO[bytes]:
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.commit()
            return
        self.abort()
        if isinstance(exc, OSError):
            raise write_error(self.path, exc) from exc


def atomic_write_text(path: str | Path, text: str) -> None:
    with AtomicFile(path) as fh:
        fh.write(text.encode("utf-8"))
