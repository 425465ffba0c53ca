"""Stores from a stranger: each failure of issue 14, reproduced, must now be a clean StoreError.

Opening or reading a hostile store may fail, but never crashes, hangs, reads
or writes outside the store, allocates without bound, or returns a wrong
vector. Reads that could crash, hang or exhaust memory run in a subprocess
(tests/store_reader.py) under a timeout and an address-space limit.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest
from hostile import edit_record, make_store, read_rows, shard_files, store_path, write_record, write_rows
from store_reader import run

from minifloat_store.cli import main
from minifloat_store.store import EmbeddingStore, StoreCorruptedError, StoreError

BACKENDS = ("zarr", "hdf5")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def assert_refused(path: str, *args: str, match: str = "") -> str:
    out = run(path, *args)
    assert out.kind == "store_error", f"{out.kind}: {out.detail}"
    assert match in out.detail, out.detail
    return out.detail


def check_fails(path: str, match: str) -> None:
    """Opening may pass, but check() and `info --check` must name the damage (and exit non-zero)."""
    with pytest.raises(StoreCorruptedError, match=match):
        with EmbeddingStore.open(path) as s:
            s.check()
            s.to_numpy()
    assert main(["info", "--check", path]) != 0


# ---------------------------------------------------------------- escape, hang, memory: zarr


def test_fifo_in_place_of_zarr_json_is_refused_not_waited_on(tmp_path):
    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    os.remove(os.path.join(path, "zarr.json"))
    os.mkfifo(os.path.join(path, "zarr.json"))
    assert_refused(path, match="special file")


def test_zarr_json_linked_to_the_zero_device_is_refused(tmp_path):
    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    os.remove(os.path.join(path, "g0", "codes", "zarr.json"))
    os.symlink("/dev/zero", os.path.join(path, "g0", "codes", "zarr.json"))
    assert_refused(path, match="symbolic link")


def test_planted_generation_link_is_refused_and_nothing_is_written_outside(tmp_path):
    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, os.path.join(path, "g1"))
    with pytest.raises(StoreCorruptedError, match="'g1' is a symbolic link"):
        with EmbeddingStore.open(path, "a") as s:
            s.compact()
    assert list(outside.iterdir()) == []


def test_shard_linked_to_a_file_outside_is_not_read(tmp_path):
    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    victim = shard_files(path, "id_blob")[0]
    secret = tmp_path / "secret"
    shutil.copy(victim, secret)  # a perfectly valid shard, but not the store's
    os.remove(victim)
    os.symlink(secret, victim)
    assert_refused(path, match="symbolic link")


def test_gzip_codec_in_array_metadata_is_refused_before_decompression(tmp_path):
    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    zj = os.path.join(path, "g0", "codes", "zarr.json")
    doc = json.load(open(zj))
    doc["codecs"][0]["configuration"]["codecs"].insert(1, {"name": "gzip", "configuration": {"level": 1}})
    json.dump(doc, open(zj, "w"))
    assert_refused(path, match="not bytes + crc32c")


@pytest.mark.parametrize("claimed", [2**28, 2**40])
def test_claimed_length_beyond_the_files_is_refused_before_allocation(tmp_path, backend, claimed):
    path = store_path(tmp_path, backend)
    make_store(path, backend)

    def claim(rec):
        for a in ("codes", "scales", "id_ends"):
            rec["lengths"][a] = claimed
        if backend == "hdf5":
            for a in ("codes", "scales", "id_ends"):
                rec["backend"]["hdf5"]["sealed"][a] = claimed - claimed % CHUNK_OF(a)
                rec["backend"]["hdf5"]["tails"][a][1] = claimed % CHUNK_OF(a)

    edit_record(path, backend, claim)
    if backend == "zarr":
        for a in ("codes", "scales", "id_ends"):
            zj = os.path.join(path, "g0", a, "zarr.json")
            doc = json.load(open(zj))
            doc["shape"][0] = claimed
            json.dump(doc, open(zj, "w"))
    else:
        with h5py.File(path, "r+", locking=False) as f:
            for a in ("codes", "scales", "id_ends"):
                f[f"{a}/sealed"].resize(claimed, axis=0)
    assert_refused(path)


def CHUNK_OF(array: str) -> int:
    return 16 * 16 if array == "id_blob" else 16


# ---------------------------------------------------------------- escape: HDF5


def _rebuild_dataset(path: str, name: str, **kw) -> None:
    """Replace dataset ``name`` by one made with ``kw`` (external storage, a link...), same data."""
    with h5py.File(path, "r+", locking=False) as f:
        data = f[name][:]
        del f[name]
        f.create_dataset(name, data=data, **kw)


def test_hdf5_external_raw_storage_is_refused(tmp_path):
    path = store_path(tmp_path, "hdf5")
    make_store(path, "hdf5")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 8)
    with h5py.File(path, "r+", locking=False) as f:
        del f["id_blob/tail0"]
        f.create_dataset("id_blob/tail0", shape=(256,), dtype=np.uint8, external=[(str(secret), 0, 256)])
    assert_refused(path, match="stored outside the file")


@pytest.mark.parametrize("link", ["external", "soft"])
def test_hdf5_links_are_refused(tmp_path, link):
    path = store_path(tmp_path, "hdf5")
    make_store(path, "hdf5")
    other = store_path(tmp_path, "hdf5", "other")
    make_store(other, "hdf5")
    with h5py.File(path, "r+", locking=False) as f:
        f.move("codes", "codes_real")
        f["codes"] = h5py.ExternalLink(other, "/codes") if link == "external" else h5py.SoftLink("/codes_real")
    assert_refused(path, match=f"{link} link")


def test_hdf5_virtual_dataset_is_refused(tmp_path):
    path = store_path(tmp_path, "hdf5")
    make_store(path, "hdf5")
    with h5py.File(path, "r+", locking=False) as f:
        shape = f["scales/sealed"].shape
        layout = h5py.VirtualLayout(shape=shape, dtype=np.float32, maxshape=(None,))
        layout[:] = h5py.VirtualSource(f["scales/tail0"].file.filename, "scales/tail1", shape=shape)
        del f["scales/sealed"]
        f.create_virtual_dataset("scales/sealed", layout, fillvalue=1.0)
    assert_refused(path, match="virtual")


def test_hdf5_codes_narrowed_to_one_byte_a_row_is_refused(tmp_path):
    path = store_path(tmp_path, "hdf5")
    make_store(path, "hdf5")
    with h5py.File(path, "r+", locking=False) as f:
        for ds in ("sealed", "tail0", "tail1"):
            old = f[f"codes/{ds}"]
            data, n = old[:, :1], old.shape[0]
            del f[f"codes/{ds}"]
            f.create_dataset(f"codes/{ds}", data=data, maxshape=(None, 1), chunks=(16, 1), fletcher32=True)
            assert f[f"codes/{ds}"].shape == (n, 1)
    assert_refused(path, match="codes")


# ---------------------------------------------------------------- ill-formed commit records


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r.pop("layout"),
        lambda r: r.pop("lengths"),
        lambda r: r["layout"].update(dim=0),
        lambda r: r["layout"].update(dim="12"),
        lambda r: r["layout"].update(format=7),
        lambda r: r["lengths"].update(codes=None),
        lambda r: r.update(txn=[1]),
        lambda r: r.update(generation=-1),
        lambda r: r["backend"].clear(),
        lambda r: r.update(backend="x"),
    ],
    ids=[
        "no-layout",
        "no-lengths",
        "dim-0",
        "dim-str",
        "format-int",
        "length-null",
        "txn-list",
        "gen-neg",
        "phys-0",
        "phys-str",
    ],
)
def test_missing_or_ill_typed_record_fields_are_store_errors(tmp_path, backend, edit):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    edit_record(path, backend, edit)
    for mode in ("r", "a"):
        with pytest.raises(StoreError):
            EmbeddingStore.open(path, mode).close()


def test_record_that_is_not_an_object_is_a_store_error(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    write_record(path, backend, {}, raw_text="[1, 2, 3]")
    with pytest.raises(StoreError):
        EmbeddingStore.open(path).close()


# ---------------------------------------------------------------- wrong content, valid checksums


def test_e4m3_nan_code_is_refused(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    row = read_rows(path, backend, "codes", 5, 6)
    row[0, 3] = 0x7F
    write_rows(path, backend, "codes", 5, row)
    check_fails(path, "row 5 holds a code that decodes to NaN")


def test_format_changed_to_another_of_the_same_width_is_detected(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    edit_record(path, backend, lambda r: r["layout"].update(format="e3m4"))
    check_fails(path, "digest")


@pytest.mark.parametrize("value", [1e-45, -1.0, 0.0, np.inf, np.nan])
def test_impossible_scale_is_named_as_damage(tmp_path, backend, value):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    write_rows(path, backend, "scales", 7, np.array([value], dtype=np.float32))
    check_fails(path, "array 'scales' row 7")


def test_shortened_deleted_list_is_detected(tmp_path, backend):
    path = store_path(tmp_path, backend)
    ids, _ = make_store(path, backend)

    def shorten(rec):
        rec["lengths"]["deleted"] = 1
        if backend == "hdf5":
            tail = rec["backend"]["hdf5"]["tails"]["deleted"]
            tail[1] = 1
            with h5py.File(path, "r", locking=False) as f:
                import crc32c

                tail[2] = crc32c.crc32c(f[f"deleted/tail{tail[0]}"][:1].tobytes())

    edit_record(path, backend, shorten)
    check_fails(path, "deleted")


def test_moved_id_boundary_is_detected(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    ends = read_rows(path, backend, "id_ends", 10, 11)
    write_rows(path, backend, "id_ends", 10, ends - 1, digests=False)
    check_fails(path, "id_ends")


def test_duplicated_id_is_refused(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    # rows 10 and 11 are "spk2/utt2" and "spk2/utt3": make the second read like the first.
    ends = read_rows(path, backend, "id_ends", 10, 12)
    blob = read_rows(path, backend, "id_blob", int(ends[0]) - 9, int(ends[0]))
    assert blob.tobytes() == b"spk2/utt2"
    write_rows(path, backend, "id_blob", int(ends[0]), blob)
    assert_refused(path, match="the same id")


def test_invalid_utf8_in_the_id_blob_is_refused(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    write_rows(path, backend, "id_blob", 3, np.array([0xFF], dtype=np.uint8))
    assert_refused(path, match="not valid UTF-8")


def test_shard_copied_over_another_is_detected(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    # Rows 16..31 replaced by rows 0..15: every chunk checksum still holds.
    write_rows(path, backend, "codes", 16, read_rows(path, backend, "codes", 0, 16), digests=False)
    check_fails(path, "array 'codes'")


def test_zarr_shard_file_copied_over_another_is_detected(tmp_path):
    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    files = shard_files(path, "scales")
    shutil.copy(files[0], files[1])
    check_fails(path, "array 'scales'")
