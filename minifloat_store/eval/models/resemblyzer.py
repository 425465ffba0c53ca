"""Resemblyzer's GE2E voice encoder (256-dim), reimplemented on its published weights.

The encoder (Wan et al., "Generalized End-to-End Loss for Speaker
Verification", ICASSP 2018; weights trained by Resemble AI) is a 3-layer LSTM
(40 inputs, 256 hidden) whose last hidden state goes through a 256x256 linear
layer, a ReLU and L2 normalisation. An utterance is cut into 160-frame
(1.6 s) partial utterances, 1.3 per second, each embedded; the utterance
embedding is the L2-normalised mean of the partial embeddings. Embeddings are
therefore non-negative with unit norm, and cosines lie in [0, 1].

Frontend (Resemblyzer's ``audio.py``): at 16 kHz, the waveform is first
raised to -30 dBFS RMS if it is quieter (never lowered), then
:func:`~minifloat_store.eval.models.frontends.resemblyzer_mel` gives a 40-band
power (not log) mel spectrogram, 25 ms window, 10 ms hop. Resemblyzer's
``preprocess_wav`` also cuts silences longer than about 0.2 s with webrtcvad; that
needs a C extension, so it is off by default here (``trim_silence=True`` turns
it on and then matches ``preprocess_wav`` exactly).

Weights: ``pretrained.pt`` ships inside the ``resemblyzer`` PyPI package
(0.1.4: SHA-256 ``39373b86...134e``). Its ``model_state`` is loaded with
``torch.load(weights_only=True)`` into :class:`VoiceEncoder`, whose parameter
names are those of Resemblyzer's own class (including the two GE2E
similarity scalars, unused at inference).

Threshold 0.75: Resemblyzer publishes no verification threshold. Its
embeddings are non-negative, so even different speakers score high (about
0.5-0.75 in its demos); same-speaker utterances of a few seconds usually score
above 0.8. 0.75 sits between the two; it is a rough default, not tuned on
VoxCeleb. (On the small Debian corpus of :mod:`minifloat_store.eval.data.debian_voices`,
28 voices x 3 utterances of 3-6 s, 84 same-voice and 3,402 different-voice
pairs, it gives FRR 8.3 % / FAR 0.6 %; the equal-error threshold there is
about 0.69, EER about 4.8 %.) Calibrate it on your own trials
before drawing conclusions from FAR/FRR at this threshold.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from minifloat_store.eval.models.base import SpeakerModel
from minifloat_store.eval.models.frontends import RESEMBLYZER_HOP, RESEMBLYZER_N_MELS, resemblyzer_mel
from minifloat_store.eval.models.registry import MODELS
from minifloat_store.eval.models.weights import WeightsSource, load_strict, load_torch_state_dict

WEIGHTS = WeightsSource(
    model="resemblyzer",
    filename="pretrained.pt",
    origin="Resemblyzer (PyPI package resemblyzer 0.1.4, file resemblyzer/pretrained.pt)",
    url="https://github.com/resemble-ai/Resemblyzer/raw/master/resemblyzer/pretrained.pt",
    # From the RECORD of Resemblyzer-0.1.4-py3-none-any.whl (17,090,379 bytes).
    sha256="39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
    notes=(
        "It also ships inside the PyPI package: `pip install resemblyzer` (found automatically "
        "once installed), or `pip download resemblyzer==0.1.4 --no-deps` and unzip "
        "resemblyzer/pretrained.pt from the wheel."
    ),
)

EMBEDDING_SIZE = 256
HIDDEN_SIZE = 256
NUM_LAYERS = 3
THRESHOLD = 0.75
PARTIAL_FRAMES = 160  # 1.6 s
PARTIALS_PER_SECOND = 1.3
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
SAMPLE_RATE = 16000
_INT16_MAX = 2**15 - 1


class VoiceEncoder(nn.Module):
    """The GE2E network: (B, frames, 40) mel to (B, 256) unit-norm, non-negative embeddings.

    ``relu=False`` skips the final ReLU: the linear layer's output, L2-normalised
    (signed values; the published model always applies the ReLU). Used to measure
    encodings on a network output without it.
    """

    def __init__(self, relu: bool = True) -> None:
        super().__init__()
        self.relu = relu
        self.lstm = nn.LSTM(RESEMBLYZER_N_MELS, HIDDEN_SIZE, NUM_LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN_SIZE, EMBEDDING_SIZE)
        # GE2E's learned similarity scale and offset: only used by the training
        # loss, kept so the published state_dict loads strictly.
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = self.linear(hidden[-1])
        if self.relu:
            raw = torch.relu(raw)
        return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True)


def partial_starts(n_samples: int, rate: float = PARTIALS_PER_SECOND, min_coverage: float = MIN_COVERAGE) -> list[int]:
    """First mel frame of each 160-frame partial utterance (Resemblyzer's ``compute_partial_slices``).

    Parameters
    ----------
    n_samples : int
        Length of the waveform.
    rate : float
        Partials per second; consecutive partials start ``round(100 / rate)``
        frames apart (77 at 1.3/s).
    min_coverage : float
        The last partial is dropped when less than this fraction of it lies
        inside the waveform, unless it is the only one.

    Returns
    -------
    list of int
        Start frames; partial ``i`` covers frames ``[s, s + 160)``, i.e.
        samples ``[160 s, 160 (s + 160))`` (zero-padded past the end).
    """
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    n_frames = int(np.ceil((n_samples + 1) / RESEMBLYZER_HOP))
    step = int(np.round((SAMPLE_RATE / rate) / RESEMBLYZER_HOP))
    if not 0 < step <= PARTIAL_FRAMES:
        raise ValueError(
            f"rate {rate}/s gives partials {step} frames apart; it must be in "
            f"[{SAMPLE_RATE / (RESEMBLYZER_HOP * PARTIAL_FRAMES):.3f}, {SAMPLE_RATE / RESEMBLYZER_HOP}]"
        )
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    last = starts[-1] * RESEMBLYZER_HOP
    coverage = (n_samples - last) / (PARTIAL_FRAMES * RESEMBLYZER_HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


def normalize_volume(waveform: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Raise a waveform's RMS level to ``target_dbfs`` if it is below (never lower it).

    Returns
    -------
    ndarray of shape (samples,), float32
        Silent (all-zero) input is returned unchanged.
    """
    x = np.asarray(waveform, dtype=np.float32)
    rms = float(np.sqrt(np.mean((x.astype(np.float64) * _INT16_MAX) ** 2)))
    if rms == 0.0:
        return x
    change_db = target_dbfs - 20.0 * np.log10(rms / _INT16_MAX)
    if change_db < 0:
        return x
    return (x * 10 ** (change_db / 20)).astype(np.float32)


def trim_long_silences(waveform: np.ndarray) -> np.ndarray:
    """Resemblyzer's silence trimming: cut non-speech runs longer than about 0.2 s (needs webrtcvad).

    30 ms windows are classified by webrtcvad (mode 3), the flags smoothed by
    an 8-window moving average, rounded, dilated by 7 windows, and the samples
    of non-speech windows removed. The tail that does not fill a window is dropped.

    Returns
    -------
    ndarray of shape (kept_samples,), float32
    """
    try:
        import webrtcvad
    except ImportError as exc:  # webrtcvad 2.0.10 also fails on setuptools without pkg_resources
        raise ImportError(
            f"trim_silence=True needs a working webrtcvad module ({exc}); "
            "pip install webrtcvad-wheels, or keep the default trim_silence=False"
        ) from None
    from scipy.ndimage import binary_dilation  # lazy: only silence trimming needs scipy

    window = 30 * SAMPLE_RATE // 1000
    x = np.asarray(waveform, dtype=np.float32)
    x = x[: x.size - x.size % window]
    pcm = np.round(x * _INT16_MAX).astype("<i2").tobytes()
    vad = webrtcvad.Vad(3)
    voiced = np.array(
        [vad.is_speech(pcm[2 * s : 2 * (s + window)], SAMPLE_RATE) for s in range(0, x.size, window)], dtype=float
    )
    width = 8
    padded = np.concatenate([np.zeros((width - 1) // 2), voiced, np.zeros(width // 2)])
    smoothed = np.convolve(padded, np.ones(width) / width, mode="valid")
    mask = binary_dilation(np.round(smoothed).astype(bool), np.ones(7))
    return x[np.repeat(mask, window)]


class ResemblyzerModel(SpeakerModel):
    """Resemblyzer's voice encoder with its frontend, as a :class:`SpeakerModel`.

    Parameters
    ----------
    network : VoiceEncoder
        With weights loaded; put in eval mode.
    device : str
        torch device.
    trim_silence : bool
        Apply Resemblyzer's webrtcvad silence trimming before embedding.
    batch_size : int
        Most partial utterances run through the LSTM at once in :meth:`embed_batch`.
    """

    name = "resemblyzer"
    dim = EMBEDDING_SIZE
    sample_rate = SAMPLE_RATE
    threshold = THRESHOLD

    def __init__(
        self, network: VoiceEncoder, device: str = "cpu", trim_silence: bool = False, batch_size: int = 64
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.trim_silence = trim_silence
        self.batch_size = batch_size

    def partial_mels(self, waveform: np.ndarray) -> np.ndarray:
        """Preprocess an utterance and cut its mel spectrogram into partials.

        Parameters
        ----------
        waveform : ndarray of shape (samples,), float32 in [-1, 1], 16 kHz

        Returns
        -------
        ndarray of shape (n_partials, 160, 40), float32

        Raises
        ------
        ValueError
            If nothing is left to embed (empty input, or only silence with
            ``trim_silence``).
        """
        x = np.asarray(waveform, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"waveform must be 1-D (mono samples), got shape {x.shape}")
        x = normalize_volume(x)
        if self.trim_silence:
            x = trim_long_silences(x)
        if x.size == 0:
            after = " after silence trimming" if self.trim_silence else ""
            raise ValueError(f"nothing to embed: the waveform is empty{after}")
        starts = partial_starts(x.size)
        needed = (starts[-1] + PARTIAL_FRAMES) * RESEMBLYZER_HOP
        if needed >= x.size:
            x = np.pad(x, (0, needed - x.size))
        mel = resemblyzer_mel(x)
        return np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])

    def _embed_partials(self, partials: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(partials), self.batch_size):
                chunk = torch.from_numpy(partials[i : i + self.batch_size]).to(self.device)
                out.append(self.network(chunk).float().cpu().numpy())
        return np.concatenate(out)

    @staticmethod
    def _combine(partial_embeddings: np.ndarray) -> np.ndarray:
        mean = partial_embeddings.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """Embed one utterance.

        Parameters
        ----------
        waveform : ndarray of shape (samples,), float32 in [-1, 1]
            Mono, 16 kHz.

        Returns
        -------
        ndarray of shape (256,), float32
            Unit L2 norm, non-negative.
        """
        return self._combine(self._embed_partials(self.partial_mels(waveform)))

    def embed_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Embed several utterances; partials of all of them share LSTM batches.

        Every partial is 160 frames, so batching needs no padding and the
        result equals :meth:`embed` one by one (up to float rounding).

        Returns
        -------
        ndarray of shape (len(waveforms), 256), float32
        """
        if len(waveforms) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        per_utterance = [self.partial_mels(w) for w in waveforms]
        flat = self._embed_partials(np.concatenate(per_utterance))
        bounds = np.cumsum([0] + [len(p) for p in per_utterance])
        return np.stack([self._combine(flat[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])


def installed_package_weights() -> list[Path]:
    """``pretrained.pt`` of an installed ``resemblyzer`` distribution, found in its file list, never imported.

    Importing resemblyzer runs its ``__init__`` (librosa, and webrtcvad, which
    needs ``pkg_resources``: gone from setuptools >= 81), so the file is
    located through the distribution's RECORD instead; ``find_spec`` (which
    does not import a top-level package either) covers an install without one.
    """
    found: list[Path] = []
    try:
        dist = importlib.metadata.distribution("resemblyzer")
        for f in dist.files or ():
            if f.name == WEIGHTS.filename and f.parent.name == "resemblyzer":
                p = Path(str(dist.locate_file(f)))
                if p.is_file():
                    found.append(p)
    except importlib.metadata.PackageNotFoundError:
        pass
    if not found:
        spec = importlib.util.find_spec("resemblyzer")
        if spec is not None and spec.submodule_search_locations:
            found = [p for d in spec.submodule_search_locations if (p := Path(d) / WEIGHTS.filename).is_file()]
    return found


def weights_source() -> WeightsSource:
    """The file shipped with resemblyzer 0.1.4 (:data:`WEIGHTS`)."""
    return WEIGHTS


def weights_candidates(source: WeightsSource) -> list[Path]:
    """The installed ``resemblyzer`` package's copy, searched after the weights directory."""
    return installed_package_weights()


def load(
    weights: str | Path | None = None,
    device: str = "cpu",
    verify: bool = True,
    trim_silence: bool = False,
    batch_size: int = 64,
    relu: bool = True,
) -> ResemblyzerModel:
    """Load Resemblyzer's pretrained voice encoder.

    Parameters
    ----------
    weights : str or Path, optional
        ``pretrained.pt`` or a directory holding it. By default
        ``<weights_dir()>/resemblyzer/pretrained.pt``, then the installed
        ``resemblyzer`` package, are searched.
    device : str
        torch device.
    verify : bool
        Check the file's SHA-256 against the one in resemblyzer 0.1.4.
    trim_silence : bool
        Resemblyzer's webrtcvad silence trimming (needs ``webrtcvad``).
    batch_size : int
        Partials per LSTM batch.
    relu : bool
        False gives the pre-ReLU output (see :class:`VoiceEncoder`); embeddings are
        then signed, and cosines lie in [-1, 1].

    Returns
    -------
    ResemblyzerModel
    """
    path = MODELS["resemblyzer"].locate(weights, verify=verify)
    network = VoiceEncoder(relu=relu)
    # Resemblyzer's file is its training checkpoint; the weights are under "model_state"
    load_strict(network, load_torch_state_dict(path, key="model_state"), path)
    return ResemblyzerModel(network, device=device, trim_silence=trim_silence, batch_size=batch_size)


__all__ = [
    "ResemblyzerModel",
    "THRESHOLD",
    "VoiceEncoder",
    "WEIGHTS",
    "load",
    "normalize_volume",
    "partial_starts",
    "trim_long_silences",
    "weights_candidates",
    "weights_source",
]
