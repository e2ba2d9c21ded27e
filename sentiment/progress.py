"""Progress bars on a terminal, silence in logs and CI (where the stages print one line per step);
tagged log lines for work done in parts."""

from __future__ import annotations

import sys


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True, **options):
    """A tqdm bar on stderr when it is a terminal (and `enabled`); a no-op bar otherwise."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not (enabled and sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
        **options,
    )


def tagged(log, tag: str):
    """A `log` that prefixes every line with `[tag] `: which variant or ensemble member speaks."""
    return lambda line: log(f"[{tag}] {line}")
