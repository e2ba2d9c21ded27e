"""The prepare stage on small files the tests write, through the library and the CLI."""

import json
import os

import pytest
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.data import prepare as prepare_module
from sentiment.data.prepare import ids_from_column, prepare, token_ids

from conftest import TINY_CONFIG, quiet, review_rows, write_csv


def test_prepare_writes_splits_vocab_and_manifest(reviews_csv, make_config):
    config = make_config(reviews_csv)
    prepared = prepare(config, log=quiet)
    manifest = prepared.manifest
    assert manifest["labels"] == ["negative", "positive"]
    assert manifest["rows"]["read"] == {"all": 84}
    assert manifest["rows"]["dropped"]["label_3_not_in_binary_scheme"] == 4
    assert manifest["rows"]["kept"] == 80
    assert sum(sum(c.values()) for c in manifest["counts"].values()) == 80
    assert all(min(c.values()) >= 1 for c in manifest["counts"].values())
    assert manifest["config"]["data"]["source"] == str(reviews_csv)
    assert manifest["source"]["sha256"] and manifest["versions"]["spacy"]
    train = prepared.split("train")
    assert set(train.column_names) == {"text", "title", "tokens", "ids", "sentences", "label"}
    row = train[0]
    assert prepared.vocab.encode(row["tokens"]) == row["ids"]
    # The vocabulary comes from the training split only.
    train_words = {t for tokens in train["tokens"] for t in tokens}
    assert set(prepared.vocab.tokens[2:]) <= train_words


def test_no_text_appears_in_two_splits(tmp_path, make_config):
    rows = review_rows() + review_rows()  # every text twice
    config = make_config(write_csv(tmp_path / "dups.csv", rows))
    prepared = prepare(config, log=quiet)
    texts = {name: set(prepared.split(name)["text"]) for name in ("train", "validation", "test")}
    assert not texts["train"] & texts["validation"] and not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]


def test_max_len_truncates_ids_but_keeps_tokens(reviews_csv, make_config):
    prepared = prepare(make_config(reviews_csv, "tokenize.max_len=3"), log=quiet)
    train = prepared.split("train")
    assert max(len(ids) for ids in train["ids"]) == 3
    assert max(len(tokens) for tokens in train["tokens"]) > 3


def test_token_ids_are_the_ids_column_as_arrays(reviews_csv, make_config):
    prepared = prepare(make_config(reviews_csv), log=quiet)
    for name in ("train", "test"):
        split = prepared.split(name)
        arrays = token_ids(split)
        assert [a.tolist() for a in arrays] == split["ids"]
    # A sliced Arrow column (offsets not starting at 0) reads the same rows.
    sliced = prepared.split("train").select(range(3, 9))
    assert [a.tolist() for a in ids_from_column(sliced.data.column("ids"))] == sliced["ids"]


def test_rerun_hits_the_cache_and_a_changed_config_prepares_again(reviews_csv, make_config, monkeypatch):
    first = prepare(make_config(reviews_csv), log=quiet)
    created = first.manifest["created"]
    calls = []
    monkeypatch.setattr(prepare_module, "load_source", lambda *a: calls.append(a) or pytest.fail("cache missed"))
    messages = []
    again = prepare(make_config(reviews_csv), log=messages.append)
    assert again.manifest["created"] == created and "up to date" in messages[0]
    monkeypatch.undo()
    changed = prepare(make_config(reviews_csv, "vocab.min_freq=5"), log=quiet)
    assert changed.manifest["config"]["vocab"]["min_freq"] == 5
    assert len(changed.vocab) < len(first.vocab)


def test_changed_data_prepares_again(tmp_path, make_config):
    path = write_csv(tmp_path / "r.csv", review_rows())
    first = prepare(make_config(path), log=quiet)
    write_csv(path, review_rows(copies=5))
    second = prepare(make_config(path), log=quiet)
    assert second.manifest["rows"]["kept"] > first.manifest["rows"]["kept"]


def test_an_interrupted_prepare_leaves_nothing_a_later_stage_accepts(reviews_csv, make_config, monkeypatch):
    config = make_config(reviews_csv)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "write_record", crash)  # while writing the manifest
    with pytest.raises(KeyboardInterrupt):
        prepare(config, log=quiet)
    assert not config.prepared_dir.exists()
    assert not any(p.name.startswith(".") for p in config.prepared_dir.parent.iterdir())


