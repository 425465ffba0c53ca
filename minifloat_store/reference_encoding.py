"""A slow, readable numpy reference for every :class:`~minifloat_store.Encoding`.

The numba kernels of ``_encoding_kernels`` are tested against these functions
byte for byte. Read top to bottom, they are the specification: transform
(``transforms.Rotation`` has its own numpy version), choose the scales, round
to the nearest level, pack with :func:`minifloat_store.reference.reference_pack`.
Float64 sums over a row follow ``_row_sum``'s fixed order because that is the
order the kernels use; everything else is float32 arithmetic.
"""

from __future__ import annotations

import numpy as np

from minifloat_store.codebooks import Codebook, get_codebook
from minifloat_store.encoding import Encoding
from minifloat_store.formats import FORMATS
from minifloat_store.reference import reference_pack, reference_unpack
from minifloat_store.transforms import rotation

__all__ = ["reference_decode_encoding", "reference_encode_encoding", "reference_nearest"]

_F32_MAX = np.float64(np.finfo(np.float32).max)
_E4M3 = FORMATS["e4m3"]


def _row_sum(a: np.ndarray) -> np.ndarray:
    """Sum of each row of a float64 (n, d) array: four partial sums, of the columns j with j % 4 == 0, 1,
    2, 3, each left to right, then ``(s0 + s1) + (s2 + s3)``."""
    acc = np.zeros((a.shape[0], 4))
    for j in range(a.shape[1]):
        acc[:, j % 4] += a[:, j]
    return (acc[:, 0] + acc[:, 1]) + (acc[:, 2] + acc[:, 3])


def reference_nearest(v: np.ndarray, element: str | Codebook) -> np.ndarray:
    """Codes (uint64, same shape) of the levels nearest to float32 values ``v``."""
    cb = get_codebook(element)
    v = np.asarray(v, dtype=np.float32)
    if cb.family == "minifloat":
        f = cb.fmt
        if f.is_identity:
            return v.view(np.uint32).astype(np.uint64)
        c = np.clip(v, -f.max_value, f.max_value).astype(f.dtype)
        if f.bits == 16:
            return c.view(np.uint16).astype(np.uint64)
        return (c.view(np.uint8) & np.uint8((1 << f.bits) - 1)).astype(np.uint64)
    if cb.family == "int":
        q = np.rint(np.clip(v, -cb.int_max, cb.int_max)).astype(np.int64)  # ties to even
        return (q & ((1 << cb.bits) - 1)).astype(np.uint64)
    # nf, binary: the number of midpoints at or below v (a tie goes to the upper level)
    return (v[..., None] >= cb.thresholds).sum(axis=-1).astype(np.uint64)


def _levels(codes: np.ndarray, cb: Codebook) -> np.ndarray:
    if cb.bits == 32:
        return codes.astype(np.uint32).view(np.float32)
    return cb.table[codes.astype(np.int64)]


def _transform(x: np.ndarray, enc: Encoding) -> np.ndarray:
    t = x - enc.mean if enc.centres else x.copy()
    if enc.rotates:
        t = rotation(enc.seed, x.shape[1]).forward(t)
    return t.astype(np.float32)


def _inv(step: np.ndarray) -> np.ndarray:
    """float32(1 / step) for float64 steps, capped at the float32 max; 0 where the step is 0."""
    with np.errstate(divide="ignore"):
        inv = np.minimum(1.0 / step, _F32_MAX)
    return np.where(step > 0, inv, 0.0).astype(np.float32)


def _pow2(k: np.ndarray) -> np.ndarray:
    return np.ldexp(np.float32(1), k.astype(np.int32)).astype(np.float32)


def reference_encode_encoding(x: np.ndarray, enc: Encoding) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(codes, scales, block_scales) of float32 rows ``x`` (n, d), as :func:`minifloat_store.encode` must give them."""
    cb = enc.codebook
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    n, d = x.shape
    t = _transform(x, enc)
    amax = np.abs(t).max(axis=1)
    scales = block_scales = None
    if enc.scale == "none":
        v = t
    elif enc.scale == "vector" and cb.family == "minifloat":
        with np.errstate(divide="ignore", over="ignore"):
            s = np.float32(cb.max_level) / amax  # the study's eq. 6
        s = np.where(amax > 0, np.minimum(s, _F32_MAX), 1).astype(np.float32)
        v, scales = t * s[:, None], s
    elif enc.scale == "vector":
        rms = np.sqrt(_row_sum(t.astype(np.float64) ** 2) / d)
        step = rms
        if cb.family == "int":
            step = amax.astype(np.float64) / cb.int_max
            if cb.rms_step > 0:
                step = np.minimum(step, cb.rms_step * rms)
        v = t * _inv(step)[:, None]
        levels = _levels(reference_nearest(v, cb), cb).astype(np.float64)
        num, den = _row_sum(t.astype(np.float64) * levels), _row_sum(levels * levels)
        with np.errstate(divide="ignore", invalid="ignore"):
            scales = np.where(den > 0, num / den, 0).astype(np.float32)  # least-squares factor
    else:
        size = enc.block_size
        nb = enc.n_blocks(d)
        pad = np.zeros((n, nb * size), dtype=np.float32)
        pad[:, :d] = np.abs(t)
        bmax = pad.reshape(n, nb, size).max(axis=2)
        if enc.scale == "block32":
            _, ex = np.frexp(np.where(bmax > 0, bmax, 1))  # bmax = m * 2**ex, 0.5 <= m < 1
            e = np.where(bmax > 0, np.clip(ex - 1 - cb.emax, -127, 127), -127)
            block_scales = (e + 127).astype(np.uint8)
            inv = _pow2(-e)
        else:  # block16
            g = (amax.astype(np.float64) / (448.0 * cb.max_level)).astype(np.float32)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(g[:, None] > 0, bmax / (cb.max_level * g[:, None].astype(np.float64)), 0)
            r = r.astype(np.float32)
            block_scales = reference_nearest(r, "e4m3").astype(np.uint8)
            f = (_E4M3_TABLE()[block_scales].astype(np.float64) * g[:, None]).astype(np.float32)
            inv = _inv(f.astype(np.float64))
            scales = g
        v = t * np.repeat(inv, size, axis=1)[:, :d]
    codes = reference_pack(reference_nearest(v, cb), cb.bits)
    return codes, scales, block_scales


def _E4M3_TABLE() -> np.ndarray:  # noqa: N802 - a constant, built lazily
    return get_codebook("e4m3").table


def reference_decode_encoding(
    codes: np.ndarray, scales: np.ndarray | None, block_scales: np.ndarray | None, enc: Encoding, dim: int
) -> np.ndarray:
    """float32 (n, dim) vectors, in the original space, of encoded rows."""
    cb = enc.codebook
    z = _levels(reference_unpack(codes, cb.bits, dim), cb).astype(np.float32)
    if enc.scale == "vector":
        z = z / scales[:, None] if enc.divides else z * scales[:, None]
    elif enc.scale == "block32":
        f = _pow2(block_scales.astype(np.int64) - 127)
        z = z * np.repeat(f, 32, axis=1)[:, :dim]
    elif enc.scale == "block16":
        f = (_E4M3_TABLE()[block_scales].astype(np.float64) * scales[:, None]).astype(np.float32)
        z = z * np.repeat(f, 16, axis=1)[:, :dim]
    z = z.astype(np.float32)
    if enc.rotates:
        z = rotation(enc.seed, dim).inverse(z)
    if enc.centres:
        z = z + enc.mean
    return z.astype(np.float32)
