"""Top-k cosine search and trial scoring on packed codes, against float32 BLAS and FAISS.

All in one run on the same data (1,000,000 x 192 Gaussian float32 vectors with
a spread of norms; 100 queries, each a stored vector plus noise; top-10):

* ``numpy_f32``: brute force on the L2-normalised float32 matrix, 64k rows at
  a time: ``Q @ X[chunk].T`` (OpenBLAS sgemm), ``argpartition``, merge.
* ``faiss_QT_4bit`` / ``QT_8bit`` / ``QT_fp16``: ``IndexScalarQuantizer`` with
  inner product on the normalised vectors (cosine), trained on 100k of them.
* ``mfs_<fmt>``: ``minifloat_store.search`` on ``encode(X, fmt)`` with
  precomputed ``vector_norms`` (what a store holds), for e2m1, e4m3, fp16.

Timing: one warm-up round, then ``--repeats`` rounds in which every method
runs once in turn (interleaved, so load from other processes on the machine
hits all methods alike); best and median per method. Batch = all queries in
one call; single = the first 20 queries one call each.

Memory: each method is rebuilt in a fresh child process from the same data,
streamed in chunks; ``index_mb`` is the resident-set growth once the index is
built, ``search_peak_mb`` the peak growth during a batch search (VmHWM after
resetting it). Recall@10 is measured against ``numpy_f32``'s exact top 10.

Trial scoring: 580,000 random pairs over the first 145,000 vectors (the size
of VoxCeleb1-E) with ``cosine_index_pairs``, every format; the numpy baseline
gathers normalised float32 rows and takes row-wise dot products.

    python benchmarks/bench_search.py [--rows 1000000] [--repeats 5] [--skip-memory]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, save  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store import scoring  # noqa: E402
from minifloat_store.formats import FORMATS  # noqa: E402

SEARCH_FORMATS = ("e2m1", "e4m3", "fp16")
FAISS_TYPES = ("QT_4bit", "QT_8bit", "QT_fp16")
DATA_CHUNK = 65536
NUMPY_CHUNK = 65536
SEED = 20241125


# ---------------------------------------------------------------- data


def data_chunks(rows: int, dim: int):
    """The benchmark vectors, chunk by chunk (same bytes in every process)."""
    for c, a in enumerate(range(0, rows, DATA_CHUNK)):
        rng = np.random.default_rng([SEED, c])
        m = min(DATA_CHUNK, rows - a)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        x *= rng.uniform(0.5, 3.0, size=(m, 1)).astype(np.float32)
        yield a, x


def make_queries(x: np.ndarray, nq: int) -> np.ndarray:
    rng = np.random.default_rng([SEED, 10**6])
    src = rng.choice(x.shape[0], nq, replace=False)
    return (x[src] + rng.standard_normal((nq, x.shape[1]), dtype=np.float32) * 1.5).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- methods


def numpy_topk(xn: np.ndarray, qn: np.ndarray, k: int) -> np.ndarray:
    """Exact float32 top k: chunked sgemm + argpartition, merged; ties by row."""
    nq = qn.shape[0]
    best_v = np.full((nq, k), -np.inf, np.float32)
    best_i = np.zeros((nq, k), np.int64)
    for a in range(0, xn.shape[0], NUMPY_CHUNK):
        s = qn @ xn[a : a + NUMPY_CHUNK].T
        kk = min(k, s.shape[1])
        p = np.argpartition(s, -kk, axis=1)[:, -kk:]
        v = np.take_along_axis(s, p, 1)
        all_v = np.concatenate([best_v, v], 1)
        all_i = np.concatenate([best_i, p + a], 1)
        o = np.argsort(-all_v, axis=1, kind="stable")[:, :k]
        best_v = np.take_along_axis(all_v, o, 1)
        best_i = np.take_along_axis(all_i, o, 1)
    return best_i


def build_faiss(qt: str, chunks, dim: int):
    import faiss

    index = faiss.IndexScalarQuantizer(dim, getattr(faiss.ScalarQuantizer, qt), faiss.METRIC_INNER_PRODUCT)
    trained = False
    for _, x in chunks:
        xn = unit(x)
        if not trained:
            # Per-dimension ranges (QT_4bit/8bit) from the first 100k vectors.
            index.train(xn[:100_000] if xn.shape[0] >= 100_000 else xn)
            trained = True
        index.add(xn)
    return index


def build_mfs(fmt: str, chunks, rows: int, dim: int) -> tuple[mfs.Packed, np.ndarray]:
    f = FORMATS[fmt]
    codes = np.empty((rows, f.row_bytes(dim)), np.uint8)
    scales = np.empty(rows, np.float32)
    for a, x in chunks:
        p = mfs.encode(x, f)
        codes[a : a + x.shape[0]] = p.codes
        scales[a : a + x.shape[0]] = p.scales
    packed = mfs.Packed(codes, scales, f, dim, "vector")
    return packed, mfs.vector_norms(packed)


def searcher(name: str, index: Any, k: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function from float32 queries (q, d) to top-k row indices (q, k)."""
    if name == "numpy_f32":
        return lambda q: numpy_topk(index, unit(q), k)
    if name.startswith("faiss_"):
        return lambda q: index.search(unit(q), k)[1]
    packed, norms = index
    return lambda q: mfs.search(packed, q, k, norms=norms)[0]


