"""Checks of what a store's files claim, before it is trusted (docs/store.md, "Stores from untrusted sources").

Checksums catch damage; these catch content that is well-formed bytes but
impossible data: a commit record with missing or ill-typed fields, scales
that no encoder writes, codes that decode to NaN or inf, ids that are not
valid UTF-8 or not unique. Each failure is a ``StoreCorruptedError`` naming
the store, the array and the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from minifloat_store.formats import Format, decode_table, get_format
from minifloat_store.store.errors import StoreCorruptedError

__all__ = ["check_codes", "check_id_blob", "check_record", "check_scales", "scale_bounds"]

#: Largest dim a record may claim (bounds a row's size before anything is read).
MAX_DIM = 1 << 20
_MAX_LENGTH = 1 << 62
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_int(v: object, lo: int = 0, hi: int = _MAX_LENGTH) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def check_record(record: object, where: str, arrays: Sequence[str]) -> dict[str, Any]:
    """The commit record's common fields, each present and of the right type and range.

    Raises
    ------
    StoreCorruptedError
        Naming the first bad field (never KeyError, TypeError or ZeroDivisionError).
    """

    def bad(what: str) -> StoreCorruptedError:
        return StoreCorruptedError(f"{where}: the commit record {what}")

    if not isinstance(record, dict):
        raise bad("is not a JSON object")
    for key in ("txn", "generation"):
        if not _is_int(record.get(key)):
            raise bad(f"field {key!r} is {record.get(key)!r}, not a non-negative integer")
    layout = record.get("layout")
    if not isinstance(layout, dict):
        raise bad("has no 'layout' object")
    try:
        fmt = get_format(layout.get("format"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise bad(f"names an unknown format {layout.get('format')!r}") from None
    dim, row_bytes, scale = layout.get("dim"), layout.get("row_bytes"), layout.get("scale")
    if not isinstance(dim, int) or not _is_int(dim, 1, MAX_DIM):
        raise bad(f"layout dim {dim!r} is not an integer in 1..{MAX_DIM}")
    if row_bytes != fmt.row_bytes(dim) or scale not in ("none", "vector") or (fmt.is_identity and scale != "none"):
        raise bad(f"layout {layout} is inconsistent (row_bytes must be {fmt.row_bytes(dim)})")
    lengths = record.get("lengths")
    if not isinstance(lengths, dict) or not all(_is_int(lengths.get(a)) for a in arrays):
        raise bad(f"lengths {lengths!r} are not a non-negative integer for each of {', '.join(arrays)}")
    if not lengths["codes"] == lengths["scales"] == lengths["id_ends"]:
        raise bad(f"array lengths disagree: {lengths}")
    if lengths["deleted"] > lengths["codes"]:
        raise bad(f"deletes more rows ({lengths['deleted']}) than it stores ({lengths['codes']})")
    if lengths["id_blob"] < lengths["id_ends"]:
        raise bad("claims fewer id bytes than ids (every id has at least one byte)")
    if not isinstance(record.get("metadata", {}), dict):
        raise bad("metadata is not a JSON object")
    return record


def scale_bounds(fmt: Format, scale: str) -> tuple[float, float]:
    """The closed range of scales ``encode`` can write for ``fmt`` and ``scale``.

    ``scale = max_value / max|x|`` with a finite float32 ``x`` lies between
    ``max_value / float32_max`` and float32_max (the kernel clamps there);
    with no scaling every scale is 1.
    """
    if scale == "none":
        return 1.0, 1.0
    lo = float(np.nextafter(np.float32(fmt.max_value / _FLOAT32_MAX), np.float32(0)))
    return lo, _FLOAT32_MAX


def check_scales(scales: np.ndarray, rows: np.ndarray, fmt: Format, scale: str, where: str) -> None:
    """Every scale in the range ``encode`` writes; else name the first bad row (``rows[i]`` of ``scales[i]``)."""
    lo, hi = scale_bounds(fmt, scale)
    bad = ~((scales >= lo) & (scales <= hi))  # False for NaN as well
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StoreCorruptedError(
            f"{where}: array 'scales' row {int(rows[i])} holds {float(scales[i])!r}, outside [{lo:.3g}, {hi:.3g}] "
            f"where every scale of a {fmt.name}/{scale} store lies ({int(bad.sum())} such rows in this read)"
        )


_BAD_CODES: dict[str, np.ndarray | None] = {}


def _bad_code_table(fmt: Format) -> np.ndarray | None:
    """bool per code: decodes to NaN or inf (None where no code does, or the format has no table)."""
    if fmt.name not in _BAD_CODES:
        table = None
        if fmt.bits in (8, 16):
            bad = ~np.isfinite(decode_table(fmt))
            table = bad if bad.any() else None
        _BAD_CODES[fmt.name] = table
    return _BAD_CODES[fmt.name]


@numba.njit(cache=True, nogil=True)
def _first_bad(codes: np.ndarray, bad: np.ndarray) -> int:
    for i in range(codes.shape[0]):
        for j in range(codes.shape[1]):
            if bad[codes[i, j]]:
                return i
    return -1


def check_codes(codes: np.ndarray, rows: np.ndarray, fmt: Format, where: str) -> None:
    """No stored code decodes to NaN or inf (e4m3's 0x7F, e5m2's 0x7C...); ``encode`` never writes one."""
    if fmt.bits == 32:
        vals = codes.view(np.float32) if codes.flags.c_contiguous else np.ascontiguousarray(codes).view(np.float32)
        ok = np.isfinite(vals).all(axis=1)
        first = -1 if ok.all() else int(np.flatnonzero(~ok)[0])
    else:
        table = _bad_code_table(fmt)
        if table is None or codes.size == 0:
            return
        view = codes if fmt.bits == 8 else np.ascontiguousarray(codes).view(np.uint16)
        first = _first_bad(view, table)
    if first >= 0:
        raise StoreCorruptedError(
            f"{where}: array 'codes' row {int(rows[first])} holds a code that decodes to NaN or inf in "
            f"{fmt.name}; no encoder writes one (the record's format or the row was changed)"
        )


def check_id_blob(blob: np.ndarray, ends: np.ndarray, where: str) -> None:
    """Id offsets increase inside the blob, and every id is valid UTF-8 on its own."""
    n = len(ends)
    if n == 0:
        if len(blob):
            raise StoreCorruptedError(f"{where}: array 'id_blob' holds {len(blob)} bytes but there are no ids")
        return
    steps = np.diff(ends, prepend=0)
    if np.any(steps < 1) or int(ends[-1]) != len(blob):
        row = int(np.flatnonzero(steps < 1)[0]) if np.any(steps < 1) else n - 1
        raise StoreCorruptedError(
            f"{where}: array 'id_ends' row {row}: id offsets must increase and end at the blob's "
            f"{len(blob)} bytes (ends[{row}] = {int(ends[row])})"
        )
    # An id may not start in the middle of a character: no continuation byte (10xxxxxx) at a start.
    starts = np.concatenate(([0], ends[:-1]))
    cont = (blob[starts] & 0xC0) == 0x80
    if cont.any():
        row = int(np.flatnonzero(cont)[0])
        raise StoreCorruptedError(f"{where}: array 'id_blob': the id of row {row} starts inside a UTF-8 character")
    try:
        blob.tobytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        row = int(np.searchsorted(ends, exc.start, side="right"))
        raise StoreCorruptedError(f"{where}: array 'id_blob': the id of row {row} is not valid UTF-8") from None
