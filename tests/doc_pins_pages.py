"""Pins for README.md and the docs pages other than performance.md and accuracy.md (see doc_pins.py)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import math
import re
from fractions import Fraction

import numpy as np
from doc_pins import F32, AtMost, Derived, Number, Pin, Table, from_test_module
from test_docs_benchmarks import ROOT, table

import minifloat_store as mfs
from minifloat_store import choose, fidelity, metrics
from minifloat_store.codebooks import GAUSSIAN_STEP, get_codebook
from minifloat_store.codec import decode_table
from minifloat_store.eval.baselines import DEFAULT_BASELINES
from minifloat_store.eval.data.synthetic import PROFILES, make_corpus
from minifloat_store.eval.models import frontends
from minifloat_store.eval.pipelines import demo
from minifloat_store.eval.pipelines.extract import extract
from minifloat_store.eval.pipelines.reproduce import reproduce
from minifloat_store.eval.report.results import FormatResult
from minifloat_store.eval.report.study import STUDY_ORDER, published
from minifloat_store.eval.trials import KNOWN_LISTS
from minifloat_store.formats import get_format
from minifloat_store.store import hdf5_backend, hdf5_guard, hdf5_slots, ids, zarr_backend, zarr_confined
from minifloat_store.store.record import LAYOUT_VERSION
from minifloat_store.transforms import splitmix64

PINS: list[Pin | Table] = []

STORE = "docs/store.md"
PINS += [
    # --- docs/store.md: the layout's constants and the tests' sizes
    Pin(
        "zarr inner chunks",
        STORE,
        r"\| codes \| uint8 \| \(R, row_bytes\) \| \(min\(R, (\d+)\), row_bytes\) \| 0 \| "
        r"\| scales \| float32 \| \(R,\) \| \(min\(R, (\d+)\),\) \| NaN \| \| id_ends \| int64 \| \(R,\) \| "
        r"\(min\(R, (\d+)\),\) \| -1 \| \| id_blob \| uint8 \| \((\d+)·R,\) \| \((\d+)·min\(R, (\d+)\),\) \| 0 \| "
        r"\| deleted \| int64 \| \(R,\) \| \(min\(R, (\d+)\),\) \| -1 \|",
        lambda: [
            zarr_backend.INNER_ROWS,
            *[zarr_backend.INNER_ROWS_1D] * 2,
            zarr_confined.BLOB_BYTES_PER_ROW,
            zarr_confined.BLOB_BYTES_PER_ROW,
            zarr_backend.INNER_ROWS_1D,
            zarr_backend.INNER_ROWS_1D,
        ],
    ),
    Pin("zarr shard rows", STORE, r"R is ([\d,]+) by default\.", lambda: [zarr_backend.DEFAULT_CHUNK_ROWS]),
    Pin(
        "hdf5 commit slots",
        STORE,
        r"/commit0, /commit1 uint8 \(L,\), chunks \((\d+),\)",
        lambda: [hdf5_slots.COMMIT_CHUNK],
    ),
    Pin(
        "hdf5 chunks",
        STORE,
        r"`record\.backend\.hdf5\.chunk_rows`, (\d+) by default\), (\d+)·C bytes for `id_blob`",
        lambda: [hdf5_backend.DEFAULT_CHUNK_ROWS, hdf5_backend.BLOB_BYTES_PER_ROW],
    ),
    Pin(
        "crash kills",
        STORE,
        r"kills a writer (\d+) \(zarr\) and (\d+) \(HDF5\) times",
        lambda: [
            from_test_module("test_store_crash", "ITERATIONS")["zarr"],
            from_test_module("test_store_crash", "ITERATIONS")["hdf5"],
        ],
    ),
    Pin(
        "bit flips",
        STORE,
        r"store, (\d+) times per backend: each time",
        lambda: [from_test_module("test_store_bitflips", "FLIPS")],
    ),
    Pin("SWMR attempts", STORE, r"The store sets (\d+) attempts", lambda: [hdf5_backend.SWMR_READ_ATTEMPTS]),
    Pin(
        "metadata bound",
        STORE,
        r"no larger than a metadata document \((\d+) MiB\)",
        lambda: [zarr_confined.MAX_METADATA_BYTES / 2**20],
    ),
    Pin("slot bound", STORE, r"a commit slot at most (\d+) MiB", lambda: [hdf5_slots.MAX_SLOT_BYTES / 2**20]),
    Pin(
        "reader memory",
        STORE,
        r"under a timeout and `RLIMIT_AS` \(([\d.]+) GiB\)",
        lambda: [from_test_module("store_reader", "MEMORY_LIMIT") / 2**30],
    ),
    Pin(
        "fuzz size",
        STORE,
        r"Each example mutates (\d+) copies of a small store",
        lambda: [from_test_module("test_store_fuzz", "BATCH")],
    ),
    Pin(
        "fuzz examples",
        STORE,
        r"(\d+) examples per backend and store in CI;",
        lambda: [from_test_module("test_store_fuzz", "EXAMPLES")],
    ),
    Pin("row limit", STORE, r"At most 2\^(\d+) − 1 rows per store", lambda: [math.log2(ids.MAX_ROWS + 1)]),
    Pin(
        "small add",
        STORE,
        r"A small `add` rewrites the last chunk \(zarr: up to a ([\d,]+)-row shard; "
        r"HDF5: up to a (\d+)-row tail\)",
        lambda: [zarr_backend.DEFAULT_CHUNK_ROWS, hdf5_backend.DEFAULT_CHUNK_ROWS],
    ),
]


def _positive_levels(name: str) -> list[float]:
    levels = np.asarray(get_codebook(name).levels, dtype=np.float64)
    return [F32(v) for v in levels[levels > 0]]


def _packed_bytes(values: list[float]) -> list[str]:
    codes = mfs.encode(np.array([values], np.float32), "e2m1", scale="none").codes[0]
    return [f"0x{b:02X}" for b in codes.tobytes()]


FORMAT = "docs/format.md"
PINS += [
    # --- docs/format.md: worked examples and the constants of the encodings
    Pin(
        "e2m1 packing example",
        FORMAT,
        r"Example: e2m1 values `0\.5, 1, 1\.5, 2, 3` \(codes (\d), (\d), (\d), (\d), (\d)\) "
        r"pack to bytes `(0x[0-9A-F]{2}) (0x[0-9A-F]{2}) (0x[0-9A-F]{2})`",
        lambda: [
            *[int(np.flatnonzero(decode_table(get_format("e2m1")) == v)[0]) for v in (0.5, 1, 1.5, 2, 3)],
            *_packed_bytes([0.5, 1, 1.5, 2, 3]),
        ],
    ),
    Pin(
        "Table 1",
        FORMAT,
        r"e\.g\. ([\d,]+) x (\d+) values take ([\d.]+) MiB in float32 and ([\d.]+) MiB in e2m1",
        lambda: [
            37_611,
            512,
            mfs.storage_bytes(37_611, 512, "fp32", "none") / 2**20,
            mfs.storage_bytes(37_611, 512, "e2m1", "none") / 2**20,
        ],
    ),
    Pin(
        "nf levels",
        FORMAT,
        r"nf2 `([\d.]+), ([\d.]+)`; nf3 `([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)`; nf4 `([\d.]+), "
        r"([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)`",
        lambda: _positive_levels("nf2") + _positive_levels("nf3") + _positive_levels("nf4"),
    ),
    Pin(
        "Gaussian steps",
        FORMAT,
        r"\(int4: g = ([\d.]+), int3: ([\d.]+), int2: ([\d.]+), the MSE-optimal",
        lambda: [GAUSSIAN_STEP[7], GAUSSIAN_STEP[3], GAUSSIAN_STEP[1]],
    ),
    Pin(
        "SplitMix64 of seed 0",
        FORMAT,
        r"\(Seed 0 starts `(0x[0-9A-F]+), (0x[0-9A-F]+)`\.\)",
        lambda: [f"0x{int(v):016X}" for v in splitmix64(0, 2)],
    ),
]


def _readme_codec_example() -> list[Number]:
    x = np.random.default_rng(0).standard_normal((1000, 192)).astype(np.float32)
    packed = mfs.encode(x, "e2m1")
    return [*packed.codes.shape, packed.nbytes]


README = "README.md"
PINS += [
    # --- README.md: what its examples print, and the study's number it quotes
    Pin(
        "recommend caution",
        README,
        r"If fewer than (\d+) of those pairs score within ([\d.]+) of the threshold",
        lambda: [choose.MIN_NEAR, choose.NEAR],
    ),
    Pin(
        "study FRR (ours: test_cli_demo.py)",
        README,
        r"rejects ([\d.]+) % of genuine trials \(the study: ([\d.]+) %\)",
        lambda: [None, published("wavlm", "Vox1-O", "e2m1", "none").frr_pct],
    ),
    Pin("codec example", README, r"# \((\d+), (\d+)\) uint8; ([\d,]+) bytes with the scales", _readme_codec_example),
    Pin(
        "Table 1 example",
        README,
        r"storage_bytes\(37_611, 512, \"e2m1\", \"none\"\) / 2\*\*20 # ([\d.]+) MiB: the "
        r"study's Table 1",
        lambda: [mfs.storage_bytes(37_611, 512, "e2m1", "none") / 2**20],
    ),
    Pin(
        "bits per value example",
        README,
        r"enc\.bits_per_value\((\d+)\) # ([\d.]+): codes \+ one float32 per vector",
        lambda: [256, mfs.Encoding("nf4", scale="vector", transform="centre+rotate", seed=0).bits_per_value(256)],
    ),
    Pin(
        "search state",
        README,
        r"\(([\d.]+)x less than float32 for e2m1 at d = (\d+)\)",
        lambda: [mfs.storage_bytes(1, 192, "fp32", "none") / mfs.storage_bytes(1, 192, "e2m1", "vector"), 192],
    ),
]


def _models_table() -> dict[str, list[Number | None]]:
    def m(name: str):
        return importlib.import_module(f"minifloat_store.eval.models.{name}")

    redimnet_layout = json.loads((ROOT / "tests" / "fixtures" / "redimnet" / "official_layout.json").read_text())
    # network, checkpoint, parameters, input, dim, threshold (None: text, or a number no constant holds)
    return {
        "`campplus`": [
            None,
            None,
            m("campplus").N_PARAMETERS,
            None,
            m("campplus").EMBEDDING_SIZE,
            m("campplus").THRESHOLD,
        ],
        "`redimnet`": [None, None, redimnet_layout["b2"]["n_parameters"], None, None, m("redimnet").DEFAULT_THRESHOLD],
        "`wavlm`": [None, None, None, None, None, m("wavlm").DEFAULT_THRESHOLD],
        "`resemblyzer`": [None, None, None, None, m("resemblyzer").EMBEDDING_SIZE, m("resemblyzer").THRESHOLD],
    }


PINS += [
    # --- docs/models.md: the registry's constants
    Table("models table", "docs/models.md", "| registry name | network | checkpoint |", _models_table),
]


def _eval_rows(profile: str) -> dict[str, dict[str, float]]:
    """docs/evaluation.md's results table of ``profile`` (test_cli_demo.py checks it against the demo)."""
    text = (ROOT / "docs" / "evaluation.md").read_text()
    text = text[text.index(f"**`{profile}`**") :]
    out = {}
    for cells in table(text, "| format | FAR / FRR % none |"):
        far_n, frr_n = map(float, cells[1].split(" / "))
        far_v, frr_v = map(float, cells[2].split(" / "))
        out[cells[0]] = dict(
            far_none=far_n,
            frr_none=frr_n,
            far_vector=far_v,
            frr_vector=frr_v,
            eer_none=float(cells[3]),
            eer_vector=float(cells[4]),
            thr_none=float(cells[5]),
        )
    return out


