"""End to end: ``minifloat-store demo`` and ``minifloat-store bench`` through the CLI.

The demo runs once per session (about 30-60 s on 2 cores) and the tests read
what it wrote: the files, the stores, the study's key finding, and the numbers
README.md and docs/evaluation.md quote from it (so the docs cannot drift).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minifloat_store.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    # A subprocess, as a user runs it: fresh interpreter, numba compile included.
    proc = subprocess.run(
        [sys.executable, "-m", "minifloat_store.cli", "demo", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,  # about a minute on 2 idle cores; several on a machine shared with other jobs
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def rows(out: Path, profile: str) -> dict[tuple[str, str], dict]:
    doc = json.loads((out / profile / "results.json").read_text())
    return {(r["format"], r["scale"]): r for r in doc["rows"]}


def test_demo_writes_every_report_file_and_a_summary(demo_dir):
    out, stdout = demo_dir
    for profile in ("batchnorm", "nonorm"):
        folder = out / profile
        for name in (
            "report.md",
            "results.csv",
            "results.json",
            "trials.txt",
            "scores_none.png",
            "scores_vector.png",
            "far_frr_e2m1_none.png",
            "far_frr_e2m1_vector.png",
            "bits_vs_eer.png",
            "pareto.png",
            "fidelity.csv",
        ):
            assert (folder / name).stat().st_size > 0, name
        assert "The data is synthetic" in (folder / "report.md").read_text()
        assert (folder / "stores").is_dir() and any((folder / "stores").iterdir())
    readme = (out / "README.md").read_text()
    assert "synthetic" in readme and "[nonorm](nonorm/report.md)" in readme
    assert "e2m1 / none" in stdout and "nonorm" in stdout and "batchnorm" in stdout


# Tolerances below: the demo is seeded, so at seed 0 these values are fixed up to arithmetic (the last
# printed digit). The bounds say how far the claim may move with the data: each states the spread of
# the same quantity measured over seeds 0-7 of the synthetic corpus.


def test_nonorm_collapses_at_e2m1_without_scaling_and_recovers_with_it(demo_dir):
    out, _ = demo_dir
    r = rows(out, "nonorm")
    f32 = r[("fp32", "none")]
    plain = r[("e2m1", "none")]
    scaled = r[("e2m1", "vector")]
    assert 2.3 < f32["eer_pct"] < 3.6  # seed 0: 2.80; seeds 0-7: 2.57-3.23
    assert plain["eer_pct"] > 45.0  # seed 0: 48.96; seeds 0-7: 48.77-49.45
    assert plain["frr_pct"] > 97.0  # README: 97.5 (the study's Table 4: 97.55); seeds 0-7: 97.53-98.99
    assert abs(scaled["eer_pct"] - f32["eer_pct"]) < 0.15  # seed 0: 0.06; seeds 0-7: 0.02-0.10


def test_batchnorm_keeps_its_accuracy_at_e2m1_without_scaling(demo_dir):
    out, _ = demo_dir
    r = rows(out, "batchnorm")
    ref = r[("fp32", "none")]["eer_pct"]
    assert 2.6 < ref < 3.8  # seed 0: 3.00; seeds 0-7: 2.89-3.47
    assert abs(r[("e2m1", "none")]["eer_pct"] - ref) < 0.15  # seed 0: 0.05; seeds 0-7: 0.02-0.11
    for fmt in ("e4m3", "e3m4", "fp16", "bf16"):
        assert abs(r[(fmt, "none")]["eer_pct"] - ref) < 0.03, fmt  # seeds 0-7: at most 0.011


def test_table_1_shows_measured_store_sizes(demo_dir):
    out, _ = demo_dir
    storage = json.loads((out / "nonorm" / "results.json").read_text())["storage"]
    by_fmt = {s["format"]: s for s in storage}
    # A packed store is far smaller than the float32 one, and never smaller than its payload.
    assert by_fmt["e2m1"]["on_disk_vector_bytes"] >= by_fmt["e2m1"]["unique_vector_bytes"]
    assert by_fmt["e2m1"]["on_disk_vector_bytes"] < by_fmt["fp32"]["on_disk_none_bytes"] / 4


def test_bench_on_the_demo_store_reproduces_the_demo_numbers(demo_dir, tmp_path):
    out, _ = demo_dir
    store = out / "nonorm" / "stores" / "fp32.zarr"
    threshold = json.loads((out / "nonorm" / "results.json").read_text())["threshold"]
    code = main(
        [
            "bench",
            str(store),
            "--trials",
            str(out / "nonorm" / "trials.txt"),
            "--threshold",
            str(threshold),
            "--formats",
            "e2m1,e4m3",
            "--encodings",
            "nf4/vector/centre+rotate",
            "--n-boot",
            "100",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert code == 0
    got = rows(tmp_path.parent, tmp_path.name)
    want = rows(out, "nonorm")
    for key in (("fp32", "none"), ("e2m1", "none"), ("e2m1", "vector"), ("e4m3", "vector")):
        assert got[key]["eer_pct"] == want[key]["eer_pct"]
        assert got[key]["frr_pct"] == want[key]["frr_pct"]
    assert (tmp_path / "report.md").exists() and (tmp_path / "bits_vs_eer.png").exists()
    # the fidelity table: same cross-fitting, same bootstrap seed -> the demo's numbers exactly
    fid_got = {r["name"]: r for r in json.loads((tmp_path / "results.json").read_text())["fidelity"]}
    fid_want = {r["name"]: r for r in json.loads((out / "nonorm" / "results.json").read_text())["fidelity"]}
    for name in ("e2m1/vector", "nf4/vector/centre+rotate"):
        measured = [k for k in fid_want[name] if not k.startswith("on_")]  # frontier flags depend on the other rows
        assert [fid_got[name][k] for k in measured] == [fid_want[name][k] for k in measured], name
    assert (tmp_path / "pareto.png").exists() and (tmp_path / "fidelity.csv").exists()


def test_demo_rejects_an_unknown_profile(capsys):
    assert main(["demo", "--profiles", "layernorm", "--out", "unused"]) == 2
    assert "unknown profile(s) layernorm" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# The numbers README.md and docs/evaluation.md quote from the demo
# ---------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DOC_FORMATS = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
MIB = 2**20


def agrees(printed: str, value: float) -> bool:
    """``printed`` is ``value`` rounded to the digits it shows: within half a unit of its last digit."""
    printed = printed.replace(",", "")
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    return abs(float(printed) - value) <= 0.5 * 10.0**-decimals + 1e-9


def check(printed: str, value: float, what: str, problems: list[str]) -> None:
    if not agrees(printed, value):
        problems.append(f"{what}: the doc says {printed}, the demo computes {value:.6g}")


def results(out: Path, profile: str) -> dict:
    return json.loads((out / profile / "results.json").read_text())


def store_mib(doc: dict, fmt: str, scale: str) -> float:
    (entry,) = [e for e in doc["storage"] if e["format"] == fmt]
    return entry["on_disk_none_bytes" if fmt == "fp32" or scale == "none" else "on_disk_vector_bytes"] / MIB


def test_readme_demo_table_is_what_the_demo_computes(demo_dir):
    out, _ = demo_dir
    text = (ROOT / "README.md").read_text()
    line = re.compile(
        r"^(batchnorm|nonorm)\s+(\w+)(?: / (\w+))?\s+([\d.]+)\s+([\d.]+) / ([\d.]+)"
        r"\s+(\d+)\s+([\d.]+)(?:\s+([\d.]+))?\s*$",
        re.M,
    )
    found = line.findall(text)
    assert len(found) == 8, f"README's demo table: found {len(found)} of 8 rows"
    problems: list[str] = []
    for profile, fmt, scale, eer_, far, frr, bpv, mib, thr in found:
        doc = results(out, profile)
        fmt, scale = DOC_FORMATS.get(fmt, fmt), scale or "none"
        row = rows(out, profile)[(fmt, scale)]
        where = f"README {profile} {fmt}/{scale}"
        check(eer_, row["eer_pct"], f"{where} EER", problems)
        check(far, row["far_pct"], f"{where} FAR", problems)
        check(frr, row["frr_pct"], f"{where} FRR", problems)
        check(bpv, row["bytes_per_vector"], f"{where} B/vector", problems)
        check(mib, store_mib(doc, fmt, scale), f"{where} store MiB", problems)
        if thr:
            check(thr, doc["threshold"], f"{where} model threshold", problems)
    prose = " ".join(text.split())
    head = re.search(r"seed 0, ([\d,]+) embeddings of (\d+) values, ([\d,]+) trials", prose)
    assert head, "README: the demo's header sentence is gone"
    doc = results(out, "nonorm")
    for printed, value in zip(head.groups(), (doc["n_embeddings"], doc["dim"], doc["n_trials"]), strict=True):
        check(printed, value, "README demo size", problems)
    frr = re.search(r"e2m1 without scaling rejects ([\d.]+) % of genuine trials", prose)
    check(frr.group(1), rows(out, "nonorm")[("e2m1", "none")]["frr_pct"], "README e2m1 FRR", problems)
    assert not problems, "\n".join(problems)


def _evaluation_tables(text: str) -> dict[str, list[list[str]]]:
    """The two results tables of docs/evaluation.md, by profile: rows of cells."""
    tables = {}
    for profile in ("batchnorm", "nonorm"):
        start = text.index(f"**`{profile}`** (model threshold")
        block = text[start:].split("\n\n")[1]
        tables[profile] = [
            [c.strip() for c in line.strip().strip("|").split("|")]
            for line in block.splitlines()
            if line.startswith("|") and not line.startswith("|---") and not line.startswith("| format")
        ]
    return tables


def test_evaluation_md_results_tables_are_what_the_demo_computes(demo_dir):
    out, _ = demo_dir
    text = (ROOT / "docs" / "evaluation.md").read_text()
    problems: list[str] = []
    for profile, table in _evaluation_tables(text).items():
        doc = results(out, profile)
        head = re.search(rf"\*\*`{profile}`\*\* \(model threshold ([\d.]+), float32 EER threshold ([\d.]+)\)", text)
        check(head.group(1), doc["threshold"], f"{profile} model threshold", problems)
        check(head.group(2), doc["reference_eer_threshold"], f"{profile} float32 EER threshold", problems)
        r = rows(out, profile)
        assert len(table) == 9, f"docs/evaluation.md {profile}: {len(table)} rows, expected 9"
        for cells in table:
            fmt = DOC_FORMATS.get(cells[0], cells[0])
            none, vector = r[(fmt, "none")], r.get((fmt, "vector"), r[(fmt, "none")])  # float32 has one row
            where = f"evaluation.md {profile} {fmt}"
            for cell, row, scale in ((cells[1], none, "none"), (cells[2], vector, "vector")):
                far, frr = cell.split(" / ")
                check(far, row["far_pct"], f"{where} FAR {scale}", problems)
                check(frr, row["frr_pct"], f"{where} FRR {scale}", problems)
            check(cells[3], none["eer_pct"], f"{where} EER none", problems)
            check(cells[4], vector["eer_pct"], f"{where} EER vector", problems)
            check(cells[5], none["eer_threshold"], f"{where} EER threshold none", problems)
            dcf_none, dcf_vector = cells[6].split(" / ")
            check(dcf_none, none["min_dcf_001"], f"{where} minDCF none", problems)
            check(dcf_vector, vector["min_dcf_001"], f"{where} minDCF vector", problems)
    assert not problems, "\n".join(problems)


def test_evaluation_md_store_sizes_are_what_the_demo_measured(demo_dir):
    out, _ = demo_dir
    text = " ".join((ROOT / "docs" / "evaluation.md").read_text().split())
    doc = results(out, "nonorm")
    problems: list[str] = []
    pair = r"([\d.]+) / ([\d.]+)"
    m = re.search(
        rf"float32 ([\d.]+), float16 / bfloat16 {pair}, 8-bit formats {pair}, 6-bit {pair}, e2m1 {pair}\.", text
    )
    assert m, "docs/evaluation.md: the measured store sizes sentence is gone"
    groups = {
        "fp32": ["fp32"],
        "16": ["fp16", "bf16"],
        "8": ["e4m3", "e5m2", "e3m4"],
        "6": ["e2m3", "e3m2"],
        "4": ["e2m1"],
    }
    printed_sizes = [(m.group(1), m.group(1))] + [(m.group(i), m.group(i + 1)) for i in (2, 4, 6, 8)]
    for (none, vector), fmts in zip(printed_sizes, groups.values(), strict=True):
        for fmt in fmts:  # scale none, then vector (fp32 has no scale: one size)
            for printed, scale in ((none, "none"), (vector, "vector")):
                check(printed, store_mib(doc, fmt, scale), f"evaluation.md store MiB {fmt}/{scale}", problems)
    m = re.search(r"The payloads \(`storage_bytes`\) are ([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+) and ([\d.]+) MiB", text)
    assert m, "docs/evaluation.md: the payload sentence is gone"
    for printed, fmts in zip(m.groups(), groups.values(), strict=True):
        for fmt in fmts:
            (entry,) = [e for e in doc["storage"] if e["format"] == fmt]
            check(printed, entry["unique_none_bytes"] / MIB, f"evaluation.md payload MiB {fmt}", problems)
    zero = re.findall(r"\(([\d,]+) of ([\d,]+) at seed 0\)|\(([\d,]+) of ([\d,]+)\s+vectors decode to all zeros", text)
    assert zero, "docs/evaluation.md: the count of all-zero vectors is gone"
    for a, b, c, d in zero:
        check(a or c, rows(out, "nonorm")[("e2m1", "none")]["zero_vectors"], "evaluation.md zero vectors", problems)
        check(b or d, doc["n_embeddings"], "evaluation.md embeddings", problems)
    assert not problems, "\n".join(problems)


def check_bound(printed: str, value: float, what: str, problems: list[str]) -> None:
    """``within <printed>`` claims: the largest value is at most the bound, and the bound is tight (one unit)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    if not value <= float(printed) + 1e-12 or float(printed) - value >= 10.0**-decimals:
        problems.append(f"{what}: the doc says within {printed}, the largest is {value:.6g}")


