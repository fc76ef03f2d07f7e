"""A model's contract and provenance: what a CI job checks before an ONNX model ships.

- a :class:`ModelContract` (opsets, IR version, input and output names, types and shapes,
  metadata, parity on a sample) taken from a model with :func:`contract_from_model` and checked
  against a new export with :func:`check_contract`;
- a model card stored in ``metadata_props`` (:func:`add_model_card`, :func:`model_card`),
  checksums (:func:`sha256_of`) and a reader for the safetensors header
  (:func:`safetensors_header`), without loading the weights.

The future-proofing part of lesson 08 (``course.ecosystem`` re-exports every name here).

Example::

    >>> model = onnx.load("mlp.onnx")
    >>> check_contract(model, contract_from_model(model)).passed
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.defs
import pandas as pd
from onnx import helper

from course import opsets

__all__ = [
    "ContractCheck",
    "ContractReport",
    "ModelContract",
    "NotSafetensorsError",
    "TensorSpec",
    "add_model_card",
    "check_contract",
    "contract_from_model",
    "model_card",
    "safetensors_header",
    "sha256_of",
]


# ============================================================================================
# model contract (what a CI job checks before a model ships)
# ============================================================================================


@dataclass
class TensorSpec:
    """A promised input or output: its name, NumPy dtype name and shape.

    In ``shape`` an ``int`` is a fixed size, a ``str`` a dimension that must stay dynamic
    (symbolic or unknown, e.g. the batch), and ``None`` a dimension the contract does not check.
    """

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]


@dataclass
class ModelContract:
    """What a model promises its users; :func:`check_contract` checks a model against it.

    ``opsets`` maps a domain (``""`` for ai.onnx) to the allowed ``(lowest, highest)`` opset;
    ``max_ir_version`` is the newest IR version the deployment runtime reads;
    ``metadata_keys`` must be present in ``metadata_props``; ``sample`` and ``expected`` are a
    fixed input and the outputs it must give, within ``rtol``/``atol``.
    """

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opsets: dict[str, tuple[int, int]]
    max_ir_version: int | None = None
    metadata_keys: tuple[str, ...] = ()
    sample: dict[str, np.ndarray] | None = None
    expected: list[np.ndarray] | None = None
    rtol: float = 1e-4
    atol: float = 1e-5


@dataclass
class ContractCheck:
    """One line of a contract report."""

    check: str
    passed: bool
    detail: str


@dataclass
class ContractReport:
    """The result of :func:`check_contract`: ``passed`` when every check passed."""

    rows: list[ContractCheck]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def problems(self) -> list[str]:
        """The failed checks, one sentence each."""
        return [f"{r.check}: {r.detail}" for r in self.rows if not r.passed]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "check": [r.check for r in self.rows],
                "passed": [r.passed for r in self.rows],
                "detail": [r.detail for r in self.rows],
            }
        )

    def __str__(self) -> str:
        head = "contract PASSED" if self.passed else f"contract FAILED ({len(self.problems)})"
        lines = [f"{'ok  ' if r.passed else 'FAIL'} {r.check}: {r.detail}" for r in self.rows]
        return "\n".join([head, *lines])

    def _repr_html_(self) -> str:
        verdict = "passed" if self.passed else f"FAILED: {len(self.problems)} problem(s)"
        return f"<b>Model contract {verdict}</b>" + self.to_frame().to_html(index=False)


def _dims(value: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
    dims: list[int | str | None] = []
    for d in value.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return tuple(dims)


def _dtype(value: onnx.ValueInfoProto) -> str:
    elem = value.type.tensor_type.elem_type
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name
    except Exception:  # noqa: BLE001 - a type NumPy cannot name (or an undefined elem_type)
        return f"elem_type {elem}"


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    return TensorSpec(value.name, _dtype(value), _dims(value))


def _real_inputs(proto: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in proto.graph.initializer}
    return [v for v in proto.graph.input if v.name not in inits]


def contract_from_model(
    model: Any,
    sample: Mapping[str, np.ndarray] | np.ndarray | None = None,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> ModelContract:
    """Record what a model promises today, to check future versions against it in CI.

    Inputs and outputs as they are declared (a symbolic or unknown dimension must stay
    dynamic), the exact opset stamp of every imported domain, the IR version as the maximum,
    the metadata keys present, and, when ``sample`` is given, the outputs onnxruntime computes
    for it as the expected values.

    Example::

        contract = contract_from_model("model.onnx", X_test[:8])
        check_contract("model-v2.onnx", contract).passed
    """
    from course.verify import load_model, run_onnx

    proto = load_model(model)
    feeds = None
    expected = None
    if sample is not None:
        names = [v.name for v in _real_inputs(proto)]
        feeds = dict(sample) if isinstance(sample, Mapping) else {names[0]: np.asarray(sample)}
        expected = run_onnx(proto, feeds)
    return ModelContract(
        inputs=[_spec(v) for v in _real_inputs(proto)],
        outputs=[_spec(v) for v in proto.graph.output],
        opsets={
            i.domain if i.domain != "ai.onnx" else "": (i.version, i.version)
            for i in proto.opset_import
        },
        max_ir_version=int(proto.ir_version),
        metadata_keys=tuple(p.key for p in proto.metadata_props),
        sample=feeds,
        expected=expected,
        rtol=rtol,
        atol=atol,
    )


def _compare_specs(
    kind: str, promised: Sequence[TensorSpec], actual: Sequence[onnx.ValueInfoProto]
) -> list[ContractCheck]:
    rows = []
    by_name = {v.name: v for v in actual}
    for spec in promised:
        label = f"{kind} {spec.name!r}"
        value = by_name.get(spec.name)
        if value is None:
            rows.append(
                ContractCheck(label, False, f"missing; the model's {kind}s are {sorted(by_name)}")
            )
            continue
        got_dtype, got_dims = _dtype(value), _dims(value)
        problems = []
        if got_dtype != spec.dtype:
            problems.append(f"dtype {got_dtype}, promised {spec.dtype}")
        if len(got_dims) != len(spec.shape):
            problems.append(f"rank {len(got_dims)} {list(got_dims)}, promised {list(spec.shape)}")
        else:
            for axis, (want, got) in enumerate(zip(spec.shape, got_dims, strict=True)):
                if want is None:
                    continue
                if isinstance(want, str) and not isinstance(got, str):
                    problems.append(f"axis {axis} is fixed to {got}, promised dynamic ({want})")
                elif isinstance(want, int) and got != want:
                    problems.append(f"axis {axis} is {got}, promised {want}")
        shape_text = "[" + ", ".join(str(d) for d in got_dims) + "]"
        rows.append(
            ContractCheck(
                label,
                not problems,
                "; ".join(problems) if problems else f"{got_dtype}{shape_text}",
            )
        )
    return rows


def check_contract(model: Any, contract: ModelContract) -> ContractReport:
    """Check a model against a :class:`ModelContract`; every check is reported, none raises.

    Checks: onnxruntime loads it; IR version; each domain's opset within range (and no domain
    the contract does not list); each promised input and output (name, dtype, shape, dynamic
    dimensions still dynamic); metadata keys; parity on the contract's sample.

    Example::

        report = check_contract("model-v2.onnx", contract)
        assert report.passed, "\\n".join(report.problems)     # what a CI job runs
    """
    from course.verify import load_model, run_onnx

    if not isinstance(contract, ModelContract):
        raise TypeError(
            f"contract must be a ModelContract (see contract_from_model), got "
            f"{type(contract).__name__}"
        )
    proto = load_model(model)
    rows: list[ContractCheck] = []
    refused = opsets.load_error(proto)
    rows.append(ContractCheck("loads in onnxruntime", not refused, refused[:200] or "loads"))
    if contract.max_ir_version is not None:
        ok = proto.ir_version <= contract.max_ir_version
        rows.append(
            ContractCheck(
                "IR version",
                ok,
                f"{proto.ir_version} (at most {contract.max_ir_version})",
            )
        )
    stamps = {(i.domain if i.domain != "ai.onnx" else ""): i.version for i in proto.opset_import}
    for domain, (low, high) in contract.opsets.items():
        key = "" if domain == "ai.onnx" else domain
        got = stamps.get(key)
        ok = got is not None and low <= got <= high
        rows.append(
            ContractCheck(
                f"opset {key or 'ai.onnx'}",
                ok,
                f"{got if got is not None else 'not imported'} (allowed {low}-{high})",
            )
        )
    allowed_domains = {"" if d == "ai.onnx" else d for d in contract.opsets}
    for domain in sorted(set(stamps) - allowed_domains):
        rows.append(
            ContractCheck(
                f"opset {domain}",
                False,
                f"imports domain {domain!r} (version {stamps[domain]}), which the contract "
                "does not allow",
            )
        )
    rows += _compare_specs("input", contract.inputs, _real_inputs(proto))
    rows += _compare_specs("output", contract.outputs, list(proto.graph.output))
    present = {p.key for p in proto.metadata_props}
    for key in contract.metadata_keys:
        rows.append(
            ContractCheck(
                f"metadata {key!r}",
                key in present,
                "present" if key in present else f"missing (has {sorted(present)})",
            )
        )
    if contract.sample is not None and contract.expected is not None:
        rows.append(_parity_row(proto, contract, run_onnx, refused))
    return ContractReport(rows)


def _parity_row(
    proto: onnx.ModelProto, contract: ModelContract, run_onnx: Callable, refused: str
) -> ContractCheck:
    if refused:
        return ContractCheck("parity on the sample", False, "not run: the model does not load")
    try:
        got = run_onnx(proto, contract.sample)
    except Exception as exc:  # a failure to run is a failed check, reported
        return ContractCheck(
            "parity on the sample", False, f"{type(exc).__name__}: {str(exc)[:160]}"
        )
    if len(got) != len(contract.expected):
        return ContractCheck(
            "parity on the sample",
            False,
            f"{len(got)} outputs, expected {len(contract.expected)}",
        )
    worst = 0.0
    for g, e in zip(got, contract.expected, strict=True):
        g, e = np.asarray(g), np.asarray(e)
        if g.shape != e.shape:
            return ContractCheck(
                "parity on the sample", False, f"output shape {g.shape}, expected {e.shape}"
            )
        if not np.allclose(g, e, rtol=contract.rtol, atol=contract.atol):
            diff = float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64))))
            return ContractCheck(
                "parity on the sample",
                False,
                f"max |difference| {diff:.3g} exceeds rtol={contract.rtol}, atol={contract.atol}",
            )
        if g.size and np.issubdtype(g.dtype, np.number):
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))))
    return ContractCheck("parity on the sample", True, f"max |difference| {worst:.2g}")


# ============================================================================================
# provenance: model card, checksums, safetensors header
# ============================================================================================


def add_model_card(model: onnx.ModelProto, card: Mapping[str, str]) -> onnx.ModelProto:
    """A copy of ``model`` with ``card`` written into ``metadata_props`` (existing keys are
    replaced, others kept). Values must be strings: serialise anything else with
    ``json.dumps`` first.

    >>> m = add_model_card(opsets.tiny_example("Relu", 14).model, {"license": "MIT"})
    >>> model_card(m)
    {'license': 'MIT'}
    """
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"expected an onnx.ModelProto, got {type(model).__name__}")
    for key, value in card.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"metadata_props holds strings only; got {key!r}: {type(value).__name__}. "
                "Use json.dumps(value) for numbers, lists and dicts"
            )
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [(p.key, p.value) for p in copy.metadata_props if p.key not in card]
    del copy.metadata_props[:]
    for key, value in [*kept, *card.items()]:
        entry = copy.metadata_props.add()
        entry.key, entry.value = key, value
    return copy


def model_card(model: Any) -> dict[str, str]:
    """The ``metadata_props`` of a model (ModelProto, path or bytes) as a dict."""
    from course.verify import load_model

    return {p.key: p.value for p in load_model(model).metadata_props}


def sha256_of(data: bytes | str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of bytes or of a file's content (read in chunks).

    >>> sha256_of(b"onnx")[:12]
    '87e93f89f2be'
    """
    digest = hashlib.sha256()
    if isinstance(data, (bytes, bytearray, memoryview)):
        digest.update(data)
        return digest.hexdigest()
    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}; pass bytes or an existing path")
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class NotSafetensorsError(ValueError):
    """The bytes are not a safetensors file (no 8-byte length followed by a JSON header)."""


