"""PyTorch, TensorFlow/Keras and scikit-learn to ONNX, each conversion ending in verification.

Every converter returns a :class:`Conversion`: the ONNX model, the route that ran (in words),
the time it took, and a :class:`~course.verify.VerificationReport` comparing the ONNX model,
run by ONNX Runtime and by ``onnx.reference``, with the source framework on the same inputs.
A converter failure is re-raised as :class:`ConversionError` with a hint that names the fix;
the original exception is chained (``err.__cause__``).

Converter chatter is kept off stderr without being thrown away: Python warnings raised during
a conversion are kept in ``Conversion.warnings`` and log records of the converters' loggers in
``Conversion.log`` (both are shown in the notebook display). Only warnings known to be
internal noise of the pinned libraries (listed in ``_NOISE_WARNINGS``) are dropped.

Example::

    from course import convert, data
    split = data.load_digits_split()
    conv = convert.torch_to_onnx(data.train_torch_mlp(split), split.X_test[:8])
    conv.route           # 'torch.onnx.export(dynamo=True) ...'
    conv.report.passed   # True: ONNX Runtime and onnx.reference agree with PyTorch
"""

from __future__ import annotations

import html
import io
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from course import _optional
from course import verify as _verify
from course._capture import TF_IMPORT_NOISE as _TF_IMPORT_NOISE
from course._capture import LogListHandler as _ListHandler
from course._capture import filtered_stderr_fd as _filtered_stderr_fd
from course._capture import strip_ansi as _strip_ansi
from course._capture import warning_lines
from course.data import import_tensorflow

__all__ = [
    "Conversion",
    "ConversionError",
    "DEFAULT_SKLEARN_OPSET",
    "keras_to_onnx",
    "sklearn_to_onnx",
    "torch_to_onnx",
]

#: scikit-learn's default target: opset 18 for the main domain, 3 for ai.onnx.ml (both read by
#: every runtime of the pinned stack; pin both domains, pain point "ai.onnx.ml mismatch").
DEFAULT_SKLEARN_OPSET: dict[str, int] = {"": 18, "ai.onnx.ml": 3}

# (category, message regex): internal deprecation noise of the pinned libraries, not actionable
# by the person converting a model.
_NOISE_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)

_CAPTURED_LOGGERS = ("torch", "onnxscript", "onnx_ir", "tf2onnx", "tensorflow", "absl", "skl2onnx")


class ConversionError(RuntimeError):
    """A conversion failed. ``.hint`` names the fix; ``.log`` holds the converter's log lines.

    The original exception is chained as ``__cause__``.
    """

    def __init__(self, message: str, hint: str, log: Sequence[str] = ()) -> None:
        text = f"{message}\nHint: {hint}"
        if log:
            text += f"\n({len(log)} converter log line(s) in .log)"
        super().__init__(text)
        self.hint = hint
        self.log = list(log)


