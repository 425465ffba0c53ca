"""A store's bytes on disk against its payload, at 1M vectors with VoxCeleb-style ids (issue 10).

Same process, same vectors (Gaussian float32 of each ``--dims`` width, by
default 192, CAM++'s and ReDimNet's, and 256, Resemblyzer's; the narrower the
vector, the more its id weighs) and the same ids for every case: ``id<speaker>/<11-character
video id>/<5-digit utterance>.wav``, e.g. ``id10270/x6uYqmx31kE/00001.wav``,
29 bytes, ~7 utterances per video as in VoxCeleb. Each case adds ``--rows``
vectors in batches of 65,536 (one commit each, as ``convert`` does) to a new
store and reports, from the files:

* ``bytes_on_disk / payload``: every file of the store against
  ``storage_bytes(n, d, encoding)`` (codes, block and per-vector scales), the
  target of issue 10 being <= 1.05;
* the bytes per vector of the id arrays (``id_ends`` + ``id_blob``, compressed
  since layout version 2) against their raw size (8 + 29 bytes: what layout
  version 1 stored);
* the vector arrays (``codes``, ``scales``) against the payload, and the seconds the adds took.

Cases: e2m1/vector (a study format) and nf4/vector/centre+rotate (fitted on
the first batch), on zarr and HDF5.

    python benchmarks/bench_store_size.py [--rows 1000000] [--dims 192 256]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import save  # noqa: E402

from minifloat_store import Encoding, storage_bytes  # noqa: E402
from minifloat_store.store import EmbeddingStore  # noqa: E402

BATCH = 65536
ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def voxceleb_ids(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct ids shaped like VoxCeleb's: speakers of ~25 videos, videos of ~7 utterances."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    speaker = 0
    while len(out) < n:
        for _ in range(int(rng.integers(10, 40))):
            video = "".join(rng.choice(ALPHABET, 11))
            out.extend(f"id{10270 + speaker}/{video}/{u:05d}.wav" for u in range(1, int(rng.integers(2, 13))))
        speaker += 1
    return out[:n]


def batches(rows: int, dim: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    for lo in range(0, rows, BATCH):
        yield lo, rng.standard_normal((min(BATCH, rows - lo), dim), dtype=np.float32)


def run_case(path: str, backend: str, enc: Encoding, ids: list[str], rows: int, dim: int) -> dict:
    t0 = time.perf_counter()
    store = None
    for lo, x in batches(rows, dim):
        if store is None:
            if enc.centres:
                enc = enc.fit(x)
            store = EmbeddingStore.create(path, dim, enc, backend=backend)
        store.add(ids[lo : lo + len(x)], x)
    assert store is not None
    seconds = time.perf_counter() - t0
    with store:
        info = store.info()
        be = store._backend
        id_bytes = be.array_nbytes("id_ends") + be.array_nbytes("id_blob")
        vec_bytes = be.array_nbytes("codes") + be.array_nbytes("scales")
    payload = storage_bytes(rows, dim, enc)
    raw_ids = 8 * rows + sum(len(i.encode()) for i in ids[:rows])
    return {
        "backend": backend,
        "encoding": f"{enc.element}/{enc.scale}/{enc.transform}",
        "rows": rows,
        "dim": dim,
        "payload_bytes": payload,
        "bytes_on_disk": info.bytes_on_disk,
        "ratio": info.bytes_on_disk / payload,
        "id_bytes_per_vector": id_bytes / rows,
        "raw_id_bytes_per_vector": raw_ids / rows,
        "vector_arrays_over_payload": vec_bytes / payload,
        "other_bytes_per_vector": (info.bytes_on_disk - id_bytes - vec_bytes) / rows,
        "add_seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, nargs="+", default=[192, 256])
    ap.add_argument("--dir", default=None, help="where to write the stores (default: a temporary directory)")
    args = ap.parse_args()
    ids = voxceleb_ids(args.rows)
    encodings = [Encoding("e2m1", "vector"), Encoding("nf4", "vector", "centre+rotate", seed=0)]
    results = []
    print(f"{args.rows:,} vectors of {args.dims} values, VoxCeleb-style ids (e.g. {ids[0]})")
    print(f"{'dim':>4} {'backend':8} {'encoding':26} {'payload MB':>11} {'on disk MB':>11} {'ratio':>7} "
          f"{'id B/vec':>9} {'(raw)':>6} {'vec arrays':>10} {'add s':>6}")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for dim in args.dims:
            for enc in encodings:
                for backend in ("zarr", "hdf5"):
                    path = str(Path(tmp) / f"s.{'zarr' if backend == 'zarr' else 'h5'}")
                    r = run_case(path, backend, enc, ids, args.rows, dim)
                    results.append(r)
                    mb = f"{r['payload_bytes'] / 1e6:11.2f} {r['bytes_on_disk'] / 1e6:11.2f}"
                    print(f"{dim:4} {backend:8} {r['encoding']:26} {mb} "
                          f"{r['ratio']:7.4f} {r['id_bytes_per_vector']:9.2f} {r['raw_id_bytes_per_vector']:6.1f} "
                          f"{r['vector_arrays_over_payload']:10.4f} {r['add_seconds']:6.1f}")  # fmt: skip
                    shutil.rmtree(path) if backend == "zarr" else Path(path).unlink()
                    Path(path + ".lock").unlink(missing_ok=True)
    print(
        "saved",
        save("bench_store_size", {"rows": args.rows, "dims": args.dims, "target_ratio": 1.05, "cases": results}),
    )


if __name__ == "__main__":
    main()
