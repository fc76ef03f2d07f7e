"""Triton model configurations (``config.pbtxt``) for ONNX models: generate, parse, validate.

NVIDIA Triton Inference Server loads a *model repository*: one folder per model, a
``config.pbtxt`` in Triton's protobuf text format, and one numbered folder per version::

    models/
      digits/
        config.pbtxt
        1/model.onnx

This module writes and checks those files without Triton itself (a Linux service, usually run
as a container with GPUs): the configuration is parsed with Triton's own ``ModelConfig``
protobuf schema (``tritonclient.grpc.model_config_pb2``), so a misspelt key or a bad enum value
fails exactly as Triton's parser fails, and :func:`validate_config` re-implements the checks
Triton's ONNX Runtime backend makes against the ONNX file (names, data types, dimensions, the
batch dimension, dynamic batching), reporting problems in Triton's words.

It also builds the TensorRT settings that need a GPU: :func:`tensorrt_provider_options` for
ONNX Runtime's ``TensorrtExecutionProvider`` (shape profiles, engine and timing caches) and the
``optimization`` section of a Triton configuration.

Example::

    from course import triton_config
    text = triton_config.model_config(onnx_model, "digits", max_batch_size=32,
                                      dynamic_batching=True, max_queue_delay_microseconds=1000)
    triton_config.validate_config(text, onnx_model, name="digits")     # [] when valid
    triton_config.write_model("models", "digits", onnx_model, text)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx

from course import _optional

__all__ = [
    "ONNX_TO_TRITON",
    "TensorRTUnavailable",
    "TritonConfigError",
    "check_config",
    "model_config",
    "parse_config",
    "repository_tree",
    "tensorrt_available",
    "tensorrt_provider_options",
    "tensorrt_providers",
    "validate_config",
    "write_model",
    "write_repository_files",
]

#: ONNX element type -> Triton data type name.
ONNX_TO_TRITON = {
    onnx.TensorProto.BOOL: "TYPE_BOOL",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32",
    onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT16: "TYPE_INT16",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.STRING: "TYPE_STRING",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
}
_PLATFORM = "onnxruntime_onnx"
_BACKEND = "onnxruntime"


class TritonConfigError(ValueError):
    """A configuration Triton would refuse; ``problems`` lists every reason found."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]


class TensorRTUnavailable(RuntimeError):
    """ONNX Runtime has no TensorRT execution provider here (no GPU build, no TensorRT)."""


def _pb2() -> Any:
    # Triton's configuration schema ships with tritonclient's gRPC part
    return _optional.require(
        "tritonclient.grpc.model_config_pb2", "tritonclient[grpc]", "Triton's configuration schema"
    )


# --------------------------------------------------------------------------------------------
# reading the ONNX model


def _load(model: Any) -> onnx.ModelProto:
    from course import _model

    return _model.load(model, load_external_data=False)


def _tensors(model: onnx.ModelProto, kind: str) -> list[tuple[str, int, list[int]]]:
    """(name, elem_type, dims with -1 for a free dimension) of the graph inputs or outputs."""
    graph = model.graph
    values = graph.input if kind == "input" else graph.output
    initializers = {t.name for t in graph.initializer}
    found = []
    for value in values:
        if value.name in initializers:
            continue
        if not value.type.HasField("tensor_type"):
            raise TritonConfigError(
                f"{kind} '{value.name}' is a {value.type.WhichOneof('value')}, not a tensor: "
                "Triton's ONNX backend serves tensors only (scikit-learn classifiers: "
                "convert with zipmap=False)"
            )
        tensor = value.type.tensor_type
        dims = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
            for d in tensor.shape.dim
        ]
        found.append((value.name, tensor.elem_type, dims))
    return found


def _triton_type(elem_type: int, name: str) -> str:
    if elem_type not in ONNX_TO_TRITON:
        raise TritonConfigError(
            f"tensor '{name}' has ONNX type {onnx.helper.tensor_dtype_to_string(elem_type)}, "
            "which Triton has no data type for"
        )
    return ONNX_TO_TRITON[elem_type]


# --------------------------------------------------------------------------------------------
# generating


