"""Encode/decode throughput of the numba codec against ml_dtypes + numpy packing.

Same data, same process: 1,000,000 x 192 float32 Gaussian vectors (scale
"vector"). The baseline does the same work with array operations: per-vector
scale, clip, ``astype(ml_dtype)``, then numpy nibble/6-bit packing for encode;
numpy unpacking, ``astype(float32)`` and division by the scale for decode. Both
produce identical bytes (checked). Throughput is GB/s of float32 input (encode)
or output (decode).

Decode is measured twice, like with like: both sides allocating their float32
output (``decode(packed)``), and both writing into a preallocated buffer
(``decode(packed, out=buf)``, a public API; the baseline divides into ``buf``).
Every time is the best of ``--repeats`` runs; the median is saved beside it.

    python benchmarks/bench_codec.py [--rows 1000000] [--dim 192] [--repeats 3]
    NUMBA_NUM_THREADS=1 python benchmarks/bench_codec.py --out bench_codec_1thread   # kernels on one core
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, save, timings  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store.formats import FORMATS  # noqa: E402

TARGET_FORMATS = ("e2m1", "e3m2", "e2m3", "e4m3")


def baseline_encode(x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    f = FORMATS[name]
    amax = np.abs(x).max(axis=1)
    scales = np.where(amax > 0, np.float32(f.max_value) / np.where(amax > 0, amax, 1), 1).astype(np.float32)
    v = x * scales[:, None]
    np.clip(v, -f.max_value, f.max_value, out=v)
    if f.bits == 16:
        return v.astype(f.dtype).view(np.uint8).reshape(x.shape[0], -1), scales
    c = v.astype(f.dtype).view(np.uint8)
    if f.bits == 8:
        return c, scales
    c = c & np.uint8((1 << f.bits) - 1)
    if f.bits == 4:
        return c[:, 0::2] | (c[:, 1::2] << 4), scales
    a, b, cc, d = (c[:, k::4] for k in range(4))  # bits == 6, dim % 4 == 0
    out = np.empty((x.shape[0], a.shape[1], 3), np.uint8)
    out[:, :, 0] = a | (b << 6)
    out[:, :, 1] = (b >> 2) | (cc << 4)
    out[:, :, 2] = (cc >> 4) | (d << 2)
    return out.reshape(x.shape[0], -1), scales


def baseline_decode(
    codes: np.ndarray, scales: np.ndarray, name: str, dim: int, out: np.ndarray | None = None
) -> np.ndarray:
    f = FORMATS[name]
    if f.bits == 16:
        values = codes.view(f.dtype)
    elif f.bits == 8:
        values = codes.view(f.dtype)
    elif f.bits == 4:
        c = np.empty((codes.shape[0], dim), np.uint8)
        c[:, 0::2] = codes & 0xF
        c[:, 1::2] = codes >> 4
        values = c.view(f.dtype)
    else:
        g = codes.reshape(codes.shape[0], -1, 3)
        c = np.empty((codes.shape[0], dim // 4, 4), np.uint8)
        c[:, :, 0] = g[:, :, 0] & 0x3F
        c[:, :, 1] = ((g[:, :, 0] >> 6) | (g[:, :, 1] << 2)) & 0x3F
        c[:, :, 2] = ((g[:, :, 1] >> 4) | (g[:, :, 2] << 4)) & 0x3F
        c[:, :, 3] = g[:, :, 2] >> 2
        values = c.reshape(codes.shape[0], dim).view(f.dtype)
    if out is None:
        return values.astype(np.float32) / scales[:, None]
    # into the caller's buffer: the same work without allocating the (n, dim) float32 result
    return np.divide(values, scales[:, None], out=out, casting="unsafe", dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--formats", default=",".join(f for f in FORMATS if f != "fp32"))
    ap.add_argument("--out", default="bench_codec", help="name of the JSON file in benchmarks/results/")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((args.rows, args.dim), dtype=np.float32) * 2).astype(np.float32)
    gb = x.nbytes / 1e9
    mfs.encode(x[:100], "e2m1")  # compile outside the timings
    print(
        f"machine: {machine()['cpu']}, {machine()['cores']} cores; data {args.rows} x {args.dim} float32 ({gb:.2f} GB)"
    )
    print(
        f"{'format':<6} {'encode GB/s':>11} {'baseline':>9} {'ratio':>7}"
        f" {'decode GB/s':>11} {'baseline':>9} {'ratio':>7} {'into out=':>10} {'baseline':>9} {'ratio':>7}"
    )
    rows = []
    for name in args.formats.split(","):
        packed = mfs.encode(x, name)
        ref_codes, ref_scales = baseline_encode(x, name)
        assert np.array_equal(packed.codes, ref_codes) and np.array_equal(packed.scales, ref_scales), name
        out = np.empty_like(x)
        out_base = np.empty_like(x)
        ref = baseline_decode(ref_codes, ref_scales, name, args.dim)
        assert np.array_equal(mfs.decode(packed), ref), name
        assert np.array_equal(
            mfs.decode(packed, out=out), baseline_decode(ref_codes, ref_scales, name, args.dim, out_base)
        )
        del ref
        # partial binds this iteration's arrays (a lambda would see the loop variables late)
        t = {
            "encode": timings(partial(mfs.encode, x, name), args.repeats),
            "encode_baseline": timings(partial(baseline_encode, x, name), args.repeats),
            "decode": timings(partial(mfs.decode, packed), args.repeats),
            "decode_baseline": timings(partial(baseline_decode, ref_codes, ref_scales, name, args.dim), args.repeats),
            "decode_out": timings(partial(mfs.decode, packed, out=out), args.repeats),
            "decode_out_baseline": timings(
                partial(baseline_decode, ref_codes, ref_scales, name, args.dim, out_base), args.repeats
            ),
        }
        row: dict[str, object] = {"format": name}
        for key, v in t.items():
            row[f"{key}_s"] = v["best"]
            row[f"{key}_median_s"] = v["median"]
            row[f"{key}_gbps"] = gb / v["best"]
        for key in ("encode", "decode", "decode_out"):
            row[f"{key}_ratio"] = t[f"{key}_baseline"]["best"] / t[key]["best"]
            row[f"{key}_median_ratio"] = t[f"{key}_baseline"]["median"] / t[key]["median"]
        rows.append(row)
        print(
            f"{name:<6} {row['encode_gbps']:>11.2f} {row['encode_baseline_gbps']:>9.3f} {row['encode_ratio']:>6.1f}x "
            f"{row['decode_gbps']:>11.2f} {row['decode_baseline_gbps']:>9.3f} {row['decode_ratio']:>6.1f}x "
            f"{row['decode_out_gbps']:>10.2f} {row['decode_out_baseline_gbps']:>9.3f} {row['decode_out_ratio']:>6.1f}x"
        )
        print(
            f"{'median':<6} {gb / t['encode']['median']:>11.2f} {gb / t['encode_baseline']['median']:>9.3f}"
            f" {row['encode_median_ratio']:>6.1f}x {gb / t['decode']['median']:>11.2f}"
            f" {gb / t['decode_baseline']['median']:>9.3f} {row['decode_median_ratio']:>6.1f}x"
            f" {gb / t['decode_out']['median']:>10.2f} {gb / t['decode_out_baseline']['median']:>9.3f}"
            f" {row['decode_out_median_ratio']:>6.1f}x"
        )
    targets = {
        name: {
            "encode_10x": r["encode_ratio"] >= 10,
            "decode_5x": r["decode_ratio"] >= 5,
            "decode_out_5x": r["decode_out_ratio"] >= 5,
        }
        for r in rows
        if (name := r["format"]) in TARGET_FORMATS
    }
    path = save(
        args.out, {"rows": args.rows, "dim": args.dim, "repeats": args.repeats, "results": rows, "targets_met": targets}
    )
    print(f"targets (encode >= 10x, decode >= 5x, both decode kinds) for {', '.join(TARGET_FORMATS)}: {targets}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
