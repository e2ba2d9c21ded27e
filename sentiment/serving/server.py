"""`sentiment serve`: a trained run over HTTP (FastAPI under uvicorn), scored as `score` scores files.

```python
from sentiment.serving.server import create_app
app = create_app("runs/clothing")          # mount it in your own service, or:
# sentiment serve --model runs/clothing --port 8000
```

Endpoints:

- `POST /v1/predict` with `{"texts": [...], "min_confidence": 0.8, "sentences": false}`: per
  text, in order, its `label`, every class probability, `confidence` (the top probability),
  `abstained` (confidence below `min_confidence`: the label is still given, marked), the same
  `error` reasons as `score` (a text that cannot be scored keeps its place with `label` null),
  and with `sentences` each sentence's reading;
- `GET /healthz`: the server is up and its model loaded;
- `GET /v1/model`: labels, temperature, the run's validation and test figures, the config
  fingerprint; `/docs` has the OpenAPI page FastAPI generates.

A user's mistake is a 4xx with a message naming it, never a 500: malformed JSON or wrong types
(422), an empty list or more than `max_batch` texts (422), a body over `max_body` bytes (413).
Inference runs on one worker thread, off the event loop, so the server keeps answering while
it scores; the model is loaded once, at start. Requests that arrive while a forward pass runs
are merged into the next one (`MicroBatcher`, up to `max_batch` texts): with 16 clients sending
one text each, one pass scores 16 texts instead of 16 passes one.
"""

from __future__ import annotations

import asyncio
import gc
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sentiment.errors import SentimentError

DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_BODY = 1_000_000
"""Bytes of request body accepted (413 beyond): about 256 reviews of 4,000 characters."""


class PredictRequest(BaseModel):
    """The body of `POST /v1/predict`."""

    model_config = ConfigDict(extra="forbid")
    texts: list[Any] = Field(min_length=1, description="the texts to score; a non-string is answered with not_text")
    min_confidence: float | None = Field(None, ge=0, le=1, description="mark predictions below this confidence")
    sentences: bool = Field(False, description="add each sentence's reading")


def create_app(
    model_path: str | Path,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body: int = DEFAULT_MAX_BODY,
    device: str = "cpu",
    precision: str = "float32",
):
    """A FastAPI app serving the run (or baseline, or `vader`) at `model_path`; a run's forward pass
    in `precision` (`sentiment.model.precision`)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from sentiment.serving.inference import load_model

    model = load_model(model_path, device=device, precision=precision)
    # One pass before the first request: the first forward pass of a process also sets up oneDNN's
    # kernels, which would otherwise land on some client's request as 100+ ms of latency.
    predict_rows(model, ["warm up the model before serving.", "a second text of another length to batch"])
    card = model_summary(model, model_path)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentiment-serve")
    batcher = MicroBatcher(model, executor, max_texts=max_batch)

    @asynccontextmanager
    async def lifespan(_):
        yield
        executor.shutdown(wait=True)  # a request being scored finishes before the process ends

    app = FastAPI(
        title="sentiment", version=card.get("version") or "0", description=__doc__.split("\n\n")[0], lifespan=lifespan
    )

    app.add_middleware(BodyLimit, limit=max_body)

    @app.exception_handler(RequestValidationError)
    async def one_message(_: Request, error: RequestValidationError):
        problem = error.errors()[0]
        if problem.get("type") == "json_invalid":
            position = problem.get("loc", ("body", "?"))[-1]
            message = (
                f"the body is not valid JSON (at character {position}: "
                f"{(problem.get('ctx') or {}).get('error', 'malformed')})"
            )
        else:
            where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body"
            message = f"{where}: {problem.get('msg')}"
        return JSONResponse(
            status_code=422, content={"error": message, "detail": json.loads(json.dumps(error.errors(), default=str))}
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": card["path"]}

    @app.get("/v1/model")
    async def describe() -> dict[str, Any]:
        return card

    @app.post("/v1/predict", response_model=None)
    async def predict(request: PredictRequest) -> dict[str, Any] | JSONResponse:
        if len(request.texts) > max_batch:
            return JSONResponse(
                status_code=422,
                content={
                    "error": f"texts: {len(request.texts)} texts in one request; at most {max_batch} (--max-batch)"
                },
            )
        try:
            results = await batcher.submit(request.texts, request.min_confidence, request.sentences)
        except SentimentError as error:
            return JSONResponse(status_code=422, content={"error": str(error)})
        return {"predictions": results, "classes": model.classes}

    return app


class MicroBatcher:
    """Merges the requests waiting while the model is busy into one `predict_rows` call.

    One consumer task takes every request queued (up to `max_texts` texts), scores them together
    on the worker thread and hands each request its own rows back. A lone request is scored at
    once, alone; under load the passes grow and the per-text cost falls.
    """

    def __init__(self, model, executor: ThreadPoolExecutor, max_texts: int):
        self.model, self.executor, self.max_texts = model, executor, max_texts
        self.queue: asyncio.Queue = asyncio.Queue()
        self.consumer: asyncio.Task | None = None

    async def submit(self, texts: list[Any], min_confidence: float | None, sentences: bool) -> list[dict[str, Any]]:
        if self.consumer is None:
            self.consumer = asyncio.get_running_loop().create_task(self._consume())
        done = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, sentences, done))
        rows = await done
        for row in rows:
            if min_confidence is not None and row["confidence"] is not None:
                row["abstained"] = row["confidence"] < min_confidence
        return rows

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        carried = None
        while True:
            # A request that did not fit into the previous pass opens this one.
            waiting = [carried if carried is not None else await self.queue.get()]
            carried = None
            count = len(waiting[0][0])
            while not self.queue.empty():
                request = self.queue.get_nowait()
                if count + len(request[0]) > self.max_texts:
                    carried = request
                    break
                waiting.append(request)
                count += len(request[0])
            texts = [text for request in waiting for text in request[0]]
            sentences = any(request[1] for request in waiting)
            try:
                rows = await loop.run_in_executor(self.executor, predict_rows, self.model, texts, None, sentences)
            except Exception as error:  # a SentimentError or our bug: every waiting request gets it
                for _, _, done in waiting:
                    if not done.done():
                        done.set_exception(error)
                continue
            start = 0
            for request_texts, wants_sentences, done in waiting:
                mine = rows[start : start + len(request_texts)]
                start += len(request_texts)
                if not wants_sentences:
                    for row in mine:
                        row.pop("sentences", None)
                if not done.done():
                    done.set_result(mine)


class BodyLimit:
    """ASGI middleware: a 413 with a message for a body over `limit` bytes, whether declared
    (content-length) or sent in chunks, before the app reads any of it. Plain ASGI rather than
    `@app.middleware("http")`, whose wrapping of every request costs a task and a stream."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send) -> None:
        from fastapi.responses import JSONResponse

        message = f"the request body is over {self.limit:,} bytes; send fewer or shorter texts per request"
        await JSONResponse(status_code=413, content={"error": message})(scope, receive, send)


