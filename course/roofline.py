"""What hardware can do for a model: FLOPs and bytes from the graph, the machine's roof, providers.

The roofline model bounds a computation's speed by two numbers of the machine, the peak rate
of arithmetic (GFLOP/s) and the memory bandwidth (GB/s), and one number of the computation, its
*arithmetic intensity* (FLOPs per byte moved)::

    attainable GFLOP/s = min(peak, intensity x bandwidth)

This module counts a model's FLOPs and bytes node by node from the ONNX graph (shape inference
fills in every tensor's shape), measures this machine's roof (a large matmul, a large copy),
places measured runs under it, and chooses execution providers without ever failing on a
machine that lacks a GPU::

    from course import roofline
    cost = roofline.model_cost("cnn.onnx", batch=32)      # FLOPs, bytes, per node
    roof = roofline.measure_roof()                        # peak GFLOP/s, GB/s, measured here
    point = roofline.RooflinePoint("CNN b32", cost.flops, cost.bytes_moved, seconds=1.2e-3)
    roofline.plot_roofline(roof, [point])
    roofline.choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
    # -> ['CPUExecutionProvider'] on a CPU-only onnxruntime

Conventions (state them whenever you quote a FLOP count): a multiply-add is 2 FLOPs; Gemm
counts ``2*M*N*K`` plus ``M*N`` for the bias ``C``; Conv counts ``2 * output elements *
(C_in/group * kernel size)`` plus one per output element for the bias; elementwise operators
count one FLOP per output element whatever the function; reshapes, transposes, casts and
gathers count none (they only move bytes). ``bytes_moved`` adds, for every node, the bytes of
its inputs (weights included) and outputs, as if nothing stayed in cache between nodes: an
upper bound on memory traffic, so the intensity derived from it is a lower bound.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from course import _model, bench, figures
from course.providers import (
    CPU,
    KNOWN_PROVIDERS,
    CudaStatus,
    Partition,
    ProviderError,
    choose_providers,
    cuda_status,
    matmul_model,
    partition,
    provider_assignment,
    provider_table,
    session_with_fallback,
)

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import onnx
    import onnxruntime
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "CPU",
    "KNOWN_PROVIDERS",
    "OKABE_ITO",
    "BandwidthMeasurement",
    "CudaStatus",
    "ModelCost",
    "NodeCost",
    "Partition",
    "PeakMeasurement",
    "Roof",
    "RooflineError",
    "RooflinePoint",
    "choose_providers",
    "concrete_shapes",
    "cuda_status",
    "measure_bandwidth_gbs",
    "measure_peak_gflops",
    "measure_roof",
    "model_cost",
    "operating_point",
    "operating_point_view",
    "partition",
    "plot_roofline",
    "plot_throughput_by_threads",
    "provider_assignment",
    "provider_table",
    "session_with_fallback",
    "throughput_by_threads",
    "transfer_runners",
]

OKABE_ITO = bench.OKABE_ITO


class RooflineError(ProviderError):
    """A model or a measurement cannot be analysed as asked; the message names the fix."""


# --------------------------------------------------------------------------- shapes


_load = _model.load


_graph_inputs = _model.graph_inputs


def concrete_shapes(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    batch: int = 1,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, tuple[tuple[int, ...] | None, int]]:
    """Every tensor's shape and ONNX element type once the inputs' free dimensions are fixed.

    The first free dimension of each graph input becomes ``batch``; any other free dimension
    needs ``input_shapes={name: full shape}``. Returns ``name -> (shape or None, elem_type)``
    for graph inputs, outputs, initializers and every intermediate that ONNX shape inference
    could type (``None`` where it could not, e.g. outputs of custom-domain operators).

    Example::

        >>> shapes = concrete_shapes("mlp.onnx", batch=8)
        >>> shapes["x"]
        ((8, 4), 1)
    """
    import onnx

    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise RooflineError(f"batch must be a positive int, got {batch!r}")
    source = _load(model)
    proto = onnx.ModelProto()
    proto.CopyFrom(source)
    given = dict(input_shapes or {})
    inputs = _graph_inputs(proto)
    unknown = sorted(set(given) - {i.name for i in inputs})
    if unknown:
        raise RooflineError(
            f"input_shapes names {unknown}, which are not graph inputs; the inputs are "
            f"{[i.name for i in inputs]}"
        )
    for inp in inputs:
        dims = inp.type.tensor_type.shape.dim
        if inp.name in given:
            shape = [int(d) for d in given[inp.name]]
            if len(shape) != len(dims) or any(d < 1 for d in shape):
                raise RooflineError(
                    f"input_shapes[{inp.name!r}] = {tuple(shape)}: expected {len(dims)} "
                    "positive dimensions"
                )
            for d, value in zip(dims, shape, strict=True):
                d.Clear()
                d.dim_value = value
            continue
        free_seen = False
        for axis, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            if free_seen:
                label = d.dim_param or "?"
                raise RooflineError(
                    f"input {inp.name!r} has a second free dimension at axis {axis} ({label!r}); "
                    f"pass input_shapes={{{inp.name!r}: (...)}} with its full shape"
                )
            free_seen = True
            d.Clear()
            d.dim_value = batch
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    shapes: dict[str, tuple[tuple[int, ...] | None, int]] = {}
    for t in inferred.graph.initializer:
        shapes[t.name] = (tuple(int(d) for d in t.dims), t.data_type)
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            shapes.setdefault(vi.name, (None, tt.elem_type))
            continue
        dims = tt.shape.dim
        known = all(d.HasField("dim_value") for d in dims)
        shape = tuple(int(d.dim_value) for d in dims) if known else None
        if vi.name not in shapes or shapes[vi.name][0] is None:
            shapes[vi.name] = (shape, tt.elem_type)
    for node in inferred.graph.node:  # Constant outputs are typed by inference; keep any gaps
        for out in node.output:
            shapes.setdefault(out, (None, 0))
    return shapes


def _itemsize(elem_type: int) -> int:
    import onnx

    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return 0  # undefined type: no byte count
    return 0 if dtype.kind == "O" else int(dtype.itemsize)  # strings: no fixed size


# --------------------------------------------------------------------------- FLOPs


_ELEMENTWISE = frozenset(
    "Add Sub Mul Div Pow Max Min Mean Sum Mod Neg Abs Sign Reciprocal Sqrt Exp Log Erf Floor "
    "Ceil Round Relu LeakyRelu PRelu Elu Selu Celu Gelu Sigmoid HardSigmoid HardSwish Softplus "
    "Softsign Tanh Sin Cos Clip Where Equal Greater GreaterOrEqual Less LessOrEqual Not And Or "
    "Xor BitShift IsNaN IsInf ThresholdedRelu Mish Swish QuickGelu".split()
)
_PER_ELEMENT = {
    "Softmax": 3,
    "LogSoftmax": 3,
    "BatchNormalization": 2,
    "LayerNormalization": 5,
    "InstanceNormalization": 5,
    "GroupNormalization": 5,
}
_REDUCE_INPUT = frozenset(
    "GlobalAveragePool GlobalMaxPool GlobalLpPool ReduceMean ReduceSum ReduceMax ReduceMin "
    "ReduceProd ReduceL1 ReduceL2 ReduceSumSquare ReduceLogSumExp ArgMax ArgMin".split()
)
_WINDOWED = frozenset(["MaxPool", "AveragePool", "LpPool"])


def _count(shape: tuple[int, ...] | None) -> int | None:
    return None if shape is None else int(math.prod(shape))


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _node_flops(
    node: onnx.NodeProto, shapes: Mapping[str, tuple[tuple[int, ...] | None, int]]
) -> int | None:
    """FLOPs of one node by the module's conventions; None when a needed shape is unknown."""

    def shape(i: int, outputs: bool = False) -> tuple[int, ...] | None:
        names = node.output if outputs else node.input
        if i >= len(names) or not names[i]:
            return None
        return shapes.get(names[i], (None, 0))[0]

    op = node.op_type
    out = _count(shape(0, outputs=True))
    has_bias = len(node.input) > 2 and bool(node.input[2])
    if op == "Gemm":
        a = shape(0)
        if a is None or out is None or len(a) != 2:
            return None
        k = a[0] if _attr(node, "transA", 0) else a[1]
        return 2 * out * k + (out if has_bias else 0)
    if op == "MatMul":
        a = shape(0)
        if a is None or out is None or not a:
            return None
        return 2 * out * a[-1]
    if op == "Conv":
        w = shape(1)
        if w is None or out is None:
            return None
        return 2 * out * int(math.prod(w[1:])) + (out if has_bias else 0)
    if op == "ConvTranspose":
        x, w = _count(shape(0)), shape(1)
        if x is None or w is None or out is None:
            return None
        return 2 * x * int(math.prod(w[1:])) + (out if has_bias else 0)
    if op in _ELEMENTWISE:
        return out
    if op in _PER_ELEMENT:
        return None if out is None else _PER_ELEMENT[op] * out
    if op in _REDUCE_INPUT:
        return _count(shape(0))
    if op in _WINDOWED:
        kernel = _attr(node, "kernel_shape", None)
        return None if out is None or not kernel else out * int(math.prod(kernel))
    return 0  # data movement (Reshape, Transpose, Concat, Gather, Cast, ...)


