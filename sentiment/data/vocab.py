"""The vocabulary: words seen in training, `<pad>` = 0, `<unk>` = 1.

torchtext used to provide this; it is archived and no longer imports with current torch,
and its maintainers suggested copying the few lines needed, which is what this is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from sentiment.artifacts import read_json, write_json
from sentiment.errors import SentimentError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


def frequent_words(token_lists: Iterable[Sequence[str]], min_freq: int = 1) -> list[str]:
    """The words seen at least `min_freq` times, most frequent first (ties alphabetical, so the
    result is deterministic); `<pad>` and `<unk>` are not words."""
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    counts.pop(PAD, None)
    counts.pop(UNK, None)
    return sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))


class Vocab:
    def __init__(self, tokens: Sequence[str]):
        if list(tokens[:2]) != [PAD, UNK]:
            raise SentimentError(f"a vocabulary must start with {PAD!r} and {UNK!r}")
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise SentimentError("the vocabulary has duplicate tokens")

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """Most frequent first (ties alphabetical, so the result is deterministic)."""
        kept = frequent_words(token_lists, min_freq)
        if max_size is not None:
            kept = kept[:max_size]
        return cls([PAD, UNK, *kept])

    def extended(self, words: Iterable[str]) -> Vocab:
        """This vocabulary with `words` it lacks appended, in order: every existing id keeps its meaning."""
        extra = [word for word in dict.fromkeys(words) if word not in self.index]
        return Vocab([*self.tokens, *extra])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str], max_len: int | None = None) -> list[int]:
        ids = [self.index.get(token, UNK_ID) for token in tokens]
        return ids if max_len is None else ids[:max_len]

    def encode_arrays(self, token_lists: Iterable[Sequence[str]], max_len: int | None = None) -> list[np.ndarray]:
        """`encode` of each token list, as the int32 arrays the model's batches are built from."""
        return [np.asarray(self.encode(tokens, max_len), dtype=np.int32) for tokens in token_lists]

    def save(self, path: str | Path) -> None:
        write_json(path, {"tokens": self.tokens})

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        data = read_json(path, what="vocabulary")
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise SentimentError(f"{path}: not a vocabulary file (expected a 'tokens' list)")
        return cls(data["tokens"])
