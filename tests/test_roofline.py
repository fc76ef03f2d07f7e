"""course.roofline: FLOPs and bytes from real graphs, the measured roof, providers, partitions."""

from __future__ import annotations

import math
import stat
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from course import bench, providers, roofline

RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, inits=(), opset=18) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _init(name, shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _cnn(batch="N") -> onnx.ModelProto:
    """Conv(1->4, 3x3, pad 1) + bias, Relu, MaxPool 2x2, Flatten, Gemm(64->10, transB) + bias."""
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], name="fc", transB=1),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        [_init("w", (4, 1, 3, 3)), _init("b", (4,)), _init("fc", (10, 64)), _init("fb", (10,))],
    )
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def cnn_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("roofline") / "cnn.onnx"
    onnx.save(_cnn(), path)
    return path


IMAGES = RNG.random((8, 1, 8, 8), dtype=np.float32)


# --------------------------------------------------------------------------- FLOPs and bytes


def test_cnn_flops_follow_the_formulas(cnn_path):
    for batch in (1, 5):
        cost = roofline.model_cost(cnn_path, batch)
        frame = cost.to_frame()
        conv_out = batch * 4 * 8 * 8
        expected = {
            "conv": 2 * conv_out * (1 * 3 * 3) + conv_out,
            "relu": conv_out,
            "pool": batch * 4 * 4 * 4 * 4,
            "flatten": 0,
            "fc": 2 * batch * 10 * 64 + batch * 10,
        }
        got = frame["flops"].to_dict()
        assert got == expected, f"batch {batch}: expected {expected}, got {got}"
        assert cost.flops == sum(expected.values()), f"total {cost.flops}"
        assert not cost.unknown, f"every shape should be known, got {cost.unknown}"


def test_bytes_weights_and_intensity(cnn_path):
    cost = roofline.model_cost(cnn_path, batch=2)
    relu = next(n for n in cost.nodes if n.name == "relu")
    assert relu.bytes == 2 * (2 * 4 * 8 * 8 * 4), f"Relu reads and writes 2x512 floats: {relu}"
    conv = next(n for n in cost.nodes if n.name == "conv")
    assert conv.weight_bytes == (36 + 4) * 4, f"conv weights + bias: {conv.weight_bytes}"
    assert cost.weight_bytes == (36 + 4 + 640 + 10) * 4, f"all weights: {cost.weight_bytes}"
    assert cost.io_bytes == (2 * 64 + 2 * 10) * 4, f"input + output bytes: {cost.io_bytes}"
    assert cost.min_bytes == cost.weight_bytes + cost.io_bytes
    assert cost.bytes_moved > cost.min_bytes, "unfused traffic exceeds the minimum"
    assert math.isclose(cost.intensity, cost.flops / cost.bytes_moved)
    assert relu.intensity == pytest.approx(0.125), f"1 FLOP per 8 bytes, got {relu.intensity}"
    assert next(n for n in cost.nodes if n.name == "flatten").intensity > -1
    by_op = cost.by_op_type()
    assert by_op.index[0] == "Conv", f"Conv has the most FLOPs here, got order {list(by_op.index)}"
    assert by_op.loc["Gemm", "nodes"] == 1
    assert cost.no_flop_rule == ["Flatten"], cost.no_flop_rule
    assert "MFLOP" in str(cost) and "<table" in cost._repr_html_()


def test_intensity_grows_with_batch_for_gemm():
    model = _model(
        [helper.make_node("Gemm", ["a", "w"], ["y"])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 128])],
        [_init("w", (256, 128))],
    )
    low, high = roofline.model_cost(model, 1), roofline.model_cost(model, 64)
    assert high.intensity > 10 * low.intensity, (
        f"weights amortise over the batch: {low.intensity:.2f} -> {high.intensity:.2f}"
    )
    assert low.flops == 2 * 256 * 128, f"no bias: 2*M*N*K, got {low.flops}"


