"""The methods bench_search.py times, and the data they share: one place that builds each index.

``build(name, chunks, rows, dim, k)`` returns a function from float32
queries (q, d) to the top-k row indices (q, k); the names are those of
bench_search.py's docstring (numpy, FAISS and usearch peers, ``mfs_<fmt>``
and ``mfs_<element>_<scale>_cr``). The data is the same in every process:
seeded Gaussian chunks with a spread of norms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import minifloat_store as mfs
from minifloat_store import scoring
from minifloat_store.formats import FORMATS

DATA_CHUNK = 65536
NUMPY_CHUNK = 65536
SEED = 20241125


# ---------------------------------------------------------------- data


def data_chunks(rows: int, dim: int):
    """The benchmark vectors, chunk by chunk (same bytes in every process)."""
    for c, a in enumerate(range(0, rows, DATA_CHUNK)):
        rng = np.random.default_rng([SEED, c])
        m = min(DATA_CHUNK, rows - a)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        x *= rng.uniform(0.5, 3.0, size=(m, 1)).astype(np.float32)
        yield a, x


def make_queries(x: np.ndarray, nq: int) -> np.ndarray:
    rng = np.random.default_rng([SEED, 10**6])
    src = rng.choice(x.shape[0], nq, replace=False)
    return (x[src] + rng.standard_normal((nq, x.shape[1]), dtype=np.float32) * 1.5).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- methods


def numpy_topk(xn: np.ndarray, qn: np.ndarray, k: int) -> np.ndarray:
    """Exact float32 top k: chunked sgemm + argpartition, merged; ties by row."""
    nq = qn.shape[0]
    best_v = np.full((nq, k), -np.inf, np.float32)
    best_i = np.zeros((nq, k), np.int64)
    for a in range(0, xn.shape[0], NUMPY_CHUNK):
        s = qn @ xn[a : a + NUMPY_CHUNK].T
        kk = min(k, s.shape[1])
        p = np.argpartition(s, -kk, axis=1)[:, -kk:]
        v = np.take_along_axis(s, p, 1)
        all_v = np.concatenate([best_v, v], 1)
        all_i = np.concatenate([best_i, p + a], 1)
        o = np.argsort(-all_v, axis=1, kind="stable")[:, :k]
        best_v = np.take_along_axis(all_v, o, 1)
        best_i = np.take_along_axis(all_i, o, 1)
    return best_i


def build_faiss(qt: str, chunks, dim: int):
    import faiss

    index = faiss.IndexScalarQuantizer(dim, getattr(faiss.ScalarQuantizer, qt), faiss.METRIC_INNER_PRODUCT)
    trained = False
    for _, x in chunks:
        xn = unit(x)
        if not trained:
            # Per-dimension ranges (QT_4bit/8bit) from the first 100k vectors.
            index.train(xn[:100_000] if xn.shape[0] >= 100_000 else xn)
            trained = True
        index.add(xn)
    return index


def build_mfs(fmt: str, chunks, rows: int, dim: int) -> tuple[mfs.Packed, np.ndarray]:
    f = FORMATS[fmt]
    codes = np.empty((rows, f.row_bytes(dim)), np.uint8)
    scales = np.empty(rows, np.float32)
    for a, x in chunks:
        p = mfs.encode(x, f)
        codes[a : a + x.shape[0]] = p.codes
        scales[a : a + x.shape[0]] = p.scales
    packed = mfs.Packed(codes, scales, f, dim, "vector")
    return packed, None


def build_usearch(kind: str, chunks, rows: int, dim: int) -> np.ndarray:
    out = np.empty((rows, dim), np.int8 if kind == "i8" else np.float16)
    for a, x in chunks:
        xn = unit(x)
        out[a : a + x.shape[0]] = np.rint(xn * 127).clip(-127, 127) if kind == "i8" else xn
    return out


def searcher(name: str, index: Any, k: int, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function from float32 queries (q, d) to top-k row indices (q, k)."""
    if name == "numpy_f32":
        return lambda q: numpy_topk(index, unit(q), k)
    if name.startswith("faiss_"):
        return lambda q: index.search(unit(q), k)[1]
    if name.startswith("usearch_"):
        from usearch.index import MetricKind
        from usearch.index import search as us_search

        def run(q: np.ndarray) -> np.ndarray:
            qn = unit(q)
            qq = np.rint(qn * 127).clip(-127, 127).astype(np.int8) if index.dtype == np.int8 else qn.astype(index.dtype)
            m = us_search(index, qq, k, MetricKind.Cos, exact=True, threads=threads)
            keys = m.keys
            return np.asarray(keys).reshape(q.shape[0], -1)

        return run
    return lambda q: mfs.search(index, q, k)[0]


def build(name: str, chunks, rows: int, dim: int, k: int, threads: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    if name == "numpy_f32":
        xn = np.empty((rows, dim), np.float32)
        for a, x in chunks:
            xn[a : a + x.shape[0]] = unit(x)
        return searcher(name, xn, k, threads)
    if name == "faiss_Flat":
        import faiss

        index = faiss.IndexFlatIP(dim)
        for _, x in chunks:
            index.add(unit(x))
        return searcher(name, index, k, threads)
    if name.startswith("faiss_"):
        return searcher(name, build_faiss(name[len("faiss_") :], chunks, dim), k, threads)
    if name.startswith("usearch_"):
        return searcher(name, build_usearch(name[len("usearch_") :], chunks, rows, dim), k, threads)
    if name.endswith("_cr"):
        x = np.concatenate([c for _, c in chunks])
        el, sc = name[4:-3].split("_")
        enc_packed = mfs.encode(x, mfs.Encoding(el, sc, "centre+rotate").fit(x[:100_000]))
        del x
        return searcher(name, scoring.search_index(enc_packed), k, threads)
    packed, _ = build_mfs(name[len("mfs_") :], chunks, rows, dim)
    return searcher(name, scoring.search_index(packed), k, threads)
