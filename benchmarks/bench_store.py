"""EmbeddingStore: add throughput, on-disk size against the payload, and convert's peak memory.

Same process, same data (Gaussian float32, 192 dims):

1. *Add throughput*: 1,000,000 vectors added in batches of 65,536 (one commit,
   with fsync, per batch) in e2m1 and e4m3 on both backends, against writing
   the same float32 matrix, in the same batches, to a plain zarr array
   (uncompressed, 65,536-row chunks) and a plain h5py dataset (chunked the
   same way, resized per batch). Vectors/s, and the ratio store / plain for
   the same backend. Best of ``--repeats`` runs, each into a fresh store,
   after one warm-up run at 65,536 vectors.
2. *On-disk size*: after adding 100,000 (in batches of 10,000) and 1,000,000
   vectors, the bytes of the vector arrays (codes and scales: chunks, shard
   indexes, checksums, HDF5 tail slots) and of the whole store against
   ``storage_bytes`` (the payload). Target: vector arrays <= 1.02 x payload.
3. *Convert peak RSS*: a ``--convert-gb`` GB .npy (float32, 192 dims) converted
   to e4m3 in a child process, whose peak resident set (``VmHWM`` from
   /proc, not ``ru_maxrss``, which a forked child inherits) is reported. Target: < 512 MiB for 4 GB.
4. *Cost of the checks* (docs/store.md, "Stores from untrusted sources") on a
   store of ``--rows`` e4m3 vectors per backend: ``open`` and ``check()``
   timed whole, and the checks inside them timed alone on the same data
   (best of ``--repeats``): block digests of the id arrays against reading
   them unverified, the id blob's UTF-8 and offset checks, the duplicate-id
   check against a plain index build, the store's structure (zarr: the tree
   scan and shard sizes; HDF5: every dataset's links, layout and filters), and
   in ``check()`` the block digests of every array, the scale range and the
   NaN/inf code scan. ``--only-checks`` runs this part alone.

    python benchmarks/bench_store.py [--rows 1000000] [--repeats 2] [--convert-gb 4] [--only-checks]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

from minifloat_store.store import EmbeddingStore  # noqa: E402

DIM = 192
BATCH = 65536


def store_add(path: str, backend: str, fmt: str, x: np.ndarray, ids: list[str], batch: int) -> float:
    t0 = time.perf_counter()
    with EmbeddingStore.create(path, DIM, fmt, backend=backend) as s:
        for lo in range(0, len(x), batch):
            s.add(ids[lo : lo + batch], x[lo : lo + batch])
    return time.perf_counter() - t0


def plain_zarr(path: str, x: np.ndarray, batch: int) -> float:
    import zarr

    t0 = time.perf_counter()
    a = zarr.create_array(path, shape=(0, DIM), dtype="float32", chunks=(BATCH, DIM), compressors=None)
    for lo in range(0, len(x), batch):
        hi = min(len(x), lo + batch)
        a.resize((hi, DIM))
        a[lo:hi] = x[lo:hi]
    return time.perf_counter() - t0


def plain_h5py(path: str, x: np.ndarray, batch: int) -> float:
    import h5py

    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", shape=(0, DIM), maxshape=(None, DIM), chunks=(BATCH, DIM), dtype="float32")
        for lo in range(0, len(x), batch):
            hi = min(len(x), lo + batch)
            d.resize((hi, DIM))
            d[lo:hi] = x[lo:hi]
    return time.perf_counter() - t0


def fresh(work: str, name: str) -> str:
    p = os.path.join(work, name)
    if os.path.isdir(p):
        shutil.rmtree(p)
    for q in (p, p + ".lock"):
        if os.path.isfile(q):
            os.remove(q)
    return p


def best(fn, repeats: int) -> float:
    return min(fn() for _ in range(repeats))


def sizes(path: str) -> dict[str, float]:
    with EmbeddingStore.open(path) as s:
        info = s.info()
    payload = info.payload_bytes
    return {
        "vectors": info.count,
        "payload_bytes": payload,
        "vector_arrays_bytes": info.vector_bytes_on_disk,
        "store_bytes": info.bytes_on_disk,
        "vector_arrays_over_payload": info.vector_bytes_on_disk / payload,
        "store_over_payload": info.bytes_on_disk / payload,
        "store_bytes_per_vector": info.bytes_on_disk / info.count,
        "payload_bytes_per_vector": payload / info.count,
    }


# Peak RSS is the child's VmHWM: the high-water mark of its own address space.
# (ru_maxrss would not do: a forked child starts from the parent's high-water mark.)
CHILD = """
import sys, json, time
from minifloat_store.store.convert import convert
t = time.perf_counter()
s = convert(sys.argv[1], sys.argv[2], "e4m3", progress=False)
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"peak_rss_bytes": hwm * 1024,
                  "seconds": time.perf_counter() - t, "vectors": s.vectors, "bytes_before": s.bytes_before,
                  "bytes_after": s.bytes_after, "cosine_mean": s.cosine_mean, "cosine_min": s.cosine_min}))
