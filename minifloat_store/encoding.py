"""Composable encodings: an element codebook x a scale granularity x a transform.

An :class:`Encoding` is configuration plus fitted parameters, in the manner
of numcodecs: :meth:`Encoding.get_config` is plain JSON and
:meth:`Encoding.fitted_arrays` the few float32 arrays ``fit`` learnt (the
mean); :meth:`Encoding.from_config` rebuilds the identical encoding from the
two. Encoding a batch gives an :class:`Encoded` (codes, per-vector scales,
per-block scales); the byte layout of each part is in docs/format.md.

Pipeline for a vector x (float32, d values)::

    t = x - mean                      # transform "centre" / "centre+rotate"
    t = R(t)                          # transform "rotate" / "centre+rotate" (transforms.py)
    codes = nearest(t / step)         # element codebook, scale granularity
    decode: y = R^T(level(codes) * step) + mean      (always the original space)

Scales
------
``"none"``
    ``t`` is rounded as it is.
``"vector"``
    One float32 per vector. For minifloats it is the study's equation 6,
    exactly as :func:`minifloat_store.encode` has always done it: ``t`` is
    multiplied by ``s = max_value / max|t|`` and decoding divides by ``s``
    (bytes identical to ``encode(x, fmt, "vector")``). For int, nf and binary
    elements it is a step: codes are the nearest levels of ``t / step`` and
    decoding multiplies by the stored least-squares factor
    ``alpha = <t, l> / <l, l>`` (``l`` the levels written), the factor of
    least squared error for those codes. The rounding step is:

    * int4, int3, int2: ``min(max|t| / L, g_L * rms(t))``, where ``g_L`` is
      the MSE-optimal step of a uniform quantiser for N(0, 1)
      (:data:`codebooks.GAUSSIAN_STEP`). After a rotation the coordinates are
      close to N(0, rms^2), so ``g_L * rms`` is the MSE-optimal step; clipping
      the rare tail is cheaper than a coarse step for every value.
    * int8, int6: ``max|t| / L`` (nothing clips): at these widths the step is
      already fine and clipping the tail costs more than it gains.
    * nf: ``rms(t)``: the levels are Lloyd-Max for a unit Gaussian, so the
      coordinates are brought to unit variance.
    * binary: any positive step (only the sign is kept); ``alpha`` is then
      ``mean|t|``.

    ``rms(t) = sqrt(sum(t**2) / d)``; sums are float64, in the fixed order docs/format.md gives.
``"block32"``
    OCP Microscaling (MX v1.0): one E8M0 scale ``X = 2**e`` per 32
    consecutive values (the last block may be shorter), ``e = floor(log2(max|t_block|)) - emax``
    with ``emax = floor(log2(max_level))`` of the element, clamped to [-127, 127];
    elements are ``nearest(t / X)`` saturating at ``+-max_level``; decoding multiplies by X.
``"block16"``
    NVFP4: a float32 per vector ``g = max|t| / (448 * max_level)`` and an
    E4M3 scale per 16 values ``S = e4m3(max|t_block| / (max_level * g))``;
    elements are ``nearest(t / float32(S * g))``; decoding multiplies by
    ``float32(S * g)``.

Block scales need an element of at most 8 bits. The dimension need not be a
multiple of the block: the last block simply holds fewer values (no padding
is stored).

Transforms
----------
``"none"``, ``"centre"`` (subtract the per-dimension mean that :meth:`Encoding.fit`
learns), ``"rotate"`` (seeded randomized Hadamard, nothing to learn) and
``"centre+rotate"``. Decoding always returns the original space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from minifloat_store._checks import as_float32_matrix, check_positive_int, describe
from minifloat_store.codebooks import Codebook, get_codebook
from minifloat_store.formats import Format

__all__ = ["ENCODING_SCALES", "TRANSFORMS", "Encoded", "Encoding"]

#: Scale granularities an :class:`Encoding` accepts.
ENCODING_SCALES: tuple[str, ...] = ("none", "vector", "block32", "block16")
#: Transforms an :class:`Encoding` accepts ("center" is accepted for "centre").
TRANSFORMS: tuple[str, ...] = ("none", "centre", "rotate", "centre+rotate")
#: Values per block of each block scale.
BLOCK_SIZE: dict[str, int] = {"block32": 32, "block16": 16}
#: The ``id`` field of :meth:`Encoding.get_config`.
CONFIG_ID = "minifloat_store.encoding"
CONFIG_VERSION = 1

_SEED_MAX = 2**64 - 1


def _normalise_transform(transform: str) -> str:
    if not isinstance(transform, str):
        raise TypeError(f"transform must be a string, got {type(transform).__name__}")
    t = transform.lower().replace("center", "centre").replace(" ", "")
    if t == "rotate+centre":
        t = "centre+rotate"
    if t not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; expected one of {', '.join(TRANSFORMS)}")
    return t


class Encoding:
    """How vectors are stored: element codebook x scale granularity x transform.

    Parameters
    ----------
    element : str or Format
        ``"e2m1"``, ``"e3m2"``, ``"e2m3"``, ``"e4m3"``, ``"e5m2"``, ``"e3m4"``,
        ``"fp16"``, ``"bf16"``, ``"fp32"`` (and ml_dtypes aliases), ``"int8"``,
        ``"int6"``, ``"int4"``, ``"int3"``, ``"int2"``, ``"nf4"``, ``"nf3"``,
        ``"nf2"`` or ``"binary"`` (see :mod:`minifloat_store.codebooks`).
    scale : {"vector", "none", "block32", "block16"}
        Scale granularity (module docstring). fp32 is never scaled: its
        scale is always ``"none"``, as in :func:`minifloat_store.encode`.
    transform : {"none", "centre", "rotate", "centre+rotate"}
    seed : int, default 0
        Seed of the rotation, 0 <= seed < 2**64 (ignored without "rotate").
    mean : array_like of shape (d,), float32, optional
        The centre, normally learnt by :meth:`fit`; given here to rebuild a
        fitted encoding (see :meth:`from_config`).

    Raises
    ------
    ValueError
        For an unknown element, scale or transform, a block scale on an
        element wider than 8 bits, a seed out of range, or a mean that is not
        a finite 1-D float array.
    """

    def __init__(
        self,
        element: str | Format | Codebook = "e2m1",
        scale: str = "vector",
        transform: str = "none",
        seed: int = 0,
        *,
        mean: np.ndarray | None = None,
    ) -> None:
        cb = get_codebook(element)
        if scale not in ENCODING_SCALES:
            raise ValueError(f"unknown scale {scale!r}; expected one of {', '.join(ENCODING_SCALES)}")
        if cb.bits == 32:
            scale = "none"  # float32 is the reference: stored bit for bit, never rescaled
        if scale in BLOCK_SIZE and cb.bits > 8:
            raise ValueError(
                f"scale {scale!r} needs an element of at most 8 bits; {cb.name} has {cb.bits}. "
                "Use scale='vector' or 'none'"
            )
        transform = _normalise_transform(transform)
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= _SEED_MAX:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        self._codebook = cb
        self._scale = scale
        self._transform = transform
        self._seed = int(seed)
        self._mean: np.ndarray | None = None
        if mean is not None:
            if "centre" not in transform:
                raise ValueError(f"a mean was given but transform {transform!r} does not centre")
            m = np.asarray(mean)
            if m.dtype.kind != "f" or m.ndim != 1 or m.size == 0:
                raise ValueError(f"mean must be a non-empty 1-D float array, got {m.dtype} array of shape {m.shape}")
            with np.errstate(over="ignore"):
                m = np.ascontiguousarray(m, dtype=np.float32)
            if not np.isfinite(m).all():
                raise ValueError(f"mean holds NaN or inf (first at index {int(np.flatnonzero(~np.isfinite(m))[0])})")
            m.flags.writeable = False
            self._mean = m

    # ------------------------------------------------------------ properties

    @property
    def element(self) -> str:
        """Name of the element codebook."""
        return self._codebook.name

    @property
    def codebook(self) -> Codebook:
        return self._codebook

    @property
    def scale(self) -> str:
        return self._scale

    @property
    def transform(self) -> str:
        return self._transform

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def mean(self) -> np.ndarray | None:
        """The fitted centre, float32 (d,) read-only, or None."""
        return self._mean

    @property
    def centres(self) -> bool:
        return "centre" in self._transform

    @property
    def rotates(self) -> bool:
        return "rotate" in self._transform

    @property
    def is_fitted(self) -> bool:
        """True when the encoding can encode: it does not centre, or its mean is known."""
        return not self.centres or self._mean is not None

    @property
    def dim(self) -> int | None:
        """The dimension the fitted mean fixes, or None (any dimension)."""
        return None if self._mean is None else int(self._mean.shape[0])

    @property
    def block_size(self) -> int:
        """Values per block scale (0 without block scales)."""
        return BLOCK_SIZE.get(self._scale, 0)

    @property
    def has_vector_scale(self) -> bool:
        """True when each vector stores one float32 (scale "vector" or "block16")."""
        return self._scale in ("vector", "block16")

    @property
    def divides(self) -> bool:
        """True when the per-vector scale is the study's divisor (minifloat, "vector"), False for a multiplier."""
        return self._scale == "vector" and self._codebook.family == "minifloat"

    @property
    def is_legacy(self) -> bool:
        """True for a minifloat with scale "none"/"vector" and no transform: the bytes of ``encode(x, fmt, scale)``."""
        return self._codebook.family == "minifloat" and self._scale in ("none", "vector") and self._transform == "none"

    # ------------------------------------------------------------ sizes

    def _check_dim(self, d: int) -> int:
        d = check_positive_int(d, "dim")
        if self._mean is not None and d != self._mean.shape[0]:
            raise ValueError(f"this encoding was fitted on dim {self._mean.shape[0]}, not {d}")
        return int(d)

    def code_bytes(self, d: int) -> int:
        """Bytes of one vector's packed codes: ``ceil(d * bits / 8)``."""
        d = self._check_dim(d)
        return (d * self._codebook.bits + 7) // 8

    def n_blocks(self, d: int) -> int:
        """Block scales per vector: ``ceil(d / block_size)`` (0 without block scales)."""
        d = self._check_dim(d)
        return -(-d // self.block_size) if self.block_size else 0

    def vector_bytes(self, d: int) -> int:
        """Stored bytes per vector: codes + one byte per block scale + 4 for a per-vector scale."""
        return self.code_bytes(d) + self.n_blocks(d) + (4 if self.has_vector_scale else 0)

    def bits_per_value(self, d: int) -> float:
        """Stored bits per value for vectors of dimension d: ``8 * vector_bytes(d) / d``.

        Counts the packed codes (rounded up to whole bytes per vector), the
        per-block scales and the per-vector scale; not the fitted mean, which
        is stored once per store.
        """
        return 8 * self.vector_bytes(d) / self._check_dim(d)

    # ------------------------------------------------------------ fit

    def fit(self, sample: object) -> Encoding:
        """Learn what the transform needs from a sample of vectors; returns a new, fitted Encoding.

        Parameters
        ----------
        sample : array_like of shape (n, d), floating point
            Vectors representative of what will be stored (enrolment data).

        Returns
        -------
        Encoding
            With ``mean`` = the per-dimension mean of ``sample`` (float64 sum,
            rounded to float32) for the "centre" transforms; an equal copy of
            this encoding otherwise (the rotation is seeded, not learnt).

        Raises
        ------
        ValueError
            If the sample is empty, not 2-D, or holds NaN or inf.
        """
        x = as_float32_matrix(sample, "sample")
        if not np.isfinite(x).all():
            row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
            raise ValueError(f"sample row {row} contains NaN or inf; nothing was fitted")
        mean = x.mean(axis=0, dtype=np.float64).astype(np.float32) if self.centres else None
        return Encoding(self._codebook, self._scale, self._transform, self._seed, mean=mean)

    # ------------------------------------------------------------ config

    def get_config(self) -> dict[str, Any]:
        """Plain-JSON description (numcodecs style); the fitted arrays are :meth:`fitted_arrays`.

        ``{"id": "minifloat_store.encoding", "version": 1, "element": "nf4",
        "scale": "vector", "transform": "centre+rotate", "seed": 0}``
        """
        return {
            "id": CONFIG_ID,
            "version": CONFIG_VERSION,
            "element": self.element,
            "scale": self._scale,
            "transform": self._transform,
            "seed": self._seed,
        }

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """The fitted parameters by name: ``{"mean": float32 (d,)}`` when centred and fitted, else ``{}``."""
        return {} if self._mean is None else {"mean": self._mean}

    @classmethod
    def from_config(cls, config: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Encoding:
        """Rebuild an encoding from :meth:`get_config` and :meth:`fitted_arrays` (e.g. as read from a store).

        Raises
        ------
        ValueError
            For a config of another id or a newer version, a missing or
            unknown key, or arrays that do not fit the config (a mean without
            centring, a centring encoding whose mean is missing is allowed
            only as unfitted).
        """
        if not isinstance(config, dict):
            raise ValueError(f"encoding config must be a dict, got {type(config).__name__}")
        if config.get("id") != CONFIG_ID:
            raise ValueError(f"not an encoding config: id {config.get('id')!r} != {CONFIG_ID!r}")
        version = config.get("version")
        if not isinstance(version, int) or not 1 <= version <= CONFIG_VERSION:
            raise ValueError(f"encoding config version {version!r} is not supported (this library reads 1)")
        expected = {"id", "version", "element", "scale", "transform", "seed"}
        if set(config) != expected:
            missing, extra = expected - set(config), set(config) - expected
            raise ValueError(f"encoding config: missing keys {sorted(missing)}, unknown keys {sorted(extra)}")
        arrays = dict(arrays or {})
        unknown = set(arrays) - {"mean"}
        if unknown:
            raise ValueError(f"unknown fitted arrays {sorted(unknown)}; an encoding has only 'mean'")
        for key in ("element", "scale", "transform"):
            if not isinstance(config[key], str):
                raise ValueError(f"encoding config {key!r} must be a string, got {config[key]!r}")
        return cls(config["element"], config["scale"], config["transform"], config["seed"], mean=arrays.get("mean"))

    # ------------------------------------------------------------ misc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Encoding):
            return NotImplemented
        if self.get_config() != other.get_config():
            return False
        a, b = self._mean, other._mean
        return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))

    def __hash__(self) -> int:
        return hash((self.element, self._scale, self._transform, self._seed, self.dim))

    def __repr__(self) -> str:
        fitted = "" if not self.centres else (", fitted" if self._mean is not None else ", unfitted")
        seed = f", seed={self._seed}" if self.rotates else ""
        return f"Encoding({self.element!r}, scale={self._scale!r}, transform={self._transform!r}{seed}{fitted})"


