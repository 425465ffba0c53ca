"""The writer that tests/test_store_crash.py kills: adds, deletes and compacts in a loop.

Batch ``k`` holds ``batch_size(k)`` vectors with ids ``b{k}-{i}`` and values
``batch_vectors(k)``, so the checker can recompute exactly what each batch
must decode to. Before each operation the writer logs ``begin <op> <k>`` and
after its commit ``done <op> <k>``, with unbuffered appends, so the log
survives SIGKILL.
"""

from __future__ import annotations

import os
import random

import numpy as np

from minifloat_store.store import EmbeddingStore

DIM = 24


def batch_size(k: int) -> int:
    return 1 + (k * 7919) % 45  # 1..45 rows: crosses 16-row chunks in every way


def batch_ids(k: int) -> list[str]:
    return [f"b{k}-{i}" for i in range(batch_size(k))]


def batch_vectors(k: int) -> np.ndarray:
    return np.random.default_rng(k).standard_normal((batch_size(k), DIM)).astype(np.float32)


def run(path: str, log_path: str, first_batch: int, seed: int) -> None:
    """Open ``path`` for appending and change it until killed."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    rnd = random.Random(seed)  # which batch to delete
    log("opening")
    with EmbeddingStore.open(path, "a") as store:
        log("opened")
        k = first_batch
        # A fixed cycle of operations, entered at a different place by each writer.
        cycle = ["add", "add", "delete", "add", "compact"]
        step = seed % len(cycle)
        while True:
            op = cycle[step % len(cycle)]
            step += 1
            live = sorted({int(i.split("-")[0][1:]) for i in store.ids})
            if op == "add" or not live:
                log(f"begin add {k}")
                store.add(batch_ids(k), batch_vectors(k))
                log(f"done add {k}")
                k += 1
            elif op == "delete":
                victim = rnd.choice(live)
                log(f"begin delete {victim}")
                store.delete(batch_ids(victim))
                log(f"done delete {victim}")
            else:
                log("begin compact 0")
                store.compact()
                log("done compact 0")


def _warm_up() -> None:
    """Load every lazily imported module and numba kernel once, so forked writers start warm."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for backend, name in (("zarr", "w.zarr"), ("hdf5", "w.h5")):
            with EmbeddingStore.create(os.path.join(d, name), dim=DIM, fmt="e4m3", backend=backend, chunk_rows=16) as s:
                s.add(batch_ids(0), batch_vectors(0))
                s.delete(batch_ids(0)[:1])
                s.compact()
                s.get(batch_ids(0)[1:])


if __name__ != "__main__":
    _warm_up()