"""


def convert_rss(work: str, gb: float) -> dict[str, float]:
    rows = int(gb * 2**30) // (4 * DIM)
    src = os.path.join(work, "big.npy")
    out = np.lib.format.open_memmap(src, mode="w+", dtype=np.float32, shape=(rows, DIM))
    rng = np.random.default_rng(1)
    for lo in range(0, rows, 262144):
        hi = min(rows, lo + 262144)
        out[lo:hi] = rng.standard_normal((hi - lo, DIM), dtype=np.float32)
    out.flush()
    del out
    dst = fresh(work, "big.zarr")
    # A fresh interpreter: its peak RSS is the conversion's, not this process's.
    res = subprocess.run([sys.executable, "-c", CHILD, src, dst], capture_output=True, text=True, check=True)
    import json

    r = json.loads(res.stdout.strip().splitlines()[-1])
    r["npy_bytes"] = os.path.getsize(src)
    r["peak_rss_mib"] = r["peak_rss_bytes"] / 2**20
    os.remove(src)
    shutil.rmtree(dst)
    return r


def _time(fn, repeats: int) -> float:
    """Best of ``repeats`` timed calls, after one untimed call (numba compiles on first use)."""
    fn()
    best_s = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best_s = min(best_s, time.perf_counter() - t0)
    return best_s


def _index_build(blob: np.ndarray, ends: np.ndarray, unique: bool) -> None:
    """The id index's hash-table build over every row: plain, or stopping at a repeated id (what open does)."""
    from minifloat_store.store import ids as idmod

    rows = np.arange(len(ends), dtype=np.int64)
    cap = 16
    while cap * idmod._MAX_LOAD < len(rows) * 1.5:
        cap *= 2
    table = np.full(cap, idmod._EMPTY, dtype=np.int32)
    (idmod._insert_unique if unique else idmod._insert)(table, blob, ends, rows)


