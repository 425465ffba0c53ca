"""The speaker models the evaluation layer knows, one :class:`ModelSpec` each.

A spec says what a model is called, which of its loader's options choose the
weight file, whether the file has a published SHA-256 to verify, and whether
its weights are a directory. The model's own module (imported only when a
model is located or loaded, since it imports torch) supplies the data:

* ``weights_source(**file_options) -> WeightsSource``: the published file;
* ``weights_candidates(source, **file_options) -> list of Path``: its hub's
  cache, searched after the weights directory;
* ``load(weights, device, **options)``: builds the model.

The search order itself is written once, in
:func:`~minifloat_store.eval.models.weights.resolve_weights`: the user's path,
then ``<weights_dir()>/<model>/<filename>``, then the model's candidates.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from minifloat_store.eval.models.base import SpeakerModel
from minifloat_store.eval.models.weights import WeightsSource, resolve_weights

__all__ = ["MODELS", "ModelSpec", "get_spec", "load_model", "locate_weights"]


@dataclass(frozen=True)
class ModelSpec:
    """One speaker model of the registry.

    Attributes
    ----------
    name : str
        Registry name (``"campplus"``).
    module : str
        Module of :mod:`minifloat_store.eval.models` that defines
        ``weights_source``, ``weights_candidates`` and ``load``.
    file_options : tuple of str
        Loader options that choose the weight file (ReDimNet's variant,
        WavLM's ``repo_id``); other options are the loader's alone.
    verifies : bool
        The published file has a SHA-256 and ``load`` takes ``verify``.
    directory : bool
        The weights are a directory, found through ``WeightsSource.filename``
        inside it (WavLM); :meth:`locate` returns the directory.
    """

    name: str
    module: str
    file_options: tuple[str, ...] = ()
    verifies: bool = True
    directory: bool = False

    def _module(self) -> ModuleType:
        # Lazy: every model module imports torch (the ``models`` extra).
        return importlib.import_module(f"minifloat_store.eval.models.{self.module}")

    def source(self, **options: Any) -> WeightsSource:
        """The published weight file for these loader options (others are ignored)."""
        return self._module().weights_source(**self._file_options(options))

    def _file_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {k: options[k] for k in self.file_options if k in options}

    def locate(self, weights: str | os.PathLike[str] | None = None, *, verify: bool = True, **options: Any) -> Path:
        """Find the weights without loading them: the search ``load`` uses.

        Parameters
        ----------
        weights : str or PathLike, optional
            The user's file, or a directory holding it (WavLM: the checkpoint
            directory or its ``config.json``). When given, nothing else is searched.
        verify : bool
            Check the file's published SHA-256 (only where one is published).
        **options
            The loader's options; those in :attr:`file_options` choose the
            file, the others are ignored.

        Returns
        -------
        Path
            The weight file; for a directory model, the directory.

        Raises
        ------
        WeightsNotFoundError
            Nothing found; the message says what to download and where to put it.
        WeightsChecksumError
            ``verify`` and the file is not the published one.
        ValueError
            The model refuses the options (e.g. an unpublished ReDimNet
            variant without ``weights``).
        """
        module = self._module()
        chosen = self._file_options(options)
        source = module.weights_source(**chosen)
        # Candidates only matter (and are only checked) when the user named no file.
        candidates = module.weights_candidates(source, **chosen) if weights is None else ()
        path = resolve_weights(source, weights, candidates=candidates, verify=verify and self.verifies)
        return path.parent if self.directory else path

    def load(self, weights: str | os.PathLike[str] | None = None, device: str = "cpu", **options: Any) -> SpeakerModel:
        """Build the model and load its weights (``verify`` is dropped for models with no published sum)."""
        if not self.verifies:
            options.pop("verify", None)
        return self._module().load(weights=weights, device=device, **options)

    def load_located(self, path: Path, device: str = "cpu", **options: Any) -> SpeakerModel:
        """Load weights that :meth:`locate` already found (and verified): not hashed again."""
        return self.load(path, device, **{**options, "verify": False})


#: Every model, by registry name.
MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        "campplus": ModelSpec("campplus", "campplus"),
        "resemblyzer": ModelSpec("resemblyzer", "resemblyzer"),
        "redimnet": ModelSpec("redimnet", "redimnet", file_options=("model_name", "dataset", "train_type")),
        "wavlm": ModelSpec("wavlm", "wavlm", file_options=("repo_id",), verifies=False, directory=True),
    }
)


def get_spec(name: str) -> ModelSpec:
    """The spec of a registry name; ValueError naming the known models otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def locate_weights(
    model: str, weights: str | os.PathLike[str] | None = None, *, verify: bool = True, **options: Any
) -> Path:
    """Find a model's pretrained weights without loading them (:meth:`ModelSpec.locate` of ``model``).

    Parameters
    ----------
    model : str
        ``"campplus"``, ``"redimnet"``, ``"wavlm"`` or ``"resemblyzer"``.
    weights : str or PathLike, optional
        The user's file (or directory holding it; for WavLM the checkpoint
        directory). When omitted, the weights directory and the model's hub
        cache are searched (see docs/models.md).
    verify : bool
        Check the file's SHA-256 where one is published.
    **options
        The model's loader options; those that choose a file (ReDimNet's
        ``model_name``, ``dataset``, ``train_type``; WavLM's ``repo_id``) are
        used, the others are ignored.

    Returns
    -------
    Path
        The weight file; for WavLM, the checkpoint directory.

    Raises
    ------
    WeightsNotFoundError
        Nothing found; the message says what to download and where to put it.
    WeightsChecksumError
        ``verify`` and the file is not the published one.
    ValueError
        Unknown model, or an unpublished ReDimNet variant without ``weights``.
    """
    return get_spec(model).locate(weights, verify=verify, **options)


def load_model(
    name: str, weights: str | os.PathLike[str] | None = None, device: str = "cpu", **options: Any
) -> SpeakerModel:
    """Build a speaker model and load its pretrained weights.

    Parameters
    ----------
    name : str
        One of :data:`MODELS`.
    weights : str or Path, optional
        A checkpoint file (or directory, for models published as one). When
        omitted, the standard caches are searched; when nothing is found the
        error says exactly what to download and where to put it.
    device : str
        torch device, ``"cpu"`` by default.
    **options
        Model-specific options (e.g. ReDimNet's ``model_name``).
    """
    return get_spec(name).load(weights, device, **options)
