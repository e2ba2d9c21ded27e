"""The model card: `runs/<experiment>/README.md` in the Hugging Face format (YAML metadata, then text).

`train` writes it with what training knows (architecture, data, validation, calibration);
`evaluate` rewrites it with the test, contrast-suite and out-of-domain figures beside the
baseline and VADER, and the contrast capabilities the model fails. The metadata is rendered by
`huggingface_hub.ModelCardData`, so `huggingface_hub.ModelCard.load` reads it back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentiment.artifacts import write_bytes_atomic
from sentiment.reporting.document import DASH, Cell, Table, figure_with_interval, markdown_table
from sentiment.schemas import EvaluationMetrics

CARD_FILE = "README.md"
WEAK_CAPABILITY = 0.75
"""Contrast capabilities below this pass rate are listed as limits."""


def write_model_card(
    run_dir: str | Path, info: dict[str, Any], config: dict[str, Any], metrics: EvaluationMetrics | None = None
) -> Path:
    """Write (or refresh, with `metrics` from `evaluate`) the run's model card; returns its path."""
    from huggingface_hub import ModelCardData

    path = Path(run_dir) / CARD_FILE
    source = (config.get("data") or {}).get("source", "?")
    data = ModelCardData(
        language="en",
        license="mit",
        library_name="pytorch",
        pipeline_tag="text-classification",
        tags=[
            "sentiment-analysis",
            "text-classification",
            f"{info['model'].get('cell', 'rnn')}",
            "product-reviews",
            "sentiment",
        ],
        datasets=[source],
        metrics=["accuracy", "f1"],
        model_name=info.get("experiment"),
    )
    text = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(_body(info, config, metrics)) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))
    return path


def loss_shares_text(shares: dict[str, float]) -> str:
    """ "reviews 18.8%, sentences 75.1%, ...": each kind of example's share of an epoch's loss
    (`metrics.jsonl` `loss_shares`), the kinds that trained in it."""
    return ", ".join(f"{kind.replace('_', ' ')} {share:.1%}" for kind, share in shares.items() if share > 0)


def _body(info: dict[str, Any], config: dict[str, Any], metrics: EvaluationMetrics | None) -> list[str]:
    m = info["model"]
    head = {
        "pooled": f"{m.get('pooling', 'max+mean')} pooling over the whole review",
        "sentences": "a sentence-attention head (each sentence classified, weighed by attention)",
        "clauses": "a clause-attention head (sentences split at contrast connectives)",
    }.get(m.get("head", "pooled"))
    data = config.get("data") or {}
    best = info.get("best_validation") or {}
    lines = [
        f"# {info.get('experiment')}: sentiment of product reviews",
        "",
        f"A {'bidirectional ' if m.get('bidirectional') else ''}{m.get('cell', '').upper()} "
        f"(hidden size {m.get('hidden_size')}, {m.get('num_layers')} layer(s), embeddings of "
        f"{m.get('embedding_dim')} dimensions) with {head}, predicting {', '.join(info.get('labels', []))}. "
        f"Trained with the `sentiment` pipeline; {info.get('parameters', 0):,} parameters.",
        "",
        "## Data",
        "",
        f"- Source: `{data.get('source')}`, label scheme `{data.get('label_scheme')}`"
        + (f", titles prefixed from `{data.get('title_column')}`" if data.get("title_column") else "")
        + ".",
        f"- Model selection on the validation split by {info.get('select_metric')}: validation macro-F1 "
        f"{best.get('val_macro_f1', float('nan')):.4f}, accuracy {best.get('val_accuracy', float('nan')):.4f}.",
    ]
    titles = info.get("title_validation") or {}
    if "macro_f1" in titles:
        lines.append(
            f"- The validation reviews' {titles['titles']:,} titles, each read alone (short texts of this domain, "
            f"labelled by their review): macro-F1 {titles['macro_f1']:.4f}, accuracy {titles['accuracy']:.4f}."
        )
    examples = info.get("training_examples") or {}
    labelled, extra = examples.get("labelled_sentences", 0), examples.get("extra_sentences", 0)
    own = examples.get("sentences", 0) - labelled - extra
    if own:
        clauses = examples.get("clauses", 0)
        of_them = f" ({clauses:,} of them clauses of contrast sentences)" if clauses else ""
        lines.append(f"- Trained on {examples['reviews']:,} reviews and {own:,} of their sentences{of_them}.")
    if labelled:
        held = info.get("sentence_validation") or {}
        reading = f" (held-out accuracy {held['accuracy']:.4f} on {held['sentences']:,})" if "accuracy" in held else ""
        lines.append(f"- And {labelled:,} sentences labelled one by one, `{held.get('set', '?')}`{reading}.")
    if extra:
        other = (config.get("training") or {}).get("extra_sentences")
        lines.append(f"- And {extra:,} sentences of the prepared dataset `{other}`'s training reviews.")
    shares = best.get("loss_shares")
    if shares:
        lines.append(
            f"- Shares of the kept epoch's loss: {loss_shares_text(shares)} (a batch's loss is its examples' "
            "weighted mean, and a batch holds examples of similar length)."
        )
    training = config.get("training") or {}
    epsilon = training.get("adversarial") or 0
    if epsilon:
        towards = (
            ", towards the clean pass's own prediction (the consistency loss)"
            if training.get("adversarial_loss") == "consistency"
            else ""
        )
        lines.append(
            f"- Adversarial training on the word vectors (Miyato et al. 2017): each batch also trained "
            f"with every example's word vectors moved {epsilon:g} (L2) in the direction that raises its loss most"
            f"{towards}."
        )
    calibration = info.get("calibration")
    if calibration:
        v = calibration["validation"]
        lines.append(
            f"- Temperature scaling on validation: T = {calibration['temperature']:.3f}, "
            f"ECE {v['ece_before']:.4f} -> {v['ece_after']:.4f}."
        )
    decision = info.get("decision")
    if decision:
        v = decision["validation"]
        lines.append(
            f"- Decision threshold on validation: P({info['labels'][1]}) >= {decision['threshold']:.2f}, "
            f"{decision['metric']} {v['at_argmax']:.4f} -> {v['at_threshold']:.4f}"
            + (f" ({v['cross_fitted']:.4f} cross-fitted)." if v.get("cross_fitted") is not None else ".")
        )
    lines += ["", "## Evaluation", ""]
    if metrics is None:
        lines.append("Not evaluated yet: `sentiment evaluate` adds the test, contrast-suite and out-of-domain figures.")
    else:
        lines += _evaluation(metrics)
    lines += [
        "",
        "## Intended use and limits",
        "",
        "- English product reviews, scored one review (or one sentence) at a time; the probabilities are "
        "calibrated on reviews from the training source, not on other domains.",
        "- Not for decisions about people, and not for languages other than English.",
        "- Trained on one retailer's clothing reviews (88% positive): vocabulary from other products or "
        "domains reads less well (see the out-of-domain figures).",
    ]
    weak = _weak_capabilities(metrics)
    if weak:
        lines.append(
            "- Contrast capabilities it fails most (pass rate on the project's contrast suite): "
            + ", ".join(f"{name.replace('_', ' ')} {rate:.0%}" for name, rate in weak)
            + "."
        )
    return lines


