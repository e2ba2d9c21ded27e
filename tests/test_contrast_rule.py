"""`training.contrast_rule`: the A-but-B rule distilled into the sentence examples (Hu et al. 2016)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentiment.data.prepare import load_prepared
from sentiment.training.contrast_rule import imitation_share, rule_losses, rule_starts, teacher
from sentiment.training.loop import Trainer
from sentiment.training.stage import train

from conftest import NEGATIVE, POSITIVE, metrics_lines, quiet, tiny_model, without_timing, write_csv

BUT = 7


def test_b_begins_after_the_last_but_of_a_sentence_with_words_on_both_sides():
    ids = [
        np.array([3, BUT, 4]),  # a review: never grounded
        np.array([3, BUT, 4, 5]),
        np.array([BUT, 4, 5]),  # a clause that opens with "but": no A
        np.array([3, 4, BUT]),  # nothing after it
        np.array([3, BUT, 4, BUT, 5, 6]),  # the last one
        np.array([3, 4, 5]),
    ]
    np.testing.assert_array_equal(rule_starts(ids, 1, BUT), [-1, 2, -1, -1, 4, -1])
    np.testing.assert_array_equal(rule_starts(ids, 1, None), [-1] * 6)


def test_the_teacher_is_the_prediction_moved_towards_the_reading_of_b():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    b_logits = torch.tensor([[-3.0, 3.0], [0.5, 0.0]])
    p, p_b = torch.softmax(logits, -1), torch.softmax(b_logits, -1)
    expected = p * torch.exp(6.0 * p_b)
    torch.testing.assert_close(teacher(logits, b_logits, 6.0), expected / expected.sum(-1, keepdim=True))
    # A reading of B that leans positive moves the teacher towards positive, a stronger rule further.
    assert teacher(logits, b_logits, 6.0)[0, 1] > teacher(logits, b_logits, 1.0)[0, 1] > p[0, 1]


def test_only_grounded_rows_mix_their_loss_with_the_teachers():
    logits = torch.tensor([[1.0, -1.0], [0.2, 0.3], [-0.5, 0.5]])
    losses = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 1]), reduction="none")
    q = torch.tensor([[0.1, 0.9]])
    mixed = rule_losses(losses, logits, torch.tensor([1]), q, 0.25)
    soft = -(q[0] * torch.log_softmax(logits[1], -1)).sum()
    torch.testing.assert_close(mixed[1], 0.75 * losses[1] + 0.25 * soft)
    torch.testing.assert_close(mixed[[0, 2]], losses[[0, 2]])


def test_the_imitation_share_rises_over_the_first_epoch_then_holds():
    assert imitation_share(0.4, 1, 0, 10) == 0.0
    assert imitation_share(0.4, 1, 5, 10) == pytest.approx(0.2)
    assert imitation_share(0.4, 2, 0, 10) == imitation_share(0.4, 3, 7, 10) == pytest.approx(0.4)


@pytest.mark.slow  # trains models; `make test-fast` leaves these out
def test_training_grounds_the_rule_in_but_sentences_only_and_changes_the_run(tmp_path, make_config):
    from sentiment.data.prepare import prepare

    rows = []
    for copy in range(3):
        for good, bad in zip(POSITIVE, NEGATIVE):
            rows.append({"text": f"{good}. {good} but {bad}. order {copy}", "label": 4})
            rows.append({"text": f"{bad}. {bad}, but {good}. order {copy}", "label": 2})
    source = write_csv(tmp_path / "but.csv", rows)
    overrides = (*tiny_model(2), "training.segments=sentences", "training.segment_weight=0.5")

    def configured(*more):
        config = make_config(source, *overrides, *more)
        prepare(config, log=quiet)
        return config

    ruled = configured("name=ruled", "training.contrast_rule=0.5")
    trainer = Trainer(ruled, load_prepared(ruled.prepared_dir), ruled.run_dir, torch.device("cpu"), quiet)
    examples, starts = trainer.examples, trainer.rule_starts
    assert starts is not None and (starts[: examples.reviews] == -1).all()
    but = trainer.vocab.index["but"]
    grounded = np.flatnonzero(starts >= 0)
    assert len(grounded) > 0
    for row in grounded:
        ids = np.asarray(examples.ids[row])
        assert ids[starts[row] - 1] == but and but not in ids[starts[row] :].tolist()
    plain = train(configured("name=plain"), log=quiet)
    ruled_run = train(ruled, log=quiet)
    assert ruled_run.info["contrast_rule"]["sentences"] == len(grounded)
    assert without_timing(metrics_lines(ruled_run.directory)) != without_timing(metrics_lines(plain.directory))
