"""Optional dependencies: import one, or say exactly what to install (one message, one place).

The helpers package needs only numpy, onnx, onnxruntime, matplotlib and pandas; the frameworks
(torch, TensorFlow, scikit-learn) and tools such as tritonclient are extras, imported where a
function needs them.

Example::

    >>> require("numpy", extra("torch")).__name__
    'numpy'
    >>> require("no_such_module", "no-such-package", "this example")
    Traceback (most recent call last):
    ...
    ImportError: this example needs no_such_module, which is not installed: pip install 'no-such-package' (or pip install -r requirements.txt)
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["extra", "require"]


def extra(name: str) -> str:
    """The pip requirement of one of this package's extras: ``onnx-and-beyond[torch]``."""
    return f"onnx-and-beyond[{name}]"


def require(module: str, install: str, purpose: str = "this function") -> ModuleType:
    """Import ``module`` (dotted names too), or raise ImportError naming ``install``, the pip
    requirement that provides it, and ``purpose``, what needs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs {module}, which is not installed: pip install '{install}' "
            "(or pip install -r requirements.txt)"
        ) from exc
