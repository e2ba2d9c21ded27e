"""`score` on hostile input files: one output row per input record, in order, every unscorable
row flagged; or the whole file refused with one line and no output. Regression tests for the
defects of issue 15 first, then one property test per input format."""

from __future__ import annotations

import codecs
import csv
import io
import json
import tempfile
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sentiment import load_model
from sentiment.cli import cli
from sentiment.data.text import ERRORS
from sentiment.errors import SentimentError
from sentiment.serving.scoring import score_files

from conftest import one_line_error

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


# ---- the defects, one test each --------------------------------------------------------------


def test_a_stray_quote_in_csv_or_tsv_refuses_the_file_naming_its_line(tiny_trained, tmp_path):
    # Before: 4 rows in, 2 out, exit 0; rows 3-4 swallowed into row 2's text.
    for name, sep in (("r.csv", ","), ("r.tsv", "\t")):
        data = f'id{sep}text\n1{sep}love it\n2{sep}"stray quote\n3{sep}great fit\n4{sep}awful\n'
        (tmp_path / name).write_text(data)
        one_line_error(
            score("-m", tiny_trained.run_dir, tmp_path / name, "--keep-columns", "id", "-o", tmp_path / "out.csv"),
            rf"{name}, line 3: not valid (CSV|TSV).*quote",
        )
        assert not (tmp_path / "out.csv").exists()
    (tmp_path / "after.csv").write_text('id,text\n1,"closed" then text\n2,fine\n')
    one_line_error(
        score("-m", tiny_trained.run_dir, tmp_path / "after.csv", "-o", tmp_path / "out.csv"),
        r"after.csv, line 2: not valid CSV",
    )


def test_doubled_quotes_and_quoted_line_breaks_are_one_record_each(model, tmp_path):
    (tmp_path / "r.csv").write_bytes(b'id,text\n1,"she said ""love it"""\n2,"two\r\nlines"\n3,a "bare" quote\n')
    score_files(model, [tmp_path / "r.csv"], tmp_path / "out.csv", keep_text=True)
    rows = read_rows(tmp_path / "out.csv")
    assert [r["text"] for r in rows] == ['she said "love it"', "two\r\nlines", 'a "bare" quote']


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-32-be"])
def test_utf16_and_utf32_files_with_a_byte_order_mark_are_decoded(model, tmp_path, encoding):
    # Before: a UTF-16 .txt gave 3 rows for 2 reviews, NUL-interleaved; a CSV's header was unreadable.
    bom = {"utf-16-be": codecs.BOM_UTF16_BE, "utf-32-be": codecs.BOM_UTF32_BE}.get(encoding, b"")
    inputs = {
        "txt": "love it\r\nawful\n",
        "csv": "id,text\n1,love it\n2,awful\n",
        "jsonl": '{"text": "love it"}\n{"text": "awful"}\n',
    }
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
    assert [(r["text"], r["error"]) for r in read_rows(tmp_path / "out.csv")] == [
        ("love it", ""),
        ("\ufffdx", "invalid_utf8"),
    ]


def test_the_output_may_not_be_one_of_the_inputs(tiny_trained, tmp_path):
    # Before: the scores replaced the reviews.
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("text\nlove it\n")
    (tmp_path / "link.csv").symlink_to(reviews)
    for output in (reviews, tmp_path / "link.csv", tmp_path / "sub" / ".." / "reviews.csv"):
        one_line_error(score("-m", tiny_trained.run_dir, reviews, "-o", output), "is the input")
    assert reviews.read_text() == "text\nlove it\n"


