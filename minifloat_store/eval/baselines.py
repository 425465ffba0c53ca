"""What a user would otherwise pick: FAISS's vector quantisers, trained, encoded and decoded like the encodings.

Each baseline is a FAISS ``index_factory`` string (``SQ8``, ``SQ6``, ``SQ4``,
``RR,SQtqmse8``, ``EDEN4``, ...) or ``PQ{M}x{nbits}`` (a ``ProductQuantizer``).
FAISS gets the L2-normalised vectors (its usual set-up for cosine, inner
product on unit vectors), is trained on vectors that are not the ones it
encodes, and the vectors come back through ``sa_encode`` / ``sa_decode`` (PQ:
``compute_codes`` / ``decode``) to be scored with the same cosine as every
encoding. Bits per value are ``8 * code_size / d``: FAISS stores no per-vector scale.

faiss-cpu is the ``bench`` extra; it is imported only when a baseline is run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_BASELINES",
    "DEMO_BASELINES",
    "Baseline",
    "baseline_specs",
    "faiss_available",
    "faiss_quantize",
    "run_baselines",
]

#: The baselines of ``bench --baselines``: FAISS's scalar quantisers at 8, 6 and 4
#: bits, its rotated and TurboQuant-MSE / EDEN quantisers at 8, 4 and 3 bits, and
#: PQ with 8-bit sub-codes at 4 and 2 bits per value (``PQ`` is expanded per
#: dimension by :func:`baseline_specs`).
DEFAULT_BASELINES: tuple[str, ...] = (
    "SQ8",
    "SQ6",
    "SQ4",
    "RR,SQtqmse8",
    "RR,SQtqmse4",
    "RR,SQtqmse3",
    "EDEN8",
    "EDEN4",
    "EDEN3",
    "PQ",
)

#: The demo's baselines: all but PQ, whose k-means (256 centroids per sub-space, twice for the
#: cross-fitting) takes minutes on 4,708 x 512 vectors on 2 loaded cores; ``bench --baselines`` runs it.
DEMO_BASELINES: tuple[str, ...] = tuple(s for s in DEFAULT_BASELINES if s != "PQ")

Baseline = tuple[str, NDArray[np.float32], float]  # (name, decoded vectors (n, d), bits per value)


def faiss_available() -> bool:
    """True when faiss (faiss-cpu, the ``bench`` extra) can be imported."""
    try:
        import faiss  # noqa: F401  heavy optional dependency
    except ImportError:
        return False
    return True


def baseline_specs(d: int, specs: Sequence[str] = DEFAULT_BASELINES) -> list[str]:
    """The specs with ``"PQ"`` expanded to ``PQ{d/2}x8`` (4 bits/value) and ``PQ{d/4}x8`` (2), where d divides."""
    out = []
    for spec in specs:
        if spec != "PQ":
            out.append(spec)
            continue
        for bits in (4, 2):
            m = bits * d // 8
            if m >= 1 and (bits * d) % 8 == 0 and d % m == 0:
                out.append(f"PQ{m}x8")
    return out


def _unit(x: ArrayLike) -> NDArray[np.float32]:
    v = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    np.divide(v, norms, out=v, where=norms > 0)
    return v


def faiss_quantize(spec: str, train: ArrayLike, x: ArrayLike) -> tuple[NDArray[np.float32], float]:
    """Train one FAISS quantiser on ``train`` and return ``x`` encoded and decoded by it.

    Parameters
    ----------
    spec : str
        An ``index_factory`` string or ``PQ{M}x{nbits}``.
    train, x : array_like of shape (m, d) and (n, d), float
        Training and encoded vectors; both are L2-normalised first.

    Returns
    -------
    decoded : ndarray of shape (n, d), float32
        Unit-norm vectors as FAISS gives them back.
    bits_per_value : float

    Raises
    ------
    ImportError
        Without faiss (``pip install 'minifloat-store[bench]'``).
    ValueError
        When FAISS refuses the spec or the data (its message, without the C++ location).
    """
    import faiss  # heavy optional dependency (the bench extra)

    t, v = _unit(train), _unit(x)
    d = v.shape[1]
    try:
        if spec.startswith("PQ"):
            # The ProductQuantizer itself: an IndexPQ from index_factory trains the same codebooks,
            # with more machinery around them.
            m, nbits = (int(s) for s in spec[2:].split("x"))
            pq = faiss.ProductQuantizer(d, m, nbits)
            pq.cp.min_points_per_centroid = 1  # a small training split is all there is; no warning per run
            pq.train(t)
            return pq.decode(pq.compute_codes(v)), 8 * pq.code_size / d
        index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
        index.train(t)
        return index.sa_decode(index.sa_encode(v)), 8 * index.sa_code_size() / d
    except RuntimeError as exc:
        reason = str(exc).split("Error: ", 1)[-1].strip()  # FAISS prefixes the C++ file and line
        raise ValueError(f"FAISS {spec}: {reason[:300]}") from None


def run_baselines(
    x: ArrayLike, specs: Sequence[str] = DEFAULT_BASELINES, skipped: list[str] | None = None
) -> list[Baseline]:
    """Every baseline on ``x`` with two-fold cross-fitting: even rows trained on odd ones and vice versa.

    No vector is encoded by a quantiser that saw it in training, and every
    vector (so every trial) is kept.

    Parameters
    ----------
    x : array_like of shape (n, d), float, n >= 2
    specs : sequence of str
        See :func:`baseline_specs` (``"PQ"`` expands there).
    skipped : list of str, optional
        Receives one line per baseline FAISS refused (e.g. too few training
        vectors for PQ's 256 centroids); without it a refusal raises.

    Returns
    -------
    list of (name, decoded (n, d) float32, bits per value)
        Names are ``"FAISS <spec>"``.
    """
    v = np.asarray(x, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"baselines need (n, d) vectors with n >= 2, got shape {v.shape}")
    out: list[Baseline] = []
    import faiss  # heavy optional dependency (the bench extra)

    faiss.omp_set_num_threads(1)  # small jobs; threads only contend on a shared machine
    for spec in baseline_specs(v.shape[1], specs):
        decoded = np.empty_like(v)
        try:
            decoded[0::2], bits = faiss_quantize(spec, v[1::2], v[0::2])
            decoded[1::2], _ = faiss_quantize(spec, v[0::2], v[1::2])
        except ValueError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
        out.append((f"FAISS {spec}", decoded, bits))
    return out
