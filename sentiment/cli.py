"""The `sentiment` command: one small function per stage over the library.

Heavy libraries (torch, spaCy, datasets, scikit-learn) are imported inside the commands so
that `sentiment --help` answers at once. Every failure a user can act on ends as one line
`error: ...` on stderr: a `SentimentError` or a usage mistake (a bad option value, a missing
argument) with exit code 2; a `MachineFault` (disk full, I/O error, out of memory) with exit
code 1; SIGTERM with 143, after the same clean-up as Ctrl-C. Anything else is our bug and keeps
its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import sys

import click

from sentiment.errors import SentimentError, as_sentiment_error
from sentiment.model.precision import PRECISIONS

DEFAULT_CONFIG = "configs/clothing.toml"
TERMINATED_EXIT = 128 + 15


class OneLineError(click.ClickException):
    """A Click error (usage, bad parameter) shown like every other error: one line, no usage text."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a class default; instances may differ

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@contextlib.contextmanager
def _one_line_click_errors():
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:  # `sentiment` alone prints the help
        raise
    except click.ClickException as error:
        if isinstance(error, OneLineError):
            raise
        raise OneLineError(error.format_message(), error.exit_code) from None


class StageGroup(click.Group):
    def make_context(self, *args, **kwargs) -> click.Context:
        with _one_line_click_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context):
        from sentiment.artifacts import Terminated, sigterm_as_interrupt

        try:
            with _one_line_click_errors(), sigterm_as_interrupt():
                return super().invoke(ctx)
        except Terminated:
            click.echo("error: stopped by SIGTERM (nothing half-written was left)", err=True)
            sys.exit(TERMINATED_EXIT)
        except (SentimentError, OSError, MemoryError, RuntimeError) as error:
            failure = as_sentiment_error(error)
            if failure is None or getattr(error, "errno", None) == errno.EPIPE:
                raise  # our bug (a traceback), or a closed pipe, which Click silences
            click.echo(f"error: {failure}", err=True)
            sys.exit(failure.exit_code)


def config_options(function):
    """`--config` and repeatable `--set key=value`, shared by every stage that reads an experiment."""
    function = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config value, e.g. --set vocab.min_freq=3 --set training.max_epochs=4 (repeatable).",
    )(function)
    return click.option(
        "--config",
        "-c",
        "config_path",
        default=DEFAULT_CONFIG,
        show_default=True,
        type=click.Path(dir_okay=False),
        help="Experiment config (TOML) under configs/.",
    )(function)


def precision_option(where: str):
    """`--precision float32|bfloat16` for the commands that run a trained network (`where`: what
    the help adds about that command)."""
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="float32",
        show_default=True,
        help="The forward pass's number format. bfloat16 runs faster where the processor computes it natively "
        "(CPUs with AVX512-BF16 or AMX, recent GPUs; refused elsewhere): about 1.4x end to end on such a CPU, "
        f"with probabilities within about 0.003 of float32's. {where}",
    )


def _load(config_path: str, overrides: tuple[str, ...]):
    from sentiment.config import load_config

    return load_config(config_path, overrides)


