"""Sentences: spaCy's sentencizer in `prepare`, the same rule on token ids inside the model, the
sentence examples of `training.segments`, and the multiple-instance head (`model.head = "sentences"`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sentiment.config import load_config
from sentiment.data.text import Tokenizer, sentence_spans, sentence_token_kinds
from sentiment.data.vocab import Vocab
from sentiment.errors import SentimentError
from sentiment.model.batching import collate
from sentiment.model.recurrent import ModelSpec, RecurrentClassifier, sentence_starts
from sentiment.training.segments import sentence_examples, training_examples

from conftest import metrics_lines, quiet, tiny_model

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

TEXTS = [
    "Love it!! Not itchy at all. The fit... is great?  Yes",
    "One sentence only",
    "!! great. Bad one",
    "Runs small (order up!). Otherwise perfect :)",
    'She said "wow." I agree.',
    "Not bad at all. Not perfect, but pretty good! Would buy again?",
    "a. b. c",
]


@pytest.fixture(scope="module")
def tokenized():
    pairs = list(Tokenizer().pipe_with_sentences(TEXTS))
    return pairs, Vocab.build([tokens for tokens, _ in pairs])


def test_prepare_tokens_are_pipes_tokens_and_sentences_begin_after_sentence_ends():
    tokenizer = Tokenizer()
    pairs = list(tokenizer.pipe_with_sentences(TEXTS))
    assert [tokens for tokens, _ in pairs] == list(tokenizer.pipe(TEXTS))
    tokens, starts = pairs[0]
    assert [tokens[s] for s in starts] == ["love", "not", "the", "yes"]
    assert sentence_spans(starts, len(tokens), min_tokens=2) == [(0, 4), (4, 9), (9, 15)]  # "yes" is 1 token
    assert sentence_spans(starts, 6) == [(0, 4), (4, 6)]  # truncated ids keep the sentences they hold


def test_the_models_rule_on_ids_finds_the_sentencizers_sentences(tokenized):
    pairs, vocab = tokenized
    kinds = torch.as_tensor(sentence_token_kinds(vocab.tokens))
    ids, lengths = collate([vocab.encode(tokens) for tokens, _ in pairs])
    mask = torch.arange(ids.size(1)) < lengths.unsqueeze(1)
    found = sentence_starts(kinds[ids], mask)
    for row, (_, starts) in enumerate(pairs):
        assert torch.nonzero(found[row]).flatten().tolist() == starts, TEXTS[row]


def sentence_model(vocab: Vocab, **kwargs) -> RecurrentClassifier:
    torch.manual_seed(0)
    model = RecurrentClassifier(
        ModelSpec(len(vocab), 2, embedding_dim=8, hidden_size=12, dropout=0.0, head="sentences", **kwargs)
    )
    model.set_sentence_kinds(sentence_token_kinds(vocab.tokens))
    return model.eval()


def test_sentence_head_weighs_each_sentences_own_reading(tokenized):
    pairs, vocab = tokenized
    model = sentence_model(vocab)
    tokens, starts = pairs[5]
    ids, lengths = collate([vocab.encode(tokens)])
    with torch.no_grad():
        reading = model.read_sentences(ids, lengths)
        spans = sentence_spans(starts, len(tokens))
        alone = torch.cat([model(*collate([vocab.encode(tokens[b:e])])) for b, e in spans]).exp()
    assert reading.counts.tolist() == [3]
    assert reading.weights.sum().item() == pytest.approx(1.0)
    # Each sentence is read on its own: in the review or alone, the same distribution.
    assert torch.allclose(reading.sentence_log_probs.exp(), alone, atol=1e-6)
    mixed = (reading.weights.unsqueeze(1) * alone).sum(0)
    assert torch.allclose(reading.review_log_probs.exp()[0], mixed, atol=1e-6)


def test_sentence_head_batched_equals_one_by_one(tokenized):
    pairs, vocab = tokenized
    model = sentence_model(vocab, pooling="max+mean")
    encoded = [vocab.encode(tokens) for tokens, _ in pairs]
    with torch.no_grad():
        batched = model(*collate(encoded)).exp()
        single = torch.cat([model(*collate([ids])) for ids in encoded]).exp()
    assert torch.allclose(batched, single, atol=1e-6)


def test_sentence_examples_carry_their_reviews_label_and_weights():
    ids = [np.arange(1, 10), np.arange(1, 4), np.arange(1, 8)]
    starts = [np.array([0, 4, 8]), np.array([0]), np.array([0, 2])]
    labels = np.array([1, 0, 0])
    sentence_ids, sentence_labels = sentence_examples(ids, starts, labels, min_tokens=2)
    # Review 0: sentences [0,4) and [4,8); the 1-token [8,9) is dropped. Review 1 is one sentence.
    assert [s.tolist() for s in sentence_ids] == [[1, 2, 3, 4], [5, 6, 7, 8], [1, 2], [3, 4, 5, 6, 7]]
    assert sentence_labels.tolist() == [1, 1, 0, 0]
    config = load_config(
        None, ["training.segments=sentences", "training.segment_weight=0.5", "training.segment_class_weights=true"]
    ).training
    examples = training_examples(ids, starts, labels, 2, config)
    assert (examples.reviews, examples.sentences) == (3, 4)
    # Reviews weigh 1; sentences 0.5 times the inverse frequency of their class among sentences.
    assert examples.weights.tolist() == [1, 1, 1, 0.5, 0.5, 0.5, 0.5]
    plain = training_examples(ids, starts, labels, 2, load_config(None, []).training)
    assert plain.weights is None and len(plain.ids) == 3


def test_the_logit_adjusted_loss_shifts_only_the_sentence_examples_logits(prepared_config):
    from sentiment.data.prepare import load_prepared
    from sentiment.training.loop import Trainer

    config = prepared_config(
        *tiny_model(1), "model.dropout=0", "training.segments=sentences", "training.segment_logit_adjustment=1"
    )
    trainer = Trainer(config, load_prepared(config.prepared_dir), config.run_dir, torch.device("cpu"), quiet)
    examples = trainer.examples
    counts = np.bincount(examples.labels[examples.reviews :], minlength=2) + 1.0
    assert torch.allclose(trainer.setup.sentence_logit_offset, torch.tensor(np.log(counts / counts.sum())).float())
    batch = np.array([0, 1, examples.reviews, examples.reviews + 1, examples.reviews + 2])
    ids, lengths = collate([examples.ids[i] for i in batch])
    targets = torch.as_tensor(examples.labels[batch])
    weights = torch.as_tensor(examples.weights[batch], dtype=torch.float32)
    with torch.no_grad():
        logits = trainer.model(ids, lengths)
    is_sentence = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]).unsqueeze(1)

    def loss(offset):
        losses = torch.nn.functional.cross_entropy(logits + is_sentence * offset, targets, reduction="none")
        return float((losses * weights).sum() / weights.sum())

    step_loss = trainer._step(batch)  # the loss before its update
    assert step_loss == pytest.approx(loss(trainer.setup.sentence_logit_offset), rel=1e-5)
    assert step_loss != pytest.approx(loss(torch.zeros(2)), rel=1e-3)


def test_training_with_sentences_and_the_sentence_head(prepared_config):
    from sentiment.serving.inference import load_model
    from sentiment.training.stage import train

    config = prepared_config(*tiny_model(3), "training.segments=sentences", "model.head=sentences")
    run = train(config, log=quiet)
    info = json.loads((config.run_dir / "run.json").read_text())
    assert info["model"]["head"] == "sentences"
    from sentiment.data.prepare import load_prepared

    train_split = load_prepared(config.prepared_dir).split("train")
    assert info["training_examples"]["reviews"] == len(train_split)
    assert 0 < info["training_examples"]["sentences"] <= sum(len(s) for s in train_split["sentences"])
    lines = metrics_lines(config.run_dir)
    assert len(lines) == 3
    for line in lines:  # each epoch's shares of the loss, by kind of example
        assert set(line["loss_shares"]) == {"reviews", "sentences"}
        assert sum(line["loss_shares"].values()) == pytest.approx(1.0, abs=1e-3)
    model = load_model(run.directory)
    kinds = model.network.sentence_kinds
    assert kinds[model.run.vocab.index["."]] == 2 and kinds[model.run.vocab.index[","]] == 1
    probabilities = model.predict(["love this dress. the zipper broke", "great quality"]).probabilities
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(1), 1.0)


def test_predict_with_sentences_reads_each_sentence(prepared_config):
    from sentiment.serving.inference import load_model
    from sentiment.training.stage import train

    texts = ["Love this dress. The zipper broke after one wash!", "great quality"]
    pooled = load_model(train(prepared_config(*tiny_model(2)), log=quiet).directory)
    predictions = pooled.predict(texts, sentences=True)
    assert [[s.text for s in sentences] for sentences in predictions.sentences] == [
        ["Love this dress.", "The zipper broke after one wash!"],
        ["great quality"],
    ]
    alone = pooled.predict(["The zipper broke after one wash!"]).probabilities[0]
    assert np.allclose(predictions.sentences[0][1].probabilities, alone)
    assert predictions.sentences[0][1].weight is None

    config = prepared_config(*tiny_model(2), "model.head=sentences", "name=tiny-sentences")
    headed = load_model(train(config, log=quiet).directory)
    predictions = headed.predict(texts, sentences=True)
    first = predictions.sentences[0]
    assert len(first) == 2 and sum(s.weight for s in first) == pytest.approx(1.0)
    # The sentences mix into the text's distribution before temperature scaling.
    from sentiment.training.calibration import rescale

    mixed = sum(s.weight * s.probabilities for s in first)
    unscaled = rescale(predictions.probabilities, headed.network.temperature)
    assert np.allclose(mixed, unscaled[0], atol=1e-5)


def test_the_clause_head_also_splits_before_contrast_connectives():
    from sentiment.data.text import CONTRAST_CONNECTIVES

    tokens = list(Tokenizer().pipe(["Not perfect, but pretty good. My friends love it, however I do not!"]))
    vocab = Vocab.build(tokens)
    kinds = torch.as_tensor(sentence_token_kinds(vocab.tokens, CONTRAST_CONNECTIVES))
    ids, lengths = collate([vocab.encode(t) for t in tokens])
    starts = sentence_starts(kinds[ids], torch.ones_like(ids, dtype=torch.bool))
    assert [tokens[0][i] for i in torch.nonzero(starts[0]).flatten().tolist()] == ["not", "but", "my", "however"]


@pytest.mark.parametrize("extension", ["csv", "jsonl", "parquet"])
def test_score_with_sentences_keeps_one_row_per_input_row(prepared_config, tmp_path, extension):
    import pandas as pd
    from click.testing import CliRunner

    from sentiment.cli import cli
    from sentiment.training.stage import train

    run = train(prepared_config(*tiny_model(1)), log=quiet)
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("Love this dress. The zipper broke!\n\ngreat quality\n", encoding="utf-8")
    output = tmp_path / f"scored.{extension}"
    result = CliRunner().invoke(
        cli, ["score", "-m", str(run.directory), str(reviews), "--sentences", "-o", str(output)]
    )
    assert result.exit_code == 0, result.output
    table = {"csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True), "parquet": pd.read_parquet}[extension](
        output
    )
    assert len(table) == 3 and list(table.columns)[:7] == [
        "source",
        "row",
        "label",
        "prob_negative",
        "prob_positive",
        "error",
        "sentences",
    ]
    cells = [
        json.loads(c) if isinstance(c, str) else (None if c is None or (isinstance(c, float)) else list(c))
        for c in table["sentences"]
    ]
    assert [s["text"] for s in cells[0]] == ["Love this dress.", "The zipper broke!"] and cells[1] is None
    assert cells[2][0]["label"] == table["label"][2]
    assert cells[2][0]["prob_positive"] == pytest.approx(table["prob_positive"][2], abs=1e-6)


def test_the_lexicon_filter_keeps_the_sentences_vader_agrees_with():
    from sentiment.config import TrainingConfig

    reviews = [
        "love it . i ordered it in black . not bad at all .".split(),  # a positive review
        "terrible zipper . the color is lovely .".split(),  # a negative one
    ]
    starts = [np.array([0, 3, 9]), np.array([0, 3])]
    ids = [np.arange(len(tokens), dtype=np.int32) + 2 for tokens in reviews]
    labels = np.array([1, 0])
    config = TrainingConfig(segments="sentences", segment_filter="lexicon")
    examples = training_examples(ids, starts, labels, 2, config, tokens=reviews, class_names=["negative", "positive"])
    # "love it ." and "not bad at all ." carry their positive review's label; "i ordered it in
    # black ." (compound 0) and the negative review's "the color is lovely ." are left out.
    sentences = [list(sentence) for sentence in examples.ids[examples.reviews :]]
    assert sentences == [list(ids[0][0:3]), list(ids[0][9:14]), list(ids[1][0:3])]
    assert examples.labels[examples.reviews :].tolist() == [1, 1, 0]
    assert examples.filtered_out == 2 and examples.summary()["sentences_filtered_out"] == 2
    with pytest.raises(SentimentError, match="needs the binary scheme"):
        training_examples(ids, starts, labels, 2, config, tokens=reviews, class_names=["negative", "neutral"])


def test_the_corpus_filter_reads_the_training_reviews_own_polar_ngrams():
    from sentiment.config import TrainingConfig
    from sentiment.training.segment_filter import corpus_polarity

    negative = "it runs small . i ordered it in black .".split()  # VADER rates neither sentence
    positive = "love it . i ordered it in black .".split()
    reviews = [negative] * 30 + [positive] * 60
    labels = np.array([0] * 30 + [1] * 60)
    polarity = corpus_polarity(reviews, labels)
    # A gram as common in either class as the prior makes it is not polar, whatever the imbalance.
    assert (
        polarity["runs small"] < -1 and polarity["love"] > 1 and "ordered" not in polarity and "black" not in polarity
    )
    starts = [np.array([0, 4])] * 30 + [np.array([0, 3])] * 60
    ids = [np.arange(len(tokens), dtype=np.int32) + 2 for tokens in reviews]
    names = ["negative", "positive"]
    examples = training_examples(
        ids, starts, labels, 2, TrainingConfig(segments="sentences", segment_filter="corpus"), reviews, names
    )
    sentences = [(list(s), int(label)) for s, label in zip(examples.ids[90:], examples.labels[90:])]
    assert sentences == [(list(ids[0][0:4]), 0)] * 30 + [(list(ids[30][0:3]), 1)] * 60
    assert examples.filtered_out == 90  # every "i ordered it in black ."
    # VADER alone keeps "love it ." but not "it runs small ."; either keeps both.
    lexicon = training_examples(
        ids, starts, labels, 2, TrainingConfig(segments="sentences", segment_filter="lexicon"), reviews, names
    )
    either = training_examples(
        ids, starts, labels, 2, TrainingConfig(segments="sentences", segment_filter="lexicon_or_corpus"), reviews, names
    )
    assert (lexicon.sentences, either.sentences) == (60, 90)


def test_relabelling_keeps_a_sentence_both_readings_put_on_the_other_side_with_that_label():
    from sentiment.config import TrainingConfig

    # Ten of sixty positive reviews carry a complaint that VADER ("sadly") and the corpus
    # ("returning", common in the negative reviews) both read as negative.
    plain_positive = "love it . i ordered it in black .".split()
    complaining = "love it . sadly i am returning it . i ordered it in black .".split()
    negative = "awful fit . i am returning it . i ordered it in black .".split()
    reviews = [plain_positive] * 50 + [complaining] * 10 + [negative] * 30
    labels = np.array([1] * 60 + [0] * 30)
    starts = [np.array([0, 3])] * 50 + [np.array([0, 3, 9])] * 10 + [np.array([0, 3, 9])] * 30
    ids = [np.arange(len(tokens), dtype=np.int32) + 2 for tokens in reviews]
    names = ["negative", "positive"]
    config = TrainingConfig(segments="sentences", segment_filter="lexicon_or_corpus", segment_relabel=True)
    examples = training_examples(ids, starts, labels, 2, config, reviews, names)
    sentences = [(list(s), int(label)) for s, label in zip(examples.ids[90:], examples.labels[90:])]
    complaint = list(ids[50][3:9])
    assert sentences[50:52] == [(list(ids[50][0:3]), 1), (complaint, 0)]  # relabelled
    assert sentences[-2:] == [(list(ids[89][0:3]), 0), (list(ids[89][3:9]), 0)]  # agree with their review
    assert examples.relabelled == 10 and examples.summary()["sentences_relabelled"] == 10
    assert examples.filtered_out == 90  # every "i ordered it in black ." is still left out
    assert examples.labels[:90].tolist() == labels.tolist()  # the reviews keep their labels
    unflipped = training_examples(
        ids, starts, labels, 2, TrainingConfig(segments="sentences", segment_filter="lexicon_or_corpus"), reviews, names
    )
    assert (
        unflipped.relabelled == 0 and unflipped.filtered_out == 100 and unflipped.sentences == examples.sentences - 10
    )
    with pytest.raises(ValueError, match="segment_relabel reads the filter"):
        TrainingConfig(segments="sentences", segment_relabel=True)


def test_clause_examples_split_sentences_at_contrast_connectives_and_pass_the_filter():
    from sentiment.config import TrainingConfig

    # A negative review whose contrast sentence praises first and complains after "but".
    review = "love the color but the fabric is awful . i ordered it in black .".split()
    starts = [np.array([0, 9])]
    ids = [np.arange(len(review), dtype=np.int32) + 2]
    labels = np.array([0])
    names = ["negative", "positive"]
    config = TrainingConfig(segments="sentences+clauses")
    examples = training_examples(ids, starts, labels, 2, config, tokens=[review], class_names=names)
    spans = [list(s) for s in examples.ids[1:]]
    # The two sentences, then the first sentence's two clauses (the connective opens its clause).
    assert spans == [list(ids[0][0:9]), list(ids[0][9:15]), list(ids[0][0:3]), list(ids[0][3:9])]
    assert examples.labels[1:].tolist() == [0, 0, 0, 0] and examples.clauses == 2
    assert examples.summary()["clauses"] == 2
    # The lexicon filter keeps the negative sentence and its negative clause, and leaves out the
    # praise ("love the color") and the neutral "i ordered it in black .".
    filtered = training_examples(
        ids, starts, labels, 2, TrainingConfig(segments="sentences+clauses", segment_filter="lexicon"), [review], names
    )
    assert [list(s) for s in filtered.ids[1:]] == [list(ids[0][0:9]), list(ids[0][3:9])]
    assert filtered.clauses == 1 and filtered.filtered_out == 2
    with pytest.raises(SentimentError, match="needs the training tokens"):
        training_examples(ids, starts, labels, 2, config)


def test_the_verdict_clause_reading_reads_a_but_sentence_by_what_follows_the_last_but():
    from sentiment.config import TrainingConfig
    from sentiment.training.segment_filter import verdict_spans

    # A positive review: its first sentence praises and then complains after "but"; its second
    # complains and then praises after "however". VADER, which does not rate "runs small", reads
    # both whole sentences as positive.
    review = "love the color but it runs small . it runs small , however i love it .".split()
    starts = [np.array([0, 8])]
    ids = [np.arange(len(review), dtype=np.int32) + 2]
    labels = np.array([1])
    names = ["negative", "positive"]
    assert verdict_spans([review], [(0, 0, 8), (0, 8, 17), (0, 0, 3)]) == [(0, 3, 8), (0, 12, 17), (0, 0, 3)]
    # A connective with nothing after it opens no verdict clause.
    assert verdict_spans([["good", "but"]], [(0, 0, 2)]) == [(0, 0, 2)]
    whole = training_examples(
        ids, starts, labels, 2, TrainingConfig(segments="sentences", segment_filter="lexicon"), [review], names
    )
    assert [list(s) for s in whole.ids[1:]] == [list(ids[0][0:8]), list(ids[0][8:17])]
    config = TrainingConfig(segments="sentences", segment_filter="lexicon", segment_verdict_clause=True)
    verdict = training_examples(ids, starts, labels, 2, config, [review], names)
    # "but it runs small ." does not agree with the positive review, so that sentence is left out.
    assert [list(s) for s in verdict.ids[1:]] == [list(ids[0][8:17])] and verdict.filtered_out == 1
    with pytest.raises(ValueError, match="segment_verdict_clause changes the filter"):
        TrainingConfig(segments="sentences", segment_verdict_clause=True)


def test_the_negation_veto_lets_vader_overrule_the_corpus_reading_of_a_negated_sentence():
    from sentiment.config import TrainingConfig

    # The corpus n-grams read "best" as positive (it is in 60 positive reviews, no negative one),
    # so they read "this is not the best color ." as positive too; VADER flips "best" after "not".
    praising = "love it . this is the best dress .".split()
    doubting = "love it . this is not the best color .".split()
    negative = "awful fit . i returned it .".split()
    reviews = [praising] * 60 + [doubting] + [negative] * 30
    labels = np.array([1] * 61 + [0] * 30)
    starts = [np.array([0, 3])] * 61 + [np.array([0, 3])] * 30
    ids = [np.arange(len(tokens), dtype=np.int32) + 2 for tokens in reviews]
    names = ["negative", "positive"]
    doubt = list(ids[60][3:10])

    def sentences(**levers):
        config = TrainingConfig(segments="sentences", segment_filter="lexicon_or_corpus", **levers)
        examples = training_examples(ids, starts, labels, 2, config, reviews, names)
        return [list(sentence) for sentence in examples.ids[examples.reviews :]]

    assert doubt in sentences()
    vetoed = sentences(segment_negation_veto=True)
    assert doubt not in vetoed and len(vetoed) == len(sentences()) - 1
    with pytest.raises(ValueError, match="segment_negation_veto weighs"):
        TrainingConfig(segments="sentences", segment_filter="lexicon", segment_negation_veto=True)


def test_the_model_card_counts_the_training_examples_and_their_shares_of_the_loss():
    from sentiment.reporting.model_card import _body

    info = {"model": {"cell": "lstm"}, "training_examples": {"reviews": 10, "sentences": 7, "clauses": 2}}
    assert "- Trained on 10 reviews and 7 of their sentences (2 of them clauses of contrast sentences)." in _body(
        info, {}, None
    )
    info["training_examples"] = {"reviews": 10, "sentences": 5}
    assert "- Trained on 10 reviews and 5 of their sentences." in _body(info, {}, None)
    # The kept epoch's shares of the loss, the kinds that trained in it.
    info["best_validation"] = {"loss_shares": {"reviews": 0.188, "sentences": 0.812, "extra_sentences": 0.0}}
    assert (
        "- Shares of the kept epoch's loss: reviews 18.8%, sentences 81.2% (a batch's loss is its examples' "
        "weighted mean, and a batch holds examples of similar length)."
    ) in _body(info, {}, None)