@pytest.mark.parametrize(
    ("node", "shapes", "expected"),
    [
        # Gemm with transA: K is A's first dimension
        (
            helper.make_node("Gemm", ["a", "b"], ["y"], transA=1),
            {"a": (7, 3), "b": (7, 5)},
            2 * 3 * 5 * 7,
        ),
        # batched MatMul with broadcasting
        (helper.make_node("MatMul", ["a", "b"], ["y"]), {"a": (2, 3, 4, 6), "b": (6, 5)}, None),
        # grouped, strided Conv without bias
        (
            helper.make_node("Conv", ["a", "b"], ["y"], group=2, strides=[2, 2]),
            {"a": (1, 4, 9, 9), "b": (6, 2, 3, 3)},
            2 * (1 * 6 * 4 * 4) * (2 * 3 * 3),
        ),
        (
            helper.make_node("ConvTranspose", ["a", "b"], ["y"]),
            {"a": (1, 2, 4, 4), "b": (2, 3, 3, 3)},
            2 * (1 * 2 * 4 * 4) * (3 * 3 * 3),
        ),
        (helper.make_node("Softmax", ["a"], ["y"]), {"a": (3, 10)}, 3 * 30),
        (helper.make_node("GlobalAveragePool", ["a"], ["y"]), {"a": (2, 3, 4, 4)}, 96),
        (helper.make_node("Sigmoid", ["a"], ["y"]), {"a": (5, 5)}, 25),
        (helper.make_node("Transpose", ["a"], ["y"], perm=[1, 0]), {"a": (5, 4)}, 0),
    ],
)
def test_single_operator_flops(node, shapes, expected):
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()]
    model = _model([node], inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    cost = roofline.model_cost(model)
    if expected is None:  # MatMul: 2 * output elements * K
        expected = 2 * (2 * 3 * 4 * 5) * 6
    assert cost.flops == expected, f"{node.op_type}: expected {expected} FLOPs, got {cost.flops}"


def test_batch_normalization_counts_two_per_element():
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])
    model = _model(
        [node],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [_init(n, (3,)) for n in "sbmv"],
    )
    assert roofline.model_cost(model, 2).flops == 2 * 2 * 48


def test_unknown_shapes_are_reported_not_guessed():
    node = helper.make_node("Mystery", ["x"], ["y"], domain="com.example", name="mystery")
    relu = helper.make_node("Relu", ["y"], ["z"], name="after")
    graph = helper.make_graph(
        [node, relu],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)],
    )
    cost = roofline.model_cost(model, 3)
    assert cost.unknown == ["mystery", "after"], f"got {cost.unknown}"
    assert cost.flops == 0, f"unknown shapes count as 0 FLOPs, got {cost.flops}"


def test_matmul_with_unknown_shape_is_unknown():
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")
    model = _model(
        [node],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    # a second free dimension needs input_shapes
    with pytest.raises(roofline.RooflineError, match="input_shapes"):
        roofline.model_cost(
            _model(
                [node],
                [
                    helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", "K"]),
                    helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 2]),
                ],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            )
        )
    cost = roofline.model_cost(model, input_shapes={"a": (3, 4)})
    assert cost.flops == 2 * 3 * 2 * 4, f"input_shapes wins over batch: {cost.flops}"


def test_concrete_shapes_and_errors(cnn_path, tmp_path):
    shapes = roofline.concrete_shapes(cnn_path, batch=3)
    assert shapes["x"] == ((3, 1, 8, 8), TensorProto.FLOAT), shapes["x"]
    assert shapes["p"][0] == (3, 4, 4, 4), f"MaxPool output inferred, got {shapes['p']}"
    raw = _cnn().SerializeToString()
    assert roofline.concrete_shapes(raw, 2)["y"][0] == (2, 10)
    with pytest.raises(roofline.RooflineError, match="positive int"):
        roofline.concrete_shapes(cnn_path, batch=0)
    with pytest.raises(roofline.RooflineError, match="not graph inputs"):
        roofline.concrete_shapes(cnn_path, input_shapes={"nope": (1,)})
    with pytest.raises(roofline.RooflineError, match="4 positive dimensions"):
        roofline.concrete_shapes(cnn_path, input_shapes={"x": (1, 8, 8)})
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        roofline.model_cost(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="onnx.ModelProto, a path to a .onnx file"):
        roofline.model_cost(42)


def test_string_tensors_have_no_byte_count():
    assert roofline._itemsize(TensorProto.STRING) == 0
    assert roofline._itemsize(TensorProto.FLOAT16) == 2
    assert roofline._itemsize(TensorProto.UNDEFINED) == 0


# --------------------------------------------------------------------------- the roof


