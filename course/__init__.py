"""course: the helpers package of ONNX and Beyond.

Conversion with verification, graph inspection, quantization, benchmarking, shared widgets and
offline data, used by every lesson and importable in your own projects::

    import course
    conv = course.convert.sklearn_to_onnx(pipeline, X[:5])
    conv.report            # parity against scikit-learn, run by onnxruntime and onnx.reference

Submodules are imported on first use, so ``import course`` stays fast and a missing optional
framework (TensorFlow, PyTorch) only matters when its converter is called.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = (
    "anatomy",
    "bench",
    "check",
    "convert",
    "data",
    "inspect",
    "opsets",
    "quantize",
    "serve",
    "verify",
    "widgets",
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "check_exercises":
        return importlib.import_module(f"{__name__}.check").check
    raise AttributeError(f"module 'course' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
