"""Prepare throughput on the real clothing reviews: spaCy tokens/s and the whole stage in seconds.

Target on a 2-core machine: tokenization above 400k tokens/s, the whole prepare under 15 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import median_seconds, print_table, record
from sentiment.config import load_config
from sentiment.data.prepare import prepare
from sentiment.data.sources import load_source
from sentiment.data.text import Tokenizer


def run(quick: bool = False) -> dict:
    config = load_config("configs/clothing.toml")
    texts = [text for text in load_source(config.data, config.paths.data).splits["all"].texts if text]
    if quick:
        texts = texts[:5000]
    tokenizer = Tokenizer(lowercase=config.tokenize.lowercase)
    tokens = sum(len(t) for t in tokenizer.pipe(texts))  # also warms spaCy's lexeme cache
    cold = Tokenizer(lowercase=config.tokenize.lowercase)
    started = time.perf_counter()
    list(cold.pipe(texts))
    cold_seconds = time.perf_counter() - started
    warm_seconds = median_seconds(lambda: list(tokenizer.pipe(texts)), repeats=3)

    with tempfile.TemporaryDirectory() as scratch:
        staged = load_config("configs/clothing.toml", [f"paths.data={scratch}"])
        # Reuse the fetched raw file so the figure is the stage's own work, not the download.
        scratch_raw = Path(scratch) / "raw"
        scratch_raw.mkdir()
        for raw in (Path(config.paths.data) / "raw").glob("womens_clothing*"):
            (scratch_raw / raw.name).symlink_to(raw.resolve())
        prepare_seconds = median_seconds(
            lambda: prepare(staged, force=True, log=lambda *_: None), repeats=1 if quick else 3
        )

    figures = {
        "reviews": len(texts),
        "tokens": tokens,
        "tokens_per_second_cold": round(tokens / cold_seconds),
        "tokens_per_second_warm": round(tokens / warm_seconds),
        "prepare_seconds": round(prepare_seconds, 2),
        "targets": {"tokens_per_second": 400_000, "prepare_seconds": 15},
    }
    print_table(
        "prepare (clothing)",
        [
            ("reviews / tokens", f"{len(texts):,} / {tokens:,}"),
            ("tokenize, first pass", f"{figures['tokens_per_second_cold']:,} tokens/s"),
            ("tokenize, warm (median of 3)", f"{figures['tokens_per_second_warm']:,} tokens/s  (target > 400,000)"),
            ("whole prepare stage", f"{prepare_seconds:.1f} s  (target < 15 s)"),
        ],
    )
    record("prepare", figures)
    return figures


if __name__ == "__main__":
    run()
