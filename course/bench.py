"""Honest latency measurement: warm-up, repeats, robust statistics, interleaved comparisons.

A single timing is an anecdote. This module times a callable many times after a warm-up,
reports the median with its p90/p99 tail and a bootstrap confidence interval of the median,
and records the machine facts and thread settings next to every number, so a table can be
read (and challenged) later::

    from course import bench
    sess = bench.ort_session("model.onnx", intra_op_threads=1)
    run = bench.session_runner(sess, {"input": x})
    cmp = bench.compare({"onnxruntime": run, "torch": lambda: model(xt)}, repeat=30)
    cmp.to_frame()     # median, p90, p99, 95% CI, speed-up, threads
    cmp.plot()         # medians with their intervals, Okabe-Ito colours

``compare`` interleaves the candidates (A B A B ...) so that slow drift of the machine (other
processes, thermal throttling) hits every candidate alike, and it warns with
:class:`OverlappingIntervalsWarning` (and sets ``Comparison.overlap``) when two confidence
intervals overlap: such a difference may be noise, not a win.
"""

from __future__ import annotations

import gc
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from course import _model, figures
from course.palette import BLACK, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import onnx
    import onnxruntime
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "OKABE_ITO",
    "BenchResult",
    "BenchmarkError",
    "Comparison",
    "OverlappingIntervalsWarning",
    "benchmark",
    "compare",
    "comparison_from_samples",
    "latency_by_batch",
    "machine_info",
    "ort_session",
    "plot_latency_by_batch",
    "session_runner",
    "session_threads",
]


_OPT_LEVELS = _model.OPT_LEVELS
_CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd")
_VERSIONED = ("numpy", "onnx", "onnxruntime", "torch", "tensorflow", "scikit-learn")


class BenchmarkError(RuntimeError):
    """A candidate could not be timed; the message names the candidate and the fix."""


class OverlappingIntervalsWarning(UserWarning):
    """Two candidates' confidence intervals overlap: the difference may be noise."""


# --------------------------------------------------------------------------- machine facts


@lru_cache(maxsize=1)
def _static_machine_info() -> dict[str, Any]:
    cpu_model = None
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and cpu_model is None:
                cpu_model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    if not cpu_model:
        cpu_model = platform.processor() or platform.machine()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is in the pinned stack
        physical = None
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": cpu_model,
        "physical_cores": physical,
        "logical_cores": os.cpu_count(),
        "cpu_features": ",".join(f for f in _CPU_FEATURES if f in flags) or "unknown",
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{f"{name}_version": v for name, v in versions.items()},
    }


def machine_info() -> dict[str, Any]:
    """Facts about this machine that a latency figure depends on.

    CPU model, physical and logical cores, the CPU features that matter for int8 and float
    kernels (AVX2, AVX-512 VNNI, AVX-VNNI, AMX), library versions, thread-related environment
    variables, PyTorch's thread count when PyTorch is already imported, and the 1-minute load
    average at the time of the call (a busy machine inflates every timing).

    Example::

        >>> info = machine_info()
        >>> sorted(info)[:3]
        ['OMP_NUM_THREADS', 'cpu_features', 'cpu_model']
    """
    info = dict(_static_machine_info())
    info["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")
    info["torch_threads"] = (
        sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    )
    info["load_average_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return info


# --------------------------------------------------------------------------- sessions


#: Create an onnxruntime session with explicit, recorded thread and optimisation settings (the
#: course's one session factory, which always limits onnxruntime's log to errors).
ort_session = _model.session


_model_source = _model.source  # old private name, kept for callers


def session_threads(session: onnxruntime.InferenceSession) -> dict[str, Any]:
    """The thread settings of an onnxruntime session (0 means onnxruntime's default).

    Example::

        >>> session_threads(ort_session("model.onnx"))                   # doctest: +ELLIPSIS
        {'intra_op_threads': 0, 'inter_op_threads': 0, 'allow_spinning': 'default', ...}
    """
    so = session.get_session_options()
    try:
        spinning = so.get_session_config_entry("session.intra_op.allow_spinning")
    except Exception:  # not set: onnxruntime's default, spinning on
        spinning = "default"
    return {
        "intra_op_threads": so.intra_op_num_threads,
        "inter_op_threads": so.inter_op_num_threads,
        "allow_spinning": spinning,
        "providers": ",".join(session.get_providers()),
    }


class _SessionRunner:
    """A zero-argument callable that runs a session on fixed inputs (and knows its threads)."""

    def __init__(self, session: Any, feed: dict[str, np.ndarray]):
        self.session = session
        self.feed = feed
        self.threads = session_threads(session)

    def __call__(self) -> list[np.ndarray]:
        return self.session.run(None, self.feed)

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.feed.items()}
        return f"session_runner({shapes}, threads={self.threads})"


