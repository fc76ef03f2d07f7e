"""course.text_models: the encoder is built from nothing (a private cache), exported, verified.

The encoder artefacts are built from nothing (about a minute on two cores) once, into a temporary
``COURSE_CACHE_DIR``; every test of this file reads them.
The tests share one xdist group so that ``pytest -n 2 --dist loadgroup`` builds it once; where
the lesson harness builds the session's artefacts, that build is reused.
"""

from __future__ import annotations

import os
import time

import harness
import numpy as np
import pytest

from course import artefacts, text_models, verify

pytestmark = [pytest.mark.xdist_group("text-encoder"), pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every encoder file, built from nothing into a course cache.

    Where the lesson harness builds the session's artefacts (``harness.artefact_cache``: one
    build from nothing shared with the lesson runs), its cache is used; else a private one is
    built here. ``COURSE_CACHE_DIR`` is restored afterwards.
    """
    shared = getattr(harness, "artefact_cache", None)
    before = os.environ.get("COURSE_CACHE_DIR")
    try:
        if shared is not None:
            os.environ["COURSE_CACHE_DIR"] = str(shared())
            yield {"files": text_models.encoder_files(), "fresh": False}
            return
        cache = tmp_path_factory.mktemp("text-encoder-cache")
        os.environ["COURSE_CACHE_DIR"] = str(cache)
        assert not any(cache.iterdir()), f"expected an empty cache, found {list(cache.iterdir())}"
        artefacts.build(["text-encoder", "text-encoder-variants"], echo=lambda _: None)
        yield {"files": text_models.encoder_files(), "fresh": True}
    finally:
        if before is None:
            os.environ.pop("COURSE_CACHE_DIR", None)
        else:
            os.environ["COURSE_CACHE_DIR"] = before


def test_builders_are_registered():
    names = set(artefacts.builders())
    assert {"text-encoder", "text-encoder-variants"} <= names, f"got {sorted(names)}"


def test_build_from_nothing_writes_every_file_and_a_second_call_reads_the_cache(built):
    files = built["files"]
    assert list(files) == ["fp32", *text_models.VARIANTS], f"got {list(files)}"
    for name, path in files.items():
        assert path.is_file() and path.stat().st_size > 1e6, f"{name}: {path} missing or empty"
    hf = text_models.build_encoder()
    assert (hf / "config.json").is_file() and (hf / "model.safetensors").is_file(), (
        f"expected a save_pretrained folder, got {sorted(p.name for p in hf.iterdir())}"
    )
    start = time.perf_counter()
    again = text_models.encoder_files()
    elapsed = time.perf_counter() - start
    assert again == files, f"expected the cached paths {files}, got {again}"
    assert elapsed < 2.0, f"a cached call should return at once, took {elapsed:.1f} s"


def test_encoder_has_tens_of_millions_of_parameters(built):
    model = text_models.load_encoder()
    count = sum(p.numel() for p in model.parameters())
    assert 20e6 <= count <= 60e6, f"expected 20-60 M parameters, got {count / 1e6:.1f} M"


def test_onnx_matches_pytorch_on_a_batch_and_length_the_export_never_saw(built):
    import onnx
    import torch

    proto = onnx.load(built["files"]["fp32"], load_external_data=False)
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in
            proto.graph.input}  # fmt: skip
    assert dims == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}, (
        f"expected symbolic [batch, sequence] inputs, got {dims}"
    )
    feeds = text_models.sample_inputs(batch=3, seq=37, seed=5)  # the export saw 2 x 16
    assert feeds["attention_mask"].min() == 0, "expected padding in the held inputs"
    model = text_models.load_encoder()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    expected = [out.last_hidden_state.numpy(), out.pooler_output.numpy()]
    report = verify.verify(
        built["files"]["fp32"], feeds, expected, atol=1e-4, rtol=1e-3, runtimes=("onnxruntime",)
    )
    assert report.passed, f"expected parity with PyTorch, got\n{report}"


@pytest.mark.parametrize(
    ("name", "min_cosine"),
    [
        ("optimized_dynamo", 0.99999),
        ("optimized", 0.99999),
        ("int8", 0.995),
        ("qdq", 0.99),
        ("int4", 0.98),
        ("fp16", 0.9999),
    ],
)
def test_each_variant_loads_in_onnxruntime_and_agrees_with_float32(built, name, min_cosine):
    feeds = text_models.sample_inputs(batch=2, seq=24, seed=7)
    out = text_models.outputs_by_variant(feeds, ("fp32", name), threads=1)
    assert out[name].shape == (2, 24, 768), f"{name}: expected (2, 24, 768), got {out[name].shape}"
    agree = text_models.agreement(out["fp32"], out[name], feeds["attention_mask"])
    assert agree["cosine_mean"] >= min_cosine, (
        f"{name}: expected mean cosine >= {min_cosine}, got {agree}"
    )


def test_quantized_files_are_several_times_smaller(built):
    files = built["files"]
    fp32 = text_models.size_mb(files["fp32"])
    ratios = {name: fp32 / text_models.size_mb(files[name]) for name in ("int8", "int4", "fp16")}
    assert ratios["int8"] >= 3.5, f"expected int8 >= 3.5x smaller, got {ratios}"
    assert ratios["int4"] >= 5.0, f"expected int4 >= 5x smaller, got {ratios}"
    assert 1.9 <= ratios["fp16"] <= 2.1, f"expected fp16 about 2x smaller, got {ratios}"


def test_fused_and_quantized_operators_are_where_they_belong(built):
    counts = {k: text_models.fused_operator_counts(v) for k, v in built["files"].items()}
    layers = text_models.ENCODER["num_hidden_layers"]
    assert counts["fp32"]["Attention"] == 0 and counts["fp32"]["MatMul"] > 0, f"{counts['fp32']}"
    assert counts["optimized"]["Attention"] == layers, f"got {counts['optimized']}"
    assert counts["optimized"]["SkipLayerNormalization"] == 2 * layers, f"{counts['optimized']}"
    assert counts["int8"]["MatMulInteger"] > 0 and counts["int8"]["QAttention"] == layers, (
        f"got {counts['int8']}"
    )
    assert counts["int4"]["MatMulNBits"] > 0, f"got {counts['int4']}"
    ops = text_models.operator_counts(built["files"]["qdq"])
    assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0, f"got {ops}"


def test_a_damaged_cached_file_is_rebuilt(built):
    path = built["files"]["int4"]
    size = path.stat().st_size
    damaged = path.with_name(".damaged-int4.onnx")  # replaced, not written in place: a lesson's
    damaged.write_bytes(b"truncated")  # cache may hold a hard link to the same file
    os.replace(damaged, path)
    again = text_models.encoder_variants()["int4"]
    assert again == path and path.stat().st_size == size, (
        f"expected {path} rebuilt to {size} bytes, got {path.stat().st_size}"
    )


def test_sample_inputs_are_deterministic_padded_and_checked():
    a = text_models.sample_inputs(4, 10, seed=3)
    b = text_models.sample_inputs(4, 10, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a), "expected the same arrays for one seed"
    assert a["attention_mask"][0].all(), "expected the first row unpadded"
    assert (a["input_ids"][a["attention_mask"] == 0] == 0).all(), "expected padded ids of 0"
    for bad in ({"batch": 0, "seq": 4}, {"batch": 1, "seq": 513}):
        with pytest.raises(ValueError, match="seq|batch"):
            text_models.sample_inputs(**bad)


def test_agreement_rejects_shapes_that_differ():
    with pytest.raises(ValueError, match="shapes differ"):
        text_models.agreement(np.zeros((1, 2, 3)), np.zeros((1, 3, 3)))
    pooled = text_models.agreement(np.ones((2, 3)), -np.ones((2, 3)))
    assert pooled["cosine_mean"] == pytest.approx(-1.0), f"got {pooled}"


def test_cpu_flags_report_each_feature_as_a_bool():
    flags = text_models.cpu_flags()
    assert set(flags) == set(text_models.ISA_FLAGS), f"got {sorted(flags)}"
    assert all(isinstance(v, bool) for v in flags.values()), f"got {flags}"


def test_matmul_models_compute_the_same_product_three_ways():
    from onnx import numpy_helper

    from course import bench

    models = text_models.matmul_models(8, 32, 16, seed=3)
    feeds = text_models.matmul_feeds(8, 32, seed=3)
    out = {n: bench.ort_session(m).run(None, feeds[n])[0] for n, m in models.items()}
    weight8 = numpy_helper.to_array(models["int8_kernel"].graph.initializer[0]).astype(np.int64)
    want = feeds["int8_kernel"]["xq"].astype(np.int64) @ weight8
    assert np.array_equal(out["int8_kernel"], want), (
        "expected MatMulInteger's exact integer product"
    )
    weight32 = numpy_helper.to_array(models["fp32"].graph.initializer[0])
    np.testing.assert_allclose(out["fp32"], feeds["fp32"]["x"] @ weight32, rtol=1e-5, atol=1e-5)
    assert out["int8"].shape == (8, 16) and out["int8"].dtype == np.int32, (
        f"expected int32 (8, 16), got {out['int8'].dtype} {out['int8'].shape}"
    )


def test_operator_counts_of_a_file_outside_the_cache_parse_it(tmp_path):
    import onnx

    model = text_models.matmul_models(2, 4, 4)["int8"]
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    assert text_models.operator_counts(path) == {"DynamicQuantizeLinear": 1, "MatMulInteger": 1}
    fused = text_models.fused_operator_counts(path)
    assert fused["MatMulInteger"] == 1 and fused["Attention"] == 0, f"got {fused}"
