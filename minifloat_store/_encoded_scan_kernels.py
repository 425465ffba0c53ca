"""numba kernels for the approximate pass of search on 4-bit :class:`~minifloat_store.Encoding` rows (AVX2).

Private module; ``encoded_fast_scan.py`` builds the tables and states the error
bound. A stored row is ``z_j = level(code_j) * f_b * f`` in the transformed
space (``f_b`` its block's factor, ``f`` the row's), and the exact score is
``(<z, R(q)> + <mean, q>) / |y|`` with ``|y|`` the decoded norm (float32,
from the search index). Here each 16-entry codebook is written as one or
two int8 tables times a step (``level ~= step_0 * A + step_1 * B``), the
rotated query is rounded to int8, and one AVX2 pass per row gives the integer
dot product per 32-byte chunk: whole rows summed in int32 without block
scales; with them, per chunk, four int32 sums of 8 bytes (one per block of 16
values, or two per block of 32) converted to float64, each multiplied by its
block's factor (exactly: an int32 times a power of two or an E4M3 value
needs at most 28 significant bits) and added into four float64 lanes. No
per-block scalar work and no store to memory until the row's result. For a
batch, the group kernels serve ``GROUP`` queries per pass over a row.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from minifloat_store._encoded_score_kernels import factor_of
from minifloat_store._scan_kernels import SUB_ROWS, _Avx2, _take

#: The two-table kernels return ``FINE_RATIO * dot(A) + dot(B)``: B counts steps FINE_RATIO times finer.
FINE_RATIO = 126


def _enc_codegen(pairs: int, fine: bool, group: int = 1):
    """LLVM for a whole 4-bit row of an encoding: a loop over 32-byte chunks.

    ``pairs`` 0: returns the int32 dot product with the int8 query. 1 or 2
    (8-byte groups per block: blocks of 16 or 32 values): returns the float64
    ``sum_b f_b * dot_b``, ``f_b = ftab[blk[b]]`` (``blk``: the row's block
    codes, uint8; ``ftab``: float64 factor per code). Per chunk, ``vpshufb``
    looks the 64 nibbles up; ``vpsignb``/``vpabsb`` move the signs onto the
    query; ``vpmaddubsw`` gives int16 pair products, low and high nibbles are
    added in int16 (each at most 2 * 63 * 127, the sum at most 32004: no
    overflow), and ``vpmaddwd`` widens to int32 lanes of 4 bytes, weighing
    the coarse table by ``FINE_RATIO`` with ``fine`` (no int32 multiply).

    ``group`` > 1: the same for ``group`` queries at once, ``q_stride`` bytes
    apart in ``qlo``/``qhi``; each chunk's codes are loaded, looked up and
    (with block scales) their factors decoded once for all of them, and the
    ``group`` results are stored as float64 at ``out_addr`` (nothing returned).
    """

    def codegen(context, builder, signature, args):
        from numba.core import cgutils

        v = _Avx2(builder)
        b = builder
        codes_addr, qlo_addr, qhi_addr, tab_addr, fine_addr, n_chunks, blk_addr, ftab_addr = args[:8]
        # Byte offset of each query of the group from the first (args[8]: the queries' stride).
        shifts = [b.mul(args[8], ir.Constant(args[8].type, g)) for g in range(group)] if group > 1 else []
        ones = ir.Constant(v.v16i16, [1] * 16)
        ratio = ir.Constant(v.v16i16, [FINE_RATIO] * 16)
        tab = v.load(tab_addr)
        tab_fine = v.load(fine_addr) if fine else None
        v4f64 = ir.VectorType(ir.DoubleType(), 4)
        v4i32 = ir.VectorType(ir.IntType(32), 4)

        def looked_up(c, t):
            """The chunk's values in table t and their magnitudes: shared by every query of the group."""
            vl, vh = v.values(c, t)
            return vl, vh, v.abs(vl), v.abs(vh)

        def pair16(vals, ql, qh):
            vl, vh, al, ah = vals
            lo = b.call(v.maddubs, [al, b.call(v.psign, [ql, vl])])
            hi = b.call(v.maddubs, [ah, b.call(v.psign, [qh, vh])])
            return b.add(lo, hi)

        i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
        v4i64 = ir.VectorType(i64, 4)

        v2f64, v2i32, v2i64 = ir.VectorType(ir.DoubleType(), 2), ir.VectorType(i32, 2), ir.VectorType(i64, 2)
        lanes = 2 if pairs == 2 else 4  # blocks per chunk

        def splat(ty, x):
            return ir.Constant(ty, [x] * ty.count)

        def factors(chunk):
            """float64 factors of the chunk's blocks, decoded from their codes' bits (no table look-up).

            E8M0 (blocks of 32): ``2**(c - 127)``, the float64 with exponent
            field ``c + 896``. E4M3 (blocks of 16): a normal code is the float64
            with exponent field ``(c >> 3) + 1016`` and the three mantissa bits
            on top, ``(c + 8128) << 49``; a subnormal one (c < 8) ``c * 2**-9``.
            Codes no encoder writes (E8M0 0xFF, E4M3 >= 0x7F) cannot reach here:
            building an ``Encoded`` rejects them.
            """
            off = b.mul(chunk, ir.Constant(chunk.type, lanes))
            ld = b.load(b.inttoptr(b.add(blk_addr, off), ir.VectorType(i8, lanes).as_pointer()))
            ld.align = 1
            if pairs == 2:
                return b.bitcast(b.shl(b.add(b.zext(ld, v2i64), splat(v2i64, 896)), splat(v2i64, 52)), v2f64)
            c64 = b.zext(ld, v4i64)
            normal = b.bitcast(b.shl(b.add(c64, splat(v4i64, 8128)), splat(v4i64, 49)), v4f64)
            sub = b.fmul(b.sitofp(b.zext(ld, v4i32), v4f64), splat(v4f64, 2.0**-9))
            return b.select(b.icmp_unsigned("<", c64, splat(v4i64, 8)), sub, normal)

        def groups(d):
            """float64 sums of the chunk's blocks: lane i of ``d`` holds bytes 4i .. 4i + 3."""
            even = b.shuffle_vector(d, d, ir.Constant(v4i32, [0, 2, 4, 6]))
            odd = b.shuffle_vector(d, d, ir.Constant(v4i32, [1, 3, 5, 7]))
            g = b.add(even, odd)  # 8-byte group j: a block of 16 values, or half a block of 32
            if pairs == 2:
                g = b.add(b.shuffle_vector(g, g, ir.Constant(v2i32, [0, 2])),
                          b.shuffle_vector(g, g, ir.Constant(v2i32, [1, 3])))  # fmt: skip
                return b.sitofp(g, v2f64)
            return b.sitofp(g, v4f64)

        zero_f = ir.Constant(v2f64 if pairs == 2 else v4f64, [0.0] * lanes)
        accs = [cgutils.alloca_once_value(b, v.zero if pairs == 0 else zero_f) for _ in range(group)]

        with cgutils.for_range(b, n_chunks) as loop:
            off = b.mul(loop.index, ir.Constant(loop.index.type, 32))
            c = v.load(b.add(codes_addr, off))
            coarse = looked_up(c, tab)
            fine_vals = looked_up(c, tab_fine) if fine else None
            f = factors(loop.index) if pairs else None
            for g, acc in enumerate(accs):
                q_off = b.add(off, shifts[g]) if g else off
                ql = v.load(b.add(qlo_addr, q_off))
                qh = v.load(b.add(qhi_addr, q_off))
                if fine:
                    d = b.add(b.call(v.maddwd, [pair16(coarse, ql, qh), ratio]),
                              b.call(v.maddwd, [pair16(fine_vals, ql, qh), ones]))  # fmt: skip
                else:
                    d = b.call(v.maddwd, [pair16(coarse, ql, qh), ones])
                if pairs == 0:
                    b.store(b.add(b.load(acc), d), acc)
                else:
                    b.store(b.fadd(b.load(acc), b.fmul(groups(d), f)), acc)

        def result(acc):
            if pairs == 0:
                return b.call(v.reduce, [b.load(acc)])
            a = b.load(acc)
            lane = [b.extract_element(a, ir.Constant(i32, j)) for j in range(lanes)]
            if lanes == 4:
                return b.fadd(b.fadd(lane[0], lane[1]), b.fadd(lane[2], lane[3]))
            return b.fadd(lane[0], lane[1])

        if group == 1:
            return result(accs[0])
        out = b.inttoptr(args[9], ir.DoubleType().as_pointer())
        for g, acc in enumerate(accs):
            r = result(acc)
            b.store(b.sitofp(r, ir.DoubleType()) if pairs == 0 else r, b.gep(out, [ir.Constant(i64, g)]))
        return context.get_dummy_value()

    return codegen


