"""course.serve without a server: the protocol codec, configuration files, the repository, batching.

The server tests (tests/test_serve.py) drive the same code over HTTP with the real tritonclient;
these check each rule of the codec directly, so that a failure names the rule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from course.serve import (
    ConfigError,
    DirectScheduler,
    DynamicBatcher,
    InferenceRequest,
    ModelStats,
    ProtocolError,
    RepositoryError,
    TensorSpec,
    add_model,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    load_repository,
    validate_request,
)
from course.serve.protocol import datatype_of, parse_header_length
from course.serve.repository import ModelVersion, parse_config, parse_pbtxt

RNG = np.random.default_rng(0)
W = RNG.normal(size=(4, 3)).astype(np.float32)


def linear_model(first_dim: str | int = "N") -> onnx.ModelProto:
    """y = x @ W, x: [first_dim, 4] float32."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [first_dim, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [first_dim, 3])],
        [numpy_helper.from_array(W, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def raises(match: str, status: int = 400):
    """Expect a ProtocolError whose message contains ``match`` and whose status is ``status``."""

    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(ProtocolError)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            result = self.ctx.__exit__(*exc)
            error = self.info.value
            assert match in error.message, (
                f"expected {match!r} in the message, got {error.message!r}"
            )
            assert error.status == status, f"expected status {status}, got {error.status}"
            return result

    return _Check()


def json_body(inputs: list[dict], **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def one_input(data, shape, datatype="FP32", name="x") -> bytes:
    return json_body([{"name": name, "shape": shape, "datatype": datatype, "data": data}])


# ---- decoding: JSON tensors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("FP32", [[1.5, 2], [3, 4]], np.float32),
        ("FP64", [1, 2, 3, 4], np.float64),
        ("FP16", [1, 2, 3, 4], np.float16),
        ("INT8", [-128, 0, 1, 127], np.int8),
        ("UINT64", [0, 1, 2, 2**64 - 1], np.uint64),
        ("INT64", [1, 2, 3, 4], np.int64),
        ("BOOL", [True, False, True, True], np.bool_),
    ],
)
def test_json_tensors_decode_to_the_datatype(datatype, data, dtype):
    request = decode_request(one_input(data, [2, 2], datatype))
    got = request.inputs["x"]
    assert got.dtype == dtype and got.shape == (2, 2), (
        f"expected {dtype} [2, 2], got {got.dtype} {got.shape}"
    )
    assert got.ravel().tolist() == np.asarray(data, dtype=dtype).ravel().tolist()


def test_json_bytes_and_empty_tensors():
    request = decode_request(one_input(["ab", "ç"], [2], "BYTES"))
    assert request.inputs["x"].tolist() == [b"ab", "ç".encode()]
    empty = decode_request(one_input([], [0, 4])).inputs["x"]
    assert empty.shape == (0, 4) and empty.dtype == np.float32, f"got {empty.shape} {empty.dtype}"
    scalar = decode_request(one_input(2.5, [])).inputs["x"]
    assert scalar.shape == () and scalar == np.float32(2.5), f"got {scalar!r}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON in the request at line 1 column 2"),
        (b'{"inputs": "\xff"}', "not valid UTF-8"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b"{}", "needs 'inputs'"),
        (json_body([]), "needs 'inputs'"),
        (json_body(["x"]), "inputs[0] must be a JSON object"),
        (json_body([{"shape": [1], "datatype": "FP32", "data": [1]}]), "inputs[0] needs a 'name'"),
        (one_input([1], [1], "FLOAT32"), "unknown datatype 'FLOAT32'"),
        (one_input([1], [-1]), "'shape' must be a list of non-negative integers"),
        (one_input([1], "1"), "'shape' must be a list of non-negative integers"),
        (one_input([1, 2, 3], [2, 2]), "shape [2, 2] has 4 elements but data has 3"),
        (one_input([1, "abc"], [2]), "data[1] is 'abc' (str), expected a number for FP32"),
        (one_input([[1, 2], [3, None]], [2, 2]), "data[1][1] is None (NoneType)"),
        (one_input([[1, 2], [3]], [3]), "data is ragged"),
        (
            one_input([1.5, 2], [2], "INT64"),
            "data[0] is 1.5 (float), expected an integer for INT64",
        ),
        (one_input([300], [1], "UINT8"), "value 300 is out of range for UINT8 (0 to 255)"),
        (one_input([-1], [1], "UINT8"), "value -1 is out of range for UINT8"),
        (
            one_input([2**70], [1], "INT64"),
            "value 1180591620717411303424 is out of range for INT64",
        ),
        (one_input([True, False], [2], "INT64"), "data[0] is True (bool), expected an integer"),
        (one_input([1, 0], [2], "BOOL"), "data[0] is 1 (int), expected true or false for BOOL"),
        (
            one_input([True, False], [2], "FP32"),
            "data[0] is True (bool), expected a number for FP32",
        ),
        (one_input([1, 2], [2], "BYTES"), "data[0] is 1 (int), expected a string for BYTES"),
        (json_body([{"name": "x", "shape": [1], "datatype": "FP32"}]), "input 'x' has no data"),
        (
            json_body([{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}] * 2),
            "input 'x' appears more than once",
        ),
        (
            json_body([{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], id=3),
            "'id' must be a string",
        ),
        (
            json_body(
                [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": []}]
            ),
            "'parameters' must be a JSON object",
        ),
        (
            json_body(
                [
                    {
                        "name": "x",
                        "shape": [1],
                        "datatype": "FP32",
                        "parameters": {"shared_memory_region": "r"},
                    }
                ]
            ),
            "shared-memory extension is not supported",
        ),
    ],
)
def test_bad_json_requests_are_rejected_with_a_precise_message(body, message):
    with raises(message):
        decode_request(body)


