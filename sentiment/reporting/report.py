"""The evaluation report: metrics.json rendered as PNG plots, Markdown and one self-contained HTML file.

``sentiment.evaluation.evaluate`` computes the numbers and calls :func:`write_report`;
:func:`summary_table` is the terminal version of the headline. What the report says is one
list of sections (:func:`report_sections`): headline, confusion matrices, calibration, contrast
suite, then the detail (per-class scores, length buckets, every failing contrast case, the most
confident errors, any explanations) and how the run was made. `sentiment.reporting.document`
lays those sections out as Markdown and as HTML, so the two always show the same numbers in the
same order.

Everything here reads `metrics.json` as its typed record, the pydantic model
`sentiment.schemas.EvaluationMetrics` (its JSON Schema: `docs/schemas.json`); the entry points
also take the dictionary and check it first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sentiment.artifacts import write_bytes_atomic
from sentiment.reporting import plots as figures
from sentiment.reporting.document import (
    DASH,
    Block,
    Cell,
    Image,
    Paragraph,
    Section,
    Table,
    figure_with_interval,
    html_document,
    markdown_document,
    text_table,
)
from sentiment.schemas import (
    CaseOutcome,
    CheckOutcome,
    ContrastResult,
    EnsembleRecord,
    ErrorCase,
    EvaluationMetrics,
    Json,
    PairedDifference,
    PassRate,
    RunSummary,
    SystemMetrics,
    validated,
)

Metrics = EvaluationMetrics | Json
"""What the entry points take: the record, or the dictionary of a metrics.json (checked first)."""

SYSTEMS = ("model", "baseline", "vader")
SYSTEM_NAMES = {"model": "model", "baseline": "baseline", "vader": "VADER"}
UNSCALED = "model before temperature scaling"
PLOT_FILES = {
    "confusion_matrices": "confusion_matrices.png",
    "reliability": "reliability.png",
    "contrast_by_capability": "contrast_by_capability.png",
    "by_length": "by_length.png",
    "risk_coverage": "risk_coverage.png",
}
CONTRAST_TARGET = 0.9


# --------------------------------------------------------------------------- #
# Plots
# --------------------------------------------------------------------------- #


def write_plots(metrics: Metrics, directory: str | Path) -> dict[str, str]:
    """Write the report's PNGs into ``directory``; returns {plot key: file name} for those with data."""
    m = _record(metrics)
    directory = Path(directory)
    systems = _systems(m)
    written: dict[str, str] = {}

    def path(key: str) -> Path:
        written[key] = PLOT_FILES[key]
        return directory / PLOT_FILES[key]

    name = SYSTEM_NAMES.get  # the figures' legends and titles use the display names ("VADER")
    matrices = {name(s, s): part.confusion_matrix for s, part in systems.items() if part.confusion_matrix}
    if matrices:
        figures.plot_confusion_matrices(matrices, m.data.labels, path("confusion_matrices"))
    bins = {name(s, s): part.reliability for s, part in systems.items() if any(b.count for b in part.reliability)}
    eces: dict[str, float | None] = {name(s, s): part.ece for s, part in systems.items()}
    scaling = m.model.calibration
    if bins and scaling is not None and scaling.temperature != 1.0:
        bins[UNSCALED] = scaling.reliability_before
        eces[UNSCALED] = scaling.ece_before
    if bins:
        figures.plot_reliability(bins, eces, path("reliability"))
    contrast = _contrast_systems(m)
    if contrast:
        totals = {c: _capability_total(contrast, c) for c in _capability_order(contrast)}
        rates = {name(s, s): {c: _capability_rate(result, c) for c in totals} for s, result in contrast.items()}
        figures.plot_contrast_by_capability(rates, totals, path("contrast_by_capability"), CONTRAST_TARGET)
    curves = {name(s, s): part.risk_coverage for s, part in systems.items() if part.risk_coverage}
    if curves:
        figures.plot_risk_coverage(curves, path("risk_coverage"))
    by_length = {name(s, s): part.by_length for s, part in systems.items() if part.by_length}
    if by_length:
        figures.plot_by_length(by_length, path("by_length"))
    return written


# --------------------------------------------------------------------------- #
# What the report says: sections of paragraphs, tables and images
# --------------------------------------------------------------------------- #


