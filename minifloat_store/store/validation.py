"""Checks of what a caller hands to ``EmbeddingStore``: ids, vectors, metadata.

Each returns the value in the form the store keeps, or raises a ``TypeError``
or ``ValueError`` that names the offending item; the store calls them before
it changes anything, so a refused batch leaves the store as it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from minifloat_store.codec import Packed, as_float32_matrix
from minifloat_store.encoding import Encoded, Encoding

__all__ = ["check_encoding", "check_ids", "check_ids_any", "check_json", "check_packed", "check_vectors"]


def check_json(metadata: object) -> dict[str, Any]:
    """``metadata`` (a mapping of JSON values, or None) as a fresh dict of plain JSON values."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping of JSON values, got {type(metadata).__name__}")
    try:
        text = json.dumps(dict(metadata), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable (str keys; no NaN/inf): {exc}") from None
    return json.loads(text)


def check_ids(ids: object, what: str) -> list[str]:
    """A batch of ids as a list of non-empty, distinct str (UTF-8 is checked by ``encode_ids``)."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of strings, not a single {type(ids).__name__}")
    if isinstance(ids, np.ndarray):
        if ids.dtype.kind not in "UTO":
            raise TypeError(f"{what} must be strings, got an array of dtype {ids.dtype}")
        ids = ids.ravel().tolist()
    try:
        out = list(ids)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{what} must be a sequence of strings, got {type(ids).__name__}") from None
    if not all(isinstance(s, str) for s in out):
        i = next(i for i, s in enumerate(out) if not isinstance(s, str))
        raise TypeError(f"{what}[{i}] is {type(out[i]).__name__} {out[i]!r}, not str")
    if out and min(map(len, out)) == 0:
        raise ValueError(f"{what}[{out.index('')}] is an empty string; ids must be non-empty")
    if len(set(out)) != len(out):
        seen: set[str] = set()
        for i, s in enumerate(out):
            if s in seen:
                raise ValueError(f"duplicate id {s!r} in {what} (position {i})")
            seen.add(s)
    return out


def check_ids_any(ids: object, what: str) -> list[str]:
    """Like ``check_ids`` but repeats are allowed (pairs may reuse an id)."""
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of strings, not a single {type(ids).__name__}")
    if isinstance(ids, np.ndarray):
        out = ids.ravel().tolist()
    else:
        out = list(ids)  # type: ignore[call-overload]
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise TypeError(f"{what}[{i}] is {type(s).__name__} {s!r}, not str")
    return out


def check_vectors(vectors: object, ids: list[str], dim: int, where: str) -> np.ndarray:
    """``vectors`` as a float32 matrix (len(ids), dim) of finite values; ``where`` names the store."""
    x = as_float32_matrix(vectors, "vectors")
    if x.shape[1] != dim:
        raise ValueError(f"dim {x.shape[1]} != {dim}: vectors do not match store {where}; nothing was stored")
    if x.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids but {x.shape[0]} vectors; nothing was stored")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        bad = x[row][~np.isfinite(x[row])][0]
        what = "NaN" if np.isnan(bad) else "inf (or a value beyond the float32 range)"
        raise ValueError(f"row {row} (id {ids[row]!r}) contains {what}; nothing was stored")
    return x


def check_encoding(enc: Encoding, dim: int) -> Encoding:
    """``enc`` if a store of dimension ``dim`` can hold it: fitted if it centres, on ``dim`` values."""
    if not enc.is_fitted:
        raise ValueError(f"{enc!r} centres but is not fitted: call enc = enc.fit(sample) before creating the store")
    if enc.dim is not None and enc.dim != dim:
        raise ValueError(f"{enc!r} was fitted on dim {enc.dim}, not {dim}")
    return enc


def check_packed(packed: object, enc: Encoding, dim: int, where: str) -> Packed | Encoded:
    """``packed`` if it holds rows of exactly the store's encoding and dim.

    A ``Packed`` of the same format and scale mode (a study format), or an
    ``Encoded`` of an equal encoding (config and fitted mean, bit for bit).
    """
    if isinstance(packed, Packed):
        same = enc.is_legacy and packed.fmt.name == enc.element and packed.scale == enc.scale
        what = f"{packed.fmt.name}/{packed.scale}"
    elif isinstance(packed, Encoded):
        same = packed.encoding == enc
        what = repr(packed.encoding)
    else:
        raise TypeError(f"packed must be a Packed or an Encoded, got {type(packed).__name__}")
    if not same or packed.dim != dim:
        raise ValueError(
            f"packed holds {what} of dim {packed.dim}; store {where} holds {enc!r} of dim {dim}; nothing was stored"
        )
    return packed
