"""What a biometric user feels from each encoding: score error, flipped decisions, EER, against float32 and FAISS.

Four datasets, one run:

* ``real-relu`` / ``real-prerelu``: Resemblyzer (its published weights, from the
  installed ``resemblyzer`` package, loaded without importing it) over every
  utterance :mod:`minifloat_store.eval.debian_voices` makes from Debian's
  ``ktuberling-data`` and ``klettres-data``; the normal (ReLU) output and the
  output of the same final linear layer before its ReLU. Embeddings are cached
  under ``--cache-dir`` (default ``~/.cache/minifloat-store/bench_accuracy``) and
  made again when absent.
* ``synth-batchnorm`` / ``synth-nonorm``: the two profiles of
  :mod:`minifloat_store.eval.synthetic` (``--synthetic-utterances`` utterances).

Protocol (the same for every encoding and baseline): rows are taken in corpus
order (grouped by speaker); the **odd rows** are the fitting split (the mean of
``centre``, FAISS training) and are never scored; the **even rows** are scored.
Trials: every same-speaker pair of even rows and, when there are more than
``--max-nontargets`` different-speaker pairs, a seeded uniform sample of them.

Per encoding: stored bits/value; RMS of the cosine-score error against float32
over all trials; the fraction of trials whose accept/reject decision changes at
the float32 EER threshold; EER and ΔEER with a paired, class-stratified
bootstrap 95 % interval (:mod:`minifloat_store.eval.fidelity`). Encodings are
``mfs.quantize`` of the raw vectors (today's formats with scale none/vector, and,
when ``mfs.Encoding`` exists, every element x scale x transform it accepts,
fitted on the fitting split). FAISS quantisers get the L2-normalised vectors
(the usual FAISS set-up for cosine), are trained on the fitting split, decoded
with ``sa_encode``/``sa_decode`` and scored with the same cosine; their
bits/value is ``8 * sa_code_size() / d``.

Ratios: each encoding's RMS (and flips) over the smallest RMS (and flips) of a
FAISS quantiser of the same bit class (classes 1, 2, 3, 4, 6, 8, 16 bits: at
most the class + 0.65 stored bits/value).

    python benchmarks/bench_accuracy.py [--n-boot 200] [--skip-real] [--no-faiss]

Writes benchmarks/results/bench_accuracy.json and bench_accuracy_pareto.png.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, save  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store import fidelity  # noqa: E402
from minifloat_store.eval import baselines  # noqa: E402
from minifloat_store.eval.data import debian_voices, synthetic  # noqa: E402
from minifloat_store.metrics import eer  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "minifloat-store" / "bench_accuracy"
BIT_CLASSES = (1, 2, 3, 4, 6, 8, 16)
CLASS_SLACK = 0.65  # scales and norms on top of the codes: 4.65 bits/value is still "4-bit"
TODAY_FORMATS = ("e2m1", "e3m2", "e2m3", "e4m3", "e5m2", "e3m4", "fp16", "bf16")
NEW_ELEMENTS = ("int8", "int6", "int4", "int3", "int2", "nf4", "nf3", "nf2", "binary")
SCALES = ("none", "vector", "block32", "block16")
TRANSFORMS = ("none", "centre", "rotate", "centre+rotate")
REAL_CACHE_VERSION = 1  # bump when the corpus or extraction changes


@dataclass
class Dataset:
    """One dataset: the vectors, who spoke them, the split and the trials (indices into ``x``)."""

    name: str
    description: str
    x: np.ndarray  # (n, d) float32, as the model outputs them
    speakers: np.ndarray  # (n,) int64
    fit_rows: np.ndarray  # odd rows: fitting / training split, never scored
    score_rows: np.ndarray  # even rows
    enroll: np.ndarray  # (t,) int64 row of x
    test: np.ndarray  # (t,) int64
    labels: np.ndarray  # (t,) bool


# ---------------------------------------------------------------- data


def _real_cache_key() -> dict[str, Any]:
    from minifloat_store.eval.models import resemblyzer as rz

    voices = debian_voices.find_voices()
    clips = hashlib.sha256("\n".join(str(c) for v in voices for c in v.clips).encode()).hexdigest()
    return {
        "version": REAL_CACHE_VERSION,
        "weights_sha256": rz.WEIGHTS.sha256,
        "voices": [v.speaker for v in voices],
        "clips_sha256": clips,
    }


def real_embeddings(cache_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Resemblyzer embeddings of every Debian-voices utterance, ReLU and pre-ReLU; cached.

    Returns
    -------
    dict
        ``{"relu": (ids, speakers, x), "prerelu": (ids, speakers, x)}``; ids and
        speakers are str arrays of shape (n,), x float32 (n, 256), unit norm.
    """
    if not debian_voices.is_available():
        raise SystemExit("Debian's voices are missing: apt-get install ktuberling-data klettres-data")
    key = _real_cache_key()
    path = cache_dir / "resemblyzer_debian_voices.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) == key:
                return {k: (z["ids"], z["speakers"], z[k]) for k in ("relu", "prerelu")}
        print(f"{path}: made from other voices, weights or code; making it again")

    import torch  # heavy; only when the cache is absent
    from tqdm import tqdm

    from minifloat_store.eval.models import resemblyzer as rz

    torch.set_num_threads(1)  # on a shared 2-core machine one thread is several times faster than two
    utterances = []
    for voice in tqdm(debian_voices.find_voices(), desc="reading voices", unit="voice"):
        utterances += debian_voices.load_corpus(voices=[voice], utterances_per_speaker=None)
    ids = np.array([u.utterance_id for u in utterances])
    speakers = np.array([u.speaker for u in utterances])
    out: dict[str, np.ndarray] = {}
    for name, relu in (("relu", True), ("prerelu", False)):
        model = rz.load(relu=relu)
        batches = [utterances[i : i + 8] for i in range(0, len(utterances), 8)]
        rows = [
            model.embed_batch([u.waveform for u in b])
            for b in tqdm(batches, desc=f"Resemblyzer {name}", unit="batch of 8")
        ]
        out[name] = np.concatenate(rows).astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, key=json.dumps(key), ids=ids, speakers=speakers, **out)
    tmp.replace(path)
    return {k: (ids, speakers, out[k]) for k in out}


