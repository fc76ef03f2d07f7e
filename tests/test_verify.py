"""course.verify: checker errors with hints, two runtimes, parity reports that catch real drift."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
from fixtures import course_models as cm
from onnx import TensorProto, helper

from course import verify as V


@pytest.fixture(autouse=True)
def _private_cache():
    with cm.course_cache():
        yield


def _add_model(declared_out: list | None = None, batch: str | int = "N") -> onnx.ModelProto:
    """y = a + b over two float32 inputs [batch, 3]."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [batch, 3]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [batch, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, declared_out or [batch, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _identity(elem: int, shape: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", elem, shape)],
        [helper.make_tensor_value_info("y", elem, shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _expected(split, pipe, n=32):
    X = split.X_test[:n]
    return X, [pipe.predict(X), pipe.predict_proba(X)]


# -- loading and checking --------------------------------------------------------------------


def test_load_model_accepts_every_form(tmp_path):
    model = cm.sklearn_onnx()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)

    class Holder:
        pass

    holder = Holder()
    holder.model = model
    for form in (model, str(path), path, model.SerializeToString(), holder):
        got = V.load_model(form)
        assert got.graph.output[1].name == "probabilities", f"loaded {type(form).__name__} wrong"
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        V.load_model(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="not a serialized ONNX model"):
        V.load_model(b"\xff\xff\xff garbage")
    (tmp_path / "bad.onnx").write_bytes(b"\xff\xfe not protobuf")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        V.load_model(tmp_path / "bad.onnx")
    with pytest.raises(TypeError, match="expected an onnx.ModelProto"):
        V.load_model(42)


def test_check_model_adds_shapes_and_explains_failures():
    inferred = V.check_model(cm.sklearn_onnx())
    assert len(inferred.graph.value_info) > 0, "expected inferred intermediate shapes"

    dangling = _add_model()
    dangling.graph.node[0].input[1] = "nowhere"
    with pytest.raises(V.ModelCheckError, match="onnx.checker") as err:
        V.check_model(dangling)
    assert "nothing produces" in err.value.hint, f"expected a wiring hint, got {err.value.hint!r}"

    contradict = _add_model(declared_out=["N", 5])
    with pytest.raises(V.ModelCheckError, match="shape inference") as err:
        V.check_model(contradict)
    assert "declared shape" in err.value.hint, (
        f"expected a declared-shape hint, got {err.value.hint}"
    )

    future_op = _add_model()
    future_op.opset_import[0].version = 5
    future_op.graph.node[0].op_type = "Gelu"  # Gelu only exists from opset 20
    with pytest.raises(V.ModelCheckError) as err:
        V.check_model(future_op)
    assert "opset" in err.value.hint, f"expected an opset hint, got {err.value.hint!r}"
    assert isinstance(err.value.__cause__, Exception), "expected the onnx error chained"


# -- running ---------------------------------------------------------------------------------


def test_run_onnx_both_runtimes_agree_with_sklearn():
    split, pipe, model = cm.digits(), cm.sklearn_logreg(), cm.sklearn_onnx()
    X = split.X_test[:20]
    for runtime in V.RUNTIMES:
        labels, probs = V.run_onnx(model, X, runtime=runtime)
        assert np.array_equal(labels, pipe.predict(X)), f"{runtime}: labels differ from sklearn"
        err = float(np.abs(probs - pipe.predict_proba(X)).max())
        assert err < 1e-5, f"{runtime}: expected probabilities within 1e-5, got {err:.2e}"
    by_name = V.run_onnx(model, {"X": X})
    assert np.array_equal(by_name[0], labels), "dict inputs must give the same labels"


def test_run_onnx_feeds_many_inputs_and_tensors():
    import torch

    model = _add_model()
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32)
    (y,) = V.run_onnx(model, [a, torch.from_numpy(b)])
    assert np.array_equal(y, a + b), f"expected a + b, got {y}"
    (y,) = V.run_onnx(model, {"a": a, "b": b}, runtime="reference")
    assert np.array_equal(y, a + b), f"reference: expected a + b, got {y}"
    with pytest.raises(ValueError, match="2 input"):
        V.run_onnx(model, [a])
    with pytest.raises(ValueError, match="2 inputs"):
        V.run_onnx(model, a)
    with pytest.raises(ValueError, match="missing"):
        V.run_onnx(model, {"a": a})
    (y,) = V.run_onnx(_identity(TensorProto.INT64, [3]), [1, 2, 3])
    assert y.tolist() == [1, 2, 3], f"expected a list to be read as one array, got {y}"


