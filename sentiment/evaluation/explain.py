"""What a trained recurrent model does with one review, word by word (`sentiment explain`).

For each text, `explain_text` records three things:

- the gates of every recurrent layer and direction, re-run token by token with the model's
  own weights (`sentiment.model.gates.trace_gates`): LSTM input/forget/output gates, candidate and
  cell state; GRU reset/update gates, candidate and state; a plain RNN's hidden state;
- the class probabilities after each prefix `tokens[:1]`, `tokens[:2]`, ... (how the opinion
  evolves as the model reads; the last row is the model's prediction);
- each token's contribution by occlusion: p(predicted class) minus the same probability with
  that one token replaced by `<unk>`. Occlusion rather than integrated gradients: it needs no
  choice of baseline input and no gradients through max pooling, all T variants run as one
  batch, and it reads directly ("without 'but', p(positive) would be 0.40 lower"). Replacing
  by `<unk>` rather than deleting keeps every other token at its position, and the model has
  met `<unk>` in training (words below `vocab.min_freq`), so it stands for "some word".

For an ensemble run (`training.ensemble`), the gates are its first member's; the probabilities
and contributions are the ensemble's.

```python
from sentiment.evaluation.explain import explain_text, load_explainable_model, plot_explanation
model = load_explainable_model("runs/clothing")
explanation = explain_text(model, "not perfect, but pretty good")
plot_explanation(explanation, "explain.png")
```
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sentiment.artifacts import write_bytes_atomic
from sentiment.data.vocab import UNK_ID
from sentiment.errors import SentimentError
from sentiment.model.batching import predict_ids
from sentiment.model.gates import GateTrace, trace_gates
from sentiment.model.recurrent import recurrent_members
from sentiment.reporting.html_page import html_page
from sentiment.reporting.plots import contribution_colours, plot_explanation, png_data_uri
from sentiment.serving.inference import SentimentModel, load_model

__all__ = [
    "Explanation",
    "explain_text",
    "explain_texts",
    "format_explanation",
    "load_explainable_model",
    "plot_explanation",
    "read_texts",
    "render_explanations_html",
    "worst_contrast_failure",
    "write_explanations",
]


@dataclass
class Explanation:
    """One review as the model read it. Arrays are in token order; ``k`` = number of classes."""

    text: str
    tokens: list[str]
    """The tokens the model read (the first `tokenize.max_len`)."""
    ids: np.ndarray
    """[T] vocabulary ids; `<unk>` (1) for words the model does not know."""
    classes: list[str]
    trace: GateTrace
    prefix_probs: np.ndarray
    """[T, k]: row t holds the class probabilities after reading tokens[: t + 1]."""
    contributions: np.ndarray
    """[T]: p(predicted class) minus p(predicted class) with token t replaced by `<unk>`."""
    probs: np.ndarray
    """[k]: the model's prediction for the whole text (= prefix_probs[-1])."""
    dropped_tokens: int = 0
    """Tokens beyond `tokenize.max_len`, which the model never reads."""
    decided: int | None = None
    """The predicted class's index by the model's decision rule (its threshold, if it has one);
    None: the most probable class."""
    sentences: list = None  # type: ignore[assignment]
    """`SentencePrediction` per sentence: its own reading and, with the sentence head, its weight."""

    @property
    def predicted_index(self) -> int:
        return int(self.probs.argmax()) if self.decided is None else self.decided

    @property
    def predicted(self) -> str:
        return self.classes[self.predicted_index]

    @property
    def unknown(self) -> np.ndarray:
        """[T] True where the token is not in the vocabulary (read as `<unk>`)."""
        return self.ids == UNK_ID


def load_explainable_model(path: str | Path, device: str = "cpu") -> SentimentModel:
    """A trained run's model; a baseline directory is refused with one clear error (it has no gates)."""
    model = load_model(path, device=device)
    if not isinstance(model, SentimentModel):
        raise SentimentError(
            f"{path} is the bag-of-words baseline: it has no recurrent gates to explain; "
            "give a trained run directory such as runs/<experiment>"
        )
    return model


