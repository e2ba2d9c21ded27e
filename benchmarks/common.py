"""What every benchmark shares: medians of repetitions, the machine, and the results file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from sentiment.artifacts import environment_versions

RESULTS = Path(__file__).parent / "results.json"


def median_seconds(function, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "versions": environment_versions(),
    }


def record(name: str, figures: dict, path: Path = RESULTS) -> None:
    """Merge one benchmark's figures into the results file."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = machine()
    results[name] = {**figures, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.write_text(json.dumps(results, indent=2) + "\n")


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
