"""Speech-like test audio made by the tests themselves (no recordings needed)."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000


def speech_like(
    seconds: float, seed: int, f0: float | None = None, rate: int = SAMPLE_RATE, peak: float = 0.4
) -> np.ndarray:
    """A harmonic tone with vibrato, syllable-rate amplitude modulation and a little noise.

    ``f0`` (Hz) plays the part of the speaker; by default it is drawn from
    ``seed`` in 120-160 Hz. Returns float32 of shape (round(seconds * rate),)
    with peak amplitude ``peak``.
    """
    rng = np.random.default_rng(seed)
    if f0 is None:
        f0 = 120.0 + 40.0 * rng.random()
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 4 * t))) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 9)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x = x + 0.03 * rng.standard_normal(t.size)
    return (peak * x / np.abs(x).max()).astype(np.float32)
