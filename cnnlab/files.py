"""Writing files so that a crash never leaves a broken one, and cleaning up after crashes."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from cnnlab.errors import CnnlabError

# atomic_write's temporaries: ".<target name>.<8 random characters of mkstemp>.tmp".
_TEMP_SUFFIX = ".tmp"
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def require_file(path: str | Path, what: str) -> Path:
    """``path`` if it is a file; else a one-line error that names what is missing and the
    folder it was looked for in (a relative path is read from the working directory).

    Args:
        path: the file the user named.
        what: what the file should be, e.g. "NLTK's brown.zip".

    Raises:
        CnnlabError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"{what} {path} not found (looked in {path.absolute().parent}): give the file's path")
    return path


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write, that replaces ``path`` only when the ``with`` block ends well.

    The bytes go to a temporary file ``.<name>.<random>.tmp`` in the same
    directory (see :data:`TEMP_NAME`), are fsynced, and the file is renamed into
    place with ``os.replace``, so ``path`` holds either its old or its new
    contents, never a mix. An exception leaves no temporary file behind, but a
    killed process does: :func:`remove_stale_temporaries` removes those.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    # The rename itself is durable only once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through :func:`atomic_open`."""
    with atomic_open(path) as out:
        out.write(data)


def atomic_write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """A CSV file of ``rows`` under a ``columns`` header, written atomically (a run's metrics.csv)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, text.getvalue().encode())


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """A run's ``metrics.csv`` (:func:`atomic_write_csv`'s form): one dict a row, the empty
    cells left out, every value a number."""
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def remove_stale_temporaries(folder: str | Path, *, min_age_s: float = 0.0) -> list[Path]:
    """Deletes the temporary files that killed :func:`atomic_write` calls left in ``folder``.

    Only cnnlab's own temporaries are touched: regular files (not links, not
    folders) directly in ``folder``, owned by the user, whose name matches
    :data:`TEMP_NAME` (``.<name>.<8 characters>.tmp``, e.g.
    ``.tensors-0123456789abcdef.safetensors.k3j_9x2a.tmp``). Nothing else is
    ever deleted. Call it where no other process can be writing into ``folder``
    (e.g. when a run starts or resumes), or give ``min_age_s`` so that a file
    another process is still writing is left alone.

    Args:
        folder: the folder to clean (a missing folder is fine: nothing to do).
        min_age_s: leave temporaries modified less than this many seconds ago.

    Returns:
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed, now, uid = [], time.time(), os.getuid()
    for entry in os.scandir(folder):
        if not TEMP_NAME.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_uid != uid or now - st.st_mtime < min_age_s:
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # another cleaner got there first
        removed.append(Path(entry.path))
    return removed
