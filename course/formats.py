"""One model, many formats: size on disk, load time, latency and output parity, measured alike.

A model saved in several formats (ONNX, TorchScript, a TensorFlow SavedModel, TFLite, Core ML,
PMML, ...) is described by one :class:`FormatSpec` per format: where the artifact is, how to
load it and how to predict with what was loaded. :func:`compare_formats` measures every format
the same way (file or folder size, median load time, interleaved latency with confidence
intervals, largest difference from a reference output, label agreement) and returns a
:class:`FormatComparison` whose table and chart the format explorer shows::

    from course import formats
    specs = [
        formats.FormatSpec("ONNX", "mlp.onnx", load=ort_load, predict=ort_predict,
                           family="exchange", runtime="onnxruntime"),
        formats.FormatSpec("Core ML", "mlp.mlpackage", load=ct_load, family="on-device",
                           runtime="coremltools", skip_reason="prediction needs macOS"),
    ]
    cmp = formats.compare_formats(specs, X_test, reference_probabilities)
    cmp.to_frame()                                   # one row per format
    cmp.plot(metrics=["size_kb", "latency_ms"])      # one panel per metric
    formats.format_explorer(cmp)                     # the same chart, formats and metrics chosen

A format that cannot predict on this machine (Core ML off macOS) keeps its size and load time
and shows "not run here" with the reason for the rest. :func:`mlp_to_pmml` writes a
multi-layer perceptron as a PMML ``NeuralNetwork`` document with the standard library's XML
tools, so that the classical-ML format can carry the same network.
"""

from __future__ import annotations

import math
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from course import bench, figures
from course.palette import LIGHT_GREY, OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import pandas as pd
    from matplotlib.figure import Figure

    from course.widgets import Explorer

__all__ = [
    "FAMILIES",
    "METRICS",
    "PMML_NAMESPACE",
    "FormatComparison",
    "FormatError",
    "FormatResult",
    "FormatSpec",
    "Metric",
    "artifact_size",
    "compare_formats",
    "comparison_view",
    "format_explorer",
    "mlp_to_pmml",
]

#: The PMML 4.4 XML namespace (Data Mining Group).
PMML_NAMESPACE = "http://www.dmg.org/PMML-4_4"

#: Kinds of format, each with its Okabe-Ito colour in the charts.
FAMILIES = {
    "framework-native": OKABE_ITO[0],
    "exchange": OKABE_ITO[1],
    "on-device": OKABE_ITO[2],
    "other": OKABE_ITO[4],
}


class FormatError(RuntimeError):
    """A format could not be measured; the message names the format and the fix."""


@dataclass(frozen=True)
class Metric:
    """A column of the comparison: its label with units, and how to draw it."""

    key: str
    label: str
    log: bool
    better: str  # "lower" or "higher"


#: The metrics :meth:`FormatComparison.plot` can draw, by column name.
METRICS = {
    "size_kb": Metric("size_kb", "size on disk (KiB)", log=True, better="lower"),
    "load_ms": Metric("load_ms", "load time (ms, median)", log=True, better="lower"),
    "latency_ms": Metric(
        "latency_ms", "latency, one input row (ms, median)", log=True, better="lower"
    ),
    "batch_ms": Metric("batch_ms", "latency, whole batch (ms, median)", log=True, better="lower"),
    "max_abs_diff": Metric(
        "max_abs_diff", "max |format − reference| (output units)", log=True, better="lower"
    ),
    "label_agreement": Metric(
        "label_agreement", "labels equal to the reference (%)", log=False, better="higher"
    ),
}

#: Exact agreement (0) cannot be drawn on a log axis; it is drawn at this floor and labelled.
_LOG_FLOOR = 1e-10