def _has_flop_rule(op: str) -> bool:
    return op in {"Gemm", "MatMul", "Conv", "ConvTranspose"} or any(
        op in group for group in (_ELEMENTWISE, _PER_ELEMENT, _REDUCE_INPUT, _WINDOWED)
    )


@dataclass(frozen=True)
class NodeCost:
    """FLOPs and bytes of one node (``bytes`` = its inputs, weights included, plus outputs)."""

    name: str
    op_type: str
    flops: int
    bytes: int
    weight_bytes: int
    known: bool = True

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved (0 for nodes that only move data)."""
        return self.flops / self.bytes if self.bytes else 0.0


@dataclass
class ModelCost:
    """FLOPs and bytes of a whole model at one batch size, node by node.

    ``flops`` and ``bytes_moved`` sum the nodes; ``weight_bytes`` counts each initializer once
    and ``io_bytes`` the graph's inputs and outputs, so ``min_bytes`` (their sum) is what a
    run must move at the very least. ``unknown`` lists nodes whose shapes inference could not
    fix (counted as 0) and ``no_flop_rule`` the operator types counted as pure data movement.
    """

    nodes: list[NodeCost]
    batch: int
    weight_bytes: int
    io_bytes: int
    unknown: list[str] = field(default_factory=list)

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def bytes_moved(self) -> int:
        return sum(n.bytes for n in self.nodes)

    @property
    def min_bytes(self) -> int:
        return self.weight_bytes + self.io_bytes

    @property
    def intensity(self) -> float:
        """FLOPs per byte moved (a lower bound: nothing is assumed to stay in cache)."""
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0

    @property
    def no_flop_rule(self) -> list[str]:
        return sorted({n.op_type for n in self.nodes if not _has_flop_rule(n.op_type)})

    def to_frame(self) -> pd.DataFrame:
        """One row per node: op type, FLOPs, bytes, weight bytes, intensity, share of FLOPs."""
        import pandas as pd

        total = self.flops or 1
        frame = pd.DataFrame(
            [
                {
                    "node": n.name,
                    "op_type": n.op_type,
                    "flops": n.flops,
                    "bytes": n.bytes,
                    "weight_bytes": n.weight_bytes,
                    "flop_per_byte": round(n.intensity, 3),
                    "share_of_flops": round(n.flops / total, 4),
                }
                for n in self.nodes
            ]
        )
        return frame.set_index("node")

    def by_op_type(self) -> pd.DataFrame:
        """FLOPs and bytes summed per operator type, largest FLOP count first."""
        frame = self.to_frame().groupby("op_type")[["flops", "bytes", "weight_bytes"]].sum()
        frame["nodes"] = self.to_frame().groupby("op_type").size()
        return frame.sort_values(["flops", "bytes"], ascending=False)

    def __str__(self) -> str:
        return (
            f"batch {self.batch}: {self.flops / 1e6:.3f} MFLOP, {self.bytes_moved / 1e6:.3f} MB "
            f"moved (at least {self.min_bytes / 1e6:.3f} MB), {self.intensity:.2f} FLOP/byte, "
            f"{len(self.nodes)} nodes"
        )

    def _repr_html_(self) -> str:
        return f"<p>{self}</p>" + self.by_op_type().to_html()


def model_cost(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    batch: int = 1,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> ModelCost:
    """Count the FLOPs and bytes of every node of ``model`` at ``batch`` (see module conventions).

    Shapes come from ONNX shape inference after fixing the inputs' free dimensions
    (:func:`concrete_shapes`). Only the main graph is counted (not If/Loop bodies).

    Example::

        >>> cost = model_cost("mlp.onnx", batch=32)
        >>> int(cost.by_op_type().loc["MatMul", "flops"])
        3584
    """
    proto = _load(model)
    shapes = concrete_shapes(proto, batch, input_shapes)
    inits = {t.name for t in proto.graph.initializer}
    nodes, unknown = [], []
    for i, node in enumerate(proto.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        flops = _node_flops(node, shapes)
        moved = weights = 0
        known = flops is not None
        for tensor in [*node.input, *node.output]:
            if not tensor:
                continue
            shp, elem = shapes.get(tensor, (None, 0))
            if shp is None:
                known = False
                continue
            size = int(math.prod(shp)) * _itemsize(elem)
            moved += size
            if tensor in inits:
                weights += size
        if not known:
            unknown.append(name)
        nodes.append(NodeCost(name, node.op_type, flops or 0, moved, weights, known))
    weight_bytes = sum(
        int(math.prod(t.dims)) * _itemsize(t.data_type) for t in proto.graph.initializer
    )
    io_names = [i.name for i in _graph_inputs(proto)] + [o.name for o in proto.graph.output]
    io_bytes = 0
    for name in io_names:
        shp, elem = shapes.get(name, (None, 0))
        if shp is not None:
            io_bytes += int(math.prod(shp)) * _itemsize(elem)
    return ModelCost(nodes, batch, weight_bytes, io_bytes, unknown)


# --------------------------------------------------------------------------- the machine's roof


@dataclass(frozen=True)
class PeakMeasurement:
    """Achievable arithmetic rate measured with an ``n x n`` float32 matmul.

    ``best_gflops`` comes from the fastest run (the roof: what the machine *can* do),
    ``median_gflops`` from the median run (what it did typically while others shared it).
    """

    n: int
    backend: str
    threads: int | None
    samples: np.ndarray

    @property
    def flops(self) -> int:
        return 2 * self.n**3

    @property
    def best_gflops(self) -> float:
        return self.flops / float(np.min(self.samples)) / 1e9

    @property
    def median_gflops(self) -> float:
        return self.flops / float(np.median(self.samples)) / 1e9


@dataclass(frozen=True)
class BandwidthMeasurement:
    """Achievable memory bandwidth measured by copying a large float32 array (read + write)."""

    megabytes: float
    samples: np.ndarray

    @property
    def bytes(self) -> int:
        return int(2 * self.megabytes * 1e6)

    @property
    def best_gbs(self) -> float:
        return self.bytes / float(np.min(self.samples)) / 1e9

    @property
    def median_gbs(self) -> float:
        return self.bytes / float(np.median(self.samples)) / 1e9


def _positive_int(label: str, value: Any, least: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise RooflineError(f"{label} must be an int >= {least}, got {value!r}")


def measure_peak_gflops(
    n: int = 1024,
    *,
    backend: str = "onnxruntime",
    intra_op_threads: int | None = None,
    repeat: int = 8,
    warmup: int = 2,
) -> PeakMeasurement:
    """Time an ``n x n`` float32 matmul (``2 n^3`` FLOPs) to find the achievable GFLOP/s.

    ``backend="onnxruntime"`` runs a one-node MatMul model in an onnxruntime session with
    ``intra_op_threads`` (``None``: onnxruntime's default), the same engine that runs the
    models; ``backend="numpy"`` uses NumPy's BLAS (``intra_op_threads`` is then applied with
    threadpoolctl when it is installed). n = 1024 takes tens of milliseconds per run on a
    laptop core; large enough that arithmetic, not call overhead, dominates.

    Example::

        >>> peak = measure_peak_gflops(256, repeat=3)
        >>> peak.best_gflops >= peak.median_gflops > 0
        True
    """
    _positive_int("n", n, 16)
    _positive_int("repeat", repeat, 3)
    _positive_int("warmup", warmup, 0)
    a = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    if backend == "onnxruntime":
        session = bench.ort_session(matmul_model(n), intra_op_threads=intra_op_threads)
        result = bench.benchmark(
            lambda: session.run(None, {"a": a}), warmup=warmup, repeat=repeat, name="matmul"
        )
        return PeakMeasurement(n, backend, intra_op_threads, result.samples)
    if backend == "numpy":
        b = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        limiter = _blas_limits(intra_op_threads)
        with limiter:
            result = bench.benchmark(lambda: a @ b, warmup=warmup, repeat=repeat, name="matmul")
        return PeakMeasurement(n, backend, intra_op_threads, result.samples)
    raise RooflineError(f"backend must be 'onnxruntime' or 'numpy', got {backend!r}")


def _blas_limits(threads: int | None) -> Any:
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def measure_bandwidth_gbs(megabytes: float = 64.0, *, repeat: int = 8) -> BandwidthMeasurement:
    """Copy a ``megabytes`` float32 array repeatedly; bytes read plus written per second.

    One thread, streaming: a rough estimate of main-memory bandwidth, provided the array is
    larger than the last-level cache (otherwise it measures the cache). Keep it at 64 MB or
    more on desktop CPUs; the arrays take twice that in memory.

    Example::

        >>> bw = measure_bandwidth_gbs(8, repeat=3)
        >>> bw.best_gbs > 0
        True
    """
    if not isinstance(megabytes, (int, float)) or isinstance(megabytes, bool) or megabytes <= 0:
        raise RooflineError(f"megabytes must be a positive number, got {megabytes!r}")
    _positive_int("repeat", repeat, 3)
    count = max(1, int(megabytes * 1e6) // 4)
    src = np.ones(count, dtype=np.float32)
    dst = np.empty_like(src)
    result = bench.benchmark(lambda: np.copyto(dst, src), warmup=1, repeat=repeat, name="copy")
    return BandwidthMeasurement(count * 4 / 1e6, result.samples)


@dataclass(frozen=True)
class Roof:
    """A machine's roofline: peak GFLOP/s and bandwidth GB/s (measured or taken from a sheet)."""

    peak_gflops: float
    bandwidth_gbs: float
    label: str = "this machine"

    def __post_init__(self) -> None:
        for name in ("peak_gflops", "bandwidth_gbs"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
                raise RooflineError(f"{name} must be a positive finite number, got {value!r}")

    @property
    def ridge(self) -> float:
        """The intensity (FLOP/byte) where memory-bound turns compute-bound: peak / bandwidth."""
        return self.peak_gflops / self.bandwidth_gbs

    def attainable(self, intensity: float) -> float:
        """min(peak, intensity x bandwidth) in GFLOP/s."""
        if intensity < 0:
            raise RooflineError(f"intensity must be >= 0 FLOP/byte, got {intensity!r}")
        return min(self.peak_gflops, intensity * self.bandwidth_gbs)

    def bound(self, intensity: float) -> str:
        """``"memory"`` left of the ridge, ``"compute"`` from it on."""
        return "compute" if intensity >= self.ridge else "memory"


def measure_roof(
    *,
    n: int = 1024,
    megabytes: float = 64.0,
    intra_op_threads: int | None = None,
    repeat: int = 8,
    label: str = "this machine",
) -> tuple[Roof, PeakMeasurement, BandwidthMeasurement]:
    """Measure the peak (onnxruntime matmul) and the bandwidth (NumPy copy): the roof and both
    measurements. The roof takes the best run of each: an upper bound, as a roof must be.

    Example::

        >>> roof, peak, bw = measure_roof(n=256, megabytes=8, repeat=3)
        >>> roof.ridge > 0
        True
    """
    peak = measure_peak_gflops(n, intra_op_threads=intra_op_threads, repeat=repeat)
    bandwidth = measure_bandwidth_gbs(megabytes, repeat=repeat)
    return Roof(peak.best_gflops, bandwidth.best_gbs, label), peak, bandwidth


@dataclass(frozen=True)
class RooflinePoint:
    """One measured run: its FLOPs, bytes and seconds give intensity and achieved GFLOP/s."""

    label: str
    flops: float
    bytes: float
    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0 or not self.bytes > 0 or self.flops < 0:
            raise RooflineError(
                f"point {self.label!r}: need seconds > 0, bytes > 0 and flops >= 0, got "
                f"seconds={self.seconds!r}, bytes={self.bytes!r}, flops={self.flops!r}"
            )

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes

    @property
    def gflops(self) -> float:
        return self.flops / self.seconds / 1e9

    def fraction_of(self, roof: Roof) -> float:
        """Achieved / attainable at this intensity (1.0 = on the roof)."""
        attainable = roof.attainable(self.intensity)
        return self.gflops / attainable if attainable else 0.0


def plot_roofline(
    roof: Roof,
    points: Iterable[RooflinePoint] = (),
    *,
    ax: Any = None,
    title: str | None = None,
) -> Figure:
    """The roof (bandwidth slope, then the flat peak) on log-log axes, with measured points.

    Returns the matplotlib Figure (not registered with pyplot, so it is shown once).

    Example::

        >>> fig = plot_roofline(Roof(100.0, 20.0), [RooflinePoint("x", 2e6, 1e6, 1e-3)])
        >>> fig.axes[0].get_xscale()
        'log'
    """
    points = list(points)
    fig, ax = figures.axes(ax, (10, 4.2))
    intensities = [p.intensity for p in points if p.intensity > 0]
    low = min([roof.ridge / 30, *(i / 3 for i in intensities)])
    high = max([roof.ridge * 30, *(i * 3 for i in intensities)])
    x = np.logspace(math.log10(low), math.log10(high), 200)
    ax.plot(
        x,
        np.minimum(roof.peak_gflops, x * roof.bandwidth_gbs),
        color=OKABE_ITO[7],
        lw=2,
        label=f"roof: {roof.peak_gflops:.1f} GFLOP/s, {roof.bandwidth_gbs:.1f} GB/s",
    )
    ax.axvline(roof.ridge, color=OKABE_ITO[7], ls=":", lw=1)
    ax.annotate(
        f"ridge {roof.ridge:.1f} FLOP/B",
        (roof.ridge, roof.peak_gflops),
        textcoords="offset points",
        xytext=(4, -14),
        fontsize="small",
    )
    markers = "osD^vP*X"
    for i, p in enumerate(points):
        if p.intensity <= 0 or p.gflops <= 0:
            continue
        ax.scatter(
            p.intensity,
            p.gflops,
            s=60,
            marker=markers[i % len(markers)],
            color=OKABE_ITO[i % 7],
            zorder=3,
            label=f"{p.label}: {p.gflops:.2f} GFLOP/s ({p.fraction_of(roof):.0%} of attainable)",
        )
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
    ax.set(
        xlabel="arithmetic intensity (FLOP/byte)",
        ylabel="performance (GFLOP/s)",
        title=title or f"Roofline of {roof.label}",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0)
    return figures.finish(fig)


# --------------------------------------------------------------------------- providers
# (course.providers, re-exported above)


# --------------------------------------------------------------------------- measurements


def throughput_by_threads(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    sample: np.ndarray,
    threads: Sequence[int] = (1, 2),
    *,
    batch: int = 32,
    repeat: int = 20,
    warmup: int = 3,
) -> pd.DataFrame:
    """Latency and throughput of a single-input model at one batch size for several intra-op
    thread counts, interleaved (one session per count). Rows indexed by ``threads``: ``median_ms``,
    ``ci_low_ms``, ``ci_high_ms``, ``p99_ms``, ``throughput_per_s``.

    Example::

        >>> frame = throughput_by_threads("cnn.onnx", images[:8], (1, 2), repeat=3)
    """

    counts = list(threads)
    if not counts:
        raise RooflineError("threads is empty: pass thread counts such as (1, 2)")
    for t in counts:
        _positive_int("each thread count", t)
    _positive_int("batch", batch)
    x = _model.tile_batch(np.asarray(sample), batch)
    candidates = {
        str(t): bench.session_runner(bench.ort_session(model, intra_op_threads=t), x)
        for t in counts
    }
    cmp = bench.compare(candidates, warmup=warmup, repeat=repeat, warn=False)
    frame = bench.timing_frame(cmp, "threads", dict.fromkeys(counts, batch))
    frame.attrs["batch"] = batch
    return frame


def plot_throughput_by_threads(frame: pd.DataFrame, *, ax: Any = None, title: str | None = None):
    """Throughput (samples/s) per thread count with the interval from the latency's CI.

    Example::

        >>> frame = throughput_by_threads("mlp.onnx", X_test[:1], threads=(1, 2), repeat=3)
        >>> fig = plot_throughput_by_threads(frame)
        >>> fig.axes[0].get_xlabel()
        'intra-op threads (count)'
    """
    needed = {"median_ms", "ci_low_ms", "ci_high_ms", "throughput_per_s"}
    if not needed <= set(frame.columns):
        raise RooflineError(
            f"frame lacks {sorted(needed - set(frame.columns))}: pass throughput_by_threads(...)"
        )
    fig, ax = figures.axes(ax, (5.5, 3.4))
    batch = frame.attrs.get("batch", 1)
    threads = frame.index.to_numpy()
    tput = frame["throughput_per_s"].to_numpy()
    low = batch * 1e3 / frame["ci_high_ms"].to_numpy()
    high = batch * 1e3 / frame["ci_low_ms"].to_numpy()
    ax.errorbar(
        threads,
        tput,
        yerr=[tput - low, high - tput],
        fmt="o-",
        color=OKABE_ITO[2],
        capsize=4,
        label=f"batch {batch}: median, 95% CI",
    )
    ideal = tput[0] * threads / threads[0]
    ax.plot(threads, ideal, "--", color=OKABE_ITO[7], lw=1, label="perfect scaling")
    ax.set_xticks(threads)
    ax.set(
        xlabel="intra-op threads (count)",
        ylabel="throughput (samples/s)",
        title=title or "Throughput versus threads",
    )
    ax.legend(loc="best", fontsize="small")
    return figures.finish(fig)


class _BoundRunner:
    """Runs a session through an IOBinding prepared once; ``binding`` is kept for inspection."""

    def __init__(self, session: Any, binding: Any):
        self.session = session
        self.binding = binding

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.binding)

    def outputs(self) -> list[np.ndarray]:
        """The bound outputs, copied to host memory."""
        return self.binding.copy_outputs_to_cpu()


