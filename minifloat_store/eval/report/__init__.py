"""The storage-versus-accuracy report: what storing embeddings in each format does to verification.

One module per job, each importing only the ones listed before it:

* :mod:`.study`: the study's published numbers and its format order (data);
* :mod:`.results`: :class:`FormatResult` and :class:`ReportResult` (types only);
* :mod:`.plots`: the figures (matplotlib; imported only when figures are drawn);
* :mod:`.writers`: ``report.md``, ``results.csv``, ``results.json``, ``fidelity.csv``, the terminal summary;
* :mod:`.compute`: :func:`run_report`, which scores every trial on the packed codes, and
  :func:`measure_fidelity` (score error, flips, ΔEER per encoding and FAISS baseline).

The names below are the public surface; import them from here.
"""

from minifloat_store.eval.report.compute import measure_fidelity, pair_cosines, run_report
from minifloat_store.eval.report.results import DISPLAY_NAMES, FidelityRow, FormatResult, ReportResult, pareto_front
from minifloat_store.eval.report.study import STUDY_ORDER
from minifloat_store.eval.report.writers import (
    fidelity_text,
    storage_table,
    summary_text,
    write_csv,
    write_fidelity_csv,
    write_json,
    write_markdown,
    write_report,
)

__all__ = [
    "DISPLAY_NAMES",
    "STUDY_ORDER",
    "FidelityRow",
    "FormatResult",
    "ReportResult",
    "fidelity_text",
    "measure_fidelity",
    "pair_cosines",
    "pareto_front",
    "run_report",
    "storage_table",
    "summary_text",
    "write_csv",
    "write_fidelity_csv",
    "write_json",
    "write_markdown",
    "write_report",
]
