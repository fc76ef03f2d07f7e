"""Is this ONNX model valid, and does it compute what the source framework computes?

Three steps, each usable on its own:

- :func:`check_model`: ``onnx.checker`` plus strict shape inference, with errors that say what
  to fix;
- :func:`run_onnx`: run the model with ONNX Runtime or with ONNX's own reference evaluator
  (``onnx.reference.ReferenceEvaluator``, plain NumPy: slow, but an independent second opinion);
- :func:`verify`: compare the outputs of both runtimes with expected arrays (from PyTorch,
  Keras, scikit-learn) and report the largest absolute and relative error per output, judged
  at tolerances chosen from the output's dtype unless you give your own.

Example::

    from course import verify
    report = verify.verify("model.onnx", X[:8], [labels, probabilities])
    report.passed          # True when every output of every runtime is within tolerance
    report                 # a table in a notebook (max abs / rel error per output and runtime)
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from course import _model
from course._model import InvalidDimensionWarning
from course.palette import GREEN, VERMILLION

__all__ = [
    "DEFAULT_TOLERANCES",
    "InvalidDimensionWarning",
    "ModelCheckError",
    "OnnxRunError",
    "ParityRow",
    "RUNTIMES",
    "VerificationReport",
    "check_model",
    "default_tolerances",
    "first_divergence",
    "load_model",
    "run_onnx",
    "verify",
]

RUNTIMES = ("onnxruntime", "reference")

#: (rtol, atol) by dtype kind: what two correct implementations of the same float32 graph
#: typically agree to (different summation order, fused kernels), with margin.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-2, 1e-3),
    "bfloat16": (2e-2, 1e-2),
    "float32": (1e-4, 1e-5),
    "float64": (1e-7, 1e-9),
    "exact": (0.0, 0.0),
}


class ModelCheckError(ValueError):
    """The model fails ``onnx.checker`` or strict shape inference; ``.hint`` says what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message}\nHint: {hint}")
        self.hint = hint


