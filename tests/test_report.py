"""The evaluation report: plots, Markdown, one self-contained HTML file, and how it renders in Chromium."""

from __future__ import annotations

import base64
import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sentiment.reporting.document import (
    Cell,
    Section,
    Table,
    Word,
    Words,
    html_document,
    markdown_document,
    markdown_table,
    text_table,
)
from sentiment.reporting.report import (
    PLOT_FILES,
    render_html,
    render_markdown,
    summary_table,
    verdict,
    write_plots,
    write_report,
)

from browser import check_screenshot, needs_chromium, render_in_chromium
from report_fixture import example_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT = "<script>alert('x')</script> & <b>bold</b>"


class _Page(HTMLParser):
    """Visible text (tags dropped, entities decoded) and every tag with its attributes."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())


def _with_hostile_text(metrics: dict) -> dict:
    """Put markup into a contrast case that fails for the baseline, and into the model's worst error."""
    metrics = copy.deepcopy(metrics)
    failing = next(c["id"] for c in metrics["contrast"]["baseline"]["cases"] if not c["passed"])
    for system in ("model", "baseline"):
        for case in metrics["contrast"][system]["cases"]:
            if case["id"] == failing:
                case["text"] = f"Not good {SCRIPT} at all."
    metrics["errors"]["model"][0]["text"] += f" {SCRIPT}"
    return metrics


@pytest.fixture(scope="module")
def metrics() -> dict:
    return _with_hostile_text(example_metrics())


@pytest.fixture(scope="module")
def report(metrics, tmp_path_factory) -> dict[str, Path]:
    return write_report(metrics, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def markdown(report) -> str:
    return report["markdown"].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(report) -> _Page:
    return _Page(report["html"].read_text(encoding="utf-8"))


def _failing_ids(result: dict, key: str) -> set[str]:
    return {item["id"] for item in result[key] if not item["passed"]}


def test_write_report_writes_every_plot_and_both_documents(report):
    directory = report["html"].parent
    assert set(report) == {"markdown", "html", *PLOT_FILES}
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in directory.iterdir()) == sorted(["report.md", "report.html", *PLOT_FILES.values()])
    for key in PLOT_FILES:
        assert report[key].read_bytes().startswith(PNG_SIGNATURE)
        assert report[key].stat().st_size > 10_000


def test_headline_numbers_come_first_in_both_documents(metrics, markdown, page):
    model, baseline, paired = metrics["model"], metrics["baseline"], metrics["comparison"]["macro_f1"]
    expected = [
        f"{model['accuracy']:.3f}",
        f"{baseline['accuracy']:.3f}",
        f"{model['macro_f1']:.3f}",
        f"{baseline['macro_f1']:.3f}",
        f"{model['macro_f1_ci'][0]:.3f} to {model['macro_f1_ci'][1]:.3f}",
        f"{paired['difference']:+.3f}, significant",
        f"CI {paired['ci_low']:+.3f} to {paired['ci_high']:+.3f}",
        f"{model['roc_auc']:.3f}",
        f"{baseline['pr_auc']:.3f}",
        f"{model['ece']:.3f}",
        f"{baseline['ece']:.3f}",
        f"{metrics['contrast']['model']['pass_rate']:.1%}",
        f"{metrics['contrast']['baseline']['pass_rate']:.1%}",
    ]
    for document in (markdown, page.text):
        headline = document[: document.index("Confusion matrices")]
        for number in expected:
            assert number in headline, number
        assert "The model beats the baseline on macro-F1" in headline
        titles = (
            "Model vs baseline",
            "Confusion matrices",
            "Calibration",
            "Contrast suite",
            "In depth",
            "Per-class scores",
            "Failing contrast cases",
            "Most confident wrong predictions",
            "How this was made",
        )
        order = [document.index(title) for title in titles]
        assert order == sorted(order)
    assert "nan" not in page.text.lower().split()


def test_capability_table_lists_every_capability_weakest_first(metrics, markdown, page):
    model, baseline = (metrics["contrast"][s]["by_capability"] for s in ("model", "baseline"))
    rows = [
        (name.replace("_", " "), model[name]["total"], model[name]["pass_rate"], baseline[name]["pass_rate"])
        for name in model
    ]
    rows.sort(key=lambda row: row[2])
    positions = []
    for name, total, model_rate, baseline_rate in rows:
        assert f"| {name} | {total} | {model_rate:.1%} | {baseline_rate:.1%} |" in markdown
        positions.append(page.text.index(f"{name} {total} {model_rate:.1%} {baseline_rate:.1%}"))
    assert positions == sorted(positions)