def _split_and_trials(
    name: str, description: str, x: np.ndarray, speakers: np.ndarray, max_nontargets: int, seed: int
) -> Dataset:
    """Odd rows fit, even rows are scored: every same-speaker pair, different-speaker pairs up to a cap."""
    n = x.shape[0]
    fit_rows, score_rows = np.arange(1, n, 2), np.arange(0, n, 2)
    spk = speakers[score_rows]
    a, b = np.triu_indices(score_rows.size, k=1)
    same = spk[a] == spk[b]
    non = np.flatnonzero(~same)
    if non.size > max_nontargets:
        non = np.sort(np.random.default_rng(seed).choice(non, max_nontargets, replace=False))
    keep = np.r_[np.flatnonzero(same), non]
    return Dataset(name, description, x, speakers, fit_rows, score_rows, a[keep], b[keep], same[keep])


def load_datasets(args: argparse.Namespace) -> list[Dataset]:
    out = []
    if not args.skip_real:
        real = real_embeddings(args.cache_dir)
        for key, what in (("relu", "ReLU output (as published)"), ("prerelu", "pre-ReLU output of the last layer")):
            ids, speakers, x = real[key]
            _, spk = np.unique(speakers, return_inverse=True)
            desc = (
                f"Resemblyzer {what} over {len(ids)} utterances of {spk.max() + 1} Debian voices "
                "(ktuberling-data, klettres-data)"
            )
            out.append(_split_and_trials(f"real-{key}", desc, x, spk, args.max_nontargets, args.seed))
    if not args.skip_synthetic:
        for profile in ("batchnorm", "nonorm"):
            c = synthetic.make_corpus(
                profile, seed=args.seed, n_utterances=args.synthetic_utterances, n_targets=100, n_nontargets=100
            )
            desc = (
                f"synthetic profile {profile!r} ({c.profile.imitates}), {c.embeddings.shape[0]} utterances "
                f"of {int(c.speakers.max()) + 1} speakers, dim {c.embeddings.shape[1]}"
            )
            out.append(
                _split_and_trials(
                    f"synth-{profile}", desc, np.asarray(c.embeddings), c.speakers, args.max_nontargets, args.seed
                )
            )
    return out