@dataclass
class Conversion:
    """The result of a conversion.

    Attributes:
        model: the ONNX model (``onnx.ModelProto``).
        path: where it was saved, or None when kept in memory.
        route: which converter ran and how, in words.
        report: the parity report (None when ``verify=False``).
        seconds: time spent converting (verification excluded).
        verify_seconds: time spent verifying.
        framework: ``"torch"``, ``"keras"`` or ``"sklearn"``.
        warnings: Python warnings raised during the conversion, as text.
        log: log records of the converters during the conversion, as text.
        notes: what the helper decided for you and why (e.g. runtimes skipped).

    Example::

        conv.save("mlp.onnx")
        conv.report.to_frame()
    """

    model: onnx.ModelProto
    path: Path | None
    route: str
    report: _verify.VerificationReport | None
    seconds: float
    verify_seconds: float = 0.0
    framework: str = ""
    warnings: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def opsets(self) -> dict[str, int]:
        """The model's opset imports, ``{domain: version}`` (``""`` is ai.onnx)."""
        return {o.domain: int(o.version) for o in self.model.opset_import}

    @property
    def passed(self) -> bool:
        """True when verification ran and passed."""
        return self.report is not None and self.report.passed

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (folders created) and remember it in ``.path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(self.model, path)
        self.path = path
        return path

    def _lines(self) -> list[str]:
        inputs = ", ".join(_describe_value(v) for v in _verify._graph_inputs(self.model))
        outputs = ", ".join(_describe_value(v) for v in self.model.graph.output)
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in self.opsets.items())
        lines = [
            f"route: {self.route}",
            f"inputs: {inputs}",
            f"outputs: {outputs}",
            f"opsets: {opsets}; IR version {self.model.ir_version}",
            f"time: {self.seconds:.2f} s to convert, {self.verify_seconds:.2f} s to verify",
            f"saved to: {self.path}" if self.path else "saved to: (in memory; .save(path))",
        ]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"warning: {w}" for w in self.warnings]
        if self.log:
            lines.append(f"converter log: {len(self.log)} line(s) in .log")
        return lines

    def __str__(self) -> str:
        verdict = "not verified" if self.report is None else str(self.report)
        return f"Conversion ({self.framework})\n  " + "\n  ".join(self._lines()) + "\n" + verdict

    __repr__ = __str__

    def _repr_html_(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self._lines())
        report = "<p>not verified</p>" if self.report is None else self.report._repr_html_()
        return f"<p><b>Conversion ({html.escape(self.framework)})</b></p><ul>{items}</ul>{report}"


def _describe_value(value: onnx.ValueInfoProto) -> str:
    t = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        return f"{value.name}: {value.type.WhichOneof('value')}"
    dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
    return f"{value.name}: {dtype}{_verify._fmt_shape(_verify._dims(value))}"


# --------------------------------------------------------------------------------------------
# capture and hints


@dataclass
class _Captured:
    warnings: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


@contextmanager
def _capture() -> Iterator[_Captured]:
    """Keep warnings, converter log records and sys.stderr text for the Conversion."""
    captured = _Captured()
    handler = _ListHandler()
    saved = []
    # torch gives many of its sub-loggers their own stderr handler (propagate=False): swap the
    # handlers of every existing logger under the captured prefixes, not only the top ones
    names = set(_CAPTURED_LOGGERS) | {
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
        and logger.handlers
        and name.startswith(tuple(f"{p}." for p in _CAPTURED_LOGGERS))
    }
    for name in sorted(names):
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers = [handler]
        logger.propagate = False
    stderr = io.StringIO()  # torch.export prints failing graphs straight to sys.stderr
    try:
        with warnings.catch_warnings(record=True) as caught, redirect_stderr(stderr):
            warnings.simplefilter("always")
            for category, pattern in _NOISE_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern, category=category)
            try:
                yield captured
            finally:
                captured.warnings.extend(warning_lines(caught))
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers = handlers
            logger.propagate = propagate
        captured.log.extend(handler.lines)
        if stderr.getvalue().strip():
            captured.log.append("stderr: " + stderr.getvalue().strip())


