"""course.formats: sizes, load/latency/parity measurement, the chart and explorer, PMML writing."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import ipywidgets as W
import numpy as np
import onnxruntime as ort
import pytest
from matplotlib.figure import Figure

from course import data, formats


@pytest.fixture(scope="module")
def split():
    return data.load_digits_split()


@pytest.fixture(scope="module")
def mlp_layers(split):
    """The course MLP's weights as (inputs, outputs) arrays, and its reference probabilities."""
    import torch

    mlp = data.train_torch_mlp(split)
    layers = [
        (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
        for m in mlp
        if isinstance(m, torch.nn.Linear)
    ]
    with torch.inference_mode():
        reference = torch.softmax(mlp(torch.from_numpy(split.X_test)), dim=1).numpy()
    return layers, reference


def numpy_mlp(layers, x):
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, mlp_layers):
    """Three artifacts of the same MLP: an .npz file, a folder of .npy files, and a PMML file."""
    layers, _ = mlp_layers
    root = tmp_path_factory.mktemp("formats")
    npz = root / "mlp.npz"
    np.savez(npz, **{f"w{i}": w for i, (w, _) in enumerate(layers)},
             **{f"b{i}": b for i, (_, b) in enumerate(layers)})  # fmt: skip
    folder = root / "mlp_folder"
    (folder / "weights").mkdir(parents=True)
    for i, (w, b) in enumerate(layers):
        np.save(folder / "weights" / f"w{i}.npy", w)
        np.save(folder / "weights" / f"b{i}.npy", b)
    pmml = root / "mlp.pmml"
    pmml.write_text(formats.mlp_to_pmml(layers, class_labels=range(10)))
    return {"npz": npz, "folder": folder, "pmml": pmml}


def load_npz(path):
    z = np.load(path)
    n = len(z.files) // 2
    return [(z[f"w{i}"], z[f"b{i}"]) for i in range(n)]


def load_folder(path):
    n = len(list((path / "weights").glob("w*.npy")))
    return [(np.load(path / "weights" / f"w{i}.npy"), np.load(path / "weights" / f"b{i}.npy"))
            for i in range(n)]  # fmt: skip


def specs(saved):
    from sklearn_pmml_model.neural_network import PMMLMLPClassifier

    return [
        formats.FormatSpec("npz", saved["npz"], load_npz, numpy_mlp, "framework-native", "numpy"),
        formats.FormatSpec("npy folder", saved["folder"], load_folder, numpy_mlp, "other"),
        formats.FormatSpec(
            "PMML",
            saved["pmml"],
            lambda p: PMMLMLPClassifier(pmml=str(p)),
            lambda m, x: m.predict_proba(x),
            "exchange",
            "sklearn-pmml-model",
        ),
        formats.FormatSpec(
            "unrunnable", saved["npz"], load_npz, None, "on-device", skip_reason="needs macOS"
        ),
    ]


@pytest.fixture(scope="module")
def comparison(saved, split, mlp_layers):
    _, reference = mlp_layers
    return formats.compare_formats(
        specs(saved), split.X_test, reference, repeat=5, load_repeat=2, warmup=1
    )


# --------------------------------------------------------------------------- sizes


def test_artifact_size_counts_files_and_folders(saved):
    file_size = saved["npz"].stat().st_size
    assert formats.artifact_size(saved["npz"]) == file_size
    want = sum(p.stat().st_size for p in saved["folder"].rglob("*") if p.is_file())
    got = formats.artifact_size(saved["folder"])
    assert got == want and got > 4096, f"a folder's size is the sum of its files: {want}, got {got}"
    assert formats.artifact_size(str(saved["pmml"])) == saved["pmml"].stat().st_size


def test_artifact_size_missing_path_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="save the format first"):
        formats.artifact_size(tmp_path / "nothing.onnx")


# --------------------------------------------------------------------------- specs


def test_format_spec_validates_its_fields(saved):
    with pytest.raises(ValueError, match="non-empty"):
        formats.FormatSpec(" ", saved["npz"], load_npz)
    with pytest.raises(TypeError, match="load must be a function"):
        formats.FormatSpec("x", saved["npz"], "not callable")
    with pytest.raises(TypeError, match="predict must be a function"):
        formats.FormatSpec("x", saved["npz"], load_npz, predict=42)
    with pytest.raises(ValueError, match="family must be one of"):
        formats.FormatSpec("x", saved["npz"], load_npz, numpy_mlp, family="mobile")
    with pytest.raises(ValueError, match="skip_reason"):
        formats.FormatSpec("x", saved["npz"], load_npz, None)