@dataclass(frozen=True)
class FormatSpec:
    """One saved artifact and how to use it.

    Attributes:
        name: the row label (``"ONNX"``, ``"TFLite int8"``).
        path: the file or folder that was saved (folders such as a SavedModel are summed).
        load: ``load(path) -> object``; timed, so it should do exactly what a deployment does
            at start-up (read the file, build the session or interpreter).
        predict: ``predict(loaded, inputs) -> array``; None when the format cannot run here.
        family: ``"framework-native"``, ``"exchange"``, ``"on-device"`` or ``"other"``.
        runtime: what loads and runs it, in words (``"onnxruntime 1.32"``).
        skip_reason: why ``predict`` is None (shown in the table and chart).

    Example::

        spec = FormatSpec("TorchScript", "mlp.pt", load=torch.jit.load,
                          predict=lambda m, x: m(torch.from_numpy(x)).detach().numpy())
    """

    name: str
    path: str | Path
    load: Callable[[Path], Any]
    predict: Callable[[Any, np.ndarray], Any] | None = None
    family: str = "other"
    runtime: str = ""
    skip_reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"FormatSpec.name must be a non-empty string, got {self.name!r}")
        if not callable(self.load):
            raise TypeError(
                f"{self.name}: load must be a function path -> loaded model, "
                f"got {type(self.load).__name__}"
            )
        if self.predict is not None and not callable(self.predict):
            raise TypeError(
                f"{self.name}: predict must be a function (loaded, inputs) -> array or None, "
                f"got {type(self.predict).__name__}"
            )
        if self.family not in FAMILIES:
            raise ValueError(
                f"{self.name}: family must be one of {sorted(FAMILIES)}, got {self.family!r}"
            )
        if self.predict is None and not self.skip_reason:
            raise ValueError(
                f"{self.name}: a format without predict needs a skip_reason saying why it "
                "cannot run here (for example 'prediction needs macOS')"
            )


@dataclass
class FormatResult:
    """What :func:`compare_formats` measured for one format (times in seconds).

    ``latency_s``/``batch_s`` and the parity fields are None when the format did not run here;
    ``note`` then says why. ``label_agreement`` (share of rows whose arg-max matches the
    reference) is None for outputs that are not class scores.
    """

    name: str
    family: str
    runtime: str
    size_bytes: int
    load_s: float
    load_samples: list[float] = field(repr=False)
    latency_s: float | None = None
    latency_ci: tuple[float, float] | None = None
    batch_s: float | None = None
    batch_ci: tuple[float, float] | None = None
    max_abs_diff: float | None = None
    label_agreement: float | None = None
    note: str = ""

    @property
    def ran(self) -> bool:
        """True when the format predicted on this machine."""
        return self.max_abs_diff is not None

    def as_dict(self) -> dict[str, Any]:
        """One table row: sizes in KiB, times in milliseconds, agreement in percent."""

        def ms(value: float | None) -> float:
            return value * 1e3 if value is not None else math.nan

        return {
            "format": self.name,
            "family": self.family,
            "runtime": self.runtime,
            "size_kb": self.size_bytes / 1024,
            "load_ms": ms(self.load_s),
            "latency_ms": ms(self.latency_s),
            "latency_ci_ms": (
                f"{self.latency_ci[0] * 1e3:.3f}-{self.latency_ci[1] * 1e3:.3f}"
                if self.latency_ci
                else ""
            ),
            "batch_ms": ms(self.batch_s),
            "max_abs_diff": self.max_abs_diff if self.ran else math.nan,
            "label_agreement": (
                self.label_agreement * 100 if self.label_agreement is not None else math.nan
            ),
            "note": self.note,
        }


def artifact_size(path: str | Path) -> int:
    """Bytes on disk of a saved model: a file's size, or the total of every file in a folder.

    Folder formats (a TensorFlow SavedModel, a Core ML ``.mlpackage``) hold several files;
    ``os.path.getsize`` on the folder would report the directory entry (often 4096), not them.

    Example::

        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "a.bin").write_bytes(b"12345")
        >>> (d / "sub").mkdir(); _ = (d / "sub" / "b.bin").write_bytes(b"123")
        >>> artifact_size(d), artifact_size(d / "a.bin")
        (8, 5)
    """
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    raise FileNotFoundError(
        f"no saved model at {p}: save the format first (the path must be a file or a folder)"
    )


def _as_array(value: Any, who: str) -> np.ndarray:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # a tf.Tensor
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - re-raised with the format's name
        raise FormatError(
            f"{who}: predict returned {type(value).__name__}, which is not an array"
        ) from exc
    if arr.dtype == object:
        raise FormatError(
            f"{who}: predict returned {type(value).__name__} holding objects; return one "
            "numeric array (for a dict of outputs, pick the one to compare)"
        )
    return arr


def _time_loads(spec: FormatSpec, repeat: int) -> tuple[Any, list[float]]:
    samples, loaded = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            loaded = spec.load(Path(spec.path))
        except Exception as exc:
            raise FormatError(f"{spec.name}: load({spec.path}) failed: {exc}") from exc
        samples.append(time.perf_counter() - start)
    return loaded, samples


