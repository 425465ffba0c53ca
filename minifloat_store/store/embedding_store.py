"""``EmbeddingStore``: the store logic, written once above the backends.

Every change (add, delete, metadata) appends beyond the committed lengths of
the logical arrays (see ``record.py``), makes that durable, and then publishes
a new commit record naming the new lengths in one atomic step
(``Backend.commit``). Readers trust only what the record they loaded names, so
a writer killed at any moment leaves either the old or the new state.
``compact`` writes the live rows into a new generation and switches to it with
the same atomic step. The byte layout is in docs/store.md.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from minifloat_store import scoring
from minifloat_store.codec import Packed, check_scale_mode, decode, effective_scale, encode, storage_bytes
from minifloat_store.formats import Format, get_format

# The backend modules are imported so that they register themselves.
from minifloat_store.store import hdf5_backend, zarr_backend  # noqa: F401
from minifloat_store.store.backend import SCAN_ROWS, Backend, backend_class, detect_backend
from minifloat_store.store.digests import BlockDigests, VerifiedReads
from minifloat_store.store.errors import StoreChangedError, StoreCorruptedError
from minifloat_store.store.ids import MAX_ROWS, IdIndex, _Growable, encode_ids
from minifloat_store.store.info import StoreInfo
from minifloat_store.store.lock import WriterLock
from minifloat_store.store.reading import check_rows, read_all_rows, read_every_chunk, read_id_arrays, read_rows
from minifloat_store.store.record import ARRAYS, LAYOUT_VERSION, new_record, next_record, read_layout
from minifloat_store.store.remote import RemoteLock, is_url
from minifloat_store.store.snapshot import StoreSnapshot, to_dask
from minifloat_store.store.validation import check_ids, check_ids_any, check_json, check_packed, check_vectors

__all__ = ["EmbeddingStore"]


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


class EmbeddingStore:
    """Packed embeddings on disk, one per string id, crash-safe.

    Create with :meth:`create`, open with :meth:`open`; both return a context
    manager. A store opened with mode ``"a"`` holds the writer lock until
    :meth:`close`. Rows are numbered in insertion order; ``ids``,
    ``iter_batches`` and ``to_numpy`` list the live ones in that order.
    """

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

    # -- construction ------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        dim: int,
        fmt: str | Format = "e4m3",
        scale: str = "vector",
        backend: str = "zarr",
        metadata: Mapping[str, Any] | None = None,
        *,
        chunk_rows: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> EmbeddingStore:
        """Create an empty store and open it for appending (mode ``"a"``).

        Parameters
        ----------
        path : str or path-like
            A directory to create (zarr; an fsspec URL such as ``"memory://x"``
            works too) or an ``.h5`` file to create (hdf5). Must not exist.
        dim : int
            Values per vector.
        fmt : str or Format
            Storage format (``"e2m1"``, ``"e4m3"``, ``"fp32"``...).
        scale : {"vector", "none"}
            Per-vector scaling (equation 6 of the study) or none. fp32 stores
            no scales.
        backend : {"zarr", "hdf5"}
        metadata : mapping, optional
            JSON-serialisable store metadata, conventionally ``{"model": ...,
            "normalization": ..., "attributes": {...}}``.
        chunk_rows : int, optional
            Rows per chunk file (zarr shard, default 65,536) or per HDF5 chunk
            (default 512). For tests and tiny stores.
        storage_options : mapping, optional
            For an fsspec URL (``s3://bucket/x.zarr``...): the filesystem's
            options, e.g. ``{"endpoint_url": ..., "key": ..., "secret": ...}``
            for s3fs. Object storage has no ``flock``; docs/store.md says what
            replaces it.

        Raises
        ------
        FileExistsError
            If ``path`` exists.
        """
        path = os.fspath(path)
        f = get_format(fmt)
        mode = check_scale_mode(scale)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if chunk_rows is not None and (not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
            raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        meta = check_json(metadata)
        cls_ = _backend_for(path, backend, storage_options)
        record = new_record(f, int(dim), effective_scale(f, mode), meta)
        be = cls_.create(
            path, record, None if chunk_rows is None else int(chunk_rows), **_where_kwargs(cls_, storage_options)
        )
        try:
            lock = _writer_lock(cls_, path, storage_options)
        except BaseException:
            be.close()
            raise
        return cls(be, lock)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        mode: str = "r",
        backend: str | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
    ) -> EmbeddingStore:
        """Open a store: ``mode="r"`` read-only, ``"a"`` to append/delete/compact.

        ``backend`` is detected from ``path`` when omitted. Opening never
        unpickles anything. A second ``"a"`` opener gets ``StoreLockedError``.
        ``storage_options`` are the fsspec filesystem's options for a URL
        (see :meth:`create`).
        """
        path = os.fspath(path)
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' (read-only) or 'a' (append), got {mode!r}")
        cls_ = _backend_for(path, backend, storage_options)
        lock = None
        if mode == "a":
            lock_path = cls_.lock_path(path)
            if lock_path is not None:
                if not os.path.exists(path):
                    raise FileNotFoundError(f"no store at {path}")
                if not os.path.exists(lock_path):
                    # Nothing is created next to a path before it is known to be a store.
                    cls_.open(path, writable=False).close()
            lock = _writer_lock(cls_, path, storage_options)
        try:
            be = cls_.open(path, writable=(mode == "a"), **_where_kwargs(cls_, storage_options))
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(be, lock)

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
    def __enter__(self) -> EmbeddingStore:
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

    def _verify_lock(self) -> None:
        """Before a commit: the lock is still ours (a deleted lock file may have let a second writer in)."""
        if self._lock is not None:
            self._lock.verify()

    def _digests_for(self, writes: list[tuple[str, np.ndarray]], start: BlockDigests | None = None) -> BlockDigests:
        """The block digests after appending ``writes`` (first computed from the data for a store that has none).

        ``start``: digests that already cover rows written by other processes (``_commit_external_rows``).
        """
        d = self._digests if start is None else start
        if d is None:
            block = self._backend.read_block_rows()
            d = BlockDigests.empty(self._record, {a: block * (16 if a == "id_blob" else 1) for a in ARRAYS})
            for name in ARRAYS:
                n = int(self._record["lengths"][name])
                for lo in range(0, n, SCAN_ROWS * 16):
                    d = d.extended(name, lo, self._backend.read(name, lo, min(n, lo + SCAN_ROWS * 16)))
        for name, data in writes:
            d = d.extended(name, int(self._record["lengths"][name]), data)
        return d

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"store {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if not self.writable:
            raise PermissionError(f"store {self.path} is open read-only (mode 'r'); open it with mode='a' to change it")

    # -- writing -----------------------------------------------------------
    def _check_new_ids(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self._rows + len(ids) > MAX_ROWS:
            raise ValueError(f"store {self.path} would exceed {MAX_ROWS:,} rows; compact it or start another")
        blob, ends = encode_ids(ids)
        existing = self._ids.lookup_encoded(blob, ends)
        if np.any(existing >= 0):
            i = int(np.flatnonzero(existing >= 0)[0])
            raise ValueError(f"duplicate id {ids[i]!r}: already in store {self.path}; nothing was stored")
        return blob, ends

    def add(self, ids: Sequence[str], vectors: object) -> None:
        """Encode and store a batch of vectors, all or nothing.

        Parameters
        ----------
        ids : sequence of str, length n
            New, unique, non-empty ids.
        vectors : array_like of shape (n, dim), floating point
            Encoded in the store's format and scale mode.

        Raises
        ------
        TypeError
            Non-string ids or non-float vectors.
        ValueError
            Wrong dim, count mismatch, NaN/inf (naming the row and its id), an
            empty id, or an id repeated in the batch or already stored. Nothing
            of the batch is stored.
        """
        self._check_writable()
        id_list = check_ids(ids, "ids")
        if not id_list and np.asarray(vectors).size == 0:
            return  # an empty batch is a no-op, not an error
        x = check_vectors(vectors, id_list, self._dim, self.path)
        blob, ends = self._check_new_ids(id_list)
        packed = encode(x, self._fmt, self._scale)
        self._append(blob, ends, packed)

    def add_packed(self, ids: Sequence[str], packed: Packed) -> None:
        """Store vectors already encoded in this store's format (no re-encoding).

        ``packed.fmt``, ``packed.dim`` and ``packed.scale`` must match the store.
        """
        self._check_writable()
        check_packed(packed, self._fmt, self._dim, self._scale, self.path)
        id_list = check_ids(ids, "ids")
        if len(id_list) != packed.n:
            raise ValueError(f"{len(id_list)} ids but {packed.n} packed vectors; nothing was stored")
        blob, ends = self._check_new_ids(id_list)
        self._append(blob, ends, packed)

    def _transaction(
        self, writes: list[tuple[str, np.ndarray]], record: dict[str, Any], start: BlockDigests | None = None
    ) -> None:
        be = self._backend
        try:
            digests = self._digests_for(writes, start)
            record["digests"] = digests.to_record()
            for name, data in writes:
                be.append(name, data)
            self._verify_lock()
            be.commit(record)
        except BaseException:
            self._roll_back()
            raise
        self._digests = self._reads.digests = digests

    def _roll_back(self) -> None:
        """After a failed write: drop what was staged and re-read what is committed.

        Nothing staged is visible to readers; the re-read matters in case the
        failure came after the record was published. A failure here is
        swallowed so that the caller's original error is the one raised.
        """
        try:
            self._backend.abort()
            self._backend.refresh()
            self._load_once()
        except Exception:
            pass

    def _append(self, blob: np.ndarray, ends: np.ndarray, packed: Packed) -> None:
        n = packed.n
        base = self._ids.nbytes
        rec = next_record(
            self._record, codes=self._rows + n, scales=self._rows + n, id_ends=self._rows + n, id_blob=base + len(blob)
        )
        self._transaction(
            [("codes", packed.codes), ("scales", packed.scales), ("id_ends", ends + base), ("id_blob", blob)], rec
        )
        self._record = self._backend.record
        self._ids.append(blob, ends)
        self._live_buf.append(np.ones(n, dtype=bool))
        self._rows += n
        self._cache.clear()

    def _stage_external_rows(self, n: int) -> tuple[str, str]:
        """Grow ``codes`` and ``scales`` by ``n`` rows that other processes write; return where the two arrays are.

        For ``minifloat_store.dask.convert``: its tasks write whole shards there,
        then :meth:`_commit_external_rows` commits them with their ids.
        """
        self._check_writable()
        stage = getattr(self._backend, "stage_external", None)
        if stage is None:
            raise ValueError(f"store {self.path}: the {self.backend} backend cannot take rows written elsewhere")
        stage("codes", self._rows + n)
        stage("scales", self._rows + n)
        return self._backend.array_url("codes"), self._backend.array_url("scales")  # type: ignore[attr-defined]

    def _commit_external_rows(self, ids: Sequence[str]) -> None:
        """Commit ``len(ids)`` new rows whose codes and scales other processes wrote (``minifloat_store.dask``).

        The caller has grown ``codes`` and ``scales`` with ``Backend.stage_external``
        and every writer has finished; the ids are written here and everything
        is committed in one transaction, or nothing is.
        """
        self._check_writable()
        id_list = check_ids(ids, "ids")
        n = len(id_list)
        blob, ends = self._check_new_ids(id_list)
        base = self._ids.nbytes
        rec = next_record(
            self._record, codes=self._rows + n, scales=self._rows + n, id_ends=self._rows + n, id_blob=base + len(blob)
        )
        # The digests bind the rows the workers wrote, read back here block by block.
        digests = self._digests_for([])
        for name in ("codes", "scales"):
            for lo in range(self._rows, self._rows + n, SCAN_ROWS):
                hi = min(self._rows + n, lo + SCAN_ROWS)
                digests = digests.extended(name, lo, self._backend.read_staged(name, lo, hi))  # type: ignore[attr-defined]
        self._transaction([("id_ends", ends + base), ("id_blob", blob)], rec, start=digests)
        self._record = self._backend.record
        self._ids.append(blob, ends)
        self._live_buf.append(np.ones(n, dtype=bool))
        self._rows += n
        self._cache.clear()

    def delete(self, ids: Sequence[str]) -> None:
        """Delete live ids, all or nothing (``KeyError`` naming an unknown id).

        The rows stay on disk, masked, until :meth:`compact`.
        """
        self._check_writable()
        id_list = check_ids(ids, "ids")
        if not id_list:
            return
        rows = self._rows_of(id_list, "nothing was deleted")
        rec = next_record(self._record, deleted=self._n_deleted + len(rows))
        self._transaction([("deleted", rows)], rec)
        self._record = self._backend.record
        self._ids.remove(rows)
        self._live[rows] = False
        self._n_deleted += len(rows)
        self._cache.clear()

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Replace the store's metadata (JSON values), committed atomically."""
        self._check_writable()
        meta = check_json(metadata)
        rec = next_record(
            self._record,
        )
        rec["metadata"] = meta
        self._transaction([], rec)
        self._record = self._backend.record

    def compact(self) -> int:
        """Rewrite the live rows into a new generation and drop the deleted ones.

        Crash-safe: until the switch commits, the old generation is the store.
        Row numbers change; ids do not. Returns the number of rows reclaimed.
        """
        self._check_writable()
        if self._n_deleted == 0:
            return 0
        reclaimed = self._n_deleted
        be = self._backend
        live = np.flatnonzero(self._live)
        try:
            digests = BlockDigests.empty(self._record, self._digests_for([]).blocks)
            be.begin_rewrite()
            nbytes = 0
            for i in range(0, len(live), SCAN_ROWS):
                rows = live[i : i + SCAN_ROWS]
                codes, scales = read_rows(self._reads, rows, self._fmt, self._scale, self._row_bytes, self._where)
                blob, ends = encode_ids(self._ids.ids_of(rows))
                for name, data, start in (("codes", codes, i), ("scales", scales, i), ("id_ends", ends + nbytes, i)):
                    digests = digests.extended(name, start, data)
                    be.append(name, data)
                digests = digests.extended("id_blob", nbytes, blob)
                be.append("id_blob", blob)
                nbytes += len(blob)
            rec = next_record(
                self._record, codes=len(live), scales=len(live), id_ends=len(live), id_blob=nbytes, deleted=0
            )
            rec["generation"] = int(rec["generation"]) + 1
            rec["digests"] = digests.to_record()
            self._verify_lock()
            be.commit(rec)
        except BaseException:
            self._roll_back()
            raise
        self._load_once()
        return reclaimed

    # -- reading -----------------------------------------------------------
    def _rows_of(self, ids: list[str], consequence: str) -> np.ndarray:
        rows = self._ids.lookup(ids)
        if np.any(rows < 0):
            i = int(np.flatnonzero(rows < 0)[0])
            raise KeyError(f"unknown id {ids[i]!r} in store {self.path}; {consequence}")
        return rows

    def rows_of(self, ids: Sequence[str]) -> np.ndarray:
        """Row numbers of live ids: int64 of shape (len(ids),); ``KeyError`` naming an unknown id."""
        self._check_open()
        return self._rows_of(check_ids_any(ids, "ids"), "nothing was looked up").astype(np.int64)

    def ids_at(self, rows: np.ndarray) -> list[str]:
        """The ids of stored rows (int, in ``[0, rows)``; e.g. the rows a search of a snapshot returns)."""
        self._check_open()
        r = np.asarray(rows, dtype=np.int64)
        if r.size and (r.min() < 0 or r.max() >= self._rows):
            raise IndexError(f"row numbers must be in [0, {self._rows}) for store {self.path}")
        return self._ids.ids_of(r)

    def snapshot(self) -> StoreSnapshot:
        """What another process (a Dask worker) needs to read the committed rows this handle sees."""
        self._check_open()
        zarr_rows = self._record.get("backend", {}).get("zarr", {}).get("chunk_rows")
        return StoreSnapshot(
            path=self.path,
            backend=self.backend,
            storage_options=getattr(self._backend, "storage_options", None),
            generation=int(self._record["generation"]),
            fmt=self._fmt.name,
            dim=self._dim,
            scale=self._scale,
            row_bytes=self._row_bytes,
            rows=self._rows,
            partition_rows=int(zarr_rows) if zarr_rows else SCAN_ROWS,
            deleted=np.flatnonzero(~self._live).astype(np.int64),
        )

    def to_dask(self) -> Any:
        """Every live vector as a lazily decoded dask array: float32 (len(store), dim), one chunk per shard.

        Needs the ``scale`` extra (dask). Chunks are read when computed, in
        whatever process computes them; a store compacted meanwhile raises
        ``StoreChangedError`` there.
        """
        return to_dask(self.snapshot())

    def get_packed(self, ids: Sequence[str] | None) -> Packed:
        """Packed vectors of ``ids`` in the given order (``None``: every live row in row order)."""
        self._check_open()
        if ids is None:
            return self.get_packed_all()[0]
        rows = self._rows_of(check_ids(ids, "ids"), "nothing was read")
        codes, scales = read_rows(self._reads, rows, self._fmt, self._scale, self._row_bytes, self._where)
        return Packed(codes, scales, self._fmt, self._dim, self._scale)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Decoded vectors of ``ids``: float32 of shape (len(ids), dim), in the given order."""
        return decode(self.get_packed(ids))

    def _all_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """codes and scales of every stored row (live and deleted), cached until the next change."""
        hit = self._cache.get("all")
        if hit is None:
            hit = read_all_rows(self._reads, self._live, self._fmt, self._scale, self._row_bytes, self._where)
            self._cache["all"] = hit
        return hit

    def get_packed_all(self) -> tuple[Packed, list[str]]:
        """Every live vector, packed, in row order, and the id of each row.

        Returns
        -------
        packed : Packed
            ``n = len(store)`` rows.
        ids : list of str
            ``ids[i]`` is the id of ``packed`` row ``i``.
        """
        self._check_open()
        codes, scales = self._all_rows()
        live = np.flatnonzero(self._live)
        if len(live) == self._rows:
            packed = Packed(codes, scales, self._fmt, self._dim, self._scale)
        else:
            packed = Packed(codes[live], scales[live], self._fmt, self._dim, self._scale)
        return packed, self._ids.ids_of(live)

    def iter_batches(self, batch_size: int = 65536) -> Iterator[tuple[list[str], np.ndarray]]:
        """Yield ``(ids, vectors)`` for the live rows in row order.

        ``vectors`` is float32 of shape (<= batch_size, dim); memory stays
        bounded by the batch, whatever the size of the store.
        """
        self._check_open()
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        live = np.flatnonzero(self._live)
        for i in range(0, len(live), batch_size):
            rows = live[i : i + batch_size]
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            codes = self._reads.read("codes", lo, hi)[rows - lo]
            scales = self._reads.read("scales", lo, hi)[rows - lo]
            check_rows(self._reads, codes, scales, rows, self._fmt, self._scale, self._where)
            yield self._ids.ids_of(rows), decode(Packed(codes, scales, self._fmt, self._dim, self._scale))

    def to_numpy(self) -> np.ndarray:
        """Every live vector, decoded: float32 of shape (len(store), dim), in row order."""
        self._check_open()
        out = np.empty((len(self), self._dim), dtype=np.float32)
        i = 0
        for _, vec in self.iter_batches(SCAN_ROWS):
            out[i : i + len(vec)] = vec
            i += len(vec)
        return out

    # -- scoring (minifloat_store.scoring on the cached packed matrix) --------
    def _scoring_state(self) -> tuple[scoring.SearchIndex, np.ndarray]:
        """All stored rows as a search index (the payload, no per-row norms) and the deletion mask.

        Cached until the next change. Pair scoring and verify compute the
        norms of the rows they touch; search needs none.
        """
        hit = self._cache.get("scoring")
        if hit is None:
            codes, scales = self._all_rows()
            packed = Packed(codes, scales, self._fmt, self._dim, self._scale)
            hit = (scoring.search_index(packed), ~self._live)
            self._cache["scoring"] = hit
        return hit

    def score(self, ids_a: Sequence[str], ids_b: Sequence[str]) -> np.ndarray:
        """Cosine of stored pairs ``(ids_a[i], ids_b[i])``: float64 of shape (n,)."""
        self._check_open()
        a, b = check_ids_any(ids_a, "ids_a"), check_ids_any(ids_b, "ids_b")
        if len(a) != len(b):
            raise ValueError(f"ids_a has {len(a)} ids but ids_b has {len(b)}")
        index, _ = self._scoring_state()
        return scoring.cosine_index_pairs(
            index.packed, self._rows_of(a, "nothing was scored"), self._rows_of(b, "nothing was scored")
        )

    def search(self, queries: ArrayLike, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored vectors most cosine-similar to each query.

        Parameters
        ----------
        queries : array_like of shape (q, dim) or (dim,), floating point
        k : int

        Returns
        -------
        ids : ndarray of shape (q, k'), object (str)
            ``k' = min(k, len(store))``; best first, ties by row order.
        scores : ndarray of shape (q, k'), float64
        """
        self._check_open()
        index, deleted = self._scoring_state()
        rows, scores = scoring.search(index, queries, k=k, exclude=deleted)
        flat = rows.ravel()
        # An object array: a fixed-width str array would pad every id to the longest one.
        names = np.empty(len(flat), dtype=object)
        names[:] = self._ids.ids_of(flat)
        return names.reshape(rows.shape), scores

    def verify(self, query: ArrayLike, id_: str) -> float:
        """Cosine between a query vector (dim,) and the stored vector of ``id_``."""
        self._check_open()
        if not isinstance(id_, str):
            raise TypeError(f"id must be a str, got {type(id_).__name__}")
        index, _ = self._scoring_state()
        row = int(self._rows_of([id_], "nothing was scored")[0])
        return float(scoring.verify(index.packed, query, row))

    def check(self) -> int:
        """Read every committed chunk of every array, verifying its checksum and block digest, and every
        live row's scale and codes (docs/store.md, "Stores from untrusted sources").

        Returns the number of bytes verified; raises ``StoreCorruptedError``
        (naming the array and rows) at the first damaged chunk or row.
        """
        self._check_open()
        return read_every_chunk(self._reads, self._record["lengths"], self._live, self._fmt, self._scale, self._where)

    # -- info --------------------------------------------------------------
    def info(self) -> StoreInfo:
        """Sizes and settings of the store (see :class:`StoreInfo`)."""
        self._check_open()
        count = len(self)
        on_disk = self._backend.nbytes_on_disk()
        vec_disk = self._backend.array_nbytes("codes") + self._backend.array_nbytes("scales")
        stored_payload = storage_bytes(self._rows, self._dim, self._fmt, self._scale)
        return StoreInfo(
            path=self.path,
            backend=self.backend,
            format=self._fmt.name,
            scale=self._scale,
            dim=self._dim,
            count=count,
            deleted=self._n_deleted,
            bytes_on_disk=on_disk,
            vector_bytes_on_disk=vec_disk,
            payload_bytes=storage_bytes(count, self._dim, self._fmt, self._scale),
            bytes_per_vector=on_disk / count if count else math.nan,
            vector_overhead=vec_disk / stored_payload if stored_payload else math.nan,
            layout_version=LAYOUT_VERSION,
            metadata=self.metadata,
        )
