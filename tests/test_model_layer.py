"""The inside layers: course._model (loading, inputs, sessions) and course._capture (output)."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import graphs
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from course import _capture, _model, bench, graph_optimization, quantize, roofline, triton_config
from course import verify as verify_mod
from course.convert import Conversion


def _conversion(proto: onnx.ModelProto) -> Conversion:
    return Conversion(model=proto, path=None, route="test", report=None, seconds=0.0)


# ------------------------------------------------------------------------------------ loading


def test_load_accepts_every_model_kind(tmp_path):
    proto = graphs.mlp()
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    for kind in (proto, proto.SerializeToString(), path, str(path), _conversion(proto)):
        got = _model.load(kind)
        assert [n.op_type for n in got.graph.node] == ["MatMul", "Add", "Relu", "MatMul"], (
            f"expected the MLP's nodes from a {type(kind).__name__}, got {got.graph.node}"
        )
    assert _model.source(path) == str(path), "expected a path to stay a path (external data)"
    assert isinstance(_model.source(_conversion(proto)), bytes)
    with pytest.raises(ValueError, match="not a serialized ONNX model"):
        _model.load(b"\x00garbage")
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        _model.load(tmp_path / "missing.onnx")
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        _model.source(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="a path to a .onnx file, serialized bytes or a Conv"):
        _model.load(3)
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        _model.load(tmp_path / "bad.onnx")


def test_every_helper_takes_a_conversion(tmp_path):
    """The README's workflow: convert.* returns a Conversion, and it goes straight on."""
    conv = _conversion(graphs.mlp())
    x = np.ones((2, 4), np.float32)
    assert bench.ort_session(conv).run(None, {"x": x})[0].shape == (2, 3)
    assert roofline.model_cost(conv, 2).flops > 0
    assert graph_optimization.operator_counts(conv)["MatMul"] == 2
    assert len(graph_optimization.optimize(conv, "basic").graph.node) >= 1
    assert "input" in triton_config.model_config(conv, "mlp", max_batch_size=4)
    rep = quantize.quantize_dynamic_int8(conv, tmp_path / "q.onnx", latency_repeat=3)
    assert rep.size_after > 0, rep
    assert verify_mod.verify(conv, x, verify_mod.run_onnx(conv, x)).passed


# ------------------------------------------------------------------------------------ inputs


def test_negative_dims_are_dynamic_with_a_warning():
    proto = graphs.unary("Relu", (-1, 3))
    assert _model.dims(proto.graph.input[0]) == [None, 3]
    assert _model.negative_dims(proto) == ["x[0]=-1"]
    x = -np.ones((5, 3), np.float32)
    with pytest.warns(_model.InvalidDimensionWarning, match=r"x\[0\]=-1"):
        (y,) = verify_mod.run_onnx(proto, x)
    assert y.shape == (5, 3) and float(y.max()) == 0.0, f"expected relu of 5 rows, got {y}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean model warns nothing
        verify_mod.run_onnx(graphs.unary("Relu", ("n", 3)), x)


def test_sample_feeds_follow_declared_types():
    inputs = [
        helper.make_tensor_value_info("f", TensorProto.FLOAT16, ["n", 2]),
        helper.make_tensor_value_info("i", TensorProto.INT32, [None, 3]),
        helper.make_tensor_value_info("b", TensorProto.BOOL, [4]),
        helper.make_tensor_value_info("s", TensorProto.STRING, [1]),
    ]
    nodes = [helper.make_node("Identity", [v.name], [v.name + "_out"]) for v in inputs]
    outputs = [
        helper.make_tensor_value_info(v.name + "_out", v.type.tensor_type.elem_type, shape)
        for v, shape in zip(inputs, (["n", 2], [None, 3], [4], [1]), strict=True)
    ]
    feeds = _model.sample_feeds(graphs.model(nodes, inputs, outputs), {"n": 5, "i:0": 7})
    got = {k: (v.dtype.kind, v.shape) for k, v in feeds.items()}
    assert got == {"f": ("f", (5, 2)), "i": ("i", (7, 3)), "b": ("b", (4,)), "s": ("O", (1,))}, (
        f"expected dtypes and sizes from the declaration and the overrides, got {got}"
    )


def test_tile_batch_and_lift_constants():
    assert _model.tile_batch(np.arange(2), 3).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="leading batch axis"):
        _model.tile_batch(np.float32(1.0), 3)
    old = graphs.mlp(constant_weights=True)
    old.ir_version = 3
    lifted, n = _model.lift_constants(old)
    assert n == 3 and {i.name for i in lifted.graph.input} >= {"w1", "b1", "w2"}, (
        "expected IR < 4 initializers listed as graph inputs too"
    )
    assert len(old.graph.initializer) == 0, "expected the input model left unchanged"


