"""Convert and search throughput with Dask against the number of workers and the shard size.

One run, same data: ``--rows`` Gaussian float32 vectors of ``--dim`` values in
a local zarr array (chunks of 16,384 rows). Measured:

* ``single``: the single-process ``minifloat_store.convert`` from that array,
  and ``EmbeddingStore.search`` (numba, all cores, the packed matrix cached in
  memory after a warm-up call), the baselines;
* ``dask``: ``minifloat_store.dask.convert`` and ``minifloat_store.dask.search``
  on a ``distributed.LocalCluster`` of 1, 2 and 4 worker processes (one thread
  each, ``NUMBA_NUM_THREADS=1``), for each ``--chunk-rows`` (the shard size,
  rows per task). Each task of a search reads its shard from disk: nothing is
  cached between searches, as on a cluster whose store does not fit in memory.

Every timing is the best of ``--repeats`` after one warm-up (which also
compiles the kernels in each worker). The per-worker rate (rows per second
per worker process at 1 worker) is the figure docs/scaling.md builds on.
The store is on local disk: object storage adds its own latency and bandwidth,
not measured here. On a machine with fewer cores than workers the extra
workers only add overhead: the table shows it.

    python benchmarks/bench_scale.py [--rows 262144] [--dim 192] [--format e4m3] [--workers 1 2 4]
        [--chunk-rows 16384 65536] [--tag NAME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, save  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store import dask as mfs_dask  # noqa: E402


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def _peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: a worker is forked from this process, and ru_maxrss carries
    # the parent's high-water mark over the fork; VmHWM belongs to the worker's own memory.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=262144)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--format", default="e4m3")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--chunk-rows", type=int, nargs="+", default=[16384, 65536], help="ascending")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tag", default="", help="JSON saved as bench_scale[_TAG].json")
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((args.rows, args.dim)) * rng.uniform(0.5, 2.0, (args.rows, 1))).astype(np.float32)
    q = x[rng.choice(args.rows, args.queries, replace=False)] + 0.1 * rng.standard_normal(
        (args.queries, args.dim)
    ).astype(np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    results: dict[str, object] = {"rows": args.rows, "dim": args.dim, "format": args.format, "queries": args.queries}
    try:
        src = tmp / "src.zarr"
        zarr.create_array(src, shape=x.shape, chunks=(16384, args.dim), dtype="float32")[:] = x
        single: dict[str, dict[str, float]] = {}
        for cr in args.chunk_rows:
            dst = tmp / f"single_{cr}.zarr"
            t = best_of(
                lambda dst=dst, cr=cr: mfs.convert(str(src), _fresh(dst), args.format, progress=False, chunk_rows=cr),
                repeats=args.repeats,
            )
            with mfs.EmbeddingStore.open(dst) as s:
                ts = best_of(lambda s=s: s.search(q, k=10), repeats=args.repeats)
            single[str(cr)] = {"convert_s": t, "convert_rows_per_s": args.rows / t, "search_s": ts}
            print(
                f"single process  chunk {cr:>6}: convert {t:6.2f} s ({args.rows / t:10,.0f} rows/s)  "
                f"search {args.queries} q {ts:6.3f} s",
                flush=True,
            )
        results["single"] = single
        runs = []
        for w in args.workers:
            with (
                LocalCluster(
                    n_workers=w,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
                ) as cluster,
                Client(cluster) as client,
            ):
                for cr in args.chunk_rows:
                    dst = tmp / f"dask_{w}_{cr}.zarr"
                    t = best_of(
                        lambda dst=dst, cr=cr, client=client: mfs_dask.convert(
                            str(src), _fresh(dst), args.format, client=client, chunk_rows=cr
                        ),
                        repeats=args.repeats,
                    )
                    with mfs.EmbeddingStore.open(dst) as s:
                        ts = best_of(
                            lambda s=s, client=client: mfs_dask.search(s, q, 10, client=client), repeats=args.repeats
                        )
                        got = mfs_dask.search(s, q, 10, client=client)
                        want = s.search(q, 10)
                        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
                    # The high-water mark of each worker process so far; chunk sizes run in ascending
                    # order, so it is this configuration's peak (or a smaller one's, never a larger one's).
                    peak_mb = max(client.run(_peak_rss_mb).values())
                    base = single[str(cr)]
                    row = {
                        "workers": w,
                        "chunk_rows": cr,
                        "convert_s": t,
                        "convert_rows_per_s": args.rows / t,
                        "convert_rows_per_s_per_worker": args.rows / t / w,
                        "convert_vs_single": base["convert_s"] / t,
                        "search_s": ts,
                        "scan_rows_per_s": args.rows / ts,
                        "scan_rows_per_s_per_worker": args.rows / ts / w,
                        "search_vs_single": base["search_s"] / ts,
                        "worker_peak_rss_mb": peak_mb,
                    }
                    runs.append(row)
                    print(
                        f"dask {w} worker(s) chunk {cr:>6}: convert {t:6.2f} s ({args.rows / t:10,.0f} rows/s, "
                        f"{row['convert_vs_single']:.2f}x single)  search {ts:6.3f} s "
                        f"({row['search_vs_single']:.2f}x single; {args.rows / ts:12,.0f} rows/s)  "
                        f"worker peak RSS {peak_mb:.0f} MB",
                        flush=True,
                    )
        results["dask"] = runs
        results["cpu_count"] = os.cpu_count()
        results["note"] = (
            "shared machine (other jobs running); local disk; 'x single' > 1 means faster than one process"
        )
        print("saved", save("bench_scale" + (f"_{args.tag}" if args.tag else ""), results))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        time.sleep(0)


if __name__ == "__main__":
    main()
