"""`sentiment compare`: one experiment trained once per recurrent cell (RNN, GRU, LSTM), side by side.

Each variant is an ordinary experiment named `<experiment>-<cell>` (`<experiment>-<cell>-uni` for a
unidirectional model, e.g. with `--directions bi,uni`), trained by `sentiment.training.stage.train` into
`runs/<name>/` and evaluated by `sentiment.evaluation.evaluate.evaluate` into `reports/<name>/`. Every variant
reads the base experiment's prepared data (`paths.prepared`), so data, vocabulary, seed and every other setting are
identical; only `model.cell` (and `model.bidirectional`) change, and each variant is one model
(`training.ensemble = 1`) even when the experiment averages several.

Reruns are cheap: a variant whose finished run was made with exactly this config is not retrained
(nor re-evaluated while its report is newer than the run), an interrupted one resumes from its
checkpoint, anything else is trained from scratch. The comparison goes to
`reports/<experiment>-compare/`: compare.json, compare.md, compare.html (self-contained) and two
figures (validation macro-F1 and training loss per epoch).
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment.artifacts import atomic_directory, environment_versions, read_json, write_bytes_atomic, write_json
from sentiment.config import ExperimentConfig, config_from_dict
from sentiment.errors import SentimentError
from sentiment.progress import tagged
from sentiment.reporting.html_page import html_page
from sentiment.schemas import EvaluationMetrics, SetScores, SystemMetrics, read_record
from sentiment.training.run import TrainedRun, load_run, partial_dir

CELL_CHOICES = ("rnn", "gru", "lstm")
DIRECTION_CHOICES = {"bi": True, "uni": False}
FIGURES = {
    "convergence.png": ("val_macro_f1", "validation macro-F1", "convergence"),
    "training_loss.png": ("train_loss", "training loss (cross-entropy)", "training loss"),
}


@dataclass
class Variant:
    """One arm of the comparison: a label for tables ("gru", "gru-uni") and its full experiment config."""

    label: str
    cell: str
    bidirectional: bool
    config: ExperimentConfig


def parse_list(option: str, text: str, choices: Sequence[str]) -> list[str]:
    """`"rnn, gru"` -> ["rnn", "gru"], refusing unknown or repeated values with one clear error."""
    values = [value.strip().lower() for value in text.split(",") if value.strip()]
    unknown = [value for value in values if value not in choices]
    if not values or unknown:
        shown = f"unknown value {unknown[0]!r}" if unknown else "nothing given"
        raise SentimentError(f"{option}: {shown}; choose from {', '.join(choices)} (comma-separated)")
    if len(set(values)) != len(values):
        raise SentimentError(f"{option}: {text!r} names a value twice")
    return values


def variants(base: ExperimentConfig, cells: Sequence[str], directions: Sequence[str] | None = None) -> list[Variant]:
    """One config per cell (and direction), identical to `base` apart from name, cell and direction
    (and a single model per variant: `training.ensemble = 1`).

    Names: `<experiment>-<cell>` for a bidirectional model, `<experiment>-<cell>-uni` for a unidirectional one.
    """
    found = []
    for cell in cells:
        for direction in list(directions) if directions else [None]:
            bidirectional = base.model.bidirectional if direction is None else DIRECTION_CHOICES[direction]
            # Named by what the run is, so `--directions bi,uni` reuses the runs of a plain (bi) compare.
            label = cell if bidirectional else f"{cell}-uni"
            data = base.to_dict()
            data["name"] = f"{base.name}-{label}"
            # Every variant reads the base experiment's prepared data instead of preparing its own copy.
            data["paths"]["prepared"] = base.paths.prepared or base.name
            data["model"]["cell"] = cell
            data["model"]["bidirectional"] = bidirectional
            data["training"]["ensemble"] = 1  # cells are compared as single models, not seed averages
            found.append(Variant(label, cell, bidirectional, config_from_dict(data, origin=f"{base.name} ({label})")))
    return found


def compare_dir(base: ExperimentConfig) -> Path:
    return Path(base.paths.reports) / f"{base.name}-compare"


def compare(
    base: ExperimentConfig,
    cells: Sequence[str] = CELL_CHOICES,
    directions: Sequence[str] | None = None,
    n_resamples: int = 1000,
    device: str | None = None,
    log=print,
) -> dict[str, Any]:
    """Prepare (cached), train and evaluate each variant; write `reports/<experiment>-compare/`."""
    from sentiment.data.prepare import prepare

    started = time.perf_counter()
    prepare(base, log=log)
    rows, histories = [], {}
    references: list[dict[str, Any]] = []
    for variant in variants(base, cells, directions):
        variant_log = tagged(log, variant.label)
        run, trained = ensure_trained(variant.config, device, variant_log)
        metrics, evaluated = ensure_evaluated(variant.config, run, n_resamples, variant_log)
        rows.append(_variant_row(variant, run, metrics, trained, evaluated))
        histories[variant.label] = run.history()
        references = references or _reference_rows(run, metrics)
    result = {
        "experiment": base.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "prepared": str(base.prepared_dir),
        "varied": ["model.cell"] + (["model.bidirectional"] if directions else []),
        "settings_fingerprint": base.fingerprint(),
        "test_examples": rows[0]["test_examples"],
        "rows": [*rows, *references],
        "out_of_domain_sets": rows[0]["out_of_domain_sets"],
        "histories": histories,
        "versions": environment_versions(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_comparison(result, compare_dir(base))
    return result


# ---- one variant: train unless finished, evaluate unless the report is current -----------------


def ensure_trained(config: ExperimentConfig, device: str | None, log) -> tuple[TrainedRun, bool]:
    """The variant's finished run, training (or resuming) it only when needed; True when it trained."""
    from sentiment.training.checkpoints import checkpoint_state
    from sentiment.training.stage import train

    finished = finished_run(config)
    if finished is not None:
        log(f"{config.run_dir} is finished with this config; not retraining")
        return finished, False
    checkpoint = checkpoint_state(partial_dir(config.run_dir))
    resume = checkpoint.is_file() and _checkpoint_fingerprint(checkpoint) == config.fingerprint()
    log(f"{'resuming' if resume else 'training'} {config.run_dir}")
    return train(config, resume=resume, device=device, log=log), True


