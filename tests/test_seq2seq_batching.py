"""Length buckets, token-bounded batches, shard interleaving, padding."""
import numpy as np

from references.seq2seq.batching import TokenArrays, bucket_boundaries, interleave, pad_batch, token_batches


def test_reference_buckets_for_256():
    bounds = bucket_boundaries(256)
    assert len(bounds) == 42  # spec §3: 42 buckets
    assert bounds[:13] == list(range(8, 21)) and bounds[12:15] == [20, 22, 24]
    assert bounds[-2:] == [236, 257]  # the last bucket ends past the maximum length


def test_batches_hold_every_example_once_within_the_token_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 65, size=2000)
    stream = rng.permutation(2000)
    batches = token_batches(stream, lengths, max_tokens=512, max_length=64)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(2000))
    bounds = bucket_boundaries(64)
    for batch in batches:
        assert len(batch) * lengths[batch].max() <= 512
        # one bucket per batch
        assert len(set(np.searchsorted(bounds, lengths[batch], side="right").tolist())) == 1


def test_batches_are_emitted_when_their_bucket_fills():
    # bucket of length < 8 takes 16 // 8 = 2 examples, bucket [8, 9) takes 16 // 9 = 1
    lengths = np.array([3, 8, 4, 5, 8, 2])
    batches = token_batches(np.arange(6), lengths, max_tokens=16, max_length=10)
    assert [b.tolist() for b in batches] == [[1], [0, 2], [4], [3, 5]]
    # partly filled buckets come last, in bucket order (24 // 8 = 3, 24 // 9 = 2 per batch)
    batches = token_batches(np.arange(4), np.array([8, 3, 8, 4]), max_tokens=24, max_length=10)
    assert [b.tolist() for b in batches] == [[0, 2], [1, 3]]


def test_interleave_reads_blocks_in_turn():
    blocks = [np.array([1, 2, 3]), np.array([10, 20]), np.array([100]), np.array([7, 8])]
    assert interleave(blocks, 2).tolist() == [1, 10, 2, 20, 3, 100, 7, 8]
    assert interleave(blocks, 1).tolist() == [1, 2, 3, 10, 20, 100, 7, 8]


def test_pad_and_truncate():
    arrays = TokenArrays.from_lists([[5, 6, 1], [7, 1], [2, 3, 4, 5, 1]])
    assert pad_batch(arrays, [0, 1]).tolist() == [[5, 6, 1], [7, 1, 0]]
    assert pad_batch(arrays, [2, 1], max_length=3).tolist() == [[2, 3, 1], [7, 1, 0]]
