"""Reproduce the study: its three models over the cleaned VoxCeleb-1 lists, beside its own numbers.

``reproduce`` runs, for every model (CAM++, ReDimNet, WavLM) and every cleaned
trial list the user has (Vox1-O, Vox1-E, Vox1-H):

1. extraction of every utterance the lists use into one float32 store per
   model (:func:`minifloat_store.eval.extract.extract`; resumable, so rerunning
   after an interruption continues where it stopped);
2. the storage-vs-accuracy report of that store on that list
   (:func:`minifloat_store.eval.report.run_report`) at the study's threshold
   for the model;
3. ``comparison.md`` (and ``comparison.json``): per model x list x format, our
   FAR/FRR at the study's threshold beside the study's published numbers
   (:mod:`minifloat_store.eval.study`).

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

import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minifloat_store.eval.study import STUDY_FORMATS, STUDY_LISTS, STUDY_MODELS, published
from minifloat_store.eval.trials import KNOWN_LISTS, Trials, read_trials

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

#: The study's models, in the order of its tables.
DEFAULT_MODELS: tuple[str, ...] = ("campplus", "redimnet", "wavlm")
#: Where the official list files are looked for, relative to the VoxCeleb directory.
LIST_FOLDERS: tuple[str, ...] = (".", "meta")
#: Where the cleaned lists are published (for the error message).
LISTS_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/"
_SHOW = 3


class ReproduceSetupError(ValueError):
    """Something needed is missing or wrong; ``problems`` lists each (the message numbers them)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        text = "\n\n".join(f"{i}. {p}" for i, p in enumerate(self.problems, start=1))
        super().__init__(f"cannot start; fix these first (nothing was run):\n\n{text}")


@dataclass(frozen=True)
class ListSpec:
    """One trial list to evaluate.

    Attributes
    ----------
    name : str
        Standard name: ``"Vox1-O"``, ``"Vox1-E"`` or ``"Vox1-H"``.
    path : Path
        The file.
    official : bool
        True when the file's MD5 is the published cleaned list's; only then
        are the study's numbers comparable with ours.
    """

    name: str
    path: Path
    official: bool = False


@dataclass(frozen=True, eq=False)
class Plan:
    """What :func:`reproduce` will run, after every up-front check passed.

    Attributes
    ----------
    wav : Path
        The audio root (``<voxceleb>/wav``).
    lists : tuple of ListSpec
    trials : dict of str -> Trials
        Each list, read, by standard name.
    models : tuple of str
    weights : dict of str -> Path
        Each model's weight file (WavLM: checkpoint directory).
    """

    wav: Path
    lists: tuple[ListSpec, ...]
    trials: dict[str, Trials]
    models: tuple[str, ...]
    weights: dict[str, Path]

    @property
    def utterances(self) -> list[str]:
        """Every utterance any list uses, sorted."""
        return sorted(set().union(*(t.utterances.tolist() for t in self.trials.values())))


