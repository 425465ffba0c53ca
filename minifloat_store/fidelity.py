"""How much an encoding changes what a verification system decides: score error, flips, ΔEER.

A user storing embeddings in fewer bits wants to know how many accept/reject
decisions change, not only how far the EER moves: ΔEER alone is noisy (two
encodings whose scores differ little can move the EER either way by tenths of
a point on a few thousand target trials). These functions compare the scores
of the encoded vectors with those of the float32 vectors, trial by trial:

* :func:`rms_score_error`: root-mean-square difference of the two scores;
* :func:`decision_flips`: the fraction of trials accepted by one and rejected
  by the other at one threshold (accept when ``score >= threshold``, as in
  :mod:`minifloat_store.metrics`);
* :func:`paired_bootstrap_delta_eer`: ΔEER with a bootstrap confidence
  interval in which both systems are scored on the same resampled trials.

Every rate is a fraction in [0, 1]; reports multiply by 100.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from minifloat_store.metrics import eer

__all__ = [
    "bootstrap_eers",
    "cosine_scores",
    "decision_flips",
    "paired_bootstrap_delta_eer",
    "rms_score_error",
]


def _paired(ref_scores: ArrayLike, scores: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r = np.asarray(ref_scores, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if r.ndim != 1 or s.shape != r.shape:
        raise ValueError(f"ref_scores and scores must be 1-D of one length, got shapes {r.shape} and {s.shape}")
    if r.size == 0:
        raise ValueError("need at least one trial, got none")
    for name, a in (("ref_scores", r), ("scores", s)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} must be finite: trial {int(np.flatnonzero(~np.isfinite(a))[0])} is not")
    return r, s


def cosine_scores(x: ArrayLike, enroll: ArrayLike, test: ArrayLike) -> NDArray[np.float64]:
    """Cosine of rows ``enroll[i]`` and ``test[i]`` of ``x``; a pair with a zero vector scores 0.

    Parameters
    ----------
    x : array_like of shape (n, d), float
        Vectors (decoded or float32).
    enroll, test : array_like of shape (t,), int
        Row indices of each trial.

    Returns
    -------
    ndarray of shape (t,), float64
        In [-1, 1]. A vector that decodes to all zeros (e.g. unscaled fp4 of a
        unit vector) has no direction; its trials score 0, as the library's
        scoring functions do.
    """
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"x must be 2-D (n, d), got shape {v.shape}")
    e = np.asarray(enroll, dtype=np.int64)
    t = np.asarray(test, dtype=np.int64)
    if e.shape != t.shape or e.ndim != 1:
        raise ValueError(f"enroll and test must be 1-D of one length, got shapes {e.shape} and {t.shape}")
    if e.size and (min(e.min(), t.min()) < 0 or max(e.max(), t.max()) >= v.shape[0]):
        raise ValueError(f"trial rows must be in [0, {v.shape[0]}), got rows {min(e.min(), t.min())}..")
    norms = np.linalg.norm(v, axis=1)
    unit = np.divide(v, norms[:, None], out=np.zeros_like(v), where=norms[:, None] > 0)
    out = np.empty(e.size)
    for a in range(0, e.size, 16384):  # bounded memory for millions of trials
        out[a : a + 16384] = np.einsum("ij,ij->i", unit[e[a : a + 16384]], unit[t[a : a + 16384]])
    return out


def rms_score_error(ref_scores: ArrayLike, scores: ArrayLike) -> float:
    """Root-mean-square difference between two systems' scores of the same trials.

    Parameters
    ----------
    ref_scores, scores : array_like of shape (n,), real
        Scores of each trial by the reference (float32) and by the encoding.

    Returns
    -------
    float
        ``sqrt(mean((scores - ref_scores) ** 2))``, in score units (for cosines,
        0 to 2).
    """
    r, s = _paired(ref_scores, scores)
    return float(np.sqrt(np.mean((s - r) ** 2)))


def decision_flips(ref_scores: ArrayLike, scores: ArrayLike, threshold: float) -> float:
    """Fraction of trials whose accept/reject decision differs between two systems at one threshold.

    Parameters
    ----------
    ref_scores, scores : array_like of shape (n,), real
        Scores of each trial by the reference and by the encoding.
    threshold : float
        Inclusive: a trial is accepted when its score ``>= threshold``. Usually
        the reference's EER threshold (``metrics.eer(ref_scores, labels)[1]``).

    Returns
    -------
    float
        Fraction in [0, 1] of trials accepted by exactly one of the two systems.
    """
    r, s = _paired(ref_scores, scores)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return float(np.count_nonzero((r >= threshold) != (s >= threshold)) / r.size)


def _weighted_eer(y_sorted: NDArray[np.bool_], starts: NDArray[np.int64], w_sorted: NDArray[np.int64]) -> float:
    """EER (rate only) of trials given in ascending score order with integer weights.

    Equal to :func:`metrics.eer` on the list in which trial i appears ``w[i]``
    times: a distinct score of weight 0 repeats the operating point of the
    next drawn score, which moves the crossing's threshold but not its rate.
    """
    wt = np.where(y_sorted, w_sorted, 0)
    wn = w_sorted - wt
    n_tar, n_non = int(wt.sum()), int(wn.sum())
    tar_below = np.r_[0, np.cumsum(wt)][starts]
    non_below = np.r_[0, np.cumsum(wn)][starts]
    frr = np.r_[tar_below / n_tar, 1.0]  # the "reject all" point closes the curve, as in metrics.eer
    far = np.r_[(n_non - non_below) / n_non, 0.0]
    diff = frr - far
    j = int(np.searchsorted(diff, 0.0, side="left"))
    if diff[j] == 0.0:
        return float(far[j])
    w = -diff[j - 1] / (diff[j] - diff[j - 1])
    return float(far[j - 1] + w * (far[j] - far[j - 1]))


def bootstrap_eers(labels: ArrayLike, scores: ArrayLike, n_boot: int = 1000, seed: int = 0) -> NDArray[np.float64]:
    """EER of each of ``n_boot`` class-stratified bootstrap resamples of the trials.

    Replicate b draws, from ``np.random.default_rng(seed)`` in this order,
    ``rng.integers(0, n_tar, n_tar)`` (which target trials, with replacement)
    then ``rng.integers(0, n_non, n_non)`` (which non-target trials), targets
    and non-targets each taken in their order in ``labels``. The draws depend
    only on ``labels``, ``n_boot`` and ``seed``, so score sets of the same
    trials given the same seed are resampled identically (a paired bootstrap);
    several score sets passed at once share each replicate's draws.

    Parameters
    ----------
    labels : array_like of shape (n,), bool or 0/1
        True / 1 for a target trial; at least one of each class.
    scores : array_like of shape (n,) or (m, n), real
        One finite score per trial, for one system or for each of m systems.
    n_boot : int
        Number of resamples, >= 1.
    seed : int
        Seed of the resampling.

    Returns
    -------
    ndarray of shape (n_boot,) or (m, n_boot), float64
        ``metrics.eer(resampled scores, resampled labels)[0]`` of each replicate
        (and system), fractions in [0, 1]. Each costs one pass over the trials
        (the scores are sorted once).
    """
    s = np.asarray(scores)
    if s.ndim not in (1, 2):
        raise ValueError(f"scores must be 1-D (n,) or 2-D (m, n), got shape {s.shape}")
    rows = s.reshape(-1, s.shape[-1])
    for row in rows:
        eer(row, labels)  # validates scores and labels (shape, finiteness, both classes)
    y = np.asarray(labels).astype(bool)
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    sorted_rows = []
    for row in rows.astype(np.float64):
        order = np.argsort(row, kind="stable")
        r = row[order]
        sorted_rows.append((order, y[order], np.flatnonzero(np.r_[True, r[1:] != r[:-1]])))
    tar, non = np.flatnonzero(y), np.flatnonzero(~y)
    rng = np.random.default_rng(seed)
    out = np.empty((len(rows), int(n_boot)))
    w = np.empty(y.size, dtype=np.int64)
    for b in range(int(n_boot)):
        w[tar] = np.bincount(rng.integers(0, tar.size, tar.size), minlength=tar.size)
        w[non] = np.bincount(rng.integers(0, non.size, non.size), minlength=non.size)
        for i, (order, y_sorted, starts) in enumerate(sorted_rows):
            out[i, b] = _weighted_eer(y_sorted, starts, w[order])
    return out if s.ndim == 2 else out[0]


def paired_bootstrap_delta_eer(
    labels: ArrayLike,
    ref_scores: ArrayLike,
    scores: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """EER of ``scores`` minus EER of ``ref_scores``, with a paired bootstrap percentile interval.

    Both systems are scored on the same resampled trials in every replicate
    (:func:`bootstrap_eers` with one seed), so the interval reflects how the
    two systems differ, not how much the EER of either wanders with the trial
    sample. Trials are resampled independently within each class; trials that
    share an utterance are not independent, so the interval is somewhat too
    narrow when utterances appear in many trials.

    Parameters
    ----------
    labels : array_like of shape (n,), bool or 0/1
        True / 1 for a target trial; at least one of each class.
    ref_scores, scores : array_like of shape (n,), real
        Scores of each trial by the reference (float32) and by the encoding.
    n_boot : int
        Number of resamples.
    seed : int
        Seed of the resampling.
    confidence : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    delta : float
        ``eer(scores) - eer(ref_scores)`` on all trials, a fraction (+0.01 = one
        point worse).
    lo, hi : float
        The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the
        replicates' differences.
    """
    _paired(ref_scores, scores)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    delta = eer(scores, labels)[0] - eer(ref_scores, labels)[0]
    ref_boot, boot = bootstrap_eers(labels, np.stack([np.asarray(ref_scores), np.asarray(scores)]), n_boot, seed)
    diffs = boot - ref_boot
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(diffs, [alpha, 1.0 - alpha])
    return float(delta), float(lo), float(hi)
