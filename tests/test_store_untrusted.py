"""Stores from a stranger: each failure of issue 14, reproduced, must now be a clean StoreError.

Opening or reading a hostile store may fail, but never crashes, hangs, reads
or writes outside the store, allocates without bound, or returns a wrong
vector. Reads that could crash, hang or exhaust memory run in a subprocess
(tests/store_reader.py) under a timeout and an address-space limit.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from hostile import (
    DIM,
    edit_record,
    make_store,
    read_record,
    read_rows,
    replace_zarr_inner_chunk,
    shard_files,
    store_path,
    write_record,
    write_rows,
)
from store_reader import run

import minifloat_store.store.convert as store_convert
from minifloat_store.cli import main
from minifloat_store.encoding import Encoding
from minifloat_store.store import EmbeddingStore, StoreCorruptedError, StoreError, StoreLockedError, StoreVersionError
from minifloat_store.store.snapshot import read_partition, read_scattered

BACKENDS = ("zarr", "hdf5")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    edit_record(path, backend, lambda r: r["layout"]["encoding"].update(element="e3m4"))
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


def test_dask_worker_reads_check_the_block_digests(tmp_path, backend):
    """A worker reads through the snapshot, not the store handle: the same digests must bind its rows."""
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    write_rows(path, backend, "codes", 16, read_rows(path, backend, "codes", 0, 16), digests=False)
    with EmbeddingStore.open(path) as s:
        snap = s.snapshot()
    with pytest.raises(StoreCorruptedError, match="array 'codes'"):
        read_partition(snap, 0, snap.rows)
    with pytest.raises(StoreCorruptedError, match="array 'codes'"):
        read_scattered(snap, np.array([20], dtype=np.int64))


def test_zarr_shard_file_copied_over_another_is_detected(tmp_path):
    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    files = shard_files(path, "scales")
    shutil.copy(files[0], files[1])
    check_fails(path, "array 'scales'")


# ---------------------------------------------------------------- the recorded encoding (layout version 2)


def _b64(values: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def _mean_text(rec: dict, value: str) -> None:
    rec["layout"]["fitted"]["mean"] = value


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda r: _mean_text(r, _b64(np.ones(DIM + 1))), "base64 of 12"),
        (lambda r: _mean_text(r, _b64(np.r_[np.ones(DIM - 1), np.nan])), "NaN"),
        (lambda r: _mean_text(r, r["layout"]["fitted"]["mean"][:-8]), "base64 of 12"),
        (lambda r: _mean_text(r, "!" * len(r["layout"]["fitted"]["mean"])), "not valid base64"),
        (lambda r: _mean_text(r, 7), "base64 of 12"),
        (lambda r: r["layout"]["fitted"].clear(), "no fitted mean"),
        (lambda r: r["layout"]["fitted"].update(scale=r["layout"]["fitted"]["mean"]), "only 'mean'"),
        (lambda r: r["layout"]["encoding"].update(transform="rotate"), "does not centre"),
        (lambda r: r["layout"]["encoding"].update(element="nf5"), "unknown element"),
        (lambda r: r["layout"]["encoding"].update(scale="block8"), "unknown scale"),
        (lambda r: r["layout"]["encoding"].update(seed=-1), "seed"),
        (lambda r: r["layout"]["encoding"].update(version=2), "version"),
        (lambda r: r["layout"]["encoding"].update(extra=1), "unknown keys"),
        (lambda r: r["layout"]["encoding"].update(id="numcodecs.zstd"), "not an encoding config"),
        (lambda r: r["layout"].update(encoding=[1]), "not an encoding config"),
        (lambda r: r["layout"].update(row_bytes=r["layout"]["row_bytes"] + 1), "row_bytes"),
        (lambda r: r["layout"].update(dim=2**21), "dim"),
        (lambda r: r["layout"].update(format="e4m3"), "keys"),
        (lambda r: r["lengths"].update(scales=0), "lengths disagree"),
    ],
    ids=[
        "mean-too-long",
        "mean-nan",
        "mean-short",
        "mean-not-base64",
        "mean-not-text",
        "mean-missing",
        "unknown-fitted",
        "mean-without-centre",
        "element",
        "scale",
        "seed",
        "config-version",
        "config-key",
        "config-id",
        "config-list",
        "row-bytes",
        "dim-huge",
        "extra-layout-key",
        "scale-column",
    ],
)
def test_recorded_encoding_is_checked_before_use(tmp_path, backend, edit, match):
    path = store_path(tmp_path, backend)
    make_store(path, backend, Encoding("nf4", "vector", "centre+rotate"))
    edit_record(path, backend, edit)
    for mode in ("r", "a"):
        with pytest.raises(StoreCorruptedError, match=match):
            EmbeddingStore.open(path, mode).close()


def test_layout_version_must_match_the_record_and_be_known(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend, Encoding("int4", "block32", "rotate"))
    rec = read_record(path, backend)
    write_record(path, backend, rec, version=1)  # a version-1 wrapper around a version-2 layout
    with pytest.raises(StoreCorruptedError, match="layout version 1"):
        EmbeddingStore.open(path).close()
    write_record(path, backend, rec, version=3)
    with pytest.raises(StoreVersionError, match="upgrade"):
        EmbeddingStore.open(path).close()


@pytest.mark.parametrize(
    "enc, column, value, match",
    [
        (Encoding("int4", "block32", "rotate"), "block", 0xFF, "block scale"),
        (Encoding("e2m1", "block16"), "block", 0x7F, "block scale"),
        (Encoding("nf4", "vector", "rotate"), "scales", -1.0, "array 'scales' row 7"),
        (Encoding("int8", "vector"), "scales", np.nan, "array 'scales' row 7"),
        (Encoding("e4m3", "block32", "rotate"), "code", 0x7F, "decodes to NaN"),
    ],
    ids=["e8m0-nan", "e4m3-block-nan", "negative-multiplier", "nan-multiplier", "nan-code"],
)
def test_impossible_encoded_rows_are_named_as_damage(tmp_path, backend, enc, column, value, match):
    path = store_path(tmp_path, backend)
    make_store(path, backend, enc)
    if column == "scales":
        write_rows(path, backend, "scales", 7, np.array([value], dtype=np.float32))
    else:
        row = read_rows(path, backend, "codes", 7, 8)
        row[0, -1 if column == "block" else 0] = value
        write_rows(path, backend, "codes", 7, row)
    check_fails(path, match)


def test_zstd_frame_claiming_a_huge_size_is_refused_before_decompression(tmp_path):
    """An id chunk whose zstd header declares 1 TiB would make the decoder allocate it: refused unread."""
    import numcodecs

    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    frame = bytearray(numcodecs.Zstd(level=1).encode(np.zeros(16, np.uint8)))
    # Frame header: magic, descriptor (single segment, 8-byte content size), then the size itself.
    frame[4] = 0xE0
    frame[5:6] = (1 << 40).to_bytes(8, "little")
    replace_zarr_inner_chunk(shard_files(path, "id_blob")[0], 0, bytes(frame))
    assert_refused(path, match="refused before decompressing")


def test_zstd_codec_with_other_options_is_refused(tmp_path):
    path = store_path(tmp_path, "zarr")
    make_store(path, "zarr")
    rec = read_record(path, "zarr")
    meta = os.path.join(path, f"g{rec['generation']}", "id_blob", "zarr.json")
    doc = json.load(open(meta))
    doc["codecs"][0]["configuration"]["codecs"][1]["configuration"]["checksum"] = True
    json.dump(doc, open(meta, "w"))
    assert_refused(path, match="not bytes + zstd + crc32c")


def test_hdf5_id_chunk_larger_than_deflate_makes_it_is_refused(tmp_path):
    path = store_path(tmp_path, "hdf5")
    make_store(path, "hdf5", n=600)
    rec = read_record(path, "hdf5")
    assert rec["backend"]["hdf5"]["sealed"]["id_blob"] > 0
    with h5py.File(path, "r+", locking=False) as f:
        ds = f["id_blob/sealed"]
        info = ds.id.get_chunk_info(0)
        ds.id.write_direct_chunk(info.chunk_offset, b"\0" * (ds.chunks[0] + 4096), info.filter_mask)
    assert_refused(path, match="chunk 0 is")


# ---------------------------------------------------------------- locks


def _lock_file(path: str, backend: str) -> str | None:
    return path + ".lock" if backend == "hdf5" else None


def test_dropped_writer_releases_its_lock_with_a_resource_warning(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    w = EmbeddingStore.open(path, "a")
    with pytest.warns(ResourceWarning, match="unclosed store"):
        del w
        gc.collect()
    EmbeddingStore.open(path, "a").close()


def test_deleting_the_lock_file_loses_no_committed_rows(tmp_path, backend):
    path = store_path(tmp_path, backend)
    make_store(path, backend)
    x = np.ones((2, DIM), np.float32)
    a = EmbeddingStore.open(path, "a")
    a.add(["a1", "a2"], x)
    for leftover in (os.path.join(path, ".lock"), path + ".lock"):
        if os.path.exists(leftover):
            os.remove(leftover)
    if backend == "zarr":  # the lock is on the store directory: there is no file to delete
        with pytest.raises(StoreLockedError):
            EmbeddingStore.open(path, "a")
        a.close()
        return
    b = EmbeddingStore.open(path, "a")  # a new lock file: b is in
    b.add(["b1"], x[:1])
    with pytest.raises(StoreLockedError, match="deleted or replaced"):
        a.add(["a3"], x[:1])  # refused before commit: b's row is not overwritten
    a.close()
    b.close()
    with EmbeddingStore.open(path) as r:
        assert {"a1", "a2", "b1"} <= set(r.ids) and "a3" not in r


def test_opening_a_non_store_for_appending_creates_nothing(tmp_path):
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    before = sorted(os.listdir(tmp_path))
    for path in (empty, plain):
        with pytest.raises((StoreError, ValueError, FileNotFoundError)):
            EmbeddingStore.open(path, "a")
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(empty) == []


# ---------------------------------------------------------------- full disk


_FILLER = """
import sys, numpy as np
from minifloat_store.store import EmbeddingStore
path, backend = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
committed = 0
with EmbeddingStore.create(path, 64, "e4m3", backend=backend, chunk_rows=64) as s:
    try:
        for k in range(100000):
            s.add([f"r{k}-{i}" for i in range(50)], rng.standard_normal((50, 64)).astype(np.float32))
            committed += 50
    except OSError as exc:
        print("full:", exc, file=sys.stderr)
    else:
        raise SystemExit("the disk never filled")
