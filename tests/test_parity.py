"""course.parity: side-by-side predictions of a framework and its ONNX export."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pytest  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from course import parity  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3)).astype(np.float32)
X = RNG.normal(size=(20, 4)).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def linear_softmax_model(weights: np.ndarray = W, width: int | None = 4) -> onnx.ModelProto:
    """x @ W -> logits, softmax -> probabilities: two outputs, probabilities last."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3]),
        ],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def reference(x: np.ndarray) -> np.ndarray:
    return softmax(x.astype(np.float64) @ W.astype(np.float64))


MODEL = linear_softmax_model()


@pytest.mark.parametrize("form", ["proto", "bytes", "session", "path"])
def test_side_by_side_accepts_every_model_form(form, tmp_path):
    if form == "proto":
        model = MODEL
    elif form == "bytes":
        model = MODEL.SerializeToString()
    elif form == "session":
        model = ort.InferenceSession(MODEL.SerializeToString(), providers=["CPUExecutionProvider"])
    else:
        model = tmp_path / "m.onnx"
        onnx.save(MODEL, model)
    row = parity.side_by_side(reference, model, X, 5, framework="numpy")
    assert row.index == 5 and row.framework == "numpy"
    assert row.original.shape == row.onnx.shape == (3,)
    assert row.max_abs_diff < 1e-6, f"expected float32-level agreement, got {row.max_abs_diff}"
    assert row.labels_agree and row.original_label == int(np.argmax(reference(X[5:6])))


def test_side_by_side_measures_a_real_difference():
    shifted = linear_softmax_model(W * np.float32(1.5))
    row = parity.side_by_side(reference, shifted, X, 0)
    want = np.abs(
        reference(X[:1]) - softmax(X[:1].astype(np.float64) @ (W.astype(np.float64) * 1.5))
    ).max()
    assert want > 1e-3, f"the scaled weights should change the probabilities, got {want}"
    assert row.max_abs_diff == pytest.approx(want, rel=1e-4), (row.max_abs_diff, want)
    assert row.difference.dtype == np.float64


def test_side_by_side_negative_index_and_summary_text():
    row = parity.side_by_side(reference, MODEL, X, -1, framework="demo")
    assert row.index == len(X) - 1
    text = row.summary()
    assert "demo, sample 19" in text and "largest absolute difference" in text
    assert "agree" in text


def test_disagreeing_labels_are_reported():
    flipped = linear_softmax_model(-W)
    rows = [parity.side_by_side(reference, flipped, X, i) for i in range(len(X))]
    assert any(not r.labels_agree for r in rows)
    assert "DISAGREE" in next(r for r in rows if not r.labels_agree).summary()


def test_output_by_name_and_position():
    logits = parity.side_by_side(lambda x: x @ W, MODEL, X, 2, output="logits")
    assert logits.max_abs_diff < 1e-5
    first = parity.side_by_side(lambda x: x @ W, MODEL, X, 2, output=0)
    np.testing.assert_allclose(first.onnx, logits.onnx)
    with pytest.raises(ValueError, match="no output 'nope'"):
        parity.side_by_side(reference, MODEL, X, 0, output="nope")
    with pytest.raises(ValueError, match="not a valid position"):
        parity.side_by_side(reference, MODEL, X, 0, output=7)


def test_torch_like_and_tf_like_outputs_are_accepted():
    class FakeTensor:
        def __init__(self, a):
            self.a = a

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.a

    class FakeTf:
        def __init__(self, a):
            self.a = a

        def numpy(self):
            return self.a

    row = parity.side_by_side(lambda x: FakeTensor(reference(x)), MODEL, X, 1)
    assert row.max_abs_diff < 1e-6
    row = parity.side_by_side(lambda x: FakeTf(reference(x)), MODEL, X, 1)
    assert row.max_abs_diff < 1e-6


def test_to_frame_and_plot():
    row = parity.side_by_side(reference, MODEL, X, 3, framework="numpy")
    frame = row.to_frame()
    assert list(frame.columns) == ["original", "onnx", "abs_difference"]
    assert len(frame) == 3 and frame.index.name == "class"
    fig = row.plot()
    ax = fig.axes[0]
    assert "numpy, sample 3" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.patches) == 6  # 3 classes x 2 bars
    plt.close(fig)
    fig2, ax2 = plt.subplots()
    assert row.plot(ax=ax2) is fig2
    plt.close(fig2)


