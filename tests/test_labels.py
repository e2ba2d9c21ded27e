import pytest

from sentiment.data.labels import map_labels, scheme_labels
from sentiment.errors import SentimentError


def test_binary_drops_three_stars_and_counts_them():
    ids, dropped = map_labels([1, 2, 3, 4, 5, "3"], "binary")
    assert ids == [0, 0, None, 1, 1, None]
    assert dropped == {"3": 2}


def test_ternary_and_stars():
    assert map_labels([1, 3, 5], "ternary")[0] == [0, 1, 2]
    assert map_labels([1, 2, 3, 4, 5, 4.0], "stars")[0] == [0, 1, 2, 3, 4, 3]
    assert scheme_labels("stars") == ["1", "2", "3", "4", "5"]


def test_sentiment_words_map_directly():
    assert map_labels(["positive", "Negative", "pos", "neg"], "binary")[0] == [1, 0, 1, 0]
    assert map_labels(["neutral"], "binary") == ([None], {"neutral": 1})
    assert map_labels(["neutral", "positive"], "ternary")[0] == [1, 2]


@pytest.mark.parametrize(
    "values, scheme", [([1, 7, 7], "binary"), (["meh"], "ternary"), ([0, 1], "binary"), (["positive"], "stars")]
)
def test_unknown_values_are_named(values, scheme):
    with pytest.raises(SentimentError, match="unknown label values") as error:
        map_labels(values, scheme)
    assert repr(values[-1]) in str(error.value)