_ARGS = (types.uintp, types.uintp, types.uintp, types.uintp, types.uintp, types.intp, types.uintp, types.uintp)


def _kernel(pairs: int, fine: bool):
    ret = types.int32 if pairs == 0 else types.float64

    def typer(typingctx, codes_addr, qlo_addr, qhi_addr, tab_addr, fine_addr, n_chunks, blk_addr, ftab_addr):
        return ret(*_ARGS), _enc_codegen(pairs, fine)

    return intrinsic(typer)


# (codes, qlo, qhi, tab A, tab B, chunks, block codes, factor table) addresses -> int32 dot or float64 weighed sum.
_dot = _kernel(0, False)
_dot_fine = _kernel(0, True)
_blocks16 = _kernel(1, False)
_blocks16_fine = _kernel(1, True)
_blocks32 = _kernel(2, False)
_blocks32_fine = _kernel(2, True)

#: Queries one call of the group kernels serves.
GROUP = 4
#: Batches of at least this many queries take the group kernels (smaller ones: one query at a time).
GROUP_FROM = 4


def _group_kernel(pairs: int, fine: bool):
    def typer(typingctx, codes_addr, qlo_addr, qhi_addr, tab_addr, fine_addr, n_chunks, blk_addr, ftab_addr,
              q_stride, out_addr):  # fmt: skip
        return types.void(*_ARGS, types.uintp, types.uintp), _enc_codegen(pairs, fine, GROUP)

    return intrinsic(typer)


