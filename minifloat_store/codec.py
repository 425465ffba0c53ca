"""Encode float32 embeddings into packed minifloat codes and back.

``encode`` scales each vector (optionally), rounds to nearest with ties to
even, saturates to +-max_value and packs the codes into bytes; ``decode``
reverses it. Every unpacked code equals, bit for bit, what ml_dtypes gives for
the same (scaled) float32 value clipped to +-max_value. The byte layout is
specified in docs/format.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minifloat_store import _kernels

# SCALE_MODES, ScaleMode, as_float32_matrix and check_scale_mode live in _checks;
# they are re-exported here, where the store and the evaluation import them from.
from minifloat_store._checks import (
    SCALE_MODES,
    ScaleMode,
    as_float32_matrix,
    check_finite_rows,
    check_positive_int,
    check_scale_mode,
    describe,
)
from minifloat_store.formats import Format, decode_table, get_format

__all__ = [
    "SCALE_MODES",
    "Packed",
    "ScaleMode",
    "as_float32_matrix",
    "check_scale_mode",
    "decode",
    "effective_scale",
    "encode",
    "quantize",
    "storage_bytes",
]

_EMPTY_TABLE = np.zeros(1, dtype=np.float32)


def effective_scale(fmt: Format, scale: ScaleMode) -> ScaleMode:
    """The scale mode a format really uses: ``"none"`` for fp32, ``scale`` otherwise.

    float32 is the reference: stored bit for bit, never rescaled.
    """
    return "none" if fmt.is_identity else scale


def storage_bytes(n: int, dim: int, fmt: str | Format, scale: ScaleMode = "vector") -> int:
    """Exact payload size of ``n`` packed vectors, in bytes.

    ``n * ceil(dim * bits / 8)`` bytes of codes, plus 4 bytes (one float32
    scale) per vector when ``scale == "vector"``. This is the study's Table 1
    quantity (which has no scales); container overhead (ids, chunk headers,
    checksums) is not included.
    """
    f = get_format(fmt)
    check_scale_mode(scale)
    if n < 0 or dim < 1:
        raise ValueError(f"need n >= 0 and dim >= 1, got n={n}, dim={dim}")
    scale_bytes = 4 if effective_scale(f, scale) == "vector" else 0
    return int(n) * (f.row_bytes(int(dim)) + scale_bytes)


@dataclass(frozen=True, eq=False)
class Packed:
    """A batch of packed vectors.

    Attributes
    ----------
    codes : ndarray of shape (n, row_bytes), uint8, C-contiguous
        Row i is vector i as an LSB-first bit stream of ``fmt.bits``-bit codes.
    scales : ndarray of shape (n,), float32
        Per-vector scale; the stored value times ``1 / scales[i]`` is the
        decoded value. All ones for ``scale == "none"``.
    fmt : Format
        The storage format.
    dim : int
        Values per vector.
    scale : {"none", "vector"}
        How the scales were chosen.
    """

    codes: np.ndarray
    scales: np.ndarray
    fmt: Format
    dim: int
    scale: ScaleMode = "vector"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fmt", get_format(self.fmt))
        check_scale_mode(self.scale)
        object.__setattr__(self, "dim", check_positive_int(self.dim, "dim"))
        codes, scales = self.codes, self.scales
        _check_layout(codes, scales, self.fmt, self.dim)
        if not codes.flags.c_contiguous:
            object.__setattr__(self, "codes", np.ascontiguousarray(codes))
        if not scales.flags.c_contiguous:
            object.__setattr__(self, "scales", np.ascontiguousarray(scales))
        bad = ~(np.isfinite(scales) & (scales > 0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"scale of row {row} is {scales[row]!r}; scales must be finite and > 0")

    def __len__(self) -> int:
        return self.codes.shape[0]

    @property
    def n(self) -> int:
        """Number of vectors."""
        return self.codes.shape[0]

    @property
    def nbytes(self) -> int:
        """Payload bytes: ``storage_bytes(n, dim, fmt, scale)``."""
        return storage_bytes(self.n, self.dim, self.fmt, self.scale)

    def __getitem__(self, rows: int | slice | np.ndarray) -> Packed:
        """The packed vectors at ``rows`` (an int keeps a batch of one)."""
        if isinstance(rows, (int, np.integer)):
            rows = np.array([rows])
        return Packed(self.codes[rows], self.scales[rows], self.fmt, self.dim, self.scale)

    def __repr__(self) -> str:
        return f"Packed(n={self.n}, dim={self.dim}, fmt={self.fmt.name!r}, scale={self.scale!r}, nbytes={self.nbytes})"


def _check_layout(codes: object, scales: object, fmt: Format, dim: int) -> None:
    """Dtypes and shapes the kernels rely on: (n, row_bytes) uint8 codes, (n,) float32 scales.

    Run when a Packed is built and again before a kernel reads it (an
    array's shape and dtype can be changed in place after construction).
    """
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D uint8 array, got {describe(codes)}")
    expected = fmt.row_bytes(dim)
    if codes.shape[1] != expected:
        raise ValueError(f"codes have {codes.shape[1]} bytes per row; {fmt.name} x {dim} needs {expected}")
    if not isinstance(scales, np.ndarray) or scales.dtype != np.float32 or scales.shape != (codes.shape[0],):
        raise ValueError(f"scales must be float32 of shape ({codes.shape[0]},), got {describe(scales)}")


def check_kernel_input(packed: Packed) -> None:
    """Re-check ``packed``'s arrays just before a kernel reads them (cheap: no pass over the data).

    Raises
    ------
    ValueError
        If the codes or scales no longer have the dtype, shape or
        contiguity the kernels index by.
    """
    _check_layout(packed.codes, packed.scales, packed.fmt, packed.dim)
    if not (packed.codes.flags.c_contiguous and packed.scales.flags.c_contiguous):
        raise ValueError("codes and scales must be C-contiguous (they were changed after the Packed was built)")


def encode(x: object, fmt: str | Format, scale: ScaleMode = "vector") -> Packed:
    """Encode float vectors into packed codes.

    Parameters
    ----------
    x : array_like of shape (n, d) or (d,), floating point
        The vectors. Converted to float32 first.
    fmt : str or Format
        Target format (``"e2m1"``, ``"e4m3"``, ``"fp16"``... or an ml_dtypes name).
    scale : {"vector", "none"}
        ``"vector"`` (default) multiplies each vector by ``max_value / max|x|``
        before rounding (equation 6 of the study; an all-zero vector gets scale
        1); ``"none"`` rounds the values as they are. float32 is always stored
        as it is.

    Returns
    -------
    Packed
        Codes of shape (n, ceil(d * bits / 8)) and float32 scales of shape (n,).

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point array.
    ValueError
        If ``x`` has the wrong number of dimensions, is empty, or holds NaN or
        inf (the message names the first offending row), or if ``fmt`` or
        ``scale`` is unknown.
    """
    f = get_format(fmt)
    scale = effective_scale(f, check_scale_mode(scale))
    x32 = as_float32_matrix(x)
    n, d = x32.shape
    codes = np.empty((n, f.row_bytes(d)), dtype=np.uint8)
    scales = np.empty(n, dtype=np.float32)
    nonfinite = np.zeros(n, dtype=np.bool_)
    _kernels.encode_rows(
        x32, scale == "vector", f.bits, f.mantissa_bits, f.bias, np.float32(f.max_value), codes, scales, nonfinite
    )
    if nonfinite.any():
        check_finite_rows(x32, original=x, consequence="nothing was encoded")
    return Packed(codes, scales, f, d, scale)


def decode(packed: Packed, out: np.ndarray | None = None) -> np.ndarray:
    """Decode packed vectors to float32.

    Parameters
    ----------
    packed : Packed
    out : ndarray of shape (n, dim), float32, C-contiguous, optional
        Where to write the result (no allocation).

    Returns
    -------
    ndarray of shape (n, dim), float32
        ``value(code) / scale`` for every element.
    """
    if not isinstance(packed, Packed):
        raise TypeError(f"decode expects a Packed, got {type(packed).__name__}")
    check_kernel_input(packed)
    shape = (packed.n, packed.dim)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif (
        not isinstance(out, np.ndarray)
        or out.dtype != np.float32
        or out.shape != shape
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        raise ValueError(f"out must be a writable C-contiguous float32 array of shape {shape}, got {describe(out)}")
    f = packed.fmt
    table = decode_table(f) if f.bits <= 16 else _EMPTY_TABLE
    _kernels.decode_rows(packed.codes, packed.scales, f.bits, table, out)
    return out


def quantize(x: object, fmt: str | Format, scale: ScaleMode = "vector") -> np.ndarray:
    """``decode(encode(x, fmt, scale))``: the float32 values a stored vector comes back as.

    Returns float32 of shape (n, d) (a (d,) input gives (1, d)).
    """
    return decode(encode(x, fmt, scale))
