"""``minifloat-store recommend STORE``: the smallest encoding whose decisions stay those of float32."""

from __future__ import annotations

import argparse
import json

import numpy as np

from minifloat_store.choose import CANDIDATES, recommend
from minifloat_store.eval.trials import read_trials
from minifloat_store.store import EmbeddingStore


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recommend",
        help="the smallest encoding whose accept/reject decisions stay those of float32",
        description=(
            "Fit every candidate encoding on the float32 vectors of STORE (or the first --sample of them), "
            "count the decisions it flips against float32 and print the table and the smallest encoding "
            "within --max-flips. With --trials, flips are counted over the trials at their float32 EER "
            "threshold (or at --threshold); without, at --threshold over each vector and its 10 nearest "
            "neighbours. A trial is accepted when score >= threshold."
        ),
    )
    p.add_argument("store", metavar="STORE", help="a float32 store (fmt fp32)")
    p.add_argument("--trials", default=None, help="trial list over the store's ids (VoxCeleb or Kaldi format)")
    p.add_argument("--threshold", type=float, default=None, help="the operating cosine threshold")
    p.add_argument(
        "--max-flips",
        type=float,
        default=0.5,
        help="tolerated flipped decisions, in percent of the pairs (default 0.5)",
    )
    p.add_argument(
        "--sample",
        type=int,
        default=5000,
        help="without --trials: the first N vectors (default 5000; the neighbour search costs N**2 x dim); "
        "with --trials: every vector the trials use",
    )
    p.add_argument(
        "--candidates",
        nargs="+",
        metavar="ENC",
        default=list(CANDIDATES),
        help="encodings to try, ELEMENT[/SCALE[/TRANSFORM]] (default: " + " ".join(CANDIDATES) + ")",
    )
    p.add_argument("--json", action="store_true", help="print the table and the choice as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.trials is None and args.threshold is None:
        raise ValueError("give --trials FILE (flips at its float32 EER threshold) or --threshold T")
    if not 0.0 <= args.max_flips < 100.0:
        raise ValueError(f"--max-flips is a percentage in [0, 100), got {args.max_flips}")
    with EmbeddingStore.open(args.store, mode="r") as store:
        if store.fmt is None or not store.fmt.is_identity:
            raise ValueError(
                f"{args.store} is stored as {store.encoding.element}; recommend needs the float32 vectors "
                "(re-encoding rounded values would hide the loss)"
            )
        ids = list(store.ids)
        if args.trials is not None:
            x = store.to_numpy()
        else:
            if args.sample < 2:
                raise ValueError(f"--sample must be at least 2, got {args.sample}")
            ids = ids[: args.sample]
            x = store.get(ids)
    trials = None
    if args.trials is not None:
        t = read_trials(args.trials)
        left, right = t.index_pairs(ids)
        # Only the vectors the trials use form the sample: the encodings are fitted on them.
        used, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
        x = x[used]
        trials = (inverse[: left.size], inverse[left.size :], np.asarray(t.labels))
    rec = recommend(x, trials, args.threshold, args.max_flips / 100.0, candidates=args.candidates)
    if args.json:
        doc = {
            "recommended": rec.name,
            "encoding": rec.encoding.get_config(),
            "threshold": rec.threshold,
            "threshold_note": rec.threshold_note,
            "pairs": rec.pairs,
            "n_pairs": rec.n_pairs,
            "near_threshold": rec.near_threshold,
            "max_flips_pct": 100 * rec.max_flips,
            "table": [
                {
                    "name": c.name,
                    "bits_per_value": c.bits_per_value,
                    "rms_score_error": c.rms_score_error,
                    "flips_pct": 100 * c.flips,
                    "accepted": c.accepted,
                }
                for c in rec.table
            ],
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"{x.shape[0]:,} vectors of {x.shape[1]} values from {args.store}")
        print(rec.to_text())
        print(f"\nRecommended: {rec.name} ({rec.encoding.bits_per_value(x.shape[1]):.3f} bits/value)")
        e = rec.encoding
        print(
            f"  in Python: enc = mfs.Encoding({e.element!r}, {e.scale!r}, {e.transform!r}, seed={e.seed}).fit(sample); "
            "packed = mfs.encode(x, enc)"
        )
    return 0
