import numpy as np
import pytest

from sentiment.data.splits import stratified_group_split
from sentiment.errors import SentimentError


def _data():
    texts = [f"review {i}" for i in range(200)] + ["same text"] * 10 + ["other dup"] * 5
    labels = [i % 4 == 0 for i in range(200)] + [1] * 10 + [0] * 5
    return texts, [int(x) for x in labels]


def test_splits_cover_every_row_once_and_duplicates_stay_together():
    texts, labels = _data()
    parts = stratified_group_split(texts, labels, {"validation": 0.1, "test": 0.1}, seed=0)
    rows = np.concatenate(list(parts.values()))
    assert sorted(rows.tolist()) == list(range(len(texts)))
    seen = {name: {texts[i] for i in idx} for name, idx in parts.items()}
    assert not (seen["train"] & seen["validation"]) and not (seen["train"] & seen["test"])
    assert not (seen["validation"] & seen["test"])


def test_split_is_stratified_and_seeded():
    texts, labels = _data()
    parts = stratified_group_split(texts, labels, {"validation": 0.1, "test": 0.1}, seed=3)
    labels = np.array(labels)
    for name in ("validation", "test"):
        share = labels[parts[name]].mean()
        assert abs(share - labels.mean()) < 0.06
    again = stratified_group_split(texts, labels.tolist(), {"validation": 0.1, "test": 0.1}, seed=3)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = stratified_group_split(texts, labels.tolist(), {"validation": 0.1, "test": 0.1}, seed=4)
    assert not np.array_equal(parts["test"], other["test"])


def test_a_class_too_small_to_split_is_an_error():
    texts = [f"t{i}" for i in range(30)] + ["rare one", "rare two"]
    labels = [0] * 30 + [1, 1]
    with pytest.raises(SentimentError, match="class 'negative'.*2 distinct texts"):
        stratified_group_split(
            texts, labels, {"validation": 0.1, "test": 0.1}, seed=0, class_names=["positive", "negative"]
        )
