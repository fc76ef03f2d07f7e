"""ipywidgets building blocks the lessons share, each a thin shell over a plain function.

Every explorer calls a plain function (testable without a browser) and shows what it returns
(text, a DataFrame, a matplotlib figure, or anything with an HTML representation) in an HTML
pane::

    from course import widgets
    widgets.explorer(lambda n: f"{n} squared is {n * n}", n=(0, 10))
    widgets.operator_explorer("Squeeze")                  # over operator_info(op_type, opset)
    widgets.quantization_explorer(model, (X_test, y_test), calibration=X_train[:200])
    widgets.batch_explorer(model, X_test[:8])             # latency and throughput per batch size

In a notebook, end the cell with the explorer so it displays; also call the plain function once
(``operator_info``, ``run_quantization``, ``batch_view``) so a static copy of the notebook shows
a result.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as W
import numpy as np
import onnx

from course import bench, opsets, quantize

__all__ = [
    "Explorer",
    "batch_explorer",
    "batch_view",
    "explorer",
    "format_operator_info",
    "operator_explorer",
    "operator_info",
    "quantization_explorer",
    "render_html",
    "run_quantization",
]

QUANTIZATION_METHODS = ("dynamic int8", "static int8", "float16")


# --------------------------------------------------------------------------- rendering


def _figure_html(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="figure"/>'


def render_html(result: Any) -> str:
    """HTML for what an update function returned: text, DataFrame, figure, or a list of them.

    Strings are shown as preformatted text, matplotlib figures as PNG images, objects with
    ``_repr_html_`` (DataFrames, reports) with it, lists and tuples one item after another.

    Example::

        >>> render_html("a < b")
        '<pre>a &lt; b</pre>'
    """
    if result is None:
        return ""
    if isinstance(result, str):
        return f"<pre>{html.escape(result)}</pre>"
    if isinstance(result, (list, tuple)):
        return "".join(render_html(item) for item in result)
    if hasattr(result, "savefig"):
        return _figure_html(result)
    if hasattr(result, "_repr_html_"):
        return result._repr_html_()
    return f"<pre>{html.escape(repr(result))}</pre>"


# --------------------------------------------------------------------------- generic explorer


def _control(name: str, spec: Any) -> W.ValueWidget:
    desc = name.replace("_", " ")
    if isinstance(spec, W.ValueWidget):
        return spec
    if isinstance(spec, bool):
        return W.Checkbox(value=spec, description=desc)
    if isinstance(spec, str):
        return W.Text(value=spec, description=desc, continuous_update=False)
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"control {name!r}: an empty list has nothing to choose from")
        return W.Dropdown(options=spec, value=spec[0], description=desc)
    if (
        isinstance(spec, tuple)
        and len(spec) in (2, 3)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)
    ):
        low, high = spec[0], spec[1]
        if low >= high:
            raise ValueError(f"control {name!r}: slider needs min < max, got {spec}")
        if all(isinstance(v, int) for v in spec):
            step = spec[2] if len(spec) == 3 else 1
            return W.IntSlider(
                min=low, max=high, step=step, value=low, description=desc, continuous_update=False
            )
        step = spec[2] if len(spec) == 3 else (high - low) / 100
        return W.FloatSlider(
            min=low, max=high, step=step, value=low, description=desc, continuous_update=False
        )
    if isinstance(spec, int) and not isinstance(spec, bool):
        return W.IntText(value=spec, description=desc)
    if isinstance(spec, float):
        return W.FloatText(value=spec, description=desc)
    raise TypeError(
        f"control {name!r}: cannot build a widget from {spec!r}; use a bool, str, list of options, "
        "(min, max[, step]) tuple, int, float, or an ipywidgets value widget"
    )


class Explorer(W.VBox):
    """Controls above an HTML pane; every change calls ``update(**values)`` and shows the result.

    ``controls`` maps names to widgets, ``output`` is the HTML pane, ``result`` the last value
    returned and ``error`` the last exception (shown in the pane instead of being raised, so a
    bad combination of settings does not break the notebook).
    """

    def __init__(
        self,
        update: Callable[..., Any],
        controls: dict[str, W.ValueWidget],
        *,
        title: str | None = None,
        run_now: bool = True,
    ):
        self.update = update
        self.controls = controls
        self.output = W.HTML(value="")
        self.result: Any = None
        self.error: Exception | None = None
        children: list[W.Widget] = []
        if title:
            children.append(W.HTML(f"<b>{html.escape(title)}</b>"))
        children += [
            W.HBox(list(controls.values()), layout=W.Layout(flex_flow="row wrap")),
            self.output,
        ]
        super().__init__(children=children)
        for control in controls.values():
            control.observe(self._on_change, names="value")
        if run_now:
            self.refresh()

    def values(self) -> dict[str, Any]:
        """The controls' current values, as passed to ``update``."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self) -> Any:
        """Call ``update`` with the current values and show the result (or the error)."""
        try:
            self.result = self.update(**self.values())
            self.error = None
            self.output.value = render_html(self.result)
        except Exception as exc:  # shown to the learner, kept for inspection
            self.error = exc
            self.output.value = (
                f"<pre style='color:{bench.OKABE_ITO[3]}'>"
                f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</pre>"
            )
        return self.result

    def _on_change(self, change: dict[str, Any]) -> None:
        self.refresh()