# --------------------------------------------------------------------------- measuring


def test_compare_formats_measures_every_format(comparison, saved, split, mlp_layers):
    assert comparison.formats == ["npz", "npy folder", "PMML", "unrunnable"]
    npz = comparison["npz"]
    assert npz.size_bytes == saved["npz"].stat().st_size
    assert npz.ran and len(npz.load_samples) == 2 and npz.load_s > 0
    assert npz.max_abs_diff < 1e-5, f"numpy float32 MLP vs torch: got {npz.max_abs_diff:.2e}"
    assert npz.label_agreement == 1.0
    assert npz.latency_s > 0 and npz.batch_s > 0
    assert npz.latency_ci[0] <= npz.latency_s <= npz.latency_ci[1]
    pmml = comparison["PMML"]
    assert pmml.size_bytes > 10 * npz.size_bytes, "PMML spends a line of XML per weight"
    assert pmml.max_abs_diff < 1e-5 and pmml.label_agreement == 1.0
    skipped = comparison["unrunnable"]
    assert not skipped.ran and skipped.latency_s is None and skipped.note == "needs macOS"
    assert skipped.size_bytes == npz.size_bytes and skipped.load_s > 0
    with pytest.raises(KeyError, match="formats are"):
        comparison["ONNX"]


def test_to_frame_units_and_missing_values(comparison):
    frame = comparison.to_frame()
    assert list(frame.index) == comparison.formats
    row = frame.loc["npz"]
    assert math.isclose(row["size_kb"], comparison["npz"].size_bytes / 1024)
    assert math.isclose(row["latency_ms"], comparison["npz"].latency_s * 1e3)
    assert row["label_agreement"] == 100.0
    assert "-" in row["latency_ci_ms"]
    skipped = frame.loc["unrunnable"]
    assert math.isnan(skipped["latency_ms"]) and math.isnan(skipped["max_abs_diff"])
    assert skipped["note"] == "needs macOS" and skipped["latency_ci_ms"] == ""
    assert frame.attrs == {"rows": 450, "latency_rows": 1}


def test_compare_formats_with_onnxruntime(tmp_path, split, mlp_layers):
    """A real runtime next to numpy: the parity and timing path for an ONNX session."""
    import onnx
    from onnx import helper, numpy_helper

    layers, reference = mlp_layers
    nodes, inits, prev = [], [], "x"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [f"g{i}"]))
        prev = f"g{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            prev = f"r{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["y"], axis=1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 10])],
        inits,
    )
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    spec = formats.FormatSpec(
        "ONNX",
        path,
        lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]),
        lambda s, x: s.run(None, {"x": x}),  # a list with one array: unwrapped
        "exchange",
    )
    cmp = formats.compare_formats([spec], split.X_test, reference, repeat=3, latency_rows=4)
    assert cmp["ONNX"].max_abs_diff < 1e-5 and cmp.latency_rows == 4


def test_compare_formats_accepts_tensors_from_frameworks(saved, split, mlp_layers):
    import torch

    _, reference = mlp_layers
    spec = formats.FormatSpec(
        "torch",
        saved["npz"],
        load_npz,
        lambda layers, x: torch.from_numpy(numpy_mlp(layers, x)),
        "framework-native",
    )

    class FakeTensor:  # what a tf.Tensor looks like to the comparison: it has .numpy()
        def __init__(self, value):
            self.value = value

        def numpy(self):
            return self.value

    spec_tf = formats.FormatSpec(
        "tf-like", saved["npz"], load_npz, lambda layers, x: FakeTensor(numpy_mlp(layers, x))
    )
    cmp = formats.compare_formats([spec, spec_tf], split.X_test[:20], reference[:20], repeat=3)
    assert cmp["torch"].max_abs_diff < 1e-5 and cmp["tf-like"].max_abs_diff < 1e-5


def test_compare_formats_rejects_bad_arguments(saved, split, mlp_layers):
    _, reference = mlp_layers
    one = specs(saved)[:1]
    X = split.X_test
    with pytest.raises(ValueError, match="at least one FormatSpec"):
        formats.compare_formats([], X, reference)
    with pytest.raises(ValueError, match="unique"):
        formats.compare_formats(one + one, X, reference)
    with pytest.raises(TypeError, match="FormatSpec objects"):
        formats.compare_formats(["npz"], X, reference)
    with pytest.raises(ValueError, match="at least one row"):
        formats.compare_formats(one, X[:0], reference[:0])
    with pytest.raises(ValueError, match="exactly these inputs"):
        formats.compare_formats(one, X, reference[:10])
    with pytest.raises(ValueError, match="latency_rows"):
        formats.compare_formats(one, X, reference, latency_rows=0)
    with pytest.raises(ValueError, match="load_repeat"):
        formats.compare_formats(one, X, reference, load_repeat=0)


