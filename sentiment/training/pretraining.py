"""Language-model pretraining of the encoder before it learns the labels (Dai & Le 2015; ULMFiT).

Before the classifier sees a label, the first recurrent layer learns to read: its forward
module predicts each next token of the training reviews, its backward module each previous
token (reading the review right to left, as it does in the classifier), and the embedding
learns with them. Fine-tuning then starts from these weights. Only the training split's token
ids are used, never its labels, and never the validation or test texts for the updates
(the validation split only reports the language model's perplexity).

Only the first layer: in a stacked bidirectional encoder the second layer reads both
directions of the first, so it would see the very token it is asked to predict.

The softmax over the whole vocabulary would cost more than the recurrent layer itself, so the
prediction heads are adaptive softmaxes (Grave et al. 2017): the frequent words get a full
softmax, rare ones go through smaller clusters. The heads are thrown away after pretraining.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from sentiment.config import PretrainConfig
from sentiment.errors import SentimentError
from sentiment.model.batching import bucket_batches, collate
from sentiment.model.recurrent import RecurrentClassifier, flip_rows, reversal_index
from sentiment.progress import progress_bar

HEAD_CUTOFFS = (2000, 8000)
"""Adaptive-softmax cluster boundaries by word rank (the vocabulary is sorted by frequency)."""
VALIDATION_BATCH = 256


@dataclass
class PretrainingSummary:
    """What pretraining did, for `run.json`: per-epoch language-model loss and perplexity."""

    epochs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    tokens_per_epoch: int = 0
    layers: str = "first recurrent layer (both directions) and the embedding"

    def to_dict(self) -> dict:
        return asdict(self)


def head_cutoffs(vocab_size: int) -> list[int]:
    """Cluster boundaries below the vocabulary size; a small vocabulary gets one split in half."""
    return [c for c in HEAD_CUTOFFS if c < vocab_size - 1] or [max(1, vocab_size // 2)]


class LanguageModelHeads(nn.Module):
    """One next-token head per direction over the first layer's outputs."""

    def __init__(self, hidden_size: int, vocab_size: int, directions: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleList(
            nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, cutoffs=head_cutoffs(vocab_size), div_value=4.0)
            for _ in range(directions)
        )


def language_model_loss(
    model: RecurrentClassifier, heads: LanguageModelHeads, ids: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Mean next-token negative log-likelihood over both directions, and the number of predictions.

    Position t of the forward module predicts token t+1; the backward module runs on each review
    flipped within its length, so the same shift makes it predict the token before.
    """
    x = model.embed(ids)
    steps = ids.size(1)
    predicts = (torch.arange(steps - 1, device=ids.device).unsqueeze(0) + 1) < lengths.unsqueeze(1)  # [B, T-1]
    flip = reversal_index(lengths, steps)
    total, count = x.new_zeros(()), int(predicts.sum())
    if count == 0:  # one-token reviews only: nothing to predict
        return total, 0
    for direction, head in enumerate(heads.heads):
        rnn = model.recurrent(0, direction)
        inputs, tokens = (x, ids) if direction == 0 else (flip_rows(x, flip), ids.gather(1, flip))
        outputs = heads.dropout(rnn(inputs)[0][:, :-1])
        total = total + head(outputs[predicts], tokens[:, 1:][predicts]).loss
    return total / len(heads.heads), count


def pretrain_encoder(
    model: RecurrentClassifier,
    train_ids: Sequence[np.ndarray],
    val_ids: Sequence[np.ndarray],
    settings: PretrainConfig,
    *,
    seed: int,
    clip_norm: float,
    device: torch.device,
    log: Callable[[str], None],
    show_progress: bool = True,
) -> PretrainingSummary:
    """Train `model`'s embedding and first recurrent layer as language models, in place."""
    heads = LanguageModelHeads(
        model.hidden_size, model.embedding.num_embeddings, model.num_directions, settings.dropout
    ).to(device)
    parameters = [
        p for p in (*model.embedding.parameters(), *model.rnns[0].parameters(), *heads.parameters()) if p.requires_grad
    ]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=0.01, fused=True)
    lengths = [len(ids) for ids in train_ids]
    summary = PretrainingSummary(tokens_per_epoch=int(sum(lengths)))
    started = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        heads.train()
        rng = np.random.default_rng([seed, 7919, epoch])  # not the classifier's batch order
        loss_sum, predictions = 0.0, 0
        with progress_bar(
            total=len(train_ids), desc=f"pretrain {epoch}/{settings.epochs}", unit="ex", enabled=show_progress
        ) as bar:
            for batch in bucket_batches(lengths, settings.batch_size, rng):
                ids, batch_lengths = collate([train_ids[i] for i in batch])
                loss, count = language_model_loss(model, heads, ids.to(device), batch_lengths.to(device))
                bar.update(len(batch))
                if count == 0:
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(parameters, clip_norm)
                optimizer.step()
                loss_sum += float(loss.detach()) * count
                predictions += count
        if not np.isfinite(loss_sum):
            raise SentimentError(
                f"pretraining diverged in epoch {epoch}: the loss is {loss_sum}; lower "
                f"pretrain.lr (now {settings.lr}) and train again"
            )
        validation = validation_loss(model, heads, val_ids, device)
        line = {
            "epoch": epoch,
            "train_loss": round(loss_sum / max(predictions, 1), 4),
            "val_loss": round(validation, 4),
            "val_perplexity": round(float(np.exp(validation)), 1),
            "seconds": round(time.perf_counter() - epoch_started, 1),
        }
        summary.epochs.append(line)
        log(
            f"pretrain {epoch}/{settings.epochs}  LM loss {line['train_loss']:.3f}  "
            f"val perplexity {line['val_perplexity']:.1f}  {line['seconds']:.1f} s"
        )
    summary.seconds = round(time.perf_counter() - started, 1)
    return summary


@torch.no_grad()
def validation_loss(
    model: RecurrentClassifier, heads: LanguageModelHeads, val_ids: Sequence[np.ndarray], device: torch.device
) -> float:
    """Mean next-token loss per prediction on held-out reviews (no dropout)."""
    model.eval()
    heads.eval()
    total, predictions = 0.0, 0
    for batch in bucket_batches([len(ids) for ids in val_ids], VALIDATION_BATCH):
        ids, lengths = collate([val_ids[i] for i in batch])
        loss, count = language_model_loss(model, heads, ids.to(device), lengths.to(device))
        total += float(loss) * count
        predictions += count
    return total / max(predictions, 1)
