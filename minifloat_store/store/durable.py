"""Local files made durable: fsync a path, replace a file so that its bytes survive a power cut, fsync many.

A page cache survives SIGKILL but not a power cut; the commit protocols of
both backends (docs/store.md) need the data a record names on disk before
the record, and the directory entry of a rename synced. These are the steps
they share; ``tests/test_store_durability.py`` records their order.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["fsync_all", "fsync_path", "replace_durably"]


def fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it over ``path``, fsync the directory.

    zarr's own write-then-rename does not fsync the temporary file, so after a
    power cut the rename could survive and the bytes not (an empty
    ``zarr.json`` on file systems that do not order data before a rename).
    The ``.partial`` suffix is zarr's: a writer's next open removes a leftover.
    """
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    fsync_path(path.parent)


def fsync_all(paths: Iterable[str | Path]) -> None:
    """fsync files, then their directories (so renames into them are durable too).

    In parallel: fsync releases the GIL, and the file system can fold
    concurrent flushes into fewer journal commits (measured: about 2x faster
    for the twenty-odd files of one commit). A pool per call, not a global
    one, so a forked process never inherits dead worker threads.
    """
    files = [Path(p) for p in paths]
    files = [p for p in files if p.exists()]
    if not files:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(files))) as pool:
        list(pool.map(fsync_path, files))
        list(pool.map(fsync_path, {p.parent for p in files}))
