"""numba kernels for scoring packed vectors: norms, pair cosines, top-k search.

Private module. ``scoring.py`` validates every array (dtypes, shapes, row
indices in range, equal dims) before calling in; the kernels trust their
arguments and index only rows they are handed.

Arithmetic. A stored value is ``table[code] / s`` (float32). The kernels work
on the *raw* values ``table[code]`` and divide by the scale once per row:
``dot(a/sa, b/sb) = dot(a, b) / (sa * sb)``. A product of two raw values is
exact in float64 (at most 24 + 24 significant bits), a product with a
float64 query rounds once, and sums are float64, so apart from 2**-53-sized
rounding the only difference from the float64 cosine of the decoded float32 vectors is the
float32 rounding of ``table[code] / s`` inside ``decode``: at most 2**-23 of
``|a||b|`` on a dot product, about 1.2e-7 on a cosine (cosines are clipped to
[-1, 1], which only removes error). Rows with norms so small or large that
float32 under- or overflow could matter are scored elsewhere (see
``exact_scan._special_mask``).

A query's dot product with a row is summed in one fixed order (eight
interleaved float64 accumulators, no fast-math) by ``row_dot_query``, the
one function that every search path and ``verify`` use, so a row gets
bit-identical scores however it is reached and identical rows tie exactly.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from minifloat_store._kernels import unpack_group

# Rows per parallel work item: big enough to amortise a thread's scratch
# buffers and heap, small enough to balance two to a few dozen threads.
BLOCK_ROWS = 4096


# ---------------------------------------------------------------- raw values


@njit(cache=True)
def raw_row(code_row, nbits, table64, f, out):
    """Values ``table[code] * f`` of one packed row into ``out`` (float64 or float32, (d,)).

    fp32 codes are reinterpreted; every other width is looked up in
    ``table64`` (float64, (2**nbits,)). With ``f = 1.0`` these are the raw
    (unscaled) values, exactly; a float32 ``out`` rounds each product once.
    """
    d = out.shape[0]
    if nbits == 32:
        vals = code_row.view(np.float32)  # rows are C-contiguous, 4-byte multiples
        for j in range(d):
            out[j] = vals[j] * f
        return
    for g in range(d // 4):
        c0, c1, c2, c3 = unpack_group(code_row, g, nbits, False)
        j = 4 * g
        out[j] = table64[c0] * f
        out[j + 1] = table64[c1] * f
        out[j + 2] = table64[c2] * f
        out[j + 3] = table64[c3] * f
    if d % 4:
        g = d // 4
        c = unpack_group(code_row, g, nbits, True)
        for t in range(d % 4):
            out[4 * g + t] = table64[c[t]] * f


@njit(cache=True, inline="always")
def dot4(a, b):
    """``sum(a * b)`` over float64 vectors in the module's fixed order."""
    d = a.shape[0]
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    j = 0
    while j + 4 <= d:
        a0 += a[j] * b[j]
        a1 += a[j + 1] * b[j + 1]
        a2 += a[j + 2] * b[j + 2]
        a3 += a[j + 3] * b[j + 3]
        j += 4
    while j < d:
        a0 += a[j] * b[j]
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, inline="always")
def _clip1(c):
    # The raw-value arithmetic can overshoot +-1 by ~1e-7 (e.g. parallel
    # vectors); a cosine never does, so clipping only removes error.
    return min(max(c, -1.0), 1.0)


# ---------------------------------------------------------------- norms


@njit(cache=True)
def unit_rows(q):
    """Scale each row of ``q`` (float64, (m, d), finite) to unit L2 norm in place.

    Divides by the largest magnitude first so the norm cannot overflow; a
    zero row stays zero. A fixed summation order makes a query's unit vector
    the same whether it arrives alone or in a batch.
    """
    for t in range(q.shape[0]):
        row = q[t]
        amax = 0.0
        for j in range(row.shape[0]):
            amax = max(amax, abs(row[j]))
        if amax == 0.0:
            continue
        for j in range(row.shape[0]):
            row[j] /= amax
        nrm = np.sqrt(dot4(row, row))
        for j in range(row.shape[0]):
            row[j] /= nrm


