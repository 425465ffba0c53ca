"""What the HDF5 backend accepts of a file from a stranger.

An HDF5 file can point outside itself (soft and external links, external raw
storage, virtual datasets) and can claim shapes far larger than its bytes.
These checks run before any dataset is read, so a store never reads another
file of the machine and never allocates for a length the file cannot hold.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from minifloat_store.store.errors import StoreCorruptedError

__all__ = ["check_chunk_sizes", "checked_dataset", "require_hard_link", "storage_size"]

#: Bytes deflate may add to incompressible data (stored blocks: 5 bytes per 64 KiB, plus the zlib wrapper).
_DEFLATE_SLACK = 64


def require_hard_link(parent: h5py.Group, name: str, where: str) -> None:
    """Refuse a soft or external link (which could lead into another file of the machine)."""
    try:
        info = parent.id.links.get_info(name.encode())
    except (KeyError, OSError, ValueError):
        raise StoreCorruptedError(f"{where}: '{name}' is missing") from None
    if info.type != h5py.h5l.TYPE_HARD:
        kind = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link"}.get(info.type, "a link")
        raise StoreCorruptedError(f"{where}: '{name}' is {kind}, not an object of this file: refused")


def checked_dataset(
    f: h5py.File,
    ds_name: str,
    where: str,
    dtype: Any,
    tail: tuple[int, ...],
    chunk: int | None,
    filters: tuple[int, ...] = (h5py.h5z.FILTER_FLETCHER32,),
) -> h5py.Dataset:
    try:
        return _checked_dataset_unsafe(f, ds_name, where, dtype, tail, chunk, filters)
    except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:  # h5py's kinds for damaged metadata
        raise StoreCorruptedError(
            f"{where}: dataset '{ds_name}' cannot be opened: {exc} (its HDF5 metadata is damaged)"
        ) from None


def storage_size(ds: h5py.Dataset, where: str) -> int:
    """Bytes HDF5 has allocated for ``ds`` (StoreCorruptedError if its chunk index is damaged)."""
    try:
        return int(ds.id.get_storage_size())
    except (OSError, RuntimeError, ValueError) as exc:
        raise StoreCorruptedError(f"{where}: dataset '{ds.name}' has a damaged chunk index ({exc})") from None


def check_chunk_sizes(ds: h5py.Dataset, chunks: int, chunk_bytes: int, where: str) -> None:
    """A compressed dataset stores its first ``chunks`` chunks, none larger than deflate makes ``chunk_bytes``.

    Read from the chunk index before any chunk is inflated: the bound on a
    chunk's stored size bounds what inflating it can allocate.
    """
    sizes: dict[int, int] = {}
    rows = ds.chunks[0]

    def note(info: Any) -> None:
        sizes[int(info.chunk_offset[0]) // rows] = int(info.size)

    try:
        if chunks:
            ds.id.chunk_iter(note)
    except (OSError, RuntimeError, ValueError) as exc:
        raise StoreCorruptedError(f"{where}: dataset '{ds.name}' has a damaged chunk index ({exc})") from None
    for k in range(chunks):
        size = sizes.get(k)
        if size is None or not 0 < size <= chunk_bytes + _DEFLATE_SLACK + 4:
            raise StoreCorruptedError(
                f"{where}: dataset '{ds.name}' chunk {k} is {'missing' if size is None else f'{size:,} bytes'}; "
                f"a committed chunk of {chunk_bytes:,} bytes is stored in 1..{chunk_bytes + _DEFLATE_SLACK + 4}"
            )


def _checked_dataset_unsafe(
    f: h5py.File,
    ds_name: str,
    where: str,
    dtype: Any,
    tail: tuple[int, ...],
    chunk: int | None,
    filters: tuple[int, ...],
) -> h5py.Dataset:
    """Open ``ds_name`` only if it is what this module writes.

    Refused: links (soft, external), external raw storage (which reads any
    file of the machine as data), virtual datasets, any filter but
    fletcher32, another dtype, row shape or chunk shape, and a shape larger
    than the file could hold (claimed lengths are checked against real sizes
    before anything is allocated).
    """
    parts = ds_name.split("/")
    node: h5py.Group = f
    for i, part in enumerate(parts):
        require_hard_link(node, part, where)
        try:
            obj = node[part]
        except (KeyError, OSError, ValueError) as exc:
            raise StoreCorruptedError(f"{where}: '{'/'.join(parts[: i + 1])}' cannot be opened ({exc})") from None
        if i < len(parts) - 1:
            if not isinstance(obj, h5py.Group):
                raise StoreCorruptedError(f"{where}: '{part}' is not a group")
            node = obj
    ds = obj
    if not isinstance(ds, h5py.Dataset):
        raise StoreCorruptedError(f"{where}: '{ds_name}' is not a dataset")
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout != h5py.h5d.CHUNKED or dcpl.get_external_count() != 0:
        what = "virtual" if layout == getattr(h5py.h5d, "VIRTUAL", -1) else "not chunked or stored outside the file"
        raise StoreCorruptedError(f"{where}: dataset '{ds_name}' is {what}: refused")
    got = tuple(dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters()))
    if got != filters:
        names = {
            h5py.h5z.FILTER_FLETCHER32: "fletcher32",
            h5py.h5z.FILTER_SHUFFLE: "shuffle",
            h5py.h5z.FILTER_DEFLATE: "deflate",
        }
        want = " + ".join(names[i] for i in filters)
        raise StoreCorruptedError(f"{where}: dataset '{ds_name}' has filters other than {want}: refused")
    if ds.dtype != np.dtype(dtype) or tuple(ds.shape[1:]) != tail:
        raise StoreCorruptedError(
            f"{where}: dataset '{ds_name}' is {ds.dtype} of shape {ds.shape}, expected {np.dtype(dtype)} "
            f"rows of shape {tail}"
        )
    if chunk is not None and tuple(ds.chunks or ()) != (chunk, *tail):
        raise StoreCorruptedError(f"{where}: dataset '{ds_name}' has chunks {ds.chunks}, expected {(chunk, *tail)}")
    return ds
