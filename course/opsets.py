"""Operator sets: schema history, tiny runnable examples, and what a runtime really accepts.

Everything here reads the ONNX operator schemas registered on *this* machine (``onnx.defs``) or
asks the installed ONNX Runtime, so the answers are measured, never quoted::

    from course import opsets
    opsets.operator_history("Squeeze")          # [1, 11, 13, 21, 23, 24, 25] with onnx 1.23
    ex = opsets.tiny_example("Squeeze", opset=11)
    print(ex.text())                            # the model, its input and its computed output
    opsets.probe_opsets().accepted               # opsets onnxruntime loads, e.g. 7 ... 28
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnx.defs
from onnx import TensorProto, helper, numpy_helper

from course import figures
from course.palette import BLACK, GREEN, ORANGE, PURPLE, VERMILLION

__all__ = [
    "OperatorNotAvailableError",
    "ProbeResult",
    "TinyExample",
    "latest_opset",
    "load_error",
    "operator_history",
    "operator_names",
    "probe_figure",
    "probe_ir_versions",
    "probe_opsets",
    "schema_at",
    "tiny_example",
]

ML_DOMAIN = "ai.onnx.ml"


class OperatorNotAvailableError(ValueError):
    """An operator has no schema at the requested opset (it came later, or never existed)."""


def _norm_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def latest_opset(domain: str = "") -> int:
    """The newest opset version of ``domain`` that the installed ``onnx`` package knows.

    >>> latest_opset("") >= 21 and latest_opset("ai.onnx.ml") >= 3
    True
    """
    versions = onnx.defs.C.schema_version_map()
    key = _norm_domain(domain)
    if key not in versions:
        raise ValueError(f"unknown operator domain {domain!r}; known domains: {sorted(versions)}")
    return int(versions[key][1])


def operator_names(domain: str = "") -> list[str]:
    """Every operator of ``domain`` registered in the installed ``onnx``, sorted by name.

    >>> "Relu" in operator_names() and "TreeEnsemble" in operator_names("ai.onnx.ml")
    True
    """
    key = _norm_domain(domain)
    return sorted({s.name for s in onnx.defs.get_all_schemas() if s.domain == key})


def operator_history(op_type: str, domain: str = "") -> list[int]:
    """The opset versions at which ``op_type`` was introduced or changed, ascending.

    >>> operator_history("Relu")[:3]
    [1, 6, 13]
    """
    key = _norm_domain(domain)
    versions = sorted(
        s.since_version
        for s in onnx.defs.get_all_schemas_with_history()
        if s.name == op_type and s.domain == key
    )
    if not versions:
        close = difflib.get_close_matches(op_type, operator_names(key), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        where = f"domain {domain!r}" if key else "the default domain ai.onnx"
        raise ValueError(f"no operator {op_type!r} in {where}{hint}")
    return versions


def schema_at(op_type: str, opset: int | None = None, domain: str = "") -> onnx.defs.OpSchema:
    """The schema of ``op_type`` in force at ``opset`` (default: the latest).

    Raises :class:`OperatorNotAvailableError` when the operator only appears in a later opset,
    naming the first opset that has it (the fix: raise the opset, or rewrite the operator).

    >>> schema_at("Squeeze", 18).since_version
    13
    """
    history = operator_history(op_type, domain)
    key = _norm_domain(domain)
    opset = latest_opset(key) if opset is None else int(opset)
    if opset < history[0]:
        raise OperatorNotAvailableError(
            f"{op_type} is not available at opset {opset} of {key or 'ai.onnx'}: it was "
            f"introduced in opset {history[0]}. Raise the opset to {history[0]} or more, "
            f"or rewrite {op_type} with older operators."
        )
    schema = onnx.defs.get_schema(op_type, opset, key)
    if schema.deprecated:
        raise OperatorNotAvailableError(
            f"{op_type} is deprecated from opset {schema.since_version} of {key or 'ai.onnx'} "
            f"(it exists in opsets {history[0]} to {schema.since_version - 1}); choose an opset "
            f"below {schema.since_version}, or use its replacement (see the operator's docs)."
        )
    return schema


# --------------------------------------------------------------------------------------------
# tiny runnable examples
# --------------------------------------------------------------------------------------------

_RNG_SEED = 0


def _f(*shape: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(_RNG_SEED + seed)
    return rng.normal(size=shape).round(2).astype(np.float32)


# op_type -> (data inputs by formal name, parameters by name). A parameter becomes a constant
# input when the schema in force has an input of that name, an attribute when it has an
# attribute of that name, and is left out otherwise: so one recipe follows an operator through
# its history (Squeeze's axes: an attribute up to opset 12, an input from 13). "_outputs" sets
# how many outputs a variadic output gets.
_RECIPES: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {
    ("", "MatMul"): ({"A": _f(2, 3), "B": _f(3, 2, seed=1)}, {}),
    ("", "Gemm"): (
        {"A": _f(2, 3), "B": _f(3, 2, seed=1), "C": _f(2, seed=2)},
        {"alpha": 1.0, "beta": 1.0},
    ),
    ("", "Conv"): ({"X": _f(1, 1, 4, 4), "W": _f(1, 1, 3, 3, seed=1)}, {"pads": [1, 1, 1, 1]}),
    ("", "MaxPool"): ({"X": _f(1, 1, 4, 4)}, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("", "AveragePool"): ({"X": _f(1, 1, 4, 4)}, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("", "Softmax"): ({"input": _f(2, 3)}, {"axis": 1}),
    ("", "LogSoftmax"): ({"input": _f(2, 3)}, {"axis": 1}),
    ("", "Reshape"): ({"data": _f(2, 3)}, {"shape": np.array([3, 2], dtype=np.int64)}),
    ("", "Transpose"): ({"data": _f(2, 3)}, {"perm": [1, 0]}),
    ("", "Flatten"): ({"input": _f(2, 1, 3)}, {"axis": 1}),
    ("", "Squeeze"): ({"data": _f(2, 1, 3)}, {"axes": np.array([1], dtype=np.int64)}),
    ("", "Unsqueeze"): ({"data": _f(2, 3)}, {"axes": np.array([0], dtype=np.int64)}),
    ("", "Concat"): ({"inputs": [_f(2, 3), _f(1, 3, seed=1)]}, {"axis": 0}),
    ("", "Sum"): ({"data_0": [_f(2, 3), _f(2, 3, seed=1)]}, {}),
    ("", "ReduceMean"): ({"data": _f(2, 3)}, {"axes": np.array([1], dtype=np.int64)}),
    ("", "ReduceSum"): ({"data": _f(2, 3)}, {"axes": np.array([1], dtype=np.int64)}),
    ("", "ReduceMax"): ({"data": _f(2, 3)}, {"axes": np.array([1], dtype=np.int64)}),
    ("", "ArgMax"): ({"data": _f(2, 3)}, {"axis": 1}),
    ("", "Cast"): ({"input": _f(2, 3)}, {"to": int(TensorProto.FLOAT16)}),
    ("", "Clip"): (
        {"input": _f(2, 3)},
        {"min": np.array(-0.5, dtype=np.float32), "max": np.array(0.5, dtype=np.float32)},
    ),
    ("", "Gather"): ({"data": _f(3, 2), "indices": np.array([2, 0], dtype=np.int64)}, {"axis": 0}),
    ("", "Where"): (
        {"condition": np.array([True, False, True]), "X": _f(3), "Y": _f(3, seed=1)},
        {},
    ),
    ("", "Slice"): (
        {"data": _f(2, 4)},
        {"starts": np.array([1], np.int64), "ends": np.array([3], np.int64), "axes": [1]},
    ),
    ("", "Split"): (
        {"input": _f(2, 4)},
        {"axis": 1, "split": np.array([1, 3], np.int64), "_outputs": 2},
    ),
    ("", "Constant"): ({}, {"value": numpy_helper.from_array(_f(2, 2))}),
    ("", "Expand"): ({"input": _f(1, 3)}, {"shape": np.array([2, 3], np.int64)}),
    ("", "Tile"): ({"input": _f(1, 3)}, {"repeats": np.array([2, 1], np.int64)}),
    ("", "Resize"): (
        {"X": _f(1, 1, 2, 2)},
        {"scales": np.array([1, 1, 2, 2], np.float32), "mode": "nearest"},
    ),
    ("", "Upsample"): (
        {"X": _f(1, 1, 2, 2)},
        {"scales": np.array([1, 1, 2, 2], np.float32), "mode": "nearest"},
    ),
    ("", "QuantizeLinear"): (
        {"x": _f(2, 3)},
        {"y_scale": np.array(0.01, np.float32), "y_zero_point": np.array(0, np.uint8)},
    ),
    ("", "DequantizeLinear"): (
        {"x": np.array([[0, 128, 255]], np.uint8)},
        {"x_scale": np.array(0.01, np.float32), "x_zero_point": np.array(128, np.uint8)},
    ),
    ("", "OneHot"): (
        {"indices": np.array([0, 2], np.int64)},
        {"depth": np.array(3, np.int64), "values": np.array([0.0, 1.0], np.float32)},
    ),
    ("", "CumSum"): ({"x": _f(2, 3)}, {"axis": np.array(1, np.int64)}),
    ("", "CumProd"): ({"x": _f(2, 3)}, {"axis": np.array(1, np.int64)}),
    ("", "SpaceToDepth"): ({"input": _f(1, 1, 2, 2)}, {"blocksize": 2}),
    ("", "DepthToSpace"): ({"input": _f(1, 4, 1, 1)}, {"blocksize": 2}),
    ("", "Einsum"): ({"Inputs": [_f(2, 3), _f(3, 2, seed=1)]}, {"equation": "ij,jk->ik"}),
    ("", "Range"): (
        {},
        {
            "start": np.array(0.0, np.float32),
            "limit": np.array(3.0, np.float32),
            "delta": np.array(0.5, np.float32),
        },
    ),
    ("", "ConstantOfShape"): ({"input": np.array([2, 3], np.int64)}, {}),
    ("", "GlobalAveragePool"): ({"X": _f(1, 2, 2, 2)}, {}),
    ("", "GlobalMaxPool"): ({"X": _f(1, 2, 2, 2)}, {}),
    ("", "InstanceNormalization"): (
        {"input": _f(1, 2, 3), "scale": np.ones(2, np.float32), "B": np.zeros(2, np.float32)},
        {},
    ),
    ("", "Pad"): ({"data": _f(2, 2)}, {"pads": np.array([0, 1, 0, 1], np.int64)}),
    ("", "TopK"): ({"X": _f(2, 4)}, {"K": np.array([2], np.int64), "k": 2}),
    ("", "Shape"): ({"data": _f(2, 3)}, {}),
    ("", "LayerNormalization"): ({"X": _f(2, 3), "Scale": np.ones(3, np.float32)}, {}),
    ("", "BatchNormalization"): (
        {
            "X": _f(2, 2, 2),
            "scale": np.ones(2, np.float32),
            "B": np.zeros(2, np.float32),
            "mean": np.zeros(2, np.float32),  # the formal names up to opset 14 ...
            "var": np.ones(2, np.float32),
            "input_mean": np.zeros(2, np.float32),  # ... and from opset 15
            "input_var": np.ones(2, np.float32),
        },
        {},
    ),
    ("", "Dropout"): ({"data": _f(2, 3)}, {}),
    ("", "LeakyRelu"): ({"X": _f(2, 3)}, {"alpha": 0.1}),
    ("", "Gelu"): ({"X": _f(2, 3)}, {}),
    (ML_DOMAIN, "Scaler"): ({"X": _f(2, 3)}, {"offset": [0.0, 1.0, 2.0], "scale": [2.0, 1, 1]}),
    (ML_DOMAIN, "Normalizer"): ({"X": _f(2, 3)}, {"norm": "L2"}),
    (ML_DOMAIN, "Binarizer"): ({"X": _f(2, 3)}, {"threshold": 0.0}),
    (ML_DOMAIN, "LabelEncoder"): (
        {"X": np.array(["cat", "dog", "emu"], dtype=object)},
        {"keys_strings": ["cat", "dog"], "values_int64s": [0, 1], "default_int64": -1},
    ),
}


@dataclass
class TinyExample:
    """A one-node model built for an operator at an opset, with its inputs and computed outputs.

    ``runtime`` says which engine computed ``outputs`` ("onnxruntime", or "onnx.reference" when
    onnxruntime had no kernel, which ``note`` then explains).
    """

    op_type: str
    opset: int
    domain: str
    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    runtime: str
    note: str = ""

    def text(self) -> str:
        """The model in ONNX's text syntax, then each input and output with its values."""
        lines = [onnx.printer.to_text(self.model.graph)]
        for kind, arrays in (("input", self.inputs), ("output", self.outputs)):
            for name, value in arrays.items():
                arr = np.asarray(value)
                shown = np.array2string(arr, precision=3, separator=", ", threshold=24)
                lines.append(f"{kind} {name} {arr.dtype}{list(arr.shape)} = {shown}")
        lines.append(f"computed by {self.runtime}" + (f" ({self.note})" if self.note else ""))
        return "\n".join(lines)


