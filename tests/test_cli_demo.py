"""End to end: ``minifloat-store demo`` and ``minifloat-store bench`` through the CLI.

The demo runs once per session (about 30-60 s on 2 cores) and the tests read
what it wrote: the files, the stores, and the study's key finding.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minifloat_store.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> tuple[Path, float, str]:
    out = tmp_path_factory.mktemp("demo")
    t0 = time.perf_counter()
    # A subprocess, as a user runs it: fresh interpreter, numba compile included.
    proc = subprocess.run(
        [sys.executable, "-m", "minifloat_store.cli", "demo", "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, seconds, proc.stdout


def rows(out: Path, profile: str) -> dict[tuple[str, str], dict]:
    doc = json.loads((out / profile / "results.json").read_text())
    return {(r["format"], r["scale"]): r for r in doc["rows"]}


def test_demo_writes_every_report_file_and_a_summary(demo_dir):
    out, _, stdout = demo_dir
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
        ):
            assert (folder / name).stat().st_size > 0, name
        assert "The data is synthetic" in (folder / "report.md").read_text()
        assert (folder / "stores").is_dir() and any((folder / "stores").iterdir())
    readme = (out / "README.md").read_text()
    assert "synthetic" in readme and "[nonorm](nonorm/report.md)" in readme
    assert "e2m1 / none" in stdout and "nonorm" in stdout and "batchnorm" in stdout


def test_demo_finishes_in_under_two_minutes(demo_dir):
    _, seconds, _ = demo_dir
    assert seconds < 120


def test_nonorm_collapses_at_e2m1_without_scaling_and_recovers_with_it(demo_dir):
    out, _, _ = demo_dir
    r = rows(out, "nonorm")
    f32 = r[("fp32", "none")]
    plain = r[("e2m1", "none")]
    scaled = r[("e2m1", "vector")]
    assert plain["eer_pct"] > 20.0
    assert plain["frr_pct"] > 90.0  # at the fixed model threshold, as in the study's Table 4
    assert abs(scaled["eer_pct"] - f32["eer_pct"]) < 2.0
    assert 1.0 < f32["eer_pct"] < 6.0


def test_batchnorm_keeps_its_accuracy_at_e2m1_without_scaling(demo_dir):
    out, _, _ = demo_dir
    r = rows(out, "batchnorm")
    assert abs(r[("e2m1", "none")]["eer_pct"] - r[("fp32", "none")]["eer_pct"]) < 1.0
    for fmt in ("e4m3", "e3m4", "fp16", "bf16"):
        assert abs(r[(fmt, "none")]["eer_pct"] - r[("fp32", "none")]["eer_pct"]) < 0.2


def test_table_1_shows_measured_store_sizes(demo_dir):
    out, _, _ = demo_dir
    storage = json.loads((out / "nonorm" / "results.json").read_text())["storage"]
    by_fmt = {s["format"]: s for s in storage}
    # A packed store is far smaller than the float32 one, and never smaller than its payload.
    assert by_fmt["e2m1"]["on_disk_vector_bytes"] >= by_fmt["e2m1"]["unique_vector_bytes"]
    assert by_fmt["e2m1"]["on_disk_vector_bytes"] < by_fmt["fp32"]["on_disk_none_bytes"] / 4


def test_bench_on_the_demo_store_reproduces_the_demo_numbers(demo_dir, tmp_path):
    out, _, _ = demo_dir
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


def test_demo_rejects_an_unknown_profile(capsys):
    assert main(["demo", "--profiles", "layernorm", "--out", "unused"]) == 2
    assert "unknown profile(s) layernorm" in capsys.readouterr().err