def _evaluation(metrics: EvaluationMetrics) -> list[str]:
    names = {"model": "this model", "baseline": "TF-IDF + logistic regression", "vader": "VADER (lexicon)"}
    systems = {s: part for s in names if (part := metrics.system(s)) is not None}
    rows = []
    for s, part in systems.items():
        result = metrics.contrast_result(s)
        rate = None if result is None else result.pass_rate
        rows.append(
            [
                Cell(names[s]),
                figure_with_interval(part.accuracy, part.accuracy_ci),
                figure_with_interval(part.macro_f1, part.macro_f1_ci),
                Cell(f"{part.ece:.3f}"),
                Cell(DASH if rate is None else f"{rate:.1%}"),
            ]
        )
    columns = ["system", "accuracy (95% CI)", "macro-F1 (95% CI)", "ECE", "contrast suite"]
    lines = [
        f"Test split ({metrics.data.test_examples:,} reviews; the intervals are 95% bootstrap intervals):",
        "",
        markdown_table(Table(columns, rows, numeric=frozenset(range(1, 5)))),
    ]
    sets = metrics.out_of_domain.sets
    if sets:
        rows = [
            [Cell(f"{item.name} ({item.sentences:,})")]
            + [Cell(f"{item.systems[s].accuracy:.3f}" if s in item.systems else DASH) for s in systems]
            for item in sets
        ]
        columns = ["set", *(names[s] for s in systems)]
        lines += [
            "",
            "Out of domain (sentences rated by people, Hutto & Gilbert 2014), accuracy:",
            "",
            markdown_table(Table(columns, rows, numeric=frozenset(range(1, len(columns))))),
        ]
    return lines


def _weak_capabilities(metrics: EvaluationMetrics | None) -> list[tuple[str, float]]:
    if metrics is None or metrics.contrast is None:
        return []
    weak = [
        (name, entry.pass_rate)
        for name, entry in metrics.contrast.model.by_capability.items()
        if entry.pass_rate is not None and entry.pass_rate < WEAK_CAPABILITY
    ]
    return sorted(weak, key=lambda item: item[1])
