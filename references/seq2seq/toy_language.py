"""A seeded toy language pair for the small translation presets (spec gnmt.md §9, shared
by GNMT and Transformer).

"English" sentences come from a small grammar over pseudo-words drawn with a Zipf
distribution; the "German" side is a deterministic function of the English sentence, so a
correct model can learn it exactly, and one with a broken mask or search cannot:

- content words map through a fixed random bijection to longer pseudo-words built from
  shared pieces (they split into several subwords);
- nouns have a gender; articles and adjective endings agree with it (the -> der/die/das,
  an adjective gets -er/-e/-es, plural -en), verbs agree with the subject;
- word order changes: an adverb moves from the end of the clause to right after the verb,
  the verb of a subordinate clause moves to its end;
- some function words merge (in the -> im, to the -> zum/zur) and some split meanings
  merge too (she/they -> sie).
"""
from __future__ import annotations

import numpy as np

_EN_ONSETS = "b c d f g h j k l m n p r s t v w z bl br cl cr dr fl fr gl gr pl pr sl sp st tr".split()
_EN_VOWELS = "a e i o u ai ea oo".split()
_EN_CODAS = ["", "", "n", "t", "m", "ck", "st", "nd", "rt", "ll"]
_DE_PIECES = ("schn stei berg wald feld haus burg lich keit ung heit rat mann kraft werk stoff "
              "zeug land gang spiel licht bau fahr zug wind wasser kopf stein hof dorf").split()
_DE_VOWELS = "a e i o u ei au ie ä ö ü".split()

PRONOUNS = {"I": ("ich", "1s"), "you": ("du", "2s"), "he": ("er", "3s"), "she": ("sie", "3s"),
            "we": ("wir", "pl"), "they": ("sie", "pl")}
# English determiner -> German forms for masculine, feminine, neuter, plural.
DETERMINERS = {"the": ("der", "die", "das", "die"), "a": ("ein", "eine", "ein", None),
               "this": ("dieser", "diese", "dieses", "diese"), "every": ("jeder", "jede", "jedes", None),
               "my": ("mein", "meine", "mein", "meine")}
PREPOSITIONS = {"in": "in", "with": "mit", "for": "für", "from": "von", "to": "zu", "on": "auf"}
CONTRACTIONS = {("in", "der"): "im", ("in", "das"): "im", ("zu", "der"): "zum", ("zu", "das"): "zum",
                ("zu", "die"): "zur"}
CONJUNCTIONS = {"because": "weil", "that": "dass", "when": "wenn", "if": "ob"}
ADJ_ENDINGS = ("er", "e", "es", "en")
VERB_ENDINGS = {"1s": "e", "2s": "st", "3s": "t", "pl": "en"}


