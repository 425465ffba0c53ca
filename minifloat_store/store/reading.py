"""Reading a store's committed arrays from its backend, checked before the store trusts them.

Each function takes the open ``Backend`` and ``where`` (``"store PATH"``,
for messages). What was read is checked for the damage a reader can meet
(a chunk removed by another process's ``compact``, offsets that disagree
with the record) and refused with ``StoreChangedError`` naming the row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from minifloat_store.store.backend import SCAN_ROWS, Backend
from minifloat_store.store.errors import StoreChangedError
from minifloat_store.store.record import ARRAYS

__all__ = ["check_scales", "read_all_rows", "read_every_chunk", "read_id_arrays", "read_rows"]


def read_id_arrays(
    be: Backend, lengths: Mapping[str, int], where: str
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
    if rows and (ends[0] < 1 or np.any(np.diff(ends) < 1) or ends[-1] != lengths["id_blob"]):
        raise StoreChangedError(f"{where}: id offsets are inconsistent (store changed or corrupted)")
    if len(deleted) and (deleted.min() < 0 or deleted.max() >= rows or len(np.unique(deleted)) != len(deleted)):
        raise StoreChangedError(f"{where}: deletion list is inconsistent (store changed or corrupted)")
    live = np.ones(rows, dtype=bool)
    live[deleted] = False
    return ends, blob, deleted, live


def check_scales(scales: np.ndarray, rows: np.ndarray, where: str) -> None:
    """Refuse scales that are not finite and positive: such a row's chunk is missing (fill value)."""
    bad = ~(np.isfinite(scales) & (scales > 0))
    if bad.any():
        row = int(rows[np.flatnonzero(bad)[0]])
        raise StoreChangedError(
            f"{where}: row {row} has no valid scale ({scales[np.flatnonzero(bad)[0]]!r}); its chunk "
            "is missing -- the store was compacted by another process since this reader opened it "
            "(reopen it) or a chunk file was deleted"
        )


def read_rows(be: Backend, rows: np.ndarray, row_bytes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """codes (n, row_bytes) uint8 and scales (n,) float32 of arbitrary rows, in the given order."""
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
    check_scales(scales, rows, where)
    return codes, scales


def read_all_rows(be: Backend, live: np.ndarray, row_bytes: int, where: str) -> tuple[np.ndarray, np.ndarray]:
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
    check_scales(scales[rows], rows, where)
    scales[~live] = 1.0
    # The store shares these with every caller until its next change: read-only, so no caller alters another's view.
    codes.flags.writeable = False
    scales.flags.writeable = False
    return codes, scales


def read_every_chunk(be: Backend, lengths: Mapping[str, int], live: np.ndarray, where: str) -> int:
    """Read every committed chunk of every array (the backend verifies each checksum); return the bytes read.

    Raises the backend's ``StoreCorruptedError`` (naming the array and rows)
    at the first damaged chunk, and ``StoreChangedError`` for a live row whose scale chunk is missing.
    """
    total = 0
    block = be.read_block_rows()
    for name in ARRAYS:
        n = int(lengths[name])
        # One read per chunk, so that an error names the damaged chunk's elements.
        step = block * 16 if name == "id_blob" else block
        for lo in range(0, n, step):
            total += be.read(name, lo, min(n, lo + step)).nbytes
    rows_live = np.flatnonzero(live)
    for lo in range(0, len(rows_live), SCAN_ROWS):
        rows = rows_live[lo : lo + SCAN_ROWS]
        check_scales(be.read("scales", int(rows[0]), int(rows[-1]) + 1)[rows - rows[0]], rows, where)
    return total