class OnnxRunError(RuntimeError):
    """A runtime could not run the model; ``.hint`` says what to do, the cause is chained."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(f"{message}\nHint: {hint}")
        self.hint = hint


# --------------------------------------------------------------------------------------------
# loading and checking


def load_model(model: Any) -> onnx.ModelProto:
    """Return an ``onnx.ModelProto`` from a ModelProto, a path, serialized bytes, or any object
    with a ``.model`` ModelProto attribute (such as a ``course.convert.Conversion``).

    Example::

        proto = load_model("model.onnx")
        proto.graph.input[0].name
    """
    return _model.load(model)


_CHECK_HINTS = (
    (
        "ir_version",
        "the model's IR version is newer than this onnx package understands: "
        "upgrade onnx, or export for an older IR (set model.ir_version / a lower opset)",
    ),
    (
        "No Op registered",
        "an operator is not defined at the model's opset: raise the opset "
        "(opset_import), or replace the operator",
    ),
    (
        "No opset import for domain",
        "the model uses an operator domain it does not import: add "
        "onnx.helper.make_opsetid(domain, version) to model.opset_import",
    ),
    (
        "topologically sorted",
        "a node reads a tensor that nothing produces before it: connect that input to a graph "
        "input, an initializer or an earlier node's output, or reorder graph.node so "
        "producers come first",
    ),
    (
        "single static assignment",
        "two nodes write the same tensor name: give each output a unique name",
    ),
    ("SSA", "two nodes write the same tensor name: give each output a unique name"),
    (
        "Inferred shape and existing shape differ",
        "a declared shape (graph input/output or "
        "value_info) contradicts what the operators compute: fix or remove the declared dims",
    ),
    (
        "TypeInferenceError",
        "an operator receives a data type it does not accept, or a declared "
        "type disagrees with the computed one: insert a Cast or fix the declared elem_type",
    ),
    (
        "ShapeInferenceError",
        "an operator's inputs have incompatible shapes: check the dims "
        "feeding the node named in the message",
    ),
    (
        "is not output of any previous nodes",
        "a node reads a tensor nothing produces: connect it "
        "to a graph input, an initializer or another node's output",
    ),
)


def _hint_for(text: str, table: Sequence[tuple[str, str]], default: str) -> str:
    for needle, hint in table:
        if needle.lower() in text.lower():
            return hint
    return default


def check_model(model: Any) -> onnx.ModelProto:
    """Validate a model with ``onnx.checker`` and strict shape inference.

    Returns the model with inferred shapes added to ``graph.value_info`` (the input is not
    modified). Raises :class:`ModelCheckError` with a hint when either step fails.

    Example::

        inferred = check_model(conversion.model)
        len(inferred.graph.value_info)     # intermediate tensors with known types and shapes
    """
    proto = load_model(model)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        text = str(exc).strip()
        raise ModelCheckError(
            f"onnx.checker rejected the model: {text}",
            _hint_for(text, _CHECK_HINTS, "read the checker's message: it names the node"),
        ) from exc
    try:
        return onnx.shape_inference.infer_shapes(
            proto, check_type=True, strict_mode=True, data_prop=True
        )
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        text = str(exc).strip()
        raise ModelCheckError(
            f"strict shape inference failed: {text}",
            _hint_for(text, _CHECK_HINTS, "the message names the node whose shapes disagree"),
        ) from exc


# --------------------------------------------------------------------------------------------
# running


_graph_inputs = _model.graph_inputs  # old private names, kept for callers
_dims = _model.dims


def _to_numpy(value: Any, what: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # torch.Tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy") and callable(value.numpy):  # tf.Tensor
        return np.asarray(value.numpy())
    if isinstance(value, (list, tuple, int, float, bool, np.generic)):
        return np.asarray(value)
    raise TypeError(
        f"{what} must be a numpy array (or a torch/tf tensor), got {type(value).__name__}"
    )


def _feeds(proto: onnx.ModelProto, inputs: Any) -> dict[str, np.ndarray]:
    """Match ``inputs`` to the graph inputs and check dtype and shape, naming the fix."""
    declared = _model.graph_inputs(proto)
    names = [d.name for d in declared]
    _model.warn_negative_dims(proto, stacklevel=4)
    if isinstance(inputs, Mapping):
        missing = [n for n in names if n not in inputs]
        extra = [k for k in inputs if k not in names]
        if missing or extra:
            raise ValueError(
                f"the model's inputs are {names}; missing {missing}, unexpected {extra}: "
                "use the graph's input names as keys (model.graph.input)"
            )
        values = [inputs[n] for n in names]
    elif isinstance(inputs, (list, tuple)) and not (
        len(names) == 1 and inputs and np.isscalar(inputs[0])
    ):
        values = list(inputs)
        if len(values) != len(names):
            raise ValueError(
                f"the model has {len(names)} input(s) {names} but {len(values)} array(s) were "
                "given: pass one array per input, in order, or a dict {name: array}"
            )
    else:
        if len(names) != 1:
            raise ValueError(
                f"the model has {len(names)} inputs {names}: pass a list of arrays in that "
                "order or a dict {name: array}"
            )
        values = [inputs]
    feeds: dict[str, np.ndarray] = {}
    for value_info, value in zip(declared, values, strict=True):
        name = value_info.name
        arr = _to_numpy(value, f"input {name!r}")
        elem = value_info.type.tensor_type.elem_type
        if elem:
            want = onnx.helper.tensor_dtype_to_np_dtype(elem)
            if arr.dtype != want and not (want == np.dtype(object) and arr.dtype.kind in "OU"):
                raise TypeError(
                    f"input {name!r} expects {want} but got {arr.dtype}: cast it first, e.g. "
                    f"x.astype(np.{want.name})"
                    + (" (NumPy and scikit-learn default to float64)" if want == np.float32 else "")
                )
        dims = _model.dims(value_info)
        if dims is not None:
            if arr.ndim != len(dims):
                raise ValueError(
                    f"input {name!r} expects {len(dims)} dimensions {_fmt_shape(dims)}, got "
                    f"shape {arr.shape}: reshape it (a single sample needs a batch axis, "
                    "x[None] or x.reshape(1, ...))"
                )
            bad = [
                (i, d, s)
                for i, (d, s) in enumerate(zip(dims, arr.shape, strict=True))
                if isinstance(d, int) and d != s
            ]
            if bad:
                i, d, s = bad[0]
                raise ValueError(
                    f"input {name!r} expects shape {_fmt_shape(dims)}, got {arr.shape}: "
                    f"dimension {i} is fixed to {d} in the model, the data has {s}. If that "
                    "axis should vary (a batch), export it as a dynamic dimension"
                )
        feeds[name] = arr
    return feeds


def _fmt_shape(dims: Sequence[int | str | None] | None) -> str:
    if dims is None:
        return "[?]"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _zipmap_to_array(value: Any) -> Any:
    """ONNX Runtime returns ZipMap outputs as a list of {class: probability} dicts."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = sorted(value[0])
        return np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
    return value


