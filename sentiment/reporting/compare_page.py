"""The page of `sentiment compare`: `compare.json`, `compare.md`, `compare.html` and two figures, from
the result dictionary `sentiment.evaluation.compare.compare` builds.

One row per variant and one per reference system (the bag-of-words baseline, VADER). A variant trained
on one seed shows its test figures with 95% bootstrap intervals; a variant trained on several shows the
mean and standard deviation over its seeds, with a second table giving each seed's figures, and the
reading counts on how many seeds one variant beat another (the seeds pair the variants: the same
seed starts every cell). The page is a list of `sentiment.reporting.document` sections, rendered as
Markdown and as one HTML page by the same functions as the evaluation report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentiment.artifacts import atomic_directory, write_bytes_atomic, write_json
from sentiment.reporting.document import (
    DASH,
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

__all__ = ["FIGURES", "page_sections", "reading", "render_html", "render_markdown", "summary_table", "write_comparison"]

FIGURES = {
    "convergence.png": ("val_macro_f1", "validation macro-F1", "convergence"),
    "training_loss.png": ("train_loss", "training loss (cross-entropy)", "training loss"),
}
OUT_OF_DOMAIN_NOTE = (
    "Sentences from outside the training data, rated by people (Hutto & Gilbert 2014); "
    "they only report, never train or select. Each variant's report has the details."
)
ONE_SEED_COLUMNS = (
    "system",
    "test accuracy",  # each figure with its 95% interval, which the intro names
    "test macro-F1",
    "contrast pass rate",
    "parameters",
    "s / epoch",
    "best epoch / run",
)
SEEDS_COLUMNS = (
    "system",
    "seeds",
    "validation macro-F1",
    "through the cut",
    "test accuracy",
    "test macro-F1",
    "contrast pass rate",
    "parameters",
    "s / epoch",
    "best epoch / run",
)
EACH_SEED_COLUMNS = (
    "variant",
    "seed",
    "validation macro-F1",
    "through the cut",
    "test accuracy",
    "test macro-F1",
    "contrast pass rate",
)


def write_comparison(result: dict[str, Any], directory: Path) -> None:
    """compare.json, compare.md, compare.html (figures inlined) and the figures, written atomically."""
    from sentiment.reporting.plots import plot_curves_by_run

    with atomic_directory(directory) as staging:
        write_json(staging / "compare.json", result)
        for filename, (key, ylabel, title) in FIGURES.items():
            plot_curves_by_run(
                result["histories"], key, staging / filename, ylabel=ylabel, title=title, groups=result.get("groups")
            )
        write_bytes_atomic(staging / "compare.md", render_markdown(result).encode("utf-8"))
        write_bytes_atomic(staging / "compare.html", render_html(result, staging).encode("utf-8"))


# ---- cells -------------------------------------------------------------------------------------


def several_seeds(result: dict[str, Any]) -> bool:
    return len(result.get("seeds") or []) > 1


def _maybe(value, fmt: str) -> str:
    return DASH if value is None else format(value, fmt)


def _with_interval(row: dict[str, Any], key: str) -> Cell:
    """The figure with its 95% interval (`document.figure_with_interval`)."""
    return figure_with_interval(row[key], row[f"{key}_ci"])


def _mean_sd(row: dict[str, Any], key: str, digits: int = 3) -> str | Cell:
    if row.get(key) is None:
        return DASH
    if row.get(f"{key}_sd") is None:  # a reference row: one fit, its interval
        return _with_interval(row, key) if row.get(f"{key}_ci") else f"{row[key]:.{digits}f}"
    return f"{row[key]:.{digits}f} ± {row[f'{key}_sd']:.{digits}f}"


def _seconds(value: float | None) -> str:
    return _maybe(value, ".1f" if value and value >= 1 else ".2f")


def _name(row: dict[str, Any]) -> str:
    return row["name"] + (" (reference)" if row.get("reference") else "")


def _epochs(row: dict[str, Any]) -> str:
    if row.get("seed_rows"):
        return ", ".join(f"{seed['best_epoch']} / {seed['epochs_run']}" for seed in row["seed_rows"])
    return DASH if row["best_epoch"] is None else f"{row['best_epoch']} / {row['epochs_run']}"


def _contrast(row: dict[str, Any]) -> str:
    rate, spread = row["contrast_pass_rate"], row.get("contrast_pass_rate_sd")
    if rate is None:
        return DASH
    return f"{rate:.1%}" if spread is None else f"{rate:.1%} ± {100 * spread:.1f} pp"


def columns(result: dict[str, Any]) -> tuple[str, ...]:
    return SEEDS_COLUMNS if several_seeds(result) else ONE_SEED_COLUMNS


def table_cells(row: dict[str, Any], result: dict[str, Any]) -> list[str | Cell]:
    tail: list[str | Cell] = [
        _contrast(row),
        _maybe(row["parameters"], ","),
        _seconds(row["seconds_per_epoch"]),
        _epochs(row),
    ]
    if not several_seeds(result):
        return [_name(row), _with_interval(row, "accuracy"), _with_interval(row, "macro_f1"), *tail]
    seeds = DASH if row.get("reference") else str(len(row["seed_rows"]))
    validation = [_mean_sd(row, "best_val_macro_f1", 4), _mean_sd(row, "cut_val_macro_f1", 4)]
    return [_name(row), seeds, *validation, _mean_sd(row, "accuracy"), _mean_sd(row, "macro_f1"), *tail]


def summary(result: dict[str, Any]) -> Table:
    """The comparison's main table: one row per variant, then the references, shown muted."""
    cells = [table_cells(row, result) for row in result["rows"]]
    return _table(columns(result), cells, muted=_references(result))


