"""Past one machine: convert, search and score a store with Dask, over the store's shards.

Nothing here builds a cluster: the functions take a ``distributed.Client``
(or run on Dask's default scheduler) and split the work by shard, the unit a
store writes and reads in one piece:

* :func:`convert` encodes float32 rows on the workers; each task writes whole
  shards of ``codes`` and ``scales`` straight into the new store, and the
  driver writes the ids and commits once at the end. The result is the store
  the single-process ``minifloat_store.convert`` writes, code for code.
* :func:`search` runs ``scoring.search`` on each partition and merges the
  per-partition top-k; :func:`score_pairs` scores trial pairs by blocks.
  Both return exactly what ``EmbeddingStore.search`` / ``score`` return.

A task that dies (a worker killed) is rerun by Dask; every task is
idempotent (it writes the same shard bytes, or reads), and nothing is
committed until all have finished. Needs the ``scale`` extra
(``dask[array]``, ``distributed``, and ``s3fs`` for ``s3://``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import fsspec
import numpy as np
import zarr

from minifloat_store import scoring
from minifloat_store._checks import check_positive_int
from minifloat_store.codec import as_float32_matrix, encode
from minifloat_store.encoding import Encoding
from minifloat_store.formats import Format
from minifloat_store.store.backend import holds_store
from minifloat_store.store.convert import ConvertSummary, describe_encoding, fit_encoding, resolve_encoding
from minifloat_store.store.embedding_store import EmbeddingStore
from minifloat_store.store.record import RECORD_KEY
from minifloat_store.store.remote import is_url
from minifloat_store.store.snapshot import StoreSnapshot, read_partition, read_scattered
from minifloat_store.store.writing import stored_rows
from minifloat_store.store.zarr_backend import DEFAULT_CHUNK_ROWS

__all__ = ["convert", "score_pairs", "search"]

#: Trial pairs per task in :func:`score_pairs`.
PAIRS_PER_TASK = 1 << 20


def _compute(tasks: list[Any], client: Any) -> list[Any]:
    if client is not None:
        futures = client.compute(tasks)
        try:
            return list(client.gather(futures))
        except BaseException:
            # gather raises at the first failed task; the rest may still be
            # writing. Callers clean up after a failure, so let them finish.
            from distributed import wait  # a client means distributed is installed

            wait(futures)
            raise
    return list(dask.compute(*tasks))


# -- convert -----------------------------------------------------------------
def _is_store_url(url: str, storage_options: Mapping[str, Any] | None) -> bool:
    if not is_url(url):
        return holds_store(url)
    try:
        node = zarr.open(url, mode="r", storage_options=dict(storage_options) if storage_options else None)
    except Exception:
        return False
    return isinstance(node, zarr.Group) and RECORD_KEY in node.attrs


def _open_src(
    src: object, storage_options: Mapping[str, Any] | None
) -> tuple[Any, str, list[str] | None, dict[str, Any], EmbeddingStore | None]:
    """(dask array, name, the source's own ids or None, metadata, store to close or None)."""
    if isinstance(src, da.Array):
        return src, "a dask array", None, {}, None
    if isinstance(src, EmbeddingStore):
        return src.to_dask(), src.path, src.ids, src.metadata, None
    if not isinstance(src, (str, os.PathLike)):
        raise TypeError(f"src must be a zarr array URL or path, an EmbeddingStore or a dask array, got {type(src)}")
    url = os.fspath(src)
    so = dict(storage_options) if storage_options else None
    if _is_store_url(url, so):
        store = EmbeddingStore.open(url, storage_options=so)
        return store.to_dask(), url, store.ids, store.metadata, store
    try:
        arr = zarr.open_array(url, mode="r", storage_options=so if is_url(url) else None)
    except Exception as exc:
        raise ValueError(f"{url} is neither a float zarr array nor a minifloat store ({exc})") from None
    return da.from_zarr(arr), url, None, {}, None


def _encode_shard_or_error(*args: Any) -> tuple[int, float, float, int] | Exception:
    """Run :func:`_encode_shard`, returning its exception instead of raising it.

    A raised exception makes the scheduler report failure while other shards
    are still writing; one of those writes would land after ``convert`` has
    removed the half-built store and bring its directories back. Returned
    errors let every shard finish first.
    """
    try:
        return _encode_shard(*args)
    except Exception as exc:
        return exc


def _encode_shard(
    x: np.ndarray,
    lo: int,
    enc: Encoding,
    codes_url: str,
    scales_url: str | None,
    storage_options: dict[str, Any] | None,
    src_name: str,
) -> tuple[int, float, float, int]:
    """On a worker: encode rows [lo, lo + len(x)), write them (whole shards), return cosine statistics."""
    x32 = as_float32_matrix(np.asarray(x), src_name) if len(x) else np.empty((0, 0), np.float32)
    bad = ~np.isfinite(x32).all(axis=1)
    if bad.any():
        raise ValueError(f"{src_name} row {lo + int(np.flatnonzero(bad)[0])} contains NaN or inf; nothing was stored")
    packed = encode(x32, enc)
    codes, scales = stored_rows(packed)
    so = storage_options if is_url(codes_url) else None
    hi = lo + packed.n
    zarr.open_array(codes_url, mode="r+", storage_options=so)[lo:hi] = codes
    if scales_url is not None:  # a store without a scale column has none to write
        zarr.open_array(scales_url, mode="r+", storage_options=so)[lo:hi] = scales
    keep = np.any(x32 != 0, axis=1)
    if not keep.any():
        return 0, 0.0, float("inf"), int(len(x32))
    cos = scoring.cosine_pairs(encode(x32[keep], "fp32", "none"), packed[np.flatnonzero(keep)])
    return int(keep.sum()), float(cos.sum()), float(cos.min()), int((~keep).sum())


def _remove(url: str, storage_options: Mapping[str, Any] | None) -> None:
    fs, root = fsspec.core.url_to_fs(url, **(dict(storage_options) if storage_options and is_url(url) else {}))
    try:
        fs.rm(root, recursive=True)
    except FileNotFoundError:
        pass


def convert(
    src: object,
    dst: str | os.PathLike[str],
    fmt: str | Format = "e4m3",
    scale: str = "vector",
    encoding: object = None,
    client: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    *,
    ids: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    chunk_rows: int | None = None,
    fit_rows: int | None = None,
) -> ConvertSummary:
    """Convert float32 vectors into a new zarr store, rows split across Dask workers.

    Parameters
    ----------
    src : str, path-like, EmbeddingStore or dask.array.Array
        A float zarr array (n, d) by path or URL, a minifloat store (path, URL
        or open handle; re-encoded, its ids and metadata kept), or a dask
        array (n, d) of floats.
    dst : str or path-like
        The store to create (zarr backend; a path or an fsspec URL). Must not
        exist; removed if the conversion fails.
    fmt, scale : as for :meth:`EmbeddingStore.create`
    encoding : minifloat_store.Encoding, optional
        Instead of ``fmt``/``scale``: any encoding. One that centres and is
        not fitted yet is fitted on the first ``fit_rows`` vectors.
    client : distributed.Client, optional
        Where to run; Dask's default scheduler when omitted.
    storage_options : mapping, optional
        fsspec options for URLs (``src`` and ``dst``), e.g. s3fs's ``endpoint_url``.
    ids : sequence of str, optional
        Default: the source store's ids, else the row numbers ``"0"``, ``"1"``...
    metadata : mapping, optional
        Store metadata (default: the source store's).
    chunk_rows : int, optional
        Rows per shard of ``dst`` (65,536 by default): the rows one task encodes and writes.
    fit_rows : int, optional
        Vectors an unfitted centring ``encoding`` is fitted on (default
        ``DEFAULT_FIT_ROWS``, as ``minifloat_store.convert``).

    Returns
    -------
    ConvertSummary
        As ``minifloat_store.convert`` returns it (``bytes_before`` is ``n * d * itemsize``).
    """
    t0 = time.perf_counter()
    dst = os.fspath(dst)
    if encoding is not None and not isinstance(encoding, Encoding):
        raise TypeError(f"encoding must be a minifloat_store.Encoding, got {type(encoding).__name__}")
    enc = resolve_encoding(fmt, scale) if encoding is None else encoding
    so = dict(storage_options) if storage_options else None
    if chunk_rows is None:
        chunk_rows = DEFAULT_CHUNK_ROWS
    elif isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    x, name, src_ids, src_meta, src_store = _open_src(src, so)
    try:
        if x.ndim != 2 or x.dtype.kind != "f":
            raise ValueError(f"{name} must be a 2-D float array, got {x.dtype} of shape {x.shape}")
        n, dim = (int(v) for v in x.shape)
        if n == 0 or dim == 0:
            raise ValueError(f"{name} is empty (shape {x.shape})")
        if ids is None:
            id_list = src_ids if src_ids is not None else [str(i) for i in range(n)]
        else:
            id_list = list(ids)
        if len(id_list) != n:
            raise ValueError(f"{len(id_list)} ids for {n} vectors of {name}; nothing was stored")
        if not is_url(dst) and os.path.exists(dst):
            raise FileExistsError(f"{dst} already exists; choose a new path for the converted store")
        meta = dict(metadata) if metadata is not None else src_meta

        def first_rows(m: int) -> np.ndarray:
            return as_float32_matrix(np.asarray(x[: min(n, m)].compute()), f"the first rows of {name}")

        enc, fitted_on = fit_encoding(enc, first_rows, dim, name, fit_rows)
        if enc.dim is not None and enc.dim != dim:
            raise ValueError(f"{enc!r} was fitted on vectors of dim {enc.dim}; {name} has {dim}")
        store = EmbeddingStore.create(dst, dim, enc, None, "zarr", meta, chunk_rows=int(chunk_rows), storage_options=so)
        try:
            with store:
                codes_url, scales_url = store._stage_external_rows(n)
                x = x.rechunk((int(chunk_rows), dim))
                starts = np.cumsum((0,) + x.chunks[0][:-1])
                blocks = x.to_delayed().ravel()
                shard = dask.delayed(_encode_shard_or_error, pure=False)
                tasks = [
                    shard(b, int(lo), enc, codes_url, scales_url, so, name)
                    for b, lo in zip(blocks, starts, strict=True)
                ]
                results = _compute(tasks, client)
                errors = [r for r in results if isinstance(r, Exception)]
                if errors:  # the first in row order, so the message does not depend on timing
                    raise errors[0]
                stats = [r for r in results if not isinstance(r, Exception)]
                store._commit_external_rows(id_list)
                info = store.info()
        except BaseException:
            _remove(dst, so)
            raise
    finally:
        if src_store is not None:
            src_store.close()
    kept = sum(s[0] for s in stats)
    return ConvertSummary(
        source=name,
        destination=dst,
        vectors=n,
        dim=dim,
        format=enc.element,
        scale=info.scale,
        backend="zarr",
        bytes_before=n * dim * x.dtype.itemsize,
        bytes_after=info.bytes_on_disk,
        payload_after=info.payload_bytes,
        ratio=n * dim * x.dtype.itemsize / info.bytes_on_disk if info.bytes_on_disk else float("nan"),
        cosine_mean=sum(s[1] for s in stats) / kept if kept else float("nan"),
        cosine_min=min(s[2] for s in stats) if kept else float("nan"),
        zero_vectors=sum(s[3] for s in stats),
        seconds=time.perf_counter() - t0,
        encoding=describe_encoding(enc, fitted_on),
    )


# -- search and scoring --------------------------------------------------------
def _search_partition(
    snap: StoreSnapshot, lo: int, hi: int, live: np.ndarray, q: np.ndarray, k: int, threads: int | None
) -> tuple[np.ndarray, np.ndarray]:
    packed = read_partition(snap, lo, hi)
    rows, scores = scoring.search(packed, q, k=k, exclude=~live, threads=threads)
    return rows + lo, scores


def _merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` of the per-partition candidates: score descending, ties by ascending row (as scoring.search)."""
    rows = np.concatenate([p[0] for p in parts], axis=1) if parts else np.empty((nq, 0), np.int64)
    scores = np.concatenate([p[1] for p in parts], axis=1) if parts else np.empty((nq, 0), np.float64)
    kk = min(k, rows.shape[1])
    out_r = np.empty((nq, kk), dtype=np.int64)
    out_s = np.empty((nq, kk), dtype=np.float64)
    for t in range(nq):
        order = np.lexsort((rows[t], -scores[t]))[:kk]
        out_r[t], out_s[t] = rows[t, order], scores[t, order]
    return out_r, out_s


def search(
    store: EmbeddingStore, queries: object, k: int = 10, client: Any = None, *, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``store.search(queries, k)``, with each shard searched by a Dask task and the top-k merged.

    Parameters
    ----------
    store : EmbeddingStore
        An open store (its committed rows as this handle sees them are searched).
    queries : array_like of shape (q, dim) or (dim,), floating point
    k : int
    client : distributed.Client, optional
    threads : int, optional
        numba and BLAS threads per task (``minifloat_store.search``); a worker
        running several tasks at once on its cores wants ``cores // tasks``.

    Returns
    -------
    ids : ndarray of shape (q, k'), object (str)
        ``k' = min(k, len(store))``, best first, ties by row order: exactly ``store.search``.
    scores : ndarray of shape (q, k'), float64
    """
    k = check_positive_int(k, "k")
    if threads is not None:
        threads = check_positive_int(threads, "threads")  # here, not in every task
    q = as_float32_matrix(queries, "queries")
    if q.shape[1] != store.dim:
        raise ValueError(f"queries have {q.shape[1]} values; the store holds vectors of {store.dim}")
    snap = store.snapshot()
    reader = snap.without_deleted()
    part = dask.delayed(_search_partition, pure=False)
    tasks = []
    for lo, hi in snap.partitions():
        live = snap.live_mask(lo, hi)
        if live.any():
            tasks.append(part(reader, lo, hi, live, q, int(k), threads))
    rows, scores = _merge_topk(_compute(tasks, client), q.shape[0], int(k))
    flat = rows.ravel()
    # An object array, as EmbeddingStore.search returns: a fixed-width str array pads every id.
    ids = np.empty(len(flat), dtype=object)
    ids[:] = store.ids_at(flat) if len(flat) else []
    return ids.reshape(rows.shape), scores


def _score_block(snap: StoreSnapshot, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    uniq, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
    packed = read_scattered(snap, uniq)
    return scoring.cosine_index_pairs(packed, inverse[: len(left)], inverse[len(left) :])


def score_pairs(
    store: EmbeddingStore, left_ids: Sequence[str], right_ids: Sequence[str], client: Any = None
) -> np.ndarray:
    """``store.score(left_ids, right_ids)``, by blocks of pairs on Dask workers.

    Returns
    -------
    ndarray of shape (len(left_ids),), float64
        Cosine of each pair; ``KeyError`` naming an unknown id, before any work is sent.
    """
    left, right = store.rows_of(left_ids), store.rows_of(right_ids)
    if len(left) != len(right):
        raise ValueError(f"left_ids has {len(left)} ids but right_ids has {len(right)}")
    snap = store.snapshot().without_deleted()
    block = dask.delayed(_score_block, pure=False)
    tasks = [
        block(snap, left[i : i + PAIRS_PER_TASK], right[i : i + PAIRS_PER_TASK])
        for i in range(0, len(left), PAIRS_PER_TASK)
    ]
    parts = _compute(tasks, client)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
