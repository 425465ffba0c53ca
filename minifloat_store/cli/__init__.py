"""The ``minifloat-store`` command line: a thin layer over the Python API.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable
taking the parsed ``argparse.Namespace`` and returning an exit code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from minifloat_store.cli import bench, convert, demo, extract, formats, info, recommend, reproduce
from minifloat_store.store import StoreError

# Subcommand modules, in the order ``--help`` lists them.
_MODULES = (demo, bench, recommend, info, convert, formats, extract, reproduce)
COMMANDS: tuple[str, ...] = tuple(m.__name__.rpartition(".")[2] for m in _MODULES)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="minifloat-store",
        description="Store embeddings as packed minifloats and measure what it costs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in _MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (StoreError, ValueError, OSError, KeyError) as exc:
        # User errors (a bad file, a damaged store, a full disk): one clear line, no traceback.
        print(f"minifloat-store {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minifloat-store {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
