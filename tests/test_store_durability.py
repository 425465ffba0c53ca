"""The commit protocol itself: what is durable at the moment a commit record is published.

The crash test (test_store_crash.py) kills writers with SIGKILL, which the page
cache survives, so it cannot see a missing fsync. Here the file-system calls
around a commit are recorded (``os.fsync``, ``os.replace`` / ``os.rename``,
``os.link``, ``os.unlink``, ``os.mkdir``, opening a file for writing
(``io.open`` or ``os.open``) and, for HDF5, files opened for writing, dataset
writes, ``h5py.File.flush`` and ``close``) and replayed against a model of what a power cut would
lose: a file's bytes are durable once it is fsynced after its last write; a
directory entry (a rename into it, a new subdirectory) once the directory is
fsynced. The tests assert that the record is published only after everything
it names is durable, and that the record's own directory entry is synced
before the commit returns. Deleting any of the backends' fsyncs fails them.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from minifloat_store.store import EmbeddingStore

CHUNK = 16  # rows per chunk: a 40-row batch fills chunks, starts new shards / seals, and leaves a tail


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 12)).astype(np.float32)


def _ids(n: int, start: int) -> list[str]:
    return [f"spk{i // 5}/utt{i % 5}" for i in range(start, start + n)]


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


class FileSystemLog:
    """Records file-system events under ``root`` and keeps what a power cut would lose.

    ``dirty_data``: files written (or renamed into place) and not fsynced since.
    ``dirty_dirs``: directories with an entry added (rename, mkdir) and not fsynced since.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.events: list[tuple] = []
        self.dirty_data: set[Path] = set()
        self.dirty_dirs: set[Path] = set()
        self.lock = threading.Lock()  # zarr writes from its own event-loop threads
        self.record: Path | None = None  # the file whose replacement publishes a commit record
        self.on_publish = None  # called with (self, event) when ``record`` is renamed into place

    def _mine(self, p: os.PathLike | str) -> Path | None:
        path = Path(os.path.abspath(os.fspath(p)))
        return path if path == self.root or self.root in path.parents else None

    def write(self, p) -> None:
        if (path := self._mine(p)) is not None:
            with self.lock:
                self.events.append(("write", path))
                self.dirty_data.add(path)

    def mkdir(self, p) -> None:
        if (path := self._mine(p)) is not None:
            with self.lock:
                self.events.append(("mkdir", path))
                self.dirty_dirs.add(path.parent)

    def rename(self, src, dst) -> None:
        s, d = self._mine(src), self._mine(dst)
        if d is None:
            return
        with self.lock:
            self.events.append(("rename", s, d))
            moved = {p for p in self.dirty_data if s is not None and (p == s or s in p.parents)}
            self.dirty_data -= moved
            self.dirty_data |= {d / p.relative_to(s) for p in moved}
            self.dirty_dirs.add(d.parent)
            if s is not None:
                self.dirty_dirs.add(s.parent)
        if self.on_publish is not None and d == self.record:
            self.on_publish(self, ("rename", s, d))

    def unlink(self, p) -> None:
        if (path := self._mine(p)) is not None:
            with self.lock:
                self.events.append(("unlink", path))
                self.dirty_data.discard(path)  # a file that is gone cannot be lost

    def fsync(self, fd: int) -> None:
        if (path := self._mine(_fd_path(fd))) is not None:
            with self.lock:
                self.events.append(("fsync", path))
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    self.dirty_dirs.discard(path)
                else:
                    self.dirty_data.discard(path)

    def note(self, *event) -> None:
        with self.lock:
            self.events.append(event)


@pytest.fixture
def fslog(monkeypatch, tmp_path):
    """Patch the file-system calls both backends (and zarr's local store) make."""
    log = FileSystemLog(tmp_path)
    real_fsync, real_replace, real_rename, real_mkdir, real_open = os.fsync, os.replace, os.rename, os.mkdir, io.open
    real_link, real_unlink, real_os_open = os.link, os.unlink, os.open

    def fsync(fd):
        real_fsync(fd)
        log.fsync(fd)

    def replace(src, dst, **kw):
        real_replace(src, dst, **kw)
        log.rename(src, dst)

    def rename(src, dst, **kw):
        real_rename(src, dst, **kw)
        log.rename(src, dst)

    def link(src, dst, **kw):  # zarr's exclusive write: link the temporary file into place, then unlink it
        real_link(src, dst, **kw)
        log.rename(src, dst)

    def unlink(path, **kw):
        real_unlink(path, **kw)
        log.unlink(path)

    def mkdir(path, mode=0o777, **kw):
        real_mkdir(path, mode, **kw)
        log.mkdir(path)

    def open_(file, mode="r", *args, **kw):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
            log.write(file)
        return real_open(file, mode, *args, **kw)

    def os_open(path, flags, *args, **kw):  # a file written through a raw descriptor
        fd = real_os_open(path, flags, *args, **kw)
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC):
            log.write(path if kw.get("dir_fd") is None else _fd_path(fd))
        return fd

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(io, "open", open_)  # pathlib.Path.open goes through io.open
    return log


