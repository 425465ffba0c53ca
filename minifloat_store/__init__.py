"""minifloat-store: embeddings stored as packed 4-, 6- and 8-bit minifloats.

The core API::

    import minifloat_store as mfs
    packed = mfs.encode(x, "e2m1")        # x: float32 (n, d)
    y = mfs.decode(packed)                # float32 (n, d)
"""

from minifloat_store.codec import SCALE_MODES, Packed, decode, encode, quantize, storage_bytes
from minifloat_store.formats import FORMATS, Format, decode_table, get_format

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "SCALE_MODES",
    "Format",
    "Packed",
    "decode",
    "decode_table",
    "encode",
    "get_format",
    "quantize",
    "storage_bytes",
]
