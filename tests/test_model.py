"""RecurrentClassifier: padding never leaks, packed == padded, it learns, it round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sentiment.errors import SentimentError
from sentiment.model.recurrent import POOLINGS, ModelSpec, RecurrentClassifier

VOCAB = 40


def small_model(packed: bool = False, **kwargs: object) -> RecurrentClassifier:
    defaults: dict[str, object] = dict(embedding_dim=8, hidden_size=12, dropout=0.0)
    return RecurrentClassifier(ModelSpec(VOCAB, 3, **(defaults | kwargs)), packed=packed)


def padded_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids (never 0) padded with 0 to the longest length, plus the lengths."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, VOCAB, (n,), generator=g)
    return ids, torch.tensor(lengths)


LENGTHS = [7, 3, 11, 1, 5]


# ---- configuration errors ------------------------------------------------------------------


def test_unknown_cell_is_a_user_error() -> None:
    with pytest.raises(SentimentError, match="unknown cell type 'transformer'.*lstm, gru, rnn"):
        RecurrentClassifier(ModelSpec(VOCAB, 2, cell="transformer"))


def test_unknown_pooling_is_a_user_error() -> None:
    with pytest.raises(SentimentError, match="unknown pooling 'sum'.*last, max, mean, max\\+mean"):
        RecurrentClassifier(ModelSpec(VOCAB, 2, pooling="sum"))


def test_from_config_rejects_unknown_keys() -> None:
    with pytest.raises(SentimentError, match="unknown model config keys: hiden_size"):
        RecurrentClassifier.from_config({"vocab_size": 10, "num_classes": 2, "hiden_size": 8})


# ---- padding never changes a prediction ----------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("packed", [False, True])
def test_batched_and_one_by_one_predictions_agree(cell: str, bidirectional: bool, pooling: str, packed: bool) -> None:
    torch.manual_seed(0)
    model = small_model(cell=cell, bidirectional=bidirectional, pooling=pooling, packed=packed, num_layers=2).eval()
    ids, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        batched = model(ids, lengths).softmax(dim=1)
        for row, n in enumerate(LENGTHS):
            alone = model(ids[row : row + 1, :n], lengths[row : row + 1]).softmax(dim=1)
            torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_packed_and_padded_give_the_same_pooled_outputs(
    cell: str, bidirectional: bool, num_layers: int, pooling: str
) -> None:
    torch.manual_seed(0)
    model = small_model(cell=cell, bidirectional=bidirectional, num_layers=num_layers, pooling=pooling).eval()
    ids, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        model.packed = False
        padded_out, mask = model.encode(ids, lengths)
        padded = model.pool(padded_out, mask)
        model.packed = True
        packed_out, _ = model.encode(ids, lengths)
        packed = model.pool(packed_out, mask)
    torch.testing.assert_close(padded, packed, atol=1e-5, rtol=0)
    torch.testing.assert_close(padded_out, packed_out, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_encoder_matches_a_stock_packed_bidirectional_module(cell: str) -> None:
    """An independent reference: PyTorch's own packed bidirectional 2-layer RNN, same weights."""
    torch.manual_seed(0)
    model = small_model(cell=cell, bidirectional=True, num_layers=2).eval()
    stock = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](8, 12, num_layers=2, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for layer, directions in enumerate(model.rnns):
            for direction, rnn in enumerate(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(stock, name + suffix).copy_(getattr(rnn, name + "_l0"))
    ids, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        ours, _ = model.encode(ids, lengths)
        packed = pack_padded_sequence(model.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        reference, _ = pad_packed_sequence(stock(packed)[0], batch_first=True)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_max_pooling_ignores_padding_even_when_all_outputs_are_negative() -> None:
    model = small_model(pooling="max", bidirectional=False)
    outputs = -torch.ones(2, 4, 12)
    outputs[0, 3] = 0.0  # a padded position holding a larger value than any real one
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    assert torch.equal(model.pool(outputs, mask), -torch.ones(2, 12))


# ---- it learns -----------------------------------------------------------------------------


def test_overfits_eight_tiny_sequences() -> None:
    torch.manual_seed(0)
    ids, lengths = padded_batch([3, 5, 2, 6, 4, 1, 5, 3], seed=1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    model = small_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(100):
        loss = nn.functional.cross_entropy(model(ids, lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predictions = model.eval()(ids, lengths).argmax(dim=1)
    assert torch.equal(predictions, labels)


def memory_task(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequences of 20-30 N(0, 1) values; the label is the sign of the FIRST value only."""
    lengths = torch.randint(20, 31, (n,), generator=g)
    x = torch.randn(n, 30, generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    x[:, 0] = (2 * labels - 1) * (0.5 + torch.rand(n, generator=g))  # |first| >= 0.5: a margin
    x[torch.arange(30).unsqueeze(0) >= lengths.unsqueeze(1)] = 0.0  # padding
    return x.unsqueeze(2), lengths, labels


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_remember_the_first_value(cell: str) -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(100)
    test_x, test_lengths, test_labels = memory_task(256, g)
    # Unidirectional with `last` pooling: the answer must be carried through 20-30 noisy steps.
    model = RecurrentClassifier(
        ModelSpec(
            2,
            2,
            embedding_dim=8,
            cell=cell,
            hidden_size=16,
            bidirectional=False,
            dropout=0.0,
            pooling="last",
        )
    )
    with torch.no_grad():
        # Start with the memory open: the LSTM forget gate / GRU update gate (both the second
        # block of the biases) at sigmoid(3) ~ 0.95 instead of 0.5, which would shrink the
        # first value's gradient by ~0.5**25 (the classic trick; a plain RNN has no such gate).
        bias = model.rnns[0][0].bias_ih_l0
        bias[16:32] = 3.0
    to_input = nn.Linear(1, 8)  # continuous values in place of the word embedding
    optimizer = torch.optim.Adam([*model.parameters(), *to_input.parameters()], lr=0.02)
    accuracy = 0.0
    for step in range(1, 401):
        x, lengths, labels = memory_task(64, g)
        loss = nn.functional.cross_entropy(model.forward_embedded(to_input(x), lengths), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            with torch.no_grad():
                logits = model.eval().forward_embedded(to_input(test_x), test_lengths)
            model.train()
            accuracy = (logits.argmax(dim=1) == test_labels).float().mean().item()
            if accuracy == 1.0:
                break
    assert accuracy == 1.0, f"{cell}: held-out accuracy {accuracy} after {step} steps"


# ---- persistence and helpers ---------------------------------------------------------------


def test_save_and_load_give_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_model(cell="gru", num_layers=2, pooling="last").eval()
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(model.to_config()))

    loaded = RecurrentClassifier.from_config(json.loads((tmp_path / "config.json").read_text()))
    loaded.load_state_dict(load_file(tmp_path / "model.safetensors"))
    loaded.eval()
    ids, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        assert torch.equal(model(ids, lengths), loaded(ids, lengths))
    assert loaded.to_config() == model.to_config()


def test_pretrained_embeddings_are_copied_and_can_be_frozen() -> None:
    model = small_model()
    matrix = torch.randn(VOCAB, 8)
    model.load_pretrained_embeddings(matrix, freeze=True)
    assert torch.equal(model.embedding.weight, matrix)
    assert not model.embedding.weight.requires_grad
    assert model.num_parameters(trainable_only=True) == model.num_parameters() - VOCAB * 8
    with pytest.raises(SentimentError, match="shape \\(40, 9\\), expected \\(40, 8\\)"):
        model.load_pretrained_embeddings(torch.zeros(VOCAB, 9), freeze=False)


def test_embedding_dropout_drops_whole_word_vectors_in_training_only() -> None:
    torch.manual_seed(0)
    model = small_model(embedding_dropout=0.5)
    ids, _ = padded_batch([50], seed=2)
    clean = model.embedding(ids)
    dropped = model.train().embed(ids)
    kept = dropped.abs().sum(dim=2) > 0
    assert 0 < kept.sum() < ids.numel()  # some words dropped, some kept
    torch.testing.assert_close(dropped[kept], 2 * clean[kept])  # kept ones rescaled by 1/0.5
    assert torch.equal(model.eval().embed(ids), clean)


def test_input_dropout_drops_the_same_dimensions_at_every_word_in_training_only() -> None:
    torch.manual_seed(0)
    model = small_model(input_dropout=0.5)
    ids, _ = padded_batch([50, 50, 50], seed=2)
    clean = model.embedding(ids)
    dropped = model.train().embed(ids)
    kept = (dropped != 0).any(dim=1)  # [B, E]: a dimension kept anywhere in the review
    assert 0 < kept.sum() < kept.numel()  # some dimensions dropped, some kept
    assert not torch.equal(kept[0], kept[1]) or not torch.equal(kept[1], kept[2])  # a mask per review
    mask = kept.unsqueeze(1).expand_as(clean)
    torch.testing.assert_close(dropped[mask], 2 * clean[mask])  # kept ones rescaled by 1/0.5, at every word
    assert torch.all(dropped[~mask] == 0)
    assert torch.equal(model.eval().embed(ids), clean)


@pytest.mark.parametrize("pooling", ["max", "mean", "max+mean", "attention", "max+attention"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_forward_skips_reordering_without_changing_the_result(pooling: str, num_layers: int) -> None:
    """forward() leaves the top backward outputs in reading order; max/mean pooling and the
    per-direction attention must not notice."""
    model = small_model(pooling=pooling, num_layers=num_layers).eval()
    ids, lengths = padded_batch([7, 3, 5, 1])
    with torch.no_grad():
        expected = model.classifier(model.pool(*model.encode(ids, lengths)))
        torch.testing.assert_close(model(ids, lengths), expected, rtol=0, atol=1e-6)


def test_attention_pooling_weighs_only_real_words_and_sums_to_one() -> None:
    """Each direction's attention over a review is a distribution over its real words: padding gets
    exactly 0, and a padded review is weighed as it would be alone."""
    torch.manual_seed(0)
    model = small_model(pooling="max+attention").eval()
    ids, lengths = padded_batch([7, 3, 5, 1])
    with torch.no_grad():
        directions, mask = model._encode_directions(model.embed(ids), lengths, ordered=True)
        weights = model.word_weights(directions, mask)
        assert len(weights) == 2
        for w in weights:
            torch.testing.assert_close(w.sum(dim=1), torch.ones(4))
            assert torch.all(w[~mask] == 0)
            assert torch.all(w[mask] > 0)
        alone_directions, alone_mask = model._encode_directions(model.embed(ids[1:2, :3]), lengths[1:2], ordered=True)
        torch.testing.assert_close(model.word_weights(alone_directions, alone_mask)[0], weights[0][1:2, :3])


@pytest.mark.parametrize("packed", [False, True])
def test_weight_drop_drops_recurrent_weights_in_training_only(packed: bool) -> None:
    """DropConnect: in training a dropped copy of each hidden-to-hidden matrix runs the batch (so
    outputs change, and gradients still reach the kept weights); in eval the model is the same
    network as without it."""
    torch.manual_seed(0)
    plain = small_model(packed=packed)
    dropping = small_model(packed=packed, weight_drop=0.5)
    dropping.load_state_dict(plain.state_dict())
    ids, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        torch.testing.assert_close(dropping.eval()(ids, lengths), plain.eval()(ids, lengths))
    dropping.train()
    torch.manual_seed(1)
    first = dropping(ids, lengths)
    assert not torch.allclose(first, plain.train()(ids, lengths))
    first.sum().backward()
    grad = dropping.recurrent(0, 0).weight_hh_l0.grad
    assert grad is not None and grad.abs().sum() > 0
    assert (grad == 0).any()  # the dropped entries got none
