"""``minifloat-store bench``: the storage-vs-accuracy report of a float32 store on a trial list."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minifloat_store.choose import CANDIDATES, parse_encoding
from minifloat_store.codec import SCALE_MODES
from minifloat_store.eval.baselines import DEFAULT_BASELINES, faiss_available
from minifloat_store.eval.report import STUDY_ORDER, fidelity_text, run_report, summary_text, write_report
from minifloat_store.eval.trials import read_trials
from minifloat_store.store import EmbeddingStore


def _names(text: str, what: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ValueError(f"{what} is empty")
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench",
        help="report EER, FAR/FRR, minDCF and storage of every format on a trial list",
        description=(
            "Quantise the embeddings of a float32 store to every format and scale mode, score the "
            "trials by cosine similarity and write report.md, results.csv, results.json and PNG "
            "figures to --out. A fidelity table (fidelity.csv, in report.md and results.json, printed) "
            "gives, for every format, every --encodings entry and every --baselines quantiser: stored "
            "bits/value, RMS of the cosine-score error against float32, the fraction of trials whose "
            "decision flips at the float32 EER threshold and at --threshold, and ΔEER with a paired "
            "bootstrap 95 % interval; pareto.png draws bits against error and flips. Rates are in "
            "percent in the files; a trial is accepted when score >= threshold."
        ),
    )
    p.add_argument("store", help="a float32 embedding store (EmbeddingStore, fmt fp32)")
    p.add_argument("--trials", required=True, help="trial list, VoxCeleb ('1 enroll test') or Kaldi format")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="fixed cosine threshold of the model (e.g. 0.86 for WavLM-sv); FAR/FRR are also "
        "reported at the float32 EER threshold",
    )
    p.add_argument(
        "--formats",
        default=",".join(STUDY_ORDER),
        help="comma-separated formats (default all; float32 is always included)",
    )
    p.add_argument("--scales", default=",".join(SCALE_MODES), help="comma-separated scale modes (default none,vector)")
    p.add_argument(
        "--encodings",
        nargs="*",
        metavar="ENC",
        default=None,
        help="encodings for the fidelity table beside the study's formats, each ELEMENT[/SCALE[/TRANSFORM]] "
        "(e.g. e2m1/vector nf4/vector/centre+rotate int8/vector; scale defaults to vector, transform to "
        "none); default: the recommend candidates, " + " ".join(CANDIDATES) + " (study formats are measured "
        "once); --encodings with no value: the study's formats alone",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="add FAISS quantisers (" + ", ".join(DEFAULT_BASELINES) + "; needs faiss-cpu, the bench extra), "
        "each trained on the half of the embeddings it does not encode",
    )
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of the ΔEER interval (default 200)")
    p.add_argument("--figure-formats", default="e2m1", help="formats drawn against float32 in the FAR/FRR figures")
    p.add_argument("--title", default=None, help="report title (default: the store's name)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures (no matplotlib needed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    formats = _names(args.formats, "--formats")
    scales = _names(args.scales, "--scales")
    figure_formats = _names(args.figure_formats, "--figure-formats")
    encodings = list(CANDIDATES) if args.encodings is None else args.encodings
    for e in encodings:
        parse_encoding(e)  # a typo fails before the store is read
    if args.baselines and not faiss_available():
        raise ValueError("--baselines needs FAISS: pip install 'minifloat-store[bench]' (faiss-cpu)")
    if args.n_boot < 1:
        raise ValueError(f"--n-boot must be at least 1, got {args.n_boot}")
    store_path = Path(args.store)
    if not store_path.exists():
        raise FileNotFoundError(f"store {store_path} does not exist")
    trials = read_trials(args.trials)
    with EmbeddingStore.open(store_path, mode="r") as store:
        if store.fmt is None or not store.fmt.is_identity:
            raise ValueError(
                f"{store_path} is stored as {store.encoding.element}; bench needs the float32 embeddings as the "
                "reference (re-quantising rounded values would hide the loss). Run it on the float32 store."
            )
        ids = store.ids
        x = store.to_numpy()
    result = run_report(
        x,
        ids,
        trials,
        formats=formats,
        scales=scales,
        threshold=args.threshold,
        title=args.title or f"Minifloat storage report: {store_path.name}",
        progress=not args.no_progress,
        encodings=encodings,
        baselines=DEFAULT_BASELINES if args.baselines else (),
        n_boot=args.n_boot,
    )
    result = write_report(result, args.out, figure_formats=figure_formats, figures=not args.no_figures)
    print(
        f"{len(trials):,} trials ({trials.n_targets:,} target) over {result.n_embeddings:,} embeddings "
        f"of {result.dim} values from {store_path}"
    )
    print(summary_text(result, focus=figure_formats))
    print("\nFidelity against float32 (flips: % of trials whose decision changes; ΔEER in points, 95 % interval):")
    print(fidelity_text(result))
    print(f"Wrote {len(result.files)} files to {args.out}/ in {time.perf_counter() - t0:.1f} s")
    return 0