def test_session_checks_its_arguments_and_stays_quiet(tmp_path, capfd):
    with pytest.raises(ValueError, match="optimization_level"):
        _model.session(graphs.mlp(), optimization_level="max")
    with pytest.raises(ValueError, match="intra_op_threads"):
        _model.session(graphs.mlp(), intra_op_threads=0)
    with pytest.raises(ValueError, match="not available"):
        _model.session(graphs.mlp(), providers=["NoSuchExecutionProvider"])
    target = tmp_path / "opt.onnx"
    _model.session(graphs.mlp(), optimized_model_filepath=target)
    assert target.is_file(), "expected onnxruntime to write the optimized model"
    # an IR-3-style model lists initializers as inputs: onnxruntime warns about it at level 2
    noisy = graphs.mlp()
    noisy.graph.input.extend(
        helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in noisy.graph.initializer
    )
    capfd.readouterr()
    _model.session(noisy).run(None, {"x": np.ones((1, 4), np.float32)})
    assert capfd.readouterr().err == "", "expected onnxruntime's warnings kept off stderr"


# ------------------------------------------------------------------------------------ capture


def test_capture_layer_keeps_native_output_and_logs(capfd):
    assert _capture.strip_ansi("\x1b[1;31mred\x1b[0m") == "red"
    with _capture.fd_capture(2) as read:
        os.write(2, b"from C++\n")
    assert read() == "from C++\n"
    capfd.readouterr()
    with _capture.filtered_stderr_fd(("noise",)):
        os.write(2, b"some noise here\nkept line\n")
    assert capfd.readouterr().err == "kept line\n", "expected only the non-noise line re-emitted"
    with _capture.quiet_native() as notes:
        logging.getLogger("onnxruntime.demo").warning("\x1b[33mcareful\x1b[0m\nsecond line")
        os.write(2, b"W: native warning\nW: native warning\n")
        print("python stderr", file=sys.stderr)
    assert notes == ["careful", "W: native warning", "python stderr"], notes
    assert capfd.readouterr().err == "", "expected nothing to reach stderr"


def test_log_handler_records_exceptions():
    handler = _capture.LogListHandler()
    logger = logging.getLogger("course.test.capture")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("first\nthe useful last line")
        except RuntimeError:
            logger.exception("failed %s", "here")
        logger.warning("bad %d format", "x")  # a malformed record must not break the capture
    finally:
        logger.removeHandler(handler)
    assert (
        handler.lines[0]
        == "ERROR course.test.capture: failed here [RuntimeError: the useful last line]"
    )
    assert handler.lines[1] == "WARNING course.test.capture: bad %d format", handler.lines


# ------------------------------------------------------------------------------------ reports


def test_report_max_error_and_failed_row_tolerances():
    row = dict(
        runtime="r",
        output="y",
        shape=(1,),
        dtype="float32",
        max_rel_error=0.0,
        rtol=0.0,
        atol=0.0,
        mismatched=0,
        total=1,
        passed=True,
    )
    nan = verify_mod.ParityRow(**{**row, "max_abs_error": float("nan")})
    one = verify_mod.ParityRow(**{**row, "max_abs_error": 1.0})
    for rows in ([nan, one], [one, nan]):
        got = verify_mod.VerificationReport(rows).max_abs_error
        assert np.isnan(got), f"expected NaN whatever the order, got {got} for {rows}"
    assert verify_mod.VerificationReport([]).max_abs_error != 0
    # a runtime that fails records the tolerances the output would have been judged at
    broken = graphs.unary("Relu", ("n", 3))
    broken.graph.node[0].op_type = "NoSuchOp"
    report = verify_mod.verify(
        broken,
        np.ones((1, 3), np.float32),
        np.ones((1, 3), np.float32),
        runtimes=("onnxruntime",),
        check=False,
    )
    assert (report.rows[0].rtol, report.rows[0].atol) == verify_mod.default_tolerances(np.float32)


def test_quantization_reports_a_grown_file_and_what_was_quantized(tmp_path):
    tiny = graphs.mlp(n_in=2, hidden=2, n_out=2, constant_weights=True)
    rep = quantize.quantize_dynamic_int8(tiny, tmp_path / "tiny.onnx", latency_repeat=3)
    text = " ".join(rep.notes)
    assert "moved 3 weight tensor(s) from Constant nodes" in text, rep.notes
    assert "quantized: 2 MatMulInteger" in text or "quantized:" in text, rep.notes
    if rep.size_after > rep.size_before:
        assert "GREW" in repr(rep) and "the file GREW" in text, (repr(rep), rep.notes)
    relu = quantize.quantize_dynamic_int8(graphs.unary(), tmp_path / "relu.onnx", latency_repeat=3)
    assert any("no MatMul/Gemm/Conv" in n for n in relu.notes), relu.notes
    grown = quantize.QuantizationReport("dynamic int8", tmp_path / "x", 100, 120)
    assert "GREW to 1.20x" in repr(grown), repr(grown)


def test_static_int8_calibrates_a_multi_input_model_from_feeds(tmp_path):
    two = graphs.model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["h", "s"], ["y"]),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [onnx.numpy_helper.from_array(np.ones((4, 3), np.float32), "w")],
    )
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.random((2, 4)), "s": rng.random((2, 3))} for _ in range(3)]
    rep = quantize.quantize_static_int8(two, tmp_path / "two.onnx", feeds, latency_repeat=3)
    assert rep.settings["calibration_rows"] == 3 and rep.latency is not None, rep
    with pytest.raises(ValueError, match=r"missing \['s'\]"):
        quantize.quantize_static_int8(two, tmp_path / "t.onnx", [{"x": feeds[0]["x"]}])
    with pytest.raises(ValueError, match="non-empty list of dicts"):
        quantize.FeedsReader([])