# ---------------------------------------------------------------- encodings and baselines


@dataclass
class Method:
    name: str
    kind: str  # "today" (mfs.quantize(x, fmt, scale)), "encoding" (mfs.Encoding), "faiss"
    bits_per_value: float
    decoded: np.ndarray  # (n_scored, d) float32


def bit_class(bits: float) -> int | None:
    """The smallest class b of BIT_CLASSES with bits <= b + 0.65; None above (fp32)."""
    return next((c for c in BIT_CLASSES if bits <= c + CLASS_SLACK), None)


def today_methods(ds: Dataset) -> list[Method]:
    x = ds.x[ds.score_rows]
    d = x.shape[1]
    out = []
    for fmt, scale in itertools.product(TODAY_FORMATS, ("none", "vector")):
        bits = 8 * mfs.storage_bytes(1, d, fmt, scale) / d
        out.append(Method(f"{fmt}/{scale}", "today", bits, mfs.quantize(x, fmt, scale=scale)))
    return out


def _encoding_api() -> tuple[Any, Any] | None:
    """(Encoding class, quantize(x, enc)), from ``mfs`` or, while the codec does not dispatch yet, its modules."""
    if hasattr(mfs, "Encoding"):
        return mfs.Encoding, mfs.quantize
    try:  # the accuracy-10 branch before mfs exports it: the same objects under their module names
        from minifloat_store.encoding import Encoding
        from minifloat_store.encoding_codec import decode_with, encode_with
    except ImportError:
        return None
    return Encoding, lambda x, enc: decode_with(encode_with(x, enc))


def encoding_methods(ds: Dataset, skipped: list[str]) -> list[Method]:
    """Every element x scale x transform mfs.Encoding accepts, fitted on the fitting split."""
    api = _encoding_api()
    if api is None:
        return []
    encoding_class, quantize = api
    x_fit, x = ds.x[ds.fit_rows], ds.x[ds.score_rows]
    d = x.shape[1]
    out = []
    for element, scale, transform in itertools.product(TODAY_FORMATS + NEW_ELEMENTS, SCALES, TRANSFORMS):
        if element in TODAY_FORMATS and scale in ("none", "vector") and transform == "none":
            continue  # the same bytes as today's encode(x, fmt, scale), measured above
        if element in NEW_ELEMENTS and scale == "none":
            continue  # integer and normal-float levels are meant for a scaled input; unscaled is not a choice
        name = f"{element}/{scale}/{transform}"
        try:
            enc = encoding_class(element, scale=scale, transform=transform, seed=0).fit(x_fit)
        except ValueError as exc:
            skipped.append(f"{ds.name}: {name}: {exc}")
            continue
        out.append(Method(name, "encoding", enc.bits_per_value(d), np.asarray(quantize(x, enc))))
    return out


def faiss_specs(d: int) -> list[str]:
    """index_factory strings; PQ at the byte budget of each class (8-bit sub-codes where the split is even)."""
    specs = ["SQfp16", "SQbf16", "SQ8", "SQ6", "SQ4"]
    specs += [f"RR,SQtqmse{b}" for b in (8, 4, 3, 2, 1)]
    specs += [f"EDEN{b}" for b in (8, 4, 3, 2, 1)] + ["RaBitQ"]
    for b in (8, 6, 4, 3, 2, 1):
        m = b * d // 8
        specs.append(f"PQ{m}x8" if (b * d) % 8 == 0 and d % m == 0 else f"PQ{d}x{b}")
    return specs


def faiss_methods(ds: Dataset, skipped: list[str]) -> list[Method]:
    """Every FAISS spec, trained on the fitting split, through the library's driver (eval.baselines)."""
    import faiss  # heavy optional dependency

    faiss.omp_set_num_threads(1)
    x_fit, x = ds.x[ds.fit_rows], ds.x[ds.score_rows]
    out = []
    for spec in faiss_specs(x.shape[1]):
        try:
            y, bits = baselines.faiss_quantize(spec, x_fit, x)
        except ValueError as exc:
            skipped.append(f"{ds.name}: {exc}")
            continue
        out.append(Method(f"FAISS {spec}", "faiss", bits, y))
    return out