def test_every_failing_case_and_check_is_listed_for_both_systems(metrics, markdown, page):
    contrast = metrics["contrast"]
    failing = _failing_ids(contrast["model"], "cases") | _failing_ids(contrast["baseline"], "cases")
    checks = _failing_ids(contrast["model"], "checks") | _failing_ids(contrast["baseline"], "checks")
    assert _failing_ids(contrast["model"], "cases") - _failing_ids(contrast["baseline"], "cases"), "fixture too easy"
    section = page.text[page.text.index("Failing contrast cases") : page.text.index("Most confident wrong")]
    for case in contrast["model"]["cases"]:
        listed = f"{case['id']} ·" in section
        assert listed == (case["id"] in failing), case["id"]
        assert (f"{case['id']} ·" in markdown) == (case["id"] in failing), case["id"]
        if listed:
            assert " ".join(case["text"].split()) in section
    for check in contrast["model"]["checks"]:
        assert (check["id"] in section) == (check["id"] in checks), check["id"]
        assert (f"**{check['id']}** (" in markdown) == (check["id"] in checks), check["id"]
    for system in ("model", "baseline"):
        for error in metrics["errors"][system]:
            assert " ".join(error["text"].split()) in page.text


def test_review_text_is_escaped(report, markdown, page):
    raw = report["html"].read_text(encoding="utf-8")
    assert "<script" not in raw.lower() and "<b>bold" not in raw
    assert "&lt;script&gt;" in raw
    assert SCRIPT in page.text  # shown to the reader as text, once per place it occurs
    assert "<script" not in markdown.lower() and "<b>" not in markdown
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in markdown


def test_html_is_self_contained(report, page):
    raw = report["html"].read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", raw, re.IGNORECASE)
    assert not re.search(r"@import|url\(|<link\b|<iframe\b", raw, re.IGNORECASE)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert len(images) == len(PLOT_FILES)
    for attrs in images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        assert base64.b64decode(attrs["src"][len(prefix) :], validate=True).startswith(PNG_SIGNATURE)
        assert attrs["alt"] and int(attrs["width"]) > 0 and int(attrs["height"]) > 0
    assert any(tag == "meta" and attrs.get("name") == "viewport" for tag, attrs in page.tags)


def test_star_ratings_skip_the_contrast_suite_gracefully(tmp_path):
    metrics = example_metrics("stars")
    paths = write_report(metrics, tmp_path)
    assert "contrast_by_capability" not in paths and not (tmp_path / "contrast_by_capability.png").exists()
    page = _Page(paths["html"].read_text(encoding="utf-8"))
    assert "Contrast suite Not run" in page.text
    assert "ROC-AUC" not in page.text.split("Confusion matrices")[0]  # undefined for five classes
    assert sum(tag == "img" for tag, _ in page.tags) == 4  # confusion, reliability, risk-coverage, length
    table = summary_table(metrics)
    assert "ROC-AUC" in table and "n/a" in table


def test_summary_table_is_a_plain_side_by_side_table(metrics):
    table = summary_table(metrics)
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "model", "baseline", "VADER"]
    model, baseline, paired = metrics["model"], metrics["baseline"], metrics["comparison"]["macro_f1"]
    vader = metrics["vader"]
    assert f"{model['accuracy']:.3f} [{model['accuracy_ci'][0]:.3f}, {model['accuracy_ci'][1]:.3f}]" in table
    assert f"{baseline['macro_f1']:.3f} [{baseline['macro_f1_ci'][0]:.3f}," in table
    for line, key in (("ROC-AUC", "roc_auc"), ("ECE", "ece")):
        row = next(row for row in lines if row.startswith(line))
        assert row.split()[-3:] == [f"{model[key]:.3f}", f"{baseline[key]:.3f}", f"{vader[key]:.3f}"]
    assert f"{metrics['contrast']['model']['pass_rate']:.1%}" in table
    assert lines[-1].startswith(f"macro-F1 model - baseline: {paired['difference']:+.3f}")
    assert lines[-1].endswith("significant, model better")
    # Before it, one line per out-of-domain set with every system's accuracy.
    for item, line in zip(metrics["out_of_domain"]["sets"], lines[-3:-1], strict=True):
        assert line.startswith(f"out of domain, {item['name']} ({item['sentences']:,} sentences)")
        assert f"VADER {item['systems']['vader']['accuracy']:.3f}" in line
    assert table.isascii()


