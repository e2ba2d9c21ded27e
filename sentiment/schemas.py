"""The on-disk contracts between stages, as pydantic models: the prepared data's `manifest.json`,
a run's `run.json` and an evaluation's `metrics.json`.

Each is validated when it is written (a stage cannot leave a file that a later stage would
misread) and when it is read (a hand-edited or truncated file fails with one line naming the
file and the field). The files keep the dictionaries the stages built: validation checks them
and returns the typed record, it does not rewrite them, so no number changes on the way.

`python -m sentiment.schemas` prints the JSON Schema of the three files (`docs/schemas.json`,
checked by the tests to be current), generated from these models.

Fractions are in [0, 1]; `null` marks a number that is undefined (ROC-AUC with more than two
classes, a pass rate over zero cases).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentiment.artifacts import read_json, write_json
from sentiment.errors import SentimentError

Json = dict[str, Any]


class _Record(BaseModel):
    """Every listed field is checked; a field this version does not know is an error at the top
    level of a file (a typo, or a file from a newer version) and kept as it is further down."""

    model_config = ConfigDict(extra="allow", frozen=True)


class _TopLevel(_Record):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- manifest.json ------------------------------------------------------------------------


class RowCounts(_Record):
    read: dict[str, int] = Field(description="rows read, per file or split of the source")
    dropped: dict[str, int] = Field(description="rows dropped, by reason (empty text, no class in the scheme, ...)")
    kept: int


class VocabSummary(_Record):
    size: int
    min_freq: int
    max_size: int | None


class PreparedManifest(_TopLevel):
    """`data/prepared/<experiment>/manifest.json`: what `prepare` read, kept, dropped and wrote."""

    format_version: int
    experiment: str
    fingerprint: str = Field(description="the config and source this data was prepared from; train refuses others")
    source: Json = Field(description="kind, name, description and where it came from (package, member, path, sha256)")
    label_scheme: str
    labels: list[str]
    rows: RowCounts
    counts: dict[str, dict[str, int]] = Field(description="examples per split and class")
    token_lengths: Json = Field(description="percentiles of tokens per review, truncated share, max_len")
    sentences: dict[str, Json] | None = Field(
        None, description="per split: total, mean_per_review, single_sentence_share (spaCy's sentencizer)"
    )
    vocab: VocabSummary
    oov_rate_validation: float | None
    seconds: float
    tokenize_seconds: float | None = None
    config: Json = Field(description="the effective experiment config")
    versions: dict[str, str]
    created: str


# ---- run.json -----------------------------------------------------------------------------


class ModelRecord(_Record):
    """`sentiment.model.recurrent.ModelSpec` as saved, plus whether sequences were packed."""

    vocab_size: int
    num_classes: int
    embedding_dim: int
    cell: str
    hidden_size: int
    num_layers: int
    bidirectional: bool
    pooling: str


class MemberRecord(_Record):
    seed: int
    best_epoch: int
    best_validation: Json
    epochs_run: int
    train_seconds: float


class WeightInterpolationRecord(_Record):
    """`training.weight_interpolation`: the fine-tuned weights mixed with the start."""

    alpha: float = Field(gt=0, le=1, description="kept: (1 - alpha) * start + alpha * fine-tuned")
    validation: Json = Field(description="the kept weights' validation scores")
    candidates: list[Json] = Field(description="every alpha tried, with its validation scores")


class EnsembleRecord(_Record):
    members: list[MemberRecord]


class CalibrationRecord(_Record):
    method: str
    temperature: float = Field(gt=0)
    fitted_on: str
    validation: Json = Field(description="NLL and ECE on validation before and after scaling")


class DecisionRecord(_Record):
    threshold: float = Field(gt=0, lt=1, description="the cut on P(positive) that every prediction path applies")
    validation: Json = Field(
        description="the validation score at the argmax, at the cut, and cross-fitted (each of five stratified "
        "folds labelled by the cut fitted on the other four; absent in runs made before it, null where a class "
        "has fewer than two validation reviews)"
    )


class RunRecord(_TopLevel):
    """`runs/<experiment>/run.json`: the architecture, how it was selected, how it was trained.
    The fields with defaults came later; runs written before them still load."""

    experiment: str
    model: ModelRecord
    parameters: int
    trainable_parameters: int | None = None
    labels: list[str] = Field(min_length=2)
    select_metric: str
    seed: int | None = None
    best_epoch: int | None = Field(description="null for an ensemble: each member has its own")
    best_validation: Json = Field(description="validation scores of the selected model (an ensemble's: averaged)")
    epochs_run: int | None = None
    stopped_early: bool | None = None
    train_seconds: float | None = None
    seconds_per_epoch: float | None = None
    pretraining: Json | None = None
    weight_interpolation: WeightInterpolationRecord | None = None
    soup: list[Json] | None = Field(
        None, description="with training.soup: each branch of epoch 2 (seed, validation scores) before averaging"
    )
    ensemble: EnsembleRecord | None = None
    device: str | None = None
    packed_sequences: bool | None = None
    threads: int | None = None
    vectors: Json | None = None
    transfer: Json | None = None
    distillation: Json | None = Field(None, description="with training.teacher: the teacher and its agreement")
    contrast_rule: Json | None = Field(
        None, description="with training.contrast_rule: its share, strength and the sentence examples it grounds"
    )
    training_examples: Json | None = None
    other_validation: Json | None = Field(
        None,
        description="with training.extra_sentences: the kept model on that dataset's validation split, read as "
        "shipped (its temperature and decision threshold)",
    )
    labelled_sentences: Json | None = Field(
        None, description="with training.labelled_sentences: the set, its parts and what was left out of it"
    )
    sentence_validation: Json | None = Field(
        None,
        description="with training.labelled_sentences or training.sentence_validation: the kept model on the "
        "set's held-out sentences, read as shipped (its temperature and decision threshold)",
    )
    title_validation: Json | None = Field(
        None,
        description="with titles in the prepared data (data.title_column): the kept model on the validation "
        "reviews' titles, each alone and labelled by its review, read as shipped",
    )
    prepared: Json | None = None
    versions: dict[str, str] | None = None
    created: str | None = None
    calibration: CalibrationRecord | None = None
    decision: DecisionRecord | None = None


# ---- metrics.json -------------------------------------------------------------------------


class ClassScores(_Record):
    precision: float
    recall: float
    f1: float
    support: int


class ReliabilityBin(_Record):
    lower: float
    upper: float
    confidence: float | None
    accuracy: float | None
    count: int


class LengthBucket(_Record):
    bucket: str
    lower: int
    upper: int
    count: int
    accuracy: float | None
    macro_f1: float | None


class RiskCoveragePoint(_Record):
    coverage: float
    kept: int
    min_confidence: float
    accuracy: float | None


class CalibrationOnTest(_Record):
    """The model's temperature, and its test calibration before scaling."""

    temperature: float = Field(gt=0)
    ece_before: float
    reliability_before: list[ReliabilityBin]


