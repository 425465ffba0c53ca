"""``minifloat-store info STORE``: what a store holds and what it costs on disk."""

from __future__ import annotations

import argparse
import json

from minifloat_store.store import EmbeddingStore


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe a store: format, counts, bytes on disk against the payload",
        description="Backend, format, scale mode, dim, live and deleted vectors, bytes on disk, "
        "bytes per vector, and the payload size from storage_bytes for comparison.",
    )
    p.add_argument("store", metavar="STORE", help="a store directory (zarr) or .h5 file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--check", action="store_true", help="also read every chunk and verify its checksum (reads the whole store)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with EmbeddingStore.open(args.store, "r") as store:
        info = store.info()
        checked = store.check() if args.check else None
    if args.json:
        out = info.as_dict()
        if checked is not None:
            out["checked_bytes"] = checked
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(info)
        if checked is not None:
            print(f"checksums: every chunk verified ({checked:,} bytes)")
    return 0
