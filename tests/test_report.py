"""Tests for minifloat_store.eval.report and .plots: the numbers against direct
computation, the files and their rows, the up/down/equal markers, and the errors."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
import warnings
from functools import cache

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store.eval.data.synthetic import make_corpus
from minifloat_store.eval.metrics import eer, far_frr, min_dcf
from minifloat_store.eval.report import (
    STUDY_ORDER,
    ReportResult,
    pair_cosines,
    run_report,
    storage_table,
    summary_text,
    write_report,
)
from minifloat_store.eval.trials import Trials
from minifloat_store.scoring import cosine_index_pairs


@cache
def small_corpus(profile: str = "nonorm"):
    return make_corpus(profile, seed=11, n_speakers=8, n_utterances=400, n_targets=1200, n_nontargets=1200)


@cache
def small_report(threshold: float | None = 0.6) -> ReportResult:
    c = small_corpus()
    return run_report(c.embeddings, c.ids, c.trials, threshold=threshold, progress=False)


def test_pair_cosines_match_a_plain_formula_and_zero_vectors_score_zero():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    x[2] = 0.0
    left = np.array([0, 1, 2, 3, 4, 5, 0])
    right = np.array([1, 1, 3, 2, 0, 4, 5])
    got = pair_cosines(x, left, right)
    for k, (i, j) in enumerate(zip(left, right, strict=True)):
        a, b = x[i].astype(np.float64), x[j].astype(np.float64)
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        want = 0.0 if na == 0 or nb == 0 else a @ b / (na * nb)
        assert got[k] == pytest.approx(want, abs=1e-6)
    assert got.dtype == np.float32 and got[1] == pytest.approx(1.0, abs=1e-6)


def test_rows_cover_every_format_and_scale_in_the_study_order():
    r = small_report()
    assert r.formats == STUDY_ORDER
    assert [(x.format, x.scale) for x in r.rows][:3] == [("fp32", "none"), ("fp16", "none"), ("fp16", "vector")]
    assert len(r.rows) == 1 + 8 * 2  # float32 is never rescaled: one row
    assert r.scale_modes == ("none", "vector")


@pytest.mark.parametrize(("fmt", "scale"), [("fp32", "none"), ("e2m1", "none"), ("e2m1", "vector"), ("e3m2", "none")])
def test_row_numbers_equal_direct_computation(fmt, scale):
    c = small_corpus()
    r = small_report()
    left, right = c.trials.index_pairs(c.ids)
    x = c.embeddings if fmt == "fp32" else mfs.quantize(c.embeddings, fmt, scale)
    s = pair_cosines(x, left, right)
    labels = c.trials.labels
    row = r.row(fmt, scale)
    rate, thr = eer(s, labels)
    ref_thr = eer(pair_cosines(c.embeddings, left, right), labels)[1]
    assert (row.eer, row.eer_threshold) == pytest.approx((rate, thr))
    assert (row.far, row.frr) == far_frr(s, labels, 0.6)
    assert (row.far_at_ref, row.frr_at_ref) == far_frr(s, labels, ref_thr)
    assert row.min_dcf_001 == pytest.approx(min_dcf(s, labels, p_target=0.01))
    assert row.min_dcf_005 == pytest.approx(min_dcf(s, labels, p_target=0.05))
    assert row.bytes_per_vector == mfs.storage_bytes(1, 512, fmt, scale)
    assert row.zero_vectors == int((~x.any(axis=1)).sum())


def test_storage_table_reproduces_the_studys_table_1():
    # The study counts one 512-value vector per trial pair: 37,611 pairs -> 73.46 MiB in float32.
    for n_trials, want in (
        (37_611, (73.46, 36.73, 18.36, 13.77, 9.18)),
        (550_894, (1075.96, 537.98, 268.99, 201.74, 134.50)),
        (579_818, (1132.46, 566.23, 283.11, 212.34, 141.56)),
    ):
        table = storage_table(n_trials, 4708, 512, ["fp32", "fp16", "e4m3", "e3m2", "e2m1"])
        got = tuple(round(row["per_trial_pair_bytes"] / 2**20, 2) for row in table)
        assert got == want


def test_storage_table_counts_scales_and_disk_sizes():
    table = storage_table(10, 3, 192, ["fp32", "e2m1"], on_disk={("fp32", "none"): 999, ("e2m1", "vector"): 500})
    fp32, e2m1 = table
    assert fp32["unique_none_bytes"] == fp32["unique_vector_bytes"] == 3 * 192 * 4
    assert e2m1["unique_none_bytes"] == 3 * 96 and e2m1["unique_vector_bytes"] == 3 * (96 + 4)
    assert fp32["on_disk_vector_bytes"] == 999 and e2m1["on_disk_none_bytes"] is None


def test_write_report_writes_every_file_with_the_right_rows(tmp_path):
    r = write_report(small_report(), tmp_path, figure_formats=("e2m1", "e4m3"))
    names = {p.name for p in r.files}
    assert {
        "report.md",
        "results.csv",
        "results.json",
        "scores_none.png",
        "scores_vector.png",
        "far_frr_e2m1_none.png",
        "far_frr_e2m1_vector.png",
        "far_frr_e4m3_none.png",
        "bits_vs_eer.png",
    } <= names
    for p in r.files:
        assert p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with (tmp_path / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(x["format"], x["scale"]) for x in rows] == [(x.format, x.scale) for x in r.rows]
    e2m1 = next(x for x in rows if x["format"] == "e2m1" and x["scale"] == "none")
    assert float(e2m1["eer_pct"]) == pytest.approx(100 * r.row("e2m1", "none").eer)

    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["n_trials"] == 2400 and doc["threshold"] == 0.6
    assert len(doc["rows"]) == len(r.rows) and len(doc["storage"]) == 9
    assert doc["rows"][0]["far_pct"] == pytest.approx(100 * r.reference.far)

    md = (tmp_path / "report.md").read_text()
    assert "## Table 1: storage (MiB)" in md
    assert "## Table 2: FAR / FRR, no scaling" in md and "## Table 3: FAR / FRR, per-vector scaling" in md
    assert "![Bits per value against EER](bits_vs_eer.png)" in md
    # minDCF at both operating points the issue names, p_target 0.01 and 0.05.
    assert "| minDCF 0.01 | minDCF 0.05 |" in md
    assert f"| {r.reference.min_dcf_001:.4f} | {r.reference.min_dcf_005:.4f} |" in md


def _table_rows(md: str, heading: str) -> dict[str, list[str]]:
    block = md.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("| ") and not ln.startswith("| format")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in ln.strip("|").split("|")] for ln in lines)}


def test_markers_say_up_down_or_equal_against_float32(tmp_path):
    r = small_report()
    write_report(r, tmp_path, figures=False)
    table = _table_rows((tmp_path / "report.md").read_text(), "## Table 2")
    assert table["float32"][0] == f"{100 * r.reference.far:.2f}"  # the reference has no marker
    for fmt in ("fp16", "e4m3", "e2m1"):
        row = r.row(fmt, "none")
        name = row.display_name
        far_cell, frr_cell = table[name][0], table[name][1]
        for cell, value, ref in ((far_cell, row.far, r.reference.far), (frr_cell, row.frr, r.reference.frr)):
            if value == ref:
                assert cell.endswith(" =")
            elif value > ref:
                assert f" ↑{100 * (value - ref):.2f}" in cell
            else:
                assert f" ↓{100 * (ref - value):.2f}" in cell
    # On this data: e2m1 without scaling rejects far more targets, float16 changes nothing.
    assert "↑" in table["e2m1"][1]
    assert table["float16"][0].endswith("=") and table["float16"][1].endswith("=")


def test_without_threshold_the_fixed_columns_are_left_out(tmp_path):
    r = small_report(None)
    assert r.reference.far is None
    write_report(r, tmp_path, figures=False)
    md = (tmp_path / "report.md").read_text()
    assert "| format | FAR % at f32 EER thr |" in md
    with (tmp_path / "results.csv").open() as fh:
        assert next(csv.DictReader(fh))["far_pct"] == ""


def test_on_disk_sizes_appear_in_table_1(tmp_path):
    c = small_corpus()
    r = run_report(
        c.embeddings,
        c.ids,
        c.trials,
        formats=["e2m1"],
        progress=False,
        on_disk={("e2m1", "vector"): 3 * 2**20, ("fp32", "none"): 5 * 2**20},
    )
    write_report(r, tmp_path, figures=False)
    md = (tmp_path / "report.md").read_text()
    assert "on disk, scale vector" in md
    assert "| e2m1 | 4 |" in md and "| – | 3.00 |" in md and "| 5.00 | 5.00 |" in md


def test_formats_subset_keeps_float32_and_study_order():
    c = small_corpus()
    r = run_report(c.embeddings, c.ids, c.trials, formats=["e2m1", "float8_e4m3fn"], scales=["vector"], progress=False)
    assert [(x.format, x.scale) for x in r.rows] == [("fp32", "none"), ("e4m3", "vector"), ("e2m1", "vector")]


def test_embeddings_in_any_row_order_give_the_same_result():
    c = small_corpus()
    perm = np.random.default_rng(1).permutation(len(c.ids))
    a = run_report(c.embeddings, c.ids, c.trials, formats=["e2m1"], progress=False)
    b = run_report(c.embeddings[perm], c.ids[perm], c.trials, formats=["e2m1"], progress=False)
    for x, y in zip(a.rows, b.rows, strict=True):
        assert (x.eer, x.far_at_ref, x.frr_at_ref) == (y.eer, y.far_at_ref, y.frr_at_ref)


def test_summary_names_float32_and_both_e2m1_rows():
    text = summary_text(small_report())
    assert "float32" in text and "e2m1/none" in text and "e2m1/vector" in text and "B/vector" in text


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"ids": ["a"]}, ValueError, "embeddings but 1 ids"),
        ({"formats": ["e9m9"]}, ValueError, "unknown format 'e9m9'"),
        ({"scales": ["row"]}, ValueError, "unknown scale mode 'row'"),
        ({"threshold": float("nan")}, ValueError, "threshold must be a finite"),
        ({"trials": "trials.txt"}, ValueError, "trials must be a Trials"),
    ],
)
def test_bad_input_is_named(change, error, message):
    c = small_corpus()
    kwargs = {"embeddings": c.embeddings, "ids": c.ids, "trials": c.trials, "progress": False, **change}
    with pytest.raises(error, match=message):
        run_report(**kwargs)


def test_missing_trial_utterance_and_nan_embedding_are_reported():
    c = small_corpus()
    with pytest.raises(KeyError, match="not in the given ids"):
        run_report(c.embeddings[1:], c.ids[1:], c.trials, progress=False)
    x = c.embeddings.copy()
    x[7, 3] = np.nan
    with pytest.raises(ValueError, match=rf"{c.ids[7]}.*NaN"):
        run_report(x, c.ids, c.trials, progress=False)


def test_trials_from_pairs_work_too():
    c = small_corpus()
    t = Trials.from_pairs(c.trials.enroll, c.trials.test, c.trials.labels)
    r = run_report(c.embeddings, c.ids, t, formats=["e4m3"], progress=False)
    assert r.n_trials == 2400


def test_report_module_does_not_import_matplotlib():
    code = "import minifloat_store.eval.report, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bench_cli_writes_the_report_of_a_float32_store(tmp_path, capsys):
    from minifloat_store.cli import main
    from minifloat_store.store import EmbeddingStore

    c = small_corpus()
    with EmbeddingStore.create(tmp_path / "f32.zarr", dim=512, fmt="fp32") as store:
        store.add(c.ids.tolist(), c.embeddings)
    trials = c.write_trials(tmp_path / "trials.txt")
    out = tmp_path / "report"
    code = main(
        [
            "bench",
            str(tmp_path / "f32.zarr"),
            "--trials",
            str(trials),
            "--threshold",
            "0.6",
            "--formats",
            "e2m1,e4m3",
            "--scales",
            "none,vector",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "e2m1/none" in text and "e2m1/vector" in text and "2,400 trials" in text
    with (out / "results.csv").open() as fh:
        got = {(r["format"], r["scale"]): r for r in csv.DictReader(fh)}
    want = small_report()
    for key in (("fp32", "none"), ("e2m1", "none"), ("e4m3", "vector")):
        assert float(got[key]["frr_pct"]) == pytest.approx(100 * want.row(*key).frr)
    assert (out / "far_frr_e2m1_vector.png").exists()


@pytest.mark.parametrize("command", ["bench", "recommend"])
@pytest.mark.parametrize("fmt", ["e2m1", "nf4/vector/centre+rotate"])
def test_bench_and_recommend_refuse_a_packed_store(tmp_path, capsys, command, fmt):
    """Both need the float32 vectors; a store of a study format or of any other encoding gets a clear error."""
    from minifloat_store.choose import parse_encoding
    from minifloat_store.cli import main
    from minifloat_store.store import EmbeddingStore

    c = small_corpus()
    enc = parse_encoding(fmt).fit(c.embeddings) if "/" in fmt else fmt
    with EmbeddingStore.create(tmp_path / "packed.zarr", dim=512, fmt=enc) as store:
        store.add(c.ids.tolist(), c.embeddings)
    trials = c.write_trials(tmp_path / "trials.txt")
    args = ["--out", str(tmp_path / "r")] if command == "bench" else []
    code = main([command, str(tmp_path / "packed.zarr"), "--trials", str(trials), *args])
    assert code == 2
    assert f"stored as {fmt.split('/')[0]}" in capsys.readouterr().err


@pytest.mark.parametrize(("fmt", "scale"), [("e2m1", "none"), ("e2m1", "vector"), ("e4m3", "vector"), ("fp16", "none")])
def test_report_scores_are_the_scoring_modules_cosine_on_the_packed_codes(fmt, scale):
    # The study's numbers must be measured on the path users call: scoring.cosine_index_pairs on the codes.
    c = small_corpus()
    r = small_report()
    used = np.unique(np.concatenate(c.trials.index_pairs(c.ids)))
    ids = c.ids[used]
    left, right = c.trials.index_pairs(ids)
    theirs = cosine_index_pairs(mfs.encode(c.embeddings[used], fmt, scale), left, right)
    assert np.array_equal(r.scores[(fmt, scale)], theirs.astype(np.float32))
    # And decoding first, then taking the cosine, agrees within float32 rounding.
    decoded_first = pair_cosines(mfs.quantize(c.embeddings[used], fmt, scale), left, right)
    np.testing.assert_allclose(decoded_first, theirs, atol=2e-6)
    assert np.array_equal(decoded_first == 0, theirs == 0)  # the zero-vector convention matches


def test_pareto_front_keeps_the_rows_nothing_smaller_beats():
    from minifloat_store.eval.report import FidelityRow, pareto_front

    def row(name, bits, rms):
        return FidelityRow(name, "encoding", bits, rms, 0.0, None, 0.0, 0.0, 0.0, 0.0)

    rows = [row("a", 4, 0.01), row("b", 4, 0.02), row("c", 3, 0.05), row("d", 8, 0.001), row("e", 6, 0.02)]
    assert [r.name for r in pareto_front(rows)] == ["c", "a", "d"]


def test_bench_cli_fidelity_table_with_encodings_and_faiss_baselines(tmp_path, capsys):
    pytest.importorskip("faiss")
    from minifloat_store.cli import main
    from minifloat_store.fidelity import cosine_scores, decision_flips, rms_score_error
    from minifloat_store.store import EmbeddingStore

    c = small_corpus()
    with EmbeddingStore.create(tmp_path / "f32.zarr", dim=512, fmt="fp32") as store:
        store.add(c.ids.tolist(), c.embeddings)
    trials = c.write_trials(tmp_path / "trials.txt")
    out = tmp_path / "report"
    args = ["bench", str(tmp_path / "f32.zarr"), "--trials", str(trials), "--threshold", "0.6", "--out", str(out)]
    args += ["--formats", "e2m1", "--scales", "vector", "--encodings", "nf4/vector/centre+rotate", "int8/vector"]
    assert main([*args, "--baselines", "--n-boot", "50", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Fidelity against float32" in text and "FAISS RR,SQtqmse4" in text
    with (out / "fidelity.csv").open() as fh:
        got = {r["name"]: r for r in csv.DictReader(fh)}
    for name in ("e2m1/vector", "nf4/vector/centre+rotate", "int8/vector", "FAISS SQ8", "FAISS SQ6", "FAISS SQ4"):
        assert name in got, name
    for spec in ("RR,SQtqmse8", "RR,SQtqmse4", "RR,SQtqmse3", "EDEN8", "EDEN4", "EDEN3"):
        assert f"FAISS {spec}" in got, spec
    assert float(got["FAISS SQ8"]["bits_per_value"]) == 8.0 and float(got["int8/vector"]["bits_per_value"]) == 8.0625
    # e2m1/vector against a direct computation on the decoded vectors, trials in the store's row order
    left, right = c.trials.index_pairs(c.ids.tolist())
    ref = cosine_scores(c.embeddings, left, right)
    enc = cosine_scores(mfs.quantize(c.embeddings, "e2m1", "vector"), left, right)
    row = got["e2m1/vector"]
    assert float(row["rms_score_error"]) == pytest.approx(rms_score_error(ref, enc), rel=1e-6)
    assert float(row["flips_at_threshold_pct"]) == pytest.approx(100 * decision_flips(ref, enc, 0.6))
    assert float(row["flips_at_ref_pct"]) == pytest.approx(100 * decision_flips(ref, enc, eer(ref, c.trials.labels)[1]))
    assert float(row["delta_eer_lo_pct"]) <= float(row["delta_eer_pct"]) <= float(row["delta_eer_hi_pct"])
    doc = json.loads((out / "results.json").read_text())
    assert {r["name"] for r in doc["fidelity"]} == set(got) and "cross-fitted" in doc["fidelity_note"]
    # PQ's 256 centroids per sub-space need 256 training vectors; each half has 200: said, not hidden
    assert "Not measured: FAISS PQ256x8" in doc["fidelity_note"] and "FAISS PQ256x8" not in got
    md = (out / "report.md").read_text()
    assert "fidelity against float32" in md and "pareto.png" in md
    assert (out / "pareto.png").stat().st_size > 0


def test_bench_cli_names_a_bad_encoding_before_reading_the_store(tmp_path, capsys):
    from minifloat_store.cli import main

    code = main(["bench", str(tmp_path / "none.zarr"), "--trials", "t.txt", "--out", "o", "--encodings", "nf5/vector"])
    assert code == 2 and "encoding 'nf5/vector'" in capsys.readouterr().err


def test_recommend_cli_prints_the_table_and_the_choice(tmp_path, capsys):
    from minifloat_store.cli import main
    from minifloat_store.store import EmbeddingStore

    c = small_corpus()
    with EmbeddingStore.create(tmp_path / "f32.zarr", dim=512, fmt="fp32") as store:
        store.add(c.ids.tolist(), c.embeddings)
    trials = c.write_trials(tmp_path / "trials.txt")
    cands = ["e2m1/none", "nf4/vector/centre+rotate", "fp32"]
    assert main(["recommend", str(tmp_path / "f32.zarr"), "--threshold", "0.6", "--candidates", *cands]) == 0
    text = capsys.readouterr().out
    assert "nearest neighbours" in text and "Recommended: nf4/vector/centre+rotate" in text
    assert (
        main(["recommend", str(tmp_path / "f32.zarr"), "--trials", str(trials), "--json", "--candidates", *cands]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["pairs"] == "trials" and doc["n_pairs"] == len(c.trials)
    assert [r["name"] for r in doc["table"]] == ["e2m1/none", "nf4/vector/centre+rotate", "fp32"]
    assert doc["table"][0]["accepted"] is False
    assert main(["recommend", str(tmp_path / "f32.zarr")]) == 2
    assert "--trials FILE" in capsys.readouterr().err


def test_demo_real_voices_says_how_to_install_what_is_missing(monkeypatch, capsys):
    from minifloat_store.cli import main
    from minifloat_store.eval.data import debian_voices

    monkeypatch.setattr(debian_voices, "is_available", lambda *a, **k: False)
    assert main(["demo", "--real-voices", "--out", "unused"]) == 2
    assert "apt-get install ktuberling-data klettres-data" in capsys.readouterr().err


def test_bits_vs_eer_figure_takes_an_eer_of_zero(tmp_path):
    """A perfectly separated (or tiny) trial list has EER 0: the figure must still be drawn, without warnings."""
    r = small_report()
    rows = type(r.rows)(dataclasses.replace(x, eer=0.0) for x in r.rows)
    zero = dataclasses.replace(r, rows=rows)  # the float32 reference is one of the rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = write_report(zero, tmp_path, figure_formats=())
    assert (tmp_path / "bits_vs_eer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any(p.name == "bits_vs_eer.png" for p in out.files)
