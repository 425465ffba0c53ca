"""The codec against ml_dtypes and the plain-numpy reference, for every format."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minifloat_store as mfs
from minifloat_store.formats import FORMATS, decode_table
from minifloat_store.reference import reference_decode, reference_encode, reference_pack, reference_unpack

ALL = list(FORMATS)
MINIFLOATS = ["e2m1", "e3m2", "e2m3", "e4m3", "e5m2", "e3m4", "fp16", "bf16"]


def unpacked_codes(x: np.ndarray, name: str) -> np.ndarray:
    """Codes our encoder writes for x (no scaling), unpacked with the reference unpacker."""
    p = mfs.encode(x[None, :], name, scale="none")
    return reference_unpack(p.codes, p.fmt.bits, x.size)[0]


def ml_dtypes_codes(x: np.ndarray, name: str) -> np.ndarray:
    """What ml_dtypes gives for x after clipping to +-max_value (the specification)."""
    f = FORMATS[name]
    clipped = np.clip(x.astype(np.float32), -f.max_value, f.max_value)
    cast = clipped.astype(f.dtype)
    if f.bits == 16:
        return cast.view(np.uint16).astype(np.uint64)
    return (cast.view(np.uint8) & ((1 << f.bits) - 1)).astype(np.uint64)


def finite_values(name: str) -> np.ndarray:
    """Every finite representable value of a format, sorted, as float32 (both zeros kept)."""
    table = decode_table(name)
    return np.sort(table[np.isfinite(table)])


def probe_values(name: str) -> np.ndarray:
    """Representable values, midpoints between neighbours and the float32 values either side
    of each midpoint, subnormal boundaries, overflow boundary and +-0."""
    f = FORMATS[name]
    v = np.unique(finite_values(name).astype(np.float64))
    mids = ((v[:-1] + v[1:]) / 2).astype(np.float32)
    around = np.concatenate([np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))])
    top = np.float32(f.max_value)
    with np.errstate(over="ignore"):  # bf16's max * 2 overflows float32: dropped below
        overflow = np.array(
            [top, np.nextafter(top, np.float32(np.inf)), top * 1.5, top * 2, 1e30, np.finfo(np.float32).max],
            dtype=np.float32,
        )
    tiny = np.array(
        [
            f.min_subnormal,
            f.min_subnormal / 2,
            f.min_subnormal * 0.5000001,
            f.min_subnormal * 0.4999999,
            f.min_normal,
            np.nextafter(np.float32(f.min_normal), np.float32(0)),
            1e-45,
            0.0,
        ],
        dtype=np.float32,
    )
    out = np.concatenate([v.astype(np.float32), mids, around, overflow, tiny])
    out = out[np.isfinite(out)]
    return np.concatenate([out, -out, np.array([-0.0], np.float32)])


@pytest.mark.parametrize("name", MINIFLOATS)
def test_codes_equal_ml_dtypes_on_every_boundary(name: str) -> None:
    x = probe_values(name)
    np.testing.assert_array_equal(unpacked_codes(x, name), ml_dtypes_codes(x, name))


@pytest.mark.parametrize("name", MINIFLOATS)
def test_codes_equal_ml_dtypes_on_random_bit_patterns(name: str) -> None:
    # Uniform random bit patterns cover every float32 exponent, subnormals included.
    rng = np.random.default_rng(1234)
    bits = rng.integers(0, 2**32, size=400_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    np.testing.assert_array_equal(unpacked_codes(x, name), ml_dtypes_codes(x, name))


@pytest.mark.parametrize("name", MINIFLOATS)
def test_codes_equal_ml_dtypes_on_gaussian_sample(name: str) -> None:
    rng = np.random.default_rng(7)
    f = FORMATS[name]
    x = (rng.standard_normal(200_000) * min(f.max_value, 1e4) / 3).astype(np.float32)
    np.testing.assert_array_equal(unpacked_codes(x, name), ml_dtypes_codes(x, name))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("scale", ["none", "vector"])
def test_saturates_never_nan_or_inf(name: str, scale: str) -> None:
    f = FORMATS[name]
    big = np.float32(np.finfo(np.float32).max)
    x = np.array([[big, -big, 1e30, -1e30, 3.0, 0.0]], dtype=np.float32)
    y = mfs.quantize(x, name, scale)
    assert np.isfinite(y).all()
    if scale == "none":
        assert y[0, 0] == np.float32(f.max_value) and y[0, 1] == -np.float32(f.max_value)


def test_study_worked_example_fp4() -> None:
    # PAPER.md: 4.5 -> 4, 5 -> 4 (tie to even mantissa), 5.1 -> 6, beyond range -> 6.
    x = np.array([4.5, 5.0, 5.1, 7.0, 1e9, -5.0, -1e9, 0.25, 0.75], dtype=np.float32)
    y = mfs.quantize(x, "e2m1", scale="none")[0]
    np.testing.assert_array_equal(y, [4, 4, 6, 6, 6, -4, -6, 0, 1])


def test_fp4_has_fifteen_values() -> None:
    values = np.unique(finite_values("e2m1"))  # -0 == 0 for unique
    np.testing.assert_array_equal(values, [-6, -4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 3, 4, 6])


@pytest.mark.parametrize(
    "name, max_value",
    [("e2m1", 6), ("e3m2", 28), ("e2m3", 7.5), ("e4m3", 448), ("e5m2", 57344), ("e3m4", 15.5), ("fp16", 65504)],
)
def test_max_values_match_the_study(name: str, max_value: float) -> None:
    assert FORMATS[name].max_value == max_value


def test_aliases_resolve_to_the_same_format() -> None:
    assert mfs.get_format("float8_e4m3fn") is FORMATS["e4m3"]
    assert mfs.get_format("float4_e2m1fn") is FORMATS["e2m1"]
    assert mfs.get_format("BFLOAT16") is FORMATS["bf16"]
    assert mfs.get_format("float16") is FORMATS["fp16"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("scale", ["none", "vector"])
@pytest.mark.parametrize("dim", [1, 2, 3, 5, 6, 7, 192, 193])
def test_kernels_match_reference(name: str, scale: str, dim: int) -> None:
    rng = np.random.default_rng(dim)
    x = (rng.standard_normal((17, dim)) * rng.uniform(0.01, 20, size=(17, 1))).astype(np.float32)
    x[0] = 0.0  # an all-zero vector gets scale 1
    p = mfs.encode(x, name, scale)
    codes, scales = reference_encode(x, name, scale)
    np.testing.assert_array_equal(p.codes, codes)
    np.testing.assert_array_equal(p.scales, scales)
    assert p.codes.shape == (17, FORMATS[name].row_bytes(dim))
    decoded = mfs.decode(p)
    expected = reference_decode(codes, scales, name, dim)
    np.testing.assert_array_equal(decoded.view(np.uint32), expected.view(np.uint32))


def test_packing_layout_fp4_and_fp6() -> None:
    # fp4: element 2i in the low nibble of byte i; fp6: b0 = a | b<<6, b1 = b>>2 | c<<4, b2 = c>>4 | d<<2.
    x = np.array([0.5, 1.0, 1.5, 2.0, 3.0], dtype=np.float32)  # e2m1 codes 1, 2, 3, 4, 5
    p = mfs.encode(x, "e2m1", scale="none")
    assert p.codes.tolist() == [[0x21, 0x43, 0x05]]
    a, b, c, d = 1, 2, 3, 4  # e2m3 codes of 0.125, 0.25, 0.375, 0.5
    p6 = mfs.encode(np.array([0.125, 0.25, 0.375, 0.5], np.float32), "e2m3", scale="none")
    assert p6.codes.tolist() == [[(a | b << 6) & 0xFF, (b >> 2 | c << 4) & 0xFF, (c >> 4 | d << 2) & 0xFF]]


def test_fp16_is_little_endian() -> None:
    p = mfs.encode(np.array([1.0], np.float32), "fp16", scale="none")
    assert p.codes.tolist() == [[0x00, 0x3C]]


def test_fp32_is_stored_bit_for_bit() -> None:
    x = np.random.default_rng(0).standard_normal((5, 33)).astype(np.float32)
    p = mfs.encode(x, "fp32", scale="vector")
    assert p.scale == "none" and (p.scales == 1).all()
    np.testing.assert_array_equal(mfs.decode(p), x)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(MINIFLOATS),
    x=hnp.arrays(np.float32, st.integers(1, 40), elements=st.floats(-1e6, 1e6, width=32)),
)
def test_decoded_value_is_a_nearest_representable_value(name: str, x: np.ndarray) -> None:
    f = FORMATS[name]
    y = mfs.quantize(x, name, scale="none")[0].astype(np.float64)
    grid = np.unique(finite_values(name).astype(np.float64))
    target = np.clip(x.astype(np.float64), -f.max_value, f.max_value)
    best = np.abs(grid[None, :] - target[:, None]).min(axis=1)
    np.testing.assert_array_equal(np.abs(y - target), best)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(ALL),
    scale=st.sampled_from(["none", "vector"]),
    x=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 21)),
        elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=True),
    ),
)
def test_packed_bytes_match_slow_reference_packer(name: str, scale: str, x: np.ndarray) -> None:
    p = mfs.encode(x, name, scale)
    codes, scales = reference_encode(x, name, scale)
    np.testing.assert_array_equal(p.codes, codes)
    np.testing.assert_array_equal(p.scales, scales)
    np.testing.assert_array_equal(
        reference_pack(reference_unpack(p.codes, p.fmt.bits, x.shape[1]), p.fmt.bits), p.codes
    )


def test_no_scaling_collapses_wavlm_like_vector_in_fp4() -> None:
    # PAPER.md: WavLM values lie in about [-0.4, 0.25]; unscaled e2m1 keeps only -0.5 and 0.
    rng = np.random.default_rng(3)
    x = rng.uniform(-0.4, 0.25, size=(50, 512)).astype(np.float32)
    y = mfs.quantize(x, "e2m1", scale="none")
    assert set(np.unique(y).tolist()) <= {-0.5, 0.0}


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    with np.errstate(invalid="ignore"):  # a vector quantised to all zeros has no direction
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_vector_scaling_keeps_gaussian_cosine_in_fp4() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((200, 512)).astype(np.float32) * 0.01
    assert cosine_rows(x, mfs.quantize(x, "e2m1", scale="vector")).min() > 0.99
    # The same small-valued vectors without scaling are destroyed.
    assert np.nanmean(np.nan_to_num(cosine_rows(x, mfs.quantize(x, "e2m1", scale="none")))) < 0.5


def test_vector_scale_maps_the_largest_value_to_max() -> None:
    x = np.array([[0.1, -0.4, 0.25]], dtype=np.float32)
    p = mfs.encode(x, "e4m3", scale="vector")
    assert p.scales[0] == np.float32(448) / np.float32(0.4)
    assert mfs.decode(p)[0, 1] == pytest.approx(-0.4, rel=1e-6)


def test_all_zero_vector_gets_scale_one() -> None:
    p = mfs.encode(np.zeros((2, 8), np.float32), "e2m1", scale="vector")
    assert (p.scales == 1).all() and (mfs.decode(p) == 0).all()


def test_tiny_vector_scale_stays_finite() -> None:
    x = np.full((1, 4), 1e-44, dtype=np.float32)
    p = mfs.encode(x, "e4m3", scale="vector")
    assert np.isfinite(p.scales).all() and np.isfinite(mfs.decode(p)).all()


@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_input_names_the_row(bad: float, what: str) -> None:
    x = np.ones((20, 4), np.float32)
    x[17, 2] = bad
    with pytest.raises(ValueError, match=rf"row 17 contains {what}"):
        mfs.encode(x, "e4m3")


def test_float64_beyond_float32_range_is_an_error() -> None:
    x = np.ones((3, 4))
    x[1, 0] = 1e300
    with pytest.raises(ValueError, match="row 1 .*beyond the float32 range"):
        mfs.encode(x, "e2m1")


@pytest.mark.parametrize(
    "x, error, match",
    [
        (np.ones((2, 3, 4), np.float32), ValueError, "shape"),
        (np.ones((0, 4), np.float32), ValueError, "empty"),
        (np.ones((4, 0), np.float32), ValueError, "empty"),
        (np.ones((2, 4), np.int64), TypeError, "floating-point"),
        (np.array(["a"]), TypeError, "floating-point"),
    ],
)
def test_bad_input_is_a_clear_error(x: np.ndarray, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        mfs.encode(x, "e4m3")


def test_unknown_format_and_scale_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown format 'e9m9'.*e2m1"):
        mfs.encode(np.ones(4, np.float32), "e9m9")
    with pytest.raises(ValueError, match="unknown scale mode 'block'"):
        mfs.encode(np.ones(4, np.float32), "e4m3", scale="block")


def test_packed_rejects_inconsistent_arrays() -> None:
    good = mfs.encode(np.ones((3, 5), np.float32), "e2m1")
    with pytest.raises(ValueError, match="bytes per row"):
        mfs.Packed(np.zeros((3, 2), np.uint8), good.scales, good.fmt, 5)
    with pytest.raises(ValueError, match="scales must be float32"):
        mfs.Packed(good.codes, good.scales[:2], good.fmt, 5)
    with pytest.raises(ValueError, match="scale of row 1"):
        mfs.Packed(good.codes, np.array([1, 0, 1], np.float32), good.fmt, 5)
    with pytest.raises(ValueError, match="out must be"):
        mfs.decode(good, out=np.empty((3, 4), np.float32))


@pytest.mark.parametrize("name", [n for n in FORMATS if n != "fp32"])
@pytest.mark.parametrize(
    "make_codes, match",
    [
        (lambda n, rb: np.zeros((n, rb - 1), np.uint8), "bytes per row"),
        (lambda n, rb: np.zeros((n, rb + 1), np.uint8), "bytes per row"),
        (lambda n, rb: np.zeros((n, rb), np.uint16), "2-D uint8"),
        (lambda n, rb: np.zeros((n, rb), np.int8), "2-D uint8"),
        (lambda n, rb: np.zeros((n, rb), np.float32), "2-D uint8"),
        (lambda n, rb: np.zeros(n * rb, np.uint8), "2-D uint8"),
        (lambda n, rb: np.zeros((n, rb, 1), np.uint8), "2-D uint8"),
        (lambda n, rb: [[0] * rb] * n, "2-D uint8"),
    ],
)
def test_packed_refuses_codes_the_kernels_would_misread(name: str, make_codes, match: str) -> None:
    fmt = FORMATS[name]
    with pytest.raises(ValueError, match=match):
        mfs.Packed(make_codes(3, fmt.row_bytes(7)), np.ones(3, np.float32), fmt, 7)


@pytest.mark.parametrize("dim", [0, -1, True, 2.0, "3"])
def test_packed_refuses_a_dim_that_is_not_a_positive_integer(dim: object) -> None:
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        mfs.Packed(np.zeros((1, 1), np.uint8), np.ones(1, np.float32), "e4m3", dim)


def test_arrays_changed_in_place_after_packing_are_refused_before_decode() -> None:
    p = mfs.encode(np.ones((4, 8), np.float32), "e4m3")
    p.codes.shape = (8, 4)  # the same bytes read as rows half as wide
    with pytest.raises(ValueError, match="bytes per row"):
        mfs.decode(p)
    q = mfs.encode(np.ones((4, 8), np.float32), "e4m3")
    q.scales.shape = (2, 2)
    with pytest.raises(ValueError, match="scales must be float32 of shape"):
        mfs.decode(q)


def test_packed_slicing_and_non_contiguous_codes() -> None:
    x = np.random.default_rng(0).standard_normal((6, 9)).astype(np.float32)
    p = mfs.encode(x, "e3m2")
    np.testing.assert_array_equal(mfs.decode(p[2]), mfs.decode(p)[2:3])
    np.testing.assert_array_equal(mfs.decode(p[::2]), mfs.decode(p)[::2])


def test_storage_bytes_reproduces_table_1() -> None:
    # The study's Table 1 (MiB for one 512-value vector per trial pair, no scales).
    mib = 2**20
    for fmt, expected in [("fp32", 73.46), ("fp16", 36.73), ("e4m3", 18.36), ("e3m2", 13.77), ("e2m1", 9.18)]:
        assert mfs.storage_bytes(37_611, 512, fmt, "none") / mib == pytest.approx(expected, abs=0.006)
    assert mfs.storage_bytes(579_818, 512, "e2m1", "none") / mib == pytest.approx(141.56, abs=0.006)
    assert mfs.storage_bytes(10, 192, "e2m1", "vector") == 10 * (96 + 4)
    assert mfs.storage_bytes(10, 7, "e3m2", "none") == 10 * 6  # ceil(42 / 8)


@pytest.mark.parametrize("name", ALL)
def test_nbytes_of_packed_equals_storage_bytes(name: str) -> None:
    p = mfs.encode(np.ones((4, 13), np.float32), name)
    assert p.nbytes == mfs.storage_bytes(4, 13, name, p.scale)
