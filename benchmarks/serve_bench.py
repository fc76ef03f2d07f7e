"""Throughput and latency of course.serve against in-process onnxruntime on the same inputs.

First, with the encoder among the models, what batching can give at all: the encoder in this
process, without a server, at batch 1 and batch 32 for requests of 8, 16 and 32 tokens, with all
cores, one thread, and one one-thread session per core at once (:func:`batching_study`). A
request of t tokens already gives each matrix product t rows, so the gain of batch 32 over batch
1 shrinks as requests grow: no server's batching can beat it. Then, for each model, the same run
measures:

- the server (``python -m course.serve`` in a subprocess, on 127.0.0.1) at concurrency 1, 8 and
  32, with dynamic batching off, on with one model instance, and on with one instance per core
  (Triton's ``instance_group``: a one-thread session each, batches run on whichever is free),
  one row per request, requests in the binary tensor format that ``tritonclient.http`` sends,
  over keep-alive connections from a lean asyncio client;
- the ceiling: onnxruntime in this process on the same rows at the same batch sizes as the
  server ran (batch 1 without batching; the server's own batch-size histogram with batching),
  for each size the best of one run at a time with onnxruntime's default threads, one run at a
  time with one thread, and one one-thread session per core running at once;
- with ``--pytriton PYTHON``: a real Triton Inference Server started by PyTriton
  (``benchmarks/pytriton_server.py``, run by PYTHON from a separate environment: ``make
  pytriton-env``), serving the same model with the same dynamic batching settings, measured with
  the same client and requests after course.serve has stopped (both batched configurations:
  PyTriton makes one Triton model instance per inference function); course.serve's throughput
  is then given as a ratio to Triton's for the same configuration.

The models: the course's digits MLP, two wider MLPs with random weights, and the course's text
encoder (``course.text_models``, a BERT-style encoder) on requests of ``ENCODER_SEQ`` tokens.

Run: ``python -m benchmarks.serve_bench`` (``--quick`` for a shorter run); the table, a summary and
the machine's load go to ``benchmarks/results/serve.json`` (``--json PATH`` elsewhere), which
lesson 7 shows. Client and server share this machine's cores: say how many with the figures, and
the load average (printed before and after), which other work on the machine raises.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from course.serve import add_model, encode_request, start

CONCURRENCY = (1, 8, 32)
RESULTS = Path(__file__).resolve().parent / "results" / "serve.json"
MAX_BATCH = 32


@dataclass
class Row:
    """One line of the table."""

    server: str
    model: str
    batching: str
    instances: int
    concurrency: int
    requests: int
    throughput: float  # requests (= rows) per second
    p50_ms: float
    p99_ms: float
    mean_batch: float
    ceiling: float  # in-process onnxruntime rows per second at the same batch sizes
    errors: int

    @property
    def ratio(self) -> float:
        return self.throughput / self.ceiling


# ---- models ------------------------------------------------------------------------------------


def course_mlp() -> tuple[onnx.ModelProto, np.ndarray]:
    """The course's digits MLP (course.data), exported with the dynamo exporter, dynamic batch."""
    import torch

    from course import data

    split = data.load_digits_split()
    model = data.train_torch_mlp(split).eval()
    example = torch.from_numpy(split.X_test[:2])
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
    )
    proto = program.model_proto
    return proto, split.X_test.astype(np.float32)


def wide_mlp(
    width: int = 1024, features: int = 64, seed: int = 0
) -> tuple[onnx.ModelProto, np.ndarray]:
    """A compute-heavier MLP (64 -> width -> width -> 10) built with onnx.helper."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    shapes = [(features, width), (width, width), (width, 10)]
    inits, nodes, current = [], [], "x"
    for i, (n_in, n_out) in enumerate(shapes):
        w = (rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"W{i}"),
            numpy_helper.from_array(np.zeros(n_out, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [current, f"W{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}" if i < 2 else "logits"]),
        ]
        if i < 2:
            nodes.append(helper.make_node("Relu", [f"a{i}"], [f"h{i}"]))
            current = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "wide_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model, rng.random((512, features), dtype=np.float32)


#: Tokens per encoder request: a search query or a short question to a classifier, the requests a
#: server gathers in numbers. A longer request gives each of its matrix products more rows
#: already, leaving batching less to gain: the in-process study (:func:`batching_study`, 8, 16
#: and 32 tokens) measures by how much, and the summary puts that ceiling beside the server's
#: gain. Every request has the same length: course.serve batches requests of the same shape only.
ENCODER_SEQ = 8


def encoder(batch: int = 256, seq: int = ENCODER_SEQ) -> tuple[Path, Rows]:
    """The course's text encoder (``course.text_models``) and ``batch`` token rows of ``seq``."""
    from course import text_models

    return text_models.encoder_onnx(), text_models.sample_inputs(batch, seq, seed=1)


