"""CAM++: official checkpoint layout, equivalence with 3D-Speaker's code, the load path, embedding behaviour.

The pretrained file cannot be downloaded here. Instead:
- ``fixtures/campplus/official_layout.json`` lists every key/shape/dtype of
  3D-Speaker's own CAMPPlus(80, 512), and ``official_forward.npy`` its output
  for synthetic weights (both made by ``fixtures/campplus/make_fixtures.py``);
- a flat state_dict saved with torch.save, as the published file is, goes
  through the real ``load(weights=path)``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("kaldi_native_fbank")

from minifloat_store.eval.models import (  # noqa: E402
    MODELS,
    campplus,  # noqa: E402
    load_model,
)
from minifloat_store.eval.models.weights import WeightsChecksumError, WeightsNotFoundError  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "campplus"
SR = 16000


def _fixture_module():
    spec = importlib.util.spec_from_file_location("campplus_make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def official():
    layout = json.loads((FIXTURES / "official_layout.json").read_text())
    return layout, [tuple(row) for row in layout["state_dict"]]


@pytest.fixture(scope="module")
def synthetic_checkpoint(tmp_path_factory, official):
    """A flat state_dict file in the official layout, holding the fixture's synthetic weights."""
    _, rows = official
    state = _fixture_module().synthetic_state_dict([(k, s, d) for k, s, d in rows])
    path = tmp_path_factory.mktemp("campplus") / "campplus_voxceleb.bin"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def model(synthetic_checkpoint):
    return campplus.load(weights=synthetic_checkpoint, verify=False)


def _voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A buzzy harmonic tone with vibrato plus noise: speech-like enough for fbank."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 15)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.2 * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_parameter_count_is_that_of_the_published_voxceleb_model(official):
    layout, _ = official
    net = campplus.CAMPPlus()
    n = sum(p.numel() for p in net.parameters())
    assert n == campplus.N_PARAMETERS == layout["n_parameters"] == 7_176_224


def test_state_dict_keys_shapes_and_dtypes_match_3d_speaker(official):
    _, rows = official
    ours = [(k, list(v.shape), str(v.dtype)) for k, v in campplus.CAMPPlus().state_dict().items()]
    assert ours == [(k, list(s), d) for k, s, d in rows]


def test_forward_equals_3d_speakers_network_on_the_same_weights(official):
    _, rows = official
    fx = _fixture_module()
    net = campplus.CAMPPlus().eval()
    net.load_state_dict(fx.synthetic_state_dict([(k, s, d) for k, s, d in rows]), strict=True)
    x = fx.synthetic_features()
    with torch.no_grad():
        out = torch.cat([net(x), net(x[:, :137])]).numpy()
    expected = np.load(FIXTURES / "official_forward.npy")
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_flat_state_dict_file_loads_through_the_real_load_path(synthetic_checkpoint, model):
    assert isinstance(model, campplus.CAMPPlusModel)
    assert (model.name, model.dim, model.sample_rate, model.threshold) == ("campplus", 512, 16000, 0.381)
    assert MODELS["campplus"].name == "campplus"
    again = load_model("campplus", weights=synthetic_checkpoint.parent, verify=False)  # a directory works too
    w = _voice(1.5, 140, 0)
    np.testing.assert_array_equal(again.embed(w), model.embed(w))


def test_a_file_that_is_not_the_published_one_is_refused_by_the_checksum(synthetic_checkpoint):
    with pytest.raises(WeightsChecksumError, match="5b1a88b6"):
        campplus.load(weights=synthetic_checkpoint)


def test_missing_weights_error_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFLOAT_STORE_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    with pytest.raises(WeightsNotFoundError) as err:
        campplus.load()
    text = str(err.value)
    assert "campplus_voxceleb.bin" in text and "iic/speech_campplus_sv_en_voxceleb_16k" in text
    assert str(tmp_path / "w" / "campplus" / "campplus_voxceleb.bin") in text


def test_checkpoint_of_another_layout_is_refused_with_the_differences(tmp_path):
    path = tmp_path / "cn_common.bin"
    torch.save(campplus.CAMPPlus(embedding_size=192).state_dict(), path)
    with pytest.raises(ValueError, match=r"other shapes .*xvector\.dense\.linear\.weight.*\(192,"):
        campplus.load(weights=path, verify=False)


def test_embedding_is_512_float32_deterministic(model):
    w = _voice(2.0, 120, 1)
    a, b = model.embed(w), model.embed(w.copy())
    assert a.shape == (512,) and a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


def test_embed_batch_equals_one_by_one(model):
    waves = [_voice(s, f0, i) for i, (s, f0) in enumerate(((1.0, 110), (2.3, 210), (1.7, 160)))]
    batch = model.embed_batch(waves)
    assert batch.shape == (3, 512) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, np.stack([model.embed(w) for w in waves]), rtol=1e-6, atol=1e-6)


def test_final_batchnorm_leaves_the_output_unnormalised(model):
    w = _voice(2.0, 180, 2)
    pre, out = model.embed_before_final_bn(w), model.embed(w)
    bn = model.network.xvector.dense.nonlinear.batchnorm
    mean, var = bn.running_mean.numpy(), bn.running_var.numpy()
    np.testing.assert_allclose(out, (pre - mean) / np.sqrt(var + bn.eps), rtol=1e-5, atol=1e-5)
    assert bn.weight is None  # affine=False: nothing rescales after the statistics
    assert abs(np.linalg.norm(out) - 1.0) > 0.5


def test_features_are_mean_normalised_80_bin_fbank(model):
    w = _voice(1.0, 150, 3)
    f = model.features(w)
    assert f.shape == (1 + (w.size - 400) // 160, 80)
    np.testing.assert_allclose(f.mean(axis=0), 0.0, atol=1e-4)


def test_too_short_waveform_is_refused(model):
    with pytest.raises(ValueError, match="too short for CAM\\+\\+"):
        model.embed(np.zeros(719, np.float32))
    assert model.embed(_voice(0.045, 150, 4)).shape == (512,)


def test_locate_finds_the_file_load_loads(synthetic_checkpoint, model, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFLOAT_STORE_WEIGHTS", str(tmp_path / "w"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    placed = tmp_path / "w" / "campplus" / "campplus_voxceleb.bin"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(synthetic_checkpoint.read_bytes())
    assert MODELS["campplus"].locate(verify=False) == placed
    w = _voice(1.5, 140, 1)
    np.testing.assert_array_equal(campplus.load(verify=False).embed(w), model.embed(w))
