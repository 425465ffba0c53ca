"""Transforms applied before quantisation: centring and a seeded randomized Hadamard rotation.

Both are exactly invertible in exact arithmetic and cheap: centring subtracts
a per-dimension mean (learnt by :meth:`minifloat_store.Encoding.fit`),
rotation costs O(d log d) per vector and has no parameters beyond its seed.

Why rotate. A rotation spreads every vector's energy evenly over its
coordinates: whatever the embedding's own distribution (a few large
coordinates, ReLU zeros), the rotated coordinates are close to Gaussian with
a common variance, which is what the per-vector scale and the nf codebooks
(Lloyd-Max levels of N(0, 1)) are designed for. Cosines are unchanged by a
rotation, so scoring transforms the query once and never decodes.

The rotation for dimension d
----------------------------
Let ``p`` be the largest power of two ``<= d`` and ``H`` the ``p x p``
Walsh-Hadamard matrix scaled by ``1/sqrt(p)`` (orthogonal and symmetric).
With two seeded sign vectors ``s1``, ``s2`` of length d (entries +-1)::

    R(x) = B2 . S2 . B1 . S1 . x
    S1, S2 : multiply coordinate j by s1[j], s2[j]
    B1     : H on coordinates 0 .. p-1
    B2     : H on coordinates d-p .. d-1      (omitted when d == p)

Every factor is orthogonal, so R is. For d a power of two this is the usual
randomized Hadamard transform H.S1. For other d the two Hadamard blocks
overlap, so every output coordinate mixes at least p >= d/2 + 1 inputs and
no value is stored twice. The alternatives: padding to the next power of two
stores up to 2x the values (192 -> 256 values is 1.33x the bits, which no
bit budget here can afford); a block-diagonal Hadamard (192 = 128 + 64)
costs nothing either but never mixes the blocks, so a vector whose energy
sits in one block keeps it there.

Arithmetic is float32 in a fixed order (butterflies stage by stage, ``a + b``
and ``a - b``, then one multiplication by ``float32(1/sqrt(p))``), so the
numba kernels and the numpy reference here agree bit for bit. The signs come
from SplitMix64 (a fixed, documented generator; numpy's generators do not
promise the same stream across versions), so a seed means the same rotation
forever: see docs/format.md.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Rotation",
    "hadamard_power",
    "rotation",
    "rotation_signs",
    "splitmix64",
]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed: int, count: int) -> np.ndarray:
    """The first ``count`` outputs of SplitMix64 started from state ``seed`` (uint64, shape (count,)).

    ``state_k = seed + (k + 1) * 0x9E3779B97F4A7C15`` (mod 2**64), then
    ``z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9``, ``z = (z ^ z >> 27) * 0x94D049BB133111EB``,
    ``z ^ z >> 31``.
    """
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def rotation_signs(seed: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The sign vectors ``s1``, ``s2`` (float32 +-1, shape (d,) each) of the rotation with this seed.

    Bit ``j % 64`` of SplitMix64 output ``j // 64`` gives ``s1[j]`` (set: -1);
    outputs ``ceil(d / 64) ..`` give ``s2`` the same way.
    """
    words = (d + 63) // 64
    z = splitmix64(seed, 2 * words)
    bits = (z[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    bits = bits.reshape(2, words * 64)[:, :d]
    signs = np.where(bits == 1, -1.0, 1.0).astype(np.float32)
    return signs[0].copy(), signs[1].copy()


def hadamard_power(d: int) -> int:
    """The Hadamard block size for dimension d: the largest power of two ``<= d``."""
    return 1 << (int(d).bit_length() - 1)


class Rotation:
    """The seeded orthogonal rotation of dimension d (parameters for the kernels and the reference).

    Attributes
    ----------
    d, p : int
        Dimension and Hadamard block size.
    s1, s2 : ndarray of shape (d,), float32
        Sign vectors.
    norm32 : numpy.float32
        ``float32(1/sqrt(p))``.
    factors : ndarray of shape (3, d), float32
        For the kernels, the sign flips merged with a neighbouring ``norm32``
        (the same result: multiplying by -1 is exact): ``norm32 * s2`` on the
        first p coordinates and ``s2`` after (forward, between the blocks);
        ``norm32 * s2`` on the last p and ``s2`` before (inverse, between the
        blocks); ``norm32 * s1`` on the first p and ``s1`` after (inverse, last).
    """

    def __init__(self, seed: int, d: int) -> None:
        self.seed, self.d, self.p = int(seed), int(d), hadamard_power(d)
        self.s1, self.s2 = rotation_signs(self.seed, self.d)
        self.norm32 = np.float32(1.0 / np.sqrt(self.p))
        p, n = self.p, self.norm32
        self.factors = np.stack([self.s2, self.s2, self.s1])
        self.factors[0, :p] *= n
        self.factors[1, self.d - p :] *= n
        self.factors[2, :p] *= n

    # ------------------------------------------------------------ readable numpy versions

    @staticmethod
    def _fwht(x: np.ndarray) -> None:
        """Unnormalised Walsh-Hadamard transform along axis 1, in place, stage by stage."""
        p = x.shape[1]
        h = 1
        while h < p:
            v = x.reshape(x.shape[0], p // (2 * h), 2, h)
            a = v[:, :, 0, :].copy()
            b = v[:, :, 1, :]
            v[:, :, 0, :] = a + b
            v[:, :, 1, :] = a - b
            h *= 2

    def _block(self, y: np.ndarray, lo: int, norm: np.floating) -> None:
        blk = np.ascontiguousarray(y[:, lo : lo + self.p])
        self._fwht(blk)
        y[:, lo : lo + self.p] = blk * norm

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``R(x)`` for rows of ``x`` (float32 or float64, (n, d)); returns a new array of the same dtype."""
        y = np.array(x, copy=True)
        norm = y.dtype.type(1.0 / np.sqrt(self.p)) if y.dtype == np.float64 else self.norm32
        y *= self.s1.astype(y.dtype)
        self._block(y, 0, norm)
        if self.p < self.d:
            y *= self.s2.astype(y.dtype)
            self._block(y, self.d - self.p, norm)
        return y

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """``R^T(y)``: undo :meth:`forward` (each factor is its own inverse up to rounding)."""
        x = np.array(y, copy=True)
        norm = x.dtype.type(1.0 / np.sqrt(self.p)) if x.dtype == np.float64 else self.norm32
        if self.p < self.d:
            self._block(x, self.d - self.p, norm)
            x *= self.s2.astype(x.dtype)
        self._block(x, 0, norm)
        x *= self.s1.astype(x.dtype)
        return x


_CACHE: dict[tuple[int, int], Rotation] = {}


def rotation(seed: int, d: int) -> Rotation:
    """The (cached) :class:`Rotation` for ``seed`` and dimension ``d``."""
    key = (int(seed), int(d))
    r = _CACHE.get(key)
    if r is None:
        r = _CACHE[key] = Rotation(seed, d)
    return r
