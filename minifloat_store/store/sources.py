"""Where ``convert`` reads from: float vectors in npy, npz, HDF5 or zarr, another store, and ids.

Sources (the ``src`` of ``convert``):

* ``vectors.npy``: read memory-mapped, one short-lived map per batch;
* ``bundle.npz`` or ``bundle.npz:KEY``: the member is streamed out of the zip
  (``KEY`` may be omitted when the file holds one array besides ``ids``);
* ``file.h5:/group/dataset``: an HDF5 dataset, read by slices;
* ``dir.zarr`` (an array) or ``dir.zarr:/group/array``: a zarr array, read by slices;
* another minifloat store (zarr directory or ``.h5``): its decoded vectors.

Ids: a text file (one id per line), a dataset spec as above, a sequence of
str, or ``None``: then a sibling dataset named ``ids`` next to the vectors
(the npz member ``ids``, ``/group/ids``...), the source store's own ids, or
else the row numbers ``"0"``, ``"1"``...

Every source has ``name``, ``n``, ``dim``, ``nbytes`` (as stored),
``metadata``, ``read(lo, hi)`` (rows in order), ``read_ids(lo, hi)`` and
``close()``. No source unpickles anything.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator, Sequence
from typing import Any

import h5py
import numpy as np
import zarr

from minifloat_store.codec import storage_bytes
from minifloat_store.store.backend import holds_store
from minifloat_store.store.embedding_store import EmbeddingStore
from minifloat_store.store.hdf5_backend import HDF5Backend

__all__ = ["IdSource", "open_source"]


def _split_spec(spec: str) -> tuple[str, str | None]:
    """``"file.h5:/a/b"`` -> ("file.h5", "/a/b"); a path that exists is never split."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    container, inner = spec.rsplit(":", 1)
    if not os.path.exists(container):
        raise FileNotFoundError(f"no such file or directory: {container} (from {spec!r})")
    return container, inner


def _as_str_ids(values: np.ndarray, where: str) -> list[str]:
    if values.dtype.kind == "S":
        return [v.decode("utf-8") for v in values.tolist()]
    if values.dtype.kind in "U":
        return values.tolist()
    if values.dtype.kind in "iu":
        return [str(v) for v in values.tolist()]
    if values.dtype.kind in "OT":
        out = values.tolist()
        for i, v in enumerate(out):
            if isinstance(v, bytes):
                out[i] = v.decode("utf-8")
            elif not isinstance(v, str):
                raise ValueError(f"ids in {where} must be strings, got {type(v).__name__}")
        return out
    raise ValueError(f"ids in {where} have dtype {values.dtype}; expected strings or integers")


class _ArraySource:
    """A 2-D float array read by row slices (numpy memmap, h5py or zarr)."""

    def __init__(self, name: str, array: Any, ids: Any = None, closer: Any = None) -> None:
        self.name = name
        self.array = array
        self.sibling_ids = ids
        self._closer = closer
        shape = tuple(array.shape)
        dtype = np.dtype(array.dtype)
        if len(shape) != 2:
            raise ValueError(f"{name} has shape {shape}; expected (n, dim)")
        if dtype.kind != "f":
            raise ValueError(f"{name} has dtype {dtype}; expected floating point vectors (float16, float32 or float64)")
        self.n, self.dim = shape
        self.itemsize = dtype.itemsize
        self.metadata: dict[str, Any] = {}

    @property
    def nbytes(self) -> int:
        return self.n * self.dim * self.itemsize

    def read(self, lo: int, hi: int) -> np.ndarray:
        return np.asarray(self.array[lo:hi])

    def read_ids(self, lo: int, hi: int) -> list[str] | None:
        if self.sibling_ids is None:
            return None
        return _as_str_ids(np.asarray(self.sibling_ids[lo:hi]), f"{self.name} (ids)")

    def close(self) -> None:
        if self._closer is not None:
            self._closer()


def _npy_header(fh: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    # The header is a Python literal parsed with ast.literal_eval: nothing is unpickled.
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"{where} uses .npy format version {version}; re-save it with numpy.save")
    if dtype.hasobject:
        raise ValueError(f"{where} holds Python objects; refusing to unpickle (save the vectors as a float array)")
    if fortran and len(shape) > 1:
        raise ValueError(f"{where} is stored in Fortran order; save it C-ordered to stream it")
    return shape, fortran, dtype


