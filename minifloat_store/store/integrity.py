"""Checks of what a store's files claim, before it is trusted (docs/store.md, "Stores from untrusted sources").

Checksums catch damage; these catch content that is well-formed bytes but
impossible data: a commit record with missing or ill-typed fields, scales
that no encoder writes, codes that decode to NaN or inf, ids that are not
valid UTF-8 or not unique. Each failure is a ``StoreCorruptedError`` naming
the store, the array and the rows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import numba
import numpy as np

from minifloat_store.encoding import CONFIG_ID, Encoding
from minifloat_store.formats import Format, decode_table, get_format
from minifloat_store.store.errors import StoreCorruptedError

__all__ = [
    "check_codes",
    "check_encoded_scales",
    "check_id_blob",
    "check_record",
    "check_scales",
    "record_encoding",
    "scale_bounds",
]

#: Largest dim a record may claim (bounds a row's size before anything is read).
MAX_DIM = 1 << 20
_MAX_LENGTH = 1 << 62
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_int(v: object, lo: int = 0, hi: int = _MAX_LENGTH) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def record_encoding(record: Mapping[str, Any], where: str) -> tuple[Encoding, int]:
    """The encoding and dim a record's layout names (version 1: a format and a scale mode).

    Every byte of the record is untrusted: the config must be exactly what
    ``Encoding.get_config`` writes, the fitted mean base64 of ``4 * dim``
    bytes (float32, little-endian) holding finite values, present exactly when
    the encoding centres. Checked before anything is decoded or allocated
    from it (the base64 text is no longer than ``dim`` allows).

    Raises
    ------
    StoreCorruptedError
        Naming the bad field.
    """

    def bad(what: str) -> StoreCorruptedError:
        return StoreCorruptedError(f"{where}: the commit record's encoding {what}")

    layout = record.get("layout")
    if not isinstance(layout, Mapping):
        raise StoreCorruptedError(f"{where}: the commit record has no 'layout' object")
    dim = layout.get("dim")
    if not _is_int(dim, 1, MAX_DIM):
        raise StoreCorruptedError(f"{where}: the commit record's layout dim {dim!r} is not an integer in 1..{MAX_DIM}")
    assert isinstance(dim, int)  # for the type checker: _is_int checked it
    if "encoding" not in layout:  # layout version 1
        fmt = get_format(layout.get("format"))  # type: ignore[arg-type]
        return Encoding(fmt, str(layout.get("scale"))), dim
    if set(layout) != {"dim", "row_bytes", "encoding", "fitted"}:
        raise bad(f"layout has keys {sorted(layout)}, not dim, row_bytes, encoding and fitted")
    config, fitted = layout["encoding"], layout["fitted"]
    if not isinstance(config, dict) or config.get("id") != CONFIG_ID:
        raise bad(f"config {config!r} is not an encoding config")
    if not isinstance(fitted, dict) or set(fitted) - {"mean"}:
        raise bad(f"fitted arrays {sorted(fitted) if isinstance(fitted, dict) else fitted!r} are not only 'mean'")
    arrays: dict[str, np.ndarray] = {}
    for name, text in fitted.items():
        # base64 of 4 * dim bytes: exactly this many characters, before anything is decoded.
        if not isinstance(text, str) or len(text) != 4 * -(-4 * dim // 3):
            raise bad(f"fitted array {name!r} is not base64 of {dim} float32 values")
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise bad(f"fitted array {name!r} is not valid base64") from None
        arrays[name] = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    try:
        enc = Encoding.from_config(config, arrays)
    except (TypeError, ValueError) as exc:
        raise bad(f"is not valid: {exc}") from None
    if enc.centres and enc.mean is None:
        raise bad(f"{enc!r} centres but the record holds no fitted mean")
    return enc, dim


def check_record(record: object, where: str, arrays: Sequence[str], version: int = 1) -> dict[str, Any]:
    """The commit record's common fields, each present and of the right type and range.

    ``version`` is the layout version of the wrapper the record came in; the
    record's layout must be of that version.

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
    if ("encoding" in layout) != (version >= 2):
        raise bad(f"layout does not match its layout version {version} (an encoding is recorded from version 2 on)")
    dim, row_bytes = layout.get("dim"), layout.get("row_bytes")
    if not isinstance(dim, int) or not _is_int(dim, 1, MAX_DIM):
        raise bad(f"layout dim {dim!r} is not an integer in 1..{MAX_DIM}")
    if version == 1:
        try:
            fmt = get_format(layout.get("format"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise bad(f"names an unknown format {layout.get('format')!r}") from None
        scale = layout.get("scale")
        if row_bytes != fmt.row_bytes(dim) or scale not in ("none", "vector") or (fmt.is_identity and scale != "none"):
            raise bad(f"layout {layout} is inconsistent (row_bytes must be {fmt.row_bytes(dim)})")
        scale_rows = True
    else:
        enc, _ = record_encoding(record, where)
        want = enc.code_bytes(dim) + enc.n_blocks(dim)
        if row_bytes != want:
            raise bad(f"layout row_bytes {row_bytes!r} is inconsistent ({enc!r} of dim {dim} needs {want})")
        scale_rows = enc.has_vector_scale
    lengths = record.get("lengths")
    if not isinstance(lengths, dict) or not all(_is_int(lengths.get(a)) for a in arrays):
        raise bad(f"lengths {lengths!r} are not a non-negative integer for each of {', '.join(arrays)}")
    if not lengths["codes"] == lengths["id_ends"] or lengths["scales"] != (lengths["codes"] if scale_rows else 0):
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


def check_encoded_scales(scales: np.ndarray, blocks: np.ndarray, rows: np.ndarray, enc: Encoding, where: str) -> None:
    """Per-vector and block scales of an encoding other than a study format, as ``Encoded`` accepts them.

    ``scales`` (n,) float32 (ones where the encoding has none); ``blocks``
    (n, n_blocks) uint8, the block-scale bytes of each row. A per-vector scale
    must be finite and > 0 (the study's divisor) or >= 0 (a multiplier); a
    block scale may not be a code no encoder writes (E8M0 0xFF; E4M3 0x7F and up).
    """
    if enc.has_vector_scale:
        bad = ~np.isfinite(scales) | ((scales <= 0) if enc.divides else (scales < 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = "> 0" if enc.divides else ">= 0"
            raise StoreCorruptedError(
                f"{where}: array 'scales' row {int(rows[i])} holds {float(scales[i])!r}; every scale of a "
                f"{enc.element}/{enc.scale} store is finite and {need} ({int(bad.sum())} such rows in this read)"
            )
    if enc.block_size and blocks.size:
        bad = (blocks == 0xFF) if enc.scale == "block32" else (blocks >= 0x7F)
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            raise StoreCorruptedError(
                f"{where}: array 'codes' row {int(rows[r])} holds block scale {c} = {int(blocks[r, c]):#04x}, "
                f"which no {enc.scale} encoder writes"
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