# The same for GROUP queries (``q_stride`` bytes apart), their float64 results stored at ``out_addr``.
_g_dot = _group_kernel(0, False)
_g_dot_fine = _group_kernel(0, True)
_g_blocks16 = _group_kernel(1, False)
_g_blocks16_fine = _group_kernel(1, True)
_g_blocks32 = _group_kernel(2, False)
_g_blocks32_fine = _group_kernel(2, True)


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
def enc4_dot(row, block_row, qlo, qhi, tabs, fine, t, block_table, pairs):
    """``sum_b f_b <L[codes in b], q_int>`` (float64) of one 4-bit row with int8 query ``t``.

    ``L = A`` (``tabs[0]``), or ``FINE_RATIO * A + B`` with ``fine``: integer
    levels. ``pairs``: 8-byte groups per block (1: blocks of 16 values, 2: of
    32; 0: no block scales, the row summed at once in int32, exact as
    |L q_int| <= 8001 * 127 per value and d <= 2048). ``block_row``: the
    row's block codes (uint8), ``block_table`` (float64) their factors.
    """
    nb = row.shape[0]
    full = nb // 32
    a = row.ctypes.data
    ql = qlo[t].ctypes.data
    qh = qhi[t].ctypes.data
    ta = tabs[0].ctypes.data
    tb = tabs[1].ctypes.data
    bl = block_row.ctypes.data
    ft = block_table.ctypes.data
    if pairs == 0:
        dot = _dot_fine(a, ql, qh, ta, tb, full, bl, ft) if fine else _dot(a, ql, qh, ta, tb, full, bl, ft)
        chunks = np.float64(dot)
    elif pairs == 1:
        chunks = _blocks16_fine(a, ql, qh, ta, tb, full, bl, ft) if fine else _blocks16(a, ql, qh, ta, tb, full, bl, ft)
    else:
        chunks = _blocks32_fine(a, ql, qh, ta, tb, full, bl, ft) if fine else _blocks32(a, ql, qh, ta, tb, full, bl, ft)
    return _with_tail(row, block_row, qlo, qhi, tabs, fine, t, block_table, pairs, chunks)


