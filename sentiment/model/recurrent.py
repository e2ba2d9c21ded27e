"""The recurrent review classifier: embeddings -> LSTM/GRU/RNN stack -> pooling -> linear.

Read top to bottom: constructor, the encoder (``encode`` / ``encode_embedded``), pooling,
the classifier head, then small helpers (config round trip, pretrained vectors).

Padding and the backward direction
----------------------------------
Batches are padded with id 0 at the END of each review. A forward RNN reads the real tokens
first, so its outputs at real positions never see padding. A stock bidirectional
``nn.LSTM`` run on the padded batch, however, starts its backward direction at position T-1:
it reads the padding *before* the real tokens, and its outputs (in particular the one at
position 0 that ``last`` pooling uses) depend on how much padding the batch happened to need.

So every layer here is held as one single-layer, unidirectional module per direction
(``self.rnns[layer][direction]``), and the backward direction is run on each review reversed
*within its real length* (tokens flipped, padding left at the end) with a gather, then its
outputs are un-reversed with the same gather. Both directions therefore read only real tokens
before any padding, and packed and padded runs give the same outputs at real positions.
Each layer's two directions are concatenated as the next layer's input, hence the per-layer
loop. Cost: one oneDNN/cuDNN call per direction per layer plus two cheap gathers, about the
speed of a stock ``nn.LSTM(bidirectional=True)`` on CPU. The per-direction modules also give
the gate tracer (``sentiment.model.gates``) plain ``weight_ih_l0``/``weight_hh_l0``/``bias_*``
tensors in PyTorch's gate order.

``packed=True`` runs the same per-direction modules on ``pack_padded_sequence`` input
(skips the padding; useful on CUDA); ``packed=False`` runs the padded batch directly (the
fast path on CPU). ``encode`` sets outputs at padded positions to 0 in both modes; the
classifier's own path skips that multiply, because pooling masks padding itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sentiment.data.lexicon import ENDS_SCOPE, NEGATES, WORD_FEATURES  # negation_roles's roles, word_features's columns
from sentiment.data.text import CONNECTIVE, SENTENCE_END, WORD  # the token kinds sentence_token_kinds gives
from sentiment.errors import SentimentError

CELLS: dict[str, Callable[..., nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
POOLINGS = ("last", "max", "mean", "max+mean", "attention", "max+attention")
ATTENTION_SIZE = 64
"""Width of the word-attention scorer's hidden layer (`pooling = "attention"`)."""
HEADS = ("pooled", "sentences", "clauses")
DIRECTIONS = ("forward", "backward")
SENTENCE_CHUNK = 128
"""Sentences encoded per recurrent call, sorted by length, so short ones are not padded to the longest."""


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SentimentError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def reversal_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T] positions that flip each row over its first ``lengths[b]`` steps; padding stays put."""
    positions = torch.arange(steps, device=lengths.device).unsqueeze(0)  # [1, T]
    last = lengths.unsqueeze(1) - 1  # [B, 1]
    return torch.where(positions <= last, last - positions, positions)


def flip_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Reorder each row of ``x`` [B, T, D] by a `reversal_index` (its own inverse)."""
    return x.gather(1, index.unsqueeze(2).expand_as(x))


