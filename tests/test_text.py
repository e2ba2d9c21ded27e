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
    direct = list(tokenizer.word_ids(vocab.tokens, UNK_ID).pipe(texts))
    assert direct == through_tokens
    assert any(UNK_ID in row for row in direct) and [] in direct


TRICKY = [
    "Love it :) but (: the U.S. sizing is off... 10a.m. delivery, e-mail said $20/50% off!",
    "I'm 5'2\" & it's x-small/petite; don't, can't, won't. \"Great\" (really) <3 =) :-(",
    "See http://example.com/a?b=1 or mail me@example.org -- it's o.k.!!! 😀😀 émigré's",
    "Not bad<br/>at all.<BR>Gonna keep it, isn't it? 'Cause it's 'nuff",
    "( : ) :( ): (; ;) a.m. p.m. etc. vs. Mr. Dr. Ms.",
]


def test_word_ids_read_from_known_chunks_equal_spacy_on_the_whole_text(monkeypatch):
    """Texts made only of chunks seen in other texts are read from the memo, never by spaCy, and
    still give exactly the ids spaCy gives the whole text (emoticons, abbreviations, URLs...)."""
    tokenizer = Tokenizer()
    vocab = Vocab.build(tokenizer.pipe(TRICKY[:3]))
    word_ids = tokenizer.word_ids(vocab.tokens, UNK_ID)
    assert list(word_ids.pipe(TRICKY)) == [vocab.encode(tokens) for tokens in tokenizer.pipe(TRICKY)]

    chunks = [chunk for text in TRICKY for chunk in clean_text(text).split(" ")]
    recombined = [" ".join(chunks[i::k]) for k in (2, 3, 5) for i in range(k)] + [" ".join(reversed(chunks))]

    def spacy_called(_chunks):
        raise AssertionError("a text of known chunks went through spaCy")

    expected = [vocab.encode(tokens) for tokens in tokenizer.pipe(recombined)]
    monkeypatch.setattr(word_ids, "_learn", spacy_called)
    assert list(word_ids.pipe(recombined)) == expected


def test_word_ids_memory_is_bounded_and_exact_across_resets():
    tokenizer = Tokenizer(lowercase=False)
    vocab = Vocab.build(tokenizer.pipe(TRICKY))
    word_ids = Tokenizer(lowercase=False).word_ids(vocab.tokens, UNK_ID)
    word_ids.max_chunks = 30
    texts = TRICKY * 3 + ["short one", "another short one :)"] * 2
    read = []
    for ids in word_ids.pipe(texts, batch_size=1):
        read.append(ids)
        assert 0 < len(word_ids._memo) <= 30
    assert read == [vocab.encode(tokens) for tokens in tokenizer.pipe(texts)]


def test_word_ids_follow_spacy_where_a_special_case_reaches_across_a_space():
    """spaCy's matcher sees `' '` in "talkin' 'bout" as the special case `''`, and so does not
    make `'bout` one token, as it does where the chunk stands apart (an IMDB review has this)."""
    tokenizer = Tokenizer()
    apart = ["keep talkin' please", "'bout time", "I'm ( happy", ":) yes"]
    together = ["whatcha talkin' 'bout?!", "so ( :) here"]
    assert tokenizer(together[0])[2:5] == ["'", "'", "bout"] and tokenizer(apart[1])[0] == "'bout"
    vocab = Vocab.build(tokenizer.pipe(apart + together))
    word_ids = tokenizer.word_ids(vocab.tokens, UNK_ID)
    list(word_ids.pipe(apart))
    texts = together + apart
    assert list(word_ids.pipe(texts)) == [vocab.encode(tokens) for tokens in tokenizer.pipe(texts)]


@pytest.mark.parametrize("lowercase", [True, False])
def test_word_ids_read_plain_words_without_spacy_and_special_cases_with_it(lowercase, monkeypatch):
    """A chunk of ASCII letters is one token unless it is one of spaCy's special cases ("cannot",
    "Gonna", "dont", "id"; not "wanna"), which go through spaCy with every chunk holding another character."""
    texts = [
        "I cannot believe it, Gonna keep it. dont LOVE the colour",
        "id say its FINE ok wanna lemme gimme",
        "émigré naïve café x-small 5ft 2in it's 100% U.S. sizes",
    ]
    tokenizer = Tokenizer(lowercase=lowercase)
    vocab = Vocab.build(tokenizer.pipe(texts[1:]))
    word_ids = tokenizer.word_ids(vocab.tokens, UNK_ID)
    through_spacy = []
    learn = word_ids._learn_from_spacy
    monkeypatch.setattr(word_ids, "_learn_from_spacy", lambda chunks: (through_spacy.extend(chunks), learn(chunks)))
    assert list(word_ids.pipe(texts)) == [vocab.encode(tokens) for tokens in tokenizer.pipe(texts)]
    assert {"cannot", "Gonna", "dont", "id", "émigré", "it,", "x-small", "it's", "U.S."} <= set(through_spacy)
    assert not {"I", "believe", "LOVE", "its", "FINE", "ok", "say", "wanna", "lemme"} & set(through_spacy)
