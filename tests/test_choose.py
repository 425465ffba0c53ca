"""mfs.recommend: the smallest encoding whose decisions stay those of float32."""

from __future__ import annotations

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store.choose import cross_fit_quantize, encoding_name, neighbour_pairs, parse_encoding
from minifloat_store.metrics import eer


def _speakers(n_speakers=40, per_speaker=8, d=64, spread=0.6, seed=0, scale=0.05):
    """Clustered vectors: a centre per speaker plus noise; small values (fp4 without a scale rounds them to 0)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_speakers, d))
    spk = np.repeat(np.arange(n_speakers), per_speaker)
    x = centres[spk] + spread * rng.standard_normal((spk.size, d))
    return (scale * x).astype(np.float32), spk


def test_encoding_names_parse_with_vector_scale_and_no_transform_by_default():
    assert parse_encoding("nf4/vector/centre+rotate") == mfs.Encoding("nf4", "vector", "centre+rotate")
    assert parse_encoding("e2m1") == mfs.Encoding("e2m1", "vector", "none")
    assert parse_encoding("int8/block32") == mfs.Encoding("int8", "block32", "none")
    assert encoding_name(parse_encoding("fp32")) == "fp32"
    assert encoding_name(parse_encoding("nf3/vector/rotate")) == "nf3/vector/rotate"
    for bad in ("nf4/vector/centre/extra", "nf9", "e2m1/sideways", "e2m1//rotate", ""):
        with pytest.raises(ValueError, match="encoding"):
            parse_encoding(bad)


def test_flips_over_trials_match_a_hand_computed_example():
    # Sign vectors (binary/vector, nothing fitted): a, b, c -> (+, +), d -> (+, -).
    # float32 cosines: ab 0.385, ac 0.9998, ad 0.882, cd 0.924 -> at 0.5 accept F T T T;
    # binary cosines:  ab 1,     ac 1,      ad 0,     cd 0     -> accept T T F F: 3 of 4 flip.
    x = np.array([[1, 0.2], [0.2, 1], [1, 0.1], [1, -0.3]], dtype=np.float32)
    trials = (np.array([0, 0, 0, 2]), np.array([1, 2, 3, 3]), np.array([False, True, True, True]))
    rec = mfs.recommend(x, trials, threshold=0.5, max_flips=0.8, candidates=["binary/vector", "fp32"])
    (binary,) = [c for c in rec.table if c.name == "binary/vector"]
    assert binary.flips == pytest.approx(3 / 4)
    ref = np.array([0.4 / 1.04, 1.02 / np.sqrt(1.04 * 1.01), 0.94 / np.sqrt(1.04 * 1.09), 0.97 / np.sqrt(1.01 * 1.09)])
    assert binary.rms_score_error == pytest.approx(np.sqrt(np.mean((np.array([1, 1, 0, 0]) - ref) ** 2)), rel=1e-6)
    assert rec.name == "binary/vector" and rec.pairs == "trials" and rec.n_pairs == 4
    strict = mfs.recommend(x, trials, threshold=0.5, max_flips=0.5, candidates=["binary/vector", "fp32"])
    assert strict.name == "fp32"


def test_recommend_picks_the_smallest_encoding_that_keeps_decisions():
    # Unscaled fp4 rounds every value of these small vectors to 0: every pair scores 0 and each accepted
    # neighbour pair flips. int8 after centring and rotation keeps every decision. fp32 is the fallback.
    x, _ = _speakers()
    rec = mfs.recommend(x, threshold=0.5, candidates=["e2m1/none", "int8/vector/centre+rotate", "fp32"])
    by_name = {c.name: c for c in rec.table}
    assert by_name["e2m1/none"].flips > 0.5 and not by_name["e2m1/none"].accepted
    assert by_name["int8/vector/centre+rotate"].flips <= 0.005
    assert rec.name == "int8/vector/centre+rotate"
    assert [c.bits_per_value for c in rec.table] == sorted(c.bits_per_value for c in rec.table)
    # the encoding comes back fitted on the whole sample, ready to encode
    np.testing.assert_array_equal(rec.encoding.mean, x.mean(axis=0, dtype=np.float64).astype(np.float32))
    assert mfs.decode(mfs.encode(x, rec.encoding)).shape == x.shape
    assert "<- recommended" in rec.to_text()


def test_tighter_tolerance_moves_the_choice_to_more_bits():
    x, spk = _speakers(seed=1)
    a, b = np.triu_indices(x.shape[0], k=1)
    trials = (a, b, spk[a] == spk[b])
    cands = ["nf2/vector/centre+rotate", "nf4/vector/centre+rotate", "int8/vector/centre+rotate", "fp32"]
    loose = mfs.recommend(x, trials, max_flips=0.05, candidates=cands)
    tight = mfs.recommend(x, trials, max_flips=0.0, candidates=cands)
    assert loose.threshold == pytest.approx(eer(_cos(x, a, b), trials[2])[1])
    assert loose.encoding.bits_per_value(64) < tight.encoding.bits_per_value(64)
    for rec in (loose, tight):
        chosen = next(c for c in rec.table if c.encoding is rec.encoding)
        assert chosen.accepted and all(not c.accepted for c in rec.table if c.bits_per_value < chosen.bits_per_value)


def test_a_threshold_no_pair_comes_near_is_called_out():
    """Zero flips where no pair can flip must not read as a clean bill: the table says how few pairs were near."""
    x, _ = _speakers()
    far = mfs.recommend(x, threshold=0.999, candidates=["binary/vector", "fp32"])
    ref = _cos(x, *neighbour_pairs(x))
    assert far.near_threshold == int(np.count_nonzero(np.abs(ref - 0.999) <= 0.05)) < 100
    assert "Caution: only" in far.to_text()
    near = mfs.recommend(x, threshold=float(np.median(ref)), candidates=["binary/vector", "fp32"])
    assert near.near_threshold >= 100 and "Caution" not in near.to_text()


def _cos(x, a, b):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    return np.einsum("ij,ij->i", u[a].astype(np.float64), u[b].astype(np.float64))


def test_neighbour_pairs_are_each_vectors_nearest_by_cosine():
    angles = np.array([0.0, 0.1, 0.3, 3.0, 3.05])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    left, right = neighbour_pairs(x, k=1)
    # 0 <-> 1, 1 <-> 0, 2 -> 1, 3 <-> 4
    assert list(zip(left.tolist(), right.tolist(), strict=True)) == [(0, 1), (1, 2), (3, 4)]


def test_cross_fitting_encodes_each_half_with_the_mean_of_the_other():
    x, _ = _speakers(n_speakers=4, per_speaker=4, d=32)
    enc = mfs.Encoding("int8", "vector", "centre")
    y = cross_fit_quantize(x, enc)
    np.testing.assert_array_equal(y[0::2], mfs.quantize(x[0::2], enc.fit(x[1::2])))
    np.testing.assert_array_equal(y[1::2], mfs.quantize(x[1::2], enc.fit(x[0::2])))


def test_recommend_refuses_what_it_cannot_measure():
    x, _ = _speakers(n_speakers=5, per_speaker=3)
    with pytest.raises(ValueError, match="trials .* or the operating threshold"):
        mfs.recommend(x)
    with pytest.raises(ValueError, match="no candidate keeps flips within"):
        mfs.recommend(x, threshold=0.5, max_flips=0.0, candidates=["e2m1/none"])
    with pytest.raises(ValueError, match="rows must be in"):
        mfs.recommend(x, (np.array([0]), np.array([99]), np.array([True])))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="sample row 3"):
        mfs.recommend(bad, threshold=0.5)