def _parity(spec: FormatSpec, loaded: Any, inputs: np.ndarray, reference: np.ndarray):
    assert spec.predict is not None
    try:
        out = _as_array(spec.predict(loaded, inputs), spec.name)
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(f"{spec.name}: predict failed on the inputs: {exc}") from exc
    if out.shape != reference.shape:
        raise FormatError(
            f"{spec.name}: predict returned shape {out.shape}, the reference has "
            f"{reference.shape}: return the same output (e.g. probabilities, not labels)"
        )
    diff = float(np.max(np.abs(out.astype(np.float64) - reference.astype(np.float64))))
    agreement = None  # only class scores have labels to agree on
    if reference.ndim == 2 and reference.shape[1] > 1:
        agreement = float(np.mean(out.argmax(axis=1) == reference.argmax(axis=1)))
    return diff, agreement


def compare_formats(
    specs: Sequence[FormatSpec],
    inputs: np.ndarray,
    reference: np.ndarray,
    *,
    latency_rows: int = 1,
    repeat: int = 20,
    load_repeat: int = 3,
    warmup: int = 3,
    seed: int = 0,
) -> FormatComparison:
    """Measure every format alike; returns a :class:`FormatComparison`.

    For each spec: the artifact's size; ``load(path)`` timed ``load_repeat`` times (median);
    then, for the formats that run here, the output on ``inputs`` against ``reference`` (largest
    absolute difference, and the share of rows whose arg-max agrees), and the latency of
    ``predict`` on the first ``latency_rows`` rows and on the whole batch. Latencies are timed
    interleaved across formats (``course.bench.compare``), so drift of a busy machine hits them
    alike, each with a bootstrap confidence interval of the median.

    Example::

        cmp = compare_formats(specs, X_test, reference_probabilities, repeat=30)
        cmp.to_frame()[["size_kb", "load_ms", "latency_ms", "max_abs_diff"]]
    """
    specs = list(specs)
    if not specs:
        raise ValueError("give at least one FormatSpec to compare")
    for s in specs:
        if not isinstance(s, FormatSpec):
            raise TypeError(f"specs must be FormatSpec objects, got {type(s).__name__}")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"format names must be unique, got {names}")
    inputs = np.asarray(inputs)
    reference = np.asarray(reference)
    if inputs.ndim < 1 or len(inputs) == 0:
        raise ValueError(f"inputs must hold at least one row, got shape {inputs.shape}")
    if len(reference) != len(inputs):
        raise ValueError(
            f"reference has {len(reference)} rows but inputs has {len(inputs)}: give the "
            "reference model's output on exactly these inputs"
        )
    if not 1 <= latency_rows <= len(inputs):
        raise ValueError(f"latency_rows must be 1..{len(inputs)}, got {latency_rows}")
    if load_repeat < 1:
        raise ValueError(f"load_repeat must be >= 1, got {load_repeat}")

    results: dict[str, FormatResult] = {}
    loaded: dict[str, Any] = {}
    for spec in specs:
        size = artifact_size(spec.path)
        obj, samples = _time_loads(spec, load_repeat)
        result = FormatResult(
            name=spec.name,
            family=spec.family,
            runtime=spec.runtime,
            size_bytes=size,
            load_s=statistics.median(samples),
            load_samples=samples,
            note=spec.skip_reason if spec.predict is None else "",
        )
        if spec.predict is not None:
            result.max_abs_diff, result.label_agreement = _parity(spec, obj, inputs, reference)
            loaded[spec.name] = obj
        results[spec.name] = result

    runnable = [s for s in specs if s.predict is not None]
    if runnable:
        few = np.ascontiguousarray(inputs[:latency_rows])
        for attr, batch in (("latency", few), ("batch", inputs)):
            candidates = {
                s.name: _bound(s.predict, loaded[s.name], batch)  # type: ignore[arg-type]
                for s in runnable
            }
            timed = bench.compare(candidates, warmup=warmup, repeat=repeat, seed=seed, warn=False)
            for name, r in timed.results.items():
                setattr(results[name], f"{attr}_s", r.median)
                setattr(results[name], f"{attr}_ci", (r.ci_low, r.ci_high))
    return FormatComparison(results=results, rows=len(inputs), latency_rows=latency_rows)


def _bound(predict: Callable[[Any, np.ndarray], Any], obj: Any, x: np.ndarray):
    def call() -> Any:
        return predict(obj, x)

    return call


