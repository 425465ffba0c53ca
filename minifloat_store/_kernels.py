"""numba kernels: scale, round and pack in one pass; unpack, look up and unscale in one pass.

Private module. Callers validate dtype, shape and contiguity first (see
``codec.py``); the kernels trust their arguments.

Rounding works on the float32 bit pattern. For a magnitude ``a`` (clipped to
the format's max) in the format's normal range, subtracting
``(127 - bias) << 23`` re-biases the exponent field, and a round-to-nearest-
even right shift by ``23 - m`` drops the surplus mantissa bits; a carry out of
the mantissa correctly bumps the exponent. Below the normal range the value is
a multiple of the smallest subnormal: the full float32 significand is shifted
right (again ties to even) by the distance between the two exponents.

Packing is an LSB-first bit stream per row, each row starting on a byte
boundary (see docs/format.md).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

FLOAT32_MAX = np.float32(np.finfo(np.float32).max)


@intrinsic
def f32_bits(typingctx, x):  # pragma: no cover - compiled
    """Reinterpret a float32 as its uint32 bit pattern."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.uint32))

    return types.uint32(types.float32), codegen


@intrinsic
def bits_f32(typingctx, x):  # pragma: no cover - compiled
    """Reinterpret the low 32 bits of an integer as a float32."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], context.get_value_type(types.uint32)) if x.bitwidth > 32 else args[0]
        return builder.bitcast(low, context.get_value_type(types.float32))

    return types.float32(x), codegen


@njit(cache=True, inline="always")
def _byte(code_row, i, tail):
    """Byte ``i`` of a row as int64; with ``tail``, 0 past the row's end (never read out of bounds)."""
    if tail and i >= code_row.shape[0]:
        return np.int64(0)
    return np.int64(code_row[i])


@njit(cache=True, inline="always")
def unpack_group(code_row, g, nbits, tail):
    """Codes ``4g .. 4g+3`` of a packed row of ``nbits``-bit codes (4, 6, 8 or 16), as four int64.

    The one place a row's bytes are read as codes: four codes span a whole
    number of bytes at every width (2, 3, 4 or 8), LSB first. Pass
    ``tail=False`` for a group whose four codes all lie inside the row (no
    bounds checks; the caller guarantees it), ``tail=True`` for the row's
    last, partial group: codes past the row's end come back as 0.
    """
    if nbits == 4:
        b0 = _byte(code_row, 2 * g, False)
        b1 = _byte(code_row, 2 * g + 1, tail)
        return b0 & 0xF, b0 >> 4, b1 & 0xF, b1 >> 4
    if nbits == 6:
        o = 3 * g
        b0 = _byte(code_row, o, False)
        b1 = _byte(code_row, o + 1, tail)
        b2 = _byte(code_row, o + 2, tail)
        return b0 & 0x3F, ((b0 >> 6) | (b1 << 2)) & 0x3F, ((b1 >> 4) | (b2 << 4)) & 0x3F, b2 >> 2
    if nbits == 8:
        o = 4 * g
        return (
            _byte(code_row, o, False),
            _byte(code_row, o + 1, tail),
            _byte(code_row, o + 2, tail),
            _byte(code_row, o + 3, tail),
        )
    o = 8 * g  # nbits == 16, little-endian
    return (
        _byte(code_row, o, False) | (_byte(code_row, o + 1, False) << 8),
        _byte(code_row, o + 2, tail) | (_byte(code_row, o + 3, tail) << 8),
        _byte(code_row, o + 4, tail) | (_byte(code_row, o + 5, tail) << 8),
        _byte(code_row, o + 6, tail) | (_byte(code_row, o + 7, tail) << 8),
    )


@njit(cache=True, inline="always")
def _rne_shift(v, r):
    """``v >> r`` rounded to nearest, ties to even (int32 v >= 0, 1 <= r <= 30)."""
    one = np.int32(1)
    return (v + ((one << (r - one)) - one) + ((v >> r) & one)) >> r


@njit(cache=True, inline="always")
def encode_value(bits_in, nbits, mant_bits, bias, max_bits):
    """Code (int32) of one finite float32 (given as its bits) in a format of <= 16 bits.

    Saturates at the format's max (``max_bits`` is the float32 bit pattern of
    max_value); returns the code with the sign in bit ``nbits - 1``. Both
    rounding paths are computed and one is selected, so the loop has no
    data-dependent branch to mispredict (half the values of a bias-1 format
    are subnormal). Everything is int32 (every intermediate fits), so a
    vector holds eight values, not four: about 20 % faster than int64.
    """
    r = np.int32(23 - mant_bits)
    a = min(np.int32(bits_in & np.uint32(0x7FFFFFFF)), np.int32(max_bits))
    # Normal range: re-bias the exponent, round the mantissa to nearest even.
    # (Below it the difference is negative and the result unused.)
    normal = _rne_shift(a - (np.int32(127 - bias) << np.int32(23)), r)
    # Subnormal range: adding 2**(24 - bias - m), whose ulp is the format's
    # smallest subnormal, makes the FPU round to a multiple of it (ties to
    # even); the low bits of the sum are then the code.
    magic = np.int32(151 - bias - mant_bits) << np.int32(23)
    summed = bits_f32(a) + bits_f32(magic)
    subnormal = np.int32(f32_bits(summed)) - magic
    code = normal if a >= (np.int32(128 - bias) << np.int32(23)) else subnormal
    return code | (np.int32(bits_in >> np.uint32(31)) << np.int32(nbits - 1))


