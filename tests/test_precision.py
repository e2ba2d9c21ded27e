"""bfloat16 scoring (`sentiment.model.precision`, `score --precision`): the float32 network's
readings, rounded, for every row; refused where the processor would only emulate it."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sentiment import load_model
from sentiment.cli import cli
from sentiment.errors import SentimentError
from sentiment.model import precision
from sentiment.model.batching import predict_ids
from sentiment.model.precision import check_precision, in_precision, native_bfloat16
from sentiment.model.recurrent import EnsembleClassifier
from sentiment.model.tracing import traced_for_inference
from sentiment.serving.batch_scorer import BatchScorer

from conftest import one_line_error
from small_networks import id_lists, network

needs_native = pytest.mark.skipif(not native_bfloat16(), reason="this CPU has no native bfloat16 (AVX512-BF16, AMX)")
TEXTS = ["love it", "not bad at all, but the zipper broke", "awful . returned it", "", "so soft"] * 4


@pytest.mark.parametrize(
    "options",
    [{}, {"cell": "gru", "pooling": "last"}, {"word_features": 3}, {"head": "sentences"}],
)
def test_a_bfloat16_copy_reads_like_the_float32_network_and_leaves_it_as_it_was(options):
    """bfloat16 arithmetic runs on any CPU (emulated where not native), so this holds everywhere."""
    original = network(**options)
    before = {name: tensor.clone() for name, tensor in original.state_dict().items()}
    copy = in_precision(original, "bfloat16")
    assert {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in original.parameters()} == {torch.float32}
    assert all(torch.equal(before[name], tensor) for name, tensor in original.state_dict().items())
    inference = traced_for_inference(copy)
    assert isinstance(inference, torch.jit.ScriptModule) == (options.get("head") != "sentences")
    texts = id_lists(200)
    rounded, exact = predict_ids(inference, texts, 64), predict_ids(original, texts, 64)
    assert rounded.dtype == np.float32
    np.testing.assert_allclose(rounded.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(rounded, exact, rtol=0, atol=0.02)
    assert not np.array_equal(rounded, exact)  # it did run in bfloat16


def test_an_ensemble_is_copied_member_by_member():
    ensemble = EnsembleClassifier([network(), network(cell="gru")])
    texts = id_lists(50)
    np.testing.assert_allclose(
        predict_ids(traced_for_inference(in_precision(ensemble, "bfloat16")), texts),
        predict_ids(ensemble, texts),
        rtol=0,
        atol=0.02,
    )


def test_float32_is_the_network_itself_and_other_precisions_are_refused(monkeypatch):
    model = network()
    assert in_precision(model, "float32") is model
    for call in (lambda: check_precision("float16"), lambda: in_precision(model, "int8")):
        with pytest.raises(SentimentError, match="precision must be one of float32, bfloat16, got"):
            call()
    monkeypatch.setattr(precision, "native_bfloat16", lambda device="cpu": False)
    with pytest.raises(SentimentError, match="this CPU .* has no native bfloat16 arithmetic"):
        check_precision("bfloat16")
    check_precision("float32")


def score(*args):
    return CliRunner().invoke(cli, ["score", *map(str, args)])


@pytest.fixture
def reviews_txt(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return path


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@needs_native
def test_score_in_bfloat16_keeps_every_row_and_reads_as_float32_does(tiny_trained, tmp_path, reviews_txt):
    outputs = {p: tmp_path / f"{p}.csv" for p in ("float32", "bfloat16")}
    for name, output in outputs.items():
        result = score("-m", tiny_trained.run_dir, reviews_txt, "--precision", name, "-o", output)
        assert result.exit_code == 0, result.output
    exact, rounded = read_rows(outputs["float32"]), read_rows(outputs["bfloat16"])
    assert [(r["row"], r["error"]) for r in rounded] == [(r["row"], r["error"]) for r in exact]
    assert sum(r["label"] == "" for r in rounded) == TEXTS.count("")
    for a, b in zip(exact, rounded):
        for column in (c for c in a if c.startswith("prob_") and a[c]):
            assert abs(float(a[column]) - float(b[column])) < 0.01
    # The labels agree wherever float32's probability is not within bfloat16's rounding of the cut.
    cut = load_model(tiny_trained.run_dir).decision_threshold or 0.5
    clear = [not r["prob_positive"] or abs(float(r["prob_positive"]) - cut) > 0.01 for r in exact]
    assert sum(clear) >= len(exact) // 2  # the comparison is not empty
    assert [r["label"] for r, c in zip(rounded, clear) if c] == [r["label"] for r, c in zip(exact, clear) if c]


@needs_native
def test_the_api_and_the_batch_scorer_run_the_bfloat16_copy(tiny_trained):
    model = load_model(tiny_trained.run_dir, precision="bfloat16")
    assert model.precision == "bfloat16"
    assert {p.dtype for p in model.network.parameters()} == {torch.float32}  # the run's network is untouched
    inputs = list(model.scoring_inputs(["love it", "awful . returned it"]))
    rounded, exact = model.predict_inputs(inputs), load_model(tiny_trained.run_dir).predict_inputs(inputs)
    np.testing.assert_allclose(rounded, exact, rtol=0, atol=0.01)
    assert not np.array_equal(rounded, exact)
    scored = BatchScorer(str(tiny_trained.run_dir), precision="bfloat16")({"text": ["love it", "awful . returned it"]})
    np.testing.assert_allclose(
        np.column_stack([scored[f"prob_{c}"] for c in model.classes]), rounded, rtol=0, atol=1e-6
    )


def test_score_refuses_bfloat16_where_the_cpu_would_emulate_it(tiny_trained, tmp_path, reviews_txt, monkeypatch):
    monkeypatch.setattr(precision, "native_bfloat16", lambda device="cpu": False)
    output = tmp_path / "out.csv"
    one_line_error(
        score("-m", tiny_trained.run_dir, reviews_txt, "--precision", "bfloat16", "-o", output),
        r"--precision bfloat16: this CPU \(it lacks AVX512-BF16 and AMX\) has no native bfloat16 arithmetic",
    )
    assert not output.exists()


def test_the_baseline_and_vader_have_no_bfloat16_pass(tiny_trained, tmp_path, reviews_txt):
    for model, what in ((tiny_trained.run_dir / "baseline", "the bag-of-words baseline"), ("vader", "VADER")):
        one_line_error(
            score("-m", model, reviews_txt, "--precision", "bfloat16", "-o", tmp_path / "out.csv"),
            f"--precision bfloat16 is for a trained run's network; .*{what}",
        )
    assert not (tmp_path / "out.csv").exists()


def test_serve_refuses_bfloat16_for_the_baseline_before_it_listens(tiny_trained):
    result = CliRunner().invoke(cli, ["serve", "-m", str(tiny_trained.run_dir / "baseline"), "--precision", "bfloat16"])
    one_line_error(result, "--precision bfloat16 is for a trained run's network; .*the bag-of-words baseline")
