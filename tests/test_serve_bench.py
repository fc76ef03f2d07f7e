"""benchmarks.serve_bench: the readiness poll of the Triton side process, and a small real run.

The side processes here are plain Python scripts standing in for PyTriton: what is tested is the
benchmark's own deadline and error message, not Triton. The load run uses a real course.serve
subprocess on 127.0.0.1, bounded in requests.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import serve_bench
from course.serve import add_model, start

NEVER_READY = """
import sys, time
print("I0000 model_lifecycle.cc] loading: batREADY", flush=True)
print("READY", flush=True)  # a READY line must not be taken for readiness
time.sleep(600)
"""

CRASHES = """
import sys
print("E0000 server.cc] failed to load 'batched': no such backend", flush=True)
sys.exit(3)
"""


def side_script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "side.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_side_process_that_never_gets_ready_fails_within_the_deadline(tmp_path):
    server = serve_bench.pytriton_server(
        sys.executable, "model.onnx", 1000, timeout=2.0, script=side_script(tmp_path, NEVER_READY)
    )
    started = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        server.__enter__()
    took = time.monotonic() - started
    message = str(info.value)
    assert took < 10, f"expected the failure within about the 2 s deadline, got {took:.1f} s"
    assert "was not ready within 2 s" in message, message
    assert f"http://127.0.0.1:{server.port}/v2/health/ready" in message, message
    assert "batREADY" in message, f"expected the side process's output in: {message}"
    assert server.process.poll() is not None, "expected the side process to be stopped"


def test_side_process_that_exits_fails_at_once_with_its_output(tmp_path):
    server = serve_bench.pytriton_server(
        sys.executable, "model.onnx", 1000, timeout=60.0, script=side_script(tmp_path, CRASHES)
    )
    started = time.monotonic()
    with pytest.raises(RuntimeError) as info:
        server.__enter__()
    assert time.monotonic() - started < 10, "expected an early failure, not the 60 s deadline"
    assert "exited before" in str(info.value), str(info.value)
    assert "no such backend" in str(info.value), str(info.value)


RACES = """
import pathlib, sys
starts = pathlib.Path(__file__).with_name("starts")
starts.write_text(starts.read_text() + "x" if starts.exists() else "x")
print('  File "/tmp/f/1/communication.py", line 558, in get_config_from_handshake_server')
print("BlockingIOError: [Errno 11] Resource temporarily unavailable")
sys.exit(1)
"""


def test_only_the_instance_handshake_race_is_retried(tmp_path):
    server = serve_bench.pytriton_server(
        sys.executable,
        "model.onnx",
        1000,
        timeout=60.0,
        script=side_script(tmp_path, RACES),
        attempts=3,
    )
    with pytest.raises(RuntimeError, match="exited before"):
        server.__enter__()
    starts = (tmp_path / "starts").read_text()
    assert starts == "xxx", f"expected 3 starts for the handshake race, got {len(starts)}"
    (tmp_path / "starts").unlink()
    crashes = serve_bench.pytriton_server(
        sys.executable, "model.onnx", 1000, timeout=60.0, script=side_script(tmp_path, CRASHES)
    )
    with pytest.raises(RuntimeError, match="no such backend"):
        crashes.__enter__()
    assert not (tmp_path / "starts").exists(), "another failure must not be retried"


def test_wait_ready_checks_every_path_on_a_real_server(tmp_path):
    model, _ = serve_bench.wide_mlp(width=16)
    add_model(tmp_path, "batched", model, max_batch_size=4)
    with start(tmp_path, port=0) as server:
        took = serve_bench.wait_ready(
            server.url, 10, ("/v2/health/ready", "/v2/models/batched/ready")
        )
        assert took < 10
        with pytest.raises(RuntimeError, match="HTTP 404"):
            serve_bench.wait_ready(server.url, 0.3, ("/v2/models/absent/ready",))


def test_bench_model_measures_every_configuration(tmp_path):
    model, rows = serve_bench.wide_mlp(width=64)
    table = serve_bench.bench_model("tiny", model, rows, {1: 8, 8: 16, 32: 64}, delay_us=2000)
    configs = [("off", 1), ("on", 1)]
    if serve_bench.CORES > 1:
        configs.append(("on", serve_bench.CORES))
    want = [(b, n, c) for b, n in configs for c in (1, 8, 32)]
    got = [(r.batching, r.instances, r.concurrency) for r in table]
    assert got == want, f"expected rows {want}, got {got}"
    for row in table:
        assert row.errors == 0, row
        assert row.throughput > 0 and row.ceiling > 0, row
        assert row.p50_ms <= row.p99_ms, row
    off32, on32 = table[2], table[5]
    assert off32.mean_batch == 1.0, f"expected batch 1 without batching, got {off32.mean_batch}"
    assert on32.mean_batch > 1.0, f"expected batches above 1 at 32 clients, got {on32.mean_batch}"


class Sleeper:
    """Stands in for a session whose runs take ``seconds`` of wall time without using a core."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, outputs, feed):
        time.sleep(self.seconds)


def test_parallel_runs_add_up_the_threads_rates():
    feed = {"x": np.zeros((4, 2), np.float32)}
    alone = serve_bench.parallel_seconds_per_run([Sleeper(0.02)], feed, 4, budget_s=0.1)
    both = serve_bench.parallel_seconds_per_run([Sleeper(0.02)] * 2, feed, 4, budget_s=0.1)
    assert 0.02 <= alone < 0.03, f"expected about 0.02 s per run alone, got {alone}"
    assert 0.01 <= both < 0.015, f"expected about 0.01 s per run with two at once, got {both}"


def test_multi_input_rows_are_cycled_per_input():
    rows = {"a": np.arange(6).reshape(3, 2), "b": np.arange(3).reshape(3, 1)}
    taken = serve_bench.take_rows(rows, 5)
    assert taken["a"].shape == (5, 2) and taken["b"].shape == (5, 1)
    assert taken["b"][:, 0].tolist() == [0, 1, 2, 0, 1]


def test_quick_run_writes_the_table_and_its_context(tmp_path, capsys):
    out = tmp_path / "serve.json"
    assert serve_bench.main(["--quick", "--models", "wide_mlp", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wide_mlp: batching on at concurrency 32 gives" in printed, printed
    saved = json.loads(out.read_text())
    assert saved["machine"]["logical_cores"] >= 1, saved["machine"]
    assert {r["model"] for r in saved["rows"]} == {"wide_mlp"}, saved["rows"]
    gains = saved["summary"]["wide_mlp"]["batching_gain_at_32"]
    assert gains and all(g > 0 for g in gains.values()), saved["summary"]
    assert saved["batching_study"] == [], "the encoder study runs only when the encoder is benched"
    assert isinstance(saved["measured_under_load"], bool) and saved["seconds"] > 0, saved
