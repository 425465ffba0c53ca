"""numba kernels for the approximate pass of search on :class:`~minifloat_store.Encoding` rows of 3, 6, 8, 16
or 32 bits (AVX2, and F16C for fp16).

Private module; ``encoded_fast_scan.py`` chooses it and states the error bound.
A stored row is ``z_j = level(code_j) * f_b * f`` in the transformed space
(``f_b`` its block's factor, ``f`` the row's); the score is ``(<z, R(q)> +
<mean, q>) / |y|`` with ``|y|`` the float32 decoded norm of the search
index. Here eight codes at a time become their eight float32 levels in
vector registers and meet the float32 rotated query on eight float32 lanes
(four sets of lanes in turn, so that the adds do not wait on each other);
with block scales each block's lanes are multiplied by its float32 factor
before they join the row's. Codes become levels without a table in memory:

* 8 codes of ``bits`` bits are ``bits`` whole bytes (group ``g`` starts at
  byte ``g * bits``). 3- and 6-bit groups are read as one 4- or 8-byte
  integer (one or two bytes past their own, so a row's last group is read
  that way only when those bytes are still the row's) and shifted into
  eight lanes;
* int: the code's two's complement, sign-extended, to float32 (exact);
* minifloat (6 and 8 bits): the magnitude bits shifted under a float32's
  exponent and the sign to bit 31, times ``2**(127 - bias)`` (exact, as in
  ``_wide_scan_kernels``); fp16 by ``vcvtph2ps``, bf16 shifted, fp32 as is;
* int3 and nf3: ``vpermps`` looks the code up in the 8 levels held in a register.

Codes after the last whole group (``d % 8``, and a last group that could not
be read whole) are looked up in the float32 level table one at a time and
added after the lanes are summed; so is a short last block, weighed in
float64 (``encoded_fast_scan._wide_bound`` counts every rounding). 1- and
2-bit codes are not served: the exact scan's table of per-byte sums
(4 or 8 values per read) measured as fast.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from minifloat_store._encoded_scan_kernels import _row_terms
from minifloat_store._kernels import bits_f32
from minifloat_store._scan_kernels import SUB_ROWS, _take

#: How a group of codes becomes levels (``kind`` of the kernels below).
KIND_INT, KIND_MINI, KIND_TABLE, KIND_F16, KIND_BF16, KIND_F32 = 0, 1, 2, 3, 4, 5

#: (bits, kind) pairs the kernels serve; each is compiled as its own loop.
SERVED = (
    (8, KIND_INT),
    (8, KIND_MINI),
    (6, KIND_INT),
    (6, KIND_MINI),
    (3, KIND_TABLE),
    (16, KIND_F16),
    (16, KIND_BF16),
    (32, KIND_F32),
)

#: Bytes read per group of 3- and 6-bit codes (a whole integer load).
LOAD_BYTES = {3: 4, 6: 8}


class _Groups:
    """LLVM for the float32 levels of a group of 8 codes times the float32 query, for one (bits, kind)."""

    def __init__(self, builder, bits, kind, shift, mult, tab_addr):
        self.b, self.bits, self.kind = builder, bits, kind
        self.i32, self.f32 = ir.IntType(32), ir.FloatType()
        self.v8i32, self.v8f = ir.VectorType(self.i32, 8), ir.VectorType(self.f32, 8)
        mod = builder.module
        self.permps = mod.globals.get("llvm.x86.avx2.permps") or ir.Function(
            mod, ir.FunctionType(self.v8f, [self.v8f, self.v8i32]), name="llvm.x86.avx2.permps"
        )
        self.table = self.load(tab_addr, self.v8f) if kind == KIND_TABLE else None
        self.mul = self.splat(mult, self.v8f)
        self.shift = self.splat(shift, self.v8i32)
        self.zero = ir.Constant(self.v8f, [0.0] * 8)

    def splat(self, value, vty):
        undef = ir.Constant(vty, ir.Undefined)
        one = self.b.insert_element(undef, value, ir.Constant(self.i32, 0))
        return self.b.shuffle_vector(one, undef, ir.Constant(self.v8i32, [0] * 8))

    def load(self, addr, ty):
        ld = self.b.load(self.b.inttoptr(addr, ty.as_pointer()))
        ld.align = 1
        return ld

    def const(self, vals, ty=None):
        return ir.Constant(ty or self.v8i32, list(vals))

    def codes(self, at):
        """The 8 codes of the group at byte address ``at`` (int32 lanes; float32 for fp16 and fp32)."""
        b, bits, kind = self.b, self.bits, self.kind
        if bits in LOAD_BYTES:
            word_t = ir.IntType(8 * LOAD_BYTES[bits])
            wide_t = ir.IntType(max(32, word_t.width))
            word = self.load(at, word_t)
            word = b.zext(word, wide_t) if word_t.width < wide_t.width else word
            vw = ir.VectorType(wide_t, 8)
            c = b.lshr(self.splat(word, vw), self.const((bits * t for t in range(8)), vw))
            c = b.trunc(c, self.v8i32) if wide_t.width > 32 else c
            return b.and_(c, self.const([(1 << bits) - 1] * 8))
        if bits == 8:
            raw = self.load(at, ir.VectorType(ir.IntType(8), 8))
            return b.sext(raw, self.v8i32) if kind == KIND_INT else b.zext(raw, self.v8i32)
        if kind == KIND_F16:
            h = self.load(at, ir.VectorType(ir.IntType(16), 8))
            return b.fpext(b.bitcast(h, ir.VectorType(ir.HalfType(), 8)), self.v8f)
        if kind == KIND_BF16:
            return b.zext(self.load(at, ir.VectorType(ir.IntType(16), 8)), self.v8i32)
        return self.load(at, self.v8f)

    def products(self, codes_addr, q_addr, g):
        """``level * q`` of group ``g`` (float32 lanes)."""
        b, bits, kind = self.b, self.bits, self.kind
        c = self.codes(b.add(codes_addr, b.mul(g, ir.Constant(g.type, bits))))
        if kind == KIND_INT:
            if bits < 8:  # two's complement of ``bits`` bits: move the sign to bit 31 and back
                s = self.const([32 - bits] * 8)
                c = b.ashr(b.shl(c, s), s)
            vals = b.sitofp(c, self.v8f)
        elif kind == KIND_MINI:
            sign = b.shl(b.and_(c, self.const([1 << (bits - 1)] * 8)), self.const([32 - bits] * 8))
            mag = b.shl(b.and_(c, self.const([(1 << (bits - 1)) - 1] * 8)), self.shift)
            vals = b.fmul(b.bitcast(b.or_(sign, mag), self.v8f), self.mul)
        elif kind == KIND_TABLE:
            vals = b.call(self.permps, [self.table, c])
        elif kind == KIND_BF16:
            vals = b.bitcast(b.shl(c, self.const([16] * 8)), self.v8f)
        else:
            vals = c
        q = self.load(b.add(q_addr, b.mul(g, ir.Constant(g.type, 32))), self.v8f)
        return b.fmul(vals, q)

    def reduce(self, v):
        """``((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7))``."""
        b = self.b
        lane = [b.extract_element(v, ir.Constant(self.i32, j)) for j in range(8)]
        left = b.fadd(b.fadd(lane[0], lane[4]), b.fadd(lane[1], lane[5]))
        right = b.fadd(b.fadd(lane[2], lane[6]), b.fadd(lane[3], lane[7]))
        return b.fadd(left, right)


def _span_codegen(bits, kind):
    """LLVM for ``sum over n groups of level(code) * q``: four accumulators of eight float32 lanes
    (group g into accumulator g % 4, the last n % 4 groups into the first: independent chains
    of adds), added as ``(a0 + a1) + (a2 + a3)``, then ``_Groups.reduce``."""

    def codegen(context, builder, signature, args):
        from numba.core import cgutils

        codes_addr, q_addr, n_groups, shift, mult, tab_addr = args
        gr = _Groups(builder, bits, kind, shift, mult, tab_addr)
        accs = [cgutils.alloca_once_value(builder, gr.zero) for _ in range(4)]
        four = ir.Constant(n_groups.type, 4)
        n4 = builder.udiv(n_groups, four)
        with cgutils.for_range(builder, n4) as loop:
            g0 = builder.mul(loop.index, four)
            for j, acc in enumerate(accs):
                g = builder.add(g0, ir.Constant(g0.type, j))
                builder.store(builder.fadd(builder.load(acc), gr.products(codes_addr, q_addr, g)), acc)
        rest = builder.sub(n_groups, builder.mul(n4, four))
        with cgutils.for_range(builder, rest) as loop:
            g = builder.add(builder.mul(n4, four), loop.index)
            builder.store(builder.fadd(builder.load(accs[0]), gr.products(codes_addr, q_addr, g)), accs[0])
        a = [builder.load(acc) for acc in accs]
        return gr.reduce(builder.fadd(builder.fadd(a[0], a[1]), builder.fadd(a[2], a[3])))

    return codegen


def _blocks_codegen(bits, kind):
    """LLVM for ``sum_b f_b * (sum over the gpb groups of block b of level * q)`` over ``n_blocks``
    whole blocks: each block's eight float32 lanes times its float32 factor (``ftab[code]``, the
    block's scale code at ``bcode_addr + b``) into eight float32 lanes, then ``_Groups.reduce``."""

    def codegen(context, builder, signature, args):
        from numba.core import cgutils

        codes_addr, q_addr, n_blocks, gpb, shift, mult, tab_addr, bcode_addr, ftab_addr = args
        gr = _Groups(builder, bits, kind, shift, mult, tab_addr)
        acc = cgutils.alloca_once_value(builder, gr.zero)
        part = cgutils.alloca_once_value(builder, gr.zero)
        with cgutils.for_range(builder, n_blocks) as blocks:
            blk = blocks.index
            builder.store(gr.zero, part)
            g0 = builder.mul(blk, gpb)
            with cgutils.for_range(builder, gpb) as loop:
                g = builder.add(g0, loop.index)
                builder.store(builder.fadd(builder.load(part), gr.products(codes_addr, q_addr, g)), part)
            code = builder.zext(gr.load(builder.add(bcode_addr, blk), ir.IntType(8)), blk.type)
            f = gr.load(builder.add(ftab_addr, builder.mul(code, ir.Constant(blk.type, 4))), gr.f32)
            scaled = builder.fmul(builder.load(part), gr.splat(f, gr.v8f))
            builder.store(builder.fadd(builder.load(acc), scaled), acc)
        return gr.reduce(builder.load(acc))

    return codegen


