"""reproduce: up-front checks, the orchestration end to end on a tiny fake VoxCeleb, and the study's numbers as data.

The real run needs VoxCeleb-1 and three pretrained checkpoints. Here: a fake
``wav/idXXXXX/<video>/<NNNNN>.wav`` tree of synthetic speech-like audio, two
small trial lists under non-official names (so the MD5 check does not apply)
standing for Vox1-O and Vox1-H, and random-weight checkpoints in a weights
directory laid out as docs/models.md says.
"""

from __future__ import annotations

import json
import pathlib

import pytest

torch = pytest.importorskip("torch")
sf = pytest.importorskip("soundfile")
pytest.importorskip("transformers")

from synthetic_audio import speech_like  # noqa: E402
from tiny_models import save_tiny_redimnet, save_tiny_wavlm  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store.cli import main  # noqa: E402
from minifloat_store.eval.models import campplus, wavlm  # noqa: E402
from minifloat_store.eval.pipelines import reproduce as rep  # noqa: E402
from minifloat_store.eval.report import study  # noqa: E402
from minifloat_store.eval.trials import KNOWN_LISTS  # noqa: E402
from minifloat_store.store import EmbeddingStore  # noqa: E402

SR = 16000


@pytest.fixture
def no_caches(tmp_path, monkeypatch):
    """Point every place a loader searches at empty folders."""
    empty = tmp_path / "empty"
    for var in ("MINIFLOAT_STORE_WEIGHTS", "MODELSCOPE_CACHE", "TORCH_HOME", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.setenv(var, str(empty / var.lower()))


def fake_voxceleb(root: pathlib.Path) -> tuple[list[str], pathlib.Path, pathlib.Path]:
    """3 speakers x 4 utterances; list O uses speakers 0-1, list H all three."""
    ids = []
    for s in range(3):
        for u in range(4):
            uid = f"id1{s:04d}/vid{u % 2}/{u + 1:05d}.wav"
            (root / "wav" / uid).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / "wav" / uid, speech_like(1.0 + 0.2 * u, seed=10 * s + u, f0=110.0 + 50.0 * s), SR)
            ids.append(uid)

    def write(path, utts):
        lines = [f"{int(a[:7] == b[:7])} {a} {b}" for i, a in enumerate(utts) for b in utts[i + 1 :]]
        path.write_text("\n".join(lines) + "\n")
        return path

    return ids, write(root / "tiny_o.txt", ids[:8]), write(root / "tiny_h.txt", ids)


def fake_weights(wdir: pathlib.Path) -> pathlib.Path:
    """Random-weight checkpoints where docs/models.md puts the real ones."""
    torch.manual_seed(0)
    (wdir / "campplus").mkdir(parents=True)
    torch.save(campplus.CAMPPlus().state_dict(), wdir / "campplus" / "campplus_voxceleb.bin")
    (wdir / "redimnet").mkdir()
    save_tiny_redimnet(wdir / "redimnet" / "b2-vox2-ft_lm.pt")
    save_tiny_wavlm(wdir / "wavlm", wavlm.PUBLISHED_FEATURE_EXTRACTOR["do_normalize"], xvector_output_dim=64)
    return wdir


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("reproduce")
    ids, list_o, list_h = fake_voxceleb(base / "vox")
    return base, ids, list_o, list_h, fake_weights(base / "weights")


@pytest.fixture(scope="module")
def first_run(setup):
    base, ids, list_o, list_h, wdir = setup
    argv = [
        "reproduce",
        "--voxceleb",
        str(base / "vox"),
        "--weights-dir",
        str(wdir),
        "--out",
        str(base / "out"),
        "--lists",
        f"Vox1-O={list_o},Vox1-H={list_h}",
        "--no-verify-weights",
        "--no-figures",
        "--no-progress",
    ]
    assert main(argv) == 0
    return argv, base / "out"


