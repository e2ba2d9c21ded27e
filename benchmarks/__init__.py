"""Speed and memory measurements: `python -m benchmarks` (or `make bench`). Never part of the tests."""
