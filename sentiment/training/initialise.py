"""Everything a model needs before its first epoch: threads and seeds, the vocabulary and ids, the
network, its vectors, transfer from another run, language-model pretraining, the DDP wrapper,
the per-position heads, the optimizer and the training examples.

The order is part of the result: the network is built right after `torch.manual_seed(seed)`,
pretraining runs before the per-process reseed, and the per-position heads are built after it,
so that a run and its resumed or distributed twin start from the same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sentiment.artifacts import read_json, write_json
from sentiment.config import ExperimentConfig, TrainingConfig
from sentiment.data.lexicon import WORD_FEATURES, lexicon_words, negation_roles, vader_lexicon, word_features
from sentiment.data.prepare import PreparedData, sentence_starts, token_ids
from sentiment.data.text import CONTRAST_CONNECTIVES, sentence_token_kinds
from sentiment.data.vocab import Vocab
from sentiment.errors import SentimentError
from sentiment.model.recurrent import ModelSpec, RecurrentClassifier
from sentiment.training.checkpoints import save_weights
from sentiment.training.distributed import ProcessGroup
from sentiment.training.extra_sentences import ExtraSentences, extra_sentences
from sentiment.training.labelled_sentences import LabelledTrainingSentences, labelled_training_sentences
from sentiment.training.segments import TrainingExamples, training_examples

PRETRAINED_WEIGHTS = "pretrained.safetensors"
PRETRAINING_SUMMARY = "pretraining.json"


@dataclass
class TrainingSetup:
    """One model's starting point: its data, its network (and what started it), its optimizer."""

    seed: int
    labels: list[str]
    vocab: Vocab
    train_ids: list[np.ndarray]
    train_labels: np.ndarray
    val_ids: list[np.ndarray]
    val_labels: np.ndarray
    packed: bool
    model: RecurrentClassifier
    forward: nn.Module  # the model, or its DistributedDataParallel wrapper
    position_losses: nn.Module | None
    optimizer: torch.optim.Optimizer
    examples: TrainingExamples
    labelled: LabelledTrainingSentences | None
    """`training.labelled_sentences`: the set whose training part trains."""
    read_after: LabelledTrainingSentences | None
    """The set whose held-out part the kept model reads (`labelled`, or `training.sentence_validation`'s)."""
    loss_weights: torch.Tensor | None
    sentence_logit_offset: torch.Tensor | None
    """[C], added to the sentence examples' logits in the loss (`training.segment_logit_adjustment`)."""
    soft_targets: torch.Tensor | None
    """[N, C] per-example target distributions (`training.teacher`); None: the labels."""
    distillation: dict[str, Any] | None
    vectors_summary: dict[str, Any] | None
    transfer: dict[str, Any] | None
    pretraining: dict[str, Any] | None


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
        weight_drop=m.weight_drop,
        input_dropout=m.input_dropout,
        negation_scope=m.negation_scope,
        word_features=len(WORD_FEATURES) if m.lexicon_input != "none" else 0,
        lexicon_dropout=m.lexicon_dropout,
        pooling=m.pooling,
        head=m.head,
    )
    return RecurrentClassifier(spec, packed=packed)


def member_seeds(config: ExperimentConfig) -> list[int]:
    """The training seed of each model: `training.seed` (default: the top-level seed), then +1, +2, ..."""
    first = config.training.seed if config.training.seed is not None else config.seed
    return [first + k for k in range(config.training.ensemble)]


def model_vocabulary(
    config: ExperimentConfig,
    prepared: PreparedData,
    extra_sentences: ExtraSentences | None = None,
    labelled: LabelledTrainingSentences | None = None,
) -> Vocab:
    """The prepared vocabulary, extended by the vectors' most frequent words (`model.vector_words`),
    by the lexicon's words (`model.lexicon_input`), by the frequent words of the sentences labelled
    one by one (`training.labelled_sentences`) and by those of another dataset's sentences
    (`training.extra_sentences`)."""
    extra: list[str] = []
    if config.model.vector_words and config.model.vectors:
        from sentiment.model.embeddings import vector_words

        extra += vector_words(config.model.vectors, config.paths.data, config.model.vector_words)
    if config.model.lexicon_input != "none":
        extra += lexicon_words(vader_lexicon())
    if labelled is not None:
        extra += labelled.frequent_words(config.vocab.min_freq)
    if extra_sentences is not None:
        extra += extra_sentences.frequent_words(config.vocab.min_freq)
    return prepared.vocab.extended(extra) if extra else prepared.vocab


