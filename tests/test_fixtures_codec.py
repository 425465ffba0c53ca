"""Golden fixtures: today's codec writes and reads exactly the bytes of earlier releases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import minifloat_store as mfs

FIXTURES = Path(__file__).parent / "fixtures" / "codec"


@pytest.mark.parametrize("name", list(mfs.FORMATS))
@pytest.mark.parametrize("scale", list(mfs.SCALE_MODES))
def test_encode_reproduces_stored_bytes_and_decode_reads_them(name: str, scale: str) -> None:
    x = np.load(FIXTURES / "input.npy", allow_pickle=False)
    with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as golden:
        codes, scales, decoded = (golden[f"{k}_{scale}"] for k in ("codes", "scales", "decoded"))
    p = mfs.encode(x, name, scale)
    np.testing.assert_array_equal(p.codes, codes)
    np.testing.assert_array_equal(p.scales, scales)
    stored = mfs.Packed(codes, scales, name, x.shape[1], "none" if name == "fp32" else scale)
    np.testing.assert_array_equal(mfs.decode(stored).view(np.uint32), decoded.view(np.uint32))
