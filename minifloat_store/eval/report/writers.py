"""The report's files: ``report.md``, ``results.csv``, ``results.json`` and the terminal summary.

Every writer reads a :class:`~.results.ReportResult` and nothing else. Rates
are fractions in the result and percent in the files (columns ending ``_pct``).
``write_report`` writes them all, plus the figures of :mod:`.plots` when
matplotlib is installed.
"""

from __future__ import annotations

import csv
import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

from minifloat_store.codec import SCALE_MODES, storage_bytes
from minifloat_store.eval.report.results import DISPLAY_NAMES, FormatResult, ReportResult, pareto_front
from minifloat_store.eval.report.study import STUDY_ORDER
from minifloat_store.formats import get_format

__all__ = [
    "fidelity_text",
    "storage_table",
    "summary_text",
    "write_csv",
    "write_fidelity_csv",
    "write_json",
    "write_markdown",
    "write_report",
]

_MIB = 2**20


def storage_table(
    n_trials: int,
    n_embeddings: int,
    dim: int,
    formats: Sequence[str] = STUDY_ORDER,
    on_disk: Mapping[tuple[str, str], int] | None = None,
) -> list[dict[str, object]]:
    """Table 1 rows: storage per format, in bytes.

    Parameters
    ----------
    n_trials : int
        Trial pairs. ``per_trial_pair_bytes`` is the study's count: one vector
        per pair, no scales (``n_trials * dim * bits / 8``).
    n_embeddings : int
        Distinct embeddings; ``unique_none_bytes`` / ``unique_vector_bytes``
        store each once, without / with its 4-byte scale.
    dim : int
        Values per vector.
    formats : sequence of str
        Rows, in order.
    on_disk : mapping of (format, scale) -> int, optional
        Measured store sizes, copied to ``on_disk_none_bytes`` /
        ``on_disk_vector_bytes`` (None where unknown; float32 has one size
        for both modes).

    Returns
    -------
    list of dict
        One dict per format with the keys above plus ``format``, ``name`` and ``bits``.
    """
    disk = {(get_format(k[0]).name, k[1]): int(v) for k, v in (on_disk or {}).items()}
    out = []
    for fmt in formats:
        f = get_format(fmt)
        row: dict[str, object] = {
            "format": f.name,
            "name": DISPLAY_NAMES.get(f.name, f.name),
            "bits": f.bits,
            "per_trial_pair_bytes": storage_bytes(n_trials, dim, f, "none"),
            "unique_none_bytes": storage_bytes(n_embeddings, dim, f, "none"),
            "unique_vector_bytes": storage_bytes(n_embeddings, dim, f, "vector"),
        }
        for scale in SCALE_MODES:
            size = disk.get((f.name, scale))
            if size is None and f.is_identity:
                size = disk.get((f.name, "vector" if scale == "none" else "none"))
            row[f"on_disk_{scale}_bytes"] = size
        out.append(row)
    return out


def _storage_of(result: ReportResult) -> list[dict[str, object]]:
    return storage_table(result.n_trials, result.n_embeddings, result.dim, result.formats, result.on_disk)


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------

_CSV_COLUMNS = (
    "format",
    "scale",
    "bits",
    "bytes_per_vector",
    "bits_per_value",
    "mib_per_trial_pair",
    "mib_unique",
    "eer_pct",
    "eer_threshold",
    "far_pct",
    "frr_pct",
    "far_at_ref_pct",
    "frr_at_ref_pct",
    "min_dcf_001",
    "min_dcf_005",
    "mean_abs_score_change",
    "zero_vectors",
    "seconds",
)


def _pct(v: float | None) -> float | None:
    return None if v is None else 100.0 * v


