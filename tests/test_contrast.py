"""The behavioural contrast suite: the shipped file, the loader's validation, and grading."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sentiment.errors import SentimentError
from sentiment.evaluation.contrast import (
    CAPABILITIES,
    DEFAULT_SUITE_PATH,
    ContrastSuite,
    DirectionalCheck,
    InvarianceCheck,
)


def write_suite(tmp_path: Path, records: list[dict | str]) -> Path:
    path = tmp_path / "suite.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def case(id_: str, text: str, label: str, capability: str = "plain_vocabulary", pair: str | None = None) -> dict:
    record = {"id": id_, "text": text, "label": label, "capability": capability}
    if pair is not None:
        record["pair"] = pair
    return record


# --- the shipped suite -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> ContrastSuite:
    return ContrastSuite.load()


def test_the_suite_ships_inside_the_package():
    repo_root = Path(__file__).resolve().parent.parent
    assert DEFAULT_SUITE_PATH == repo_root / "sentiment" / "resources" / "contrast" / "product_reviews.jsonl"
    assert DEFAULT_SUITE_PATH.is_file()


def test_shipped_suite_size_and_capabilities(shipped):
    assert len(shipped.cases) >= 140
    counts = Counter(c.capability for c in shipped.cases)
    assert set(counts) == set(CAPABILITIES)
    assert all(n >= 10 for n in counts.values()), counts
    labels = Counter(c.label for c in shipped.cases)
    assert min(labels.values()) / len(shipped.cases) > 0.4, labels


def test_shipped_suite_pairs_flip_labels(shipped):
    pairs: dict[str, list] = {}
    for c in shipped.cases:
        if c.pair is not None:
            pairs.setdefault(c.pair, []).append(c)
    assert len(pairs) >= 20
    assert all(len(m) == 2 and {m[0].label, m[1].label} == {"positive", "negative"} for m in pairs.values())
    # Pairs should test several capabilities, not just negation.
    assert len({c.capability for m in pairs.values() for c in m}) >= 6


def test_shipped_suite_has_required_case_and_no_contradictions(shipped):
    required = [c for c in shipped.cases if c.text == "not perfect, but pretty good"]
    assert len(required) == 1
    assert required[0].label == "positive"
    assert required[0].capability == "contrast_positive_last"
    by_text: dict[str, set[str]] = {}
    for c in shipped.cases:
        by_text.setdefault(c.text.strip().lower(), set()).add(c.label)
    assert all(len(v) == 1 for v in by_text.values())


def test_shipped_suite_checks(shipped):
    assert len(shipped.invariance) >= 10
    assert {c.capability for c in shipped.invariance} == {"invariance_product", "invariance_name"}
    assert all(len(set(c.texts)) == len(c.texts) >= 2 for c in shipped.invariance)
    assert len(shipped.directional) >= 10
    assert all(c.edited.startswith(c.text) and len(c.edited) > len(c.text) for c in shipped.directional)
    ids = [c.id for c in shipped.cases] + [c.id for c in shipped.invariance] + [c.id for c in shipped.directional]
    assert len(ids) == len(set(ids))
    assert len(shipped.sha256) == 64


# --- validation --------------------------------------------------------------------------

GOOD = case("a", "Love it.", "positive")

BAD_SUITES = {
    "bad_json": ([GOOD, case("b", "Awful.", "negative"), '{"id": "c", "text": "oops"'], r":3: invalid JSON"),
    "not_object": ([GOOD, "[1, 2]"], r":2: expected a JSON object"),
    "unknown_capability": ([GOOD, case("b", "Awful.", "negative", "sarcasm")], r":2: unknown capability 'sarcasm'"),
    "bad_label": ([GOOD, case("b", "Meh.", "neutral")], r":2: label 'neutral' must be"),
    "missing_text": ([GOOD, {"id": "b", "label": "negative", "capability": "plain_vocabulary"}], r"'text'"),
    "empty_text": ([GOOD, case("b", "   ", "negative")], r"'text' must be a non-empty string"),
    "unknown_field": ([GOOD, {**case("b", "Awful.", "negative"), "lable": "x"}], r"unknown field\(s\) lable"),
    "duplicate_id": ([GOOD, case("a", "Awful.", "negative")], r":2: duplicate id 'a'"),
    "pair_one_member": ([GOOD, case("b", "Awful.", "negative", pair="p1")], r"pair 'p1' must have exactly two"),
    "pair_three_members": (
        [
            case("a", "Good.", "positive", pair="p"),
            case("b", "Not good.", "negative", pair="p"),
            case("c", "Bad.", "negative", pair="p"),
        ],
        r"pair 'p' must have exactly two",
    ),
    "pair_same_labels": (
        [case("a", "Good.", "positive", pair="p"), case("b", "Great.", "positive", pair="p")],
        r"pair 'p' \(a, b\) must have different labels",
    ),
    "unknown_check": (
        [GOOD, {"id": "x", "check": "label", "capability": "plain_vocabulary"}],
        r"unknown check 'label'",
    ),
    "check_not_string": (
        [GOOD, {"id": "x", "check": ["invariance"], "capability": "invariance_name"}],
        r"unknown check",
    ),
    "invariance_one_text": (
        [GOOD, {"id": "x", "check": "invariance", "capability": "invariance_name", "texts": ["Emma loves it."]}],
        r"at least two non-empty strings",
    ),
    "invariance_bad_capability": (
        [GOOD, {"id": "x", "check": "invariance", "capability": "negated_positive", "texts": ["a", "b"]}],
        r"unknown capability 'negated_positive'",
    ),
    "directional_not_suffix": (
        [
            GOOD,
            {
                "id": "x",
                "check": "directional",
                "capability": "directional_negative_suffix",
                "text": "Nice.",
                "edited": "Awful.",
            },
        ],
        r"'edited' must be 'text' followed",
    ),
    "no_cases": (
        [{"id": "x", "check": "invariance", "capability": "invariance_name", "texts": ["a", "b"]}],
        r"has no labelled cases",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_SUITES))
def test_invalid_suite_raises(tmp_path, name):
    records, message = BAD_SUITES[name]
    with pytest.raises(SentimentError, match=message):
        ContrastSuite.load(write_suite(tmp_path, records))


def test_missing_file_raises(tmp_path):
    with pytest.raises(SentimentError, match="not found"):
        ContrastSuite.load(tmp_path / "nope.jsonl")


def test_blank_lines_are_skipped_and_line_numbers_count_them(tmp_path):
    path = write_suite(tmp_path, [GOOD, "", "{broken"])
    with pytest.raises(SentimentError, match=r":3: invalid JSON"):
        ContrastSuite.load(path)
    assert len(ContrastSuite.load(write_suite(tmp_path, [GOOD, "", "  "])).cases) == 1


# --- grading -----------------------------------------------------------------------------

# P(positive) for each text: a deterministic stand-in for a model.
P_POS = {
    "good": 0.9,  # expected positive -> pass
    "not good": 0.8,  # expected negative -> fail (pair p1 broken)
    "not bad": 0.7,  # expected positive -> pass
    "bad": 0.1,  # expected negative -> pass (pair p2 consistent)
    "meh, but great": 0.6,  # expected positive -> pass
    "dress ok": 0.7,
    "skirt ok": 0.4,  # invariance fails
    "Emma likes it": 0.8,
    "Aisha likes it": 0.9,  # invariance passes
    "fine": 0.6,
    "fine, but it ripped": 0.2,  # directional passes
    "nice": 0.5,
    "nice, but awful": 0.7,  # directional fails
}

SMALL_SUITE = [
    case("a1", "good", "positive", pair="p1"),
    case("a2", "not good", "negative", "negated_positive", pair="p1"),
    case("a3", "not bad", "positive", "negated_negative", pair="p2"),
    case("a4", "bad", "negative", pair="p2"),
    case("a5", "meh, but great", "positive", "contrast_positive_last"),
    {"id": "i1", "check": "invariance", "capability": "invariance_product", "texts": ["dress ok", "skirt ok"]},
    {"id": "i2", "check": "invariance", "capability": "invariance_name", "texts": ["Emma likes it", "Aisha likes it"]},
    {
        "id": "d1",
        "check": "directional",
        "capability": "directional_negative_suffix",
        "text": "fine",
        "edited": "fine, but it ripped",
    },
    {
        "id": "d2",
        "check": "directional",
        "capability": "directional_negative_suffix",
        "text": "nice",
        "edited": "nice, but awful",
    },
]


class FakeModel:
    """Binary predictor over columns (negative, positive) that counts its calls."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        p = np.array([P_POS[t] for t in texts])
        return np.stack([1 - p, p], axis=1)


