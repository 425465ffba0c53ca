"""HDF5 backend: one ``.h5`` file (plus an empty ``.h5.lock`` file for the writer lock).

HDF5 is not crash-consistent by itself: its metadata lives in a cache that is
flushed in pieces, and a chunk that is rewritten is rewritten in place (a kill
in the middle leaves a chunk whose fletcher32 checksum fails, taking every
committed row of that chunk with it). Three measures make it safe:

1. The writer opens the file directly in SWMR-write mode (file format
   v110), in which HDF5 orders its metadata flushes so that the file on disk
   is always a consistent HDF5 file. After a writer is killed, the file opens for
   reading (readers always open it SWMR-read); the next writer copies the
   committed state into a fresh file and renames it over the old one,
   because a killed SWMR writer leaves a "file is open for writing" flag set.
2. No chunk that holds a committed element is ever rewritten. Each logical
   array is a ``sealed`` dataset that only ever receives *complete* chunks
   beyond its committed length, plus the partially filled last chunk (the
   *tail*, fewer than ``chunk_rows`` elements), which is written alternately
   into ``tail0`` and ``tail1``: a transaction writes the new tail into the
   slot the committed record does not use.
3. The commit record (JSON with a CRC32C, prefixed by its byte length) is
   written to ``commit0``, fsynced, then to ``commit1``, fsynced. A reader
   takes the valid slot with the highest ``txn``: a kill while writing
   ``commit0`` leaves the previous record in ``commit1``; a kill while
   writing ``commit1`` leaves the new one in ``commit0``.

``compact`` writes a new file next to the store and renames it over the store
(the rename is the commit point); a reader that opened the old file keeps
reading the old inode. Byte layout: docs/store.md.
"""

from __future__ import annotations

import ctypes
import os
import time
import uuid
from typing import Any, ClassVar

import crc32c
import h5py
import numpy as np

from minifloat_store.store.backend import SCAN_ROWS, Backend, register_backend
from minifloat_store.store.diskspace import reserve_space
from minifloat_store.store.durable import fsync_path
from minifloat_store.store.errors import StoreChangedError, StoreCorruptedError
from minifloat_store.store.hdf5_guard import check_chunk_sizes, checked_dataset, storage_size
from minifloat_store.store.hdf5_slots import (
    COMMIT_CHUNK,
    COMMIT_SLOTS,
    check_phys,
    fsync_file,
    read_record,
    write_slots,
)
from minifloat_store.store.record import ARRAYS, record_version

__all__ = ["HDF5Backend"]

#: File format bounds: v110 is the oldest with SWMR, readable by HDF5 >= 1.10.
LIBVER = ("v110", "v110")
DEFAULT_CHUNK_ROWS = 512
#: The id blob's chunk is this many bytes per row of ``chunk_rows``.
BLOB_BYTES_PER_ROW = 16
#: The first bytes of every HDF5 file (the superblock signature).
SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DTYPE = {"codes": np.uint8, "scales": np.float32, "id_ends": np.int64, "id_blob": np.uint8, "deleted": np.int64}
_FILL = {"codes": 0, "scales": np.nan, "id_ends": -1, "id_blob": 0, "deleted": -1}
#: Layout version 2: the id arrays are deflate-compressed (id_ends byte-shuffled first, so the slowly
#: changing high bytes of its int64 offsets compress away), in chunks of this many times the usual
#: length (deflate needs a few tens of KiB to reach ~3.5 bytes an id on VoxCeleb-style ids).
_COMPRESSED_FILTERS = {"id_ends": ("shuffle", "gzip"), "id_blob": ("gzip",)}
_COMPRESSED_CHUNK_FACTOR = 8
DEFLATE_LEVEL = 9
_FILTER_IDS = {"shuffle": h5py.h5z.FILTER_SHUFFLE, "gzip": h5py.h5z.FILTER_DEFLATE}


