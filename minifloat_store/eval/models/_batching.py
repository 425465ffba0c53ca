"""Waveform checks and padding-free batching shared by the torch speaker models.

Speaker networks normalise over time (mean-normalised log-mels, GroupNorm in
wav2vec-style encoders, statistics pooling), so zero-padding a short utterance
up to a longer one changes its embedding. :func:`embed_grouped` therefore
batches only utterances of *equal* length: the result equals embedding them one
by one, and fixed-length crops still run as real batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np


def as_waveform(waveform: np.ndarray, *, min_samples: int, sample_rate: int, model: str) -> np.ndarray:
    """Validate one utterance and return it as contiguous float32.

    Parameters
    ----------
    waveform : ndarray of shape (samples,), floating dtype
        Mono audio, values nominally in [-1, 1].
    min_samples : int
        Shortest length the model can embed, in samples.
    sample_rate : int
        Sample rate the model expects, in Hz (used only in error messages).
    model : str
        Model name, used in error messages.

    Returns
    -------
    ndarray of shape (samples,), float32
    """
    array = np.asarray(waveform)
    if array.ndim != 1:
        raise ValueError(
            f"{model}: expected a mono waveform of shape (samples,), got shape {array.shape}; "
            "mix or select one channel first"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{model}: waveform has dtype {array.dtype}; pass floats in [-1, 1] (for 16-bit PCM divide by 32768)"
        )
    if array.shape[0] < min_samples:
        raise ValueError(
            f"{model}: waveform of {array.shape[0]} samples is too short; the model needs at least "
            f"{min_samples} samples ({1000.0 * min_samples / sample_rate:.1f} ms at {sample_rate} Hz)"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{model}: waveform contains NaN or inf")
    return np.ascontiguousarray(array, dtype=np.float32)


def embed_grouped(
    waveforms: Sequence[np.ndarray],
    embed_equal_length: Callable[[np.ndarray], np.ndarray],
    dim: int,
    max_batch: int,
) -> np.ndarray:
    """Embed utterances in batches of equal length, in the caller's order.

    Parameters
    ----------
    waveforms : sequence of ndarray of shape (samples_i,), float32
        Already validated utterances (see :func:`as_waveform`).
    embed_equal_length : callable
        Maps float32 of shape (n, samples) to float32 of shape (n, dim).
    dim : int
        Embedding size.
    max_batch : int
        Largest number of utterances passed to ``embed_equal_length`` at once.

    Returns
    -------
    ndarray of shape (len(waveforms), dim), float32
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    out = np.empty((len(waveforms), dim), dtype=np.float32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, waveform in enumerate(waveforms):
        by_length[waveform.shape[0]].append(index)
    for indices in by_length.values():
        for start in range(0, len(indices), max_batch):
            chunk = indices[start : start + max_batch]
            out[chunk] = embed_equal_length(np.stack([waveforms[i] for i in chunk]))
    return out
