from sentiment.text import Tokenizer, clean_text


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