@pytest.mark.parametrize(
    ("difference", "significant", "expected"),
    [
        (0.004, False, "The model and the baseline do not differ significantly on macro-F1 (model − baseline +0.004"),
        (-0.031, True, "The baseline beats the model on macro-F1 by 0.031"),
    ],
)
def test_verdict_follows_the_paired_comparison(metrics, difference, significant, expected):
    metrics = copy.deepcopy(metrics)
    metrics["comparison"]["macro_f1"].update(
        difference=difference, significant=significant, p_value=0.4, ci_low=difference - 0.02, ci_high=difference + 0.02
    )
    sentence = verdict(metrics)
    assert sentence.startswith(expected)
    assert "; the model passes" in sentence
    assert summary_table(metrics).endswith("not significant" if not significant else "significant, baseline better")


def test_explain_images_are_inlined_and_missing_ones_named(metrics, report, tmp_path):
    metrics = copy.deepcopy(metrics)
    plots = write_plots(metrics, tmp_path)
    (tmp_path / "explain_0.png").write_bytes(report["reliability"].read_bytes())
    metrics["explain"] = [
        {"text": "The zipper <broke>.", "image": "explain_0.png"},
        {"text": "Not great.", "image": "explain_1.png"},
    ]
    page = _Page(render_html(metrics, plots, tmp_path))
    assert sum(tag == "img" for tag, _ in page.tags) == len(plots) + 1
    assert "Explanations" in page.text and "The zipper <broke>." in page.text
    assert "Image missing: explain_1.png" in page.text
    assert "![Explanation for: The zipper &lt;broke&gt;.](explain_0.png)" in render_markdown(metrics, plots)


# --------------------------------------------------------------------------- #
# In a real browser
# --------------------------------------------------------------------------- #


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), [(412, 915), (1366, 900)], ids=["phone", "desktop"])
def test_report_renders_cleanly_in_chromium(report, tmp_path, width, height):
    found, stderr, screenshot = render_in_chromium(report["html"].read_text(encoding="utf-8"), tmp_path, width, height)
    assert found.get("images-loaded") == f"{len(PLOT_FILES)}/{len(PLOT_FILES)}"
    assert json.loads(found["errors"]) == []
    assert found["overflow"] == "0", "the page scrolls sideways; only tables may"
    # The report has no scripts, so any console line at all (errors, "Uncaught ...") is a problem.
    assert [line for line in stderr.splitlines() if "CONSOLE" in line] == []
    check_screenshot(screenshot, width, height)


@needs_chromium
@pytest.mark.browser
def test_browser_probe_catches_a_broken_page(tmp_path):
    broken = (
        "<!DOCTYPE html><html><head><title>x</title></head><body>"
        '<img src="data:image/png;base64,AAAA"><div style="width:3000px">wide</div>'
        "<script>undefinedFunction();</script></body></html>"
    )
    found, stderr, _ = render_in_chromium(broken, tmp_path, 412, 915)
    assert found["images-loaded"] == "0/1"
    errors = json.loads(found["errors"])
    assert any("undefinedFunction" in e for e in errors) and any("failed to load" in e for e in errors)
    assert int(found["overflow"]) > 0
    assert any("CONSOLE" in line and "Uncaught" in line for line in stderr.splitlines())


def test_vader_and_out_of_domain_sets_are_reported_beside_the_baseline(metrics, markdown, page):
    vader, sets = metrics["vader"], metrics["out_of_domain"]["sets"]
    for document in (markdown, page.text):
        headline = document[: document.index("Confusion matrices")]
        assert "VADER" in headline and f"{vader['macro_f1']:.3f}" in headline
        paired = metrics["comparison_vader"]["macro_f1"]
        assert f"{paired['difference']:+.3f}" in headline
        section = document[document.index("Out of domain") : document.index("In depth")]
        for item in sets:
            assert item["name"] in section
            for system in ("model", "baseline", "vader"):
                assert f"{item['systems'][system]['accuracy']:.3f}" in section
            assert f"{item['comparison']['baseline']['accuracy']['difference']:+.3f}" in section
        errors = document[document.index("Out of domain: the model's most confident errors") :]
        assert sets[0]["errors"][0]["text"] in errors
        decider = metrics["errors"]["model"][0]["deciding_sentence"]
        assert f"decided by: “{decider['text']}”" in document and "weight 0.62" in document
    order = [markdown.index(title) for title in ("Contrast suite", "Out of domain", "In depth")]
    assert order == sorted(order)


def test_a_scheme_without_out_of_domain_sets_says_why(tmp_path):
    metrics = example_metrics("stars", n=300)
    paths = write_report(metrics, tmp_path)
    markdown = paths["markdown"].read_text()
    assert "Out-of-domain sentence sets: not run: the sentence sets are rated negative to positive" in markdown
    assert "VADER" not in markdown.split("How this was made")[0]


