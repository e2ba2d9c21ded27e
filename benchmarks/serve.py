"""HTTP serving under load: `sentiment serve` in its own process, 16 concurrent localhost clients.

Two bounded runs (each stops by itself): requests of 1 text and requests of 32 texts, from
real clothing reviews. Reported: requests and texts per second, p50/p99 latency, errors (must
be 0), and the same texts scored by direct `predict` in this run as the reference for the
ratio. The clients share the machine with the server, so they are kept cheap: keep-alive
HTTP/1.1 on asyncio streams (`_Connection`); the same runs with httpx's AsyncClient, whose own
CPU cost per request is about the server's, are reported beside them. Only 127.0.0.1 is ever
contacted. Needs a trained run (default `runs/clothing`). `--precision bfloat16` serves and
predicts in bfloat16 (`serve --precision`; results under `serve_bfloat16`).
Targets on a 2-core machine: batched requests >= 0.7x direct predict; p99 of single-text
requests under 100 ms at 16 clients.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import print_table, record

DEFAULT_MODEL = "runs/clothing"
CLIENTS = 16


def run(quick: bool = False, model: str = DEFAULT_MODEL, precision: str = "float32") -> dict:

    from sentiment.serving.inference import load_model

    if not Path(model).is_dir():
        raise SystemExit(f"benchmarks serve: no trained run at {model}; run `make demo` first")
    texts = _reviews()
    requests = {1: 400 if quick else 2000, 32: 60 if quick else 300}
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sentiment", "serve", "--model", model, "--port", str(port), "--precision", precision],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server)
        figures: dict = {"model": model, "clients": CLIENTS, "precision": precision}
        for size, count in requests.items():
            for kind, prefix in (("streams", ""), ("httpx", "httpx_")):
                figures[f"{prefix}batch_{size}"] = asyncio.run(_load(base, texts, size, count, kind))
    finally:
        server.terminate()
        server.wait(timeout=30)
    loaded = load_model(model, precision=precision)
    sample = [texts[i % len(texts)] for i in range(32 * 40)]
    loaded.predict(sample[:64])  # warm up
    started = time.perf_counter()
    for start in range(0, len(sample), 32):
        loaded.predict(sample[start : start + 32])
    direct = len(sample) / (time.perf_counter() - started)
    figures["direct_predict_texts_per_second"] = round(direct)
    figures["batched_ratio_to_direct"] = round(figures["batch_32"]["texts_per_second"] / direct, 2)
    record("serve" if precision == "float32" else f"serve_{precision}", figures)
    rows = [
        (
            f"{size} text(s) per request{' (httpx clients)' if prefix else ''}",
            f"{f['requests_per_second']:,} req/s, {f['texts_per_second']:,} texts/s, "
            f"p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, errors {f['errors']}",
        )
        for prefix in ("", "httpx_")
        for size, f in ((s, figures[f"{prefix}batch_{s}"]) for s in requests)
    ]
    rows.append(("direct predict, 32 per call", f"{figures['direct_predict_texts_per_second']:,} texts/s"))
    rows.append(("batched / direct", f"{figures['batched_ratio_to_direct']:.2f}"))
    print_table(f"serve: {model} ({precision}), {CLIENTS} clients on localhost", rows)
    return figures


class _Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the load generator's own cost per
    request stays a small fraction of a millisecond. (httpx's AsyncClient spends about 5 ms of
    CPU per request here, a third of the two cores the server needs; `run` measures with it
    too, beside these.)"""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + body)
        status_line = await self.reader.readline()
        length, closing = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                closing = True
        await self.reader.readexactly(length)
        if closing:
            await self.close()
        return int(status_line.split()[1])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _load(base: str, texts: list[str], size: int, count: int, client_kind: str = "streams") -> dict:
    import json

    import httpx

    rng = random.Random(size)
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    for _ in range(count):
        queue.put_nowait(json.dumps({"texts": [texts[rng.randrange(len(texts))] for _ in range(size)]}).encode())
    host, port = base.removeprefix("http://").split(":")

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal errors
        connection = _Connection(host, int(port))
        try:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    if client_kind == "httpx":
                        headers = {"content-type": "application/json"}
                        response = await session.post(f"{base}/v1/predict", content=body, headers=headers, timeout=60)
                        status = response.status_code
                    else:
                        status = await asyncio.wait_for(connection.post("/v1/predict", body), timeout=60)
                    errors += status != 200
                except (httpx.HTTPError, OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
                    errors += 1
                    await connection.close()
                latencies.append(time.perf_counter() - started)
        finally:
            await connection.close()

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(limits=limits) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(CLIENTS)))
        seconds = time.perf_counter() - started
    latencies.sort()

    def percentile(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {
        "client": client_kind,
        "requests": count,
        "texts_per_request": size,
        "seconds": round(seconds, 2),
        "requests_per_second": round(count / seconds),
        "texts_per_second": round(count * size / seconds),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "errors": errors,
    }


def _reviews() -> list[str]:
    from datasets import load_from_disk

    prepared = Path("data/prepared/clothing/test")
    if not prepared.is_dir():
        raise SystemExit("benchmarks serve: no prepared clothing data; run `make demo` first")
    return list(load_from_disk(str(prepared))["text"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(base: str, server: subprocess.Popen, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("benchmarks serve: the server exited at start")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("benchmarks serve: the server did not come up")
