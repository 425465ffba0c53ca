"""Where the time of an encode with centre+rotate goes: each stage of the kernel timed alone, per row.

Complements bench_encoding.py (GB/s of the whole call on every core). Here
one numba thread runs small loops that call the kernels' own stage functions
on a 192-value row, so each number is the cost of one stage per row, in
nanoseconds of thread CPU time (on a shared machine that is steadier than
wall time; best of ``--repeats``):

- transform: copy with centring and the first sign flip, then the rotation
  and ``max|t|`` (shared by every encoding);
- rms sum: ``sum(t**2)`` in float64 (the per-vector scale of int4/3/2, nf, binary);
- quantize: the nearest code (and level) of every value;
- lsq sums: the two float64 sums of the least-squares scale;
- pack: codes to bytes;
- whole row: ``_encode_one`` over the rows in a plain loop (what each thread of
  ``encode`` runs), i.e. the stages plus the scale and block logic.

The budget line is what 1 GB/s of float32 on 2 cores allows per row per core.

    python benchmarks/bench_encoding_stages.py [--rows 100000] [--dim 192] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, save  # noqa: E402
from bench_encoding import CODEC  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store import _encoding_kernels as K  # noqa: E402
from minifloat_store import encoding_codec as EC  # noqa: E402
from minifloat_store._hadamard_kernels import rotate_forward  # noqa: E402


@njit
def _copy(x, mean, s1, t):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            t[j] = (x[i, j] - mean[j]) * s1[j]
    return t[0]


@njit
def _transform(x, mean, s1, factors, p, norm, t):
    d = x.shape[1]
    m = np.float32(0.0)
    for i in range(x.shape[0]):
        for j in range(d):
            t[j] = (x[i, j] - mean[j]) * s1[j]
        rotate_forward(t, factors, p)
        tail = t[d - p :]
        for k in range(tail.shape[0]):
            tail[k] = tail[k] * norm
        amax = np.int32(0)
        for j in range(d):
            b = K.abs_bits(t[j])
            amax = b if b > amax else amax
        m += K.bits_f32(amax)
    return m


@njit
def _rms_sum(n, t):
    s = 0.0
    for _ in range(n):
        s += K.sum4_sq(t, t.shape[0])
    return s


@njit
def _quantize(n, t, inv, family, bits, mant_bits, bias, max_bits, int_max, thresholds, table, cbuf, lv):
    c = 0
    for _ in range(n):
        K.quantize_row(t, inv, family, bits, mant_bits, bias, max_bits, int_max, thresholds, table, cbuf, lv)
        c += cbuf[1]
    return c


@njit
def _lsq_sums(n, t, lv):
    s = 0.0
    for _ in range(n):
        a, b = K.least_squares(t, lv, t.shape[0])
        s += a + b
    return s


@njit
def _pack(n, cbuf, bits, codes):
    for i in range(n):
        K.pack_row(cbuf, bits, codes, i)
    return codes[0, 0]


@njit
def _rows(x, mean, centre, rotate, s1, factors, p, norm, family, bits, mant_bits, bias, max_bits, int_max,
          thresholds, table, gstep, max_level, scale_mode, block, emax, e4m3_table,
          codes, scales, block_scales):  # fmt: skip
    d = x.shape[1]
    t = np.empty(d, np.float32)
    cbuf = np.empty(d, np.int32)
    lv = np.empty(d, np.float32)
    bad = 0
    for i in range(x.shape[0]):
        bad += K._encode_one(x, i, mean, centre, rotate, s1, factors, p, norm, family, bits, mant_bits, bias,
                             max_bits, int_max, thresholds, table, gstep, max_level, scale_mode, block, emax,
                             e4m3_table, t, cbuf, lv, codes, scales, block_scales)  # fmt: skip
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default="bench_encoding_stages")
    args = ap.parse_args()
    numba.set_num_threads(1)
    n, d = args.rows, args.dim

    def per_row(fn) -> float:
        """Best thread CPU time of ``fn()`` over ``--repeats`` runs after a warm-up, in ns per row."""
        fn()
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.thread_time()
            fn()
            best = min(best, time.thread_time() - t0)
        return 1e9 * best / n

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x *= rng.gamma(1.0, 1.0, d).astype(np.float32)
    x += rng.standard_normal(d).astype(np.float32)
    m = machine()
    print(f"machine: {m['cpu']}, load {m['loadavg_start']} (shared: timings are noisy); {n} x {d} float32, 1 thread")
    budget = 2 * 4 * d / 1.0  # ns per row per core: 4d bytes a row at 1 GB/s over 2 cores
    print(f"budget for 1 GB/s on 2 cores: {budget:.0f} ns per row per core\n")

    enc = mfs.Encoding("nf4", "vector", "centre+rotate").fit(x[:10_000])
    mean, _, _, s1, factors, p, norm = EC._transform_args(enc, d)
    t = np.empty(d, np.float32)
    shared = {"copy": per_row(lambda: _copy(x, mean, s1, t))}
    shared["transform"] = per_row(lambda: _transform(x, mean, s1, factors, p, norm, t))
    row = np.ascontiguousarray(rng.standard_normal(d, dtype=np.float32))
    shared["rms_sum"] = per_row(lambda: _rms_sum(n, row))
    print(f"shared: copy+centre+sign {shared['copy']:.0f} ns, with rotation and max|t| {shared['transform']:.0f} ns, "
          f"rms sum {shared['rms_sum']:.0f} ns")  # fmt: skip

    print(f"\n{'encoding':<16} {'quantize':>8} {'lsq sums':>8} {'pack':>6} {'whole row':>9} {'GB/s/core':>9}")
    rows = []
    for el, sc in CODEC:
        enc = mfs.Encoding(el, sc, "centre+rotate").fit(x[:10_000])
        cb = enc.codebook
        f = cb.fmt
        max_bits = np.int64(np.float32(cb.max_level).view(np.uint32)) if cb.bits < 32 else np.int64(0)
        kparams = (EC._FAMILY[cb.family], cb.bits, f.mantissa_bits if f else 0, f.bias if f else 0, max_bits,
                   cb.int_max, EC._padded_thresholds(cb), cb.table)  # fmt: skip
        cbuf = np.empty(d, np.int32)
        lv = np.empty(d, np.float32)
        codes = np.empty((n, enc.code_bytes(d)), dtype=np.uint8)
        inv = np.float32(1.0 / np.sqrt(np.mean(row.astype(np.float64) ** 2)))
        r = {"element": el, "scale": sc}
        r["quantize"] = per_row(lambda kp=kparams, cb_=cbuf, lv_=lv, i=inv: _quantize(n, row, i, *kp, cb_, lv_))
        r["lsq_sums"] = per_row(lambda lv_=lv: _lsq_sums(n, row, lv_))
        r["pack"] = per_row(lambda cb_=cbuf, b=cb.bits, c=codes: _pack(n, cb_, b, c))
        scales = np.zeros(n, dtype=np.float32)
        blocks = np.zeros((n, enc.n_blocks(d)), dtype=np.uint8)
        kargs = (x, *EC._transform_args(enc, d), *kparams[:7], cb.table, cb.rms_step, float(cb.max_level),
                 EC._SCALE_MODE[enc.scale], enc.block_size, cb.emax if cb.bits <= 8 else 0, EC._E4M3_TABLE,
                 codes, scales, blocks)  # fmt: skip
        r["whole_row"] = per_row(lambda a=kargs: _rows(*a))
        rows.append(r)
        print(f"{el + '/' + sc:<16} {r['quantize']:>8.0f} {r['lsq_sums']:>8.0f} {r['pack']:>6.0f} "
              f"{r['whole_row']:>9.0f} {4 * d / r['whole_row']:>9.2f}")  # fmt: skip
    print("(ns per row of thread CPU time; lsq sums are used by the int/nf/binary vector scales only)")
    result = {"rows": n, "dim": d, "repeats": args.repeats, "budget_ns": budget, "shared": shared, "stages": rows}
    print(f"\nwrote {save(args.out, result)}")


if __name__ == "__main__":
    main()
