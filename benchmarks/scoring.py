"""Scoring throughput and memory: clothing-length reviews from a .txt file to a .csv file.

Each scoring runs in a fresh subprocess (load the model, `score_files`, as `sentiment score`
does) that reports its own peak RSS, so the small and the large input do not contaminate
each other. The reference for the ratio is the bare model forward pass (pre-encoded ids, the
same chunks, batches and threads as the scorer), measured in this same run: the two alternate,
`--pairs` times (default 3); the median pair's ratio is reported beside every pair's, and the
pooled ratio (all pairs' bare seconds over all their end-to-end seconds). `--quick --pairs 12`
times many short pairs (20k reviews each), which follow this machine's drift more closely.

Needs a trained run (default `runs/clothing`); it never trains one. The reviews are real
texts from `data/prepared/clothing` (train and test), drawn with replacement, so an input holds
each text about five times: tokenizing (`WordIds`, which keeps each word chunk's ids) is also
timed alone on the distinct texts, where every chunk is new once, against spaCy's own pipe.
Target on a 2-core machine: at least 0.85x the bare forward pass end to end, and 3,000 reviews/s with the default model
(bi-LSTM of 64 units per direction, GloVe 50d, max+mean pooling), and peak memory that does not grow with the input
(100k vs 1M lines). At 64 units (128 until session 44) the forward pass is about 2.3 times faster and tokenizing is
not, so the ratio falls (0.64x against 0.76x) while end to end is 1.6-1.9 times faster; faster tokenizing of new
text (session 45) took it to 0.71x at full size, and grouping the traced network's batches 32 to a call (session 46)
to 0.76-0.77x, and holding off Python's garbage collector while scoring, with a balanced tail (session 47), to
0.77-0.81x (docs/RESULTS.md).
`--precision bfloat16` scores the same reviews in float32 and in bfloat16 (`score --precision`), alternating, and
counts the labels and probabilities that differ.
Other jobs on the machine slow every figure: the load average
before and after is recorded with them, and CPU-seconds per review are less sensitive to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import print_table, record
from sentiment.model.precision import PRECISIONS, check_precision

DEFAULT_MODEL = "runs/clothing"
PREPARED = Path("data/prepared/clothing")
BATCH_SIZE = 64
"""The CLI's default `--batch-size`."""


