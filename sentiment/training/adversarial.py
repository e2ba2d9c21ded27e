"""Adversarial training on the word vectors (`training.adversarial = epsilon`; Miyato, Dai &
Goodfellow 2017, "Adversarial training methods for semi-supervised text classification", ICLR).

Each step also trains on the batch with every example's word vectors moved a distance epsilon
(L2, over the whole example) in the direction that raises its loss most, to first order:

    r_adv = epsilon * g / ||g||,  g = the gradient of the example's loss at its word vectors,

and the step minimises loss(x) + loss(x + r_adv), r_adv held constant. A model that must keep
its reading when any word drifts a little towards the other class cannot rest on a few cue
words; Miyato et al. report it smooths the embeddings (a word's neighbours share its polarity)
and lowers IMDB's test error of a bi-LSTM.

The perturbation enters at the embedding layer's output through forward hooks, so it reaches the
network by its ordinary forward, through a DistributedDataParallel wrapper as well: the clean pass
records the word vectors and keeps their gradient (its backward computes it anyway, beside the
weights'), the perturbed pass adds r_adv to them. A step costs about two: two forwards and two
backwards. The lexicon's word features (`model.lexicon_input`) are read beside the word vectors
and are not perturbed: they are fixed facts about the word, not learned coordinates.

`training.adversarial_loss = "consistency"` trains the perturbed pass towards the clean pass's own
prediction instead of the label: KL(p(x) || p(x + r_adv)), p(x) held constant, the loss of
virtual adversarial training (Miyato et al. 2017, section 3), at the direction above rather than
at VAT's own (which would cost a third pass). It asks that a reading hold near each example
without asking that the example's label be fitted there: a sentence example's label is its
review's and is often wrong for the sentence alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def adversarial_direction(gradient: torch.Tensor, epsilon: float) -> torch.Tensor:
    """[B, T, E] gradient -> [B, T, E] perturbation of L2 norm `epsilon` per example (row) in the
    gradient's direction; a row whose gradient is 0 (a padding-only share) gets 0."""
    norms = gradient.flatten(1).norm(dim=1).clamp(min=1e-12)
    return gradient * (epsilon / norms).view(-1, *([1] * (gradient.dim() - 1)))


def consistency_losses(clean_logits: torch.Tensor, perturbed_logits: torch.Tensor) -> torch.Tensor:
    """[B] KL(softmax(clean) || softmax(perturbed)) per example; `clean_logits` is held constant."""
    clean = torch.log_softmax(clean_logits.detach(), dim=-1)
    return nn.functional.kl_div(
        torch.log_softmax(perturbed_logits, dim=-1), clean, log_target=True, reduction="none"
    ).sum(-1)


class AdversarialEmbeddings:
    """Records the word vectors of a clean forward pass and perturbs those of the next one."""

    def __init__(self, embedding: nn.Embedding, epsilon: float) -> None:
        self.embedding, self.epsilon = embedding, epsilon
        self._vectors: torch.Tensor | None = None

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Forward passes inside keep their word vectors' gradient for `perturbing`."""

        def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            if not output.requires_grad:  # frozen vectors: their gradient is still wanted
                output = output.detach().requires_grad_()
            output.retain_grad()
            self._vectors = output
            return output

        handle = self.embedding.register_forward_hook(keep)
        try:
            yield
        finally:
            handle.remove()

    @contextmanager
    def perturbing(self) -> Iterator[None]:
        """Forward passes inside read the recorded pass's word vectors moved by r_adv (needs a
        backward of that pass's loss first, which leaves the gradient)."""
        vectors = self._vectors
        if vectors is None or vectors.grad is None:
            raise RuntimeError("perturbing needs a recorded forward pass and its backward first")
        perturbation = adversarial_direction(vectors.grad.detach(), self.epsilon)
        self._vectors = None  # the graph of the clean pass is freed with it

        def perturb(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
            return output + perturbation

        handle = self.embedding.register_forward_hook(perturb)
        try:
            yield
        finally:
            handle.remove()
