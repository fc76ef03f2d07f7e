"""Costly artefacts built once at set-up into the course cache (:func:`course.data.cache_dir`).

A lesson must run start to finish in a minute on two cores. Where the thing it teaches from costs
more to make (a transformer exported to ONNX, its quantized variants), the module that makes it
registers a builder here; ``make setup`` and Binder's ``postBuild`` run every builder once
(``python -m course.artefacts``), and the lesson calls the same builder, which finds the file in
the cache and returns at once. A builder must be idempotent: return the cached path when the file
is there and readable, else build it, write it atomically, and return it.

Which lab owns which builder is listed in ``_MODULES``; importing a module registers its builders.
Every artefact lives in its own folder, :func:`folder` (``<course cache>/artefacts/<name>``). Where
the cache cannot be written or must not be shared, a read-only copy of the built artefacts is
named by ``$COURSE_ARTEFACTS_DIR``; :func:`folder` looks there first. The autograder does this:
it shows the instructor's built artefacts to each student kernel read-only
(:func:`built_home`), so a graded lesson loads them instead of building them under the
kernel's limits.

Example::

    from course import artefacts
    sorted(artefacts.builders())           # the names ``python -m course.artefacts`` builds
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ENV", "build", "builders", "built_home", "folder", "register"]

#: names a read-only folder of built artefacts that :func:`folder` looks in first
ENV = "COURSE_ARTEFACTS_DIR"

# the labs that register builders (importing one registers its builders)
_MODULES: tuple[str, ...] = ("course.text_models", "course.generation")

_BUILDERS: dict[str, Callable[[], Any]] = {}


def register(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register ``fn`` (no arguments, returns what it built) as the builder called ``name``.

    Example:

    >>> @register("doc-example")
    ... def _example() -> str:
    ...     return "built"
    >>> builders()["doc-example"]()
    'built'
    >>> _ = _BUILDERS.pop("doc-example")
    """

    def decorate(fn: Callable[[], Any]) -> Callable[[], Any]:
        if name in _BUILDERS and _BUILDERS[name] is not fn:
            raise ValueError(f"two builders are registered as {name!r}; give one another name")
        _BUILDERS[name] = fn
        return fn

    return decorate


def folder(name: str) -> Path:
    """The folder of the artefact ``name``: ``$COURSE_ARTEFACTS_DIR/<name>`` when that exists (a
    read-only copy, as the autograder's sandbox shows it), else ``<course cache>/artefacts/<name>``
    (not created: the builder creates it when it builds).

    Example:

    >>> import os
    >>> os.environ["COURSE_CACHE_DIR"] = "/tmp/course-cache"
    >>> folder("text-encoder-0123")
    PosixPath('/tmp/course-cache/artefacts/text-encoder-0123')
    """
    shared = os.environ.get(ENV)
    if shared and (Path(shared) / name).is_dir():
        return Path(shared) / name
    from course.data import cache_dir

    return cache_dir() / "artefacts" / name


def built_home() -> Path | None:
    """The folder holding this machine's built artefacts (``<course cache>/artefacts``), or None
    when nothing was built there yet (``python -m course.artefacts`` builds them)."""
    from course.data import cache_dir

    home = cache_dir() / "artefacts"
    return home if home.is_dir() and any(home.iterdir()) else None


def builders() -> dict[str, Callable[[], Any]]:
    """Every registered builder by name, after importing the labs that own them."""
    for module in _MODULES:
        importlib.import_module(module)
    return dict(_BUILDERS)


def build(names: list[str] | None = None, *, echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run the named builders (all when ``names`` is None); returns what each built.

    Each line printed says what was built (or found in the cache) and how long it took.
    """
    known = builders()
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise KeyError(f"no builder called {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    out: dict[str, Any] = {}
    for name in names or sorted(known):
        start = time.perf_counter()
        out[name] = known[name]()
        where = out[name] if isinstance(out[name], (str, Path)) else type(out[name]).__name__
        echo(f"{name}: {where} ({time.perf_counter() - start:.1f} s)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m course.artefacts",
        description="Build the course's costly artefacts into the course cache (once).",
    )
    parser.add_argument("names", nargs="*", help="builders to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the builders and stop")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(sorted(builders())))
        return 0
    from course.data import cache_dir

    print(f"course cache: {cache_dir()}")
    build(args.names or None)
    return 0


if __name__ == "__main__":  # pragma: no cover - the command line
    # run as ``python -m course.artefacts`` this file is ``__main__``, while the labs register
    # their builders in ``course.artefacts``: call that module's main, or the registry is empty
    from course.artefacts import main as _main

    sys.exit(_main())
