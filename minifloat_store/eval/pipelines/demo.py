"""The demo: the whole pipeline on a synthetic corpus, no download and no user data.

For each profile (``"batchnorm"``, ``"nonorm"``): generate a Vox1-O-sized
synthetic corpus (:mod:`minifloat_store.eval.data.synthetic`), write it to a
float32 :class:`~minifloat_store.store.EmbeddingStore`, convert that store to
a packed store per format and scale mode (to measure real on-disk sizes),
read the float32 store back and run the full report
(:func:`minifloat_store.eval.report.run_report`) on it. Output::

    OUT/README.md                  summary of both profiles, links to the reports
    OUT/<profile>/report.md        Table 1, Tables 2-3, the fidelity table (score error, flips,
                                   ΔEER per encoding and FAISS baseline), figures (docs/evaluation.md)
    OUT/<profile>/pareto.png       bits per value against score error and flips, the frontier drawn
    OUT/<profile>/results.csv|json every number
    OUT/<profile>/*.png            figures
    OUT/<profile>/trials.txt       the trial list, VoxCeleb format
    OUT/<profile>/stores/          the float32 store and one packed store per format x scale

``minifloat-store demo`` is a thin wrapper around :func:`run_demo`.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from minifloat_store.choose import CANDIDATES
from minifloat_store.codec import SCALE_MODES
from minifloat_store.eval.baselines import DEMO_BASELINES, faiss_available
from minifloat_store.eval.data.synthetic import PROFILES, SyntheticCorpus, make_corpus
from minifloat_store.eval.report import STUDY_ORDER, ReportResult, pair_cosines, run_report, write_report
from minifloat_store.metrics import det_curve
from minifloat_store.store import EmbeddingStore
from minifloat_store.store.convert import convert

__all__ = ["DemoResult", "run_demo", "threshold_at_far"]

#: Packed stores the demo converts the float32 store to, per profile: every
#: format and scale mode of the report, so Table 1 shows measured sizes throughout.
DEMO_STORES: tuple[tuple[str, str], ...] = tuple(
    (fmt, scale) for fmt in STUDY_ORDER if fmt != "fp32" for scale in SCALE_MODES
)

#: The FAR (fraction) at which the demo's "model threshold" is set on float32.
MODEL_FAR = 0.01

SYNTHETIC_NOTE = (
    "**The data is synthetic.** These embeddings come from `minifloat_store.eval.data.synthetic` "
    "(profile `{profile}`, seed {seed}), a seeded generative model, not from a speaker network "
    "or real audio; they imitate {imitates}. The trial list has the size and balance of the "
    "cleaned Vox1-O list. The numbers show how quantisation acts on embeddings of this value "
    "range; they are not the accuracy of any real model."
)


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` made.

    Attributes
    ----------
    out_dir : Path
        Top-level output folder (holds ``README.md``).
    reports : dict of str -> ReportResult
        The report of each profile, by profile name.
    thresholds : dict of str -> float
        The model threshold used per profile (cosine).
    store_bytes : dict of str -> dict of (format, scale) -> int
        Measured on-disk bytes of every store written, per profile.
    seconds : float
        Wall time of the whole demo.
    """

    out_dir: Path
    reports: dict[str, ReportResult]
    thresholds: dict[str, float]
    store_bytes: dict[str, dict[tuple[str, str], int]]
    seconds: float


def threshold_at_far(scores: ArrayLike, labels: ArrayLike, far: float, decimals: int = 3) -> float:
    """The lowest threshold whose FAR is at most ``far``, rounded up to ``decimals``.

    Plays the role of a model's published operating threshold: chosen once on
    float32 scores, then kept fixed for every format.

    Parameters
    ----------
    scores : array_like of shape (n,), real
        One score per trial.
    labels : array_like of shape (n,), bool or 0/1
        True for a target trial.
    far : float
        Largest acceptable false-acceptance rate, a fraction in (0, 1).
    decimals : int, default 3
        Rounding; rounding up keeps the FAR at or below ``far``.

    Returns
    -------
    float
        The threshold (accept when ``score >= threshold``).
    """
    if not 0.0 < far < 1.0:
        raise ValueError(f"far must be a fraction in (0, 1), got {far!r}")
    curve = det_curve(scores, labels)
    ok = np.flatnonzero(curve.far <= far)
    # FAR is non-increasing along ascending thresholds; if no distinct score gets low
    # enough, only "reject all" does, just above the largest score.
    t = float(curve.thresholds[ok[0]]) if ok.size else float(np.nextafter(curve.thresholds[-1], np.inf))
    step = 10.0**decimals
    return math.ceil(t * step) / step