# ---------------------------------------------------------------- memory (child process)


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(name: str, rows: int, dim: int, k: int, queries_file: str) -> dict[str, float]:
    q = np.load(queries_file)
    # Warm up the code paths on a tiny index first (numba compilation, BLAS
    # buffers, faiss's OpenMP pool) so the baseline RSS already holds them.
    tiny = next(data_chunks(2048, dim))[1]
    build(name, iter([(0, tiny)]), 2048, dim, k)(q)
    gc.collect()
    base = _rss()
    fn = build(name, data_chunks(rows, dim), rows, dim, k)
    gc.collect()
    built = _rss()
    fn(q)  # allocator high-water marks as in steady state
    if not _reset_peak():
        raise RuntimeError("cannot reset VmHWM (/proc/self/clear_refs)")
    fn(q)
    peak = _peak()
    return {"index_mb": (built - base) / 2**20, "search_peak_mb": (peak - base) / 2**20}


def build(name: str, chunks, rows: int, dim: int, k: int) -> Callable[[np.ndarray], np.ndarray]:
    if name == "numpy_f32":
        xn = np.empty((rows, dim), np.float32)
        for a, x in chunks:
            xn[a : a + x.shape[0]] = unit(x)
        return searcher(name, xn, k)
    if name.startswith("faiss_"):
        return searcher(name, build_faiss(name[len("faiss_") :], chunks, dim), k)
    return searcher(name, build_mfs(name[len("mfs_") :], chunks, rows, dim), k)