def transfer_runners(
    session: onnxruntime.InferenceSession,
    x: np.ndarray,
    *,
    device: str = "cpu",
    device_id: int = 0,
) -> dict[str, Callable[[], Any]]:
    """Three ways to run a single-input session, to separate transfers from compute.

    - ``"run(): host in, host out"``: ``session.run`` with NumPy arrays (on a GPU provider:
      copy in, compute, copy out, every call);
    - ``"binding: host in, device out"``: IOBinding with the input bound from host memory and
      the outputs left on ``device`` (one copy in per call);
    - ``"binding: device in, device out"``: the input copied to ``device`` once, beforehand,
      and outputs left there: compute only.

    ``device`` is ``"cpu"`` (host and device are the same memory, so all three do the same
    work) or ``"cuda"`` for a session on the CUDA provider. Time them with
    :func:`course.bench.compare`; the differences are the transfer costs.

    Example::

        >>> runners = transfer_runners(bench.ort_session("mlp.onnx"), X_test[:4])
        >>> list(runners)
        ['run(): host in, host out', 'binding: host in, device out', 'binding: device in, device out']
        >>> table = bench.compare(runners, repeat=3, warn=False).to_frame()
    """
    import onnxruntime as ort

    if device not in ("cpu", "cuda"):
        raise RooflineError(f"device must be 'cpu' or 'cuda', got {device!r}")
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise RooflineError(
            f"transfer_runners needs a single-input session, got {[i.name for i in inputs]}"
        )
    name = inputs[0].name
    outputs = [o.name for o in session.get_outputs()]
    x = np.ascontiguousarray(x)

    def host_in() -> Any:
        binding = session.io_binding()
        binding.bind_cpu_input(name, x)
        for out in outputs:
            binding.bind_output(out, device, device_id)
        return binding

    resident = ort.OrtValue.ortvalue_from_numpy(x, device, device_id)
    device_in = session.io_binding()
    device_in.bind_ortvalue_input(name, resident)
    for out in outputs:
        device_in.bind_output(out, device, device_id)
    runners: dict[str, Callable[[], Any]] = {
        "run(): host in, host out": lambda: session.run(None, {name: x}),
        "binding: host in, device out": _BoundRunner(session, host_in()),
        "binding: device in, device out": _BoundRunner(session, device_in),
    }
    runners["binding: device in, device out"].resident = resident  # kept alive with the binding
    return runners


