"""Writing outputs safely and saying what produced them.

Every stage writes into a temporary sibling directory and renames it into place at the end,
so an interrupted run never leaves a directory that a later stage would accept. A stage only
ever replaces a directory holding the same kind of output (`OUTPUT_MARKERS`), and SIGTERM is
turned into an interrupt (`sigterm_as_interrupt`) so that the clean-up runs for it as for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from sentiment.errors import SentimentError, os_error

TRACKED_PACKAGES = ("sentiment", "torch", "spacy", "datasets", "scikit-learn", "numpy")
OUTPUT_MARKERS = ("manifest.json", "run.json", "metrics.json", "compare.json", "baseline.json")
"""The file that identifies each stage's output directory (prepared data, run, report, comparison,
baseline). An existing directory is replaced only by new content with the same marker."""


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `target` only if the block succeeds."""
    target = Path(target)
    parent = _writable_parent(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; outputs are for reading
        yield staging
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_directory(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an old `target` is moved aside first and removed after.

    POSIX rename cannot replace a non-empty directory, so the old directory is renamed to a
    sibling, the new one renamed in, and only then the old one deleted. If the second rename
    fails, the old directory is put back. A non-empty `target` that is not the same kind of
    output (`OUTPUT_MARKERS`) is refused: a stage replaces only what a stage like it wrote.
    """
    if not target.exists():
        os.replace(staging, target)
        return
    check_replaceable(staging, target)
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, retired)  # replaces the empty placeholder directory
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def check_replaceable(staging: Path, target: Path) -> None:
    if not target.is_dir():
        raise SentimentError(f"refusing to replace {target}: it is not a directory")
    if not any(target.iterdir()):
        return
    markers = [name for name in OUTPUT_MARKERS if (staging / name).is_file()]
    if not any((target / name).is_file() for name in markers):
        wanted = f" (it has no {markers[0]})" if markers else ""
        raise SentimentError(
            f"refusing to replace {target}: it holds files that this stage did not write{wanted}; "
            "move it away or write elsewhere"
        )


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that every clean-up on the way out runs."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` instead of killing the process at once, which
    would leave the atomic writers' hidden temporary files behind. Only the main thread can set a
    handler, and one the caller set is kept."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def interrupt(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    write_bytes_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_bytes_atomic(path: str | Path, payload: bytes) -> None:
    with atomic_file(path) as temporary, open(temporary, "wb") as stream:
        stream.write(payload)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, what: str = "") -> Iterator[str]:
    """A temporary file beside `path`, renamed onto it when the block succeeds and removed when
    it fails, so readers never see half a file and a failed run leaves the old one. An OSError
    (a full disk, a directory in the way) becomes one error naming the file meant; `what`
    names it in that message ("the output")."""
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise os_error(f"cannot write {name}", error) from None
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are for reading
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise os_error(f"cannot write {name}", error) from None
        raise


def read_json(path: str | Path, what: str = "file") -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SentimentError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SentimentError(f"{path}: not valid JSON ({error})") from None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def environment_versions() -> dict[str, str]:
    """Python and the versions of the packages that shape results, for the record."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _writable_parent(path: Path) -> Path:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SentimentError(f"cannot create directory {parent}: {error.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise SentimentError(f"cannot write to {parent}: permission denied")
    return parent
