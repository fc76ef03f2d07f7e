"""The Open Inference Protocol ("v2") codec: validate, decode and encode inference messages.

This module knows the wire format and nothing of HTTP servers or onnxruntime: it turns a request
body (JSON, optionally followed by binary tensor data) into NumPy arrays, checks them against a
model's tensor specifications, and turns output arrays back into a response body. Every problem is
raised as :class:`ProtocolError` with the HTTP status the server should answer and a message that
names the input and what was expected.

The binary tensor data extension (what ``tritonclient.http`` sends by default) puts the JSON header
first and the raw little-endian tensor bytes after it; the ``Inference-Header-Content-Length``
header gives the JSON length and each tensor's ``parameters.binary_data_size`` its byte count.

Example::

    >>> import numpy as np
    >>> body, header_length = encode_request({"x": np.ones((2, 3), np.float32)})
    >>> request = decode_request(body, header_length)
    >>> request.inputs["x"].shape
    (2, 3)
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DATATYPES",
    "InferenceRequest",
    "ProtocolError",
    "RequestedOutput",
    "TensorSpec",
    "datatype_of",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "validate_request",
]

#: Protocol datatype name -> NumPy dtype (little-endian, as the binary extension requires).
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}

_KIND_TO_DATATYPE = {
    (dtype.kind, dtype.itemsize): name for name, dtype in DATATYPES.items() if name != "BYTES"
}
_INTEGER_TYPES = {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}


class ProtocolError(Exception):
    """A request the protocol rejects; ``status`` is the HTTP status to answer with.

    Example::

        >>> ProtocolError("unknown model 'm'", status=404).status
        404
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, protocol datatype and shape (``-1`` for a free dimension).

    ``dims`` keeps the model's symbolic dimension names (``None`` where a dimension is fixed or
    anonymous), so that inputs sharing a named dimension can be checked to agree.

    Example::

        >>> TensorSpec("x", "FP32", (-1, 4)).to_metadata()
        {'name': 'x', 'datatype': 'FP32', 'shape': [-1, 4]}
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    dims: tuple[str | None, ...] = ()

    def to_metadata(self) -> dict[str, Any]:
        """The protocol's ``$metadata_tensor`` object."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for, and whether it wants it as binary data."""

    name: str
    binary: bool


@dataclass
class InferenceRequest:
    """A decoded inference request: input arrays by name and what to send back.

    ``outputs`` is ``None`` when the client asked for every output; then ``binary_default`` (the
    request's ``binary_data_output`` parameter) decides their encoding.
    """

    inputs: dict[str, np.ndarray]
    outputs: list[RequestedOutput] | None = None
    binary_default: bool = False
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype of a NumPy array.

    Example::

        >>> datatype_of(np.zeros(3, np.int64))
        'INT64'
    """
    kind = (array.dtype.kind, array.dtype.itemsize)
    name = _KIND_TO_DATATYPE.get(kind)
    if name is None:
        if array.dtype.kind in "OUS":
            return "BYTES"
        raise ProtocolError(f"NumPy dtype {array.dtype} has no Open Inference Protocol datatype")
    return name


def _element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# --------------------------------------------------------------------------------------------
# decoding requests
# --------------------------------------------------------------------------------------------


def parse_header_length(value: str | None, body_size: int) -> int | None:
    """Check an ``Inference-Header-Content-Length`` header value against the body size.

    Example::

        >>> parse_header_length("12", 40)
        12
    """
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise ProtocolError(
            f"Inference-Header-Content-Length must be an integer, got {value!r}"
        ) from None
    if length <= 0 or length > body_size:
        raise ProtocolError(
            f"Inference-Header-Content-Length is {length} but the body has {body_size} bytes: "
            "it must give the length of the JSON header, between 1 and the body size"
        )
    return length


def _load_json(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"request JSON is not valid UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            f"malformed JSON in the request at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            f"the inference request must be a JSON object, got {type(obj).__name__}"
        )
    return obj


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


def _find_bad_element(data: Any, accept: Callable[[Any], bool]) -> str | None:
    """``data[i][j] is VALUE (type)`` for the first leaf of nested lists that ``accept`` rejects."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value))))
        elif not accept(value):
            return f"data{where} is {value!r} ({type(value).__name__})"
    return None


