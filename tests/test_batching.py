"""Length-bucketed batches, their sharding across processes, and padding them into tensors."""

import numpy as np
import torch

from sentiment.model.batching import bucket_batches, collate


def test_collate_pads_lists_and_arrays_alike():
    rows = [[5, 6, 7], [8], [9, 10]]
    ids, lengths = collate(rows)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert lengths.tolist() == [3, 1, 2]
    from_arrays = collate([np.asarray(row, dtype=np.int32) for row in rows])
    assert torch.equal(from_arrays[0], ids) and torch.equal(from_arrays[1], lengths)
    mixed = collate([rows[0], np.asarray(rows[1]), rows[2]])  # lists and arrays in one batch
    assert torch.equal(mixed[0], ids) and torch.equal(mixed[1], lengths)
    arrays_first = collate([np.asarray(rows[0]), rows[1], rows[2]])
    assert torch.equal(arrays_first[0], ids)


def test_every_row_lands_in_exactly_one_batch_of_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=5000)
    batches = bucket_batches(lengths, 64, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(5000))
    assert max(len(b) for b in batches) == 64
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 10  # random batches would spread over ~190
    # Inference order (no rng): longest first.
    ordered = np.concatenate(bucket_batches(lengths, 64))
    assert (np.diff(lengths[ordered]) <= 0).all()
