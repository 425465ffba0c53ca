"""Speaker models for the evaluation layer (needs the ``models`` extra: torch).

``load_model(name, weights=None, device="cpu")`` returns a
:class:`~minifloat_store.eval.models.base.SpeakerModel`. Each model lives in
its own module, imported only when asked for, so importing this package does
not import torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from minifloat_store.eval.models.base import SpeakerModel

# name -> module of this package that defines ``load(weights, device, **options)``.
MODELS: dict[str, str] = {
    "campplus": "campplus",
    "resemblyzer": "resemblyzer",
    "redimnet": "redimnet",
    "wavlm": "wavlm",
}


def load_model(name: str, weights: str | Path | None = None, device: str = "cpu", **options: Any) -> SpeakerModel:
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
    try:
        module_name = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None
    module = importlib.import_module(f"{__name__}.{module_name}")
    return module.load(weights=weights, device=device, **options)


__all__ = ["MODELS", "SpeakerModel", "load_model"]
