"""`sentiment compare`: one experiment trained once per recurrent cell (RNN, GRU, LSTM), side by side.

Each variant is an ordinary experiment named `<experiment>-<cell>` (`<experiment>-<cell>-uni` for a
unidirectional model, e.g. with `--directions bi,uni`; `-<arm>` after it for a named arm of settings,
with `--variant`; `-seed<N>` last for each training seed other than the experiment's own, with
`--seeds`), trained by `sentiment.training.stage.train` into `runs/<name>/` and evaluated by
`sentiment.evaluation.evaluate.evaluate` into `reports/<name>/`. Every variant reads the base experiment's
prepared data (`paths.prepared`), so data, vocabulary, seed and every other setting are identical; only
`model.cell` (and `model.bidirectional`, and an arm's own settings) change, and each variant is one model
(`training.ensemble = 1`) even when the experiment averages several.

An arm (`arms`, from `--variant NAME KEY=VALUE`) is the experiment with a few settings changed, trained
beside the experiment as it is for every cell, direction and seed: a lever judged on the seeds that
pair it with the config, in one command. Its settings may not touch what compare varies itself or the
prepared data that every run shares (`PREPARE_SECTIONS`).

One seed reads a difference between cells no better than the seed-to-seed spread allows (the default
experiment's validation macro-F1 moves by a standard deviation of about 0.005 between seeds, more than
many differences between settings). With several seeds (`seeds`, each a `training.seed`, so the split
stays the one prepared), every variant is trained once per seed; its row gives the mean and standard
deviation over the seeds and each seed's figures, and the reading counts on how many seeds one
variant beat another.

Reruns are cheap: a variant whose finished run was made with exactly this config is not retrained
(nor re-evaluated while its report is newer than the run), an interrupted one resumes from its
checkpoint, anything else is trained from scratch; `plan` says which, run by run, without doing any
of it (`sentiment compare --dry-run`). The comparison goes to
`reports/<experiment>-compare/`: compare.json, compare.md, compare.html (self-contained) and two
figures (validation macro-F1 and training loss per epoch).
"""

from __future__ import annotations

import itertools
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment.artifacts import environment_versions, read_json
from sentiment.config import ExperimentConfig, apply_overrides, config_from_dict, parse_override
from sentiment.data.prepare import PREPARE_SECTIONS, prepare, prepare_fingerprint
from sentiment.errors import SentimentError
from sentiment.progress import tagged
from sentiment.reporting.compare_page import write_comparison
from sentiment.schemas import EvaluationMetrics, RunRecord, SetScores, SystemMetrics, read_record
from sentiment.training.run import TrainedRun, load_run, partial_dir

CELL_CHOICES = ("rnn", "gru", "lstm")
DIRECTION_CHOICES = {"bi": True, "uni": False}


ARM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
SET_BY_COMPARE = ("name", "paths", "model.cell", "model.bidirectional", "training.seed", "training.ensemble")
"""Settings compare chooses for every run itself; an arm may not set them (nor the prepared data's)."""


@dataclass
class Variant:
    """One run of the comparison: a label for tables ("gru", "gru-uni", "lstm+attention"), its full
    experiment config, and the arm of settings it belongs to (None: the config as it is)."""

    label: str
    cell: str
    bidirectional: bool
    config: ExperimentConfig
    seed: int
    arm: str | None = None
    settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlannedRun:
    """A run of the comparison and what compare does with it: reuse its finished run, resume its
    interrupted one, or train it."""

    variant: Variant
    finished: TrainedRun | None
    resumable: bool

    @property
    def action(self) -> str:
        return "reuse" if self.finished is not None else "resume" if self.resumable else "train"


def parse_list(option: str, text: str, choices: Sequence[str]) -> list[str]:
    """`"rnn, gru"` -> ["rnn", "gru"], refusing unknown or repeated values with one clear error."""
    values = [value.strip().lower() for value in text.split(",") if value.strip()]
    unknown = [value for value in values if value not in choices]
    if not values or unknown:
        shown = f"unknown value {unknown[0]!r}" if unknown else "nothing given"
        raise SentimentError(f"{option}: {shown}; choose from {', '.join(choices)} (comma-separated)")
    if len(set(values)) != len(values):
        raise SentimentError(f"{option}: {text!r} names a value twice")
    return values


