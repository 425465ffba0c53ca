"""Scoring and search on vectors of every Encoding, against float64 brute force on the decoded vectors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store import _encoded_scan_kernels as FK
from minifloat_store import encoded_fast_scan, encoded_scoring, encoding_codec, scoring
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
@pytest.mark.parametrize("method", ["fast", "scan", "blas"])
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


@pytest.mark.parametrize(("el", "sc"), [("nf4", "block32"), ("int8", "vector"), ("int4", "block16")])
def test_the_search_index_holds_one_float32_per_row_beyond_the_payload(data, el, sc):
    """Search memory (issue 12): codes and scales plus at most one float32 a row, no float64 copy."""
    x, q = data
    p = mfs.encode(x, mfs.Encoding(el, sc, "centre+rotate", seed=3).fit(x))
    index = scoring.search_index(p)
    assert index.norms is not None and index.norms.dtype == np.float32 and index.norms.shape == (len(x),)
    assert index.nbytes - p.nbytes - index.special_rows.nbytes == 4 * len(x)
    np.testing.assert_array_equal(index.norms, mfs.vector_norms(p).astype(np.float32))
    # ... and the results are the exact ones: every method, from the index or from the vectors
    ref = mfs.search(p, q, k=9, method="scan", norms=mfs.vector_norms(p))
    for method in ("fast", "scan", "blas"):
        got = mfs.search(index, q, k=9, method=method)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


FEW_ROWS_CASES = [
    ("nf4", "vector", "none"),
    ("int4", "block16", "centre+rotate"),
    ("e2m1", "block32", "centre+rotate"),
    ("int8", "none", "rotate"),
]


@pytest.mark.parametrize(("el", "sc", "tr"), FEW_ROWS_CASES)
def test_norms_of_a_few_rows_equal_those_of_every_row_bit_for_bit(data, el, sc, tr):
    """The rescoring decodes its candidates' norms one row at a time: they must be vector_norms' exactly."""
    x, _ = data
    p = mfs.encode(x, mfs.Encoding(el, sc, tr, seed=4).fit(x))
    rows = np.array([7, 0, len(x) - 1, 3, 7], np.int64)
    np.testing.assert_array_equal(encoded_scoring.encoded_norms(p, rows), mfs.vector_norms(p)[rows])


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


# ---------------------------------------------------------------- the fast scan (4-bit codes, and wider)

FAST4 = [(el, sc, tr) for el in ("e2m1", "int4", "nf4") for sc in ENCODING_SCALES for tr in ("none", "centre+rotate")]
#: Every element of another width the wide scan serves, at every scale it takes (bf16 unscaled only).
WIDE_ELEMENTS = ("int8", "int6", "e4m3", "e5m2", "e3m4", "e3m2", "e2m3", "int3", "nf3", "fp16", "bf16", "fp32")
WIDE = [
    (el, sc, tr)
    for el in WIDE_ELEMENTS
    for sc in ENCODING_SCALES
    for tr in ("none", "centre+rotate")
    if (CODEBOOKS[el].bits <= 8 or not sc.startswith("block"))
    and (el != "bf16" or sc == "none")
    and (el != "fp32" or sc == "none")
]
needs_fast = pytest.mark.skipif(not encoded_fast_scan.HAS_AVX2, reason="the fast scans need AVX2")


def adversarial(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and queries that stress the error bound: one dominant value among tiny ones, alternating
    signs that cancel, constant rows, zero rows, rows near the mean, a huge and a tiny row."""
    rng = np.random.default_rng(5)
    x = embeddings(700, d, seed=3)
    x[:100] *= np.float32(1e-3)
    x[:100, 0] = 50.0
    x[100:200] = np.where(np.arange(d) % 2, 1.0, -1.0).astype(np.float32) * rng.uniform(0.5, 2, (100, 1))
    x[200:260] = 1.0
    x[260:270] = 0.0
    x[270:280] = x[500:].mean(axis=0) + np.float32(1e-3) * rng.standard_normal((10, d)).astype(np.float32)
    x[280] *= np.float32(1e25)
    x[281] *= np.float32(1e-25)
    q = np.concatenate(
        [
            x[[0, 150, 230, 400, 500]] + np.float32(1e-4),
            np.where(np.arange(d) % 2, 1.0, -1.0)[None, :],
            rng.standard_normal((3, d)) * np.where(np.arange(d) < 2, 1e3, 1e-3),
        ]
    ).astype(np.float32)
    return x, q


