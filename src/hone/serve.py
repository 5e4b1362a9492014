"""``hone serve``: a saved model behind FastAPI (no ``from __future__ import annotations`` here: FastAPI
reads the route signatures at run time).

* ``POST /predict`` takes ``{"records": [{column: value, ...}, ...]}`` and returns one prediction
  (and, for classification, one probability per class) per record. Each record is validated
  against the model's schema: an unknown field, a missing feature or a value of the wrong type is
  a 422 that names the record and the field. An image field holds the file's bytes in base64 (or a
  ``data:`` URI) or an array of pixels; ``missing_images`` lists, per record, the image fields that
  were missing or did not decode (the record is scored without them).
* ``POST /explain`` takes the same records (up to 64; optional ``target_class`` and ``steps``) and
  returns each one's explanation, exactly as ``hone explain`` and ``Model.explain`` give it.
* ``GET /health``, ``GET /metadata`` (schema, classes, test metrics, versions) and the OpenAPI page
  at ``/docs``.
* Concurrent requests are micro-batched: records that arrive within ``batch_wait_ms`` of each
  other (up to ``max_batch`` rows) go through the model in one call, in a worker thread, so the
  event loop keeps accepting requests.
* A request body over ``max_body_bytes`` is refused with 413 before it is parsed; with a token
  (``--token`` or ``HONE_TOKEN``) every route but ``/health`` needs ``Authorization: Bearer <token>``.
* It binds to 127.0.0.1 unless told otherwise.
"""


import asyncio
import base64
import binascii
import errno
import hmac
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator

from hone._version import __version__
from hone.artifact import Model
from hone.errors import MissingDependencyError, UserError


def _utf8(v: str) -> str:
    """Refuse text that is not valid Unicode (a lone surrogate such as ``"\\ud800"`` in the JSON)."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"not valid Unicode text (a lone surrogate at character {err.start})") from None
    return v


def _date_text(v: str) -> str:
    """Refuse a date or time field that does not read as one (ISO 8601: 2024-05-31, 2024-05-31T12:00:00)."""
    _utf8(v)
    text = v.strip()
    try:
        datetime.fromisoformat(text)
    except ValueError:
        try:
            date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{_excerpt(v)} is not a date or time (ISO 8601, e.g. 2024-05-31 or "
                             "2024-05-31T12:00:00)") from None
    return v


class _Message(str):
    """Text shown as it is by :func:`_excerpt` (not quoted)."""


Text = Annotated[str, AfterValidator(_utf8)]
DateText = Annotated[str, AfterValidator(_date_text)]

_TYPES: dict[str, tuple[Any, pa.DataType]] = {
    "text": (Text, pa.string()), "categorical": (Text, pa.string()), "numeric": (float, pa.float64()),
    "boolean": (bool, pa.bool_()), "datetime": (DateText, pa.string()),
}


def _printable(text: str) -> str:
    """``text`` with what UTF-8 cannot encode (lone surrogates) written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _excerpt(value: Any, limit: int = 80) -> str:
    """A short, printable excerpt of a value for an error reply (never the whole of a large body);
    text is quoted unless it is a message of hone's or pydantic's (``str`` subclass ``_Message``)."""
    text = _printable(str(value) if isinstance(value, _Message) else repr(value))
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


@dataclass
class _Pending:
    rows: list[dict[str, Any]]
    future: asyncio.Future[Any]