def _write_stores(corpus: SyntheticCorpus, folder: Path) -> tuple[Path, dict[tuple[str, str], int]]:
    """Write the float32 store and convert it to the demo's packed stores.

    Returns the float32 store's path and the measured on-disk bytes of every
    store written (``StoreInfo.bytes_on_disk``: ids, indexes and checksums included).
    """
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "fp32.zarr"
    _remove(src)
    metadata = {"source": "minifloat_store.eval.data.synthetic", "profile": corpus.profile.name, "seed": corpus.seed}
    with EmbeddingStore.create(src, dim=corpus.embeddings.shape[1], fmt="fp32", metadata=metadata) as store:
        store.add(corpus.ids.tolist(), corpus.embeddings)
    sizes = {("fp32", "none"): _bytes_on_disk(src)}
    for fmt, scale in DEMO_STORES:
        dst = folder / f"{fmt}_{scale}.zarr"
        _remove(dst)
        convert(src, dst, fmt=fmt, scale=scale, progress=False)
        sizes[(fmt, scale)] = _bytes_on_disk(dst)
    return src, sizes


def _remove(path: Path) -> None:
    # Only the demo's own store folders are replaced, so a rerun starts clean.
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _bytes_on_disk(path: Path) -> int:
    with EmbeddingStore.open(path, mode="r") as store:
        return store.info().bytes_on_disk


def _read_store(path: Path) -> tuple[list[str], np.ndarray]:
    with EmbeddingStore.open(path, mode="r") as store:
        return list(store.ids), store.to_numpy()


def run_demo(
    out_dir: str | os.PathLike[str] = "minifloat-demo",
    *,
    seed: int = 0,
    profiles: Sequence[str] = tuple(PROFILES),
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    encodings: Sequence[str] = CANDIDATES,
    baselines: Sequence[str] | None = None,
    n_boot: int = 100,
) -> DemoResult:
    """Run the demo: synthetic corpus -> stores -> report, per profile.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder, created if missing; the demo's files in it are replaced.
    seed : int, default 0
        Seed of the synthetic corpora.
    profiles : sequence of str
        Profiles to run (default both).
    progress : bool, default True
        Progress bars on stderr.
    log : callable or None, default print
        Receives one line per step and the final summary; None for silence.
    encodings : sequence of str, default :data:`minifloat_store.choose.CANDIDATES`
        Encodings beside the study's formats in the fidelity table and the Pareto chart.
    baselines : sequence of str, optional
        FAISS baselines; by default :data:`~minifloat_store.eval.baselines.DEMO_BASELINES`
        when faiss is installed (the ``bench`` extra), none otherwise.
    n_boot : int, default 100
        Bootstrap resamples of the ΔEER intervals.

    Returns
    -------
    DemoResult
    """
    say = log or (lambda _line: None)
    if baselines is None:
        baselines = DEMO_BASELINES if faiss_available() else ()
        if not baselines:
            say("FAISS is not installed (pip install 'minifloat-store[bench]'): no baselines in the fidelity table")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, ReportResult] = {}
    thresholds: dict[str, float] = {}
    all_sizes: dict[str, dict[tuple[str, str], int]] = {}
    for name in profiles:
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        corpus = make_corpus(name, seed=seed)
        corpus.write_trials(folder / "trials.txt")
        say(
            f"[{name}] generated {len(corpus.ids):,} embeddings x {corpus.embeddings.shape[1]}, "
            f"{len(corpus.trials):,} trials ({time.perf_counter() - t:.1f} s)"
        )

        t = time.perf_counter()
        src, sizes = _write_stores(corpus, folder / "stores")
        ids, x = _read_store(src)
        say(f"[{name}] wrote float32 store and {len(sizes) - 1} packed stores ({time.perf_counter() - t:.1f} s)")

        # The model threshold: fixed once on float32, like a published operating point.
        left, right = corpus.trials.index_pairs(ids)
        ref_scores = pair_cosines(x, left, right)
        thr = threshold_at_far(ref_scores, corpus.trials.labels, MODEL_FAR)
        thresholds[name] = thr
        prof = corpus.profile
        note = (
            f"the demo's model threshold: the lowest float32 threshold with FAR <= {100 * MODEL_FAR:g} %, "
            "rounded up to 3 decimals, then kept fixed for every format as the study keeps a model's "
            "published threshold"
        )
        t = time.perf_counter()
        result = run_report(
            x,
            ids,
            corpus.trials,
            threshold=thr,
            threshold_note=note,
            title=f"Synthetic corpus, profile {name}",
            notes=(SYNTHETIC_NOTE.format(profile=name, seed=seed, imitates=prof.imitates),),
            on_disk=sizes,
            progress=progress,
            encodings=encodings,
            baselines=baselines,
            n_boot=n_boot,
            seed=seed,
        )
        result = write_report(result, folder, figure_formats=("e2m1",))
        reports[name] = result
        all_sizes[name] = sizes
        say(f"[{name}] report written to {folder / 'report.md'} ({time.perf_counter() - t:.1f} s)")

    seconds = time.perf_counter() - t0
    demo = DemoResult(out, reports, thresholds, all_sizes, seconds)
    (out / "README.md").write_text(_readme(demo, seed), encoding="utf-8")
    say("")
    say(summary(demo))
    return demo