def test_plot_with_image_and_html():
    row = parity.side_by_side(reference, MODEL, X, 2, framework="numpy")
    fig = row.plot(image=np.arange(4.0).reshape(2, 2))
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "input sample"
    plt.close(fig)
    with pytest.raises(ValueError, match="2-D"):
        row.plot(image=np.arange(4.0))
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="either ax or image"):
        row.plot(ax=ax, image=np.zeros((2, 2)))
    plt.close("all")
    before = len(plt.get_fignums())
    html = row.to_html(image=np.zeros((2, 2)))
    assert html.startswith("<pre>numpy, sample 2") and "data:image/png;base64," in html
    assert len(plt.get_fignums()) == before, "to_html must close its figure"


def test_wrong_dtype_is_a_clear_error():
    with pytest.raises(ValueError, match=r"tensor\(float\).*float64.*astype\(np.float32\)"):
        parity.side_by_side(reference, MODEL, X.astype(np.float64), 0)


def test_wrong_width_is_a_clear_error():
    with pytest.raises(ValueError, match="expects 4 values per sample"):
        parity.side_by_side(reference, MODEL, X[:, :3], 0)


def test_unknown_width_is_not_checked():
    model = linear_softmax_model(width=None)
    row = parity.side_by_side(reference, model, X, 0)
    assert row.max_abs_diff < 1e-6


def test_bad_arguments():
    with pytest.raises(IndexError, match="out of range for 20 samples"):
        parity.side_by_side(reference, MODEL, X, 20)
    with pytest.raises(TypeError, match="index must be an integer"):
        parity.side_by_side(reference, MODEL, X, 1.5)
    with pytest.raises(TypeError, match="index must be an integer"):
        parity.side_by_side(reference, MODEL, X, True)
    with pytest.raises(ValueError, match="one sample per row"):
        parity.side_by_side(reference, MODEL, X[0], 0)
    with pytest.raises(TypeError, match="original must be a function"):
        parity.side_by_side("not callable", MODEL, X, 0)
    with pytest.raises(TypeError, match="onnx_model must be"):
        parity.side_by_side(reference, 42, X, 0)
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        parity.side_by_side(reference, "/nonexistent/model.onnx", X, 0)
    with pytest.raises(ValueError, match="returned 4 values per sample"):
        parity.side_by_side(lambda x: x, MODEL, X, 0)
    with pytest.raises(TypeError, match="expected numbers"):
        parity.side_by_side(lambda x: np.array([["a", "b", "c"]]), MODEL, X, 0)


def test_two_input_model_is_refused():
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 2]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [None, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    with pytest.raises(ValueError, match="has 2 inputs"):
        parity.onnx_predictor(model)


def test_zipmap_output_is_explained():
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    y = (X[:, 0] > 0).astype(np.int64)
    clf = LogisticRegression().fit(X, y)
    with_zipmap = to_onnx(clf, X[:1], target_opset=18)
    with pytest.raises(TypeError, match="zipmap"):
        parity.onnx_predictor(with_zipmap)(X)
    plain = to_onnx(clf, X[:1], target_opset=18, options={"zipmap": False})
    s = parity.parity_summary(clf.predict_proba, plain, X, framework="scikit-learn")
    assert s.label_agreement == 1.0 and s.max_abs_diff < 1e-5


def test_parity_summary_over_a_data_set():
    s = parity.parity_summary(reference, MODEL, X, framework="numpy")
    assert s.n_samples == 20 and s.framework == "numpy"
    assert 0 <= s.mean_abs_diff <= s.max_abs_diff < 1e-6
    assert s.label_agreement == 1.0
    row = s.as_dict()
    assert set(row) == {
        "framework",
        "n_samples",
        "max_abs_diff",
        "mean_abs_diff",
        "label_agreement",
    }
    flipped = parity.parity_summary(reference, linear_softmax_model(-W), X)
    assert flipped.label_agreement < 1.0 and flipped.max_abs_diff > 0.1


def regression_model() -> onnx.ModelProto:
    """x @ w -> one value per sample."""
    w = W[:, :1]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "regression",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def test_single_value_outputs_have_no_labels():
    model = regression_model()
    s = parity.parity_summary(lambda x: x @ W[:, :1], model, X)
    assert s.label_agreement == 1.0 and s.max_abs_diff < 1e-5
    row = parity.side_by_side(lambda x: x @ W[:, :1], model, X, 4)
    assert row.original_label is None and row.onnx_label is None and row.labels_agree


def test_parity_summary_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="compare the same quantity"):
        parity.parity_summary(lambda x: (x @ W)[:, :1], MODEL, X, output="logits")
