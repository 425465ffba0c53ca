"""Encodings (element x scale x transform): kernels against the numpy reference, byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store.codebooks import (
    CODEBOOKS,
    GAUSSIAN_STEP,
    NF_LEVELS,
    gaussian_uniform_step,
    get_codebook,
    lloyd_max_gaussian,
)
from minifloat_store.encoding import ENCODING_SCALES, TRANSFORMS, Encoded, Encoding
from minifloat_store.encoding_codec import decode_with, encode_with
from minifloat_store.reference_encoding import reference_decode_encoding, reference_encode_encoding
from minifloat_store.transforms import Rotation, rotation_signs, splitmix64

ELEMENTS = list(CODEBOOKS)
SMALL = [name for name, cb in CODEBOOKS.items() if cb.bits <= 8]


def embeddings(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Anisotropic vectors with a common offset (like ReLU embeddings), a zero row and a constant row."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * rng.gamma(1.0, 1.0, d) + 2 * rng.standard_normal(d)
    x = x.astype(np.float32)
    x[1] = 0
    x[2] = 0.25
    return x


def all_encodings(elements=ELEMENTS, scales=ENCODING_SCALES, transforms=TRANSFORMS):
    for el in elements:
        for sc in scales:
            if sc.startswith("block") and CODEBOOKS[el].bits > 8:
                continue
            for tr in transforms:
                yield el, sc, tr


def fitted(el: str, sc: str, tr: str, x: np.ndarray, seed: int = 7) -> Encoding:
    return Encoding(el, sc, tr, seed=seed).fit(x)


# ---------------------------------------------------------------- codebooks


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_nf_tables_are_the_lloyd_max_levels_of_a_unit_gaussian(bits):
    levels = lloyd_max_gaussian(2**bits)
    np.testing.assert_allclose(levels[2 ** (bits - 1) :], NF_LEVELS[bits], rtol=1e-8)
    np.testing.assert_allclose(levels, -levels[::-1], atol=1e-12)


@pytest.mark.parametrize("L", sorted(GAUSSIAN_STEP))
def test_int_steps_are_the_mse_optimal_uniform_steps_for_a_unit_gaussian(L):
    assert gaussian_uniform_step(L) == pytest.approx(GAUSSIAN_STEP[L], rel=1e-5)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_int_codes_are_twos_complement_of_symmetric_levels(bits):
    cb = get_codebook(f"int{bits}")
    L = 2 ** (bits - 1) - 1
    assert cb.max_level == L
    vals = np.arange(-L, L + 1)
    np.testing.assert_array_equal(cb.table[vals & (2**bits - 1)], vals)


def test_binary_keeps_the_sign_with_zero_positive():
    x = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0]], dtype=np.float32)
    c, _, _ = reference_encode_encoding(x, Encoding("binary", "none"))
    assert np.unpackbits(c[0], bitorder="little")[:5].tolist() == [0, 1, 1, 1, 1]


# ---------------------------------------------------------------- rotation


def test_splitmix64_matches_the_published_sequence():
    # SplitMix64 from state 0 (Steele, Lea, Flood 2014; Vigna's reference C code)
    assert splitmix64(0, 3).tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@pytest.mark.parametrize("d", [1, 2, 7, 64, 100, 192, 256])
def test_rotation_is_orthogonal_and_its_inverse_undoes_it(d):
    r = Rotation(3, d)
    m = r.forward(np.eye(d))  # row i = R(e_i): R^T
    np.testing.assert_allclose(m @ m.T, np.eye(d), atol=1e-12)
    x = np.random.default_rng(d).standard_normal((5, d))
    np.testing.assert_allclose(r.inverse(r.forward(x)), x, atol=1e-12)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(r.inverse(r.forward(x32)), x32, atol=1e-5)


def test_rotation_mixes_every_coordinate_when_d_is_not_a_power_of_two():
    m = Rotation(0, 192).forward(np.eye(192))
    assert (np.count_nonzero(np.abs(m) > 1e-9, axis=1) >= 128).all()


def test_rotation_seeds_give_different_signs():
    assert not np.array_equal(rotation_signs(0, 256)[0], rotation_signs(1, 256)[0])


# ---------------------------------------------------------------- kernels == reference


@pytest.mark.parametrize(("el", "sc", "tr"), list(all_encodings()))
def test_kernels_match_the_reference_byte_for_byte(el, sc, tr):
    x = embeddings(40, 100)
    enc = fitted(el, sc, tr, x)
    e = encode_with(x, enc)
    codes, scales, blocks = reference_encode_encoding(x, enc)
    np.testing.assert_array_equal(e.codes, codes)
    if scales is not None:
        np.testing.assert_array_equal(e.scales, scales)
    else:
        assert e.scales is None
    if blocks is not None:
        np.testing.assert_array_equal(e.block_scales, blocks)
    else:
        assert e.block_scales is None
    y = decode_with(e)
    np.testing.assert_array_equal(y, reference_decode_encoding(codes, scales, blocks, enc, 100))


@pytest.mark.parametrize("d", [1, 3, 17, 33, 47, 64])
@pytest.mark.parametrize("el", ["binary", "int2", "nf3", "e2m1", "e3m2", "int8"])
@pytest.mark.parametrize("sc", ["vector", "block32", "block16"])
def test_odd_dimensions_and_partial_blocks_match_the_reference(d, el, sc):
    x = embeddings(9, d, seed=d)
    enc = fitted(el, sc, "centre+rotate", x)
    e = encode_with(x, enc)
    codes, scales, blocks = reference_encode_encoding(x, enc)
    np.testing.assert_array_equal(e.codes, codes)
    np.testing.assert_array_equal(decode_with(e), reference_decode_encoding(codes, scales, blocks, enc, d))


@pytest.mark.parametrize("d", [8, 12, 16, 32, 64, 128, 192, 256, 384, 512, 1000])
def test_vectorised_rotation_gives_the_bits_of_the_numpy_rotation(d):
    # fp32 codes are the rotated float32 values themselves: every butterfly
    # path of the kernels (in-vector stages, runs of 64, one and two stages
    # on runs of 8, overlapping blocks at any offset) against transforms.py.
    x = embeddings(20, d, seed=d)
    enc = fitted("fp32", "none", "centre+rotate", x)
    e = encode_with(x, enc)
    rotated = Rotation(7, d).forward(x - enc.mean)
    np.testing.assert_array_equal(e.codes.view(np.uint32), rotated.view(np.uint32))
    expected = Rotation(7, d).inverse(rotated) + enc.mean
    np.testing.assert_array_equal(decode_with(e).view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("el", ["nf4", "int4", "int8", "e2m1"])
@pytest.mark.parametrize("sc", ["vector", "block32", "block16"])
@pytest.mark.parametrize("d", [192, 256])
def test_embedding_sized_rows_match_the_reference(el, sc, d):
    x = embeddings(30, d, seed=d)
    enc = fitted(el, sc, "centre+rotate", x)
    e = encode_with(x, enc)
    codes, scales, blocks = reference_encode_encoding(x, enc)
    np.testing.assert_array_equal(e.codes, codes)
    if scales is not None:
        np.testing.assert_array_equal(e.scales, scales)
    if blocks is not None:
        np.testing.assert_array_equal(e.block_scales, blocks)
    np.testing.assert_array_equal(decode_with(e), reference_decode_encoding(codes, scales, blocks, enc, d))


@pytest.mark.parametrize("fmt", [f for f in CODEBOOKS if CODEBOOKS[f].family == "minifloat"])
@pytest.mark.parametrize("scale", ["none", "vector"])
def test_a_plain_minifloat_encoding_writes_the_bytes_of_the_format_api(fmt, scale):
    x = embeddings(30, 50)
    e = encode_with(x, Encoding(fmt, scale))
    p = mfs.encode(x, fmt, scale=scale)
    np.testing.assert_array_equal(e.codes, p.codes)
    if e.scales is not None:
        np.testing.assert_array_equal(e.scales, p.scales)
    np.testing.assert_array_equal(decode_with(e), mfs.decode(p))


def test_extreme_values_saturate_and_tiny_vectors_stay_finite():
    x = np.array([[3e38, -3e38, 1.0, 0.0], [1e-44, -1e-45, 0.0, 1e-40]], dtype=np.float32)
    for el, sc, tr in all_encodings(SMALL, transforms=["none"]):
        enc = Encoding(el, sc, tr)
        e = encode_with(x, enc)
        codes, scales, blocks = reference_encode_encoding(x, enc)
        np.testing.assert_array_equal(e.codes, codes, err_msg=f"{el} {sc} {tr}")
        assert np.isfinite(decode_with(e)).all()


def test_a_rotation_that_overflows_float32_is_a_clear_error():
    x = np.array([[1.0, 2.0, 3.0, 4.0], [3e38, 3e38, 3e38, 3e38]], dtype=np.float32)
    with pytest.raises(ValueError, match="row 1 is not finite after the transform"):
        encode_with(x, Encoding("nf4", "vector", "rotate"))


# ---------------------------------------------------------------- round trips and accuracy


def test_centre_and_rotate_round_trip_in_float32():
    x = embeddings(50, 192)
    enc = Encoding("fp32", "none", "centre+rotate", seed=5).fit(x)
    np.testing.assert_allclose(mfs_decode(x, enc), x, atol=2e-6 * np.abs(x).max())


def mfs_decode(x: np.ndarray, enc: Encoding) -> np.ndarray:
    return decode_with(encode_with(x, enc))


def test_decoding_returns_the_original_space():
    x = embeddings(200, 256)
    enc = Encoding("int8", "vector", "centre+rotate").fit(x)
    y = mfs_decode(x, enc)
    assert np.sqrt(((y - x) ** 2).mean() / (x**2).mean()) < 0.01


def test_centring_and_rotation_cut_the_error_of_4_bit_codes_on_offset_anisotropic_data():
    x = embeddings(500, 256)
    err = {}
    for tr in TRANSFORMS:
        enc = Encoding("nf4", "vector", tr).fit(x)
        err[tr] = float(((mfs_decode(x, enc) - x) ** 2).mean())
    assert err["centre+rotate"] < 0.5 * err["none"]
    assert err["centre+rotate"] < err["centre"] and err["centre+rotate"] < err["rotate"]


def test_fit_learns_the_mean_only_when_centring():
    x = embeddings(100, 32)
    enc = Encoding("nf4", transform="centre").fit(x)
    np.testing.assert_array_equal(enc.mean, x.mean(axis=0, dtype=np.float64).astype(np.float32))
    rot = Encoding("nf4", transform="rotate", seed=3)
    assert rot.fit(x) == rot and rot.fit(x).mean is None


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("el", "sc", "d", "bits"),
    [
        ("nf4", "vector", 256, (128 + 4) * 8 / 256),
        ("int4", "block32", 256, (128 + 8) * 8 / 256),
        ("e2m1", "block16", 256, (128 + 16 + 4) * 8 / 256),
        ("int8", "vector", 192, (192 + 4) * 8 / 192),
        ("nf3", "vector", 100, (38 + 4) * 8 / 100),
        ("binary", "none", 100, 13 * 8 / 100),
        ("int6", "block32", 40, (30 + 2) * 8 / 40),
        ("fp32", "vector", 10, 32.0),
    ],
)
def test_bits_per_value_counts_codes_and_every_scale(el, sc, d, bits):
    enc = Encoding(el, sc, "rotate")
    assert enc.bits_per_value(d) == pytest.approx(bits, rel=1e-15)
    x = embeddings(7, d)
    e = encode_with(x, enc)
    assert (
        e.nbytes
        == round(7 * bits * d / 8)
        == e.codes.nbytes + sum(a.nbytes for a in (e.scales, e.block_scales) if a is not None)
    )


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(("el", "sc", "tr"), [("nf4", "vector", "centre+rotate"), ("e2m1", "block16", "rotate"),
                                             ("int3", "block32", "centre"), ("e4m3", "none", "none")])  # fmt: skip
def test_config_and_fitted_arrays_rebuild_the_identical_encoding(el, sc, tr):
    x = embeddings(60, 48)
    enc = Encoding(el, sc, tr, seed=2**63 + 5).fit(x)
    config = json.loads(json.dumps(enc.get_config()))
    arrays = {k: np.array(v) for k, v in enc.fitted_arrays().items()}
    again = Encoding.from_config(config, arrays)
    assert again == enc
    np.testing.assert_array_equal(encode_with(x, again).codes, encode_with(x, enc).codes)


def test_from_config_rejects_what_it_cannot_read():
    good = Encoding("nf4").get_config()
    with pytest.raises(ValueError, match="not an encoding config"):
        Encoding.from_config({**good, "id": "zlib"})
    with pytest.raises(ValueError, match="version 2 is not supported"):
        Encoding.from_config({**good, "version": 2})
    with pytest.raises(ValueError, match="unknown keys"):
        Encoding.from_config({**good, "level": 3})
    with pytest.raises(ValueError, match="does not centre"):
        Encoding.from_config(good, {"mean": np.zeros(4, np.float32)})
    with pytest.raises(ValueError, match="NaN or inf"):
        Encoding.from_config({**good, "transform": "centre"}, {"mean": np.array([1, np.nan], np.float32)})


# ---------------------------------------------------------------- invalid use


def test_invalid_encodings_are_clear_errors():
    with pytest.raises(ValueError, match="unknown element 'int5'"):
        Encoding("int5")
    with pytest.raises(ValueError, match="needs an element of at most 8 bits"):
        Encoding("fp16", "block32")
    with pytest.raises(ValueError, match="unknown scale 'row'"):
        Encoding("nf4", "row")
    with pytest.raises(ValueError, match="unknown transform"):
        Encoding("nf4", transform="pca")
    with pytest.raises(ValueError, match="seed"):
        Encoding("nf4", seed=-1)


def test_an_unfitted_centring_encoding_refuses_to_encode():
    with pytest.raises(ValueError, match="not fitted"):
        encode_with(np.ones((2, 4), np.float32), Encoding("nf4", transform="centre+rotate"))


def test_a_fitted_encoding_refuses_another_dimension():
    enc = Encoding("nf4", transform="centre").fit(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="fitted on dim 4, not 5"):
        encode_with(np.ones((2, 5), np.float32), enc)


def test_nan_input_names_the_row_and_encodes_nothing():
    x = embeddings(5, 8)
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="row 3 contains NaN"):
        encode_with(x, Encoding("nf4", "vector", "rotate"))


def test_encoded_rejects_block_scale_codes_no_encoder_writes():
    x = embeddings(3, 32)
    e = encode_with(x, Encoding("e2m1", "block32"))
    bad = e.block_scales.copy()
    bad[1, 0] = 0xFF
    with pytest.raises(ValueError, match="block scale 0 of row 1"):
        Encoded(e.codes, None, bad, e.encoding, 32)
    with pytest.raises(ValueError, match="codes have"):
        Encoded(e.codes[:, :-1], None, e.block_scales, e.encoding, 32)