_HINTS: tuple[tuple[str, str], ...] = (
    # float64
    (
        "must have the same dtype",
        "the example inputs are float64 but the model's weights are "
        "float32: cast them (x.float() in PyTorch, x.astype(np.float32) in NumPy)",
    ),
    (
        "expected scalar type Double",
        "float64 inputs into a float32 model: cast them (x.float(), x.astype(np.float32))",
    ),
    (
        "DoubleTensorType",
        "float64 inputs: convert and run in float32 (X.astype(np.float32)); "
        "scikit-learn's double-precision converters are not used here",
    ),
    # Keras 3 with tf2onnx.from_keras
    (
        "keras_tensor",
        "tf2onnx 1.17's from_keras reads tf_keras (Keras 2) models only, not Keras 3: "
        "use route='saved_model' (model.export() then tf2onnx), or build the model with tf_keras "
        "(import tf_keras; or TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported)",
    ),
    (
        "shapes cannot be multiplied",
        "example_inputs do not have the shape the model expects: "
        "check the number of features, and the layout (N x C x H x W for a CNN)",
    ),
    # control flow and dynamic dims
    (
        "data-dependent",
        "the forward pass branches on tensor values, which torch.export cannot "
        "trace: use torch.cond, or move the decision out of forward (torch.where for elementwise)",
    ),
    (
        "Constraints violated",
        "the model's code fixes a dimension you declared dynamic (e.g. "
        "x.view(4, -1)): write x.view(x.shape[0], -1) or x.flatten(1), or drop that dimension "
        "from dynamic_shapes",
    ),
    (
        "specialized",
        "a dimension declared dynamic was fixed by the code (e.g. x.view(4, -1)): "
        "use x.flatten(1) or x.shape[0], or drop it from dynamic_shapes",
    ),
    (
        "dynamic_shapes",
        "dynamic_shapes must mirror example_inputs: one {axis: "
        "torch.export.Dim('name')} dict (or None) per input",
    ),
    # operators and opsets
    (
        "No ONNX function found",
        "an operator has no ONNX translation at this opset: raise the "
        "opset, rewrite that operation with supported ones, or register a custom translation "
        "(custom_translation_table)",
    ),
    (
        "Unsupported",
        "an operator or type is not supported at this opset: raise the opset, or "
        "rewrite the operation",
    ),
    (
        "not supported",
        "an operator or option is not supported at this opset: raise the opset, "
        "or rewrite the operation",
    ),
    (
        "ai.onnx.ml",
        "pin the ai.onnx.ml opset explicitly, e.g. opset={'': 18, 'ai.onnx.ml': 3}, "
        "to one the target runtime supports",
    ),
    (
        "opset",
        "choose an opset both the converter and your runtime support (the dynamo "
        "exporter: 18 or later)",
    ),
    # scikit-learn
    (
        "shape calculator",
        "this estimator or custom transformer has no skl2onnx converter: "
        "register a shape calculator and converter (skl2onnx.update_registered_converter), or "
        "replace the step with a supported one",
    ),
    ("not fitted", "fit the estimator before converting it"),
    (
        "ZipMap",
        "convert with zipmap=False to get a probability tensor instead of ZipMap's list of dicts",
    ),
    ("onnxscript", "the torch exporter needs onnxscript: pip install onnxscript==0.7.2"),
)


def _hint(exc: BaseException) -> str:
    chain: list[str] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 8:
        chain.append(f"{type(cur).__name__}: {cur}")
        cur = cur.__cause__ or cur.__context__
    text = "\n".join(chain)
    for needle, hint in _HINTS:
        if needle.lower() in text.lower():
            return hint
    return "read the original error below (err.__cause__); it names the failing operation"


def _fail(what: str, exc: BaseException, log: Sequence[str] = ()) -> ConversionError:
    lines = [ln.strip() for ln in _strip_ansi(str(exc)).splitlines() if ln.strip()]
    summary = lines[0] if lines else type(exc).__name__
    if "## Exception summary" in lines[:-1]:  # the torch exporter's long report
        summary = lines[lines.index("## Exception summary") + 1]
    return ConversionError(f"{what}: {type(exc).__name__}: {summary}", _hint(exc), log)


def _new_conversion(
    proto: onnx.ModelProto,
    path: str | Path | None,
    route: str,
    seconds: float,
    framework: str,
    captured: _Captured,
) -> Conversion:
    """A Conversion of ``proto`` (saved to ``path`` when given), not yet verified."""
    return Conversion(
        model=proto,
        path=_save(proto, path),
        route=route,
        report=None,
        seconds=seconds,
        framework=framework,
        warnings=captured.warnings,
        log=captured.log,
    )


def _save(model: onnx.ModelProto, path: str | Path | None) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def _opset_of(model: onnx.ModelProto, domain: str = "") -> int | None:
    for o in model.opset_import:
        if o.domain == domain:
            return int(o.version)
    return None


def _reject_float64(arrays: Sequence[np.ndarray], fix: str) -> None:
    for arr in arrays:
        if arr.dtype == np.float64:
            raise ConversionError(
                "float64 example inputs",
                f"ONNX models here compute in float32: {fix}. Converting with float64 gives "
                "a double-precision graph that many operators and runtimes do not support",
            )