def _largest_change(profile: str, keys: tuple[str, ...], unit: float = 0.01) -> Derived:
    """The largest difference from float32 in the table: two rounded cells, so within ``unit`` of the true one."""
    rows = _eval_rows(profile)
    return Derived.of(max(abs(r[k] - rows["float32"][k]) for r in rows.values() for k in keys), unit)


def _study(fmt: str) -> list[float]:
    r = published("wavlm", "Vox1-O", fmt, "none")
    return [r.far_pct, r.frr_pct]


EVAL = "docs/evaluation.md"
PINS += [
    # --- docs/evaluation.md: the findings quote its own results tables (which test_cli_demo.py checks)
    Pin(
        "batchnorm finding",
        EVAL,
        r"keeps EER within ([\d.]+) points of float32 and FAR/FRR at the fixed threshold within "
        r"([\d.]+) points; the EER threshold moves by at most ([\d.]+)\.",
        lambda: [
            _largest_change("batchnorm", ("eer_none", "eer_vector")),
            _largest_change("batchnorm", ("far_none", "frr_none", "far_vector", "frr_vector")),
            _largest_change("batchnorm", ("thr_none",), unit=0.001),
        ],
    ),
    Pin(
        "nonorm collapse",
        EVAL,
        r"FAR / FRR ([\d.]+) / ([\d.]+) % at the fixed threshold, EER ([\d.]+) %\), e2m3 rejects "
        r"(\d+) % of targets and e3m2 ([\d.]+) %",
        lambda: [
            _eval_rows("nonorm")["e2m1"]["far_none"],
            _eval_rows("nonorm")["e2m1"]["frr_none"],
            _eval_rows("nonorm")["e2m1"]["eer_none"],
            _eval_rows("nonorm")["e2m3"]["frr_none"],
            _eval_rows("nonorm")["e3m2"]["frr_none"],
        ],
    ),
    Pin(
        "study's Table 4",
        EVAL,
        r"\(e2m1 ([\d.]+) / ([\d.]+) %, e2m3 ([\d.]+) / ([\d.]+) %, e3m2 ([\d.]+) / ([\d.]+) %\)",
        lambda: [*_study("e2m1"), *_study("e2m3"), *_study("e3m2")],
    ),
    Pin(
        "nonorm with scaling",
        EVAL,
        r"back within ([\d.]+) points of the float32 EER \(e2m1: ([\d.]+) % against ([\d.]+) %\)",
        lambda: [
            _largest_change("nonorm", ("eer_vector",)),
            _eval_rows("nonorm")["e2m1"]["eer_vector"],
            _eval_rows("nonorm")["float32"]["eer_vector"],
        ],
    ),
    Pin(
        "lower EER, wrecked FRR",
        EVAL,
        r"\(e2m3 here: EER ([\d.]+) %, FRR (\d+) %\).*?the EER threshold moves from "
        r"([\d.]+) to ([\d.]+)\)",
        lambda: [
            _eval_rows("nonorm")["e2m3"]["eer_none"],
            _eval_rows("nonorm")["e2m3"]["frr_none"],
            _eval_rows("nonorm")["float32"]["thr_none"],
            _eval_rows("nonorm")["e2m3"]["thr_none"],
        ],
    ),
]


