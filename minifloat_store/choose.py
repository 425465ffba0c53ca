"""Choosing an encoding: the smallest one whose accept/reject decisions stay those of float32.

:func:`recommend` fits every candidate :class:`~minifloat_store.encoding.Encoding`
on a sample of the user's vectors, scores pairs of them with the decoded and
with the float32 vectors, and returns the smallest candidate (fewest stored
bits per value) whose fraction of flipped decisions stays within a tolerance,
with the table behind the choice.

Which pairs, at which threshold
-------------------------------
* With a trial list (``trials=(enroll, test, labels)``), every trial, at the
  float32 EER threshold of those trials (or at ``threshold`` if one is given).
* Without one, at the user's operating ``threshold``, over each vector paired
  with its 10 nearest neighbours in the sample (float32 cosine). Random pairs
  would not do: almost all of them score far below any useful threshold, so
  nothing could flip them and every encoding would pass. A vector's nearest
  neighbours are the pairs whose scores sit where thresholds are set.

No vector is scored by an encoding fitted on it: the sample is split into
its even and odd rows, each half is encoded by the candidate fitted on the
other half (two-fold cross-fitting), and only the returned encoding is fitted
on the whole sample. (Only the ``centre`` transforms learn anything, a mean.)

Syntax of an encoding name
--------------------------
``ELEMENT[/SCALE[/TRANSFORM]]``: ``e2m1/vector``, ``nf4/vector/centre+rotate``,
``int8/block32/rotate``, ``fp16/none``, ``fp32``. The scale defaults to
``vector`` (``none`` for fp32) and the transform to ``none``; see
:class:`~minifloat_store.encoding.Encoding` for the values.

Layering: this module sits beside :mod:`minifloat_store.scoring`, above the
codec, and uses only the pure-numpy :mod:`minifloat_store.metrics` and
:mod:`minifloat_store.fidelity` below it (they moved down from ``eval`` for this),
so ``import minifloat_store`` never loads the evaluation layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from minifloat_store._checks import as_float32_matrix, check_positive_int
from minifloat_store.codec import quantize
from minifloat_store.encoding import Encoding
from minifloat_store.fidelity import cosine_scores, decision_flips, rms_score_error
from minifloat_store.metrics import eer

__all__ = [
    "CANDIDATES",
    "Candidate",
    "Recommendation",
    "cross_fit_quantize",
    "encoding_name",
    "neighbour_pairs",
    "parse_encoding",
    "recommend",
]

#: What :func:`recommend` tries by default: the most accurate encoding per stored
#: bit at each budget on the benchmark's real and synthetic sets
#: (docs/accuracy.md), today's 4- and 8-bit minifloats for comparison, then
#: fp16 and fp32, which always qualifies.
CANDIDATES: tuple[str, ...] = (
    "binary/vector/centre+rotate",
    "nf2/vector/centre+rotate",
    "nf3/vector/centre+rotate",
    "nf3/block16/centre+rotate",
    "nf4/vector/centre+rotate",
    "e2m1/vector",
    "nf4/block16/centre+rotate",
    "int6/vector/centre+rotate",
    "int8/vector/centre+rotate",
    "e4m3/vector",
    "fp16/none",
    "fp32",
)

NEIGHBOURS = 10
#: A pair "near" the threshold: float32 score within this of it (wider than the RMS score error of
#: every candidate of 2 bits or more in docs/accuracy.md, so a flip of any such encoding starts here).
NEAR = 0.05
#: Fewer near pairs than this and the table says the flips measured little.
MIN_NEAR = 100


def parse_encoding(text: str, seed: int = 0) -> Encoding:
    """An unfitted :class:`Encoding` from ``"ELEMENT[/SCALE[/TRANSFORM]]"`` (module docstring).

    Raises
    ------
    ValueError
        For more than three parts, or an unknown element, scale or transform
        (the message names the text).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"an encoding is 'ELEMENT[/SCALE[/TRANSFORM]]', e.g. 'nf4/vector/centre+rotate'; got {text!r}")
    parts = [p.strip() for p in text.strip().split("/")]
    if len(parts) > 3 or not all(parts):
        raise ValueError(f"encoding {text!r}: expected 'ELEMENT[/SCALE[/TRANSFORM]]', e.g. 'nf4/vector/centre+rotate'")
    element = parts[0]
    scale = parts[1] if len(parts) > 1 else "vector"  # Encoding stores fp32 with scale "none" whatever is asked
    transform = parts[2] if len(parts) > 2 else "none"
    try:
        return Encoding(element, scale, transform, seed)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"encoding {text!r}: {exc}") from None