def operating_point(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    sample: np.ndarray,
    *,
    batch: int,
    intra_op_threads: int | None = None,
    roof: Roof | None = None,
    repeat: int = 15,
    sessions: dict[Any, Any] | None = None,
    costs: dict[int, ModelCost] | None = None,
) -> dict[str, Any]:
    """Measure one configuration (batch size, threads) and place it on the roofline.

    The logic of the lesson's batch/thread explorer. Returns ``batch``, ``threads``,
    ``median_ms``, ``p99_ms``, ``throughput_per_s``, ``flops``, ``intensity``, ``gflops``
    (achieved) and, with a ``roof``, ``attainable_gflops`` and ``fraction_of_roof``.
    ``sessions`` and ``costs`` (optional dicts) cache sessions per thread count and model
    costs per batch between calls.

    Example::

        >>> point = operating_point("cnn.onnx", images[:8], batch=16, roof=Roof(100.0, 20.0),
        ...                         repeat=3)
        >>> point["batch"], 0 < point["fraction_of_roof"]
        (16, True)
    """
    _positive_int("batch", batch)
    sessions = {} if sessions is None else sessions
    costs = {} if costs is None else costs
    if intra_op_threads not in sessions:
        sessions[intra_op_threads] = bench.ort_session(model, intra_op_threads=intra_op_threads)
    if batch not in costs:
        costs[batch] = model_cost(model, batch)
    session, cost = sessions[intra_op_threads], costs[batch]
    x = _model.tile_batch(np.asarray(sample), batch)
    res = bench.benchmark(bench.session_runner(session, x), warmup=3, repeat=repeat)
    point = RooflinePoint(f"batch {batch}", cost.flops, cost.bytes_moved, res.median)
    result = {
        "batch": batch,
        "threads": intra_op_threads or "default",
        "median_ms": res.median * 1e3,
        "p99_ms": res.p99 * 1e3,
        "throughput_per_s": batch / res.median,
        "flops": cost.flops,
        "intensity": point.intensity,
        "gflops": point.gflops,
        "point": point,
    }
    if roof is not None:
        result["attainable_gflops"] = roof.attainable(point.intensity)
        result["fraction_of_roof"] = point.fraction_of(roof)
    return result