def _frac(x: float) -> str:
    """``x`` as the doc writes a small exact fraction ("2/7"), or its repr when it is not one."""
    f = Fraction(x).limit_denominator(100)
    return str(f) if abs(float(f) - x) < 1e-12 else repr(x)


def _labels(text: str) -> tuple[list[float], list[bool]]:
    """The doc's ``1 (n), 2 (t)`` notation."""
    pairs = re.findall(r"([\d.]+) \(([nt])\)", text)
    return [float(s) for s, _ in pairs], [lab == "t" for _, lab in pairs]


def _bracket(example: str) -> list[Number]:
    """The two operating points around the EER, the weight, the EER and its threshold, as fractions."""
    scores, labels = _labels(example)
    far, frr, thr = metrics.det_curve(scores, labels)
    d = frr - far
    j = int(np.flatnonzero(d >= 0)[0])
    w = -d[j - 1] / (d[j] - d[j - 1])
    e, t = metrics.eer(scores, labels)
    return [
        thr[j - 1],
        _frac(far[j - 1]),
        _frac(frr[j - 1]),
        thr[j],
        _frac(far[j]),
        _frac(frr[j]),
        _frac(w),
        _frac(e),
        t,
    ]


def _min_dcf_example(example: str, p_target: float) -> list[Number]:
    scores, labels = _labels(example)
    far, frr, thr = metrics.det_curve(scores, labels)
    dcf = p_target * frr + (1 - p_target) * far
    i = int(np.argmin(dcf))
    norm = min(p_target, 1 - p_target)
    return [p_target, thr[i], far[i], _frac(frr[i]), p_target, p_target / dcf[i], p_target, 1 - p_target, norm,
            _frac(metrics.min_dcf(scores, labels, p_target=p_target))]  # fmt: skip


