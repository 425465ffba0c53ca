"""``minifloat-store demo``: the whole pipeline on a synthetic corpus, nothing to download."""

from __future__ import annotations

import argparse

from minifloat_store.eval.data.synthetic import PROFILES
from minifloat_store.eval.pipelines.demo import run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate a synthetic speaker corpus, store it, convert it and write the full report",
        description=(
            "Generate a Vox1-O-sized synthetic speaker corpus per profile (a final-BatchNorm network "
            "and a network without normalisation), store it as float32, convert it to packed stores and "
            "write the storage-vs-accuracy report for every format and scale mode. The data is synthetic."
        ),
    )
    p.add_argument("--out", default="minifloat-demo", help="output folder (default ./minifloat-demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpora (default 0)")
    p.add_argument(
        "--profiles",
        default=",".join(PROFILES),
        help=f"comma-separated profiles to run (default {','.join(PROFILES)})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    profiles = [s.strip() for s in args.profiles.split(",") if s.strip()]
    if not profiles:
        raise ValueError("--profiles is empty; give at least one of " + ", ".join(PROFILES))
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        raise ValueError(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    run_demo(args.out, seed=args.seed, profiles=profiles, progress=not args.no_progress)
    return 0
