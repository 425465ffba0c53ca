"""Formats: a Format the kernels cannot store exactly cannot be built."""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store.formats import FORMATS, KERNEL_BITS, Format, decode_table, get_format
from minifloat_store.reference import reference_decode, reference_encode


def format_of(name: str, dtype: type, *aliases: str) -> Format:
    """A Format built by hand from a dtype's finfo, as a user would."""
    info = ml_dtypes.finfo(dtype)
    bias = 1 - int(info.minexp)
    return Format(
        name=name,
        bits=int(info.bits),
        exponent_bits=int(info.nexp),
        mantissa_bits=int(info.nmant),
        bias=bias,
        max_value=float(info.max),
        min_subnormal=float(info.smallest_subnormal),
        min_normal=2.0 ** (1 - bias),
        dtype=np.dtype(dtype),
        aliases=aliases,
    )


@pytest.mark.parametrize("bits, exponent_bits, mantissa_bits", [(3, 1, 1), (5, 2, 2), (7, 3, 3), (12, 5, 6)])
def test_widths_the_kernels_cannot_pack_are_refused(bits: int, exponent_bits: int, mantissa_bits: int) -> None:
    with pytest.raises(ValueError, match=rf"{bits}-bit codes; the kernels pack 4-, 6-, 8-, 16- or 32-bit"):
        dataclasses.replace(
            FORMATS["e2m3"], name=f"mine{bits}", bits=bits, exponent_bits=exponent_bits, mantissa_bits=mantissa_bits
        )


def test_field_widths_must_add_up_to_the_code_width() -> None:
    with pytest.raises(ValueError, match="1 sign \\+ 3 exponent \\+ 3 mantissa bits does not make 8-bit codes"):
        dataclasses.replace(FORMATS["e4m3"], name="mine", exponent_bits=3)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"bias": 8}, "bias is 8 but dtype float8_e4m3fn has 7"),
        ({"dtype": np.dtype(ml_dtypes.float6_e2m3fn)}, "bits is 8 but dtype float6_e2m3fn has 6"),
        ({"dtype": np.dtype(np.float16)}, "dtype float16 takes 2 bytes"),
        ({"dtype": np.dtype(np.int8)}, "not a floating-point dtype"),
        ({"bits": True}, "bits must be an integer"),
        ({"min_normal": 0.5}, "do not follow from bias 7"),
        ({"max_value": 500.0}, "max_value 500.0 must be > 0 and at most float8_e4m3fn's max 448.0"),
        ({"max_value": 447.0}, "max_value 447.0 is not a value of the format"),
        ({"aliases": ["x"]}, "aliases must be a tuple"),
    ],
)
def test_fields_that_disagree_with_the_dtype_are_refused(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(FORMATS["e4m3"], **{"name": "mine", "aliases": (), **change})


@pytest.mark.parametrize("dtype", [ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2fnuz, ml_dtypes.float8_e4m3b11fnuz])
def test_dtype_that_decodes_a_written_code_otherwise_is_refused(dtype: type) -> None:
    # The fnuz types read -0's code as NaN: a stored -0.0 would come back as NaN.
    with pytest.raises(ValueError, match=r"code 0x80 means .*-0\.0.* decodes it as .*nan"):
        format_of("mine", dtype)


def test_dtype_without_a_sign_bit_is_refused() -> None:
    with pytest.raises(ValueError, match="does not make 8-bit codes"):
        format_of("mine", ml_dtypes.float8_e8m0fnu)


@pytest.mark.parametrize(
    "name, aliases, owner",
    [("e2m3", (), "e2m3"), ("mine", ("FP4",), "e2m1"), ("float8_e4m3fn", (), "e4m3")],
)
def test_a_registered_name_for_other_codes_is_refused(name: str, aliases: tuple[str, ...], owner: str) -> None:
    with pytest.raises(ValueError, match=f"belongs to the registered format {owner}"):
        format_of(name, ml_dtypes.float8_e4m3, *aliases)


def test_a_registered_name_with_a_lower_max_is_refused() -> None:
    with pytest.raises(ValueError, match="'e4m3' belongs to the registered format e4m3"):
        dataclasses.replace(FORMATS["e4m3"], max_value=240.0)


def test_a_registered_name_for_the_same_codes_is_accepted() -> None:
    mine = dataclasses.replace(FORMATS["e4m3"], aliases=("my-e4m3",))
    x = np.random.default_rng(0).standard_normal((5, 9)).astype(np.float32)
    assert np.array_equal(mfs.encode(x, mine).codes, mfs.encode(x, "e4m3").codes)
    with pytest.raises(ValueError, match="unknown format"):
        get_format("my-e4m3")  # only registered formats are looked up by name


def test_every_registered_format_uses_a_kernel_width() -> None:
    assert {f.bits for f in FORMATS.values()} <= set(KERNEL_BITS)


def test_hand_built_format_of_another_ml_dtypes_type_matches_the_reference() -> None:
    """float8_e4m3 (IEEE-like, with inf, max 240) is not registered but the kernels store it exactly."""
    f = format_of("e4m3ieee", ml_dtypes.float8_e4m3)
    x = np.random.default_rng(1).standard_normal((50, 13)).astype(np.float32) * 40
    for scale in mfs.SCALE_MODES:
        p = mfs.encode(x, f, scale)
        codes, scales = reference_encode(x, f, scale)
        np.testing.assert_array_equal(p.codes, codes)
        np.testing.assert_array_equal(mfs.decode(p), reference_decode(codes, scales, f, 13))


def test_lower_max_value_saturates_there() -> None:
    f = dataclasses.replace(FORMATS["e4m3"], name="e4m3-240", aliases=(), max_value=240.0)
    y = mfs.quantize(np.array([1000.0, -1000.0, 1.0], np.float32), f, scale="none")
    np.testing.assert_array_equal(y, [[240.0, -240.0, 1.0]])


def test_decode_tables_belong_to_formats_not_names() -> None:
    """Two hand-built formats may share an unregistered name; each decodes with its own table."""
    wide = format_of("mine", ml_dtypes.float8_e4m3)
    narrow = format_of("mine", ml_dtypes.float6_e2m3fn)
    assert decode_table(wide).shape == (256,) and decode_table(narrow).shape == (64,)
    x = np.linspace(-7, 7, 24, dtype=np.float32)
    for f in (narrow, wide, narrow):
        np.testing.assert_array_equal(
            mfs.quantize(x, f, "none"), reference_decode(*reference_encode(x, f, "none"), f, 24)
        )
