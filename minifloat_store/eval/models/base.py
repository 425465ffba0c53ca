"""The interface every speaker model of the evaluation layer implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class SpeakerModel(ABC):
    """A speaker-embedding network with the frontend it was trained with.

    Attributes
    ----------
    name : str
        Registry name (``"campplus"``, ``"wavlm"``, ``"redimnet"``, ``"resemblyzer"``).
    dim : int
        Embedding size.
    sample_rate : int
        Sample rate the model expects, in Hz (16000 for every model here).
    threshold : float
        Recommended cosine threshold for accept/reject decisions (accept when
        ``score >= threshold``).
    """

    name: str
    dim: int
    sample_rate: int = 16000
    threshold: float

    @abstractmethod
    def embed(self, waveform: np.ndarray) -> np.ndarray:
        """Embed one utterance.

        Parameters
        ----------
        waveform : ndarray of shape (samples,), float32 in [-1, 1]
            Mono audio at ``self.sample_rate``.

        Returns
        -------
        ndarray of shape (dim,), float32
            The raw (not L2-normalised unless the model itself normalises) embedding.
        """

    def embed_batch(self, waveforms: Sequence[np.ndarray]) -> np.ndarray:
        """Embed several utterances; returns float32 of shape (len(waveforms), dim).

        The result equals calling :meth:`embed` on each waveform (models whose
        output depends on padding must not pad across utterances).
        """
        if len(waveforms) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed(w) for w in waveforms]).astype(np.float32, copy=False)