def report_sections(metrics: Metrics, plots: dict[str, str]) -> list[Section]:
    """Everything the report says, in reading order; the renderers only lay it out."""
    m = _record(metrics)
    sections = [
        _headline(m),
        _confusion(plots),
        _calibration(m, plots),
        _contrast(m, plots),
        _out_of_domain(m),
        Section(
            "in-depth",
            "In depth",
            [
                Paragraph(
                    "Per-class scores, scores by review length, every failing contrast case and check, "
                    "and the errors each system is most sure of.",
                    "note",
                )
            ],
        ),
        _per_class(m),
        _by_length(m, plots),
        *_contrast_failures(m),
        _confident_errors(m),
        _out_of_domain_errors(m),
    ]
    if m.explain:
        sections.append(_explain(m))
    sections.append(_provenance(m))
    return [s for s in sections if s is not None]


def _headline(m: EvaluationMetrics) -> Section:
    systems = _systems(m)
    against = {"baseline": m.comparison, "vader": m.comparison_vader}
    rows: list[list[Cell]] = []
    for key, name in (("accuracy", "Accuracy"), ("macro_f1", "Macro-F1")):
        rows.append(
            [Cell(name)]
            + [figure_with_interval(getattr(part, key), getattr(part, f"{key}_ci")) for part in systems.values()]
        )
        for other, paired in against.items():
            if paired is not None:
                rows.append(
                    [
                        Cell(f"model − {SYSTEM_NAMES[other]}", "paired bootstrap"),
                        _difference_cell(getattr(paired, key), len(systems)),
                    ]
                )
    for key, name in (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("ece", "ECE (lower is better)")):
        values = [getattr(part, key) for part in systems.values()]
        if any(v is not None for v in values):
            rows.append([Cell(name)] + [Cell(_num(v)) for v in values])
    contrast = _contrast_systems(m)
    if contrast:
        rows.append([Cell("Contrast pass rate")] + [_rate_cell(_case_summary(contrast.get(s))) for s in systems])
    table = Table(["", *_names(systems)], rows, numeric=frozenset(range(1, len(systems) + 1)))
    note = (
        f"{m.data.test_examples} test examples. Intervals are 95% percentile bootstrap intervals "
        f"({m.comparison.accuracy.n_resamples} resamples); a difference is significant when its interval excludes zero."
    )
    if contrast:
        note += " Pass rate: share of labelled contrast cases predicted correctly."
    if "vader" in systems:
        note += (
            " VADER is a rule-based lexicon (Hutto & Gilbert 2014) that needs no training; "
            "its probabilities are a reading of its compound score, not calibrated."
        )
    blocks: list[Block] = [Paragraph(verdict(m), "verdict"), table, Paragraph(note, "note")]
    return Section("headline", "Model vs baseline" + (" and VADER" if "vader" in systems else ""), blocks)


def verdict(metrics: Metrics) -> str:
    """One sentence: who wins on macro-F1 and by how much, then the contrast suite and calibration."""
    m = _record(metrics)
    paired = m.comparison.macro_f1
    d = paired.difference
    evidence = f"95% CI {_signed(paired.ci_low)} to {_signed(paired.ci_high)}, {_p(paired.p_value)}"
    model_leads = paired.significant and d > 0
    if paired.significant:
        winner, loser = ("model", "baseline") if d > 0 else ("baseline", "model")
        sentence = f"The {winner} beats the {loser} on macro-F1 by {abs(d):.3f} ({evidence}, significant)"
    else:
        sentence = (
            f"The model and the baseline do not differ significantly on macro-F1 "
            f"(model − baseline {_signed(d)}, {evidence})"
        )
    clauses = []
    contrast = _contrast_systems(m)
    if "model" in contrast and "baseline" in contrast:
        vader = f" (VADER {_pct(contrast['vader'].pass_rate)})" if "vader" in contrast else ""
        clauses.append(
            f"passes {_pct(contrast['model'].pass_rate)} of contrast cases against "
            f"{_pct(contrast['baseline'].pass_rate)}{vader}"
        )
    clauses.append(f"has an ECE of {_num(m.model.ece)} against {_num(m.baseline.ece)}")
    joined = " and ".join(clauses)
    sentence += f", {joined}" if model_leads else f"; the model {joined}"
    return sentence + "."


def _difference_cell(paired: PairedDifference, span: int) -> Cell:
    d, significant = paired.difference, paired.significant
    text = f"{_signed(d)}, {'significant' if significant else 'not significant'}"
    note = f"CI {_signed(paired.ci_low)} to {_signed(paired.ci_high)}, {_p(paired.p_value)}"
    tone = ("good" if d > 0 else "bad") if significant else ""
    return Cell(text, note, tone, span)


