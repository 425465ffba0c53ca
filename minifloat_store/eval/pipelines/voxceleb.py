"""Checks of a VoxCeleb-1 setup before :func:`~.reproduce.reproduce` runs: lists, audio, weights.

:func:`plan` checks everything that can be checked without loading a model or
reading audio: the VoxCeleb directory and its ``wav/`` folder, each list's
MD5 (a file named like a cleaned list must be that list), every audio file
each list needs, and every model's weights. All problems are reported
together in one :class:`ReproduceSetupError`, each missing checkpoint with its
download instructions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from minifloat_store.eval.models.registry import locate_weights
from minifloat_store.eval.models.weights import WeightsChecksumError, WeightsNotFoundError
from minifloat_store.eval.report.study import STUDY_LISTS, STUDY_MODELS
from minifloat_store.eval.trials import KNOWN_LISTS, Trials, read_trials

__all__ = ["DEFAULT_MODELS", "ListSpec", "Plan", "ReproduceSetupError", "find_lists", "plan"]

#: The study's models, in the order of its tables.
DEFAULT_MODELS: tuple[str, ...] = ("campplus", "redimnet", "wavlm")
#: Where the official list files are looked for, relative to the VoxCeleb directory.
LIST_FOLDERS: tuple[str, ...] = (".", "meta")
#: Where the cleaned lists are published (for the error message).
LISTS_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/"
_SHOW = 3


class ReproduceSetupError(ValueError):
    """Something needed is missing or wrong; ``problems`` lists each (the message numbers them)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        text = "\n\n".join(f"{i}. {p}" for i, p in enumerate(self.problems, start=1))
        super().__init__(f"cannot start; fix these first (nothing was run):\n\n{text}")


@dataclass(frozen=True)
class ListSpec:
    """One trial list to evaluate.

    Attributes
    ----------
    name : str
        Standard name: ``"Vox1-O"``, ``"Vox1-E"`` or ``"Vox1-H"``.
    path : Path
        The file.
    official : bool
        True when the file's MD5 is the published cleaned list's; only then
        are the study's numbers comparable with ours.
    """

    name: str
    path: Path
    official: bool = False


@dataclass(frozen=True, eq=False)
class Plan:
    """What :func:`reproduce` will run, after every up-front check passed.

    Attributes
    ----------
    wav : Path
        The audio root (``<voxceleb>/wav``).
    lists : tuple of ListSpec
    trials : dict of str -> Trials
        Each list, read, by standard name.
    models : tuple of str
    weights : dict of str -> Path
        Each model's weight file (WavLM: checkpoint directory).
    """

    wav: Path
    lists: tuple[ListSpec, ...]
    trials: dict[str, Trials]
    models: tuple[str, ...]
    weights: dict[str, Path]

    @property
    def utterances(self) -> list[str]:
        """Every utterance any list uses, sorted."""
        return sorted(set().union(*(t.utterances.tolist() for t in self.trials.values())))


def find_lists(voxceleb: str | os.PathLike[str], lists: Sequence[str] | None = None) -> list[tuple[str, Path]]:
    """Which list files to use: ``(standard name, path)`` pairs, in the study's column order.

    Parameters
    ----------
    voxceleb : str or PathLike
        The VoxCeleb-1 directory; official file names are looked for in it
        and in its ``meta/`` folder.
    lists : sequence of str, optional
        Items ``"Vox1-O"`` (that list's official file, looked up as above) or
        ``"Vox1-O=FILE"`` (this file stands for Vox1-O). By default every
        official file found.

    Raises
    ------
    ValueError
        Unknown list name, a name given twice, or an official file not found.
    """
    root = Path(voxceleb)

    def locate(name: str) -> Path | None:
        fname = KNOWN_LISTS[name].filename
        return next((p for d in LIST_FOLDERS if (p := root / d / fname).is_file()), None)

    order = [s.name for s in STUDY_LISTS]
    chosen: dict[str, Path] = {}
    if lists is None:
        chosen = {n: p for n in order if (p := locate(n)) is not None}
    else:
        for item in lists:
            name, sep, file = item.partition("=")
            name = name.strip()
            if name not in KNOWN_LISTS:
                raise ValueError(f"unknown list {name!r} in {item!r}; known: {', '.join(order)}")
            if name in chosen:
                raise ValueError(f"list {name} is given twice")
            if sep:
                chosen[name] = Path(file.strip()).expanduser()
            else:
                found = locate(name)
                if found is None:
                    raise ValueError(
                        f"{name}: {KNOWN_LISTS[name].filename} is not in {root} or {root / 'meta'} "
                        f"(download it from {LISTS_URL})"
                    )
                chosen[name] = found
    return [(n, chosen[n]) for n in order if n in chosen]


