"""Docstring examples of ``course`` run as doctests (collected here, see pyproject.toml).

Each example runs in a fresh temporary folder that holds two small models built with
onnx.helper (no training): ``model.onnx``/``mlp.onnx``, a 4-feature, 3-class MLP with a dynamic
batch, and ``cnn.onnx``, a Conv/Relu/MaxPool/Gemm net on 1x8x8 images. The namespace has ``np``,
``X_train``/``X_test``/``y_test`` (float32 rows for the MLP) and ``images`` (for the CNN).
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


@pytest.fixture(autouse=True)
def _doctest_folder(request, tmp_path, monkeypatch):
    if type(request.node).__name__ != "DoctestItem":
        yield
        return
    import graphs
    import numpy as np
    import onnx

    monkeypatch.chdir(tmp_path)
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
    )
    yield