def test_compare_formats_names_the_failing_format(saved, split, mlp_layers, tmp_path):
    _, reference = mlp_layers
    X = split.X_test[:10]
    ref = reference[:10]

    def broken_load(path):
        raise OSError("corrupt file")

    cases = [
        (formats.FormatSpec("bad load", saved["npz"], broken_load, numpy_mlp), "load.*corrupt"),
        (
            formats.FormatSpec(
                "labels", saved["npz"], load_npz, lambda m, x: numpy_mlp(m, x)[:, 0]
            ),
            "shape",
        ),
        (
            formats.FormatSpec("crash", saved["npz"], load_npz, lambda m, x: 1 / 0),
            "predict failed",
        ),
        (
            formats.FormatSpec("dict", saved["npz"], load_npz, lambda m, x: {"probs": x}),
            "holding objects",
        ),
    ]
    for spec, pattern in cases:
        with pytest.raises(formats.FormatError, match=pattern) as info:
            formats.compare_formats([spec], X, ref, repeat=3)
        assert spec.name in str(info.value), f"the error should name {spec.name!r}: {info.value}"


def test_as_array_explains_what_is_not_an_array():
    class Weird:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("nope")

    with pytest.raises(formats.FormatError, match="not an array"):
        formats._as_array(Weird(), "odd")


def test_regression_outputs_have_no_labels(saved, split):
    spec = formats.FormatSpec(
        "sum", saved["npz"], load_npz, lambda m, x: x.sum(axis=1), "other", "numpy"
    )
    X = split.X_test[:30]
    cmp = formats.compare_formats([spec], X, X.sum(axis=1) + 0.1, repeat=3)
    assert cmp["sum"].label_agreement is None, "a regression output has no labels to agree on"
    assert math.isclose(cmp["sum"].max_abs_diff, 0.1, rel_tol=1e-4)
    assert math.isnan(cmp.to_frame().loc["sum", "label_agreement"])


# --------------------------------------------------------------------------- chart and widget


def test_plot_draws_one_panel_per_metric(comparison):
    fig = comparison.plot(metrics=["size_kb", "latency_ms", "label_agreement"])
    axes = fig.axes
    assert len(axes) == 3
    assert axes[0].get_xscale() == "log" and axes[2].get_xscale() == "linear"
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == comparison.formats
    assert fig._suptitle is not None and "4 formats" in fig._suptitle.get_text()
    texts = [t.get_text() for t in axes[1].texts]
    assert any("not run here" in t for t in texts), f"the skipped format is labelled: {texts}"
    assert fig.legends, "the families need a legend"
    assert axes[0].get_xlabel() == formats.METRICS["size_kb"].label


def test_plot_marks_exact_agreement(saved, split):
    spec = formats.FormatSpec("exact", saved["npz"], load_npz, lambda m, x: x, "other")
    X = split.X_test[:10]
    cmp = formats.compare_formats([spec], X, X.copy(), repeat=3)
    fig = cmp.plot(metrics=["max_abs_diff"], title="exact")
    assert any("0 (exact)" in t.get_text() for t in fig.axes[0].texts)
    assert fig._suptitle.get_text() == "exact"


def test_plot_when_nothing_ran(saved, split):
    spec = formats.FormatSpec("off", saved["npz"], load_npz, None, skip_reason="needs macOS")
    cmp = formats.compare_formats([spec], split.X_test[:5], np.zeros((5, 10)))
    fig = cmp.plot(metrics=["latency_ms", "label_agreement"])
    assert all(any("not run here" in t.get_text() for t in ax.texts) for ax in fig.axes)


def test_plot_and_view_reject_bad_choices(comparison):
    with pytest.raises(ValueError, match="unknown formats"):
        comparison.plot(formats=["npz", "GGUF"])
    with pytest.raises(ValueError, match="unknown metrics"):
        comparison.plot(metrics=["speed"])
    with pytest.raises(ValueError, match="at least one"):
        comparison.plot(formats=[])
    with pytest.raises(TypeError, match="list of names"):
        comparison.plot(metrics="size_kb")
    with pytest.raises(TypeError, match="compare_formats"):
        formats.comparison_view({"npz": 1}, ["npz"], ["size_kb"])