def encoding_name(enc: Encoding) -> str:
    """The canonical ``ELEMENT/SCALE[/TRANSFORM]`` name of an encoding (``"fp32"`` for float32)."""
    if enc.codebook.bits == 32:
        return "fp32"
    name = f"{enc.element}/{enc.scale}"
    return name if enc.transform == "none" else f"{name}/{enc.transform}"


def cross_fit_quantize(x: ArrayLike, enc: Encoding) -> NDArray[np.float32]:
    """Decoded vectors, each encoded by ``enc`` fitted on the other half of ``x`` (even rows / odd rows).

    Parameters
    ----------
    x : array_like of shape (n, d), float, n >= 2
    enc : Encoding
        Fitted or not; it is refitted on each half. An encoding that learns
        nothing (no ``centre``) is applied to all rows at once.

    Returns
    -------
    ndarray of shape (n, d), float32
        ``quantize(x[even], enc.fit(x[odd]))`` in the even rows and vice versa.
    """
    v = as_float32_matrix(x, "x")
    if not enc.centres:
        return quantize(v, enc)
    if v.shape[0] < 2:
        raise ValueError(f"cross-fitting needs at least 2 vectors, got {v.shape[0]}")
    out = np.empty_like(v)
    even, odd = v[0::2], v[1::2]
    out[0::2] = quantize(even, enc.fit(odd))
    out[1::2] = quantize(odd, enc.fit(even))
    return out


