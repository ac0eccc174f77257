"""GNMT's timed input pipeline (spec gnmt.md §1 "Files the loader reads", §3 "Data order").

Everything here runs on the clock: reading the BPE'd text, token -> id (BOS + ids + EOS,
unknown pieces -> UNK), the length filter on both sides (lengths count BOS and EOS), the
length buckets and the per-epoch shuffle.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from references.gnmt import prepare as files
from references.seq2seq.batching import TokenArrays

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "<\\s>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class Vocabulary:
    """The four special tokens, then ``vocab.bpe.N`` line by line."""

    def __init__(self, tokens: list[str]):
        self.tokens = [PAD, UNK, BOS, EOS] + tokens
        self.ids = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        return cls([line.strip() for line in files.read_lines(path) if line.strip()])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, line: str) -> list[int]:
        get = self.ids.get
        return [BOS_ID] + [get(token, UNK_ID) for token in line.split()] + [EOS_ID]

    def pieces(self, ids) -> list[str]:
        """BPE pieces of ``ids`` without the special tokens. Ids past the vocabulary (the
        model's embedding may have more rows) read as the reference's padding words
        ``madeupwordNNNN``."""
        size = len(self.tokens)
        return [self.tokens[i] if i < size else f"madeupword{i - size:04d}" for i in ids if i > EOS_ID]


def encode_file(path: Path, vocab: Vocabulary) -> TokenArrays:
    return TokenArrays.from_lists([vocab.encode(line) for line in files.read_lines(path)])


class ParallelSet:
    """Source and target ids of every pair with ``min_length <= len <= max_length`` on both
    sides (the reference's filter, which discards)."""

    def __init__(self, src_path: Path, tgt_path: Path, vocab: Vocabulary, min_length: int, max_length: int):
        src, tgt = encode_file(src_path, vocab), encode_file(tgt_path, vocab)
        if len(src) != len(tgt):
            raise ValueError(f"{src_path}: {len(src)} lines, {tgt_path}: {len(tgt)}")
        keep = np.flatnonzero((src.lengths >= min_length) & (src.lengths <= max_length) &
                              (tgt.lengths >= min_length) & (tgt.lengths <= max_length))
        self.src, self.tgt = src.take(keep), tgt.take(keep)
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.src)


def bucket_ids(src_lengths: np.ndarray, tgt_lengths: np.ndarray, max_length: int, num_buckets: int) -> np.ndarray:
    """max(src // width, tgt // width) clamped to the last bucket, width = ceil(max / buckets)."""
    width = (max_length + num_buckets - 1) // num_buckets
    return np.minimum(np.maximum(src_lengths // width, tgt_lengths // width), num_buckets - 1)


def epoch_batches(buckets: np.ndarray, num_buckets: int, global_batch: int, seed: int) -> np.ndarray:
    """[R06] ``BucketingSampler``: each bucket permuted and cut to a multiple of the global
    batch, the buckets concatenated, then the global batches shuffled.
    Returns (num_batches, global_batch) pair indices."""
    rng = np.random.default_rng(seed)
    parts = []
    for bucket in range(num_buckets):
        members = np.flatnonzero(buckets == bucket)
        members = members[rng.permutation(len(members))]
        parts.append(members[:len(members) // global_batch * global_batch])
    batches = np.concatenate(parts).reshape(-1, global_batch)
    return batches[rng.permutation(len(batches))]


def epoch_batches_v05(total_lengths: np.ndarray, global_batch: int, seed: int, shard_batches: int = 80) -> np.ndarray:
    """[R05]: one global permutation, shards of ``shard_batches`` global batches each
    sorted by source + target length, cut into batches, the batches shuffled."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(total_lengths))
    order = order[:len(order) // global_batch * global_batch]
    shard = global_batch * shard_batches
    for start in range(0, len(order), shard):
        piece = order[start:start + shard]
        order[start:start + shard] = piece[np.argsort(total_lengths[piece], kind="stable")]
    batches = order.reshape(-1, global_batch)
    return batches[rng.permutation(len(batches))]


def epoch_seeds(master_seed: int, count: int) -> list[int]:
    """One shuffle seed per epoch from the run's seed (the reference draws them from a
    ``random.Random`` seeded with the master seed)."""
    generator = random.Random(master_seed)
    return [generator.randint(0, 2**32 - 1) for _ in range(count)]


def load_test_set(data_dir: Path, merges: int, vocab: Vocabulary) -> tuple[list[list[int]], list[str]]:
    """newstest2014: the BPE'd sources as ids (BOS ... EOS) and the raw German references."""
    sources = files.read_lines(Path(data_dir) / files.test_source_file(merges))
    references = files.read_lines(Path(data_dir) / files.TEST_REFERENCE_FILE)
    if len(sources) != len(references):
        raise ValueError(f"{data_dir}: {len(sources)} test sources but {len(references)} references")
    return [vocab.encode(line) for line in sources], references
