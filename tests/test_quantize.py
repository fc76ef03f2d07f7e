"""course.quantize on the course's real digits MLP and CNN: reports, known failures, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from course import data, quantize


def _export(model, example, path):
    import torch

    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (torch.from_numpy(example),),
            dynamo=True,
            verbose=False,
            dynamic_shapes=({0: batch},),
        )
    program.save(str(path))
    return path


@pytest.fixture(scope="module")
def split():
    return data.load_digits_split()


@pytest.fixture(scope="module")
def models(split, tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantize")
    mlp = _export(data.train_torch_mlp(split), split.X_test[:2], folder / "mlp.onnx")
    images = split.X_test[:2].reshape(-1, 1, 8, 8)
    cnn = _export(data.train_torch_cnn(split), images, folder / "cnn.onnx")
    return {"mlp": mlp, "cnn": cnn}


@pytest.fixture(scope="module")
def mlp_eval(split):
    return split.X_test, split.y_test


@pytest.fixture(scope="module")
def cnn_eval(split):
    return split.X_test.reshape(-1, 1, 8, 8), split.y_test


def _bf16_add_model() -> onnx.ModelProto:
    """A valid model onnxruntime's CPU provider has no kernel for (Add on bfloat16)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"], name="add0")],
        "bf16",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [2])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------- calibration reader


def test_calibration_reader_batches_and_rewinds():
    reader = quantize.CalibrationReader(np.zeros((10, 64)), "x", batch_size=4)
    shapes = [b["x"].shape for b in reader]
    assert shapes == [(4, 64), (4, 64), (2, 64)], f"expected batches of 4, 4, 2 rows, got {shapes}"
    assert reader.get_next() is None, "an exhausted reader returns None"
    reader.rewind()
    first = reader.get_next()
    assert first["x"].dtype == np.float32, (
        f"float64 should be cast to float32, got {first['x'].dtype}"
    )
    assert len(reader) == 3, f"expected 3 batches, got {len(reader)}"


@pytest.mark.parametrize(
    "array, name, batch, error, match",
    [
        (np.zeros((0, 4)), "x", 1, ValueError, "at least one row"),
        (np.float32(1.0), "x", 1, ValueError, "leading sample dimension"),
        (np.array(["a", "b"]), "x", 1, TypeError, "numeric"),
        (np.zeros((2, 4)), "", 1, ValueError, "input_name"),
        (np.zeros((2, 4)), "x", 0, ValueError, "batch_size"),
    ],
)
def test_calibration_reader_rejects_bad_input(array, name, batch, error, match):
    with pytest.raises(error, match=match):
        quantize.CalibrationReader(array, name, batch_size=batch)


# --------------------------------------------------------------------------- dynamic int8


def test_dynamic_int8_mlp_report(models, mlp_eval, tmp_path):
    rep = quantize.quantize_dynamic_int8(
        models["mlp"], tmp_path / "mlp.dyn.onnx", eval_set=mlp_eval, latency_repeat=10
    )
    assert rep.path.is_file() and rep.size_after == rep.path.stat().st_size
    assert rep.size_ratio > 2.5, (
        f"int8 weights should make the MLP > 2.5x smaller (graph structure does not shrink), got {rep.size_ratio:.2f}x"
    )
    assert rep.accuracy_before > 0.9, (
        f"the fp32 MLP should exceed 90%, got {rep.accuracy_before:.3f}"
    )
    assert abs(rep.accuracy_drop) < 0.02, (
        f"accuracy should move < 2 points, got {rep.accuracy_drop:+.3f}"
    )
    assert rep.agreement > 0.95, f"predictions should mostly agree, got {rep.agreement:.3f}"
    assert rep.max_abs_diff is not None and rep.max_abs_diff > 0, "int8 logits differ from fp32"
    assert rep.ops_after.get("MatMulInteger", 0) >= 1, f"expected MatMulInteger in {rep.ops_after}"
    assert any("quant_pre_process" in n for n in rep.notes), (
        f"pre-process should be noted: {rep.notes}"
    )
    assert set(rep.latency.results) == {"float32", "dynamic int8"}, (
        f"got {list(rep.latency.results)}"
    )
    assert rep.latency.interleaved, "before/after latency must be measured interleaved"
    assert rep.speedup == pytest.approx(rep.latency_before.median / rep.latency_after.median)
    if rep.latency.overlap:
        assert any("overlap" in n for n in rep.notes), f"overlap should be noted: {rep.notes}"
    elif rep.speedup < 1:
        assert any("slower" in n for n in rep.notes), f"a slowdown should be noted: {rep.notes}"
    frame = rep.to_frame()
    assert list(frame.index) == ["float32", "dynamic int8"], f"got rows {list(frame.index)}"
    assert frame.loc["float32", "size_kb"] == pytest.approx(rep.size_before / 1024)
    assert frame.attrs["machine"]["cpu_model"], "machine facts should travel with the table"
    fig = rep.plot()
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["size on disk (KB)", "accuracy on eval set (%)", "latency per call (ms)"], (
        f"expected the three panels with units, got {labels}"
    )
    assert "dynamic int8" in repr(rep) and "<table" in rep._repr_html_()