@njit(cache=True, parallel=True)
def norms_kernel(codes, scales, rows, all_rows, nbits, table64, dim, out):
    """L2 norm of the *decoded* row ``rows[p]`` (row ``p`` if ``all_rows``) into ``out[p]`` (float64).

    Rounds each value as ``decode`` does (``table[code] / s`` in float32:
    the raw value is exact in float32), so the result is the float64 norm of
    what ``decode`` returns.
    """
    m = out.shape[0]
    n_blocks = (m + BLOCK_ROWS - 1) // BLOCK_ROWS
    for blk in prange(n_blocks):
        buf = np.empty(dim, np.float64)
        for p in range(blk * BLOCK_ROWS, min(m, (blk + 1) * BLOCK_ROWS)):
            r = p if all_rows else rows[p]
            raw_row(codes[r], nbits, table64, 1.0, buf)
            s = scales[r]
            for j in range(dim):
                buf[j] = np.float32(buf[j]) / s
            out[p] = np.sqrt(dot4(buf, buf))


# ---------------------------------------------------------------- pairs


@njit(cache=True, parallel=True)
def pairs_kernel(
    codes_a, nbits_a, table_a, scales_a, norms_a, rows_a,
    codes_b, nbits_b, table_b, scales_b, norms_b, rows_b,
    dim, out,
):  # fmt: skip
    """``out[p]`` = cosine of row ``rows_a[p]`` of a with row ``rows_b[p]`` of b.

    ``norms_*`` are the decoded norms (float64, one per row of ``codes_*``).
    A pair with a zero vector scores 0.0. Consecutive pairs with the same
    left row (a trial list grouped by enrolment) decode it once.
    """
    m = rows_a.shape[0]
    n_blocks = (m + BLOCK_ROWS - 1) // BLOCK_ROWS
    for blk in prange(n_blocks):
        va = np.empty(dim, np.float64)
        vb = np.empty(dim, np.float64)
        last = np.int64(-1)
        for p in range(blk * BLOCK_ROWS, min(m, (blk + 1) * BLOCK_ROWS)):
            ra = rows_a[p]
            rb = rows_b[p]
            den = (np.float64(scales_a[ra]) * norms_a[ra]) * (np.float64(scales_b[rb]) * norms_b[rb])
            if den == 0.0:
                out[p] = 0.0
                continue
            if ra != last:
                raw_row(codes_a[ra], nbits_a, table_a, 1.0, va)
                last = ra
            raw_row(codes_b[rb], nbits_b, table_b, 1.0, vb)
            out[p] = _clip1(dot4(va, vb) / den)


# ---------------------------------------------------------------- one query against rows
#
# A query q (float64, unit norm) meets 4-bit rows through a look-up table:
# one entry per (byte position, byte value) holding both nibbles' products,
# so a 192-value row is 96 table reads and adds. Wider codes look their value
# up in the (small) value table and multiply; a per-(position, code) table
# for 8-bit codes measured 1.5-2x slower (393 KB of it competes for L2).
# Sums run on eight accumulators: chains of dependent float64 adds, not
# loads, bound these loops.


