"""course.convert: every route converts real models, verifies them, and fails with the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures import course_models as cm

from course import convert
from course.convert import ConversionError


@pytest.fixture(autouse=True)
def _private_cache():
    with cm.course_cache():
        yield


def _batch_dim(model: onnx.ModelProto) -> str | int:
    d = model.graph.input[0].type.tensor_type.shape.dim[0]
    return d.dim_param if d.HasField("dim_param") else d.dim_value


@pytest.fixture(scope="module")
def mlp_conversion(tmp_path_factory):
    split = cm.digits()
    path = tmp_path_factory.mktemp("onnx") / "sub" / "mlp.onnx"
    return convert.torch_to_onnx(
        cm.torch_mlp(), split.X_test[:6], path, verify_inputs=split.X_test[100:103]
    )


# -- PyTorch ---------------------------------------------------------------------------------


def test_torch_mlp_exports_with_a_dynamic_batch_and_verifies(mlp_conversion):
    conv = mlp_conversion
    assert conv.passed, f"expected parity with PyTorch, got\n{conv.report}"
    assert _batch_dim(conv.model) == "batch", (
        f"expected a dynamic 'batch', got {_batch_dim(conv.model)}"
    )
    assert "dynamo=True" in conv.route and "batch axis dynamic" in conv.route, conv.route
    cases = {r.case for r in conv.report.rows}
    assert cases == {"example", "batch 12", "verify_inputs"}, f"expected three cases, got {cases}"
    assert {r.runtime for r in conv.report.rows} == {"onnxruntime", "reference"}
    assert conv.path is not None and conv.path.is_file(), f"expected a saved file, got {conv.path}"
    assert onnx.load(conv.path).graph.node, "expected the saved file to load"
    assert conv.opsets == {"": 18}, f"expected opset 18, got {conv.opsets}"
    assert conv.seconds > 0 and conv.verify_seconds > 0, (conv.seconds, conv.verify_seconds)
    assert conv.framework == "torch"
    assert not any("LeafSpec" in w for w in conv.warnings), "known torch noise must be dropped"
    text = str(conv)
    assert "route: torch.onnx.export" in text and "Verification PASSED" in text, text
    assert "input: float32[batch, 64]" in text, text
    assert "<li>route: " in conv._repr_html_()


def test_torch_cnn_with_custom_dynamic_shapes_and_names():
    import torch

    images = cm.digits().X_test[:5].reshape(-1, 1, 8, 8)
    batch = torch.export.Dim("n")
    conv = convert.torch_to_onnx(
        cm.torch_cnn(),
        torch.from_numpy(images),
        dynamic_shapes=({0: batch},),
        input_names=["images"],
        output_names=["logits"],
    )
    assert conv.passed, f"expected parity, got\n{conv.report}"
    assert [i.name for i in conv.model.graph.input] == ["images"], conv.model.graph.input
    assert [o.name for o in conv.model.graph.output] == ["logits"], conv.model.graph.output
    assert _batch_dim(conv.model) == "n", f"expected the Dim's name, got {_batch_dim(conv.model)}"
    assert "custom dynamic_shapes" in conv.route, conv.route
    ops = {n.op_type for n in conv.model.graph.node}
    assert {"Conv", "MaxPool"} <= ops, f"expected Conv and MaxPool nodes, got {ops}"


def test_torch_legacy_exporter_only_when_asked():
    conv = convert.torch_to_onnx(cm.torch_mlp(), cm.digits().X_test[:4], dynamo=False, opset=17)
    assert conv.passed, f"expected parity, got\n{conv.report}"
    assert "legacy TorchScript" in conv.route, conv.route
    assert conv.opsets[""] == 17, f"expected opset 17, got {conv.opsets}"
    assert _batch_dim(conv.model) == "batch", "dynamic_axes must make the batch dynamic"
    assert any("legacy TorchScript" in w for w in conv.warnings), (
        f"expected torch's deprecation kept in .warnings, got {conv.warnings}"
    )
    fixed = convert.torch_to_onnx(
        cm.torch_mlp(), cm.digits().X_test[:4], dynamo=False, dynamic_batch=False, verify=False
    )
    assert _batch_dim(fixed.model) == 4 and fixed.report is None, "expected a fixed batch of 4"
    assert "not verified" in str(fixed) and not fixed.passed


def test_torch_multi_output_and_no_batch_inputs():
    import torch

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(4, 3)

        def forward(self, x, scale):
            h = self.body(x)
            return {"logits": h * scale, "probs": torch.softmax(h, -1)}

    torch.manual_seed(0)
    model = TwoHeads().eval()
    conv = convert.torch_to_onnx(
        model, (np.ones((3, 4), np.float32), torch.tensor([2.0])), dynamic_batch=False, opset=18
    )
    assert conv.passed and len(conv.model.graph.output) == 2, f"got\n{conv.report}"
    assert len(conv.report.rows) == 4, "expected 2 outputs x 2 runtimes"


def test_torch_fixed_batch_in_the_code_is_caught():
    import torch

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x.reshape(4, 64).sum(1)

    with pytest.raises(ConversionError, match="fixed batch of 4") as err:
        convert.torch_to_onnx(Fixed().eval(), cm.digits().X_test[:4])
    assert "flatten" in err.value.hint, f"expected the flatten fix, got {err.value.hint!r}"


def test_torch_data_dependent_branch_explains_torch_cond():
    import torch

    class Branchy(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x - 1

    with pytest.raises(ConversionError, match="data-dependent") as err:
        convert.torch_to_onnx(Branchy().eval(), np.ones((2, 3), np.float32))
    assert "torch.cond" in err.value.hint, f"expected torch.cond, got {err.value.hint!r}"
    assert err.value.__cause__ is not None, "expected the exporter's error chained"
    assert any(line.startswith("stderr:") for line in err.value.log), (
        "expected the exporter's stderr dump kept in .log"
    )


def test_torch_unsupported_operator_and_opset():
    import torch

    class Eig(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eig(x)[0].real

    with pytest.raises(ConversionError, match="No ONNX function found") as err:
        convert.torch_to_onnx(Eig().eval(), np.eye(3, dtype=np.float32)[None], dynamic_batch=False)
    assert "opset" in err.value.hint, f"expected an opset/rewrite hint, got {err.value.hint!r}"
    with pytest.raises(ConversionError, match="asked for opset 11") as err:
        convert.torch_to_onnx(torch.nn.Linear(3, 2).eval(), np.ones((2, 3), np.float32), opset=11)
    assert "dynamo=False" in err.value.hint, err.value.hint


def test_torch_bad_inputs_are_rejected_with_the_fix():
    import torch

    lin = torch.nn.Linear(64, 3).eval()
    X = cm.digits().X_test[:4]
    with pytest.raises(ConversionError, match="float64") as err:
        convert.torch_to_onnx(lin, X.astype(np.float64))
    assert "x.float()" in err.value.hint, err.value.hint
    with pytest.raises(ConversionError, match="training mode") as err:
        convert.torch_to_onnx(torch.nn.Sequential(lin, torch.nn.Dropout()).train(), X)
    assert "model.eval()" in err.value.hint, err.value.hint
    with pytest.raises(ConversionError, match="before export") as err:
        convert.torch_to_onnx(lin, X[:, :60])
    assert "shape the model expects" in err.value.hint, err.value.hint
    with pytest.raises(TypeError, match="torch.nn.Module"):
        convert.torch_to_onnx(cm.sklearn_logreg(), X)
    with pytest.raises(TypeError, match=r"example_inputs\[0\]"):
        convert.torch_to_onnx(lin, [[0.0] * 64])
    with pytest.raises(ValueError, match="empty"):
        convert.torch_to_onnx(lin, ())
    with pytest.raises(ValueError, match="opset"):
        convert.torch_to_onnx(lin, X, opset="18")
    with pytest.raises(ValueError, match="dynamic_axes"):
        convert.torch_to_onnx(lin, X, dynamo=False, dynamic_shapes=({0: "b"},))

    class Bad(torch.nn.Module):
        def forward(self, x):
            return "not a tensor"

    with pytest.raises(ConversionError, match="returned str"):
        convert.torch_to_onnx(Bad(), X)


def test_torch_parity_failure_is_reported_not_hidden():
    import torch

    class Noisy(torch.nn.Module):
        """Differs between runs: the ONNX model cannot match the reference outputs."""

        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return x * self.calls

    conv = convert.torch_to_onnx(Noisy().eval(), np.ones((2, 3), np.float32), dynamic_batch=False)
    assert not conv.passed, f"expected failing parity, got\n{conv.report}"
    assert "Verification FAILED" in str(conv)


# -- Keras ---------------------------------------------------------------------------------


def test_keras3_saved_model_route(tmp_path):
    split = cm.digits()
    conv = convert.keras_to_onnx(
        cm.keras_mlp(), split.X_test[:6], tmp_path / "k.onnx", verify_inputs=split.X_test[50:52]
    )
    assert conv.passed, f"expected parity with Keras, got\n{conv.report}"
    assert "model.export()" in conv.route and "SavedModel" in conv.route, conv.route
    assert conv.opsets[""] == 17, f"expected opset 17, got {conv.opsets}"
    assert (tmp_path / "k.onnx").is_file(), "expected the model saved"
    assert isinstance(_batch_dim(conv.model), str), "expected a symbolic batch dimension"
    assert {r.case for r in conv.report.rows} == {"example", "verify_inputs"}
    assert not any("convert_variables_to_constants" in w for w in conv.warnings), (
        "TF's deprecation chatter belongs in .log, not .warnings"
    )
    out = tmp_path / "again.onnx"
    assert conv.save(out) == out and conv.path == out and out.is_file()


def test_keras3_sequential_fails_with_from_keras_and_says_why():
    import keras

    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    x = cm.iris().X_test[:3]
    with pytest.raises(ConversionError, match="keras_tensor") as err:
        convert.keras_to_onnx(seq, x, route="tf_keras")
    assert "route='saved_model'" in err.value.hint, err.value.hint
    assert isinstance(err.value.__cause__, KeyError), "expected tf2onnx's KeyError chained"
    conv = convert.keras_to_onnx(seq, x)  # the route that works
    assert conv.passed, f"expected the SavedModel route to work, got\n{conv.report}"


def test_tf_keras_model_uses_from_keras():
    import tf_keras

    model = tf_keras.Sequential(
        [tf_keras.Input((4,), name="measures"), tf_keras.layers.Dense(3, activation="softmax")]
    )
    x = cm.iris().X_test[:5]
    conv = convert.keras_to_onnx(model, x, route="tf_keras", opset=15)
    assert conv.passed, f"expected parity, got\n{conv.report}"
    assert "from_keras on a tf_keras model" in conv.route and conv.opsets[""] == 15, conv.route
    with pytest.raises(ConversionError, match="tf_keras model") as err:
        convert.keras_to_onnx(model, x, route="saved_model")
    assert "route='tf_keras'" in err.value.hint


def test_keras_bad_inputs():
    model = cm.keras_mlp()
    X = cm.digits().X_test[:3]
    with pytest.raises(ConversionError, match="float64"):
        convert.keras_to_onnx(model, X.astype(np.float64))
    with pytest.raises(ValueError, match="route must be"):
        convert.keras_to_onnx(model, X, route="onnxmltools")
    with pytest.raises(ValueError, match="opset"):
        convert.keras_to_onnx(model, X, opset=3)
    with pytest.raises(TypeError, match="Keras model"):
        convert.keras_to_onnx(cm.torch_mlp(), X)
    with pytest.raises(ValueError, match="empty"):
        convert.keras_to_onnx(model, [])
    with pytest.raises(ConversionError, match="before conversion"):
        convert.keras_to_onnx(model, X[:, :10])


# -- scikit-learn ----------------------------------------------------------------------------


def test_sklearn_pipeline_with_per_domain_opset():
    split, pipe = cm.digits(), cm.sklearn_logreg()
    conv = convert.sklearn_to_onnx(pipe, split.X_test[:30], opset={"": 17, "ai.onnx.ml": 3})
    assert conv.passed, f"expected parity with scikit-learn, got\n{conv.report}"
    assert [o.name for o in conv.model.graph.output] == ["label", "probabilities"]
    assert conv.opsets[""] == 17 and conv.opsets["ai.onnx.ml"] <= 3, conv.opsets
    assert "zipmap=False" in conv.route, conv.route
    probs = conv.model.graph.output[1].type
    assert probs.HasField("tensor_type"), "expected a probability tensor, not ZipMap"
    default = convert.sklearn_to_onnx(pipe, split.X_test[:5])
    assert default.opsets[""] == convert.DEFAULT_SKLEARN_OPSET[""], default.opsets
    as_int = convert.sklearn_to_onnx(pipe, split.X_test[:5], opset=18, verify=False)
    assert as_int.opsets[""] == 18 and as_int.report is None


def test_sklearn_zipmap_is_verified_by_onnxruntime_only():
    conv = convert.sklearn_to_onnx(cm.sklearn_logreg(), cm.digits().X_test[:10], zipmap=True)
    assert conv.passed, f"expected parity, got\n{conv.report}"
    assert {r.runtime for r in conv.report.rows} == {"onnxruntime"}
    assert any("ZipMap" in n for n in conv.notes), f"expected a note saying why, got {conv.notes}"
    assert any(n.op_type == "ZipMap" for n in conv.model.graph.node)


def test_sklearn_regressor_and_transformer(tmp_path):
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import StandardScaler

    split = cm.iris()
    reg = LinearRegression().fit(split.X_train[:, :3], split.X_train[:, 3])
    conv = convert.sklearn_to_onnx(
        reg, split.X_test[:, :3], tmp_path / "reg.onnx", verify_inputs=split.X_train[:4, :3]
    )
    assert conv.passed, f"expected (N,) predictions matched to (N, 1), got\n{conv.report}"
    assert "zipmap" not in conv.route, conv.route
    scaler = StandardScaler().fit(split.X_train)
    conv = convert.sklearn_to_onnx(scaler, split.X_test)
    assert conv.passed, f"expected transform() parity, got\n{conv.report}"


def test_sklearn_tree_drift_is_measured():
    """Random forests compare float32 thresholds: a few borderline rows may drift (pain 9)."""
    from course import data

    split = cm.iris()
    rf = data.train_sklearn_classifier(split, kind="random_forest")
    conv = convert.sklearn_to_onnx(rf, split.X_test)
    labels = [r for r in conv.report.rows if r.output == "label"]
    assert all(r.passed for r in labels), f"expected labels to agree, got {labels}"
    for r in conv.report.rows:
        assert np.isfinite(r.max_abs_error), f"expected a measured error, got {r}"
        within = r.max_abs_error <= r.atol + r.rtol  # probabilities are <= 1
        assert r.passed == (r.mismatched == 0) and (within or not r.passed), r


def test_sklearn_bad_inputs_and_failures():
    import pandas as pd
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe, X = cm.sklearn_logreg(), cm.digits().X_test[:4]
    with pytest.raises(ConversionError, match="float64") as err:
        convert.sklearn_to_onnx(pipe, X.astype(np.float64))
    assert "astype(np.float32)" in err.value.hint
    with pytest.raises(TypeError, match="float32"):
        convert.sklearn_to_onnx(pipe, X.astype(np.int32))
    with pytest.raises(TypeError, match="pandas"):
        convert.sklearn_to_onnx(pipe, pd.DataFrame(X))
    with pytest.raises(ValueError, match="2-D"):
        convert.sklearn_to_onnx(pipe, X[0])
    with pytest.raises(TypeError, match="scikit-learn estimator"):
        convert.sklearn_to_onnx(cm.torch_mlp(), X)
    with pytest.raises(TypeError, match="opset must be"):
        convert.sklearn_to_onnx(pipe, X, opset="18")
    with pytest.raises(ConversionError, match="not fitted") as err:
        convert.sklearn_to_onnx(LogisticRegression(), X)
    assert "fit" in err.value.hint

    class Doubler(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            self.n_features_in_ = X.shape[1]
            return self

        def transform(self, X):
            return X * 2

    custom = make_pipeline(Doubler(), LogisticRegression(max_iter=200))
    split = cm.iris()
    custom.fit(split.X_train, split.y_train)
    with pytest.raises(ConversionError, match="skl2onnx failed") as err:
        convert.sklearn_to_onnx(custom, split.X_test)
    assert "update_registered_converter" in err.value.hint, err.value.hint
    assert err.value.__cause__ is not None


def test_hint_fallback_and_conversion_error_text():
    err = convert._fail("x failed", RuntimeError("\x1b[96msomething odd\x1b[0m"), ["a", "b"])
    assert "something odd" in str(err) and "\x1b" not in str(err), str(err)
    assert "err.__cause__" in err.hint and err.log == ["a", "b"], err.hint
    assert "2 converter log line(s)" in str(err)


# -- the notebook promise: nothing on stderr -------------------------------------------------


def test_normal_path_writes_nothing_to_stderr(tmp_path):
    script = textwrap.dedent(
        f"""
        import os
        os.environ["COURSE_CACHE_DIR"] = {str(tmp_path)!r}
        from course import convert, data, inspect
        split = data.load_iris_split()
        X = split.X_test[:5]
        assert convert.sklearn_to_onnx(data.train_sklearn_classifier(split), X).passed
        assert convert.torch_to_onnx(data.train_torch_mlp(split, epochs=2), X).passed
        conv = convert.keras_to_onnx(data.train_keras_mlp(split, epochs=1), X)
        assert conv.passed
        inspect.draw_graph(conv)
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, (
        f"expected the script to run, got rc={proc.returncode}: {proc.stderr}"
    )
    assert proc.stdout.strip().endswith("ok"), f"expected 'ok', got {proc.stdout!r}"
    assert proc.stderr == "", f"expected nothing on stderr, got:\n{proc.stderr}"