def _json_tensor(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    """Convert the JSON ``data`` of one input, strictly: no strings where numbers are due."""
    if not isinstance(data, list):
        data = [data]
    expected = _element_count(shape)
    if datatype == "BYTES":
        bad = _find_bad_element(data, _is_string)
        if bad is not None:
            raise ProtocolError(f"input '{name}': {bad}, expected a string for BYTES")
        flat: list[Any] = []
        stack: list[Any] = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            else:
                flat.append(item.encode("utf-8"))
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
    else:
        try:
            array = np.array(data)
        except (ValueError, OverflowError):
            raise ProtocolError(
                f"input '{name}': data is ragged (nested lists of different lengths)"
            ) from None
        kind = array.dtype.kind
        if array.size == 0:
            array = array.astype(DATATYPES[datatype])
        elif datatype == "BOOL":
            if kind != "b":
                bad = _find_bad_element(data, _is_bool)
                raise ProtocolError(f"input '{name}': {bad}, expected true or false for BOOL")
        elif datatype in _INTEGER_TYPES:
            if kind not in "iu":
                bad = _find_bad_element(data, _is_integer)
                if bad is not None:
                    raise ProtocolError(
                        f"input '{name}': {bad}, expected an integer for {datatype}"
                    )
                array = np.array(data, dtype=object)  # integers beyond 64 bits
            info = np.iinfo(DATATYPES[datatype])
            low, high = int(array.min()), int(array.max())
            if low < info.min or high > info.max:
                raise ProtocolError(
                    f"input '{name}': value {low if low < info.min else high} is out of range "
                    f"for {datatype} ({info.min} to {info.max})"
                )
        elif kind not in "iuf":
            bad = _find_bad_element(data, _is_number)
            if bad is not None:
                raise ProtocolError(f"input '{name}': {bad}, expected a number for {datatype}")
            array = np.array(data, dtype=np.float64)  # integers beyond 64 bits
        if datatype != "BOOL" and array.size:
            array = array.astype(DATATYPES[datatype], copy=False)
    if array.size != expected:
        raise ProtocolError(
            f"input '{name}': shape {_shape_text(shape)} has {expected} elements "
            f"but data has {array.size}"
        )
    return array.reshape(shape)


def _bytes_tensor(name: str, raw: memoryview, count: int | None) -> np.ndarray:
    """Decode BYTES binary data: each element is a 4-byte little-endian length, then the bytes."""
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise ProtocolError(f"input '{name}': BYTES binary data ends inside a length prefix")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise ProtocolError(
                f"input '{name}': a BYTES element claims {length} bytes but only "
                f"{len(raw) - offset} remain in its binary data"
            )
        items.append(bytes(raw[offset : offset + length]))
        offset += length
    if count is not None and len(items) != count:
        raise ProtocolError(
            f"input '{name}': shape holds {count} elements but the BYTES binary data has "
            f"{len(items)}"
        )
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _parameters(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise ProtocolError(f"{where}: 'parameters' must be a JSON object")
    for key in params:
        if key.startswith("shared_memory"):
            raise ProtocolError(
                f"{where}: the shared-memory extension is not supported by this server; "
                "send the tensor in the body (JSON or binary data)"
            )
    return params


def _bool_parameter(params: Mapping[str, Any], key: str, where: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"{where}: parameter '{key}' must be true or false, got {value!r}")
    return value


def decode_request(body: bytes, header_length: int | None = None) -> InferenceRequest:
    """Decode an inference request body into arrays; checks syntax and sizes, not the model.

    ``header_length`` is the ``Inference-Header-Content-Length`` value: the JSON part's length
    when binary tensor data follows it, ``None`` when the whole body is JSON.

    Example::

        >>> body = b'{"inputs": [{"name": "x", "shape": [2], "datatype": "INT32", "data": [1, 2]}]}'
        >>> decode_request(body).inputs["x"]
        array([1, 2], dtype=int32)
    """
    view = memoryview(body)
    if header_length is None:
        header_length = len(body)
    obj = _load_json(view[:header_length].tobytes())
    binary_size = len(body) - header_length

    inputs_json = obj.get("inputs")
    if not isinstance(inputs_json, list) or not inputs_json:
        raise ProtocolError("the inference request needs 'inputs': a non-empty list of tensors")
    params = _parameters(obj, "request")
    request_id = obj.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f"request 'id' must be a string, got {request_id!r}")

    inputs: dict[str, np.ndarray] = {}
    offset = header_length
    for position, tensor in enumerate(inputs_json):
        if not isinstance(tensor, dict):
            raise ProtocolError(f"inputs[{position}] must be a JSON object")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"inputs[{position}] needs a 'name' string")
        if name in inputs:
            raise ProtocolError(f"input '{name}' appears more than once in the request")
        datatype = tensor.get("datatype")
        if datatype not in DATATYPES:
            raise ProtocolError(
                f"input '{name}': unknown datatype {datatype!r}; the protocol's datatypes are "
                + ", ".join(DATATYPES)
            )
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise ProtocolError(
                f"input '{name}': 'shape' must be a list of non-negative integers, got {shape!r}"
            )
        where = f"input '{name}'"
        tparams = _parameters(tensor, where)
        size = tparams.get("binary_data_size")
        has_data = "data" in tensor
        if size is None:
            if not has_data:
                raise ProtocolError(
                    f"{where} has no data: give 'data' or parameters.binary_data_size"
                )
            inputs[name] = _json_tensor(name, datatype, shape, tensor["data"])
            continue
        if has_data:
            raise ProtocolError(f"{where} has both 'data' and binary_data_size: give one")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ProtocolError(
                f"{where}: binary_data_size must be a non-negative integer, got {size!r}"
            )
        if offset + size > len(body):
            raise ProtocolError(
                f"{where}: binary_data_size says {size} bytes but only "
                f"{len(body) - offset} bytes of binary data remain after the JSON header "
                f"(the body carries {binary_size} bytes of binary data in all)"
            )
        count = _element_count(shape)
        if datatype == "BYTES":
            array = _bytes_tensor(name, view[offset : offset + size], count)
        else:
            dtype = DATATYPES[datatype]
            if size != count * dtype.itemsize:
                raise ProtocolError(
                    f"{where}: shape {_shape_text(shape)} of {datatype} needs "
                    f"{count * dtype.itemsize} bytes but binary_data_size is {size}"
                )
            array = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
            if datatype == "BOOL" and count and array.view(np.uint8).max() > 1:
                raise ProtocolError(f"{where}: BOOL binary data must hold only bytes 0 and 1")
        inputs[name] = array.reshape(shape)
        offset += size
    if offset != len(body):
        raise ProtocolError(
            f"the body has {len(body) - offset} bytes after the last tensor: the binary_data_size "
            f"parameters add up to {offset - header_length} bytes but {binary_size} bytes follow "
            "the JSON header (check Inference-Header-Content-Length)"
        )

    outputs: list[RequestedOutput] | None = None
    binary_default = _bool_parameter(params, "binary_data_output", "request")
    outputs_json = obj.get("outputs")
    if outputs_json is not None:
        if not isinstance(outputs_json, list):
            raise ProtocolError("'outputs' must be a list of {\"name\": ...} objects")
        outputs = []
        seen: set[str] = set()
        for position, out in enumerate(outputs_json):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise ProtocolError(f"outputs[{position}] needs a 'name' string")
            oname = out["name"]
            if oname in seen:
                raise ProtocolError(f"output '{oname}' is requested more than once")
            seen.add(oname)
            oparams = _parameters(out, f"output '{oname}'")
            if "classification" in oparams:
                raise ProtocolError(
                    f"output '{oname}': the classification extension is not supported by this "
                    "server; request the raw output and take the top classes yourself"
                )
            binary = (
                _bool_parameter(oparams, "binary_data", f"output '{oname}'")
                if "binary_data" in oparams
                else binary_default
            )
            outputs.append(RequestedOutput(oname, binary))
    return InferenceRequest(
        inputs=inputs,
        outputs=outputs,
        binary_default=binary_default,
        id=request_id,
        parameters=params,
    )