@njit(cache=True)
def row_scale(x_row, max_value):
    """Per-vector scale ``max_value / max|x|`` (1 for an all-zero row), and a non-finite flag.

    max|x| is taken on the bit patterns (for non-negative floats, integer order
    is float order), which vectorises and flags NaN/inf in the same pass. The
    division is float32, as the reference does it; a tiny max|x| whose scale
    would overflow float32 gets the largest finite float32 instead, so no value
    ever becomes inf or NaN.
    """
    amax_bits = np.uint32(0)
    for j in range(x_row.shape[0]):
        amax_bits = max(amax_bits, f32_bits(x_row[j]) & np.uint32(0x7FFFFFFF))
    nonfinite = amax_bits >= np.uint32(0x7F800000)
    if amax_bits == 0 or nonfinite:
        return np.float32(1.0), nonfinite
    s = np.float32(max_value / bits_f32(amax_bits))
    if s > FLOAT32_MAX:
        s = FLOAT32_MAX
    return s, nonfinite


@njit(cache=True)
def encode_row(x_row, s, nbits, mant_bits, bias, max_bits, out_row):
    """Scale, round and pack one float32 row into ``out_row`` (uint8, row_bytes)."""
    d = x_row.shape[0]
    if nbits == 32:
        for j in range(d):
            u = f32_bits(x_row[j])
            for k in range(4):
                out_row[4 * j + k] = (u >> (8 * k)) & 0xFF
    elif nbits == 16:
        for j in range(d):
            c = encode_value(f32_bits(x_row[j] * s), nbits, mant_bits, bias, max_bits)
            out_row[2 * j] = c & 0xFF
            out_row[2 * j + 1] = (c >> 8) & 0xFF
    elif nbits == 8:
        for j in range(d):
            out_row[j] = encode_value(f32_bits(x_row[j] * s), nbits, mant_bits, bias, max_bits)
    elif nbits == 4:
        # Full pairs in a branch-free loop (it vectorises), then the odd tail.
        for k in range(d // 2):
            lo = encode_value(f32_bits(x_row[2 * k] * s), nbits, mant_bits, bias, max_bits)
            hi = encode_value(f32_bits(x_row[2 * k + 1] * s), nbits, mant_bits, bias, max_bits)
            out_row[k] = lo | (hi << 4)
        if d % 2:
            out_row[d // 2] = encode_value(f32_bits(x_row[d - 1] * s), nbits, mant_bits, bias, max_bits)
    else:  # nbits == 6: four values in three bytes
        for g in range(d // 4):
            j = 4 * g
            c0 = encode_value(f32_bits(x_row[j] * s), nbits, mant_bits, bias, max_bits)
            c1 = encode_value(f32_bits(x_row[j + 1] * s), nbits, mant_bits, bias, max_bits)
            c2 = encode_value(f32_bits(x_row[j + 2] * s), nbits, mant_bits, bias, max_bits)
            c3 = encode_value(f32_bits(x_row[j + 3] * s), nbits, mant_bits, bias, max_bits)
            out_row[3 * g] = (c0 | (c1 << 6)) & 0xFF
            out_row[3 * g + 1] = ((c1 >> 2) | (c2 << 4)) & 0xFF
            out_row[3 * g + 2] = ((c2 >> 4) | (c3 << 2)) & 0xFF
        rem = d % 4
        if rem:
            # Tail group: missing values are zero bits; write only the bytes the row has.
            j = d - rem
            c = np.zeros(4, np.int64)
            for t in range(rem):
                c[t] = encode_value(f32_bits(x_row[j + t] * s), nbits, mant_bits, bias, max_bits)
            packed = c[0] | (c[1] << 6) | (c[2] << 12) | (c[3] << 18)
            o = 3 * (d // 4)
            for t in range(out_row.shape[0] - o):
                out_row[o + t] = (packed >> (8 * t)) & 0xFF


@njit(cache=True, parallel=True)
def encode_rows(x, vector_scale, nbits, mant_bits, bias, max_value, codes, scales, nonfinite):
    """Encode every row of ``x`` (float32, (n, d)) into ``codes`` and ``scales``.

    ``nonfinite[i]`` is set for rows holding NaN or inf; their output is
    garbage and the caller must discard the whole result.
    """
    max_bits = np.int64(f32_bits(max_value))
    for i in prange(x.shape[0]):
        s, bad = row_scale(x[i], max_value)
        nonfinite[i] = bad
        if not vector_scale:
            s = np.float32(1.0)
        scales[i] = s
        if not bad:
            encode_row(x[i], s, nbits, mant_bits, bias, max_bits, codes[i])


@njit(cache=True)
def decode_row(code_row, nbits, table, s, out_row):
    """Unpack one row, look each code up in ``table`` and divide by the scale ``s``.

    ``table`` is the float32 value of every code (formats up to 16 bits); it is
    ignored for 32-bit codes, which are reinterpreted directly.
    """
    d = out_row.shape[0]
    if nbits == 32:
        for j in range(d):
            u = np.int64(0)
            for k in range(4):
                u |= np.int64(code_row[4 * j + k]) << (8 * k)
            out_row[j] = bits_f32(u) / s
        return
    for g in range(d // 4):
        c0, c1, c2, c3 = unpack_group(code_row, g, nbits, False)
        j = 4 * g
        out_row[j] = table[c0] / s
        out_row[j + 1] = table[c1] / s
        out_row[j + 2] = table[c2] / s
        out_row[j + 3] = table[c3] / s
    if d % 4:
        g = d // 4
        c = unpack_group(code_row, g, nbits, True)
        for t in range(d % 4):
            out_row[4 * g + t] = table[c[t]] / s


@njit(cache=True, parallel=True)
def decode_rows(codes, scales, nbits, table, out):
    """Decode every row of ``codes`` into ``out`` (float32, (n, d))."""
    for i in prange(out.shape[0]):
        decode_row(codes[i], nbits, table, scales[i], out[i])
