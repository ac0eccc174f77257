"""WMT17 en-de for the Transformer: one-time preparation (untimed) and the timed loaders.

``prepare`` reads the raw parallel text the reference downloads (spec §1): the three
training corpora in the reference's order, newstest2013 (dev) and newstest2014 (BLEU),
found by file name anywhere under the source folder. It builds the shared subword
vocabulary (``vocab.ende.32768``) from about 1 MB of each of the six training files, or
takes a vocabulary file found in the source, and writes every training pair as subtoken
ids + EOS into round-robin shards, each shuffled once. The shards are ``.npz`` files of
flat token arrays and offsets: a reformatting that adds nothing to the data.

Timed (``open_data``): reading the shards, the ``max_sequence_length`` filter, the
per-epoch order and token batching, and encoding the newstest2014 sources for decoding.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np

from mlperf_train.errors import UsageError
from references.seq2seq.batching import TokenArrays, interleave, token_batches
from references.seq2seq.subword import Subtokenizer, build_subtokens, count_tokens

TRAIN_FILES = [("news-commentary-v12.de-en.en", "news-commentary-v12.de-en.de"),
               ("commoncrawl.de-en.en", "commoncrawl.de-en.de"),
               ("europarl-v7.de-en.en", "europarl-v7.de-en.de")]
DEV_FILES = ("newstest2013.en", "newstest2013.de")
TEST_FILES = ("newstest2014.en", "newstest2014.de")
VOCAB_FILE = "vocab.ende.32768"
# A vocabulary found in the source is used as is: ours from an earlier prepare, or the one
# the reference repository ships (its first two lines are the reserved tokens).
KNOWN_VOCAB_FILES = (VOCAB_FILE, "vocab.translate_ende_wmt32k.32768.subwords")
INFO_FILE = "dataset.json"
SHUFFLE_SEED = 0  # the reference shuffles each shard once, unseeded; we fix the seed
_PARALLEL_ABOVE_LINES = 200_000
_CHUNK_LINES = 50_000


def shard_name(tag: str, index: int, count: int) -> str:
    return f"wmt32k-encoded-{tag}-{index:05d}-of-{count:05d}.npz"


def find_file(root: Path, name: str) -> Path | None:
    if (root / name).is_file():
        return root / name
    return next((p for p in sorted(root.rglob(name)) if p.is_file()), None)


def _locate(source: Path) -> dict[str, Path]:
    names = [n for pair in TRAIN_FILES for n in pair] + list(DEV_FILES) + list(TEST_FILES)
    found = {name: find_file(source, name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise UsageError(f"prepare transformer: source = {source}: missing {', '.join(missing)} "
                         "(the WMT17 en-de training corpora, newstest2013 and newstest2014)")
    return found  # type: ignore[return-value]


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.strip() for line in f]


# --- encoding, in worker processes for the full corpus ---------------------------------------
_worker_tokenizer: Subtokenizer | None = None


def _init_worker(subtokens: list[str]) -> None:
    global _worker_tokenizer
    _worker_tokenizer = Subtokenizer(subtokens)


def _encode_chunk(lines: list[str]) -> list[list[int]]:
    return [_worker_tokenizer.encode(line, add_eos=True) for line in lines]  # type: ignore[union-attr]


def _encode_all(tokenizer: Subtokenizer, lines: list[str], pool) -> list[list[int]]:
    if pool is None:
        return [tokenizer.encode(line, add_eos=True) for line in lines]
    chunks = [lines[i:i + _CHUNK_LINES] for i in range(0, len(lines), _CHUNK_LINES)]
    return [ids for chunk in pool.imap(_encode_chunk, chunks) for ids in chunk]


def _save_pairs(path: Path, src: TokenArrays, tgt: TokenArrays) -> None:
    with open(path, "wb") as f:  # an open file: np.savez would append .npz to the name
        np.savez(f, src_tokens=src.tokens, src_offsets=src.offsets, tgt_tokens=tgt.tokens, tgt_offsets=tgt.offsets)


def prepare(source: Path, data_dir: Path, settings) -> None:
    source, data_dir = Path(source), Path(data_dir)
    files = _locate(source)
    vocab_path = next((p for p in (find_file(source, n) for n in KNOWN_VOCAB_FILES) if p), None)
    if vocab_path is not None:
        tokenizer = Subtokenizer.load(vocab_path)
    else:
        train_paths = [files[pair[0]] for pair in TRAIN_FILES] + [files[pair[1]] for pair in TRAIN_FILES]
        counts = count_tokens(train_paths, settings.vocab_file_byte_limit)
        tokenizer = Subtokenizer(build_subtokens(counts, settings.vocab_min_count))
    if len(tokenizer) > settings.vocab_size:
        raise UsageError(f"prepare transformer: the vocabulary has {len(tokenizer)} subtokens, more than "
                         f"settings.vocab_size = {settings.vocab_size} rows of the model's embedding")
    data_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(data_dir / VOCAB_FILE)
    dtype = np.uint16 if len(tokenizer) <= np.iinfo(np.uint16).max else np.int32

    num_shards = settings.num_train_shards
    shard_src: list[list] = [[] for _ in range(num_shards)]
    shard_tgt: list[list] = [[] for _ in range(num_shards)]
    num_train = sum(_count_lines(files[pair[0]]) for pair in TRAIN_FILES)
    workers = min(os.cpu_count() or 1, 8) if num_train > _PARALLEL_ABOVE_LINES else 0
    pool = multiprocessing.Pool(workers, _init_worker, (tokenizer.subtokens,)) if workers > 1 else None
    try:
        position = 0  # round-robin over the concatenated corpora, as the reference writes
        for en_name, de_name in TRAIN_FILES:
            en, de = read_lines(files[en_name]), read_lines(files[de_name])
            if len(en) != len(de):
                raise UsageError(f"prepare transformer: {en_name} has {len(en)} lines, {de_name} {len(de)}")
            for start in range(0, len(en), 10 * _CHUNK_LINES):
                src = _encode_all(tokenizer, en[start:start + 10 * _CHUNK_LINES], pool)
                tgt = _encode_all(tokenizer, de[start:start + 10 * _CHUNK_LINES], pool)
                for shard in range(num_shards):
                    first = (shard - position) % num_shards
                    shard_src[shard].append(TokenArrays.from_lists(src[first::num_shards], dtype))
                    shard_tgt[shard].append(TokenArrays.from_lists(tgt[first::num_shards], dtype))
                position += len(src)
        rng = np.random.default_rng(SHUFFLE_SEED)
        for shard in range(num_shards):
            src, tgt = _concat(shard_src[shard]), _concat(shard_tgt[shard])
            order = rng.permutation(len(src))
            _save_pairs(data_dir / shard_name("train", shard + 1, num_shards), _take(src, order), _take(tgt, order))
        dev = [_encode_all(tokenizer, read_lines(files[name]), pool) for name in DEV_FILES]
        _save_pairs(data_dir / shard_name("dev", 1, 1), TokenArrays.from_lists(dev[0], dtype),
                    TokenArrays.from_lists(dev[1], dtype))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    for name in TEST_FILES:  # decoded and scored on the clock, from the raw text
        shutil.copyfile(files[name], data_dir / name)
    (data_dir / INFO_FILE).write_text(json.dumps({
        "train_pairs": position, "num_train_shards": num_shards, "vocab_size": len(tokenizer),
        "vocab_source": str(vocab_path) if vocab_path else "built"}, indent=1))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _concat(parts: list[TokenArrays]) -> TokenArrays:
    tokens = np.concatenate([p.tokens for p in parts])
    lengths = np.concatenate([p.lengths for p in parts])
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return TokenArrays(tokens, offsets)


def _take(arrays: TokenArrays, order: np.ndarray) -> TokenArrays:
    lengths = arrays.lengths[order]
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    starts = arrays.offsets[:-1][order]
    gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return TokenArrays(arrays.tokens[gather], offsets)


# --- timed: loading and batching ---------------------------------------------------------------
class TrainingSet:
    """All training shards in memory, filtered by ``max_length`` (``discard``: pairs with a
    longer side are dropped; ``truncate``: longer sides are cut when batched)."""

    def __init__(self, data_dir: Path, max_length: int, method: str):
        if method not in ("discard", "truncate"):
            raise ValueError(f"max_sequence_method must be discard or truncate, not {method!r}")
        info = json.loads((Path(data_dir) / INFO_FILE).read_text())
        count = info["num_train_shards"]
        parts_src, parts_tgt = [], []
        for shard in range(count):
            with np.load(Path(data_dir) / shard_name("train", shard + 1, count)) as d:
                parts_src.append(TokenArrays(d["src_tokens"], d["src_offsets"]))
                parts_tgt.append(TokenArrays(d["tgt_tokens"], d["tgt_offsets"]))
        sizes = np.array([len(p) for p in parts_src])
        self.src, self.tgt = _concat(parts_src), _concat(parts_tgt)
        self.max_length, self.method = max_length, method
        src_len, tgt_len = self.src.lengths, self.tgt.lengths
        keep = (src_len <= max_length) & (tgt_len <= max_length) if method == "discard" else np.ones(len(src_len), bool)
        self.example_lengths = np.minimum(np.maximum(src_len, tgt_len), max_length)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        self.shards = [np.flatnonzero(keep[a:b]) + a for a, b in zip(bounds[:-1], bounds[1:])]
        self.num_pairs = int(keep.sum())

    def epoch_batches(self, seed: int, epoch: int, max_tokens: int, cycle_length: int,
                      min_boundary: int, boundary_scale: float) -> list[np.ndarray]:
        """The epoch's batches: shards in a seeded order, read ``cycle_length`` at a time."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self.shards))
        stream = interleave([self.shards[i] for i in order], cycle_length)
        return token_batches(stream, self.example_lengths, max_tokens, self.max_length,
                             min_boundary, boundary_scale)