METRICS = "docs/metrics.md"
EX2 = "1 (n), 2 (t), 3 (n), 4 (t), 5 (t)"
PINS += [
    # --- docs/metrics.md: the worked examples are what minifloat_store.metrics computes
    Pin(
        "tie-aware example",
        METRICS,
        r"Example: scores `0 1 1 1 2`,.*?The tie-aware EER is (\d+/\d+) \(worked out below\)",
        lambda: [_frac(metrics.eer([0, 1, 1, 1, 2], [False, False, True, True, True])[0])],
    ),
    Pin(
        "edge cases",
        METRICS,
        r"All scores equal: .*?so the EER is ([\d.]+)\. \* Perfectly separated scores: EER (\d+)\. Perfectly inverted "
        r"scores \(every target below every non-target\): EER (\d+)\.",
        lambda: [
            metrics.eer([1.0, 1.0, 1.0, 1.0], [False, True, False, True])[0],
            metrics.eer([0.0, 1.0, 2.0, 3.0], [False, False, True, True])[0],
            metrics.eer([0.0, 1.0, 2.0, 3.0], [True, True, False, False])[0],
        ],
    ),
    Pin(
        "worked example 1",
        METRICS,
        r"\* Scores `0\.1 \(n\), 0\.35 \(t\), 0\.4 \(n\), 0\.8 \(t\)`\. At t = ([\d.]+), FAR = (\d+/\d+) and "
        r"FRR = (\d+/\d+), so the EER is exactly ([\d.]+) at threshold ([\d.]+)\.",
        lambda: [
            metrics.eer(*_labels("0.1 (n), 0.35 (t), 0.4 (n), 0.8 (t)"))[1],
            *map(_frac, metrics.far_frr(*_labels("0.1 (n), 0.35 (t), 0.4 (n), 0.8 (t)"), 0.4)),
            *metrics.eer(*_labels("0.1 (n), 0.35 (t), 0.4 (n), 0.8 (t)")),
        ],
    ),
    Pin(
        "worked example 2",
        METRICS,
        r"\* Scores `1 \(n\), 2 \(t\), 3 \(n\), 4 \(t\), 5 \(t\)`\. At t = (\d+), FAR = (\d+/\d+) and FRR = (\d+/\d+); "
        r"at t = (\d+), FAR = (\d+) and FRR = (\d+/\d+)\. The weight is w = (\d+/\d+), so the EER is (\d+/\d+) at "
        r"threshold (\d+)/(\d+)\.",
        lambda: [
            *_bracket(EX2)[:-1],
            *(lambda f: [f.numerator, f.denominator])(Fraction(_bracket(EX2)[-1]).limit_denominator(100)),
        ],  # fmt: skip
    ),
    Pin(
        "worked example 3",
        METRICS,
        r"\* Scores `0 \(n\), 1 \(n\), 1 \(t\), 1 \(t\), 2 \(t\)`\. At t = (\d+), \(FAR, FRR\) is "
        r"\((\d+/\d+), (\d+)\); at t = (\d+) it is \((\d+), (\d+/\d+)\)\. The weight is w = (\d+/\d+), "
        r"so the EER is (\d+/\d+) at threshold (\d+) \+ (\d+/\d+)\.",
        lambda: [
            *_bracket("0 (n), 1 (n), 1 (t), 1 (t), 2 (t)")[:-1],
            math.floor(_bracket("0 (n), 1 (n), 1 (t), 1 (t), 2 (t)")[-1]),
            _frac(_bracket("0 (n), 1 (n), 1 (t), 1 (t), 2 (t)")[-1] % 1),
        ],
    ),
    Pin(
        "min_dcf defaults",
        METRICS,
        r"`min_dcf\(scores, labels, p_target=([\d.]+), c_miss=(\d+), c_fa=(\d+)\)` returns a float\.",
        lambda: [inspect.signature(metrics.min_dcf).parameters[k].default for k in ("p_target", "c_miss", "c_fa")],
    ),
    Pin(
        "report's p_target",
        METRICS,
        r"The report shows p_target = ([\d.]+) and ([\d.]+)\.",
        lambda: [
            int(f.name.removeprefix("min_dcf_")) / 100
            for f in dataclasses.fields(FormatResult)
            if f.name.startswith("min_dcf_")
        ],
    ),
    Pin(
        "minDCF example",
        METRICS,
        r"Worked example: scores `1 \(n\), 2 \(t\), 3 \(n\), 4 \(t\), 5 \(t\)` with p_target = ([\d.]+)\. The cheapest "
        r"point is t = (\d+), where FAR = (\d+), FRR = (\d+/\d+) and DCF = ([\d.]+)/(\d+)\. The normaliser is "
        r"min\(([\d.]+), ([\d.]+)\) = ([\d.]+), so minDCF = (\d+/\d+)\.",
        lambda: _min_dcf_example(EX2, 0.01),
    ),
    Table(
        "known lists",
        METRICS,
        "| name | file | trials | MD5 |",
        lambda: {k.name: [f"`{k.filename}`", None, k.md5.join("``")] for k in KNOWN_LISTS.values()},
    ),
    Pin(
        "Vox1-O counts",
        METRICS,
        r"\| ([\d,]+) \(([\d,]+) target, ([\d,]+) non-target; ([\d,]+) utterances, (\d+) speakers\) \|.*?\| Vox1-E \| "
        r"`list_test_all2\.txt` \| ([\d,]+) \|.*?\| Vox1-H \| `list_test_hard2\.txt` \| ([\d,]+) \|",
        lambda: [
            KNOWN_LISTS["Vox1-O"].n_trials,
            # the synthetic corpus mirrors Vox1-O's design; test_trials.py checks these against the real list
            *(
                inspect.signature(make_corpus).parameters[k].default
                for k in ("n_targets", "n_nontargets", "n_utterances")
            ),
            int(re.search(r"\((\d+) test speakers\)", KNOWN_LISTS["Vox1-O"].description).group(1)),
            KNOWN_LISTS["Vox1-E"].n_trials,
            KNOWN_LISTS["Vox1-H"].n_trials,
        ],
    ),
    Pin(
        "the study's names",
        METRICS,
        r"its \"VoxCeleb-E\" \(([\d,]+) pairs\) is Vox1-O, \"VoxCeleb-O\" \(([\d,]+)\) is Vox1-H and \"VoxCeleb-H\" "
        r"\(([\d,]+)\) is Vox1-E\.",
        lambda: [KNOWN_LISTS[n].n_trials for n in ("Vox1-O", "Vox1-H", "Vox1-E")],
    ),
]


