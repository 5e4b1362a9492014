"""Atomic writes and run-directory staging: nothing half-written is ever left at a final path."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hone.errors import UserError


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``final``, on failure remove it.

    Works for files and directories. An existing ``final`` is replaced only after success.
    """
    final = Path(final)
    # Parent folders made here are removed again on failure: a failed run leaves no empty runs/.
    made = [p for p in reversed(final.parent.absolute().parents) if not p.exists()]
    made += [final.parent.absolute()] if not final.parent.exists() else []
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    shutil.rmtree(tmp)  # callers create a file or a folder there themselves
    ok = False
    try:
        yield tmp
        if final.is_dir() and tmp.is_dir():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        ok = True
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if not ok:
            for p in reversed(made):
                with contextlib.suppress(OSError):
                    p.rmdir()  # only if still empty


def check_output(path: str | Path, *, folder: bool = False, inputs: tuple[Any, ...] = (), what: str = "--output",
                 suffix: str = "") -> Path:
    """Refuse, before any work is done, an output that cannot be written: a folder where a file is
    wanted (or the reverse), one of the command's own ``inputs`` (it would be overwritten), a path
    under a file, or a folder this process may not write to. Returns the path.

    ``suffix``: an example file name for the message about a folder given where a file is wanted.
    """
    p = Path(path).expanduser()
    shown = repr(str(path))
    if folder and p.exists() and not p.is_dir():
        raise UserError(f"{what} {shown} is a file; name a folder (new, or a hone folder to replace)")
    if not folder and p.is_dir():
        raise UserError(f"{what} {shown} is a folder; name a file in it, e.g. {str(p / ('out' + suffix))!r}")
    for src in inputs:
        if isinstance(src, (str, os.PathLike)) and not str(src).startswith("sql:"):
            s = Path(src).expanduser()
            if s.exists() and (
                p.exists() and os.path.samefile(s, p) or s.is_dir() and s.resolve() in p.resolve().parents
            ):
                raise UserError(f"{what} {shown} is the input {str(src)!r} (or inside it); writing there would "
                                "overwrite what is read: choose another output")
    here = p if folder and p.is_dir() else p.absolute().parent
    while not here.exists():
        here = here.parent
    if not here.is_dir():
        raise UserError(f"{what} {shown} cannot be made: {str(here)!r} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".hone-write-check-", dir=here)
    except OSError as err:
        raise UserError(f"{what} {shown} cannot be written: {str(here)!r} is not writable "
                        f"({err.strerror or err})") from err
    os.close(fd)
    os.unlink(probe)
    return p


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n", encoding="utf-8")


def write_text(path: Path, text: str) -> None:
    """Write text atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "isoformat"):  # dates, times, timestamps
        return obj.isoformat()
    if isinstance(obj, (bytes, bytearray)):
        return obj.hex()
    if type(obj).__name__ == "Decimal":
        return float(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