def test_risk_coverage_shows_the_accuracy_each_confidence_leaves(metrics, markdown, page):
    curve = metrics["model"]["risk_coverage"]
    assert [row["coverage"] for row in curve][-1] == 1.0 and curve[-1]["accuracy"] == pytest.approx(
        metrics["model"]["accuracy"]
    )
    assert curve[0]["accuracy"] >= curve[-1]["accuracy"]  # the most confident half is the more accurate
    for document in (markdown, page.text):
        section = document[document.index("Risk and coverage") :]
        assert f"{curve[0]['accuracy']:.3f}" in section and f"p ≥ {curve[0]['min_confidence']:.3f}" in section


def test_calibration_says_what_ece_a_calibrated_system_would_show_here(metrics, markdown, page):
    mean, low, high = metrics["model"]["ece_if_calibrated"]
    for document in (markdown, page.text):
        section = document[document.index("Expected calibration error") :]
        assert f"an ECE of {mean:.3f} on average ({low:.3f} to {high:.3f}" in section


@pytest.mark.parametrize(
    "row, expected",
    [
        (
            "Held-out sentences",
            "uci: 589 sentences labelled one by one, never trained on (nothing of the set trained); "
            "accuracy 0.832 (amazon 0.839, imdb 0.864, yelp 0.794)",
        ),
        (
            "Validation titles",
            "1,719 titles of validation reviews, each read alone and labelled by its review; "
            "accuracy 0.935, macro-F1 0.844 (recall: negative 0.747, positive 0.959)",
        ),
    ],
)
def test_provenance_gives_the_short_text_readings(markdown, page, row, expected):
    assert f"| {row} | {expected}" in markdown
    assert expected in page.text


def test_a_table_reads_the_same_in_markdown_in_a_terminal_and_in_html(tmp_path):
    table = Table(
        ["system", "accuracy [95% CI]"],
        [[Cell("model|a"), Cell("0.950", note="0.939-0.959")], [Cell("VADER"), Cell("0.896")]],
        numeric=frozenset({1}),
        muted=frozenset({1}),
    )
    assert markdown_table(table).splitlines() == [
        "| system | accuracy \\[95% CI\\] |",
        "|---|---:|",
        "| model\\|a | 0.950 (0.939-0.959) |",
        "| VADER | 0.896 |",
    ]
    assert text_table(table).splitlines() == [
        "system     accuracy [95% CI]",
        "-------  -------------------",
        "model|a  0.950 (0.939-0.959)",
        "VADER" + " " * 18 + "0.896",  # figures to the right
    ]
    page = html_document("t", "s", [Section("one", "One", [table])], tmp_path, footer="made here")
    rows = re.findall(r"<tr[^>]*>", page.split("<tbody>", 1)[1])
    assert rows == ["<tr>", '<tr class="muted">'] and "<footer>made here</footer>" in page


def test_shaded_words_keep_their_shade_and_tip_and_stay_text(tmp_path):
    words = Words(
        [Word("<b>soft</b>", "rgba(26,127,55,0.42)", "contribution +0.210"), Word("qwe", "rgba(0,0,0,0)", marked=True)]
    )
    sections = [Section("text-1", "One", [words])]
    page = html_document("t", "s", sections, tmp_path)
    line = re.search(r'<p class="words">(.*)</p>', page).group(1)
    assert line == (
        '<span class="tok" style="background:rgba(26,127,55,0.42)" title="contribution +0.210">'
        "&lt;b&gt;soft&lt;/b&gt;</span> "
        '<span class="tok unk" style="background:rgba(0,0,0,0)">qwe</span>'
    )
    assert "&lt;b&gt;soft&lt;/b&gt; *qwe*" in markdown_document("t", "s", sections)


def test_the_model_cards_tables_keep_their_columns_and_escape_names(metrics):
    from sentiment.reporting.model_card import _evaluation
    from sentiment.schemas import EvaluationMetrics

    metrics = copy.deepcopy(metrics)
    amazon, movie = metrics["out_of_domain"]["sets"]
    del amazon["systems"]["baseline"]  # a set one system was not read on
    movie["name"] = "movie|snippets"
    lines = "\n".join(_evaluation(EvaluationMetrics.model_validate(metrics))).splitlines()
    model = metrics["model"]
    low, high = model["accuracy_ci"]
    assert any(line.startswith(f"| this model | {model['accuracy']:.3f} ({low:.3f} to {high:.3f}) |") for line in lines)
    table = [line for line in lines if line.startswith("| amazon-snippets") or line.startswith("| movie")]
    assert len(table) == 2 and all(line.count(" | ") == 3 for line in table)  # four columns each
    assert "| — |" in table[0] and table[1].startswith("| movie\\|snippets (")
