"""Golden stores written by layout version 1 must keep reading exactly.

tests/fixtures/store/ holds one small store per backend and format (written
by make_fixtures.py), the float32 vectors they decode to and their ids. A
change to the layout, the codec or the commit record that alters what these
files mean fails here instead of orphaning users' stores.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest
import zarr

from minifloat_store.store import LAYOUT_VERSION, EmbeddingStore

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "store")
CASES = [(b, f) for b in ("zarr", "hdf5") for f in ("e2m1", "e4m3")]


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
    assert file_bytes(path) == before, "opening read-only changed the fixture"
    assert LAYOUT_VERSION == 1, "a new layout version needs new fixtures next to these, not instead of them"


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


@pytest.mark.parametrize("backend, fmt", CASES)
def test_todays_writer_produces_the_golden_layout(tmp_path, backend, fmt):
    """Array codecs, chunking, dtypes and checksums of a fresh store equal the fixture's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(HERE, "make_fixtures.py"))
    mk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mk)
    path = str(tmp_path / os.path.basename(fixture(backend, fmt)))
    mk.write(path, backend, fmt)
    if backend == "zarr":
        assert _zarr_array_meta(path) == _zarr_array_meta(fixture(backend, fmt))
    else:
        assert _hdf5_layout(path) == _hdf5_layout(fixture(backend, fmt))
    with EmbeddingStore.open(path) as fresh, EmbeddingStore.open(fixture(backend, fmt)) as gold:
        a, b = fresh.get_packed(None), gold.get_packed(None)
        assert a.codes.tobytes() == b.codes.tobytes() and a.scales.tobytes() == b.scales.tobytes()
    # The commit record and the bytes behind the ids and deletions, as stored (docs/store.md). The one
    # change since the fixtures were written is the record's optional block digests (stores from
    # untrusted sources): today's record carries them, the golden one does not, all else is identical.
    if backend == "zarr":
        fresh_doc, gold_doc = _zarr_record(path), _zarr_record(fixture(backend, fmt))
        assert _record_sans_digests(fresh_doc["attributes"]["minifloat_store"], expect_digests=True) == (
            _record_sans_digests(gold_doc["attributes"]["minifloat_store"], expect_digests=False)
        )
        assert _zarr_arrays(path) == _zarr_arrays(fixture(backend, fmt))
    else:
        fresh_ds, gold_ds = _hdf5_datasets(path), _hdf5_datasets(fixture(backend, fmt))
        for slot in ("commit0", "commit1"):
            assert _record_sans_digests(_slot_wrapper(fresh_ds.pop(slot)), expect_digests=True) == (
                _record_sans_digests(_slot_wrapper(gold_ds.pop(slot)), expect_digests=False)
            )
        assert fresh_ds == gold_ds


def _slot_wrapper(raw: bytes) -> dict:
    """An HDF5 commit slot: 8-byte little-endian length, then the wrapped record as JSON."""
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n].decode("utf-8"))


def _record_sans_digests(wrapper: dict, expect_digests: bool) -> tuple[int, str]:
    """(layout version, record JSON without its 'digests' field, keys sorted as written)."""
    record = json.loads(wrapper["record"])
    assert wrapper["record"] == json.dumps(record, sort_keys=True, separators=(",", ":"))  # as written: sorted
    assert ("digests" in record) == expect_digests
    record.pop("digests", None)
    return wrapper["layout_version"], json.dumps(record, sort_keys=True, separators=(",", ":"))


def _zarr_record(path: str) -> dict:
    """The root zarr.json: the commit record (JSON text and its CRC32C) in the group attributes."""
    return json.load(open(os.path.join(path, "zarr.json")))


def _zarr_arrays(path: str) -> dict[str, bytes]:
    """Committed content of every array of generation 0 (ids, id offsets, deletions, codes, scales)."""
    return {name: zarr.open_array(os.path.join(path, "g0", name), mode="r")[...].tobytes() for name in _ARRAYS}


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
