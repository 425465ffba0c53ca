"""The storage-versus-accuracy report: every format x scale mode on one trial list.

``run_report`` quantises the embeddings of a float32 store once per (format,
scale mode), scores every trial by cosine similarity, and measures what the
quantisation did: EER and its threshold, FAR/FRR at a fixed threshold and at
the float32 EER threshold, minDCF, and the bytes it takes. The writers turn
the result into the study's tables (``report.md``), ``results.csv``,
``results.json`` and, with matplotlib, its figures.

Rates are fractions in the API (:class:`FormatResult`) and percent in the
files (columns ending ``_pct``). The decision rule everywhere is the one of
:mod:`minifloat_store.eval.metrics`: accept when ``score >= threshold``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm.auto import tqdm

from minifloat_store.codec import SCALE_MODES, quantize, storage_bytes
from minifloat_store.eval.metrics import eer, far_frr, min_dcf
from minifloat_store.eval.trials import Trials
from minifloat_store.formats import FORMATS, get_format

__all__ = [
    "DISPLAY_NAMES",
    "STUDY_ORDER",
    "FormatResult",
    "ReportResult",
    "pair_cosines",
    "run_report",
    "storage_table",
    "summary_text",
    "write_csv",
    "write_json",
    "write_markdown",
    "write_report",
]

#: Formats in the row order of the study's Tables 2-4 (widest first).
STUDY_ORDER: tuple[str, ...] = ("fp32", "fp16", "bf16", "e5m2", "e4m3", "e3m4", "e3m2", "e2m3", "e2m1")

#: How the study (and this report) names the formats in tables.
DISPLAY_NAMES: Mapping[str, str] = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
}

_MIB = 2**20
_CHUNK = 8192  # trial pairs per scoring block: bounds the gathered (chunk, d) copies


@dataclass(frozen=True)
class FormatResult:
    """What one (format, scale mode) does to verification.

    Attributes
    ----------
    format : str
        Format name (``"e2m1"``, ..., ``"fp32"``).
    scale : {"none", "vector"}
        Scale mode. float32 is stored as it is, so it has only ``"none"``.
    bits : int
        Bits per stored value.
    bytes_per_vector : int
        Payload bytes of one stored vector, the 4-byte scale included for
        ``"vector"`` (``storage_bytes(1, dim, format, scale)``).
    bits_per_value : float
        ``8 * bytes_per_vector / dim``: the format's bits plus the share of the scale.
    eer : float
        Equal error rate, fraction.
    eer_threshold : float
        Cosine score at which FAR = FRR.
    far, frr : float or None
        FAR and FRR (fractions) at the report's fixed threshold; None when
        the report has none.
    far_at_ref, frr_at_ref : float
        FAR and FRR (fractions) at the float32 EER threshold.
    min_dcf_001, min_dcf_005 : float
        Normalised minimum DCF at p_target 0.01 and 0.05 (c_miss = c_fa = 1).
    mean_abs_score_change : float
        Mean over trials of ``|score - float32 score|`` (cosine units).
    zero_vectors : int
        Embeddings that decode to all zeros (their cosine with anything is 0).
    seconds : float
        Wall time to quantise, score and measure this row.
    """

    format: str
    scale: str
    bits: int
    bytes_per_vector: int
    bits_per_value: float
    eer: float
    eer_threshold: float
    far: float | None
    frr: float | None
    far_at_ref: float
    frr_at_ref: float
    min_dcf_001: float
    min_dcf_005: float
    mean_abs_score_change: float
    zero_vectors: int
    seconds: float

    @property
    def display_name(self) -> str:
        """Name used in the tables (``float32`` for fp32, else the short name)."""
        return DISPLAY_NAMES.get(self.format, self.format)


@dataclass(frozen=True, eq=False)
class ReportResult:
    """Everything ``run_report`` measured.

    Attributes
    ----------
    rows : tuple of FormatResult
        One per (format, scale mode), float32 first, then the study's order,
        scale modes in the order asked for.
    threshold : float or None
        The fixed decision threshold (cosine), or None.
    threshold_note : str
        How the threshold was chosen (printed in the report).
    dim : int
        Values per embedding.
    n_embeddings : int
        Distinct embeddings the trials use (what a store of them holds).
    n_trials, n_targets, n_nontargets : int
        Trial counts.
    labels : ndarray of shape (n_trials,), bool
        True for target trials, in trial order.
    scores : dict of (format, scale) -> ndarray of shape (n_trials,), float32
        Cosine score of every trial per row, for the figures.
    title : str
        Report title.
    notes : tuple of str
        Paragraphs printed under the title (e.g. that the data is synthetic).
    on_disk : dict of (format, scale) -> int
        Measured bytes of real stores of these embeddings, where the caller had them.
    files : tuple of Path
        Files written by ``write_report`` (empty until then).
    """

    rows: tuple[FormatResult, ...]
    threshold: float | None
    threshold_note: str
    dim: int
    n_embeddings: int
    n_trials: int
    n_targets: int
    n_nontargets: int
    labels: NDArray[np.bool_] = field(repr=False)
    scores: dict[tuple[str, str], NDArray[np.float32]] = field(repr=False)
    title: str = "Minifloat storage report"
    notes: tuple[str, ...] = ()
    on_disk: dict[tuple[str, str], int] = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    @property
    def reference(self) -> FormatResult:
        """The float32 row every other row is compared with."""
        return self.row("fp32", "none")

    def row(self, fmt: str, scale: str = "none") -> FormatResult:
        """The row of one format and scale mode (float32 has only ``"none"``)."""
        name = get_format(fmt).name
        scale = "none" if name == "fp32" else scale
        for r in self.rows:
            if r.format == name and r.scale == scale:
                return r
        raise KeyError(f"no row for format {name!r} with scale {scale!r} in this report")

    @property
    def scale_modes(self) -> tuple[str, ...]:
        """Scale modes of the non-float32 rows, in report order."""
        return tuple(dict.fromkeys(r.scale for r in self.rows if r.format != "fp32")) or ("none",)

    @property
    def formats(self) -> tuple[str, ...]:
        """Formats in report order, float32 first."""
        return tuple(dict.fromkeys(r.format for r in self.rows))


# ---------------------------------------------------------------------------
# Computation
# ---------------------------------------------------------------------------


def pair_cosines(x: ArrayLike, left: NDArray[np.integer], right: NDArray[np.integer]) -> NDArray[np.float32]:
    """Cosine similarity of the row pairs ``(x[left[i]], x[right[i]])``.

    Parameters
    ----------
    x : array_like of shape (n, d), floating point
        Embeddings (e.g. decoded quantised ones).
    left, right : ndarray of shape (m,), int
        Row indices of each pair.

    Returns
    -------
    ndarray of shape (m,), float32
        Cosines in [-1, 1]; 0.0 where either vector is all zeros (the
        convention of ``minifloat_store.scoring`` and of torch's
        ``cosine_similarity``).
    """
    x = np.asarray(x)
    # Normalise each distinct vector once (in float64, block by block to bound
    # memory on large stores); pairs then only need a float32 dot product.
    unit = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], _CHUNK):
        block = x[start : start + _CHUNK].astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        unit[start : start + _CHUNK] = block / np.where(norms > 0, norms, 1.0)[:, None]
    left = np.asarray(left)
    right = np.asarray(right)
    out = np.empty(left.shape[0], dtype=np.float32)
    for start in range(0, out.size, _CHUNK):
        stop = start + _CHUNK
        out[start:stop] = np.einsum("ij,ij->i", unit[left[start:stop]], unit[right[start:stop]])
    # float32 rounding can step a hair outside [-1, 1] for identical vectors.
    return np.clip(out, -1.0, 1.0, out=out)


def _ordered_formats(formats: Sequence[str] | None) -> list[str]:
    names = list(STUDY_ORDER) if formats is None else [get_format(f).name for f in formats]
    if len(set(names)) != len(names):
        raise ValueError(f"formats repeat a name: {list(formats or ())}")
    names = [n for n in names if n != "fp32"]
    rank = {n: i for i, n in enumerate(STUDY_ORDER)}
    # Unknown-to-the-study formats cannot occur (get_format validated), so rank is total.
    return ["fp32", *sorted(names, key=rank.__getitem__)]


def _check_embeddings(embeddings: ArrayLike, n_ids: int) -> NDArray[np.float32]:
    x = np.asarray(embeddings)
    if x.dtype.kind != "f":
        raise ValueError(f"embeddings must be a floating-point array, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"embeddings must have shape (n, d) with n, d >= 1, got {x.shape}")
    if x.shape[0] != n_ids:
        raise ValueError(f"got {x.shape[0]} embeddings but {n_ids} ids; they must match row for row")
    return x


def run_report(
    embeddings: ArrayLike,
    ids: Sequence[str] | NDArray[np.str_],
    trials: Trials,
    *,
    formats: Sequence[str] | None = None,
    scales: Sequence[str] = SCALE_MODES,
    threshold: float | None = None,
    threshold_note: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    title: str = "Minifloat storage report",
    notes: Sequence[str] = (),
    on_disk: Mapping[tuple[str, str], int] | None = None,
    figure_formats: Sequence[str] = ("e2m1",),
    progress: bool = True,
) -> ReportResult:
    """Measure what storing the embeddings in each format does to verification.

    For every format x scale mode: quantise the distinct embeddings the trials
    use (once, not per trial), score every trial by cosine similarity, and
    compute EER with its threshold, FAR/FRR at ``threshold`` and at the
    float32 EER threshold, minDCF, and the storage it takes. float32 is always
    included, as the reference.

    Parameters
    ----------
    embeddings : array_like of shape (n, d), floating point
        The float32 embeddings (other float types are converted), row i
        belonging to ``ids[i]``.
    ids : sequence of str, length n
        Utterance id of each row; every trial utterance must be among them.
    trials : Trials
        The trial list (see :func:`minifloat_store.eval.trials.read_trials`).
    formats : sequence of str, optional
        Formats to compare; all of the study's by default. float32 is added
        if missing. Rows follow the study's order (widest first).
    scales : sequence of {"none", "vector"}, default both
        Scale modes to compare per format.
    threshold : float, optional
        A fixed cosine threshold (the "model threshold", like the study's
        0.381 / 0.351 / 0.86); accept when ``score >= threshold``. Without
        it, FAR/FRR are reported at the float32 EER threshold only.
    threshold_note : str, optional
        One sentence on where the threshold came from, for the report.
    out_dir : str or PathLike, optional
        When given, :func:`write_report` writes every file there (figures
        need matplotlib, the ``eval`` extra).
    title : str
        Report title.
    notes : sequence of str
        Paragraphs printed under the title.
    on_disk : mapping of (format, scale) -> int, optional
        Measured sizes in bytes of real stores of these embeddings, shown in Table 1.
    figure_formats : sequence of str, default ("e2m1",)
        Formats whose FAR/FRR-versus-threshold curves are drawn against float32.
    progress : bool, default True
        Show a progress bar (tqdm, on stderr).

    Returns
    -------
    ReportResult

    Raises
    ------
    ValueError
        Embeddings and ids disagree in length, an unknown format or scale
        mode, a non-finite threshold, or embeddings with NaN/inf (the message
        names the row).
    MissingUtterancesError
        Trial utterances missing from ``ids`` (a KeyError and a ValueError).
    """
    ids_list = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
    x = _check_embeddings(embeddings, len(ids_list))
    if not isinstance(trials, Trials):
        raise ValueError(f"trials must be a Trials (see read_trials), got {type(trials).__name__}")
    scale_list = list(dict.fromkeys(scales))
    for s in scale_list:
        if s not in SCALE_MODES:
            raise ValueError(f"unknown scale mode {s!r}; expected one of {', '.join(SCALE_MODES)}")
    if not scale_list:
        raise ValueError("scales is empty; give at least one of 'none', 'vector'")
    if threshold is not None:
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite cosine value, got {threshold!r}")
    fmt_names = _ordered_formats(formats)

    left, right = trials.index_pairs(ids_list)
    # Only the embeddings the trials use are stored and quantised, each once.
    used, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
    left_u, right_u = inverse[: left.size], inverse[left.size :]
    x_used = np.ascontiguousarray(x[used], dtype=np.float32)
    bad = ~np.isfinite(x_used).all(axis=1)
    if bad.any():
        row = int(used[np.flatnonzero(bad)[0]])
        raise ValueError(f"embedding of {ids_list[row]!r} (row {row}) holds NaN or inf; nothing was scored")
    labels = np.asarray(trials.labels, dtype=np.bool_)
    n_used, dim = x_used.shape

    jobs = [("fp32", "none")] + [(f, s) for f in fmt_names[1:] for s in scale_list]
    rows: list[FormatResult] = []
    scores: dict[tuple[str, str], NDArray[np.float32]] = {}
    ref_scores: NDArray[np.float32] | None = None
    ref_threshold = 0.0
    bar = tqdm(jobs, desc="formats x scales", unit="row", disable=not progress, leave=False)
    for fmt, scale in bar:
        bar.set_postfix_str(f"{fmt}/{scale}")
        t0 = time.perf_counter()
        xq = x_used if fmt == "fp32" else quantize(x_used, fmt, scale)
        s = pair_cosines(xq, left_u, right_u)
        rate, thr = eer(s, labels)
        if ref_scores is None:
            ref_scores, ref_threshold = s, thr
        far_t, frr_t = far_frr(s, labels, threshold) if threshold is not None else (None, None)
        far_r, frr_r = far_frr(s, labels, ref_threshold)
        f = FORMATS[fmt]
        nbytes = storage_bytes(1, dim, f, scale)
        rows.append(
            FormatResult(
                format=fmt,
                scale=scale,
                bits=f.bits,
                bytes_per_vector=nbytes,
                bits_per_value=8.0 * nbytes / dim,
                eer=rate,
                eer_threshold=thr,
                far=far_t,
                frr=frr_t,
                far_at_ref=far_r,
                frr_at_ref=frr_r,
                min_dcf_001=min_dcf(s, labels, p_target=0.01),
                min_dcf_005=min_dcf(s, labels, p_target=0.05),
                mean_abs_score_change=float(np.mean(np.abs(s.astype(np.float64) - ref_scores))),
                zero_vectors=int(np.count_nonzero(~xq.any(axis=1))),
                seconds=time.perf_counter() - t0,
            )
        )
        scores[(fmt, scale)] = s
    bar.close()

    if threshold_note is None:
        threshold_note = (
            "given by the user" if threshold is not None else "none given: FAR/FRR at the float32 EER threshold"
        )
    result = ReportResult(
        rows=tuple(rows),
        threshold=threshold,
        threshold_note=threshold_note,
        dim=dim,
        n_embeddings=n_used,
        n_trials=int(labels.size),
        n_targets=int(labels.sum()),
        n_nontargets=int(labels.size - labels.sum()),
        labels=labels,
        scores=scores,
        title=title,
        notes=tuple(notes),
        on_disk={(get_format(k[0]).name, k[1]): int(v) for k, v in (on_disk or {}).items()},
    )
    if out_dir is not None:
        result = write_report(result, out_dir, figure_formats=figure_formats)
    return result


# ---------------------------------------------------------------------------
# Storage (Table 1)
# ---------------------------------------------------------------------------


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
    head += " FAR % at f32 EER thr | FRR % at f32 EER thr | EER % | EER threshold | minDCF 0.01 | minDCF 0.05 | zero vectors |"
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
        from minifloat_store.eval import plots  # matplotlib only when figures are drawn

        for caption, file in plots.write_figures(result, out, figure_formats=figure_formats).items():
            captions[caption] = file.name
            written.append(file)
    written.insert(0, write_markdown(result, out / "report.md", captions))
    written.insert(1, write_csv(result, out / "results.csv"))
    written.insert(2, write_json(result, out / "results.json"))
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