def session_runner(
    session: onnxruntime.InferenceSession,
    inputs: Mapping[str, np.ndarray] | np.ndarray,
) -> Callable[[], list[np.ndarray]]:
    """A zero-argument callable running ``session`` on ``inputs``, for :func:`benchmark`.

    ``inputs`` is a feed dict or, for a single-input model, one array. The inputs are checked
    once here (names, rank), so that the timed loop measures inference only; the returned
    callable carries the session's thread settings, which :func:`benchmark` records.

    Example::

        >>> run = session_runner(ort_session("model.onnx"), X_test[:4])
        >>> benchmark(run, repeat=5).median > 0
        True
    """
    names = [i.name for i in session.get_inputs()]
    if isinstance(inputs, np.ndarray):
        if len(names) != 1:
            raise ValueError(
                f"the model has {len(names)} inputs {names}: pass a dict name -> array"
            )
        feed = {names[0]: inputs}
    elif isinstance(inputs, Mapping):
        feed = dict(inputs)
        unknown = sorted(set(feed) - set(names))
        missing = sorted(set(names) - set(feed))
        if unknown or missing:
            raise ValueError(
                f"input names do not match the model: missing {missing}, unknown {unknown}; "
                f"the model's inputs are {names}"
            )
    else:
        raise TypeError(
            f"inputs must be a numpy array or a dict of arrays, got {type(inputs).__name__}"
        )
    runner = _SessionRunner(session, feed)
    runner()  # fails here, with onnxruntime's message, rather than inside a timed loop
    return runner


# --------------------------------------------------------------------------- statistics