def test_dynamic_int8_cnn_runs_with_convinteger_here(models, cnn_eval, tmp_path):
    """onnxruntime 1.32's CPU provider implements ConvInteger, so the historic failure
    (onnxruntime #12558, #15888) does not occur here; the report still shows the cost."""
    rep = quantize.quantize_dynamic_int8(
        models["cnn"],
        tmp_path / "cnn.dyn.onnx",
        eval_set=cnn_eval,
        latency_repeat=5,
        per_channel=True,
    )
    assert rep.ops_after.get("ConvInteger", 0) == 2, f"expected 2 ConvInteger in {rep.ops_after}"
    assert rep.settings["per_channel"] is True, f"settings should be recorded: {rep.settings}"
    assert rep.accuracy_after > 0.85, f"expected > 85% after int8, got {rep.accuracy_after:.3f}"


def test_dynamic_int8_op_types_control_what_is_quantized(models, mlp_eval, tmp_path):
    rep = quantize.quantize_dynamic_int8(
        models["cnn"], tmp_path / "cnn.mm.onnx", op_types=["MatMul", "Gemm"], latency_repeat=3
    )
    assert "ConvInteger" not in rep.ops_after and rep.ops_after.get("Conv") == 2, (
        f"Conv should stay float with op_types=['MatMul', 'Gemm'], got {rep.ops_after}"
    )
    assert rep.latency is None and rep.accuracy_before is None, "no eval_set: nothing measured"
    assert any("latency not measured" in n for n in rep.notes), f"got notes {rep.notes}"
    fig = rep.plot()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "no eval_set given" in texts and "latency not measured" in texts, f"got {texts}"
    none = quantize.quantize_dynamic_int8(
        models["mlp"],
        tmp_path / "mlp.none.onnx",
        op_types=["Conv"],
        preprocess=False,
        eval_set=mlp_eval,
        latency_repeat=3,
    )
    assert any("no operator was quantized" in n for n in none.notes), f"got notes {none.notes}"
    assert not any("quant_pre_process" in n and "ran" in n for n in none.notes), "preprocess=False"


def test_missing_kernel_after_quantization_is_explained(tmp_path):
    with pytest.raises(quantize.QuantizationError, match="op_block_list=\\['Add'\\]") as info:
        quantize.quantize_dynamic_int8(_bf16_add_model(), tmp_path / "bf16.onnx")
    assert "BFLOAT16" in str(info.value) and "add0" in str(info.value), (
        f"the message should name the node and the types, got {info.value}"
    )
    assert isinstance(info.value.__cause__, ort_state.NotImplemented), "keep the original error"


def test_explain_session_error_suggests_static_qdq_for_convinteger():
    # the message onnxruntime gives where ConvInteger has no kernel (onnxruntime #12558)
    exc = ort_state.NotImplemented(
        "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for "
        "ConvInteger(10) node with name '/conv1/Conv_quant'"
    )
    err = quantize.explain_session_error(exc)
    assert isinstance(err, quantize.QuantizationError)
    for piece in (
        "quantize_static_int8",
        "QDQ",
        "op_types=['MatMul', 'Gemm']",
        "/conv1/Conv_quant",
    ):
        assert piece in str(err), f"expected {piece!r} in the hint, got {err}"
    mm = quantize.explain_session_error(
        ort_state.NotImplemented(
            "NOT_IMPLEMENTED : Could not find an implementation for MatMulInteger(10) node with name ''"
        )
    )
    assert "quantized operator MatMulInteger(opset 10)" in str(mm), f"got {mm}"
    other = quantize.explain_session_error(ort_state.InvalidGraph("bad graph"))
    assert "could not load the converted model: bad graph" in str(other), f"got {other}"


# --------------------------------------------------------------------------- static int8


def test_static_int8_cnn_per_channel_keeps_accuracy(models, split, cnn_eval, tmp_path):
    calib = split.X_train[:200].reshape(-1, 1, 8, 8)
    rep = quantize.quantize_static_int8(
        models["cnn"],
        tmp_path / "cnn.qdq.onnx",
        calib,
        per_channel=True,
        eval_set=cnn_eval,
        latency_repeat=5,
    )
    assert rep.ops_after.get("QuantizeLinear", 0) >= 1 and rep.ops_after.get("DequantizeLinear"), (
        f"expected a QDQ model, got {rep.ops_after}"
    )
    assert rep.size_ratio > 1.5, f"expected > 1.5x smaller, got {rep.size_ratio:.2f}x"
    assert abs(rep.accuracy_drop) < 0.03, (
        f"expected < 3 points change, got {rep.accuracy_drop:+.3f}"
    )
    assert rep.settings["calibration_rows"] == 200 and rep.settings["format"] == "QDQ", rep.settings


