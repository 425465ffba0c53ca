"""CAM++ speaker embeddings (3D-Speaker's VoxCeleb model, 512-dim).

CAM++ (Wang et al., "CAM++: A Fast and Efficient Network for Speaker
Verification Using Context-Aware Masking", Interspeech 2023) is a D-TDNN
x-vector network with a 2-D convolutional front module:

- **FCM head**: a 3x3 convolution, two stages of two residual 2-D blocks
  (each stage halves the frequency axis), a stride-(2, 1) convolution; the
  32 channels x 10 frequency rows become 320 1-D channels.
- **x-vector trunk**: a TDNN layer (kernel 5, stride 2, 128 channels); three
  densely connected TDNN blocks (12, 24, 16 layers, growth 32, dilation 1, 2,
  2) whose layers gate their output with a **context-aware mask** computed
  from the utterance mean plus 100-frame segment means; a 1x1 "transit" layer
  halving the channels after each block; BN-ReLU; mean+std statistics pooling;
  a 1x1 dense layer to 512 followed by a **BatchNorm without affine
  parameters**, so the embedding is *not* L2-normalised (values of a few units).

The module and parameter names follow 3D-Speaker's
``speakerlab/models/campplus`` so that the published checkpoint
(ModelScope ``iic/speech_campplus_sv_en_voxceleb_16k``, revision v1.0.2, file
``campplus_voxceleb.bin``: a flat state_dict, 7,176,224 parameters) loads
with ``load_state_dict(strict=True)``.

Frontend, as 3D-Speaker's ``FBank(80, 16000, mean_nor=True)``: 80-bin Kaldi
fbank (25 ms / 10 ms, povey window, no dither) of the waveform as loaded by
torchaudio, i.e. float in [-1, 1] (3D-Speaker does not rescale to the int16
range; with mean subtraction a gain would cancel anyway), then the
per-utterance mean of each band is subtracted.

Threshold 0.381: the value the study uses for CAM++ (the authors' threshold).
Published Vox1-O EER: 0.73 %.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minifloat_store.eval.models.base import SpeakerModel
from minifloat_store.eval.models.frontends import kaldi_fbank
from minifloat_store.eval.models.registry import MODELS
from minifloat_store.eval.models.weights import (
    WeightsSource,
    load_strict,
    load_torch_state_dict,
    modelscope_cache_files,
)

MODELSCOPE_ID = "iic/speech_campplus_sv_en_voxceleb_16k"
WEIGHTS = WeightsSource(
    model="campplus",
    filename="campplus_voxceleb.bin",
    origin=f"ModelScope model {MODELSCOPE_ID}, revision v1.0.2",
    url=f"https://modelscope.cn/models/{MODELSCOPE_ID}/resolve/v1.0.2/campplus_voxceleb.bin",
    # SHA-256 of campplus_voxceleb.bin at revision v1.0.2 (29,357,703 bytes), as
    # recorded by several public projects that pin this checkpoint.
    sha256="5b1a88b6f8d85826fabef804779c3372b42f3af21457fa48bd5c097c0686b2de",
    notes=(
        "With the modelscope client: modelscope download --model "
        f"{MODELSCOPE_ID} --revision v1.0.2 campplus_voxceleb.bin --local_dir DIR"
    ),
)

#: Number of parameters of the VoxCeleb model (feat_dim 80, embedding_size 512).
N_PARAMETERS = 7_176_224
FEAT_DIM = 80
EMBEDDING_SIZE = 512
THRESHOLD = 0.381
#: Fewest fbank frames the network accepts: statistics pooling needs >= 2 frames
#: after the stride-2 TDNN layer.
MIN_FRAMES = 3


def _bn_relu(channels: int) -> nn.Sequential:
    """3D-Speaker's ``get_nonlinear("batchnorm-relu")``: the names give the state_dict keys."""
    return nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(channels), relu=nn.ReLU()))