# ---- decoding: binary tensor data -------------------------------------------------------------


def test_binary_request_round_trip_with_every_fixed_size_datatype():
    arrays = {
        f"t{i}": RNG.integers(0, 2, size=(2, 3)).astype(dtype)
        for i, dtype in enumerate(
            [np.float32, np.float64, np.float16, np.int8, np.uint16, np.int32, np.int64, np.bool_]
        )
    }
    body, header_length = encode_request(arrays)
    assert header_length is not None and header_length < len(body)
    decoded = decode_request(body, header_length)
    for name, array in arrays.items():
        got = decoded.inputs[name]
        assert got.dtype == array.dtype and np.array_equal(got, array), (
            f"{name}: got {got!r}, expected {array!r}"
        )
    assert decoded.binary_default is True and decoded.outputs is None


def test_binary_bytes_tensor_round_trip():
    strings = np.array([b"", b"abc", "é".encode()], dtype=object)
    body, header_length = encode_request({"s": strings})
    got = decode_request(body, header_length).inputs["s"]
    assert got.tolist() == strings.tolist(), f"got {got.tolist()}"


def binary_body(header: dict, payload: bytes) -> tuple[bytes, int]:
    text = json.dumps(header).encode()
    return text + payload, len(text)


@pytest.mark.parametrize(
    ("size", "payload", "message"),
    [
        (16, b"\0" * 8, "binary_data_size says 16 bytes but only 8 bytes of binary data remain"),
        (8, b"\0" * 12, "the body has 4 bytes after the last tensor"),
        (4, b"\0" * 4, "needs 8 bytes but binary_data_size is 4"),
        (-1, b"", "binary_data_size must be a non-negative integer"),
    ],
)
def test_binary_sizes_that_lie_are_rejected(size, payload, message):
    header = {
        "inputs": [
            {
                "name": "x",
                "shape": [2],
                "datatype": "FP32",
                "parameters": {"binary_data_size": size},
            }
        ]
    }
    body, header_length = binary_body(header, payload)
    with raises(message):
        decode_request(body, header_length)


def test_binary_bool_and_bytes_payloads_are_checked():
    header = {
        "inputs": [
            {"name": "b", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}}
        ]
    }
    with raises("BOOL binary data must hold only bytes 0 and 1"):
        decode_request(*binary_body(header, b"\x01\x07"))
    header = {
        "inputs": [
            {"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}
        ]
    }
    with raises("claims 9 bytes but only 2 remain"):
        decode_request(*binary_body(header, struct.pack("<I", 9) + b"ab"))
    header["inputs"][0]["parameters"]["binary_data_size"] = 2
    with raises("ends inside a length prefix"):
        decode_request(*binary_body(header, b"ab"))
    header["inputs"][0]["parameters"]["binary_data_size"] = 10
    with raises("shape holds 1 elements but the BYTES binary data has 2"):
        decode_request(
            *binary_body(header, struct.pack("<I", 1) + b"a" + struct.pack("<I", 1) + b"b")
        )
    both = {
        "inputs": [
            {
                "name": "x",
                "shape": [1],
                "datatype": "FP32",
                "data": [1],
                "parameters": {"binary_data_size": 4},
            }
        ]
    }
    with raises("has both 'data' and binary_data_size"):
        decode_request(*binary_body(both, b"\0" * 4))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "must be an integer, got 'abc'"),
        ("0", "is 0 but the body has 10 bytes"),
        ("11", "is 11 but"),
    ],
)
def test_header_length_is_checked(value, message):
    with raises(message):
        parse_header_length(value, 10)
    assert parse_header_length(None, 10) is None and parse_header_length("10", 10) == 10


