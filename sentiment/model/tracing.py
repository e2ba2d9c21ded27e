"""The forward pass traced into TorchScript for scoring on the CPU: many batches per call, run
in C++ with the GIL released.

Eager PyTorch takes the GIL back between its 20-odd operations per batch. `score` runs the
forward pass in worker threads beside Python work (tokenizing, reading, writing), which holds
the GIL, so each of those hand-overs waits. Measured here (2 cores, two forward workers beside
a thread running Python, two runs): the eager network kept 42-44% of its speed alone, the traced
one 65-66%, where sharing two cores with a third busy thread leaves two thirds.

A traced call per batch still hands the GIL over several times a batch (the call, the softmax,
the copy out), each wait up to `score`'s 0.5 ms switch interval while another thread runs
Python: beside a thread spinning in Python, 8,192 clothing reviews' traced calls took 3.2 s
against 2.4-2.7 s alone. So the trace is wrapped in `BatchLoop`, whose `batch_probabilities`
runs a whole group of padded batches and their softmax in one call (`predict_ids` sends
`GROUP` batches at a time): end to end, 20,000 reviews scored 3-6% faster (paired runs, 15 of
18 pairs; docs/RESULTS.md, session 46).

A trace records the operations for one example, so it is only exact for networks whose
operations do not depend on the values they read. That is the pooled head without packed
sequences (and ensembles of such networks); other networks are returned as they are. Every
trace is also checked against the eager network on batches of other sizes and lengths, and
not used where it differs.

PyTorch marks `torch.jit.trace` deprecated in favour of `torch.compile` and `torch.export`; it
is still supported in the pinned release. `torch.compile`'s generated code calls its kernels
from Python by default, so it would take the GIL between them as the eager network does.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from sentiment.model.batching import collate
from sentiment.model.recurrent import recurrent_members

TOLERANCE = 1e-5
"""Largest difference in output the check allows between the trace and the eager network."""


def traceable(network: nn.Module) -> bool:
    """Whether `network`'s forward pass runs the same operations whatever ids it reads."""
    members = recurrent_members(network)
    return all(member.head == "pooled" and not member.packed for member in members)


def traced_for_inference(network: nn.Module) -> nn.Module:
    """The network traced for inference (in a `BatchLoop`), or the network itself where a trace
    could not be exact."""
    if not traceable(network):
        return network
    vocab_size = recurrent_members(network)[0].embedding.num_embeddings
    generator = torch.Generator().manual_seed(0)

    def batch(rows: int, longest: int) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = torch.randint(1, longest + 1, (rows,), generator=generator).tolist()
        lengths[0] = longest
        return collate([torch.randint(1, vocab_size, (n,), generator=generator).tolist() for n in lengths])

    was_training = network.training
    network.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # see the module's docstring
            traced = torch.jit.trace(network, batch(8, 12), check_trace=False)
            for rows, longest in ((3, 31), (1, 1), (17, 5)):
                ids, lengths = batch(rows, longest)
                if not torch.allclose(traced(ids, lengths), network(ids, lengths), rtol=0.0, atol=TOLERANCE):
                    return network
    except RuntimeError:  # a trace that fails on another shape is not exact either
        return network
    finally:
        network.train(was_training)
    return torch.jit.script(BatchLoop(traced))


class BatchLoop(nn.Module):
    """A traced network, called as it is per batch, and `batch_probabilities` over many batches."""

    def __init__(self, traced: nn.Module):
        super().__init__()
        self.traced = traced

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.traced(ids, lengths)

    @torch.jit.export
    def batch_probabilities(self, ids: list[torch.Tensor], lengths: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each padded batch's class probabilities (float32), in one call: one GIL hand-over for all."""
        return [torch.softmax(self.traced(batch, size).float(), dim=-1) for batch, size in zip(ids, lengths)]
