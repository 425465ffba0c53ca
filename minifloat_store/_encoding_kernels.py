"""numba kernels for :class:`minifloat_store.Encoding`: transform, scale, round and pack in one pass, and back.

Private module. ``encoding.py`` validates every array first; the kernels
trust their arguments. The arithmetic is exactly that of
:mod:`minifloat_store.reference_encoding` (float32 operations in the same
order, float64 sums in the fixed order of ``_sum_kernels``), so the two agree bit
for bit.

Parameters shared by the kernels (``P`` in the docstrings):

family
    0 minifloat (``encode_value`` of ``_kernels``; fp32 stores the float32
    bits), 1 int (``rint(clip(v, -L, L))``, two's complement), 2 sorted levels
    (nf, binary: ``count(v >= thresholds)``).
scale_mode
    0 none, 1 vector, 2 block32 (E8M0), 3 block16 (E4M3 x per-vector float32).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from minifloat_store._hadamard_kernels import rotate_forward, rotate_inverse
from minifloat_store._kernels import bits_f32, encode_value, f32_bits
from minifloat_store._sum_kernels import least_squares, sum4_sq

FAMILY_MINIFLOAT, FAMILY_INT, FAMILY_LEVELS = 0, 1, 2
SCALE_NONE, SCALE_VECTOR, SCALE_BLOCK32, SCALE_BLOCK16 = 0, 1, 2, 3

FLOAT32_MAX = np.float32(np.finfo(np.float32).max)
# Adding then subtracting 1.5 * 2**23 rounds a float32 of magnitude < 2**22 to
# the nearest integer, ties to even (the FPU's own rounding does it).
_RNE_MAGIC = np.float32(12582912.0)
E4M3_MAX_BITS = np.int64(0x43E00000)  # float32 bits of 448.0
ROWS_PER_TASK = 256
#: Threshold slots of the sorted-levels family (nf4 has 15); unused ones hold +inf.
MAX_THRESHOLDS = 15


# ---------------------------------------------------------------- small helpers


@njit(cache=True, inline="always")
def pow2_f32(k):
    """``2.0**k`` as an exact float32, for -149 <= k <= 127."""
    if k >= -126:
        return bits_f32(np.int64(k + 127) << 23)
    return bits_f32(np.int64(1) << (k + 149))


@njit(cache=True)
def floor_log2_f32(a):
    """``floor(log2(a))`` of a positive finite float32, from its bits (subnormals included)."""
    b = np.int64(f32_bits(a))
    ex = b >> 23
    if ex > 0:
        return ex - 127
    m = b & 0x7FFFFF
    n = -150
    while m:
        m >>= 1
        n += 1
    return n


# Loops below run over views starting at 0: numba wraps negative indices, and a
# loop from a start the compiler cannot prove non-negative does not vectorise
# (measured 14x slower). Maxima of |t| are taken on the bit patterns as int32:
# a float maximum does not vectorise (its NaN rules fix the order), nor does
# numba's uint32 one.


@njit(cache=True, inline="always")
def abs_bits(v):
    """The bit pattern of ``|v|`` (float32) as a non-negative int32: integer order is float order."""
    return np.int32(f32_bits(v) & np.uint32(0x7FFFFFFF))


@njit(cache=True, inline="always")
def _mul_span(t, lo, hi, c):
    """``t[j] *= c`` for j in [lo, hi) (float32)."""
    u = t[lo:hi]
    for k in range(u.shape[0]):
        u[k] = u[k] * c


@njit(cache=True, inline="always")
def _max_abs_span(t, lo, hi):
    """``max|t[j]|`` for j in [lo, hi) (finite float32; 0 for an empty span)."""
    u = t[lo:hi]
    m = np.int32(0)
    for k in range(u.shape[0]):
        b = abs_bits(u[k])
        m = b if b > m else m
    return bits_f32(m)


@njit(cache=True, inline="always")
def _nearest_sorted(t, inv, thresholds, table, cbuf, lv, n_thresholds):
    """Code ``count(v >= thresholds)`` and level ``table[code]`` of ``v = t[j] * inv``, with a compile-time
    number of thresholds. The thresholds ascend, so the last one passed names the level: it is picked
    with integer masks on the bit patterns, which vectorise (a table look-up per value, or a float
    select, does not: measured 2x and 20x slower)."""
    for j in range(t.shape[0]):
        v = t[j] * inv
        c = np.int32(0)
        level = np.int32(f32_bits(table[0]))
        for k in range(n_thresholds):
            up = np.int32(v >= thresholds[k])
            c += up
            level = (level & ~(-up)) | (np.int32(f32_bits(table[k + 1])) & -up)
        cbuf[j] = c
        lv[j] = bits_f32(level)


@njit(cache=True)
def quantize_row(t, inv, family, bits, mant_bits, bias, max_bits, int_max, thresholds, table, cbuf, lv):
    """``cbuf[j] = nearest(t[j] * inv)`` for every j; one branch-free loop per family (they vectorise).

    ``cbuf`` is int32 (eight codes per AVX2 vector: a float32 to int64
    conversion has no AVX2 instruction). The int and sorted-levels families
    also write the level ``lv[j] = table[cbuf[j]]`` (float32), which the
    least-squares factor needs; the minifloat family leaves ``lv`` alone.
    """
    if family == FAMILY_INT:
        lim = np.float32(int_max)
        mask = np.int32((1 << bits) - 1)
        for j in range(t.shape[0]):
            r = (min(max(t[j] * inv, -lim), lim) + _RNE_MAGIC) - _RNE_MAGIC
            lv[j] = r
            cbuf[j] = np.int32(r) & mask
    elif family == FAMILY_LEVELS:
        # one loop per width, each with its own constant count (nf4 15, nf3 7, nf2 3, binary 1)
        if bits == 4:
            _nearest_sorted(t, inv, thresholds, table, cbuf, lv, 15)
        elif bits == 3:
            _nearest_sorted(t, inv, thresholds, table, cbuf, lv, 7)
        elif bits == 2:
            _nearest_sorted(t, inv, thresholds, table, cbuf, lv, 3)
        elif bits == 1:
            _nearest_sorted(t, inv, thresholds, table, cbuf, lv, 1)
        else:  # no such codebook today; all MAX_THRESHOLDS slots (+inf past the real ones), then a look-up
            for j in range(t.shape[0]):
                v = t[j] * inv
                c = np.int32(0)
                for k in range(MAX_THRESHOLDS):
                    c += np.int32(v >= thresholds[k])
                cbuf[j] = c
                lv[j] = table[c]
    elif bits == 32:
        for j in range(t.shape[0]):
            cbuf[j] = np.int32(f32_bits(t[j] * inv))
    else:
        for j in range(t.shape[0]):
            cbuf[j] = np.int32(encode_value(f32_bits(t[j] * inv), bits, mant_bits, bias, max_bits))


@njit(cache=True, inline="always")
def _pack_groups(cbuf, bits, per, nbytes, codes, i):
    """Pack the whole groups of ``per`` codes (``per * bits == 8 * nbytes``) of ``cbuf`` into row i; return
    how many codes that was. Called with constant widths, so the inner loops unroll to shifts and ORs."""
    groups = cbuf.shape[0] // per
    for g in range(groups):
        acc = np.int64(0)
        for m in range(per):
            acc |= np.int64(cbuf[per * g + m]) << (bits * m)
        for k in range(nbytes):
            codes[i, nbytes * g + k] = np.uint8((acc >> (8 * k)) & 0xFF)
    return groups * per


@njit(cache=True)
def pack_row(cbuf, bits, codes, i):
    """Pack codes ``cbuf`` (int32, (d,), each in ``[0, 2**bits)``) into row ``i`` of ``codes`` (uint8) as an
    LSB-first bit stream: whole groups of codes that fill whole bytes first, the rest bit by bit."""
    d = cbuf.shape[0]
    if bits == 8:
        for j in range(d):
            codes[i, j] = np.uint8(cbuf[j] & 0xFF)
        return
    if bits == 16 or bits == 32:
        nb = bits // 8
        for j in range(d):
            c = cbuf[j]
            for k in range(nb):
                codes[i, nb * j + k] = np.uint8((c >> (8 * k)) & 0xFF)
        return
    if bits == 4:  # this simpler loop measured faster than the group one
        for k in range(d // 2):
            codes[i, k] = np.uint8(cbuf[2 * k] | (cbuf[2 * k + 1] << 4))
        j = d - d % 2
    elif bits == 2:
        j = _pack_groups(cbuf, 2, 4, 1, codes, i)
    elif bits == 1:
        j = _pack_groups(cbuf, 1, 8, 1, codes, i)
    elif bits == 3:
        j = _pack_groups(cbuf, 3, 8, 3, codes, i)
    elif bits == 6:
        j = _pack_groups(cbuf, 6, 4, 3, codes, i)
    else:
        j = 0
    # every group above ends on a byte boundary, so the tail starts at byte j * bits / 8
    o = j * bits // 8
    acc = np.int64(0)
    nacc = 0
    for jj in range(j, d):
        acc |= np.int64(cbuf[jj]) << nacc
        nacc += bits
        while nacc >= 8:
            codes[i, o] = np.uint8(acc & 0xFF)
            acc >>= 8
            nacc -= 8
            o += 1
    if nacc > 0:
        codes[i, o] = np.uint8(acc & 0xFF)


@njit(cache=True)
def unpack_row(row, bits, cbuf):
    """Inverse of :func:`pack_row`: the d codes of one packed row into ``cbuf`` (int64, (d,))."""
    d = cbuf.shape[0]
    if bits == 8:
        for j in range(d):
            cbuf[j] = row[j]
    elif bits == 4:
        for k in range(d // 2):
            b = np.int64(row[k])
            cbuf[2 * k] = b & 0xF
            cbuf[2 * k + 1] = b >> 4
        if d % 2:
            cbuf[d - 1] = row[d // 2] & 0xF
    elif bits == 16 or bits == 32:
        nb = bits // 8
        for j in range(d):
            c = np.int64(0)
            for k in range(nb):
                c |= np.int64(row[nb * j + k]) << (8 * k)
            cbuf[j] = c
    else:
        mask = (np.int64(1) << bits) - 1
        acc = np.int64(0)
        nacc = 0
        o = 0
        for j in range(d):
            while nacc < bits:
                acc |= np.int64(row[o]) << nacc
                o += 1
                nacc += 8
            cbuf[j] = acc & mask
            acc >>= bits
            nacc -= bits


# ---------------------------------------------------------------- encode


@njit(cache=True)
def _encode_one(x, i, mean, centre, rotate, s1, factors, p, norm, family, bits, mant_bits, bias, max_bits, int_max,
                thresholds, table, gstep, max_level, scale_mode, block, emax, e4m3_table,
                t, cbuf, lv, codes, scales, block_scales):  # fmt: skip
    """Encode row i of x; return 0, 1 (NaN/inf in the input) or 2 (not finite after the transform).

    Whole arrays and a row index, not row views: a view of a shared array
    costs two atomic reference-count updates per row, which the two threads
    then fight over.
    """
    d = x.shape[1]
    # The rotation's first sign flip rides on the copy (the same float32 operations).
    if centre and rotate:
        for j in range(d):
            t[j] = (x[i, j] - mean[j]) * s1[j]
    elif centre:
        for j in range(d):
            t[j] = x[i, j] - mean[j]
    elif rotate:
        for j in range(d):
            t[j] = x[i, j] * s1[j]
    else:
        for j in range(d):
            t[j] = x[i, j]
    # max|t| on the bit patterns (integer order is float order for |t|); an
    # exponent field of all ones is inf or NaN: in the input, or made by the transform.
    amax_bits = np.int32(0)
    lo = d
    if rotate:
        rotate_forward(t, factors, p)
        lo = d - p
        tail = t[lo:]
        for k in range(tail.shape[0]):  # the rotation's last factor, in the same pass as max|t|
            v = tail[k] * norm
            tail[k] = v
            b = abs_bits(v)
            amax_bits = b if b > amax_bits else amax_bits
    for j in range(lo):
        b = abs_bits(t[j])
        amax_bits = b if b > amax_bits else amax_bits
    if amax_bits >= np.int32(0x7F800000):
        for j in range(d):
            if (f32_bits(x[i, j]) & np.uint32(0x7F800000)) == np.uint32(0x7F800000):
                return 1
        return 2
    amax = bits_f32(amax_bits)
    if scale_mode == SCALE_NONE:
        quantize_row(t, np.float32(1.0), family, bits, mant_bits, bias, max_bits, int_max, thresholds, table, cbuf, lv)
    elif scale_mode == SCALE_VECTOR and family == FAMILY_MINIFLOAT:
        # The study's eq. 6, as _kernels.row_scale computes it.
        s = np.float32(1.0)
        if amax > 0:
            s = np.float32(np.float32(max_level) / amax)
            if s > FLOAT32_MAX:
                s = FLOAT32_MAX
        scales[i] = s
        quantize_row(t, s, family, bits, mant_bits, bias, max_bits, int_max, thresholds, table, cbuf, lv)
    elif scale_mode == SCALE_VECTOR:
        if family == FAMILY_INT:
            step = np.float64(amax) / int_max
            if gstep > 0.0:  # int8, int6 (gstep 0) never need the RMS: skip its sum
                step = min(step, gstep * np.sqrt(sum4_sq(t, d) / d))
        else:
            step = np.sqrt(sum4_sq(t, d) / d)
        inv = np.float32(0.0)
        if step > 0.0:
            inv = np.float32(min(1.0 / step, np.float64(FLOAT32_MAX)))
        quantize_row(t, inv, family, bits, mant_bits, bias, max_bits, int_max, thresholds, table, cbuf, lv)
        num, den = least_squares(t, lv, d)
        scales[i] = np.float32(num / den) if den > 0.0 else np.float32(0.0)
    elif scale_mode == SCALE_BLOCK32:
        nb = (d + block - 1) // block
        for b in range(nb):
            lo = b * block
            hi = min(d, lo + block)
            bmax = _max_abs_span(t, lo, hi)
            e = -127
            if bmax > 0:
                e = min(127, max(-127, floor_log2_f32(bmax) - emax))
            block_scales[i, b] = e + 127
            _mul_span(t, lo, hi, pow2_f32(-e))
        # t[j] * 1 is t[j]: the same values as scaling inside the rounding, in one pass for the row
        quantize_row(t, np.float32(1.0), family, bits, mant_bits, bias, max_bits, int_max, thresholds, table, cbuf, lv)
    else:  # SCALE_BLOCK16
        g = np.float32(np.float64(amax) / (448.0 * max_level))
        scales[i] = g
        nb = (d + block - 1) // block
        den = max_level * np.float64(g)
        # Three passes over the blocks, with lv and cbuf (free until quantize_row) holding each block's
        # max, then its 1/scale and code: the middle pass, two float64 divisions and an E4M3 rounding
        # per block, then runs the blocks side by side instead of waiting on each in turn.
        for b in range(nb):
            lv[b] = _max_abs_span(t, b * block, min(d, (b + 1) * block))
        for b in range(nb):
            r = np.float32(np.float64(lv[b]) / den) if g > 0 else np.float32(0.0)
            bc = encode_value(f32_bits(r), 8, 3, 7, E4M3_MAX_BITS)
            cbuf[b] = bc
            f = np.float32(np.float64(e4m3_table[bc]) * np.float64(g))
            lv[b] = np.float32(min(1.0 / np.float64(f), np.float64(FLOAT32_MAX))) if f > 0 else np.float32(0.0)
        for b in range(nb):
            block_scales[i, b] = cbuf[b]
            _mul_span(t, b * block, min(d, (b + 1) * block), lv[b])
        quantize_row(t, np.float32(1.0), family, bits, mant_bits, bias, max_bits, int_max, thresholds, table, cbuf, lv)
    pack_row(cbuf, bits, codes, i)
    return 0


@njit(cache=True, parallel=True)
def encode_rows(x, mean, centre, rotate, s1, factors, p, norm, family, bits, mant_bits, bias, max_bits, int_max,
                thresholds, table, gstep, max_level, scale_mode, block, emax, e4m3_table,
                codes, scales, block_scales, flags):  # fmt: skip
    """Encode every row of ``x`` (float32, (n, d)) into ``codes``/``scales``/``block_scales``.

    ``flags[i]`` is 1 for a row with NaN/inf and 2 for one that overflows in
    the transform; their output is garbage and the caller discards the batch.
    """
    n, d = x.shape
    n_tasks = (n + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in prange(n_tasks):
        t = np.empty(d, np.float32)
        cbuf = np.empty(d, np.int32)
        lv = np.empty(d, np.float32)
        for i in range(task * ROWS_PER_TASK, min(n, (task + 1) * ROWS_PER_TASK)):
            flags[i] = _encode_one(x, i, mean, centre, rotate, s1, factors, p, norm, family, bits, mant_bits, bias,
                                   max_bits, int_max, thresholds, table, gstep, max_level, scale_mode, block, emax,
                                   e4m3_table, t, cbuf, lv, codes, scales, block_scales)  # fmt: skip


# ---------------------------------------------------------------- decode


@njit(cache=True)
def levels_row(code_row, bits, table, cbuf, z):
    """Unscaled level of every code of one row into ``z`` (float32, (d,)); fp32 codes are reinterpreted."""
    unpack_row(code_row, bits, cbuf)
    d = z.shape[0]
    if bits == 32:
        for j in range(d):
            z[j] = bits_f32(cbuf[j])
    else:
        for j in range(d):
            z[j] = table[cbuf[j]]


@njit(cache=True)
def scale_levels(z, scale_mode, divides, s, block, block_row, e4m3_table, g):
    """Turn levels into the stored values of the transformed space, in place (float32)."""
    d = z.shape[0]
    if scale_mode == SCALE_VECTOR:
        if divides:
            for j in range(d):
                z[j] = z[j] / s
        else:
            _mul_span(z, 0, d, s)
    elif scale_mode == SCALE_BLOCK32 or scale_mode == SCALE_BLOCK16:
        for b in range((d + block - 1) // block):
            if scale_mode == SCALE_BLOCK32:
                f = pow2_f32(np.int64(block_row[b]) - 127)
            else:
                f = np.float32(np.float64(e4m3_table[block_row[b]]) * np.float64(g))
            _mul_span(z, b * block, min(d, (b + 1) * block), f)


@njit(cache=True)
def decode_one(code_row, bits, table, scale_mode, divides, s, block, block_row, e4m3_table,
               mean, centre, rotate, s1, factors, p, norm, cbuf, out_row):  # fmt: skip
    """Decode one row into ``out_row`` (float32, (d,)), back in the original space."""
    levels_row(code_row, bits, table, cbuf, out_row)
    scale_levels(out_row, scale_mode, divides, s, block, block_row, e4m3_table, s)
    if rotate:
        rotate_inverse(out_row, factors, p, norm)
    if centre:
        for j in range(out_row.shape[0]):
            out_row[j] = out_row[j] + mean[j]


@njit(cache=True, parallel=True)
def decode_rows(codes, bits, table, scale_mode, divides, scales, block, block_scales, e4m3_table,
                mean, centre, rotate, s1, factors, p, norm, rows, all_rows, out):  # fmt: skip
    """Decode rows ``rows[k]`` (every row ``k`` if ``all_rows``) into ``out[k]`` (float32, (m, d))."""
    m, d = out.shape
    n_tasks = (m + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in prange(n_tasks):
        cbuf = np.empty(d, np.int64)
        for k in range(task * ROWS_PER_TASK, min(m, (task + 1) * ROWS_PER_TASK)):
            i = k if all_rows else rows[k]
            decode_one(codes[i], bits, table, scale_mode, divides, scales[i], block, block_scales[i], e4m3_table,
                       mean, centre, rotate, s1, factors, p, norm, cbuf, out[k])  # fmt: skip


@njit(cache=True, nogil=True)
def decode_unit_rows(codes, bits, table, scale_mode, divides, scales, block, block_scales, e4m3_table,
                     norms, row0, out):  # fmt: skip
    """Rows ``row0 + k`` in the transformed space, over their decoded norm, into ``out[k, :d]``, and
    ``1 / norm`` into ``out[k, d]`` (float32, (m, d + 1); zeros for a zero row). One thread: it runs
    between BLAS calls."""
    d = out.shape[1] - 1
    cbuf = np.empty(d, np.int64)
    z = np.empty(d, np.float32)
    for k in range(out.shape[0]):
        i = row0 + k
        levels_row(codes[i], bits, table, cbuf, z)
        scale_levels(z, scale_mode, divides, scales[i], block, block_scales[i], e4m3_table, scales[i])
        inv = np.float32(1.0 / norms[i]) if norms[i] > 0.0 else np.float32(0.0)
        o = out[k]
        for j in range(d):
            o[j] = z[j] * inv
        o[d] = inv