def finished_run(config: ExperimentConfig) -> TrainedRun | None:
    """The run in `config.run_dir` when it is complete and was trained with exactly `config`."""
    try:
        run = load_run(config.run_dir)
    except SentimentError:
        return None
    return run if run.config.fingerprint() == config.fingerprint() else None


def _checkpoint_fingerprint(path: Path) -> str | None:
    try:
        return read_json(path).get("config_fingerprint")
    except (SentimentError, AttributeError):
        return None


def ensure_evaluated(
    config: ExperimentConfig, run: TrainedRun, n_resamples: int, log
) -> tuple[EvaluationMetrics, bool]:
    """The variant's test metrics: its existing report when newer than the run, else a fresh `evaluate`."""
    from sentiment.evaluation.evaluate import evaluate

    path = config.report_dir / "metrics.json"
    if path.is_file() and path.stat().st_mtime > (run.directory / "run.json").stat().st_mtime:
        try:
            metrics: EvaluationMetrics | None = read_record(path, EvaluationMetrics)[0]
        except SentimentError:  # unreadable, or from another version: evaluate again
            metrics = None
        if metrics is not None and metrics.run.directory == str(run.directory):
            log(f"{path} is newer than the run; not evaluating again")
            return metrics, False
    return evaluate(config, n_resamples=n_resamples, log=log), True


# ---- rows --------------------------------------------------------------------------------------


def _scores(system: SystemMetrics | SetScores) -> dict[str, Any]:
    return {
        "accuracy": system.accuracy,
        "accuracy_ci": system.accuracy_ci,
        "macro_f1": system.macro_f1,
        "macro_f1_ci": system.macro_f1_ci,
    }


def _contrast_rate(metrics: EvaluationMetrics, system: str) -> float | None:
    result = metrics.contrast_result(system)  # None for label schemes without positive/negative
    return None if result is None else result.pass_rate


def _out_of_domain(metrics: EvaluationMetrics, system: str) -> dict[str, dict[str, Any]]:
    """{set name: accuracy and macro-F1 with intervals} of one system on the out-of-domain sets."""
    sets = metrics.out_of_domain.sets
    return {item.name: _scores(item.systems[system]) for item in sets if system in item.systems}


def _variant_row(
    variant: Variant, run: TrainedRun, metrics: EvaluationMetrics, trained: bool, evaluated: bool
) -> dict[str, Any]:
    record = run.record
    return {
        "name": variant.label,
        "cell": variant.cell,
        "bidirectional": variant.bidirectional,
        **_scores(metrics.model),
        "contrast_pass_rate": _contrast_rate(metrics, "model"),
        "out_of_domain": _out_of_domain(metrics, "model"),
        "out_of_domain_sets": [item.name for item in metrics.out_of_domain.sets],
        "reference": False,
        "parameters": record.parameters,
        "seconds_per_epoch": record.seconds_per_epoch,
        "best_epoch": record.best_epoch,
        "epochs_run": record.epochs_run,
        "best_val_macro_f1": record.best_validation["val_macro_f1"],
        "test_examples": metrics.data.test_examples,
        "run": str(run.directory),
        "report": str(variant.config.report_dir),
        "trained_now": trained,
        "evaluated_now": evaluated,
    }


