"""Execution providers: which hardware onnxruntime can use here, and what runs where.

:data:`KNOWN_PROVIDERS` summarises the providers of the ONNX Runtime documentation (the
hardware each drives and what it needs); :func:`choose_providers` keeps the ones this
onnxruntime build has, in order, always ending on the CPU, so a lesson never fails on a
machine without a GPU; :func:`session_with_fallback`, :func:`cuda_status`,
:func:`provider_assignment` (which provider ran which nodes) and :func:`partition` (how a
provider that supports only some operators would cut the graph). The provider part of lesson 06
(``course.roofline`` re-exports every name here).

Example::

    >>> choose_providers(["CUDAExecutionProvider", CPU])[-1]
    'CPUExecutionProvider'
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from course import _model, bench

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import onnx
    import onnxruntime
    import pandas as pd

__all__ = [
    "CPU",
    "CudaStatus",
    "KNOWN_PROVIDERS",
    "Partition",
    "ProviderError",
    "choose_providers",
    "cuda_status",
    "matmul_model",
    "partition",
    "provider_assignment",
    "provider_table",
    "session_with_fallback",
]

CPU = "CPUExecutionProvider"


class ProviderError(ValueError):
    """A provider name or argument that cannot work; the message names the fix."""


def matmul_model(n: int) -> onnx.ModelProto:
    """A model of one ``n`` x ``n`` float32 MatMul with a fixed weight: the probe
    :func:`cuda_status` runs on the CUDA provider and ``roofline.measure_peak_gflops`` times.

    Example::

        >>> [node.op_type for node in matmul_model(4).graph.node]
        ['MatMul']
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    b = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "peak_matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------- providers

#: Execution providers: the hardware each drives and what it needs (a summary of the
#: ONNX Runtime documentation's "Execution Providers" pages).
KNOWN_PROVIDERS: tuple[dict[str, str], ...] = (
    {
        "provider": "CUDAExecutionProvider",
        "hardware": "NVIDIA GPU",
        "needs": "pip onnxruntime-gpu; NVIDIA driver, CUDA and cuDNN versions matching the build",
    },
    {
        "provider": "TensorrtExecutionProvider",
        "hardware": "NVIDIA GPU (compiled engines)",
        "needs": "onnxruntime-gpu plus TensorRT libraries; slow first session (engine build, cache it)",
    },
    {
        "provider": "MIGraphXExecutionProvider",
        "hardware": "AMD GPU (ROCm)",
        "needs": "ROCm and MIGraphX; AMD's onnxruntime builds (the older ROCm EP is retired)",
    },
    {
        "provider": "DmlExecutionProvider",
        "hardware": "any DirectX 12 GPU on Windows",
        "needs": "pip onnxruntime-directml (Windows)",
    },
    {
        "provider": "OpenVINOExecutionProvider",
        "hardware": "Intel CPU, integrated GPU, NPU",
        "needs": "pip onnxruntime-openvino; device chosen with the device_type option",
    },
    {
        "provider": "CoreMLExecutionProvider",
        "hardware": "Apple CPU, GPU, Neural Engine",
        "needs": "macOS / iOS build of onnxruntime (pip wheel on macOS, CocoaPods, SwiftPM)",
    },
    {
        "provider": "NnapiExecutionProvider",
        "hardware": "Android accelerators via NNAPI",
        "needs": "onnxruntime-android; NNAPI is deprecated from Android 15, prefer QNN/XNNPACK",
    },
    {
        "provider": "QNNExecutionProvider",
        "hardware": "Qualcomm Hexagon NPU (Snapdragon phones, Windows on Arm)",
        "needs": "pip onnxruntime-qnn or the Android package; QDQ-quantized, static-shape models",
    },
    {
        "provider": "VitisAIExecutionProvider",
        "hardware": "AMD Ryzen AI NPU, Xilinx/AMD FPGAs (Alveo, Versal)",
        "needs": "Ryzen AI / Vitis AI software; models quantized (QDQ int8) by its quantizer",
    },
    {
        "provider": "XnnpackExecutionProvider",
        "hardware": "Arm and x86 CPUs (mobile, web)",
        "needs": "mobile and web packages; float32 and QDQ int8 kernels",
    },
    {
        "provider": "WebGpuExecutionProvider",
        "hardware": "GPU through the browser's WebGPU",
        "needs": "npm onnxruntime-web (WebGPU build) and a WebGPU-capable browser",
    },
    {
        "provider": "CANNExecutionProvider",
        "hardware": "Huawei Ascend NPU",
        "needs": "CANN toolkit and an onnxruntime build with CANN",
    },
    {
        "provider": CPU,
        "hardware": "any CPU",
        "needs": "every onnxruntime package; always the last fallback",
    },
)