@dataclass
class FormatComparison:
    """The measurements of :func:`compare_formats`, one :class:`FormatResult` per format."""

    results: dict[str, FormatResult]
    rows: int
    latency_rows: int

    @property
    def formats(self) -> list[str]:
        """Format names in the order they were given."""
        return list(self.results)

    def __getitem__(self, name: str) -> FormatResult:
        if name not in self.results:
            raise KeyError(f"no format {name!r}; formats are {self.formats}")
        return self.results[name]

    def to_frame(self) -> pd.DataFrame:
        """One row per format: size_kb, load_ms, latency_ms (+ CI), batch_ms, max_abs_diff,
        label_agreement (%), the runtime and a note; NaN where a format did not run here."""
        import pandas as pd

        frame = pd.DataFrame([r.as_dict() for r in self.results.values()]).set_index("format")
        frame.attrs["rows"] = self.rows
        frame.attrs["latency_rows"] = self.latency_rows
        return frame

    def _repr_html_(self) -> str:  # pragma: no cover - notebook display only
        return self.to_frame().to_html(float_format=lambda v: f"{v:.3g}", na_rep="n/a")

    def plot(
        self,
        formats: Sequence[str] | None = None,
        metrics: Sequence[str] | None = None,
        *,
        title: str | None = None,
    ) -> Figure:
        """One panel per metric, one row per format, coloured by family.

        Log-scaled metrics (sizes, times, differences) are drawn as dots on a stem, since a bar
        on a log axis has no meaningful length; the label agreement is drawn as bars. Formats
        that did not run here get a "not run here" label instead of a value; exact agreement (a
        difference of 0) is drawn at a floor of 1e-10 and labelled.
        """
        formats = self.formats if formats is None else formats
        metrics = (
            ("size_kb", "load_ms", "latency_ms", "max_abs_diff") if metrics is None else metrics
        )
        _check_choice("formats", formats, self.formats)
        _check_choice("metrics", metrics, list(METRICS))
        formats, metrics = list(formats), list(metrics)
        from matplotlib.lines import Line2D
        from matplotlib.ticker import LogLocator, NullFormatter
        from matplotlib.transforms import blended_transform_factory

        frame = self.to_frame().loc[formats]
        fig, axes = figures.figure(  # a pyplot figure: lesson 05 shows it with plt.show()
            (3.6 * len(metrics) + 1.6, 0.42 * len(formats) + 1.6),
            ncols=len(metrics),
            pyplot=True,
            squeeze=False,
            sharey=True,
        )
        y = np.arange(len(formats))
        colours = np.array([FAMILIES[f] for f in frame["family"]])
        for ax, key in zip(axes[0], metrics, strict=True):
            metric = METRICS[key]
            values = frame[key].to_numpy(dtype=float)
            shown = np.where(values == 0, _LOG_FLOOR, values) if metric.log else values
            finite = np.isfinite(shown)
            if metric.log:
                ax.set_xscale("log")
                if finite.any():
                    low, high = shown[finite].min(), shown[finite].max()
                    ax.set_xlim(low / 3, high * 3)
                    ax.hlines(y[finite], low / 3, shown[finite], color=LIGHT_GREY, lw=1, zorder=1)
                ax.scatter(shown[finite], y[finite], c=colours[finite], s=45, zorder=3)
                ax.xaxis.set_major_locator(LogLocator(numticks=6))
                ax.xaxis.set_minor_formatter(NullFormatter())
            else:
                ax.barh(y[finite], shown[finite], color=colours[finite])
            if key == "latency_ms":
                self._error_bars(ax, frame, y, finite)
            ax.set_xlabel(metric.label)
            ax.set_title(f"{key} ({metric.better} is better)", fontsize=10)
            ax.grid(axis="x", alpha=0.3)
            left_edge = blended_transform_factory(ax.transAxes, ax.transData)
            for i in np.flatnonzero(~finite):
                ax.text(
                    0.02,
                    y[i],
                    "not run here",
                    transform=left_edge,
                    va="center",
                    fontsize=8,
                    color=OKABE_ITO[7],
                )
            if metric.log:
                for i in np.flatnonzero(finite & (values == 0)):
                    ax.text(_LOG_FLOOR, y[i], "  0 (exact)", va="center", fontsize=8)
        axes[0][0].set_yticks(y, formats)
        axes[0][0].invert_yaxis()
        families = list(dict.fromkeys(frame["family"]))
        handles = [Line2D([], [], marker="o", ls="", color=FAMILIES[f], label=f) for f in families]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), title="family")
        fig.suptitle(
            title
            or f"Same model, {len(formats)} formats: measured on this machine "
            f"({self.rows} rows; latency on {self.latency_rows})"
        )
        return figures.finish(fig, rect=(0, 0.12 if len(formats) > 3 else 0.2, 1, 1))

    @staticmethod
    def _error_bars(ax: Any, frame: Any, y: np.ndarray, finite: np.ndarray) -> None:
        lows, highs = [], []
        for text, value in zip(frame["latency_ci_ms"], frame["latency_ms"], strict=True):
            if text:
                low, high = (float(v) for v in text.split("-"))
                lows.append(max(value - low, 0.0))
                highs.append(max(high - value, 0.0))
            else:
                lows.append(0.0)
                highs.append(0.0)
        err = np.array([lows, highs])[:, finite]
        ax.errorbar(
            frame["latency_ms"].to_numpy(dtype=float)[finite],
            y[finite],
            xerr=err,
            fmt="none",
            ecolor=OKABE_ITO[7],
            capsize=3,
            lw=1,
        )


