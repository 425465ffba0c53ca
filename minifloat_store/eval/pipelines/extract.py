"""Embedding extraction: one float32 embedding per utterance into a store, resumably.

``extract`` reads each utterance's audio under an audio root, embeds it with
a speaker model in batches and appends every batch to a float32
:class:`~minifloat_store.store.EmbeddingStore` (``fmt="fp32"``), one commit
per batch. Utterance ids are the paths relative to the audio root exactly as
a trial list spells them (``id10270/x6uYqmx31kE/00001.wav``), so
``Trials.index_pairs(store.ids)`` works on the store directly.

Resuming: the store's commits are atomic, so a crash or Ctrl-C loses at most
the batch in flight. Running the same extraction again opens the existing
store, checks it was written by the same model and weights, and skips every
id already stored.

Audio problems, decided per kind of problem:

* a file that does **not exist** stops the run before any work, with the
  missing files listed: that is nearly always a wrong ``audio_root`` or the
  wrong part of a dataset, and finding out hours later helps nobody;
* a file that exists but **cannot be decoded** (or is too short for the
  model) is skipped and reported at the end: on a 145,000-file run one bad
  file should not throw away hours of work, and the files stored so far make
  the rerun (after fixing the file) cheap. More than ``max_failures`` such
  files stop the run, since that means something systematic is wrong;
* a file at another **sample rate** is resampled to the model's rate
  (polyphase, :func:`minifloat_store.eval.data.audio.resample`) and counted in the
  summary; a model trained on 16 kHz speech is still the best judge of
  upsampled 8 kHz speech, but its accuracy there is not the published one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from minifloat_store.eval.data.audio import read_audio_native, resample
from minifloat_store.eval.models.registry import get_spec, locate_weights
from minifloat_store.eval.models.weights import sha256_of
from minifloat_store.eval.trials import Trials
from minifloat_store.store import EmbeddingStore

logger = logging.getLogger(__name__)

__all__ = [
    "ExtractSummary",
    "FailedUtterance",
    "TooManyFailuresError",
    "extract",
    "locate_weights",
    "read_utterance_list",
    "weights_fingerprint",
]

#: How many ids an error message shows before "...".
_SHOW = 5


@dataclass(frozen=True)
class FailedUtterance:
    """An utterance that could not be embedded.

    Attributes
    ----------
    utterance_id : str
        The id (path relative to the audio root).
    path : Path
        The audio file.
    reason : str
        What went wrong (the decoder's or the model's message).
    """

    utterance_id: str
    path: Path
    reason: str


@dataclass(frozen=True)
class ExtractSummary:
    """What :func:`extract` did.

    Attributes
    ----------
    store : Path
        The float32 store.
    model : str
        Model registry name.
    dim : int
        Embedding size.
    sample_rate : int
        Rate the model takes, in Hz (what files were resampled to).
    requested : int
        Distinct utterances asked for.
    already_stored : int
        Of those, how many were in the store before this run (skipped).
    added : int
        Embeddings this run stored.
    failed : tuple of FailedUtterance
        Utterances skipped because their audio could not be decoded or embedded.
    resampled : dict of int -> int
        Native sample rate (Hz) -> number of files resampled from it.
    audio_seconds : float
        Seconds of audio embedded by this run.
    seconds : float
        Wall-clock seconds of this run.
    """

    store: Path
    model: str
    dim: int
    sample_rate: int
    requested: int
    already_stored: int
    added: int
    failed: tuple[FailedUtterance, ...] = ()
    resampled: Mapping[int, int] = field(default_factory=dict)
    audio_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """True when every requested utterance is in the store."""
        return self.already_stored + self.added == self.requested

    def text(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"{self.store}: {self.already_stored + self.added:,} of {self.requested:,} utterances stored "
            f"({self.added:,} added by this run, {self.already_stored:,} were already there), "
            f"{self.model}, dim {self.dim}, float32",
        ]
        if self.added:
            lines.append(
                f"embedded {self.audio_seconds / 3600:.2f} h of audio; the run took {self.seconds:.1f} s, "
                "model loading included"
            )
        for rate, count in sorted(self.resampled.items()):
            lines.append(f"note: {count:,} file(s) resampled from {rate} Hz to {self.sample_rate} Hz")
        if self.failed:
            lines.append(f"{len(self.failed):,} utterance(s) could not be embedded and are not in the store:")
            lines += [f"  {f.path}: {f.reason}" for f in self.failed[:20]]
            if len(self.failed) > 20:
                lines.append(f"  ... and {len(self.failed) - 20:,} more")
            lines.append("Fix or replace those files and run the same command again: only they are re-done.")
        return "\n".join(lines)


class TooManyFailuresError(ValueError):
    """More utterances failed than ``max_failures`` allows; the run stopped.

    ``summary`` says what was stored before it stopped (kept in the store).
    """

    def __init__(self, message: str, summary: ExtractSummary) -> None:
        super().__init__(message)
        self.summary = summary


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def read_utterance_list(path: str | os.PathLike[str]) -> list[str]:
    """Read a plain utterance list: one path relative to the audio root per line.

    Blank lines and lines starting with ``#`` are skipped; surrounding
    whitespace is stripped.

    Returns
    -------
    list of str
        The ids in file order.

    Raises
    ------
    ValueError
        The file lists no utterance, or lists one twice (both line numbers given).
    """
    path = Path(path)
    seen: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        u = line.strip()
        if not u or u.startswith("#"):
            continue
        if u in seen:
            raise ValueError(f"{path}: line {n} repeats {u!r} (first on line {seen[u]})")
        seen[u] = n
    if not seen:
        raise ValueError(f"{path}: lists no utterances (one relative audio path per line expected)")
    return list(seen)


def _check_ids(ids: Sequence[str]) -> list[str]:
    out = list(ids)
    if not out:
        raise ValueError("no utterances given")
    for u in out:
        if not isinstance(u, str) or not u:
            raise ValueError(f"utterance ids must be non-empty strings, got {u!r}")
        p = PurePosixPath(u)
        if p.is_absolute() or ".." in p.parts or "\\" in u:
            raise ValueError(
                f"utterance id {u!r} is not a relative path inside the audio root "
                "(ids are paths like id10270/x6uYqmx31kE/00001.wav)"
            )
    if len(set(out)) != len(out):
        counts = Counter(out)
        dup = [u for u, c in counts.items() if c > 1]
        raise ValueError(f"{len(dup)} utterance ids are repeated (e.g. {', '.join(map(repr, dup[:_SHOW]))})")
    return out


def _list_record(utterances: Trials | Sequence[str], list_path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Metadata describing where the utterances came from."""
    rec: dict[str, Any] = {"kind": "trials" if isinstance(utterances, Trials) else "list"}
    path = utterances.path if isinstance(utterances, Trials) else (Path(list_path) if list_path else None)
    if path is not None:
        rec["path"] = str(Path(path).resolve())
        rec["md5"] = hashlib.md5(Path(path).read_bytes()).hexdigest()
    if isinstance(utterances, Trials):
        rec["n_trials"] = len(utterances)
        rec["known"] = utterances.known.name if utterances.known is not None else None
        rec["n_utterances"] = int(utterances.utterances.size)
    else:
        rec["n_utterances"] = len(utterances)
    return rec


