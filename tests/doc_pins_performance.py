"""Pins for docs/performance.md's run set-ups, targets and the constants its prose quotes (see doc_pins.py).

The measured numbers of performance.md are pinned in test_docs_numbers.py and
test_docs_benchmarks.py; these are the numbers around them: how each
benchmark was invoked (against the arguments its JSON records), the machine,
the targets (a target is checked as a bound on what the run measured), and
the library's limits, found by probing the function that applies them rather
than by reading the literal.
"""

from __future__ import annotations

import math
import re

import numpy as np
from doc_pins import AtMost, Derived, Number, Pin, Table, constant, from_test_module, json_at, load
from test_docs_benchmarks import ROOT

import minifloat_store as mfs
from minifloat_store import encoded_fast_scan, exact_scan, scoring
from minifloat_store._encoded_scan_kernels import FINE_RATIO, GROUP
from minifloat_store._encoded_score_kernels import split_special
from minifloat_store.codebooks import get_codebook
from minifloat_store.store import hdf5_backend, zarr_backend

PERF = "docs/performance.md"


def _machine(bench: str) -> list[Number]:
    """date, time, cores and CPU of a run, as the doc prints them."""
    m = load(bench)["machine"]
    return [m["date"][:10], m["date"][11:], m["cores"], m["cpu"]]


def _target(bench: str, pattern: str) -> float:
    """A target's threshold as the benchmark names it in ``targets_met`` (e.g. "... >= 1.5x the fastest peer")."""
    found = {float(m.group(1)) for key in load(bench)["targets_met"] if (m := re.search(pattern, key))}
    assert len(found) == 1, f"{bench}: targets_met names {found} for /{pattern}/"
    return found.pop()


def _codec_target(kind: str) -> float:
    """bench_codec's targets_met keys: ``encode_10x``, ``decode_5x`` (allocating), ``decode_out_5x``."""
    keys = {k for per_format in load("bench_codec")["targets_met"].values() for k in per_format}
    (key,) = [k for k in keys if re.fullmatch(rf"{kind}_(\d+)x", k)]
    return float(re.fullmatch(rf"{kind}_(\d+)x", key).group(1))


def _codec_not_met(kind: str) -> str:
    met = load("bench_codec")["targets_met"]
    return ", ".join(f for f, t in met.items() if not next(v for k, v in t.items() if re.fullmatch(rf"{kind}_\d+x", k)))


def _bench_constant(script: str, name: str) -> int:
    """A module constant of a benchmark script, read from its source (importing it would pull in its peers)."""
    text = (ROOT / "benchmarks" / script).read_text()
    return int(re.search(rf"^{name} = ([\d_]+)$", text, re.M).group(1))


def _store_bytes_ratio(fmt: str) -> Derived:
    """float32 bytes over the store's payload at the benchmark's dimension ("4–8x fewer"): an integer printed."""
    d = json_at("bench_store", "dim")
    return Derived.of(mfs.storage_bytes(1, d, "fp32", "none") / mfs.storage_bytes(1, d, fmt, "vector"), 0.5)


def _checks_row(backend: str) -> list[float]:
    c = load("bench_store_checks")["checks"][backend]
    return [
        c["open_s"],
        c["open_checks_s"],
        *(c[k] for k in ("open_digests_s", "open_id_blob_check_s", "open_unique_ids_s", "open_structure_s")),
        c["check_s"],
        c["check_checks_s"],
        *(c[k] for k in ("check_digests_s", "check_scale_range_s", "check_code_scan_s")),
    ]


def _boundary(flagged, lo: float, hi: float, low_side: bool) -> float:
    """Where ``flagged(norm)`` switches, bisected on a log scale between ``lo`` and ``hi`` (to 1e-9 relative)."""
    a, b = math.log(lo), math.log(hi)
    for _ in range(200):
        mid = (a + b) / 2
        if flagged(math.exp(mid)) == low_side:
            a = mid
        else:
            b = mid
    return math.exp((a + b) / 2)


def _packed_special(norm: float) -> bool:
    return bool(exact_scan._special_mask(np.array([norm]))[0])


def _encoded_special(norm: float, mean_norm: float = 0.0) -> bool:
    count, _, _ = split_special(
        np.array([norm]), np.zeros(1, np.bool_), mean_norm, np.zeros(1, np.bool_), np.zeros(1, np.int64)
    )
    return count == 1


