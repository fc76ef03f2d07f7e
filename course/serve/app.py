"""The Starlette application: Open Inference Protocol endpoints over a model repository.

Endpoints (all under ``/v2``, as Triton and KServe serve them):

========  ===========================================================  ==========================
GET       ``/v2/health/live``, ``/v2/health/ready``                      server health
GET       ``/v2``                                                      server metadata
GET       ``/v2/models/{name}[/versions/{v}]``                         model metadata
GET       ``/v2/models/{name}[/versions/{v}]/ready``                   model ready
POST      ``/v2/models/{name}[/versions/{v}]/infer``                   inference (JSON or binary)
GET       ``/v2/models/{name}[/versions/{v}]/config``                  Triton model configuration
GET       ``/v2/models[/{name}[/versions/{v}]]/stats``                 Triton statistics (+ queue)
POST      ``/v2/repository/index``                                     models and their state
========  ===========================================================  ==========================

Errors are the protocol's ``{"error": "..."}`` with status 400 (bad request), 404 (unknown
model, version or path), 405, 413 (body over the limit), 415 (unknown content encoding),
500 (the model failed on the request) or 503 (shutting down).

Example:

    >>> from starlette.testclient import TestClient
    >>> from course.serve.repository import add_model, load_repository
    >>> _ = add_model("models", "mlp", onnx.load("mlp.onnx"))
    >>> with TestClient(create_app(load_repository("models"))) as client:
    ...     [tensor["name"] for tensor in client.get("/v2/models/mlp").json()["inputs"]]
    ['x']
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from course.serve.batching import ModelStats, Scheduler, make_scheduler
from course.serve.protocol import (
    ProtocolError,
    decode_request,
    encode_response,
    parse_header_length,
    validate_request,
)
from course.serve.repository import ModelRepository, ModelVersion

__all__ = ["DEFAULT_MAX_BODY_BYTES", "SERVER_NAME", "create_app"]

SERVER_NAME = "course.serve"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics"]
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
HEADER_LENGTH = "inference-header-content-length"

logger = logging.getLogger("course.serve")


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Server:
    """The state behind the routes: repository, schedulers, statistics, limits."""

    def __init__(self, repository: ModelRepository, max_body_bytes: int, workers: int) -> None:
        self.repository = repository
        self.max_body_bytes = max_body_bytes
        self.workers = workers
        self.stats: dict[tuple[str, str], ModelStats] = {
            (m.name, m.version): ModelStats() for m in repository.all_versions()
        }
        self.schedulers: dict[tuple[str, str], Scheduler] = {}
        self.executor: ThreadPoolExecutor | None = None
        self.accepting = False

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # every instance of a model may run at once: the pool has a thread for each
        instances = max((m.config.instances for m in self.repository.all_versions()), default=1)
        self.executor = ThreadPoolExecutor(
            max(self.workers, instances), thread_name_prefix="course-serve"
        )
        for model in self.repository.all_versions():
            key = (model.name, model.version)
            scheduler = make_scheduler(model, self.executor, self.stats[key])
            scheduler.start()
            self.schedulers[key] = scheduler
        self.accepting = True
        try:
            yield
        finally:
            # uvicorn calls this after in-flight requests are answered; queued ones still run.
            self.accepting = False
            for scheduler in self.schedulers.values():
                await scheduler.stop()
            self.executor.shutdown(wait=True)

    # ---- helpers ------------------------------------------------------------------------

    def model(self, request: Request) -> ModelVersion:
        return self.repository.get(request.path_params["model"], request.path_params.get("version"))

    async def body(self, request: Request) -> bytes:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise ProtocolError(
                    f"Content-Length must be an integer, got {declared!r}"
                ) from None
            if size > limit:
                raise ProtocolError(
                    f"request body of {size} bytes exceeds this server's limit of {limit} bytes "
                    "(start the server with a larger max_body_bytes / --max-body-bytes)",
                    status=413,
                )
        chunks = []
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ProtocolError(
                    f"request body exceeds this server's limit of {limit} bytes "
                    "(start the server with a larger max_body_bytes / --max-body-bytes)",
                    status=413,
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "deflate"):
            raise ProtocolError(
                f"unsupported Content-Encoding {encoding!r}: send gzip, deflate or no encoding",
                status=415,
            )
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        try:
            plain = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ProtocolError(f"cannot decompress the {encoding} body: {exc}") from None
        if len(plain) > limit or inflater.unconsumed_tail:
            raise ProtocolError(
                f"decompressed request body exceeds this server's limit of {limit} bytes",
                status=413,
            )
        if not inflater.eof:
            raise ProtocolError(f"the {encoding} body is truncated")
        return plain

    # ---- routes ---------------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        if not self.accepting:
            return JSONResponse({"ready": False}, status_code=503)
        return JSONResponse({"ready": True})

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS}
        )

    async def model_metadata(self, request: Request) -> Response:
        model = self.model(request)
        return JSONResponse(model.metadata(self.repository.versions(model.name)))

    async def model_ready(self, request: Request) -> Response:
        model = self.model(request)
        return JSONResponse({"name": model.name, "ready": self.accepting})

    async def model_config(self, request: Request) -> Response:
        return JSONResponse(self.model(request).triton_config())

    async def model_stats(self, request: Request) -> Response:
        if "model" in request.path_params:
            name = request.path_params["model"]
            version = request.path_params.get("version")
            if version:
                models = [self.repository.get(name, version)]
            else:
                models = [self.repository.get(name, v) for v in self.repository.versions(name)]
        else:
            models = self.repository.all_versions()
        entries = []
        for m in models:
            entry = self.stats[(m.name, m.version)].to_triton(m.name, m.version)
            scheduler = self.schedulers.get((m.name, m.version))
            # not in Triton's schema: how many requests wait in the dynamic batcher right now
            entry["queued_requests"] = scheduler.queued if scheduler is not None else 0
            entries.append(entry)
        return JSONResponse({"model_stats": entries})

    async def repository_index(self, request: Request) -> Response:
        state = "READY" if self.accepting else "UNAVAILABLE"
        return JSONResponse(
            [
                {"name": m.name, "version": m.version, "state": state}
                for m in self.repository.all_versions()
            ]
        )

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter_ns()
        model = self.model(request)
        stats = self.stats[(model.name, model.version)]
        try:
            body = await self.body(request)
            header_length = parse_header_length(request.headers.get(HEADER_LENGTH), len(body))
            decoded = decode_request(body, header_length)
            rows = validate_request(
                decoded, model.name, model.inputs, model.outputs, model.config.max_batch_size
            )
            scheduler = self.schedulers[(model.name, model.version)]
            outputs = await scheduler.infer(decoded.inputs, rows)
            if decoded.outputs is None:
                wanted = [(spec.name, decoded.binary_default) for spec in model.outputs]
            else:
                wanted = [(out.name, out.binary) for out in decoded.outputs]
            payload, json_length = encode_response(
                model.name,
                model.version,
                [(name, outputs[name], binary) for name, binary in wanted],
                decoded.id,
            )
        except ProtocolError:
            stats.fail.add(time.perf_counter_ns() - started)
            raise
        stats.success.add(time.perf_counter_ns() - started)
        if json_length is None:
            return Response(payload, media_type="application/json")
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(json_length)},
        )


def _guard(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Turn ProtocolError into the protocol's error response, and any other failure into a 500."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except ProtocolError as exc:
            return _error(exc.message, exc.status)
        except Exception as exc:  # keep serving: one broken request must not stop the server
            logger.exception("internal error on %s %s", request.method, request.url.path)
            return _error(f"internal server error: {type(exc).__name__}: {exc}", 500)

    return guarded


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no endpoint {request.url.path}: see the Open Inference Protocol's /v2 routes"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return _error(message, exc.status_code)


def create_app(
    repository: ModelRepository,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    workers: int | None = None,
) -> Starlette:
    """Build the ASGI application serving ``repository``.

    ``max_body_bytes`` caps a request body (after decompression); ``workers`` is the number of
    threads running onnxruntime (default: the number of CPU cores; never fewer than a model's
    instance count, so every instance can run at once).

    Example (serve it with ``uvicorn.run(app, port=8000)``, or use :func:`course.serve.start`):

        >>> from course.serve.repository import add_model, load_repository
        >>> _ = add_model("models", "mlp", onnx.load("mlp.onnx"))
        >>> app = create_app(load_repository("models"))
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    server = _Server(repository, max_body_bytes, workers or os.cpu_count() or 1)
    model = "/v2/models/{model}"
    version = "/v2/models/{model}/versions/{version}"
    routes = [  # inference first: the router tries routes in order
        Route(model + "/infer", _guard(server.infer), methods=["POST"]),
        Route(version + "/infer", _guard(server.infer), methods=["POST"]),
        Route("/v2", _guard(server.server_metadata), methods=["GET"]),
        Route("/v2/health/live", _guard(server.live), methods=["GET"]),
        Route("/v2/health/ready", _guard(server.ready), methods=["GET"]),
        Route("/v2/models/stats", _guard(server.model_stats), methods=["GET"]),
        Route("/v2/repository/index", _guard(server.repository_index), methods=["POST"]),
    ]
    for prefix in (model, version):
        routes += [
            Route(prefix, _guard(server.model_metadata), methods=["GET"]),
            Route(prefix + "/ready", _guard(server.model_ready), methods=["GET"]),
            Route(prefix + "/config", _guard(server.model_config), methods=["GET"]),
            Route(prefix + "/stats", _guard(server.model_stats), methods=["GET"]),
        ]
    app = Starlette(
        routes=routes,
        lifespan=server.lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.server = server
    return app
