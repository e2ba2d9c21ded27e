"""`python -m benchmarks [--quick] [NAME ...]`: run the benchmarks, print a table, write results.json."""

from __future__ import annotations

import argparse
import importlib

from sentiment.model.precision import PRECISIONS

BENCHMARKS = ["startup", "bootstrap", "prepare", "training", "scoring", "serve"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"which to run (default: all of {', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--quick", action="store_true", help="a reduced version of each, in under two minutes")
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="scoring: `ray` compares the local engine with `score --engine ray`",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="scoring: `bfloat16` compares float32 with `score --precision bfloat16`; serve: serve in bfloat16",
    )
    parser.add_argument(
        "--pairs", type=int, default=3, help="scoring: end-to-end / bare forward pairs timed for the ratio (default 3)"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        if name == "serve":
            module.run(quick=args.quick, precision=args.precision)
        elif name == "scoring" and args.precision == "bfloat16":
            module.run_precision(quick=args.quick, pairs=args.pairs)
        elif name == "scoring":
            module.run_ray(quick=args.quick) if args.engine == "ray" else module.run(quick=args.quick, pairs=args.pairs)
        else:
            module.run(quick=args.quick)


if __name__ == "__main__":
    main()
