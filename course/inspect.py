"""Look inside an ONNX model: a summary table, an operator histogram, a drawing, a text view.

The diagram is drawn with matplotlib only (no graphviz, no Netron), so it works on a fresh
``pip install`` and on Binder: nodes are laid out in layers by topological depth, each box
names its operator and the weights it holds, and edges carry tensor shapes where shape
inference knows them.

Example::

    from course import inspect
    inspect.summary("mlp.onnx")                 # a table in a notebook
    inspect.operator_histogram("mlp.onnx")      # {'Gemm': 3, 'Relu': 2}
    inspect.draw_graph("mlp.onnx")              # an inline SVG
    print(inspect.graph_text("mlp.onnx"))
"""

from __future__ import annotations

import html
import io
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from course import _model, figures
from course._model import dims as _dims
from course._model import graph_inputs as _graph_inputs
from course.palette import (
    BLACK,
    BLUE,
    DARK_GREY,
    GREEN,
    LIGHT_GREY,
    ORANGE,
    PURPLE,
    SKY,
    VERMILLION,
    WHITE,
    YELLOW,
)
from course.verify import load_model

__all__ = [
    "GraphDiagram",
    "ModelSummary",
    "TensorInfo",
    "count_parameters",
    "draw_graph",
    "graph_text",
    "operator_histogram",
    "summary",
]

# Okabe-Ito, by operator family
_PALETTE = {
    "input / output": ORANGE,
    "matrix / convolution": BLUE,
    "activation": GREEN,
    "elementwise": YELLOW,
    "shape / indexing": SKY,
    "pooling / normalisation": PURPLE,
    "ai.onnx.ml": VERMILLION,
    "other": LIGHT_GREY,
}
# fmt: off
_FAMILIES = {
    "matrix / convolution": {
        "MatMul", "Gemm", "Conv", "ConvTranspose", "MatMulInteger", "ConvInteger",
        "QLinearMatMul", "QLinearConv", "Einsum", "Attention",
    },
    "activation": {
        "Relu", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Gelu", "LeakyRelu", "Elu",
        "Selu", "Erf", "HardSigmoid", "Softplus", "PRelu", "HardSwish", "Mish", "Swish",
    },
    "elementwise": {
        "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal",
        "Clip", "Min", "Max", "Where", "Equal", "Greater", "Less", "Not", "And", "Or",
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
    },
    "shape / indexing": {
        "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice",
        "Gather", "GatherElements", "Shape", "Cast", "Expand", "Identity", "Constant",
        "ConstantOfShape", "Range", "Tile", "Pad", "ArgMax", "ArgMin", "TopK",
    },
    "pooling / normalisation": {
        "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization",
        "LayerNormalization", "InstanceNormalization", "GroupNormalization", "ReduceMean",
        "ReduceSum", "ReduceMax", "Dropout", "LpNormalization", "RMSNormalization",
    },
}
# fmt: on


def _family(node: onnx.NodeProto) -> str:
    if node.domain == "ai.onnx.ml":
        return "ai.onnx.ml"
    for family, ops in _FAMILIES.items():
        if node.op_type in ops:
            return family
    return "other"


# --------------------------------------------------------------------------------------------
# counting


_all_graphs = _model.all_graphs


def operator_histogram(model: Any) -> dict[str, int]:
    """How many nodes of each operator type the model has, most frequent first.

    Nodes inside If/Loop/Scan bodies count too; keys are the op types (``"Gemm"``,
    ``"LinearClassifier"``), whatever their domain.

    Example::

        operator_histogram(conversion.model)     # {'Gemm': 3, 'Relu': 2}
    """
    proto = load_model(model)
    counts = Counter(n.op_type for g in _all_graphs(proto.graph) for n in g.node)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _tensor_size(t: onnx.TensorProto) -> int:
    return int(np.prod(t.dims)) if len(t.dims) else 1