def _confusion(plots: dict[str, str]) -> Section:
    section = Section("confusion", "Confusion matrices")
    if "confusion_matrices" in plots:
        section.blocks.append(
            Image(
                plots["confusion_matrices"],
                "Confusion matrices of model and baseline: rows are true classes, columns predicted classes",
            )
        )
        section.blocks.append(
            Paragraph(
                "Rows: true class; columns: predicted class. Each cell shows the count and "
                "its share of the true class (the diagonal is per-class recall).",
                "note",
            )
        )
    else:
        section.blocks.append(Paragraph("No confusion matrices in the metrics.", "note"))
    return section


def _calibration(m: EvaluationMetrics, plots: dict[str, str]) -> Section:
    section = Section("calibration", "Calibration")
    if "reliability" in plots:
        section.blocks.append(Image(plots["reliability"], "Reliability diagram of model and baseline"))
    systems = _systems(m)
    eces = ", ".join(f"{SYSTEM_NAMES[s]} {_num(part.ece)}" for s, part in systems.items())
    scaling = m.model.calibration
    scaled = ""
    if scaling is not None and scaling.temperature != 1.0:
        scaled = (
            f" The model's probabilities are temperature-scaled (T = {scaling.temperature:.3f}, fitted on the "
            f"validation split after model selection; it changes no prediction): its ECE was "
            f"{_num(scaling.ece_before)} before scaling."
        )
    threshold = m.model.decision_threshold
    if threshold is not None:
        scaled += (
            f" The model labels a review {m.data.labels[1]} from a probability of {threshold:.2f}, a "
            "threshold fitted on the validation split (training.decision_threshold), not from 0.5."
        )
    noise = m.model.ece_if_calibrated
    if noise is not None:
        scaled += (
            f" On {m.model.n_examples:,} reviews, a perfectly calibrated system with the model's confidences "
            f"would itself show an ECE of {_num(noise[0])} on average ({_num(noise[1])} to {_num(noise[2])} in "
            "95% of simulated draws), since which reviews it gets right is partly chance: an ECE in that "
            "range cannot be told from perfect calibration on this split."
        )
    section.blocks.append(
        Paragraph(
            f"Expected calibration error over {len(m.model.reliability)} equal-width confidence bins: {eces}.{scaled} "
            "Points below the diagonal mean the system is more confident than it is accurate.",
            "note",
        )
    )
    curves = {s: part.risk_coverage for s, part in systems.items() if part.risk_coverage}
    if curves:
        if "risk_coverage" in plots:
            section.blocks.append(
                Image(
                    plots["risk_coverage"],
                    "Accuracy against coverage when the least confident predictions are left to a person",
                )
            )
        first = next(iter(curves.values()))
        rows = [
            [Cell(f"{point.coverage:.0%}")]
            + [Cell(_num(curve[i].accuracy), f"p ≥ {_num(curve[i].min_confidence)}") for curve in curves.values()]
            for i, point in enumerate(first)
        ]
        section.blocks.append(
            Table(
                ["coverage", *_names(curves)],
                rows,
                frozenset(range(1, len(curves) + 1)),
                caption="Risk and coverage: accuracy on the most confident share of the test split",
            )
        )
        section.blocks.append(
            Paragraph(
                "Keep only the predictions at or above a confidence and leave the rest to a person: each row is the "
                "share kept, the accuracy on it, and the confidence it takes (`score --min-confidence`).",
                "note",
            )
        )
    return section


def _contrast(m: EvaluationMetrics, plots: dict[str, str]) -> Section:
    section = Section("contrast", "Contrast suite")
    contrast = _contrast_systems(m)
    if not contrast:
        section.blocks.append(
            Paragraph(
                "Not run: the contrast suite needs 'positive' and 'negative' classes, which this label scheme lacks.",
                "note",
            )
        )
        return section
    results = contrast.values()
    numeric = frozenset(range(1, len(contrast) + 1))
    summary = [
        [Cell("Labelled cases")] + [_rate_cell(_case_summary(result)) for result in results],
        [Cell("Pair consistency", "both edits of a minimal pair right")]
        + [Cell(_pct(result.pair_consistency)) for result in results],
        [Cell("Invariance", "same label when a product or name changes")]
        + [_rate_cell(result.invariance) for result in results],
        [Cell("Directional", "P(positive) drops after a negative clause")]
        + [_rate_cell(result.directional) for result in results],
    ]
    section.blocks.append(Table(["", *_names(contrast)], summary, numeric))
    rows = []
    for capability in _capability_order(contrast):
        cells = []
        for result in results:
            rate = _capability_rate(result, capability)
            tone = "" if rate is None else ("good" if rate >= CONTRAST_TARGET else "bad")
            cells.append(Cell(_pct(rate), tone=tone))
        rows.append([Cell(_capability_name(capability)), Cell(str(_capability_total(contrast, capability))), *cells])
    section.blocks.append(
        Table(
            ["capability", "n", *_names(contrast)],
            rows,
            frozenset(range(1, len(contrast) + 2)),
            caption=f"Pass rate by capability, weakest first (target {_pct(CONTRAST_TARGET, 0)})",
        )
    )
    if "contrast_by_capability" in plots:
        section.blocks.append(Image(plots["contrast_by_capability"], "Contrast suite pass rate by capability"))
    return section


