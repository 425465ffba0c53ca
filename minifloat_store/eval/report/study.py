"""The study's published numbers (Kolmakov & Golubinskiy, Tables 1-4), as data.

"Assessing the influence of floating-point bit depth on speaker recognition
accuracy" reports, per model, FAR and FRR (percent) at one fixed cosine
threshold for nine storage formats on the three cleaned VoxCeleb-1 lists
(Tables 2-4, no per-vector scaling), one WavLM float4 result with per-vector
scaling (its equation 6), and the memory the embeddings of every trial pair
take (Table 1). This module holds those numbers exactly as printed (see
``/work/shared/PAPER.md`` in the project, an English reading of the paper),
so that :mod:`minifloat_store.eval.pipelines.reproduce` can put them beside ours.

Which column is which list
--------------------------
The study names its lists differently from everyone else: it calls the
37,611-trial list "VoxCeleb-E", the 550,894-trial list "VoxCeleb-O" and the
579,818-trial list "VoxCeleb-H", and prints its columns in the order
37,611 | 550,894 | 579,818. The trial counts are unambiguous, so the columns
map to the standard names by count:

====================  ============  ====================
study's column order  trials        standard name
====================  ============  ====================
1 ("VoxCeleb-E")      37,611        Vox1-O (veri_test2.txt)
2 ("VoxCeleb-O")      550,894       Vox1-H (list_test_hard2.txt)
3 ("VoxCeleb-H")      579,818       Vox1-E (list_test_all2.txt)
====================  ============  ====================

Caveat: for CAM++ and ReDimNet the third column (579,818 = Vox1-E) has the
highest error rates, which is what one would expect of Vox1-H, while for
WavLM it has the lowest. The mapping above follows the trial counts, the only
unambiguous label in the source; a comparison that disagrees with the study
mainly on the last two columns may be seeing a swap in the source.

Rates here are percent, as printed (the rest of the package uses fractions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "STUDY_LISTS",
    "STUDY_MODELS",
    "STUDY_ORDER",
    "TABLE1_MIB",
    "PublishedRate",
    "StudyList",
    "StudyModel",
    "published",
    "published_table",
]


@dataclass(frozen=True)
class StudyList:
    """One column of the study's tables.

    Attributes
    ----------
    name : str
        Standard name: ``"Vox1-O"``, ``"Vox1-H"`` or ``"Vox1-E"`` (the keys of
        :data:`minifloat_store.eval.trials.KNOWN_LISTS`).
    n_trials : int
        Trials in the list; the label the mapping is based on.
    study_label : str
        What the study calls it.
    column : int
        0-based position in the study's tables.
    """

    name: str
    n_trials: int
    study_label: str
    column: int


#: The study's columns in its own order, mapped to the standard names by trial count.
STUDY_LISTS: tuple[StudyList, ...] = (
    StudyList("Vox1-O", 37_611, "VoxCeleb-E", 0),
    StudyList("Vox1-H", 550_894, "VoxCeleb-O", 1),
    StudyList("Vox1-E", 579_818, "VoxCeleb-H", 2),
)

#: Formats in the row order of the study's Tables 2-4 (widest first); the report's rows follow it.
STUDY_ORDER: tuple[str, ...] = ("fp32", "fp16", "bf16", "e5m2", "e4m3", "e3m4", "e3m2", "e2m3", "e2m1")


@dataclass(frozen=True)
class StudyModel:
    """A model of the study and the threshold its table uses.

    Attributes
    ----------
    name : str
        Registry name in :mod:`minifloat_store.eval.models`.
    display_name : str
        As the study names it.
    threshold : float
        Cosine threshold of its table; a trial is accepted when score >= threshold.
    threshold_source : str
        Where the threshold comes from.
    table : int
        Number of its table in the study (2, 3 or 4).
    """

    name: str
    display_name: str
    threshold: float
    threshold_source: str
    table: int


STUDY_MODELS: Mapping[str, StudyModel] = MappingProxyType(
    {
        "campplus": StudyModel("campplus", "CAM++", 0.381, "the model authors' threshold", 2),
        "redimnet": StudyModel("redimnet", "ReDimNet", 0.351, "found by the study", 3),
        "wavlm": StudyModel("wavlm", "WavLM", 0.86, "the model card's threshold", 4),
    }
)


@dataclass(frozen=True)
class PublishedRate:
    """FAR and FRR as the study prints them.

    Attributes
    ----------
    model, list_name, format, scale : str
        What was measured: registry model name, standard list name, format
        name (``"fp32"``, ``"e2m1"``...) and scale mode (``"none"``/``"vector"``).
    far_pct, frr_pct : float
        False-acceptance and false-rejection rates in percent at the model's
        threshold (:attr:`StudyModel.threshold`).
    source : str
        Where in the study the numbers are.
    """

    model: str
    list_name: str
    format: str
    scale: str
    far_pct: float
    frr_pct: float
    source: str


# Tables 2-4 as printed: per format, FAR, FRR for each column in the study's order
# (37,611 | 550,894 | 579,818). Rows in STUDY_ORDER.
_TABLES: dict[str, tuple[tuple[float, float, float, float, float, float], ...]] = {
    "campplus": (
        (0.93, 3.61, 1.39, 2.94, 3.86, 3.47),
        (0.93, 3.61, 1.39, 2.94, 3.86, 3.47),
        (0.93, 3.61, 1.39, 2.94, 3.86, 3.47),
        (0.91, 3.66, 1.36, 2.97, 3.79, 3.53),
        (0.93, 3.62, 1.37, 2.95, 3.84, 3.49),
        (0.94, 3.61, 1.39, 2.93, 3.86, 3.48),
        (0.91, 3.67, 1.36, 2.97, 3.79, 3.53),
        (0.92, 3.63, 1.37, 2.96, 3.83, 3.51),
        (0.80, 4.10, 1.19, 3.29, 3.37, 3.95),
    ),
    "redimnet": (
        (1.57, 0.41, 2.59, 0.19, 4.97, 0.42),
        (1.57, 0.41, 2.52, 0.19, 4.97, 0.42),
        (1.57, 0.41, 2.61, 0.19, 4.97, 0.42),
        (1.56, 0.42, 2.55, 0.19, 4.91, 0.43),
        (1.57, 0.41, 2.58, 0.18, 4.96, 0.43),
        (1.44, 9.47, 2.47, 7.32, 4.53, 0.48),
        (1.56, 0.42, 2.55, 0.19, 4.91, 0.43),
        (1.47, 0.46, 2.40, 0.23, 4.63, 0.46),
        (1.32, 0.56, 2.17, 0.34, 4.17, 0.55),
    ),
    "wavlm": (
        (4.57, 1.10, 6.23, 2.96, 2.01, 1.04),
        (4.57, 1.10, 6.23, 2.96, 2.01, 1.04),
        (4.57, 1.10, 6.23, 2.95, 2.01, 1.04),
        (4.34, 1.17, 5.99, 3.22, 19.26, 1.10),
        (4.10, 1.12, 6.14, 3.04, 19.90, 1.05),
        (4.10, 1.27, 5.68, 3.58, 18.31, 1.18),
        (0.05, 9.60, 1.10, 22.83, 3.20, 9.20),
        (0.06, 55.03, 0.20, 65.57, 0.04, 54.68),
        (0.04, 97.55, 0.00, 99.63, 0.01, 97.54),
    ),
}


def _build() -> dict[tuple[str, str, str, str], PublishedRate]:
    out: dict[tuple[str, str, str, str], PublishedRate] = {}
    for model, rows in _TABLES.items():
        table = STUDY_MODELS[model].table
        for fmt, row in zip(STUDY_ORDER, rows, strict=True):
            for lst in STUDY_LISTS:
                far, frr = row[2 * lst.column], row[2 * lst.column + 1]
                out[(model, lst.name, fmt, "none")] = PublishedRate(
                    model, lst.name, fmt, "none", far, frr, f"Table {table}, column {lst.column + 1}"
                )
    # The text after Table 4: WavLM float4 with per-vector scaling, first column only.
    out[("wavlm", "Vox1-O", "e2m1", "vector")] = PublishedRate(
        "wavlm", "Vox1-O", "e2m1", "vector", 3.5, 1.6, "text after Table 4 (eq. 6 scaling)"
    )
    return out


_PUBLISHED = MappingProxyType(_build())


def published(model: str, list_name: str, fmt: str, scale: str = "none") -> PublishedRate | None:
    """The study's FAR/FRR for one cell, or None where it published none.

    Parameters
    ----------
    model : str
        ``"campplus"``, ``"redimnet"`` or ``"wavlm"``.
    list_name : str
        ``"Vox1-O"``, ``"Vox1-E"`` or ``"Vox1-H"`` (standard names).
    fmt : str
        Format name as in :data:`minifloat_store.formats.FORMATS` (``"fp32"``,
        ``"e4m3"``...).
    scale : {"none", "vector"}
        The study's tables are all ``"none"``; it gives one ``"vector"``
        number (WavLM, e2m1, Vox1-O).

    Returns
    -------
    PublishedRate or None
    """
    return _PUBLISHED.get((model, list_name, fmt, scale))


def published_table(model: str | None = None) -> list[PublishedRate]:
    """Every published FAR/FRR cell (of one model, or all), in table order."""
    return [r for r in _PUBLISHED.values() if model is None or r.model == model]


#: Table 1 as printed: MiB for one 512-value vector per trial pair, no scales,
#: by bits per value and standard list name.
TABLE1_MIB: Mapping[int, Mapping[str, float]] = MappingProxyType(
    {
        bits: MappingProxyType(dict(zip(("Vox1-O", "Vox1-H", "Vox1-E"), mib, strict=True)))
        for bits, mib in (
            (32, (73.46, 1075.96, 1132.46)),
            (16, (36.73, 537.98, 566.23)),
            (8, (18.36, 268.99, 283.11)),
            (6, (13.77, 201.74, 212.34)),
            (4, (9.18, 134.50, 141.56)),
        )
    }
)
