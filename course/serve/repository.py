"""The model repository: Triton's folder layout, per-model configuration, onnxruntime sessions.

A repository is a folder with one subfolder per model and one numbered subfolder per version::

    models/
      mlp/
        config.pbtxt        # optional: Triton's text format, or config.json / config.toml
        1/model.onnx
        2/model.onnx        # the highest version answers requests that name no version

The configuration keys are Triton's (a subset), in any of the three formats:

- ``max_batch_size`` (default 0): the largest batch (first dimension) a request or a dynamic
  batch may have; 0 means the model's first dimension is not a batch dimension.
- ``dynamic_batching { max_queue_delay_microseconds: N }``: gather concurrent requests into one
  run of at most ``max_batch_size`` rows, waiting at most N microseconds (default 0) for more.
  Absent means off: each request runs on its own.
- ``instance_group [ { count: N, kind: KIND_CPU } ]``: N instances of the model, each its own
  onnxruntime session with ``cores // N`` threads; a request (or a dynamic batch) runs on whichever
  instance is free, so up to N runs overlap. Absent means Triton's default of one instance with
  the server's defaults (see :func:`default_intra_op_threads`). Several groups add up; ``kind``
  must be ``KIND_CPU`` or ``KIND_AUTO`` (this server has no GPU instances).
- ``default_model_filename`` (default ``model.onnx``), ``name`` (must match the folder),
  ``platform: "onnxruntime_onnx"`` / ``backend: "onnxruntime"``; ``input`` and ``output`` are
  accepted and ignored (the ONNX file declares its tensors).

Example::

    >>> import tempfile, onnx
    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Relu", ["x"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    >>> root = tempfile.mkdtemp()
    >>> _ = add_model(root, "relu", helper.make_model(graph), max_batch_size=8,
    ...               dynamic_batching=True, max_queue_delay_microseconds=500)
    >>> repo = load_repository(root)
    >>> repo.get("relu").config.dynamic_batching.max_queue_delay_microseconds
    500
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from course.serve.protocol import ProtocolError, TensorSpec
from course.triton_config import write_repository_files

__all__ = [
    "ConfigError",
    "DynamicBatching",
    "ModelConfig",
    "ModelRepository",
    "ModelVersion",
    "RepositoryError",
    "add_model",
    "load_repository",
    "parse_config",
    "parse_pbtxt",
]

#: onnxruntime's type strings -> protocol datatypes.
ONNX_TO_DATATYPE = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

CONFIG_FILES = ("config.pbtxt", "config.json", "config.toml")
_KEYS = {
    "name",
    "platform",
    "backend",
    "max_batch_size",
    "dynamic_batching",
    "default_model_filename",
    "instance_group",
}
_IGNORED_KEYS = {"input", "output"}
_BATCHING_KEYS = {"max_queue_delay_microseconds"}
_INSTANCE_KEYS = {"count", "kind", "name"}
_INSTANCE_KINDS = {"KIND_CPU", "KIND_AUTO"}


class RepositoryError(Exception):
    """The model repository cannot be served as it is; the message says what to fix."""


class ConfigError(RepositoryError):
    """A model's configuration file is malformed or asks for something unsupported."""


@dataclass(frozen=True)
class DynamicBatching:
    """Dynamic batching settings: how long the first queued request may wait for company."""

    max_queue_delay_microseconds: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """A model's serving configuration (Triton's keys, see the module docstring).

    ``instance_count`` is ``None`` when the configuration has no ``instance_group``.

    Example::

        >>> ModelConfig("mlp", max_batch_size=32, dynamic_batching=DynamicBatching(1000)).batching
        True
        >>> ModelConfig("mlp", instance_count=2).instances
        2
    """

    name: str
    max_batch_size: int = 0
    dynamic_batching: DynamicBatching | None = None
    default_model_filename: str = "model.onnx"
    source: str | None = None
    instance_count: int | None = None

    @property
    def batching(self) -> bool:
        """Whether concurrent requests are gathered into batches."""
        return self.dynamic_batching is not None

    @property
    def instances(self) -> int:
        """How many sessions serve the model (1 without an ``instance_group``)."""
        return self.instance_count or 1