def test_evaluation_md_findings_are_what_the_demo_computes(demo_dir):
    out, _ = demo_dir
    text = " ".join((ROOT / "docs" / "evaluation.md").read_text().split())
    problems: list[str] = []
    bn = rows(out, "batchnorm")
    ref = bn[("fp32", "none")]
    m = re.search(
        r"keeps EER within ([\d.]+) points of float32 and FAR/FRR at the fixed threshold within ([\d.]+) points; "
        r"the EER threshold moves by at most ([\d.]+)\.",
        text,
    )
    assert m, "docs/evaluation.md: the batchnorm finding is gone"
    check_bound(m.group(1), max(abs(r["eer_pct"] - ref["eer_pct"]) for r in bn.values()), "batchnorm EER", problems)
    far_frr = max(max(abs(r["far_pct"] - ref["far_pct"]), abs(r["frr_pct"] - ref["frr_pct"])) for r in bn.values())
    check_bound(m.group(2), far_frr, "batchnorm FAR/FRR", problems)
    thr = max(abs(r["eer_threshold"] - ref["eer_threshold"]) for r in bn.values())
    check_bound(m.group(3), thr, "batchnorm EER threshold", problems)

    nn = rows(out, "nonorm")
    ref = nn[("fp32", "none")]
    m = re.search(
        r"FAR / FRR ([\d.]+) / ([\d.]+) % at the fixed threshold, EER ([\d.]+) %\), e2m3 rejects ([\d.]+) % of "
        r"targets and e3m2 ([\d.]+) %",
        text,
    )
    assert m, "docs/evaluation.md: the nonorm finding is gone"
    values = (
        nn[("e2m1", "none")]["far_pct"],
        nn[("e2m1", "none")]["frr_pct"],
        nn[("e2m1", "none")]["eer_pct"],
        nn[("e2m3", "none")]["frr_pct"],
        nn[("e3m2", "none")]["frr_pct"],
    )
    for printed, value in zip(m.groups(), values, strict=True):
        check(printed, value, "evaluation.md nonorm finding", problems)
    m = re.search(
        r"every format is back within ([\d.]+) points of the float32 EER \(e2m1: ([\d.]+) % against ([\d.]+) %\)", text
    )
    scaled = [r for (fmt, scale), r in nn.items() if scale == "vector"]
    check_bound(m.group(1), max(abs(r["eer_pct"] - ref["eer_pct"]) for r in scaled), "nonorm scaled EER", problems)
    check(m.group(2), nn[("e2m1", "vector")]["eer_pct"], "evaluation.md e2m1 vector EER", problems)
    check(m.group(3), ref["eer_pct"], "evaluation.md float32 EER", problems)
    m = re.search(r"\(e2m3 here: EER ([\d.]+) %, FRR ([\d.]+) %\).*?moves from ([\d.]+) to ([\d.]+)\)", text)
    e2m3 = nn[("e2m3", "none")]
    values = (e2m3["eer_pct"], e2m3["frr_pct"], ref["eer_threshold"], e2m3["eer_threshold"])
    for printed, value in zip(m.groups(), values, strict=True):
        check(printed, value, "evaluation.md e2m3 example", problems)
    assert not problems, "\n".join(problems)
