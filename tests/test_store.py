"""EmbeddingStore behaviour, one suite parametrised over both backends."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store.store import (
    LAYOUT_VERSION,
    EmbeddingStore,
    StoreCorruptedError,
    StoreLockedError,
    StoreVersionError,
)

BACKENDS = ("zarr", "hdf5")
CHUNK = 16  # rows per chunk: small, so a few dozen rows cross chunk (and HDF5 seal) boundaries


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def store_path(tmp_path, backend: str, name: str = "s") -> str:
    return str(tmp_path / (name + (".zarr" if backend == "zarr" else ".h5")))


def vectors(n: int, dim: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def ids_for(n: int, prefix: str = "spk") -> list[str]:
    return [f"{prefix}{i // 5}/utt{i % 5}" for i in range(n)]


def make(tmp_path, backend: str, n: int = 40, fmt: str = "e2m1", **kw) -> tuple[EmbeddingStore, list[str], np.ndarray]:
    s = EmbeddingStore.create(store_path(tmp_path, backend), dim=12, fmt=fmt, backend=backend, chunk_rows=CHUNK, **kw)
    x = vectors(n)
    ids = ids_for(n)
    if n:
        s.add(ids[: n // 2], x[: n // 2])
        s.add(ids[n // 2 :], x[n // 2 :])
    return s, ids, x


def snapshot(path: str) -> dict[str, bytes]:
    """Every file's bytes (the lock file aside): 'nothing changed' means this is equal."""
    out = {}
    if os.path.isdir(path):
        for d, _, files in os.walk(path):
            for f in files:
                if f != ".lock":
                    p = os.path.join(d, f)
                    out[os.path.relpath(p, path)] = open(p, "rb").read()
    else:
        out[path] = open(path, "rb").read()
    return out


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", ["e2m1", "e3m2", "e4m3", "fp16", "fp32"])
def test_get_returns_exactly_the_decoded_vectors(tmp_path, backend, fmt):
    s, ids, x = make(tmp_path, backend, n=45, fmt=fmt)
    with s:
        order = [ids[33], ids[0], ids[17], ids[44]]
        got = s.get(order)
        assert got.dtype == np.float32 and got.shape == (4, 12)
        np.testing.assert_array_equal(got, mfs.quantize(x[[33, 0, 17, 44]], fmt))
        p = s.get_packed(order)
        ref = mfs.encode(x[[33, 0, 17, 44]], fmt)
        np.testing.assert_array_equal(p.codes, ref.codes)
        np.testing.assert_array_equal(p.scales, ref.scales)


def test_reopen_reads_the_same_store(tmp_path, backend):
    s, ids, x = make(tmp_path, backend, n=50)
    s.close()
    with EmbeddingStore.open(s.path) as r:
        assert len(r) == 50 and r.ids == ids and r.dim == 12 and r.fmt.name == "e2m1" and r.scale == "vector"
        np.testing.assert_array_equal(r.to_numpy(), mfs.quantize(x, "e2m1"))
        assert ids[7] in r and "nope" not in r and 3 not in r


def test_iter_batches_covers_live_rows_in_order(tmp_path, backend):
    s, ids, x = make(tmp_path, backend, n=37)
    with s:
        s.delete([ids[2], ids[30]])
        got_ids, got = [], []
        for b_ids, b in s.iter_batches(batch_size=10):
            assert len(b_ids) == len(b) <= 10 and b.dtype == np.float32
            got_ids += b_ids
            got.append(b)
        keep = [i for i in range(37) if i not in (2, 30)]
        assert got_ids == [ids[i] for i in keep] == s.ids
        np.testing.assert_array_equal(np.concatenate(got), mfs.quantize(x[keep], "e2m1"))
        with pytest.raises(ValueError, match="batch_size"):
            next(s.iter_batches(0))


def test_get_packed_all_pairs_rows_with_ids(tmp_path, backend):
    s, ids, x = make(tmp_path, backend, n=30)
    with s:
        s.delete([ids[0]])
        packed, row_ids = s.get_packed_all()
        assert row_ids == ids[1:] and packed.n == 29
        np.testing.assert_array_equal(mfs.decode(packed), mfs.quantize(x[1:], "e2m1"))
        np.testing.assert_array_equal(s.get_packed(None).codes, packed.codes)


def test_empty_store(tmp_path, backend):
    s, _, _ = make(tmp_path, backend, n=0)
    with s:
        assert len(s) == 0 and s.ids == [] and s.to_numpy().shape == (0, 12)
        assert list(s.iter_batches()) == []
        assert s.info().count == 0