def count_parameters(model: Any) -> int:
    """The number of stored weight values in the model.

    Counts the elements of every initializer (sparse ones by their stored values), of
    ``Constant`` node tensors, and of the float lists in which ``ai.onnx.ml`` operators keep
    their weights (``LinearClassifier.coefficients``, tree thresholds...), in subgraphs too.
    Element counts come from the declared dims, so external data is not loaded.

    Example::

        count_parameters(conversion.model)       # 64*64+64 + 64*64+64 + 64*10+10 = 8970
    """
    proto = load_model(model)
    total = 0
    for g in _all_graphs(proto.graph):
        total += sum(_tensor_size(t) for t in g.initializer)
        total += sum(_tensor_size(s.values) for s in g.sparse_initializer)
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR and node.op_type == "Constant":
                    total += _tensor_size(attr.t)
                elif node.domain == "ai.onnx.ml" and attr.type == onnx.AttributeProto.FLOATS:
                    total += len(attr.floats)
    return total


# --------------------------------------------------------------------------------------------
# summary


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, element type and shape (str dims are symbolic)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...] | None

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.name}: {self.dtype}"
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


def _tensor_info(value: onnx.ValueInfoProto) -> TensorInfo:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return TensorInfo(value.name, kind or "unknown", None)
    elem = value.type.tensor_type.elem_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "unknown"
    if elem == onnx.TensorProto.STRING:
        dtype = "string"
    dims = _dims(value)
    return TensorInfo(value.name, dtype, tuple(dims) if dims is not None else None)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class ModelSummary:
    """What an ONNX model is, at a glance. Shows as tables in a notebook.

    Example::

        s = summary("mlp.onnx")
        s.parameters, s.opsets, s.size_bytes
        s.to_frame()             # property / value table
    """

    graph_name: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    ir_version: int
    opsets: dict[str, int]
    producer: str
    operators: dict[str, int]
    n_nodes: int
    n_initializers: int
    parameters: int
    size_bytes: int
    size_source: str
    extra: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        """(property, value) pairs, as shown by ``to_frame`` and the notebook display."""
        ops = ", ".join(f"{k} x{v}" for k, v in self.operators.items()) or "(none)"
        return [
            ("graph", self.graph_name),
            ("inputs", "; ".join(map(str, self.inputs)) or "(none)"),
            ("outputs", "; ".join(map(str, self.outputs)) or "(none)"),
            ("IR version", str(self.ir_version)),
            ("opsets", ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in self.opsets.items())),
            ("producer", self.producer or "(unknown)"),
            ("nodes", str(self.n_nodes)),
            ("operators", ops),
            ("initializers", str(self.n_initializers)),
            ("parameters", f"{self.parameters:,}"),
            (
                f"size ({self.size_source})",
                f"{_human_bytes(self.size_bytes)} ({self.size_bytes:,} bytes)",
            ),
        ]

    def to_frame(self) -> Any:
        """A two-column pandas DataFrame (property, value); needs pandas."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is in the course env
            raise ImportError("to_frame needs pandas: pip install pandas") from exc
        return pd.DataFrame(self.rows(), columns=["property", "value"])

    def __str__(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self.rows()
        )
        return f"<table>{body}</table>"


def _size_on_disk(model: Any, proto: onnx.ModelProto) -> tuple[int, str]:
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        total = path.stat().st_size
        locations = set()
        for g in _all_graphs(proto.graph):
            for t in g.initializer:
                if t.data_location == onnx.TensorProto.EXTERNAL:
                    locations.update(e.value for e in t.external_data if e.key == "location")
        for loc in locations:
            extra = path.parent / loc
            if extra.is_file():
                total += extra.stat().st_size
        return total, "file" if not locations else "file + external data"
    return proto.ByteSize(), "serialized"


def summary(model: Any) -> ModelSummary:
    """Inputs, outputs, IR version, opsets, operators, parameters and size of a model.

    Given a path, the size is the file's (plus its external data files, which are not loaded);
    otherwise the serialized size of the ModelProto.

    Example::

        summary(conversion)      # shows as a table in a notebook; print() gives text
    """
    if isinstance(model, (str, os.PathLike)) and Path(model).is_file():
        # weights stored as external data are counted from their dims, never loaded
        proto = onnx.load(model, load_external_data=False)
    else:
        proto = load_model(model)
    size, source = _size_on_disk(model, proto)
    producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p)
    return ModelSummary(
        graph_name=proto.graph.name,
        inputs=[_tensor_info(v) for v in _graph_inputs(proto)],
        outputs=[_tensor_info(v) for v in proto.graph.output],
        ir_version=int(proto.ir_version),
        opsets={o.domain: int(o.version) for o in proto.opset_import},
        producer=producer,
        operators=operator_histogram(proto),
        n_nodes=sum(len(g.node) for g in _all_graphs(proto.graph)),
        n_initializers=sum(len(g.initializer) for g in _all_graphs(proto.graph)),
        parameters=count_parameters(proto),
        size_bytes=int(size),
        size_source=source,
    )


# --------------------------------------------------------------------------------------------
# text view


def _shape_text(dims: Any) -> str:
    if dims is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _attr_text(attr: onnx.AttributeProto) -> str:
    A = onnx.AttributeProto
    if attr.type == A.GRAPH:
        return f"<graph {attr.g.name or ''} with {len(attr.g.node)} nodes>"
    if attr.type == A.GRAPHS:
        return f"<{len(attr.graphs)} graphs>"
    if attr.type == A.TENSOR:
        t = attr.t
        if _tensor_size(t) <= 8 and t.data_location != onnx.TensorProto.EXTERNAL:
            return str(onnx.numpy_helper.to_array(t).tolist())
        return f"<tensor {'x'.join(map(str, t.dims))}>"
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, (list, tuple)):
        items = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in value]
        shown = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in items[:6])
        return (
            f"[{shown}{', ...' if len(items) > 6 else ''}] ({len(items)})"
            if len(items) > 6
            else f"[{shown}]"
        )
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def _value_types(proto: onnx.ModelProto) -> dict[str, TensorInfo]:
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - drawing without shapes beats failing
        inferred = proto
    g = inferred.graph
    out = {}
    for v in [*g.input, *g.value_info, *g.output]:
        out[v.name] = _tensor_info(v)
    for t in g.initializer:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name if t.data_type else "?"
        out[t.name] = TensorInfo(t.name, dtype, tuple(int(d) for d in t.dims))
    return out


def graph_text(model: Any, max_nodes: int = 200, max_initializers: int = 20) -> str:
    """A readable text listing of the graph: inputs, weights, one line per node, outputs.

    Each node line reads ``[i] OpType(inputs) -> outputs {attributes}``, with the output
    tensors' types and shapes where shape inference knows them.

    Example::

        print(graph_text("mlp.onnx"))
        # [0] Gemm(input, fc1.weight, fc1.bias) -> linear: float32[batch, 64]  {transB=1}
    """
    proto = load_model(model)
    types = _value_types(proto)
    g = proto.graph
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
    lines = [f'graph "{g.name}"  (IR version {proto.ir_version}; opsets {opsets})', "inputs:"]
    lines += [f"  {_tensor_info(v)}" for v in _graph_inputs(proto)] or ["  (none)"]
    n_params = sum(_tensor_size(t) for t in g.initializer)
    lines.append(f"initializers: {len(g.initializer)} ({n_params:,} values)")
    for t in list(g.initializer)[:max_initializers]:
        lines.append(f"  {types[t.name]}")
    if len(g.initializer) > max_initializers:
        lines.append(f"  ... {len(g.initializer) - max_initializers} more")
    lines.append(f"nodes: {len(g.node)}")
    for i, node in enumerate(g.node):
        if i >= max_nodes:
            lines.append(f"  ... {len(g.node) - max_nodes} more nodes")
            break
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        outs = ", ".join(str(types[o]) if o in types else o for o in node.output)
        attrs = ", ".join(f"{a.name}={_attr_text(a)}" for a in node.attribute)
        line = f"  [{i}] {op}({', '.join(node.input)}) -> {outs}"
        lines.append(line + (f"  {{{attrs}}}" if attrs else ""))
    lines.append("outputs:")
    lines += [f"  {_tensor_info(v)}" for v in g.output] or ["  (none)"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# diagram


@dataclass
class GraphDiagram:
    """A drawing of an ONNX graph: shows inline as SVG in a notebook.

    Attributes:
        figure: the matplotlib Figure (not registered with pyplot, so it is not shown twice).
        svg: the SVG text.
        n_drawn, n_total: nodes drawn and nodes in the graph.

    Example::

        diagram = draw_graph("mlp.onnx")
        diagram.save("mlp.svg")      # or .png, any format matplotlib writes
    """

    figure: Any
    svg: str
    n_drawn: int
    n_total: int

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | Path, **kwargs: Any) -> Path:
        """Write the figure to ``path``; the format follows the suffix."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.figure.savefig(path, bbox_inches="tight", **kwargs)
        return path


