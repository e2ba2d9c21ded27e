"""Small untrained recurrent networks of any kind, and random id lists to read: for tests of
what runs a network (its trace, its precision) rather than what it learned."""

from __future__ import annotations

import numpy as np
import torch

from sentiment.model.recurrent import ModelSpec, RecurrentClassifier

VOCAB = 40


def network(**kwargs: object) -> RecurrentClassifier:
    """A three-class network with the given `ModelSpec` settings; the same weights every call."""
    torch.manual_seed(0)
    defaults: dict[str, object] = dict(embedding_dim=8, hidden_size=12, dropout=0.0)
    model = RecurrentClassifier(ModelSpec(VOCAB, 3, **(defaults | kwargs)))
    if model.spec.word_features:
        model.set_word_features(torch.rand(VOCAB, model.spec.word_features))
    return model


def id_lists(n: int, seed: int = 1) -> list[list[int]]:
    """`n` id lists of 1 to 59 ids, as long as they come."""
    rng = np.random.default_rng(seed)
    return [rng.integers(1, VOCAB, int(rng.integers(1, 60))).tolist() for _ in range(n)]
