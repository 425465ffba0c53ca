"""A seeded fuzzer: mutated stores of both backends are read exactly or refused with a StoreError.

Each hypothesis example is a batch of mutations of a small store (bit flips,
truncation, commit-record edits with a recomputed CRC32C, array metadata
edits, chunks swapped or duplicated, special files and links planted). Every
mutated copy is opened, read in full and checked in a subprocess
(tests/store_reader.py) under a timeout and an address-space limit, and the
outcome must be the original content bit for bit or a ``StoreError``: never a
crash, a hang, a MemoryError or any other exception, never different data.
Each copy is read twice by that subprocess, plainly and with ``check()`` first.
Derandomized, so CI runs the same cases every time.
"""

from __future__ import annotations

import json
import os
import shutil

import h5py
import pytest
from hostile import make_store, read_record, write_record
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from store_reader import CHECK_PREFIX, digest_of, run_many

from minifloat_store.encoding import Encoding
from minifloat_store.store import EmbeddingStore

BATCH = 12  # mutated stores read by one subprocess
#: Batches per backend (each copy read with and without check());
#: MINIFLOAT_FUZZ_EXAMPLES=200 (and MINIFLOAT_FUZZ_SEED) for a longer campaign.
EXAMPLES = int(os.environ.get("MINIFLOAT_FUZZ_EXAMPLES", "4"))
SEED = os.environ.get("MINIFLOAT_FUZZ_SEED")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.sampled_from([0, 1, -1, 2**31, 2**40, 2**62])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("record"), st.floats(0, 1, exclude_max=True), json_values),
    st.tuples(st.just("meta"), st.floats(0, 1, exclude_max=True), st.floats(0, 1, exclude_max=True), json_values),
    st.tuples(st.just("chunks"), st.sampled_from(["codes", "scales", "id_ends", "id_blob"]), st.booleans()),
    st.tuples(st.just("special"), st.floats(0, 1, exclude_max=True), st.sampled_from(["fifo", "zero", "out", "dir"])),
)


def _files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)


def _pick(seq: list, u: float):
    return seq[min(len(seq) - 1, int(u * len(seq)))]


def _leaves(doc: object, prefix: tuple = ()) -> list[tuple]:
    if isinstance(doc, dict) and doc:
        return [p for k, v in doc.items() for p in _leaves(v, (*prefix, k))] + [prefix]
    return [prefix]


def _set(doc: dict, path: tuple, value: object) -> None:
    for k in path[:-1]:
        doc = doc[k]
    doc[path[-1]] = value


def mutate(path: str, backend: str, m: tuple) -> None:
    kind = m[0]
    if kind == "flip":
        victim = _pick(_files(path), m[1])
        size = os.path.getsize(victim)
        if size:
            with open(victim, "r+b") as fh:
                fh.seek(int(m[2] * size))
                b = fh.read(1)[0]
                fh.seek(int(m[2] * size))
                fh.write(bytes([b ^ (1 << m[3])]))
    elif kind == "truncate":
        victim = _pick(_files(path), m[1])
        os.truncate(victim, int(m[2] * os.path.getsize(victim)))
    elif kind == "record":
        rec = read_record(path, backend)
        target = _pick([p for p in _leaves(rec) if p], m[1])
        _set(rec, target, m[2])
        write_record(path, backend, rec)
    elif kind == "meta" and backend == "zarr":
        metas = [f for f in _files(path) if f.endswith("zarr.json") and f != os.path.join(path, "zarr.json")]
        victim = _pick(metas, m[1])
        doc = json.load(open(victim))
        target = _pick([p for p in _leaves(doc) if p], m[2])
        _set(doc, target, m[3])
        json.dump(doc, open(victim, "w"))
    elif kind == "meta":  # HDF5: an attribute or a dataset's shape
        with h5py.File(path, "r+", locking=False) as f:
            names = []
            f.visit(names.append)
            ds = [n for n in names if isinstance(f[n], h5py.Dataset)]
            victim = f[_pick(ds, m[1])]
            if victim.maxshape[0] is None:
                victim.resize(int(m[2] * 4 * (victim.shape[0] + 16)), axis=0)
    elif kind == "chunks":
        _swap_chunks(path, backend, m[1], m[2])
    elif kind == "special" and backend == "zarr":
        victim = _pick(_files(path), m[1])
        os.remove(victim)
        if m[2] == "fifo":
            os.mkfifo(victim)
        elif m[2] == "zero":
            os.symlink("/dev/zero", victim)
        elif m[2] == "out":
            outside = path + ".outside"
            with open(outside, "wb") as fh:
                fh.write(b"\0" * 4096)
            os.symlink(outside, victim)
        else:
            os.mkdir(victim)


