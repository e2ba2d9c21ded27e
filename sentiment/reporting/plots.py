"""Every figure the stages write (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentiment.artifacts import write_bytes_atomic
from sentiment.schemas import LengthBucket, ReliabilityBin, RiskCoveragePoint


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | Path, dpi: int = 110) -> None:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    _pyplot().close(figure)
    write_bytes_atomic(path, buffer.getvalue())


def plot_learning_curves(history: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Training and validation loss, and validation accuracy / macro-F1, per epoch; the selected
    epoch marked. An ensemble's history (lines with a `member` number) gets one curve per member
    for validation loss and macro-F1, each member's selected epoch starred."""
    plt = _pyplot()
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    members = sorted({line["member"] for line in history if "member" in line})
    if not members:
        epochs = [line["epoch"] for line in history]
        loss_axis.plot(epochs, [line["train_loss"] for line in history], marker="o", label="train")
        loss_axis.plot(epochs, [line["val_loss"] for line in history], marker="o", label="validation")
        score_axis.plot(epochs, [line["val_accuracy"] for line in history], marker="o", label="accuracy")
        score_axis.plot(epochs, [line["val_macro_f1"] for line in history], marker="o", label="macro-F1")
        best = next(line["epoch"] for line in reversed(history) if line.get("best"))
        for axis in (loss_axis, score_axis):
            axis.axvline(best, color="grey", linestyle=":", linewidth=1)
        note = "dotted: selected epoch"
    else:
        for index, member in enumerate(members):
            lines = [line for line in history if line.get("member") == member]
            epochs = [line["epoch"] for line in lines]
            colour = f"C{index}"
            loss_axis.plot(
                epochs, [line["val_loss"] for line in lines], marker="o", color=colour, label=f"member {member}"
            )
            score_axis.plot(
                epochs, [line["val_macro_f1"] for line in lines], marker="o", color=colour, label=f"member {member}"
            )
            selected = next(line for line in reversed(lines) if line.get("best"))
            score_axis.plot(
                [selected["epoch"]],
                [selected["val_macro_f1"]],
                marker="*",
                markersize=14,
                color=colour,
                linestyle="none",
            )
        loss_axis.set(ylabel="validation cross-entropy")
        score_axis.set(ylabel="macro-F1")
        note = "one curve per ensemble member; star: its selected epoch"
    loss_axis.set(xlabel="epoch", title="loss")
    score_axis.set(xlabel="epoch", title="validation")
    for axis in (loss_axis, score_axis):
        axis.legend()
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(f"{title}: learning curves ({note})" if title else f"learning curves ({note})")
    save_figure(figure, path)


# Report figures. Each takes {system name: data} so model and baseline share axes and colours.
SYSTEM_COLOURS = {"model": "#1f77b4", "baseline": "#ff7f0e", "VADER": "#2ca02c"}


def _colour(system: str, index: int) -> str:
    return SYSTEM_COLOURS.get(system, f"C{index + 2}")


def plot_confusion_matrices(matrices: dict[str, list[list[int]]], labels: list[str], path: str | Path) -> None:
    """One panel per system: counts and row share in each cell, shaded by the row share (recall)."""
    import numpy as np

    plt = _pyplot()
    k = len(labels)
    size = 2.2 + 0.55 * k
    # Side by side while the cells stay legible on a phone-width page; stacked beyond three classes.
    rows, columns = (1, len(matrices)) if k <= 3 else (len(matrices), 1)
    figure, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for axis, (system, matrix) in zip(axes.flat, matrices.items()):
        counts = np.asarray(matrix, dtype=float)
        true_totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, true_totals, out=np.zeros_like(counts), where=true_totals > 0)
        axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(k):
            for j in range(k):
                colour = "white" if shares[i, j] > 0.6 else "black"
                axis.text(
                    j,
                    i,
                    f"{int(counts[i, j])}\n{shares[i, j]:.0%}",
                    ha="center",
                    va="center",
                    color=colour,
                    fontsize=11 if k <= 3 else 9,
                )
        axis.set_xticks(range(k), labels, rotation=30 if max(map(len, labels)) > 8 else 0)
        axis.set_yticks(range(k), labels)
        axis.set(xlabel="predicted", ylabel="true", title=system)
    figure.suptitle("confusion matrices (count, share of true class)")
    figure.tight_layout()
    save_figure(figure, path)