class ToyLanguagePair:
    """The lexicon and grammar, fixed by ``seed``; ``pair(rng)`` draws one sentence pair."""

    def __init__(self, seed: int = 0, num_nouns: int = 120, num_verbs: int = 60,
                 num_adjectives: int = 40, num_adverbs: int = 15):
        rng = np.random.default_rng(seed)
        sizes = {"noun": num_nouns, "verb": num_verbs, "adj": num_adjectives, "adv": num_adverbs}
        total = sum(sizes.values())
        english = self._distinct(rng, total, self._english_word)
        german = self._distinct(rng, total, self._german_word)
        self.lexicon, start = {}, 0
        for kind, size in sizes.items():
            self.lexicon[kind] = list(zip(english[start:start + size], german[start:start + size]))
            start += size
        self.gender = {en: int(rng.integers(3)) for en, _ in self.lexicon["noun"]}
        # Zipf over each word class: a few words are frequent, most are rare.
        self.weights = {kind: self._zipf(len(words)) for kind, words in self.lexicon.items()}

    @staticmethod
    def _zipf(n: int) -> np.ndarray:
        w = 1.0 / np.arange(1, n + 1)
        return w / w.sum()

    @staticmethod
    def _distinct(rng, count, make) -> list[str]:
        taken = set(PRONOUNS) | set(DETERMINERS) | set(PREPOSITIONS) | set(CONJUNCTIONS)
        words = []
        while len(words) < count:
            word = make(rng)
            if word not in taken:
                taken.add(word)
                words.append(word)
        return words

    @staticmethod
    def _english_word(rng) -> str:
        return "".join(rng.choice(_EN_ONSETS) + rng.choice(_EN_VOWELS) + rng.choice(_EN_CODAS)
                       for _ in range(int(rng.integers(1, 3))))

    @staticmethod
    def _german_word(rng) -> str:
        pieces = [rng.choice(_DE_PIECES) for _ in range(int(rng.integers(2, 4)))]
        return rng.choice(_DE_VOWELS).join(pieces)

    def _draw(self, rng, kind: str) -> tuple[str, str]:
        words = self.lexicon[kind]
        return words[int(rng.choice(len(words), p=self.weights[kind]))]

    # --- grammar: each phrase returns (english words, german words, agreement) ------------
    def _noun_phrase(self, rng, allow_pronoun: bool):
        if allow_pronoun and rng.random() < 0.25:
            en = list(PRONOUNS)[int(rng.integers(len(PRONOUNS)))]
            return [en], [PRONOUNS[en][0]], PRONOUNS[en][1]
        noun_en, noun_de = self._draw(rng, "noun")
        gender = self.gender[noun_en]
        det = list(DETERMINERS)[int(rng.integers(len(DETERMINERS)))]
        plural = DETERMINERS[det][3] is not None and rng.random() < 0.3
        form = 3 if plural else gender
        adjectives = [self._draw(rng, "adj") for _ in range(int(rng.choice(3, p=[0.6, 0.3, 0.1])))]
        en = [det] + [a for a, _ in adjectives] + [noun_en + ("s" if plural else "")]
        de = [DETERMINERS[det][form]] + [a + ADJ_ENDINGS[form] for _, a in adjectives]
        de.append(noun_de + ("en" if plural else ""))
        return en, de, "pl" if plural else "3s"

    def _clause(self, rng, subordinate: bool):
        subj_en, subj_de, person = self._noun_phrase(rng, allow_pronoun=True)
        verb_en, verb_de = self._draw(rng, "verb")
        verb_en += "s" if person == "3s" else ""
        verb_de += VERB_ENDINGS[person]
        obj_en, obj_de, _ = self._noun_phrase(rng, allow_pronoun=False)
        en, de_rest = subj_en + [verb_en] + obj_en, list(obj_de)
        if rng.random() < 0.4:
            prep = list(PREPOSITIONS)[int(rng.integers(len(PREPOSITIONS)))]
            np_en, np_de, _ = self._noun_phrase(rng, allow_pronoun=False)
            merged = CONTRACTIONS.get((PREPOSITIONS[prep], np_de[0]))
            en += [prep] + np_en
            de_rest += ([merged] + np_de[1:]) if merged else [PREPOSITIONS[prep]] + np_de
        adverb = self._draw(rng, "adv") if rng.random() < 0.3 else None
        if adverb:
            en.append(adverb[0])
        if subordinate:  # verb last; the adverb stays before the object
            de = subj_de + ([adverb[1]] if adverb else []) + de_rest + [verb_de]
        else:            # verb second, adverb right after it
            de = subj_de + [verb_de] + ([adverb[1]] if adverb else []) + de_rest
        return en, de

    def pair(self, rng) -> tuple[str, str]:
        en, de = self._clause(rng, subordinate=False)
        if rng.random() < 0.35:
            conj = list(CONJUNCTIONS)[int(rng.integers(len(CONJUNCTIONS)))]
            sub_en, sub_de = self._clause(rng, subordinate=True)
            en += [",", conj] + sub_en
            de += [",", CONJUNCTIONS[conj]] + sub_de
        return _sentence(en), _sentence(de)

    def corpus(self, num_pairs: int, rng, max_words: int = 25) -> list[tuple[str, str]]:
        pairs = []
        while len(pairs) < num_pairs:
            en, de = self.pair(rng)
            if len(en.split()) <= max_words + 1:
                pairs.append((en, de))
        return pairs


def _sentence(words: list[str]) -> str:
    text = " ".join(words).replace(" ,", ",") + "."
    return text[0].upper() + text[1:]
