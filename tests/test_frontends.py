"""The model frontends against independent references.

Kaldi fbank (through kaldi-native-fbank) is checked element-wise against a
plain numpy transcription of Kaldi's feature-window.cc / mel-computations.cc;
the Slaney filterbank and Resemblyzer's mel spectrogram against librosa when
it is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from minifloat_store.eval.models.frontends import kaldi_fbank, resemblyzer_mel, slaney_mel_filterbank

pytest.importorskip("kaldi_native_fbank")

SR = 16000


def _test_signal(seconds: float = 1.0) -> np.ndarray:
    """A chirp plus three sines plus faint noise, so every mel band has energy."""
    t = np.arange(int(SR * seconds)) / SR
    chirp = 0.3 * np.sin(2 * np.pi * (100 * t + 0.5 * (7000 - 100) / seconds * t**2))
    sines = sum(0.1 * np.sin(2 * np.pi * f * t + p) for f, p in ((220, 0.1), (1375, 1.0), (5100, 2.0)))
    noise = 1e-2 * np.random.default_rng(0).standard_normal(t.size)
    return (chirp + sines + noise + 0.05).astype(np.float32)  # +0.05: a DC offset to remove


def _kaldi_mel_banks(num_bins: int, padded: int, sr: float, low: float, high: float) -> np.ndarray:
    """Kaldi's MelBanks: triangles on 1127 ln(1 + f/700), over bins 0 .. padded/2 - 1."""

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    if high <= 0:
        high += sr / 2
    n_fft_bins = padded // 2
    lo, hi = mel(low), mel(high)
    delta = (hi - lo) / (num_bins + 1)
    bins_mel = mel(np.arange(n_fft_bins) * sr / padded)
    banks = np.zeros((num_bins, n_fft_bins + 1))  # last column: Nyquist, never used by Kaldi
    for b in range(num_bins):
        left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        for i, m in enumerate(bins_mel):
            if left < m < right:
                banks[b, i] = (m - left) / (center - left) if m <= center else (right - m) / (right - center)
    return banks


def _numpy_kaldi_fbank(x: np.ndarray, num_bins: int = 80) -> np.ndarray:
    """Kaldi compute-fbank-feats (25/10 ms, povey, preemph 0.97, DC removal, no dither), in float64."""
    win, shift, padded = 400, 160, 512
    n_frames = 1 + (x.size - win) // shift
    i = np.arange(win)
    povey = (0.5 - 0.5 * np.cos(2 * np.pi * i / (win - 1))) ** 0.85
    banks = _kaldi_mel_banks(num_bins, padded, SR, 20.0, 0.0)
    out = np.empty((n_frames, num_bins))
    for f in range(n_frames):
        frame = x[f * shift : f * shift + win].astype(np.float64)
        frame = frame - frame.mean()
        frame = np.concatenate([[frame[0] - 0.97 * frame[0]], frame[1:] - 0.97 * frame[:-1]])
        spec = np.fft.rfft(frame * povey, n=padded)
        power = spec.real**2 + spec.imag**2
        out[f] = np.log(np.maximum(banks @ power, np.finfo(np.float32).eps))
    return out


def test_kaldi_fbank_matches_numpy_kaldi_reference():
    x = _test_signal(1.0)
    ours = kaldi_fbank(x, SR, num_mel_bins=80)
    ref = _numpy_kaldi_fbank(x, 80)
    assert ours.shape == ref.shape == (1 + (x.size - 400) // 160, 80)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=5e-3, rtol=0)  # float32 FFT vs float64 reference


def test_kaldi_fbank_gain_adds_a_constant_so_int16_scaling_cancels_under_mean_subtraction():
    # 3D-Speaker feeds torchaudio-loaded floats in [-1, 1] without x32768; a gain g
    # only adds 2 ln g to every log band (away from the floor).
    x = _test_signal(0.5)
    a, b = kaldi_fbank(x), kaldi_fbank(x * 2.0)
    np.testing.assert_allclose(b - a, 2 * np.log(2.0), atol=1e-3)


def test_kaldi_fbank_floors_silence_at_float32_epsilon():
    silence = kaldi_fbank(np.zeros(1600, np.float32))
    np.testing.assert_allclose(silence, np.log(np.finfo(np.float32).eps), rtol=1e-6)
    np.testing.assert_allclose(_numpy_kaldi_fbank(np.zeros(1600)), silence, rtol=1e-6)


def test_kaldi_fbank_is_deterministic_without_dither():
    x = _test_signal(0.5)
    np.testing.assert_array_equal(kaldi_fbank(x), kaldi_fbank(x))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(399, np.float32), "shorter than one"),
        (np.zeros((2, 800), np.float32), "1-D"),
        (np.zeros(800, np.int16), "floating point"),
        (np.full(800, np.nan, np.float32), "NaN"),
    ],
)
def test_kaldi_fbank_rejects_bad_input_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        kaldi_fbank(bad)


def test_slaney_filterbank_triangles_have_unit_area_in_hz():
    bank = slaney_mel_filterbank(16000, 4096, 40).astype(np.float64)
    bin_hz = 16000 / 4096
    # norm="slaney" scales each triangle to height 2/width: area 1 (up to sampling)
    np.testing.assert_allclose(bank.sum(axis=1) * bin_hz, 1.0, rtol=0.02)
    assert np.all(np.argmax(bank, axis=1)[1:] > np.argmax(bank, axis=1)[:-1])


def test_slaney_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    for sr, n_fft, n_mels in ((16000, 400, 40), (22050, 2048, 128), (16000, 512, 80)):
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
        np.testing.assert_allclose(slaney_mel_filterbank(sr, n_fft, n_mels), ref, rtol=1e-5, atol=1e-8)


def test_resemblyzer_mel_matches_librosa_melspectrogram():
    librosa = pytest.importorskip("librosa")
    x = _test_signal(1.23)
    ref = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=400, hop_length=160, n_mels=40).T
    ours = resemblyzer_mel(x)
    assert ours.shape == ref.shape == (1 + x.size // 160, 40)
    np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=1e-6 * ref.max())


def test_resemblyzer_mel_frame_count_and_power_scaling():
    x = _test_signal(0.5)
    m = resemblyzer_mel(x)
    assert m.shape == (1 + x.size // 160, 40) and m.dtype == np.float32
    np.testing.assert_allclose(resemblyzer_mel(3 * x), 9 * m, rtol=1e-4, atol=1e-6 * m.max())
