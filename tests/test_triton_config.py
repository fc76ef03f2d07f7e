"""course.triton_config: configurations generated from real ONNX models, parsed with Triton's
own protobuf schema, refused for the reasons Triton refuses them, and served by course.serve."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import course.serve
from course import triton_config as tc
from course.triton_config import TensorRTUnavailable, TritonConfigError


def classifier(batch_dim="N") -> onnx.ModelProto:
    """uint8 pixels -> float logits and an int64 label per row (a rank-1 output)."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["pixels"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["f", "W"], ["logits"]),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ],
        "classifier",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, [batch_dim, 64])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch_dim, 10]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [batch_dim]),
        ],
        [numpy_helper.from_array(np.ones((64, 10), np.float32), "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def sequence_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["tokens"], ["out"])],
        "seq",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "length"])],
        [helper.make_tensor_value_info("out", TensorProto.INT64, ["batch", "length"])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def test_generated_config_parses_validates_and_serves(tmp_path):
    model = classifier()
    text = tc.model_config(
        model,
        "digits",
        max_batch_size=16,
        dynamic_batching=True,
        max_queue_delay_microseconds=500,
        preferred_batch_sizes=[4, 8],
        instance_count=2,
    )
    config = tc.parse_config(text)
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 16
    assert [list(t.dims) for t in config.input] == [[64]]
    assert [(t.name, list(t.dims)) for t in config.output] == [("logits", [10]), ("label", [1])]
    assert config.output[1].HasField("reshape") and list(config.output[1].reshape.shape) == []
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.instance_group[0].count == 2
    assert tc.validate_config(text, model, name="digits") == []
    # course.serve does not implement preferred_batch_size: write one it can serve
    plain = tc.model_config(model, "digits", max_batch_size=16, dynamic_batching=True)
    path = tc.write_model(tmp_path, "digits", model, plain)
    assert path == tmp_path / "digits" / "1" / "model.onnx" and path.is_file()
    loaded = course.serve.load_repository(tmp_path).get("digits").config
    assert loaded.max_batch_size == 16 and loaded.batching
    tree = tc.repository_tree(tmp_path)
    assert (
        "digits/" in tree and "config.pbtxt (" in tree and "model.onnx (" in tree and "kB" in tree
    )


def test_unbatched_config_keeps_every_dim():
    text = tc.model_config(sequence_model(), "seq")
    config = tc.parse_config(text)
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [-1, -1]
    assert tc.validate_config(config, sequence_model()) == []


def test_tensorrt_accelerator_section():
    text = tc.model_config(
        classifier(), "digits", max_batch_size=8, tensorrt={"precision_mode": "FP16"}
    )
    accel = tc.parse_config(text).optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accel.name == "tensorrt" and accel.parameters["precision_mode"] == "FP16"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace("dims: 64", "dims: -1\n  dims: 64"),
            "making complete shape [-1,-1,64]",
        ),
        (lambda t: t.replace("dims: 64", "dims: 32"), "the model expects dims [-1,64]"),
        (lambda t: t.replace("TYPE_UINT8", "TYPE_FP32"), "unexpected datatype TYPE_FP32"),
        (
            lambda t: t.replace('name: "pixels"', 'name: "image"'),
            "unexpected inference input 'image'",
        ),
        (lambda t: t.replace('name: "digits"', 'name: "other"'), "differs from the model folder"),
        (
            lambda t: t.replace('platform: "onnxruntime_onnx"', 'platform: "tensorrt_plan"'),
            "platform",
        ),
        (
            lambda t: t.replace('platform: "onnxruntime_onnx"', 'backend: "python"'),
            "backend 'python'",
        ),
        (lambda t: t.replace('platform: "onnxruntime_onnx"', ""), "set platform"),
        (lambda t: t.replace('name: "digits"', ""), "'name' is not set"),
        (lambda t: t.replace("  dims: 1\n  reshape {\n  }\n", ""), "at least one dimension"),
        (lambda t: t.replace("  reshape {\n  }\n", ""), "making complete shape [-1,1]"),
        (lambda t: t.replace("data_type: TYPE_INT64\n", ""), "data_type must be specified"),
        (lambda t: t.replace("max_batch_size: 8", "max_batch_size: -1"), "must be >= 0"),
        (lambda t: t + "dynamic_batching { preferred_batch_size: 64 }\n", "preferred size 64"),
        (lambda t: t + "instance_group { count: -2 }\n", "count must be >= 0"),
        (lambda t: t + 'output { name: "label" data_type: TYPE_INT64 dims: 1 }\n', "listed twice"),
    ],
)
def test_validation_problems(edit, expected):
    model = classifier()
    text = tc.model_config(model, "digits", max_batch_size=8)
    problems = tc.validate_config(edit(text), model, name="digits")
    assert any(expected in p for p in problems), problems
    with pytest.raises(TritonConfigError) as info:
        tc.check_config(edit(text), model, name="digits")
    assert info.value.problems == problems and "Triton would refuse" in str(info.value)