def _per_class(m: EvaluationMetrics) -> Section:
    rows = []
    for label in m.data.labels:
        for s, part in _systems(m).items():
            scores = part.per_class.get(label)
            rows.append(
                [Cell(label), Cell(s)]
                + [Cell(_num(None if scores is None else getattr(scores, k))) for k in ("precision", "recall", "f1")]
                + [Cell(DASH if scores is None else str(scores.support))]
            )
    table = Table(["class", "system", "precision", "recall", "F1", "n"], rows, frozenset({2, 3, 4, 5}))
    return Section("per-class", "Per-class scores", [table], level=3)


def _by_length(m: EvaluationMetrics, plots: dict[str, str]) -> Section | None:
    systems = {s: part for s, part in _systems(m).items() if part.by_length}
    if not systems:
        return None
    by_bucket = {s: {row.bucket: row for row in part.by_length} for s, part in systems.items()}
    rows = []
    for row in next(iter(systems.values())).by_length:
        for s in systems:
            scores = by_bucket[s].get(row.bucket)
            rows.append(
                [
                    Cell(row.bucket),
                    Cell(str(row.count)),
                    Cell(s),
                    Cell(_num(None if scores is None else scores.accuracy)),
                    Cell(_num(None if scores is None else scores.macro_f1)),
                ]
            )
    table = Table(["tokens", "n", "system", "accuracy", "macro-F1"], rows, frozenset({1, 3, 4}))
    blocks: list[Block] = [table]
    if "by_length" in plots:
        blocks.append(Image(plots["by_length"], "Accuracy and macro-F1 by review length"))
    return Section("by-length", "Scores by review length", blocks, level=3)


def _contrast_failures(m: EvaluationMetrics) -> list[Section]:
    contrast = _contrast_systems(m)
    if not contrast:
        return []
    systems = list(contrast)
    cases = {s: {case.id: case for case in result.cases} for s, result in contrast.items()}

    def case_reading(c: CaseOutcome) -> tuple[str, str]:
        return f"{_mark(c.passed)} {c.predicted}", f"P(positive) {_num(c.p_positive)}"

    rows = []
    for case_id in _failing_ids(cases):
        case = next(cases[s][case_id] for s in systems if case_id in cases[s])
        rows.append(
            [
                Cell(case.text, f"{case.id} · {_capability_name(case.capability)}"),
                Cell(case.expected),
                *(_outcome_cell(cases[s].get(case_id), case_reading) for s in systems),
            ]
        )
    counts = ", ".join(
        f"{sum(not c.passed for c in cases[s].values())} of {len(cases[s])} fail for the {s}" for s in systems
    )
    case_section = Section("failing-cases", "Failing contrast cases", level=3)
    case_section.blocks.append(
        Paragraph(f"Every labelled case that at least one system gets wrong ({counts}).", "note")
    )
    if rows:
        case_section.blocks.append(
            Table(["review", "expected", *_names(systems)], rows, wide=frozenset({0}), stack=True)
        )

    def check_reading(c: CheckOutcome) -> tuple[str, str]:
        return f"{_mark(c.passed)} {'passed' if c.passed else 'failed'}", ""

    # One header row per check (its verdict per system), then one row per text with each system's reading.
    checks = {s: {c.id: c for c in result.checks} for s, result in contrast.items()}
    rows, groups = [], set()
    for check_id in _failing_ids(checks):
        check = next(checks[s][check_id] for s in systems if check_id in checks[s])
        groups.add(len(rows))
        rows.append(
            [Cell(check_id, _capability_name(check.capability))]
            + [_outcome_cell(checks[s].get(check_id), check_reading) for s in systems]
        )
        for i, text in enumerate(check.texts):
            readings = [checks[s].get(check_id) for s in systems]
            rows.append(
                [Cell(text)]
                + [Cell(DASH if r is None else f"{r.predicted[i]} {_num(r.p_positive[i])}") for r in readings]
            )
    check_section = Section("failing-checks", "Failing invariance and directional checks", level=3)
    check_section.blocks.append(
        Paragraph(
            "Invariance: every text should get the same label. Directional: P(positive) should drop from the first "
            "text to the second. Under each check, each system's predicted label and P(positive) per text.",
            "note",
        )
    )
    if rows:
        check_section.blocks.append(
            Table(["text", *_names(systems)], rows, wide=frozenset({0}), stack=True, groups=frozenset(groups))
        )
    else:
        check_section.blocks.append(Paragraph("No check fails for either system.", "note"))
    return [case_section, check_section]


