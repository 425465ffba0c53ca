"""The fast search: an approximate scan whose error is bounded, then exact rescoring.

Its results are checked against brute force on the decoded vectors in
test_scoring.py (``method="fast"`` is one of its METHODS); here: the error
bound itself on adversarial data, near-ties that overflow the candidate
pools, zero queries, and what the search state holds.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import minifloat_store as mfs
from minifloat_store import fast_search, scoring
from minifloat_store.formats import FORMATS

FAST = [f for f in FORMATS if FORMATS[f].bits <= 16]


def exact_scores(p: mfs.Packed, qhat: np.ndarray) -> np.ndarray:
    """Cosines of every row with each unit query from the decoded vectors, float64."""
    x = mfs.decode(p).astype(np.float64)
    nr = np.linalg.norm(x, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (qhat @ x.T) / nr
    return np.where(nr > 0, s, 0.0)


def unit(q: np.ndarray) -> np.ndarray:
    q = q.astype(np.float64)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def adversarial(dim: int, scale: str, fmt: str) -> tuple[mfs.Packed, np.ndarray]:
    """Rows and queries built to stress the bound: one huge value among tiny ones,
    alternating signs that cancel, near-parallel pairs, constant rows."""
    rng = np.random.default_rng(5)
    n = 600
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x[:100] *= np.float32(1e-3)
    x[:100, 0] = 50.0  # one dominant value
    x[100:200] = np.where(np.arange(dim) % 2, 1.0, -1.0).astype(np.float32) * rng.uniform(0.5, 2, (100, 1))
    x[100:200, :3] += rng.standard_normal((100, 3)).astype(np.float32) * 1e-2
    x[200:300] = 1.0
    x[300:310] = 0.0
    q = np.concatenate(
        [
            x[[0, 150, 250, 400]] + np.float32(1e-4),
            np.where(np.arange(dim) % 2, 1.0, -1.0)[None, :],  # cancels against rows 100-199
            rng.standard_normal((3, dim)) * np.where(np.arange(dim) < 2, 1e3, 1e-3),  # two big components
        ]
    )
    return mfs.encode(x, fmt, scale=scale), unit(q)


@pytest.mark.parametrize("scale", ["vector", "none"])
@pytest.mark.parametrize("dim", [7, 100, 192])  # 100: whole groups of 8 and 32 codes, then a tail
@pytest.mark.parametrize("fmt", FAST)
def test_approximate_scores_stay_within_the_stated_bound(fmt, dim, scale):
    p, qhat = adversarial(dim, scale, fmt)
    index = scoring.search_index(p)
    approx, bound = fast_search._approx_scores(index, qhat)
    exact = exact_scores(p, qhat)
    ok = np.ones(p.n, bool)
    ok[index.special_rows] = False  # scored apart: the bound does not cover them
    err = np.abs(approx[:, ok].astype(np.float64) - exact[:, ok])
    assert (err <= bound[:, None]).all(), f"worst error {err.max():.3g} > bound {bound.min():.3g}"
    assert bound.max() < 0.05  # small enough to keep the candidate pools small


@pytest.mark.skipif(not fast_search.SK.HAS_AVX2, reason="the vector kernels need AVX2")
@pytest.mark.parametrize("fmt", ["e4m3", "e5m2", "e3m4", "fp16", "bf16"])
def test_8_and_16_bit_codes_are_converted_in_vector_registers(fmt):
    """The kernel of ``_wide_scan_kernels`` serves them (the bound test above checks its values),
    unless the scaled values would leave float32's range (then the table kernel)."""
    x = np.random.default_rng(12).standard_normal((50, 24)).astype(np.float32)
    index = scoring.search_index(mfs.encode(x, fmt, scale="none"))
    plan = fast_search._query_tables(index.packed.fmt, 24, unit(x[:2]), index.unit)[0]
    assert plan == ("wide" if fmt != "fp16" or fast_search.WK.HAS_F16C else "table")


def test_the_bound_is_not_vacuous_for_the_int8_path():
    """The int8 query's bound is its measured quantisation error, well below
    the worst case, and the approximate scores do err (so the test above tests something)."""
    p, qhat = adversarial(192, "vector", "e2m1")
    approx, bound = fast_search._approx_scores(scoring.search_index(p), qhat)
    err = np.abs(approx.astype(np.float64) - exact_scores(p, qhat))
    assert err.max() > 1e-5
    assert (bound < 0.5 * np.sqrt(192) / 127).all()


@pytest.mark.parametrize("fmt", ["e2m1", "e3m2", "e4m3", "fp16"])
def test_near_ties_that_overflow_the_pools_still_give_exact_results(fmt, monkeypatch):
    """600 copies of one vector in one block overflow a 256-entry pool; the query
    falls back to the exact scan and the ties come back by ascending row."""
    monkeypatch.setattr(fast_search, "FAST_BLOCK_ROWS", 2048)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5000, 40)).astype(np.float32)
    dup = np.sort(rng.choice(np.arange(1, 5000), 600, replace=False))
    x[dup] = x[0]
    p = mfs.encode(x, fmt)
    rows, scores = scoring.search(p, x[0], k=20, method="fast")
    np.testing.assert_array_equal(rows[0], np.concatenate([[0], dup])[:20])
    r_scan, s_scan = scoring.search(p, x[0], k=20, method="scan")
    np.testing.assert_array_equal(rows, r_scan)
    np.testing.assert_array_equal(scores, s_scan)


