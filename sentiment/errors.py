"""The project's exception types for failures a user can act on, and their exit codes.

The CLI turns a :class:`SentimentError` into one line on stderr and exit code 2 (a mistake in
the input, config or command: fix it and rerun), and a :class:`MachineFault` into one line and
exit code 1 (the machine could not do it: the disk is full, an I/O error, out of memory; the
same command can succeed once there is room). Any other exception is a bug in this package
and keeps its traceback.
"""

from __future__ import annotations

import errno

USER_ERROR = 2
MACHINE_FAULT = 1

MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.ENOMEM})
"""OS errors that say the machine ran out of something, not that the user asked for the impossible."""


class SentimentError(Exception):
    """A problem the user can fix: a bad path, column, config key, label or file."""

    exit_code = USER_ERROR


class MachineFault(SentimentError):
    """The machine could not finish the job (disk full, I/O error, out of memory)."""

    exit_code = MACHINE_FAULT


def os_error(message: str, error: OSError) -> SentimentError:
    """`message: reason` as the error type its errno calls for (disk full is the machine's fault)."""
    kind = MachineFault if error.errno in MACHINE_ERRNOS else SentimentError
    return kind(f"{message}: {error.strerror or error}")


def as_sentiment_error(error: BaseException) -> SentimentError | None:
    """An OS error or a failed allocation escaping a stage, as the one line the user needs; None
    for anything else, which is our bug and keeps its traceback."""
    if isinstance(error, SentimentError):
        return error
    if isinstance(error, OSError):
        where = error.filename2 or error.filename
        return os_error(f"cannot read or write {where}" if where else "operating system error", error)
    if isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and _is_allocation_failure(error)):
        detail = str(error).strip().splitlines()[0] if str(error).strip() else "MemoryError"
        detail = detail.split("DefaultCPUAllocator: ")[-1]  # drop torch's "[enforce fail at alloc_cpu.cpp:127]"
        return MachineFault(
            f"out of memory ({detail}); smaller model.hidden_size, training.batch_size, "
            "tokenize.max_len or --batch-size need less"
        )
    return None


def _is_allocation_failure(error: RuntimeError) -> bool:
    # torch raises a plain RuntimeError when its CPU allocator fails, OutOfMemoryError on CUDA.
    text = str(error)
    return "can't allocate memory" in text or "out of memory" in text.lower()