def _utf8(item: Any, problem: str) -> Any:
    """``item`` decoded from UTF-8 when it is bytes; a ProtocolError saying ``problem`` if not text."""
    if not isinstance(item, bytes):
        return item
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(problem) from None


def _as_text(name: str, array: np.ndarray) -> np.ndarray:
    """BYTES elements as ``str``: ONNX string tensors hold UTF-8 text."""
    text = np.empty(array.shape, dtype=object)
    flat = text.reshape(-1)
    for i, item in enumerate(array.reshape(-1)):
        flat[i] = _utf8(
            item, f"input '{name}': element {i} is not UTF-8 text, which ONNX string tensors need"
        )
    return text


def validate_request(
    request: InferenceRequest,
    model_name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    max_batch_size: int = 0,
) -> int:
    """Check a decoded request against a model's tensors; return its batch size (0: unbatched).

    BYTES inputs are turned into arrays of ``str`` in place (ONNX string tensors hold text).
    Raises :class:`ProtocolError` (400) for missing or unexpected inputs, a datatype or shape the
    model cannot accept, BYTES that are not UTF-8, inputs that disagree on a shared dimension, a batch larger than
    ``max_batch_size``, or an unknown requested output.

    Example::

        >>> spec = [TensorSpec("x", "FP32", (-1, 2), ("batch", None))]
        >>> req = InferenceRequest({"x": np.zeros((3, 2), np.float32)})
        >>> validate_request(req, "m", spec, [], max_batch_size=8)
        3
    """
    expected = {spec.name for spec in inputs}
    given = set(request.inputs)
    missing = sorted(expected - given)
    extra = sorted(given - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s) {missing}")
        if extra:
            parts.append(f"unexpected input(s) {extra}")
        raise ProtocolError(
            f"{' and '.join(parts)}: model '{model_name}' expects inputs {sorted(expected)}"
        )
    named_dims: dict[str, tuple[str, int]] = {}
    batch = 0
    for spec in inputs:
        array = request.inputs[spec.name]
        got_type = datatype_of(array)
        if got_type == "BYTES" and spec.datatype == "BYTES":
            array = request.inputs[spec.name] = _as_text(spec.name, array)
        if got_type != spec.datatype:
            raise ProtocolError(
                f"input '{spec.name}' has datatype {got_type} but model '{model_name}' "
                f"expects {spec.datatype}"
            )
        shape = array.shape
        if len(shape) != len(spec.shape) or any(
            want != -1 and want != got for want, got in zip(spec.shape, shape, strict=False)
        ):
            raise ProtocolError(
                f"input '{spec.name}' has shape {_shape_text(shape)} but model '{model_name}' "
                f"accepts {_shape_text(spec.shape)} (-1 is any size)"
            )
        for axis, dim in enumerate(spec.dims):
            if dim is None:
                continue
            if dim in named_dims and named_dims[dim][1] != shape[axis]:
                other, size = named_dims[dim]
                raise ProtocolError(
                    f"inputs '{other}' and '{spec.name}' must agree on dimension '{dim}': "
                    f"got {size} and {shape[axis]}"
                )
            named_dims.setdefault(dim, (spec.name, shape[axis]))
        if max_batch_size > 0:
            rows = shape[0]
            if rows < 1 or rows > max_batch_size:
                raise ProtocolError(
                    f"input '{spec.name}' has batch size {rows} but model '{model_name}' "
                    f"accepts 1 to {max_batch_size} rows (its max_batch_size)"
                )
            if batch and rows != batch:
                raise ProtocolError(
                    f"all inputs must have the same batch size (first dimension): got {batch} "
                    f"and {rows} for input '{spec.name}'"
                )
            batch = rows
    if request.outputs is not None:
        known = {spec.name for spec in outputs}
        unknown = sorted(o.name for o in request.outputs if o.name not in known)
        if unknown:
            raise ProtocolError(
                f"unknown output(s) {unknown}: model '{model_name}' has outputs {sorted(known)}"
            )
    return batch


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------