def _checks_one(work: str, backend: str, rows: int, repeats: int, x: np.ndarray, ids: list[str]) -> dict[str, float]:
    from minifloat_store.store import hdf5_backend as hb
    from minifloat_store.store import hdf5_guard, integrity
    from minifloat_store.store import zarr_backend as zb
    from minifloat_store.store.digests import VerifiedReads
    from minifloat_store.store.record import ARRAYS

    path = fresh(work, f"checks_{backend}")
    store_add(path, backend, "e4m3", x[:rows], ids[:rows], BATCH)
    r: dict[str, float] = {"open_s": _time(lambda: EmbeddingStore.open(path).close(), repeats)}
    with EmbeddingStore.open(path) as s:
        r["check_s"] = _time(s.check, repeats)
        be, reads = s._backend, s._reads
        lengths = dict(be.record["lengths"])
        raw = VerifiedReads(be, None)
        for what, rd in (("unverified", raw), ("verified", reads)):
            r[f"open_id_arrays_{what}_s"] = _time(
                lambda rd=rd: [rd.read(a, 0, lengths[a]) for a in ("id_ends", "id_blob", "deleted")], repeats
            )
            r[f"check_read_all_{what}_s"] = _time(lambda rd=rd: [rd.read(a, 0, lengths[a]) for a in ARRAYS], repeats)
        ends, blob = be.read("id_ends", 0, lengths["id_ends"]), be.read("id_blob", 0, lengths["id_blob"])
        r["open_id_blob_check_s"] = _time(lambda: integrity.check_id_blob(blob, ends, "bench"), repeats)
        r["open_index_plain_s"] = _time(lambda: _index_build(blob, ends, False), repeats)
        r["open_index_unique_s"] = _time(lambda: _index_build(blob, ends, True), repeats)
        if backend == "zarr":
            r["open_structure_s"] = _time(lambda: (zb.scan_tree(Path(path)), be._check_shards()), repeats)
        else:
            gen = be._gen

            def structure() -> None:
                for a in ARRAYS:
                    tail = (gen.row_bytes,) if a == "codes" else ()
                    for d in ("sealed", "tail0", "tail1"):
                        hdf5_guard.checked_dataset(
                            gen.f, f"{a}/{d}", "bench", hb._DTYPE[a], tail, None, hb._filters(a, gen.version)
                        )

            r["open_structure_s"] = _time(structure, repeats)
        codes, scales = be.read("codes", 0, lengths["codes"]), be.read("scales", 0, lengths["scales"])
        rows_all = np.arange(len(scales))
        fmt, scale = s.fmt, s.scale
        r["check_scale_range_s"] = _time(lambda: integrity.check_scales(scales, rows_all, fmt, scale, "b"), repeats)
        r["check_code_scan_s"] = _time(lambda: integrity.check_codes(codes, rows_all, fmt, "bench"), repeats)
    fresh(work, f"checks_{backend}")
    r["open_digests_s"] = r["open_id_arrays_verified_s"] - r["open_id_arrays_unverified_s"]
    r["open_unique_ids_s"] = r["open_index_unique_s"] - r["open_index_plain_s"]
    r["open_checks_s"] = (
        r["open_digests_s"] + r["open_id_blob_check_s"] + r["open_unique_ids_s"] + r["open_structure_s"]
    )
    r["check_digests_s"] = r["check_read_all_verified_s"] - r["check_read_all_unverified_s"]
    r["check_checks_s"] = r["check_digests_s"] + r["check_scale_range_s"] + r["check_code_scan_s"]
    return r


