"""The demo on real speech: Resemblyzer over Debian's recorded voices -> store -> report, offline.

The recordings are the spoken words of two KDE games that Debian packages
(``apt-get install ktuberling-data klettres-data``), made into 3-6 s utterances
of about 30 voices by :mod:`minifloat_store.eval.data.debian_voices`.
Resemblyzer embeds them with its published weights, read from its PyPI
package's files (``pip install resemblyzer``; the package is never imported)
on torch (``pip install 'minifloat-store[models]'``). Nothing is downloaded.

Output, in ``OUT/real-voices/``::

    report.md, results.csv, results.json, fidelity.csv, *.png   the report (as ``bench`` writes it)
    trials.txt                                                  every same-voice pair, different-voice pairs
    stores/fp32.zarr                                            the float32 embeddings

The operating threshold is Resemblyzer's own (0.75, :data:`~minifloat_store.eval.models.resemblyzer.THRESHOLD`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from minifloat_store.eval.data import debian_voices
from minifloat_store.eval.report import ReportResult, run_report, write_report
from minifloat_store.eval.trials import Trials
from minifloat_store.store import EmbeddingStore

__all__ = ["INSTALL_HINT", "MissingRealVoicesError", "check_real_voices", "real_voices_trials", "run_real_voices"]

INSTALL_HINT = (
    "the real-voices demo needs Debian's recorded voices (apt-get install ktuberling-data klettres-data), "
    "torch (pip install 'minifloat-store[models]') and the resemblyzer package, whose files hold the "
    "weights (pip install resemblyzer)"
)

#: Different-voice pairs kept at most (a seeded sample when there are more).
MAX_NONTARGETS = 100_000

REAL_NOTE = (
    "**Real speech.** Resemblyzer (published weights, {relu}) over {n} utterances of {voices} voices "
    "recorded for Debian's ktuberling-data and klettres-data (`minifloat_store.eval.data.debian_voices`: "
    "one voice per language, 3-6 s utterances of joined words). A voice is one recording session of one "
    "language, a good but not certain proxy for one person."
)


class MissingRealVoicesError(FileNotFoundError):
    """What the real-voices demo needs is not installed; the message says how to install it."""


def check_real_voices() -> None:
    """Raise :class:`MissingRealVoicesError` naming what is missing and how to install it."""
    missing = []
    if not debian_voices.is_available():
        missing.append("Debian's voices: apt-get install ktuberling-data klettres-data")
    if importlib.util.find_spec("torch") is None:
        missing.append("torch: pip install 'minifloat-store[models]'")
    if importlib.util.find_spec("resemblyzer") is None:
        missing.append("Resemblyzer's weights: pip install resemblyzer (its package ships pretrained.pt)")
    if missing:
        raise MissingRealVoicesError("the real-voices demo needs " + "; ".join(missing))


def real_voices_trials(ids: Sequence[str], speakers: Sequence[str], seed: int = 0) -> Trials:
    """Every same-voice pair and the different-voice pairs (a seeded sample of :data:`MAX_NONTARGETS` at most)."""
    spk = np.asarray(speakers)
    a, b = np.triu_indices(len(ids), k=1)
    same = spk[a] == spk[b]
    non = np.flatnonzero(~same)
    if non.size > MAX_NONTARGETS:
        non = np.sort(np.random.default_rng(seed).choice(non, MAX_NONTARGETS, replace=False))
    keep = np.r_[np.flatnonzero(same), non]
    names = np.asarray(ids)
    return Trials.from_pairs(names[a[keep]], names[b[keep]], same[keep])


def run_real_voices(
    out_dir: str | os.PathLike[str] = "minifloat-demo",
    *,
    utterances_per_voice: int | None = None,
    max_voices: int | None = None,
    relu: bool = True,
    encodings: Sequence[str] = (),
    baselines: Sequence[str] = (),
    n_boot: int = 200,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> ReportResult:
    """Embed Debian's voices with Resemblyzer, store them and write the full report to ``OUT/real-voices``.

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder; ``real-voices/`` in it is replaced.
    utterances_per_voice : int, optional
        Utterances made per voice (all that the clips allow by default, about 20).
    max_voices : int, optional
        The first voices only (all by default, about 30).
    relu : bool, default True
        Resemblyzer's published (ReLU) output; False for the pre-ReLU output of its last layer.
    encodings, baselines : sequence of str
        As :func:`~minifloat_store.eval.report.run_report` (the fidelity table).
    n_boot, seed : int
        Bootstrap of the ΔEER intervals, and the seed of the non-target sample.
    progress : bool
    log : callable or None

    Returns
    -------
    ReportResult
        With ``files`` set.

    Raises
    ------
    MissingRealVoicesError
        With the commands that install what is missing.
    """
    check_real_voices()
    import torch  # heavy optional dependency (the models extra)

    from minifloat_store.eval.models import resemblyzer  # imports torch

    say = log or (lambda _line: None)
    folder = Path(out_dir) / "real-voices"
    t0 = time.perf_counter()
    corpus = debian_voices.load_corpus(max_speakers=max_voices, utterances_per_speaker=utterances_per_voice)
    ids = [u.utterance_id for u in corpus]
    speakers = [u.speaker for u in corpus]
    n_voices = len(set(speakers))
    if n_voices < 2:
        raise MissingRealVoicesError(f"found {n_voices} voice(s) in the Debian packages; need 2 or more")
    say(f"[real-voices] {len(ids)} utterances of {n_voices} voices read ({time.perf_counter() - t0:.1f} s)")

    t = time.perf_counter()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = resemblyzer.load(relu=relu)
    x = np.concatenate([model.embed_batch([u.waveform for u in corpus[i : i + 8]]) for i in range(0, len(corpus), 8)])
    say(f"[real-voices] embedded with Resemblyzer ({time.perf_counter() - t:.1f} s)")

    if folder.exists():
        shutil.rmtree(folder)  # only the demo's own folder, so a rerun starts clean
    (folder / "stores").mkdir(parents=True)
    store_path = folder / "stores" / "fp32.zarr"
    meta = {"source": "minifloat_store.eval.data.debian_voices", "model": "resemblyzer", "relu": relu}
    with EmbeddingStore.create(store_path, dim=x.shape[1], fmt="fp32", metadata=meta) as store:
        store.add(ids, x.astype(np.float32))
    trials = real_voices_trials(ids, speakers, seed)
    u = trials.utterances
    lines = zip(trials.labels, u[trials.enroll_index], u[trials.test_index], strict=True)
    (folder / "trials.txt").write_text("".join(f"{int(y)} {e} {v}\n" for y, e, v in lines), encoding="utf-8")

    t = time.perf_counter()
    result = run_report(
        x,
        ids,
        trials,
        threshold=resemblyzer.THRESHOLD,
        threshold_note="Resemblyzer's own operating threshold",
        title="Real voices (Debian), Resemblyzer " + ("ReLU output" if relu else "pre-ReLU output"),
        notes=(REAL_NOTE.format(relu="ReLU output" if relu else "pre-ReLU output", n=len(ids), voices=n_voices),),
        progress=progress,
        encodings=encodings,
        baselines=baselines,
        n_boot=n_boot,
        seed=seed,
    )
    result = write_report(result, folder, figure_formats=("e2m1",))
    say(f"[real-voices] report written to {folder / 'report.md'} ({time.perf_counter() - t:.1f} s)")
    return result