def _reference_rows(run: TrainedRun, metrics: EvaluationMetrics) -> list[dict[str, Any]]:
    """The bag-of-words baseline (every variant fits the same one: same training tokens and seed)
    and VADER where the report has it."""
    rows = []
    for system, name, parameters, path in (
        ("baseline", "baseline", _baseline_parameters(run.directory / "baseline"), str(run.directory / "baseline")),
        ("vader", "VADER", None, "vader"),
    ):
        scores = metrics.system(system)
        if scores is None:
            continue
        rows.append(
            {
                "name": name,
                "cell": None,
                "bidirectional": None,
                "reference": True,
                **_scores(scores),
                "contrast_pass_rate": _contrast_rate(metrics, system),
                "out_of_domain": _out_of_domain(metrics, system),
                "parameters": parameters,
                "seconds_per_epoch": None,
                "best_epoch": None,
                "epochs_run": None,
                "best_val_macro_f1": None,
                "test_examples": metrics.data.test_examples,
                "run": path,
                "report": None,
                "trained_now": None,
                "evaluated_now": None,
            }
        )
    return rows


def _baseline_parameters(directory: Path) -> int | None:
    """Weights of the logistic regression (n-gram features x classes, plus intercepts)."""
    from safetensors import safe_open

    from sentiment.model.baseline import WEIGHTS_FILE

    try:
        with safe_open(str(directory / WEIGHTS_FILE), framework="numpy") as weights:
            total = 0
            for name in ("coef", "intercept"):
                shape = weights.get_slice(name).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += count
            return total
    except Exception:  # an unreadable or older baseline only loses this one number
        return None


# ---- the report --------------------------------------------------------------------------------


def write_comparison(result: dict[str, Any], directory: Path) -> None:
    """compare.json, compare.md, compare.html (figures inlined) and the figures, written atomically."""
    from sentiment.reporting.plots import plot_curves_by_run, png_data_uri

    with atomic_directory(directory) as staging:
        write_json(staging / "compare.json", result)
        for filename, (key, ylabel, title) in FIGURES.items():
            plot_curves_by_run(result["histories"], key, staging / filename, ylabel=ylabel, title=title)
        write_bytes_atomic(staging / "compare.md", render_markdown(result).encode("utf-8"))
        images = {filename: png_data_uri(staging / filename) for filename in FIGURES}
        write_bytes_atomic(staging / "compare.html", render_html(result, images).encode("utf-8"))


OUT_OF_DOMAIN_NOTE = (
    "Sentences from outside the training data, rated by people (Hutto & Gilbert 2014); "
    "they only report, never train or select. Each variant's report has the details."
)
COLUMNS = (
    "system",
    "test accuracy [95% CI]",
    "test macro-F1 [95% CI]",
    "contrast pass rate",
    "parameters",
    "s / epoch",
    "best epoch / run",
)


def table_cells(row: dict[str, Any]) -> list[str]:
    def score(key: str) -> str:
        low, high = row[f"{key}_ci"]
        return f"{row[key]:.3f} [{low:.3f}, {high:.3f}]"

    def maybe(value, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    seconds = row["seconds_per_epoch"]

    name = row["name"] + (" (reference)" if row.get("reference") else "")
    epochs = "—" if row["best_epoch"] is None else f"{row['best_epoch']} / {row['epochs_run']}"
    return [
        name,
        score("accuracy"),
        score("macro_f1"),
        maybe(row["contrast_pass_rate"], ".1%"),
        maybe(row["parameters"], ","),
        maybe(seconds, ".1f" if seconds and seconds >= 1 else ".2f"),
        epochs,
    ]


def summary_table(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table (also what the CLI prints)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in result["rows"]]
    return "\n".join(lines)


def out_of_domain_columns(result: dict[str, Any]) -> list[str]:
    return ["system", *(f"{name} accuracy [95% CI]" for name in result.get("out_of_domain_sets", []))]


def out_of_domain_cells(row: dict[str, Any], sets: list[str]) -> list[str]:
    cells = [row["name"] + (" (reference)" if row.get("reference") else "")]
    for name in sets:
        scores = row.get("out_of_domain", {}).get(name)
        cells.append(
            "—"
            if scores is None
            else f"{scores['accuracy']:.3f} [{scores['accuracy_ci'][0]:.3f}, {scores['accuracy_ci'][1]:.3f}]"
        )
    return cells


def out_of_domain_table(result: dict[str, Any]) -> str:
    """Accuracy on each out-of-domain sentence set, one row per system (empty without sets)."""
    sets = result.get("out_of_domain_sets", [])
    if not sets:
        return ""
    columns = out_of_domain_columns(result)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(out_of_domain_cells(row, sets)) + " |" for row in result["rows"]]
    return "\n".join(lines)


