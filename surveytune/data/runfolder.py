"""Output folders of the commands: checked before any work, marked with their kind, locked.

The rule: every command that writes a run folder (``evaluate``, ``train``, ``reproduce``,
``data splits``/``holdout``) marks it with ``surveytune-run.json`` holding ``{"kind": ...}``.
A folder written before the marker existed is recognised by its main file: ``run.json`` is a
reproduce run, ``training.json`` or ``checkpoint/`` a train run, ``metrics.json`` an evaluate
run. A command refuses an ``--out`` that is a file, lies in a place it cannot write, or holds a
run of another kind; a missing or empty folder, or one without any of these files, is free.

:func:`claim` creates the folder, writes the marker and holds an exclusive ``fcntl.flock`` on
``.surveytune.lock`` inside it (POSIX), so a second process on the same folder is refused
instead of racing. If the command fails before writing anything else, the folder is left as
it was (a folder the claim created is removed).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from surveytune.data.items import DataError

MARKER = "surveytune-run.json"
LOCK = ".surveytune.lock"
KINDS = ("evaluate", "train", "reproduce", "splits")
_LEGACY = (("run.json", "reproduce"), ("training.json", "train"), ("checkpoint", "train"),
           ("metrics.json", "evaluate"))


def folder_kind(path: Path) -> str | None:
    """The kind of run a folder holds, or None (see the module docstring)."""
    marker = path / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError, AttributeError):
            raise DataError("unreadable run marker; use another --out", file=marker) from None
        return kind if isinstance(kind, str) else None
    for name, kind in _LEGACY:
        if (path / name).exists():
            return kind
    return None


def _lock_held(path: Path) -> bool:
    """Whether another process holds the folder's lock (probed read-only, writes nothing)."""
    try:
        fd = os.open(path / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def check(path: str | os.PathLike, kind: str, flag: str = "--out") -> Path:
    """Refuse ``path`` as the run folder of ``kind`` without writing anything (see above)."""
    path = Path(path)
    if kind not in KINDS:
        raise ValueError(f"unknown run folder kind {kind!r}")
    if path.exists() and not path.is_dir():
        raise DataError(f"{path} is a file, not a folder", file=flag)
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"{existing} is a file, so {path} cannot be a folder", file=flag)
    try:  # the only sure test of a writable place (os.access says yes to root everywhere)
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".surveytune-probe."))
    except OSError as exc:
        raise DataError(f"cannot write in {existing}: {exc.strerror or exc}", file=flag) from None
    if path.is_dir():
        found = folder_kind(path)
        if found is not None and found != kind:
            raise DataError(f"{path} holds a '{found}' run, not a '{kind}' run; use another "
                            "folder", file=flag)
        if _lock_held(path):
            raise DataError(f"{path} is in use by another surveytune process", file=flag)
    return path


@contextmanager
def claim(path: str | os.PathLike, kind: str, flag: str = "--out") -> Iterator[Path]:
    """Check, create, mark and lock ``path`` for the duration of the block."""
    path = check(path, kind, flag)
    top = path
    while not top.parent.exists():
        top = top.parent
    created = None if path.exists() else top
    path.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(path))
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataError(f"{path} is in use by another surveytune process",
                                file=flag) from None
            raise
        if not (path / MARKER).exists():
            (path / MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")
        try:
            yield path
        except BaseException:
            added = set(os.listdir(path)) - before - {LOCK, MARKER}
            if not added and set(os.listdir(path)) - {LOCK, MARKER} == before - {LOCK, MARKER}:
                for name in {LOCK, MARKER} - before:
                    (path / name).unlink(missing_ok=True)
                if created is not None:
                    shutil.rmtree(created, ignore_errors=True)
            raise
    finally:
        os.close(fd)