_ORT_HINTS = (
    (
        "Unsupported model IR version",
        "the model's IR version is newer than this onnxruntime "
        "reads: export with a lower opset/IR version (model.ir_version) or upgrade onnxruntime",
    ),
    (
        "ConvInteger",
        "onnxruntime's CPU provider has no ConvInteger kernel: quantize CNNs with "
        "static QDQ quantization instead of dynamic quantization",
    ),
    (
        "NOT_IMPLEMENTED",
        "no kernel for this operator and type on this execution provider: use "
        "another opset or dtype, or another provider",
    ),
    (
        "opset",
        "the model's opset is outside what this onnxruntime supports: re-export with a "
        "supported opset",
    ),
    (
        "Got invalid dimensions",
        "an input's size differs from a fixed dimension of the model: "
        "export that dimension as dynamic or feed the size the model expects",
    ),
    ("Unexpected input data type", "cast the input to the dtype the model declares"),
)


def _run_onnxruntime(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[Any]:
    try:
        return _model.session(proto).run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        text = str(exc)
        raise OnnxRunError(
            f"onnxruntime failed: {text}",
            _hint_for(text, _ORT_HINTS, "the message names the node and the operator"),
        ) from exc


def _failing_node(exc: BaseException) -> str:
    """``"Op 'name'"`` of the innermost reference operator whose code raised ``exc``."""
    from onnx.reference.op_run import OpRun

    found = ""
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, OpRun):
            node = getattr(owner, "onnx_node", None)
            if node is not None:
                domain = f"{node.domain}." if node.domain else ""
                found = (
                    f"{domain}{node.op_type} node {node.name!r}"
                    if node.name
                    else (f"{domain}{node.op_type} node")
                )
        tb = tb.tb_next
    return found


def _run_reference(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[Any]:
    from onnx.reference import ReferenceEvaluator

    try:
        evaluator = ReferenceEvaluator(proto, verbose=0)
        # NumPy's overflow warnings (exp of a large logit) are arithmetic, not the learner's
        # business, and would reach a notebook's stderr
        with np.errstate(all="ignore"):
            return list(evaluator.run(None, feeds))
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}".strip()
        node = _failing_node(exc)
        where = f" at {node}" if node else ""
        if "ZipMap" in text:
            hint = (
                "onnx.reference has no ZipMap: convert scikit-learn classifiers with "
                "zipmap=False (options={'zipmap': False}) to get a probability tensor"
            )
        elif "com.microsoft" in text or "domain" in text.lower():
            hint = (
                "the reference evaluator implements the standard ai.onnx and ai.onnx.ml "
                "operators only; check this model with runtimes=('onnxruntime',)"
            )
        else:
            hint = (
                f"the reference evaluator may not implement this operator{where} for these "
                "types; compare with runtimes=('onnxruntime',) and report the gap"
            )
        raise OnnxRunError(f"onnx.reference failed{where}: {text}", hint) from exc


