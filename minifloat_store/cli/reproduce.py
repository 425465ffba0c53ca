"""``minifloat-store reproduce``: the study's three models over the cleaned VoxCeleb-1 lists, beside its numbers."""

from __future__ import annotations

import argparse
import sys

from minifloat_store.eval.pipelines.extract import TooManyFailuresError
from minifloat_store.eval.pipelines.reproduce import ReproduceSetupError, reproduce


def _items(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise ValueError("the list is empty")
    return items


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce",
        help="run CAM++, ReDimNet and WavLM over the cleaned VoxCeleb-1 lists and compare with the study",
        description=(
            "Embed every utterance of the cleaned VoxCeleb-1 lists found in --voxceleb with each model "
            "(resumable), write the storage-vs-accuracy report per model and list, and comparison.md with "
            "our FAR/FRR at the study's thresholds beside the study's. Everything needed (directories, list "
            "MD5s, audio files, weights) is checked before any work; docs/reproduce.md says how to get it."
        ),
    )
    p.add_argument(
        "--voxceleb", required=True, help="VoxCeleb-1 directory: wav/idXXXXX/<video>/<NNNNN>.wav and the lists"
    )
    p.add_argument(
        "--weights-dir",
        default=None,
        help="checkpoints laid out as docs/models.md says (campplus/, redimnet/, wavlm/); "
        "the default places are searched after it",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--models", default="campplus,redimnet,wavlm", help="comma-separated (default all three)")
    p.add_argument(
        "--lists",
        default=None,
        help="comma-separated Vox1-O, Vox1-E, Vox1-H (their official files in --voxceleb) or NAME=FILE "
        "(default: every official list found)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="utterances per batch and commit (default 64)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-verify-weights", action="store_true", help="do not check published SHA-256 sums")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = reproduce(
            args.voxceleb,
            args.out,
            args.weights_dir,
            models=_items(args.models),
            lists=_items(args.lists),
            batch_size=args.batch_size,
            device=args.device,
            verify_weights=not args.no_verify_weights,
            figures=not args.no_figures,
            progress=not args.no_progress,
        )
    except ReproduceSetupError as exc:
        print(f"minifloat-store reproduce: {exc}", file=sys.stderr)
        return 2
    except TooManyFailuresError as exc:
        print(exc.summary.text(), file=sys.stderr)
        print(f"minifloat-store reproduce: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\nminifloat-store reproduce: interrupted; the embeddings stored so far are kept under "
            f"{args.out}/embeddings. Run the same command again to continue.",
            file=sys.stderr,
        )
        return 130
    print(f"done in {result.seconds / 60:.1f} min: {result.comparison}")
    return 0 if result.complete else 1
