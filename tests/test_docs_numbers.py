"""Numbers quoted in README.md and docs/, pinned to the benchmark JSON, library constant or formula behind them.

test_docs_benchmarks.py checks the big benchmark tables one test each; this
test is one table of pins, parametrised (the machinery is in doc_pins.py): a
pin names a doc, a regular expression over its text (whitespace collapsed, so
line breaks do not matter) with one group per number, and where each number
comes from; a table pin names a markdown table by the start of its header and
gives the expected row for each key. Printed numbers must agree to half a unit
of the last digit shown (``agrees`` in test_docs_benchmarks.py) unless a pin
says why not. No benchmark runs here.

Where the pins are: performance.md's measured numbers here, its run set-ups,
targets and probed limits in doc_pins_performance.py; accuracy.md's in
doc_pins_accuracy.py; scaling.md's prose in doc_pins_scaling.py; evaluation.md,
metrics.md and reproduce.md in doc_pins_evaluation.py; README.md, store.md,
format.md and models.md in doc_pins_pages.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import doc_pins_accuracy
import doc_pins_evaluation
import doc_pins_pages
import doc_pins_performance
import doc_pins_scaling
import numpy as np
import pytest
from doc_pins import Number, Pin, Table, constant, json_at, load, matches

import minifloat_store as mfs
from minifloat_store.codec import decode_table
from minifloat_store.formats import get_format


def choices(data: str) -> dict:
    return load("bench_encoding_choices")["results"][data]


def ratio_range(num: Callable[[str], float], den: Callable[[str], float], sets=("relu", "pre")) -> list[float]:
    r = [num(s) / den(s) for s in sets]
    return [min(r), max(r)]


def _codec_rows(bench: str = "bench_encoding") -> list[dict]:
    return load(bench)["codec"]


def _codec_row(name: str) -> dict:
    return next(r for r in _codec_rows() if f"{r['element']}/{r['scale']}" == name)


#: The encodings on which issue 10's encode target (1 GB/s with centre+rotate) is judged.
ENCODE_TARGETS = {("e2m1", "vector"), ("nf4", "vector"), ("int4", "block32"), ("int8", "vector")}


def _target_ratio_range(bench: str) -> list[float]:
    r = [row["encode_vs_e2m1"] for row in _codec_rows(bench) if (row["element"], row["scale"]) in ENCODE_TARGETS]
    assert len(r) == len(ENCODE_TARGETS), f"{bench}: a target encoding is missing"
    return [min(r), max(r)]


def _search_rows() -> list[dict]:
    return load("bench_encoding")["search"]


def _search_row(name: str) -> dict:
    return next(r for r in _search_rows() if f"{r['element']}/{r['scale']}" == name)


_DOC_NAMES = {"faiss_QT_8bit": "FAISS QT_8bit", "faiss_QT_fp16": "FAISS QT_fp16", "faiss_QT_4bit": "FAISS QT_4bit",
              "faiss_Flat": "FAISS IndexFlatIP", "numpy_f32": "numpy float32", "usearch_i8": "usearch exact i8",
              "usearch_f16": "usearch exact f16"}  # fmt: skip


def _fastest_peer(threads: str | None) -> list:
    """e2m1 over the fastest peer one query at a time (the main table of bench_search.json, or its thread table
    with ``threads`` threads): the ratio, the peer as the doc names it, its q/s and e2m1's."""

    def qps(r: dict) -> float:
        return r["single_qps"] if threads is None else r["threads_qps"][threads]["single_qps"]

    rows = load("bench_search")["search"]
    peer = max((r for r in rows if not r["method"].startswith("mfs_")), key=qps)
    e2m1 = qps(next(r for r in rows if r["method"] == "mfs_e2m1"))
    return [e2m1 / qps(peer), _DOC_NAMES[peer["method"]], qps(peer), e2m1]


def _thread_scaling(mode: str) -> list[float]:
    """e2m1's q/s with 1 and 2 threads in bench_search.json's thread table, and their ratio."""
    t = next(r for r in load("bench_search")["search"] if r["method"] == "mfs_e2m1")["threads_qps"]
    return [t["1"][mode], t["2"][mode], t["2"][mode] / t["1"][mode]]


