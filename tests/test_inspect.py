"""course.inspect: summaries, histograms and parameter counts of real models; a drawn graph."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from fixtures import course_models as cm
from onnx import TensorProto, helper, numpy_helper

from course import inspect as I


@pytest.fixture(autouse=True)
def _private_cache():
    with cm.course_cache():
        yield


@pytest.fixture(scope="module")
def cnn_onnx():
    from course import convert

    with cm.course_cache():
        images = cm.digits().X_test[:2].reshape(-1, 1, 8, 8)
        return convert.torch_to_onnx(cm.torch_cnn(), images, verify=False).model


def _chain(n: int) -> onnx.ModelProto:
    """x -> Relu -> Relu -> ... (n nodes)."""
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(n)]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("t0", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, ["N", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _with_subgraph() -> onnx.ModelProto:
    """If(cond) with a then-branch holding a Constant and an else-branch with a Neg."""
    then_graph = helper.make_graph(
        [
            helper.make_node(
                "Constant",
                [],
                ["c"],
                value=numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3)),
            )
        ],
        "then",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 3])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["n"])],
        "else",
        [],
        [helper.make_tensor_value_info("n", TensorProto.FLOAT, [2, 3])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph)],
        "branches",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[numpy_helper.from_array(np.zeros(5, np.float32), "unused")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


# -- counts ----------------------------------------------------------------------------------


def test_histogram_and_parameters_of_the_torch_cnn(cnn_onnx):
    hist = I.operator_histogram(cnn_onnx)
    assert hist.get("Conv") == 2 and hist.get("Relu") == 2 and hist.get("Gemm") == 1, hist
    assert list(hist.values()) == sorted(hist.values(), reverse=True), "most frequent first"
    want = sum(p.numel() for p in cm.torch_cnn().parameters())
    got = I.count_parameters(cnn_onnx)
    shape_consts = sum(
        int(np.prod(t.dims)) for t in cnn_onnx.graph.initializer if t.data_type == TensorProto.INT64
    )
    assert got - shape_consts == want, (
        f"expected PyTorch's {want} parameters (+{shape_consts} shape constants), got {got}"
    )


def test_counts_reach_into_subgraphs_and_ml_operators():
    model = _with_subgraph()
    assert I.operator_histogram(model) == {"Constant": 1, "If": 1, "Neg": 1}
    assert I.count_parameters(model) == 5 + 6, "expected the initializer plus the Constant"
    pipe_model = cm.sklearn_onnx()
    coefficients = cm.sklearn_logreg()[-1].coef_.size + cm.sklearn_logreg()[-1].intercept_.size
    scaler = 2 * 64  # offset and scale
    got = I.count_parameters(pipe_model)
    assert got == coefficients + scaler, f"expected {coefficients + scaler} values, got {got}"


# -- summary ---------------------------------------------------------------------------------


def test_summary_of_a_saved_model_uses_the_file_size(tmp_path, cnn_onnx):
    path = tmp_path / "cnn.onnx"
    onnx.save(cnn_onnx, path)
    s = I.summary(path)
    assert s.size_bytes == path.stat().st_size and s.size_source == "file", (
        s.size_bytes,
        s.size_source,
    )
    assert str(s.inputs[0]) == "input: float32[batch, 1, 8, 8]", f"got {s.inputs[0]}"
    assert s.outputs[0].shape == ("batch", 10), f"got {s.outputs[0].shape}"
    assert s.opsets == {"": 18} and s.ir_version >= 8, (s.opsets, s.ir_version)
    assert s.producer.startswith("pytorch"), f"expected the producer, got {s.producer!r}"
    assert s.n_nodes == sum(s.operators.values()), "nodes must equal the histogram total"
    frame = s.to_frame()
    assert list(frame.columns) == ["property", "value"], frame.columns
    assert "parameters" in set(frame["property"]), frame
    text, page = str(s), s._repr_html_()
    assert "opsets" in text and "ai.onnx 18" in text, text
    assert "<table>" in page and "batch" in page, page[:200]


def test_summary_in_memory_and_with_external_data(tmp_path):
    s = I.summary(cm.sklearn_onnx())
    assert s.size_source == "serialized" and s.size_bytes == cm.sklearn_onnx().ByteSize()
    assert [o.name for o in s.outputs] == ["label", "probabilities"]
    assert s.opsets["ai.onnx.ml"] >= 1, s.opsets
    big = helper.make_model(
        helper.make_graph(
            [helper.make_node("Add", ["x", "w"], ["y"])],
            "ext",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256])],
            initializer=[numpy_helper.from_array(np.ones(256, np.float32), "w")],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    path = tmp_path / "ext.onnx"
    onnx.save(big, path, save_as_external_data=True, location="ext.bin", size_threshold=0)
    s = I.summary(path)
    want = path.stat().st_size + (tmp_path / "ext.bin").stat().st_size
    assert s.size_bytes == want and "external" in s.size_source, (s.size_bytes, want, s.size_source)
    assert s.parameters == 256, f"expected 256 values without loading data, got {s.parameters}"
    seq = I._tensor_info(helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None))
    assert str(seq) == "s: sequence_type", f"got {seq}"
    assert I._human_bytes(3 * 1024**3) == "3.0 GiB"


# -- text view -------------------------------------------------------------------------------


def test_graph_text_lists_every_node_with_shapes(cnn_onnx):
    text = I.graph_text(cnn_onnx)
    node_lines = [ln for ln in text.splitlines() if re.match(r"\s+\[\d+\] ", ln)]
    assert len(node_lines) == len(cnn_onnx.graph.node), f"expected one line per node:\n{text}"
    assert "Conv(input" in text and "float32[batch, 8, 8, 8]" in text, text
    assert "kernel_shape=[3, 3]" in text, "expected attributes shown"
    assert text.splitlines()[0].startswith('graph "main_graph"'), text.splitlines()[0]
    ml = I.graph_text(cm.sklearn_onnx())
    assert "ai.onnx.ml.LinearClassifier(" in ml and "post_transform='SOFTMAX'" in ml, ml
    assert "(640)" in ml, "long lists show their length"
    short = I.graph_text(_chain(30), max_nodes=5, max_initializers=0)
    assert "... 25 more nodes" in short, short
    sub = I.graph_text(_with_subgraph(), max_initializers=0)
    assert "<graph then with 1 nodes>" in sub and "... 1 more" in sub, sub


def test_attribute_rendering():
    A = helper.make_attribute
    assert (
        I._attr_text(A("t", numpy_helper.from_array(np.ones((8, 8), np.float32)))) == "<tensor 8x8>"
    )
    assert I._attr_text(A("t", numpy_helper.from_array(np.array([1, 2], np.int64)))) == "[1, 2]"
    assert I._attr_text(A("s", "abc")) == "'abc'"
    assert I._attr_text(A("f", 0.123456)) == "0.1235"
    assert I._attr_text(A("ss", [b"a", b"b"])) == "[a, b]"
    graphs = onnx.AttributeProto(name="gs", type=onnx.AttributeProto.GRAPHS)
    graphs.graphs.extend([_chain(1).graph, _chain(2).graph])
    assert I._attr_text(graphs) == "<2 graphs>"


# -- diagram -----------------------------------------------------------------------------------


def test_draw_graph_is_an_svg_with_ops_and_shapes(cnn_onnx, tmp_path):
    diagram = I.draw_graph(cnn_onnx)
    svg = diagram._repr_svg_()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg, svg[:100]
    assert diagram.n_drawn == diagram.n_total == len(cnn_onnx.graph.node)
    texts = [t.get_text() for t in diagram.figure.axes[0].texts]
    for op in ("Conv", "MaxPool", "Gemm", "input"):
        assert op in texts, f"expected a box labelled {op}, got {texts}"
    assert "[batch, 16, 4, 4]" in texts, f"expected shape labels on edges, got {texts}"
    assert "8x1x3x3, 8" in texts, f"expected the weights a Conv holds, got {texts}"
    title = diagram.figure.axes[0].get_title()
    assert "7 nodes" in title and "parameters" in title, title
    assert diagram.save(tmp_path / "g" / "cnn.png").stat().st_size > 1000, "expected a PNG"
    bare = I.draw_graph(cnn_onnx, show_shapes=False, title="no shapes")
    bare_texts = [t.get_text() for t in bare.figure.axes[0].texts]
    assert "[batch, 16, 4, 4]" not in bare_texts and bare.figure.axes[0].get_title() == "no shapes"


def test_draw_graph_cuts_large_graphs_and_handles_branches():
    diagram = I.draw_graph(_chain(80), max_nodes=10)
    texts = [t.get_text() for t in diagram.figure.axes[0].texts]
    assert diagram.n_drawn == 10 and diagram.n_total == 80, (diagram.n_drawn, diagram.n_total)
    assert any("70 more nodes not drawn" in t for t in texts), texts
    assert "t80" not in texts, "the output of an undrawn node must not be drawn"
    sk = I.draw_graph(cm.sklearn_onnx())
    labels = [t.get_text() for t in sk.figure.axes[0].texts]
    assert {"label", "probabilities", "LinearClassifier"} <= set(labels), labels
    legend = [t.get_text() for t in sk.figure.axes[0].get_legend().get_texts()]
    assert "ai.onnx.ml" in legend, f"expected the ml family in the legend, got {legend}"
    branch = I.draw_graph(_with_subgraph())
    assert "2 subgraph(s)" in [t.get_text() for t in branch.figure.axes[0].texts]
    wide = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Reshape", ["x", "shape"], ["y"]),
                helper.make_node("Add", ["x", "a"], ["z"]),
                helper.make_node("Add", ["z", "b"], ["z2"]),
                helper.make_node("Add", ["z2", "c"], ["z3"]),
            ],
            "wide",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
            [
                helper.make_tensor_value_info("y", TensorProto.FLOAT, [4]),
                helper.make_tensor_value_info("z3", TensorProto.FLOAT, [2, 2]),
            ],
            initializer=[numpy_helper.from_array(np.array([4], np.int64), "shape")]
            + [numpy_helper.from_array(np.ones((2, 2), np.float32), n) for n in "abc"],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    texts = [t.get_text() for t in I.draw_graph(wide).figure.axes[0].texts]
    assert "[4]" in texts, f"expected a small shape constant shown by value, got {texts}"
    three = helper.make_model(
        helper.make_graph(
            [helper.make_node("Sum", ["x", "a", "b", "c"], ["y"])],
            "sum",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
            initializer=[numpy_helper.from_array(np.ones(2, np.float32), n) for n in "abc"],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    texts = [t.get_text() for t in I.draw_graph(three).figure.axes[0].texts]
    assert "3 weights, 6 values" in texts, texts


def test_draw_graph_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_nodes"):
        I.draw_graph(cm.sklearn_onnx(), max_nodes=0)
    with pytest.raises(TypeError, match="onnx.ModelProto"):
        I.draw_graph([1, 2, 3])
    broken = _chain(2)
    broken.graph.node[0].op_type = "NoSuchOp"
    diagram = I.draw_graph(broken)  # shape inference fails: drawn without shapes
    assert "NoSuchOp" in [t.get_text() for t in diagram.figure.axes[0].texts]
