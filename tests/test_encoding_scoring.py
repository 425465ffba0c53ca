"""Scoring and search on vectors of every Encoding, against float64 brute force on the decoded vectors."""

from __future__ import annotations

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store.codebooks import CODEBOOKS
from minifloat_store.encoding import ENCODING_SCALES, TRANSFORMS

TOL = 1e-6  # the contract of minifloat_store.scoring: agreement with float64 on the decoded vectors


def embeddings(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, d)) * rng.gamma(1.0, 1.0, d) + 2 * rng.standard_normal(d)).astype(np.float32)
    x[3] = 0  # a zero vector: after centring, a vector with most of the mean cancelling
    x[4] = x[5]  # duplicates tie exactly
    return x


def ref_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    den = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den == 0, 0.0, (a @ b.T) / den)


def encodings():
    for el in ("e2m1", "e4m3", "fp16", "int8", "int4", "int3", "nf4", "nf3", "nf2", "binary", "e3m2", "int6"):
        for sc in ENCODING_SCALES:
            if sc.startswith("block") and CODEBOOKS[el].bits > 8:
                continue
            yield el, sc, "centre+rotate"
    for tr in TRANSFORMS:
        yield "nf4", "vector", tr
        yield "int2", "block16", tr


@pytest.fixture(scope="module")
def data():
    x = embeddings(1500, 72)
    q = np.random.default_rng(9).standard_normal((7, 72)).astype(np.float32)
    q[2] = x[10]  # a query equal to a stored vector
    return x, q


@pytest.mark.parametrize(("el", "sc", "tr"), list(encodings()))
@pytest.mark.parametrize("method", ["scan", "blas"])
def test_search_is_the_brute_force_top_k_on_decoded_vectors(data, el, sc, tr, method):
    x, q = data
    enc = mfs.Encoding(el, sc, tr, seed=11).fit(x[:500])
    p = mfs.encode(x, enc)
    y = mfs.decode(p)
    exclude = np.zeros(len(x), dtype=bool)
    exclude[[0, 10, 77]] = True
    rows, scores = mfs.search(p, q, k=12, exclude=exclude, method=method)
    ref = ref_cosines(q, y)
    ref[:, exclude] = -np.inf
    for t in range(len(q)):
        np.testing.assert_allclose(scores[t], ref[t, rows[t]], atol=TOL, rtol=0)
        best = np.sort(ref[t])[::-1][:12]
        np.testing.assert_allclose(scores[t], best, atol=TOL, rtol=0)
        assert (np.diff(scores[t]) <= 0).all()


@pytest.mark.parametrize(("el", "sc", "tr"), list(encodings()))
def test_pairs_norms_and_verify_agree_with_brute_force(data, el, sc, tr):
    x, q = data
    enc = mfs.Encoding(el, sc, tr, seed=11).fit(x[:500])
    p = mfs.encode(x, enc)
    y = mfs.decode(p).astype(np.float64)
    np.testing.assert_allclose(mfs.vector_norms(p), np.linalg.norm(y, axis=1), rtol=1e-12, atol=0)
    rng = np.random.default_rng(1)
    left, right = rng.integers(0, len(x), 400), rng.integers(0, len(x), 400)
    left[:3] = 3  # the zero vector
    c = mfs.cosine_index_pairs(p, left, right)
    ref = np.array([ref_cosines(y[i : i + 1], y[j : j + 1])[0, 0] for i, j in zip(left, right, strict=True)])
    np.testing.assert_allclose(c, ref, atol=TOL, rtol=0)
    np.testing.assert_allclose(mfs.cosine_pairs(p[left], p[right]), ref, atol=TOL, rtol=0)
    for row in (3, 4, 99):
        assert mfs.verify(p, q[0], row) == pytest.approx(ref_cosines(q[:1], y[row : row + 1])[0, 0], abs=TOL)


def test_verify_returns_exactly_what_search_reports(data):
    x, q = data
    p = mfs.encode(x, mfs.Encoding("nf4", "block32", "centre+rotate").fit(x))
    rows, scores = mfs.search(p, q[1], k=5, method="scan")
    assert [mfs.verify(p, q[1], r) for r in rows[0]] == scores[0].tolist()


def test_pairs_may_mix_an_encoding_with_a_plain_format(data):
    x, _ = data
    a = mfs.encode(x[:50], mfs.Encoding("int8", "vector", "centre+rotate").fit(x))
    b = mfs.encode(x[50:100], "e4m3")
    ref = np.diag(ref_cosines(mfs.decode(a), mfs.decode(b)))
    np.testing.assert_allclose(mfs.cosine_pairs(a, b), ref, atol=TOL, rtol=0)


def test_scores_track_the_float32_cosines():
    x = np.delete(embeddings(300, 128), 3, axis=0)  # no zero vector: its cosines are 0 by definition
    ref = ref_cosines(x, x)
    for el, bound in (("int8", 0.002), ("nf4", 0.03)):
        p = mfs.encode(x, mfs.Encoding(el, "vector", "centre+rotate").fit(x))
        c = ref_cosines(mfs.decode(p), mfs.decode(p))
        assert np.sqrt(np.mean((c - ref) ** 2)) < bound
