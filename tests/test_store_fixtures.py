"""Golden stores of every layout version must keep reading exactly.

tests/fixtures/store/ holds small stores per backend: version 1 (one per
format, written by the version-1 writer and never regenerated) and version 2
(one per case of make_fixtures.py: a study format, one without a scale
column, two encodings with fitted or seeded parameters and block scales),
the float32 vectors they decode to and their ids. A change to the layout,
the codec or the commit record that alters what these files mean fails here
instead of orphaning users' stores; today's writer must write the version-2
files byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest
import zarr

from minifloat_store import Encoding
from minifloat_store.store import LAYOUT_VERSION, EmbeddingStore

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "store")
CASES = [(b, f) for b in ("zarr", "hdf5") for f in ("e2m1", "e4m3")]
V2_CASES = [(b, c) for b in ("zarr", "hdf5") for c in ("e2m1", "e4m3_none", "nf4_centre_rotate", "int4_block32_rotate")]


def _make_fixtures():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(HERE, "make_fixtures.py"))
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    return mk


def fixture(backend: str, fmt: str) -> str:
    return os.path.join(HERE, f"{backend}_{fmt}{'.zarr' if backend == 'zarr' else '.h5'}")


def file_bytes(path: str) -> dict[str, bytes]:
    if os.path.isfile(path):
        return {"": open(path, "rb").read()}
    return {
        os.path.relpath(os.path.join(d, f), path): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(path)
        for f in files
    }


@pytest.mark.parametrize("backend, fmt", CASES)
def test_golden_store_reads_exactly(backend, fmt):
    path = fixture(backend, fmt)
    before = file_bytes(path)
    expected = np.load(os.path.join(HERE, f"expected_{fmt}.npy"), allow_pickle=False)
    ids = open(os.path.join(HERE, "ids.txt"), encoding="utf-8").read().splitlines()
    with EmbeddingStore.open(path, "r") as s:
        assert s.backend == backend and s.fmt.name == fmt and s.scale == "vector" and s.dim == 10
        assert s.ids == ids and len(s) == 5 and s.info().deleted == 1
        assert s.metadata == {"model": "fixture", "normalization": "none"}
        got = s.to_numpy()
        assert got.dtype == np.float32
        assert got.tobytes() == expected.tobytes()  # bit for bit
        assert s.get([ids[2]]).tobytes() == expected[2:3].tobytes()
        assert s.info().layout_version == 1 and s.encoding == Encoding(fmt, "vector")
    assert file_bytes(path) == before, "opening read-only changed the fixture"
    assert LAYOUT_VERSION == 2, "a new layout version needs new fixtures next to these, not instead of them"


@pytest.mark.parametrize("backend, case", V2_CASES)
def test_golden_v2_store_reads_exactly(backend, case):
    mk = _make_fixtures()
    path = mk.v2_path(backend, case)
    before = file_bytes(path)
    expected = np.load(os.path.join(HERE, f"expected_v2_{case}.npy"), allow_pickle=False)
    ids = open(os.path.join(HERE, "ids.txt"), encoding="utf-8").read().splitlines()
    want = mk.parse_encoding(mk.V2_CASES[case])
    with EmbeddingStore.open(path, "r") as s:
        assert s.backend == backend and s.dim == 10 and s.info().layout_version == 2
        enc = s.encoding
        assert enc.get_config() == want.get_config()
        if enc.centres:  # the mean make_fixtures fitted, bit for bit
            assert enc.mean.tobytes() == want.fit(mk.vectors() + 0.5).mean.tobytes()
        assert s.ids == ids and len(s) == 5 and s.info().deleted == 1
        assert s.metadata == {"model": "fixture", "normalization": "none"}
        assert s.to_numpy().tobytes() == expected.tobytes()  # bit for bit
        assert s.get([ids[2]]).tobytes() == expected[2:3].tobytes()
        s.check()
    assert file_bytes(path) == before, "opening read-only changed the fixture"


@pytest.mark.parametrize("backend, fmt", CASES)
def test_golden_store_accepts_appends_from_today(tmp_path, backend, fmt):
    path = str(tmp_path / os.path.basename(fixture(backend, fmt)))
    (shutil.copytree if backend == "zarr" else shutil.copy)(fixture(backend, fmt), path)
    expected = np.load(os.path.join(HERE, f"expected_{fmt}.npy"), allow_pickle=False)
    x = np.linspace(-1, 1, 30, dtype=np.float32).reshape(3, 10)
    with EmbeddingStore.open(path, "a") as s:
        s.add(["new1", "new2", "new3"], x)
        s.compact()
    with EmbeddingStore.open(path) as s:
        assert len(s) == 8
        assert s.to_numpy()[:5].tobytes() == expected.tobytes()


def _zarr_array_meta(path: str) -> dict[str, dict]:
    out = {}
    for d, _, files in os.walk(path):
        if "zarr.json" in files and d != path:
            doc = json.load(open(os.path.join(d, "zarr.json")))
            if doc.get("node_type") == "array":
                doc.pop("shape")
                out[os.path.relpath(d, path).split(os.sep, 1)[1]] = doc  # drop the generation dir
    return out


def _hdf5_layout(path: str) -> dict[str, tuple]:
    out = {}
    with h5py.File(path, "r", swmr=True, locking=False) as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, (obj.dtype.str, obj.chunks, obj.fletcher32, obj.maxshape))
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    return out


@pytest.mark.parametrize("backend, case", V2_CASES)
def test_todays_writer_produces_the_golden_layout(tmp_path, backend, case):
    """Array codecs, chunking, dtypes and checksums of a fresh store equal the fixture's, and so do the
    commit record and the bytes behind every array."""
    mk = _make_fixtures()
    gold = mk.v2_path(backend, case)
    path = str(tmp_path / os.path.basename(gold))
    mk.write(path, backend, mk.V2_CASES[case])
    if backend == "zarr":
        assert _zarr_array_meta(path) == _zarr_array_meta(gold)
        fresh_doc, gold_doc = _zarr_record(path), _zarr_record(gold)
        assert _record(fresh_doc["attributes"]["minifloat_store"]) == _record(gold_doc["attributes"]["minifloat_store"])
        assert _zarr_arrays(path) == _zarr_arrays(gold)
    else:
        assert _hdf5_layout(path) == _hdf5_layout(gold)
        assert _hdf5_datasets(path) == _hdf5_datasets(gold)
    assert file_bytes(path) == file_bytes(gold) or backend == "hdf5"  # HDF5 files may differ in free space


def _record(wrapper: dict) -> tuple[int, str]:
    """(layout version, record JSON), checked to be written with sorted keys."""
    record = json.loads(wrapper["record"])
    assert wrapper["record"] == json.dumps(record, sort_keys=True, separators=(",", ":"))
    return wrapper["layout_version"], wrapper["record"]


def _zarr_record(path: str) -> dict:
    """The root zarr.json: the commit record (JSON text and its CRC32C) in the group attributes."""
    return json.load(open(os.path.join(path, "zarr.json")))


def _zarr_arrays(path: str) -> dict[str, bytes]:
    """Content of every array of generation 0 (ids, id offsets, deletions, codes, scales) and its shard files."""
    out = {name: zarr.open_array(os.path.join(path, "g0", name), mode="r")[...].tobytes() for name in _ARRAYS}
    out.update({k: v for k, v in file_bytes(os.path.join(path, "g0")).items() if "/c/" in k.replace(os.sep, "/")})
    return out


def _hdf5_datasets(path: str) -> dict[str, bytes]:
    """Every dataset's bytes: both commit slots, and each array's sealed part and both tail slots."""
    out = {}
    with h5py.File(path, "r", swmr=True, locking=False) as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[...].tobytes()) if isinstance(obj, h5py.Dataset) else None
        )
    assert {"commit0", "commit1", "id_blob/sealed", "id_ends/tail0", "deleted/tail1"} <= set(out), sorted(out)
    return out


_ARRAYS = ("codes", "scales", "id_ends", "id_blob", "deleted")