def parse_seeds(text: str) -> list[int]:
    """`"13,14,15"` or `"13-17"` (or both, `"13-15,20"`) -> the seeds, refusing anything else with one clear error."""
    seeds: list[int] = []
    for part in (piece.strip() for piece in text.split(",")):
        first, dash, last = part.partition("-")
        if not (first.isdigit() and (not dash or last.isdigit())) or (dash and int(last) < int(first)):
            raise SentimentError(f"--seeds: {part!r} is not a seed or a range of seeds; give e.g. 13,14,15 or 13-17")
        seeds += range(int(first), int(last) + 1) if dash else [int(first)]
    if len(set(seeds)) != len(seeds):
        raise SentimentError(f"--seeds: {text!r} names a seed twice")
    return seeds


def parse_arms(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """`--variant NAME KEY=VALUE` pairs -> {name: its settings}, in the order given (a name given twice
    collects both settings), refusing with one clear error: a name compare's run names could not
    carry or would confuse (`uni`, `seed<N>`), a setting that is not KEY=VALUE, one that compare sets
    itself (`SET_BY_COMPARE`), one that would change the prepared data every run shares, and a key
    set twice in one arm."""
    arms: dict[str, list[str]] = {}
    for name, setting in pairs:
        # A run's name is <experiment>-<cell>[-uni][-<arm>][-seed<N>]: a part "uni" or "seed<N>" would read as ours.
        reserved = any(part == "uni" or re.fullmatch(r"seed\d+", part) for part in name.split("-"))
        if not ARM_NAME.fullmatch(name) or reserved:
            raise SentimentError(
                f"--variant: {name!r} cannot name an arm; use lowercase letters, digits, - and _ "
                "(no part 'uni' or 'seed<N>' between dashes: those name compare's own runs)"
            )
        try:
            key, _ = parse_override(setting)
        except SentimentError:
            raise SentimentError(f"--variant {name}: expects KEY=VALUE after the name, got {setting!r}") from None
        if key.split(".")[0] in PREPARE_SECTIONS:
            raise SentimentError(
                f"--variant {name}: {key} would change the prepared data, which every run of a comparison "
                "shares; compare such settings as two experiments"
            )
        if any(key == fixed or key.startswith(f"{fixed}.") for fixed in SET_BY_COMPARE):
            raise SentimentError(f"--variant {name}: compare sets {key} itself (--cells, --directions, --seeds)")
        if key in (parse_override(earlier)[0] for earlier in arms.get(name, [])):
            raise SentimentError(f"--variant {name}: sets {key} twice")
        arms.setdefault(name, []).append(setting)
    return arms


def training_seed(config: ExperimentConfig) -> int:
    """The seed a run of `config` starts from: `training.seed`, or the top-level seed without one."""
    return config.training.seed if config.training.seed is not None else config.seed


def variants(
    base: ExperimentConfig,
    cells: Sequence[str],
    directions: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    arms: dict[str, list[str]] | None = None,
) -> list[Variant]:
    """One config per cell (and direction, and arm, and seed), identical to `base` apart from name, cell,
    direction, the arm's settings and seed (and a single model per variant: `training.ensemble = 1`).

    Names: `<experiment>-<cell>` for a bidirectional model, `<experiment>-<cell>-uni` for a unidirectional one,
    each followed by `-<arm>` for an arm of `arms` and by `-seed<N>` for a seed other than the experiment's own.
    """
    own_seed = training_seed(base)
    arms = arms or {}
    found = []
    # Cells, then directions, then arms, then seeds: the order the tables list them in.
    for cell, direction, arm, seed in itertools.product(
        cells, list(directions) if directions else [None], [None, *arms], list(seeds) if seeds else [own_seed]
    ):
        bidirectional = base.model.bidirectional if direction is None else DIRECTION_CHOICES[direction]
        settings = tuple(arms[arm]) if arm else ()
        # Named by what the run is, so `--directions`, `--variant` and `--seeds` reuse a plain compare's runs.
        label = (cell if bidirectional else f"{cell}-uni") + (f"+{arm}" if arm else "")
        data = base.to_dict()
        apply_overrides(data, settings)
        data["name"] = f"{base.name}-{label.replace('+', '-')}" + ("" if seed == own_seed else f"-seed{seed}")
        if seed != own_seed:  # the training seed only: the top-level one drew the split all variants share
            data["training"]["seed"] = seed
        # Every variant reads the base experiment's prepared data instead of preparing its own copy.
        data["paths"]["prepared"] = base.paths.prepared or base.name
        data["model"]["cell"] = cell
        data["model"]["bidirectional"] = bidirectional
        data["training"]["ensemble"] = 1  # cells are compared as single models, not seed averages
        config = config_from_dict(data, origin=f"{base.name} ({label}, seed {seed})")
        found.append(Variant(label, cell, bidirectional, config, seed, arm, settings))
    return found


def plan(
    base: ExperimentConfig,
    cells: Sequence[str] = CELL_CHOICES,
    directions: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    arms: dict[str, list[str]] | None = None,
) -> list[PlannedRun]:
    """What `compare` would do with each of its runs, found without preparing, training or evaluating
    anything: finished runs are checked against the fingerprint the prepared data has (or will have)."""
    return plan_runs(variants(base, cells, directions, seeds, arms), prepare_fingerprint(base))


def plan_runs(planned: Sequence[Variant], prepared: str) -> list[PlannedRun]:
    """Each variant's finished run (`finished_run`) and, without one, whether its checkpoint can be resumed."""
    steps = []
    for variant in planned:
        finished = finished_run(variant.config, prepared)
        steps.append(PlannedRun(variant, finished, finished is None and resumable(variant.config, prepared)))
    return steps


def plan_summary(steps: Sequence[PlannedRun]) -> str:
    """The plan in a line: how many runs are reused, resumed and trained."""
    count = {action: sum(step.action == action for step in steps) for action in ("reuse", "resume", "train")}
    return (
        f"{len(steps)} runs planned: {count['reuse']} already finished with their config (reused), "
        f"{count['resume']} resumed from a checkpoint, {count['train']} to train"
    )


def compare_dir(base: ExperimentConfig) -> Path:
    return Path(base.paths.reports) / f"{base.name}-compare"


def compare(
    base: ExperimentConfig,
    cells: Sequence[str] = CELL_CHOICES,
    directions: Sequence[str] | None = None,
    n_resamples: int = 1000,
    device: str | None = None,
    log=print,
    seeds: Sequence[int] | None = None,
    arms: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Prepare (cached), train and evaluate each variant (once per seed of `seeds`, by default the
    experiment's own training seed, and once more per arm of `arms`); write
    `reports/<experiment>-compare/`."""
    started = time.perf_counter()
    seed_list = list(seeds) if seeds else [training_seed(base)]
    several = len(seed_list) > 1
    planned = variants(base, cells, directions, seed_list, arms)  # a bad arm setting fails before any work
    prepared = prepare(base, log=log).manifest["fingerprint"]
    steps = plan_runs(planned, prepared)
    log(f"compare: {plan_summary(steps)}")
    runs: dict[str, list[dict[str, Any]]] = {}
    histories, groups = {}, {}
    references: list[dict[str, Any]] = []
    for number, step in enumerate(steps, start=1):
        variant = step.variant
        name = f"{variant.label} seed {variant.seed}" if several else variant.label
        variant_log = tagged(log, f"{name}, {number}/{len(planned)}")  # which run, and how far the comparison is
        run, trained = ensure_trained(step, device, variant_log)
        metrics, evaluated = ensure_evaluated(variant.config, run, n_resamples, variant_log)
        runs.setdefault(variant.label, []).append(_variant_row(variant, run, metrics, trained, evaluated))
        histories[name], groups[name] = run.history(), variant.label
        references = references or _reference_rows(run, metrics)
    rows = [over_seeds(seed_rows) if several else seed_rows[0] for seed_rows in runs.values()]
    result = {
        "experiment": base.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "prepared": str(base.prepared_dir),
        "varied": ["model.cell"]
        + (["model.bidirectional"] if directions else [])
        + list(dict.fromkeys(parse_override(setting)[0] for settings in (arms or {}).values() for setting in settings))
        + (["training.seed"] if several else []),
        "seeds": seed_list,
        "arms": dict(arms or {}),
        "settings_fingerprint": base.fingerprint(),
        "test_examples": rows[0]["test_examples"],
        "rows": [*rows, *references],
        "out_of_domain_sets": rows[0]["out_of_domain_sets"],
        "histories": histories,
        "groups": groups,
        "versions": environment_versions(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_comparison(result, compare_dir(base))
    return result


# ---- one variant: train unless finished, evaluate unless the report is current -----------------


def ensure_trained(step: PlannedRun, device: str | None, log) -> tuple[TrainedRun, bool]:
    """The run as `step` planned it: its finished run reused, or its checkpoint resumed, or trained
    afresh; True when it trained."""
    from sentiment.training.stage import train

    config = step.variant.config
    if step.finished is not None:
        log(f"{config.run_dir} is finished with this config; not retraining")
        return step.finished, False
    log(f"{'resuming' if step.resumable else 'training'} {config.run_dir}")
    return train(config, resume=step.resumable, device=device, log=log), True


def resumable(config: ExperimentConfig, prepared: str) -> bool:
    """Does the run have a checkpoint made with exactly `config` on the data prepared now (fingerprint
    `prepared`)? Anything else starts afresh."""
    from sentiment.training.checkpoints import checkpoint_state

    checkpoint = checkpoint_state(partial_dir(config.run_dir))
    return checkpoint.is_file() and _checkpoint_fingerprints(checkpoint) == (config.fingerprint(), prepared)


def finished_run(config: ExperimentConfig, prepared: str) -> TrainedRun | None:
    """The run in `config.run_dir` when it is complete, was trained with exactly `config`, and on the
    prepared data as it is now (manifest fingerprint `prepared`): `evaluate` refuses a run whose data
    was prepared again since it was trained (a newer version of the prepared format, say), so such a
    run is trained again rather than reused."""
    try:
        run = load_run(config.run_dir)
    except SentimentError:
        return None
    if run.config.fingerprint() != config.fingerprint():
        return None
    return run if run.info.get("prepared", {}).get("fingerprint") == prepared else None


def _checkpoint_fingerprints(path: Path) -> tuple[str | None, str | None]:
    """The config's and the prepared data's fingerprints an interrupted run's checkpoint was made with."""
    try:
        saved = read_json(path)
        return saved.get("config_fingerprint"), saved.get("prepared_fingerprint")
    except (SentimentError, AttributeError):
        return None, None


def ensure_evaluated(
    config: ExperimentConfig, run: TrainedRun, n_resamples: int, log
) -> tuple[EvaluationMetrics, bool]:
    """The variant's test metrics: its existing report when newer than the run, else a fresh `evaluate`."""
    from sentiment.evaluation.evaluate import evaluate

    path = config.report_dir / "metrics.json"
    if path.is_file() and path.stat().st_mtime > (run.directory / "run.json").stat().st_mtime:
        try:
            metrics: EvaluationMetrics | None = read_record(path, EvaluationMetrics)[0]
        except SentimentError:  # unreadable, or from another version: evaluate again
            metrics = None
        if metrics is not None and metrics.run.directory == str(run.directory):
            log(f"{path} is newer than the run; not evaluating again")
            return metrics, False
    return evaluate(config, n_resamples=n_resamples, log=log), True


# ---- rows --------------------------------------------------------------------------------------


def _scores(system: SystemMetrics | SetScores) -> dict[str, Any]:
    return {
        "accuracy": system.accuracy,
        "accuracy_ci": system.accuracy_ci,
        "macro_f1": system.macro_f1,
        "macro_f1_ci": system.macro_f1_ci,
    }


def _contrast_rate(metrics: EvaluationMetrics, system: str) -> float | None:
    result = metrics.contrast_result(system)  # None for label schemes without positive/negative
    return None if result is None else result.pass_rate


def _out_of_domain(metrics: EvaluationMetrics, system: str) -> dict[str, dict[str, Any]]:
    """{set name: accuracy and macro-F1 with intervals} of one system on the out-of-domain sets."""
    sets = metrics.out_of_domain.sets
    return {item.name: _scores(item.systems[system]) for item in sets if system in item.systems}


def _variant_row(
    variant: Variant, run: TrainedRun, metrics: EvaluationMetrics, trained: bool, evaluated: bool
) -> dict[str, Any]:
    record = run.record
    return {
        "name": variant.label,
        "cell": variant.cell,
        "bidirectional": variant.bidirectional,
        "arm": variant.arm,
        "settings": list(variant.settings),
        "seed": variant.seed,
        **_scores(metrics.model),
        "contrast_pass_rate": _contrast_rate(metrics, "model"),
        "out_of_domain": _out_of_domain(metrics, "model"),
        "out_of_domain_sets": [item.name for item in metrics.out_of_domain.sets],
        "reference": False,
        "parameters": record.parameters,
        "seconds_per_epoch": record.seconds_per_epoch,
        "best_epoch": record.best_epoch,
        "epochs_run": record.epochs_run,
        "best_val_macro_f1": record.best_validation["val_macro_f1"],
        "cut_val_macro_f1": _cross_fitted(record),
        "test_examples": metrics.data.test_examples,
        "run": str(run.directory),
        "report": str(variant.config.report_dir),
        "trained_now": trained,
        "evaluated_now": evaluated,
    }


def _cross_fitted(record: RunRecord) -> float | None:
    """Validation macro-F1 through a cut fitted on validation, each fifth labelled by the cut the other
    four chose (`run.json` `decision.validation.cross_fitted`): how a run that ships such a cut reads
    validation without flattering itself. None without a cut or for another selection metric."""
    if record.decision is None or record.select_metric != "macro_f1":
        return None
    return record.decision.validation.get("cross_fitted")


AVERAGED = (
    "accuracy",
    "macro_f1",
    "best_val_macro_f1",
    "cut_val_macro_f1",
    "contrast_pass_rate",
    "seconds_per_epoch",
)


def _mean_and_sd(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; None for both when any seed lacks the figure."""
    if any(value is None for value in values):
        return None, None
    numbers = [float(value) for value in values if value is not None]
    return statistics.fmean(numbers), statistics.stdev(numbers)


def over_seeds(seed_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's row over several seeds: the mean and sample standard deviation (`<key>_sd`) of each
    figure, out of domain too; every seed's own row under `seed_rows`. Test intervals belong to one run,
    so the averaged row has none (`<key>_ci` is None); each seed's report has its own."""
    first = seed_rows[0]
    row = {
        key: first[key] for key in ("name", "cell", "bidirectional", "arm", "settings", "parameters", "test_examples")
    }
    row.update(reference=False, seed=None, accuracy_ci=None, macro_f1_ci=None)
    row["out_of_domain_sets"] = first["out_of_domain_sets"]
    for key in AVERAGED:
        row[key], row[f"{key}_sd"] = _mean_and_sd([seed[key] for seed in seed_rows])
    row["out_of_domain"] = {}
    for name in first["out_of_domain"]:
        scores = [seed["out_of_domain"].get(name) for seed in seed_rows]
        if any(score is None for score in scores):
            continue
        summary: dict[str, Any] = {"accuracy_ci": None, "macro_f1_ci": None}
        for key in ("accuracy", "macro_f1"):
            summary[key], summary[f"{key}_sd"] = _mean_and_sd([score[key] for score in scores if score])
        row["out_of_domain"][name] = summary
    row.update(best_epoch=None, epochs_run=None, run=None, report=None)
    row["trained_now"] = any(seed["trained_now"] for seed in seed_rows)
    row["evaluated_now"] = any(seed["evaluated_now"] for seed in seed_rows)
    row["seed_rows"] = seed_rows
    return row


def _reference_rows(run: TrainedRun, metrics: EvaluationMetrics) -> list[dict[str, Any]]:
    """The bag-of-words baseline (every variant fits the same one: same training tokens and seed)
    and VADER where the report has it."""
    rows = []
    for system, name, parameters, path in (
        ("baseline", "baseline", _baseline_parameters(run.directory / "baseline"), str(run.directory / "baseline")),
        ("vader", "VADER", None, "vader"),
    ):
        scores = metrics.system(system)
        if scores is None:
            continue
        rows.append(
            {
                "name": name,
                "cell": None,
                "bidirectional": None,
                "arm": None,
                "settings": [],
                "reference": True,
                **_scores(scores),
                "contrast_pass_rate": _contrast_rate(metrics, system),
                "out_of_domain": _out_of_domain(metrics, system),
                "parameters": parameters,
                "seconds_per_epoch": None,
                "best_epoch": None,
                "epochs_run": None,
                "best_val_macro_f1": None,
                "cut_val_macro_f1": None,
                "test_examples": metrics.data.test_examples,
                "run": path,
                "report": None,
                "trained_now": None,
                "evaluated_now": None,
            }
        )
    return rows


def _baseline_parameters(directory: Path) -> int | None:
    """Weights of the logistic regression (n-gram features x classes, plus intercepts)."""
    from safetensors import safe_open

    from sentiment.model.baseline import WEIGHTS_FILE

    try:
        with safe_open(str(directory / WEIGHTS_FILE), framework="numpy") as weights:
            total = 0
            for name in ("coef", "intercept"):
                shape = weights.get_slice(name).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += count
            return total
    except Exception:  # an unreadable or older baseline only loses this one number
        return None