def operating_point_view(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    sample: np.ndarray,
    roof: Roof,
    *,
    batch: int,
    intra_op_threads: int | None = None,
    repeat: int = 15,
    sessions: dict[Any, Any] | None = None,
    costs: dict[int, ModelCost] | None = None,
) -> list[Any]:
    """:func:`operating_point` as a line of text and a roofline figure with the point on it.

    Example::

        >>> text, fig = operating_point_view("cnn.onnx", images[:8], Roof(100.0, 20.0), batch=16,
        ...                                  repeat=3)
        >>> text.startswith("batch 16")
        True
    """
    p = operating_point(
        model,
        sample,
        batch=batch,
        intra_op_threads=intra_op_threads,
        roof=roof,
        repeat=repeat,
        sessions=sessions,
        costs=costs,
    )
    text = (
        f"batch {p['batch']}, threads {p['threads']}: median {p['median_ms']:.3f} ms, "
        f"p99 {p['p99_ms']:.3f} ms, {p['throughput_per_s']:,.0f} samples/s\n"
        f"{p['flops'] / 1e6:.2f} MFLOP per call at {p['intensity']:.2f} FLOP/byte: "
        f"{p['gflops']:.2f} GFLOP/s achieved, {p['attainable_gflops']:.1f} attainable "
        f"({p['fraction_of_roof']:.1%} of the roof)"
    )
    fig = plot_roofline(roof, [p["point"]], title=f"batch {batch}, threads {p['threads']}")
    return [text, fig]