def _run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray], runtime: str) -> list[np.ndarray]:
    runner = _run_onnxruntime if runtime == "onnxruntime" else _run_reference
    return [np.asarray(_zipmap_to_array(out)) for out in runner(proto, feeds)]


def first_divergence(
    model: Any, inputs: Any, *, rtol: float = 1e-3, atol: float = 1e-4
) -> dict[str, Any] | None:
    """The first node (in graph order) whose output differs between onnxruntime and
    onnx.reference, or None when every intermediate float tensor agrees.

    Both runtimes run the model with every typed intermediate tensor of the main graph exposed
    as an output (onnxruntime's graph optimisations off, so the names exist). Returns
    ``{"node", "op_type", "tensor", "max_abs_error"}``: where to look when :func:`verify` finds
    the runtimes disagree.

    Example::

        >>> import numpy as np
        >>> from onnx import TensorProto, helper
        >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
        ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
        >>> print(first_divergence(helper.make_model(g), np.ones(2, np.float32)))
        None
    """
    from onnx.reference import ReferenceEvaluator

    proto = load_model(model)
    feeds = _feeds(proto, inputs)
    probe = onnx.shape_inference.infer_shapes(proto)
    typed = {v.name: v for v in probe.graph.value_info if v.type.HasField("tensor_type")}
    known = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name in typed and name not in known:
                probe.graph.output.append(typed[name])
                known.add(name)
    names = [o.name for o in probe.graph.output]
    try:
        ort_out = _model.session(probe, optimization_level="disable").run(None, feeds)
        with np.errstate(all="ignore"):
            ref_out = ReferenceEvaluator(probe, verbose=0).run(None, feeds)
    except Exception:  # noqa: BLE001 - a runtime that cannot run it: verify reports that
        return None
    a = dict(zip(names, ort_out, strict=True))
    b = dict(zip(names, ref_out, strict=True))
    for node in probe.graph.node:
        for name in node.output:
            if name not in a:
                continue
            x, y = np.asarray(a[name]), np.asarray(b[name])
            if x.shape != y.shape:
                err = float("nan")
            elif x.dtype.kind in "fc" and y.dtype.kind in "fc":
                with np.errstate(invalid="ignore"):
                    if np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
                        continue
                    err = float(np.nanmax(np.abs(x.astype(np.float64) - y.astype(np.float64))))
            else:
                continue
            return {
                "node": node.name,
                "op_type": node.op_type,
                "tensor": name,
                "max_abs_error": err,
            }
    return None


def run_onnx(model: Any, inputs: Any, runtime: str = "onnxruntime") -> list[np.ndarray]:
    """Run a model and return its outputs as NumPy arrays, in graph output order.

    Args:
        model: ModelProto, path, serialized bytes or a ``Conversion``.
        inputs: one array for a single-input model, a list of arrays in graph input order, or a
            dict ``{input name: array}``. Dtypes and fixed dimensions are checked first, with an
            error that says how to fix them (``astype``, a batch axis, a dynamic dimension). A
            dimension declared as ``-1`` (invalid, but common in exported files) is dynamic, as
            onnxruntime treats it, with an :class:`InvalidDimensionWarning`.
        runtime: ``"onnxruntime"`` (CPU provider) or ``"reference"``
            (``onnx.reference.ReferenceEvaluator``).

    ZipMap outputs (scikit-learn classifiers converted with ``zipmap=True``) are returned as a
    2-D float32 array with columns in class order.

    Example::

        labels, probabilities = run_onnx(model, X_test[:4])
        run_onnx(model, {"input": X_test[:4]}, runtime="reference")
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    proto = load_model(model)
    return _run(proto, _feeds(proto, inputs), runtime)


# --------------------------------------------------------------------------------------------
# comparing


def default_tolerances(dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)`` used by :func:`verify` for outputs of this dtype.

    float32: (1e-4, 1e-5); float16: (1e-2, 1e-3); float64: (1e-7, 1e-9); integers, booleans
    and strings must match exactly.

    Example::

        default_tolerances(np.float32)     # (0.0001, 1e-05)
    """
    dt = np.dtype(dtype)
    name = dt.name
    if name in DEFAULT_TOLERANCES:
        return DEFAULT_TOLERANCES[name]
    if dt.kind == "f":
        return DEFAULT_TOLERANCES["float32"]
    return DEFAULT_TOLERANCES["exact"]


