"""Corpus BLEU with sacreBLEU, as sufficient statistics that add up across ranks.

Both translation benchmarks score uncased BLEU-4 on the mteval-v14 international
tokenization (sacreBLEU ``lowercase=True, tokenize="intl"``) with the NIST "exp" smoothing
of orders without a match and the usual brevity penalty. A rank scores its share of the
sentences as ``statistics`` (matches and totals per order, hypothesis and reference
lengths); the sums over ranks give exactly the corpus score of the whole set.
"""
from __future__ import annotations

import numpy as np
from sacrebleu.metrics import BLEU

MAX_ORDER = 4
NUM_STATISTICS = 2 * MAX_ORDER + 2


def statistics(hypotheses: list[str], references: list[str], lowercase: bool = True,
               tokenize: str = "intl") -> np.ndarray:
    """[matches 1..4, totals 1..4, hypothesis length, reference length] as float64."""
    if not hypotheses:
        return np.zeros(NUM_STATISTICS)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    score = BLEU(lowercase=lowercase, tokenize=tokenize).corpus_score(hypotheses, [references])
    return np.array([*score.counts, *score.totals, score.sys_len, score.ref_len], dtype=np.float64)


def score(stats: np.ndarray) -> float:
    """BLEU points (0..100) from summed ``statistics``."""
    stats = [int(round(v)) for v in np.asarray(stats).tolist()]
    correct, total = stats[:MAX_ORDER], stats[MAX_ORDER:2 * MAX_ORDER]
    return float(BLEU.compute_bleu(correct, total, stats[-2], stats[-1], smooth_method="exp").score)


def corpus_bleu(hypotheses: list[str], references: list[str], lowercase: bool = True,
                tokenize: str = "intl") -> float:
    return score(statistics(hypotheses, references, lowercase, tokenize))
