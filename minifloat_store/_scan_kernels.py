"""numba kernels for the approximate pass of search: float32 table scores, a candidate pool per row block.

Private module. ``scan.py`` validates every array and builds the tables; the
kernels trust their arguments.

The approximate score of row ``i`` with a query is its approximate raw dot
product divided by its raw norm, both computed from the codes (raw values
are ``table[code]``, before the row's scale), so nothing per row is stored
beyond the payload. 4-bit rows meet the
query through a float32 table of pair sums, one entry per (byte position,
byte value), so a row of d values is d/2 table reads and adds; 6-, 8- and
16-bit rows look their value up in the float32 code table and multiply by
the float32 query. Sums run on eight float32 lanes in a fixed order; the
error of the result against the exact cosine is bounded in ``scan.py``
(``approx_error_bound``), which is what makes the rescoring exact.

A block of ``SUB_ROWS`` rows is read from memory once and scored for every
query of a small batch while it sits in L1/L2.
"""

from __future__ import annotations

import llvmlite.binding
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from minifloat_store._kernels import unpack_group
from minifloat_store._score_kernels import dot4, heap_offer, lut_sum8, raw_row

#: Rows scored for all queries of a batch before moving on (codes stay in cache).
SUB_ROWS = 256


@njit(cache=True)
def pair_lut(q64, table64, lut):
    """``lut[t, k, b]`` (float32) = ``table[b & 15] * q[t, 2k] + table[b >> 4] * q[t, 2k+1]``.

    Computed in float64 and rounded once to float32. ``q64`` is (Q, d) float64;
    ``lut`` (Q, ceil(d/2), 256) float32. An odd d's last pair has weight 0 on
    the (zero) high nibble.
    """
    d = q64.shape[1]
    for t in range(q64.shape[0]):
        for k in range((d + 1) // 2):
            q0 = q64[t, 2 * k]
            q1 = q64[t, 2 * k + 1] if 2 * k + 1 < d else 0.0
            for b in range(256):
                lut[t, k, b] = np.float32(table64[b & 0xF] * q0 + table64[b >> 4] * q1)


@njit(cache=True, inline="always")
def _dot4(code_row, lut_t):
    """Approximate raw dot of a 4-bit row: one float32 table read per byte, eight float32 lanes."""
    return lut_sum8(code_row, lut_t, lut_t.shape[0], np.float32(0.0))


@njit(cache=True, inline="always")
def _dot_table(code_row, nbits, table32, q):
    """Approximate raw dot of a 6-, 8- or 16-bit row: float32 value times float32 query, eight lanes."""
    d = q.shape[0]
    a0 = np.float32(0.0)
    a1 = np.float32(0.0)
    a2 = np.float32(0.0)
    a3 = np.float32(0.0)
    a4 = np.float32(0.0)
    a5 = np.float32(0.0)
    a6 = np.float32(0.0)
    a7 = np.float32(0.0)
    k = 0
    while k + 8 <= d:
        c0, c1, c2, c3 = unpack_group(code_row, k // 4, nbits, False)
        c4, c5, c6, c7 = unpack_group(code_row, k // 4 + 1, nbits, False)
        a0 += table32[c0] * q[k]
        a1 += table32[c1] * q[k + 1]
        a2 += table32[c2] * q[k + 2]
        a3 += table32[c3] * q[k + 3]
        a4 += table32[c4] * q[k + 4]
        a5 += table32[c5] * q[k + 5]
        a6 += table32[c6] * q[k + 6]
        a7 += table32[c7] * q[k + 7]
        k += 8
    while k < d:
        c = unpack_group(code_row, k // 4, nbits, True)
        for t in range(min(4, d - k)):
            a0 += table32[c[t]] * q[k + t]
        k += 4
    return ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))


@njit(cache=True, inline="always")
def approx_dot(code_row, nbits, lut, table32, q32, t):
    """Approximate raw dot (float32) of one row with query ``t``, on the float32 tables."""
    if nbits == 4:
        return _dot4(code_row, lut[t])
    return _dot_table(code_row, nbits, table32, q32[t])


@njit(cache=True, inline="always")
def approx_inv_norm(code_row, nbits, sq_lut, table32):
    """float32 ``1 / |raw row|`` from the codes (0 for a zero row).

    ``sq_lut`` (1, ceil(d/2), 256) float32 holds ``t[lo]**2 + t[hi]**2`` per
    byte for 4-bit rows (position-independent, but shaped like a query table
    so that ``_dot4`` sums it); other widths square ``table32``.
    """
    if nbits == 4:
        ss = _dot4(code_row, sq_lut[0])
    else:
        d = sq_lut.shape[1]
        ss = np.float32(0.0)
        for g in range(d // 4):
            c0, c1, c2, c3 = unpack_group(code_row, g, nbits, False)
            ss += (table32[c0] * table32[c0] + table32[c1] * table32[c1]) + (
                table32[c2] * table32[c2] + table32[c3] * table32[c3]
            )
        if d % 4:
            c = unpack_group(code_row, d // 4, nbits, True)
            for t in range(d % 4):
                ss += table32[c[t]] * table32[c[t]]
    return np.float32(1.0) / np.sqrt(ss) if ss > 0 else np.float32(0.0)


class _Avx2:
    """The AVX2 pieces every nibble kernel below is built from, declared once per LLVM module."""

    def __init__(self, builder):
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        self.v32i8, self.v16i16, self.v8i32 = ir.VectorType(i8, 32), ir.VectorType(i16, 16), ir.VectorType(i32, 8)
        self.builder = builder
        mod = builder.module

        def fn(name, ret, argtys):
            return mod.globals.get(name) or ir.Function(mod, ir.FunctionType(ret, argtys), name=name)

        self.pshufb = fn("llvm.x86.avx2.pshuf.b", self.v32i8, [self.v32i8, self.v32i8])
        self.psign = fn("llvm.x86.avx2.psign.b", self.v32i8, [self.v32i8, self.v32i8])
        self.pabs = fn("llvm.abs.v32i8", self.v32i8, [self.v32i8, ir.IntType(1)])
        self.maddubs = fn("llvm.x86.avx2.pmadd.ub.sw", self.v16i16, [self.v32i8, self.v32i8])
        self.maddwd = fn("llvm.x86.avx2.pmadd.wd", self.v8i32, [self.v16i16, self.v16i16])
        self.reduce = fn("llvm.vector.reduce.add.v8i32", i32, [self.v8i32])
        self.zero = ir.Constant(self.v8i32, [0] * 8)

    def load(self, addr):
        ld = self.builder.load(self.builder.inttoptr(addr, self.v32i8.as_pointer()))
        ld.align = 1
        return ld

    def values(self, c, tab):
        """The signed table values of the low and high nibbles of the 32 code bytes ``c``."""
        b = self.builder
        m15 = ir.Constant(self.v32i8, [15] * 32)
        lo = b.and_(c, m15)
        hi = b.and_(b.lshr(c, ir.Constant(self.v32i8, [4] * 32)), m15)
        return b.call(self.pshufb, [tab, lo]), b.call(self.pshufb, [tab, hi])

    def abs(self, v):
        return self.builder.call(self.pabs, [v, ir.Constant(ir.IntType(1), 0)])

    def widen(self, a, b):
        """int32 lanes of ``a * b`` (u8 x i8 bytes): lane i sums bytes 4i .. 4i + 3."""
        pairs = self.builder.call(self.maddubs, [a, b])
        return self.builder.call(self.maddwd, [pairs, ir.Constant(self.v16i16, [1] * 16)])

    def dot_lanes(self, c, ql, qh, tab):
        """int32 lanes of ``tab[lo] * ql + tab[hi] * qh`` (signs moved onto the query), with |tab[lo]|, |tab[hi]|."""
        vl, vh = self.values(c, tab)
        al, ah = self.abs(vl), self.abs(vh)
        b = self.builder
        dots = b.add(self.widen(al, b.call(self.psign, [ql, vl])), self.widen(ah, b.call(self.psign, [qh, vh])))
        return dots, al, ah


def _row_codegen(mode):
    """LLVM for a whole 4-bit row: a loop over 32-byte chunks.

    ``"dot"`` returns the int32 dot product with the int8 query (vector
    accumulator, one reduction); ``"dot_sq"`` also the sum of squared values.
    ``vpshufb`` looks 32 nibbles up in a 16-entry int8 table at once (``tab``
    holds it twice, once per 128-bit lane); ``vpsignb``/``vpabsb`` move the
    signs onto the int8 query so that ``vpmaddubsw`` multiplies and adds pairs
    into int16 (|value| <= 63 and |q| <= 127: no saturation), and ``vpmaddwd``
    widens to int32. Every address is that of readable bytes (32 per chunk).
    """

    def codegen(context, builder, signature, args):
        from numba.core import cgutils

        v = _Avx2(builder)
        codes_addr, qlo_addr, qhi_addr, tab_addr, n_chunks = args
        acc_d = cgutils.alloca_once_value(builder, v.zero)
        acc_s = cgutils.alloca_once_value(builder, v.zero)
        tab = v.load(tab_addr)
        with cgutils.for_range(builder, n_chunks) as loop:
            off = builder.mul(loop.index, ir.Constant(loop.index.type, 32))
            off = builder.zext(off, codes_addr.type) if off.type.width < codes_addr.type.width else off
            ql = v.load(builder.add(qlo_addr, off))
            qh = v.load(builder.add(qhi_addr, off))
            c = v.load(builder.add(codes_addr, off))
            d, al, ah = v.dot_lanes(c, ql, qh, tab)
            builder.store(builder.add(builder.load(acc_d), d), acc_d)
            if mode == "dot_sq":
                sq = builder.add(v.widen(al, al), v.widen(ah, ah))
                builder.store(builder.add(builder.load(acc_s), sq), acc_s)
        dot = builder.call(v.reduce, [builder.load(acc_d)])
        if mode == "dot":
            return dot
        sq = builder.call(v.reduce, [builder.load(acc_s)])
        return context.make_tuple(builder, signature.return_type, [dot, sq])

    return codegen


_ROW_ARGS = (types.uintp, types.uintp, types.uintp, types.uintp, types.intp)


@intrinsic
def row_dot32(typingctx, codes_addr, qlo_addr, qhi_addr, tab_addr, n_chunks):  # pragma: no cover - compiled
    """int32 sum over ``n_chunks`` 32-byte chunks of ``tab[b & 15] * qlo[p] + tab[b >> 4] * qhi[p]`` (AVX2)."""
    return types.int32(*_ROW_ARGS), _row_codegen("dot")


@intrinsic
def row_dot_sq32(typingctx, codes_addr, qlo_addr, qhi_addr, tab_addr, n_chunks):  # pragma: no cover - compiled
    """(``row_dot32``, the sum of squared values) in one pass over the chunks."""
    return types.UniTuple(types.int32, 2)(*_ROW_ARGS), _row_codegen("dot_sq")


# ---------------------------------------------------------------- candidate pools


@njit(cache=True)
def _compact(cs, cr, count, thr):
    """Keep the pool entries with score >= thr (order not kept); return the new count."""
    m = 0
    for p in range(count):
        if cs[p] >= thr:
            cs[m] = cs[p]
            cr[m] = cr[p]
            m += 1
    return m


@njit(cache=True)
def _take(buf, row0, skip, k, margin2, hs, hr, ps, pr, state, overflow):
    """Offer the scores ``buf`` of rows ``row0 ..`` to one query's heap and pool in one block.

    ``state`` holds (heap count, pool count). The pool takes every row whose
    score is at least the heap's current minimum minus ``margin2``; the heap
    minimum only rises, so the pool ends up holding every row within
    ``margin2`` of the block's k-th best. A pool that stays over half full
    after dropping what the risen threshold excludes sets ``overflow``.
    """
    cap = ps.shape[0]
    hn = state[0]
    pn = state[1]
    full = hn == k
    thr = hs[0] - margin2 if full else np.float32(-np.inf)
    for p in range(buf.shape[0]):
        s = buf[p]
        if s < thr:
            continue  # the common case
        i = row0 + p
        if skip[i]:
            continue
        if pn == cap:
            pn = _compact(ps, pr, pn, thr)
            if pn > cap // 2:
                overflow[0] = True
                pn = 0
        ps[pn] = s
        pr[pn] = i
        pn += 1
        if not full or s > hs[0]:
            hn = heap_offer(hs, hr, hn, k, s, np.int64(i))
            if hn == k:
                full = True
                thr = hs[0] - margin2
    state[0] = hn
    state[1] = pn


@njit(cache=True, parallel=True)
def scan_pool(codes, nbits, lut, sq_lut, table32, q32, skip, k, margin2,
              heap_s, heap_r, pool_s, pool_r, state, overflow, block_rows):  # fmt: skip
    """Approximate cosines of every row with every query (float32 tables); per row block, a candidate pool.

    Block ``b`` keeps, per query ``t``, a heap of its ``k`` best approximate
    scores (``heap_s[b, t]``, ``heap_r[b, t]``, ``state[b, t, 0]`` of them)
    and a pool (``pool_s[b, t, :state[b, t, 1]]``, rows ``pool_r``, see
    ``_take``); ``overflow[b, t]`` marks an incomplete pool. A row's norm is
    computed once per block of ``SUB_ROWS`` rows, for all queries.
    """
    n = codes.shape[0]
    for blk in prange(heap_s.shape[0]):
        buf = np.empty(SUB_ROWS, np.float32)
        inv = np.empty(SUB_ROWS, np.float32)
        r_end = min(n, (blk + 1) * block_rows)
        for a in range(blk * block_rows, r_end, SUB_ROWS):
            m = min(r_end, a + SUB_ROWS) - a
            for p in range(m):
                inv[p] = approx_inv_norm(codes[a + p], nbits, sq_lut, table32)
            for t in range(q32.shape[0]):
                for p in range(m):
                    buf[p] = approx_dot(codes[a + p], nbits, lut, table32, q32, t) * inv[p]
                _take(buf[:m], a, skip, k, margin2, heap_s[blk, t], heap_r[blk, t],
                      pool_s[blk, t], pool_r[blk, t], state[blk, t], overflow[blk, t:])  # fmt: skip


@njit(cache=True, inline="always")
def simd4_row(row, qlo, qhi, tab32, t, with_sq):
    """(int dot with int8 query ``t``, sum of squared values or 0) of a 4-bit row: whole 32-byte
    chunks through AVX2, the rest byte by byte."""
    nb = row.shape[0]
    full = nb // 32
    addr = row.ctypes.data
    ql = qlo[t].ctypes.data
    qh = qhi[t].ctypes.data
    sq = np.int32(0)
    if with_sq:
        dot, sq = row_dot_sq32(addr, ql, qh, tab32.ctypes.data, full)
    else:
        dot = row_dot32(addr, ql, qh, tab32.ctypes.data, full)
    for j in range(32 * full, nb):
        b = row[j]
        lo = np.int32(tab32[b & 0xF])
        hi = np.int32(tab32[b >> 4])
        dot += lo * np.int32(qlo[t, j]) + hi * np.int32(qhi[t, j])
        sq += lo * lo + hi * hi
    return dot, sq


@njit(cache=True, inline="always")
def _inv_norm(sq, step):
    """float32 ``1 / |raw row|`` from the integer sum of squares (in steps); 0 for a zero row."""
    return np.float32(1.0 / np.sqrt(np.float64(sq)) / step) if sq > 0 else np.float32(0.0)


@njit(cache=True, parallel=True)
def scan_pool_simd4(codes, tab32, step, qlo, qhi, qscale, skip, k, margin2,
                    heap_s, heap_r, pool_s, pool_r, state, overflow, block_rows):  # fmt: skip
    """``scan_pool`` for 4-bit rows whose values are small integers times one ``step`` (AVX2 only).

    ``tab32`` (32,) int8: the 16 code values in steps, twice; ``qlo``/``qhi``
    (Q, >= 32 * ceil(row_bytes / 32)) int8: the quantised query's even/odd
    elements, byte-aligned with the codes; ``qscale`` (Q,) float32: step / S.
    Score = ``float32(int dot) * qscale[t] * inv``, inv = 1 / |raw row|.
    """
    n = codes.shape[0]
    for blk in prange(heap_s.shape[0]):
        buf = np.empty(SUB_ROWS, np.float32)
        inv = np.empty(SUB_ROWS, np.float32)
        r_end = min(n, (blk + 1) * block_rows)
        for a in range(blk * block_rows, r_end, SUB_ROWS):
            m = min(r_end, a + SUB_ROWS) - a
            for t in range(qlo.shape[0]):
                for p in range(m):
                    # The first query's pass also sums the squares: the row's norm.
                    dot, sq = simd4_row(codes[a + p], qlo, qhi, tab32, t, t == 0)
                    if t == 0:
                        inv[p] = _inv_norm(sq, step)
                    buf[p] = (np.float32(dot) * qscale[t]) * inv[p]
                _take(buf[:m], a, skip, k, margin2, heap_s[blk, t], heap_r[blk, t],
                      pool_s[blk, t], pool_r[blk, t], state[blk, t], overflow[blk, t:])  # fmt: skip


@njit(cache=True, parallel=True)
def approx_all(codes, nbits, lut, sq_lut, table32, q32, out):
    """``out[t, i]`` = float32-table approximate cosine of row i with query t; for tests of the bound."""
    for i in prange(codes.shape[0]):
        inv = approx_inv_norm(codes[i], nbits, sq_lut, table32)
        for t in range(q32.shape[0]):
            out[t, i] = approx_dot(codes[i], nbits, lut, table32, q32, t) * inv


@njit(cache=True, parallel=True)
def approx_all_simd4(codes, tab32, step, qlo, qhi, qscale, out):
    """``out[t, i]`` = SIMD approximate cosine of row i with query t; for tests of the bound."""
    for i in prange(codes.shape[0]):
        inv = _inv_norm(simd4_row(codes[i], qlo, qhi, tab32, 0, True)[1], step)
        for t in range(qlo.shape[0]):
            out[t, i] = (np.float32(simd4_row(codes[i], qlo, qhi, tab32, t, False)[0]) * qscale[t]) * inv


@njit(cache=True)
def norms_of_rows_serial(codes, scales, rows, nbits, table64, dim, out):
    """``norms_kernel`` for a few candidate rows, on the calling thread (same arithmetic, same bits).

    Waking a thread pool for a few dozen rows costs more than the work
    (measured: ~20 ms per parallel launch on a loaded machine).
    """
    buf = np.empty(dim, np.float64)
    for p in range(rows.shape[0]):
        r = rows[p]
        raw_row(codes[r], nbits, table64, 1.0, buf)
        s = scales[r]
        for j in range(dim):
            buf[j] = np.float32(buf[j]) / s
        out[p] = np.sqrt(dot4(buf, buf))


# ---------------------------------------------------------------- driver helpers shared by packed and encoded scans

#: True when the CPU has AVX2 (the integer nibble kernels need it).
HAS_AVX2 = bool(llvmlite.binding.get_host_cpu_features().get("avx2", False))


def int8_queries(q: np.ndarray, row_bytes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Queries (float64, (Q, d)) rounded to int8 for the nibble kernels: ``q_int = rint(q * S)``, ``S = 127 / max|q|``.

    Returns ``qlo``, ``qhi`` (int8, (Q, 32 * ceil(row_bytes / 32))): the even
    and odd elements, byte-aligned with 4-bit codes and zero-padded; ``inv_s``
    (float64, (Q,)): ``1 / S`` (1 for a zero query); ``err`` (float64, (Q,)):
    ``|q_int / S - q|``, the quantisation error that bounds the integer dot's
    (Cauchy-Schwarz); ``qq`` (float64, (Q,)): ``|q_int / S|``.
    """
    nq, d = q.shape
    amax = np.abs(q).max(axis=1)
    scale = np.where(amax > 0, 127.0 / np.where(amax > 0, amax, 1.0), 0.0)
    qi = np.rint(q * scale[:, None])
    inv_s = 1.0 / np.where(scale > 0, scale, 1.0)
    qq = qi * inv_s[:, None]
    err = np.sqrt(np.einsum("ij,ij->i", qq - q, qq - q))
    width = 32 * ((row_bytes + 31) // 32)
    qlo = np.zeros((nq, width), np.int8)
    qhi = np.zeros((nq, width), np.int8)
    qlo[:, : (d + 1) // 2] = qi[:, 0::2]
    qhi[:, : d // 2] = qi[:, 1::2]
    return qlo, qhi, inv_s, err, np.sqrt(np.einsum("ij,ij->i", qq, qq))


def pool_arrays(n: int, nq: int, k: int, block_rows: int, pool_rows: int) -> tuple[np.ndarray, ...]:
    """Empty per-(row block, query) heaps and pools for ``scan_pool*``:
    heap_s, heap_r, pool_s, pool_r, state, overflow."""
    n_blocks = (n + block_rows - 1) // block_rows
    cap = max(pool_rows, 4 * k)
    return (
        np.empty((n_blocks, nq, k), np.float32),
        np.empty((n_blocks, nq, k), np.int64),
        np.empty((n_blocks, nq, cap), np.float32),
        np.empty((n_blocks, nq, cap), np.int64),
        np.zeros((n_blocks, nq, 2), np.int64),
        np.zeros((n_blocks, nq), np.bool_),
    )


def pool_candidates(pools: tuple[np.ndarray, ...], bound: np.ndarray, k: int) -> tuple[list[np.ndarray], list[bool]]:
    """Per query, the pooled rows whose approximate score is within ``2 * bound[t]`` of the k-th best
    approximate score (every row of the exact top k, see docs/performance.md), and whether its pool overflowed."""
    heap_s, _, pool_s, pool_r, state, overflow = pools
    n_blocks = heap_s.shape[0]
    rows_out: list[np.ndarray] = []
    over_out: list[bool] = []
    for t in range(heap_s.shape[1]):
        hn = state[:, t, 0]
        hs = np.concatenate([heap_s[b, t, : hn[b]] for b in range(n_blocks)]).astype(np.float64)
        kk = min(k, hs.size)
        kth = np.partition(hs, hs.size - kk)[hs.size - kk] if kk else -np.inf
        pn = state[:, t, 1]
        ps = np.concatenate([pool_s[b, t, : pn[b]] for b in range(n_blocks)]).astype(np.float64)
        pr = np.concatenate([pool_r[b, t, : pn[b]] for b in range(n_blocks)])
        rows_out.append(pr[ps >= kth - 2 * bound[t]])
        over_out.append(bool(overflow[:, t].any()))
    return rows_out, over_out