def test_every_model_embeds_the_union_of_the_lists_once(setup, first_run):
    base, ids, *_ = setup
    _, out = first_run
    for m, dim in (("campplus", 512), ("redimnet", 32), ("wavlm", 64)):
        with EmbeddingStore.open(out / "embeddings" / f"{m}.zarr") as store:
            assert sorted(store.ids) == sorted(ids) and store.dim == dim and store.fmt.name == "fp32"
            assert [lst["n_utterances"] for lst in store.metadata["lists"]] == [8, 12]


def test_reports_use_the_studys_threshold_per_model_and_list(first_run):
    _, out = first_run
    for m in ("campplus", "redimnet", "wavlm"):
        for name, n_trials in (("Vox1-O", 28), ("Vox1-H", 66)):
            res = json.loads((out / "reports" / m / name / "results.json").read_text())
            assert res["threshold"] == study.STUDY_MODELS[m].threshold and res["n_trials"] == n_trials


def test_comparison_puts_our_numbers_beside_the_studys_column_for_each_list(first_run):
    _, out = first_run
    doc = json.loads((out / "comparison.json").read_text())
    cell = {(c["model"], c["list"], c["format"], c["scale"]): c for c in doc["cells"]}
    assert len(cell) == 3 * 2 * 10  # models x lists x (9 formats + e2m1 with the scale)
    # Vox1-H is the study's second column (550,894 trials), Vox1-O its first.
    assert cell[("campplus", "Vox1-H", "fp32", "none")]["study"]["far_pct"] == 1.39
    assert cell[("redimnet", "Vox1-O", "e3m4", "none")]["study"]["frr_pct"] == 9.47
    assert cell[("wavlm", "Vox1-O", "e2m1", "vector")]["study"]["far_pct"] == 3.5
    assert cell[("campplus", "Vox1-O", "e2m1", "vector")]["study"] is None
    # Ours are the report's numbers.
    res = json.loads((out / "reports" / "wavlm" / "Vox1-H" / "results.json").read_text())
    row = next(r for r in res["rows"] if (r["format"], r["scale"]) == ("e3m2", "none"))
    ours = cell[("wavlm", "Vox1-H", "e3m2", "none")]["ours"]
    assert (ours["far_pct"], ours["frr_pct"]) == (row["far_pct"], row["frr_pct"])

    md = (out / "comparison.md").read_text()
    assert "## CAM++ (threshold 0.381" in md and "### Vox1-H: tiny_h.txt, 66 trials (the study's column 2" in md
    assert md.count("not the published") == 6  # each model x list is flagged: the files are not the real lists
    line = next(x for x in md.splitlines() if x.startswith("| float32 |") and "| 1.39 |" in x)
    assert "| 2.94 |" in line  # CAM++ float32 FRR on the 550,894 column


def test_rerun_resumes_without_embedding_again(first_run, capsys):
    argv, out = first_run
    capsys.readouterr()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.count("(0 added by this run") == 6 and "comparison with the study" in text