def safetensors_header(source: bytes | str | os.PathLike[str]) -> dict[str, Any]:
    """Read the JSON header of a safetensors file without any safetensors code.

    The format is an unsigned 64-bit little-endian header length, that many bytes of JSON
    (tensor name -> dtype, shape, data_offsets; plus an optional ``__metadata__`` of strings),
    then the raw tensor bytes. Nothing in it is executable.

    >>> from safetensors.numpy import save
    >>> safetensors_header(save({"w": np.zeros(3, np.float32)}))["w"]["shape"]
    [3]
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        head = bytes(source[:8])
        data = bytes(source)
        where = "these bytes"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path}")
        data = path.read_bytes()
        head = data[:8]
        where = str(path)
    if len(head) < 8:
        raise NotSafetensorsError(f"{where}: too short to be safetensors ({len(data)} bytes)")
    (length,) = struct.unpack("<Q", head)
    if length > len(data) - 8:
        raise NotSafetensorsError(
            f"{where} is not safetensors: the first 8 bytes announce a {length}-byte header but "
            f"only {len(data) - 8} bytes follow (a pickle or zip checkpoint? Save with "
            "safetensors.torch.save_file or safetensors.numpy.save_file)"
        )
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotSafetensorsError(f"{where} is not safetensors: its header is not JSON") from exc
    if not isinstance(header, dict):
        raise NotSafetensorsError(f"{where} is not safetensors: its header is not a JSON object")
    return header