def checks_cost(work: str, rows: int, repeats: int, x: np.ndarray, ids: list[str]) -> dict[str, dict[str, float]]:
    """Seconds of open/check() and of each check inside them, per backend (see the module docstring, 4)."""
    out: dict[str, dict[str, float]] = {}
    for backend in ("zarr", "hdf5"):
        r = out[backend] = _checks_one(work, backend, rows, repeats, x, ids)
        print(
            f"checks {backend} ({rows:,} e4m3 vectors): open {r['open_s'] * 1e3:.0f} ms, of which checks "
            f"{r['open_checks_s'] * 1e3:.0f} ms (block digests {r['open_digests_s'] * 1e3:.0f}, UTF-8/offsets "
            f"{r['open_id_blob_check_s'] * 1e3:.0f}, unique ids {r['open_unique_ids_s'] * 1e3:.0f}, structure "
            f"{r['open_structure_s'] * 1e3:.0f}); check() {r['check_s']:.2f} s, of which checks "
            f"{r['check_checks_s']:.2f} s (block digests {r['check_digests_s']:.2f}, scales "
            f"{r['check_scale_range_s']:.3f}, NaN/inf codes {r['check_code_scan_s']:.2f})",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--convert-gb", type=float, default=4.0)
    ap.add_argument("--workdir", default=None, help="where to write (default: a temporary directory)")
    ap.add_argument("--only-checks", action="store_true", help="run part 4 (the cost of the checks) alone")
    args = ap.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="bench_store_")
    os.makedirs(work, exist_ok=True)
    x = np.random.default_rng(0).standard_normal((args.rows, DIM), dtype=np.float32)
    ids = [f"spk{i // 50:06d}/utt{i % 50:02d}" for i in range(args.rows)]
    results: dict = {"rows": args.rows, "dim": DIM, "batch": BATCH, "repeats": args.repeats, "add": {}, "disk": {}}

    # Warm-up: numba kernels, zarr/h5py code paths.
    for backend in ("zarr", "hdf5"):
        store_add(fresh(work, "warm"), backend, "e4m3", x[:BATCH], ids[:BATCH], BATCH)
        with EmbeddingStore.open(os.path.join(work, "warm")) as s:
            s.check()
    fresh(work, "warm")
    if args.only_checks:
        results = {"rows": args.rows, "dim": DIM, "repeats": args.repeats}
        results["checks"] = checks_cost(work, args.rows, args.repeats, x, ids)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        print("saved", save("bench_store_checks", results))
        return

    for backend in ("zarr", "hdf5"):
        plain = plain_zarr if backend == "zarr" else plain_h5py
        t_plain = best(lambda plain=plain, x=x: plain(fresh(work, "plain"), x, BATCH), args.repeats)
        fresh(work, "plain")
        results["add"][f"plain_{backend}_float32"] = {"seconds": t_plain, "vectors_per_s": args.rows / t_plain}
        print(f"plain {backend} float32: {args.rows / t_plain:,.0f} vectors/s", flush=True)
        for fmt in ("e2m1", "e4m3"):
            path = os.path.join(work, f"s_{backend}_{fmt}")
            t = best(
                lambda b=backend, f=fmt, x=x: store_add(fresh(work, f"s_{b}_{f}"), b, f, x, ids, BATCH), args.repeats
            )
            rate = args.rows / t
            results["add"][f"store_{backend}_{fmt}"] = {
                "seconds": t,
                "vectors_per_s": rate,
                "ratio_to_plain_float32": rate / (args.rows / t_plain),
            }
            results["disk"][f"{backend}_{fmt}_{args.rows}"] = sizes(path)
            big = results["disk"][f"{backend}_{fmt}_{args.rows}"]
            print(
                f"store {backend} {fmt}: {rate:,.0f} vectors/s ({rate * t_plain / args.rows:.2f}x plain); "
                f"vector arrays {big['vector_arrays_over_payload']:.4f}x payload",
                flush=True,
            )
            fresh(work, f"s_{backend}_{fmt}")
            # 100k vectors added 10k at a time.
            small = fresh(work, f"small_{backend}_{fmt}")
            store_add(small, backend, fmt, x[:100_000], ids[:100_000], 10_000)
            results["disk"][f"{backend}_{fmt}_100000"] = sizes(small)
            small_sizes = results["disk"][f"{backend}_{fmt}_100000"]
            print(
                f"  100k: vector arrays {small_sizes['vector_arrays_over_payload']:.4f}x payload, "
                f"store {small_sizes['store_over_payload']:.4f}x",
                flush=True,
            )
            fresh(work, f"small_{backend}_{fmt}")

    results["checks"] = checks_cost(work, args.rows, args.repeats, x, ids)
    del x
    if args.convert_gb > 0:
        results["convert"] = convert_rss(work, args.convert_gb)
        print(
            f"convert {results['convert']['npy_bytes'] / 2**30:.2f} GiB .npy: peak RSS "
            f"{results['convert']['peak_rss_mib']:.0f} MiB in {results['convert']['seconds']:.0f} s",
            flush=True,
        )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    print("saved", save("bench_store", results))


if __name__ == "__main__":
    main()
