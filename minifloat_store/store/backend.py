"""Where a store's bytes live: the ``Backend`` interface and the registry of backends by name.

Each backend module defines one ``Backend`` subclass and registers it with
``@register_backend``; ``backend_class(name)`` finds it and ``detect_backend``
asks every registered backend whether a path is its kind of container. This
module imports no backend: the backends import it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

import numpy as np

from minifloat_store.store.errors import NotAStoreError
from minifloat_store.store.record import ARRAYS

__all__ = [
    "ARRAYS",
    "SCAN_ROWS",
    "Backend",
    "backend_class",
    "backend_names",
    "detect_backend",
    "holds_store",
    "register_backend",
]

#: Rows read from a backend at a time by whole-store scans (iter_batches, compact, get_packed_all).
SCAN_ROWS = 65536


class Backend(ABC):
    """Where the bytes live. Subclasses: ``ZarrBackend``, ``HDF5Backend``.

    A backend stores the five logical arrays of ``ARRAYS`` and the commit
    record, and guarantees:

    * ``read`` returns committed data only (the lengths named by ``record``);
    * ``append`` stages data after the staged end of an array without changing
      a single committed byte, even if the process dies half way;
    * ``commit`` makes the staged data durable (fsync) *before* publishing the
      new record in one atomic step; a reader sees the old or the new record;
    * after ``begin_rewrite``, appends go to a new, empty generation, and the
      next ``commit`` switches to it atomically (the old one is then removed).
    """

    #: The name users pass as ``backend=`` and the registry key.
    name: ClassVar[str]
    #: What the container is, for error messages ("a zarr directory").
    container: ClassVar[str]
    #: Whether fsspec URLs (``s3://``, ``memory://``...) work; such backends take ``storage_options=`` in
    #: ``create`` and ``open``.
    remote: ClassVar[bool] = False
    path: str
    writable: bool
    record: dict[str, Any]

    @staticmethod
    @abstractmethod
    def sniff(path: str) -> bool:
        """Whether ``path`` is this backend's kind of container (cheap; nothing is validated).

        A damaged store is still claimed, so that opening it reports the damage.
        """

    @staticmethod
    @abstractmethod
    def holds_store(path: str) -> bool:
        """Whether the container at ``path`` (which ``sniff`` claims) carries a minifloat commit record.

        Looks only for the record's place, not at its content: ``False`` means
        "some other data in this container format" (``convert`` reads it as a source).
        """

    @classmethod
    @abstractmethod
    def create(cls, path: str, record: dict[str, Any], chunk_rows: int | None) -> Backend:
        """Create an empty store holding ``record`` and return it open for writing."""

    @classmethod
    @abstractmethod
    def open(cls, path: str, writable: bool) -> Backend:
        """Open an existing store (``record`` is loaded)."""

    @classmethod
    @abstractmethod
    def lock_path(cls, path: str) -> str | None:
        """The lock file of the store at ``path`` (None where locking is impossible)."""

    @abstractmethod
    def reload_record(self) -> dict[str, Any]:
        """Read the commit record afresh from storage (without changing ``record``)."""

    @abstractmethod
    def refresh(self) -> None:
        """Reload ``record`` and everything derived from it (after a failed transaction)."""

    @abstractmethod
    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Committed elements ``[start, stop)`` of logical array ``name``."""

    @abstractmethod
    def append(self, name: str, data: np.ndarray) -> None:
        """Stage ``data`` after the staged end of ``name`` (invisible until ``commit``)."""

    @abstractmethod
    def commit(self, record: dict[str, Any]) -> None:
        """Make staged data durable, then publish ``record`` atomically."""

    @abstractmethod
    def abort(self) -> None:
        """Forget everything staged since the last commit."""

    @abstractmethod
    def begin_rewrite(self) -> None:
        """Direct the following appends to a new, empty generation."""

    @abstractmethod
    def read_block_rows(self) -> int:
        """Rows per chunk of the row arrays: the natural unit of a scattered read."""

    @abstractmethod
    def nbytes_on_disk(self) -> int:
        """Bytes of every file of the store."""

    @abstractmethod
    def array_nbytes(self, name: str) -> int:
        """Bytes on disk of logical array ``name`` (chunks, indexes, checksums, tails)."""

    @abstractmethod
    def close(self) -> None:
        """Release file handles (idempotent)."""


_REGISTRY: dict[str, type[Backend]] = {}

B = TypeVar("B", bound=type[Backend])


def register_backend(cls: B) -> B:
    """Class decorator: make ``cls`` available as ``backend=cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"backend {cls.name!r} is already registered by {_REGISTRY[cls.name].__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def backend_names() -> tuple[str, ...]:
    """Names of the registered backends, in registration order."""
    return tuple(_REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The backend registered as ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = " or ".join(repr(n) for n in _REGISTRY)
        raise ValueError(f"unknown backend {name!r}; expected {known}") from None


def detect_backend(path: str) -> str:
    """The name of the backend whose kind of container ``path`` is.

    Raises
    ------
    FileNotFoundError
        Nothing exists at ``path``.
    NotAStoreError
        ``path`` is a file that no backend claims, a special file or a dangling link.
    """
    for name, cls in _REGISTRY.items():
        if cls.sniff(path):
            return name
    if os.path.lexists(path):
        kinds = " nor ".join(cls.container for cls in _REGISTRY.values())
        raise NotAStoreError(f"{path} is neither {kinds}")
    raise FileNotFoundError(f"no store at {path}")


def holds_store(path: str) -> bool:
    """Whether ``path`` is a minifloat store of any registered backend (by the place of its commit record)."""
    return any(cls.sniff(path) and cls.holds_store(path) for cls in _REGISTRY.values())
