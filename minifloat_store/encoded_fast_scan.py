"""The approximate pass of search on :class:`~minifloat_store.encoding.Encoded` codes (AVX2), and its error bound.

``encoded_scoring`` calls :func:`fast_pass` for ``search(method="fast")``
and rescores the candidates it returns exactly. Here: which kernel serves
an encoding (:func:`encoded_fast_plan`), the tables each kernel takes
(4-bit codes as integer levels times a step, ``_int_tables``; other widths
converted in registers, ``_wide_layout``), and the bound on ``|approximate -
exact score|`` each query's candidates are chosen with. The kernels are
``_encoded_scan_kernels`` (4-bit) and ``_encoded_wide_scan_kernels``.
"""

from __future__ import annotations

import numpy as np

from minifloat_store import _encoded_scan_kernels as FK
from minifloat_store import _encoded_wide_scan_kernels as WK
from minifloat_store._encoded_scan_kernels import FINE_RATIO
from minifloat_store._scan_kernels import HAS_AVX2, int8_queries, pool_arrays, pool_candidates
from minifloat_store._wide_scan_kernels import HAS_F16C
from minifloat_store.encoding import Encoded, Encoding
from minifloat_store.encoding_codec import block_codes, block_factor_table, factor_args, mean64, mean_norm
from minifloat_store.transforms import rotation

__all__ = ["NORM32_ERR", "encoded_fast_plan", "fast_kernels", "fast_pass"]

#: Bound on |score with a float32 norm - score with the float64 norm|: the
#: cosine before clipping is at most 1 + 1e-6 in magnitude and the rounded
#: norm within 2**-24 of the norm, relatively (rows outside float32's normal
#: range are special rows, scored from decode).
NORM32_ERR = 2.0**-23
#: Rows per parallel work item of the fast scan, and pool entries per (work item, query) (at least 4k).
FAST_BLOCK_ROWS = 16384
POOL_ROWS = 256


def _int_tables(table: np.ndarray) -> tuple[np.ndarray, bool, float, float]:
    """The 16 levels as integers times one step, ``level = step * L + r``, and ``rho``.

    Levels that are small integers times their smallest magnitude (int4,
    e2m1) give ``L = A`` (|A| <= 63) and ``r = 0``. Otherwise (nf4) ``A``
    rounds to ``max|level| / 63`` and B (|B| <= 63) rounds what A leaves to
    ``FINE_RATIO`` times finer: ``L = FINE_RATIO * A + B``. ``rho = max |r| /
    |level|`` over nonzero levels (a zero level has L = r = 0) bounds the
    residual of a row against the row itself: ``|r_row| <= rho |level_row|``.
    Returns (tabs (2, 32) int8: A and B, each twice; fine; step; rho).
    """
    t = table.astype(np.float64)
    nz = np.abs(t[t != 0])
    step = float(nz.min())
    a = np.rint(t / step)
    b = np.zeros(16)
    fine = not (np.all(t / step == a) and np.abs(a).max() <= 63)
    if fine:
        coarse = float(nz.max()) / 63
        a = np.rint(t / coarse)
        step = coarse / FINE_RATIO
        b = np.rint((t - coarse * a) / step)
    r = t - step * (FINE_RATIO * a + b if fine else a)
    rho = float((np.abs(r[t != 0]) / np.abs(t[t != 0])).max())
    tabs = np.stack([np.concatenate([a, a]), np.concatenate([b, b])]).astype(np.int8)
    return tabs, fine, step, rho


def encoded_fast_plan(e: Encoded, k: int) -> str | None:
    """Which fast scan serves these vectors: "simd4" (4-bit codes, the int8 kernel), "wide" or None.

    Needs an AVX2 CPU and ``k <= 256``; 4-bit codes need d <= 2048 (the int32
    sums: |L q_int| <= 8001 * 127 per value), other widths ``_wide_layout``.
    """
    cb = e.encoding.codebook
    if not (HAS_AVX2 and k <= 256):
        return None
    if cb.bits == 4:
        return "simd4" if e.dim <= 2048 and bool(np.isfinite(cb.table).all()) else None
    return "wide" if _wide_layout(e.encoding) is not None else None