def summary_table(result: dict[str, Any]) -> str:
    """The comparison's main table for a terminal (what the CLI prints)."""
    return text_table(summary(result))


def each_seed_rows(result: dict[str, Any]) -> list[list[str]]:
    """One line per trained run of a comparison over several seeds (empty for one seed)."""
    if not several_seeds(result):
        return []
    return [
        [
            row["name"],
            str(seed["seed"]),
            f"{seed['best_val_macro_f1']:.4f}",
            _maybe(seed["cut_val_macro_f1"], ".4f"),
            f"{seed['accuracy']:.3f}",
            f"{seed['macro_f1']:.3f}",
            _maybe(seed["contrast_pass_rate"], ".1%"),
        ]
        for row in result["rows"]
        if not row.get("reference")
        for seed in row["seed_rows"]
    ]


def out_of_domain_columns(result: dict[str, Any]) -> list[str]:
    shown = "mean ± sd" if several_seeds(result) else "(95% CI)"
    return ["system", *(f"{name} accuracy {shown}" for name in result.get("out_of_domain_sets", []))]


def out_of_domain_cells(row: dict[str, Any], sets: list[str]) -> list[str | Cell]:
    cells: list[str | Cell] = [_name(row)]
    for name in sets:
        scores = row.get("out_of_domain", {}).get(name)
        cells.append(DASH if scores is None else _mean_sd(scores, "accuracy"))
    return cells


def _references(result: dict[str, Any]) -> frozenset[int]:
    """Positions of the reference rows (the baseline, VADER), which the tables show muted."""
    return frozenset(i for i, row in enumerate(result["rows"]) if row.get("reference"))


def _table(header: Sequence[str], rows: Sequence[Sequence[str | Cell]], muted: frozenset[int] = frozenset()) -> Table:
    """Every column after the first holds figures (right-aligned); on a phone each row becomes a block."""
    numeric = frozenset(range(1, len(header)))
    cells = [[value if isinstance(value, Cell) else Cell(value) for value in row] for row in rows]
    return Table(list(header), cells, numeric=numeric, muted=muted, stack=True)


# ---- the reading -------------------------------------------------------------------------------