def _pyproject_pin(package: str) -> str:
    """The version ``pyproject.toml`` pins ``package`` to, without a trailing ``.0`` the docs may drop."""
    return re.search(rf'"{package}==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)


def _family(prefix: str) -> list[str]:
    """Bit counts of ``bench --baselines``' FAISS quantisers named ``prefix<bits>``, as listed."""
    return [s.removeprefix(prefix) for s in DEFAULT_BASELINES if re.fullmatch(rf"{re.escape(prefix)}\d+", s)]


def _shrink(fmt: str, d: int = 192) -> Derived:
    """How many times smaller than float32 ``fmt`` with a per-vector scale is ("shrinks 4-8x"): an integer printed."""
    return Derived.of(mfs.storage_bytes(1, d, "fp32", "none") / mfs.storage_bytes(1, d, fmt, "vector"), 0.5)


def _size_ratio(backend: str) -> float:
    return next(
        c["ratio"] for c in json.loads((ROOT / "benchmarks/results/bench_store_size.json").read_text())["cases"]
        if c["backend"] == backend and c["encoding"] == "e2m1/vector/none"
    )  # fmt: skip


def _bench(name: str) -> dict:
    return json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text())


PINS += [
    # --- README.md: versions, defaults and the benchmark numbers its prose quotes
    Pin("torch pin", README, r"installs the CPU build of `torch==([\d.]+)`", lambda: [_pyproject_pin("torch")]),
    Pin("shrinks", README, r"database shrinks (\d+)-(\d+)x while", lambda: [_shrink("e4m3"), _shrink("e2m1")]),
    Pin(
        "block sizes",
        README,
        r"shared power of two per (\d+) values; `block16`, NVFP4's E4M3 scale per (\d+) values",
        lambda: [mfs.Encoding("int4", scale=s).block_size for s in ("block32", "block16")],
    ),
    Pin(
        "store size",
        README,
        r"at 1M vectors of (\d+) values with VoxCeleb-style ids, a store takes ([\d.]+)x \(zarr\) and ([\d.]+)x "
        r"\(HDF5\)",
        lambda: [_bench("bench_store_size")["dim"], _size_ratio("zarr"), _size_ratio("hdf5")],
    ),
    Pin(
        "search run",
        README,
        r"On (\d+) M x (\d+) vectors, on a (\d+)-core machine .*?with recall@(\d+) = ([\d.]+) against brute force",
        lambda: [
            _bench("bench_search")["rows"] / 1e6,
            _bench("bench_search")["dim"],
            _bench("bench_search")["machine"]["cores"],
            _bench("bench_search")["k"],
            _bench("bench_search")["targets"]["e2m1_recall_at_10_vs_decoded"],
        ],
    ),
    Pin(
        "bench baselines",
        README,
        r"`SQ(\d+)`, `SQ(\d+)`, `SQ(\d+)`, `RR,SQtqmse\{(\d+),(\d+),(\d+)\}`, `EDEN\{(\d+),(\d+),(\d+)\}` and PQ",
        lambda: [*_family("SQ"), *_family("RR,SQtqmse"), *_family("EDEN")],
    ),
    Pin(
        "interval",
        README,
        r"paired-bootstrap (\d+) % interval",
        lambda: [100 * inspect.signature(fidelity.paired_bootstrap_delta_eer).parameters["confidence"].default],
    ),
    Pin(
        "recommend defaults",
        README,
        r"within `max_flips` \(([\d.]+) % by default\).*?its (\d+) nearest neighbours",
        lambda: [100 * inspect.signature(choose.recommend).parameters["max_flips"].default, choose.NEIGHBOURS],
    ),
]