def explorer(
    update: Callable[..., Any], *, title: str | None = None, run_now: bool = True, **controls: Any
) -> Explorer:
    """Wire ipywidgets controls to a plain function and show what it returns.

    Each keyword becomes a control passed to ``update`` under that name: a widget as given,
    ``bool`` -> checkbox, ``str`` -> text box, ``list`` -> dropdown, ``(min, max[, step])`` ->
    slider (int or float), ``int``/``float`` -> number box. ``update`` may return text, a
    DataFrame, a matplotlib figure, anything with ``_repr_html_``, or a list of those.

    Example::

        >>> ex = explorer(lambda n: f"{n} squared is {n * n}", n=(0, 10))
        >>> ex.controls["n"].value = 3
        >>> ex.output.value
        '<pre>3 squared is 9</pre>'
    """
    if not callable(update):
        raise TypeError(f"update must be a function, got {type(update).__name__}")
    if not controls:
        raise ValueError("give at least one control, e.g. explorer(update, n=(0, 10))")
    built = {name: _control(name, spec) for name, spec in controls.items()}
    return Explorer(update, built, title=title, run_now=run_now)


# --------------------------------------------------------------------------- operators


def _first_paragraph(doc: str) -> str:
    paragraphs = [p for p in doc.strip().split("\n\n") if p.strip()]
    return " ".join(paragraphs[0].split()) if paragraphs else ""


def _formal(formal: onnx.defs.OpSchema.FormalParameter) -> dict[str, Any]:
    option = {
        onnx.defs.OpSchema.FormalParameterOption.Optional: "optional",
        onnx.defs.OpSchema.FormalParameterOption.Variadic: "variadic",
    }.get(formal.option, "single")
    return {
        "name": formal.name,
        "type": formal.type_str,
        "option": option,
        "description": " ".join(formal.description.split()),
    }


