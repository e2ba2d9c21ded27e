"""`sentiment serve`: a real uvicorn process on a free localhost port, talked to with httpx."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from sentiment.model.precision import native_bfloat16
from sentiment.serving.inference import load_model

pytestmark = pytest.mark.slow  # trains models; `make test-fast` leaves these out

TEXTS = ["love this dress, so soft", "the zipper broke after one wash", "runs small. but the fabric is lovely!"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(run_dir, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`sentiment serve` of `run_dir` in its own process, with `options`: (base URL, process)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sentiment", "serve", "--model", str(run_dir), "--port", str(port), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server did not start: {process.stdout.read()}")
        time.sleep(0.2)
    try:
        yield base, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tiny_trained):
    """The session's tiny run served by `sentiment serve` in its own process: (base URL, run, process)."""
    from sentiment.training.run import load_run

    run = load_run(tiny_trained.run_dir)
    with serving(run.directory, "--max-batch", "8", "--max-body", "20000") as (base, process):
        yield base, run, process


def test_predictions_equal_the_python_api_to_the_bit(server):
    base, run, _ = server
    response = httpx.post(f"{base}/v1/predict", json={"texts": TEXTS, "min_confidence": 0.99}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    expected = load_model(run.directory).predict(TEXTS)
    assert body["classes"] == expected.classes
    for row, label, probabilities in zip(body["predictions"], expected.labels, expected.probabilities):
        assert row["label"] == label and row["error"] is None
        assert np.array_equal([row["probabilities"][c] for c in expected.classes], probabilities.astype(float))
        assert row["confidence"] == float(probabilities.max())
        assert row["abstained"] == (row["confidence"] < 0.99)


def test_unscorable_texts_keep_their_place_with_scores_reasons(server):
    base, _, _ = server
    body = httpx.post(f"{base}/v1/predict", json={"texts": ["great", "", 42, None, "  "]}, timeout=30).json()
    assert [row["error"] for row in body["predictions"]] == [
        None,
        "empty_text",
        "not_text",
        "missing_text",
        "empty_text",
    ]
    assert body["predictions"][1]["label"] is None and body["predictions"][0]["label"] in body["classes"]


def test_sentences_are_read_on_request(server):
    base, _, _ = server
    body = httpx.post(f"{base}/v1/predict", json={"texts": [TEXTS[2]], "sentences": True}, timeout=30).json()
    assert [s["text"] for s in body["predictions"][0]["sentences"]] == ["runs small.", "but the fabric is lovely!"]


@pytest.mark.parametrize(
    ("send", "status", "message"),
    [
        (dict(content=b'{"texts": [', headers={"content-type": "application/json"}), 422, "not valid JSON"),
        (dict(json={"texts": "not a list"}), 422, "texts: Input should be a valid list"),
        (dict(json={"texts": []}), 422, "texts: List should have at least 1 item"),
        (dict(json={"texts": ["a"] * 9}), 422, "9 texts in one request; at most 8"),
        (
            dict(json={"texts": ["a"], "min_confidence": 2}),
            422,
            "min_confidence: Input should be less than or equal to 1",
        ),
        (dict(json={"texts": ["a"], "colour": "red"}), 422, "colour: Extra inputs are not permitted"),
        (dict(json={"texts": ["a" * 30000]}), 413, "over 20,000 bytes"),
        # Chunked, so no content-length declares it: counted as it arrives.
        (dict(content=iter([b'{"texts": ["' + b"a" * 15000, b"a" * 15000 + b'"]}'])), 413, "over 20,000 bytes"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_server_goes_on(server, send, status, message):
    base, _, _ = server
    response = httpx.post(f"{base}/v1/predict", timeout=30, **send)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert httpx.post(f"{base}/v1/predict", json={"texts": ["fine"]}, timeout=30).status_code == 200


def test_model_endpoint_and_openapi_docs(server):
    base, run, _ = server
    card = httpx.get(f"{base}/v1/model", timeout=10).json()
    assert card["classes"] == run.labels and card["temperature"] == run.temperature
    assert card["config_fingerprint"] == run.config.fingerprint()
    assert card["precision"] == "float32"
    assert "/v1/predict" in httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]
    assert httpx.get(f"{base}/docs", timeout=10).status_code == 200


def test_concurrent_requests_each_get_their_own_rows(server):
    from concurrent.futures import ThreadPoolExecutor

    base, run, _ = server
    requests = [[TEXTS[i % 3], f"order {i}: " + TEXTS[(i + 1) % 3]] for i in range(16)]
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(16) as pool:
        bodies = list(pool.map(lambda texts: client.post(f"{base}/v1/predict", json={"texts": texts}).json(), requests))
    model = load_model(run.directory)
    for texts, body in zip(requests, bodies):  # merged into shared forward passes, read back per request
        expected = model.predict(texts)
        assert [row["label"] for row in body["predictions"]] == expected.labels
        got = [[row["probabilities"][c] for c in expected.classes] for row in body["predictions"]]
        np.testing.assert_allclose(got, expected.probabilities, atol=1e-5)


def test_sigterm_shuts_the_server_down_cleanly(server):
    base, _, process = server
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert "Application shutdown complete" in process.stdout.read()


@pytest.mark.skipif(not native_bfloat16(), reason="this CPU has no native bfloat16 (AVX512-BF16, AMX)")
def test_a_bfloat16_server_answers_as_the_bfloat16_api_does(tiny_trained):
    with serving(tiny_trained.run_dir, "--precision", "bfloat16") as (base, _):
        assert httpx.get(f"{base}/v1/model", timeout=10).json()["precision"] == "bfloat16"
        body = httpx.post(f"{base}/v1/predict", json={"texts": TEXTS}, timeout=30).json()
    expected = load_model(tiny_trained.run_dir, precision="bfloat16").predict(TEXTS)
    served = np.array([[row["probabilities"][c] for c in expected.classes] for row in body["predictions"]])
    np.testing.assert_array_equal(served, expected.probabilities)
    assert [row["label"] for row in body["predictions"]] == expected.labels
