"""A transformer encoder at realistic width, built offline, exported and optimized (lessons 3, 4).

The digits models of the early lessons have a few thousand parameters: on them a runtime's fixed
cost per call is the whole latency, so quantization or operator fusion barely show. This module
builds a BERT-shaped encoder of BERT-base width (768 hidden, 12 heads, 3072 intermediate; four
layers and an 8192-token vocabulary keep it at 35.6 M parameters, 143 MB in float32) from a
``transformers`` config alone: the weights are random (seeded), nothing is downloaded. On two
cores its matrix products, not the runtime, dominate a call, which is what latency and size
figures about transformers need.

Everything costly is built once into the course cache (:func:`course.data.cache_dir`) through
:mod:`course.artefacts` (``python -m course.artefacts``); a lesson calls the same function and gets
the cached path back at once:

- :func:`build_encoder` -> the Hugging Face folder (``config.json``, ``model.safetensors``);
- :func:`encoder_onnx` -> the float32 ONNX file exported with ``torch.onnx.export(dynamo=True)``:
  inputs ``input_ids`` and ``attention_mask`` (int64, ``[batch, sequence]``, both dynamic), outputs
  ``last_hidden_state`` (``[batch, sequence, 768]``) and ``pooler_output`` (``[batch, 768]``);
- :func:`encoder_variants` -> ``optimized_dynamo`` and ``optimized`` (onnxruntime's transformer
  optimizer on the dynamo export and on the TorchScript export), ``int8`` (dynamic,
  MatMulInteger), ``qdq`` (static int8 in QDQ format), ``int4`` (weight-only, MatMulNBits) and
  ``fp16``.

``transformers`` and ``torch`` are imported inside the functions, so ``import course`` stays fast.

Example::

    from course import text_models
    path = text_models.encoder_onnx()                      # cached after the first call
    feeds = text_models.sample_inputs(batch=2, seq=16)     # input_ids + attention_mask
    variants = text_models.encoder_variants()              # {"int8": Path(...), ...}
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from course import _capture, artefacts

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import onnx
    import torch
    from transformers import BertConfig

__all__ = [
    "ENCODER",
    "VARIANTS",
    "agreement",
    "build_encoder",
    "calibration_reader",
    "cpu_flags",
    "encoder_config",
    "encoder_onnx",
    "encoder_session",
    "encoder_variants",
    "export_dynamo",
    "export_torchscript",
    "fused_operator_counts",
    "load_encoder",
    "matmul_feeds",
    "matmul_models",
    "operator_counts",
    "optimize",
    "outputs_by_variant",
    "quantize_int4",
    "quantize_int8_dynamic",
    "quantize_qdq",
    "sample_inputs",
    "size_mb",
    "to_fp16",
    "encoder_files",
]

#: The encoder's shape: BERT-base width, four layers, a small vocabulary.
ENCODER: dict[str, int] = {
    "vocab_size": 8192,
    "hidden_size": 768,
    "num_hidden_layers": 4,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
}

#: The variants :func:`encoder_variants` builds, in the order lessons show them.
VARIANTS: tuple[str, ...] = ("optimized_dynamo", "optimized", "int8", "qdq", "int4", "fp16")

#: the CPU features that decide how fast int8 (and bfloat16) kernels can be
ISA_FLAGS: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

INPUT_NAMES: tuple[str, str] = ("input_ids", "attention_mask")
OUTPUT_NAMES: tuple[str, str] = ("last_hidden_state", "pooler_output")
_SEED = 0
_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime", "onnxscript")


# --------------------------------------------------------------------------------------------
# the cache folder


def _versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - all pinned
            out[name] = "missing"
    return out


def _folder() -> Path:
    """The encoder's folder in the cache, named after its shape and the library versions."""
    key = json.dumps({"encoder": ENCODER, "seed": _SEED, "versions": _versions()}, sort_keys=True)
    path = artefacts.folder(f"text-encoder-{hashlib.sha256(key.encode()).hexdigest()[:16]}")
    path.mkdir(parents=True, exist_ok=True)  # an existing read-only copy is left as it is
    return path


def _manifest(folder: Path, name: str = "manifest.json") -> dict[str, Any]:
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError):
        return {}