def test_requested_outputs_and_their_encoding():
    inputs = [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]
    request = decode_request(
        json_body(
            inputs,
            outputs=[{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}],
            parameters={"binary_data_output": False},
            id="r1",
        )
    )
    assert [(o.name, o.binary) for o in request.outputs] == [("a", True), ("b", False)]
    assert request.id == "r1"
    for outputs, message in [
        ("a", "'outputs' must be a list"),
        ([{"name": "a"}, {"name": "a"}], "output 'a' is requested more than once"),
        ([{}], "outputs[0] needs a 'name'"),
        (
            [{"name": "a", "parameters": {"classification": 3}}],
            "classification extension is not supported",
        ),
        (
            [{"name": "a", "parameters": {"binary_data": "yes"}}],
            "parameter 'binary_data' must be true or false",
        ),
    ]:
        with raises(message):
            decode_request(json_body(inputs, outputs=outputs))


# ---- validation against a model -----------------------------------------------------------------

SPECS = [
    TensorSpec("x", "FP32", (-1, 4), ("batch", None)),
    TensorSpec("k", "INT64", (-1,), ("batch",)),
]
OUTS = [TensorSpec("y", "FP32", (-1, 3))]


def request_of(**arrays) -> InferenceRequest:
    return InferenceRequest(inputs=dict(arrays))


@pytest.mark.parametrize(
    ("arrays", "max_batch", "message"),
    [
        (
            {"x": np.zeros((2, 4), np.float32)},
            0,
            "missing input(s) ['k']: model 'm' expects inputs ['k', 'x']",
        ),
        (
            {"x": np.zeros((2, 4), np.float32), "k": np.zeros(2, np.int64), "z": np.zeros(1)},
            0,
            "unexpected input(s) ['z']",
        ),
        (
            {"x": np.zeros((2, 4), np.float64), "k": np.zeros(2, np.int64)},
            0,
            "input 'x' has datatype FP64 but model 'm' expects FP32",
        ),
        (
            {"x": np.zeros((2, 5), np.float32), "k": np.zeros(2, np.int64)},
            0,
            "input 'x' has shape [2, 5] but model 'm' accepts [-1, 4]",
        ),
        (
            {"x": np.zeros((2, 4, 1), np.float32), "k": np.zeros(2, np.int64)},
            0,
            "input 'x' has shape [2, 4, 1]",
        ),
        (
            {"x": np.zeros((2, 4), np.float32), "k": np.zeros(3, np.int64)},
            0,
            "inputs 'x' and 'k' must agree on dimension 'batch': got 2 and 3",
        ),
        (
            {"x": np.zeros((9, 4), np.float32), "k": np.zeros(9, np.int64)},
            8,
            "batch size 9 but model 'm' accepts 1 to 8 rows",
        ),
        (
            {"x": np.zeros((0, 4), np.float32), "k": np.zeros(0, np.int64)},
            8,
            "batch size 0",
        ),
    ],
)
def test_requests_the_model_cannot_accept(arrays, max_batch, message):
    with raises(message):
        validate_request(request_of(**arrays), "m", SPECS, OUTS, max_batch)


