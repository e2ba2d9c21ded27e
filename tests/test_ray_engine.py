"""`score --engine ray` on a local Ray instance (2 CPUs, no dashboard) against the local engine."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from sentiment.model.precision import native_bfloat16  # noqa: E402
from sentiment.serving.batch_scorer import BatchScorer  # noqa: E402
from sentiment.serving.inference import load_model  # noqa: E402
from sentiment.serving.ray_engine import score_with_ray  # noqa: E402
from sentiment.serving.scoring import score_files  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def inputs(directory):
    """Three files of three formats, with empty, non-string, invalid-UTF-8 and broken-JSON rows mixed in."""
    txt = directory / "a.txt"
    txt.write_bytes(b"love this dress\n\nthe zipper broke\ncaf\xe9 bad bytes\n" + b"great fit, soft\n" * 40)
    jsonl = directory / "b.jsonl"
    jsonl.write_text(
        "\n".join(
            [
                json.dumps({"text": "runs small", "id": 1}),
                json.dumps({"text": 42, "id": 2}),
                "{not json",
                json.dumps({"id": 4}),
                json.dumps({"text": "so comfortable", "id": 5}),
            ]
        ),
        encoding="utf-8",
    )
    csv = directory / "c.csv"
    csv.write_text(
        "id,text\n" + "".join(f"{i},{'awful quality' if i % 3 else ''}\n" for i in range(30)), encoding="utf-8"
    )
    return [str(txt), str(jsonl), str(csv)]


@pytest.mark.slow
def test_ray_scores_every_row_once_as_the_local_engine_does(local_ray, tiny_trained, tmp_path):
    trained = tiny_trained.run_dir
    files = inputs(tmp_path)
    local = tmp_path / "local.parquet"
    score_files(trained, files, local)
    output = tmp_path / "ray-out"
    summary = score_with_ray(str(trained), files, output, preserve_order=True, batch_size=16)
    ours = pd.read_parquet(local)
    theirs = pd.concat([pd.read_parquet(path) for path in sorted(output.glob("*.parquet"))], ignore_index=True)
    assert summary.rows == len(ours) == len(theirs) == 44 + 5 + 30
    assert not theirs.duplicated(["source", "row"]).any()
    merged = ours.merge(theirs, on=["source", "row"], suffixes=("_local", "_ray"), validate="one_to_one")
    assert len(merged) == len(ours)
    assert (merged["error_local"].fillna("") == merged["error_ray"].fillna("")).all()
    assert (merged["label_local"].fillna("") == merged["label_ray"].fillna("")).all()
    for column in ("prob_negative", "prob_positive"):
        np.testing.assert_allclose(merged[f"{column}_local"], merged[f"{column}_ray"], atol=1e-6, equal_nan=True)
    assert set(merged["error_local"].dropna()) >= {
        "empty_text",
        "not_text",
        "invalid_utf8",
        "invalid_json",
        "missing_text",
    }
    # --preserve-order: the rows come back in input order.
    assert list(zip(theirs["source"], theirs["row"])) == list(zip(ours["source"], ours["row"]))


@pytest.mark.slow
@pytest.mark.skipif(not native_bfloat16(), reason="this CPU has no native bfloat16 (AVX512-BF16, AMX)")
def test_ray_scores_in_bfloat16_as_the_local_engine_does(local_ray, tiny_trained, tmp_path):
    trained, files = tiny_trained.run_dir, inputs(tmp_path)
    local = tmp_path / "local.parquet"
    score_files(load_model(trained, precision="bfloat16"), files, local)
    score_with_ray(str(trained), files, tmp_path / "ray-out", preserve_order=True, precision="bfloat16")
    ours = pd.read_parquet(local)
    theirs = pd.concat([pd.read_parquet(path) for path in sorted((tmp_path / "ray-out").glob("*.parquet"))])
    # bfloat16 rounds: other batch shapes may move a probability a little, so compare within 0.001
    # and the labels of the rows that are not within that of the decision cut.
    np.testing.assert_allclose(theirs["prob_positive"], ours["prob_positive"], atol=1e-3, equal_nan=True)
    cut = load_model(trained).decision_threshold or 0.5
    clear = ~(ours["prob_positive"].sub(cut).abs() < 1e-3).to_numpy()
    assert list(theirs["label"].fillna("")[clear]) == list(ours["label"].fillna("")[clear])


@pytest.mark.slow
def test_ray_writes_the_sentence_readings_the_local_engine_writes(local_ray, tiny_trained, tmp_path):
    trained = tiny_trained.run_dir
    reviews = tmp_path / "r.txt"
    reviews.write_text("Love the color. But it runs small!\n\nSoft and warm.\n" * 5, encoding="utf-8")
    local = tmp_path / "local.parquet"
    score_files(trained, [str(reviews)], local, sentences=True)
    ours = pd.read_parquet(local)
    for output_format in ("parquet", "jsonl", "csv"):
        output = tmp_path / f"ray-{output_format}"
        score_with_ray(
            str(trained), [str(reviews)], output, output_format=output_format, sentences=True, preserve_order=True
        )
        if output_format == "parquet":
            theirs = pd.concat([pd.read_parquet(path) for path in sorted(output.glob("*.parquet"))])
            readings = [None if cell is None else [dict(s) for s in cell] for cell in theirs["sentences"]]
        elif output_format == "jsonl":
            lines = [
                json.loads(line) for path in sorted(output.glob("*.json")) for line in path.read_text().splitlines()
            ]
            readings = [line["sentences"] for line in lines]
        else:
            theirs = pd.concat([pd.read_csv(path, keep_default_na=False) for path in sorted(output.glob("*.csv"))])
            readings = [json.loads(cell) if cell else None for cell in theirs["sentences"]]
        expected = [None if cell is None else [dict(s) for s in cell] for cell in ours["sentences"]]
        assert len(readings) == len(expected) == 15, output_format
        for got, want in zip(readings, expected):
            assert (got is None) == (want is None), output_format
            if want is not None:
                assert [s["text"] for s in got] == [s["text"] for s in want] and len(want) in (1, 2)
                assert [s["label"] for s in got] == [s["label"] for s in want]
                np.testing.assert_allclose(
                    [s["prob_positive"] for s in got], [s["prob_positive"] for s in want], atol=1e-6
                )


def test_the_batch_scorer_takes_arrow_pandas_and_plain_columns(tiny_trained):
    trained = tiny_trained.run_dir
    import pyarrow as pa

    scorer = BatchScorer(str(trained))
    frame = pd.DataFrame({"text": ["love it", "", None], "id": [7, 8, 9]})
    out = scorer(frame)
    assert list(out.columns) == ["source", "row", "label", "prob_negative", "prob_positive", "error", "id"]
    assert out["error"].tolist()[1:] == ["empty_text", "missing_text"] and out["row"].tolist() == [1, 2, 3]
    table = scorer(pa.Table.from_pandas(frame))
    assert table.column("prob_positive").to_pylist()[0] == pytest.approx(out["prob_positive"][0])
    assert scorer({"text": ["love it"]})["label"] == [out["label"][0]]

    # Sentence readings: nested (typed even when no row of the batch is scored), or JSON text for CSV.
    nested = BatchScorer(str(trained), sentences=True)
    table = nested(pa.table({"text": ["love it. but small", ""]}))
    assert table.column_names[-1] == "sentences"
    first, empty = table.column("sentences").to_pylist()
    assert [s["text"] for s in first] == ["love it.", "but small"] and empty is None
    assert nested(pa.table({"text": [""]})).schema.field("sentences").type == table.schema.field("sentences").type
    as_json = BatchScorer(str(trained), sentences=True, nested=False)({"text": ["love it. but small"]})
    assert json.loads(as_json["sentences"][0]) == first