def _norm_bounds(special) -> list[float]:
    """The [low, high] norms scored by the fast kernels, as the function that sorts rows out finds them."""
    return [_boundary(special, 1e-40, 1.0, True), _boundary(special, 1.0, 1e40, False)]


def _mean_ratio_bound() -> float:
    """``|mean| / |y| <= 4``: the ratio at which a row is sent to ``decode`` for being too close to the mean."""
    return 1 / _boundary(lambda v: _encoded_special(v, mean_norm=1.0), 1e-6, 1.0, True)


def _largest_integer_level() -> int:
    """The largest |A| the encoded 4-bit kernel takes as exact integer levels (a table 0..M plus negatives)."""
    exact = [m for m in range(8, 200) if not encoded_fast_scan._int_tables(_levels(m))[1]]
    return max(exact)


def _levels(m: int) -> np.ndarray:
    return np.array([0, *range(1, 8), *(-v for v in range(1, 7)), m // 2, m], dtype=np.float32)


def _source(path: str) -> str:
    return (ROOT / path).read_text()


def _test_literal(pattern: str) -> str:
    """A literal of tests/test_encoding_scoring.py that the doc describes (the data its adversarial tests use)."""
    return re.search(pattern, _source("tests/test_encoding_scoring.py")).group(1)


def _block_size(scale: str) -> int:
    """Values per scale block."""
    return mfs.Encoding("nf4", scale=scale).block_size


def _scale_out() -> list[Number]:
    res = load("bench_scale")
    single = res["single"]["65536"]
    dask = {r["workers"]: r for r in res["dask"] if r["chunk_rows"] == 65536}
    return [
        res["rows"],
        res["dim"],
        res["format"],
        res["cpu_count"],
        65536,  # the shard size the sentence is about (a key of the JSON)
        single["convert_rows_per_s"],
        1,
        dask[1]["convert_rows_per_s"],
        dask[1]["convert_vs_single"],
        2,
        dask[2]["convert_vs_single"],
        4,
        dask[4]["convert_vs_single"],
        res["queries"],
        single["search_s"],
        dask[1]["search_s"],
        1,
        dask[1]["search_vs_single"],
    ]


def _simd4_crossover() -> list[int]:
    """(largest batch the fast scan won for every 4-bit method, smallest batch BLAS won for all of them)."""
    rows = [r for r in load("bench_search_crossover")["methods"] if r["plan"] == "simd4"]
    assert len(rows) == 3, "the prose says all three"
    batches = load("bench_search_crossover")["batches"]
    fast = max(b for b in batches if all(r["fast_over_blas"][str(b)] < 1 for r in rows))
    blas = min(b for b in batches if all(r["fast_over_blas"][str(b)] > 1 for r in rows))
    return [fast, blas]


PINS: list[Pin | Table] = [
    # --- Codec: bench_codec.json and bench_codec_1thread.json
    Pin(
        "codec run",
        PERF,
        r"`python benchmarks/bench_codec\.py` \(([\d,]+) × (\d+) Gaussian float32 vectors, scale `vector`, best of "
        r"(\d+) after a warm-up, the median of the (\d+) beside it\), run (\d{4}-\d\d-\d\d) ([\d:]+) on (\d+) cores "
        r"of an ([\w ]+?) \(numba ([\d.]+), (\d+) threads; numpy ([\d.]+)\)\.",
        lambda: [
            json_at("bench_codec", "rows"),
            json_at("bench_codec", "dim"),
            json_at("bench_codec", "repeats"),
            json_at("bench_codec", "repeats"),
            *_machine("bench_codec"),
            json_at("bench_codec", "machine.numba"),
            json_at("bench_codec", "machine.numba_threads"),
            json_at("bench_codec", "machine.numpy"),
        ],
    ),
    Pin(
        "codec cores",
        PERF,
        r"\(1-minute averages, saved in the JSON\), on (\d+) cores\.",
        lambda: [json_at("bench_codec", "machine.cores")],
    ),
    Pin(
        "codec baseline allocation",
        PERF,
        r"the baseline allocated (\d+) MB a call",
        lambda: [json_at("bench_codec", "rows") * json_at("bench_codec", "dim") * 4 / 1e6],
    ),
    Pin(
        "codec targets",
        PERF,
        r"Targets for ([\w, ]+), at the bests: encode ≥ (\d+)x the baseline \*\*met for all four\*\*; decode ≥ (\d+)x, "
        r"allocating on both sides, \*\*not met for ([\w, ]+)\*\*; into a buffer on both sides, \*\*not met for "
        r"([\w, ]+)\*\*\.",
        lambda: [
            ", ".join(load("bench_codec")["targets_met"]),
            _codec_target("encode"),
            _codec_target("decode"),
            _codec_not_met("decode"),
            _codec_not_met("decode_out"),
        ],
    ),
    Pin(
        "codec one thread",
        PERF,
        r"`NUMBA_NUM_THREADS=(\d+) python benchmarks/bench_codec\.py --formats ([\w,]+) --out (\w+)`, same data, run "
        r"(\d{4}-\d\d-\d\d) ([\d:]+),",
        lambda: [
            json_at("bench_codec_1thread", "machine.numba_threads"),
            ",".join(r["format"] for r in load("bench_codec_1thread")["results"]),
            "bench_codec_1thread",
            *_machine("bench_codec_1thread")[:2],
        ],
    ),
    # --- Store: bench_store.json and bench_store_checks.json
    Pin(
        "store run",
        PERF,
        r"`python benchmarks/bench_store\.py` \(defaults: ([\d,]+) × (\d+) Gaussian float32 vectors, best of (\d+), a "
        r"(\d+) GiB \.npy for convert\), run (\d{4}-\d\d-\d\d) ([\d:]+) on (\d+) cores of an ([\w ]+?) shared",
        lambda: [
            json_at("bench_store", "rows"),
            json_at("bench_store", "dim"),
            json_at("bench_store", "repeats"),
            json_at("bench_store", "convert.npy_bytes") / 2**30,
            *_machine("bench_store"),
        ],
    ),
    Pin(
        "add batches",
        PERF,
        r"\*\*Add throughput\*\*: (\d+) M vectors added ([\d,]+) at a time,.*?uncompressed zarr array or h5py dataset "
        r"\(([\d,]+)-row chunks",
        lambda: [
            json_at("bench_store", "rows") / 1e6,
            json_at("bench_store", "batch"),
            json_at("bench_store", "batch"),
        ],
    ),
    Pin(
        "fewer bytes",
        PERF,
        r"The store writes (\d+)–(\d+)x fewer vector bytes than float32",
        lambda: [_store_bytes_ratio("e4m3"), _store_bytes_ratio("e2m1")],
    ),
    Pin(
        "inner chunks",
        PERF,
        r"1-D arrays use ([\d,]+)-element inner chunks rather than the codes' ([\d,]+) rows",
        lambda: [zarr_backend.INNER_ROWS_1D, zarr_backend.INNER_ROWS],
    ),
    Pin(
        "payload and ids",
        PERF,
        r"packed codes plus a (\d+)-byte scale per vector\).*?\(here (\d+)-byte ids such as `([\w/]+)`, plus an "
        r"(\d+)-byte offset each\)",
        lambda: [
            np.dtype(np.float32).itemsize,
            len(f"spk{6157 // 50:06d}/utt{6157 % 50:02d}"),  # bench_store.py's ids: f"spk{i // 50:06d}/utt{i % 50:02d}"
            f"spk{6157 // 50:06d}/utt{6157 % 50:02d}",
            np.dtype(np.int64).itemsize,
        ],
    ),
    Pin(
        "size target",
        PERF,
        r"Target \(vector arrays ≤ ([\d.]+)x the payload from (\d+)k vectors on\): met\.",
        lambda: [
            AtMost(max(v["vector_arrays_over_payload"] for v in load("bench_store")["disk"].values())),
            min(int(k.rsplit("_", 1)[1]) for k in load("bench_store")["disk"]) / 1e3,
        ],
    ),
    Pin(
        "convert memory target",
        PERF,
        r"\*\*[\d.]+ MiB\*\* \(target < (\d+) MiB\).*?every page it touched resident \((\d+) GiB\)",
        lambda: [
            AtMost(json_at("bench_store", "convert.peak_rss_mib")),
            json_at("bench_store", "convert.npy_bytes") / 2**30,
        ],
    ),
    Pin(
        "checks run",
        PERF,
        r"`python benchmarks/bench_store\.py --only-checks --repeats (\d+)`, run (\d{4}-\d\d-\d\d) (\d\d:\d\d) "
        r"on the same kind of machine \((\d+) cores of an ([\w ]+?), shared.*?on a store of ([\d,]+) e4m3 vectors "
        r"of (\d+) dims per backend\..*?best of (\d+)\.",
        lambda: [
            json_at("bench_store_checks", "repeats"),
            _machine("bench_store_checks")[0],
            _machine("bench_store_checks")[1][:5],
            *_machine("bench_store_checks")[2:],
            json_at("bench_store_checks", "rows"),
            json_at("bench_store_checks", "dim"),
            json_at("bench_store_checks", "repeats"),
        ],
    ),
    *(
        Pin(
            f"checks {backend}",
            PERF,
            rf"\| {backend} \| ([\d.]+) s \| ([\d.]+) s \| ([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+) s \| ([\d.]+) s \| "
            r"([\d.]+) s \| ([\d.]+), ([\d.]+), ([\d.]+) s \|",
            lambda backend=backend: _checks_row(backend),
        )
        for backend in ("zarr", "hdf5")
    ),
    Pin(
        "opening indexes ids",
        PERF,
        r"Opening reads and indexes every id \(about (\d+) s here with or without checks\)",
        lambda: [
            max(
                c[k]
                for c in load("bench_store_checks")["checks"].values()
                for k in ("open_index_plain_s", "open_index_unique_s")
            )
        ],
    ),
    Pin(
        "digest blocks",
        PERF,
        r"one ([\d,]+)-row \(zarr\) or (\d+)-row \(HDF5\) block",
        lambda: [zarr_backend.INNER_ROWS, hdf5_backend.DEFAULT_CHUNK_ROWS],
    ),
    # --- Search and scoring: what was run and on what (the tables' numbers are test_docs_benchmarks.py's)
    Pin(
        "search invocation",
        PERF,
        r"`python benchmarks/bench_search\.py --threads (\d+) --repeats (\d+) --skip-memory` \(",
        lambda: [json_at("bench_search", "threads"), json_at("bench_search", "repeats")],
    ),
    Pin(
        "search machine",
        PERF,
        r"top 10\), run (\d{4}-\d\d-\d\d) on (\d+) cores of an ([\w ]+?) with no other jobs running",
        lambda: [_machine("bench_search")[0], *_machine("bench_search")[2:]],
    ),
    Pin(
        "search peers",
        PERF,
        r"OpenBLAS sgemm, (\d+)k rows at a time\), FAISS ([\d.]+) `IndexFlatIP`.*?on int8 \(×(\d+)\) and float16 copies"
        r".*?the per-row extras and the (\d+)-byte exclusion mask",
        lambda: [
            _bench_constant("_search_methods.py", "NUMPY_CHUNK") / 1024,
            json_at("bench_search", "faiss.version"),
            np.iinfo(np.int8).max,
            np.dtype(np.bool_).itemsize,
        ],
    ),
    Pin(
        "search targets",
        PERF,
        r"Targets \(one query at a time, (\d+) M × (\d+), e2m1\): \* At least ([\d.]+)x the queries/s of the fastest "
        r"peer.*?\* recall@(\d+) = ([\d.]+) against exact search on the decoded vectors: \*\*met\*\* \(([\d.]+) for "
        r"every mfs method;.*?\* Search state at least ([\d.]+)x smaller than float32",
        lambda: [
            json_at("bench_search", "rows") / 1e6,
            json_at("bench_search", "dim"),
            _target("bench_search", r">= ([\d.]+)x the fastest peer"),
            json_at("bench_search", "k"),
            _target("bench_search", r"recall@\d+ = ([\d.]+)"),
            min(r["recall_at_k"] for r in load("bench_search")["search"] if r["method"].startswith("mfs_")),
            _target("bench_search", r">= ([\d.]+)x smaller"),
        ],
    ),
    Pin(
        "search data",
        PERF,
        r"with norms spread over ([\d.]+)–([\d.]+) x,",
        lambda: list(
            map(
                float,
                re.search(r"rng\.uniform\(([\d.]+), ([\d.]+)", _source("benchmarks/_search_methods.py")).groups(),
            )
        ),
    ),
    Pin(
        "search rounds",
        PERF,
        r"best of (\d+) rounds after a warm-up\. The memory bandwidth",
        lambda: [json_at("bench_search", "repeats")],
    ),
    # --- Exact results from an approximate scan: the limits, probed
    Pin(
        "packed special rows",
        PERF,
        r"Rows whose decoded norm lies outside \[([\d.e-]+), ([\d.e+-]+)\], whose raw norm",
        lambda: _norm_bounds(_packed_special),
    ),
    Pin(
        "encoded integer levels",
        PERF,
        r"`L = A` with \|A\| ≤ (\d+) and `r = 0`.*?otherwise \(nf4\) `L = (\d+) A \+ B`, two int8 tables \(A on "
        r"`max\|level\| / (\d+)`, B on a step (\d+) times finer\), summed lane by lane in the same pass, leaving "
        r"`\|r\| <= rho \|level\|` with `rho` = ([\d.e-]+) for nf4\.",
        lambda: [
            _largest_integer_level(),
            FINE_RATIO,
            _largest_integer_level(),
            FINE_RATIO,
            encoded_fast_scan._int_tables(get_codebook("nf4").table)[3],
        ],
    ),
    Pin(
        "encoded block sums",
        PERF,
        r"one int32 sum per block \(four blocks of (\d+) values or two of (\d+)\)",
        lambda: [_block_size("block16"), _block_size("block32")],
    ),
    Pin(
        "encoded fast-scan tests",
        PERF,
        r"a (1e\d+) and a (1e-\d+) row\), .*?checks the bound itself at d = (\d+), (\d+) and (\d+), and overflows "
        r"the pools with (\d+) copies of one vector",
        lambda: [
            _test_literal(r"x\[\d+\] \*= np\.float32\((1e\d+)\)"),
            _test_literal(r"x\[\d+\] \*= np\.float32\((1e-\d+)\)"),
            *re.search(
                r'parametrize\("d", \[(\d+), (\d+), (\d+)\]\)', _source("tests/test_encoding_scoring.py")
            ).groups(),
            _test_literal(r"rng\.choice\(np\.arange\(1, \d+\), (\d+), replace=False\)"),
        ],
    ),
    Pin(
        "encoded special rows",
        PERF,
        r"Rows with a norm outside \[([\d.e-]+), ([\d.e+-]+)\] or below a quarter of the mean's are scored from "
        r"`decode` as before, so `\|mean\| / \|y\| <= (\d+)`",
        lambda: [*_norm_bounds(_encoded_special), _mean_ratio_bound()],
    ),
    Pin(
        "search heaps",
        PERF,
        r"A search allocates per query ([\d,]+)-row-block heaps and pools",
        lambda: [constant("FAST_BLOCK_ROWS")],
    ),
    Pin(
        "BLAS from 6 queries for wider encodings",
        PERF,
        r"query at a time, and take the BLAS pre-selection from (\d+) queries on\.",
        lambda: [scoring.BLAS_MIN_QUERIES],
    ),
    Pin(
        "encoded wide-scan bound",
        PERF,
        r"`c = floor\(d/8\) \+ n_blocks \+ (\d+)` rounded float32 operations.*?At d = (\d+), B is ([\d.e-]+) without",
        lambda: [
            re.search(
                r"e\.dim // 8 \+ e\.encoding\.n_blocks\(e\.dim\) \+ (\d+)",
                _source("minifloat_store/encoded_fast_scan.py"),
            ).group(1),
            "192",
            encoded_fast_scan._wide_bound(mfs.encode(np.ones((1, 192), np.float32), mfs.Encoding("int8")), np.inf),
        ],
    ),
    # --- Trial scoring: bench_search_2026-11-25.json
    Pin(
        "trial scoring run",
        PERF,
        r"\(the crossover for table formats measured for the exact scan on (\d{4}-\d\d-\d\d) and not re-measured;"
        r".*?\*\*Trial scoring\*\* \(from the "
        r"(\d{4}-\d\d-\d\d) run.*?gathers normalised float32 rows (\d+)k pairs at a time.*?"
        r"\| seconds \(best of (\d+)\) \|",
        lambda: [
            _machine("bench_search_2026-11-25")[0],
            _machine("bench_search_2026-11-25")[0],
            _bench_constant("_search_methods.py", "NUMPY_CHUNK") / 1024,
            json_at("bench_search_2026-11-25", "repeats"),
        ],
    ),
    Pin(
        "trial scoring target",
        PERF,
        r"target under (\d+) s for every format: \*\*met\*\*.*?the codes of ([\d,]+) vectors mostly fit",
        lambda: [
            _target("bench_search_2026-11-25", r"under (\d+) s"),
            json_at("bench_search_2026-11-25", "trial_scoring.rows"),
        ],
    ),
    Pin(
        "scoring tolerance",
        PERF,
        r"every score agrees within ([\d.e-]+), the tolerance `tests/test_scoring\.py` holds every format to",
        lambda: [from_test_module("test_scoring", "TOL")],
    ),
    # --- When a batch takes BLAS: bench_search_crossover.json
    Pin(
        "crossover run",
        PERF,
        r"`python benchmarks/bench_search_crossover\.py --threads (\d+) --repeats (\d+)` \(the same ([\d,]+) x (\d+) "
        r"vectors.*?run (\d{4}-\d\d-\d\d) at (\d\d:\d\d), load average ([\d.]+) → ([\d.]+)\)",
        lambda: [
            json_at("bench_search_crossover", "threads"),
            json_at("bench_search_crossover", "repeats"),
            json_at("bench_search_crossover", "rows"),
            json_at("bench_search_crossover", "dim"),
            json_at("bench_search_crossover", "machine.date").split()[0],
            json_at("bench_search_crossover", "machine.date")[11:16],
            json_at("bench_search_crossover", "machine.loadavg_start.0"),
            json_at("bench_search_crossover", "machine.loadavg_end.0"),
        ],
    ),
    Table(
        "crossover table",
        PERF,
        "| method | fast scan |",
        lambda: {
            f"{r['method']} {r['plan']}": [
                *(r["fast_over_blas"][str(b)] for b in load("bench_search_crossover")["batches"]),
                r["blas_wins_from"],
                r["auto_blas_from"],
            ]
            for r in load("bench_search_crossover")["methods"]
        },
        keys=2,
    ),
    Pin(
        "crossover thresholds",
        PERF,
        r"`auto` takes the BLAS path from `BLAS_MIN_QUERIES_SIMD4` = (\d+) queries for 4-bit codes \(the fast scan won "
        r"at (\d+) queries for all three here, BLAS at (\d+)\) and from `BLAS_MIN_QUERIES_WIDE` = (\d+)",
        lambda: [scoring.BLAS_MIN_QUERIES_SIMD4, *_simd4_crossover(), scoring.BLAS_MIN_QUERIES_WIDE],
    ),
    # --- Encodings (centre+rotate): what is not a timing
    Pin(
        "encoding threads and load",
        PERF,
        r"best of \d+ after a warm-up; (\d+) numba threads;.*?load average ([\d.]+) at the start and ([\d.]+) at the "
        r"end, on (\d+) cores",
        lambda: [
            json_at("bench_encoding", "threads"),
            json_at("bench_encoding", "machine.loadavg_start.0"),
            json_at("bench_encoding", "machine.loadavg_end.0"),
            json_at("bench_encoding", "machine.cores"),
        ],
    ),
    Pin(
        "group kernel width",
        PERF,
        r"the 4-bit kernel now serves `GROUP` = (\d+) queries per",
        lambda: [GROUP],
    ),
    # --- The design choices, measured
    Pin(
        "choices elements at d",
        PERF,
        r"with centre\+rotate \(RMS x 1e3; bits per value at d = (\d+)\):",
        lambda: [load("bench_encoding_choices")["results"]["relu"]["d"]],
    ),
    # --- Scaling out: bench_scale.json (d = 192)
    Pin(
        "scale-out d512",
        PERF,
        r"and `bench_scale_d512\.json` for d = (\d+)\)",
        lambda: [json_at("bench_scale_d512", "dim")],
    ),
    Pin(
        "scale-out run",
        PERF,
        r"([\d,]+) x (\d+) vectors, (\w+), local.*?on (\d+) shared cores.*?With ([\d,]+)-row shards: one process "
        r"converts at ([\d,]+) rows/s; "
        r"Dask with (\d+) worker at ([\d,]+) rows/s \(([\d.]+)x\), (\d+) workers ([\d.]+)x, (\d+) workers ([\d.]+)x; a "
        r"search of (\d+) queries takes ([\d.]+) s in one process \(matrix cached\), ([\d.]+) s on (\d+) worker "
        r"\(([\d.]+)x;",
        _scale_out,
    ),
]
