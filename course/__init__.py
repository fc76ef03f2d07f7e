"""course: the helpers package of ONNX and Beyond.

Conversion with verification, graph inspection, quantization, benchmarking, shared widgets and
offline data, used by every lesson and importable in your own projects::

    import course
    conv = course.convert.sklearn_to_onnx(pipeline, X[:5])
    conv.report            # parity against scikit-learn, run by onnxruntime and onnx.reference

Module map:

- reusable core, for any model: ``convert`` (framework -> ONNX with parity), ``verify`` (checker,
  both runtimes, parity reports), ``inspect`` (summary, graph text and drawing), ``quantize``
  (int8 dynamic/static, float16, with measured reports), ``bench`` (timing with confidence
  intervals, sessions), ``data`` (offline data sets, cached training and each lesson's scratch folder), ``widgets``,
  ``palette`` (the course's colours), ``figures`` (how every lab makes and returns a figure),
  ``serve`` (a KServe v2 HTTP server over onnxruntime);
- the inside layer the core stands on (private): ``_model`` (one loader for a ModelProto, a path,
  bytes or a Conversion; input helpers; the session factory), ``_capture`` (what libraries
  print, kept off a notebook's stderr) and ``_optional`` (importing an optional dependency, or
  saying what to install);
- per-lesson labs: ``parity`` (lesson 01), ``anatomy`` and ``opsets`` (02), ``troubleshoot``
  with its data ``failure_gallery`` (03, 05), ``text_models`` (03, 04: a transformer encoder and
  its variants, built offline), ``pretrained`` (real models shipped in wheels: silero-vad in 02,
  04, 05; magika in 03), ``profiling``, ``tradeoffs`` and ``graph_optimization`` (04, 06),
  ``formats`` (05), ``roofline`` and ``providers`` (06), ``loadtest`` and ``triton_config`` (07,
  ``triton_config`` also writes model repositories), ``generation`` (a decoder with its KV cache:
  07, 08), ``ecosystem``, ``model_contract`` and ``pickle_scan`` (08; ``roofline``,
  ``ecosystem`` and ``troubleshoot`` re-export the names of the modules split from them);
  ``artefacts`` builds the costly ones once at set-up;
- learner tools: ``selfcheck`` (``course.check()``) and ``progress`` (start-here's overview).

Submodules (``course.convert``, ``course.bench``, ...) are imported on first use, so
``import course`` stays fast and a missing optional framework (TensorFlow, PyTorch) only matters
when its converter is called. ``course.check()`` checks your answers in a lesson notebook.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def _submodules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_")
    )


def check(*args: Any, **kwargs: Any) -> Any:
    """Check your answers in a lesson notebook without an instructor (see ``course.selfcheck``)."""
    from course.selfcheck import check as _check

    return _check(*args, **kwargs)


def __getattr__(name: str) -> Any:
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'course' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_submodules()])