@pytest.mark.parametrize("fmt", ["e2m1", "e4m3"])
def test_a_zero_query_returns_the_first_live_rows_with_score_zero(fmt):
    x = np.random.default_rng(9).standard_normal((300, 16)).astype(np.float32)
    p = mfs.encode(x, fmt)
    exclude = np.zeros(300, bool)
    exclude[:3] = True
    q = np.stack([np.zeros(16), x[7]])
    rows, scores = scoring.search(scoring.search_index(p), q, k=5, exclude=exclude)
    np.testing.assert_array_equal(rows[0], [3, 4, 5, 6, 7])
    assert (scores[0] == 0).all()
    assert rows[1, 0] == 7


@pytest.mark.parametrize("fmt", FAST + ["fp32"])
def test_search_on_an_index_equals_search_on_the_packed_vectors(fmt):
    x = np.random.default_rng(10).standard_normal((3000, 24)).astype(np.float32)
    x[5] = 0
    x[9] *= np.float32(1e-25)  # a special row: scored from decode
    p = mfs.encode(x, fmt, scale="none")
    q = x[[1, 9, 20]] + 0.01
    index = scoring.search_index(p)
    a = scoring.search(index, q, k=8)
    b = scoring.search(p, q, k=8, method="scan")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_the_search_state_is_the_payload_alone():
    """e2m1 at d = 192: codes and scales only, 7.68x less than float32 (>= 7.5x)."""
    x = np.random.default_rng(11).standard_normal((2000, 192)).astype(np.float32)
    p = mfs.encode(x, "e2m1")
    index = scoring.search_index(p)
    assert index.special_rows.size == 0 and index.special_rows.dtype == np.int64
    assert index.nbytes == p.nbytes == mfs.storage_bytes(2000, 192, "e2m1")
    assert x.nbytes / index.nbytes >= 7.5
    assert index.packed.codes is p.codes  # no copy of the codes


def test_a_thread_limit_holds_numba_and_blas_inside_and_is_undone_after():
    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    numba_before, blas_before = numba.get_num_threads(), blas_threads()
    with scoring.thread_limit(1):
        assert numba.get_num_threads() == 1
        assert blas_threads() and set(blas_threads()) == {1}
    assert numba.get_num_threads() == numba_before and blas_threads() == blas_before
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        with scoring.thread_limit(0):
            pass


class _ProcessBlasLimit:
    """Stands for threadpoolctl's limiter on one process-wide BLAS count: what OpenBLAS does when
    every thread's call takes effect (in the OpenBLAS 0.3.31 here, a worker thread's call is
    ignored once the main thread has set a count, so the real library cannot show the order)."""

    count = 2

    def __init__(self, limits: int, user_api: str) -> None:
        assert user_api == "blas"
        self.found = _ProcessBlasLimit.count
        _ProcessBlasLimit.count = limits

    def restore_original_limits(self) -> None:
        _ProcessBlasLimit.count = self.found

    def __enter__(self) -> _ProcessBlasLimit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore_original_limits()


def test_thread_limits_closed_out_of_order_in_two_threads_give_blas_its_count_back(monkeypatch):
    """Two threads each open a limit and close them in the opposite order: BLAS runs with the
    smaller while both are open, the other's once one closes, and its own count once both have."""
    monkeypatch.setattr(scoring, "threadpool_limits", _ProcessBlasLimit)
    first_open, second_open, first_closed = threading.Event(), threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with scoring.thread_limit(1):
            first_open.set()
            second_open.wait(10)
            seen.append(_ProcessBlasLimit.count)
        first_closed.set()

    def second() -> None:
        first_open.wait(10)
        with scoring.thread_limit(3):
            second_open.set()
            first_closed.wait(10)
            seen.append(_ProcessBlasLimit.count)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == [1, 3]
    assert _ProcessBlasLimit.count == 2


def test_a_thread_limit_whose_blas_call_fails_leaves_numba_and_later_limits_as_they_were(monkeypatch):
    """threadpoolctl raising on entry: the error reaches the caller, numba's count is restored, and the
    next limit starts from a clean slate (records and restores the count it finds)."""

    class Failing:
        def __init__(self, limits: int, user_api: str) -> None:
            raise RuntimeError("no BLAS here")

    before = numba.get_num_threads()
    monkeypatch.setattr(scoring, "threadpool_limits", Failing)
    with pytest.raises(RuntimeError, match="no BLAS here"):
        with scoring.thread_limit(1):
            pass
    assert numba.get_num_threads() == before
    monkeypatch.setattr(scoring, "threadpool_limits", _ProcessBlasLimit)
    _ProcessBlasLimit.count = 2
    with scoring.thread_limit(1):
        assert _ProcessBlasLimit.count == 1
    assert _ProcessBlasLimit.count == 2


@pytest.mark.parametrize("method", ["fast", "blas", "scan"])
def test_search_with_one_thread_returns_what_every_core_returns(method):
    rng = np.random.default_rng(5)
    packed = mfs.encode(rng.standard_normal((3000, 64)).astype(np.float32), "e2m1")
    q = rng.standard_normal((7, 64)).astype(np.float32)
    rows, scores = mfs.search(packed, q, k=5, method=method)
    rows1, scores1 = mfs.search(packed, q, k=5, method=method, threads=1)
    np.testing.assert_array_equal(rows1, rows)
    np.testing.assert_array_equal(scores1, scores)
