"""Speaker models for the evaluation layer (needs the ``models`` extra: torch).

``load_model(name, weights=None, device="cpu")`` returns a
:class:`~minifloat_store.eval.models.base.SpeakerModel`;
``locate_weights(name)`` finds its weights without loading them. The models
are the :class:`~minifloat_store.eval.models.registry.ModelSpec` entries of
:data:`MODELS`. Each model lives in its own module, imported only when asked
for, so importing this package does not import torch.
"""

from __future__ import annotations

from minifloat_store.eval.models.base import SpeakerModel
from minifloat_store.eval.models.registry import MODELS, ModelSpec, get_spec, load_model, locate_weights

__all__ = ["MODELS", "ModelSpec", "SpeakerModel", "get_spec", "load_model", "locate_weights"]
