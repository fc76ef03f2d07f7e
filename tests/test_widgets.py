"""course.widgets: plain update functions, and explorers whose observers fire without a browser."""

from __future__ import annotations

import warnings

import ipywidgets as W
import pandas as pd
import pytest
from matplotlib.figure import Figure

from course import bench, data, opsets, quantize, widgets


@pytest.fixture(scope="module")
def split():
    return data.load_digits_split()


@pytest.fixture(scope="module")
def mlp_path(split, tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("widgets") / "mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            data.train_torch_mlp(split),
            (torch.from_numpy(split.X_test[:2]),),
            dynamo=True,
            verbose=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
    program.save(str(path))
    return path


# --------------------------------------------------------------------------- rendering


def test_render_html_handles_each_kind():
    assert widgets.render_html(None) == ""
    assert widgets.render_html("a < b") == "<pre>a &lt; b</pre>", "text must be escaped"
    table = widgets.render_html(pd.DataFrame({"x": [1]}))
    assert "<table" in table, f"a DataFrame should render as a table, got {table[:80]}"
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    img = widgets.render_html(fig)
    assert img.startswith('<img src="data:image/png;base64,'), f"got {img[:60]}"
    both = widgets.render_html(["one", {"k": 1}])
    assert both == "<pre>one</pre><pre>{&#x27;k&#x27;: 1}</pre>", f"got {both}"


# --------------------------------------------------------------------------- explorer


def test_explorer_observer_updates_output():
    seen = []

    def update(n, scale, name, flag, choice):
        seen.append(n)
        return f"{name}: {n * scale:.1f} {flag} {choice}"

    ex = widgets.explorer(
        update,
        title="demo",
        n=(0, 10),
        scale=(0.5, 2.0),
        name="x",
        flag=True,
        choice=["a", "b"],
    )
    assert isinstance(ex, W.VBox) and ex.output.value == "<pre>x: 0.0 True a</pre>", (
        f"the explorer should run once at construction, got {ex.output.value!r}"
    )
    assert isinstance(ex.controls["n"], W.IntSlider) and isinstance(
        ex.controls["scale"], W.FloatSlider
    )
    ex.controls["n"].value = 4
    assert ex.output.value == "<pre>x: 2.0 True a</pre>", f"got {ex.output.value!r}"
    ex.controls["choice"].value = "b"
    assert ex.result == "x: 2.0 True b" and seen == [0, 4, 4], f"got {ex.result!r}, calls {seen}"
    assert ex.values()["flag"] is True


def test_explorer_shows_errors_instead_of_raising():
    ex = widgets.explorer(lambda k: 10 // k, k=(0, 3, 1))
    assert isinstance(ex.error, ZeroDivisionError), (
        f"expected the error to be kept, got {ex.error!r}"
    )
    assert "ZeroDivisionError" in ex.output.value, f"got {ex.output.value!r}"
    ex.controls["k"].value = 2
    assert ex.error is None and ex.output.value == "<pre>5</pre>", f"got {ex.output.value!r}"


def test_explorer_controls_from_specs_and_widgets():
    slider = W.IntSlider(min=1, max=5, value=2)
    ex = widgets.explorer(lambda a, b, c, d: a + b + c + d, a=slider, b=3, c=0.5, d=(1, 9, 2))
    assert ex.controls["a"] is slider, "a given widget should be used as is"
    assert isinstance(ex.controls["b"], W.IntText) and isinstance(ex.controls["c"], W.FloatText)
    assert ex.controls["d"].step == 2 and ex.result == 2 + 3 + 0.5 + 1, f"got {ex.result}"
    lazy = widgets.explorer(lambda a: a, a=1, run_now=False)
    assert lazy.result is None and lazy.output.value == "", "run_now=False should not call update"


@pytest.mark.parametrize(
    "controls, error, match",
    [
        ({"a": []}, ValueError, "empty list"),
        ({"a": (5, 1)}, ValueError, "min < max"),
        ({"a": {"x": 1}}, TypeError, "cannot build a widget"),
        ({"a": (1, "b")}, TypeError, "cannot build a widget"),
        ({}, ValueError, "at least one control"),
    ],
)
def test_explorer_rejects_bad_controls(controls, error, match):
    with pytest.raises(error, match=match):
        widgets.explorer(lambda **kw: kw, **controls)


def test_explorer_rejects_non_callable():
    with pytest.raises(TypeError, match="update must be a function"):
        widgets.explorer("not a function", a=1)


# --------------------------------------------------------------------------- operators


def test_operator_info_follows_squeeze_through_its_history():
    old, new = widgets.operator_info("Squeeze", 11), widgets.operator_info("Squeeze", 13)
    assert old["since_version"] == 11 and new["since_version"] == 13, (
        f"expected versions 11 and 13 in force, got {old['since_version']}, {new['since_version']}"
    )
    assert old["versions"] == opsets.operator_history("Squeeze") and old["versions"][:3] == [
        1,
        11,
        13,
    ]
    assert [a["name"] for a in old["attributes"]] == ["axes"] and len(old["inputs"]) == 1, (
        f"axes is an attribute at opset 11, got {old['attributes']}, {old['inputs']}"
    )
    assert [i["name"] for i in new["inputs"]] == ["data", "axes"], f"got {new['inputs']}"
    assert new["inputs"][1]["option"] == "optional", f"axes is optional: {new['inputs'][1]}"
    assert "tensor(float)" in new["type_constraints"]["T"], f"got {new['type_constraints']}"
    assert new["doc"].startswith("Remove single-dimensional entries"), f"got {new['doc'][:60]}"
    ex = old["example"]
    assert ex["runtime"] == "onnxruntime" and ex["outputs"]["squeezed"].shape == (2, 3), (
        f"the tiny example should run and squeeze (2, 1, 3) to (2, 3), got {ex}"
    )
    text = widgets.format_operator_info(old)
    assert "version 11 in force" in text and "[11]" in text and "tiny example" in text, text[:200]
    assert "axes (ints, optional)" in text, f"attribute line wrong in {text}"


def test_operator_info_when_unavailable_or_without_example():
    gelu = widgets.operator_info("Gelu", 18)
    assert gelu["available"] is False and "introduced in opset 20" in gelu["reason"], f"got {gelu}"
    assert "not available" in widgets.format_operator_info(gelu)
    loop = widgets.operator_info("Loop")
    assert loop["example"] is None and "body" in loop["example_error"], (
        f"Loop needs a body graph, so no tiny example; got {loop['example_error']!r}"
    )
    assert "no tiny example" in widgets.format_operator_info(loop)
    conv = widgets.format_operator_info(widgets.operator_info("Conv"))
    assert "group (int, default 1)" in conv and "auto_pad (string, default 'NOTSET')" in conv, conv
    ml = widgets.operator_info("LinearClassifier", domain="ai.onnx.ml")
    assert ml["domain"] == "ai.onnx.ml" and any(a["required"] for a in ml["attributes"])
    assert "required" in widgets.format_operator_info(ml)


@pytest.mark.parametrize(
    "op, opset, error, match",
    [
        ("Relu2", None, ValueError, "did you mean"),
        ("Relu", 0, ValueError, "opset must be an int from 1"),
        ("Relu", 10_000, ValueError, "opset must be an int from 1"),
        ("Relu", True, ValueError, "opset must be an int"),
        (None, None, TypeError, "operator name"),
    ],
)
def test_operator_info_rejects_bad_input(op, opset, error, match):
    with pytest.raises(error, match=match):
        widgets.operator_info(op, opset)


def test_operator_explorer_updates_on_opset_and_operator():
    ex = widgets.operator_explorer("Squeeze", opset=11)
    assert "version 11 in force" in ex.output.value, f"got {ex.output.value[:120]}"
    ex.controls["opset"].value = 13
    assert "version 13 in force" in ex.output.value, f"got {ex.output.value[:120]}"
    ex.controls["op_type"].value = "Gelu"
    assert "not available" in ex.output.value and ex.error is None, f"got {ex.output.value[:160]}"
    with pytest.raises(ValueError, match="did you mean"):
        widgets.operator_explorer("Sqeeze")


# --------------------------------------------------------------------------- quantization


def test_run_quantization_dispatches_and_rejects(mlp_path, split, tmp_path):
    ev = (split.X_test[:120], split.y_test[:120])
    rep = widgets.run_quantization(
        mlp_path,
        "static int8",
        tmp_path / "s.onnx",
        eval_set=ev,
        calibration=split.X_train[:40],
        calibration_rows=20,
        latency_repeat=3,
    )
    assert rep.method == "static int8" and rep.settings["calibration_rows"] == 20, rep.settings
    fp16 = widgets.run_quantization(mlp_path, "float16", tmp_path / "h.onnx", latency_repeat=3)
    assert isinstance(fp16, quantize.QuantizationReport) and fp16.method == "float16"
    with pytest.raises(ValueError, match="method must be one of"):
        widgets.run_quantization(mlp_path, "int4", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="needs calibration data"):
        widgets.run_quantization(mlp_path, "static int8", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="calibration_rows must be a positive int"):
        widgets.run_quantization(
            mlp_path,
            "static int8",
            tmp_path / "x.onnx",
            calibration=split.X_train[:4],
            calibration_rows=0,
        )


def test_quantization_explorer_observer_and_cache(mlp_path, split, tmp_path):
    ev = (split.X_test[:120], split.y_test[:120])
    ex = widgets.quantization_explorer(
        mlp_path, ev, split.X_train[:32], out_dir=tmp_path / "q", latency_repeat=3
    )
    assert ex.error is None and "dynamic int8" in ex.output.value, f"got error {ex.error!r}"
    first = ex.output.value
    assert "<img" in first and "<table" in first, "the report and its plot should both show"
    ex.controls["method"].value = "static int8"
    assert ex.error is None and ex.output.value != first, f"the output should change ({ex.error!r})"
    assert "<h4>static int8</h4>" in ex.output.value
    ex.controls["calibration_rows"].value = 16
    assert ex.result[0].settings["calibration_rows"] == 16, f"got {ex.result[0].settings}"
    cached = ex.cache[("dynamic int8", False, "minmax", 32)]
    ex.controls["calibration_rows"].value = 32
    ex.controls["method"].value = "dynamic int8"
    assert ex.result is cached, "flipping back should reuse the cached result"
    assert sorted(p.name for p in (tmp_path / "q").iterdir())[0].endswith(".onnx")


def test_quantization_explorer_without_calibration_hides_static(mlp_path, split):
    ex = widgets.quantization_explorer(
        mlp_path, (split.X_test[:60], split.y_test[:60]), latency_repeat=3
    )
    assert list(ex.controls["method"].options) == ["dynamic int8", "float16"], (
        f"static int8 needs calibration data, got {ex.controls['method'].options}"
    )
    ex.controls["method"].value = "float16"
    assert ex.error is None and "float16" in ex.output.value


# --------------------------------------------------------------------------- batch size


def test_batch_view_sizes_and_errors(mlp_path, split):
    sessions: dict = {}
    frame, fig = widgets.batch_view(mlp_path, split.X_test[:4], 6, repeat=3, sessions=sessions)
    assert list(frame.index) == [1, 2, 4, 6], (
        f"expected powers of two then 6, got {list(frame.index)}"
    )
    assert isinstance(fig, Figure) and None in sessions, "the default-thread session is cached"
    sess = bench.ort_session(mlp_path, intra_op_threads=1)
    frame1, _ = widgets.batch_view(sess, split.X_test[:4], 2, repeat=3)
    assert list(frame1.index) == [1, 2] and frame1.attrs["threads"]["intra_op_threads"] == 1
    with pytest.raises(ValueError, match="max_batch must be a positive int"):
        widgets.batch_view(mlp_path, split.X_test[:4], 0)


def test_batch_explorer_observers_fire(mlp_path, split):
    ex = widgets.batch_explorer(mlp_path, split.X_test[:4], max_batch=8, repeat=3)
    assert ex.error is None and "<img" in ex.output.value, f"got error {ex.error!r}"
    assert list(ex.controls["max_batch"].options) == [1, 2, 4, 8]
    before = ex.output.value
    ex.controls["intra_op_threads"].value = 1
    assert ex.error is None and ex.output.value != before, "changing threads should re-measure"
    assert set(ex.sessions) == {None, 1}, f"one session per thread setting, got {set(ex.sessions)}"
    assert "intra-op threads: 1" in ex.result[1].texts[0].get_text() or (
        "intra-op threads: 1" in ex.result[1]._suptitle.get_text()
    )
    ex.controls["max_batch"].value = 2
    assert list(ex.result[0].index) == [1, 2], f"got {list(ex.result[0].index)}"