def _check_choice(what: str, chosen: Sequence[str], allowed: Sequence[str]) -> None:
    if isinstance(chosen, str):
        raise TypeError(f"{what} must be a list of names, got the string {chosen!r}")
    if not chosen:
        raise ValueError(f"choose at least one of the {what}: {list(allowed)}")
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {list(allowed)}")


def comparison_view(
    comparison: FormatComparison, formats: Sequence[str], metrics: Sequence[str]
) -> Figure:
    """The format explorer's update function: the chart for the chosen formats and metrics.

    Example::

        fig = comparison_view(cmp, ["ONNX", "TFLite"], ["size_kb", "latency_ms"])
    """
    if not isinstance(comparison, FormatComparison):
        raise TypeError(
            f"comparison must come from compare_formats(), got {type(comparison).__name__}"
        )
    fig = comparison.plot(formats, metrics)
    import matplotlib.pyplot as plt

    plt.close(fig)  # shown by the widget's HTML pane, not a second time by the notebook
    return fig


def format_explorer(
    comparison: FormatComparison,
    *,
    formats: Sequence[str] | None = None,
    metrics: Sequence[str] = ("size_kb", "latency_ms"),
) -> Explorer:
    """An explorer over :func:`comparison_view`: pick formats and metrics, the chart follows.

    Two multiple-selection lists (hold Ctrl or Shift to pick several); the chart is drawn into
    an HTML pane (no ``Output`` widget). ``formats`` and ``metrics`` are the first selections.
    """
    import ipywidgets as W

    from course import widgets

    chosen = list(comparison.formats if formats is None else formats)
    _check_choice("formats", chosen, comparison.formats)
    _check_choice("metrics", list(metrics), list(METRICS))
    format_box = W.SelectMultiple(
        options=comparison.formats,
        value=tuple(chosen),
        rows=min(len(comparison.formats), 10),
        description="formats",
    )
    metric_box = W.SelectMultiple(
        options=list(METRICS), value=tuple(metrics), rows=len(METRICS), description="metrics"
    )
    return widgets.explorer(
        lambda formats, metrics: comparison_view(comparison, formats, metrics),
        title="Format comparison explorer",
        formats=format_box,
        metrics=metric_box,
    )


# --------------------------------------------------------------------------- PMML


def _number(value: float) -> str:
    return f"{float(value):.9g}"  # nine significant digits restore any float32 exactly