# ---------------------------------------------------------------- measuring


def measure(ds: Dataset, methods: list[Method], n_boot: int, seed: int) -> dict[str, Any]:
    x = ds.x[ds.score_rows]
    ref = fidelity.cosine_scores(x, ds.enroll, ds.test)
    eer_ref, thr = eer(ref, ds.labels)
    scores = np.stack([fidelity.cosine_scores(m.decoded, ds.enroll, ds.test) for m in methods])
    ref_boot = fidelity.bootstrap_eers(ds.labels, ref, n_boot, seed)
    boots = np.concatenate(
        [fidelity.bootstrap_eers(ds.labels, scores[i : i + 32], n_boot, seed) for i in range(0, len(methods), 32)]
    )
    rows = []
    for m, s, boot in zip(methods, scores, boots, strict=True):
        e = eer(s, ds.labels)[0]
        lo, hi = np.quantile(boot - ref_boot, [0.025, 0.975])
        rows.append(
            {
                "name": m.name,
                "kind": m.kind,
                "bits_per_value": m.bits_per_value,
                "bit_class": bit_class(m.bits_per_value),
                "rms_score_error": fidelity.rms_score_error(ref, s),
                "flips": fidelity.decision_flips(ref, s, thr),
                "eer": e,
                "delta_eer": e - eer_ref,
                "delta_eer_lo": float(lo),
                "delta_eer_hi": float(hi),
            }
        )
    best = {}
    for c in BIT_CLASSES:
        pool = [r for r in rows if r["kind"] == "faiss" and r["bit_class"] == c]
        if pool:
            by_rms = min(pool, key=lambda r: r["rms_score_error"])
            by_flips = min(pool, key=lambda r: r["flips"])
            best[c] = {"rms": by_rms["rms_score_error"], "rms_name": by_rms["name"]}
            best[c] |= {"flips": by_flips["flips"], "flips_name": by_flips["name"]}
    for r in rows:
        b = best.get(r["bit_class"])
        r["rms_ratio_to_best_faiss"] = r["rms_score_error"] / b["rms"] if b and b["rms"] > 0 else None
        r["flips_ratio_to_best_faiss"] = r["flips"] / b["flips"] if b and b["flips"] > 0 else None
    return {
        "description": ds.description,
        "n_vectors": int(ds.x.shape[0]),
        "dim": int(ds.x.shape[1]),
        "n_fit": int(ds.fit_rows.size),
        "n_scored": int(ds.score_rows.size),
        "n_targets": int(ds.labels.sum()),
        "n_nontargets": int((~ds.labels).sum()),
        "eer_float32": eer_ref,
        "threshold_float32_eer": thr,
        "best_faiss_per_class": {str(c): v for c, v in best.items()},
        "rows": rows,
    }


# ---------------------------------------------------------------- output


def _ratio(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}x"


def print_table(name: str, res: dict[str, Any], top: int) -> None:
    """Per bit class: the best FAISS, today's formats, every FAISS row and the ``top`` best by RMS."""
    print(f"\n== {name}: {res['description']}")
    print(
        f"   {res['n_fit']} vectors fit / train, {res['n_scored']} scored; {res['n_targets']} target + "
        f"{res['n_nontargets']} non-target trials; float32 EER {100 * res['eer_float32']:.2f} % "
        f"at threshold {res['threshold_float32_eer']:.4f}"
    )
    head = (
        f"   {'encoding':<30} {'bits/val':>8} {'RMS err':>9} {'xFAISS':>7} {'flips %':>8} {'xFAISS':>7} "
        f"{'EER %':>6} {'ΔEER pt [95 %]':>22}"
    )
    for c in (*BIT_CLASSES[::-1], None):
        rows = sorted((r for r in res["rows"] if r["bit_class"] == c), key=lambda r: r["rms_score_error"])
        if not rows:
            continue
        best = res["best_faiss_per_class"].get(str(c))
        label = f"{c}-bit class (<= {c + CLASS_SLACK:.2f} bits/value)" if c else "wider"
        extra = f"; best FAISS by RMS: {best['rms_name']}, by flips: {best['flips_name']}" if best else ""
        print(f"\n  {label}{extra}")
        print(head)
        shown = [r for i, r in enumerate(rows) if i < top or r["kind"] != "encoding"]
        for r in shown:
            delta = f"{100 * r['delta_eer']:+.2f} [{100 * r['delta_eer_lo']:+.2f}, {100 * r['delta_eer_hi']:+.2f}]"
            print(
                f"   {r['name']:<30} {r['bits_per_value']:>8.3f} {r['rms_score_error']:>9.5f} "
                f"{_ratio(r['rms_ratio_to_best_faiss']):>7} {100 * r['flips']:>8.3f} "
                f"{_ratio(r['flips_ratio_to_best_faiss']):>7} {100 * r['eer']:>6.2f} {delta:>22}"
            )
        if len(shown) < len(rows):
            print(f"   ... {len(rows) - len(shown)} more new encodings in the JSON")