# ---- the client ----------------------------------------------------------------------------------


def raw_request(host: str, port: int, path: str, body: bytes, header_length: int | None) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/octet-stream",
        f"Content-Length: {len(body)}",
    ]
    if header_length is not None:
        head.append(f"Inference-Header-Content-Length: {header_length}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _worker(
    host: str,
    port: int,
    requests: list[bytes],
    next_index: Any,
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i in next_index:
            started = time.perf_counter()
            writer.write(requests[i])
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if head[9:12] != b"200":
                errors.append(body[:200].decode(errors="replace"))
    finally:
        writer.close()


async def _load(
    host: str, port: int, requests: list[bytes], concurrency: int
) -> tuple[float, list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    next_index = iter(range(len(requests)))
    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(
            *(
                _worker(host, port, requests, next_index, latencies, errors)
                for _ in range(concurrency)
            )
        ),
        timeout=300,
    )
    return time.perf_counter() - started, latencies, errors


def stats(url: str, model: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/v2/models/{model}/stats", timeout=10) as response:
        return json.load(response)["model_stats"][0]


def batch_histogram(before: dict[str, Any], after: dict[str, Any]) -> dict[int, int]:
    old = {b["batch_size"]: b["compute_infer"]["count"] for b in before["batch_stats"]}
    return {
        b["batch_size"]: b["compute_infer"]["count"] - old.get(b["batch_size"], 0)
        for b in after["batch_stats"]
        if b["compute_infer"]["count"] - old.get(b["batch_size"], 0) > 0
    }


# ---- the ceiling ---------------------------------------------------------------------------------


Rows = dict[str, np.ndarray]  # every input of the model by name, rows along the first axis


def take_rows(rows: Rows, batch: int) -> Rows:
    """The first ``batch`` rows of every input (cycled when there are fewer)."""
    return {
        name: value[:batch] if batch <= len(value) else np.resize(value, (batch, *value.shape[1:]))
        for name, value in rows.items()
    }


def ort_seconds_per_run(
    session: ort.InferenceSession, rows: Rows, batch: int, budget_s: float = 0.3
) -> float:
    """Median seconds of one session.run on ``batch`` rows: blocks of runs within a time budget,
    at least 5 blocks, 3 for runs over 0.1 s (a short window may catch a burst of other work)."""
    feed = take_rows(rows, batch)
    started = time.perf_counter()
    for _ in range(2):
        session.run(None, feed)
    per_run = (time.perf_counter() - started) / 2
    block = max(1, min(10, int(budget_s / 5 / max(per_run, 1e-9))))  # about 5 blocks in budget
    timings = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or len(timings) < (5 if per_run < 0.1 else 3):
        started = time.perf_counter()
        for _ in range(block):
            session.run(None, feed)
        timings.append((time.perf_counter() - started) / block)
    return float(np.median(timings))


def parallel_seconds_per_run(
    sessions: list[ort.InferenceSession], rows: Rows, batch: int, budget_s: float = 0.3
) -> float:
    """Seconds per run of ``batch`` rows when each of ``sessions`` runs in its own thread at once
    (the layout of as many one-thread model instances): one over the sum of the threads' rates,
    each thread's rate its runs over the time from the common start to its last run's end."""
    feed = take_rows(rows, batch)
    for session in sessions:
        session.run(None, feed)
    finished: list[list[float]] = [[] for _ in sessions]
    start = threading.Barrier(len(sessions) + 1)
    stop = threading.Event()

    def loop(i: int) -> None:
        start.wait()
        while not stop.is_set() or len(finished[i]) < 3:
            sessions[i].run(None, feed)
            finished[i].append(time.perf_counter())

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(sessions))]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(budget_s)
    stop.set()
    for thread in threads:
        thread.join()
    rate = sum(len(times) / (times[-1] - began) for times in finished)
    return 1 / rate


