"""course.profiling: real onnxruntime traces summarised, plotted, and bad files refused."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from course import profiling


def _mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.2, (64, 32)).astype(np.float32), "w1"),
        numpy_helper.from_array(np.zeros(32, np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.2, (32, 10)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


X = np.random.default_rng(0).random((16, 64), dtype=np.float32)


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profiling")
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(folder / "trace")
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(_mlp().SerializeToString(), so, providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, {"x": X})
    return sess.end_profiling()


def test_load_trace_reads_events(trace_path):
    trace = profiling.load_trace(trace_path)
    assert isinstance(trace, list) and trace, "a trace is a non-empty list of events"
    assert {"Session", "Node"} <= {e["cat"] for e in trace}


def test_kernel_events_are_time_ordered_operators(trace_path):
    events = profiling.kernel_events(profiling.load_trace(trace_path))
    ops = [e["args"]["op_name"] for e in events]
    assert ops[:4] == ["MatMul", "Add", "Relu", "MatMul"], ops
    assert len(ops) == 20, f"5 runs x 4 nodes expected, got {len(ops)}"
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)


def test_summarize_counts_runs_operators_and_overhead(trace_path):
    s = profiling.summarize(trace_path)
    assert s.path is not None and str(s.path) == str(trace_path)
    assert s.runs == 5
    assert s.calls == {"MatMul": 10, "Add": 5, "Relu": 5}, s.calls
    assert set(s.provider_us) == {"CPUExecutionProvider"}
    assert s.kernel_us == pytest.approx(sum(s.operator_us.values()))
    assert s.kernel_us <= s.run_us.sum() + 1e-9
    assert s.overhead_us >= 0
    assert 0 < s.share("MatMul") <= 1 and s.share("Conv") == 0
    assert any(k.startswith("model_loading") for k in s.session_us), s.session_us
    assert "session_initialization" in s.session_us
    assert len(s.node_us) == 4, s.node_us


def test_summarize_accepts_a_loaded_trace(trace_path):
    s = profiling.summarize(profiling.load_trace(trace_path))
    assert s.path is None and s.runs == 5


def test_to_frame_is_sorted_with_shares(trace_path):
    frame = profiling.summarize(trace_path).to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [
        "total_us",
        "us_per_run",
        "calls",
        "share_of_kernel_time",
    ]
    assert frame["total_us"].is_monotonic_decreasing
    assert frame["share_of_kernel_time"].sum() == pytest.approx(1.0)
    assert frame.attrs["runs"] == 5


def test_plot_shows_operators_and_overhead(trace_path):
    s = profiling.summarize(trace_path)
    fig = s.plot(top=2)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "outside kernels" and "other operators" in labels, labels
    assert "µs" in ax.get_xlabel() and ax.get_title()
    with pytest.raises(ValueError, match="top"):
        s.plot(top=0)


def test_plot_timeline_one_run(trace_path):
    trace = profiling.load_trace(trace_path)
    fig = profiling.plot_timeline(trace, run=0)
    ax = fig.axes[0]
    assert "run 1 of 5" in ax.get_title(), ax.get_title()
    assert len(ax.patches) == 1 + 4, "one band for the run and one bar per kernel"
    with pytest.raises(IndexError, match="out of range"):
        profiling.plot_timeline(trace, run=9)
    no_runs = [e for e in trace if e["name"] != "model_run"]
    with pytest.raises(profiling.TraceError, match="no model_run"):
        profiling.plot_timeline(no_runs)


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="enable_profiling"):
        profiling.load_trace(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"cat": "Session"')
    with pytest.raises(profiling.TraceError, match="not JSON"):
        profiling.load_trace(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"traceEvents": []}))
    with pytest.raises(profiling.TraceError, match="list of trace events"):
        profiling.load_trace(wrong)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps([{"cat": "Node", "name": "x"}]))
    with pytest.raises(profiling.TraceError, match="lacks"):
        profiling.load_trace(partial)


def test_profile_model_runs_and_summarises(tmp_path):
    s = profiling.profile_model(_mlp(), {"x": X}, runs=3, directory=tmp_path, intra_op_threads=1)
    assert s.runs == 4, "3 runs plus one warm-up"
    assert s.path is not None and s.path.parent == tmp_path
    path = tmp_path / "mlp.onnx"
    onnx.save(_mlp(), path)
    assert profiling.profile_model(path, {"x": X}, runs=1, directory=tmp_path).runs == 2
    assert (
        profiling.profile_model(
            _mlp().SerializeToString(), {"x": X}, runs=1, directory=tmp_path
        ).runs
        == 2
    )


def test_profile_model_errors(tmp_path):
    with pytest.raises(ValueError, match="runs"):
        profiling.profile_model(_mlp(), {"x": X}, runs=0)
    with pytest.raises(FileNotFoundError):
        profiling.profile_model(tmp_path / "none.onnx", {"x": X})


def test_plot_on_given_axes(trace_path):
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert profiling.summarize(trace_path).plot(ax=ax) is fig
