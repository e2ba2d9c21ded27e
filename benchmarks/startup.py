"""CLI start-up: `sentiment --help` against `python -c pass` (the interpreter's own start), and
how long `prepare` takes to say that a hub dataset cannot be had without network (README: about
2 s; on a machine that reaches the hub this measures a real lookup instead)."""

from __future__ import annotations

import subprocess
import sys
import tempfile

from benchmarks.common import median_seconds, print_table, record


def run(quick: bool = False) -> dict:
    repeats = 3 if quick else 7
    python = median_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeats)
    cli = median_seconds(
        lambda: subprocess.run([sys.executable, "-m", "sentiment", "--help"], check=True, capture_output=True), repeats
    )
    with tempfile.TemporaryDirectory() as scratch:
        offline_hub = median_seconds(
            lambda: subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sentiment",
                    "prepare",
                    "--set",
                    "data.source=hub:sentiment-tests/no-such-dataset",
                    "--set",
                    f"paths.data={scratch}",
                ],
                capture_output=True,
            ),
            1 if quick else 3,
        )
    figures = {
        "python_seconds": round(python, 3),
        "sentiment_help_seconds": round(cli, 3),
        "ratio": round(cli / python, 2),
        "overhead_seconds": round(cli - python, 3),
        "hub_without_network_seconds": round(offline_hub, 2),
    }
    print_table(
        f"CLI start-up (median of {repeats})",
        [
            ("python -c pass", f"{python * 1000:.0f} ms"),
            ("sentiment --help", f"{cli * 1000:.0f} ms  ({figures['ratio']:.1f}x)"),
            ("prepare hub:... without network", f"{offline_hub:.2f} s to its error line"),
        ],
    )
    record("startup", figures)
    return figures


if __name__ == "__main__":
    run()