def _flat_row(result: ReportResult, r: FormatResult) -> dict[str, object]:
    """One row as the files store it: rates in percent, sizes in MiB."""
    return {
        "format": r.format,
        "scale": r.scale,
        "bits": r.bits,
        "bytes_per_vector": r.bytes_per_vector,
        "bits_per_value": r.bits_per_value,
        "mib_per_trial_pair": storage_bytes(result.n_trials, result.dim, r.format, "none") / _MIB,
        "mib_unique": r.bytes_per_vector * result.n_embeddings / _MIB,
        "eer_pct": _pct(r.eer),
        "eer_threshold": r.eer_threshold,
        "far_pct": _pct(r.far),
        "frr_pct": _pct(r.frr),
        "far_at_ref_pct": _pct(r.far_at_ref),
        "frr_at_ref_pct": _pct(r.frr_at_ref),
        "min_dcf_001": r.min_dcf_001,
        "min_dcf_005": r.min_dcf_005,
        "mean_abs_score_change": r.mean_abs_score_change,
        "zero_vectors": r.zero_vectors,
        "seconds": r.seconds,
    }


def write_csv(result: ReportResult, path: str | os.PathLike[str]) -> Path:
    """Write one line per (format, scale) with every number (rates in percent); returns the path."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_CSV_COLUMNS)
        writer.writeheader()
        for r in result.rows:
            row = _flat_row(result, r)
            # repr keeps every digit of a float; None (no fixed threshold) is an empty cell.
            writer.writerow({k: "" if v is None else repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return path


_FIDELITY_COLUMNS = (
    "name",
    "kind",
    "bits_per_value",
    "rms_score_error",
    "flips_at_ref_pct",
    "flips_at_threshold_pct",
    "eer_pct",
    "delta_eer_pct",
    "delta_eer_lo_pct",
    "delta_eer_hi_pct",
    "on_rms_frontier",
    "on_flips_frontier",
)


def _fidelity_flat(result: ReportResult) -> list[dict[str, object]]:
    """The fidelity rows as the files store them: rates and ΔEER in percent (points), frontier flags."""
    rms_front = {r.name for r in pareto_front(result.fidelity, "rms_score_error")}
    flips_front = {r.name for r in pareto_front(result.fidelity, "flips_at_ref")}
    out = []
    for r in result.fidelity:
        out.append(
            {
                "name": r.name,
                "kind": r.kind,
                "bits_per_value": r.bits_per_value,
                "rms_score_error": r.rms_score_error,
                "flips_at_ref_pct": _pct(r.flips_at_ref),
                "flips_at_threshold_pct": _pct(r.flips_at_threshold),
                "eer_pct": _pct(r.eer),
                "delta_eer_pct": _pct(r.delta_eer),
                "delta_eer_lo_pct": _pct(r.delta_eer_lo),
                "delta_eer_hi_pct": _pct(r.delta_eer_hi),
                "on_rms_frontier": r.name in rms_front,
                "on_flips_frontier": r.name in flips_front,
            }
        )
    return out


def write_fidelity_csv(result: ReportResult, path: str | os.PathLike[str]) -> Path:
    """Write one line per encoding and baseline of the fidelity table (rates in percent); returns the path."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_FIDELITY_COLUMNS)
        writer.writeheader()
        for row in _fidelity_flat(result):
            writer.writerow({k: "" if v is None else repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return path


def write_json(result: ReportResult, path: str | os.PathLike[str]) -> Path:
    """Write the whole result (rows, Table 1, trial counts, threshold, machine) as JSON; returns the path."""
    path = Path(path)
    doc = {
        "title": result.title,
        "notes": list(result.notes),
        "units": {
            "*_pct": "percent of the trials of the relevant class",
            "eer_threshold, threshold": "cosine similarity; accept when score >= threshold",
            "*_bytes": "bytes",
            "mib_*": "MiB (2**20 bytes)",
            "seconds": "wall-clock seconds",
            "rms_score_error": "cosine units",
            "delta_eer*_pct": "percentage points",
        },
        "threshold": result.threshold,
        "threshold_note": result.threshold_note,
        "reference_eer_threshold": result.reference.eer_threshold,
        "dim": result.dim,
        "n_embeddings": result.n_embeddings,
        "n_trials": result.n_trials,
        "n_targets": result.n_targets,
        "n_nontargets": result.n_nontargets,
        "rows": [_flat_row(result, r) for r in result.rows],
        "storage": _storage_of(result),
        "fidelity": _fidelity_flat(result),
        "fidelity_note": result.fidelity_note,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def _marked(value: float | None, ref: float | None, digits: int = 2, scale: float = 100.0) -> str:
    """``value`` with the study's arrow against float32: ``↑`` up, ``↓`` down, ``=`` unchanged."""
    if value is None:
        return "–"
    text = f"{scale * value:.{digits}f}"
    if ref is None:
        return text
    if value == ref:  # rates are counts over the same totals, so exact comparison is meaningful
        return f"{text} ="
    arrow = "↑" if value > ref else "↓"
    return f"{text} {arrow}{abs(scale * (value - ref)):.{digits}f}"


def _mib(n: int | None) -> str:
    return "–" if n is None else f"{n / _MIB:.2f}"


def _table1_lines(result: ReportResult) -> list[str]:
    table = _storage_of(result)
    has_disk = any(r["on_disk_none_bytes"] is not None or r["on_disk_vector_bytes"] is not None for r in table)
    head = (
        f"| format | bits | per trial pair, {result.n_trials:,} x {result.dim} (study's count) "
        f"| {result.n_embeddings:,} unique, scale none | {result.n_embeddings:,} unique, scale vector |"
    )
    sep = "|---|---:|---:|---:|---:|"
    if has_disk:
        head += " on disk, scale none | on disk, scale vector |"
        sep += "---:|---:|"
    lines = [head, sep]
    for r in table:
        line = (
            f"| {r['name']} | {r['bits']} | {_mib(r['per_trial_pair_bytes'])} "
            f"| {_mib(r['unique_none_bytes'])} | {_mib(r['unique_vector_bytes'])} |"
        )
        if has_disk:
            line += f" {_mib(r['on_disk_none_bytes'])} | {_mib(r['on_disk_vector_bytes'])} |"
        lines.append(line)
    return lines


def _accuracy_lines(result: ReportResult, scale: str) -> list[str]:
    ref = result.reference
    fixed = result.threshold is not None
    head = "| format |"
    sep = "|---|"
    if fixed:
        head += " FAR % | FRR % |"
        sep += "---:|---:|"
    head += (
        " FAR % at f32 EER thr | FRR % at f32 EER thr | EER % | EER threshold"
        " | minDCF 0.01 | minDCF 0.05 | zero vectors |"
    )
    sep += "---:|---:|---:|---:|---:|---:|---:|"
    lines = [head, sep]
    for fmt in result.formats:
        r = result.row(fmt, scale)
        is_ref = r is ref
        base = None if is_ref else ref
        line = f"| {r.display_name} |"
        if fixed:
            line += f" {_marked(r.far, base and base.far)} | {_marked(r.frr, base and base.frr)} |"
        thr_change = "" if is_ref else f" ({r.eer_threshold - ref.eer_threshold:+.3f})"
        line += (
            f" {_marked(r.far_at_ref, base and base.far_at_ref)} | {_marked(r.frr_at_ref, base and base.frr_at_ref)} |"
            f" {_marked(r.eer, base and base.eer)} | {r.eer_threshold:.3f}{thr_change} |"
            f" {r.min_dcf_001:.4f} | {r.min_dcf_005:.4f} | {r.zero_vectors} |"
        )
        lines.append(line)
    return lines


def _fidelity_lines(result: ReportResult) -> list[str]:
    ref = result.reference
    fixed = result.threshold is not None
    lines = [
        "What a user of each encoding would see change, trial by trial: the RMS of the cosine-score "
        "error against float32, the percentage of trials whose decision flips at the float32 EER "
        f"threshold ({ref.eer_threshold:.4f})"
        + (f" and at the fixed threshold ({result.threshold:.4g})" if fixed else "")
        + ", and ΔEER (points) with its 95 % interval. ◆: on the frontier of bits against RMS "
        "error (nothing smaller is as good). " + result.fidelity_note,
        "",
        "| encoding | kind | bits/value | RMS score error | flips % at f32 EER thr |"
        + (" flips % at fixed thr |" if fixed else "")
        + " EER % | ΔEER pt [95 %] |",
        "|---|---|---:|---:|---:|" + ("---:|" if fixed else "") + "---:|---:|",
    ]
    front = {r.name for r in pareto_front(result.fidelity, "rms_score_error")}
    for r in result.fidelity:
        mark = " ◆" if r.name in front else ""
        line = (
            f"| {r.name}{mark} | {r.kind} | {r.bits_per_value:.3f} | {r.rms_score_error:.5f} "
            f"| {100 * r.flips_at_ref:.3f} |"
        )
        if fixed:
            line += f" {100 * (r.flips_at_threshold or 0.0):.3f} |"
        delta = f"{100 * r.delta_eer:+.2f} [{100 * r.delta_eer_lo:+.2f}, {100 * r.delta_eer_hi:+.2f}]"
        line += f" {100 * r.eer:.2f} | {delta} |"
        lines.append(line)
    return lines


def fidelity_text(result: ReportResult) -> str:
    """The fidelity table for the terminal: one line per encoding and baseline, by bits per value."""
    if not result.fidelity:
        return ""
    fixed = result.threshold is not None
    head = f"  {'encoding':<30} {'bits/val':>8} {'RMS err':>9} {'flips % f32 thr':>15}"
    head += f" {'flips % fixed':>13}" if fixed else ""
    head += f" {'EER %':>6} {'ΔEER pt [95 %]':>22}"
    lines = [head]
    for r in result.fidelity:
        line = f"  {r.name:<30} {r.bits_per_value:>8.3f} {r.rms_score_error:>9.5f} {100 * r.flips_at_ref:>15.3f}"
        if fixed:
            line += f" {100 * (r.flips_at_threshold or 0.0):>13.3f}"
        delta = f"{100 * r.delta_eer:+.2f} [{100 * r.delta_eer_lo:+.2f}, {100 * r.delta_eer_hi:+.2f}]"
        lines.append(line + f" {100 * r.eer:>6.2f} {delta:>22}")
    return "\n".join(lines)


def write_markdown(
    result: ReportResult, path: str | os.PathLike[str], figures: Mapping[str, str] | None = None
) -> Path:
    """Write ``report.md``: Table 1 (storage) and the Tables 2-4 layout per scale mode.

    Parameters
    ----------
    result : ReportResult
    path : str or PathLike
        The Markdown file.
    figures : mapping of caption -> file name relative to ``path``'s folder, optional
        Figures to link at the end.
    """
    path = Path(path)
    ref = result.reference
    out: list[str] = [f"# {result.title}", ""]
    for note in result.notes:
        out += [note, ""]
    out += [
        f"{result.n_trials:,} trials ({result.n_targets:,} target, {result.n_nontargets:,} non-target) "
        f"over {result.n_embeddings:,} distinct embeddings of {result.dim} values. "
        "Score: cosine similarity (0 when a vector decodes to all zeros); a trial is accepted "
        "when score >= threshold. Rates in percent. Column definitions: docs/evaluation.md.",
        "",
        f"- Fixed threshold: {'none' if result.threshold is None else f'{result.threshold:.4g}'} "
        f"({result.threshold_note}).",
        f"- float32 EER threshold: {ref.eer_threshold:.4f} (float32 EER {100 * ref.eer:.2f} %).",
        "",
        "## Table 1: storage (MiB)",
        "",
        "The study counts one vector per trial pair and no scales; a store keeps each distinct "
        "embedding once, plus a 4-byte scale per vector with scale mode `vector` "
        "(float32 never stores a scale). On-disk sizes, where shown, are measured store sizes "
        "including ids and container overhead.",
        "",
        *_table1_lines(result),
        "",
    ]
    for i, scale in enumerate(result.scale_modes):
        title = "no scaling (the study's Tables 2-4)" if scale == "none" else "per-vector scaling (the study's eq. 6)"
        out += [f"## Table {2 + i}: FAR / FRR, {title}", ""]
        if result.threshold is not None:
            out.append(
                f"FAR / FRR at the fixed threshold {result.threshold:.4g} and at the float32 EER "
                f"threshold {ref.eer_threshold:.4f}."
            )
        else:
            out.append(f"FAR / FRR at the float32 EER threshold {ref.eer_threshold:.4f}.")
        out += [
            "Arrows give the change against float32 (↑ up, ↓ down, = unchanged, in percentage points); "
            "the EER threshold column gives the change of the threshold in brackets.",
            "",
            *_accuracy_lines(result, scale),
            "",
        ]
    if result.fidelity:
        out += [f"## Table {2 + len(result.scale_modes)}: fidelity against float32, per encoding", ""]
        out += [*_fidelity_lines(result), ""]
    if figures:
        out += ["## Figures", ""]
        for caption, name in figures.items():
            out += [f"### {caption}", "", f"![{caption}]({name})", ""]
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def write_report(
    result: ReportResult,
    out_dir: str | os.PathLike[str],
    *,
    figure_formats: Sequence[str] = ("e2m1",),
    figures: bool = True,
) -> ReportResult:
    """Write ``report.md``, ``results.csv``, ``results.json`` and the PNG figures to ``out_dir``.

    Figures need matplotlib (the ``eval`` extra); ``figures=False`` skips them.
    Returns the result with ``files`` set to every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    captions: dict[str, str] = {}
    if figures:
        from minifloat_store.eval.report import plots  # lazy: plots imports matplotlib (the eval extra)

        for caption, file in plots.write_figures(result, out, figure_formats=figure_formats).items():
            captions[caption] = file.name
            written.append(file)
    written.insert(0, write_markdown(result, out / "report.md", captions))
    written.insert(1, write_csv(result, out / "results.csv"))
    written.insert(2, write_json(result, out / "results.json"))
    if result.fidelity:
        written.insert(3, write_fidelity_csv(result, out / "fidelity.csv"))
    return _replace_files(result, tuple(written))


def _replace_files(result: ReportResult, files: tuple[Path, ...]) -> ReportResult:
    fields = {k: getattr(result, k) for k in result.__dataclass_fields__}
    fields["files"] = files
    return ReportResult(**fields)


def summary_text(result: ReportResult, focus: Sequence[str] = ("e2m1",)) -> str:
    """A few lines for the terminal: float32, then each focus format per scale mode.

    Each line gives EER (%), FAR/FRR (%) at the fixed threshold (or at the
    float32 EER threshold) and bytes per stored vector.
    """
    thr = result.threshold
    at = f"at {thr:.4g}" if thr is not None else f"at f32 EER thr {result.reference.eer_threshold:.4f}"
    lines = []
    for fmt in ("fp32", *[get_format(f).name for f in focus if get_format(f).name != "fp32"]):
        for scale in ("none",) if fmt == "fp32" else result.scale_modes:
            try:
                r = result.row(fmt, scale)
            except KeyError:
                continue
            far, frr = (r.far, r.frr) if thr is not None else (r.far_at_ref, r.frr_at_ref)
            label = r.display_name if fmt == "fp32" else f"{r.display_name}/{scale}"
            lines.append(
                f"  {label:<14} EER {100 * r.eer:6.2f} %   FAR/FRR {at}: {100 * far:6.2f} / {100 * frr:6.2f} %"
                f"   {r.bytes_per_vector:5d} B/vector"
            )
    return "\n".join(lines)
