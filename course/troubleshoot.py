"""When a conversion fails: reproduce it safely, name it, fix it, and check the fix.

Three tools for working through conversion failures:

- :func:`attempt` runs a call that may fail (an export, a conversion, an inference) and keeps
  everything it produced (the exception, warnings, log records, text printed to stdout and
  stderr, C++ output included) in an :class:`Attempt` instead of flooding a notebook;
- :data:`GALLERY` lists the failures learners report most (symptom, cause, fix, how to verify,
  the public issues behind each), and :func:`draw_export_pipelines` draws where in each
  converter's pipeline they happen;
- :class:`ConversionExplorer` runs exported models at a chosen batch size and input dtype and
  measures the error against the source framework: the logic of the lesson's conversion
  explorer (wired to ipywidgets with ``course.widgets.explorer``).

Example::

    from course import troubleshoot
    result = troubleshoot.attempt(session.run, None, {"x": X.astype("float64")})
    result.ok                  # False
    print(result)              # the error type and its key lines, how long it took
    troubleshoot.failure("float64-input").fix
"""

from __future__ import annotations

import contextlib
import importlib.abc
import io
import logging
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from course import _capture, figures
from course.failure_gallery import (
    EXPORT_PIPELINES,
    GALLERY,
    Failure,
    Stage,
    failure,
    gallery_frame,
)
from course.palette import BLACK, BLUE, GREEN, ORANGE, PURPLE, SKY, VERMILLION, WHITE, YELLOW

__all__ = [
    "Attempt",
    "Captured",
    "ConversionExplorer",
    "EXPORT_PIPELINES",
    "ExplorerCase",
    "ExplorerOutcome",
    "Failure",
    "GALLERY",
    "Stage",
    "attempt",
    "capture",
    "draw_export_pipelines",
    "failure",
    "gallery_frame",
    "input_signature",
    "missing_package",
    "outcome_grid",
    "strip_ansi",
]

#: Okabe-Ito colours (colour-blind safe), used by the figures of this module.
OKABE_ITO = {
    "blue": BLUE,
    "orange": ORANGE,
    "green": GREEN,
    "vermillion": VERMILLION,
    "purple": PURPLE,
    "sky": SKY,
    "yellow": YELLOW,
    "black": BLACK,
}

