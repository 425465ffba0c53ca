"""What the zarr backend accepts of a store from a stranger: files, links and metadata.

Every read of a local store goes through :class:`ConfinedStore`: no symbolic
link is followed at any step, only regular files are opened (non-blocking, so
a FIFO cannot hang a reader), and no file is read past a size limit (a link to
/dev/zero cannot fill memory). :func:`scan_tree` refuses links and special
files anywhere in the tree before anything is read, and
:func:`check_array_meta` accepts only the documented codec chain (sharding,
bytes, CRC32C) with the shapes the record implies, so a gzip codec written
into the metadata cannot inflate a small shard into gigabytes.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import LocalStore

from minifloat_store.store.errors import StoreCorruptedError

# Fill values that no committed element can hold, so a chunk that is missing
# (deleted behind our back) reads as invalid instead of as plausible data.
FILL: dict[str, Any] = {"codes": 0, "scales": float("nan"), "id_ends": -1, "id_blob": 0, "deleted": -1}
DTYPE = {"codes": "uint8", "scales": "float32", "id_ends": "int64", "id_blob": "uint8", "deleted": "int64"}
#: The id blob gets this many bytes per row of the row arrays' chunking (ids average well under it).
BLOB_BYTES_PER_ROW = 16
#: Arrays whose inner chunks are zstd-compressed from layout version 2 on (ids compress 8-10x).
COMPRESSED = ("id_ends", "id_blob")
#: zstd level of the compressed arrays (measured on VoxCeleb-style ids: level 9 keeps 64 KiB chunks of
#: ids at ~2.6 bytes an id and writes them at tens of MB/s; 19 saves 15 % more and is ~10x slower).
ZSTD_LEVEL = 9
#: Bytes a zstd frame may add to its content (header, block headers; incompressible data).
_ZSTD_SLACK = 64
_ZSTD_MAGIC = 0xFD2FB528
_NO_CHUNK = 2**64 - 1


#: Largest metadata document read (a ``zarr.json``); the root one holds the commit record.
MAX_METADATA_BYTES = 64 << 20
#: Largest ``chunk_rows`` a store may declare (bounds the size of one shard file).
MAX_CHUNK_ROWS = 1 << 22


def corrupt(path: object, what: str) -> StoreCorruptedError:
    return StoreCorruptedError(f"store {path}: {what}")


def open_confined(root: Path, key: str) -> int | None:
    """A read-only descriptor of the regular file ``root/key``, never leaving ``root``.

    Every component is opened relative to its parent without following a
    symbolic link, and the file is checked to be regular before it is opened
    (a FIFO would block, a device could be endless). None if it does not exist.
    """
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise corrupt(root, f"key {key!r} is not a path inside the store")
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                st = os.stat(part, dir_fd=dfd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not stat.S_ISDIR(st.st_mode):
                if stat.S_ISREG(st.st_mode):
                    return None
                raise corrupt(root, f"'{part}' on the way to '{key}' is not a directory (a link or special file)")
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            os.close(dfd)
            dfd = nfd
        name = parts[-1]
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISDIR(st.st_mode):
            return None
        if not stat.S_ISREG(st.st_mode):
            raise corrupt(root, f"'{key}' is not a regular file (a symbolic link, FIFO or device): refused")
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise corrupt(root, f"'{key}' is a symbolic link: refused") from None
            if exc.errno == errno.ENOENT:
                return None
            raise
        st2 = os.fstat(fd)
        if not stat.S_ISREG(st2.st_mode):  # replaced between the check and the open
            os.close(fd)
            raise corrupt(root, f"'{key}' is not a regular file: refused")
        return fd
    finally:
        os.close(dfd)


def read_confined(root: Path, key: str, byte_range: ByteRequest | None, limit: int) -> bytes | None:
    fd = open_confined(root, key)
    if fd is None:
        return None
    with open(fd, "rb", closefd=True) as fh:
        size = os.fstat(fd).st_size
        if size > limit:
            raise corrupt(root, f"'{key}' is {size:,} bytes, more than any file of a store can be ({limit:,})")
        if byte_range is None:
            return fh.read(size)
        if isinstance(byte_range, RangeByteRequest):
            start, stop = byte_range.start, byte_range.end
        elif isinstance(byte_range, OffsetByteRequest):
            start, stop = byte_range.offset, size
        elif isinstance(byte_range, SuffixByteRequest):
            start, stop = max(0, size - byte_range.suffix), size
        else:
            raise TypeError(f"unexpected byte range {byte_range!r}")
        start, stop = min(max(start, 0), size), min(max(stop, 0), size)  # never more than the file holds
        fh.seek(start)
        return fh.read(max(0, stop - start))


class ConfinedStore(LocalStore):
    """zarr's local store, reading only regular files inside the root, of bounded size.

    ``chunk_limit`` bounds the size of a chunk (shard) file; it is 0 until the
    backend has validated the arrays' metadata, so that nothing but metadata
    documents can be read before then.
    """

    chunk_limit: int = 0

    def _limit(self, key: str) -> int:
        return MAX_METADATA_BYTES if key.rsplit("/", 1)[-1] == "zarr.json" else self.chunk_limit

    def _read(self, key: str, prototype: BufferPrototype | None, byte_range: ByteRequest | None) -> Buffer | None:
        data = read_confined(self.root, key, byte_range, self._limit(key))
        if data is None:
            return None
        return (prototype or default_buffer_prototype()).buffer.from_bytes(data)

    def with_read_only(self, read_only: bool = False) -> ConfinedStore:
        store = type(self)(root=self.root, read_only=read_only)
        store.chunk_limit = self.chunk_limit
        return store

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        if not self._is_open:
            await self._open()
        return self._read(key, prototype, byte_range)

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return [self._read(key, prototype, rng) for key, rng in key_ranges]

    def get_sync(
        self, key: str, *, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        self._ensure_open_sync()
        return self._read(key, prototype, byte_range)


def scan_tree(root: Path) -> dict[str, int]:
    """Every file of a local store (relative path -> size); links and special files refused.

    A writer writes through whatever it finds, so a link planted anywhere in
    the tree (``g1 -> /elsewhere``) must stop the open, not only a read.
    """
    files: dict[str, int] = {}
    todo = [("", root)]
    while todo:
        rel, d = todo.pop()
        try:
            it = os.scandir(d)
        except FileNotFoundError:
            continue  # removed meanwhile (a writer dropping an old generation)
        with it:
            for entry in it:
                key = f"{rel}{entry.name}"
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    todo.append((key + "/", Path(entry.path)))
                elif stat.S_ISREG(st.st_mode):
                    files[key] = st.st_size
                else:
                    kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a special file (FIFO, device or socket)"
                    raise corrupt(root, f"'{key}' is {kind}; a store holds only directories and regular files")
    return files


def _bytes_codec_ok(codec: object, itemsize: int) -> bool:
    if not isinstance(codec, dict) or codec.get("name") != "bytes":
        return False
    conf = codec.get("configuration", {})
    if not isinstance(conf, dict) or set(conf) - {"endian"}:
        return False
    return conf.get("endian", "little" if itemsize == 1 else None) == "little"


def _crc_codec_ok(codec: object) -> bool:
    return isinstance(codec, dict) and codec.get("name") == "crc32c" and codec.get("configuration", {}) in ({}, None)


def compressed(name: str, version: int) -> bool:
    """Whether array ``name`` of a store of layout ``version`` has zstd-compressed inner chunks."""
    return version >= 2 and name in COMPRESSED


def _zstd_codec_ok(codec: object) -> bool:
    if not isinstance(codec, dict) or codec.get("name") != "zstd":
        return False
    conf = codec.get("configuration")
    return (
        isinstance(conf, dict)
        and set(conf) == {"level", "checksum"}
        and isinstance(conf["level"], int)
        and not isinstance(conf["level"], bool)
        and 1 <= conf["level"] <= 22
        and conf["checksum"] is False
    )


def zstd_content_size(frame: bytes) -> int | None:
    """The content size a zstd frame header declares (None: not a zstd frame, or one that does not declare it).

    Read before anything is decompressed: the decoder allocates what the
    header declares, so a few hostile bytes could otherwise claim terabytes.
    """
    if len(frame) < 6 or int.from_bytes(frame[:4], "little") != _ZSTD_MAGIC:
        return None
    fhd = frame[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    if fhd & 0x08:  # reserved bit
        return None
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if size == 0 or len(frame) < pos + size:
        return None
    value = int.from_bytes(frame[pos : pos + size], "little")
    return value + 256 if size == 2 else value


def check_compressed_shard(raw: bytes, n_inner: int, chunk_bytes: int, where: str) -> None:
    """Every stored inner chunk of a compressed shard declares exactly ``chunk_bytes`` of content.

    ``raw`` is the shard file; its index (``n_inner`` pairs of uint64 offset and
    length, then a CRC32C) is at the end. Called before zarr decodes the shard,
    so that what the decoder allocates is bounded by the chunk shape.

    Raises
    ------
    StoreCorruptedError
        Naming the damage (index out of the file, a chunk that is no zstd frame of that size).
    """
    index_bytes = n_inner * 16 + 4
    if len(raw) < index_bytes:
        raise StoreCorruptedError(f"{where}: is {len(raw)} bytes, too short for its shard index")
    index = np.frombuffer(raw[len(raw) - index_bytes : len(raw) - 4], dtype="<u8").reshape(n_inner, 2)
    for k, (off, length) in enumerate(index.tolist()):
        if off == _NO_CHUNK and length == _NO_CHUNK:
            continue
        if not (4 < length <= chunk_bytes + _ZSTD_SLACK + 4 and off + length <= len(raw) - index_bytes):
            raise StoreCorruptedError(f"{where}: inner chunk {k} ({length} bytes at {off}) does not fit the shard")
        declared = zstd_content_size(raw[off : off + min(length, 18)])
        if declared != chunk_bytes:
            raise StoreCorruptedError(
                f"{where}: inner chunk {k} is not a zstd frame of {chunk_bytes} bytes (declares {declared}); "
                "refused before decompressing"
            )


def check_array_meta(
    doc: object, where: str, name: str, row_bytes: int, chunk_rows: int, version: int = 1
) -> tuple[int, int, int]:
    """Check an array's ``zarr.json`` against the one chain this module writes for layout ``version``.

    Returns ``(length, inner, max_shard_bytes)``: the array's length, the
    elements of an inner chunk along the first axis, and the size of a full
    shard file (the most a shard can legitimately hold). Anything else
    (another codec, such as gzip that could inflate a small file into
    gigabytes; another dtype, fill value or grid) is refused before zarr
    interprets it.
    """

    def bad(what: str) -> StoreCorruptedError:
        return StoreCorruptedError(
            f"{where}: metadata of array '{name}' {what}; only the layout of docs/store.md is read"
        )

    if not isinstance(doc, dict) or doc.get("node_type") != "array" or doc.get("zarr_format") != 3:
        raise bad("is not a zarr v3 array")
    dtype = np.dtype(DTYPE[name])
    if doc.get("data_type") != DTYPE[name]:
        raise bad(f"has data type {doc.get('data_type')!r}, not {DTYPE[name]}")
    tail = [row_bytes] if name == "codes" else []
    shape = doc.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 1 + len(tail)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in shape)
        or shape[1:] != tail
    ):
        raise bad(f"has shape {shape!r}")
    shard = chunk_rows * BLOB_BYTES_PER_ROW if name == "id_blob" else chunk_rows
    grid = doc.get("chunk_grid")
    if grid != {"name": "regular", "configuration": {"chunk_shape": [shard, *tail]}}:
        raise bad(f"has chunk grid {grid!r}, not shards of {shard} elements")
    if doc.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "/"}}:
        raise bad("has another chunk key encoding")
    if doc.get("storage_transformers", []) != [] or doc.get("dimension_names") is not None:
        raise bad("has storage transformers or dimension names")
    fill, want = doc.get("fill_value"), FILL[name]
    if not (fill == want or (want != want and fill == "NaN")):
        raise bad(f"has fill value {fill!r}, not {want!r}")
    codecs = doc.get("codecs")
    if not isinstance(codecs, list) or len(codecs) != 1 or not isinstance(codecs[0], dict):
        raise bad("does not have exactly one (sharding) codec")
    conf = codecs[0].get("configuration")
    if codecs[0].get("name") != "sharding_indexed" or not isinstance(conf, dict):
        raise bad(f"uses codec {codecs[0].get('name')!r}, not sharding_indexed")
    inner_shape = conf.get("chunk_shape")
    if (
        not isinstance(inner_shape, list)
        or len(inner_shape) != 1 + len(tail)
        or inner_shape[1:] != tail
        or not isinstance(inner_shape[0], int)
        or isinstance(inner_shape[0], bool)
        or not 0 < inner_shape[0] <= shard
        or shard % inner_shape[0]
    ):
        raise bad(f"has inner chunk shape {inner_shape!r} (must divide {shard})")
    inner_codecs, index_codecs = conf.get("codecs"), conf.get("index_codecs")
    zstd = compressed(name, version)
    if (
        not isinstance(inner_codecs, list)
        or len(inner_codecs) != 2 + zstd
        or not _bytes_codec_ok(inner_codecs[0], dtype.itemsize)
        or (zstd and not _zstd_codec_ok(inner_codecs[1]))
        or not _crc_codec_ok(inner_codecs[-1])
    ):
        raise bad(f"has inner codecs {inner_codecs!r}, not bytes + {'zstd + ' if zstd else ''}crc32c")
    if (
        not isinstance(index_codecs, list)
        or len(index_codecs) != 2
        or not _bytes_codec_ok(index_codecs[0], 8)
        or not _crc_codec_ok(index_codecs[1])
    ):
        raise bad(f"has index codecs {index_codecs!r}, not bytes + crc32c")
    if conf.get("index_location", "end") != "end" or set(conf) - {
        "chunk_shape",
        "codecs",
        "index_codecs",
        "index_location",
    }:
        raise bad("has another shard index location or unknown sharding options")
    inner = int(inner_shape[0])
    n_inner = shard // inner
    slack = _ZSTD_SLACK if zstd else 0
    max_shard = (
        n_inner * (inner * dtype.itemsize * max(1, row_bytes if name == "codes" else 1) + slack + 4) + n_inner * 16 + 4
    )
    return int(shape[0]), inner, max_shard


def min_shard_bytes(name: str, elements: int, inner: int, row_bytes: int, shard: int, version: int = 1) -> int:
    """The smallest shard file that can hold ``elements`` committed elements (inner chunks at full size,
    or, compressed, at least a minimal zstd frame each)."""
    itemsize = np.dtype(DTYPE[name]).itemsize * (row_bytes if name == "codes" else 1)
    n_inner = shard // inner
    per_chunk = 9 if compressed(name, version) else inner * itemsize
    return -(-elements // inner) * (per_chunk + 4) + n_inner * 16 + 4


def check_shards(
    local: Path, path: str, record: dict[str, Any], arrays: dict[str, Any], inner: dict[str, int], version: int
) -> None:
    """Every shard a committed element lives in exists and is large enough to hold it.

    A missing shard would read as fill values; a short one cannot hold what
    the record claims. The loop stops at the first shard that is not among
    the files really present, so a record claiming 2**40 rows costs one
    directory listing, not 2**40 checks. ``arrays`` are the opened zarr
    arrays of the record's generation, ``inner`` their inner-chunk lengths.
    """
    gen = int(record["generation"])
    files = scan_tree(local / f"g{gen}")
    row_bytes = int(record["layout"]["row_bytes"])
    for name, arr in arrays.items():
        n = int(record["lengths"][name])
        per = int(arr.shards[0])
        prefix = f"{name}/c/"
        for s in range(-(-n // per)):
            key = f"{prefix}{s}/0" if name == "codes" else f"{prefix}{s}"
            size = files.get(key)
            rows = f"elements {s * per}..{min(n, (s + 1) * per) - 1}"
            if size is None:
                raise StoreCorruptedError(
                    f"store {path}: array '{name}' is missing its chunk file g{gen}/{key} ({rows})"
                )
            need = min_shard_bytes(name, min(n, (s + 1) * per) - s * per, inner[name], row_bytes, per, version)
            if size < need:
                raise StoreCorruptedError(
                    f"store {path}: array '{name}' chunk file g{gen}/{key} has {size:,} bytes, too few "
                    f"for its committed {rows} ({need:,} at least)"
                )