_SPAN_ARGS = (types.uintp, types.uintp, types.intp, types.int32, types.float32, types.uintp)


def _span_intrinsic(bits, kind):
    def typer(typingctx, codes_addr, q_addr, n_groups, shift, mult, tab_addr):  # pragma: no cover - compiled
        return types.float32(*_SPAN_ARGS), _span_codegen(bits, kind)

    typer.__name__ = typer.__qualname__ = f"span_{bits}_{kind}"  # one distinct intrinsic per layout
    return intrinsic(typer)


_I8, _M8, _I6, _M6, _T3, _H16, _B16, _F32 = (_span_intrinsic(b, k) for b, k in SERVED)

_BLOCK_ARGS = (types.uintp, types.uintp, types.intp, types.intp, types.int32, types.float32, types.uintp,
               types.uintp, types.uintp)  # fmt: skip


def _blocks_intrinsic(bits, kind):
    def typer(
        typingctx, codes_addr, q_addr, n_blocks, gpb, shift, mult, tab_addr, bcode_addr, ftab_addr
    ):  # pragma: no cover
        return types.float32(*_BLOCK_ARGS), _blocks_codegen(bits, kind)

    typer.__name__ = typer.__qualname__ = f"blocks_{bits}_{kind}"
    return intrinsic(typer)


