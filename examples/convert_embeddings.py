"""Convert an existing float32 embedding file into a packed minifloat store.

What it shows: moving a database you already have (a ``.npy`` matrix, or an HDF5
dataset) into a store of 4-, 6- or 8-bit minifloats with ``minifloat_store.convert``.
The conversion streams: memory stays bounded by one batch however large the file.
It prints the size before and after, their ratio, and how close the stored vectors
are to the originals (cosine), then reopens the store and checks that every id made
it across.

Run it on your own file::

    python examples/convert_embeddings.py embeddings.npy voices.zarr --ids ids.txt --format e2m1
    python examples/convert_embeddings.py embeddings.h5:/embeddings voices.h5 --format e4m3

(``ids.txt``: one id per line, row order. For HDF5, a dataset named ``ids`` beside
the vectors is used when ``--ids`` is not given; without any ids the rows are
numbered "0", "1", ....) Or let it write a synthetic source first::

    python examples/convert_embeddings.py demo.npy demo.zarr --demo
    python examples/convert_embeddings.py demo.h5:/embeddings demo-store.h5 --demo

A destination ending in ``.h5`` is an HDF5 store, anything else a zarr directory;
it must not exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np

from minifloat_store import EmbeddingStore, convert


def write_demo_source(src: str, n: int = 2000, dim: int = 192, seed: int = 0) -> tuple[str | None, list[str]]:
    """Write synthetic float32 embeddings to ``src`` (``x.npy`` or ``x.h5:/dataset``).

    Returns the ids file to pass to ``convert`` (None for HDF5, whose ids go in a
    sibling dataset named ``ids``) and the ids, in row order.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    ids = [f"spk{i // 10:04d}/utt{i % 10:02d}" for i in range(n)]
    path, _, dataset = src.partition(":")
    if dataset:
        with h5py.File(path, "w") as f:
            f.create_dataset(dataset, data=x)
            parent = dataset.rsplit("/", 1)[0] or "/"
            f[parent].create_dataset("ids", data=ids, dtype=h5py.string_dtype())
        return None, ids
    np.save(path, x)
    ids_file = f"{path}.ids.txt"
    Path(ids_file).write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return ids_file, ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="float32 source: vectors.npy, or file.h5:/dataset")
    ap.add_argument("dst", help="store to create: a directory (zarr) or a .h5 file (HDF5)")
    ap.add_argument("--ids", help="text file with one id per line (default: see above)")
    ap.add_argument("--format", default="e4m3", help="storage format: e2m1, e3m2, e2m3, e4m3, e5m2, fp16... (e4m3)")
    ap.add_argument("--scale", default="vector", choices=["vector", "none"], help="per-vector scale (default)")
    ap.add_argument("--demo", action="store_true", help="first write synthetic float32 embeddings to SRC")
    args = ap.parse_args(argv)

    ids_file = args.ids
    expected: list[str] | None = None
    if ids_file is not None:
        expected = [line.strip() for line in Path(ids_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.demo:
        ids_file, expected = write_demo_source(args.src)
        print(f"wrote a synthetic source: {args.src}")
    backend = "hdf5" if args.dst.endswith((".h5", ".hdf5")) else "zarr"

    summary = convert(args.src, args.dst, fmt=args.format, scale=args.scale, backend=backend, ids=ids_file)
    print(
        f"converted {summary.vectors:,} vectors of {summary.dim} values to {summary.format} "
        f"(scale={summary.scale}, {summary.backend})"
    )
    print(f"bytes before: {summary.bytes_before:,}   bytes after: {summary.bytes_after:,} (all files of the store)")
    print(f"size ratio: {summary.ratio:.2f}x smaller")
    print(f"cosine to the originals: mean {summary.cosine_mean:.5f}, worst {summary.cosine_min:.5f}")

    with EmbeddingStore.open(args.dst, mode="r") as store:
        stored = store.ids
    if expected is not None and stored != expected:
        print("error: the store's ids differ from the source's", file=sys.stderr)
        return 1
    print(f"reopened {args.dst}: {len(stored):,} ids, first {stored[0]!r}, last {stored[-1]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