print(committed)
"""


def _small_filesystem(tmp_path):
    """A 3 MiB tmpfs when running as root (as CI does); else None (RLIMIT_FSIZE plays the full disk)."""
    if os.geteuid() != 0:
        return None
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        return None
    return mnt


def test_full_disk_is_an_error_with_the_last_commit_intact(tmp_path, backend):
    mnt = _small_filesystem(tmp_path)
    try:
        base = mnt or tmp_path
        path = store_path(base, backend)

        def limit():
            if mnt is None:
                import resource
                import signal

                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, 3 << 20))

        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), ROOT])))
        proc = subprocess.run(
            [sys.executable, "-c", _FILLER, path, backend],
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=limit,
            env=env,
        )
        assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stderr[-3000:]}"
        assert "full:" in proc.stderr
        committed = int(proc.stdout.split()[-1])
        assert committed > 0
        with EmbeddingStore.open(path) as s:
            assert len(s) == committed
            s.check()
    finally:
        if mnt is not None:
            subprocess.run(["umount", str(mnt)], check=False)


# ---------------------------------------------------------------- convert


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), ROOT])))
    return subprocess.Popen(
        [sys.executable, "-m", "minifloat_store.cli", *args], env=env, stderr=subprocess.PIPE, text=True, **kw
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_convert_leaves_no_store_and_a_rerun_succeeds(tmp_path, sig):
    src = tmp_path / "x.npy"
    np.save(src, np.random.default_rng(0).standard_normal((60000, 64)).astype(np.float32))
    dst = tmp_path / "out.zarr"
    proc = _cli("convert", str(src), str(dst), "--batch-size", "500", "--no-progress")
    deadline = time.monotonic() + 120
    while not any(p.name.startswith(".out.zarr.converting") for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "convert ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and not dst.exists()
    if sig == signal.SIGTERM:  # handled as SIGINT: cleaned up, one line
        assert "Traceback" not in err and "interrupted" in err
        assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]
    rerun = _cli("convert", str(src), str(dst), "--no-progress", stdout=subprocess.PIPE)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    with EmbeddingStore.open(dst) as s:
        assert len(s) == 60000
    # The killed convert's temporary store is gone too: the rerun removed it, and said so.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr", "x.npy"]
    assert ("left by a killed convert" in out) == (sig == signal.SIGKILL), out


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_a_sweep_removes_a_killed_converts_temporary_store_and_never_a_live_one(tmp_path, backend):
    src = tmp_path / "x.npy"
    np.save(src, np.random.default_rng(0).standard_normal((60000, 64)).astype(np.float32))
    dst = tmp_path / ("out.zarr" if backend == "zarr" else "out.h5")
    proc = _cli("convert", str(src), str(dst), "--backend", backend, "--batch-size", "500", "--no-progress")
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(f".{dst.name}.converting-*.owner")):
            assert proc.poll() is None and time.monotonic() < deadline, "convert ended before it could be swept"
            time.sleep(0.05)
        time.sleep(0.1)  # into the rows
        live = sorted(p.name for p in tmp_path.iterdir())
        assert store_convert.remove_stale_staging(dst) == [], "a running convert's temporary store was removed"
        assert sorted(p.name for p in tmp_path.iterdir()) == live
        assert proc.poll() is None, "the convert ended before it was killed: the sweep above proved nothing"
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    (staged,) = [p for p in tmp_path.iterdir() if p.name.endswith(".owner")]
    assert store_convert.remove_stale_staging(dst) == [str(staged)[: -len(".owner")]]
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int64).reshape(3, 4),
        np.array([[1, 2], [3, 4]], dtype=object),
        np.ones((3, 4), dtype=np.complex64),
        np.ones((3, 4), dtype=bool),
        np.array(["a", "b"]),
    ],
    ids=["int", "object", "complex", "bool", "str"],
)
def test_bad_source_dtype_is_a_one_line_error(tmp_path, array, capsys):
    src = tmp_path / "bad.npy"
    np.save(src, array, allow_pickle=True)
    assert main(["convert", str(src), str(tmp_path / "out.zarr"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.npy" in err, err
    assert os.listdir(tmp_path) == ["bad.npy"]


# ---------------------------------------------------------------- search


def test_search_returns_ids_as_objects_not_padded_strings(tmp_path, backend):
    path = store_path(tmp_path, backend)
    with EmbeddingStore.create(path, DIM, "e4m3", backend=backend) as s:
        x = np.random.default_rng(1).standard_normal((3, DIM)).astype(np.float32)
        s.add(["short", "x" * 100_000, "mid"], x)
        ids, scores = s.search(x, k=3)
    assert ids.dtype == object and ids.shape == (3, 3) and scores.shape == (3, 3)
    assert ids[0, 0] == "short" and isinstance(ids[0, 0], str)
    assert sum(len(i) for i in ids.ravel()) == 3 * (100_000 + 5 + 3)
