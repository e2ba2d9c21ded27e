"""Out-of-domain sentence sets: the ground-truth format, the binary cut, the real sdist."""

import pytest
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.errors import SentimentError
from sentiment.evaluation.out_of_domain import binary_label, load_sentence_set, read_ground_truth

GOOD = "1_1\t2.1\tthe battery lasts all day.\n1_2\t-0.3\tit comes in a box.\n1_3\t-1.5\tnot worth the price.\n"


def write(tmp_path, content: str, name: str = "set.txt"):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_ground_truth_lines_are_read_with_their_ids_means_and_texts(tmp_path):
    # The sdist's files have Windows line ends and no newline after the last line.
    sentences = read_ground_truth(write(tmp_path, GOOD.replace("\n", "\r\n").rstrip()))
    assert [(s.id, s.mean, s.text) for s in sentences] == [
        ("1_1", 2.1, "the battery lasts all day."),
        ("1_2", -0.3, "it comes in a box."),
        ("1_3", -1.5, "not worth the price."),
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("1_9\t0.7", "expected 3 tab-separated fields (id, mean rating, text), found 2"),
        ("1_9\t0.7\tgood\textra", "found 4"),
        ("1_9\thigh\tgood", "the mean rating 'high' is not a number"),
        ("1_9\tnan\tgood", "outside -4..4"),
        ("1_9\t4.5\tgood", "outside -4..4"),
        ("1_9\t0.7\t  ", "the text is empty"),
        ("\t0.7\tgood", "the id is empty"),
        ("1_1\t0.7\tgood", "id '1_1' appears twice"),
    ],
)
def test_a_malformed_line_is_named_with_its_number(tmp_path, line, problem):
    path = write(tmp_path, GOOD + line + "\n")
    with pytest.raises(SentimentError) as caught:
        read_ground_truth(path)
    assert str(caught.value).startswith(f"{path}, line 4: ") and problem in str(caught.value)


def test_invalid_utf8_and_empty_files_are_refused(tmp_path):
    with pytest.raises(SentimentError, match="invalid UTF-8 on line 2"):
        read_ground_truth(write(tmp_path, b"1\t1.0\tok\n2\t1.0\tcaf\xe9\n"))
    with pytest.raises(SentimentError, match="no rated sentences"):
        read_ground_truth(write(tmp_path, "\n\n", "empty.txt"))


@pytest.mark.parametrize(
    ("mean", "label"), [(0.5, 1), (0.49, None), (0.0, None), (-0.49, None), (-0.5, 0), (4.0, 1), (-4.0, 0)]
)
def test_the_cut_keeps_clear_ratings_and_drops_the_middle(mean, label):
    assert binary_label(mean, cut=0.5) == label


def test_a_set_from_a_file_counts_what_the_cut_dropped(tmp_path):
    loaded = load_sentence_set(str(write(tmp_path, GOOD)), tmp_path)
    assert loaded.texts == ["the battery lasts all day.", "not worth the price."]
    assert loaded.labels == [1, 0] and loaded.read == 3 and loaded.dropped_middle == 1
    assert loaded.origin["path"].endswith("set.txt") and len(loaded.origin["sha256"]) == 64


def test_a_set_of_one_class_or_an_unknown_name_is_refused(tmp_path):
    with pytest.raises(SentimentError, match="needs sentences of both classes"):
        load_sentence_set(str(write(tmp_path, "a\t2\tgreat\nb\t0.1\tok\n")), tmp_path)
    with pytest.raises(SentimentError, match="neither a named set .*amazon-snippets"):
        load_sentence_set("amazon-snipets", tmp_path)


def test_evaluate_with_a_malformed_set_is_one_line_and_exit_code_2(evaluated_run, tmp_path):
    config_path, overrides = evaluated_run
    bad = write(tmp_path, GOOD + "1_4\tvery\tbad line\n", "bad.txt")
    result = CliRunner().invoke(
        cli, ["evaluate", "--config", config_path, *overrides, "--set", f'evaluate.out_of_domain=["{bad}"]']
    )
    assert result.exit_code == 2
    assert result.output == f"error: {bad}, line 4: the mean rating 'very' is not a number\n"


@pytest.mark.network
def test_fetch_and_read_the_real_sentence_sets(tmp_path):
    amazon = load_sentence_set("amazon-snippets", tmp_path)
    assert (amazon.read, len(amazon.texts), amazon.dropped_middle) == (3708, 2985, 723)
    assert round(amazon.positive_share, 2) == 0.59
    assert (tmp_path / "raw" / "vader-amazonReviewSnippets-ground-truth.txt").is_file()
    movies = load_sentence_set("movie-snippets", tmp_path)
    assert (movies.read, len(movies.texts)) == (10605, 10072)
