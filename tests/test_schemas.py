"""The on-disk contracts (`sentiment.schemas`): generated documentation, checks on write and on read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sentiment.errors import SentimentError
from sentiment.schemas import EvaluationMetrics, RunRecord, json_schemas, read_record, write_record
from sentiment.training.run import load_run

from conftest import quiet

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def evaluated(tiny_trained, tmp_path_factory):
    """The session's tiny run, evaluated into a report directory of this module's own."""
    from sentiment.evaluation.evaluate import evaluate

    reports = tmp_path_factory.mktemp("schema-reports")
    config = tiny_trained.model_copy(update={"paths": tiny_trained.paths.model_copy(update={"reports": str(reports)})})
    evaluate(config, n_resamples=50, log=quiet)
    return {"run": Path(config.run_dir), "report": Path(config.report_dir)}


def _fields(schemas: dict) -> dict:
    """Every object's properties and required fields: what the documentation must agree on (the
    rest of the JSON Schema's wording may change with pydantic's version)."""
    found = {}
    for name, schema in schemas.items():
        for title, node in {name: schema, **schema.get("$defs", {})}.items():
            found[f"{name}:{title}"] = (sorted(node.get("properties", {})), sorted(node.get("required", [])))
    return found


def test_the_documented_schemas_are_generated_from_the_models():
    documented = json.loads((ROOT / "docs" / "schemas.json").read_text())
    assert _fields(documented) == _fields(json_schemas()), (
        "docs/schemas.json is stale: python -m sentiment.schemas > docs/schemas.json"
    )


def test_the_files_a_pipeline_writes_pass_their_schemas(evaluated, tiny_trained):
    from sentiment.data.prepare import load_prepared

    prepared = load_prepared(tiny_trained.prepared_dir)  # read through PreparedManifest
    run, _ = read_record(evaluated["run"] / "run.json", RunRecord)
    metrics, _ = read_record(evaluated["report"] / "metrics.json", EvaluationMetrics)
    assert sum(prepared.record.counts["test"].values()) == metrics.data.test_examples == metrics.model.n_examples
    assert run.best_epoch is not None and 1 <= run.best_epoch <= (run.epochs_run or 0)
    assert metrics.system("vader") is metrics.vader and metrics.baseline.n_examples == metrics.model.n_examples
    assert load_run(evaluated["run"]).record == run


def test_a_record_that_breaks_its_schema_is_not_written(tmp_path, evaluated):
    info = json.loads((evaluated["run"] / "run.json").read_text())
    info["model"]["hidden_size"] = "sixteen"
    with pytest.raises(SentimentError, match=r"run.json: model.hidden_size: Input should be a valid integer"):
        write_record(tmp_path / "run.json", RunRecord, info)
    assert not (tmp_path / "run.json").exists()
    info = json.loads((evaluated["run"] / "run.json").read_text())
    info["epochs"] = 3  # a field no version writes: a typo, or a file from elsewhere
    with pytest.raises(SentimentError, match=r"run.json: epochs: Extra inputs are not permitted"):
        write_record(tmp_path / "run.json", RunRecord, info)


def test_a_run_whose_run_json_was_edited_badly_fails_with_the_field(tmp_path, evaluated):
    run_dir = shutil.copytree(evaluated["run"], tmp_path / "run")
    info = json.loads((run_dir / "run.json").read_text())
    info["calibration"]["temperature"] = -1
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(SentimentError, match=r"run.json: calibration.temperature: Input should be greater than 0"):
        load_run(run_dir)
