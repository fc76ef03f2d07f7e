"""course.generation: a decoder with its KV cache, exported and generated from, token for token.

Everything is built from nothing into a temporary course cache. A small decoder (random weights:
what is checked here is the export and the loops, not the text) keeps the module cheap; the
course's own trained decoder is built once through its registered builders, as set-up does.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("course-cache")
    mp.setenv("COURSE_CACHE_DIR", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def small(cache):
    """A 2-layer decoder with grouped-query attention, untrained, and both exports."""
    from course import generation

    config = generation.decoder_config(hidden_size=64, intermediate_size=128, context=300)
    folder = generation.build_decoder(config, train_steps=0, seed=1)
    return {
        "folder": folder,
        "past": generation.decoder_onnx(True, folder),
        "plain": generation.decoder_onnx(False, folder),
        "model": generation.load_decoder(folder)[0],
    }


def test_built_from_nothing_into_the_cache(cache, small):
    assert small["folder"].is_relative_to(cache), f"expected a folder under {cache}, got {small}"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training.json"):
        assert (small["folder"] / name).exists(), f"{name} missing from {small['folder']}"
    record = json.loads(small["past"].with_suffix(".json").read_text())
    assert record["parity_passed"] and "dynamo=True" in record["route"], record


def test_exports_pass_the_checker_with_shape_inference(small):
    for key in ("past", "plain"):
        model = onnx.load(small[key])
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        assert len(inferred.graph.value_info) > 0, f"{key}: shape inference found no shapes"


def test_graph_inputs_outputs_and_past_shapes(small):
    from course import generation

    rows = {r["name"]: r for r in generation.decoder_io(small["past"])}
    assert rows["input_ids"]["shape"] == ["batch", "sequence"], rows["input_ids"]
    key = rows["past_key_values.0.key"]
    assert key["kind"] == "input" and key["shape"] == ["batch", 2, "past_sequence", 16], key
    present = rows["present.1.value"]
    assert present["kind"] == "output" and present["shape"][:2] == ["batch", 2], present
    names = [r["name"] for r in generation.decoder_io(small["plain"])]
    assert names == ["input_ids", "attention_mask", "logits"], names


def test_kv_cache_grows_one_position_per_token(small):
    import onnxruntime as ort

    session = ort.InferenceSession(str(small["past"]))
    past = {
        i.name: np.zeros((1, 2, 0, 16), np.float32)
        for i in session.get_inputs()
        if i.name.startswith("past_key_values.")
    }
    ids = np.array([[3, 4, 5, 6, 7]], np.int64)
    out = session.run(None, {"input_ids": ids, "attention_mask": np.ones((1, 5), np.int64), **past})
    assert out[0].shape == (1, 5, 64 * 6), f"logits shape {out[0].shape}"
    assert all(o.shape == (1, 2, 5, 16) for o in out[1:]), [o.shape for o in out[1:]]
    names = [o.name for o in session.get_outputs()][1:]
    past = {
        n.replace("present.", "past_key_values."): v for n, v in zip(names, out[1:], strict=True)
    }
    out = session.run(
        None, {"input_ids": ids[:, :1], "attention_mask": np.ones((1, 6), np.int64), **past}
    )
    assert all(o.shape == (1, 2, 6, 16) for o in out[1:]), [o.shape for o in out[1:]]


def test_onnx_matches_pytorch_token_for_token(small):
    from course import generation

    prompt = [5, 9, 17, 33, 2, 80]
    ref = generation.greedy_generate_torch(None, prompt, 24, model=small["model"])
    cached = generation.greedy_generate_onnx(small["past"], prompt, 24)
    recomputed = generation.greedy_generate_onnx(small["past"], prompt, 24, use_cache=False)
    plain = generation.greedy_generate_onnx(small["plain"], prompt, 24, use_cache=False)
    assert len(ref.tokens) == 24 and len(ref.seconds) == 24, (len(ref.tokens), len(ref.seconds))
    for run in (cached, recomputed, plain):
        assert run.tokens == ref.tokens, (
            f"{run.engine}: first difference at new token {run.first_difference(ref)}: "
            f"expected {ref.tokens}, got {run.tokens}"
        )
    assert cached.positions == list(range(6, 30)), cached.positions


def test_eos_stops_generation(small):
    from course import generation

    prompt = [5, 9, 17]
    free = generation.greedy_generate_onnx(small["past"], prompt, 10)
    stop_at = free.tokens[3]
    first = free.tokens.index(stop_at)
    run = generation.greedy_generate_onnx(small["past"], prompt, 10, eos_token_id=stop_at)
    assert run.tokens == free.tokens[: first + 1], (free.tokens, run.tokens)


def test_cache_is_cheaper_per_token_at_long_positions(small):
    from course import bench, generation

    session = bench.ort_session(str(small["past"]), intra_op_threads=1)
    prompt = list(np.random.default_rng(0).integers(1, 300, 240))
    generation.greedy_generate_onnx(session, prompt, 2)  # warm-up
    cached = generation.greedy_generate_onnx(session, prompt, 16)
    recomputed = generation.greedy_generate_onnx(session, prompt, 16, use_cache=False)
    with_cache, without = cached.decode_ms_per_token, recomputed.decode_ms_per_token
    assert with_cache < without / 1.5, (
        f"at positions 240-256 expected the cached step well below the recomputed one, "
        f"got {with_cache:.2f} ms vs {without:.2f} ms per token"
    )
    assert cached.tokens == recomputed.tokens


def test_error_messages_name_the_fix(small, tmp_path):
    from course import generation

    with pytest.raises(ValueError, match="without past key/values"):
        generation.greedy_generate_onnx(small["plain"], [1, 2], 3)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generation.greedy_generate_onnx(small["past"], [1, 10_000], 3)
    with pytest.raises(ValueError, match="prompt_ids is empty"):
        generation.greedy_generate_onnx(small["past"], [], 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generation.greedy_generate_onnx(small["past"], [1], 0)
    with pytest.raises(ValueError, match="context of 300 positions"):
        generation.greedy_generate_onnx(small["past"], [1] * 290, 20)
    with pytest.raises(FileNotFoundError, match="decoder_onnx"):
        generation.greedy_generate_onnx(tmp_path / "missing.onnx", [1], 3)
    with pytest.raises(FileNotFoundError, match="build_decoder"):
        generation.decoder_onnx(True, tmp_path)
    with pytest.raises(FileNotFoundError, match="genai_model"):
        generation.greedy_generate_genai(tmp_path, [1], 3)
    with pytest.raises(ValueError, match="train_steps"):
        generation.build_decoder(train_steps=-1)
    with pytest.raises(ValueError, match="multiple of"):
        generation.decoder_config(hidden_size=65)


def test_genai_builds_offline_and_matches_token_for_token(small):
    from course import generation

    folder = generation.genai_model(small["folder"])
    assert (folder / "genai_config.json").exists() and (folder / "model.onnx").exists()
    prompt = [5, 9, 17, 33]
    ref = generation.greedy_generate_torch(None, prompt, 20, model=small["model"], eos_token_id=0)
    run = generation.greedy_generate_genai(folder, prompt, 20)
    assert run.tokens == ref.tokens, f"expected {ref.tokens}, got {run.tokens}"
    assert len(run.seconds) == len(run.tokens), (run.seconds, run.tokens)


def test_the_course_decoder_builders_from_nothing(cache, monkeypatch):
    """The registered builders (what `python -m course.artefacts` runs at set-up): the trained
    decoder recites its text, and a second call returns the cached files.

    The session's build from nothing (``harness.artefact_cache``, shared with the lesson runs and
    the encoder's tests) is read rather than built a second time."""
    import time

    import harness

    from course import artefacts, generation

    monkeypatch.setenv("COURSE_CACHE_DIR", str(harness.artefact_cache()))
    built = artefacts.build(["decoder", "decoder-genai"], echo=lambda line: None)
    onnx_path, genai_dir = built["decoder"], built["decoder-genai"]
    assert onnx_path.exists() and (genai_dir / "genai_config.json").exists(), built
    training = json.loads((onnx_path.parent.parent / "hf" / "training.json").read_text())
    assert training["losses"][-1] < training["losses"][0] / 3, training["losses"]
    prompt = generation.encode("The Zen of Python, by Tim Peters\n\nBeautiful is")
    run = generation.greedy_generate_onnx(onnx_path, prompt, 12)
    text = generation.decode(run.tokens)
    assert text.startswith(" better than ugly.\nExplicit is"), f"expected the Zen, got {text!r}"
    start = time.perf_counter()
    again = artefacts.build(["decoder"], echo=lambda line: None)["decoder"]
    assert again == onnx_path and time.perf_counter() - start < 5, "expected the cached file"
