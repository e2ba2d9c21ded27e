"""Behavioural contrast suite: hand-written reviews where word order and negation matter.

The suite (CheckList, Ribeiro et al. 2020; Contrast Sets, Gardner et al. 2020) shows
what a held-out accuracy hides: whether a model reads "not good", "X, but Y" or
"I expected to hate it, but I love it" correctly. It is for evaluation only; it must
never enter training or model selection, or its numbers stop meaning anything.

The file holds three kinds of records, one JSON object per line:

* labelled cases (no ``check`` field): ``id``, ``text``, ``label``, ``capability``,
  optional ``pair`` shared by exactly two minimal edits with different labels;
* ``"check": "invariance"``: ``texts`` that differ only by a product noun or a name,
  passing when all get the same predicted label;
* ``"check": "directional"``: ``text`` and ``edited`` (``text`` plus a negative clause),
  passing when P(positive) drops.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from sentiment.errors import SentimentError
from sentiment.schemas import CaseOutcome, CheckOutcome

DEFAULT_SUITE_PATH = Path(str(resources.files("sentiment") / "resources" / "contrast" / "product_reviews.jsonl"))
"""Shipped inside the package, so an ordinary `pip install` has it too (a wheel keeps only the package)."""
SUITE_NAME = "sentiment/resources/contrast/product_reviews.jsonl"
"""How reports name the shipped suite, wherever the package is installed."""

CAPABILITIES = (
    "negated_positive",
    "negated_negative",
    "contrast_positive_last",
    "contrast_negative_last",
    "expectation_vs_outcome",
    "change_over_time",
    "others_vs_author",
    "intensifiers_diminishers",
    "plain_vocabulary",
    "robustness",
)
INVARIANCE_CAPABILITIES = ("invariance_product", "invariance_name")
DIRECTIONAL_CAPABILITIES = ("directional_negative_suffix",)
LABELS = ("positive", "negative")

# Allowed keys per record kind; an unknown key is almost always a typo ("lable").
_CASE_KEYS = {"id", "text", "label", "capability", "pair"}
_INVARIANCE_KEYS = {"id", "check", "capability", "texts"}
_DIRECTIONAL_KEYS = {"id", "check", "capability", "text", "edited"}

PredictProba = Callable[[list[str]], Any]


@dataclass(frozen=True)
class ContrastCase:
    id: str
    text: str
    label: str
    capability: str
    pair: str | None = None


@dataclass(frozen=True)
class InvarianceCheck:
    id: str
    capability: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class DirectionalCheck:
    id: str
    capability: str
    text: str
    edited: str


def _rate(passed: int, total: int) -> float | None:
    # None rather than 0.0 or NaN: "nothing to test" is not "all failed", and NaN is not JSON.
    return passed / total if total else None


@dataclass(frozen=True)
class ContrastResult:
    cases: tuple[CaseOutcome, ...]
    checks: tuple[CheckOutcome, ...]
    suite_sha256: str = ""

    @property
    def pass_rate(self) -> float | None:
        return _rate(sum(c.passed for c in self.cases), len(self.cases))

    @property
    def by_capability(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for capability in dict.fromkeys(c.capability for c in self.cases):
            group = [c for c in self.cases if c.capability == capability]
            passed = sum(c.passed for c in group)
            out[capability] = {"pass_rate": _rate(passed, len(group)), "passed": passed, "total": len(group)}
        return out

    @property
    def pair_consistency(self) -> float | None:
        pairs: dict[str, list[bool]] = {}
        for c in self.cases:
            if c.pair is not None:
                pairs.setdefault(c.pair, []).append(c.passed)
        return _rate(sum(all(v) for v in pairs.values()), len(pairs))

    def _check_summary(self, kind: str) -> dict[str, Any]:
        group = [c for c in self.checks if c.check == kind]
        passed = sum(c.passed for c in group)
        return {"pass_rate": _rate(passed, len(group)), "passed": passed, "total": len(group)}

    @property
    def invariance_pass_rate(self) -> float | None:
        return self._check_summary("invariance")["pass_rate"]

    @property
    def directional_pass_rate(self) -> float | None:
        return self._check_summary("directional")["pass_rate"]

    def failures(self) -> list[CaseOutcome | CheckOutcome]:
        """Failed labelled cases first, then failed checks, in file order."""
        return [c for c in self.cases if not c.passed] + [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite_sha256": self.suite_sha256,
            "pass_rate": self.pass_rate,
            "by_capability": self.by_capability,
            "pair_consistency": self.pair_consistency,
            "invariance": self._check_summary("invariance"),
            "directional": self._check_summary("directional"),
            "cases": [c.model_dump() for c in self.cases],
            "checks": [c.model_dump(mode="json") for c in self.checks],
        }


def _str_field(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SentimentError(f"{where}: field {key!r} must be a non-empty string")
    return value


def _parse_record(record: dict[str, Any], where: str) -> ContrastCase | InvarianceCheck | DirectionalCheck:
    kind = record.get("check")
    kinds = {None: _CASE_KEYS, "invariance": _INVARIANCE_KEYS, "directional": _DIRECTIONAL_KEYS}
    allowed = kinds.get(kind) if kind is None or isinstance(kind, str) else None
    if allowed is None:
        raise SentimentError(
            f"{where}: unknown check {kind!r}; expected 'invariance', 'directional' "
            "or no 'check' field for a labelled case"
        )
    unknown = sorted(set(record) - allowed)
    if unknown:
        raise SentimentError(f"{where}: unknown field(s) {', '.join(unknown)}")
    id_ = _str_field(record, "id", where)
    capability = _str_field(record, "capability", where)
    known = {None: CAPABILITIES, "invariance": INVARIANCE_CAPABILITIES, "directional": DIRECTIONAL_CAPABILITIES}[kind]
    if capability not in known:
        raise SentimentError(f"{where}: unknown capability {capability!r}; expected one of {', '.join(known)}")

    if kind == "invariance":
        texts = record.get("texts")
        if not isinstance(texts, list) or len(texts) < 2 or not all(isinstance(t, str) and t.strip() for t in texts):
            raise SentimentError(f"{where}: field 'texts' must be a list of at least two non-empty strings")
        return InvarianceCheck(id_, capability, tuple(texts))
    if kind == "directional":
        text, edited = _str_field(record, "text", where), _str_field(record, "edited", where)
        # The edit must only add a clause, so any drop in P(positive) is due to that clause.
        if not edited.startswith(text) or edited == text:
            raise SentimentError(f"{where}: 'edited' must be 'text' followed by an added clause")
        return DirectionalCheck(id_, capability, text, edited)

    text = _str_field(record, "text", where)
    label = record.get("label")
    if label not in LABELS:
        raise SentimentError(f"{where}: label {label!r} must be 'positive' or 'negative'")
    pair = record.get("pair")
    if pair is not None:
        pair = _str_field(record, "pair", where)
    return ContrastCase(id_, text, label, capability, pair)


@dataclass(frozen=True)
class ContrastSuite:
    cases: tuple[ContrastCase, ...]
    invariance: tuple[InvarianceCheck, ...]
    directional: tuple[DirectionalCheck, ...]
    sha256: str = ""  # of the file's bytes, so a report can name the exact suite version it used

    @classmethod
    def load(cls, path: str | Path = DEFAULT_SUITE_PATH) -> ContrastSuite:
        path = Path(path)
        try:
            raw = path.read_bytes()
            content = raw.decode("utf-8")
        except FileNotFoundError:
            raise SentimentError(f"contrast suite file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SentimentError(f"cannot read contrast suite {path}: {exc}") from None

        records: list[ContrastCase | InvarianceCheck | DirectionalCheck] = []
        seen_ids: set[str] = set()
        for lineno, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SentimentError(f"{where}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise SentimentError(f"{where}: expected a JSON object")
            parsed = _parse_record(record, where)
            if parsed.id in seen_ids:
                raise SentimentError(f"{where}: duplicate id {parsed.id!r}")
            seen_ids.add(parsed.id)
            records.append(parsed)

        cases = tuple(r for r in records if isinstance(r, ContrastCase))
        if not cases:
            raise SentimentError(f"contrast suite {path} has no labelled cases")
        pairs: dict[str, list[ContrastCase]] = {}
        for case in cases:
            if case.pair is not None:
                pairs.setdefault(case.pair, []).append(case)
        for pair_id, members in pairs.items():
            ids = ", ".join(m.id for m in members)
            if len(members) != 2:
                raise SentimentError(
                    f"{path}: pair {pair_id!r} must have exactly two cases, has {len(members)} ({ids})"
                )
            if members[0].label == members[1].label:
                raise SentimentError(f"{path}: pair {pair_id!r} ({ids}) must have different labels")
        return cls(
            cases=cases,
            invariance=tuple(r for r in records if isinstance(r, InvarianceCheck)),
            directional=tuple(r for r in records if isinstance(r, DirectionalCheck)),
            sha256=hashlib.sha256(raw).hexdigest(),
        )

    def all_texts(self) -> list[str]:
        """Every distinct text the suite needs scored, in file order."""
        texts = [c.text for c in self.cases]
        texts += [t for check in self.invariance for t in check.texts]
        texts += [t for check in self.directional for t in (check.text, check.edited)]
        return list(dict.fromkeys(texts))

    def run(
        self,
        predict_proba: PredictProba,
        labels: Sequence[str],
        decide: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> ContrastResult:
        """Score every text in one batch and grade cases and checks.

        ``predict_proba(texts)`` returns an (n, len(labels)) array; the predicted label is
        the argmax column (or what ``decide(probabilities)`` picks, for a classifier with a
        decision threshold), so in a ternary scheme a "neutral" prediction fails a case.
        """
        labels = list(labels)
        if "positive" not in labels or "negative" not in labels:
            raise SentimentError(
                f"the contrast suite needs a binary or ternary label scheme with 'positive' and "
                f"'negative' classes; got {labels}"
            )
        texts = self.all_texts()
        probs = np.asarray(predict_proba(texts), dtype=float)
        if probs.shape != (len(texts), len(labels)):
            raise SentimentError(
                f"predict_proba returned shape {probs.shape}; expected "
                f"{(len(texts), len(labels))} for {len(texts)} texts and labels {labels}"
            )
        row = {t: i for i, t in enumerate(texts)}
        pos = labels.index("positive")
        chosen = probs.argmax(axis=1) if decide is None else np.asarray(decide(probs))

        def predicted(text: str) -> str:
            return labels[int(chosen[row[text]])]

        def p_positive(text: str) -> float:
            return float(probs[row[text], pos])

        cases = tuple(
            CaseOutcome(
                id=c.id,
                text=c.text,
                capability=c.capability,
                expected=c.label,
                predicted=predicted(c.text),
                p_positive=p_positive(c.text),
                passed=predicted(c.text) == c.label,
                pair=c.pair,
            )
            for c in self.cases
        )
        checks = [
            CheckOutcome(
                id=c.id,
                check="invariance",
                capability=c.capability,
                texts=c.texts,
                predicted=tuple(predicted(t) for t in c.texts),
                p_positive=tuple(p_positive(t) for t in c.texts),
                passed=len({predicted(t) for t in c.texts}) == 1,
            )
            for c in self.invariance
        ]
        checks += [
            CheckOutcome(
                id=c.id,
                check="directional",
                capability=c.capability,
                texts=(c.text, c.edited),
                predicted=(predicted(c.text), predicted(c.edited)),
                p_positive=(p_positive(c.text), p_positive(c.edited)),
                passed=p_positive(c.edited) < p_positive(c.text),
            )
            for c in self.directional
        ]
        return ContrastResult(cases, tuple(checks), self.sha256)
