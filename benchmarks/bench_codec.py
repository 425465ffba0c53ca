"""Encode/decode throughput of the numba codec against ml_dtypes + numpy packing.

Same data, same process: 1,000,000 x 192 float32 Gaussian vectors (scale
"vector"). The baseline does the same work with array operations: per-vector
scale, clip, ``astype(ml_dtype)``, then numpy nibble/6-bit packing for encode;
numpy unpacking, ``astype(float32)`` and division by the scale for decode. Both
produce identical bytes (checked). Throughput is GB/s of float32 input (encode)
or output (decode).

    python benchmarks/bench_codec.py [--rows 1000000] [--dim 192] [--repeats 3]
    NUMBA_NUM_THREADS=1 python benchmarks/bench_codec.py --out bench_codec_1thread   # kernels on one core
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of, machine, save  # noqa: E402

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


def baseline_decode(codes: np.ndarray, scales: np.ndarray, name: str, dim: int) -> np.ndarray:
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
    return values.astype(np.float32) / scales[:, None]


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
        f"{'format':<6} {'encode GB/s':>11} {'baseline':>9} {'ratio':>7} {'decode GB/s':>11} {'baseline':>9} {'ratio':>7}"
    )
    rows = []
    for name in args.formats.split(","):
        packed = mfs.encode(x, name)
        ref_codes, ref_scales = baseline_encode(x, name)
        assert np.array_equal(packed.codes, ref_codes) and np.array_equal(packed.scales, ref_scales), name
        assert np.array_equal(mfs.decode(packed), baseline_decode(ref_codes, ref_scales, name, args.dim)), name
        t_enc = best_of(lambda: mfs.encode(x, name), args.repeats)
        t_enc_base = best_of(lambda: baseline_encode(x, name), args.repeats)
        out = np.empty_like(x)
        t_dec = best_of(lambda: mfs.decode(packed, out=out), args.repeats)
        t_dec_base = best_of(lambda: baseline_decode(ref_codes, ref_scales, name, args.dim), args.repeats)
        row = {
            "format": name,
            "encode_s": t_enc,
            "encode_baseline_s": t_enc_base,
            "encode_gbps": gb / t_enc,
            "encode_baseline_gbps": gb / t_enc_base,
            "encode_ratio": t_enc_base / t_enc,
            "decode_s": t_dec,
            "decode_baseline_s": t_dec_base,
            "decode_gbps": gb / t_dec,
            "decode_baseline_gbps": gb / t_dec_base,
            "decode_ratio": t_dec_base / t_dec,
        }
        rows.append(row)
        print(
            f"{name:<6} {row['encode_gbps']:>11.2f} {row['encode_baseline_gbps']:>9.3f} {row['encode_ratio']:>6.1f}x "
            f"{row['decode_gbps']:>11.2f} {row['decode_baseline_gbps']:>9.3f} {row['decode_ratio']:>6.1f}x"
        )
    targets = {
        name: {"encode_10x": r["encode_ratio"] >= 10, "decode_5x": r["decode_ratio"] >= 5}
        for r in rows
        if (name := r["format"]) in TARGET_FORMATS
    }
    path = save(
        args.out, {"rows": args.rows, "dim": args.dim, "repeats": args.repeats, "results": rows, "targets_met": targets}
    )
    print(f"targets (encode >= 10x, decode >= 5x) for {', '.join(TARGET_FORMATS)}: {targets}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
