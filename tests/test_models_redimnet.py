"""ReDimNet: architecture of the published b2, checkpoint loading, frontend against numpy."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from synthetic_audio import speech_like  # noqa: E402

from minifloat_store.eval.models import (  # noqa: E402
    MODELS,
    load_model,
    redimnet,  # noqa: E402
)
from minifloat_store.eval.models.weights import WeightsNotFoundError  # noqa: E402

SR = 16000

# b2 as released: the stage layout of the ReDimNet-B2 definition (wespeaker's port of the
# paper's table) with the fields observed in the released checkpoints' model_config
# (conv+att 1D blocks, global-context ASTP, hop 240, no embedding BN).
B2_CONFIG = {
    "F": 72,
    "C": 16,
    "block_1d_type": "conv+att",
    "block_2d_type": "convnext_like",
    "stages_setup": [
        (1, 2, 1, [(3, 3)], 12),
        (2, 2, 1, [(3, 3)], 12),
        (1, 3, 1, [(3, 3)], 12),
        (2, 4, 1, [(3, 3)], 8),
        (1, 4, 1, [(3, 3)], 8),
        (2, 4, 1, [(3, 3)], 4),
    ],
    "group_divisor": 4,
    "out_channels": None,
    "embed_dim": 192,
    "hop_length": 240,
    "pooling_func": "ASTP",
    "global_context_att": True,
    "feat_type": "pt",
    "emb_bn": False,
    "spec_params": {"do_spec_aug": False, "freq_mask_width": (0, 6), "time_mask_width": (0, 8)},
}

# Exercises the other block types (basic_resnet_fwse, conv_exp != 1, 'att' 1D blocks, mfa, emb_bn)
# at a size that runs in milliseconds.
TINY_RESNET_CONFIG = {
    "F": 24,
    "C": 4,
    "block_1d_type": "att",
    "block_2d_type": "basic_resnet_fwse",
    "stages_setup": [[1, 1, 2, [[3, 3]], 8], [2, 1, 1, [[3, 3]], None], [3, 1, 2, [[3, 3]], 4]],
    "group_divisor": 2,
    "out_channels": 64,
    "embed_dim": 32,
    "hop_length": 160,
    "emb_bn": True,
    "spec_params": {"norm_signal": True, "spec_norm": "mvn"},
}


def _randomise(network: torch.nn.Module, seed: int) -> None:
    """Give every parameter and BatchNorm statistic non-default values, reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in network.state_dict().items():
            if name.startswith("spec.") or not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            else:
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=gen))


@pytest.fixture(scope="module")
def b2_checkpoint(tmp_path_factory) -> tuple[pathlib.Path, torch.nn.Module]:
    torch.manual_seed(0)
    network = redimnet.build_network(B2_CONFIG)
    _randomise(network, seed=1)
    path = tmp_path_factory.mktemp("hub") / redimnet.checkpoint_filename("b2", "vox2", "ft_lm")
    torch.save({"model_config": B2_CONFIG, "state_dict": network.state_dict()}, path)
    return path, network


@pytest.fixture(scope="module")
def b2_model(b2_checkpoint) -> redimnet.ReDimNetSpeakerModel:
    return redimnet.load(weights=b2_checkpoint[0])


def test_registered():
    assert MODELS["redimnet"].name == "redimnet"


def test_b2_parameter_count_in_published_range():
    network = redimnet.build_network(B2_CONFIG)
    n_params = sum(p.numel() for p in network.parameters())
    assert 4.7e6 <= n_params <= 5.1e6, n_params


def test_b2_state_dict_uses_official_key_names():
    keys = set(redimnet.build_network(B2_CONFIG).state_dict())
    expected = {
        "spec.torchfbank.1.flipped_filter",
        "spec.torchfbank.2.spectrogram.window",
        "spec.torchfbank.2.mel_scale.fb",
        "backbone.stem.0.weight",
        "backbone.stem.1.weight",
        "backbone.stage0.0.w",
        "backbone.stage0.3.conv_block.dwconvs.0.weight",
        "backbone.stage0.3.conv_block.pwconv1.weight",
        "backbone.stage0.6.red_dim_conv.1.weight",
        "backbone.stage0.6.tcm.3.dwconvs.0.weight",
        "backbone.stage0.6.tcm.4.attention.q_proj.weight",
        "backbone.stage0.6.tcm.4.feed_forward.intermediate_dense.weight",
        "backbone.stage0.6.tcm.4.final_layer_norm.weight",
        "backbone.stage0.6.exp_dim_conv.weight",
        "backbone.fin_wght1d.w",
        "pool.linear1.weight",
        "pool.linear2.weight",
        "bn.running_var",
        "linear.weight",
    }
    assert expected <= keys, sorted(expected - keys)
    shapes = redimnet.build_network(B2_CONFIG).state_dict()
    assert tuple(shapes["spec.torchfbank.2.mel_scale.fb"].shape) == (257, 72)
    assert tuple(shapes["backbone.fin_wght1d.w"].shape) == (1, 7, 1152, 1)
    assert tuple(shapes["pool.linear1.weight"].shape) == (128, 3 * 1152, 1)
    assert tuple(shapes["linear.weight"].shape) == (192, 2304)