def test_validation_accepts_good_requests_and_checks_outputs():
    good = request_of(x=np.zeros((3, 4), np.float32), k=np.zeros(3, np.int64))
    assert validate_request(good, "m", SPECS, OUTS, 8) == 3
    assert validate_request(good, "m", SPECS, OUTS, 0) == 0
    unbatched = [TensorSpec("x", "FP32", (-1, 4)), TensorSpec("k", "INT64", (-1,))]
    mismatched = request_of(x=np.zeros((3, 4), np.float32), k=np.zeros(2, np.int64))
    with raises("all inputs must have the same batch size"):
        validate_request(mismatched, "m", unbatched, OUTS, 8)
    good.outputs = []
    from course.serve.protocol import RequestedOutput

    good.outputs = [RequestedOutput("nope", True)]
    with raises("unknown output(s) ['nope']: model 'm' has outputs ['y']"):
        validate_request(good, "m", SPECS, OUTS, 8)


def test_bytes_inputs_become_text_and_must_be_utf8():
    specs = [TensorSpec("s", "BYTES", (-1,))]
    request = request_of(s=np.array([b"a", "é".encode()], dtype=object))
    validate_request(request, "m", specs, [])
    assert request.inputs["s"].tolist() == ["a", "é"], f"got {request.inputs['s'].tolist()}"
    with raises("element 1 is not UTF-8 text"):
        validate_request(request_of(s=np.array([b"a", b"\xff"], dtype=object)), "m", specs, [])


# ---- encoding ------------------------------------------------------------------------------------


def test_responses_round_trip_json_and_binary():
    y = RNG.normal(size=(2, 3)).astype(np.float32)
    labels = np.array([1, 2], np.int64)
    text = np.array(["a", "é"], dtype=object)
    body, header_length = encode_response(
        "m",
        "1",
        [("y", y, True), ("labels", labels, False), ("text", text, True), ("t2", text, False)],
        "id-7",
    )
    head = json.loads(body[:header_length])
    assert head["id"] == "id-7" and head["model_version"] == "1"
    assert head["outputs"][0]["parameters"]["binary_data_size"] == y.nbytes
    got = decode_response(body, header_length)
    assert np.array_equal(got["y"], y) and np.array_equal(got["labels"], labels)
    assert got["text"].tolist() == [b"a", "é".encode()] and got["t2"].tolist() == [
        b"a",
        "é".encode(),
    ]
    plain, none = encode_response("m", None, [("labels", labels, False)])
    assert none is None and "model_version" not in json.loads(plain)
    with raises("holds bytes that are not UTF-8"):
        encode_response("m", None, [("b", np.array([b"\xff"], dtype=object), False)])
    with raises("the server said no"):
        decode_response(b'{"error": "the server said no"}')


def test_encode_request_options_and_datatypes():
    body, header_length = encode_request(
        {"x": np.array([1.0], np.float32)},
        binary=False,
        outputs=["y"],
        binary_outputs=False,
        request_id="a",
    )
    assert header_length is None
    obj = json.loads(body)
    assert (
        obj["outputs"] == [{"name": "y", "parameters": {"binary_data": False}}] and obj["id"] == "a"
    )
    assert datatype_of(np.array(["a"])) == "BYTES" and datatype_of(np.zeros(1, ">f4")) == "FP32"
    with raises("has no Open Inference Protocol datatype"):
        datatype_of(np.zeros(1, np.complex64))


# ---- configuration and repository ----------------------------------------------------------------


