"""Training losses on the recurrent states at every position, beside the review's own loss.

The classifier reads a pooled summary of the whole review, so nothing asks the state after
"not" to mean anything. These losses do, through small per-direction heads that turn each
position's state into a class distribution (they are trained with the model and then dropped:
the saved model, its predictions and its speed are those of the pooled classifier):

* **target replication** (Lipton et al. 2016, "Learning to Diagnose with LSTM Recurrent Neural
  Networks"): every position's distribution, in each reading direction, is trained on the
  review's label, so a prefix (forward) or suffix (backward) of any length must already lean
  towards it; short texts stop being out of distribution.
* **linguistic regularisation** (Qian et al. 2017, "Linguistically Regularized LSTM for
  Sentiment Classification", ACL): between two neighbouring positions, the distribution may
  change little at a word the lexicon does not rate, must move by a learned per-category drift
  at a rated word, and must be transformed by a learned map at a negator (`sentiment.data.lexicon`).
  Each rule is a hinge on the symmetric KL divergence between the distribution at a position
  and the one the rule predicts from its neighbour (forward: the word before; backward: the
  word after), `MARGIN` free.

Both need per-position distributions to regularise, so linguistic regularisation is only on
with target replication.
"""

from __future__ import annotations

import torch
from torch import nn

from sentiment.data.lexicon import CATEGORIES, NEGATOR, NEUTRAL

MARGIN = 0.01
"""Symmetric KL below which a neighbouring pair is not penalised (Qian et al.'s M)."""


class PositionLosses(nn.Module):
    """Per-direction heads over the recurrent states and the regulariser's learned parameters.

    ``forward`` returns per-example losses [B] (target replication, linguistic regularisation),
    each a mean over the review's positions, for the caller to weigh like the review loss."""

    token_categories: torch.Tensor  # a buffer, with the regulariser

    def __init__(
        self,
        hidden_size: int,
        num_directions: int,
        num_classes: int,
        token_categories: torch.Tensor | None,
        dropout: float,
    ):
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(hidden_size, num_classes) for _ in range(num_directions))
        self.dropout = nn.Dropout(dropout)
        self.regularised = token_categories is not None
        if token_categories is not None:
            self.register_buffer("token_categories", torch.as_tensor(token_categories, dtype=torch.long))
            # A learned shift of the logits per lexicon category (zero for neutral words and
            # negators, which the rules treat otherwise), and the negators' map, which starts as
            # a flip of the logits.
            self.drift = nn.Parameter(torch.zeros(CATEGORIES, num_classes))
            self.negation = nn.Parameter(-torch.eye(num_classes))

    def forward(
        self, directions: list[torch.Tensor], mask: torch.Tensor, ids: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        real = mask.to(directions[0].dtype)
        replication = directions[0].new_zeros(mask.size(0))
        regularisation = directions[0].new_zeros(mask.size(0)) if self.regularised else None
        for direction, (states, head) in enumerate(zip(directions, self.heads)):
            logits = head(self.dropout(states))  # [B, T, K]
            log_probs = logits.log_softmax(dim=-1)
            picked = log_probs.gather(2, targets.view(-1, 1, 1).expand(-1, logits.size(1), 1)).squeeze(2)
            replication = replication - (picked * real).sum(dim=1) / real.sum(dim=1)
            if regularisation is not None:
                regularisation = regularisation + self._regularise(logits, mask, ids, backward=direction == 1)
        return replication / len(self.heads), (None if regularisation is None else regularisation / len(self.heads))

    def _regularise(self, logits: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor, backward: bool) -> torch.Tensor:
        if backward:  # read right to left: position t follows position t + 1
            current, previous, words = logits[:, :-1], logits[:, 1:], ids[:, :-1]
        else:
            current, previous, words = logits[:, 1:], logits[:, :-1], ids[:, 1:]
        pairs = mask[:, 1:].to(logits.dtype)  # both positions real
        category = self.token_categories[words]  # [B, T-1]
        negated = previous @ self.negation.T
        shifted = previous + self.drift[category]
        expected = torch.where(
            (category == NEGATOR).unsqueeze(2),
            negated,
            torch.where((category == NEUTRAL).unsqueeze(2), previous, shifted),
        )
        divergence = symmetric_kl(current.log_softmax(dim=-1), expected.log_softmax(dim=-1))
        hinge = (divergence - MARGIN).clamp(min=0) * pairs
        return hinge.sum(dim=1) / pairs.sum(dim=1).clamp(min=1)


def symmetric_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """(KL(p||q) + KL(q||p)) / 2 over the last dimension, from log-probabilities."""
    return 0.5 * ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)