Outcome = TypeVar("Outcome", CaseOutcome, CheckOutcome)


def _failing_ids(outcomes: dict[str, dict[str, Outcome]]) -> list[str]:
    """Ids, in suite order, of the cases or checks that fail for at least one system."""
    ids = dict.fromkeys(i for by_id in outcomes.values() for i in by_id)
    return [i for i in ids if any(i in by_id and not by_id[i].passed for by_id in outcomes.values())]


def _outcome_cell(outcome: Outcome | None, describe: Callable[[Outcome], tuple[str, str]]) -> Cell:
    if outcome is None:
        return Cell(DASH)
    text, note = describe(outcome)
    return Cell(text, note, "good" if outcome.passed else "bad")


def _confident_errors(m: EvaluationMetrics) -> Section:
    section = Section("errors", "Most confident wrong predictions", level=3)
    section.blocks.append(
        Paragraph(
            "Test reviews each system got wrong with the highest confidence. Each system's cell shows its top label "
            "with its probability and, when that label is wrong, the probability it gave the true label. Under the "
            "model's errors, the sentence that decided its prediction.",
            "note",
        )
    )
    systems = list(_systems(m))
    for owner in systems:
        table = _error_table(m.errors.get(owner, []), systems, f"The {SYSTEM_NAMES[owner]}'s errors")
        if table is not None:
            section.blocks.append(table)
        elif owner in m.errors:
            section.blocks.append(Paragraph(f"The {SYSTEM_NAMES[owner]} makes no errors on the test split.", "note"))
    return section


def _error_table(
    errors: list[ErrorCase], systems: list[str], caption: str, first_column: str = "review"
) -> Table | None:
    """One row per error: the text, the true label, each system's top label and probability."""
    rows = []
    for error in errors:
        cells = []
        for s in systems:
            probs = {"model": error.model_probs, "baseline": error.baseline_probs, "vader": error.vader_probs}[s]
            if not probs:
                cells.append(Cell(DASH))
                continue
            top = max(probs, key=lambda name: probs[name])
            right = top == error.label
            true_p = "" if right else f"p({error.label}) {_num(probs.get(error.label))}"
            cells.append(Cell(f"{_mark(right)} {top} {_num(probs[top])}", true_p, "good" if right else "bad"))
        decider = error.deciding_sentence
        note = ""
        if decider is not None:
            weight = f", weight {decider.weight:.2f}" if decider.weight is not None else ""
            note = (
                f"decided by: “{decider.text}” (p({error.predicted}) "
                f"{_num(decider.probs.get(error.predicted))}{weight})"
            )
        rows.append([Cell(error.text, note), Cell(error.label), *cells])
    if not rows:
        return None
    return Table([first_column, "true", *_names(systems)], rows, wide=frozenset({0}), caption=caption, stack=True)