@njit(cache=True)
def query_lut(qhat, nbits, table64, lut):
    """Fill ``lut`` (float64, (ceil(d/2), 256)) for query ``qhat`` (float64, (d,)) if nbits == 4.

    Any other width needs no table (``lut`` is ignored; pass any shape).
    """
    d = qhat.shape[0]
    if nbits == 4 and lut.shape[0] >= (d + 1) // 2:  # a smaller lut: none (large dim, see row_dot_query)
        for k in range((d + 1) // 2):
            q0 = qhat[2 * k]
            q1 = qhat[2 * k + 1] if 2 * k + 1 < d else 0.0
            for byte in range(256):
                # Two products rounded once each, then one rounded add: the
                # same arithmetic for every row, hence exact ties.
                lut[k, byte] = table64[byte & 0xF] * q0 + table64[byte >> 4] * q1


@njit(cache=True, inline="always")
def _nibble_pair(byte, k, table64, qhat):
    """``query_lut``'s entry ``lut[k, byte]``, computed the same way."""
    q1 = qhat[2 * k + 1] if 2 * k + 1 < qhat.shape[0] else 0.0
    return table64[byte & 0xF] * qhat[2 * k] + table64[byte >> 4] * q1


@njit(cache=True, inline="always")
def lut_sum8(code_row, lut, n, zero):
    """``sum(lut[k, code_row[k]])`` for k < n on eight accumulators of ``zero``'s type, combined in a
    fixed order: the sum of a 4-bit row through a per-(byte position, byte value) table."""
    a0 = zero
    a1 = zero
    a2 = zero
    a3 = zero
    a4 = zero
    a5 = zero
    a6 = zero
    a7 = zero
    k = 0
    while k + 8 <= n:
        a0 += lut[k, code_row[k]]
        a1 += lut[k + 1, code_row[k + 1]]
        a2 += lut[k + 2, code_row[k + 2]]
        a3 += lut[k + 3, code_row[k + 3]]
        a4 += lut[k + 4, code_row[k + 4]]
        a5 += lut[k + 5, code_row[k + 5]]
        a6 += lut[k + 6, code_row[k + 6]]
        a7 += lut[k + 7, code_row[k + 7]]
        k += 8
    while k < n:
        a0 += lut[k, code_row[k]]
        k += 1
    return ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))


