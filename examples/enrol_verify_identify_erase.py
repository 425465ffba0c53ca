"""Enrol, verify, identify and erase speakers with an EmbeddingStore.

What it shows: the life of a voice-biometric database kept as packed minifloats.

1. create a store and enrol one embedding per speaker (one batch, one commit);
2. verify a claim: the cosine between a probe and the claimed speaker's stored
   vector, accepted when ``score >= threshold``;
3. identify: the top-k stored speakers for the probe, scored on the packed codes;
4. erase a person (a deletion request): ``delete`` hides the vector at once,
   ``compact`` rewrites the arrays so that its bytes are gone from disk;
5. reopen the store read-only and check that the person is gone.

Run it on your own embeddings (float32 ``.npy`` of shape (n, dim), one speaker id
per line in a text file, a probe ``.npy`` of shape (dim,))::

    python examples/enrol_verify_identify_erase.py voices.zarr \\
        --enrol enrol.npy --ids speakers.txt --probe probe.npy --claim spk0042 --threshold 0.5

or on synthetic speakers made on the spot::

    python examples/enrol_verify_identify_erase.py voices.zarr --demo

The store path must not exist (``.h5`` selects the HDF5 backend). Choose the
threshold for your model: it is the cosine at which you accept a claim
(``accuracy_report.py`` prints the EER threshold of every format).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from minifloat_store import EmbeddingStore


def demo_speakers(n_speakers: int = 50, dim: int = 192, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray, str]:
    """Synthetic enrolment vectors, their speaker ids, a probe and the probe's true speaker.

    Each speaker is a random direction; an utterance is that direction plus noise
    (cosine about 0.8 between two utterances of one speaker, about 0 across speakers).
    """
    rng = np.random.default_rng(seed)
    voices = rng.standard_normal((n_speakers, dim)).astype(np.float32)
    enrol = voices + 0.5 * rng.standard_normal((n_speakers, dim)).astype(np.float32)
    ids = [f"spk{i:04d}" for i in range(n_speakers)]
    who = 7
    probe = voices[who] + 0.5 * rng.standard_normal(dim).astype(np.float32)
    return enrol, ids, probe, ids[who]


def read_ids(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", type=Path, help="store to create (a directory for zarr, a .h5 file for HDF5)")
    ap.add_argument("--demo", action="store_true", help="use synthetic speakers instead of files")
    ap.add_argument("--enrol", type=Path, help="float32 .npy of shape (n, dim): one enrolment vector per speaker")
    ap.add_argument("--ids", type=Path, help="text file: the speaker id of each enrolment row, one per line")
    ap.add_argument("--probe", type=Path, help="float32 .npy of shape (dim,): the voice making the claim")
    ap.add_argument("--claim", help="the speaker id the probe claims to be (demo: the true speaker)")
    ap.add_argument("--impostor-claim", help="a second, false claim to verify (demo: another speaker)")
    ap.add_argument("--erase", help="speaker id to erase (default: the claimed speaker)")
    ap.add_argument("--threshold", type=float, default=0.5, help="accept a claim when cosine >= this (default 0.5)")
    ap.add_argument("--format", default="e4m3", help="storage format: e2m1, e3m2, e2m3, e4m3, e5m2, fp16... (e4m3)")
    ap.add_argument("--top-k", type=int, default=5, help="candidates to list when identifying (default 5)")
    args = ap.parse_args(argv)

    if args.demo:
        enrol, ids, probe, truth = demo_speakers()
        claim = args.claim or truth
        impostor = args.impostor_claim or next(i for i in ids if i != claim)
    else:
        if args.enrol is None or args.ids is None or args.probe is None or args.claim is None:
            ap.error("give --demo, or all of --enrol, --ids, --probe and --claim")
        enrol = np.load(args.enrol, allow_pickle=False)  # never unpickle a file from elsewhere
        ids = read_ids(args.ids)
        probe = np.load(args.probe, allow_pickle=False).reshape(-1)
        claim, impostor = args.claim, args.impostor_claim
    erase = args.erase or claim
    backend = "hdf5" if args.store.suffix in (".h5", ".hdf5") else "zarr"

    # 1. Enrol: the whole batch is validated (shape, NaN, duplicate ids) before anything is written.
    with EmbeddingStore.create(args.store, dim=enrol.shape[1], fmt=args.format, backend=backend) as store:
        store.add(ids, enrol)
        info = store.info()
        print(
            f"enrolled {len(store)} speakers as {store.encoding.element} ({backend}): "
            f"{info.bytes_on_disk:,} bytes on disk"
        )

    with EmbeddingStore.open(args.store, mode="a") as store:
        # 2. Verify: one cosine against the claimed speaker's stored vector.
        for who in [claim] + ([impostor] if impostor else []):
            score = store.verify(probe, who)
            decision = "ACCEPT" if score >= args.threshold else "REJECT"
            print(f"verify claim={who} score={score:.4f} threshold={args.threshold} -> {decision}")

        # 3. Identify: the best-scoring enrolled speakers, on the packed codes.
        top_ids, top_scores = store.search(probe, k=args.top_k)
        ranked = ", ".join(f"{i} {s:.3f}" for i, s in zip(top_ids[0], top_scores[0], strict=True))
        print(f"identify top-{args.top_k}: {ranked}")

        # 4. Erase: delete hides the vector from every read at once; compact removes its bytes.
        store.delete([erase])
        dropped = store.compact()
        print(f"erased {erase}: compact dropped {dropped} row(s)")

    # 5. Reopen read-only: the person is gone, everyone else is still there.
    with EmbeddingStore.open(args.store, mode="r") as store:
        remaining = store.ids
        print(f"reopened: {len(remaining)} speakers, {erase} present: {erase in remaining}")
        if erase in remaining or len(remaining) != len(ids) - 1:
            print("error: the erased speaker is still in the store", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