def test_missing_weights_are_all_reported_with_download_instructions_before_any_work(
    setup, no_caches, tmp_path, capsys, monkeypatch
):
    base, ids, list_o, list_h, _ = setup

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded although the setup was incomplete")

    monkeypatch.setattr("minifloat_store.eval.models.registry.ModelSpec.load", no_loading)
    out = tmp_path / "out"
    rc = main(
        [
            "reproduce",
            "--voxceleb",
            str(base / "vox"),
            "--weights-dir",
            str(tmp_path / "nothing"),
            "--out",
            str(out),
            "--lists",
            f"Vox1-O={list_o}",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "cannot start; fix these first" in err
    for model, url in (
        ("campplus", "modelscope.cn"),
        ("redimnet", "github.com/IDRnD/ReDimNet"),
        ("wavlm", "huggingface.co/microsoft/wavlm-base-plus-sv"),
    ):
        assert f"{model}: weights not in {tmp_path / 'nothing' / model}/" in err and url in err
    assert not out.exists()


def test_missing_voxceleb_lists_and_audio_are_reported_together(setup, tmp_path):
    base, ids, list_o, list_h, wdir = setup
    with pytest.raises(rep.ReproduceSetupError) as e:
        rep.plan(tmp_path / "no-such-dir", wdir, verify_weights=False)
    assert len(e.value.problems) == 1 and "does not exist" in e.value.problems[0]

    (tmp_path / "vox").mkdir()
    with pytest.raises(rep.ReproduceSetupError) as e:
        rep.plan(tmp_path / "vox", wdir, verify_weights=False)
    assert "has no wav/ folder" in str(e.value) and "no cleaned trial list" in str(e.value)

    (tmp_path / "vox" / "wav").mkdir()
    (tmp_path / "vox" / "veri_test2.txt").write_text(list_o.read_text())  # official name, other content
    with pytest.raises(rep.ReproduceSetupError) as e:
        rep.plan(tmp_path / "vox", wdir, verify_weights=False)
    assert "named like Vox1-O (veri_test2.txt) but its MD5 is" in str(e.value)

    with pytest.raises(rep.ReproduceSetupError) as e:
        rep.plan(tmp_path / "vox", wdir, lists=[f"Vox1-E={list_h}"], verify_weights=False)
    assert "Vox1-E (tiny_h.txt): 12 of 12 utterances are missing" in str(e.value) and "vox1_dev_wav" in str(e.value)


def test_official_lists_are_found_by_name_in_the_voxceleb_folder(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "list_test_hard2.txt").write_text("x")
    (tmp_path / "veri_test2.txt").write_text("x")
    found = rep.find_lists(tmp_path)
    assert [n for n, _ in found] == ["Vox1-O", "Vox1-H"]  # the study's column order
    with pytest.raises(ValueError, match="list_test_all2.txt is not in"):
        rep.find_lists(tmp_path, ["Vox1-E"])


# -- the study's numbers ---------------------------------------------------------


def test_study_columns_map_to_the_standard_lists_by_trial_count():
    for lst in study.STUDY_LISTS:
        assert KNOWN_LISTS[lst.name].n_trials == lst.n_trials
    assert [s.n_trials for s in study.STUDY_LISTS] == [37_611, 550_894, 579_818]  # the study's order


@pytest.mark.parametrize(
    ("model", "list_name", "fmt", "far", "frr"),
    [
        ("campplus", "Vox1-O", "fp32", 0.93, 3.61),
        ("campplus", "Vox1-H", "e2m1", 1.19, 3.29),
        ("campplus", "Vox1-E", "fp32", 3.86, 3.47),
        ("redimnet", "Vox1-H", "fp16", 2.52, 0.19),
        ("redimnet", "Vox1-O", "e3m4", 1.44, 9.47),
        ("wavlm", "Vox1-E", "e5m2", 19.26, 1.10),
        ("wavlm", "Vox1-H", "e2m1", 0.00, 99.63),
    ],
)
def test_published_cells_as_printed(model, list_name, fmt, far, frr):
    cell = study.published(model, list_name, fmt)
    assert (cell.far_pct, cell.frr_pct) == (far, frr)


def test_published_table_is_complete_and_has_one_scaled_cell():
    cells = study.published_table()
    assert len(cells) == 3 * 3 * 9 + 1
    assert [c for c in cells if c.scale == "vector"] == [study.published("wavlm", "Vox1-O", "e2m1", "vector")]
    assert study.published("campplus", "Vox1-O", "e2m1", "vector") is None
    thresholds = {m: s.threshold for m, s in study.STUDY_MODELS.items()}
    assert thresholds == {"campplus": 0.381, "redimnet": 0.351, "wavlm": 0.86}


@pytest.mark.parametrize(("bits", "fmt"), [(32, "fp32"), (16, "fp16"), (8, "e4m3"), (6, "e3m2"), (4, "e2m1")])
def test_table1_is_what_the_codec_stores_for_one_512_vector_per_trial(bits, fmt):
    for lst in study.STUDY_LISTS:
        mib = mfs.storage_bytes(lst.n_trials, 512, fmt, "none") / 2**20
        assert study.TABLE1_MIB[bits][lst.name] == pytest.approx(mib, abs=0.006)