def run(quick: bool = False, model: str = DEFAULT_MODEL, pairs: int = 3) -> dict:
    _require_model(model)
    small, large = (20_000, 100_000) if quick else (100_000, 1_000_000)
    load_before = os.getloadavg()[0]
    texts = _real_reviews()
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as scratch:
        inputs = {n: _write_reviews(texts, n, Path(scratch) / f"reviews_{n}.txt") for n in (small, large)}
        # The ratio's two sides alternate, `pairs` times: this machine's speed drifts by 10-20%
        # from one minute to the next, which one end-to-end run against one forward pass can't see.
        measured = []
        for _ in range(pairs):
            scored = _score_in_subprocess(model, inputs[small], Path(scratch) / f"scores_{small}.csv")
            reference = _bare_forward(_require_model(model), texts, small)  # a fresh model: a cold tokenizer
            measured.append((scored, reference, scored["rows"] / scored["seconds"] / reference["forward_rate"]))
        runs = {large: _score_in_subprocess(model, inputs[large], Path(scratch) / f"scores_{large}.csv")}
    distinct = _tokenize_distinct(_require_model(model), texts)
    load_after = os.getloadavg()[0]
    ratios = [ratio for _, _, ratio in measured]
    # All pairs pooled: the bare forward pass's seconds over end to end's, summed over the pairs.
    pooled = sum(small / reference["forward_rate"] for _, reference, _ in measured) / sum(
        scored["seconds"] for scored, _, _ in measured
    )
    runs[small], reference, ratio = sorted(measured, key=lambda pair: pair[2])[len(measured) // 2]  # the median pair

    main = runs[small]
    figures = {
        "model": model,
        "batch_size": BATCH_SIZE,
        "workers": main["workers"],
        "chunk_size": main["chunk_size"],
        "reviews": small,
        "reviews_large": large,
        "reviews_per_second": round(main["rows"] / main["seconds"]),
        "reviews_per_second_with_startup": round(main["rows"] / main["wall_seconds"]),
        "cpu_us_per_review": round(main["cpu_seconds"] / main["rows"] * 1e6),
        "forward_reviews_per_second": round(reference["forward_rate"]),
        "tokenize_reviews_per_second": round(reference["tokenize_rate"]),
        "tokenize_distinct_reviews_per_second": round(distinct["word_ids"]),
        "spacy_pipe_distinct_reviews_per_second": round(distinct["spacy"]),
        "ratio_to_forward": round(ratio, 2),
        "ratios_to_forward": [round(ratio, 3) for ratio in ratios],
        "ratio_to_forward_pooled": round(pooled, 3),
        "ratio_ceiling": round(reference["ceiling"], 2),
        "reviews_per_second_large": round(runs[large]["rows"] / runs[large]["seconds"]),
        "peak_rss_mb": main["peak_rss_mb"],
        "peak_rss_mb_large": runs[large]["peak_rss_mb"],
        "rss_after_model_load_mb": main["rss_after_load_mb"],
        "peak_rss_growth": round(runs[large]["peak_rss_mb"] / main["peak_rss_mb"], 3),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "targets": {"reviews_per_second": 3000, "peak_rss_growth": 1.1},
    }
    print_table(
        f"scoring ({model}, batch {BATCH_SIZE}, {main['workers']} workers)",
        [
            (
                f"{small:,} reviews, end to end",
                f"{figures['reviews_per_second']:,} reviews/s  (target >= 3,000); "
                f"{figures['reviews_per_second_with_startup']:,}/s with start-up and model load",
            ),
            ("CPU time per review", f"{figures['cpu_us_per_review']} us"),
            (
                "bare forward, same batches",
                f"{figures['forward_reviews_per_second']:,} reviews/s  "
                f"(end to end = {figures['ratio_to_forward']:.2f} x forward: the median of "
                f"{', '.join(f'{ratio:.2f}' for ratio in ratios)}, each pair timed back to back)",
            ),
            (
                f"the {pairs} pairs pooled",
                f"{figures['ratio_to_forward_pooled']:.2f} x forward (the bare passes' seconds over end to end's)",
            ),
            ("tokenize alone, one thread", f"{figures['tokenize_reviews_per_second']:,} reviews/s"),
            (
                f"the same on the {len(set(texts)):,} distinct texts",
                f"{figures['tokenize_distinct_reviews_per_second']:,} reviews/s, against spaCy's pipe "
                f"alone at {figures['spacy_pipe_distinct_reviews_per_second']:,}",
            ),
            (
                "ceiling of the ratio",
                f"{figures['ratio_ceiling']:.2f} x forward, if tokenizing and the forward pass shared "
                f"the {main['workers']} workers' cores without a moment idle",
            ),
            (f"{large:,} reviews, end to end", f"{figures['reviews_per_second_large']:,} reviews/s"),
            (
                "peak RSS",
                f"{main['peak_rss_mb']:,} MB at {small:,}, {runs[large]['peak_rss_mb']:,} MB at {large:,} "
                f"(x{figures['peak_rss_growth']}; {main['rss_after_load_mb']:,} MB after loading the model)",
            ),
            ("load average before / after", f"{load_before:.1f} / {load_after:.1f} on {os.cpu_count()} cores"),
        ],
    )
    record("scoring", figures)
    return figures


def run_ray(quick: bool = False, model: str = DEFAULT_MODEL) -> dict:
    """The same reviews through the local engine and through `--engine ray` (a local Ray instance
    on this machine's cores), each in its own process, in this run; Ray's start-up apart."""
    from sentiment.serving.ray_engine import score_with_ray

    _require_model(model)
    n = 20_000 if quick else 100_000
    texts = _real_reviews()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as scratch:
        reviews = _write_reviews(texts, n, Path(scratch) / "reviews.txt")
        local = _score_in_subprocess(model, reviews, Path(scratch) / "local.parquet")
        started = time.perf_counter()
        summary = score_with_ray(model, [str(reviews)], Path(scratch) / "ray-out", batch_size=1024)
        wall = time.perf_counter() - started
    local_rate = local["rows"] / local["seconds"]
    ray_rate = summary.rows / (wall - summary.startup_seconds)
    cores = os.cpu_count() or 1
    figures = {
        "model": model,
        "reviews": n,
        "cores": cores,
        "local_reviews_per_second": round(local_rate),
        "ray_reviews_per_second": round(ray_rate),
        "ray_reviews_per_second_with_startup": round(summary.rows / wall),
        "ray_startup_seconds": round(summary.startup_seconds, 1),
        "ratio_ray_to_local": round(ray_rate / local_rate, 2),
    }
    print_table(
        f"scoring, Ray Data vs the local engine ({model}, {n:,} reviews, {cores} cores)",
        [
            ("local engine, end to end", f"{figures['local_reviews_per_second']:,} reviews/s"),
            (
                "Ray, after start-up",
                f"{figures['ray_reviews_per_second']:,} reviews/s (ratio to local {figures['ratio_ray_to_local']:.2f})",
            ),
            (
                "Ray, with start-up",
                f"{figures['ray_reviews_per_second_with_startup']:,} reviews/s; "
                f"start-up {figures['ray_startup_seconds']} s",
            ),
        ],
    )
    record("scoring_ray", figures)
    return figures


def run_precision(quick: bool = False, model: str = DEFAULT_MODEL, pairs: int = 3) -> dict:
    """The same reviews scored end to end in float32 and in bfloat16 (`score --precision`), each in
    its own process, alternating `pairs` times; the bare forward pass in each; and how far the
    bfloat16 scores are from float32's (labels that differ, the largest probability difference)."""
    import csv

    from sentiment.errors import SentimentError

    try:
        check_precision("bfloat16")
    except SentimentError as error:
        raise SystemExit(f"benchmarks.scoring --precision bfloat16: {error}") from None
    _require_model(model)
    n = 20_000 if quick else 100_000
    texts = _real_reviews()
    rates: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    forward: dict[str, list[float]] = {precision: [] for precision in PRECISIONS}
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as scratch:
        reviews = _write_reviews(texts, n, Path(scratch) / "reviews.txt")
        outputs = {precision: Path(scratch) / f"{precision}.csv" for precision in PRECISIONS}
        for _ in range(pairs):
            for precision in PRECISIONS:
                scored = _score_in_subprocess(model, reviews, outputs[precision], precision)
                rates[precision].append(scored["rows"] / scored["seconds"])
                forward[precision].append(_bare_forward(_require_model(model, precision), texts, n)["forward_rate"])
        with open(outputs["float32"], newline="") as a, open(outputs["bfloat16"], newline="") as b:
            rows = list(zip(csv.DictReader(a), csv.DictReader(b)))
    probability_columns = [column for column in rows[0][0] if column.startswith("prob_")]
    differing = sum(x["label"] != y["label"] for x, y in rows)
    largest = max(abs(float(x[c]) - float(y[c])) for x, y in rows for c in probability_columns if x[c])
    speedups = sorted(b / a for a, b in zip(rates["float32"], rates["bfloat16"]))
    figures = {
        "model": model,
        "reviews": n,
        "pairs": pairs,
        "float32_reviews_per_second": round(statistics.median(rates["float32"])),
        "bfloat16_reviews_per_second": round(statistics.median(rates["bfloat16"])),
        "speedup_end_to_end": round(speedups[len(speedups) // 2], 2),
        "speedups_end_to_end": [round(speedup, 3) for speedup in speedups],
        "float32_forward_reviews_per_second": round(statistics.median(forward["float32"])),
        "bfloat16_forward_reviews_per_second": round(statistics.median(forward["bfloat16"])),
        "speedup_forward": round(statistics.median(forward["bfloat16"]) / statistics.median(forward["float32"]), 2),
        "labels_differing": differing,
        "largest_probability_difference": round(largest, 4),
    }
    print_table(
        f"scoring, bfloat16 vs float32 ({model}, {n:,} reviews, {pairs} pairs, {os.cpu_count()} cores)",
        [
            (
                "end to end",
                f"{figures['float32_reviews_per_second']:,} -> {figures['bfloat16_reviews_per_second']:,} reviews/s "
                f"(x{figures['speedup_end_to_end']:.2f}, the median pair of "
                f"{', '.join(f'{speedup:.2f}' for speedup in speedups)})",
            ),
            (
                "bare forward, same batches",
                f"{figures['float32_forward_reviews_per_second']:,} -> "
                f"{figures['bfloat16_forward_reviews_per_second']:,} reviews/s (x{figures['speedup_forward']:.2f})",
            ),
            ("labels that differ", f"{differing:,} of {len(rows):,}"),
            ("largest probability difference", f"{largest:.4f}"),
        ],
    )
    record("scoring_precision", figures)
    return figures


def _require_model(model: str, precision: str = "float32"):
    """The trained run, loaded as the scorer loads it (its forward pass is the reference)."""
    from sentiment.errors import SentimentError
    from sentiment.serving.inference import load_model

    try:
        return load_model(model, batch_size=BATCH_SIZE, precision=precision)
    except SentimentError as error:
        raise SystemExit(
            f"benchmarks.scoring needs a trained run: {error}\n"
            f"train one with `sentiment train --config configs/clothing.toml` "
            f"(or pass --model DIR); this benchmark does not train"
        ) from None


def _real_reviews() -> list[str]:
    import datasets

    if not (PREPARED / "train").is_dir():
        raise SystemExit(f"no prepared clothing reviews in {PREPARED}: run `sentiment prepare` first")
    texts = [text for split in ("train", "test") for text in datasets.load_from_disk(str(PREPARED / split))["text"]]
    return [text for text in texts if text and "\n" not in text]


def _write_reviews(texts: list[str], n: int, path: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as stream:
        for start in range(0, n, 100_000):
            picks = rng.integers(0, len(texts), min(100_000, n - start))
            stream.write("\n".join(texts[i] for i in picks) + "\n")
    return path


def _score_in_subprocess(model: str, reviews: Path, output: Path, precision: str = "float32") -> dict:
    command = [sys.executable, "-m", "benchmarks.scoring", "--child", model, str(reviews), str(output)]
    command += ["--child-precision", precision]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"scoring {reviews} failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["wall_seconds"] = time.perf_counter() - started
    return figures


def _child(model: str, reviews: str, output: str, precision: str = "float32") -> None:
    """One scoring, as the CLI does it; prints its figures as one JSON line."""
    from sentiment.serving.inference import load_model
    from sentiment.serving.scoring import CHUNK_SIZE, default_workers, score_files

    loaded = load_model(model, batch_size=BATCH_SIZE, precision=precision)
    rss_after_load = _peak_rss_mb()
    cpu = time.process_time()
    summary = score_files(loaded, [reviews], output)
    print(
        json.dumps(
            {
                "rows": summary.rows,
                "seconds": summary.seconds,
                "cpu_seconds": time.process_time() - cpu,
                "workers": default_workers(loaded),
                "chunk_size": CHUNK_SIZE,
                "rss_after_load_mb": rss_after_load,
                "peak_rss_mb": _peak_rss_mb(),
            }
        )
    )


def _peak_rss_mb() -> int:
    """This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries that over
    from the parent across fork+exec, so a child of a big benchmark process reported the
    parent's size. VmHWM belongs to this process's own address space."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024  # kB
    raise SystemExit("benchmarks.scoring measures memory from /proc/self/status (Linux only)")


def _tokenize_distinct(loaded, texts: list[str]) -> dict:
    """Reviews/s of the scorer's tokenizing, cold, over each distinct text once, and of spaCy's
    own `pipe` (cleaning and spaCy's tokenizer, strings made) over the same texts."""
    distinct = list(dict.fromkeys(texts))
    started = time.perf_counter()
    for _ in loaded.scoring_inputs(distinct):
        pass
    word_ids = len(distinct) / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in loaded.tokenizer.pipe(distinct):
        pass
    return {"word_ids": word_ids, "spacy": len(distinct) / (time.perf_counter() - started)}


def _bare_forward(loaded, texts: list[str], n: int) -> dict:
    """Tokenize alone, then the forward pass alone over the scorer's chunks, batches and threads."""
    import numpy as np
    import torch

    from sentiment.model.batching import predict_ids
    from sentiment.serving.scoring import CHUNK_SIZE, _one_torch_thread_per_worker, chunked, default_workers

    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.integers(0, len(texts), n)]
    started = time.perf_counter()
    inputs = list(loaded.scoring_inputs(sample))  # what score reads each text into: token ids
    tokenize_rate = n / (time.perf_counter() - started)
    max_len = loaded.max_len
    workers = default_workers(loaded)
    chunks = list(chunked((ids[:max_len] for ids in inputs), CHUNK_SIZE, workers))  # the scorer's chunks

    network = loaded.inference_network  # what the scorer runs: traced where that is exact

    def forward(ids):
        with torch.inference_mode():
            return predict_ids(network, ids, BATCH_SIZE, loaded.device)

    with _one_torch_thread_per_worker(workers), ThreadPoolExecutor(workers) as pool:
        forward(chunks[0][:BATCH_SIZE])  # warm up oneDNN
        started = time.perf_counter()
        list(pool.map(forward, chunks))
        forward_rate = n / (time.perf_counter() - started)
    # Per review the forward pass costs workers / forward_rate core-seconds and tokenizing
    # 1 / tokenize_rate more; with both on the same cores end to end can reach at most
    # workers / (sum of the two), this share of the forward pass's rate.
    ceiling = 1.0 / (1.0 + forward_rate / (workers * tokenize_rate))
    return {"tokenize_rate": tokenize_rate, "forward_rate": forward_rate, "ceiling": ceiling}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k and 100k reviews instead of 100k and 1M")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"trained run to score with (default {DEFAULT_MODEL})")
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="ray: the local engine against `--engine ray` on the same reviews",
    )
    parser.add_argument(
        "--pairs", type=int, default=3, help="end-to-end / bare forward pairs timed for the ratio (default 3)"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="bfloat16: float32 against `score --precision bfloat16` on the same reviews",
    )
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("--child-precision", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child, precision=args.child_precision)
    else:
        if args.precision == "bfloat16":
            run_precision(quick=args.quick, model=args.model, pairs=args.pairs)
        elif args.engine == "ray":
            run_ray(quick=args.quick, model=args.model)
        else:
            run(quick=args.quick, model=args.model, pairs=args.pairs)
