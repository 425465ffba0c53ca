"""Top-k cosine search (one query at a time and in batches) and trial scoring, against FAISS, usearch and numpy.

All in one run on the same data (1,000,000 x 192 Gaussian float32 vectors with
a spread of norms; 100 queries, each a stored vector plus noise; top-10):

* ``numpy_f32``: brute force on the L2-normalised float32 matrix, 64k rows at
  a time: ``Q @ X[chunk].T`` (OpenBLAS sgemm), ``argpartition``, merge.
* ``faiss_Flat``: ``IndexFlatIP`` on the normalised vectors.
* ``faiss_QT_4bit`` / ``QT_8bit`` / ``QT_fp16``: ``IndexScalarQuantizer`` with
  inner product on the normalised vectors (cosine), trained on 100k of them.
* ``usearch_i8`` / ``usearch_f16``: ``usearch.index.search(..., exact=True)``
  (brute force, cosine) on the normalised vectors as int8 (x127) / float16.
* ``mfs_<fmt>``: ``minifloat_store.search`` on a ``search_index`` of
  ``encode(X, fmt)`` (what a store holds), for e2m1, e4m3, fp16.
* ``mfs_<element>_<scale>_cr``: ``minifloat_store.search`` on a ``search_index``
  of ``encode(X, enc)`` with ``enc = Encoding(element, scale, "centre+rotate")``
  fitted on the first 100k vectors (what a store holds: the payload and one
  float32 norm a row).

Modes: ``single`` = 20 queries, one call each; ``batch10`` = 10 queries in one
call; ``batch100`` = 100 queries in one call. Timing: one warm-up round, then
``--repeats`` rounds in which every method runs once in turn (interleaved, so
load from other processes on the machine hits all methods alike); best per
method. Threads: ``--threads N`` sets NUMBA_NUM_THREADS, OMP_NUM_THREADS and
the BLAS threads before anything is imported (faiss and usearch get N too).

Bytes per query are what each method must read per query (codes plus any
per-row extras); ``bw_fraction`` = bytes x queries/s / memory bandwidth, the
bandwidth measured in the same run by a parallel numba sum over 1 GiB.
Recall@10: peers against the exact float32 top 10; ``mfs_*`` against exact
float64 brute force on the *decoded* vectors (the library's definition).

Memory: each method is rebuilt in a fresh child process from the same data,
streamed in chunks; ``index_mb`` is the resident-set growth once the index is
built, ``search_peak_mb`` the peak growth during a batch search.

    python benchmarks/bench_search.py [--rows 1000000] [--repeats 3] [--threads 2] [--skip-memory] [--trials]
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

if "--threads" in sys.argv:  # before numpy/numba/faiss read them
    _t = sys.argv[sys.argv.index("--threads") + 1]
    for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _t

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved_rounds, machine, save  # noqa: E402
from _search_methods import (  # noqa: E402
    NUMPY_CHUNK,
    SEED,
    build,
    build_usearch,
    data_chunks,
    make_queries,
    searcher,
    unit,
)

import minifloat_store as mfs  # noqa: E402
from minifloat_store import scoring  # noqa: E402
from minifloat_store.formats import FORMATS  # noqa: E402

SEARCH_FORMATS = ("e2m1", "e4m3", "fp16")
SEARCH_ENCODINGS = (("nf4", "vector"), ("nf4", "block32"), ("int4", "block16"), ("int8", "vector"), ("int8", "block32"))
#: Thread counts of the scaling table (numba.set_num_threads, faiss, usearch and BLAS through threadpoolctl).
THREAD_COUNTS = (1, 2)
FAISS_TYPES = ("QT_4bit", "QT_8bit", "QT_fp16")
USEARCH_TYPES = ("i8", "f16")
MODES = {"single": (20, 1), "batch10": (10, 10), "batch100": (100, 100)}  # queries, per call


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
    """Warm-up round, then ``repeats`` rounds running every function once in turn: best and median seconds."""
    times = interleaved_rounds(fns, repeats)
    return {name: {"best_s": min(t), "median_s": float(np.median(t))} for name, t in times.items()}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), truth.tolist(), strict=True)]))


# ---------------------------------------------------------------- main


@njit(parallel=True, cache=False)
def _parallel_sum(a: np.ndarray) -> int:
    acc = 0
    for i in prange(a.shape[0]):
        acc += a[i]
    return acc


def memory_bandwidth() -> float:
    """GB/s of a parallel sum over 1 GiB of int64 (every thread reads): the best of 5."""
    a = np.ones(2**27, np.int64)
    _parallel_sum(a)
    best = min(_timed(lambda: _parallel_sum(a)) for _ in range(5))
    return a.nbytes / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def decoded_truth(packed: mfs.Packed | mfs.Encoded, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top k by float64 cosine on the decoded vectors (ties by row), 65k rows at a time."""
    qn = q.astype(np.float64)
    qn /= np.linalg.norm(qn, axis=1, keepdims=True)
    best_v = np.full((q.shape[0], k), -np.inf)
    best_i = np.zeros((q.shape[0], k), np.int64)
    for a in range(0, packed.n, NUMPY_CHUNK):
        x = mfs.decode(packed[a : a + NUMPY_CHUNK]).astype(np.float64)
        nr = np.linalg.norm(x, axis=1)
        s = (qn @ x.T) / np.where(nr > 0, nr, 1.0)
        all_v = np.concatenate([best_v, s], 1)
        all_i = np.concatenate([best_i, np.broadcast_to(np.arange(a, a + x.shape[0]), s.shape)], 1)
        o = np.argsort(-all_v, axis=1, kind="stable")[:, :k]
        best_v = np.take_along_axis(all_v, o, 1)
        best_i = np.take_along_axis(all_i, o, 1)
    return best_i


