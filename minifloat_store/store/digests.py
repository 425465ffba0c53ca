"""Block digests: every block of every array bound to its array, its position and the store's layout.

A chunk checksum (zarr's CRC32C, HDF5's fletcher32) says a chunk is intact,
not that it is the chunk that belongs *here*: a shard copied over another,
rows rewritten through zarr or h5py, a record whose format was changed to
another of the same width, all pass it. So the commit record also holds,
per logical array, a CRC32C of each block of ``block`` elements (the last
block: of its committed elements), seeded with the array's name, the
block's index and the layout (format, dim, scale)::

    digest[k] = crc32c(bytes of elements [k*block, min((k+1)*block, length)),
                       seed=crc32c("minifloat-store/<array>/<k>/<format>/<dim>/<scale>"))

Appends extend the last digest (CRC32C continues over appended bytes), so a
commit costs a CRC of what it writes. Reads verify the whole blocks they
touch. The record stores each array's digests as one hex string (8 digits a
block). Stores written before digests existed have none and read as before;
the first commit of a writer adds them (docs/store.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import crc32c
import numpy as np

from minifloat_store.store.errors import StoreChangedError, StoreCorruptedError, StoreError

__all__ = ["BlockDigests", "VerifiedReads", "raise_if_compacted_away"]


class BlockDigests:
    """Digests of every array's blocks, for one layout.

    Parameters
    ----------
    layout : str
        ``"<format>/<dim>/<scale>"``, part of every seed.
    blocks : mapping of str to int
        Elements per block, per array.
    crcs : mapping of str to ndarray of uint32
        The digests of each array's blocks, in order.
    """

    def __init__(self, layout: str, blocks: Mapping[str, int], crcs: Mapping[str, np.ndarray]) -> None:
        self.layout = layout
        self.blocks = dict(blocks)
        self.crcs = {name: np.asarray(c, dtype=np.uint32) for name, c in crcs.items()}

    @staticmethod
    def layout_of(record: Mapping[str, Any]) -> str:
        """The seed's layout part: ``<format>/<dim>/<scale>`` (version 1), or
        ``<element>/<dim>/<scale>/<transform>/<seed>`` (version 2, the encoding's config)."""
        lay = record["layout"]
        if "encoding" in lay:
            c = lay["encoding"]
            return f"{c['element']}/{lay['dim']}/{c['scale']}/{c['transform']}/{c['seed']}"
        return f"{lay['format']}/{lay['dim']}/{lay['scale']}"

    @classmethod
    def empty(cls, record: Mapping[str, Any], blocks: Mapping[str, int]) -> BlockDigests:
        return cls(cls.layout_of(record), blocks, {name: np.zeros(0, np.uint32) for name in blocks})

    @classmethod
    def from_record(cls, record: Mapping[str, Any], arrays: Sequence[str], where: str) -> BlockDigests | None:
        """The record's digests (None for a store written before them), checked for shape."""
        doc = record.get("digests")
        if doc is None:
            return None
        bad = StoreCorruptedError(f"{where}: the commit record's block digests are malformed")
        if not isinstance(doc, dict) or not isinstance(doc.get("block"), dict):
            raise bad
        blocks, crcs = {}, {}
        for name in arrays:
            b, text, n = doc["block"].get(name), doc.get(name), record["lengths"][name]
            if not isinstance(b, int) or isinstance(b, bool) or not 0 < b <= 1 << 24 or not isinstance(text, str):
                raise bad
            if len(text) != 8 * -(-n // b):
                raise StoreCorruptedError(
                    f"{where}: the commit record has {len(text) // 8} block digests for array '{name}', "
                    f"its {n} elements need {-(-n // b)}"
                )
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raise bad from None
            blocks[name] = b
            crcs[name] = np.frombuffer(raw, dtype=">u4").astype(np.uint32)
        return cls(cls.layout_of(record), blocks, crcs)

    def to_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"block": dict(self.blocks)}
        for name, c in self.crcs.items():
            out[name] = c.astype(">u4").tobytes().hex()
        return out

    def _seed(self, name: str, k: int) -> int:
        return crc32c.crc32c(f"minifloat-store/{name}/{k}/{self.layout}".encode())

    def extended(self, name: str, length: int, data: np.ndarray) -> BlockDigests:
        """A copy whose digests of ``name`` also cover ``data`` appended after ``length`` elements."""
        b = self.blocks[name]
        crcs = list(self.crcs[name][: -(-length // b)])
        raw = np.ascontiguousarray(data)
        per = raw.nbytes // len(raw) if len(raw) else 0
        buf = raw.view(np.uint8).reshape(-1)
        pos, i = length, 0
        while i < len(raw):
            k = pos // b
            take = min(len(raw) - i, (k + 1) * b - pos)
            prev = crcs[k] if pos % b else self._seed(name, k)
            crc = crc32c.crc32c(buf[i * per : (i + take) * per].data, int(prev))
            if pos % b:
                crcs[k] = crc
            else:
                crcs.append(crc)
            pos += take
            i += take
        out = BlockDigests(self.layout, self.blocks, self.crcs)
        out.crcs[name] = np.array(crcs, dtype=np.uint32)
        return out

    def verify(self, name: str, start: int, data: np.ndarray, where: str) -> None:
        """Check ``data``, elements ``start..`` of ``name`` (``start`` on a block boundary; whole blocks or the
        committed end), against the digests; StoreCorruptedError naming the array and elements if one differs."""
        b = self.blocks[name]
        raw = np.ascontiguousarray(data)
        per = raw.nbytes // len(raw) if len(raw) else 0
        buf = raw.view(np.uint8).reshape(-1)
        for i in range(0, len(raw), b):
            k = (start + i) // b
            got = crc32c.crc32c(buf[i * per : min(len(raw), i + b) * per].data, self._seed(name, k))
            if k >= len(self.crcs[name]) or got != int(self.crcs[name][k]):
                hi = start + min(len(raw), i + b) - 1
                raise StoreCorruptedError(
                    f"{where}: array '{name}' elements {start + i}..{hi} do not match the commit record's digest "
                    "of that block (a chunk copied from elsewhere, rewritten, or read under another layout)"
                )


class VerifiedReads:
    """A backend's ``read`` with every block it touches checked against the record's digests.

    Reads are widened to whole blocks (a zarr inner chunk or an HDF5 chunk is
    read whole anyway). A block that fails its digest in a reader whose
    generation another process compacted away is a ``StoreChangedError``
    (reopen), otherwise a ``StoreCorruptedError``. With no digests (a store
    written before them) reads pass straight through.
    """

    def __init__(self, backend: Any, digests: BlockDigests | None) -> None:
        self.backend = backend
        self.digests = digests

    def read_block_rows(self) -> int:
        return int(self.backend.read_block_rows())

    def block(self, name: str) -> int | None:
        return None if self.digests is None else self.digests.blocks[name]

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        d, be = self.digests, self.backend
        if d is None:
            return be.read(name, start, stop)
        b, n = d.blocks[name], int(be.record["lengths"][name])
        blo, bhi = start - start % b, min(n, -(-stop // b) * b)
        data = be.read(name, blo, bhi)
        try:
            d.verify(name, blo, data, f"store {be.path}")
        except StoreCorruptedError:
            raise_if_compacted_away(be)
            raise
        return data[start - blo : stop - blo]


def raise_if_compacted_away(be: Any) -> None:
    """A reader whose generation another process compacted away reads fill values: say so, not 'corrupted'."""
    if be.writable:
        return
    try:
        again = be.reload_record()
    except StoreError:
        return
    if again.get("generation") != be.record.get("generation"):
        raise StoreChangedError(
            f"store {be.path}: rows of this reader's view are gone; the store was compacted by another "
            "process since this reader opened it (reopen it)"
        ) from None