def reading(result: dict[str, Any]) -> list[str]:
    """Plain sentences: the best variant by test macro-F1 and which others its interval cannot tell apart."""
    variants_ = [row for row in result["rows"] if not row.get("reference")]
    best = max(variants_, key=lambda row: row["macro_f1"])
    low, high = best["macro_f1_ci"]
    close = [row["name"] for row in variants_ if row is not best and row["macro_f1_ci"][1] >= low]
    sentences = [f"Highest test macro-F1: {best['name']} ({best['macro_f1']:.3f}, 95% CI {low:.3f}-{high:.3f})."]
    if close:
        sentences.append(
            f"Intervals overlapping it: {', '.join(close)}; on this test set those differences may be noise."
        )
    baseline = next(row for row in result["rows"] if row["name"] == "baseline")
    beaten = [row["name"] for row in variants_ if row["macro_f1"] > baseline["macro_f1"]]
    sentences.append(
        f"Above the bag-of-words baseline's macro-F1 ({baseline['macro_f1']:.3f}): "
        f"{', '.join(beaten) if beaten else 'none'}."
    )
    return sentences


def _intro(result: dict[str, Any]) -> str:
    varied = " and ".join(f"`{key}`" for key in result["varied"])
    verb = "changes" if len(result["varied"]) == 1 else "change"
    return (
        f"Same prepared data (`{result['prepared']}`), seed and settings; only {varied} {verb}. "
        f"Test split: {result['test_examples']:,} reviews; intervals are 95% bootstrap intervals. "
        "Contrast pass rate: share of the contrast suite's labelled cases predicted right."
    )


def render_markdown(result: dict[str, Any]) -> str:
    names = " vs ".join(row["name"] for row in result["rows"] if not row.get("reference"))
    ood = out_of_domain_table(result)
    parts = [
        f"# {result['experiment']}: {names}",
        "",
        _intro(result),
        "",
        summary_table(result),
        "",
        " ".join(reading(result)),
        "",
        *(["## Out of domain", "", ood, "", OUT_OF_DOMAIN_NOTE, ""] if ood else []),
        "## Convergence",
        "",
        "![validation macro-F1 per epoch](convergence.png)",
        "",
        "## Training loss",
        "",
        "![training loss per epoch](training_loss.png)",
        "",
        "Each variant's own report (test details, contrast cases, errors): "
        + ", ".join(f"`{row['report']}`" for row in result["rows"] if row["report"]),
        "",
    ]
    return "\n".join(parts)


def render_html(result: dict[str, Any], images: dict[str, str]) -> str:
    names = " vs ".join(row["name"] for row in result["rows"] if not row.get("reference"))
    title = f"{result['experiment']}: {names}"
    header = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    body = "".join(
        "<tr"
        + (' class="ref"' if row.get("reference") else "")
        + ">"
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in table_cells(row))
        + "</tr>"
        for row in result["rows"]
    )
    sets = result.get("out_of_domain_sets", [])
    ood = ""
    if sets:
        ood_header = "".join(f"<th>{html.escape(column)}</th>" for column in out_of_domain_columns(result))
        ood_body = "".join(
            "<tr"
            + (' class="ref"' if row.get("reference") else "")
            + ">"
            + "".join(f"<td>{html.escape(cell)}</td>" for cell in out_of_domain_cells(row, sets))
            + "</tr>"
            for row in result["rows"]
        )
        ood = (
            f'<h2>Out of domain</h2>\n<div class="scroll"><table><thead><tr>{ood_header}</tr></thead>'
            f"<tbody>{ood_body}</tbody></table></div>\n<p>{html.escape(OUT_OF_DOMAIN_NOTE)}</p>\n"
        )
    intro = html.escape(_intro(result)).replace("`", "")
    figures = "".join(
        f'<h2>{html.escape(FIGURES[name][2].capitalize())}</h2><img src="{uri}" '
        f'alt="{html.escape(FIGURES[name][1])} per epoch">'
        for name, uri in images.items()
    )
    page_body = (
        f"<p>{intro}</p>\n"
        f'<div class="scroll"><table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table></div>\n'
        f"<p>{html.escape(' '.join(reading(result)))}</p>\n{ood}{figures}"
    )
    return html_page(title, page_body, _CSS)


_CSS = """
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.ref td { color: #555; font-style: italic; }
"""
