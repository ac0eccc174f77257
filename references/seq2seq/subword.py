"""Subword tokenizer in the tensor2tensor style used by the MLPerf Transformer reference.

Behaviour (spec transformer.md §1): text is split where characters change between
alphanumeric (Unicode L*/N*) and not; a single space between two alphanumeric tokens is
implied and dropped. Each token is escaped (``\\`` -> ``\\\\``, ``_`` -> ``\\u``, characters
outside the alphabet -> ``\\NNN;``), gets ``_`` appended to mark its end, and is split
greedily into the longest known subtokens from the left. Ids 0 and 1 are ``<pad>`` and
``<EOS>``.

The vocabulary is built from token counts sampled from the training files: starting from
the alphabet, each of ``num_iterations`` rounds segments every token with the current
subtokens, counts every substring that starts at a subtoken boundary, and keeps the
substrings seen at least ``min_count`` times, longest first, discounting the counts of the
prefixes of each kept subtoken. No library offers this algorithm without TensorFlow, so it
is written out here from the spec.
"""
from __future__ import annotations

import collections
import functools
import os
import re
import unicodedata
from pathlib import Path
from typing import Iterable

PAD, EOS = "<pad>_", "<EOS>_"
PAD_ID, EOS_ID = 0, 1
RESERVED = (PAD, EOS)
# Always in the alphabet, so that every escaped token can be written with subtokens.
ESCAPE_CHARS = frozenset("\\_u;0123456789")
_UNESCAPE = re.compile(r"\\u|\\\\|\\([0-9]+);")
_UNDEFINED = "\u3013"  # what an escape of a code point that does not exist decodes to


@functools.lru_cache(maxsize=None)
def is_alnum(char: str) -> bool:
    return unicodedata.category(char)[0] in "LN"


def split_tokens(text: str) -> list[str]:
    """Alternating runs of alphanumeric and other characters; a lone space between two
    alphanumeric runs is dropped (``join_tokens`` puts it back)."""
    if not text:
        return []
    tokens, start = [], 0
    kinds = [is_alnum(c) for c in text]
    for pos in range(1, len(text)):
        if kinds[pos] != kinds[pos - 1]:
            token = text[start:pos]
            if token != " " or start == 0:
                tokens.append(token)
            start = pos
    tokens.append(text[start:])
    return tokens


def join_tokens(tokens: list[str]) -> str:
    out = []
    for i, token in enumerate(tokens):
        if i > 0 and is_alnum(tokens[i - 1][0]) and is_alnum(token[0]):
            out.append(" ")
        out.append(token)
    return "".join(out)


def escape(token: str, alphabet: frozenset | set) -> str:
    token = token.replace("\\", "\\\\").replace("_", "\\u")
    return "".join(c if c in alphabet and c != "\n" else f"\\{ord(c)};" for c in token) + "_"


def unescape(token: str) -> str:
    def replace(match):
        if match.group(1) is None:
            return "_" if match.group(0) == "\\u" else "\\"
        try:
            return chr(int(match.group(1)))
        except (ValueError, OverflowError):
            return _UNDEFINED
    return _UNESCAPE.sub(replace, token)


def split_to_subtokens(escaped: str, subtoken_ids: dict, max_length: int) -> list[str]:
    """Greedy longest match from the left."""
    pieces, start = [], 0
    while start < len(escaped):
        for end in range(min(len(escaped), start + max_length), start, -1):
            if escaped[start:end] in subtoken_ids:
                pieces.append(escaped[start:end])
                start = end
                break
        else:  # every alphabet character is a subtoken, so this means a bug
            raise ValueError(f"cannot split {escaped!r} into subtokens")
    return pieces


# --- building a vocabulary ---------------------------------------------------------------
def count_tokens(files: Iterable[Path], byte_limit: float = 1e6) -> collections.Counter:
    """Token counts over about ``byte_limit`` characters of lines from each file, spread
    over the file: after each kept line, skip size / (2 * byte_limit) lines."""
    counts: collections.Counter = collections.Counter()
    for path in files:
        skip = int(os.path.getsize(path) / (byte_limit * 2))
        budget, counter = byte_limit, 0
        with open(path, encoding="utf-8", newline="\n") as f:
            for line in f:
                if counter < skip:
                    counter += 1
                    continue
                if budget < 0:
                    break
                line = line.strip()
                budget -= len(line)
                counter = 0
                counts.update(split_tokens(line))
    return counts