def _wide_layout(enc: Encoding) -> tuple[int, int, int, float] | None:
    """(bits, kind, shift, mult) of ``_encoded_wide_scan_kernels`` for codes other than 4-bit, or None:
    1- and 2-bit codes (the exact scan reads 4 or 8 values per table look-up: as fast) and bf16 scaled
    to its maximum (3.4e38: float32 sums would overflow) stay on the exact scan."""
    cb = enc.codebook
    bits = cb.bits
    shift, mult = 0, 1.0
    if cb.family == "int" and bits in (6, 8):
        kind = WK.KIND_INT
    elif cb.fmt is not None and bits in (6, 8):
        kind, shift, mult = WK.KIND_MINI, 23 - cb.fmt.mantissa_bits, 2.0 ** (127 - cb.fmt.bias)
    elif bits == 3:
        kind = WK.KIND_TABLE
    elif cb.name == "fp16":
        kind = WK.KIND_F16
    elif cb.name == "bf16" and not enc.divides:  # scaled to 3.4e38, a row's float32 sums would overflow
        kind = WK.KIND_BF16
    elif cb.name == "fp32":
        kind = WK.KIND_F32
    else:
        return None
    if (bits, kind) not in WK.SERVED or (kind == WK.KIND_F16 and not HAS_F16C):
        return None
    return bits, kind, shift, mult


def _wide_bound(e: Encoded, low: float) -> float:
    """Bound on ``|approximate - exact score|`` of the wide scan, for rows of norm 0 or at least ``low``.

    Each product ``level_j * q32_j`` is rounded once, as is the float32 query
    (``q32_j`` against ``R(q)_j``); it then passes through at most ``chain =
    d // 8 + n_blocks + 18`` rounded float32 operations (a lane's adds within
    its block, the block factor's product, the adds across blocks, three to
    sum the lanes, up to 15 codes added one by one), so the row's sum errs by
    at most ``(chain + 2) * 2**-24`` (doubled for the higher-order terms) of
    ``sum_j f f_b |level_j q_j| <= |z| |q|`` (Cauchy-Schwarz), and over the
    norm ``|z| / |y| <= 1 + |mean| / |y|``. Float32 underflow costs at most
    2**-150 per product, against a nonzero level of at least 2**-24 (bf16 and
    fp32 are unscaled, their rows at least 1e-20 long): inside ``1e-9``, as
    are the float64 steps; the score's rounding to float32 adds ``2**-24``,
    the float32 norms ``NORM32_ERR``.
    """
    chain = e.dim // 8 + e.encoding.n_blocks(e.dim) + 18
    ratio = 1.0 + (mean_norm(e.encoding) / low if np.isfinite(low) else 0.0)
    return ratio * (1 + 2.0**-10) * 2 * (chain + 2) * 2.0**-24 + 2.0**-23 + 1e-9 + NORM32_ERR


