"""course.loadtest against real servers on 127.0.0.1: course.serve, and tiny raw sockets that
misbehave on purpose (slow, closing, not HTTP). Every server is stopped in the test that starts
it; every load is bounded in count and time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper

import course.serve
from course import loadtest
from course.loadtest import LoadResult, LoadTestError


def relu_model():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    course.serve.add_model(root, "relu", relu_model(), max_batch_size=8)
    handle = course.serve.start(root, port=0)
    try:
        yield handle
    finally:
        handle.stop()


def bodies(n: int = 4) -> list:
    rows = np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)
    return [course.serve.encode_request({"x": rows[i : i + 1]}) for i in range(n)]


JSON_BODY = (
    b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'
)


@contextmanager
def raw_server(handler) -> Iterator[int]:
    """A loopback TCP server that runs ``handler(conn)`` per connection; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    stop = threading.Event()
    threads = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            t = threading.Thread(target=handler, args=(conn,), daemon=True)
            t.start()
            threads.append(t)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(2)
        sock.close()
        for t in threads:
            t.join(2)


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


# ------------------------------------------------------------------------------ against course.serve


def test_run_load_binary_bodies_all_succeed(server):
    result = loadtest.run_load(
        server.url, "/v2/models/relu/infer", bodies(), concurrency=4, requests=60, warmup=8
    )
    assert result.sent == 60 and result.ok == 60 and result.errors == 0, repr(result)
    assert result.completed == 60 and result.stopped_by == "requests"
    assert result.throughput_rps > 0 and result.elapsed_s > 0
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms
    assert result.mean_ms > 0
    assert "concurrency=4" in repr(result) and result.label == "concurrency 4"
    row = result.to_row()
    assert row["ok"] == 60 and row["p99_ms"] == result.p99_ms


def test_json_body_and_address_without_scheme(server):
    result = loadtest.run_load(
        server.address, "/v2/models/relu/infer", [JSON_BODY], requests=5, label="json"
    )
    assert result.ok == 5 and result.label == "json", repr(result)


def test_http_errors_are_counted_not_raised(server):
    bad = b'{"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [1]}]}'
    result = loadtest.run_load(server.url, "/v2/models/relu/infer", [bad], requests=6)
    assert result.errors == 6 and result.ok == 0 and result.completed == 6
    assert result.unanswered == 0
    assert result.error_samples[0].startswith("HTTP 400") and "nope" in result.error_samples[0]
    assert len(result.error_samples) == 5  # only the first few are kept
    assert result.throughput_rps == 0.0


def test_time_limit_stops_the_test(server):
    started = time.perf_counter()
    result = loadtest.run_load(
        server.url,
        "/v2/models/relu/infer",
        bodies(),
        concurrency=2,
        requests=20_000,
        time_limit_s=0.3,
    )
    assert result.stopped_by == "time", repr(result)
    assert result.sent < 20_000 and result.ok == result.sent
    assert time.perf_counter() - started < 5


def test_sweep_plot_and_dashboard(server):
    frame = loadtest.sweep(
        server.url,
        "/v2/models/relu/infer",
        bodies(),
        (1, 4),
        requests=40,
        warmup=4,
        label="relu",
    )
    assert list(frame["concurrency"]) == [1, 4] and (frame["ok"] == 40).all()
    assert {"littles_law_ms", "first_error", "p99_ms"} <= set(frame.columns)
    np.testing.assert_allclose(
        frame["littles_law_ms"], 1000 * frame["concurrency"] / frame["throughput_rps"]
    )
    other = frame.assign(label="other", throughput_rps=frame["throughput_rps"] / 2)
    both = pd.concat([frame, other], ignore_index=True)
    fig = loadtest.plot_sweep(both, title="t", highlight=("relu", 4))
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "t"
    assert fig.axes[0].get_xlabel() == "concurrent clients (count)"
    curve = loadtest.plot_operating_curve(both, highlight=("other", 1))
    assert curve.axes[0].get_xlabel() == "throughput (requests/s)"
    text = loadtest.dashboard_view(both, 3, "relu")  # 3 is nearest to level 4
    assert "4 concurrent clients" in text and "other configurations at 4 clients" in text
    assert "&nbsp;&nbsp;other: " in text
    assert "Little's law" in text and "vs 1 client(s)" in text
    panel = loadtest.serving_dashboard(both)
    assert "Little" in panel.output.value and "<img" in panel.output.value
    panel.controls["configuration"].value = "other"
    assert "other, 4 concurrent clients" in panel.output.value


def test_sweep_records_first_error(server):
    frame = loadtest.sweep(
        server.url, "/v2/models/missing/infer", [JSON_BODY], (1,), requests=3, warmup=0
    )
    assert frame["errors"].iloc[0] == 3 and "404" in frame["first_error"].iloc[0]
    assert np.isnan(frame["littles_law_ms"].iloc[0])


# ------------------------------------------------------------------------------ misbehaving servers


def test_timeouts_are_errors():
    def slow(conn):
        read_request(conn)
        time.sleep(0.5)
        conn.close()

    with raw_server(slow) as port:
        result = loadtest.run_load(
            f"http://127.0.0.1:{port}", "/x", [b"{}"], concurrency=2, requests=2, timeout_s=0.05
        )
    assert result.errors == 2 and result.completed == 0 and result.unanswered == 2
    assert result.error_samples[0].startswith("TimeoutError")
    assert "(2 unanswered)" in repr(result)
    assert np.isnan(result.p50_ms) and np.isnan(result.mean_ms)


