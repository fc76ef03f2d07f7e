"""course.pretrained: the real Silero VAD files inside its wheel, the synthetic audio, and the VAD
run over a stream with its state (lessons 2, 4 and 5 rely on all three)."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest

from course import pretrained

pytestmark = pytest.mark.skipif(
    not importlib.util.find_spec("silero_vad"),
    reason="silero-vad is not installed (pip install -r requirements.txt)",
)


# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("name", sorted(pretrained.SILERO_FILES))
def test_every_listed_file_is_inside_the_wheel(name):
    path = pretrained.silero_file(name)
    assert path.is_file() and path.stat().st_size > 1_000_000, (
        f"expected a model file over 1 MB at {path}, got {path.stat().st_size} bytes"
    )
    assert "site-packages" in path.parts or "dist-packages" in path.parts, (
        f"expected the file inside an installed package, got {path}"
    )


def test_unknown_file_names_the_shipped_ones():
    with pytest.raises(ValueError, match="silero_vad.jit"):
        pretrained.silero_file("silero_vad.tflite")


def test_magika_model_is_a_tf2onnx_export():
    if not importlib.util.find_spec("magika"):
        pytest.skip("magika is not installed")
    proto = onnx.load(pretrained.magika_file())
    assert proto.producer_name == "tf2onnx", f"expected producer tf2onnx, got {proto.producer_name}"


def test_the_file_named_half_stores_float32_weights():
    """What the lesson 4 text says about silero_vad_half.onnx, measured on the file."""
    half = pretrained.weight_bytes(pretrained.silero_file("silero_vad_half.onnx"))
    assert "FLOAT16" not in half and half["FLOAT"] > 1_000_000, (
        f"expected float32 weights, got {half}"
    )


def test_graph_tree_walks_into_nested_if_branches():
    rows = pretrained.graph_tree(pretrained.silero_file("silero_vad_16k_op15.onnx"))
    assert rows[0]["path"] == "main" and max(r["depth"] for r in rows) >= 2, (
        f"expected nested subgraphs below main, got depths {[r['depth'] for r in rows]}"
    )
    # every If owns two branches: graphs = 1 (main) + 2 x (If nodes in all graphs)
    n_if = sum(r["If"] for r in rows)
    assert len(rows) == 1 + 2 * n_if, f"expected {1 + 2 * n_if} graphs, got {len(rows)}"


def test_operator_counts_differ_between_opset_exports():
    ops_15 = pretrained.operator_counts(pretrained.silero_file("silero_vad_16k_op15.onnx"))
    ops_18 = pretrained.operator_counts(pretrained.silero_file("silero_vad_op18_ifless.onnx"))
    assert "LSTM" in ops_15 and "LSTM" not in ops_18 and "Gemm" in ops_18, (
        f"expected an LSTM node only at opset 15 and Gemm at 18, got {ops_15} / {ops_18}"
    )


# --------------------------------------------------------------------------- synthetic audio


def test_synthetic_speech_is_seeded_bounded_and_labelled():
    a = pretrained.synthetic_speech(3.0, seed=5)
    b = pretrained.synthetic_speech(3.0, seed=5)
    c = pretrained.synthetic_speech(3.0, seed=6)
    assert np.array_equal(a.samples, b.samples), "expected the same samples for the same seed"
    assert not np.array_equal(a.samples, c.samples), "expected other samples for another seed"
    assert a.samples.dtype == np.float32 and len(a.samples) == 48000
    assert np.isclose(np.abs(a.samples).max(), 0.5), (
        f"expected peak 0.5, got {np.abs(a.samples).max()}"
    )
    assert 0.5 < a.speech.mean() < 0.95, f"expected pauses between words, got {a.speech.mean():.2f}"


def test_synthetic_speech_is_voiced_with_a_syllable_rhythm():
    clip = pretrained.synthetic_speech(4.0, seed=0)
    x, sr = clip.samples.astype(np.float64), clip.sample_rate
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    voice_band = spectrum[(freqs > 80) & (freqs < 4000)].sum() / spectrum.sum()
    assert voice_band > 0.8, f"expected most energy in 80-4000 Hz, got {voice_band:.2f}"

    # the amplitude envelope (10 ms frames) is modulated at syllable and word rates (1-8 Hz),
    # unlike white noise's, whose envelope fluctuations spread over all rates up to 50 Hz
    def rhythm(x: np.ndarray) -> float:
        env = np.sqrt((x[: len(x) // 160 * 160].reshape(-1, 160) ** 2).mean(axis=1))
        power = np.abs(np.fft.rfft(env - env.mean())) ** 2
        rates = np.fft.rfftfreq(len(env), 0.01)
        return power[(rates >= 1) & (rates <= 8)].sum() / power[rates > 0].sum()

    speech, hiss = rhythm(x), rhythm(pretrained.noise(4.0, seed=0).samples.astype(np.float64))
    assert speech > 0.6 > 0.2 > hiss, (
        f"expected over 60% of the envelope's modulation at 1-8 Hz for speech and under 20% for "
        f"noise, got {speech:.2f} and {hiss:.2f}"
    )


@pytest.mark.parametrize("kind", ["white", "pink", "hum", "silence"])
def test_noise_is_never_labelled_speech(kind):
    clip = pretrained.noise(1.0, kind, seed=1)
    assert not clip.speech.any() and len(clip.samples) == 16000
    if kind == "pink":  # power falls with frequency: more below 500 Hz than above 4 kHz
        spec = np.abs(np.fft.rfft(clip.samples)) ** 2
        freqs = np.fft.rfftfreq(len(clip.samples), 1 / 16000)
        low, high = spec[(freqs > 20) & (freqs < 500)].mean(), spec[freqs > 4000].mean()
        assert low > 10 * high, f"expected a 1/f spectrum, got low {low:.3g} high {high:.3g}"
    with pytest.raises(ValueError, match="kind must be"):
        pretrained.noise(1.0, "brown")


def test_frame_labels_one_per_whole_chunk():
    clip = pretrained.synthetic_speech(1.0) + pretrained.noise(1.0)
    labels = clip.frame_labels()
    assert labels.shape == (32000 // pretrained.CHUNK,)
    assert not labels[-15:].any(), "expected the noise half labelled no speech"


# --------------------------------------------------------------------------- running the VAD


@pytest.fixture(scope="module")
def stream():
    return pretrained.speech_and_noise(seed=0, seconds=1.0)


def test_vad_separates_synthetic_speech_from_noise(stream):
    probs = pretrained.vad_onnx("silero_vad_16k_op15.onnx", stream.samples)
    labels = stream.frame_labels()
    acc = pretrained.frame_accuracy(probs, labels)
    assert acc > 0.8, f"expected frame accuracy above 0.8 on the synthetic stream, got {acc:.3f}"
    speech, other = probs[labels].mean(), probs[~labels].mean()
    assert speech > 0.5 > other, f"expected mean p(speech) {speech:.2f} > 0.5 > {other:.2f}"


def test_state_is_carried_from_chunk_to_chunk(stream):
    session = pretrained.silero_session("silero_vad_16k_op15.onnx")
    probs, states = pretrained.vad_onnx(session, stream.samples, return_state=True)
    assert len(states) == len(probs) and states[-1].shape == (2, 1, 128)
    assert np.abs(states[-1]).max() > 0, "expected a non-zero state after a stream"
    # the same last chunk with a fresh (zero) state gives another probability: state matters
    window = pretrained.windows(stream.samples)[-1:]
    fresh = session.run(
        None,
        {"input": window, "state": np.zeros((2, 1, 128), np.float32), "sr": np.array(16000)},
    )[0]
    carried = session.run(None, {"input": window, "state": states[-2], "sr": np.array(16000)})[0]
    assert np.isclose(float(carried.ravel()[0]), probs[-1], atol=1e-6)
    assert abs(float(fresh.ravel()[0]) - probs[-1]) > 1e-4, "expected the state to change p"


def test_windows_put_the_previous_context_in_front():
    audio = np.arange(3 * pretrained.CHUNK, dtype=np.float32)
    w = pretrained.windows(audio)
    assert w.shape == (3, pretrained.CONTEXT + pretrained.CHUNK)
    assert (w[0, : pretrained.CONTEXT] == 0).all()
    assert np.array_equal(w[2, : pretrained.CONTEXT], audio[2 * 512 - 64 : 2 * 512])


def test_onnx_exports_agree_over_a_stream(stream):
    reference = pretrained.vad_onnx("silero_vad_16k_op15.onnx", stream.samples)
    for name in ("silero_vad.onnx", "silero_vad_op18_ifless.onnx", "silero_vad_16k_sequence.onnx"):
        got = pretrained.vad_onnx(name, stream.samples)
        assert np.abs(got - reference).max() < 1e-4, (
            f"expected {name} to match opset 15 within 1e-4, got {np.abs(got - reference).max():.2e}"
        )


def test_torchscript_and_onnx_agree_over_a_stream(stream):
    torch = pytest.importorskip("torch")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        jit = torch.jit.load(str(pretrained.silero_file("silero_vad.jit")))
    p_jit = pretrained.vad_torchscript(jit, stream.samples)
    p_onnx = pretrained.vad_onnx("silero_vad.onnx", stream.samples)
    assert np.abs(p_jit - p_onnx).max() < 1e-4, (
        f"expected TorchScript and ONNX within 1e-4, got {np.abs(p_jit - p_onnx).max():.2e}"
    )


def test_frame_accuracy_checks_shapes():
    with pytest.raises(ValueError, match="one label per chunk"):
        pretrained.frame_accuracy(np.zeros(3), np.zeros(4, dtype=bool))


def test_short_or_wrong_audio_is_refused():
    with pytest.raises(ValueError, match="at least one chunk"):
        pretrained.vad_onnx("silero_vad.onnx", np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        pretrained.vad_onnx("silero_vad.onnx", np.zeros((2, 1024), np.float32))