def _bootstrap_median_ci(
    samples: np.ndarray, confidence: float, seed: int, resamples: int = 2000
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(samples), size=(resamples, len(samples)))
    medians = np.median(samples[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(medians, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


@dataclass
class BenchResult:
    """Timings of one candidate: per-call seconds, robust statistics and their context.

    ``samples`` holds one per-call time in seconds per repeat; ``ci_low``/``ci_high`` bound the
    median with a bootstrap interval at ``confidence`` (fixed seed, so reruns on the same samples
    give the same interval). ``machine`` and ``threads`` record where and how it ran.
    """

    name: str
    samples: np.ndarray
    warmup: int
    number: int
    confidence: float
    ci_low: float
    ci_high: float
    machine: dict[str, Any]
    threads: dict[str, Any] | None = None
    interleaved: bool = False

    @property
    def repeat(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def p90(self) -> float:
        return float(np.percentile(self.samples, 90))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.samples, 99))

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    @property
    def std(self) -> float:
        return float(np.std(self.samples, ddof=1)) if len(self.samples) > 1 else 0.0

    @property
    def min(self) -> float:
        return float(np.min(self.samples))

    def row(self) -> dict[str, Any]:
        """The result as one flat dict in milliseconds (what :meth:`to_frame` shows)."""
        ms = 1e3
        threads = self.threads or {}
        return {
            "candidate": self.name,
            "median_ms": self.median * ms,
            "p90_ms": self.p90 * ms,
            "p99_ms": self.p99 * ms,
            "ci_low_ms": self.ci_low * ms,
            "ci_high_ms": self.ci_high * ms,
            "min_ms": self.min * ms,
            "repeat": self.repeat,
            "number": self.number,
            "warmup": self.warmup,
            "intra_op_threads": threads.get("intra_op_threads"),
            "inter_op_threads": threads.get("inter_op_threads"),
            "torch_threads": self.machine.get("torch_threads"),
        }

    def to_frame(self) -> pd.DataFrame:
        """One-row DataFrame in milliseconds; machine facts are in ``frame.attrs['machine']``."""
        import pandas as pd

        frame = pd.DataFrame([self.row()]).set_index("candidate")
        frame.attrs["machine"] = dict(self.machine)
        return frame

    def __repr__(self) -> str:
        pct = round(self.confidence * 100)
        return (
            f"BenchResult({self.name!r}: median {self.median * 1e3:.3f} ms "
            f"[{pct}% CI {self.ci_low * 1e3:.3f}-{self.ci_high * 1e3:.3f}], "
            f"p90 {self.p90 * 1e3:.3f} ms, p99 {self.p99 * 1e3:.3f} ms, n={self.repeat})"
        )

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(float_format=lambda v: f"{v:.3f}")


def _check_timing_args(warmup: int, repeat: int, number: int, confidence: float) -> None:
    for label, value, least in (
        ("warmup", warmup, 0),
        ("repeat", repeat, 3),
        ("number", number, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ValueError(f"{label} must be an int >= {least}, got {value!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")


def _time_call(fn: Callable[[], Any], number: int, name: str, phase: str) -> float:
    try:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - start) / number
    except Exception as exc:
        raise BenchmarkError(
            f"candidate {name!r} raised {type(exc).__name__} during {phase}: {exc}. "
            "Call it once by hand to debug; a candidate must run without arguments."
        ) from exc


def _result(
    name: str,
    fn: Any,
    samples: list[float],
    warmup: int,
    number: int,
    confidence: float,
    seed: int,
    interleaved: bool,
) -> BenchResult:
    arr = np.asarray(samples, dtype=np.float64)
    lo, hi = _bootstrap_median_ci(arr, confidence, seed)
    return BenchResult(
        name=name,
        samples=arr,
        warmup=warmup,
        number=number,
        confidence=confidence,
        ci_low=lo,
        ci_high=hi,
        machine=machine_info(),
        threads=getattr(fn, "threads", None),
        interleaved=interleaved,
    )


def benchmark(
    fn: Callable[[], Any],
    *,
    warmup: int = 5,
    repeat: int = 50,
    number: int = 1,
    name: str = "candidate",
    confidence: float = 0.95,
    seed: int = 0,
    disable_gc: bool = True,
) -> BenchResult:
    """Time ``fn()`` ``repeat`` times after ``warmup`` untimed calls.

    Each sample is the mean time of ``number`` consecutive calls (raise ``number`` for calls
    shorter than ~50 µs, where the timer's own cost matters). The garbage collector is paused
    while timing, as :mod:`timeit` does. Returns a :class:`BenchResult` (median, p90, p99,
    bootstrap CI of the median with a fixed ``seed``, machine facts, thread settings).

    Example::

        >>> import numpy as np
        >>> x = np.random.default_rng(0).random(10_000)
        >>> r = benchmark(lambda: np.sort(x), repeat=20)
        >>> r.ci_low <= r.median <= r.ci_high
        True
    """
    if not callable(fn):
        raise TypeError(f"fn must be a zero-argument callable, got {type(fn).__name__}")
    _check_timing_args(warmup, repeat, number, confidence)
    gc_was_enabled = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        for _ in range(warmup):
            _time_call(fn, 1, name, "warm-up")
        samples = [_time_call(fn, number, name, "timing") for _ in range(repeat)]
    finally:
        if gc_was_enabled:
            gc.enable()
    return _result(name, fn, samples, warmup, number, confidence, seed, interleaved=False)


# --------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """Several candidates timed together; the first one is the baseline for speed-ups.

    ``overlapping`` lists the pairs whose confidence intervals of the median overlap, and
    ``overlap`` is True when there is any: read such differences as "not shown", not as wins.
    """

    results: dict[str, BenchResult]
    interleaved: bool
    overlapping: list[tuple[str, str]] = field(default_factory=list)

    @property
    def baseline(self) -> str:
        return next(iter(self.results))

    @property
    def overlap(self) -> bool:
        return bool(self.overlapping)

    @property
    def fastest(self) -> str:
        return min(self.results, key=lambda k: self.results[k].median)

    @property
    def machine(self) -> dict[str, Any]:
        return self.results[self.baseline].machine

    def __getitem__(self, name: str) -> BenchResult:
        return self.results[name]

    def speedup(self, name: str, baseline: str | None = None) -> float:
        """How many times faster ``name`` is than ``baseline`` (ratio of medians; <1 is slower)."""
        base = baseline or self.baseline
        for key in (name, base):
            if key not in self.results:
                raise KeyError(f"no candidate {key!r}; candidates are {list(self.results)}")
        return self.results[base].median / self.results[name].median

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate in milliseconds, with speed-up against the baseline and the
        candidates whose intervals overlap; machine facts in ``frame.attrs['machine']``."""
        import pandas as pd

        rows = []
        for name, res in self.results.items():
            row = res.row()
            row[f"speedup_vs_{self.baseline}"] = self.speedup(name)
            row["overlaps_with"] = ", ".join(
                b if a == name else a for a, b in self.overlapping if name in (a, b)
            )
            rows.append(row)
        frame = pd.DataFrame(rows).set_index("candidate")
        frame.attrs["machine"] = dict(self.machine)
        frame.attrs["interleaved"] = self.interleaved
        return frame

    def plot(self, ax: Any = None, *, show_samples: bool = True) -> Figure:
        """Medians with their confidence intervals (and the individual runs, faint).

        Returns the matplotlib Figure (not registered with pyplot, so it is shown once).
        """
        fig, ax = figures.axes(ax, figsize=(6.4, 0.7 + 0.55 * len(self.results)))
        names = list(self.results)
        for i, name in enumerate(names):
            res = self.results[name]
            colour = OKABE_ITO[i % len(OKABE_ITO)]
            if show_samples:
                jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(res.samples))
                ax.scatter(
                    res.samples * 1e3,
                    i + jitter,
                    s=8,
                    alpha=0.3,
                    color=colour,
                    label="individual runs" if i == 0 else None,
                )
            ax.errorbar(
                res.median * 1e3,
                i,
                xerr=[[(res.median - res.ci_low) * 1e3], [(res.ci_high - res.median) * 1e3]],
                fmt="o",
                color=colour,
                ecolor=BLACK,
                capsize=4,
                markersize=8,
                label=f"median, {round(res.confidence * 100)}% CI" if i == 0 else None,
            )
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(-0.6, len(names) - 0.4)
        ax.invert_yaxis()
        first = self.results[names[0]]
        mode = "interleaved" if self.interleaved else "one after another"
        ax.set(
            xlabel="latency per call (ms)",
            ylabel="candidate",
            title=f"Latency: median and bootstrap CI ({first.repeat} runs each, {mode})",
        )
        ax.legend(loc="best", fontsize="small")
        if self.overlap:
            ax.text(
                0.99,
                0.01,
                "intervals overlap: differences may be noise",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize="small",
                color=OKABE_ITO[3],
            )
        return figures.finish(fig)

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{n}: {r.median * 1e3:.3f} ms [{r.ci_low * 1e3:.3f}-{r.ci_high * 1e3:.3f}]"
            for n, r in self.results.items()
        )
        flag = " (intervals overlap)" if self.overlap else ""
        return f"Comparison({parts}){flag}"

    def _repr_html_(self) -> str:
        html = self.to_frame().to_html(float_format=lambda v: f"{v:.3f}")
        if self.overlap:
            pairs = "; ".join(f"{a} / {b}" for a, b in self.overlapping)
            html += (
                f"<p style='color:{OKABE_ITO[3]}'>Confidence intervals overlap ({pairs}): "
                "these differences may be noise.</p>"
            )
        return html


def _overlapping_pairs(results: dict[str, BenchResult]) -> list[tuple[str, str]]:
    names = list(results)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ra, rb = results[a], results[b]
            if ra.ci_low <= rb.ci_high and rb.ci_low <= ra.ci_high:
                pairs.append((a, b))
    return pairs


def compare(
    candidates: Mapping[str, Callable[[], Any]],
    *,
    warmup: int = 5,
    repeat: int = 30,
    number: int = 1,
    interleaved: bool = True,
    confidence: float = 0.95,
    seed: int = 0,
    warn: bool = True,
    disable_gc: bool = True,
) -> Comparison:
    """Time several candidates; the first is the baseline.

    With ``interleaved=True`` (the default) every round times each candidate once, in an order
    shuffled per round (seeded by ``seed``, so reproducible), so that drift of the machine and
    position effects hit all candidates alike. A fixed pattern (A B A B ...) can resonate with
    the operating system's time slices on a busy machine and penalise one candidate every time;
    the shuffle breaks that. ``interleaved=False`` times them one after another (to show why
    that misleads). When confidence intervals overlap, ``Comparison.overlap`` is set
    and, if ``warn``, an :class:`OverlappingIntervalsWarning` is issued.

    Example::

        >>> import numpy as np
        >>> x = np.random.default_rng(0).random(50_000)
        >>> cmp = compare({"sort": lambda: np.sort(x), "copy": lambda: x.copy()}, warn=False)
        >>> cmp.fastest
        'copy'
    """
    if not isinstance(candidates, Mapping) or not candidates:
        raise ValueError("candidates must be a non-empty dict name -> zero-argument callable")
    for name, fn in candidates.items():
        if not isinstance(name, str):
            raise TypeError(f"candidate names must be str, got {name!r}")
        if not callable(fn):
            raise TypeError(f"candidate {name!r} is not callable (got {type(fn).__name__})")
    _check_timing_args(warmup, repeat, number, confidence)
    names = list(candidates)
    samples: dict[str, list[float]] = {n: [] for n in names}
    gc_was_enabled = gc.isenabled()
    if disable_gc:
        gc.disable()
    try:
        if interleaved:
            for _ in range(warmup):
                for n in names:
                    _time_call(candidates[n], 1, n, "warm-up")
            order = np.random.default_rng(seed)
            for _ in range(repeat):
                for k in order.permutation(len(names)):
                    n = names[k]
                    samples[n].append(_time_call(candidates[n], number, n, "timing"))
        else:
            for n in names:
                for _ in range(warmup):
                    _time_call(candidates[n], 1, n, "warm-up")
                samples[n] = [_time_call(candidates[n], number, n, "timing") for _ in range(repeat)]
    finally:
        if gc_was_enabled:
            gc.enable()
    results = {
        n: _result(n, candidates[n], samples[n], warmup, number, confidence, seed, interleaved)
        for n in names
    }
    return _finish(results, interleaved, warn, stacklevel=3)


def _finish(
    results: dict[str, BenchResult], interleaved: bool, warn: bool, stacklevel: int
) -> Comparison:
    cmp = Comparison(
        results=results, interleaved=interleaved, overlapping=_overlapping_pairs(results)
    )
    if cmp.overlap and warn:
        pct = round(next(iter(results.values())).confidence * 100)
        detail = "; ".join(
            f"{a} [{results[a].ci_low * 1e3:.3f}-{results[a].ci_high * 1e3:.3f} ms] vs "
            f"{b} [{results[b].ci_low * 1e3:.3f}-{results[b].ci_high * 1e3:.3f} ms]"
            for a, b in cmp.overlapping
        )
        warnings.warn(
            f"{pct}% confidence intervals of the median overlap: {detail}. The difference may be "
            "noise; raise repeat, quiet the machine, or report it as 'no measurable difference'.",
            OverlappingIntervalsWarning,
            stacklevel=stacklevel,
        )
    return cmp


def comparison_from_samples(
    samples: Mapping[str, Sequence[float] | np.ndarray],
    *,
    confidence: float = 0.95,
    seed: int = 0,
    interleaved: bool = True,
    warn: bool = True,
) -> Comparison:
    """Build a :class:`Comparison` from per-call times in seconds measured elsewhere.

    Useful for timings recorded on another machine (a GPU box, a phone) or read back from a
    CSV: the same statistics, overlap check and plot apply. The machine facts recorded are
    this machine's, so keep the original machine's facts next to such data.

    Example::

        >>> cmp = comparison_from_samples({"a": [1e-3, 1.1e-3, 0.9e-3], "b": [2e-3, 2.1e-3, 1.9e-3]})
        >>> round(cmp.speedup("b"), 2)
        0.5
    """
    if not isinstance(samples, Mapping) or not samples:
        raise ValueError("samples must be a non-empty dict name -> sequence of seconds")
    _check_timing_args(0, 3, 1, confidence)
    results = {}
    for name, values in samples.items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1 or len(arr) < 3 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f"samples[{name!r}] must be at least 3 finite, non-negative times in seconds, "
                f"got {values!r}"
            )
        results[name] = _result(name, None, list(arr), 0, 1, confidence, seed, interleaved)
    return _finish(results, interleaved, warn, stacklevel=3)