def model_config(
    model: onnx.ModelProto | str | Path,
    name: str,
    *,
    max_batch_size: int = 0,
    dynamic_batching: bool = False,
    max_queue_delay_microseconds: int = 0,
    preferred_batch_sizes: Sequence[int] = (),
    instance_count: int | None = None,
    instance_kind: str = "KIND_CPU",
    tensorrt: Mapping[str, str] | None = None,
) -> str:
    """A ``config.pbtxt`` for an ONNX model, built with Triton's schema and checked.

    Inputs and outputs are read from the model. With ``max_batch_size > 0`` Triton adds the
    batch dimension itself, so ``dims`` leave out the first dimension (which must be dynamic in
    the model); a tensor of shape ``[batch]`` gets ``dims: [1]`` and an empty ``reshape``. ``tensorrt`` adds Triton's TensorRT accelerator for the ONNX Runtime backend
    (GPU only), with parameters such as ``{"precision_mode": "FP16"}``.

    Raises :class:`TritonConfigError` if the result would not load in Triton.

    Example::

        >>> text = model_config("mlp.onnx", "digits", max_batch_size=32, dynamic_batching=True)
        >>> print(text.splitlines()[0])
        name: "digits"
    """
    from google.protobuf import text_format

    pb2 = _pb2()
    proto = _load(model)
    config = pb2.ModelConfig(name=name, platform=_PLATFORM, max_batch_size=max_batch_size)
    skip = 1 if max_batch_size > 0 else 0
    for kind, field in (("input", config.input), ("output", config.output)):
        for tensor_name, elem_type, dims in _tensors(proto, kind):
            entry = field.add(name=tensor_name, data_type=_triton_type(elem_type, tensor_name))
            if dims[skip:]:
                entry.dims.extend(dims[skip:])
            else:  # Triton needs at least one dim: [1], reshaped to the model's scalar per row
                entry.dims.append(1)
                entry.reshape.SetInParent()
    if dynamic_batching:
        config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_microseconds
        config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes)
    elif preferred_batch_sizes or max_queue_delay_microseconds:
        raise TritonConfigError(
            "preferred_batch_sizes and max_queue_delay_microseconds belong to dynamic batching: "
            "pass dynamic_batching=True"
        )
    if instance_count is not None:
        config.instance_group.add(count=instance_count, kind=instance_kind)
    if tensorrt is not None:
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(
            name="tensorrt"
        )
        for key, value in tensorrt.items():
            accelerator.parameters[key] = str(value)
    text = text_format.MessageToString(config)
    check_config(text, proto, name=name)
    return text


# --------------------------------------------------------------------------------------------
# parsing and validating


def parse_config(text: str) -> Any:
    """Parse ``config.pbtxt`` text with Triton's ``ModelConfig`` schema.

    Raises :class:`TritonConfigError` with the parser's line and column for unknown fields,
    bad enum values and syntax errors (the same errors Triton reports when it loads the file).

    Example::

        >>> parse_config('name: "m" max_batch_size: 8').max_batch_size
        8
    """
    from google.protobuf import text_format

    if not isinstance(text, str):
        raise TypeError(f"config text must be a str, got {type(text).__name__}")
    config = _pb2().ModelConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise TritonConfigError(
            f"config.pbtxt does not parse as Triton's ModelConfig: {exc} (check the field names "
            "against Triton's model_config.proto; enum values such as TYPE_FP32 and KIND_CPU are "
            "written without quotes)"
        ) from None
    return config


