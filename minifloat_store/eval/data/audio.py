"""Reading audio files for the speaker models: mono float32 in [-1, 1] at 16 kHz.

Files are decoded with soundfile (libsndfile: WAV, FLAC, OGG Vorbis/Opus, ...).
Several channels are averaged (as librosa's ``mono=True`` does) unless one is
chosen. A file at another rate is resampled with ``scipy.signal.resample_poly``
(polyphase, Kaiser-windowed FIR) and a note is logged on the
``minifloat_store.eval.data.audio`` logger at INFO level, naming the file and both
rates.
"""

from __future__ import annotations

import logging
from math import gcd
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: The rate every speaker model of this package expects, in Hz.
TARGET_SAMPLE_RATE = 16000


class AudioReadError(ValueError):
    """An audio file exists but cannot be decoded (corrupt, empty or unsupported format)."""


def read_audio_native(path: str | Path, channel: int | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file at its own sample rate.

    Parameters
    ----------
    path : str or Path
        Any format libsndfile reads.
    channel : int, optional
        Keep only this channel (0-based); by default all channels are averaged.

    Returns
    -------
    waveform : ndarray of shape (samples,), float32
        In [-1, 1) for integer PCM files; float files are returned as stored.
    sample_rate : int
        In Hz.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    AudioReadError
        If the file cannot be decoded, holds no samples, or has no ``channel``.
    """
    import soundfile as sf  # lazy: soundfile is optional (the models extra)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError) as exc:  # LibsndfileError is a RuntimeError
        raise AudioReadError(
            f"cannot decode audio file {path}: {exc}. soundfile (libsndfile "
            f"{sf.__libsndfile_version__}) reads {', '.join(sorted(sf.available_formats()))}"
        ) from None
    if data.shape[0] == 0:
        raise AudioReadError(f"audio file {path} holds no samples")
    if channel is None:
        mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    elif 0 <= channel < data.shape[1]:
        mono = data[:, channel]
    else:
        raise AudioReadError(f"audio file {path} has {data.shape[1]} channel(s); channel {channel} does not exist")
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate)


def resample(waveform: np.ndarray, orig_rate: int, target_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Resample by the exact rational factor ``target_rate / orig_rate``.

    Parameters
    ----------
    waveform : ndarray of shape (samples,), float
        Mono audio.
    orig_rate, target_rate : int
        In Hz.

    Returns
    -------
    ndarray of shape (ceil(samples * target_rate / orig_rate),), float32
        The input itself (as float32) when the rates are equal. The low-pass
        filter may overshoot [-1, 1] slightly near full-scale transients.
    """
    from scipy.signal import resample_poly  # lazy: scipy is optional (the models extra)

    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {target_rate}")
    x = np.asarray(waveform, dtype=np.float32)
    if orig_rate == target_rate:
        return x
    g = gcd(int(orig_rate), int(target_rate))
    return resample_poly(x, int(target_rate) // g, int(orig_rate) // g).astype(np.float32, copy=False)


def read_audio(path: str | Path, sample_rate: int = TARGET_SAMPLE_RATE, channel: int | None = None) -> np.ndarray:
    """Decode an audio file as mono float32 at ``sample_rate``.

    Parameters
    ----------
    path : str or Path
        Any format libsndfile reads.
    sample_rate : int
        Wanted rate in Hz (16000 for every model here). Files at another rate
        are resampled (:func:`resample`) and the fact is logged at INFO level.
    channel : int, optional
        Keep only this channel; by default channels are averaged.

    Returns
    -------
    ndarray of shape (samples,), float32
        In [-1, 1] (see :func:`resample` for the overshoot caveat).

    Raises
    ------
    FileNotFoundError, AudioReadError
        As :func:`read_audio_native`.
    """
    waveform, rate = read_audio_native(path, channel=channel)
    if rate != sample_rate:
        logger.info("%s: resampled from %d Hz to %d Hz (scipy.signal.resample_poly)", path, rate, sample_rate)
        waveform = resample(waveform, rate, sample_rate)
    return waveform


__all__ = ["AudioReadError", "TARGET_SAMPLE_RATE", "read_audio", "read_audio_native", "resample"]