_GENERIC_TYPES = {
    "tensor(float)": lambda k: _f(2, 3) + k,
    "tensor(bool)": lambda k: np.array([[True, False, True], [False, False, True]]) ^ bool(k),
    "tensor(int64)": lambda k: np.arange(6, dtype=np.int64).reshape(2, 3) + k,
}


def _generic_recipe(schema: onnx.defs.OpSchema) -> tuple[dict[str, Any], dict[str, Any]]:
    """Inputs of shape (2, 3) (float32, else bool, else int64) for operators whose required
    inputs all accept one of those types and that need no attribute."""
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    missing_attrs = [n for n, a in schema.attributes.items() if a.required]
    data: dict[str, Any] = {}
    for k, formal in enumerate(schema.inputs):
        if formal.option == onnx.defs.OpSchema.FormalParameterOption.Optional:
            continue
        types = allowed.get(formal.type_str, {formal.type_str})
        usable = [t for t in _GENERIC_TYPES if t in types]
        if not usable or missing_attrs:
            raise ValueError(
                f"no tiny example for {schema.name}: it needs "
                + (f"attributes {missing_attrs}" if missing_attrs else f"{formal.name}: {types}")
                + f". Operators with a ready example: {sorted(n for _, n in _RECIPES)}, and "
                "elementwise operators on float, bool or int64 tensors (Abs, Add, And, ...)."
            )
        make = _GENERIC_TYPES[usable[0]]
        data[formal.name] = [make(k), make(k + 1)] if _is_variadic(formal) else make(k)
    return data, {}