def _gaussian_int8_bound(d: int) -> float:
    """docs/performance.md's int8-path bound for unit Gaussian queries at d, as the doc defines it (median)."""
    q = np.random.default_rng(0).standard_normal((1000, d))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    scale = 127 / np.abs(q).max(axis=1)
    err = np.rint(q * scale[:, None]) / scale[:, None] - q
    return float(np.median(np.linalg.norm(err, axis=1) * (1 + 2.0**-20) + 1e-6))


def _table_bound(bits: int, d: int) -> float:
    """docs/performance.md's float32-path bound: B = 2 ((c + 2) + (c + 1)/2 + 3) 2^-24, c = ceil(m/8) + 3."""
    m = (d + 1) // 2 if bits == 4 else d
    c = math.ceil(m / 8) + 3
    return 2 * ((c + 2) + (c + 1) / 2 + 3) * 2.0**-24


PERF = "docs/performance.md"
RULES = ("library", "absmax", "gauss", "no-lsq")

PINS: list[Pin | Table] = [
    # --- Encodings (centre+rotate) and their search: benchmarks/bench_encoding.py
    Pin(
        "encoding run size",
        PERF,
        r"bench_encoding\.py --rows (\d+) --repeats (\d+) --queries (\d+) --rounds (\d+)",
        lambda: [
            json_at("bench_encoding", "rows"),
            json_at("bench_encoding", "repeats"),
            json_at("bench_encoding", "queries"),
            json_at("bench_encoding", "rounds"),
        ],
    ),
    Pin(
        "encoding data",
        PERF,
        r"\(([\d,]+) x (\d+) Gaussian float32 vectors with a per-dimension offset and spread; "
        r"best of (\d+) after a warm-up",
        lambda: [
            json_at("bench_encoding", "rows"),
            json_at("bench_encoding", "dim"),
            json_at("bench_encoding", "repeats"),
        ],
    ),
    Pin(
        "encoding date",
        PERF,
        r"bench_encoding\.json`\), run (\d{4}-\d\d-\d\d), finished at ([\d:]+), on",
        lambda: [
            json_at("bench_encoding", "machine.date").split()[0],
            json_at("bench_encoding", "machine.date")[11:16],
        ],
    ),
    Pin(
        "e2m1 without a transform",
        PERF,
        r"Without a transform, the e2m1 encoder printed ([\d.]+) GB/s here;",
        lambda: [json_at("bench_encoding", "baseline.encode_gbps")],
    ),
    Pin(
        "encoding run at d = 256",
        PERF,
        r"bench_encoding\.py --rows (\d+) --dim (\d+) --repeats (\d+) --no-search --out bench_encoding_d256`, "
        r"`benchmarks/results/bench_encoding_d256\.json`, run right after the d = 192 run and the search benchmark "
        r"below, same encoder, load average ([\d.]+) at the start and ([\d.]+) at the end; e2m1 without a transform "
        r"printed ([\d.]+) GB/s",
        lambda: [
            json_at("bench_encoding_d256", "rows"),
            json_at("bench_encoding_d256", "dim"),
            json_at("bench_encoding_d256", "repeats"),
            json_at("bench_encoding_d256", "machine.loadavg_start.0"),
            json_at("bench_encoding_d256", "machine.loadavg_end.0"),
            json_at("bench_encoding_d256", "baseline.encode_gbps"),
        ],
    ),
    Pin(
        "encode target",
        PERF,
        r"\*\*met for every encoding\*\* in this run: ([\d.]+)-([\d.]+) GB/s at d = 192 .*? and ([\d.]+)-([\d.]+) GB/s "
        r"at d = 256\.",
        lambda: [
            min(r["encode_gbps"] for r in _codec_rows()),
            max(r["encode_gbps"] for r in _codec_rows()),
            min(r["encode_gbps"] for r in _codec_rows("bench_encoding_d256")),
            max(r["encode_gbps"] for r in _codec_rows("bench_encoding_d256")),
        ],
    ),
    Pin(
        "slowest encode",
        PERF,
        r"\(the slowest, (\w+/\w+), finds",
        lambda: [
            min(_codec_rows(), key=lambda r: r["encode_gbps"])["element"]
            + "/"
            + min(_codec_rows(), key=lambda r: r["encode_gbps"])["scale"]
        ],  # fmt: skip
    ),
    Table(
        "encode by transform",
        PERF,
        "| element | none | centre | rotate | centre+rotate |",
        lambda: {
            r["element"]: [r["none"], r["centre"], r["rotate"], r["centre+rotate"]]
            for r in load("bench_encoding")["encode_by_transform_gbps"]
        },
    ),
    Pin(
        "search baseline",
        PERF,
        r"one query ([\d.]+) ms, \d+ queries (\d+) ms, both on its fast AVX2 scan",
        lambda: [
            json_at("bench_encoding", "baseline.one_query_s") * 1e3,
            json_at("bench_encoding", "baseline.batch_s") * 1e3,
        ],
    ),
    Pin(
        "one-query range",
        PERF,
        r"\*\*within 1\.25x of e2m1 for every 4-bit encoding\*\* \(([\d.]+)-([\d.]+)x; the highest single round "
        r"([\d.]+)x, see below\)",
        lambda: [
            min(r["one_vs_e2m1"] for r in _search_rows()),
            max(r["one_vs_e2m1"] for r in _search_rows()),
            max(max(r["one_vs_e2m1_rounds"]) for r in _search_rows()),
        ],
    ),
    Pin(
        "batch range",
        PERF,
        r"\*\*([\d.]+)-([\d.]+)x of e2m1's time\*\*.*?\(rounds vary: ([\d.]+)-([\d.]+)x\)",
        lambda: [
            min(r["batch_vs_e2m1"] for r in _search_rows()),
            max(r["batch_vs_e2m1"] for r in _search_rows()),
            min(min(r["batch_vs_e2m1_rounds"]) for r in _search_rows()),
            max(max(r["batch_vs_e2m1_rounds"]) for r in _search_rows()),
        ],
    ),
    Pin(
        "batch target met",
        PERF,
        r"1\.25x target is \*\*(met) for batches too\*\*",
        lambda: ["met" if all(r["batch_vs_e2m1"] <= 1.25 for r in _search_rows()) else "not met"],
    ),
    Table(
        "encoding codec table",
        PERF,
        "| encoding (centre+rotate) | bits/value |",
        lambda: {
            f"{r['element']}/{r['scale']}": [
                r["bits_per_value"],
                r["encode_gbps"],
                r["encode_vs_e2m1"],
                r["decode_gbps"],
                r["decode_vs_e2m1"],
            ]
            for r in _codec_rows()
        },
    ),
    Table(
        "encoding codec table at d = 256",
        PERF,
        "| encoding (centre+rotate), d = 256 |",
        lambda: {
            f"{r['element']}/{r['scale']}": [
                r["encode_gbps"],
                r["encode_vs_e2m1"],
                r["decode_gbps"],
                r["decode_vs_e2m1"],
            ]
            for r in _codec_rows("bench_encoding_d256")
        },
    ),
    Table(
        "encoding search table",
        PERF,
        "| 4-bit encoding (centre+rotate) | one query ms |",
        lambda: {
            f"{r['element']}/{r['scale']}": [
                r["one_query_s"] * 1e3,
                r["one_vs_e2m1"],
                min(r["one_vs_e2m1_rounds"]),
                max(r["one_vs_e2m1_rounds"]),
                r["batch_s"] * 1e3,
                r["batch_vs_e2m1"],
                min(r["batch_vs_e2m1_rounds"]),
                max(r["batch_vs_e2m1_rounds"]),
            ]
            for r in _search_rows()
        },
    ),
    # --- The design choices, measured: benchmarks/bench_encoding_choices.py
    Pin(
        "choices date",
        PERF,
        r"bench_encoding_choices\.json`, run (\d{4}-\d\d-\d\d);",
        lambda: [json_at("bench_encoding_choices", "machine.date").split()[0]],
    ),
    Pin(
        "real set size",
        PERF,
        r"Debian voices \((\d+) utterances, ([\d,]+) pairs;",
        lambda: [choices("relu")["n"], choices("relu")["n"] * (choices("relu")["n"] - 1) / 2],
    ),
    Pin(
        "synthetic set size",
        PERF,
        r"the demo's synthetic corpora \(([\d,]+) x (\d+)\)",
        lambda: [choices("synthetic-batchnorm")["n"], choices("synthetic-batchnorm")["d"]],
    ),
    Table(
        "scale rules table",
        PERF,
        "| set | element | library | absmax",
        keys=2,
        rows=lambda: {
            f"{s} {e}": [choices(s)["scale_rules"][e][r] * 1e3 for r in RULES]
            for s in ("relu", "pre")
            for e in ("int8", "int4", "nf4", "nf3")
        },
    ),
    Pin(
        "absmax at 3 bits",
        PERF,
        r"absmax costs up to ([\d.]+)x at 3 bits",
        lambda: [
            max(
                choices(s)["scale_rules"][e]["absmax"] / choices(s)["scale_rules"][e]["library"]
                for s in ("relu", "pre")
                for e in ("int3", "nf3")
            )
        ],
    ),
    Pin(
        "no least-squares factor",
        PERF,
        r"without it, up to ([\d.]+)x the error",
        lambda: [
            max(
                choices(s)["scale_rules"][e]["no-lsq"] / choices(s)["scale_rules"][e]["library"]
                for s in ("relu", "pre")
                for e in ("int8", "int4", "nf4", "nf3")
            )
        ],
    ),
    Pin(
        "nf4 vs int4",
        PERF,
        r"\(e\.g\. pre: nf4 ([\d.]+) vs int4 ([\d.]+)\)",
        lambda: [
            choices("pre")["scale_rules"]["nf4"]["library"] * 1e3,
            choices("pre")["scale_rules"]["int4"]["library"] * 1e3,
        ],
    ),
    Table(
        "elements table",
        PERF,
        "| element | bits/value | relu none |",
        lambda: {
            e: [choices("relu")["elements"][e]["bits_per_value"]]
            + [choices(s)["elements"][e][t] * 1e3 for s in ("relu", "pre") for t in ("none", "centre+rotate")]
            for e in ("int8", "e3m4", "e4m3", "int6", "e2m3", "nf4", "int4", "e2m1", "nf3", "int3", "nf2")
        },
    ),
    Pin(
        "best per budget",
        PERF,
        r"int8 at 8 bits \(([\d.]+)-([\d.]+)x e4m3's error, ([\d.]+)-([\d.]+)x e3m4's\)",
        lambda: [
            *ratio_range(
                lambda s: choices(s)["elements"]["int8"]["centre+rotate"],
                lambda s: choices(s)["elements"]["e4m3"]["centre+rotate"],
            ),
            *ratio_range(
                lambda s: choices(s)["elements"]["int8"]["centre+rotate"],
                lambda s: choices(s)["elements"]["e3m4"]["centre+rotate"],
            ),
        ],
    ),
    Pin(
        "nf4 against e2m1",
        PERF,
        r"nf4 at 4 \(([\d.]+)-([\d.]+)x the error of e2m1 with the same transform, "
        r"([\d.]+)-([\d.]+)x that of the study's e2m1 without it\)",
        lambda: [
            *ratio_range(
                lambda s: choices(s)["elements"]["nf4"]["centre+rotate"],
                lambda s: choices(s)["elements"]["e2m1"]["centre+rotate"],
            ),
            *ratio_range(
                lambda s: choices(s)["elements"]["nf4"]["centre+rotate"],
                lambda s: choices(s)["elements"]["e2m1"]["none"],
            ),
        ],
    ),
    Pin(
        "rotations",
        PERF,
        r"Rotation for d not a power of two \(first (\d+) coordinates, nf4/vector, RMS x 1e3\): "
        r"overlapping Hadamard blocks \(the library\) ([\d.]+) \(relu\) / ([\d.]+) \(pre\), block-diagonal "
        r"(\d+)\+(\d+): ([\d.]+) / ([\d.]+), zero-padding to (\d+) \(([\d.]+) bits/value instead of ([\d.]+)\): "
        r"([\d.]+) / ([\d.]+), no rotation ([\d.]+) / ([\d.]+)\.",
        lambda: [
            32 / (choices("relu")["rotations"]["nf4"]["overlap"]["bits_per_value"] - 4),  # d from 4 + 32/d bits
            *[choices(s)["rotations"]["nf4"]["overlap"]["rms"] * 1e3 for s in ("relu", "pre")],
            128,
            192 - 128,
            *[choices(s)["rotations"]["nf4"]["blockdiag"]["rms"] * 1e3 for s in ("relu", "pre")],
            256,
            choices("relu")["rotations"]["nf4"]["pad256"]["bits_per_value"],
            choices("relu")["rotations"]["nf4"]["overlap"]["bits_per_value"],
            *[choices(s)["rotations"]["nf4"]["pad256"]["rms"] * 1e3 for s in ("relu", "pre")],
            *[choices(s)["rotations"]["nf4"]["none"]["rms"] * 1e3 for s in ("relu", "pre")],
        ],
    ),
    Pin(
        "block-diagonal gain",
        PERF,
        r"block-diagonal was (\d+) % better on the pre-ReLU set",
        lambda: [
            100
            * (
                1
                - choices("pre")["rotations"]["nf4"]["blockdiag"]["rms"]
                / choices("pre")["rotations"]["nf4"]["overlap"]["rms"]
            )
        ],
    ),
    Pin(
        "padding gain",
        PERF,
        r"Padding buys (\d+)-(\d+) % for (\d+) % more bits",
        lambda: [
            *[
                100 * (1 - x)
                for x in ratio_range(
                    lambda s: choices(s)["rotations"]["nf4"]["pad256"]["rms"],
                    lambda s: choices(s)["rotations"]["nf4"]["overlap"]["rms"],
                )
            ][::-1],
            100
            * (
                choices("relu")["rotations"]["nf4"]["pad256"]["bits_per_value"]
                / choices("relu")["rotations"]["nf4"]["overlap"]["bits_per_value"]
                - 1
            ),
        ],
    ),
    # --- Exact results from an approximate scan: the library's constants and the doc's own formulas
    Pin(
        "fast-path thresholds",
        PERF,
        r"fewer than `BLAS_MIN_QUERIES` = (\d+) queries, or fewer than "
        r"`BLAS_MIN_QUERIES_SIMD4` = (\d+) for 4-bit codes on AVX2 CPUs, packed or Encoded, or fewer than "
        r"`BLAS_MIN_QUERIES_WIDE` = "
        r"(\d+) for 8- and 16-bit",
        lambda: [constant("BLAS_MIN_QUERIES"), constant("BLAS_MIN_QUERIES_SIMD4"), constant("BLAS_MIN_QUERIES_WIDE")],
    ),
    Pin(
        "e2m1 as integers",
        PERF,
        r"\(e2m1: ±\{(\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+), (\d+)\} × ([\d.]+)\)",
        lambda: [*np.unique(np.abs(decode_table(get_format("e2m1")))) / 0.5, 0.5],
    ),
    Pin("int8 query", PERF, r"`q_int = round\((\d+) q / max\|q\|\)`", lambda: [np.iinfo(np.int8).max]),
    Pin(
        "int8-path bound",
        PERF,
        r"for a Gaussian unit query at d = (\d+), `B` is about ([\d.]+)\.",
        lambda: [192, _gaussian_int8_bound(192)],
    ),
    Pin(
        "float32-path bound",
        PERF,
        r"about ([\d.]+e-\d+) \(4-bit\) and ([\d.]+e-\d+) \(wider formats\) at d = (\d+)\)",
        lambda: [_table_bound(4, 192), _table_bound(8, 192), 192],
    ),
    Pin(
        "fast block",
        PERF,
        r"Each parallel block of ([\d,]+) rows keeps its own top-k heap",
        lambda: [constant("FAST_BLOCK_ROWS")],
    ),
    Pin(
        "tiny rows",
        PERF,
        r"whose raw norm is below 2\^-(\d+) of the largest row's",
        lambda: [-math.log2(constant("_MIN_UNIT_NORM"))],
    ),
    Pin(
        "search state",
        PERF,
        r"For e2m1 at d = (\d+) that is (\d+) bytes a row, ([\d.]+)x less than float32's (\d+)",
        lambda: [
            192,
            mfs.storage_bytes(1, 192, "e2m1", "vector"),
            mfs.storage_bytes(1, 192, "fp32", "none") / mfs.storage_bytes(1, 192, "e2m1", "vector"),
            mfs.storage_bytes(1, 192, "fp32", "none"),
        ],
    ),
    Pin(
        "search memory",
        PERF,
        r"\(`ceil\(n / ([\d,]+)\) × max\((\d+), 4k\)` entries of (\d+) bytes: about ([\d.]+) MB "
        r"per query at 1 M rows\)",
        lambda: [
            constant("FAST_BLOCK_ROWS"),
            constant("POOL_ROWS"),
            np.dtype(np.float32).itemsize + np.dtype(np.int64).itemsize,
            math.ceil(1e6 / constant("FAST_BLOCK_ROWS")) * max(constant("POOL_ROWS"), 4 * 10) * 12 / 1e6,
        ],
    ),
    Pin("scan tile", PERF, r"A block reads (\d+) rows at a time", lambda: [constant("SUB_ROWS")]),
]


