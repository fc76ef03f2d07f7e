"""Code the grader runs inside the student's kernel, outside the notebook's cells.

:mod:`autograder.execute` runs these in the kernel: :func:`autograder_setup` once before the
first cell (an output limit around ``sys.stdout``/``sys.stderr``), :func:`autograder_guard`
before the first and after every graded test cell (it raises ``nonce`` followed by a JSON list
of what the notebook replaced: library functions, IPython hooks, display machinery; the error
must come back, so error reporting still works). The sandbox cannot import this package, so
:func:`kernel_code` sends a function's source with one call to it: defined fresh, called once
and deleted, so the notebook cannot have replaced it in between. They live here as functions,
not strings, so that ruff lints them and tests can read them.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import Any

__all__ = ["autograder_guard", "autograder_setup", "kernel_code"]


def kernel_code(function: Callable[..., Any], *args: Any) -> str:
    """Source that defines ``function`` as ``_<name>`` in the kernel, calls it with ``args``
    (as their ``repr``) and deletes it, even when it raises.

    Example:
        >>> print(kernel_code(autograder_setup, 100, "MARK").splitlines()[0])
        def _autograder_setup(limit: int, mark: str) -> None:
    """
    name = function.__name__
    source = textwrap.dedent(inspect.getsource(function))
    source = source.replace(f"def {name}(", f"def _{name}(", 1)
    call = ", ".join(repr(a) for a in args)
    return f"{source}\n\ntry:\n    _{name}({call})\nfinally:\n    del _{name}\n"


def autograder_guard(nonce: str) -> None:
    """Raise ``AssertionError(nonce + JSON list)`` naming everything the notebook replaced."""
    import sys
    import types

    found = []
    FT, MT = types.FunctionType, types.MethodType

    def mine(v):
        t = type(v)
        if t is FT or t is MT:
            return getattr(getattr(v, "__func__", v), "__module__", None) == "__main__"
        if isinstance(v, type):
            return v.__dict__.get("__module__") == "__main__"
        return getattr(t, "__module__", None) == "__main__"

    main_dict = getattr(sys.modules.get("__main__"), "__dict__", None)
    for name, mod in list(sys.modules.items()):
        d = getattr(mod, "__dict__", None)
        if type(d) is not dict or d is main_dict or name == "__main__":
            continue
        try:
            for key, value in list(d.items()):
                t = type(value)
                if t is FT or t is MT:
                    if getattr(value, "__module__", None) == "__main__":
                        found.append(f"{name}.{key}")
                elif t.__module__ == "__main__":
                    found.append(f"{name}.{key}")
                elif t is type and value.__module__ == "__main__":
                    found.append(f"{name}.{key}")
        except Exception:
            pass
    ip = get_ipython()  # noqa: F821 - the kernel's own, from its namespace
    objects = {
        "shell": ip,
        "kernel": getattr(ip, "kernel", None),
        "displayhook": getattr(ip, "displayhook", None),
        "display_pub": getattr(ip, "display_pub", None),
        "session": getattr(getattr(ip, "kernel", None), "session", None),
        "sys.stdout": sys.stdout,
        "sys.stderr": sys.stderr,
    }
    for label, obj in objects.items():
        if obj is None:
            continue
        if mine(obj):
            found.append(f"{label} (replaced by an object of the notebook)")
        for klass in type(obj).__mro__:
            for key, value in list(vars(klass).items()):
                if mine(value):
                    found.append(f"{klass.__module__}.{klass.__qualname__}.{key}")
        for key, value in list(getattr(obj, "__dict__", {}).items()):
            if mine(value):
                found.append(f"{label}.{key}")
    for event, callbacks in getattr(ip.events, "callbacks", {}).items():
        for cb in callbacks:
            if mine(cb):
                found.append(f"IPython event '{event}' callback {getattr(cb, '__name__', cb)!r}")
    for attr in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
        for t in getattr(ip, attr, []):
            if mine(t):
                found.append(f"IPython {attr} entry {getattr(t, '__name__', type(t).__name__)!r}")
    if getattr(ip, "custom_exceptions", ()):
        found.append("IPython set_custom_exc handler")
    for getter in ("gettrace", "getprofile"):
        hook = getattr(sys, getter)()
        if hook is not None and mine(hook):
            found.append(f"sys.{getter}() is a notebook function")
    import json as _json

    raise AssertionError(nonce + _json.dumps(sorted(set(found))))


def autograder_setup(limit: int, mark: str) -> None:
    """Stop the notebook once its cells printed more than ``limit`` characters (the error
    names ``mark``): the limit is wrapped around ``sys.stdout``/``sys.stderr`` before every
    cell, as IPython installs new writers for every cell."""
    # IPython re-installs sys.stdout.write around every cell (to record outputs), so the limit
    # is wrapped around it again at the start of every cell
    import sys

    class OutputLimitExceeded(RuntimeError):
        pass

    OutputLimitExceeded.__module__ = "autograder"
    written = [0]

    def limit_streams(*args):
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            write = stream.write
            if getattr(write, "autograder_limit", False):
                continue

            def limited_write(text, *a, _write=write, **k):
                written[0] += len(text)
                if written[0] > limit:
                    raise OutputLimitExceeded(f"{mark}: more than {limit} characters printed")
                return _write(text, *a, **k)

            limited_write.autograder_limit = True
            limited_write.__module__ = "autograder"
            stream.write = limited_write

    limit_streams.__module__ = "autograder"
    get_ipython().events.register(  # noqa: F821 - the kernel's own
        "pre_run_cell", limit_streams
    )