def _tensor_bytes(array: np.ndarray) -> bytes:
    if array.dtype.kind in "OUS":
        parts = []
        for item in array.ravel():
            raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _json_data(name: str, array: np.ndarray) -> list[Any]:
    if array.dtype.kind in "OUS":
        out = []
        problem = (
            f"output '{name}' holds bytes that are not UTF-8 text: request it with "
            "parameters.binary_data = true"
        )
        for item in array.ravel():
            out.append(str(_utf8(item, problem)))
        return out
    return array.ravel().tolist()


def _assemble(obj: dict[str, Any], binaries: list[bytes]) -> tuple[bytes, int | None]:
    header = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    if not binaries:
        return header, None
    return b"".join([header, *binaries]), len(header)


def _tensor_entry(
    name: str, array: np.ndarray, binary: bool, binaries: list[bytes], *, datatype_first: bool
) -> dict[str, Any]:
    """One tensor of a request or response: JSON data, or binary data appended to ``binaries``
    (keys in the order tritonclient writes them: responses put datatype before shape)."""
    meta = [("datatype", datatype_of(array)), ("shape", list(array.shape))]
    tensor: dict[str, Any] = {"name": name, **dict(meta if datatype_first else meta[::-1])}
    if binary:
        raw = _tensor_bytes(array)
        tensor["parameters"] = {"binary_data_size": len(raw)}
        binaries.append(raw)
    else:
        tensor["data"] = _json_data(name, array)
    return tensor


