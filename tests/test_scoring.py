"""Scoring on packed vectors against a plain float64 reference on the decoded vectors.

The reference (``ref_cosines``, ``ref_topk``) is what anyone would write: decode,
cast to float64, divide dot products by norms, sort by (-score, row). Every
format, both search paths (table scan and BLAS pre-selection), stores with
deletions, an empty store and k beyond the store size are checked against it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minifloat_store as mfs
from minifloat_store import exact_scan, fast_search, scoring
from minifloat_store.formats import FORMATS

ALL = list(FORMATS)
METHODS = ["scan", "blas", "fast"]
TOL = 1e-6  # the contract: agreement with float64 on the decoded vectors


# ---------------------------------------------------------------- reference


def ref_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of every row of a with every row of b, float64, 0 for zero vectors."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    den = na[:, None] * nb[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a @ b.T) / den
    return np.where(den == 0, 0.0, c)


def ref_topk(decoded: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None):
    """Brute-force top k on the decoded vectors: descending score, ties by ascending row."""
    s = ref_cosines(np.atleast_2d(queries), decoded)
    keep = np.arange(decoded.shape[0]) if exclude is None else np.flatnonzero(~exclude)
    rows, scores = [], []
    for t in range(s.shape[0]):
        order = np.lexsort((keep, -s[t, keep]))[:k]
        rows.append(keep[order])
        scores.append(s[t, keep[order]])
    return np.array(rows, dtype=np.int64).reshape(len(rows), -1), np.array(scores).reshape(len(rows), -1)


def embeddings(n: int, dim: int, seed: int) -> np.ndarray:
    """Speaker-embedding-like float32 vectors: correlated Gaussians with a spread of norms."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x *= rng.uniform(0.5, 3.0, size=(n, 1)).astype(np.float32)
    return x


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return {"x": embeddings(9000, 64, 0), "q": embeddings(12, 64, 1)}


# ---------------------------------------------------------------- norms and pairs


