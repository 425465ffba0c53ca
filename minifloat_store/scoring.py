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

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import llvmlite.binding
import numpy as np
from numpy.typing import ArrayLike

from minifloat_store import _scan_kernels as SK
from minifloat_store import _score_kernels as K
from minifloat_store._checks import check_positive_int, first_nonfinite_row
from minifloat_store.codec import Packed, check_kernel_input, decode
from minifloat_store.encoded_scoring import (
    encoded_fast_ok,
    encoded_norms,
    encoded_pairs,
    encoded_search,
    encoded_verify,
)
from minifloat_store.encoding import Encoded
from minifloat_store.formats import Format, decode_table

__all__ = ["SearchIndex", "cosine_index_pairs", "cosine_pairs", "search", "search_index", "vector_norms", "verify"]

SearchMethod = Literal["auto", "fast", "scan", "blas"]

#: From this many queries on, ``search(method="auto")`` decodes chunks and
#: pre-selects with BLAS; below it, the fast approximate scan with exact
#: rescoring (or, for fp32, the exact scan). Measured by
#: benchmarks/bench_search.py (see docs/performance.md).
BLAS_MIN_QUERIES = 6
#: The same for 4-bit formats served by the AVX2 kernel: measured faster than
#: BLAS at 100 queries on 1M x 192 (benchmarks/bench_search.py).
BLAS_MIN_QUERIES_SIMD4 = 128
#: Candidate-pool entries per (row block, query) in the fast scan (at least
#: 4k); a pool that overflows (hundreds of near-ties in one block) sends its
#: query to the exact scan.
POOL_ROWS = 256
#: Above this k the pools would grow large: the exact scan or BLAS serve it.
FAST_MAX_K = 256
#: Rows per parallel work item of the fast scan (each has its own heaps and pools).
FAST_BLOCK_ROWS = 16384
_HAS_AVX2 = bool(llvmlite.binding.get_host_cpu_features().get("avx2", False))
#: Rows decoded to float32 at a time on the BLAS path.
CHUNK_ROWS = 16384
#: Queries multiplied at a time on the BLAS path (bounds the (q, CHUNK_ROWS) buffer).
QUERY_BATCH = 256

# Keyed by the Format itself, as formats.decode_table is: two formats may share a name.
_TABLES64: dict[Format, np.ndarray] = {}
_NO_TABLE64 = np.zeros(1, dtype=np.float64)
_NO_ROWS = np.zeros(0, dtype=np.int64)


# ---------------------------------------------------------------- validation


def _check_packed(packed: object, name: str = "packed") -> Packed | Encoded:
    if isinstance(packed, Encoded):
        packed.check_layout()
        return packed
    if not isinstance(packed, Packed):
        raise TypeError(
            f"{name} must be a Packed or an Encoded (from minifloat_store.encode), got {type(packed).__name__}"
        )
    # Its Format is one the kernels handle (Format refuses any other); its
    # arrays may have been reshaped in place since it was built.
    check_kernel_input(packed)
    return packed


def _raw_table(fmt: Format) -> np.ndarray:
    """Value of every code for the kernels: float64 up to 8 bits; for 16-bit codes
    the float32 ``decode_table`` itself (its values are exact either way, and
    256 KB instead of 512 KB stays in L2); a dummy for fp32, read directly."""
    if fmt.bits > 16:
        return _NO_TABLE64
    table = decode_table(fmt)  # 2**bits entries: every code indexes inside it
    if fmt.bits == 16:
        return table
    t64 = _TABLES64.get(fmt)
    if t64 is None:
        t64 = table.astype(np.float64)
        t64.flags.writeable = False
        _TABLES64[fmt] = t64
    return t64


