"""numba kernels of the seeded rotation (transforms.py): the Walsh-Hadamard transform on 8-lane vectors.

Private module. The rotation dominated the cost of encoding with a
"rotate" transform when its butterflies ran one float at a time: numba's
loops over a row do not vectorise (the compiler cannot prove that the two
halves of a butterfly do not overlap). Small LLVM intrinsics say it
directly: :func:`small_stages8` runs stages h = 1, 2, 4 inside one run of 8
floats with lane shuffles, :func:`first_stages64` stages 1 .. 32 of a run of
64 held in eight ``<8 x float>`` registers, :func:`butterfly8` and
:func:`butterfly8x4` one or two later stages on whole runs of 8. Every output is
the same float32 additions, in the same order, as the plain numpy version in
transforms.py (no fused multiply-add, no reassociation), so the two agree
bit for bit; tests/test_encoding.py checks it.

Loads and stores are unaligned (any offset works); callers keep every run of
8 inside the array: ``lo + p <= t.shape[0]`` with ``p`` a power of two >= 8.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_F32x8 = ir.VectorType(ir.FloatType(), 8)
_I32x8 = ir.VectorType(ir.IntType(32), 8)
_I1 = ir.IntType(1)


def _run_pointer(context, builder, arrty, arr, offset, offty):
    """Pointer to ``<8 x float>`` at ``arr[offset]`` (float32 C-contiguous 1-D array)."""
    data = context.make_array(arrty)(context, builder, arr).data
    off = context.cast(builder, offset, offty, types.intp)
    return builder.bitcast(builder.gep(data, [off]), _F32x8.as_pointer())


def _is_f32_vector(a) -> bool:
    return isinstance(a, types.Array) and a.dtype == types.float32 and a.ndim == 1 and a.layout == "C"


@intrinsic
def butterfly8(typingctx, t, a, c):  # pragma: no cover - compiled
    """``t[a+k], t[c+k] = t[a+k] + t[c+k], t[a+k] - t[c+k]`` for k < 8, as two vector operations."""
    if not (_is_f32_vector(t) and isinstance(a, types.Integer) and isinstance(c, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        pa = _run_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        pc = _run_pointer(context, builder, sig.args[0], args[0], args[2], sig.args[2])
        u = builder.load(pa, align=4)
        v = builder.load(pc, align=4)
        builder.store(builder.fadd(u, v), pa, align=4)
        builder.store(builder.fsub(u, v), pc, align=4)
        return context.get_dummy_value()

    return types.none(t, a, c), codegen


def _stage(builder, v, h):
    """One butterfly stage of span h (1, 2 or 4) inside a vector of 8: lane k pairs with k ^ h.

    With ``w`` the vector with each pair swapped, lane k of the result is
    ``v[k] + w[k]`` for the first of a pair and ``w[k] + (-v[k])`` for the
    second: ``t[j] + t[j+h]`` and ``t[j] - t[j+h]``, exactly (negation is
    exact and ``a + (-b)`` is ``a - b``). A shuffle, a sign flip and an add.
    """
    w = builder.shuffle_vector(v, ir.Constant(_F32x8, None), ir.Constant(_I32x8, [k ^ h for k in range(8)]))
    signs = ir.Constant(_I32x8, [0 if (k & h) == 0 else -(2**31) for k in range(8)])
    flipped = builder.bitcast(builder.xor(builder.bitcast(v, _I32x8), signs), _F32x8)
    return builder.fadd(flipped, w)


@intrinsic
def small_stages8(typingctx, t, g):  # pragma: no cover - compiled
    """Butterfly stages h = 1, 2, 4 on ``t[g:g+8]`` in one load and one store (lane shuffles)."""
    if not (_is_f32_vector(t) and isinstance(g, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        p = _run_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        v = builder.load(p, align=4)
        for h in (1, 2, 4):
            v = _stage(builder, v, h)
        builder.store(v, p, align=4)
        return context.get_dummy_value()

    return types.none(t, g), codegen


def _vector_stages(builder, vs):
    """Butterfly stages across a list of 2**k vectors in registers: pairs (m, m + s), s = 1, 2, 4, ..."""
    s = 1
    while s < len(vs):
        for m in range(len(vs)):
            if m & s == 0:
                u, v = vs[m], vs[m + s]
                vs[m], vs[m + s] = builder.fadd(u, v), builder.fsub(u, v)
        s *= 2
    return vs


@intrinsic
def first_stages64(typingctx, t, g):  # pragma: no cover - compiled
    """Stages h = 1 .. 32 on ``t[g:g+64]``: eight vectors loaded once, transformed in registers, stored."""
    if not (_is_f32_vector(t) and isinstance(g, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptrs = []
        for k in range(8):
            off = builder.add(
                context.cast(builder, args[1], sig.args[1], types.intp), ir.Constant(ir.IntType(64), 8 * k)
            )
            ptrs.append(_run_pointer(context, builder, sig.args[0], args[0], off, types.intp))
        vs = [builder.load(p, align=4) for p in ptrs]
        for h in (1, 2, 4):
            vs = [_stage(builder, v, h) for v in vs]
        for p, v in zip(ptrs, _vector_stages(builder, vs), strict=True):
            builder.store(v, p, align=4)
        return context.get_dummy_value()

    return types.none(t, g), codegen


@intrinsic
def butterfly8x4(typingctx, t, a, h):  # pragma: no cover - compiled
    """Stages h and 2h on the four runs of 8 at ``a``, ``a + h``, ``a + 2h``, ``a + 3h`` (h >= 8)."""
    if not (_is_f32_vector(t) and isinstance(a, types.Integer) and isinstance(h, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        a0 = context.cast(builder, args[1], sig.args[1], types.intp)
        step = context.cast(builder, args[2], sig.args[2], types.intp)
        offs = [a0]
        for _ in range(3):
            offs.append(builder.add(offs[-1], step))
        ptrs = [_run_pointer(context, builder, sig.args[0], args[0], o, types.intp) for o in offs]
        vs = _vector_stages(builder, [builder.load(p, align=4) for p in ptrs])
        for p, v in zip(ptrs, vs, strict=True):
            builder.store(v, p, align=4)
        return context.get_dummy_value()

    return types.none(t, a, h), codegen


@njit(cache=True)
def fwht_scalar(t, lo, p):
    """Unnormalised Walsh-Hadamard transform of ``t[lo:lo+p]`` in place, one float at a time (p < 8)."""
    h = 1
    while h < p:
        for i in range(lo, lo + p, 2 * h):
            for j in range(i, i + h):
                u = t[j]
                v = t[j + h]
                t[j] = u + v
                t[j + h] = u - v
        h *= 2


@njit(cache=True)
def fwht(t, lo, p):
    """Unnormalised Walsh-Hadamard transform of ``t[lo:lo+p]`` (float32) in place, p a power of two.

    Stage h adds and subtracts the pairs (j, j + h), h = 1, 2, 4, ..., p/2,
    in that order: stages 1 .. 32 inside each run of 64 (in registers), the
    later ones two at a time on whole runs of 8.
    """
    if p < 64:
        if p < 8:
            fwht_scalar(t, lo, p)
            return
        for g in range(lo, lo + p, 8):
            small_stages8(t, g)
        h = 8
    else:
        for g in range(lo, lo + p, 64):
            first_stages64(t, g)
        h = 64
    while 2 * h < p:  # two stages at once
        for i in range(p // (4 * h)):
            base = lo + 4 * h * i
            for j in range(base, base + h, 8):
                butterfly8x4(t, j, h)
        h *= 4
    if h < p:
        for j in range(lo, lo + h, 8):
            butterfly8(t, j, j + h)


@njit(cache=True)
def rotate_forward(t, factors, p):
    """``R(t)`` in place, all but the last factor 1/sqrt(p) (see transforms.py), which the caller applies
    to ``t[d-p:]`` in its next pass over the row.

    ``t`` must already hold ``x * s1`` (or ``(x - mean) * s1``): the caller
    fuses the first sign flip with its copy of the row. ``factors[0]`` is
    ``norm * s2`` on the first p coordinates and ``s2`` after
    (:attr:`minifloat_store.transforms.Rotation.factors`): one multiplication
    per value where the definition has two, and the same result, since
    multiplying by -1 is exact.
    """
    d = t.shape[0]
    fwht(t, 0, p)
    if p < d:
        f = factors[0]
        for j in range(d):
            t[j] = t[j] * f[j]
        fwht(t, d - p, p)


@njit(cache=True)
def rotate_inverse(t, factors, p, norm):
    """``R^T(t)`` in place: the factors of the forward rotation in reverse order, ending with the signs s1.

    ``factors[1]`` is ``norm * s2`` on the last p coordinates and ``s2``
    before them; ``factors[2]`` is ``norm * s1`` on the first p and ``s1`` after.
    """
    d = t.shape[0]
    if p < d:
        fwht(t, d - p, p)
        f = factors[1]
        for j in range(d):
            t[j] = t[j] * f[j]
    fwht(t, 0, p)
    f = factors[2]
    for j in range(d):
        t[j] = t[j] * f[j]


__all__ = ["butterfly8", "fwht", "rotate_forward", "rotate_inverse", "small_stages8"]
