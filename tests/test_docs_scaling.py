"""The numbers docs/scaling.md quotes are those benchmarks/bench_scale.py saved, and its estimates follow from them.

No benchmark runs here: the tables are parsed and compared with the JSON in
benchmarks/results/, to half a unit of the last digit printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import minifloat_store as mfs

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "scaling.md").read_text()


def _load(name: str) -> dict:
    return json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text())


def _close(printed: str, value: float) -> bool:
    text = printed.replace(",", "").rstrip("x").split()[0]
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(float(text) - value) <= 0.5 * 10.0**-decimals * (1 + 1e-9)


def _table(header_start: str) -> list[list[str]]:
    lines = DOC[DOC.index(header_start) :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_the_measured_table_is_the_saved_d192_run():
    res = _load("bench_scale")
    rows = _table("| run | shard rows | convert |")
    dask_rows = [r for r in rows if r[0].startswith("dask")]
    assert len(dask_rows) == len(res["dask"])
    for cells, run in zip(dask_rows, res["dask"], strict=True):
        assert int(cells[0].split(",")[1].split()[0]) == run["workers"]
        assert int(cells[1].replace(",", "")) == run["chunk_rows"]
        assert _close(cells[2], run["convert_s"]), cells
        assert _close(cells[3], run["convert_vs_single"]), cells
        assert _close(cells[4], run["search_s"]), cells
        assert _close(cells[5], run["search_vs_single"]), cells
        assert _close(cells[6].removesuffix(" MB"), run["worker_peak_rss_mb"]), cells
    single = [r for r in rows if r[0].startswith("one process")]
    for cells in single:
        base = res["single"][cells[1].replace(",", "")]
        assert _close(cells[2], base["convert_s"]) and _close(cells[4], base["search_s"]), cells


def test_the_estimates_are_n_over_the_saved_per_worker_rates():
    rates = {}
    for name in ("bench_scale", "bench_scale_d512"):
        res = _load(name)
        run = next(r for r in res["dask"] if r["workers"] == 1 and r["chunk_rows"] == 65536)
        rates[res["dim"]] = (run["convert_rows_per_s_per_worker"], run["scan_rows_per_s_per_worker"])
    rows = _table("| n | d | workers | convert |")
    assert len(rows) == 8
    for n_text, d_text, w_text, convert, scan in rows:
        n, d, w = 10 ** int(n_text.removeprefix("10^")), int(d_text), int(w_text)
        for cell, rate in ((convert, rates[d][0]), (scan, rates[d][1])):
            printed_rate = float(cell.split("(")[1].split(" x ")[0].replace(",", ""))
            assert abs(printed_rate - rate) <= 0.5, (cell, rate)
            value, unit = cell.split("= ")[1].split()
            seconds = n / (rate * w)
            shown = {"s": seconds, "min": seconds / 60, "h": seconds / 3600}[unit]
            assert _close(value, shown), (cell, seconds)


def test_the_bytes_table_is_storage_bytes():
    for d_text, *cells in _table("| d | e2m1 | e2m3 | e4m3 | fp16 | fp32 |"):
        for fmt, cell in zip(("e2m1", "e2m3", "e4m3", "fp16", "fp32"), cells, strict=True):
            assert int(cell.removesuffix(" B")) == mfs.storage_bytes(1, int(d_text), fmt, "vector")