def _out_of_domain(m: EvaluationMetrics) -> Section:
    section = Section("out-of-domain", "Out of domain")
    sets = m.out_of_domain.sets
    if not sets:
        section.blocks.append(
            Paragraph(f"Out-of-domain sentence sets: {m.out_of_domain.skipped or 'none configured'}.", "note")
        )
        return section
    systems = [s for s in SYSTEMS if s in sets[0].systems]
    rows: list[list[Cell]] = []
    groups: set[int] = set()
    for item in sets:
        groups.add(len(rows))
        rows.append(
            [
                Cell(
                    item.name,
                    f"{item.sentences:,} sentences, {_pct(item.positive_share, 0)} positive",
                    span=len(systems) + 1,
                )
            ]
        )
        for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
            rows.append(
                [Cell(name)]
                + [
                    figure_with_interval(getattr(item.systems[s], key), getattr(item.systems[s], f"{key}_ci"))
                    for s in systems
                ]
            )
        for other, paired in item.comparison.items():
            rows.append(
                [
                    Cell(f"model − {SYSTEM_NAMES[other]}", "accuracy, paired bootstrap"),
                    _difference_cell(paired.accuracy, len(systems)),
                ]
            )
    section.blocks.append(
        Table(["", *_names(systems)], rows, frozenset(range(1, len(systems) + 1)), groups=frozenset(groups))
    )
    first = sets[0]
    section.blocks.append(
        Paragraph(
            "Sentences from outside the training data, each rated by at least 20 people on -4..+4 (Hutto & Gilbert "
            f"2014). A mean of {first.cut:g} or more counts as positive, -{first.cut:g} or less as negative; "
            "the sentences in between are dropped ("
            + ", ".join(f"{item.name}: {item.dropped_middle:,} of {item.sentences_read:,}" for item in sets)
            + "). These sets only report: they never train, select or tune a model.",
            "note",
        )
    )
    return section


def _out_of_domain_errors(m: EvaluationMetrics) -> Section | None:
    sets = m.out_of_domain.sets
    if not sets:
        return None
    section = Section("out-of-domain-errors", "Out of domain: the model's most confident errors", level=3)
    systems = [s for s in SYSTEMS if s in sets[0].systems]
    for item in sets:
        table = _error_table(item.errors, systems, item.name, first_column="sentence")
        section.blocks.append(
            table if table is not None else Paragraph(f"The model makes no errors on {item.name}.", "note")
        )
    return section


def _explain(m: EvaluationMetrics) -> Section:
    section = Section("explain", "Explanations", level=3)
    for item in m.explain:
        section.blocks.append(Image(item.image, f"Explanation for: {item.text}", caption=item.text))
    return section


def _provenance(m: EvaluationMetrics) -> Section:
    run, data, baseline, contrast = m.run, m.data, m.baseline, m.contrast
    vectors = run.vectors
    rows = [
        ("Experiment", m.experiment),
        ("Evaluated", m.created),
        ("Data source", data.source),
        ("Prepared data", data.prepared),
        ("Labels", ", ".join(data.labels)),
        ("Test examples", data.test_examples),
        ("Run", run.directory),
        ("Model", run.model),
        ("Parameters", f"{run.parameters:,}" if run.parameters is not None else None),
        (
            "Word vectors",
            f"{vectors.get('vectors')} ({_pct(vectors.get('coverage'))} of the vocabulary covered)"
            if vectors
            else "none (embeddings trained from scratch)"
            if "vectors" in run.model_fields_set
            else None,
        ),
        ("Selected epoch", _selected_epoch(run)),
        ("Ensemble", _ensemble_summary(run.ensemble, run.select_metric)),
        ("Best validation", run.best_validation),
        ("Held-out sentences", _sentence_validation(run.sentence_validation)),
        ("Validation titles", _title_validation(run.title_validation)),
        ("Training time", _duration(run.train_seconds)),
        ("Device", run.device),
        (
            "Baseline",
            f"bag of words, C = {_plain(baseline.C)} chosen on validation macro-F1" if baseline.C is not None else None,
        ),
        ("Contrast suite", f"{contrast.suite}\nsha256 {contrast.suite_sha256}" if contrast else None),
        (
            "VADER",
            f"vaderSentiment {m.versions.get('vaderSentiment', '')}, {m.vader.scheme} reading of the compound score"
            if m.vader
            else None,
        ),
        (
            "Out-of-domain sets",
            "\n".join(
                f"{item.name}: {item.description}; "
                + (
                    f"{item.origin['package']} {item.origin['member']}"
                    if "package" in item.origin
                    else item.origin.get("path", "")
                )
                + f", sha256 {item.origin['sha256'][:12]}..."
                for item in m.out_of_domain.sets
            )
            or None,
        ),
        ("Versions", m.versions),
    ]
    blocks: list[Block] = [
        Table(["", ""], [[Cell(k), Cell(_plain(v))] for k, v in rows if v not in (None, "", {})], wide=frozenset({1}))
    ]
    if baseline.validation:
        grid = [
            [
                Cell(_plain(row.C)),
                Cell(_num(row.macro_f1)),
                Cell(_num(row.accuracy)),
                Cell("yes" if row.converged else "no", tone="" if row.converged else "bad"),
            ]
            for row in baseline.validation
        ]
        blocks.append(
            Table(
                ["C", "macro-F1", "accuracy", "converged"],
                grid,
                frozenset({1, 2}),
                caption="Baseline regularisation search (validation split)",
            )
        )
    return Section("how", "How this was made", blocks, level=3)


