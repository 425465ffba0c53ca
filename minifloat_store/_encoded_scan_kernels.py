"""numba kernel for the approximate pass of search on 4-bit :class:`~minifloat_store.Encoding` rows (AVX2).

Private module; ``encoded_scoring.py`` builds the tables and states the error
bound. A stored row is ``z_j = level(code_j) * f_b * f`` in the transformed
space (``f_b`` its block's factor, ``f`` the row's), and the exact score is
``(<z, R(q)> + <mean, q>) / |y|`` with ``|y|`` the decoded norm (float32,
from the search index). Here each 16-entry codebook is written as one or
two int8 tables times a step (``level ~= step_0 * A + step_1 * B``), the
rotated query is rounded to int8, and the nibble kernels of
``_scan_kernels`` give integer dot products per 32-byte chunk: whole rows at once without block scales,
with them four int32 sums per chunk (8 bytes each, added in the vector
registers), one per block of 16 values or two per block of 32, each block
weighed by its factor in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from minifloat_store._encoded_score_kernels import factor_of
from minifloat_store._scan_kernels import (
    FINE_RATIO,
    SUB_ROWS,
    _take,
    row_dot32,
    row_dot32_fine,
    row_pairs32,
    row_pairs32_fine,
)


@njit(cache=True, inline="always")
def _tail(row, qlo, qhi, tabs, fine, t, j):
    """Integer product of code byte ``j`` with int8 query ``t`` (bytes after the last whole chunk)."""
    b = row[j]
    lo = np.int32(qlo[t, j])
    hi = np.int32(qhi[t, j])
    v = np.int32(tabs[0, b & 0xF]) * lo + np.int32(tabs[0, b >> 4]) * hi
    if fine:
        v = FINE_RATIO * v + np.int32(tabs[1, b & 0xF]) * lo + np.int32(tabs[1, b >> 4]) * hi
    return v


@njit(cache=True, inline="always")
def enc4_dot(row, block_row, qlo, qhi, tabs, fine, t, block_table, pairs_per_block, sums):
    """``sum_b f_b <L[codes in b], q_int>`` (float64) of one 4-bit row with int8 query ``t``.

    ``L = A`` (``tabs[0]``), or ``FINE_RATIO * A + B`` with ``fine``: integer
    levels. ``pairs_per_block``: 8-byte groups per block (1: blocks of 16
    values, 2: of 32); without block scales (``block_row`` empty) the row is
    summed at once. ``sums`` (int32, (4 * ceil(bytes / 32),)) is scratch:
    the kernel's integer sums per 8 bytes, exact (|sum| < 2**24).
    """
    nb = row.shape[0]
    full = nb // 32
    addr = row.ctypes.data
    ql = qlo[t].ctypes.data
    qh = qhi[t].ctypes.data
    ta = tabs[0].ctypes.data
    tb = tabs[1].ctypes.data
    n_blocks = block_row.shape[0]
    if n_blocks == 0:
        dot = row_dot32_fine(addr, ql, qh, ta, tb, full) if fine else row_dot32(addr, ql, qh, ta, full)
        for j in range(32 * full, nb):
            dot += _tail(row, qlo, qhi, tabs, fine, t, j)
        return np.float64(dot)
    if fine:
        row_pairs32_fine(addr, ql, qh, ta, tb, full, sums.ctypes.data)
    else:
        row_pairs32(addr, ql, qh, ta, full, sums.ctypes.data)
    for g in range(4 * full, sums.shape[0]):
        sums[g] = 0
    for j in range(32 * full, nb):
        sums[j >> 3] += _tail(row, qlo, qhi, tabs, fine, t, j)
    total = 0.0
    if pairs_per_block == 1:
        for b in range(n_blocks):
            total += block_table[block_row[b]] * np.float64(sums[b])
    else:
        for b in range(n_blocks):
            total += block_table[block_row[b]] * np.float64(sums[2 * b] + sums[2 * b + 1])
    return total


@njit(cache=True, inline="always")
def _row_terms(scales, factor_mode, norm, i):
    """(f / norm, 1 / norm) of row i in float64: f the row's factor; zeros for a zero row."""
    if norm <= 0.0:
        return 0.0, 0.0
    nrm = np.float64(norm)
    return factor_of(scales, factor_mode, i) / nrm, 1.0 / nrm


@njit(cache=True, parallel=True)
def scan_pool_enc4(codes, block_scales, scales, factor_mode, norms, tabs, fine, block_table, pairs, qlo, qhi,
                   q_step, mean_dot, skip, k, margin2, heap_s, heap_r, pool_s, pool_r, state, overflow,
                   block_rows):  # fmt: skip
    """Approximate cosines of every 4-bit encoded row with every query; per row block, a candidate pool.

    ``tabs`` (2, 32) int8: the integer levels A (and B with ``fine``) of the
    16 codes, each twice; ``scales`` (n,) float32 (any shape with
    FACTOR_ONE) and ``norms`` (n,) float32: the row's stored scale and
    decoded norm (rounded to float32, as a search index holds it);
    ``block_table`` float64: the factor of each block-scale code;
    ``qlo``/``qhi`` from ``int8_queries``; ``q_step`` (Q,) float64: the level
    step over the query's S; ``mean_dot`` (Q,) float64. Score =
    ``clip((f * dot * q_step + mean_dot) / norm)``, rounded to float32 (0 for a
    zero row). Heaps and pools as in ``_scan_kernels.scan_pool``.
    """
    n = codes.shape[0]
    n_sums = 4 * ((codes.shape[1] + 31) // 32)
    for blk in prange(heap_s.shape[0]):
        buf = np.empty(SUB_ROWS, np.float32)
        f_n = np.empty(SUB_ROWS, np.float64)
        i_n = np.empty(SUB_ROWS, np.float64)
        sums = np.empty(n_sums, np.int32)
        r_end = min(n, (blk + 1) * block_rows)
        for a in range(blk * block_rows, r_end, SUB_ROWS):
            m = min(r_end, a + SUB_ROWS) - a
            for p in range(m):
                f_n[p], i_n[p] = _row_terms(scales, factor_mode, norms[a + p], a + p)
            for t in range(qlo.shape[0]):
                for p in range(m):
                    i = a + p
                    dot = enc4_dot(codes[i], block_scales[i], qlo, qhi, tabs, fine, t, block_table, pairs, sums)
                    s = dot * q_step[t] * f_n[p] + mean_dot[t] * i_n[p]
                    buf[p] = np.float32(min(max(s, -1.0), 1.0))
                _take(buf[:m], a, skip, k, margin2, heap_s[blk, t], heap_r[blk, t],
                      pool_s[blk, t], pool_r[blk, t], state[blk, t], overflow[blk, t:])  # fmt: skip


@njit(cache=True, parallel=True)
def approx_all_enc4(codes, block_scales, scales, factor_mode, norms, tabs, fine, block_table, pairs, qlo, qhi,
                    q_step, mean_dot, out):  # fmt: skip
    """``out[t, i]``: the score ``scan_pool_enc4`` gives row i for query t (float32); for tests of the bound."""
    n_sums = 4 * ((codes.shape[1] + 31) // 32)
    for i in prange(codes.shape[0]):
        sums = np.empty(n_sums, np.int32)
        f_n, i_n = _row_terms(scales, factor_mode, norms[i], i)
        for t in range(qlo.shape[0]):
            dot = enc4_dot(codes[i], block_scales[i], qlo, qhi, tabs, fine, t, block_table, pairs, sums)
            s = dot * q_step[t] * f_n + mean_dot[t] * i_n
            out[t, i] = np.float32(min(max(s, -1.0), 1.0))
