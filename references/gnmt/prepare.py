"""WMT16 en-de for GNMT: the one-time preprocessing of ``download_dataset.sh`` (spec
gnmt.md §1), untimed, from the raw downloads to the files the reference reads.

Steps, in the reference's order:

1. training text = Europarl v7 + CommonCrawl + News Commentary v11 (.en and .de);
   newstest2014/2015/2016 as plain text (``newstestYYYY.{en,de}``) or from the WMT SGM
   files (``newstestYYYY-deen-{src,ref}.{de,en}.sgm``, read in either direction);
2. Moses tokenisation of every file (``sacremoses``, escaping on, no aggressive hyphen
   splitting, as ``tokenizer.perl -l en|de``);
3. ``clean-corpus-n`` 1-80 tokens with ratio 9 on the training and dev pairs;
4. dev = newstest2015 + newstest2016 (cleaned);
5. the latin-1 filter on training and dev pairs (the test set is not filtered);
6. joint BPE with ``subword-nmt`` (``num_merges``, 32,000 in the reference) learnt on the
   German then the English training side, applied to every tokenised file;
7. ``vocab.bpe.N``: the BPE'd training tokens by decreasing count, one per line.

Written to ``data_dir``: ``vocab.bpe.N``, ``bpe.N`` (the codes),
``train.tok.clean.bpe.N.{en,de}``, ``newstest_dev.tok.clean.bpe.N.{en,de}``,
``newstest2014.tok.bpe.N.{en,de}`` and the raw ``newstest2014.{en,de}``.
"""
from __future__ import annotations

import collections
import io
import multiprocessing
import os
import re
from pathlib import Path

from sacremoses import MosesTokenizer
from subword_nmt import learn_bpe as subword_learn
from subword_nmt.apply_bpe import BPE

from mlperf_train.errors import UsageError

TRAIN_CORPORA = ("europarl-v7.de-en", "commoncrawl.de-en", "news-commentary-v11.de-en")  # concatenated in this order
TEST_SET, DEV_SETS = "newstest2014", ("newstest2015", "newstest2016")
CLEAN_MIN, CLEAN_MAX, CLEAN_RATIO = 1, 80, 9.0
_PARALLEL_ABOVE_LINES = 200_000
_CHUNK_LINES = 20_000


def vocab_file(merges: int) -> str:
    return f"vocab.bpe.{merges}"


def train_file(merges: int, lang: str) -> str:
    return f"train.tok.clean.bpe.{merges}.{lang}"


def dev_file(merges: int, lang: str) -> str:
    return f"newstest_dev.tok.clean.bpe.{merges}.{lang}"


def test_source_file(merges: int) -> str:
    return f"{TEST_SET}.tok.bpe.{merges}.en"


TEST_REFERENCE_FILE = f"{TEST_SET}.de"  # raw: BLEU is computed against it


