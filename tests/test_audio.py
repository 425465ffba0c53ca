"""Reading audio files: mono float32 at 16 kHz, resampling with a note, clear errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from minifloat_store.eval.data.audio import AudioReadError, read_audio, read_audio_native, resample

sf = pytest.importorskip("soundfile")


def _sine(freq, rate, seconds, amp=0.5, phase=0.0):
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t + phase)


def test_int16_wav_at_16k_reads_as_float32_in_unit_range_without_resampling(tmp_path, caplog):
    x = _sine(440, 16000, 0.5)
    pcm = np.round(x * 32767).astype(np.int16)
    path = tmp_path / "a.wav"
    sf.write(path, pcm, 16000, subtype="PCM_16")
    with caplog.at_level(logging.INFO, logger="minifloat_store.eval.data.audio"):
        y = read_audio(path)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, pcm / 32768.0, atol=1e-7)
    assert "resampled" not in caplog.text


def test_stereo_is_averaged_or_one_channel_is_kept(tmp_path):
    left, right = _sine(300, 16000, 0.2), _sine(700, 16000, 0.2, amp=0.25)
    path = tmp_path / "st.flac"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="PCM_24")
    np.testing.assert_allclose(read_audio(path), (left + right) / 2, atol=1e-6)
    np.testing.assert_allclose(read_audio(path, channel=1), right, atol=1e-6)
    with pytest.raises(AudioReadError, match="channel 2 does not exist"):
        read_audio(path, channel=2)


def test_44k1_file_is_resampled_to_16k_with_a_logged_note(tmp_path, caplog):
    path = tmp_path / "hi.wav"
    sf.write(path, _sine(1000, 44100, 1.0), 44100, subtype="FLOAT")
    with caplog.at_level(logging.INFO, logger="minifloat_store.eval.data.audio"):
        y = read_audio(path)
    assert "resampled from 44100 Hz to 16000 Hz" in caplog.text and str(path) in caplog.text
    assert y.dtype == np.float32 and y.size == 16000
    # away from the filter's edge transients the result is the same sine sampled at 16 kHz
    np.testing.assert_allclose(y[200:-200], _sine(1000, 16000, 1.0)[200:-200], atol=2e-3)


def test_ogg_vorbis_reads(tmp_path):
    path = tmp_path / "v.ogg"
    sf.write(path, _sine(500, 22050, 0.5), 22050, format="OGG", subtype="VORBIS")
    x, rate = read_audio_native(path)
    assert rate == 22050 and x.dtype == np.float32 and x.ndim == 1
    assert read_audio(path).size == pytest.approx(8000, abs=2)


def test_resample_preserves_a_tone_below_nyquist_and_is_identity_at_equal_rates():
    x = _sine(200, 8000, 1.0).astype(np.float32)
    np.testing.assert_array_equal(resample(x, 8000, 8000), x)
    up = resample(x, 8000, 16000)
    assert up.size == 16000
    np.testing.assert_allclose(up[200:-200], _sine(200, 16000, 1.0)[200:-200], atol=2e-3)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav does not exist"):
        read_audio(tmp_path / "nope.wav")


def test_undecodable_file_names_the_file_and_the_reason(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioReadError, match="cannot decode audio file .*bad.wav"):
        read_audio(bad)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioReadError, match="holds no samples"):
        read_audio(path)
