"""Number formats: what a code means, in one place.

A format is data, not a class hierarchy: sign bit, exponent bits, mantissa
bits, bias and the largest finite value. One set of kernels, parametrised by
that data, serves every format. The facts come from ``ml_dtypes.finfo`` (and
``numpy.finfo`` for IEEE float16/float32) so they cannot drift from the dtype
whose bit patterns the codes share.

Value of a code with sign S, exponent field E and mantissa field M
(m mantissa bits, bias b):

* normal (E > 0): ``(-1)**S * 2**(E - b) * (1 + M / 2**m)``
* subnormal (E = 0): ``(-1)**S * 2**(1 - b) * (M / 2**m)``
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

__all__ = ["FORMATS", "KERNEL_BITS", "Format", "decode_table", "get_format"]


#: Code widths the kernels pack and unpack (``_kernels``, ``_score_kernels``).
KERNEL_BITS: tuple[int, ...] = (4, 6, 8, 16, 32)


@dataclass(frozen=True)
class Format:
    """One storage format.

    A Format is checked when it is built (also by ``dataclasses.replace``):
    one the kernels cannot encode and decode exactly cannot exist, so no
    kernel is ever handed a width or a table it would read past.

    Attributes
    ----------
    name : str
        Short name used everywhere in this library (``"e2m1"``, ``"fp16"``...).
    bits : int
        Bits per stored value, sign included: one of :data:`KERNEL_BITS`.
    exponent_bits, mantissa_bits : int
        Field widths; ``1 + exponent_bits + mantissa_bits == bits``.
    bias : int
        Exponent bias.
    max_value : float
        Largest finite value; encoding saturates to +-max_value.
    min_subnormal : float
        Smallest positive value.
    min_normal : float
        Smallest positive normal value, ``2**(1 - bias)``.
    dtype : numpy.dtype
        The ml_dtypes (or numpy) dtype whose bit patterns the codes share.
    aliases : tuple of str
        Other accepted names (the ml_dtypes / numpy dtype name among them).

    Raises
    ------
    ValueError
        If the fields disagree with each other or with ``dtype``, if the
        width is not one of :data:`KERNEL_BITS`, if a code the encoder can
        write decodes (through ``dtype``) to anything but the value the
        formula in this module's docstring gives it, or if ``name`` or an
        alias belongs to a registered format that this one is not.
    """

    name: str
    bits: int
    exponent_bits: int
    mantissa_bits: int
    bias: int
    max_value: float
    min_subnormal: float
    min_normal: float
    dtype: np.dtype = field(repr=False)
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_format(self)

    @property
    def is_identity(self) -> bool:
        """True for float32, which is stored bit for bit (no rounding, no scale)."""
        return self.bits == 32

    def row_bytes(self, dim: int) -> int:
        """Bytes of one packed vector of ``dim`` values: ``ceil(dim * bits / 8)``."""
        return (dim * self.bits + 7) // 8

    def __str__(self) -> str:
        return self.name


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _check_format(f: Format) -> None:
    """Refuse a Format the kernels cannot handle exactly (see :class:`Format`)."""
    if not isinstance(f.name, str) or not f.name:
        raise ValueError(f"format name must be a non-empty string, got {f.name!r}")
    what = f"format {f.name!r}"
    if not isinstance(f.aliases, tuple) or not all(isinstance(a, str) and a for a in f.aliases):
        raise ValueError(f"{what}: aliases must be a tuple of non-empty strings, got {f.aliases!r}")
    for attr in ("bits", "exponent_bits", "mantissa_bits", "bias"):
        if not _is_int(getattr(f, attr)):
            raise ValueError(f"{what}: {attr} must be an integer, got {getattr(f, attr)!r}")
    if f.bits not in KERNEL_BITS:
        raise ValueError(f"{what} has {f.bits}-bit codes; the kernels pack 4-, 6-, 8-, 16- or 32-bit codes only")
    if f.exponent_bits < 1 or f.mantissa_bits < 0 or 1 + f.exponent_bits + f.mantissa_bits != f.bits:
        raise ValueError(
            f"{what}: 1 sign + {f.exponent_bits} exponent + {f.mantissa_bits} mantissa bits "
            f"does not make {f.bits}-bit codes"
        )
    try:
        dt = np.dtype(f.dtype)
        info = ml_dtypes.finfo(dt)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: dtype {f.dtype!r} is not a floating-point dtype numpy or ml_dtypes knows") from None
    object.__setattr__(f, "dtype", dt)
    if dt.itemsize != (1 if f.bits <= 8 else f.bits // 8):
        raise ValueError(f"{what}: dtype {dt.name} takes {dt.itemsize} bytes; {f.bits}-bit codes need a different one")
    facts = {"bits": int(info.bits), "exponent_bits": int(info.nexp), "mantissa_bits": int(info.nmant)}
    facts["bias"] = 1 - int(info.minexp)  # finfo.minexp is the exponent of the smallest normal: 1 - bias
    for attr, value in facts.items():
        if getattr(f, attr) != value:
            raise ValueError(f"{what}: {attr} is {getattr(f, attr)} but dtype {dt.name} has {value}")
    if not 0 <= f.bias <= 127:  # the kernels round through float32's exponent range
        raise ValueError(f"{what}: bias {f.bias} is outside 0..127")
    min_normal = 2.0 ** (1 - f.bias)
    if f.min_normal != min_normal or f.min_subnormal != min_normal * 2.0**-f.mantissa_bits:
        raise ValueError(
            f"{what}: min_normal {f.min_normal!r} and min_subnormal {f.min_subnormal!r} do not follow from "
            f"bias {f.bias} and {f.mantissa_bits} mantissa bits"
        )
    max_value = f.max_value
    if not isinstance(max_value, (float, int, np.floating, np.integer)) or not 0 < max_value <= float(info.max):
        raise ValueError(f"{what}: max_value {max_value!r} must be > 0 and at most {dt.name}'s max {float(info.max)!r}")
    if f.bits == 32:
        if dt != np.float32 or max_value != float(info.max):
            raise ValueError(f"{what}: 32-bit codes are float32 stored bit for bit (dtype float32, its max)")
    else:
        _check_codes_decode_by_formula(f, dt, what)
    _check_name_is_free(f)


def _check_codes_decode_by_formula(f: Format, dt: np.dtype, what: str) -> None:
    """The encoder writes codes by the sign/exponent/mantissa formula; the decoder reads ``dt``'s value.

    They must agree on every code up to max_value (and max_value must be one
    of them), else a stored vector would come back as another one: an
    ml_dtypes type with other special values (the fnuz types' NaN at -0's
    code, say) is refused here.
    """
    codes = np.arange(2**f.bits, dtype=np.int64)
    m = f.mantissa_bits
    mant = (codes & ((1 << m) - 1)).astype(np.float64) / 2.0**m
    exp = (codes >> m) & ((1 << f.exponent_bits) - 1)
    mag = np.where(exp > 0, np.ldexp(1.0 + mant, exp - f.bias), np.ldexp(mant, 1 - f.bias))
    with np.errstate(over="ignore"):  # codes above max_value (never written) may overflow float32
        formula = np.where(codes >> (f.bits - 1), -mag, mag).astype(np.float32)
    decoded = codes.astype(np.uint8 if f.bits <= 8 else np.uint16).view(dt).astype(np.float32)
    written = mag <= f.max_value
    if not (mag == f.max_value).any():
        raise ValueError(f"{what}: max_value {f.max_value!r} is not a value of the format")
    bad = written & (formula.view(np.uint32) != decoded.view(np.uint32))
    if bad.any():
        c = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what}: code {c:#x} means {formula[c]!r} to the encoder but dtype {dt.name} decodes it "
            f"as {decoded[c]!r}; the kernels cannot store this format"
        )


def _codes_meaning(f: Format) -> tuple[object, ...]:
    """The fields that decide what a code means and which codes the encoder writes."""
    return (f.bits, f.exponent_bits, f.mantissa_bits, f.bias, f.max_value, f.dtype)


def _check_name_is_free(f: Format) -> None:
    """A registered name or alias may only name a format whose codes mean what the registered one's do.

    Stores record a format by name and look it up on open: the same name for
    other codes would decode one format's bytes with another's table.
    """
    for key in (f.name, *f.aliases):
        registered = _BY_ALIAS.get(key.lower())
        if registered is not None and _codes_meaning(f) != _codes_meaning(registered):
            raise ValueError(
                f"format name {key!r} belongs to the registered format {registered.name} "
                f"({registered.bits}-bit, dtype {registered.dtype.name}, max {registered.max_value!r}); "
                "give this format a name of its own"
            )


def _make(name: str, dtype: type | np.dtype, *extra_aliases: str) -> Format:
    dt = np.dtype(dtype)
    info = ml_dtypes.finfo(dt)
    bits = int(info.bits)
    mant = int(info.nmant)
    exp = int(info.nexp)
    # finfo.minexp is the exponent of the smallest normal: 1 - bias.
    bias = 1 - int(info.minexp)
    return Format(
        name=name,
        bits=bits,
        exponent_bits=exp,
        mantissa_bits=mant,
        bias=bias,
        max_value=float(info.max),
        min_subnormal=float(info.smallest_subnormal),
        min_normal=float(2.0 ** (1 - bias)),
        dtype=dt,
        aliases=(dt.name, *extra_aliases),
    )


# Registered names and aliases (lower case); filled below, once FORMATS is built.
_BY_ALIAS: dict[str, Format] = {}

#: Every format of the study, keyed by short name, narrowest first.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        _make("e2m1", ml_dtypes.float4_e2m1fn, "fp4"),
        _make("e3m2", ml_dtypes.float6_e3m2fn),
        _make("e2m3", ml_dtypes.float6_e2m3fn),
        _make("e4m3", ml_dtypes.float8_e4m3fn),
        _make("e5m2", ml_dtypes.float8_e5m2),
        _make("e3m4", ml_dtypes.float8_e3m4),
        _make("fp16", np.float16, "half"),
        _make("bf16", ml_dtypes.bfloat16),
        _make("fp32", np.float32, "float"),
    )
}

for _f in FORMATS.values():
    for _key in (_f.name, *_f.aliases):
        _BY_ALIAS[_key.lower()] = _f


def get_format(fmt: str | Format) -> Format:
    """Look a format up by name or alias (``"e4m3"``, ``"float8_e4m3fn"``, ``"bfloat16"``...).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(fmt, Format):
        return fmt
    if not isinstance(fmt, str):
        raise TypeError(f"format must be a name or a Format, got {type(fmt).__name__}")
    try:
        return _BY_ALIAS[fmt.lower()]
    except KeyError:
        raise ValueError(
            f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)} "
            "(ml_dtypes names such as 'float8_e4m3fn' are accepted too)"
        ) from None


# Keyed by the Format itself (all its fields), not its name: two formats may share a name.
_TABLES: dict[Format, np.ndarray] = {}


def decode_table(fmt: str | Format) -> np.ndarray:
    """The float32 value of every code of a format of at most 16 bits.

    Returns
    -------
    ndarray of shape (2**bits,), float32
        ``table[code]`` is the value of ``code``, as ml_dtypes defines it
        (codes this library never writes, such as e5m2's inf/NaN, decode as
        ml_dtypes decodes them). Read-only and cached.
    """
    f = get_format(fmt)
    if f.bits > 16:
        raise ValueError(f"{f.name} has {f.bits}-bit codes: no look-up table")
    table = _TABLES.get(f)
    if table is None:
        codes = np.arange(2**f.bits, dtype=np.uint8 if f.bits <= 8 else np.uint16)
        table = codes.view(f.dtype).astype(np.float32)
        table.flags.writeable = False
        _TABLES[f] = table
    return table
