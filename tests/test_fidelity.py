"""Fidelity metrics: score error, decision flips and the paired bootstrap of ΔEER."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from minifloat_store.eval import fidelity
from minifloat_store.eval.metrics import eer


def test_rms_score_error_of_a_hand_computed_example():
    # differences 0.1, 0, -0.3: mean square 0.1 / 3
    assert fidelity.rms_score_error([0.1, 0.5, 0.9], [0.2, 0.5, 0.6]) == pytest.approx(np.sqrt(0.1 / 3), rel=1e-12)
    assert fidelity.rms_score_error([0.3, -0.2], [0.3, -0.2]) == 0.0


def test_decision_flips_count_trials_accepted_by_exactly_one_system():
    ref = [0.1, 0.5, 0.7, 0.9, 0.5]
    enc = [0.6, 0.5, 0.4, 0.9, 0.49]
    # at 0.5 (inclusive): ref accepts F T T T T, enc accepts T T F T F -> trials 0, 2 and 4 flip
    assert fidelity.decision_flips(ref, enc, 0.5) == pytest.approx(3 / 5)
    assert fidelity.decision_flips(ref, ref, 0.5) == 0.0


def test_mismatched_or_non_finite_scores_are_refused():
    with pytest.raises(ValueError, match="one length"):
        fidelity.rms_score_error([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="trial 1"):
        fidelity.decision_flips([0.1, np.nan], [0.1, 0.2], 0.5)


def test_cosine_scores_of_a_hand_computed_example_and_zero_vectors_score_zero():
    x = np.array([[1, 0], [0, 2], [3, 4], [0, 0]], dtype=np.float32)
    got = fidelity.cosine_scores(x, [0, 0, 2, 3], [1, 2, 2, 0])
    np.testing.assert_allclose(got, [0.0, 0.6, 1.0, 0.0], atol=1e-15)
    with pytest.raises(ValueError, match="trial rows"):
        fidelity.cosine_scores(x, [0], [4])


def _trials(n_tar, n_non, seed):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n_tar, bool), np.zeros(n_non, bool)]
    return labels, rng.permutation(labels.size)


def test_bootstrap_eers_equal_eer_of_the_documented_resamples():
    labels, perm = _trials(40, 70, 1)
    labels = labels[perm]
    scores = np.round(np.random.default_rng(2).standard_normal(labels.size) + labels, 1)  # many ties
    got = fidelity.bootstrap_eers(labels, scores, n_boot=25, seed=7)
    rng = np.random.default_rng(7)
    tar, non = scores[labels], scores[~labels]
    for b in range(25):
        rs = np.r_[tar[rng.integers(0, tar.size, tar.size)], non[rng.integers(0, non.size, non.size)]]
        rl = np.r_[np.ones(tar.size, bool), np.zeros(non.size, bool)]
        assert got[b] == pytest.approx(eer(rs, rl)[0], abs=1e-12)


def test_delta_eer_of_identical_or_monotonically_rescaled_scores_is_exactly_zero():
    labels, perm = _trials(200, 300, 3)
    scores = np.random.default_rng(4).standard_normal(500) + labels
    assert fidelity.paired_bootstrap_delta_eer(labels, scores, scores, n_boot=50) == (0.0, 0.0, 0.0)
    assert fidelity.paired_bootstrap_delta_eer(labels, scores, 3 * scores + 1, n_boot=50) == (0.0, 0.0, 0.0)


def test_delta_eer_of_a_collapsed_encoding_is_one_half_in_every_replicate():
    # float32 separates the classes perfectly (EER 0); all-zero decodes score 0 everywhere (EER 0.5)
    labels = np.r_[np.ones(30, bool), np.zeros(50, bool)]
    ref = np.where(labels, 0.9, 0.2) + np.linspace(0, 0.01, 80)
    assert fidelity.paired_bootstrap_delta_eer(labels, ref, np.zeros(80), n_boot=40) == (0.5, 0.5, 0.5)


def test_paired_interval_covers_the_known_gaussian_difference_and_excludes_zero():
    # equal-variance Gaussian scores with separation d' have EER Phi(-d'/2): d' = 2 for the
    # reference, and adding independent noise of variance 3 halves d' -> true ΔEER = Phi(-0.5) - Phi(-1)
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(20_000, bool), np.zeros(20_000, bool)]
    ref = 2.0 * labels + rng.standard_normal(labels.size)
    enc = ref + np.sqrt(3.0) * rng.standard_normal(labels.size)
    truth = norm.cdf(-0.5) - norm.cdf(-1.0)
    delta, lo, hi = fidelity.paired_bootstrap_delta_eer(labels, ref, enc, n_boot=200, seed=0)
    assert 0 < lo <= truth <= hi and lo <= delta <= hi
    assert hi - lo < 0.02  # 40k trials pin a 15-point difference to about a point


def test_bootstrap_of_several_systems_at_once_equals_one_at_a_time():
    labels, _ = _trials(60, 90, 6)
    rng = np.random.default_rng(8)
    scores = np.stack([rng.standard_normal(150) + k * labels for k in (0.5, 1.0, 2.0)])
    together = fidelity.bootstrap_eers(labels, scores, n_boot=30, seed=3)
    assert together.shape == (3, 30)
    for k in range(3):
        np.testing.assert_array_equal(together[k], fidelity.bootstrap_eers(labels, scores[k], n_boot=30, seed=3))
