"""One writer at a time: an exclusive ``flock`` on the store directory or on a lock file.

``flock`` locks belong to an open file description and the kernel drops them
when the process dies, so a writer killed with SIGKILL never leaves a stale
lock behind. Readers never take the lock.

A zarr store locks its own directory: nothing is created, and no file can be
deleted to let a second writer in. An HDF5 store cannot lock its ``.h5``
(``compact`` replaces that file by a rename, and HDF5's own locking uses
``flock`` on it), so it locks ``STORE.h5.lock``, created only once the path
is known to be a store. Deleting or replacing that file would let a second
writer lock a new one, so :meth:`WriterLock.verify` (called before every
commit) checks that the path still names the locked inode.

A lock whose holder is garbage-collected without ``release`` is released then,
with a ``ResourceWarning``, as an unclosed file is.
"""

from __future__ import annotations

import fcntl
import os
import stat
import warnings

from minifloat_store.store.errors import StoreLockedError

__all__ = ["WriterLock"]


class WriterLock:
    """An exclusive, non-blocking lock held until :meth:`release` (or garbage collection, or process exit).

    Parameters
    ----------
    lock_path : str
        A directory (locked as it is) or a lock file (created if missing and
        never deleted: deleting it would let two writers lock two different files).
    store_path : str
        The store it guards, for the error message.
    """

    def __init__(self, lock_path: str, store_path: str) -> None:
        self.lock_path = lock_path
        self.store_path = store_path
        self._fd: int | None = None
        for _ in range(16):
            if os.path.isdir(lock_path):
                fd = os.open(lock_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                if not (stat.S_ISREG(os.fstat(fd).st_mode) or stat.S_ISDIR(os.fstat(fd).st_mode)):
                    raise StoreLockedError(f"lock {lock_path} of store {store_path} is not a regular file")
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StoreLockedError(
                    f"store {store_path} is already open for writing by another process or handle "
                    f"(lock {lock_path}); close that writer first, or open this one with mode='r'"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            if self._same_inode():
                return
            # The lock file was replaced between our open and our flock: lock the one the path names now.
            self._fd = None
            os.close(fd)
        raise StoreLockedError(f"lock {lock_path} of store {store_path} keeps being replaced; try again")

    def _same_inode(self) -> bool:
        if self._fd is None:
            return False
        try:
            now = os.stat(self.lock_path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        held = os.fstat(self._fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def verify(self) -> None:
        """Raise StoreLockedError unless the lock path still names the locked file or directory.

        Called before a commit: if the lock file was deleted or replaced, a
        second writer may hold the new one, and committing would lose its rows.
        """
        if not self._same_inode():
            raise StoreLockedError(
                f"the writer lock {self.lock_path} of store {self.store_path} was deleted or replaced while this "
                "writer held it; another writer may be changing the store, so nothing was committed. "
                "Close this handle and reopen the store."
            )

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor releases the flock

    def __del__(self) -> None:
        if self._fd is not None:
            warnings.warn(
                f"writer lock of store {self.store_path} released by garbage collection; close the store",
                ResourceWarning,
                stacklevel=2,
            )
            self.release()