def trial_scoring(x: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    """580,000 random pairs over the first 145,000 vectors with ``cosine_index_pairs``, every format."""
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

    return trial_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="threads for every method (0: the defaults)")
    ap.add_argument("--out", default="bench_search")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of single,batch10,batch100")
    ap.add_argument("--trial-rows", type=int, default=145_000)
    ap.add_argument("--trial-pairs", type=int, default=580_000)
    ap.add_argument("--trials", action="store_true", help="also time trial scoring")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true", help="no 1- and 2-thread table")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--queries-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.dim, args.k, args.queries_file)))
        return

    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    rows, dim, k = args.rows, args.dim, args.k
    info = machine()
    load_before = os.getloadavg()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, numba threads {info['numba_threads']}, "
        f"faiss {faiss.__version__} threads {faiss.omp_get_max_threads()}; load average {load_before[0]:.1f}"
    )
    bandwidth = memory_bandwidth()
    print(f"memory bandwidth (parallel numba sum over 1 GiB): {bandwidth:.1f} GB/s")
    x = np.empty((rows, dim), np.float32)
    for a, c in data_chunks(rows, dim):
        x[a : a + c.shape[0]] = c
    q = make_queries(x, args.queries)
    print(f"data: {rows} x {dim} float32, {args.queries} queries, top-{k}")

    # ---- build (timed once: not the subject, reported for context)
    names = ["numpy_f32", "faiss_Flat", *(f"faiss_{t}" for t in FAISS_TYPES), *(f"usearch_{t}" for t in USEARCH_TYPES)]
    names += [f"mfs_{f}" for f in SEARCH_FORMATS]
    names += [f"mfs_{el}_{sc}_cr" for el, sc in SEARCH_ENCODINGS]
    raw: dict[str, Any] = {}
    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    build_s: dict[str, float] = {}
    packed_of: dict[str, mfs.Packed] = {}
    held: dict[str, int] = {}
    bytes_per_query: dict[str, int] = {}
    for name in names:
        t0 = time.perf_counter()
        if name.endswith("_cr"):
            el, sc = name[4:-3].split("_")
            enc = mfs.Encoding(el, sc, "centre+rotate").fit(x[:100_000])
            packed = mfs.encode(x, enc)
            raw[name] = scoring.search_index(packed)
            packed_of[name] = packed
            fns[name] = searcher(name, raw[name], k, args.threads)
            mfs.search(packed[:5000], q, k)  # compile outside the timings
            held[name] = raw[name].nbytes
            # The scan reads codes, scales, the float32 norms and the exclusion mask.
            bytes_q = raw[name].nbytes + rows
        elif name.startswith("mfs_"):
            packed = mfs.encode(x, name[4:])
            index = scoring.search_index(packed)
            packed_of[name] = packed
            raw[name] = index
            fns[name] = searcher(name, index, k, args.threads)
            mfs.search(scoring.search_index(packed[:5000]), q, k)  # compile outside the timings
            held[name] = index.nbytes
            # The scan reads the codes and the exclusion mask (1 byte per row); norms come from the codes.
            bytes_q = packed.codes.nbytes + rows
        else:
            fns[name] = build(name, iter([(0, x)]), rows, dim, k, args.threads)
            if name.startswith("usearch_"):  # rebuilt per thread count in the scaling table
                raw[name] = build_usearch(name[len("usearch_") :], iter([(0, x)]), rows, dim)
            width = {"numpy_f32": 4, "faiss_Flat": 4, "faiss_QT_4bit": 0.5, "faiss_QT_8bit": 1, "faiss_QT_fp16": 2,
                     "usearch_i8": 1, "usearch_f16": 2}[name]  # fmt: skip
            held[name] = int(rows * dim * width)
            bytes_q = held[name]
        build_s[name] = time.perf_counter() - t0
        bytes_per_query[name] = int(bytes_q)
        gc.collect()

    # ---- timings
    results: dict[str, dict[str, Any]] = {n: {"method": n, "build_s": build_s[n], "held_mb": held[n] / 2**20,
                                              "bytes_per_query": bytes_per_query[n]} for n in names}  # fmt: skip
    modes = args.modes.split(",")
    for mode, (nq, per_call) in MODES.items():
        if mode not in modes:
            continue
        qq = q[:nq]
        print(f"{mode}: {nq} queries, {per_call} per call, {args.repeats} interleaved rounds ...")
        calls = {
            n: (lambda fn=fn, qq=qq, pc=per_call, m=nq: [fn(qq[i : i + pc]) for i in range(0, m, pc)])
            for n, fn in fns.items()
        }
        t = interleaved(calls, args.repeats)
        for n in names:
            qps = nq / t[n]["best_s"]
            results[n][f"{mode}_qps"] = qps
            results[n][f"{mode}_median_s"] = t[n]["median_s"]
            results[n][f"{mode}_bw_fraction"] = bytes_per_query[n] * qps / (bandwidth * 1e9)
            print(f"  {n:<16} {qps:9.1f} q/s   {results[n][f'{mode}_bw_fraction']:.2f} of bandwidth")

    # ---- batches of 100 on encoded 4-bit vectors: the fast scan against the BLAS
    # pre-selection that "auto" keeps for batches (what decides that choice).
    fast_vs_blas: dict[str, dict[str, float]] = {}
    if "batch100" in modes:
        qq = q[:100]
        pairs: dict[str, Callable[[], Any]] = {}
        for n in names:
            if n.endswith("_cr") and raw[n].packed.encoding.codebook.bits == 4:
                ix = raw[n]
                pairs[f"{n} fast"] = lambda ix=ix: mfs.search(ix, qq, k, method="fast")
                pairs[f"{n} blas"] = lambda ix=ix: mfs.search(ix, qq, k, method="blas")
        print("batch of 100, encoded 4-bit: fast scan and BLAS pre-selection ...")
        t = interleaved(pairs, args.repeats)
        for n in names:
            if f"{n} fast" in t:
                f, b = t[f"{n} fast"]["best_s"], t[f"{n} blas"]["best_s"]
                fast_vs_blas[n] = {"fast_qps": 100 / f, "blas_qps": 100 / b, "fast_time_over_blas": f / b}
                print(f"  {n:<22} fast {100 / f:7.1f} q/s  blas {100 / b:7.1f} q/s  (time {f / b:.2f}x)")

    # ---- thread scaling: the same functions with 1 and 2 threads, in the same process
    scaling: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
    if not args.skip_scaling:
        from threadpoolctl import threadpool_limits

        for c in THREAD_COUNTS:
            numba.set_num_threads(min(c, numba.config.NUMBA_NUM_THREADS))
            faiss.omp_set_num_threads(c)
            with threadpool_limits(limits=c):
                for mode in ("single", "batch100"):
                    nq, per_call = MODES[mode]
                    qq = q[:nq]
                    calls = {}
                    for n, fn in fns.items():
                        if n.startswith("usearch_"):
                            fn = searcher(n, raw[n], k, c)
                        calls[n] = lambda fn=fn, qq=qq, pc=per_call, m=nq: [fn(qq[i : i + pc]) for i in range(0, m, pc)]
                    print(f"threads {c}, {mode} ...")
                    t = interleaved(calls, 1)
                    for n in names:
                        scaling[n].setdefault(str(c), {})[f"{mode}_qps"] = nq / t[n]["best_s"]
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        faiss.omp_set_num_threads(args.threads or os.cpu_count() or 1)
        for n in names:
            results[n]["threads_qps"] = scaling[n]
            print(f"  {n:<22} " + "  ".join(
                f"{c}t: {scaling[n][str(c)]['single_qps']:.1f} / {scaling[n][str(c)]['batch100_qps']:.1f} q/s"
                for c in THREAD_COUNTS))  # fmt: skip

    # ---- recall@10
    truth_f32 = fns["numpy_f32"](q)
    for n in names:
        if n.startswith("mfs_"):
            results[n]["recall_vs"] = "exact float64 on decoded vectors"
            results[n]["recall_at_k"] = recall(fns[n](q), decoded_truth(packed_of[n], q, k))
            results[n]["recall_at_k_vs_float32"] = recall(fns[n](q), truth_f32)
        else:
            results[n]["recall_vs"] = "exact float32"
            results[n]["recall_at_k"] = recall(fns[n](q), truth_f32)

    # ---- memory in fresh processes
    if not args.skip_memory:
        for name, m in measure_memory(names, rows, dim, k, q).items():
            results[name].update(m)
    trial_rows = trial_scoring(x, args) if args.trials else []

    # ---- report
    print(
        f"\n{'method':<16} {'1-by-1 q/s':>10} {'x10 q/s':>9} {'x100 q/s':>9} {'bw frac':>7} {'MB/query':>9} "
        f"{'held MB':>8} {'recall':>7}"
    )
    for n in names:
        r = results[n]
        print(
            f"{n:<16} {r['single_qps']:>10.1f} {r.get('batch10_qps', np.nan):>9.1f} "
            f"{r.get('batch100_qps', np.nan):>9.1f} "
            f"{r['single_bw_fraction']:>7.2f} {r['bytes_per_query'] / 1e6:>9.1f} {r['held_mb']:>8.1f} "
            f"{r['recall_at_k']:>7.3f}"
        )
    peers = [n for n in names if not n.startswith("mfs_")]
    fastest = max(peers, key=lambda n: results[n]["single_qps"])
    e2 = results["mfs_e2m1"]
    targets = {
        "fastest_peer_single": fastest,
        "e2m1_single_qps_over_fastest_peer": e2["single_qps"] / results[fastest]["single_qps"],
        "e2m1_recall_at_10_vs_decoded": e2["recall_at_k"],
        "float32_bytes_over_e2m1_index_bytes": rows * dim * 4 / held["mfs_e2m1"],
    }
    met = {
        "e2m1 one-by-one >= 1.5x the fastest peer": targets["e2m1_single_qps_over_fastest_peer"] >= 1.5,
        "e2m1 recall@10 = 1.0 vs decoded": targets["e2m1_recall_at_10_vs_decoded"] == 1.0,
        "e2m1 search state >= 7.5x smaller than float32": targets["float32_bytes_over_e2m1_index_bytes"] >= 7.5,
    }
    for key, v in targets.items():
        print(f"{key}: {v if isinstance(v, str) else round(v, 3)}")
    for key, v in met.items():
        print(f"target {key}: {'met' if v else 'NOT met'}")
    load_after = os.getloadavg()
    path = save(
        args.out,
        {
            "rows": rows,
            "dim": dim,
            "queries": args.queries,
            "k": k,
            "repeats": args.repeats,
            "threads": args.threads,
            "memory_bandwidth_gb_s": bandwidth,
            "faiss": {"version": faiss.__version__, "omp_threads": faiss.omp_get_max_threads()},
            "blas_min_queries": scoring.BLAS_MIN_QUERIES,
            "load_average_before_after": [load_before[0], load_after[0]],
            "search": list(results.values()),
            "trial_scoring": {"rows": args.trial_rows, "pairs": args.trial_pairs, "results": trial_rows},
            "targets": targets,
            "targets_met": met,
            "batch100_fast_vs_blas": fast_vs_blas,
        },
    )
    print(f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}; wrote {path}")


if __name__ == "__main__":
    main()
