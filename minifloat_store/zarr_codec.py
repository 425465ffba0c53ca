"""``minifloat``: a zarr v3 array-to-bytes codec that stores float32 rows as packed minifloats.

Registered through the ``zarr.codecs`` entry point (pyproject.toml), so plain
zarr, xarray and ``dask.array.from_zarr`` read and write such arrays with this
package installed, without importing it::

    zarr.create_array(path, shape=(n, d), chunks=(r, d), dtype="float32",
                      serializer={"name": "minifloat", "configuration": {"format": "e2m1", "scale": "vector"}})

Reading gives exactly ``quantize(x, format, scale)``: each chunk row is one
vector, encoded with ``minifloat_store.encode``. A chunk of shape (r, d) is
stored as its codes, ``r * ceil(d * bits / 8)`` bytes (docs/format.md), then,
for ``scale="vector"``, its r scales as little-endian float32. Compression or
checksums go after it in the codec chain (``compressors=``).

The configuration comes from the array's ``zarr.json``, and the chunk bytes
from storage: both are checked before use (a known format and scale mode, no
other keys, the exact byte length, finite positive scales).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer

from minifloat_store.codec import SCALE_MODES, Packed, decode, effective_scale, encode
from minifloat_store.formats import FORMATS, get_format

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec

__all__ = ["MinifloatCodec"]

CODEC_NAME = "minifloat"


def _parse_config(data: object) -> tuple[str, str]:
    """(format, scale) from a codec's JSON description, refusing anything unexpected."""
    if not isinstance(data, dict) or data.get("name") != CODEC_NAME:
        raise ValueError(f"not a {CODEC_NAME!r} codec description: {data!r:.200}")
    extra = set(data) - {"name", "configuration"}
    if extra:
        raise ValueError(f"{CODEC_NAME} codec: unexpected keys {sorted(extra)}")
    config = data.get("configuration", {})
    if not isinstance(config, dict):
        raise ValueError(f"{CODEC_NAME} codec: configuration must be an object, got {type(config).__name__}")
    extra = set(config) - {"format", "scale"}
    if extra:
        raise ValueError(f"{CODEC_NAME} codec: unknown configuration keys {sorted(extra)}; expected format, scale")
    return _check(config.get("format"), config.get("scale", "vector"))


def _check(fmt: object, scale: object) -> tuple[str, str]:
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ValueError(f"{CODEC_NAME} codec: format must be one of {', '.join(FORMATS)}, got {fmt!r:.80}")
    if not isinstance(scale, str) or scale not in SCALE_MODES:
        raise ValueError(f"{CODEC_NAME} codec: scale must be one of {', '.join(SCALE_MODES)}, got {scale!r:.80}")
    return fmt, effective_scale(get_format(fmt), scale)


@dataclass(frozen=True)
class MinifloatCodec(ArrayBytesCodec):
    """Rows of a 2-D float32 array as packed minifloat codes (one vector per row).

    Parameters
    ----------
    format : str
        A name of ``minifloat_store.FORMATS`` (``"e2m1"``, ``"e4m3"``...).
    scale : {"vector", "none"}
        Per-vector scaling (the study's equation 6) or none; fp32 always "none".
    """

    is_fixed_size = True

    format: str
    scale: str

    def __init__(self, *, format: str = "e4m3", scale: str = "vector") -> None:  # noqa: A002 (the JSON key)
        fmt, sc = _check(format, scale)
        object.__setattr__(self, "format", fmt)
        object.__setattr__(self, "scale", sc)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MinifloatCodec:
        fmt, scale = _parse_config(data)
        return cls(format=fmt, scale=scale)

    def to_dict(self) -> dict[str, Any]:
        return {"name": CODEC_NAME, "configuration": {"format": self.format, "scale": self.scale}}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
        if np.dtype(native) != np.float32:
            raise ValueError(f"{CODEC_NAME} codec stores float32 arrays, not {native}")
        if len(shape) != 2:
            raise ValueError(f"{CODEC_NAME} codec stores 2-D arrays (rows of vectors), not shape {shape}")

    def _row_bytes(self, dim: int) -> int:
        return get_format(self.format).row_bytes(dim)

    def _chunk_bytes(self, rows: int, dim: int) -> int:
        return rows * (self._row_bytes(dim) + (4 if self.scale == "vector" else 0))

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        rows, dim = chunk_spec.shape
        return self._chunk_bytes(rows, dim)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        x = np.asarray(chunk_array.as_numpy_array(), dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"{CODEC_NAME} codec: chunk of shape {x.shape} is not 2-D")
        packed = encode(x, self.format, self.scale)
        parts = [packed.codes.reshape(-1)]
        if self.scale == "vector":
            parts.append(packed.scales.astype("<f4").view(np.uint8))
        return chunk_spec.prototype.buffer.from_array_like(np.concatenate(parts))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return self._encode_sync(chunk_array, chunk_spec)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        rows, dim = chunk_spec.shape
        raw = np.frombuffer(chunk_bytes.to_bytes(), dtype=np.uint8)
        want = self._chunk_bytes(rows, dim)
        if raw.size != want:
            raise ValueError(
                f"{CODEC_NAME} chunk of {rows} x {dim} {self.format} (scale {self.scale}) must be {want} bytes, "
                f"got {raw.size}: damaged or written with another configuration"
            )
        rb = self._row_bytes(dim)
        codes = raw[: rows * rb].reshape(rows, rb).copy()
        if self.scale == "vector":
            scales = raw[rows * rb :].view("<f4").astype(np.float32)
        else:
            scales = np.ones(rows, dtype=np.float32)
        # Packed refuses scales that are not finite and positive, naming the row.
        out = decode(Packed(codes, scales, self.format, dim, self.scale))
        return chunk_spec.prototype.nd_buffer.from_numpy_array(out)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)
