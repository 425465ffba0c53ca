"""Pins for docs/scaling.md's prose (see doc_pins.py): bench_scale*.json and benchmarks/scaling_estimate.py.

test_docs_scaling.py checks the measured d = 192 table, the bytes per vector
and the time estimates; these pins check the sentences around them and the
bytes-per-store table, by running the arithmetic scaling_estimate.py prints
(its constants are read from its source: importing it would run nothing, but
it lives outside the package).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from functools import cache

import numpy as np
from doc_pins import AtMost, Number, Pin, Table, load
from test_docs_benchmarks import ROOT, table

import minifloat_store as mfs
from minifloat_store import dask as mfs_dask
from minifloat_store.store import ids, zarr_backend

SCALING = "docs/scaling.md"


def _source(script: str) -> str:
    return (ROOT / "benchmarks" / script).read_text()


def _script_constant(script: str, pattern: str) -> int:
    return int(re.search(pattern, _source(script), re.M).group(1))


def _shard() -> int:
    return _script_constant("scaling_estimate.py", r"^SHARD = (\d+)$")


def _id_bytes() -> int:
    return _script_constant("scaling_estimate.py", r'"--id-bytes", type=int, default=(\d+)')


def _index_bytes() -> int:
    return _script_constant("scaling_estimate.py", r"^ID_INDEX_BYTES = (\d+)$")


def _max_workers() -> int:
    return max(map(int, re.search(r'"--workers", type=int, nargs="\+", default=\[([\d, ]+)\]', _source(
        "scaling_estimate.py")).group(1).split(",")))  # fmt: skip


@cache
def _estimate_output() -> str:
    """What ``python benchmarks/scaling_estimate.py`` prints (a second: it reads two JSON files)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scaling_estimate.py")],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=120,
    ).stdout  # fmt: skip


def _printed_table(header: str, keys: int) -> dict[str, list[Number]]:
    return {" ".join(c[:keys]): c[keys:] for c in table(_estimate_output(), header)}


def _run(name: str, workers: int, shard: int = 65536) -> dict:
    return next(r for r in load(name)["dask"] if r["workers"] == workers and r["chunk_rows"] == shard)


def _rate(name: str, key: str) -> float:
    return _run(name, 1, _shard())[key]


def _bandwidth() -> list[Number]:
    d, w = load("bench_scale")["dim"], _max_workers()
    convert, scan = (
        _rate("bench_scale", "convert_rows_per_s_per_worker"),
        _rate("bench_scale", "scan_rows_per_s_per_worker"),
    )
    stored = mfs.storage_bytes(10**9, d, load("bench_scale")["format"], "vector") / 1e9
    scan_s = 10**9 / (scan * w)
    return [
        np.dtype(np.float32).itemsize,
        d,
        10**9 * d * 4 / 1e9,
        stored,
        w,
        convert,
        d * 4,
        convert,
        w,
        d * 4 * convert * w / 1e9,
        stored,
        scan_s,
        stored / scan_s,
        stored,
        2,  # the example's bandwidth B, an input
        stored / 2,
    ]