def provider_table() -> pd.DataFrame:
    """:data:`KNOWN_PROVIDERS` with two live columns: ``known_to_this_build`` (in
    ``onnxruntime.get_all_providers()``) and ``available_here`` (compiled into the installed
    package, ``get_available_providers()``). Availability is about the package, not the
    hardware: see :func:`cuda_status` for whether a CUDA device actually works.

    Example::

        >>> bool(provider_table().loc["CPUExecutionProvider", "available_here"])
        True
    """
    import onnxruntime as ort
    import pandas as pd

    known = set(ort.get_all_providers())
    available = set(ort.get_available_providers())
    frame = pd.DataFrame(list(KNOWN_PROVIDERS)).set_index("provider")
    frame["known_to_this_build"] = [p in known for p in frame.index]
    frame["available_here"] = [p in available for p in frame.index]
    return frame


def choose_providers(
    preferred: Sequence[str] | str, available: Sequence[str] | None = None
) -> list[str]:
    """The providers to pass to ``InferenceSession``: ``preferred`` in its order, restricted to
    ``available`` (default: this onnxruntime's ``get_available_providers()``), duplicates
    dropped, and the CPU provider always last. Never fails for a missing GPU; a misspelt
    provider name (not in ``onnxruntime.get_all_providers()``) is a bug, so it raises
    :class:`ProviderError` with the closest correct name.

    Example::

        >>> choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"],
        ...                  available=["CPUExecutionProvider"])
        ['CPUExecutionProvider']
        >>> choose_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider"],
        ...                  available=["CUDAExecutionProvider", "CPUExecutionProvider"])
        ['CUDAExecutionProvider', 'CPUExecutionProvider']
    """
    import onnxruntime as ort

    if isinstance(preferred, str):
        preferred = [preferred]
    names = list(preferred)
    known = set(ort.get_all_providers())
    for name in names:
        if not isinstance(name, str):
            raise ProviderError(f"provider names must be strings, got {name!r}")
        if name not in known:
            lowered = {k.lower(): k for k in known}
            close = difflib.get_close_matches(name.lower(), sorted(lowered), n=1)
            hint = f"; did you mean {lowered[close[0]]!r}?" if close else ""
            raise ProviderError(f"unknown execution provider {name!r}{hint}")
    have = list(ort.get_available_providers() if available is None else available)
    chosen: list[str] = []
    for name in names:
        if name in have and name not in chosen and name != CPU:
            chosen.append(name)
    return [*chosen, CPU]


def session_with_fallback(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    preferred: Sequence[str],
    **options: Any,
) -> onnxruntime.InferenceSession:
    """An onnxruntime session on the first usable provider of ``preferred``, else the CPU.

    Providers missing from the installed package are skipped (no warning), and a provider
    that is compiled in but fails to start (no device, missing CUDA libraries) makes the
    session fall back to the CPU instead of raising. ``options`` go to
    :func:`course.bench.ort_session` (threads, optimisation level). Check
    ``session.get_providers()`` to see what it got.

    Example::

        >>> s = session_with_fallback("mlp.onnx", ["CPUExecutionProvider"])
        >>> s.get_providers()
        ['CPUExecutionProvider']
    """
    providers = choose_providers(preferred)
    try:
        return bench.ort_session(model, providers=providers, **options)
    except (RuntimeError, OSError) as exc:  # pragma: no cover - needs a broken GPU install
        if providers == [CPU]:
            raise
        warnings.warn(
            f"providers {providers[:-1]} failed to start ({str(exc).splitlines()[0]}); "
            "using the CPU provider",
            RuntimeWarning,
            stacklevel=2,
        )
        return bench.ort_session(model, providers=[CPU], **options)


