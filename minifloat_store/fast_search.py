"""Single-query search at memory speed: an approximate scan, then exact rescoring.

An approximate score (float32 tables, or int8 queries through AVX2 for
small-integer 4-bit formats) runs over every row; each query keeps a pool
of rows whose approximate score is within twice a proven error bound of
the k-th best approximate score, and only those are scored exactly, so the
results equal the exact search's. See docs/performance.md ("Exact results
from an approximate scan") for the guarantee. :func:`minifloat_store.search`
chooses this path (``method="fast"``) for a few queries at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minifloat_store import _scan_kernels as SK
from minifloat_store import _wide_scan_kernels as WK
from minifloat_store.codec import Packed
from minifloat_store.encoded_scoring import norms32_of, special_rows
from minifloat_store.encoding import Encoded
from minifloat_store.exact_scan import (
    _check_norms,
    _check_packed,
    _exact_query_scores,
    _norms_of_rows,
    _raw_table,
    _scan_one,
    _score_rows,
    _special_mask,
    _top_k,
    vector_norms,
)
from minifloat_store.formats import Format, decode_table

__all__ = ["FAST_MAX_K", "SearchIndex", "search_index"]

#: Candidate-pool entries per (row block, query) in the fast scan (at least
#: 4k); a pool that overflows (hundreds of near-ties in one block) sends its
#: query to the exact scan.
POOL_ROWS = 256
#: Above this k the pools would grow large: the exact scan or BLAS serve it.
FAST_MAX_K = 256
#: Rows per parallel work item of the fast scan (each has its own heaps and pools).
FAST_BLOCK_ROWS = 16384


@dataclass(frozen=True, eq=False)
class SearchIndex:
    """What the fast search holds per database: the payload, and at most one float32 per row beyond it.

    For packed minifloats nothing per row: the approximate pass computes each
    row's norm from its codes as it goes, and the exact rescoring computes
    the norms of its few candidates. For Encoded vectors (whose decoded norm
    needs the inverse transform) the decoded norms rounded to float32: the
    scans divide by them within a stated bound, and the candidates are
    rescored with float64 norms computed from decode.

    Attributes
    ----------
    packed : Packed or Encoded
        The n stored vectors (codes and scales: the payload).
    special_rows : ndarray of shape (m,), int64
        Nonzero rows the approximate pass cannot bound (a decoded norm outside
        [1e-20, 1e30], see ``_special_mask`` and ``encoded_scoring.special_rows``;
        raw values so small that float32 squares would underflow; a NaN/inf
        code; an encoded vector shorter than a quarter of the fitted mean),
        scored from ``decode`` in float64 instead; usually empty.
    unit : float
        A power of two that brings the largest raw row norm into (1/2, 1]:
        the float32 kernels work on ``table[code] * unit``, far from
        overflow (bf16 values reach 3.4e38) and from underflow (1.0 for Encoded).
    norms : ndarray of shape (n,), float32, or None
        Encoded only: the decoded norms, rounded to nearest float32.
    low : float
        Encoded only: the smallest nonzero norm among the rows not in
        ``special_rows`` (inf if none), for the error bounds.
    """

    packed: Packed | Encoded
    special_rows: np.ndarray
    unit: float = 1.0
    norms: np.ndarray | None = None
    low: float = float("inf")

    @property
    def nbytes(self) -> int:
        """Bytes held: codes, scales, ``special_rows`` and (Encoded) the float32 norms."""
        extra = 0 if self.norms is None else self.norms.nbytes
        return self.packed.nbytes + self.special_rows.nbytes + extra


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


def search_index(packed: Packed | Encoded, norms: np.ndarray | None = None) -> SearchIndex:
    """Build the state :func:`search` scans fastest: the codes plus at most one float32 per row.

    Parameters
    ----------
    packed : Packed or Encoded
        n stored vectors.
    norms : ndarray of shape (n,), float64, optional
        :func:`vector_norms` of ``packed``, if already known (not kept).

    Returns
    -------
    SearchIndex
        Pass it to :func:`search` instead of ``packed``: it holds the
        payload, the (usually empty) list of rows scored apart and, for
        Encoded vectors, their decoded norms as float32, so repeated
        searches skip the pass over the data that finds those.
    """
    checked = _check_packed(packed)
    nrm = vector_norms(checked) if norms is None else _check_norms(norms, checked)
    if isinstance(checked, Encoded):
        n32 = norms32_of(nrm)
        special, low = special_rows(checked, n32)
        return SearchIndex(checked, special, 1.0, n32, low)
    return _index_from_norms(checked, nrm)


def _table_bound(bits: int, dim: int, chain: int | None = None) -> float:
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
    if chain is None:
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


def _wide_args(fmt: Format, unit: float) -> tuple[int, int, np.float32] | None:
    """(kind, shift, multiplier) of ``_wide_scan_kernels`` for ``fmt``'s codes times ``unit``, or None."""
    if not SK.HAS_AVX2:
        return None
    if fmt.bits == 8 and fmt.exponent_bits + fmt.mantissa_bits == 7:
        kind, shift, mult = WK.KIND_F8, 23 - fmt.mantissa_bits, 2.0 ** (127 - fmt.bias) * unit
    elif fmt.bits == 16 and fmt.name == "fp16" and WK.HAS_F16C:
        kind, shift, mult = WK.KIND_F16, 0, unit
    elif fmt.bits == 16 and fmt.name == "bf16":
        kind, shift, mult = WK.KIND_BF16, 0, unit
    else:
        return None
    # The multiplier must be a float32 power of two (exact products); else the table path.
    return (kind, shift, np.float32(mult)) if 2.0**-126 <= mult < 2.0**127 else None


