"""``minifloat-store formats``: the table of storage formats."""

from __future__ import annotations

import argparse

from minifloat_store.codebooks import CODEBOOKS
from minifloat_store.codec import storage_bytes
from minifloat_store.encoding import ENCODING_SCALES, Encoding
from minifloat_store.formats import FORMATS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("formats", help="list the storage formats and their bytes per vector")
    p.add_argument("--dim", type=int, default=192, help="vector size for the bytes column (default 192)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dim < 1:
        raise ValueError(f"--dim must be >= 1, got {args.dim}")
    header = (
        f"{'format':<6} {'bits':>4} {'exp':>3} {'man':>3} {'bias':>4} {'max':>11} "
        f"{'min subnormal':>13} {'B/vector':>9} {'ratio':>6}  aliases"
    )
    print(header)
    fp32 = storage_bytes(1, args.dim, "fp32", "none")
    for f in FORMATS.values():
        nbytes = storage_bytes(1, args.dim, f, "vector")
        print(
            f"{f.name:<6} {f.bits:>4} {f.exponent_bits:>3} {f.mantissa_bits:>3} {f.bias:>4} "
            f"{f.max_value:>11.4g} {f.min_subnormal:>13.4g} {nbytes:>9} {fp32 / nbytes:>5.2f}x  {', '.join(f.aliases)}"
        )
    print(f"(B/vector: dim {args.dim}, packed codes plus one float32 scale for scale='vector')")
    print()
    _print_elements(args.dim)
    return 0


def _print_elements(dim: int) -> None:
    """Every element of mfs.Encoding with its stored bits per value under each scale."""
    scales = list(ENCODING_SCALES)
    print(f"{'element':<7} {'bits':>4} {'max level':>10}  " + " ".join(f"{s:>8}" for s in scales))
    for name, cb in CODEBOOKS.items():
        cells = []
        for s in scales:
            ok = not (s.startswith("block") and cb.bits > 8) and not (cb.bits == 32 and s != "none")
            cells.append(f"{Encoding(name, s).bits_per_value(dim):>8.3f}" if ok else f"{'-':>8}")
        print(f"{name:<7} {cb.bits:>4} {cb.max_level:>10.4g}  " + " ".join(cells))
    print(
        f"(mfs.Encoding elements and stored bits per value at dim {dim} for each scale; any transform "
        "(none, centre, rotate, centre+rotate) adds nothing per vector)"
    )
