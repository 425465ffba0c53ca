"""One writer at a time: an exclusive ``flock`` on a lock file.

``flock`` locks belong to an open file description and the kernel drops them
when the process dies, so a writer killed with SIGKILL never leaves a stale
lock behind. Readers never take the lock.
"""

from __future__ import annotations

import fcntl
import os

from minifloat_store.store.errors import StoreLockedError

__all__ = ["WriterLock"]


class WriterLock:
    """An exclusive, non-blocking lock held until :meth:`release` (or process exit).

    Parameters
    ----------
    lock_path : str
        The lock file; created if missing and never deleted (deleting it would
        let two writers lock two different files).
    store_path : str
        The store it guards, for the error message.
    """

    def __init__(self, lock_path: str, store_path: str) -> None:
        self.lock_path = lock_path
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"store {store_path} is already open for writing by another process or handle "
                f"(lock file {lock_path}); close that writer first, or open this one with mode='r'"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor releases the flock
