"""Resemblyzer's GE2E encoder: published weights, equality with the resemblyzer package, real voices.

The pretrained weights ship inside the ``resemblyzer`` PyPI package, so when
it is installed these tests run the real model: against the package's own
``VoiceEncoder`` (when its imports work: librosa, webrtcvad) and on real
recorded voices from Debian's ktuberling-data / klettres-data (when installed).
"""

from __future__ import annotations

import importlib.metadata
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from minifloat_store.eval.data import debian_voices  # noqa: E402
from minifloat_store.eval.models import MODELS, load_model  # noqa: E402
from minifloat_store.eval.models import resemblyzer as rz  # noqa: E402
from minifloat_store.eval.models.weights import (  # noqa: E402
    WeightsChecksumError,
    WeightsNotFoundError,
    load_torch_state_dict,
)

SR = 16000


@pytest.fixture(scope="module")
def pretrained():
    try:
        return rz.load()
    except WeightsNotFoundError as exc:
        pytest.skip(f"Resemblyzer's pretrained.pt not found (pip install resemblyzer): {exc}")


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    return rz.ResemblyzerModel(rz.VoiceEncoder())


@pytest.fixture(scope="module")
def resemblyzer_package():
    """The resemblyzer package itself, the reference these tests compare with.

    webrtcvad (which resemblyzer imports) asks ``pkg_resources`` for its own
    version; setuptools >= 81 no longer ships ``pkg_resources``, so a fresh
    environment cannot import resemblyzer. The tests give webrtcvad the one
    function it calls (answered from importlib.metadata) for that import only.
    """
    try:
        import resemblyzer
    except ModuleNotFoundError as exc:
        if exc.name != "pkg_resources":
            pytest.skip(f"resemblyzer not importable: {exc}")
        shim = types.ModuleType("pkg_resources")
        shim.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
        sys.modules["pkg_resources"] = shim
        try:
            for name in [m for m in sys.modules if m == "resemblyzer" or m.startswith(("resemblyzer.", "webrtcvad"))]:
                del sys.modules[name]
            import resemblyzer
        finally:
            del sys.modules["pkg_resources"]
    return resemblyzer