def test_load_from_official_layout_reproduces_the_saved_network(b2_checkpoint, b2_model):
    _, source = b2_checkpoint
    x = speech_like(0.3, seed=3)
    with torch.inference_mode():
        expected = source(torch.from_numpy(x)[None]).numpy()[0]
    got = b2_model.embed(x)
    assert got.shape == (192,) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # A freshly built (not loaded) network gives something else: the weights really were loaded.
    with torch.inference_mode():
        fresh = redimnet.build_network(B2_CONFIG)(torch.from_numpy(x)[None]).numpy()[0]
    assert not np.allclose(got, fresh, atol=1e-3)


def test_load_model_by_registry_name(b2_checkpoint):
    model = load_model("redimnet", weights=b2_checkpoint[0])
    assert (model.name, model.dim, model.sample_rate, model.threshold) == ("redimnet", 192, 16000, 0.351)


def test_embed_is_deterministic(b2_model):
    x = speech_like(0.3, seed=4)
    np.testing.assert_array_equal(b2_model.embed(x), b2_model.embed(x))


def test_batch_equals_one_by_one(b2_model):
    # Two equal lengths share a forward pass, the third runs alone.
    waves = [speech_like(0.3, 5), speech_like(0.4, 6), speech_like(0.3, 7)]
    batch = b2_model.embed_batch(waves)
    single = np.stack([b2_model.embed(w) for w in waves])
    assert batch.shape == (3, 192) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, single, rtol=1e-4, atol=1e-5)
    assert b2_model.embed_batch([]).shape == (0, 192)


def test_different_speech_gives_different_embeddings(b2_model):
    a, b = b2_model.embed(speech_like(0.3, 9)), b2_model.embed(speech_like(0.3, 10))
    assert not np.allclose(a, b, atol=1e-3)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch) -> pathlib.Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MINIFLOAT_STORE_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path


def test_load_from_torch_hub_directory(empty_caches):
    network = redimnet.build_network(TINY_RESNET_CONFIG)
    _randomise(network, seed=3)
    hub = empty_caches / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({"model_config": TINY_RESNET_CONFIG, "state_dict": network.state_dict()}, hub / "b2-vox2-ft_lm.pt")
    model = redimnet.load()
    x = speech_like(0.3, seed=11)
    with torch.inference_mode():
        expected = network(torch.from_numpy(x)[None]).numpy()[0]
    np.testing.assert_allclose(model.embed(x), expected, rtol=1e-5, atol=1e-6)


def test_missing_weights_error_names_url_and_destination(empty_caches):
    with pytest.raises(WeightsNotFoundError) as info:
        redimnet.load(model_name="b5")
    message = str(info.value)
    assert "releases/download/latest/b5-vox2-ft_lm.pt" in message
    assert str(empty_caches / "weights" / "redimnet" / "b5-vox2-ft_lm.pt") in message


def test_unpublished_variant_is_rejected(empty_caches):
    with pytest.raises(ValueError, match="no published ReDimNet checkpoint 'b9-vox2-ft_lm.pt'"):
        redimnet.load(model_name="b9")


def test_checkpoint_needing_unpickling_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model_config": {"F": pathlib.PurePosixPath("/x")}, "state_dict": {}}, path)
    with pytest.raises(ValueError, match="refused to load"):
        redimnet.load(weights=path)


