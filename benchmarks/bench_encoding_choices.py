"""The two design choices of the Encoding, measured: the "vector" scale rule and the rotation for d != 2**k.

Cosine-score error (RMS over all pairs of vectors, decoded against float32)
of alternatives computed side by side on the same data:

1. Per-vector scale for int/nf codebooks after centre+rotate. ``library``:
   codes from step ``max|t|/L`` (int8, int6), ``min(max|t|/L, g_L * rms)``
   (int4 .. int2) or ``rms`` (nf), decoded with the least-squares factor. ``absmax``: step ``max|t| / max_level`` (the
   study's eq. 6 rule). ``gauss``: step ``g_L * rms`` for int, no absmax guard.
   ``no-lsq``: the library's codes decoded with the step itself.
2. Elements at each budget: every element with the per-vector scale, with
   and without centre+rotate, through the library (``mfs.quantize``), with
   its stored bits per value.
3. Rotation for a dimension that is not a power of two (the first 192
   coordinates of each vector): ``overlap`` (the library: Hadamard on the
   first and on the last 128), ``blockdiag`` (128 + 64), ``pad256`` (zero-pad
   to 256: more stored values, its bits per value are printed), ``none``.

    python benchmarks/bench_encoding_choices.py EMB.npz [--key relu,pre]    # float32 (n, d) arrays
    python benchmarks/bench_encoding_choices.py --synthetic                   # the demo's synthetic corpora
    python benchmarks/bench_encoding_choices.py EMB.npz --extract-debian-voices 10 --synthetic  # what docs quote

EMB.npz holds float32 (n, d) arrays under the given keys. ``--extract-debian-voices N``
first writes it: Resemblyzer embeddings of N utterances of every Debian voice
that has N (``eval.data.debian_voices``), after the ReLU ("relu", what the
model outputs) and before it ("pre", the same network without its last ReLU),
each averaged over partials and L2-normalised as the model does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

import minifloat_store as mfs  # noqa: E402
from minifloat_store.codebooks import get_codebook  # noqa: E402
from minifloat_store.encoding import Encoding  # noqa: E402
from minifloat_store.reference_encoding import reference_nearest  # noqa: E402
from minifloat_store.transforms import Rotation, rotation  # noqa: E402


def cosines(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    iu = np.triu_indices(x.shape[0], 1)
    return (u @ u.T)[iu]


def quantise(t: np.ndarray, element: str, rule: str) -> np.ndarray:
    """Decoded values (transformed space) of rows t with one per-vector scale rule."""
    cb = get_codebook(element)
    amax = np.abs(t).max(axis=1, keepdims=True)
    rms = np.sqrt((t.astype(np.float64) ** 2).mean(axis=1, keepdims=True))
    if rule == "absmax":
        step = amax / cb.max_level
    elif rule == "gauss" and cb.family == "int":
        step = cb.gaussian_step * rms
    elif cb.family == "int" and cb.rms_step > 0:
        step = np.minimum(amax / cb.int_max, cb.rms_step * rms)
    elif cb.family == "int":
        step = amax / cb.int_max
    else:
        step = rms
    step = np.where(step > 0, step, 1.0)
    lv = cb.table[reference_nearest((t / step).astype(np.float32), cb).astype(np.int64)].astype(np.float64)
    if rule == "no-lsq":
        return lv * step
    alpha = (t * lv).sum(axis=1, keepdims=True) / np.maximum((lv * lv).sum(axis=1, keepdims=True), 1e-300)
    return lv * alpha


def scale_rules(x: np.ndarray, elements: list[str]) -> dict[str, dict[str, float]]:
    mean = x.mean(axis=0)
    r = rotation(0, x.shape[1])
    t = r.forward((x - mean).astype(np.float64))
    ref = cosines(x)
    out: dict[str, dict[str, float]] = {}
    for el in elements:
        out[el] = {}
        for rule in ("library", "absmax", "gauss", "no-lsq"):
            y = r.inverse(quantise(t, el, rule)) + mean
            out[el][rule] = float(np.sqrt(np.mean((cosines(y) - ref) ** 2)))
    return out


ELEMENTS_BY_BUDGET = ["int8", "e4m3", "e3m4", "int6", "e2m3", "e3m2", "int4", "nf4", "e2m1", "int3", "nf3",
                      "int2", "nf2", "binary"]  # fmt: skip


def elements(x: np.ndarray) -> dict[str, dict[str, float]]:
    ref = cosines(x)
    out = {}
    for el in ELEMENTS_BY_BUDGET:
        row = {"bits_per_value": mfs.Encoding(el).bits_per_value(x.shape[1])}
        for tr in ("none", "centre+rotate"):
            enc = mfs.Encoding(el, "vector", tr).fit(x)
            row[tr] = float(np.sqrt(np.mean((cosines(mfs.quantize(x, enc)) - ref) ** 2)))
        out[el] = row
    return out


def _blockdiag(x: np.ndarray, inverse: bool) -> np.ndarray:
    a, b = Rotation(0, 128), Rotation(1, x.shape[1] - 128)
    f = (lambda r, v: r.inverse(v)) if inverse else (lambda r, v: r.forward(v))
    return np.concatenate([f(a, x[:, :128]), f(b, x[:, 128:])], axis=1)


def rotations(x: np.ndarray, element: str) -> dict[str, dict[str, float]]:
    x = x[:, :192]
    mean = x.mean(axis=0)
    c = (x - mean).astype(np.float64)
    ref = cosines(x)
    enc = Encoding(element, "vector")
    variants = {
        "overlap": (lambda v: rotation(0, 192).forward(v), lambda v: rotation(0, 192).inverse(v), 192),
        "blockdiag": (lambda v: _blockdiag(v, False), lambda v: _blockdiag(v, True), 192),
        "pad256": (
            lambda v: rotation(0, 256).forward(np.pad(v, ((0, 0), (0, 64)))),
            lambda v: rotation(0, 256).inverse(v)[:, :192],
            256,
        ),
        "none": (lambda v: v, lambda v: v, 192),
    }
    out = {}
    for name, (fwd, inv, stored) in variants.items():
        y = inv(quantise(fwd(c), element, "library")) + mean
        bits = 8 * enc.vector_bytes(stored) / 192
        out[name] = {"rms": float(np.sqrt(np.mean((cosines(y) - ref) ** 2))), "bits_per_value": bits}
    return out


def extract_debian_voices(path: str, per_voice: int) -> None:
    """Write Resemblyzer embeddings (ReLU output and pre-ReLU) of the Debian voices to ``path``."""
    import torch  # heavy optional dependency, only for this option

    from minifloat_store.eval.data import debian_voices
    from minifloat_store.eval.models import resemblyzer

    corpus = debian_voices.load_corpus(utterances_per_speaker=per_voice)
    model = resemblyzer.load()
    waves = [u.waveform for u in corpus]
    relu = model.embed_batch(waves)
    original = resemblyzer.VoiceEncoder.forward

    def without_relu(self, mels):  # the network's forward minus its final ReLU
        _, (hidden, _) = self.lstm(mels)
        raw = self.linear(hidden[-1])
        return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True)

    resemblyzer.VoiceEncoder.forward = without_relu
    try:
        pre = model.embed_batch(waves)
    finally:
        resemblyzer.VoiceEncoder.forward = original
    np.savez(path, relu=relu, pre=pre, speaker=np.array([u.speaker for u in corpus]))
    print(f"wrote {path}: {len(corpus)} utterances of {len({u.speaker for u in corpus})} voices")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("npz", nargs="?", help="float32 (n, d) embeddings")
    ap.add_argument("--key", default="relu,pre", help="arrays of the npz to use")
    ap.add_argument("--extract-debian-voices", type=int, metavar="N", help="first write NPZ from the Debian voices")
    ap.add_argument("--synthetic", action="store_true", help="use the demo's synthetic corpora (1,000 vectors each)")
    ap.add_argument("--out", default="bench_encoding_choices")
    args = ap.parse_args()
    if args.extract_debian_voices:
        if not args.npz:
            ap.error("--extract-debian-voices needs the NPZ path to write")
        extract_debian_voices(args.npz, args.extract_debian_voices)
    sets: dict[str, np.ndarray] = {}
    if args.synthetic or not args.npz:
        from minifloat_store.eval.data.synthetic import make_corpus

        for prof in ("batchnorm", "nonorm"):
            sets[f"synthetic-{prof}"] = make_corpus(prof, n_utterances=1000, n_targets=10, n_nontargets=10).embeddings
    if args.npz:
        data = np.load(args.npz)
        for k in args.key.split(","):
            sets[k] = np.asarray(data[k], dtype=np.float32)
    rule_elements = ["int8", "int6", "int4", "nf4", "int3", "nf3", "int2", "nf2"]
    results = {}
    for name, x in sets.items():
        print(f"\n{name}: {x.shape[0]} vectors x {x.shape[1]}, {x.shape[0] * (x.shape[0] - 1) // 2} pairs")
        rules = scale_rules(x, rule_elements)
        print(f"  per-vector scale, centre+rotate: RMS cosine error x 1e3\n  {'element':<7}" +
              "".join(f"{r:>10}" for r in ("library", "absmax", "gauss", "no-lsq")))  # fmt: skip
        for el, row in rules.items():
            print(f"  {el:<7}" + "".join(f"{1e3 * v:>10.3f}" for v in row.values()))
        elems = elements(x)
        print(
            f"  elements, scale 'vector': RMS cosine error x 1e3\n  {'element':<7} {'bits':>6} {'none':>8} {'c+r':>8}"
        )
        for el, row in elems.items():
            print(
                f"  {el:<7} {row['bits_per_value']:>6.3f} {1e3 * row['none']:>8.3f} {1e3 * row['centre+rotate']:>8.3f}"
            )
        rots = {el: rotations(x, el) for el in ("nf4", "int4", "nf3")} if x.shape[1] >= 192 else {}
        if rots:
            print("  rotation of the first 192 coordinates (centred, vector scale): RMS x 1e3 (bits/value)")
            for el, row in rots.items():
                print(f"  {el:<7}" + "".join(f"  {k} {1e3 * v['rms']:.3f} ({v['bits_per_value']:.2f})"
                                             for k, v in row.items()))  # fmt: skip
        results[name] = {
            "scale_rules": rules,
            "elements": elems,
            "rotations": rots,
            "n": int(x.shape[0]),
            "d": int(x.shape[1]),
        }
    print(f"\nwrote {save(args.out, {'results': results})}")


if __name__ == "__main__":
    main()