class BaselineSearchRow(_Record):
    """One value of C the baseline tried, scored on the validation split."""

    C: float
    macro_f1: float
    accuracy: float
    converged: bool


class SystemMetrics(_Record):
    """One system (model, baseline, VADER) on the test split: `sentiment.metrics.classification_metrics`
    plus bootstrap intervals, length buckets and the risk-coverage curve; then what only one of
    them has."""

    n_examples: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]] = Field(description="rows true, columns predicted")
    ece: float
    reliability: list[ReliabilityBin]
    ece_if_calibrated: list[float] | None = Field(  # added within schema v2
        None,
        min_length=3,
        max_length=3,
        description="`sentiment.metrics.calibrated_ece`: the ECE a perfectly calibrated system with these "
        "confidences shows on this many examples, mean and 95% range",
    )
    roc_auc: float | None
    pr_auc: float | None
    accuracy_ci: list[float] = Field(min_length=2, max_length=2, description="95% percentile bootstrap")
    macro_f1_ci: list[float] = Field(min_length=2, max_length=2)
    by_length: list[LengthBucket]
    risk_coverage: list[RiskCoveragePoint] | None = None  # added within schema v2
    calibration: CalibrationOnTest | None = Field(None, description="the model's")
    decision_threshold: float | None = Field(None, description="the model's cut on P(positive); null: argmax")
    C: float | None = Field(None, description="the baseline's regularisation, chosen on validation")
    validation: list[BaselineSearchRow] | None = Field(None, description="the baseline's search over C")
    scheme: str | None = Field(None, description="VADER's reading of its compound score")


class PairedDifference(_Record):
    """`sentiment.metrics.paired_bootstrap`: system a (the model) minus system b."""

    metric_a: float
    metric_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    n_resamples: int


class PairedComparison(_Record):
    accuracy: PairedDifference
    macro_f1: PairedDifference


class PassRate(_Record):
    pass_rate: float | None
    passed: int
    total: int


class CaseOutcome(_Record):
    """One labelled contrast case, as one system read it (`sentiment.evaluation.contrast` builds them)."""

    id: str
    text: str
    capability: str
    expected: str
    predicted: str
    p_positive: float
    passed: bool
    pair: str | None = None


class CheckOutcome(_Record):
    """One invariance or directional check, as one system read it; directional: texts = (text, edited)."""

    id: str
    check: str
    capability: str
    texts: tuple[str, ...]
    predicted: tuple[str, ...]
    p_positive: tuple[float, ...]
    passed: bool


class ContrastResult(_Record):
    """`sentiment.evaluation.contrast.ContrastResult.to_dict()`: one system on the contrast suite."""

    suite_sha256: str
    pass_rate: float | None
    by_capability: dict[str, PassRate]
    pair_consistency: float | None
    invariance: PassRate
    directional: PassRate
    cases: list[CaseOutcome]
    checks: list[CheckOutcome]


