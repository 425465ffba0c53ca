"""``minifloat-store extract``: embed the utterances of a trial list (or id list) into a float32 store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from minifloat_store.eval.models import MODELS
from minifloat_store.eval.pipelines.extract import TooManyFailuresError, extract, read_utterance_list
from minifloat_store.eval.trials import read_trials
from minifloat_store.store import StoreLockedError

_MODEL_NAMES = tuple(sorted(MODELS))


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["model_name=b5", "max_batch=8"]`` -> ``{"model_name": "b5", "max_batch": 8}``.

    Values are read as JSON when they parse (numbers, true/false), else kept as strings.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extract",
        help="embed every utterance of a trial list into a float32 store (resumable)",
        description=(
            "Read each utterance's audio under --audio-root (ids are paths relative to it, as in the "
            "trial list), embed it with a speaker model and append it to a float32 store, committing "
            "every batch. Rerunning the same command after a crash or Ctrl-C skips what is stored. "
            "Files at another sample rate are resampled; files that cannot be decoded are skipped, "
            "listed at the end, and make the exit status 1."
        ),
    )
    p.add_argument("--model", required=True, choices=_MODEL_NAMES, help="speaker model")
    p.add_argument(
        "--weights",
        default=None,
        help="weight file (WavLM: checkpoint directory); default: the places docs/models.md lists",
    )
    p.add_argument("--audio-root", required=True, help="directory the utterance ids are relative to (VoxCeleb-1: wav/)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--trials", help="trial list (VoxCeleb '1 enroll test' or Kaldi): embed every utterance it uses")
    src.add_argument("--list", help="plain list of relative audio paths, one per line")
    p.add_argument("--out", required=True, help="the float32 store to create or resume")
    p.add_argument("--batch-size", type=int, default=64, help="utterances per batch and commit (default 64)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="model loader option, repeatable (e.g. model_name=b5 for ReDimNet)",
    )
    p.add_argument(
        "--no-verify-weights",
        action="store_true",
        help="do not check the weight file's published SHA-256 (for a fine-tuned or re-released file)",
    )
    p.add_argument("--backend", choices=("zarr", "hdf5"), default="zarr", help="store backend when creating")
    p.add_argument(
        "--max-failures",
        type=int,
        default=100,
        help="stop when more files than this cannot be decoded/embedded (default 100; 0 stops at the first)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.trials:
        utterances = read_trials(args.trials)
        list_path = None
    else:
        utterances = read_utterance_list(args.list)
        list_path = args.list
    try:
        summary = extract(
            args.model,
            args.audio_root,
            utterances,
            args.out,
            batch_size=args.batch_size,
            weights=args.weights,
            device=args.device,
            verify_weights=not args.no_verify_weights,
            model_options=parse_options(args.option),
            list_path=list_path,
            backend=args.backend,
            max_failures=args.max_failures,
            progress=not args.no_progress,
        )
    except TooManyFailuresError as exc:
        print(exc.summary.text(), file=sys.stderr)
        print(f"minifloat-store extract: error: {exc}", file=sys.stderr)
        return 1
    except StoreLockedError as exc:
        print(f"minifloat-store extract: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\nminifloat-store extract: interrupted; every committed batch is kept in {args.out}. "
            "Run the same command again to continue.",
            file=sys.stderr,
        )
        return 130
    print(summary.text())
    return 0 if summary.complete else 1
