"""Convert float vectors (or another store) into a minifloat store, streaming.

The sources ``convert`` reads (``.npy``, ``.npz``, HDF5 and zarr datasets,
another minifloat store) and where ids come from are described in
``minifloat_store.store.sources``.

Memory is bounded by one batch (at most 24 MiB of float32 by default) plus the
destination's id index (about 14 bytes per id plus the ids' UTF-8 bytes); it does not grow with the
size of the vectors in ``src``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from tqdm import tqdm

from minifloat_store import scoring
from minifloat_store._checks import check_positive_int, check_scale_mode
from minifloat_store.codec import Packed, encode
from minifloat_store.encoding import Encoded, Encoding
from minifloat_store.formats import Format, get_format
from minifloat_store.store.embedding_store import EmbeddingStore
from minifloat_store.store.sources import IdSource, open_source

__all__ = [
    "DEFAULT_FIT_ROWS",
    "ConvertSummary",
    "convert",
    "describe_encoding",
    "fit_encoding",
    "parse_encoding",
    "remove_stale_staging",
    "resolve_encoding",
]

#: Vectors an encoding that centres is fitted on when neither ``fit_rows`` nor ``fit_sample`` is given.
DEFAULT_FIT_ROWS = 100_000

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
        Cosine similarity between each source vector (as float32) and its
        stored vector, scored by ``scoring.cosine_pairs``, over the vectors
        that are not all zero (NaN if there are none).
    zero_vectors : int
        All-zero source vectors (left out of the cosine statistics).
    seconds : float
        Wall time.
    stale_removed : tuple of str
        Temporary stores of earlier converts to the same destination whose
        process was gone (killed), removed before this one started.
    encoding : str
        The destination's encoding, ``element/scale/transform`` (and ``seed N``
        when it rotates, ``fitted on N vectors`` when it centres).
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
    stale_removed: tuple[str, ...] = ()
    encoding: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        rows = [
            ("source", self.source),
            ("destination", f"{self.destination} ({self.backend}, {self.encoding or self.format + '/' + self.scale})"),
            ("vectors", f"{self.vectors:,} x {self.dim}"),
            ("bytes before", f"{self.bytes_before:,}"),
            ("bytes after", f"{self.bytes_after:,} (payload {self.payload_after:,})"),
            ("ratio", f"{self.ratio:.2f}x smaller"),
            ("cosine mean / min", f"{self.cosine_mean:.6f} / {self.cosine_min:.6f}"),
            ("time", f"{self.seconds:.1f} s"),
        ]
        if self.zero_vectors:
            rows.append(("all-zero vectors", f"{self.zero_vectors:,} (not in the cosine statistics)"))
        if self.stale_removed:
            rows.append(("removed", ", ".join(self.stale_removed) + " (left by a killed convert)"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def parse_encoding(spec: str) -> Encoding:
    """An (unfitted) encoding from ``element[/scale[/transform[/seed]]]``, e.g. ``"nf4/vector/centre+rotate"``.

    The scale defaults to ``"vector"``, the transform to ``"none"``, the seed to 0.

    Raises
    ------
    ValueError
        For a malformed spec or an unknown element, scale or transform.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"encoding spec must be a non-empty string like 'nf4/vector/centre+rotate', got {spec!r}")
    parts = spec.split("/")
    if len(parts) > 4 or not all(parts):
        raise ValueError(f"encoding spec {spec!r}: expected element[/scale[/transform[/seed]]]")
    element, scale, transform, seed = (parts + ["vector", "none", "0"][len(parts) - 1 :])[:4]
    if not seed.isdigit():
        raise ValueError(f"encoding spec {spec!r}: the seed {seed!r} is not a non-negative integer")
    return Encoding(element, scale, transform, int(seed))


def describe_encoding(enc: Encoding, fitted_on: int) -> str:
    """``element/scale/transform``, with the seed when it rotates and the sample size when fitted."""
    out = f"{enc.element}/{enc.scale}/{enc.transform}"
    if enc.rotates:
        out += f", seed {enc.seed}"
    if fitted_on:
        out += f", fitted on {fitted_on:,} vectors"
    return out