# --------------------------------------------------------------------------- #
# Markdown, HTML, terminal
# --------------------------------------------------------------------------- #


def render_markdown(metrics: Metrics, plots: dict[str, str]) -> str:
    """The report as GitHub-flavoured Markdown; images are linked by file name, next to report.md."""
    m = _record(metrics)
    return markdown_document(f"Evaluation report: {m.experiment}", _subtitle(m), report_sections(m, plots))


def render_html(metrics: Metrics, plots: dict[str, str], directory: str | Path) -> str:
    """The report as one self-contained HTML page: CSS inline, every PNG from ``directory`` inlined."""
    m = _record(metrics)
    return html_document(f"Evaluation report: {m.experiment}", _subtitle(m), report_sections(m, plots), directory)


def write_report(metrics: Metrics, directory: str | Path) -> dict[str, Path]:
    """Plots, report.md and report.html in ``directory`` (each written atomically); returns their paths."""
    metrics = _record(metrics)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plots = write_plots(metrics, directory)
    paths = {"markdown": directory / "report.md", "html": directory / "report.html"}
    write_bytes_atomic(paths["markdown"], render_markdown(metrics, plots).encode("utf-8"))
    write_bytes_atomic(paths["html"], render_html(metrics, plots, directory).encode("utf-8"))
    return {**paths, **{key: directory / name for key, name in plots.items()}}


