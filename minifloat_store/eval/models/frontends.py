"""Acoustic frontends of the speaker models: Kaldi fbank and Resemblyzer's mel.

Both take a mono float32 waveform in [-1, 1] at 16 kHz and return one row per
frame. They use numpy (and kaldi-native-fbank for the Kaldi features), never
torch, so they can be tested and reused on their own.

- :func:`kaldi_fbank`: Kaldi's ``compute-fbank-feats`` (the features of
  CAM++, computed by 3D-Speaker with ``torchaudio.compliance.kaldi.fbank``),
  through the ``kaldi-native-fbank`` package.
- :func:`resemblyzer_mel`: the 40-channel power mel spectrogram that
  Resemblyzer computes with ``librosa.feature.melspectrogram``, reimplemented
  in numpy on :func:`slaney_mel_filterbank` so librosa is not needed.
"""

from __future__ import annotations

import numpy as np


def _as_waveform(waveform: np.ndarray) -> np.ndarray:
    """Validate a mono waveform and return it as contiguous float32."""
    x = np.asarray(waveform)
    if x.ndim != 1:
        raise ValueError(f"waveform must be 1-D (mono samples), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"waveform must be floating point in [-1, 1], got dtype {x.dtype}; divide integer PCM by 32768 first"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("waveform contains NaN or infinite samples")
    return x


def kaldi_fbank(
    waveform: np.ndarray,
    sample_rate: int = 16000,
    num_mel_bins: int = 80,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    dither: float = 0.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> np.ndarray:
    """Kaldi log mel filterbank features (``compute-fbank-feats`` defaults).

    Kaldi's defaults apply: frames cut with ``snip_edges`` (no padding), DC
    removed per frame, pre-emphasis 0.97, povey window, FFT size rounded up to
    a power of two, power spectrum, Kaldi's triangular mel banks on the
    ``1127 ln(1 + f/700)`` scale, natural log floored at float32 epsilon, no
    energy coefficient.

    Parameters
    ----------
    waveform : ndarray of shape (samples,), float
        Mono audio, used as given (not rescaled to the int16 range; a constant
        gain only adds a constant to every log value).
    sample_rate : int
        In Hz.
    num_mel_bins : int
        Number of mel bands (80 for CAM++).
    frame_length_ms, frame_shift_ms : float
        Window length and hop, in milliseconds.
    dither : float
        Kaldi dither amplitude; 0 (the default here) makes the features
        deterministic, as 3D-Speaker uses them at inference.
    low_freq, high_freq : float
        Band edges in Hz; ``high_freq <= 0`` means Nyquist plus ``high_freq``.

    Returns
    -------
    ndarray of shape (frames, num_mel_bins), float32
        ``frames = 1 + (samples - window) // shift`` with ``window`` and
        ``shift`` in samples.

    Raises
    ------
    ValueError
        If the waveform is not 1-D float, has non-finite samples, or is shorter
        than one window.
    """
    import kaldi_native_fbank as knf  # lazy: optional (the models extra)

    x = _as_waveform(waveform)
    window = int(round(sample_rate * frame_length_ms / 1000.0))
    if x.size < window:
        raise ValueError(
            f"waveform has {x.size} samples, shorter than one {frame_length_ms:g} ms "
            f"window ({window} samples at {sample_rate} Hz)"
        )
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = float(sample_rate)
    opts.frame_opts.frame_length_ms = float(frame_length_ms)
    opts.frame_opts.frame_shift_ms = float(frame_shift_ms)
    opts.frame_opts.dither = float(dither)
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.round_to_power_of_two = True
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = int(num_mel_bins)
    opts.mel_opts.low_freq = float(low_freq)
    opts.mel_opts.high_freq = float(high_freq)
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(float(sample_rate), x)
    fbank.input_finished()
    n = fbank.num_frames_ready
    out = np.empty((n, num_mel_bins), dtype=np.float32)
    for i in range(n):
        out[i] = fbank.get_frame(i)
    return out


def slaney_mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Slaney-style mel filterbank, as ``librosa.filters.mel`` builds by default.

    The mel scale is Slaney's (Auditory Toolbox): linear below 1 kHz
    (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4). Each
    triangle is area-normalised (``norm="slaney"``: scaled by
    ``2 / (upper edge - lower edge)`` in Hz).

    Parameters
    ----------
    sample_rate : int
        In Hz.
    n_fft : int
        FFT size; the bank covers the ``n_fft // 2 + 1`` bins of ``rfft``.
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Band edges in Hz; ``fmax=None`` means ``sample_rate / 2``.

    Returns
    -------
    ndarray of shape (n_mels, n_fft // 2 + 1), float32
        Weights; ``filterbank @ power_spectrum`` gives the mel energies.
    """
    if fmax is None:
        fmax = sample_rate / 2.0
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        return np.where(
            f >= min_log_hz,
            min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
            f / f_sp,
        )

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    # distance of every FFT bin from every band edge, in Hz
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


# Resemblyzer's hyperparameters (resemblyzer/hparams.py): 16 kHz, 25 ms / 10 ms, 40 mels.
RESEMBLYZER_SAMPLE_RATE = 16000
RESEMBLYZER_N_FFT = 400
RESEMBLYZER_HOP = 160
RESEMBLYZER_N_MELS = 40

_resemblyzer_bank: np.ndarray | None = None


def resemblyzer_mel(waveform: np.ndarray) -> np.ndarray:
    """Resemblyzer's mel spectrogram (power, not log) of a 16 kHz waveform.

    Equal to ``librosa.feature.melspectrogram(y, sr=16000, n_fft=400,
    hop_length=160, n_mels=40).T`` with librosa >= 0.10: a periodic Hann window
    of 400 samples, frames centred by zero-padding 200 samples on each side,
    power spectrum, Slaney mel bank (:func:`slaney_mel_filterbank`).

    Parameters
    ----------
    waveform : ndarray of shape (samples,), float
        Mono audio at 16 kHz, in [-1, 1].

    Returns
    -------
    ndarray of shape (1 + samples // 160, 40), float32
        Mel energies per 10 ms frame.
    """
    global _resemblyzer_bank
    x = _as_waveform(waveform)
    if _resemblyzer_bank is None:
        _resemblyzer_bank = slaney_mel_filterbank(RESEMBLYZER_SAMPLE_RATE, RESEMBLYZER_N_FFT, RESEMBLYZER_N_MELS)
    half = RESEMBLYZER_N_FFT // 2
    padded = np.pad(x, (half, half), mode="constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, RESEMBLYZER_N_FFT)[::RESEMBLYZER_HOP]
    n = np.arange(RESEMBLYZER_N_FFT)
    # periodic ("fftbins") Hann window, as scipy.signal.get_window("hann", 400) returns
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / RESEMBLYZER_N_FFT)).astype(np.float32)
    spectrum = np.fft.rfft(frames * window, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    return (power @ _resemblyzer_bank.T).astype(np.float32, copy=False)


__all__ = [
    "kaldi_fbank",
    "resemblyzer_mel",
    "slaney_mel_filterbank",
]