def _summary_rows(demo: DemoResult) -> list[tuple[str, ...]]:
    rows = []
    for name, r in demo.reports.items():
        f32 = r.reference
        for fmt, scale in (("fp32", "none"), ("e2m1", "none"), ("e2m1", "vector"), ("e4m3", "vector")):
            row = r.row(fmt, scale)
            disk = demo.store_bytes[name].get((fmt, scale))
            rows.append(
                (
                    name,
                    row.display_name if fmt == "fp32" else f"{fmt} / {scale}",
                    f"{100 * row.eer:.2f}",
                    f"{100 * row.far:.2f} / {100 * row.frr:.2f}",
                    f"{row.bytes_per_vector}",
                    "–" if disk is None else f"{disk / 2**20:.2f}",
                    f"{demo.thresholds[name]:.3f}" if row is f32 else "",
                )
            )
    return rows


_HEAD = ("profile", "format / scale", "EER %", "FAR / FRR % at model thr", "B/vector", "store MiB", "model thr")


def summary(demo: DemoResult) -> str:
    """The terminal summary: per profile, float32 vs e2m1 without and with scaling, and e4m3."""
    rows = [_HEAD, *_summary_rows(demo)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"Synthetic data (see README.md). Done in {demo.seconds:.1f} s; reports in {demo.out_dir}/")
    return "\n".join(lines)


def _readme(demo: DemoResult, seed: int) -> str:
    lines = [
        "# minifloat-store demo",
        "",
        "**Everything here is computed on synthetic data** made by `minifloat_store.eval.data.synthetic` "
        f"(seed {seed}): no speaker network, no audio. Each profile imitates the value range of one kind "
        "of network in the study; the trial list has the size and balance of the cleaned Vox1-O list "
        "(40 speakers, 4,708 utterances, 37,611 trials, 18,802 targets).",
        "",
        "| " + " | ".join(_HEAD) + " |",
        "|" + "---|" * len(_HEAD),
        *("| " + " | ".join(r) + " |" for r in _summary_rows(demo)),
        "",
        "The model threshold of each profile is the lowest float32 threshold with FAR <= "
        f"{100 * MODEL_FAR:g} %, rounded up to 3 decimals, kept fixed for every format. "
        "B/vector: payload bytes per stored vector (a 4-byte scale included for `vector`). "
        "Store MiB: measured size on disk of the store written (ids and container included).",
        "",
        "Reports:",
        "",
    ]
    for name in demo.reports:
        lines.append(f"- [{name}]({name}/report.md) ({PROFILES[name].imitates})")
    lines += ["", f"Finished in {demo.seconds:.1f} s.", ""]
    return "\n".join(lines)