REPRO = "docs/reproduce.md"
PINS += [
    # --- docs/reproduce.md: versions, defaults, thresholds and list sizes
    Pin("torch", REPRO, r"# CPU torch ([\d.]+), transformers", lambda: [_pyproject_pin("torch").removesuffix(".0")]),
    Table(
        "trial lists",
        REPRO,
        "| file | list | trials | MD5 |",
        lambda: {f"`{k.filename}`": [f"{k.name} (cleaned)", k.n_trials, f"`{k.md5}`"] for k in KNOWN_LISTS.values()},
    ),
    Pin(
        "batch size",
        REPRO,
        r"`--batch-size N` \(default (\d+)\)",
        lambda: [inspect.signature(reproduce).parameters["batch_size"].default],
    ),
    Pin(
        "failures",
        REPRO,
        r"More than (\d+) such files stop the run",
        lambda: [inspect.signature(extract).parameters["max_failures"].default],
    ),
    Pin(
        "bench example threshold",
        REPRO,
        r"minifloat-store bench campplus\.zarr --trials \"\$V/veri_test2\.txt\" --threshold ([\d.]+)",
        lambda: [importlib.import_module("minifloat_store.eval.models.campplus").THRESHOLD],
    ),
    Pin(
        "extraction machine",
        REPRO,
        r"torch on one thread; a shared (\d+)-core",
        lambda: [_bench("bench_extract")["machine"]["cores"]],
    ),
    Pin(
        "report rows",
        REPRO,
        r"Each report \((\d+) format x scale rows\)",
        lambda: [2 * len(STUDY_ORDER) - 1],  # float32 once, every other format with and without a scale
    ),
    Pin(
        "study thresholds",
        REPRO,
        r"at the study's threshold \(CAM\+\+ ([\d.]+), ReDimNet ([\d.]+), WavLM ([\d.]+)\)",
        lambda: [
            importlib.import_module("minifloat_store.eval.models.campplus").THRESHOLD,
            importlib.import_module("minifloat_store.eval.models.redimnet").DEFAULT_THRESHOLD,
            importlib.import_module("minifloat_store.eval.models.wavlm").DEFAULT_THRESHOLD,
        ],
    ),
    Pin(
        "columns by trial count",
        REPRO,
        r"matched by trial count: ([\d,]+) = Vox1-O, ([\d,]+) = Vox1-H, ([\d,]+) = Vox1-E\. For CAM\+\+ and ReDimNet "
        r"the "
        r"study's ([\d,]+) column",
        lambda: [KNOWN_LISTS[n].n_trials for n in ("Vox1-O", "Vox1-H", "Vox1-E", "Vox1-E")],
    ),
]


def _model(name: str):
    return importlib.import_module(f"minifloat_store.eval.models.{name}")


def _resemblyzer_parameters() -> int:
    """The GE2E encoder's parameters from its sizes: LSTM, linear layer, GE2E's similarity weight and bias."""
    rz, n_mels = _model("resemblyzer"), frontends.RESEMBLYZER_N_MELS
    h = rz.HIDDEN_SIZE
    lstm = sum(4 * h * ((n_mels if i == 0 else h) + h) + 2 * 4 * h for i in range(rz.NUM_LAYERS))
    return lstm + h * rz.EMBEDDING_SIZE + rz.EMBEDDING_SIZE + 2


MODELS = "docs/models.md"
PINS += [
    # --- docs/models.md: the prose's constants (the table's are pinned above)
    Pin("torch", MODELS, r"\(CPU torch ([\d.]+),", lambda: [_pyproject_pin("torch").removesuffix(".0")]),
    Pin(
        "CAM++",
        MODELS,
        r"- \*\*Frontend\*\*: (\d+)-bin Kaldi fbank.*?(\d[\d,]+) parameters in `campplus_voxceleb\.bin`.*?- "
        r"\*\*Output\*\*: "
        r"(\d+) values\. The final BatchNorm.*?- \*\*Threshold\*\*: ([\d.]+) \(the authors'\)\.",
        lambda: [
            _model("campplus").FEAT_DIM,
            _model("campplus").N_PARAMETERS,
            _model("campplus").EMBEDDING_SIZE,
            _model("campplus").THRESHOLD,
        ],
    ),
    Pin(
        "ReDimNet",
        MODELS,
        r"(\d[\d,]+) parameters \(the paper: [\d.]+ M\)\..*?which is why fp8 E3M4 \(largest finite value ([\d.]+)\) "
        r"saturates for this model\. - \*\*Threshold\*\*: ([\d.]+), found by the study",
        lambda: [
            json.loads((ROOT / "tests/fixtures/redimnet/official_layout.json").read_text())["b2"]["n_parameters"],
            float(get_format("e3m4").max_value),
            _model("redimnet").DEFAULT_THRESHOLD,
        ],
    ),
    Pin(
        "WavLM threshold",
        MODELS,
        r"- \*\*Threshold\*\*: ([\d.]+) \(the model card's\)\.",
        lambda: [_model("wavlm").DEFAULT_THRESHOLD],
    ),  # fmt: skip
    Pin(
        "Resemblyzer",
        MODELS,
        r"- \*\*Frontend\*\*: (\d+)-band power mel spectrogram, (\d+) ms window, (\d+) ms hop, after raising quiet "
        r"audio "
        r"to (-\d+) dBFS\..*?a (\d+)-layer LSTM \((\d+) hidden\), a (\d+)x(\d+) linear layer and a ReLU, on ([\d.]+) s "
        r"partial utterances;.*?(\d[\d,]+) parameters\. - \*\*Output\*\*: (\d+) values,.*?- \*\*Threshold\*\*: "
        r"([\d.]+), "
        r"a rough default",
        lambda: [
            frontends.RESEMBLYZER_N_MELS,
            1e3 * frontends.RESEMBLYZER_N_FFT / frontends.RESEMBLYZER_SAMPLE_RATE,
            1e3 * frontends.RESEMBLYZER_HOP / frontends.RESEMBLYZER_SAMPLE_RATE,
            _model("resemblyzer").TARGET_DBFS,
            _model("resemblyzer").NUM_LAYERS,
            _model("resemblyzer").HIDDEN_SIZE,
            _model("resemblyzer").HIDDEN_SIZE,
            _model("resemblyzer").EMBEDDING_SIZE,
            _model("resemblyzer").PARTIAL_FRAMES * frontends.RESEMBLYZER_HOP / frontends.RESEMBLYZER_SAMPLE_RATE,
            _resemblyzer_parameters(),
            _model("resemblyzer").EMBEDDING_SIZE,
            _model("resemblyzer").THRESHOLD,
        ],
    ),
]

