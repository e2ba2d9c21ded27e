"""CLI start-up: `sentiment --help` against `python -c pass` (the interpreter's own start)."""

from __future__ import annotations

import subprocess
import sys

from benchmarks.common import median_seconds, print_table, record


def run(quick: bool = False) -> dict:
    repeats = 3 if quick else 7
    python = median_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeats)
    cli = median_seconds(
        lambda: subprocess.run([sys.executable, "-m", "sentiment", "--help"], check=True, capture_output=True), repeats
    )
    figures = {
        "python_seconds": round(python, 3),
        "sentiment_help_seconds": round(cli, 3),
        "ratio": round(cli / python, 2),
        "overhead_seconds": round(cli - python, 3),
    }
    print_table(
        f"CLI start-up (median of {repeats})",
        [
            ("python -c pass", f"{python * 1000:.0f} ms"),
            ("sentiment --help", f"{cli * 1000:.0f} ms  ({figures['ratio']:.1f}x)"),
        ],
    )
    record("startup", figures)
    return figures


if __name__ == "__main__":
    run()
