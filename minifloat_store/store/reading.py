"""Reading a store's committed arrays from its backend, checked before the store trusts them.

Each function takes a reader (the open ``Backend``, or ``VerifiedReads``
around it, which checks every block against the record's digests) and
``where`` (``"store PATH"``, for messages). What was read is checked for the
damage a stranger's store can hold (offsets that disagree with the record,
ids that are not valid UTF-8, deleted rows out of range, scales no encoder
writes, codes that decode to NaN or inf; see ``integrity.py``) and refused
with ``StoreCorruptedError`` naming the array and row.

Rows are described by the record's :class:`~minifloat_store.store.record.StoreLayout`:
a row of ``codes`` holds the packed codes and (layout version 2) the block-scale
bytes; ``scales`` is read only where the layout has a scale column (else every
scale is 1). :func:`rows_batch` turns what was read into the ``Packed`` (a
study format) or ``Encoded`` (any other encoding) that decoding and scoring take.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from minifloat_store.codec import Packed
from minifloat_store.encoding import Encoded
from minifloat_store.store.backend import SCAN_ROWS
from minifloat_store.store.digests import raise_if_compacted_away
from minifloat_store.store.errors import StoreCorruptedError
from minifloat_store.store.integrity import check_codes, check_encoded_scales, check_id_blob
from minifloat_store.store.integrity import check_scales as check_scale_range
from minifloat_store.store.record import ARRAYS, StoreLayout


class Reader(Protocol):
    """What these functions need of a backend: ``Backend`` itself, or ``VerifiedReads`` around one."""

    def read(self, name: str, start: int, stop: int) -> np.ndarray: ...

    def read_block_rows(self) -> int: ...


__all__ = [
    "Reader",
    "check_rows",
    "read_all_rows",
    "read_every_chunk",
    "read_id_arrays",
    "read_rows",
    "read_scales",
    "rows_batch",
]


def read_scales(be: Reader, lo: int, hi: int, layout: StoreLayout) -> np.ndarray:
    """float32 (hi - lo,): the stored scales of rows ``[lo, hi)``, or ones where the layout has no scale column."""
    if layout.scale_column:
        return be.read("scales", lo, hi)
    return np.ones(hi - lo, dtype=np.float32)


def rows_batch(codes: np.ndarray, scales: np.ndarray, layout: StoreLayout) -> Packed | Encoded:
    """Rows as read (codes (n, row_bytes) uint8, scales (n,) float32) as a ``Packed`` or an ``Encoded``.

    A store of a study format (a minifloat, scale ``"none"``/``"vector"``, no
    transform) gives a ``Packed``, every other encoding an ``Encoded``.
    """
    fmt = layout.fmt
    if fmt is not None:
        return Packed(codes, scales, fmt, layout.dim, layout.scale)  # type: ignore[arg-type]
    enc, cb = layout.encoding, layout.code_bytes
    blocks = np.ascontiguousarray(codes[:, cb:]) if enc.block_size else None
    return Encoded(
        np.ascontiguousarray(codes[:, :cb]) if blocks is not None else codes,
        scales if enc.has_vector_scale else None,
        blocks,
        enc,
        layout.dim,
    )


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
    be: Reader, codes: np.ndarray, scales: np.ndarray, rows: np.ndarray, layout: StoreLayout, where: str
) -> None:
    """Refuse scales outside the range ``encode`` writes, block scales no encoder writes and codes that
    decode to NaN or inf (naming the row).

    NaN is also the fill value of a missing chunk: in a reader whose generation
    another process compacted away, that is a ``StoreChangedError`` (reopen).
    """
    enc, fmt = layout.encoding, layout.fmt
    try:
        if fmt is not None:
            check_scale_range(scales, rows, fmt, layout.scale, where)
        else:
            check_encoded_scales(scales, codes[:, layout.code_bytes :], rows, enc, where)
    except StoreCorruptedError:
        if np.isnan(scales).any():
            raise_if_compacted_away(getattr(be, "backend", be))
        raise
    if enc.codebook.fmt is not None:
        check_codes(codes[:, : layout.code_bytes] if enc.block_size else codes, rows, enc.codebook.fmt, where)


def read_rows(be: Reader, rows: np.ndarray, layout: StoreLayout, where: str) -> tuple[np.ndarray, np.ndarray]:
    """codes (n, row_bytes) uint8 and scales (n,) float32 of arbitrary rows, in the given order, checked."""
    n = len(rows)
    codes = np.empty((n, layout.row_bytes), dtype=np.uint8)
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
        s = read_scales(be, lo, hi, layout)
        codes[order[grp]] = c[srt[grp] - lo]
        scales[order[grp]] = s[srt[grp] - lo]
    check_rows(be, codes, scales, rows, layout, where)
    return codes, scales


def read_all_rows(be: Reader, live: np.ndarray, layout: StoreLayout, where: str) -> tuple[np.ndarray, np.ndarray]:
    """codes (rows, row_bytes) and scales (rows,) of every stored row, live and deleted, read-only.

    ``live`` is the bool mask of shape (rows,). The scales of live rows are
    checked; deleted rows get scale 1 (and block scales of code 0), so that
    ``Packed`` and ``Encoded`` accept them whatever they hold.
    """
    n = len(live)
    codes = np.empty((n, layout.row_bytes), dtype=np.uint8)
    scales = np.empty(n, dtype=np.float32)
    for lo in range(0, n, SCAN_ROWS):
        hi = min(lo + SCAN_ROWS, n)
        codes[lo:hi] = be.read("codes", lo, hi)
        scales[lo:hi] = read_scales(be, lo, hi, layout)
    rows = np.flatnonzero(live)
    check_rows(be, codes[rows] if len(rows) < n else codes, scales[rows], rows, layout, where)
    scales[~live] = 1.0
    if layout.encoding.block_size and len(rows) < n:
        codes[~live, layout.code_bytes :] = 0
    # The store shares these with every caller until its next change: read-only, so no caller alters another's view.
    codes.flags.writeable = False
    scales.flags.writeable = False
    return codes, scales


def read_every_chunk(be: Reader, lengths: Mapping[str, int], live: np.ndarray, layout: StoreLayout, where: str) -> int:
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
        check_rows(be, codes, read_scales(be, first, last, layout)[rows - first], rows, layout, where)
    return total
