"""Starting a model from another finished run (`model.init_from`): transfer between datasets.

A run trained on one dataset (IMDB's 40,000 movie reviews, say) has learnt how opinions are
phrased, negation included; a model for another dataset (clothing reviews) can start from it
instead of from random recurrent weights, then train on its own labels as usual.

Copied: every recurrent layer and the classifier, so the architectures must match; and the
embedding row of every word both vocabularies hold. Words only the new vocabulary has keep
their `model.vectors` start (or a random one). The classifier is copied as it is, so both runs
must predict the same classes in the same order. From an ensemble run, the first member is
copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sentiment.data.vocab import Vocab
from sentiment.errors import SentimentError
from sentiment.model.recurrent import ModelSpec, RecurrentClassifier, recurrent_members

MATCHING_KEYS = ("cell", "embedding_dim", "word_features", "hidden_size", "num_layers", "bidirectional", "pooling")


@torch.no_grad()
def transfer_weights(model: RecurrentClassifier, vocab: Vocab, labels: list[str], source: str | Path) -> dict[str, Any]:
    """Copy `source`'s weights into `model` (whose vocabulary is `vocab`); return what was copied."""
    from sentiment.training.run import load_run

    run = load_run(source)
    # Runs saved before a key existed hold its default.
    theirs, mine = {**ModelSpec(vocab_size=1, num_classes=2).to_dict(), **run.info["model"]}, model.to_config()
    for key in MATCHING_KEYS:
        if theirs.get(key) != mine[key]:
            raise SentimentError(
                f"model.init_from: {source} has model.{key} = {theirs.get(key)!r} and this config "
                f"{mine[key]!r}; they must match"
            )
    if list(run.labels) != list(labels):
        raise SentimentError(
            f"model.init_from: {source} predicts {', '.join(run.labels)} and this data "
            f"{', '.join(labels)}; the classes must be the same, in the same order"
        )
    weights = recurrent_members(run.build_model())[0].state_dict()
    own = model.state_dict()
    for name, tensor in weights.items():
        # The embedding goes by word (below); the token kinds, roles and features belong to the vocabulary.
        if name in own and name not in ("embedding.weight", "sentence_kinds", "negation_roles", "word_features"):
            own[name].copy_(tensor)
    shared = [(index, run.vocab.index[word]) for index, word in enumerate(vocab.tokens) if word in run.vocab.index]
    rows, source_rows = (list(side) for side in zip(*shared))
    model.embedding.weight[rows] = weights["embedding.weight"][source_rows].to(model.embedding.weight.dtype)
    words = len(vocab) - 2  # not <pad> and <unk>
    return {
        "run": str(source),
        "experiment": run.info.get("experiment"),
        "created": run.info.get("created"),
        "member": 1 if run.members else None,
        "shared_words": len(shared) - 2,
        "vocab_words": words,
        "share": round((len(shared) - 2) / max(words, 1), 4),
    }