def test_non_string_and_missing_text_values_are_flagged_not_scored(model, tmp_path):
    # Before: 42 -> "42" positive, true -> "True", lists and dicts as repr; a missing field was empty_text.
    lines = [
        '{"text": 42}',
        '{"text": true}',
        '{"text": [1, 2]}',
        '{"text": {"a": 1}}',
        '{"text": null}',
        '{"other": "x"}',
        '{"text": "love it"}',
        '{"text": 1.5e3}',
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    score_files(model, [tmp_path / "in.jsonl"], tmp_path / "out.csv")
    assert [r["error"] for r in read_rows(tmp_path / "out.csv")] == [
        "not_text",
        "not_text",
        "not_text",
        "not_text",
        "missing_text",
        "missing_text",
        "",
        "not_text",
    ]
    table = pa.table({"text": pa.array([1, None, 3], pa.int64())})
    pq.write_table(table, tmp_path / "ints.parquet")
    pq.write_table(pa.table({"text": pa.array([["a"], None], pa.list_(pa.string()))}), tmp_path / "lists.parquet")
    score_files(model, [tmp_path / "ints.parquet", tmp_path / "lists.parquet"], tmp_path / "pq.csv")
    assert [r["error"] for r in read_rows(tmp_path / "pq.csv")] == [
        "not_text",
        "missing_text",
        "not_text",
        "not_text",
        "missing_text",
    ]


def test_control_characters_are_no_text(model, tmp_path):
    # Before: a line of NUL bytes was scored (negative 0.568) without a flag.
    (tmp_path / "in.txt").write_bytes(b"\x00\x00\n\x01\x7f\x1b\n\xe2\x80\x8b\xef\xbb\xbf\nlove it\x00\n")
    score_files(model, [tmp_path / "in.txt"], tmp_path / "out.csv")
    assert [r["error"] for r in read_rows(tmp_path / "out.csv")] == ["empty_text", "empty_text", "empty_text", ""]


# ---- properties: every format ----------------------------------------------------------------

ALPHABET = st.sampled_from(
    [
        "love",
        "it",
        " ",
        "awful",
        "é",
        "\u2028",
        '"',
        '""',
        ",",
        "\t",
        "\n",
        "\r",
        "\r\n",
        "\x00",
        "\x01",
        "\x1b",
        "\x7f",
        "\u200b",
        "\ufeff",
        "😀",
        "{",
        "}",
        "\\",
        "soft",
        # what str.splitlines would take for line ends, which no reader here may split on
        "\x0b",
        "\x0c",
        "\x1c\x1d",
        "\x85",
        "\u3000",
        " soft" * 40,  # longer than tokenize.max_len: scored on its first tokens, flagged `truncated`
    ]
)
FIELD = st.lists(ALPHABET, max_size=8).map("".join)
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
BOMS = {
    "utf-8-sig": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}
INVALID_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]


def no_text(text: str) -> bool:
    """What `empty_text` means: nothing but whitespace, control characters and zero-width marks."""
    return all(c.isspace() or unicodedata.category(c) == "Cc" or c in "\u200b\u200c\u200d\u2060\ufeff" for c in text)


def encode(text: str, encoding: str, draw) -> bytes:
    """`text` in `encoding` behind its byte-order mark, with some invalid byte sequences spliced in."""
    if encoding.startswith("utf-8"):
        data = text.encode("utf-8")
        bad = INVALID_UTF8
    else:
        data = text.encode(encoding.replace("-sig", ""))
        bad = ["\ud800".encode(encoding, "surrogatepass"), b"\x00"]  # a lone surrogate; a misaligned byte
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(bad)) + data[at:]
    return BOMS.get(encoding, b"") + data


def decode(data: bytes, encoding: str) -> tuple[str, bool]:
    """The oracle's reading of a whole file: its text with U+FFFD for invalid input (the generators never
    write U+FFFD themselves), and whether the encoding needed a replacement."""
    codec = {"utf-8": "utf-8", "utf-8-sig": "utf-8"}.get(encoding, encoding)
    text = data.removeprefix(BOMS.get(encoding, b"")).decode(codec, "replace")
    if encoding == "utf-8":  # no mark was written, but one the text begins with is read as the mark
        text = text.removeprefix("\ufeff")
    return text, "\ufffd" in text


def expected_error(text: str | None, invalid: bool, value_error: str | None = None) -> set[str]:
    """The `error` values a record may get; the empty string means scored (possibly truncated)."""
    if value_error:
        return {value_error}
    if invalid:
        return {"invalid_utf8"}
    if no_text(text):
        return {"empty_text"}
    return {"", "truncated", "no_tokens"}


def run_score(model, path: Path, **options) -> list[dict] | SentimentError:
    """score_files into a CSV beside the input: the rows, or the one-line error and no output left."""
    output = path.with_name("out.csv")
    try:
        score_files(model, [path], output, keep_text=True, workers=1, chunk_size=7, **options)
    except SentimentError as error:
        assert "\n" not in str(error)
        assert not output.exists() and not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
        return error
    return read_rows(output)


def check_rows(rows, expected: list[tuple[str | None, set[str]]]) -> None:
    """One row per expected record, in order, each flagged as expected, labelled exactly when scored."""
    assert not isinstance(rows, SentimentError), rows
    assert len(rows) == len(expected)
    assert [int(r["row"]) for r in rows] == list(range(1, len(rows) + 1))
    for row, (text, errors) in zip(rows, expected):
        assert row["error"] in errors, (row, text, errors)
        assert (row["label"] == "") == (row["error"] in UNSCORED), row
        if text is not None:
            assert row["text"] == text


