"""``minifloat-store convert SRC DST --format e2m1``: float vectors (or a store) into a new store."""

from __future__ import annotations

import argparse
import json

from minifloat_store.formats import FORMATS
from minifloat_store.store.convert import convert


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="stream vectors from .npy/.npz/HDF5/zarr or another store into a new store",
        description="SRC: vectors.npy, bundle.npz[:KEY], file.h5:/dataset, an array.zarr[:/path] or a "
        "minifloat store (re-encoded). Ids: --ids FILE (one per line) or a dataset spec; by default a "
        "sibling 'ids' dataset, the source store's ids, or row numbers. Ends with a summary: vectors, "
        "bytes before/after, ratio and the mean/min cosine between original and decoded vectors.",
    )
    p.add_argument("src", metavar="SRC")
    p.add_argument("dst", metavar="DST", help="the store to create (must not exist)")
    p.add_argument("--format", dest="fmt", default="e4m3", help=f"storage format ({', '.join(FORMATS)}); default e4m3")
    p.add_argument("--scale", choices=("vector", "none"), default="vector", help="per-vector scaling (default) or none")
    p.add_argument("--backend", choices=("zarr", "hdf5"), default="zarr")
    p.add_argument("--ids", metavar="FILE", default=None, help="text file with one id per line, or a dataset spec")
    p.add_argument(
        "--batch-size", type=int, default=None, help="vectors per commit (default: a power of two, <= 24 MiB)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = convert(
        args.src,
        args.dst,
        fmt=args.fmt,
        scale=args.scale,
        backend=args.backend,
        ids=args.ids,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(json.dumps(summary.as_dict(), indent=2, sort_keys=True) if args.json else summary)
    return 0
