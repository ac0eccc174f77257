"""Token sequences in flat arrays, length buckets and batches bounded by padded tokens.

``TokenArrays`` holds many variable-length sequences as one flat token array and offsets,
the form our shards are stored in. ``token_batches`` reproduces the bucketing of the
TensorFlow reference's input pipeline (spec transformer.md §3): an example's length is
the longer of its two sides; buckets have boundaries 8, 9, ... growing by x1.1 up to the
maximum length; a bucket of longest length ``b`` takes ``max_tokens // b`` examples, so
a padded batch never holds more than ``max_tokens`` tokens; batches are emitted as the
stream fills each bucket (``group_by_window``), the unfilled rest at the end.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class TokenArrays:
    tokens: np.ndarray   # all sequences, concatenated
    offsets: np.ndarray  # int64, len(sequences) + 1

    @classmethod
    def from_lists(cls, sequences, dtype=np.int32) -> "TokenArrays":
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((t for s in sequences for t in s), dtype=dtype, count=int(offsets[-1]))
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def get(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index]:self.offsets[index + 1]]

    def take(self, indices: np.ndarray) -> "TokenArrays":
        """The sequences ``indices``, in that order, as new flat arrays."""
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.lengths[indices]
        offsets = np.zeros(len(indices) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        gather = np.repeat(self.offsets[:-1][indices] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return TokenArrays(self.tokens[gather], offsets)


def pad_batch(arrays: TokenArrays, indices, max_length: int | None = None, eos_id: int = 1,
              pad_id: int = 0) -> torch.Tensor:
    """[len(indices), longest] int64, padded with ``pad_id``. With ``max_length``, longer
    sequences are cut to it and end with ``eos_id`` (the rules' truncate method)."""
    rows = [arrays.get(int(i)) for i in indices]
    if max_length is not None:
        rows = [r if len(r) <= max_length else np.append(r[:max_length - 1], eos_id) for r in rows]
    return pad_rows(rows, pad_id)


def pad_rows(rows, pad_id: int = 0) -> torch.Tensor:
    """Sequences (lists or arrays) as one [len(rows), longest] int64 tensor."""
    out = np.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return torch.from_numpy(out)


def bucket_boundaries(max_length: int, min_boundary: int = 8, scale: float = 1.1) -> list[int]:
    """Upper bounds (exclusive) of the length buckets: 8, 9, ..., the last is max + 1."""
    bounds, x = [], min_boundary
    while x < max_length:
        bounds.append(x)
        x = max(x + 1, int(x * scale))
    return bounds + [max_length + 1]


def token_batches(stream: np.ndarray, example_lengths: np.ndarray, max_tokens: int, max_length: int,
                  min_boundary: int = 8, scale: float = 1.1) -> list[np.ndarray]:
    """Batches of example indices, in the order the bucketing emits them.

    ``stream``: example indices in reading order; ``example_lengths``: per example (indexed
    by example id) the length that decides its bucket. A batch is emitted when its bucket
    has ``max_tokens // bucket_max`` examples; the partly filled buckets come last, by bucket.
    """
    bounds = np.asarray(bucket_boundaries(max_length, min_boundary, scale))
    buckets = np.searchsorted(bounds, example_lengths[stream], side="right")
    emitted: list[tuple[float, int, np.ndarray]] = []
    for bucket in np.unique(buckets):
        size = max(1, max_tokens // int(bounds[bucket]))
        where = np.flatnonzero(buckets == bucket)  # positions in the stream, in order
        for start in range(0, len(where), size):
            chunk = where[start:start + size]
            ready_at = float(chunk[-1]) if len(chunk) == size else np.inf
            emitted.append((ready_at, int(bucket), stream[chunk]))
    emitted.sort(key=lambda item: (item[0], item[1]))
    return [batch for _, _, batch in emitted]


def interleave(blocks: list[np.ndarray], cycle_length: int) -> np.ndarray:
    """Read ``cycle_length`` blocks at a time, one element from each in turn; when a block
    runs out, the next unread block takes its place (the reference's parallel interleave
    over shard files, made deterministic)."""
    slot_free_at = [0] * cycle_length           # element count of each slot's stream so far
    slot_of_block, first_round = [], []
    for block in blocks:  # the next block goes to the slot that runs out first
        slot = min(range(cycle_length), key=lambda s: (slot_free_at[s], s))
        slot_of_block.append(slot)
        first_round.append(slot_free_at[slot])
        slot_free_at[slot] += len(block)
    if not blocks:
        return np.zeros(0, dtype=np.int64)
    rounds = np.concatenate([start + np.arange(len(b)) for start, b in zip(first_round, blocks)])
    slots = np.concatenate([np.full(len(b), s) for s, b in zip(slot_of_block, blocks)])
    order = np.lexsort((slots, rounds))
    return np.concatenate(blocks)[order]