def print_summary(results: dict[str, Any]) -> None:
    """Per dataset and bit class: the best library encoding (today's, and any), against the best FAISS."""
    print("\n== Summary: best by RMS score error in each bit class (flips at the float32 EER threshold)")
    for name, res in results.items():
        print(f"\n  {name} (float32 EER {100 * res['eer_float32']:.2f} %)")
        print(
            f"   {'class':>5}  {'best library encoding':<28} {'bits':>5} {'RMS':>8} {'flips %':>7}  "
            f"{'best of today':<14} {'RMS':>8} {'flips %':>7}  {'best FAISS':<18} {'RMS':>8} {'flips %':>7}  "
            f"{'RMS ratio':>9}"
        )
        for c in BIT_CLASSES[:-1][::-1]:
            rows = [r for r in res["rows"] if r["bit_class"] == c]
            lib = [r for r in rows if r["kind"] != "faiss"]
            today = [r for r in rows if r["kind"] == "today"]
            faiss_rows = [r for r in rows if r["kind"] == "faiss"]

            def cell(pool: list[dict[str, Any]], width: int) -> tuple[str, dict[str, Any] | None]:
                if not pool:
                    return f"{'-':<{width}} {'':>8} {'':>7}", None
                r = min(pool, key=lambda r: r["rms_score_error"])
                return f"{r['name']:<{width}} {r['rms_score_error']:>8.5f} {100 * r['flips']:>7.3f}", r

            lib_text, best_lib = cell(lib, 28)
            if best_lib is not None:
                lib_text = (
                    f"{best_lib['name']:<28} {best_lib['bits_per_value']:>5.2f} {best_lib['rms_score_error']:>8.5f} "
                    f"{100 * best_lib['flips']:>7.3f}"
                )
            else:
                lib_text = f"{'-':<28} {'':>5} {'':>8} {'':>7}"
            today_text, _ = cell(today, 14)
            faiss_text, best_faiss = cell(faiss_rows, 18)
            ratio = (
                f"{best_lib['rms_score_error'] / best_faiss['rms_score_error']:.2f}x"
                if best_lib and best_faiss and best_faiss["rms_score_error"] > 0
                else ""
            )
            print(f"   {c:>5}  {lib_text}  {today_text}  {faiss_text.replace('FAISS ', '')}  {ratio:>9}")