# ---------------------------------------------------------------- validation: all or nothing


@pytest.mark.parametrize(
    "bad_ids, bad_x, exc, message",
    [
        (["a", "b"], vectors(2, dim=11), ValueError, "dim 11 != 12"),
        (["a", "a"], vectors(2), ValueError, "duplicate id 'a'"),
        (["spk0/utt3", "new"], vectors(2), ValueError, "duplicate id 'spk0/utt3': already in store"),
        (["a", ""], vectors(2), ValueError, "empty string"),
        (["a", 7], vectors(2), TypeError, "not str"),
        (["a", "b", "c"], vectors(2), ValueError, "3 ids but 2 vectors"),
        (["a", "b"], np.ones((2, 12), dtype=np.int64), TypeError, "floating-point"),
        ("ab", vectors(2), TypeError, "single str"),
        (["a", "\ud800"], vectors(2), ValueError, "cannot be encoded as UTF-8"),
    ],
)
def test_bad_batch_is_refused_and_nothing_is_stored(tmp_path, backend, bad_ids, bad_x, exc, message):
    s, ids, x = make(tmp_path, backend, n=20)
    s.close()
    before = snapshot(s.path)  # taken closed: an open HDF5 writer sets a flag in the superblock
    with EmbeddingStore.open(s.path, "a") as s:
        with pytest.raises(exc, match=message):
            s.add(bad_ids, bad_x)
        assert len(s) == 20 and "a" not in s
    assert snapshot(s.path) == before


@pytest.mark.parametrize("value, what", [(np.nan, "NaN"), (np.inf, "inf"), (1e39, "inf")])
def test_nonfinite_row_is_named_with_its_id(tmp_path, backend, value, what):
    s, _, _ = make(tmp_path, backend, n=10)
    s.close()
    before = snapshot(s.path)
    x = vectors(4, seed=5).astype(np.float64)
    x[2, 5] = value
    with EmbeddingStore.open(s.path, "a") as s:
        with pytest.raises(ValueError, match=f"row 2 \\(id 'c'\\) contains {what}"):
            s.add(["a", "b", "c", "d"], x)
        assert len(s) == 10
    assert snapshot(s.path) == before


def test_delete_unknown_id_deletes_nothing(tmp_path, backend):
    s, ids, _ = make(tmp_path, backend, n=10)
    s.close()
    before = snapshot(s.path)
    with EmbeddingStore.open(s.path, "a") as s:
        with pytest.raises(KeyError, match="unknown id 'ghost'"):
            s.delete([ids[0], "ghost"])
        assert len(s) == 10 and ids[0] in s
    assert snapshot(s.path) == before


def test_read_only_store_refuses_changes(tmp_path, backend):
    s, ids, _ = make(tmp_path, backend, n=5)
    s.close()
    with EmbeddingStore.open(s.path, "r") as r:
        for call in (lambda: r.add(["x"], vectors(1)), lambda: r.delete([ids[0]]), r.compact):
            with pytest.raises(PermissionError, match="read-only"):
                call()


def test_create_refuses_an_existing_path(tmp_path, backend):
    s, _, _ = make(tmp_path, backend, n=1)
    s.close()
    with pytest.raises(FileExistsError, match="already exists"):
        EmbeddingStore.create(s.path, dim=12, backend=backend)


def test_get_unknown_id_is_a_key_error(tmp_path, backend):
    s, ids, _ = make(tmp_path, backend, n=5)
    with s, pytest.raises(KeyError, match="unknown id 'zzz'"):
        s.get([ids[0], "zzz"])


# ---------------------------------------------------------------- delete and compact


def test_delete_then_compact_reclaims_space_and_keeps_vectors(tmp_path, backend):
    s, ids, x = make(tmp_path, backend, n=200)
    with s:
        gone = ids[10:150]
        s.delete(gone)
        assert len(s) == 60 and gone[0] not in s and s.info().deleted == 140
        before = s.info().bytes_on_disk
        assert s.compact() == 140
        info = s.info()
        assert info.deleted == 0 and info.count == 60 and info.bytes_on_disk < before
        keep = list(range(10)) + list(range(150, 200))
        assert s.ids == [ids[i] for i in keep]
        np.testing.assert_array_equal(s.to_numpy(), mfs.quantize(x[keep], "e2m1"))
        assert s.compact() == 0  # nothing to reclaim
        # A deleted id can be enrolled again.
        s.add([gone[0]], x[:1])
        np.testing.assert_array_equal(s.get([gone[0]]), mfs.quantize(x[:1], "e2m1"))
    with EmbeddingStore.open(s.path) as r:
        assert len(r) == 61 and r.ids[-1] == gone[0]