_ANSI = _capture.ANSI


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (torch's export errors contain them).

    >>> strip_ansi("\\x1b[96mThis is step 1/3\\x1b[0m")
    'This is step 1/3'
    """
    return _capture.strip_ansi(text)


# --------------------------------------------------------------------------------------------
# capturing what a call prints


@dataclass
class Captured:
    """What a block of code produced besides its result (filled when the block ends)."""

    stdout: str = ""
    stderr: str = ""
    warnings: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


_ListHandler = _capture.LogListHandler
_fd_capture = _capture.fd_capture


@contextlib.contextmanager
def capture() -> Iterator[Captured]:
    """Keep everything a block prints, warns or logs; nothing reaches the screen.

    Captures Python's ``sys.stdout``/``sys.stderr``, the operating-system file descriptors 1
    and 2 (what C++ code such as TensorFlow or ONNX Runtime writes), every warning, and the
    records of every logger that has a handler (torch and tf2onnx give their loggers their own
    stderr handlers). Warnings are recorded each time they occur, except those silenced by a
    targeted filter (``warnings.filterwarnings("ignore", message=...)``): such a filter is a
    deliberate choice and is kept.

    Example::

        with capture() as out:
            import tensorflow as tf
        len(out.stderr.splitlines())    # the start-up lines TensorFlow wrote
    """
    captured = Captured()
    handler = _ListHandler()
    saved_loggers: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
    loggers = [logging.getLogger()] + [
        lg
        for lg in logging.root.manager.loggerDict.values()
        if isinstance(lg, logging.Logger) and lg.handlers
    ]
    for lg in loggers:
        saved_loggers.append((lg, lg.handlers[:], lg.propagate))
        lg.handlers = [handler]
        lg.propagate = False
    py_out, py_err = io.StringIO(), io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        with (
            warnings.catch_warnings(record=True) as caught,
            _fd_capture(1) as fd_out,
            _fd_capture(2) as fd_err,
            contextlib.redirect_stdout(py_out),
            contextlib.redirect_stderr(py_err),
        ):
            targeted = [f for f in warnings.filters if f[0] == "ignore" and f[1] is not None]
            warnings.simplefilter("always")
            for _, message, category, module, lineno in reversed(targeted):
                warnings.filterwarnings(
                    "ignore",
                    message=message.pattern,
                    category=category,
                    module=module.pattern if module is not None else "",
                    lineno=lineno,
                )
            try:
                yield captured
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
        captured.warnings.extend(_capture.warning_lines(caught))
        captured.stdout = strip_ansi(py_out.getvalue() + fd_out())
        captured.stderr = strip_ansi(py_err.getvalue() + fd_err())
    finally:
        for lg, handlers, propagate in saved_loggers:
            lg.handlers = handlers
            lg.propagate = propagate
        captured.log = handler.lines


class _HidePackages(importlib.abc.MetaPathFinder):
    """A finder that answers "not installed" for some top-level packages."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


@contextlib.contextmanager
def missing_package(*names: str) -> Iterator[None]:
    """Inside the block, importing these packages fails as if they were not installed.

    Use it to see the error a user without a dependency gets, without uninstalling anything.
    Only imports that have not happened yet can fail, so a package this process has already
    imported is refused with a ValueError (restart the kernel, or use a fresh process).

    Example::

        with missing_package("onnxscript"):
            result = attempt(torch.onnx.export, model, (x,), dynamo=True)
        print(result)    # ModuleNotFoundError: No module named 'onnxscript'
    """
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(
            f"name the packages to hide, e.g. missing_package('onnxscript'); got {names}"
        )
    top = frozenset(n.split(".")[0] for n in names)
    loaded = sorted(n for n in top if n in sys.modules)
    if loaded:
        raise ValueError(
            f"{loaded} already imported in this process, so hiding it now changes nothing: "
            "restart the kernel (or use a fresh process) before this block"
        )
    finder = _HidePackages(top)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


# --------------------------------------------------------------------------------------------
# attempts


def _key_lines(message: str, max_lines: int) -> list[str]:
    """The informative lines of an error message (torch's export errors have a summary)."""
    text = strip_ansi(message)
    if "## Exception summary" in text:
        text = text.split("## Exception summary", 1)[1]
        text = text.split("(Refer to the full stack trace")[0]
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return lines[:max_lines]


@dataclass
class Attempt:
    """The outcome of :func:`attempt`: a result or an exception, and everything else it produced.

    Attributes:
        ok: True when the call returned.
        value: what it returned (None when it raised).
        error: the exception it raised (None when it returned).
        seconds: wall-clock time of the call.
        captured: its stdout, stderr, warnings and log records (:class:`Captured`).
    """

    ok: bool
    value: Any
    error: BaseException | None
    seconds: float
    captured: Captured

    @property
    def error_type(self) -> str:
        """The exception's class name, '' when the call succeeded."""
        return "" if self.error is None else type(self.error).__name__

    @property
    def message(self) -> str:
        """The full exception message without colour codes, '' when the call succeeded."""
        return "" if self.error is None else strip_ansi(str(self.error))

    def key_lines(self, max_lines: int = 6) -> list[str]:
        """The lines of the error that say what went wrong (for torch: its summary section)."""
        return [] if self.error is None else _key_lines(str(self.error), max_lines)

    def mentions(self, text: str) -> bool:
        """True when ``text`` appears in the error, the warnings, the log or the output."""
        c = self.captured
        haystack = "\n".join([self.message, c.stdout, c.stderr, *c.warnings, *c.log])
        return text in haystack

    def report(self, max_lines: int = 6, warnings: bool = True) -> str:
        """A short text: outcome, time, the key lines of the error, and the warnings."""
        if self.ok:
            lines = [f"succeeded in {self.seconds:.2f} s"]
        else:
            lines = [f"failed after {self.seconds:.2f} s with {self.error_type}:"]
            lines += [f"    {ln[:220]}" for ln in self.key_lines(max_lines)]
        if warnings and self.captured.warnings:
            lines.append(f"warnings ({len(self.captured.warnings)}):")
            lines += [f"    {w.splitlines()[0][:220]}" for w in self.captured.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Attempt:
    """Call ``fn(*args, **kwargs)``, keep its exception instead of raising, capture its output.

    Use it to reproduce a failure in a notebook cell and look at it calmly: the returned
    :class:`Attempt` says whether the call worked, how long it took, the key lines of the error,
    and every warning and log line it produced. ``KeyboardInterrupt`` still interrupts.

    Example::

        result = attempt(torch.onnx.export, model, (x,), dynamo=True)
        if not result.ok:
            print(result.report())
    """
    if not callable(fn):
        raise TypeError(f"attempt() needs a callable (a function), got {type(fn).__name__}")
    start = time.perf_counter()
    value: Any = None
    error: BaseException | None = None
    with capture() as captured:
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - keeping the failure is the point
            error = exc
    return Attempt(error is None, value, error, time.perf_counter() - start, captured)


# --------------------------------------------------------------------------------------------
# the export pipelines, drawn (the gallery's data: course.failure_gallery)


def draw_export_pipelines(pipelines: Mapping[str, Sequence[Stage]] | None = None) -> Any:
    """Draw each converter's pipeline as a row of boxes, with numbered failure markers.

    A marker's number is the failure's position in :data:`GALLERY` (1-based); the legend names
    them. Returns the matplotlib Figure.

    Example::

        fig = draw_export_pipelines()
        fig.savefig("pipelines.png")
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    pipelines = EXPORT_PIPELINES if pipelines is None else pipelines
    if not pipelines:
        raise ValueError("nothing to draw: pass at least one pipeline {name: [Stage, ...]}")
    rows = list(pipelines.items())
    width = max(len(stages) for _, stages in rows)
    colours = [OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["green"], OKABE_ITO["purple"]]
    # a pyplot figure: lesson 03 shows it with plt.show()
    fig, ax = figures.figure((2.05 * width + 1.6, 1.75 * len(rows) + 1.6), pyplot=True)
    used: dict[int, str] = {}
    for r, (name, stages) in enumerate(rows):
        y = len(rows) - 1 - r
        colour = colours[r % len(colours)]
        ax.text(-0.15, y, name, ha="right", va="center", fontsize=9, fontweight="bold")
        for c, stage in enumerate(stages):
            box = FancyBboxPatch(
                (c + 0.05, y - 0.32),
                0.8,
                0.64,
                boxstyle="round,pad=0.02",
                facecolor=colour,
                alpha=0.18,
                edgecolor=colour,
                linewidth=1.5,
            )
            ax.add_patch(box)
            ax.text(c + 0.45, y + 0.14, stage.name, ha="center", va="center", fontsize=8.5)
            ax.text(c + 0.45, y - 0.12, stage.detail, ha="center", va="center", fontsize=6.5)
            if c + 1 < len(stages):
                ax.add_patch(
                    FancyArrowPatch(
                        (c + 0.87, y),
                        (c + 1.03, y),
                        arrowstyle="-|>",
                        mutation_scale=10,
                        color=OKABE_ITO["black"],
                    )
                )
            for k, key in enumerate(stage.failures):
                number = GALLERY.index(failure(key)) + 1
                used[number] = failure(key).title
                ax.text(
                    c + 0.12 + 0.17 * k,
                    y + 0.4,
                    str(number),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=WHITE,
                    fontweight="bold",
                    bbox={
                        "boxstyle": "circle,pad=0.25",
                        "fc": OKABE_ITO["vermillion"],
                        "ec": "none",
                    },
                )
    ax.set_xlim(-1.7, width + 0.1)
    ax.set_ylim(-0.75, len(rows) - 0.35)
    ax.set_xlabel("pipeline stage (left to right: what each converter does, in order)")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Three converters, three pipelines: where conversions fail")
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor=OKABE_ITO["vermillion"],
            markeredgecolor="none",
            label=f"{n}: {title}",
        )
        for n, title in sorted(used.items())
    ]
    if handles:
        ax.legend(
            handles=handles,
            title="failure (gallery number)",
            loc="upper center",
            bbox_to_anchor=(0.5, -0.08),
            ncol=3,
            fontsize=7,
            title_fontsize=8,
            frameon=False,
        )
    return figures.finish(fig)


# --------------------------------------------------------------------------------------------
# the conversion explorer


def input_signature(model: onnx.ModelProto | bytes) -> list[tuple[str, str, list[int | str]]]:
    """``(name, dtype, dims)`` of each graph input; a dynamic dimension is its name (or '?').

    >>> from onnx import helper, TensorProto
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
    >>> input_signature(helper.make_model(g))
    [('x', 'float32', ['batch', 3])]
    """
    proto = _as_proto(model)
    inits = {i.name for i in proto.graph.initializer}
    out = []
    for value in proto.graph.input:
        if value.name in inits:
            continue
        t = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
        dims: list[int | str] = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or "?")
        out.append((value.name, dtype, dims))
    return out


def _as_proto(model: Any) -> onnx.ModelProto:
    from course import _model

    return _model.load(model)


@dataclass
class ExplorerCase:
    """One exported model the explorer can run, and the source framework's prediction.

    Args:
        model: the exported ONNX model (ModelProto or bytes), one input.
        reference: the source framework's prediction for a batch of raw (float64) rows; it
            casts as its framework needs (a float32 PyTorch model casts to float32, scikit-learn
            computes in float64).
        output: which output of the ONNX model to compare (scikit-learn classifiers: 1).
        source: the framework's name for messages ('PyTorch').
    """

    model: onnx.ModelProto | bytes
    reference: Callable[[np.ndarray], Any]
    output: int = 0
    source: str = "source"


@dataclass(frozen=True)
class ExplorerOutcome:
    """What happened when the explorer ran one case at one batch size and input dtype."""

    framework: str
    export: str
    batch: int
    dtype: str
    cast: bool
    runs: bool
    error: str
    max_abs_error: float | None
    rtol: float
    atol: float
    within_tolerance: bool | None
    signature: str
    source: str

    @property
    def verdict(self) -> str:
        """'fails', 'beyond tolerance' or 'within tolerance'."""
        if not self.runs:
            return "fails"
        return "within tolerance" if self.within_tolerance else "beyond tolerance"

    def text(self) -> str:
        """A few lines for the widget: the case, the outcome, the measured error."""
        fed = f"{self.dtype} cast to the model's dtype" if self.cast else self.dtype
        head = (
            f"{self.framework}, {self.export}: batch {self.batch}, input {fed}\n"
            f"model input: {self.signature}"
        )
        if not self.runs:
            return f"{head}\n✘ does not run:\n  {self.error}"
        mark = "✔" if self.within_tolerance else "✘"
        return (
            f"{head}\n{mark} runs; max |ONNX − {self.source}| = {self.max_abs_error:.2e} "
            f"(tolerance: atol {self.atol:g} + rtol {self.rtol:g}·|{self.source}|): "
            f"{self.verdict}"
        )

    def __str__(self) -> str:
        return self.text()


def _short_ort_error(text: str) -> str:
    text = " ".join(text.split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return text[:300]


class ConversionExplorer:
    """Run exported models at any batch size and input dtype; measure the error to the source.

    The logic behind the lesson's conversion explorer: every case is an already exported model
    (exports take seconds, so they are made once), and :meth:`run` only runs ONNX Runtime and the
    source framework on a few rows, so a widget reacts at once.

    Args:
        cases: ``{(framework, export): ExplorerCase}``, e.g. ``("PyTorch", "dynamic batch")``.
        data: raw rows (any float dtype, usually float64 as data arrives); batches are taken
            from the top, repeating rows when the batch is larger than the data.

    Example::

        explorer = ConversionExplorer({("PyTorch", "dynamic batch"): case}, X_test)
        print(explorer.run("PyTorch", "dynamic batch", batch=7, dtype="float64"))
    """

    DTYPES = ("float32", "float64", "float16")

    def __init__(self, cases: Mapping[tuple[str, str], ExplorerCase], data: np.ndarray) -> None:
        if not cases:
            raise ValueError("the explorer needs at least one case {(framework, export): case}")
        for key, case in cases.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"case keys are (framework, export) pairs, got {key!r}")
            if not isinstance(case, ExplorerCase):
                raise TypeError(f"case {key} must be an ExplorerCase, got {type(case).__name__}")
            n_inputs = len(input_signature(case.model))
            if n_inputs != 1:
                raise ValueError(f"case {key}: the explorer runs one-input models, got {n_inputs}")
        data = np.asarray(data)
        if data.ndim < 2 or len(data) == 0 or data.dtype.kind != "f":
            raise ValueError(
                f"data must be a non-empty float array of rows (batch, ...), got shape "
                f"{data.shape} and dtype {data.dtype}"
            )
        self.cases = dict(cases)
        self.data = data
        self._sessions: dict[tuple[str, str], Any] = {}

    @property
    def frameworks(self) -> list[str]:
        """The frameworks, in the order the cases were given."""
        return list(dict.fromkeys(f for f, _ in self.cases))

    def exports(self, framework: str) -> list[str]:
        """The export variants available for ``framework``."""
        return [e for f, e in self.cases if f == framework]

    def _session(self, key: tuple[str, str]) -> Any:
        if key not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 4  # the failure is returned, not logged to stderr
            options.intra_op_num_threads = 1  # a few rows: threads would only wait
            model = self.cases[key].model
            data = model if isinstance(model, bytes) else model.SerializeToString()
            self._sessions[key] = ort.InferenceSession(
                data, options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[key]

    def batch_of(self, batch: int) -> np.ndarray:
        """The first ``batch`` rows of the data (rows repeat when batch exceeds the data)."""
        if not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        idx = np.arange(int(batch)) % len(self.data)
        return self.data[idx]

    def run(
        self, framework: str, export: str, batch: int, dtype: str = "float32", cast: bool = False
    ) -> ExplorerOutcome:
        """Run one case: the batch in ``dtype`` (or cast to the model's dtype when ``cast``).

        The ONNX output is compared with ``case.reference(raw rows)`` at tolerances chosen from
        the ONNX output's dtype (``course.verify.default_tolerances``).
        """
        key = (framework, export)
        if key not in self.cases:
            raise KeyError(f"no case {key!r}; the cases are {sorted(self.cases)}")
        if dtype not in self.DTYPES:
            raise ValueError(f"dtype must be one of {self.DTYPES}, got {dtype!r}")
        from course.verify import default_tolerances

        case = self.cases[key]
        name, declared, dims = input_signature(case.model)[0]
        signature = f"{name}: {declared}[{', '.join(str(d) for d in dims)}]"
        raw = self.batch_of(batch)
        fed = raw.astype(declared if cast and declared != "?" else dtype)
        rtol, atol = default_tolerances(np.float32)
        try:
            outputs = self._session(key).run(None, {name: fed})
        except Exception as exc:  # noqa: BLE001 - onnxruntime's failure is the result
            return ExplorerOutcome(
                framework, export, int(batch), dtype, cast, False, _short_ort_error(str(exc)),
                None, rtol, atol, None, signature, case.source,
            )  # fmt: skip
        got = np.asarray(outputs[case.output])
        want = np.asarray(case.reference(raw))
        if got.shape != want.shape:
            want = want.reshape(got.shape)
        rtol, atol = default_tolerances(got.dtype)
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        within = bool(np.all(diff <= atol + rtol * np.abs(want.astype(np.float64))))
        return ExplorerOutcome(
            framework, export, int(batch), dtype, cast, True, "", float(diff.max()),
            rtol, atol, within, signature, case.source,
        )  # fmt: skip

    def sweep(
        self, batches: Sequence[int], dtype: str = "float32", cast: bool = False
    ) -> list[ExplorerOutcome]:
        """:meth:`run` for every case at every batch size."""
        return [
            self.run(framework, export, b, dtype, cast)
            for (framework, export) in self.cases
            for b in batches
        ]


def outcome_grid(outcomes: Sequence[ExplorerOutcome], title: str | None = None) -> Any:
    """Draw a grid (case x batch size) of measured outcomes; returns the matplotlib Figure.

    Green cells ran within tolerance (the measured max error is printed), yellow cells ran but
    exceeded it, vermillion cells failed to run.

    Example::

        outcome_grid(explorer.sweep([1, 7, 64], dtype="float32"))
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    if not outcomes:
        raise ValueError("no outcomes to draw: pass the list ConversionExplorer.sweep() returns")
    rows = list(dict.fromkeys((o.framework, o.export) for o in outcomes))
    cols = sorted({o.batch for o in outcomes})
    levels = {"within tolerance": 0, "beyond tolerance": 1, "fails": 2}
    grid = np.full((len(rows), len(cols)), np.nan)
    # a pyplot figure: lesson 03 shows it with plt.show()
    fig, ax = figures.figure((1.25 * len(cols) + 3.2, 0.55 * len(rows) + 1.9), pyplot=True)
    for o in outcomes:
        r, c = rows.index((o.framework, o.export)), cols.index(o.batch)
        grid[r, c] = levels[o.verdict]
        label = "fails" if not o.runs else f"{o.max_abs_error:.0e}"
        ax.text(c, r, label, ha="center", va="center", fontsize=8, color=OKABE_ITO["black"])
    palette = [OKABE_ITO["green"], OKABE_ITO["yellow"], OKABE_ITO["vermillion"]]
    ax.imshow(grid, cmap=ListedColormap(palette), vmin=0, vmax=2, alpha=0.6, aspect="auto")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [f"{f}, {e}" for f, e in rows])
    ax.set_xlabel("batch size (rows)")
    ax.set_ylabel("exported model (framework, export)")
    dtypes = sorted({o.dtype + (" cast" if o.cast else "") for o in outcomes})
    ax.set_title(
        title or f"Does the export run? Max abs error vs source (input {', '.join(dtypes)})"
    )
    ax.legend(
        handles=[Patch(color=c, alpha=0.6, label=k) for k, c in zip(levels, palette, strict=True)],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    return figures.finish(fig)