def _check_norms(norms: object, packed: Packed | Encoded, name: str = "norms") -> np.ndarray:
    arr = np.asarray(norms)
    if arr.dtype.kind != "f" or arr.shape != (packed.n,):
        raise ValueError(
            f"{name} must be a float array of shape ({packed.n},) from vector_norms(), "
            f"got {arr.dtype} array of shape {arr.shape}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if (arr < 0).any():
        row = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"{name}[{row}] = {float(arr[row])!r} is negative; pass the output of vector_norms()")
    return arr


def _check_rows(rows: object, n: int, name: str) -> np.ndarray:
    arr = np.asarray(rows)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(
            f"{name} must be a 1-D array of integer row indices, got {arr.dtype} array of shape {arr.shape}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            pos = int(np.flatnonzero(arr == bad)[0])
            raise ValueError(f"{name}[{pos}] = {bad} is out of range for {n} stored rows (valid: 0..{n - 1})")
    return arr


def _check_row(row: object, n: int) -> int:
    try:
        r = operator.index(row)  # type: ignore[arg-type]  # the check itself: rejects floats, accepts numpy ints
    except TypeError:
        raise TypeError(f"row must be an integer, got {type(row).__name__}") from None
    if isinstance(row, (bool, np.bool_)):
        raise TypeError("row must be an integer, got bool")
    if not 0 <= r < n:
        raise ValueError(f"row {r} is out of range for {n} stored rows")
    return r


def _unit_queries(queries: object, dim: int, name: str = "query") -> np.ndarray:
    """Validate float queries of shape (q, dim) or (dim,); return them as float64 unit vectors.

    A zero query stays zero (it scores 0.0 against everything).
    """
    q = np.asarray(queries)
    if q.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {q.dtype}")
    if q.ndim == 1:
        q = q[None, :]
    elif q.ndim != 2:
        raise ValueError(f"{name} must have shape (q, {dim}) or ({dim},), got shape {q.shape}")
    if q.shape[1] != dim:
        raise ValueError(f"{name} dim {q.shape[1]} != {dim}")
    q = q.astype(np.float64)
    row = first_nonfinite_row(q)
    if row >= 0:
        raise ValueError(f"{name} {row} contains NaN or inf")
    q = np.ascontiguousarray(q)
    K.unit_rows(q)
    return q


# ---------------------------------------------------------------- rows scored in plain numpy


def _special_mask(norms: np.ndarray) -> np.ndarray:
    """Rows the fast paths must not score: nonzero norms outside [1e-20, 1e30].

    The kernels use raw values ``table[code]`` and divide by the scale once;
    the decoded float32 ``table[code] / s`` differs from that by 2**-24
    relative, or by at most 2**-149 absolute where it falls below the normal
    float32 range, which is negligible against a norm of 1e-20 or more. The
    same bounds keep float32 BLAS products from underflowing (even with
    flush-to-zero) or overflowing. Vectors that far from unit scale do not
    occur in practice; if one does, it is scored from ``decode`` in float64.
    """
    return (norms > 1e30) | ((norms < 1e-20) & (norms > 0))


def _decoded64(packed: Packed, rows: np.ndarray) -> np.ndarray:
    return decode(packed[rows]).astype(np.float64)


def _exact_query_scores(packed: Packed, rows: np.ndarray, norms: np.ndarray, qhat: np.ndarray) -> np.ndarray:
    """(q, len(rows)) cosines from decoded float64 rows: the plain definition."""
    x = _decoded64(packed, rows)
    nr = norms[rows]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = (qhat @ x.T) / nr
    out[:, nr == 0] = 0.0
    return np.clip(out, -1.0, 1.0)


# ---------------------------------------------------------------- norms


def _norms_of_rows(packed: Packed | Encoded, rows: np.ndarray | None) -> np.ndarray:
    """Decoded norms of ``rows`` (int64), or of every row for None."""
    if isinstance(packed, Encoded):
        return encoded_norms(packed, rows)
    t64 = _raw_table(packed.fmt)
    out = np.empty(packed.n if rows is None else rows.shape[0], dtype=np.float64)
    if out.size:
        idx = _NO_ROWS if rows is None else rows
        K.norms_kernel(packed.codes, packed.scales, idx, rows is None, packed.fmt.bits, t64, packed.dim, out)
    return out


def vector_norms(packed: Packed | Encoded) -> np.ndarray:
    """L2 norms of the decoded vectors, computed from the codes.

    Parameters
    ----------
    packed : Packed or Encoded
        n packed vectors of dimension d.

    Returns
    -------
    ndarray of shape (n,), float64
        ``norm(decode(packed)[i])`` in float64, decoded row by row (no float32
        copy of the matrix). A store computes these once and passes them as
        ``norms=`` to the other functions here.
    """
    packed = _check_packed(packed)
    return _norms_of_rows(packed, None)


def _norms_for(packed: Packed | Encoded, norms: object, name: str, used: np.ndarray | None = None) -> np.ndarray:
    """Validated ``norms``, or computed ones (only for the ``used`` rows, if given, when fewer)."""
    if norms is not None:
        return _check_norms(norms, packed, name)
    if used is None or used.size >= packed.n:
        return vector_norms(packed)
    full = np.zeros(packed.n, dtype=np.float64)
    uniq = np.unique(used)
    full[uniq] = _norms_of_rows(packed, uniq)
    return full


# ---------------------------------------------------------------- pairs


def _decoder(p: Packed | Encoded) -> Callable[[np.ndarray], np.ndarray]:
    """``rows -> decode(p[rows])``: float32 decoded rows, for the chunked pair scoring."""
    return lambda rows: decode(p[rows])


def _pairs(
    pa: Packed | Encoded, na: np.ndarray, ra: np.ndarray, pb: Packed | Encoded, nb: np.ndarray, rb: np.ndarray
) -> np.ndarray:
    if isinstance(pa, Encoded) or isinstance(pb, Encoded):
        # Decoded in chunks and multiplied in float64: the brute force itself, bounded memory.
        return encoded_pairs(_decoder(pa), na, ra, _decoder(pb), nb, rb)
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
    na = _norms_for(pa, norms_a, "norms_a")
    nb = _norms_for(pb, norms_b, "norms_b")
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
    nrm = _norms_for(packed, norms, "norms", used=np.concatenate([left, right]))
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
    nrm = _norms_for(packed, norms, "norms", used=np.array([r], dtype=np.int64))
    if isinstance(packed, Encoded):
        return encoded_verify(packed, nrm, qhat[0], r)
    rows = np.array([[r]], dtype=np.int64)
    if _special_mask(nrm[r : r + 1])[0]:
        return float(_exact_query_scores(packed, rows[0], nrm, qhat)[0, 0])
    return float(_score_rows(packed, nrm, qhat, rows, np.ones(1, dtype=np.int64))[0, 0])


# ---------------------------------------------------------------- search


#: Largest per-query look-up table of a 4-bit scan (rows of 256 float64: 4 MiB); above it the
#: kernels compute each entry in place, so per-query memory does not grow with dim.
MAX_LUT_ROWS = 2048


def _lut_shape(bits: int, dim: int) -> tuple[int, int]:
    return ((dim + 1) // 2, 256) if bits == 4 and (dim + 1) // 2 <= MAX_LUT_ROWS else (1, 1)


def _score_rows(
    packed: Packed, norms: np.ndarray, qhat: np.ndarray, rows: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Exact kernel scores of query t with ``rows[t, :counts[t]]`` (rest of the output undefined)."""
    t64 = _raw_table(packed.fmt)
    out = np.zeros(rows.shape, dtype=np.float64)
    K.score_rows(packed.codes, packed.fmt.bits, t64, packed.scales, norms, qhat,
                 *_lut_shape(packed.fmt.bits, packed.dim), rows, counts, out)  # fmt: skip
    return out


def _scan_one(
    packed: Packed, norms: np.ndarray, skip: np.ndarray, qhat: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact scan of every row for one unit query: candidate (rows, scores) holding the top k."""
    t64 = _raw_table(packed.fmt)
    lut = np.empty(_lut_shape(packed.fmt.bits, packed.dim), dtype=np.float64)
    K.query_lut(qhat, packed.fmt.bits, t64, lut)
    n_blocks = (packed.n + K.BLOCK_ROWS - 1) // K.BLOCK_ROWS
    cap = min(k, K.BLOCK_ROWS)
    out_s = np.empty((n_blocks, cap), dtype=np.float64)
    out_r = np.empty((n_blocks, cap), dtype=np.int64)
    out_n = np.zeros(n_blocks, dtype=np.int64)
    K.scan_topk(packed.codes, packed.fmt.bits, t64, packed.scales, norms, skip, qhat, lut, cap, out_s, out_r, out_n)
    keep = np.arange(cap)[None, :] < out_n[:, None]
    return out_r[keep], out_s[keep]


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


def search(
    packed: Packed | Encoded | SearchIndex,
    queries: ArrayLike,
    k: int = 10,
    exclude: np.ndarray | None = None,
    norms: np.ndarray | None = None,
    *,
    method: SearchMethod = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The k stored vectors of highest cosine with each query (1:N identification).

    Parameters
    ----------
    packed : Packed, Encoded or SearchIndex
        n stored vectors of dimension d; a :func:`search_index` of packed
        vectors serves the fast scan without a pass to compute norms
        (Encoded vectors take their own exact path; ``method`` "fast" means
        "scan" for them).
    queries : array_like of shape (q, d) or (d,), floating point
        A (d,) query is a batch of one.
    k : int, default 10
        Results per query; fewer (``k' = min(k, rows not excluded)``) when the
        store is smaller.
    exclude : ndarray of shape (n,), bool, optional
        True for rows never to return (deleted rows).
    norms : ndarray of shape (n,), float64, optional
        :func:`vector_norms` of ``packed``; computed if omitted (a full pass).
    method : {"auto", "fast", "scan", "blas"}
        ``"fast"``: an approximate float32 (or, for 4-bit formats on AVX2,
        int8) scan of the codes for all queries at once, parallel over row
        blocks, keeping every row within twice a proven error bound of the
        k-th best, which are then rescored exactly (fp32 codes take
        ``"scan"``). ``"scan"``: exact table-driven scan per query.
        ``"blas"``: decode 16k rows at a time to float32, pre-select with a
        matrix product, rescore exactly. All return identical results;
        ``"auto"`` takes ``"blas"`` from ``BLAS_MIN_QUERIES`` queries on
        (``BLAS_MIN_QUERIES_SIMD4`` for 4-bit formats on AVX2), ``"fast"``
        below.

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
        fast_ok = encoded_fast_ok(packed, kk)
        if method == "auto":
            method = "blas" if nq >= (BLAS_MIN_QUERIES_SIMD4 if fast_ok else BLAS_MIN_QUERIES) else "fast"
        if method == "fast" and not fast_ok:
            method = "blas" if nq >= BLAS_MIN_QUERIES else "scan"
        return _top_k(*encoded_search(packed, _norms_for(packed, norms, "norms"), skip, qhat, kk, method), kk)
    if method == "auto":
        plan = _fast_plan(packed.fmt, packed.dim)
        method = "blas" if nq >= (BLAS_MIN_QUERIES_SIMD4 if plan == "simd4" else BLAS_MIN_QUERIES) else "fast"
    if method == "fast" and kk > FAST_MAX_K:
        method = "blas" if nq >= BLAS_MIN_QUERIES else "scan"
    if method == "fast" and isinstance(packed, Packed) and _fast_plan(packed.fmt, packed.dim) is not None:
        if index is None:
            index = _index_from_norms(packed, _norms_for(packed, norms, "norms"))
        return _search_fast(index, skip, qhat, kk)
    nrm = _norms_for(packed, norms, "norms")
    use_blas = method == "blas" or (method == "auto" and nq >= BLAS_MIN_QUERIES)

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


def _top_k(cand_r: list[np.ndarray], cand_s: list[np.ndarray], kk: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``kk`` of each query's candidates: descending score, ties by ascending row."""
    nq = len(cand_r)
    rows = np.empty((nq, kk), dtype=np.int64)
    scores = np.empty((nq, kk), dtype=np.float64)
    for t in range(nq):
        r, s = cand_r[t], cand_s[t]
        order = np.lexsort((r, -s))[:kk]
        rows[t] = r[order]
        scores[t] = s[order]
    return rows, scores


# ---------------------------------------------------------------- fast scan with exact rescoring
#
# An approximate score (float32 tables, or int8 queries through AVX2 for
# small-integer 4-bit formats) runs over every row; each query keeps a pool
# of rows whose approximate score is within twice a proven error bound of
# the k-th best approximate score, and only those are scored exactly. See
# docs/performance.md ("Exact results from an approximate scan") for the
# guarantee.


@dataclass(frozen=True, eq=False)
class SearchIndex:
    """What the fast search holds per database: the payload, nothing per row beyond it.

    The approximate pass computes each row's norm from its codes as it goes,
    and the exact rescoring computes the norms of its few candidates, so no
    norm is stored.

    Attributes
    ----------
    packed : Packed
        The n stored vectors (codes and scales: the payload).
    special_rows : ndarray of shape (m,), int64
        Nonzero rows the approximate pass cannot bound (a decoded norm outside
        [1e-20, 1e30], see ``_special_mask``; raw values so small that float32
        squares would underflow; a NaN/inf code), scored from ``decode`` in
        float64 instead; usually empty.
    unit : float
        A power of two that brings the largest raw row norm into (1/2, 1]:
        the float32 kernels work on ``table[code] * unit``, far from
        overflow (bf16 values reach 3.4e38) and from underflow.
    """

    packed: Packed
    special_rows: np.ndarray
    unit: float = 1.0

    @property
    def nbytes(self) -> int:
        """Bytes held: codes, scales and ``special_rows``."""
        return self.packed.nbytes + self.special_rows.nbytes


#: Rows whose raw norm, in units of the largest row's, is below this are
#: scored exactly: float32 underflow of squares in the approximate kernels
#: could otherwise exceed the error bound (a dynamic range of 2**50 between rows).
_MIN_UNIT_NORM = 2.0**-50


def _index_from_norms(packed: Packed, norms: np.ndarray) -> SearchIndex:
    raw = packed.scales.astype(np.float64) * norms  # |table[codes]| per row
    # A NaN/inf code (possible in a damaged file, never from encode) gives a
    # non-finite norm: such rows are scored from decode, like the special ones.
    special = _special_mask(norms) | ~np.isfinite(norms)
    ok = raw[~special]
    top = float(ok.max()) if ok.size else 0.0
    unit = 2.0 ** -int(np.ceil(np.log2(top))) if top > 0 else 1.0
    special |= (raw * unit < _MIN_UNIT_NORM) & (norms > 0)
    return SearchIndex(packed, np.flatnonzero(special), unit)


def search_index(packed: Packed, norms: np.ndarray | None = None) -> SearchIndex:
    """Build the state :func:`search` scans fastest: the codes plus one float32 per row.

    Parameters
    ----------
    packed : Packed
        n stored vectors.
    norms : ndarray of shape (n,), float64, optional
        :func:`vector_norms` of ``packed``, if already known (not kept).

    Returns
    -------
    SearchIndex
        Pass it to :func:`search` instead of ``packed``: it holds the
        payload and the (usually empty) list of rows scored apart, so
        repeated searches skip the pass over the data that finds those.
    """
    if isinstance(packed, Encoded):
        raise TypeError("search_index takes a Packed; pass Encoded vectors to search() directly")
    checked = _check_packed(packed)
    assert isinstance(checked, Packed)  # Encoded was refused above
    nrm = vector_norms(checked) if norms is None else _check_norms(norms, checked)
    return _index_from_norms(checked, nrm)


def _table_bound(bits: int, dim: int) -> float:
    """Bound on |float32-table approximate cosine - exact cosine| (see docs/performance.md).

    A float32 sum of n terms on eight lanes has a chain of at most
    ceil(n / 8) + 3 rounded adds, each costing at most 2**-24 of the sum of
    the terms' magnitudes. The dot product's terms carry two more roundings
    (the query or pair table, the product) and sum in magnitude to at most
    ``|t| |q| = |t|``; the squared norm's terms one (the square) and sum to
    ``|t|**2``, so its square root errs by half as much; the division, the
    square root and raw-versus-decoded values (2**-24 each) add three more.
    Relative to ``|t|`` that bounds the cosine's error; doubled for slack.
    """
    chain = ((dim + 1) // 2 if bits == 4 else dim + 7) // 8 + 3
    return 2.0 * ((chain + 2) + (chain + 1) / 2 + 3) * 2.0**-24 + 1e-12


def _int4_table(fmt: Format) -> tuple[np.ndarray, float] | None:
    """The 16 values of a 4-bit format as int8 multiples of one step (|v| <= 63), or None."""
    t = decode_table(fmt).astype(np.float64)
    if fmt.bits != 4 or not np.isfinite(t).all() or not (t != 0).any():
        return None
    step = float(np.abs(t[t != 0]).min())
    v = t / step
    if not (np.all(v == np.round(v)) and np.abs(v).max() <= 63):
        return None
    return np.round(v).astype(np.int8), step


def _fast_plan(fmt: Format, dim: int) -> str | None:
    """Which approximate kernel serves ``fmt``: "simd4", "table" or None (fp32: exact scan instead)."""
    if fmt.bits > 16:
        return None
    if fmt.bits == 4 and _HAS_AVX2 and _int4_table(fmt) is not None:
        return "simd4"
    return "table"


def _float_luts(fmt: Format, dim: int, qhat: np.ndarray, t64: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair tables of the queries and of squares for 4-bit rows; placeholders (shape carries d) otherwise."""
    if fmt.bits != 4:
        return np.empty((1, 1, 1), np.float32), np.empty((1, dim, 1), np.float32)
    lut = np.empty((qhat.shape[0], (dim + 1) // 2, 256), np.float32)
    SK.pair_lut(qhat, t64, lut)
    sq_lut = np.empty((1, (dim + 1) // 2, 256), np.float32)
    ones = np.ones((1, dim))
    SK.pair_lut(ones, t64 * t64, sq_lut)  # t[lo]**2 + t[hi]**2 (an odd d's missing value weighs 0)
    return lut, sq_lut


def _query_tables(fmt: Format, dim: int, qhat: np.ndarray, unit: float) -> tuple[str, tuple[object, ...], np.ndarray]:
    """The approximate kernel for ``fmt``, its per-query arguments, and each query's error bound.

    Returns (plan, args, bound): ``args`` go between the codes and the skip
    mask of ``SK.scan_pool_simd4`` (plan "simd4") or ``SK.scan_pool``
    ("table"); ``bound[t]`` (float64) bounds |approximate - exact cosine|
    for query t and every row not in ``SearchIndex.special_rows``.
    """
    nq = qhat.shape[0]
    if _fast_plan(fmt, dim) == "simd4":
        tab = _int4_table(fmt)[0]  # type: ignore[index]
        amax = np.abs(qhat).max(axis=1)
        safe = np.where(amax > 0, amax, 1.0)
        scale = np.where(amax > 0, 127.0 / safe, 0.0)
        qi = np.rint(qhat * scale[:, None])
        err = qi / np.where(scale > 0, scale, 1.0)[:, None] - qhat
        # |sum t_j e_j| <= |t| |e| (Cauchy-Schwarz): the integer dot's error in
        # cosine units; 1e-6 covers the float32 roundings of the score.
        bound = np.sqrt(np.einsum("ij,ij->i", err, err)) * (1 + 2.0**-20) + 1e-6
        width = 32 * ((fmt.row_bytes(dim) + 31) // 32)
        qlo = np.zeros((nq, width), np.int8)
        qhi = np.zeros((nq, width), np.int8)
        qlo[:, : (dim + 1) // 2] = qi[:, 0::2]
        qhi[:, : dim // 2] = qi[:, 1::2]
        qscale = (1.0 / np.where(scale > 0, scale, 1.0)).astype(np.float32)
        return "simd4", (np.concatenate([tab, tab]), 1.0, qlo, qhi, qscale), bound
    # Non-finite codes only occur in rows scored elsewhere (see _index_from_norms).
    with np.errstate(invalid="ignore"):
        t64 = decode_table(fmt).astype(np.float64)
    t64 = np.nan_to_num(t64, nan=0.0, posinf=0.0, neginf=0.0) * unit
    lut, sq_lut = _float_luts(fmt, dim, qhat, t64)
    args = (fmt.bits, lut, sq_lut, t64.astype(np.float32), qhat.astype(np.float32))
    return "table", args, np.full(nq, _table_bound(fmt.bits, dim))


def _approx_scores(index: SearchIndex, qhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row's approximate cosine (float32, (q, n)) and each query's bound: what the tests check."""
    packed = index.packed
    plan, args, bound = _query_tables(packed.fmt, packed.dim, qhat, index.unit)
    out = np.empty((qhat.shape[0], packed.n), np.float32)
    (SK.approx_all_simd4 if plan == "simd4" else SK.approx_all)(packed.codes, *args, out)
    return out, bound


def _fast_candidates(
    index: SearchIndex, skip: np.ndarray, qhat: np.ndarray, k: int
) -> tuple[list[np.ndarray], list[bool]]:
    """Per query, the rows whose approximate score is within 2 * bound of the k-th best approximate score.

    Returns the candidate rows per query and, per query, whether its pool
    overflowed (then the caller scans that query exactly).
    """
    packed = index.packed
    n = packed.n
    nq = qhat.shape[0]
    plan, args, bound = _query_tables(packed.fmt, packed.dim, qhat, index.unit)
    margin2 = np.float32(2 * bound.max() * (1 + 2.0**-20) + 1e-6)  # float32 threshold arithmetic, rounded up
    n_blocks = (n + FAST_BLOCK_ROWS - 1) // FAST_BLOCK_ROWS
    heap_s = np.empty((n_blocks, nq, k), np.float32)
    heap_r = np.empty((n_blocks, nq, k), np.int64)
    cap = max(POOL_ROWS, 4 * k)
    pool_s = np.empty((n_blocks, nq, cap), np.float32)
    pool_r = np.empty((n_blocks, nq, cap), np.int64)
    state = np.zeros((n_blocks, nq, 2), np.int64)
    overflow = np.zeros((n_blocks, nq), np.bool_)
    skip_k = skip
    if index.special_rows.size:  # scored apart, from decode
        skip_k = skip.copy()
        skip_k[index.special_rows] = True
    kernel = SK.scan_pool_simd4 if plan == "simd4" else SK.scan_pool
    kernel(packed.codes, *args, skip_k, k, margin2, heap_s, heap_r, pool_s, pool_r, state, overflow, FAST_BLOCK_ROWS)
    rows_out: list[np.ndarray] = []
    over_out: list[bool] = []
    for t in range(nq):
        hn = state[:, t, 0]
        hs = np.concatenate([heap_s[b, t, : hn[b]] for b in range(n_blocks)]).astype(np.float64)
        kk = min(k, hs.size)
        kth = np.partition(hs, hs.size - kk)[hs.size - kk] if kk else -np.inf
        pn = state[:, t, 1]
        ps = np.concatenate([pool_s[b, t, : pn[b]] for b in range(n_blocks)]).astype(np.float64)
        pr = np.concatenate([pool_r[b, t, : pn[b]] for b in range(n_blocks)])
        rows_out.append(pr[ps >= kth - 2 * bound[t]])
        over_out.append(bool(overflow[:, t].any()))
    return rows_out, over_out


def _rescore(packed: Packed, qhat: np.ndarray, rows: list[np.ndarray]) -> list[np.ndarray]:
    """Exact scores (as the exact scan gives them) of ``rows[t]`` with query t; norms of those rows only."""
    uniq = np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64)
    if uniq.size == 0:
        return [np.zeros(0, np.float64) for _ in rows]
    sub = Packed(packed.codes[uniq], packed.scales[uniq], packed.fmt, packed.dim, packed.scale)
    norms = np.empty(uniq.size, np.float64)
    SK.norms_of_rows_serial(
        packed.codes, packed.scales, uniq, packed.fmt.bits, _raw_table(packed.fmt), packed.dim, norms
    )
    width = max(r.size for r in rows)
    local = np.zeros((len(rows), width), np.int64)
    counts = np.array([r.size for r in rows], np.int64)
    for t, r in enumerate(rows):
        local[t, : r.size] = np.searchsorted(uniq, r)
    out = _score_rows(sub, norms, qhat, local, counts)
    return [out[t, : counts[t]].copy() for t in range(len(rows))]


def _search_fast(index: SearchIndex, skip: np.ndarray, qhat: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    packed = index.packed
    special = index.special_rows[~skip[index.special_rows]]
    n_kernel = packed.n - int(np.count_nonzero(skip)) - int(np.count_nonzero(~skip[index.special_rows]))
    nq = qhat.shape[0]
    k_kernel = min(kk, n_kernel)
    # A zero query ties every row at 0: the approximate pass would admit them all.
    zero_q = ~(np.abs(qhat) > 0).any(axis=1)
    cand_r: list[np.ndarray] = [np.empty(0, np.int64)] * nq
    cand_s: list[np.ndarray] = [np.empty(0, np.float64)] * nq
    if k_kernel > 0:
        live = np.flatnonzero(~zero_q)
        if live.size:
            pools, over = _fast_candidates(index, skip, qhat[live], k_kernel)
            scores = _rescore(packed, qhat[live], pools)
            for j, t in enumerate(live):
                cand_r[t], cand_s[t] = pools[j], scores[j]
            redo = [int(live[j]) for j in range(live.size) if over[j]] + [int(t) for t in np.flatnonzero(zero_q)]
        else:
            redo = [int(t) for t in range(nq)]
        if redo:  # rare: thousands of near-ties, or a zero query; full norms only then
            nrm_all = vector_norms(packed)
            skip_x = skip.copy()
            skip_x[index.special_rows] = True
            for u in redo:
                cand_r[u], cand_s[u] = _scan_one(packed, nrm_all, skip_x, qhat[u], k_kernel)
    special_scores = None
    if special.size:  # scored from decode in float64, on a copy of just those rows
        sub = Packed(packed.codes[special], packed.scales[special], packed.fmt, packed.dim, packed.scale)
        local = np.arange(special.size)
        special_scores = _exact_query_scores(sub, local, _norms_of_rows(packed, special), qhat)
    if special_scores is not None:
        cand_r = [np.concatenate([r, special]) for r in cand_r]
        cand_s = [np.concatenate([s, special_scores[t]]) for t, s in enumerate(cand_s)]
    return _top_k(cand_r, cand_s, kk)
