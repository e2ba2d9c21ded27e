"""`training.adversarial`: each step also trains on the batch with its word vectors moved an L2
distance epsilon per example in the direction that raises its loss most (Miyato et al. 2017)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from sentiment.data.prepare import load_prepared
from sentiment.model.batching import collate
from sentiment.model.recurrent import ModelSpec, RecurrentClassifier
from sentiment.training.adversarial import AdversarialEmbeddings, adversarial_direction
from sentiment.training.loop import Trainer
from sentiment.training.stage import train

from conftest import TINY, metrics_lines, quiet

EPSILON = 0.5


def test_the_perturbation_has_norm_epsilon_per_example_along_the_gradient():
    gradient = torch.tensor([[[3.0, 0.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
    r = adversarial_direction(gradient, 2.0)
    norms = r.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([2.0, 0.0, 2.0]))  # a zero gradient moves nothing
    torch.testing.assert_close(r[0], gradient[0] * 2.0 / 5.0)
    torch.testing.assert_close(r[2], torch.full((2, 2), 1.0))


def _tiny_network(seed: int = 0, frozen: bool = False) -> RecurrentClassifier:
    torch.manual_seed(seed)
    model = RecurrentClassifier(ModelSpec(vocab_size=30, num_classes=2, embedding_dim=8, hidden_size=8, dropout=0.0))
    model.embedding.weight.requires_grad_(not frozen)
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids, lengths = collate([np.array([3, 4, 5, 6]), np.array([7, 8]), np.array([9, 10, 11])])
    return ids, lengths, torch.tensor([1, 0, 1])


@pytest.mark.parametrize("frozen", [False, True])
def test_the_perturbed_pass_reads_the_word_vectors_moved_uphill_and_leaves_padding_alone(frozen):
    model, (ids, lengths, targets) = _tiny_network(frozen=frozen), _batch()
    adversary = AdversarialEmbeddings(model.embedding, EPSILON)
    with adversary.recording():
        clean = nn.functional.cross_entropy(model(ids, lengths), targets, reduction="none")
    clean.sum().backward()
    seen = {}
    with adversary.perturbing():  # a hook registered after the adversary's sees what the network reads
        handle = model.embedding.register_forward_hook(lambda _m, _i, output: seen.update(vectors=output.detach()))
        moved = nn.functional.cross_entropy(model(ids, lengths), targets, reduction="none")
    handle.remove()
    r = seen["vectors"] - model.embedding(ids).detach()
    padding = ids == 0
    assert padding.any() and torch.all(r[padding] == 0)  # padding takes no part in the loss
    torch.testing.assert_close(r.flatten(1).norm(dim=1), torch.full((3,), EPSILON))
    assert torch.all(moved > clean.detach())  # uphill for every example, to first order and beyond
    # And further uphill than a random move of the same size.
    torch.manual_seed(1)
    noise = adversarial_direction(torch.randn_like(r) * (~padding).unsqueeze(2), EPSILON)
    handle = model.embedding.register_forward_hook(lambda _m, _i, output: output + noise)
    randomly = nn.functional.cross_entropy(model(ids, lengths), targets, reduction="none")
    handle.remove()
    assert torch.all(moved > randomly.detach())
    # After the perturbed pass the hooks are gone: the network reads its plain vectors again.
    with torch.no_grad():
        assert torch.equal(model(ids, lengths), model(ids, lengths))
        torch.testing.assert_close(
            nn.functional.cross_entropy(model(ids, lengths), targets, reduction="none"), clean.detach()
        )


def test_perturbing_without_a_recorded_backward_is_refused():
    model = _tiny_network()
    with pytest.raises(RuntimeError, match="recorded forward pass"):
        with AdversarialEmbeddings(model.embedding, EPSILON).perturbing():
            pass


@pytest.mark.slow
@pytest.mark.parametrize("perturbed_loss", ["label", "consistency"])
def test_a_training_step_is_the_step_on_the_clean_plus_the_perturbed_loss(prepared_config, perturbed_loss):
    """The trainer's step written out by hand: the gradient of loss(x) + loss(x + r_adv), r_adv
    from the clean gradient, then the clipped AdamW step; the perturbed loss is the cross-entropy
    with the label, or under `consistency` KL(p(x) || p(x + r_adv)) with p(x) held constant."""
    config = prepared_config(*TINY, f"training.adversarial={EPSILON}", f"training.adversarial_loss={perturbed_loss}")
    trainer = Trainer(config, load_prepared(config.prepared_dir), config.run_dir, torch.device("cpu"), quiet, seed=7)
    reference = copy.deepcopy(trainer.model)
    optimizer = torch.optim.AdamW(
        reference.parameters(), lr=config.training.lr, weight_decay=config.training.weight_decay
    )
    optimizer.load_state_dict(trainer.optimizer.state_dict())
    batch = np.arange(8)
    examples = trainer.examples
    ids, lengths = collate([examples.ids[i] for i in batch])
    targets = torch.as_tensor(examples.labels[batch])

    vectors = reference.embedding(ids)
    vectors.retain_grad()
    handle = reference.embedding.register_forward_hook(lambda _m, _i, _o: vectors)
    clean_logits = reference(ids, lengths)
    clean = nn.functional.cross_entropy(clean_logits, targets)
    clean.backward()
    handle.remove()
    r = adversarial_direction(vectors.grad, EPSILON)
    handle = reference.embedding.register_forward_hook(lambda _m, _i, output: output + r)
    perturbed_logits = reference(ids, lengths)
    if perturbed_loss == "label":
        nn.functional.cross_entropy(perturbed_logits, targets).backward()
    else:
        held = torch.softmax(clean_logits.detach(), dim=-1)
        kl = (held * (held.log() - torch.log_softmax(perturbed_logits, dim=-1))).sum(-1).mean()
        assert kl.item() > 0  # the perturbation moves the reading, so there is something to train
        kl.backward()
    handle.remove()
    nn.utils.clip_grad_norm_(reference.parameters(), config.training.clip_norm)
    optimizer.step()

    loss = trainer._step(batch)
    assert loss == pytest.approx(clean.item(), abs=1e-6)  # the reported loss is the clean one
    for (name, mine), theirs in zip(trainer.model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(mine, theirs, msg=name)


@pytest.mark.slow
def test_an_adversarial_run_trains_and_learns_otherwise_than_a_plain_one(prepared_config):
    plain = train(prepared_config(*TINY, "name=plain"), log=quiet)
    adversarial = train(prepared_config(*TINY, "name=adversarial", f"training.adversarial={EPSILON}"), log=quiet)
    recorded = json.loads((adversarial.directory / "config.json").read_text())
    assert recorded["training"]["adversarial"] == EPSILON
    plain_lines, adversarial_lines = metrics_lines(plain.directory), metrics_lines(adversarial.directory)
    assert len(adversarial_lines) == len(plain_lines)
    assert adversarial_lines[0]["val_loss"] != plain_lines[0]["val_loss"]
    assert np.isfinite([line["train_loss"] for line in adversarial_lines]).all()


def test_the_model_card_says_the_model_was_trained_adversarially():
    from sentiment.reporting.model_card import _body

    info = {"model": {"cell": "lstm"}}
    lines = _body(info, {"training": {"adversarial": 1.0}}, None)
    assert any(
        line.startswith("- Adversarial training on the word vectors") and "moved 1 (L2)" in line for line in lines
    )
    assert not any("Adversarial" in line for line in _body(info, {"training": {"adversarial": 0.0}}, None))
    consistency = _body(info, {"training": {"adversarial": 1.0, "adversarial_loss": "consistency"}}, None)
    assert any("towards the clean pass's own prediction" in line for line in consistency)