@pytest.mark.parametrize("fmt", ALL)
def test_vector_norms_are_float64_norms_of_decoded_vectors(fmt, data):
    p = mfs.encode(data["x"][:2000], fmt)
    expected = np.linalg.norm(mfs.decode(p).astype(np.float64), axis=1)
    np.testing.assert_allclose(scoring.vector_norms(p), expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("fmt", ALL)
def test_cosine_pairs_match_reference(fmt, data):
    a = mfs.encode(data["x"][:1500], fmt)
    b = mfs.encode(data["x"][1500:3000], fmt)
    got = scoring.cosine_pairs(a, b)
    expected = np.einsum(
        "ij,ij->i",
        *(
            v / np.linalg.norm(v, axis=1, keepdims=True)
            for v in (mfs.decode(a).astype(np.float64), mfs.decode(b).astype(np.float64))
        ),
    )
    assert got.dtype == np.float64 and got.shape == (1500,)
    assert np.abs(got - expected).max() < TOL


@pytest.mark.parametrize("fmt_a,fmt_b", [("e2m1", "fp16"), ("e3m2", "e4m3"), ("fp32", "e2m3"), ("bf16", "e5m2")])
def test_cosine_pairs_across_formats(fmt_a, fmt_b, data):
    a = mfs.encode(data["x"][:500], fmt_a)
    b = mfs.encode(data["x"][:500], fmt_b, scale="none")
    expected = np.diag(ref_cosines(mfs.decode(a), mfs.decode(b)))
    assert np.abs(scoring.cosine_pairs(a, b) - expected).max() < TOL


@pytest.mark.parametrize("fmt", ALL)
def test_cosine_index_pairs_match_reference_and_given_norms_change_nothing(fmt, data):
    p = mfs.encode(data["x"], fmt)
    rng = np.random.default_rng(5)
    left = rng.integers(0, p.n, 4000)
    right = rng.integers(0, p.n, 4000)
    dec = mfs.decode(p).astype(np.float64)
    dec /= np.linalg.norm(dec, axis=1, keepdims=True)
    expected = np.einsum("ij,ij->i", dec[left], dec[right])
    got = scoring.cosine_index_pairs(p, left, right)
    assert np.abs(got - expected).max() < TOL
    np.testing.assert_array_equal(scoring.cosine_index_pairs(p, left, right, norms=scoring.vector_norms(p)), got)
    # Scoring in place equals scoring gathered rows.
    np.testing.assert_array_equal(got[:300], scoring.cosine_pairs(p[left[:300]], p[right[:300]]))


@pytest.mark.parametrize("fmt", ["e2m1", "e3m2", "e2m3", "e4m3", "fp16", "fp32"])
@pytest.mark.parametrize("dim", [1, 2, 3, 5, 7, 13])
def test_odd_dimensions_decode_every_trailing_code(fmt, dim):
    x = embeddings(40, dim, dim)
    p = mfs.encode(x, fmt)
    dec = mfs.decode(p)
    ref = ref_cosines(dec, dec)
    left, right = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    got = scoring.cosine_index_pairs(p, left.ravel(), right.ravel())
    assert np.abs(got - ref.ravel()).max() < TOL
    for method in METHODS:
        rows, scores = scoring.search(p, x[:3], k=40, method=method)
        _, ref_scores = ref_topk(dec, x[:3], 40)
        # Short quantised vectors tie often, and near-ties within rounding
        # may order either way: check each row's own score and the sorted scores.
        assert np.abs(scores - ref_scores).max() < TOL
        assert np.abs(np.take_along_axis(ref_cosines(x[:3], dec), rows, 1) - scores).max() < TOL
        assert all(len(set(r)) == 40 for r in rows.tolist())


def test_zero_vectors_score_zero():
    x = embeddings(6, 16, 3)
    x[2] = 0
    p = mfs.encode(x, "e2m1")
    got = scoring.cosine_index_pairs(p, [2, 2, 0, 1], [2, 0, 2, 1])
    assert got[:3].tolist() == [0.0, 0.0, 0.0]
    assert got[3] == pytest.approx(1.0, abs=TOL)
    assert scoring.verify(p, x[0], 2) == 0.0
    rows, scores = scoring.search(p, np.zeros(16, np.float32), k=6)
    assert rows.tolist() == [[0, 1, 2, 3, 4, 5]] and not scores.any()  # all tie at 0: row order


@settings(max_examples=60, deadline=None)
@given(
    fmt=st.sampled_from(ALL),
    dim=st.integers(1, 24),
    seed=st.integers(0, 2**31 - 1),
    zero_frac=st.floats(0, 0.9),
    scale=st.sampled_from(["vector", "none"]),
)
def test_cosine_pairs_property(fmt, dim, seed, zero_frac, scale):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2, 8, dim)) * rng.choice([1e-3, 1.0, 50.0])).astype(np.float32)
    x[rng.random(x.shape) < zero_frac] = 0
    a, b = mfs.encode(x[0], fmt, scale), mfs.encode(x[1], fmt, scale)
    expected = np.diag(ref_cosines(mfs.decode(a), mfs.decode(b)))
    got = scoring.cosine_pairs(a, b)
    assert np.abs(got - expected).max() < TOL
    assert np.all(np.abs(got) <= 1 + 1e-12)


# ---------------------------------------------------------------- search


@pytest.fixture
def small_chunks(monkeypatch):
    """Several BLAS chunks, query batches and fast-scan blocks even on test-sized stores."""
    monkeypatch.setattr(scoring, "CHUNK_ROWS", 1000)
    monkeypatch.setattr(fast_search, "FAST_BLOCK_ROWS", 1000)
    monkeypatch.setattr(scoring, "QUERY_BATCH", 5)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fmt", ALL)
