"""A store's committed rows, read by other processes: the picklable handle Dask tasks carry.

``EmbeddingStore.snapshot()`` names what a reader in another process (a Dask
worker) needs to read rows of the store as the handle saw them: where it is,
its layout, its committed row count and generation, and the deleted rows.
Rows below the committed count never change within a generation, so a worker
that opens the store later (a writer may have appended since) reads exactly
the rows the snapshot names, and a compaction (a new generation) is refused
with ``StoreChangedError`` instead of read as other rows.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from minifloat_store.codec import Packed, decode
from minifloat_store.encoding import Encoded, Encoding
from minifloat_store.store.backend import Backend, backend_class
from minifloat_store.store.digests import BlockDigests, VerifiedReads
from minifloat_store.store.errors import StoreChangedError
from minifloat_store.store.reading import check_rows, read_rows, read_scales, rows_batch
from minifloat_store.store.record import ARRAYS, StoreLayout, read_layout

__all__ = ["StoreSnapshot", "read_live_decoded", "read_partition", "read_scattered", "to_dask"]


@dataclass(frozen=True)
class StoreSnapshot:
    """What a process needs to read a store's committed rows (picklable).

    Attributes
    ----------
    path, backend : str
        The store and its backend name.
    storage_options : dict or None
        fsspec options for a URL.
    generation : int
        The record's generation; a reader refuses a store compacted since.
    encoding : Encoding
        How the rows are encoded (with its fitted mean); a reader refuses a
        store whose record says otherwise.
    dim, row_bytes : int
    rows : int
        Committed rows (live and deleted), the rows a reader may read.
    partition_rows : int
        Rows per partition: a zarr store's shard, so a partition is one file.
    deleted : ndarray of shape (n_deleted,), int64, sorted
        Deleted rows.
    """

    path: str
    backend: str
    storage_options: dict[str, Any] | None
    generation: int
    encoding: Encoding
    dim: int
    row_bytes: int
    rows: int
    partition_rows: int
    deleted: np.ndarray

    def partitions(self) -> list[tuple[int, int]]:
        """``[lo, hi)`` row ranges, one per partition, covering every committed row."""
        p = self.partition_rows
        return [(lo, min(self.rows, lo + p)) for lo in range(0, self.rows, p)]

    def live_mask(self, lo: int, hi: int) -> np.ndarray:
        """bool (hi - lo,): which rows of ``[lo, hi)`` are live."""
        live = np.ones(hi - lo, dtype=bool)
        d = self.deleted[(self.deleted >= lo) & (self.deleted < hi)]
        live[d - lo] = False
        return live

    def without_deleted(self) -> StoreSnapshot:
        """The same snapshot without the deletion list (what a task needs that is told its own mask)."""
        return dataclasses.replace(self, deleted=np.empty(0, dtype=np.int64))


# A worker runs many tasks on one store: keep a few opened backends per process. Evicted or
# replaced ones are not closed (a thread may still be reading): they close when collected.
_OPEN: OrderedDict[tuple[Any, ...], VerifiedReads] = OrderedDict()
_OPEN_MAX = 4
_OPEN_LOCK = threading.Lock()


def _reads(snap: StoreSnapshot) -> VerifiedReads:
    """The store opened in this process, its reads checked against the block digests of the record it loaded.

    That record may be newer than the snapshot's (a writer appended since); within a generation it
    names the same bytes for every row the snapshot names, so its digests bind them as well.
    """
    key = (snap.path, snap.backend, snap.generation, json.dumps(snap.storage_options, sort_keys=True, default=str))
    with _OPEN_LOCK:
        hit = _OPEN.get(key)
        if hit is not None and int(hit.backend.record["lengths"]["codes"]) >= snap.rows:
            _OPEN.move_to_end(key)
            return hit
    cls_ = backend_class(snap.backend)
    kwargs = {"storage_options": snap.storage_options} if cls_.remote else {}
    be = cls_.open(snap.path, writable=False, **kwargs)
    if int(be.record["generation"]) != snap.generation or int(be.record["lengths"]["codes"]) < snap.rows:
        raise StoreChangedError(
            f"store {snap.path} was compacted since this snapshot (generation {snap.generation}); reopen the store"
        )
    reads = VerifiedReads(be, BlockDigests.from_record(be.record, ARRAYS, f"store {snap.path}"))
    with _OPEN_LOCK:
        _OPEN[key] = reads
        _OPEN.move_to_end(key)
        while len(_OPEN) > _OPEN_MAX:
            _OPEN.popitem(last=False)
    return reads


def _layout(be: Backend, snap: StoreSnapshot) -> StoreLayout:
    """The layout of the opened store, which must be the snapshot's (encoding, fitted mean and width)."""
    layout = read_layout(be.record, f"store {snap.path}")
    if layout.encoding != snap.encoding or layout.dim != snap.dim or layout.row_bytes != snap.row_bytes:
        raise StoreChangedError(f"store {snap.path} no longer has the snapshot's layout ({snap.encoding!r})")
    return layout


def read_partition(snap: StoreSnapshot, lo: int, hi: int) -> Packed | Encoded:
    """Rows ``[lo, hi)`` (live and deleted), encoded as stored (a ``Packed`` for a study format), checked."""
    if not 0 <= lo <= hi <= snap.rows:
        raise IndexError(f"rows {lo}..{hi} outside the snapshot's {snap.rows} rows")
    reads = _reads(snap)
    layout = _layout(reads.backend, snap)
    codes = reads.read("codes", lo, hi)
    scales = read_scales(reads, lo, hi, layout)
    check_rows(reads, codes, scales, np.arange(lo, hi), layout, f"store {snap.path}")
    return rows_batch(codes, scales, layout)


def read_scattered(snap: StoreSnapshot, rows: np.ndarray) -> Packed | Encoded:
    """The rows ``rows`` (int64, any order), encoded as stored, checked."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= snap.rows):
        raise IndexError(f"rows outside the snapshot's {snap.rows} rows")
    reads = _reads(snap)
    layout = _layout(reads.backend, snap)
    codes, scales = read_rows(reads, rows, layout, f"store {snap.path}")
    return rows_batch(codes, scales, layout)


def read_live_decoded(snap: StoreSnapshot, lo: int, hi: int, live: np.ndarray) -> np.ndarray:
    """The live rows of ``[lo, hi)``, decoded: float32 (live.sum(), dim)."""
    packed = read_partition(snap, lo, hi)
    return decode(packed if live.all() else packed[np.flatnonzero(live)])


def to_dask(snap: StoreSnapshot) -> Any:
    """The live rows as a lazily decoded dask array (n_live, dim) float32, one chunk per partition."""
    # dask is an optional dependency (the "scale" extra): imported only here.
    import dask
    import dask.array as da

    reader = snap.without_deleted()
    blocks = []
    for lo, hi in snap.partitions():
        live = snap.live_mask(lo, hi)
        n = int(live.sum())
        if n == 0:
            continue
        task = dask.delayed(read_live_decoded, pure=False)(reader, lo, hi, live)
        blocks.append(da.from_delayed(task, shape=(n, snap.dim), dtype=np.float32))
    if not blocks:
        return da.zeros((0, snap.dim), dtype=np.float32)
    return da.concatenate(blocks, axis=0)
