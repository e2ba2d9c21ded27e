"""Using a trained run: the Python API, batch scoring of files, the Ray engine and the HTTP server.

inference     load_model and the SentimentModel API (predict, predict_tokens, sentence readings)
scoring       score: input files in, one output row per input row, chunk by chunk on worker threads
input_files   reading those files: one record per row of .txt, .csv, .tsv, .jsonl, .parquet or stdin
output_files  writing the scored rows: CSV, JSON lines or Parquet, renamed into place when complete
batch_scorer  the engine-neutral batch function that score and the Ray engine share
ray_engine    score --engine ray: map_batches over a Ray cluster
server        serve: the FastAPI app under uvicorn
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentiment.serving.batch_scorer import BatchScorer
    from sentiment.serving.inference import load_model
    from sentiment.serving.server import create_app

__all__ = ["BatchScorer", "create_app", "load_model"]

# Imported on first use, so that `import sentiment.serving.scoring` does not load FastAPI or torch.
_HOMES = {
    "BatchScorer": "sentiment.serving.batch_scorer",
    "create_app": "sentiment.serving.server",
    "load_model": "sentiment.serving.inference",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'sentiment.serving' has no attribute {name!r}")
