"""The storage-vs-accuracy report on your own embeddings and trial list.

What it shows: before moving a speaker database to minifloats, measure what each
format does to verification on your data. For every format and scale mode the
embeddings are quantised, every trial is scored by cosine, and the report gives
EER (with its threshold), FAR/FRR at your threshold and at the float32 EER
threshold, minDCF and bytes per vector. It writes ``report.md``, ``results.csv``,
``results.json`` (and PNG figures) to ``--out`` and names the smallest format
whose EER stays within ``--max-eer-increase`` of float32.

Run it on your own data::

    python examples/accuracy_report.py --embeddings emb.npy --ids ids.txt \\
        --trials trials.txt --out report/ --threshold 0.5

``emb.npy``: float32 of shape (n, dim); ``ids.txt``: the utterance id of each row,
one per line; ``trials.txt``: VoxCeleb (``1 enroll_id test_id``) or Kaldi
(``enroll_id test_id target``) format. ``--embeddings`` may also be a float32
EmbeddingStore (then ``--ids`` is not needed). Or on synthetic speakers, whose
input files it writes to ``--out`` first so you can see their form::

    python examples/accuracy_report.py --demo --out report/ --no-figures
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from minifloat_store import EmbeddingStore
from minifloat_store.eval.report import STUDY_ORDER, ReportResult, run_report, summary_text, write_report
from minifloat_store.eval.trials import read_trials


def write_demo_inputs(out: Path, n_speakers: int = 60, per_speaker: int = 8, dim: int = 192, seed: int = 0) -> None:
    """Synthetic embeddings, their ids and a trial list, in the forms the script reads.

    A speaker is a random direction and an utterance that direction plus noise; the
    trial list pairs every utterance with one of the same speaker and one of another.
    """
    rng = np.random.default_rng(seed)
    voices = rng.standard_normal((n_speakers, dim))
    utt_speaker = np.repeat(np.arange(n_speakers), per_speaker)
    x = (voices[utt_speaker] + 1.6 * rng.standard_normal((len(utt_speaker), dim))).astype(np.float32)
    ids = [f"spk{s:03d}/utt{i % per_speaker}.wav" for i, s in enumerate(utt_speaker)]
    lines = []
    for i, s in enumerate(utt_speaker):
        same = s * per_speaker + (i + 1) % per_speaker
        other = int(rng.choice(np.flatnonzero(utt_speaker != s)))
        lines += [f"1 {ids[i]} {ids[same]}", f"0 {ids[i]} {ids[other]}"]
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "demo-embeddings.npy", x)
    (out / "demo-ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    (out / "demo-trials.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_embeddings(path: Path, ids_path: Path | None) -> tuple[np.ndarray, list[str]]:
    """(n, dim) float32 and the n ids, from a ``.npy`` plus an ids file, or from a float32 store."""
    if path.suffix == ".npy":
        if ids_path is None:
            raise SystemExit("--ids is needed with a .npy file of embeddings")
        x = np.load(path, allow_pickle=False)  # never unpickle a file from elsewhere
        ids = [line.strip() for line in ids_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return x, ids
    with EmbeddingStore.open(path, mode="r") as store:
        if store.fmt is None or not store.fmt.is_identity:
            raise SystemExit(f"{path} holds {store.encoding.element}; the report needs the float32 embeddings")
        return store.to_numpy(), store.ids


def smallest_within(result: ReportResult, max_increase: float) -> tuple[str, str, int] | None:
    """The (format, scale, bytes per vector) with the fewest bytes whose EER is within ``max_increase`` (fraction)."""
    ok = [r for r in result.rows if r.eer - result.reference.eer <= max_increase]
    best = min(ok, key=lambda r: (r.bytes_per_vector, r.eer), default=None)
    return None if best is None else (best.format, best.scale, best.bytes_per_vector)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embeddings", type=Path, help="float32 .npy of shape (n, dim), or a float32 EmbeddingStore")
    ap.add_argument("--ids", type=Path, help="text file: the utterance id of each row of a .npy, one per line")
    ap.add_argument("--trials", type=Path, help="trial list, VoxCeleb or Kaldi format")
    ap.add_argument("--out", type=Path, required=True, help="folder for report.md, results.csv, results.json")
    ap.add_argument("--demo", action="store_true", help="write synthetic inputs to --out and report on them")
    ap.add_argument("--formats", default=",".join(STUDY_ORDER), help="comma-separated formats (default: all)")
    ap.add_argument("--scales", default="none,vector", help="comma-separated scale modes (default none,vector)")
    ap.add_argument("--threshold", type=float, help="your model's accept threshold (cosine; accept when >=)")
    ap.add_argument(
        "--max-eer-increase", type=float, default=0.1, help="in percentage points over float32 (default 0.1)"
    )
    ap.add_argument("--no-figures", action="store_true", help="skip the PNG figures (no matplotlib needed)")
    args = ap.parse_args(argv)

    if args.demo:
        write_demo_inputs(args.out)
        args.embeddings = args.out / "demo-embeddings.npy"
        args.ids = args.out / "demo-ids.txt"
        args.trials = args.out / "demo-trials.txt"
    elif args.embeddings is None or args.trials is None:
        ap.error("give --demo, or --embeddings (and --ids for a .npy) and --trials")

    x, ids = load_embeddings(args.embeddings, args.ids)
    trials = read_trials(args.trials)
    result = run_report(
        x,
        ids,
        trials,
        formats=[f for f in args.formats.split(",") if f],
        scales=[s for s in args.scales.split(",") if s],
        threshold=args.threshold,
        title=f"Storage vs accuracy: {args.embeddings.name}",
        notes=("Synthetic speakers made by examples/accuracy_report.py --demo.",) if args.demo else (),
        progress=False,
    )
    result = write_report(result, args.out, figures=not args.no_figures)

    print(f"{len(trials):,} trials ({trials.n_targets:,} target) over {result.n_embeddings:,} embeddings")
    print(summary_text(result, focus=result.formats))
    pick = smallest_within(result, args.max_eer_increase / 100)
    if pick is not None:
        fmt, scale, nbytes = pick
        print(
            f"smallest within {args.max_eer_increase} points of float32 EER: {fmt} / scale={scale}, "
            f"{nbytes} B/vector ({result.reference.bytes_per_vector / nbytes:.1f}x less than float32)"
        )
    print("wrote " + ", ".join(str(p) for p in result.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
