"""Training levers that read VADER's lexicon: sentiment-refined vectors (`model.refine_vectors`),
target replication and the linguistic regulariser (`sentiment.training.position_losses`), the
negation-scope input map (`model.negation_scope`) and the lexicon's word features (`model.lexicon_input`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sentiment.training.loop as training_module
from sentiment.config import load_config
from sentiment.data.lexicon import (
    ENDS_SCOPE,
    NEGATES,
    NEGATOR,
    NEUTRAL,
    WORD_FEATURES,
    lexicon_words,
    negation_roles,
    token_categories,
    vader_lexicon,
    word_features,
)
from sentiment.data.vocab import Vocab
from sentiment.errors import SentimentError
from sentiment.model.embeddings import align_vectors, refine_vectors
from sentiment.model.gates import check_against_module
from sentiment.model.recurrent import ModelSpec, RecurrentClassifier, negation_scope
from sentiment.serving.inference import load_model
from sentiment.training.position_losses import PositionLosses, symmetric_kl
from sentiment.training.stage import train

from conftest import metrics_lines, quiet, tiny_model, without_timing

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out


def test_token_categories_from_vaders_lexicon_and_negators():
    tokens = ["<pad>", "<unk>", "not", "n't", "never", "dress", "terrible", "annoying", "nice", "Perfect"]
    categories = token_categories(tokens, vader_lexicon())
    named = dict(zip(tokens, categories.tolist()))
    assert named["<pad>"] == named["<unk>"] == named["dress"] == NEUTRAL
    assert named["not"] == named["n't"] == named["never"] == NEGATOR
    assert named["terrible"] == 2 and named["annoying"] == 3  # valence -2.1 and -1.7 in VADER
    assert named["nice"] == 4 and named["Perfect"] == 5  # 1.8 and 2.7, matched lowercased


def test_refined_vectors_pull_rated_words_towards_like_rated_neighbours(tmp_path):
    rng = np.random.default_rng(0)
    positive, negative = (
        ["good", "great", "nice", "lovely", "excellent", "happy"],
        ["bad", "awful", "terrible", "horrible", "sad", "ugly"],
    )
    base = rng.normal(size=8)
    lines = []
    # Every rated word sits near every other (one context direction), each with noise, so the
    # nearest neighbours ignore the sign; "dress" is not rated.
    for word in positive + negative + ["dress"]:
        lines.append(word + " " + " ".join(f"{x:.5f}" for x in base + 0.3 * rng.normal(size=8)))
    (tmp_path / "v.txt").write_text("\n".join(lines) + "\n")
    vocab = Vocab.build([positive + negative + ["dress", "zzz"]])
    aligned = align_vectors(str(tmp_path / "v.txt"), vocab, tmp_path, seed=0)
    refined = refine_vectors(aligned, vocab.tokens, vader_lexicon().valence, neighbours=5)
    summary = refined.refined
    assert summary["words"] == 12
    assert summary["opposite_neighbours_after"] < summary["opposite_neighbours_before"]
    for word in ["dress", "zzz", "<pad>"]:  # unrated, random start, padding: untouched
        index = vocab.index[word]
        np.testing.assert_array_equal(refined.matrix[index], aligned.matrix[index])
    moved = [vocab.index[w] for w in positive + negative]
    assert not np.allclose(refined.matrix[moved], aligned.matrix[moved])


def test_refining_needs_vectors():
    with pytest.raises(SentimentError, match="model.refine_vectors"):
        load_config(None, ["model.vectors=none", "model.refine_vectors=vader"])


def test_symmetric_kl_matches_torchs_kl_divergence():
    log_p = torch.randn(5, 3).log_softmax(-1)
    log_q = torch.randn(5, 3).log_softmax(-1)
    kl = torch.nn.functional.kl_div
    expected = 0.5 * (
        kl(log_q, log_p, log_target=True, reduction="none").sum(-1)
        + kl(log_p, log_q, log_target=True, reduction="none").sum(-1)
    )
    torch.testing.assert_close(symmetric_kl(log_p, log_q), expected)


def test_regulariser_costs_nothing_when_each_rule_holds_and_something_when_it_breaks():
    hidden, classes = 4, 2
    # Vocabulary ids: 0 pad, 1 neutral word, 2 negator, 3 a strong positive word.
    categories = torch.tensor([NEUTRAL, NEUTRAL, NEGATOR, 5])
    losses = PositionLosses(hidden, 1, classes, categories, dropout=0.0)
    with torch.no_grad():
        losses.heads[0].weight.copy_(torch.eye(classes, hidden))
        losses.heads[0].bias.zero_()
        losses.drift[5] = torch.tensor([-1.0, 1.0])
    ids = torch.tensor([[1, 1, 2, 3]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    # Logits per position: unchanged at the neutral word, flipped at the negator, shifted by the
    # drift at the positive word: every rule holds, so no penalty.
    logits = torch.tensor([[[0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [-1.5, 1.5]]])
    states = torch.cat([logits, torch.zeros(1, 4, hidden - classes)], dim=2)
    targets = torch.tensor([1])
    _, held = losses([states], mask, ids, targets)
    assert held.item() == 0.0
    broken = states.clone()
    broken[0, 1, :2] = torch.tensor([-2.0, 2.0])  # a neutral word that swings the distribution
    _, penalised = losses([broken], mask, ids, targets)
    assert penalised.item() > 0.1
    # Padding past the length is ignored: a swing there costs nothing.
    padded = torch.cat([states, broken[:, 1:2]], dim=1)
    _, ignored = losses([padded], torch.tensor([[True] * 4 + [False]]), torch.tensor([[1, 1, 2, 3, 1]]), targets)
    assert ignored.item() == 0.0


def test_target_replication_trains_every_position_on_the_label():
    losses = PositionLosses(2, 2, 2, None, dropout=0.0)
    with torch.no_grad():
        for head in losses.heads:
            head.weight.copy_(torch.eye(2))
            head.bias.zero_()
    states = [torch.tensor([[[3.0, -3.0], [3.0, -3.0], [0.0, 0.0]]])] * 2
    mask = torch.tensor([[True, True, False]])
    replication, regularisation = losses(states, mask, torch.tensor([[1, 1, 0]]), torch.tensor([0]))
    assert regularisation is None
    expected = -torch.tensor([3.0, -3.0]).log_softmax(-1)[0]
    torch.testing.assert_close(replication, expected.view(1))  # the padded position does not count


LEVERS = ["training.target_replication=0.5", "training.lexicon_regularization=1.0"]


def test_training_with_target_replication_and_the_regulariser_resumes_exactly(prepared_config, monkeypatch):
    config = prepared_config(*tiny_model(3), "model.dropout=0.2", *LEVERS)
    uninterrupted = without_timing(metrics_lines(train(config, log=quiet).directory))
    reference = load_model(config.run_dir).predict_proba(["love it", "not bad at all"])
    # The finished run is the pooled classifier alone: the per-position heads are not in it.
    info = json.loads((config.run_dir / "run.json").read_text())
    assert info["model"]["head"] == "pooled"

    original = training_module.Trainer._step
    calls = {"n": 0}

    def crash_in_epoch_two(self, batch):
        calls["n"] += 1
        if self.state.epoch == 1 and calls["n"] > 2:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(training_module.Trainer, "_step", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(config, log=quiet)
    monkeypatch.setattr(training_module.Trainer, "_step", original)
    resumed = train(config, resume=True, log=quiet)
    assert without_timing(metrics_lines(resumed.directory)) == uninterrupted
    np.testing.assert_array_equal(load_model(config.run_dir).predict_proba(["love it", "not bad at all"]), reference)


def test_the_levers_change_what_is_learned(prepared_config):
    texts = ["love it", "not bad at all"]
    plain = load_model(train(prepared_config(*tiny_model(2)), log=quiet).directory).predict_proba(texts)
    with_levers = load_model(train(prepared_config(*tiny_model(2), *LEVERS), log=quiet).directory)
    assert not np.array_equal(plain, with_levers.predict_proba(texts))


def test_regulariser_without_replication_and_with_the_sentence_head_are_refused(prepared_config):
    with pytest.raises(SentimentError, match="target_replication > 0"):
        load_config(None, ["training.lexicon_regularization=1"])
    config = prepared_config(*tiny_model(1), "training.target_replication=0.5", "model.head=sentences")
    with pytest.raises(SentimentError, match="model.head"):
        train(config, log=quiet)


SCOPE_TOKENS = "<pad> <unk> it is n't itchy at all , but never thin . not".split()


def test_a_negation_scope_runs_from_the_negator_to_the_next_punctuation_or_connective():
    roles = negation_roles(SCOPE_TOKENS, vader_lexicon())
    named = dict(zip(SCOPE_TOKENS, roles.tolist()))
    assert named["n't"] == named["never"] == named["not"] == NEGATES
    assert named[","] == named["but"] == named["."] == ENDS_SCOPE
    assert named["<pad>"] == named["itchy"] == 0
    ids = torch.arange(len(SCOPE_TOKENS)).unsqueeze(0)
    scope = negation_scope(torch.as_tensor(roles)[ids])[0]
    assert [t for t, inside in zip(SCOPE_TOKENS, scope.tolist()) if inside] == ["itchy", "at", "all", "thin"]


def scoped_model() -> RecurrentClassifier:
    torch.manual_seed(0)
    model = RecurrentClassifier(
        ModelSpec(vocab_size=len(SCOPE_TOKENS), num_classes=2, embedding_dim=6, hidden_size=5, negation_scope=True)
    )
    model.set_negation_roles(negation_roles(SCOPE_TOKENS, vader_lexicon()))
    return model.eval()


def test_the_negation_map_starts_as_the_identity_and_changes_only_the_words_in_scope():
    model = scoped_model()
    ids = torch.tensor([[2, 3, 4, 5, 6, 8, 9, 11, 0]])  # it is n't itchy at , but . <pad>
    torch.testing.assert_close(model.input_vectors(ids), model.embedding(ids))
    with torch.no_grad():
        model.negation.bias.fill_(1.0)
    moved = (model.input_vectors(ids) - model.embedding(ids)).abs().sum(dim=2)[0]
    assert moved.nonzero().flatten().tolist() == [3, 4]  # "itchy" and "at"; not the padding
    assert check_against_module(model, ids[0, :8]) < 1e-5  # the gate trace reads the same inputs


def test_a_run_with_negation_scope_keeps_its_roles_and_reads_negation_through_them(prepared_config):
    texts = ["love it", "not bad at all"]
    plain = load_model(train(prepared_config(*tiny_model(2)), log=quiet).directory).predict_proba(texts)
    config = prepared_config(*tiny_model(2), "model.negation_scope=true", "name=scoped")
    scoped = load_model(train(config, log=quiet).directory)
    network = scoped.network
    words = scoped.run.vocab.tokens
    np.testing.assert_array_equal(network.negation_roles.numpy(), negation_roles(words, vader_lexicon()))
    assert network.negation.weight.abs().sum() > 0  # the map was trained
    assert not np.array_equal(plain, scoped.predict_proba(texts))


def test_word_features_give_the_rating_and_the_negator_and_connective_flags():
    tokens = ["<pad>", "<unk>", "not", "n't", "terrible", "Perfect", "but", "however", "dress"]
    features = dict(zip(tokens, word_features(tokens, vader_lexicon()).tolist()))
    assert WORD_FEATURES == ("valence", "negator", "contrast connective")
    assert features["<pad>"] == features["<unk>"] == features["dress"] == [0.0, 0.0, 0.0]
    assert features["not"] == features["n't"] == [0.0, 1.0, 0.0]
    assert features["terrible"] == pytest.approx([-2.1 / 4, 0.0, 0.0])  # VADER's mean rating
    assert features["Perfect"] == pytest.approx([2.7 / 4, 0.0, 0.0])  # matched lowercased
    assert features["but"] == features["however"] == [0.0, 0.0, 1.0]
    words = lexicon_words(vader_lexicon())
    assert {"worthless", "useless", "never"} <= set(words) and all(word.isalpha() for word in words)


def test_a_dropped_word_keeps_its_lexicon_features():
    torch.manual_seed(0)
    spec = ModelSpec(vocab_size=len(SCOPE_TOKENS), num_classes=2, embedding_dim=6, hidden_size=5, word_features=3)
    model = RecurrentClassifier(spec)
    features = word_features(SCOPE_TOKENS, vader_lexicon())
    model.set_word_features(features)
    assert model.recurrent(0, 0).input_size == 6 + 3
    ids = torch.tensor([[2, 3, 4, 5, 9]])  # it is n't itchy but
    model.eval()
    read = model.input_vectors(ids)[0]
    torch.testing.assert_close(read[:, :6], model.embedding(ids)[0])
    torch.testing.assert_close(read[:, 6:], torch.as_tensor(features)[ids[0]])
    model.train()
    model.embedding_dropout = 0.999999  # every word vector dropped
    dropped = model.embed(ids)[0]
    assert dropped[:, :6].abs().sum() == 0
    torch.testing.assert_close(dropped[:, 6:], torch.as_tensor(features)[ids[0]])
    assert check_against_module(model.eval(), ids[0]) < 1e-5  # the gate trace reads the features too
    with pytest.raises(SentimentError, match="word features of shape"):
        model.set_word_features(features[:-1])


def test_lexicon_dropout_zeroes_some_ratings_in_training_only_and_keeps_the_rest_as_they_are():
    torch.manual_seed(0)
    spec = ModelSpec(
        vocab_size=len(SCOPE_TOKENS),
        num_classes=2,
        embedding_dim=6,
        hidden_size=5,
        word_features=3,
        lexicon_dropout=0.5,
    )
    model = RecurrentClassifier(spec)
    features = torch.as_tensor(word_features(SCOPE_TOKENS, vader_lexicon()))
    model.set_word_features(features)
    rated = [i for i, row in enumerate(features.tolist()) if row[0] != 0]
    ids = torch.tensor([rated * 40])  # each rated word many times over
    expected = features[ids[0]]
    model.train()
    read = model.embed(ids)[0]
    torch.testing.assert_close(read[:, :6], model.embedding(ids)[0])  # the word vectors untouched
    torch.testing.assert_close(read[:, 7:], expected[:, 1:])  # negator and connective flags kept
    valence = read[:, 6]
    dropped = valence == 0
    assert 0.3 < dropped.float().mean() < 0.7  # about half the ratings dropped ...
    torch.testing.assert_close(valence[~dropped], expected[~dropped, 0])  # ... the others not rescaled
    model.eval()
    torch.testing.assert_close(model.embed(ids)[0][:, 6:], expected)  # scoring reads every rating
    with pytest.raises(SentimentError, match="model.lexicon_dropout"):
        load_config(None, ["model.lexicon_input=none", "model.lexicon_dropout=0.3"])


def test_a_run_with_lexicon_input_knows_the_lexicons_words_and_reads_their_ratings(prepared_config):
    config = prepared_config(*tiny_model(2), "model.lexicon_input=vader", "name=lexicon-input")
    scorer = load_model(train(config, log=quiet).directory)
    words = scorer.run.vocab.tokens
    assert "worthless" in words  # never in the training reviews, given by the lexicon
    np.testing.assert_array_equal(scorer.network.word_features.numpy(), word_features(words, vader_lexicon()))
    # The features are the network's input: changing a rating changes the prediction.
    before = scorer.predict_proba(["worthless"])
    with torch.no_grad():
        scorer.network.word_features[words.index("worthless"), 0] = 1.0
    assert not np.allclose(before, scorer.predict_proba(["worthless"]))
