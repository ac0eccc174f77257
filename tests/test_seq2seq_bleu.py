"""BLEU: sacreBLEU on known strings, sums over shards, and agreement with the reference's
own BLEU (REF compute_bleu.py, re-stated here from the spec as an independent check)."""
import collections
import functools
import math
import sys
import unicodedata

import numpy as np
import pytest
import regex
import sacrebleu

from references.seq2seq import bleu
from references.transformer.metric import bleu_points, bleu_statistics

HYPS = ["Der Hund läuft schnell über die Straße.", "Es ist 3,5 Grad kalt!", "Ich habe (nicht) viel Zeit",
        "Guten Morgen, Frau Müller.", "das"]
REFS = ["Der Hund rennt schnell über die Straße.", "Es ist 3,5 Grad kalt.", "Ich habe nicht viel Zeit.",
        "Guten Morgen, Frau Müller!", "Das ist alles."]


@functools.lru_cache(maxsize=1)
def _unicode_classes():
    punct = "".join(chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P"))
    symbols = "".join(chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("S"))
    return regex.escape(punct), regex.escape(symbols)


def reference_bleu(hyps, refs):
    """Uncased; mteval-v14 international tokenization; corpus BLEU-4; an order without a
    match gets precision 1 / (2^k * possible); brevity penalty exp(1 - r/c)."""
    punct_class, symbol_class = _unicode_classes()

    def tokenize(text):
        text = regex.sub(rf"([^\d])([{punct_class}])", r"\1 \2 ", text)
        text = regex.sub(rf"([{punct_class}])([^\d])", r" \1 \2", text)
        return regex.sub(rf"([{symbol_class}])", r" \1 ", text).split()

    matches, possible, ref_len, hyp_len = [0] * 4, [0] * 4, 0, 0
    for hyp, ref in zip(hyps, refs):
        h, r = tokenize(hyp.lower()), tokenize(ref.lower())
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            h_ngrams = collections.Counter(tuple(h[i:i + n]) for i in range(len(h) - n + 1))
            r_ngrams = collections.Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, r_ngrams[g]) for g, c in h_ngrams.items())
            possible[n - 1] += sum(h_ngrams.values())
    precisions, smooth = [], 1.0
    for m, p in zip(matches, possible):
        if m == 0:
            smooth *= 2
            precisions.append(1.0 / (smooth * p))
        else:
            precisions.append(m / p)
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / 4)
    ratio = hyp_len / ref_len
    return 100 * geo_mean * (math.exp(1 - 1 / ratio) if ratio < 1 else 1.0)


def test_identical_and_empty():
    assert bleu.corpus_bleu(REFS, REFS) == pytest.approx(100.0)
    assert bleu.corpus_bleu([""] * len(REFS), REFS) == 0.0
    assert bleu.score(bleu.statistics([], [])) == 0.0


def test_equals_sacrebleu_uncased_intl():
    expected = sacrebleu.corpus_bleu(HYPS, [REFS], lowercase=True, tokenize="intl").score
    assert bleu_points(bleu_statistics(HYPS, REFS)) == pytest.approx(expected, abs=1e-9)
    # uncased: changing case does not matter; the cased score is different
    assert bleu.corpus_bleu([h.title() for h in HYPS], REFS) == pytest.approx(expected, abs=1e-9)
    assert bleu.corpus_bleu([h.title() for h in HYPS], REFS, lowercase=False) < expected


def test_statistics_add_up_over_shards():
    whole = bleu.statistics(HYPS, REFS)
    parts = bleu.statistics(HYPS[:2], REFS[:2]) + bleu.statistics(HYPS[2:], REFS[2:])
    assert np.array_equal(whole, parts)
    assert bleu.score(parts) == pytest.approx(bleu.corpus_bleu(HYPS, REFS))


@pytest.mark.parametrize("cut", [len(HYPS), 3, 1])
def test_matches_the_reference_bleu(cut):
    assert bleu.corpus_bleu(HYPS[:cut], REFS[:cut]) == pytest.approx(reference_bleu(HYPS[:cut], REFS[:cut]), rel=1e-9)
