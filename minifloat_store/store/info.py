"""``StoreInfo``: the sizes and settings that ``EmbeddingStore.info()`` and ``minifloat-store info`` report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["StoreInfo"]


@dataclass(frozen=True)
class StoreInfo:
    """What ``EmbeddingStore.info()`` and ``minifloat-store info`` report.

    Attributes
    ----------
    path, backend, format, scale : str
        ``format`` is the element of the encoding (``"e4m3"``, ``"nf4"``...).
    dim : int
        Values per vector.
    count : int
        Live vectors.
    deleted : int
        Deleted vectors whose bytes are still stored (``compact`` reclaims them).
    bytes_on_disk : int
        Every file of the store (vectors, ids, indexes, checksums, metadata).
    vector_bytes_on_disk : int
        The ``codes`` and ``scales`` arrays alone.
    payload_bytes : int
        ``storage_bytes(count, dim, format, scale)``: the packed vectors, no container.
    bytes_per_vector : float
        ``bytes_on_disk / count`` (NaN for an empty store).
    vector_overhead : float
        ``vector_bytes_on_disk / storage_bytes(count + deleted, ...)``: container
        cost of the vector arrays (chunk padding, indexes, checksums); 1.0 is none.
    layout_version : int
        The store's layout version (1 or 2; docs/store.md).
    metadata : dict
    encoding : dict
        ``Encoding.get_config()`` of the store's encoding (its fitted mean is not repeated here).
    transform : str
        The encoding's transform (``"none"`` for the study formats).
    """

    path: str
    backend: str
    format: str
    scale: str
    dim: int
    count: int
    deleted: int
    bytes_on_disk: int
    vector_bytes_on_disk: int
    payload_bytes: int
    bytes_per_vector: float
    vector_overhead: float
    layout_version: int
    metadata: dict[str, Any]
    encoding: dict[str, Any] = field(default_factory=dict)
    transform: str = "none"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        rows = [
            ("path", self.path),
            ("backend", self.backend),
            ("layout version", str(self.layout_version)),
            ("format", self.format),
            ("scale", self.scale),
            *(
                [("transform", f"{self.transform} (seed {self.encoding.get('seed', 0)})")]
                if self.transform != "none"
                else []
            ),
            ("dim", str(self.dim)),
            ("vectors", f"{self.count:,}"),
            ("deleted (not yet compacted)", f"{self.deleted:,}"),
            ("bytes on disk", f"{self.bytes_on_disk:,}"),
            ("bytes per vector", f"{self.bytes_per_vector:.2f}"),
            ("payload (storage_bytes)", f"{self.payload_bytes:,}"),
            ("vector arrays on disk", f"{self.vector_bytes_on_disk:,} ({self.vector_overhead:.4f} x payload)"),
        ]
        if self.metadata:
            rows.append(("metadata", json.dumps(self.metadata, sort_keys=True)))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