def resolve_encoding(fmt: str | Format | Encoding, scale: str | None) -> Encoding:
    """What ``fmt``/``scale`` ask for, as an Encoding (a format name keeps its study meaning).

    ``scale`` None means ``"vector"`` for a format name, the Encoding's own for an Encoding.
    """
    if isinstance(fmt, Encoding):
        if scale is not None and scale != fmt.scale:
            raise ValueError(f"scale={scale!r} was given with an Encoding; its scale is part of it ({fmt!r})")
        return fmt
    if not isinstance(fmt, (str, Format)):
        raise TypeError(f"encoding must be a format name or a minifloat_store.Encoding, got {type(fmt).__name__}")
    return Encoding(get_format(fmt), check_scale_mode("vector" if scale is None else scale))


def fit_encoding(
    enc: Encoding,
    first_rows: Callable[[int], np.ndarray],
    dim: int,
    name: str,
    fit_rows: int | None = None,
    fit_sample: ArrayLike | str | None = None,
) -> tuple[Encoding, int]:
    """``enc`` fitted on ``fit_sample`` or the first ``fit_rows`` vectors of a source; the vectors used.

    The one fitting rule of both converts (single process and Dask): only an
    encoding that centres and is not fitted yet is fitted, by default on the
    first ``DEFAULT_FIT_ROWS`` vectors; ``first_rows(m)`` returns at most the
    first ``m`` vectors of the source called ``name``, of dimension ``dim``.
    """
    if not enc.centres or enc.is_fitted:
        if fit_rows is not None or fit_sample is not None:
            why = "is already fitted" if enc.centres else "does not centre: it has nothing to fit"
            given = "fit_rows (--fit-rows)" if fit_rows is not None else "fit_sample (--fit-sample)"
            raise ValueError(f"{enc!r} {why}; drop {given}")
        return enc, 0
    if fit_rows is not None and fit_sample is not None:
        raise ValueError("give fit_rows or fit_sample (--fit-rows or --fit-sample), not both")
    if fit_sample is not None:
        if isinstance(fit_sample, (str, os.PathLike)):
            sample = np.load(os.fspath(fit_sample), allow_pickle=False, mmap_mode="r")
        else:
            sample = np.asarray(fit_sample)
    else:
        sample = first_rows(DEFAULT_FIT_ROWS if fit_rows is None else check_positive_int(fit_rows, "fit_rows"))
    fitted = enc.fit(sample)
    if fitted.dim != dim:
        raise ValueError(f"the fit sample has dim {fitted.dim}, the vectors of {name} {dim}")
    return fitted, len(sample)


def _cosines(x: np.ndarray, x32: np.ndarray, packed: Packed | Encoded) -> tuple[np.ndarray, int]:
    """Cosine of each source row with its stored row, leaving out all-zero source rows.

    Scored by ``scoring.cosine_pairs``, the path users score with, on the
    source as float32 (what was encoded, packed losslessly as fp32) against
    the stored codes. Returns the cosines (float64) and the number of all-zero rows.
    """
    keep = np.any(x != 0, axis=1)
    cos = np.empty(len(x), dtype=np.float64)
    # In slices, so the fp32 copy stays small beside the batch (12 MiB at 192 dims).
    step = 16384
    for i in range(0, len(x), step):
        cos[i : i + step] = scoring.cosine_pairs(encode(x32[i : i + step], "fp32", "none"), packed[i : i + step])
    return cos[keep], int(np.count_nonzero(~keep))