PINS: list[Pin | Table] = [
    Pin(
        "shard default",
        SCALING,
        r"one task per shard \(([\d,]+) rows by default\)",
        lambda: [zarr_backend.DEFAULT_CHUNK_ROWS],
    ),
    Pin(
        "pairs per task",
        SCALING,
        r"read the rows a block of 2\^(\d+) pairs needs",
        lambda: [math.log2(mfs_dask.PAIRS_PER_TASK)],
    ),
    Pin(
        "how it was run",
        SCALING,
        r"`python benchmarks/bench_scale\.py` \(d = (\d+), ([\d,]+) rows\) and `python benchmarks/bench_scale\.py "
        r"--dim "
        r"(\d+) --rows (\d+) --workers (\d+) (\d+) --chunk-rows (\d+) --tag (\w+)`, format (\w+), a local zarr source "
        r"and a local store, a `LocalCluster` of (\d+), (\d+) and (\d+) worker processes with one thread each "
        r"\(`NUMBA_NUM_THREADS=(\d+)`\), best of (\d+) after a warm-up\. The machine: (\d+) cores .*? no more than "
        r"(\d+) workers can run at once;",
        lambda: [
            load("bench_scale")["dim"],
            load("bench_scale")["rows"],
            load("bench_scale_d512")["dim"],
            load("bench_scale_d512")["rows"],
            *sorted({r["workers"] for r in load("bench_scale_d512")["dask"]}),
            *sorted({r["chunk_rows"] for r in load("bench_scale_d512")["dask"]}),
            "d512",  # the tag: the JSON is saved as bench_scale_d512.json
            load("bench_scale")["format"],
            *sorted({r["workers"] for r in load("bench_scale")["dask"]}),
            _script_constant("bench_scale.py", r'env=\{"NUMBA_NUM_THREADS": "(\d+)"'),
            _script_constant("bench_scale.py", r'"--repeats", type=int, default=(\d+)'),  # not passed: the default
            load("bench_scale")["machine"]["cores"],
            load("bench_scale")["cpu_count"],
        ],
    ),
    Pin(
        "d = 512",
        SCALING,
        r"\(`bench_scale_d512\.json`, ([\d,]+)-row shards\): one process ([\d.]+) s \(([\d,]+) rows/s\) to convert, "
        r"([\d.]+) s to search; (\d+) worker ([\d.]+) s \(([\d,]+) rows/s\), search ([\d.]+) s, peak (\d+) MB; (\d+) "
        r"workers ([\d.]+) s, search ([\d.]+) s, peak (\d+) MB\.",
        lambda: [
            65536,  # the shard size the sentence is about (a key of the JSON)
            load("bench_scale_d512")["single"]["65536"]["convert_s"],
            load("bench_scale_d512")["single"]["65536"]["convert_rows_per_s"],
            load("bench_scale_d512")["single"]["65536"]["search_s"],
            *(lambda r: [1, r["convert_s"], r["convert_rows_per_s"], r["search_s"], r["worker_peak_rss_mb"]])(
                _run("bench_scale_d512", 1)
            ),
            *(lambda r: [2, r["convert_s"], r["search_s"], r["worker_peak_rss_mb"]])(_run("bench_scale_d512", 2)),
        ],
    ),
    Pin(
        "overhead",
        SCALING,
        r"moving (\d+)-(\d+) MB float32 blocks between processes.*?in the saved run (\d+) workers convert at "
        r"([\d.]+)x the rate of 1 worker\.",
        lambda: [
            *(
                s * load("bench_scale")["dim"] * 4 / 1e6
                for s in sorted({r["chunk_rows"] for r in load("bench_scale")["dask"]})
            ),
            2,
            _run("bench_scale", 1)["convert_s"] / _run("bench_scale", 2)["convert_s"],
        ],
    ),
    Pin(
        "shard sizes",
        SCALING,
        r"\*\*Shards of ([\d,]+) rows beat ([\d,]+)\*\*.*?The default stays ([\d,]+)\. \* The per-worker rates that "
        r"the estimates below use are the \*\*1-worker, ([\d,]+)-row\*\* figures",
        lambda: [
            *sorted({r["chunk_rows"] for r in load("bench_scale")["dask"]}, reverse=True),
            zarr_backend.DEFAULT_CHUNK_ROWS,
            _shard(),
        ],
    ),
    Table(
        "bytes per store",
        SCALING,
        "| n | d | e2m1 | e2m3 | e4m3 | fp16 | fp32 | ids on disk",
        lambda: _printed_table("| n | d | e2m1 | e2m3 | e4m3 | fp16 | fp32 | ids on disk", 2),
        keys=2,
    ),
    Pin(
        "id assumptions",
        SCALING,
        r"\(ids: (\d+) UTF-8 bytes each assumed; the store adds under (\d+)% of chunk indexes and checksums",
        lambda: [
            _id_bytes(),
            AtMost(100 * (max(v["vector_arrays_over_payload"] for v in load("bench_store")["disk"].values()) - 1)),
        ],
    ),
    Pin(
        "per-worker rates",
        SCALING,
        r"convert ([\d,]+) rows/s at d = (\d+) and ([\d,]+) at d = (\d+); a full scan for a batch of (\d+) queries "
        r"([\d,]+) rows/s at d = (\d+) and ([\d,]+) at d = (\d+)\.",
        lambda: [
            _rate("bench_scale", "convert_rows_per_s_per_worker"),
            load("bench_scale")["dim"],
            _rate("bench_scale_d512", "convert_rows_per_s_per_worker"),
            load("bench_scale_d512")["dim"],
            load("bench_scale")["queries"],
            _rate("bench_scale", "scan_rows_per_s_per_worker"),
            load("bench_scale")["dim"],
            _rate("bench_scale_d512", "scan_rows_per_s_per_worker"),
            load("bench_scale_d512")["dim"],
        ],
    ),
    Pin(
        "storage bandwidth",
        SCALING,
        r"a convert reads (\d+)·d bytes and writes about `storage_bytes` per row, so 10\^9 x (\d+) reads (\d+) GB and "
        r"writes (\d+) GB; (\d+) workers at ([\d,]+) rows/s ask for (\d+) B x ([\d,]+) x (\d+) = ([\d.]+) GB/s of "
        r"reads\. "
        r"A scan of the e4m3 store reads (\d+) GB; at (\d+) s that is (\d+) GB/s\..*?for example (\d+) GB at (\d+) "
        r"GB/s "
        r"is (\d+) s",
        _bandwidth,
    ),
    Pin(
        "worker memory",
        SCALING,
        r"the measured peak was (\d+) MB \(d = (\d+)\) and (\d+) MB \(d = (\d+)\) with ([\d,]+)-row shards.*?float32 "
        r"block \(([\d,]+) x d x (\d+) B: (\d+) MB at (\d+), (\d+) MB at (\d+)\) and its packed codes; a search task "
        r"one "
        r"packed shard \((\d+) MB at (\d+), (\d+) MB at (\d+), e4m3\)",
        lambda: [
            _rate("bench_scale", "worker_peak_rss_mb"),
            load("bench_scale")["dim"],
            _rate("bench_scale_d512", "worker_peak_rss_mb"),
            load("bench_scale_d512")["dim"],
            _shard(),
            _shard(),
            np.dtype(np.float32).itemsize,
            *(v for d in (192, 512) for v in (_shard() * d * 4 / 1e6, d)),
            *(v for d in (192, 512) for v in (mfs.storage_bytes(_shard(), d, "e4m3", "vector") / 1e6, d)),
        ],
    ),
    Pin(
        "driver memory",
        SCALING,
        r"about (\d+) B per row plus the ids' bytes \(docs/store\.md, Limits\): 10\^8 x \((\d+) \+ (\d+)\) B = "
        r"([\d.]+) GB "
        r"and 10\^9 x \((\d+) \+ (\d+)\) B = (\d+) GB\..*?search merges shards x queries x k candidates: ([\d,]+) "
        r"shards "
        r"x (\d+) x (\d+) x (\d+) B = (\d+) MB at 10\^9, a few seconds of merging in numpy; (\d+) MB at 10\^8\. A "
        r"store "
        r"holds at most 2\^(\d+) - 1 rows; 10\^9 fits, but a driver with (\d+) GB for ids",
        lambda: [
            _index_bytes(),
            *(_index_bytes(), _id_bytes(), 1e8 * (_index_bytes() + _id_bytes()) / 1e9),
            *(_index_bytes(), _id_bytes(), 1e9 * (_index_bytes() + _id_bytes()) / 1e9),
            -(-(10**9) // _shard()),
            load("bench_scale")["queries"],
            10,  # k, as in the benchmark's searches
            np.dtype(np.float64).itemsize + np.dtype(np.int64).itemsize,  # a candidate: score and row
            -(-(10**9) // _shard()) * 100 * 10 * 16 / 1e6,
            -(-(10**8) // _shard()) * 100 * 10 * 16 / 1e6,
            math.log2(ids.MAX_ROWS + 1),
            1e9 * (_index_bytes() + _id_bytes()) / 1e9,
        ],
    ),
]
