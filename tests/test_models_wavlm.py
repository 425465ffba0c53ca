"""WavLM x-vector: loading a saved checkpoint directory offline, embeddings, normalisation."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from synthetic_audio import speech_like  # noqa: E402
from tiny_models import TINY_WAVLM, save_tiny_wavlm  # noqa: E402
from transformers import WavLMConfig, WavLMForXVector, WavLMModel  # noqa: E402

from minifloat_store.eval.models import (  # noqa: E402
    MODELS,
    load_model,
    wavlm,  # noqa: E402
)
from minifloat_store.eval.models.weights import WeightsNotFoundError  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[pathlib.Path, WavLMForXVector]:
    directory = tmp_path_factory.mktemp("wavlm-sv")
    return directory, save_tiny_wavlm(directory)


@pytest.fixture(scope="module")
def model(checkpoint) -> wavlm.WavLMSpeakerModel:
    return wavlm.load(weights=checkpoint[0])


@pytest.fixture
def empty_caches(tmp_path, monkeypatch) -> pathlib.Path:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("MINIFLOAT_STORE_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path


def test_registered():
    assert MODELS["wavlm"].name == "wavlm"


def test_loads_saved_directory_and_reproduces_the_saved_model(checkpoint, model):
    _, source = checkpoint
    x = speech_like(0.5, seed=1)
    with torch.inference_mode():
        expected = source(torch.from_numpy(x)[None]).embeddings.numpy()[0]
    got = model.embed(x)
    assert got.shape == (512,) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert (model.name, model.dim, model.sample_rate, model.threshold) == ("wavlm", 512, 16000, 0.86)
    assert model.do_normalize is False


def test_load_model_by_registry_name(checkpoint):
    assert load_model("wavlm", weights=checkpoint[0]).dim == 512


def test_embed_is_deterministic(model):
    x = speech_like(0.5, seed=2)
    np.testing.assert_array_equal(model.embed(x), model.embed(x))


def test_batch_equals_one_by_one(model):
    # Two equal lengths share a forward pass; the others are never padded to them.
    waves = [speech_like(0.5, 3), speech_like(0.8, 4), speech_like(0.5, 5), speech_like(0.3, 6)]
    batch = model.embed_batch(waves)
    single = np.stack([model.embed(w) for w in waves])
    assert batch.shape == (4, 512) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-6)
    assert model.embed_batch([]).shape == (0, 512)


def test_different_audio_gives_different_embeddings(model):
    assert not np.allclose(model.embed(speech_like(0.5, 7)), model.embed(speech_like(0.5, 8)), atol=1e-4)


def test_do_normalize_from_preprocessor_config_is_honoured(tmp_path):
    # WavLM-Base's GroupNorm encoder is nearly blind to the input's offset and scale, so this uses the
    # LayerNorm encoder with conv bias, which is not: normalising the input then shows.
    plain, normalising = tmp_path / "plain", tmp_path / "normalising"
    save_tiny_wavlm(plain, do_normalize=False, feat_extract_norm="layer", conv_bias=True)
    shutil.copytree(plain, normalising)
    config = json.loads((normalising / "preprocessor_config.json").read_text())
    config["do_normalize"] = True
    (normalising / "preprocessor_config.json").write_text(json.dumps(config))
    model, normalising_model = wavlm.load(weights=plain), wavlm.load(weights=normalising)
    assert (model.do_normalize, normalising_model.do_normalize) == (False, True)
    x = (0.2 + 0.1 * speech_like(0.5, seed=9)).astype(np.float32)
    normalised = ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)
    np.testing.assert_allclose(normalising_model.embed(x), model.embed(normalised), rtol=1e-4, atol=1e-5)
    assert not np.allclose(normalising_model.embed(x), model.embed(x), atol=1e-3)


def test_missing_preprocessor_config_means_the_published_settings(tmp_path):
    save_tiny_wavlm(tmp_path, do_normalize=None)
    loaded = wavlm.load(weights=tmp_path)
    assert loaded.do_normalize is False and loaded.sample_rate == 16000


def test_found_in_huggingface_cache_without_network(checkpoint, empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = empty_caches / "hf" / "models--microsoft--wavlm-base-plus-sv"
    commit = "0" * 40
    shutil.copytree(checkpoint[0], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    x = speech_like(0.3, seed=10)
    np.testing.assert_allclose(wavlm.load().embed(x), wavlm.load(weights=checkpoint[0]).embed(x), atol=1e-6)


def test_missing_weights_error_says_what_to_download(empty_caches):
    with pytest.raises(WeightsNotFoundError) as info:
        wavlm.load()
    message = str(info.value)
    assert "microsoft/wavlm-base-plus-sv" in message and "pytorch_model.bin" in message
    assert str(empty_caches / "weights" / "wavlm" / "config.json") in message


def test_nonexistent_directory_is_an_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        wavlm.load(weights=tmp_path / "nowhere")


def test_checkpoint_without_xvector_head_is_refused(tmp_path):
    config = WavLMConfig(**TINY_WAVLM)
    config.architectures = ["WavLMModel"]
    WavLMModel(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a complete WavLMForXVector checkpoint"):
        wavlm.load(weights=tmp_path)


def test_too_short_waveform_is_rejected_with_the_minimum(model):
    with pytest.raises(ValueError, match=f"at least {model.min_samples} samples"):
        model.embed(np.zeros(model.min_samples - 1, np.float32))
    assert model.embed(speech_like(model.min_samples / SR, 11)[: model.min_samples]).shape == (512,)


def test_published_configuration_has_the_published_size():
    # The -sv head: weighted layer sum over 13 hidden states, TDNN, AM-softmax over 1211 Vox1-dev speakers.
    config = WavLMConfig(use_weighted_layer_sum=True, num_labels=1211)
    with torch.device("meta"):
        network = WavLMForXVector(config)
    n_params = sum(p.numel() for p in network.parameters())
    # pytorch_model.bin is 405 MB of float32.
    assert 100e6 <= n_params <= 102e6, n_params


def test_weights_needing_unpickling_are_refused(tmp_path):
    network = WavLMForXVector(WavLMConfig(**TINY_WAVLM))
    network.config.save_pretrained(tmp_path)
    state = dict(network.state_dict())
    state["payload"] = pathlib.PurePosixPath("/not/a/tensor")  # any non-allowlisted object
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="refused to load the weights"):
        wavlm.load(weights=tmp_path)


def test_locate_finds_the_directory_load_loads(checkpoint, model, empty_caches):
    placed = empty_caches / "weights" / "wavlm"
    shutil.copytree(checkpoint[0], placed)
    assert MODELS["wavlm"].locate() == placed
    x = speech_like(0.3, seed=13)
    np.testing.assert_array_equal(wavlm.load().embed(x), model.embed(x))