def _match_rank(expected: np.ndarray, value: onnx.ValueInfoProto) -> np.ndarray:
    """scikit-learn returns (N,) where converters declare (N, 1): align before comparing."""
    dims = _verify._dims(value)
    if dims is not None and len(dims) == 2 and expected.ndim == 1:
        return expected.reshape(-1, 1)
    return expected


# --------------------------------------------------------------------------------------------
# PyTorch


def _torch_inputs(example_inputs: Any) -> tuple[Any, ...]:
    import torch

    items = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    if not items:
        raise ValueError("example_inputs is empty: pass one tensor (or array) per forward input")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            item = torch.from_numpy(np.ascontiguousarray(item))
        if not isinstance(item, torch.Tensor):
            raise TypeError(
                f"example_inputs[{i}] must be a torch.Tensor or numpy array, got "
                f"{type(item).__name__}"
            )
        out.append(item)
    return tuple(out)


def _torch_outputs(result: Any) -> list[np.ndarray]:
    import torch

    if isinstance(result, torch.Tensor):
        return [result.detach().cpu().numpy()]
    if isinstance(result, Mapping):
        result = list(result.values())
    if isinstance(result, (tuple, list)):
        return [x for r in result for x in _torch_outputs(r)]
    raise TypeError(
        f"the model returned {type(result).__name__}; ONNX export needs tensors, or "
        "tuples/lists/dicts of tensors"
    )


def _run_torch(model: Any, args: tuple[Any, ...]) -> list[np.ndarray]:
    import torch

    try:
        with torch.no_grad():
            return _torch_outputs(model(*args))
    except (RuntimeError, TypeError, ValueError) as exc:
        raise _fail("the model failed on example_inputs before export", exc) from exc


def _check_eval_mode(model: Any) -> None:
    from torch import nn

    if not model.training:
        return
    kinds = (nn.Dropout, nn.modules.batchnorm._BatchNorm)
    bad = sorted({type(m).__name__ for m in model.modules() if isinstance(m, kinds)})
    if bad:
        raise ConversionError(
            f"the model is in training mode and contains {', '.join(bad)}",
            "call model.eval() before exporting: in training mode dropout is random and batch "
            "norm uses batch statistics, so the ONNX model would not match inference",
        )


