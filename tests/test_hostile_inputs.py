"""`score` on hostile input files: one output row per input record, in order, every unscorable
row flagged; or the whole file refused with one line and no output. Regression tests for the
defects of issue 15 first, then one property test per input format."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import tempfile
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiment import load_model
from sentiment.cli import cli
from sentiment.errors import SentimentError
from sentiment.scoring import ERRORS, score_files

UNSCORED = {error for error in ERRORS if error != "truncated"}
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def model(tiny_trained):
    return load_model(tiny_trained.run_dir)


def score(*args):
    return CliRunner().invoke(cli, ["score", *map(str, args)])


def read_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and re.search(pattern, lines[0]), result.output


# ---- the defects, one test each --------------------------------------------------------------

def test_a_stray_quote_in_csv_or_tsv_refuses_the_file_naming_its_line(tiny_trained, tmp_path):
    # Before: 4 rows in, 2 out, exit 0; rows 3-4 swallowed into row 2's text.
    for name, sep in (("r.csv", ","), ("r.tsv", "\t")):
        data = f'id{sep}text\n1{sep}love it\n2{sep}"stray quote\n3{sep}great fit\n4{sep}awful\n'
        (tmp_path / name).write_text(data)
        one_line_error(score("-m", tiny_trained.run_dir, tmp_path / name, "--keep-columns", "id", "-o",
                             tmp_path / "out.csv"), rf"{name}, line 3: not valid (CSV|TSV).*quote")
        assert not (tmp_path / "out.csv").exists()
    (tmp_path / "after.csv").write_text('id,text\n1,"closed" then text\n2,fine\n')
    one_line_error(score("-m", tiny_trained.run_dir, tmp_path / "after.csv", "-o", tmp_path / "out.csv"),
                   r"after.csv, line 2: not valid CSV")


def test_doubled_quotes_and_quoted_line_breaks_are_one_record_each(model, tmp_path):
    (tmp_path / "r.csv").write_bytes(b'id,text\n1,"she said ""love it"""\n2,"two\r\nlines"\n3,a "bare" quote\n')
    score_files(model, [tmp_path / "r.csv"], tmp_path / "out.csv", keep_text=True)
    rows = read_rows(tmp_path / "out.csv")
    assert [r["text"] for r in rows] == ['she said "love it"', "two\r\nlines", 'a "bare" quote']


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_decoded(model, tmp_path, encoding):
    # Before: a UTF-16 .txt gave 3 rows for 2 reviews, NUL-interleaved; a CSV's header was unreadable.
    bom = {"utf-16-be": codecs.BOM_UTF16_BE, "utf-32-be": codecs.BOM_UTF32_BE}.get(encoding, b"")
    inputs = {"txt": "love it\r\nawful\n", "csv": "id,text\n1,love it\n2,awful\n",
              "jsonl": '{"text": "love it"}\n{"text": "awful"}\n'}
    for kind, content in inputs.items():
        path = tmp_path / f"in.{kind}"
        path.write_bytes(bom + content.encode(encoding))
        score_files(model, [path], tmp_path / f"{kind}.csv", keep_text=True)
        rows = read_rows(tmp_path / f"{kind}.csv")
        assert [(r["text"], r["error"]) for r in rows] == [("love it", ""), ("awful", "")], kind
    expected = model.predict(["love it", "awful"]).probabilities[:, 1]
    assert [float(r["prob_positive"]) for r in rows] == pytest.approx(expected.tolist(), abs=1e-6)


def test_bytes_invalid_in_utf16_are_flagged(model, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + "love it\n".encode("utf-16-le") + b"\x00\xd8" + "x\n".encode("utf-16-le"))
    score_files(model, [path], tmp_path / "out.csv", keep_text=True)
    assert [(r["text"], r["error"]) for r in read_rows(tmp_path / "out.csv")] == [("love it", ""),
                                                                                 ("\ufffdx", "invalid_utf8")]