def test_run_onnx_rejects_bad_inputs_with_the_fix():
    model = cm.sklearn_onnx()
    X = cm.digits().X_test[:4]
    with pytest.raises(TypeError, match=r"astype\(np.float32\)"):
        V.run_onnx(model, X.astype(np.float64))
    with pytest.raises(ValueError, match="batch axis"):
        V.run_onnx(model, X[0])
    with pytest.raises(ValueError, match="dimension 1 is fixed to 64"):
        V.run_onnx(model, X[:, :60])
    with pytest.raises(ValueError, match="dynamic dimension"):
        V.run_onnx(_add_model(batch=2), [X[:3, :3], X[:3, :3]])
    with pytest.raises(ValueError, match="runtime must be one of"):
        V.run_onnx(model, X, runtime="tensorrt")
    with pytest.raises(TypeError, match="numpy array"):
        V.run_onnx(model, {"X": object()})


def test_run_onnx_explains_runtime_failures():
    custom = _add_model()
    custom.graph.node[0].domain = "com.example"
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    a = np.ones((1, 3), np.float32)
    with pytest.raises(V.OnnxRunError, match="onnxruntime failed") as err:
        V.run_onnx(custom, [a, a])
    assert err.value.hint, "expected a hint"
    with pytest.raises(V.OnnxRunError, match="onnx.reference failed") as err:
        V.run_onnx(custom, [a, a], runtime="reference")
    assert "onnxruntime" in err.value.hint, f"expected advice to use onnxruntime, got {err.value}"
    broken = _identity(TensorProto.FLOAT, [2])
    broken.graph.node[0].op_type = "Softmax"
    broken.graph.node[0].attribute.append(helper.make_attribute("axis", 5))
    with pytest.raises(V.OnnxRunError) as err:
        V.run_onnx(broken, np.ones(2, np.float32), runtime="reference")
    assert "reference evaluator" in err.value.hint, f"got {err.value.hint!r}"


def test_zipmap_outputs_become_arrays_and_reference_says_why():
    from skl2onnx import to_onnx

    split, pipe = cm.digits(), cm.sklearn_logreg()
    zipped = to_onnx(pipe, split.X_train[:1], options={"zipmap": True}, target_opset=18)
    X = split.X_test[:5]
    labels, probs = V.run_onnx(zipped, X)
    assert probs.shape == (5, 10) and probs.dtype == np.float32, (
        f"expected a 5 x 10 float32 array from ZipMap, got {probs.shape} {probs.dtype}"
    )
    report = V.verify(zipped, X, [pipe.predict(X), pipe.predict_proba(X)])
    ref_rows = [r for r in report.rows if r.runtime == "reference"]
    assert ref_rows and all(not r.passed and "ZipMap" in r.note for r in ref_rows), (
        f"expected failing reference rows naming ZipMap, got {ref_rows}"
    )
    ort_rows = [r for r in report.rows if r.runtime == "onnxruntime"]
    assert all(r.passed for r in ort_rows), f"expected onnxruntime rows to pass, got {ort_rows}"
    with pytest.raises(V.OnnxRunError) as err:
        V.run_onnx(zipped, X, runtime="reference")
    assert "zipmap=False" in err.value.hint, f"expected the zipmap fix, got {err.value.hint!r}"


# -- verifying -------------------------------------------------------------------------------


