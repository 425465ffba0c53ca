"""extract: embeddings of every utterance into a float32 store, resumable, with clear audio and weights errors.

Models are small random-weight checkpoints written by the tests (a tiny
ReDimNet; a full-size CAM++ for the CLI path); audio is synthetic speech-like
tones written with soundfile, one file at 8 kHz to exercise resampling.
"""

from __future__ import annotations

import hashlib
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sf = pytest.importorskip("soundfile")

from synthetic_audio import speech_like  # noqa: E402
from tiny_models import save_tiny_redimnet  # noqa: E402

from minifloat_store.cli import main  # noqa: E402
from minifloat_store.eval.data.audio import read_audio  # noqa: E402
from minifloat_store.eval.models import MODELS, campplus, redimnet  # noqa: E402
from minifloat_store.eval.pipelines.extract import (  # noqa: E402
    extract,
    locate_weights,
    read_utterance_list,
    weights_fingerprint,
)
from minifloat_store.eval.trials import read_trials  # noqa: E402
from minifloat_store.store import EmbeddingStore  # noqa: E402

SR = 16000


def write_corpus(root: pathlib.Path, speakers: int = 3, per_speaker: int = 4) -> list[str]:
    """VoxCeleb-style files ``idXXXXX/<video>/<NNNNN>.wav``; the second file is at 8 kHz."""
    ids = []
    for s in range(speakers):
        for u in range(per_speaker):
            uid = f"id1{s:04d}/vid{u % 2}/{u:05d}.wav"
            rate = 8000 if (s, u) == (0, 1) else SR
            path = root / uid
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, speech_like(1.0 + 0.25 * u, seed=10 * s + u, f0=110.0 + 45.0 * s, rate=rate), rate)
            ids.append(uid)
    return ids