def test_static_int8_with_reader_and_methods(models, split, mlp_eval, tmp_path):
    name = onnx.load(models["mlp"]).graph.input[0].name
    reader = quantize.CalibrationReader(split.X_train[:64], name, batch_size=16)
    rep = quantize.quantize_static_int8(
        models["mlp"],
        tmp_path / "mlp.qdq.onnx",
        reader,
        method="percentile",
        eval_set=mlp_eval,
        latency_repeat=3,
    )
    assert rep.settings["calibration"] == "percentile", f"got {rep.settings}"
    assert rep.accuracy_after > 0.85, f"expected > 85% after static int8, got {rep.accuracy_after}"
    assert reader.get_next() is not None, "the reader should be rewound for reuse"
    uneven = quantize.CalibrationReader(split.X_train[:70], name, batch_size=16)
    with pytest.raises(ValueError, match="batches of equal size"):
        quantize.quantize_static_int8(models["mlp"], tmp_path / "u.onnx", uneven, method="entropy")
    rows = quantize.quantize_static_int8(
        models["mlp"], tmp_path / "e.onnx", split.X_train[:70], method="entropy", latency_repeat=3
    )
    assert rows.settings["calibration_rows"] == 70, (
        f"an array of 70 rows should calibrate, got {rows.settings}"
    )


def test_static_int8_rejects_bad_calibration(models, split, tmp_path):
    out = tmp_path / "x.onnx"
    with pytest.raises(ValueError, match="method must be one of"):
        quantize.quantize_static_int8(models["mlp"], out, split.X_train[:8], method="max")
    with pytest.raises(TypeError, match="numpy array, a CalibrationReader or a list of feed dicts"):
        quantize.quantize_static_int8(models["mlp"], out, "data.npy")
    with pytest.raises(ValueError, match="feeds 'wrong'"):
        quantize.quantize_static_int8(
            models["mlp"], out, quantize.CalibrationReader(split.X_train[:8], "wrong")
        )
    with pytest.raises(quantize.QuantizationError, match="input shape and dtype"):
        quantize.quantize_static_int8(models["mlp"], out, split.X_train[:8, :10])


def test_static_int8_needs_readers_for_multi_input_models(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ValueError, match="pass a list of feed dicts"):
        quantize.quantize_static_int8(model, tmp_path / "two.onnx", np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="single-input model"):
        quantize.quantize_dynamic_int8(
            model, tmp_path / "two.onnx", eval_set=(np.zeros((1, 2)), np.zeros(1))
        )


# --------------------------------------------------------------------------- float16


def test_float16_halves_the_mlp_and_keeps_float32_io(models, mlp_eval, tmp_path):
    rep = quantize.to_float16(
        models["mlp"], tmp_path / "mlp.fp16.onnx", eval_set=mlp_eval, latency_repeat=5
    )
    assert 1.6 < rep.size_ratio < 2.05, (
        f"float16 should about halve the size, got {rep.size_ratio:.2f}x"
    )
    assert abs(rep.accuracy_drop) < 0.01, (
        f"float16 should keep accuracy, got {rep.accuracy_drop:+.3f}"
    )
    model = onnx.load(rep.path)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT, "keep_io_types"
    assert any(n.op_type == "Cast" for n in model.graph.node), "Casts should wrap the float16 body"
    assert any("inserted" in n and "Casts" in n for n in rep.notes), (
        f"the CPU provider's float32 fallback should be noted, got {rep.notes}"
    )
    raw = quantize.to_float16(
        models["mlp"],
        tmp_path / "mlp.fp16io.onnx",
        keep_io_types=False,
        eval_set=mlp_eval,
        latency_repeat=3,
    )
    inp = onnx.load(raw.path).graph.input[0].type.tensor_type.elem_type
    assert inp == TensorProto.FLOAT16, (
        f"keep_io_types=False should expose float16 inputs, got {inp}"
    )
    assert abs(raw.accuracy_drop) < 0.01, (
        f"float16 inputs should still classify, got {raw.accuracy_drop}"
    )