@dataclass
class _Box:
    key: str
    label: str
    detail: str
    colour: str
    depth: int
    parents: list[str]
    x: float = 0.0


def _initializer_label(t: onnx.TensorProto) -> str:
    """Small integer constants (shapes, axes) by value, weights by their dims."""
    small_int = t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
    if small_int and _tensor_size(t) <= 4 and t.data_location != onnx.TensorProto.EXTERNAL:
        return str(onnx.numpy_helper.to_array(t).tolist())
    return "x".join(map(str, t.dims)) or "scalar"


def _weights_label(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> str:
    held = [inits[i] for i in node.input if i in inits]
    if not held:
        return ""
    if len(held) <= 2:
        return ", ".join(_initializer_label(t) for t in held)
    return f"{len(held)} weights, {sum(_tensor_size(t) for t in held):,} values"


def _layout(proto: onnx.ModelProto, max_nodes: int) -> tuple[list[_Box], int]:
    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    producer: dict[str, str] = {}
    boxes: dict[str, _Box] = {}
    for v in _graph_inputs(proto):
        key = f"in:{v.name}"
        boxes[key] = _Box(key, v.name, _shape_text(_dims(v)), _PALETTE["input / output"], 0, [])
        producer[v.name] = key
    nodes = list(g.node)[:max_nodes]
    for i, node in enumerate(nodes):
        key = f"node:{i}"
        parents = list(dict.fromkeys(producer[n] for n in node.input if n in producer))
        depth = 1 + max((boxes[p].depth for p in parents), default=0)
        subgraphs = sum(
            1 if a.type == onnx.AttributeProto.GRAPH else len(a.graphs)
            for a in node.attribute
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        )
        detail = _weights_label(node, inits)
        if subgraphs:
            detail = (detail + ", " if detail else "") + f"{subgraphs} subgraph(s)"
        boxes[key] = _Box(key, node.op_type, detail, _PALETTE[_family(node)], depth, parents)
        for out in node.output:
            if out:
                producer[out] = key
    for v in g.output:
        if v.name not in producer:
            continue  # produced by a node beyond max_nodes (or a graph input passed through)
        key = f"out:{v.name}"
        parent = producer[v.name]
        boxes[key] = _Box(
            key,
            v.name,
            _shape_text(_dims(v)),
            _PALETTE["input / output"],
            boxes[parent].depth + 1,
            [parent],
        )
    ordered = list(boxes.values())
    # x positions: layer by layer, ordered by the mean x of each box's parents (barycentre)
    layers: dict[int, list[_Box]] = {}
    for b in ordered:
        layers.setdefault(b.depth, []).append(b)
    for depth in sorted(layers):
        layer = layers[depth]
        if depth:
            layer.sort(key=lambda b: np.mean([boxes[p].x for p in b.parents]) if b.parents else 0.0)
        for i, b in enumerate(layer):
            b.x = i - (len(layer) - 1) / 2
    return ordered, max(len(v) for v in layers.values()) if layers else 1


def draw_graph(
    model: Any,
    max_nodes: int = 60,
    *,
    title: str | None = None,
    show_shapes: bool = True,
) -> GraphDiagram:
    """Draw the graph with matplotlib and return it as an inline SVG diagram.

    Boxes are placed in layers by topological depth (inputs on top, outputs at the bottom),
    labelled with the operator type and the shapes of the weights each node holds; colours
    group operator families (Okabe-Ito palette). Edges are labelled with tensor shapes where
    shape inference knows them. Graphs with more than ``max_nodes`` nodes are cut, and the
    drawing says how many nodes were left out. No graphviz needed.

    Example::

        draw_graph(conversion)              # displays inline in Jupyter
        draw_graph("big.onnx", max_nodes=30).save("big.svg")
    """
    if not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"max_nodes must be a positive int, got {max_nodes!r}")
    try:
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    except ImportError as exc:  # pragma: no cover - matplotlib is a core dependency
        raise ImportError("draw_graph needs matplotlib: pip install matplotlib") from exc
    proto = load_model(model)
    types = _value_types(proto) if show_shapes else {}
    boxes, width = _layout(proto, max_nodes)
    by_key = {b.key: b for b in boxes}
    n_total = len(proto.graph.node)
    n_drawn = min(n_total, max_nodes)
    depth = max((b.depth for b in boxes), default=0)

    x_gap, y_gap, box_w, box_h = 2.3, 1.25, 1.9, 0.62
    fig_w = min(16.0, max(4.5, 0.95 * x_gap * width + 1.0))
    fig_h = min(48.0, max(2.5, 0.62 * y_gap * (depth + 1) + 1.2))
    fig, ax = figures.figure((fig_w, fig_h))
    ax.set_axis_off()

    def centre(b: _Box) -> tuple[float, float]:
        return b.x * x_gap, -b.depth * y_gap

    used = set()
    for b in boxes:
        cx, cy = centre(b)
        used.add(b.colour)
        ax.add_patch(
            FancyBboxPatch(
                (cx - box_w / 2, cy - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor=b.colour,
                edgecolor=BLACK,
                linewidth=0.8,
                zorder=2,
            )
        )
        dark = b.colour == _PALETTE["matrix / convolution"]
        colour = WHITE if dark else BLACK
        label = b.label if len(b.label) <= 22 else b.label[:20] + "…"
        ax.text(
            cx,
            cy + (0.1 if b.detail else 0),
            label,
            ha="center",
            va="center",
            fontsize=8.5,
            fontweight="bold",
            color=colour,
            zorder=3,
        )
        if b.detail:
            detail = b.detail if len(b.detail) <= 28 else b.detail[:26] + "…"
            ax.text(
                cx,
                cy - 0.16,
                detail,
                ha="center",
                va="center",
                fontsize=6.5,
                color=colour,
                zorder=3,
            )
        for p in b.parents:
            px, py = centre(by_key[p])
            ax.add_patch(
                FancyArrowPatch(
                    (px, py - box_h / 2),
                    (cx, cy + box_h / 2),
                    arrowstyle="-|>",
                    mutation_scale=9,
                    color=DARK_GREY,
                    linewidth=0.8,
                    zorder=1,
                    shrinkA=1,
                    shrinkB=1,
                )
            )
            tensor = _edge_tensor(proto, by_key[p], b)
            info = types.get(tensor) if tensor else None
            if info is not None and info.shape is not None and not b.key.startswith("out:"):
                ax.text(
                    (px + cx) / 2,
                    (py + cy) / 2,
                    _shape_text(info.shape),
                    fontsize=6,
                    ha="center",
                    va="center",
                    color=BLACK,
                    zorder=4,
                    bbox={"boxstyle": "round,pad=0.1", "fc": WHITE, "ec": "none"},
                )

    xs = [centre(b)[0] for b in boxes] or [0.0]
    ax.set_xlim(min(xs) - box_w, max(xs) + box_w)
    ax.set_ylim(-depth * y_gap - box_h - (0.5 if n_drawn < n_total else 0.1), box_h)
    if n_drawn < n_total:
        ax.text(
            0.5,
            0.0,
            f"... {n_total - n_drawn} more nodes not drawn (max_nodes={max_nodes})",
            transform=ax.transAxes,
            ha="center",
            va="bottom",
            fontsize=8,
            style="italic",
        )
    params = count_parameters(proto)
    ax.set_title(
        title or f"{proto.graph.name or 'graph'}: {n_total} nodes, {params:,} parameters",
        fontsize=10,
    )
    handles = [
        Patch(facecolor=c, edgecolor=BLACK, label=name) for name, c in _PALETTE.items() if c in used
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=7,
        frameon=False,
        title="operator family",
        title_fontsize=7,
    )
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    return GraphDiagram(figure=fig, svg=buffer.getvalue(), n_drawn=n_drawn, n_total=n_total)


def _edge_tensor(proto: onnx.ModelProto, parent: _Box, child: _Box) -> str | None:
    """The name of the tensor flowing from ``parent`` to ``child``."""
    if parent.key.startswith("in:"):
        return parent.key[3:]
    outputs = set(proto.graph.node[int(parent.key.split(":")[1])].output)
    if child.key.startswith("out:"):
        return child.key[4:]
    node = proto.graph.node[int(child.key.split(":")[1])]
    return next((i for i in node.input if i in outputs), None)
