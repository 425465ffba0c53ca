"""Reading a store's committed arrays from its backend, checked before the store trusts them.

Each function takes a reader (the open ``Backend``, or ``VerifiedReads``
around it, which checks every block against the record's digests) and
``where`` (``"store PATH"``, for messages). What was read is checked for the
damage a stranger's store can hold (offsets that disagree with the record,
ids that are not valid UTF-8, deleted rows out of range, scales no encoder
writes, codes that decode to NaN or inf; see ``integrity.py``) and refused
with ``StoreCorruptedError`` naming the array and row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from minifloat_store.formats import Format
from minifloat_store.store.backend import SCAN_ROWS
from minifloat_store.store.digests import raise_if_compacted_away
from minifloat_store.store.errors import StoreCorruptedError
from minifloat_store.store.integrity import check_codes, check_id_blob
from minifloat_store.store.integrity import check_scales as check_scale_range
from minifloat_store.store.record import ARRAYS


class Reader(Protocol):
    """What these functions need of a backend: ``Backend`` itself, or ``VerifiedReads`` around one."""

    def read(self, name: str, start: int, stop: int) -> np.ndarray: ...

    def read_block_rows(self) -> int: ...


__all__ = ["Reader", "check_rows", "read_all_rows", "read_every_chunk", "read_id_arrays", "read_rows"]


def read_id_arrays(
    be: Reader, lengths: Mapping[str, int], where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The committed id offsets, id bytes and deletion list, checked, and the live mask they give.

    Returns
    -------
    ends : ndarray of shape (rows,), int64
    blob : ndarray of shape (id_bytes,), uint8
    deleted : ndarray of shape (n_deleted,), int64
    live : ndarray of shape (rows,), bool
    """
    rows = lengths["codes"]
    ends = be.read("id_ends", 0, rows)
    blob = be.read("id_blob", 0, lengths["id_blob"])
    deleted = be.read("deleted", 0, lengths["deleted"])
    check_id_blob(blob, ends, where)
    if len(deleted) and (deleted.min() < 0 or deleted.max() >= rows or len(np.unique(deleted)) != len(deleted)):
        bad = deleted[(deleted < 0) | (deleted >= rows)]
        what = f"row {int(bad[0])} out of range 0..{rows - 1}" if len(bad) else "a row listed twice"
        raise StoreCorruptedError(f"{where}: array 'deleted' holds {what}")
    live = np.ones(rows, dtype=bool)
    live[deleted] = False
    return ends, blob, deleted, live


def check_rows(
    be: Reader, codes: np.ndarray, scales: np.ndarray, rows: np.ndarray, fmt: Format, scale: str, where: str
) -> None:
    """Refuse scales outside the range ``encode`` writes and codes that decode to NaN or inf (naming the row).

    NaN is also the fill value of a missing chunk: in a reader whose generation
    another process compacted away, that is a ``StoreChangedError`` (reopen).
    """
    try:
        check_scale_range(scales, rows, fmt, scale, where)
    except StoreCorruptedError:
        if np.isnan(scales).any():
            raise_if_compacted_away(getattr(be, "backend", be))
        raise
    check_codes(codes, rows, fmt, where)


def read_rows(
    be: Reader, rows: np.ndarray, fmt: Format, scale: str, row_bytes: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """codes (n, row_bytes) uint8 and scales (n,) float32 of arbitrary rows, in the given order, checked."""
    n = len(rows)
    codes = np.empty((n, row_bytes), dtype=np.uint8)
    scales = np.empty(n, dtype=np.float32)
    if n == 0:
        return codes, scales
    order = np.argsort(rows, kind="stable")
    srt = rows[order]
    block = be.read_block_rows()
    # One read per run of rows that fall in the same chunk.
    cuts = np.flatnonzero(np.diff(srt // block)) + 1
    for grp in np.split(np.arange(n), cuts):
        lo, hi = int(srt[grp[0]]), int(srt[grp[-1]]) + 1
        c = be.read("codes", lo, hi)
        s = be.read("scales", lo, hi)
        codes[order[grp]] = c[srt[grp] - lo]
        scales[order[grp]] = s[srt[grp] - lo]
    check_rows(be, codes, scales, rows, fmt, scale, where)
    return codes, scales


def read_all_rows(
    be: Reader, live: np.ndarray, fmt: Format, scale: str, row_bytes: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """codes (rows, row_bytes) and scales (rows,) of every stored row, live and deleted, read-only.

    ``live`` is the bool mask of shape (rows,). The scales of live rows are
    checked; deleted rows get scale 1, so that ``Packed`` accepts them whatever they hold.
    """
    n = len(live)
    codes = np.empty((n, row_bytes), dtype=np.uint8)
    scales = np.empty(n, dtype=np.float32)
    for lo in range(0, n, SCAN_ROWS):
        hi = min(lo + SCAN_ROWS, n)
        codes[lo:hi] = be.read("codes", lo, hi)
        scales[lo:hi] = be.read("scales", lo, hi)
    rows = np.flatnonzero(live)
    check_rows(be, codes[rows] if len(rows) < n else codes, scales[rows], rows, fmt, scale, where)
    scales[~live] = 1.0
    # The store shares these with every caller until its next change: read-only, so no caller alters another's view.
    codes.flags.writeable = False
    scales.flags.writeable = False
    return codes, scales


def read_every_chunk(
    be: Reader, lengths: Mapping[str, int], live: np.ndarray, fmt: Format, scale: str, where: str
) -> int:
    """Read every committed chunk of every array (the backend verifies each checksum, ``be`` the digests) and
    check every live row's scale and codes; return the bytes read.

    Raises ``StoreCorruptedError`` (naming the array and rows) at the first
    damaged chunk or row, and ``StoreChangedError`` for a live row whose chunk
    another process's compaction removed.
    """
    total = 0
    block = be.read_block_rows()
    for name in ARRAYS:
        n = int(lengths[name])
        # One read per chunk, so that an error names the damaged chunk's elements.
        step = block * 16 if name == "id_blob" else block
        digest_block = getattr(be, "block", lambda _: None)(name)
        if digest_block:  # whole digest blocks, so each is verified once
            step = digest_block * max(1, step // digest_block)
        for lo in range(0, n, step):
            total += be.read(name, lo, min(n, lo + step)).nbytes
    rows_live = np.flatnonzero(live)
    for lo in range(0, len(rows_live), SCAN_ROWS):
        rows = rows_live[lo : lo + SCAN_ROWS]
        first, last = int(rows[0]), int(rows[-1]) + 1
        codes = be.read("codes", first, last)[rows - first]
        check_rows(be, codes, be.read("scales", first, last)[rows - first], rows, fmt, scale, where)
    return total