def test_batching_needs_a_dynamic_first_dimension_and_max_batch():
    fixed = classifier(batch_dim=4)
    problems = tc.validate_config('name: "m" platform: "onnxruntime_onnx" max_batch_size: 8', fixed)
    assert any("first dimension must be -1" in p for p in problems), problems
    with pytest.raises(TritonConfigError, match="first dimension must be -1"):
        tc.model_config(fixed, "m", max_batch_size=8)
    problems = tc.validate_config(
        'name: "m" backend: "onnxruntime" dynamic_batching { }', classifier()
    )
    assert any("needs max_batch_size >= 1" in p for p in problems), problems


def test_listed_tensor_count_must_match():
    text = tc.model_config(classifier(), "m", max_batch_size=4)
    one_output = text[: text.index("output")]
    problems = tc.validate_config(
        one_output + 'output { name: "logits" data_type: TYPE_FP32 dims: 10 }\n', classifier()
    )
    assert any("lists 1 outputs but the model has 2" in p for p in problems), problems


def test_parse_errors_name_the_place():
    with pytest.raises(TritonConfigError, match='no field named "max_batch"'):
        tc.parse_config('name: "m" max_batch: 3')
    with pytest.raises(TritonConfigError, match="TYPE_FLOAT"):
        tc.parse_config('input { name: "x" data_type: TYPE_FLOAT dims: 1 }')
    with pytest.raises(TypeError, match="must be a str"):
        tc.parse_config(b"name: 'm'")


def test_generator_argument_checks(tmp_path):
    with pytest.raises(TritonConfigError, match="pass dynamic_batching=True"):
        tc.model_config(classifier(), "m", max_batch_size=4, max_queue_delay_microseconds=10)
    with pytest.raises(TypeError, match="onnx.ModelProto, a path to a .onnx file"):
        tc.model_config(42, "m")
    path = tmp_path / "seq.onnx"
    onnx.save(sequence_model(), path)
    assert 'name: "seq"' in tc.model_config(str(path), "seq")
    with pytest.raises(ValueError, match="model name"):
        tc.write_model(tmp_path, "bad name", sequence_model(), "")
    with pytest.raises(ValueError, match="version must be"):
        tc.write_model(tmp_path, "seq", sequence_model(), 'name: "seq"', version=0)
    with pytest.raises(FileNotFoundError):
        tc.repository_tree(tmp_path / "missing")


def test_unsupported_tensors():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("SequenceEmpty", [], ["s"])], "g", [], [seq])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(TritonConfigError, match="not a tensor"):
        tc.model_config(model, "g")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.COMPLEX64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.COMPLEX64, [2])],
    )
    with pytest.raises(TritonConfigError, match="no data type"):
        tc.model_config(helper.make_model(graph), "g")


def test_tensorrt_provider_options(tmp_path):
    options = tc.tensorrt_provider_options(
        sequence_model(),
        batch=(1, 4, 16),
        dims={"length": (2, 64, 256)},
        cache_dir=tmp_path,
        fp16=True,
        workspace_bytes=1 << 20,
    )
    assert options["trt_profile_min_shapes"] == "tokens:1x2"
    assert options["trt_profile_opt_shapes"] == "tokens:4x64"
    assert options["trt_profile_max_shapes"] == "tokens:16x256"
    assert options["trt_engine_cache_enable"] == "1" and options["trt_fp16_enable"] == "1"
    assert options["trt_engine_cache_path"] == str(tmp_path) == options["trt_timing_cache_path"]
    assert options["trt_max_workspace_size"] == str(1 << 20)
    fixed = tc.tensorrt_provider_options(classifier(batch_dim=4))
    assert fixed["trt_profile_max_shapes"] == "pixels:4x64" and fixed["trt_fp16_enable"] == "0"
    with pytest.raises(ValueError, match="axis 1 is dynamic"):
        tc.tensorrt_provider_options(sequence_model())
    with pytest.raises(ValueError, match="min <= opt <= max"):
        tc.tensorrt_provider_options(classifier(), batch=(8, 4, 16))
    with pytest.raises(ValueError, match="three positive integers"):
        tc.tensorrt_provider_options(classifier(), batch=(0, 4, 16))
    with pytest.raises(ValueError, match="not dynamic dimensions"):
        tc.tensorrt_provider_options(classifier(), dims={"length": (1, 2, 3)})


def test_tensorrt_providers_here():
    if tc.tensorrt_available():  # pragma: no cover - a GPU build of onnxruntime
        providers = tc.tensorrt_providers({"trt_fp16_enable": "1"})
        assert providers[0][0] == "TensorrtExecutionProvider"
    else:
        with pytest.raises(TensorRTUnavailable, match="onnxruntime-gpu"):
            tc.tensorrt_providers({})