def test_peak_measurement_both_backends():
    for backend in ("onnxruntime", "numpy"):
        peak = roofline.measure_peak_gflops(128, backend=backend, repeat=3, intra_op_threads=1)
        assert peak.flops == 2 * 128**3
        assert peak.best_gflops >= peak.median_gflops > 0, (
            f"{backend}: best {peak.best_gflops} must be >= median {peak.median_gflops}"
        )
        assert len(peak.samples) == 3
    assert roofline.measure_peak_gflops(64, backend="numpy", repeat=3).threads is None
    with pytest.raises(roofline.RooflineError, match="backend"):
        roofline.measure_peak_gflops(64, backend="cuda")
    with pytest.raises(roofline.RooflineError, match="n must be"):
        roofline.measure_peak_gflops(4)


def test_bandwidth_and_roof():
    bw = roofline.measure_bandwidth_gbs(4, repeat=3)
    assert bw.bytes == int(2 * bw.megabytes * 1e6)
    assert bw.best_gbs >= bw.median_gbs > 0
    for bad in (0, -1, "64", True):
        with pytest.raises(roofline.RooflineError, match="megabytes"):
            roofline.measure_bandwidth_gbs(bad)
    roof, peak, bandwidth = roofline.measure_roof(n=128, megabytes=4, repeat=3, label="here")
    assert roof.peak_gflops == peak.best_gflops and roof.bandwidth_gbs == bandwidth.best_gbs
    assert roof.label == "here"


def test_roof_arithmetic():
    roof = roofline.Roof(100.0, 20.0)
    assert roof.ridge == 5.0
    assert roof.attainable(1.0) == 20.0 and roof.attainable(50.0) == 100.0
    assert roof.bound(4.9) == "memory" and roof.bound(5.0) == "compute"
    with pytest.raises(roofline.RooflineError, match="intensity"):
        roof.attainable(-1)
    for bad in (0, -3.0, float("inf"), "100"):
        with pytest.raises(roofline.RooflineError, match="positive finite"):
            roofline.Roof(bad, 10.0)
    point = roofline.RooflinePoint("p", flops=2e6, bytes=1e6, seconds=1e-3)
    assert point.intensity == 2.0 and point.gflops == pytest.approx(2.0)
    assert point.fraction_of(roof) == pytest.approx(2.0 / 40.0)
    with pytest.raises(roofline.RooflineError, match="seconds > 0"):
        roofline.RooflinePoint("bad", 1.0, 1.0, 0.0)


def test_plot_roofline_draws_roof_and_points():
    roof = roofline.Roof(100.0, 20.0, "test box")
    points = [
        roofline.RooflinePoint("small", 1e5, 1e5, 1e-4),
        roofline.RooflinePoint("big", 1e9, 1e7, 2e-2),
        roofline.RooflinePoint("copy only", 0, 1e5, 1e-4),  # no FLOPs: not drawable on log axes
    ]
    fig = roofline.plot_roofline(roof, points)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "test box" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 3 and labels[0].startswith("roof"), labels
    assert "FLOP/byte" in ax.get_xlabel() and "GFLOP/s" in ax.get_ylabel()
    from matplotlib.figure import Figure

    other = Figure().add_subplot()
    assert roofline.plot_roofline(roof, ax=other, title="t") is other.figure
    assert other.get_title() == "t"


# --------------------------------------------------------------------------- providers


def test_provider_table_is_live():
    table = roofline.provider_table()
    assert table.loc[roofline.CPU, "available_here"]
    for name in table.index:
        assert table.loc[name, "available_here"] == (name in ort.get_available_providers())
    assert table["known_to_this_build"].sum() >= 10, "most listed providers are known to ORT"
    assert {"hardware", "needs"} <= set(table.columns)


