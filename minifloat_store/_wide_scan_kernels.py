"""numba kernels for the approximate pass of search on 8- and 16-bit minifloat codes (AVX2, F16C).

Private module; ``fast_search.py`` chooses it and states the error bound.
The float32 table path of ``_scan_kernels`` looks every code up one at a
time; here eight codes become eight float32 values in vector registers by
bit manipulation, exactly the values of that table:

* 8-bit ``s e..e m..m`` (bias b, m mantissa bits): the 7 magnitude bits
  shifted left by ``23 - m`` and the sign to bit 31 form a float32 whose
  value is the code's times ``2**(b - 127)`` (subnormal codes become
  float32 subnormals, scaled exactly the same), so one multiplication by
  ``2**(127 - b) * unit`` gives ``table[code] * unit``;
* fp16: ``vcvtph2ps`` (LLVM ``fpext half``), then ``* unit``;
* bf16: the 16 bits shifted to the top of a float32, then ``* unit``.

Products with the float32 query and squares accumulate in eight float32
lanes, summed at the end as ``((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 +
a7))``, the order of the table path. Codes that are NaN or inf give other
values here, but rows holding them are scored apart (``SearchIndex.special_rows``).
"""

from __future__ import annotations

import llvmlite.binding
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from minifloat_store._scan_kernels import SUB_ROWS, _take

#: True when the CPU converts float16 in vector registers (with AVX2 for the rest).
HAS_F16C = bool(llvmlite.binding.get_host_cpu_features().get("f16c", False))

#: Code kinds of :func:`row_dot_sq_wide`.
KIND_F8, KIND_F16, KIND_BF16 = 0, 1, 2


def _wide_codegen(kind):
    def codegen(context, builder, signature, args):
        from numba.core import cgutils

        codes_addr, q_addr, n_groups, shift, mult = args
        i8, i16, i32, f32 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.FloatType()
        v8i32, v8f = ir.VectorType(i32, 8), ir.VectorType(f32, 8)

        def splat(value, vty):
            undef = ir.Constant(vty, ir.Undefined)
            one = builder.insert_element(undef, value, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, undef, ir.Constant(v8i32, [0] * 8))

        def load(addr, vty):
            ld = builder.load(builder.inttoptr(addr, vty.as_pointer()))
            ld.align = 1
            return ld

        mul = splat(mult, v8f)
        zero = ir.Constant(v8f, [0.0] * 8)
        acc_d = cgutils.alloca_once_value(builder, zero)
        acc_s = cgutils.alloca_once_value(builder, zero)
        width = 1 if kind == KIND_F8 else 2
        with cgutils.for_range(builder, n_groups) as loop:
            g = loop.index
            off_c = builder.mul(g, ir.Constant(g.type, 8 * width))
            off_q = builder.mul(g, ir.Constant(g.type, 32))
            if kind == KIND_F8:
                c = builder.zext(load(builder.add(codes_addr, off_c), ir.VectorType(i8, 8)), v8i32)
                sign = builder.shl(builder.and_(c, ir.Constant(v8i32, [0x80] * 8)), ir.Constant(v8i32, [24] * 8))
                mag = builder.shl(builder.and_(c, ir.Constant(v8i32, [0x7F] * 8)), splat(shift, v8i32))
                vals = builder.bitcast(builder.or_(sign, mag), v8f)
            elif kind == KIND_F16:
                h = load(builder.add(codes_addr, off_c), ir.VectorType(i16, 8))
                vals = builder.fpext(builder.bitcast(h, ir.VectorType(ir.HalfType(), 8)), v8f)
            else:
                h = builder.zext(load(builder.add(codes_addr, off_c), ir.VectorType(i16, 8)), v8i32)
                vals = builder.bitcast(builder.shl(h, ir.Constant(v8i32, [16] * 8)), v8f)
            vals = builder.fmul(vals, mul)
            q = load(builder.add(q_addr, off_q), v8f)
            builder.store(builder.fadd(builder.load(acc_d), builder.fmul(vals, q)), acc_d)
            builder.store(builder.fadd(builder.load(acc_s), builder.fmul(vals, vals)), acc_s)

        def reduce(v):
            lane = [builder.extract_element(v, ir.Constant(i32, j)) for j in range(8)]
            left = builder.fadd(builder.fadd(lane[0], lane[4]), builder.fadd(lane[1], lane[5]))
            right = builder.fadd(builder.fadd(lane[2], lane[6]), builder.fadd(lane[3], lane[7]))
            return builder.fadd(left, right)

        dot, sq = reduce(builder.load(acc_d)), reduce(builder.load(acc_s))
        return context.make_tuple(builder, signature.return_type, [dot, sq])

    return codegen