@dataclass(frozen=True)
class CudaStatus:
    """Whether onnxruntime can run on a CUDA GPU here, and why not when it cannot."""

    usable: bool
    reason: str
    device: str | None = None

    def __bool__(self) -> bool:
        return self.usable


def _gpu_name() -> str | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def cuda_status() -> CudaStatus:
    """Can onnxruntime run on a CUDA GPU here? Checks the package, then starts a real session.

    ``CUDAExecutionProvider`` in ``get_available_providers()`` only says the package was built
    with CUDA (``onnxruntime-gpu``); the session test says a driver, a device and the CUDA /
    cuDNN libraries were found. The result is truthy when usable; ``reason`` explains.

    Example::

        >>> status = cuda_status()
        >>> isinstance(status.reason, str)
        True
    """
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return CudaStatus(
            False,
            f"onnxruntime {ort.__version__} here is a CPU-only build (providers: "
            f"{', '.join(ort.get_available_providers())}); the GPU path needs the "
            "onnxruntime-gpu package on a machine with an NVIDIA GPU and driver",
        )
    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            session = ort.InferenceSession(
                matmul_model(16).SerializeToString(),
                so,
                providers=["CUDAExecutionProvider", CPU],
            )
    except Exception as exc:  # pragma: no cover - depends on a broken CUDA install
        return CudaStatus(False, f"the CUDA provider failed to start: {str(exc)[:300]}")
    if session.get_providers()[0] != "CUDAExecutionProvider":
        return CudaStatus(
            False,
            "onnxruntime-gpu is installed but the CUDA provider did not start (no NVIDIA GPU "
            "or driver, or CUDA/cuDNN libraries missing): sessions fall back to the CPU",
        )
    name = _gpu_name() or "CUDA device 0"  # pragma: no cover - needs a GPU
    return CudaStatus(True, f"CUDA provider running on {name}", name)  # pragma: no cover


def provider_assignment(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    providers: Sequence[str] | None = None,
    *,
    optimization_level: str = "all",
) -> pd.DataFrame:
    """Which provider onnxruntime gave each part of the graph: one row per assigned subgraph.

    Uses the session option ``session.record_ep_graph_assignment_info`` (onnxruntime >= 1.23)
    and ``InferenceSession.get_provider_graph_assignment_info()``. Columns: ``provider``,
    ``nodes`` (count) and ``op_types``. A compiling provider (TensorRT, QNN, OpenVINO...) shows
    few large subgraphs; the CPU provider one row per node. ``providers`` defaults to the CPU.

    Example::

        >>> provider_assignment("cnn.onnx").groupby("provider")["nodes"].sum().to_dict()
        {'CPUExecutionProvider': 5}
    """
    import onnxruntime as ort
    import pandas as pd

    chosen = choose_providers(list(providers) if providers else [CPU])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, _model.OPT_LEVELS[optimization_level]
    )
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    session = ort.InferenceSession(_model.source(model), so, providers=chosen)
    if not hasattr(session, "get_provider_graph_assignment_info"):  # pragma: no cover - old ORT
        raise ProviderError(
            f"onnxruntime {ort.__version__} cannot report graph assignment; use >= 1.23, or "
            "profile a run (SessionOptions.enable_profiling) and read each kernel's provider"
        )
    rows = []
    for sub in session.get_provider_graph_assignment_info():
        nodes = sub.get_nodes()
        rows.append(
            {
                "provider": sub.ep_name,
                "nodes": len(nodes),
                "op_types": ", ".join(n.op_type for n in nodes),
            }
        )
    return pd.DataFrame(rows, columns=["provider", "nodes", "op_types"])


