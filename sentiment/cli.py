"""The `sentiment` command: one small function per stage over the library.

Heavy libraries (torch, spaCy, datasets, scikit-learn) are imported inside the commands so
that `sentiment --help` answers at once. A `SentimentError` (a mistake the user can fix)
becomes one line on stderr and exit code 2; anything else is our bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click

from sentiment.errors import SentimentError

DEFAULT_CONFIG = "configs/clothing.toml"


class StageGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SentimentError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


def config_options(function):
    """`--config` and repeatable `--set key=value`, shared by every stage that reads an experiment."""
    function = click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override a config value, e.g. --set vocab.min_freq=3 --set training.max_epochs=4 (repeatable).",
    )(function)
    return click.option(
        "--config", "-c", "config_path", default=DEFAULT_CONFIG, show_default=True,
        type=click.Path(dir_okay=False), help="Experiment config (TOML) under configs/.",
    )(function)


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
      score     score your own review files with a trained run

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
    from sentiment.prepare import prepare as run_prepare

    config = _load(config_path, overrides)
    prepared = run_prepare(config, force=force, log=lambda line: click.echo(line, err=True))
    manifest = prepared.manifest
    click.echo(f"prepared {manifest['rows']['kept']} reviews ({manifest['label_scheme']} scheme) "
               f"in {manifest['seconds']} s; vocabulary {manifest['vocab']['size']} words")
    for split, counts in manifest["counts"].items():
        shown = ", ".join(f"{label} {count}" for label, count in counts.items())
        click.echo(f"  {split:<10} {sum(counts.values()):>6}  ({shown})")
    dropped = manifest["rows"]["dropped"]
    if dropped:
        click.echo("  dropped: " + ", ".join(f"{reason} {count}" for reason, count in dropped.items()))
    click.echo(f"output: {prepared.directory}")


@cli.command()
@config_options
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where to train (default: training.device from the config, `auto` = CUDA when present).")
def train(config_path: str, overrides: tuple[str, ...], resume: bool, device: str | None) -> None:
    """Train the recurrent classifier on prepared data.

    Evaluates on the validation split every epoch, keeps the best epoch by
    training.select_metric (default macro-F1) and stops early after training.patience
    epochs without improvement. Writes runs/<experiment>/: model.safetensors, config.json,
    vocab.json, labels.json, metrics.jsonl, learning_curves.png, run.json.
    """
    from sentiment.training import train as run_train

    config = _load(config_path, overrides)
    run = run_train(config, resume=resume, device=device, log=lambda line: click.echo(line, err=True))
    best = run.info["best_validation"]
    click.echo(f"best validation macro-F1 {best['val_macro_f1']:.4f} (accuracy {best['val_accuracy']:.4f}) "
               f"at epoch {run.info['best_epoch']}; {run.info['train_seconds']:.0f} s")
    click.echo(f"output: {run.directory}")


def main() -> None:
    cli(prog_name="sentiment")


if __name__ == "__main__":
    main()