def reading(result: dict[str, Any]) -> list[str]:
    """Plain sentences on what the table shows (and, for several seeds, what the seeds allow it to show)."""
    variants_ = [row for row in result["rows"] if not row.get("reference")]
    baseline = next(row for row in result["rows"] if row["name"] == "baseline")
    if several_seeds(result):
        return _reading_over_seeds(variants_, baseline, len(result["seeds"]))
    best = max(variants_, key=lambda row: row["macro_f1"])
    low, high = best["macro_f1_ci"]
    close = [row["name"] for row in variants_ if row is not best and row["macro_f1_ci"][1] >= low]
    sentences = [f"Highest test macro-F1: {best['name']} ({best['macro_f1']:.3f}, 95% CI {low:.3f}-{high:.3f})."]
    if close:
        sentences.append(
            f"Intervals overlapping it: {', '.join(close)}; on this test set those differences may be noise."
        )
    beaten = [row["name"] for row in variants_ if row["macro_f1"] > baseline["macro_f1"]]
    sentences.append(
        f"Above the bag-of-words baseline's macro-F1 ({baseline['macro_f1']:.3f}): "
        f"{', '.join(beaten) if beaten else 'none'}."
    )
    return sentences


def _reading_over_seeds(variants_: list[dict[str, Any]], baseline: dict[str, Any], seeds: int) -> list[str]:
    """Choose on validation, paired by seed; then say where test puts each variant against the baseline.
    Runs that ship a cut fitted on validation are read through it, cross-fitted; others at the argmax."""
    key = "cut_val_macro_f1" if all(row["cut_val_macro_f1"] is not None for row in variants_) else "best_val_macro_f1"
    shown = (
        "validation macro-F1 through the fitted cut (cross-fitted)"
        if key == "cut_val_macro_f1"
        else ("validation macro-F1")
    )
    best = max(variants_, key=lambda row: row[key])
    by_seed = {seed["seed"]: seed for seed in best["seed_rows"]}
    sentences = [
        f"Highest mean {shown}, which is what a choice should rest on: {best['name']} "
        f"({best[key]:.4f} ± {best[f'{key}_sd']:.4f} over {seeds} seeds)."
    ]
    for row in variants_:
        if row is best:
            continue
        wins = sum(seed[key] > by_seed[seed["seed"]][key] for seed in row["seed_rows"])
        gap = best[key] - row[key]
        spread = max(best[f"{key}_sd"], row[f"{key}_sd"])
        if gap == 0:
            difference = "the same on average"
        else:
            verdict = "within the seed-to-seed spread" if gap <= spread else "more than the seed-to-seed spread"
            difference = f"{gap:.4f} lower on average ({verdict}, sd up to {spread:.4f})"
        sentences.append(f"{row['name']}: {difference}, higher on {wins} of {len(row['seed_rows'])} seeds.")
    sentences += [_against_the_config(row, variants_, key) for row in variants_ if row.get("arm")]
    if seeds < 5:
        sentences.append(
            f"With {seeds} seeds the standard deviations are themselves rough; more seeds (e.g. --seeds 13-22) "
            "narrow them."
        )
    for row in variants_:
        above = sum(seed["macro_f1"] > baseline["macro_f1"] for seed in row["seed_rows"])
        sentences.append(
            f"Test macro-F1 of {row['name']} above the bag-of-words baseline's ({baseline['macro_f1']:.3f}) "
            f"on {above} of {len(row['seed_rows'])} seeds."
        )
    return sentences


def _against_the_config(row: dict[str, Any], variants_: list[dict[str, Any]], key: str) -> str:
    """An arm read against the config's own run of the same cell and direction, seed by seed: the mean
    of the paired differences, their spread and its standard error, and on how many seeds it was higher."""
    plain = next(
        other
        for other in variants_
        if not other.get("arm") and (other["cell"], other["bidirectional"]) == (row["cell"], row["bidirectional"])
    )
    by_seed = {seed["seed"]: seed[key] for seed in plain["seed_rows"]}
    differences = [seed[key] - by_seed[seed["seed"]] for seed in row["seed_rows"]]
    spread = statistics.stdev(differences)
    wins = sum(difference > 0 for difference in differences)
    return (
        f"{row['name']} against {plain['name']} ({_settings(row['settings'])}), "
        f"seed by seed: {statistics.fmean(differences):+.4f} on average (sd of the differences {spread:.4f}, "
        f"standard error {spread / math.sqrt(len(differences)):.4f}), higher on {wins} of {len(differences)} seeds."
    )


# ---- the page ----------------------------------------------------------------------------------


