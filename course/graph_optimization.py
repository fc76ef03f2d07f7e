"""ONNX Runtime graph optimisation levels: save what each level does, count and draw it.

ONNX Runtime rewrites a graph when it creates a session: constant folding and redundant-node
removal (*basic*), operator fusions such as Gemm + Relu -> FusedGemm (*extended*), memory-layout
changes such as NCHWc convolutions (*layout*, and *all*, which includes it). Setting
``SessionOptions.optimized_model_filepath`` saves the rewritten graph, so the effect of each
level can be read rather than guessed::

    from course import graph_optimization as go
    models = go.optimize_at_levels("cnn.onnx", "optimized/")   # level -> ModelProto
    go.counts_table(models)            # operators per level (fusions show as new op types)
    go.draw_pipelines(models)          # each level's node sequence, fused nodes highlighted

Models saved at the *layout*/*all* levels may hold hardware-specific operators (NCHWc for this
CPU's vector width): use them only on the machine that produced them.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from course import figures
from course.palette import BLACK, OKABE_ITO, WHITE

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import onnx
    import onnxruntime
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "LEVELS",
    "OKABE_ITO",
    "available_levels",
    "counts_table",
    "draw_pipelines",
    "fusion_summary",
    "level_enum",
    "operator_counts",
    "optimize",
    "optimize_at_levels",
]

#: Level names, weakest first, and the onnxruntime.GraphOptimizationLevel member of each.
LEVELS: dict[str, str] = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}


def level_enum(level: str) -> onnxruntime.GraphOptimizationLevel:
    """The ``onnxruntime.GraphOptimizationLevel`` for a level name (see :data:`LEVELS`).

    Levels this onnxruntime does not have (``"layout"`` before 1.22) raise a ValueError that
    says so.

    Example::

        >>> level_enum("extended").name
        'ORT_ENABLE_EXTENDED'
    """
    import onnxruntime as ort

    if level not in LEVELS:
        raise ValueError(f"level must be one of {list(LEVELS)}, got {level!r}")
    member = getattr(ort.GraphOptimizationLevel, LEVELS[level], None)
    if member is None:
        raise ValueError(
            f"onnxruntime {ort.__version__} has no {LEVELS[level]}; available levels: "
            f"{available_levels()}"
        )
    return member


def available_levels() -> list[str]:
    """The level names this onnxruntime supports, weakest first."""
    import onnxruntime as ort

    return [name for name, attr in LEVELS.items() if hasattr(ort.GraphOptimizationLevel, attr)]


def _model_source(model: Any) -> str | bytes:
    from course import _model

    return _model.source(model)


def optimize(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    level: str = "all",
    path: str | os.PathLike[str] | None = None,
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> onnx.ModelProto:
    """Let onnxruntime optimise ``model`` at ``level``, save the result to ``path``, return it.

    The options are set before the session is created (options set afterwards are ignored).
    ``path`` defaults to a temporary file that is removed afterwards. onnxruntime's warning
    that a *layout*/*all* model is hardware specific is silenced: that is documented above.

    Example::

        >>> opt = optimize("mlp.onnx", "extended", "mlp.extended.onnx")
        >>> len(opt.graph.node) <= 4
        True
    """
    import onnx
    import onnxruntime as ort

    source = _model_source(model)
    so = ort.SessionOptions()
    so.graph_optimization_level = level_enum(level)
    so.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(path) if path is not None else Path(tmp) / "optimized.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        so.optimized_model_filepath = str(target)
        ort.InferenceSession(source, so, providers=list(providers))
        return onnx.load(str(target))


def optimize_at_levels(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    directory: str | os.PathLike[str],
    levels: Iterable[str] | None = None,
    *,
    stem: str | None = None,
) -> dict[str, onnx.ModelProto]:
    """Optimise ``model`` at each level and save ``<stem>.<level>.onnx`` files in ``directory``.

    ``levels`` defaults to every level this onnxruntime has. Returns level -> ModelProto in
    the order given.

    Example::

        >>> models = optimize_at_levels("cnn.onnx", "optimized")
        >>> list(models)[0]
        'disable'
    """
    levels = list(levels) if levels is not None else available_levels()
    if not levels:
        raise ValueError("levels is empty: pass level names such as ['basic', 'all']")
    if stem is None:
        stem = Path(model).stem if isinstance(model, (str, os.PathLike)) else "model"
    folder = Path(directory)
    return {lv: optimize(model, lv, folder / f"{stem}.{lv}.onnx") for lv in levels}


def _qualified(node: onnx.NodeProto) -> str:
    return f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type


def operator_counts(model: onnx.ModelProto | str | os.PathLike[str]) -> dict[str, int]:
    """How many nodes of each operator the main graph has; non-standard domains are prefixed
    (``com.microsoft.FusedGemm``, ``com.microsoft.nchwc.Conv``), most frequent first.

    Example::

        >>> operator_counts("mlp.onnx")
        {'MatMul': 2, 'Add': 1, 'Relu': 1}
    """
    model = _load(model)
    counts = Counter(_qualified(n) for n in model.graph.node)
    return dict(counts.most_common())


def _load(model: Any) -> onnx.ModelProto:
    from course import _model

    return _model.load(model)


def counts_table(models: Mapping[str, onnx.ModelProto]) -> pd.DataFrame:
    """Operators (rows) by level or variant (columns), with a ``nodes`` total row at the end.

    Example::

        >>> m = onnx.load("mlp.onnx")
        >>> counts_table({"before": m, "after": optimize(m, "all")}).shape[1]
        2
    """
    import pandas as pd

    if not models:
        raise ValueError("models is empty: pass a dict name -> onnx.ModelProto")
    columns = {name: operator_counts(m) for name, m in models.items()}
    ops: list[str] = []
    for counts in columns.values():
        ops.extend(op for op in counts if op not in ops)
    frame = pd.DataFrame(
        {name: [counts.get(op, 0) for op in ops] for name, counts in columns.items()}, index=ops
    )
    frame.loc["nodes"] = frame.sum(axis=0)
    frame.index.name = "operator"
    return frame


def fusion_summary(before: onnx.ModelProto, after: onnx.ModelProto) -> dict[str, Any]:
    """What an optimisation changed: node counts, and the operators that went and came.

    Returns ``{"nodes_before", "nodes_after", "removed": {op: n}, "added": {op: n}}``.

    Example::

        >>> m = onnx.load("mlp.onnx")
        >>> sorted(fusion_summary(m, optimize(m, "extended")))
        ['added', 'nodes_after', 'nodes_before', 'removed']
    """
    b, a = Counter(operator_counts(before)), Counter(operator_counts(after))
    return {
        "nodes_before": sum(b.values()),
        "nodes_after": sum(a.values()),
        "removed": dict(b - a),
        "added": dict(a - b),
    }


def _activation(node: onnx.NodeProto) -> str:
    """The activation a fused node applies (its ``activation`` attribute), or ''."""
    for attr in node.attribute:
        if attr.name == "activation" and attr.s:
            return attr.s.decode()
    return ""


def _colour(op: str) -> str:
    if op.startswith("com.microsoft.nchwc."):
        return OKABE_ITO[2]
    if op.startswith("com.microsoft."):
        return OKABE_ITO[1]
    return OKABE_ITO[0]


def draw_pipelines(
    models: Mapping[str, onnx.ModelProto], *, max_nodes: int = 16, ax: Any = None
) -> Figure:
    """Each model's nodes, in graph order, as a row of boxes: a diagram of what fused.

    Standard ONNX operators are blue, onnxruntime's fused contrib operators orange, layout
    (NCHWc) operators green; a node that applies a fused activation says so (``+Relu``). Rows
    longer than ``max_nodes`` are cut, with the number of nodes left out.

    Example::

        >>> fig = draw_pipelines(optimize_at_levels("cnn.onnx", "opt"))
    """
    from matplotlib.patches import FancyBboxPatch, Patch

    if not models:
        raise ValueError("models is empty: pass a dict name -> onnx.ModelProto")
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be >= 1, got {max_nodes}")
    rows = {
        name: [(_qualified(n), _activation(n)) for n in _load(m).graph.node]
        for name, m in models.items()
    }
    width = min(max(len(r) for r in rows.values()), max_nodes + 1)
    fig, ax = figures.axes(ax, (1.0 + 1.25 * width, 0.6 + 0.75 * len(rows)))
    for y, (name, ops) in enumerate(rows.items()):
        shown = ops[:max_nodes]
        for x, (op, activation) in enumerate(shown):
            ax.add_patch(
                FancyBboxPatch(
                    (x + 0.06, -y - 0.3),
                    0.88,
                    0.6,
                    boxstyle="round,pad=0.02",
                    facecolor=_colour(op),
                    edgecolor=BLACK,
                    linewidth=0.6,
                )
            )
            label = op.rsplit(".", 1)[-1] + (f"\n+{activation}" if activation else "")
            ax.text(
                x + 0.5,
                -y,
                label,
                ha="center",
                va="center",
                fontsize=7,
                color=WHITE,
                fontweight="bold",
            )
            if x:
                ax.annotate(
                    "",
                    (x + 0.06, -y),
                    (x - 0.06, -y),
                    arrowprops={"arrowstyle": "->", "lw": 0.8},
                )
        if len(ops) > max_nodes:
            ax.text(max_nodes + 0.5, -y, f"+{len(ops) - max_nodes} more", ha="center", va="center")
        ax.text(-0.1, -y, f"{name} ({len(ops)})", ha="right", va="center", fontsize=9)
    ax.set_xlim(-2.2, width + 0.1)
    ax.set_ylim(-len(rows) + 0.4, 0.6)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set(title="Nodes after each optimisation level (count in brackets), in graph order")
    figures.legend_below(
        ax,
        [
            Patch(color=OKABE_ITO[0], label="standard ONNX operator"),
            Patch(color=OKABE_ITO[1], label="fused onnxruntime operator"),
            Patch(color=OKABE_ITO[2], label="NCHWc layout operator"),
        ],
        offset=-0.02,
        fontsize="small",
    )
    return figures.finish(fig)
