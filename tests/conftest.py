"""Shared test configuration."""

from __future__ import annotations


def pytest_configure(config) -> None:
    # CI has 2 cores; torch's intra-op threads fighting numba's and each other's
    # make the model tests many times slower, for no gain on tiny inputs.
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
