"""Cosine scoring and search on :class:`~minifloat_store.encoding.Encoded` batches.

:mod:`minifloat_store.scoring` validates its arguments and calls these for
an ``Encoded``; they follow its definitions (the score is the float64 cosine
of the *decoded* vectors, 0.0 against a zero vector, ranking by descending
score then ascending row).

* Norms and trial pairs decode rows in chunks (``CHUNK_ROWS`` at a time,
  never the whole database) and take float64 dot products: they are the
  brute force on the decoded vectors.
* Search and verify rotate the query once, add ``<mean, q>`` analytically and
  score every row from its codes (``_encoded_score_kernels``); the result
  differs from the brute force only by the float32 rounding inside
  ``decode`` (a few 1e-8 on a cosine). Many queries at once pre-select
  candidates with float32 BLAS on decoded chunks and rescore them exactly,
  as for packed minifloats (the rows stay in the transformed space: no
  inverse rotation per row).
* ``search(method="fast")`` takes the approximate pass of
  :mod:`~minifloat_store.encoded_fast_scan` (AVX2) and rescores its
  candidates here.
"""

from __future__ import annotations

import numpy as np

from minifloat_store import _encoded_score_kernels as K
from minifloat_store._score_kernels import BLOCK_ROWS
from minifloat_store.encoded_fast_scan import NORM32_ERR, fast_kernels, fast_pass
from minifloat_store.encoding import Encoded
from minifloat_store.encoding_codec import (
    _E4M3_TABLE,
    _SCALE_MODE,
    _transform_args,
    block_codes,
    block_factor_table,
    decode_rows_into,
    decode_unit_chunk,
    factor_args,
    mean64,
    mean_norm,
)
from minifloat_store.transforms import rotation

__all__ = ["encoded_norms", "encoded_pairs", "encoded_search", "encoded_verify"]

#: Rows decoded at a time (norms, pairs, the BLAS pre-selection).
CHUNK_ROWS = 16384
#: Queries multiplied at a time on the BLAS path.
QUERY_BATCH = 256


def _decode_chunk(e: Encoded, rows: np.ndarray | None, lo: int, hi: int) -> np.ndarray:
    out = np.empty((hi - lo, e.dim), dtype=np.float32)
    if rows is None:
        decode_rows_into(e[lo:hi], None, out)
    else:
        decode_rows_into(e, rows[lo:hi], out)
    return out


# ---------------------------------------------------------------- norms and pairs


#: Up to this many rows, norms are decoded on the calling thread (a search's candidates, verify's row).
SERIAL_ROWS = 4096


def encoded_norms(e: Encoded, rows: np.ndarray | None = None) -> np.ndarray:
    """float64 L2 norms of the decoded rows ``rows`` (int64; every row for None), decoded in chunks."""
    m = e.n if rows is None else rows.shape[0]
    out = np.empty(m, dtype=np.float64)
    if rows is not None and m <= SERIAL_ROWS:
        enc = e.encoding
        # Without a vector scale, decode_one reads scales[i] as 1: a zero-stride view, nothing allocated per row.
        scales = e.scales if e.scales is not None else np.broadcast_to(np.float32(1.0), (e.n,))
        K.decoded_norms(e.codes, enc.codebook.bits, enc.codebook.table, _SCALE_MODE[enc.scale], enc.divides,
                        scales, max(enc.block_size, 1), block_codes(e), _E4M3_TABLE, *_transform_args(enc, e.dim),
                        rows, np.empty(e.dim, np.float32), out)  # fmt: skip
        return out
    for lo in range(0, m, CHUNK_ROWS):
        hi = min(m, lo + CHUNK_ROWS)
        K.row_norms(_decode_chunk(e, rows, lo, hi), out[lo:hi])
    return out


def encoded_pairs(
    decode_a, na: np.ndarray | None, ra: np.ndarray, decode_b, nb: np.ndarray | None, rb: np.ndarray
) -> np.ndarray:
    """Cosine of decoded row ``ra[p]`` of a with ``rb[p]`` of b, in chunks of pairs.

    ``decode_a(rows)`` / ``decode_b(rows)`` return the float32 decoded rows
    (int64 indices); ``na``, ``nb`` are the float64 norms of every row, or
    None to take them from the decoded rows themselves (as
    :func:`encoded_norms` does: no second decode, nothing kept per row).
    """
    out = np.empty(ra.shape[0], dtype=np.float64)
    for lo in range(0, ra.shape[0], CHUNK_ROWS):
        hi = min(ra.shape[0], lo + CHUNK_ROWS)
        ya, yb = decode_a(ra[lo:hi]), decode_b(rb[lo:hi])
        dots = np.empty(hi - lo, dtype=np.float64)
        K.row_dots(ya, yb, dots)
        den = _chunk_norms(na, ra[lo:hi], ya) * _chunk_norms(nb, rb[lo:hi], yb)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo:hi] = np.where(den > 0, np.clip(dots / np.where(den > 0, den, 1), -1.0, 1.0), 0.0)
    return out