def pareto_png(results: dict[str, Any], path: Path) -> None:
    import matplotlib  # heavy optional dependency

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(2, len(names), figsize=(5 * len(names), 9), squeeze=False)
    styles = {"today": ("o", "tab:blue", "today's formats"), "encoding": (".", "tab:green", "mfs.Encoding")}
    styles["faiss"] = ("x", "tab:red", "FAISS")
    floor = 1e-6  # a lossless encoding's zero error, drawn on the axis
    for j, name in enumerate(names):
        rows = [r for r in results[name]["rows"] if r["bits_per_value"] <= 17]
        for i, (key, label) in enumerate((("rms_score_error", "RMS cosine-score error"), ("flips", "flips"))):
            ax = axes[i, j]
            for kind, (marker, color, text) in styles.items():
                pts = [(r["bits_per_value"], max(r[key], floor)) for r in rows if r["kind"] == kind]
                if pts:
                    ax.scatter(*zip(*pts, strict=True), marker=marker, color=color, label=text, s=18, alpha=0.7)
            # the frontier: points no other point beats on both bits and error
            front, best = [], np.inf
            for r in sorted(rows, key=lambda r: (r["bits_per_value"], r[key])):
                if r[key] < best:
                    front.append(r)
                    best = r[key]
            fx = [r["bits_per_value"] for r in front]
            fy = [max(r[key], floor) for r in front]
            ax.step(fx, fy, where="post", color="black", lw=1)
            for r in front:
                ax.annotate(r["name"], (r["bits_per_value"], max(r[key], floor)), fontsize=6, rotation=20)
            ax.set_yscale("log")
            ax.set_xlabel("stored bits / value")
            ax.set_ylabel(label + (" (fraction of trials)" if key == "flips" else ""))
            ax.set_title(f"{name}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if i == 0 and j == 0:
                ax.legend(fontsize=8)
    fig.suptitle("Bits per value against score error and decision flips vs float32 (frontier in black)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _encoding_source() -> dict[str, Any]:
    """Which code measured the encodings: has mfs.Encoding, and the git commit of the package imported."""
    import subprocess

    src = Path(mfs.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    api = _encoding_api()
    return {
        "has_encoding_api": api is not None,
        "via": None if api is None else ("mfs.Encoding" if hasattr(mfs, "Encoding") else "minifloat_store.encoding"),
        "git_commit": commit,
        "uncommitted_changes": dirty,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where real embeddings are cached")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples for the ΔEER interval")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-utterances", type=int, default=1200)
    p.add_argument("--max-nontargets", type=int, default=60_000)
    p.add_argument("--top", type=int, default=6, help="new encodings printed per bit class (all are in the JSON)")
    p.add_argument("--skip-real", action="store_true")
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--no-faiss", action="store_true")
    p.add_argument("--name", default="bench_accuracy", help="results/NAME.json and results/NAME_pareto.png")
    p.add_argument("--from-json", type=Path, help="print the tables and summary of a saved run, measure nothing")
    args = p.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        for name, res in saved["datasets"].items():
            print_table(name, res, args.top)
        print_summary(saved["datasets"])
        print(f"\nencodings measured with: {saved['encodings']}")
        return 0

    source = _encoding_source()
    print(
        f"Encoding API available: {source['has_encoding_api']} (via {source['via']}; package at commit "
        f"{str(source['git_commit'])[:10]}{' with uncommitted changes' if source['uncommitted_changes'] else ''})"
    )
    results: dict[str, Any] = {}
    skipped: list[str] = []
    for ds in load_datasets(args):
        t0 = time.perf_counter()
        methods = today_methods(ds) + encoding_methods(ds, skipped)
        if not args.no_faiss:
            methods += faiss_methods(ds, skipped)
        results[ds.name] = measure(ds, methods, args.n_boot, args.seed)
        print_table(ds.name, results[ds.name], args.top)
        print(f"   ({len(methods)} encodings measured in {time.perf_counter() - t0:.0f} s)")
    print_summary(results)
    if skipped:
        print("\nNot measured:\n  " + "\n  ".join(skipped))
    payload = {
        "protocol": {
            "fit": "odd rows (centring mean, FAISS training); never scored",
            "scored": "even rows; every same-speaker pair, different-speaker pairs up to max_nontargets (seeded)",
            "faiss_input": "L2-normalised vectors, METRIC_INNER_PRODUCT, sa_encode / sa_decode",
            "flips_threshold": "float32 EER threshold of the scored trials, accept when score >= threshold",
            "delta_eer_interval": "paired class-stratified bootstrap, 2.5 / 97.5 % quantiles",
            "bit_classes": {str(c): c + CLASS_SLACK for c in BIT_CLASSES},
            "rates": "fractions (not percent)",
        },
        "n_boot": args.n_boot,
        "seed": args.seed,
        "encodings": source,
        "skipped": skipped,
        "datasets": results,
    }
    path = save(args.name, payload)
    png = RESULTS / f"{args.name}_pareto.png"
    pareto_png(results, png)
    print(f"\nwrote {path} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