def operator_info(op_type: str, opset: int | None = None, domain: str = "") -> dict[str, Any]:
    """What ``onnx.defs`` says about an operator at an opset, plus a tiny run when possible.

    Keys: ``op_type``, ``domain``, ``opset`` (asked, default the newest), ``versions`` (every
    opset where the operator changed), ``available`` (False when it came later than ``opset``,
    with ``reason``), ``since_version`` (the version in force), ``inputs``/``outputs`` (name,
    type, option, description), ``attributes`` (name, type, required, default),
    ``type_constraints`` (type parameter -> allowed types), ``doc`` (first paragraph) and
    ``example`` (inputs, outputs, the runtime that computed them and a text rendering; None
    with ``example_error`` saying why when no tiny example can be built).

    Example::

        >>> info = operator_info("Squeeze", opset=11)
        >>> info["since_version"], info["versions"][:3]
        (11, [1, 11, 13])
    """
    if not isinstance(op_type, str) or not op_type:
        raise TypeError(f"op_type must be an operator name such as 'Relu', got {op_type!r}")
    versions = opsets.operator_history(op_type, domain)
    latest = opsets.latest_opset(domain)
    if opset is None:
        opset = latest
    if not isinstance(opset, int) or isinstance(opset, bool) or not 1 <= opset <= latest:
        raise ValueError(
            f"opset must be an int from 1 to {latest} (the newest this onnx knows), got {opset!r}"
        )
    info: dict[str, Any] = {
        "op_type": op_type,
        "domain": domain or "ai.onnx",
        "opset": opset,
        "versions": versions,
    }
    try:
        schema = opsets.schema_at(op_type, opset, domain)
    except opsets.OperatorNotAvailableError as exc:
        return {**info, "available": False, "reason": str(exc), "since_version": None}
    info.update(
        available=True,
        since_version=schema.since_version,
        inputs=[_formal(f) for f in schema.inputs],
        outputs=[_formal(f) for f in schema.outputs],
        attributes=[
            {
                "name": name,
                "type": str(attr.type).rsplit(".", 1)[-1].lower(),
                "required": bool(attr.required),
                "default": (
                    onnx.helper.get_attribute_value(attr.default_value)
                    if attr.default_value.type
                    else None
                ),
            }
            for name, attr in sorted(schema.attributes.items())
        ],
        type_constraints={
            c.type_param_str: sorted(c.allowed_type_strs) for c in schema.type_constraints
        },
        doc=_first_paragraph(schema.doc or ""),
    )
    try:
        ex = opsets.tiny_example(op_type, opset, domain)
        info["example"] = {
            "inputs": ex.inputs,
            "outputs": ex.outputs,
            "runtime": ex.runtime,
            "text": ex.text(),
        }
        info["example_error"] = None
    except Exception as exc:  # no recipe fits this operator: say why
        info["example"] = None
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        info["example_error"] = reason.split(". Operators with a ready example")[0][:300]
    return info


def _attribute_text(attr: dict[str, Any]) -> str:
    if attr["required"]:
        return f"{attr['name']} ({attr['type']}, required)"
    default = attr["default"]
    if default is None:
        return f"{attr['name']} ({attr['type']}, optional)"
    if isinstance(default, bytes):
        default = default.decode()
    return f"{attr['name']} ({attr['type']}, default {default!r})"


def format_operator_info(info: dict[str, Any]) -> str:
    """Plain text for :func:`operator_info`'s dict (what the operator explorer shows).

    Example::

        >>> print(format_operator_info(operator_info("Relu", opset=18)).splitlines()[0])
        Relu (ai.onnx) at opset 18: version 14 in force
    """
    head = f"{info['op_type']} ({info['domain']}) at opset {info['opset']}"
    changed = ", ".join(
        f"[{v}]" if v == info.get("since_version") else str(v) for v in info["versions"]
    )
    if not info.get("available"):
        return f"{head}: not available\nchanged in opsets: {changed}\n{info['reason']}"
    lines = [
        f"{head}: version {info['since_version']} in force",
        f"changed in opsets: {changed}   ([n] = the version in force)",
        info["doc"],
        "inputs:  "
        + "; ".join(f"{f['name']}: {f['type']} ({f['option']})" for f in info["inputs"]),
        "outputs: "
        + "; ".join(f"{f['name']}: {f['type']} ({f['option']})" for f in info["outputs"]),
        "attributes: " + ("; ".join(_attribute_text(a) for a in info["attributes"]) or "-"),
    ]
    for param, types in info["type_constraints"].items():
        lines.append(f"type {param}: {', '.join(types)}")
    lines.append("")
    if info["example"]:
        lines += ["tiny example:", info["example"]["text"]]
    else:
        lines.append(f"no tiny example: {info['example_error']}")
    return "\n".join(lines)