def _wide_tables(e: Encoded, norms32: np.ndarray, low: float, qhat: np.ndarray) -> tuple[tuple, np.ndarray]:
    """The arguments of ``scan_pool_wide_enc`` between ``codes`` and ``skip``, and each query's bound."""
    enc = e.encoding
    bits, kind, shift, mult = _wide_layout(enc)  # type: ignore[misc]
    qrot = rotation(enc.seed, e.dim).forward(qhat) if enc.rotates else qhat
    mean_dot = qhat @ mean64(enc) if enc.centres else np.zeros(qhat.shape[0])
    tab8 = np.zeros(8, np.float32)
    table32 = np.ascontiguousarray(enc.codebook.table, dtype=np.float32)
    if bits == 3:
        tab8[:] = table32
    safe = e.dim // 8  # groups read whole; a 3- or 6-bit group reads 1 or 2 bytes beyond its own
    load = WK.LOAD_BYTES.get(bits, bits)
    if load > bits:
        row_bytes = e.codes.shape[1]
        safe = min(safe, (row_bytes - load) // bits + 1 if row_bytes >= load else 0)
    scales, mode = factor_args(e)
    args = (block_codes(e), scales, mode, norms32, bits, kind, np.int32(shift), np.float32(mult), tab8, table32,
            enc.block_size, block_factor_table(enc.scale), block_factor_table(enc.scale).astype(np.float32), safe,
            np.ascontiguousarray(qrot, dtype=np.float32),
            np.ascontiguousarray(mean_dot))  # fmt: skip
    return args, np.full(qhat.shape[0], _wide_bound(e, low))


def fast_kernels(e: Encoded, norms32: np.ndarray, low: float, qhat: np.ndarray):
    """(scan kernel, all-rows kernel, their arguments between ``codes`` and ``skip``, each query's bound)."""
    if e.encoding.codebook.bits == 4:
        args, bound = _fast_tables(e, norms32, low, qhat)
        return FK.scan_pool_enc4, FK.approx_all_enc4, args, bound
    args, bound = _wide_tables(e, norms32, low, qhat)
    return WK.scan_pool_wide_enc, WK.approx_all_wide_enc, args, bound


def _fast_tables(e: Encoded, norms32: np.ndarray, low: float, qhat: np.ndarray) -> tuple[tuple, np.ndarray]:
    """The arguments of ``scan_pool_enc4`` between ``codes`` and ``skip``, and each query's error bound.

    Bound (float64 (Q,)) on ``|approximate - exact score|`` for every row
    whose norm is 0 or at least ``low``. Per block, the approximate dot errs from the exact
    ``<z, R(q)>`` by ``f f_b (sum l_j e_j - sum r_j qq_j)`` (``qq`` the int8
    query over S, ``e = qq - R(q)``, ``r`` the level residuals), in all at
    most ``|z| (|e| + rho |qq|)`` by Cauchy-Schwarz; over the norm,
    ``|z| / |y| <= 1 + |mean| / |y|`` (the rounding inside decode moves that
    by far less than 2**-10); the float64 arithmetic and the final rounding
    to float32 add under ``2**-23 + 1e-9``, and the float32 norms ``NORM32_ERR``.
    """
    enc = e.encoding
    tabs, fine, step, rho = _int_tables(enc.codebook.table)
    qrot = rotation(enc.seed, e.dim).forward(qhat) if enc.rotates else qhat
    mean_dot = qhat @ mean64(enc) if enc.centres else np.zeros(qhat.shape[0])
    qlo, qhi, inv_s, err, qq = int8_queries(qrot, e.codes.shape[1])
    ratio = 1.0 + (mean_norm(enc) / low if np.isfinite(low) else 0.0)
    bound = ratio * (1 + 2.0**-10) * (err + rho * qq) * (1 + 2.0**-20) + 2.0**-23 + 1e-9 + NORM32_ERR
    pairs = {0: 0, 16: 1, 32: 2}[enc.block_size]  # 8-byte groups per block
    scales, mode = factor_args(e)
    args = (block_codes(e), scales, mode, norms32, tabs, fine, block_factor_table(enc.scale), pairs, qlo, qhi,
            inv_s * step, np.ascontiguousarray(mean_dot))  # fmt: skip
    return args, bound


def fast_pass(
    e: Encoded, norms32: np.ndarray, skip: np.ndarray, qhat: np.ndarray, k: int, low: float
) -> tuple[list[np.ndarray], list[bool]]:
    """The approximate scan of every non-skipped row for nonzero unit queries (float64, (Q, d)).

    Returns, per query, the rows (int64) within twice the bound of its k-th
    best approximate score (the exact top ``k`` is among them), and whether
    its pool overflowed (hundreds of near-ties in one block: the caller
    scans that query exactly instead). ``low`` as in
    ``encoded_scoring.special_rows``; special rows must be in ``skip``.
    """
    scan, _, args, bound = fast_kernels(e, norms32, low, qhat)
    pools = pool_arrays(e.n, qhat.shape[0], k, FAST_BLOCK_ROWS, POOL_ROWS)
    margin2 = np.float32(2 * bound.max() * (1 + 2.0**-20) + 1e-6)  # float32 threshold arithmetic, rounded up
    scan(e.codes, *args, skip, k, margin2, *pools, FAST_BLOCK_ROWS)
    return pool_candidates(pools, bound, k)
