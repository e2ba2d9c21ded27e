"""Sentences of another prepared dataset's training reviews as extra examples (`training.extra_sentences`).

The clothing reviews are 88% positive and the sentences kept from them 90%, so a short text
with weak evidence falls back to "positive"; and they teach the words of one product domain. A
second labelled corpus of the same classes (IMDB's balanced movie reviews, prepared by
`sentiment prepare --config configs/imdb.toml`) gives short texts of both classes in other
words. Its sentences pass the same `segment_filter` as the experiment's own (the corpus reading
learns its polar n-grams from the other corpus's reviews), and a seeded sample of
`extra_sentence_count` of them joins every epoch at `segment_weight`. Only that dataset's
training split is read: its validation and test splits, and every evaluation set, stay unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentiment.config import ExperimentConfig
from sentiment.data.prepare import PreparedData, load_prepared, sentence_starts
from sentiment.data.text import sentence_spans
from sentiment.data.vocab import Vocab, frequent_words
from sentiment.errors import SentimentError
from sentiment.training.calibration import read_as_shipped
from sentiment.training.segment_filter import filter_verdicts

CANDIDATES_PER_SENTENCE = 2
"""Sentences drawn before filtering, per sentence wanted: the filter keeps about two in three."""
POLARITY_REVIEWS = 10_000
"""Reviews of the other corpus that the corpus reading learns its polar n-grams from (at most)."""


@dataclass
class ExtraSentences:
    tokens: list[list[str]]
    labels: np.ndarray
    source: str
    """The prepared dataset they come from."""
    filtered_out: int
    """Drawn sentences the filter left out."""

    def frequent_words(self, min_freq: int) -> list[str]:
        """Their words seen at least `min_freq` times, most frequent first: the vocabulary's extension."""
        return frequent_words(self.tokens, min_freq)


def other_dataset(config: ExperimentConfig, class_names: list[str]) -> PreparedData:
    """The prepared dataset `training.extra_sentences` names, checked: it exists and has these classes."""
    name = config.training.extra_sentences
    directory = Path(config.paths.data) / "prepared" / str(name)
    if not (directory / "manifest.json").is_file():
        raise SentimentError(
            f"training.extra_sentences: no prepared dataset at {directory}; run `sentiment prepare` "
            f"for the experiment {name!r} first"
        )
    prepared = load_prepared(directory)
    if prepared.labels != class_names:
        raise SentimentError(
            f"training.extra_sentences: {directory} has the classes {prepared.labels}, this experiment "
            f"{class_names}; they must be the same"
        )
    return prepared


def extra_sentences(config: ExperimentConfig, class_names: list[str], seed: int) -> ExtraSentences:
    """A seeded sample of `training.extra_sentence_count` sentences of the training reviews of the
    prepared dataset `training.extra_sentences`, each with its review's label, through the filter."""
    t = config.training
    prepared = other_dataset(config, class_names)
    directory = prepared.directory
    train = prepared.split("train")
    rng = np.random.default_rng(seed)
    reviews = np.sort(rng.permutation(len(train))[:POLARITY_REVIEWS])
    chosen = train.select(reviews.tolist())
    tokens = list(chosen["tokens"])
    labels = np.asarray(chosen["label"])
    starts = sentence_starts(train)  # the whole split's, from Arrow (it does not see the selection)
    spans = [
        (review, begin, end)
        for review, index in enumerate(reviews)
        for begin, end in sentence_spans(starts[index], len(tokens[review]), t.segment_min_tokens)
    ]
    wanted = t.extra_sentence_count
    spans = [spans[i] for i in rng.permutation(len(spans))[: wanted * CANDIDATES_PER_SENTENCE]]
    keep, _ = filter_verdicts(t, tokens, spans, labels)
    kept = [span for span, agrees in zip(spans, keep) if agrees][:wanted]
    return ExtraSentences(
        tokens=[tokens[review][begin:end] for review, begin, end in kept],
        labels=np.asarray([labels[review] for review, _, _ in kept], dtype=np.int64),
        source=str(directory),
        filtered_out=int((~keep).sum()),
    )


def other_validation(
    config: ExperimentConfig,
    class_names: list[str],
    model: torch.nn.Module,
    vocab: Vocab,
    device: torch.device,
    run_info: dict[str, Any],
) -> dict[str, Any]:
    """The kept model's scores on the validation split of the dataset `training.extra_sentences`
    names: validation data of the second domain, which training never reads (only that dataset's
    training split gives sentences), each review cut at this experiment's `tokenize.max_len`, read
    as the run ships the model (its temperature and decision threshold, where `run_info` has them)."""
    prepared = other_dataset(config, class_names)
    validation = prepared.split("validation")
    cut = config.tokenize.max_len
    ids = vocab.encode_arrays(validation["tokens"], cut)
    scores, _ = read_as_shipped(model, ids, np.asarray(validation["label"]), device, run_info)
    return {"dataset": str(prepared.directory), "reviews": len(ids), **scores}
