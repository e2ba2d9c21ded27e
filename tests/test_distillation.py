"""`training.teacher`: sentence examples' targets mixed with a finished run's reading of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentiment.config import load_config
from sentiment.data.prepare import load_prepared
from sentiment.errors import SentimentError
from sentiment.training.distillation import teacher_targets
from sentiment.training.loop import Trainer
from sentiment.training.stage import train

from conftest import metrics_lines, quiet, tiny_model, without_timing

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

TINY = [*tiny_model(2), "training.segments=sentences"]


@pytest.fixture
def teacher_run(prepared_config):
    return train(prepared_config(*TINY, "name=teacher"), log=quiet)


def trainer(config) -> Trainer:
    return Trainer(config, load_prepared(config.prepared_dir), config.run_dir, torch.device("cpu"), quiet)


def test_sentence_targets_mix_the_label_with_the_teachers_reading(teacher_run, prepared_config):
    config = prepared_config(
        *TINY, "name=student", f"training.teacher={teacher_run.directory}", "training.teacher_weight=0.4"
    )
    setup = trainer(config).setup
    examples, targets = setup.examples, setup.soft_targets
    assert targets is not None and examples.sentences > 0
    labels = torch.as_tensor(examples.labels)
    one_hot = torch.nn.functional.one_hot(labels, 2).float()
    torch.testing.assert_close(targets[: examples.reviews], one_hot[: examples.reviews], rtol=0, atol=0)
    teacher = teacher_run.build_model()
    for row in (examples.reviews, examples.reviews + 1, len(examples.ids) - 1):  # the same vocabulary: the same ids
        ids = torch.tensor(np.asarray(examples.ids[row]), dtype=torch.long).unsqueeze(0)
        with torch.no_grad():
            read = torch.softmax(teacher(ids, torch.tensor([ids.size(1)])), dim=1)[0]
        torch.testing.assert_close(targets[row], 0.6 * one_hot[row] + 0.4 * read, rtol=0, atol=1e-5)
    assert setup.distillation is not None and setup.distillation["sentences"] == examples.sentences


def test_a_student_trains_on_the_mixed_targets_and_says_so(teacher_run, prepared_config):
    plain = train(prepared_config(*TINY, "name=plain"), log=quiet)
    student = train(prepared_config(*TINY, "name=student", f"training.teacher={teacher_run.directory}"), log=quiet)
    record = student.info["distillation"]
    assert record["run"] == str(teacher_run.directory) and record["weight"] == 0.5
    assert 0.0 <= record["agreement"] <= 1.0
    assert without_timing(metrics_lines(student.directory)) != without_timing(metrics_lines(plain.directory))
    assert plain.info["distillation"] is None


def test_a_teacher_needs_sentence_examples_and_the_same_classes(teacher_run, prepared_config):
    with pytest.raises(SentimentError, match="training.teacher reads the sentence examples"):
        load_config(None, ["training.segments=none", "training.teacher=runs/x"])
    setup = trainer(prepared_config(*TINY, "name=plain")).setup
    with pytest.raises(SentimentError, match="predicts negative, positive and this data bad, good"):
        teacher_targets(setup.examples, setup.vocab, ["bad", "good"], teacher_run.directory, 0.5, torch.device("cpu"))