@click.group(cls=StageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sentiment")
def cli() -> None:
    """Sentiment analysis of product reviews.

    \b
    Stages, each reading the previous one's files from disk:
      prepare   fetch reviews, tokenize with spaCy, split, build the vocabulary
      train     train a bidirectional LSTM/GRU, select the best epoch on validation
      evaluate  compare with a bag-of-words baseline; contrast cases; write reports
      score     score your own review files with a trained run (or its baseline)
      compare   train and evaluate RNN, GRU and LSTM side by side
      explain   show what the gates do on a sentence, word by word
      serve     serve a trained run over HTTP (FastAPI)

    Start with:  sentiment prepare --config configs/clothing.toml
    """


@cli.command()
@config_options
@click.option("--force", is_flag=True, help="Prepare again even if the cached result is up to date.")
def prepare(config_path: str, overrides: tuple[str, ...], force: bool) -> None:
    """Fetch, tokenize, split and encode the experiment's reviews.

    Writes data/prepared/<experiment>/: Arrow datasets per split, vocab.json and
    manifest.json (source and sha256, counts per split and class, what was dropped).
    Reruns with an unchanged config and data return at once.
    """
    from sentiment.data.prepare import prepare as run_prepare

    config = _load(config_path, overrides)
    prepared = run_prepare(config, force=force, log=lambda line: click.echo(line, err=True))
    manifest = prepared.record
    click.echo(
        f"prepared {manifest.rows.kept} reviews ({manifest.label_scheme} scheme) "
        f"in {manifest.seconds} s; vocabulary {manifest.vocab.size} words"
    )
    for split, counts in manifest.counts.items():
        shown = ", ".join(f"{label} {count}" for label, count in counts.items())
        click.echo(f"  {split:<10} {sum(counts.values()):>6}  ({shown})")
    dropped = manifest.rows.dropped
    if dropped:
        click.echo("  dropped: " + ", ".join(f"{reason} {count}" for reason, count in dropped.items()))
    click.echo(f"output: {prepared.directory}")


@cli.command()
@config_options
@click.option(
    "--resamples",
    default=1000,
    show_default=True,
    type=click.IntRange(100),
    help="Bootstrap resamples for the confidence intervals and the significance test.",
)
def evaluate(config_path: str, overrides: tuple[str, ...], resamples: int) -> None:
    """Compare the trained model with the bag-of-words baseline and VADER; write the report.

    Scores the prepared test split with the model and the baseline (from runs/<experiment>/,
    no retraining) and with VADER (a rule-based lexicon, no training), runs the contrast suite
    (negation, "but", ...) and the out-of-domain sentence sets rated by people
    (evaluate.out_of_domain; default for binary labels: amazon-snippets and movie-snippets,
    fetched once from the package registry), and writes reports/<experiment>/: report.html
    (self-contained), report.md, metrics.json, plots. None of these sets trains or selects anything.
    """
    from sentiment.evaluation.evaluate import evaluate as run_evaluate
    from sentiment.evaluation.evaluate import report_path
    from sentiment.reporting.report import summary_table

    config = _load(config_path, overrides)
    metrics = run_evaluate(config, n_resamples=resamples, log=lambda line: click.echo(line, err=True))
    click.echo(summary_table(metrics))
    click.echo(f"report: {report_path(config)}")


@cli.command()
@config_options
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=None,
    help="Where to train (default: training.device from the config, `auto` = CUDA when present).",
)
def train(config_path: str, overrides: tuple[str, ...], resume: bool, device: str | None) -> None:
    """Train the recurrent classifier on prepared data.

    With pretrain.epochs > 0 the embedding and first layer are first pretrained as
    forward/backward language models on the training reviews (no labels). Then it
    evaluates on the validation split every epoch, keeps the best epoch by
    training.select_metric (default macro-F1) and stops early after training.patience
    epochs without improvement. With training.ensemble = N it trains N such models from
    consecutive seeds and predicts the mean of their probabilities; with model.init_from =
    runs/<other> the model starts from that run's weights. Writes runs/<experiment>/:
    model.safetensors, config.json, vocab.json, labels.json, metrics.jsonl,
    learning_curves.png, run.json.
    """
    from sentiment.training.stage import train as run_train

    config = _load(config_path, overrides)
    run = run_train(config, resume=resume, device=device, log=lambda line: click.echo(line, err=True))
    record = run.record
    best = record.best_validation
    selected = (
        f"at epoch {record.best_epoch}"
        if record.ensemble is None
        else f"for the ensemble of {len(record.ensemble.members)} "
        f"(seeds {', '.join(str(m.seed) for m in record.ensemble.members)})"
    )
    click.echo(
        f"best validation macro-F1 {best['val_macro_f1']:.4f} (accuracy {best['val_accuracy']:.4f}) "
        f"{selected}; {record.train_seconds or 0:.0f} s"
    )
    click.echo(f"output: {run.directory}")