def test_verify_passes_on_a_faithful_model():
    X, expected = _expected(cm.digits(), cm.sklearn_logreg())
    report = V.verify(cm.sklearn_onnx(), X, expected)
    assert report.passed, f"expected parity, got\n{report}"
    assert len(report.rows) == 4, f"expected 2 outputs x 2 runtimes, got {len(report.rows)} rows"
    assert report.max_abs_error < 1e-5, f"expected tiny errors, got {report.max_abs_error}"
    report.assert_passed()
    frame = report.to_frame()
    assert list(frame["runtime"].unique()) == ["onnxruntime", "reference"], frame
    assert {"max_abs_error", "max_rel_error", "passed"} <= set(frame.columns), frame.columns
    assert "Verification PASSED" in str(report) and "passed" in report._repr_html_()
    assert "case" not in str(report).splitlines()[1], "no case column without case labels"
    probs_only = V.verify(
        cm.sklearn_onnx(), X, {"probabilities": expected[1]}, runtimes="reference"
    )
    assert [r.output for r in probs_only.rows] == ["probabilities"], probs_only.rows


def test_verify_catches_a_perturbed_model():
    model = copy.deepcopy(cm.sklearn_onnx())
    (node,) = [n for n in model.graph.node if n.op_type == "LinearClassifier"]
    (coefs,) = [a for a in node.attribute if a.name == "coefficients"]
    for i in range(0, len(coefs.floats), 7):  # small, plausible corruption of the weights
        coefs.floats[i] += 0.05
    X, expected = _expected(cm.digits(), cm.sklearn_logreg())
    report = V.verify(model, X, expected)
    assert not report.passed, f"expected the perturbed model to fail, got\n{report}"
    bad = {(r.runtime, r.output) for r in report.failures}
    assert ("onnxruntime", "probabilities") in bad and ("reference", "probabilities") in bad, bad
    row = next(r for r in report.failures if r.output == "probabilities")
    assert row.mismatched > 0 and row.max_abs_error > 1e-4, f"expected real drift, got {row}"
    with pytest.raises(AssertionError, match="probabilities: max abs"):
        report.assert_passed()
    assert "FAIL" in str(report) and "FAILED" in report._repr_html_()
    loose = V.verify(model, X, {"probabilities": expected[1]}, atol=1.0)
    assert loose.passed, f"expected atol=1 to accept the drift, got\n{loose}"


def test_tolerances_follow_dtype():
    assert V.default_tolerances(np.float32) == (1e-4, 1e-5)
    assert V.default_tolerances("float16") == (1e-2, 1e-3)
    assert V.default_tolerances(np.float64) == (1e-7, 1e-9)
    assert V.default_tolerances(np.int64) == (0.0, 0.0)
    assert V.default_tolerances(np.longdouble)[0] > 0, "other floats get float32 tolerances"
    model = _identity(TensorProto.FLOAT, ["N"])
    x = np.array([1.0, 2.0, 0.0], np.float32)
    near = x + np.float32(5e-6)
    assert V.verify(model, near, x).passed, "5e-6 is inside float32 tolerance"
    far = V.verify(model, x + np.float32(1e-3), x, runtimes=("onnxruntime",))
    assert not far.passed and far.rows[0].mismatched == 3, f"expected 3 mismatches, got {far}"
    rel = far.rows[0].max_rel_error
    assert rel == pytest.approx(1e-3, rel=1e-3), f"expected 1e-3 (zeros skipped), got {rel}"


def test_verify_compares_exactly_and_flags_shapes_and_nans():
    ints = _identity(TensorProto.INT64, ["N"])
    x = np.array([1, 2, 3], np.int64)
    report = V.verify(ints, x, np.array([1, 2, 4]), runtimes=("onnxruntime",))
    assert not report.passed and report.rows[0].mismatched == 1, f"got {report}"
    shape = V.verify(ints, x, x.reshape(3, 1), runtimes=("onnxruntime",))
    assert "shape" in shape.rows[0].note and not shape.passed, f"got {shape.rows[0]}"
    floats = _identity(TensorProto.FLOAT, ["N"])
    y = np.array([np.nan, 1.0, np.inf], np.float32)
    assert V.verify(floats, y, y.copy()).passed, "matching NaN and inf must pass"
    nan_vs_num = V.verify(floats, y, np.array([0.0, 1.0, np.inf], np.float32))
    assert not nan_vs_num.passed and "NaN" in nan_vs_num.rows[0].note, nan_vs_num.rows
    strings = _identity(TensorProto.STRING, ["N"])
    words = np.array(["a", "b"], dtype=object)
    ok = V.verify(strings, words, np.array(["a", "b"]), runtimes=("onnxruntime",))
    assert ok.passed and ok.rows[0].note == "compared exactly", ok.rows
    bad = V.verify(strings, words, np.array(["a", "c"]), runtimes=("onnxruntime",))
    assert not bad.passed and bad.rows[0].mismatched == 1, bad.rows
    empty = V.verify(floats, np.zeros(0, np.float32), np.zeros(0, np.float32))
    assert empty.passed and empty.rows[0].total == 0, empty.rows