def alphabet_of(strings: Iterable[str]) -> frozenset:
    chars = {c for s in strings for c in s}
    chars |= {c for s in RESERVED for c in s}
    return frozenset(chars | ESCAPE_CHARS)


def _substring_counts(token_counts, alphabet, subtoken_ids, max_length) -> collections.Counter:
    """Count every substring of each escaped token that starts where a subtoken of the
    current segmentation starts."""
    counts: collections.Counter = collections.Counter()
    for token, count in token_counts.items():
        escaped = escape(token, alphabet)
        start = 0
        for piece in split_to_subtokens(escaped, subtoken_ids, max_length):
            for end in range(start + 1, len(escaped) + 1):
                counts[escaped[start:end]] += count
            start += len(piece)
    return counts


def _select_subtokens(counts, min_count, alphabet) -> tuple[list[str], int]:
    """Keep substrings seen ``min_count`` times, longest first; a kept subtoken's count is
    taken away from its prefixes, which then survive only on their own occurrences."""
    by_length: dict[int, list[str]] = collections.defaultdict(list)
    for sub, count in counts.items():
        if count >= min_count:
            by_length[len(sub)].append(sub)
    max_length = max(by_length, default=1)
    candidates = []
    for length in range(max_length, 0, -1):
        for sub in by_length[length]:
            count = counts[sub]
            if count < min_count:
                continue
            if sub not in alphabet and sub not in RESERVED:
                candidates.append((count, sub))
            for end in range(1, length):
                counts[sub[:end]] -= count
    candidates += [(counts.get(c, 0), c) for c in alphabet]
    ordered = [sub for _, sub in sorted(candidates, reverse=True)]
    return list(RESERVED) + ordered, max_length


def build_subtokens(token_counts: dict, min_count: int, num_iterations: int = 4) -> list[str]:
    """The subtoken list (reserved first, then by decreasing count)."""
    alphabet = alphabet_of(token_counts)
    subtokens, max_length = list(RESERVED) + sorted(alphabet), 1
    for _ in range(num_iterations):
        ids = {s: i for i, s in enumerate(subtokens)}
        counts = _substring_counts(token_counts, alphabet, ids, max_length)
        subtokens, max_length = _select_subtokens(counts, min_count, alphabet)
    return subtokens


# --- the tokenizer -------------------------------------------------------------------------
class Subtokenizer:
    """Encodes text to ids and back with a fixed subtoken list."""

    def __init__(self, subtokens: list[str]):
        rest = [s for s in subtokens if s not in RESERVED]
        self.subtokens = list(RESERVED) + rest
        self.ids = {s: i for i, s in enumerate(self.subtokens)}
        self.alphabet = alphabet_of(self.subtokens)
        self.max_length = max(len(s) for s in self.subtokens)
        self._cache: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.subtokens)

    @classmethod
    def load(cls, path: Path) -> "Subtokenizer":
        """A vocabulary file: one subtoken per line in single quotes. Reserved tokens found
        in the file are moved to ids 0 and 1 (the file the reference repository ships
        starts with them)."""
        with open(path, encoding="utf-8", newline="\n") as f:
            return cls([line.strip()[1:-1] for line in f if line.strip()])

    def save(self, path: Path) -> None:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"'{s}'\n" for s in self.subtokens)

    def encode(self, text: str, add_eos: bool = False) -> list[int]:
        ids = []
        for token in split_tokens(text):
            cached = self._cache.get(token)
            if cached is None:
                pieces = split_to_subtokens(escape(token, self.alphabet), self.ids, self.max_length)
                cached = [self.ids[p] for p in pieces]
                if len(self._cache) > 1_000_000:  # bounded memory on the full corpus
                    self._cache.clear()
                self._cache[token] = cached
            ids.extend(cached)
        if add_eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        text = "".join(self.subtokens[i] for i in ids if 0 <= i < len(self.subtokens))
        return join_tokens([unescape(t) for t in text.split("_") if t])
