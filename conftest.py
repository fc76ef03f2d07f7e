"""Docstring examples of ``course`` run as doctests (collected here, see pyproject.toml).

Each example runs in a fresh temporary folder that holds two small models built with
onnx.helper (no training): ``model.onnx``/``mlp.onnx``, a 4-feature, 3-class MLP with a dynamic
batch, and ``cnn.onnx``, a Conv/Relu/MaxPool/Gemm net on 1x8x8 images; and a one-lesson course,
``release/00-demo/00-demo.ipynb`` (nbgrader cells of one exercise, not started), for the learner
tools. The namespace has ``np``, ``X_train``/``X_test``/``y_test`` (float32 rows for the MLP),
``images`` (for the CNN) and ``table``, a small variants table for :mod:`course.tradeoffs`.
Jupyter's ``JPY_SESSION_NAME`` is unset and the course cache is a folder of the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _pytest.doctest import DoctestModule

COURSE = Path(__file__).resolve().parent / "course"

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))


def pytest_collect_file(file_path: Path, parent):
    """Every module of course/ is a doctest module (its examples are its documentation)."""
    if (
        file_path.suffix == ".py"
        and COURSE in file_path.parents
        and file_path.name != "__main__.py"
    ):
        return DoctestModule.from_parent(parent, path=file_path)
    return None


def _cnn():
    import graphs
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((4 * 3 * 3, 3)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="gemm"),
    ]
    return graphs.model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [w, fc],
    )


def _demo_lesson(folder: Path) -> None:
    """release/00-demo/00-demo.ipynb: a title, objectives, an estimated time and exercise ex1
    (its answer cell still the stub, so checking it runs nothing)."""
    from notebooks import cell, write_nb

    intro = (
        "# Lesson 0 — Demo\n\n**After this lesson you will be able to**\n1. double a number.\n\n"
        "**Estimated time**: 10 minutes."
    )
    stub = "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    cells = [
        cell(intro, kind="markdown"),
        cell(stub, "ex1-answer", kind="answer"),
        cell("assert double(3) == 6", "ex1-visible", points=2),
    ]
    write_nb(folder / "release" / "00-demo", "00-demo.ipynb", cells)


def _variants_table():
    import pandas as pd

    columns = ["model", "method", "per_channel", "calibration", "size_kb", "accuracy"]
    columns += ["latency_us", "ci_low_us", "ci_high_us"]
    rows = [
        ("MLP", "fp32", False, 0, 100.0, 0.95, 10.0, 9.5, 10.5),
        ("MLP", "float16", False, 0, 50.0, 0.95, 10.2, 9.6, 10.9),
        ("MLP", "static", True, 100, 27.0, 0.94, 7.0, 6.8, 7.3),
        ("CNN", "fp32", False, 0, 400.0, 0.97, 50.0, 48.0, 52.0),
        ("CNN", "dynamic", False, 0, 110.0, 0.96, 80.0, 77.0, 83.0),
    ]
    return pd.DataFrame(rows, columns=columns)


@pytest.fixture(autouse=True)
def _doctest_folder(request, tmp_path, monkeypatch):
    if type(request.node).__name__ != "DoctestItem":
        yield
        return
    import graphs
    import numpy as np
    import onnx

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))  # never the user's cache
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    _demo_lesson(tmp_path)
    mlp = graphs.mlp()
    for name in ("model.onnx", "mlp.onnx"):
        onnx.save(mlp, tmp_path / name)
    onnx.save(_cnn(), tmp_path / "cnn.onnx")
    rng = np.random.default_rng(0)
    namespace = request.getfixturevalue("doctest_namespace")
    namespace.update(
        np=np,
        onnx=onnx,
        X_train=rng.standard_normal((64, 4)).astype(np.float32),
        X_test=rng.standard_normal((32, 4)).astype(np.float32),
        y_test=rng.integers(0, 3, 32),
        images=rng.standard_normal((8, 1, 8, 8)).astype(np.float32),
        table=_variants_table(),
    )
    yield
