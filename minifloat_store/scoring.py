"""Cosine scoring on packed vectors: verification (1:1) and identification (1:N).

Every function works on the packed codes directly. numba kernels read a row's
bytes, look each code up in a small table and accumulate in float64, so the
float32 copy of a database is never built; only for a batch of queries is a
chunk of rows (16k at a time) decoded to float32 so that BLAS can pre-select
candidates, which are then rescored exactly.

Every function also takes an :class:`~minifloat_store.Encoded` (vectors of an
:class:`~minifloat_store.Encoding`), scored by :mod:`minifloat_store.encoded_scoring`:
search and verify rotate the query once and add the mean's contribution
analytically; norms and trial pairs decode a chunk of rows at a time.

Definitions used throughout:

* The score of two vectors is the cosine similarity of their *decoded*
  values (what :func:`minifloat_store.decode` returns), computed in float64.
  Results agree with ``float64`` numpy on the decoded vectors to about 1e-7
  (well within 1e-6; see ``_score_kernels`` for why).
* The cosine with a zero vector (stored or query) is defined as 0.0.
* Ranking is by descending score, ties broken by ascending row.

The store (``minifloat_store.store``) calls these with its precomputed
``norms`` (from :func:`vector_norms`) and its deletion mask as ``exclude``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import numba
import numpy as np
from numpy.typing import ArrayLike
from threadpoolctl import threadpool_limits

from minifloat_store import _score_kernels as K
from minifloat_store._checks import check_positive_int
from minifloat_store.codec import Packed, decode
from minifloat_store.encoded_fast_scan import encoded_fast_plan
from minifloat_store.encoded_scoring import encoded_pairs, encoded_search, encoded_verify
from minifloat_store.encoding import Encoded
from minifloat_store.exact_scan import (
    _check_norms,
    _check_packed,
    _check_row,
    _check_rows,
    _decoded64,
    _exact_query_scores,
    _norms_for,
    _raw_table,
    _scan_one,
    _score_rows,
    _special_mask,
    _top_k,
    _unit_queries,
    vector_norms,
)
from minifloat_store.fast_search import (
    FAST_MAX_K,
    SearchIndex,
    _fast_plan,
    _index_from_norms,
    _search_fast,
    search_index,
)

__all__ = [
    "SearchIndex",
    "cosine_index_pairs",
    "cosine_pairs",
    "search",
    "search_index",
    "thread_limit",
    "vector_norms",
    "verify",
]

SearchMethod = Literal["auto", "fast", "scan", "blas"]

#: From this many queries on, ``search(method="auto")`` decodes chunks and
#: pre-selects with BLAS; below it, the fast approximate scan with exact
#: rescoring (or, for fp32, the exact scan). Measured by
#: benchmarks/bench_search.py (see docs/performance.md).
BLAS_MIN_QUERIES = 6
#: The same for 4-bit codes the AVX2 int8 kernels serve (packed e2m1 and
#: 4-bit Encoded vectors): on 1M x 192 the fast scan took 0.71-0.98x the
#: BLAS path's time at 100 queries and 1.22-1.44x at 200
#: (benchmarks/bench_search_crossover.py; docs/performance.md, "When a batch
#: takes BLAS").
BLAS_MIN_QUERIES_SIMD4 = 128
#: The same for the vector scans of 8- and 16-bit packed formats and of
#: Encoded codes of other widths: at 20 queries the fast scan won for fp16
#: and int8 and tied for e4m3 (1.04x); at 40 BLAS won for e4m3 and int8
#: (same benchmark).
BLAS_MIN_QUERIES_WIDE = 24
#: Rows decoded to float32 at a time on the BLAS path.
CHUNK_ROWS = 16384
#: Queries multiplied at a time on the BLAS path (bounds the (q, CHUNK_ROWS) buffer).
QUERY_BATCH = 256


# ---------------------------------------------------------------- pairs


def _decoder(p: Packed | Encoded) -> Callable[[np.ndarray], np.ndarray]:
    """``rows -> decode(p[rows])``: float32 decoded rows, for the chunked pair scoring."""
    return lambda rows: decode(p[rows])


def _pair_norms(p: Packed | Encoded, norms: object, name: str, used: np.ndarray | None = None) -> np.ndarray | None:
    """Checked ``norms``; None for Encoded vectors without them (the pairs' decoded rows give them)."""
    if norms is None and isinstance(p, Encoded):
        return None
    return _norms_for(p, norms, name, used)


def _pairs(
    pa: Packed | Encoded,
    na: np.ndarray | None,
    ra: np.ndarray,
    pb: Packed | Encoded,
    nb: np.ndarray | None,
    rb: np.ndarray,
) -> np.ndarray:
    if isinstance(pa, Encoded) or isinstance(pb, Encoded):
        # Decoded in chunks and multiplied in float64: the brute force itself, bounded memory.
        return encoded_pairs(_decoder(pa), na, ra, _decoder(pb), nb, rb)
    assert na is not None and nb is not None  # _pair_norms gives None for Encoded only
    out = np.empty(ra.shape[0], dtype=np.float64)
    if out.size == 0:
        return out
    ta = _raw_table(pa.fmt)
    tb = _raw_table(pb.fmt)
    # Pairs are scored in the given order: sorting them by left row (to
    # decode each left row once) measured no faster on 580k pairs over 145k
    # rows, whose codes mostly fit in L3 anyway.
    K.pairs_kernel(
        pa.codes, pa.fmt.bits, ta, pa.scales, na, ra,
        pb.codes, pb.fmt.bits, tb, pb.scales, nb, rb,
        pa.dim, out,
    )  # fmt: skip
    sa = _special_mask(na)
    sb = sa if nb is na else _special_mask(nb)
    redo = np.flatnonzero(sa[ra] | sb[rb])
    if redo.size:
        xa = _decoded64(pa, ra[redo])
        xb = _decoded64(pb, rb[redo])
        den = na[ra[redo]] * nb[rb[redo]]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            val = np.einsum("ij,ij->i", xa, xb) / den
        out[redo] = np.where(den == 0, 0.0, np.clip(val, -1.0, 1.0))
    return out


def cosine_pairs(
    packed_a: Packed | Encoded,
    packed_b: Packed | Encoded,
    *,
    norms_a: np.ndarray | None = None,
    norms_b: np.ndarray | None = None,
) -> np.ndarray:
    """Cosine similarity of row i of ``packed_a`` with row i of ``packed_b``.

    Parameters
    ----------
    packed_a, packed_b : Packed or Encoded
        n vectors each, same dimension; formats, encodings and scale modes may differ.
    norms_a, norms_b : ndarray of shape (n,), float64, optional
        :func:`vector_norms` of each, if already known.

    Returns
    -------
    ndarray of shape (n,), float64
        Cosines in [-1, 1]; 0.0 where either vector is zero.

    Raises
    ------
    ValueError
        If the batches differ in length or dimension.
    """
    pa = _check_packed(packed_a, "packed_a")
    pb = _check_packed(packed_b, "packed_b")
    if pa.dim != pb.dim:
        raise ValueError(f"packed_a has dim {pa.dim} but packed_b has dim {pb.dim}")
    if pa.n != pb.n:
        raise ValueError(f"packed_a has {pa.n} vectors but packed_b has {pb.n}; cosine_pairs scores row i with row i")
    na = _pair_norms(pa, norms_a, "norms_a")
    nb = _pair_norms(pb, norms_b, "norms_b")
    rows = np.arange(pa.n, dtype=np.int64)
    return _pairs(pa, na, rows, pb, nb, rows)


def cosine_index_pairs(
    packed: Packed | Encoded, left_rows: np.ndarray, right_rows: np.ndarray, norms: np.ndarray | None = None
) -> np.ndarray:
    """Cosine of row ``left_rows[p]`` with row ``right_rows[p]`` of one batch (a trial list).

    Rows are read in place; nothing is gathered or decoded in full (an
    Encoded is decoded a chunk of pairs at a time).

    Parameters
    ----------
    packed : Packed or Encoded
        n stored vectors.
    left_rows, right_rows : array_like of shape (m,), integer
        Row indices in ``0 .. n-1``.
    norms : ndarray of shape (n,), float64, optional
        :func:`vector_norms` of ``packed``; computed for the rows used if omitted.

    Returns
    -------
    ndarray of shape (m,), float64
        One cosine per pair; 0.0 where either vector is zero.

    Raises
    ------
    ValueError
        If the index arrays differ in length, are not 1-D integers, or hold a
        row outside ``0 .. n-1`` (the message names the first one).
    """
    packed = _check_packed(packed)
    left = _check_rows(left_rows, packed.n, "left_rows")
    right = _check_rows(right_rows, packed.n, "right_rows")
    if left.shape != right.shape:
        raise ValueError(f"left_rows has {left.size} entries but right_rows has {right.size}")
    nrm = _pair_norms(packed, norms, "norms", used=np.concatenate([left, right]))
    return _pairs(packed, nrm, left, packed, nrm, right)


# ---------------------------------------------------------------- one query, one row


def verify(packed: Packed | Encoded, query: ArrayLike, row: int, norms: np.ndarray | None = None) -> float:
    """Cosine of one query with one stored vector (a 1:1 verification score).

    Parameters
    ----------
    packed : Packed or Encoded
        n stored vectors of dimension d.
    query : array_like of shape (d,) or (1, d), floating point
    row : int
        Row index in ``0 .. n-1``.
    norms : ndarray of shape (n,), float64, optional
        :func:`vector_norms` of ``packed``.

    Returns
    -------
    float
        The same value :func:`search` reports for this row (bit for bit).
    """
    packed = _check_packed(packed)
    r = _check_row(row, packed.n)
    qhat = _unit_queries(query, packed.dim)
    if qhat.shape[0] != 1:
        raise ValueError(f"verify takes one query, got {qhat.shape[0]}; use search() for a batch")
    if isinstance(packed, Encoded):  # decodes the row for its norm if none are given
        return encoded_verify(packed, None if norms is None else _check_norms(norms, packed), qhat[0], r)
    nrm = _norms_for(packed, norms, "norms", used=np.array([r], dtype=np.int64))
    rows = np.array([[r]], dtype=np.int64)
    if _special_mask(nrm[r : r + 1])[0]:
        return float(_exact_query_scores(packed, rows[0], nrm, qhat)[0, 0])
    return float(_score_rows(packed, nrm, qhat, rows, np.ones(1, dtype=np.int64))[0, 0])


def _blas_margin(dim: int) -> float:
    """Bound on |float32-BLAS cosine - exact cosine| for unit queries.

    float32 dot products of length d err by at most ~d * 2**-24 of |x||q|
    (any summation order); a few more units cover the rounding of the unit
    query and unit rows to float32, of the result, and the kernels' own
    2**-23.
    """
    return 1.1 * (dim + 10) * 2.0**-24 + 1e-12


def _blas_candidates(
    packed: Packed, norms: np.ndarray, skip: np.ndarray, qhat: np.ndarray, k: int, n_rows: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pre-select with float32 BLAS on decoded chunks, rescore exactly.

    Each query keeps its ``cap`` best rows by approximate cosine. When the
    worst kept row is more than twice the error bound below the k-th kept
    row, no row left out can belong to the exact top k (nor tie with it), so
    the exact top k lies among the kept rows; otherwise (many near-ties, e.g.
    duplicate vectors) that query falls back to the exact scan.
    """
    t64 = _raw_table(packed.fmt)
    bits = packed.fmt.bits
    nq, dim = qhat.shape
    cap = min(n_rows, k + max(k, 32))
    buf = np.empty((min(CHUNK_ROWS, packed.n), dim), dtype=np.float32)
    rows_out: list[np.ndarray] = []
    scores_out: list[np.ndarray] = []
    margin2 = 2 * _blas_margin(dim)
    for q0 in range(0, nq, QUERY_BATCH):
        qb = qhat[q0 : q0 + QUERY_BATCH]
        q32 = qb.astype(np.float32)
        nb = qb.shape[0]
        heap_s = np.empty((nb, cap), dtype=np.float64)
        heap_r = np.empty((nb, cap), dtype=np.int64)
        counts = np.zeros(nb, dtype=np.int64)
        sims = np.empty((nb, buf.shape[0]), dtype=np.float32)
        # Pipeline: decode chunk 0; then per chunk one BLAS call and one numba
        # region (heaps take this chunk's products while the next one decodes).
        starts = list(range(0, packed.n, CHUNK_ROWS))
        no_sims = np.empty((nb, 0), dtype=np.float32)
        K.update_then_decode(no_sims, 0, skip, heap_s, heap_r, counts, packed.codes, packed.scales, norms,
                             0, min(CHUNK_ROWS, packed.n), bits, t64, buf)  # fmt: skip
        for c, a in enumerate(starts):
            m = min(packed.n, a + CHUNK_ROWS) - a
            s = sims[:, :m] if m == sims.shape[1] else np.empty((nb, m), dtype=np.float32)
            np.matmul(q32, buf[:m].T, out=s)
            nxt = starts[c + 1] if c + 1 < len(starts) else packed.n
            m_next = min(packed.n, nxt + CHUNK_ROWS) - nxt
            K.update_then_decode(s, a, skip, heap_s, heap_r, counts, packed.codes, packed.scales, norms,
                                 nxt, m_next, bits, t64, buf)  # fmt: skip
        exact = _score_rows(packed, norms, qb, heap_r, counts)
        for t in range(nb):
            c = int(counts[t])
            if c == cap and cap < n_rows:
                kth = np.partition(heap_s[t, :c], c - k)[c - k]  # k-th best approximate score
                if not heap_s[t].min() < kth - margin2:
                    r, sc = _scan_one(packed, norms, skip, qb[t], k)
                    rows_out.append(r)
                    scores_out.append(sc)
                    continue
            rows_out.append(heap_r[t, :c].copy())
            scores_out.append(exact[t, :c].copy())
    return rows_out, scores_out


def _choose_method(method: SearchMethod, nq: int, plan: str | None) -> SearchMethod:
    """The path a search of ``nq`` queries takes: "auto" resolved, "fast" where no fast scan serves
    the vectors (``plan`` None; else "simd4", "wide" or "table") replaced by an exact one."""
    if method == "auto":
        blas_from = {"simd4": BLAS_MIN_QUERIES_SIMD4, "wide": BLAS_MIN_QUERIES_WIDE}.get(plan or "", BLAS_MIN_QUERIES)
        method = "blas" if nq >= blas_from else "fast"
    if method == "fast" and plan is None:
        method = "blas" if nq >= BLAS_MIN_QUERIES else "scan"
    return method


#: BLAS thread limits open in this process (one entry per open ``thread_limit``), the
#: limiter that restores the value found before the first, and the lock guarding both.
_BLAS_OPEN: list[int] = []
_BLAS_FIRST: list[threadpool_limits] = []
_BLAS_LOCK = threading.Lock()


def _blas_limit_enter(threads: int) -> None:
    """Open a limit: BLAS runs with the smallest open one (a library call only when that changes)."""
    with _BLAS_LOCK:
        if not _BLAS_OPEN:
            first = threadpool_limits(limits=threads, user_api="blas")  # records the counts it found
            _BLAS_FIRST.append(first)
        elif threads < min(_BLAS_OPEN):
            threadpool_limits(limits=threads, user_api="blas")
        _BLAS_OPEN.append(threads)


def _blas_limit_exit(threads: int) -> None:
    """Close a limit: the smallest still open holds; after the last, the counts found before the first."""
    with _BLAS_LOCK:
        low = min(_BLAS_OPEN)
        _BLAS_OPEN.remove(threads)
        if not _BLAS_OPEN:
            _BLAS_FIRST.pop().restore_original_limits()
        elif min(_BLAS_OPEN) != low:
            threadpool_limits(limits=min(_BLAS_OPEN), user_api="blas")


@contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run the block with at most ``threads`` numba threads and ``threads`` BLAS threads.

    Both pools size themselves to every core by default, and a search
    alternates between them (BLAS pre-selects a chunk, numba rescores it);
    a caller that runs several searches at once (one per worker thread, or
    a Dask worker per core) gives each a share of the cores with this so
    that the pools do not oversubscribe them. ``None`` changes nothing.
    numba's limit applies to the calling thread only. BLAS's applies to the
    whole process (threadpoolctl): while several limits are open, in any
    threads, the smallest holds, and when the last one closes, whatever the
    order, BLAS gets back the count it had before the first. (OpenBLAS
    0.3.31 ignores a count set from a thread other than the main one once
    the main thread has set one; numba's limit holds regardless.)
    """
    if threads is None:
        yield
        return
    threads = check_positive_int(threads, "threads")
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        _blas_limit_enter(threads)
        try:
            yield
        finally:
            _blas_limit_exit(threads)
    finally:
        numba.set_num_threads(before)


def search(
    packed: Packed | Encoded | SearchIndex,
    queries: ArrayLike,
    k: int = 10,
    exclude: np.ndarray | None = None,
    norms: np.ndarray | None = None,
    *,
    method: SearchMethod = "auto",
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k stored vectors of highest cosine with each query (1:N identification).

    Parameters
    ----------
    packed : Packed, Encoded or SearchIndex
        n stored vectors of dimension d; a :func:`search_index` serves the
        fast scan without a pass to compute norms (for Encoded vectors,
        whose norms need a full decode, build it once and search it).
        Encoded vectors take the fast scan too (on AVX2), except 1- and
        2-bit codes and bf16 with scale "vector", which for ``"fast"`` take
        ``"scan"``, or ``"blas"`` from ``BLAS_MIN_QUERIES`` queries on
        (``encoded_fast_scan.encoded_fast_plan``).
    queries : array_like of shape (q, d) or (d,), floating point
        A (d,) query is a batch of one.
    k : int, default 10
        Results per query; fewer (``k' = min(k, rows not excluded)``) when the
        store is smaller.
    exclude : ndarray of shape (n,), bool, optional
        True for rows never to return (deleted rows).
    norms : ndarray of shape (n,), float64, optional
        :func:`vector_norms` of ``packed``; computed if omitted (a full pass).
        Ignored with a SearchIndex.
    method : {"auto", "fast", "scan", "blas"}
        ``"fast"``: an approximate float32 (or, for 4-bit formats on AVX2,
        int8) scan of the codes for all queries at once, parallel over row
        blocks, keeping every row within twice a proven error bound of the
        k-th best, which are then rescored exactly (fp32 codes, and ``k``
        over 256, take ``"scan"``, or ``"blas"`` from ``BLAS_MIN_QUERIES``
        queries on). ``"scan"``: exact table-driven scan per query.
        ``"blas"``: decode 16k rows at a time to float32, pre-select with a
        matrix product, rescore exactly. All return identical results;
        ``"auto"`` takes ``"blas"`` from ``BLAS_MIN_QUERIES`` queries on
        (``BLAS_MIN_QUERIES_SIMD4`` for 4-bit codes on AVX2, packed or
        Encoded; ``BLAS_MIN_QUERIES_WIDE`` for 8- and 16-bit formats on the
        vector scan and for Encoded codes of other widths the fast scan
        serves), ``"fast"`` below.
    threads : int, optional
        At most this many threads, numba's and BLAS's alike (see
        :func:`thread_limit`); default: numba's setting (every core unless
        ``NUMBA_NUM_THREADS`` says otherwise) and BLAS's.

    Returns
    -------
    rows : ndarray of shape (q, k'), int64
        Row indices, best first; ties (equal scores) in ascending row order.
    scores : ndarray of shape (q, k'), float64
        Their cosines (the values :func:`verify` returns).

    Raises
    ------
    TypeError
        If the queries are not floating point.
    ValueError
        If a query has the wrong dimension or holds NaN/inf, ``k < 1``, or
        ``exclude``/``norms`` have the wrong shape.
    """
    with thread_limit(threads):
        return _search(packed, queries, k, exclude, norms, method)


def _search(
    packed: Packed | Encoded | SearchIndex,
    queries: ArrayLike,
    k: int,
    exclude: np.ndarray | None,
    norms: np.ndarray | None,
    method: SearchMethod,
) -> tuple[np.ndarray, np.ndarray]:
    index = packed if isinstance(packed, SearchIndex) else None
    packed = _check_packed(index.packed if index is not None else packed)
    qhat = _unit_queries(queries, packed.dim)
    k = check_positive_int(k, "k")
    if method not in ("auto", "fast", "scan", "blas"):
        raise ValueError(f"method must be 'auto', 'fast', 'scan' or 'blas', got {method!r}")
    n = packed.n
    if exclude is None:
        skip = np.zeros(n, dtype=np.bool_)
    else:
        skip = np.asarray(exclude)
        if skip.dtype != np.bool_ or skip.shape != (n,):
            raise ValueError(
                f"exclude must be a bool array of shape ({n},), got {skip.dtype} array of shape {skip.shape}"
            )
        skip = np.ascontiguousarray(skip)
    n_valid = n - int(np.count_nonzero(skip))
    kk = min(k, n_valid)
    nq = qhat.shape[0]
    if kk == 0 or nq == 0:
        return np.empty((nq, kk), dtype=np.int64), np.empty((nq, kk), dtype=np.float64)
    if isinstance(packed, Encoded):
        method = _choose_method(method, nq, encoded_fast_plan(packed, kk))
        if index is None:
            index = search_index(packed, norms)
        assert index.norms is not None  # an Encoded index holds its float32 norms
        found = encoded_search(packed, index.norms, index.special_rows, index.low, skip, qhat, kk, method)
        return _top_k(*found, kk)
    method = _choose_method(method, nq, _fast_plan(packed.fmt, packed.dim) if kk <= FAST_MAX_K else None)
    if method == "fast":
        if index is None:
            index = _index_from_norms(packed, _norms_for(packed, norms, "norms"))
        return _search_fast(index, skip, qhat, kk)
    nrm = _norms_for(packed, norms, "norms")
    use_blas = method == "blas"

    special = _special_mask(nrm) & ~skip
    special_rows = np.flatnonzero(special)
    if special_rows.size:
        skip = skip | special
    n_kernel = n_valid - special_rows.size

    if n_kernel == 0:
        cand_r: list[np.ndarray] = [np.empty(0, np.int64)] * nq
        cand_s: list[np.ndarray] = [np.empty(0, np.float64)] * nq
    elif use_blas:
        cand_r, cand_s = _blas_candidates(packed, nrm, skip, qhat, min(kk, n_kernel), n_kernel)
    else:
        cand_r, cand_s = [], []
        for t in range(nq):
            r, s = _scan_one(packed, nrm, skip, qhat[t], min(kk, n_kernel))
            cand_r.append(r)
            cand_s.append(s)

    if special_rows.size:
        special_scores = _exact_query_scores(packed, special_rows, nrm, qhat)
        cand_r = [np.concatenate([r, special_rows]) for r in cand_r]
        cand_s = [np.concatenate([s, special_scores[t]]) for t, s in enumerate(cand_s)]
    return _top_k(cand_r, cand_s, kk)