def _voice(seconds: float, f0: float, seed: int, amp: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (amp * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_registered_and_described(pretrained):
    assert MODELS["resemblyzer"].name == "resemblyzer"
    assert (pretrained.name, pretrained.dim, pretrained.sample_rate, pretrained.threshold) == (
        "resemblyzer",
        256,
        16000,
        0.75,
    )


def test_published_weights_load_strictly_with_weights_only(pretrained):
    path = rz.installed_package_weights()[0]
    state = load_torch_state_dict(path, key="model_state")
    assert set(state) == set(pretrained.network.state_dict())
    for k, v in state.items():
        torch.testing.assert_close(pretrained.network.state_dict()[k].cpu(), v, rtol=0, atol=0)


def test_load_model_finds_the_installed_package_file(pretrained):
    model = load_model("resemblyzer")
    w = _voice(2.0, 150, 0)
    np.testing.assert_array_equal(model.embed(w), pretrained.embed(w))


def test_tampered_weights_are_refused(tmp_path):
    src = rz.installed_package_weights()
    if not src:
        pytest.skip("resemblyzer package not installed")
    copy = tmp_path / "pretrained.pt"
    copy.write_bytes(src[0].read_bytes() + b"\0")
    with pytest.raises(WeightsChecksumError, match="39373b86"):
        rz.load(weights=copy)


def test_missing_weights_error_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFLOAT_STORE_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(rz, "installed_package_weights", lambda: [])
    with pytest.raises(WeightsNotFoundError) as err:
        rz.load()
    text = str(err.value)
    assert "pretrained.pt" in text and "pip install resemblyzer" in text
    assert str(tmp_path / "resemblyzer" / "pretrained.pt") in text


@pytest.mark.parametrize("seconds", [0.3, 1.6, 2.0, 3.7, 6.5])
def test_partials_match_resemblyzer(resemblyzer_package, seconds):
    n = int(seconds * SR)
    _, mel_slices = resemblyzer_package.VoiceEncoder.compute_partial_slices(n, 1.3, 0.75)
    assert rz.partial_starts(n) == [s.start for s in mel_slices]


@pytest.mark.parametrize("seconds, amp", [(1.2, 0.2), (4.3, 0.002)])
def test_embedding_equals_resemblyzers_embed_utterance(pretrained, resemblyzer_package, seconds, amp):
    from resemblyzer.audio import normalize_volume

    reference = resemblyzer_package.VoiceEncoder(device="cpu", verbose=False)
    w = _voice(seconds, 130, 1, amp=amp)
    expected = reference.embed_utterance(normalize_volume(w, -30, increase_only=True))
    np.testing.assert_allclose(pretrained.embed(w), expected, atol=2e-6)


def test_silence_trimming_equals_resemblyzers_preprocess_wav(pretrained, resemblyzer_package):
    reference = resemblyzer_package.VoiceEncoder(device="cpu", verbose=False)
    gap = np.zeros(SR, np.float32)  # 1 s of silence between two bursts: trimmed
    w = np.concatenate([_voice(1.5, 120, 2), gap, _voice(1.5, 125, 3)])
    trimming = rz.ResemblyzerModel(pretrained.network, trim_silence=True)
    expected = reference.embed_utterance(resemblyzer_package.preprocess_wav(w))
    np.testing.assert_allclose(trimming.embed(w), expected, atol=2e-6)
    assert rz.trim_long_silences(rz.normalize_volume(w)).size < w.size


def test_embedding_is_256_unit_norm_non_negative_and_deterministic(random_model):
    w = _voice(2.5, 170, 4)
    a = random_model.embed(w)
    assert a.shape == (256,) and a.dtype == np.float32
    assert np.all(a >= 0) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(a, random_model.embed(w.copy()))


def test_pre_relu_output_is_signed_and_its_relu_gives_the_normal_output(random_model):
    signed = rz.VoiceEncoder(relu=False)
    signed.load_state_dict(random_model.network.state_dict())
    partials = torch.from_numpy(random_model.partial_mels(_voice(2.5, 170, 4)))
    with torch.inference_mode():
        pre = signed(partials)
        post = random_model.network(partials)
    assert (pre < 0).any() and torch.allclose(torch.linalg.vector_norm(pre, dim=1), torch.ones(len(pre)))
    relu = torch.relu(pre)
    torch.testing.assert_close(relu / torch.linalg.vector_norm(relu, dim=1, keepdim=True), post)


def test_embed_batch_equals_one_by_one(random_model):
    waves = [_voice(s, f0, i) for i, (s, f0) in enumerate(((0.5, 110), (3.1, 200), (1.7, 160), (5.0, 95)))]
    batch = random_model.embed_batch(waves)
    assert batch.shape == (4, 256) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, np.stack([random_model.embed(w) for w in waves]), atol=1e-6)
    assert random_model.embed_batch([]).shape == (0, 256)


def test_partials_cover_the_utterance_at_1_3_per_second():
    assert rz.partial_starts(int(1.0 * SR)) == [0]  # shorter than one partial: still one
    starts = rz.partial_starts(int(5.0 * SR))
    assert starts[0] == 0 and all(b - a == 77 for a, b in zip(starts[:-1], starts[1:], strict=True))
    assert (starts[-1] + 160) * 160 >= 0.75 * 5.0 * SR


def test_volume_is_raised_to_minus_30_dbfs_never_lowered():
    quiet = _voice(1.0, 150, 5, amp=0.001)
    raised = rz.normalize_volume(quiet)
    rms_db = 20 * np.log10(np.sqrt(np.mean(raised.astype(np.float64) ** 2)))
    assert rms_db == pytest.approx(-30.0, abs=0.01)
    loud = _voice(1.0, 150, 5, amp=0.5)
    np.testing.assert_array_equal(rz.normalize_volume(loud), loud)
    np.testing.assert_array_equal(rz.normalize_volume(np.zeros(100, np.float32)), np.zeros(100, np.float32))


@pytest.fixture(scope="module")
def real_corpus():
    if not debian_voices.is_available():
        pytest.skip("real voices need the Debian packages: apt-get install ktuberling-data klettres-data")
    corpus = debian_voices.load_corpus(max_speakers=12, utterances_per_speaker=2)
    speakers = np.array([u.speaker for u in corpus])
    assert len(set(speakers)) >= 6, f"only {len(set(speakers))} voices found in the Debian packages"
    return [u.waveform for u in corpus], speakers


def _same_and_different(model, corpus):
    waves, speakers = corpus
    emb = model.embed_batch(waves)
    scores = emb @ emb.T
    i, j = np.triu_indices(len(waves), 1)
    same = speakers[i] == speakers[j]
    return scores, scores[i, j][same].mean(), scores[i, j][~same].mean()


def test_real_voices_same_speaker_scores_clearly_above_different_speakers(pretrained, real_corpus):
    scores, same_mean, diff_mean = _same_and_different(pretrained, real_corpus)
    # observed here: about 0.87 vs 0.56
    assert same_mean - diff_mean > 0.15, (same_mean, diff_mean)
    _, speakers = real_corpus
    np.fill_diagonal(scores, -np.inf)
    assert np.mean(speakers[scores.argmax(axis=1)] == speakers) >= 0.75


def test_an_untrained_encoder_does_not_separate_the_real_voices(random_model, real_corpus):
    # the check above must be able to fail: random weights give a gap of about 0.003
    _, same_mean, diff_mean = _same_and_different(random_model, real_corpus)
    assert same_mean - diff_mean < 0.05


def test_locate_finds_the_file_load_loads(random_model, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFLOAT_STORE_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(rz, "installed_package_weights", list)
    placed = tmp_path / "resemblyzer" / "pretrained.pt"
    placed.parent.mkdir()
    torch.save({"model_state": random_model.network.state_dict()}, placed)
    assert MODELS["resemblyzer"].locate(verify=False) == placed
    w = _voice(2.0, 150, 1)
    np.testing.assert_allclose(rz.load(verify=False).embed(w), random_model.embed(w), rtol=0, atol=1e-6)