def measure_memory(names: list[str], rows: int, dim: int, k: int, q: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        qf = os.path.join(tmp, "queries.npy")
        np.save(qf, q)
        for name in names:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                name,
                "--rows",
                str(rows),
                "--dim",
                str(dim),
                "--k",
                str(k),
                "--queries-file",
                qf,
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out[name] = json.loads(res.stdout.strip().splitlines()[-1])
            print(
                f"  memory {name:<15} index {out[name]['index_mb']:8.1f} MB   "
                f"search peak {out[name]['search_peak_mb']:8.1f} MB"
            )
    return out


# ---------------------------------------------------------------- timing


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    """Warm-up round, then ``repeats`` rounds running every function once in turn."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: {"best_s": min(t), "median_s": float(np.median(t))} for name, t in times.items()}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), truth.tolist(), strict=True)]))


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--trial-rows", type=int, default=145_000)
    ap.add_argument("--trial-pairs", type=int, default=580_000)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--queries-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.dim, args.k, args.queries_file)))
        return

    import faiss

    rows, dim, k = args.rows, args.dim, args.k
    info = machine()
    load_before = os.getloadavg()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, numba threads {info['numba_threads']}, "
        f"faiss {faiss.__version__} ({faiss.get_compile_options()}); load average {load_before[0]:.1f}"
    )
    x = np.empty((rows, dim), np.float32)
    for a, c in data_chunks(rows, dim):
        x[a : a + c.shape[0]] = c
    q = make_queries(x, args.queries)
    print(f"data: {rows} x {dim} float32, {args.queries} queries, top-{k}")

    # ---- build (timed once: not the subject, reported for context)
    indexes: dict[str, Any] = {}
    build_s: dict[str, float] = {}
    t0 = time.perf_counter()
    indexes["numpy_f32"] = unit(x)
    build_s["numpy_f32"] = time.perf_counter() - t0
    for qt in FAISS_TYPES:
        t0 = time.perf_counter()
        indexes[f"faiss_{qt}"] = build_faiss(qt, iter([(0, x)]), dim)
        build_s[f"faiss_{qt}"] = time.perf_counter() - t0
    for fmt in SEARCH_FORMATS:
        mfs.search(mfs.encode(x[:5000], fmt), q, k)  # compile outside the timings
        t0 = time.perf_counter()
        packed = mfs.encode(x, fmt)
        indexes[f"mfs_{fmt}"] = (packed, mfs.vector_norms(packed))
        build_s[f"mfs_{fmt}"] = time.perf_counter() - t0
    names = list(indexes)
    fns = {name: searcher(name, indexes[name], k) for name in names}
    held = {
        "numpy_f32": indexes["numpy_f32"].nbytes,
        **{f"faiss_{qt}": indexes[f"faiss_{qt}"].sa_code_size() * rows for qt in FAISS_TYPES},
        **{f"mfs_{f}": indexes[f"mfs_{f}"][0].nbytes + indexes[f"mfs_{f}"][1].nbytes for f in SEARCH_FORMATS},
    }

    # ---- batch and single-query search
    print(f"batch search ({args.queries} queries per call), {args.repeats} interleaved rounds ...")
    batch = interleaved({n: (lambda fn=fn: fn(q)) for n, fn in fns.items()}, args.repeats)
    single_q = q[:20]
    print("single-query search (20 queries, one call each) ...")
    single = interleaved(
        {n: (lambda fn=fn: [fn(single_q[i : i + 1]) for i in range(20)]) for n, fn in fns.items()},
        max(2, args.repeats // 2),
    )
    truth = fns["numpy_f32"](q)
    results = []
    for name in names:
        r = {
            "method": name,
            "batch_best_s": batch[name]["best_s"],
            "batch_median_s": batch[name]["median_s"],
            "batch_qps": args.queries / batch[name]["best_s"],
            "single_qps": 20 / single[name]["best_s"],
            "held_mb": held[name] / 2**20,
            "build_s": build_s[name],
            "recall_at_k_vs_float32": recall(fns[name](q), truth),
        }
        results.append(r)
    by = {r["method"]: r for r in results}

    # ---- path crossover (why search(method="auto") switches at BLAS_MIN_QUERIES)
    print("scan vs blas crossover on e2m1 ...")
    packed, norms = indexes["mfs_e2m1"]
    crossover = []
    for nq in (1, 2, 4, 8, 16, 32):
        qq = np.resize(q, (nq, dim))
        t = interleaved(
            {m: (lambda m=m, qq=qq: mfs.search(packed, qq, k, norms=norms, method=m)) for m in ("scan", "blas")}, 3
        )
        crossover.append({"queries": nq, "scan_s": t["scan"]["best_s"], "blas_s": t["blas"]["best_s"]})
        print(f"  q={nq:<3} scan {t['scan']['best_s'] * 1e3:8.1f} ms   blas {t['blas']['best_s'] * 1e3:8.1f} ms")

    # ---- chunk size of the BLAS path (why CHUNK_ROWS)
    print("BLAS-path chunk size on e2m1, all queries ...")
    default_chunk = scoring.CHUNK_ROWS

    def with_chunk(c: int) -> Callable[[], Any]:
        def run() -> Any:
            scoring.CHUNK_ROWS = c
            try:
                return mfs.search(packed, q, k, norms=norms, method="blas")
            finally:
                scoring.CHUNK_ROWS = default_chunk

        return run

    sweep = interleaved({str(c): with_chunk(c) for c in (4096, 16384, 32768, 65536)}, 3)
    chunk_sweep = [{"chunk_rows": int(c), "best_s": t["best_s"]} for c, t in sweep.items()]
    for r in chunk_sweep:
        print(f"  chunk {r['chunk_rows']:>6} rows: {r['best_s'] * 1e3:8.1f} ms")

    # ---- memory in fresh processes
    memory = {} if args.skip_memory else measure_memory(names, rows, dim, k, q)
    for name, m in memory.items():
        by[name].update(m)

    # ---- trial scoring
    print(f"trial scoring: {args.trial_pairs} pairs over {args.trial_rows} vectors ...")
    rng = np.random.default_rng([SEED, 7])
    left = rng.integers(0, args.trial_rows, args.trial_pairs)
    right = rng.integers(0, args.trial_rows, args.trial_pairs)
    xt = x[: args.trial_rows]
    xtn = unit(xt)

    def numpy_pairs() -> np.ndarray:
        out = np.empty(left.size, np.float32)
        for a in range(0, left.size, NUMPY_CHUNK):
            sl = slice(a, a + NUMPY_CHUNK)
            out[sl] = np.einsum("ij,ij->i", xtn[left[sl]], xtn[right[sl]])
        return out

    pair_fns: dict[str, Callable[[], Any]] = {"numpy_f32": numpy_pairs}
    trial_packed = {}
    for fmt in (f for f in FORMATS):
        p = mfs.encode(xt, fmt)
        trial_packed[fmt] = (p, mfs.vector_norms(p))
        pair_fns[f"mfs_{fmt}"] = lambda p=p, nr=trial_packed[fmt][1]: mfs.cosine_index_pairs(p, left, right, norms=nr)
    pair_fns["mfs_e2m1_norms_included"] = lambda: mfs.cosine_index_pairs(trial_packed["e2m1"][0], left, right)
    trials = interleaved(pair_fns, args.repeats)
    ref = numpy_pairs()
    trial_rows = []
    for name, t in trials.items():
        row = {
            "method": name,
            "best_s": t["best_s"],
            "median_s": t["median_s"],
            "pairs_per_s": args.trial_pairs / t["best_s"],
        }
        if name.startswith("mfs_") and not name.endswith("included"):
            row["max_abs_diff_vs_float32"] = float(np.abs(pair_fns[name]() - ref).max())
        trial_rows.append(row)
        print(f"  {name:<24} {t['best_s']:7.3f} s (median {t['median_s']:.3f})")

    # ---- report
    base = by["numpy_f32"]
    print(
        f"\n{'method':<16} {'batch q/s':>10} {'single q/s':>10} {'held MB':>9} "
        f"{'index MB':>9} {'peak MB':>9} {'recall':>7}"
    )
    for r in results:
        print(
            f"{r['method']:<16} {r['batch_qps']:>10.1f} {r['single_qps']:>10.1f} {r['held_mb']:>9.1f} "
            f"{r.get('index_mb', float('nan')):>9.1f} {r.get('search_peak_mb', float('nan')):>9.1f} "
            f"{r['recall_at_k_vs_float32']:>7.3f}"
        )
    e2 = by["mfs_e2m1"]
    mem_key = "index_mb" if "index_mb" in e2 else "held_mb"
    targets = {
        "e2m1_qps_over_faiss_QT_4bit": e2["batch_qps"] / by["faiss_QT_4bit"]["batch_qps"],
        "e2m1_time_over_numpy_f32": e2["batch_best_s"] / base["batch_best_s"],
        "numpy_f32_memory_over_e2m1": base[mem_key] / e2[mem_key],
        "numpy_f32_payload_over_e2m1_payload": base["held_mb"] / (indexes["mfs_e2m1"][0].nbytes / 2**20),
        "trial_scoring_worst_s": max(r["best_s"] for r in trial_rows if r["method"].startswith("mfs_")),
    }
    met = {
        "e2m1 at least FAISS QT_4bit speed": targets["e2m1_qps_over_faiss_QT_4bit"] >= 1,
        "e2m1 within 2x of float32 BLAS": targets["e2m1_time_over_numpy_f32"] <= 2,
        "e2m1 holds 8x less memory": targets["numpy_f32_memory_over_e2m1"] >= 8,
        "trial scoring under 1 s (every format)": targets["trial_scoring_worst_s"] < 1,
    }
    for key, v in targets.items():
        print(f"{key}: {v:.3f}")
    for key, v in met.items():
        print(f"target {key}: {'met' if v else 'NOT met'}")
    load_after = os.getloadavg()
    path = save(
        "bench_search",
        {
            "rows": rows,
            "dim": dim,
            "queries": args.queries,
            "k": k,
            "repeats": args.repeats,
            "faiss": {
                "version": faiss.__version__,
                "compile_options": faiss.get_compile_options(),
                "omp_threads": faiss.omp_get_max_threads(),
            },
            "blas_min_queries": scoring.BLAS_MIN_QUERIES,
            "chunk_rows": scoring.CHUNK_ROWS,
            "load_average_before_after": [load_before[0], load_after[0]],
            "search": results,
            "crossover_e2m1": crossover,
            "chunk_sweep_e2m1": chunk_sweep,
            "trial_scoring": {"rows": args.trial_rows, "pairs": args.trial_pairs, "results": trial_rows},
            "targets": targets,
            "targets_met": met,
        },
    )
    print(f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}; wrote {path}")


if __name__ == "__main__":
    main()