def sentence_starts(kinds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T] bool, True where a sentence begins, by spaCy's sentencizer rule on token kinds
    (`sentiment.data.text.sentence_token_kinds`): the first token, and every word preceded by a
    sentence-end character since the word before it ("love it !! not itchy" starts at "not");
    and every contrast connective that does not already begin one ("not perfect , | but good")."""
    steps = torch.arange(kinds.size(1), device=kinds.device).expand_as(kinds)
    connective = kinds == CONNECTIVE
    word = ((kinds == WORD) | connective) & mask
    ends_so_far = (kinds == SENTENCE_END).long().cumsum(dim=1)
    # Position of the previous word (-1: none yet), and the sentence ends counted up to it.
    previous_word = torch.where(word, steps, torch.full_like(steps, -1)).cummax(dim=1).values
    previous_word = torch.cat([previous_word.new_full((kinds.size(0), 1), -1), previous_word[:, :-1]], dim=1)
    ends_at_previous = torch.where(
        previous_word >= 0, ends_so_far.gather(1, previous_word.clamp(min=0)), torch.zeros_like(ends_so_far)
    )
    ends_before = torch.cat([ends_so_far.new_zeros((kinds.size(0), 1)), ends_so_far[:, :-1]], dim=1)
    starts = (word & (ends_before > ends_at_previous)) | connective
    starts[:, 0] = True
    return starts & mask


def negation_scope(roles: torch.Tensor) -> torch.Tensor:
    """[B, T] bool from [B, T] negation roles (`sentiment.data.lexicon.negation_roles`): True at
    every token after a negator and before the next punctuation mark or contrast connective
    ("it is n't itchy at all , but thin": "itchy at all"); never at the negator itself."""
    steps = torch.arange(roles.size(1), device=roles.device).expand_as(roles)
    none = torch.full_like(steps, -1)
    last_negator = torch.where(roles == NEGATES, steps, none).cummax(dim=1).values
    last_end = torch.where(roles == ENDS_SCOPE, steps, none).cummax(dim=1).values
    return (last_negator > last_end) & (roles != NEGATES)


@torch.no_grad()
def _copy_per_word(buffer: torch.Tensor, values, what: str) -> None:
    """Fill a per-vocabulary-id buffer (of the buffer's dtype), refusing values of another shape."""
    values = torch.as_tensor(values, dtype=buffer.dtype)
    if values.shape != buffer.shape:
        raise SentimentError(
            f"{what} of shape {tuple(values.shape)}, expected {tuple(buffer.shape)} (one per vocabulary word)"
        )
    buffer.copy_(values)


def _max_over_time(values: torch.Tensor) -> torch.Tensor:
    """[B, T, H] -> [B, H]. With gradients, max(dim) (its backward is a cheap scatter); without,
    amax (about 5x faster forward on CPU). The values are identical."""
    if values.requires_grad:
        return values.max(dim=1).values
    return values.amax(dim=1)


@dataclass(frozen=True)
class ModelSpec:
    """The classifier's architecture, checked once: what the constructor takes and `run.json`
    keeps under "model" (with the run-time `packed` switch beside it)."""

    vocab_size: int
    num_classes: int
    embedding_dim: int = 50
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    embedding_dropout: float = 0.0
    weight_drop: float = 0.0
    """DropConnect on the hidden-to-hidden weights while training (`model.weight_drop`)."""
    input_dropout: float = 0.0
    """Locked dropout on the word vectors' dimensions while training (`model.input_dropout`)."""
    negation_scope: bool = False
    word_features: int = 0
    """Fixed per-word input features read beside each word's vector (`model.lexicon_input`)."""
    lexicon_dropout: float = 0.0
    """The share of words whose lexicon valence is zeroed while training (`model.lexicon_dropout`)."""
    pooling: str = "max+mean"
    head: str = "pooled"
    padding_idx: int = 0

    def __post_init__(self) -> None:
        _check_choice("cell type", self.cell, tuple(CELLS))
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_choice("head", self.head, HEADS)
        for name, low in [
            ("vocab_size", 1),
            ("num_classes", 2),
            ("embedding_dim", 1),
            ("hidden_size", 1),
            ("num_layers", 1),
            ("word_features", 0),
        ]:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SentimentError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("dropout", "embedding_dropout", "weight_drop", "input_dropout", "lexicon_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise SentimentError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
            object.__setattr__(self, name, float(getattr(self, name)))  # JSON keeps 0.3 whatever type came in
        if not 0 <= self.padding_idx < self.vocab_size:
            raise SentimentError(f"padding_idx must be in [0, {self.vocab_size}), got {self.padding_idx!r}")
        # JSON keeps True whatever numeric types came in.
        object.__setattr__(self, "bidirectional", bool(self.bidirectional))
        object.__setattr__(self, "negation_scope", bool(self.negation_scope))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SentimentError(f"unknown model config keys: {', '.join(unknown)}")
        missing = [k for k in ("vocab_size", "num_classes") if k not in data]
        if missing:
            raise SentimentError(f"model config is missing: {', '.join(missing)}")
        return cls(**data)


class RecurrentClassifier(nn.Module):
    """Embeddings, a (bi)directional LSTM/GRU/RNN stack, padding-aware pooling, a linear head."""

    sentence_kinds: torch.Tensor  # a buffer, with the sentence and clause heads
    negation_roles: torch.Tensor  # a buffer, with negation_scope
    word_features: torch.Tensor  # a buffer [vocab_size, spec.word_features], with lexicon input

    def __init__(self, spec: ModelSpec, packed: bool = False) -> None:
        super().__init__()
        self.spec = spec
        vocab_size, num_classes, embedding_dim = spec.vocab_size, spec.num_classes, spec.embedding_dim
        cell, hidden_size, num_layers, bidirectional = spec.cell, spec.hidden_size, spec.num_layers, spec.bidirectional
        dropout, embedding_dropout, pooling, head = spec.dropout, spec.embedding_dropout, spec.pooling, spec.head
        padding_idx = spec.padding_idx
        self.cell = cell
        self.pooling = pooling
        self.packed = bool(packed)  # a run-time switch; may be flipped after construction
        self.hidden_size = hidden_size
        self.num_directions = 2 if bidirectional else 1
        self.embedding_dropout = embedding_dropout

        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        if spec.negation_scope:
            # A word inside a negation's scope is read as v + negation(v): a learned map of its
            # vector, starting as the identity (zero weights), so "not itchy" can move "itchy"
            # wherever the data says. The negation role of every vocabulary id (negator, scope
            # end, other) is set by `set_negation_roles` and saved with the weights.
            self.negation = nn.Linear(embedding_dim, embedding_dim)
            nn.init.zeros_(self.negation.weight)
            nn.init.zeros_(self.negation.bias)
            self.register_buffer("negation_roles", torch.zeros(vocab_size, dtype=torch.long))
        if spec.word_features:
            # Fixed features per vocabulary id (the lexicon's rating of the word, ...), set by
            # `set_word_features` and saved with the weights; read beside the word's vector.
            self.register_buffer("word_features", torch.zeros(vocab_size, spec.word_features))
        # rnns[layer][direction]: single-layer, unidirectional modules (see module docstring).
        extra: dict[str, Any] = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnns = nn.ModuleList()
        for layer in range(num_layers):
            input_size = embedding_dim + spec.word_features if layer == 0 else hidden_size * self.num_directions
            self.rnns.append(
                nn.ModuleList(
                    CELLS[cell](input_size, hidden_size, batch_first=True, **extra) for _ in range(self.num_directions)
                )
            )
        # The same rate as nn.LSTM(dropout=...) would apply between stacked layers, and on the
        # pooled vector before the classifier.
        self.dropout = nn.Dropout(dropout)
        pooled_dim = hidden_size * self.num_directions * len(pooling.split("+"))
        if "attention" in pooling.split("+"):
            # Additive attention over the words (Bahdanau et al. 2015; Yang et al. 2016), one scorer
            # per direction, so that each direction weighs its own states: a word's weight is a
            # softmax over the review of v . tanh(W h_t), and the direction's pooled state the
            # weighted sum. Each direction is pooled in its own order, so no reordering is paid for.
            self.word_attention = nn.ModuleList(
                nn.Sequential(nn.Linear(hidden_size, ATTENTION_SIZE), nn.Tanh(), nn.Linear(ATTENTION_SIZE, 1))
                for _ in range(self.num_directions)
            )
        self.classifier = nn.Linear(pooled_dim, num_classes)
        self.head = head
        # Temperature scaling (`sentiment.training.calibration`): set by `TrainedRun.build_model` from run.json;
        # 1 while training. Not a weight: it is fitted after model selection and kept in run.json.
        self.temperature = 1.0
        if head in ("sentences", "clauses"):
            # Multiple-instance head (MILNET, Angelidis & Lapata 2018): each sentence is encoded on
            # its own and classified by `classifier`; a learned attention over the sentences weighs
            # their class distributions into the review's. Trained on review labels only.
            self.attention = nn.Sequential(nn.Linear(pooled_dim, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 1))
            # Token kind per vocabulary id (word, punctuation, sentence end), set from the vocabulary
            # by `set_sentence_kinds` and saved with the weights, so a loaded model splits alike.
            self.register_buffer("sentence_kinds", torch.zeros(vocab_size, dtype=torch.long))

    # ---- encoder -------------------------------------------------------------------------

    def input_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, E + F]: what the recurrent stack reads (as in eval mode)."""
        return self._with_word_features(self._word_vectors(ids), ids)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, E + F] input vectors; in training, whole word vectors are dropped
        (`embedding_dropout`) and so are some dimensions of every word vector of a review, the same
        ones at each word (`input_dropout`); those leave the word features alone, so a dropped word
        is still read by what the lexicon says of it. `lexicon_dropout` drops the lexicon's valence
        of some words instead, keeping their vectors."""
        x = self._word_vectors(ids)
        if self.training and self.embedding_dropout > 0:
            keep = 1.0 - self.embedding_dropout
            word_mask = torch.bernoulli(x.new_full(x.shape[:-1] + (1,), keep))
            x = x * word_mask / keep
        if self.training and self.spec.input_dropout > 0:
            # Locked (variational) dropout, Gal & Ghahramani 2016, as AWD-LSTM applies it to its
            # inputs: one [B, 1, E] mask per batch, so a review loses the same dimensions at every step.
            keep = 1.0 - self.spec.input_dropout
            x = x * torch.bernoulli(x.new_full((x.size(0), 1, x.size(2)), keep)) / keep
        return self._with_word_features(x, ids, dropping=self.training)

    def _word_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, E]: the word vectors, negated in a negation's scope (`negation_scope`)."""
        x = self.embedding(ids)
        if self.spec.negation_scope:
            scope = negation_scope(self.negation_roles[ids]) & (ids != self.spec.padding_idx)
            x = x + scope.unsqueeze(2).to(x.dtype) * self.negation(x)
        return x

    def _with_word_features(self, x: torch.Tensor, ids: torch.Tensor, dropping: bool = False) -> torch.Tensor:
        """The word vectors `x` with each word's lexicon features beside them; `dropping`: some
        words' valence zeroed (`lexicon_dropout`), not rescaled, so a kept rating keeps the value
        it has at scoring time."""
        if not self.spec.word_features:
            return x
        features = self.word_features[ids].to(x.dtype)  # indexing copies: the buffer is never written
        if dropping and self.spec.lexicon_dropout > 0:
            kept = torch.bernoulli(features.new_full(features.shape[:-1], 1.0 - self.spec.lexicon_dropout))
            features[..., WORD_FEATURES.index("valence")] *= kept
        return torch.cat([x, features], dim=2)

    def set_word_features(self, features) -> None:
        """Per vocabulary id, [vocab_size, F] floats (`sentiment.data.lexicon.word_features`)."""
        _copy_per_word(self.word_features, features, "word features")

    def set_negation_roles(self, roles) -> None:
        """Per vocabulary id: a negator, a scope end or neither (`sentiment.data.lexicon.negation_roles`)."""
        _copy_per_word(self.negation_roles, roles, "negation roles")

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, T] padded ids and [B] real lengths -> (outputs [B, T, H*dirs], mask [B, T])."""
        return self.encode_embedded(self.embed(ids), lengths)

    def encode_embedded(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the recurrent stack on float inputs [B, T, E] (also used for non-text tasks).

        Returns (outputs [B, T, H*dirs] with 0 at padded positions, mask [B, T]).
        """
        directions, mask = self._encode_directions(x, lengths, ordered=True)
        outputs = torch.cat(directions, dim=2)
        # Padded positions hold whatever the RNN computed past the end; make them a clean 0.
        # (A multiply by the float mask is several times cheaper than masked_fill on CPU.)
        return outputs * mask.unsqueeze(2).to(outputs.dtype), mask

    def _encode_directions(
        self, x: torch.Tensor, lengths: torch.Tensor, ordered: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The top layer's outputs one [B, T, H] tensor per direction, padded positions as the
        RNN left them, and the mask. The classifier pools the directions without concatenating
        them (`_pool_directions`), which saves a copy of the whole output and its gradient.

        With ``ordered=False`` the top layer's backward outputs stay in reading order (last real
        token first): enough for max/mean pooling, which ignore order, and one gather cheaper."""
        lengths = lengths.to(device=x.device, dtype=torch.long)
        steps = torch.arange(x.size(1), device=x.device)
        mask = steps.unsqueeze(0) < lengths.unsqueeze(1)  # [B, T], True at real tokens
        flip = reversal_index(lengths, x.size(1)) if self.num_directions == 2 else None
        # pack_padded_sequence wants the lengths on the CPU; copy them once, not per layer.
        cpu_lengths = lengths.cpu() if self.packed else None
        outputs: list[torch.Tensor] = []
        for layer in range(len(self.rnns)):
            if layer > 0:
                x = self.dropout(torch.cat(outputs, dim=2))
            top = layer == len(self.rnns) - 1
            outputs = []
            for direction in range(self.num_directions):
                rnn = self.recurrent(layer, direction)
                if flip is None or direction == 0:
                    outputs.append(self._run(rnn, x, cpu_lengths))
                    continue
                # The backward direction reads each review from its last real token to its first.
                out = self._run(rnn, flip_rows(x, flip), cpu_lengths)
                outputs.append(flip_rows(out, flip) if ordered or not top else out)
        return outputs, mask

    def recurrent(self, layer: int, direction: int) -> nn.RNNBase:
        """The single-layer, unidirectional module of one layer and direction (0 forward, 1 backward)."""
        return cast(nn.RNNBase, cast(nn.ModuleList, self.rnns[layer])[direction])

    def _run(self, rnn: nn.RNNBase, x: torch.Tensor, cpu_lengths: torch.Tensor | None) -> torch.Tensor:
        """One direction of one layer: padded as is, or packed when lengths are given; in
        training with `weight_drop`, through a dropped copy of its hidden-to-hidden weights."""
        if self.training and self.spec.weight_drop > 0:
            weights = cast(torch.Tensor, rnn.weight_hh_l0)
            dropped = {"weight_hh_l0": nn.functional.dropout(weights, self.spec.weight_drop)}

            def run(inputs):
                return functional_call(rnn, dropped, (inputs,))
        else:
            run = rnn
        if cpu_lengths is None:
            return run(x)[0]
        packed = pack_padded_sequence(x, cpu_lengths, batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(run(packed)[0], batch_first=True, total_length=x.size(1))[0]

    # ---- pooling and head ----------------------------------------------------------------

    def pool(self, outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, H*dirs] outputs and [B, T] mask -> [B, pooled_dim]; padded positions are
        ignored, whatever they hold."""
        return self._pool_directions(outputs.split(self.hidden_size, dim=2), mask)

    def _pool_directions(
        self, directions: list[torch.Tensor] | tuple[torch.Tensor, ...], mask: torch.Tensor
    ) -> torch.Tensor:
        """Pool each direction's [B, T, H] outputs; the features are laid out as pooling the
        concatenated outputs would lay them out ([max fwd, max bwd, mean fwd, mean bwd]), in the
        order max, mean, attention."""
        pooled = []
        parts = self.pooling.split("+")
        if self.pooling == "last":
            # Forward direction: the state after the last real token. Backward direction: the
            # state at position 0, i.e. after reading the whole review right to left.
            rows = torch.arange(mask.size(0), device=mask.device)
            pooled.append(directions[0][rows, mask.sum(dim=1) - 1])
            if self.num_directions == 2:
                pooled.append(directions[1][:, 0])
        # Masks as arithmetic, not torch.where/masked_fill: forward plus backward of this pooling
        # measured about 2.5x faster on CPU (benchmarks/training.py times the whole step).
        real = mask.to(directions[0].dtype)
        # Padded positions drop to the dtype's minimum; encoder outputs lie in [-1, 1].
        lowest = (1.0 - real) * torch.finfo(real.dtype).min
        if "max" in parts:
            pooled.extend(_max_over_time(out + lowest.unsqueeze(2)) for out in directions)
        if "mean" in parts:
            # A [B, 1, T] x [B, T, H] product with weights 1/length at real positions, 0 at padding.
            weights = (real / real.sum(dim=1, keepdim=True)).unsqueeze(1)
            pooled.extend(torch.bmm(weights, out).squeeze(1) for out in directions)
        if "attention" in parts:
            for out, weights in zip(directions, self.word_weights(directions, mask), strict=True):
                pooled.append(torch.bmm(weights.unsqueeze(1), out).squeeze(1))
        return torch.cat(pooled, dim=1)

    def word_weights(
        self, directions: list[torch.Tensor] | tuple[torch.Tensor, ...], mask: torch.Tensor
    ) -> list[torch.Tensor]:
        """Attention pooling's weights, one [B, T] tensor per direction (each row sums to 1 over
        its real positions, 0 at padding), each in the order its direction's outputs are in."""
        lowest = (1.0 - mask.to(directions[0].dtype)) * torch.finfo(directions[0].dtype).min
        scorers = self.word_attention
        return [
            torch.softmax(scorer(out).squeeze(2) + lowest, dim=1)
            for scorer, out in zip(scorers, directions, strict=True)
        ]

    def forward_embedded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Float inputs [B, T, E] -> logits [B, num_classes]."""
        return self.classifier(self.dropout(self._pooled_features(x, lengths)))

    def _pooled_features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ordered = self.pooling == "last"  # max, mean and per-direction attention do not care about order
        return self._pool_directions(*self._encode_directions(x, lengths, ordered))

    def forward_with_states(
        self, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Training with per-position losses (`sentiment.training.position_losses`): the pooled head's
        logits [B, K], the top layer's outputs per direction ([B, T, H] each, in reading order,
        padded positions as the RNN left them) and the mask [B, T]."""
        if self.head != "pooled":
            raise SentimentError(f"per-position losses need model.head = 'pooled', not {self.head!r}")
        directions, mask = self._encode_directions(self.embed(ids), lengths, ordered=True)
        logits = self.classifier(self.dropout(self._pool_directions(directions, mask)))
        return logits, directions, mask

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[B, T] padded ids and [B] real lengths (>= 1) -> logits [B, num_classes]; with the
        sentence head, log-probabilities (a softmax over them is the review's distribution)."""
        if self.head in ("sentences", "clauses"):
            output = self.read_sentences(ids, lengths).review_log_probs
        else:
            output = self.forward_embedded(self.embed(ids), lengths)
        return output if self.temperature == 1.0 else output / self.temperature

    # ---- the sentence head ---------------------------------------------------------------

    def set_sentence_kinds(self, kinds) -> None:
        """Per vocabulary id: 0 word, 1 punctuation, 2 sentence end (`sentiment.data.text.sentence_token_kinds`)."""
        _copy_per_word(self.sentence_kinds, kinds, "sentence kinds")

    def read_sentences(self, ids: torch.Tensor, lengths: torch.Tensor) -> SentenceReading:
        """Split each review into sentences, encode and classify each on its own, and weigh them."""
        lengths = lengths.to(device=ids.device, dtype=torch.long)
        batch, steps = ids.shape
        positions = torch.arange(steps, device=ids.device).expand(batch, steps)
        mask = positions < lengths.unsqueeze(1)
        starts = sentence_starts(self.sentence_kinds[ids], mask)
        sentence_of = starts.long().cumsum(dim=1) - 1  # [B, T]: sentence number within the review
        counts = sentence_of.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1) + 1  # [B]
        offsets = counts.cumsum(0) - counts
        flat = (offsets.unsqueeze(1) + sentence_of)[mask]  # global sentence index of each real token
        start_position = torch.where(starts, positions, torch.zeros_like(positions)).cummax(dim=1).values
        within = (positions - start_position)[mask]
        total = int(counts.sum())
        sentence_lengths = torch.zeros(total, dtype=torch.long, device=ids.device).index_add_(
            0, flat, torch.ones_like(flat)
        )
        sentence_ids = ids.new_zeros((total, int(sentence_lengths.max())))
        sentence_ids[flat, within] = ids[mask]

        features = self._sentence_features(sentence_ids, sentence_lengths)
        sentence_log_probs = self.classifier(self.dropout(features)).log_softmax(dim=-1)  # [S, K]
        scores = self.attention(self.dropout(features)).squeeze(1)  # [S]
        review_of = torch.repeat_interleave(torch.arange(batch, device=ids.device), counts)
        number = torch.arange(total, device=ids.device) - offsets[review_of]
        most = int(counts.max())
        grid = scores.new_full((batch, most), -1e9)
        grid[review_of, number] = scores
        weights = grid.log_softmax(dim=1)  # [B, most]; padding slots get ~0 weight
        by_review = sentence_log_probs.new_zeros((batch, most, sentence_log_probs.size(1)))
        by_review[review_of, number] = sentence_log_probs
        review_log_probs = torch.logsumexp(weights.unsqueeze(2) + by_review, dim=1)
        return SentenceReading(
            review_log_probs=review_log_probs,
            sentence_log_probs=sentence_log_probs,
            weights=weights[review_of, number].exp(),
            counts=counts,
            starts=starts,
        )

    def _sentence_features(self, sentence_ids: torch.Tensor, sentence_lengths: torch.Tensor) -> torch.Tensor:
        """Pooled encoder features [S, P] of every sentence, encoded in chunks of similar length."""
        order = torch.argsort(sentence_lengths, descending=True)
        pieces = []
        for chunk in order.split(SENTENCE_CHUNK):
            chunk_lengths = sentence_lengths[chunk]
            chunk_ids = sentence_ids[chunk, : int(chunk_lengths.max())]
            pieces.append(self._pooled_features(self.embed(chunk_ids), chunk_lengths))
        features = torch.cat(pieces)
        return features.new_empty(features.shape).index_copy_(0, order, features)

    # ---- helpers -------------------------------------------------------------------------

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @torch.no_grad()
    def load_pretrained_embeddings(self, matrix: torch.Tensor, freeze: bool) -> None:
        """Copy a [vocab_size, embedding_dim] matrix (e.g. GloVe rows) into the embedding."""
        expected = tuple(self.embedding.weight.shape)
        if tuple(matrix.shape) != expected:
            raise SentimentError(f"pretrained embedding matrix has shape {tuple(matrix.shape)}, expected {expected}")
        self.embedding.weight.copy_(matrix)
        self.embedding.weight.requires_grad_(not freeze)

    @property
    def config(self) -> dict[str, Any]:
        return self.to_config()

    def to_config(self) -> dict[str, Any]:
        """The spec, JSON-serialisable, for ``from_config``, and the current ``packed`` switch
        (a run-time choice: the weights are the same either way)."""
        return dict(self.spec.to_dict(), packed=bool(self.packed))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RecurrentClassifier:
        config = dict(config)
        packed = bool(config.pop("packed", False))
        return cls(ModelSpec.from_dict(config), packed=packed)