def test_mismatched_state_dict_is_an_error(tmp_path):
    network = redimnet.build_network(TINY_RESNET_CONFIG)
    state = network.state_dict()
    del state["linear.weight"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save({"model_config": TINY_RESNET_CONFIG, "state_dict": state}, path)
    with pytest.raises(ValueError, match=r"missing \['linear.weight'\].*unexpected \['extra.weight'\]"):
        redimnet.load(weights=path)


def test_not_a_checkpoint_is_an_error(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="expected a dict with 'model_config' and 'state_dict'"):
        redimnet.load(weights=path)


def test_unknown_config_key_is_an_error():
    with pytest.raises(ValueError, match="does not know: \\['n_layers'\\]"):
        redimnet.build_network({**B2_CONFIG, "n_layers": 3})


def test_other_block_types_build_and_run():
    torch.manual_seed(0)
    network = redimnet.build_network(TINY_RESNET_CONFIG)
    _randomise(network, seed=2)
    with torch.inference_mode():
        out = network(torch.from_numpy(np.stack([speech_like(0.3, 12), speech_like(0.3, 13)])))
    assert out.shape == (2, 32) and torch.isfinite(out).all()
    keys = set(network.state_dict())
    assert "backbone.stage0.3.conv_block.se.exitation.weight" in keys  # the published spelling
    assert "backbone.stage0.4.1.running_mean" in keys  # channel squeeze after conv_exp = 2
    assert "backbone.mfa.0.weight" in keys and "bn2.weight" in keys


@pytest.mark.parametrize(
    "waveform, message",
    [
        (np.zeros((2, 8000), np.float32), "mono waveform"),
        (np.zeros(8000, np.int16), "dtype int16"),
        (np.zeros(100, np.float32), "too short"),
        (np.full(8000, np.nan, np.float32), "NaN"),
    ],
)
def test_bad_waveforms_are_rejected(b2_model, waveform, message):
    with pytest.raises(ValueError, match=message):
        b2_model.embed(waveform)


# ----------------------------------------------------------------------------
# Frontend against an independent numpy computation
# ----------------------------------------------------------------------------


def _numpy_log_mel(x: np.ndarray, n_mels: int, hop: int) -> np.ndarray:
    """Log mel of ReDimNet's frontend, written from its definition in float64."""
    n_fft, win, f_min, f_max = 512, 400, 20.0, 7600.0
    y = np.empty_like(x, dtype=np.float64)
    y[0] = x[0] - 0.97 * x[1]  # reflect padding: x[-1] := x[1]
    y[1:] = x[1:] - 0.97 * x[:-1]
    padded = np.pad(y, n_fft // 2, mode="reflect")
    n_frames = 1 + x.size // hop
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hamming
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, 257)

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * (SR / n_fft)
    fb = np.zeros((n_fft // 2 + 1, n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(freqs):
            if lo <= f <= mid:
                fb[k, m] = (f - lo) / (mid - lo)
            elif mid < f <= hi:
                fb[k, m] = (hi - f) / (hi - mid)
    logmel = np.log(power @ fb + 1e-6).T  # (n_mels, frames)
    return logmel - logmel.mean(axis=1, keepdims=True)


def test_mel_frontend_matches_numpy():
    x = speech_like(0.25, seed=14).astype(np.float64)
    frontend = redimnet.MelBanks(n_mels=72, hop_length=240)
    with torch.inference_mode():
        got = frontend(torch.from_numpy(x.astype(np.float32))[None]).numpy()[0]
    expected = _numpy_log_mel(x, n_mels=72, hop=240)
    assert got.shape == expected.shape == (72, 1 + x.size // 240)
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_truncated_checkpoint_is_a_clear_error(b2_checkpoint, tmp_path):
    path = tmp_path / "b2-vox2-ft_lm.pt"
    path.write_bytes(b2_checkpoint[0].read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        redimnet.load(weights=path)


def test_locate_finds_the_file_load_loads(empty_caches):
    # One checkpoint in the weights directory, another in torch hub's: both must pick the first.
    nets = []
    places = (empty_caches / "weights" / "redimnet", empty_caches / "torch" / "hub" / "checkpoints")
    for seed, directory in enumerate(places, start=5):
        network = redimnet.build_network(TINY_RESNET_CONFIG)
        _randomise(network, seed=seed)
        directory.mkdir(parents=True)
        blob = {"model_config": TINY_RESNET_CONFIG, "state_dict": network.state_dict()}
        torch.save(blob, directory / "b2-vox2-ft_lm.pt")
        nets.append(network)
    # threshold only matters to load: locate accepts and ignores it, as extract passes all options.
    assert MODELS["redimnet"].locate(threshold=0.5) == empty_caches / "weights" / "redimnet" / "b2-vox2-ft_lm.pt"
    x = speech_like(0.3, seed=12)
    with torch.inference_mode():
        expected = nets[0](torch.from_numpy(x)[None]).numpy()[0]
    np.testing.assert_allclose(redimnet.load().embed(x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no published ReDimNet checkpoint 'b9-vox2-ft_lm.pt'"):
        MODELS["redimnet"].locate(model_name="b9")
