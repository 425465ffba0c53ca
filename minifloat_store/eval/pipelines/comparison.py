"""``comparison.md`` and ``comparison.json``: our FAR/FRR beside the study's published numbers."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from minifloat_store.eval.pipelines.voxceleb import ListSpec, Plan
from minifloat_store.eval.report.results import DISPLAY_NAMES, ReportResult
from minifloat_store.eval.report.study import STUDY_LISTS, STUDY_MODELS, STUDY_ORDER, published

__all__ = ["write_comparison"]


def _fmt_name(fmt: str, scale: str) -> str:
    name = DISPLAY_NAMES.get(fmt, fmt)
    return name if scale == "none" else f"{name}, per-vector scale"


def _num(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _cells(model: str, spec: ListSpec, result: ReportResult) -> list[dict[str, Any]]:
    """One dict per format row (the study's formats without scaling, then e2m1 with the scale)."""
    ref = result.reference
    study_ref = published(model, spec.name, "fp32")
    rows = [(f, "none") for f in STUDY_ORDER] + [("e2m1", "vector")]
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
    reports: Mapping[tuple[str, str], ReportResult],
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