def _min_ir_version(imports: list[onnx.OperatorSetIdProto]) -> int:
    """The lowest IR version that can carry these opsets (opsets skipped by every onnx release,
    such as 2 and 4, take the IR version of the next release that has a larger opset)."""
    wanted = {_norm_domain(i.domain): i.version for i in imports}
    column = {"": 2, ML_DOMAIN: 3}
    candidates = [
        row[1]
        for row in helper.VERSION_TABLE
        if all(row[column.get(d, 2)] >= v for d, v in wanted.items())
    ]
    return min(candidates) if candidates else onnx.IR_VERSION


def _is_variadic(formal: onnx.defs.OpSchema.FormalParameter) -> bool:
    return formal.option == onnx.defs.OpSchema.FormalParameterOption.Variadic


def _attribute(name: str, value: Any) -> onnx.AttributeProto:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return helper.make_attribute(name, value)


def _build(
    schema: onnx.defs.OpSchema, opset: int, key: str, data: dict, params: dict
) -> tuple[onnx.ModelProto, dict[str, np.ndarray], list[str]]:
    """The one-node model for a recipe, checked; its feeds; its output names."""
    op_type = schema.name
    graph_inputs, initializers, node_inputs, feeds = [], [], [], {}
    for formal in schema.inputs:
        if formal.name in data:
            values = data[formal.name]
            group = values if _is_variadic(formal) else [values]
            for k, arr in enumerate(group):
                name = f"{formal.name}_{k}" if _is_variadic(formal) else formal.name
                arr = np.asarray(arr)
                elem = (
                    TensorProto.STRING
                    if arr.dtype == object
                    else helper.np_dtype_to_tensor_dtype(arr.dtype)
                )
                graph_inputs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
                feeds[name] = arr
                node_inputs.append(name)
        elif formal.name in params and isinstance(params[formal.name], np.ndarray):
            initializers.append(numpy_helper.from_array(params[formal.name], formal.name))
            node_inputs.append(formal.name)
        else:
            node_inputs.append("")  # an optional input left out
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()

    attributes = {
        name: value
        for name, value in params.items()
        if name in schema.attributes and name not in node_inputs
    }
    outputs: list[str] = []
    for formal in schema.outputs:
        if _is_variadic(formal):
            outputs += [f"{formal.name}_{k}" for k in range(params.get("_outputs", 1))]
        elif formal.option != onnx.defs.OpSchema.FormalParameterOption.Optional:
            outputs.append(formal.name)
    outputs = outputs or [schema.outputs[0].name]
    node = helper.make_node(op_type, node_inputs, outputs, domain=key)
    node.attribute.extend(_attribute(n, v) for n, v in attributes.items())
    imports = [helper.make_opsetid(key, opset)]
    if key:
        imports.insert(0, helper.make_opsetid("", latest_opset("")))
    graph = helper.make_graph(
        [node],
        f"{op_type.lower()}_example",
        graph_inputs,
        [onnx.ValueInfoProto(name=o) for o in outputs],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=imports, ir_version=_min_ir_version(imports))
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    untyped = [o for o in model.graph.output if o.type.WhichOneof("value") is None]
    if untyped:  # the oldest schemas have no type inference: type the outputs from a real run
        from onnx.reference import ReferenceEvaluator

        computed = ReferenceEvaluator(model).run(None, feeds)
        by_name = dict(zip(outputs, computed, strict=True))
        for out in untyped:
            arr = np.asarray(by_name[out.name])
            out.CopyFrom(
                helper.make_tensor_value_info(
                    out.name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape)
                )
            )
    onnx.checker.check_model(model, full_check=True)
    return model, feeds, outputs