def _fast_plan(fmt: Format, dim: int) -> str | None:
    """Which approximate kernel serves ``fmt``: "simd4", "wide", "table" or None (fp32: exact scan instead)."""
    if fmt.bits > 16:
        return None
    if fmt.bits == 4 and SK.HAS_AVX2 and _int4_table(fmt) is not None:
        return "simd4"
    if _wide_args(fmt, 1.0) is not None:  # (a unit outside float32's range takes the table path)
        return "wide"
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
        qlo, qhi, inv_s, err, _ = SK.int8_queries(qhat, fmt.row_bytes(dim))
        # |sum t_j e_j| <= |t| |e| (Cauchy-Schwarz): the integer dot's error in
        # cosine units; 1e-6 covers the float32 roundings of the score.
        bound = err * (1 + 2.0**-20) + 1e-6
        qscale = inv_s.astype(np.float32)
        return "simd4", (np.concatenate([tab, tab]), 1.0, qlo, qhi, qscale), bound
    # Non-finite codes only occur in rows scored elsewhere (see _index_from_norms).
    with np.errstate(invalid="ignore"):
        t64 = decode_table(fmt).astype(np.float64)
    t64 = np.nan_to_num(t64, nan=0.0, posinf=0.0, neginf=0.0) * unit
    wide = _wide_args(fmt, unit)
    if wide is not None:
        # Eight lanes of dim // 8 adds, three to sum them, then the dim % 8 last codes one by one.
        wide_args = (*wide, t64.astype(np.float32), qhat.astype(np.float32))
        return "wide", wide_args, np.full(nq, _table_bound(fmt.bits, dim, dim // 8 + 3 + dim % 8))
    lut, sq_lut = _float_luts(fmt, dim, qhat, t64)
    args = (fmt.bits, lut, sq_lut, t64.astype(np.float32), qhat.astype(np.float32))
    return "table", args, np.full(nq, _table_bound(fmt.bits, dim))


def _approx_scores(index: SearchIndex, qhat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row's approximate cosine (float32, (q, n)) and each query's bound: what the tests check."""
    packed = index.packed
    assert isinstance(packed, Packed)  # Encoded indexes are searched by encoded_scoring
    plan, args, bound = _query_tables(packed.fmt, packed.dim, qhat, index.unit)
    out = np.empty((qhat.shape[0], packed.n), np.float32)
    {"simd4": SK.approx_all_simd4, "wide": WK.approx_all_wide, "table": SK.approx_all}[plan](packed.codes, *args, out)
    return out, bound


def _fast_candidates(
    index: SearchIndex, skip: np.ndarray, qhat: np.ndarray, k: int
) -> tuple[list[np.ndarray], list[bool]]:
    """Per query, the rows whose approximate score is within 2 * bound of the k-th best approximate score.

    Returns the candidate rows per query and, per query, whether its pool
    overflowed (then the caller scans that query exactly).
    """
    packed = index.packed
    assert isinstance(packed, Packed)  # Encoded indexes are searched by encoded_scoring
    n = packed.n
    nq = qhat.shape[0]
    plan, args, bound = _query_tables(packed.fmt, packed.dim, qhat, index.unit)
    margin2 = np.float32(2 * bound.max() * (1 + 2.0**-20) + 1e-6)  # float32 threshold arithmetic, rounded up
    pools = SK.pool_arrays(n, nq, k, FAST_BLOCK_ROWS, POOL_ROWS)
    skip_k = skip
    if index.special_rows.size:  # scored apart, from decode
        skip_k = skip.copy()
        skip_k[index.special_rows] = True
    kernel = {"simd4": SK.scan_pool_simd4, "wide": WK.scan_pool_wide, "table": SK.scan_pool}[plan]
    kernel(packed.codes, *args, skip_k, k, margin2, *pools, FAST_BLOCK_ROWS)
    return SK.pool_candidates(pools, bound, k)


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
    assert isinstance(packed, Packed)  # Encoded indexes are searched by encoded_scoring
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