@njit(cache=True, inline="always")
def _with_tail(row, block_row, qlo, qhi, tabs, fine, t, block_table, pairs, chunks):
    """``chunks`` (float64: the whole 32-byte chunks' sum for query t) plus the bytes after them.

    Without block scales (``pairs`` 0) the whole row is one int32 sum: the
    tail's int32 products are added to it before the conversion to float64.
    With them, each block in the tail gets its own int32 sum times its factor.
    """
    nb = row.shape[0]
    j = 32 * (nb // 32)
    if j == nb:
        return chunks
    if pairs == 0:
        dot = np.int32(chunks)
        for jj in range(j, nb):
            dot += _tail(row, qlo, qhi, tabs, fine, t, jj)
        return np.float64(dot)
    total = chunks
    group = 8 * pairs  # code bytes per block
    while j < nb:
        blk = j // group
        end = min(nb, (blk + 1) * group)
        s = np.int32(0)
        for jj in range(j, end):
            s += _tail(row, qlo, qhi, tabs, fine, t, jj)
        total += block_table[block_row[blk]] * np.float64(s)
        j = end
    return total


@njit(cache=True, inline="always")
def enc4_dot_group(row, block_row, qlo, qhi, tabs, fine, t0, block_table, pairs, out):
    """``enc4_dot`` of one row with queries ``t0 .. t0 + GROUP - 1`` into ``out`` (GROUP,) float64.

    The results are those ``enc4_dot`` gives, bit for bit: the same integer
    sums, weighed and added in the same order. ``qlo`` and ``qhi`` have one
    shape (``int8_queries`` makes both), so one row stride serves both;
    ``t0 + GROUP`` is at most their number of rows (``scan_pool_enc4`` groups
    only whole sets of GROUP queries).
    """
    nb = row.shape[0]
    full = nb // 32
    a = row.ctypes.data
    ql = qlo[t0].ctypes.data
    qh = qhi[t0].ctypes.data
    ta = tabs[0].ctypes.data
    tb = tabs[1].ctypes.data
    bl = block_row.ctypes.data
    ft = block_table.ctypes.data
    stride = qlo.strides[0]
    o = out.ctypes.data
    if pairs == 0:
        if fine:
            _g_dot_fine(a, ql, qh, ta, tb, full, bl, ft, stride, o)
        else:
            _g_dot(a, ql, qh, ta, tb, full, bl, ft, stride, o)
    elif pairs == 1:
        if fine:
            _g_blocks16_fine(a, ql, qh, ta, tb, full, bl, ft, stride, o)
        else:
            _g_blocks16(a, ql, qh, ta, tb, full, bl, ft, stride, o)
    elif fine:
        _g_blocks32_fine(a, ql, qh, ta, tb, full, bl, ft, stride, o)
    else:
        _g_blocks32(a, ql, qh, ta, tb, full, bl, ft, stride, o)
    if 32 * full != nb:
        for g in range(GROUP):
            out[g] = _with_tail(row, block_row, qlo, qhi, tabs, fine, t0 + g, block_table, pairs, out[g])


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
    grouped = qlo.shape[0] - qlo.shape[0] % GROUP if qlo.shape[0] >= GROUP_FROM else 0
    for blk in prange(heap_s.shape[0]):
        buf = np.empty(SUB_ROWS, np.float32)
        f_n = np.empty(SUB_ROWS, np.float64)
        i_n = np.empty(SUB_ROWS, np.float64)
        gbuf = np.empty((GROUP, SUB_ROWS), np.float32)
        dots = np.empty(GROUP, np.float64)
        r_end = min(n, (blk + 1) * block_rows)
        for a in range(blk * block_rows, r_end, SUB_ROWS):
            m = min(r_end, a + SUB_ROWS) - a
            for p in range(m):
                f_n[p], i_n[p] = _row_terms(scales, factor_mode, norms[a + p], a + p)
            for t0 in range(0, grouped, GROUP):  # GROUP queries per pass over the rows
                for p in range(m):
                    i = a + p
                    enc4_dot_group(codes[i], block_scales[i], qlo, qhi, tabs, fine, t0, block_table, pairs, dots)
                    for g in range(GROUP):
                        s = dots[g] * q_step[t0 + g] * f_n[p] + mean_dot[t0 + g] * i_n[p]
                        gbuf[g, p] = np.float32(min(max(s, -1.0), 1.0))
                for g in range(GROUP):
                    t = t0 + g
                    _take(gbuf[g, :m], a, skip, k, margin2, heap_s[blk, t], heap_r[blk, t],
                          pool_s[blk, t], pool_r[blk, t], state[blk, t], overflow[blk, t:])  # fmt: skip
            for t in range(grouped, qlo.shape[0]):
                for p in range(m):
                    i = a + p
                    dot = enc4_dot(codes[i], block_scales[i], qlo, qhi, tabs, fine, t, block_table, pairs)
                    s = dot * q_step[t] * f_n[p] + mean_dot[t] * i_n[p]
                    buf[p] = np.float32(min(max(s, -1.0), 1.0))
                _take(buf[:m], a, skip, k, margin2, heap_s[blk, t], heap_r[blk, t],
                      pool_s[blk, t], pool_r[blk, t], state[blk, t], overflow[blk, t:])  # fmt: skip


@njit(cache=True, parallel=True)
def approx_all_enc4(codes, block_scales, scales, factor_mode, norms, tabs, fine, block_table, pairs, qlo, qhi,
                    q_step, mean_dot, out):  # fmt: skip
    """``out[t, i]``: the score ``scan_pool_enc4`` gives row i for query t (float32); for tests of the bound."""
    for i in prange(codes.shape[0]):
        f_n, i_n = _row_terms(scales, factor_mode, norms[i], i)
        for t in range(qlo.shape[0]):
            dot = enc4_dot(codes[i], block_scales[i], qlo, qhi, tabs, fine, t, block_table, pairs)
            s = dot * q_step[t] * f_n + mean_dot[t] * i_n
            out[t, i] = np.float32(min(max(s, -1.0), 1.0))