def _is_built(path: Path) -> bool:
    """True when ``path`` was finished by :func:`_build_file` (present, same size as recorded)."""
    size = _manifest(path.parent).get(path.name)
    return size is not None and path.exists() and _size(path) == size


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _build_file(path: Path, make: Callable[[Path], None]) -> Path:
    """Return ``path`` when built, else run ``make(tmp)`` and move ``tmp`` to ``path`` atomically."""
    if _is_built(path):
        return path
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tmp-")) / path.name
    try:
        with _quiet():
            make(tmp)
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    manifest = _manifest(path.parent)
    manifest[path.name] = _size(path)
    if path.suffix == ".onnx":  # counted once here, so that a lesson need not parse 143 MB again
        ops = _manifest(path.parent, "operators.json")
        ops[path.name] = _count_operators(path)
        (path.parent / "operators.json").write_text(json.dumps(ops, indent=1, sort_keys=True))
    (path.parent / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Exporters and quantizers print progress and warnings; none of it may reach a notebook."""
    with (
        warnings.catch_warnings(),
        _capture.quiet_native(),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        # loggers with their own handlers (torch's pytree notices on importing transformers)
        # write to the stream they were given, past any redirection: mute them for the block
        before = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(before)


# --------------------------------------------------------------------------------------------
# the PyTorch model


def encoder_config() -> BertConfig:
    """The encoder's ``transformers.BertConfig`` (:data:`ENCODER`, eager attention).

    Example:

    >>> cfg = encoder_config()
    >>> cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads
    (768, 4, 12)
    """
    from transformers import BertConfig

    return BertConfig(**ENCODER, attn_implementation="eager")


def build_encoder() -> Path:
    """Create the encoder with seeded random weights and ``save_pretrained`` it to the cache.

    Returns the folder (``config.json`` + ``model.safetensors``); nothing is downloaded. A second
    call returns the cached folder at once.
    """

    def make(folder: Path) -> None:
        import torch
        from transformers import BertModel

        torch.manual_seed(_SEED)
        BertModel(encoder_config(), add_pooling_layer=True).eval().save_pretrained(folder)

    return _build_file(_folder() / "hf", make)


def load_encoder() -> torch.nn.Module:
    """The cached encoder as a PyTorch module in eval mode (``transformers.BertModel``)."""
    folder = build_encoder()
    with _quiet():
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return BertModel.from_pretrained(folder, attn_implementation="eager").eval()


class _Outputs:
    """Wraps a BertModel so that it returns a tuple (``last_hidden_state``, ``pooler_output``)."""

    @staticmethod
    def wrap(model: Any) -> Any:
        import torch

        class EncoderOutputs(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
                out = self.inner(input_ids=input_ids, attention_mask=attention_mask)
                return out.last_hidden_state, out.pooler_output

        return EncoderOutputs(model).eval()


def sample_inputs(batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids and an attention mask (int64, ``[batch, seq]``) for the encoder.

    The first row fills all ``seq`` positions; the others (when ``seq > 1``) are padded after a
    random length from ``seq // 2`` to ``seq - 1`` (mask 0, token id 0), as a batch of sentences
    of unequal length is. Deterministic for a given ``seed``.

    Example:

    >>> feeds = sample_inputs(batch=3, seq=8, seed=1)
    >>> sorted(feeds), feeds["input_ids"].shape, feeds["input_ids"].dtype
    (['attention_mask', 'input_ids'], (3, 8), dtype('int64'))
    >>> int(feeds["attention_mask"][0].sum())
    8
    """
    if batch < 1 or seq < 1:
        raise ValueError(f"batch and seq must be >= 1, got batch={batch}, seq={seq}")
    if seq > ENCODER["max_position_embeddings"]:
        raise ValueError(
            f"seq={seq} exceeds the encoder's {ENCODER['max_position_embeddings']} positions"
        )
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, ENCODER["vocab_size"], size=(batch, seq), dtype=np.int64)
    lengths = np.full(batch, seq)
    if seq > 1:
        lengths[1:] = rng.integers(max(seq // 2, 1), seq, size=batch - 1)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids * mask, "attention_mask": mask}


# --------------------------------------------------------------------------------------------
# export


def _dynamic() -> dict[str, dict[int, str]]:
    return {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}


def export_dynamo(model: Any, path: Path) -> Path:
    """Export ``model`` (a BertModel) with ``torch.onnx.export(dynamo=True)``, dynamic axes.

    The example inputs have batch 2 and 16 tokens; both axes stay symbolic (``batch``,
    ``sequence``), so the file takes any batch and length up to 512 tokens.
    """
    import torch

    example = {k: torch.from_numpy(v) for k, v in sample_inputs(2, 16).items()}
    torch.onnx.export(
        _Outputs.wrap(model),
        (example["input_ids"], example["attention_mask"]),
        str(path),
        dynamo=True,
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        dynamic_shapes={name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES},
        external_data=False,
    )
    return path


def export_torchscript(model: Any, path: Path) -> Path:
    """Export ``model`` with the older TorchScript exporter (``dynamo=False``, dynamic axes).

    Kept because onnxruntime's transformer optimizer recognises the attention pattern this
    exporter writes (it fuses Attention and EmbedLayerNormalization), not yet the dynamo one.
    """
    import torch

    example = {k: torch.from_numpy(v) for k, v in sample_inputs(2, 16).items()}
    torch.onnx.export(
        _Outputs.wrap(model),
        (example["input_ids"], example["attention_mask"]),
        str(path),
        dynamo=False,
        input_names=list(INPUT_NAMES),
        output_names=list(OUTPUT_NAMES),
        dynamic_axes={**_dynamic(), OUTPUT_NAMES[0]: {0: "batch", 1: "sequence"}},
        opset_version=17,
    )
    return path


@artefacts.register("text-encoder")
def encoder_onnx() -> Path:
    """The float32 encoder exported with the dynamo exporter (cached; see the module docstring)."""
    return _build_file(_folder() / "encoder.onnx", lambda tmp: export_dynamo(load_encoder(), tmp))


def _torchscript_onnx() -> Path:
    return _build_file(
        _folder() / "encoder-torchscript.onnx",
        lambda tmp: export_torchscript(load_encoder(), tmp),
    )


# --------------------------------------------------------------------------------------------
# variants


def optimize(source: Path, out: Path, *, float16: bool = False) -> None:
    """onnxruntime's transformer optimizer (BERT fusions) on ``source``, saved to ``out``; with
    ``float16``, weights and activations are then stored in float16 (inputs/outputs stay float32)."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(source),
        model_type="bert",
        num_heads=ENCODER["num_attention_heads"],
        hidden_size=ENCODER["hidden_size"],
    )
    if float16:
        optimized.convert_float_to_float16(keep_io_types=True)
    optimized.save_model_to_file(str(out))


def to_fp16(source: Path, out: Path) -> None:
    """Optimize ``source``, then store weights and activations in float16 (float32 inputs/outputs)."""
    optimize(source, out, float16=True)


def quantize_int8_dynamic(source: Path, out: Path) -> None:
    """Dynamic int8: int8 weights, activations quantized on every call (MatMulInteger)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the fused contrib operators (Attention, SkipLayerNormalization) have no shape inference
    # in onnx: tell the quantizer that their outputs are float32
    quantize_dynamic(
        source,
        out,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def calibration_reader(batches: int = 4, seq: int = 64) -> Any:
    """A CalibrationDataReader over ``batches`` held sequences of ``seq`` tokens."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter([sample_inputs(1, seq, seed=100 + i) for i in range(batches)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    return Reader()


def quantize_qdq(source: Path, out: Path) -> None:
    """Static int8 in QDQ format: activation ranges calibrated once on held sequences."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        source,
        out,
        calibration_reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm", "Gather"],
    )


def quantize_int4(source: Path, out: Path) -> None:
    """Weight-only int4 in blocks of 32 (MatMulNBits for MatMul, GatherBlockQuantized for the
    embeddings); activations stay float32."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(source),
        block_size=32,
        is_symmetric=True,
        op_types_to_quantize=("MatMul", "Gather"),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)


@artefacts.register("text-encoder-variants")
def encoder_variants() -> dict[str, Path]:
    """Build (once) and return the encoder's variants, name -> path (:data:`VARIANTS`).

    - ``optimized_dynamo``: ``optimize_model`` on the dynamo export (:func:`encoder_onnx`);
    - ``optimized``: ``optimize_model`` on the TorchScript export (attention fused);
    - ``int8``: dynamic int8 of ``optimized`` (QAttention, MatMulInteger, quantized embeddings);
    - ``qdq``: static int8 in QDQ format of the float32 export, calibrated on 4 sequences;
    - ``int4``: weight-only int4 (MatMulNBits, GatherBlockQuantized, blocks of 32) of the export;
    - ``fp16``: ``optimized`` with float16 weights and activations, float32 inputs/outputs.
    """
    folder = _folder()
    fp32 = encoder_onnx()
    torchscript = _torchscript_onnx()
    out: dict[str, Path] = {}
    out["optimized_dynamo"] = _build_file(
        folder / "optimized-dynamo.onnx", lambda tmp: optimize(fp32, tmp)
    )
    out["optimized"] = _build_file(
        folder / "optimized.onnx", lambda tmp: optimize(torchscript, tmp)
    )
    out["int8"] = _build_file(
        folder / "int8.onnx", lambda tmp: quantize_int8_dynamic(out["optimized"], tmp)
    )
    out["qdq"] = _build_file(folder / "qdq.onnx", lambda tmp: quantize_qdq(fp32, tmp))
    out["int4"] = _build_file(folder / "int4.onnx", lambda tmp: quantize_int4(fp32, tmp))
    out["fp16"] = _build_file(folder / "fp16.onnx", lambda tmp: to_fp16(torchscript, tmp))
    return out


# --------------------------------------------------------------------------------------------
# reading the results


#: operators onnxruntime's transformer optimizer and quantizers write (domain com.microsoft)
FUSED_OPS: tuple[str, ...] = (
    "Attention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "QAttention",
    "QEmbedLayerNormalization",
    "MatMulNBits",
    "GatherBlockQuantized",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
)


def _count_operators(model: str | Path | onnx.ModelProto) -> dict[str, int]:
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    return dict(Counter(node.op_type for node in proto.graph.node))


def operator_counts(model: str | Path | onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each operator type the main graph has.

    For a file this module built, the counts recorded when it was built are returned (parsing a
    143 MB file takes a second and its size in memory); any other model is parsed.

    Example:

    >>> from onnx import helper
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [], [])
    >>> operator_counts(helper.make_model(g))
    {'Relu': 1}
    """
    if not isinstance(model, (str, Path)):
        return _count_operators(model)
    path = Path(model)
    if _is_built(path):
        recorded = _manifest(path.parent, "operators.json").get(path.name)
        if recorded is not None:
            return dict(recorded)
    return _count_operators(path)


def encoder_session(model: str | Path, threads: int | None = 2) -> Any:
    """An onnxruntime CPU session for one of the encoder files, frugal with memory.

    The memory arena is off: with it, each session keeps its largest activations' buffers
    reserved, which for six variants of a 143 MB model side by side costs hundreds of megabytes
    for little speed. ``threads`` intra-op threads (None: onnxruntime's default); errors only
    in the log.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def fused_operator_counts(model: str | Path | onnx.ModelProto) -> dict[str, int]:
    """The fused and quantized operators of :data:`FUSED_OPS` in ``model`` (0 when absent),
    with the plain ``MatMul``, ``MatMulInteger`` and ``Softmax`` counts for comparison."""
    counts = operator_counts(model)
    names = (*FUSED_OPS, "MatMul", "MatMulInteger", "Softmax", "LayerNormalization")
    return {name: counts.get(name, 0) for name in names}


def agreement(
    reference: np.ndarray, candidate: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """How close ``candidate`` is to ``reference`` (``[batch, seq, hidden]`` or ``[batch, hidden]``).

    Returns the mean cosine similarity of the token vectors (1.0 = same direction), its minimum
    and the maximum absolute difference; with ``mask`` (``[batch, seq]``) padded positions are
    left out, since nothing downstream reads them.

    Example:

    >>> a = np.ones((1, 2, 4), np.float32)
    >>> agreement(a, a + 0.5)["max_abs_diff"]
    0.5
    """
    ref = np.asarray(reference, np.float64)
    got = np.asarray(candidate, np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, candidate {got.shape}")
    if mask is not None and ref.ndim == 3:
        keep = np.asarray(mask).astype(bool)
        ref, got = ref[keep], got[keep]
    ref = ref.reshape(-1, ref.shape[-1])
    got = got.reshape(-1, got.shape[-1])
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
    return {
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "max_abs_diff": float(np.abs(ref - got).max()),
    }


def size_mb(path: str | Path) -> float:
    """The file's size in MB (10^6 bytes)."""
    return Path(path).stat().st_size / 1e6


def encoder_files() -> dict[str, Path]:
    """``fp32`` (the dynamo export) followed by :func:`encoder_variants`, name -> path."""
    return {"fp32": encoder_onnx(), **encoder_variants()}


def outputs_by_variant(
    feeds: Mapping[str, np.ndarray], names: tuple[str, ...] | None = None, threads: int = 2
) -> dict[str, np.ndarray]:
    """``last_hidden_state`` of each encoder file on ``feeds`` (onnxruntime, CPU)."""
    files = encoder_files()
    out = {}
    for name in names or tuple(files):
        sess = encoder_session(files[name], threads)
        out[name] = sess.run([OUTPUT_NAMES[0]], dict(feeds))[0]
        del sess
    return out


def cpu_flags(names: tuple[str, ...] = ISA_FLAGS) -> dict[str, bool]:
    """Which of the instruction-set extensions in ``names`` this CPU reports (``/proc/cpuinfo``).

    ``avx512_vnni`` / ``avx_vnni`` add int8 dot products (4 multiply-adds in one instruction),
    ``amx_int8`` / ``amx_bf16`` add matrix tiles, ``avx512_bf16`` bfloat16 dot products; every
    value is False where the file is missing (macOS, Windows).
    """
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:  # pragma: no cover - not Linux
        return dict.fromkeys(names, False)
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            break
    return {name: name in flags for name in names}


def matmul_models(rows: int, k: int, n: int, seed: int = 0) -> dict[str, onnx.ModelProto]:
    """One encoder-sized matrix product three ways, to time the int8 kernel against float32.

    ``fp32``: ``MatMul`` of float32 ``x`` ``[rows, k]`` by a float32 weight ``[k, n]``;
    ``int8``: ``DynamicQuantizeLinear`` of ``x`` then ``MatMulInteger`` (uint8 x int8 weight),
    what dynamic quantization writes, without the rescale; ``int8_kernel``: ``MatMulInteger``
    alone on an already-uint8 input ``xq``, the integer kernel that VNNI or AMX speed up.

    Example:

    >>> models = matmul_models(4, 8, 16)
    >>> sorted(models), [n.op_type for n in models["int8"].graph.node]
    (['fp32', 'int8', 'int8_kernel'], ['DynamicQuantizeLinear', 'MatMulInteger'])
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((k, n)).astype(np.float32)
    weight8 = np.clip(np.round(weight * 32), -127, 127).astype(np.int8)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])
    xq = helper.make_tensor_value_info("xq", TensorProto.UINT8, [rows, k])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])
    y32 = helper.make_tensor_value_info("y", TensorProto.INT32, [rows, n])
    opset = [helper.make_opsetid("", 17)]

    def model(nodes: list[Any], inputs: list[Any], output: Any, init: Any) -> onnx.ModelProto:
        graph = helper.make_graph(nodes, "matmul", inputs, [output], [init])
        return helper.make_model(graph, opset_imports=opset)

    fp32 = model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [x],
        y,
        numpy_helper.from_array(weight, "w"),
    )
    w8 = numpy_helper.from_array(weight8, "w")
    int8 = model(
        [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "scale", "zero"]),
            helper.make_node("MatMulInteger", ["q", "w", "zero"], ["y"]),
        ],
        [x],
        y32,
        w8,
    )
    kernel = model([helper.make_node("MatMulInteger", ["xq", "w"], ["y"])], [xq], y32, w8)
    return {"fp32": fp32, "int8": int8, "int8_kernel": kernel}


def matmul_feeds(rows: int, k: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Inputs for :func:`matmul_models`, by model name."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    xq = rng.integers(0, 256, size=(rows, k), dtype=np.uint8)
    return {"fp32": {"x": x}, "int8": {"x": x}, "int8_kernel": {"xq": xq}}