def neighbour_pairs(x: ArrayLike, k: int = NEIGHBOURS) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each vector paired with its ``k`` nearest neighbours by cosine, each unordered pair once.

    Parameters
    ----------
    x : array_like of shape (n, d), float, n >= 2
    k : int
        Neighbours per vector (at most n - 1 are used). Ties are broken by row order.

    Returns
    -------
    left, right : ndarray of shape (m,), int64
        Row indices with ``left < right``, sorted; ``n * k / 2 <= m <= n * k``.
        A zero vector has no direction; it is paired with the first rows.
    """
    v = as_float32_matrix(x, "x").astype(np.float64)
    n = v.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 vectors to pair, got {n}")
    k = min(check_positive_int(k, "k"), n - 1)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    u = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    rows, cols = [], []
    for a in range(0, n, 1024):  # bounded memory: 1024 x n similarities at a time
        sim = u[a : a + 1024] @ u.T
        sim[np.arange(sim.shape[0]), np.arange(a, a + sim.shape[0])] = -np.inf  # never a vector with itself
        top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        rows.append(np.repeat(np.arange(a, a + sim.shape[0]), k))
        cols.append(top.ravel())
    i, j = np.concatenate(rows), np.concatenate(cols)
    pairs = np.unique(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1), axis=0)
    return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)


@dataclass(frozen=True)
class Candidate:
    """One row of a :class:`Recommendation`'s table.

    Attributes
    ----------
    name : str
        ``ELEMENT/SCALE[/TRANSFORM]``.
    encoding : Encoding
        Fitted on the whole sample.
    bits_per_value : float
        Stored bits per value at the sample's dimension (codes and scales).
    rms_score_error : float
        RMS difference between the cosine scores of the decoded and of the
        float32 vectors over the pairs.
    flips : float
        Fraction of the pairs whose decision (accept when ``score >= threshold``) changes.
    accepted : bool
        ``flips <= max_flips``.
    """

    name: str
    encoding: Encoding
    bits_per_value: float
    rms_score_error: float
    flips: float
    accepted: bool


@dataclass(frozen=True)
class Recommendation:
    """What :func:`recommend` chose and why.

    Attributes
    ----------
    encoding : Encoding
        The chosen encoding, fitted on the whole sample: the accepted candidate
        with the fewest bits per value (then the fewest flips, then the smallest RMS).
    table : tuple of Candidate
        Every candidate, by bits per value.
    threshold : float
        The cosine threshold the flips are counted at.
    threshold_note : str
        Where it came from.
    pairs : {"trials", "neighbours"}
        Which pairs were scored.
    n_pairs : int
    max_flips : float
    near_threshold : int
        Pairs whose float32 score lies within ``NEAR`` (0.05) of the
        threshold: the only ones a 1-bit-or-better encoding can plausibly
        flip. Few of them (under ``MIN_NEAR``) and zero flips say little:
        ``to_text`` then says so.
    """

    encoding: Encoding
    table: tuple[Candidate, ...]
    threshold: float
    threshold_note: str
    pairs: str
    n_pairs: int
    max_flips: float
    near_threshold: int = 0

    @property
    def name(self) -> str:
        """The chosen encoding's ``ELEMENT/SCALE[/TRANSFORM]``."""
        return encoding_name(self.encoding)

    def to_text(self) -> str:
        """The table as aligned text, the chosen row marked with ``<-``."""
        what = "trials" if self.pairs == "trials" else f"pairs of each vector with its {NEIGHBOURS} nearest neighbours"
        lines = [
            f"Flips: decisions (accept when score >= {self.threshold:.4f}, {self.threshold_note}) that change "
            f"against float32, over {self.n_pairs:,} {what}; tolerance {100 * self.max_flips:.3g} %.",
            f"{'encoding':<30} {'bits/value':>10} {'RMS score err':>13} {'flips %':>8}  ok",
        ]
        if self.near_threshold < MIN_NEAR:
            lines.insert(
                1,
                f"Caution: only {self.near_threshold:,} of these pairs score within {NEAR} of the threshold, so "
                "few decisions can flip at all; give trials, or a threshold where your genuine and impostor "
                "scores meet.",
            )
        for c in self.table:
            mark = "  <- recommended" if c.encoding is self.encoding else ""
            lines.append(
                f"{c.name:<30} {c.bits_per_value:>10.3f} {c.rms_score_error:>13.5f} {100 * c.flips:>8.3f}  "
                f"{'yes' if c.accepted else 'no '}{mark}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"recommended: {self.name}\n{self.to_text()}"


def _trial_arrays(trials: object, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    if not isinstance(trials, (tuple, list)) or len(trials) != 3:
        raise ValueError("trials must be (enroll_rows, test_rows, labels): three arrays of one length")
    e, t, y = (np.asarray(a) for a in trials)
    if e.ndim != 1 or e.shape != t.shape or e.shape != y.shape or e.size == 0:
        raise ValueError(
            f"trials: enroll, test and labels must be 1-D of one length, got {e.shape}, {t.shape}, {y.shape}"
        )
    if e.dtype.kind not in "iu" or t.dtype.kind not in "iu":
        raise ValueError(f"trials: rows must be integers, got {e.dtype} and {t.dtype}")
    lo, hi = min(int(e.min()), int(t.min())), max(int(e.max()), int(t.max()))
    if lo < 0 or hi >= n:
        raise ValueError(f"trials: rows must be in [0, {n}) (rows of the sample), got {lo}..{hi}")
    return e.astype(np.int64), t.astype(np.int64), y


def recommend(
    sample: ArrayLike,
    trials: tuple[ArrayLike, ArrayLike, ArrayLike] | None = None,
    threshold: float | None = None,
    max_flips: float = 0.005,
    *,
    candidates: Sequence[str | Encoding] = CANDIDATES,
    seed: int = 0,
) -> Recommendation:
    """The smallest encoding whose decisions on ``sample`` stay those of float32 within ``max_flips``.

    Parameters
    ----------
    sample : array_like of shape (n, d), float, n >= 2
        Vectors like those to be stored (a few thousand are plenty; the
        neighbour search costs n**2 * d). Every candidate is fitted on it.
    trials : (enroll, test, labels), optional
        A trial list over the sample: ``enroll`` and ``test`` int arrays of
        shape (t,) (rows of ``sample``), ``labels`` of shape (t,), bool or 0/1
        (True: same speaker), with both classes. Flips are counted over the
        trials at their float32 EER threshold.
    threshold : float, optional
        The operating cosine threshold (accept when ``score >= threshold``).
        Required without ``trials``: flips are then counted over each vector
        and its 10 nearest neighbours. With ``trials`` it replaces the EER threshold.
    max_flips : float, default 0.005
        Tolerated fraction of flipped decisions, inclusive, in [0, 1).
    candidates : sequence of str or Encoding, default :data:`CANDIDATES`
        Encodings to try, as names (``"nf4/vector/centre+rotate"``) or Encodings.
    seed : int, default 0
        Seed of the rotations of candidates given by name.

    Returns
    -------
    Recommendation
        ``.encoding`` (fitted, ready for ``mfs.encode`` or ``convert``),
        ``.table`` (every candidate: bits/value, RMS score error, flips).

    Raises
    ------
    ValueError
        Neither trials nor threshold, a sample with NaN/inf or fewer than 2
        rows, bad trial arrays, or no candidate within the tolerance (add
        ``"fp32"`` to the candidates to always have one).
    """
    x = as_float32_matrix(sample, "sample")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"sample row {row} contains NaN or inf; nothing was measured")
    if x.shape[0] < 2:
        raise ValueError(f"sample needs at least 2 vectors, got {x.shape[0]}")
    if not (isinstance(max_flips, (int, float)) and 0.0 <= max_flips < 1.0):
        raise ValueError(f"max_flips must be a fraction in [0, 1), got {max_flips!r}")
    if threshold is not None and not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite cosine value, got {threshold!r}")
    encodings = [parse_encoding(c, seed) if isinstance(c, str) else c for c in candidates]
    if not encodings or not all(isinstance(e, Encoding) for e in encodings):
        raise ValueError("candidates must be a non-empty sequence of encoding names or Encodings")

    if trials is not None:
        left, right, labels = _trial_arrays(trials, x.shape[0])
        ref = cosine_scores(x, left, right)
        if threshold is None:
            threshold = eer(ref, labels)[1]
            note = "the float32 EER threshold of the trials"
        else:
            note = "given"
        kind = "trials"
    else:
        if threshold is None:
            raise ValueError(
                "give trials (flips at their float32 EER threshold) or the operating threshold "
                "(flips over each vector's nearest neighbours)"
            )
        left, right = neighbour_pairs(x, NEIGHBOURS)
        ref = cosine_scores(x, left, right)
        note = "given"
        kind = "neighbours"
    threshold = float(threshold)

    rows = []
    d = x.shape[1]
    for enc in encodings:
        s = cosine_scores(cross_fit_quantize(x, enc), left, right)
        flips = decision_flips(ref, s, threshold)
        rows.append(
            Candidate(
                name=encoding_name(enc),
                encoding=enc.fit(x),
                bits_per_value=enc.bits_per_value(d),
                rms_score_error=rms_score_error(ref, s),
                flips=flips,
                accepted=flips <= max_flips,
            )
        )
    rows.sort(key=lambda c: c.bits_per_value)
    ok = [c for c in rows if c.accepted]
    if not ok:
        best = min(rows, key=lambda c: c.flips)
        raise ValueError(
            f"no candidate keeps flips within {100 * max_flips:.3g} % (the best, {best.name}, flips "
            f"{100 * best.flips:.3g} %); raise max_flips or add 'fp32' to the candidates"
        )
    chosen = min(ok, key=lambda c: (c.bits_per_value, c.flips, c.rms_score_error))
    near = int(np.count_nonzero(np.abs(ref - threshold) <= NEAR))
    return Recommendation(
        chosen.encoding, tuple(rows), threshold, note, kind, int(left.size), float(max_flips), near_threshold=near
    )