class _NpyWindows:
    """A .npy file read through one short-lived memory map per batch.

    One map of the whole file would be simplest, but every page it touches
    stays in the process's resident set until the kernel needs the memory:
    converting a 4 GB file would show 4 GB resident. A map per batch is
    unmapped (and its pages dropped from the RSS) once the batch is copied.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "rb") as fh:
            self.shape, _, self.dtype = _npy_header(fh, path)
            self._offset = fh.tell()
        self._row = int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else 1

    def __getitem__(self, sl: slice) -> np.ndarray:
        lo, hi = sl.start, min(sl.stop, self.shape[0])
        window = np.memmap(
            self.path,
            dtype=self.dtype,
            mode="r",
            offset=self._offset + lo * self._row * self.dtype.itemsize,
            shape=(hi - lo, *self.shape[1:]),
        )
        try:
            return np.array(window)
        finally:
            del window


class _NpzMember:
    """A .npy member of a zip, streamed in order (no random access needed)."""

    def __init__(self, path: str, key: str) -> None:
        self._zip = zipfile.ZipFile(path)
        try:
            self._fh = self._zip.open(f"{key}.npy")
        except KeyError:
            keys = [n[:-4] for n in self._zip.namelist() if n.endswith(".npy")]
            self._zip.close()
            raise KeyError(f"{path} has no array {key!r}; it holds {', '.join(keys)}") from None
        shape, _, dtype = _npy_header(self._fh, f"{path}:{key}")
        self.shape, self.dtype = shape, dtype
        self._row = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        self._pos = 0

    def __getitem__(self, sl: slice) -> np.ndarray:
        lo, hi = sl.start, min(sl.stop, self.shape[0])
        if lo != self._pos:
            raise ValueError("npz members are read in order")
        count = (hi - lo) * self._row
        buf = self._fh.read(count * self.dtype.itemsize)
        self._pos = hi
        return np.frombuffer(buf, dtype=self.dtype, count=count).reshape((hi - lo, *self.shape[1:]))

    def close(self) -> None:
        self._fh.close()
        self._zip.close()


class _StoreSource:
    """Another minifloat store, read batch by batch in row order (its decoded vectors and its ids)."""

    def __init__(self, path: str) -> None:
        self.name = path
        self.store = EmbeddingStore.open(path, "r")
        self.n, self.dim = len(self.store), self.store.dim
        self.nbytes = storage_bytes(self.n, self.dim, self.store.encoding)
        self.metadata = self.store.metadata
        self._it: Iterator[tuple[list[str], np.ndarray]] | None = None
        self._ids: list[str] = []
        self._pos = 0

    def read(self, lo: int, hi: int) -> np.ndarray:
        # Reads come in runs from row 0 (a fit sample, then the conversion's batches of one size):
        # a read at row 0 starts a new pass, any other must continue the current one.
        if lo == 0 or self._it is None:
            self._it, self._pos = self.store.iter_batches(max(1, hi - lo)), 0
        if lo != self._pos:
            raise ValueError(f"{self.name}: rows of a store source are read in order ({lo} != {self._pos})")
        self._ids, vec = next(self._it, ([], np.empty((0, self.dim), np.float32)))
        if len(vec) != min(hi, self.n) - lo:
            raise ValueError(f"{self.name}: read {len(vec)} rows for rows {lo}..{hi}")
        self._pos = lo + len(vec)
        return vec

    def read_ids(self, lo: int, hi: int) -> list[str]:
        return self._ids

    def close(self) -> None:
        self.store.close()


def _zarr_node(container: str, inner: str | None) -> Any:
    if inner is None:
        return zarr.open(container, mode="r")
    return zarr.open_group(container, mode="r")[inner.strip("/")]


def open_source(src: str) -> Any:
    """The source that ``src`` names (see the module docstring); ``ValueError`` if none fits."""
    container, inner = _split_spec(src)
    if inner is None and holds_store(container):
        return _StoreSource(container)
    if container.endswith(".npy"):
        if inner is not None:
            raise ValueError(f"{src}: a .npy file holds one array; drop the ':{inner}'")
        return _ArraySource(container, _NpyWindows(container))
    if container.endswith(".npz"):
        with zipfile.ZipFile(container) as z:
            keys = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
        key = inner
        if key is None:
            candidates = [k for k in keys if k != "ids"]
            if len(candidates) != 1:
                raise ValueError(f"{container} holds {', '.join(keys)}; say which with {container}:KEY")
            key = candidates[0]
        member = _NpzMember(container, key)
        ids = _NpzMember(container, "ids") if "ids" in keys and key != "ids" else None

        def close() -> None:
            member.close()
            if ids is not None:
                ids.close()

        return _ArraySource(f"{container}:{key}", member, ids, close)
    if HDF5Backend.sniff(container):
        if inner is None:
            raise ValueError(f"{container} is an HDF5 file; give the dataset as {container}:/path/to/vectors")
        f = h5py.File(container, "r")
        try:
            ds = f[inner]
        except KeyError:
            f.close()
            raise KeyError(f"{container} has no dataset {inner!r}") from None
        parent = ds.parent
        sib = parent.get("ids") if ds.name.rsplit("/", 1)[-1] != "ids" else None
        if sib is not None and sib.dtype.kind == "O":
            sib = sib.asstr()  # HDF5 variable-length strings (not pickles)
        return _ArraySource(f"{container}:{inner}", ds, sib, f.close)
    if os.path.isdir(container):
        node = _zarr_node(container, inner)
        if not isinstance(node, zarr.Array):
            raise ValueError(f"{src} is a zarr group; give the array as {container}:/path/to/array")
        sib = None
        if inner is not None:
            parent_path, _, leaf = inner.strip("/").rpartition("/")
            if leaf != "ids":
                grp = zarr.open_group(container, mode="r")
                key = f"{parent_path}/ids" if parent_path else "ids"
                if key in grp:
                    sib = grp[key]
        return _ArraySource(src, node, sib)
    if not os.path.exists(container):
        raise FileNotFoundError(f"no such file or directory: {container}")
    raise ValueError(f"{src}: unknown source; expected .npy, .npz, file.h5:/dataset, a zarr array or a minifloat store")


class IdSource:
    """Ids for rows [lo, hi), from wherever they come."""

    def __init__(self, ids: object, source: Any) -> None:
        self._lines: Iterator[str] | None = None
        self._fh: io.TextIOWrapper | None = None
        self._array: Any = None
        self._list: list[str] | None = None
        self._closer: Any = None
        self.where = "row numbers"
        if ids is None:
            self.where = f"{source.name} (its own ids)" if isinstance(source, _StoreSource) else "row numbers"
            if isinstance(source, _StoreSource) or getattr(source, "sibling_ids", None) is not None:
                self._source = source
                if not isinstance(source, _StoreSource):
                    self.where = f"the 'ids' dataset next to {source.name}"
            else:
                self._source = None
        elif isinstance(ids, (str, os.PathLike)):
            spec = os.fspath(ids)
            container, inner = _split_spec(spec)
            self._source = None
            is_text = (
                os.path.isfile(container)
                and not container.endswith((".npy", ".npz"))
                and not HDF5Backend.sniff(container)
            )
            if inner is None and is_text:
                self._fh = open(container, encoding="utf-8")
                self._lines = (line.rstrip("\r\n") for line in self._fh)
                self.where = f"{container}"
            else:
                src = open_source(spec) if container.endswith((".npz",)) and inner else None
                if src is not None:
                    self._array, self._closer = src.array, src.close
                else:
                    self._array, self._closer = _open_ids_array(container, inner)
                self.where = spec
        else:
            if isinstance(ids, np.ndarray):
                self._list = _as_str_ids(ids.ravel(), "ids")
            elif isinstance(ids, Sequence):
                self._list = list(ids)
            else:
                raise TypeError(f"ids must be None, a path or a sequence of str, got {type(ids).__name__}")
            self._source = None
            self.where = "the given ids"

    def get(self, lo: int, hi: int) -> list[str]:
        if self._list is not None:
            out = self._list[lo:hi]
        elif self._lines is not None:
            out = []
            for _ in range(hi - lo):
                line = next(self._lines, None)
                if line is None:
                    break
                out.append(line)
        elif self._array is not None:
            out = _as_str_ids(np.asarray(self._array[lo:hi]), self.where)
        elif self._source is not None:
            got = self._source.read_ids(lo, hi)
            assert got is not None
            out = got
        else:
            return [str(i) for i in range(lo, hi)]
        if len(out) != hi - lo:
            raise ValueError(f"{self.where} has only {lo + len(out)} ids for more vectors")
        return out

    def check_exhausted(self, n: int) -> None:
        extra = False
        if self._list is not None:
            extra = len(self._list) > n
        elif self._lines is not None:
            extra = next(self._lines, None) is not None
        elif self._array is not None:
            extra = len(self._array) > n
        if extra:
            raise ValueError(f"{self.where} has more ids than the {n} vectors")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._closer is not None:
            self._closer()


def _open_ids_array(container: str, inner: str | None) -> tuple[Any, Any]:
    if container.endswith(".npy"):
        return np.load(container, mmap_mode="r", allow_pickle=False), None
    if HDF5Backend.sniff(container):
        f = h5py.File(container, "r")
        ds = f[inner] if inner else None
        if ds is None:
            f.close()
            raise ValueError(f"{container}: give the ids dataset as {container}:/path")
        return (ds.asstr() if ds.dtype.kind == "O" else ds), f.close
    if os.path.isdir(container):
        return _zarr_node(container, inner), None
    raise ValueError(f"cannot read ids from {container!r}")
