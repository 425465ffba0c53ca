"""Speaker-verification metrics on cosine (or any real-valued) scores.

Every function takes one score per trial and a binary label (``True`` / 1 =
target, i.e. same speaker) and follows one decision rule: a trial is
**accepted when ``score >= threshold``** (inclusive). From it:

* FAR (false-acceptance rate) = FP / (FP + TN): the fraction of non-target
  trials accepted;
* FRR (false-rejection rate) = FN / (FN + TP): the fraction of target trials
  rejected.

Every rate returned here is a **fraction in [0, 1]**; reports multiply by 100.

The operating points are **tie-aware**: there is one candidate threshold per
*distinct* score, so all trials sharing a score are accepted or rejected
together and no order inside a group of tied scores is ever assumed. This
matters for low-bit embeddings, whose cosine scores take few distinct values;
per-trial ROCs (one point per trial after sorting) then depend on how the sort
happened to order tied trials. The results here do not depend on the order of
the trials at all.

Each call sorts the scores once (O(n log n)); 580k trials take tens of
milliseconds. See ``docs/metrics.md`` for the definitions with examples.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DetCurve",
    "det_curve",
    "eer",
    "far_frr",
    "far_frr_curve",
    "min_dcf",
]


class DetCurve(NamedTuple):
    """Operating points of a detector, one per distinct score.

    Attributes
    ----------
    far : ndarray of shape (k,), float64
        False-acceptance rate (fraction) at each threshold; non-increasing.
    frr : ndarray of shape (k,), float64
        False-rejection rate (fraction) at each threshold; non-decreasing.
    thresholds : ndarray of shape (k,), float64
        The k distinct scores, strictly ascending; accept when score >= threshold.
    """

    far: NDArray[np.float64]
    frr: NDArray[np.float64]
    thresholds: NDArray[np.float64]


# ---------------------------------------------------------------------------
# Validation (public boundary)
# ---------------------------------------------------------------------------


def _check_scores_labels(scores: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Return (scores as float64, labels as bool) or raise a ValueError naming the problem."""
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D (one score per trial), got shape {s.shape}")
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (one label per trial), got shape {y.shape}")
    if s.shape != y.shape:
        raise ValueError(
            f"scores and labels must have the same length, got {s.shape[0]} scores and {y.shape[0]} labels"
        )
    if s.dtype.kind not in "iuf":
        raise ValueError(f"scores must be real numbers, got dtype {s.dtype}")
    # float32/float16 -> float64 is exact, so ties are preserved.
    s = s.astype(np.float64, copy=False)
    finite = np.isfinite(s)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        n_bad = int(s.size - np.count_nonzero(finite))
        raise ValueError(
            f"scores must be finite: trial {i} has score {s[i].item()!r} ({n_bad} non-finite score(s) in total)"
        )
    y = _check_labels(y)
    n_tar = int(np.count_nonzero(y))
    if n_tar == 0 or n_tar == y.size:
        kind = "target" if n_tar == 0 else "non-target"
        raise ValueError(f"need at least one target and one non-target trial, got no {kind} trials among {y.size}")
    return s, y


def _check_labels(y: NDArray) -> NDArray[np.bool_]:
    """Labels as bool: accept bool, or integers / floats that are exactly 0 or 1."""
    if y.dtype == np.bool_:
        return y
    if y.dtype.kind not in "iuf":
        raise ValueError(f"labels must be bool or 0/1, got dtype {y.dtype}")
    bad = (y != 0) & (y != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"labels must be bool or 0/1: trial {i} has label {y[i].item()!r}")
    return y == 1


def _check_thresholds(thresholds: ArrayLike) -> NDArray[np.float64]:
    t = np.asarray(thresholds)
    if t.dtype.kind not in "iuf":
        raise ValueError(f"thresholds must be real numbers, got dtype {t.dtype}")
    t = t.astype(np.float64, copy=False)
    if np.isnan(t).any():
        raise ValueError("thresholds must not be NaN (+-inf are allowed: accept all / none)")
    return t


# ---------------------------------------------------------------------------
# The tie-aware operating points (one sort)
# ---------------------------------------------------------------------------