# ---------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------


def weights_fingerprint(path: str | os.PathLike[str]) -> dict[str, str]:
    """Path and SHA-256 of a weight file, for store metadata.

    Parameters
    ----------
    path : str or PathLike
        A weight file, or a checkpoint directory (WavLM): then its
        ``model.safetensors`` (preferred, as transformers does) or
        ``pytorch_model.bin`` is hashed.

    Returns
    -------
    dict
        ``{"path": absolute path, "file": hashed file name, "sha256": hex}``.
    """
    path = Path(path).resolve()
    target = path
    if path.is_dir():
        names = ("model.safetensors", "pytorch_model.bin")
        target = next((path / n for n in names if (path / n).is_file()), None)
        if target is None:
            raise FileNotFoundError(f"checkpoint directory {path} holds neither {' nor '.join(names)}")
    return {"path": str(path), "file": target.name, "sha256": sha256_of(target)}


# ---------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------


def _load(
    name: str, weights: str | os.PathLike[str] | None, device: str, verify: bool, options: Mapping[str, Any]
) -> tuple[Any, dict[str, str]]:
    spec = get_spec(name)
    path = spec.locate(weights, verify=verify, **options)
    model = spec.load_located(path, device, **options)  # located and verified once, not hashed again
    return model, weights_fingerprint(path)


def _check_resume(meta: Mapping[str, Any], wanted: Mapping[str, Any], store_path: Path) -> None:
    """Refuse to append embeddings of another model (or other weights) to an existing store."""
    for key in ("model", "dim", "model_options"):
        if meta.get(key) != wanted.get(key):
            raise ValueError(
                f"store {store_path} holds embeddings with {key}={meta.get(key)!r}, but this run has "
                f"{key}={wanted.get(key)!r}; mixing them would make every score meaningless. "
                "Use another --out (or delete the store to start again)."
            )
    old = (meta.get("weights") or {}).get("sha256")
    new = (wanted.get("weights") or {}).get("sha256")
    if old and new and old != new:
        raise ValueError(
            f"store {store_path} was written with weights SHA-256 {old} ({meta['weights'].get('path')}), "
            f"this run uses {new} ({wanted['weights'].get('path')}); use another --out"
        )


