"""A seeded synthetic speaker corpus: embeddings and a Vox1-O-sized trial list.

The demo and the tests need speaker embeddings without audio, a model or a
download. This module makes them from a small generative model whose knobs are
set so that float32 cosine scoring has an EER of a few percent, and whose
output values look like those of the kinds of network the study compares.

Generative model (one latent space of rank ``r``, mapped to ``dim`` values)::

    latent_u = a[speaker(u)] + b[session(u)] + q_u * e_u
    z_u      = W @ latent_u + residual_u             # W: (dim, r), fixed per corpus
    z_u      = z_u / sd                              # unit variance per value

with ``a ~ N(0, speaker_std**2 I)``, ``b ~ N(0, session_std**2 I)`` (a session
is a recording such as one video; its utterances share channel and context),
``e ~ N(0, utterance_std**2 I)`` scaled by a log-normal quality factor ``q_u``
(short or noisy utterances; this gives the low-score tail of the target
trials) and an isotropic ``residual``. ``sd`` is the exact per-value standard
deviation of the model, so the scale does not depend on the corpus size.

A profile then maps ``z`` to the output range of one kind of network:

* ``"batchnorm"``, like CAM++ and ReDimNet, whose last layer is a BatchNorm:
  ``x = gamma * z + beta`` per value, ``gamma`` log-uniform in [1.5, 4] and
  ``beta ~ N(0, 0.2**2)``. Dense signed values, standard deviation about 2.7,
  per-vector extremes about +-7 to +-13.
* ``"nonorm"``, like WavLM's x-vector head, which has no normalisation:
  ``x = offset + spread * skew(z)``, small values in about [-0.4, 0.25] with a
  negative mean and a longer negative tail. Unscaled float4 (E2M1) keeps only
  values below -0.25 (as -0.5): most vectors become all zero and their cosine
  with anything is 0, the collapse the study reports for WavLM.

Trial design, the size and balance of the cleaned Vox1-O list: 40 speakers,
4,708 utterances in about 670 sessions (8 to 35 per speaker), 37,611 trials of
which 18,802 are targets, every utterance enrolled in about 8 trials (about 4
target, 4 non-target), about 1 target in 9 from the same session.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from minifloat_store.eval.trials import Trials

__all__ = ["PROFILES", "Profile", "SyntheticCorpus", "make_corpus"]

ProfileKind = Literal["batchnorm", "nonorm"]


@dataclass(frozen=True)
class Profile:
    """The knobs of one synthetic embedding model.

    Attributes
    ----------
    name : str
        Key in :data:`PROFILES`.
    kind : {"batchnorm", "nonorm"}
        Output transform (see the module docstring).
    imitates : str
        Which of the study's models the value range follows.
    dim : int
        Values per embedding.
    rank : int
        Dimension of the latent speaker/session space.
    speaker_std, session_std, utterance_std, residual_std : float
        Standard deviations of the latent components (see the module docstring);
        their ratios set the EER.
    quality_sigma : float
        Standard deviation of ``log q_u``, the per-utterance noise factor.
    gamma_range : tuple of float
        ``"batchnorm"``: range of the per-value gain (log-uniform).
    beta_std : float
        ``"batchnorm"``: standard deviation of the per-value bias.
    offset, offset_std : float
        ``"nonorm"``: mean of the output and the spread of its per-value means.
    spread : float
        ``"nonorm"``: scale of the output for negative ``z``.
    positive_slope : float
        ``"nonorm"``: scale for positive ``z`` relative to ``spread`` (< 1
        gives the longer negative tail).
    """

    name: str
    kind: ProfileKind
    imitates: str
    dim: int = 512
    rank: int = 64
    speaker_std: float = 1.0
    session_std: float = 0.55
    utterance_std: float = 0.65
    residual_std: float = 0.4
    quality_sigma: float = 0.5
    gamma_range: tuple[float, float] = (1.5, 4.0)
    beta_std: float = 0.2
    offset: float = -0.045
    offset_std: float = 0.01
    spread: float = 0.065
    positive_slope: float = 0.7


#: The two kinds of network the study compares, by name.
PROFILES: MappingProxyType[str, Profile] = MappingProxyType(
    {
        "batchnorm": Profile(
            "batchnorm",
            "batchnorm",
            "CAM++ / ReDimNet (last layer BatchNorm: dense signed values, std 2-5)",
        ),
        "nonorm": Profile(
            "nonorm",
            "nonorm",
            "WavLM-sv (no normalisation: small values in about [-0.4, 0.25])",
            # The skewed offset output loses more of the speaker signal to
            # cosine scoring, so less session/utterance noise gives a similar EER.
            session_std=0.5,
            utterance_std=0.5,
        ),
    }
)


@dataclass(frozen=True, eq=False)
class SyntheticCorpus:
    """Embeddings of a synthetic speaker corpus and its trial list.

    Attributes
    ----------
    profile : Profile
        The model that made it.
    seed : int
        Seed of the generator; the same seed and arguments give the same corpus.
    ids : ndarray of shape (n,), str
        Utterance ids ``spkSS/sessTTT/uttUUUU`` (speaker, session, utterance),
        unique, no whitespace.
    embeddings : ndarray of shape (n, dim), float32
        One embedding per utterance, in the profile's value range.
    speakers, sessions : ndarray of shape (n,), int64
        Speaker and (corpus-wide) session number of each utterance.
    trials : Trials
        The trial list over ``ids``.
    """

    profile: Profile
    seed: int
    ids: NDArray[np.str_]
    embeddings: NDArray[np.float32]
    speakers: NDArray[np.int64]
    sessions: NDArray[np.int64]
    trials: Trials = field(repr=False)

    def __repr__(self) -> str:
        n, d = self.embeddings.shape
        return (
            f"SyntheticCorpus(profile={self.profile.name!r}, seed={self.seed}, n={n}, dim={d}, "
            f"speakers={int(self.speakers.max()) + 1}, trials={len(self.trials)})"
        )

    def write_trials(self, path: str | os.PathLike[str]) -> Path:
        """Write the trial list in VoxCeleb format (``label enroll test``, label 1 = target).

        Returns the path written. ``minifloat_store.eval.trials.read_trials``
        reads it back to an equal list.
        """
        path = Path(path)
        t = self.trials
        labels = np.where(t.labels, "1", "0")
        lines = [" ".join(row) for row in zip(labels.tolist(), t.enroll.tolist(), t.test.tolist(), strict=True)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def make_corpus(
    profile: str | Profile = "batchnorm",
    seed: int = 0,
    *,
    n_speakers: int = 40,
    n_utterances: int = 4708,
    n_targets: int = 18_802,
    n_nontargets: int = 18_809,
    dim: int | None = None,
) -> SyntheticCorpus:
    """Generate a synthetic speaker corpus and its trial list.

    Parameters
    ----------
    profile : str or Profile
        ``"batchnorm"`` or ``"nonorm"`` (see :data:`PROFILES`), or a custom Profile.
    seed : int
        Seed; the result is a pure function of the arguments.
    n_speakers : int, default 40
        Speakers (Vox1-O has 40).
    n_utterances : int, default 4708
        Utterances, at least 12 per speaker (Vox1-O uses 4,708).
    n_targets, n_nontargets : int, default 18,802 and 18,809 (Vox1-O's)
        Trials of each kind; at most about 4 per utterance of each kind.
    dim : int, optional
        Values per embedding; the profile's (512) by default.

    Returns
    -------
    SyntheticCorpus
        Embeddings float32 of shape (n_utterances, dim), their ids, and the trials.

    Raises
    ------
    ValueError
        For an unknown profile or sizes the design cannot meet.
    """
    prof = _get_profile(profile)
    if dim is not None:
        if int(dim) < 2:
            raise ValueError(f"dim must be at least 2, got {dim}")
        prof = Profile(**{**prof.__dict__, "dim": int(dim)})
    if n_speakers < 2:
        raise ValueError(f"need at least 2 speakers for non-target trials, got {n_speakers}")
    if n_utterances < 12 * n_speakers:
        raise ValueError(
            f"need at least 12 utterances per speaker ({12 * n_speakers} for {n_speakers} speakers), got {n_utterances}"
        )
    per_enroll = 4  # each kind; Vox1-O enrols every utterance in about 8 trials
    for what, n in (("n_targets", n_targets), ("n_nontargets", n_nontargets)):
        if not 1 <= n <= per_enroll * n_utterances:
            raise ValueError(
                f"{what} must be in [1, {per_enroll * n_utterances}] ({per_enroll} per utterance), got {n}"
            )

    rng = np.random.default_rng(seed)
    speakers, sessions = _design(rng, n_speakers, n_utterances)
    z = _latent(rng, prof, speakers, sessions)
    x = _output(rng, prof, z)
    ids = np.array(
        [f"spk{s:02d}/sess{t:03d}/utt{u:04d}" for u, (s, t) in enumerate(zip(speakers, sessions, strict=True))],
        dtype=str,
    )
    enroll, test, labels = _trials(rng, speakers, sessions, n_targets, n_nontargets, per_enroll)
    trials = Trials.from_pairs(ids[enroll], ids[test], labels)
    for a in (ids, x, speakers, sessions):
        a.setflags(write=False)
    return SyntheticCorpus(prof, int(seed), ids, x, speakers, sessions, trials)


def _get_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}") from None


def _design(
    rng: np.random.Generator, n_speakers: int, n_utterances: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Speaker and session of every utterance, grouped by speaker then session."""
    # Vox1-O: 42 to 260 utterances per speaker, 8 to 35 videos per speaker.
    floor = min(42, n_utterances // n_speakers)
    share = rng.dirichlet(np.full(n_speakers, 2.0))
    per_speaker = floor + rng.multinomial(n_utterances - floor * n_speakers, share)
    speakers = np.repeat(np.arange(n_speakers, dtype=np.int64), per_speaker)
    sessions = np.empty(n_utterances, dtype=np.int64)
    start = 0
    next_session = 0
    for count in per_speaker:
        # 8 + Poisson(9), at most 35: about 17 per speaker, Vox1-O's 674 / 40.
        n_sess = int(min(8 + rng.poisson(9), 35, max(2, count // 3)))
        # Every session gets at least one utterance; the rest fall unevenly.
        extra = rng.multinomial(count - n_sess, rng.dirichlet(np.full(n_sess, 1.0)))
        sizes = 1 + extra
        sessions[start : start + count] = next_session + np.repeat(np.arange(n_sess), sizes)
        start += count
        next_session += n_sess
    return speakers, sessions


def _latent(
    rng: np.random.Generator, prof: Profile, speakers: NDArray[np.int64], sessions: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Unit-variance latent embeddings z, shape (n, dim), float64."""
    n = speakers.size
    d, r = prof.dim, prof.rank
    mixing = rng.standard_normal((d, r)) / np.sqrt(r)
    spk = rng.standard_normal((int(speakers.max()) + 1, r)) * prof.speaker_std
    ses = rng.standard_normal((int(sessions.max()) + 1, r)) * prof.session_std
    quality = np.exp(prof.quality_sigma * rng.standard_normal(n))
    utt = rng.standard_normal((n, r)) * (prof.utterance_std * quality)[:, None]
    z = (spk[speakers] + ses[sessions] + utt) @ mixing.T
    z += rng.standard_normal((n, d)) * prof.residual_std
    # Exact variance of each value under the model (E[q^2] = exp(2 sigma^2)).
    latent_var = prof.speaker_std**2 + prof.session_std**2 + prof.utterance_std**2 * np.exp(2 * prof.quality_sigma**2)
    sd = np.sqrt((mixing**2).sum(axis=1) * latent_var + prof.residual_std**2)
    return z / sd


def _output(rng: np.random.Generator, prof: Profile, z: NDArray[np.float64]) -> NDArray[np.float32]:
    """Apply the profile's output transform; float32 (n, dim)."""
    d = prof.dim
    if prof.kind == "batchnorm":
        lo, hi = prof.gamma_range
        gamma = np.exp(rng.uniform(np.log(lo), np.log(hi), d))
        beta = rng.normal(0.0, prof.beta_std, d)
        x = gamma * z + beta
    elif prof.kind == "nonorm":
        means = prof.offset + rng.normal(0.0, prof.offset_std, d)
        x = means + prof.spread * np.where(z < 0, z, prof.positive_slope * z)
    else:
        raise ValueError(f"unknown profile kind {prof.kind!r}; expected 'batchnorm' or 'nonorm'")
    return np.ascontiguousarray(x, dtype=np.float32)


def _trials(
    rng: np.random.Generator,
    speakers: NDArray[np.int64],
    sessions: NDArray[np.int64],
    n_targets: int,
    n_nontargets: int,
    per_enroll: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Enrol every utterance in up to ``per_enroll`` target and non-target trials.

    No trial pairs an utterance with itself and no unordered pair occurs twice.
    """
    n = speakers.size
    n_tar = _spread(rng, n_targets, n, per_enroll)
    n_non = _spread(rng, n_nontargets, n, per_enroll)
    by_speaker = [np.flatnonzero(speakers == s) for s in range(int(speakers.max()) + 1)]
    seen: set[tuple[int, int]] = set()
    enroll: list[int] = []
    test: list[int] = []
    labels: list[bool] = []

    def take(u: int, pool: NDArray[np.int64], k: int, label: bool) -> int:
        taken = 0
        for v in rng.permutation(pool).tolist() if pool.size <= 64 else _draws(rng, pool):
            if taken == k:
                break
            key = (min(u, v), max(u, v))
            if v == u or key in seen:
                continue
            seen.add(key)
            enroll.append(u)
            test.append(v)
            labels.append(label)
            taken += 1
        return taken

    shortfall = 0
    for u in range(n):
        own = by_speaker[speakers[u]]
        other_session = own[sessions[own] != sessions[u]]
        same_session = own[(sessions[own] == sessions[u]) & (own != u)]
        # About 1 target in 9 comes from the enrolment's own session, as in Vox1-O.
        k_same = int(rng.binomial(n_tar[u], 1 / 9)) if same_session.size else 0
        got = take(u, same_session, k_same, True)
        got += take(u, other_session, n_tar[u] - got, True)
        got += take(u, own, n_tar[u] - got, True)  # small speakers: any session
        shortfall += n_tar[u] - got
        others = np.flatnonzero(speakers != speakers[u])
        shortfall += n_non[u] - take(u, others, n_non[u], False)
    if shortfall:
        raise ValueError(
            f"could not draw {shortfall} trials without repeating a pair; ask for fewer trials or more utterances"
        )
    return np.array(enroll, np.int64), np.array(test, np.int64), np.array(labels, np.bool_)


def _spread(rng: np.random.Generator, total: int, n: int, cap: int) -> NDArray[np.int64]:
    """``total`` trials over ``n`` enrolments, ``cap`` or ``cap - 1`` each (random ones get fewer)."""
    counts = np.full(n, cap, dtype=np.int64)
    surplus = cap * n - total
    # Remove whole rounds first, then one from each of `surplus` random enrolments.
    counts -= surplus // n
    counts[rng.choice(n, surplus % n, replace=False)] -= 1
    return counts


def _draws(rng: np.random.Generator, pool: NDArray[np.int64]) -> Sequence[int]:
    """Random members of a large pool, with replacement (the caller skips repeats)."""
    return pool[rng.integers(0, pool.size, 64)].tolist()
