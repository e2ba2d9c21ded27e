"""Sentences labelled one by one as training examples (`training.labelled_sentences`), and the
reading of their held-out part after training.

The experiment's own sentence examples carry their review's label, 90% "positive" on the
clothing reviews; a set labelled sentence by sentence (`sentiment.data.labelled_sentences`)
says what a short text of either class looks like, in other words than one product domain's.
Its training part joins every epoch, after the experiment's own examples and before another
dataset's sentences (`extra_sentences`, which the loop drops after their epochs). Its fixed
held-out part never trains: the kept model's accuracy on it, overall and by source, goes to
`run.json` as `sentence_validation`, a validation reading of short texts that the evaluation
sets (which only report) do not give. `training.sentence_validation` asks for that reading
without training on the set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sentiment.config import ExperimentConfig
from sentiment.data.labelled_sentences import LABELS, LabelledSentence, LabelledSentences, load_labelled_sentences
from sentiment.data.text import Tokenizer
from sentiment.data.vocab import Vocab, frequent_words
from sentiment.errors import SentimentError
from sentiment.model.recurrent import RecurrentClassifier
from sentiment.training.calibration import read_as_shipped


@dataclass
class TokenizedSentences:
    tokens: list[list[str]]
    labels: np.ndarray
    """Indices into the experiment's class names."""
    sources: list[str]


@dataclass
class LabelledTrainingSentences:
    sentences: LabelledSentences
    train: TokenizedSentences
    held_out: TokenizedSentences

    def frequent_words(self, min_freq: int) -> list[str]:
        """The training part's words seen at least `min_freq` times, most frequent first: the
        vocabulary's extension (the held-out part does not choose words)."""
        return frequent_words(self.train.tokens, min_freq)


def labelled_training_sentences(
    config: ExperimentConfig, class_names: list[str], key: str = "labelled_sentences"
) -> LabelledTrainingSentences:
    """The set `training.<key>` names (`labelled_sentences` or `sentence_validation`), tokenized as
    `prepare` tokenizes reviews, its labels as indices into `class_names` (which must hold both of
    its classes)."""
    name = str(getattr(config.training, key))
    missing = [label for label in LABELS if label not in class_names]
    if missing:
        raise SentimentError(
            f"training.{key}: the set {name!r} is labelled {' / '.join(LABELS)}, and this "
            f"experiment's classes {class_names} lack {', '.join(missing)}; use a binary label scheme"
        )
    sentences = load_labelled_sentences(name, config.paths.data)
    tokenizer = Tokenizer(lowercase=config.tokenize.lowercase)

    def tokenized(part: list[LabelledSentence]) -> TokenizedSentences:
        return TokenizedSentences(
            tokens=list(tokenizer.pipe(sentence.text for sentence in part)),
            labels=np.asarray([class_names.index(LABELS[sentence.label]) for sentence in part], dtype=np.int64),
            sources=[sentence.source for sentence in part],
        )

    return LabelledTrainingSentences(sentences, tokenized(sentences.train), tokenized(sentences.held_out))


def held_out_reading(
    labelled: LabelledTrainingSentences,
    model: torch.nn.Module,
    vocab: Vocab,
    max_len: int,
    device: torch.device,
    run_info: dict[str, Any],
) -> dict[str, Any]:
    """The kept model on the held-out sentences, read as the run ships it (its temperature and
    decision threshold, where `run_info` has them): accuracy, macro-F1 and loss, and accuracy by
    source. Their words the model's vocabulary lacks read as <unk> (the vocabulary is the model's own)."""
    part = labelled.held_out
    scores, predictions = read_as_shipped(
        model, vocab.encode_arrays(part.tokens, max_len), part.labels, device, run_info
    )
    correct = predictions == part.labels
    sources = np.asarray(part.sources)
    return {
        "set": labelled.sentences.name,
        "sentences": len(part.tokens),
        **scores,
        "accuracy_by_source": {
            source: round(float(correct[sources == source].mean()), 5) for source in dict.fromkeys(part.sources)
        },
    }


@contextmanager
def vectors_detached(model: RecurrentClassifier, rows: torch.Tensor) -> Iterator[None]:
    """Forward passes inside read the word vectors of the batch rows `rows` marks detached from the
    embedding table (`training.labelled_sentences_train_vectors = false`): those rows' loss trains
    the recurrent layers and the classifier, not the vectors, so sentences of other products do not
    move the clothing words' vectors. Entered before adversarial training's hooks, so their
    adversarial direction is still taken (it is a gradient of the vectors read, not of the table)."""
    if not bool(rows.any()):
        yield
        return

    def detach(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        return torch.where(rows[:, None, None], output.detach(), output)

    handle = model.embedding.register_forward_hook(detach)
    try:
        yield
    finally:
        handle.remove()
