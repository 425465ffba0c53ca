"""The numba id index agrees with a Python dict under random adds, deletes and re-adds."""

from __future__ import annotations

import random

import numpy as np

from minifloat_store.store.ids import IdIndex, encode_ids


def test_id_index_matches_a_dict_reference():
    rnd = random.Random(7)
    alphabet = "abcé/ü0123456789"
    index = IdIndex(np.empty(0, np.uint8), np.empty(0, np.int64), np.empty(0, bool))
    ref: dict[str, int] = {}
    rows = 0
    for step in range(300):
        if rnd.random() < 0.7 or not ref:
            batch = list({"".join(rnd.choices(alphabet, k=rnd.randint(1, 6))) for _ in range(rnd.randint(1, 40))})
            batch = [b for b in batch if b not in ref]
            if not batch:
                continue
            if step % 50 == 0:
                index.reserve(len(batch), 100)
            blob, ends = encode_ids(batch)
            assert (index.lookup_encoded(blob, ends) == -1).all()
            index.append(blob, ends)
            for i, b in enumerate(batch):
                ref[b] = rows + i
            rows += len(batch)
        else:
            victims = rnd.sample(sorted(ref), k=min(len(ref), rnd.randint(1, 10)))
            index.remove(np.array([ref.pop(v) for v in victims]))
        probe = rnd.sample(sorted(ref), k=min(20, len(ref))) + ["missing", "zz/zz"]
        expect = [ref.get(p, -1) for p in probe]
        assert index.lookup(probe).tolist() == expect
    assert index.rows == rows
    live = np.array(sorted(ref.values()))
    assert index.ids_of(live) == sorted(ref, key=ref.get)
    # Rebuilding from the blob (as on open) gives the same answers.
    mask = np.zeros(rows, bool)
    mask[live] = True
    again = IdIndex(index._blob.view.copy(), index._ends.view.copy(), mask)
    assert again.lookup(sorted(ref)).tolist() == [ref[k] for k in sorted(ref)]