def unit(q: np.ndarray) -> np.ndarray:
    q = q.astype(np.float64)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@needs_fast
@pytest.mark.parametrize(("el", "sc", "tr"), FAST4 + WIDE)
@pytest.mark.parametrize("d", [40, 61, 192])
def test_fast_scan_scores_stay_within_the_stated_bound(el, sc, tr, d):
    x, q = adversarial(d)
    p = mfs.encode(x, mfs.Encoding(el, sc, tr, seed=2).fit(x[300:]))
    index = scoring.search_index(p)  # float32 norms, as the fast scan divides by them
    qhat = unit(q)
    approx, bound = encoded_scoring._approx_scores(p, index.norms, qhat)
    ok = ~encoded_scoring.special_mask(p, index.norms)  # scored from decode: the bound does not cover them
    rows = encoded_scoring._Rows(p)
    for t in range(len(q)):
        exact = rows.score(encoded_scoring._Query(p, qhat[t]), np.flatnonzero(ok))  # float64 norms
        err = np.abs(approx[t, ok].astype(np.float64) - exact)
        assert (err <= bound[t]).all(), f"query {t}: worst error {err.max():.3g} > bound {bound[t]:.3g}"
        assert err.max() > 0  # the approximation is an approximation: the bound is tested
    assert bound.max() < 0.1  # small enough to keep the candidate pools small


@needs_fast
@pytest.mark.parametrize(("el", "sc", "tr"), FAST4 + WIDE)
def test_fast_search_returns_what_the_exact_scan_returns(el, sc, tr):
    """Rows and scores bit for bit, with adversarial rows, special norms, exclusions and a zero query."""
    x, q = adversarial(64)
    q = np.concatenate([q, np.zeros((1, 64), np.float32)])
    p = mfs.encode(x, mfs.Encoding(el, sc, tr, seed=2).fit(x[300:]))
    exclude = np.zeros(len(x), bool)
    exclude[[0, 150, 401]] = True
    for k in (1, 10, 40):
        fast = mfs.search(p, q, k=k, exclude=exclude, method="fast")
        scan = mfs.search(p, q, k=k, exclude=exclude, method="scan")
        np.testing.assert_array_equal(fast[0], scan[0])
        np.testing.assert_array_equal(fast[1], scan[1])


@needs_fast
@pytest.mark.parametrize("el", ["nf4", "int8"])
@pytest.mark.parametrize("sc", ["vector", "block32", "block16"])
def test_fast_search_near_ties_that_overflow_the_pools_still_give_exact_results(el, sc, monkeypatch):
    """600 copies of one vector in one block overflow a 256-entry pool; the query falls
    back to the exact scan and the ties come back by ascending row."""
    monkeypatch.setattr(encoded_fast_scan, "FAST_BLOCK_ROWS", 2048)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5000, 48)).astype(np.float32)
    dup = np.sort(rng.choice(np.arange(1, 5000), 600, replace=False))
    x[dup] = x[0]
    p = mfs.encode(x, mfs.Encoding(el, sc, "centre+rotate").fit(x))
    rows, scores = mfs.search(p, x[0], k=20, method="fast")
    np.testing.assert_array_equal(rows[0], np.concatenate([[0], dup])[:20])
    r_scan, s_scan = mfs.search(p, x[0], k=20, method="scan")
    np.testing.assert_array_equal(rows, r_scan)
    np.testing.assert_array_equal(scores, s_scan)


