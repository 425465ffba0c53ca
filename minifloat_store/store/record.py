"""The commit record: what a store's committed state is, and the versioned wrapper it is stored in.

A store is five append-only *logical arrays* plus one *commit record*:

=========  ==========================  =========================================
name       shape, dtype                meaning
=========  ==========================  =========================================
codes      (rows, row_bytes) uint8     packed vectors (``Packed.codes``)
scales     (rows,) float32             per-vector scales (``Packed.scales``)
id_ends    (rows,) int64               exclusive end of row i's id in id_blob
id_blob    (id_bytes,) uint8           UTF-8 ids of every row, concatenated
deleted    (n_deleted,) int64          rows deleted so far (the deletion mask,
                                       stored as the list of its set bits)
=========  ==========================  =========================================

The record is a small JSON object naming the layout (format, dim, scale,
row bytes), the committed length of every logical array, the transaction
and generation counters, and the store's metadata. Backends store it wrapped
with its layout version and a CRC32C (``wrap_record``) and check both before
trusting it (``unwrap_record``). Byte layout: docs/store.md.

Layout version 2 (every store created today) records the whole
:class:`~minifloat_store.Encoding` instead of a format and a scale mode: its
``get_config()`` and its fitted mean (base64 of float32 little-endian), both
inside the record, so they are durable exactly when the record is. A row of
``codes`` is then the vector's packed codes followed by its block-scale bytes;
``scales`` holds one float32 per row only when the encoding has a per-vector
scale (otherwise it stays empty), and the id arrays are compressed by the
backend. Version 1 stores (a format and ``"none"``/``"vector"``) read as before.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import crc32c
import numpy as np

from minifloat_store.encoding import Encoding
from minifloat_store.formats import Format
from minifloat_store.store.errors import StoreCorruptedError, StoreVersionError
from minifloat_store.store.integrity import check_record, record_encoding

__all__ = [
    "ARRAYS",
    "LAYOUT_VERSION",
    "RECORD_KEY",
    "StoreLayout",
    "new_record",
    "next_record",
    "read_layout",
    "record_version",
    "unwrap_record",
    "wrap_record",
]

#: Layout version written by this code for new stores; a store with a larger one is refused.
LAYOUT_VERSION = 2
#: Key of the commit record (zarr root attribute; HDF5 commit slots hold the same JSON).
RECORD_KEY = "minifloat_store"
#: The logical arrays, in the order a transaction writes them.
ARRAYS: tuple[str, ...] = ("codes", "scales", "id_ends", "id_blob", "deleted")


def wrap_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object stored as the commit record: the record text and its CRC32C.

    The record is kept as a string so that its checksum is over exact bytes,
    not over a re-serialisation that another JSON library might format differently.
    """
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return {
        "layout_version": record_version(record),
        "record": text,
        "record_crc32c": crc32c.crc32c(text.encode("utf-8")),
    }


def unwrap_record(wrapper: object, where: str) -> dict[str, Any]:
    """Check a stored commit record (version first, then checksum) and return the record."""
    if not isinstance(wrapper, Mapping) or "layout_version" not in wrapper:
        raise StoreCorruptedError(f"{where}: no minifloat-store commit record (is this a minifloat store?)")
    version = wrapper["layout_version"]
    if not isinstance(version, int):
        raise StoreCorruptedError(f"{where}: layout_version {version!r} is not an integer")
    if version > LAYOUT_VERSION:
        raise StoreVersionError(
            f"{where} has store layout version {version}, newer than this minifloat-store reads "
            f"(up to {LAYOUT_VERSION}); upgrade minifloat-store to open it"
        )
    if version < 1:
        raise StoreVersionError(f"{where} has unknown store layout version {version}")
    text = wrapper.get("record")
    crc = wrapper.get("record_crc32c")
    if not isinstance(text, str) or crc != crc32c.crc32c(text.encode("utf-8")):
        raise StoreCorruptedError(f"{where}: the commit record fails its CRC32C check")
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise StoreCorruptedError(f"{where}: the commit record is not valid JSON ({exc})") from None
    # Every field present and typed before anything uses it (never a KeyError or TypeError later).
    return check_record(record, where, ARRAYS, version)