def test_choose_providers_falls_back_and_keeps_order():
    gpu_box = ["TensorrtExecutionProvider", "CUDAExecutionProvider", roofline.CPU]
    want = ["CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert roofline.choose_providers(want, gpu_box) == [*want, roofline.CPU], "preference order"
    assert roofline.choose_providers(want, [roofline.CPU]) == [roofline.CPU]
    assert roofline.choose_providers([], gpu_box) == [roofline.CPU]
    assert roofline.choose_providers("CUDAExecutionProvider", gpu_box)[0] == "CUDAExecutionProvider"
    twice = [roofline.CPU, "CUDAExecutionProvider", "CUDAExecutionProvider"]
    assert roofline.choose_providers(twice, gpu_box) == ["CUDAExecutionProvider", roofline.CPU]
    here = roofline.choose_providers(["CUDAExecutionProvider", roofline.CPU])
    assert here[-1] == roofline.CPU and set(here) <= set(ort.get_available_providers())
    with pytest.raises(providers.ProviderError, match="did you mean 'CUDAExecutionProvider'"):
        roofline.choose_providers(["CudaExecutionProvider"])
    with pytest.raises(providers.ProviderError, match="strings"):
        roofline.choose_providers([None])


def test_session_with_fallback_is_silent(cnn_path, recwarn):
    session = roofline.session_with_fallback(
        cnn_path, ["TensorrtExecutionProvider", "CUDAExecutionProvider"], intra_op_threads=1
    )
    assert session.get_providers()[-1] == roofline.CPU
    assert not [w for w in recwarn if "provider" in str(w.message)], [str(w) for w in recwarn]
    assert session.run(None, {"x": IMAGES})[0].shape == (8, 10)


def test_cuda_status_here_and_with_a_gpu_build_without_gpu(monkeypatch):
    status = roofline.cuda_status()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert not status and "CPU-only" in status.reason and status.device is None
    # a CUDA build whose provider cannot start: ORT falls back, the status says so
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    if "CUDAExecutionProvider" not in real:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            status = roofline.cuda_status()
        assert not status.usable and "did not start" in status.reason, status


def test_gpu_name_reads_nvidia_smi(monkeypatch, tmp_path):
    monkeypatch.setattr(providers.shutil, "which", lambda name: None)
    assert providers._gpu_name() is None
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'Test GPU 80GB'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(providers.shutil, "which", lambda name: str(fake))
    assert providers._gpu_name() == "Test GPU 80GB"
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(providers.shutil, "which", lambda name: str(broken))
    assert providers._gpu_name() is None
    monkeypatch.setattr(providers.shutil, "which", lambda name: str(tmp_path / "absent"))
    assert providers._gpu_name() is None


def test_provider_assignment_counts_every_node(cnn_path):
    frame = roofline.provider_assignment(cnn_path, optimization_level="disable")
    assert set(frame["provider"]) == {roofline.CPU}
    assert frame["nodes"].sum() == len(_cnn().graph.node), frame
    assert "Conv" in frame["op_types"].tolist()
    fused = roofline.provider_assignment(cnn_path, ["CUDAExecutionProvider"])
    assert fused["nodes"].sum() >= 1 and list(fused.columns) == ["provider", "nodes", "op_types"]


# --------------------------------------------------------------------------- partitions


def test_partition_by_operator_set(cnn_path):
    part = roofline.partition(cnn_path, {"Conv", "Relu", "MaxPool"})
    assert part.accelerated == 3 and part.total == 5, str(part)
    assert len(part.subgraphs) == 1 and part.subgraphs[0] == ["conv", "relu", "pool"]
    # the image goes to the device, the pooled map comes back for Flatten
    assert part.transfers == 2, str(part)
    frame = part.to_frame()
    assert frame.loc["fc", "device"] == "cpu" and frame.loc["fc", "subgraph"] == -1
    assert "3 of 5 nodes" in str(part)


def test_partition_splits_around_unsupported_nodes(cnn_path):
    part = roofline.partition(cnn_path, {"Conv", "MaxPool", "Gemm"})
    assert [len(s) for s in part.subgraphs] == [1, 1, 1], part.subgraphs
    # x -> conv (in), conv -> relu (back), relu -> pool (in), pool -> flatten (back),
    # flatten -> fc (in), fc -> y (back)
    assert part.transfers == 6, str(part)
    lean = roofline.partition(cnn_path, {"Conv", "MaxPool", "Gemm"}, min_subgraph_nodes=2)
    assert lean.accelerated == 0 and lean.transfers == 0, str(lean)
    everything = roofline.partition(cnn_path, lambda node: True)
    assert everything.accelerated == 5 and everything.transfers == 2, str(everything)
    with pytest.raises(providers.ProviderError, match="operator type names"):
        roofline.partition(cnn_path, {1, 2})
    with pytest.raises(providers.ProviderError, match="min_subgraph_nodes"):
        roofline.partition(cnn_path, {"Conv"}, min_subgraph_nodes=0)


# --------------------------------------------------------------------------- measurements


def test_throughput_by_threads_and_plot(cnn_path):
    frame = roofline.throughput_by_threads(cnn_path, IMAGES, (1, 2), batch=16, repeat=5)
    assert list(frame.index) == [1, 2] and frame.attrs["batch"] == 16
    assert (frame["ci_low_ms"] <= frame["median_ms"]).all()
    assert np.allclose(frame["throughput_per_s"], 16e3 / frame["median_ms"])
    fig = roofline.plot_throughput_by_threads(frame, title="threads")
    ax = fig.axes[0]
    assert ax.get_title() == "threads" and "threads" in ax.get_xlabel()
    assert "samples/s" in ax.get_ylabel()
    from matplotlib.figure import Figure

    ax2 = Figure().add_subplot()
    assert roofline.plot_throughput_by_threads(frame, ax=ax2) is ax2.figure
    with pytest.raises(roofline.RooflineError, match="lacks"):
        roofline.plot_throughput_by_threads(frame[["median_ms"]])
    with pytest.raises(roofline.RooflineError, match="empty"):
        roofline.throughput_by_threads(cnn_path, IMAGES, ())
    with pytest.raises(roofline.RooflineError, match="thread count"):
        roofline.throughput_by_threads(cnn_path, IMAGES, (0,))


def test_transfer_runners_on_cpu_give_the_same_answer(cnn_path):
    session = bench.ort_session(cnn_path, intra_op_threads=1)
    runners = roofline.transfer_runners(session, IMAGES)
    assert list(runners) == [
        "run(): host in, host out",
        "binding: host in, device out",
        "binding: device in, device out",
    ]
    expected = runners["run(): host in, host out"]()[0]
    for key in ("binding: host in, device out", "binding: device in, device out"):
        runners[key]()
        got = runners[key].outputs()[0]
        assert np.array_equal(got, expected), f"{key}: outputs differ from run()"
    cmp = bench.compare(runners, repeat=5, warn=False)
    assert len(cmp.results) == 3
    with pytest.raises(roofline.RooflineError, match="device"):
        roofline.transfer_runners(session, IMAGES, device="tpu")
    two = _model(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(roofline.RooflineError, match="single-input"):
        roofline.transfer_runners(bench.ort_session(two), np.ones(2, np.float32))


def test_operating_point_and_view(cnn_path):
    roof = roofline.Roof(50.0, 10.0)
    sessions, costs = {}, {}
    point = roofline.operating_point(
        cnn_path,
        IMAGES,
        batch=4,
        intra_op_threads=1,
        roof=roof,
        repeat=5,
        sessions=sessions,
        costs=costs,
    )
    assert point["flops"] == roofline.model_cost(cnn_path, 4).flops
    assert point["throughput_per_s"] == pytest.approx(4e3 / point["median_ms"])
    assert point["attainable_gflops"] == roof.attainable(point["intensity"])
    assert 1 in sessions and 4 in costs, "caches filled for the next call"
    bare = roofline.operating_point(cnn_path, IMAGES, batch=2, repeat=5)
    assert "fraction_of_roof" not in bare and bare["threads"] == "default"
    text, fig = roofline.operating_point_view(
        cnn_path,
        IMAGES,
        roof,
        batch=4,
        intra_op_threads=1,
        repeat=5,
        sessions=sessions,
        costs=costs,
    )
    assert "batch 4, threads 1" in text and "of the roof" in text
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(roofline.RooflineError, match="batch"):
        roofline.operating_point(cnn_path, IMAGES, batch=0)


def test_normal_use_writes_nothing_to_stderr(cnn_path):
    """Lesson cells that call the module must stay silent (nbgrader scores stderr as a failure)."""
    code = (
        "from course import roofline\n"
        f"roofline.model_cost({str(cnn_path)!r}, 2)\n"
        "roofline.cuda_status()\n"
        "roofline.choose_providers(['CUDAExecutionProvider', 'CPUExecutionProvider'])\n"
        f"roofline.provider_assignment({str(cnn_path)!r}, ['CUDAExecutionProvider'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", f"expected no stderr output, got {proc.stderr[:500]!r}"
