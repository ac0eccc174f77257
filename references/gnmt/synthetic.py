"""Small data in the raw WMT16 layout (spec gnmt.md §9): the toy language pair
(``references/seq2seq/toy_language.py``) written as the three training corpora (plain
text, the archives' folders and names) and as newstest2014/2015/2016 in WMT's SGM files,
for the real ``prepare`` to process."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from references.gnmt.prepare import DEV_SETS, TEST_SET, TRAIN_CORPORA
from references.seq2seq.toy_language import ToyLanguagePair

_FOLDERS = {"europarl-v7.de-en": "training", "commoncrawl.de-en": "",
            "news-commentary-v11.de-en": "training-parallel-nc-v11"}


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def sgm_lines(set_id: str, kind: str, lang: str, segments: list[str]) -> list[str]:
    """A WMT SGM file: ``kind`` is ``src`` or ``ref``; one document, one segment per line
    (text written as is: ``input-from-sgm.perl`` does not unescape either)."""
    outer = "srcset" if kind == "src" else "refset"
    head = [f'<{outer} setid="{set_id}" srclang="any" trglang="{lang}">',
            f'<doc sysid="{kind}" docid="toy" genre="news" origlang="en">', "<p>"]
    body = [f'<seg id="{i}">{text}</seg>' for i, text in enumerate(segments, 1)]
    return head + body + ["</p>", "</doc>", f"</{outer}>"]


def write_raw_corpus(root: Path | str, num_train: int, num_dev: int, num_test: int, seed: int,
                     max_words: int = 25) -> None:
    """Training pairs split 40/30/30 over the three corpora; the dev pairs split over
    newstest2015 and 2016; the test set is newstest2014 (the German side is the source
    side of the ``deen`` files, the English side the reference)."""
    root, language = Path(root), ToyLanguagePair(seed)
    rng = np.random.default_rng(seed + 1)
    sizes = [num_train * 4 // 10, num_train * 3 // 10]
    sizes.append(num_train - sum(sizes))
    for corpus, size in zip(TRAIN_CORPORA, sizes):
        pairs = language.corpus(size, rng, max_words)
        for lang, side in (("en", 0), ("de", 1)):
            _write(root / _FOLDERS[corpus] / f"{corpus}.{lang}", [pair[side] for pair in pairs])
    dev_sizes = (num_dev - num_dev // 2, num_dev // 2)
    for name, size in ((TEST_SET, num_test), *zip(DEV_SETS, dev_sizes)):
        pairs = language.corpus(size, rng, max_words)
        folder = root / ("test" if name == "newstest2016" else "dev")
        _write(folder / f"{name}-deen-src.de.sgm", sgm_lines(name, "src", "de", [de for _, de in pairs]))
        _write(folder / f"{name}-deen-ref.en.sgm", sgm_lines(name, "ref", "en", [en for en, _ in pairs]))
