"""Label schemes: star ratings or sentiment words mapped to the classes an experiment predicts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sentiment.errors import SentimentError

SCHEMES: dict[str, list[str]] = {
    "binary": ["negative", "positive"],
    "ternary": ["negative", "neutral", "positive"],
    "stars": ["1", "2", "3", "4", "5"],
}

_WORDS: dict[str, str] = {
    "negative": "negative",
    "neg": "negative",
    "positive": "positive",
    "pos": "positive",
    "neutral": "neutral",
}
# Star ratings per scheme; None means the rating has no class in that scheme and the row is dropped.
_RATINGS: dict[str, dict[int, str | None]] = {
    "binary": {1: "negative", 2: "negative", 3: None, 4: "positive", 5: "positive"},
    "ternary": {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"},
    "stars": {r: str(r) for r in range(1, 6)},
}


def scheme_labels(scheme: str) -> list[str]:
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise SentimentError(f"unknown label scheme {scheme!r}; choose one of {', '.join(SCHEMES)}") from None


def map_labels(values: Sequence[Any], scheme: str) -> tuple[list[int | None], Counter]:
    """Class indices for raw label values; None for rows the scheme drops (3 stars in `binary`).

    Returns the indices and a count of dropped rows by raw value. Values that fit no rule
    (a 7-star rating, "meh", 0/1 without names) are an error that names them.
    """
    classes = scheme_labels(scheme)
    position = {name: i for i, name in enumerate(classes)}
    indices: list[int | None] = []
    dropped: Counter = Counter()
    unknown: Counter = Counter()
    for value in values:
        name, known = _class_name(value, scheme)
        if not known:
            unknown[repr(value)] += 1
            indices.append(None)
        elif name is None:
            dropped[str(value)] += 1
            indices.append(None)
        else:
            indices.append(position[name])
    if unknown:
        listed = ", ".join(f"{value} ({count} rows)" for value, count in unknown.most_common(5))
        raise SentimentError(
            f"unknown label values for the {scheme} scheme: {listed}; "
            "expected star ratings 1-5 or positive/negative" + ("/neutral" if scheme != "binary" else "")
        )
    return indices, dropped


def _class_name(value: Any, scheme: str) -> tuple[str | None, bool]:
    """(class name or None to drop, whether the value is understood at all)."""
    rating = _as_rating(value)
    if rating is not None:
        return _RATINGS[scheme][rating], True
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        word = _WORDS[value.strip().lower()]
        if scheme == "stars":
            return None, False
        if word == "neutral" and scheme == "binary":
            return None, True
        return word, True
    return None, False


def _as_rating(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number.is_integer() and 1 <= number <= 5:
        return int(number)
    return None
