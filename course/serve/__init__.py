"""An Open Inference Protocol ("v2") server for ONNX models: the protocol of Triton and KServe.

Serves every ONNX model of a model repository with onnxruntime, so that the real
``tritonclient.http`` (or any KServe v2 client) works against it unchanged: health, server and
model metadata, model readiness, inference with JSON tensors or the binary tensor data extension,
Triton's model configuration and statistics endpoints, and dynamic batching per model.

Command line::

    python -m course.serve MODEL_DIR [--host 127.0.0.1] [--port 8000] [--max-body-bytes N]
                                     [--workers N] [--intra-op-threads N] [--graceful-timeout S]

It prints ``course.serve: serving [...] at http://HOST:PORT`` once it listens and shuts down
gracefully on Ctrl-C / SIGTERM (requests already received are answered).

Model repository (Triton's layout)::

    MODEL_DIR/
      mlp/
        config.pbtxt            # optional; or config.json / config.toml with the same keys
        1/model.onnx            # versions are numbered folders; the highest is the default

Configuration keys (Triton's names)::

    max_batch_size: 32                                   # 0 (default): no batch dimension
    dynamic_batching { max_queue_delay_microseconds: 2000 }   # absent (default): batching off
    instance_group [ { count: 2, kind: KIND_CPU } ]      # absent (default): one instance

With an ``instance_group`` of N, the model is loaded N times (sessions of ``cores // N`` threads)
and each request or batch runs on whichever instance is free: small runs that cannot keep every
core busy alone then run side by side. The same in TOML: ``max_batch_size = 32``,
``[dynamic_batching]`` with ``max_queue_delay_microseconds = 2000`` and ``[[instance_group]]``
with ``count = 2``; in JSON: ``{"max_batch_size": 32, "dynamic_batching":
{"max_queue_delay_microseconds": 2000}, "instance_group": [{"count": 2}]}``.

Python (from a notebook; the server runs in a background thread, or a subprocess)::

    import course.serve
    course.serve.add_model("models", "mlp", onnx_model, max_batch_size=32, dynamic_batching=True)
    server = course.serve.start("models", port=0)      # port 0: a free port on 127.0.0.1
    client = tritonclient.http.InferenceServerClient(server.address)
    ...
    server.stop()
"""

from __future__ import annotations

from course.serve.app import DEFAULT_MAX_BODY_BYTES, create_app
from course.serve.batching import DirectScheduler, DynamicBatcher, ModelStats
from course.serve.protocol import (
    DATATYPES,
    InferenceRequest,
    ProtocolError,
    TensorSpec,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    validate_request,
)
from course.serve.repository import (
    ConfigError,
    DynamicBatching,
    ModelConfig,
    ModelRepository,
    ModelVersion,
    RepositoryError,
    add_model,
    load_repository,
)
from course.serve.server import ServerError, ServerHandle, main, start

__all__ = [
    "DATATYPES",
    "DEFAULT_MAX_BODY_BYTES",
    "ConfigError",
    "DirectScheduler",
    "DynamicBatcher",
    "DynamicBatching",
    "InferenceRequest",
    "ModelConfig",
    "ModelRepository",
    "ModelStats",
    "ModelVersion",
    "ProtocolError",
    "RepositoryError",
    "ServerError",
    "ServerHandle",
    "TensorSpec",
    "add_model",
    "create_app",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "load_repository",
    "main",
    "start",
    "validate_request",
]
