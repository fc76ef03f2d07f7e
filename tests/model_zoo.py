"""Real third-party pretrained ONNX models, found inside installed PyPI packages (offline).

The packages (pinned in requirements.txt) are never imported: importing rapidocr would import
OpenCV, silero_vad would import torch. Their files are found with ``importlib.util.find_spec``,
which locates a package without running it. Each entry says who produced the model and gives
small inputs that the model accepts, so that every helper can run it in a few seconds.

    python tests/model_zoo.py         # the table of models: file, producer, size, operators
    python tests/model_zoo.py --run   # every course helper on every model: what passed
"""

from __future__ import annotations

import importlib.util
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RealModel:
    """One shipped model: where it is, who made it, and inputs it runs on."""

    id: str
    package: str
    path: str  # inside the package
    producer: str  # the exporter that wrote it (producer_name, or read from its naming)
    # {input name: (shape, dtype)}; float inputs are random normal, ints as given in `values`
    inputs: dict[str, tuple[tuple[int, ...], str]]
    values: dict[str, object] = field(default_factory=dict)
    note: str = ""

    def file(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"package {self.package!r} is not installed: pip install -r requirements.txt"
            )
        return Path(list(spec.submodule_search_locations)[0]) / self.path

    def available(self) -> bool:
        try:
            return self.file().is_file()
        except FileNotFoundError:
            return False

    def feeds(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {}
        for name, (shape, dtype) in self.inputs.items():
            if name in self.values:
                out[name] = np.asarray(self.values[name], dtype=dtype).reshape(shape)
            elif np.dtype(dtype).kind == "f":
                out[name] = (0.1 * rng.standard_normal(shape)).astype(dtype)
            else:
                out[name] = rng.integers(0, 256, size=shape).astype(dtype)
        return out


_SILERO_STATE = {"input": ((1, 512), "float32"), "state": ((2, 1, 128), "float32")}

MODELS: list[RealModel] = [
    RealModel(
        "silero_vad",
        "silero_vad",
        "data/silero_vad.onnx",
        "spox",
        {**_SILERO_STATE, "sr": ((), "int64")},
        {"sr": 16000},
        "If on the sample rate, LSTM state in and out",
    ),
    RealModel(
        "silero_vad_16k_op15",
        "silero_vad",
        "data/silero_vad_16k_op15.onnx",
        "pytorch 2.3",
        {**_SILERO_STATE, "sr": ((), "int64")},
        {"sr": 16000},
        "opset 15, three If nodes",
    ),
    RealModel(
        "silero_vad_16k_sequence",
        "silero_vad",
        "data/silero_vad_16k_sequence.onnx",
        "pytorch 2.11",
        {
            "input": ((2, 576), "float32"),
            "h": ((1, 1, 128), "float32"),
            "c": ((1, 1, 128), "float32"),
        },
        note="a sequence of 576-sample windows, LSTM h/c state",
    ),
    RealModel(
        "silero_vad_half",
        "silero_vad",
        "data/silero_vad_half.onnx",
        "pytorch 2.3",
        dict(_SILERO_STATE),
        note="named half, yet its stored weights are float32 (course.pretrained.weight_bytes); no sr",
    ),
    RealModel(
        "silero_vad_op18_ifless",
        "silero_vad",
        "data/silero_vad_op18_ifless.onnx",
        "pytorch 2.9",
        {"input": ((1, 512), "float32"), "sr": ((), "int64"), "state": ((2, 1, 128), "float32")},
        {"sr": 16000},
        "opset 18, weights as initializers",
    ),
    RealModel(
        "silero_vad_openvino_16k",
        "silero_vad",
        "data/silero_vad_openvino_16k.onnx",
        "spox",
        {"input": ((1, 576), "float32"), "state": ((2, 1, 128), "float32")},
        note="fixed shapes, every weight in a Constant node",
    ),
    RealModel(
        "ppocr_v4_det",
        "rapidocr_onnxruntime",
        "models/ch_PP-OCRv4_det_infer.onnx",
        "paddle2onnx",
        {"x": ((1, 3, 64, 64), "float32")},
        note="text detection CNN (DB), weights in Constant nodes",
    ),
    RealModel(
        "ppocr_v4_rec",
        "rapidocr_onnxruntime",
        "models/ch_PP-OCRv4_rec_infer.onnx",
        "paddle2onnx",
        {"x": ((1, 3, 48, 64), "float32")},
        note="text recognition CRNN with attention, weights in Constant nodes",
    ),
    RealModel(
        "ppocr_mobile_cls",
        "rapidocr_onnxruntime",
        "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "paddle2onnx (PaddlePaddle)",
        {"x": ((1, 3, 48, 96), "float32")},
        note="direction classifier; declares its batch dimension as -1",
    ),
    RealModel(
        "magika_standard_v3_3",
        "magika",
        "models/standard_v3_3/model.onnx",
        "tf2onnx 1.16",
        {"bytes": ((1, 2048), "int32")},
        note="file-type classifier, int32 byte input, ai.onnx.ml opset",
    ),
]


def by_id(model_id: str) -> RealModel:
    for m in MODELS:
        if m.id == model_id:
            return m
    raise KeyError(f"no real model {model_id!r}; known: {[m.id for m in MODELS]}")


HELPERS = ("summary", "drawing", "verification", "dynamic int8", "static int8", "float16", "bench")
# what an error must name to count as "an error that names a working route"
ROUTES = (
    "quantize_static_int8",
    "quantize_dynamic_int8",
    "op_types=",
    "op_block_list=",
    "nodes_to_exclude=",
)


@dataclass
class Outcome:
    """One helper on one model: ``ok`` (worked), ``route`` (raised naming a way that works,
    or, for verification, named the operator where runtimes part), or ``fail``."""

    status: str
    detail: str = ""


def run_helpers(model: RealModel, workdir: Path) -> dict[str, Outcome]:
    """Every helper of the course on ``model``; never raises for a helper's own failure."""
    from course import bench, inspect, quantize, verify

    path, feeds = model.file(), model.feeds()
    names = [i for i in feeds]
    out: dict[str, Outcome] = {}

    def attempt(helper: str, fn) -> None:
        try:
            out[helper] = fn()
        except quantize.QuantizationError as exc:
            text = str(exc)
            named = [r for r in ROUTES if r in text]
            out[helper] = Outcome("route" if named else "fail", text.splitlines()[0][:300])
        except Exception as exc:  # noqa: BLE001 - the table says which helper failed how
            out[helper] = Outcome("fail", f"{type(exc).__name__}: {str(exc)[:300]}")

    def summary() -> Outcome:
        text = str(inspect.summary(path))
        missing = [n for n in names if n not in text]
        return Outcome("fail", f"inputs {missing} not in summary") if missing else Outcome("ok")

    def drawing() -> Outcome:
        svg = inspect.draw_graph(path)._repr_svg_()
        return Outcome("ok" if svg.lstrip().startswith("<") else "fail", f"{len(svg)} chars")

    def verification() -> Outcome:
        expected = verify.run_onnx(path, feeds)
        report = verify.verify(path, feeds, expected)
        if report.passed:
            return Outcome("ok", f"max abs {report.max_abs_error:.2g}")
        notes = {r.note for r in report.failures}
        if all(" node" in n for n in notes):
            return Outcome("route", "; ".join(sorted(notes))[:300])
        return Outcome("fail", "; ".join(sorted(notes))[:300] or str(report))

    def quantized(kind: str) -> Outcome:
        target = workdir / f"{model.id}.{kind.replace(' ', '_')}.onnx"
        if kind == "dynamic int8":
            rep = quantize.quantize_dynamic_int8(path, target, latency_repeat=3)
        elif kind == "static int8":
            rep = quantize.quantize_static_int8(path, target, [feeds], latency_repeat=3)
        else:
            rep = quantize.to_float16(path, target, latency_repeat=3)
        outputs = verify.run_onnx(target, feeds)  # loads and runs in onnxruntime
        if not all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f"):
            return Outcome("fail", f"{rep!r}: non-finite outputs")
        return Outcome("ok", f"{rep.size_before / rep.size_after:.2f}x smaller")

    def benchmarking() -> Outcome:
        run = bench.session_runner(bench.ort_session(path), feeds)
        result = bench.benchmark(run, warmup=1, repeat=5)
        return Outcome("ok", f"median {result.median * 1e3:.2f} ms")

    attempt("summary", summary)
    attempt("drawing", drawing)
    attempt("verification", verification)
    for kind in ("dynamic int8", "static int8", "float16"):
        attempt(kind, lambda kind=kind: quantized(kind))
    attempt("bench", benchmarking)
    return out


def results_table(workdir: Path) -> str:
    """Run every helper on every installed model; a markdown table of the outcomes."""
    import warnings

    lines = [
        "| model | producer | " + " | ".join(HELPERS) + " |",
        "|---" * (len(HELPERS) + 2) + "|",
    ]
    details = []
    for m in MODELS:
        if not m.available():
            lines.append(f"| {m.id} | {m.producer} | not installed |")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = run_helpers(m, workdir)
        lines.append(
            f"| {m.id} | {m.producer} | " + " | ".join(got[h].status for h in HELPERS) + " |"
        )
        details += [f"- {m.id} / {h}: {o.detail}" for h, o in got.items() if o.status != "ok"]
    return "\n".join(lines + [""] + details)


def table() -> str:
    import onnx

    lines = ["model | package | producer (file says) | KB | nodes | top operators"]
    for m in MODELS:
        if not m.available():
            lines.append(f"{m.id} | {m.package} | not installed")
            continue
        proto = onnx.load(m.file())
        ops = Counter(n.op_type for n in proto.graph.node)
        said = f"{proto.producer_name} {proto.producer_version}".strip() or "(empty)"
        top = ", ".join(f"{k} {v}" for k, v in ops.most_common(4))
        kb = m.file().stat().st_size // 1024
        lines.append(
            f"{m.id} | {m.package} | {m.producer} ({said}) | {kb} | {len(proto.graph.node)} | {top}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    import tempfile

    if "--run" in sys.argv:  # every helper on every model: the outcome table
        with tempfile.TemporaryDirectory() as tmp:
            print(results_table(Path(tmp)))
    else:
        print(table())