@dataclass
class MicroBatcher:
    """Collects records from concurrent requests and scores them in one model call."""

    model: Model
    max_batch: int = 256
    wait_s: float = 0.005
    queue: asyncio.Queue[_Pending] = field(default_factory=asyncio.Queue)
    calls: int = 0  # model calls made (the test checks that concurrent requests share them)

    async def score(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, int]:
        """The outputs for ``rows`` and the number of rows in the model call that scored them."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(rows, fut))
        return await fut

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.queue.get()
            batch, n = [first], len(first.rows)
            deadline = loop.time() + self.wait_s
            while n < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                n += len(item.rows)
            rows = [r for p in batch for r in p.rows]
            try:
                out = await loop.run_in_executor(None, self._score, rows)
            except Exception as err:  # noqa: BLE001  (the requests get the error, the loop goes on)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                continue
            self.calls += 1
            start = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result((out[start:start + len(p.rows)], len(rows)))
                start += len(p.rows)

    def _score(self, rows: list[dict[str, Any]]) -> np.ndarray:
        table, typed = request_table(self.model, rows)
        if typed is None:
            return self.model.predict_outputs(table)  # the general path: DuckDB reads and converts
        return np.concatenate([out for _, out in self.model.outputs([typed])])


def request_table(model: Model, rows: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table | None]:
    """A request's records as an Arrow table, and the same typed as in training (None when a value
    needs DuckDB's more forgiving conversion): the typed one goes straight to the network."""
    schema = model.pre.schema
    cols = {}
    for c in schema.columns:
        if c.role == "image":  # decoded bytes (from base64) or arrays of pixels, as sent
            cols[c.name] = _image_array([r.get(c.name) for r in rows])
            continue
        _, arrow = _TYPES.get(c.role, (str, pa.string()))
        # NaN and +-infinity (JSON's Infinity, 1e400) pass: the preprocessor reads them as missing, as in training
        cols[c.name] = pa.array([r.get(c.name) for r in rows], type=arrow)
    table = pa.table(cols)
    try:
        typed = pa.table({c.name: table[c.name] if c.role == "image" else pc.cast(table[c.name], _arrow_type(c.dtype))
                          for c in schema.columns})
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError):
        return table, None
    return table, typed


def _explain(model: Model, rows: list[dict[str, Any]], steps: Any, target_class: Any) -> list[dict[str, Any]]:
    from hone.explain import Explainer, explain_rows

    table, typed = request_table(model, rows)
    if typed is None:
        return explain_rows(model, table, steps=steps, target_class=target_class)
    return Explainer(model, steps=steps, target_class=target_class).explain_batch(typed)