@njit(cache=True, inline="always")
def row_dot_query(code_row, nbits, lut, table64, qhat):
    """Raw dot product ``sum(table[code_j] * qhat[j])`` of one packed row with a query."""
    d = qhat.shape[0]
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    a4 = 0.0
    a5 = 0.0
    a6 = 0.0
    a7 = 0.0
    if nbits == 6:  # four codes in three bytes; fewer accumulators fit the unpacking
        for g in range(d // 4):
            c0, c1, c2, c3 = unpack_group(code_row, g, 6, False)
            j = 4 * g
            a0 += table64[c0] * qhat[j]
            a1 += table64[c1] * qhat[j + 1]
            a2 += table64[c2] * qhat[j + 2]
            a3 += table64[c3] * qhat[j + 3]
        j = d - d % 4
        if j < d:  # 1-3 trailing codes; their bytes may stop early
            c0, c1, c2, c3 = unpack_group(code_row, j // 4, 6, True)
            a0 += table64[c0] * qhat[j]
            if j + 1 < d:
                a1 += table64[c1] * qhat[j + 1]
            if j + 2 < d:
                a2 += table64[c2] * qhat[j + 2]
        return (a0 + a1) + (a2 + a3)
    # Every other width: eight lanes over n items, then a tail into lane 0.
    n = (d + 1) // 2 if nbits == 4 else d
    k = 0
    if nbits == 4 and lut.shape[0] < n:
        # No lut (its memory would grow with dim): each lut entry computed in place, the same arithmetic.
        while k + 8 <= n:
            a0 += _nibble_pair(code_row[k], k, table64, qhat)
            a1 += _nibble_pair(code_row[k + 1], k + 1, table64, qhat)
            a2 += _nibble_pair(code_row[k + 2], k + 2, table64, qhat)
            a3 += _nibble_pair(code_row[k + 3], k + 3, table64, qhat)
            a4 += _nibble_pair(code_row[k + 4], k + 4, table64, qhat)
            a5 += _nibble_pair(code_row[k + 5], k + 5, table64, qhat)
            a6 += _nibble_pair(code_row[k + 6], k + 6, table64, qhat)
            a7 += _nibble_pair(code_row[k + 7], k + 7, table64, qhat)
            k += 8
        while k < n:
            a0 += _nibble_pair(code_row[k], k, table64, qhat)
            k += 1
    elif nbits == 4:
        # An odd dim's last byte has a zero high nibble and lut weight 0.
        return lut_sum8(code_row, lut, n, 0.0)
    elif nbits == 8 or nbits == 16:
        # Two groups of four codes per step feed the eight lanes in code order.
        while k + 8 <= n:
            c0, c1, c2, c3 = unpack_group(code_row, k // 4, nbits, False)
            c4, c5, c6, c7 = unpack_group(code_row, k // 4 + 1, nbits, False)
            a0 += table64[c0] * qhat[k]
            a1 += table64[c1] * qhat[k + 1]
            a2 += table64[c2] * qhat[k + 2]
            a3 += table64[c3] * qhat[k + 3]
            a4 += table64[c4] * qhat[k + 4]
            a5 += table64[c5] * qhat[k + 5]
            a6 += table64[c6] * qhat[k + 6]
            a7 += table64[c7] * qhat[k + 7]
            k += 8
        while k < n:
            c = unpack_group(code_row, k // 4, nbits, True)
            for t in range(min(4, n - k)):
                a0 += table64[c[t]] * qhat[k + t]
            k += 4
    else:  # nbits == 32
        vals = code_row.view(np.float32)  # rows are C-contiguous, 4-byte multiples
        while k + 8 <= n:
            a0 += np.float64(vals[k]) * qhat[k]
            a1 += np.float64(vals[k + 1]) * qhat[k + 1]
            a2 += np.float64(vals[k + 2]) * qhat[k + 2]
            a3 += np.float64(vals[k + 3]) * qhat[k + 3]
            a4 += np.float64(vals[k + 4]) * qhat[k + 4]
            a5 += np.float64(vals[k + 5]) * qhat[k + 5]
            a6 += np.float64(vals[k + 6]) * qhat[k + 6]
            a7 += np.float64(vals[k + 7]) * qhat[k + 7]
            k += 8
        while k < n:
            a0 += np.float64(vals[k]) * qhat[k]
            k += 1
    return ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))


@njit(cache=True, inline="always")
def _cosine(dot, s, norm):
    den = np.float64(s) * norm
    if den == 0.0:
        return 0.0
    return _clip1(dot / den)


# ---------------------------------------------------------------- top-k heaps
#
# A heap holds the best ``count`` (score, row) pairs seen so far with the
# *worst* at the root. "Better" is a higher score, and for equal scores a
# lower row, so the final order is descending score, ascending row.


@njit(cache=True, inline="always")
def _worse(hs, hr, i, j):
    return hs[i] < hs[j] or (hs[i] == hs[j] and hr[i] > hr[j])


@njit(cache=True)
def _sift_down(hs, hr, count, i):
    while True:
        left = 2 * i + 1
        if left >= count:
            return
        w = left
        right = left + 1
        if right < count and _worse(hs, hr, right, left):
            w = right
        if _worse(hs, hr, w, i):
            hs[i], hs[w] = hs[w], hs[i]
            hr[i], hr[w] = hr[w], hr[i]
            i = w
        else:
            return


@njit(cache=True)
def heap_offer(hs, hr, count, cap, s, r):
    """Offer (s, r) to a heap of capacity ``cap`` holding ``count`` items; return the new count."""
    if count < cap:
        i = count
        hs[i] = s
        hr[i] = r
        count += 1
        while i > 0:  # sift up
            parent = (i - 1) // 2
            if _worse(hs, hr, i, parent):
                hs[i], hs[parent] = hs[parent], hs[i]
                hr[i], hr[parent] = hr[parent], hr[i]
                i = parent
            else:
                break
        return count
    if s > hs[0] or (s == hs[0] and r < hr[0]):
        hs[0] = s
        hr[0] = r
        _sift_down(hs, hr, count, 0)
    return count


# ---------------------------------------------------------------- search: exact scan


@njit(cache=True, parallel=True)
def scan_topk(codes, nbits, table64, scales, norms, skip, qhat, lut, k, out_s, out_r, out_n):
    """Exact cosine of every non-skipped row with one query; top ``k`` per block of rows.

    Block ``b`` (rows ``b*BLOCK_ROWS`` ...) writes its best ``out_n[b]`` <= k
    (score, row) pairs, unsorted, into ``out_s[b]``, ``out_r[b]``; the caller
    merges blocks. ``lut`` must already hold ``query_lut(qhat)``.
    """
    n = codes.shape[0]
    n_blocks = out_n.shape[0]
    for blk in prange(n_blocks):
        hs = out_s[blk]
        hr = out_r[blk]
        count = 0
        for i in range(blk * BLOCK_ROWS, min(n, (blk + 1) * BLOCK_ROWS)):
            if skip[i]:
                continue
            s = _cosine(row_dot_query(codes[i], nbits, lut, table64, qhat), scales[i], norms[i])
            if count == k and s < hs[0]:
                continue  # the common case once the heap is full
            count = heap_offer(hs, hr, count, k, s, np.int64(i))
        out_n[blk] = count


@njit(cache=True)
def score_rows(codes, nbits, table64, scales, norms, qhats, lut_shape0, lut_shape1, rows, counts, out):
    """Exact cosine of query ``t`` with rows ``rows[t, :counts[t]]`` into ``out[t, :counts[t]]``.

    Serial: it scores a few dozen rows per query, between BLAS calls.
    """
    for t in range(qhats.shape[0]):
        lut = np.empty((lut_shape0, lut_shape1), np.float64)
        qhat = qhats[t]
        query_lut(qhat, nbits, table64, lut)
        for p in range(counts[t]):
            i = rows[t, p]
            out[t, p] = _cosine(row_dot_query(codes[i], nbits, lut, table64, qhat), scales[i], norms[i])


# ---------------------------------------------------------------- search: BLAS pre-selection


@njit(cache=True)
def _decode_unit_rows(codes, scales, norms, row0, p_lo, p_hi, nbits, table64, out):
    """Rows ``row0 + p`` for p in [p_lo, p_hi) to float32 unit vectors ``out[p]``.

    ``out[p] = table[code] / (s * norm)`` rounded once to float32 (zeros for
    a zero row), so a matrix product with unit queries gives approximate
    cosines directly.
    """
    for p in range(p_lo, p_hi):
        i = row0 + p
        den = np.float64(scales[i]) * norms[i]
        raw_row(codes[i], nbits, table64, 1.0 / den if den > 0.0 else 0.0, out[p])


@njit(cache=True)
def _update_query(sims_row, row0, skip, hs, hr, count):
    """Offer one query's approximate cosines of rows ``row0 ..`` to its heap; return the count."""
    cap = hs.shape[0]
    thr = hs[0] if count == cap else -np.inf
    for p in range(sims_row.shape[0]):
        v = np.float64(sims_row[p])
        # Most rows lose to a full heap: one comparison, nothing else.
        if v < thr:
            continue
        i = row0 + p
        if skip[i]:
            continue
        count = heap_offer(hs, hr, count, cap, v, np.int64(i))
        if count == cap:
            thr = hs[0]
    return count


@njit(cache=True, nogil=True)
def update_then_decode(sims, sims_row0, skip, heap_s, heap_r, counts,
                       codes, scales, norms, next_row0, next_rows, nbits, table64, out):  # fmt: skip
    """Per chunk of the BLAS path: heaps take ``sims``, then the next chunk decodes.

    ``sims`` (q, c) float32 holds the unit queries times the unit rows
    ``sims_row0 ..`` (c may be 0 before the first chunk); each query's heap
    keeps its best ``heap_s.shape[1]`` non-skipped rows. Rows ``next_row0 ..
    next_row0 + next_rows - 1`` are decoded into ``out[:next_rows]`` (see
    ``_decode_unit_rows``).

    Deliberately single-threaded: alternating numba's OpenMP pool with
    BLAS's threads every few milliseconds makes each wait for the other's
    spinning workers (measured: +9 ms per 16k-row chunk on 2 cores, more than
    this work costs serially).
    """
    if sims.shape[1] > 0:
        for t in range(sims.shape[0]):
            counts[t] = _update_query(sims[t], sims_row0, skip, heap_s[t], heap_r[t], counts[t])
    _decode_unit_rows(codes, scales, norms, next_row0, 0, next_rows, nbits, table64, out)
