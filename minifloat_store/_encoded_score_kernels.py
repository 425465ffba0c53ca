"""numba kernels scoring a query against vectors stored with an :class:`~minifloat_store.Encoding`.

Private module; ``encoded_scoring.py`` validates everything first.

A stored vector is ``y = R^T(z) + mean`` with ``z_j = level(code_j) * f_b * f``
(``f_b`` the factor of the block holding j, ``f`` the row's). For a query q,
``<y, q> = <z, R(q)> + <mean, q>``: the query is rotated once (``qrot``),
``<mean, q>`` is one number per query, and each row costs what a plain
minifloat row costs: per block, a sum of look-ups, then one multiplication.

For 1-, 2- and 4-bit codes the look-up table is indexed by (byte position,
byte value) and holds the sum of the byte's 8, 4 or 2 products with the
query, so a row is one read and add per byte. Blocks of 16 or 32 values
always end on a byte boundary (16 * bits is a multiple of 8). Wider codes
look their level up and multiply. Sums are float64 in one fixed order per
row, so a row scores identically however it is reached (search, verify).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from minifloat_store._encoding_kernels import decode_one, levels_row
from minifloat_store._score_kernels import BLOCK_ROWS, heap_offer, lut_sum8

LUT_BITS = (1, 2, 4)


@njit(cache=True)
def query_lut(qrot, bits, table64, lut):
    """Fill ``lut`` (float64, (code_bytes, 256)) for 1/2/4-bit codes: per byte, the sum of its levels * q."""
    d = qrot.shape[0]
    per = 8 // bits
    mask = (1 << bits) - 1
    for k in range(lut.shape[0]):
        for byte in range(256):
            acc = 0.0
            for t in range(per):
                j = k * per + t
                if j < d:
                    acc += table64[(byte >> (t * bits)) & mask] * qrot[j]
            lut[k, byte] = acc


@njit(cache=True, inline="always")
def _lut_sum8_blocks(code_row, lut, n, fb, shift):
    """``sum(lut[k, code_row[k]] * fb[k >> shift])`` for k < n, eight accumulators: each byte's
    products times the factor of its block (2**shift bytes per block)."""
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    a4 = 0.0
    a5 = 0.0
    a6 = 0.0
    a7 = 0.0
    k = 0
    while k + 8 <= n:
        a0 += lut[k, code_row[k]] * fb[k >> shift]
        a1 += lut[k + 1, code_row[k + 1]] * fb[(k + 1) >> shift]
        a2 += lut[k + 2, code_row[k + 2]] * fb[(k + 2) >> shift]
        a3 += lut[k + 3, code_row[k + 3]] * fb[(k + 3) >> shift]
        a4 += lut[k + 4, code_row[k + 4]] * fb[(k + 4) >> shift]
        a5 += lut[k + 5, code_row[k + 5]] * fb[(k + 5) >> shift]
        a6 += lut[k + 6, code_row[k + 6]] * fb[(k + 6) >> shift]
        a7 += lut[k + 7, code_row[k + 7]] * fb[(k + 7) >> shift]
        k += 8
    while k < n:
        a0 += lut[k, code_row[k]] * fb[k >> shift]
        k += 1
    return ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))


@njit(cache=True, inline="always")
def _level_sum(z, qrot, lo, hi):
    """``sum(z[j] * qrot[j])`` for j in [lo, hi), four accumulators (z float32 levels)."""
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    j = lo
    while j + 4 <= hi:
        a0 += np.float64(z[j]) * qrot[j]
        a1 += np.float64(z[j + 1]) * qrot[j + 1]
        a2 += np.float64(z[j + 2]) * qrot[j + 2]
        a3 += np.float64(z[j + 3]) * qrot[j + 3]
        j += 4
    while j < hi:
        a0 += np.float64(z[j]) * qrot[j]
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, inline="always")
def row_dot(code_row, block_row, row_factor, bits, table, lut, qrot, block, block_table, cbuf, z, fb):
    """``<z, qrot>`` for one stored row (see the module docstring); ``block`` 0 means no block scales.

    ``table`` is the float32 level table (unused for fp32), ``lut`` the
    :func:`query_lut` table for 1/2/4-bit codes, ``block_table`` the float64
    factor of each block-scale code; ``cbuf`` (int64) and ``z`` (float32) are
    (d,) scratch for wider codes, ``fb`` (float64, (n_blocks,)) for the block factors.
    """
    d = qrot.shape[0]
    use_lut = bits == 1 or bits == 2 or bits == 4
    if not use_lut:
        levels_row(code_row, bits, table, cbuf, z)
    if block == 0:
        if use_lut:
            total = lut_sum8(code_row, lut, code_row.shape[0], 0.0)
        else:
            total = _level_sum(z, qrot, 0, d)
    elif use_lut:
        # Blocks of 16 or 32 codes of 1, 2 or 4 bits are 2**shift whole bytes.
        shift = 0
        while (1 << shift) < block * bits // 8:
            shift += 1
        for b in range(block_row.shape[0]):
            fb[b] = block_table[block_row[b]]
        total = _lut_sum8_blocks(code_row, lut, code_row.shape[0], fb, shift)
    else:
        total = 0.0
        for b in range(block_row.shape[0]):
            part = _level_sum(z, qrot, b * block, min(d, (b + 1) * block))
            total += part * block_table[block_row[b]]
    return total * row_factor


#: How a row's factor comes from its stored scale: none (1), the study's divisor (1 / s), a multiplier (s).
FACTOR_ONE, FACTOR_DIVIDE, FACTOR_MULTIPLY = 0, 1, 2


@njit(cache=True, inline="always")
def factor_of(scales, factor_mode, i):
    """float64 factor of row i from its float32 scale (no per-row array of factors is built)."""
    if factor_mode == FACTOR_DIVIDE:
        return 1.0 / np.float64(scales[i])
    if factor_mode == FACTOR_MULTIPLY:
        return np.float64(scales[i])
    return 1.0


@njit(cache=True, inline="always")
def _cosine(dot, norm):
    if norm == 0.0:
        return 0.0
    return min(max(dot / norm, -1.0), 1.0)


@njit(cache=True, parallel=True)
def scan_topk(codes, block_scales, scales, factor_mode, bits, table, lut, qrot, mean_dot, block, block_table,
              norms, skip, k, out_s, out_r, out_n):  # fmt: skip
    """Cosine of every non-skipped row with one query; best ``k`` per block of rows (unsorted).

    Exact with float64 ``norms``; with the float32 norms a search index holds,
    within ``2**-23`` of exact (``encoded_fast_scan.NORM32_ERR``).
    """
    n = codes.shape[0]
    d = qrot.shape[0]
    for blk in prange(out_n.shape[0]):
        cbuf = np.empty(d, np.int64)
        z = np.empty(d, np.float32)
        fb = np.empty(max(1, block_scales.shape[1]), np.float64)
        hs = out_s[blk]
        hr = out_r[blk]
        count = 0
        for i in range(blk * BLOCK_ROWS, min(n, (blk + 1) * BLOCK_ROWS)):
            if skip[i]:
                continue
            f = factor_of(scales, factor_mode, i)
            dot = row_dot(codes[i], block_scales[i], f, bits, table, lut, qrot, block, block_table, cbuf, z, fb)
            s = _cosine(dot + mean_dot, norms[i])
            if count == k and s < hs[0]:
                continue
            count = heap_offer(hs, hr, count, k, s, np.int64(i))
        out_n[blk] = count


@njit(cache=True)
def score_rows(codes, block_scales, scales, factor_mode, bits, table, lut, qrot, mean_dot, block, block_table, norms,
               rows, count, out):  # fmt: skip
    """Exact cosine of one query with ``rows[:count]`` into ``out[:count]``; ``norms[p]`` is row ``rows[p]``'s."""
    d = qrot.shape[0]
    cbuf = np.empty(d, np.int64)
    z = np.empty(d, np.float32)
    fb = np.empty(max(1, block_scales.shape[1]), np.float64)
    for p in range(count):
        i = rows[p]
        f = factor_of(scales, factor_mode, i)
        dot = row_dot(codes[i], block_scales[i], f, bits, table, lut, qrot, block, block_table, cbuf, z, fb)
        out[p] = _cosine(dot + mean_dot, norms[p])


