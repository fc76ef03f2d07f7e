"""course.troubleshoot: capturing failures, the gallery, the pipeline figure, the explorer."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import pytest  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from course import troubleshoot as ts  # noqa: E402

# --------------------------------------------------------------------------------------------
# tiny models: y = 2 * x, with a fixed or a dynamic batch


def doubler(batch: int | str = "batch", features: int = 3) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, features])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, features])
    two = numpy_helper.from_array(np.array([2.0], dtype=np.float32), "two")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "g", [x], [y], [two])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def two_inputs() -> onnx.ModelProto:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "g", [a, b], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


DATA = np.linspace(0.1, 1.2, 12, dtype=np.float64).reshape(4, 3) * np.pi


def explorer(reference=lambda raw: 2 * raw) -> ts.ConversionExplorer:
    return ts.ConversionExplorer(
        {
            ("NumPy", "dynamic batch"): ts.ExplorerCase(doubler(), reference, source="NumPy"),
            ("NumPy", "fixed batch 1"): ts.ExplorerCase(
                doubler(1).SerializeToString(), reference, source="NumPy"
            ),
        },
        DATA,
    )


# --------------------------------------------------------------------------------------------
# capture and attempt


def test_strip_ansi_removes_colour_codes():
    assert ts.strip_ansi("\x1b[96mstep 1/3\x1b[0m done") == "step 1/3 done"


def test_capture_keeps_python_and_native_output_warnings_and_logs():
    logger = logging.getLogger("course-test-noisy")
    own = logging.StreamHandler(sys.stderr)
    logger.addHandler(own)
    try:
        with ts.capture() as out:
            print("to stdout")
            print("to stderr", file=sys.stderr)
            os.write(2, b"native line\n")
            warnings.warn("careful", UserWarning, stacklevel=1)
            logger.warning("logged %s", "once")
            try:
                raise RuntimeError("first\nthe useful last line")
            except RuntimeError:
                logger.exception("it failed")
        assert "to stdout" in out.stdout, f"expected the printed line in stdout, got {out.stdout!r}"
        assert "to stderr" in out.stderr and "native line" in out.stderr, (
            f"expected Python and C-level stderr, got {out.stderr!r}"
        )
        assert out.warnings == ["UserWarning: careful"], f"got {out.warnings}"
        assert "WARNING course-test-noisy: logged once" in out.log, f"got {out.log}"
        assert any("RuntimeError: the useful last line" in line for line in out.log), out.log
        assert logger.handlers == [own], "the logger's own handler must be restored"
    finally:
        logger.removeHandler(own)


def test_capture_keeps_targeted_ignore_filters():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="internal noise")
        with ts.capture() as out:
            warnings.warn("internal noise from a library", FutureWarning, stacklevel=1)
            warnings.warn("the one that matters", DeprecationWarning, stacklevel=1)
    assert out.warnings == ["DeprecationWarning: the one that matters"], (
        f"expected the targeted filter to keep hiding its warning, got {out.warnings}"
    )


def test_attempt_success_and_failure():
    ok = ts.attempt(lambda a, b=1: a + b, 2, b=3)
    assert ok.ok and ok.value == 5 and ok.error is None and ok.error_type == ""
    assert ok.message == "" and ok.key_lines() == []
    assert ok.report().startswith("succeeded in"), ok.report()

    def fails():
        warnings.warn("heads up", UserWarning, stacklevel=1)
        raise KeyError("keras_tensor_5")

    bad = ts.attempt(fails)
    assert not bad.ok and bad.value is None and bad.error_type == "KeyError"
    assert bad.mentions("keras_tensor_5") and bad.mentions("heads up")
    assert not bad.mentions("something else")
    text = str(bad)
    assert "failed after" in text and "KeyError" in text and "heads up" in text, text
    assert "warnings" not in bad.report(warnings=False)


def test_attempt_extracts_torch_style_summaries():
    message = (
        "\x1b[96mFailed to export\x1b[0m. Next steps:\n- do this\n\n## Exception summary\n\n"
        "<class 'ValueError'>: the real reason\nsecond line\n\n"
        "(Refer to the full stack trace above for more information.)"
    )

    def fails():
        raise RuntimeError(message)

    result = ts.attempt(fails)
    assert result.key_lines() == ["<class 'ValueError'>: the real reason", "second line"]
    assert result.key_lines(max_lines=1) == ["<class 'ValueError'>: the real reason"]
    assert "\x1b" not in result.message


def test_attempt_rejects_non_callables_and_lets_interrupts_through():
    with pytest.raises(TypeError, match="callable"):
        ts.attempt("not a function")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ts.attempt(interrupted)


def test_missing_package_hides_a_package_only_inside_the_block():
    name = "course_test_never_imported_pkg"
    with ts.missing_package(name):
        result = ts.attempt(__import__, name)
        sub = ts.attempt(__import__, f"{name}.sub")
        other = ts.attempt(__import__, "colorsys")  # not hidden, found by the normal finders
    assert other.ok, other.report()
    assert result.error_type == "ModuleNotFoundError", result.report()
    assert result.message == f"No module named '{name}'", result.message
    assert sub.error_type == "ModuleNotFoundError"
    assert not any(isinstance(f, ts._HidePackages) for f in sys.meta_path), "finder removed"
    assert ts.attempt(__import__, "json").ok, "other packages import normally"
    with pytest.raises(ValueError, match="already imported"):
        with ts.missing_package("numpy"):
            pass
    with pytest.raises(ValueError, match="name the packages"):
        with ts.missing_package():
            pass


# --------------------------------------------------------------------------------------------
# the gallery and the pipelines


def test_gallery_entries_are_complete_and_cover_the_pain_points():
    keys = [f.key for f in ts.GALLERY]
    assert len(keys) == len(set(keys)), f"duplicate keys in {keys}"
    for entry in ts.GALLERY:
        for name in ("title", "symptom", "cause", "fix", "verify"):
            assert getattr(entry, name).strip(), f"{entry.key}: empty {name}"
        assert entry.issues and all("#" in i for i in entry.issues), entry.issues
        assert entry.key in entry.text() or entry.title in entry.text()
    covered = {f.pain_point for f in ts.GALLERY}
    assert {1, 4, 5, 6, 7, 8, 9, 10, 11, 15} <= covered, f"covered only {sorted(covered)}"


def test_failure_lookup_and_frame():
    assert ts.failure("zipmap").pain_point == 11
    with pytest.raises(KeyError, match="the keys are"):
        ts.failure("no-such-thing")
    frame = ts.gallery_frame()
    assert len(frame) == len(ts.GALLERY) and list(frame.index) == list(
        range(1, len(ts.GALLERY) + 1)
    )
    subset = ts.gallery_frame(["zipmap", "eval-mode"])
    assert list(subset["title"]) == [ts.failure("zipmap").title, ts.failure("eval-mode").title]


def test_pipelines_name_real_gallery_entries_and_draw():
    for stages in ts.EXPORT_PIPELINES.values():
        for stage in stages:
            for key in stage.failures:
                ts.failure(key)  # raises for an unknown key
    fig = ts.draw_export_pipelines()
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert "torch.export" in texts and "model.export()" in texts and "parse" in texts
    assert fig.axes[0].get_title(), "the figure needs a title"
    assert fig.axes[0].get_legend() is not None, "the figure needs a legend of failures"
    plt.close(fig)
    small = ts.draw_export_pipelines({"only": [ts.Stage("a", "b"), ts.Stage("c", "d")]})
    assert small.axes[0].get_legend() is None  # no failures marked, no legend
    plt.close(small)
    with pytest.raises(ValueError, match="nothing to draw"):
        ts.draw_export_pipelines({})


# --------------------------------------------------------------------------------------------
# the explorer


def test_input_signature_reads_names_dtypes_and_dims():
    assert ts.input_signature(doubler()) == [("x", "float32", ["batch", 3])]
    assert ts.input_signature(doubler(1).SerializeToString()) == [("x", "float32", [1, 3])]
    model = doubler()
    model.graph.input.append(helper.make_tensor_value_info("two", TensorProto.FLOAT, [1]))
    unknown = helper.make_tensor_value_info("u", TensorProto.FLOAT, None)
    unknown.type.tensor_type.shape.dim.add()  # a dimension with neither value nor name
    model.graph.input.append(unknown)
    assert ts.input_signature(model) == [
        ("x", "float32", ["batch", 3]),
        ("u", "float32", ["?"]),
    ], "initializers are not inputs; an unnamed dynamic dimension reads '?'"
    with pytest.raises(TypeError, match="ModelProto"):
        ts.input_signature(3.5)
    with pytest.raises(FileNotFoundError, match="no ONNX model at missing.onnx"):
        ts.input_signature("missing.onnx")  # a path is a model too


def test_explorer_runs_within_tolerance_at_any_batch():
    ex = explorer()
    assert ex.frameworks == ["NumPy"]
    assert ex.exports("NumPy") == ["dynamic batch", "fixed batch 1"]
    for batch in (1, 3, 10):
        out = ex.run("NumPy", "dynamic batch", batch)
        assert out.runs and out.within_tolerance and out.verdict == "within tolerance", out
        assert out.max_abs_error is not None and out.max_abs_error < 1e-5
    text = ex.run("NumPy", "dynamic batch", 2).text()
    assert "✔ runs" in text and "x: float32[batch, 3]" in text, text


def test_explorer_reports_runtime_failures_and_the_cast_fix():
    ex = explorer()
    dims = ex.run("NumPy", "fixed batch 1", 7)
    assert not dims.runs and dims.verdict == "fails" and "invalid dimensions" in dims.error
    assert "[ONNXRuntimeError]" not in dims.error, "the error prefix is trimmed"
    assert "✘ does not run" in str(dims)
    wrong_type = ex.run("NumPy", "dynamic batch", 2, dtype="float64")
    assert not wrong_type.runs and "data type" in wrong_type.error, wrong_type.error
    cast = ex.run("NumPy", "dynamic batch", 2, dtype="float64", cast=True)
    assert cast.runs and cast.within_tolerance and "cast to the model's dtype" in cast.text()
    half = ex.run("NumPy", "dynamic batch", 4, dtype="float16", cast=True)
    assert half.runs and half.max_abs_error > cast.max_abs_error, (
        "data rounded to float16 first must be measurably less precise"
    )


def test_explorer_flags_errors_beyond_tolerance():
    ex = explorer(reference=lambda raw: 2 * raw + 0.01)
    out = ex.run("NumPy", "dynamic batch", 3)
    assert out.runs and out.within_tolerance is False and out.verdict == "beyond tolerance"
    assert "✘ runs" in out.text()


def test_explorer_output_index_reshape_and_sweep():
    ex = ts.ConversionExplorer(
        {("NumPy", "flat"): ts.ExplorerCase(doubler(), lambda raw: (2 * raw).ravel(), output=0)},
        DATA,
    )
    assert ex.run("NumPy", "flat", 2).within_tolerance, "a flat reference is reshaped to fit"
    outcomes = explorer().sweep([1, 2, 9])
    assert len(outcomes) == 6
    assert [o.runs for o in outcomes] == [True, True, True, True, False, False]
    assert ex.batch_of(9).shape == (9, 3), "rows repeat when the batch exceeds the data"


def test_explorer_rejects_bad_arguments():
    ex = explorer()
    with pytest.raises(KeyError, match="no case"):
        ex.run("PyTorch", "dynamic batch", 1)
    with pytest.raises(ValueError, match="dtype must be one of"):
        ex.run("NumPy", "dynamic batch", 1, dtype="int8")
    with pytest.raises(ValueError, match="positive integer"):
        ex.run("NumPy", "dynamic batch", 0)
    with pytest.raises(ValueError, match="at least one case"):
        ts.ConversionExplorer({}, DATA)
    with pytest.raises(ValueError, match="pairs"):
        ts.ConversionExplorer({"x": ts.ExplorerCase(doubler(), lambda r: r)}, DATA)
    with pytest.raises(TypeError, match="ExplorerCase"):
        ts.ConversionExplorer({("a", "b"): doubler()}, DATA)
    with pytest.raises(ValueError, match="one-input"):
        ts.ConversionExplorer({("a", "b"): ts.ExplorerCase(two_inputs(), lambda r: r)}, DATA)
    with pytest.raises(ValueError, match="float array"):
        ts.ConversionExplorer({("a", "b"): ts.ExplorerCase(doubler(), lambda r: r)}, [1, 2])


def test_outcome_grid_draws_every_case():
    fig = ts.outcome_grid(explorer().sweep([1, 5]))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["NumPy, dynamic batch", "NumPy, fixed batch 1"], labels
    cells = sorted(t.get_text() for t in ax.texts)
    assert cells.count("fails") == 1 and len(cells) == 4, cells
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    assert ax.get_legend() is not None
    plt.close(fig)
    with pytest.raises(ValueError, match="no outcomes"):
        ts.outcome_grid([])
