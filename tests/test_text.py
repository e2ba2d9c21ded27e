import pytest

from sentiment.data.text import Tokenizer, clean_text
from sentiment.data.vocab import UNK_ID, Vocab


def test_spacy_splits_negation_and_punctuation():
    assert Tokenizer()("Not perfect, but pretty good!") == ["not", "perfect", ",", "but", "pretty", "good", "!"]
    assert Tokenizer()("I don't love it") == ["i", "do", "n't", "love", "it"]


def test_lowercasing_is_configurable():
    assert Tokenizer(lowercase=False)("LOVE it") == ["LOVE", "it"]


def test_html_breaks_and_whitespace_are_not_tokens():
    assert clean_text("Great.<br /><br />Really   great\n\t") == "Great. Really great"
    assert Tokenizer()("one<br/>two \u00a0 three\n") == ["one", "two", "three"]


def test_pipe_matches_single_calls():
    texts = ["Runs small.", "", "Love the colour :)", "Fabric's thin & itchy"]
    tokenizer = Tokenizer()
    assert list(tokenizer.pipe(texts, batch_size=2)) == [tokenizer(text) for text in texts]


@pytest.mark.parametrize("lowercase", [True, False])
def test_ids_straight_from_the_tokenizer_equal_tokens_then_ids(lowercase):
    texts = [
        "Not perfect, but pretty GOOD!!  <br/> Love   it",
        "   ",
        "zzzunseen words\tand\u00a0odd\u2003spaces",
        "don't <unk> <pad> émigré 😀",
        "",
        "Runs small. Order up!",
    ]
    tokenizer = Tokenizer(lowercase=lowercase)
    vocab = Vocab.build(tokenizer.pipe(texts[:1] + texts[5:]))
    through_tokens = [vocab.encode(tokens) for tokens in tokenizer.pipe(texts)]
    direct = list(tokenizer.pipe_ids(texts, tokenizer.id_lookup(vocab.tokens), UNK_ID))
    assert direct == through_tokens
    assert any(UNK_ID in row for row in direct) and [] in direct