@pytest.fixture
def small(tmp_path) -> ContrastSuite:
    return ContrastSuite.load(write_suite(tmp_path, SMALL_SUITE))


def test_load_small_suite(small):
    assert [c.id for c in small.cases] == ["a1", "a2", "a3", "a4", "a5"]
    assert small.invariance[0] == InvarianceCheck("i1", "invariance_product", ("dress ok", "skirt ok"))
    assert small.directional[0] == DirectionalCheck("d1", "directional_negative_suffix", "fine", "fine, but it ripped")
    assert small.all_texts() == list(P_POS)


def test_run_computes_hand_checked_summaries(small):
    model = FakeModel()
    result = small.run(model, ["negative", "positive"])

    assert len(model.calls) == 1
    assert sorted(model.calls[0]) == sorted(P_POS)

    assert result.pass_rate == pytest.approx(4 / 5)
    assert result.by_capability == {
        "plain_vocabulary": {"pass_rate": 1.0, "passed": 2, "total": 2},
        "negated_positive": {"pass_rate": 0.0, "passed": 0, "total": 1},
        "negated_negative": {"pass_rate": 1.0, "passed": 1, "total": 1},
        "contrast_positive_last": {"pass_rate": 1.0, "passed": 1, "total": 1},
    }
    assert result.pair_consistency == pytest.approx(0.5)
    assert result.invariance_pass_rate == pytest.approx(0.5)
    assert result.directional_pass_rate == pytest.approx(0.5)
    assert [f.id for f in result.failures()] == ["a2", "i1", "d2"]

    a2 = result.cases[1]
    assert (a2.expected, a2.predicted, a2.passed, a2.pair) == ("negative", "positive", False, "p1")
    assert a2.p_positive == pytest.approx(0.8)
    d1 = next(c for c in result.checks if c.id == "d1")
    assert d1.texts == ("fine", "fine, but it ripped")
    assert d1.p_positive == pytest.approx((0.6, 0.2))
    assert d1.predicted == ("positive", "negative") and d1.passed


