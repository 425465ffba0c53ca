"""Extraction speed of the three study models on CPU, for the time estimates in docs/reproduce.md.

Full-size networks with random weights (the pretrained files are not needed:
speed depends on the architecture, not on the weight values): CAM++ as
published (7.2 M parameters), ReDimNet b2 as released (conv+att 1D blocks,
global-context pooling, hop 240; 4.9 M), WavLM-Base-Plus with the x-vector
head (about 100 M). Each embeds one 8.2 s utterance (the mean VoxCeleb-1
utterance length) of speech-like audio; best of k after a warm-up, with torch
on the given thread counts (1 by default: on a shared 2-core machine more
threads oversubscribe the cores and run slower). The real-time factor is
audio seconds per second of compute.

    python benchmarks/bench_extract.py [--seconds 8.2] [--repeats 3] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of, machine, save  # noqa: E402

SR = 16000


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 130.0 + 5.0 * np.sin(2 * np.pi * 3.0 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(np.sin(k * phase) / k for k in range(1, 10)) * (0.6 + 0.4 * np.sin(2 * np.pi * 2.5 * t))
    x = x + 0.05 * rng.standard_normal(t.size)
    return (0.4 * x / np.max(np.abs(x))).astype(np.float32)


def models() -> dict[str, object]:
    from transformers import WavLMConfig, WavLMForXVector

    from minifloat_store.eval.models import campplus, redimnet, wavlm

    b2 = redimnet.build_network({"block_1d_type": "conv+att", "hop_length": 240, "global_context_att": True})
    return {
        "campplus": campplus.CAMPPlusModel(campplus.CAMPPlus()),
        "redimnet": redimnet.ReDimNetSpeakerModel(b2),
        "wavlm": wavlm.WavLMSpeakerModel(
            WavLMForXVector(WavLMConfig(use_weighted_layer_sum=True, num_labels=1211)),
            _feature_extractor(),
        ),
    }


def _feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    from minifloat_store.eval.models.wavlm import PUBLISHED_FEATURE_EXTRACTOR

    return Wav2Vec2FeatureExtractor(**PUBLISHED_FEATURE_EXTRACTOR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1", help="comma-separated torch thread counts (default 1)")
    args = ap.parse_args()

    import torch

    x = speech_like(args.seconds)
    rows = []
    for name, model in models().items():
        n_params = sum(p.numel() for p in (getattr(model, "network", None) or model.model).parameters())
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            t = best_of(lambda model=model: model.embed(x), repeats=args.repeats)
            rows.append(
                {
                    "model": name,
                    "parameters": n_params,
                    "threads": threads,
                    "seconds": t,
                    "real_time_factor": args.seconds / t,
                }
            )
            print(
                f"{name:<9} {n_params / 1e6:6.1f} M params  {threads} thread(s): {t * 1000:8.1f} ms per "
                f"{args.seconds} s utterance = {args.seconds / t:6.1f}x real time",
                flush=True,
            )
    path = save("bench_extract", {"utterance_seconds": args.seconds, "repeats": args.repeats, "rows": rows})
    print(f"machine: {machine()['cpu']}, {machine()['cores']} cores; wrote {path}")


if __name__ == "__main__":
    main()