def predict_rows(
    model, texts: list[Any], min_confidence: float | None = None, sentences: bool = False
) -> list[dict[str, Any]]:
    """One result per text, in order, scored by `score`'s own `score_chunk`: the same error reasons,
    truncation flag and sentence readings as a scored file."""
    from sentiment.data.text import text_value
    from sentiment.serving.input_files import Record
    from sentiment.serving.scoring import score_chunk

    records = []
    for number, value in enumerate(texts, start=1):
        text, problem = text_value(value)  # None, non-strings and broken surrogates get their reason
        records.append(Record("request", number, text, (), problem))
    scored = score_chunk(model, records, sentences=sentences, min_confidence=min_confidence)
    rows = []
    for i, (label, error) in enumerate(zip(scored.labels, scored.errors)):
        row: dict[str, Any] = {
            "label": label,
            "probabilities": None,
            "confidence": None,
            "abstained": None,
            "error": error,
        }
        if label is not None:
            p = scored.probabilities[i]
            row.update(
                probabilities={c: float(value) for c, value in zip(model.classes, p)},
                confidence=float(p.max()),
                abstained=bool(scored.abstained[i]) if scored.abstained is not None else False,
            )
            if scored.sentences is not None:
                row["sentences"] = scored.sentences[i]
        rows.append(row)
    return rows


def model_summary(model, model_path: str | Path) -> dict[str, Any]:
    """What `GET /v1/model` says: the classes, calibration and the run's recorded figures."""
    from importlib.metadata import version

    summary: dict[str, Any] = {
        "path": str(model_path),
        "classes": list(model.classes),
        "version": version("sentiment"),
        "kind": type(model).__name__,
        "precision": getattr(model, "precision", "float32"),
    }
    run = getattr(model, "run", None)
    if run is not None:
        summary.update(
            temperature=run.temperature,
            threshold=run.decision_threshold,
            experiment=run.info.get("experiment"),
            model=run.info.get("model"),
            best_validation=run.info.get("best_validation"),
            config_fingerprint=run.config.fingerprint(),
        )
        report = Path(run.config.report_dir) / "metrics.json"
        if report.is_file():
            from sentiment.schemas import EvaluationMetrics, read_record

            try:
                evaluated, _ = read_record(report, EvaluationMetrics)
            except SentimentError:  # a report this version cannot read says nothing about this run
                evaluated = None
            if evaluated is not None:
                m = evaluated.model
                summary["test"] = {"accuracy": m.accuracy, "macro_f1": m.macro_f1, "ece": m.ece}
    return summary


def serve(
    model_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_body: int = DEFAULT_MAX_BODY,
    log_level: str = "info",
    precision: str = "float32",
) -> None:
    """Run the app under uvicorn until SIGTERM or Ctrl-C (a clean shutdown, exit 0)."""
    import uvicorn

    app = create_app(model_path, max_batch=max_batch, max_body=max_body, precision=precision)
    # The model, tokenizer and vocabulary are millions of long-lived objects: frozen out of the
    # cyclic collector (this process is ours; `create_app` leaves a host service's to it), its
    # full collections under load stop scanning them. The first 16 concurrent requests took
    # 360 ms instead of 100 ms without it, and p99 at 16 clients was higher.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level=log_level)