def _arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type of a DuckDB type name of the schema (KeyError for the rare ones)."""
    t = duckdb_type.upper()
    if t.startswith("DECIMAL"):
        return pa.float64()
    return {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "FLOAT": pa.float32(), "BIGINT": pa.int64(),
            "INTEGER": pa.int32(), "SMALLINT": pa.int16(), "TINYINT": pa.int8(), "BOOLEAN": pa.bool_(),
            "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us"), "UBIGINT": pa.uint64(),
            "UINTEGER": pa.uint32(), "HUGEINT": pa.float64()}[t]


def create_app(model: Model, *, token: str | None = None, max_body_bytes: int = 1 << 20, max_records: int = 1000,
               max_batch: int = 256, batch_wait_ms: float = 5.0, max_explain: int = 64) -> Any:
    """The FastAPI application serving ``model`` (``max_explain``: records per ``/explain`` request)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError

    schema = model.pre.schema
    PredictRequest, ExplainRequest = _request_models(schema, max_records, max_explain)
    batcher = MicroBatcher(model, max_batch=max_batch, wait_s=batch_wait_ms / 1000)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(title=f"hone: {schema.target}", version=__version__, lifespan=lifespan,
                  description=f"Predicts {schema.target!r} ({schema.task}).")
    app.state.batcher = batcher

    def _decoded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records with their image fields decoded from base64 (a 422 naming a bad one)."""
        for i, r in enumerate(rows):
            for c in (c.name for c in schema.columns if c.role == "image"):
                r[c] = _image_value(r[c], f"records[{i}].{c}")
        return rows

    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(Guard, max_body_bytes=max_body_bytes, token=token)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        m = model.metrics
        return {"target": schema.target, "task": schema.task, "classes": [str(c) for c in model.classes],
                "features": [{"name": c.name, "role": c.role, "type": c.dtype} for c in schema.columns],
                "metrics": {"test": m.get("test", {}), "model": m.get("model", {}).get("chosen")},
                "hone_version": __version__, "format": model.meta.get("format"), "runtime": model.runtime}

    @app.post("/predict")
    async def predict(payload: PredictRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        t0 = time.perf_counter()
        req: Any = payload  # a model built at run time from the columns: mypy cannot see its fields
        rows = _decoded([r.model_dump() for r in req.records])
        image_cols = [c.name for c in schema.columns if c.role == "image"]
        out, batch_rows = await batcher.score(rows)
        labels = model.labels_for(out)
        body: dict[str, Any] = {"predictions": [_plain(v) for v in labels]}
        if schema.task != "regression":
            names = [str(c) for c in model.classes]
            body["probabilities"] = [dict(zip(names, map(float, row))) for row in out]
        if image_cols:  # which records were scored without their image (missing or unreadable)
            body["missing_images"] = _missing_images(model, rows, image_cols)
        body["ms"] = round(1000 * (time.perf_counter() - t0), 2)
        body["batch_rows"] = batch_rows  # rows scored in the same model call (micro-batching)
        return body

    @app.post("/explain")
    async def explain(payload: ExplainRequest) -> dict[str, Any]:  # type: ignore[valid-type]
        t0 = time.perf_counter()
        req: Any = payload  # a model built at run time from the columns: mypy cannot see its fields
        rows = _decoded([r.model_dump() for r in req.records])
        if req.target_class is not None and (model.task == "regression" or
                                             req.target_class not in [str(c) for c in model.classes]):
            raise HTTPException(422, f"target_class {req.target_class!r} is not a class of this model" +
                                ("" if model.task == "regression" else
                                 f"; its classes are: {', '.join(str(c) for c in model.classes)}"))
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(None, _explain, model, rows, req.steps, req.target_class)
        return {"explanations": out, "ms": round(1000 * (time.perf_counter() - t0), 2)}

    return app


_MAX_ERRORS = 20  # validation errors listed in one 422 reply


def _request_models(schema: Any, max_records: int, max_explain: int) -> tuple[Any, Any]:
    """The request bodies of ``/predict`` and ``/explain``: records with one typed field per feature."""
    from pydantic import BaseModel, ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    for c in schema.columns:
        if c.role == "image":
            fields[c.name] = (str | list | None, Field(..., description="image: the file's bytes in base64 (or a "
                                                                         "data: URI), or an array of pixels"))
            continue
        py, _ = _TYPES.get(c.role, (Text, pa.string()))
        fields[c.name] = (py | None, Field(..., description=f"{c.role} feature"))
    for name in [*schema.dropped, schema.target]:  # columns of the training table that are not features:
        fields.setdefault(name, (Any, Field(None, description="accepted and ignored")))  # a whole row may be sent
    Record = create_model("Record", __config__=ConfigDict(extra="forbid", strict=False), **fields)

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        records: list[Record] = Field(..., min_length=1, max_length=max_records)

    class ExplainRequest(PredictRequest):
        target_class: Text | None = Field(None, description="explain this class for every record (default: the "
                                                           "predicted one)")
        steps: Annotated[int, Field(ge=2, le=1024)] | Literal["auto"] = Field(
            "auto", description="Integrated Gradients' integration steps (2-1024), or auto")
        records: list[Record] = Field(..., min_length=1, max_length=max_explain)

    return PredictRequest, ExplainRequest


async def _invalid(request: Any, exc: Any) -> Any:
    """A short 422: at most ``_MAX_ERRORS`` errors, each input quoted in a short printable excerpt."""
    from fastapi.responses import JSONResponse

    errors = exc.errors()
    detail = [{"loc": [_printable(x)[:40] if isinstance(x, str) else x for x in e.get("loc", ())],
               "msg": _excerpt(_Message(e.get("msg", "")), 300), "type": e.get("type"),
               **({"input": _excerpt(e["input"])} if "input" in e and e.get("type") != "missing" else {})}
              for e in errors[:_MAX_ERRORS]]
    body: dict[str, Any] = {"detail": detail}
    if len(errors) > _MAX_ERRORS:
        body["more_errors"] = len(errors) - _MAX_ERRORS
    return JSONResponse(body, status_code=422)


def _missing_images(model: Model, rows: list[dict[str, Any]], image_cols: list[str]) -> list[list[str]]:
    """Per record, the image columns it was scored without (missing or unreadable)."""
    part = pa.table({c: _image_array([r[c] for r in rows]) for c in image_cols})
    images = model.pre.images
    assert images is not None
    masks = {c: images.missing_mask(part, c) for c in image_cols}
    return [[c for c in image_cols if masks[c][i]] for i in range(len(rows))]


class Guard:
    """ASGI middleware in front of every route: the bearer token (every route but ``/health`` when one is
    set, ``/docs`` and ``/openapi.json`` included) and the body limit, counted on the bytes as they
    arrive whatever the transfer encoding (a chunked body has no Content-Length to trust)."""

    def __init__(self, app: Any, *, max_body_bytes: int, token: str | None) -> None:
        self.app, self.limit, self.token = app, max_body_bytes, token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token is not None and scope.get("path") != "/health":
            got = headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(got, f"Bearer {self.token}".encode()):
                await _reply(send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")])
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await _reply(send, 413, f"request body of {length} bytes is over the limit of {self.limit}")
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _reply(send, 413, f"request body is over the limit of {self.limit} bytes")
                return
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Any, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    import json

    data = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close"), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


def _image_array(values: list[Any]) -> pa.Array:
    """A request's images as an Arrow column: binary for bytes, lists for arrays of pixels."""
    if all(v is None or isinstance(v, bytes) for v in values):
        return pa.array(values, type=pa.binary())
    return pa.array(values)


