"""ONNX Runtime profiling traces: load the JSON file, see where the time goes.

ONNX Runtime writes a Chrome-trace JSON file when a session is created with
``SessionOptions.enable_profiling = True``; ``session.end_profiling()`` returns its path. Each
event is a dict with ``cat`` (``"Session"`` or ``"Node"``), ``name``, ``ts`` and ``dur`` in
microseconds, and for kernels ``args.op_name`` and ``args.provider``. This module turns such a
trace into a per-operator summary and two plots::

    import onnxruntime as ort
    from course import profiling
    so = ort.SessionOptions()
    so.enable_profiling = True
    sess = ort.InferenceSession("model.onnx", so, providers=["CPUExecutionProvider"])
    for _ in range(20):
        sess.run(None, {"input": x})
    summary = profiling.summarize(sess.end_profiling())
    summary.to_frame()         # time per operator type, calls, share of kernel time
    summary.plot()             # where the time goes, per run
    profiling.plot_timeline(summary.trace)   # one run, kernel by kernel

Open the same file in ``chrome://tracing`` or https://ui.perfetto.dev for an interactive view.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from course import figures
from course.palette import LIGHT_GREY, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import onnx
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "OKABE_ITO",
    "ProfileSummary",
    "TraceError",
    "kernel_events",
    "load_trace",
    "plot_timeline",
    "profile_model",
    "summarize",
]


_KERNEL_SUFFIX = "_kernel_time"


class TraceError(ValueError):
    """The file or object is not an ONNX Runtime profiling trace; the message says why."""


Trace = list[dict[str, Any]]


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read an ONNX Runtime profiling trace (the JSON file ``end_profiling()`` returns).

    Raises :class:`FileNotFoundError` when the file is missing and :class:`TraceError` when it
    is not a list of trace events (for instance a model file or a truncated trace).

    Example::

        >>> s = profile_model("mlp.onnx", {"x": X_test[:4]}, runs=3)
        >>> trace = load_trace(s.path)
        >>> trace[0]["cat"]
        'Session'
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"no profiling trace at {p}: enable SessionOptions.enable_profiling before creating "
            "the session, run it, then use the path that session.end_profiling() returns"
        )
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceError(
            f"{p} is not JSON ({exc}); a trace is complete only after session.end_profiling()"
        ) from exc
    return _check_trace(data, str(p))


def _check_trace(data: Any, where: str) -> Trace:
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise TraceError(
            f"{where}: expected a list of trace events (dicts), got {type(data).__name__}"
        )
    for i, event in enumerate(data):
        missing = {"cat", "name", "ts", "dur"} - set(event)
        if missing:
            raise TraceError(
                f"{where}: event {i} lacks {sorted(missing)}; is this an ONNX Runtime trace?"
            )
    return data


def kernel_events(trace: Trace) -> Trace:
    """The kernel (operator) events of a trace, in time order.

    Each has ``args.op_name`` (the operator type, e.g. ``"Gemm"``), ``args.provider`` and a
    ``name`` ending in ``_kernel_time`` (the node's name before it).

    Example::

        >>> trace = load_trace(profile_model("mlp.onnx", {"x": X_test[:4]}, runs=3).path)
        >>> sorted({e["args"]["op_name"] for e in kernel_events(trace)})  # doctest: +ELLIPSIS
        [...'MatMul'...]
    """
    trace = _check_trace(trace, "trace")
    events = [
        e
        for e in trace
        if e["cat"] == "Node"
        and e["name"].endswith(_KERNEL_SUFFIX)
        and "op_name" in e.get("args", {})
    ]
    return sorted(events, key=lambda e: e["ts"])


@dataclass
class ProfileSummary:
    """Where the time went in a profiled session, in microseconds.

    ``operator_us`` and ``calls`` are per operator type (summed over nodes and runs);
    ``node_us`` is per node; ``provider_us`` per execution provider; ``run_us`` holds the
    duration of each ``model_run`` (one per ``session.run`` call); ``session_us`` the one-off
    costs (``model_loading_uri``/``model_loading_array``, ``session_initialization``).
    ``overhead_us`` is the time inside runs but outside kernels (input checks, allocation,
    scheduling, copying outputs back): on a tiny model it can dominate.
    """

    operator_us: dict[str, float]
    calls: dict[str, int]
    node_us: dict[str, float]
    provider_us: dict[str, float]
    run_us: np.ndarray
    session_us: dict[str, float]
    trace: Trace = field(repr=False)
    path: Path | None = None

    @property
    def runs(self) -> int:
        return len(self.run_us)

    @property
    def kernel_us(self) -> float:
        return float(sum(self.operator_us.values()))

    @property
    def overhead_us(self) -> float:
        return max(float(self.run_us.sum()) - self.kernel_us, 0.0)

    def share(self, op_type: str) -> float:
        """Fraction of kernel time spent in ``op_type`` (0 when absent)."""
        total = self.kernel_us
        return self.operator_us.get(op_type, 0.0) / total if total else 0.0

    def to_frame(self) -> pd.DataFrame:
        """One row per operator type, slowest first: total and per-run µs, calls, share."""
        import pandas as pd

        runs = max(self.runs, 1)
        rows = [
            {
                "operator": op,
                "total_us": us,
                "us_per_run": us / runs,
                "calls": self.calls[op],
                "share_of_kernel_time": self.share(op),
            }
            for op, us in sorted(self.operator_us.items(), key=lambda kv: -kv[1])
        ]
        frame = pd.DataFrame(
            rows,
            columns=["operator", "total_us", "us_per_run", "calls", "share_of_kernel_time"],
        ).set_index("operator")
        frame.attrs["runs"] = self.runs
        frame.attrs["overhead_us"] = self.overhead_us
        return frame

    def plot(self, ax: Any = None, *, top: int = 8, title: str | None = None) -> Figure:
        """Bar chart of mean time per run: each operator type, then the time outside kernels.

        ``top`` limits the operators shown (the rest are summed into "other operators").
        Returns the matplotlib Figure.
        """
        if top < 1:
            raise ValueError(f"top must be >= 1, got {top}")
        fig, ax = figures.axes(ax, (6.4, 3.4))
        runs = max(self.runs, 1)
        ordered = sorted(self.operator_us.items(), key=lambda kv: -kv[1])
        shown = ordered[:top]
        rest = sum(us for _, us in ordered[top:])
        labels = [op for op, _ in shown] + (["other operators"] if rest else [])
        values = [us / runs for _, us in shown] + ([rest / runs] if rest else [])
        colours = [OKABE_ITO[0]] * len(labels)
        labels.append("outside kernels")
        values.append(self.overhead_us / runs)
        colours.append(OKABE_ITO[1])
        ypos = np.arange(len(labels))
        bars = ax.barh(ypos, values, color=colours)
        bars[0].set_label("inside operator kernels")
        bars[-1].set_label("run overhead (outside kernels)")
        ax.set_yticks(ypos, labels)
        ax.invert_yaxis()
        ax.set(
            xlabel="mean time per run (µs)",
            ylabel="operator type",
            title=title or f"Where the time goes ({self.runs} profiled runs)",
        )
        figures.legend_below(ax, ncol=2, fontsize="small")
        return figures.finish(fig)


def summarize(trace: Trace | str | os.PathLike[str]) -> ProfileSummary:
    """Summarise a trace (a path, or the list :func:`load_trace` returns).

    Example::

        >>> s = summarize(profile_model("mlp.onnx", {"x": X_test[:4]}, runs=3).path)
        >>> s.runs
        4
    """
    path = None
    if isinstance(trace, (str, os.PathLike)):
        path = Path(trace)
        trace = load_trace(trace)
    trace = _check_trace(trace, "trace")
    operator_us: dict[str, float] = {}
    calls: dict[str, int] = {}
    node_us: dict[str, float] = {}
    provider_us: dict[str, float] = {}
    for e in kernel_events(trace):
        op = e["args"]["op_name"]
        dur = float(e["dur"])
        operator_us[op] = operator_us.get(op, 0.0) + dur
        calls[op] = calls.get(op, 0) + 1
        node = e["name"][: -len(_KERNEL_SUFFIX)]
        node_us[node] = node_us.get(node, 0.0) + dur
        provider = e["args"].get("provider", "unknown")
        provider_us[provider] = provider_us.get(provider, 0.0) + dur
    run_us = np.array(
        [float(e["dur"]) for e in trace if e["cat"] == "Session" and e["name"] == "model_run"]
    )
    session_us = {
        e["name"]: float(e["dur"])
        for e in trace
        if e["cat"] == "Session" and e["name"].startswith(("model_loading", "session_init"))
    }
    return ProfileSummary(operator_us, calls, node_us, provider_us, run_us, session_us, trace, path)


def plot_timeline(trace: Trace, *, run: int = -1, ax: Any = None) -> Figure:
    """Draw one ``session.run`` call as a timeline: one bar per kernel, at its start time.

    ``run`` picks the call (``-1``: the last, warmed up). Bars are coloured per operator type;
    the grey band is the whole run, so the gaps show time spent outside kernels.

    Example::

        >>> fig = plot_timeline(load_trace(profile_model("mlp.onnx", {"x": X_test}, runs=2).path))
    """
    trace = _check_trace(trace, "trace")
    runs = sorted(
        (e for e in trace if e["cat"] == "Session" and e["name"] == "model_run"),
        key=lambda e: e["ts"],
    )
    if not runs:
        raise TraceError(
            "the trace has no model_run event: call session.run() before end_profiling()"
        )
    try:
        chosen = runs[run]
    except IndexError:
        raise IndexError(f"run {run} out of range: the trace has {len(runs)} runs") from None
    start, end = chosen["ts"], chosen["ts"] + chosen["dur"]
    kernels = [e for e in kernel_events(trace) if start <= e["ts"] <= end]
    fig, ax = figures.axes(ax, (7.0, 0.9 + 0.32 * max(len(kernels), 1)))
    ax.barh(-1, chosen["dur"], left=0, color=LIGHT_GREY, label="whole run (model_run)")
    colour_of: dict[str, str] = {}
    for i, e in enumerate(kernels):
        op = e["args"]["op_name"]
        first = op not in colour_of
        colour = colour_of.setdefault(op, OKABE_ITO[len(colour_of) % len(OKABE_ITO)])
        ax.barh(i, e["dur"], left=e["ts"] - start, color=colour, label=op if first else None)
    ax.set_yticks(
        [-1, *range(len(kernels))],
        ["run", *(e["name"][: -len(_KERNEL_SUFFIX)] for e in kernels)],
        fontsize="small",
    )
    ax.invert_yaxis()
    number = run if run >= 0 else len(runs) + run
    ax.set(
        xlabel="time since the run started (µs)",
        ylabel="node",
        title=f"Timeline of run {number + 1} of {len(runs)} ({chosen['dur']} µs)",
    )
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    return figures.finish(fig)


def profile_model(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    *,
    runs: int = 20,
    directory: str | os.PathLike[str] | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    intra_op_threads: int | None = None,
) -> ProfileSummary:
    """Run ``model`` ``runs`` times with profiling on and return the trace's summary.

    The trace file is written to ``directory`` (default: the current directory) and its path
    is ``summary.path``. One warm-up run comes first (it is in the trace too).

    Example::

        >>> s = profile_model("mlp.onnx", {"x": X_test[:4]}, runs=10)
        >>> s.runs
        11
    """
    import onnxruntime as ort

    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ValueError(f"runs must be a positive int, got {runs!r}")
    folder = Path(directory) if directory is not None else Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(folder / "ort_profile")
    so.log_severity_level = 3
    if intra_op_threads is not None:
        so.intra_op_num_threads = intra_op_threads
    from course import _model

    sess = ort.InferenceSession(_model.source(model), so, providers=list(providers))
    feeds = dict(feeds)
    for _ in range(runs + 1):
        sess.run(None, feeds)
    return summarize(sess.end_profiling())