def _read(path: Path, sample_rate: int) -> tuple[np.ndarray, int]:
    x, rate = read_audio_native(path)
    if rate != sample_rate:
        logger.info("%s: resampled from %d Hz to %d Hz", path, rate, sample_rate)
        x = resample(x, rate, sample_rate)
    return x, rate


def _embed(
    model: Any, ids: list[str], waves: list[np.ndarray], root: Path
) -> tuple[list[int], np.ndarray, list[FailedUtterance]]:
    """Embed a batch: positions that succeeded, their float32 (k, dim) embeddings, the failures."""
    failed: list[FailedUtterance] = []
    try:
        out = np.asarray(model.embed_batch(waves), dtype=np.float32)
        rows = list(range(len(ids)))
    except ValueError:
        # A batch fails as a whole (e.g. one utterance too short): embed one by one to name the culprits.
        rows, vectors = [], []
        for i, w in enumerate(waves):
            try:
                vectors.append(np.asarray(model.embed(w), dtype=np.float32))
                rows.append(i)
            except ValueError as exc:
                failed.append(FailedUtterance(ids[i], root / ids[i], str(exc)))
        out = np.stack(vectors) if vectors else np.zeros((0, int(model.dim)), np.float32)
    finite = np.isfinite(out).all(axis=1)
    failed += [
        FailedUtterance(ids[r], root / ids[r], f"{model.name} produced NaN or inf")
        for r, f in zip(rows, finite, strict=True)
        if not f
    ]
    return [r for r, f in zip(rows, finite, strict=True) if f], out[finite], failed


