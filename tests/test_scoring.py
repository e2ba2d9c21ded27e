"""`sentiment score` and `score_files` on one real tiny run: formats, errors, row counts, identities."""

import csv
import io
import json
import unicodedata
from itertools import islice
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiment import load_model
from sentiment.cli import cli
from sentiment.data.text import ERRORS
from sentiment.model.batching import predict_ids
from sentiment.serving.input_files import Record
from sentiment.serving.scoring import score_files, score_records

from conftest import one_line_error, write_csv

MAX_LEN = 32  # tiny_trained's tokenize.max_len (conftest)
LONG = " ".join(["lovely soft fabric"] * 40)  # 120 tokens, beyond MAX_LEN
UNSCORED = {error for error in ERRORS if error != "truncated"}
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


@pytest.fixture(scope="module")
def model(tiny_trained):
    return load_model(tiny_trained.run_dir)


def score(*args, input=None):
    return CliRunner().invoke(cli, ["score", *map(str, args)], input=input)


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def prob_columns(rows: list[dict]) -> list[str]:
    return [key for key in rows[0] if key.startswith("prob_")]


# ---- the row-per-row contract ----------------------------------------------------------------


def test_every_line_gets_a_row_and_unscorable_ones_say_why(tiny_trained, model, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_bytes(
        b"love this dress\n"  # 1 scored
        b"\n"  # 2 empty
        b"  \t \x0b \n"  # 3 only whitespace
        b"nice \xff\xfe fabric\n" + LONG.encode() + b"\n"  # 4 invalid UTF-8  # 5 truncated, still scored
        b"runs small\r\n"  # 6 Windows line end
        b"one\rline\x1cwith\xe2\x80\xa8breaks\n"  # 7 \r, \x1c, U+2028 are not line ends
        b"the zipper broke"
    )  # 8 final line without newline
    output = tmp_path / "scores.csv"
    summary = score_files(model, [reviews], output, keep_text=True)
    rows = read_csv(output)
    assert [int(r["row"]) for r in rows] == list(range(1, 9)) and {r["source"] for r in rows} == {str(reviews)}
    assert [r["error"] for r in rows] == ["", "empty_text", "empty_text", "invalid_utf8", "truncated", "", "", ""]
    assert list(rows[0]) == ["source", "row", "label", "prob_negative", "prob_positive", "error", "text"]
    for row in rows:
        probabilities = [row[c] for c in prob_columns(rows)]
        if row["error"] in UNSCORED:
            assert row["label"] == "" and probabilities == ["", ""]
        else:
            assert row["label"] in model.classes and sum(map(float, probabilities)) == pytest.approx(1.0)
    assert rows[3]["text"] == "nice \ufffd\ufffd fabric"  # replaced, flagged, not fatal
    assert rows[5]["text"] == "runs small" and rows[6]["text"] == "one\rline\x1cwith\u2028breaks"
    # The truncated review scores as its first max_len tokens.
    first = " ".join(LONG.split()[:MAX_LEN])
    assert float(rows[4]["prob_positive"]) == pytest.approx(model.predict_proba([first])[0, 1], abs=1e-6)
    assert (summary.rows, summary.scored) == (8, 5)
    assert summary.errors == {"empty_text": 2, "invalid_utf8": 1, "truncated": 1} and summary.seconds > 0


def test_text_without_tokens_is_flagged(model, tmp_path):
    class DropsEverything:
        def pipe(self, texts):
            return ([] if "nothing" in text else text.split() for text in texts)

    stub = SimpleNamespace(
        classes=model.classes,
        max_len=model.max_len,
        scoring_inputs=DropsEverything().pipe,
        predict_inputs=model.predict_tokens,
        decide=model.decide,
    )
    (tmp_path / "in.txt").write_text("nothing here\nlove it\n")
    score_files(stub, [tmp_path / "in.txt"], tmp_path / "out.csv")
    assert [r["error"] for r in read_csv(tmp_path / "out.csv")] == ["no_tokens", ""]


def txt_lines(data: bytes) -> int:
    """What a line is: split on b"\\n" only; a final line without newline counts, a trailing newline adds none.
    A UTF-8 byte-order mark at the very start is not text: a file of only a mark has no lines."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    if not data:
        return 0
    return data.count(b"\n") + (not data.endswith(b"\n"))


LINE = st.one_of(
    st.just(b""),
    st.sampled_from([b" ", b"\r", b"\x0b", b"\x0c", b"\x1c\x1d", "\u2028\u0085\u3000".encode(), b"\xef\xbb\xbf"]),
    st.text(st.characters(blacklist_characters="\n"), max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
    st.integers(MAX_LEN, 3 * MAX_LEN).map(lambda n: " ".join(["soft"] * n).encode()),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, max_size=25), trailing_newline=st.booleans())
def test_output_rows_always_equal_input_lines(model, tmp_path, lines, trailing_newline):
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    path = tmp_path / "random.txt"
    path.write_bytes(data)
    summary = score_files(model, [path], tmp_path / "random.csv", workers=1)
    rows = read_csv(tmp_path / "random.csv")
    assert len(rows) == summary.rows == txt_lines(data)
    assert [int(r["row"]) for r in rows] == list(range(1, len(rows) + 1))
    for row, line in zip(rows, data.split(b"\n")):
        line = line.removesuffix(b"\r")
        if row["row"] == "1":
            line = line.removeprefix(b"\xef\xbb\xbf")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            assert row["error"] == "invalid_utf8"
            continue
        if not "".join(c for c in text if unicodedata.category(c) != "Cc" and c not in ZERO_WIDTH).strip():
            assert row["error"] == "empty_text"  # whitespace, control characters and zero-width marks are no text
        else:
            assert row["error"] in ("", "truncated", "no_tokens")
        assert (row["label"] == "") == (row["error"] in UNSCORED)


def test_the_python_api_takes_a_loaded_model_or_a_path(tiny_trained, model, tmp_path):
    (tmp_path / "in.txt").write_text("love it\nawful\n")
    from_path = score_files(tiny_trained.run_dir, [tmp_path / "in.txt"], tmp_path / "a.jsonl")
    score_files(model, [tmp_path / "in.txt"], tmp_path / "b.jsonl")
    assert (from_path.rows, from_path.scored, from_path.output) == (2, 2, str(tmp_path / "a.jsonl"))
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    predictions = model.predict(["love it", "awful"])
    assert [json.loads(line)["label"] for line in (tmp_path / "a.jsonl").read_text().splitlines()] == predictions.labels


def test_loading_a_trained_run_and_scoring_do_not_import_scikit_learn(tiny_trained, tmp_path):
    import subprocess
    import sys

    (tmp_path / "in.txt").write_text("love it\nawful\n")
    program = (
        "import sys\n"
        "from sentiment.serving.scoring import score_files\n"
        f"score_files({str(tiny_trained.run_dir)!r}, [{str(tmp_path / 'in.txt')!r}], {str(tmp_path / 'out.csv')!r})\n"
        "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"  # 2.7 s of start-up a `score` does not need
    assert (tmp_path / "out.csv").read_text().count("\n") == 3


def test_scoring_streams_chunk_by_chunk(model):
    def endless():
        row = 0
        while True:
            row += 1
            yield Record("endless", row, "love it", ())

    chunks = list(islice(score_records(model, endless(), chunk_size=8, workers=2), 5))
    assert [[r.row for r in chunk.records] for chunk in chunks] == [  # small first chunks: see chunk_sizes
        [1],
        [2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11, 12, 13, 14, 15],
        [16, 17, 18, 19, 20, 21, 22, 23],
    ]


def test_a_worker_goes_on_to_later_chunks_while_the_oldest_is_still_on_another(model, monkeypatch):
    import threading
    import time

    from sentiment.serving import scoring

    later_done = []
    seen_by_the_first: list[int] = []
    original = scoring.score_chunk

    def spy(model, records, *args):
        if records[0].row == 1:  # the first chunk is held until three later ones are scored (or 30 s)
            deadline = time.monotonic() + 30
            while len(later_done) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            seen_by_the_first.append(len(later_done))
            return original(model, records, *args)
        scored = original(model, records, *args)
        later_done.append(threading.current_thread().name)
        return scored

    monkeypatch.setattr(scoring, "score_chunk", spy)
    records = [Record("in", row, "love it", ()) for row in range(1, 41)]
    chunks = list(score_records(model, records, chunk_size=8, workers=2))
    assert seen_by_the_first and seen_by_the_first[0] >= 3
    assert [r.row for chunk in chunks for r in chunk.records] == list(range(1, 41))  # still in input order


def test_chunks_start_small_with_several_workers_and_grow_to_the_chunk_size():
    from sentiment.serving.scoring import RAMP_UP, chunk_sizes

    assert list(islice(chunk_sizes(8192, workers=1), 3)) == [8192, 8192, 8192]
    assert list(islice(chunk_sizes(8192, workers=2), 6)) == [8192 // RAMP_UP, 2048, 4096, 8192, 8192, 8192]
    assert list(islice(chunk_sizes(3, workers=2), 3)) == [1, 2, 3]


def test_the_end_is_cut_finer_so_that_the_workers_finish_together():
    from sentiment.serving.scoring import chunked

    # sizes 1, 2, 4, 8...; once the input has ended (two chunks are read ahead) each piece is a
    # quarter of what is left for two workers, at least the first chunk's size
    assert list(chunked(range(20), 8, workers=2)) == [
        [0],
        [1, 2],
        [3, 4, 5, 6],
        [7, 8, 9, 10],
        [11, 12, 13],
        [14, 15],
        [16],
        [17],
        [18],
        [19],
    ]
    assert [len(chunk) for chunk in chunked(range(100_000), 8192, workers=2)] == [
        *(1024, 2048, 4096),
        *[8192] * 9,
        *(4776, 3582, 2687, 2015, 1511, 1134, 1024, 1024, 1024, 327),
    ]
    # with three workers a sixth of what is left
    assert list(chunked(range(10), 8, workers=3)) == [[0], [1, 2], [3, 4], [5], [6], [7], [8], [9]]
    # one worker: plain chunks; nothing in, nothing out
    assert list(chunked(range(20), 8)) == [list(range(8)), list(range(8, 16)), [16, 17, 18, 19]]
    assert list(chunked([], 8, workers=2)) == [] == list(chunked([], 8))


def test_worker_threads_get_one_torch_thread_and_a_short_gil_hand_over_then_both_are_restored(
    model, tmp_path, monkeypatch
):
    import sys

    import torch

    from sentiment.serving import scoring

    seen = []
    original = scoring.score_chunk

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), sys.getswitchinterval()))
        return original(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_chunk", spy)
    (tmp_path / "in.txt").write_text("love it\nawful\n" * 10)
    threads, interval = torch.get_num_threads(), sys.getswitchinterval()
    torch.set_num_threads(2)
    try:
        score_files(model, [tmp_path / "in.txt"], tmp_path / "out.csv", workers=2, chunk_size=4)
        assert seen and all(s == (1, scoring.GIL_SWITCH_INTERVAL) for s in seen)
        assert (torch.get_num_threads(), sys.getswitchinterval()) == (2, interval)
    finally:
        torch.set_num_threads(threads)


def test_scoring_freezes_what_was_alive_and_collects_less_often_then_restores_the_collector(
    model, tmp_path, monkeypatch
):
    import gc

    from sentiment.serving import scoring

    seen = []
    original = scoring.score_chunk

    def spy(*args, **kwargs):
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return original(*args, **kwargs)

    monkeypatch.setattr(scoring, "score_chunk", spy)
    (tmp_path / "in.txt").write_text("love it\nawful\n" * 10)
    threshold = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    score_files(model, [tmp_path / "in.txt"], tmp_path / "out.csv", workers=2, chunk_size=4)
    assert seen and all(young == scoring.GC_YOUNG_THRESHOLD and frozen > 0 for young, frozen in seen), seen
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 20

    # A caller that froze its own objects (a server after loading) keeps its freeze and its threshold.
    # (The frozen count may fall while scoring: a frozen object that is freed leaves the count.)
    seen.clear()
    gc.freeze()
    try:
        score_files(model, [tmp_path / "in.txt"], tmp_path / "out2.csv", workers=2, chunk_size=4)
        assert seen and all(young == threshold[0] and frozen > 0 for young, frozen in seen), seen
        assert gc.get_threshold() == threshold and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# ---- formats in and out ----------------------------------------------------------------------


@pytest.fixture
def table():
    return pd.DataFrame(
        {
            "id": [7, 8, 9, 10],
            "label": ["gold-pos", "gold-neg", "x", "y"],
            "review": ["love this dress", "the zipper broke", "", "so comfortable, true to size"],
        }
    )


def write_inputs(frame: pd.DataFrame, directory) -> dict[str, str]:
    paths = {kind: directory / f"in.{kind}" for kind in ("csv", "tsv", "jsonl", "parquet")}
    frame.to_csv(paths["csv"], index=False)
    frame.to_csv(paths["tsv"], index=False, sep="\t")
    frame.to_json(paths["jsonl"], orient="records", lines=True)
    frame.to_parquet(paths["parquet"], index=False)
    (directory / "in.txt").write_text("\n".join(frame["review"]) + "\n")
    return {kind: str(path) for kind, path in paths.items()}


def test_every_input_format_gives_the_same_scores(tiny_trained, tmp_path, table):
    inputs = write_inputs(table, tmp_path)
    ok(score("-m", tiny_trained.run_dir, tmp_path / "in.txt", "-o", tmp_path / "txt.csv"))
    reference = pd.read_csv(tmp_path / "txt.csv")
    for kind, path in inputs.items():
        out = tmp_path / f"from_{kind}.csv"
        ok(score("-m", tiny_trained.run_dir, path, "--text-column", "review", "--keep-columns", "id,label", "-o", out))
        scored = pd.read_csv(out)
        assert list(scored.columns) == [
            "source",
            "row",
            "label",
            "prob_negative",
            "prob_positive",
            "error",
            "id",
            "input_label",
        ], kind
        assert scored["row"].tolist() == [1, 2, 3, 4] and scored["id"].tolist() == [7, 8, 9, 10]
        assert scored["input_label"].tolist() == table["label"].tolist()
        pd.testing.assert_frame_equal(
            scored[["label", "prob_negative", "prob_positive", "error"]],
            reference[["label", "prob_negative", "prob_positive", "error"]],
        )


def test_every_output_format_holds_the_same_rows(tiny_trained, tmp_path, table):
    inputs = write_inputs(table, tmp_path)
    for extension in ("csv", "jsonl", "parquet"):
        ok(
            score(
                "-m",
                tiny_trained.run_dir,
                inputs["parquet"],
                "--text-column",
                "review",
                "--keep-text",
                "--keep-columns",
                "id",
                "-o",
                tmp_path / f"out.{extension}",
            )
        )
    from_csv = pd.read_csv(tmp_path / "out.csv", keep_default_na=False, na_values=[""])
    from_jsonl = pd.read_json(tmp_path / "out.jsonl", lines=True, precise_float=True)
    from_parquet = pd.read_parquet(tmp_path / "out.parquet")
    assert from_parquet["id"].dtype == np.int64  # a kept Parquet column keeps its type
    for frame in (from_jsonl, from_parquet):
        assert list(frame.columns) == list(from_csv.columns)
        assert frame["label"].isna().tolist() == frame["prob_positive"].isna().tolist() == [False, False, True, False]
        assert frame["error"].fillna("").tolist() == ["", "", "empty_text", ""]
        assert frame["text"].fillna("").tolist() == table["review"].tolist()
        np.testing.assert_array_equal(frame["prob_positive"], from_csv["prob_positive"])  # CSV keeps every digit
        assert frame["label"].tolist()[:2] == from_csv["label"].tolist()[:2]


def test_kept_json_values_become_text_in_parquet(tiny_trained, tmp_path):
    lines = [{"text": "love it", "id": 7, "meta": {"stars": 5}}, {"text": "awful", "id": "x-8", "meta": None}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    ok(
        score(
            "-m",
            tiny_trained.run_dir,
            tmp_path / "in.jsonl",
            "--keep-columns",
            "id",
            "--keep-columns",
            "meta",
            "-o",
            tmp_path / "out.parquet",
        )
    )
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert scored["id"].tolist() == ["7", "x-8"] and scored["meta"].fillna("null").tolist() == ['{"stars": 5}', "null"]


def test_standard_input_and_output(tiny_trained):
    result = ok(score("-m", tiny_trained.run_dir, "-", input="love this dress\n\nawful fit\n"))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["source"], r["row"], r["error"]) for r in rows] == [
        ("<stdin>", "1", ""),
        ("<stdin>", "2", "empty_text"),
        ("<stdin>", "3", ""),
    ]
    jsonl = '{"text": "love it", "id": 1}\nnot json\n{"text": "awful", "id": 3}\n'
    result = ok(score("-m", tiny_trained.run_dir, "--format", "jsonl", "--keep-columns", "id", "-", input=jsonl))
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["row"], r["error"], r["id"]) for r in rows] == [
        ("1", "", "1"),
        ("2", "invalid_json", ""),
        ("3", "", "3"),
    ]


def test_several_files_and_a_glob_in_order(tiny_trained, tmp_path):
    for name, lines in [("b.txt", "awful\nok fine\n"), ("a.txt", "love it\n"), ("c.csv", "text\nnice\n")]:
        (tmp_path / name).write_text(lines)
    out = tmp_path / "out.jsonl"
    ok(score("-m", tiny_trained.run_dir, tmp_path / "c.csv", str(tmp_path / "*.txt"), "--device", "cpu", "-o", out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["source"].rsplit("/", 1)[1], r["row"]) for r in rows] == [
        ("c.csv", 1),
        ("a.txt", 1),
        ("b.txt", 1),
        ("b.txt", 2),
    ]


def test_the_baseline_scores_the_same_files(tiny_trained, tmp_path, table):
    inputs = write_inputs(table, tmp_path)
    ok(
        score(
            "-m", tiny_trained.run_dir / "baseline", inputs["csv"], "--text-column", "review", "-o", tmp_path / "b.csv"
        )
    )
    ok(score("-m", tiny_trained.run_dir, inputs["csv"], "--text-column", "review", "-o", tmp_path / "m.csv"))
    baseline, model = read_csv(tmp_path / "b.csv"), read_csv(tmp_path / "m.csv")
    assert [r["error"] for r in baseline] == ["", "", "empty_text", ""]
    assert all(r["label"] in ("negative", "positive") for r in baseline if not r["error"])
    assert [r["prob_positive"] for r in baseline] != [r["prob_positive"] for r in model]


# ---- identities ------------------------------------------------------------------------------


def test_batch_size_does_not_change_the_probabilities(tiny_trained, tmp_path):
    import datasets

    texts = [
        text
        for split in ("train", "validation", "test")
        for text in datasets.load_from_disk(str(tiny_trained.prepared_dir / split))["text"]
    ]
    (tmp_path / "in.txt").write_text("\n".join(texts + [LONG, "ok", ""]) + "\n")
    ok(score("-m", tiny_trained.run_dir, tmp_path / "in.txt", "--batch-size", "64", "-o", tmp_path / "64.csv"))
    ok(score("-m", tiny_trained.run_dir, tmp_path / "in.txt", "--batch-size", "1", "-o", tmp_path / "1.csv"))
    batched, single = read_csv(tmp_path / "64.csv"), read_csv(tmp_path / "1.csv")
    assert len(batched) == len(texts) + 3
    assert [r["label"] for r in batched] == [r["label"] for r in single]
    for column in prob_columns(batched):
        np.testing.assert_allclose(
            [float(r[column] or "nan") for r in batched], [float(r[column] or "nan") for r in single], rtol=0, atol=1e-6
        )


def test_scoring_the_test_split_reproduces_its_accuracy(tiny_trained, tmp_path):
    import datasets

    test = datasets.load_from_disk(str(tiny_trained.prepared_dir / "test"))
    run_model = load_model(tiny_trained.run_dir)
    expected = predict_ids(run_model.network, test["ids"]).argmax(1)
    write_csv(tmp_path / "test.csv", [{"text": text} for text in test["text"]], fieldnames=["text"])
    ok(score("-m", tiny_trained.run_dir, tmp_path / "test.csv", "-o", tmp_path / "scored.csv"))
    rows = read_csv(tmp_path / "scored.csv")
    predicted = np.array([run_model.classes.index(r["label"]) for r in rows])
    assert len(rows) == len(test) and (predicted == expected).all()


# ---- user mistakes: one line, exit 2, no output file -----------------------------------------


@pytest.fixture
def reviews_txt(tmp_path):
    path = tmp_path / "reviews.txt"
    path.write_text("love it\nawful\n")
    return path


def no_output_left(directory, name="out.csv"):
    assert not (directory / name).exists()
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_missing_or_incomplete_model(tmp_path, reviews_txt):
    one_line_error(score("-m", tmp_path / "nothing", reviews_txt, "-o", tmp_path / "out.csv"), "no trained run at")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    one_line_error(
        score("-m", tmp_path / "half", reviews_txt, "-o", tmp_path / "out.csv"), "not a complete run: missing"
    )
    one_line_error(score("-m", reviews_txt, reviews_txt, "-o", tmp_path / "out.csv"), "no trained run at")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "baseline.json").write_text("not json")
    one_line_error(score("-m", tmp_path / "bad", reviews_txt, "-o", tmp_path / "out.csv"), "baseline.json is corrupt")
    no_output_left(tmp_path)


def test_unknown_columns(tiny_trained, tmp_path, table):
    inputs = write_inputs(table, tmp_path)
    for path in inputs.values():
        one_line_error(
            score("-m", tiny_trained.run_dir, path, "-o", tmp_path / "out.csv"),
            r"no text column 'text' \(choose it with --text-column\); its columns: id, label, review",
        )
        one_line_error(
            score(
                "-m",
                tiny_trained.run_dir,
                path,
                "--text-column",
                "review",
                "--keep-columns",
                "stars",
                "-o",
                tmp_path / "out.csv",
            ),
            "no column 'stars'",
        )
    one_line_error(
        score("-m", tiny_trained.run_dir, tmp_path / "in.txt", "--keep-columns", "id", "-o", tmp_path / "out.csv"),
        "a .txt file has no columns to keep",
    )
    no_output_left(tmp_path)


def test_unusable_inputs_and_outputs(tiny_trained, tmp_path, reviews_txt):
    run = tiny_trained.run_dir
    one_line_error(score("-m", run, tmp_path / "missing.txt", "-o", tmp_path / "out.csv"), "input file not found")
    one_line_error(score("-m", run, str(tmp_path / "*.csv"), "-o", tmp_path / "out.csv"), "no input file matches")
    (tmp_path / "reviews.xlsx").write_text("x")
    one_line_error(score("-m", run, tmp_path / "reviews.xlsx", "-o", tmp_path / "out.csv"), "cannot tell the format")
    (tmp_path / "fake.parquet").write_text("not parquet")
    one_line_error(
        score("-m", run, tmp_path / "fake.parquet", "-o", tmp_path / "out.csv"), "not a readable Parquet file"
    )
    one_line_error(score("-m", run, reviews_txt, "-o", tmp_path / "out.xlsx"), "cannot tell the output format")
    one_line_error(score("-m", run, reviews_txt, "-o", tmp_path), "is a directory")
    one_line_error(score("-m", run, reviews_txt, "-o", reviews_txt / "out.csv"), "cannot write the output")
    no_output_left(tmp_path)
    assert reviews_txt.read_text() == "love it\nawful\n"


def test_a_failure_midway_leaves_the_previous_output_untouched(model, tmp_path, monkeypatch):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"text": f"love it {i}"}) + "\n" for i in range(20)))
    out = tmp_path / "out.csv"
    out.write_text("previous results\n")
    # stdin is checked as it is read: its missing column shows up after good.jsonl is scored.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'{"review": "no text column"}\n')))
    with pytest.raises(Exception, match="no text column 'text'"):
        score_files(model, [good, "-"], out, input_format="jsonl", chunk_size=3)
    assert out.read_text() == "previous results\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