def _search(method: str, name: str = "bench_search") -> dict:
    return next(r for r in load(name)["search"] if r["method"] == method)


def _slowest_scoring() -> list[Number]:
    rows = [r for r in load("bench_search_2026-11-25")["trial_scoring"]["results"] if r["method"].startswith("mfs_")]
    worst = max(rows, key=lambda r: r["best_s"])
    return [worst["method"].removeprefix("mfs_"), worst["best_s"]]


PINS += [
    # --- performance.md, search: the prose around the tables test_docs_benchmarks.py checks
    Pin(
        "search run",
        PERF,
        r"\(([\d,]+) × (\d+) Gaussian float32 vectors with norms spread over 0\.5–3 x, (\d+) queries "
        r"that are stored vectors plus noise, top (\d+)\)",
        lambda: [
            json_at("bench_search", "rows"),
            json_at("bench_search", "dim"),
            json_at("bench_search", "queries"),
            json_at("bench_search", "k"),
        ],
    ),
    Pin(
        "search targets",
        PERF,
        r"\*\*met\*\* with 2 threads: ([\d.]+)x the fastest peer \(([\w ]+?), ([\d.]+) q/s, against ([\d.]+) q/s\), "
        r"and with 1 thread \(the table just above, one round\), \*\*not met\*\*: ([\d.]+)x the fastest peer "
        r"\(([\w ]+?), ([\d.]+) q/s, against "
        r"([\d.]+) q/s\)",
        lambda: [*_fastest_peer(None), *_fastest_peer("1")],
    ),
    Pin(
        "e2m1 from one thread to two",
        PERF,
        r"From one thread to two, e2m1 went from ([\d.]+) to ([\d.]+) q/s one query at a time \(([\d.]+)x\) and from "
        r"([\d.]+) to ([\d.]+) q/s in batches of 100 \(([\d.]+)x\)",
        lambda: [*_thread_scaling("single_qps"), *_thread_scaling("batch100_qps")],
    ),
    Pin(
        "recall vs float32",
        PERF,
        r"the quantisation's, ([\d.]+) in this run",
        lambda: [_search("mfs_e2m1")["recall_at_k_vs_float32"]],
    ),
    Pin(
        "search state target",
        PERF,
        r"\*\*met\*\*, ([\d.]+)x \(codes and scales, (\d+) bytes a row",
        lambda: [
            json_at("bench_search", "targets.float32_bytes_over_e2m1_index_bytes"),
            mfs.storage_bytes(1, json_at("bench_search", "dim"), "e2m1", "vector"),
        ],
    ),
    Pin(
        "trial scoring size",
        PERF,
        r"`cosine_index_pairs` on ([\d,]+) random pairs over the first ([\d,]+) vectors",
        lambda: [
            json_at("bench_search_2026-11-25", "trial_scoring.pairs"),
            json_at("bench_search_2026-11-25", "trial_scoring.rows"),
        ],
    ),
    Pin("trial scoring worst", PERF, r"\*\*met\*\* \(worst (\w+), ([\d.]+) s\)", _slowest_scoring),
]


PINS += (
    doc_pins_performance.PINS
    + doc_pins_pages.PINS
    + doc_pins_evaluation.PINS
    + doc_pins_scaling.PINS
    + doc_pins_accuracy.PINS
)


def _id(pin: Pin | Table) -> str:
    return f"{pin.doc.removeprefix('docs/')}:{pin.label}".replace(" ", "-")


@pytest.mark.parametrize("pin", PINS, ids=_id)
def test_a_number_in_the_docs_is_the_one_its_source_gives(pin):
    problems, count = [], 0
    for printed, value, what in pin.triples():
        count += 1
        if not matches(printed, value):
            problems.append(f"{what}: the doc says {printed}, its source gives {value!r}")
    assert count, f"{pin.label}: no numbers read"
    assert not problems, "\n".join(problems)