PINS += [
    # --- docs/store.md: more of the layout's constants and defaults
    Pin("current layout", STORE, r"Every store created today has layout version (\d+):", lambda: [LAYOUT_VERSION]),
    Pin("newer versions", STORE, r"raises `StoreVersionError` for versions > (\d+)\)", lambda: [LAYOUT_VERSION]),
    Pin(
        "fit rows",
        STORE,
        r"fitting one that centres on the first N vectors of SRC \(default ([\d,]+)\)",
        lambda: [importlib.import_module("minifloat_store.store.convert").DEFAULT_FIT_ROWS],
    ),
    Pin(
        "zstd",
        STORE,
        r"then `zstd` \(`\{\"level\": (\d+), \"checksum\": false\}`\).*?exactly the inner chunk's bytes \(([\d,]+) × "
        r"(\d+) "
        r"for `id_ends`, ([\d,]+) for `id_blob`\)",
        lambda: [
            zarr_confined.ZSTD_LEVEL,
            zarr_backend.INNER_ROWS_1D,
            np.dtype(np.int64).itemsize,
            zarr_backend.INNER_ROWS_1D * zarr_confined.BLOB_BYTES_PER_ROW,
        ],
    ),
    Pin(
        "hdf5 compression",
        STORE,
        r"`id_ends` in chunks of (\d+)·C with the filters shuffle, deflate \(level (\d+)\), fletcher32; `id_blob` in "
        r"chunks of (\d+)·C bytes with deflate \(level (\d+)\).*?raw size plus (\d+) bytes \(what deflate adds to "
        r"incompressible data, and fletcher32's (\d+)\), so inflating one can allocate at most deflate's 1032:1 of "
        r"that "
        r"\(under (\d+) MB at C = (\d+)\)",
        lambda: [
            hdf5_backend._COMPRESSED_CHUNK_FACTOR,
            hdf5_backend.DEFLATE_LEVEL,
            hdf5_backend._COMPRESSED_CHUNK_FACTOR * hdf5_backend.BLOB_BYTES_PER_ROW,
            hdf5_backend.DEFLATE_LEVEL,
            hdf5_guard._DEFLATE_SLACK + 4,
            4,  # fletcher32's checksum
            AtMost(
                1032  # zlib's largest expansion ratio
                * (
                    hdf5_backend._COMPRESSED_CHUNK_FACTOR * hdf5_backend.BLOB_BYTES_PER_ROW * 512
                    + hdf5_guard._DEFLATE_SLACK
                    + 4
                )
                / 1e6
            ),
            hdf5_backend.DEFAULT_CHUNK_ROWS,
        ],
    ),
    Pin(
        "HDF5 version",
        STORE,
        r"file-format bounds `\(\"(v\d+)\", \"(v\d+)\"\)` \(superblock version 3\), readable by HDF5 ≥ ([\d.]+)\.",
        lambda: [*hdf5_backend.LIBVER, f"{hdf5_backend.LIBVER[0][1]}.{hdf5_backend.LIBVER[0][2:]}"],
    ),
    Pin(
        "compressed ids bound",
        STORE,
        r"with a stored size of at most its raw size plus (\d+) bytes\.",
        lambda: [hdf5_guard._DEFLATE_SLACK + 4],
    ),
    Pin(
        "digest blocks",
        STORE,
        r"a block is one zarr inner chunk of `codes`, ([\d,]+) rows, or one HDF5 chunk, (\d+) rows; ×(\d+) bytes for "
        r"`id_blob`\)",
        lambda: [zarr_backend.INNER_ROWS, hdf5_backend.DEFAULT_CHUNK_ROWS, hdf5_backend.BLOB_BYTES_PER_ROW],
    ),
]


def _source_numbers(path: str, pattern: str) -> list[str]:
    """Literals of a source file the doc describes (the synthetic design's draws, a test's bounds), as written."""
    return list(re.search(pattern, (ROOT / path).read_text()).groups())


def _format_row(name: str) -> list[Number]:
    f = get_format(name)
    sub = f.min_subnormal
    return [
        None,  # the ml_dtypes name (test_formats.py checks the codec against it)
        f.bits,
        f.exponent_bits,
        f.mantissa_bits,
        f.bias,
        float(f.max_value),
        f"2^{int(math.log2(sub))}" if sub < 0.05 else float(sub),
        None,  # inf/NaN codes: text
    ]