def operator_explorer(
    op_type: str = "Relu", opset: int | None = None, domain: str = ""
) -> Explorer:
    """Pick an operator and an opset; see its schema in force, its history and a tiny run.

    Example::

        >>> ex = operator_explorer("Squeeze", opset=11)
        >>> ex.controls["opset"].value = 13
        >>> "version 13 in force" in ex.output.value
        True
    """
    names = opsets.operator_names(domain)
    if op_type not in names:
        opsets.operator_history(op_type, domain)  # raises with "did you mean"
    latest = opsets.latest_opset(domain)
    return explorer(
        lambda op_type, opset: format_operator_info(operator_info(op_type, opset, domain)),
        title="Operator explorer (onnx.defs of the installed onnx)",
        op_type=W.Dropdown(options=names, value=op_type, description="operator"),
        opset=W.IntSlider(
            min=1,
            max=latest,
            value=latest if opset is None else opset,
            description="opset",
            continuous_update=False,
        ),
    )


# --------------------------------------------------------------------------- quantization


def run_quantization(
    model: str | Path | onnx.ModelProto,
    method: str,
    out_path: str | Path,
    *,
    eval_set: tuple[np.ndarray, np.ndarray] | None = None,
    calibration: np.ndarray | None = None,
    per_channel: bool = False,
    calibration_method: str = "minmax",
    calibration_rows: int | None = None,
    latency_repeat: int = 15,
) -> quantize.QuantizationReport:
    """One quantization by name: ``"dynamic int8"``, ``"static int8"`` or ``"float16"``.

    The quantization explorer's logic. ``calibration`` (needed for static int8) is cut to its
    first ``calibration_rows`` rows.

    Example::

        >>> rep = run_quantization("cnn.onnx", "static int8", "cnn.q.onnx",
        ...                        calibration=images, latency_repeat=3)
        >>> rep.method, rep.settings["calibration_rows"]
        ('static int8', 8)
    """
    common = {"eval_set": eval_set, "latency_repeat": latency_repeat}
    if method == "dynamic int8":
        return quantize.quantize_dynamic_int8(model, out_path, per_channel=per_channel, **common)
    if method == "static int8":
        if calibration is None:
            raise ValueError("static int8 needs calibration data: pass calibration=X_train[:200]")
        rows = len(calibration) if calibration_rows is None else calibration_rows
        if not isinstance(rows, int) or rows < 1:
            raise ValueError(f"calibration_rows must be a positive int, got {rows!r}")
        return quantize.quantize_static_int8(
            model,
            out_path,
            np.asarray(calibration)[:rows],
            per_channel=per_channel,
            method=calibration_method,
            **common,
        )
    if method == "float16":
        return quantize.to_float16(model, out_path, overflow="note", **common)
    raise ValueError(f"method must be one of {list(QUANTIZATION_METHODS)}, got {method!r}")


def quantization_explorer(
    model: str | Path | onnx.ModelProto,
    eval_set: tuple[np.ndarray, np.ndarray],
    calibration: np.ndarray | None = None,
    *,
    out_dir: str | Path | None = None,
    latency_repeat: int = 15,
) -> Explorer:
    """Choose a quantization method and its settings; see size, accuracy and latency.

    Results are cached per setting, so flipping back is instant. Quantized files go to
    ``out_dir`` (default: a temporary folder kept as long as the explorer).

    Example::

        >>> ex = quantization_explorer("mlp.onnx", (X_test, y_test), X_train, latency_repeat=3)
        >>> ex.controls["method"].value = "static int8"    # measured now, then cached
    """
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="course-quantize-")
        out_dir = tmp.name
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows_max = len(calibration) if calibration is not None else 1
    cache: dict[tuple[Any, ...], Any] = {}

    def update(method: str, per_channel: bool, calibration_method: str, calibration_rows: int):
        key = (method, per_channel, calibration_method, calibration_rows)
        if key not in cache:
            stem = "-".join(str(k).replace(" ", "_") for k in key)
            rep = run_quantization(
                model,
                method,
                folder / f"{stem}.onnx",
                eval_set=eval_set,
                calibration=calibration,
                per_channel=per_channel,
                calibration_method=calibration_method,
                calibration_rows=calibration_rows,
                latency_repeat=latency_repeat,
            )
            cache[key] = [rep, rep.plot()]
        return cache[key]

    methods = [m for m in QUANTIZATION_METHODS if calibration is not None or m != "static int8"]
    ex = explorer(
        update,
        title="Quantization explorer: size, accuracy and latency, measured here",
        method=W.Dropdown(options=methods, value=methods[0], description="method"),
        per_channel=W.Checkbox(value=False, description="per channel"),
        calibration_method=W.Dropdown(
            options=["minmax", "entropy", "percentile", "distribution"],
            value="minmax",
            description="calibration",
        ),
        calibration_rows=W.IntSlider(
            min=1,
            max=rows_max,
            value=rows_max,
            description="calib. rows",
            continuous_update=False,
        ),
    )
    ex._tmp = tmp  # the folder lives as long as the explorer
    ex.cache = cache
    return ex