def record_version(record: Mapping[str, Any]) -> int:
    """The layout version a (checked) record belongs to: 2 when its layout records an encoding."""
    layout = record.get("layout")
    return 2 if isinstance(layout, Mapping) and "encoding" in layout else 1


def encoding_layout(enc: Encoding, dim: int) -> dict[str, Any]:
    """The ``layout`` of a version-2 record: dim, row bytes, the encoding's config and fitted arrays."""
    fitted = {
        name: base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")
        for name, a in enc.fitted_arrays().items()
    }
    return {
        "dim": int(dim),
        "row_bytes": enc.code_bytes(dim) + enc.n_blocks(dim),
        "encoding": enc.get_config(),
        "fitted": fitted,
    }


def new_record(enc: Encoding, dim: int, metadata: dict[str, Any]) -> dict[str, Any]:
    """The record of an empty store of layout version 2 (``enc`` fitted, of dimension ``dim``)."""
    return {
        "txn": 0,
        "generation": 0,
        "layout": encoding_layout(enc, dim),
        "lengths": {name: 0 for name in ARRAYS},
        "metadata": metadata,
    }


def next_record(record: Mapping[str, Any], **lengths: int) -> dict[str, Any]:
    """The record of the next transaction: ``txn`` + 1 and the given array lengths (others kept)."""
    rec = copy.deepcopy(dict(record))
    rec["txn"] = int(rec["txn"]) + 1
    rec["lengths"].update(lengths)
    # Backends add their own physical state under "backend" when they commit.
    rec.pop("backend", None)
    return rec


@dataclass(frozen=True)
class StoreLayout:
    """What a checked record says about the rows of a store.

    Attributes
    ----------
    version : int
        Layout version (1: a format and a scale mode; 2: an encoding).
    encoding : Encoding
        How the rows are encoded (a version-1 store's is ``Encoding(format, scale)``).
    dim : int
        Values per vector.
    row_bytes : int
        Bytes of one row of ``codes``: the packed codes, then (version 2) the block-scale bytes.
    scale_column : bool
        Whether ``scales`` holds one float32 per row (always in version 1; in
        version 2 only for an encoding with a per-vector scale).
    lengths : dict of str to int
        The committed length of every array of ``ARRAYS``.
    """

    version: int
    encoding: Encoding
    dim: int
    row_bytes: int
    scale_column: bool
    lengths: dict[str, int]

    @property
    def fmt(self) -> Format | None:
        """The minifloat format of a store the study's way (``encode(x, fmt, scale)``), else None."""
        return self.encoding.codebook.fmt if self.encoding.is_legacy else None

    @property
    def scale(self) -> str:
        return self.encoding.scale

    @property
    def code_bytes(self) -> int:
        return self.encoding.code_bytes(self.dim)


def read_layout(record: Mapping[str, Any], where: str) -> StoreLayout:
    """The layout of a record that ``unwrap_record`` (or ``check_record``) has checked.

    Raises
    ------
    StoreCorruptedError
        A missing or garbled field, or fields that contradict each other.
    """
    try:
        version = record_version(record)
        enc, dim = record_encoding(record, where)
        layout = record["layout"]
        row_bytes = int(layout["row_bytes"])
        lengths = {name: int(record["lengths"][name]) for name in ARRAYS}
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorruptedError(f"{where}: commit record lacks or garbles {exc}") from None
    scale_column = version == 1 or enc.has_vector_scale
    if row_bytes != enc.code_bytes(dim) + (enc.n_blocks(dim) if version > 1 else 0):
        raise StoreCorruptedError(f"{where}: commit record layout {layout} is inconsistent")
    if lengths["scales"] != (lengths["codes"] if scale_column else 0) or lengths["id_ends"] != lengths["codes"]:
        raise StoreCorruptedError(f"{where}: array lengths disagree in the commit record: {lengths}")
    return StoreLayout(version, enc, dim, row_bytes, scale_column, lengths)