# --------------------------------------------------------------------------------------------
# configuration files
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|([{}\[\]:,;])|([^\s{}\[\]:,;#"\']+))'
)


def _pbtxt_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ConfigError(f"cannot read config.pbtxt near {text[position : position + 20]!r}")
        position = match.end()
        comment, string, punct, word = match.groups()
        if comment is None:
            tokens.append(string or punct or word)
    return tokens


def _pbtxt_scalar(token: str) -> Any:
    if token[0] in "\"'":
        return token[1:-1].encode("utf-8").decode("unicode_escape")
    if token in ("true", "false"):
        return token == "true"
    for convert in (int, float):
        try:
            return convert(token)
        except ValueError:
            pass
    return token  # an enum value such as KIND_CPU or TYPE_FP32


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Parse protobuf text format (Triton's ``config.pbtxt``) into nested dicts.

    A field repeated in the text becomes a list.

    Example::

        >>> parse_pbtxt('max_batch_size: 8  dynamic_batching { max_queue_delay_microseconds: 100 }')
        {'max_batch_size': 8, 'dynamic_batching': {'max_queue_delay_microseconds': 100}}
    """
    tokens = _pbtxt_tokens(text)
    position = 0

    def expect_value() -> Any:
        nonlocal position
        if position >= len(tokens):
            raise ConfigError("config.pbtxt ends where a value was expected")
        token = tokens[position]
        position += 1
        if token == "{":
            return message("}")
        if token == "[":
            items = []
            while position < len(tokens) and tokens[position] != "]":
                items.append(expect_value())
                if position < len(tokens) and tokens[position] in ",;":
                    position += 1
            if position >= len(tokens):
                raise ConfigError("config.pbtxt: a list '[' is never closed")
            position += 1
            return items
        if token in "}]:,;":
            raise ConfigError(f"config.pbtxt: expected a value, found {token!r}")
        return _pbtxt_scalar(token)

    def message(end: str | None) -> dict[str, Any]:
        nonlocal position
        fields: dict[str, Any] = {}
        while position < len(tokens):
            token = tokens[position]
            if token == end:
                position += 1
                return fields
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token):
                raise ConfigError(f"config.pbtxt: expected a field name, found {token!r}")
            position += 1
            if position < len(tokens) and tokens[position] == ":":
                position += 1
            value = expect_value()
            if position < len(tokens) and tokens[position] in ",;":
                position += 1
            if token in fields:
                previous = fields[token]
                fields[token] = (
                    [*previous, value] if isinstance(previous, list) else [previous, value]
                )
            else:
                fields[token] = value
        if end is not None:
            raise ConfigError("config.pbtxt: a message '{' is never closed")
        return fields

    return message(None)


def _nonnegative_int(value: Any, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    return value


def _instance_count(value: Any, where: str) -> int:
    """The total ``count`` of Triton's ``instance_group`` (one group or a list of groups)."""
    groups = [value] if isinstance(value, Mapping) else value
    if not isinstance(groups, list) or not groups:
        raise ConfigError(
            f"{where}: instance_group must be a list of groups such as "
            f"[ {{ count: 2, kind: KIND_CPU }} ], got {value!r}"
        )
    total = 0
    for group in groups:
        if not isinstance(group, Mapping):
            raise ConfigError(
                f"{where}: each instance_group entry must be a section, got {group!r}"
            )
        unknown = sorted(set(group) - _INSTANCE_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unsupported instance_group key(s) {unknown}; "
                f"supported: {sorted(_INSTANCE_KEYS)}"
            )
        kind = group.get("kind", "KIND_AUTO")
        if kind not in _INSTANCE_KINDS:
            raise ConfigError(
                f"{where}: instance_group kind {kind!r} is not served here: this server runs "
                "onnxruntime on the CPU only; use KIND_CPU (or leave kind out)"
            )
        count = group.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(
                f"{where}: instance_group count must be a positive integer, got {count!r}"
            )
        total += count
    return total


def parse_config(data: Mapping[str, Any], name: str, source: str | None = None) -> ModelConfig:
    """Check a configuration mapping (from any of the three formats) and build a ModelConfig.

    Example::

        >>> parse_config({"max_batch_size": 16, "dynamic_batching": {}}, "mlp").batching
        True
        >>> parse_config({"instance_group": [{"count": 2, "kind": "KIND_CPU"}]}, "mlp").instances
        2
    """
    where = source or f"configuration of model '{name}'"
    unknown = sorted(set(data) - _KEYS - _IGNORED_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unsupported key(s) {unknown}; supported keys are {sorted(_KEYS)} "
            f"(and {sorted(_IGNORED_KEYS)}, which are ignored)"
        )
    if "name" in data and data["name"] != name:
        raise ConfigError(
            f"{where}: name {data['name']!r} differs from the model folder {name!r}; "
            "rename one so they match (Triton requires it too)"
        )
    platform = data.get("platform", "onnxruntime_onnx")
    backend = data.get("backend", "onnxruntime")
    if platform != "onnxruntime_onnx" or backend != "onnxruntime":
        raise ConfigError(
            f"{where}: this server runs ONNX models with onnxruntime only "
            f"(platform 'onnxruntime_onnx', backend 'onnxruntime'), got {platform!r}/{backend!r}"
        )
    max_batch_size = _nonnegative_int(data.get("max_batch_size", 0), "max_batch_size", where)
    batching = None
    if "dynamic_batching" in data:
        section = data["dynamic_batching"]
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where}: dynamic_batching must be a section (a table / object)")
        unknown = sorted(set(section) - _BATCHING_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unsupported dynamic_batching key(s) {unknown}; "
                f"supported: {sorted(_BATCHING_KEYS)}"
            )
        delay = _nonnegative_int(
            section.get("max_queue_delay_microseconds", 0), "max_queue_delay_microseconds", where
        )
        if max_batch_size < 1:
            raise ConfigError(
                f"{where}: dynamic_batching needs max_batch_size of at least 1 (the largest "
                "batch the batcher may form)"
            )
        batching = DynamicBatching(delay)
    filename = data.get("default_model_filename", "model.onnx")
    if not isinstance(filename, str) or not filename or "/" in filename:
        raise ConfigError(f"{where}: default_model_filename must be a file name, got {filename!r}")
    instances = _instance_count(data["instance_group"], where) if "instance_group" in data else None
    return ModelConfig(name, max_batch_size, batching, filename, source, instances)


def read_config(model_dir: Path) -> ModelConfig:
    """Read a model folder's configuration file (if any) into a ModelConfig."""
    found = [model_dir / f for f in CONFIG_FILES if (model_dir / f).is_file()]
    if len(found) > 1:
        raise ConfigError(
            f"model folder {model_dir} has several configuration files "
            f"{[f.name for f in found]}: keep one"
        )
    if not found:
        return ModelConfig(model_dir.name)
    path = found[0]
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".pbtxt":
            data = parse_pbtxt(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be an object / table")
    return parse_config(data, model_dir.name, str(path))


# --------------------------------------------------------------------------------------------
# models and sessions
# --------------------------------------------------------------------------------------------


def _spec(arg: Any, model: str, kind: str) -> TensorSpec:
    datatype = ONNX_TO_DATATYPE.get(arg.type)
    if datatype is None:
        raise RepositoryError(
            f"model '{model}': {kind} '{arg.name}' has type {arg.type}, which the protocol "
            "cannot carry (tensors only); for scikit-learn classifiers convert with zipmap=False"
        )
    shape = []
    dims: list[str | None] = []
    for dim in arg.shape or []:
        if isinstance(dim, int) and dim >= 0:
            shape.append(dim)
            dims.append(None)
        else:
            shape.append(-1)
            dims.append(dim if isinstance(dim, str) and dim else None)
    return TensorSpec(arg.name, datatype, tuple(shape), tuple(dims))


@dataclass
class ModelVersion:
    """One loaded version of a model: its onnxruntime session(s) and tensor specifications.

    ``sessions`` holds one session per instance (``config.instances``); ``session`` is the first.
    """

    name: str
    version: str
    path: Path
    config: ModelConfig
    session: ort.InferenceSession
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sessions: tuple[ort.InferenceSession, ...] = ()

    def __post_init__(self) -> None:
        if not self.sessions:
            self.sessions = (self.session,)

    def run(self, inputs: Mapping[str, np.ndarray], instance: int = 0) -> dict[str, np.ndarray]:
        """Run instance ``instance``'s session on arrays by input name; return every output by name.

        Example:

            >>> _ = add_model("models", "mlp", onnx.load("mlp.onnx"))
            >>> model = load_repository("models").get("mlp")
            >>> model.run({"x": np.ones((2, 4), np.float32)})["y"].shape
            (2, 3)
        """
        values = self.sessions[instance].run(None, dict(inputs))
        return {spec.name: value for spec, value in zip(self.outputs, values, strict=True)}

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        """The protocol's model metadata response."""
        return {
            "name": self.name,
            "versions": versions,
            "platform": "onnxruntime_onnx",
            "inputs": [spec.to_metadata() for spec in self.inputs],
            "outputs": [spec.to_metadata() for spec in self.outputs],
        }

    def triton_config(self) -> dict[str, Any]:
        """The model configuration as Triton's ``GET .../config`` returns it (JSON form)."""
        batched = self.config.max_batch_size > 0

        def tensors(specs: tuple[TensorSpec, ...]) -> list[dict[str, Any]]:
            return [
                {
                    "name": spec.name,
                    "data_type": "TYPE_STRING"
                    if spec.datatype == "BYTES"
                    else f"TYPE_{spec.datatype}",
                    "dims": list(spec.shape[1:] if batched else spec.shape),
                }
                for spec in specs
            ]

        config: dict[str, Any] = {
            "name": self.name,
            "platform": "onnxruntime_onnx",
            "backend": "onnxruntime",
            "max_batch_size": self.config.max_batch_size,
            "default_model_filename": self.config.default_model_filename,
            "input": tensors(self.inputs),
            "output": tensors(self.outputs),
        }
        if self.config.dynamic_batching is not None:
            config["dynamic_batching"] = {
                "max_queue_delay_microseconds": self.config.dynamic_batching.max_queue_delay_microseconds
            }
        config["instance_group"] = [{"count": self.config.instances, "kind": "KIND_CPU"}]
        return config


def default_intra_op_threads(
    batched: bool, workers: int | None, instances: int | None = None
) -> int | None:
    """onnxruntime threads per run when the caller sets none (``None``: onnxruntime's default).

    With an ``instance_group`` of N instances, up to N runs overlap: each instance's session gets
    ``cores // N`` threads. Without one, a batched model runs one batch at a time: all cores
    (onnxruntime's default); an unbatched one runs up to ``workers`` requests at once on one
    session, so each run gets ``cores // workers`` threads and concurrent runs fill the cores
    without oversubscribing them. Measured on 2 shared cores (text encoder, 32 clients, no
    batching): 2 runs x 2 threads each answered 23-25 requests/s, 2 runs x 1 thread 36-41.

    Example::

        >>> default_intra_op_threads(batched=True, workers=2) is None
        True
        >>> default_intra_op_threads(batched=False, workers=os.cpu_count())
        1
        >>> default_intra_op_threads(batched=True, workers=2, instances=os.cpu_count())
        1
    """
    cores = os.cpu_count() or 1
    if instances is not None:
        return max(1, cores // instances)
    if batched:
        return None
    return max(1, cores // (workers or cores))


def _session(
    path: Path,
    intra_op_threads: int | None,
    batched: bool,
    workers: int | None = None,
    instances: int | None = None,
) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 4  # run errors go to the client, not to stderr
    if intra_op_threads is None:
        intra_op_threads = default_intra_op_threads(batched, workers, instances)
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    if batched:
        # After each batch onnxruntime's pool spins, waiting for more work, on the cores the event
        # loop needs to gather the next batch: measured on 2 cores, the server then used 1.76
        # cores and batching gained nothing for a small MLP; without spinning, 1.0 core and 1.2-1.4x.
        # Unbatched models keep spinning: it saves a thread wake-up per request at low load.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RepositoryError(f"onnxruntime cannot load {path}: {exc}") from exc


def _load_version(
    model_dir: Path,
    version_dir: Path,
    config: ModelConfig,
    intra_op_threads: int | None,
    workers: int | None = None,
) -> ModelVersion:
    path = version_dir / config.default_model_filename
    if not path.is_file():
        raise RepositoryError(
            f"model '{model_dir.name}' version {version_dir.name}: {path} not found; put the ONNX "
            f"file there (or set default_model_filename in the model's configuration)"
        )
    sessions = tuple(
        _session(
            path,
            intra_op_threads,
            batched=config.dynamic_batching is not None,
            workers=workers,
            instances=config.instance_count,
        )
        for _ in range(config.instances)
    )
    session = sessions[0]
    name = model_dir.name
    inputs = tuple(_spec(arg, name, "input") for arg in session.get_inputs())
    outputs = tuple(_spec(arg, name, "output") for arg in session.get_outputs())
    if config.max_batch_size > 0:
        for spec in (*inputs, *outputs):
            if not spec.shape or spec.shape[0] != -1:
                raise ConfigError(
                    f"model '{name}' sets max_batch_size {config.max_batch_size} but "
                    f"'{spec.name}' has shape {list(spec.shape)}: batching needs a free first "
                    "dimension on every input and output; export with a dynamic batch dimension "
                    "or set max_batch_size to 0"
                )
    return ModelVersion(name, version_dir.name, path, config, session, inputs, outputs, sessions)


class ModelRepository:
    """The loaded models: ``get(name, version)`` finds a version or raises a 404 ProtocolError.

    Example::

        >>> _ = add_model("models", "mlp", onnx.load("mlp.onnx"))
        >>> repo = load_repository("models")
        >>> repo.get("mlp").inputs[0].name
        'x'
    """

    def __init__(self, root: Path, models: dict[str, dict[str, ModelVersion]]) -> None:
        self.root = root
        self.models = models

    def names(self) -> list[str]:
        """Model names, sorted."""
        return sorted(self.models)

    def versions(self, name: str) -> list[str]:
        """A model's versions, oldest first (raises a 404 ProtocolError for an unknown model)."""
        if name not in self.models:
            raise ProtocolError(
                f"unknown model '{name}'; this server serves {self.names()}", status=404
            )
        return sorted(self.models[name], key=int)

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """A model version; the highest version when ``version`` is ``None`` or empty."""
        versions = self.versions(name)
        if not version:
            version = versions[-1]
        if version not in self.models[name]:
            raise ProtocolError(
                f"unknown version '{version}' of model '{name}'; available versions: {versions}",
                status=404,
            )
        return self.models[name][version]

    def all_versions(self) -> list[ModelVersion]:
        """Every loaded version of every model."""
        return [self.models[n][v] for n in self.names() for v in self.versions(n)]


def load_repository(
    root: str | Path, *, intra_op_threads: int | None = None, workers: int | None = None
) -> ModelRepository:
    """Load every model of a repository folder, creating each onnxruntime session once.

    ``intra_op_threads`` sets every session's thread count; when it is not given, a model with an
    ``instance_group`` of N gets ``cores // N`` threads per instance, other models without
    dynamic batching ``cores // workers`` (``workers``: how many runs the server makes at once,
    default one per core) and other batched models all cores (:func:`default_intra_op_threads`).

    Raises :class:`RepositoryError` naming the folder or file to fix.

    Example::

        >>> _ = add_model("models", "mlp", onnx.load("mlp.onnx"))
        >>> load_repository("models", intra_op_threads=1).names()
        ['mlp']
    """
    root = Path(root)
    if not root.is_dir():
        raise RepositoryError(f"model repository {root} is not a folder")
    models: dict[str, dict[str, ModelVersion]] = {}
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        config = read_config(model_dir)
        version_dirs = [
            p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0
        ]
        if not version_dirs:
            raise RepositoryError(
                f"model folder {model_dir} has no version folder: put the model at "
                f"{model_dir}/1/{config.default_model_filename}"
            )
        models[model_dir.name] = {
            str(int(p.name)): _load_version(model_dir, p, config, intra_op_threads, workers)
            for p in version_dirs
        }
    if not models:
        raise RepositoryError(
            f"no models in {root}: expected {root}/<model name>/<version>/model.onnx"
        )
    return ModelRepository(root, models)


def _pbtxt_text(config: Mapping[str, Any], indent: str = "") -> str:
    lines = []
    for key, value in config.items():
        if isinstance(value, list):  # a list of sections, such as instance_group
            lines.append(f"{indent}{key} [")
            for i, item in enumerate(value):
                lines.append(f"{indent}  {{")
                lines.append(_pbtxt_text(item, indent + "    "))
                lines.append(f"{indent}  }}{',' if i < len(value) - 1 else ''}")
            lines.append(f"{indent}]")
        elif isinstance(value, Mapping):
            lines.append(f"{indent}{key} {{")
            lines.append(_pbtxt_text(value, indent + "  "))
            lines.append(f"{indent}}}")
        elif isinstance(value, str) and key == "kind":  # an enum value is written bare
            lines.append(f"{indent}{key}: {value}")
        elif isinstance(value, str):
            lines.append(f'{indent}{key}: "{value}"')
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(line for line in lines if line)


def add_model(
    root: str | Path,
    name: str,
    model: onnx.ModelProto | str | Path | bytes,
    *,
    version: int = 1,
    max_batch_size: int = 0,
    dynamic_batching: bool = False,
    max_queue_delay_microseconds: int = 0,
    instance_count: int | None = None,
) -> Path:
    """Write a model into a repository folder, with a Triton ``config.pbtxt``; return its path.

    The folder it writes is also a valid Triton model repository for the onnxruntime backend.
    ``instance_count`` writes ``instance_group [ { count: N, kind: KIND_CPU } ]`` (``None``: no
    instance_group, one instance).

    Example::

        >>> add_model("models", "mlp", onnx.load("mlp.onnx"), max_batch_size=32, dynamic_batching=True)
        PosixPath('models/mlp/1/model.onnx')
        >>> _ = add_model("models", "mlp2", onnx.load("mlp.onnx"), instance_count=2)
        >>> print(open("models/mlp2/config.pbtxt").read().split("instance_group")[1].strip())
        [
          {
            count: 2
            kind: KIND_CPU
          }
        ]
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '-' or '.' only")
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    config: dict[str, Any] = {
        "name": name,
        "backend": "onnxruntime",
        "max_batch_size": max_batch_size,
    }
    if dynamic_batching:
        config["dynamic_batching"] = {"max_queue_delay_microseconds": max_queue_delay_microseconds}
    if instance_count is not None:
        config["instance_group"] = [{"count": instance_count, "kind": "KIND_CPU"}]
    parse_config(config, name)  # the same checks the server will make
    return write_repository_files(root, name, model, _pbtxt_text(config) + "\n", version=version)