def tiny_example(op_type: str, opset: int | None = None, domain: str = "") -> TinyExample:
    """Build a one-node model of ``op_type`` at ``opset`` and run it.

    The node is built from the schema in force at that opset, so the example shows how the
    operator's signature moved (``Squeeze`` takes ``axes`` as an attribute at opset 11 and as an
    input from 13). Outputs come from onnxruntime, or from ``onnx.reference`` when onnxruntime
    has no kernel at that opset (it supports opsets from 7 on).

    >>> ex = tiny_example("Relu", opset=14)
    >>> bool((ex.outputs["Y"] >= 0).all())
    True
    """
    key = _norm_domain(domain)
    schema = schema_at(op_type, opset, key)
    opset = latest_opset(key) if opset is None else int(opset)
    recipe = _RECIPES.get((key, op_type))
    try:
        model, feeds, outputs = _build(schema, opset, key, *(recipe or _generic_recipe(schema)))
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        if recipe:
            raise
        first_line = str(exc).strip().splitlines()[0][:200]
        raise ValueError(
            f"no tiny example for {op_type}: generic (2, 3) inputs do not fit it ({first_line})"
        ) from exc

    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4  # a refusal is reported in ``note``, not on stderr
        run_options = ort.RunOptions()
        run_options.log_severity_level = 4
        session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        results = session.run(None, feeds, run_options)
        runtime, note = "onnxruntime", ""
    except Exception as exc:  # no kernel at this opset: fall back to the reference evaluator
        from onnx.reference import ReferenceEvaluator

        results = ReferenceEvaluator(model).run(None, feeds)
        first_line = str(exc).strip().splitlines()[0][:160]
        runtime, note = "onnx.reference", f"onnxruntime refused it: {first_line}"
    return TinyExample(
        op_type,
        opset,
        key,
        model,
        feeds,
        dict(zip(outputs, (np.asarray(r) for r in results), strict=True)),
        runtime,
        note,
    )