def test_verify_rejects_bad_arguments():
    model, X = cm.sklearn_onnx(), cm.digits().X_test[:4]
    with pytest.raises(ValueError, match="2 output"):
        V.verify(model, X, [np.zeros(4)])
    with pytest.raises(ValueError, match="not outputs of the model"):
        V.verify(model, X, {"scores": np.zeros(4)})
    with pytest.raises(ValueError, match="at least one"):
        V.verify(model, X, {})
    with pytest.raises(ValueError, match="runtimes must be"):
        V.verify(model, X, {"label": np.zeros(4)}, runtimes=("tvm",))
    with pytest.raises(ValueError, match="rtol"):
        V.verify(model, X, {"label": np.zeros(4)}, rtol=-1)
    with pytest.raises(AssertionError, match="empty report"):
        V.VerificationReport().assert_passed()
    assert not V.VerificationReport().passed, "an empty report must not count as passed"
    assert np.isnan(V.VerificationReport().max_abs_error)
    assert V.VerificationReport().__add__(3) is NotImplemented


def test_verify_records_a_failing_runtime_and_labels_cases():
    custom = _add_model()
    custom.graph.node[0].domain = "com.example"
    custom.opset_import.append(helper.make_opsetid("com.example", 1))
    a = np.ones((1, 3), np.float32)
    report = V.verify(custom, [a, a], a + a, check=False, case="batch 1")
    assert not report.passed and len(report.rows) == 2, f"expected two failing rows, got {report}"
    assert all(r.note.startswith("onnx") for r in report.rows), [r.note for r in report.rows]
    both = report + V.verify(_add_model(), [a, a], a + a, case="good")
    text = str(both)
    assert text.splitlines()[1].startswith("case"), f"expected a case column, got\n{text}"
    assert "batch 1" in text and "good" in both._repr_html_(), text
    assert both.rows[0].as_dict()["case"] == "batch 1"


def _row(error: float, passed: bool) -> V.ParityRow:
    return V.ParityRow(
        case="",
        runtime="onnxruntime",
        output="y",
        shape=(2,),
        dtype="float32",
        max_abs_error=error,
        max_rel_error=error,
        rtol=1e-4,
        atol=1e-5,
        mismatched=0 if passed else 2,
        total=2,
        passed=passed,
    )


def test_max_abs_error_is_nan_whatever_the_row_order():
    for rows in (
        [_row(float("nan"), False), _row(0.5, True)],
        [_row(0.5, True), _row(float("nan"), False)],
    ):
        got = V.VerificationReport(rows).max_abs_error
        assert np.isnan(got), f"expected nan when a row could not be compared, got {got}"
    assert V.VerificationReport([_row(0.25, True), _row(0.5, False)]).max_abs_error == 0.5


def test_a_runtime_that_cannot_run_records_the_tolerances_used():
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="no.such.domain")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("no.such.domain", 1)]
    )
    x = np.ones(2, np.float32)
    report = V.verify(model, {"x": x}, {"y": x}, check=False)
    want = V.default_tolerances(np.float32)
    assert report.rows and all(not r.passed for r in report.rows), report.rows
    got = {(r.rtol, r.atol) for r in report.rows}
    assert got == {want}, f"expected the dtype's tolerances {want} on failed rows, got {got}"
    report = V.verify(model, {"x": x}, {"y": x}, check=False, rtol=0.1, atol=0.2)
    assert {(r.rtol, r.atol) for r in report.rows} == {(0.1, 0.2)}