def _operating_points(
    s: NDArray[np.float64], y: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """FAR, FRR and thresholds at every distinct score, ascending; inputs already validated."""
    order = np.argsort(s)  # stability is not needed: ties are grouped below
    s_sorted = s[order]
    y_sorted = y[order]
    # First position of every group of equal scores; -0.0 == 0.0 groups them together.
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    n = s.size
    n_tar = int(np.count_nonzero(y))
    n_non = n - n_tar
    # Targets strictly below each distinct score = targets rejected at that threshold.
    tar_below = np.r_[0, np.cumsum(y_sorted, dtype=np.int64)][starts]
    non_below = starts - tar_below
    frr = tar_below / n_tar
    far = (n_non - non_below) / n_non
    return far, frr, s_sorted[starts]


def _with_reject_all(
    far: NDArray[np.float64], frr: NDArray[np.float64], thr: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Append the 'reject every trial' point (FAR 0, FRR 1) just above the largest score.

    The distinct scores themselves end at an accept-the-top-group point; without
    this end point, data whose scores are all equal would have no EER crossing.
    """
    top = np.nextafter(thr[-1], np.inf)
    if not np.isfinite(top):  # largest float64 score: nothing finite lies above it
        top = thr[-1]
    return np.r_[far, 0.0], np.r_[frr, 1.0], np.r_[thr, top]


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def det_curve(scores: ArrayLike, labels: ArrayLike) -> DetCurve:
    """FAR and FRR at every distinct score (tie-aware DET / ROC points).

    Parameters
    ----------
    scores : array_like of shape (n,), real
        One finite score per trial (higher = more likely the same speaker).
    labels : array_like of shape (n,), bool or 0/1
        True / 1 for a target (same-speaker) trial. At least one target and one
        non-target are required.

    Returns
    -------
    DetCurve
        ``(far, frr, thresholds)``, each of shape (k,), float64, where k is the
        number of distinct scores. ``thresholds`` is strictly ascending and holds
        the distinct scores; at ``thresholds[i]`` every trial with
        ``score >= thresholds[i]`` is accepted. FAR and FRR are fractions in
        [0, 1]; the first point is "accept all" (FAR 1, FRR 0). The "reject all"
        point (FAR 0, FRR 1, any threshold above the largest score) is not
        included.

    Notes
    -----
    Equal to scikit-learn's ``roc_curve(labels, scores, drop_intermediate=False)``
    as ``far = fpr``, ``frr = 1 - tpr`` at the same (finite) thresholds.
    """
    s, y = _check_scores_labels(scores, labels)
    return DetCurve(*_operating_points(s, y))


def eer(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate and the threshold where it is reached.

    Definition (tie-aware, linearly interpolated DET crossing): take the
    operating points at every distinct score t (accept ``score >= t``), plus
    the "reject all" point (FAR 0, FRR 1) just above the largest score. Along
    ascending t, FAR(t) is non-increasing and FRR(t) non-decreasing, and
    FRR - FAR rises strictly from -1 (accept all) to +1 (reject all), so it
    changes sign exactly once. If a point has FAR = FRR, that is the EER and
    its score the threshold. Otherwise the two adjacent points where the sign
    changes are joined by a straight line (the segment of the DET/ROC between
    them, which is what randomising between the two thresholds achieves) and
    the EER is where FAR = FRR on that line; the threshold is interpolated
    between the two distinct scores with the same weight.

    Trials with equal scores always fall on the same side of every threshold,
    so the result does not depend on the order of the trials. When all scores
    are equal the EER is 0.5.

    Parameters
    ----------
    scores : array_like of shape (n,), real
        One finite score per trial.
    labels : array_like of shape (n,), bool or 0/1
        True / 1 for a target trial; at least one of each class.

    Returns
    -------
    eer : float
        Equal error rate, a fraction in [0, 1] (1 only for perfectly inverted
        scores).
    threshold : float
        Score at the crossing. With interpolated data, the rates that
        ``far_frr`` reports *at* this threshold are those of the adjacent
        distinct score, not exactly the EER.
    """
    s, y = _check_scores_labels(scores, labels)
    far, frr, thr = _with_reject_all(*_operating_points(s, y))
    diff = frr - far
    j = int(np.searchsorted(diff, 0.0, side="left"))  # first point with FRR >= FAR; j >= 1
    if diff[j] == 0.0:
        return float(far[j]), float(thr[j])
    # Solve FRR = FAR on the segment from point j-1 (FRR < FAR) to point j (FRR > FAR).
    w = -diff[j - 1] / (diff[j] - diff[j - 1])
    rate = far[j - 1] + w * (far[j] - far[j - 1])
    threshold = thr[j - 1] + w * (thr[j] - thr[j - 1])
    return float(rate), float(threshold)


def far_frr(scores: ArrayLike, labels: ArrayLike, threshold: float) -> tuple[float, float]:
    """FAR and FRR at one threshold, accepting when ``score >= threshold``.

    Parameters
    ----------
    scores : array_like of shape (n,), real
        One finite score per trial.
    labels : array_like of shape (n,), bool or 0/1
        True / 1 for a target trial; at least one of each class.
    threshold : float
        Decision threshold, inclusive: a score equal to it is accepted.
        ``-inf`` accepts everything, ``+inf`` nothing; NaN is an error.

    Returns
    -------
    far : float
        FP / (FP + TN), fraction of non-target trials accepted, in [0, 1].
    frr : float
        FN / (FN + TP), fraction of target trials rejected, in [0, 1].
    """
    s, y = _check_scores_labels(scores, labels)
    t = _check_thresholds(threshold)
    if t.ndim != 0:
        raise ValueError(f"threshold must be a single number, got shape {t.shape}; use far_frr_curve")
    accepted = s >= t
    n_tar = int(np.count_nonzero(y))
    n_non = y.size - n_tar
    false_accepts = int(np.count_nonzero(accepted & ~y))
    false_rejects = int(np.count_nonzero(~accepted & y))
    return false_accepts / n_non, false_rejects / n_tar


def far_frr_curve(
    scores: ArrayLike, labels: ArrayLike, thresholds: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """FAR and FRR at many thresholds at once (accept when ``score >= threshold``).

    Sorts the target and non-target scores once and locates every threshold by
    binary search, so m thresholds cost O((n + m) log n).

    Parameters
    ----------
    scores : array_like of shape (n,), real
        One finite score per trial.
    labels : array_like of shape (n,), bool or 0/1
        True / 1 for a target trial; at least one of each class.
    thresholds : array_like of any shape, real
        Thresholds, in any order; inclusive; +-inf allowed, NaN not.

    Returns
    -------
    far, frr : ndarray of the shape of ``thresholds``, float64
        Fractions in [0, 1], element by element as ``far_frr`` would give.
    """
    s, y = _check_scores_labels(scores, labels)
    t = _check_thresholds(thresholds)
    tar = np.sort(s[y])
    non = np.sort(s[~y])
    # side="left" counts scores strictly below t, i.e. the rejected ones.
    frr = np.searchsorted(tar, t, side="left") / tar.size
    far = (non.size - np.searchsorted(non, t, side="left")) / non.size
    return np.asarray(far, dtype=np.float64), np.asarray(frr, dtype=np.float64)


def min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised minimum detection cost (NIST SRE convention).

    ``DCF(t) = c_miss * p_target * FRR(t) + c_fa * (1 - p_target) * FAR(t)``,
    minimised over the tie-aware thresholds (every distinct score, plus
    "reject all"), then divided by the cost of the best trivial system,
    ``min(c_miss * p_target, c_fa * (1 - p_target))``. This is the
    normalisation used by the NIST SRE scoring tools, wespeaker and
    3D-Speaker. Because "accept all" and "reject all" are among the
    thresholds, the result is in [0, 1].

    Parameters
    ----------
    scores : array_like of shape (n,), real
        One finite score per trial.
    labels : array_like of shape (n,), bool or 0/1
        True / 1 for a target trial; at least one of each class.
    p_target : float, default 0.01
        Prior probability of a target trial, in (0, 1) exclusive. Reports use
        0.01 and 0.05.
    c_miss, c_fa : float, default 1.0
        Costs of a miss (false rejection) and of a false alarm; finite, > 0.

    Returns
    -------
    float
        Normalised minimum DCF, in [0, 1] (0 = perfect separation, 1 = no
        better than always accepting or always rejecting).
    """
    for name, value in (("c_miss", c_miss), ("c_fa", c_fa)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not (0.0 < p_target < 1.0):
        raise ValueError(f"p_target must be in (0, 1) exclusive, got {p_target!r}")
    s, y = _check_scores_labels(scores, labels)
    far, frr, _ = _with_reject_all(*_operating_points(s, y))
    cost_miss = c_miss * p_target
    cost_fa = c_fa * (1.0 - p_target)
    dcf = cost_miss * frr + cost_fa * far
    return float(dcf.min() / min(cost_miss, cost_fa))
