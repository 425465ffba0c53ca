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
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import crc32c

from minifloat_store._checks import ScaleMode, check_scale_mode
from minifloat_store.formats import Format, get_format
from minifloat_store.store.errors import StoreCorruptedError, StoreVersionError
from minifloat_store.store.integrity import check_record

__all__ = ["ARRAYS", "LAYOUT_VERSION", "RECORD_KEY", "new_record", "next_record", "unwrap_record", "wrap_record"]

#: Layout version written by this code; a store with a larger one is refused.
LAYOUT_VERSION = 1
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
        "layout_version": LAYOUT_VERSION,
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
    return check_record(record, where, ARRAYS)


def new_record(fmt: Format, dim: int, scale: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The record of an empty store (``scale`` already made effective for ``fmt``)."""
    return {
        "txn": 0,
        "generation": 0,
        "layout": {"format": fmt.name, "dim": int(dim), "scale": scale, "row_bytes": fmt.row_bytes(int(dim))},
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


def read_layout(record: Mapping[str, Any], where: str) -> tuple[Format, int, ScaleMode, int, dict[str, int]]:
    """Check a loaded record's layout and lengths for consistency.

    Returns
    -------
    fmt, dim, scale, row_bytes, lengths
        ``lengths`` maps every name of ``ARRAYS`` to its committed length.

    Raises
    ------
    StoreCorruptedError
        A missing or garbled field, or fields that contradict each other.
    """
    try:
        layout = record["layout"]
        fmt = get_format(layout["format"])
        dim = int(layout["dim"])
        scale = str(layout["scale"])
        row_bytes = int(layout["row_bytes"])
        lengths = {name: int(record["lengths"][name]) for name in ARRAYS}
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreCorruptedError(f"{where}: commit record lacks or garbles {exc}") from None
    if row_bytes != fmt.row_bytes(dim) or scale not in ("none", "vector"):
        raise StoreCorruptedError(f"{where}: commit record layout {layout} is inconsistent")
    if not (lengths["scales"] == lengths["id_ends"] == lengths["codes"]):
        raise StoreCorruptedError(f"{where}: array lengths disagree in the commit record: {lengths}")
    return fmt, dim, check_scale_mode(scale), row_bytes, lengths