def test_comparison_view_is_the_chart_for_a_selection(comparison):
    fig = formats.comparison_view(comparison, ("npz", "PMML"), ("size_kb",))
    assert isinstance(fig, Figure)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["npz", "PMML"]


def test_format_explorer_follows_its_controls(comparison):
    ex = formats.format_explorer(comparison, formats=["npz", "PMML"])
    assert ex.error is None and ex.output.value.startswith('<img src="data:image/png;base64,')
    fmt_box, metric_box = ex.controls["formats"], ex.controls["metrics"]
    assert isinstance(fmt_box, W.SelectMultiple) and fmt_box.value == ("npz", "PMML")
    before = ex.output.value
    metric_box.value = ("size_kb", "load_ms", "max_abs_diff")
    assert ex.error is None and ex.output.value != before
    assert len(ex.result.axes) == 3
    fmt_box.value = ()
    assert isinstance(ex.error, ValueError) and "choose at least one" in ex.output.value
    default = formats.format_explorer(comparison)
    assert default.controls["formats"].value == tuple(comparison.formats)
    with pytest.raises(ValueError, match="unknown metrics"):
        formats.format_explorer(comparison, metrics=["nope"])


# --------------------------------------------------------------------------- PMML


def test_mlp_to_pmml_round_trips_through_sklearn_pmml_model(saved, split, mlp_layers):
    from sklearn_pmml_model.neural_network import PMMLMLPClassifier

    layers, reference = mlp_layers
    clf = PMMLMLPClassifier(pmml=str(saved["pmml"]))
    probs = clf.predict_proba(split.X_test)
    err = float(np.abs(probs - reference).max())
    assert err < 1e-5, f"PMML MLP vs torch: expected float32 rounding, got {err:.2e}"
    assert list(clf.classes_) == list(range(10))


def test_mlp_to_pmml_document_structure(mlp_layers):
    layers, _ = mlp_layers
    text = formats.mlp_to_pmml(
        layers,
        class_labels=[f"digit {i}" for i in range(10)],
        feature_names=[f"p{i}" for i in range(64)],
        target_name="digit",
        hidden_activation="tanh",
        model_name="tiny",
    )
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    ns = {"p": formats.PMML_NAMESPACE}
    root = ET.fromstring(text)
    assert root.get("version") == "4.4"
    network = root.find("p:NeuralNetwork", ns)
    assert network.get("activationFunction") == "tanh" and network.get("modelName") == "tiny"
    layers_xml = network.findall("p:NeuralLayer", ns)
    assert [int(x.get("numberOfNeurons")) for x in layers_xml] == [64, 64, 10]
    assert layers_xml[-1].get("normalizationMethod") == "softmax"
    assert len(root.findall(".//p:Con", ns)) == sum(w.size for w, _ in layers)
    target = root.find("p:DataDictionary/p:DataField[@name='digit']", ns)
    assert target.get("dataType") == "string", "non-integer labels are strings"
    first = root.find(".//p:Neuron", ns)
    assert float(first.get("bias")) == pytest.approx(float(layers[0][1][0]), rel=1e-7)
    con = first.find("p:Con", ns)
    assert np.float32(float(con.get("weight"))) == np.float32(layers[0][0][0, 0]), (
        "nine significant digits restore a float32 exactly"
    )


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"layers": []}, "layers is empty"),
        ({"layers": [(np.ones((2, 3)), np.ones(2))]}, "transpose"),
        ({"layers": [(np.ones((2, 3)), np.ones(3)), (np.ones((4, 2)), np.ones(2))]}, "takes 4"),
        ({"class_labels": [0]}, "class labels for 2 outputs"),
        ({"feature_names": ["a"]}, "feature names for 2 inputs"),
        ({"hidden_activation": "relu"}, "rectifier"),
    ],
)
def test_mlp_to_pmml_rejects_bad_input(kwargs, pattern):
    args = {
        "layers": [(np.ones((2, 3)), np.zeros(3)), (np.ones((3, 2)), np.zeros(2))],
        "class_labels": [0, 1],
    }
    args.update(kwargs)
    layers = args.pop("layers")
    with pytest.raises(ValueError, match=pattern):
        formats.mlp_to_pmml(layers, **args)