# --------------------------------------------------------------------------------------------
# what the installed runtime accepts, measured
# --------------------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    """Outcome of loading one tiny model per version: ``outcomes[version]`` is "accepted" or the
    runtime's reason, shortened; ``messages`` keeps the runtime's full first line."""

    what: str  # "opset ai.onnx", "opset ai.onnx.ml" or "ir_version"
    outcomes: dict[int, str]
    messages: dict[int, str] = field(default_factory=dict)

    @property
    def accepted(self) -> list[int]:
        return [v for v, outcome in self.outcomes.items() if outcome == "accepted"]

    @property
    def accepted_range(self) -> tuple[int, int] | None:
        """(lowest, highest) accepted version, or None when nothing loaded."""
        ok = self.accepted
        return (min(ok), max(ok)) if ok else None

    def to_frame(self):
        """The outcomes as a pandas DataFrame (one row per version)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "version": list(self.outcomes),
                "outcome": list(self.outcomes.values()),
                "runtime says": [self.messages.get(v, "") for v in self.outcomes],
            }
        ).set_index("version")


def _classify(message: str) -> str:
    lowered = message.lower()
    if "unsupported model ir version" in lowered:
        return "IR version too new"
    if "ir version" in lowered or "ir_version" in lowered:
        return "IR version rejected"
    if "under development" in lowered or "official support for domain" in lowered:
        return "opset too new"
    if "could not find an implementation" in lowered or "not_implemented" in lowered:
        return "no kernel at this opset"
    return "rejected"


