"""What 10^8 and 10^9 embeddings cost on a Dask cluster, from the rates bench_scale.py measured.

Reads benchmarks/results/bench_scale.json (d = 192) and bench_scale_d512.json
(d = 512), takes the per-worker rates of the 1-worker run with 65,536-row
shards (the default shard), and prints, with the arithmetic:

* bytes per vector and in total for each encoding (exact: ``storage_bytes``);
* convert and full-scan times for a number of workers, assuming one core per
  worker and that the store's bandwidth keeps up (both stated in docs/scaling.md);
* memory per worker (the measured peak) and on the driver (the id index).

    python benchmarks/scaling_estimate.py [--workers 64 256]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS  # noqa: E402

import minifloat_store as mfs  # noqa: E402

SHARD = 65536
#: Bytes per row of the driver's in-memory id index (docs/store.md, Limits), plus the ids' UTF-8 bytes.
ID_INDEX_BYTES = 14


def _rates(name: str) -> dict[str, float]:
    data = json.loads((RESULTS / name).read_text())
    run = next(r for r in data["dask"] if r["workers"] == 1 and r["chunk_rows"] == SHARD)
    return {
        "dim": data["dim"],
        "format": data["format"],
        "queries": data["queries"],
        "convert": run["convert_rows_per_s_per_worker"],
        "scan": run["scan_rows_per_s_per_worker"],
        "rss_mb": run["worker_peak_rss_mb"],
    }


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--id-bytes", type=int, default=16, help="average UTF-8 bytes per id")
    args = ap.parse_args()
    rates = [_rates("bench_scale.json"), _rates("bench_scale_d512.json")]
    encodings = ["e2m1", "e2m3", "e4m3", "fp16", "fp32"]

    print("## Bytes (exact: storage_bytes; codes + one float32 scale, fp32 none)\n")
    print("| d | " + " | ".join(encodings) + " |")
    print("|---|" + "---|" * len(encodings))
    for r in rates:
        d = r["dim"]
        cells = [f"{mfs.storage_bytes(1, d, e, 'vector')} B" for e in encodings]
        print(f"| {d} | " + " | ".join(cells) + " |")
    print()
    print("| n | d | " + " | ".join(encodings) + " | ids on disk (8 B end + id bytes) |")
    print("|---|---|" + "---|" * (len(encodings) + 1))
    for n in (10**8, 10**9):
        for r in rates:
            d = r["dim"]
            cells = [f"{mfs.storage_bytes(n, d, e, 'vector') / 1e9:,.0f} GB" for e in encodings]
            print(
                f"| 10^{len(str(n)) - 1} | {d} | " + " | ".join(cells) + f" | {n * (8 + args.id_bytes) / 1e9:,.0f} GB |"
            )

    print("\n## Measured per-worker rates (1 worker process, 1 thread, 65,536-row shards)\n")
    for r in rates:
        print(
            f"- d = {r['dim']}, {r['format']}: convert {r['convert']:,.0f} rows/s; scan for a batch of "
            f"{r['queries']} queries {r['scan']:,.0f} rows/s; worker peak RSS {r['rss_mb']:,.0f} MB"
        )

    print("\n## Time = n / (per-worker rate x workers)\n")
    print("| n | d | workers | convert | one full scan (batch of queries) |")
    print("|---|---|---|---|---|")
    for n in (10**8, 10**9):
        for r in rates:
            for w in args.workers:
                c = n / (r["convert"] * w)
                s = n / (r["scan"] * w)
                print(
                    f"| 10^{len(str(n)) - 1} | {r['dim']} | {w} | {n:.0e} / ({r['convert']:,.0f} x {w}) = {_dur(c)} "
                    f"| {n:.0e} / ({r['scan']:,.0f} x {w}) = {_dur(s)} |"
                )

    print("\n## Driver memory: the id index, (14 B + id bytes) per row\n")
    for n in (10**8, 10**9):
        print(
            f"- 10^{len(str(n)) - 1}: {n:.0e} x ({ID_INDEX_BYTES} + {args.id_bytes}) B = "
            f"{n * (ID_INDEX_BYTES + args.id_bytes) / 1e9:,.1f} GB"
        )
    print("\n## Search: candidates merged on the driver, shards x queries x k x 16 B\n")
    for n in (10**8, 10**9):
        shards = -(-n // SHARD)
        print(f"- 10^{len(str(n)) - 1}: {shards:,} shards x 100 x 10 x 16 B = {shards * 100 * 10 * 16 / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