# ---------------------------------------------------------------- metadata and layout version


def test_metadata_is_kept_and_replaced_atomically(tmp_path, backend):
    meta = {"model": "ReDimNet-b2", "normalization": "none", "attributes": {"site": "lab", "n": 3}}
    s, _, _ = make(tmp_path, backend, n=3, metadata=meta)
    with s:
        assert s.metadata == meta
        s.set_metadata({"model": "CAM++"})
        with pytest.raises(ValueError, match="JSON"):
            s.set_metadata({"x": float("nan")})
        with pytest.raises(ValueError, match="JSON"):
            s.set_metadata({"x": object()})
    with EmbeddingStore.open(s.path) as r:
        assert r.metadata == {"model": "CAM++"} and r.info().metadata == {"model": "CAM++"}


def _rewrite_layout_version(path: str, backend: str, version: int) -> None:
    if backend == "zarr":
        zj = os.path.join(path, "zarr.json")
        doc = json.load(open(zj))
        doc["attributes"]["minifloat_store"]["layout_version"] = version
        json.dump(doc, open(zj, "w"))
    else:
        import h5py

        from minifloat_store.store import hdf5_backend as hb

        with h5py.File(path, "r+", libver=hb.LIBVER, locking=False) as f:
            for slot in hb.COMMIT_SLOTS:
                raw = f[slot][:]
                n = int.from_bytes(raw[:8].tobytes(), "little")
                wrapper = json.loads(raw[8 : 8 + n].tobytes())
                wrapper["layout_version"] = version
                payload = json.dumps(wrapper).encode()
                buf = np.frombuffer(len(payload).to_bytes(8, "little") + payload, dtype=np.uint8)
                f[slot].resize((max(len(buf), f[slot].shape[0]),))
                f[slot][: len(buf)] = buf


def test_newer_layout_version_is_refused_clearly(tmp_path, backend):
    s, _, _ = make(tmp_path, backend, n=3)
    s.close()
    _rewrite_layout_version(s.path, backend, LAYOUT_VERSION + 1)
    for mode in ("r", "a"):
        with pytest.raises(
            StoreVersionError, match=f"layout version {LAYOUT_VERSION + 1}, newer than this minifloat-store reads"
        ):
            EmbeddingStore.open(s.path, mode)


# ---------------------------------------------------------------- one writer


def test_second_writer_is_locked_out_while_readers_work(tmp_path, backend):
    s, ids, x = make(tmp_path, backend, n=20)
    with s:
        with pytest.raises(StoreLockedError, match="already open for writing"):
            EmbeddingStore.open(s.path, "a")
        with EmbeddingStore.open(s.path, "r") as r:
            np.testing.assert_array_equal(r.get([ids[3]]), mfs.quantize(x[3:4], "e2m1"))
            s.add(["late"], vectors(1, seed=9))  # the writer goes on while a reader is open
            np.testing.assert_array_equal(r.get([ids[3]]), mfs.quantize(x[3:4], "e2m1"))
        with EmbeddingStore.open(s.path, "r") as r2:
            assert "late" in r2 and len(r2) == 21
    with EmbeddingStore.open(s.path, "a") as w:  # close() released the lock
        assert len(w) == 21


def test_zarr_reader_opened_before_compaction_is_told_to_reopen(tmp_path):
    # docs/store.md: "After another process compacts a zarr store, a reader that opened before gets
    # StoreChangedError ("reopen it") instead of wrong data."
    s, ids, x = make(tmp_path, "zarr", n=40)
    with s, EmbeddingStore.open(s.path, "r") as r:
        s.delete(ids[:20])
        s.compact()
        with pytest.raises(mfs.store.StoreChangedError, match="reopen"):
            r.get([ids[30]])
    with EmbeddingStore.open(s.path, "r") as again:
        np.testing.assert_array_equal(again.get([ids[30]]), mfs.quantize(x[30:31], "e2m1"))