@dataclass
class Partition:
    """A what-if split of a graph between an accelerator and the CPU (see :func:`partition`).

    ``device`` maps node name -> ``"accelerator"`` or ``"cpu"``; ``subgraphs`` lists the node
    names of each accelerator subgraph; ``transfers`` counts tensors that cross between the
    two (graph inputs and outputs live on the host).
    """

    device: dict[str, str]
    op_types: dict[str, str]
    subgraphs: list[list[str]]
    transfers: int

    @property
    def accelerated(self) -> int:
        return sum(d == "accelerator" for d in self.device.values())

    @property
    def total(self) -> int:
        return len(self.device)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        group = {n: i for i, names in enumerate(self.subgraphs) for n in names}
        return pd.DataFrame(
            [
                {
                    "node": n,
                    "op_type": self.op_types[n],
                    "device": d,
                    "subgraph": group.get(n, -1),
                }
                for n, d in self.device.items()
            ]
        ).set_index("node")

    def __str__(self) -> str:
        return (
            f"{self.accelerated} of {self.total} nodes on the accelerator in "
            f"{len(self.subgraphs)} subgraph(s), {self.transfers} tensor transfer(s)"
        )


def partition(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    supported: Iterable[str] | Callable[[onnx.NodeProto], bool],
    *,
    min_subgraph_nodes: int = 1,
) -> Partition:
    """Split a graph the way a compiling provider would, given what it supports (a what-if).

    ``supported`` is a set of operator types, or a function ``node -> bool`` for finer rules
    (data types, static shapes, attributes). Supported nodes joined by an edge form one
    subgraph; subgraphs smaller than ``min_subgraph_nodes`` go back to the CPU (TensorRT's
    ``trt_min_subgraph_size`` plays this role). Every tensor produced on one side and consumed
    on the other is a transfer. A simplification of onnxruntime's partitioner (which also
    avoids subgraphs that would create cycles): it predicts the shape of the split, not a
    provider's actual decisions, which depend on its version and options.

    Example::

        >>> part = partition("cnn.onnx", {"Conv", "Relu", "MaxPool"})
        >>> str(part)
        '3 of 5 nodes on the accelerator in 1 subgraph(s), 2 tensor transfer(s)'
    """
    if not isinstance(min_subgraph_nodes, int) or min_subgraph_nodes < 1:
        raise ProviderError(
            f"min_subgraph_nodes must be a positive int, got {min_subgraph_nodes!r}"
        )
    proto = _model.load(model)
    if callable(supported):
        accepts = supported
    else:
        ops = set(supported)
        unknown = [o for o in ops if not isinstance(o, str)]
        if unknown:
            raise ProviderError(f"supported must hold operator type names, got {unknown}")
        accepts = lambda node: node.op_type in ops  # noqa: E731
    names = [n.name or f"{n.op_type}_{i}" for i, n in enumerate(proto.graph.node)]
    producer = {out: names[i] for i, n in enumerate(proto.graph.node) for out in n.output if out}
    on_acc = {names[i]: bool(accepts(n)) for i, n in enumerate(proto.graph.node)}
    parent = {name: name for name in names}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, node in enumerate(proto.graph.node):
        if not on_acc[names[i]]:
            continue
        for inp in node.input:
            src = producer.get(inp)
            if src is not None and on_acc[src]:
                parent[find(src)] = find(names[i])
    groups: dict[str, list[str]] = {}
    for name in names:
        if on_acc[name]:
            groups.setdefault(find(name), []).append(name)
    subgraphs = []
    for members in groups.values():
        if len(members) < min_subgraph_nodes:
            for m in members:
                on_acc[m] = False
        else:
            subgraphs.append(members)
    device = {n: "accelerator" if on_acc[n] else "cpu" for n in names}
    weights = {t.name for t in proto.graph.initializer}
    crossings: set[tuple[str, str]] = set()
    for i, node in enumerate(proto.graph.node):
        for inp in node.input:
            if not inp:
                continue
            if inp in weights:
                continue  # weights are copied to the device once, at session creation
            src = producer.get(inp)
            src_device = device[src] if src is not None else "cpu"  # graph inputs: host
            if src_device != device[names[i]]:
                crossings.add((inp, device[names[i]]))
    for out in proto.graph.output:
        src = producer.get(out.name)
        if src is not None and device[src] == "accelerator":
            crossings.add((out.name, "cpu"))
    op_types = {names[i]: n.op_type for i, n in enumerate(proto.graph.node)}
    return Partition(device, op_types, subgraphs, len(crossings))