class _Interrupts:
    """SIGINT and SIGTERM become a KeyboardInterrupt at the next batch boundary.

    Raised at once, the interrupt could land while zarr's I/O thread is still
    writing a shard, which would then recreate files in the temporary store
    after it was removed. Between batches nothing is in flight.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, frame: object) -> None:
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"{signal.Signals(self.signum).name}: convert stopped; nothing was kept")

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _publish(tmp: str, dst: str) -> None:
    """Move the finished store from its temporary name to ``dst``, never over an existing path."""
    if os.path.isdir(tmp):
        if os.path.lexists(dst):
            raise FileExistsError(f"{dst} appeared while converting; the converted store is left at {tmp}")
        os.rename(tmp, dst)
    else:
        os.link(tmp, dst)  # fails if dst exists
        os.unlink(tmp)
    fd = os.open(os.path.dirname(os.path.abspath(dst)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Beside a temporary store ``.NAME.converting-XXXX``, the file its convert holds an flock on while it runs.
OWNER_SUFFIX = ".owner"


def _claim(tmp: str) -> int:
    """Create ``tmp + OWNER_SUFFIX`` already locked; the descriptor keeps the lock until it is closed.

    The file is locked under a name no sweep looks at and then renamed into
    place (the lock belongs to the open file, so it moves with it): a sweep
    never sees the owner file unlocked while its convert lives. The kernel
    drops the lock when the process dies, however it dies.
    """
    new = f"{tmp}.claiming"
    fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"convert, pid {os.getpid()}\n".encode())  # for a person looking; the lock is what counts
        os.rename(new, tmp + OWNER_SUFFIX)
    except BaseException:
        os.close(fd)
        if os.path.lexists(new):
            os.unlink(new)
        raise
    return fd


def _unclaim(tmp: str, fd: int) -> None:
    if os.path.lexists(tmp + OWNER_SUFFIX):
        os.unlink(tmp + OWNER_SUFFIX)  # while still locked: a sweep that opens it now finds it gone
    os.close(fd)


def remove_stale_staging(dst: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary stores of killed converts to ``dst``; leave those of live ones.

    A temporary store ``.NAME.converting-XXXX`` is stale when its owner file
    (``….owner``) can be locked: the convert that held the lock is gone.
    A temporary store without an owner file is left alone.

    Returns
    -------
    list of str
        The paths of the temporary stores removed.
    """
    d, base = os.path.split(os.path.abspath(os.fspath(dst)))
    prefix = f".{base}.converting-"
    removed: list[str] = []
    if not os.path.isdir(d):
        return removed
    for entry in os.scandir(d):
        if not (entry.name.startswith(prefix) and entry.name.endswith(OWNER_SUFFIX)):
            continue
        staged = entry.path[: -len(OWNER_SUFFIX)]
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except (FileNotFoundError, OSError):
            continue  # gone meanwhile, or not a plain file: not ours to judge
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its convert is running
            try:
                now = os.stat(entry.path, follow_symlinks=False)
            except FileNotFoundError:
                continue  # another sweep removed it while we waited for the lock
            held = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                continue
            _remove_store(staged)
            leftovers = f".{os.path.basename(staged)}."  # the backend's own temporaries for that store
            for other in os.scandir(d):
                if other.name.startswith(leftovers):
                    _remove_store(other.path)
            os.unlink(entry.path)
            removed.append(staged)
        finally:
            os.close(fd)
    return removed


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
    fmt: str | Format | Encoding = "e4m3",
    scale: str | None = None,
    backend: str = "zarr",
    ids: str | os.PathLike[str] | Sequence[str] | None = None,
    *,
    batch_size: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = True,
    chunk_rows: int | None = None,
    fit_rows: int | None = None,
    fit_sample: ArrayLike | str | os.PathLike[str] | None = None,
) -> ConvertSummary:
    """Stream the vectors of ``src`` into a new store at ``dst``.

    Parameters
    ----------
    src : str or path-like
        The vectors to convert: ``vectors.npy``, ``bundle.npz[:KEY]``,
        ``file.h5:/dataset``, a zarr array ``dir.zarr[:/array]``, or another
        store (see ``minifloat_store.store.sources``).
    dst : str or path-like
        The store to create (must not exist). It is built under a hidden
        temporary name next to it (``.NAME.converting-XXXX``) and renamed to
        ``dst`` only when complete; on any error, SIGINT or SIGTERM the
        temporary store is removed. (After SIGKILL it stays behind, hidden,
        and ``dst`` does not exist; the next convert to ``dst`` removes it,
        see :func:`remove_stale_staging`.)
    fmt, scale, backend :
        As for :meth:`EmbeddingStore.create`: a format name and a scale mode
        (default ``"vector"``), or an :class:`~minifloat_store.Encoding`
        (:func:`parse_encoding` reads one from ``"nf4/vector/centre+rotate"``).
    ids : path, dataset spec, sequence of str or None
        Where the ids come from: a text file (one per line), a dataset spec,
        a sequence of str, or None (a sibling ``ids`` dataset, the source
        store's ids, else row numbers).
    batch_size : int, optional
        Vectors per batch (one commit each); default: the power of two nearest
        below 24 MiB of float32 (32,768 vectors of 192 dims).
    metadata : mapping, optional
        Store metadata; defaults to the source store's when converting a store.
    progress : bool
        Show a tqdm progress bar on stderr.
    chunk_rows : int, optional
        Passed to :meth:`EmbeddingStore.create`.
    fit_rows : int, optional
        An encoding that centres and is not fitted yet is fitted on the first
        ``fit_rows`` vectors of ``src`` (default ``DEFAULT_FIT_ROWS``, 100,000,
        or all of them if fewer).
    fit_sample : array_like of shape (m, d) or path of a .npy file, optional
        Fit on these vectors instead.

    Returns
    -------
    ConvertSummary
    """
    t0 = time.perf_counter()
    src, dst = os.fspath(src), os.fspath(dst)
    enc = resolve_encoding(fmt, scale)
    if os.path.lexists(dst):
        raise FileExistsError(f"{dst} already exists; choose a new path for the converted store")
    stale = tuple(remove_stale_staging(dst))
    fit = (fit_rows, fit_sample)
    with _Interrupts() as interrupts:
        summary = _convert(src, dst, enc, fit, backend, ids, batch_size, metadata, progress, chunk_rows, t0, interrupts)
    return replace(summary, stale_removed=stale)


