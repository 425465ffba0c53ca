"""Reproduce the study: its three models over the cleaned VoxCeleb-1 lists, beside its own numbers.

``reproduce`` runs, for every model (CAM++, ReDimNet, WavLM) and every cleaned
trial list the user has (Vox1-O, Vox1-E, Vox1-H):

1. extraction of every utterance the lists use into one float32 store per
   model (:func:`minifloat_store.eval.pipelines.extract.extract`; resumable, so rerunning
   after an interruption continues where it stopped);
2. the storage-vs-accuracy report of that store on that list
   (:func:`minifloat_store.eval.report.run_report`) at the study's threshold
   for the model;
3. ``comparison.md`` (and ``comparison.json``): per model x list x format, our
   FAR/FRR at the study's threshold beside the study's published numbers
   (:mod:`minifloat_store.eval.report.study`).

Everything that can be checked is checked before the first model is loaded
(:func:`plan`): the VoxCeleb directory and its ``wav/`` folder, each list's
MD5 (a file named like a cleaned list must be that list), every audio file
each list needs, and every model's weights. All problems are reported
together, each missing checkpoint with its download instructions, so a user
fixes everything at once instead of meeting the next problem hours later.

Output layout::

    OUT/embeddings/<model>.zarr          float32 stores (resumable)
    OUT/reports/<model>/<list>/          report.md, results.csv/json, figures
    OUT/comparison.md, comparison.json   ours beside the study's
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from minifloat_store.eval.models.registry import get_spec
from minifloat_store.eval.pipelines.comparison import write_comparison
from minifloat_store.eval.pipelines.extract import ExtractSummary, FailedUtterance, extract
from minifloat_store.eval.pipelines.voxceleb import (
    DEFAULT_MODELS,
    ListSpec,
    Plan,
    ReproduceSetupError,
    find_lists,
    plan,
)
from minifloat_store.eval.report import ReportResult, run_report, write_report
from minifloat_store.eval.report.study import STUDY_MODELS
from minifloat_store.store import EmbeddingStore

__all__ = [
    "DEFAULT_MODELS",
    "ListSpec",
    "Plan",
    "ReproduceResult",
    "ReproduceSetupError",
    "find_lists",
    "plan",
    "reproduce",
    "write_comparison",
]


@dataclass(frozen=True, eq=False)
class ReproduceResult:
    """What :func:`reproduce` produced.

    Attributes
    ----------
    out : Path
    comparison : Path
        ``comparison.md``.
    reports : dict of (model, list) -> ReportResult
    extractions : dict of model -> list of ExtractSummary (one per list)
    failed : dict of model -> tuple of FailedUtterance
        Utterances that could not be embedded; the reports needing them were skipped.
    seconds : float
    """

    out: Path
    comparison: Path
    reports: dict[tuple[str, str], ReportResult]
    extractions: dict[str, list[ExtractSummary]]
    failed: dict[str, tuple[FailedUtterance, ...]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """True when every model x list report was written."""
        return not any(self.failed.values())


def reproduce(
    voxceleb: str | os.PathLike[str],
    out: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    lists: Sequence[str] | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    verify_weights: bool = True,
    figures: bool = True,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> ReproduceResult:
    """Run the study's evaluation on the user's VoxCeleb-1 and compare with its numbers.

    Parameters
    ----------
    voxceleb : str or PathLike
        VoxCeleb-1 directory (``wav/`` and the cleaned lists; docs/reproduce.md).
    out : str or PathLike
        Output directory (created; rerunning resumes the extraction).
    weights_dir : str or PathLike, optional
        Checkpoints laid out as docs/models.md says; standard places searched after it.
    models : sequence of str
        Default: the study's three.
    lists : sequence of str, optional
        ``"Vox1-O"`` or ``"Vox1-O=FILE"`` items (:func:`find_lists`); default every official list found.
    batch_size : int
        Utterances per extraction batch and store commit.
    device : str
        torch device.
    verify_weights : bool
        Check published SHA-256 sums of the weight files.
    figures : bool
        Draw each report's figures (matplotlib).
    progress : bool
        Progress bars on stderr.
    log : callable or None, default print
        Receives one line per step.

    Returns
    -------
    ReproduceResult

    Raises
    ------
    ReproduceSetupError
        Before any work, listing every problem (see :func:`plan`).
    """
    say = log or (lambda _line: None)
    t0 = time.perf_counter()
    p = plan(voxceleb, weights_dir, models=models, lists=lists, verify_weights=verify_weights)
    out_dir = Path(out)
    (out_dir / "embeddings").mkdir(parents=True, exist_ok=True)
    say(
        f"lists: {', '.join(f'{s.name} ({s.path.name}, {len(p.trials[s.name]):,} trials)' for s in p.lists)}; "
        f"{len(p.utterances):,} utterances under {p.wav}"
    )
    for m in p.models:
        say(f"{m}: weights {p.weights[m]}")

    reports: dict[tuple[str, str], ReportResult] = {}
    extractions: dict[str, list[ExtractSummary]] = {}
    failed: dict[str, tuple[FailedUtterance, ...]] = {}
    for i, m in enumerate(p.models, start=1):
        study = STUDY_MODELS[m]
        say(f"[{i}/{len(p.models)}] {study.display_name}: loading")
        net = get_spec(m).load_located(p.weights[m], device)  # plan() located and checked them
        store_path = out_dir / "embeddings" / f"{m}.zarr"
        extractions[m] = []
        for spec in p.lists:
            say(f"[{i}/{len(p.models)}] {study.display_name}: embedding the utterances of {spec.name}")
            s = extract(
                net,
                p.wav,
                p.trials[spec.name],
                store_path,
                weights=p.weights[m],
                batch_size=batch_size,
                progress=progress,
            )
            extractions[m].append(s)
            say("    " + s.text().replace("\n", "\n    "))
        del net  # WavLM holds 400 MB; free it before the next model
        bad = tuple({f.utterance_id: f for s in extractions[m] for f in s.failed}.values())
        failed[m] = bad
        if bad:
            listing = out_dir / f"failed-{m}.tsv"
            listing.write_text("".join(f"{f.utterance_id}\t{f.path}\t{f.reason}\n" for f in bad), encoding="utf-8")
            say(
                f"    {len(bad)} utterances could not be embedded (listed in {listing}); "
                "the reports needing them are skipped"
            )

        with EmbeddingStore.open(store_path, mode="r") as store:
            ids, x, meta = store.ids, store.to_numpy(), store.metadata
        bad_ids = {f.utterance_id for f in bad}
        for spec in p.lists:
            trials = p.trials[spec.name]
            if bad_ids.intersection(trials.utterances.tolist()):
                continue
            folder = out_dir / "reports" / m / spec.name
            notes = [
                f"{study.display_name} ({m}), weights {meta['weights']['path']} "
                f"(SHA-256 {meta['weights']['sha256']}); trial list {spec.path} "
                f"({'the published ' + spec.name if spec.official else 'NOT the published ' + spec.name + ' file'})."
            ]
            result = run_report(
                x,
                ids,
                trials,
                threshold=study.threshold,
                threshold_note=f"the study's threshold for {study.display_name} ({study.threshold_source})",
                title=f"{study.display_name} on {spec.name}",
                notes=notes,
                progress=progress,
            )
            reports[(m, spec.name)] = write_report(result, folder, figures=figures)
            say(f"    {spec.name}: float32 EER {100 * result.reference.eer:.2f} %, report in {folder}")

    comparison = write_comparison(out_dir, p, reports, failed)
    say(f"comparison with the study: {comparison}")
    return ReproduceResult(out_dir, comparison, reports, extractions, failed, time.perf_counter() - t0)