@cli.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "--model",
    "-m",
    "model_path",
    default="runs/clothing",
    show_default=True,
    help="A trained run (runs/<experiment>), its baseline (runs/<experiment>/baseline), or "
    "`vader` / `vader:ternary` (the rule-based lexicon; no run needed).",
)
@click.option(
    "--output",
    "-o",
    default=None,
    metavar="PATH",
    help="Output file: .csv, .jsonl or .parquet (default: CSV on standard output).",
)
@click.option("--text-column", default="text", show_default=True, help="Column holding the review (not for .txt).")
@click.option("--keep-text", is_flag=True, help="Copy each review into a `text` column.")
@click.option(
    "--keep-columns",
    multiple=True,
    metavar="A,B",
    help="Input columns to copy into the output (comma-separated, repeatable).",
)
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["txt", "csv", "tsv", "jsonl", "parquet"]),
    default=None,
    help="Read every input as this format (default: from each extension; stdin: txt).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Reviews per forward pass (each chunk is sorted by length into batches).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the model runs (`auto` = CUDA when present).",
)
@click.option(
    "--sentences",
    is_flag=True,
    help="Add a `sentences` column: each sentence's label, probabilities and weight (JSON in CSV). "
    "Slower: one worker, and every sentence is read again.",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    default=None,
    metavar="P",
    help="Add an `abstained` column: true where the top probability is below P (the row keeps its label). "
    "The report's risk-coverage table shows the accuracy each P leaves.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="`ray`: score on a Ray cluster (Ray Data); -o is then a directory of files.",
)
@click.option(
    "--address", default=None, help="--engine ray: the cluster to join (default: RAY_ADDRESS, else a local one)."
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="--engine ray: scoring actors (default: one per --num-cpus of the cluster's CPUs).",
)
@click.option(
    "--num-cpus",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="--engine ray: CPUs per scoring actor.",
)
@click.option(
    "--num-gpus",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="--engine ray: GPUs per scoring actor.",
)
@precision_option("evaluate's figures are float32's.")
@click.option("--preserve-order", is_flag=True, help="--engine ray: write rows in input order.")
@click.option(
    "--output-format",
    type=click.Choice(["parquet", "csv", "jsonl"]),
    default="parquet",
    show_default=True,
    help="--engine ray: the format of the files in the output directory.",
)
def score(
    inputs: tuple[str, ...],
    model_path: str,
    output: str | None,
    text_column: str,
    keep_text: bool,
    keep_columns: tuple[str, ...],
    input_format: str | None,
    batch_size: int,
    device: str,
    sentences: bool,
    min_confidence: float | None,
    engine: str,
    address: str | None,
    concurrency: int | None,
    num_cpus: float,
    num_gpus: float,
    precision: str,
    preserve_order: bool,
    output_format: str,
) -> None:
    """Score review files with a trained run, one output row per input row, in input order.

    \b
    INPUT: .txt (one review per line), .csv, .tsv, .jsonl or .parquet files, globs
    ('reviews/*.csv'), or - for standard input. Output columns: source, row, label,
    prob_<class>..., error, then text (--keep-text) and the --keep-columns.
    Rows that cannot be scored (empty, missing or not text, invalid UTF-8, invalid JSON)
    keep their place with an empty label and the reason in `error`; reviews longer than the
    model's max_len are scored on their first max_len tokens and flagged `truncated`.
    UTF-8, or UTF-16/32 with a byte-order mark; a CSV/TSV with broken quoting is refused.

    \b
    Example:
      sentiment score -m runs/clothing reviews.csv --keep-columns id -o scores.parquet
    """
    columns = [column.strip() for value in keep_columns for column in value.split(",") if column.strip()]
    if engine == "ray":
        from sentiment.serving.ray_engine import require_ray, score_with_ray

        require_ray()
        if output is None:
            raise SentimentError("--engine ray writes a directory of files: give it with -o DIR")
        ray_summary = score_with_ray(
            model_path,
            inputs,
            output,
            text_column=text_column,
            keep_columns=columns,
            keep_text=keep_text,
            input_format=input_format,
            output_format=output_format,
            address=address,
            concurrency=concurrency,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            preserve_order=preserve_order,
            min_confidence=min_confidence,
            sentences=sentences,
            precision=precision,
        )
        click.echo(
            f"scored {ray_summary.rows:,} rows on Ray in {ray_summary.seconds:.1f} s "
            f"({ray_summary.rows_per_second:,.0f} rows/s, {ray_summary.startup_seconds:.1f} s to start)",
            err=True,
        )
        click.echo(f"output: {ray_summary.output}", err=True)
        return
    from sentiment.serving.inference import load_model
    from sentiment.serving.input_files import resolve_inputs
    from sentiment.serving.output_files import check_output_is_not_an_input
    from sentiment.serving.output_files import output_format as format_of_output
    from sentiment.serving.scoring import score_files

    format_of_output(output)  # a wrong extension or a missing input fails before the model loads
    check_output_is_not_an_input(output, resolve_inputs(inputs, input_format))
    if device != "cpu":
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise SentimentError("--device cuda: no CUDA device is available here; use --device cpu")
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(model_path, device=device, batch_size=batch_size, precision=precision)
    summary = score_files(
        model,
        inputs,
        output,
        text_column=text_column,
        keep_text=keep_text,
        keep_columns=columns,
        input_format=input_format,
        progress=True,
        sentences=sentences,
        min_confidence=min_confidence,
    )
    errors = ", ".join(f"{error} {count}" for error, count in sorted(summary.errors.items()))
    click.echo(
        f"scored {summary.scored:,} of {summary.rows:,} rows in {summary.seconds:.1f} s "
        f"({summary.rows_per_second:,.0f} rows/s){'; ' + errors if errors else ''}",
        err=True,
    )
    if summary.output:
        click.echo(f"output: {summary.output}", err=True)