def _locate(model: str, weights_dir: Path | None, verify: bool) -> Path:
    """``<weights_dir>/<model>/`` first (the layout of docs/models.md), then the standard places."""
    if weights_dir is not None:
        try:
            return locate_weights(model, weights_dir / model, verify=verify)
        except WeightsNotFoundError:
            pass
    try:
        return locate_weights(model, None, verify=verify)
    except WeightsNotFoundError as exc:
        where = f"not in {weights_dir / model}/ (--weights-dir) nor" if weights_dir is not None else "not"
        msg = str(exc)
        if weights_dir is not None:
            msg += f"\n(With --weights-dir {weights_dir}, putting it in {weights_dir / model}/ works too.)"
        raise WeightsNotFoundError(f"{model}: weights {where} in the default places: {msg}") from None


def plan(
    voxceleb: str | os.PathLike[str],
    weights_dir: str | os.PathLike[str] | None = None,
    *,
    models: Sequence[str] = DEFAULT_MODELS,
    lists: Sequence[str] | None = None,
    verify_weights: bool = True,
) -> Plan:
    """Check everything :func:`reproduce` needs, without loading a model or reading audio.

    Parameters
    ----------
    voxceleb : str or PathLike
        VoxCeleb-1 directory: ``wav/idXXXXX/<video>/<NNNNN>.wav`` and the list files.
    weights_dir : str or PathLike, optional
        Directory laid out as docs/models.md says (``campplus/``, ``redimnet/``,
        ``wavlm/``); the standard places are searched after it.
    models : sequence of str
        Models to run (the study's three by default).
    lists : sequence of str, optional
        See :func:`find_lists`.
    verify_weights : bool
        Check the published SHA-256 of the weight files where one is known.

    Returns
    -------
    Plan

    Raises
    ------
    ReproduceSetupError
        Listing every problem found: missing directories, lists that are
        missing or not what their name says, missing audio, missing weights
        (each with what to download and where to put it).
    """
    problems: list[str] = []
    root = Path(voxceleb).expanduser()
    wav = root / "wav"
    unknown = [m for m in models if m not in STUDY_MODELS]
    if unknown or not models:
        problems.append(f"models must be among {', '.join(STUDY_MODELS)}; got {', '.join(models) or 'none'}")
    if not root.is_dir():
        problems.append(
            f"VoxCeleb-1 directory {root} does not exist. It must hold wav/idXXXXX/<video>/<NNNNN>.wav and the "
            "cleaned trial lists; docs/reproduce.md says how to get them."
        )
    elif not wav.is_dir():
        problems.append(
            f"{root} has no wav/ folder. Unzip VoxCeleb-1 there so that the audio is at "
            f"{wav}/idXXXXX/<video>/<NNNNN>.wav (see docs/reproduce.md)."
        )

    specs: list[ListSpec] = []
    trials: dict[str, Trials] = {}
    if root.is_dir():
        try:
            found = find_lists(root, lists)
        except ValueError as exc:
            found = []
            problems.append(str(exc))
        if not found and lists is None:
            names = ", ".join(f"{k.filename} ({k.name})" for k in KNOWN_LISTS.values())
            problems.append(
                f"no cleaned trial list in {root} or {root / 'meta'}: expected one or more of {names}, from {LISTS_URL}"
            )
        for name, path in found:
            try:
                t = read_trials(path)  # refuses a file named like a known list whose MD5 differs
            except (OSError, ValueError) as exc:
                problems.append(f"{name}: {exc}")
                continue
            if t.known is not None and t.known.name != name:
                problems.append(f"{path} is {t.known.name} ({t.known.filename}) by its MD5, not {name}")
                continue
            specs.append(ListSpec(name, path, official=t.known is not None))
            trials[name] = t
            if wav.is_dir():
                utts = t.utterances.tolist()
                missing = [u for u in utts if not (wav / u).is_file()]
                if missing:
                    hint = (
                        " Vox1-E and Vox1-H use the whole of VoxCeleb-1: unzip the dev part (vox1_dev_wav) into "
                        "the same wav/ folder, or leave this list out with --lists."
                        if name != "Vox1-O"
                        else ""
                    )
                    problems.append(
                        f"{name} ({path.name}): {len(missing):,} of {len(utts):,} utterances are missing under "
                        f"{wav} (e.g. {', '.join(missing[:_SHOW])}).{hint}"
                    )

    weights: dict[str, Path] = {}
    wdir = Path(weights_dir).expanduser() if weights_dir is not None else None
    for model in models:
        if model not in STUDY_MODELS:
            continue
        try:
            weights[model] = _locate(model, wdir, verify_weights)
        except (WeightsNotFoundError, WeightsChecksumError, ValueError) as exc:
            problems.append(str(exc) if str(exc).startswith(f"{model}:") else f"{model}: {exc}")
    if problems:
        raise ReproduceSetupError(problems)
    return Plan(wav, tuple(specs), trials, tuple(models), weights)
