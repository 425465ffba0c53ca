"""Element codebooks: the value of every code an encoding writes, in one place.

A codebook is data: a width in bits and the float32 value of each of its
``2**bits`` codes. One family of kernels, parametrised by that data, serves
every codebook (see ``_encoding_kernels``).

Families
--------
minifloat
    The study's six minifloats and fp16, bf16, fp32 (:mod:`minifloat_store.formats`):
    codes are the ml_dtypes bit patterns, rounding is to nearest, ties to even,
    saturating.
int (``int8``, ``int6``, ``int4``, ``int3``, ``int2``)
    Symmetric integers ``-L .. L`` with ``L = 2**(bits-1) - 1``, stored as
    ``bits``-bit two's complement (the code ``-(L+1)`` is never written).
    Rounding is to nearest, ties to even, after clipping to ``[-L, L]``.
nf (``nf4``, ``nf3``, ``nf2``)
    The Lloyd-Max levels of a unit Gaussian with ``2**bits`` levels: the
    scalar quantiser of least mean-squared error for N(0, 1), which is what
    the coordinates of a randomly rotated vector are close to. Code ``i`` is
    the ``i``-th level in ascending order. (These are not QLoRA's "NF4",
    whose levels are Gaussian quantiles rescaled to [-1, 1] with an exact 0.)
    A value goes to the nearest level; a value exactly half-way between two
    levels goes to the upper one.
binary
    ``-1`` (code 0) and ``+1`` (code 1): the sign, ``x >= 0`` giving ``+1``.

The nf levels and the Gaussian-optimal integer step sizes are fixed tables
below, not trained; :func:`lloyd_max_gaussian` and :func:`gaussian_uniform_step`
derive them (the tests check that they still do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from minifloat_store.formats import FORMATS, Format, decode_table, get_format

__all__ = [
    "CODEBOOKS",
    "Codebook",
    "gaussian_uniform_step",
    "get_codebook",
    "lloyd_max_gaussian",
]

#: Positive half of the Lloyd-Max levels of N(0, 1) with 2, 4, 8, 16 levels
#: (the negative half mirrors it), from :func:`lloyd_max_gaussian` to 9
#: significant digits (Max 1960, table I, gives the same to 4 digits).
NF_LEVELS: dict[int, tuple[float, ...]] = {
    1: (0.797884561,),
    2: (0.452780035, 1.51041761),
    3: (0.245094179, 0.756005281, 1.34390928, 2.1519457),
    4: (0.12839503, 0.388048299, 0.656759119, 0.942340456, 1.2562312, 1.61804639, 2.06901723, 2.73258957),
}

#: Step (in standard deviations) of the uniform quantiser with levels
#: ``-L*step .. L*step`` of least mean-squared error for N(0, 1), by L, from
#: :func:`gaussian_uniform_step` (4 significant digits are plenty: the error
#: is flat near its minimum).
GAUSSIAN_STEP: dict[int, float] = {1: 1.224006, 3: 0.6507697, 7: 0.3534113, 31: 0.1054876, 127: 0.03087005}


def _phi(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def _cdf(x: float) -> float:
    if not math.isfinite(x):
        return 1.0 if x > 0 else 0.0
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def lloyd_max_gaussian(n_levels: int, tol: float = 1e-15, max_iter: int = 100_000) -> np.ndarray:
    """Lloyd-Max levels of a unit Gaussian: the ``n_levels`` reconstruction points of least MSE.

    Lloyd's iteration: thresholds are midpoints of neighbouring levels; each
    level moves to the conditional mean of N(0, 1) between its thresholds,
    ``(phi(a) - phi(b)) / (Phi(b) - Phi(a))``; repeat until no level moves by
    more than ``tol``.

    Returns
    -------
    ndarray of shape (n_levels,), float64, ascending.
    """
    lv = [-3 + 6 * (i + 0.5) / n_levels for i in range(n_levels)]
    for _ in range(max_iter):
        t = [-math.inf] + [(lv[i] + lv[i + 1]) / 2 for i in range(n_levels - 1)] + [math.inf]
        new = [(_phi(t[i]) - _phi(t[i + 1])) / (_cdf(t[i + 1]) - _cdf(t[i])) for i in range(n_levels)]
        done = max(abs(a - b) for a, b in zip(new, lv, strict=True)) < tol
        lv = new
        if done:
            break
    return np.array(lv)


def _uniform_mse(step: float, L: int) -> float:
    """E[(X - Q(X))^2] for X ~ N(0, 1) and Q rounding to ``k * step``, |k| <= L."""
    total = 0.0
    for k in range(-L, L + 1):
        a = -math.inf if k == -L else (k - 0.5) * step
        b = math.inf if k == L else (k + 0.5) * step
        c = k * step

        def antiderivative(x: float, c: float = c) -> float:
            # integral of (x - c)^2 phi(x) dx = Phi - x phi + 2 c phi + c^2 Phi
            if not math.isfinite(x):
                return _cdf(x) * (1 + c * c)
            return _cdf(x) * (1 + c * c) - x * _phi(x) + 2 * c * _phi(x)

        total += antiderivative(b) - antiderivative(a)
    return total


def gaussian_uniform_step(L: int) -> float:
    """The step of the MSE-optimal uniform quantiser with ``2L + 1`` levels for N(0, 1) (golden section)."""
    lo, hi = 1e-4, 3.0
    g = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        m1, m2 = hi - g * (hi - lo), lo + g * (hi - lo)
        if _uniform_mse(m1, L) < _uniform_mse(m2, L):
            hi = m2
        else:
            lo = m1
    return (lo + hi) / 2


@dataclass(frozen=True)
class Codebook:
    """One element codebook.

    Attributes
    ----------
    name : str
        ``"e2m1"``, ``"int4"``, ``"nf3"``, ``"binary"``...
    family : {"minifloat", "int", "nf", "binary"}
    bits : int
        Bits per stored code: 1, 2, 3, 4, 6, 8, 16 or 32.
    max_level : float
        Largest value a code can hold (the saturation point).
    table : ndarray of shape (2**bits,), float32
        Value of every code (empty for fp32, whose codes are the float32 bits).
    levels : ndarray, float32
        The values written, ascending (nf and binary; the nearest-level search runs on them).
    thresholds : ndarray, float32
        Midpoints between neighbouring ``levels``: a value ``v`` gets the code
        ``count(v >= thresholds)``.
    fmt : Format or None
        The minifloat format, for the minifloat family.
    int_max : int
        ``L`` for the int family (0 otherwise).
    gaussian_step : float
        For the int family, the MSE-optimal step for N(0, 1), in standard deviations.
    rms_step : float
        For the int family, the step of the per-vector scale in units of the
        vector's RMS, when it is finer than ``max|t| / L``: ``gaussian_step`` for
        int4, int3, int2; 0 (not used: the step is always ``max|t| / L``) for
        int8 and int6, where clipping the tail costs more than a finer step
        gains (benchmarks/bench_encoding_choices.py).
    """

    name: str
    family: str
    bits: int
    max_level: float
    table: np.ndarray = field(repr=False)
    levels: np.ndarray = field(repr=False)
    thresholds: np.ndarray = field(repr=False)
    fmt: Format | None = None
    int_max: int = 0
    gaussian_step: float = 0.0
    rms_step: float = 0.0

    @property
    def emax(self) -> int:
        """``floor(log2(max_level))``: the exponent of the largest level, used by the MX block scale."""
        return math.floor(math.log2(self.max_level))

    def __str__(self) -> str:
        return self.name


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


_EMPTY = _readonly(np.zeros(0, dtype=np.float32))


def _minifloat(f: Format) -> Codebook:
    table = decode_table(f) if f.bits <= 16 else _EMPTY
    return Codebook(f.name, "minifloat", f.bits, f.max_value, table, _EMPTY, _EMPTY, fmt=f)


def _int(bits: int) -> Codebook:
    L = 2 ** (bits - 1) - 1
    codes = np.arange(2**bits)
    table = np.where(codes < 2 ** (bits - 1), codes, codes - 2**bits).astype(np.float32)
    levels = np.arange(-L, L + 1, dtype=np.float32)
    return Codebook(
        f"int{bits}", "int", bits, float(L), _readonly(table), _readonly(levels), _EMPTY,
        int_max=L, gaussian_step=GAUSSIAN_STEP[L], rms_step=GAUSSIAN_STEP[L] if bits <= 4 else 0.0,
    )  # fmt: skip


def _sorted_levels(name: str, family: str, bits: int, positive: tuple[float, ...]) -> Codebook:
    pos = np.array(positive, dtype=np.float32)
    levels = np.concatenate([-pos[::-1], pos])
    thresholds = ((levels[:-1].astype(np.float64) + levels[1:]) / 2).astype(np.float32)
    return Codebook(
        name, family, bits, float(levels[-1]), _readonly(levels.copy()), _readonly(levels), _readonly(thresholds)
    )


#: Every element codebook by name: the minifloat formats, then int, nf and binary.
CODEBOOKS: dict[str, Codebook] = {
    **{name: _minifloat(f) for name, f in FORMATS.items()},
    **{f"int{b}": _int(b) for b in (8, 6, 4, 3, 2)},
    **{f"nf{b}": _sorted_levels(f"nf{b}", "nf", b, NF_LEVELS[b]) for b in (4, 3, 2)},
    "binary": _sorted_levels("binary", "binary", 1, (1.0,)),
}


def get_codebook(name: str | Format | Codebook) -> Codebook:
    """Look an element codebook up by name (minifloat aliases such as ``"float8_e4m3fn"`` work too).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(name, Codebook):
        return name
    if isinstance(name, Format):
        return CODEBOOKS[name.name]
    if not isinstance(name, str):
        raise TypeError(f"element must be a name, got {type(name).__name__}")
    cb = CODEBOOKS.get(name.lower())
    if cb is not None:
        return cb
    try:
        return CODEBOOKS[get_format(name).name]
    except ValueError:
        raise ValueError(f"unknown element {name!r}; known elements: {', '.join(CODEBOOKS)}") from None
