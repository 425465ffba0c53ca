"""Errors raised by the store, each naming what went wrong and where."""

from __future__ import annotations

__all__ = [
    "NotAStoreError",
    "StoreChangedError",
    "StoreCorruptedError",
    "StoreError",
    "StoreLockedError",
    "StoreVersionError",
]


class StoreError(Exception):
    """Base class of the store's own errors."""


class StoreLockedError(StoreError, RuntimeError):
    """Another process holds the store open for writing (mode ``"a"``)."""


class StoreCorruptedError(StoreError, RuntimeError):
    """Stored bytes fail their checksum or contradict the commit record.

    The message names the store, the array and (where known) the rows.
    """


class StoreVersionError(StoreError, ValueError):
    """The store was written with a layout this version cannot read."""


class StoreChangedError(StoreError, RuntimeError):
    """A reader's view went away underneath it (another process compacted the store).

    Reopen the store to see its current state.
    """


class NotAStoreError(StoreError, ValueError):
    """The path is not a store of any backend (a file no backend claims, a FIFO, a dangling link).

    A ``StoreError`` (a store from a stranger that is not one is refused like a
    damaged one) and a ``ValueError`` (the path given is the wrong kind of value).
    """
