"""course.graph_optimization: levels saved by onnxruntime, operator counts, fusions, diagram."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from course import graph_optimization as go


def _cnn(seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu-Conv-Relu-MaxPool-Flatten-Gemm on 1x8x8 inputs, fixed random weights."""
    rng = np.random.default_rng(seed)

    def init(name, shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [
        init("w1", (4, 1, 3, 3)),
        init("b1", (4,)),
        init("w2", (8, 4, 3, 3)),
        init("b2", (8,)),
        init("w3", (10, 128)),
        init("b3", (10,)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


X = np.random.default_rng(1).random((5, 1, 8, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("graphopt") / "cnn.onnx"
    onnx.save(_cnn(), path)
    return path


def _run(model, x=X):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_level_enum_maps_every_available_level():
    for name in go.available_levels():
        assert go.level_enum(name).name == go.LEVELS[name], f"level {name} maps wrongly"
    assert go.available_levels()[0] == "disable" and go.available_levels()[-1] == "all"


def test_level_enum_rejects_unknown_names():
    with pytest.raises(ValueError, match="must be one of"):
        go.level_enum("maximum")


def test_level_enum_names_a_level_missing_from_this_onnxruntime(monkeypatch):
    monkeypatch.setitem(go.LEVELS, "future", "ORT_ENABLE_FUTURE")
    with pytest.raises(ValueError, match="has no ORT_ENABLE_FUTURE"):
        go.level_enum("future")


def test_optimize_extended_fuses_conv_and_relu(tmp_path, cnn_path):
    target = tmp_path / "sub" / "cnn.extended.onnx"
    opt = go.optimize(cnn_path, "extended", target)
    assert target.is_file(), "the optimized model should be saved where asked"
    counts = go.operator_counts(opt)
    assert counts.get("com.microsoft.FusedConv") == 2, f"expected 2 FusedConv, got {counts}"
    assert "Relu" not in counts, f"Relu should be fused away, got {counts}"
    np.testing.assert_allclose(_run(opt), _run(_cnn()), rtol=1e-4, atol=1e-5)


def test_optimize_disable_keeps_the_graph_and_accepts_bytes_and_protos():
    from_bytes = go.optimize(_cnn().SerializeToString(), "disable")
    from_proto = go.optimize(_cnn(), "disable")
    want = [n.op_type for n in _cnn().graph.node]
    assert [n.op_type for n in from_bytes.graph.node] == want
    assert [n.op_type for n in from_proto.graph.node] == want


def test_optimize_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        go.optimize(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="onnx.ModelProto, a path to a .onnx file"):
        go.optimize(42)


def test_optimize_at_levels_saves_one_file_per_level(tmp_path, cnn_path):
    models = go.optimize_at_levels(cnn_path, tmp_path, ["disable", "basic", "extended", "all"])
    assert list(models) == ["disable", "basic", "extended", "all"]
    for level in models:
        assert (tmp_path / f"cnn.{level}.onnx").is_file(), f"cnn.{level}.onnx not saved"
    assert len(models["extended"].graph.node) < len(models["disable"].graph.node)
    out_all = _run(models["all"])
    np.testing.assert_allclose(out_all, _run(_cnn()), rtol=1e-4, atol=1e-5)


def test_optimize_at_levels_defaults(tmp_path):
    models = go.optimize_at_levels(_cnn(), tmp_path)
    assert list(models) == go.available_levels()
    assert (tmp_path / "model.all.onnx").is_file()
    with pytest.raises(ValueError, match="levels is empty"):
        go.optimize_at_levels(_cnn(), tmp_path, [])


def test_operator_counts_and_errors(tmp_path, cnn_path):
    assert go.operator_counts(cnn_path) == {
        "Conv": 2,
        "Relu": 2,
        "MaxPool": 1,
        "Flatten": 1,
        "Gemm": 1,
    }
    with pytest.raises(FileNotFoundError):
        go.operator_counts(tmp_path / "nope.onnx")
    with pytest.raises(TypeError, match="onnx.ModelProto, a path to a .onnx file"):
        go.operator_counts([1, 2])


def test_counts_table_has_totals(cnn_path):
    frame = go.counts_table({"before": _cnn(), "after": go.optimize(cnn_path, "extended")})
    assert isinstance(frame, pd.DataFrame)
    assert frame.loc["nodes", "before"] == 7, frame
    assert frame.loc["nodes", "after"] == 5, frame
    assert frame.loc["Relu", "after"] == 0 and frame.loc["com.microsoft.FusedConv", "before"] == 0
    with pytest.raises(ValueError, match="models is empty"):
        go.counts_table({})


def test_fusion_summary_lists_what_went_and_came(cnn_path):
    summary = go.fusion_summary(_cnn(), go.optimize(cnn_path, "extended"))
    assert summary == {
        "nodes_before": 7,
        "nodes_after": 5,
        "removed": {"Conv": 2, "Relu": 2},
        "added": {"com.microsoft.FusedConv": 2},
    }, summary


def test_draw_pipelines_labels_fused_activations(tmp_path, cnn_path):
    models = go.optimize_at_levels(cnn_path, tmp_path, ["disable", "extended", "all"])
    fig = go.draw_pipelines(models, max_nodes=4)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "FusedConv\n+Relu" in texts, texts
    assert "disable (7)" in texts and "+3 more" in texts, texts
    assert ax.get_title(), "the diagram needs a title"
    with pytest.raises(ValueError, match="max_nodes"):
        go.draw_pipelines(models, max_nodes=0)
    with pytest.raises(ValueError, match="models is empty"):
        go.draw_pipelines({})


def test_draw_pipelines_on_given_axes():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert go.draw_pipelines({"only": _cnn()}, ax=ax) is fig