# --------------------------------------------------------------------------- batch size


_tile_batch = _model.tile_batch  # old private name, kept for callers


def latency_by_batch(
    model: str | Path | bytes | onnx.ModelProto | onnxruntime.InferenceSession,
    sample: np.ndarray,
    batch_sizes: Sequence[int] = (1, 8, 32, 64),
    *,
    repeat: int = 20,
    warmup: int = 3,
    intra_op_threads: int | None = None,
) -> pd.DataFrame:
    """Latency and throughput of a single-input model at several batch sizes (interleaved).

    ``sample`` has a leading batch dimension; its rows are repeated to fill each batch. The
    model's batch dimension must be dynamic. Returns one row per batch size: ``median_ms``,
    ``ci_low_ms``, ``ci_high_ms``, ``per_item_us`` (median / batch) and ``throughput_per_s``.

    Example::

        >>> frame = latency_by_batch("mlp.onnx", X_test[:8], (1, 16), repeat=5)
        >>> list(frame.index)
        [1, 16]
    """

    if not hasattr(model, "run"):
        model = ort_session(model, intra_op_threads=intra_op_threads)
    sample = np.asarray(sample)
    if sample.ndim < 1 or len(sample) == 0:
        raise ValueError(
            f"sample must have a leading batch dimension with rows, got shape {sample.shape}"
        )
    sizes = list(batch_sizes)
    if not sizes or any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in sizes):
        raise ValueError(f"batch_sizes must be positive ints, got {batch_sizes!r}")
    names = [i.name for i in model.get_inputs()]
    if len(names) != 1:
        raise ValueError(f"latency_by_batch needs a single-input model, this one has {names}")
    candidates = {}
    for b in sizes:
        try:
            candidates[str(b)] = session_runner(model, _tile_batch(sample, b))
        except Exception as exc:
            raise ValueError(
                f"the model does not run at batch size {b}: {exc}. Export it with a dynamic batch "
                "dimension (torch: dynamic_shapes={'x': {0: torch.export.Dim('batch')}})."
            ) from exc
    cmp = compare(candidates, warmup=warmup, repeat=repeat, warn=False)
    frame = timing_frame(cmp, "batch", {b: b for b in sizes})
    frame.attrs["threads"] = session_threads(model)
    return frame