def _chunk_norms(norms: np.ndarray | None, rows: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    if norms is not None:
        return norms[rows]
    out = np.empty(rows.shape[0], np.float64)
    K.row_norms(decoded, out)
    return out


def decoder(e: Encoded):
    """``rows -> float32 decoded rows`` for :func:`encoded_pairs`."""

    def run(rows: np.ndarray) -> np.ndarray:
        out = np.empty((rows.shape[0], e.dim), dtype=np.float32)
        return decode_rows_into(e, rows, out)

    return run


# ---------------------------------------------------------------- one query


class _Query:
    """One unit query prepared for the kernels: rotated, its mean term, its look-up table."""

    def __init__(self, e: Encoded, qhat: np.ndarray) -> None:
        enc = e.encoding
        cb = enc.codebook
        self.qrot = rotation(enc.seed, e.dim).forward(qhat[None, :])[0] if enc.rotates else qhat
        self.mean_dot = float(mean64(enc) @ qhat) if enc.centres else 0.0
        if cb.bits in K.LUT_BITS:
            self.lut = np.empty((enc.code_bytes(e.dim), 256), dtype=np.float64)
            K.query_lut(self.qrot, cb.bits, cb.table.astype(np.float64), self.lut)
        else:
            self.lut = np.empty((1, 1), dtype=np.float64)


class _Rows:
    """The per-row arrays every kernel call needs, computed once per call of search/verify."""

    def __init__(self, e: Encoded) -> None:
        enc = e.encoding
        self.e = e
        self.scales, self.factor_mode = factor_args(e)
        self.blocks = block_codes(e)
        self.block = enc.block_size
        self.block_table = block_factor_table(enc.scale)
        self.table = enc.codebook.table

    def score(self, q: _Query, rows: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
        """Exact scores of ``rows`` (int64); ``norms`` (float64) are theirs, computed from decode if None."""
        nr = encoded_norms(self.e, rows) if norms is None else norms
        out = np.empty(rows.shape[0], dtype=np.float64)
        K.score_rows(self.e.codes, self.blocks, self.scales, self.factor_mode, self.e.encoding.codebook.bits,
                     self.table, q.lut, q.qrot, q.mean_dot, self.block, self.block_table, nr, rows, rows.shape[0],
                     out)  # fmt: skip
        return out

    def _scan_blocks(self, q: _Query, norms: np.ndarray, skip: np.ndarray, k: int):
        n_blocks = (self.e.n + BLOCK_ROWS - 1) // BLOCK_ROWS
        cap = min(k, BLOCK_ROWS)
        out_s = np.empty((n_blocks, cap), dtype=np.float64)
        out_r = np.empty((n_blocks, cap), dtype=np.int64)
        out_n = np.zeros(n_blocks, dtype=np.int64)
        bits = self.e.encoding.codebook.bits
        K.scan_topk(self.e.codes, self.blocks, self.scales, self.factor_mode, bits, self.table, q.lut, q.qrot,
                    q.mean_dot, self.block, self.block_table, norms, skip, cap, out_s, out_r, out_n)  # fmt: skip
        keep = np.arange(cap)[None, :] < out_n[:, None]
        full = out_n == cap  # such a block may have left rows out, all scoring at most its heap's minimum
        worst = float(out_s[full, 0].max()) if full.any() else -np.inf  # heap roots are the minima
        return out_r[keep], out_s[keep], worst

    def scan(self, q: _Query, norms32: np.ndarray, skip: np.ndarray, k: int, n_valid: int):
        """Exact top-k candidates (rows, scores) of one query over the non-skipped rows.

        The scan divides by the index's float32 norms, within ``NORM32_ERR``
        of the exact scores; each block keeps ``k + max(k, 32)`` rows, and the
        rows within twice that of the k-th best are rescored with float64
        norms. If a block left out a row that close (near-ties), the float64
        norms of every row are computed for this query and the scan repeated.
        """
        cap = min(n_valid, k + max(k, 32))
        r, s, worst = self._scan_blocks(q, norms32, skip, cap)
        kth = float(np.partition(s, s.size - k)[s.size - k])
        margin2 = 2 * NORM32_ERR
        if worst >= kth - margin2:
            r, s, _ = self._scan_blocks(q, encoded_norms(self.e), skip, k)
            return r, s
        cand = r[s >= kth - margin2]
        return cand, self.score(q, cand)


def special_rows(e: Encoded, norms32: np.ndarray) -> tuple[np.ndarray, float]:
    """Rows the kernels must not score, because float32 rounding in ``decode`` matters for them,
    and the smallest nonzero norm among the others (inf if none).

    Norms outside [1e-20, 1e30] (as for packed minifloats: float32 under- or
    overflow), and, when the encoding centres, vectors shorter than a quarter
    of the mean: their decoded values are ``R^T(z) + mean`` with most of the
    mean cancelling, so the rounding of that addition is a large part of the
    result. Such rows are scored from ``decode`` in float64 instead. Decided
    on the float32 norms a search index holds (int64 rows, ascending).
    """
    n = norms32.shape[0]
    out = np.empty(n, np.int64)
    count, _, low = K.split_special(norms32, np.zeros(n, np.bool_), mean_norm(e.encoding), np.empty(n, np.bool_), out)
    return out[:count].copy(), float(low)


def special_mask(e: Encoded, norms32: np.ndarray) -> np.ndarray:
    """:func:`special_rows` as a bool mask (n,)."""
    mask = np.zeros(norms32.shape[0], np.bool_)
    mask[special_rows(e, norms32)[0]] = True
    return mask


def norms32_of(norms: np.ndarray) -> np.ndarray:
    """float64 decoded norms rounded to the float32 a search index holds (above float32's range: inf, special)."""
    with np.errstate(over="ignore"):
        return norms.astype(np.float32)


def exact_scores(e: Encoded, qhat: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(q, len(rows)) cosines of unit queries with decoded rows, in float64: the plain definition."""
    y32 = decoder(e)(rows)
    nr = np.empty(rows.shape[0], np.float64)
    K.row_norms(y32, nr)  # as encoded_norms computes them
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        out = (qhat @ y32.astype(np.float64).T) / nr
    out[:, nr == 0] = 0.0
    return np.clip(out, -1.0, 1.0)


def encoded_verify(e: Encoded, norms: np.ndarray | None, qhat: np.ndarray, row: int) -> float:
    """Cosine of one unit query (float64, (d,)) with stored row ``row``: the value search reports.

    ``norms``: the float64 :func:`encoded_norms` of every row, or None to decode this row's.
    """
    rows = np.array([row], dtype=np.int64)
    nr = encoded_norms(e, rows) if norms is None else norms[rows]
    if special_mask(e, norms32_of(nr))[0]:
        return float(exact_scores(e, qhat[None, :], rows)[0, 0])
    return float(_Rows(e).score(_Query(e, qhat), rows, nr)[0])


# ---------------------------------------------------------------- search


def _blas_margin(e: Encoded, low: float) -> float:
    """Bound on |float32-BLAS approximate cosine - kernel cosine| for unit queries.

    The pre-selection multiplies, in float32, ``[R(q), <mean, q>]`` with
    ``[z, 1] / |y|`` (z in the transformed space): a float32 dot product of
    d + 1 terms errs by about (d + 1) * 2**-24 of the sum of the terms'
    magnitudes, at most ``(|z| + |mean|) / |y| <= 1 + 2 |mean| / |y|`` (``|y|
    >= low``, the smallest nonzero norm scored); a few more units cover the
    rounding of the inputs and of the decoded values, and ``NORM32_ERR`` the
    float32 norms it divides by.
    """
    ratio = 1.0
    if e.encoding.centres and np.isfinite(low):
        ratio += 2 * mean_norm(e.encoding) / low
    return 1.1 * (e.dim + 12) * ratio * 2.0**-24 + NORM32_ERR + 1e-12


def encoded_search(
    e: Encoded,
    norms32: np.ndarray,
    special: np.ndarray,
    low: float,
    skip: np.ndarray,
    qhat: np.ndarray,
    k: int,
    method: str,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Candidate (rows, scores) per unit query (float64, (q, d)), each holding the exact top ``k``.

    ``norms32`` (n,) float32, ``special`` and ``low``: what a search index
    holds (``fast_search.search_index``; :func:`special_rows`). ``method`` is
    "fast" (only where ``encoded_fast_scan.encoded_fast_plan`` names a plan), "scan" or "blas"; all give
    the same scores, computed with float64 norms of the rows they return.
    ``k`` is at most the number of non-skipped rows. The caller sorts.
    """
    special = special[~skip[special]]
    if special.size:  # scored apart, from decode
        skip = skip.copy()
        skip[special] = True
    n_valid = e.n - int(np.count_nonzero(skip))
    if n_valid == 0:
        out_r = [np.zeros(0, np.int64)] * qhat.shape[0]
        out_s = [np.zeros(0, np.float64)] * qhat.shape[0]
    else:
        out_r, out_s = _kernel_candidates(e, norms32, skip, qhat, min(k, n_valid), n_valid, method, low)
    if special.size:
        extra = exact_scores(e, qhat, special)
        out_r = [np.concatenate([r, special]) for r in out_r]
        out_s = [np.concatenate([s, extra[t]]) for t, s in enumerate(out_s)]
    return out_r, out_s


def _kernel_candidates(
    e: Encoded, norms32: np.ndarray, skip: np.ndarray, qhat: np.ndarray, k: int, n_valid: int, method: str, low: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``low``: the smallest nonzero norm of a scored row (or less)."""
    rows = _Rows(e)
    if method == "fast":
        return _fast_candidates(e, rows, norms32, skip, qhat, k, n_valid, low)
    if method == "scan":
        out_r, out_s = [], []
        for t in range(qhat.shape[0]):
            r, s = rows.scan(_Query(e, qhat[t]), norms32, skip, k, n_valid)
            out_r.append(r)
            out_s.append(s)
        return out_r, out_s
    cap = min(n_valid, k + max(k, 32))
    margin2 = 2 * _blas_margin(e, low)
    enc, d = e.encoding, e.dim
    mean = mean64(enc) if enc.centres else None
    aug = np.empty((min(CHUNK_ROWS, e.n), d + 1), dtype=np.float32)
    out_r, out_s = [], []
    for q0 in range(0, qhat.shape[0], QUERY_BATCH):
        qb = qhat[q0 : q0 + QUERY_BATCH]
        # <y, q> = <z, R(q)> + <mean, q>: rows stay in the transformed space (no inverse
        # rotation per row), the mean term rides in one extra column.
        qaug = np.empty((qb.shape[0], d + 1), dtype=np.float32)
        qaug[:, :d] = rotation(enc.seed, d).forward(qb) if enc.rotates else qb
        qaug[:, d] = qb @ mean if mean is not None else 0.0
        heap_s = np.empty((qb.shape[0], cap), dtype=np.float64)
        heap_r = np.empty((qb.shape[0], cap), dtype=np.int64)
        counts = np.zeros(qb.shape[0], dtype=np.int64)
        for lo in range(0, e.n, CHUNK_ROWS):
            hi = min(e.n, lo + CHUNK_ROWS)
            c = hi - lo
            decode_unit_chunk(e, norms32, lo, aug[:c])
            K.offer_chunk(qaug @ aug[:c].T, lo, skip, heap_s, heap_r, counts)
        for t in range(qb.shape[0]):
            c = int(counts[t])
            q = _Query(e, qb[t])
            if c == cap and cap < n_valid:
                kth = np.partition(heap_s[t, :c], c - k)[c - k]
                if not heap_s[t].min() < kth - margin2:
                    r, s = rows.scan(q, norms32, skip, k, n_valid)  # near-ties at the border: exact scan
                    out_r.append(r)
                    out_s.append(s)
                    continue
            r = heap_r[t, :c].copy()
            out_r.append(r)
            out_s.append(rows.score(q, r))
    return out_r, out_s


# ---------------------------------------------------------------- the fast scan's candidates, rescored


def _approx_scores(e: Encoded, norms32: np.ndarray, qhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row's approximate score (float32, (Q, n)) from the float32 norms and each query's bound
    for the rows not in :func:`special_rows`: what the tests check."""
    _, low = special_rows(e, norms32)
    _, approx_all, args, bound = fast_kernels(e, norms32, low, qhat)
    out = np.empty((qhat.shape[0], e.n), np.float32)
    approx_all(e.codes, *args, out)
    return out, bound


def _fast_candidates(
    e: Encoded, rows: _Rows, norms32: np.ndarray, skip: np.ndarray, qhat: np.ndarray, k: int, n_valid: int, low: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The approximate scan (:func:`~minifloat_store.encoded_fast_scan.fast_pass`), then the exact
    scores of its candidates.

    A zero query (every row ties at its mean term) or a pool that overflowed
    (hundreds of near-ties in one block) takes the exact scan instead.
    """
    out_r: list[np.ndarray] = [np.zeros(0, np.int64)] * qhat.shape[0]
    out_s: list[np.ndarray] = [np.zeros(0, np.float64)] * qhat.shape[0]
    zero_q = ~(np.abs(qhat) > 0).any(axis=1)
    live = np.flatnonzero(~zero_q)
    redo = [int(t) for t in np.flatnonzero(zero_q)]
    if live.size:
        cand, over = fast_pass(e, norms32, skip, qhat[live], k, low)
        for j, t in enumerate(live):
            if over[j]:
                redo.append(int(t))
            else:
                out_r[t] = cand[j]
                out_s[t] = rows.score(_Query(e, qhat[t]), cand[j])
    for u in redo:
        out_r[u], out_s[u] = rows.scan(_Query(e, qhat[u]), norms32, skip, k, n_valid)
    return out_r, out_s
