"""The epoch loop: `Trainer` trains one network on its setup, and `train_while_improving` runs
its epochs while validation improves, yielding each epoch's result for the caller to record.

One epoch: length-bucketed batches in a seeded random order, AdamW, gradient clipping, then
validation metrics. The best epoch by `training.select_metric` is kept; the loop stops after
`training.patience` epochs without improvement or at `training.max_epochs` (the shape of
spaCy's `train_while_improving`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from sentiment.config import ExperimentConfig
from sentiment.data.prepare import PreparedData
from sentiment.errors import SentimentError
from sentiment.metrics import improves, validation_scores
from sentiment.model.batching import bucket_batches, collate, predict_ids
from sentiment.progress import progress_bar
from sentiment.training.adversarial import AdversarialEmbeddings, consistency_losses
from sentiment.training.contrast_rule import CONTRAST_WORD, imitation_share, rule_losses, rule_starts, teacher
from sentiment.training.distributed import ProcessGroup, rows_for_rank
from sentiment.training.initialise import TrainingSetup, initialise, member_seeds
from sentiment.training.interpolation import start_weights
from sentiment.training.labelled_sentences import vectors_detached


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    validation: dict[str, float]
    seconds: float
    examples_per_second: float
    examples: int
    """How many examples the epoch trained on (fewer after `training.extra_sentence_epochs` or
    `training.labelled_sentence_epochs`)."""
    best: bool = False
    loss_shares: dict[str, float] | None = None
    """Each kind of example's share of the epoch's loss (`TrainingExamples.loss_shares`), where
    the epoch trains on more than one kind."""

    def line(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "epoch": self.epoch,
            "train_loss": round(self.train_loss, 5),
            "examples": self.examples,
            **{f"val_{k}": round(v, 5) for k, v in self.validation.items()},
            "seconds": round(self.seconds, 2),
            "examples_per_second": round(self.examples_per_second, 1),
            "best": self.best,
        }
        if self.loss_shares is not None:
            line["loss_shares"] = {kind: round(share, 4) for kind, share in self.loss_shares.items()}
        return line


@dataclass
class TrainingState:
    """What a checkpoint holds besides tensors: enough to continue exactly where training stopped."""

    epoch: int = 0
    best_epoch: int = 0
    best_score: float | None = None
    epochs_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    soup: list[dict[str, Any]] | None = None
    """Each branch's record once epoch 2 was trained as a soup (`training.soup`)."""

    def record(self, result: EpochResult, select_metric: str) -> None:
        """Count one finished epoch; marks `result.best` when it beats every earlier one."""
        score = result.validation[select_metric]
        if improves(score, self.best_score, select_metric):
            self.best_score, self.best_epoch, self.epochs_without_improvement = score, result.epoch, 0
            result.best = True
        else:
            self.epochs_without_improvement += 1
        self.epoch = result.epoch
        self.seconds += result.seconds
        self.history.append(result.line())


def check_finite_loss(loss: float, where: str, lr: float) -> None:
    """Stop at a NaN or infinite loss: the weights are lost, and every later epoch would be wasted."""
    if not np.isfinite(loss):
        raise SentimentError(
            f"training diverged in {where}: the loss is {loss}; lower training.lr "
            f"(now {lr}) or training.clip_norm and train again"
        )