def encode_response(
    model_name: str,
    model_version: str | None,
    outputs: Sequence[tuple[str, np.ndarray, bool]],
    request_id: str | None = None,
) -> tuple[bytes, int | None]:
    """Encode ``(name, array, binary)`` outputs as a response body and its JSON header length.

    The header length is ``None`` when nothing is binary (the body is plain JSON); otherwise send
    it as ``Inference-Header-Content-Length``.

    Example::

        >>> body, n = encode_response("m", "1", [("y", np.array([1.5], np.float32), False)])
        >>> body
        b'{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1.5]}]}'
    """
    obj: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        obj["model_version"] = model_version
    if request_id is not None:
        obj["id"] = request_id
    tensors = []
    binaries: list[bytes] = []
    for name, array, binary in outputs:
        tensors.append(_tensor_entry(name, array, binary, binaries, datatype_first=True))
    obj["outputs"] = tensors
    return _assemble(obj, binaries)


def encode_request(
    inputs: Mapping[str, np.ndarray],
    *,
    binary: bool = True,
    outputs: Sequence[str] | None = None,
    binary_outputs: bool = True,
    request_id: str | None = None,
) -> tuple[bytes, int | None]:
    """Build an inference request body from arrays (the client side, as ``tritonclient`` does).

    Returns the body and the value for the ``Inference-Header-Content-Length`` header (``None``
    when the body is pure JSON).

    Example::

        >>> body, n = encode_request({"x": np.array([1, 2], np.int64)}, binary=False,
        ...                          binary_outputs=False)
        >>> body
        b'{"inputs":[{"name":"x","shape":[2],"datatype":"INT64","data":[1,2]}]}'
    """
    obj: dict[str, Any] = {}
    if request_id is not None:
        obj["id"] = request_id
    tensors = []
    binaries: list[bytes] = []
    for name, value in inputs.items():
        array = np.asarray(value)
        tensors.append(_tensor_entry(name, array, binary, binaries, datatype_first=False))
    obj["inputs"] = tensors
    if outputs is not None:
        obj["outputs"] = [
            {"name": name, "parameters": {"binary_data": binary_outputs}} for name in outputs
        ]
    elif binary_outputs:
        obj["parameters"] = {"binary_data_output": True}
    return _assemble(obj, binaries)


def decode_response(body: bytes, header_length: int | None = None) -> dict[str, np.ndarray]:
    """Decode an inference response body into output arrays by name.

    Raises :class:`ProtocolError` with the server's message when the body is an error response.

    Example::

        >>> body, n = encode_response("m", None, [("y", np.arange(3, dtype=np.int32), True)])
        >>> decode_response(body, n)["y"]
        array([0, 1, 2], dtype=int32)
    """
    if header_length is None:
        header_length = len(body)
    obj = json.loads(body[:header_length])
    if "error" in obj:
        raise ProtocolError(obj["error"])
    result: dict[str, np.ndarray] = {}
    offset = header_length
    for tensor in obj["outputs"]:
        datatype = tensor["datatype"]
        shape = tensor["shape"]
        size = tensor.get("parameters", {}).get("binary_data_size")
        if size is None:
            array = np.array(tensor["data"], dtype=DATATYPES[datatype])
            if datatype == "BYTES":
                array = np.array([s.encode("utf-8") for s in tensor["data"]], dtype=object)
        elif datatype == "BYTES":
            array = _bytes_tensor(tensor["name"], memoryview(body)[offset : offset + size], None)
        else:
            array = np.frombuffer(
                body, DATATYPES[datatype], size // DATATYPES[datatype].itemsize, offset
            )
        if size is not None:
            offset += size
        result[tensor["name"]] = array.reshape(shape)
    return result
