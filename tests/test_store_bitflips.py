"""A flipped bit anywhere in a store's files is a StoreError or harmless, never a wrong vector.

Each case copies a small store, flips one bit at a random position of one of
its files, then opens it and reads everything. Allowed outcomes: the exact
original content, or a ``StoreError`` (corrupted, changed, version) raised at
open or read. Not allowed: different vectors or ids, or any other exception.
"""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store.store import EmbeddingStore, StoreError

FLIPS = 60


def build(path: str, backend: str) -> tuple[list[str], np.ndarray]:
    x = np.random.default_rng(3).standard_normal((45, 8)).astype(np.float32)
    ids = [f"id{i}" for i in range(45)]
    with EmbeddingStore.create(path, 8, "e4m3", backend=backend, chunk_rows=16) as s:
        s.add(ids[:30], x[:30])
        s.add(ids[30:], x[30:])
        s.delete(ids[:2])
    for lock in (os.path.join(path, ".lock"), path + ".lock"):
        if os.path.exists(lock):
            os.remove(lock)
    return ids[2:], mfs.quantize(x[2:], "e4m3")


def files_of(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_a_flipped_bit_is_an_error_or_harmless(tmp_path, backend):
    gold = str(tmp_path / ("gold.zarr" if backend == "zarr" else "gold.h5"))
    ids, expected = build(gold, backend)
    rnd = random.Random(11)
    outcomes = {"error": 0, "harmless": 0}
    for case in range(FLIPS):
        path = str(tmp_path / f"c{case}{'.zarr' if backend == 'zarr' else '.h5'}")
        (shutil.copytree if backend == "zarr" else shutil.copy)(gold, path)
        victim = rnd.choice(files_of(path))
        size = os.path.getsize(victim)
        off, bit = rnd.randrange(size), rnd.randrange(8)
        with open(victim, "r+b") as fh:
            fh.seek(off)
            b = fh.read(1)[0]
            fh.seek(off)
            fh.write(bytes([b ^ (1 << bit)]))
        where = f"bit {bit} of byte {off} of {os.path.relpath(victim, tmp_path)}"
        try:
            with EmbeddingStore.open(path, "r") as s:
                got_ids, got = s.ids, s.to_numpy()
        except StoreError:
            outcomes["error"] += 1
            continue
        except Exception as exc:  # pragma: no cover - the failure this test looks for
            pytest.fail(f"{where}: {type(exc).__name__}: {exc} (expected a StoreError)")
        assert got_ids == ids, f"{where}: ids changed silently"
        assert got.tobytes() == expected.tobytes(), f"{where}: vectors changed silently"
        outcomes["harmless"] += 1
    assert outcomes["error"] > 0
