"""Loading a saved classifier to score raw texts (the API): a trained run, a baseline, or VADER.

```python
from sentiment import load_model
model = load_model("runs/clothing")
predictions = model.predict(["not perfect, but pretty good"])
predictions.labels, predictions.probabilities   # ["positive"], array([[0.03, 0.97]])
fast = load_model("runs/clothing", precision="bfloat16")   # where the CPU has bfloat16 arithmetic
```
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from sentiment.data.text import Tokenizer
from sentiment.data.vocab import UNK_ID
from sentiment.errors import SentimentError
from sentiment.model.batching import collate, predict_ids
from sentiment.model.classifier import SentencePrediction, TextClassifier
from sentiment.model.precision import check_precision, in_precision
from sentiment.model.tracing import traced_for_inference


class SentimentModel(TextClassifier):
    """A trained run ready to score texts: the run's tokenizer settings, vocabulary and weights."""

    tokenizer: Tokenizer

    def __init__(self, run, device: str = "cpu", batch_size: int = 256, precision: str = "float32"):
        check_precision(precision, device)
        self.run = run
        self.classes = list(run.labels)
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.max_len = run.config.tokenize.max_len
        self.tokenizer = Tokenizer(lowercase=run.config.tokenize.lowercase)
        self.network = run.build_model(device)
        self.decision_threshold = run.decision_threshold
        self._word_ids = self.tokenizer.word_ids(run.vocab.tokens, UNK_ID)
        self._inference_network: torch.nn.Module | None = None
        self._traced_at = 1.0
        self._tracing = threading.Lock()

    @property
    def inference_network(self) -> torch.nn.Module:
        """What predictions run: the network in the model's precision (`sentiment.model.precision`),
        on the CPU traced into TorchScript where the trace is exact (`sentiment.model.tracing`);
        made on first use. The sentence head's readings run the float32 network itself."""
        with self._tracing:  # score's worker threads may ask for it at the same time
            # A trace keeps the temperature it was made with: a new one is traced again.
            temperature = getattr(self.network, "temperature", 1.0)
            if self._inference_network is None or self._traced_at != temperature:
                network = in_precision(self.network, self.precision)
                on_cpu = str(self.device).startswith("cpu")
                self._inference_network = traced_for_inference(network) if on_cpu else network
                self._traced_at = temperature
            return self._inference_network

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return self.run.vocab.encode(tokens, self.max_len)

    def scoring_inputs(self, texts: Iterable[str]) -> Iterable[list[int]]:
        """Token ids straight from the tokenizer (`sentiment.data.text.WordIds`), not yet cut at max_len."""
        return self._word_ids.pipe(texts)

    def predict_inputs(self, inputs: Sequence[Sequence[int]]) -> np.ndarray:
        empty = next((i for i, ids in enumerate(inputs) if len(ids) == 0), None)
        if empty is not None:
            raise SentimentError(f"text {empty} has no tokens; the model cannot score an empty review")
        max_len = self.max_len
        ids = inputs if max_len is None else [row if len(row) <= max_len else row[:max_len] for row in inputs]
        return predict_ids(self.inference_network, ids, self.batch_size, self.device)

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        return self.predict_inputs([self.run.vocab.encode(tokens) for tokens in token_lists])

    def predict_sentences(self, texts: Sequence[str]) -> list[list[SentencePrediction]]:
        """With the sentence head: its own split, per-sentence distributions and attention weights,
        from the same forward pass as the text's prediction. Otherwise each sentence on its own."""
        network = self.network
        head = getattr(network, "head", "pooled")
        if head == "pooled":
            return super().predict_sentences(texts)
        result = []
        with torch.no_grad():
            network.eval()
            for tokens, _, sentence_texts in self.tokenizer.pipe_with_sentences(texts, with_texts=True):
                if not tokens:
                    raise SentimentError("a text has no tokens; the model cannot score an empty review")
                ids, lengths = collate([self.encode(tokens)])
                reading = network.read_sentences(ids.to(self.device), lengths.to(self.device))
                probabilities = reading.sentence_log_probs.exp().cpu().numpy()
                decided = self.decide(probabilities)
                weights = reading.weights.cpu().numpy()
                if head == "sentences":
                    # The model's split of the (possibly truncated) ids; the texts are the sentencizer's.
                    texts_for = sentence_texts[: len(probabilities)]
                else:  # clauses: the model's own segments, as its tokens
                    bounds = [*torch.nonzero(reading.starts[0]).flatten().tolist(), len(ids[0])]
                    texts_for = [" ".join(tokens[b:e]) for b, e in zip(bounds, bounds[1:])]
                result.append(
                    [
                        SentencePrediction(text, self.classes[int(c)], p, float(w))
                        for text, p, c, w in zip(texts_for, probabilities, decided, weights)
                    ]
                )
        return result


class BaselineModel(TextClassifier):
    """The saved bag-of-words baseline (`runs/<experiment>/baseline/`), scored like the model."""

    def __init__(self, directory: str | Path):
        from sentiment.model.baseline import BagOfWordsBaseline

        self.baseline = BagOfWordsBaseline.load(directory)
        self.classes = list(self.baseline.labels)
        self.max_len = None
        self.tokenizer = Tokenizer(lowercase=self.baseline.settings.get("lowercase", True))

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        return self.baseline.predict_proba([list(tokens) for tokens in token_lists])


def load_model(
    path: str | os.PathLike, device: str = "cpu", batch_size: int = 256, precision: str = "float32"
) -> TextClassifier:
    """Load a trained run (`runs/<experiment>/`), its baseline (`runs/<experiment>/baseline/`), or
    `vader` / `vader:ternary` (the rule-based lexicon, `sentiment.model.vader`; no files needed).

    `precision="bfloat16"` runs a trained run's forward pass in bfloat16 where the device computes
    it natively (`sentiment.model.precision`); the baseline and VADER have no such pass."""
    from sentiment.model.vader import MODEL_NAMES, VaderModel
    from sentiment.training.run import load_run

    if str(path) in MODEL_NAMES and not Path(path).exists():
        _float32_only(precision, f"{path} (VADER, a lexicon)")
        return VaderModel(MODEL_NAMES[str(path)])
    # The baseline's module imports scikit-learn and SciPy (2.7 s here): not for a trained run.
    if not (Path(path) / "run.json").is_file():
        from sentiment.model.baseline import CONFIG_FILE

        if (Path(path) / CONFIG_FILE).is_file():
            _float32_only(precision, f"{path} (the bag-of-words baseline)")
            return BaselineModel(Path(path))
    check_precision(precision, device)  # before the weights load
    return SentimentModel(load_run(Path(path)), device=device, batch_size=batch_size, precision=precision)


def _float32_only(precision: str, what: str) -> None:
    if precision != "float32":
        raise SentimentError(f"--precision {precision} is for a trained run's network; {what} has none to run")