#: Metadata read attempts of a SWMR reader. A SWMR reader retries a metadata
#: read whose checksum fails (the writer may be mid-flush), with a sleep that
#: doubles from about the 20th attempt; HDF5's default of 100 attempts turns
#: one damaged byte of metadata into an hours-long hang. 28 attempts give a
#: writer's flush about 0.3 s to land and turn damage into an error as fast.
SWMR_READ_ATTEMPTS = 28


def _set_read_attempts(fapl: h5py.h5p.PropFAID, attempts: int) -> None:
    """``H5Pset_metadata_read_attempts`` (not wrapped by h5py), through ctypes on h5py's own libhdf5."""
    lib = None
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "libhdf5" in line and "libhdf5_hl" not in line}
        for path in paths:
            lib = ctypes.CDLL(path)
            break
    except OSError:
        pass
    fn = getattr(lib, "H5Pset_metadata_read_attempts", None)
    if fn is None:
        return  # not Linux, or no such symbol: HDF5's default applies
    fn.argtypes = [ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    fn(fapl.id, attempts)


def _open_reader(path: str) -> h5py.File:
    """Open for reading in SWMR mode (required while a writer is active or after one was killed)."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_WEAK)  # as h5py.File: a second open in one process must match
    fapl.set_file_locking(False, True)  # our own lock file guards writers; readers take none
    _set_read_attempts(fapl, SWMR_READ_ATTEMPTS)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    return h5py.File(fid)


def _open_writer(path: str) -> h5py.File:
    """Open read-write *already* in SWMR-write mode.

    Opening ``"r+"`` and then setting ``swmr_mode`` would leave a window in
    which the file is flagged "open for writing" but not "for SWMR writing":
    readers cannot open it then, and a writer killed in that window would
    lock readers out until the next writer recovers the file.
    """
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_WEAK)
    fapl.set_file_locking(False, True)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE, fapl=fapl)
    return h5py.File(fid)


def _compressed(name: str, version: int) -> bool:
    return version >= 2 and name in _COMPRESSED_FILTERS


def _unit(name: str, chunk_rows: int, version: int = 1) -> int:
    """Elements per chunk of array ``name``."""
    unit = chunk_rows * BLOB_BYTES_PER_ROW if name == "id_blob" else chunk_rows
    return unit * _COMPRESSED_CHUNK_FACTOR if _compressed(name, version) else unit


def _filters(name: str, version: int) -> tuple[int, ...]:
    """The filter pipeline of array ``name``'s datasets, in order (fletcher32 last: it covers the stored bytes)."""
    extra = _COMPRESSED_FILTERS[name] if _compressed(name, version) else ()
    return (*(_FILTER_IDS[f] for f in extra), h5py.h5z.FILTER_FLETCHER32)


def _tmp_name(path: str, what: str) -> str:
    d, base = os.path.split(os.path.abspath(path))
    return os.path.join(d, f".{base}.{what}-{uuid.uuid4().hex}.tmp")


def _build_file(path: str, row_bytes: int, chunk_rows: int, version: int) -> h5py.File:
    """Create every dataset of an empty store (SWMR forbids creating them later)."""
    f = h5py.File(path, "w-", libver=LIBVER, locking=False)
    f.attrs["minifloat_store_layout"] = "see the commit record in commit0/commit1 and docs/store.md"
    for name in ARRAYS:
        unit = _unit(name, chunk_rows, version)
        row = (row_bytes,) if name == "codes" else ()
        grp = f.create_group(name)
        extra = _COMPRESSED_FILTERS[name] if _compressed(name, version) else ()
        for ds in ("sealed", "tail0", "tail1"):
            grp.create_dataset(
                ds,
                shape=(0, *row),
                maxshape=(None, *row),
                chunks=(unit, *row),
                dtype=_DTYPE[name],
                fletcher32=True,
                shuffle="shuffle" in extra,
                compression="gzip" if "gzip" in extra else None,
                compression_opts=DEFLATE_LEVEL if "gzip" in extra else None,
                fillvalue=_FILL[name],
                track_times=False,
            )
    for slot in COMMIT_SLOTS:
        f.create_dataset(
            slot,
            shape=(0,),
            maxshape=(None,),
            chunks=(COMMIT_CHUNK,),
            dtype=np.uint8,
            fletcher32=True,
            track_times=False,
        )
    return f


class _Generation:
    """One open HDF5 file: committed sealed lengths and tails, plus what is staged."""

    #: Arrays whose staged tail changed since the last commit.
    dirty: set[str]

    def _ds(self, ds_name: str) -> h5py.Dataset:
        """A dataset, or StoreCorruptedError naming it if its metadata is damaged or not what we write."""
        array = ds_name.split("/")[0]
        tail = (self.row_bytes,) if array == "codes" else ()
        try:
            if ds_name in self._verified:  # its links, storage and filters were checked once: cheap from now on
                return self.f[ds_name]
            ds = checked_dataset(
                self.f, ds_name, f"store {self.path}", _DTYPE[array], tail, self.unit(array),
                _filters(array, self.version),
            )  # fmt: skip
            self._verified.add(ds_name)
            return ds
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            array = ds_name.split("/")[0]
            raise StoreCorruptedError(
                f"store {self.path}: array '{array}' (dataset '{ds_name}') cannot be opened: {exc} "
                "(its HDF5 metadata is damaged)"
            ) from None

    def __init__(self, f: h5py.File, record: dict[str, Any], path: str, writable: bool) -> None:
        self.f = f
        self.path = path
        self._verified: set[str] = set()
        phys = check_phys(record, f"store {path}")
        self.version = record_version(record)
        self.chunk_rows = int(phys["chunk_rows"])
        self.row_bytes = int(record["layout"]["row_bytes"])
        self.sealed = {name: int(phys["sealed"][name]) for name in ARRAYS}
        self.slots = {name: int(phys["tails"][name][0]) for name in ARRAYS}
        self.tail: dict[str, np.ndarray] = {}
        for name in ARRAYS:
            for ds_name in ("sealed", "tail0", "tail1"):
                self._ds(f"{name}/{ds_name}")  # all of them, read or not: a writer would write through any
        for name in ARRAYS:
            slot, length, crc = phys["tails"][name]
            length = int(length)
            if self.sealed[name] + length != int(record["lengths"][name]):
                raise StoreCorruptedError(f"store {path}: sealed + tail of '{name}' != its committed length")
            ds = self._ds(f"{name}/sealed")
            if ds.shape[0] < self.sealed[name]:
                raise StoreCorruptedError(
                    f"store {path}: dataset '{name}/sealed' has {ds.shape[0]} rows, "
                    f"the commit record needs {self.sealed[name]}"
                )
            row_nbytes = ds.dtype.itemsize * (self.row_bytes if name == "codes" else 1)
            if _compressed(name, self.version):
                # Every chunk the committed rows need is stored, and none is larger than deflate
                # can make its chunk: what inflating one allocates stays bounded by its chunk shape.
                check_chunk_sizes(
                    ds, self.sealed[name] // self.unit(name), self.unit(name) * row_nbytes, f"store {path}"
                )
            elif self.sealed[name] and storage_size(ds, f"store {path}") < self.sealed[name] * row_nbytes:
                raise StoreCorruptedError(
                    f"store {path}: dataset '{name}/sealed' stores {storage_size(ds, path):,} bytes, fewer than "
                    f"the {self.sealed[name]:,} committed elements need (elements 0..{self.sealed[name] - 1})"
                )
            if self.sealed[name] % self.unit(name) or length >= self.unit(name):
                raise StoreCorruptedError(f"store {path}: the commit record splits array '{name}' impossibly")
            tail_ds = self._ds(f"{name}/tail{int(slot)}")
            if tail_ds.shape[0] < length:
                raise StoreCorruptedError(
                    f"store {path}: dataset '{name}/tail{int(slot)}' has {tail_ds.shape[0]} rows, "
                    f"the commit record needs {length}"
                )
            data = self._read_ds(name, f"{name}/tail{int(slot)}", 0, length)
            if crc32c.crc32c(data.tobytes()) != int(crc):
                cls = StoreCorruptedError if writable else StoreChangedError
                raise cls(
                    f"store {path}: the tail of array '{name}' (dataset '{name}/tail{int(slot)}') does not match the "
                    "checksum in the commit record (rewritten by a concurrent writer, or corrupted)"
                )
            self.tail[name] = data
        self.abort()

    def unit(self, name: str) -> int:
        """Elements per chunk of array ``name`` in this file."""
        return _unit(name, self.chunk_rows, self.version)

    def _read_ds(self, name: str, ds_name: str, start: int, stop: int) -> np.ndarray:
        ds = self._ds(ds_name)
        if stop <= start:
            return np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
        try:
            return ds[start:stop]
        except (OSError, RuntimeError) as exc:
            raise StoreCorruptedError(
                f"store {self.path}: array '{name}' (dataset '{ds_name}') elements {start}..{stop - 1} cannot be "
                f"read: {exc} (a chunk fails its fletcher32 checksum or is damaged)"
            ) from None

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        s = self.sealed[name]
        if stop <= start:
            return self.tail[name][:0]
        parts = []
        if start < s:
            parts.append(self._read_ds(name, f"{name}/sealed", start, min(stop, s)))
        if stop > s:
            parts.append(self.tail[name][max(start, s) - s : stop - s])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def append(self, name: str, data: np.ndarray) -> None:
        if len(data) == 0:
            return
        unit = self.unit(name)
        tail = self.p_tail[name]
        start = self.p_sealed[name]
        full = (len(tail) + len(data)) // unit
        if full:
            ds = self._ds(f"{name}/sealed")
            self.pending += full * unit * ds.dtype.itemsize * (self.row_bytes if name == "codes" else 1)
            reserve_space(self.f, self.pending)
            end = start + full * unit
            if ds.shape[0] < end:
                ds.resize(end, axis=0)
            # Complete chunks go to positions past the committed length only.
            first = unit - len(tail)
            if len(tail):
                ds[start : start + unit] = np.concatenate((tail, data[:first]))
                if full > 1:
                    ds[start + unit : end] = data[first : first + (full - 1) * unit]
            else:
                ds[start:end] = data[: full * unit]
            used = full * unit - len(tail)
            self.p_tail[name] = np.array(data[used:], copy=True)
            self.p_sealed[name] = end
        else:
            self.p_tail[name] = np.concatenate((tail, data))
        self.dirty.add(name)

    def staged_length(self, name: str) -> int:
        return self.p_sealed[name] + len(self.p_tail[name])

    def write_tails(self) -> dict[str, Any]:
        """Write staged tails into the unused slots; return the record's physical part."""
        tails = {}
        reserve_space(self.f, self.pending + sum(self.p_tail[name].nbytes for name in self.dirty))
        for name in ARRAYS:
            if name in self.dirty:
                slot = 1 - self.slots[name]
                data = self.p_tail[name]
                ds = self._ds(f"{name}/tail{slot}")
                if ds.shape[0] < len(data):
                    ds.resize(len(data), axis=0)  # tails only grow (up to a chunk): no freed space
                if len(data):
                    ds[: len(data)] = data
                tails[name] = [slot, len(data), crc32c.crc32c(data.tobytes())]
            else:
                tails[name] = [self.slots[name], len(self.tail[name]), crc32c.crc32c(self.tail[name].tobytes())]
        return {"hdf5": {"chunk_rows": self.chunk_rows, "sealed": dict(self.p_sealed), "tails": tails}}

    def committed(self, phys: dict[str, Any]) -> None:
        self.sealed = dict(self.p_sealed)
        self.tail = dict(self.p_tail)
        self.slots = {name: int(phys["hdf5"]["tails"][name][0]) for name in ARRAYS}
        self.dirty = set()
        self.pending = 0

    def abort(self) -> None:
        self.p_sealed = dict(self.sealed)
        self.p_tail = dict(self.tail)
        self.dirty = set()
        self.pending = 0  # bytes written to the file since the last commit


def _empty_record_backend(chunk_rows: int) -> dict[str, Any]:
    return {
        "hdf5": {
            "chunk_rows": chunk_rows,
            "sealed": {name: 0 for name in ARRAYS},
            # Slot 1 "holds" the empty tail, so the first write goes to slot 0.
            "tails": {name: [1, 0, 0] for name in ARRAYS},
        }
    }


@register_backend
class HDF5Backend(Backend):
    """See the module docstring."""

    name: ClassVar[str] = "hdf5"
    container: ClassVar[str] = "an HDF5 file"

    @staticmethod
    def sniff(path: str) -> bool:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as fh:
            return fh.read(len(SIGNATURE)) == SIGNATURE

    @staticmethod
    def holds_store(path: str) -> bool:
        with h5py.File(path, "r", swmr=True, locking=False) as f:
            return COMMIT_SLOTS[0] in f and "codes" in f

    def __init__(self, path: str, writable: bool, f: h5py.File) -> None:
        self.path = path
        self.writable = writable
        self._f = f
        self._next: _Generation | None = None
        self._next_path: str | None = None
        try:
            self.record = read_record(f, f"store {path}")
            self._gen = _Generation(f, self.record, path, writable)
        except BaseException:
            f.close()
            raise

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def lock_path(cls, path: str) -> str | None:
        return path + ".lock"

    @classmethod
    def create(cls, path: str, record: dict[str, Any], chunk_rows: int | None) -> HDF5Backend:
        chunk_rows = chunk_rows or DEFAULT_CHUNK_ROWS
        if os.path.exists(path):
            raise FileExistsError(f"{path} already exists; choose a new path for the store")
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        record = dict(record, backend=_empty_record_backend(chunk_rows))
        tmp = _tmp_name(path, "creating")
        try:
            f = _build_file(tmp, int(record["layout"]["row_bytes"]), chunk_rows, record_version(record))
            try:
                write_slots(f, record)
            finally:
                f.close()
            fsync_path(tmp)
            os.link(tmp, path)  # fails if path appeared meanwhile: never clobbers
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        fsync_path(d)
        return cls.open(path, writable=True)

    @classmethod
    def open(cls, path: str, writable: bool) -> HDF5Backend:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no store at {path}")
        if not writable:
            return cls._open_for_reading(path)
        cls._cleanup(path)
        try:
            f = _open_writer(path)
        except OSError:
            # We hold the writer lock, so no writer is alive: the file carries the
            # "open for writing" flag of a writer that was killed. Its committed
            # state is intact (SWMR); copy it into a clean file.
            cls._recover(path)
            f = _open_writer(path)
        return cls(path, True, f)

    @classmethod
    def _open_for_reading(cls, path: str) -> HDF5Backend:
        """Open read-only; while a writer keeps changing the file, try again.

        A reader can catch a writer between two flushes (a commit slot being
        rewritten, a tail slot reused). What it reads then fails a check; if
        the file changed meanwhile, that was the writer, and the reader tries
        again. If the file did not change, the damage is real.
        """

        def stamp() -> tuple[int, int, int]:
            st = os.stat(path)
            return (st.st_ino, st.st_size, st.st_mtime_ns)

        for attempt in range(50):
            before = stamp()
            try:
                try:
                    f = _open_reader(path)
                except OSError as exc:
                    raise StoreCorruptedError(f"store {path}: HDF5 cannot open the file ({exc})") from None
                return cls(path, False, f)
            except (StoreCorruptedError, StoreChangedError):
                time.sleep(0.01)
                if stamp() == before or attempt == 49:
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _cleanup(cls, path: str) -> None:
        d, base = os.path.split(os.path.abspath(path))
        for entry in os.scandir(d):
            if entry.name.startswith(f".{base}.") and entry.name.endswith(".tmp"):
                os.unlink(entry.path)

    @classmethod
    def _recover(cls, path: str) -> None:
        try:
            src_file = _open_reader(path)
        except OSError as exc:
            raise StoreCorruptedError(f"store {path}: HDF5 cannot open the file ({exc})") from None
        with src_file:
            record = read_record(src_file, f"store {path}")
            src = _Generation(src_file, record, path, writable=True)
            tmp = _tmp_name(path, "recover")
            try:
                dst_file = _build_file(tmp, int(record["layout"]["row_bytes"]), src.chunk_rows, src.version)
                with dst_file:
                    empty = dict(record, backend=_empty_record_backend(src.chunk_rows), lengths={a: 0 for a in ARRAYS})
                    dst = _Generation(dst_file, empty, tmp, True)
                    for name in ARRAYS:
                        n = int(record["lengths"][name])
                        for lo in range(0, n, SCAN_ROWS):
                            dst.append(name, src.read(name, lo, min(n, lo + SCAN_ROWS)))
                        dst.dirty.add(name)
                    write_slots(dst_file, dict(record, backend=dst.write_tails()))
                fsync_path(tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        fsync_path(os.path.dirname(os.path.abspath(path)))

    def close(self) -> None:
        if self._next is not None:
            self.abort()
        if self._f is not None:
            try:
                self._f.close()
            finally:
                self._f = None

    # -- the record --------------------------------------------------------
    def reload_record(self) -> dict[str, Any]:
        return read_record(self._f, f"store {self.path}", refresh=not self.writable)

    def refresh(self) -> None:
        self.record = read_record(self._f, f"store {self.path}", refresh=not self.writable)
        self._gen = _Generation(self._f, self.record, self.path, self.writable)

    # -- data --------------------------------------------------------------
    def read_block_rows(self) -> int:
        return self._gen.chunk_rows

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        committed = int(self.record["lengths"][name])
        if not 0 <= start <= stop <= committed:
            raise IndexError(f"read of {name}[{start}:{stop}] beyond the committed length {committed}")
        return self._gen.read(name, start, stop)

    def append(self, name: str, data: np.ndarray) -> None:
        assert self.writable
        (self._next or self._gen).append(name, data)

    def begin_rewrite(self) -> None:
        assert self.writable
        if self._next is not None:
            self.abort()
        tmp = _tmp_name(self.path, "rewrite")
        chunk_rows = self._gen.chunk_rows
        f = _build_file(tmp, int(self.record["layout"]["row_bytes"]), chunk_rows, self._gen.version)
        empty = dict(self.record, backend=_empty_record_backend(chunk_rows), lengths={a: 0 for a in ARRAYS})
        self._next = _Generation(f, empty, tmp, writable=True)
        self._next_path = tmp

    def commit(self, record: dict[str, Any]) -> None:
        assert self.writable
        gen = self._next or self._gen
        for name in ARRAYS:
            if int(record["lengths"][name]) != gen.staged_length(name):
                raise AssertionError(f"record length of {name} != staged {gen.staged_length(name)}")
        if self._next is not None:
            for name in ARRAYS:
                gen.dirty.add(name)
            phys = gen.write_tails()
            record = dict(record, backend=phys)
            write_slots(gen.f, record)
            gen.f.close()
            tmp, self._next, self._next_path = self._next_path, None, None
            assert tmp is not None
            fsync_path(tmp)
            os.replace(tmp, self.path)  # the commit point of a rewrite
            fsync_path(os.path.dirname(os.path.abspath(self.path)))
            self._f.close()
            self._f = _open_writer(self.path)
            self.record = read_record(self._f, f"store {self.path}")
            self._gen = _Generation(self._f, self.record, self.path, True)
            return
        phys = gen.write_tails()
        self._f.flush()
        fsync_file(self._f)  # data and tails durable before the record names them
        record = dict(record, backend=phys)
        write_slots(self._f, record)
        gen.committed(phys)
        self.record = record

    def abort(self) -> None:
        if self._next is not None:
            try:
                self._next.f.close()
            finally:
                if self._next_path and os.path.exists(self._next_path):
                    os.unlink(self._next_path)
                self._next = None
                self._next_path = None
        self._gen.abort()

    # -- sizes -------------------------------------------------------------
    def nbytes_on_disk(self) -> int:
        return os.path.getsize(self.path)

    def array_nbytes(self, name: str) -> int:
        return sum(int(self._f[f"{name}/{ds}"].id.get_storage_size()) for ds in ("sealed", "tail0", "tail1"))
