"""The step-by-step gate trace reproduces the model's own recurrent modules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentiment.errors import SentimentError
from sentiment.model.gates import GATE_NAMES, SIGMOID_GATES, check_against_module, trace_gates
from sentiment.model.recurrent import ModelSpec, RecurrentClassifier

T = 9
HIDDEN = 12

CONFIGS = [
    (cell, bidirectional, num_layers)
    for cell in ("lstm", "gru", "rnn")
    for bidirectional in (False, True)
    for num_layers in (1, 2)
]


def make(cell: str, bidirectional: bool, num_layers: int) -> tuple[RecurrentClassifier, torch.Tensor]:
    """A small model in eval mode and one review of T random token ids."""
    torch.manual_seed(0)
    model = RecurrentClassifier(
        ModelSpec(
            30,
            2,
            embedding_dim=8,
            cell=cell,
            hidden_size=HIDDEN,
            num_layers=num_layers,
            bidirectional=bidirectional,
        )
    ).eval()
    return model, torch.randint(1, 30, (T,))


@pytest.mark.parametrize(("cell", "bidirectional", "num_layers"), CONFIGS)
def test_trace_reproduces_the_module(cell: str, bidirectional: bool, num_layers: int) -> None:
    model, ids = make(cell, bidirectional, num_layers)
    assert check_against_module(model, ids) < 1e-5


@pytest.mark.parametrize(("cell", "bidirectional", "num_layers"), CONFIGS)
def test_trace_has_every_gate_one_row_per_token(cell: str, bidirectional: bool, num_layers: int) -> None:
    model, ids = make(cell, bidirectional, num_layers)
    trace = trace_gates(model, ids)
    directions = ("forward", "backward") if bidirectional else ("forward",)
    expected = {
        (layer, direction, name) for layer in range(num_layers) for direction in directions for name in GATE_NAMES[cell]
    }
    assert set(trace.gates) == expected
    for values in trace.gates.values():
        assert values.shape == (T, HIDDEN)
    assert trace.outputs is not None and trace.outputs.shape == (T, HIDDEN * len(directions))
    assert trace.num_tokens == T


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_sigmoid_gates_lie_in_the_unit_interval(cell: str) -> None:
    model, ids = make(cell, bidirectional=True, num_layers=2)
    trace = trace_gates(model, ids)
    for (_, _, name), values in trace.gates.items():
        if name in SIGMOID_GATES[cell]:
            assert np.all((values >= 0) & (values <= 1)), name
        if name in ("candidate", "hidden"):  # tanh outputs (an LSTM's h = o * tanh(c))
            assert np.all(np.abs(values) <= 1), name


def test_lstm_cell_state_follows_forget_and_input_gates() -> None:
    model, ids = make("lstm", bidirectional=False, num_layers=1)
    trace = trace_gates(model, ids)
    gate = {name: trace[(0, "forward", name)] for name in GATE_NAMES["lstm"]}
    previous = np.vstack([np.zeros((1, HIDDEN)), gate["cell"][:-1]])
    np.testing.assert_allclose(gate["cell"], gate["forget"] * previous + gate["input"] * gate["candidate"], atol=1e-6)


def test_empty_review_is_a_user_error() -> None:
    model, _ = make("gru", bidirectional=False, num_layers=1)
    with pytest.raises(SentimentError, match="non-empty review"):
        trace_gates(model, torch.zeros(0, dtype=torch.long))