def explain_text(model: SentimentModel, text: str) -> Explanation:
    """Gate trace, prefix probabilities and occlusion contributions for one text."""
    if not isinstance(model, SentimentModel):
        raise SentimentError("only a trained recurrent model can be explained; the bag-of-words baseline has no gates")
    if not isinstance(text, str) or not text.strip():
        raise SentimentError("nothing to explain: the text is empty")
    tokens = model.sentence_splitter()(text)
    if not tokens:
        raise SentimentError(f"nothing to explain: {text!r} has no tokens")
    ids = model.encode(tokens)
    count = len(ids)
    network = model.network
    # An ensemble's gates are its first member's; the probabilities below are the ensemble's.
    trace = trace_gates(recurrent_members(network)[0], torch.tensor(ids, dtype=torch.long, device=model.device))
    prefixes = [ids[: t + 1] for t in range(count)]
    occluded = [ids[:t] + [UNK_ID] + ids[t + 1 :] for t in range(count)]
    # One call for both sets: similar lengths are batched together, each sequence unpadded or masked.
    probabilities = predict_ids(network, prefixes + occluded, batch_size=model.batch_size, device=model.device)
    prefix_probs, occluded_probs = probabilities[:count], probabilities[count:]
    probs = prefix_probs[-1]
    predicted = int(model.decide(probs[None])[0])
    contributions = probs[predicted] - occluded_probs[:, predicted]
    return Explanation(
        text=text,
        tokens=list(tokens[:count]),
        ids=np.asarray(ids),
        classes=list(model.classes),
        trace=trace,
        prefix_probs=prefix_probs,
        contributions=contributions,
        probs=probs,
        dropped_tokens=len(tokens) - count,
        decided=predicted,
        sentences=model.predict_sentences([text])[0],
    )


def explain_texts(model: SentimentModel, texts: Sequence[str]) -> list[Explanation]:
    if not texts:
        raise SentimentError("nothing to explain: give one or more texts, or --file with one text per line")
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise SentimentError(f"nothing to explain: text {number} is empty")
    return [explain_text(model, text) for text in texts]


def read_texts(path: str | Path) -> list[str]:
    """One text per line; blank lines are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SentimentError(f"text file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError) as error:
        raise SentimentError(f"{path}: cannot read it as UTF-8 text ({error})") from None
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise SentimentError(f"{path} has no texts (one per line expected)")
    return texts


# ---- outputs -------------------------------------------------------------------------------


def format_explanation(explanation: Explanation) -> str:
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


def _sentence_line(e: Explanation, sentence) -> str:
    p = ", ".join(f"{label} {p:.3f}" for label, p in zip(e.classes, sentence.probabilities))
    weight = f"weight {sentence.weight:.2f}  " if sentence.weight is not None else ""
    return f"{weight}{sentence.label:<8}  {p}  {sentence.text!r}"


def _bar(value: float, scale: int = 20) -> str:
    """A signed text bar: '+' cells for support of the prediction, '-' for opposition."""
    cells = min(scale, int(round(abs(value) * scale)))
    return ("+" if value >= 0 else "-") * cells


def write_explanations(explanations: Sequence[Explanation], output: str | Path, units: int = 16) -> list[Path]:
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
    explanations: Sequence[Explanation], title: str = "How the model reads these reviews", units: int = 16
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


def _html_section(e: Explanation, image_uri: str) -> str:
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


# ---- for the evaluation report -------------------------------------------------------------


def worst_contrast_failure(cases: Sequence[dict]) -> dict | None:
    """The failed contrast case the model got most confidently wrong, from `ContrastResult.to_dict()["cases"]`.

    Confidence in the wrong answer is p(positive) for an expected negative, 1 - p(positive) for
    an expected positive; None when nothing with a positive/negative label failed.
    """

    def wrongness(case: dict) -> float:
        return case["p_positive"] if case["expected"] == "negative" else 1.0 - case["p_positive"]

    failed = [c for c in cases if not c["passed"] and c["expected"] in ("positive", "negative")]
    return max(failed, key=wrongness, default=None)
