"""`sentiment score --engine ray`: score corpora that outgrow one machine on Ray Data.

Each input file is read by a Ray task with the local engine's own readers (`read_records`:
the same records, row numbers and reading errors as `sentiment score`), the rows are scored by
`map_batches(BatchScorer, ...)` on a pool of actors that each load the model once, and written
as a directory of Parquet (or CSV / JSON lines) files. No scheduler of our own: Ray places the
tasks and actors on whatever cluster it is connected to (`--address`, `RAY_ADDRESS`), or on a
local one it starts. Ray is an optional extra: `pip install 'sentiment[ray]'`.

Input paths must be readable at the same path on every node (a shared file system, or one
machine); `--preserve-order` keeps the output in input order (Ray's `preserve_order`), at some
cost in parallelism.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sentiment.errors import SentimentError

OUTPUT_FORMATS = ("parquet", "csv", "jsonl")


@dataclass
class RayScoringSummary:
    rows: int
    output: str
    seconds: float
    startup_seconds: float
    """Starting or connecting to Ray, before any row was read."""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise SentimentError(
            "--engine ray needs Ray Data: pip install 'sentiment[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


def score_with_ray(
    model_path: str,
    inputs: Sequence[str],
    output_dir: str | os.PathLike,
    *,
    text_column: str = "text",
    keep_columns: Sequence[str] = (),
    keep_text: bool = False,
    input_format: str | None = None,
    output_format: str = "parquet",
    address: str | None = None,
    concurrency: int | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    batch_size: int = 1024,
    preserve_order: bool = False,
    min_confidence: float | None = None,
    sentences: bool = False,
    precision: str = "float32",
) -> RayScoringSummary:
    """Score `inputs` with the run at `model_path` on Ray Data into the directory `output_dir`;
    with `sentences`, a `sentences` column as `score --sentences` writes it (JSON text in CSV).
    `precision` is checked here against this machine's CPU (`num_gpus`: on each actor's GPU)."""
    from sentiment.serving.inference import load_model
    from sentiment.serving.input_files import check_columns, resolve_inputs

    ray = require_ray()
    if output_format not in OUTPUT_FORMATS:
        raise SentimentError(f"--output-format {output_format!r}: choose one of {', '.join(OUTPUT_FORMATS)}")
    output = Path(output_dir)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise SentimentError(f"-o {output}: with --engine ray the output is a directory; give a new or empty one")
    files = resolve_inputs(inputs, input_format)
    if any(file.path == "-" for file in files):
        raise SentimentError("--engine ray reads files, not standard input")
    keep_columns = list(dict.fromkeys(keep_columns))
    for file in files:
        check_columns(file, text_column, keep_columns)
    # Fails here, once, for a path that is not a run (or a precision this machine cannot run).
    load_model(model_path, precision="float32" if num_gpus else precision)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no per-operator progress lines
    started = time.perf_counter()
    if not ray.is_initialized():
        ray.init(
            address=address or os.environ.get("RAY_ADDRESS"),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = preserve_order
    context.enable_progress_bars = False
    # Each file is read by one task; at Ray's default block size (128 MiB) a file of a few hundred
    # thousand reviews is one block, which one actor scores while the others idle. Blocks of about
    # READ_BATCH reviews spread a file over every actor.
    context.target_max_block_size = BLOCK_BYTES
    startup = time.perf_counter() - started

    from sentiment.serving.batch_scorer import BatchScorer

    paths = ray.data.from_items(
        [{"path": file.path, "format": file.format} for file in files], override_num_blocks=len(files)
    )
    # Reading takes no CPU reservation: the scoring actors may hold every CPU, and reads must still run.
    # Each file is one call that yields column batches (not one dict per row: far less overhead).
    rows = paths.map_batches(
        _file_batches,
        batch_size=1,
        num_cpus=0,
        batch_format="pyarrow",
        fn_kwargs={"text_column": text_column, "keep_columns": keep_columns},
    )
    workers = concurrency or max(1, int(ray.available_resources().get("CPU", 1) // max(num_cpus, 1e-9)))
    scored = rows.map_batches(
        BatchScorer,
        fn_constructor_kwargs={
            "model_path": str(Path(model_path).resolve()) if Path(model_path).exists() else model_path,
            "text_column": text_column,
            "min_confidence": min_confidence,
            "keep_text": keep_text,
            "sentences": sentences,
            "nested": output_format != "csv",
            "device": "cuda" if num_gpus else "cpu",
            "precision": precision,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=workers,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
    writer = {"parquet": scored.write_parquet, "csv": scored.write_csv, "jsonl": scored.write_json}[output_format]
    writer(str(output.resolve()))
    output.mkdir(parents=True, exist_ok=True)  # Ray writes no directory for an empty result
    count = _count_rows(output, output_format)
    return RayScoringSummary(
        rows=count, output=str(output), seconds=time.perf_counter() - started, startup_seconds=startup
    )


READ_BATCH = 4096
BLOCK_BYTES = 2 * 1024 * 1024
"""Ray Data's target block size while scoring: about READ_BATCH clothing reviews (~400 bytes each)."""
"""Records per batch that a reading task hands on."""


def _file_batches(files, text_column: str, keep_columns: list[str]):
    """One input file's records as pyarrow batches (runs in a Ray task, with the local engine's reader)."""
    from itertools import islice

    import pyarrow as pa

    from sentiment.serving.input_files import InputFile, read_records

    for path, file_format in zip(files.column("path").to_pylist(), files.column("format").to_pylist()):
        records = read_records(InputFile(path, file_format), text_column, keep_columns)
        while chunk := list(islice(records, READ_BATCH)):
            columns = {
                "source": [r.source for r in chunk],
                "row": [r.row for r in chunk],
                text_column: [r.text for r in chunk],
                "error": pa.array([r.error for r in chunk], pa.string()),
            }
            for position, column in enumerate(keep_columns):
                columns[column] = pa.array(
                    [None if r.extra[position] is None else str(r.extra[position]) for r in chunk], pa.string()
                )
            yield pa.table(columns)


def _count_rows(output: Path, output_format: str) -> int:
    """Rows written, read back from the files (Parquet: from their metadata)."""
    if output_format == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(path).metadata.num_rows for path in output.glob("*.parquet"))
    if output_format == "csv":
        import pyarrow.csv as pacsv

        return sum(pacsv.read_csv(path).num_rows for path in output.glob("*.csv"))
    import pyarrow.json as pajson

    return sum(pajson.read_json(path).num_rows for path in output.glob("*.json"))
