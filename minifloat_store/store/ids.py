"""The in-memory id index: id -> row in about 14 bytes per id plus its UTF-8 bytes.

Ids are kept as they are stored: one UTF-8 blob plus the int64 end offset of
each id. Lookups go through an open-addressing hash table (int32 row numbers,
linear probing) keyed by a 64-bit FNV-1a hash of the id's bytes, recomputed
from the blob when needed; a probe is confirmed byte for byte. A dict of a
million Python strings would cost ~100 bytes per id and seconds to build;
this costs a numba pass.

Only live rows are in the table; deleted rows keep their bytes in the blob
(row numbers are stable until ``compact``) but are removed from the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

__all__ = ["IdIndex", "encode_ids"]

_EMPTY = -1
_TOMBSTONE = -2
_MAX_LOAD = 0.7
#: Rows one store can hold (the hash table stores int32 row numbers).
MAX_ROWS = 2**31 - 1


@numba.njit(cache=True, nogil=True)
def _hash_bytes(blob: np.ndarray, start: int, end: int) -> np.uint64:
    h = np.uint64(0xCBF29CE484222325)
    prime = np.uint64(0x100000001B3)
    for i in range(start, end):
        h = (h ^ np.uint64(blob[i])) * prime
    # splitmix64 finaliser: FNV's low bits are weak for linear probing.
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@numba.njit(cache=True, nogil=True)
def _row_start(ends: np.ndarray, r: int) -> int:
    return ends[r - 1] if r > 0 else 0


@numba.njit(cache=True, nogil=True)
def _equal(blob: np.ndarray, a0: int, a1: int, qblob: np.ndarray, q0: int, q1: int) -> bool:
    if a1 - a0 != q1 - q0:
        return False
    for i in range(a1 - a0):
        if blob[a0 + i] != qblob[q0 + i]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _lookup(
    table: np.ndarray,
    blob: np.ndarray,
    ends: np.ndarray,
    qblob: np.ndarray,
    qends: np.ndarray,
    out: np.ndarray,
) -> None:
    mask = np.uint64(table.shape[0] - 1)
    q0 = 0
    for k in range(qends.shape[0]):
        q1 = qends[k]
        i = _hash_bytes(qblob, q0, q1) & mask
        found = -1
        while True:
            r = table[i]
            if r == _EMPTY:
                break
            # No stored hashes (8 bytes a row saved): compare bytes, length first.
            if r >= 0 and _equal(blob, _row_start(ends, r), ends[r], qblob, q0, q1):
                found = r
                break
            i = (i + np.uint64(1)) & mask
        out[k] = found
        q0 = q1


@numba.njit(cache=True, nogil=True)
def _insert(table: np.ndarray, blob: np.ndarray, ends: np.ndarray, rows: np.ndarray) -> int:
    """Insert rows (known absent); returns the number of tombstones reused."""
    mask = np.uint64(table.shape[0] - 1)
    reused = 0
    for k in range(rows.shape[0]):
        r = rows[k]
        i = _hash_bytes(blob, _row_start(ends, r), ends[r]) & mask
        while table[i] >= 0:
            i = (i + np.uint64(1)) & mask
        if table[i] == _TOMBSTONE:
            reused += 1
        table[i] = r
    return reused


@numba.njit(cache=True, nogil=True)
def _remove(table: np.ndarray, blob: np.ndarray, ends: np.ndarray, rows: np.ndarray) -> None:
    mask = np.uint64(table.shape[0] - 1)
    for k in range(rows.shape[0]):
        r = rows[k]
        i = _hash_bytes(blob, _row_start(ends, r), ends[r]) & mask
        while table[i] != r:
            i = (i + np.uint64(1)) & mask
        table[i] = _TOMBSTONE


def encode_ids(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 blob and int64 end offsets of a batch of ids.

    Returns
    -------
    blob : ndarray of shape (total_bytes,), uint8
    ends : ndarray of shape (n,), int64
        ``ends[i]`` is the exclusive end of id ``i`` in ``blob``.

    Raises
    ------
    ValueError
        Naming the first id that cannot be encoded (a lone surrogate).
    """
    try:
        raw = "".join(ids).encode("utf-8")
    except UnicodeEncodeError:
        for i, s in enumerate(ids):
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"id {s!r} (position {i}) cannot be encoded as UTF-8") from None
        raise
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    if len(raw) != int(lengths.sum()):
        # Not all ASCII: byte lengths differ from character counts.
        lengths = np.fromiter((len(s.encode("utf-8")) for s in ids), dtype=np.int64, count=len(ids))
    return np.frombuffer(raw, dtype=np.uint8), np.cumsum(lengths)


