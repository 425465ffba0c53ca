"""``EmbeddingStore``: the store's public class, written once above the backends.

Creating and opening (backend chosen by name or sniffed from the path),
reading (ids, packed and decoded rows, batches, Dask), scoring and search on
the cached packed rows, the full check and ``info``. The state it holds is
``store_state.py``; how it changes (add, delete, compact: one atomic commit
each) is ``writing.py``. The byte layout is in docs/store.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from minifloat_store import scoring
from minifloat_store.codec import Packed, check_scale_mode, decode, storage_bytes
from minifloat_store.encoding import Encoded, Encoding
from minifloat_store.formats import Format, get_format

# The backend modules are imported so that they register themselves.
from minifloat_store.store import hdf5_backend, zarr_backend  # noqa: F401
from minifloat_store.store.backend import SCAN_ROWS
from minifloat_store.store.info import StoreInfo
from minifloat_store.store.reading import (
    check_rows,
    read_all_rows,
    read_every_chunk,
    read_rows,
    read_scales,
    rows_batch,
)
from minifloat_store.store.record import new_record
from minifloat_store.store.snapshot import StoreSnapshot, to_dask
from minifloat_store.store.store_state import _backend_for, _where_kwargs, _writer_lock
from minifloat_store.store.validation import check_encoding, check_ids, check_ids_any, check_json
from minifloat_store.store.writing import StoreWriting

__all__ = ["EmbeddingStore"]


class EmbeddingStore(StoreWriting):
    """Packed embeddings on disk, one per string id, crash-safe.

    Create with :meth:`create`, open with :meth:`open`; both return a context
    manager. A store opened with mode ``"a"`` holds the writer lock until
    :meth:`close`. Rows are numbered in insertion order; ``ids``,
    ``iter_batches`` and ``to_numpy`` list the live ones in that order.
    """

    # -- construction ------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        dim: int | None = None,
        fmt: str | Format | Encoding = "e4m3",
        scale: str | None = None,
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
        dim : int, optional
            Values per vector; may be omitted when ``fmt`` is an Encoding
            fitted with a mean (which fixes it).
        fmt : str, Format or Encoding
            Storage format (``"e2m1"``, ``"e4m3"``, ``"fp32"``...), or any
            :class:`~minifloat_store.Encoding` (element x scale x transform;
            fitted first if it centres). The store records it whole.
        scale : {"vector", "none"}, optional
            For a format: per-vector scaling (equation 6 of the study; the
            default) or none. fp32 stores no scales. An Encoding carries its
            own scale: omit this or give the same.
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
        ValueError
            For an unknown format or scale, a scale that contradicts the
            Encoding's, an Encoding that centres and is not fitted or was fitted
            on another dim, or no dim.
        """
        path = os.fspath(path)
        if isinstance(fmt, Encoding):
            enc = fmt
            if scale is not None and scale != enc.scale:
                raise ValueError(f"scale={scale!r} was given with an Encoding; its scale is part of it ({enc!r})")
        else:
            enc = Encoding(get_format(fmt), check_scale_mode("vector" if scale is None else scale))
        if dim is None:
            if enc.dim is None:
                raise ValueError("dim is required (only an Encoding fitted with a mean fixes it)")
            dim = enc.dim
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        check_encoding(enc, int(dim))
        if chunk_rows is not None and (not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1):
            raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        meta = check_json(metadata)
        cls_ = _backend_for(path, backend, storage_options)
        record = new_record(enc, int(dim), meta)
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
            encoding=self._layout.encoding,
            dim=self._dim,
            row_bytes=self._layout.row_bytes,
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

    def get_packed(self, ids: Sequence[str] | None) -> Packed | Encoded:
        """Encoded vectors of ``ids`` in the given order (``None``: every live row in row order).

        A ``Packed`` for a store of a study format, an ``Encoded`` otherwise.
        """
        self._check_open()
        if ids is None:
            return self.get_packed_all()[0]
        rows = self._rows_of(check_ids(ids, "ids"), "nothing was read")
        codes, scales = read_rows(self._reads, rows, self._layout, self._where)
        return rows_batch(codes, scales, self._layout)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Decoded vectors of ``ids``: float32 of shape (len(ids), dim), in the given order."""
        return decode(self.get_packed(ids))

    def _all_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """codes and scales of every stored row (live and deleted), cached until the next change."""
        hit = self._cache.get("all")
        if hit is None:
            hit = read_all_rows(self._reads, self._live, self._layout, self._where)
            self._cache["all"] = hit
        return hit

    def get_packed_all(self) -> tuple[Packed | Encoded, list[str]]:
        """Every live vector, encoded, in row order, and the id of each row.

        Returns
        -------
        packed : Packed or Encoded
            ``n = len(store)`` rows (a ``Packed`` for a study format).
        ids : list of str
            ``ids[i]`` is the id of ``packed`` row ``i``.
        """
        self._check_open()
        codes, scales = self._all_rows()
        live = np.flatnonzero(self._live)
        if len(live) == self._rows:
            packed = rows_batch(codes, scales, self._layout)
        else:
            packed = rows_batch(codes[live], scales[live], self._layout)
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
            scales = read_scales(self._reads, lo, hi, self._layout)[rows - lo]
            check_rows(self._reads, codes, scales, rows, self._layout, self._where)
            yield self._ids.ids_of(rows), decode(rows_batch(codes, scales, self._layout))

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
        """All stored rows as a search index (the payload, plus for an ``Encoding`` one float32 norm per
        row) and the deletion mask.

        Cached until the next change. Pair scoring and verify compute the
        float64 norms of the rows they touch; search rescores its candidates
        with float64 norms.
        """
        hit = self._cache.get("scoring")
        if hit is None:
            codes, scales = self._all_rows()
            hit = (scoring.search_index(rows_batch(codes, scales, self._layout)), ~self._live)
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

    def search(self, queries: ArrayLike, k: int = 10, *, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored vectors most cosine-similar to each query.

        Parameters
        ----------
        queries : array_like of shape (q, dim) or (dim,), floating point
        k : int
        threads : int, optional
            At most this many numba and BLAS threads (``minifloat_store.search``).

        Returns
        -------
        ids : ndarray of shape (q, k'), object (str)
            ``k' = min(k, len(store))``; best first, ties by row order.
        scores : ndarray of shape (q, k'), float64
        """
        self._check_open()
        index, deleted = self._scoring_state()
        rows, scores = scoring.search(index, queries, k=k, exclude=deleted, threads=threads)
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
        return read_every_chunk(self._reads, self._record["lengths"], self._live, self._layout, self._where)

    # -- info --------------------------------------------------------------
    def info(self) -> StoreInfo:
        """Sizes and settings of the store (see :class:`StoreInfo`)."""
        self._check_open()
        count = len(self)
        on_disk = self._backend.nbytes_on_disk()
        vec_disk = self._backend.array_nbytes("codes") + self._backend.array_nbytes("scales")
        enc = self.encoding
        stored_payload = storage_bytes(self._rows, self._dim, enc)
        return StoreInfo(
            path=self.path,
            backend=self.backend,
            format=enc.element,
            scale=enc.scale,
            dim=self._dim,
            count=count,
            deleted=self._n_deleted,
            bytes_on_disk=on_disk,
            vector_bytes_on_disk=vec_disk,
            payload_bytes=storage_bytes(count, self._dim, enc),
            bytes_per_vector=on_disk / count if count else math.nan,
            vector_overhead=vec_disk / stored_payload if stored_payload else math.nan,
            layout_version=self._layout.version,
            metadata=self.metadata,
            encoding=enc.get_config(),
            transform=enc.transform,
        )