# --------------------------------------------------------------------------- batch size


def batch_view(
    model: Any,
    sample: np.ndarray,
    max_batch: int = 64,
    *,
    intra_op_threads: int | None = None,
    repeat: int = 15,
    sessions: dict[Any, Any] | None = None,
) -> list[Any]:
    """Latency and throughput for batch sizes 1, 2, 4, ... up to ``max_batch``: a table and a plot.

    The batch explorer's logic; ``sessions`` (optional dict) caches one onnxruntime session per
    thread setting between calls.

    Example::

        >>> frame, fig = batch_view("mlp.onnx", X_test[:8], max_batch=32, repeat=3)
        >>> list(frame.index)
        [1, 2, 4, 8, 16, 32]
    """
    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1:
        raise ValueError(f"max_batch must be a positive int, got {max_batch!r}")
    sizes = [1 << k for k in range(max_batch.bit_length()) if (1 << k) <= max_batch]
    if sizes[-1] != max_batch:
        sizes.append(max_batch)
    sessions = {} if sessions is None else sessions
    if hasattr(model, "run"):
        session = model
    else:
        if intra_op_threads not in sessions:
            sessions[intra_op_threads] = bench.ort_session(model, intra_op_threads=intra_op_threads)
        session = sessions[intra_op_threads]
    frame = bench.latency_by_batch(session, sample, sizes, repeat=repeat)
    threads = intra_op_threads or "default"
    fig = bench.plot_latency_by_batch(
        frame, title=f"Batch size sweep (intra-op threads: {threads})"
    )
    return [frame, fig]


def batch_explorer(
    model: Any,
    sample: np.ndarray,
    *,
    max_batch: int = 64,
    thread_options: Sequence[int] | None = None,
    repeat: int = 15,
) -> Explorer:
    """Slide the largest batch size and pick thread counts; see latency and throughput.

    Example::

        >>> ex = batch_explorer("mlp.onnx", X_test[:8], max_batch=16, repeat=3)
        >>> ex.controls["max_batch"].options
        (1, 2, 4, 8, 16)
    """
    cores = bench.machine_info()["logical_cores"] or 1
    threads = list(thread_options) if thread_options else sorted({1, cores})
    options = [("default", None)] + [(str(t), t) for t in threads]
    sessions: dict[Any, Any] = {}
    sizes = [1 << k for k in range(max(max_batch, 1).bit_length()) if (1 << k) <= max_batch]
    ex = explorer(
        lambda max_batch, intra_op_threads: batch_view(
            model,
            sample,
            max_batch,
            intra_op_threads=intra_op_threads,
            repeat=repeat,
            sessions=sessions,
        ),
        title="Latency versus batch size, measured here",
        max_batch=W.SelectionSlider(
            options=sizes,
            value=sizes[-1],
            description="max batch",
            continuous_update=False,
        ),
        intra_op_threads=W.Dropdown(options=options, value=None, description="threads"),
    )
    ex.sessions = sessions
    return ex