def test_hdf5_reader_opened_before_compaction_keeps_reading_its_snapshot(tmp_path):
    # docs/store.md: compact() renames a new file over the store; "a reader that opened the old file
    # keeps reading the old inode": every row it saw, deleted ones included, reads back exactly.
    s, ids, x = make(tmp_path, "hdf5", n=40)
    with s, EmbeddingStore.open(s.path, "r") as r:
        s.delete(ids[:20])
        s.compact()
        assert len(r) == 40
        np.testing.assert_array_equal(r.get([ids[30], ids[5]]), mfs.quantize(x[[30, 5]], "e2m1"))


# ---------------------------------------------------------------- checksums


def _chunk_locations(path: str, backend: str, array: str) -> list[tuple[str, int]]:
    """(file, offset) of bytes inside the first stored chunk of ``array``'s committed rows."""
    if backend == "zarr":
        d = os.path.join(path, "g0", array, "c", "0")
        f = os.path.join(d, "0") if array == "codes" else d
        return [(f, 5)]
    import h5py

    with h5py.File(path, "r", swmr=True, locking=False) as h:
        info = h[f"{array}/sealed"].id.get_chunk_info(0)
    return [(path, info.byte_offset + 5)]


@pytest.mark.parametrize("array", ["codes", "scales"])
def test_flipped_bit_in_a_chunk_is_an_error_naming_the_array(tmp_path, backend, array):
    s, ids, x = make(tmp_path, backend, n=40)
    s.close()
    for f, off in _chunk_locations(s.path, backend, array):
        with open(f, "r+b") as fh:
            fh.seek(off)
            b = fh.read(1)
            fh.seek(off)
            fh.write(bytes([b[0] ^ 0x10]))
    with EmbeddingStore.open(s.path) as r:
        with pytest.raises(StoreCorruptedError, match=f"array '{array}'") as err:
            r.get([ids[1]])
        assert s.path in str(err.value)
        # The rows of other chunks still read, exactly.
        np.testing.assert_array_equal(r.get([ids[39]]), mfs.quantize(x[39:40], "e2m1"))


def test_flipped_bit_in_the_id_blob_is_caught_on_open(tmp_path, backend):
    s, _, _ = make(tmp_path, backend, n=400)
    s.close()
    for f, off in _chunk_locations(s.path, backend, "id_blob"):
        with open(f, "r+b") as fh:
            fh.seek(off)
            b = fh.read(1)
            fh.seek(off)
            fh.write(bytes([b[0] ^ 0x01]))
    with pytest.raises(StoreCorruptedError, match="array 'id_blob'"):
        EmbeddingStore.open(s.path)


def test_damaged_commit_record_is_an_error(tmp_path):
    s, _, _ = make(tmp_path, "zarr", n=5)
    s.close()
    zj = os.path.join(s.path, "zarr.json")
    doc = json.load(open(zj))
    rec = doc["attributes"]["minifloat_store"]["record"]
    doc["attributes"]["minifloat_store"]["record"] = rec.replace('"codes":5', '"codes":6')
    json.dump(doc, open(zj, "w"))
    with pytest.raises(StoreCorruptedError, match="CRC32C"):
        EmbeddingStore.open(s.path)


def test_hdf5_survives_a_damaged_commit_slot(tmp_path):
    """Both slots hold the newest record: one damaged slot loses nothing."""
    import h5py

    s, ids, x = make(tmp_path, "hdf5", n=25)
    s.close()
    with h5py.File(s.path, "r", swmr=True, locking=False) as h:
        off = h["commit0"].id.get_chunk_info(0).byte_offset
    with open(s.path, "r+b") as fh:
        fh.seek(off + 20)
        fh.write(b"#")
    with EmbeddingStore.open(s.path) as r:
        assert len(r) == 25
        np.testing.assert_array_equal(r.to_numpy(), mfs.quantize(x, "e2m1"))


# ---------------------------------------------------------------- info


def test_info_reports_sizes(tmp_path, backend):
    s, ids, _ = make(tmp_path, backend, n=40, metadata={"model": "m"})
    with s:
        s.delete(ids[:4])
        info = s.info()
        assert (info.backend, info.format, info.scale, info.dim) == (backend, "e2m1", "vector", 12)
        assert (info.count, info.deleted) == (36, 4)
        assert info.payload_bytes == mfs.storage_bytes(36, 12, "e2m1", "vector")
        assert info.bytes_on_disk >= info.vector_bytes_on_disk > info.payload_bytes
        assert info.bytes_per_vector == pytest.approx(info.bytes_on_disk / 36)
        text = str(info)
        assert "bytes on disk" in text and "payload" in text and '"model": "m"' in text


