"""convert() and the `info` / `convert` subcommands."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
import zarr

import minifloat_store as mfs
from minifloat_store.cli import main
from minifloat_store.store import EmbeddingStore
from minifloat_store.store.convert import convert

DIM = 16


def data(n: int = 70, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_npy_converts_exactly_with_a_true_summary(tmp_path, backend):
    x = data()
    np.save(tmp_path / "x.npy", x)
    dst = str(tmp_path / ("out.zarr" if backend == "zarr" else "out.h5"))
    s = convert(tmp_path / "x.npy", dst, "e2m1", backend=backend, batch_size=16, progress=False, chunk_rows=16)
    q = mfs.quantize(x, "e2m1")
    with EmbeddingStore.open(dst) as store:
        assert store.ids == [str(i) for i in range(70)]
        np.testing.assert_array_equal(store.to_numpy(), q)
        assert s.bytes_after == store.info().bytes_on_disk
    assert (s.vectors, s.dim, s.format, s.scale, s.backend) == (70, DIM, "e2m1", "vector", backend)
    assert s.bytes_before == x.nbytes and s.ratio == pytest.approx(x.nbytes / s.bytes_after)
    assert s.payload_after == mfs.storage_bytes(70, DIM, "e2m1")
    c = cosines(x, q)
    # The summary scores through minifloat_store.scoring, whose contract is float64 numpy on decoded vectors to ~1e-7.
    assert s.cosine_mean == pytest.approx(c.mean(), abs=1e-7) and s.cosine_min == pytest.approx(c.min(), abs=1e-7)
    text = str(s)
    assert "ratio" in text and "cosine mean / min" in text


def test_npz_streams_a_member_and_uses_its_ids(tmp_path):
    x = data(30).astype(np.float64)
    ids = np.array([f"u{i:03d}" for i in range(30)])
    np.savez_compressed(tmp_path / "b.npz", emb=x, ids=ids)
    convert(tmp_path / "b.npz", tmp_path / "o.zarr", "e4m3", batch_size=7, progress=False)
    with EmbeddingStore.open(tmp_path / "o.zarr") as store:
        assert store.ids == ids.tolist()
        np.testing.assert_array_equal(store.get(["u007"]), mfs.quantize(x[7:8], "e4m3"))
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(ValueError, match="say which"):
        convert(tmp_path / "two.npz", tmp_path / "o2.zarr", progress=False)
    convert(f"{tmp_path / 'two.npz'}:b", tmp_path / "o2.zarr", progress=False)
    assert len(EmbeddingStore.open(tmp_path / "o2.zarr")) == 30


def test_hdf5_dataset_with_sibling_ids(tmp_path):
    x = data(25)
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f["grp/emb"] = x
        f["grp/ids"] = np.array([f"s{i}".encode() for i in range(25)])
    convert(f"{tmp_path / 'e.h5'}:/grp/emb", tmp_path / "o.h5", "e3m2", backend="hdf5", batch_size=10, progress=False)
    with EmbeddingStore.open(tmp_path / "o.h5") as store:
        assert store.ids == [f"s{i}" for i in range(25)]
        np.testing.assert_array_equal(store.to_numpy(), mfs.quantize(x, "e3m2"))


def test_zarr_array_and_ids_text_file(tmp_path):
    x = data(40)
    g = zarr.open_group(str(tmp_path / "src.zarr"), mode="w")
    g.create_array("vecs", data=x, chunks=(8, DIM))
    (tmp_path / "ids.txt").write_text("".join(f"id-{i}\n" for i in range(40)))
    convert(f"{tmp_path / 'src.zarr'}:/vecs", tmp_path / "o.zarr", "e2m1", ids=tmp_path / "ids.txt", progress=False)
    with EmbeddingStore.open(tmp_path / "o.zarr") as store:
        assert store.ids == [f"id-{i}" for i in range(40)]
        np.testing.assert_array_equal(store.to_numpy(), mfs.quantize(x, "e2m1"))


@pytest.mark.parametrize("src_backend", ["zarr", "hdf5"])
def test_store_to_store_reencodes_and_keeps_ids_and_metadata(tmp_path, src_backend):
    x = data(50)
    src = tmp_path / ("a.zarr" if src_backend == "zarr" else "a.h5")
    with EmbeddingStore.create(src, DIM, "e4m3", backend=src_backend, metadata={"model": "m"}) as a:
        a.add([f"k{i}" for i in range(50)], x)
        a.delete(["k3"])
    s = convert(src, tmp_path / "b.h5", "e2m1", backend="hdf5", batch_size=12, progress=False)
    assert s.vectors == 49 and s.bytes_before == mfs.storage_bytes(49, DIM, "e4m3")
    keep = [i for i in range(50) if i != 3]
    with EmbeddingStore.open(tmp_path / "b.h5") as b:
        assert b.ids == [f"k{i}" for i in keep] and b.metadata == {"model": "m"}
        np.testing.assert_array_equal(b.to_numpy(), mfs.quantize(mfs.quantize(x[keep], "e4m3"), "e2m1"))


@pytest.mark.parametrize(
    "setup, message",
    [
        ("nan", r"row 33 \(id '33'\) contains NaN"),
        ("dup", "duplicate id 'a'"),
        ("few", "has only 3 ids"),
        ("many", "more ids than the 40 vectors"),
    ],
)
def test_bad_source_leaves_no_destination(tmp_path, setup, message):
    x = data(40)
    ids = None
    if setup == "nan":
        x[33, 2] = np.nan
    elif setup == "dup":
        ids = ["a"] * 40
    elif setup == "few":
        (tmp_path / "ids.txt").write_text("a\nb\nc\n")
        ids = tmp_path / "ids.txt"
    else:
        (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in range(41)))
        ids = tmp_path / "ids.txt"
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match=message):
        convert(tmp_path / "x.npy", tmp_path / "o.zarr", ids=ids, batch_size=16, progress=False)
    assert not os.path.exists(tmp_path / "o.zarr")


def test_existing_destination_and_unknown_source_are_refused(tmp_path):
    np.save(tmp_path / "x.npy", data(3))
    os.mkdir(tmp_path / "taken")
    with pytest.raises(FileExistsError):
        convert(tmp_path / "x.npy", tmp_path / "taken", progress=False)
    with pytest.raises(FileNotFoundError):
        convert(tmp_path / "missing.npy", tmp_path / "o.zarr", progress=False)
    np.save(tmp_path / "i.npy", np.arange(6).reshape(3, 2))
    with pytest.raises(ValueError, match="floating point"):
        convert(tmp_path / "i.npy", tmp_path / "o.zarr", progress=False)
    assert not os.path.exists(tmp_path / "o.zarr")


def test_cli_convert_then_info(tmp_path, capsys):
    np.save(tmp_path / "x.npy", data(20))
    dst = str(tmp_path / "o.h5")
    argv = ["convert", str(tmp_path / "x.npy"), dst, "--format", "e2m1", "--backend", "hdf5", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "vectors" in out and "20 x 16" in out and "cosine mean / min" in out
    assert main(["info", dst, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == 20 and info["format"] == "e2m1" and info["backend"] == "hdf5"
    assert info["payload_bytes"] == mfs.storage_bytes(20, 16, "e2m1")
    assert main(["info", dst]) == 0
    assert "bytes per vector" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "nope.zarr")]) == 2
    assert "no store at" in capsys.readouterr().err


def test_cli_info_check_finds_a_flipped_bit(tmp_path, capsys):
    dst = str(tmp_path / "o.zarr")
    np.save(tmp_path / "x.npy", data(40))
    convert(tmp_path / "x.npy", dst, "e2m1", progress=False, chunk_rows=16)
    assert main(["info", dst, "--check"]) == 0
    assert "every chunk verified" in capsys.readouterr().out
    shard = os.path.join(dst, "g0", "codes", "c", "1", "0")
    raw = bytearray(open(shard, "rb").read())
    raw[3] ^= 0x20
    open(shard, "wb").write(bytes(raw))
    assert main(["info", dst]) == 0  # sizes only: the damage is not read
    capsys.readouterr()
    assert main(["info", dst, "--check"]) != 0
    err = capsys.readouterr().err
    assert "array 'codes'" in err and "16..31" in err
