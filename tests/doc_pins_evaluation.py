"""Pins for docs/evaluation.md, docs/metrics.md and docs/reproduce.md (see doc_pins.py).

docs/evaluation.md's results tables and store sizes are checked against a fresh demo
run by test_cli_demo.py, its corpus statistics by test_synthetic.py; these pins
check the findings that quote those tables, the synthetic design's parameters,
the metrics' worked examples and the reproduction guide's defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from fractions import Fraction

import numpy as np
from doc_pins import Derived, Number, Pin, Table, load, model, pyproject_pin
from test_docs_benchmarks import ROOT, table

import minifloat_store as mfs
from minifloat_store import metrics
from minifloat_store.cli import build_parser
from minifloat_store.codec import decode_table
from minifloat_store.eval.data.synthetic import PROFILES, make_corpus
from minifloat_store.eval.pipelines import demo
from minifloat_store.eval.pipelines.extract import extract
from minifloat_store.eval.pipelines.reproduce import reproduce
from minifloat_store.eval.report.results import FormatResult
from minifloat_store.eval.report.study import STUDY_ORDER, published
from minifloat_store.eval.trials import KNOWN_LISTS
from minifloat_store.formats import get_format

PINS: list[Pin | Table] = []


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


REPRO = "docs/reproduce.md"
PINS += [
    # --- docs/reproduce.md: versions, defaults, thresholds and list sizes
    Pin("torch", REPRO, r"# CPU torch ([\d.]+), transformers", lambda: [pyproject_pin("torch").removesuffix(".0")]),
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
        lambda: [model("campplus").THRESHOLD],
    ),
    Pin(
        "extraction machine",
        REPRO,
        r"torch on one thread; a shared (\d+)-core",
        lambda: [load("bench_extract")["machine"]["cores"]],
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
            model("campplus").THRESHOLD,
            model("redimnet").DEFAULT_THRESHOLD,
            model("wavlm").DEFAULT_THRESHOLD,
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


def _source_numbers(path: str, pattern: str) -> list[str]:
    """Literals of a source file the doc describes (the synthetic design's draws, a test's bounds), as written."""
    return list(re.search(pattern, (ROOT / path).read_text()).groups())


SYNTH = "minifloat_store/eval/data/synthetic.py"
PINS += [
    # --- docs/evaluation.md: defaults, the synthetic design's parameters and e2m1's facts
    Pin(
        "bench defaults",
        EVAL,
        r"`--n-boot` \(bootstrap resamples, default (\d+)\)",
        lambda: [build_parser().parse_args(["bench", "s", "--trials", "t", "--out", "o"]).n_boot],  # fmt: skip
    ),
    Pin(
        "real voices",
        EVAL,
        r"\(about (\d+) utterances of (\d+) voices on a full install;.*?at Resemblyzer's own threshold, ([\d.]+)\.",
        lambda: [
            # "about": the corpus benchmarks/bench_accuracy.py read on this machine, to the nearest ten
            Derived.of(load("bench_accuracy")["datasets"]["real-relu"]["n_vectors"], 5),
            int(
                re.search(r"of (\d+) Debian voices", load("bench_accuracy")["datasets"]["real-relu"]["description"])[1]
            ),
            model("resemblyzer").THRESHOLD,
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
        "the study's FRR",
        EVAL,
        r"as in the study's Table 4 \(FRR ([\d.]+) % for WavLM\)",
        lambda: [published("wavlm", "Vox1-O", "e2m1", "none").frr_pct],
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
            model("campplus").THRESHOLD,
            model("wavlm").DEFAULT_THRESHOLD,
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