def test_connection_close_reconnects():
    def once(conn):
        if read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        conn.close()

    with raw_server(once) as port:
        result = loadtest.run_load(f"http://127.0.0.1:{port}", "/x", [b"{}"], requests=4)
    assert result.ok == 4, repr(result)


def test_not_http_and_chunked_are_errors():
    def garbage(conn):
        if read_request(conn):
            conn.sendall(b"SSH-2.0\r\n\r\n")
        conn.close()

    def chunked(conn):
        if read_request(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        conn.close()

    for handler, expected in ((garbage, "not an HTTP response"), (chunked, "chunked")):
        with raw_server(handler) as port:
            result = loadtest.run_load(f"http://127.0.0.1:{port}", "/x", [b"{}"], requests=2)
        assert result.errors == 2 and expected in result.error_samples[0], result.error_samples


def test_extra_headers_are_sent():
    seen = []

    def echo(conn):
        while head := read_request(conn):
            seen.append(head)
            conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    with raw_server(echo) as port:
        result = loadtest.run_load(
            f"http://localhost:{port}",
            "/x",
            [(b"{}", 2)],
            requests=1,
            headers={"X-Trace": "1", "Content-Type": "application/x"},
        )
    assert result.errors == 1 and result.error_samples[0].startswith("HTTP 204")
    assert b"X-Trace: 1" in seen[0] and b"Inference-Header-Content-Length: 2" in seen[0]
    assert b"application/octet-stream" not in seen[0]


def test_no_server_raises_with_hint():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(LoadTestError, match="is the server running"):
        loadtest.run_load(f"http://127.0.0.1:{port}", "/x", [b"{}"], requests=1, warmup=1)


# ------------------------------------------------------------------------------ bad arguments


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("http://example.com:80", {}, "not a loopback address"),
        ("http://10.0.0.1", {}, "not a loopback address"),
        ("https://127.0.0.1", {}, "plain http"),
        ("http://:80", {}, "no host"),
        ("http://127.0.0.1:1", {"concurrency": 0}, "concurrency must be"),
        ("http://127.0.0.1:1", {"requests": 10**6}, "requests must be"),
        ("http://127.0.0.1:1", {"time_limit_s": 0}, "time_limit_s"),
        ("http://127.0.0.1:1", {"warmup": -1}, "warmup must be"),
        ("http://127.0.0.1:1", {"path": "v2"}, "must start with '/'"),
        ("http://127.0.0.1:1", {"bodies": []}, "bodies is empty"),
        ("http://127.0.0.1:1", {"bodies": ["text"]}, "must be bytes"),
    ],
)
def test_bad_arguments(url, kwargs, message):
    args = {"path": "/x", "bodies": [b"{}"], **kwargs}
    path, body_list = args.pop("path"), args.pop("bodies")
    with pytest.raises(LoadTestError, match=message):
        loadtest.run_load(url, path, body_list, **args)


def test_sweep_needs_levels():
    with pytest.raises(LoadTestError, match="concurrencies is empty"):
        loadtest.sweep("http://127.0.0.1:1", "/x", [b"{}"], ())


def test_allow_remote_passes_the_guard():
    # ::1 is loopback anyway; allow_remote only skips the guard, the port has no server
    with pytest.raises(LoadTestError, match="cannot connect"):
        loadtest.run_load("http://[::1]:1", "/x", [b"{}"], requests=1, allow_remote=True)


def test_littles_law():
    assert loadtest.littles_law_concurrency(2000.0, 4.0) == 8.0
    with pytest.raises(ValueError):
        loadtest.littles_law_concurrency(-1.0, 1.0)


def test_load_result_empty_and_zero_time():
    r = LoadResult("x", 1, sent=0, elapsed_s=0.0, latencies_ms=np.array([]))
    assert r.throughput_rps == 0.0 and np.isnan(r.p99_ms) and r.ok == 0


def test_frame_checks():
    with pytest.raises(ValueError, match="lacks columns"):
        loadtest.plot_sweep(pd.DataFrame({"label": ["a"]}))
    empty = pd.DataFrame(columns=["label", "concurrency", "throughput_rps", "p50_ms", "p99_ms"])
    with pytest.raises(ValueError, match="empty"):
        loadtest.dashboard_view(empty, 1, "a")
    frame = pd.DataFrame(
        {
            "label": ["a"],
            "concurrency": [2],
            "throughput_rps": [100.0],
            "p50_ms": [1.0],
            "p99_ms": [2.0],
            "errors": [3],
        }
    )
    with pytest.raises(ValueError, match="no measurements labelled 'b'"):
        loadtest.dashboard_view(frame, 1, "b")
    assert "errors: 3" in loadtest.dashboard_view(frame, 1, "a")


def test_ok_counts_answers_minus_error_answers():
    r = LoadResult(
        "mixed", 4, sent=10, elapsed_s=1.0, latencies_ms=np.ones(6), errors=5, unanswered=4
    )
    # 6 answers, 1 of them an error answer; 4 requests never answered
    assert r.ok == 5 and r.throughput_rps == 5.0 and r.to_row()["unanswered"] == 4
