"""Weight-file resolution: search order, hub cache layouts, checksum, the missing-weights message."""

from __future__ import annotations

import hashlib

import pytest

from minifloat_store.eval.models import weights as W

PAYLOAD = b"not a real checkpoint, just bytes with a known digest"
SOURCE = W.WeightsSource(
    model="toy",
    filename="toy.bin",
    origin="Example hub model org/toy, revision v1",
    url="https://example.org/org/toy/resolve/v1/toy.bin",
    sha256=hashlib.sha256(PAYLOAD).hexdigest(),
    notes="Accept the toy licence first.",
)


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Point every cache the module knows at empty temporary directories."""
    for var, sub in (
        ("MINIFLOAT_STORE_WEIGHTS", "mfs"),
        ("HF_HUB_CACHE", "hf"),
        ("TORCH_HOME", "torch"),
        ("MODELSCOPE_CACHE", "ms"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("HF_HOME", raising=False)
    return tmp_path


def _write(path, data=PAYLOAD):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_missing_weights_error_names_url_file_and_exact_target_path(caches):
    with pytest.raises(W.WeightsNotFoundError) as err:
        W.resolve_weights(SOURCE, None, candidates=[caches / "elsewhere" / "toy.bin"])
    text = str(err.value)
    target = caches / "mfs" / "toy" / "toy.bin"
    for piece in (
        SOURCE.url,
        "toy.bin",
        str(target),
        "--weights PATH",
        SOURCE.sha256,
        SOURCE.notes,
        SOURCE.origin,
        str(caches / "elsewhere" / "toy.bin"),
    ):
        assert piece in text


def test_default_location_is_found_first(caches):
    target = _write(caches / "mfs" / "toy" / "toy.bin")
    other = _write(caches / "other" / "toy.bin")
    assert W.resolve_weights(SOURCE, None, candidates=[other]) == target


def test_candidates_are_searched_in_order(caches):
    second = _write(caches / "b" / "toy.bin")
    assert W.resolve_weights(SOURCE, None, candidates=[caches / "a" / "toy.bin", second]) == second


def test_explicit_file_and_directory(caches):
    f = _write(caches / "mine" / "toy.bin")
    assert W.resolve_weights(SOURCE, f) == f
    assert W.resolve_weights(SOURCE, str(f.parent)) == f


def test_explicit_path_that_does_not_exist_is_an_error_naming_it(caches):
    with pytest.raises(W.WeightsNotFoundError, match="nowhere.bin does not exist"):
        W.resolve_weights(SOURCE, caches / "nowhere.bin")


def test_checksum_mismatch_is_refused_unless_verify_false(caches):
    f = _write(caches / "mine" / "toy.bin", PAYLOAD + b"!")
    with pytest.raises(W.WeightsChecksumError, match="verify=False") as err:
        W.resolve_weights(SOURCE, f)
    assert SOURCE.sha256 in str(err.value) and hashlib.sha256(PAYLOAD + b"!").hexdigest() in str(err.value)
    assert W.resolve_weights(SOURCE, f, verify=False) == f


def test_huggingface_cache_layout_prefers_the_requested_ref(caches):
    repo = caches / "hf" / "models--org--toy"
    old = _write(repo / "snapshots" / ("a" * 40) / "toy.bin")
    new = _write(repo / "snapshots" / ("b" * 40) / "toy.bin")
    _write(repo / "refs" / "main", ("b" * 40).encode())
    _write(repo / "refs" / "v1", ("a" * 40).encode())
    assert W.huggingface_cache_files("org/toy", "toy.bin")[0] == new
    assert set(W.huggingface_cache_files("org/toy", "toy.bin")) == {old, new}
    assert W.huggingface_cache_files("org/toy", "toy.bin", revision="v1") == [old]
    assert W.huggingface_cache_files("org/absent", "toy.bin") == []


def test_torch_hub_and_modelscope_cache_layouts(caches):
    assert W.torch_hub_checkpoint_files("toy.bin") == []
    t = _write(caches / "torch" / "hub" / "checkpoints" / "toy.bin")
    assert W.torch_hub_checkpoint_files("toy.bin") == [t]
    old_layout = _write(caches / "ms" / "org" / "toy_1___0" / "toy.bin")
    new_layout = _write(caches / "ms" / "models" / "org" / "toy" / "toy.bin")
    assert W.modelscope_cache_files("org/toy_1.0", "toy.bin") == [old_layout]
    assert W.modelscope_cache_files("org/toy", "toy.bin") == [new_layout]


def test_sha256_of_streams_the_file(tmp_path):
    big = _write(tmp_path / "big", PAYLOAD * 50_000)  # > 1 MiB block
    assert W.sha256_of(big) == hashlib.sha256(PAYLOAD * 50_000).hexdigest()
