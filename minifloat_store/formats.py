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

__all__ = ["FORMATS", "Format", "get_format", "decode_table"]


@dataclass(frozen=True)
class Format:
    """One storage format.

    Attributes
    ----------
    name : str
        Short name used everywhere in this library (``"e2m1"``, ``"fp16"``...).
    bits : int
        Bits per stored value, sign included.
    exponent_bits, mantissa_bits : int
        Field widths.
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

    @property
    def is_identity(self) -> bool:
        """True for float32, which is stored bit for bit (no rounding, no scale)."""
        return self.bits == 32

    def row_bytes(self, dim: int) -> int:
        """Bytes of one packed vector of ``dim`` values: ``ceil(dim * bits / 8)``."""
        return (dim * self.bits + 7) // 8

    def __str__(self) -> str:
        return self.name


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

_BY_ALIAS: dict[str, Format] = {}
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


_TABLES: dict[str, np.ndarray] = {}


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
    table = _TABLES.get(f.name)
    if table is None:
        codes = np.arange(2**f.bits, dtype=np.uint8 if f.bits <= 8 else np.uint16)
        table = codes.view(f.dtype).astype(np.float32)
        table.flags.writeable = False
        _TABLES[f.name] = table
    return table
