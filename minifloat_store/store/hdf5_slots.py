"""The HDF5 backend's two commit slots: the record written twice, read back with every field checked.

A slot holds the record's byte length (8 bytes, little-endian) and the
wrapped record (JSON with its CRC32C). ``write_slots`` writes ``commit0``,
fsyncs, then ``commit1``, fsyncs, so a kill leaves at least one whole slot;
``read_record`` takes the valid slot with the highest ``txn``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np

from minifloat_store.store.diskspace import reserve_space
from minifloat_store.store.errors import StoreCorruptedError, StoreVersionError
from minifloat_store.store.hdf5_guard import checked_dataset, storage_size
from minifloat_store.store.record import ARRAYS, unwrap_record, wrap_record

__all__ = ["COMMIT_SLOTS", "MAX_SLOT_BYTES", "check_phys", "fsync_file", "read_record", "write_slots"]

COMMIT_SLOTS = ("commit0", "commit1")
#: Row chunk of a commit slot dataset.
COMMIT_CHUNK = 4096
#: A slot claiming more than this is damage: a record is a few KiB (plus digests), never 64 MiB.
MAX_SLOT_BYTES = 64 << 20


def fsync_file(f: h5py.File) -> None:
    os.fsync(f.id.get_vfd_handle())


def read_slot(
    f: h5py.File, slot: str, where: str, refresh: bool, why: list[str] | None = None
) -> dict[str, Any] | None:
    """The record in one commit slot, or None if the slot is empty, torn or corrupted (the reason appended to
    ``why`` when the slot holds a record that fails its checks)."""
    try:
        ds = checked_dataset(f, slot, where, np.uint8, (), COMMIT_CHUNK)
        if refresh:
            ds.refresh()
        if ds.shape[0] > MAX_SLOT_BYTES or storage_size(ds, where) < min(ds.shape[0], 8):
            return None  # claims more than was ever written: read nothing
        raw = ds[:]
        if len(raw) < 8:
            return None
        n = int.from_bytes(raw[:8].tobytes(), "little")
        if n > len(raw) - 8:
            return None
        wrapper = json.loads(raw[8 : 8 + n].tobytes().decode("utf-8"))
        return unwrap_record(wrapper, f"{where} ({slot})")
    except StoreVersionError:
        raise
    except StoreCorruptedError as exc:
        if why is not None:
            why.append(str(exc))
        return None
    except (OSError, KeyError, ValueError, RuntimeError, UnicodeDecodeError):
        return None


def read_record(f: h5py.File, where: str, refresh: bool = False) -> dict[str, Any]:
    for slot in COMMIT_SLOTS:
        checked_dataset(f, slot, where, np.uint8, (), COMMIT_CHUNK)  # a link or external slot: refused outright
    why: list[str] = []
    found = [r for r in (read_slot(f, s, where, refresh, why) for s in COMMIT_SLOTS) if r is not None]
    if not found:
        detail = f": {why[0]}" if why else " (is this a minifloat store?)"
        raise StoreCorruptedError(f"{where}: neither commit slot holds a valid commit record{detail}")
    return max(found, key=lambda r: r["txn"] if isinstance(r.get("txn"), int) else -1)


def write_slots(f: h5py.File, record: dict[str, Any]) -> None:
    payload = json.dumps(wrap_record(record), separators=(",", ":")).encode("utf-8")
    buf = np.frombuffer(len(payload).to_bytes(8, "little") + payload, dtype=np.uint8)
    reserve_space(f, 2 * len(buf))
    for slot in COMMIT_SLOTS:
        ds = f[slot]
        if ds.shape[0] < len(buf):
            ds.resize((len(buf),))
        ds[: len(buf)] = buf
        f.flush()
        fsync_file(f)


def _is_int(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def check_phys(record: dict[str, Any], where: str) -> dict[str, Any]:
    """The record's HDF5 part, checked field by field (a missing or ill-typed one is damage, not a KeyError)."""
    bad = StoreCorruptedError(f"{where}: the commit record's HDF5 part is missing or ill-typed")
    outer = record.get("backend")
    phys = outer.get("hdf5") if isinstance(outer, dict) else None
    if not isinstance(phys, dict) or not _is_int(phys.get("chunk_rows"), 1, 1 << 22):
        raise bad
    sealed, tails = phys.get("sealed"), phys.get("tails")
    if not isinstance(sealed, dict) or not isinstance(tails, dict):
        raise bad
    for name in ARRAYS:
        t = tails.get(name)
        if not (
            _is_int(sealed.get(name), 0, 1 << 62)
            and isinstance(t, list)
            and len(t) == 3
            and _is_int(t[0], 0, 1)
            and _is_int(t[1], 0, 1 << 62)
            and _is_int(t[2], 0, 2**32 - 1)
        ):
            raise bad
    return phys