def write_trials(path: pathlib.Path, ids: list[str]) -> pathlib.Path:
    lines = []
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            lines.append(f"{int(a.split('/')[0] == b.split('/')[0])} {a} {b}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("extract")
    ids = write_corpus(base / "wav")
    trials = write_trials(base / "trials.txt", ids)
    torch.manual_seed(0)
    ckpt = base / "tiny-redimnet.pt"
    save_tiny_redimnet(ckpt)
    return base, ids, trials, ckpt


@pytest.fixture(scope="module")
def reference(corpus):
    """Embeddings of a fresh, uninterrupted run: what every other run must reproduce."""
    base, ids, trials, ckpt = corpus
    out = base / "reference.zarr"
    summary = extract("redimnet", base / "wav", read_trials(trials), out, weights=ckpt, batch_size=5, progress=False)
    with EmbeddingStore.open(out) as store:
        return summary, dict(zip(store.ids, store.to_numpy(), strict=True))


def stored(path) -> dict[str, np.ndarray]:
    with EmbeddingStore.open(path) as store:
        ids = store.ids
        assert len(set(ids)) == len(ids)
        return dict(zip(ids, store.to_numpy(), strict=True))


def assert_same_embeddings(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        # embed_batch groups equal-length utterances differently per run; float rounding only
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_every_trial_utterance_is_stored_once_as_the_model_embeds_it(corpus, reference):
    base, ids, trials, ckpt = corpus
    summary, embeddings = reference
    assert summary.complete and summary.added == len(ids) == summary.requested and not summary.failed
    assert summary.resampled == {8000: 1}
    assert sorted(embeddings) == sorted(ids)
    model = redimnet.load(weights=ckpt)
    for uid in (ids[0], ids[1], ids[-1]):  # ids[1] is the 8 kHz file, resampled as read_audio does
        np.testing.assert_allclose(embeddings[uid], model.embed(read_audio(base / "wav" / uid)), rtol=1e-5, atol=1e-6)
    # the store is what bench reads: float32 and indexable by the trial list
    with EmbeddingStore.open(base / "reference.zarr") as store:
        assert store.fmt.name == "fp32" and store.dim == 32
        read_trials(trials).index_pairs(store.ids)


def test_metadata_records_model_weights_and_list(corpus, reference):
    base, ids, trials, ckpt = corpus
    with EmbeddingStore.open(base / "reference.zarr") as store:
        meta = store.metadata
    assert (meta["model"], meta["dim"], meta["sample_rate"], meta["threshold"]) == ("redimnet", 32, SR, 0.351)
    assert meta["weights"]["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert meta["weights"]["path"] == str(ckpt.resolve())
    (lst,) = meta["lists"]
    assert lst["kind"] == "trials" and lst["md5"] == hashlib.md5(trials.read_bytes()).hexdigest()
    assert lst["n_utterances"] == len(ids) and lst["known"] is None


def test_interrupted_run_resumes_without_duplicates_and_equals_a_fresh_run(corpus, reference, tmp_path):
    base, ids, trials, ckpt = corpus
    model = redimnet.load(weights=ckpt)

    class CtrlCOnThirdBatch:
        """The real model, with a Ctrl-C arriving while the third batch is embedded."""

        name, dim, sample_rate, threshold = model.name, model.dim, model.sample_rate, model.threshold
        calls = 0

        def embed_batch(self, waves):
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
            return model.embed_batch(waves)

    out = tmp_path / "e.zarr"
    with pytest.raises(KeyboardInterrupt):
        extract(CtrlCOnThirdBatch(), base / "wav", read_trials(trials), out, weights=ckpt, batch_size=2, progress=False)
    assert len(stored(out)) == 4  # two committed batches survive the interrupt

    summary = extract("redimnet", base / "wav", read_trials(trials), out, weights=ckpt, batch_size=2, progress=False)
    assert (summary.already_stored, summary.added, summary.complete) == (4, len(ids) - 4, True)
    assert_same_embeddings(stored(out), reference[1])
    with EmbeddingStore.open(out) as store:
        assert len(store.metadata["lists"]) == 1  # the same list is recorded once


def test_bad_file_stops_a_strict_run_and_the_rerun_after_fixing_it_completes(corpus, reference, tmp_path, capsys):
    base, ids, trials, ckpt = corpus
    wav = tmp_path / "wav"
    write_corpus(wav)
    bad = wav / ids[7]
    good_bytes = bad.read_bytes()
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    out = tmp_path / "e.zarr"
    argv = [
        "extract",
        "--model",
        "redimnet",
        "--weights",
        str(ckpt),
        "--audio-root",
        str(wav),
        "--trials",
        str(trials),
        "--out",
        str(out),
        "--batch-size",
        "3",
        "--no-progress",
    ]

    assert main([*argv, "--max-failures", "0"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "cannot decode" in err and "stored so far are kept" in err
    # batches 1-2 and the good files of batch 3 (ids 6-8) were committed before the run stopped
    assert sorted(stored(out)) == sorted(ids[:7] + ids[8:9])

    bad.write_bytes(good_bytes)
    assert main(argv) == 0
    assert "4 added by this run, 8 were already there" in capsys.readouterr().out
    assert_same_embeddings(stored(out), reference[1])


def test_undecodable_and_too_short_files_are_skipped_and_reported_with_exit_status_1(corpus, tmp_path, capsys):
    base, ids, trials, ckpt = corpus
    wav = tmp_path / "wav"
    write_corpus(wav)
    (wav / ids[2]).write_bytes(b"not audio at all")
    sf.write(wav / ids[5], np.zeros(100, np.float32), SR)  # 100 samples: below the model's 257
    out = tmp_path / "e.zarr"
    rc = main(
        [
            "extract",
            "--model",
            "redimnet",
            "--weights",
            str(ckpt),
            "--audio-root",
            str(wav),
            "--trials",
            str(trials),
            "--out",
            str(out),
            "--batch-size",
            "4",
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 1
    assert "10 of 12 utterances stored" in text and "2 utterance(s) could not be embedded" in text
    assert f"{wav / ids[2]}: cannot decode" in text
    assert f"{wav / ids[5]}: redimnet: waveform of 100 samples is too short" in text
    assert sorted(stored(out)) == sorted(set(ids) - {ids[2], ids[5]})


def test_missing_audio_is_an_error_before_any_work(corpus, tmp_path, capsys):
    base, ids, trials, ckpt = corpus
    wav = tmp_path / "wav"
    write_corpus(wav)
    (wav / ids[4]).unlink()
    out = tmp_path / "e.zarr"
    rc = main(
        [
            "extract",
            "--model",
            "redimnet",
            "--weights",
            str(ckpt),
            "--audio-root",
            str(wav),
            "--trials",
            str(trials),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and f"1 of 12 audio files to embed do not exist under {wav}" in err and str(wav / ids[4]) in err
    assert not out.exists()


def test_resuming_with_other_weights_is_refused(corpus, reference, tmp_path):
    base, ids, trials, ckpt = corpus
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    save_tiny_redimnet(other)
    out = tmp_path / "e.zarr"
    extract("redimnet", base / "wav", ids[:2], out, weights=ckpt, progress=False)
    with pytest.raises(ValueError, match="weights SHA-256"):
        extract("redimnet", base / "wav", ids, out, weights=other, progress=False)
    assert len(stored(out)) == 2


def test_plain_list_file_and_bad_ids(corpus, tmp_path):
    base, ids, trials, ckpt = corpus
    lst = tmp_path / "list.txt"
    lst.write_text("# utterances\n" + "\n".join(ids[:3]) + "\n\n")
    assert read_utterance_list(lst) == ids[:3]
    lst.write_text(f"{ids[0]}\n{ids[1]}\n{ids[0]}\n")
    with pytest.raises(ValueError, match=r"line 3 repeats .* \(first on line 1\)"):
        read_utterance_list(lst)
    for bad in ("/etc/passwd", "../x.wav"):
        with pytest.raises(ValueError, match="not a relative path inside the audio root"):
            extract("redimnet", base / "wav", [bad], tmp_path / "e.zarr", weights=ckpt, progress=False)


def test_cli_with_a_list_file_and_a_random_weight_campplus_checkpoint(corpus, tmp_path, capsys):
    base, ids, trials, ckpt = corpus
    torch.manual_seed(0)
    weights = tmp_path / "campplus_voxceleb.bin"
    torch.save(campplus.CAMPPlus().state_dict(), weights)
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(ids[:3]) + "\n")
    out = tmp_path / "cam.zarr"
    argv = [
        "extract",
        "--model",
        "campplus",
        "--weights",
        str(weights),
        "--audio-root",
        str(base / "wav"),
        "--list",
        str(lst),
        "--out",
        str(out),
        "--no-progress",
    ]
    # not the published file: the SHA-256 check refuses it with both sums, before anything is written
    assert main(argv) == 2
    assert "is not the published campplus_voxceleb.bin" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--no-verify-weights"]) == 0
    text = capsys.readouterr().out
    assert "3 of 3 utterances stored" in text and "1 file(s) resampled from 8000 Hz to 16000 Hz" in text
    with EmbeddingStore.open(out) as store:
        assert store.dim == 512 and store.metadata["lists"][0]["kind"] == "list"


def test_missing_weights_name_what_to_download(corpus, tmp_path, monkeypatch, capsys):
    base, ids, trials, ckpt = corpus
    monkeypatch.setenv("MINIFLOAT_STORE_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "modelscope"))
    rc = main(
        [
            "extract",
            "--model",
            "campplus",
            "--audio-root",
            str(base / "wav"),
            "--trials",
            str(trials),
            "--out",
            str(tmp_path / "e.zarr"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "campplus_voxceleb.bin" in err and "modelscope.cn" in err and str(tmp_path / "weights" / "campplus") in err


def test_locate_weights_is_the_registry_search_and_ignores_loader_only_options(corpus, tmp_path, monkeypatch):
    _, _, _, ckpt = corpus
    assert locate_weights("redimnet", ckpt, threshold=0.5) == MODELS["redimnet"].locate(ckpt) == ckpt
    monkeypatch.setenv("MINIFLOAT_STORE_WEIGHTS", str(tmp_path / "weights"))
    with pytest.raises(ValueError, match="no published ReDimNet checkpoint 'b9-vox2-ft_lm.pt'.*--weights"):
        locate_weights("redimnet", model_name="b9")
    with pytest.raises(ValueError, match="unknown model 'nope'; known models: campplus, redimnet"):
        locate_weights("nope")


def test_wavlm_weights_are_a_directory_fingerprinted_by_its_weight_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"weights")
    assert locate_weights("wavlm", tmp_path) == tmp_path
    fp = weights_fingerprint(tmp_path)
    assert fp["file"] == "pytorch_model.bin" and fp["sha256"] == hashlib.sha256(b"weights").hexdigest()