def _intro(result: dict[str, Any]) -> str:
    arms = result.get("arms") or {}
    keys = ["model.cell"] + ["model.bidirectional"] * ("model.bidirectional" in result["varied"])
    keys += [f"each arm's settings ({_arms(arms)})"] if arms else []
    varied = " and ".join(keys)
    verb = "changes" if len(keys) == 1 else "change"
    if several_seeds(result):
        seeds = ", ".join(str(seed) for seed in result["seeds"])
        return (
            f"Same prepared data ({result['prepared']}) and settings; only {varied} {verb} between variants, "
            f"each trained once per seed ({seeds}: training.seed). Variants: mean ± standard deviation over "
            f"the seeds; the references are one fit each, with 95% bootstrap intervals. Validation macro-F1: the "
            "selected epoch's at the argmax; through the cut: with the cut on P(positive) fitted on validation, "
            "each fifth labelled by the cut the other four chose (runs that ship such a cut). Test split: "
            f"{result['test_examples']:,} reviews. Contrast pass rate: share of the contrast suite's labelled "
            "cases predicted right."
        )
    return (
        f"Same prepared data ({result['prepared']}), seed and settings; only {varied} {verb}. "
        f"Test split: {result['test_examples']:,} reviews; under each figure (after it, in parentheses, in text), its 95% "
        "bootstrap interval. "
        "Contrast pass rate: share of the contrast suite's labelled cases predicted right."
    )


def _arms(arms: dict[str, list[str]]) -> str:
    """`att: model.pooling=max+attention; drop: ...`, as the intro names the arms."""
    return "; ".join(f"{name}: {_settings(settings)}" for name, settings in arms.items())


def _settings(settings: list[str]) -> str:
    return ", ".join(settings)


def _title(result: dict[str, Any]) -> str:
    names = " vs ".join(row["name"] for row in result["rows"] if not row.get("reference"))
    return f"{result['experiment']}: {names}"


def _subtitle(result: dict[str, Any]) -> str:
    seeds = result.get("seeds") or []
    over = f"{len(seeds)} seeds" if len(seeds) > 1 else "one seed"
    return f"sentiment compare · {over} · test split of {result['test_examples']:,} reviews"


def page_sections(result: dict[str, Any]) -> list[Section]:
    """What the page says, in order; the Markdown file and the HTML page both render these sections."""
    sections = [
        Section(
            "variants",
            "Variants",
            [Paragraph(_intro(result)), summary(result), Paragraph(" ".join(reading(result)))],
        )
    ]
    seeds = each_seed_rows(result)
    if seeds:
        sections.append(Section("each-seed", "Each seed", [_table(EACH_SEED_COLUMNS, seeds)]))
    sets = result.get("out_of_domain_sets", [])
    if sets:
        cells = [out_of_domain_cells(row, sets) for row in result["rows"]]
        table = _table(out_of_domain_columns(result), cells, muted=_references(result))
        sections.append(Section("out-of-domain", "Out of domain", [table, Paragraph(OUT_OF_DOMAIN_NOTE, style="note")]))
    for filename, (_, ylabel, title) in FIGURES.items():
        sections.append(
            Section(filename.removesuffix(".png"), title.capitalize(), [Image(filename, f"{ylabel} per epoch")])
        )
    reports = ", ".join(_reports(result))
    sections.append(
        Section("reports", "Each run's report", [Paragraph(f"Test details, contrast cases and errors: {reports}.")])
    )
    return sections


def _reports(result: dict[str, Any]) -> list[str]:
    found = []
    for row in result["rows"]:
        found += [seed["report"] for seed in row.get("seed_rows") or []] or ([row["report"]] if row["report"] else [])
    return found


def render_markdown(result: dict[str, Any]) -> str:
    """compare.md; the figures are linked by file name, next to it."""
    return markdown_document(_title(result), _subtitle(result), page_sections(result))


def render_html(result: dict[str, Any], directory: str | Path) -> str:
    """compare.html, one self-contained page: the figures are read from ``directory`` and inlined."""
    return html_document(
        _title(result), _subtitle(result), page_sections(result), directory, footer="Generated by sentiment compare"
    )