@needs_fast
@pytest.mark.parametrize(("el", "sc"), [("int8", "vector"), ("int8", "block32"), ("e4m3", "block16"), ("nf3", "none")])
def test_one_query_takes_the_wide_fast_scan_for_codes_wider_than_4_bits(el, sc, monkeypatch):
    """search(method="auto") with one query runs the wide approximate scan, not the exact one."""
    calls = []
    scan = encoded_fast_scan.WK.scan_pool_wide_enc

    def spy(*args):
        calls.append(args[0].shape)
        return scan(*args)

    monkeypatch.setattr(encoded_fast_scan.WK, "scan_pool_wide_enc", spy)
    x, q = adversarial(64)
    p = mfs.encode(x, mfs.Encoding(el, sc, "centre+rotate", seed=1).fit(x[300:]))
    assert encoded_fast_scan.encoded_fast_plan(p, 10) is not None
    rows, scores = mfs.search(scoring.search_index(p), q[3], k=10)
    assert calls == [p.codes.shape]
    ref = mfs.search(p, q[3], k=10, method="scan")
    np.testing.assert_array_equal(rows, ref[0])
    np.testing.assert_array_equal(scores, ref[1])


@pytest.mark.parametrize(("el", "sc"), [("binary", "vector"), ("int2", "block16"), ("nf2", "none"), ("bf16", "vector")])
def test_codes_the_exact_scan_serves_as_fast_stay_off_the_approximate_scan(el, sc):
    """1- and 2-bit codes (a table read covers 4 or 8 values), and bf16 scaled up to 3.4e38 (float32
    sums would overflow), are scanned exactly."""
    x, _ = adversarial(64)
    assert encoded_fast_scan.encoded_fast_plan(mfs.encode(x[:10], mfs.Encoding(el, sc)), 10) is None


def test_nf4_levels_split_into_two_integer_tables_with_a_small_residual():
    """nf4 levels are no integer multiple of one step: two int8 tables leave under 0.2 % of each level."""
    tabs, fine, step, rho = encoded_fast_scan._int_tables(CODEBOOKS["nf4"].table)
    assert fine and 0 < rho < 2e-3 and np.abs(tabs).max() <= 63
    tabs, fine, step, rho = encoded_fast_scan._int_tables(CODEBOOKS["e2m1"].table)
    assert not fine and rho == 0 and step == 0.5