@st.composite
def txt_files(draw):
    encoding = draw(ENCODINGS)
    lines = draw(st.lists(FIELD.map(lambda s: s.replace("\n", " ")), max_size=12))
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n"]))
    data = encode(text, encoding, draw)
    # UTF-16-LE's mark followed by two zero bytes (U+0000, or a spliced stray byte) is UTF-32-LE's
    # mark, FF FE 00 00, which the reader takes first, as BOM sniffing does: such a file cannot
    # say it is UTF-16.
    assume(encoding != "utf-16-le" or not data.startswith(codecs.BOM_UTF32_LE))
    return encoding, data


@PROPERTY
@given(case=txt_files())
def test_txt_one_row_per_line(model, case):
    encoding, data = case
    text, _ = decode(data, encoding)
    lines = text.split("\n")
    if text.endswith("\n") or not text:
        lines = lines[:-1]
    ends = [True] * (len(lines) - 1) + [text.endswith("\n")] if lines else []
    expected = []
    for line, has_newline in zip(lines, ends):
        line = line.removesuffix("\r") if has_newline else line
        expected.append((line, expected_error(line, "\ufffd" in line)))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "in.txt"
        path.write_bytes(data)
        check_rows(run_score(model, path), expected)


def parse_delimited(text: str, delimiter: str) -> list[list[str]] | int:
    """An independent reading of RFC 4180 (with \\n, \\r\\n or \\r ending a record, as spreadsheets
    write them): the records, or the 1-based line where a record with broken quoting starts."""
    records, fields, field, i, line, start = [], [], "", 0, 1, 1
    quoted_field = False
    n = len(text)

    def end_record():
        nonlocal fields, field, quoted_field
        fields.append(field)
        if fields != [""] or quoted_field:  # a blank line is not a record
            records.append(fields)
        fields, field, quoted_field = [], "", False

    while i < n:
        c = text[i]
        if c == '"' and field == "" and not quoted_field:  # a quoted field
            quoted_field = True
            i += 1
            while True:
                if i >= n:
                    return start
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        field += '"'
                        i += 2
                        continue
                    i += 1
                    break
                if text[i] == "\n" or (text[i] == "\r" and text[i + 1 : i + 2] != "\n"):
                    line += 1
                field += text[i]
                i += 1
            if i < n and text[i] not in (delimiter, "\n", "\r"):
                return start
            continue
        if c == delimiter:
            fields.append(field)
            field, quoted_field = "", False
            i += 1
        elif c in "\r\n":
            i += 2 if text[i : i + 2] == "\r\n" else 1
            end_record()
            line += 1
            start = line
        else:
            field += c
            i += 1
    if field or fields or quoted_field:
        end_record()
    return records


@st.composite
def delimited_files(draw, delimiter: str):
    encoding = draw(ENCODINGS)
    rows = []
    for number in range(draw(st.integers(0, 10))):
        fields = [str(number), draw(FIELD), *draw(st.lists(FIELD, max_size=1))][: draw(st.integers(1, 3))]
        style = draw(st.sampled_from(["minimal", "minimal", "all", "raw", "stray"]))
        if style == "raw":  # no quoting at all: separators and quotes inside fields stay as they are
            record = delimiter.join(fields)
        else:
            buffer = io.StringIO()
            quoting = csv.QUOTE_ALL if style == "all" else csv.QUOTE_MINIMAL
            csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator="").writerow(fields)
            record = buffer.getvalue()
            if style == "stray":
                at = draw(st.integers(0, len(record)))
                record = record[:at] + '"' + record[at:]
        rows.append(record + draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"])))
    text = f"id{delimiter}text\n" + "".join(rows)
    if rows and draw(st.booleans()):
        text = text.rstrip("\r\n")
    return encoding, encode(text, encoding, draw)


def check_delimited(model, case, delimiter: str, suffix: str) -> None:
    encoding, data = case
    text, _ = decode(data, encoding)
    parsed = parse_delimited(text, delimiter)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"in.{suffix}"
        path.write_bytes(data)
        result = run_score(model, path)
        header = text.removeprefix("\ufeff").split("\n")[0].split(delimiter)  # one line, never quoted
        if "text" not in header:  # checked before any record is read
            assert isinstance(result, SentimentError) and "no text column 'text'" in str(result), result
            return
        if isinstance(parsed, int):
            assert isinstance(result, SentimentError) and f"line {parsed}:" in str(result), (parsed, result)
            return
        position = parsed[0].index("text")
        expected = []
        for fields in parsed[1:]:
            if position >= len(fields):
                expected.append(("", {"missing_text"}))
            else:
                expected.append((fields[position], expected_error(fields[position], "\ufffd" in fields[position])))
        check_rows(result, expected)


@PROPERTY
@given(case=delimited_files(","))
def test_csv_one_row_per_record_or_refused_naming_the_line(model, case):
    check_delimited(model, case, ",", "csv")


@PROPERTY
@given(case=delimited_files("\t"))
def test_tsv_one_row_per_record_or_refused_naming_the_line(model, case):
    check_delimited(model, case, "\t", "tsv")


JSON_VALUES = st.one_of(
    FIELD,
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(FIELD, max_size=2),
    st.dictionaries(FIELD, FIELD, max_size=1),
)


@st.composite
def jsonl_files(draw):
    encoding = draw(ENCODINGS)
    lines = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["object", "object", "no_text", "not_object", "garbage", "blank"]))
        if kind == "object":
            line = json.dumps({"text": draw(JSON_VALUES), "id": 1}, ensure_ascii=draw(st.booleans()))
        elif kind == "no_text":
            line = json.dumps({"review": draw(FIELD)})
        elif kind == "not_object":
            line = json.dumps(draw(JSON_VALUES))
        elif kind == "garbage":
            line = draw(FIELD).replace("\n", "").replace("\r", "")
        else:
            line = draw(st.sampled_from(["", " ", "\t", "\r"]))
        lines.append(line)
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n"]))
    data = encode(text, encoding, draw)
    # UTF-16-LE's mark followed by two zero bytes (U+0000, or a spliced stray byte) is UTF-32-LE's
    # mark, FF FE 00 00, which the reader takes first, as BOM sniffing does: such a file cannot
    # say it is UTF-16.
    assume(encoding != "utf-16-le" or not data.startswith(codecs.BOM_UTF32_LE))
    return encoding, data