def test_search_equals_brute_force(fmt, method, data, small_chunks):
    p = mfs.encode(data["x"], fmt)
    dec = mfs.decode(p)
    rows, scores = scoring.search(p, data["q"], k=10, method=method)
    ref_rows, ref_scores = ref_topk(dec, data["q"], 10)
    assert rows.dtype == np.int64 and scores.dtype == np.float64 and rows.shape == (12, 10)
    np.testing.assert_array_equal(rows, ref_rows)
    assert np.abs(scores - ref_scores).max() < TOL


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fmt", ALL)
def test_search_skips_deleted_rows(fmt, method, data, small_chunks):
    p = mfs.encode(data["x"], fmt)
    dec = mfs.decode(p)
    # Delete every query's current best ten plus a random tenth of the store.
    exclude = np.random.default_rng(2).random(p.n) < 0.1
    exclude[ref_topk(dec, data["q"], 10)[0].ravel()] = True
    rows, scores = scoring.search(p, data["q"], k=10, exclude=exclude, method=method)
    ref_rows, ref_scores = ref_topk(dec, data["q"], 10, exclude)
    np.testing.assert_array_equal(rows, ref_rows)
    assert not exclude[rows].any()
    assert np.abs(scores - ref_scores).max() < TOL


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fmt", ["e2m1", "e2m3", "e4m3", "fp16", "fp32"])
def test_k_larger_than_store_returns_every_live_row_sorted(fmt, method, small_chunks):
    x = embeddings(1500, 32, 7)
    p = mfs.encode(x, fmt)
    exclude = np.zeros(p.n, bool)
    exclude[::3] = True
    rows, scores = scoring.search(p, x[:4], k=5000, exclude=exclude, method=method)
    assert rows.shape == (4, 1000)
    ref_rows, ref_scores = ref_topk(mfs.decode(p), x[:4], 5000, exclude)
    np.testing.assert_array_equal(rows, ref_rows)
    assert np.abs(scores - ref_scores).max() < TOL


@pytest.mark.parametrize("method", METHODS)
def test_empty_store_and_fully_deleted_store_return_zero_columns(method):
    empty = mfs.encode(np.ones((1, 8), np.float32), "e2m1")[np.array([], dtype=np.int64)]
    assert empty.n == 0
    rows, scores = scoring.search(empty, np.ones((3, 8), np.float32), k=10, method=method)
    assert rows.shape == (3, 0) and scores.shape == (3, 0) and rows.dtype == np.int64
    assert scoring.vector_norms(empty).shape == (0,)
    assert scoring.cosine_index_pairs(empty, [], []).shape == (0,)
    p = mfs.encode(embeddings(5, 8, 1), "e4m3")
    rows, _ = scoring.search(p, np.ones(8), k=3, exclude=np.ones(5, bool), method=method)
    assert rows.shape == (1, 0)


@pytest.mark.parametrize("k", [10, 50])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fmt", ["e2m1", "e4m3", "bf16", "fp32"])
def test_ties_are_broken_by_ascending_row(fmt, method, k, small_chunks):
    """Duplicates (and copies scaled by powers of two, which encode to the same
    codes) tie exactly. With k=10, 61 tied rows overflow the BLAS
    pre-selection, which must send the query to the exact scan."""
    x = embeddings(3000, 48, 11)
    v = x[0].copy()
    copies = np.sort(np.random.default_rng(3).choice(np.arange(1, 3000), 60, replace=False))
    x[copies] = v * (np.float32(2.0) ** (np.arange(60) % 7)).astype(np.float32)[:, None]
    rows, scores = scoring.search(mfs.encode(x, fmt), v, k=k, method=method)
    expected = np.concatenate([[0], copies])[:k]
    np.testing.assert_array_equal(rows[0], expected)
    assert np.unique(scores).size == 1


@pytest.mark.parametrize("fmt", ALL)
def test_scan_blas_verify_and_auto_agree_bit_for_bit(fmt, data, small_chunks):
    p = mfs.encode(data["x"], fmt)
    norms = scoring.vector_norms(p)
    r_scan, s_scan = scoring.search(p, data["q"], k=7, norms=norms, method="scan")
    r_blas, s_blas = scoring.search(p, data["q"], k=7, norms=norms, method="blas")
    r_auto, s_auto = scoring.search(p, data["q"], k=7)
    np.testing.assert_array_equal(r_scan, r_blas)
    np.testing.assert_array_equal(s_scan, s_blas)
    np.testing.assert_array_equal(r_scan, r_auto)
    np.testing.assert_array_equal(s_scan, s_auto)
    for t in (0, 5, 11):
        for j in (0, 6):
            assert scoring.verify(p, data["q"][t], int(r_scan[t, j]), norms=norms) == s_scan[t, j]
            assert scoring.verify(p, data["q"][t], int(r_scan[t, j])) == s_scan[t, j]
    one_r, one_s = scoring.search(p, data["q"][4], k=7)
    np.testing.assert_array_equal(one_r[0], r_scan[4])
    np.testing.assert_array_equal(one_s[0], s_scan[4])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fmt", ["e2m1", "fp16", "bf16", "fp32"])