def test_to_dict_is_plain_json(small):
    result = small.run(FakeModel(), ["negative", "positive"])
    d = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert {"pass_rate", "by_capability", "pair_consistency", "invariance", "directional", "cases", "checks"} <= set(d)
    assert d["invariance"] == {"pass_rate": 0.5, "passed": 1, "total": 2}
    assert d["directional"] == {"pass_rate": 0.5, "passed": 1, "total": 2}
    assert d["pair_consistency"] == 0.5
    assert d["cases"][0] == {
        "id": "a1",
        "text": "good",
        "capability": "plain_vocabulary",
        "expected": "positive",
        "predicted": "positive",
        "p_positive": 0.9,
        "passed": True,
        "pair": "p1",
    }
    i1 = d["checks"][0]
    assert i1["id"] == "i1" and i1["check"] == "invariance" and i1["predicted"] == ["positive", "negative"]
    assert result.to_dict() == d  # already plain Python types, no numpy scalars or tuples


def test_column_order_follows_labels(small):
    # Same model, columns swapped: the grading must follow the label names, not positions.
    def swapped(texts: list[str]) -> np.ndarray:
        return FakeModel()(texts)[:, ::-1]

    result = small.run(swapped, ["positive", "negative"])
    assert result.pass_rate == pytest.approx(4 / 5)
    assert result.cases[0].p_positive == pytest.approx(0.9)


def test_ternary_neutral_prediction_fails(small):
    def ternary(texts: list[str]) -> np.ndarray:
        # negative, neutral, positive; "good" is predicted neutral.
        rows = [[0.1, 0.2, 0.7] if t != "good" else [0.1, 0.6, 0.3] for t in texts]
        return np.array(rows)

    result = small.run(ternary, ["negative", "neutral", "positive"])
    good = result.cases[0]
    assert good.predicted == "neutral" and not good.passed
    assert good.p_positive == pytest.approx(0.3)


@pytest.mark.parametrize("labels", [["1", "2", "3", "4", "5"], ["pos", "neg"], ["positive", "neutral"]])
def test_scheme_without_positive_and_negative_raises(small, labels):
    model = FakeModel()
    with pytest.raises(SentimentError, match="binary or ternary label scheme"):
        small.run(model, labels)
    assert model.calls == []  # fail before spending time on predictions


def test_wrong_probability_shape_raises(small):
    with pytest.raises(SentimentError, match="predict_proba returned shape"):
        small.run(lambda texts: np.ones((len(texts), 3)) / 3, ["negative", "positive"])


def test_empty_summaries_are_none(tmp_path):
    suite = ContrastSuite.load(write_suite(tmp_path, [case("a1", "good", "positive")]))
    result = suite.run(FakeModel(), ["negative", "positive"])
    assert result.pass_rate == 1.0
    assert result.pair_consistency is None
    assert result.invariance_pass_rate is None and result.directional_pass_rate is None
    json.dumps(result.to_dict(), allow_nan=False)
