"""numba kernels: float64 sums over a float32 row in one fixed order, on 4-lane vectors.

Private module. The per-vector scales of the int, nf and binary codebooks
need ``sum(t**2)``, ``sum(t*l)`` and ``sum(l**2)`` in float64, and stored
bytes depend on their rounding, so the order of the additions is part of
the file format (docs/format.md, ``reference_encoding._row_sum``): four
partial sums, of the positions j with j % 4 == 0, 1, 2, 3, each left to
right, combined as ``(s0 + s1) + (s2 + s3)``.

Those four partial sums are exactly the four lanes of a ``<4 x double>``
accumulator fed by consecutive runs of four values, but numba's loops do
not vectorise to that (the compiler may not reorder float additions, and
does not see the lanes); scalar code issues four conversions, four
products and four additions per run. :func:`_lane_sums` writes the loop
directly in LLVM IR. Each product of two float32 values is exact in float64
and no addition is reassociated, so every partial sum is the same number
as in the plain loop.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_F32x4 = ir.VectorType(ir.FloatType(), 4)
_F64x4 = ir.VectorType(ir.DoubleType(), 4)
_ZERO4 = ir.Constant(_F64x4, [0.0] * 4)


def _is_f32_vector(a) -> bool:
    return isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 1 and a.layout == "C"


def _lane_sums(context, builder, sig, args, dot):
    """Emit the loop over runs m < q of four: with ``a``, ``b`` the runs at 4m of the two arrays, as doubles,
    ``acc += a * a`` (one array) or ``acc_n += a * b; acc_q += b * b`` (two); return the lanes as a tuple."""
    n_arrays = 2 if dot else 1
    datas = [context.make_array(sig.args[k])(context, builder, args[k]).data for k in range(n_arrays)]
    intp = context.get_value_type(types.intp)
    q = context.cast(builder, args[n_arrays], sig.args[n_arrays], types.intp)
    entry = builder.block
    loop = builder.append_basic_block("lanes.loop")
    done = builder.append_basic_block("lanes.done")
    builder.cbranch(builder.icmp_signed(">", q, ir.Constant(intp, 0)), loop, done)

    builder.position_at_end(loop)
    m = builder.phi(intp)
    accs = [builder.phi(_F64x4) for _ in range(n_arrays)]
    off = builder.mul(m, ir.Constant(intp, 4))
    runs = []
    for data in datas:
        ptr = builder.bitcast(builder.gep(data, [off]), _F32x4.as_pointer())
        runs.append(builder.fpext(builder.load(ptr, align=4), _F64x4))
    if dot:
        new = [
            builder.fadd(accs[0], builder.fmul(runs[0], runs[1])),
            builder.fadd(accs[1], builder.fmul(runs[1], runs[1])),
        ]
    else:
        new = [builder.fadd(accs[0], builder.fmul(runs[0], runs[0]))]
    m_next = builder.add(m, ir.Constant(intp, 1))
    m.add_incoming(ir.Constant(intp, 0), entry)
    m.add_incoming(m_next, loop)
    for acc, nxt in zip(accs, new, strict=True):
        acc.add_incoming(_ZERO4, entry)
        acc.add_incoming(nxt, loop)
    builder.cbranch(builder.icmp_signed("<", m_next, q), loop, done)

    builder.position_at_end(done)
    results = []
    for nxt in new:  # every phi first: LLVM wants them at the top of the block
        res = builder.phi(_F64x4)
        res.add_incoming(_ZERO4, entry)
        res.add_incoming(nxt, loop)
        results.append(res)
    lanes = [builder.extract_element(res, ir.Constant(ir.IntType(32), k)) for res in results for k in range(4)]
    return context.make_tuple(builder, sig.return_type, lanes)


@intrinsic
def square_lanes(typingctx, t, q):  # pragma: no cover - compiled
    """The four partial sums of ``t[j]**2`` (j % 4 == 0 .. 3) over ``t[:4q]`` (float32), as float64."""
    if not (_is_f32_vector(t) and isinstance(q, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return _lane_sums(context, builder, sig, args, dot=False)

    return types.UniTuple(types.float64, 4)(t, q), codegen


@intrinsic
def dot_lanes(typingctx, t, lv, q):  # pragma: no cover - compiled
    """The four partial sums of ``t[j] * lv[j]``, then the four of ``lv[j]**2``, over ``[:4q]`` (float32)."""
    if not (_is_f32_vector(t) and _is_f32_vector(lv) and isinstance(q, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        return _lane_sums(context, builder, sig, args, dot=True)

    return types.UniTuple(types.float64, 8)(t, lv, q), codegen


@njit(cache=True, inline="always")
def sum4_sq(t, d):
    """``sum(t[:d]**2)`` (float32 in, float64 out) in the fixed order of the module docstring."""
    q = d // 4
    s0, s1, s2, s3 = square_lanes(t, q)
    j = 4 * q
    r = d - j
    if r > 0:
        v = np.float64(t[j])
        s0 += v * v
    if r > 1:
        v = np.float64(t[j + 1])
        s1 += v * v
    if r > 2:
        v = np.float64(t[j + 2])
        s2 += v * v
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, inline="always")
def least_squares(t, lv, d):
    """``(<t, l>, <l, l>)`` over ``[:d]`` for the levels ``l = lv`` (float32 in, float64 out), summed as
    :func:`sum4_sq`: the numerator and denominator of the least-squares scale."""
    q = d // 4
    n0, n1, n2, n3, q0, q1, q2, q3 = dot_lanes(t, lv, q)
    j = 4 * q
    r = d - j
    if r > 0:
        lvj = np.float64(lv[j])
        n0 += np.float64(t[j]) * lvj
        q0 += lvj * lvj
    if r > 1:
        lvj = np.float64(lv[j + 1])
        n1 += np.float64(t[j + 1]) * lvj
        q1 += lvj * lvj
    if r > 2:
        lvj = np.float64(lv[j + 2])
        n2 += np.float64(t[j + 2]) * lvj
        q2 += lvj * lvj
    return (n0 + n1) + (n2 + n3), (q0 + q1) + (q2 + q3)


__all__ = ["dot_lanes", "least_squares", "square_lanes", "sum4_sq"]