class Trainer:
    """One network's training: its setup (`sentiment.training.initialise`), one epoch at a time."""

    def __init__(
        self,
        config: ExperimentConfig,
        prepared: PreparedData,
        work_dir: Path,
        device: torch.device,
        log,
        group: ProcessGroup | None = None,
        seed: int | None = None,
    ):
        self.config, self.work_dir, self.device, self.log = config, work_dir, device, log
        self.prepared_fingerprint: str = prepared.manifest["fingerprint"]
        self.group = group or ProcessGroup()
        seed = member_seeds(config)[0] if seed is None else seed
        setup: TrainingSetup = initialise(config, prepared, work_dir, device, log, self.group, seed)
        self.setup = setup
        self.seed, self.labels, self.vocab = setup.seed, setup.labels, setup.vocab
        self.train_ids, self.val_ids, self.val_labels = setup.train_ids, setup.val_ids, setup.val_labels
        self.model, self.forward, self.position_losses = setup.model, setup.forward, setup.position_losses
        self.optimizer, self.examples, self.packed = setup.optimizer, setup.examples, setup.packed
        self._detached_rows: range | None = None
        if self.examples.labelled and not config.training.labelled_sentences_train_vectors:
            self._detached_rows = self.examples.labelled_rows
        self.averaged = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.training.ema_decay))
            if config.training.ema_decay > 0
            else None
        )
        """The running average of the weights (`training.ema_decay`), updated after every step."""
        self.adversary = (
            AdversarialEmbeddings(self.model.embedding, config.training.adversarial)
            if config.training.adversarial > 0
            else None
        )
        """Perturbs the word vectors of each batch's second pass (`training.adversarial`)."""
        self.rule_starts = (
            rule_starts(self.examples.ids, self.examples.reviews, self.vocab.index.get(CONTRAST_WORD))
            if config.training.contrast_rule > 0
            else None
        )
        """Where each example's B begins under `training.contrast_rule` (-1: the rule does not apply)."""
        self._rule_share = 0.0
        if self.rule_starts is not None:
            log(
                f"the A-but-B rule (training.contrast_rule = {config.training.contrast_rule}) grounds "
                f"{int((self.rule_starts >= 0).sum()):,} sentence examples"
            )
        self.state = TrainingState()
        # The start that `training.weight_interpolation` mixes back in, copied before a resumed
        # run restores its checkpoint: initialise builds the same start every time.
        self.start = start_weights(self.model) if config.training.weight_interpolation else None
        self.interpolation: dict[str, Any] | None = None
        """`interpolate_with_start`'s record, once training is over."""

    @property
    def contrast_rule_record(self) -> dict[str, Any] | None:
        """What `training.contrast_rule` did: its share and strength, and how many sentence examples it grounds."""
        if self.rule_starts is None:
            return None
        t = self.config.training
        return {
            "share": t.contrast_rule,
            "strength": t.contrast_rule_strength,
            "sentences": int((self.rule_starts >= 0).sum()),
        }

    @property
    def selected(self) -> nn.Module:
        """The network validation scores and the run keeps: the weights' running average with
        `training.ema_decay`, else the trained weights themselves."""
        return self.model if self.averaged is None else self.averaged.module

    def run_epoch(self, epoch: int, order_seed: int | None = None) -> EpochResult:
        """Train one epoch and score validation; `order_seed` replaces the seed of the batch order
        (a soup's branches, `sentiment.training.soup`)."""
        t = self.config.training
        # The batch order depends only on (seed, epoch): a resumed run sees the same batches,
        # and so does every process of a distributed run.
        rng = np.random.default_rng([self.seed if order_seed is None else order_seed, epoch])
        examples = self.examples
        positions = examples.epoch_positions(epoch, t.labelled_sentence_epochs, t.extra_sentence_epochs)
        count = len(positions)
        batches = [
            positions[batch] for batch in bucket_batches([len(examples.ids[i]) for i in positions], t.batch_size, rng)
        ]
        shares = examples.loss_shares(batches) if examples.sentences else None
        epoch_lr = t.lr * t.lr_decay ** (epoch - 1)  # a function of the epoch alone, so resuming needs no state
        self._set_rate(epoch_lr)
        self.model.train()
        if self.position_losses is not None:
            self.position_losses.train()
        started = time.perf_counter()
        loss_sum = 0.0
        show = self.group.is_main
        with progress_bar(total=count, desc=f"epoch {epoch}/{t.max_epochs}", unit="ex", enabled=show) as bar:
            for done, batch in enumerate(batches, start=1):
                if t.lr_schedule == "linear":  # the share of all `max_epochs` done before this step
                    remaining = 1 - (epoch - 1 + (done - 1) / len(batches)) / t.max_epochs
                    self._set_rate(epoch_lr * remaining)
                if self.rule_starts is not None:
                    self._rule_share = imitation_share(t.contrast_rule, epoch, done - 1, len(batches))
                loss_sum += self._step(batch)
                bar.update(len(batch))
                if done % 20 == 0:
                    bar.set_postfix(loss=f"{loss_sum / done:.4f}", refresh=False)
        train_seconds = time.perf_counter() - started
        (loss_sum,) = self.group.sum([loss_sum], self.device)
        check_finite_loss(loss_sum, f"epoch {epoch}", t.lr)  # every process sees the same sum, so all stop
        validation = self.validate()
        return EpochResult(
            epoch=epoch,
            train_loss=loss_sum / max(len(batches), 1),
            validation=validation,
            seconds=time.perf_counter() - started,
            examples_per_second=count / train_seconds,
            examples=count,
            loss_shares=shares,
        )

    def _set_rate(self, rate: float) -> None:
        """Every parameter group trains at `rate` times its `lr_scale` (the word vectors' share under
        `training.embedding_lr_scale`; a checkpoint saved before groups had one reads as 1)."""
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group.get("lr_scale", 1.0)

    def _step(self, batch: np.ndarray) -> float:
        """One optimizer step on `batch`; returns this process's share of the batch's mean loss.

        With N processes each takes a contiguous share of the batch's rows. Losses are summed
        and divided by the whole batch's (weighted) size, and DDP averages gradients over the
        processes, so the step equals the single-process step on the same batch.
        """
        rows = rows_for_rank(batch, self.group)
        weight = 1.0
        if len(rows) == 0:  # fewer rows than processes: join the collective step, contribute nothing
            rows, weight = batch[:1], 0.0
        examples = self.examples
        ids, lengths = collate([examples.ids[i] for i in rows])
        targets = torch.as_tensor(examples.labels[rows], device=self.device)
        # Per-example loss weights (class weights, sentence weights), normalised by the whole batch's.
        denominator = float(examples.batch_weights(batch).sum())
        adversary = self.adversary
        rule_readings = self._rule_readings(rows)
        with self._vectors_detached_for_labelled(rows):
            try:
                ids, lengths = ids.to(self.device, non_blocking=True), lengths.to(self.device)
                rows_on_device = torch.as_tensor(rows, device=self.device)
                with adversary.recording() if adversary is not None else nullcontext():
                    if self.position_losses is None:
                        logits = self.forward(ids, lengths)
                    else:
                        logits, directions, mask = self.model.forward_with_states(ids, lengths)
                if self.setup.soft_targets is not None:  # distributions from a teacher (`training.teacher`)
                    targets_in_loss = self.setup.soft_targets[rows_on_device]
                else:
                    targets_in_loss = targets
                losses = self._example_losses(logits, targets_in_loss, rows_on_device)
                if rule_readings is not None:
                    grounded, b_logits = rule_readings
                    q = teacher(logits[grounded], b_logits, self.config.training.contrast_rule_strength)
                    losses = rule_losses(losses, logits, grounded, q, self._rule_share)
                if self.position_losses is not None:
                    replication, regularisation = self.position_losses(directions, mask, ids, targets)
                    t = self.config.training
                    losses = losses + t.target_replication * replication
                    if regularisation is not None:
                        losses = losses + t.lexicon_regularization * regularisation
                loss = self._weighted(losses, rows_on_device).sum() * (weight / denominator)
                self.optimizer.zero_grad(set_to_none=True)
                (loss * self.group.world_size).backward()
                if adversary is not None:  # the same batch again, its word vectors moved against it
                    with adversary.perturbing():
                        adversarial_logits = self.forward(ids, lengths)
                    if self.config.training.adversarial_loss == "consistency":
                        adversarial_losses = consistency_losses(logits, adversarial_logits)
                    else:
                        adversarial_losses = self._example_losses(adversarial_logits, targets_in_loss, rows_on_device)
                    adversarial_loss = self._weighted(adversarial_losses, rows_on_device).sum() * (weight / denominator)
                    (adversarial_loss * self.group.world_size).backward()
            except torch.OutOfMemoryError:
                raise SentimentError(
                    f"training.batch_size={self.config.training.batch_size} does not fit in "
                    f"{self.device.type} memory; lower it (for example --set training.batch_size=32)"
                ) from None
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.training.clip_norm)
        self.optimizer.step()
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
        return float(loss.detach())

    def _rule_readings(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Under `training.contrast_rule`: which of the batch's rows are "A but B" sentences, and the
        network's logits for their B alone (no dropout, no gradient); None where none is."""
        if self.rule_starts is None or self._rule_share <= 0:
            return None
        starts = self.rule_starts[rows]
        grounded = np.flatnonzero(starts >= 0)
        if len(grounded) == 0:
            return None
        ids, lengths = collate([self.examples.ids[rows[i]][starts[i] :] for i in grounded])
        self.model.eval()
        try:  # the module itself, not a DDP wrapper: a reading without gradient needs no collective step
            with torch.no_grad():
                b_logits = self.model(ids.to(self.device), lengths.to(self.device))
        finally:
            self.model.train()
        return torch.as_tensor(grounded, device=self.device), b_logits

    def _vectors_detached_for_labelled(self, rows: np.ndarray):
        """With `training.labelled_sentences_train_vectors = false`: the batch's labelled sentences
        read their word vectors detached, so their loss trains everything but the vectors."""
        if self._detached_rows is None:
            return nullcontext()
        mask = (rows >= self._detached_rows.start) & (rows < self._detached_rows.stop)
        return vectors_detached(self.model, torch.as_tensor(mask, device=self.device))

    def _example_losses(self, logits: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Each example's cross-entropy; sentence examples' logits shifted first under
        `training.segment_logit_adjustment`."""
        offset = self.setup.sentence_logit_offset
        if offset is not None:  # the logit-adjusted loss of the sentence examples
            is_sentence = rows >= self.examples.reviews
            logits = logits + is_sentence.unsqueeze(1).to(logits.dtype) * offset
        return nn.functional.cross_entropy(
            logits, targets, reduction="none", label_smoothing=self.config.training.label_smoothing
        )

    def _weighted(self, losses: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Per-example losses times their weights (class weights, sentence weights), if any."""
        weights = self.setup.loss_weights
        return losses if weights is None else losses * weights[rows]

    def validate(self) -> dict[str, float]:
        """Metrics on the whole validation split (each process scores a share; all see the total)."""
        mine = rows_for_rank(np.arange(len(self.val_ids)), self.group)
        probabilities = predict_ids(self.selected, [self.val_ids[i] for i in mine], batch_size=256, device=self.device)
        probabilities = self.group.gather_rows(probabilities.reshape(len(mine), -1), self.device)
        return validation_scores(probabilities, self.val_labels)

    def summary(self) -> dict[str, Any]:
        """This model's record: its seed, the selected epoch and its validation scores, timing."""
        s = self.state
        best = next(line for line in s.history if line["epoch"] == s.best_epoch)
        if self.interpolation is not None:  # the weights kept are the mixed ones
            best = {**best, **{f"val_{name}": value for name, value in self.interpolation["validation"].items()}}
        return {
            "seed": self.seed,
            "best_epoch": s.best_epoch,
            "best_validation": best,
            "weight_interpolation": self.interpolation,
            "soup": s.soup,
            "epochs_run": s.epoch,
            "stopped_early": s.epoch < self.config.training.max_epochs,
            "train_seconds": round(s.seconds, 1),
            "seconds_per_epoch": round(s.seconds / max(s.epoch, 1), 2),
            "pretraining": self.setup.pretraining,
        }


def train_while_improving(trainer: Trainer) -> Iterator[EpochResult]:
    """Epochs until `training.patience` epochs bring no improvement or `max_epochs` is reached,
    each yielded after the state has counted it (a resumed trainer continues from its state).
    With `training.soup`, epoch 2 is the soup of its branches and the last epoch."""
    from sentiment.training.soup import SOUP_EPOCH, train_soup  # the soup builds on this module

    t, state = trainer.config.training, trainer.state
    last = SOUP_EPOCH if t.soup > 1 else t.max_epochs
    while state.epoch < last and state.epochs_without_improvement < t.patience:
        if t.soup > 1 and state.epoch + 1 == SOUP_EPOCH:
            result, state.soup = train_soup(trainer, t.soup)
        else:
            result = trainer.run_epoch(state.epoch + 1)
        state.record(result, t.select_metric)
        yield result