# ---------------------------------------------------------------- scoring


def test_score_search_verify_match_numpy_on_decoded_vectors(tmp_path, backend):
    s, ids, x = make(tmp_path, backend, n=60, fmt="e4m3")
    with s:
        s.delete(ids[:5])
        dec = s.get(ids[5:]).astype(np.float64)
        unit = dec / np.linalg.norm(dec, axis=1, keepdims=True)
        got = s.score([ids[5], ids[6]], [ids[7], ids[5]])
        np.testing.assert_allclose(got, [unit[0] @ unit[2], unit[1] @ unit[0]], atol=1e-6)
        q = vectors(3, seed=11)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        top_ids, top = s.search(q, k=4)
        assert top_ids.shape == top.shape == (3, 4) and top.dtype == np.float64
        ref = qn @ unit.T
        for i in range(3):
            best = np.argsort(-ref[i], kind="stable")[:4]
            assert list(top_ids[i]) == [ids[5 + j] for j in best]
            np.testing.assert_allclose(top[i], ref[i, best], atol=1e-6)
        assert s.verify(q[0], ids[9]) == pytest.approx(ref[0, 4], abs=1e-6)
        # The cache follows changes.
        s.delete([top_ids[0, 0]])
        assert top_ids[0, 0] not in s.search(q, k=4)[0][0]
        with pytest.raises(KeyError):
            s.verify(q[0], ids[0])


def test_zarr_store_at_an_fsspec_url(tmp_path):
    """Any URL zarr accepts works (here fsspec's in-memory filesystem); no lock there."""
    pytest.importorskip("fsspec")
    url = f"memory://{tmp_path.name}/s.zarr"
    x = vectors(30)
    with EmbeddingStore.create(url, dim=12, fmt="e4m3", chunk_rows=CHUNK) as s:
        s.add(ids_for(30), x)
        s.delete(ids_for(30)[:3])
        assert s.compact() == 3
    with EmbeddingStore.open(url) as r:
        assert r.ids == ids_for(30)[3:] and r.info().bytes_on_disk > r.info().payload_bytes
        np.testing.assert_array_equal(r.to_numpy(), mfs.quantize(x[3:], "e4m3"))


def test_deleting_everything_then_compacting_leaves_an_empty_usable_store(tmp_path, backend):
    s, ids, x = make(tmp_path, backend, n=35)
    with s:
        s.delete(ids)
        assert s.compact() == 35 and len(s) == 0 and s.to_numpy().shape == (0, 12)
        s.add(ids[:2], x[:2])
    with EmbeddingStore.open(s.path) as r:
        assert r.ids == ids[:2]


def test_a_failed_commit_leaves_the_committed_state(tmp_path, backend, monkeypatch):
    """An error inside the commit step (here: a full disk) changes nothing visible."""
    s, ids, x = make(tmp_path, backend, n=20)
    with s:
        be = s._backend

        def disk_full(record):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(be, "commit", disk_full)
        with pytest.raises(OSError, match="No space"):
            s.add(["n1", "n2"], vectors(2, seed=3))
        with pytest.raises(OSError, match="No space"):
            s.delete(ids[:2])
        monkeypatch.undo()
        assert len(s) == 20 and "n1" not in s and ids[0] in s
        s.add(["n1"], vectors(1, seed=3))
        np.testing.assert_array_equal(s.get(["n1"]), mfs.quantize(vectors(1, seed=3), "e2m1"))
    with EmbeddingStore.open(s.path) as r:
        assert len(r) == 21 and r.ids[-1] == "n1"
        np.testing.assert_array_equal(r.to_numpy()[:20], mfs.quantize(x, "e2m1"))


def test_open_detects_the_backend_of_each_store(tmp_path, backend):
    path = store_path(tmp_path, backend)
    EmbeddingStore.create(path, 4, backend=backend).close()
    with EmbeddingStore.open(path) as s:
        assert s.backend == backend


def test_open_says_what_a_path_is_not(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a store")
    with pytest.raises(ValueError, match="is neither") as err:
        EmbeddingStore.open(text)
    assert "a zarr directory" in str(err.value) and "an HDF5 file" in str(err.value)
    with pytest.raises(FileNotFoundError, match="no store at"):
        EmbeddingStore.open(tmp_path / "missing.zarr")
    with pytest.raises(ValueError, match="unknown backend 'sqlite'; expected .*'zarr'"):
        EmbeddingStore.create(tmp_path / "s.db", 4, backend="sqlite")
