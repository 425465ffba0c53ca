"""WavLM-Base-Plus with its speaker-verification x-vector head (``microsoft/wavlm-base-plus-sv``).

WavLM ("Large-Scale Self-Supervised Pre-Training for Full Stack Speech
Processing", Chen et al., 2022) is a transformer on the raw 16 kHz waveform;
the ``-sv`` checkpoint adds a TDNN x-vector head trained with AM-softmax on
VoxCeleb-1 dev. This module runs it through transformers' ``WavLMForXVector``
and returns ``embeddings`` (512 values, not L2-normalised: cosine scoring does
that). The checkpoint's feature extractor has ``do_normalize: false``, so the
waveform goes in as it is; a directory whose ``preprocessor_config.json`` says
otherwise is honoured.

Weights are read only from disk: a directory given by the user, the weights
directory, or the Hugging Face cache, always with ``local_files_only=True``
and ``weights_only=True`` (``pytorch_model.bin`` is read by torch's restricted
unpickler).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from pickle import (
    UnpicklingError,  # only the error torch.load(weights_only=True) raises; nothing is unpickled
)

import numpy as np
import torch

from minifloat_store.eval.models._batching import as_waveform, embed_grouped
from minifloat_store.eval.models.base import SpeakerModel
from minifloat_store.eval.models.registry import MODELS
from minifloat_store.eval.models.weights import (
    WeightsSource,
    huggingface_cache_files,
)

REPO_ID = "microsoft/wavlm-base-plus-sv"

# The model card's cosine threshold ("if similarity < threshold: different speakers").
DEFAULT_THRESHOLD = 0.86

# The published preprocessor_config.json, used when a directory lacks one.
PUBLISHED_FEATURE_EXTRACTOR = {
    "do_normalize": False,
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": True,
    "sampling_rate": 16000,
}


def weights_source(repo_id: str = REPO_ID) -> WeightsSource:
    """The published checkpoint; it is a directory, found through its ``config.json``."""
    return WeightsSource(
        model="wavlm",
        filename="config.json",
        origin=f"Hugging Face model {repo_id} (with pytorch_model.bin and preprocessor_config.json beside it)",
        url=f"https://huggingface.co/{repo_id}/tree/main",
        notes=(
            "WavLM is published as a directory: put config.json, pytorch_model.bin (or model.safetensors) "
            "and preprocessor_config.json together in that directory, e.g.\n"
            f"    hf download {repo_id} config.json pytorch_model.bin preprocessor_config.json "
            "--local-dir <that directory>\n"
            f"or fill the Hugging Face cache, which is searched too: hf download {repo_id}"
        ),
    )


def weights_candidates(source: WeightsSource, repo_id: str = REPO_ID) -> list[Path]:
    """``config.json`` of the checkpoint in the Hugging Face cache, searched after the weights directory.

    The directory is found through its ``config.json``, which has no published
    SHA-256: WavLM's spec never verifies.
    """
    return huggingface_cache_files(repo_id, source.filename)


def _feature_extractor(directory: Path):
    """The checkpoint's ``Wav2Vec2FeatureExtractor`` (the published settings if the file is absent)."""
    from transformers import Wav2Vec2FeatureExtractor  # lazy: transformers is heavy and optional

    if (directory / "preprocessor_config.json").is_file():
        return Wav2Vec2FeatureExtractor.from_pretrained(directory, local_files_only=True)
    return Wav2Vec2FeatureExtractor(**PUBLISHED_FEATURE_EXTRACTOR)


