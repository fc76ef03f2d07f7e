"""The inside layer every helper uses to read a model and run it (not a public module).

One loader (:func:`load`) for everything a learner may hold: an ``onnx.ModelProto``, a path, the
serialized bytes, or a ``course.convert.Conversion`` (anything with a ``.model`` ModelProto); the
input helpers (:func:`graph_inputs`, :func:`dims`, :func:`sample_feeds`); one onnxruntime session
factory (:func:`session`) that always limits onnxruntime's log to errors, so that no warning reaches
a notebook's stderr; and :func:`tile_batch` for latency inputs.

>>> import numpy as np, onnx
>>> from onnx import TensorProto, helper
>>> graph = helper.make_graph(
...     [helper.make_node("Relu", ["x"], ["y"])], "g",
...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])])
>>> proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
>>> load(proto.SerializeToString()).graph.node[0].op_type
'Relu'
>>> [dims(v) for v in graph_inputs(proto)]
[['batch', 3]]
>>> session(proto).run(None, {"x": -np.ones((2, 3), np.float32)})[0].max()
np.float32(0.0)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import onnxruntime

#: onnxruntime's graph optimisation levels by the names the helpers take.
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}

#: onnxruntime's log severity the helpers use: 3 = errors only (warnings would reach stderr).
LOG_SEVERITY_ERRORS = 3

MODEL_KINDS = "an onnx.ModelProto, a path to a .onnx file, serialized bytes or a Conversion"


class InvalidDimensionWarning(UserWarning):
    """A model declares a negative dimension (``-1``): invalid in the ONNX spec, common in
    exported files; the helpers treat it as dynamic, as onnxruntime does."""


def load(model: Any, *, load_external_data: bool = True) -> onnx.ModelProto:
    """Return an ``onnx.ModelProto`` from anything model-like (see the module docstring).

    A ModelProto is returned as is (not copied). ``load_external_data=False`` reads a file's
    graph without the weights stored beside it (enough to inspect its structure).
    """
    if isinstance(model, onnx.ModelProto):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, onnx.ModelProto):
        return inner
    if isinstance(model, (bytes, bytearray, memoryview)):
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(bytes(model))
        except Exception as exc:  # protobuf's DecodeError
            raise ValueError(
                "these bytes are not a serialized ONNX model (model.SerializeToString())"
            ) from exc
        return proto
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(
                f"no ONNX model at {path} (no ONNX file there): check the path (current folder: {Path.cwd()})"
            )
        try:
            return onnx.load(path, load_external_data=load_external_data)
        except Exception as exc:
            raise ValueError(
                f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc}); "
                "re-export it, or check it was fully written"
            ) from exc
    raise TypeError(f"expected {MODEL_KINDS}, got {type(model).__name__}")


def source(model: Any) -> str | bytes:
    """What onnxruntime opens: a file's path (its external data stays beside it) or bytes."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(
                f"no ONNX model at {path} (no ONNX file there): check the path (current folder: {Path.cwd()})"
            )
        return str(path)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    return load(model).SerializeToString()


def graph_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds: graph inputs that are not initializers (old IR lists both)."""
    inits = {i.name for i in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def input_names(proto: onnx.ModelProto) -> list[str]:
    """The names of :func:`graph_inputs`, in order."""
    return [i.name for i in graph_inputs(proto)]


def dims(value: onnx.ValueInfoProto) -> list[int | str | None] | None:
    """A tensor's declared dimensions: an int (fixed), a name (symbolic) or None (unknown).

    A negative size (``-1``, invalid in the spec but common in exported files) is dynamic, as
    onnxruntime treats it: None. Returns None when no shape is declared at all.
    """
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in t.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def negative_dims(proto: onnx.ModelProto) -> list[str]:
    """``"input[axis]=-1"`` for every graph input that declares a negative dimension."""
    found = []
    for value in graph_inputs(proto):
        for axis, d in enumerate(value.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value < 0:
                found.append(f"{value.name}[{axis}]={d.dim_value}")
    return found


def warn_negative_dims(proto: onnx.ModelProto, stacklevel: int = 3) -> list[str]:
    """Warn (:class:`InvalidDimensionWarning`) when inputs declare negative dims; return them."""
    found = negative_dims(proto)
    if found:
        warnings.warn(
            f"the model declares negative input dimensions ({', '.join(found)}), which the ONNX "
            "spec does not allow; treated as dynamic, as onnxruntime does. Re-export with a "
            "named dynamic dimension to silence this.",
            InvalidDimensionWarning,
            stacklevel=stacklevel,
        )
    return found


def elem_dtype(value: onnx.ValueInfoProto) -> np.dtype | None:
    """The NumPy dtype of a tensor value (None when undeclared or not a tensor)."""
    elem = value.type.tensor_type.elem_type
    return onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else None


def sample_feeds(
    model: Any, sizes: Mapping[str, int] | None = None, *, default_size: int = 1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random inputs of the declared dtypes and shapes, one array per graph input.

    Symbolic or unknown dimensions take ``sizes[name]`` (by dimension name, or by
    ``"input:axis"``) and else ``default_size``. Floats are standard normal, integers in
    [0, 4), booleans random.

    >>> import onnx
    >>> from onnx import TensorProto, helper
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    >>> {k: v.shape for k, v in sample_feeds(helper.make_model(g), {"n": 5}).items()}
    {'x': (5, 3)}
    """
    proto = load(model, load_external_data=False)
    sizes = dict(sizes or {})
    rng = np.random.default_rng(seed)
    feeds = {}
    for value in graph_inputs(proto):
        shape = []
        for axis, d in enumerate(dims(value) or []):
            if isinstance(d, int):
                shape.append(d)
            else:
                shape.append(sizes.get(f"{value.name}:{axis}", sizes.get(str(d), default_size)))
        dtype = elem_dtype(value) or np.dtype(np.float32)
        if dtype.kind == "f":
            arr = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            arr = rng.integers(0, 4, size=shape).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.random(shape) > 0.5
        else:
            arr = np.full(shape, "a", dtype=object)
        feeds[value.name] = arr
    return feeds