def torch_to_onnx(
    model: Any,
    example_inputs: Any,
    path: str | Path | None = None,
    *,
    dynamic_batch: bool = True,
    dynamic_shapes: Any = None,
    opset: int = 18,
    dynamo: bool = True,
    verify: bool = True,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    verify_inputs: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Conversion:
    """Export a PyTorch module with ``torch.onnx.export`` and verify it.

    Args:
        model: a ``torch.nn.Module`` in eval mode (training mode with dropout or batch norm is
            refused: call ``model.eval()``).
        example_inputs: a tensor or NumPy array, or a tuple of them (one per ``forward``
            argument). float32 for a float32 model.
        path: where to save the ``.onnx`` file (None: keep it in memory).
        dynamic_batch: make axis 0 of every input a dynamic dimension named ``batch``
            (``torch.export.Dim("batch")``). Ignored when ``dynamic_shapes`` is given.
        dynamic_shapes: passed to the exporter as is, for other dynamic axes, e.g.
            ``({0: Dim("batch"), 2: Dim("length")},)``.
        opset: the ai.onnx opset (the dynamo exporter produces 18 or later natively).
        dynamo: True for the current exporter (torch.export); False for the legacy TorchScript
            exporter (deprecated since torch 2.9; ``dynamic_axes`` is derived from
            ``dynamic_batch``).
        verify: compare ONNX Runtime and onnx.reference with PyTorch on ``example_inputs``; with
            a dynamic batch, also on a batch twice as large (a batch that is really fixed fails
            there).
        input_names, output_names: names for the graph inputs/outputs.
        verify_inputs: more inputs (same structure as ``example_inputs``) to verify on.
        rtol, atol: tolerances of the parity check (default: from the output dtype).

    Example::

        conv = torch_to_onnx(mlp, torch.rand(4, 64), "mlp.onnx")
        conv.report.passed, conv.model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
        # (True, 'batch')
    """
    torch = _optional.require("torch", _optional.extra("torch"), "torch_to_onnx")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(opset, int) or opset < 7:
        raise ValueError(f"opset must be an int >= 7, got {opset!r}")
    if dynamic_shapes is not None and not dynamo:
        raise ValueError(
            "dynamic_shapes is for the dynamo exporter; with dynamo=False use dynamic_batch "
            "(it sets dynamic_axes for you)"
        )
    args = _torch_inputs(example_inputs)
    _check_eval_mode(model)
    float_params = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if torch.float64 not in float_params:
        _reject_float64(
            [a.numpy() for a in args if a.dtype == torch.float64],
            "cast them with x.float() (or np.float32)",
        )
    expected = _run_torch(model, args)
    batched = dynamic_batch and dynamic_shapes is None and all(a.dim() >= 1 for a in args)

    error: Exception | None = None
    start = time.perf_counter()
    with _capture() as captured:
        try:
            if dynamo:
                shapes = dynamic_shapes
                if batched:
                    batch = torch.export.Dim("batch")
                    shapes = tuple({0: batch} for _ in args)
                program = torch.onnx.export(
                    model,
                    args,
                    dynamo=True,
                    dynamic_shapes=shapes,
                    opset_version=opset,
                    input_names=list(input_names) if input_names else None,
                    output_names=list(output_names) if output_names else None,
                    verbose=False,
                    external_data=False,
                )
                proto = program.model_proto
                route = (
                    f"torch.onnx.export(dynamo=True): torch.export graph translated to ONNX "
                    f"opset {_opset_of(proto)}"
                    + (", batch axis dynamic" if batched else "")
                    + (", custom dynamic_shapes" if dynamic_shapes is not None else "")
                )
            else:
                names_in = (
                    list(input_names)
                    if input_names
                    else ["input" if i == 0 else f"input_{i}" for i in range(len(args))]
                )
                names_out = (
                    list(output_names)
                    if output_names
                    else ["output" if i == 0 else f"output_{i}" for i in range(len(expected))]
                )
                axes = {n: {0: "batch"} for n in names_in + names_out} if batched else None
                buffer = io.BytesIO()
                torch.onnx.export(
                    model,
                    args,
                    buffer,
                    dynamo=False,
                    opset_version=opset,
                    input_names=names_in,
                    output_names=names_out,
                    dynamic_axes=axes,
                    verbose=False,
                )
                proto = onnx.load_from_string(buffer.getvalue())
                route = (
                    f"torch.onnx.export(dynamo=False): legacy TorchScript exporter (deprecated "
                    f"since torch 2.9), opset {opset}"
                    + (", dynamic_axes on axis 0" if batched else "")
                )
        except Exception as exc:
            error = exc
    if error is not None:
        raise _fail(f"torch.onnx.export(dynamo={dynamo}) failed", error, captured.log) from error
    seconds = time.perf_counter() - start
    if _opset_of(proto) != opset:
        raise ConversionError(
            f"asked for opset {opset}, the exporter produced opset {_opset_of(proto)}",
            "the dynamo exporter builds opset 18 or later and could not convert down: use "
            "opset >= 18, or dynamo=False for an older runtime, or onnx.version_converter",
            captured.log,
        )
    if batched:
        for value in _verify._graph_inputs(proto):
            dims = _verify._dims(value) or []
            if dims and isinstance(dims[0], int):
                raise ConversionError(
                    f"input {value.name!r} was exported with a fixed batch of {dims[0]} "
                    "although a dynamic batch was asked for",
                    "the model's code fixes the batch size (e.g. x.view(4, -1) or a "
                    "hard-coded reshape): use x.flatten(1) or x.view(x.shape[0], -1), then "
                    "export again",
                    captured.log,
                )
    conv = _new_conversion(proto, path, route, seconds, "torch", captured)
    if verify:
        start = time.perf_counter()
        feeds = [a.numpy() for a in args]
        cases = [("example", feeds, expected)]
        if batched:
            doubled = tuple(torch.cat([a, a.flip(0)]) for a in args)
            cases.append(
                (
                    f"batch {len(doubled[0])}",
                    [a.numpy() for a in doubled],
                    _run_torch(model, doubled),
                )
            )
        if verify_inputs is not None:
            extra = _torch_inputs(verify_inputs)
            cases.append(("verify_inputs", [a.numpy() for a in extra], _run_torch(model, extra)))
        conv.report = _run_cases(proto, cases, rtol, atol)
        conv.verify_seconds = time.perf_counter() - start
    return conv


def _run_cases(
    proto: onnx.ModelProto,
    cases: Sequence[tuple[str, Any, Any]],
    rtol: float | None,
    atol: float | None,
    runtimes: Sequence[str] = _verify.RUNTIMES,
) -> _verify.VerificationReport:
    report = _verify.VerificationReport()
    for i, (case, inputs, expected) in enumerate(cases):
        report += _verify.verify(
            proto,
            inputs,
            expected,
            rtol=rtol,
            atol=atol,
            runtimes=runtimes,
            check=i == 0,
            case=case if len(cases) > 1 else "",
        )
    return report


# --------------------------------------------------------------------------------------------
# Keras / TensorFlow


def _keras_flavour(model: Any) -> str:
    module = type(model).__module__
    for cls in type(model).__mro__:
        mod = cls.__module__
        if mod.startswith("tf_keras") or mod.startswith("keras.src.engine"):
            return "tf_keras"
        if mod.startswith("keras"):
            return "keras3"
    raise TypeError(
        f"model must be a Keras model (keras.Model or tf_keras.Model), got "
        f"{type(model).__name__} from {module}"
    )


def _keras_outputs(result: Any) -> list[np.ndarray]:
    if isinstance(result, Mapping):
        result = list(result.values())
    if isinstance(result, (list, tuple)):
        return [np.asarray(r) for r in result]
    return [np.asarray(result)]


def keras_to_onnx(
    model: Any,
    example_inputs: Any,
    path: str | Path | None = None,
    *,
    route: str = "saved_model",
    opset: int = 17,
    verify: bool = True,
    verify_inputs: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Conversion:
    """Convert a Keras model with tf2onnx and verify it.

    Routes (``Conversion.route`` says which ran):

    - ``"saved_model"`` (default, works for Keras 3): ``model.export(dir)`` writes a
      TensorFlow SavedModel, which ``tf2onnx.tf_loader.from_saved_model`` freezes and
      ``tf2onnx.convert.from_graph_def`` converts (what ``python -m tf2onnx.convert
      --saved-model`` does).
    - ``"tf_keras"``: ``tf2onnx.convert.from_keras`` on the model object. It works for
      tf_keras (Keras 2) models; with a Keras 3 model it fails as tf2onnx 1.17 does
      (KeyError ``keras_tensor_*``), re-raised with the fix.

    Args:
        model: a built Keras model (``keras.Model`` or ``tf_keras.Model``).
        example_inputs: float32 array (or list of arrays, one per model input); the batch
            axis stays dynamic.
        path: where to save the ``.onnx`` file (None: in memory).
        route: ``"saved_model"`` or ``"tf_keras"``.
        opset: the ai.onnx opset tf2onnx targets.
        verify, verify_inputs, rtol, atol: as for :func:`torch_to_onnx`.

    Example::

        conv = keras_to_onnx(data.train_keras_mlp(split), split.X_test[:8])
        print(conv.route)
    """
    if route not in ("saved_model", "tf_keras"):
        raise ValueError(f"route must be 'saved_model' or 'tf_keras', got {route!r}")
    if not isinstance(opset, int) or opset < 7:
        raise ValueError(f"opset must be an int >= 7, got {opset!r}")
    flavour = _keras_flavour(model)
    arrays = example_inputs if isinstance(example_inputs, (list, tuple)) else [example_inputs]
    arrays = [_verify._to_numpy(a, "example_inputs") for a in arrays]
    if not arrays:
        raise ValueError("example_inputs is empty: pass one array per model input")
    _reject_float64(arrays, "cast them with x.astype(np.float32)")
    tf = import_tensorflow()
    feed = arrays if len(arrays) > 1 else arrays[0]
    try:
        expected = _keras_outputs(model(feed, training=False))
    except Exception as exc:  # Keras raises ValueError/TypeError/InvalidArgumentError
        raise _fail("the model failed on example_inputs before conversion", exc) from exc

    if route == "saved_model" and flavour == "tf_keras":
        raise ConversionError(
            "route='saved_model' is for Keras 3 models; this is a tf_keras model",
            "use route='tf_keras' for tf_keras models (tf2onnx.convert.from_keras)",
        )
    import tf2onnx

    error: Exception | None = None
    start = time.perf_counter()
    with _capture() as captured, _filtered_stderr_fd(_TF_IMPORT_NOISE):
        try:
            if route == "saved_model":
                with tempfile.TemporaryDirectory(prefix="course-savedmodel-") as tmp:
                    model.export(tmp, format="tf_saved_model", verbose=False)
                    graph_def, inputs, outputs, renames = tf2onnx.tf_loader.from_saved_model(
                        tmp,
                        None,
                        None,
                        tag="serve",
                        signatures=["serving_default"],
                        return_tensors_to_rename=True,
                    )
                with tf.device("/cpu:0"):
                    proto, _ = tf2onnx.convert.from_graph_def(
                        graph_def,
                        name=model.name,
                        input_names=inputs,
                        output_names=outputs,
                        opset=opset,
                        tensors_to_rename=renames,
                    )
                text = (
                    f"Keras 3 model.export() -> TensorFlow SavedModel -> tf2onnx "
                    f"(tf_loader.from_saved_model + convert.from_graph_def), opset {opset}"
                )
            else:
                signature = tuple(
                    tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype), name=inp.name)
                    for a, inp in zip(arrays, model.inputs, strict=False)
                )
                proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
                text = f"tf2onnx.convert.from_keras on a {flavour} model, opset {opset}"
        except Exception as exc:
            error = exc
    if error is not None:
        raise _fail(f"tf2onnx ({route} route) failed", error, captured.log) from error
    seconds = time.perf_counter() - start
    conv = _new_conversion(proto, path, text, seconds, "keras", captured)
    if verify:
        start = time.perf_counter()
        cases = [("example", arrays, expected)]
        if verify_inputs is not None:
            extra = verify_inputs if isinstance(verify_inputs, (list, tuple)) else [verify_inputs]
            extra = [_verify._to_numpy(a, "verify_inputs") for a in extra]
            got = _keras_outputs(model(extra if len(extra) > 1 else extra[0], training=False))
            cases.append(("verify_inputs", extra, got))
        conv.report = _run_cases(proto, cases, rtol, atol)
        conv.verify_seconds = time.perf_counter() - start
    return conv