def test_vectors_far_from_unit_scale_are_still_exact(fmt, method, small_chunks):
    """Norms below 1e-20 or above 1e30 leave the fast paths' error bounds; they are
    scored from the decoded values instead, with the same results."""
    x = embeddings(2500, 32, 4)
    x[[10, 700]] *= np.float32(1e-24)
    if fmt in ("bf16", "fp32"):  # formats that can hold such magnitudes unscaled
        x[[20, 1900]] *= np.float32(1e34)
    q = x[[10, 20, 5]]
    for scale in ("vector", "none"):
        p = mfs.encode(x, fmt, scale)
        dec = mfs.decode(p)
        rows, scores = scoring.search(p, q, k=20, method=method)
        ref_rows, ref_scores = ref_topk(dec, q, 20)
        np.testing.assert_array_equal(rows, ref_rows)
        assert np.abs(scores - ref_scores).max() < TOL
        left = np.array([10, 700, 20, 1900, 3, 10])
        right = np.array([700, 10, 1900, 20, 4, 5])
        got = scoring.cosine_index_pairs(p, left, right)
        assert np.abs(got - ref_cosines(dec[left], dec[right]).diagonal()).max() < TOL
        for t, r in [(0, 700), (1, 1900), (2, 10)]:
            assert abs(scoring.verify(p, q[t], r) - ref_cosines(q[t : t + 1], dec[r : r + 1])[0, 0]) < TOL


# ---------------------------------------------------------------- validation


@pytest.fixture(scope="module")
def store192() -> mfs.Packed:
    return mfs.encode(embeddings(20, 192, 9), "e2m1")


def test_query_with_wrong_dim_is_rejected(store192):
    with pytest.raises(ValueError, match=r"query dim 191 != 192"):
        scoring.search(store192, np.ones(191, np.float32))
    with pytest.raises(ValueError, match=r"query dim 191 != 192"):
        scoring.verify(store192, np.ones(191, np.float32), 0)


def test_nonfinite_and_nonfloat_queries_are_rejected(store192):
    q = np.ones((3, 192), np.float32)
    q[1, 5] = np.nan
    with pytest.raises(ValueError, match=r"query 1 contains NaN or inf"):
        scoring.search(store192, q)
    with pytest.raises(TypeError, match="floating-point"):
        scoring.search(store192, np.ones(192, np.int32))
    with pytest.raises(ValueError, match="shape"):
        scoring.search(store192, np.ones((2, 2, 192), np.float32))


def test_out_of_range_rows_are_rejected_before_any_kernel_runs(store192):
    with pytest.raises(ValueError, match=r"right_rows\[1\] = 20 is out of range for 20 stored rows"):
        scoring.cosine_index_pairs(store192, [0, 1], [3, 20])
    with pytest.raises(ValueError, match=r"left_rows\[0\] = -1 is out of range"):
        scoring.cosine_index_pairs(store192, [-1, 1], [3, 2])
    with pytest.raises(ValueError, match="integer row indices"):
        scoring.cosine_index_pairs(store192, [0.0, 1.0], [3, 2])
    with pytest.raises(ValueError, match="2 entries but right_rows has 3"):
        scoring.cosine_index_pairs(store192, [0, 1], [3, 2, 1])
    with pytest.raises(ValueError, match="row 20 is out of range"):
        scoring.verify(store192, np.ones(192), 20)
    with pytest.raises(TypeError, match="row must be an integer"):
        scoring.verify(store192, np.ones(192), 1.0)