class WavLMSpeakerModel(SpeakerModel):
    """``WavLMForXVector`` behind the :class:`SpeakerModel` interface.

    Parameters
    ----------
    model : transformers.WavLMForXVector
        A loaded model.
    feature_extractor : transformers.Wav2Vec2FeatureExtractor
        Its feature extractor (decides ``do_normalize`` and the sample rate).
    device : str
        torch device for inference.
    threshold : float
        Cosine accept threshold (accept when ``score >= threshold``).
    max_batch : int
        Most utterances of equal length embedded in one forward pass.

    Notes
    -----
    Utterances are never padded to a common length: the convolutional encoder
    of WavLM-Base normalises each channel over time (GroupNorm), so padding
    would change the embedding. Equal-length utterances share a forward pass.
    """

    name = "wavlm"

    def __init__(
        self,
        model,
        feature_extractor,
        device: str = "cpu",
        threshold: float = DEFAULT_THRESHOLD,
        max_batch: int = 8,
    ) -> None:
        self.model = model.to(device).eval()
        self.feature_extractor = feature_extractor
        self.device = torch.device(device)
        self.dim = int(model.config.xvector_output_dim)
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.threshold = float(threshold)
        self.max_batch = int(max_batch)
        self.do_normalize = bool(feature_extractor.do_normalize)
        self.min_samples = self._shortest_input()

    def _frames_after_tdnn(self, samples: int) -> int:
        frames = int(self.model._get_feat_extract_output_lengths(torch.tensor(samples)))
        # transformers' _get_tdnn_output_lengths ignores dilation; a dilated layer spans d * (k - 1) + 1 frames.
        config = self.model.config
        for kernel, dilation in zip(config.tdnn_kernel, config.tdnn_dilation, strict=True):
            frames -= dilation * (kernel - 1)
        return frames

    def _shortest_input(self) -> int:
        """Fewest samples giving 2 frames after the TDNN layers (the std of 1 frame is NaN)."""
        lo, hi = 1, self.sample_rate
        while self._frames_after_tdnn(hi) < 2:
            hi *= 2
        while lo < hi:
            mid = (lo + hi) // 2
            if self._frames_after_tdnn(mid) >= 2:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if self.do_normalize:
            # The feature extractor's own per-utterance zero-mean unit-variance normalisation.
            batch = np.stack(self.feature_extractor.zero_mean_unit_var_norm(list(batch), attention_mask=None))
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.model(input_values=x).embeddings.float().cpu().numpy()

    def _check(self, waveform: np.ndarray) -> np.ndarray:
        return as_waveform(waveform, min_samples=self.min_samples, sample_rate=self.sample_rate, model=self.name)

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """Embed one utterance: float32 (samples,) at 16 kHz -> raw float32 (512,)."""
        return self._forward(self._check(waveform)[None, :])[0]

    def embed_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Embed several utterances -> float32 (n, 512), equal to :meth:`embed` on each."""
        checked = [self._check(w) for w in waveforms]
        return embed_grouped(checked, self._forward, self.dim, self.max_batch)


def load(
    weights: str | Path | None = None,
    device: str = "cpu",
    *,
    repo_id: str = REPO_ID,
    threshold: float = DEFAULT_THRESHOLD,
    max_batch: int = 8,
) -> WavLMSpeakerModel:
    """Load ``microsoft/wavlm-base-plus-sv`` (or a compatible ``WavLMForXVector`` directory).

    Parameters
    ----------
    weights : str or Path, optional
        A directory holding ``config.json`` and the weights (``pytorch_model.bin``
        or ``model.safetensors``), optionally ``preprocessor_config.json``.
        When omitted, ``<weights_dir()>/wavlm/`` and then the Hugging Face cache
        (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``) are searched.
    device : str
        torch device.
    repo_id : str
        Hugging Face repository looked up in the cache.
    threshold : float
        Cosine accept threshold; 0.86 is the model card's.
    max_batch : int
        Most equal-length utterances per forward pass in :meth:`embed_batch`.

    Raises
    ------
    WeightsNotFoundError
        No such directory, or nothing in the caches; the message says what to download.
    ValueError
        The directory is not a WavLM x-vector checkpoint (another architecture,
        or weights missing for part of the network).
    """
    from transformers import WavLMForXVector  # lazy: transformers is heavy and optional

    directory = MODELS["wavlm"].locate(weights, repo_id=repo_id)
    model_type = json.loads((directory / "config.json").read_text()).get("model_type")
    if model_type != "wavlm":
        raise ValueError(f"{directory}/config.json describes model_type {model_type!r}, not a 'wavlm' checkpoint")
    try:
        model, info = WavLMForXVector.from_pretrained(
            directory, local_files_only=True, weights_only=True, output_loading_info=True
        )
    except UnpicklingError as exc:
        raise ValueError(
            f"{directory}: refused to load the weights: they hold objects other than tensors and plain "
            f"containers (torch.load weights_only=True said: {str(exc).splitlines()[0]})"
        ) from exc
    except OSError as exc:
        raise ValueError(f"{directory}: cannot load WavLM weights: {exc}") from exc
    if info["missing_keys"] or info.get("mismatched_keys"):
        # from_pretrained would otherwise run with a randomly initialised head.
        missing = sorted(info["missing_keys"])
        raise ValueError(
            f"{directory} is not a complete WavLMForXVector checkpoint: missing weights {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, mismatched {list(info.get('mismatched_keys', []))[:5]}"
        )
    return WavLMSpeakerModel(
        model, _feature_extractor(directory), device=device, threshold=threshold, max_batch=max_batch
    )


__all__ = [
    "DEFAULT_THRESHOLD",
    "PUBLISHED_FEATURE_EXTRACTOR",
    "REPO_ID",
    "WavLMSpeakerModel",
    "load",
    "weights_candidates",
    "weights_source",
]