def session(
    model: Any,
    *,
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
    optimization_level: str = "all",
    providers: Sequence[str] | None = None,
    allow_spinning: bool | None = None,
    optimized_model_filepath: str | os.PathLike | None = None,
) -> onnxruntime.InferenceSession:
    """Create an onnxruntime session with explicit, recorded thread and optimisation settings.

    (Public as ``course.bench.ort_session``.) ``model`` is a path, serialized bytes, a
    ``ModelProto`` or a ``Conversion``. ``intra_op_threads`` / ``inter_op_threads`` of ``None``
    keep onnxruntime's default (one thread per physical core). ``optimization_level`` is one of
    ``"disable"``, ``"basic"``, ``"extended"``, ``"layout"``, ``"all"``. ``providers`` defaults
    to ``["CPUExecutionProvider"]``. ``allow_spinning=False`` stops the intra-op threads from
    busy-waiting between runs (lower latency is traded for CPU left to other work; ``None`` keeps
    onnxruntime's default, spinning on). ``optimized_model_filepath`` saves the optimised graph.
    onnxruntime's own log is limited to errors so that notebooks stay quiet.

    Example::

        >>> from course.bench import ort_session, session_threads
        >>> sess = ort_session("model.onnx", intra_op_threads=1)
        >>> session_threads(sess)["intra_op_threads"]
        1
    """
    import onnxruntime as ort

    if optimization_level not in OPT_LEVELS:
        raise ValueError(
            f"optimization_level must be one of {sorted(OPT_LEVELS)}, got {optimization_level!r}"
        )
    for label, value in (
        ("intra_op_threads", intra_op_threads),
        ("inter_op_threads", inter_op_threads),
    ):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ValueError(
                f"{label} must be a positive int or None (onnxruntime's default), got {value!r}"
            )
    providers = list(providers) if providers is not None else ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    missing = [p for p in providers if p not in available]
    if missing:
        raise ValueError(
            f"execution provider(s) {missing} are not available in this onnxruntime build; "
            f"available: {available}. Install the matching onnxruntime package "
            "(e.g. onnxruntime-gpu for CUDAExecutionProvider) or use CPUExecutionProvider."
        )
    so = ort.SessionOptions()
    so.log_severity_level = LOG_SEVERITY_ERRORS
    so.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, OPT_LEVELS[optimization_level]
    )
    if intra_op_threads is not None:
        so.intra_op_num_threads = intra_op_threads
    if inter_op_threads is not None:
        so.inter_op_num_threads = inter_op_threads
    if allow_spinning is not None:
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
    if optimized_model_filepath is not None:
        so.optimized_model_filepath = str(optimized_model_filepath)
    quiet_onnxruntime()
    return ort.InferenceSession(source(model), sess_options=so, providers=providers)


def quiet_onnxruntime() -> None:
    """Limit onnxruntime's process-wide default logger to errors (the quantization tools create
    sessions of their own, without options, whose warnings would otherwise reach stderr)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(LOG_SEVERITY_ERRORS)


def tile_batch(sample: np.ndarray, batch: int) -> np.ndarray:
    """``batch`` rows made by repeating the rows of ``sample`` (a leading batch axis).

    >>> tile_batch(np.arange(3), 5)
    array([0, 1, 2, 0, 1])
    """
    sample = np.asarray(sample)
    if sample.ndim == 0 or len(sample) == 0:
        raise ValueError(f"sample needs a leading batch axis with rows, got shape {sample.shape}")
    reps = -(-batch // len(sample))
    return np.ascontiguousarray(np.concatenate([sample] * reps, axis=0)[:batch])


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and, recursively, the bodies of If/Loop/Scan nodes."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from all_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from all_graphs(g)


def lift_constants(proto: onnx.ModelProto, *, min_elements: int = 2) -> tuple[onnx.ModelProto, int]:
    """A copy of the model with the main graph's ``Constant`` tensors of at least
    ``min_elements`` elements turned into initializers; returns ``(copy, how many)``.

    Exporters such as paddle2onnx and spox keep weights in Constant nodes; onnxruntime's
    quantization tools only quantize weights held as initializers.

    >>> from onnx import TensorProto, helper, numpy_helper
    >>> w = helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(
    ...     np.ones((3, 2), np.float32)))
    >>> g = helper.make_graph([w, helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    >>> lifted, n = lift_constants(helper.make_model(g))
    >>> n, [i.name for i in lifted.graph.initializer], [x.op_type for x in lifted.graph.node]
    (1, ['w'], ['MatMul'])
    """
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    keep, lifted = [], 0
    for node in out.graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None)
        if (
            node.op_type == "Constant"
            and node.domain in ("", "ai.onnx")
            and value is not None
            and value.type == onnx.AttributeProto.TENSOR
            and not value.t.data_location  # external data stays where it is
            and int(np.prod(value.t.dims, dtype=np.int64)) >= min_elements
        ):
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            out.graph.initializer.append(tensor)
            if out.ir_version < 4:  # before IR 4 every initializer is also a graph input
                out.graph.input.append(
                    onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
                )
            lifted += 1
        else:
            keep.append(node)
    if lifted:
        del out.graph.node[:]
        out.graph.node.extend(keep)
    return out, lifted
