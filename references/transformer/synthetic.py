"""Small data in the raw WMT17 layout: the toy language pair written under the real file
names (three training corpora, newstest2013, newstest2014), for ``prepare`` to process."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from references.seq2seq.toy_language import ToyLanguagePair
from references.transformer.data import DEV_FILES, TEST_FILES, TRAIN_FILES

# Where the reference's archives put each file once extracted.
_FOLDERS = {"news-commentary": "training", "commoncrawl": "", "europarl": "training", "newstest2013": "dev",
            "newstest2014": ""}


def _write(root: Path, name: str, lines: list[str]) -> None:
    folder = root / _FOLDERS[name.split(".")[0].split("-v")[0]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_raw_corpus(root: Path | str, num_train: int, num_dev: int, num_test: int, seed: int,
                     max_words: int = 25) -> None:
    root, language = Path(root), ToyLanguagePair(seed)
    rng = np.random.default_rng(seed + 1)
    # The three "corpora" split the training pairs 40/30/30.
    sizes = [num_train * 4 // 10, num_train * 3 // 10]
    sizes.append(num_train - sum(sizes))
    for (en_name, de_name), size in zip(TRAIN_FILES, sizes):
        pairs = language.corpus(size, rng, max_words)
        _write(root, en_name, [en for en, _ in pairs])
        _write(root, de_name, [de for _, de in pairs])
    for (en_name, de_name), size in ((DEV_FILES, num_dev), (TEST_FILES, num_test)):
        pairs = language.corpus(size, rng, max_words)
        _write(root, en_name, [en for en, _ in pairs])
        _write(root, de_name, [de for _, de in pairs])