@njit(cache=True)
def offer_chunk(sims, row0, skip, heap_s, heap_r, counts):
    """Offer approximate cosines ``sims`` (float32, (q, c)) of rows ``row0 ..`` to each query's heap."""
    cap = heap_s.shape[1]
    for t in range(sims.shape[0]):
        hs = heap_s[t]
        hr = heap_r[t]
        count = counts[t]
        thr = hs[0] if count == cap else -np.inf
        for p in range(sims.shape[1]):
            v = np.float64(sims[t, p])
            if v < thr:
                continue
            i = row0 + p
            if skip[i]:
                continue
            count = heap_offer(hs, hr, count, cap, v, np.int64(i))
            if count == cap:
                thr = hs[0]
        counts[t] = count


@njit(cache=True, parallel=True)
def row_norms(decoded, out):
    """float64 L2 norm of each float32 row of ``decoded`` into ``out``."""
    for i in prange(decoded.shape[0]):
        acc = 0.0
        for j in range(decoded.shape[1]):
            v = np.float64(decoded[i, j])
            acc += v * v
        out[i] = np.sqrt(acc)


@njit(cache=True)
def decoded_norms(codes, bits, table, scale_mode, divides, scales, block, block_scales, e4m3_table,
                  mean, centre, rotate, s1, s2, p, norm, rows, buf, out):  # fmt: skip
    """float64 norm of decoded row ``rows[k]`` into ``out[k]``, one row at a time (no threads to wake
    for a few candidates); ``buf`` (float32, (d,)) is scratch. Same values as ``row_norms`` of
    ``decode_rows``' output: the same ``decode_one``, the same summation order."""
    cbuf = np.empty(buf.shape[0], np.int64)
    for k in range(rows.shape[0]):
        i = rows[k]
        decode_one(codes[i], bits, table, scale_mode, divides, scales[i], block, block_scales[i], e4m3_table,
                   mean, centre, rotate, s1, s2, p, norm, cbuf, buf)  # fmt: skip
        acc = 0.0
        for j in range(buf.shape[0]):
            v = np.float64(buf[j])
            acc += v * v
        out[k] = np.sqrt(acc)


