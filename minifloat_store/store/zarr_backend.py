"""Zarr v3 backend: a directory (or any fsspec URL zarr accepts).

Layout (docs/store.md has it byte by byte)::

    STORE/zarr.json            root group; attributes["minifloat_store"] is the commit record
    STORE/g<N>/<array>/...     the five logical arrays of generation N
    (the writer lock is an flock on STORE itself; local stores only)

Every array is sharded: one shard file per ``chunk_rows`` rows (65,536 by
default) holding inner chunks of 1,024 rows (4,096 elements for the 1-D
arrays), each followed by its CRC32C; the
shard index carries its own CRC32C. Inner chunks past the end are not
written, so a partial last shard costs at most one partially filled inner
chunk: the on-disk size stays within a fraction of a percent of the payload.

Crash safety rests on two facts: zarr's local store writes every file to a
temporary name and renames it into place (so a rewritten shard is either the
old or the new file, and the old one already held every committed row
unchanged), and the commit record lives in the root ``zarr.json``, which
this backend replaces itself (write, fsync, rename, fsync the directory):
zarr's rename does not fsync the new bytes first. Before a record is
published, every file written since the last commit is fsynced.

A store may come from a stranger (docs/store.md, "Stores from untrusted
sources"). On a local store every file is read through :class:`ConfinedStore`:
each path component is opened without following symbolic links, and only
regular files of a bounded size are read, so a planted link, FIFO or device
can neither lead outside the store nor block or exhaust memory. Opening also
walks the whole tree and refuses links and special files anywhere in it (a
writer would otherwise write through them), and every array's metadata must be
exactly the codec chain this module writes (sharding, bytes, CRC32C) before
zarr is allowed to interpret it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.errors import ContainsArrayError, ContainsGroupError

from minifloat_store.store.backend import Backend, register_backend
from minifloat_store.store.durable import fsync_all, fsync_path, replace_durably
from minifloat_store.store.errors import StoreChangedError, StoreCorruptedError
from minifloat_store.store.record import ARRAYS, RECORD_KEY, record_version, unwrap_record, wrap_record
from minifloat_store.store.remote import RemoteRecordFile, is_url
from minifloat_store.store.zarr_confined import (
    BLOB_BYTES_PER_ROW,
    DTYPE,
    FILL,
    MAX_CHUNK_ROWS,
    MAX_METADATA_BYTES,
    ZSTD_LEVEL,
    ConfinedStore,
    check_array_meta,
    check_compressed_shard,
    check_shards,
    compressed,
    read_confined,
    scan_tree,
)

__all__ = ["ZarrBackend"]

DEFAULT_CHUNK_ROWS = 65536
#: Inner chunk rows of ``codes``: small, because a partial last inner chunk is
#: stored at full size (1,024 rows keep 100k vectors within 1% of the payload).
INNER_ROWS = 1024
#: Inner chunk elements of the 1-D arrays: larger, because zarr's cost is per
#: inner chunk (measured: a 65,536-element int64 shard writes in 9 ms with
#: 4,096-element chunks, 25 ms with 1,024) and their padding is a few bytes a row.
INNER_ROWS_1D = 4096


def _local(path: str) -> Path | None:
    if path.startswith("file://"):
        return Path(path[len("file://") :])
    return None if is_url(path) else Path(path)


def _open_group(path: str, mode: Literal["r", "r+", "w-"], storage_options: dict[str, Any] | None) -> zarr.Group:
    # zarr accepts storage_options for URLs only.
    return zarr.open_group(path, mode=mode, storage_options=storage_options if is_url(path) else None)


def _create_arrays(group: zarr.Group, gen: int, row_bytes: int, chunk_rows: int, version: int) -> None:
    inner = min(INNER_ROWS, chunk_rows)
    inner_1d = min(INNER_ROWS_1D, chunk_rows)
    for name in ARRAYS:
        shape: tuple[int, ...]
        shards: tuple[int, ...]
        chunks: tuple[int, ...]
        if name == "codes":
            shape, shards, chunks = (0, row_bytes), (chunk_rows, row_bytes), (inner, row_bytes)
        elif name == "id_blob":
            shape, shards, chunks = (0,), (chunk_rows * BLOB_BYTES_PER_ROW,), (inner_1d * BLOB_BYTES_PER_ROW,)
        else:
            shape, shards, chunks = (0,), (chunk_rows,), (inner_1d,)
        group.create_array(
            f"g{gen}/{name}",
            shape=shape,
            dtype=DTYPE[name],
            shards=shards,
            chunks=chunks,
            filters=None,
            # bytes-to-bytes, CRC32C last in each inner chunk's chain (so it covers the compressed bytes)
            compressors=[ZstdCodec(level=ZSTD_LEVEL), Crc32cCodec()] if compressed(name, version) else Crc32cCodec(),
            fill_value=FILL[name],
            # Write every in-bounds chunk, even all-fill ones: a missing chunk is then always an error.
            config={"write_empty_chunks": True},
        )


@register_backend
class ZarrBackend(Backend):
    """See the module docstring."""

    name: ClassVar[str] = "zarr"
    container: ClassVar[str] = "a zarr directory"
    remote: ClassVar[bool] = True

    @staticmethod
    def sniff(path: str) -> bool:
        # Any directory or URL (file:// included): a damaged store must still reach open(), which names the damage.
        return "://" in path or os.path.isdir(path)

    @staticmethod
    def holds_store(path: str) -> bool:
        if not os.path.isdir(path):
            return False
        try:  # confined: a FIFO or a link to /dev/zero in place of zarr.json must not block or fill memory
            raw = read_confined(Path(path), "zarr.json", None, MAX_METADATA_BYTES)
            doc = json.loads(raw) if raw is not None else None
        except (StoreCorruptedError, ValueError, RecursionError):
            return False
        attrs = doc.get("attributes") if isinstance(doc, dict) else None
        return isinstance(attrs, dict) and RECORD_KEY in attrs

    def __init__(self, path: str, writable: bool, storage_options: dict[str, Any] | None = None) -> None:
        self.path = path
        self.writable = writable
        self.storage_options = storage_options
        self._local = _local(path)
        mode: Literal["r", "r+"] = "r+" if writable else "r"
        # Object storage: the commit is a conditional PUT of the root zarr.json (see remote.py).
        self._record_file = RemoteRecordFile(path, storage_options) if writable and self._local is None else None
        self._checked = False
        self._store: ConfinedStore | None = None
        if self._local is not None:
            scan_tree(self._local)  # no link or special file anywhere, before anything is read
            self._store = ConfinedStore(self._local, read_only=not writable)
        try:
            if self._store is not None:
                self._root = zarr.open_group(self._store, mode=mode)
            else:
                self._root = _open_group(path, mode, storage_options)
        except StoreCorruptedError:
            raise
        except FileNotFoundError:
            raise FileNotFoundError(f"no store at {path}") from None
        except Exception as exc:  # zarr raises several kinds for a non-group path
            raise StoreCorruptedError(f"store {path}: cannot open the zarr root group ({exc})") from None
        self.record = self._record_from(self._root.attrs.asdict())
        self._arrays: dict[str, Any] = {}
        self._next: dict[str, Any] | None = None
        self._next_gen = -1
        self._touched: set[Path] = set()
        if writable and self._local is not None:
            self._cleanup()
        for _ in range(8):
            try:
                self._open_generation()
                return
            except StoreCorruptedError:
                # A reader can lose a race with a compaction that removed the
                # generation its record named: follow the new record instead.
                fresh = None if writable else self.reload_record()
                if fresh is None or fresh["generation"] == self.record["generation"]:
                    raise
                self.record = fresh
        raise StoreChangedError(f"store {path} kept being compacted while being opened; try again")

    # -- the record --------------------------------------------------------
    def _record_from(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return unwrap_record(attrs.get(RECORD_KEY), f"store {self.path}")

    def reload_record(self) -> dict[str, Any]:
        try:
            root = _open_group(self.path, "r", self.storage_options)
        except Exception as exc:
            raise StoreCorruptedError(f"store {self.path}: cannot reopen the root group ({exc})") from None
        return self._record_from(root.attrs.asdict())

    def refresh(self) -> None:
        self.record = self.reload_record()
        self._open_generation()

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def lock_path(cls, path: str) -> str | None:
        # The store directory itself: nothing to create, nothing that can be deleted to let a second writer in.
        local = _local(path)
        return None if local is None else str(local)

    @classmethod
    def create(
        cls, path: str, record: dict[str, Any], chunk_rows: int | None, storage_options: dict[str, Any] | None = None
    ) -> ZarrBackend:
        chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
        record = dict(record, backend={"zarr": {"chunk_rows": chunk_rows}})
        local = _local(path)
        if local is None:
            try:
                group = _open_group(path, "w-", storage_options)
            except (ContainsArrayError, ContainsGroupError, FileExistsError):
                raise FileExistsError(f"{path} already exists; choose a new path for the store") from None
            _create_arrays(group, 0, record["layout"]["row_bytes"], chunk_rows, record_version(record))
            group.update_attributes({RECORD_KEY: wrap_record(record)})
            return cls(path, writable=True, storage_options=storage_options)
        if local.exists():
            raise FileExistsError(f"{path} already exists; choose a new path for the store")
        local.parent.mkdir(parents=True, exist_ok=True)
        # Build under a temporary name and rename: a crash leaves no half store.
        tmp = local.parent / f".{local.name}.creating-{uuid.uuid4().hex}"
        try:
            group = zarr.open_group(str(tmp), mode="w-")
            _create_arrays(group, 0, record["layout"]["row_bytes"], chunk_rows, record_version(record))
            group.update_attributes({RECORD_KEY: wrap_record(record)})
            fsync_all(Path(d) / f for d, _, files in os.walk(tmp) for f in files)
            os.rename(tmp, local)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_path(local.parent)
        return cls(path, writable=True)

    @classmethod
    def open(cls, path: str, writable: bool, storage_options: dict[str, Any] | None = None) -> ZarrBackend:
        local = _local(path)
        if local is not None and not (local / "zarr.json").exists():
            if not local.exists():
                raise FileNotFoundError(f"no store at {path}")
            raise StoreCorruptedError(f"{path} is not a zarr store (no zarr.json)")
        return cls(path, writable, storage_options)

    def _cleanup(self) -> None:
        """Writer only: drop what killed writers left (temp files, unused generations)."""
        assert self._local is not None
        keep = f"g{int(self.record['generation'])}"
        for entry in os.scandir(self._local):
            if entry.is_dir() and entry.name.startswith("g") and entry.name[1:].isdigit() and entry.name != keep:
                shutil.rmtree(entry.path, ignore_errors=True)
        for dirpath, _, files in os.walk(self._local):
            for f in files:
                if f.endswith(".partial"):  # zarr's temporary name for a file being written
                    os.unlink(os.path.join(dirpath, f))

    def _chunk_rows(self) -> int:
        phys = self.record.get("backend")
        phys = phys.get("zarr") if isinstance(phys, dict) else None
        rows = phys.get("chunk_rows") if isinstance(phys, dict) else None
        if not isinstance(rows, int) or isinstance(rows, bool) or not 0 < rows <= MAX_CHUNK_ROWS:
            raise StoreCorruptedError(f"store {self.path}: the commit record's chunk_rows {rows!r} is not valid")
        return rows

    def _get_json(self, key: str) -> Any:
        """A metadata document read through the (confined) store, or None if absent."""

        buf = sync(self._root.store.get(key, default_buffer_prototype()))
        if buf is None:
            return None
        raw = buf.to_bytes()
        if len(raw) > MAX_METADATA_BYTES:
            raise StoreCorruptedError(f"store {self.path}: {key} is larger than any metadata document")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise StoreCorruptedError(f"store {self.path}: {key} is not valid JSON ({exc})") from None

    @property
    def _version(self) -> int:
        return record_version(self.record)

    def _open_generation(self) -> None:
        gen = int(self.record["generation"])
        lengths = self.record["lengths"]
        row_bytes = int(self.record["layout"]["row_bytes"])
        chunk_rows = self._chunk_rows()
        self._arrays = {}
        self._inner: dict[str, int] = {}
        limit = 0
        for name in ARRAYS:
            doc = self._get_json(f"g{gen}/{name}/zarr.json")
            if doc is None:
                raise StoreCorruptedError(f"store {self.path}: array 'g{gen}/{name}' is missing")
            length, self._inner[name], max_shard = check_array_meta(
                doc, f"store {self.path}", name, row_bytes, chunk_rows, self._version
            )
            if length < int(lengths[name]):
                raise StoreCorruptedError(
                    f"store {self.path}: array 'g{gen}/{name}' has {length} elements, the commit record "
                    f"names {lengths[name]}"
                )
            limit = max(limit, max_shard)
        if self._store is not None:
            self._store.chunk_limit = limit
            if self._root.store is not self._store:
                self._root.store.chunk_limit = limit  # type: ignore[attr-defined]
        for name in ARRAYS:
            try:
                arr = self._root[f"g{gen}/{name}"]
            except KeyError:
                raise StoreCorruptedError(f"store {self.path}: array 'g{gen}/{name}' is missing") from None
            except Exception as exc:  # zarr raises many kinds for damaged metadata
                raise StoreCorruptedError(
                    f"store {self.path}: metadata of array '{name}' (g{gen}/{name}/zarr.json) cannot be read: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            expect_tail = (row_bytes,) if name == "codes" else ()
            if (
                not isinstance(arr, zarr.Array)
                or arr.dtype != np.dtype(DTYPE[name])
                or tuple(arr.shape[1:]) != expect_tail
                or arr.shape[0] < int(lengths[name])
            ):
                raise StoreCorruptedError(
                    f"store {self.path}: array 'g{gen}/{name}' ({getattr(arr, 'dtype', '?')}, shape "
                    f"{getattr(arr, 'shape', '?')}) does not match the commit record (length {lengths[name]})"
                )
            self._arrays[name] = arr
        self._staged = {name: int(lengths[name]) for name in ARRAYS}
        if self._local is not None:
            check_shards(self._local, self.path, self.record, self._arrays, self._inner, self._version)

    def close(self) -> None:
        self._arrays = {}
        self._next = None

    # -- data --------------------------------------------------------------
    def read_block_rows(self) -> int:
        return int(self._arrays["codes"].chunks[0])

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        committed = int(self.record["lengths"][name])
        if not 0 <= start <= stop <= committed:
            raise IndexError(f"read of {name}[{start}:{stop}] beyond the committed length {committed}")
        arr = self._arrays[name]
        if start == stop:
            return np.empty((0, *arr.shape[1:]), dtype=arr.dtype)
        if compressed(name, self._version):
            self._check_compressed(name, arr, start, stop)
        try:
            return np.asarray(arr[start:stop])
        except Exception as exc:
            raise StoreCorruptedError(
                f"store {self.path}: array '{name}' elements {start}..{stop - 1} cannot be read: "
                f"{type(exc).__name__}: {exc} (a chunk fails its CRC32C checksum or is damaged)"
            ) from None

    def _check_compressed(self, name: str, arr: Any, start: int, stop: int) -> None:
        """Before zarr decompresses shards of ``name`` holding ``[start, stop)``: each inner chunk declares
        exactly its chunk's bytes (a hostile frame could otherwise make the decoder allocate terabytes)."""
        gen = int(self.record["generation"])
        per = int(arr.shards[0])
        inner = self._inner[name]
        chunk_bytes = inner * np.dtype(DTYPE[name]).itemsize
        for s in range(start // per, (stop - 1) // per + 1):
            key = f"g{gen}/{name}/c/{s}"
            buf = sync(self._root.store.get(key, default_buffer_prototype()))
            if buf is None:
                raise StoreCorruptedError(f"store {self.path}: array '{name}' is missing its chunk file {key}")
            where = f"store {self.path}: array '{name}' chunk file {key}"
            check_compressed_shard(buf.to_bytes(), per // inner, chunk_bytes, where)

    def _check_generation(self) -> None:
        """Object storage, before a transaction's first write: refuse if another writer committed meanwhile."""
        if self._record_file is None or self._checked:
            return
        now = self.reload_record()
        if now.get("txn") != self.record.get("txn") or now.get("generation") != self.record.get("generation"):
            raise StoreChangedError(
                f"store {self.path}: the commit record changed under this writer (txn {self.record.get('txn')} -> "
                f"{now.get('txn')}): another writer committed; nothing was written. Reopen the store"
            )
        self._checked = True

    def _touch_rows(self, name: str, arr: Any, start: int, stop: int) -> None:
        """Remember the files that rows ``[start, stop)`` of ``name`` live in, for the fsync before the commit."""
        if self._local is None:
            return
        gen = self._next_gen if self._next is not None else int(self.record["generation"])
        base = self._local / f"g{gen}" / name
        self._touched.add(base / "zarr.json")
        per = arr.shards[0]
        for s in range(start // per, (stop - 1) // per + 1):
            self._touched.add(base / "c" / str(s))
            if name == "codes":  # a shard directory (possibly new) holding its file: sync both
                self._touched.add(base / "c" / str(s) / "0")

    def append(self, name: str, data: np.ndarray) -> None:
        assert self.writable
        self._check_generation()
        arrays = self._next if self._next is not None else self._arrays
        arr = arrays[name]
        start = self._staged[name]
        stop = start + len(data)
        if len(data) == 0:
            return
        arr.resize((stop, *arr.shape[1:]))
        arr[start:stop] = data
        self._touch_rows(name, arr, start, stop)
        self._staged[name] = stop

    def begin_rewrite(self) -> None:
        assert self.writable
        self._check_generation()
        gen = int(self.record["generation"]) + 1
        if f"g{gen}" in self._root:
            del self._root[f"g{gen}"]
        chunk_rows = self._chunk_rows()
        _create_arrays(self._root, gen, int(self.record["layout"]["row_bytes"]), chunk_rows, self._version)
        self._next = {name: self._root[f"g{gen}/{name}"] for name in ARRAYS}
        self._next_gen = gen
        self._staged = {name: 0 for name in ARRAYS}

    def _sync_touched(self) -> None:
        fsync_all(self._touched)
        self._touched.clear()

    def commit(self, record: dict[str, Any]) -> None:
        assert self.writable
        record = dict(record, backend=self.record["backend"])
        switching = self._next is not None
        if switching and int(record["generation"]) != self._next_gen:
            raise AssertionError("a rewrite must commit the next generation")
        for name in ARRAYS:
            if int(record["lengths"][name]) != self._staged[name]:
                raise AssertionError(f"record length of {name} != staged {self._staged[name]}")
        if self._local is not None:
            if switching:
                for dirpath, _, files in os.walk(self._local / f"g{self._next_gen}"):
                    for f in files:
                        self._touched.add(Path(dirpath) / f)
                # The new generation's directory entry in the root, too.
                self._touched.add(self._local / f"g{self._next_gen}")
            self._sync_touched()
        if self._record_file is not None:
            self._commit_remote(record)
        elif self._local is not None:
            self._publish_local(record)
        else:
            self._root.update_attributes({RECORD_KEY: wrap_record(record)})  # the commit point
        old = int(self.record["generation"])
        self.record = record
        if switching:
            self._next = None
            self._next_gen = -1
            try:
                del self._root[f"g{old}"]
            except Exception:
                pass  # a writer's next open removes it
            self._open_generation()

    def _publish_local(self, record: dict[str, Any]) -> None:
        """Replace the root zarr.json with one naming ``record``: bytes fsynced before the rename, then the entry."""
        assert self._local is not None
        wrapped = wrap_record(record)
        meta = self._root.metadata
        doc = replace(meta, attributes={**meta.attributes, RECORD_KEY: wrapped})
        raw = doc.to_buffer_dict(default_buffer_prototype())["zarr.json"].to_bytes()  # zarr's own serialisation
        replace_durably(self._local / "zarr.json", raw)  # the commit point
        meta.attributes[RECORD_KEY] = wrapped  # keep the open group's view in step, as update_attributes would

    def _commit_remote(self, record: dict[str, Any]) -> None:
        """Publish ``record`` with a conditional PUT, refused if the stored record is not the one this writer has."""
        assert self._record_file is not None
        doc, token = self._record_file.read()
        now = self._record_from(doc.get("attributes", {}))
        if now.get("txn") != self.record.get("txn") or now.get("generation") != self.record.get("generation"):
            raise StoreChangedError(
                f"store {self.path}: the commit record changed under this writer (txn {self.record.get('txn')} -> "
                f"{now.get('txn')}): another writer committed; this transaction was not committed. Reopen the store"
            )
        doc.setdefault("attributes", {})[RECORD_KEY] = wrap_record(record)
        self._record_file.write(doc, token)  # the commit point
        self._checked = False

    # -- rows written by other processes (minifloat_store.dask.convert) ---------
    def array_url(self, name: str) -> str:
        """Where the array ``name`` of the generation being written lives (for other processes to write to)."""
        gen = self._next_gen if self._next is not None else int(self.record["generation"])
        return f"{self.path.rstrip('/')}/g{gen}/{name}"

    def read_staged(self, name: str, start: int, stop: int) -> np.ndarray:
        """Elements ``[start, stop)`` of ``name`` as staged (rows other processes wrote, not yet committed)."""
        arrays = self._next if self._next is not None else self._arrays
        if not 0 <= start <= stop <= self._staged[name]:
            raise IndexError(f"read of staged {name}[{start}:{stop}] beyond the staged length {self._staged[name]}")
        try:
            return np.asarray(arrays[name][start:stop])
        except Exception as exc:
            raise StoreCorruptedError(
                f"store {self.path}: staged array '{name}' elements {start}..{stop - 1} cannot be read: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    def stage_external(self, name: str, stop: int) -> None:
        """Grow ``name`` to ``stop`` elements that other processes write; the next commit covers them.

        Those processes must have finished writing (whole shards) before ``commit``; a
        local store's commit fsyncs the shard files named here.
        """
        assert self.writable
        self._check_generation()
        arrays = self._next if self._next is not None else self._arrays
        arr = arrays[name]
        start = self._staged[name]
        if stop <= start:
            raise ValueError(f"stage_external: {name} is already staged to {start}")
        arr.resize((stop, *arr.shape[1:]))
        self._touch_rows(name, arr, start, stop)
        self._staged[name] = stop

    def abort(self) -> None:
        self._checked = False
        self._touched.clear()
        if self._next is not None:
            gen = self._next_gen
            self._next = None
            self._next_gen = -1
            try:
                del self._root[f"g{gen}"]
            except Exception:
                pass
        self._staged = {name: int(self.record["lengths"][name]) for name in ARRAYS}

    # -- sizes -------------------------------------------------------------
    def nbytes_on_disk(self) -> int:
        if self._local is None:
            return self._remote_size("")
        total = 0
        for dirpath, _, files in os.walk(self._local):
            for f in files:
                total += os.path.getsize(os.path.join(dirpath, f))
        return total

    def array_nbytes(self, name: str) -> int:
        gen = int(self.record["generation"])
        if self._local is None:
            return self._remote_size(f"g{gen}/{name}")
        total = 0
        for dirpath, _, files in os.walk(self._local / f"g{gen}" / name):
            for f in files:
                total += os.path.getsize(os.path.join(dirpath, f))
        return total

    def _remote_size(self, prefix: str) -> int:
        store = self._root.store

        async def _size() -> int:
            total = 0
            async for key in store.list_prefix(prefix):
                total += await store.getsize(key)
            return total

        return int(sync(_size()))
