"""The A-but-B rule distilled into training (Hu et al. 2016, ACL, "Harnessing Deep Neural Networks
with Logic Rules"; `training.contrast_rule`).

In "the dress is gorgeous, but the zipper broke" the clause after "but" carries the verdict. Hu et
al. write that as a soft first-order rule and distil it into the network: for an example with that
structure the teacher q is the network's own distribution p projected towards the rule,
q(y) ∝ p(y) · exp(C · p_B(y)), where p_B is the network's reading of B alone (no gradient through
either), and the example's loss becomes (1 - π) · CE(label) + π · CE(q). Examples without the
structure keep their loss.

Here the rule grounds only sentence examples (a review's sentences and clauses, sentences
labelled one by one, another dataset's sentences): a whole review that says "love it, but it runs
small" is most often a positive review, which the rule would contradict.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

CONTRAST_WORD = "but"


def rule_starts(ids: Sequence[np.ndarray], first_sentence: int, contrast_id: int | None) -> np.ndarray:
    """[n] where each example's B begins (the token after its last "but"), or -1: for the reviews
    (the first `first_sentence` examples), for an example without "but", with nothing before its
    "but" (a clause that opens with it), or with nothing after it."""
    starts = np.full(len(ids), -1, dtype=np.int64)
    if contrast_id is None:
        return starts
    for row in range(first_sentence, len(ids)):
        found = np.flatnonzero(np.asarray(ids[row]) == contrast_id)
        if len(found):
            at = int(found[-1])
            if 0 < at < len(ids[row]) - 1:
                starts[row] = at + 1
    return starts


def imitation_share(share: float, epoch: int, done: int, batches: int) -> float:
    """π at this step: rising linearly from 0 to `share` over epoch 1, `share` after."""
    progress = (epoch - 1) + done / max(batches, 1)
    return share * min(1.0, progress)


def teacher(logits: torch.Tensor, b_logits: torch.Tensor, strength: float) -> torch.Tensor:
    """q ∝ p · exp(C · p_B), from the example's logits and those of its B alone (both detached)."""
    return torch.softmax(logits.detach() + strength * torch.softmax(b_logits.detach(), dim=-1), dim=-1)


def rule_losses(
    losses: torch.Tensor, logits: torch.Tensor, grounded: torch.Tensor, q: torch.Tensor, share: float
) -> torch.Tensor:
    """Per-example losses with the grounded rows' replaced by (1 - π) · loss + π · CE(q, p)."""
    soft = -(q * nn.functional.log_softmax(logits[grounded], dim=-1)).sum(-1)
    mixed = losses.clone()
    mixed[grounded] = (1 - share) * losses[grounded] + share * soft
    return mixed