def mlp_to_pmml(
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    class_labels: Sequence[Any],
    feature_names: Sequence[str] | None = None,
    target_name: str = "label",
    hidden_activation: str = "rectifier",
    model_name: str = "mlp",
) -> str:
    """A PMML 4.4 ``NeuralNetwork`` classifier holding a multi-layer perceptron's weights.

    ``layers`` lists ``(weights, biases)`` per dense layer with ``weights`` of shape
    ``(inputs, outputs)`` (PyTorch's ``Linear.weight`` transposed, Keras' ``Dense`` kernel as
    is). Hidden layers use ``hidden_activation`` (PMML names: ``rectifier`` for ReLU,
    ``logistic``, ``tanh``, ``identity``); the last layer is linear followed by softmax, so
    the outputs are class probabilities. Every weight is one ``<Con>`` element, written with
    nine significant digits (float32 round-trips exactly).

    Example::

        >>> w1, b1 = np.ones((2, 3)), np.zeros(3)
        >>> w2, b2 = np.ones((3, 2)), np.array([0.0, 1.0])
        >>> text = mlp_to_pmml([(w1, b1), (w2, b2)], class_labels=[0, 1])
        >>> text.count("<Con "), "NeuralNetwork" in text
        (12, True)
    """
    layers = [(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)) for w, b in layers]
    if not layers:
        raise ValueError("layers is empty: give (weights, biases) for each dense layer")
    for i, (w, b) in enumerate(layers):
        if w.ndim != 2 or b.shape != (w.shape[1],):
            raise ValueError(
                f"layer {i}: weights must be (inputs, outputs) and biases (outputs,), got "
                f"{w.shape} and {b.shape} (transpose torch.nn.Linear.weight)"
            )
        if i and w.shape[0] != layers[i - 1][0].shape[1]:
            raise ValueError(
                f"layer {i} takes {w.shape[0]} inputs but layer {i - 1} gives "
                f"{layers[i - 1][0].shape[1]} outputs"
            )
    n_in, n_out = layers[0][0].shape[0], layers[-1][0].shape[1]
    labels = [str(c) for c in class_labels]
    if len(labels) != n_out:
        raise ValueError(f"{len(labels)} class labels for {n_out} outputs: give one per output")
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(n_in)]
    if len(names) != n_in:
        raise ValueError(f"{len(names)} feature names for {n_in} inputs")
    if hidden_activation not in ("rectifier", "logistic", "tanh", "identity"):
        raise ValueError(
            "hidden_activation must be a PMML activation name: 'rectifier' (ReLU), "
            f"'logistic', 'tanh' or 'identity', got {hidden_activation!r}"
        )
    integer_labels = all(c.lstrip("-").isdigit() for c in labels)

    root = ET.Element("PMML", {"xmlns": PMML_NAMESPACE, "version": "4.4"})
    header = ET.SubElement(
        root, "Header", {"description": f"{model_name}: a multi-layer perceptron"}
    )
    ET.SubElement(header, "Application", {"name": "course.formats.mlp_to_pmml"})
    dictionary = ET.SubElement(root, "DataDictionary", {"numberOfFields": str(n_in + 1)})
    for name in names:
        ET.SubElement(
            dictionary, "DataField", {"name": name, "optype": "continuous", "dataType": "double"}
        )
    target = ET.SubElement(
        dictionary,
        "DataField",
        {
            "name": target_name,
            "optype": "categorical",
            "dataType": "integer" if integer_labels else "string",
        },
    )
    for label in labels:
        ET.SubElement(target, "Value", {"value": label})

    network = ET.SubElement(
        root,
        "NeuralNetwork",
        {
            "modelName": model_name,
            "functionName": "classification",
            "activationFunction": hidden_activation,
        },
    )
    schema = ET.SubElement(network, "MiningSchema")
    for name in names:
        ET.SubElement(schema, "MiningField", {"name": name})
    ET.SubElement(schema, "MiningField", {"name": target_name, "usageType": "target"})

    inputs = ET.SubElement(network, "NeuralInputs", {"numberOfInputs": str(n_in)})
    previous = []
    for i, name in enumerate(names):
        neuron_id = f"0,{i}"
        node = ET.SubElement(inputs, "NeuralInput", {"id": neuron_id})
        derived = ET.SubElement(
            node, "DerivedField", {"optype": "continuous", "dataType": "double"}
        )
        ET.SubElement(derived, "FieldRef", {"field": name})
        previous.append(neuron_id)

    for depth, (w, b) in enumerate(layers, start=1):
        attrs = {"numberOfNeurons": str(w.shape[1])}
        if depth == len(layers):
            attrs.update(activationFunction="identity", normalizationMethod="softmax")
        layer = ET.SubElement(network, "NeuralLayer", attrs)
        current = []
        for j in range(w.shape[1]):
            neuron_id = f"{depth},{j}"
            neuron = ET.SubElement(layer, "Neuron", {"id": neuron_id, "bias": _number(b[j])})
            for i, source in enumerate(previous):
                ET.SubElement(neuron, "Con", {"from": source, "weight": _number(w[i, j])})
            current.append(neuron_id)
        previous = current

    outputs = ET.SubElement(network, "NeuralOutputs", {"numberOfOutputs": str(n_out)})
    for neuron_id, label in zip(previous, labels, strict=True):
        node = ET.SubElement(outputs, "NeuralOutput", {"outputNeuron": neuron_id})
        derived = ET.SubElement(
            node, "DerivedField", {"optype": "categorical", "dataType": "string"}
        )
        ET.SubElement(derived, "NormDiscrete", {"field": target_name, "value": label})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
