"""ReDimNet (IDRnD) speaker embeddings, reimplemented in pure torch.

ReDimNet ("Reshape Dimensions Network for Speaker Recognition", Yakovlev et
al., Interspeech 2024) alternates 2D convolution blocks on a (channels,
frequency, time) map with 1D blocks on the same volume reshaped to
(channels x frequency, time), and aggregates every stage's output with learnt
softmax weights. Its published checkpoints
(``https://github.com/IDRnD/ReDimNet/releases/download/latest/{model_name}-{dataset}-{train_type}.pt``)
hold ``{"model_config": dict, "state_dict": dict}``; this module builds the
network from ``model_config`` with the module and buffer names of the official
``ReDimNetWrap``, so the published ``state_dict`` loads with no key renaming.

The frontend is the official ``MelBanks`` without torchaudio: pre-emphasis
(0.97, reflect-padded), centred torch STFT (512-point, Hamming window of 400,
hop from the config: 240 samples in the released checkpoints), HTK
mel filterbank (20-7600 Hz, 72 bands), ``log(power + 1e-6)`` and per-band mean
subtraction over time. The output is the raw 192-dim embedding of the final
linear layer (no L2 normalisation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from pickle import (
    UnpicklingError,  # only the error torch.load(weights_only=True) raises; nothing is unpickled
)
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minifloat_store.eval.models._batching import as_waveform, embed_grouped
from minifloat_store.eval.models.base import SpeakerModel
from minifloat_store.eval.models.registry import MODELS
from minifloat_store.eval.models.weights import (
    WeightsSource,
    torch_hub_checkpoint_files,
)

RELEASE_URL = "https://github.com/IDRnD/ReDimNet/releases/download/latest/{filename}"

# (model_name, dataset, train_type) of every checkpoint listed in the official EVALUATION.md.
PUBLISHED_VARIANTS: frozenset[tuple[str, str, str]] = frozenset(
    [(f"b{i}", "vox2", t) for i in range(7) for t in ("ptn", "ft_lm")]
    + [(size, "vb2", "ptn") for size in ("M", "S")]
    + [(size, "vb2+vox2+cnc", "ft_mix") for size in ("M", "S")]
)

# Published cosine EERs (%) on Vox1-O / Vox1-E / Vox1-H (official EVALUATION.md).
PUBLISHED_EER: dict[tuple[str, str, str], tuple[float, float, float]] = {
    ("b0", "vox2", "ft_lm"): (1.16, 1.25, 2.20),
    ("b1", "vox2", "ft_lm"): (0.85, 0.97, 1.73),
    ("b2", "vox2", "ft_lm"): (0.57, 0.76, 1.32),
    ("b3", "vox2", "ft_lm"): (0.50, 0.73, 1.33),
    ("b4", "vox2", "ft_lm"): (0.51, 0.68, 1.26),
    ("b5", "vox2", "ft_lm"): (0.43, 0.61, 1.08),
    ("b6", "vox2", "ft_lm"): (0.40, 0.55, 1.05),
    ("M", "vb2+vox2+cnc", "ft_mix"): (0.835, 0.745, 1.284),
    ("M", "vb2", "ptn"): (1.319, 1.128, 2.000),
    ("S", "vb2+vox2+cnc", "ft_mix"): (0.936, 0.874, 1.510),
    ("S", "vb2", "ptn"): (1.542, 1.408, 2.505),
}

# Cosine threshold found by the study for its ReDimNet (b2, 5M parameters); other
# variants have no published threshold, so pass ``threshold=`` for them.
DEFAULT_THRESHOLD = 0.351

# ``ReDimNetWrap``'s keyword defaults: a ``model_config`` that omits a key means this value.
_WRAP_DEFAULTS: dict[str, Any] = {
    "F": 72,
    "C": 16,
    "block_1d_type": "att",
    "block_2d_type": "convnext_like",
    "stages_setup": [
        (1, 2, 1, [(3, 3)], 12),
        (2, 2, 1, [(3, 3)], 12),
        (1, 3, 1, [(3, 3)], 12),
        (2, 4, 1, [(3, 3)], 8),
        (1, 4, 1, [(3, 3)], 8),
        (2, 4, 1, [(3, 3)], 4),
    ],
    "group_divisor": 4,
    "out_channels": None,
    "embed_dim": 192,
    "num_classes": None,
    "class_dropout": 0.0,
    "feat_agg_dropout": 0.0,
    "head_activation": None,
    "hop_length": 160,
    "pooling_func": "ASTP",
    "feat_type": "pt",
    "global_context_att": False,
    "emb_bn": False,
    "spec_params": {"do_spec_aug": False, "freq_mask_width": (0, 6), "time_mask_width": (0, 8)},
    "return_all_outputs": False,
    "tf_optimized_arch": False,
}

# ``MelBanks``' keyword defaults (``n_mels`` and ``hop_length`` come from the top-level config).
_MEL_DEFAULTS: dict[str, Any] = {
    "sample_rate": 16000,
    "n_fft": 512,
    "win_length": 400,
    "f_min": 20.0,
    "f_max": 7600.0,
    "do_spec_aug": False,
    "norm_signal": False,
    "do_preemph": True,
    "spec_norm": "mn",
    "freq_start_bin": 0,
    "num_apply_spec_aug": 1,
    "freq_mask_width": (0, 8),
    "time_mask_width": (0, 10),
}


# ----------------------------------------------------------------------------
# Frontend
# ----------------------------------------------------------------------------


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 * log10(1 + hz / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> Tensor:
    """Triangular HTK mel filters without area normalisation (torchaudio's ``norm=None``).

    Parameters
    ----------
    n_freqs : int
        Number of linear STFT bins, ``n_fft // 2 + 1``; bin k is at ``k * (sample_rate / 2) / (n_freqs - 1)`` Hz.
    f_min, f_max : float
        Lower edge of the first and upper edge of the last filter, in Hz.
    n_mels : int
        Number of filters.
    sample_rate : int
        In Hz.

    Returns
    -------
    Tensor of shape (n_freqs, n_mels), float32
    """
    bin_hz = np.linspace(0.0, sample_rate // 2, n_freqs)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges_hz)
    offsets = edges_hz[None, :] - bin_hz[:, None]  # (n_freqs, n_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.from_numpy(np.maximum(0.0, np.minimum(rising, falling))).float()


class NormalizeAudio(nn.Module):
    """Per-utterance zero mean, unit variance (``norm_signal=True`` configs)."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(1)
        x = (x - x.mean(dim=2, keepdim=True)) / (x.std(dim=2, keepdim=True, unbiased=False) + self.eps)
        return x.squeeze(1)


class PreEmphasis(nn.Module):
    """``y[n] = x[n] - coef * x[n - 1]``, with ``x[-1] := x[1]`` (reflect padding).

    The filter is the buffer ``flipped_filter`` of shape (1, 1, 2), as in the checkpoints.
    """

    def __init__(self, coef: float = 0.97) -> None:
        super().__init__()
        self.register_buffer("flipped_filter", torch.tensor([[[-coef, 1.0]]], dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(1)
        return F.conv1d(F.pad(x, (1, 0), mode="reflect"), self.flipped_filter).squeeze(1)


class PowerSpectrogram(nn.Module):
    """Centred (reflect-padded) STFT power, ``|STFT|^2``; window in the buffer ``window``."""

    def __init__(self, n_fft: int, win_length: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        # Periodic Hamming, torch's default: what torchaudio stored in the checkpoints.
        self.register_buffer("window", torch.hamming_window(win_length))

    def forward(self, x: Tensor) -> Tensor:
        spec = torch.stft(
            x,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        return spec.abs().pow(2.0)


class MelScale(nn.Module):
    """Linear power spectrogram (..., n_freqs, frames) -> mel (..., n_mels, frames); buffer ``fb``."""

    def __init__(self, n_mels: int, sample_rate: int, f_min: float, f_max: float, n_freqs: int) -> None:
        super().__init__()
        self.register_buffer("fb", mel_filterbank(n_freqs, f_min, f_max, n_mels, sample_rate))

    def forward(self, spec: Tensor) -> Tensor:
        return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    """Power mel spectrogram with torchaudio's submodule names (``spectrogram``, ``mel_scale``)."""

    def __init__(
        self, sample_rate: int, n_fft: int, win_length: int, hop_length: int, f_min: float, f_max: float, n_mels: int
    ) -> None:
        super().__init__()
        self.spectrogram = PowerSpectrogram(n_fft, win_length, hop_length)
        self.mel_scale = MelScale(n_mels, sample_rate, f_min, f_max, n_fft // 2 + 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.mel_scale(self.spectrogram(x))


class MelBanks(nn.Module):
    """Waveform (batch, samples) -> log-mel (batch, n_mels, frames), float32.

    ``frames = 1 + samples // hop_length``. Keys: ``torchfbank.1.flipped_filter``,
    ``torchfbank.2.spectrogram.window``, ``torchfbank.2.mel_scale.fb`` (and
    ``spec_norm.*`` for ``spec_norm="bn"``). SpecAugment is a training-time
    augmentation with no parameters and is not applied here.
    """

    def __init__(
        self,
        n_mels: int,
        hop_length: int,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        f_min: float = 20.0,
        f_max: float = 7600.0,
        norm_signal: bool = False,
        do_preemph: bool = True,
        spec_norm: str = "mn",
    ) -> None:
        super().__init__()
        self.torchfbank = nn.Sequential(
            NormalizeAudio() if norm_signal else nn.Identity(),
            PreEmphasis() if do_preemph else nn.Identity(),
            MelSpectrogram(sample_rate, n_fft, win_length, hop_length, f_min, f_max, n_mels),
        )
        if spec_norm not in ("mn", "mvn", "bn"):
            raise ValueError(f"ReDimNet spec_params: unknown spec_norm {spec_norm!r}; known: 'mn', 'mvn', 'bn'")
        self.spec_norm_kind = spec_norm
        if spec_norm == "bn":
            self.spec_norm = nn.BatchNorm1d(n_mels)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.log(self.torchfbank(x.float()) + 1e-6)
        if self.spec_norm_kind == "mn":
            return x - x.mean(dim=-1, keepdim=True)
        if self.spec_norm_kind == "mvn":
            return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, keepdim=True) + 1e-8)
        return self.spec_norm(x)


# ----------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------


class ChannelLayerNorm(nn.Module):
    """LayerNorm over dim 1 of (batch, channels, ...) tensors; parameters ``weight``, ``bias``."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return self.weight.view(shape) * x + self.bias.view(shape)


class To1d(nn.Module):
    """(batch, c, f, t) -> (batch, f * c, t), frequency-major."""

    def forward(self, x: Tensor) -> Tensor:
        b, c, f, t = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, c * f, t)


class To2d(nn.Module):
    """(batch, f * c, t) -> (batch, c, f, t); inverse of :class:`To1d`."""

    def __init__(self, f: int, c: int) -> None:
        super().__init__()
        self.f = f
        self.c = c

    def forward(self, x: Tensor) -> Tensor:
        b, _, t = x.shape
        return x.reshape(b, self.f, self.c, t).permute(0, 2, 1, 3)


class WeightedSum1d(nn.Module):
    """Softmax-weighted sum of the outputs of all earlier stages; parameter ``w`` (1, N, C, 1)."""

    def __init__(self, n: int, channels: int, requires_grad: bool = True) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, n, channels, 1), requires_grad=requires_grad)

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        return (F.softmax(self.w, dim=1) * torch.stack(list(xs), dim=1)).sum(dim=1)


class ConvNeXtLikeBlock(nn.Module):
    """Residual: depthwise-grouped convs (one per kernel size), BN, activation, pointwise conv."""

    def __init__(
        self,
        channels: int,
        dim: int,
        kernel_sizes: Iterable[int | tuple[int, int]],
        group_divisor: int | None = 1,
        activation: str = "gelu",
    ) -> None:
        super().__init__()
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        kernel_sizes = [tuple(k) if isinstance(k, (list, tuple)) else k for k in kernel_sizes]
        groups = channels // group_divisor if group_divisor is not None else 1
        self.dwconvs = nn.ModuleList(
            conv(channels, channels, kernel_size=k, padding="same", groups=groups) for k in kernel_sizes
        )
        self.norm = norm(channels * len(kernel_sizes))
        self.act = nn.GELU() if activation == "gelu" else nn.ReLU()
        self.pwconv1 = conv(channels * len(kernel_sizes), channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.cat([dwconv(x) for dwconv in self.dwconvs], dim=1)
        return x + self.pwconv1(self.act(self.norm(y)))


class FrequencySE(nn.Module):
    """Squeeze-excitation over frequency bins; layers ``squeeze``, ``exitation`` (sic, as published)."""

    def __init__(self, num_freq: int, num_feats: int) -> None:
        super().__init__()
        self.squeeze = nn.Linear(num_freq, num_feats)
        self.exitation = nn.Linear(num_feats, num_freq)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.exitation(F.relu(self.squeeze(x.mean(dim=(1, 3))))))
        return x * gate[:, None, :, None]


class ResBasicBlock(nn.Module):
    """ResNet basic block with grouped 3x3 + pointwise convs and optional frequency SE."""

    def __init__(
        self, channels: int, num_freq: int, se_channels: int, group_divisor: int | None, use_fwse: bool
    ) -> None:
        super().__init__()
        grouped = group_divisor is not None
        groups = channels // group_divisor if grouped else 1
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False, groups=groups)
        self.conv1pw = nn.Conv2d(channels, channels, 1) if grouped else nn.Identity()
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False, groups=groups)
        self.conv2pw = nn.Conv2d(channels, channels, 1) if grouped else nn.Identity()
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = FrequencySE(num_freq, se_channels) if use_fwse else nn.Identity()
        # The blocks never change the channel count, so the shortcut is the identity.
        self.downsample = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # ReLU before bn1 is the published order.
        out = self.bn1(F.relu(self.conv1pw(self.conv1(x))))
        out = self.se(self.bn2(self.conv2pw(self.conv2(out))))
        return F.relu(out + self.downsample(x))


class ConvBlock2d(nn.Module):
    """The 2D block of a stage, chosen by ``block_2d_type``; wrapped as ``conv_block``."""

    def __init__(self, channels: int, num_freq: int, block_type: str, group_divisor: int | None) -> None:
        super().__init__()
        if block_type in ("convnext_like", "convnext_like_relu"):
            activation = "relu" if block_type.endswith("relu") else "gelu"
            self.conv_block: nn.Module = ConvNeXtLikeBlock(channels, 2, [(3, 3)], group_divisor, activation)
        elif block_type in ("basic_resnet", "basic_resnet_fwse"):
            se_channels = min(64, max(channels, 32))
            self.conv_block = ResBasicBlock(
                channels, num_freq, se_channels, group_divisor, use_fwse=block_type.endswith("fwse")
            )
        else:
            raise ValueError(
                f"ReDimNet model_config: unknown block_2d_type {block_type!r}; known: "
                "'convnext_like', 'convnext_like_relu', 'basic_resnet', 'basic_resnet_fwse'"
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_block(x)


class MultiHeadAttention(nn.Module):
    """Self-attention on (batch, time, channels); projections ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"ReDimNet attention: width {embed_dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape

        def heads(y: Tensor) -> Tensor:
            return y.view(b, t, self.num_heads, d // self.num_heads).transpose(1, 2)

        # Default scale 1/sqrt(head_dim), no mask: the published attention.
        y = F.scaled_dot_product_attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)))
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    """``output_dense(gelu_tanh(intermediate_dense(x)))``."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(hidden, intermediate)
        self.output_dense = nn.Linear(intermediate, hidden)

    def forward(self, x: Tensor) -> Tensor:
        # The published activation is "gelu_new", the tanh approximation.
        return self.output_dense(F.gelu(self.intermediate_dense(x), approximate="tanh"))


class TransformerEncoderLayer(nn.Module):
    """Post-norm transformer layer on channels-first (batch, channels, time) input."""

    def __init__(self, hidden: int, intermediate: int, num_heads: int = 4) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(hidden, num_heads)
        self.layer_norm = nn.LayerNorm(hidden, eps=1e-6)
        self.feed_forward = FeedForward(hidden, intermediate)
        self.final_layer_norm = nn.LayerNorm(hidden, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x.transpose(1, 2)
        x = self.layer_norm(x + self.attention(x))
        x = self.final_layer_norm(x + self.feed_forward(x))
        return x.transpose(1, 2)


class PosEncConv(nn.Module):
    """Convolutional positional encoding: ``x + LayerNorm(depthwise_conv(x))``."""

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=groups)
        self.norm = ChannelLayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm(self.conv(x))


class TimeContextBlock1d(nn.Module):
    """The 1D block: reduce channels, model time context (``tcm``), expand, add the input."""

    def __init__(self, channels: int, hidden: int, block_type: str) -> None:
        super().__init__()
        self.red_dim_conv = nn.Sequential(nn.Conv1d(channels, hidden, 1), ChannelLayerNorm(hidden))
        if block_type == "fc":
            self.tcm = nn.Sequential(
                nn.Conv1d(hidden, hidden * 2, 1),
                ChannelLayerNorm(hidden * 2),
                nn.GELU(),
                nn.Conv1d(hidden * 2, hidden, 1),
            )
        elif block_type == "conv":
            self.tcm = nn.Sequential(*[ConvNeXtLikeBlock(hidden, 1, [7, 15, 31]) for _ in range(4)])
        elif block_type == "att":
            self.tcm = nn.Sequential(
                PosEncConv(hidden, kernel_size=59, groups=hidden), TransformerEncoderLayer(hidden, hidden * 2)
            )
        elif block_type == "conv+att":
            self.tcm = nn.Sequential(
                *[ConvNeXtLikeBlock(hidden, 1, [k]) for k in (7, 19, 31, 59)], TransformerEncoderLayer(hidden, hidden)
            )
        else:
            raise ValueError(
                f"ReDimNet model_config: unknown block_1d_type {block_type!r}; known: 'fc', 'conv', 'att', 'conv+att'"
            )
        self.exp_dim_conv = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.exp_dim_conv(self.tcm(self.red_dim_conv(x)))


class AttentiveStatsPooling(nn.Module):
    """ASTP (ECAPA): attention-weighted mean and std over time; (batch, D, T) -> (batch, 2 D)."""

    def __init__(self, in_dim: int, global_context_att: bool = False, bottleneck_dim: int = 128) -> None:
        super().__init__()
        self.global_context_att = global_context_att
        self.linear1 = nn.Conv1d(in_dim * 3 if global_context_att else in_dim, bottleneck_dim, 1)
        self.linear2 = nn.Conv1d(bottleneck_dim, in_dim, 1)
        self.out_dim = 2 * in_dim

    def forward(self, x: Tensor) -> Tensor:
        if self.global_context_att:
            mean = x.mean(dim=-1, keepdim=True).expand_as(x)
            std = torch.sqrt(x.var(dim=-1, keepdim=True) + 1e-7).expand_as(x)
            context = torch.cat((x, mean, std), dim=1)
        else:
            context = x
        alpha = torch.softmax(self.linear2(torch.tanh(self.linear1(context))), dim=2)
        mean = torch.sum(alpha * x, dim=2)
        var = torch.sum(alpha * x * x, dim=2) - mean * mean
        return torch.cat([mean, torch.sqrt(var.clamp(min=1e-7))], dim=1)


class StatsPooling(nn.Module):
    """TSTP: plain mean and std over time; (batch, D, T) -> (batch, 2 D)."""

    def __init__(self, in_dim: int, **_: Any) -> None:
        super().__init__()
        self.out_dim = 2 * in_dim

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x.mean(dim=-1), torch.sqrt(x.var(dim=-1) + 1e-7)], dim=1)


class AveragePooling(nn.Module):
    """TAP: mean over time; (batch, D, T) -> (batch, D)."""

    def __init__(self, in_dim: int, **_: Any) -> None:
        super().__init__()
        self.out_dim = in_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=-1)


_POOLINGS: dict[str, type[nn.Module]] = {"ASTP": AttentiveStatsPooling, "TSTP": StatsPooling, "TAP": AveragePooling}


# ----------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------


class ReDimNetBackbone(nn.Module):
    """Log-mel (batch, 1, n_freq, T) -> frame features (batch, out_channels or channels * n_freq, T).

    ``n_freq`` and ``channels`` are the config's ``F`` and ``C``.
    """

    def __init__(
        self,
        n_freq: int,
        channels: int,
        block_1d_type: str,
        block_2d_type: str,
        stages_setup: Sequence[Sequence[Any]],
        group_divisor: int | None,
        out_channels: int | None,
    ) -> None:
        super().__init__()
        width = n_freq * channels  # channels of every 1D view: the volume c * f is kept through the network
        self.num_stages = len(stages_setup)
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding="same"), ChannelLayerNorm(channels), To1d())
        c, f = channels, n_freq
        for index, stage in enumerate(stages_setup):
            if len(stage) != 5:
                raise ValueError(
                    f"ReDimNet model_config: stages_setup[{index}] = {stage!r}; expected "
                    "(stride, num_blocks, conv_exp, kernel_sizes, att_block_red)"
                )
            # kernel_sizes is unused by the published builder (2D blocks are always 3x3).
            stride, num_blocks, conv_exp, _kernel_sizes, att_block_red = stage
            if stride not in (1, 2, 3) or f % stride:
                raise ValueError(
                    f"ReDimNet model_config: stage {index} stride {stride} must be 1, 2 or 3 and divide {f} bins"
                )
            n_inputs = index + 1
            layers: list[nn.Module] = [
                WeightedSum1d(n_inputs, width if n_inputs > 1 else 1, requires_grad=n_inputs > 1),
                To2d(f, c),
                nn.Conv2d(c, int(stride * c * conv_exp), kernel_size=(stride, 1), stride=(stride, 1)),
            ]
            c, f = stride * c, f // stride
            layers += [ConvBlock2d(int(c * conv_exp), f, block_2d_type, group_divisor) for _ in range(num_blocks)]
            if conv_exp != 1:
                both_relu = "relu" in block_1d_type and "relu" in block_2d_type
                layers.append(
                    nn.Sequential(
                        nn.Conv2d(
                            int(c * conv_exp),
                            c,
                            3,
                            padding="same",
                            groups=c // group_divisor if group_divisor is not None else 1,
                        ),
                        nn.BatchNorm2d(c, eps=1e-6),
                        nn.ReLU() if both_relu else nn.GELU(),
                        nn.Conv2d(c, c, 1),
                    )
                )
            layers.append(To1d())
            if att_block_red is not None:
                layers.append(TimeContextBlock1d(width, width // att_block_red, block_1d_type))
            setattr(self, f"stage{index}", nn.Sequential(*layers))
        self.fin_wght1d = WeightedSum1d(self.num_stages + 1, width)
        if out_channels is not None:
            self.mfa: nn.Module = nn.Sequential(nn.Conv1d(width, out_channels, 1), nn.BatchNorm1d(out_channels))
        else:
            self.mfa = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        outputs = [self.stem(x)]
        for index in range(self.num_stages):
            outputs.append(getattr(self, f"stage{index}")(outputs))
        return self.mfa(self.fin_wght1d(outputs))


class ReDimNetNetwork(nn.Module):
    """Waveform (batch, samples) float32 -> embedding (batch, embed_dim) float32.

    Module names follow the official ``ReDimNetWrap`` (``spec``, ``backbone``,
    ``pool``, ``bn``, ``linear``, ``bn2``, ``cls_head``). A classifier head
    (``num_classes`` set) is built so such checkpoints load, but never applied:
    the embedding is the output of ``linear`` (and ``bn2`` when ``emb_bn``).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        cfg = _complete_config(config)
        spec_params = {k: v for k, v in {**_MEL_DEFAULTS, **cfg["spec_params"]}.items() if k in _MEL_BUILD_KEYS}
        self.sample_rate = int(spec_params["sample_rate"])
        self.min_samples = int(spec_params["n_fft"]) // 2 + 1  # the centred STFT reflect-pads n_fft // 2
        self.spec = MelBanks(n_mels=cfg["F"], hop_length=cfg["hop_length"], **spec_params)
        self.backbone = ReDimNetBackbone(
            cfg["F"],
            cfg["C"],
            cfg["block_1d_type"],
            cfg["block_2d_type"],
            cfg["stages_setup"],
            cfg["group_divisor"],
            cfg["out_channels"],
        )
        pool_in = cfg["out_channels"] if cfg["out_channels"] is not None else cfg["C"] * cfg["F"]
        self.pool = _POOLINGS[cfg["pooling_func"]](pool_in, global_context_att=cfg["global_context_att"])
        self.bn = nn.BatchNorm1d(self.pool.out_dim)
        self.linear = nn.Linear(self.pool.out_dim, cfg["embed_dim"])
        self.bn2 = nn.BatchNorm1d(cfg["embed_dim"]) if cfg["emb_bn"] else None
        self.embed_dim = int(cfg["embed_dim"])
        if cfg["num_classes"] is not None:
            # Same indices as the published head (ReLU, Dropout, Linear, activation).
            self.cls_head = nn.Sequential(
                nn.ReLU(), nn.Dropout(), nn.Linear(cfg["embed_dim"], cfg["num_classes"]), nn.Identity()
            )
        else:
            self.cls_head = None

    def forward(self, waveform: Tensor) -> Tensor:
        x = self.spec(waveform).unsqueeze(1)
        x = self.linear(self.bn(self.pool(self.backbone(x))))
        return self.bn2(x) if self.bn2 is not None else x


_MEL_BUILD_KEYS = frozenset(
    ["sample_rate", "n_fft", "win_length", "f_min", "f_max", "norm_signal", "do_preemph", "spec_norm"]
)


def _complete_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Fill ``ReDimNetWrap`` defaults and reject settings this implementation cannot honour."""
    if not isinstance(config, Mapping):
        raise ValueError(f"ReDimNet model_config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - set(_WRAP_DEFAULTS))
    if unknown:
        raise ValueError(
            f"ReDimNet model_config has keys this implementation does not know: {unknown}; "
            f"known: {sorted(_WRAP_DEFAULTS)}"
        )
    cfg = {**_WRAP_DEFAULTS, **config}
    spec_params = dict(cfg["spec_params"] or {})
    unknown_spec = sorted(set(spec_params) - set(_MEL_DEFAULTS))
    if unknown_spec:
        raise ValueError(
            f"ReDimNet model_config['spec_params'] has unknown keys {unknown_spec}; known: {sorted(_MEL_DEFAULTS)}"
        )
    cfg["spec_params"] = spec_params
    if cfg["feat_type"] not in ("pt", "pt_mel"):
        raise ValueError(
            f"ReDimNet model_config: feat_type {cfg['feat_type']!r} (the TF-style frontend) is not implemented; "
            "only the torch mel frontend ('pt') of the published checkpoints is"
        )
    if cfg["tf_optimized_arch"]:
        raise ValueError("ReDimNet model_config: tf_optimized_arch=True is not implemented (nor in the official code)")
    if cfg["pooling_func"] not in _POOLINGS:
        raise ValueError(
            f"ReDimNet model_config: pooling_func {cfg['pooling_func']!r} is not implemented; "
            f"known: {sorted(_POOLINGS)}"
        )
    return cfg


def build_network(config: Mapping[str, Any]) -> ReDimNetNetwork:
    """Build an untrained ReDimNet from a checkpoint's ``model_config``, in eval mode.

    Parameters
    ----------
    config : mapping
        Keyword arguments of the official ``ReDimNetWrap`` (missing keys take its defaults).
    """
    return ReDimNetNetwork(config).eval()


# ----------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------


def checkpoint_filename(model_name: str = "b2", dataset: str = "vox2", train_type: str = "ft_lm") -> str:
    """File name of a published checkpoint, e.g. ``"b2-vox2-ft_lm.pt"``."""
    return f"{model_name}-{dataset}-{train_type}.pt"


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read a ReDimNet checkpoint with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path : str or Path
        A ``.pt`` file holding ``{"model_config": dict, "state_dict": dict}``.

    Returns
    -------
    (model_config, state_dict)
    """
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except UnpicklingError as exc:
        raise ValueError(
            f"{path}: refused to load: it holds objects other than tensors and plain containers "
            f"(torch.load weights_only=True said: {exc})"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not a readable torch checkpoint (truncated download?): {exc}") from exc
    if not isinstance(blob, Mapping) or "model_config" not in blob or "state_dict" not in blob:
        keys = sorted(blob) if isinstance(blob, Mapping) else type(blob).__name__
        raise ValueError(
            f"{path}: not a ReDimNet checkpoint: expected a dict with 'model_config' and 'state_dict', got {keys}"
        )
    return dict(blob["model_config"]), dict(blob["state_dict"])


def build_from_checkpoint(path: str | Path) -> ReDimNetNetwork:
    """Build the network described by a checkpoint and load its weights (every key must match)."""
    config, state_dict = read_checkpoint(path)
    network = build_network(config)
    result = network.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{path}: state_dict does not match the network built from its model_config: "
            f"missing {result.missing_keys[:5]}{' ...' if len(result.missing_keys) > 5 else ''}, "
            f"unexpected {result.unexpected_keys[:5]}{' ...' if len(result.unexpected_keys) > 5 else ''}"
        )
    return network.eval()


def weights_source(model_name: str = "b2", dataset: str = "vox2", train_type: str = "ft_lm") -> WeightsSource:
    """Where a published checkpoint comes from (no SHA-256 is published for these files)."""
    filename = checkpoint_filename(model_name, dataset, train_type)
    url = RELEASE_URL.format(filename=filename)
    return WeightsSource(
        model="redimnet",
        filename=filename,
        origin="the IDRnD/ReDimNet GitHub release 'latest' (torch.hub IDRnD/ReDimNet)",
        url=url,
        notes=(
            "torch hub's directory is searched too: python -c \"import torch; "
            f"torch.hub.download_url_to_file('{url}', torch.hub.get_dir() + '/checkpoints/{filename}')\""
        ),
    )


def weights_candidates(
    source: WeightsSource, model_name: str = "b2", dataset: str = "vox2", train_type: str = "ft_lm"
) -> list[Path]:
    """The checkpoint in torch hub's directory, searched after the weights directory.

    Raises
    ------
    ValueError
        The variant was never published, so there is nothing to search for:
        the user must give the file.
    """
    if (model_name, dataset, train_type) not in PUBLISHED_VARIANTS:
        known = ", ".join("-".join(v) for v in sorted(PUBLISHED_VARIANTS))
        raise ValueError(
            f"no published ReDimNet checkpoint {checkpoint_filename(model_name, dataset, train_type)!r}; "
            f"published (model_name-dataset-train_type): {known}; "
            "give the file with weights=/--weights"
        )
    return torch_hub_checkpoint_files(source.filename)


# ----------------------------------------------------------------------------
# The speaker model
# ----------------------------------------------------------------------------


class ReDimNetSpeakerModel(SpeakerModel):
    """ReDimNet behind the :class:`SpeakerModel` interface.

    Parameters
    ----------
    network : ReDimNetNetwork
        A built (and usually loaded) network.
    device : str
        torch device for inference.
    threshold : float
        Cosine accept threshold (accept when ``score >= threshold``).
    max_batch : int
        Most utterances of equal length embedded in one forward pass.
    """

    name = "redimnet"

    def __init__(
        self, network: ReDimNetNetwork, device: str = "cpu", threshold: float = DEFAULT_THRESHOLD, max_batch: int = 16
    ) -> None:
        self.network = network.to(device).eval()
        self.device = torch.device(device)
        self.dim = network.embed_dim
        self.sample_rate = network.sample_rate
        self.threshold = float(threshold)
        self.max_batch = int(max_batch)

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)
            return self.network(x).float().cpu().numpy()

    def _check(self, waveform: np.ndarray) -> np.ndarray:
        return as_waveform(
            waveform, min_samples=self.network.min_samples, sample_rate=self.sample_rate, model=self.name
        )

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """Embed one utterance: float32 (samples,) at 16 kHz -> raw float32 (192,)."""
        return self._forward(self._check(waveform)[None, :])[0]

    def embed_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Embed several utterances -> float32 (n, 192), equal to :meth:`embed` on each.

        Utterances of equal length share a forward pass; none is padded.
        """
        checked = [self._check(w) for w in waveforms]
        return embed_grouped(checked, self._forward, self.dim, self.max_batch)


def load(
    weights: str | Path | None = None,
    device: str = "cpu",
    *,
    model_name: str = "b2",
    dataset: str = "vox2",
    train_type: str = "ft_lm",
    threshold: float = DEFAULT_THRESHOLD,
    max_batch: int = 16,
    verify: bool = True,
) -> ReDimNetSpeakerModel:
    """Load a published ReDimNet checkpoint.

    Parameters
    ----------
    weights : str or Path, optional
        The ``.pt`` file, or a directory holding ``{model_name}-{dataset}-{train_type}.pt``.
        When omitted, ``<weights_dir()>/redimnet/`` and then torch hub's checkpoint
        directory (``$TORCH_HOME/hub/checkpoints``, by default
        ``~/.cache/torch/hub/checkpoints``) are searched.
    device : str
        torch device.
    model_name : str
        ``"b0"`` .. ``"b6"``, ``"M"`` or ``"S"``.
    dataset : str
        ``"vox2"``, ``"vb2"`` or ``"vb2+vox2+cnc"``.
    train_type : str
        ``"ptn"`` (pretrained), ``"ft_lm"`` (large-margin fine-tuned) or ``"ft_mix"``.
    threshold : float
        Cosine accept threshold; 0.351 is the study's value for b2.
    max_batch : int
        Most equal-length utterances per forward pass in :meth:`embed_batch`.
    verify : bool
        Check the file's SHA-256 when one is known (none is published for ReDimNet yet).

    Raises
    ------
    WeightsNotFoundError
        The checkpoint is not there; the message names the URL and the destination.
    ValueError
        The file is not a ReDimNet checkpoint, needs unpickling beyond plain
        containers, or its ``state_dict`` does not match its ``model_config``;
        or ``weights`` is omitted for a variant that was never published.
    """
    path = MODELS["redimnet"].locate(
        weights, verify=verify, model_name=model_name, dataset=dataset, train_type=train_type
    )
    return ReDimNetSpeakerModel(build_from_checkpoint(path), device=device, threshold=threshold, max_batch=max_batch)


__all__ = [
    "DEFAULT_THRESHOLD",
    "PUBLISHED_EER",
    "PUBLISHED_VARIANTS",
    "MelBanks",
    "ReDimNetNetwork",
    "ReDimNetSpeakerModel",
    "build_from_checkpoint",
    "build_network",
    "checkpoint_filename",
    "load",
    "mel_filterbank",
    "read_checkpoint",
    "weights_candidates",
    "weights_source",
]
