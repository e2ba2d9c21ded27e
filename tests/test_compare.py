"""`sentiment compare` on a real tiny dataset: one run per cell, reuse of finished runs, the report."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentiment.cli import cli
from sentiment.config import load_config
from sentiment.data import prepare as preparation
from sentiment.evaluation import compare as compare_module
from sentiment.evaluation import evaluate as evaluation
from sentiment.evaluation.compare import (
    compare,
    compare_dir,
    ensure_trained,
    finished_run,
    over_seeds,
    parse_seeds,
    plan,
    plan_runs,
    variants,
)
from sentiment.reporting.compare_page import reading
from sentiment.training import stage as training
from sentiment.training.checkpoints import CHECKPOINT
from sentiment.training.run import partial_dir

from browser import check_screenshot, needs_chromium, render_in_chromium
from conftest import TINY_CONFIG, experiment_sets, quiet, review_rows, tiny_model, write_csv, write_rated_sentences

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

CONFIG = TINY_CONFIG
TINY = tiny_model(2)
CELLS = ["rnn", "gru", "lstm"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The --set overrides of a tiny experiment, its config, and the result of a first compare."""
    root = tmp_path_factory.mktemp("compare")
    source = write_csv(root / "reviews.csv", review_rows())
    sentences = write_rated_sentences(root / "rated.txt")
    sets = ["name=tiny", *experiment_sets(root, source), *TINY, f'evaluate.out_of_domain=["{sentences}"]']
    base = load_config(CONFIG, sets)
    result = compare(base, CELLS, n_resamples=100, log=quiet)
    return sets, base, result


def test_one_run_per_cell_on_the_shared_prepared_data(setup):
    _, base, result = setup
    runs = Path(base.paths.runs)
    assert sorted(p.name for p in runs.iterdir()) == ["tiny-gru", "tiny-lstm", "tiny-rnn"]
    assert [p.name for p in (Path(base.paths.data) / "prepared").iterdir()] == ["tiny"]
    for variant in variants(base, CELLS):
        saved = json.loads((variant.config.run_dir / "config.json").read_text())
        expected = base.to_dict()
        expected["name"], expected["paths"]["prepared"] = f"tiny-{variant.cell}", "tiny"
        expected["model"]["cell"] = variant.cell
        assert saved == expected  # nothing else differs between the cells
    assert all(row["trained_now"] for row in result["rows"][:3])


