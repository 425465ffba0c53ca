"""Tools for building hostile stores: edits a stranger could make with valid checksums.

``edit_record`` rewrites the commit record and recomputes its CRC32C;
``write_rows`` changes stored elements through zarr or h5py, so every chunk
checksum (CRC32C, fletcher32) stays valid. What remains to catch such edits
is the store's own semantic checks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import crc32c
import h5py
import numpy as np
import zarr

from minifloat_store.encoding import Encoding
from minifloat_store.store import EmbeddingStore
from minifloat_store.store import hdf5_backend as hb
from minifloat_store.store.hdf5_backend import HDF5Backend
from minifloat_store.store.record import ARRAYS, RECORD_KEY, wrap_record
from minifloat_store.store.zarr_backend import ZarrBackend

CHUNK = 16
DIM = 12


def store_path(tmp_path: Any, backend: str, name: str = "s") -> str:
    return str(tmp_path / (name + (".zarr" if backend == "zarr" else ".h5")))


def make_store(
    path: str, backend: str, fmt: str | Encoding = "e4m3", n: int = 40, deleted: int = 2
) -> tuple[list[str], np.ndarray]:
    """A closed store of ``n`` rows (``deleted`` of them deleted); returns the live ids and their decoded vectors.

    ``fmt``: a format name, or an Encoding (fitted on the store's vectors if it centres).
    """
    x = np.random.default_rng(5).standard_normal((n, DIM)).astype(np.float32)
    ids = [f"spk{i // 4}/utt{i % 4}" for i in range(n)]
    if isinstance(fmt, Encoding) and not fmt.is_fitted:
        fmt = fmt.fit(x)
    with EmbeddingStore.create(path, DIM, fmt, backend=backend, chunk_rows=CHUNK) as s:
        s.add(ids[: n // 2], x[: n // 2])
        s.add(ids[n // 2 :], x[n // 2 :])
        s.delete(ids[:deleted])
    for lock in (os.path.join(path, ".lock"), path + ".lock"):
        if os.path.exists(lock):
            os.remove(lock)
    with EmbeddingStore.open(path) as s:
        return s.ids, s.to_numpy()


def _hdf5_wrappers(f: h5py.File) -> list[dict[str, Any]]:
    out = []
    for slot in hb.COMMIT_SLOTS:
        raw = f[slot][:]
        n = int.from_bytes(raw[:8].tobytes(), "little")
        out.append(json.loads(raw[8 : 8 + n].tobytes()))
    return out


def read_record(path: str, backend: str) -> dict[str, Any]:
    if backend == "zarr":
        doc = json.load(open(os.path.join(path, "zarr.json")))
        return json.loads(doc["attributes"][RECORD_KEY]["record"])
    with h5py.File(path, "r", locking=False) as f:
        recs = [json.loads(w["record"]) for w in _hdf5_wrappers(f)]
    return max(recs, key=lambda r: r["txn"])


def write_record(
    path: str, backend: str, record: dict[str, Any], raw_text: str | None = None, version: int | None = None
) -> None:
    """Store ``record`` (or ``raw_text`` verbatim) as the commit record, with a valid CRC32C.

    ``version``: the wrapper's layout version (default: the one the record's layout implies).
    """
    if raw_text is None:
        wrapper = wrap_record(record)
    else:
        wrapper = {"layout_version": 1, "record": raw_text, "record_crc32c": crc32c.crc32c(raw_text.encode())}
    if version is not None:
        wrapper["layout_version"] = version
    if backend == "zarr":
        zj = os.path.join(path, "zarr.json")
        doc = json.load(open(zj))
        doc["attributes"][RECORD_KEY] = wrapper
        json.dump(doc, open(zj, "w"))
        return
    payload = json.dumps(wrapper).encode()
    buf = np.frombuffer(len(payload).to_bytes(8, "little") + payload, dtype=np.uint8)
    with h5py.File(path, "r+", libver=hb.LIBVER, locking=False) as f:
        for slot in hb.COMMIT_SLOTS:
            f[slot].resize((max(len(buf), f[slot].shape[0]),))
            f[slot][: len(buf)] = buf


def edit_record(path: str, backend: str, edit: Callable[[dict[str, Any]], None]) -> None:
    rec = read_record(path, backend)
    edit(rec)
    write_record(path, backend, rec)


def read_rows(path: str, backend: str, name: str, start: int, stop: int) -> np.ndarray:
    with EmbeddingStore.open(path) as s:
        return s._backend.read(name, start, stop).copy()


def refresh_digests(path: str, backend: str) -> None:
    """Recompute the record's block digests from the data as it now is (what a careful forger would do)."""
    rec = read_record(path, backend)
    if "digests" not in rec:
        return  # a store (or a version of the library) without block digests
    from minifloat_store.store.digests import BlockDigests  # absent before block digests existed

    be = (ZarrBackend if backend == "zarr" else HDF5Backend).open(path, False)
    try:
        d = BlockDigests.empty(rec, rec["digests"]["block"])
        for name in ARRAYS:
            d = d.extended(name, 0, be.read(name, 0, rec["lengths"][name]))
    finally:
        be.close()
    rec["digests"] = d.to_record()
    write_record(path, backend, rec)


