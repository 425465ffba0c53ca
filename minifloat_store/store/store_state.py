"""The in-memory state of an open store, read from its committed record.

Loading (the layout, the block digests, the id index and deletion mask,
under a seqlock against a concurrent writer), the writer lock, the
properties every store exposes, and closing. How changes are committed is
``writing.py``; the public class is ``embedding_store.EmbeddingStore``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from minifloat_store.formats import Format
from minifloat_store.store.backend import Backend, backend_class, detect_backend
from minifloat_store.store.digests import BlockDigests, VerifiedReads
from minifloat_store.store.errors import StoreChangedError, StoreCorruptedError
from minifloat_store.store.ids import IdIndex, _Growable
from minifloat_store.store.lock import WriterLock
from minifloat_store.store.reading import read_id_arrays
from minifloat_store.store.record import ARRAYS, read_layout
from minifloat_store.store.remote import RemoteLock, is_url

__all__ = ["StoreState"]


def _backend_for(path: str, backend: str | None, storage_options: Mapping[str, Any] | None) -> type[Backend]:
    """The backend class for ``path``, refusing a URL for a backend that only keeps local files."""
    if is_url(path) and backend is None and path.rstrip("/").endswith((".h5", ".hdf5")):
        backend = "hdf5"
    cls_ = backend_class(backend or detect_backend(path))
    if not cls_.remote and (is_url(path) or storage_options):
        raise ValueError(
            f"{path}: the {cls_.name} backend keeps a local file only (it needs fsync, rename and flock); "
            f"use backend='zarr' for object storage, or a local path"
        )
    return cls_


def _where_kwargs(cls_: type[Backend], storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"storage_options": dict(storage_options) if storage_options else None} if cls_.remote else {}


def _writer_lock(cls_: type[Backend], path: str, storage_options: Mapping[str, Any] | None) -> Any:
    """flock on a local lock file; a lock object created only if absent in object storage (remote.py)."""
    lock_path = cls_.lock_path(path)
    if lock_path is not None:
        return WriterLock(lock_path, path)
    if is_url(path):
        return RemoteLock(path, dict(storage_options) if storage_options else None)
    return None


class StoreState:
    """An open store's committed state; see :class:`~minifloat_store.store.EmbeddingStore`."""

    def __init__(self, backend: Backend, lock: WriterLock | RemoteLock | None) -> None:
        # Private: use create() / open().
        self._backend = backend
        self._lock = lock
        self._closed = False
        self._cache: dict[str, Any] = {}
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    # -- loading -----------------------------------------------------------
    def _load(self) -> None:
        """Build the in-memory state (id index, deletion mask) from the committed record."""
        for attempt in range(8):
            try:
                self._load_once()
            except (StoreChangedError, StoreCorruptedError) as exc:
                if self.writable or attempt == 7:
                    raise
                # A reader racing a writer can read a mix of two states; if the record did not move, it is damage.
                again, rec = self._backend.reload_record(), self._backend.record
                if again.get("txn") == rec["txn"] and again.get("generation") == rec["generation"]:
                    raise StoreCorruptedError(str(exc)) from None
                self._reopen_backend()
                continue
            if self.writable:
                return
            # A reader may race a writer: only trust what it loaded if the
            # record did not move while it was loading (a seqlock).
            again = self._backend.reload_record()
            if again.get("txn") == self._record["txn"] and again.get("generation") == self._record["generation"]:
                return
            self._reopen_backend()
        raise StoreChangedError(f"store {self.path} kept changing while being opened; try again")

    def _reopen_backend(self) -> None:
        cls_ = type(self._backend)
        path = self._backend.path
        self._backend.close()
        self._backend = cls_.open(
            path, writable=False, **_where_kwargs(cls_, getattr(self._backend, "storage_options", None))
        )

    def _load_once(self) -> None:
        be = self._backend
        rec = be.record
        where = f"store {be.path}"
        self._fmt, self._dim, self._scale, self._row_bytes, lengths = read_layout(rec, where)
        self._digests = BlockDigests.from_record(rec, ARRAYS, where)
        self._reads = VerifiedReads(be, self._digests)
        ends, blob, deleted, live = read_id_arrays(self._reads, lengths, where)
        self._record = rec
        self._rows = lengths["codes"]
        self._live_buf = _Growable(np.bool_, live)
        self._n_deleted = int(len(deleted))
        self._ids = IdIndex(blob, ends, live, where)
        self._cache.clear()

    @property
    def _live(self) -> np.ndarray:
        """bool (rows,): which stored rows are live."""
        return self._live_buf.view

    def _reserve(self, rows: int, id_bytes: int) -> None:
        """Pre-size the in-memory index for ``rows`` more ids (used by ``convert``)."""
        self._ids.reserve(rows, id_bytes)
        self._live_buf.reserve(self._rows + rows)

    # -- properties --------------------------------------------------------
    @property
    def path(self) -> str:
        return self._backend.path

    @property
    def _where(self) -> str:
        """How messages name this store."""
        return f"store {self.path}"

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def writable(self) -> bool:
        return self._backend.writable

    @property
    def fmt(self) -> Format:
        return self._fmt

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def scale(self) -> str:
        return self._scale

    @property
    def metadata(self) -> dict[str, Any]:
        """The store's metadata (a copy; change it with :meth:`set_metadata`)."""
        return copy.deepcopy(self._record.get("metadata", {}))

    @property
    def ids(self) -> list[str]:
        """Live ids in row order."""
        return self._ids.ids_of(np.flatnonzero(self._live))

    def __len__(self) -> int:
        return self._rows - self._n_deleted

    def __contains__(self, id_: object) -> bool:
        if not isinstance(id_, str) or not id_:
            return False
        return bool(self._ids.lookup([id_])[0] >= 0)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("a" if self.writable else "r")
        return (
            f"EmbeddingStore({self.path!r}, backend={self.backend!r}, fmt={self._fmt.name!r}, "
            f"scale={self._scale!r}, dim={self._dim}, count={len(self)}, mode={state!r})"
        )

    # -- context manager -----------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the files and release the writer lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._backend.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed store {self.path!r} (mode 'a' holds the writer lock)", ResourceWarning, 2)
            self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"store {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if not self.writable:
            raise PermissionError(f"store {self.path} is open read-only (mode 'r'); open it with mode='a' to change it")

    # -- reading -----------------------------------------------------------
    def _rows_of(self, ids: list[str], consequence: str) -> np.ndarray:
        rows = self._ids.lookup(ids)
        if np.any(rows < 0):
            i = int(np.flatnonzero(rows < 0)[0])
            raise KeyError(f"unknown id {ids[i]!r} in store {self.path}; {consequence}")
        return rows
