"""Unit tests for course.anatomy: protobuf wire walk and the ModelProto structure figure."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from course import anatomy


def _model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    helper.set_model_props(model, {"author": "course"})
    return model


def test_wire_fields_lists_top_level_fields_in_order():
    model = _model()
    data = model.SerializeToString()
    fields = anatomy.wire_fields(data)
    names = [f.name for f in fields]
    assert names[0] == "ir_version" and "graph" in names and "opset_import" in names
    assert "metadata_props" in names
    assert sum(f.size for f in fields) == len(data)
    graph = next(f for f in fields if f.name == "graph")
    assert graph.wire_type == "length-delimited" and graph.size > model.graph.ByteSize()


def test_wire_fields_other_message_and_unknown_numbers():
    tensor = numpy_helper.from_array(np.arange(3, dtype=np.int64), "t")
    names = {f.name for f in anatomy.wire_fields(tensor.SerializeToString(), onnx.TensorProto)}
    assert {"dims", "data_type", "name"} <= names
    # field 99, varint 1; field 98, 32-bit; field 97, 64-bit: unknown to ModelProto
    raw = bytes([0x98, 0x06, 0x01]) + bytes([0x95, 0x06, 0, 0, 0, 0])
    raw += bytes([0x89, 0x06]) + bytes(8)
    fields = anatomy.wire_fields(raw)
    assert [(f.number, f.name, f.wire_type) for f in fields] == [
        (99, "unknown", "varint"),
        (98, "unknown", "32-bit"),
        (97, "unknown", "64-bit"),
    ]


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"PK\x03\x04 not protobuf", "not valid protobuf"),
        (bytes([0x3A, 0x10, 0x01]), "runs past the end"),
        (bytes([0x08, 0x80]), "truncated varint"),
        (bytes([0x08]) + bytes([0xFF] * 11), "longer than 10 bytes"),
    ],
)
def test_wire_fields_rejects_non_protobuf(raw, match):
    with pytest.raises(ValueError, match=match):
        anatomy.wire_fields(raw)


def test_wire_fields_type_error():
    with pytest.raises(TypeError, match="SerializeToString"):
        anatomy.wire_fields("model.onnx")


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.axes[0].texts)


def test_structure_figure_counts_from_the_model():
    fig = anatomy.structure_figure(_model(), title="mine")
    text = _texts(fig)
    assert "node × 1: NodeProto" in text and "op_type: MatMul" in text
    assert "initializer × 1: TensorProto" in text and "raw_data: 24 bytes" in text
    assert "metadata_props × 1" in text and "type.tensor_type.shape: [N, 3]" in text
    assert fig.axes[0].get_title() == "mine"
    assert fig.axes[0].get_legend() is not None


def test_structure_figure_external_and_typed_data(tmp_path):
    model = _model()
    onnx.save_model(
        model, tmp_path / "m.onnx", save_as_external_data=True, location="w.bin", size_threshold=0
    )
    text = _texts(
        anatomy.structure_figure(onnx.load(tmp_path / "m.onnx", load_external_data=False))
    )
    assert "EXTERNAL in w.bin" in text
    typed = _model()
    typed.graph.initializer[0].CopyFrom(helper.make_tensor("W", TensorProto.FLOAT, [3], [1, 2, 3]))
    assert "float_data × 3" in _texts(anatomy.structure_figure(typed))
    assert anatomy._data_line(onnx.TensorProto()) == "data: (empty)"


def test_structure_figure_empty_model_and_bad_input():
    text = _texts(anatomy.structure_figure(onnx.ModelProto()))
    assert "node × 0" in text and "name: -" in text
    seq = onnx.ValueInfoProto(name="s")
    seq.type.sequence_type.elem_type.tensor_type.elem_type = TensorProto.FLOAT
    assert anatomy._shape_text(seq) == "sequence_type"
    with pytest.raises(TypeError, match="onnx.load"):
        anatomy.structure_figure(b"bytes")
