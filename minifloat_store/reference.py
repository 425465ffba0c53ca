"""A slow, readable reference codec in plain numpy and ml_dtypes.

The numba kernels of :mod:`minifloat_store.codec` are tested against these
functions, which anyone can check by eye: scale in float32, clip to
+-max_value, let ml_dtypes round, and lay the codes out as an LSB-first bit
stream per row.
"""

from __future__ import annotations

import numpy as np

from minifloat_store._checks import ScaleMode
from minifloat_store.formats import Format, get_format

__all__ = [
    "reference_scales",
    "reference_codes",
    "reference_pack",
    "reference_unpack",
    "reference_encode",
    "reference_decode",
]


def reference_scales(x: np.ndarray, fmt: str | Format, scale: ScaleMode) -> np.ndarray:
    """Per-row float32 scale: ``max_value / max|x|`` (1 for zero rows) or all ones."""
    f = get_format(fmt)
    x = np.asarray(x, dtype=np.float32)
    if scale == "none" or f.is_identity:
        return np.ones(x.shape[0], dtype=np.float32)
    amax = np.abs(x).max(axis=1)
    with np.errstate(divide="ignore", over="ignore"):
        s = np.float32(f.max_value) / amax
    s = np.minimum(s, np.finfo(np.float32).max).astype(np.float32)
    s[amax == 0] = 1.0
    return s


def reference_codes(x: np.ndarray, fmt: str | Format, scales: np.ndarray) -> np.ndarray:
    """Unpacked codes (uint8, or uint16/uint32 for 16/32-bit formats), shape (n, d)."""
    f = get_format(fmt)
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):
        v = (x * scales[:, None]).astype(np.float32)
    if f.is_identity:
        return v.view(np.uint32)
    v = np.clip(v, -f.max_value, f.max_value)
    if f.bits == 16:
        return v.astype(f.dtype).view(np.uint16)
    # ml_dtypes keeps sub-byte codes in a byte; only the low `bits` are the code.
    return v.astype(f.dtype).view(np.uint8) & np.uint8((1 << f.bits) - 1)


def reference_pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack (n, d) codes of ``bits`` bits into (n, ceil(d*bits/8)) bytes, LSB first."""
    codes = np.asarray(codes).astype(np.uint64)
    n, d = codes.shape
    # Bit k of code j of a row is bit j*bits + k of the row's stream.
    stream = ((codes[:, :, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    stream = stream.reshape(n, d * bits)
    return np.packbits(stream, axis=1, bitorder="little")


def reference_unpack(packed: np.ndarray, bits: int, dim: int) -> np.ndarray:
    """Inverse of :func:`reference_pack`: (n, row_bytes) bytes to (n, dim) uint64 codes."""
    stream = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, bitorder="little")
    stream = stream[:, : dim * bits].reshape(-1, dim, bits).astype(np.uint64)
    return (stream << np.arange(bits, dtype=np.uint64)).sum(axis=2)


def reference_encode(x: np.ndarray, fmt: str | Format, scale: ScaleMode = "vector") -> tuple[np.ndarray, np.ndarray]:
    """(packed codes, scales) exactly as :func:`minifloat_store.encode` must produce them."""
    f = get_format(fmt)
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    s = reference_scales(x, f, scale)
    return reference_pack(reference_codes(x, f, s), f.bits), s


def reference_decode(packed: np.ndarray, scales: np.ndarray, fmt: str | Format, dim: int) -> np.ndarray:
    """float32 (n, dim) values of packed codes, divided by their scales."""
    f = get_format(fmt)
    codes = reference_unpack(packed, f.bits, dim)
    if f.is_identity:
        values = codes.astype(np.uint32).view(np.float32)
    elif f.bits == 16:
        values = codes.astype(np.uint16).view(f.dtype).astype(np.float32)
    else:
        values = codes.astype(np.uint8).view(f.dtype).astype(np.float32)
    return (values / scales[:, None]).astype(np.float32)