@needs_fast
@pytest.mark.parametrize(("scale", "pairs", "valid"), [("block16", 1, 0x7F), ("block32", 2, 0xFF)])
def test_fast_scan_weighs_each_block_by_the_factor_the_exact_path_uses(scale, pairs, valid):
    """The kernel decodes block-scale codes from their bits: equal to the table for every code an encoder writes."""
    tabs, _, _, _ = encoded_fast_scan._int_tables(CODEBOOKS["int4"].table)
    one = int(np.flatnonzero(tabs[0, :16] == 1)[0])
    row = np.full(32, one | one << 4, np.uint8)  # one 32-byte chunk, every value 1
    q = np.ones((1, 32), np.int8)
    table = encoding_codec.block_factor_table(scale)
    other = 0x38 if scale == "block16" else 127  # a factor of 1
    for c in range(valid):
        blocks = np.full(4 // pairs, other, np.uint8)
        blocks[-1] = c  # the chunk's last block: lanes the kernel fills last
        got = FK.enc4_dot(row, blocks, q, q, tabs, False, 0, table, pairs)
        per_block = 16.0 * pairs  # 16 or 32 values of 1 times 1
        assert got == per_block * (table[blocks].sum()), f"code {c:#04x}"


def random_block_encoded(scale: str, d: int, n: int = 600) -> mfs.Encoded:
    """Random 4-bit codes with block scales over the whole valid range: zero blocks, E4M3 subnormals, extremes."""
    rng = np.random.default_rng(4)
    enc = mfs.Encoding("int4", scale, "none").fit(np.ones((2, d), np.float32))
    codes = rng.integers(0, 256, (n, enc.code_bytes(d)), dtype=np.uint8)
    hi = 0x7F if scale == "block16" else 0xFF
    blocks = rng.integers(0, hi, (n, enc.n_blocks(d)), dtype=np.uint8)
    blocks[: n // 3] = rng.integers(0, 8, (n // 3, enc.n_blocks(d)))  # E4M3 subnormals / tiny E8M0 factors
    blocks[n // 3 : n // 2] = np.where(rng.random((n // 2 - n // 3, enc.n_blocks(d))) < 0.5, 0, hi - 1)
    near = (0x30, 0x48) if scale == "block16" else (120, 135)  # factors within a few powers of two
    blocks[n // 2 : 2 * n // 3] = rng.integers(*near, (2 * n // 3 - n // 2, enc.n_blocks(d)))
    scales = rng.uniform(0.5, 2.0, n).astype(np.float32) if scale == "block16" else None
    return mfs.Encoded(codes, scales, blocks, enc, d)


@needs_fast
@pytest.mark.parametrize("scale", ["block16", "block32"])
@pytest.mark.parametrize("d", [104, 192])
def test_fast_search_with_extreme_and_zero_block_scales_returns_the_exact_scan(scale, d):
    """d = 104: one whole 32-byte chunk and a tail; every block-scale code range; bound and bit-for-bit results."""
    p = random_block_encoded(scale, d)
    rng = np.random.default_rng(6)
    q = rng.standard_normal((6, d)).astype(np.float32)
    q[0] = mfs.decode(p[350:351])[0]  # a stored vector with comparable block scales
    index = scoring.search_index(p)
    qhat = unit(q)
    approx, bound = encoded_scoring._approx_scores(p, index.norms, qhat)
    ok = ~encoded_scoring.special_mask(p, index.norms)
    rows = encoded_scoring._Rows(p)
    for t in range(len(q)):
        exact = rows.score(encoded_scoring._Query(p, qhat[t]), np.flatnonzero(ok))
        assert (np.abs(approx[t, ok].astype(np.float64) - exact) <= bound[t]).all()
    for k in (1, 10):
        fast = mfs.search(p, q, k=k, method="fast")
        scan = mfs.search(p, q, k=k, method="scan")
        np.testing.assert_array_equal(fast[0], scan[0])
        np.testing.assert_array_equal(fast[1], scan[1])


@pytest.mark.parametrize("element", ["e4m3", "fp16"])
def test_a_damaged_row_with_a_nan_code_gives_every_method_the_same_results(element):
    # Encoders never write a NaN code, but a damaged file can hold one; like a packed
    # minifloat row, it is never returned, and no method fails on it.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 32)).astype(np.float32)
    e = mfs.encode(x, mfs.Encoding(element, "vector", "none"))
    codes = e.codes.copy()
    if element == "e4m3":
        codes[7, 3] = 0x7F
    else:
        codes[7, 6:8] = np.frombuffer(np.float16(np.nan).tobytes(), np.uint8)
    damaged = dataclasses.replace(e, codes=codes)
    assert np.isnan(mfs.decode(damaged[7:8])).any()
    found = {m: mfs.search(damaged, x[5:8], k=6, method=m) for m in ("fast", "scan", "blas")}
    for rows, scores in found.values():
        np.testing.assert_array_equal(rows, found["scan"][0])
        np.testing.assert_array_equal(scores, found["scan"][1])
        assert 7 not in rows and np.isfinite(scores).all()


@pytest.mark.parametrize(("nq", "fast"), [(10, True), (scoring.BLAS_MIN_QUERIES_WIDE, False)])
def test_a_small_batch_takes_the_fast_scan_and_a_large_one_the_blas_path(nq, fast, monkeypatch):
    """A batch of 10 queries on int8 codes is one fast pass (BLAS measured 2.5x slower there); 24 and up go to BLAS."""
    calls = []
    scan = encoded_fast_scan.WK.scan_pool_wide_enc

    def spy(*args):
        calls.append(1)
        return scan(*args)

    monkeypatch.setattr(encoded_fast_scan.WK, "scan_pool_wide_enc", spy)
    x, _ = adversarial(64)
    queries = np.random.default_rng(2).standard_normal((nq, x.shape[1]))
    p = mfs.encode(x, mfs.Encoding("int8", "vector", "centre+rotate", seed=1).fit(x))
    rows, scores = mfs.search(scoring.search_index(p), queries, k=5)
    assert bool(calls) == fast
    ref = mfs.search(p, queries, k=5, method="scan")
    np.testing.assert_array_equal(rows, ref[0])
    np.testing.assert_array_equal(scores, ref[1])


GROUP_CASES = [("int4", "none"), ("nf4", "vector"), ("int4", "block16"), ("nf4", "block16"), ("e2m1", "block32"),
               ("nf4", "block32")]  # fmt: skip


@needs_fast
@pytest.mark.parametrize(("element", "scale"), GROUP_CASES)
@pytest.mark.parametrize("d", [40, 192, 200])
def test_group_kernel_gives_each_query_the_one_query_kernels_value_bit_for_bit(element, scale, d):
    """A batch's GROUP queries per pass over a row get exactly the sum one query at a time gets: whole
    chunks and the bytes after them (d = 40 and 200 leave 20 and 4 code bytes past the last chunk)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, d)).astype(np.float32)
    p = mfs.encode(x, mfs.Encoding(element, scale, "rotate", seed=2))
    tabs, fine, _, _ = encoded_fast_scan._int_tables(p.encoding.codebook.table)
    pairs = {"block16": 1, "block32": 2}.get(scale, 0)
    width = 32 * -(-p.codes.shape[1] // 32)
    qlo = rng.integers(-127, 128, (FK.GROUP + 1, width), dtype=np.int8)
    qhi = rng.integers(-127, 128, (FK.GROUP + 1, width), dtype=np.int8)
    blocks, table = encoding_codec.block_codes(p), encoding_codec.block_factor_table(scale)
    out = np.empty(FK.GROUP, np.float64)
    for i in range(p.n):
        FK.enc4_dot_group(p.codes[i], blocks[i], qlo, qhi, tabs, fine, 1, table, pairs, out)
        one = [FK.enc4_dot(p.codes[i], blocks[i], qlo, qhi, tabs, fine, 1 + g, table, pairs) for g in range(FK.GROUP)]
        np.testing.assert_array_equal(out, one)


@needs_fast
@pytest.mark.parametrize(("el", "sc"), [("nf4", "vector"), ("e2m1", "block32")])
def test_a_batch_of_100_on_4_bit_codes_takes_the_fast_scan(el, sc, monkeypatch):
    """100 queries on 4-bit Encoded codes are one grouped fast pass (measured faster than BLAS at 100,
    benchmarks/bench_search_crossover.py), equal to the exact scan; a batch that is no multiple of GROUP too."""
    calls = []
    scan = encoded_fast_scan.FK.scan_pool_enc4

    def spy(*args):
        calls.append(args[9].shape[0])  # qlo: one row per query
        return scan(*args)

    monkeypatch.setattr(encoded_fast_scan.FK, "scan_pool_enc4", spy)
    x, _ = adversarial(64)
    queries = np.random.default_rng(3).standard_normal((101, x.shape[1]))
    p = mfs.encode(x, mfs.Encoding(el, sc, "centre+rotate", seed=1).fit(x))
    for nq in (100, 101):
        calls.clear()
        rows, scores = mfs.search(scoring.search_index(p), queries[:nq], k=5)
        assert calls == [nq]
        ref = mfs.search(p, queries[:nq], k=5, method="scan")
        np.testing.assert_array_equal(rows, ref[0])
        np.testing.assert_array_equal(scores, ref[1])