_BI8, _BM8, _BI6, _BM6, _BT3 = (_blocks_intrinsic(b, k) for b, k in SERVED if b <= 8)


@njit(cache=True, inline="always")
def _groups(bits, kind, codes_addr, q_addr, n, shift, mult, tab_addr):
    """Float32 sum of ``n`` whole groups at the given addresses (the one compiled loop of (bits, kind))."""
    if bits == 8:
        if kind == KIND_INT:
            return _I8(codes_addr, q_addr, n, shift, mult, tab_addr)
        return _M8(codes_addr, q_addr, n, shift, mult, tab_addr)
    if bits == 6:
        if kind == KIND_INT:
            return _I6(codes_addr, q_addr, n, shift, mult, tab_addr)
        return _M6(codes_addr, q_addr, n, shift, mult, tab_addr)
    if bits == 3:
        return _T3(codes_addr, q_addr, n, shift, mult, tab_addr)
    if bits == 16:
        if kind == KIND_F16:
            return _H16(codes_addr, q_addr, n, shift, mult, tab_addr)
        return _B16(codes_addr, q_addr, n, shift, mult, tab_addr)
    return _F32(codes_addr, q_addr, n, shift, mult, tab_addr)


@njit(cache=True, inline="always")
def _level_at(row, bits, table32, j):
    """float32 level of code j of a row, read one at a time (the tail of a span)."""
    if bits == 32:
        o = 4 * j
        c = np.int64(row[o]) | (np.int64(row[o + 1]) << 8) | (np.int64(row[o + 2]) << 16) | (np.int64(row[o + 3]) << 24)
        return bits_f32(c)
    if bits == 16:
        return table32[np.int64(row[2 * j]) | (np.int64(row[2 * j + 1]) << 8)]
    p = j * bits
    o = p >> 3
    v = np.int64(row[o])
    if o + 1 < row.shape[0]:
        v |= np.int64(row[o + 1]) << 8
    return table32[(v >> (p & 7)) & ((1 << bits) - 1)]