@dataclass(frozen=True)
class ParityRow:
    """One output of one runtime compared with the expected array."""

    runtime: str
    output: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_error: float
    max_rel_error: float
    rtol: float
    atol: float
    mismatched: int
    total: int
    passed: bool
    note: str = ""
    case: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict (one DataFrame row)."""
        return {
            "case": self.case,
            "runtime": self.runtime,
            "output": self.output,
            "shape": self.shape,
            "dtype": self.dtype,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "rtol": self.rtol,
            "atol": self.atol,
            "mismatched": self.mismatched,
            "total": self.total,
            "passed": self.passed,
            "note": self.note,
        }


@dataclass
class VerificationReport:
    """Parity of an ONNX model with expected outputs, per output and runtime.

    ``passed`` is True when there is at least one row and every row passed. In a notebook the
    report shows as a table; ``str(report)`` gives the same as text.

    Example::

        report = verify(model, X, expected)
        report.passed, report.max_abs_error
        report.to_frame()                  # a pandas DataFrame, one row per output and runtime
        report.assert_passed()             # raises AssertionError listing the failing rows
    """

    rows: list[ParityRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def failures(self) -> list[ParityRow]:
        """The rows that did not pass."""
        return [r for r in self.rows if not r.passed]

    @property
    def max_abs_error(self) -> float:
        """The largest absolute error over all rows (nan when a row could not be compared)."""
        errs = np.array([r.max_abs_error for r in self.rows], dtype=np.float64)
        return float(errs.max()) if errs.size else float("nan")  # any NaN row gives NaN

    def __add__(self, other: VerificationReport) -> VerificationReport:
        if not isinstance(other, VerificationReport):
            return NotImplemented
        return VerificationReport(self.rows + other.rows)

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame (needs pandas: pip install pandas)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is in the course env
            raise ImportError("to_frame needs pandas: pip install pandas") from exc
        return pd.DataFrame([r.as_dict() for r in self.rows])

    def assert_passed(self) -> None:
        """Raise ``AssertionError`` naming every failing output, with its errors and tolerance."""
        if not self.rows:
            raise AssertionError(
                "expected a verification with at least one compared output, got an empty report"
            )
        if self.failures:
            lines = [
                f"{r.runtime}/{r.output}: max abs {r.max_abs_error:.3g}, max rel "
                f"{r.max_rel_error:.3g}, {r.mismatched}/{r.total} outside rtol={r.rtol:g} "
                f"atol={r.atol:g}" + (f" ({r.note})" if r.note else "")
                for r in self.failures
            ]
            raise AssertionError(
                "expected ONNX outputs within tolerance, got:\n" + "\n".join(lines)
            )

    _COLUMNS = (
        "runtime",
        "output",
        "shape",
        "max abs err",
        "max rel err",
        "rtol",
        "atol",
        "mismatched",
        "result",
    )

    def _columns(self) -> list[str]:
        with_case = any(r.case for r in self.rows)
        return (["case"] if with_case else []) + list(self._COLUMNS)

    def _cells(self, r: ParityRow) -> list[str]:
        cells = [
            r.runtime,
            r.output,
            "x".join(map(str, r.shape)) or "scalar",
            f"{r.max_abs_error:.2e}",
            f"{r.max_rel_error:.2e}",
            f"{r.rtol:g}",
            f"{r.atol:g}",
            f"{r.mismatched}/{r.total}",
            ("pass" if r.passed else "FAIL") + (f" ({r.note})" if r.note else ""),
        ]
        return ([r.case] if any(x.case for x in self.rows) else []) + cells

    def __str__(self) -> str:
        columns = self._columns()
        table = [columns] + [self._cells(r) for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
        verdict = "PASSED" if self.passed else "FAILED"
        return f"Verification {verdict}\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self._columns())
        body = []
        for r in self.rows:
            colour = GREEN if r.passed else VERMILLION
            cells = self._cells(r)
            tds = "".join(f"<td>{html.escape(c)}</td>" for c in cells[:-1])
            body.append(
                f"<tr>{tds}<td style='color:{colour};font-weight:bold'>"
                f"{html.escape(cells[-1])}</td></tr>"
            )
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"<p><b>Verification {verdict}</b></p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    __repr__ = __str__


def _compare(
    got: np.ndarray,
    want: np.ndarray,
    runtime: str,
    output: str,
    rtol: float | None,
    atol: float | None,
    case: str = "",
) -> ParityRow:
    d_rtol, d_atol = default_tolerances(got.dtype)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    base = dict(
        case=case,
        runtime=runtime,
        output=output,
        shape=tuple(got.shape),
        dtype=str(got.dtype),
        rtol=rtol,
        atol=atol,
    )
    if got.shape != want.shape:
        return ParityRow(
            **base,
            max_abs_error=float("nan"),
            max_rel_error=float("nan"),
            mismatched=int(max(got.size, want.size)),
            total=int(max(got.size, want.size)),
            passed=False,
            note=f"shape {got.shape} vs expected {want.shape}",
        )
    total = int(got.size)
    if total == 0:
        return ParityRow(
            **base, max_abs_error=0.0, max_rel_error=0.0, mismatched=0, total=0, passed=True
        )
    numeric = got.dtype.kind in "biuf" and want.dtype.kind in "biuf"
    if not numeric:
        bad = got.astype(str) != want.astype(str)
        mismatched = int(bad.sum())
        return ParityRow(
            **base,
            max_abs_error=float(mismatched > 0),
            max_rel_error=float(mismatched > 0),
            mismatched=mismatched,
            total=total,
            passed=mismatched == 0,
            note="compared exactly",
        )
    with np.errstate(invalid="ignore"):  # inf - inf is handled below
        g = got.astype(np.float64)
        w = want.astype(np.float64)
        nan_g, nan_w = np.isnan(g), np.isnan(w)
        both_nan = nan_g & nan_w
        diff = np.where(both_nan, 0.0, np.abs(g - w))
        diff = np.where(nan_g ^ nan_w, np.inf, diff)
        same_inf = np.isinf(g) & (g == w)
        diff = np.where(same_inf, 0.0, diff)
        bad = diff > atol + rtol * np.abs(np.where(np.isfinite(w), w, 0.0))
        scale = np.abs(w)
        judged = scale > max(atol, np.finfo(np.float64).tiny)
        rel = diff[judged] / scale[judged] if judged.any() else np.zeros(1)
    mismatched = int(bad.sum())
    note = ""
    if (nan_g ^ nan_w).any():
        note = "NaN where the other side has a number"
    return ParityRow(
        **base,
        max_abs_error=float(diff.max()),
        max_rel_error=float(rel.max()),
        mismatched=mismatched,
        total=total,
        passed=mismatched == 0,
        note=note,
    )


def _expected_by_output(proto: onnx.ModelProto, expected: Any) -> dict[str, np.ndarray]:
    names = [o.name for o in proto.graph.output]
    if isinstance(expected, Mapping):
        unknown = [k for k in expected if k not in names]
        if unknown:
            raise ValueError(
                f"expected has keys {unknown} that are not outputs of the model; "
                f"its outputs are {names}"
            )
        if not expected:
            raise ValueError(f"expected is empty: give at least one of the outputs {names}")
        return {k: _to_numpy(_zipmap_to_array(v), f"expected[{k!r}]") for k, v in expected.items()}
    if isinstance(expected, (list, tuple)) and expected and not np.isscalar(expected[0]):
        values = list(expected)
    else:
        values = [expected]
    if len(values) != len(names):
        raise ValueError(
            f"the model has {len(names)} output(s) {names} but {len(values)} expected array(s) "
            "were given: pass one per output in order, or a dict {output name: array} to "
            "compare a subset"
        )
    return {
        n: _to_numpy(_zipmap_to_array(v), f"expected output {n!r}")
        for n, v in zip(names, values, strict=True)
    }


def verify(
    model: Any,
    inputs: Any,
    expected: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    runtimes: Sequence[str] = RUNTIMES,
    check: bool = True,
    case: str = "",
) -> VerificationReport:
    """Check the model, run it with each runtime, and compare with ``expected``.

    Args:
        model: ModelProto, path, serialized bytes or a ``Conversion``.
        inputs: as for :func:`run_onnx`.
        expected: one array per graph output (a list in output order, or a single array for a
            single-output model), or a dict ``{output name: array}`` to compare a subset.
        rtol, atol: tolerances for every output; by default chosen from each output's dtype
            (:func:`default_tolerances`). An element passes when
            ``|onnx - expected| <= atol + rtol * |expected|`` (NumPy's ``allclose`` rule).
        runtimes: any of ``"onnxruntime"`` and ``"reference"``.
        check: run :func:`check_model` first (raises :class:`ModelCheckError`).
        case: a label for these inputs (e.g. ``"batch 8"``), shown as a column when set;
            reports add up (``report_a + report_b``).

    A runtime that fails to run the model gives failing rows whose note holds its error (the
    report does not raise); bad inputs raise before anything runs. The maximum relative error is
    taken over elements whose expected magnitude exceeds ``atol`` (near zero, only the absolute
    error is meaningful).

    Example::

        report = verify(conversion.model, X_test[:16], torch_logits, runtimes=("onnxruntime",))
        print(report)
    """
    if isinstance(runtimes, str):
        runtimes = (runtimes,)
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise ValueError(f"runtimes must be a non-empty subset of {RUNTIMES}, got {runtimes!r}")
    for name, tol in (("rtol", rtol), ("atol", atol)):
        if tol is not None and not (isinstance(tol, (int, float)) and tol >= 0):
            raise ValueError(f"{name} must be a non-negative number or None, got {tol!r}")
    proto = load_model(model)
    if check:
        check_model(proto)
    feeds = _feeds(proto, inputs)
    want = _expected_by_output(proto, expected)
    names = [o.name for o in proto.graph.output]
    rows: list[ParityRow] = []
    for runtime in runtimes:
        try:
            outputs = _run(proto, feeds, runtime)
        except OnnxRunError as exc:
            for name, w in want.items():
                rows.append(
                    ParityRow(
                        case=case,
                        runtime=runtime,
                        output=name,
                        shape=tuple(w.shape),
                        dtype=str(w.dtype),
                        max_abs_error=float("nan"),
                        max_rel_error=float("nan"),
                        rtol=default_tolerances(w.dtype)[0] if rtol is None else float(rtol),
                        atol=default_tolerances(w.dtype)[1] if atol is None else float(atol),
                        mismatched=int(w.size),
                        total=int(w.size),
                        passed=False,
                        note=str(exc).splitlines()[0][:300],
                    )
                )
            continue
        got = dict(zip(names, outputs, strict=True))
        for name, w in want.items():
            rows.append(_compare(got[name], w, runtime, name, rtol, atol, case))
    if set(runtimes) == set(RUNTIMES) and any(
        not r.passed and not r.note for r in rows
    ):  # both ran, some output is off: say where the runtimes part ways
        found = first_divergence(proto, feeds)
        if found is not None:
            where = (
                f"runtimes first disagree at {found['op_type']} node {found['node']!r} "
                f"(tensor {found['tensor']!r}, max abs {found['max_abs_error']:.3g})"
            )
            rows = [r if r.passed or r.note else dataclasses.replace(r, note=where) for r in rows]
    return VerificationReport(rows)