def find_lists(voxceleb: str | os.PathLike[str], lists: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """Which list files to use: ``(standard name, path)`` pairs, in the study's column order.

    Parameters
    ----------
    voxceleb : str or PathLike
        The VoxCeleb-1 directory; official file names are looked for in it
        and in its ``meta/`` folder.
    lists : sequence of str, optional
        Items ``"Vox1-O"`` (that list's official file, looked up as above) or
        ``"Vox1-O=FILE"`` (this file stands for Vox1-O). By default every
        official file found.

    Raises
    ------
    ValueError
        Unknown list name, a name given twice, or an official file not found.
    """
    root = Path(voxceleb)

    def locate(name: str) -> Path | None:
        fname = KNOWN_LISTS[name].filename
        return next((p for d in LIST_FOLDERS if (p := root / d / fname).is_file()), None)

    order = [s.name for s in STUDY_LISTS]
    chosen: dict[str, Path] = {}
    if lists is None:
        chosen = {n: p for n in order if (p := locate(n)) is not None}
    else:
        for item in lists:
            name, sep, file = item.partition("=")
            name = name.strip()
            if name not in KNOWN_LISTS:
                raise ValueError(f"unknown list {name!r} in {item!r}; known: {', '.join(order)}")
            if name in chosen:
                raise ValueError(f"list {name} is given twice")
            if sep:
                chosen[name] = Path(file.strip()).expanduser()
            else:
                found = locate(name)
                if found is None:
                    raise ValueError(
                        f"{name}: {KNOWN_LISTS[name].filename} is not in {root} or {root / 'meta'} "
                        f"(download it from {LISTS_URL})"
                    )
                chosen[name] = found
    return [(n, chosen[n]) for n in order if n in chosen]


def _locate(model: str, weights_dir: Path | None, verify: bool) -> Path:
    """``<weights_dir>/<model>/`` first (the layout of docs/models.md), then the standard places."""
    from minifloat_store.eval.extract import locate_weights
    from minifloat_store.eval.models.weights import WeightsNotFoundError

    if weights_dir is not None:
        try:
            return locate_weights(model, weights_dir / model, verify=verify)
        except WeightsNotFoundError:
            pass
    try:
        return locate_weights(model, None, verify=verify)
    except WeightsNotFoundError as exc:
        where = f"not in {weights_dir / model}/ (--weights-dir) nor" if weights_dir is not None else "not"
        msg = str(exc)
        if weights_dir is not None:
            msg += f"\n(With --weights-dir {weights_dir}, putting it in {weights_dir / model}/ works too.)"
        raise WeightsNotFoundError(f"{model}: weights {where} in the default places: {msg}") from None


def plan(
    voxceleb: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    lists: Sequence[str] | None = None,
    verify_weights: bool = True,
) -> Plan:
    """Check everything :func:`reproduce` needs, without loading a model or reading audio.

    Parameters
    ----------
    voxceleb : str or PathLike
        VoxCeleb-1 directory: ``wav/idXXXXX/<video>/<NNNNN>.wav`` and the list files.
    weights_dir : str or PathLike, optional
        Directory laid out as docs/models.md says (``campplus/``, ``redimnet/``,
        ``wavlm/``); the standard places are searched after it.
    models : sequence of str
        Models to run (the study's three by default).
    lists : sequence of str, optional
        See :func:`find_lists`.
    verify_weights : bool
        Check the published SHA-256 of the weight files where one is known.

    Returns
    -------
    Plan

    Raises
    ------
    ReproduceSetupError
        Listing every problem found: missing directories, lists that are
        missing or not what their name says, missing audio, missing weights
        (each with what to download and where to put it).
    """
    from minifloat_store.eval.models.weights import WeightsChecksumError, WeightsNotFoundError

    problems: list[str] = []
    root = Path(voxceleb).expanduser()
    wav = root / "wav"
    unknown = [m for m in models if m not in STUDY_MODELS]
    if unknown or not models:
        problems.append(f"models must be among {', '.join(STUDY_MODELS)}; got {', '.join(models) or 'none'}")
    if not root.is_dir():
        problems.append(
            f"VoxCeleb-1 directory {root} does not exist. It must hold wav/idXXXXX/<video>/<NNNNN>.wav and the "
            "cleaned trial lists; docs/reproduce.md says how to get them."
        )
    elif not wav.is_dir():
        problems.append(
            f"{root} has no wav/ folder. Unzip VoxCeleb-1 there so that the audio is at "
            f"{wav}/idXXXXX/<video>/<NNNNN>.wav (see docs/reproduce.md)."
        )

    specs: list[ListSpec] = []
    trials: dict[str, Trials] = {}
    if root.is_dir():
        try:
            found = find_lists(root, lists)
        except ValueError as exc:
            found = []
            problems.append(str(exc))
        if not found and lists is None:
            names = ", ".join(f"{k.filename} ({k.name})" for k in KNOWN_LISTS.values())
            problems.append(
                f"no cleaned trial list in {root} or {root / 'meta'}: expected one or more of {names}, from {LISTS_URL}"
            )
        for name, path in found:
            try:
                t = read_trials(path)  # refuses a file named like a known list whose MD5 differs
            except (OSError, ValueError) as exc:
                problems.append(f"{name}: {exc}")
                continue
            if t.known is not None and t.known.name != name:
                problems.append(f"{path} is {t.known.name} ({t.known.filename}) by its MD5, not {name}")
                continue
            specs.append(ListSpec(name, path, official=t.known is not None))
            trials[name] = t
            if wav.is_dir():
                utts = t.utterances.tolist()
                missing = [u for u in utts if not (wav / u).is_file()]
                if missing:
                    hint = (
                        " Vox1-E and Vox1-H use the whole of VoxCeleb-1: unzip the dev part (vox1_dev_wav) into "
                        "the same wav/ folder, or leave this list out with --lists."
                        if name != "Vox1-O"
                        else ""
                    )
                    problems.append(
                        f"{name} ({path.name}): {len(missing):,} of {len(utts):,} utterances are missing under "
                        f"{wav} (e.g. {', '.join(missing[:_SHOW])}).{hint}"
                    )

    weights: dict[str, Path] = {}
    wdir = Path(weights_dir).expanduser() if weights_dir is not None else None
    for model in models:
        if model not in STUDY_MODELS:
            continue
        try:
            weights[model] = _locate(model, wdir, verify_weights)
        except (WeightsNotFoundError, WeightsChecksumError, ValueError) as exc:
            problems.append(str(exc) if str(exc).startswith(f"{model}:") else f"{model}: {exc}")
    if problems:
        raise ReproduceSetupError(problems)
    return Plan(wav, tuple(specs), trials, tuple(models), weights)


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
    reports: dict[tuple[str, str], Any]
    extractions: dict[str, list[Any]]
    failed: dict[str, tuple[Any, ...]] = field(default_factory=dict)
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
    from minifloat_store.eval.extract import _VERIFYING_LOADERS, extract
    from minifloat_store.eval.models import load_model
    from minifloat_store.eval.report import run_report, write_report
    from minifloat_store.store import EmbeddingStore

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

    reports: dict[tuple[str, str], Any] = {}
    extractions: dict[str, list[Any]] = {}
    failed: dict[str, tuple[Any, ...]] = {}
    for i, m in enumerate(p.models, start=1):
        study = STUDY_MODELS[m]
        say(f"[{i}/{len(p.models)}] {study.display_name}: loading")
        extra = {"verify": False} if m in _VERIFYING_LOADERS else {}  # plan() checked the sums
        net = load_model(m, weights=p.weights[m], device=device, **extra)
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


# ---------------------------------------------------------------------------
# comparison.md / comparison.json
# ---------------------------------------------------------------------------


def _fmt_name(fmt: str, scale: str) -> str:
    from minifloat_store.eval.report import DISPLAY_NAMES

    name = DISPLAY_NAMES.get(fmt, fmt)
    return name if scale == "none" else f"{name}, per-vector scale"


def _num(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _cells(model: str, spec: ListSpec, result: Any) -> list[dict[str, Any]]:
    """One dict per format row (the study's formats without scaling, then e2m1 with the scale)."""
    ref = result.reference
    study_ref = published(model, spec.name, "fp32")
    rows = [(f, "none") for f in STUDY_FORMATS] + [("e2m1", "vector")]
    out = []
    for fmt, scale in rows:
        try:
            r = result.row(fmt, scale)
        except KeyError:
            continue
        pub = published(model, spec.name, fmt, scale)
        out.append(
            {
                "model": model,
                "list": spec.name,
                "official_list": spec.official,
                "format": fmt,
                "scale": scale,
                "ours": {
                    "far_pct": 100 * r.far,
                    "frr_pct": 100 * r.frr,
                    "eer_pct": 100 * r.eer,
                    "far_change_pct": 100 * (r.far - ref.far),
                    "frr_change_pct": 100 * (r.frr - ref.frr),
                },
                "study": None
                if pub is None
                else {
                    "far_pct": pub.far_pct,
                    "frr_pct": pub.frr_pct,
                    "source": pub.source,
                    "far_change_pct": None if study_ref is None else round(pub.far_pct - study_ref.far_pct, 2),
                    "frr_change_pct": None if study_ref is None else round(pub.frr_pct - study_ref.frr_pct, 2),
                },
            }
        )
    return out


def write_comparison(
    out_dir: str | os.PathLike[str],
    the_plan: Plan,
    reports: Mapping[tuple[str, str], Any],
    failed: Mapping[str, Sequence[Any]] | None = None,
) -> Path:
    """Write ``comparison.md`` and ``comparison.json`` into ``out_dir``; returns the Markdown path.

    Per model x list, one row per format: our FAR and FRR (percent) at the
    study's threshold, the study's, and the change against float32 of each.
    """
    out_dir = Path(out_dir)
    failed = failed or {}
    cells: list[dict[str, Any]] = []
    col = {s.name: s for s in STUDY_LISTS}
    md = [
        "# Our numbers beside the study's",
        "",
        "FAR and FRR in percent at the study's fixed threshold for each model (accept when cosine >= "
        "threshold), storing the embeddings in each format without scaling (the study's Tables 2-4), "
        "plus e2m1 with the per-vector scale (the study gives that for WavLM on its first column only). "
        '"change" is the difference to float32 in percentage points, ours / the study\'s. '
        "Full reports per model and list are under reports/.",
        "",
        "The study's columns are mapped to the standard lists by trial count: 37,611 = Vox1-O (its "
        '"VoxCeleb-E"), 550,894 = Vox1-H (its "VoxCeleb-O"), 579,818 = Vox1-E (its "VoxCeleb-H"). '
        "For CAM++ and ReDimNet the study's 579,818 column has the highest error rates, as Vox1-H would, "
        "while for WavLM it has the lowest; if ours disagree mainly on Vox1-E/Vox1-H, the source may "
        "have swapped those columns. WavLM-sv was fine-tuned on VoxCeleb-1 dev, whose speakers make up "
        "most of Vox1-E and Vox1-H: only Vox1-O is a clean test for it.",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]
    for m in the_plan.models:
        study = STUDY_MODELS[m]
        md += [f"## {study.display_name} (threshold {study.threshold}, {study.threshold_source})", ""]
        for spec in the_plan.lists:
            result = reports.get((m, spec.name))
            c = col[spec.name]
            head = (
                f"### {spec.name}: {spec.path.name}, {len(the_plan.trials[spec.name]):,} trials "
                f"(the study's column {c.column + 1}, {c.n_trials:,} trials)"
            )
            md += [head, ""]
            if result is None:
                n = len(failed.get(m, ()))
                md += [f"Not reported: {n} utterances of {m} could not be embedded (see failed-{m}.tsv).", ""]
                continue
            if not spec.official:
                md += [
                    f"**This file is not the published {spec.name} list (its MD5 differs), so the study's "
                    "numbers below are not comparable with ours; they are shown for the layout only.**",
                    "",
                ]
            md += [
                f"Our float32 EER {100 * result.reference.eer:.2f} % at threshold "
                f"{result.reference.eer_threshold:.3f}.",
                "",
                "| format | FAR ours | FAR study | FRR ours | FRR study | FAR change ours / study "
                "| FRR change ours / study | EER ours |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for cell in _cells(m, spec, result):
                cells.append(cell)
                o, s = cell["ours"], cell["study"] or {}
                is_ref = cell["format"] == "fp32"
                fchg = "" if is_ref else f"{_num(o['far_change_pct'], True)} / {_num(s.get('far_change_pct'), True)}"
                rchg = "" if is_ref else f"{_num(o['frr_change_pct'], True)} / {_num(s.get('frr_change_pct'), True)}"
                md.append(
                    f"| {_fmt_name(cell['format'], cell['scale'])} | {_num(o['far_pct'])} | {_num(s.get('far_pct'))} "
                    f"| {_num(o['frr_pct'])} | {_num(s.get('frr_pct'))} | {fchg} | {rchg} | {_num(o['eer_pct'])} |"
                )
            md += ["", f"Report: [reports/{m}/{spec.name}/report.md](reports/{m}/{spec.name}/report.md)", ""]
    path = out_dir / "comparison.md"
    path.write_text("\n".join(md), encoding="utf-8")
    doc = {
        "units": "percent; changes in percentage points against float32",
        "column_mapping": {
            s.name: {"n_trials": s.n_trials, "study_label": s.study_label, "study_column": s.column + 1}
            for s in STUDY_LISTS
        },
        "lists": [{"name": s.name, "path": str(s.path), "official": s.official} for s in the_plan.lists],
        "thresholds": {m: STUDY_MODELS[m].threshold for m in the_plan.models},
        "cells": cells,
    }
    (out_dir / "comparison.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path