def extract(
    model: str | Any,
    audio_root: str | os.PathLike[str],
    utterances: Trials | Sequence[str],
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    weights: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    verify_weights: bool = True,
    model_options: Mapping[str, Any] | None = None,
    list_path: str | os.PathLike[str] | None = None,
    backend: str = "zarr",
    max_failures: int | None = 100,
    progress: bool = True,
) -> ExtractSummary:
    """Embed every utterance into a float32 store, skipping those already stored.

    Parameters
    ----------
    model : str or SpeakerModel
        A registry name (``"campplus"``, ``"redimnet"``, ``"wavlm"``,
        ``"resemblyzer"``), loaded with ``weights``; or a loaded
        :class:`~minifloat_store.eval.models.base.SpeakerModel` (then
        ``weights``, if given, is only fingerprinted for the metadata).
    audio_root : str or PathLike
        Directory the utterance ids are relative to (VoxCeleb-1: its ``wav/``).
    utterances : Trials or sequence of str
        A trial list (every utterance it uses is embedded) or the ids
        themselves: relative paths such as ``id10270/x6uYqmx31kE/00001.wav``.
    out : str or PathLike
        The store: created (``fmt="fp32"``) if absent, else resumed.
    batch_size : int, default 64
        Utterances embedded and committed together; a crash loses at most one batch.
    weights : str or PathLike, optional
        Weight file (WavLM: checkpoint directory); by default the standard
        places are searched (docs/models.md).
    device : str
        torch device.
    verify_weights : bool
        Check the weight file's published SHA-256 (CAM++, Resemblyzer).
        Turn off for a fine-tuned or differently released file.
    model_options : mapping, optional
        Extra loader options (e.g. ``{"model_name": "b5"}`` for ReDimNet),
        recorded in the metadata.
    list_path : str or PathLike, optional
        The file a plain id list came from, recorded in the metadata
        (a ``Trials`` records its own).
    backend : {"zarr", "hdf5"}
        Store backend when creating.
    max_failures : int or None, default 100
        Stop once more utterances than this failed to decode or embed
        (``0``: stop at the first); None never stops.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    ExtractSummary
        ``failed`` lists the utterances skipped (not stored); rerunning after
        fixing them embeds only those.

    Raises
    ------
    FileNotFoundError
        ``audio_root`` missing, or audio files of not-yet-stored utterances
        missing (checked before any work; the message lists a few).
    ValueError
        Bad ids, a store holding another model's embeddings or not float32,
        or an unknown model.
    TooManyFailuresError
        More than ``max_failures`` files could not be embedded; what was
        stored stays stored.
    WeightsNotFoundError
        No weights; the message says what to download and where.
    """
    t0 = time.perf_counter()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if max_failures is not None and max_failures < 0:
        raise ValueError(f"max_failures must be >= 0 or None, got {max_failures!r}")
    root = Path(audio_root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio root {root} is not a directory")
    ids = _check_ids(utterances.utterances.tolist() if isinstance(utterances, Trials) else utterances)
    options = dict(model_options or {})
    out_path = Path(out)

    # What is stored already, and whether the rest exists, before the (slow) model load.
    stored: set[str] = set()
    if out_path.exists():
        with EmbeddingStore.open(out_path, mode="r") as s:
            if s.fmt is None or not s.fmt.is_identity:
                raise ValueError(
                    f"{out_path} is a {s.encoding.element} store; extract writes float32 (fp32) stores only"
                )
            stored = set(s.ids)
    todo = [u for u in ids if u not in stored]
    missing = [u for u in todo if not (root / u).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing):,} of {len(todo):,} audio files to embed do not exist under {root} "
            f"(e.g. {', '.join(str(root / u) for u in missing[:_SHOW])}); is --audio-root the directory "
            "the ids are relative to (for VoxCeleb-1, its wav/ folder)? Nothing was embedded."
        )

    if isinstance(model, str):
        net, fingerprint = _load(model, weights, device, verify_weights, options)
    else:
        net, fingerprint = model, (weights_fingerprint(weights) if weights is not None else None)
    meta: dict[str, Any] = {
        "source": "minifloat_store.eval.pipelines.extract",
        "model": net.name,
        "dim": int(net.dim),
        "sample_rate": int(net.sample_rate),
        "threshold": float(net.threshold),
        "model_options": options,
        "weights": fingerprint,
        "normalization": "as the model outputs it (nothing added)",
        "audio_root": str(root.resolve()),
        "lists": [_list_record(utterances, list_path)],
    }

    if out_path.exists():
        store = EmbeddingStore.open(out_path, mode="a")
        try:
            old = store.metadata
            _check_resume(old, meta, out_path)
            if store.dim != net.dim:
                raise ValueError(f"store {out_path} has dim {store.dim}, model {net.name} gives {net.dim}")
            lists = list(old.get("lists", []))
            if meta["lists"][0] not in lists:
                store.set_metadata({**old, "lists": lists + meta["lists"]})
        except BaseException:
            store.close()
            raise
    else:
        store = EmbeddingStore.create(out_path, dim=int(net.dim), fmt="fp32", backend=backend, metadata=meta)

    failed: list[FailedUtterance] = []
    resampled: Counter[int] = Counter()
    added = 0
    audio_seconds = 0.0

    def summary() -> ExtractSummary:
        return ExtractSummary(
            store=out_path,
            model=net.name,
            dim=int(net.dim),
            sample_rate=int(net.sample_rate),
            requested=len(ids),
            already_stored=len(ids) - len(todo),
            added=added,
            failed=tuple(failed),
            resampled=dict(resampled),
            audio_seconds=audio_seconds,
            seconds=time.perf_counter() - t0,
        )

    bar = tqdm(
        total=len(ids),
        initial=len(ids) - len(todo),
        unit="utt",
        desc=f"extract {net.name}",
        disable=not progress,
        dynamic_ncols=True,
    )
    with store, bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            ok: list[str] = []
            waves: list[np.ndarray] = []
            for u in batch:
                try:
                    x, rate = _read(root / u, int(net.sample_rate))
                except (ValueError, OSError) as exc:  # AudioReadError is a ValueError; a file gone is an OSError
                    failed.append(FailedUtterance(u, root / u, str(exc)))
                    continue
                if rate != net.sample_rate:
                    resampled[rate] += 1
                ok.append(u)
                waves.append(x)
            if waves:
                rows, vectors, bad = _embed(net, ok, waves, root)
                failed += bad
                store.add([ok[r] for r in rows], vectors)
                added += len(rows)
                audio_seconds += sum(waves[r].size for r in rows) / float(net.sample_rate)
            bar.update(len(batch))
            if failed:
                bar.set_postfix_str(f"{len(failed)} failed")
            if max_failures is not None and len(failed) > max_failures:
                s = summary()
                raise TooManyFailuresError(
                    f"stopped: {len(failed)} utterances could not be embedded (more than max_failures="
                    f"{max_failures}), e.g. {failed[0].path}: {failed[0].reason}. The {added:,} embeddings "
                    "stored so far are kept; fix the files and run the same command again.",
                    s,
                )
    return summary()
