"""Convert float vectors (or another store) into a minifloat store, streaming.

Sources (``src``):

* ``vectors.npy``: read memory-mapped, one short-lived map per batch;
* ``bundle.npz`` or ``bundle.npz:KEY``: the member is streamed out of the zip
  (``KEY`` may be omitted when the file holds one array besides ``ids``);
* ``file.h5:/group/dataset``: an HDF5 dataset, read by slices;
* ``dir.zarr`` (an array) or ``dir.zarr:/group/array``: a zarr array, read by slices;
* another minifloat store (zarr directory or ``.h5``): its decoded vectors,
  re-encoded into the new format.

Ids (``ids``): a text file (one id per line), a dataset spec as above, a
sequence of str, or ``None``: then a sibling dataset named ``ids`` next to the
vectors (the npz member ``ids``, ``/group/ids``...), the source store's own
ids, or else the row numbers ``"0"``, ``"1"``...

Memory is bounded by one batch (at most 24 MiB of float32 by default) plus the
destination's id index (about 14 bytes per id plus the ids' UTF-8 bytes); it does not grow with the
size of the vectors in ``src``.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from minifloat_store.codec import decode, encode, storage_bytes
from minifloat_store.formats import Format, get_format

__all__ = ["ConvertSummary", "convert"]

#: Float32 bytes per batch when ``batch_size`` is not given (rounded down to a
#: power-of-two row count, which divides the store's chunk length: fewer
#: partial-chunk rewrites). Peak memory measured in benchmarks/bench_store.py.
BATCH_BYTES = 24 << 20


@dataclass(frozen=True)
class ConvertSummary:
    """What ``convert`` did.

    Attributes
    ----------
    source, destination : str
    vectors, dim : int
    format, scale, backend : str
    bytes_before : int
        The source vectors as they were stored: ``vectors * dim * itemsize``
        for an array source; the payload (``storage_bytes``) of a store source.
    bytes_after : int
        Every file of the destination store (vectors, ids, indexes, checksums).
    payload_after : int
        ``storage_bytes(vectors, dim, format, scale)``.
    ratio : float
        ``bytes_before / bytes_after``.
    cosine_mean, cosine_min : float
        Cosine similarity between each source vector and its decoded stored
        vector, over the vectors that are not all zero (NaN if there are none).
    zero_vectors : int
        All-zero source vectors (left out of the cosine statistics).
    seconds : float
        Wall time.
    """

    source: str
    destination: str
    vectors: int
    dim: int
    format: str
    scale: str
    backend: str
    bytes_before: int
    bytes_after: int
    payload_after: int
    ratio: float
    cosine_mean: float
    cosine_min: float
    zero_vectors: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        rows = [
            ("source", self.source),
            ("destination", f"{self.destination} ({self.backend}, {self.format}, scale={self.scale})"),
            ("vectors", f"{self.vectors:,} x {self.dim}"),
            ("bytes before", f"{self.bytes_before:,}"),
            ("bytes after", f"{self.bytes_after:,} (payload {self.payload_after:,})"),
            ("ratio", f"{self.ratio:.2f}x smaller"),
            ("cosine mean / min", f"{self.cosine_mean:.6f} / {self.cosine_min:.6f}"),
            ("time", f"{self.seconds:.1f} s"),
        ]
        if self.zero_vectors:
            rows.append(("all-zero vectors", f"{self.zero_vectors:,} (not in the cosine statistics)"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# ---------------------------------------------------------------- sources


def _split_spec(spec: str) -> tuple[str, str | None]:
    """``"file.h5:/a/b"`` -> ("file.h5", "/a/b"); a path that exists is never split."""
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    container, inner = spec.rsplit(":", 1)
    if not os.path.exists(container):
        raise FileNotFoundError(f"no such file or directory: {container} (from {spec!r})")
    return container, inner


def _is_store(path: str) -> bool:
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "zarr.json")):
        import json

        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as fh:
            doc = json.load(fh)
        return "minifloat_store" in doc.get("attributes", {})
    if os.path.isfile(path) and _is_hdf5(path):
        import h5py

        with h5py.File(path, "r", swmr=True, locking=False) as f:
            return "commit0" in f and "codes" in f
    return False


def _is_hdf5(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


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
                raise TypeError(f"ids in {where} must be strings, got {type(v).__name__}")
        return out
    raise TypeError(f"ids in {where} have dtype {values.dtype}; expected strings or integers")


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
            raise TypeError(f"{name} has dtype {dtype}; expected floating point")
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
        raise TypeError(f"{where} holds Python objects; refusing to unpickle")
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
    def __init__(self, path: str) -> None:
        from minifloat_store.store.base import EmbeddingStore

        self.name = path
        self.store = EmbeddingStore.open(path, "r")
        self.n, self.dim = len(self.store), self.store.dim
        self.nbytes = storage_bytes(self.n, self.dim, self.store.fmt, self.store.scale)
        self.metadata = self.store.metadata
        self._it: Iterator[tuple[list[str], np.ndarray]] | None = None
        self._ids: list[str] = []

    def read(self, lo: int, hi: int) -> np.ndarray:
        if self._it is None:
            self._it = self.store.iter_batches(hi - lo)
        self._ids, vec = next(self._it)
        return vec

    def read_ids(self, lo: int, hi: int) -> list[str]:
        return self._ids

    def close(self) -> None:
        self.store.close()


def _zarr_node(container: str, inner: str | None) -> Any:
    import zarr

    if inner is None:
        return zarr.open(container, mode="r")
    return zarr.open_group(container, mode="r")[inner.strip("/")]


def _open_source(src: str) -> Any:
    container, inner = _split_spec(src)
    if inner is None and _is_store(container):
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
    if os.path.isfile(container) and _is_hdf5(container):
        import h5py

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
        import zarr

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


class _IdSource:
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
            is_text = os.path.isfile(container) and not container.endswith((".npy", ".npz")) and not _is_hdf5(container)
            if inner is None and is_text:
                self._fh = open(container, encoding="utf-8")
                self._lines = (line.rstrip("\r\n") for line in self._fh)
                self.where = f"{container}"
            else:
                src = _open_source(spec) if container.endswith((".npz",)) and inner else None
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
    if os.path.isfile(container) and _is_hdf5(container):
        import h5py

        f = h5py.File(container, "r")
        ds = f[inner] if inner else None
        if ds is None:
            f.close()
            raise ValueError(f"{container}: give the ids dataset as {container}:/path")
        return (ds.asstr() if ds.dtype.kind == "O" else ds), f.close
    if os.path.isdir(container):
        return _zarr_node(container, inner), None
    raise ValueError(f"cannot read ids from {container!r}")


def _cosines(x: np.ndarray, packed: Any) -> tuple[np.ndarray, int]:
    """Cosine of each row of x (n, d) with its decoded packed row, in float64, leaving out all-zero rows of x.

    Decodes 4,096 rows at a time, so no decoded copy of the batch is held.
    """
    out = []
    zeros = 0
    for i in range(0, len(x), 4096):
        a = x[i : i + 4096].astype(np.float64)
        b = decode(packed[i : i + 4096]).astype(np.float64)
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        keep = na > 0
        zeros += int((~keep).sum())
        dots = np.einsum("ij,ij->i", a[keep], b[keep])
        denom = na[keep] * nb[keep]
        out.append(np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0))
    return (np.concatenate(out) if out else np.empty(0)), zeros


def _remove_store(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.remove(path)
    if os.path.exists(path + ".lock"):
        os.remove(path + ".lock")


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    fmt: str | Format = "e4m3",
    scale: str = "vector",
    backend: str = "zarr",
    ids: str | os.PathLike[str] | Sequence[str] | None = None,
    *,
    batch_size: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = True,
    chunk_rows: int | None = None,
) -> ConvertSummary:
    """Stream the vectors of ``src`` into a new store at ``dst``.

    Parameters
    ----------
    src : str or path-like
        See the module docstring for the accepted sources.
    dst : str or path-like
        The store to create (must not exist). On any error it is removed.
    fmt, scale, backend :
        As for :meth:`EmbeddingStore.create`.
    ids : path, dataset spec, sequence of str or None
        See the module docstring.
    batch_size : int, optional
        Vectors per batch (one commit each); default: the power of two nearest
        below 24 MiB of float32 (32,768 vectors of 192 dims).
    metadata : mapping, optional
        Store metadata; defaults to the source store's when converting a store.
    progress : bool
        Show a tqdm progress bar on stderr.
    chunk_rows : int, optional
        Passed to :meth:`EmbeddingStore.create`.

    Returns
    -------
    ConvertSummary
    """
    from tqdm import tqdm

    from minifloat_store.store.base import EmbeddingStore

    t0 = time.perf_counter()
    src, dst = os.fspath(src), os.fspath(dst)
    f = get_format(fmt)
    if os.path.exists(dst):
        raise FileExistsError(f"{dst} already exists; choose a new path for the converted store")
    source = _open_source(src)
    created = False
    try:
        id_source = _IdSource(ids, source)
        try:
            n, dim = source.n, source.dim
            if batch_size is None:
                batch_size = max(1024, 1 << int(np.log2(max(1, BATCH_BYTES // (4 * dim)))))
            elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
                raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
            meta = dict(metadata) if metadata is not None else dict(source.metadata)
            store = EmbeddingStore.create(dst, dim, f, scale, backend, meta, chunk_rows=chunk_rows)
            created = True
            cos_sum, cos_min, cos_n, zero = 0.0, np.inf, 0, 0
            with store, tqdm(total=n, unit="vec", unit_scale=True, disable=not progress, desc=f"-> {f.name}") as bar:
                for lo in range(0, n, batch_size):
                    hi = min(n, lo + batch_size)
                    x = source.read(lo, hi)
                    batch_ids = id_source.get(lo, hi)
                    x32 = np.ascontiguousarray(x, dtype=np.float32)
                    finite = np.isfinite(x32).all(axis=1)
                    if not finite.all():
                        r = int(np.flatnonzero(~finite)[0])
                        raise ValueError(f"{source.name} row {lo + r} (id {batch_ids[r]!r}) contains NaN or inf")
                    packed = encode(x32, f, scale)
                    if lo == 0:
                        # Pre-size the id index from the first batch: no regrowth copies later.
                        per_id = sum(len(i.encode("utf-8")) for i in batch_ids) / max(1, len(batch_ids))
                        store._reserve(n, int(per_id * n * 1.05) + 64)
                    try:
                        store.add_packed(batch_ids, packed)
                    except (ValueError, TypeError) as exc:
                        raise type(exc)(f"{exc} (ids from {id_source.where}, rows {lo}..{hi - 1})") from None
                    cos, z = _cosines(x, packed)
                    zero += z
                    if len(cos):
                        cos_sum += float(cos.sum())
                        cos_min = min(cos_min, float(cos.min()))
                        cos_n += len(cos)
                    bar.update(hi - lo)
                id_source.check_exhausted(n)
                info = store.info()
        finally:
            id_source.close()
    except BaseException:
        if created:
            _remove_store(dst)
        raise
    finally:
        source.close()
    return ConvertSummary(
        source=src,
        destination=dst,
        vectors=n,
        dim=dim,
        format=f.name,
        scale=info.scale,
        backend=backend,
        bytes_before=int(source.nbytes),
        bytes_after=info.bytes_on_disk,
        payload_after=info.payload_bytes,
        ratio=source.nbytes / info.bytes_on_disk if info.bytes_on_disk else float("nan"),
        cosine_mean=cos_sum / cos_n if cos_n else float("nan"),
        cosine_min=cos_min if cos_n else float("nan"),
        zero_vectors=zero,
        seconds=time.perf_counter() - t0,
    )