_WIDE_ARGS = (types.uintp, types.uintp, types.intp, types.int32, types.float32)


@intrinsic
def _row_f8(typingctx, codes_addr, q_addr, n_groups, shift, mult):  # pragma: no cover - compiled
    return types.UniTuple(types.float32, 2)(*_WIDE_ARGS), _wide_codegen(KIND_F8)


@intrinsic
def _row_f16(typingctx, codes_addr, q_addr, n_groups, shift, mult):  # pragma: no cover - compiled
    return types.UniTuple(types.float32, 2)(*_WIDE_ARGS), _wide_codegen(KIND_F16)


@intrinsic
def _row_bf16(typingctx, codes_addr, q_addr, n_groups, shift, mult):  # pragma: no cover - compiled
    return types.UniTuple(types.float32, 2)(*_WIDE_ARGS), _wide_codegen(KIND_BF16)


@njit(cache=True, inline="always")
def row_dot_sq_wide(row, kind, shift, mult, table32, q, d):
    """(raw dot with ``q``, raw sum of squares) of one 8- or 16-bit row, float32, values ``* unit``.

    Whole groups of 8 codes in the vector registers; the last ``d % 8``
    codes from ``table32`` (already ``* unit``), added one by one after the
    lanes are summed (the ``chain`` ``fast_search._table_bound`` is given counts those adds).
    """
    groups = d // 8
    addr = row.ctypes.data
    qa = q.ctypes.data
    if kind == KIND_F8:
        dot, sq = _row_f8(addr, qa, groups, shift, mult)
    elif kind == KIND_F16:
        dot, sq = _row_f16(addr, qa, groups, shift, mult)
    else:
        dot, sq = _row_bf16(addr, qa, groups, shift, mult)
    for j in range(8 * groups, d):
        c = row[j] if kind == KIND_F8 else row[2 * j] | (row[2 * j + 1] << 8)
        v = table32[c]
        dot += v * q[j]
        sq += v * v
    return dot, sq


@njit(cache=True, inline="always")
def _inv(sq):
    return np.float32(1.0) / np.sqrt(sq) if sq > 0 else np.float32(0.0)


@njit(cache=True, parallel=True)
def scan_pool_wide(codes, kind, shift, mult, table32, q32, skip, k, margin2,
                   heap_s, heap_r, pool_s, pool_r, state, overflow, block_rows):  # fmt: skip
    """``_scan_kernels.scan_pool`` for 8- and 16-bit codes: the same scores, heaps and pools."""
    n = codes.shape[0]
    d = q32.shape[1]
    for blk in prange(heap_s.shape[0]):
        buf = np.empty(SUB_ROWS, np.float32)
        r_end = min(n, (blk + 1) * block_rows)
        for a in range(blk * block_rows, r_end, SUB_ROWS):
            m = min(r_end, a + SUB_ROWS) - a
            for t in range(q32.shape[0]):
                for p in range(m):
                    dot, sq = row_dot_sq_wide(codes[a + p], kind, shift, mult, table32, q32[t], d)
                    buf[p] = dot * _inv(sq)
                _take(buf[:m], a, skip, k, margin2, heap_s[blk, t], heap_r[blk, t],
                      pool_s[blk, t], pool_r[blk, t], state[blk, t], overflow[blk, t:])  # fmt: skip


@njit(cache=True, parallel=True)
def approx_all_wide(codes, kind, shift, mult, table32, q32, out):
    """``out[t, i]``: the score ``scan_pool_wide`` gives row i for query t (float32); for tests of the bound."""
    d = q32.shape[1]
    for i in prange(codes.shape[0]):
        for t in range(q32.shape[0]):
            dot, sq = row_dot_sq_wide(codes[i], kind, shift, mult, table32, q32[t], d)
            out[t, i] = dot * _inv(sq)
