"""Files from the package registries (`sentiment.data.fetch`): one download per archive, the
hash checked before anything is cached, and one clear line when a registry fails."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import tarfile
import threading
import zipfile

import pytest

import sentiment.data.fetch as fetch
from sentiment.artifacts import file_sha256
from sentiment.errors import SentimentError


def _package_bytes(members: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            data = json.dumps(content).encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def local_registry(monkeypatch):
    """An npm registry on localhost that serves one tarball (bytes set by the test), or 404."""
    served: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = served.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            if body is not None:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(fetch, "NPM_REGISTRY", f"http://127.0.0.1:{server.server_address[1]}")
    yield served
    server.shutdown()


def test_an_npm_package_is_downloaded_once_verified_and_cached(local_registry, tmp_path):
    body = _package_bytes({"package/data.json": [{"text": "ok", "class": 1}]})
    local_registry["/demo/-/demo-1.0.0.tgz"] = body
    sha = hashlib.sha256(body).hexdigest()
    spec = fetch.NpmPackage("demo", "1.0.0", sha, "demo.tgz")
    path = fetch.fetch_npm_package(spec, tmp_path)
    assert path == tmp_path / "demo.tgz" and file_sha256(path) == sha
    local_registry.clear()  # a second fetch reads the cache and never asks the registry
    assert fetch.fetch_npm_package(spec, tmp_path) == path


def test_a_wrong_hash_or_a_missing_package_is_refused_and_nothing_is_cached(local_registry, tmp_path):
    local_registry["/demo/-/demo-1.0.0.tgz"] = _package_bytes({"package/data.json": []})
    with pytest.raises(SentimentError, match=r"demo.tgz from demo@1.0.0 \(npm\) has sha256 .*refusing to use it"):
        fetch.fetch_npm_package(fetch.NpmPackage("demo", "1.0.0", "0" * 64, "demo.tgz"), tmp_path)
    with pytest.raises(SentimentError, match=r"could not download demo@2.0.0 \(npm\): .* answered 404"):
        fetch.fetch_npm_package(fetch.NpmPackage("demo", "2.0.0", "0" * 64, "demo.tgz"), tmp_path)
    assert not (tmp_path / "demo.tgz").exists() and not list(tmp_path.glob(".fetch.*"))


def test_an_unreachable_registry_fails_fast_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "NPM_REGISTRY", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(SentimentError, match=r"^could not download demo@1.0.0 \(npm\) from http://127.0.0.1:9: "):
        fetch.fetch_npm_package(fetch.NpmPackage("demo", "1.0.0", "0" * 64, "demo.tgz"), tmp_path)


def _wheel(tmp_path, members: dict[str, bytes]):
    path = tmp_path / "demo-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_files_of_one_wheel_come_from_one_download_and_are_cached(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path, {"demo/a.bin": b"alpha", "demo/b.bin": b"beta"})
    downloads = []

    def download(spec, directory):
        downloads.append(spec.requirement)
        return shutil.copy(wheel, directory)

    monkeypatch.setattr(fetch, "_download_wheel", download)
    specs = [
        fetch.WheelFile("demo", "1.0.0", f"demo/{name}.bin", hashlib.sha256(data).hexdigest(), f"{name}.bin")
        for name, data in (("a", b"alpha"), ("b", b"beta"))
    ]
    cache = tmp_path / "cache"
    paths = fetch.fetch_wheel_files(specs, cache)
    assert [p.read_bytes() for p in paths] == [b"alpha", b"beta"] and downloads == ["demo==1.0.0"]
    assert fetch.fetch_wheel_files(specs, cache) == paths and len(downloads) == 1  # cached: no download
    paths[1].write_bytes(b"altered")  # an altered copy is fetched again, the good one kept
    assert fetch.fetch_wheel_file(specs[1], cache).read_bytes() == b"beta" and len(downloads) == 2
    # One bad hash and nothing of that download is cached.
    shutil.rmtree(cache)
    bad = [specs[0], fetch.WheelFile("demo", "1.0.0", "demo/b.bin", "0" * 64, "b.bin")]
    with pytest.raises(SentimentError, match=r"demo/b.bin from demo==1.0.0 has sha256 .*refusing to use it"):
        fetch.fetch_wheel_files(bad, cache)
    assert not list(cache.iterdir())
    with pytest.raises(ValueError, match="one download serves one archive"):
        fetch.fetch_wheel_files([specs[0], fetch.WheelFile("other", "2.0", "x", "0" * 64, "x")], cache)