@PROPERTY
@given(case=jsonl_files())
def test_jsonl_one_row_per_non_blank_line(model, case):
    encoding, data = case
    text, _ = decode(data, encoding)
    expected, first_object = [], None
    for line in text.split("\n"):
        if not line.strip(" \t\r\x0b\x0c"):
            continue  # a blank line is not a record
        invalid = "\ufffd" in line
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            expected.append((None, {"invalid_json"}))
            continue
        first_object = value if first_object is None else first_object
        field = value.get("text")  # bad bytes anywhere on the line flag it first
        value_error = (
            "invalid_utf8"
            if invalid
            else "missing_text"
            if field is None
            else "not_text"
            if not isinstance(field, str)
            else None
        )
        expected.append((None, expected_error(field, invalid, value_error)))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "in.jsonl"
        path.write_bytes(data)
        result = run_score(model, path)
        if first_object is not None and "text" not in first_object:
            assert isinstance(result, SentimentError) and "no text column" in str(result)
            return
        assert not isinstance(result, SentimentError), result
        assert len(result) == len(expected)
        numbers = [int(r["row"]) for r in result]
        assert numbers == sorted(set(numbers))  # line numbers, in order (blank lines are skipped)
        for row, (_, errors) in zip(result, expected):
            assert row["error"] in errors, (row, errors)
            assert (row["label"] == "") == (row["error"] in UNSCORED)


PARQUET_TEXT = {
    "string": (pa.string(), st.one_of(FIELD, st.none())),
    "large_string": (pa.large_string(), st.one_of(FIELD, st.none())),
    "binary": (pa.binary(), st.one_of(FIELD.map(str.encode), st.sampled_from(INVALID_UTF8), st.none())),
    "int64": (pa.int64(), st.one_of(st.integers(-(2**63), 2**63 - 1), st.none())),
    "list": (pa.list_(pa.string()), st.one_of(st.lists(FIELD, max_size=2), st.none())),
}


@st.composite
def parquet_tables(draw):
    kind = draw(st.sampled_from(sorted(PARQUET_TEXT)))
    arrow_type, values = PARQUET_TEXT[kind]
    return pa.table({"text": pa.array(draw(st.lists(values, max_size=15)), arrow_type)})


@PROPERTY
@given(table=parquet_tables())
def test_parquet_one_row_per_row(model, table):
    expected = []
    for value in table.column("text").to_pylist():
        if value is None:
            expected.append(("", {"missing_text"}))
        elif isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
            expected.append((text, expected_error(text, "\ufffd" in text)))
        elif isinstance(value, str):
            expected.append((value, expected_error(value, False)))
        else:
            expected.append(("", {"not_text"}))
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "in.parquet"
        pq.write_table(table, path)
        check_rows(run_score(model, path), expected)
