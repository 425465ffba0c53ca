"""How an open store changes: append, delete, metadata and compaction, each one transaction.

Every change appends beyond the committed lengths of the logical arrays (see
``record.py``), makes that durable, and then publishes a new commit record
naming the new lengths and block digests in one atomic step
(``Backend.commit``). Readers trust only what the record they loaded names,
so a writer killed at any moment leaves either the old or the new state; a
failed change is rolled back to the committed one. ``compact`` writes the
live rows into a new generation and switches to it with the same atomic step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from minifloat_store.codec import Packed, encode
from minifloat_store.encoding import Encoded
from minifloat_store.store.backend import SCAN_ROWS
from minifloat_store.store.digests import BlockDigests
from minifloat_store.store.ids import MAX_ROWS, encode_ids
from minifloat_store.store.reading import read_rows
from minifloat_store.store.record import ARRAYS, next_record
from minifloat_store.store.store_state import StoreState
from minifloat_store.store.validation import check_ids, check_json, check_packed, check_vectors

__all__ = ["StoreWriting", "stored_rows"]


def stored_rows(packed: Packed | Encoded) -> tuple[np.ndarray, np.ndarray]:
    """What a store writes for these vectors: rows of ``codes`` and the per-vector scales.

    A row of ``codes`` is the element codes, then the block-scale bytes
    (docs/format.md). Scales are float32 of shape (n,), ones for an encoding
    without per-vector scales (written only where the layout has a scale column).
    """
    if isinstance(packed, Packed):
        return packed.codes, packed.scales
    codes = packed.codes if packed.block_scales is None else np.hstack((packed.codes, packed.block_scales))
    scales = packed.scales if packed.scales is not None else np.ones(packed.n, dtype=np.float32)
    return codes, scales


class StoreWriting(StoreState):
    """The changes of an open store (mode ``"a"``); see :class:`~minifloat_store.store.EmbeddingStore`."""

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
            Encoded with the store's encoding.

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
        self._append(blob, ends, encode(x, self.encoding))

    def add_packed(self, ids: Sequence[str], packed: Packed | Encoded) -> None:
        """Store vectors already encoded in this store's encoding (no re-encoding).

        ``packed`` is a ``Packed`` of the store's format, dim and scale mode
        (a study format), or an ``Encoded`` of exactly the store's encoding
        (config and fitted mean) and dim.
        """
        self._check_writable()
        check_packed(packed, self.encoding, self._dim, self.path)
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

    def _row_arrays(self, packed: Packed | Encoded) -> list[tuple[str, np.ndarray]]:
        """The ``codes`` rows and, where the layout has one, the scale column."""
        codes, scales = stored_rows(packed)
        return [("codes", codes), ("scales", scales)] if self._layout.scale_column else [("codes", codes)]

    def _scale_rows(self, rows: int) -> int:
        """The committed length of ``scales`` for ``rows`` rows (0 without a scale column)."""
        return rows if self._layout.scale_column else 0

    def _grown_record(self, n: int, id_bytes: int) -> dict[str, Any]:
        """The next commit record: ``n`` more rows and ``id_bytes`` more bytes of ids."""
        return next_record(
            self._record,
            codes=self._rows + n,
            scales=self._scale_rows(self._rows + n),
            id_ends=self._rows + n,
            id_blob=self._ids.nbytes + id_bytes,
        )

    def _took_rows(self, blob: np.ndarray, ends: np.ndarray) -> None:
        """After a commit of ``len(ends)`` new rows: the in-memory state follows it."""
        self._record = self._backend.record
        self._ids.append(blob, ends)
        self._live_buf.append(np.ones(len(ends), dtype=bool))
        self._rows += len(ends)
        self._cache.clear()

    def _append(self, blob: np.ndarray, ends: np.ndarray, packed: Packed | Encoded) -> None:
        base = self._ids.nbytes
        rec = self._grown_record(packed.n, len(blob))
        self._transaction([*self._row_arrays(packed), ("id_ends", ends + base), ("id_blob", blob)], rec)
        self._took_rows(blob, ends)

    def _stage_external_rows(self, n: int) -> tuple[str, str | None]:
        """Grow ``codes`` and ``scales`` by ``n`` rows that other processes write; return where the two arrays are
        (None for ``scales`` in a layout without a scale column).

        For ``minifloat_store.dask.convert``: its tasks write whole shards there,
        then :meth:`_commit_external_rows` commits them with their ids.
        """
        self._check_writable()
        stage = getattr(self._backend, "stage_external", None)
        if stage is None:
            raise ValueError(f"store {self.path}: the {self.backend} backend cannot take rows written elsewhere")
        stage("codes", self._rows + n)
        if not self._layout.scale_column:
            return self._backend.array_url("codes"), None  # type: ignore[attr-defined]
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
        rec = self._grown_record(n, len(blob))
        # The digests bind the rows the workers wrote, read back here block by block.
        digests = self._digests_for([])
        for name in ("codes", "scales") if self._layout.scale_column else ("codes",):
            for lo in range(self._rows, self._rows + n, SCAN_ROWS):
                hi = min(self._rows + n, lo + SCAN_ROWS)
                digests = digests.extended(name, lo, self._backend.read_staged(name, lo, hi))  # type: ignore[attr-defined]
        self._transaction([("id_ends", ends + base), ("id_blob", blob)], rec, start=digests)
        self._took_rows(blob, ends)

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
                codes, scales = read_rows(self._reads, rows, self._layout, self._where)
                blob, ends = encode_ids(self._ids.ids_of(rows))
                writes = [("codes", codes, i), ("id_ends", ends + nbytes, i)]
                if self._layout.scale_column:
                    writes.append(("scales", scales, i))
                for name, data, start in writes:
                    digests = digests.extended(name, start, data)
                    be.append(name, data)
                digests = digests.extended("id_blob", nbytes, blob)
                be.append("id_blob", blob)
                nbytes += len(blob)
            rec = next_record(
                self._record,
                codes=len(live),
                scales=self._scale_rows(len(live)),
                id_ends=len(live),
                id_blob=nbytes,
                deleted=0,
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