class BasicResBlock(nn.Module):
    """2-D residual block; ``stride`` subsamples the frequency axis only."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class FCM(nn.Module):
    """Front convolution module: (B, F, T) fbank to (B, 32 * F / 8, T) channels."""

    def __init__(self, m_channels: int = 32, feat_dim: int = FEAT_DIM, num_blocks: tuple[int, int] = (2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.Sequential(
            *[BasicResBlock(m_channels, m_channels, 2 if i == 0 else 1) for i in range(num_blocks[0])]
        )
        self.layer2 = nn.Sequential(
            *[BasicResBlock(m_channels, m_channels, 2 if i == 0 else 1) for i in range(num_blocks[1])]
        )
        self.conv2 = nn.Conv2d(m_channels, m_channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        y = self.layer2(self.layer1(y))
        y = F.relu(self.bn2(self.conv2(y)))
        b, c, f, t = y.shape
        return y.reshape(b, c * f, t)


class TDNNLayer(nn.Module):
    """1-D convolution with 'same' padding, then BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        pad = (kernel_size - 1) // 2 * dilation
        self.linear = nn.Conv1d(in_channels, out_channels, kernel_size, stride, pad, dilation, bias=False)
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """A TDNN convolution gated by a context-aware mask.

    The mask is ``sigmoid(W2 relu(W1 c))`` with ``c`` the utterance mean plus
    the mean of the 100-frame segment each frame belongs to.
    """

    segment = 100

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int, reduction: int = 2):
        super().__init__()
        pad = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(bn_channels, out_channels, kernel_size, 1, pad, dilation, bias=False)
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        # ceil_mode: a last, shorter segment is averaged over its own frames
        seg = F.avg_pool1d(x, self.segment, self.segment, ceil_mode=True)
        context = x.mean(-1, keepdim=True) + seg.repeat_interleave(self.segment, dim=-1)[..., :t]
        mask = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return self.linear_local(x) * mask