def timing_frame(comparison: Comparison, index: str, batches: Mapping[Any, int]) -> pd.DataFrame:
    """A sweep's table: one row per key of ``batches`` (the candidate ``str(key)`` of
    ``comparison``, run on ``batches[key]`` samples a call), indexed by ``index``: ``median_ms``,
    ``ci_low_ms``, ``ci_high_ms``, ``p99_ms``, ``per_item_us`` (median / batch) and
    ``throughput_per_s``; ``attrs["machine"]`` says where it was measured.

    Example::

        >>> cmp = compare({"1": lambda: None, "8": lambda: None}, repeat=3, warn=False)
        >>> list(timing_frame(cmp, "batch", {1: 1, 8: 8}).index)
        [1, 8]
    """
    import pandas as pd

    rows = []
    for key, batch in batches.items():
        res = comparison[str(key)]
        rows.append(
            {
                index: key,
                "median_ms": res.median * 1e3,
                "ci_low_ms": res.ci_low * 1e3,
                "ci_high_ms": res.ci_high * 1e3,
                "p99_ms": res.p99 * 1e3,
                "per_item_us": res.median * 1e6 / batch,
                "throughput_per_s": batch / res.median,
            }
        )
    frame = pd.DataFrame(rows).set_index(index)
    frame.attrs["machine"] = comparison.machine
    return frame


