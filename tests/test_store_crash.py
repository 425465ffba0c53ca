"""A writer killed with SIGKILL at random moments never loses or half-writes a batch.

Each iteration forks a writer (tests/store_crash_writer.py) that adds,
deletes and compacts in a loop and kills it at a random moment: early (while
it opens the store, or recovers an HDF5 file), or inside an add, a delete or
a compaction, a random time after it began. Then it opens the
store and checks: it opens; the stored ids are exactly whole batches; they are
the batches the writer reported committed, plus possibly the operation in
flight (its commit may have landed just before the kill), and nothing else;
every vector decodes to exactly what its batch encodes to. The next
iteration's writer opens the same store (recovering it where needed).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minifloat_store as mfs
from minifloat_store.store import EmbeddingStore, StoreChangedError

HERE = str(Path(__file__).parent)
sys.path.insert(0, HERE)
import store_crash_writer as W  # noqa: E402

# Kills per backend (HDF5 transactions are cheaper, so it gets more for the same time).
ITERATIONS = {"zarr": 20, "hdf5": 40}
FMT = "e4m3"


@pytest.fixture(scope="module")
def ctx():
    # A forkserver that has already imported numpy/zarr/h5py and loaded the
    # numba kernels makes each writer start in milliseconds instead of seconds.
    c = multiprocessing.get_context("forkserver")
    c.set_forkserver_preload(["store_crash_writer"])
    # Python 3.11's forkserver imports its preload before applying our sys.path:
    # hand it the tests directory through the environment it inherits.
    # GNU OpenMP (numba's default threading layer here) cannot be used before a
    # fork; the workqueue layer can.
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")])),
        "NUMBA_THREADING_LAYER": "workqueue",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        warm = c.Process(target=W.batch_size, args=(1,))  # starts the server, waits for its preload
        warm.start()
        warm.join()
    finally:
        for k, v in old.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    return c


def wait_for_line(path: Path, prefix: str, count: int, timeout: float) -> None:
    """Poll the writer's log until ``count`` lines start with ``prefix`` (or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and sum(line.startswith(prefix) for line in path.read_text().splitlines()) >= count:
            return
        time.sleep(0.0005)


def apply(live: set[int], op: str, k: int) -> set[int]:
    if op == "add":
        return live | {k}
    if op == "delete":
        return live - {k}
    return set(live)  # compact changes no id


def stored_batches(store: EmbeddingStore) -> set[int]:
    ids = store.ids
    batches = {int(i.split("-")[0][1:]) for i in ids}
    expected = [i for k in sorted(batches) for i in W.batch_ids(k)]
    assert sorted(ids) == sorted(expected), "a batch is stored only in part"
    assert len(ids) == len(set(ids))
    return batches


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_killed_writer_leaves_committed_batches(tmp_path, ctx, backend):
    path = str(tmp_path / ("crash.zarr" if backend == "zarr" else "crash.h5"))
    EmbeddingStore.create(path, dim=W.DIM, fmt=FMT, backend=backend, chunk_rows=16).close()
    rnd = random.Random(1234)
    live: set[int] = set()
    seen_ops: set[str] = set()
    killed_during: list[str] = []
    for it in range(ITERATIONS[backend]):
        log_path = tmp_path / f"log{it}.txt"
        proc = ctx.Process(target=W.run, args=(path, str(log_path), 1000 * (it + 1), it))
        proc.start()
        target = ("add", "delete", "compact", None)[it % 4]
        if target is None:
            # Early: while the writer opens the store (for HDF5 after a kill,
            # while it copies the committed state into a fresh file).
            proc.join(timeout=rnd.uniform(0.0, 0.05))
        else:
            # Inside a chosen kind of operation: wait for its n-th start, then a
            # random fraction of its typical duration.
            wait_for_line(log_path, f"begin {target}", rnd.randint(1, 3), timeout=5.0)
            time.sleep(rnd.uniform(0, 0.004 if target == "delete" else 0.03))
        proc.kill()
        proc.join()
        assert proc.exitcode is not None and proc.exitcode < 0, "the writer died by itself"

        lines = log_path.read_text().splitlines() if log_path.exists() else []
        in_flight = None
        for line in lines:
            parts = line.split()
            if parts[0] == "begin":
                in_flight = (parts[1], int(parts[2]))
            elif parts[0] == "done":
                assert in_flight == (parts[1], int(parts[2]))
                live = apply(live, *in_flight)
                seen_ops.add(parts[1])
                in_flight = None

        killed_during.append(in_flight[0] if in_flight else "open")
        with EmbeddingStore.open(path, "r") as store:
            got = stored_batches(store)
            if got != live:
                assert in_flight is not None and got == apply(live, *in_flight), (
                    f"iteration {it}: stored batches {sorted(got)} are neither the committed "
                    f"{sorted(live)} nor that plus the in-flight {in_flight}"
                )
                live = got
            batches = sorted(got)
            if batches:
                np.testing.assert_array_equal(
                    store.get([i for k in batches for i in W.batch_ids(k)]),
                    mfs.quantize(np.concatenate([W.batch_vectors(k) for k in batches]), FMT),
                    err_msg=f"iteration {it}: stored vectors differ from their batches",
                )
    assert {"add", "delete", "compact"} <= seen_ops, f"only {seen_ops} were exercised"
    assert {"open", "add", "delete", "compact"} <= set(killed_during), f"kills landed only during {killed_during}"
    # After all the kills, a writer still opens the store and works.
    with EmbeddingStore.open(path, "a") as store:
        store.add(W.batch_ids(1), W.batch_vectors(1))
        assert stored_batches(store) == live | {1}


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_readers_see_whole_batches_while_a_writer_works(tmp_path, ctx, backend):
    """Readers in another process open, read and check the store while the writer adds, deletes and compacts."""
    path = str(tmp_path / ("live.zarr" if backend == "zarr" else "live.h5"))
    EmbeddingStore.create(path, dim=W.DIM, fmt=FMT, backend=backend, chunk_rows=16).close()
    log = tmp_path / "log.txt"
    proc = ctx.Process(target=W.run, args=(path, str(log), 1000, 3))
    proc.start()
    reads = changed = 0
    states: list[tuple[int, ...]] = []  # the committed batches each successful read saw

    def commits() -> int:
        return log.read_text().count("\ndone ") if log.exists() else 0

    try:
        # Read until the writer has committed at least 6 transactions since reading began (and
        # readers saw 3 different states), so the reads really overlapped commits; 60 s at most.
        deadline = time.monotonic() + 60
        first = None
        while time.monotonic() < deadline:
            assert proc.is_alive(), "the writer died: the readers would have read a store at rest"
            try:
                with EmbeddingStore.open(path, "r") as store:
                    batches = sorted(stored_batches(store))
                    if batches:
                        np.testing.assert_array_equal(
                            store.get([i for k in batches for i in W.batch_ids(k)]),
                            mfs.quantize(np.concatenate([W.batch_vectors(k) for k in batches]), FMT),
                        )
                reads += 1
                states.append(tuple(batches))
            except StoreChangedError:
                changed += 1  # a compaction removed what this reader had opened: the documented outcome
            first = commits() if first is None else first
            if reads >= 5 and commits() - first >= 6 and len(set(states)) >= 3:
                break
    finally:
        proc.kill()
        proc.join()
    assert reads >= 5
    assert commits() - first >= 6, f"only {commits() - first} transactions were committed while readers read"
    assert len(set(states)) >= 3, f"readers saw only {len(set(states))} different committed states"