def _durable_before_publish(log: FileSystemLog, event) -> None:
    """At the rename that publishes a zarr record: every file and directory entry it names is durable."""
    _, _, record = event
    data = {p for p in log.dirty_data if p != record}  # its own bytes: the test after this one
    dirs = set(log.dirty_dirs) - {record.parent}  # the record's own entry is synced right after
    log.published.append((sorted(map(str, data)), sorted(map(str, dirs))))


def test_zarr_record_is_published_only_after_the_data_it_names_is_durable(tmp_path, fslog):
    path = tmp_path / "s.zarr"
    with EmbeddingStore.create(str(path), dim=12, fmt="e2m1", backend="zarr", chunk_rows=CHUNK) as store:
        store.add(_ids(10, 0), _vectors(10, 0))
        fslog.published = []
        fslog.record = path.resolve() / "zarr.json"  # the root group's attributes hold the record
        fslog.on_publish = _durable_before_publish
        fslog.events.clear()
        # 40 rows after 10: the first shard is rewritten, two new shard files (and directories) appear.
        store.add(_ids(40, 10), _vectors(40, 1))
        assert len(fslog.published) == 1, "one add publishes one record"
        data, dirs = fslog.published[0]
        assert data == [], f"record published while these files were not fsynced: {data}"
        assert dirs == [], f"record published while entries in these directories were not synced: {dirs}"
        assert not fslog.dirty_data and not fslog.dirty_dirs, (
            f"commit returned with the record not durable: files {sorted(fslog.dirty_data)}, "
            f"directories {sorted(fslog.dirty_dirs)}"
        )
        written = {e[1] for e in fslog.events if e[0] == "write"}
        assert any(p.parent.parent.name == "c" for p in written), "the batch wrote no shard file: test is vacuous"
        assert any(e[0] == "mkdir" for e in fslog.events), "no new shard directory: test is vacuous"

        store.delete(_ids(5, 0))
        fslog.published.clear()
        fslog.events.clear()
        store.compact()  # a new generation directory, then the record naming it
        assert len(fslog.published) == 1
        data, dirs = fslog.published[0]
        assert data == [] and dirs == [], f"compact published early: files {data}, directories {dirs}"
        assert not fslog.dirty_data and not fslog.dirty_dirs


def _hdf5_events(monkeypatch, log: FileSystemLog) -> None:
    """Also record dataset writes and flushes: HDF5 writes through its own C library, not Python's open."""
    real_setitem, real_resize, real_flush = h5py.Dataset.__setitem__, h5py.Dataset.resize, h5py.File.flush
    real_close = h5py.File.close

    def setitem(self, key, value):
        log.note("h5write", Path(os.path.abspath(self.file.filename)), self.name)
        log.write(self.file.filename)
        return real_setitem(self, key, value)

    def resize(self, size, axis=None):
        log.note("h5write", Path(os.path.abspath(self.file.filename)), self.name)
        log.write(self.file.filename)
        return real_resize(self, size, axis)

    def close(self):  # closing a writable file writes its metadata cache and superblock
        if self.id.valid and self.mode == "r+":
            log.write(self.filename)
        real_close(self)

    def flush(self):
        real_flush(self)
        log.note("flush", Path(os.path.abspath(self.filename)))

    real_init = h5py.File.__init__

    def init(self, name, mode="r", *args, **kw):
        if isinstance(name, (str, os.PathLike)) and mode != "r":
            log.write(name)  # a new or changed file: durable once fsynced after it is closed
        real_init(self, name, mode, *args, **kw)

    monkeypatch.setattr(h5py.File, "__init__", init)
    monkeypatch.setattr(h5py.File, "close", close)
    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    monkeypatch.setattr(h5py.Dataset, "resize", resize)
    monkeypatch.setattr(h5py.File, "flush", flush)


