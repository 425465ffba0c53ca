"""Stores in object storage (fsspec URLs): what replaces ``flock`` and ``rename`` there.

An object store keeps one guarantee the local store relies on: a PUT of one
object is atomic (a reader gets the old or the new ``zarr.json``, never half).
It has no ``flock``, no ``fsync`` and no rename. Two things replace the lock:

* a lock *object*, ``STORE/.lock``, created with a conditional PUT
  (``If-None-Match: *``) so that exactly one writer creates it; it names its
  owner and is deleted by ``close()``. A killed writer leaves it behind:
  the next writer is refused with a message naming the owner, and a person
  who knows that writer is dead deletes the object.
* a generation check: every transaction first re-reads the commit record and
  refuses to write when it moved under the writer, and the commit itself is a
  conditional PUT (``If-Match`` on the ETag of the record the writer read), so
  a commit is refused when another writer committed in between.

S3 (and moto, which the tests use) honour both conditions. Other fsspec
filesystems (``memory://``, ``gs://`` through gcsfs...) are served by a
read-compare-write with a window between the compare and the write; that is
said in docs/store.md.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

import fsspec

from minifloat_store.store.errors import StoreChangedError, StoreLockedError

__all__ = ["RemoteLock", "RemoteRecordFile", "is_url"]


def is_url(path: str) -> bool:
    """Whether ``path`` names an fsspec location other than the local file system."""
    return "://" in path and not path.startswith("file://")


def _is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "s3" in protocol or "s3a" in protocol


def _precondition_failed(exc: BaseException) -> bool:
    # botocore's ClientError carries the code; s3fs may re-raise it translated.
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or "PreconditionFailed" in str(exc)


class RemoteRecordFile:
    """The root ``zarr.json`` of a remote store, read with a version token and written conditionally."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None) -> None:
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.path = root.rstrip("/") + "/zarr.json"
        self.url = url
        self.conditional = _is_s3(self.fs)

    def read(self) -> tuple[dict[str, Any], object]:
        """The parsed document and a token that :meth:`write` checks (an ETag on S3, else the bytes)."""
        if self.conditional:
            bucket, key, _ = self.fs.split_path(self.path)
            out = self.fs.call_s3("get_object", Bucket=bucket, Key=key)
            body = _read_body(self.fs, out["Body"])
            token: object = out["ETag"]
        else:
            body = self.fs.cat_file(self.path)
            token = body
        return json.loads(body), token

    def write(self, doc: dict[str, Any], token: object) -> None:
        """Replace the document if it is still the one ``token`` came from; ``StoreChangedError`` otherwise."""
        data = json.dumps(doc, indent=2).encode("utf-8")
        if self.conditional:
            try:
                self.fs.pipe_file(self.path, data, IfMatch=token)
            except Exception as exc:
                if _precondition_failed(exc):
                    raise _conflict(self.url) from None
                raise
            return
        # No conditional PUT here: compare, then write (a short window remains; docs/store.md).
        if self.fs.cat_file(self.path) != token:
            raise _conflict(self.url)
        self.fs.pipe_file(self.path, data)


def _read_body(fs: Any, body: Any) -> bytes:
    from fsspec.asyn import sync  # fsspec's own loop, which s3fs runs on

    async def _read() -> bytes:
        async with body as stream:
            return await stream.read()

    return sync(fs.loop, _read)


def _conflict(url: str) -> StoreChangedError:
    return StoreChangedError(
        f"store {url}: the commit record changed under this writer (another writer committed); "
        f"nothing of this transaction was committed. Reopen the store and retry"
    )


class RemoteLock:
    """The writer lock of a remote store: an object created only if absent (see the module docstring)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None) -> None:
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.path = root.rstrip("/") + "/.lock"
        owner = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "token": uuid.uuid4().hex,
        }
        data = json.dumps(owner).encode("utf-8")
        self._data = data
        try:
            if _is_s3(self.fs):
                self.fs.pipe_file(self.path, data, mode="create")
            elif self.fs.exists(self.path):
                raise FileExistsError(self.path)
            else:
                self.fs.pipe_file(self.path, data)
        except Exception as exc:
            if not (isinstance(exc, FileExistsError) or _precondition_failed(exc)):
                raise
            try:
                held_by = self.fs.cat_file(self.path).decode("utf-8", "replace")[:200]
            except Exception:
                held_by = "unknown"
            raise StoreLockedError(
                f"store {url} is already open for writing (lock object {self.path}, held by {held_by}); close "
                f"that writer first. If it died, delete the lock object by hand"
            ) from None
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    def verify(self) -> None:
        """Raise StoreLockedError unless the lock object is still ours (called before every commit).

        The conditional commit (generation check) is what keeps a second
        writer's rows; this check names the cause earlier and more clearly.
        """
        try:
            ours = self.fs.cat_file(self.path) == self._data
        except FileNotFoundError:
            ours = False
        if not ours:
            raise StoreLockedError(
                f"the lock object {self.path} was deleted or replaced while this writer held it; another writer "
                "may be changing the store, so nothing was committed. Close this handle and reopen the store."
            )

    def release(self) -> None:
        """Delete the lock object if it is still ours (idempotent).

        Someone may have deleted a lock they took for stale and another writer
        taken it since: that writer's lock is left alone.
        """
        if self._held:
            self._held = False
            try:
                if self.fs.cat_file(self.path) == self._data:
                    self.fs.rm_file(self.path)
            except FileNotFoundError:
                pass
