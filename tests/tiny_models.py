"""Speaker models small enough to embed a second of audio in milliseconds, with random weights.

Shared by the model, extraction and reproduction tests; the callers have
already skipped when torch or transformers is missing.
"""

from __future__ import annotations

import pathlib
from typing import Any

# A ReDimNet exercising the other block types (basic_resnet_fwse, conv_exp != 1,
# 'att' 1D blocks, mfa, emb_bn) at a size that runs in milliseconds.
TINY_REDIMNET: dict[str, Any] = {
    "F": 24,
    "C": 4,
    "block_1d_type": "att",
    "block_2d_type": "basic_resnet_fwse",
    "stages_setup": [[1, 1, 2, [[3, 3]], 8], [2, 1, 1, [[3, 3]], None], [3, 1, 2, [[3, 3]], 4]],
    "group_divisor": 2,
    "out_channels": 64,
    "embed_dim": 32,
    "hop_length": 160,
    "emb_bn": True,
    "spec_params": {"norm_signal": True, "spec_norm": "mvn"},
}

# A few-layer WavLM with the -sv head layout (weighted layer sum, TDNN, x-vector).
TINY_WAVLM: dict[str, Any] = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(32, 32, 32),
    conv_kernel=(10, 3, 3),
    conv_stride=(5, 4, 4),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    num_buckets=32,
    max_bucket_distance=64,
    tdnn_dim=(32, 32, 32, 32, 64),
    xvector_output_dim=512,
    use_weighted_layer_sum=True,
    num_labels=7,
)


def save_tiny_redimnet(path: pathlib.Path, config: dict[str, Any] | None = None) -> Any:
    """Write a random-weight ReDimNet checkpoint as the official hub saves it; return the network."""
    import torch

    from minifloat_store.eval.models import redimnet

    config = TINY_REDIMNET if config is None else config
    network = redimnet.build_network(config)
    torch.save({"model_config": config, "state_dict": network.state_dict()}, path)
    return network


def save_tiny_wavlm(directory: pathlib.Path, do_normalize: bool | None = False, **overrides: Any) -> Any:
    """Write a random-weight WavLM -sv checkpoint (and its feature extractor unless ``do_normalize`` is None)."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    from minifloat_store.eval.models import wavlm

    torch.manual_seed(0)
    model = WavLMForXVector(WavLMConfig(**{**TINY_WAVLM, **overrides})).eval()
    with torch.no_grad():  # the default init leaves the x-vector near 0; make it a real function of the input
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(directory)
    if do_normalize is not None:
        settings = {**wavlm.PUBLISHED_FEATURE_EXTRACTOR, "do_normalize": do_normalize}
        Wav2Vec2FeatureExtractor(**settings).save_pretrained(directory)
    return model