class _Growable:
    """A 1-D numpy buffer with amortised appends (growth factor 1.5)."""

    def __init__(self, dtype: type, data: np.ndarray | None = None) -> None:
        self.dtype = np.dtype(dtype)
        self.n = 0
        self.buf = np.empty(0, dtype=self.dtype)
        if data is not None:
            self.append(data)

    def reserve(self, capacity: int) -> None:
        if capacity > len(self.buf):
            new = np.empty(capacity, dtype=self.dtype)
            new[: self.n] = self.buf[: self.n]
            self.buf = new

    def append(self, data: np.ndarray) -> None:
        need = self.n + len(data)
        if need > len(self.buf):
            self.reserve(max(need, int(len(self.buf) * 1.5) + 16))
        self.buf[self.n : need] = data
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self.buf[: self.n]


class IdIndex:
    """Ids of every stored row (live or deleted) and a hash table over the live ones.

    Parameters
    ----------
    blob : ndarray of shape (nbytes,), uint8
        UTF-8 bytes of every row's id, concatenated in row order.
    ends : ndarray of shape (rows,), int64
        Exclusive end offset of each row's id in ``blob``.
    live : ndarray of shape (rows,), bool
        Which rows are live (not deleted).
    """

    def __init__(self, blob: np.ndarray, ends: np.ndarray, live: np.ndarray) -> None:
        self._blob = _Growable(np.uint8, blob)
        self._ends = _Growable(np.int64, ends)
        self._table = np.empty(0, dtype=np.int32)
        self._used = 0  # live entries + tombstones in the table
        self._rebuild(np.flatnonzero(live).astype(np.int64))

    # -- internals -------------------------------------------------------
    def _rebuild(self, live_rows: np.ndarray, room_for: int = 0) -> None:
        cap = 16
        while cap * _MAX_LOAD < max(len(live_rows) * 1.5, room_for, 1):
            cap *= 2
        # int32 rows: half the memory of int64; a store is capped at 2**31 - 1 rows.
        self._table = np.full(cap, _EMPTY, dtype=np.int32)
        _insert(self._table, self._blob.view, self._ends.view, live_rows)
        self._used = len(live_rows)

    def reserve(self, rows: int, nbytes: int) -> None:
        """Make room for ``rows`` more ids of ``nbytes`` more bytes without regrowing."""
        self._blob.reserve(self._blob.n + nbytes)
        self._ends.reserve(self._ends.n + rows)
        if (self._used + rows) > len(self._table) * _MAX_LOAD:
            self._rebuild(self._live_rows_in_table(), room_for=self._used + rows)

    # -- queries ---------------------------------------------------------
    @property
    def rows(self) -> int:
        """Number of stored rows (live and deleted)."""
        return self._ends.n

    @property
    def nbytes(self) -> int:
        """Bytes of the id blob."""
        return self._blob.n

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        """Row of each id, ``-1`` where it is not a live id. int64 of shape (len(ids),)."""
        qblob, qends = encode_ids(ids)
        return self.lookup_encoded(qblob, qends)

    def lookup_encoded(self, qblob: np.ndarray, qends: np.ndarray) -> np.ndarray:
        """Like :meth:`lookup` for ids already given as a UTF-8 blob and end offsets."""
        out = np.empty(len(qends), dtype=np.int64)
        _lookup(self._table, self._blob.view, self._ends.view, qblob, qends, out)
        return out

    def id_of(self, row: int) -> str:
        ends = self._ends.view
        start = int(ends[row - 1]) if row > 0 else 0
        return self._blob.view[start : int(ends[row])].tobytes().decode("utf-8")

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """Ids of the given rows, as Python strings, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return []
        ends = self._ends.view
        e = ends[rows]
        s = np.where(rows > 0, ends[np.maximum(rows - 1, 0)], 0)
        lo = int(s.min())
        # One bytes object for the span, sliced per id: no per-id numpy call.
        raw = self._blob.view[lo : int(e.max())].tobytes()
        return [raw[a:b].decode("utf-8") for a, b in zip((s - lo).tolist(), (e - lo).tolist(), strict=True)]

    # -- changes (the caller keeps them in step with what is committed) -----
    def append(self, blob: np.ndarray, ends_rel: np.ndarray) -> None:
        """Add rows whose ids are known to be absent. ``ends_rel`` are offsets within ``blob``."""
        first = self.rows
        if first + len(ends_rel) > MAX_ROWS:
            raise ValueError(f"a store holds at most {MAX_ROWS:,} rows (compact it, or split it)")
        base = self._blob.n
        self._blob.append(blob)
        self._ends.append(ends_rel + base)
        rows = np.arange(first, first + len(ends_rel), dtype=np.int64)
        if (self._used + len(rows)) > len(self._table) * _MAX_LOAD:
            live = np.concatenate((self._live_rows_in_table(), rows))
            self._rebuild(live)
        else:
            self._used += len(rows) - _insert(self._table, self._blob.view, self._ends.view, rows)

    def remove(self, rows: np.ndarray) -> None:
        """Take live rows out of the table (their bytes stay until compaction)."""
        _remove(self._table, self._blob.view, self._ends.view, np.asarray(rows, dtype=np.int64))

    def _live_rows_in_table(self) -> np.ndarray:
        t = self._table
        return np.sort(t[t >= 0])