def test_compare_json_has_one_row_per_cell_plus_the_references(setup):
    _, base, _ = setup
    directory = compare_dir(base)
    result = json.loads((directory / "compare.json").read_text())
    rows = {row["name"]: row for row in result["rows"]}
    assert list(rows) == [*CELLS, "baseline", "VADER"]
    (ood_set,) = result["out_of_domain_sets"]
    for row in rows.values():
        low, high = row["accuracy_ci"]
        assert low <= row["accuracy"] <= high and 0 <= row["macro_f1"] <= 1
        assert row["contrast_pass_rate"] is not None
        assert row["parameters"] is None if row["name"] == "VADER" else row["parameters"] > 0
        assert 0 <= row["out_of_domain"][ood_set]["accuracy"] <= 1
    assert rows["rnn"]["parameters"] < rows["gru"]["parameters"] < rows["lstm"]["parameters"]
    for cell in CELLS:
        assert rows[cell]["seconds_per_epoch"] > 0 and 1 <= rows[cell]["best_epoch"] <= rows[cell]["epochs_run"]
        assert len(result["histories"][cell]) == rows[cell]["epochs_run"]
    assert rows["baseline"]["best_epoch"] is None

    assert sorted(p.name for p in directory.iterdir()) == [
        "compare.html",
        "compare.json",
        "compare.md",
        "convergence.png",
        "training_loss.png",
    ]
    page = (directory / "compare.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 2 and all(src.startswith("data:image/png;base64,") for src in sources)
    assert 'name="viewport"' in page
    markdown = (directory / "compare.md").read_text()
    assert "| baseline (reference) |" in markdown and "](convergence.png)" in markdown
    assert "## Out of domain" in markdown and f"| {ood_set} accuracy (95% CI) |" in markdown
    assert "<h2>Out of domain</h2>" in page
    # a one-seed figure's interval is its cell's second line in HTML, in parentheses after it in Markdown
    baseline = rows["baseline"]
    low, high = baseline["accuracy_ci"]
    assert f'<span class="note">{low:.3f} to {high:.3f}</span>' in page
    assert f"| baseline (reference) | {baseline['accuracy']:.3f} ({low:.3f} to {high:.3f}) |" in markdown


def test_a_second_compare_trains_and_evaluates_nothing(setup, monkeypatch):
    _, base, _ = setup

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained or evaluated again")

    monkeypatch.setattr(training, "train", refuse)
    monkeypatch.setattr(evaluation, "evaluate", refuse)
    before = {cell: (Path(base.paths.runs) / f"tiny-{cell}" / "run.json").stat().st_mtime_ns for cell in CELLS}
    messages = []
    result = compare(base, CELLS, n_resamples=100, log=messages.append)
    assert not any(row["trained_now"] or row["evaluated_now"] for row in result["rows"][:3])
    assert sum("not retraining" in m for m in messages) == 3
    after = {cell: (Path(base.paths.runs) / f"tiny-{cell}" / "run.json").stat().st_mtime_ns for cell in CELLS}
    assert after == before


def _prepared(base) -> str:
    """The fingerprint of the experiment's prepared data as `prepare` wrote it."""
    return json.loads((base.prepared_dir / "manifest.json").read_text())["fingerprint"]


def test_a_changed_setting_means_the_run_is_not_finished(setup):
    _, base, _ = setup
    [variant] = variants(base, ["gru"])
    assert finished_run(variant.config, _prepared(base)) is not None
    [longer] = variants(
        base.model_copy(update={"training": base.training.model_copy(update={"max_epochs": 3})}), ["gru"]
    )
    assert longer.config.run_dir == variant.config.run_dir and finished_run(longer.config, _prepared(base)) is None


def test_a_run_trained_on_data_prepared_before_is_not_finished(setup):
    """Evaluation refuses a run whose data was prepared again since it was trained, so compare trains it again."""
    _, base, _ = setup
    [variant] = variants(base, ["gru"])
    record = variant.config.run_dir / "run.json"
    saved = record.read_text()
    try:
        info = json.loads(saved)
        info["prepared"]["fingerprint"] = "v0-an-older-preparation"
        record.write_text(json.dumps(info))
        assert finished_run(variant.config, _prepared(base)) is None
    finally:
        record.write_text(saved)
    assert finished_run(variant.config, _prepared(base)) is not None


def test_an_interrupted_run_is_resumed(setup, monkeypatch, tmp_path):
    _, base, _ = setup
    moved = base.model_copy(update={"paths": base.paths.model_copy(update={"runs": str(tmp_path)})})
    [variant] = variants(moved, ["gru"])
    checkpoint = partial_dir(variant.config.run_dir) / CHECKPOINT
    checkpoint.mkdir(parents=True)
    prepared = _prepared(base)
    state = {"config_fingerprint": variant.config.fingerprint(), "prepared_fingerprint": prepared}
    (checkpoint / "state.json").write_text(json.dumps(state))
    calls = []
    monkeypatch.setattr(training, "train", lambda config, resume, device, log: calls.append(resume) or "run")
    assert ensure_trained(plan_runs([variant], prepared)[0], None, quiet) == ("run", True)
    (checkpoint / "state.json").write_text(json.dumps({**state, "config_fingerprint": "another config"}))
    ensure_trained(plan_runs([variant], prepared)[0], None, quiet)
    (checkpoint / "state.json").write_text(json.dumps({**state, "prepared_fingerprint": "an older preparation"}))
    ensure_trained(plan_runs([variant], prepared)[0], None, quiet)
    assert calls == [True, False, False]


def _refuse_work(monkeypatch) -> None:
    """Preparing, training or evaluating from here on fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run prepared, trained or evaluated")

    for module, name in (
        (preparation, "prepare"),
        (compare_module, "prepare"),
        (training, "train"),
        (evaluation, "evaluate"),
    ):
        monkeypatch.setattr(module, name, refuse)


def test_a_plan_marks_each_run_reuse_resume_or_train_and_does_none_of_it(setup, monkeypatch, tmp_path):
    _, base, _ = setup
    _refuse_work(monkeypatch)
    runs_before = sorted(p.name for p in Path(base.paths.runs).iterdir())
    steps = plan(base, ["rnn", "gru"], seeds=[13, 99])
    assert [(step.variant.config.name, step.action) for step in steps] == [
        ("tiny-rnn", "reuse"),
        ("tiny-rnn-seed99", "train"),
        ("tiny-gru", "reuse"),
        ("tiny-gru-seed99", "train"),
    ]
    assert steps[0].finished is not None and steps[0].finished.directory == steps[0].variant.config.run_dir
    assert sorted(p.name for p in Path(base.paths.runs).iterdir()) == runs_before

    # An interrupted run is planned as resumed only when its checkpoint matches its config and the data.
    moved = base.model_copy(update={"paths": base.paths.model_copy(update={"runs": str(tmp_path)})})
    [variant] = variants(moved, ["gru"])
    checkpoint = partial_dir(variant.config.run_dir) / CHECKPOINT
    checkpoint.mkdir(parents=True)
    state = {"config_fingerprint": variant.config.fingerprint(), "prepared_fingerprint": _prepared(base)}
    (checkpoint / "state.json").write_text(json.dumps(state))
    assert [step.action for step in plan(moved, ["gru", "lstm"])] == ["resume", "train"]
    (checkpoint / "state.json").write_text(json.dumps({**state, "prepared_fingerprint": "an older preparation"}))
    assert [step.action for step in plan(moved, ["gru"])] == ["train"]


def test_a_plan_on_data_not_yet_prepared_trains_everything_and_prepares_nothing(setup, monkeypatch, tmp_path):
    _, base, _ = setup
    _refuse_work(monkeypatch)
    elsewhere = base.model_copy(
        update={"paths": base.paths.model_copy(update={"data": str(tmp_path / "data"), "runs": str(tmp_path / "runs")})}
    )
    assert [step.action for step in plan(elsewhere, CELLS)] == ["train"] * 3
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_cli_dry_run_lists_the_plan_and_stops(setup, monkeypatch):
    sets, base, _ = setup
    _refuse_work(monkeypatch)
    args = ["compare", "--config", str(CONFIG), *[a for s in sets for a in ("--set", s)], "--dry-run"]
    arm = ["--variant", "wide", "model.hidden_size=16"]
    result = CliRunner().invoke(cli, [*args, "--cells", "gru", "--seeds", "13,99", *arm])
    assert result.exit_code == 0, result.output
    runs = Path(base.paths.runs)
    assert result.output.splitlines() == [
        "4 runs planned: 1 already finished with their config (reused), 0 resumed from a checkpoint, 3 to train; "
        "nothing was prepared, trained or evaluated (--dry-run)",
        f"  reuse   {runs / 'tiny-gru'}",
        f"  train   {runs / 'tiny-gru-seed99'}",
        f"  train   {runs / 'tiny-gru-wide'}",
        f"  train   {runs / 'tiny-gru-wide-seed99'}",
    ]
    assert not (runs / "tiny-gru-seed99").exists() and not (runs / "tiny-gru-wide").exists()
    assert not (Path(base.paths.reports) / "tiny-gru-wide").exists()


def test_directions_name_unidirectional_runs_apart():
    base = load_config(None, ["name=x"])
    names = [v.config.name for v in variants(base, ["gru", "lstm"], ["bi", "uni"])]
    assert names == ["x-gru", "x-gru-uni", "x-lstm", "x-lstm-uni"]
    assert [v.bidirectional for v in variants(base, ["gru"], ["uni"])] == [False]


def test_cli_reuses_the_runs_and_prints_the_table(setup):
    sets, base, _ = setup
    args = ["compare", "--config", str(CONFIG), *[a for s in sets for a in ("--set", s)], "--resamples", "100"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (
        re.search(r"^baseline \(reference\) +[01]\.\d{3} \([01]\.\d{3} to ", result.output, flags=re.M)
        and "not retraining" in result.output
    )
    assert "compare.html" in result.output


@pytest.mark.parametrize(
    ("option", "pattern"),
    [
        (["--cells", "rnn,transformer"], "--cells: unknown value 'transformer'"),
        (["--cells", "gru,gru"], "names a value twice"),
        (["--directions", "sideways"], "--directions: unknown value 'sideways'"),
        (["--seeds", "13,x"], "--seeds: 'x' is not a seed or a range of seeds"),
        (["--seeds", "15-13"], "--seeds: '15-13' is not a seed or a range"),
        (["--seeds", "13-15,14"], "--seeds: '13-15,14' names a seed twice"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(option, pattern):
    result = CliRunner().invoke(cli, ["compare", "--config", str(CONFIG), *option])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and re.search(pattern, result.output), result.output


def test_arms_name_their_runs_after_the_cell_and_direction_and_before_the_seed():
    base = load_config(None, ["name=x"])
    arms = {"att": ["model.pooling=max+attention", "model.dropout=0.2"]}
    found = variants(base, ["gru"], ["bi", "uni"], [13, 14], arms)
    assert [v.config.name for v in found] == [
        "x-gru", "x-gru-seed14", "x-gru-att", "x-gru-att-seed14",
        "x-gru-uni", "x-gru-uni-seed14", "x-gru-uni-att", "x-gru-uni-att-seed14",
    ]  # fmt: skip
    assert [v.label for v in found[::2]] == ["gru", "gru+att", "gru-uni", "gru-uni+att"]
    armed = found[2].config
    assert (armed.model.pooling, armed.model.dropout) == ("max+attention", 0.2)
    assert (found[0].config.model.pooling, found[0].config.model.dropout) == (base.model.pooling, base.model.dropout)


def test_seeds_are_lists_and_ranges():
    assert parse_seeds("13-15,20") == [13, 14, 15, 20]
    assert parse_seeds(" 7 ") == [7]


@pytest.fixture(scope="module")
def seeded(setup):
    """The same experiment compared over seeds 13 (the config's: its runs are reused) and 14."""
    _, base, _ = setup
    messages: list[str] = []
    result = compare(base, ["rnn", "gru"], n_resamples=100, log=messages.append, seeds=[13, 14])
    return base, result, messages


def test_each_seed_is_a_run_of_its_own_and_the_configs_own_seed_is_reused(seeded):
    base, result, messages = seeded
    runs = Path(base.paths.runs)
    assert {"tiny-rnn-seed14", "tiny-gru-seed14"} <= {p.name for p in runs.iterdir()}
    for cell in ("rnn", "gru"):
        plain = json.loads((runs / f"tiny-{cell}" / "config.json").read_text())
        seeded_config = json.loads((runs / f"tiny-{cell}-seed14" / "config.json").read_text())
        assert seeded_config["training"]["seed"] == 14 and plain["training"]["seed"] is None
        seeded_config["training"]["seed"], seeded_config["name"] = None, plain["name"]
        assert seeded_config == plain  # only the training seed (and the name) differ
        assert json.loads((runs / f"tiny-{cell}-seed14" / "run.json").read_text())["seed"] == 14
    assert sum("not retraining" in m for m in messages) == 2  # tiny-rnn and tiny-gru, seed 13
    tags = list(dict.fromkeys(m.split("]")[0] + "]" for m in messages if m.startswith("[")))
    assert tags == ["[rnn seed 13, 1/4]", "[rnn seed 14, 2/4]", "[gru seed 13, 3/4]", "[gru seed 14, 4/4]"]
    assert [[seed["trained_now"] for seed in row["seed_rows"]] for row in result["rows"][:2]] == [[False, True]] * 2


def test_a_row_over_seeds_is_the_mean_and_sd_of_each_seeds_report(seeded):
    base, result, _ = seeded
    saved = json.loads((compare_dir(base) / "compare.json").read_text())
    assert saved["seeds"] == [13, 14] and saved["varied"] == ["model.cell", "training.seed"]
    rows = {row["name"]: row for row in saved["rows"]}
    assert list(rows) == ["rnn", "gru", "baseline", "VADER"]
    (ood_set,) = saved["out_of_domain_sets"]
    for cell in ("rnn", "gru"):
        row = rows[cell]
        reports = [json.loads((Path(seed["report"]) / "metrics.json").read_text()) for seed in row["seed_rows"]]
        assert [seed["seed"] for seed in row["seed_rows"]] == [13, 14]
        test_f1 = [report["model"]["macro_f1"] for report in reports]
        assert row["macro_f1"] == pytest.approx(statistics.fmean(test_f1))
        assert row["macro_f1_sd"] == pytest.approx(statistics.stdev(test_f1))
        assert row["macro_f1_ci"] is None  # an interval belongs to one run; each seed's report has its own
        validation = [seed["best_val_macro_f1"] for seed in row["seed_rows"]]
        assert row["best_val_macro_f1"] == pytest.approx(statistics.fmean(validation))
        ood = [seed["out_of_domain"][ood_set]["accuracy"] for seed in row["seed_rows"]]
        assert row["out_of_domain"][ood_set]["accuracy"] == pytest.approx(statistics.fmean(ood))
    assert rows["baseline"]["accuracy_ci"] is not None  # a reference is one fit, with its interval
    assert set(saved["histories"]) == {"rnn seed 13", "rnn seed 14", "gru seed 13", "gru seed 14"}


def test_the_page_over_seeds_reads_the_spread_and_each_seed(seeded):
    base, result, _ = seeded
    directory = compare_dir(base)
    markdown = (directory / "compare.md").read_text()
    assert "| system | seeds | validation macro-F1 | through the cut | test accuracy | test macro-F1 |" in markdown
    gru = result["rows"][1]
    assert f"| gru | 2 | {gru['best_val_macro_f1']:.4f} ± {gru['best_val_macro_f1_sd']:.4f} | — |" in markdown
    each_seed = markdown.split("## Each seed", 1)[1].split("##", 1)[0]
    assert len(re.findall(r"^\| (rnn|gru) \| 1[34] \|", each_seed, flags=re.M)) == 4
    assert "Highest mean validation macro-F1" in markdown and "of 2 seeds" in markdown
    assert "tiny-gru-seed14" in markdown  # each run's own report is named
    page = (directory / "compare.html").read_text()
    assert "<h2>Each seed</h2>" in page and "±" in page


def test_cli_compares_over_seeds(seeded, setup):
    sets, _, _ = setup
    args = ["compare", "--config", str(CONFIG), *[a for s in sets for a in ("--set", s)], "--resamples", "100"]
    result = CliRunner().invoke(cli, [*args, "--cells", "rnn,gru", "--seeds", "13-14"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^system +seeds +validation macro-F1", result.output, flags=re.M)
    assert result.output.count("not retraining") == 4


@needs_chromium
@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), [(412, 915), (1366, 900)], ids=["phone", "desktop"])
def test_the_page_over_seeds_renders_cleanly_in_chromium(seeded, tmp_path, width, height):
    base, _, _ = seeded
    page = (compare_dir(base) / "compare.html").read_text(encoding="utf-8")
    found, stderr, screenshot = render_in_chromium(page, tmp_path, width, height)
    assert found.get("images-loaded") == "2/2" and json.loads(found["errors"]) == []
    assert found["overflow"] == "0", "the page scrolls sideways; only its tables may"
    assert [line for line in stderr.splitlines() if "CONSOLE" in line] == []
    check_screenshot(screenshot, width, height)


def _seed_row(name: str, seed: int, argmax: float, cut: float | None, test_f1: float) -> dict:
    return {
        "name": name, "cell": name, "bidirectional": True, "parameters": 1, "test_examples": 10, "seed": seed,
        "accuracy": 0.9, "macro_f1": test_f1, "best_val_macro_f1": argmax, "cut_val_macro_f1": cut,
        "contrast_pass_rate": 0.8, "seconds_per_epoch": 1.0, "out_of_domain": {}, "out_of_domain_sets": [],
        "best_epoch": 1, "epochs_run": 1, "trained_now": False, "evaluated_now": False, "arm": None, "settings": [],
    }  # fmt: skip


def test_the_reading_over_seeds_rests_on_the_cut_when_the_runs_ship_one():
    """By the argmax gru leads on both seeds; through the cross-fitted cut lstm does, on both."""
    baseline = {"name": "baseline", "reference": True, "macro_f1": 0.85}
    rows = [
        over_seeds([_seed_row("gru", 13, 0.91, 0.900, 0.86), _seed_row("gru", 14, 0.92, 0.902, 0.84)]),
        over_seeds([_seed_row("lstm", 13, 0.90, 0.910, 0.88), _seed_row("lstm", 14, 0.91, 0.914, 0.87)]),
    ]
    result = {"seeds": [13, 14], "rows": [*rows, baseline]}
    text = " ".join(reading(result))
    assert "through the fitted cut (cross-fitted), which is what a choice should rest on: lstm (0.9120" in text
    assert "gru: 0.0110 lower on average (more than the seed-to-seed spread" in text and "higher on 0 of 2" in text
    assert "Test macro-F1 of gru above the bag-of-words baseline's (0.850) on 1 of 2 seeds." in text
    assert "With 2 seeds the standard deviations are themselves rough" in text
    rows[0]["seed_rows"][0]["cut_val_macro_f1"] = None  # one run without a cut: all are read at the argmax
    rows[0]["cut_val_macro_f1"] = None
    assert "Highest mean validation macro-F1, which is what a choice should rest on: gru" in " ".join(reading(result))


# ---- arms: the config with a few settings changed, beside it ----------------------------------


@pytest.fixture(scope="module")
def armed(seeded):
    """rnn over seeds 13 and 14 as the config has it (reused from `seeded`) and with `model.dropout=0.1`."""
    base, _, _ = seeded
    messages: list[str] = []
    arms = {"drop": ["model.dropout=0.1"]}
    result = compare(base, ["rnn"], n_resamples=100, log=messages.append, seeds=[13, 14], arms=arms)
    return base, result, messages


def test_an_arm_is_the_config_with_its_settings_changed_on_the_same_seeds(armed):
    base, result, messages = armed
    runs = Path(base.paths.runs)
    plain = json.loads((runs / "tiny-rnn-seed14" / "config.json").read_text())
    arm = json.loads((runs / "tiny-rnn-drop-seed14" / "config.json").read_text())
    assert arm["model"]["dropout"] == 0.1 != plain["model"]["dropout"]
    arm["model"]["dropout"], arm["name"] = plain["model"]["dropout"], plain["name"]
    assert arm == plain  # the arm's setting and the name are all that differ
    assert (runs / "tiny-rnn-drop" / "run.json").is_file()  # the config's own seed: no suffix
    assert sum("not retraining" in m for m in messages) == 2  # the config's rnn runs of seeds 13 and 14
    assert (
        "compare: 4 runs planned: 2 already finished with their config (reused), 0 resumed from a checkpoint, 2 to train"
        in messages
    )
    assert [row["name"] for row in result["rows"]] == ["rnn", "rnn+drop", "baseline", "VADER"]
    assert result["varied"] == ["model.cell", "model.dropout", "training.seed"]
    assert result["arms"] == {"drop": ["model.dropout=0.1"]}
    assert result["rows"][1]["arm"] == "drop" and result["rows"][0]["arm"] is None


def test_the_reading_pairs_an_arm_with_the_config_seed_by_seed(armed):
    base, result, _ = armed
    plain, arm = result["rows"][:2]
    differences = [
        a["best_val_macro_f1"] - p["best_val_macro_f1"] for a, p in zip(arm["seed_rows"], plain["seed_rows"])
    ]
    text = " ".join(reading(result))
    assert (
        f"rnn+drop against rnn (model.dropout=0.1), seed by seed: {statistics.fmean(differences):+.4f} on average "
        f"(sd of the differences {statistics.stdev(differences):.4f}" in text
    )
    markdown = (compare_dir(base) / "compare.md").read_text()
    assert "each arm's settings (drop: model.dropout=0.1)" in markdown and "| rnn+drop | 2 |" in markdown
    assert "tiny-rnn-drop-seed14" in markdown  # each run's report is named
    page = (compare_dir(base) / "compare.html").read_text()
    assert "rnn+drop against rnn (model.dropout=0.1)" in page and "`" not in page.split("<body", 1)[1]


def test_an_arms_reading_counts_its_wins_and_spread():
    baseline = {"name": "baseline", "reference": True, "macro_f1": 0.85}
    plain = [_seed_row("lstm", seed, 0.90, cut, 0.88) for seed, cut in ((13, 0.910), (14, 0.900), (15, 0.905))]
    lever = [_seed_row("lstm+att", seed, 0.90, cut, 0.88) for seed, cut in ((13, 0.914), (14, 0.899), (15, 0.911))]
    for row in lever:
        row.update(cell="lstm", arm="att", settings=["model.pooling=max+attention"])
    for row in plain:
        row.update(cell="lstm", arm=None, settings=[])
    result = {"seeds": [13, 14, 15], "rows": [over_seeds(plain), over_seeds(lever), baseline]}
    text = " ".join(reading(result))
    # differences +0.004, -0.001, +0.006: mean +0.0030, sd 0.0036, standard error 0.0021
    assert (
        "lstm+att against lstm (model.pooling=max+attention), seed by seed: +0.0030 on average "
        "(sd of the differences 0.0036, standard error 0.0021), higher on 2 of 3 seeds." in text
    )


@pytest.mark.parametrize(
    ("option", "pattern"),
    [
        (["--variant", "uni", "model.dropout=0.2"], "--variant: 'uni' cannot name an arm"),
        (["--variant", "a-seed14", "model.dropout=0.2"], "--variant: 'a-seed14' cannot name an arm"),
        (["--variant", "Att", "model.dropout=0.2"], "--variant: 'Att' cannot name an arm"),
        (["--variant", "att", "pooling"], "--variant att: expects KEY=VALUE after the name, got 'pooling'"),
        (["--variant", "att", "vocab.min_freq=3"], "--variant att: vocab.min_freq would change the prepared data"),
        (["--variant", "att", "seed=3"], "--variant att: seed would change the prepared data"),
        (["--variant", "att", "model.cell=gru"], "--variant att: compare sets model.cell itself"),
        (["--variant", "att", "training.seed=3"], "--variant att: compare sets training.seed itself"),
        (["--variant", "att", "paths.runs=x"], "--variant att: compare sets paths.runs itself"),
        (
            ["--variant", "att", "model.dropout=0.2", "--variant", "att", "model.dropout=0.1"],
            "--variant att: sets model.dropout twice",
        ),
        (["--variant", "att", "model.poolin=max"], "unknown key 'model.poolin'; did you mean 'model.pooling'"),
    ],
)
def test_cli_refuses_an_arm_in_one_line_with_exit_2(option, pattern, tmp_path):
    args = ["compare", "--config", str(CONFIG), "--set", f"paths.data={tmp_path}/data", *option]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and re.search(re.escape(pattern), result.output), result.output
    assert not (tmp_path / "data").exists()  # refused before anything was prepared
