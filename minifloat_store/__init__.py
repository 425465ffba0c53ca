"""minifloat-store: embeddings stored as packed 4-, 6- and 8-bit minifloats.

The core API::

    import minifloat_store as mfs
    packed = mfs.encode(x, "e2m1")        # x: float32 (n, d)
    enc = mfs.Encoding("nf4", "vector", "centre+rotate").fit(x)   # codebook x scale x transform
    packed = mfs.encode(x, enc)           # an Encoded; decode and search take it too
    y = mfs.decode(packed)                # float32 (n, d)
    rows, scores = mfs.search(packed, q, k=10)       # top-10 cosine, on the codes
    c = mfs.cosine_index_pairs(packed, left, right)  # trial-list scores
    rec = mfs.recommend(sample, threshold=0.7)     # the smallest encoding that keeps decisions
"""

from importlib.metadata import PackageNotFoundError, version

from minifloat_store.choose import Recommendation, recommend
from minifloat_store.codec import SCALE_MODES, Packed, decode, encode, quantize, storage_bytes
from minifloat_store.encoding import Encoded, Encoding
from minifloat_store.formats import FORMATS, Format, decode_table, get_format
from minifloat_store.scoring import cosine_index_pairs, cosine_pairs, search, vector_norms, verify
from minifloat_store.store import EmbeddingStore
from minifloat_store.store.convert import convert

try:
    # One source of truth: the version in pyproject.toml, as installed.
    __version__ = version("minifloat-store")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "EmbeddingStore",
    "Encoded",
    "Encoding",
    "FORMATS",
    "SCALE_MODES",
    "Format",
    "Packed",
    "Recommendation",
    "cosine_index_pairs",
    "convert",
    "cosine_pairs",
    "decode",
    "decode_table",
    "encode",
    "get_format",
    "quantize",
    "recommend",
    "search",
    "storage_bytes",
    "vector_norms",
    "verify",
]