def plot_reliability(bins: dict[str, list[ReliabilityBin]], eces: dict[str, float | None], path: str | Path) -> None:
    """Reliability diagram: accuracy against mean confidence per bin, with the diagonal and a count histogram."""
    plt = _pyplot()
    figure, (axis, count_axis) = plt.subplots(
        2, 1, figsize=(5.6, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    filled = [b for system_bins in bins.values() for b in system_bins if b.count]
    low = min((b.lower for b in filled), default=0.0)
    axis.plot([low, 1.0], [low, 1.0], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    width = min((b.upper - b.lower for b in filled), default=0.1) / (len(bins) + 1)
    for index, (system, system_bins) in enumerate(bins.items()):
        used = [b for b in system_bins if b.count]
        colour = _colour(system, index)
        ece = eces.get(system)
        label = f"{system} (ECE {ece:.3f})" if ece is not None else system
        axis.plot([b.confidence for b in used], [b.accuracy for b in used], marker="o", color=colour, label=label)
        count_axis.bar(
            [b.lower + width * (index + 0.5) for b in used],
            [b.count for b in used],
            width=width,
            align="edge",
            color=colour,
        )
    axis.set(ylabel="accuracy", title="reliability (top-label confidence)", xlim=(low, 1.0))
    axis.legend(loc="upper left")
    axis.grid(alpha=0.3)
    count_axis.set(xlabel="confidence", ylabel="examples")
    count_axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    save_figure(figure, path)


def plot_contrast_by_capability(
    pass_rates: dict[str, dict[str, float | None]],
    totals: dict[str, int],
    path: str | Path,
    target: float | None = 0.9,
) -> None:
    """Horizontal grouped bars of pass rate per capability, in the order of `totals`, first on top."""
    from matplotlib.ticker import PercentFormatter

    plt = _pyplot()
    capabilities = list(totals)
    height = 0.8 / len(pass_rates)
    figure, axis = plt.subplots(figsize=(6.0, 1.4 + 0.5 * len(capabilities)))
    for index, (system, rates) in enumerate(pass_rates.items()):
        positions = [row - 0.4 + height * (index + 0.5) for row in range(len(capabilities))]
        axis.barh(
            positions,
            [rates.get(c) or 0.0 for c in capabilities],
            height=height,
            color=_colour(system, index),
            label=system,
        )
    if target is not None:
        axis.axvline(target, color="grey", linestyle=":", linewidth=1.2, label=f"target {target:.0%}")
    axis.set_yticks(range(len(capabilities)), [f"{c.replace('_', ' ')} (n={totals[c]})" for c in capabilities])
    axis.invert_yaxis()
    axis.set(xlim=(0.0, 1.0), xlabel="pass rate")
    axis.tick_params(axis="y", labelsize=11)
    axis.xaxis.set_major_formatter(PercentFormatter(1.0))
    axis.grid(alpha=0.3, axis="x")
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    figure.tight_layout()
    save_figure(figure, path)


def plot_by_length(by_length: dict[str, list[LengthBucket]], path: str | Path) -> None:
    """Accuracy (solid) and macro-F1 (dashed) per review-length bucket, one colour per system."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.6))
    first = next(iter(by_length.values()))
    ticks = [f"{row.bucket}\nn={row.count}" for row in first]
    for index, (system, rows) in enumerate(by_length.items()):
        colour = _colour(system, index)
        positions = range(len(rows))
        axis.plot(positions, [row.accuracy for row in rows], marker="o", color=colour, label=f"{system} accuracy")
        axis.plot(
            positions,
            [row.macro_f1 for row in rows],
            marker="s",
            linestyle="--",
            color=colour,
            label=f"{system} macro-F1",
        )
    axis.set_xticks(range(len(ticks)), ticks)
    axis.set(xlabel="review length (tokens)", ylabel="score", title="scores by review length")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    save_figure(figure, path)


def plot_risk_coverage(curves: dict[str, list[RiskCoveragePoint]], path: str | Path) -> None:
    """Accuracy on the most confident share of examples against that share (coverage)."""
    from matplotlib.ticker import PercentFormatter

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5.6, 3.6))
    for index, (system, rows) in enumerate(curves.items()):
        axis.plot(
            [r.coverage for r in rows],
            [r.accuracy for r in rows],
            marker="o",
            color=_colour(system, index),
            label=system,
        )
    axis.set(
        xlabel="coverage (share of predictions kept)", ylabel="accuracy on the kept share", title="risk and coverage"
    )
    axis.xaxis.set_major_formatter(PercentFormatter(1.0))
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    save_figure(figure, path)


# Comparing runs (sentiment.evaluation.compare): one line per run over epochs, the same colour per run in every figure.
def plot_curves_by_run(
    histories: dict[str, list[dict[str, Any]]],
    key: str,
    path: str | Path,
    ylabel: str,
    title: str,
    groups: dict[str, str] | None = None,
) -> None:
    """`key` (a metrics.jsonl field) per epoch, one line per run; each run's selected epoch starred.
    `groups` (run name -> group name, e.g. the seeds of one cell): a group's runs share a colour and
    one legend entry."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    group_of = groups or {name: name for name in histories}
    colours = {group: f"C{index}" for index, group in enumerate(dict.fromkeys(group_of[name] for name in histories))}
    labelled: set[str] = set()
    for name, history in histories.items():
        epochs = [line["epoch"] for line in history]
        group = group_of[name]
        colour = colours[group]
        label = None if group in labelled else group
        labelled.add(group)
        axis.plot(epochs, [line[key] for line in history], marker="o", markersize=4, color=colour, label=label)
        best = [line for line in history if line.get("best")]
        if best:  # the last improvement is the epoch the run kept
            axis.plot(
                best[-1]["epoch"],
                best[-1][key],
                marker="*",
                markersize=14,
                color=colour,
                markeredgecolor="black",
                linestyle="none",
            )
    axis.set(xlabel="epoch", ylabel=ylabel, title=f"{title} (star: selected epoch)")
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


# Explanations (sentiment.evaluation.explain): one review word by word, every panel on the same token axis.
EXPLAINED_GATES = {
    "lstm": ("input", "forget", "output", "candidate", "cell"),
    "gru": ("reset", "update", "candidate", "hidden"),
    "rnn": ("hidden",),
}
GATE_TITLES = {
    "input": "input gate i (1 = write the candidate)",
    "forget": "forget gate f (1 = keep the memory)",
    "output": "output gate o (1 = show the memory)",
    "candidate": "candidate (the new content)",
    "cell": "cell state c (the memory)",
    "reset": "reset gate r (0 = candidate ignores the past)",
    "update": "update gate z (1 = keep the old state)",
    "hidden": "hidden state h",
}
CLASS_COLOURS = {"positive": "#1a9641", "negative": "#d7301f", "neutral": "#808080"}


def class_colours(classes: list[str]) -> list[str]:
    """Green for positive, red for negative, grey for neutral; matplotlib's cycle for other class names."""
    return [CLASS_COLOURS.get(label, f"C{i}") for i, label in enumerate(classes)]


def contribution_colours(classes: list[str], predicted: int, contributions) -> list[str]:
    """Each token in the colour of the class it pushes toward (two classes), or grey against the prediction."""
    colours = class_colours(classes)
    against = colours[1 - predicted] if len(classes) == 2 else "#808080"
    return [colours[predicted] if value >= 0 else against for value in contributions]


def plot_explanation(explanation, path: str | Path, units: int = 16) -> None:
    """A `sentiment.evaluation.explain.Explanation` as one tall figure: p(class) after each prefix, each token's
    occlusion contribution, then one heatmap per gate, direction and layer (tokens along x; the
    `units` units that vary most across the tokens, plus the mean over all units, along y)."""
    import textwrap

    import numpy as np

    from sentiment.model.gates import SIGMOID_GATES

    plt = _pyplot()
    e, trace = explanation, explanation.trace
    count = len(e.tokens)
    layers = 1 + max(layer for layer, _, _ in trace.gates)
    directions = list(dict.fromkeys(direction for _, direction, _ in trace.gates))
    panels = [
        (layer, direction, name)
        for layer in range(layers)
        for direction in directions
        for name in EXPLAINED_GATES[trace.cell]
        if (layer, direction, name) in trace.gates
    ]
    hidden = trace.gates[panels[0]].shape[1]
    shown = min(units, hidden)
    # Laid out by hand, in inches (matplotlib's constrained layout takes seconds on a dozen panels).
    heights = [1.7, 1.4] + [0.12 * (shown + 1)] * len(panels)
    font = 9 if count <= 40 else 6
    longest = max(len(token) for token in e.tokens)
    gap = 0.35 + min(longest, 20) * font / 72 * 0.55 * 0.71  # panel title + tick labels rotated by 45 degrees
    axis_width = max(6.5, min((0.42 if count <= 40 else 0.24) * count, 56.0))
    top, left, right = 1.0, 1.0, 0.9
    width, height = left + axis_width + right, top + sum(heights) + gap * len(heights)
    figure = plt.figure(figsize=(width, height))
    axes, bottom = [], height - top
    for panel_height in heights:
        bottom -= panel_height
        axes.append(figure.add_axes((left / width, bottom / height, axis_width / width, panel_height / height)))
        bottom -= gap
    colours = class_colours(e.classes)
    predicted = e.predicted_index

    def token_axis(axis) -> None:
        axis.set_xlim(-0.5, count - 0.5)
        axis.set_xticks(range(count), e.tokens, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
        for label, unknown in zip(axis.get_xticklabels(), e.unknown):
            if unknown:
                label.set(color="grey", style="italic")

    axis = axes[0]
    for k, label in enumerate(e.classes):
        axis.plot(
            range(count),
            e.prefix_probs[:, k],
            marker="o",
            markersize=3.5,
            color=colours[k],
            linewidth=2.2 if k == predicted else 1.2,
            label=f"p({label})",
        )
    if len(e.classes) == 2:
        axis.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    axis.set(ylim=(-0.03, 1.03), ylabel="probability")
    axis.set_title(
        "the opinion word by word: class probabilities after reading up to each word",
        fontsize=9,
        loc="left",
        y=1.0,
        pad=4,
    )
    axis.legend(fontsize=8, loc="best", framealpha=0.8)
    axis.grid(alpha=0.3)
    token_axis(axis)

    axis = axes[1]
    axis.bar(range(count), e.contributions, color=contribution_colours(e.classes, predicted, e.contributions))
    axis.axhline(0, color="black", linewidth=0.8)
    limit = max(float(np.abs(e.contributions).max()), 0.05) * 1.3
    axis.set(ylim=(-limit, limit), ylabel=f"Δ p({e.classes[predicted]})")
    axis.set_title(
        f"contribution of each word: how much p({e.classes[predicted]}) drops when it is replaced by <unk>",
        fontsize=9,
        loc="left",
        y=1.0,
        pad=4,
    )
    if count <= 40:
        for t, value in enumerate(e.contributions):
            axis.annotate(
                f"{value:+.2f}",
                (t, value),
                ha="center",
                va="bottom" if value >= 0 else "top",
                fontsize=7,
                xytext=(0, 2 if value >= 0 else -2),
                textcoords="offset points",
            )
    axis.grid(alpha=0.3, axis="y")
    token_axis(axis)

    for axis, key in zip(axes[2:], panels):
        layer, direction, name = key
        values = trace.gates[key]  # [T, hidden]
        order = np.argsort(-values.var(axis=0), kind="stable")[:shown]
        matrix = np.vstack([values[:, order].T, values.mean(axis=1)[None, :]])
        if name in SIGMOID_GATES[trace.cell]:
            style = {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}
        else:  # tanh outputs lie in [-1, 1]; the LSTM cell state can exceed that
            bound = max(1.0, float(np.abs(matrix).max())) if name == "cell" else 1.0
            style = {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
        image = axis.imshow(matrix, aspect="auto", interpolation="nearest", **style)
        axis.axhline(shown - 0.5, color="white" if style["cmap"] == "viridis" else "black", linewidth=2)
        axis.set_yticks(range(shown + 1), [f"unit {u}" for u in order] + [f"mean of {hidden}"], fontsize=7)
        read = " (read right to left)" if direction == "backward" else ""
        where = f"layer {layer + 1} {direction}" if layers > 1 else direction
        axis.set_title(f"{GATE_TITLES[name]} · {where}{read}", fontsize=9, loc="left", y=1.0, pad=4)
        token_axis(axis)
        # In an inset beside the axis, so that every panel keeps the same width and token columns line up.
        figure.colorbar(image, cax=axis.inset_axes([1.01, 0.0, 0.15 / axis_width, 1.0]))

    text = e.text if len(e.text) <= 300 else e.text[:297] + "..."
    columns = max(40, int(figure.get_figwidth() * 11))
    direction_word = "bidirectional " if len(directions) == 2 else ""
    units_shown = (
        f"all {hidden} units, the most varying across the words first"
        if shown == hidden
        else f"the {shown} of {hidden} units that vary most across the words"
    )
    lines = [
        textwrap.fill(f"“{text}”", width=columns),
        f"{direction_word}{trace.cell.upper()} predicts {e.predicted} (p = {e.probs[predicted]:.3f})",
        textwrap.fill(
            f"heatmaps: {units_shown}, then the mean of all units; "
            "grey words are not in the vocabulary (read as <unk>)",
            width=columns,
        ),
    ]
    figure.suptitle("\n".join(lines), fontsize=10, y=1.0 - 0.1 / height, va="top")
    save_figure(figure, path)


def png_data_uri(png: str | Path | bytes) -> str:
    """A PNG file (or its bytes) as a `data:` URI, for self-contained HTML pages."""
    import base64

    payload = png if isinstance(png, bytes) else Path(png).read_bytes()
    return "data:image/png;base64," + base64.b64encode(payload).decode("ascii")
