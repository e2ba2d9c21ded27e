"""The traced forward pass that scoring runs: the eager network's outputs, or the eager network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sentiment.model import tracing
from sentiment.model.batching import predict_ids
from sentiment.model.recurrent import EnsembleClassifier
from sentiment.model.tracing import traced_for_inference

from small_networks import id_lists, network


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"cell": "gru", "pooling": "last"},
        {"cell": "rnn", "pooling": "mean", "bidirectional": False},
        {"num_layers": 2, "negation_scope": True},
        {"word_features": 3},
    ],
)
def test_the_trace_scores_every_batch_shape_as_the_eager_network(options):
    eager = network(**options)
    traced = traced_for_inference(eager)
    assert isinstance(traced, torch.jit.ScriptModule)
    texts = id_lists(300)
    for batch_size in (64, 7):  # batches of every length from 1 to 59, and a short last batch
        np.testing.assert_allclose(
            predict_ids(traced, texts, batch_size), predict_ids(eager, texts, batch_size), rtol=0, atol=1e-6
        )


def test_many_batches_in_one_call_give_each_batch_s_own_probabilities():
    """`predict_ids` sends a traced network GROUP batches per call; the rows come back in input order,
    as each batch's own call gives them, across the groups' edges."""
    from sentiment.model.batching import GROUP, bucket_batches, collate

    traced = traced_for_inference(network())
    assert isinstance(traced, torch.jit.ScriptModule) and hasattr(traced, "batch_probabilities")
    texts = id_lists(2 * GROUP * 4 + 3)  # batches of 4: two full groups and a short third
    expected = np.empty((len(texts), 3), dtype=np.float32)  # three classes
    with torch.no_grad():
        for batch in bucket_batches([len(ids) for ids in texts], 4):
            expected[batch] = torch.softmax(traced(*collate([texts[i] for i in batch])), dim=-1).numpy()
    np.testing.assert_array_equal(predict_ids(traced, texts, 4), expected)


def test_an_ensemble_of_traceable_members_is_traced():
    ensemble = EnsembleClassifier([network(), network(cell="gru")])
    traced = traced_for_inference(ensemble)
    assert isinstance(traced, torch.jit.ScriptModule)
    texts = id_lists(50)
    np.testing.assert_allclose(predict_ids(traced, texts), predict_ids(ensemble, texts), rtol=0, atol=1e-6)


def test_a_network_whose_operations_depend_on_its_input_is_not_traced():
    sentences = network(head="sentences")  # counts its sentences in Python: a trace would keep one count
    assert traced_for_inference(sentences) is sentences


def test_a_trace_that_does_not_match_the_network_is_not_used(monkeypatch):
    """The check on other batch shapes is what guards against a wrong trace, whatever `traceable` says."""
    sentences = network(head="sentences")
    monkeypatch.setattr(tracing, "traceable", lambda _: True)
    assert traced_for_inference(sentences) is sentences


def test_scoring_runs_the_traced_network_and_gives_the_eager_probabilities(tiny_trained):
    from sentiment.serving.inference import load_model

    model = load_model(tiny_trained.run_dir)
    assert isinstance(model.inference_network, torch.jit.ScriptModule)
    texts = ["love it", "not bad at all, but the zipper broke", "awful . returned it"] * 5
    inputs = list(model.scoring_inputs(texts))
    np.testing.assert_allclose(
        model.predict_inputs(inputs), predict_ids(model.network, inputs, model.batch_size), rtol=0, atol=1e-6
    )


def test_a_changed_temperature_reaches_the_traced_network(tiny_trained):
    from sentiment.serving.inference import load_model

    model = load_model(tiny_trained.run_dir)
    inputs = list(model.scoring_inputs(["love it", "awful"]))
    before = model.predict_inputs(inputs)
    model.network.temperature = 0.25
    np.testing.assert_allclose(
        model.predict_inputs(inputs), predict_ids(model.network, inputs, model.batch_size), rtol=0, atol=1e-6
    )
    assert not np.allclose(model.predict_inputs(inputs), before)
