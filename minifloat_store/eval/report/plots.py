"""The report's figures (matplotlib, Agg backend; the ``eval`` extra).

* :func:`plot_score_histograms`: cosine-score histograms per format, targets
  and non-targets apart (the study's Figs. 2, 4, 6);
* :func:`plot_far_frr`: FAR and FRR against the threshold for float32 and one
  format (Figs. 3, 5, 7, 10);
* :func:`plot_bits_vs_eer`: bits per stored value against EER for every
  format and scale mode;
* :func:`plot_pareto`: bits per stored value against RMS score error and
  against flipped decisions, every encoding and baseline a point, the
  frontier drawn.

Importing this module imports matplotlib; nothing else in the package does.
Figures are built as bare ``matplotlib.figure.Figure`` objects and saved
with the Agg renderer, so drawing never needs a display and never changes
the pyplot backend of the caller's session.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from minifloat_store.eval.report.results import ReportResult, pareto_front
from minifloat_store.formats import get_format
from minifloat_store.metrics import far_frr_curve

__all__ = ["plot_bits_vs_eer", "plot_far_frr", "plot_pareto", "plot_score_histograms", "write_figures"]

_TARGET = "#1f77b4"
_NONTARGET = "#d62728"
_DPI = 110


def _score_range(result: ReportResult) -> tuple[float, float]:
    """A common x-range for all score plots: from a little below min(0, 0.5th percentile) to 1.

    The margin below 0 keeps a spike of zero scores (all-zero vectors) visible.
    """
    lows = [float(np.percentile(s, 0.5)) for s in result.scores.values()]
    return min(0.0, min(lows)) - 0.03, 1.0


def plot_score_histograms(result: ReportResult, scale: str, path: str | os.PathLike[str]) -> Path:
    """Histograms of the cosine scores, one panel per format, for one scale mode.

    Target and non-target trials are drawn as separate densities; dashed lines
    mark the fixed threshold (if any) and the float32 EER threshold.
    """
    formats = result.formats
    ncols = 3
    nrows = -(-len(formats) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 2.8 * nrows))
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    lo, hi = _score_range(result)
    bins = np.linspace(lo, hi, 121)
    labels = result.labels
    for ax, fmt in zip(axes.flat, formats, strict=False):  # the grid may have spare cells
        row = result.row(fmt, scale)
        s = result.scores[(row.format, row.scale)]
        ax.hist(s[labels], bins=bins, density=True, histtype="stepfilled", alpha=0.55, color=_TARGET, label="target")
        ax.hist(
            s[~labels], bins=bins, density=True, histtype="stepfilled", alpha=0.55, color=_NONTARGET, label="non-target"
        )
        ax.axvline(result.reference.eer_threshold, color="k", ls="--", lw=0.9, label="f32 EER thr")
        if result.threshold is not None:
            ax.axvline(result.threshold, color="0.45", ls=":", lw=1.2, label="fixed thr")
        ax.set_title(f"{row.display_name}: EER {100 * row.eer:.2f} %", fontsize=10)
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(formats) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("cosine score", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    what = "no scaling" if scale == "none" else "per-vector scaling"
    fig.suptitle(f"{result.title}: cosine scores per format, {what} (density)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_far_frr(result: ReportResult, fmt: str, scale: str, path: str | os.PathLike[str]) -> Path:
    """FAR and FRR (%) against the threshold, float32 solid, ``fmt`` dashed."""
    lo, hi = _score_range(result)
    grid = np.linspace(lo, hi, 801)
    fig = Figure(figsize=(7.0, 5.0))
    ax = fig.subplots()
    ref = result.reference
    row = result.row(fmt, scale)
    for r, style in ((ref, "-"), (row, "--")):
        far, frr = far_frr_curve(result.scores[(r.format, r.scale)], result.labels, grid)
        name = r.display_name if r is ref else f"{r.display_name} ({r.scale} scale)"
        ax.plot(grid, 100 * far, style, color=_NONTARGET, lw=1.5, label=f"FAR {name}")
        ax.plot(grid, 100 * frr, style, color=_TARGET, lw=1.5, label=f"FRR {name}")
    ax.axvline(ref.eer_threshold, color="k", ls="--", lw=0.8, label=f"float32 EER thr {ref.eer_threshold:.3f}")
    if result.threshold is not None:
        ax.axvline(result.threshold, color="0.45", ls=":", lw=1.2, label=f"fixed thr {result.threshold:.3g}")
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, 100)
    ax.set_xlabel("threshold (cosine); accept when score >= threshold")
    ax.set_ylabel("rate (%)")
    ax.set_title(
        f"FAR and FRR against the threshold: float32 vs {row.display_name}, {scale} scale\n"
        f"EER {100 * ref.eer:.2f} % -> {100 * row.eer:.2f} %",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    # Below the axes: the curves span the whole plot, any inside spot hides one.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def plot_bits_vs_eer(result: ReportResult, path: str | os.PathLike[str]) -> Path:
    """EER (%, log axis) against stored bits per value, one marker per format x scale mode.

    Bits per value include the share of the 4-byte per-vector scale. Formats
    of equal width are spread a little sideways so their labels stay apart.
    """
    fig = Figure(figsize=(8.0, 4.8))
    ax = fig.subplots()
    styles = {"none": ("o", "#444444"), "vector": ("s", "#2ca02c")}
    by_bits: dict[int, list[str]] = {}
    for fmt in result.formats:
        by_bits.setdefault(get_format(fmt).bits, []).append(fmt)
    offset = {f: 0.09 * (i - (len(group) - 1) / 2) for group in by_bits.values() for i, f in enumerate(group)}
    for scale in dict.fromkeys(("none", *result.scale_modes)):
        rows = [r for r in result.rows if r.scale == scale]
        if not rows:
            continue
        marker, color = styles[scale]
        xs = [r.bits_per_value * 2 ** offset[r.format] for r in rows]
        ys = [100 * r.eer for r in rows]
        ax.scatter(xs, ys, marker=marker, s=36, color=color, label=f"scale {scale}", zorder=3)
        for r, x, y in zip(rows, xs, ys, strict=True):
            ax.annotate(
                r.display_name,
                (x, y),
                fontsize=7,
                rotation=90,
                ha="center",
                va="bottom" if scale == "none" else "top",
                xytext=(0, 5 if scale == "none" else -5),
                textcoords="offset points",
            )
    ax.axhline(100 * result.reference.eer, color="k", ls=":", lw=0.8, label="float32 EER")
    ax.set_xscale("log", base=2)
    ax.set_xticks([4, 6, 8, 16, 32])
    ax.set_xticklabels(["4", "6", "8", "16", "32"])
    ax.set_xlim(3.3, 40)
    lo = min(100 * r.eer for r in result.rows)
    hi = max(100 * r.eer for r in result.rows)
    if lo > 0:
        ax.set_yscale("log")
        ax.set_ylim(lo / 2, hi * 2.5)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    else:  # an EER of 0 (a tiny or perfectly separated set) has no place on a log axis
        ax.set_ylim(0, max(hi * 1.2, 1.0))
    ax.set_xlabel("stored bits per value (scale included)")
    ax.set_ylabel("EER (%, log scale)" if lo > 0 else "EER (%)")
    ax.set_title(f"{result.title}: storage against EER", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


_KIND_STYLE = {
    "study": ("o", "#1f77b4", "study formats"),
    "encoding": ("D", "#2ca02c", "encodings"),
    "faiss": ("x", "#d62728", "FAISS"),
}


def plot_pareto(result: ReportResult, path: str | os.PathLike[str]) -> Path:
    """Stored bits per value against RMS score error (left) and flips at the float32 EER threshold (right).

    Every row of the fidelity table is a point (log error axis; an error of 0
    is drawn at the axis floor); the black steps join the frontier, the rows
    nothing smaller beats, and name them.
    """
    rows = list(result.fidelity)
    fig = Figure(figsize=(13.0, 5.2))
    axes = fig.subplots(1, 2)
    for ax, key, label in (
        (axes[0], "rms_score_error", "RMS cosine-score error vs float32"),
        (axes[1], "flips_at_ref", "decisions flipped at the float32 EER threshold (%)"),
    ):
        scale = 100.0 if key == "flips_at_ref" else 1.0
        values = [scale * getattr(r, key) for r in rows]
        positive = [v for v in values if v > 0]
        floor = min(positive) / 3 if positive else 1e-6
        for kind, (marker, color, text) in _KIND_STYLE.items():
            pts = [(r.bits_per_value, max(v, floor)) for r, v in zip(rows, values, strict=True) if r.kind == kind]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.scatter(xs, ys, marker=marker, s=30, color=color, label=text, alpha=0.8, zorder=3)
        front = pareto_front(rows, key)
        fx = [r.bits_per_value for r in front]
        fy = [max(scale * getattr(r, key), floor) for r in front]
        ax.step(fx, fy, where="post", color="k", lw=1.0, label="frontier", zorder=2)
        for r, x, y in zip(front, fx, fy, strict=True):
            ax.annotate(r.name, (x, y), fontsize=7, rotation=25, xytext=(3, 3), textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xlabel("stored bits per value (codes and scales)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"{result.title}: bits per value against score error and flipped decisions", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def write_figures(
    result: ReportResult, out_dir: str | os.PathLike[str], figure_formats: Sequence[str] = ("e2m1",)
) -> dict[str, Path]:
    """Draw every figure of the report into ``out_dir``; returns caption -> file."""
    out = Path(out_dir)
    files: dict[str, Path] = {}
    for scale in result.scale_modes:
        what = "no scaling" if scale == "none" else "per-vector scaling"
        files[f"Cosine scores per format, {what}"] = plot_score_histograms(result, scale, out / f"scores_{scale}.png")
    for fmt in figure_formats:
        name = get_format(fmt).name
        if name == "fp32" or name not in result.formats:
            continue
        for scale in result.scale_modes:
            files[f"FAR and FRR against the threshold, float32 vs {name} ({scale} scale)"] = plot_far_frr(
                result, name, scale, out / f"far_frr_{name}_{scale}.png"
            )
    files["Bits per value against EER"] = plot_bits_vs_eer(result, out / "bits_vs_eer.png")
    if result.fidelity:
        files["Bits per value against score error and flips (Pareto)"] = plot_pareto(result, out / "pareto.png")
    return files


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=_DPI)  # a bare Figure saves through Agg for .png
    return path
