"""Claim disk space before a write that must not fail halfway (HDF5 crashes on ENOSPC)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import resource
from typing import Any

import h5py

__all__ = ["reserve_space"]


def reserve_space(f: h5py.File, nbytes: int) -> None:
    """Make sure ``nbytes`` more can be written to ``f`` before HDF5 tries (a full disk is an error here).

    HDF5 crashes the process (a segfault inside its flush) when a write fails
    for lack of space, so the space is claimed first: ``fallocate`` with
    FALLOC_FL_KEEP_SIZE reserves blocks past the end of the file without
    changing its size; where that is not supported, free space is compared.
    """
    fd = f.id.get_vfd_handle()
    need = int(nbytes * 1.25) + (1 << 20)  # HDF5's own metadata, chunk index growth
    start = os.fstat(fd).st_size
    fsize = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if fsize != resource.RLIM_INFINITY and start + need > fsize:  # a write past it fails as a full disk would
        raise OSError(errno.EFBIG, f"{os.strerror(errno.EFBIG)}: the file size limit; the last commit is intact")
    err = _fallocate_keep_size(fd, start, need)
    if err == 0:
        return
    if err == errno.ENOSPC or err == errno.EDQUOT:
        raise OSError(err, f"{os.strerror(err)}: {need:,} bytes could not be reserved; the last commit is intact")
    vfs = os.fstatvfs(fd)
    if vfs.f_bavail * vfs.f_frsize < need:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {need:,} bytes needed; the last commit is intact")


_LIBC: Any = None


def _fallocate_keep_size(fd: int, offset: int, length: int) -> int:
    """``fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)``; returns 0 or the errno."""
    global _LIBC
    if _LIBC is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = lib.fallocate
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            fn.restype = ctypes.c_int
            _LIBC = fn
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC is False:
        return errno.EOPNOTSUPP
    if _LIBC(fd, 1, offset, length) == 0:  # 1 = FALLOC_FL_KEEP_SIZE
        return 0
    return ctypes.get_errno()
