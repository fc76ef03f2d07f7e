"""The anatomy of an ONNX file: its protobuf fields on the wire, and a diagram of its structure.

An ``.onnx`` file is one serialized ``onnx.ModelProto`` protobuf message. These helpers make the
structure visible for a real model::

    from course import anatomy
    fields = anatomy.wire_fields(model.SerializeToString())   # the top-level fields, in order
    anatomy.structure_figure(model)                           # nested boxes, counts from model
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import onnx
from onnx import helper

from course import figures
from course.palette import BLACK, BLUE, GREEN, ORANGE, PURPLE, SKY

__all__ = ["WireField", "structure_figure", "wire_fields"]

_WIRE_TYPES = {0: "varint", 1: "64-bit", 2: "length-delimited", 5: "32-bit"}
# Okabe-Ito, colour-blind safe
_COLOURS = {
    "ModelProto": BLUE,
    "GraphProto": GREEN,
    "NodeProto": ORANGE,
    "TensorProto": PURPLE,
    "ValueInfoProto": SKY,
}


@dataclass(frozen=True)
class WireField:
    """One top-level field as it sits in the serialized bytes."""

    number: int  # the field number declared in onnx.proto
    name: str  # the field name, or "unknown" for a number the message does not declare
    wire_type: str  # "varint", "64-bit", "length-delimited" or "32-bit"
    offset: int  # where the field's key starts, in bytes from the start
    size: int  # bytes taken by the field, key included


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint: the bytes end inside a number")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError(f"varint longer than 10 bytes at offset {pos}: not protobuf")


def wire_fields(data: bytes, message_type: type = onnx.ModelProto) -> list[WireField]:
    """Walk the top level of a serialized protobuf message and list its fields in order.

    ``data`` is what ``model.SerializeToString()`` returns (or an ``.onnx`` file's bytes). Field
    names come from ``message_type``'s descriptor, so this also reads a serialized
    ``GraphProto`` or ``TensorProto`` when told so. Raises ``ValueError`` when the bytes are not
    a protobuf message (for example a text or zip file given by mistake).

    >>> m = onnx.ModelProto(ir_version=8, producer_name="me")
    >>> [(f.number, f.name, f.wire_type) for f in wire_fields(m.SerializeToString())]
    [(1, 'ir_version', 'varint'), (2, 'producer_name', 'length-delimited')]
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(
            f"wire_fields expects bytes, got {type(data).__name__}; "
            "pass model.SerializeToString() or Path(file).read_bytes()"
        )
    data = bytes(data)
    by_number = message_type.DESCRIPTOR.fields_by_number
    fields, pos = [], 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0 or wire not in _WIRE_TYPES:
            raise ValueError(
                f"byte {start}: key {key} (field {number}, wire type {wire}) is not valid "
                f"protobuf for {message_type.__name__}: is this really an ONNX model file?"
            )
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            length, pos = _varint(data, pos)
            pos += length
        if pos > len(data):
            raise ValueError(f"field {number} at byte {start} runs past the end of the data")
        name = by_number[number].name if number in by_number else "unknown"
        fields.append(WireField(number, name, _WIRE_TYPES[wire], start, pos - start))
    return fields


def _dtype_name(elem_type: int) -> str:
    if elem_type == 0:
        return "UNDEFINED (0)"
    return f"{helper.tensor_dtype_to_string(elem_type).removeprefix('TensorProto.')} ({elem_type})"


def _shape_text(value_info: onnx.ValueInfoProto) -> str:
    if not value_info.type.HasField("tensor_type"):
        return value_info.type.WhichOneof("value") or "untyped"
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(
            str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
        )  # "?" : a dimension with neither a value nor a name
    return "[" + ", ".join(dims) + "]"


def _data_line(tensor: onnx.TensorProto) -> str:
    """Which field holds a tensor's values, and how big it is."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        where = {e.key: e.value for e in tensor.external_data}
        return f"data: EXTERNAL in {where.get('location', '?')}"
    if tensor.raw_data:
        return f"raw_data: {len(tensor.raw_data)} bytes"
    for name in ("float_data", "int32_data", "int64_data", "double_data", "string_data"):
        values = getattr(tensor, name)
        if len(values):
            return f"{name} × {len(values)}"
    return "data: (empty)"


def _short(items: Any, limit: int = 3) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


def _box(ax, x, y, w, h, kind: str, title: str, lines: list[str], fill: float = 0.12) -> None:
    from matplotlib.colors import to_rgba
    from matplotlib.patches import FancyBboxPatch

    colour = _COLOURS[kind]
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.2,rounding_size=1.2",
            linewidth=2,
            edgecolor=colour,
            facecolor=to_rgba(colour, fill),
        )
    )
    ax.text(x + 1, y + h - 1.2, title, fontsize=10.5, fontweight="bold", va="top", color=BLACK)
    for k, line in enumerate(lines):
        ax.text(x + 1.2, y + h - 5.2 - 3.1 * k, line, fontsize=8.8, va="top", family="monospace")


def structure_figure(model: onnx.ModelProto, *, title: str | None = None):
    """Draw the nesting of a ModelProto with the counts and first entries of ``model``.

    ModelProto holds the graph (GraphProto), which holds the nodes (NodeProto), the weights
    (initializers, TensorProto) and the typed inputs, outputs and value_info (ValueInfoProto).
    Returns the matplotlib Figure (shown inline by Jupyter).

    >>> fig = structure_figure(onnx.ModelProto(ir_version=8))
    >>> type(fig).__name__
    'Figure'
    """
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(
            f"structure_figure expects an onnx.ModelProto, got {type(model).__name__}; "
            "load a file first with onnx.load(path)"
        )
    from matplotlib.patches import Patch

    g = model.graph
    opsets = ", ".join(f"{i.domain or 'ai.onnx'} {i.version}" for i in model.opset_import)
    producer = f"{model.producer_name} {model.producer_version}".strip() or "(empty)"
    fig, ax = figures.figure((11, 6.6))
    ax.set_xlim(0, 100)
    ax.set_ylim(-7, 68)
    ax.axis("off")
    _box(
        ax,
        1,
        1,
        98,
        66,
        "ModelProto",
        "ModelProto: the whole file",
        [
            f"ir_version: {model.ir_version}",
            f"producer: {producer[:22]}",
            f"opset_import × {len(model.opset_import)}:",
            f"  {opsets[:24]}",
            f"metadata_props × {len(model.metadata_props)}",
            f"functions × {len(model.functions)}",
            "  (FunctionProto)",
            f"model_version: {model.model_version}",
            f"domain: {model.domain or '(empty)'}",
            "doc_string",
            "graph ──────────────►",
        ],
        fill=0.05,
    )
    _box(
        ax,
        31,
        3,
        66,
        58,
        "GraphProto",
        f"GraphProto '{g.name}'",
        [],
        fill=0.06,
    )
    node = g.node[0] if g.node else onnx.NodeProto()
    _box(
        ax,
        33,
        30,
        30,
        25,
        "NodeProto",
        f"node × {len(g.node)}: NodeProto",
        [
            f"op_type: {node.op_type or '-'}",
            f"domain: {node.domain or '(ai.onnx)'}",
            f"input: {_short(node.input, 2)}",
            f"output: {_short(node.output, 2)}",
            f"attribute × {len(node.attribute)}:",
            f"  {_short([a.name for a in node.attribute], 2)}",
        ],
    )
    init = g.initializer[0] if g.initializer else onnx.TensorProto()
    data_line = _data_line(init)
    _box(
        ax,
        65,
        30,
        30,
        25,
        "TensorProto",
        f"initializer × {len(g.initializer)}: TensorProto",
        [
            f"name: {init.name or '-'}",
            f"data_type: {_dtype_name(init.data_type)}",
            f"dims: {list(init.dims)}",
            data_line,
        ],
    )
    first = (list(g.input) + list(g.output) + [onnx.ValueInfoProto()])[0]
    elem = first.type.tensor_type.elem_type if first.type.HasField("tensor_type") else 0
    _box(
        ax,
        33,
        5,
        62,
        20,
        "ValueInfoProto",
        f"input × {len(g.input)}, output × {len(g.output)}, "
        f"value_info × {len(g.value_info)}: ValueInfoProto",
        [
            f"name: {first.name or '-'}",
            f"type.tensor_type.elem_type: {_dtype_name(elem)}",
            f"type.tensor_type.shape: {_shape_text(first)}",
        ],
    )
    ax.legend(
        handles=[Patch(facecolor=c, label=k) for k, c in _COLOURS.items()],
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=5,
        fontsize=9,
        title="protobuf message types (field × count = repeated field, counted in this model)",
        title_fontsize=9,
        frameon=False,
    )
    ax.set_title(title or "Structure of an ONNX ModelProto", fontsize=12)
    figures.finish(fig)
    return fig