def write_rows(path: str, backend: str, name: str, start: int, values: np.ndarray, digests: bool = True) -> None:
    """Overwrite committed elements ``start..`` of array ``name``, keeping every checksum valid.

    ``digests``: recompute the record's block digests too (else they tell the change).
    """
    rec = read_record(path, backend)
    stop = start + len(values)
    if backend == "zarr":
        arr = zarr.open_array(os.path.join(path, f"g{rec['generation']}", name), mode="r+")
        arr[start:stop] = values
        if digests:
            refresh_digests(path, backend)
        return
    phys = rec["backend"]["hdf5"]
    sealed = phys["sealed"][name]
    with h5py.File(path, "r+", libver=hb.LIBVER, locking=False) as f:
        if start < sealed:
            f[f"{name}/sealed"][start : min(stop, sealed)] = values[: max(0, min(stop, sealed) - start)]
        if stop > sealed:
            slot, length, _ = phys["tails"][name]
            ds = f[f"{name}/tail{slot}"]
            lo = max(start, sealed) - sealed
            ds[lo : stop - sealed] = values[len(values) - (stop - sealed - lo) :]
            phys["tails"][name][2] = crc32c.crc32c(ds[:length].tobytes())
    write_record(path, backend, rec)
    if digests:
        refresh_digests(path, backend)


def shard_files(path: str, name: str) -> list[str]:
    """Chunk files of a zarr array, in position order."""
    rec = read_record(path, "zarr")
    base = os.path.join(path, f"g{rec['generation']}", name, "c")
    keys = sorted(int(k) for k in os.listdir(base))
    return [os.path.join(base, str(k), "0") if name == "codes" else os.path.join(base, str(k)) for k in keys]


def replace_zarr_inner_chunk(shard: str, k: int, payload: bytes) -> None:
    """Replace inner chunk ``k`` of a zarr shard file by ``payload`` (its CRC32C appended), keeping every
    checksum valid: the chunk's own CRC32C and the shard index's."""
    raw = open(shard, "rb").read()
    n_inner = (len(raw) - 4) // 16  # an upper bound; the real count comes from the index size below
    for n in range(1, n_inner + 1):  # the index is n * 16 bytes + a CRC32C of them, at the end
        index = raw[len(raw) - 4 - 16 * n : len(raw) - 4]
        if crc32c.crc32c(index) == int.from_bytes(raw[-4:], "little"):
            break
    else:
        raise ValueError(f"{shard}: no shard index found")
    entries = np.frombuffer(index, dtype="<u8").reshape(n, 2).copy()
    body = raw[: len(raw) - 4 - 16 * n]
    chunk = payload + crc32c.crc32c(payload).to_bytes(4, "little")
    entries[k] = (len(body), len(chunk))
    body += chunk
    index = entries.astype("<u8").tobytes()
    with open(shard, "wb") as fh:
        fh.write(body + index + crc32c.crc32c(index).to_bytes(4, "little"))
