"""What the storage-versus-accuracy report measured: its result types.

:class:`FormatResult` is one (format, scale mode) row, :class:`ReportResult`
the whole report. Rates are fractions here; the writers turn them into percent.
Nothing in this module computes or writes: :mod:`.compute` fills these types,
:mod:`.writers` and :mod:`.plots` read them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from minifloat_store.formats import get_format

__all__ = ["DISPLAY_NAMES", "FidelityRow", "FormatResult", "ReportResult", "pareto_front"]

#: How the study (and this report) names the formats in tables.
DISPLAY_NAMES: Mapping[str, str] = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
}


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


@dataclass(frozen=True)
class FidelityRow:
    """How far one encoding's decisions are from float32's, trial by trial (:mod:`minifloat_store.fidelity`).

    Attributes
    ----------
    name : str
        ``ELEMENT/SCALE[/TRANSFORM]`` (``"e2m1/vector"``, ``"nf4/vector/centre+rotate"``)
        or ``"FAISS <spec>"``.
    kind : {"study", "encoding", "faiss"}
        A study format x scale mode, another library encoding, or a FAISS baseline.
    bits_per_value : float
        Stored bits per value: codes plus per-block and per-vector scales.
    rms_score_error : float
        RMS over the trials of the cosine score of the decoded vectors minus
        that of the float32 vectors.
    flips_at_ref : float
        Fraction of the trials whose decision changes at the float32 EER threshold.
    flips_at_threshold : float or None
        The same at the report's fixed threshold; None without one.
    eer : float
        EER of the encoding's scores, fraction.
    delta_eer, delta_eer_lo, delta_eer_hi : float
        EER minus float32 EER (fraction), and its paired-bootstrap interval
        (:func:`minifloat_store.fidelity.paired_bootstrap_delta_eer`).
    """

    name: str
    kind: str
    bits_per_value: float
    rms_score_error: float
    flips_at_ref: float
    flips_at_threshold: float | None
    eer: float
    delta_eer: float
    delta_eer_lo: float
    delta_eer_hi: float


def pareto_front(rows: Sequence[FidelityRow], key: str = "rms_score_error") -> list[FidelityRow]:
    """The rows no other row beats on both stored bits and ``key`` (an error: smaller is better).

    Parameters
    ----------
    rows : sequence of FidelityRow
    key : {"rms_score_error", "flips_at_ref", "flips_at_threshold"}

    Returns
    -------
    list of FidelityRow
        By increasing bits per value (and decreasing error): each has a
        strictly smaller error than every row with as few or fewer bits.
        Rows whose ``key`` is None are left out.
    """
    front: list[FidelityRow] = []
    best = float("inf")
    usable = [r for r in rows if getattr(r, key) is not None]
    for r in sorted(usable, key=lambda r: (r.bits_per_value, getattr(r, key))):
        if getattr(r, key) < best:
            front.append(r)
            best = getattr(r, key)
    return front


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
    fidelity : tuple of FidelityRow
        Score error, flips and ΔEER of every study row, extra encoding and
        baseline, by bits per value (empty when not measured).
    fidelity_note : str
        How the fidelity rows were measured (fitting split, bootstrap).
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
    fidelity: tuple[FidelityRow, ...] = ()
    fidelity_note: str = ""

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