def load_error(model: onnx.ModelProto | bytes) -> str:
    """Why onnxruntime refuses to load ``model``, or "" when it loads.

    The message is onnxruntime's own, from its key sentence on (the C++ source location in
    front of it is dropped), so it reads "Unsupported model IR version: 15, max supported IR
    version: 14" rather than a stack of template names.

    >>> load_error(tiny_example("Relu", 14).model)
    ''
    """
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()

    options = ort.SessionOptions()
    options.log_severity_level = 4  # the probe's own failures are the data, not news
    try:
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(exc).strip())
        markers = (
            "Unsupported model",
            "ONNX Runtime only",
            "Could not find",
            "External data",
            "This is an invalid model",
        )
        for marker in markers:
            if marker in text:
                return text[text.index(marker) :].strip()
        return text
    return ""


def _probe_model(domain: str, opset: int, ir_version: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    if domain == ML_DOMAIN:
        node = helper.make_node("Binarizer", ["x"], ["y"], domain=ML_DOMAIN, threshold=0.0)
        imports = [helper.make_opsetid("", 13), helper.make_opsetid(ML_DOMAIN, opset)]
    else:
        node = helper.make_node("Add", ["x", "x"], ["y"])
        imports = [helper.make_opsetid("", opset)]
    graph = helper.make_graph([node], "probe", [x], [y])
    return helper.make_model(graph, opset_imports=imports, ir_version=ir_version)


def probe_opsets(domain: str = "", versions: Iterable[int] | None = None) -> ProbeResult:
    """Load a one-node model stamped with each opset of ``domain`` into onnxruntime.

    The model is ``Add`` for ai.onnx and ``Binarizer`` for ai.onnx.ml (both exist from opset 1),
    stamped with IR version 7 so that only the opset varies. Default versions: 1 to two past the
    newest opset the installed onnx knows.

    >>> probe_opsets(versions=[13]).accepted
    [13]
    """
    key = _norm_domain(domain)
    if key not in ("", ML_DOMAIN):
        raise ValueError(f"probe_opsets supports ai.onnx ('') and {ML_DOMAIN}, got {domain!r}")
    versions = list(range(1, latest_opset(key) + 3) if versions is None else versions)
    outcomes, messages = {}, {}
    for v in versions:
        message = load_error(_probe_model(key, int(v), ir_version=7))
        outcomes[int(v)] = _classify(message) if message else "accepted"
        messages[int(v)] = message[:500]
    return ProbeResult(f"opset {key or 'ai.onnx'}", outcomes, messages)


def probe_ir_versions(versions: Iterable[int] | None = None, opset: int = 7) -> ProbeResult:
    """Load a one-node ``Add`` model (ai.onnx opset ``opset``) stamped with each IR version.

    Default versions: 1 to two past the newest IR version the installed onnx writes.

    >>> probe_ir_versions(versions=[7]).accepted
    [7]
    """
    versions = list(range(1, onnx.IR_VERSION + 3) if versions is None else versions)
    outcomes, messages = {}, {}
    for v in versions:
        message = load_error(_probe_model("", opset, ir_version=int(v)))
        outcomes[int(v)] = _classify(message) if message else "accepted"
        messages[int(v)] = message[:500]
    return ProbeResult("ir_version", outcomes, messages)


_OUTCOME_COLOURS = {  # Okabe-Ito
    "accepted": GREEN,
    "no kernel at this opset": ORANGE,
    "opset too new": VERMILLION,
    "IR version too new": VERMILLION,
    "IR version rejected": PURPLE,
    "rejected": BLACK,
}


def probe_figure(*probes: ProbeResult, title: str | None = None):
    """One row of coloured cells per probe: which versions the runtime loaded, and why not.

    >>> fig = probe_figure(probe_opsets(versions=[7, 8]))
    >>> fig.axes[0].get_xlabel()
    'version number'
    """
    if not probes:
        raise ValueError("probe_figure needs at least one ProbeResult (from probe_opsets(...))")
    from matplotlib.patches import Patch, Rectangle

    fig, ax = figures.figure((11, 0.9 + 0.75 * len(probes)))
    seen: dict[str, str] = {}
    highest = 1
    for row, probe in enumerate(probes):
        for version, outcome in probe.outcomes.items():
            colour = _OUTCOME_COLOURS.get(outcome, BLACK)
            seen.setdefault(outcome, colour)
            highest = max(highest, version)
            ax.add_patch(Rectangle((version - 0.45, row - 0.35), 0.9, 0.7, facecolor=colour, lw=0))
    ax.set_xlim(0.3, highest + 0.7)
    ax.set_ylim(-0.6, len(probes) - 0.4)
    ax.set_yticks(range(len(probes)), [p.what for p in probes])
    ax.set_xticks(range(1, highest + 1))
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("version number")
    ax.invert_yaxis()
    by_colour: dict[str, list[str]] = {}
    for outcome, colour in seen.items():
        by_colour.setdefault(colour, []).append(outcome)
    figures.legend_below(
        ax,
        [Patch(facecolor=c, label=" / ".join(o)) for c, o in by_colour.items()],
        offset=-0.45 if len(probes) < 3 else -0.3,
        ncol=len(by_colour),
        fontsize=8.5,
    )
    ax.set_title(title or "What the installed onnxruntime loads (measured)")
    return figures.finish(fig)
