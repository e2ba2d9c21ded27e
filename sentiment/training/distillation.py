"""Soft targets for the sentence examples from a finished run (`training.teacher`): self-distillation.

A sentence example carries its review's label, which is right for "love it!" and wrong for "I
ordered it in black." or for the one complaint in a happy review; the filters
(`sentiment.training.segments`) leave out what they can read as the other side, not what has no
side. A teacher (a finished run, typically of the same config) reads every sentence on its own; a
sentence's target becomes `(1 - teacher_weight)` times its review's label plus `teacher_weight` times the
teacher's probabilities (Hinton et al. 2015's mixed targets; a student of the teacher's own
architecture as in Furlanello et al. 2018's born-again networks), so a neutral sentence teaches
less certainty than a verdict. The whole reviews keep their labels.

The teacher reads the sentences in its own vocabulary (a word it lacks is its `<unk>`), with its
calibrated probabilities (the temperature fitted on validation), once, before the first epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sentiment.data.vocab import UNK, Vocab
from sentiment.errors import SentimentError
from sentiment.model.batching import predict_ids
from sentiment.training.segments import TrainingExamples


def teacher_targets(
    examples: TrainingExamples,
    vocab: Vocab,
    labels: list[str],
    teacher: str | Path,
    weight: float,
    device: torch.device,
) -> tuple[np.ndarray, dict[str, object]]:
    """[N, C] float targets for `examples`: one-hot for the reviews, the label mixed with the
    teacher's reading for the sentence examples; and a summary for the run record."""
    from sentiment.training.run import load_run

    run = load_run(teacher)
    if list(run.labels) != list(labels):
        raise SentimentError(
            f"training.teacher: {teacher} predicts {', '.join(run.labels)} and this data "
            f"{', '.join(labels)}; the classes must be the same, in the same order"
        )
    targets = np.eye(len(labels), dtype=np.float32)[examples.labels]
    first = examples.reviews  # the sentence examples follow the reviews
    summary: dict[str, object] = {"run": str(teacher), "weight": weight, "sentences": examples.sentences}
    if not examples.sentences:  # the filter may leave none on a tiny dataset
        return targets, {**summary, "agreement": None, "mean_label_target": None}
    unknown = run.vocab.index[UNK]
    to_teacher = np.asarray([run.vocab.index.get(word, unknown) for word in vocab.tokens], dtype=np.int64)
    sentences = [to_teacher[ids] for ids in examples.ids[first:]]
    read = predict_ids(run.build_model(str(device)), sentences, device=device).astype(np.float32)
    targets[first:] = (1.0 - weight) * targets[first:] + weight * read
    own = examples.labels[first:]
    teacher_on_own = read[np.arange(len(own)), own]
    # The share of sentence examples the teacher reads as their review's class, and the mean target
    # their labels keep.
    summary["agreement"] = round(float((read.argmax(axis=1) == own).mean()), 4)
    summary["mean_label_target"] = round(float(1.0 - weight + weight * teacher_on_own.mean()), 4)
    return targets, summary
