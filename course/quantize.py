"""Quantization with the evidence: size, accuracy and latency before and after.

Three routes over onnxruntime's and onnxconverter-common's tools, each returning a
:class:`QuantizationReport` measured on this machine::

    from course import quantize
    rep = quantize.quantize_static_int8("cnn.onnx", "cnn.int8.onnx", X_train[:200],
                                        per_channel=True, eval_set=(X_test, y_test))
    rep.to_frame()     # size (KB), accuracy, median latency with its CI, before and after
    rep.plot()

- :func:`quantize_dynamic_int8`: weights stored as int8, activations quantized on the fly
  (``MatMulInteger``/``ConvInteger``); no calibration data needed.
- :func:`quantize_static_int8`: QDQ format (``QuantizeLinear``/``DequantizeLinear`` pairs),
  activation ranges calibrated on a numpy array through :class:`CalibrationReader`.
- :func:`to_float16`: weights and activations in float16, inputs and outputs kept float32 by
  default (``keep_io_types=True``).

int8 models run through ``onnxruntime.quantization.shape_inference.quant_pre_process`` first.
Known failures come back as :class:`QuantizationError` naming the fix: a runtime with no
``ConvInteger`` kernel after dynamic quantization of a CNN (use static QDQ), and float16
overflow (:class:`Float16OverflowError`: values beyond 65504 become inf/NaN).
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from course import _capture, _model, bench, figures

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "FLOAT16_MAX",
    "CalibrationReader",
    "FeedsReader",
    "Float16OverflowError",
    "QuantizationError",
    "QuantizationReport",
    "explain_session_error",
    "find_float16_overflows",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "to_float16",
]

#: The largest finite float16 value; anything larger becomes inf.
FLOAT16_MAX = 65504.0

_CALIBRATION_METHODS = ("minmax", "entropy", "percentile", "distribution")
_ORT_ERROR = re.compile(r"implementation for (\w+)\((\d+)\) node with name '([^']*)'")

EvalSet = tuple[np.ndarray, np.ndarray]


class QuantizationError(RuntimeError):
    """Quantization failed or produced a model that cannot run; the message names the fix."""


class Float16OverflowError(QuantizationError):
    """float16 conversion produced inf/NaN: some values exceed float16's range (±65504).

    ``nodes`` lists the float32 model's nodes whose outputs exceed the range (name, op type,
    largest absolute value), the candidates for ``node_block_list``.
    """

    def __init__(self, message: str, nodes: list[dict[str, Any]]):
        super().__init__(message)
        self.nodes = nodes


# --------------------------------------------------------------------------- calibration


class CalibrationReader(CalibrationDataReader):
    """Feeds a numpy array to onnxruntime's calibrator, ``batch_size`` rows at a time.

    ``array`` has a leading sample dimension; float64 arrays are cast to float32 (the dtype of
    almost every model input). A few hundred representative samples are usually enough.
    :meth:`rewind` starts again, so one reader can calibrate several times.

    Example::

        >>> import numpy as np
        >>> reader = CalibrationReader(np.zeros((10, 64)), "x", batch_size=4)
        >>> [batch["x"].shape for batch in reader]
        [(4, 64), (4, 64), (2, 64)]
    """

    def __init__(self, array: np.ndarray, input_name: str, *, batch_size: int = 32):
        array = np.asarray(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.ndim < 1 or len(array) == 0:
            raise ValueError(
                f"calibration array must have a leading sample dimension with at least one row, "
                f"got shape {array.shape}"
            )
        if array.dtype.kind not in "fiub":
            raise TypeError(f"calibration array must be numeric, got dtype {array.dtype}")
        if not isinstance(input_name, str) or not input_name:
            raise ValueError(
                f"input_name must be the model's input name (a str), got {input_name!r}"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.array = np.ascontiguousarray(array)
        self.input_name = input_name
        self.batch_size = batch_size
        self._start = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._start >= len(self.array):
            return None
        batch = self.array[self._start : self._start + self.batch_size]
        self._start += self.batch_size
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._start = 0

    def __len__(self) -> int:
        return -(-len(self.array) // self.batch_size)


def _really(obj: Any, cls: type) -> bool:
    """isinstance without CalibrationDataReader's subclass hook, which makes every object with a
    ``get_next`` method an instance of every reader class."""
    return cls in type(obj).__mro__


class FeedsReader(CalibrationDataReader):
    """Feeds whole input dicts ``{input name: array}`` to the calibrator, one per batch: the
    calibration route for models with several inputs (audio with a recurrent state, ...).

    Example::

        >>> import numpy as np
        >>> reader = FeedsReader([{"x": np.zeros((1, 4)), "h": np.ones((1, 2))}] * 3)
        >>> len(reader), sorted(reader.get_next())
        (3, ['h', 'x'])
    """

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]):
        if isinstance(feeds, Mapping):
            feeds = [feeds]
        feeds = list(feeds)
        if not feeds or not all(isinstance(f, Mapping) and f for f in feeds):
            raise ValueError(
                "calibration feeds must be a non-empty list of dicts {input name: array}"
            )
        self.feeds = [
            {
                k: (a.astype(np.float32) if a.dtype == np.float64 else a)
                for k, a in ((k, np.asarray(v)) for k, v in f.items())
            }
            for f in feeds
        ]
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.feeds):
            return None
        self._next += 1
        return self.feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0

    def __len__(self) -> int:
        return len(self.feeds)


# --------------------------------------------------------------------------- report


@dataclass
class QuantizationReport:
    """Size, accuracy and latency of a model before and after quantization (measured here).

    Sizes are in bytes; accuracies are fractions of ``eval_set`` classified correctly (None
    without an ``eval_set``); ``agreement`` is the fraction of predictions equal before and
    after; ``latency`` is the interleaved :class:`course.bench.Comparison` of the two models
    (None when latency was not measured); ``notes`` say what to watch.
    """

    method: str
    path: Path
    size_before: int
    size_after: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    latency: bench.Comparison | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    ops_after: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        """How many times smaller the model became (before / after)."""
        return self.size_before / self.size_after

    @property
    def latency_before(self) -> bench.BenchResult | None:
        return self.latency["float32"] if self.latency else None

    @property
    def latency_after(self) -> bench.BenchResult | None:
        return self.latency[self.method] if self.latency else None

    @property
    def speedup(self) -> float | None:
        """Median latency before / after: above 1 the quantized model is faster."""
        return self.latency.speedup(self.method) if self.latency else None

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_before is None or self.accuracy_after is None:
            return None
        return self.accuracy_before - self.accuracy_after

    def to_frame(self) -> pd.DataFrame:
        """Two rows (float32, the quantized model): size, accuracy, latency with its CI."""
        import pandas as pd

        rows = []
        for label, size, acc, res in (
            ("float32", self.size_before, self.accuracy_before, self.latency_before),
            (self.method, self.size_after, self.accuracy_after, self.latency_after),
        ):
            rows.append(
                {
                    "model": label,
                    "size_kb": size / 1024,
                    "accuracy": acc,
                    "median_ms": res.median * 1e3 if res else None,
                    "ci_low_ms": res.ci_low * 1e3 if res else None,
                    "ci_high_ms": res.ci_high * 1e3 if res else None,
                }
            )
        frame = pd.DataFrame(rows).set_index("model")
        frame.attrs["settings"] = dict(self.settings)
        if self.latency:
            frame.attrs["machine"] = self.latency.machine
        return frame

    def plot(self) -> Figure:
        """Three panels (size in KB, accuracy in %, median latency in ms with its CI)."""
        frame = self.to_frame()
        fig, axes = figures.figure((10, 3.2), ncols=3)
        labels = list(frame.index)
        colours = [bench.OKABE_ITO[0], bench.OKABE_ITO[1]]
        axes[0].bar(labels, frame["size_kb"], color=colours)
        axes[0].set(title="Model size", ylabel="size on disk (KB)")
        if frame["accuracy"].notna().all():
            axes[1].bar(labels, frame["accuracy"].astype(float) * 100, color=colours)
            low = float(frame["accuracy"].min()) * 100
            axes[1].set_ylim(max(0.0, low - 10), 100)
        else:
            axes[1].text(0.5, 0.5, "no eval_set given", ha="center", va="center")
        axes[1].set(title="Accuracy", ylabel="accuracy on eval set (%)")
        if self.latency:
            med = frame["median_ms"].astype(float)
            err = [med - frame["ci_low_ms"].astype(float), frame["ci_high_ms"].astype(float) - med]
            axes[2].bar(labels, med, yerr=err, capsize=5, color=colours)
            note = " (CIs overlap)" if self.latency.overlap else ""
            axes[2].set(title=f"Latency, median and 95% CI{note}")
        else:
            axes[2].text(0.5, 0.5, "latency not measured", ha="center", va="center")
            axes[2].set(title="Latency")
        axes[2].set(ylabel="latency per call (ms)")
        for ax in axes:
            ax.set_xlabel("model")
        figures.finish(fig, title=f"{self.method}: size, accuracy and latency before and after")
        return fig

    def __repr__(self) -> str:
        parts = [
            f"{self.method}: {self.size_before / 1024:.1f} KB -> {self.size_after / 1024:.1f} KB"
        ]
        if self.size_after <= self.size_before:
            parts.append(f"({self.size_ratio:.2f}x smaller)")
        else:
            parts.append(f"(GREW to {self.size_after / self.size_before:.2f}x its size)")
        if self.accuracy_before is not None:
            parts.append(f"accuracy {self.accuracy_before:.3f} -> {self.accuracy_after:.3f}")
        if self.latency:
            parts.append(f"speed-up {self.speedup:.2f}x")
        return "QuantizationReport(" + ", ".join(parts) + ")"

    def _repr_html_(self) -> str:
        html = f"<h4>{self.method}</h4>" + self.to_frame().to_html(
            float_format=lambda v: f"{v:.3f}"
        )
        if self.notes:
            html += "<ul>" + "".join(f"<li>{n}</li>" for n in self.notes) + "</ul>"
        return html


# --------------------------------------------------------------------------- helpers


def _load(model: Any) -> onnx.ModelProto:
    return _model.load(model)


def _out_path(out_path: str | Path) -> Path:
    if not isinstance(out_path, (str, Path)):
        raise TypeError(f"out_path must be a file path, got {type(out_path).__name__}")
    path = Path(out_path).resolve()  # absolute: the tools run inside a temporary folder
    if path.is_dir():
        raise ValueError(
            f"out_path {path} is a directory: give a file name such as model.int8.onnx"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _check_eval_set(eval_set: Any, model: onnx.ModelProto) -> EvalSet | None:
    if eval_set is None:
        return None
    if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
        raise ValueError(
            "eval_set must be a pair (X, y) of arrays, e.g. (split.X_test, split.y_test)"
        )
    X, y = np.asarray(eval_set[0]), np.asarray(eval_set[1])
    if X.ndim < 1 or len(X) == 0 or len(X) != len(y) or y.ndim != 1:
        raise ValueError(
            f"eval_set needs X with rows and a 1-D y of the same length, got X {X.shape}, y {y.shape}"
        )
    if len(_real_inputs(model)) != 1:
        raise ValueError(
            f"eval_set needs a single-input model; this one has inputs {_real_inputs(model)}"
        )
    if X.dtype == np.float64:
        X = X.astype(np.float32)
    return X, y


_real_inputs = _model.input_names


def _fixed_batch(model: onnx.ModelProto) -> int | None:
    dims = _model.dims(_model.graph_inputs(model)[0]) or []
    return dims[0] if dims and isinstance(dims[0], int) else None


def _cast_for(session_input: Any, X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    if session_input.type == "tensor(float16)":
        return X.astype(np.float16)
    if session_input.type == "tensor(float)":
        return X.astype(np.float32, copy=False)
    return X


def _feed(session: Any, X: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    inputs = session.get_inputs()
    if isinstance(X, Mapping):
        return {i.name: _cast_for(i, X[i.name]) for i in inputs if i.name in X}
    return {inputs[0].name: _cast_for(inputs[0], X)}


def _predict(session: Any, X: np.ndarray, batch: int | None) -> np.ndarray:
    chunks = [X] if batch is None else [X[i : i + batch] for i in range(0, len(X), batch)]
    outs = [session.run(None, _feed(session, c)) for c in chunks]
    return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]


def _labels(outputs: list[np.ndarray]) -> np.ndarray:
    for out in outputs:
        if out.ndim == 1 and out.dtype.kind in "iu":
            return out
    for out in outputs:
        if out.ndim == 2 and out.dtype.kind == "f":
            return out.argmax(axis=1)
    raise ValueError(
        "cannot read class predictions: expected an integer label output or a 2-D score output, "
        f"got outputs with shapes {[o.shape for o in outputs]}"
    )


def _scores(outputs: list[np.ndarray]) -> np.ndarray | None:
    floats = [o for o in outputs if o.dtype.kind == "f"]
    return floats[-1].astype(np.float32) if floats else None


def _latency_input(model: onnx.ModelProto, eval_set: EvalSet | None, extra: Any, batch: int) -> Any:
    source = eval_set[0] if eval_set is not None else extra
    if source is None:
        return None
    if isinstance(source, Mapping):  # a whole feed of a multi-input model: timed as given
        return dict(source)
    source = np.asarray(source)
    return _model.tile_batch(
        source.astype(np.float32) if source.dtype == np.float64 else source, batch
    )


def explain_session_error(
    error: BaseException, model: onnx.ModelProto | None = None
) -> QuantizationError:
    """Translate onnxruntime's error on loading a converted model into an actionable one.

    Returns (does not raise) a :class:`QuantizationError` whose message names the fix; raise it
    ``from error``. ``NOT_IMPLEMENTED: ConvInteger`` (a runtime or execution provider without a
    kernel for dynamically quantized convolutions, onnxruntime issues #12558 and #15888) points
    to static QDQ quantization; other missing kernels point to keeping that operator in
    float32.

    Example::

        >>> error = RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an "
        ...     "implementation for ConvInteger(10) node with name 'conv_quant'")
        >>> print(str(explain_session_error(error))[:88])
        this onnxruntime build / execution provider has no kernel for ConvInteger(opset 10) node
    """
    message = str(error)
    found = _ORT_ERROR.search(message)
    if "NOT_IMPLEMENTED" not in message or not found:
        return QuantizationError(f"onnxruntime could not load the converted model: {message}")
    op, version, node = found.groups()
    where = f"{op}(opset {version}) node {node!r}" if node else f"{op}(opset {version})"
    if op == "ConvInteger":
        return QuantizationError(
            f"this onnxruntime build / execution provider has no kernel for {where}, which dynamic "
            "quantization creates for every Conv. Use quantize_static_int8(model, out_path, "
            "calibration=X_sample) (QDQ format, the recommended route for CNNs), or keep Conv in "
            "float32 with quantize_dynamic_int8(..., op_types=['MatMul', 'Gemm']). "
            f"onnxruntime said: {message}"
        )
    if op in ("MatMulInteger", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul"):
        return QuantizationError(
            f"this onnxruntime build / execution provider has no kernel for the quantized operator "
            f"{where}. Try static QDQ quantization (quantize_static_int8), or another execution "
            f"provider. onnxruntime said: {message}"
        )
    types = ""
    if model is not None:
        names = {
            onnx.TensorProto.DataType.Name(t.type.tensor_type.elem_type)
            for t in [*model.graph.input, *model.graph.value_info, *model.graph.output]
            if t.type.HasField("tensor_type")
        }
        types = f" (tensor types in the model: {sorted(names)})"
    return QuantizationError(
        f"onnxruntime has no kernel for {where} with these tensor types{types}. Keep that operator "
        f"in float32: to_float16(..., op_block_list=['{op}']) or, for int8, nodes_to_exclude="
        f"['{node or op}']. onnxruntime said: {message}"
    )


def _open(path: Path | bytes, providers: Sequence[str] | None, threads: int | None) -> Any:
    try:
        return _model.session(path, providers=providers, intra_op_threads=threads)
    except ValueError:
        raise
    except Exception as exc:
        raise explain_session_error(exc, _model.load(path)) from exc


def _op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    return dict(
        sorted(Counter(n.op_type for g in _model.all_graphs(model.graph) for n in g.node).items())
    )


#: operators onnxruntime's int8 tools can quantize (weights or activations), and what they become
_QUANTIZABLE = ("MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "Attention", "Gather")
_DYNAMIC_RESULTS = ("MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul")


def _coverage(before: onnx.ModelProto, after: onnx.ModelProto, method: str) -> list[str]:
    """Notes: which quantizable operators were quantized, which stayed float, what to try."""
    ops_before = _op_histogram(before)
    candidates = {k: v for k, v in ops_before.items() if k in _QUANTIZABLE and k != "Gather"}
    if not candidates:
        return [
            "the model has no MatMul/Gemm/Conv/LSTM/GRU/Attention node, the operators int8 "
            f"quantization rewrites (it has {', '.join(list(ops_before)[:8])}): int8 cannot make "
            "it smaller or faster; to_float16 halves its float weights."
        ]
    stayed: Counter[str] = Counter()
    done: Counter[str] = Counter()
    for graph in _model.all_graphs(after.graph):
        made = {o: n.op_type for n in graph.node for o in n.output}
        for node in graph.node:
            if node.op_type in _DYNAMIC_RESULTS or node.op_type.startswith("QLinear"):
                done[node.op_type] += 1
            elif node.op_type in candidates:
                if any(made.get(i) == "DequantizeLinear" for i in node.input[:2]):
                    done[node.op_type] += 1
                else:
                    stayed[node.op_type] += 1
    notes = [
        "quantized: "
        + (", ".join(f"{v} {k}" for k, v in sorted(done.items())) or "nothing")
        + "; still float: "
        + (", ".join(f"{v} {k}" for k, v in sorted(stayed.items())) or "nothing")
        + f" (before: {', '.join(f'{v} {k}' for k, v in sorted(candidates.items()))})."
    ]
    if method == "dynamic int8" and stayed.get("Conv", 0) + stayed.get("ConvTranspose", 0):
        notes.append(
            "dynamic int8 leaves most convolutions in float32 here: for a Conv-heavy graph use "
            "quantize_static_int8 (QDQ, calibrated), which quantizes Conv weights and activations."
        )
    return notes


def _size_note(size_before: int, size_after: int) -> list[str]:
    if size_after <= size_before:
        return []
    return [
        f"the file GREW from {size_before / 1024:.1f} KB to {size_after / 1024:.1f} KB "
        f"({size_after / size_before:.2f}x its size): the (de)quantization nodes and scales cost "
        "more than the int8 weights saved. See which operators were quantized above."
    ]


def _report(
    method: str,
    before: onnx.ModelProto,
    out_path: Path,
    eval_set: EvalSet | None,
    settings: dict[str, Any],
    notes: list[str],
    measure: _Measure,
    *,
    latency_source: Any = None,
    after_session: Any = None,
) -> QuantizationReport:
    before_bytes = before.SerializeToString()
    after_model = onnx.load(out_path, load_external_data=False)
    sess_before = measure.open(before_bytes)
    sess_after = after_session or measure.open(out_path)
    latency_input = _latency_input(before, eval_set, latency_source, measure.batch)
    intra_op_threads = measure.intra_op_threads
    rep = QuantizationReport(
        method=method,
        path=out_path,
        size_before=len(before_bytes),
        size_after=out_path.stat().st_size,
        settings={**settings, "intra_op_threads": intra_op_threads},
        ops_after=_op_histogram(after_model),
        notes=notes,
    )
    if method != "float16":
        rep.notes.extend(_coverage(before, after_model, method))
    rep.notes.extend(_size_note(rep.size_before, rep.size_after))
    if eval_set is not None:
        X, y = eval_set
        batch = _fixed_batch(before)
        out_b, out_a = _predict(sess_before, X, batch), _predict(sess_after, X, batch)
        pred_b, pred_a = _labels(out_b), _labels(out_a)
        rep.accuracy_before = float(np.mean(pred_b == y))
        rep.accuracy_after = float(np.mean(pred_a == y))
        rep.agreement = float(np.mean(pred_b == pred_a))
        sb, sa = _scores(out_b), _scores(out_a)
        if sb is not None and sa is not None and sb.shape == sa.shape:
            rep.max_abs_diff = float(np.max(np.abs(sb - sa)))
        if rep.accuracy_drop is not None and rep.accuracy_drop > 0.02:
            rep.notes.append(
                f"accuracy fell by {rep.accuracy_drop:.1%}: try per_channel=True, more or more "
                "representative calibration data, another calibration method, or exclude the most "
                "sensitive nodes (nodes_to_exclude=[...])."
            )
    if latency_input is not None:
        run_b = bench.session_runner(sess_before, _feed(sess_before, latency_input))
        run_a = bench.session_runner(sess_after, _feed(sess_after, latency_input))
        rep.latency = bench.compare(
            {"float32": run_b, method: run_a}, repeat=measure.repeat, warn=False
        )
        if rep.latency.overlap:
            rep.notes.append(
                "the latency intervals overlap: no measurable difference at this batch size "
                "(not a win, not a loss)."
            )
        elif rep.speedup is not None and rep.speedup < 1:
            if method == "float16":
                why = (
                    "Casts between float16 and float32 cost time, and a provider without float16 "
                    "kernels computes in float32 anyway"
                )
            else:
                feats = rep.latency.machine.get("cpu_features", "unknown")
                why = (
                    "small models spend their time (de)quantizing, not multiplying; integer "
                    f"speed-ups need larger layers and CPU support (VNNI; this CPU has: {feats})"
                )
            rep.notes.append(f"the {method} model is slower here ({rep.speedup:.2f}x): {why}.")
    else:
        rep.notes.append("latency not measured: pass eval_set (or calibration data) to time it.")
    return rep


@contextlib.contextmanager
def _quiet_in(folder: Path) -> Iterator[list[str]]:
    """Run onnxruntime's quantization tools inside ``folder`` (they write temporary files such
    as ``sym_shape_infer_temp.onnx`` and ``<uuid>.data`` to the current folder), with their log
    records, stdout and C++ warnings kept as notes instead of reaching a notebook's stderr."""
    _model.quiet_onnxruntime()
    with (
        contextlib.chdir(folder),
        redirect_stdout(io.StringIO()),
        _capture.quiet_native() as notes,
    ):
        yield notes