@dataclass
class SentenceReading:
    """What the sentence head saw in a batch of reviews."""

    review_log_probs: torch.Tensor
    """[B, K] log of the attention-weighted mean of the sentences' class distributions."""
    sentence_log_probs: torch.Tensor
    """[S, K] every sentence's own class distribution (log), reviews one after another."""
    weights: torch.Tensor
    """[S] each sentence's attention weight within its review (they sum to 1 per review)."""
    counts: torch.Tensor
    """[B] sentences per review."""
    starts: torch.Tensor
    """[B, T] where each sentence begins."""


class EnsembleClassifier(nn.Module):
    """Several classifiers of one architecture, trained from different seeds; predicts the mean
    of their probabilities.

    ``forward`` returns log(mean_k softmax(logits_k)) rather than logits, so a softmax over its
    output is exactly the members' mean probability and every caller of a classifier (scoring,
    evaluation, explanations) works unchanged. The weights are ``members.<k>.<name>``.
    """

    def __init__(self, members: list[RecurrentClassifier]):
        super().__init__()
        if len(members) < 2:
            raise SentimentError(f"an ensemble needs at least two members, got {len(members)}")
        self.members = nn.ModuleList(members)
        self.temperature = 1.0  # of the averaged model; the members keep 1

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([member(ids, lengths).log_softmax(dim=-1) for member in self.members])
        output = torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))
        return output if self.temperature == 1.0 else output / self.temperature

    def member_models(self) -> list[RecurrentClassifier]:
        return [cast(RecurrentClassifier, member) for member in self.members]

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(member.num_parameters(trainable_only) for member in self.member_models())


def recurrent_members(model: nn.Module) -> list[RecurrentClassifier]:
    """The recurrent classifiers inside `model`: itself, or an ensemble's members."""
    if isinstance(model, EnsembleClassifier):
        return model.member_models()
    return [cast(RecurrentClassifier, model)]
