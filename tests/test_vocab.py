import pytest

from sentiment.data.vocab import PAD_ID, UNK_ID, Vocab
from sentiment.errors import SentimentError


def test_build_orders_by_frequency_then_alphabet_and_applies_limits():
    docs = [["b", "a", "a"], ["c", "b", "a"], ["d"]]
    assert Vocab.build(docs).tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]
    assert Vocab.build(docs, min_freq=2).tokens == ["<pad>", "<unk>", "a", "b"]
    assert Vocab.build(docs, max_size=1).tokens == ["<pad>", "<unk>", "a"]


def test_encode_maps_unknown_words_and_truncates():
    vocab = Vocab.build([["good", "dress"]])
    assert vocab.encode(["good", "bad", "dress"]) == [vocab.index["good"], UNK_ID, vocab.index["dress"]]
    assert vocab.encode(["good", "bad", "dress"], max_len=2) == [vocab.index["good"], UNK_ID]
    assert PAD_ID not in vocab.encode(["good", "bad"])


def test_save_and_load_round_trip(tmp_path):
    vocab = Vocab.build([["not", "bad", "at", "all"]])
    vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json").tokens == vocab.tokens


def test_loading_a_file_that_is_not_a_vocabulary_fails_clearly(tmp_path):
    (tmp_path / "vocab.json").write_text('{"words": []}')
    with pytest.raises(SentimentError, match="not a vocabulary"):
        Vocab.load(tmp_path / "vocab.json")