class ContrastSection(_Record):
    suite: str
    suite_sha256: str
    model: ContrastResult
    baseline: ContrastResult
    vader: ContrastResult | None = None


class DecidingSentence(_Record):
    text: str
    weight: float | None = Field(description="the sentence head's attention weight; null for pooled models")
    probs: dict[str, float]


class ErrorCase(_Record):
    """One confident error: its text, true and predicted label, every system's probabilities, and
    (the model's errors of texts of two or more sentences) the sentence that decided it."""

    text: str
    label: str
    predicted: str
    model_probs: dict[str, float]
    baseline_probs: dict[str, float]
    vader_probs: dict[str, float] | None = None
    deciding_sentence: DecidingSentence | None = None


class SetScores(_Record):
    """One system on one out-of-domain set."""

    n_examples: int
    accuracy: float
    accuracy_ci: list[float] = Field(min_length=2, max_length=2)
    macro_f1: float
    macro_f1_ci: list[float] = Field(min_length=2, max_length=2)


class OutOfDomainSet(_Record):
    name: str
    description: str
    origin: Json = Field(description="{package, member, sha256} or {path, sha256}")
    sentences_read: int
    sentences: int = Field(description="kept after the cut")
    dropped_middle: int = Field(description="sentences with |mean| below the cut")
    cut: float
    positive_share: float
    systems: dict[str, SetScores]
    comparison: dict[str, PairedComparison] = Field(description="model minus baseline / VADER")
    errors: list[ErrorCase]


class OutOfDomainSection(_Record):
    sets: list[OutOfDomainSet]
    skipped: str | None = Field(description="why no set was run")


class DataSection(_Record):
    source: Json
    labels: list[str]
    test_examples: int
    prepared: str


class RunSummary(_Record):
    """What the report says of the run it evaluated (a subset of its run.json)."""

    directory: str
    best_epoch: int | None = None
    select_metric: str | None = None
    best_validation: Json | None = None
    model: Json | None = None
    parameters: int | None = None
    train_seconds: float | None = None
    seconds_per_epoch: float | None = None
    epochs_run: int | None = None
    vectors: Json | None = None
    device: str | None = None
    ensemble: EnsembleRecord | None = None
    weight_interpolation: WeightInterpolationRecord | None = None
    soup: list[Json] | None = None
    sentence_validation: Json | None = None
    title_validation: Json | None = None


class Explanation(_Record):
    text: str
    image: str = Field(description="the PNG of its gate picture, next to metrics.json")


class EvaluationMetrics(_TopLevel):
    """`reports/<experiment>/metrics.json`: everything the report shows, as numbers."""

    schema_version: int
    experiment: str = Field(description="config name, also the report folder name")
    created: str
    data: DataSection
    run: RunSummary
    model: SystemMetrics
    baseline: SystemMetrics
    vader: SystemMetrics | None = Field(description="null: off, or a scheme VADER cannot read")
    comparison: PairedComparison = Field(description="model - baseline")
    comparison_vader: PairedComparison | None = Field(description="model - VADER")
    contrast: ContrastSection | None
    errors: dict[str, list[ErrorCase]]
    out_of_domain: OutOfDomainSection
    explain: list[Explanation]
    versions: dict[str, str]
    seconds: float | None = None

    def system(self, name: str) -> SystemMetrics | None:
        """ "model", "baseline" or "vader" (None when VADER did not run)."""
        return {"model": self.model, "baseline": self.baseline, "vader": self.vader}[name]

    def contrast_result(self, name: str) -> ContrastResult | None:
        """One system's contrast-suite result (None when the suite or that system did not run)."""
        if self.contrast is None:
            return None
        return {"model": self.contrast.model, "baseline": self.contrast.baseline, "vader": self.contrast.vader}[name]


SCHEMAS: dict[str, type[_TopLevel]] = {
    "manifest.json": PreparedManifest,
    "run.json": RunRecord,
    "metrics.json": EvaluationMetrics,
}

R = TypeVar("R", bound=_TopLevel)


def validated(schema: type[R], data: Any, where: str | Path) -> R:
    """`data` as a `schema` record, or one error naming the file, the field and the problem."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(the whole file)"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise SentimentError(f"{where}: {field}: {first['msg']}{more}") from None


def write_record(path: Path, schema: type[R], data: Json) -> R:
    """Check `data` against its schema, then write it (the dictionary itself) atomically; returns
    the checked record."""
    record = validated(schema, data, path)
    write_json(path, data)
    return record


def read_record(path: Path, schema: type[R], what: str = "file") -> tuple[R, Json]:
    """The file as a checked record, and as the dictionary it holds."""
    data = read_json(path, what=what)
    return validated(schema, data, path), data


def json_schemas() -> Json:
    return {name: schema.model_json_schema() for name, schema in SCHEMAS.items()}


if __name__ == "__main__":
    print(json.dumps(json_schemas(), indent=2))