def _session(model_path: str, threads: int | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


class CeilingSessions:
    """The in-process candidates: one run at a time with onnxruntime's default threads (all
    cores) or one thread, and one one-thread session per core running at once.

    On a quiet machine one run with all cores is often the fastest at large batches; at small
    batches a run cannot keep every core busy and parallel one-thread runs win; on a busy machine
    a multi-threaded run waits for its slowest thread. The ceiling takes the best of the three
    for each batch size, so the server is held to the best onnxruntime does on those batches.
    """

    def __init__(self, model_path: str) -> None:
        cores = os.cpu_count() or 1
        self.default = _session(model_path, None)
        self.single = [_session(model_path, 1) for _ in range(max(cores, 1))]

    def seconds_per_run(self, rows: Rows, batch: int) -> float:
        candidates = [
            ort_seconds_per_run(self.default, rows, batch),
            ort_seconds_per_run(self.single[0], rows, batch),
        ]
        if len(self.single) > 1:
            candidates.append(parallel_seconds_per_run(self.single, rows, batch))
        return min(candidates)


def ceiling(
    sessions: CeilingSessions,
    rows: Rows,
    histogram: dict[int, int],
    cache: dict[int, float],
) -> float:
    """Rows per second onnxruntime reaches in-process on the same batches (for each batch size
    the best layout of :class:`CeilingSessions`)."""
    total_rows = sum(size * count for size, count in histogram.items())
    seconds = 0.0
    for size, count in histogram.items():
        if size not in cache:
            cache[size] = sessions.seconds_per_run(rows, size)
        seconds += cache[size] * count
    return total_rows / seconds


# ---- what batching can give, in-process -------------------------------------------------------

#: Tokens per request in the in-process study of batching's ceiling for the encoder.
STUDY_TOKENS = (8, 16, 32)


def batching_study(
    model_path: str, tokens: tuple[int, ...] = STUDY_TOKENS, batch: int = MAX_BATCH
) -> list[dict[str, Any]]:
    """The encoder in this process, without a server: rows per second at batch 1 and at
    ``batch`` for each request length, with one thread, all cores, and one one-thread session
    per core at once. ``gain`` is the best at ``batch`` over the best at batch 1: what dynamic
    batching can give at best, whatever the server.
    """
    sessions = CeilingSessions(model_path)
    cores = os.cpu_count() or 1
    study = []
    for seq in tokens:
        from course import text_models

        rows = text_models.sample_inputs(batch, seq, seed=1)
        rates: dict[str, float] = {}
        for size in (1, batch):
            layouts = {
                f"batch {size}, {cores} threads": ort_seconds_per_run(sessions.default, rows, size),
                f"batch {size}, 1 thread": ort_seconds_per_run(sessions.single[0], rows, size),
            }
            if cores > 1:
                layouts[f"batch {size}, {cores} x 1 thread at once"] = parallel_seconds_per_run(
                    sessions.single, rows, size
                )
            rates |= {name: size / seconds for name, seconds in layouts.items()}
        best = {
            size: max(v for k, v in rates.items() if k.startswith(f"batch {size},"))
            for size in (1, batch)
        }
        study.append(
            {"tokens": seq, "rows_per_s": rates, "gain": best[batch] / best[1], "batch": batch}
        )
        print(
            f"in-process, {seq} tokens per request: "
            + ", ".join(f"{k}: {v:,.1f} rows/s" for k, v in rates.items())
            + f"; batch {batch} gives {best[batch] / best[1]:.2f}x batch 1",
            flush=True,
        )
    return study


# ---- the benchmark -------------------------------------------------------------------------------


def measure(
    server: str,
    name: str,
    config: str,
    host: str,
    port: int,
    rows: Rows,
    count: int,
    concurrency: int,
    sessions: CeilingSessions,
    cache: dict[int, float],
) -> Row:
    """Load model ``config`` of a v2 server at ``host:port``; one row of the table."""
    url = f"http://{host}:{port}"
    requests = []
    for i in range(count):
        body, header_length = encode_request({k: v[i % len(v)][None] for k, v in rows.items()})
        requests.append(raw_request(host, port, f"/v2/models/{config}/infer", body, header_length))
    warm = requests[: min(max(concurrency * 2, 20), count)]
    asyncio.run(_load(host, port, warm, concurrency))  # warm-up
    before = stats(url, config)
    elapsed, latencies, errors = asyncio.run(_load(host, port, requests, concurrency))
    after = stats(url, config)
    histogram = batch_histogram(before, after)
    if errors or not histogram:
        raise RuntimeError(f"{server} {name}/{config}: {len(errors)} errors, first: {errors[:1]}")
    runs = sum(histogram.values())
    lat = np.array(latencies) * 1000
    return Row(
        server=server,
        model=name,
        batching="off" if config == "plain" else "on",
        instances=CONFIGS[config][1],
        concurrency=concurrency,
        requests=count,
        throughput=count / elapsed,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        mean_batch=(after["inference_count"] - before["inference_count"]) / max(runs, 1),
        ceiling=ceiling(sessions, rows, histogram, cache),
        errors=len(errors) + count - len(latencies),
    )


#: The server's configurations: name -> (dynamic batching, instances). ``plain`` and ``batched``
#: have no instance_group (course.serve's defaults: unbatched runs overlap on one session with
#: cores // workers threads; batches run one at a time on all cores); ``batched_xN`` has an
#: instance_group of one instance per core, one thread each, as Triton's CPU instances are.
CORES = os.cpu_count() or 1
CONFIGS: dict[str, tuple[bool, int]] = {"plain": (False, 1), "batched": (True, 1)}
#: What went differently from plan in this run (written to the results file).
NOTES: list[str] = []
if CORES > 1:
    CONFIGS[f"batched_x{CORES}"] = (True, CORES)


def bench_model(
    name: str,
    model: onnx.ModelProto | Path,
    rows: np.ndarray | Rows,
    requests_at: dict[int, int],
    delay_us: int,
    pytriton: str | None = None,
) -> list[Row]:
    table: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as root:
        for config, (batched, instances) in CONFIGS.items():
            add_model(
                root,
                config,
                model,
                max_batch_size=MAX_BATCH,
                dynamic_batching=batched,
                max_queue_delay_microseconds=delay_us,
                instance_count=instances if instances > 1 else None,
            )
        model_path = str(Path(root) / "plain" / "1" / "model.onnx")
        sessions = CeilingSessions(model_path)
        cache: dict[int, float] = {}
        if isinstance(rows, np.ndarray):
            rows = {sessions.default.get_inputs()[0].name: rows}
        feed: Rows = rows

        def load(server: str, configs: tuple[str, ...], host: str, port: int) -> None:
            for config in configs:
                for concurrency in CONCURRENCY:
                    count = requests_at[concurrency]
                    row = measure(
                        server, name, config, host, port, feed, count, concurrency, sessions, cache
                    )
                    table.append(row)
                    print(format_row(row), flush=True)

        with start(root, port=0, subprocess=True) as ours:
            host, port = ours.address.split(":")
            load("course.serve", tuple(CONFIGS), host, int(port))
        if pytriton:
            # Triton serves the batched configurations: PyTriton's @batch models always batch
            batched = tuple(c for c, (b, _) in CONFIGS.items() if b)
            try:
                with pytriton_server(pytriton, model_path, delay_us) as triton_port:
                    load("triton (PyTriton)", batched, "127.0.0.1", triton_port)
            except RuntimeError as exc:
                if CORES == 1 or pytriton_server.HANDSHAKE_RACE not in str(exc):
                    raise
                note = (
                    f"PyTriton could not start {CORES} instances of {name} (its instance "
                    "handshake, every try): Triton's rows for one instance only"
                )
                NOTES.append(note)
                print(note, flush=True)
                with pytriton_server(pytriton, model_path, delay_us, instances=1) as triton_port:
                    load("triton (PyTriton)", ("batched",), "127.0.0.1", triton_port)
    return table


# ---- Triton, through PyTriton --------------------------------------------------------------------


def _free_ports(count: int) -> int:
    """A port p such that p .. p+count-1 are free on 127.0.0.1 now (Triton wants three)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise RuntimeError("no run of free ports found for Triton")


def wait_ready(
    url: str,
    deadline_s: float,
    paths: tuple[str, ...] = ("/v2/health/ready",),
    alive: Any = lambda: True,
    log: Any = lambda: "",
    what: str = "the server",
    interval_s: float = 0.25,
) -> float:
    """Poll ``url`` + each of ``paths`` until all answer 200; return the seconds it took.

    Readiness comes from the protocol's own endpoint, never from the server's log: Triton's log
    lines and the side process's own prints share one pipe and interleave mid-line. Raises
    RuntimeError, with ``log()`` (the side process's output so far), when ``alive()`` turns false
    or ``deadline_s`` seconds pass first.
    """
    started = time.monotonic()
    pending = list(paths)
    probe = f"{url}{pending[0]}"
    last = "no answer yet"
    while True:
        while pending:
            probe = f"{url}{pending[0]}"
            try:
                with urllib.request.urlopen(probe, timeout=max(interval_s, 1.0)) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:  # refused, reset, timed out: not listening yet
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
                break
            last = f"HTTP {status}"
            if status != 200:
                break
            pending.pop(0)
        if not pending:
            return time.monotonic() - started
        waited = time.monotonic() - started
        if not alive():
            raise RuntimeError(
                f"{what} exited before {probe} answered 200 (after {waited:.1f} s, last: {last}); "
                f"its output:\n{log()}"
            )
        if waited > deadline_s:
            raise RuntimeError(
                f"{what} was not ready within {deadline_s:.0f} s: {probe} last gave {last}; "
                f"its output:\n{log()}"
            )
        time.sleep(interval_s)


class pytriton_server:  # noqa: N801 (a context manager used like a function)
    """Start ``benchmarks/pytriton_server.py`` with ``python``; yields the HTTP port.

    Ready when Triton's ``/v2/health/ready`` and each model's ``/ready`` answer 200 (polled, at
    most ``timeout`` seconds; the process's output is shown on failure).

    A start that fails on PyTriton's instance handshake is retried (at most ``attempts`` starts in
    all, on new ports): the second and later instances of a model wait one second for the first
    instance's handshake socket (``pytriton.proxy.communication.get_config_from_handshake_server``,
    ``timeout_s=1.0``), which a busy machine can miss. Any other failure is raised at once.
    """

    #: in the traceback of either way the race shows (a TimeoutError, or a BlockingIOError when the
    #: socket appears just before the second is up)
    HANDSHAKE_RACE = "in get_config_from_handshake_server"

    def __init__(
        self,
        python: str,
        model_path: str,
        delay_us: int,
        timeout: float = 180,
        script: str | None = None,
        attempts: int = 3,
        instances: int = CORES,
    ) -> None:
        self.attempts = attempts
        self.models = ["batched"] + ([f"batched_x{instances}"] if instances > 1 else [])
        self.command = [
            python,
            script or str(Path(__file__).with_name("pytriton_server.py")),
            model_path,
            "--http-port",
            str(_free_ports(3)),
            "--max-batch",
            str(MAX_BATCH),
            "--delay-us",
            str(delay_us),
            "--instances",
            str(instances),
        ]
        self.port = int(self.command[4])
        self.timeout = timeout
        self.log: list[str] = []

    def __enter__(self) -> int:
        for attempt in range(1, self.attempts + 1):
            try:
                return self._start()
            except RuntimeError:
                if attempt == self.attempts or not any(self.HANDSHAKE_RACE in x for x in self.log):
                    raise
                print(
                    f"PyTriton start {attempt} missed its instance handshake (a busy machine): "
                    "starting it again",
                    flush=True,
                )
                self.port = _free_ports(3)
                self.command[4] = str(self.port)
                self.log = []
        raise AssertionError("unreachable")  # pragma: no cover

    def _start(self) -> int:
        python = self.command[0]
        libdir = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        env = dict(os.environ)
        # Triton's Python backend stub links libpython: pyenv-style builds keep it in LIBDIR
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p
        )
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,  # Triton's own processes are stopped with the group
        )

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.log.append(line.rstrip())

        threading.Thread(target=pump, daemon=True).start()
        try:
            wait_ready(
                f"http://127.0.0.1:{self.port}",
                self.timeout,
                ("/v2/health/ready", *(f"/v2/models/{m}/ready" for m in self.models)),
                alive=lambda: self.process.poll() is None,
                log=lambda: "\n".join(self.log[-40:]),
                what=f"PyTriton ({' '.join(self.command)})",
            )
        except BaseException:
            self._stop()
            raise
        return self.port

    def _stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __exit__(self, *exc_info: object) -> None:
        self._stop()


HEADER = (
    "| server | model | batching | instances | concurrency | requests | throughput (req/s) "
    "| p50 (ms) | p99 (ms) | mean batch | onnxruntime in-process, same batches (rows/s) "
    "| server / in-process | errors |"
)


def format_row(row: Row) -> str:
    return (
        f"| {row.server} | {row.model} | {row.batching} | {row.instances} | {row.concurrency} "
        f"| {row.requests} | {row.throughput:,.0f} "
        f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {row.mean_batch:.1f} | {row.ceiling:,.0f} "
        f"| {row.ratio:.1%} | {row.errors} |"
    )


def label(row: Row) -> str:
    """``off``, ``on`` or ``on, N instances``: the server configuration of a row."""
    if row.batching == "off":
        return "off"
    return "on" if row.instances == 1 else f"on, {row.instances} instances"


def summarise(table: list[Row]) -> dict[str, dict[str, Any]]:
    """Per model, at 32 clients: each batched configuration's throughput over no batching's (and
    what in-process onnxruntime gives on the same batches over batch 1, the ceiling of batching),
    the server's fraction of in-process onnxruntime, and (with Triton rows) course.serve's
    throughput as a ratio to Triton's for the same configuration at each concurrency."""
    summary: dict[str, dict[str, Any]] = {}
    ours, triton = "course.serve", "triton (PyTriton)"
    for name in dict.fromkeys(row.model for row in table):
        by = {(r.server, label(r), r.concurrency): r for r in table if r.model == name}
        plain = by[(ours, "off", 32)]
        configs = [c for (server, c, n) in by if server == ours and n == 32 and c != "off"]
        entry: dict[str, Any] = {
            "batching_gain_at_32": {
                c: by[(ours, c, 32)].throughput / plain.throughput for c in configs
            },
            # what batching can give at best: in-process onnxruntime on the batches the server ran
            # with batching, against in-process onnxruntime at batch 1
            "in_process_batching_gain_at_32": {
                c: by[(ours, c, 32)].ceiling / plain.ceiling for c in configs
            },
            "server_vs_in_process_at_32": {c: by[(ours, c, 32)].ratio for c in ["off", *configs]},
        }
        theirs = [c for (server, c, n) in by if server == triton and n == 32]
        if theirs:
            entry["course_serve_vs_triton"] = {
                c: {
                    n: by[(ours, c, n)].throughput / by[(triton, c, n)].throughput
                    for n in CONCURRENCY
                }
                for c in theirs
            }
            entry["triton_vs_in_process_at_32"] = {c: by[(triton, c, 32)].ratio for c in theirs}
        summary[name] = entry
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serve_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="few requests: a smoke run")
    parser.add_argument(
        "--models",
        default="course_mlp,wide_mlp,heavy_mlp,encoder",
        help="comma-separated: course_mlp (64-64-64-10, the course's digits MLP), wide_mlp "
        "(64-1024-1024-10), heavy_mlp (64-4096-4096-10), encoder (course.text_models' BERT-like "
        "encoder, --encoder-tokens tokens per request)",
    )
    parser.add_argument(
        "--encoder-tokens",
        type=int,
        default=ENCODER_SEQ,
        help=f"tokens per encoder request (default: {ENCODER_SEQ}); the in-process study of "
        f"batching's ceiling measures {', '.join(map(str, STUDY_TOKENS))} whatever this is",
    )
    parser.add_argument(
        "--delay-us", type=int, default=1000, help="max_queue_delay_microseconds with batching"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS,
        help=f"write the rows, the summary and the machine's load here (default: {RESULTS}; "
        "lesson 7 shows this file when it exists)",
    )
    parser.add_argument(
        "--pytriton",
        metavar="PYTHON",
        help="also serve each model through Triton (PyTriton) with this Python, from a separate "
        "environment: `make pytriton-env` builds build/pytriton-venv",
    )
    args = parser.parse_args(argv)
    requests_at = {1: 100, 8: 300, 32: 400} if args.quick else {1: 500, 8: 2000, 32: 3000}
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores "
        f"shared by client, server and anything else running (load average before: "
        f"{load_before:.1f}); Python {sys.version.split()[0]}, "
        f"onnxruntime {ort.__version__}"
    )
    if load_before > (os.cpu_count() or 1) / 2:
        print(
            f"warning: the machine is busy (load {load_before:.1f} on {os.cpu_count()} cores): "
            "the scheduler shares the cores per task, so the server and its client (several "
            "tasks) get a larger share than the in-process reference (one run at a time), and "
            "ratios to in-process onnxruntime can pass 100%; measure on a quiet machine"
        )
    builders = {
        "course_mlp": (course_mlp, 1),
        "wide_mlp": (wide_mlp, 1),
        "heavy_mlp": (lambda: wide_mlp(width=4096), 8),
        "encoder": (lambda: encoder(seq=args.encoder_tokens), 5),
    }
    study: list[dict[str, Any]] = []
    if "encoder" in args.models.split(","):
        from course import text_models

        study = batching_study(str(text_models.encoder_onnx()))
    print(HEADER)
    print("|" + "---|" * 13)
    table: list[Row] = []
    for name in args.models.split(","):
        build, fewer = builders[name]
        model, rows = build()
        counts = {c: max(n // fewer, 4 * c) for c, n in requests_at.items()}
        table += bench_model(name, model, rows, counts, args.delay_us, args.pytriton)
    load_after = os.getloadavg()[0]
    print(
        f"load average after the run: {load_after:.1f} (other work on the machine inflates times)"
    )
    summary = summarise(table)
    for name, entry in summary.items():
        for config, gain in entry["batching_gain_at_32"].items():
            print(
                f"{name}: batching {config} at concurrency 32 gives {gain:.2f}x the throughput "
                "without batching (in-process onnxruntime on the same batches gives "
                f"{entry['in_process_batching_gain_at_32'][config]:.2f}x batch 1); the server "
                f"reaches {entry['server_vs_in_process_at_32'][config]:.1%} of in-process "
                "onnxruntime on the same batches"
            )
        for config, ratios in entry.get("course_serve_vs_triton", {}).items():
            shown = ", ".join(f"{r:.2f}x at {c}" for c, r in ratios.items())
            print(
                f"{name}: course.serve's throughput / Triton's (PyTriton), batching {config}: {shown}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "command": "python -m benchmarks.serve_bench " + " ".join(argv or sys.argv[1:]),
            "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "quick": args.quick,
            "machine": {
                "processor": platform.processor() or platform.machine(),
                "logical_cores": os.cpu_count(),
                "load_before": load_before,
                "load_after": load_after,
                "python": sys.version.split()[0],
                "onnxruntime": ort.__version__,
            },
            "measured_under_load": load_before > (os.cpu_count() or 1) / 2
            or load_after > (os.cpu_count() or 1) / 2,
            "seconds": time.monotonic() - began,
            "encoder_tokens": args.encoder_tokens,
            "batching_study": study,
            "delay_us": args.delay_us,
            "notes": NOTES,
            "rows": [asdict(r) | {"ratio": r.ratio} for r in table],
            "summary": summary,
        }
        args.json.write_text(json.dumps(record, indent=2))
        print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