def test_pbtxt_parser_reads_triton_configs():
    text = """
    name: "mlp"   # a comment
    platform: "onnxruntime_onnx"
    max_batch_size: 8
    input [ { name: "x" data_type: TYPE_FP32 dims: [ 4 ] } ]
    instance_group [ { count: 1, kind: KIND_CPU } ]
    dynamic_batching { max_queue_delay_microseconds: 100 }
    output { name: "a" } output { name: "b" }
    ratio: 0.5 flag: true
    """
    parsed = parse_pbtxt(text)
    assert parsed["max_batch_size"] == 8 and parsed["input"][0]["dims"] == [4]
    assert parsed["instance_group"][0]["kind"] == "KIND_CPU"
    assert parsed["output"] == [{"name": "a"}, {"name": "b"}]
    assert parsed["ratio"] == 0.5 and parsed["flag"] is True
    for bad, message in [
        ("a { b: 1", "never closed"),
        ("a: [1, 2", "never closed"),
        ("a:", "ends where a value was expected"),
        ("a: }", "expected a value"),
        ("1: 2", "expected a field name"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            parse_pbtxt(bad)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"max_batch_size": -1}, "max_batch_size must be a non-negative integer"),
        ({"dynamic_batching": {}}, "dynamic_batching needs max_batch_size of at least 1"),
        ({"max_batch_size": 4, "dynamic_batching": 3}, "dynamic_batching must be a section"),
        (
            {"max_batch_size": 4, "dynamic_batching": {"preferred_batch_size": [4]}},
            "unsupported dynamic_batching key(s) ['preferred_batch_size']",
        ),
        ({"sequence_batching": {}}, "unsupported key(s) ['sequence_batching']"),
        ({"name": "other"}, "name 'other' differs from the model folder 'm'"),
        ({"platform": "tensorflow_savedmodel"}, "onnxruntime only"),
        ({"default_model_filename": "a/b.onnx"}, "default_model_filename must be a file name"),
        ({"instance_group": [{"count": 0}]}, "instance_group count must be a positive integer"),
        ({"instance_group": [{"count": "2"}]}, "instance_group count must be a positive integer"),
        ({"instance_group": [{"count": 2, "kind": "KIND_GPU"}]}, "use KIND_CPU"),
        ({"instance_group": [{"count": 1, "gpus": [0]}]}, "unsupported instance_group key(s)"),
        ({"instance_group": []}, "instance_group must be a list of groups"),
        ({"instance_group": 2}, "instance_group must be a list of groups"),
        ({"instance_group": [3]}, "each instance_group entry must be a section"),
    ],
)
def test_bad_configurations_name_the_fix(config, message):
    with pytest.raises(ConfigError) as info:
        parse_config(config, "m")
    assert message in str(info.value), f"expected {message!r} in {info.value}"


def test_instance_groups_add_up_in_every_format(tmp_path):
    assert parse_config({}, "m").instance_count is None and parse_config({}, "m").instances == 1
    pbtxt = parse_pbtxt(
        "instance_group [ { count: 2, kind: KIND_CPU }, { kind: KIND_AUTO } ]"
        " instance_group { count: 3 }"
    )
    assert parse_config(pbtxt, "m").instances == 6, f"got {parse_config(pbtxt, 'm')}"
    for name, file, text in [
        ("j", "config.json", json.dumps({"instance_group": [{"count": 2, "kind": "KIND_CPU"}]})),
        ("t", "config.toml", "[[instance_group]]\ncount = 3\nkind = 'KIND_CPU'\n"),
    ]:
        write_model(tmp_path, name, linear_model())
        (tmp_path / name / file).write_text(text)
    repo = load_repository(tmp_path)
    assert [len(repo.get(n).sessions) for n in ("j", "t")] == [2, 3], (
        f"expected 2 and 3 sessions, got {[len(repo.get(n).sessions) for n in ('j', 't')]}"
    )
    assert repo.get("j").triton_config()["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]


def write_model(root: Path, name: str, model: onnx.ModelProto, version: str = "1") -> None:
    (root / name / version).mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(root / name / version / "model.onnx"))