def _image_value(v: Any, where: str) -> Any:
    """A request's image: base64 text (or a ``data:`` URI) -> bytes; arrays of pixels pass as they are."""
    if not isinstance(v, str):
        return v
    from fastapi import HTTPException

    text = v.split(",", 1)[1] if v.startswith("data:") and "," in v else v
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise HTTPException(422, f"{where}: not base64-encoded image bytes ({err})") from err


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def serve(model_dir: str, *, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_body_bytes: int = 1 << 20, runtime: str = "auto") -> None:
    """Load the model and serve it with uvicorn until interrupted."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as err:
        raise MissingDependencyError("hone serve needs FastAPI and uvicorn; install them with: "
                                     "pip install 'hone[serve]'") from err

    from hone.artifact import load

    if not 1 <= port <= 65535:
        raise UserError(f"--port {port} is out of range: it must be from 1 to 65535")
    if max_body_bytes < 1:
        raise UserError(f"--max-body-mb must be above 0 (got {max_body_bytes} bytes)")
    token = token or os.environ.get("HONE_TOKEN") or None
    sock = _bind(host, port)  # before the model loads: a port in use is refused at once, and no one takes it meanwhile
    try:
        model = load(model_dir, runtime=runtime)
        app = create_app(model, token=token, max_body_bytes=max_body_bytes)
        print(f"serving {model_dir} with the {model.runtime} runtime on http://{host}:{port} "
              f"(docs at /docs{', token required' if token else ''})", flush=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", workers=1))
        server.run(sockets=[sock])
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a :class:`UserError` naming why not (in use, no such address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise UserError(f"--host {host!r} is not an address of this machine ({err.strerror})") from err
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is already in use; stop what holds it or pass another --port"
            ) from err
        if err.errno == errno.EACCES:
            raise UserError(f"port {port} on {host} needs more privileges; pass a --port above 1023") from err
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    sock.set_inheritable(True)
    return sock
