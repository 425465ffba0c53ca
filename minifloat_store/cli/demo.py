"""``minifloat-store demo``: the whole pipeline on a synthetic corpus, nothing to download."""

from __future__ import annotations

import argparse

from minifloat_store.choose import CANDIDATES
from minifloat_store.eval.baselines import DEMO_BASELINES, faiss_available
from minifloat_store.eval.data.synthetic import PROFILES
from minifloat_store.eval.pipelines.demo import run_demo
from minifloat_store.eval.pipelines.real_voices import run_real_voices
from minifloat_store.eval.report import fidelity_text, summary_text


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate a synthetic speaker corpus, store it, convert it and write the full report",
        description=(
            "Generate a Vox1-O-sized synthetic speaker corpus per profile (a final-BatchNorm network "
            "and a network without normalisation), store it as float32, convert it to packed stores and "
            "write the storage-vs-accuracy report for every format and scale mode, with the fidelity "
            "table (score error, flipped decisions, ΔEER of every encoding and FAISS baseline) and the "
            "Pareto chart. The data is synthetic. With --real-voices: the same report on Resemblyzer "
            "embeddings of real recorded voices (Debian's ktuberling-data and klettres-data), offline."
        ),
    )
    p.add_argument(
        "--real-voices",
        action="store_true",
        help="run on real speech instead: Resemblyzer over the voices of Debian's ktuberling-data and "
        "klettres-data (apt-get install ktuberling-data klettres-data; pip install resemblyzer and the "
        "models extra); writes OUT/real-voices/",
    )
    p.add_argument(
        "--utterances-per-voice",
        type=int,
        default=None,
        help="with --real-voices: utterances per voice (default all, about 20)",
    )
    p.add_argument("--voices", type=int, default=None, help="with --real-voices: the first N voices (default all)")
    p.add_argument("--n-boot", type=int, default=100, help="bootstrap resamples of the ΔEER intervals (default 100)")
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
    if args.n_boot < 1:
        raise ValueError(f"--n-boot must be at least 1, got {args.n_boot}")
    if args.real_voices:
        baselines = DEMO_BASELINES if faiss_available() else ()
        if not baselines:
            print("FAISS is not installed (pip install 'minifloat-store[bench]'): no baselines in the fidelity table")
        result = run_real_voices(
            args.out,
            utterances_per_voice=args.utterances_per_voice,
            max_voices=args.voices,
            encodings=CANDIDATES,
            baselines=baselines,
            n_boot=args.n_boot,
            seed=args.seed,
            progress=not args.no_progress,
        )
        print(
            f"\n{result.n_trials:,} trials ({result.n_targets:,} target) over {result.n_embeddings:,} "
            f"Resemblyzer embeddings of real voices"
        )
        print(summary_text(result, focus=("e2m1",)))
        print("\nFidelity against float32 (flips: % of trials whose decision changes; ΔEER in points, 95 % interval):")
        print(fidelity_text(result))
        return 0
    if args.utterances_per_voice is not None or args.voices is not None:
        raise ValueError("--utterances-per-voice and --voices go with --real-voices")
    profiles = [s.strip() for s in args.profiles.split(",") if s.strip()]
    if not profiles:
        raise ValueError("--profiles is empty; give at least one of " + ", ".join(PROFILES))
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        raise ValueError(f"unknown profile(s) {', '.join(unknown)}; known: {', '.join(PROFILES)}")
    run_demo(args.out, seed=args.seed, profiles=profiles, progress=not args.no_progress, n_boot=args.n_boot)
    return 0
