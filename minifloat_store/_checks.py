"""Argument checks shared by the public functions of every layer.

Each rule is written once here so that the codec, scoring, the store and the
evaluation refuse the same bad input with the same message. Validate at the
boundary (the public function) with these, then trust the values inside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "SCALE_MODES",
    "ScaleMode",
    "as_float32_matrix",
    "check_finite_rows",
    "check_positive_int",
    "check_scale_mode",
    "describe",
    "first_nonfinite_row",
]

ScaleMode = Literal["none", "vector"]
#: ``"none"``: values are cast as they are (the study's Tables 2-4).
#: ``"vector"``: the study's equation 6, each vector multiplied by
#: ``max_value / max|x|`` before the cast and divided by it after decoding.
SCALE_MODES: tuple[ScaleMode, ...] = ("none", "vector")


def describe(a: object) -> str:
    """Short description of a bad argument for an error message: dtype and shape, or the type."""
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__


def check_scale_mode(scale: object) -> ScaleMode:
    """Return ``scale`` if it is one of :data:`SCALE_MODES`, else raise a ValueError naming them."""
    if not isinstance(scale, str) or scale not in SCALE_MODES:
        raise ValueError(f"unknown scale mode {scale!r}; expected one of {', '.join(SCALE_MODES)}")
    return scale  # narrowed to ScaleMode by the membership test


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1 (bools refused), else raise a ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def as_float32_matrix(x: object, name: str = "x") -> np.ndarray:
    """Validate an (n, d) or (d,) float array and return it as C-contiguous float32 (n, d).

    Values are not checked (see :func:`check_finite_rows`); a float64 value
    beyond the float32 range becomes inf here.

    Raises
    ------
    TypeError
        For a non-float dtype.
    ValueError
        For a wrong number of dimensions or an empty array.
    """
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d) or (d,), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need at least one vector of at least one value")
    with np.errstate(over="ignore"):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    return arr


def first_nonfinite_row(x: np.ndarray) -> int:
    """Index of the first row of a 2-D float array that holds NaN or +-inf, or -1 if none does."""
    finite = np.isfinite(x).all(axis=1)
    if finite.all():
        return -1
    return int(np.flatnonzero(~finite)[0])


def _what(x: np.ndarray, row: int, original: object) -> str:
    """'NaN' or 'inf' (or the original value beyond the float32 range) at the row's first bad column."""
    values = x[row]
    col = int(np.flatnonzero(~np.isfinite(values))[0])
    if np.isnan(values[col]):
        return f"NaN (at column {col})"
    if original is not None:
        orig = np.atleast_2d(np.asarray(original))
        if orig.shape == x.shape and np.isfinite(orig[row, col]):
            return f"{float(orig[row, col])!r}, beyond the float32 range (at column {col})"
    return f"inf (at column {col})"


def check_finite_rows(
    x: np.ndarray,
    *,
    original: object = None,
    ids: Sequence[str] | None = None,
    row_offset: int = 0,
    consequence: str = "nothing was written",
) -> None:
    """Raise a ValueError naming the first row of ``x`` (2-D float) that holds NaN or +-inf.

    Parameters
    ----------
    x : ndarray of shape (n, d), floating point
    original : array_like of shape (n, d), optional
        The caller's array before the float32 cast; a value finite there but
        inf in ``x`` is reported as beyond the float32 range.
    ids : sequence of n str, optional
        Names the bad row's id in the message.
    row_offset : int
        Added to the row number in the message (for a batch of a larger source).
    consequence : str
        What the caller did not do, appended to the message.
    """
    row = first_nonfinite_row(x)
    if row < 0:
        return
    label = f"row {row + row_offset}" + (f" (id {ids[row]!r})" if ids is not None else "")
    raise ValueError(f"{label} contains {_what(x, row, original)}; {consequence}")
