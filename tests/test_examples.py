"""The scripts in examples/ run as documented and do what they say.

Each runs in a subprocess, as a user would run it, on small synthetic data in
tmp_path; the test then checks the files it left with the library itself.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from minifloat_store import EmbeddingStore
from minifloat_store.eval.metrics import eer
from minifloat_store.eval.trials import read_trials

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str | Path) -> str:
    """Run ``examples/<name>`` with this checkout first on the path; return its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def decisions(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"^verify claim=(\S+) .* -> (ACCEPT|REJECT)$", stdout, flags=re.MULTILINE))


def test_every_example_has_a_test_and_a_docstring_saying_how_to_run_it() -> None:
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == ["accuracy_report.py", "convert_embeddings.py", "enrol_verify_identify_erase.py"]
    for name in scripts:
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        assert text.startswith('"""') and f"python examples/{name}" in text, name


def test_enrol_demo_accepts_the_true_speaker_rejects_an_impostor_and_erases(tmp_path: Path) -> None:
    store_path = tmp_path / "voices.zarr"
    out = run_example("enrol_verify_identify_erase.py", store_path, "--demo")
    assert decisions(out) == {"spk0007": "ACCEPT", "spk0000": "REJECT"}
    assert re.search(r"^identify top-5: spk0007 ", out, flags=re.MULTILINE)
    with EmbeddingStore.open(store_path) as store:
        assert len(store) == 49 and "spk0007" not in store.ids and "spk0008" in store.ids
        assert store.info().deleted == 0  # compacted: the erased vector's row is gone, not just hidden


def test_enrol_example_on_files_decides_by_the_threshold_and_erases_the_named_speaker(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    enrol = rng.standard_normal((30, 64)).astype(np.float32)
    ids = [f"person-{i}" for i in range(30)]
    np.save(tmp_path / "enrol.npy", enrol)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    np.save(tmp_path / "probe.npy", enrol[3] + 0.3 * rng.standard_normal(64).astype(np.float32))
    store_path = tmp_path / "voices.h5"
    out = run_example(
        "enrol_verify_identify_erase.py",
        store_path,
        *("--enrol", tmp_path / "enrol.npy", "--ids", tmp_path / "ids.txt", "--probe", tmp_path / "probe.npy"),
        *("--claim", "person-3", "--impostor-claim", "person-5", "--erase", "person-5", "--format", "e2m1"),
        *("--threshold", "0.6", "--top-k", "3"),
    )
    assert decisions(out) == {"person-3": "ACCEPT", "person-5": "REJECT"}
    assert re.search(r"^identify top-3: person-3 ", out, flags=re.MULTILINE)
    with EmbeddingStore.open(store_path) as store:
        assert store.fmt.name == "e2m1"
        assert store.ids == [i for i in ids if i != "person-5"]


def test_convert_example_keeps_every_id_and_vector_of_a_npy_file(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((500, 96)).astype(np.float32)
    ids = [f"spk{i // 5}/utt{i % 5}" for i in range(500)]
    np.save(tmp_path / "emb.npy", x)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    dst = tmp_path / "emb.zarr"
    out = run_example(
        "convert_embeddings.py", tmp_path / "emb.npy", dst, "--ids", tmp_path / "ids.txt", "--format", "e4m3"
    )
    with EmbeddingStore.open(dst) as store:
        assert store.ids == ids and store.fmt.name == "e4m3"
        y = store.get(ids)
    cos = np.sum(x * y, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert cos.min() > 0.99
    ratio = float(re.search(r"^size ratio: ([\d.]+)x smaller$", out, flags=re.MULTILINE).group(1))
    on_disk = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    assert ratio == pytest.approx(x.nbytes / on_disk, rel=0.01)


def test_convert_example_demo_reads_an_hdf5_dataset_and_its_sibling_ids(tmp_path: Path) -> None:
    src = tmp_path / "demo.h5"
    out = run_example("convert_embeddings.py", f"{src}:/emb/vectors", tmp_path / "demo-store.h5", "--demo")
    with h5py.File(src, "r") as f:
        source_ids = [s.decode() for s in f["emb/ids"][()]]
        assert f["emb/vectors"].shape == (len(source_ids), 192)
    with EmbeddingStore.open(tmp_path / "demo-store.h5") as store:
        assert store.ids == source_ids
    assert f"reopened {tmp_path / 'demo-store.h5'}: {len(source_ids):,} ids" in out


def test_accuracy_report_demo_writes_a_row_per_format_and_scale_with_float32_eer(tmp_path: Path) -> None:
    out_dir = tmp_path / "report"
    out = run_example(
        "accuracy_report.py", "--demo", "--out", out_dir, "--formats", "e2m1,e4m3", "--threshold", "0.2", "--no-figures"
    )
    assert {p.name for p in out_dir.iterdir()} >= {"report.md", "results.csv", "results.json"}
    with open(out_dir / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["format"], r["scale"]) for r in rows] == [
        ("fp32", "none"),
        ("e4m3", "none"),
        ("e4m3", "vector"),
        ("e2m1", "none"),
        ("e2m1", "vector"),
    ]
    assert len(json.loads((out_dir / "results.json").read_text(encoding="utf-8"))["rows"]) == 5

    # The float32 row is the EER of plain cosine scores on the demo's own input files.
    x = np.load(out_dir / "demo-embeddings.npy")
    ids = (out_dir / "demo-ids.txt").read_text(encoding="utf-8").split()
    trials = read_trials(out_dir / "demo-trials.txt")
    left, right = trials.index_pairs(ids)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    expected, _ = eer(np.sum(unit[left] * unit[right], axis=1), trials.labels)
    assert float(rows[0]["eer_pct"]) == pytest.approx(100 * expected, abs=1e-3)
    assert 0 < expected < 0.2  # the demo's speakers overlap: the report has something to measure
    assert "smallest within 0.1 points of float32 EER:" in out
