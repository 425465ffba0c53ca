"""Stores that hold any Encoding (layout version 2): the encoding is recorded whole and reopened exactly,
and every store operation works on the encoded rows, exact against the decoded vectors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store import Encoding, decode, encode, storage_bytes
from minifloat_store.store import EmbeddingStore
from minifloat_store.store.convert import convert, parse_encoding
from minifloat_store.store.record import LAYOUT_VERSION

BACKENDS = ("zarr", "hdf5")
DIM = 40  # not a power of two (block-diagonal rotation) nor a multiple of 16 or 32 (a short last block)
SPECS = (
    "nf4/vector/centre+rotate",
    "int4/block32/rotate",
    "e2m1/block16/centre",
    "int8/none/centre",
    "nf3/vector/rotate/7",
    "binary/vector",
    "e4m3/none",
    "e2m1/vector",
)


def _path(tmp_path, backend, name="s"):
    return str(tmp_path / (name + (".zarr" if backend == "zarr" else ".h5")))


def _data(n=300, seed=1):
    rng = np.random.default_rng(seed)
    # An offset common to all vectors (what "centre" removes) and a few exact zeros.
    x = (rng.standard_normal((n, DIM)) + 2.0 * rng.standard_normal(DIM)).astype(np.float32)
    x[7] = 0.0
    return x, [f"id{10270 + i // 30}/x6uYqmx31kE/{i:05d}.wav" for i in range(n)]


def _fitted(spec, x):
    return parse_encoding(spec).fit(x[:100])


def _fill(path, backend, enc, x, ids):
    with EmbeddingStore.create(path, DIM, enc, backend=backend, chunk_rows=32) as s:
        s.add(ids[:130], x[:130])
        s.add(ids[130:], x[130:])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", SPECS)
def test_store_reopens_its_encoding_and_decodes_bit_for_bit(tmp_path, backend, spec):
    x, ids = _data()
    enc = _fitted(spec, x)
    path = _path(tmp_path, backend)
    _fill(path, backend, enc, x, ids)
    expected = decode(encode(x, enc))
    with EmbeddingStore.open(path) as s:
        assert s.encoding == enc  # config and the fitted mean, bit for bit
        assert s.encoding.mean is None or s.encoding.mean.tobytes() == enc.mean.tobytes()
        assert s.dim == DIM and len(s) == len(x) and s.ids == ids
        assert s.to_numpy().tobytes() == expected.tobytes()
        assert s.get([ids[200], ids[3]]).tobytes() == expected[[200, 3]].tobytes()
        got = np.concatenate([v for _, v in s.iter_batches(batch_size=77)])
        assert got.tobytes() == expected.tobytes()
        info = s.info()
        assert info.layout_version == LAYOUT_VERSION == 2
        assert info.payload_bytes == storage_bytes(len(x), DIM, enc)
        assert info.encoding == enc.get_config()
        assert s.check() > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("spec", ["nf4/vector/centre+rotate", "int4/block32/rotate", "e2m1/vector"])
def test_delete_and_compact_keep_the_encoded_rows(tmp_path, backend, spec):
    x, ids = _data()
    enc = _fitted(spec, x)
    path = _path(tmp_path, backend)
    _fill(path, backend, enc, x, ids)
    expected = decode(encode(x, enc))
    gone = ids[5:60]
    with EmbeddingStore.open(path, "a") as s:
        s.delete(gone)
        assert s.compact() == len(gone)
        s.add(["late"], x[:1])
    keep = [i for i in range(len(ids)) if ids[i] not in set(gone)]
    with EmbeddingStore.open(path) as s:
        assert s.encoding == enc
        assert s.ids == [ids[i] for i in keep] + ["late"]
        assert s.to_numpy().tobytes() == np.concatenate([expected[keep], expected[:1]]).tobytes()
        s.check()


def _brute(y: np.ndarray, q: np.ndarray) -> np.ndarray:
    y64, q64 = y.astype(np.float64), q.astype(np.float64)
    ny = np.linalg.norm(y64, axis=1)
    sc = (q64 / np.linalg.norm(q64, axis=1, keepdims=True)) @ y64.T
    return np.where(ny > 0, sc / np.where(ny > 0, ny, 1), 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "spec", ["nf4/vector/centre+rotate", "int4/block32/rotate", "e2m1/block16/centre", "e4m3/none"]
)
def test_score_search_verify_agree_with_brute_force_on_decoded_vectors(tmp_path, backend, spec):
    x, ids = _data()
    enc = _fitted(spec, x)
    path = _path(tmp_path, backend)
    _fill(path, backend, enc, x, ids)
    with EmbeddingStore.open(path, "a") as s:
        s.delete(ids[:10])
    live = list(range(10, len(ids)))
    y = decode(encode(x, enc))[live]
    q = np.random.default_rng(3).standard_normal((5, DIM)).astype(np.float32) + x[50]
    truth = _brute(y, q)
    with EmbeddingStore.open(path) as s:
        top_ids, top_scores = s.search(q, k=7)
        for t in range(len(q)):
            order = np.lexsort((np.arange(len(live)), -truth[t]))[:7]
            assert list(top_ids[t]) == [ids[live[i]] for i in order]
            np.testing.assert_allclose(top_scores[t], truth[t, order], rtol=0, atol=1e-6)
        pairs = [(20, 40), (30, 20), (17, 99)]
        want = [float(_brute(y[[live.index(j)]], y[[live.index(i)]])[0, 0]) for i, j in pairs]
        a, b = [ids[i] for i, _ in pairs], [ids[j] for _, j in pairs]
        np.testing.assert_allclose(s.score(a, b), want, rtol=0, atol=1e-9)
        assert s.verify(q[0], ids[60]) == pytest.approx(truth[0, live.index(60)], abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_without_a_scale_writes_no_scale_column(tmp_path, backend):
    x, ids = _data()
    path = _path(tmp_path, backend)
    with EmbeddingStore.create(path, DIM, "e4m3", "none", backend=backend) as s:
        s.add(ids, x)
        assert s._record["lengths"]["scales"] == 0
        assert s._backend.array_nbytes("scales") < 8192  # an empty array's metadata, no column
    with EmbeddingStore.open(path) as s:
        assert s.to_numpy().tobytes() == decode(encode(x, "e4m3", "none")).tobytes()
        assert s.scale == "none" and s.fmt.name == "e4m3"


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_packed_takes_rows_of_the_same_encoding_only(tmp_path, backend):
    x, ids = _data()
    enc = _fitted("nf4/vector/centre+rotate", x)
    path = _path(tmp_path, backend)
    with EmbeddingStore.create(path, fmt=enc, backend=backend) as s:
        s.add_packed(ids[:50], encode(x[:50], enc))
        other = Encoding("nf4", "vector", "centre+rotate").fit(x[100:200])  # another mean
        with pytest.raises(ValueError, match="nothing was stored"):
            s.add_packed(ids[50:60], encode(x[50:60], other))
        with pytest.raises(ValueError, match="nothing was stored"):
            s.add_packed(ids[50:60], encode(x[50:60], "e4m3"))
        assert len(s) == 50
        assert s.get(ids[:50]).tobytes() == decode(encode(x[:50], enc)).tobytes()


def test_create_refuses_an_unfitted_centring_encoding_and_a_dim_it_was_not_fitted_on(tmp_path):
    with pytest.raises(ValueError, match="fit"):
        EmbeddingStore.create(str(tmp_path / "a.zarr"), DIM, Encoding("nf4", "vector", "centre"))
    enc = Encoding("nf4", "vector", "centre").fit(np.ones((3, DIM), np.float32))
    with pytest.raises(ValueError, match="fitted on dim"):
        EmbeddingStore.create(str(tmp_path / "b.zarr"), DIM + 1, enc)
    with pytest.raises(ValueError, match="scale"):
        EmbeddingStore.create(str(tmp_path / "c.zarr"), DIM, enc, scale="none")
    with pytest.raises(ValueError, match="dim"):
        EmbeddingStore.create(str(tmp_path / "d.zarr"), fmt="e4m3")  # nothing fixes the dim
    assert not any(os.scandir(tmp_path))


def test_a_rotation_encoding_takes_its_dim_from_create(tmp_path):
    with EmbeddingStore.create(str(tmp_path / "r.zarr"), 24, Encoding("int8", "vector", "rotate", seed=3)) as s:
        s.add(["a"], np.arange(24, dtype=np.float32)[None])
    with EmbeddingStore.open(str(tmp_path / "r.zarr")) as s:
        assert s.dim == 24 and s.encoding == Encoding("int8", "vector", "rotate", seed=3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_convert_fits_on_the_first_rows_or_a_sample(tmp_path, backend):
    x, ids = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "sample.npy", x[200:])
    (tmp_path / "ids.txt").write_text("".join(i + "\n" for i in ids))
    enc = parse_encoding("nf4/vector/centre+rotate")
    out1, out2 = _path(tmp_path, backend, "first"), _path(tmp_path, backend, "sample")
    s1 = convert(
        tmp_path / "x.npy", out1, enc, backend=backend, ids=str(tmp_path / "ids.txt"), fit_rows=64, progress=False
    )
    s2 = convert(
        tmp_path / "x.npy", out2, enc, backend=backend, fit_sample=str(tmp_path / "sample.npy"), progress=False
    )
    assert "fitted on 64 vectors" in s1.encoding and "fitted on 100 vectors" in s2.encoding
    for out, fitted in ((out1, enc.fit(x[:64])), (out2, enc.fit(x[200:]))):
        with EmbeddingStore.open(out) as s:
            assert s.encoding == fitted
            assert s.to_numpy().tobytes() == decode(encode(x, fitted)).tobytes()
    with EmbeddingStore.open(out1) as s:
        assert s.ids == ids


@pytest.mark.parametrize("fit_rows", [64, None])
def test_convert_of_a_store_into_a_centring_encoding_keeps_every_row(tmp_path, fit_rows):
    # Fitting reads the source's first rows; a store source used to hand the conversion's batches
    # on from where the fit sample stopped (or from nowhere), so the stored rows were not the source's.
    x, _ = _data()
    ids = [f"spk{i % 7}/utt{i}" for i in range(len(x))]
    with EmbeddingStore.create(tmp_path / "src.zarr", DIM, "fp32") as src:
        src.add(ids, x)
    enc = parse_encoding("int8/vector/centre")
    out = str(tmp_path / "o.zarr")
    summary = convert(str(tmp_path / "src.zarr"), out, enc, fit_rows=fit_rows, batch_size=100, progress=False)
    fitted = enc.fit(x[:64] if fit_rows else x)
    with EmbeddingStore.open(out) as s:
        assert s.ids == ids and s.encoding == fitted
        assert s.to_numpy().tobytes() == decode(encode(x, fitted)).tobytes()
    assert f"fitted on {64 if fit_rows else len(x)} vectors" in summary.encoding


def test_convert_refuses_fit_options_that_do_nothing(tmp_path):
    np.save(tmp_path / "x.npy", _data()[0])
    with pytest.raises(ValueError, match="nothing to fit"):
        convert(tmp_path / "x.npy", str(tmp_path / "o.zarr"), parse_encoding("int4/vector/rotate"), fit_rows=5)
    assert not os.path.exists(tmp_path / "o.zarr")


def test_cli_convert_with_an_encoding(tmp_path, capsys):
    from minifloat_store.cli import main

    x, _ = _data()
    np.save(tmp_path / "x.npy", x)
    out = str(tmp_path / "o.h5")
    args = ["convert", str(tmp_path / "x.npy"), out, "--encoding", "nf4/vector/centre+rotate", "--fit-rows", "50"]
    assert main([*args, "--backend", "hdf5", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "nf4" and "centre+rotate" in summary["encoding"]
    with EmbeddingStore.open(out) as s:
        assert s.encoding == Encoding("nf4", "vector", "centre+rotate").fit(x[:50])
    assert main(["convert", str(tmp_path / "x.npy"), str(tmp_path / "p.zarr"), "--encoding", "nf4", "--format", "e2m1"])
    assert "--encoding replaces --format" in capsys.readouterr().err


def test_parse_encoding_reads_element_scale_transform_seed():
    assert parse_encoding("nf4/vector/centre+rotate/5") == Encoding("nf4", "vector", "centre+rotate", 5)
    assert parse_encoding("int8") == Encoding("int8", "vector")
    for bad in ("", "nf4//rotate", "nf4/vector/rotate/x", "a/b/c/d/e", "nf9"):
        with pytest.raises(ValueError):
            parse_encoding(bad)


def test_package_exports_the_store_api():
    assert mfs.EmbeddingStore is EmbeddingStore and mfs.convert is convert


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_version_two_store_of_a_study_format_is_still_searched_from_its_codes(tmp_path, backend):
    """The study formats keep their fast path in a version-2 store (a Packed, a SearchIndex)."""
    x, ids = _data()
    path = _path(tmp_path, backend)
    with EmbeddingStore.create(path, DIM, "e2m1", backend=backend) as s:
        s.add(ids, x)
    with EmbeddingStore.open(path) as s:
        packed, _ = s.get_packed_all()
        assert isinstance(packed, mfs.Packed)
        assert packed.codes.tobytes() == encode(x, "e2m1").codes.tobytes()
        rows, scores = mfs.search(packed, x[:2], k=3)
        top_ids, top_scores = s.search(x[:2], k=3)
        assert top_scores.tobytes() == scores.tobytes() and top_ids[0, 0] == ids[int(rows[0, 0])]
