"""Encode and decode with an :class:`~minifloat_store.encoding.Encoding`: the driver of the numba kernels.

:func:`minifloat_store.encode` / :func:`minifloat_store.decode` call these for an
``Encoding`` / an ``Encoded``. Arrays are validated here; the kernels
(``_encoding_kernels``) trust them. The rules are in :mod:`minifloat_store.encoding`
and docs/format.md; ``reference_encoding`` is their plain-numpy twin.
"""

from __future__ import annotations

import numpy as np

from minifloat_store import _encoding_kernels as K
from minifloat_store._checks import as_float32_matrix, check_finite_rows, describe
from minifloat_store._encoded_score_kernels import FACTOR_DIVIDE, FACTOR_MULTIPLY, FACTOR_ONE
from minifloat_store.codebooks import Codebook, get_codebook
from minifloat_store.encoding import Encoded, Encoding
from minifloat_store.transforms import rotation

__all__ = ["decode_rows_into", "decode_with", "encode_with"]

_SCALE_MODE = {"none": K.SCALE_NONE, "vector": K.SCALE_VECTOR, "block32": K.SCALE_BLOCK32, "block16": K.SCALE_BLOCK16}
_FAMILY = {"minifloat": K.FAMILY_MINIFLOAT, "int": K.FAMILY_INT, "nf": K.FAMILY_LEVELS, "binary": K.FAMILY_LEVELS}
_NO_F32 = np.zeros(0, dtype=np.float32)
_E4M3_TABLE = get_codebook("e4m3").table


def _padded_thresholds(cb: Codebook) -> np.ndarray:
    """The codebook's thresholds in the kernels' fixed number of slots, the rest +inf (never reached)."""
    out = np.full(K.MAX_THRESHOLDS, np.inf, dtype=np.float32)
    out[: cb.thresholds.size] = cb.thresholds
    return out


_NO_FACTORS = np.zeros((3, 0), dtype=np.float32)
_NO_TRANSFORM = (_NO_F32, False, False, _NO_F32, _NO_FACTORS, 1, np.float32(1.0))


def _transform_args(enc: Encoding, d: int) -> tuple:
    """(mean, centre, rotate, s1, factors, p, norm) for the kernels (see transforms.Rotation)."""
    mean = enc.mean if enc.centres else _NO_F32
    if enc.rotates:
        r = rotation(enc.seed, d)
        return mean, enc.centres, True, r.s1, r.factors, r.p, r.norm32
    return mean, enc.centres, False, _NO_F32, _NO_FACTORS, 1, np.float32(1.0)


def encode_with(x: object, enc: Encoding) -> Encoded:
    """Encode float vectors with an :class:`Encoding` (:func:`minifloat_store.encode` calls this).

    Parameters
    ----------
    x : array_like of shape (n, d) or (d,), floating point
        Converted to float32 first.
    enc : Encoding
        Fitted if it centres.

    Returns
    -------
    Encoded

    Raises
    ------
    TypeError
        If ``x`` is not floating point.
    ValueError
        If ``enc`` centres and is not fitted, ``x`` has a dimension other than
        the fitted one, is empty, or holds NaN/inf (naming the first bad row).
    """
    if not isinstance(enc, Encoding):
        raise TypeError(f"enc must be an Encoding, got {type(enc).__name__}")
    if not enc.is_fitted:
        raise ValueError(f"{enc!r} is not fitted: call enc = enc.fit(sample) first")
    x32 = as_float32_matrix(x)
    n, d = x32.shape
    enc._check_dim(d)
    cb = enc.codebook
    f = cb.fmt
    codes = np.empty((n, enc.code_bytes(d)), dtype=np.uint8)
    scales = np.zeros(n, dtype=np.float32)
    nb = enc.n_blocks(d)
    blocks = np.zeros((n, nb), dtype=np.uint8)
    flags = np.zeros(n, dtype=np.uint8)
    max_bits = np.int64(np.float32(cb.max_level).view(np.uint32)) if cb.bits < 32 else np.int64(0)
    K.encode_rows(
        x32, *_transform_args(enc, d), _FAMILY[cb.family], cb.bits,
        f.mantissa_bits if f else 0, f.bias if f else 0, max_bits, cb.int_max,
        _padded_thresholds(cb), cb.table, cb.rms_step, float(cb.max_level),
        _SCALE_MODE[enc.scale], enc.block_size, cb.emax if cb.bits <= 8 else 0, _E4M3_TABLE,
        codes, scales, blocks, flags,
    )  # fmt: skip
    if flags.any():
        check_finite_rows(x32, original=x, consequence="nothing was encoded")
        row = int(np.flatnonzero(flags)[0])
        raise ValueError(
            f"row {row} is not finite after the transform (values near the float32 limit); nothing was encoded"
        )
    return Encoded(codes, scales if enc.has_vector_scale else None, blocks if enc.block_size else None, enc, d)


