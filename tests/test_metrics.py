"""Tests for minifloat_store.eval.metrics: hand-computed cases, a scikit-learn
cross-check, tie handling, threshold inclusivity, properties and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minifloat_store.eval.metrics import det_curve, eer, far_frr, far_frr_curve, min_dcf

# ---------------------------------------------------------------------------
# A plain reference anyone can check: count, per distinct score, what is accepted.
# ---------------------------------------------------------------------------


def reference_points(scores, labels):
    """(far, frr, thresholds) per distinct score, ascending, by brute-force counting."""
    scores = [float(v) for v in scores]
    labels = [bool(v) for v in labels]
    n_tar = sum(labels)
    n_non = len(labels) - n_tar
    thresholds = sorted(set(scores))
    far, frr = [], []
    for t in thresholds:
        far.append(sum(1 for s, y in zip(scores, labels, strict=True) if s >= t and not y) / n_non)
        frr.append(sum(1 for s, y in zip(scores, labels, strict=True) if s < t and y) / n_tar)
    return np.array(far), np.array(frr), np.array(thresholds)


# Hypothesis: a few trials with heavily tied (quantised) scores and both classes present.
tied_trials = st.lists(
    st.tuples(st.integers(min_value=-3, max_value=3), st.booleans()), min_size=2, max_size=40
).filter(lambda rows: 0 < sum(y for _, y in rows) < len(rows))


def split(rows):
    return np.array([s for s, _ in rows], dtype=np.float64), np.array([y for _, y in rows])


# ---------------------------------------------------------------------------
# Hand-computed tiny cases
# ---------------------------------------------------------------------------


def test_eer_exact_crossing_at_a_distinct_score():
    # scores 0.1(n) 0.35(t) 0.4(n) 0.8(t); 2 targets, 2 non-targets.
    # t=0.1  : accept all          FAR 2/2 FRR 0/2
    # t=0.35 : accept .35 .4 .8    FAR 1/2 FRR 0/2
    # t=0.4  : accept .4 .8        FAR 1/2 FRR 1/2  <- FAR = FRR exactly
    # t=0.8  : accept .8           FAR 0/2 FRR 1/2
    scores = [0.1, 0.4, 0.35, 0.8]
    labels = [0, 0, 1, 1]
    rate, threshold = eer(scores, labels)
    assert rate == 0.5
    assert threshold == 0.4


def test_eer_interpolates_between_adjacent_distinct_scores():
    # scores 1(n) 2(t) 3(n) 4(t) 5(t); 3 targets, 2 non-targets.
    # t=3: FAR 1/2 FRR 1/3 (FRR-FAR = -1/6);  t=4: FAR 0 FRR 1/3 (FRR-FAR = +1/3).
    # Weight on the segment w = (1/6) / (1/3 + 1/6) = 1/3:
    # EER = 1/2 + 1/3 * (0 - 1/2) = 1/3, threshold = 3 + 1/3 * (4 - 3) = 10/3.
    rate, threshold = eer([1, 2, 3, 4, 5], [0, 1, 0, 1, 1])
    assert rate == pytest.approx(1 / 3, abs=1e-15)
    assert threshold == pytest.approx(10 / 3, abs=1e-15)


def test_eer_of_tied_group_treats_the_group_as_one_operating_point():
    # scores 0(n) 1(n) 1(t) 1(t) 2(t); the three 1s form one group.
    # t=1: FAR 1/2 FRR 0 (diff -1/2);  t=2: FAR 0 FRR 2/3 (diff +2/3).
    # w = (1/2) / (2/3 + 1/2) = 3/7; EER = 1/2 - 3/7 * 1/2 = 2/7; threshold 1 + 3/7.
    # A per-trial ROC would instead pass through a point inside the tie whose
    # position depends on how the sort ordered the three tied trials.
    rate, threshold = eer([1, 0, 1, 2, 1], [1, 0, 0, 1, 1])
    assert rate == pytest.approx(2 / 7, abs=1e-15)
    assert threshold == pytest.approx(1 + 3 / 7, abs=1e-15)


def test_eer_is_one_half_when_all_scores_are_equal():
    # Only "accept all" (FAR 1, FRR 0) and "reject all" (FAR 0, FRR 1): they cross at 1/2.
    rate, threshold = eer(np.full(7, 0.25), [1, 0, 0, 1, 1, 0, 1])
    assert rate == 0.5
    assert threshold == pytest.approx(0.25)


def test_eer_of_perfect_and_inverted_scores():
    assert eer([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == (0.0, 0.8)
    # Every target below every non-target: at t = 0.8 all targets are rejected
    # and all non-targets accepted.
    assert eer([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == (1.0, 0.8)


def test_far_frr_hand_computed():
    # scores 1(n) 2(t) 3(n) 4(t) 5(t) at threshold 3.5: accepted 4, 5.
    # FAR = FP/(FP+TN) = 0/2, FRR = FN/(FN+TP) = 1/3 (the target at 2).
    assert far_frr([1, 2, 3, 4, 5], [0, 1, 0, 1, 1], 3.5) == (0.0, 1 / 3)
    # At 1.5: accepted 2..5 -> FP = 1 (the 3), FN = 0.
    assert far_frr([1, 2, 3, 4, 5], [0, 1, 0, 1, 1], 1.5) == (0.5, 0.0)


def test_score_exactly_at_threshold_is_accepted():
    scores = [1.0, 2.0, 3.0, 4.0, 5.0]
    labels = [0, 1, 0, 1, 1]
    # At t = 3 the non-target at 3 is accepted (FAR 1/2) and the target at 2 rejected.
    assert far_frr(scores, labels, 3.0) == (0.5, 1 / 3)
    # Just above 3 it is rejected.
    assert far_frr(scores, labels, math.nextafter(3.0, math.inf)) == (0.0, 1 / 3)
    # A target exactly at the threshold is accepted too.
    assert far_frr(scores, labels, 2.0) == (0.5, 0.0)
    far, frr = far_frr_curve(scores, labels, [2.0, 3.0, math.nextafter(3.0, math.inf)])
    np.testing.assert_array_equal(far, [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(frr, [0.0, 1 / 3, 1 / 3])


def test_far_frr_at_infinite_thresholds():
    assert far_frr([0.0, 1.0], [0, 1], -math.inf) == (1.0, 0.0)
    assert far_frr([0.0, 1.0], [0, 1], math.inf) == (0.0, 1.0)


def test_min_dcf_hand_computed():
    scores = [1, 2, 3, 4, 5]
    labels = [0, 1, 0, 1, 1]
    # Points (FAR, FRR): t1 (1, 0), t2 (1/2, 0), t3 (1/2, 1/3), t4 (0, 1/3),
    # t5 (0, 2/3), reject all (0, 1).
    # p=0.01, c=1: DCF = 0.01*FRR + 0.99*FAR; best at t4: 0.01/3;
    # normaliser min(0.01, 0.99) = 0.01 -> 1/3.
    assert min_dcf(scores, labels) == pytest.approx(1 / 3, abs=1e-12)
    # p=0.5, c_miss=10, c_fa=1: DCF = 5*FRR + 0.5*FAR; t2: 0.25, t4: 5/3;
    # best 0.25 at t2; normaliser min(5, 0.5) = 0.5 -> 0.5.
    assert min_dcf(scores, labels, p_target=0.5, c_miss=10) == pytest.approx(0.5, abs=1e-12)
    # p=0.05: DCF = 0.05*FRR + 0.95*FAR; t4: 0.05/3; normaliser 0.05 -> 1/3.
    assert min_dcf(scores, labels, p_target=0.05) == pytest.approx(1 / 3, abs=1e-12)


def test_min_dcf_is_zero_for_separable_and_one_for_uninformative_scores():
    assert min_dcf([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 0.0
    # All tied: only accept all (cost 0.99) or reject all (cost 0.01) -> 0.01/0.01.
    assert min_dcf([0.5] * 4, [0, 0, 1, 1]) == 1.0


def test_det_curve_hand_computed_with_ties():
    curve = det_curve([1, 0, 1, 2, 1], [1, 0, 0, 1, 1])
    np.testing.assert_array_equal(curve.thresholds, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(curve.far, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(curve.frr, [0.0, 0.0, 2 / 3])


# ---------------------------------------------------------------------------
# Cross-check against scikit-learn on continuous scores
# ---------------------------------------------------------------------------


def sklearn_eer(labels, scores):
    """EER from sklearn's ROC, interpolating where 1 - tpr meets fpr."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    # sklearn goes from "reject all" (fpr 0) to "accept all" (fpr 1): fnr - fpr decreases.
    d = fnr - fpr
    i = int(np.flatnonzero(d <= 0)[0])
    if d[i] == 0:
        return fpr[i]
    w = d[i - 1] / (d[i - 1] - d[i])
    return fpr[i - 1] + w * (fpr[i] - fpr[i - 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [50, 2_000, 20_000])
def test_eer_matches_sklearn_roc_crossing(seed, n):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    scores = rng.normal(size=n) + 1.5 * labels
    # Two float64 computations of one interpolated crossing: measured to agree within 5.6e-17 (10 seeds,
    # n = 50 to 200,000), so anything beyond rounding (1e-12) is a real difference.
    assert eer(scores, labels)[0] == pytest.approx(sklearn_eer(labels, scores), abs=1e-12, rel=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_det_curve_equals_sklearn_roc(seed):
    roc_curve = pytest.importorskip("sklearn.metrics").roc_curve
    rng = np.random.default_rng(seed)
    labels = rng.random(5_000) < 0.5
    # Quantised scores so that the comparison also covers ties.
    scores = np.round(rng.normal(size=5_000) + labels, 1)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    finite = np.isfinite(thresholds)  # sklearn adds a leading "reject all" point at +inf
    curve = det_curve(scores, labels)
    np.testing.assert_array_equal(curve.thresholds, thresholds[finite][::-1])
    np.testing.assert_allclose(curve.far, fpr[finite][::-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.frr, 1 - tpr[finite][::-1], rtol=0, atol=1e-12)


def test_far_frr_curve_matches_single_threshold_calls():
    rng = np.random.default_rng(3)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.normal(size=300), 1)
    thresholds = np.r_[-np.inf, np.linspace(-3, 3, 41), scores[:20], np.inf]
    far, frr = far_frr_curve(scores, labels, thresholds)
    expected = np.array([far_frr(scores, labels, t) for t in thresholds])
    np.testing.assert_array_equal(far, expected[:, 0])
    np.testing.assert_array_equal(frr, expected[:, 1])


def test_far_frr_curve_keeps_the_shape_of_thresholds():
    far, frr = far_frr_curve([0.0, 1.0, 2.0], [0, 1, 1], np.zeros((2, 3)))
    assert far.shape == frr.shape == (2, 3)
    assert far.dtype == frr.dtype == np.float64


# ---------------------------------------------------------------------------
# Ties and order: results never depend on how trials are ordered
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_quantised_scores_give_the_same_result_after_shuffling(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(4_000) < 0.5
    # Few distinct values, as cosine scores of 4-bit embeddings give.
    scores = np.round(rng.normal(size=4_000) * 0.5 + 0.8 * labels, 1)
    perm = rng.permutation(labels.size)
    assert eer(scores[perm], labels[perm]) == eer(scores, labels)
    assert min_dcf(scores[perm], labels[perm]) == min_dcf(scores, labels)
    a, b = det_curve(scores, labels), det_curve(scores[perm], labels[perm])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_negative_zero_and_zero_are_one_tie():
    a = eer([-0.0, 0.0, 1.0], [1, 0, 1])
    b = eer([0.0, -0.0, 1.0], [1, 0, 1])
    assert a == b
    assert det_curve([-0.0, 0.0, 1.0], [1, 0, 1]).thresholds.size == 2


@settings(max_examples=100, deadline=None)
@given(rows=tied_trials, seed=st.integers(0, 2**32 - 1))
def test_property_invariant_to_trial_order(rows, seed):
    scores, labels = split(rows)
    perm = np.random.default_rng(seed).permutation(scores.size)
    assert eer(scores[perm], labels[perm]) == eer(scores, labels)
    assert min_dcf(scores[perm], labels[perm], p_target=0.05) == min_dcf(scores, labels, 0.05)


@settings(max_examples=100, deadline=None)
@given(rows=tied_trials)
def test_property_eer_invariant_to_strictly_increasing_transform(rows):
    scores, labels = split(rows)
    rate, _ = eer(scores, labels)
    # exp and an affine map keep the order and the tie groups of small integers.
    assert eer(np.exp(scores), labels)[0] == pytest.approx(rate, abs=1e-12)
    assert eer(3 * scores + 7, labels)[0] == pytest.approx(rate, abs=1e-12)
    assert min_dcf(np.exp(scores), labels) == pytest.approx(min_dcf(scores, labels), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(rows=tied_trials)
def test_property_det_curve_equals_brute_force_reference(rows):
    scores, labels = split(rows)
    curve = det_curve(scores, labels)
    far, frr, thresholds = reference_points(scores, labels)
    np.testing.assert_array_equal(curve.thresholds, thresholds)
    np.testing.assert_allclose(curve.far, far, rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve.frr, frr, rtol=0, atol=1e-15)


@settings(max_examples=100, deadline=None)
@given(rows=tied_trials)
def test_property_eer_lies_between_the_operating_points_it_interpolates(rows):
    scores, labels = split(rows)
    rate, threshold = eer(scores, labels)
    far, frr, _ = reference_points(scores, labels)
    far, frr = np.r_[far, 0.0], np.r_[frr, 1.0]  # with "reject all"
    eps = 1e-12
    # No operating point has both rates below the EER, nor both above it.
    assert np.max(np.minimum(far, frr)) - eps <= rate <= np.min(np.maximum(far, frr)) + eps
    assert 0.0 <= rate <= 1.0
    assert scores.min() <= threshold <= np.nextafter(scores.max(), np.inf)


@settings(max_examples=100, deadline=None)
@given(rows=tied_trials, p_target=st.floats(0.001, 0.999))
def test_property_min_dcf_is_a_fraction_and_bounded_by_eer(rows, p_target):
    scores, labels = split(rows)
    value = min_dcf(scores, labels, p_target=p_target)
    assert 0.0 <= value <= 1.0 + 1e-12
    # At p_target 1/2 the DCF is (FRR + FAR) / 2 normalised by 1/2: FRR + FAR,
    # and the best operating point does no worse than the ends of the EER segment.
    assert min_dcf(scores, labels, p_target=0.5) <= 2 * eer(scores, labels)[0] + 1e-12


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2, 0.3], [0, 1], "same length"),
        ([[0.1, 0.2]], [[0, 1]], "scores must be 1-D"),
        ([0.1, 0.2], [[0, 1]], "labels must be 1-D"),
        ([0.1, float("nan"), 0.3], [0, 1, 1], r"trial 1 has score nan"),
        ([0.1, float("inf")], [0, 1], "must be finite"),
        (["0.1", "0.2"], [0, 1], "real numbers"),
        ([0.1, 0.2, 0.3], [0, 2, 1], "trial 1 has label 2"),
        ([0.1, 0.2], ["target", "nontarget"], "bool or 0/1"),
        ([0.1, 0.2], [1, 1], "no non-target"),
        ([0.1, 0.2], [False, False], "no target"),
        ([], [], "no target"),
    ],
)
@pytest.mark.parametrize("metric", [eer, min_dcf, det_curve])
def test_bad_input_raises_a_named_value_error(metric, scores, labels, message):
    with pytest.raises(ValueError, match=message):
        metric(scores, labels)


def test_bad_thresholds_raise():
    with pytest.raises(ValueError, match="NaN"):
        far_frr([0.0, 1.0], [0, 1], float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        far_frr_curve([0.0, 1.0], [0, 1], [0.5, float("nan")])
    with pytest.raises(ValueError, match="single number"):
        far_frr([0.0, 1.0], [0, 1], [0.5, 0.6])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p_target": 0.0}, "p_target"),
        ({"p_target": 1.0}, "p_target"),
        ({"p_target": float("nan")}, "p_target"),
        ({"c_miss": 0.0}, "c_miss"),
        ({"c_fa": -1.0}, "c_fa"),
        ({"c_fa": float("inf")}, "c_fa"),
    ],
)
def test_bad_cost_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        min_dcf([0.0, 1.0], [0, 1], **kwargs)


def test_labels_may_be_bool_int_or_float_zero_one():
    scores = [0.1, 0.4, 0.35, 0.8]
    expected = eer(scores, [False, False, True, True])
    assert eer(scores, [0, 0, 1, 1]) == expected
    assert eer(scores, np.array([0.0, 0.0, 1.0, 1.0])) == expected
    assert eer(np.array(scores, dtype=np.float32), [0, 0, 1, 1])[0] == expected[0]
