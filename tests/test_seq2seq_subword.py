"""The t2t-style subword tokenizer: splitting, escaping, vocabulary building, round trips."""
from collections import Counter

import pytest

from references.seq2seq import subword
from references.seq2seq.subword import EOS_ID, PAD_ID, Subtokenizer, build_subtokens

TEXTS = [
    "Hello, world!",
    "Die Katze saß auf der Matte — 3,5 Stunden lang.",
    "under_score and back\\slash, tab\tinside",
    "  leading and trailing spaces  ",
    "Ünïcödé 東京 2014: «quotes» & symbols € $ %",
    "a",
    "",
]


def test_split_at_alphanumeric_boundaries():
    assert subword.split_tokens("Hello, world!") == ["Hello", ", ", "world", "!"]
    # a single space between two words is implied; other non-alphanumeric runs are kept
    assert subword.split_tokens("the cat  sat") == ["the", "cat", "  ", "sat"]
    assert subword.split_tokens(" x") == [" ", "x"]
    assert subword.split_tokens("3,5") == ["3", ",", "5"]


@pytest.mark.parametrize("text", TEXTS)
def test_split_join_round_trip(text):
    assert subword.join_tokens(subword.split_tokens(text)) == text


def test_escape_by_hand():
    alphabet = frozenset("abcxy") | subword.ESCAPE_CHARS  # a real alphabet has the escape characters
    assert subword.escape("a_b", alphabet) == "a\\ub_"
    assert subword.escape("a\\", alphabet) == "a\\\\_"
    assert subword.escape("aé", alphabet) == "a\\233;_"
    for token in ["a_b", "x\\y", "é東", "\\u", "\\233;"]:
        assert subword.unescape(subword.escape(token, alphabet)[:-1]) == token


def _tokenizer():
    corpus = ["the cat sat on the mat.", "the dog sat on the log!", "cats and dogs, mats and logs"] * 10
    counts = Counter(t for line in corpus for t in subword.split_tokens(line))
    return Subtokenizer(build_subtokens(counts, min_count=6))


def test_vocabulary_reserved_ids_and_frequent_words():
    tokenizer = _tokenizer()
    assert tokenizer.subtokens[PAD_ID] == "<pad>_" and tokenizer.subtokens[EOS_ID] == "<EOS>_"
    # words seen >= 6 times become whole subtokens, ordered by count ("the" 40 times first)
    assert tokenizer.subtokens[2] == "the_"
    assert {"cat_", "sat_", "on_", "mat_", "dog_"} <= set(tokenizer.subtokens)
    assert tokenizer.encode("the cat") == [tokenizer.ids["the_"], tokenizer.ids["cat_"]]
    assert tokenizer.encode("the cat", add_eos=True)[-1] == EOS_ID
    # a known word's prefix-free split: longest match first
    assert [tokenizer.subtokens[i] for i in tokenizer.encode("cats")] == ["cats_"]


@pytest.mark.parametrize("text", TEXTS)
def test_encode_decode_round_trip_including_unseen_characters(text):
    tokenizer = _tokenizer()
    ids = tokenizer.encode(text)
    assert all(0 < i < len(tokenizer) for i in ids) or not ids
    assert tokenizer.decode(ids) == text


def test_vocabulary_file_round_trip_and_reference_format(tmp_path):
    tokenizer = _tokenizer()
    tokenizer.save(tmp_path / "vocab")
    assert (tmp_path / "vocab").read_text().splitlines()[:3] == ["'<pad>_'", "'<EOS>_'", "'the_'"]
    loaded = Subtokenizer.load(tmp_path / "vocab")
    assert loaded.subtokens == tokenizer.subtokens
    # the reference repository's vocabulary file: reserved tokens first, or not at all
    (tmp_path / "no_reserved").write_text("'the_'\n'a'\n'b'\n")
    assert Subtokenizer.load(tmp_path / "no_reserved").subtokens[:3] == ["<pad>_", "<EOS>_", "the_"]


def test_count_tokens_samples_lines(tmp_path):
    path = tmp_path / "text"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    full = subword.count_tokens([path], byte_limit=1e6)
    assert full["line"] == 1000
    sampled = subword.count_tokens([path], byte_limit=200)
    assert 0 < sampled["line"] < 100
