"""Where search(method="auto") should switch from the fast scan to the BLAS path: both timed per batch size.

On bench_search.py's data (1,000,000 x 192, the same seeded chunks; the
largest batch of queries drawn as it draws its 100), for each kind of
fast-scan kernel (plan "simd4": 4-bit codes in int8 registers; "wide": 8-
and 16-bit codes, and Encoded codes of other widths, in float32 registers),
``mfs.search(index, queries[:b], k=10, method=m)`` with m = "fast" and
"blas", for batches b of ``--batches`` queries, through a ``search_index``
as the store searches (a packed index holds no norms: its BLAS path
computes them, one more pass per call).
Timing: one warm-up round, then ``--repeats`` rounds in which every
(method, batch, path) runs once in turn; best per entry. Printed: the fast
scan's time over the BLAS path's, per batch (below 1: fast wins), and the
smallest batch from which BLAS won, against the threshold ``auto`` uses
(``scoring.BLAS_MIN_QUERIES_SIMD4`` / ``BLAS_MIN_QUERIES_WIDE``).

    python benchmarks/bench_search_crossover.py [--rows 1000000] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from pathlib import Path

if "--threads" in sys.argv:  # before numpy/numba read them
    _t = sys.argv[sys.argv.index("--threads") + 1]
    for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_v] = _t

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _common import interleaved_rounds, machine, save  # noqa: E402
from _search_methods import data_chunks, make_queries  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store import scoring  # noqa: E402
from minifloat_store.encoded_fast_scan import encoded_fast_plan  # noqa: E402
from minifloat_store.fast_search import _fast_plan  # noqa: E402

#: (name, format or (element, scale) of an Encoding with centre+rotate)
METHODS: tuple[tuple[str, str | tuple[str, str]], ...] = (
    ("e2m1", "e2m1"),
    ("e4m3", "e4m3"),
    ("fp16", "fp16"),
    ("nf4/vector", ("nf4", "vector")),
    ("e2m1/block32", ("e2m1", "block32")),
    ("int8/vector", ("int8", "vector")),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 20, 40, 100, 200])
    ap.add_argument("--threads", type=int, default=0, help="numba and BLAS threads (0: all cores)")
    ap.add_argument("--out", default="bench_search_crossover")
    args = ap.parse_args()

    x = np.concatenate([c for _, c in data_chunks(args.rows, args.dim)])
    queries = make_queries(x, max(args.batches))
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, numba threads {numba.get_num_threads()}; "
          f"data {args.rows} x {args.dim} float32")  # fmt: skip
    indexes, plans = {}, {}
    for name, what in METHODS:
        if isinstance(what, str):
            packed = mfs.encode(x, what)
            plans[name] = _fast_plan(packed.fmt, packed.dim)
        else:
            packed = mfs.encode(x, mfs.Encoding(*what, "centre+rotate").fit(x[:100_000]))
            plans[name] = encoded_fast_plan(packed, 10)
        indexes[name] = scoring.search_index(packed)
    del x

    def run(name: str, b: int, path: str) -> None:
        mfs.search(indexes[name], queries[:b], k=10, method=path)

    fns = {(n, b, p): partial(run, n, b, p) for n, _ in METHODS for b in args.batches for p in ("fast", "blas")}
    times = interleaved_rounds(fns, args.repeats)  # type: ignore[arg-type]

    thresholds = {"simd4": scoring.BLAS_MIN_QUERIES_SIMD4, "wide": scoring.BLAS_MIN_QUERIES_WIDE}
    print(f"\nfast scan time / BLAS path time, best of {args.repeats} rounds (below 1: the fast scan wins)")
    print(f"{'method':<14} {'plan':<6} " + " ".join(f"{b:>6}" for b in args.batches)
          + f" {'BLAS from':>10} {'auto from':>10}")  # fmt: skip
    rows = []
    for name, _ in METHODS:
        plan = plans[name]
        fast = {b: min(times[(name, b, "fast")]) for b in args.batches}
        blas = {b: min(times[(name, b, "blas")]) for b in args.batches}
        ratio = {b: fast[b] / blas[b] for b in args.batches}
        wins = [b for b in args.batches if ratio[b] > 1.0]
        row = {"method": name, "plan": plan, "fast_s": fast, "blas_s": blas, "fast_over_blas": ratio,
               "blas_wins_from": wins[0] if wins else None, "auto_blas_from": thresholds.get(plan or "")}  # fmt: skip
        rows.append(row)
        first = "-" if not wins else str(wins[0])
        print(f"{name:<14} {plan or '-':<6} " + " ".join(f"{ratio[b]:>6.2f}" for b in args.batches)
              + f" {first:>10} {row['auto_blas_from'] or '-':>10}")  # fmt: skip
    result = {"rows": args.rows, "dim": args.dim, "repeats": args.repeats, "batches": args.batches,
              "threads": numba.get_num_threads(), "k": 10, "methods": rows}  # fmt: skip
    print(f"\nwrote {save(args.out, result)}")


if __name__ == "__main__":
    main()
