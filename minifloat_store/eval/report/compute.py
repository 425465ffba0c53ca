"""The storage-versus-accuracy report, computed: every format x scale mode on one trial list.

``run_report`` encodes the embeddings of a float32 store once per (format,
scale mode), scores every trial on the packed codes with
:func:`minifloat_store.scoring.cosine_index_pairs` (the scoring path users
call), and measures what the encoding did: EER and its threshold, FAR/FRR at
a fixed threshold and at the float32 EER threshold, minDCF, and the bytes it
takes. :mod:`.writers` turns the result into the study's tables
(``report.md``), ``results.csv``, ``results.json`` and, with matplotlib, the
figures of :mod:`.plots`.

Rates are fractions in the API (:class:`FormatResult`) and percent in the
files (columns ending ``_pct``). The decision rule everywhere is the one of
:mod:`minifloat_store.eval.metrics`: accept when ``score >= threshold``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from tqdm.auto import tqdm

from minifloat_store.choose import cross_fit_quantize, encoding_name, parse_encoding
from minifloat_store.codec import SCALE_MODES, Packed, encode, quantize, storage_bytes
from minifloat_store.encoding import Encoding
from minifloat_store.eval.baselines import DEFAULT_BASELINES, run_baselines
from minifloat_store.eval.report.results import FidelityRow, FormatResult, ReportResult
from minifloat_store.eval.report.study import STUDY_ORDER
from minifloat_store.eval.report.writers import write_report
from minifloat_store.eval.trials import Trials
from minifloat_store.fidelity import bootstrap_eers, cosine_scores, decision_flips, rms_score_error
from minifloat_store.formats import FORMATS, get_format
from minifloat_store.metrics import eer, far_frr, min_dcf
from minifloat_store.scoring import cosine_index_pairs, vector_norms

__all__ = ["measure_fidelity", "pair_cosines", "run_report"]


def _scores(
    packed: Packed, left: NDArray[np.integer], right: NDArray[np.integer], norms: NDArray[np.float64] | None = None
) -> NDArray[np.float32]:
    # The scoring path users call (scoring.cosine_index_pairs, float64), kept as float32 like every score here.
    return cosine_index_pairs(packed, left, right, norms).astype(np.float32)


def pair_cosines(x: ArrayLike, left: NDArray[np.integer], right: NDArray[np.integer]) -> NDArray[np.float32]:
    """Cosine similarity of the row pairs ``(x[left[i]], x[right[i]])``.

    The vectors are stored as float32 (``encode(x, "fp32")``) and scored with
    :func:`minifloat_store.scoring.cosine_index_pairs`, the one cosine of the
    package.

    Parameters
    ----------
    x : array_like of shape (n, d), floating point, finite
        Embeddings (e.g. decoded quantised ones); converted to float32.
    left, right : ndarray of shape (m,), int
        Row indices of each pair.

    Returns
    -------
    ndarray of shape (m,), float32
        Cosines in [-1, 1]; 0.0 where either vector is all zeros (the
        convention of ``minifloat_store.scoring`` and of torch's
        ``cosine_similarity``).
    """
    return _scores(encode(x, "fp32", "none"), left, right)


def measure_fidelity(
    x: NDArray[np.float32],
    left: NDArray[np.integer],
    right: NDArray[np.integer],
    labels: NDArray[np.bool_],
    *,
    study: Sequence[tuple[str, str]] = (),
    encodings: Sequence[str | Encoding] = (),
    baselines: Sequence[str] = (),
    threshold: float | None = None,
    n_boot: int = 200,
    seed: int = 0,
    skipped: list[str] | None = None,
) -> tuple[FidelityRow, ...]:
    """Score error, flips and ΔEER (paired bootstrap) against float32 of every encoding and baseline.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32
        The float32 embeddings, in store order (the order the cross-fitting halves follow).
    left, right : ndarray of shape (t,), int
        Rows of each trial.
    labels : ndarray of shape (t,), bool
        True for a target trial.
    study : sequence of (format, scale)
        Study rows, ``quantize(x, format, scale)``.
    encodings : sequence of str or Encoding
        Other encodings (``"nf4/vector/centre+rotate"``); one that learns a
        mean is cross-fitted (:func:`minifloat_store.choose.cross_fit_quantize`).
    baselines : sequence of str
        FAISS specs (:mod:`minifloat_store.eval.baselines`), cross-fitted; needs faiss.
    threshold : float, optional
        The fixed threshold for ``flips_at_threshold``.
    n_boot, seed : int
        Bootstrap resamples and seed of the ΔEER interval (95 %).
    skipped : list of str, optional
        Receives a line per baseline FAISS refused (otherwise a ValueError).

    Returns
    -------
    tuple of FidelityRow
        By bits per value, then RMS score error. A name given twice is measured once.
    """
    d = x.shape[1]
    systems: dict[str, tuple[str, float, NDArray[np.float32]]] = {}
    for fmt, scale in study:
        name = "fp32" if get_format(fmt).is_identity else f"{get_format(fmt).name}/{scale}"
        if name != "fp32":
            systems[name] = ("study", 8 * storage_bytes(1, d, fmt, scale) / d, quantize(x, fmt, scale))
    for item in encodings:
        enc = parse_encoding(item) if isinstance(item, str) else item
        name = encoding_name(enc)
        if name not in systems and name != "fp32":
            systems[name] = ("encoding", enc.bits_per_value(d), cross_fit_quantize(x, enc))
    if baselines:
        for name, y, bits in run_baselines(x, baselines, skipped):
            systems[name] = ("faiss", bits, y)
    if not systems:
        return ()
    ref = cosine_scores(x, left, right)
    ref_eer, ref_thr = eer(ref, labels)
    names = list(systems)
    scores = np.stack([cosine_scores(systems[n][2], left, right) for n in names])
    ref_boot = bootstrap_eers(labels, ref, n_boot, seed)
    # The same seed draws the same resamples for every call: the reference and each system stay paired.
    boots = np.concatenate([bootstrap_eers(labels, scores[i : i + 16], n_boot, seed) for i in range(0, len(names), 16)])
    rows = []
    for name, s, boot in zip(names, scores, boots, strict=True):
        kind, bits, _ = systems[name]
        e = eer(s, labels)[0]
        lo, hi = np.quantile(boot - ref_boot, [0.025, 0.975])
        rows.append(
            FidelityRow(
                name=name,
                kind=kind,
                bits_per_value=float(bits),
                rms_score_error=rms_score_error(ref, s),
                flips_at_ref=decision_flips(ref, s, ref_thr),
                flips_at_threshold=None if threshold is None else decision_flips(ref, s, threshold),
                eer=e,
                delta_eer=e - ref_eer,
                delta_eer_lo=float(lo),
                delta_eer_hi=float(hi),
            )
        )
    rows.sort(key=lambda r: (r.bits_per_value, r.rms_score_error))
    return tuple(rows)


def _fidelity_note(n_boot: int, seed: int, skipped: Sequence[str] = ()) -> str:
    """How :func:`measure_fidelity` measured, in a paragraph for the report."""
    note = (
        "Scores: cosine of the decoded vectors against that of the float32 vectors, trial by trial. "
        "Encodings that learn a mean (`centre`) and FAISS baselines are cross-fitted: the embeddings, in "
        "store order, are split into even and odd rows and each half is encoded by the encoding fitted "
        "(FAISS: trained) on the other half, so no vector is scored by an encoding that saw it and every "
        "trial is kept. FAISS gets L2-normalised vectors. ΔEER interval: 95 % paired, class-stratified "
        f"bootstrap, {n_boot} resamples (seed {seed}), both systems on the same resample; trials sharing an "
        "utterance are not independent, so it is somewhat narrow."
    )
    if skipped:
        note += " Not measured: " + "; ".join(skipped) + "."
    return note


def _ordered_formats(formats: Sequence[str] | None) -> list[str]:
    names = list(STUDY_ORDER) if formats is None else [get_format(f).name for f in formats]
    if len(set(names)) != len(names):
        raise ValueError(f"formats repeat a name: {list(formats or ())}")
    names = [n for n in names if n != "fp32"]
    rank = {n: i for i, n in enumerate(STUDY_ORDER)}
    # Unknown-to-the-study formats cannot occur (get_format validated), so rank is total.
    return ["fp32", *sorted(names, key=rank.__getitem__)]


def _check_embeddings(embeddings: ArrayLike, n_ids: int) -> NDArray[np.float32]:
    x = np.asarray(embeddings)
    if x.dtype.kind != "f":
        raise ValueError(f"embeddings must be a floating-point array, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"embeddings must have shape (n, d) with n, d >= 1, got {x.shape}")
    if x.shape[0] != n_ids:
        raise ValueError(f"got {x.shape[0]} embeddings but {n_ids} ids; they must match row for row")
    return x


def run_report(
    embeddings: ArrayLike,
    ids: Sequence[str] | NDArray[np.str_],
    trials: Trials,
    *,
    formats: Sequence[str] | None = None,
    scales: Sequence[str] = SCALE_MODES,
    threshold: float | None = None,
    threshold_note: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    title: str = "Minifloat storage report",
    notes: Sequence[str] = (),
    on_disk: Mapping[tuple[str, str], int] | None = None,
    figure_formats: Sequence[str] = ("e2m1",),
    progress: bool = True,
    encodings: Sequence[str | Encoding] = (),
    baselines: Sequence[str] | bool = False,
    fidelity: bool = True,
    n_boot: int = 200,
    seed: int = 0,
) -> ReportResult:
    """Measure what storing the embeddings in each format does to verification.

    For every format x scale mode: quantise the distinct embeddings the trials
    use (once, not per trial), score every trial by cosine similarity, and
    compute EER with its threshold, FAR/FRR at ``threshold`` and at the
    float32 EER threshold, minDCF, and the storage it takes. float32 is always
    included, as the reference.

    Parameters
    ----------
    embeddings : array_like of shape (n, d), floating point
        The float32 embeddings (other float types are converted), row i
        belonging to ``ids[i]``.
    ids : sequence of str, length n
        Utterance id of each row; every trial utterance must be among them.
    trials : Trials
        The trial list (see :func:`minifloat_store.eval.trials.read_trials`).
    formats : sequence of str, optional
        Formats to compare; all of the study's by default. float32 is added
        if missing. Rows follow the study's order (widest first).
    scales : sequence of {"none", "vector"}, default both
        Scale modes to compare per format.
    threshold : float, optional
        A fixed cosine threshold (the "model threshold", like the study's
        0.381 / 0.351 / 0.86); accept when ``score >= threshold``. Without
        it, FAR/FRR are reported at the float32 EER threshold only.
    threshold_note : str, optional
        One sentence on where the threshold came from, for the report.
    out_dir : str or PathLike, optional
        When given, :func:`write_report` writes every file there (figures
        need matplotlib, the ``eval`` extra).
    title : str
        Report title.
    notes : sequence of str
        Paragraphs printed under the title.
    on_disk : mapping of (format, scale) -> int, optional
        Measured sizes in bytes of real stores of these embeddings, shown in Table 1.
    figure_formats : sequence of str, default ("e2m1",)
        Formats whose FAR/FRR-versus-threshold curves are drawn against float32.
    progress : bool, default True
        Show a progress bar (tqdm, on stderr).
    encodings : sequence of str or Encoding, optional
        Encodings beyond the study's formats for the fidelity table
        (``"nf4/vector/centre+rotate"``, see :func:`minifloat_store.choose.parse_encoding`).
    baselines : bool or sequence of str, default False
        FAISS baselines for the fidelity table: True for
        :data:`~minifloat_store.eval.baselines.DEFAULT_BASELINES`, or specs
        (needs faiss-cpu, the ``bench`` extra).
    fidelity : bool, default True
        Measure the fidelity table (RMS score error, flips, ΔEER with a
        paired-bootstrap interval) for every study row, encoding and baseline.
    n_boot, seed : int
        Bootstrap resamples and seed of the ΔEER intervals.

    Returns
    -------
    ReportResult

    Raises
    ------
    ValueError
        Embeddings and ids disagree in length, an unknown format or scale
        mode, a non-finite threshold, or embeddings with NaN/inf (the message
        names the row).
    MissingUtterancesError
        Trial utterances missing from ``ids`` (a KeyError and a ValueError).
    """
    ids_list = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
    x = _check_embeddings(embeddings, len(ids_list))
    if not isinstance(trials, Trials):
        raise ValueError(f"trials must be a Trials (see read_trials), got {type(trials).__name__}")
    scale_list = list(dict.fromkeys(scales))
    for s in scale_list:
        if s not in SCALE_MODES:
            raise ValueError(f"unknown scale mode {s!r}; expected one of {', '.join(SCALE_MODES)}")
    if not scale_list:
        raise ValueError("scales is empty; give at least one of 'none', 'vector'")
    if threshold is not None:
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite cosine value, got {threshold!r}")
    fmt_names = _ordered_formats(formats)
    # Parsed before anything is measured: a typo in an encoding name fails at once.
    encodings = [parse_encoding(e) if isinstance(e, str) else e for e in encodings]

    left, right = trials.index_pairs(ids_list)
    # Only the embeddings the trials use are stored and quantised, each once.
    used, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
    left_u, right_u = inverse[: left.size], inverse[left.size :]
    x_used = np.ascontiguousarray(x[used], dtype=np.float32)
    bad = ~np.isfinite(x_used).all(axis=1)
    if bad.any():
        row = int(used[np.flatnonzero(bad)[0]])
        raise ValueError(f"embedding of {ids_list[row]!r} (row {row}) holds NaN or inf; nothing was scored")
    labels = np.asarray(trials.labels, dtype=np.bool_)
    n_used, dim = x_used.shape

    jobs = [("fp32", "none")] + [(f, s) for f in fmt_names[1:] for s in scale_list]
    rows: list[FormatResult] = []
    scores: dict[tuple[str, str], NDArray[np.float32]] = {}
    ref_scores: NDArray[np.float32] | None = None
    ref_threshold = 0.0
    bar = tqdm(jobs, desc="formats x scales", unit="row", disable=not progress, leave=False)
    for fmt, scale in bar:
        bar.set_postfix_str(f"{fmt}/{scale}")
        t0 = time.perf_counter()
        packed = encode(x_used, fmt, scale)
        norms = vector_norms(packed)
        s = _scores(packed, left_u, right_u, norms)
        rate, thr = eer(s, labels)
        if ref_scores is None:
            ref_scores, ref_threshold = s, thr
        far_t, frr_t = far_frr(s, labels, threshold) if threshold is not None else (None, None)
        far_r, frr_r = far_frr(s, labels, ref_threshold)
        f = FORMATS[fmt]
        nbytes = storage_bytes(1, dim, f, scale)
        rows.append(
            FormatResult(
                format=fmt,
                scale=scale,
                bits=f.bits,
                bytes_per_vector=nbytes,
                bits_per_value=8.0 * nbytes / dim,
                eer=rate,
                eer_threshold=thr,
                far=far_t,
                frr=frr_t,
                far_at_ref=far_r,
                frr_at_ref=frr_r,
                min_dcf_001=min_dcf(s, labels, p_target=0.01),
                min_dcf_005=min_dcf(s, labels, p_target=0.05),
                mean_abs_score_change=float(np.mean(np.abs(s.astype(np.float64) - ref_scores))),
                zero_vectors=int(np.count_nonzero(norms == 0)),
                seconds=time.perf_counter() - t0,
            )
        )
        scores[(fmt, scale)] = s
    bar.close()

    fid: tuple[FidelityRow, ...] = ()
    skipped: list[str] = []
    specs = list(DEFAULT_BASELINES) if baselines is True else list(baselines or ())
    if fidelity:
        fid = measure_fidelity(
            x_used,
            left_u,
            right_u,
            labels,
            study=jobs,
            encodings=encodings,
            baselines=specs,
            threshold=threshold,
            n_boot=n_boot,
            seed=seed,
            skipped=skipped,
        )
    if threshold_note is None:
        threshold_note = (
            "given by the user" if threshold is not None else "none given: FAR/FRR at the float32 EER threshold"
        )
    result = ReportResult(
        rows=tuple(rows),
        threshold=threshold,
        threshold_note=threshold_note,
        dim=dim,
        n_embeddings=n_used,
        n_trials=int(labels.size),
        n_targets=int(labels.sum()),
        n_nontargets=int(labels.size - labels.sum()),
        labels=labels,
        scores=scores,
        title=title,
        notes=tuple(notes),
        on_disk={(get_format(k[0]).name, k[1]): int(v) for k, v in (on_disk or {}).items()},
        fidelity=fid,
        fidelity_note=_fidelity_note(n_boot, seed, skipped) if fidelity else "",
    )
    if out_dir is not None:
        result = write_report(result, out_dir, figure_formats=figure_formats)
    return result
