"""``minifloat-store convert SRC DST --format e2m1`` (or ``--encoding nf4/vector/centre+rotate``): float vectors
(or a store) into a new store."""

from __future__ import annotations

import argparse
import json
import re
from contextlib import ExitStack
from typing import Any

from minifloat_store.formats import FORMATS
from minifloat_store.store.convert import DEFAULT_FIT_ROWS, convert, parse_encoding


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
    p.add_argument("--format", dest="fmt", default=None, help=f"storage format ({', '.join(FORMATS)}); default e4m3")
    p.add_argument("--scale", choices=("vector", "none"), default=None, help="per-vector scaling (default) or none")
    p.add_argument(
        "--encoding",
        metavar="SPEC",
        default=None,
        help="instead of --format/--scale: element[/scale[/transform[/seed]]], e.g. nf4/vector/centre+rotate, "
        "int8/vector/rotate, e2m1/block32 (docs/format.md)",
    )
    p.add_argument(
        "--fit-rows",
        type=int,
        default=None,
        metavar="N",
        help=f"fit an encoding that centres on the first N vectors (default {DEFAULT_FIT_ROWS:,})",
    )
    p.add_argument("--fit-sample", metavar="FILE.npy", default=None, help="fit it on these vectors instead")
    p.add_argument("--backend", choices=("zarr", "hdf5"), default="zarr")
    p.add_argument("--ids", metavar="FILE", default=None, help="text file with one id per line, or a dataset spec")
    p.add_argument(
        "--batch-size", type=int, default=None, help="vectors per commit (default: a power of two, <= 24 MiB)"
    )
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        default=None,
        help="convert on a Dask cluster: a scheduler address (tcp://host:8786) or local[:N] for N local worker "
        "processes; SRC may then be a zarr array URL and DST an fsspec URL (s3://...)",
    )
    p.add_argument(
        "--storage-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="fsspec option for URLs, repeatable (endpoint_url=http://..., anon=true, client_kwargs.region_name=..."
        "); VALUE is read as JSON when it parses, else as a string. Needs --dask",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def parse_storage_options(items: list[str]) -> dict[str, Any]:
    """``["a=1", "client_kwargs.region_name=eu"]`` -> ``{"a": 1, "client_kwargs": {"region_name": "eu"}}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
            raise ValueError(f"--storage-option {item!r}: expected KEY=VALUE (KEY may be dotted: a.b=VALUE)")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--storage-option {item!r}: {part} is already a value")
        node[leaf] = value
    return out


def _client(spec: str, stack: ExitStack) -> Any:
    # distributed is an optional dependency (the "scale" extra): imported only with --dask.
    from distributed import Client, LocalCluster

    m = re.fullmatch(r"local(?::(\d+))?", spec)
    if m:
        n = int(m.group(1) or 2)
        if n < 1:
            raise ValueError(f"--dask {spec}: need at least one worker")
        cluster = stack.enter_context(LocalCluster(n_workers=n, threads_per_worker=1, processes=True))
        return stack.enter_context(Client(cluster))
    return stack.enter_context(Client(spec))


def run(args: argparse.Namespace) -> int:
    options = parse_storage_options(args.storage_option)
    if args.encoding is not None and (args.fmt is not None or args.scale is not None):
        raise ValueError("--encoding replaces --format and --scale; give one or the other")
    if args.encoding is None and (args.fit_rows is not None or args.fit_sample is not None):
        raise ValueError("--fit-rows/--fit-sample fit an --encoding that centres; give one")
    if args.dask is not None:
        args.fmt = args.fmt or "e4m3"
        args.scale = args.scale or "vector"
        if args.ids is not None or args.backend != "zarr" or args.batch_size is not None:
            raise ValueError(
                "--dask writes a zarr store (ids: the source store's or row numbers); drop --ids, "
                "--backend and --batch-size"
            )
        if args.fit_sample is not None:
            raise ValueError("--dask fits on the source's first rows (--fit-rows); drop --fit-sample")
        # dask is an optional dependency (the "scale" extra).
        from minifloat_store import dask as mfs_dask

        with ExitStack() as stack:
            client = _client(args.dask, stack)
            summary = mfs_dask.convert(
                args.src,
                args.dst,
                fmt=args.fmt,
                scale=args.scale,
                encoding=parse_encoding(args.encoding) if args.encoding is not None else None,
                client=client,
                storage_options=options or None,
                fit_rows=args.fit_rows,
            )
        print(json.dumps(summary.as_dict(), indent=2, sort_keys=True) if args.json else summary)
        return 0
    if options:
        raise ValueError("--storage-option needs --dask (the single-process convert reads and writes local paths)")
    summary = convert(
        args.src,
        args.dst,
        fmt=parse_encoding(args.encoding) if args.encoding is not None else (args.fmt or "e4m3"),
        scale=args.scale,
        backend=args.backend,
        ids=args.ids,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        fit_rows=args.fit_rows,
        fit_sample=args.fit_sample,
    )
    print(json.dumps(summary.as_dict(), indent=2, sort_keys=True) if args.json else summary)
    return 0
