"""Every figure the stages write (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentiment.artifacts import write_bytes_atomic


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
    """Training and validation loss, and validation accuracy / macro-F1, per epoch; the best epoch marked."""
    plt = _pyplot()
    epochs = [line["epoch"] for line in history]
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(9, 3.4))
    loss_axis.plot(epochs, [line["train_loss"] for line in history], marker="o", label="train")
    loss_axis.plot(epochs, [line["val_loss"] for line in history], marker="o", label="validation")
    loss_axis.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    score_axis.plot(epochs, [line["val_accuracy"] for line in history], marker="o", label="accuracy")
    score_axis.plot(epochs, [line["val_macro_f1"] for line in history], marker="o", label="macro-F1")
    score_axis.set(xlabel="epoch", title="validation")
    for line in history:
        if line.get("best"):
            best = line["epoch"]
    for axis in (loss_axis, score_axis):
        axis.axvline(best, color="grey", linestyle=":", linewidth=1)
        axis.legend()
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(f"{title}: learning curves (dotted: selected epoch)" if title else "learning curves")
    save_figure(figure, path)
