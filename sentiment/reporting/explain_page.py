"""The outputs of `sentiment explain`: a terminal view, a figure per text, or one self-contained HTML
page, from the explanations `sentiment.evaluation.explain.explain_text` computes (its `Explanation`:
the tokens, each one's contribution and the class probabilities after each prefix, the gate trace,
each sentence's reading). The figure itself is `sentiment.reporting.plots.plot_explanation`.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sentiment.artifacts import write_bytes_atomic
from sentiment.errors import SentimentError
from sentiment.reporting.html_page import html_page
from sentiment.reporting.plots import contribution_colours, plot_explanation, png_data_uri

__all__ = ["format_explanation", "render_explanations_html", "write_explanations"]


def format_explanation(explanation) -> str:
    """A compact terminal view: each token with p(predicted class) after it and its contribution."""
    e = explanation
    label = e.predicted
    width = max(8, *(len(token) for token in e.tokens))
    lines = [
        f"{e.text!r} -> {label} (p={e.probs[e.predicted_index]:.3f})",
        f"  {'token':<{width}}  p({label}) so far  contribution",
    ]
    for t, token in enumerate(e.tokens):
        shown = token + ("*" if e.unknown[t] else "")
        bar = _bar(float(e.contributions[t]))
        lines.append(
            f"  {shown:<{width}}  {e.prefix_probs[t, e.predicted_index]:>13.3f}  {e.contributions[t]:>+12.3f} {bar}"
        )
    if e.sentences and len(e.sentences) > 1:
        lines.append(
            "  sentences"
            + (" (weight: share in the prediction)" if e.sentences[0].weight is not None else " (each read on its own)")
        )
        lines += [f"    {_sentence_line(e, sentence)}" for sentence in e.sentences]
    notes = []
    if e.unknown.any():
        notes.append("* not in the vocabulary (read as <unk>)")
    if e.dropped_tokens:
        notes.append(f"{e.dropped_tokens} tokens beyond tokenize.max_len were not read")
    notes.append("contribution: how much lower p(" + label + ") is when the token is replaced by <unk>")
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def _sentence_line(e, sentence) -> str:
    p = ", ".join(f"{label} {p:.3f}" for label, p in zip(e.classes, sentence.probabilities))
    weight = f"weight {sentence.weight:.2f}  " if sentence.weight is not None else ""
    return f"{weight}{sentence.label:<8}  {p}  {sentence.text!r}"


def _bar(value: float, scale: int = 20) -> str:
    """A signed text bar: '+' cells for support of the prediction, '-' for opposition."""
    cells = min(scale, int(round(abs(value) * scale)))
    return ("+" if value >= 0 else "-") * cells


def write_explanations(explanations: Sequence, output: str | Path, units: int = 16) -> list[Path]:
    """PNG (`out.png` for one text, `out-1.png`, `out-2.png`, ... for several) or one HTML page."""
    output = Path(output)
    suffix = output.suffix.lower()
    if output.is_dir():
        raise SentimentError(f"-o {output} is a directory; give a file name such as {output / 'explain.png'}")
    if suffix == ".html":
        write_bytes_atomic(output, render_explanations_html(explanations, units=units).encode("utf-8"))
        return [output]
    if suffix != ".png":
        raise SentimentError(f"-o {output}: write a .png (one image per text) or an .html page")
    if len(explanations) == 1:
        paths = [output]
    else:
        numbers = range(1, len(explanations) + 1)
        paths = [output.with_name(f"{output.stem}-{number}{output.suffix}") for number in numbers]
    for explanation, path in zip(explanations, paths):
        plot_explanation(explanation, path, units=units)
    return paths


def render_explanations_html(
    explanations: Sequence, title: str = "How the model reads these reviews", units: int = 16
) -> str:
    """A self-contained page (figures inlined as data URIs): one section per text."""
    sections = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, e in enumerate(explanations, start=1):
            figure = Path(scratch) / f"explain-{number}.png"
            plot_explanation(e, figure, units=units)
            sections.append(_html_section(e, png_data_uri(figure)))
    legend = (
        "Each word is shaded by its contribution: how much lower the predicted class's probability is "
        "when the word is replaced by &lt;unk&gt;, in the colour of the class it pushes toward (green "
        "positive, red negative; grey: against the prediction, with more than two classes); the darker, "
        "the larger. Hover a word for the numbers. Underlined words are not in the vocabulary."
    )
    return html_page(title, f"<p>{legend}</p>\n" + "\n".join(sections), _CSS)


def _html_section(e, image_uri: str) -> str:
    from matplotlib.colors import to_rgb

    index = e.predicted_index
    scale = max(float(np.abs(e.contributions).max()), 1e-6)
    colours = contribution_colours(e.classes, index, e.contributions)  # the same colours as the figure
    words = []
    for t, token in enumerate(e.tokens):
        value = float(e.contributions[t])
        red, green, blue = (round(channel * 255) for channel in to_rgb(colours[t]))
        colour = f"rgba({red},{green},{blue},{min(1.0, abs(value) / scale) * 0.7:.2f})"
        tip = f"p({e.predicted}) after this word: {e.prefix_probs[t, index]:.3f}; contribution {value:+.3f}"
        unknown = " unk" if e.unknown[t] else ""
        words.append(
            f'<span class="tok{unknown}" style="background:{colour}" title="{html.escape(tip)}">'
            f"{html.escape(token)}</span>"
        )
    probs = ", ".join(f"{html.escape(label)} {p:.3f}" for label, p in zip(e.classes, e.probs))
    note = f" ({e.dropped_tokens} tokens beyond tokenize.max_len not read)" if e.dropped_tokens else ""
    sentences = ""
    if e.sentences and len(e.sentences) > 1:
        weighted = e.sentences[0].weight is not None
        rows = "".join(
            f"<tr><td>{html.escape(s.text)}</td><td>{html.escape(s.label)}</td>"
            + "".join(f"<td>{p:.3f}</td>" for p in s.probabilities)
            + (f"<td>{s.weight:.2f}</td>" if weighted else "")
            + "</tr>"
            for s in e.sentences
        )
        header = (
            "<tr><th>sentence</th><th>label</th>"
            + "".join(f"<th>p({html.escape(c)})</th>" for c in e.classes)
            + ("<th>weight</th>" if weighted else "")
            + "</tr>"
        )
        caption = (
            "each sentence's own reading and its weight in the prediction"
            if weighted
            else "each sentence read on its own"
        )
        sentences = f'<table class="sentences"><caption>{caption}</caption>{header}{rows}</table>'
    return (
        f"<section><h2>{html.escape(e.text)}</h2>"
        f"<p>Predicted <b>{html.escape(e.predicted)}</b>: {probs}{note}</p>"
        f'<p class="tokens">{" ".join(words)}</p>{sentences}'
        f'<img src="{image_uri}" alt="gate activations, prefix probabilities and contributions"></section>'
    )


_CSS = """
img { border: 1px solid #ddd; }
.tokens { font-size: 1.15em; line-height: 2; }
.tok { padding: 2px 4px; border-radius: 3px; } .tok.unk { text-decoration: underline dotted; }
table.sentences { border-collapse: collapse; margin: .5rem 0; } table.sentences td, table.sentences th {
  border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left; }
"""