@njit(cache=True, inline="always")
def span_dot(row, bits, kind, shift, mult, tab8, table32, q, lo, hi, safe):
    """float32 ``sum(level_j * q_j)`` for j in [lo, hi) (lo a multiple of 8): whole groups below
    ``safe`` (groups that may be read whole) in the vector registers, the rest one by one."""
    g0 = lo // 8
    g1 = min(hi // 8, safe)
    acc = np.float32(0.0)
    j = lo
    if g1 > g0:
        acc = _groups(bits, kind, row.ctypes.data + g0 * bits, q.ctypes.data + 32 * g0, g1 - g0, shift, mult,
                      tab8.ctypes.data)  # fmt: skip
        j = 8 * g1
    while j < hi:
        acc += _level_at(row, bits, table32, j) * q[j]
        j += 1
    return acc


@njit(cache=True, inline="always")
def _whole_blocks(bits, kind, codes_addr, q_addr, nb, gpb, shift, mult, tab_addr, bcode_addr, ftab_addr):
    """Float32 ``sum_b f_b <levels in b, q>`` of the first ``nb`` blocks (``gpb`` groups each) of a row."""
    if bits == 8:
        if kind == KIND_INT:
            return _BI8(codes_addr, q_addr, nb, gpb, shift, mult, tab_addr, bcode_addr, ftab_addr)
        return _BM8(codes_addr, q_addr, nb, gpb, shift, mult, tab_addr, bcode_addr, ftab_addr)
    if bits == 6:
        if kind == KIND_INT:
            return _BI6(codes_addr, q_addr, nb, gpb, shift, mult, tab_addr, bcode_addr, ftab_addr)
        return _BM6(codes_addr, q_addr, nb, gpb, shift, mult, tab_addr, bcode_addr, ftab_addr)
    return _BT3(codes_addr, q_addr, nb, gpb, shift, mult, tab_addr, bcode_addr, ftab_addr)


@njit(cache=True, inline="always")
def wide_dot(row, block_row, bits, kind, shift, mult, tab8, table32, q, block, block_table, block_table32, safe):
    """``sum_b f_b <levels in b, q>`` (float64) of one row; ``block`` 0: no block scales, one span.

    Blocks whose groups may all be read whole are summed in the vector
    registers, weighed by their float32 factor (``block_table32``); the
    others (a short last block, a last group read byte by byte) one span at a
    time, weighed in float64 (``block_table``).
    """
    d = q.shape[0]
    if block == 0:
        return np.float64(span_dot(row, bits, kind, shift, mult, tab8, table32, q, 0, d, safe))
    gpb = block // 8
    full = min(d // block, safe // gpb)
    total = 0.0
    if full > 0:
        part = _whole_blocks(bits, kind, row.ctypes.data, q.ctypes.data, full, gpb, shift, mult, tab8.ctypes.data,
                             block_row.ctypes.data, block_table32.ctypes.data)  # fmt: skip
        total = np.float64(part)
    for b in range(full, block_row.shape[0]):
        part = span_dot(row, bits, kind, shift, mult, tab8, table32, q, b * block, min(d, (b + 1) * block), safe)
        total += block_table[block_row[b]] * np.float64(part)
    return total


@njit(cache=True, parallel=True)
def scan_pool_wide_enc(codes, block_scales, scales, factor_mode, norms, bits, kind, shift, mult, tab8, table32,
                       block, block_table, block_table32, safe, q32, mean_dot, skip, k, margin2, heap_s, heap_r,
                       pool_s, pool_r, state, overflow, block_rows):  # fmt: skip
    """Approximate cosines of every encoded row with every query; per row block, a candidate pool.

    ``bits``, ``kind``: the code layout (``SERVED``); ``shift``, ``mult``:
    the minifloat bit shift and ``2**(127 - bias)``; ``tab8`` (8,) float32:
    the levels of codes of at most 3 bits; ``table32`` float32: every code's
    level (empty for fp32); ``block`` values per block scale (0: none);
    ``block_table`` float64 and
    ``block_table32`` float32 (both (256,)): each block-scale code's factor; ``safe``: whole
    groups of a row that may be read at once; ``q32`` (Q, d) float32, C-contiguous:
    the rotated queries; ``mean_dot`` (Q,) float64.
    ``scales``/``factor_mode``/``norms`` as in ``scan_pool_enc4``. Score =
    ``clip((f * dot + mean_dot) / norm)`` rounded to float32 (0 for a zero
    row). Heaps and pools as in ``_scan_kernels.scan_pool``.
    """
    n = codes.shape[0]
    for blk in prange(heap_s.shape[0]):
        buf = np.empty(SUB_ROWS, np.float32)
        f_n = np.empty(SUB_ROWS, np.float64)
        i_n = np.empty(SUB_ROWS, np.float64)
        r_end = min(n, (blk + 1) * block_rows)
        for a in range(blk * block_rows, r_end, SUB_ROWS):
            m = min(r_end, a + SUB_ROWS) - a
            for p in range(m):
                f_n[p], i_n[p] = _row_terms(scales, factor_mode, norms[a + p], a + p)
            for t in range(q32.shape[0]):
                q = q32[t]
                for p in range(m):
                    i = a + p
                    dot = wide_dot(codes[i], block_scales[i], bits, kind, shift, mult, tab8, table32, q, block,
                                   block_table, block_table32, safe)  # fmt: skip
                    s = dot * f_n[p] + mean_dot[t] * i_n[p]
                    buf[p] = np.float32(min(max(s, -1.0), 1.0))
                _take(buf[:m], a, skip, k, margin2, heap_s[blk, t], heap_r[blk, t],
                      pool_s[blk, t], pool_r[blk, t], state[blk, t], overflow[blk, t:])  # fmt: skip


@njit(cache=True, parallel=True)
def approx_all_wide_enc(codes, block_scales, scales, factor_mode, norms, bits, kind, shift, mult, tab8, table32,
                        block, block_table, block_table32, safe, q32, mean_dot, out):  # fmt: skip
    """``out[t, i]``: the score ``scan_pool_wide_enc`` gives row i for query t (float32); for tests of the bound."""
    for i in prange(codes.shape[0]):
        f_n, i_n = _row_terms(scales, factor_mode, norms[i], i)
        for t in range(q32.shape[0]):
            dot = wide_dot(codes[i], block_scales[i], bits, kind, shift, mult, tab8, table32, q32[t], block,
                           block_table, block_table32, safe)  # fmt: skip
            s = dot * f_n + mean_dot[t] * i_n
            out[t, i] = np.float32(min(max(s, -1.0), 1.0))