# --------------------------------------------------------------------------------------------
# scikit-learn


def _sklearn_expected(estimator: Any, X: np.ndarray, proto: onnx.ModelProto) -> dict[str, Any]:
    from sklearn.base import is_classifier

    outputs = list(proto.graph.output)
    if is_classifier(estimator):
        got = [estimator.predict(X)]
        if hasattr(estimator, "predict_proba"):
            got.append(estimator.predict_proba(X))
    elif hasattr(estimator, "predict"):
        got = [estimator.predict(X)]
    else:
        got = [estimator.transform(X)]
    got = got[: len(outputs)]
    return {
        out.name: _match_rank(np.asarray(value), out)
        for out, value in zip(outputs, got, strict=False)
    }


def sklearn_to_onnx(
    estimator: Any,
    example_inputs: Any,
    path: str | Path | None = None,
    *,
    zipmap: bool = False,
    opset: int | Mapping[str, int] | None = None,
    verify: bool = True,
    verify_inputs: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> Conversion:
    """Convert a fitted scikit-learn estimator or pipeline with skl2onnx and verify it.

    Args:
        estimator: a fitted estimator or ``Pipeline`` (preprocessing included).
        example_inputs: a float32 2-D array (cast with ``X.astype(np.float32)``; float64 is
            refused with that hint). Its rows are used for verification; its column count
            fixes the input's width, the batch axis stays dynamic.
        path: where to save the ``.onnx`` file (None: in memory).
        zipmap: False (default) gives classifiers a probability tensor; True keeps skl2onnx's
            ZipMap (a list of ``{class: probability}`` dicts per row; onnx.reference cannot run
            it, so verification then uses ONNX Runtime only, as ``.notes`` says).
        opset: None for :data:`DEFAULT_SKLEARN_OPSET` (``{"": 18, "ai.onnx.ml": 3}``), an int
            for the main domain, or a dict per domain.
        verify, verify_inputs, rtol, atol: as for :func:`torch_to_onnx`. The expected outputs
            are ``predict`` and ``predict_proba`` for classifiers, ``predict`` for regressors,
            ``transform`` for transformers.

    Example::

        conv = sklearn_to_onnx(pipe, split.X_test[:20], opset={"": 18, "ai.onnx.ml": 3})
        [o.name for o in conv.model.graph.output]      # ['label', 'probabilities']
    """
    for module in ("sklearn", "skl2onnx"):
        _optional.require(module, _optional.extra("sklearn"), "sklearn_to_onnx")
    from skl2onnx import to_onnx
    from sklearn.base import BaseEstimator, is_classifier
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(estimator, BaseEstimator):
        raise TypeError(
            f"estimator must be a fitted scikit-learn estimator or Pipeline, got "
            f"{type(estimator).__name__}"
        )
    if type(example_inputs).__module__.startswith("pandas"):
        raise TypeError(
            "example_inputs is a pandas object: pass a float32 NumPy array "
            "(df.to_numpy(np.float32)); for mixed-type columns use skl2onnx.to_onnx directly "
            "with one input per column"
        )
    X = _verify._to_numpy(example_inputs, "example_inputs")
    if X.ndim != 2:
        raise ValueError(
            f"example_inputs must be 2-D (samples x features), got shape {X.shape}: use "
            "X.reshape(1, -1) for a single sample"
        )
    _reject_float64([X], "cast them with X.astype(np.float32)")
    if X.dtype != np.float32:
        raise TypeError(f"example_inputs must be float32, got {X.dtype}: X.astype(np.float32)")
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise ConversionError(
            f"{type(estimator).__name__} is not fitted", "fit the estimator before converting it"
        ) from exc
    if opset is None:
        target: int | dict[str, int] = dict(DEFAULT_SKLEARN_OPSET)
    elif isinstance(opset, Mapping):
        target = {str(k): int(v) for k, v in opset.items()}
    elif isinstance(opset, int) and not isinstance(opset, bool):
        target = opset
    else:
        raise TypeError(
            f"opset must be None, an int or a dict such as {{'': 18, 'ai.onnx.ml': 3}}, "
            f"got {opset!r}"
        )
    options = {"zipmap": bool(zipmap)} if is_classifier(estimator) else None

    error: Exception | None = None
    start = time.perf_counter()
    with _capture() as captured:
        try:
            proto = to_onnx(estimator, X[:1], target_opset=target, options=options)
        except Exception as exc:
            error = exc
    if error is not None:
        raise _fail("skl2onnx failed", error, captured.log) from error
    seconds = time.perf_counter() - start
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
    conv = _new_conversion(
        proto,
        path,
        (
            f"skl2onnx.to_onnx, float32 input, zipmap={bool(zipmap)}"
            if options
            else "skl2onnx.to_onnx, float32 input"
        )
        + f", opsets {opsets}",
        seconds,
        "sklearn",
        captured,
    )
    if verify:
        runtimes: Sequence[str] = _verify.RUNTIMES
        if any(n.op_type == "ZipMap" for n in proto.graph.node):
            runtimes = ("onnxruntime",)
            conv.notes.append(
                "verified with onnxruntime only: onnx.reference has no ZipMap (zipmap=False "
                "allows both)"
            )
        start = time.perf_counter()
        cases = [("example", X, _sklearn_expected(estimator, X, proto))]
        if verify_inputs is not None:
            Xv = _verify._to_numpy(verify_inputs, "verify_inputs")
            cases.append(("verify_inputs", Xv, _sklearn_expected(estimator, Xv, proto)))
        conv.report = _run_cases(proto, cases, rtol, atol, runtimes)
        conv.verify_seconds = time.perf_counter() - start
    return conv