def test_jsonl_tsv_and_parquet_with_named_columns(tmp_path, make_config):
    import pandas as pd

    frame = pd.DataFrame(review_rows()).rename(columns={"text": "body", "label": "stars"})
    frame["stars"] = frame["stars"].map({1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"})
    paths = [tmp_path / "r.jsonl", tmp_path / "r.tsv", tmp_path / "r.parquet"]
    frame.to_json(paths[0], orient="records", lines=True)
    frame.to_csv(paths[1], sep="\t", index=False)
    frame.to_parquet(paths[2])
    for path in paths:
        config = make_config(path, "data.text_column=body", "data.label_column=stars", f"name=t{path.suffix[1:]}")
        assert prepare(config, log=quiet).manifest["rows"]["kept"] == 80


def test_ternary_scheme_keeps_three_stars(reviews_csv, make_config):
    prepared = prepare(
        make_config(reviews_csv, "data.label_scheme=ternary", "split.validation=0.25", "split.test=0.25"), log=quiet
    )
    assert prepared.labels == ["negative", "neutral", "positive"]
    assert prepared.manifest["rows"]["kept"] == 84


def test_empty_texts_are_dropped_and_counted(tmp_path, make_config):
    rows = review_rows() + [{"text": "   ", "label": 5}, {"text": "", "label": 1}]
    prepared = prepare(make_config(write_csv(tmp_path / "r.csv", rows)), log=quiet)
    assert prepared.manifest["rows"]["dropped"]["empty_text"] == 2


# --- errors a user can cause: one line on stderr, exit code 2, nothing written --------------


def run_cli(*args):
    result = CliRunner().invoke(cli, list(args))
    return result


def cli_args(tmp_path, source, *sets):
    args = [
        "prepare",
        "--config",
        TINY_CONFIG,
        "--set",
        "name=tiny",
        "--set",
        f"data.source={source}",
        "--set",
        f"paths.data={tmp_path / 'out'}",
        "--set",
        "vocab.min_freq=1",
    ]
    for value in sets:
        args += ["--set", value]
    return args


def bad_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("text,label\n")
    (tmp_path / "blank_texts.csv").write_text('text,label\n ,5\n"  ",1\n')
    (tmp_path / "latin1.csv").write_bytes("text,label\ngood,5\ncaf\xe9 ok,4\n".encode("latin-1"))
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet")
    (tmp_path / "reviews.xlsx").write_bytes(b"x")
    write_csv(
        tmp_path / "few_negatives.csv",
        [r for r in review_rows() if r["label"] >= 3]
        + [{"text": "awful", "label": 1}, {"text": "horrible", "label": 2}],
    )
    write_csv(tmp_path / "weird_labels.csv", review_rows() + [{"text": "hmm", "label": 9}])
    return {
        "missing file": (tmp_path / "nope.csv", "is not a file that exists"),
        "empty file": (tmp_path / "empty.csv", "the file is empty"),
        "no rows": (tmp_path / "header_only.csv", "has no rows"),
        "all texts empty": (tmp_path / "blank_texts.csv", "every text is empty"),
        "invalid utf-8": (tmp_path / "latin1.csv", "invalid UTF-8 on line 3"),
        "unreadable format": (tmp_path / "broken.parquet", "cannot read it as PARQUET"),
        "unsupported type": (tmp_path / "reviews.xlsx", "unsupported file type"),
        "class too small": (tmp_path / "few_negatives.csv", "class 'negative' has 2 distinct texts"),
        "unknown labels": (tmp_path / "weird_labels.csv", "unknown label values.*9"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "empty file",
        "no rows",
        "all texts empty",
        "invalid utf-8",
        "unreadable format",
        "unsupported type",
        "class too small",
        "unknown labels",
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, case):
    import re

    path, message = bad_files(tmp_path)[case]
    result = run_cli(*cli_args(tmp_path, path))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(message, lines[0]), result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "prepared" / "tiny").exists()


def test_missing_column_and_bad_config_are_exit_code_2(tmp_path, reviews_csv):
    result = run_cli(*cli_args(tmp_path, reviews_csv, "data.text_column=review"))
    assert result.exit_code == 2 and "no column 'review'" in result.output
    result = run_cli(*cli_args(tmp_path, reviews_csv, "vocab.minfreq=2"))
    assert result.exit_code == 2 and "did you mean 'vocab.min_freq'" in result.output
    result = run_cli("prepare", "--config", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "config file not found" in result.output


def test_cli_prepare_prints_counts_and_output(tmp_path, reviews_csv):
    result = run_cli(*cli_args(tmp_path, reviews_csv))
    assert result.exit_code == 0, result.output
    assert "prepared 80 reviews" in result.output and "validation" in result.output
    manifest = json.loads((tmp_path / "out" / "prepared" / "tiny" / "manifest.json").read_text())
    assert manifest["experiment"] == "tiny"


def test_help_is_fast_because_heavy_imports_wait():
    import subprocess
    import sys

    code = "import sys, sentiment.cli; print(any(m in sys.modules for m in ('torch', 'spacy', 'datasets', 'sklearn')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert out.stdout.strip() == "False"


def test_a_hub_dataset_without_network_fails_fast_and_clearly(tmp_path, make_config, monkeypatch):
    import datasets

    from sentiment.data import sources
    from sentiment.errors import SentimentError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sources, "_hub_reachable", lambda timeout=1.5: False)  # as on a machine without network
    offline_when_loading = []
    real_load = datasets.load_dataset

    def load_dataset(*args, **kwargs):
        offline_when_loading.append(os.environ.get("HF_HUB_OFFLINE"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(SentimentError, match="hub is not reachable .* not cached"):
        prepare(make_config("hub:sentiment-tests/no-such-dataset"), log=quiet)
    # datasets only looked in its cache, with the hub switched off, so it never waited on the
    # network (the time this takes is measured by `python -m benchmarks startup`)
    assert offline_when_loading == ["1"]
