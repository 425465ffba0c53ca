"""Speed of the composable encodings: encode/decode GB/s with centre+rotate, and search time against e2m1.

Same data, same process: Gaussian vectors with a per-dimension offset and
spread (so centring has work to do), n x d float32. Baseline: the study's
e2m1 with the per-vector scale (``mfs.encode(x, "e2m1")``), measured in the
same run. Targets (issue 10): encode with centre+rotate >= 1 GB/s of float32
on 2 cores; every 4-bit encoding searches within 1.25x of e2m1's time.

Where encode time goes: nf4 and e2m1 with scale "vector" encoded with each
transform (none, centre, rotate, centre+rotate) in the same run; the
differences are the cost of the mean subtraction and of the rotation.

Search, with the default ``method="auto"`` (4-bit codes: the fast scan with
exact rescoring, see docs/performance.md), the baseline too: ``--rounds``
rounds of ``--queries`` single queries, and ``--repeats`` rounds of one batch
of ``--batch`` queries; in each round every method runs once in turn (so a
burst of load on a shared machine hits all alike). Reported: each method's
best round (time per query for single queries) over e2m1's best, and the
spread, min-max over rounds of the method's time over e2m1's in the same
round. ``--threads`` sets numba's.

    python benchmarks/bench_encoding.py [--rows 1000000] [--dim 192] [--repeats 3] [--queries 20] [--rounds 7]
        [--no-search]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of, interleaved_rounds, machine, save  # noqa: E402

import minifloat_store as mfs  # noqa: E402

CODEC = [
    ("e2m1", "vector"), ("e2m1", "block32"), ("e2m1", "block16"), ("nf4", "vector"), ("int4", "vector"),
    ("int4", "block32"), ("nf3", "vector"), ("int3", "vector"), ("int8", "vector"), ("e4m3", "vector"),
    ("nf2", "vector"), ("binary", "vector"),
]  # fmt: skip
SEARCH_4BIT = [("e2m1", "vector"), ("e2m1", "block32"), ("e2m1", "block16"), ("nf4", "vector"),
               ("nf4", "block32"), ("int4", "vector"), ("int4", "block16")]  # fmt: skip


def round_ratios(times: list[float], base: list[float]) -> list[float]:
    """(min, max) over rounds of a method's time over the baseline's in the same round."""
    r = [t / b for t, b in zip(times, base, strict=True)]
    return [min(r), max(r)]


def _span(r: list[float]) -> str:
    return f"{r[0]:.2f}-{r[1]:.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queries", type=int, default=20, help="single queries per round")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of single queries")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--out", default="bench_encoding")
    ap.add_argument("--threads", type=int, default=0, help="numba threads (0: all cores)")
    ap.add_argument("--no-search", action="store_true", help="encode/decode only (skip the search timings)")
    args = ap.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    d = args.dim
    x = rng.standard_normal((args.rows, d), dtype=np.float32)
    x *= rng.gamma(1.0, 1.0, d).astype(np.float32)
    x += rng.standard_normal(d).astype(np.float32)
    gb = x.nbytes / 1e9
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores (shared: timings are noisy); data {args.rows} x {d} float32")
    out = np.empty_like(x)

    base = mfs.encode(x, "e2m1")
    t_enc0 = best_of(lambda: mfs.encode(x, "e2m1"), args.repeats)
    t_dec0 = best_of(lambda: mfs.decode(base, out=out), args.repeats)
    print(f"\nbaseline e2m1/vector (no transform): encode {gb / t_enc0:.2f} GB/s, decode {gb / t_dec0:.2f} GB/s")
    print(f"{'encoding (centre+rotate)':<26} {'bits/value':>10} {'encode GB/s':>11} {'vs e2m1':>8} "
          f"{'decode GB/s':>11} {'vs e2m1':>8}")  # fmt: skip
    codec_rows = []
    for el, sc in CODEC:
        enc = mfs.Encoding(el, sc, "centre+rotate").fit(x[:10_000])
        packed = mfs.encode(x, enc)
        t_enc = best_of(partial(mfs.encode, x, enc), args.repeats)
        t_dec = best_of(partial(mfs.decode, packed, out=out), args.repeats)
        row = {"element": el, "scale": sc, "bits_per_value": enc.bits_per_value(d),
               "encode_gbps": gb / t_enc, "decode_gbps": gb / t_dec,
               "encode_vs_e2m1": t_enc0 / t_enc, "decode_vs_e2m1": t_dec0 / t_dec}  # fmt: skip
        codec_rows.append(row)
        print(f"{el + '/' + sc:<26} {row['bits_per_value']:>10.3f} {row['encode_gbps']:>11.2f} "
              f"{row['encode_vs_e2m1']:>7.2f}x {row['decode_gbps']:>11.2f} {row['decode_vs_e2m1']:>7.2f}x")  # fmt: skip

    print("\nwhere encode time goes (scale vector): GB/s by transform")
    breakdown = []
    for el in ("e2m1", "nf4"):
        row = {"element": el}
        for tr in ("none", "centre", "rotate", "centre+rotate"):
            enc = mfs.Encoding(el, "vector", tr).fit(x[:10_000])
            row[tr] = gb / best_of(partial(mfs.encode, x, enc), args.repeats)
        breakdown.append(row)
        print(f"{el:<6} " + "  ".join(f"{tr} {row[tr]:.2f}" for tr in ("none", "centre", "rotate", "centre+rotate")))

    result = {"rows": args.rows, "dim": d, "repeats": args.repeats, "threads": numba.get_num_threads(),
              "encode_by_transform_gbps": breakdown, "codec": codec_rows,
              "baseline": {"encode_gbps": gb / t_enc0, "decode_gbps": gb / t_dec0}}  # fmt: skip
    if args.no_search:
        print(f"\nwrote {save(args.out, result)}")
        return
    queries = x[rng.choice(args.rows, args.batch, replace=False)] + rng.standard_normal((args.batch, d)).astype(
        np.float32
    )
    # Every method's arrays first, then the timings, round by round.
    methods: dict[str, tuple] = {"e2m1": (base, mfs.vector_norms(base))}
    for el, sc in SEARCH_4BIT:
        enc_p = mfs.encode(x, mfs.Encoding(el, sc, "centre+rotate").fit(x[:10_000]))
        methods[f"{el}/{sc}"] = (enc_p, mfs.vector_norms(enc_p))

    def singles(p, nr) -> None:
        for q in queries[: args.queries]:
            mfs.search(p, q, k=10, norms=nr)

    def one_batch(p, nr) -> None:
        mfs.search(p, queries, k=10, norms=nr)

    one = interleaved_rounds({name: partial(singles, *m) for name, m in methods.items()}, args.rounds)
    batch = interleaved_rounds({name: partial(one_batch, *m) for name, m in methods.items()}, args.repeats)
    per_query = {name: [t / args.queries for t in ts] for name, ts in one.items()}
    t_one0, t_batch0 = min(per_query["e2m1"]), min(batch["e2m1"])
    print(f"\nsearch, k=10: {args.queries} single queries per round, {args.rounds} rounds and {args.repeats} batch "
          f"rounds, every method once per round in turn; best round per method; spread: the ratio of each "
          f"round to e2m1's time in the same round, min-max")  # fmt: skip
    print(f"baseline e2m1/vector (no transform): one query {1e3 * t_one0:.1f} ms, "
          f"{args.batch} queries {1e3 * t_batch0:.0f} ms")  # fmt: skip
    print(f"{'4-bit encoding (centre+rotate)':<32} {'one query ms':>12} {'vs e2m1':>8} {'spread':>11} "
          f"{'batch ms':>9} {'vs e2m1':>8} {'spread':>11}")  # fmt: skip
    search_rows = []
    for el, sc in SEARCH_4BIT:
        name = f"{el}/{sc}"
        t_one, t_batch = min(per_query[name]), min(batch[name])
        one_spread = round_ratios(per_query[name], per_query["e2m1"])
        batch_spread = round_ratios(batch[name], batch["e2m1"])
        row = {"element": el, "scale": sc, "one_query_s": t_one, "batch_s": t_batch,
               "one_vs_e2m1": t_one / t_one0, "batch_vs_e2m1": t_batch / t_batch0,
               "one_vs_e2m1_rounds": one_spread, "batch_vs_e2m1_rounds": batch_spread,
               "one_query_rounds_s": per_query[name], "batch_rounds_s": batch[name]}  # fmt: skip
        search_rows.append(row)
        print(f"{name:<32} {1e3 * t_one:>12.1f} {row['one_vs_e2m1']:>7.2f}x {_span(one_spread):>11} "
              f"{1e3 * t_batch:>9.0f} {row['batch_vs_e2m1']:>7.2f}x {_span(batch_spread):>11}")  # fmt: skip
    result["baseline"].update(one_query_s=t_one0, batch_s=t_batch0, one_query_rounds_s=per_query["e2m1"],
                              batch_rounds_s=batch["e2m1"])  # fmt: skip
    result.update(search_method="auto", search=search_rows, queries=args.queries, rounds=args.rounds)
    print(f"\nwrote {save(args.out, result)}")


if __name__ == "__main__":
    main()