class CAMDenseTDNNLayer(nn.Module):
    """BN-ReLU, 1x1 bottleneck, BN-ReLU, masked TDNN: adds ``out_channels`` features."""

    def __init__(self, in_channels: int, out_channels: int, bn_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = CAMLayer(bn_channels, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.ModuleList):
    """Densely connected layers ``tdnnd1..tdnndN``: each sees all earlier outputs."""

    def __init__(
        self, num_layers: int, in_channels: int, growth: int, bn_channels: int, kernel_size: int, dilation: int
    ):
        super().__init__()
        for i in range(num_layers):
            layer = CAMDenseTDNNLayer(in_channels + i * growth, growth, bn_channels, kernel_size, dilation)
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    """BN-ReLU then a 1x1 convolution (halves the channels between blocks)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    """Concatenated mean and unbiased standard deviation over time: (B, C, T) to (B, 2C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class DenseLayer(nn.Module):
    """The embedding layer: 1x1 convolution, then BatchNorm without affine parameters."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(out_channels, affine=False)))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C) pooled statistics to (B, out) before the final BatchNorm."""
        return self.linear(x.unsqueeze(-1)).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.project(x))


class CAMPPlus(nn.Module):
    """The CAM++ network: (B, T, feat_dim) mean-normalised fbank to (B, embedding_size).

    Parameters
    ----------
    feat_dim : int
        Number of fbank bins (80; must be a multiple of 8).
    embedding_size : int
        512 for the VoxCeleb model (192 for 3D-Speaker's Chinese models).
    growth_rate, bn_size, init_channels : int
        D-TDNN growth (32), bottleneck factor (4) and first TDNN width (128).
    """

    def __init__(
        self,
        feat_dim: int = FEAT_DIM,
        embedding_size: int = EMBEDDING_SIZE,
        growth_rate: int = 32,
        bn_size: int = 4,
        init_channels: int = 128,
    ) -> None:
        super().__init__()
        self.head = FCM(feat_dim=feat_dim)
        trunk: OrderedDict[str, nn.Module] = OrderedDict()
        trunk["tdnn"] = TDNNLayer(self.head.out_channels, init_channels, 5, stride=2)
        channels = init_channels
        for i, (layers, dilation) in enumerate(((12, 1), (24, 2), (16, 2)), start=1):
            trunk[f"block{i}"] = CAMDenseTDNNBlock(layers, channels, growth_rate, bn_size * growth_rate, 3, dilation)
            channels += layers * growth_rate
            trunk[f"transit{i}"] = TransitLayer(channels, channels // 2)
            channels //= 2
        trunk["out_nonlinear"] = _bn_relu(channels)
        trunk["stats"] = StatsPool()
        trunk["dense"] = DenseLayer(2 * channels, embedding_size)
        self.xvector = nn.Sequential(trunk)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def pooled(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, F) features to (B, 2C) pooled statistics (everything before the dense layer)."""
        x = self.head(feats.transpose(1, 2))
        for name, module in self.xvector.named_children():
            if name == "dense":
                break
            x = module(x)
        return x

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.xvector.dense(self.pooled(feats))


class CAMPPlusModel(SpeakerModel):
    """CAM++ with its frontend, as a :class:`SpeakerModel` (512-dim, threshold 0.381).

    Parameters
    ----------
    network : CAMPPlus
        The network, with weights loaded; it is put in eval mode.
    device : str
        torch device.
    """

    name = "campplus"
    dim = EMBEDDING_SIZE
    sample_rate = 16000
    threshold = THRESHOLD

    def __init__(self, network: CAMPPlus, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.dim = network.xvector.dense.linear.out_channels

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """Mean-normalised 80-bin Kaldi fbank.

        Parameters
        ----------
        waveform : ndarray of shape (samples,), float32 in [-1, 1], 16 kHz

        Returns
        -------
        ndarray of shape (frames, 80), float32
            ``frames = 1 + (samples - 400) // 160``; each band has zero mean.

        Raises
        ------
        ValueError
            If the waveform gives fewer than :data:`MIN_FRAMES` frames.
        """
        x = np.asarray(waveform)
        min_samples = 400 + 160 * (MIN_FRAMES - 1)
        if x.ndim == 1 and x.size < min_samples:
            raise ValueError(
                f"waveform too short for CAM++: {x.size} samples, needs at least {min_samples} "
                f"({min_samples / self.sample_rate:.3f} s at {self.sample_rate} Hz)"
            )
        feats = kaldi_fbank(waveform, self.sample_rate, num_mel_bins=FEAT_DIM)
        return feats - feats.mean(axis=0, keepdims=True)

    def _run(self, waveform: np.ndarray, before_bn: bool) -> np.ndarray:
        feats = torch.from_numpy(self.features(waveform)).unsqueeze(0).to(self.device)
        with torch.inference_mode():
            pooled = self.network.pooled(feats)
            dense = self.network.xvector.dense
            out = dense.project(pooled) if before_bn else dense(pooled)
        return out[0].float().cpu().numpy()

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """Embed one utterance.

        Parameters
        ----------
        waveform : ndarray of shape (samples,), float32 in [-1, 1]
            Mono, 16 kHz, at least 720 samples.

        Returns
        -------
        ndarray of shape (512,), float32
            The raw embedding after the final BatchNorm (not L2-normalised).
        """
        return self._run(waveform, before_bn=False)

    def embed_before_final_bn(self, waveform: np.ndarray) -> np.ndarray:
        """The dense layer's output before the final BatchNorm (the study's "before BN" statistics).

        Returns
        -------
        ndarray of shape (512,), float32
        """
        return self._run(waveform, before_bn=True)


def weights_source() -> WeightsSource:
    """The published v1.0.2 file (:data:`WEIGHTS`)."""
    return WEIGHTS


def weights_candidates(source: WeightsSource) -> list[Path]:
    """Copies of the file in the ModelScope cache, searched after the weights directory."""
    return modelscope_cache_files(MODELSCOPE_ID, source.filename)


def load(weights: str | Path | None = None, device: str = "cpu", verify: bool = True) -> CAMPPlusModel:
    """Load the pretrained CAM++ VoxCeleb model.

    Parameters
    ----------
    weights : str or Path, optional
        ``campplus_voxceleb.bin`` or a directory holding it. By default
        :func:`~minifloat_store.eval.models.weights.weights_dir` ``/campplus/``
        and the ModelScope cache are searched; if nothing is found the error
        says where to download the file and where to put it.
    device : str
        torch device.
    verify : bool
        Check the file's SHA-256 against the published v1.0.2 file. Pass
        ``False`` for another release or a fine-tuned copy of the same layout.

    Returns
    -------
    CAMPPlusModel
    """
    path = MODELS["campplus"].locate(weights, verify=verify)
    network = CAMPPlus()
    load_strict(network, load_torch_state_dict(path), path)
    return CAMPPlusModel(network, device=device)


__all__ = [
    "CAMPPlus",
    "CAMPPlusModel",
    "N_PARAMETERS",
    "THRESHOLD",
    "WEIGHTS",
    "load",
    "weights_candidates",
    "weights_source",
]