def test_bad_k_exclude_norms_and_batches_are_rejected(store192):
    q = np.ones(192, np.float32)
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            scoring.search(store192, q, k=k)
    with pytest.raises(ValueError, match=r"exclude must be a bool array of shape \(20,\)"):
        scoring.search(store192, q, exclude=np.zeros(19, bool))
    with pytest.raises(ValueError, match=r"exclude must be a bool array"):
        scoring.search(store192, q, exclude=np.zeros(20, np.int8))
    with pytest.raises(ValueError, match=r"norms must be a float array of shape \(20,\)"):
        scoring.search(store192, q, norms=np.ones(21))
    with pytest.raises(ValueError, match=r"norms\[3\] = -1.0 is negative"):
        scoring.verify(store192, q, 0, norms=np.where(np.arange(20) == 3, -1.0, 1.0))
    with pytest.raises(ValueError, match="method must be"):
        scoring.search(store192, q, method="faiss")
    other = mfs.encode(embeddings(20, 64, 1), "e2m1")
    with pytest.raises(ValueError, match="packed_a has dim 192 but packed_b has dim 64"):
        scoring.cosine_pairs(store192, other)
    with pytest.raises(ValueError, match="packed_a has 20 vectors but packed_b has 5"):
        scoring.cosine_pairs(store192, store192[np.arange(5)])
    with pytest.raises(TypeError, match="must be a Packed"):
        scoring.search(np.zeros((3, 192), np.float32), q)
    with pytest.raises(ValueError, match="verify takes one query"):
        scoring.verify(store192, np.ones((2, 192)), 0)


def test_read_only_memory_mapped_codes_are_scored_in_place(tmp_path):
    """A store may hand over codes memory-mapped read-only from disk."""
    x = embeddings(3000, 40, 8)
    p = mfs.encode(x, "e2m3")
    np.save(tmp_path / "codes.npy", p.codes)
    scales = p.scales.copy()
    scales.flags.writeable = False
    mapped = mfs.Packed(np.load(tmp_path / "codes.npy", mmap_mode="r"), scales, p.fmt, 40)
    for method in METHODS:
        np.testing.assert_array_equal(
            scoring.search(mapped, x[:8], k=5, method=method)[0], scoring.search(p, x[:8], k=5)[0]
        )
    np.testing.assert_array_equal(
        scoring.cosine_index_pairs(mapped, [0, 5], [7, 9]), scoring.cosine_index_pairs(p, [0, 5], [7, 9])
    )


def test_formats_the_kernels_cannot_unpack_cannot_be_built():
    """A 5-bit Format would make a kernel read past a row's end: it is refused when it is built."""
    with pytest.raises(ValueError, match="5-bit codes"):
        dataclasses.replace(FORMATS["e2m3"], name="e2m2", bits=5, mantissa_bits=2)


def test_codes_reshaped_in_place_are_refused_before_a_kernel_reads_them():
    p = mfs.encode(embeddings(6, 16, 2), "e4m3")
    p.codes.shape = (12, 8)  # same bytes, half the row width the format needs
    for call in (
        lambda: scoring.search(p, np.ones(16)),
        lambda: scoring.search(p, np.ones((8, 16)), method="blas"),
        lambda: scoring.cosine_index_pairs(p, [0], [1]),
        lambda: scoring.vector_norms(p),
        lambda: scoring.verify(p, np.ones(16), 0),
    ):
        with pytest.raises(ValueError, match="bytes per row"):
            call()


@pytest.mark.parametrize("dim", [63, 64])
def test_4bit_search_without_a_lut_gives_the_same_bits(monkeypatch, dim):
    """Above MAX_LUT_ROWS the per-query table is not built (its memory grows with dim); nothing else changes."""
    rng = np.random.default_rng(14)
    packed = mfs.encode(rng.standard_normal((300, dim)).astype(np.float32), "e2m1")
    queries = rng.standard_normal((3, dim)).astype(np.float32)
    before = [scoring.search(packed, queries, k=7, method=m) for m in ("scan", "blas")]
    v_before = scoring.verify(packed, queries[0], 5)
    monkeypatch.setattr(exact_scan, "MAX_LUT_ROWS", 4)
    after = [scoring.search(packed, queries, k=7, method=m) for m in ("scan", "blas")]
    for (r0, s0), (r1, s1) in zip(before, after, strict=True):
        np.testing.assert_array_equal(r0, r1)
        assert s0.tobytes() == s1.tobytes()
    assert scoring.verify(packed, queries[0], 5) == v_before