FORMAT_NAMES = ("e2m1", "e3m2", "e2m3", "e4m3", "e5m2", "e3m4", "fp16", "bf16", "fp32")
SYNTH = "minifloat_store/eval/data/synthetic.py"
PINS += [
    Table(
        "formats",
        FORMAT,
        "| name | ml_dtypes / numpy dtype | bits |",
        lambda: {f"`{n}`": _format_row(n) for n in FORMAT_NAMES},
    ),
    # --- docs/evaluation.md: defaults, the synthetic design's parameters and e2m1's facts
    Pin(
        "bench defaults",
        EVAL,
        r"`--n-boot` \(bootstrap resamples, default (\d+)\)",
        lambda: [
            importlib.import_module("minifloat_store.cli")
            .build_parser()
            .parse_args(["bench", "s", "--trials", "t", "--out", "o"])
            .n_boot
        ],  # fmt: skip
    ),
    Pin(
        "real voices",
        EVAL,
        r"\(about (\d+) utterances of (\d+) voices on a full install;.*?at Resemblyzer's own threshold, ([\d.]+)\.",
        lambda: [
            # "about": the corpus benchmarks/bench_accuracy.py read on this machine, to the nearest ten
            Derived.of(_bench("bench_accuracy")["datasets"]["real-relu"]["n_vectors"], 5),
            int(
                re.search(r"of (\d+) Debian voices", _bench("bench_accuracy")["datasets"]["real-relu"]["description"])[
                    1
                ]
            ),
            _model("resemblyzer").THRESHOLD,
        ],
    ),
    Pin(
        "Table 1 example",
        EVAL,
        r"as the study's Table 1 counts \(([\d,]+) x (\d+) float32 = ([\d.]+) MiB\)",
        lambda: [KNOWN_LISTS["Vox1-O"].n_trials, 512, KNOWN_LISTS["Vox1-O"].n_trials * 512 * 4 / 2**20],
    ),
    Pin(
        "4.06 bits",
        EVAL,
        r"\((\d+)-bit codes with a (\d+)-byte scale per (\d+) values are ([\d.]+) bits\)",
        lambda: [4, np.dtype(np.float32).itemsize, 512, 8 * mfs.storage_bytes(1, 512, "e2m1", "vector") / 512],
    ),
    Pin(
        "demo stores",
        EVAL,
        r"to one packed store per format x scale mode \((\d+)\)",
        lambda: [2 * (len(STUDY_ORDER) - 1)],  # every format but float32, with and without a scale
    ),
    Pin(
        "generative model",
        EVAL,
        r"A latent space of rank (\d+) is mapped to (\d+) values.*?`a` \(speaker, std (\d+)\).*?log-normal quality "
        r"factor \(sigma ([\d.]+)\).*?isotropic \(std ([\d.]+)\).*?\(([\d.]+) / ([\d.]+) for `batchnorm`, ([\d.]+) / "
        r"([\d.]+) for `nonorm`\).*?\(tests hold it in ([\d.]+)-([\d.]+) %\)",
        lambda: [
            PROFILES["batchnorm"].rank,
            PROFILES["batchnorm"].dim,
            PROFILES["batchnorm"].speaker_std,
            PROFILES["batchnorm"].quality_sigma,
            PROFILES["batchnorm"].residual_std,
            *(getattr(PROFILES[p], k) for p in ("batchnorm", "nonorm") for k in ("session_std", "utterance_std")),
            *(100 * float(v) for v in _source_numbers("tests/test_synthetic.py", r"assert ([\d.]+) < rate < ([\d.]+)")),
        ],
    ),
    Pin(
        "profiles",
        EVAL,
        r"gamma log-uniform in \[([\d.]+), ([\d.]+)\], beta ~ N\(0, ([\d.]+)\^2\).*?`m_j \+ ([\d.]+) \* skew\(z\)`, "
        r"m_j ~ "
        r"N\((-[\d.]+), ([\d.]+)\^2\), positive side scaled by ([\d.]+)",
        lambda: [
            *PROFILES["batchnorm"].gamma_range,
            PROFILES["batchnorm"].beta_std,
            PROFILES["nonorm"].spread,
            PROFILES["nonorm"].offset,
            PROFILES["nonorm"].offset_std,
            PROFILES["nonorm"].positive_slope,
        ],
    ),
    Pin(
        "e2m1 without scaling",
        EVAL,
        r"e2m1's smallest non-zero magnitude is ([\d.]+), and ([\d.]+) rounds to 0 \(a tie, to even\), so only values "
        r"below (-[\d.]+) survive, as (-[\d.]+)\..*?each vector's largest magnitude to (\d+), e2m1's maximum, and the "
        r"values spread over all (\d+) codes again\.",
        lambda: [
            get_format("e2m1").min_subnormal,
            get_format("e2m1").min_subnormal / 2,
            -get_format("e2m1").min_subnormal / 2,
            -get_format("e2m1").min_subnormal,
            float(get_format("e2m1").max_value),
            np.unique(decode_table(get_format("e2m1"))).size,  # +0 and -0 are one value
        ],
    ),
    Pin(
        "trial design",
        EVAL,
        r"(\d+) \+ Poisson\((\d+)\) sessions per speaker, at most (\d+).*?about 1 target in (\d+) drawn from the "
        r"enrolment's own session",
        lambda: [
            *_source_numbers(SYNTH, r"n_sess = int\(min\((\d+) \+ rng\.poisson\((\d+)\), (\d+),"),
            _source_numbers(SYNTH, r"rng\.binomial\(n_tar\[u\], 1 / (\d+)\)")[0],
        ],
    ),
    Pin(
        "enrolment",
        EVAL,
        r"every utterance enrolled in (\d+) trials \((\d+) target, (\d+) non-target;",
        lambda: (
            [2 * int(_source_numbers(SYNTH, r"per_enroll = (\d+)")[0])]
            + _source_numbers(SYNTH, r"per_enroll = (\d+)") * 2
        ),  # fmt: skip
    ),
    Pin(
        "model thresholds",
        EVAL,
        r"\(the authors' ([\d.]+) for CAM\+\+, ([\d.]+) for WavLM\).*?the lowest float32 threshold with FAR <= (\d+) "
        r"%, "
        r"rounded up to (\d+) decimals",
        lambda: [
            _model("campplus").THRESHOLD,
            _model("wavlm").DEFAULT_THRESHOLD,
            100 * demo.MODEL_FAR,
            inspect.signature(demo.threshold_at_far).parameters["decimals"].default,
        ],
    ),
    Pin(
        "demo stores' size",
        EVAL,
        r"Every store is ([\d,]+) vectors of (\d+) values\.",
        lambda: [inspect.signature(make_corpus).parameters["n_utterances"].default, PROFILES["nonorm"].dim],
    ),
]