def _preprocess(model: onnx.ModelProto, work: Path, enabled: bool, notes: list[str]) -> Path:
    raw = work / "model.onnx"
    model, lifted = _model.lift_constants(model)
    if lifted:
        notes.append(
            f"moved {lifted} weight tensor(s) from Constant nodes to initializers first: the "
            "quantization tools only quantize initializers."
        )
    onnx.save(model, raw)
    if not enabled:
        return raw
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = work / "model.pre.onnx"
    try:
        with _quiet_in(work) as logs:
            quant_pre_process(str(raw), str(pre))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        notes.append(f"quant_pre_process failed ({first}); quantized the model as is.")
        return raw
    notes.extend(f"quant_pre_process: {m}" for m in logs)
    notes.append("ran quant_pre_process (shape inference and graph optimisation) first.")
    return pre


@dataclass(frozen=True)
class _Measure:
    """How every route measures its result: the latency batch and repeats, and the sessions'
    threads and providers (checked once, passed to :func:`_report` as one value)."""

    batch: int
    repeat: int
    intra_op_threads: int | None
    providers: Sequence[str] | None

    def __post_init__(self) -> None:
        for label, value, least in (
            ("latency_batch", self.batch, 1),
            ("latency_repeat", self.repeat, 3),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{label} must be an int >= {least}, got {value!r}")

    def open(self, path: Path | bytes) -> Any:
        return _open(path, self.providers, self.intra_op_threads)


def _start(
    model: str | Path | onnx.ModelProto, out_path: str | Path, eval_set: EvalSet | None
) -> tuple[onnx.ModelProto, Path, EvalSet | None]:
    """The checked source model, output path and evaluation set every route begins with."""
    source = _load(model)
    return source, _out_path(out_path), _check_eval_set(eval_set, source)


def _run_tool(
    tool: str,
    run: Callable[[Path], object],
    source: onnx.ModelProto,
    preprocess: bool,
    notes: list[str],
    fix: str,
) -> None:
    """Run one of onnxruntime's quantization tools on the (pre-processed) source model in a
    temporary folder, its logs kept as notes; a failure becomes a QuantizationError naming
    ``fix``."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = _preprocess(source, Path(tmp), preprocess, notes)
        try:
            with _quiet_in(Path(tmp)) as logs:
                run(pre)
        except Exception as exc:
            raise QuantizationError(
                f"onnxruntime's {tool} failed: {type(exc).__name__}: {exc}. {fix}"
            ) from exc
    notes.extend(f"{tool}: {m}" for m in logs)


# --------------------------------------------------------------------------- int8


def quantize_dynamic_int8(
    model: str | Path | onnx.ModelProto,
    out_path: str | Path,
    *,
    per_channel: bool = False,
    eval_set: EvalSet | None = None,
    op_types: Sequence[str] | None = None,
    nodes_to_exclude: Sequence[str] | None = None,
    preprocess: bool = True,
    latency_batch: int = 1,
    latency_repeat: int = 30,
    intra_op_threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> QuantizationReport:
    """Dynamic int8 quantization: int8 weights, activations quantized at run time.

    ``op_types`` limits which operators are quantized (default: all onnxruntime supports, e.g.
    ``["MatMul", "Gemm", "Conv"]``); ``nodes_to_exclude`` keeps named nodes in float32. With
    ``eval_set=(X, y)`` the report has accuracy before/after and latency at ``latency_batch``
    rows, measured interleaved with :func:`course.bench.compare`. The quantized model is loaded
    once in onnxruntime; a missing kernel (``NOT_IMPLEMENTED: ConvInteger``) raises
    :class:`QuantizationError` suggesting static QDQ quantization.

    Example::

        >>> rep = quantize_dynamic_int8("mlp.onnx", "mlp.dyn.onnx",
        ...                             eval_set=(X_test, y_test), latency_repeat=3)
        >>> rep.ops_after["MatMulInteger"]
        2
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, out, evals = _start(model, out_path, eval_set)
    measure = _Measure(latency_batch, latency_repeat, intra_op_threads, providers)
    notes: list[str] = []
    _run_tool(
        "quantize_dynamic",
        lambda pre: quantize_dynamic(
            pre,
            out,
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_exclude=list(nodes_to_exclude) if nodes_to_exclude else None,
        ),
        source,
        preprocess,
        notes,
        "Try quantize_static_int8 (QDQ, calibrated on a few inputs), limit the quantized "
        "operators with op_types=['MatMul'], or keep the failing node in float32 with "
        "nodes_to_exclude=[...].",
    )
    after_session = measure.open(out)
    quantized = {
        k: v
        for k, v in _op_histogram(onnx.load(out, load_external_data=False)).items()
        if k in _DYNAMIC_RESULTS
    }
    if not quantized:
        notes.append(
            "no operator was quantized (no MatMulInteger/ConvInteger in the result): check "
            "op_types, or use quantize_static_int8 for a graph without MatMul/Gemm weights."
        )
    return _report(
        "dynamic int8",
        source,
        out,
        evals,
        {"per_channel": per_channel, "op_types": list(op_types) if op_types else "default"},
        notes,
        measure,
        after_session=after_session,
    )


def quantize_static_int8(
    model: str | Path | onnx.ModelProto,
    out_path: str | Path,
    calibration: np.ndarray | CalibrationReader | FeedsReader | Sequence[Mapping[str, np.ndarray]],
    *,
    per_channel: bool = False,
    method: str = "minmax",
    eval_set: EvalSet | None = None,
    preprocess: bool = True,
    nodes_to_exclude: Sequence[str] | None = None,
    latency_batch: int = 1,
    latency_repeat: int = 30,
    intra_op_threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> QuantizationReport:
    """Static int8 quantization in QDQ format, calibrated on representative inputs.

    ``calibration`` is a numpy array of model inputs (a few hundred training rows), a
    :class:`CalibrationReader`, or for a model with several inputs a list of feed dicts
    ``{input name: array}`` (or a :class:`FeedsReader`). ``method`` is the calibration method: ``"minmax"`` (default),
    ``"entropy"``, ``"percentile"`` or ``"distribution"``. ``per_channel=True`` gives each output
    channel of a weight its own scale, which usually protects accuracy of CNNs. Activations and
    weights are signed int8 (S8S8), onnxruntime's default for QDQ.

    Example::

        >>> rep = quantize_static_int8("cnn.onnx", "cnn.qdq.onnx", images, per_channel=True,
        ...                            latency_repeat=3)
        >>> rep.ops_after["QuantizeLinear"] > 0
        True
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    if method not in _CALIBRATION_METHODS:
        raise ValueError(f"method must be one of {list(_CALIBRATION_METHODS)}, got {method!r}")
    source, out, evals = _start(model, out_path, eval_set)
    measure = _Measure(latency_batch, latency_repeat, intra_op_threads, providers)
    inputs = _real_inputs(source)
    if isinstance(calibration, Mapping) or (
        isinstance(calibration, (list, tuple))
        and calibration
        and isinstance(calibration[0], Mapping)
    ):
        calibration = FeedsReader(calibration)
    if _really(calibration, FeedsReader):
        unknown = sorted({k for f in calibration.feeds for k in f} - set(inputs))
        missing = sorted(set(inputs) - set(calibration.feeds[0]))
        if unknown or missing:
            raise ValueError(
                f"calibration feeds must name the model's inputs {inputs}: missing {missing}, "
                f"unknown {unknown}"
            )
        reader: Any = calibration
        reader.rewind()
        latency_source: Any = reader.feeds[0]
        rows = len(reader.feeds)
    elif _really(calibration, CalibrationReader):
        reader = calibration
        reader.rewind()
    elif isinstance(calibration, (np.ndarray, list)):
        if len(inputs) != 1:
            raise ValueError(
                f"the model has inputs {inputs}: pass a list of feed dicts "
                "[{input name: array}, ...] (one per calibration batch) instead of one array"
            )
        rows = len(calibration)
        batch = _fixed_batch(source) or max(
            d for d in range(1, min(64, max(rows, 1)) + 1) if rows % d == 0
        )
        reader = CalibrationReader(calibration, inputs[0], batch_size=batch)
    else:
        raise TypeError(
            "calibration must be a numpy array, a CalibrationReader or a list of feed dicts, "
            f"got {type(calibration).__name__}"
        )
    if not _really(reader, FeedsReader):
        if reader.input_name not in inputs:
            raise ValueError(
                f"the CalibrationReader feeds {reader.input_name!r} but the model's inputs are "
                f"{inputs}"
            )
        latency_source, rows = reader.array, len(reader.array)
    if not _really(reader, FeedsReader) and method != "minmax" and rows % reader.batch_size:
        raise ValueError(
            f"{method} calibration (histogram-based) in onnxruntime needs batches of equal size, "
            f"but {len(reader.array)} rows do not split into batches of {reader.batch_size}: use a "
            "batch_size that divides the number of rows, or method='minmax'."
        )
    notes: list[str] = []
    calib_method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "distribution": CalibrationMethod.Distribution,
    }[method]
    _run_tool(
        "quantize_static",
        lambda pre: quantize_static(
            pre,
            out,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            calibrate_method=calib_method,
            nodes_to_exclude=list(nodes_to_exclude) if nodes_to_exclude else None,
        ),
        source,
        preprocess,
        notes,
        "Check that the calibration array has the model's input shape and dtype (one row per "
        "sample).",
    )
    reader.rewind()
    return _report(
        "static int8",
        source,
        out,
        evals,
        {
            "per_channel": per_channel,
            "calibration": method,
            "calibration_rows": rows,
            "format": "QDQ",
        },
        notes,
        measure,
        latency_source=latency_source,
    )


# --------------------------------------------------------------------------- float16


def find_float16_overflows(
    model: str | Path | onnx.ModelProto,
    inputs: np.ndarray | dict[str, np.ndarray],
    *,
    op_block_list: Sequence[str] | None = None,
    node_block_list: Sequence[str] | None = None,
    keep_io_types: bool = True,
) -> list[dict[str, Any]]:
    """Tensors that would hold values beyond float16's range (±65504) after conversion.

    Runs the float32 model on ``inputs`` with every intermediate float tensor exposed (graph
    optimisation off, so names match the file) and returns ``[{"node", "op_type", "tensor",
    "max_abs"}]``, largest first; an overflowing graph input has ``op_type="(input)"``. A
    tensor is left out when it stays float32 after conversion: produced by a blocked node (or a
    graph input with ``keep_io_types``) and consumed only by blocked nodes (or a graph output
    with ``keep_io_types``). The converter's default block list counts as blocked.

    Example::

        >>> [r["node"] for r in find_float16_overflows("mlp.onnx", X_test * 1e5)][:2]
        ['matmul_1', 'matmul_0']
    """
    from onnxconverter_common import float16

    source = _load(model)
    inferred = onnx.shape_inference.infer_shapes(source)
    probe = onnx.ModelProto()
    probe.CopyFrom(inferred)
    known = {o.name for o in probe.graph.output}
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}
    typed = {
        v.name: v
        for v in inferred.graph.value_info
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type in float_types
    }
    blocked_ops = set(float16.DEFAULT_OP_BLOCK_LIST) | set(op_block_list or ())
    blocked_nodes = set(node_block_list or ())
    producer: dict[str, onnx.NodeProto] = {}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in probe.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node
            if name in typed and name not in known:
                probe.graph.output.append(typed[name])
                known.add(name)

    def blocked(node: onnx.NodeProto) -> bool:
        return node.op_type in blocked_ops or node.name in blocked_nodes

    graph_outputs = {o.name for o in source.graph.output}

    def stays_float32(name: str) -> bool:
        node = producer.get(name)
        made_fp32 = keep_io_types if node is None else blocked(node)
        if name in graph_outputs and not keep_io_types:
            return False
        return made_fp32 and all(blocked(c) for c in consumers.get(name, []))

    sess = bench.ort_session(probe, optimization_level="disable")
    feed = _feed(sess, np.asarray(inputs)) if not isinstance(inputs, dict) else dict(inputs)
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, feed), strict=True))
    values.update(feed)
    rows = []
    for name, arr in values.items():
        arr = np.asarray(arr)
        if arr.dtype.kind != "f" or not arr.size or stays_float32(name):
            continue
        peak = float(np.max(np.abs(arr)))
        if peak > FLOAT16_MAX:
            node = producer.get(name)
            rows.append(
                {
                    "node": node.name if node is not None else name,
                    "op_type": node.op_type if node is not None else "(input)",
                    "tensor": name,
                    "max_abs": peak,
                }
            )
    return sorted(rows, key=lambda r: -r["max_abs"])


def _float32_outputs(converted: onnx.ModelProto, source: onnx.ModelProto) -> int:
    """Make every graph output that was float32 in ``source`` float32 again (in place)."""
    was_float = {
        o.name
        for o in source.graph.output
        if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    producers = {name: node for node in converted.graph.node for name in node.output}
    fixed = 0
    for out in converted.graph.output:
        tensor_type = out.type.tensor_type
        if out.name not in was_float or tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        node = producers.get(out.name)
        if node is not None and node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = onnx.TensorProto.FLOAT
        else:
            inner = f"{out.name}_float16"
            for n in converted.graph.node:
                n.output[:] = [inner if o == out.name else o for o in n.output]
                n.input[:] = [inner if i == out.name else i for i in n.input]
            converted.graph.node.append(
                onnx.helper.make_node(
                    "Cast", [inner], [out.name], to=onnx.TensorProto.FLOAT, name=f"{inner}_to_float"
                )
            )
        tensor_type.elem_type = onnx.TensorProto.FLOAT
        fixed += 1
    return fixed


def _convert_float16(
    source: onnx.ModelProto,
    keep_io_types: bool,
    op_block_list: Sequence[str],
    node_block_list: Sequence[str] | None,
) -> tuple[onnx.ModelProto, list[warnings.WarningMessage]]:
    from onnxconverter_common import float16

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            converted = float16.convert_float_to_float16(
                source,
                keep_io_types=keep_io_types,
                op_block_list=list(op_block_list),
                node_block_list=list(node_block_list) if node_block_list else None,
            )
        except Exception as exc:
            raise QuantizationError(
                f"float16 conversion failed: {type(exc).__name__}: {exc}. Check the model with "
                "onnx.checker.check_model(model, full_check=True), or use quantize_dynamic_int8 "
                "for a smaller model."
            ) from exc
    return converted, list(caught)


def _repair_casts(model: onnx.ModelProto) -> int:
    """Make Casts to float32 whose output the converter declared float16 cast to float16 (in
    place); returns how many. onnxconverter-common re-types the tensor but not the Cast."""
    fixed = 0
    for graph in _model.all_graphs(model.graph):
        declared = {
            v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output]
        }
        for node in graph.node:
            if node.op_type != "Cast" or declared.get(node.output[0]) != onnx.TensorProto.FLOAT16:
                continue
            for attr in node.attribute:
                if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                    attr.i = onnx.TensorProto.FLOAT16
                    fixed += 1
    return fixed


def _inserted_casts(model: onnx.ModelProto, providers: Sequence[str] | None) -> int:
    """How many Casts onnxruntime inserts to run float16 operators in float32 (no kernel)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(
            model.SerializeToString(), so, providers=list(providers or ["CPUExecutionProvider"])
        )
        optimized = onnx.load(so.optimized_model_filepath)
    return sum(n.name.startswith("InsertedPrecisionFreeCast") for n in optimized.graph.node)


def to_float16(
    model: str | Path | onnx.ModelProto,
    out_path: str | Path,
    *,
    keep_io_types: bool = True,
    eval_set: EvalSet | None = None,
    op_block_list: Sequence[str] | None = None,
    node_block_list: Sequence[str] | None = None,
    overflow: str = "raise",
    latency_batch: int = 1,
    latency_repeat: int = 30,
    intra_op_threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> QuantizationReport:
    """Convert weights and activations to float16 (onnxconverter-common's converter).

    ``keep_io_types=True`` keeps float32 inputs and outputs (Cast nodes at the edges), so
    callers need not change. ``op_block_list`` (added to the converter's default list) and
    ``node_block_list`` keep operators / named nodes in float32. With ``eval_set``, values
    beyond ±65504 (in float16 outputs, or in float32 activations that would be float16 after
    conversion, see :func:`find_float16_overflows`) raise :class:`Float16OverflowError` naming
    the nodes, or with ``overflow="note"`` become a note (``"ignore"`` skips the check).
    Weights clamped by the converter, and Casts onnxruntime inserts because the CPU provider
    lacks float16 kernels, are listed in ``notes``.

    Example::

        >>> rep = to_float16("mlp.onnx", "mlp.fp16.onnx", eval_set=(X_test, y_test),
        ...                  latency_repeat=3)
        >>> rep.settings["overflow_check"]
        'raise'
    """
    from onnxconverter_common import float16

    if overflow not in ("raise", "note", "ignore"):
        raise ValueError(f"overflow must be 'raise', 'note' or 'ignore', got {overflow!r}")
    source, out, evals = _start(model, out_path, eval_set)
    measure = _Measure(latency_batch, latency_repeat, intra_op_threads, providers)
    notes: list[str] = []
    blocked_ops = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(op_block_list or ()))
    control_flow = sorted(
        {n.op_type for g in _model.all_graphs(source.graph) for n in g.node}
        & {"If", "Loop", "Scan"}
    )
    attempts = [blocked_ops]
    if control_flow and not set(control_flow) <= set(blocked_ops):
        attempts.append(sorted(set(blocked_ops) | set(control_flow)))
    failure: BaseException | None = None
    for attempt in attempts:
        converted, caught = _convert_float16(source, keep_io_types, attempt, node_block_list)
        repaired = _repair_casts(converted)
        if keep_io_types:
            fixed = _float32_outputs(converted, source)
        onnx.save(converted, out)
        try:
            after_session = _model.session(
                out, providers=providers, intra_op_threads=intra_op_threads
            )
        except ValueError:
            raise
        except Exception as exc:  # onnxruntime rejects the converted graph: try the next way
            failure = exc
            continue
        failure = None
        break
    if failure is not None:
        out.unlink(missing_ok=True)
        if "NOT_IMPLEMENTED" in str(failure):  # a missing kernel: name the operator to block
            raise explain_session_error(failure, converted) from failure
        first = str(failure).strip().splitlines()[0][:400]
        raise QuantizationError(
            "onnxconverter-common's float16 converter made a graph onnxruntime cannot load"
            + (f", even with {control_flow} kept in float32" if len(attempts) > 1 else "")
            + f" ({first}). Routes that work on such graphs: quantize_dynamic_int8(model, "
            "out_path) or quantize_static_int8(model, out_path, calibration) for a smaller "
            "model (int8 weights), or keep the failing operators in float32 with "
            "to_float16(..., op_block_list=[...]) naming the operator in the message."
        ) from failure
    if attempt is not blocked_ops:
        notes.append(
            f"kept {control_flow} (and their subgraphs) in float32: converting them gave a graph "
            "onnxruntime rejects."
        )
    if repaired:
        notes.append(
            f"fixed {repaired} Cast node(s) the converter left casting to float32 where it had "
            "declared float16 (onnxruntime would refuse to load the model)."
        )
    if keep_io_types and fixed:
        notes.append(
            f"set {fixed} graph output(s) back to float32: onnxconverter-common leaves the "
            "output of a blocked last node in float16 despite keep_io_types=True."
        )
    clamped = {str(w.message) for w in caught}
    if clamped:
        notes.append(
            f"the converter clamped or flushed {len(clamped)} kinds of weight values to float16's "
            f"range, e.g.: {sorted(clamped)[0]}"
        )
    if evals is not None and overflow != "ignore":
        X = evals[0]
        batch = _fixed_batch(source)
        ref = _predict(measure.open(source.SerializeToString()), X, batch)
        got = _predict(after_session, X, batch)
        broken = [
            k
            for k, (r, g) in enumerate(zip(ref, got, strict=True))
            if g.dtype.kind == "f" and np.isfinite(r).all() and not np.isfinite(g).all()
        ]
        nodes = find_float16_overflows(
            source,
            X,
            op_block_list=op_block_list,
            node_block_list=node_block_list,
            keep_io_types=keep_io_types,
        )
        if broken or nodes:
            listed = ", ".join(
                f"{r['node']} ({r['op_type']}, max {r['max_abs']:.3g})" for r in nodes[:8]
            )
            seen = (
                "float16 outputs contain inf/NaN where float32 is finite"
                if broken
                else "outputs stayed finite here only because this execution provider ran those "
                "operators in float32; a provider with float16 kernels (e.g. CUDA) gives inf/NaN"
            )
            to_block = [r["node"] for r in nodes if r["op_type"] != "(input)"][:8]
            message = (
                f"float16 overflow: values beyond ±{FLOAT16_MAX:.0f} on the eval set "
                f"({listed or 'no float32 tensor out of range: rounding'}); {seen}. Fix: scale "
                "the inputs into a small range, or keep those nodes in float32 with "
                f"node_block_list={to_block} (or op_block_list=[...]), with keep_io_types=True."
            )
            if overflow == "raise":
                raise Float16OverflowError(message, nodes)
            notes.append(message)
    if "CPUExecutionProvider" in (providers or ["CPUExecutionProvider"]):
        inserted = _inserted_casts(converted, providers)
        if inserted:
            notes.append(
                f"onnxruntime inserted {inserted} Casts to run float16 operators in float32 on "
                "CPUExecutionProvider (it lacks float16 kernels for them): expect a smaller file, "
                "not a faster model, on this CPU."
            )
    settings = {
        "keep_io_types": keep_io_types,
        "op_block_list": list(op_block_list or ()),
        "node_block_list": list(node_block_list or ()),
        "overflow_check": overflow if evals is not None else "no eval_set",
    }
    return _report(
        "float16",
        source,
        out,
        evals,
        settings,
        notes,
        measure,
        after_session=after_session,
    )
