"""course.serve over HTTP on 127.0.0.1: the real tritonclient, bad input, batching, load, shutdown.

Every server here listens on a free loopback port and is stopped before the module ends; every
load loop is bounded in count and in time. Answers are compared with onnxruntime run in this
process on the same model file.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

import course.serve
from course.serve import RepositoryError, ServerError, add_model, start
from course.serve.server import main

RNG = np.random.default_rng(7)
FEATURES = 8
MAX_BODY = 256 * 1024


def mlp_model(seed: int) -> onnx.ModelProto:
    """logits = relu(x W1 + b1) W2 + b2, label = argmax(logits): two outputs, two datatypes."""
    rng = np.random.default_rng(seed)
    weights = {
        "W1": rng.normal(size=(FEATURES, 16)).astype(np.float32),
        "b1": rng.normal(size=16).astype(np.float32),
        "W2": rng.normal(size=(16, 3)).astype(np.float32),
        "b2": rng.normal(size=3).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "W2"], ["l0"]),
        helper.make_node("Add", ["l0", "b2"], ["logits"]),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def gather_model() -> onnx.ModelProto:
    """y = GatherElements(x, idx, axis=1): an index out of range makes onnxruntime fail."""
    graph = helper.make_graph(
        [helper.make_node("GatherElements", ["x", "idx"], ["y"], axis=1)],
        "gather",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, ["N", 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def text_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s"], ["t"])],
        "text",
        [helper.make_tensor_value_info("s", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("t", TensorProto.STRING, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    add_model(root, "mlp", mlp_model(1))
    add_model(root, "mlp", mlp_model(2), version=2)
    add_model(
        root,
        "mlp_batched",
        mlp_model(1),
        max_batch_size=16,
        dynamic_batching=True,
        max_queue_delay_microseconds=20_000,
    )
    add_model(
        root,
        "gather_batched",
        gather_model(),
        max_batch_size=16,
        dynamic_batching=True,
        max_queue_delay_microseconds=20_000,
    )
    add_model(root, "text", text_model())
    return root


@pytest.fixture(scope="module")
def server(repo):
    handle = start(repo, port=0, max_body_bytes=MAX_BODY)
    yield handle
    handle.stop()
    assert not handle.running, "the server thread still runs after stop()"


@pytest.fixture(scope="module")
def client(server):
    tc = triton.InferenceServerClient(server.address, concurrency=4)
    yield tc
    tc.close()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


class Reference:
    """onnxruntime in this process, on the same model files as the server."""

    def __init__(self, repo: Path) -> None:
        self.sessions = {
            (name, version): ort.InferenceSession(
                str(repo / name / version / "model.onnx"), providers=["CPUExecutionProvider"]
            )
            for name, version in [("mlp", "1"), ("mlp", "2"), ("gather_batched", "1")]
        }

    def __call__(self, name: str, version: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        session = self.sessions[(name, version)]
        values = session.run(None, inputs)
        return {o.name: v for o, v in zip(session.get_outputs(), values, strict=True)}


@pytest.fixture(scope="module")
def reference(repo) -> Reference:
    return Reference(repo)


def features(rows: int) -> np.ndarray:
    return RNG.normal(size=(rows, FEATURES)).astype(np.float32)


def assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: expected shape {want.shape}, got {got.shape}"
    assert got.dtype == want.dtype, f"{what}: expected {want.dtype}, got {got.dtype}"
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6), (
        f"{what}: max abs difference {np.abs(got.astype(float) - want).max()} to onnxruntime"
    )


def triton_input(name: str, array: np.ndarray, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(
        name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64"
    )
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


# ---- the real tritonclient -------------------------------------------------------------------


def test_tritonclient_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "course.serve" and "binary_tensor_data" in meta["extensions"], meta
    model = client.get_model_metadata("mlp")
    assert model["versions"] == ["1", "2"] and model["platform"] == "onnxruntime_onnx", model
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, FEATURES]}]
    assert model["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 3]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ], model["outputs"]
    assert client.get_model_metadata("mlp", "1")["name"] == "mlp"
    assert client.is_model_ready("mlp") and client.is_model_ready("mlp", "2")
    assert not client.is_model_ready("nope") and not client.is_model_ready("mlp", "9")
    config = client.get_model_config("mlp_batched")
    assert config["max_batch_size"] == 16, config
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 20_000}, config
    assert "dynamic_batching" not in client.get_model_config("mlp", "1")
    index = client.get_model_repository_index()
    assert {(m["name"], m["version"]) for m in index} >= {("mlp", "1"), ("mlp", "2"), ("text", "1")}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize(
    ("model", "version", "ref_version"),
    [("mlp", "", "2"), ("mlp", "1", "1"), ("mlp_batched", "", "1")],
)
def test_tritonclient_infer_matches_onnxruntime(
    client, reference, binary, model, version, ref_version
):
    x = features(5)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("logits", "label")]
    result = client.infer(
        model,
        [triton_input("x", x, binary)],
        model_version=version,
        outputs=outputs,
        request_id="r-5",
    )
    want = reference("mlp", ref_version, x=x)
    assert_close(result.as_numpy("logits"), want["logits"], f"{model} logits")
    assert np.array_equal(result.as_numpy("label"), want["label"]), "labels differ from onnxruntime"
    response = result.get_response()
    assert response["id"] == "r-5" and response["model_version"] == (version or ref_version), (
        response
    )


def test_tritonclient_defaults_compression_and_output_subsets(client, reference):
    x = features(3)
    want = reference("mlp", "2", x=x)
    result = client.infer("mlp", [triton_input("x", x)])  # tritonclient's defaults: all binary
    assert_close(result.as_numpy("logits"), want["logits"], "default request")
    for algorithm in ("gzip", "deflate"):
        result = client.infer(
            "mlp",
            [triton_input("x", x, binary=False)],
            outputs=[triton.InferRequestedOutput("label", binary_data=False)],
            request_compression_algorithm=algorithm,
        )
        assert np.array_equal(result.as_numpy("label"), want["label"]), algorithm
        assert result.as_numpy("logits") is None, "an output that was not requested came back"


def test_tritonclient_bytes_tensors(client):
    words = np.array([b"onnx", "\u00e9t\u00e9".encode(), b""], dtype=object)
    for binary in (True, False):
        tensor = triton.InferInput("s", [3], "BYTES")
        tensor.set_data_from_numpy(words, binary_data=binary)
        out = [triton.InferRequestedOutput("t", binary_data=binary)]
        got = client.infer("text", [tensor], outputs=out).as_numpy("t")
        as_bytes = [w if isinstance(w, bytes) else w.encode() for w in got]  # JSON gives str
        assert as_bytes == words.tolist(), f"binary={binary}: got {got!r}"


def test_tritonclient_reports_errors_with_status_and_message(client):
    x = features(2)
    cases = [
        ("nope", "", [triton_input("x", x)], "404", "unknown model 'nope'"),
        ("mlp", "7", [triton_input("x", x)], "404", "unknown version '7' of model 'mlp'"),
        ("mlp", "", [triton_input("x", features(2)[:, :5])], "400", "accepts [-1, 8]"),
        ("mlp", "", [triton_input("z", x)], "400", "missing input(s) ['x']"),
        ("mlp_batched", "", [triton_input("x", features(17))], "400", "accepts 1 to 16 rows"),
    ]
    for model, version, inputs, status, message in cases:
        with pytest.raises(InferenceServerException) as info:
            client.infer(model, inputs, model_version=version)
        error = info.value
        assert error.status() == status and message in error.message(), (
            f"expected {status} {message!r}, got {error.status()} {error.message()!r}"
        )
    assert client.is_server_live(), "the server stopped serving after bad requests"


# ---- every bad input, raw over HTTP -----------------------------------------------------------


def body_of(inputs, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


GOOD_X = {"name": "x", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.5] * FEATURES}


def binary_request(size: int, payload_bytes: int, header_shift: int = 0) -> tuple[bytes, dict]:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, FEATURES],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": size},
                }
            ]
        }
    ).encode()
    body = head + b"\0" * payload_bytes
    return body, {"Inference-Header-Content-Length": str(len(head) + header_shift)}


BAD_REQUESTS = [
    ("unknown model", "/v2/models/nope/infer", body_of([GOOD_X]), {}, 404, "unknown model 'nope'"),
    (
        "unknown version",
        "/v2/models/mlp/versions/3/infer",
        body_of([GOOD_X]),
        {},
        404,
        "unknown version '3'",
    ),
    (
        "missing input",
        "/v2/models/gather_batched/infer",
        body_of([{**GOOD_X, "shape": [1, 4], "data": [1] * 4}]),
        {},
        400,
        "missing input(s) ['idx']",
    ),
    (
        "extra input",
        "/v2/models/mlp/infer",
        body_of([GOOD_X, {**GOOD_X, "name": "z"}]),
        {},
        400,
        "unexpected input(s) ['z']",
    ),
    (
        "datatype string",
        "/v2/models/mlp/infer",
        body_of([{**GOOD_X, "datatype": "FLOAT"}]),
        {},
        400,
        "unknown datatype 'FLOAT'",
    ),
    (
        "datatype mismatch",
        "/v2/models/mlp/infer",
        body_of([{**GOOD_X, "datatype": "FP64"}]),
        {},
        400,
        "has datatype FP64 but model 'mlp' expects FP32",
    ),
    (
        "shape vs data",
        "/v2/models/mlp/infer",
        body_of([{**GOOD_X, "shape": [2, FEATURES]}]),
        {},
        400,
        "shape [2, 8] has 16 elements but data has 8",
    ),
    (
        "shape the model refuses",
        "/v2/models/mlp/infer",
        body_of([{**GOOD_X, "shape": [2, 4]}]),
        {},
        400,
        "has shape [2, 4] but model 'mlp' accepts [-1, 8]",
    ),
    (
        "non-numeric data",
        "/v2/models/mlp/infer",
        body_of([{**GOOD_X, "data": [0.5] * 7 + ["x"]}]),
        {},
        400,
        "data[7] is 'x' (str), expected a number for FP32",
    ),
    (
        "malformed JSON",
        "/v2/models/mlp/infer",
        b'{"inputs": [',
        {},
        400,
        "malformed JSON in the request",
    ),
    ("no inputs", "/v2/models/mlp/infer", b"{}", {}, 400, "needs 'inputs'"),
    (
        "unknown output",
        "/v2/models/mlp/infer",
        body_of([GOOD_X], outputs=[{"name": "probs"}]),
        {},
        400,
        "unknown output(s) ['probs']",
    ),
    (
        "header length beyond body",
        "/v2/models/mlp/infer",
        *binary_request(32, 32, header_shift=999),
        400,
        "Inference-Header-Content-Length is",
    ),
    (
        "header length not a number",
        "/v2/models/mlp/infer",
        binary_request(32, 32)[0],
        {"Inference-Header-Content-Length": "ten"},
        400,
        "must be an integer",
    ),
    (
        "binary size beyond body",
        "/v2/models/mlp/infer",
        *binary_request(32, 16),
        400,
        "binary_data_size says 32 bytes but only 16",
    ),
    (
        "binary bytes left over",
        "/v2/models/mlp/infer",
        *binary_request(32, 40),
        400,
        "8 bytes after the last tensor",
    ),
    (
        "binary size vs shape",
        "/v2/models/mlp/infer",
        *binary_request(16, 16),
        400,
        "needs 32 bytes but binary_data_size is 16",
    ),
    (
        "content encoding",
        "/v2/models/mlp/infer",
        body_of([GOOD_X]),
        {"Content-Encoding": "br"},
        415,
        "unsupported Content-Encoding 'br'",
    ),
    (
        "corrupt gzip",
        "/v2/models/mlp/infer",
        b"not gzip",
        {"Content-Encoding": "gzip"},
        400,
        "cannot decompress the gzip body",
    ),
    (
        "truncated gzip",
        "/v2/models/mlp/infer",
        gzip.compress(body_of([GOOD_X]))[:-12],
        {"Content-Encoding": "gzip"},
        400,
        "truncated",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_gets_the_protocol_error(http, path, body, headers, status, message):
    response = http.post(path, content=body, headers=headers)
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text}"
    )
    error = response.json()["error"]
    assert message in error, f"expected {message!r} in the error, got {error!r}"
    good = http.post("/v2/models/mlp/infer", content=body_of([GOOD_X]))
    assert good.status_code == 200, f"the server stopped serving after {path}: {good.text}"


def raw_http(server, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_http_is_refused_and_the_server_keeps_serving(server, http):
    reply = raw_http(
        server,
        b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n{}",
    )
    assert reply.startswith(b"HTTP/1.1 400"), f"expected 400, got {reply[:100]!r}"
    assert http.post("/v2/models/mlp/infer", content=body_of([GOOD_X])).status_code == 200


def test_bodies_over_the_limit_get_413(http):
    big = b"[" + b"0," * (MAX_BODY // 2) + b"0]"
    response = http.post("/v2/models/mlp/infer", content=big)
    assert response.status_code == 413, f"expected 413, got {response.status_code}"
    assert f"limit of {MAX_BODY} bytes" in response.json()["error"], response.text

    def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(8):
            yield b" " * (MAX_BODY // 4)

    response = http.post("/v2/models/mlp/infer", content=chunks())
    assert response.status_code == 413, (
        f"expected 413 for a chunked body, got {response.status_code}"
    )
    bomb = gzip.compress(b" " * (MAX_BODY * 4))
    response = http.post("/v2/models/mlp/infer", content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "decompressed" in response.json()["error"], response.text
    deflated = zlib.compress(body_of([GOOD_X]))
    response = http.post(
        "/v2/models/mlp/infer", content=deflated, headers={"Content-Encoding": "deflate"}
    )
    assert response.status_code == 200, response.text


def test_unknown_paths_and_methods_get_json_errors(http):
    response = http.get("/v2/nothing/here")
    assert (
        response.status_code == 404 and "no endpoint /v2/nothing/here" in response.json()["error"]
    )
    response = http.get("/v2/models/mlp/infer")
    assert response.status_code == 405 and "method GET is not allowed" in response.json()["error"]
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/models/nope").status_code == 404


def test_statistics_count_requests_and_batches(http):
    before = http.get("/v2/models/mlp/versions/1/stats").json()["model_stats"][0]
    http.post("/v2/models/mlp/versions/1/infer", content=body_of([GOOD_X]))
    http.post("/v2/models/mlp/versions/1/infer", content=body_of([{**GOOD_X, "shape": [9]}]))
    after = http.get("/v2/models/mlp/versions/1/stats").json()["model_stats"][0]
    success = (
        after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    )
    fail = after["inference_stats"]["fail"]["count"] - before["inference_stats"]["fail"]["count"]
    assert (success, fail) == (1, 1), f"expected one success and one failure, got {success}, {fail}"
    assert after["queued_requests"] == 0, "a model without batching reports a queue"
    everything = http.get("/v2/models/stats").json()["model_stats"]
    assert {(m["name"], m["version"]) for m in everything} >= {("mlp", "1"), ("mlp", "2")}
    assert len(http.get("/v2/models/mlp/stats").json()["model_stats"]) == 2


# ---- concurrency: batching, isolation, load ---------------------------------------------------


def binary_body(inputs: list[triton.InferInput], request_id: str) -> tuple[bytes, dict]:
    body, json_size = triton.InferenceServerClient.generate_request_body(
        inputs, request_id=request_id
    )
    headers = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
    return body, headers


def parse(response) -> triton.InferResult:
    length = response.headers.get("inference-header-content-length")
    return triton.InferenceServerClient.parse_response_body(
        response.content, header_length=None if length is None else int(length)
    )


async def send_all(url: str, jobs: list[tuple[str, bytes, dict]], concurrency: int, limit_s: float):
    """POST every job with ``concurrency`` workers; return the responses in job order."""
    responses: list[httpx.Response | BaseException | None] = [None] * len(jobs)
    next_job = iter(range(len(jobs)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            for i in next_job:
                path, body, headers = jobs[i]
                try:
                    responses[i] = await client.post(path, content=body, headers=headers)
                except Exception as exc:  # recorded, then asserted on
                    responses[i] = exc

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), limit_s)
    return responses


def test_concurrent_good_and_bad_requests_with_batching(server, http, reference):
    stats_url = "/v2/models/gather_batched/stats"
    runs_before = http.get(stats_url).json()["model_stats"][0]["execution_count"]
    jobs, expected = [], []
    for i in range(96):
        rows = 1 + i % 3
        x = RNG.normal(size=(rows, 4)).astype(np.float32)
        idx = RNG.integers(0, 4, size=(rows, 1)).astype(np.int64)
        # one request in twelve makes a batch fail (each of its requests is then run alone): with
        # more, every batch may hold one, and no batch of several requests would ever succeed
        kind = "runtime" if i % 12 == 2 else ("good", "good", "good", "shape", "json")[i % 5]
        if kind == "runtime":
            idx[-1, 0] = 99  # valid request, but onnxruntime fails on it inside a batch
        if kind == "shape":
            x = x[:, :3]
        body, headers = binary_body([triton_input("x", x), triton_input("idx", idx)], f"req-{i}")
        if kind == "json":
            body, headers = (
                b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, "three", 4]}]}',
                {},
            )
        jobs.append(("/v2/models/gather_batched/infer", body, headers))
        want = np.take_along_axis(x, idx, axis=1) if kind == "good" else None
        expected.append((kind, want))
    responses = asyncio.run(send_all(server.url, jobs, concurrency=24, limit_s=60))
    good = 0
    for i, ((kind, want), response) in enumerate(zip(expected, responses, strict=True)):
        assert isinstance(response, httpx.Response), (
            f"request {i} ({kind}) got no response: {response!r}"
        )
        if kind == "good":
            good += 1
            assert response.status_code == 200, f"good request {i} failed: {response.text}"
            result = parse(response)
            assert result.get_response()["id"] == f"req-{i}", "a response went to the wrong request"
            assert np.array_equal(result.as_numpy("y"), want), f"request {i}: wrong answer"
        else:
            status = {"runtime": 500, "shape": 400, "json": 400}[kind]
            assert response.status_code == status, (
                f"{kind} request {i}: expected {status}, got {response.status_code}"
            )
            assert response.json()["error"], "an error response without a message"
    runs = http.get(stats_url).json()["model_stats"][0]["execution_count"] - runs_before
    assert runs < good, (
        f"expected batches of several requests: {runs} runs for {good} good requests"
    )


class RawResponse:
    """Status, lower-case headers and body of one HTTP/1.1 response."""

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.text = content.decode(errors="replace")


async def send_all_keepalive(port: int, jobs, concurrency: int, limit_s: float) -> list:
    """A lean HTTP/1.1 keep-alive client (httpx costs ~1 ms of CPU per request, too much for a
    2,000-request test on 2 shared cores): ``concurrency`` connections, one request at a time each."""
    responses: list = [None] * len(jobs)
    next_job = iter(range(len(jobs)))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for i in next_job:
                path, body, headers = jobs[i]
                head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
                status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
                fields = dict(line.split(": ", 1) for line in lines if line)
                fields = {k.lower(): v for k, v in fields.items()}
                content = await reader.readexactly(int(fields["content-length"]))
                responses[i] = RawResponse(int(status_line.split()[1]), fields, content)
        except Exception as exc:  # recorded, then asserted on
            responses[i] = exc
        finally:
            writer.close()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), limit_s)
    return responses


def test_load_2000_requests_at_concurrency_32(server, http, reference):
    count, concurrency = 2000, 32
    stats_url = "/v2/models/mlp_batched/stats"
    before = http.get(stats_url).json()["model_stats"][0]
    xs = [features(1 + i % 4) for i in range(count)]
    jobs = []
    for i, x in enumerate(xs):
        body, headers = binary_body([triton_input("x", x)], str(i))
        jobs.append(("/v2/models/mlp_batched/infer", body, headers))
    started = time.perf_counter()
    responses = asyncio.run(send_all_keepalive(server.port, jobs, concurrency, limit_s=75))
    elapsed = time.perf_counter() - started
    errors = [
        r if not isinstance(r, RawResponse) else r.text
        for r in responses
        if not isinstance(r, RawResponse) or r.status_code != 200
    ]
    assert not errors, f"{len(errors)} of {count} requests failed, first: {errors[0]!r}"
    want = reference("mlp", "1", x=np.concatenate(xs))["logits"]
    got = []
    for i, response in enumerate(responses):
        result = parse(response)
        assert result.get_response()["id"] == str(i), (
            f"response {i} answers request {result.get_response()['id']}"
        )
        got.append(result.as_numpy("logits"))
    assert_close(np.concatenate(got), want, "2000 batched answers")
    after = http.get(stats_url).json()["model_stats"][0]
    served = (
        after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    )
    assert served == count, f"the server answered {served} requests, expected exactly {count}"
    runs = after["execution_count"] - before["execution_count"]
    print(
        f"\n{count} requests at concurrency {concurrency}: {elapsed:.1f} s, {count / elapsed:.0f} req/s, {runs} model runs"
    )


# ---- graceful shutdown -----------------------------------------------------------------------


@pytest.fixture
def slow_repo(tmp_path) -> Path:
    add_model(
        tmp_path,
        "slow",
        gather_model(),
        max_batch_size=64,
        dynamic_batching=True,
        max_queue_delay_microseconds=1_500_000,
    )
    return tmp_path


def gather_job(i: int) -> tuple[bytes, dict, np.ndarray]:
    x = np.full((1, 4), i, np.float32) + np.arange(4, dtype=np.float32)
    idx = np.array([[i % 4]], np.int64)
    body, headers = binary_body([triton_input("x", x), triton_input("idx", idx)], str(i))
    return body, headers, np.take_along_axis(x, idx, axis=1)


def post_all_in_threads(url: str, jobs, results: list) -> list[threading.Thread]:
    def post(i: int, body: bytes, headers: dict) -> None:
        try:
            results[i] = httpx.post(
                url + "/v2/models/slow/infer", content=body, headers=headers, timeout=30
            )
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=post, args=(i, b, h)) for i, (b, h, _) in enumerate(jobs)]
    for t in threads:
        t.start()
    return threads


def check_answered_once(jobs, results) -> None:
    for i, ((_, _, want), response) in enumerate(zip(jobs, results, strict=True)):
        assert isinstance(response, httpx.Response), f"request {i} was lost: {response!r}"
        assert response.status_code == 200, f"request {i}: {response.status_code} {response.text}"
        result = parse(response)
        assert result.get_response()["id"] == str(i) and np.array_equal(result.as_numpy("y"), want)


def test_stop_answers_in_flight_requests_exactly_once(slow_repo):
    handle = start(slow_repo, port=0)
    server_state = handle.app.state.server
    batcher = server_state.schedulers[("slow", "1")]
    jobs = [gather_job(i) for i in range(12)]
    results: list = [None] * len(jobs)
    threads = post_all_in_threads(handle.url, jobs, results)
    deadline = time.monotonic() + 10
    while batcher.queued < len(jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.queued == len(jobs), (
        f"expected {len(jobs)} queued requests, got {batcher.queued}"
    )
    handle.stop()  # while all 12 wait in the batcher's queue
    for t in threads:
        t.join(10)
    assert not handle.running, "the server still runs after stop()"
    check_answered_once(jobs, results)
    stats = server_state.stats[("slow", "1")]
    assert stats.success.count == len(jobs), (
        f"the server answered {stats.success.count} times, expected {len(jobs)}"
    )
    with pytest.raises(httpx.ConnectError):
        httpx.get(handle.url + "/v2/health/live", timeout=2)
    handle.stop()  # a second stop is harmless


def test_subprocess_server_serves_tritonclient_and_stops_gracefully(slow_repo, repo):
    with start(slow_repo, port=0, subprocess=True) as handle:
        assert handle.running and handle.models == ["slow"], repr(handle)
        assert "subprocess" in repr(handle) and handle.url.startswith("http://127.0.0.1:")
        tc = triton.InferenceServerClient(handle.address)
        assert (
            tc.is_server_ready()
            and tc.get_model_metadata("slow")["inputs"][1]["datatype"] == "INT64"
        )
        tc.close()
        jobs = [gather_job(i) for i in range(6)]
        results: list = [None] * len(jobs)
        threads = post_all_in_threads(handle.url, jobs, results)
        deadline = time.monotonic() + 10  # the requests wait 1.5 s in the batcher's queue...
        queued = 0
        while queued < len(jobs) and time.monotonic() < deadline:
            time.sleep(0.02)
            stats = httpx.get(handle.url + "/v2/models/slow/stats", timeout=5).json()
            queued = stats["model_stats"][0]["queued_requests"]
        assert queued == len(jobs), f"expected {len(jobs)} queued requests, got {queued}"
        # ...so SIGTERM arrives while all of them are in flight
        handle.stop()
        for t in threads:
            t.join(10)
        assert not handle.running
        assert handle.log_path is not None and not handle.log_path.exists(), (
            f"stop() should delete the server's log file, {handle.log_path} is still there"
        )
        assert isinstance(handle.log, str), f"expected the log's text, got {handle.log!r}"
    check_answered_once(jobs, results)


def test_subprocess_start_failure_shows_the_log(tmp_path):
    (tmp_path / "broken").mkdir()
    with pytest.raises(ServerError, match="has no version folder"):
        start(tmp_path, subprocess=True, startup_timeout=60)


# ---- starting: errors, CLI --------------------------------------------------------------------


def test_start_errors_name_the_problem(tmp_path, repo):
    with pytest.raises(RepositoryError, match="no models in"):
        start(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            start(repo, port=port)


def test_cli_help_and_errors(tmp_path, repo, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "python -m course.serve" in text and "model_dir" in text and "dynamic_batching" in text
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main([str(repo), "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen" in capsys.readouterr().err
    assert course.serve.start is start and callable(course.serve.create_app)


def test_handle_properties_and_tcp_nodelay(server, http):
    assert server.port > 0 and server.address == f"127.0.0.1:{server.port}"
    assert "thread, running" in repr(server)
    assert server.models == ["gather_batched", "mlp", "mlp_batched", "text"]
    assert http.get("/v2/health/live").status_code == 200  # keeps a connection open
    connections = list(server._server.server_state.connections)
    assert connections, "expected an open keep-alive connection"
    for connection in connections:
        sock = connection.transport.get_extra_info("socket")
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert nodelay, "TCP_NODELAY is off: Nagle and delayed ACKs add ~40 ms to each response"


def test_executor_threads_are_bounded(repo):
    with start(repo, workers=1) as handle:
        assert handle.app.state.server.workers == 1
        with ThreadPoolExecutor(4) as pool:
            bodies = [body_of([GOOD_X])] * 8
            codes = list(
                pool.map(
                    lambda b: (
                        httpx.post(handle.url + "/v2/models/mlp/infer", content=b).status_code
                    ),
                    bodies,
                )
            )
        assert codes == [200] * 8, codes


def _read_response(sock: socket.socket, head_only: bool = False) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if head_only:
        return head, rest
    while len(rest) < length:
        rest += sock.recv(65536)
    return head, rest


def test_one_send_per_response_keeps_head_100_continue_and_keep_alive_working(server):
    """The head of a response waits for its body to go out in one send: a HEAD request (no body
    follows), an interim 100 Continue (the client waits for it) and the next request on the same
    connection must all still be answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"HEAD /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = _read_response(sock, head_only=True)
        assert head.startswith(b"HTTP/1.1 200"), head
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, FEATURES],
                        "datatype": "FP32",
                        "data": [0.5] * FEATURES,
                    }
                ]
            }  # fmt: skip
        ).encode()
        sock.sendall(
            b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        interim, rest = _read_response(sock, head_only=True)
        assert interim.startswith(b"HTTP/1.1 100"), f"expected 100 Continue first, got {interim!r}"
        assert rest == b"", rest
        sock.sendall(body)
        head, payload = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200"), (head, payload)
        assert json.loads(payload)["outputs"], payload
        sock.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        head, payload = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200") and json.loads(payload) == {"ready": True}


def test_model_instances_serve_tritonclient_and_report_their_group(tmp_path, reference):
    """Two instances of a batched model behind HTTP: same answers as onnxruntime, the config
    endpoint reports the group, and the pool has a thread per instance even with workers=1."""
    add_model(
        tmp_path,
        "mlp",
        mlp_model(1),
        max_batch_size=8,
        dynamic_batching=True,
        max_queue_delay_microseconds=2000,
        instance_count=2,
    )
    x = features(24)
    with start(tmp_path, workers=1) as handle:
        executor = handle.app.state.server.executor
        assert executor._max_workers == 2, f"expected 2 threads, got {executor._max_workers}"
        client = triton.InferenceServerClient(handle.address, concurrency=8)
        try:
            pending = [
                client.async_infer("mlp", [triton_input("x", x[i : i + 1])]) for i in range(24)
            ]
            got = np.concatenate([p.get_result().as_numpy("logits") for p in pending])
            config = client.get_model_config("mlp")
        finally:
            client.close()
    assert_close(got, reference("mlp", "1", x=x)["logits"], "logits from 2 instances")
    assert config["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}], config
