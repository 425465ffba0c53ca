"""A crash-safe, checksummed store of packed embeddings (zarr or HDF5).

    from minifloat_store import EmbeddingStore
    with EmbeddingStore.create("spk.zarr", dim=192, fmt="e4m3") as store:
        store.add(["spk1/utt1", "spk1/utt2"], vectors)
    with EmbeddingStore.open("spk.zarr") as store:
        x = store.get(["spk1/utt2"])

Layout and guarantees: docs/store.md.
"""

from minifloat_store.store.embedding_store import EmbeddingStore
from minifloat_store.store.errors import (
    NotAStoreError,
    StoreChangedError,
    StoreCorruptedError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
)
from minifloat_store.store.info import StoreInfo
from minifloat_store.store.record import LAYOUT_VERSION

__all__ = [
    "LAYOUT_VERSION",
    "EmbeddingStore",
    "NotAStoreError",
    "StoreChangedError",
    "StoreCorruptedError",
    "StoreError",
    "StoreInfo",
    "StoreLockedError",
    "StoreVersionError",
]