@cli.command()
@config_options
@click.option(
    "--cells",
    default="rnn,gru,lstm",
    show_default=True,
    metavar="A,B",
    help="Recurrent cell types to compare, comma-separated: rnn, gru, lstm.",
)
@click.option(
    "--directions",
    default=None,
    metavar="A,B",
    help="Also compare directions, e.g. bi,uni (default: the config's model.bidirectional only).",
)
@click.option(
    "--seeds",
    default=None,
    metavar="A,B|A-B",
    help="Train every cell once per seed (training.seed, e.g. 13,14,15 or 13-17) and give the mean and "
    "standard deviation over them, each seed's figures, and on how many seeds one cell beat another "
    "(default: the config's seed only). One seed cannot tell apart differences smaller than the "
    "seed-to-seed spread.",
)
@click.option(
    "--variant",
    "variant_settings",
    type=(str, str),
    multiple=True,
    metavar="NAME KEY=VALUE",
    help="Also train every cell (and seed) with KEY set to VALUE, as an arm of its own named NAME, beside the "
    "config as it is, e.g. --variant attention model.pooling=max+attention; repeat the name for a second "
    "setting, or give other names for more arms. Runs: <experiment>-<cell>-<NAME>[-seed<N>]. With --seeds "
    "the reading pairs each arm with the config seed by seed. Settings that change the prepared data "
    "(seed, data, tokenize, split, vocab) or that compare sets itself are refused.",
)
@click.option("--epochs", type=click.IntRange(1), default=None, help="training.max_epochs for every cell.")
@click.option(
    "--resamples",
    default=1000,
    show_default=True,
    type=click.IntRange(100),
    help="Bootstrap resamples for the confidence intervals.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=None,
    help="Where to train (default: training.device from the config).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="List the runs the comparison would make, each marked reuse (finished with its config), resume "
    "(an interrupted run's checkpoint) or train, and stop: nothing is prepared, trained or evaluated.",
)
def compare(
    config_path: str,
    overrides: tuple[str, ...],
    cells: str,
    directions: str | None,
    seeds: str | None,
    variant_settings: tuple[tuple[str, str], ...],
    epochs: int | None,
    resamples: int,
    device: str | None,
    dry_run: bool,
) -> None:
    """Train and evaluate one model per cell type (RNN, GRU, LSTM) with otherwise identical settings.

    Each cell is an experiment of its own, `<experiment>-<cell>` (runs/, reports/; `-<NAME>` after it for
    a --variant arm, `-seed<N>` for each --seeds seed other than the config's), reading the experiment's
    prepared data; finished runs are reused, interrupted ones resumed. Writes
    reports/<experiment>-compare/: compare.html (self-contained), compare.md, compare.json and
    convergence / training-loss plots. --epochs and --set apply to every cell and arm alike.
    """
    from sentiment.evaluation.compare import (
        CELL_CHOICES,
        DIRECTION_CHOICES,
        compare_dir,
        parse_arms,
        parse_list,
        parse_seeds,
        plan,
        plan_summary,
    )
    from sentiment.evaluation.compare import compare as run_compare
    from sentiment.reporting.compare_page import summary_table

    cell_list = parse_list("--cells", cells, CELL_CHOICES)
    direction_list = parse_list("--directions", directions, list(DIRECTION_CHOICES)) if directions else None
    seed_list = parse_seeds(seeds) if seeds is not None else None
    arms = parse_arms(variant_settings)
    config = _load(config_path, (*overrides, *([f"training.max_epochs={epochs}"] if epochs else [])))
    if dry_run:
        steps = plan(config, cell_list, direction_list, seed_list, arms)
        click.echo(f"{plan_summary(steps)}; nothing was prepared, trained or evaluated (--dry-run)")
        for step in steps:
            click.echo(f"  {step.action:<6}  {step.variant.config.run_dir}")
        return
    result = run_compare(
        config,
        cell_list,
        direction_list,
        n_resamples=resamples,
        device=device,
        log=lambda line: click.echo(line, err=True),
        seeds=seed_list,
        arms=arms,
    )
    click.echo(summary_table(result))
    click.echo(f"report: {compare_dir(config) / 'compare.html'}")