def load_dev_set(data_dir: Path, max_length: int) -> tuple[TokenArrays, TokenArrays, np.ndarray]:
    """newstest2013 as encoded at prepare: (sources, targets, ids of the pairs that fit
    ``max_length``, which the reference's dev-loss pipeline keeps)."""
    with np.load(Path(data_dir) / shard_name("dev", 1, 1)) as d:
        src, tgt = TokenArrays(d["src_tokens"], d["src_offsets"]), TokenArrays(d["tgt_tokens"], d["tgt_offsets"])
    return src, tgt, np.flatnonzero((src.lengths <= max_length) & (tgt.lengths <= max_length))


def load_test_set(data_dir: Path, tokenizer: Subtokenizer) -> tuple[list[list[int]], list[str]]:
    """newstest2014: encoded sources (ids + EOS) and the raw reference lines."""
    sources = read_lines(Path(data_dir) / TEST_FILES[0])
    references = read_lines(Path(data_dir) / TEST_FILES[1])
    if sources and not sources[-1] and not references[-1]:
        sources, references = sources[:-1], references[:-1]
    if len(sources) != len(references):
        raise ValueError(f"newstest2014: {len(sources)} sources but {len(references)} references")
    return [tokenizer.encode(line, add_eos=True) for line in sources], references