def split_ids(split, vocab: Vocab, prepared: PreparedData, config: ExperimentConfig) -> list[np.ndarray]:
    """A split's token ids for the model: the prepared ones, or re-encoded when the model's vocabulary
    is extended (words below `vocab.min_freq` then get their vector's id instead of <unk>)."""
    if vocab is prepared.vocab:
        return token_ids(split)
    max_len = config.tokenize.max_len
    return vocab.encode_arrays(split["tokens"], max_len)


def initialise(
    config: ExperimentConfig,
    prepared: PreparedData,
    work_dir: Path,
    device: torch.device,
    log,
    group: ProcessGroup,
    seed: int,
) -> TrainingSetup:
    t = config.training
    if device.type == "cpu":
        # Processes sharing a machine share its cores; oversubscribed threads spin and crawl.
        torch.set_num_threads(t.threads or max(1, (os.cpu_count() or 1) // group.local_world_size))
    torch.manual_seed(seed)
    labels = prepared.labels
    train, validation = prepared.split("train"), prepared.split("validation")
    labelled = labelled_training_sentences(config, labels) if t.labelled_sentences else None
    read_after = labelled
    if read_after is None and t.sentence_validation:  # fetched now, so that a fetch failure costs no training
        read_after = labelled_training_sentences(config, labels, key="sentence_validation")
    extra = extra_sentences(config, labels, config.seed) if t.extra_sentences else None
    vocab = model_vocabulary(config, prepared, extra, labelled)
    train_ids, train_labels = split_ids(train, vocab, prepared, config), np.asarray(train["label"])
    val_ids, val_labels = split_ids(validation, vocab, prepared, config), np.asarray(validation["label"])
    packed = use_packed(t.packed, device)
    model = build_model(config, len(vocab), len(labels), packed)
    if config.model.head != "pooled":
        connectives = CONTRAST_CONNECTIVES if config.model.head == "clauses" else ()
        model.set_sentence_kinds(sentence_token_kinds(vocab.tokens, connectives))
    if config.model.negation_scope:
        model.set_negation_roles(negation_roles(vocab.tokens, vader_lexicon()))
    if config.model.lexicon_input != "none":
        model.set_word_features(word_features(vocab.tokens, vader_lexicon()))
    vectors_summary = _load_vectors(model, config, vocab, seed, log)
    transfer = _transfer(model, config, vocab, labels, log) if config.model.init_from else None
    model.to(device)
    # Before the per-process seed and the DDP wrapper: every process pretrains the same
    # weights, and DDP then starts all of them from rank 0's copy anyway.
    pretraining = (
        _pretrain(model, config, train_ids, val_ids, work_dir, device, log, group, seed)
        if config.pretrain.epochs
        else None
    )
    # Same initial weights everywhere (seeded above); different dropout masks per process.
    torch.manual_seed(seed + group.rank)
    forward: nn.Module = model
    if group.distributed:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    position_losses = _position_losses(config, vocab, len(labels), device, group) if t.target_replication > 0 else None
    optimizer = _optimizer(model, position_losses, t)
    starts = sentence_starts(train) if t.segments != "none" else None
    # A list, not the dataset's lazy column: the filters index it once per sentence.
    tokens = list(train["tokens"]) if t.segment_filter != "none" or t.segments == "sentences+clauses" else None
    examples = training_examples(train_ids, starts, train_labels, len(labels), t, tokens=tokens, class_names=labels)
    if examples.sentences:
        log(
            f"training on {examples.reviews:,} reviews and {examples.sentences:,} of their "
            + (f"sentences and clauses ({examples.clauses:,} clauses; " if examples.clauses else "sentences (")
            + f"weight {t.segment_weight:g}"
            + (", balanced by class" if t.segment_class_weights else "")
            + (f", logit-adjusted with tau {t.segment_logit_adjustment:g}" if t.segment_logit_adjustment else "")
            + (
                f"; {examples.filtered_out:,} left out by the {t.segment_filter} filter"
                + (", contrast sentences read by their verdict clause" if t.segment_verdict_clause else "")
                + (", VADER vetoing the corpus in negated sentences" if t.segment_negation_veto else "")
                if examples.filtered_out
                else ""
            )
            + (f"; {examples.relabelled:,} relabelled to the other class" if examples.relabelled else "")
            + ")"
        )
    if labelled is not None:
        labelled_ids = vocab.encode_arrays(labelled.train.tokens, config.tokenize.max_len)
        examples = examples.with_labelled(labelled_ids, labelled.train.labels, t.labelled_sentence_weight)
        summary = labelled.sentences.summary()
        log(
            f"and {len(labelled_ids):,} sentences labelled one by one ({summary['name']}, weight "
            f"{t.labelled_sentence_weight:g}; {summary['held_out']:,} held out, "
            f"{summary['excluded_as_evaluation_text']:,} left out as texts of an evaluation set)"
            f"{_only_in_first(t.labelled_sentence_epochs)}"
        )
    if extra is not None:
        extra_ids = vocab.encode_arrays(extra.tokens)
        examples = examples.with_extra(extra_ids, extra.labels, t.segment_weight)
        log(
            f"and {len(extra_ids):,} sentences of {extra.source}'s training reviews "
            f"({extra.filtered_out:,} drawn ones left out by the {t.segment_filter} filter)"
            f"{_only_in_first(t.extra_sentence_epochs)}"
        )
    soft_targets, distillation = None, None
    if t.teacher:
        from sentiment.training.distillation import teacher_targets

        targets, distillation = teacher_targets(examples, vocab, labels, t.teacher, t.teacher_weight, device)
        soft_targets = torch.as_tensor(targets, device=device)
        agreement = distillation["agreement"]
        log(
            f"sentence targets mixed with {t.teacher}'s reading at weight {t.teacher_weight:g}"
            + ("" if agreement is None else f" (it agrees with {agreement:.1%} of the sentence labels)")
        )
    # The loss's copy, on the device once rather than per step (the model computes in float32).
    loss_weights = (
        None if examples.weights is None else torch.as_tensor(examples.weights, dtype=torch.float32, device=device)
    )
    sentence_logit_offset = (
        torch.as_tensor(
            t.segment_logit_adjustment * examples.sentence_log_prior(len(labels)), dtype=torch.float32, device=device
        )
        if t.segment_logit_adjustment > 0 and examples.sentences
        else None
    )
    return TrainingSetup(
        seed=seed,
        labels=labels,
        vocab=vocab,
        train_ids=train_ids,
        train_labels=train_labels,
        val_ids=val_ids,
        val_labels=val_labels,
        packed=packed,
        model=model,
        forward=forward,
        position_losses=position_losses,
        optimizer=optimizer,
        examples=examples,
        labelled=labelled,
        read_after=read_after,
        loss_weights=loss_weights,
        sentence_logit_offset=sentence_logit_offset,
        soft_targets=soft_targets,
        distillation=distillation,
        vectors_summary=vectors_summary,
        transfer=transfer,
        pretraining=pretraining,
    )


def _only_in_first(epochs: int) -> str:
    """The log's note on examples that join the first `epochs` epochs only (0: every epoch)."""
    return "" if not epochs else ", in epoch 1 only" if epochs == 1 else f", in the first {epochs} epochs only"


def _load_vectors(model: RecurrentClassifier, config: ExperimentConfig, vocab: Vocab, seed: int, log):
    m = config.model
    if not m.vectors:
        return None
    from sentiment.model.embeddings import align_vectors

    aligned = align_vectors(m.vectors, vocab, config.paths.data, seed)
    if m.refine_vectors == "vader":
        from sentiment.data.lexicon import vader_lexicon
        from sentiment.model.embeddings import refine_vectors

        aligned = refine_vectors(aligned, vocab.tokens, vader_lexicon().valence)
        r = aligned.refined or {}
        log(
            f"vectors refined with VADER's lexicon: {r['words']:,} rated words; nearest neighbours "
            f"of the other sign {r['opposite_neighbours_before']:.1%} -> {r['opposite_neighbours_after']:.1%}"
        )
    if aligned.matrix.shape[1] != m.embedding_dim:
        raise SentimentError(
            f"model.embedding_dim is {m.embedding_dim} but {m.vectors} has "
            f"{aligned.matrix.shape[1]} dimensions; set model.embedding_dim={aligned.matrix.shape[1]}"
        )
    model.load_pretrained_embeddings(torch.from_numpy(aligned.matrix), freeze=m.freeze_embeddings)
    summary = aligned.summary(m.vectors)
    log(f"vectors {m.vectors}: {summary['coverage']:.1%} of the vocabulary found")
    return summary


def _optimizer(
    model: RecurrentClassifier, position_losses: nn.Module | None, t: TrainingConfig
) -> torch.optim.Optimizer:
    """AdamW over every trained parameter; under `training.embedding_lr_scale` < 1 the word vectors
    form a group of their own whose `lr_scale` the epoch loop multiplies its rate by."""
    trained = [p for p in model.parameters() if p.requires_grad]
    if position_losses is not None:
        trained += list(position_losses.parameters())
    vectors = model.embedding.weight
    scaled = t.embedding_lr_scale != 1.0 and vectors.requires_grad
    groups: list[dict[str, Any]] = [{"params": [p for p in trained if not (scaled and p is vectors)], "lr_scale": 1.0}]
    if scaled:
        groups.append({"params": [vectors], "lr_scale": t.embedding_lr_scale})
    # fused=True: one kernel for all parameters (CPU and CUDA), not a dozen ops per tensor.
    return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay, fused=True)


def _position_losses(config: ExperimentConfig, vocab: Vocab, num_classes: int, device: torch.device, group):
    """Heads and regulariser for `training.target_replication` / `lexicon_regularization`:
    trained beside the model, kept in checkpoints, not in the finished run."""
    from sentiment.training.position_losses import PositionLosses

    if config.model.head != "pooled":
        raise SentimentError(
            "training.target_replication trains the states of the pooled classifier; "
            f"it does not combine with model.head = {config.model.head!r}"
        )
    if group.distributed:
        raise SentimentError(
            "training.target_replication is not supported in distributed training yet; train in one process"
        )
    categories = None
    if config.training.lexicon_regularization > 0:
        from sentiment.data.lexicon import token_categories, vader_lexicon

        categories = torch.from_numpy(token_categories(vocab.tokens, vader_lexicon()))
    m = config.model
    return PositionLosses(m.hidden_size, 2 if m.bidirectional else 1, num_classes, categories, m.dropout).to(device)


def _transfer(model: RecurrentClassifier, config: ExperimentConfig, vocab: Vocab, labels: list[str], log):
    from sentiment.training.transfer import transfer_weights

    source = config.model.init_from
    assert source is not None  # called only when model.init_from is set
    summary = transfer_weights(model, vocab, labels, source)
    log(f"started from {summary['run']}: recurrent layers, classifier and {summary['share']:.1%} of the embeddings")
    return summary


def _pretrain(model, config: ExperimentConfig, train_ids, val_ids, work_dir: Path, device, log, group, seed: int):
    """Language-model pretraining (`sentiment.training.pretraining`), once per run: a resumed run
    reloads the pretrained weights from the partial run directory."""
    from safetensors.torch import load_file

    from sentiment.training.pretraining import pretrain_encoder

    weights, summary_file = work_dir / PRETRAINED_WEIGHTS, work_dir / PRETRAINING_SUMMARY
    if weights.is_file() and summary_file.is_file():
        model.load_state_dict(load_file(str(weights), device=str(device)))
        log(f"pretrained encoder reloaded from {weights}")
        return read_json(summary_file)
    summary = pretrain_encoder(
        model,
        train_ids,
        val_ids,
        config.pretrain,
        seed=seed,
        clip_norm=config.training.clip_norm,
        device=device,
        log=log,
        show_progress=group.is_main,
    ).to_dict()
    if group.is_main:
        save_weights(model, weights)
        write_json(summary_file, summary)
    return summary