def decode_rows_into(e: Encoded, rows: np.ndarray | None, out: np.ndarray, transformed: bool = False) -> np.ndarray:
    """Decode rows ``rows`` (int64, or None for all) of ``e`` into ``out`` (float32, (m, dim)).

    ``transformed``: stop before undoing the transform (the values ``z`` of
    docs/format.md, in the rotated, centred space), for scoring.
    """
    enc = e.encoding
    cb = enc.codebook
    n = e.n
    scales = e.scales if e.scales is not None else np.ones(n, dtype=np.float32)
    blocks = e.block_scales if e.block_scales is not None else np.zeros((n, 0), dtype=np.uint8)
    idx = np.zeros(0, dtype=np.int64) if rows is None else rows
    if out.shape[0]:
        K.decode_rows(
            e.codes, cb.bits, cb.table, _SCALE_MODE[enc.scale], enc.divides, scales, max(enc.block_size, 1), blocks,
            _E4M3_TABLE, *(_NO_TRANSFORM if transformed else _transform_args(enc, e.dim)), idx, rows is None, out,
        )  # fmt: skip
    return out


def decode_unit_chunk(e: Encoded, norms: np.ndarray, row0: int, out: np.ndarray) -> np.ndarray:
    """Rows ``row0 ..`` in the transformed space over their norms, with ``1/norm`` appended (float32,
    (m, dim + 1)): the rows of the BLAS pre-selection in ``encoded_scoring``."""
    enc = e.encoding
    cb = enc.codebook
    scales = e.scales if e.scales is not None else np.ones(e.n, dtype=np.float32)
    blocks = e.block_scales if e.block_scales is not None else np.zeros((e.n, 0), dtype=np.uint8)
    if out.shape[0]:
        K.decode_unit_rows(
            e.codes, cb.bits, cb.table, _SCALE_MODE[enc.scale], enc.divides, scales, max(enc.block_size, 1), blocks,
            _E4M3_TABLE, norms, row0, out,
        )  # fmt: skip
    return out


def decode_with(e: Encoded, out: np.ndarray | None = None) -> np.ndarray:
    """Decode an :class:`Encoded` batch to float32 (n, dim), in the original space (:func:`minifloat_store.decode`)."""
    if not isinstance(e, Encoded):
        raise TypeError(f"expected an Encoded, got {type(e).__name__}")
    shape = (e.n, e.dim)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.dtype != np.float32 or out.shape != shape or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writable C-contiguous float32 array of shape {shape}, got {describe(out)}")
    return decode_rows_into(e, None, out)


# ---------------------------------------------------------------- an Encoded's arrays as the scoring kernels take them

_NO_BLOCKS = np.zeros(1, dtype=np.float64)
_BLOCK_TABLES: dict[str, np.ndarray] = {}


def mean64(enc: Encoding) -> np.ndarray:
    """The fitted mean as float64 (d,); only called for encodings that centre, which are fitted."""
    if enc.mean is None:
        raise ValueError(f"encoding {enc} centres but has not been fitted (no mean)")
    return enc.mean.astype(np.float64)


def block_factor_table(scale: str) -> np.ndarray:
    """float64 factor of every block-scale code: ``2**(c - 127)`` (E8M0) or the E4M3 value."""
    if scale not in ("block32", "block16"):
        return _NO_BLOCKS
    t = _BLOCK_TABLES.get(scale)
    if t is None:
        if scale == "block32":
            t = np.ldexp(1.0, np.arange(256) - 127)
            t[255] = 0.0  # NaN code: rejected when an Encoded is built
        else:
            t = get_codebook("e4m3").table.astype(np.float64)
            t[0x7F:] = 0.0  # NaN and negative codes: rejected likewise
        t.flags.writeable = False
        _BLOCK_TABLES[scale] = t
    return t


def factor_args(e: Encoded) -> tuple[np.ndarray, int]:
    """(scales, mode) from which the kernels take a row's factor: 1/s for the study's divisor, s, or 1."""
    if e.scales is None:
        return np.zeros(1, np.float32), FACTOR_ONE
    return e.scales, FACTOR_DIVIDE if e.encoding.divides else FACTOR_MULTIPLY


def block_codes(e: Encoded) -> np.ndarray:
    """The rows' block-scale codes, uint8 (n, blocks); (n, 0) without block scales."""
    return e.block_scales if e.block_scales is not None else np.zeros((e.n, 0), dtype=np.uint8)


def mean_norm(enc: Encoding) -> float:
    """|mean| of an encoding that centres, else 0."""
    return float(np.linalg.norm(mean64(enc))) if enc.centres else 0.0