def _dims_text(dims: Sequence[int]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


def validate_config(
    config: Any, model: onnx.ModelProto | str | Path, *, name: str | None = None
) -> list[str]:
    """Every reason Triton's ONNX Runtime backend would refuse this configuration for the model.

    ``config`` is ``config.pbtxt`` text or a parsed ``ModelConfig``; ``name`` is the model's
    folder name (Triton requires the two to match). An empty list means valid. Input and
    output lists may be left out (Triton then fills them in from the model), but tensors that
    are listed must match the model: name, data type, and dims (without the batch dimension
    when ``max_batch_size > 0``; a ``reshape`` shape, when given, is what must match). ``dims``
    is never empty: a tensor of shape ``[batch]`` is ``dims: [1]`` with ``reshape: { shape: [] }``.

    Example::

        >>> validate_config(model_config("mlp.onnx", "digits"), "mlp.onnx", name="digits")
        []
    """
    if isinstance(config, str):
        config = parse_config(config)
    proto = _load(model)
    problems: list[str] = []
    label = config.name or name or "?"
    where = f"model '{label}'"
    if not config.name:
        problems.append(f"{where}: 'name' is not set; Triton requires it (the folder name)")
    elif name is not None and config.name != name:
        problems.append(
            f"{where}: the configuration name '{config.name}' differs from the model folder "
            f"'{name}'; they must match"
        )
    if not config.platform and not config.backend:
        problems.append(
            f'{where}: set platform: "{_PLATFORM}" or backend: "{_BACKEND}" for an ONNX model'
        )
    if config.platform and config.platform != _PLATFORM:
        problems.append(
            f"{where}: platform '{config.platform}' does not run ONNX files; use '{_PLATFORM}'"
        )
    if config.backend and config.backend != _BACKEND:
        problems.append(
            f"{where}: backend '{config.backend}' does not run ONNX files; use '{_BACKEND}'"
        )
    batch = config.max_batch_size
    if batch < 0:
        problems.append(f"{where}: max_batch_size must be >= 0, got {batch}")
    for kind, listed in (("input", config.input), ("output", config.output)):
        actual = {n: (t, d) for n, t, d in _tensors(proto, kind)}
        if batch > 0:
            for tensor_name, (_, dims) in actual.items():
                if not dims or dims[0] != -1:
                    problems.append(
                        f"{where}, tensor '{tensor_name}': for the model to support batching the "
                        "shape should have at least 1 dimension and the first dimension must be "
                        f"-1; but shape expected by the model is {_dims_text(dims)}"
                    )
        if listed and len(listed) != len(actual):
            problems.append(
                f"{where}: the configuration lists {len(listed)} {kind}s but the model has "
                f"{len(actual)} ({', '.join(actual)})"
            )
        seen: set[str] = set()
        for entry in listed:
            if entry.name in seen:
                problems.append(f"{where}: {kind} '{entry.name}' is listed twice")
            seen.add(entry.name)
            if entry.name not in actual:
                problems.append(
                    f"{where}: unexpected inference {kind} '{entry.name}', allowed {kind}s are: "
                    + ", ".join(actual)
                )
                continue
            elem_type, dims = actual[entry.name]
            want_type = ONNX_TO_TRITON.get(elem_type, "TYPE_INVALID")
            got_type = _pb2().DataType.Name(entry.data_type)
            if got_type == "TYPE_INVALID":
                problems.append(f"{where}, {kind} '{entry.name}': data_type must be specified")
            elif got_type != want_type:
                problems.append(
                    f"{where}: unexpected datatype {got_type} for {kind} '{entry.name}', "
                    f"the model has {want_type}"
                )
            if not entry.dims:
                problems.append(
                    f"{where}, {kind} '{entry.name}': dims must have at least one dimension; for a "
                    "tensor that is only the batch dimension write dims: [1] with "
                    "reshape: { shape: [ ] }"
                )
                continue
            config_dims = (
                list(entry.reshape.shape) if entry.HasField("reshape") else list(entry.dims)
            )
            full = ([-1] if batch > 0 else []) + config_dims
            if len(full) != len(dims):
                extra = (
                    " (an initial batch dimension because max_batch_size > 0 followed by the "
                    f"explicit tensor shape, making complete shape {_dims_text(full)})"
                    if batch > 0
                    else ""
                )
                problems.append(
                    f"{where}, tensor '{entry.name}': the model expects {len(dims)} dimensions "
                    f"(shape {_dims_text(dims)}) but the model configuration specifies "
                    f"{len(full)} dimensions{extra}"
                )
                continue
            for want, got in zip(dims[1 if batch > 0 else 0 :], config_dims, strict=True):
                if want != -1 and got != want:
                    problems.append(
                        f"{where}, tensor '{entry.name}': the model expects dims "
                        f"{_dims_text(dims)} but the model configuration specifies dims "
                        f"{_dims_text(full)}"
                    )
                    break
    if config.HasField("dynamic_batching"):
        if batch < 1:
            problems.append(
                f"{where}: dynamic batching needs max_batch_size >= 1 (the largest batch it may "
                f"form), got {batch}"
            )
        for size in config.dynamic_batching.preferred_batch_size:
            if size < 1 or (batch > 0 and size > batch):
                problems.append(
                    f"{where}: dynamic batching preferred size {size} must be between 1 and "
                    f"max_batch_size {batch}"
                )
    for group in config.instance_group:
        if group.count < 0:
            problems.append(f"{where}: instance_group count must be >= 0, got {group.count}")
    return problems


def check_config(
    config: Any, model: onnx.ModelProto | str | Path, *, name: str | None = None
) -> Any:
    """Parse and validate; return the ``ModelConfig`` or raise :class:`TritonConfigError`.

    Example::

        >>> text = model_config("mlp.onnx", "digits", max_batch_size=32)
        >>> check_config(text, "mlp.onnx", name="digits").max_batch_size
        32
    """
    parsed = parse_config(config) if isinstance(config, str) else config
    problems = validate_config(parsed, model, name=name)
    if problems:
        raise TritonConfigError(
            f"Triton would refuse this configuration ({len(problems)} problem(s)):\n- "
            + "\n- ".join(problems),
            problems,
        )
    return parsed


# --------------------------------------------------------------------------------------------
# the repository on disk


def write_model(
    root: str | Path,
    name: str,
    model: onnx.ModelProto | str | Path,
    config: str,
    *,
    version: int = 1,
) -> Path:
    """Write ``root/name/config.pbtxt`` and ``root/name/<version>/model.onnx`` (Triton's layout).

    The configuration is checked first; returns the path of the ONNX file.

    Example::

        >>> text = model_config("mlp.onnx", "digits", max_batch_size=32)
        >>> write_model("models", "digits", "mlp.onnx", text).as_posix()
        'models/digits/1/model.onnx'
    """
    _check_entry(name, version)
    proto = _load(model)
    check_config(config, proto, name=name)
    return write_repository_files(root, name, proto, config, version=version)


def _check_entry(name: str, version: int) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name[0] == ".":
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '-' or '.' only")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")


