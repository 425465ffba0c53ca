"""Exact scores on the packed codes: what every scoring path shares.

Checked inputs (packed vectors, row indices, unit queries, norms), the
decoded norms, the kernels' value tables, the exact per-row scores and the
exact scan of every row for one query, and the merge of candidates into a
top k. :mod:`minifloat_store.scoring` (pairs, verify, search) and
:mod:`minifloat_store.fast_search` (the approximate scan whose candidates
these rescore) both build on it; the definitions are those of
:mod:`minifloat_store.scoring`.
"""

from __future__ import annotations

import operator

import numpy as np

from minifloat_store import _score_kernels as K
from minifloat_store._checks import first_nonfinite_row
from minifloat_store.codec import Packed, check_kernel_input, decode
from minifloat_store.encoded_scoring import encoded_norms
from minifloat_store.encoding import Encoded
from minifloat_store.formats import Format, decode_table

__all__ = ["vector_norms"]

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


# ---------------------------------------------------------------- exact scores of rows, the exact scan


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
