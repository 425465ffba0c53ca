"""Pins for README.md, docs/store.md, docs/format.md and docs/models.md (see doc_pins.py)."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re

import numpy as np
from doc_pins import F32, AtMost, Derived, Number, Pin, Table, from_test_module, load, model, pyproject_pin
from test_docs_benchmarks import ROOT

import minifloat_store as mfs
from minifloat_store import choose, fidelity
from minifloat_store.codebooks import GAUSSIAN_STEP, get_codebook
from minifloat_store.codec import decode_table
from minifloat_store.eval.baselines import DEFAULT_BASELINES
from minifloat_store.eval.models import frontends
from minifloat_store.eval.pipelines import demo
from minifloat_store.eval.report.study import published
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


def _family(prefix: str) -> list[str]:
    """Bit counts of ``bench --baselines``' FAISS quantisers named ``prefix<bits>``, as listed."""
    return [s.removeprefix(prefix) for s in DEFAULT_BASELINES if re.fullmatch(rf"{re.escape(prefix)}\d+", s)]


def _shrink(fmt: str, d: int = 192) -> Derived:
    """How many times smaller than float32 ``fmt`` with a per-vector scale is ("shrinks 4-8x"): an integer printed."""
    return Derived.of(mfs.storage_bytes(1, d, "fp32", "none") / mfs.storage_bytes(1, d, fmt, "vector"), 0.5)


PINS += [
    # --- README.md: versions, defaults and the benchmark numbers its prose quotes
    Pin("torch pin", README, r"installs the CPU build of `torch==([\d.]+)`", lambda: [pyproject_pin("torch")]),
    Pin(
        "demo seed",
        README,
        r"`minifloat-store demo` prints \(synthetic data, seed (\d+),",
        lambda: [inspect.signature(demo.run_demo).parameters["seed"].default],
    ),
    Pin("shrinks", README, r"database shrinks (\d+)-(\d+)x while", lambda: [_shrink("e4m3"), _shrink("e2m1")]),
    Pin(
        "block sizes",
        README,
        r"shared power of two per (\d+) values; `block16`, NVFP4's E4M3 scale per (\d+) values",
        lambda: [mfs.Encoding("int4", scale=s).block_size for s in ("block32", "block16")],
    ),
    # README's store size (worst ratio at 192 and 256 values): tests/test_docs_benchmarks.py
    Pin(
        "search run",
        README,
        r"On (\d+) M x (\d+) vectors, on a (\d+)-core machine .*?with recall@(\d+) = ([\d.]+) against brute force",
        lambda: [
            load("bench_search")["rows"] / 1e6,
            load("bench_search")["dim"],
            load("bench_search")["machine"]["cores"],
            load("bench_search")["k"],
            load("bench_search")["targets"]["e2m1_recall_at_10_vs_decoded"],
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


def _resemblyzer_parameters() -> int:
    """The GE2E encoder's parameters from its sizes: LSTM, linear layer, GE2E's similarity weight and bias."""
    rz, n_mels = model("resemblyzer"), frontends.RESEMBLYZER_N_MELS
    h = rz.HIDDEN_SIZE
    lstm = sum(4 * h * ((n_mels if i == 0 else h) + h) + 2 * 4 * h for i in range(rz.NUM_LAYERS))
    return lstm + h * rz.EMBEDDING_SIZE + rz.EMBEDDING_SIZE + 2


MODELS = "docs/models.md"
REDIMNET_ROWS = (
    "b0-vox2-ft_lm",
    "b1-vox2-ft_lm",
    "**b2-vox2-ft_lm** (default)",
    *(f"b{i}-vox2-ft_lm" for i in (3, 4, 5, 6)),
    "M-vb2+vox2+cnc-ft_mix",
    "S-vb2+vox2+cnc-ft_mix",
)
PINS += [
    # --- docs/models.md: the prose's constants (the table's are pinned above)
    Pin("torch", MODELS, r"\(CPU torch ([\d.]+),", lambda: [pyproject_pin("torch").removesuffix(".0")]),
    Pin(
        "CAM++",
        MODELS,
        r"- \*\*Frontend\*\*: (\d+)-bin Kaldi fbank.*?(\d[\d,]+) parameters in `campplus_voxceleb\.bin`.*?- "
        r"\*\*Output\*\*: "
        r"(\d+) values\. The final BatchNorm.*?- \*\*Threshold\*\*: ([\d.]+) \(the authors'\)\.",
        lambda: [
            model("campplus").FEAT_DIM,
            model("campplus").N_PARAMETERS,
            model("campplus").EMBEDDING_SIZE,
            model("campplus").THRESHOLD,
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
            model("redimnet").DEFAULT_THRESHOLD,
        ],
    ),
    Pin(
        "ReDimNet frontend",
        MODELS,
        r"pre-emphasis ([\d.]+) with reflect padding; centred (\d+)-point STFT with a (\d+)-sample periodic Hamming "
        r"window.*?HTK mel filterbank, (\d+) bands over (\d+)-(\d+) Hz, no area normalisation;",
        lambda: [
            inspect.signature(model("redimnet").PreEmphasis.__init__).parameters["coef"].default,
            model("redimnet")._MEL_DEFAULTS["n_fft"],
            model("redimnet")._MEL_DEFAULTS["win_length"],
            model("redimnet")._WRAP_DEFAULTS["F"],
            model("redimnet")._MEL_DEFAULTS["f_min"],
            model("redimnet")._MEL_DEFAULTS["f_max"],
        ],
    ),
    Pin(
        "ReDimNet published EERs",  # an indented table: read as text, row by row
        MODELS,
        "".join(rf"\| {re.escape(key)} \| ([\d.*]+) \| ([\d.*]+) \| ([\d.*]+) \| " for key in REDIMNET_ROWS),
        lambda: [
            v
            for key in REDIMNET_ROWS
            for v in model("redimnet").PUBLISHED_EER[tuple(key.replace("**", "").removesuffix(" (default)").split("-"))]
        ],
    ),
    Pin(
        "WavLM threshold",
        MODELS,
        r"- \*\*Threshold\*\*: ([\d.]+) \(the model card's\)\.",
        lambda: [model("wavlm").DEFAULT_THRESHOLD],
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
            model("resemblyzer").TARGET_DBFS,
            model("resemblyzer").NUM_LAYERS,
            model("resemblyzer").HIDDEN_SIZE,
            model("resemblyzer").HIDDEN_SIZE,
            model("resemblyzer").EMBEDDING_SIZE,
            model("resemblyzer").PARTIAL_FRAMES * frontends.RESEMBLYZER_HOP / frontends.RESEMBLYZER_SAMPLE_RATE,
            _resemblyzer_parameters(),
            model("resemblyzer").EMBEDDING_SIZE,
            model("resemblyzer").THRESHOLD,
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
PINS += [
    Table(
        "formats",
        FORMAT,
        "| name | ml_dtypes / numpy dtype | bits |",
        lambda: {f"`{n}`": _format_row(n) for n in FORMAT_NAMES},
    ),
]