#: Configuration files other than config.pbtxt that a reader of the folder may find first
#: (course.serve also reads JSON and TOML); the writer removes them.
_OTHER_CONFIG_FILES = ("config.json", "config.toml")


def write_repository_files(
    root: str | Path,
    name: str,
    model: onnx.ModelProto | bytes | str | Path,
    config: str,
    *,
    version: int = 1,
) -> Path:
    """The one writer of Triton's repository layout: ``root/name/config.pbtxt`` (``config``
    as given) and ``root/name/<version>/model.onnx`` (a ModelProto, the bytes of an ONNX file,
    or a file copied as is); returns the ONNX file's path.

    It does not check ``config``: :func:`write_model` checks it with Triton's schema first,
    ``course.serve.add_model`` with the server's own parser. A ``config.json`` or
    ``config.toml`` left in the model's folder is removed, so the new ``config.pbtxt`` is the
    one read.

    Example::

        >>> path = write_repository_files("models", "mlp", "mlp.onnx", 'name: "mlp"')
        >>> path.as_posix(), (path.parent.parent / "config.pbtxt").read_text()
        ('models/mlp/1/model.onnx', 'name: "mlp"')
    """
    _check_entry(name, version)
    folder = Path(root) / name
    path = folder / str(version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, onnx.ModelProto):
        onnx.save_model(model, str(path))
    elif isinstance(model, bytes):
        path.write_bytes(model)
    else:
        path.write_bytes(Path(model).read_bytes())
    for other in _OTHER_CONFIG_FILES:
        (folder / other).unlink(missing_ok=True)
    (folder / "config.pbtxt").write_text(config, encoding="utf-8")
    return path