def _check_hdf5_append_order(events: list[tuple], path: Path) -> None:
    """Data, then flush + fsync, then commit0, flush + fsync, then commit1, flush + fsync."""
    pending: set[str] = set()  # datasets written since the last flush + fsync of the file
    flushed = False
    slot_writes = []
    for e in events:
        if e[0] == "h5write" and e[1] == path:
            name = e[2].lstrip("/")
            if name in ("commit0", "commit1"):
                # A slot write is a resize and a write of the same slot: only other writes must be durable.
                assert pending <= {name}, f"{name} written while {sorted(pending)} were not flushed and fsynced"
                slot_writes.append(name)
            pending.add(name)
            flushed = False
        elif e[0] == "flush" and e[1] == path:
            flushed = True
        elif e[0] == "fsync" and e[1] == path and flushed:
            pending.clear()
    assert not pending, f"commit returned before {sorted(pending)} were flushed and fsynced"
    order = [s for i, s in enumerate(slot_writes) if i == 0 or slot_writes[i - 1] != s]
    assert order == ["commit0", "commit1"], f"commit slots written in the order {order}"


def test_hdf5_record_is_published_only_after_the_data_it_names_is_durable(tmp_path, fslog, monkeypatch):
    path = tmp_path / "s.h5"
    _hdf5_events(monkeypatch, fslog)
    with EmbeddingStore.create(str(path), dim=12, fmt="e2m1", backend="hdf5", chunk_rows=CHUNK) as store:
        store.add(_ids(10, 0), _vectors(10, 0))
        fslog.events.clear()
        store.add(_ids(40, 10), _vectors(40, 1))  # seals chunks and writes a new tail
        data = [e for e in fslog.events if e[0] == "h5write" and e[2].lstrip("/") not in ("commit0", "commit1")]
        assert data, "the batch wrote no data: test is vacuous"
        _check_hdf5_append_order(fslog.events, path.resolve())

        store.delete(_ids(5, 0))
        fslog.events.clear()
        fslog.dirty_data.clear()
        fslog.dirty_dirs.clear()
        store.compact()  # a new file built next to the store, then renamed over it
        renames = [i for i, e in enumerate(fslog.events) if e[0] == "rename" and e[2] == path.resolve()]
        assert len(renames) == 1, f"compact renamed onto the store {len(renames)} times"
        (at,) = renames
        src = fslog.events[at][1]
        last_write = max(i for i, e in enumerate(fslog.events[:at]) if e[0] == "h5write" and e[1] == src)
        synced = [i for i, e in enumerate(fslog.events[:at]) if e[0] == "fsync" and e[1] == src and i > last_write]
        assert synced, "the compacted file was renamed over the store before it was fsynced"
        dir_synced = [i for i, e in enumerate(fslog.events) if e[0] == "fsync" and e[1] == path.resolve().parent]
        assert any(i > at for i in dir_synced), "the rename over the store was not made durable (directory fsync)"
        assert path.resolve().parent not in fslog.dirty_dirs


def test_zarr_record_bytes_are_durable_before_the_rename_publishes_them(tmp_path, fslog):
    path = tmp_path / "s.zarr"
    with EmbeddingStore.create(str(path), dim=12, fmt="e2m1", backend="zarr", chunk_rows=CHUNK) as store:
        fslog.published = []
        fslog.record = path.resolve() / "zarr.json"
        fslog.on_publish = lambda log, event: log.published.append(event[2] in log.dirty_data)
        store.add(_ids(10, 0), _vectors(10, 0))
        assert fslog.published == [False], "the record file was renamed into place before its bytes were fsynced"


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_a_new_store_is_durable_when_it_appears_and_when_create_returns(tmp_path, fslog, monkeypatch, backend):
    # Creation publishes by a rename (zarr: the built directory) or a link (HDF5: the built file):
    # the same question as a commit, asked of the files the new name makes visible.
    path = (tmp_path / ("s.zarr" if backend == "zarr" else "s.h5")).resolve()
    if backend == "hdf5":
        _hdf5_events(monkeypatch, fslog)
    appeared = []
    fslog.record = path
    fslog.on_publish = lambda log, event: appeared.append(sorted(str(p) for p in log.dirty_data))
    EmbeddingStore.create(str(path), dim=12, fmt="e2m1", backend=backend, chunk_rows=CHUNK).close()
    assert any(e[0] == "write" for e in fslog.events), "no file write was recorded: test is vacuous"
    assert appeared == [[]], f"the store appeared while these files were not fsynced: {appeared}"
    assert path.parent not in fslog.dirty_dirs, "create returned before the new name's directory entry was synced"