def summary_table(metrics: Metrics) -> str:
    """The headline for a terminal: metric | model | baseline, then the macro-F1 verdict line."""
    m = _record(metrics)
    systems = _systems(m)

    def with_ci(part: SystemMetrics, key: str) -> str:
        ci = getattr(part, f"{key}_ci")
        return f"{_num(getattr(part, key), none='n/a')} [{ci[0]:.3f}, {ci[1]:.3f}]"

    contrast = _contrast_systems(m)
    rows = [
        ["accuracy (95% CI)", *(with_ci(part, "accuracy") for part in systems.values())],
        ["macro-F1 (95% CI)", *(with_ci(part, "macro_f1") for part in systems.values())],
        ["ROC-AUC", *(_num(part.roc_auc, none="n/a") for part in systems.values())],
        ["ECE", *(_num(part.ece, none="n/a") for part in systems.values())],
        ["contrast pass rate", *(_pct(_pass_rate(contrast.get(s)), none="n/a") for s in systems)],
    ]
    table = Table(["metric", *_names(systems)], [[Cell(text) for text in row] for row in rows])
    lines = [text_table(table)]
    for item in m.out_of_domain.sets:
        scores = " | ".join(f"{SYSTEM_NAMES[s]} {item.systems[s].accuracy:.3f}" for s in SYSTEMS if s in item.systems)
        lines.append(f"out of domain, {item.name} ({item.sentences:,} sentences), accuracy: {scores}")
    paired = m.comparison.macro_f1
    d = paired.difference
    finding = f"significant, {'model' if d > 0 else 'baseline'} better" if paired.significant else "not significant"
    lines.append(
        f"macro-F1 model - baseline: {_signed(d)} [{_signed(paired.ci_low)}, "
        f"{_signed(paired.ci_high)}], {_p(paired.p_value)}: {finding}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _record(metrics: Metrics) -> EvaluationMetrics:
    return metrics if isinstance(metrics, EvaluationMetrics) else validated(EvaluationMetrics, metrics, "metrics")


def _systems(m: EvaluationMetrics) -> dict[str, SystemMetrics]:
    """The systems that were evaluated, in the report's order (VADER is absent for some schemes)."""
    return {s: part for s in SYSTEMS if (part := m.system(s)) is not None}


def _names(systems: Iterable[str]) -> list[str]:
    return [SYSTEM_NAMES.get(s, s) for s in systems]


def _contrast_systems(m: EvaluationMetrics) -> dict[str, ContrastResult]:
    return {s: result for s in SYSTEMS if (result := m.contrast_result(s)) is not None and result.by_capability}


def _capability_rate(result: ContrastResult, capability: str) -> float | None:
    rate = result.by_capability.get(capability)
    return None if rate is None else rate.pass_rate


def _capability_order(contrast: dict[str, ContrastResult]) -> list[str]:
    """Weakest capability for the model (else the first system) first, so the problems lead."""
    first = contrast.get("model") or next(iter(contrast.values()))
    capabilities = list(dict.fromkeys(c for result in contrast.values() for c in result.by_capability))

    def rate(capability: str) -> float:
        value = _capability_rate(first, capability)
        return 2.0 if value is None else value

    return sorted(capabilities, key=rate)  # stable: ties keep the suite's order


def _capability_total(contrast: dict[str, ContrastResult], capability: str) -> int:
    return max(
        (rate.total for result in contrast.values() if (rate := result.by_capability.get(capability)) is not None),
        default=0,
    )


def _pass_rate(result: ContrastResult | None) -> float | None:
    return None if result is None else result.pass_rate


def _case_summary(result: ContrastResult | None) -> PassRate | None:
    if result is None:
        return None
    return PassRate(pass_rate=result.pass_rate, passed=sum(c.passed for c in result.cases), total=len(result.cases))


def _subtitle(m: EvaluationMetrics) -> str:
    parts = [
        f"evaluated {_timestamp(m.created)}" if m.created else "",
        f"{m.data.test_examples} test examples",
        f"labels: {', '.join(m.data.labels)}" if m.data.labels else "",
    ]
    return " · ".join(p for p in parts if p)


def _timestamp(created: str) -> str:
    try:
        return datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M %Z").rstrip()
    except ValueError:
        return created


def _num(value: float | None, digits: int = 3, none: str = DASH) -> str:
    return none if value is None else f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def _pct(value: float | None, digits: int = 1, none: str = DASH) -> str:
    return none if value is None else f"{value:.{digits}%}"


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _rate_cell(summary: PassRate | None) -> Cell:
    if summary is None or not summary.total:
        return Cell(DASH)
    return Cell(_pct(summary.pass_rate), f"{summary.passed} of {summary.total}")


def _mark(passed: bool) -> str:
    return "✓" if passed else "✗"


def _capability_name(capability: str) -> str:
    return capability.replace("_", " ")


def _selected_epoch(run: RunSummary) -> str | None:
    if run.best_epoch is None:  # an ensemble: each member has its own
        return None
    text = f"{run.best_epoch} (best validation {run.select_metric})"
    if run.weight_interpolation is not None:
        text += (
            f", its weights mixed with the start at alpha {run.weight_interpolation.alpha:g} "
            "(training.weight_interpolation)"
        )
    if run.soup and run.best_epoch == run.epochs_run:  # the soup is the last epoch
        text += f", the weights of its {len(run.soup)} branches averaged (training.soup)"
    return text


def _sentence_validation(reading: dict[str, Any] | None) -> str | None:
    """run.json's `sentence_validation`: the held-out sentences labelled one by one, read after training."""
    if not reading:
        return None
    by_source = ", ".join(
        f"{source} {_num(value, 3)}" for source, value in reading.get("accuracy_by_source", {}).items()
    )
    trained = "the rest of the set trained" if reading.get("trained_on_the_rest") else "nothing of the set trained"
    return (
        f"{reading.get('set')}: {reading.get('sentences'):,} sentences labelled one by one, never trained on ({trained}); "
        f"accuracy {_num(reading.get('accuracy'), 3)}" + (f" ({by_source})" if by_source else "")
    )


def _title_validation(reading: dict[str, Any] | None) -> str | None:
    """run.json's `title_validation`: the validation reviews' titles, each read alone, after training."""
    if not reading:
        return None
    recall = ", ".join(f"{name} {_num(value, 3)}" for name, value in reading.get("recall", {}).items())
    return (
        f"{reading.get('titles'):,} titles of validation reviews, each read alone and labelled by its review; "
        f"accuracy {_num(reading.get('accuracy'), 3)}, macro-F1 {_num(reading.get('macro_f1'), 3)}"
        + (f" (recall: {recall})" if recall else "")
    )


def _ensemble_summary(ensemble: EnsembleRecord | None, select_metric: str | None) -> str | None:
    """One line per member of an ensemble run: seed, selected epoch and its validation score."""
    if ensemble is None:
        return None
    lines = [f"{len(ensemble.members)} models averaged, each selected on validation {select_metric}"]
    for number, member in enumerate(ensemble.members, start=1):
        lines.append(
            f"member {number}: seed {member.seed}, epoch {member.best_epoch}, "
            f"validation macro-F1 {_num(member.best_validation.get('val_macro_f1'), 4)}"
        )
    return "\n".join(lines)


def _duration(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def _plain(value: Any) -> str:
    """A config value or dict as one readable line: floats to 3 decimals, booleans as yes/no."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)