def _swap_chunks(path: str, backend: str, array: str, duplicate: bool) -> None:
    """Swap the first two chunks of ``array`` (or copy the first over the second), bytes and checksums intact."""
    if backend == "zarr":
        rec = read_record(path, backend)
        base = os.path.join(path, f"g{rec['generation']}", array, "c")
        keys = sorted(os.listdir(base), key=int)
        if len(keys) < 2:
            return
        a, b = (os.path.join(base, k, "0") if array == "codes" else os.path.join(base, k) for k in keys[:2])
        if duplicate:
            shutil.copy(a, b)
        else:
            tmp = a + ".swap"
            os.rename(a, tmp)
            os.rename(b, a)
            os.rename(tmp, b)
        return
    with h5py.File(path, "r", locking=False) as f:
        ds = f[f"{array}/sealed"]
        if ds.id.get_num_chunks() < 2:
            return
        c0, c1 = ds.id.get_chunk_info(0), ds.id.get_chunk_info(1)
    with open(path, "r+b") as fh:
        fh.seek(c0.byte_offset)
        b0 = fh.read(c0.size)
        fh.seek(c1.byte_offset)
        b1 = fh.read(c1.size)
        fh.seek(c1.byte_offset)
        fh.write(b0)
        if not duplicate:
            fh.seek(c0.byte_offset)
            fh.write(b1)


#: The stores mutated: a study format, and an encoding with a fitted mean, a rotation and block scales
#: (layout version 2 records them; every field of the record is a leaf the record mutation can hit).
KINDS = {"e4m3": "e4m3", "encoded": Encoding("int4", "block32", "centre+rotate", seed=5)}


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    out = {}
    for kind, fmt in KINDS.items():
        for backend in ("zarr", "hdf5"):
            d = tmp_path_factory.mktemp(f"gold-{backend}-{kind}")
            path = str(d / ("s.zarr" if backend == "zarr" else "s.h5"))
            make_store(path, backend, fmt)
            with EmbeddingStore.open(path) as s:
                out[backend, kind] = (path, digest_of(s))
    return out


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
@pytest.mark.parametrize("kind", ["e4m3", "encoded"])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=SEED is None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each case names its mutation already
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(mutation, min_size=BATCH, max_size=BATCH))
@seed(int(SEED or 0))
def test_mutated_store_is_read_exactly_or_refused(golden, tmp_path_factory, backend, kind, batch):
    gold, expected = golden[backend, kind]
    work = tmp_path_factory.mktemp("fuzz")
    paths = {}
    for i, m in enumerate(batch):
        path = str(work / (f"m{i}.zarr" if backend == "zarr" else f"m{i}.h5"))
        (shutil.copytree if backend == "zarr" else shutil.copy)(gold, path)
        try:
            mutate(path, backend, m)
        except (OSError, KeyError, ValueError, TypeError, IndexError):
            pass  # the mutation itself could not be applied to this copy (e.g. the record no longer parses)
        paths[path] = m
    # Every copy is read twice in one process: plainly, and with check() first (readers never write).
    outcomes = run_many(list(paths) + [CHECK_PREFIX + p for p in paths])
    for path, m in paths.items():
        for mode, key in (("read", path), ("check", CHECK_PREFIX + path)):
            out = outcomes[key]
            assert out.kind in ("ok", "store_error"), f"{mode} {m}: {out.kind}: {out.detail}"
            if out.kind == "ok":
                assert out.digest == expected, f"{mode} {m}: read without error but the content differs"
    shutil.rmtree(work, ignore_errors=True)