# E8M0 code 0xFF is NaN; E4M3 codes 0x7F and 0xFF are NaN and codes >= 0x80 negative.
_BAD_BLOCK_CODE = {"block32": lambda c: c == 0xFF, "block16": lambda c: c >= 0x7F}


@dataclass(frozen=True, eq=False)
class Encoded:
    """A batch of vectors encoded with an :class:`Encoding`.

    Attributes
    ----------
    codes : ndarray of shape (n, encoding.code_bytes(dim)), uint8, C-contiguous
        Row i is vector i as an LSB-first bit stream of ``bits``-bit codes.
    scales : ndarray of shape (n,), float32, or None
        Per-vector scale (scale "vector" or "block16"; None otherwise). For a
        minifloat with scale "vector" a divisor > 0 (as in :class:`Packed`),
        otherwise a multiplier >= 0.
    block_scales : ndarray of shape (n, encoding.n_blocks(dim)), uint8, or None
        Per-block scale codes: E8M0 (block32) or E4M3 (block16); None otherwise.
    encoding : Encoding
        A fitted encoding (with its mean if it centres).
    dim : int
        Values per vector.
    """

    codes: np.ndarray
    scales: np.ndarray | None
    block_scales: np.ndarray | None
    encoding: Encoding
    dim: int

    def __post_init__(self) -> None:
        enc = self.encoding
        if not isinstance(enc, Encoding):
            raise TypeError(f"encoding must be an Encoding, got {type(enc).__name__}")
        if not enc.is_fitted:
            raise ValueError(f"{enc!r} is not fitted: call .fit(sample) first")
        d = enc._check_dim(self.dim)
        object.__setattr__(self, "dim", d)
        codes = self.codes
        if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 2:
            raise ValueError(f"codes must be a 2-D uint8 array, got {describe(codes)}")
        n = codes.shape[0]
        if codes.shape[1] != enc.code_bytes(d):
            raise ValueError(
                f"codes have {codes.shape[1]} bytes per row; {enc.element} x {d} needs {enc.code_bytes(d)}"
            )
        object.__setattr__(self, "codes", np.ascontiguousarray(codes))
        s = self.scales
        if enc.has_vector_scale:
            if not isinstance(s, np.ndarray) or s.dtype != np.float32 or s.shape != (n,):
                raise ValueError(f"scales must be float32 of shape ({n},), got {describe(s)}")
            bad = ~np.isfinite(s) | ((s <= 0) if enc.divides else (s < 0))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                need = "> 0" if enc.divides else ">= 0"
                raise ValueError(f"scale of row {row} is {s[row]!r}; scales must be finite and {need}")
            object.__setattr__(self, "scales", np.ascontiguousarray(s))
        elif s is not None:
            raise ValueError(f"scale {enc.scale!r} stores no per-vector scales, got {describe(s)}")
        b = self.block_scales
        if enc.block_size:
            nb = enc.n_blocks(d)
            if not isinstance(b, np.ndarray) or b.dtype != np.uint8 or b.shape != (n, nb):
                raise ValueError(f"block_scales must be uint8 of shape ({n}, {nb}), got {describe(b)}")
            bad = _BAD_BLOCK_CODE[enc.scale](b)
            if bad.any():
                r, c = (int(v[0]) for v in np.nonzero(bad))
                raise ValueError(f"block scale {c} of row {r} is code {int(b[r, c]):#04x}, which no encoder writes")
            object.__setattr__(self, "block_scales", np.ascontiguousarray(b))
        elif b is not None:
            raise ValueError(f"scale {enc.scale!r} stores no block scales, got {describe(b)}")

    def check_layout(self) -> None:
        """Re-check dtypes, shapes and contiguity just before a kernel reads the arrays (no pass over the data).

        An array's shape or dtype can be changed in place after construction.

        Raises
        ------
        ValueError
            If any array no longer has the layout the kernels index by.
        """
        enc, n = self.encoding, self.codes.shape[0]
        arrays: list[tuple[np.ndarray | None, type, tuple[int, ...]]] = [
            (self.codes, np.uint8, (n, enc.code_bytes(self.dim)))
        ]
        if enc.has_vector_scale:
            arrays.append((self.scales, np.float32, (n,)))
        if enc.block_size:
            arrays.append((self.block_scales, np.uint8, (n, enc.n_blocks(self.dim))))
        for a, dtype, shape in arrays:
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
                raise ValueError(f"an array of this Encoded was changed after it was built: {describe(a)}")

    def __len__(self) -> int:
        return self.codes.shape[0]

    @property
    def n(self) -> int:
        """Number of vectors."""
        return self.codes.shape[0]

    @property
    def nbytes(self) -> int:
        """Payload bytes: ``n * encoding.vector_bytes(dim)`` (the fitted mean not included)."""
        return self.n * self.encoding.vector_bytes(self.dim)

    def __getitem__(self, rows: int | slice | np.ndarray) -> Encoded:
        """The encoded vectors at ``rows`` (an int keeps a batch of one)."""
        if isinstance(rows, (int, np.integer)):
            rows = np.array([rows])
        s = None if self.scales is None else self.scales[rows]
        b = None if self.block_scales is None else self.block_scales[rows]
        return Encoded(self.codes[rows], s, b, self.encoding, self.dim)

    def __repr__(self) -> str:
        return f"Encoded(n={self.n}, dim={self.dim}, encoding={self.encoding!r}, nbytes={self.nbytes})"