@cli.command()
@click.argument("texts", nargs=-1, metavar="[TEXT]...")
@click.option(
    "--model",
    "-m",
    "model_path",
    default="runs/clothing",
    show_default=True,
    help="A trained run directory (runs/<experiment>), not its baseline.",
)
@click.option(
    "--file",
    "-f",
    "text_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Explain the texts in this file, one per line.",
)
@click.option(
    "--output",
    "-o",
    default=None,
    metavar="PATH",
    help="out.png (one image per text: out-1.png, out-2.png, ... for several) or out.html (one page). "
    "Default: a text view on the terminal, nothing written.",
)
@click.option(
    "--units",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Units per gate heatmap: those that vary most across the words.",
)
def explain(texts: tuple[str, ...], model_path: str, text_file: str | None, output: str | None, units: int) -> None:
    """Show how a trained model reads a review, word by word.

    Re-runs the recurrent layer step by step with the model's weights and plots, per word,
    the gates (LSTM input/forget/output gates, candidate and cell state; GRU reset/update gates
    and candidate; a plain RNN's hidden state), the class probabilities after each prefix, and
    each word's contribution (how much p(predicted class) drops when it is replaced by <unk>).

    \b
    Example:
      sentiment explain -m runs/clothing "not perfect, but pretty good" -o explain.png
    """
    from sentiment.evaluation.explain import explain_texts, load_explainable_model, read_texts
    from sentiment.reporting.explain_page import format_explanation, write_explanations

    chosen = [*texts, *(read_texts(text_file) if text_file else [])]
    if output is not None and not output.lower().endswith((".png", ".html")):
        raise SentimentError(f"-o {output}: write a .png (one image per text) or an .html page")
    explanations = explain_texts(load_explainable_model(model_path), chosen)
    if output is None:
        click.echo("\n\n".join(format_explanation(e) for e in explanations))
        return
    for path in write_explanations(explanations, output, units=units):
        click.echo(f"output: {path}")


@cli.command()
@click.option(
    "--model",
    "-m",
    "model_path",
    default="runs/clothing",
    show_default=True,
    help="A trained run (runs/<experiment>), its baseline, or `vader`.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (the default answers this machine only; 0.0.0.0 for every interface).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Most texts in one request (more: 422).",
)
@click.option(
    "--max-body",
    type=click.IntRange(min=1024),
    default=1_000_000,
    show_default=True,
    help="Largest request body in bytes (more: 413).",
)
@precision_option("GET /v1/model names it.")
def serve(model_path: str, host: str, port: int, max_batch: int, max_body: int, precision: str) -> None:
    """Serve a trained run over HTTP (FastAPI under uvicorn) until Ctrl-C or SIGTERM.

    \b
    POST /v1/predict  {"texts": [...], "min_confidence": 0.8, "sentences": false}
    GET  /healthz     GET /v1/model     GET /docs (OpenAPI)

    \b
    Example:
      sentiment serve -m runs/clothing --port 8000
      curl -s localhost:8000/v1/predict -H 'content-type: application/json' -d '{"texts": ["not bad at all"]}'
    """
    from sentiment.serving.server import serve as run_server

    run_server(model_path, host=host, port=port, max_batch=max_batch, max_body=max_body, precision=precision)


def main() -> None:
    cli(prog_name="sentiment")


if __name__ == "__main__":
    main()