def test_float16_overflow_is_caught_with_the_nodes_to_block(models, split, tmp_path):
    X, y = split.X_test * 1e4, split.y_test  # unscaled inputs: activations beyond 65504
    with pytest.raises(quantize.Float16OverflowError, match="65504") as info:
        quantize.to_float16(models["mlp"], tmp_path / "o.onnx", eval_set=(X, y))
    nodes = info.value.nodes
    assert nodes and all(r["max_abs"] > quantize.FLOAT16_MAX for r in nodes), f"got {nodes}"
    assert [r["max_abs"] for r in nodes] == sorted((r["max_abs"] for r in nodes), reverse=True)
    assert "node_block_list=" in str(info.value) and "scale the inputs" in str(info.value)
    blocked = [r["node"] for r in nodes]
    fixed = quantize.to_float16(
        models["mlp"],
        tmp_path / "fixed.onnx",
        eval_set=(X, y),
        node_block_list=blocked,
        latency_repeat=3,
    )
    assert np.isfinite(fixed.accuracy_after) and fixed.agreement > 0.95, (
        f"blocking the listed nodes should fix it, got agreement {fixed.agreement}"
    )
    noted = quantize.to_float16(
        models["mlp"], tmp_path / "noted.onnx", eval_set=(X, y), overflow="note", latency_repeat=3
    )
    assert any("float16 overflow" in n for n in noted.notes), f"got notes {noted.notes}"
    ignored = quantize.to_float16(
        models["mlp"], tmp_path / "ign.onnx", eval_set=(X, y), overflow="ignore", latency_repeat=3
    )
    assert ignored.settings["overflow_check"] == "ignore"
    with pytest.raises(ValueError, match="overflow must be"):
        quantize.to_float16(models["mlp"], tmp_path / "bad.onnx", overflow="maybe")


def test_find_float16_overflows(models, split):
    assert quantize.find_float16_overflows(models["mlp"], split.X_test) == [], (
        "scaled digits stay far inside float16's range"
    )
    rows = quantize.find_float16_overflows(models["mlp"], split.X_test * 1e5)
    kinds = {r["op_type"] for r in rows}
    assert "(input)" in kinds and "Gemm" in kinds, f"expected the input and Gemms, got {rows}"
    name = onnx.load(models["mlp"]).graph.input[0].name
    as_dict = quantize.find_float16_overflows(models["mlp"], {name: split.X_test * 1e5})
    assert as_dict == rows, "a feed dict should give the same answer"
    blocked = quantize.find_float16_overflows(
        models["mlp"], split.X_test * 1e5, op_block_list=["Gemm", "Relu"]
    )
    assert blocked == [], f"blocking every operator leaves nothing in float16, got {blocked}"
    raw_io = quantize.find_float16_overflows(
        models["mlp"], split.X_test * 1e5, op_block_list=["Gemm", "Relu"], keep_io_types=False
    )
    assert {r["op_type"] for r in raw_io} == {"(input)", "Gemm"}, (
        f"without keep_io_types the graph input and output are float16, got {raw_io}"
    )


def test_float16_notes_clamped_weights(tmp_path):
    w = np.array([[1e-9, 2.0], [3.0, 1e5]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep = quantize.to_float16(model, tmp_path / "tiny.onnx")
    assert any("clamped" in n for n in rep.notes), f"clamped weights should be noted: {rep.notes}"


# --------------------------------------------------------------------------- bad input


def test_bad_models_and_paths_are_rejected(models, mlp_eval, tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        quantize.quantize_dynamic_int8(tmp_path / "missing.onnx", tmp_path / "o.onnx")
    with pytest.raises(ValueError, match="not a serialized ONNX model"):
        quantize.to_float16(b"bytes", tmp_path / "o.onnx")
    with pytest.raises(TypeError, match="a path to a .onnx file, serialized bytes or a Conv"):
        quantize.to_float16(123, tmp_path / "o.onnx")
    with pytest.raises(ValueError, match="is a directory"):
        quantize.to_float16(models["mlp"], tmp_path)
    with pytest.raises(TypeError, match="out_path must be a file path"):
        quantize.to_float16(models["mlp"], 3)
    with pytest.raises(ValueError, match="latency_batch must be an int >= 1"):
        quantize.to_float16(models["mlp"], tmp_path / "o.onnx", latency_batch=0)


@pytest.mark.parametrize(
    "eval_set, match",
    [
        ("xy", "pair \\(X, y\\)"),
        ((np.zeros((3, 64)), np.zeros(2)), "same length"),
        ((np.zeros((0, 64)), np.zeros(0)), "same length"),
        ((np.zeros((3, 64)), np.zeros((3, 1))), "1-D y"),
    ],
)
def test_bad_eval_sets_are_rejected(models, tmp_path, eval_set, match):
    with pytest.raises(ValueError, match=match):
        quantize.quantize_dynamic_int8(models["mlp"], tmp_path / "o.onnx", eval_set=eval_set)


def test_unreadable_predictions_are_explained(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    with pytest.raises(ValueError, match="cannot read class predictions"):
        quantize.to_float16(
            model,
            tmp_path / "flat.onnx",
            eval_set=(np.ones(4, np.float32), np.ones(4)),
            overflow="ignore",
        )