def repository_tree(root: str | Path) -> str:
    """The folders and files of a model repository as an indented tree, with file sizes.

    Example::

        >>> path = write_model("models", "digits", "mlp.onnx", model_config("mlp.onnx", "digits"))
        >>> print(repository_tree("models"))  # doctest: +ELLIPSIS
        models/
          digits/
            1/
              model.onnx (... B)
            config.pbtxt (... B)
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    lines = [f"{root.name}/"]

    def walk(folder: Path, depth: int) -> None:
        for path in sorted(folder.iterdir(), key=lambda p: (p.is_file(), p.name)):
            pad = "  " * depth
            if path.is_dir():
                lines.append(f"{pad}{path.name}/")
                walk(path, depth + 1)
            else:
                size = path.stat().st_size
                shown = f"{size} B" if size < 1000 else f"{size / 1000:.1f} kB"
                lines.append(f"{pad}{path.name} ({shown})")

    walk(root, 1)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# TensorRT


def tensorrt_available() -> bool:
    """Whether this onnxruntime build offers the ``TensorrtExecutionProvider``.

    Example::

        >>> isinstance(tensorrt_available(), bool)
        True
    """
    import onnxruntime as ort

    return "TensorrtExecutionProvider" in ort.get_available_providers()


def _shape_text(name: str, dims: Sequence[int]) -> str:
    return f"{name}:{'x'.join(str(d) for d in dims)}"


def tensorrt_provider_options(
    model: onnx.ModelProto | str | Path,
    *,
    batch: tuple[int, int, int] = (1, 8, 32),
    dims: Mapping[str, tuple[int, int, int]] | None = None,
    cache_dir: str | Path = "trt_cache",
    fp16: bool = False,
    workspace_bytes: int = 1 << 30,
) -> dict[str, str]:
    """Options for ONNX Runtime's ``TensorrtExecutionProvider`` with a shape profile and caches.

    TensorRT compiles an *engine* for a range of input shapes. Every dynamic dimension needs a
    (min, opt, max) triple: the batch (axis 0) takes ``batch``, other named dimensions take
    ``dims[name]``. The engine and timing caches are written to ``cache_dir`` so the next
    session start skips the (slow) engine build. Returns strings, as the provider expects.

    Example::

        >>> from onnx import TensorProto, helper
        >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
        ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 64])])
        >>> tensorrt_provider_options(helper.make_model(g))["trt_profile_opt_shapes"]
        'x:8x64'
    """
    proto = _load(model)
    dims = dict(dims or {})
    for label, triple in [("batch", batch), *dims.items()]:
        if len(triple) != 3 or not all(isinstance(v, int) and v > 0 for v in triple):
            raise ValueError(
                f"{label}: give (min, opt, max) as three positive integers, got {triple!r}"
            )
        if not triple[0] <= triple[1] <= triple[2]:
            raise ValueError(f"{label}: need min <= opt <= max, got {triple}")
    profiles: list[list[str]] = [[], [], []]
    used: set[str] = set()
    for value in proto.graph.input:
        if value.name in {t.name for t in proto.graph.initializer}:
            continue
        shape = value.type.tensor_type.shape.dim
        rows: list[list[int]] = [[], [], []]
        for axis, dim in enumerate(shape):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                triple = (dim.dim_value,) * 3
            elif dim.dim_param in dims:
                triple = dims[dim.dim_param]
                used.add(dim.dim_param)
            elif axis == 0:
                triple = batch
            else:
                raise ValueError(
                    f"input '{value.name}' axis {axis} is dynamic ('{dim.dim_param or '?'}'): "
                    f"give its (min, opt, max) in dims={{'{dim.dim_param or 'name'}': (...)}}"
                )
            for row, size in zip(rows, triple, strict=True):
                row.append(size)
        for profile, row in zip(profiles, rows, strict=True):
            profile.append(_shape_text(value.name, row))
    unknown = sorted(set(dims) - used)
    if unknown:
        raise ValueError(f"dims names {unknown} are not dynamic dimensions of the model's inputs")
    cache = os.fspath(cache_dir)
    return {
        "device_id": "0",
        "trt_max_workspace_size": str(workspace_bytes),
        "trt_fp16_enable": "1" if fp16 else "0",
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": cache,
        "trt_profile_min_shapes": ",".join(profiles[0]),
        "trt_profile_opt_shapes": ",".join(profiles[1]),
        "trt_profile_max_shapes": ",".join(profiles[2]),
    }


def tensorrt_providers(options: Mapping[str, str]) -> list[Any]:
    """The ``providers`` list for ``onnxruntime.InferenceSession``: TensorRT, then CUDA, then CPU.

    Raises :class:`TensorRTUnavailable` (with what to install) where this onnxruntime build has
    no TensorRT provider, instead of letting onnxruntime fall back to the CPU silently.

    Example::

        >>> options = tensorrt_provider_options("mlp.onnx")
        >>> if tensorrt_available():  # only where onnxruntime has TensorRT
        ...     providers = tensorrt_providers(options)
    """
    import onnxruntime as ort

    if not tensorrt_available():
        raise TensorRTUnavailable(
            "onnxruntime has no TensorrtExecutionProvider here (available: "
            f"{', '.join(ort.get_available_providers())}); it needs an NVIDIA GPU, the "
            "onnxruntime-gpu package and TensorRT libraries matching its CUDA version"
        )
    return [
        ("TensorrtExecutionProvider", dict(options)),
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