def _find(source: Path, name: str) -> Path | None:
    if (source / name).is_file():
        return source / name
    return next((p for p in sorted(source.rglob(name)) if p.is_file()), None)


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def write_lines(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


_SEG = re.compile(r"<seg[^>]*>(.*)</seg>", re.IGNORECASE)


def read_sgm(path: Path) -> list[str]:
    """The segments of a WMT SGM file, in order (``input-from-sgm.perl``)."""
    return [m.group(1).strip() for m in map(_SEG.search, read_lines(path)) if m]


def _test_set(source: Path, name: str, lang: str) -> list[str]:
    plain = _find(source, f"{name}.{lang}")
    if plain is not None:
        return read_lines(plain)
    other = "de" if lang == "en" else "en"
    for sgm in (f"{name}-{other}{lang}-ref.{lang}.sgm", f"{name}-{lang}{other}-src.{lang}.sgm",
                f"{name}-{other}{lang}-src.{lang}.sgm", f"{name}-{lang}{other}-ref.{lang}.sgm"):
        found = _find(source, sgm)
        if found is not None:
            return read_sgm(found)
    raise UsageError(f"prepare gnmt: source = {source}: missing {name}.{lang} (or its WMT .sgm file)")


def _corpus(source: Path, lang: str) -> list[str]:
    lines = []
    for corpus in TRAIN_CORPORA:
        path = _find(source, f"{corpus}.{lang}")
        if path is None:
            raise UsageError(f"prepare gnmt: source = {source}: missing {corpus}.{lang} (a WMT16 en-de training corpus)")
        lines += read_lines(path)
    return lines


# --- Moses tokenisation, in worker processes for the full corpus ---------------------------
_tokenizers: dict[str, MosesTokenizer] = {}


def _tokenize_chunk(args: tuple[str, list[str]]) -> list[str]:
    lang, lines = args
    moses = _tokenizers.setdefault(lang, MosesTokenizer(lang=lang))
    return [moses.tokenize(line, escape=True, return_str=True, aggressive_dash_splits=False) for line in lines]


def _map_chunks(function, lines: list[str], extra, pool) -> list[str]:
    chunks = [(extra, lines[i:i + _CHUNK_LINES]) for i in range(0, len(lines), _CHUNK_LINES)]
    mapper = pool.imap if pool is not None else map
    return [out for chunk in mapper(function, chunks) for out in chunk]


_bpe: BPE | None = None


def _bpe_chunk(args: tuple[str, list[str]]) -> list[str]:
    global _bpe
    codes, lines = args
    if _bpe is None:
        with open(codes, encoding="utf-8") as f:
            _bpe = BPE(f, separator="@@")
    return [_bpe.process_line(line) for line in lines]


def clean_pairs(src: list[str], tgt: list[str]) -> tuple[list[str], list[str]]:
    """``clean-corpus-n.perl`` 1 80: whitespace squeezed; a pair is kept when both sides
    have 1..80 tokens and neither is more than 9 times longer than the other."""
    kept_src, kept_tgt = [], []
    for a, b in zip(src, tgt):
        a, b = " ".join(a.split()), " ".join(b.split())
        na, nb = len(a.split()), len(b.split())
        if CLEAN_MIN <= na <= CLEAN_MAX and CLEAN_MIN <= nb <= CLEAN_MAX and \
                na / nb <= CLEAN_RATIO and nb / na <= CLEAN_RATIO:
            kept_src.append(a)
            kept_tgt.append(b)
    return kept_src, kept_tgt


def latin1_pairs(src: list[str], tgt: list[str]) -> tuple[list[str], list[str]]:
    """The reference's ``filter_dataset.py``: drop pairs with a side latin-1 cannot encode."""
    def ok(text: str) -> bool:
        try:
            text.encode("latin-1")
            return True
        except UnicodeEncodeError:
            return False
    kept = [(a, b) for a, b in zip(src, tgt) if ok(a) and ok(b)]
    return [a for a, _ in kept], [b for _, b in kept]


def token_counts(lines_iterables) -> list[tuple[str, int]]:
    """``get_vocab.py``: every space-separated token with its count, most frequent first
    (ties in order of first appearance)."""
    counts: collections.Counter = collections.Counter()
    for lines in lines_iterables:
        for line in lines:
            counts.update(w for w in line.strip("\r\n ").split(" ") if w)
    return sorted(counts.items(), key=lambda item: item[1], reverse=True)


def _learn_bpe(lines: list[str], codes: Path, merges: int) -> None:
    """``learn_bpe.py -s merges`` on ``lines``, without its progress bar."""
    progress_bar = subword_learn.tqdm
    subword_learn.tqdm = lambda iterable, *args, **kwargs: iterable
    try:
        with open(codes, "w", encoding="utf-8") as out:
            subword_learn.learn_bpe(io.StringIO("".join(line + "\n" for line in lines)), out, merges)
    finally:
        subword_learn.tqdm = progress_bar


def prepare(source: Path, data_dir: Path, merges: int) -> dict:
    """Run the pipeline above; returns the counts (train and dev pairs, vocabulary)."""
    source, data_dir = Path(source), Path(data_dir)
    if not source.is_dir():
        raise UsageError(f"prepare gnmt: source = {source}: not a folder")
    raw = {"train": (_corpus(source, "en"), _corpus(source, "de"))}
    for name in (TEST_SET, *DEV_SETS):
        raw[name] = (_test_set(source, name, "en"), _test_set(source, name, "de"))
    for name, (en, de) in raw.items():
        if len(en) != len(de):
            raise UsageError(f"prepare gnmt: {name}: {len(en)} English lines but {len(de)} German lines")
    data_dir.mkdir(parents=True, exist_ok=True)
    workers = min(os.cpu_count() or 1, 8) if len(raw["train"][0]) > _PARALLEL_ABOVE_LINES else 0
    pool = multiprocessing.Pool(workers) if workers > 1 else None
    try:
        tok = {name: (_map_chunks(_tokenize_chunk, en, "en", pool), _map_chunks(_tokenize_chunk, de, "de", pool))
               for name, (en, de) in raw.items()}
        train = latin1_pairs(*clean_pairs(*tok["train"]))
        dev_parts = [clean_pairs(*tok[name]) for name in DEV_SETS]
        dev = latin1_pairs(sum((p[0] for p in dev_parts), []), sum((p[1] for p in dev_parts), []))
        codes = data_dir / f"bpe.{merges}"
        _learn_bpe(train[1] + train[0], codes, merges)
        apply = {}
        for name, (en, de) in (("train", train), ("dev", dev), ("test", tok[TEST_SET])):
            apply[name] = (_map_chunks(_bpe_chunk, en, str(codes), pool), _map_chunks(_bpe_chunk, de, str(codes), pool))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    global _bpe
    _bpe = None  # the codes of this prepare only
    for lang, side in (("en", 0), ("de", 1)):
        write_lines(data_dir / train_file(merges, lang), apply["train"][side])
        write_lines(data_dir / dev_file(merges, lang), apply["dev"][side])
        write_lines(data_dir / f"{TEST_SET}.tok.bpe.{merges}.{lang}", apply["test"][side])
        write_lines(data_dir / f"{TEST_SET}.{lang}", raw[TEST_SET][side])
    vocab = token_counts([apply["train"][0], apply["train"][1]])
    write_lines(data_dir / vocab_file(merges), [token for token, _ in vocab])
    return {"train_pairs": len(train[0]), "dev_pairs": len(dev[0]), "test_sentences": len(raw[TEST_SET][0]),
            "vocab_lines": len(vocab)}