def test_repository_reads_pbtxt_json_and_toml(tmp_path):
    for name in ("a", "b", "c"):
        write_model(tmp_path, name, linear_model())
    write_model(tmp_path, "a", linear_model(), "3")
    (tmp_path / "a" / "config.pbtxt").write_text("max_batch_size: 4 dynamic_batching { }")
    (tmp_path / "b" / "config.json").write_text(
        json.dumps({"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 250}})
    )
    (tmp_path / "c" / "config.toml").write_text("max_batch_size = 2\n")
    (tmp_path / ".hidden").mkdir()
    repo = load_repository(tmp_path)
    assert repo.names() == ["a", "b", "c"] and repo.versions("a") == ["1", "3"]
    assert repo.get("a").version == "3" and repo.get("a", "1").version == "1"
    assert repo.get("a").config.dynamic_batching.max_queue_delay_microseconds == 0
    assert repo.get("b").config.dynamic_batching.max_queue_delay_microseconds == 250
    assert repo.get("c").config.max_batch_size == 2 and not repo.get("c").config.batching
    meta = repo.get("a").metadata(repo.versions("a"))
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    config = repo.get("b").triton_config()
    assert config["input"][0]["dims"] == [4] and config["dynamic_batching"] == {
        "max_queue_delay_microseconds": 250
    }
    with raises("unknown model 'z'", status=404):
        repo.get("z")
    with raises("unknown version '2' of model 'a'; available versions: ['1', '3']", status=404):
        repo.get("a", "2")


def test_repository_errors_say_what_to_fix(tmp_path):
    with pytest.raises(RepositoryError, match="is not a folder"):
        load_repository(tmp_path / "missing")
    with pytest.raises(RepositoryError, match="no models in"):
        load_repository(tmp_path)
    (tmp_path / "m").mkdir()
    with pytest.raises(RepositoryError, match="has no version folder"):
        load_repository(tmp_path)
    (tmp_path / "m" / "1").mkdir()
    with pytest.raises(RepositoryError, match="model.onnx not found"):
        load_repository(tmp_path)
    (tmp_path / "m" / "1" / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(RepositoryError, match="onnxruntime cannot load"):
        load_repository(tmp_path)
    write_model(tmp_path, "m", linear_model(1))
    (tmp_path / "m" / "config.json").write_text('{"max_batch_size": 4}')
    with pytest.raises(ConfigError, match="needs a free first dimension"):
        load_repository(tmp_path)
    (tmp_path / "m" / "config.toml").write_text("max_batch_size = 4")
    with pytest.raises(ConfigError, match="several configuration files"):
        load_repository(tmp_path)
    (tmp_path / "m" / "config.toml").unlink()
    (tmp_path / "m" / "config.json").write_text("{oops")
    with pytest.raises(ConfigError, match="config.json"):
        load_repository(tmp_path)
    (tmp_path / "m" / "config.json").write_text("[1]")
    with pytest.raises(ConfigError, match="must be an object"):
        load_repository(tmp_path)
    (tmp_path / "m" / "config.json").unlink()
    (tmp_path / "m" / "config.pbtxt").write_text("max_batch_size: {")
    with pytest.raises(ConfigError, match="config.pbtxt"):
        load_repository(tmp_path)


def test_sequence_outputs_are_refused_with_a_hint(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["s"])],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    write_model(tmp_path, "seq", model)
    with pytest.raises(RepositoryError, match="zipmap=False"):
        load_repository(tmp_path)


def test_add_model_writes_a_triton_repository(tmp_path):
    path = add_model(
        tmp_path,
        "lin",
        linear_model(),
        max_batch_size=8,
        dynamic_batching=True,
        max_queue_delay_microseconds=300,
    )
    assert path == tmp_path / "lin" / "1" / "model.onnx"
    text = (tmp_path / "lin" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in text and "max_queue_delay_microseconds: 300" in text
    add_model(tmp_path, "lin", path.read_bytes(), version=2)
    add_model(tmp_path, "copy", path)
    repo = load_repository(tmp_path)
    assert repo.versions("lin") == ["1", "2"] and not repo.get("lin").config.batching
    with pytest.raises(ValueError, match="model name"):
        add_model(tmp_path, "../x", path)
    with pytest.raises(ValueError, match="positive integer"):
        add_model(tmp_path, "x", path, version=0)
    with pytest.raises(ConfigError, match="at least 1"):
        add_model(tmp_path, "x", path, dynamic_batching=True)
    with pytest.raises(ConfigError, match="positive integer"):
        add_model(tmp_path, "x", path, instance_count=0)
    add_model(tmp_path, "two", path, instance_count=2)
    text = (tmp_path / "two" / "config.pbtxt").read_text()
    assert parse_pbtxt(text)["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}], text


# ---- schedulers, without HTTP --------------------------------------------------------------------


def gather_model() -> onnx.ModelProto:
    """y = GatherElements(x, idx, axis=1): an index out of range fails inside onnxruntime."""
    graph = helper.make_graph(
        [helper.make_node("GatherElements", ["x", "idx"], ["y"], axis=1)],
        "gather",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, ["N", 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def gather_inputs(rows: int, bad: bool = False) -> dict[str, np.ndarray]:
    x = RNG.normal(size=(rows, 4)).astype(np.float32)
    idx = RNG.integers(0, 4, size=(rows, 1)).astype(np.int64)
    if bad:
        idx[-1, 0] = 9
    return {"x": x, "idx": idx}


def test_batcher_gathers_splits_and_isolates_failures(tmp_path):
    add_model(tmp_path, "g", gather_model(), max_batch_size=16, dynamic_batching=True)
    model = load_repository(tmp_path).get("g")

    async def serve(batcher, requests):
        tasks = [asyncio.ensure_future(batcher.infer(r, len(r["x"]))) for r in requests]
        await asyncio.sleep(0)
        queued = batcher.queued
        return queued, await asyncio.gather(*tasks, return_exceptions=True)

    async def scenario():
        with ThreadPoolExecutor(2) as executor:
            stats = ModelStats()
            batcher = DynamicBatcher(
                model, executor, stats, max_batch_size=16, max_queue_delay=0.05
            )
            batcher.start()
            mixed = [gather_inputs(n, bad=(i == 2)) for i, n in enumerate((1, 2, 3, 2, 3))]
            queued, mixed_results = await serve(batcher, mixed)
            assert queued == 5, f"expected 5 queued requests, got {queued}"
            runs_after_mixed = stats.execution_count
            good = [gather_inputs(n) for n in (1, 2, 3, 2)]
            _, good_results = await serve(batcher, good)
            await batcher.stop()
            with raises("the server is shutting down", status=503):
                await batcher.infer(good[0], 1)
            direct = DirectScheduler(model, executor, ModelStats())
            with raises("failed on this request", status=500):
                await direct.infer(mixed[2], 3)
            return mixed, mixed_results, runs_after_mixed, good, good_results, stats

    mixed, mixed_results, runs_after_mixed, good, good_results, stats = asyncio.run(scenario())
    failure = mixed_results[2]
    assert isinstance(failure, ProtocolError) and failure.status == 500, f"got {failure!r}"
    assert "Out of range" in failure.message, (
        f"expected onnxruntime's reason, got {failure.message!r}"
    )
    for request, result in zip(mixed + good, mixed_results + good_results, strict=True):
        if request is mixed[2]:
            continue
        assert not isinstance(result, BaseException), f"a good request failed: {result!r}"
        want = np.take_along_axis(request["x"], request["idx"], axis=1)
        np.testing.assert_array_equal(result["y"], want)
    # the mixed batch failed as a whole, so its 5 requests ran one by one (4 succeed)...
    assert runs_after_mixed == 4, f"expected 4 isolated runs, got {runs_after_mixed}"
    # ...and the 4 good requests then shared one run of 8 rows
    assert stats.execution_count == 5, f"expected one batched run more, got {stats.execution_count}"
    sizes = {b["batch_size"] for b in stats.to_triton("g", "1")["batch_stats"]}
    assert 8 in sizes, f"expected a batch of 8 rows, got batch sizes {sorted(sizes)}"


def test_batcher_isolates_a_model_that_drops_the_batch_dimension(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "flat"], ["y"])],
        "flatten",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["K"])],  # K = 4 N, not N
        [numpy_helper.from_array(np.array([-1], np.int64), "flat")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    add_model(
        tmp_path,
        "t",
        model,
        max_batch_size=8,
        dynamic_batching=True,
        max_queue_delay_microseconds=50_000,
    )
    version = load_repository(tmp_path).get("t")

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = DynamicBatcher(
                version, executor, ModelStats(), max_batch_size=8, max_queue_delay=0.05
            )
            batcher.start()
            xs = [np.full((n, 4), n, np.float32) for n in (1, 2)]
            results = await asyncio.gather(*(batcher.infer({"x": x}, len(x)) for x in xs))
            await batcher.stop()
            return xs, results

    xs, results = asyncio.run(scenario())
    for x, result in zip(xs, results, strict=True):
        np.testing.assert_array_equal(result["y"], x.ravel())


def test_batcher_refuses_a_zero_batch_size(tmp_path):
    add_model(tmp_path, "lin", linear_model())
    model = load_repository(tmp_path).get("lin")
    with pytest.raises(ValueError, match="at least 1"):
        DynamicBatcher(
            model, ThreadPoolExecutor(1), ModelStats(), max_batch_size=0, max_queue_delay=0
        )


# ---- model instances (Triton's instance_group) ---------------------------------------------------


@dataclasses.dataclass
class WatchedModel(ModelVersion):
    """A loaded model whose runs take at least ``hold`` seconds and record how many overlapped
    and which instance ran them (the runs themselves are the real onnxruntime sessions')."""

    hold: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.runs: list[tuple[int, int]] = []  # (instance, rows)

    def run(self, inputs, instance=0):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.runs.append((instance, len(inputs["x"])))
        try:
            time.sleep(self.hold)
            return super().run(inputs, instance)
        finally:
            with self.lock:
                self.active -= 1


def watched(root: Path, name: str) -> WatchedModel:
    version = load_repository(root).get(name)
    return WatchedModel(**{f.name: getattr(version, f.name) for f in dataclasses.fields(version)})


def run_requests(scheduler, requests, stop: bool = False):
    async def scenario():
        scheduler.start()
        tasks = [asyncio.ensure_future(scheduler.infer(r, len(r["x"]))) for r in requests]
        if stop:
            await asyncio.sleep(0)
            await scheduler.stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await scheduler.stop()
        return results

    return asyncio.run(scenario())


def assert_gathered(requests, results) -> None:
    for i, (request, result) in enumerate(zip(requests, results, strict=True)):
        assert not isinstance(result, BaseException), f"request {i} failed: {result!r}"
        want = np.take_along_axis(request["x"], request["idx"], axis=1)
        assert np.array_equal(result["y"], want), f"request {i}: expected {want}, got {result['y']}"


def test_instances_are_sessions_with_a_share_of_the_cores(tmp_path):
    add_model(
        tmp_path, "two", gather_model(), max_batch_size=4, dynamic_batching=True, instance_count=2
    )
    add_model(tmp_path, "one", gather_model(), max_batch_size=4, dynamic_batching=True)
    repo = load_repository(tmp_path)
    two, one = repo.get("two"), repo.get("one")
    assert len(two.sessions) == 2 and two.sessions[0] is not two.sessions[1], (
        f"expected 2 distinct sessions, got {two.sessions}"
    )
    threads = [s.get_session_options().intra_op_num_threads for s in two.sessions]
    want = max(1, (os.cpu_count() or 1) // 2)
    assert threads == [want, want], f"expected {want} threads per instance, got {threads}"
    # no instance_group: one session with onnxruntime's default threads, as before
    assert len(one.sessions) == 1 and one.session.get_session_options().intra_op_num_threads == 0


@pytest.mark.parametrize("stop", [False, True], ids=["running", "stopped-at-once"])
def test_batches_run_on_every_instance_at_once(tmp_path, stop):
    add_model(
        tmp_path, "g", gather_model(), max_batch_size=4, dynamic_batching=True, instance_count=2
    )
    model = watched(tmp_path, "g")
    requests = [gather_inputs(1) for _ in range(8)]
    stats = ModelStats()
    with ThreadPoolExecutor(2) as executor:
        batcher = DynamicBatcher(model, executor, stats, max_batch_size=4, max_queue_delay=0)
        results = run_requests(batcher, requests, stop=stop)
    assert_gathered(requests, results)
    assert sorted(model.runs) == [(0, 4), (1, 4)], (
        f"expected a batch of 4 on each instance, got (instance, rows) {model.runs}"
    )
    assert model.peak == 2, f"expected both instances to run at once, peak overlap {model.peak}"
    assert stats.execution_count == 2 and stats.inference_count == 8, stats


def test_one_instance_runs_one_batch_at_a_time(tmp_path):
    add_model(tmp_path, "g", gather_model(), max_batch_size=4, dynamic_batching=True)
    model = watched(tmp_path, "g")
    model.hold = 0.05
    requests = [gather_inputs(1) for _ in range(8)]
    with ThreadPoolExecutor(4) as executor:
        batcher = DynamicBatcher(model, executor, ModelStats(), max_batch_size=4, max_queue_delay=0)
        results = run_requests(batcher, requests)
    assert_gathered(requests, results)
    assert model.peak == 1, f"expected one batch at a time, peak overlap {model.peak}"
    assert {i for i, _ in model.runs} == {0}, f"expected instance 0 only, got {model.runs}"


@pytest.mark.parametrize(("count", "peak"), [(None, 4), (2, 2)], ids=["no-group", "two"])
def test_unbatched_runs_overlap_up_to_the_instance_count(tmp_path, count, peak):
    add_model(tmp_path, "g", gather_model(), max_batch_size=4, instance_count=count)
    model = watched(tmp_path, "g")
    requests = [gather_inputs(1) for _ in range(6)]
    with ThreadPoolExecutor(4) as executor:
        results = run_requests(DirectScheduler(model, executor, ModelStats()), requests)
    assert_gathered(requests, results)
    assert model.peak == peak, f"expected {peak} runs at once, got {model.peak}"
    if count is not None:
        used = sorted({i for i, _ in model.runs})
        assert used == list(range(count)), f"expected instances {list(range(count))}, got {used}"