def plot_latency_by_batch(frame: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Two panels from :func:`latency_by_batch`: latency per call and throughput, per batch.

    Example::

        >>> fig = plot_latency_by_batch(latency_by_batch("mlp.onnx", X_test, (1, 4), repeat=3))
    """
    needed = {"median_ms", "ci_low_ms", "ci_high_ms", "throughput_per_s"}
    if not needed <= set(frame.columns):
        raise ValueError(
            f"frame lacks columns {sorted(needed - set(frame.columns))}: pass latency_by_batch(...)'s result"
        )
    fig, (left, right) = figures.figure((9, 3.4), ncols=2)
    batch = frame.index.to_numpy()
    left.errorbar(
        batch,
        frame["median_ms"],
        yerr=[frame["median_ms"] - frame["ci_low_ms"], frame["ci_high_ms"] - frame["median_ms"]],
        fmt="o-",
        color=OKABE_ITO[0],
        capsize=3,
        label="median, 95% CI",
    )
    left.set(
        xlabel="batch size (samples)", ylabel="latency per call (ms)", title="Latency per call"
    )
    right.plot(batch, frame["throughput_per_s"], "s-", color=OKABE_ITO[1], label="throughput")
    right.set(
        xlabel="batch size (samples)",
        ylabel="throughput (samples/s)",
        title="Throughput",
    )
    for ax in (left, right):
        if len(batch) > 1 and batch.max() / batch.min() >= 8:
            ax.set_xscale("log", base=2)
        ax.legend(loc="best", fontsize="small")
    return figures.finish(fig, title=title)