def _convert(
    src: str,
    dst: str,
    enc: Encoding,
    fit: tuple[int | None, Any],
    backend: str,
    ids: str | os.PathLike[str] | Sequence[str] | None,
    batch_size: int | None,
    metadata: Mapping[str, Any] | None,
    progress: bool,
    chunk_rows: int | None,
    t0: float,
    interrupts: _Interrupts,
) -> ConvertSummary:
    # Built under a hidden temporary name and renamed when complete: a convert that is killed
    # (even with SIGKILL) never leaves a normal-looking store holding a prefix of the rows.
    d, base = os.path.split(os.path.abspath(dst))
    tmp = os.path.join(d, f".{base}.converting-{uuid.uuid4().hex[:12]}")
    source = open_source(src)
    created = False
    owner = -1
    try:
        os.makedirs(d, exist_ok=True)
        owner = _claim(tmp)  # before the store exists: a later convert's sweep never takes it for stale
        id_source = IdSource(ids, source)
        try:
            n, dim = source.n, source.dim
            if batch_size is None:
                batch_size = max(1024, 1 << int(np.log2(max(1, BATCH_BYTES // (4 * dim)))))
            elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
                raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
            meta = dict(metadata) if metadata is not None else dict(source.metadata)
            enc, fitted_on = fit_encoding(enc, lambda m: source.read(0, min(n, m)), dim, source.name, *fit)
            store = EmbeddingStore.create(tmp, dim, enc, None, backend, meta, chunk_rows=chunk_rows)
            created = True
            cos_sum, cos_min, cos_n, zero = 0.0, np.inf, 0, 0
            with (
                store,
                tqdm(total=n, unit="vec", unit_scale=True, disable=not progress, desc=f"-> {enc.element}") as bar,
            ):
                for lo in range(0, n, batch_size):
                    interrupts.check()
                    hi = min(n, lo + batch_size)
                    x = source.read(lo, hi)
                    batch_ids = id_source.get(lo, hi)
                    x32 = np.ascontiguousarray(x, dtype=np.float32)
                    finite = np.isfinite(x32).all(axis=1)
                    if not finite.all():
                        r = int(np.flatnonzero(~finite)[0])
                        raise ValueError(f"{source.name} row {lo + r} (id {batch_ids[r]!r}) contains NaN or inf")
                    packed = encode(x32, enc)
                    if lo == 0:
                        # Pre-size the id index from the first batch: no regrowth copies later.
                        per_id = sum(len(i.encode("utf-8")) for i in batch_ids) / max(1, len(batch_ids))
                        store._reserve(n, int(per_id * n * 1.05) + 64)
                    try:
                        store.add_packed(batch_ids, packed)
                    except (ValueError, TypeError) as exc:
                        raise type(exc)(f"{exc} (ids from {id_source.where}, rows {lo}..{hi - 1})") from None
                    cos, z = _cosines(x, x32, packed)
                    zero += z
                    if len(cos):
                        cos_sum += float(cos.sum())
                        cos_min = min(cos_min, float(cos.min()))
                        cos_n += len(cos)
                    bar.update(hi - lo)
                id_source.check_exhausted(n)
                interrupts.check()
                info = store.info()
            if os.path.exists(tmp + ".lock"):
                os.remove(tmp + ".lock")
            _publish(tmp, dst)
        finally:
            id_source.close()
    except BaseException:
        if created:
            _remove_store(tmp)
        raise
    finally:
        if owner >= 0:
            _unclaim(tmp, owner)
        source.close()
    return ConvertSummary(
        source=src,
        destination=dst,
        vectors=n,
        dim=dim,
        format=enc.element,
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
        encoding=describe_encoding(enc, fitted_on),
    )