@njit(cache=True, parallel=True)
def row_dots(a, b, out):
    """float64 dot product of float32 rows ``a[i]`` and ``b[i]`` into ``out[i]``."""
    for i in prange(a.shape[0]):
        acc = 0.0
        for j in range(a.shape[1]):
            acc += np.float64(a[i, j]) * np.float64(b[i, j])
        out[i] = acc


@njit(cache=True)
def split_special(norms, skip, mean_norm, skip_out, special_out):
    """Sort rows into skipped, special and scored in one pass over the norms (``encoded_scoring.special_mask``).

    A row not in ``skip`` is special when its norm is above 1e30, in (0, 1e-20),
    or below ``mean_norm / 4`` (``4 * norm < mean_norm``; pass 0 when the
    encoding does not centre), or NaN. ``skip_out`` = skip or special; the special rows
    go to ``special_out`` in order. Returns (special count, rows scored, the
    smallest nonzero norm among them, inf if none).
    """
    count = 0
    n_valid = 0
    low = np.inf
    for i in range(norms.shape[0]):
        v = norms[i]
        s = skip[i]
        if not s:
            # A NaN norm (a NaN code: a damaged row, never from encode) is special too:
            # scored from decode, as for packed minifloats, so every method agrees.
            if v != v or v > 1e30 or (v < 1e-20 and v > 0.0) or 4 * v < mean_norm:
                special_out[count] = i
                count += 1
                s = True
            else:
                n_valid += 1
                if v > 0.0:
                    low = min(low, v)
        skip_out[i] = s
    return count, n_valid, low
