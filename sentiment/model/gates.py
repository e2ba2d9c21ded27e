"""What the gates do: re-run a trained model's recurrence one token at a time, in plain torch.

``trace_gates(model, ids)`` takes one review (no padding) and recomputes every recurrent layer
and direction step by step with the model's own weights, in PyTorch's gate order:

    LSTM  i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh)
          i, f, o = sigmoid(.)     g = tanh(.)
          c' = f * c + i * g       h' = o * tanh(c')
    GRU   r, z = sigmoid(W_ir x + b_ir + W_hr h + b_hr), sigmoid(W_iz x + b_iz + W_hz h + b_hz)
          n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
          h' = (1 - z) * n + z * h
    RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)

Everything is recorded per token, so on "not perfect , but pretty good" one can watch the
forget gate of an LSTM drop at "but" (or not). ``check_against_module`` confirms the trace
reproduces the model's own (cuDNN/oneDNN) encoder.

Rows are always in token order: for the backward direction, row t is the state after reading
the review from its last token down to token t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sentiment.errors import SentimentError
from sentiment.model.recurrent import DIRECTIONS, RecurrentClassifier

# What is recorded for each cell type, and which of those are sigmoid gates (values in [0, 1]).
GATE_NAMES: dict[str, tuple[str, ...]] = {
    "lstm": ("input", "forget", "candidate", "output", "cell", "hidden"),
    "gru": ("reset", "update", "candidate", "hidden"),
    "rnn": ("hidden",),
}
SIGMOID_GATES: dict[str, tuple[str, ...]] = {
    "lstm": ("input", "forget", "output"),
    "gru": ("reset", "update"),
    "rnn": (),
}


@dataclass
class GateTrace:
    """Per-token gate values of one review.

    ``gates[(layer, direction, name)]`` is a float array [T, hidden] with direction
    "forward" or "backward"; ``outputs`` is the top layer's output [T, hidden * directions],
    the same thing ``model.encode`` returns for this review.
    """

    cell: str
    ids: np.ndarray
    gates: dict[tuple[int, str, str], np.ndarray]
    outputs: np.ndarray

    def __getitem__(self, key: tuple[int, str, str]) -> np.ndarray:
        return self.gates[key]

    @property
    def num_tokens(self) -> int:
        return len(self.ids)


def _lstm_step(
    x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], w: dict[str, torch.Tensor]
) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
    h, c = state
    pre = x @ w["ih"].T + w["b_ih"] + h @ w["hh"].T + w["b_hh"]
    i, f, g, o = pre.chunk(4)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g  # keep (f) some old memory, write (i) some new candidate (g)
    h = o * torch.tanh(c)  # expose (o) part of the memory
    return (h, c), {"input": i, "forget": f, "candidate": g, "output": o, "cell": c, "hidden": h}


def _gru_step(
    x: torch.Tensor, h: torch.Tensor, w: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    xr, xz, xn = (x @ w["ih"].T + w["b_ih"]).chunk(3)
    hr, hz, hn = (h @ w["hh"].T + w["b_hh"]).chunk(3)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)  # the reset gate decides how much of the past shapes n
    h = (1 - z) * n + z * h  # the update gate interpolates between new (n) and old (h)
    return h, {"reset": r, "update": z, "candidate": n, "hidden": h}


def _rnn_step(
    x: torch.Tensor, h: torch.Tensor, w: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    h = torch.tanh(x @ w["ih"].T + w["b_ih"] + h @ w["hh"].T + w["b_hh"])
    return h, {"hidden": h}


def _weights(model: RecurrentClassifier, layer: int, direction: int) -> dict[str, torch.Tensor]:
    # Each (layer, direction) is a single-layer unidirectional module, so its tensors are "_l0".
    rnn = model.recurrent(layer, direction)
    parameters = dict(rnn.named_parameters())
    return {
        "ih": parameters["weight_ih_l0"],
        "hh": parameters["weight_hh_l0"],
        "b_ih": parameters["bias_ih_l0"],
        "b_hh": parameters["bias_hh_l0"],
    }


def _run_direction(
    model: RecurrentClassifier, layer: int, direction: int, x: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One layer, one direction over x [T, D] -> (hidden [T, H], {gate name: [T, H]})."""
    w = _weights(model, layer, direction)
    zeros = x.new_zeros(model.hidden_size)
    state: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
    state = (zeros, zeros) if model.cell == "lstm" else zeros
    steps: dict[str, Callable[..., tuple[Any, dict[str, torch.Tensor]]]] = {
        "lstm": _lstm_step,
        "gru": _gru_step,
        "rnn": _rnn_step,
    }
    step = steps[model.cell]

    order = range(x.size(0)) if direction == 0 else reversed(range(x.size(0)))
    rows: dict[int, dict[str, torch.Tensor]] = {}
    for t in order:
        state, rows[t] = step(x[t], state, w)
    # Stack in token order, whichever order the tokens were read in.
    gates = {name: torch.stack([rows[t][name] for t in range(x.size(0))]) for name in rows[0]}
    return gates["hidden"], gates


@torch.no_grad()
def trace_gates(model: RecurrentClassifier, ids: torch.Tensor) -> GateTrace:
    """Re-run the model's recurrence on one review ``ids`` [T] and record every gate."""
    if ids.dim() != 1 or ids.numel() == 0:
        shape = tuple(ids.shape)
        raise SentimentError(f"gate tracing needs one non-empty review [T], got shape {shape}")
    gates: dict[tuple[int, str, str], np.ndarray] = {}
    x = model.input_vectors(ids.unsqueeze(0))[0]  # no word dropout: the trace is what eval() computes
    for layer in range(len(model.rnns)):
        outputs = []
        for direction in range(model.num_directions):
            hidden, recorded = _run_direction(model, layer, direction, x)
            outputs.append(hidden)
            for name, values in recorded.items():
                gates[(layer, DIRECTIONS[direction], name)] = values.cpu().numpy()
        x = torch.cat(outputs, dim=1)  # both directions feed the next layer
    return GateTrace(cell=model.cell, ids=ids.cpu().numpy(), gates=gates, outputs=x.cpu().numpy())


@torch.no_grad()
def check_against_module(model: RecurrentClassifier, ids: torch.Tensor) -> float:
    """Max |traced top-layer output - model.encode output| for one review ``ids`` [T]."""
    was_training = model.training
    model.eval()
    try:
        lengths = torch.tensor([ids.numel()], device=ids.device)
        encoded, _ = model.encode(ids.unsqueeze(0), lengths)
    finally:
        model.train(was_training)
    traced = trace_gates(model, ids).outputs
    return float(np.abs(traced - encoded[0].cpu().numpy()).max())
