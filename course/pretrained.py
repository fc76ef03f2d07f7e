"""Real pretrained models that nobody in this course trained, shipped inside PyPI wheels (lab).

Used by lessons 2 (control flow and versions in a real graph), 3 (a tf2onnx export in
production), 4 (float16 and int8 on a real model) and 5 (one production model as TorchScript
and as ONNX).

- **Silero VAD** (package ``silero-vad``, MIT licence): a voice-activity detector trained in
  PyTorch by the Silero team, shipped as TorchScript (``silero_vad.jit``) and six ONNX files
  (opset 15/16/18, an "If-less" export, a file named "half" whose weights are float32, a
  sequence model with LSTM h/c state, a fixed-shape one for OpenVINO).
  It reads 16 kHz audio in chunks of 512 samples, each with the last 64 samples of the previous
  chunk in front, and carries a recurrent state from chunk to chunk.
- **Magika** (package ``magika``, Apache 2.0): Google's file-type classifier; its node names
  (``jax2tf_...``) say it was written in JAX, turned into TensorFlow by jax2tf and converted by
  tf2onnx. It reads bytes from the start and the end of a file.

The files are found with :mod:`importlib.resources`: nothing is downloaded, and the packages'
own Python code is never imported (``silero_vad`` would import torch at once).

The audio the lessons test on is **synthetic**, made here from a seed: "speech" is a glottal
pulse train (a voiced source rich in harmonics) shaped by three formant resonators that glide
between vowel targets, in syllables of 140-280 ms grouped into words with pauses, with short
fricative noise at some onsets. It is not human speech; it is enough to make the real model say
"speech" on most of its voiced frames and "no speech" on noise and silence, which the tests check.

Example::

    >>> silero_file().name
    'silero_vad.onnx'
    >>> clip = synthetic_speech(1.0, seed=0)
    >>> clip.samples.dtype, len(clip.samples), clip.sample_rate
    (dtype('float32'), 16000, 16000)
    >>> probs = vad_onnx(silero_file(), clip.samples)
    >>> len(probs) == len(clip.samples) // CHUNK
    True
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - for annotations only
    import onnxruntime

__all__ = [
    "CHUNK",
    "CONTEXT",
    "SAMPLE_RATE",
    "SILERO_FILES",
    "Audio",
    "frame_accuracy",
    "graph_tree",
    "magika_classify",
    "magika_config",
    "magika_features",
    "magika_file",
    "noise",
    "operator_counts",
    "silero_file",
    "silero_session",
    "speech_and_noise",
    "synthetic_speech",
    "vad_onnx",
    "vad_torchscript",
    "weight_bytes",
    "windows",
]

#: Silero VAD's sample rate (it also accepts 8 kHz; this lab uses 16 kHz throughout).
SAMPLE_RATE = 16000
#: Samples per chunk the model scores at 16 kHz (32 ms).
CHUNK = 512
#: Samples of the previous chunk put in front of each chunk (the ONNX files expect 576 = 64 + 512).
CONTEXT = 64

#: The model files inside the ``silero-vad`` 6.2.3 wheel, with what distinguishes each.
SILERO_FILES: dict[str, str] = {
    "silero_vad.jit": "TorchScript, the reference model (8 and 16 kHz)",
    "silero_vad.onnx": "ONNX opset 16, written by spox; an If selects the 8 or 16 kHz branch",
    "silero_vad_16k_op15.onnx": "ONNX opset 15, torch.onnx 2.3, 16 kHz only",
    "silero_vad_op18_ifless.onnx": "ONNX opset 18, torch.onnx 2.9, no If inside the decoder",
    "silero_vad_half.onnx": "ONNX opset 16, 16 kHz, no sr input; named 'half', weights float32",
    "silero_vad_16k_sequence.onnx": "ONNX opset 16, a batch of 576-sample windows, LSTM h/c",
    "silero_vad_openvino_16k.onnx": "ONNX opset 16, fixed 1x576 input, for OpenVINO",
}


def _package_folder(package: str, install: str) -> Path:
    """The folder of an installed package, found without importing (running) the package."""
    if importlib.util.find_spec(package.split(".")[0]) is None:
        raise FileNotFoundError(
            f"the package {package.split('.')[0]!r} is not installed: "
            f"pip install {install} (it is pinned in the course's requirements.txt)"
        )
    return Path(str(importlib.resources.files(package)))


def silero_file(name: str = "silero_vad.onnx") -> Path:
    """Path of one of Silero VAD's model files (see :data:`SILERO_FILES`) inside its wheel.

    >>> sorted(p.suffix for p in map(silero_file, SILERO_FILES))[:2]
    ['.jit', '.onnx']
    >>> silero_file("silero_vad.tflite")
    Traceback (most recent call last):
    ...
    ValueError: no Silero VAD file 'silero_vad.tflite'; the wheel ships: silero_vad.jit, ...
    """
    if name not in SILERO_FILES:
        raise ValueError(
            f"no Silero VAD file {name!r}; the wheel ships: " + ", ".join(SILERO_FILES)
        )
    path = _package_folder("silero_vad.data", "silero-vad==6.2.3") / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with pip install silero-vad==6.2.3")
    return path


def magika_file() -> Path:
    """Path of Magika's file-type classifier (Keras, converted by tf2onnx) inside its wheel.

    >>> magika_file().relative_to(magika_file().parents[2]).as_posix()
    'models/standard_v3_3/model.onnx'
    """
    path = _package_folder("magika", "magika==1.0.3") / "models" / "standard_v3_3" / "model.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with pip install magika==1.0.3")
    return path


def magika_config() -> dict[str, Any]:
    """The model's own settings, shipped beside it: how many bytes it reads, its labels.

    >>> config = magika_config()
    >>> config["beg_size"], config["end_size"], config["padding_token"]
    (1024, 1024, 256)
    """
    import json

    return json.loads((magika_file().parent / "config.min.json").read_text())


def magika_features(data: bytes, config: dict[str, Any] | None = None) -> np.ndarray:
    """The model's input for a file's bytes: shape ``(1, beg_size + end_size)``, int32.

    As Magika 1.0.3 reads a file: the first ``block_size`` bytes with leading whitespace
    stripped, of which the first ``beg_size`` (padded after with ``padding_token``, 256, a value
    no byte has), then the last ``block_size`` bytes with trailing whitespace stripped, of which
    the last ``end_size`` (padded before).

    >>> x = magika_features(b"  hello")
    >>> x.shape, x.dtype, x[0, :5].tolist(), int(x[0, 5]), int(x[0, -1])
    ((1, 2048), dtype('int32'), [104, 101, 108, 108, 111], 256, 111)
    """
    config = config or magika_config()
    block, beg_size, end_size = config["block_size"], config["beg_size"], config["end_size"]
    pad = config["padding_token"]
    beg = list(data[:block].lstrip()[:beg_size])
    end = list(data[-block:].rstrip()[-end_size:]) if data else []
    beg += [pad] * (beg_size - len(beg))
    end = [pad] * (end_size - len(end)) + end
    return np.asarray([beg + end], dtype=np.int32)


def magika_classify(
    session: Any, data: bytes, config: dict[str, Any] | None = None
) -> tuple[str, float]:
    """The most probable content type of ``data`` and its probability, from an onnxruntime
    session on :func:`magika_file` (the raw model: Magika's own thresholds are not applied).

    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession(magika_file(), providers=["CPUExecutionProvider"])
    >>> magika_classify(session, b"import numpy as np\\n\\ndef f(x):\\n    return np.sum(x)\\n")[0]
    'python'
    """
    config = config or magika_config()
    (probs,) = session.run(None, {session.get_inputs()[0].name: magika_features(data, config)})
    k = int(np.argmax(probs[0]))
    return config["target_labels_space"][k], float(probs[0, k])


def weight_bytes(model: str | Path) -> dict[str, int]:
    """Bytes of stored tensors (initializers and Constant nodes, subgraphs included) by type.

    A file's name says what its authors meant; this says what it holds.

    >>> weight_bytes(silero_file("silero_vad_16k_op15.onnx"))["FLOAT"]
    1238544
    """
    import onnx
    from onnx import numpy_helper

    out: dict[str, int] = {}

    def add(tensor: onnx.TensorProto) -> None:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        out[name] = out.get(name, 0) + int(numpy_helper.to_array(tensor).nbytes)

    def walk(graph: onnx.GraphProto) -> None:
        for tensor in graph.initializer:
            add(tensor)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    add(attr.t)
                elif attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        walk(g)

    walk(onnx.load(str(model)).graph)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _subgraphs(graph: Any, path: str, depth: int) -> Iterator[tuple[str, int, Any]]:
    import onnx

    yield path, depth, graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                label = f"{path} / {node.op_type} {node.name or '(unnamed)'} .{attr.name}"
                yield from _subgraphs(attr.g, label, depth + 1)


def graph_tree(model: str | Path) -> list[dict[str, Any]]:
    """Every graph in the file, the main one first, then each subgraph (an ``If`` branch, a
    ``Loop`` or ``Scan`` body) under the node that owns it: path, depth, nodes, and how many of
    those nodes are ``If``/``Loop``/``Scan``.

    >>> rows = graph_tree(silero_file("silero_vad_16k_sequence.onnx"))
    >>> len(rows), rows[0]["path"], rows[0]["depth"]
    (1, 'main', 0)
    """
    import onnx

    rows = []
    for path, depth, graph in _subgraphs(onnx.load(str(model)).graph, "main", 0):
        ops = [n.op_type for n in graph.node]
        rows.append(
            {
                "path": path,
                "depth": depth,
                "nodes": len(ops),
                **{op: ops.count(op) for op in ("If", "Loop", "Scan")},
            }
        )
    return rows


def operator_counts(model: str | Path) -> dict[str, int]:
    """How many nodes of each operator the file holds, counted in every subgraph too.

    >>> operator_counts(silero_file("silero_vad_16k_op15.onnx"))["LSTM"]
    2
    """
    import onnx

    counts: dict[str, int] = {}
    for _, _, graph in _subgraphs(onnx.load(str(model)).graph, "main", 0):
        for node in graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------- synthetic audio


@dataclass(frozen=True)
class Audio:
    """A synthetic clip: float32 samples in [-1, 1], and where the "speech" is (per sample).

    ``speech`` is True on samples inside a syllable (the voiced part, with its onset), False in
    the pauses between words, in noise and in silence.
    """

    samples: np.ndarray
    speech: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def frame_labels(self, chunk: int = CHUNK) -> np.ndarray:
        """One label per whole chunk: True where more than half of the chunk is speech.

        >>> clip = noise(0.1)
        >>> clip.frame_labels().tolist()
        [False, False, False]
        """
        n = len(self.samples) // chunk
        return self.speech[: n * chunk].reshape(n, chunk).mean(axis=1) > 0.5

    def __add__(self, other: Audio) -> Audio:
        """Concatenate two clips (same sample rate)."""
        if other.sample_rate != self.sample_rate:
            raise ValueError(f"sample rates differ: {self.sample_rate} and {other.sample_rate}")
        return Audio(
            np.concatenate([self.samples, other.samples]),
            np.concatenate([self.speech, other.speech]),
            self.sample_rate,
        )


# Formant frequencies (Hz) of five vowels, F1-F3, after Peterson and Barney (1952), male voices.
_VOWELS = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}


def _resonator(x: np.ndarray, freq: np.ndarray, bandwidth: float, sr: int) -> np.ndarray:
    """Two-pole resonator whose centre frequency follows ``freq`` (updated every 5 ms)."""
    from scipy.signal import lfilter

    r = np.exp(-np.pi * bandwidth / sr)
    out = np.empty_like(x)
    state = np.zeros(2)
    block = sr // 200
    for start in range(0, len(x), block):
        a = [1.0, -2.0 * r * np.cos(2.0 * np.pi * freq[start] / sr), r * r]
        out[start : start + block], state = lfilter(
            [1.0 - r], a, x[start : start + block], zi=state
        )
    return out


def synthetic_speech(
    seconds: float, *, seed: int = 0, sample_rate: int = SAMPLE_RATE, level: float = 0.5
) -> Audio:
    """Speech-like audio (synthetic, not human speech), seeded, peak amplitude ``level``.

    Voiced syllables (a glottal pulse train at 100-200 Hz with a falling pitch, through three
    formant resonators gliding between two vowels), 140-280 ms each, 2-4 per word, words
    separated by 80-300 ms pauses; half of the syllables start with 40 ms of fricative noise.

    >>> a, b = synthetic_speech(2.0, seed=1), synthetic_speech(2.0, seed=1)
    >>> bool(np.array_equal(a.samples, b.samples))
    True
    >>> 0.5 < float(a.speech.mean()) < 0.95          # pauses between words are not speech
    True
    >>> float(np.abs(a.samples).max())
    0.5
    """
    from scipy.signal import lfilter

    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    f0 = np.zeros(n)
    amp = np.zeros(n)
    formants = np.zeros((3, n))
    fricative = np.zeros(n)
    speech = np.zeros(n, dtype=bool)
    base = rng.uniform(100.0, 200.0)
    names = sorted(_VOWELS)
    t = 0
    while t < n:
        for _ in range(int(rng.integers(2, 5))):
            length = min(int(rng.uniform(0.14, 0.28) * sample_rate), n - t)
            if length <= 0:
                break
            start_vowel, end_vowel = _VOWELS[rng.choice(names)], _VOWELS[rng.choice(names)]
            w = np.linspace(0.0, 1.0, length)
            for j in range(3):
                formants[j, t : t + length] = start_vowel[j] * (1 - w) + end_vowel[j] * w
            onset, release = 0.04 * sample_rate, 0.06 * sample_rate
            envelope = np.minimum(1.0, np.minimum(w * length / onset, (1 - w) * length / release))
            amp[t : t + length] = envelope * rng.uniform(0.6, 1.0)
            if rng.random() < 0.5:
                fricative[t : t + min(int(onset), length)] = rng.uniform(0.1, 0.3)
            f0[t : t + length] = base * (1.1 - 0.2 * w) * (1 + 0.03 * rng.standard_normal())
            speech[t : t + length] = True
            t += length
        gap = int(rng.uniform(0.08, 0.3) * sample_rate)
        f0[t : t + gap] = base
        t += gap
    f0 = np.convolve(f0, np.ones(sample_rate // 40) / (sample_rate // 40), mode="same")
    phase = np.cumsum(2.0 * np.pi * f0 / sample_rate)
    saw = np.mod(phase, 2.0 * np.pi) / np.pi - 1.0  # one pulse per pitch period
    source = lfilter([1.0], [1.0, -0.95], np.diff(saw, prepend=0.0)) * amp
    voiced = sum(
        gain * _resonator(source, formants[j], bandwidth, sample_rate)
        for j, (gain, bandwidth) in enumerate(((1.0, 90.0), (0.6, 110.0), (0.3, 150.0)))
    )
    hiss = lfilter([1.0, -1.0], [1.0], rng.standard_normal(n) * fricative)
    y = voiced / (np.abs(voiced).max() + 1e-12) + 0.5 * hiss + 1e-3 * rng.standard_normal(n)
    y = level * y / np.abs(y).max()
    return Audio(y.astype(np.float32), speech, sample_rate)


def noise(
    seconds: float,
    kind: str = "white",
    *,
    seed: int = 0,
    sample_rate: int = SAMPLE_RATE,
    level: float = 0.1,
) -> Audio:
    """Non-speech audio, all labelled "no speech": ``kind`` is ``"white"`` (flat spectrum),
    ``"pink"`` (1/f, like rain or a fan), ``"hum"`` (50 Hz mains and its harmonics) or
    ``"silence"`` (zeros). ``level`` is the standard deviation (white, pink) or the peak (hum).

    >>> clip = noise(0.5, "pink", seed=3)
    >>> round(float(clip.samples.std()), 3), bool(clip.speech.any())
    (0.1, False)
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    if kind == "white":
        y = rng.standard_normal(n)
    elif kind == "pink":  # shape white noise's spectrum by 1/sqrt(f): power falls as 1/f
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
        spectrum[1:] /= np.sqrt(freqs[1:])
        spectrum[0] = 0.0
        y = np.fft.irfft(spectrum, n)
    elif kind == "hum":
        t = np.arange(n) / sample_rate
        y = sum(np.sin(2 * np.pi * 50.0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 8))
        y = y / np.abs(y).max() * level
    elif kind == "silence":
        y = np.zeros(n)
    else:
        raise ValueError(f"kind must be 'white', 'pink', 'hum' or 'silence', got {kind!r}")
    if kind in ("white", "pink"):
        y = level * y / y.std()
    return Audio(y.astype(np.float32), np.zeros(n, dtype=bool), sample_rate)


def speech_and_noise(seed: int = 0, *, seconds: float = 2.0, noise_level: float = 0.03) -> Audio:
    """A test stream: speech, white noise, speech, pink noise, speech, hum, silence, speech.

    Each part lasts ``seconds`` (16 s in all by default); the parts' seeds derive from ``seed``.

    >>> clip = speech_and_noise(seconds=0.5)
    >>> clip.seconds, 0.2 < float(clip.speech.mean()) < 0.5
    (4.0, True)
    """
    parts = [
        synthetic_speech(seconds, seed=seed),
        noise(seconds, "white", seed=seed + 1, level=noise_level),
        synthetic_speech(seconds, seed=seed + 2),
        noise(seconds, "pink", seed=seed + 3, level=noise_level),
        synthetic_speech(seconds, seed=seed + 4),
        noise(seconds, "hum", seed=seed + 5, level=noise_level),
        noise(seconds, "silence"),
        synthetic_speech(seconds, seed=seed + 6),
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out + part
    return out


# --------------------------------------------------------------------------- running the VAD


def silero_session(
    model: str | Path | bytes = "silero_vad.onnx", *, threads: int = 1
) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session on a Silero file name (:data:`SILERO_FILES`), a path or bytes.

    >>> [i.name for i in silero_session().get_inputs()]
    ['input', 'state', 'sr']
    """
    import onnxruntime

    if isinstance(model, str) and model in SILERO_FILES:
        model = silero_file(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: keep warnings off a notebook's stderr
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _chunks(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono samples), got shape {audio.shape}")
    n = len(audio) // CHUNK
    if n == 0:
        raise ValueError(f"audio must hold at least one chunk of {CHUNK} samples, got {len(audio)}")
    return audio[: n * CHUNK].reshape(n, CHUNK)


def windows(audio: np.ndarray) -> np.ndarray:
    """The model's inputs for ``audio``: one row per chunk, the previous chunk's last
    :data:`CONTEXT` samples (zeros for the first) in front of the chunk's :data:`CHUNK` samples.

    >>> windows(np.arange(1024, dtype=np.float32)).shape
    (2, 576)
    >>> windows(np.arange(1024, dtype=np.float32))[1, :2].tolist()     # the context: 448, 449
    [448.0, 449.0]
    """
    chunks = _chunks(audio)
    previous = np.concatenate([np.zeros((1, CHUNK), np.float32), chunks[:-1]])
    return np.concatenate([previous[:, -CONTEXT:], chunks], axis=1)


def vad_onnx(
    model: Any,
    audio: np.ndarray,
    *,
    return_state: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Speech probability of every 512-sample chunk of 16 kHz ``audio``, state carried along.

    ``model`` is an onnxruntime session, or what :func:`silero_session` accepts. Chunk by chunk,
    the model gets 64 samples of context plus the chunk and the state it returned for the
    previous chunk (zeros at the start), as a streaming application runs it. The sequence
    variant (inputs ``h``, ``c``) gets all windows in one call instead. With
    ``return_state=True`` the state after each chunk comes back too (a list, one per chunk).

    >>> session = silero_session("silero_vad_half.onnx")
    >>> probs, states = vad_onnx(session, noise(0.2).samples, return_state=True)
    >>> probs.shape, states[-1].shape
    ((6,), (2, 1, 128))
    """
    session = model if hasattr(model, "get_inputs") else silero_session(model)
    names = {i.name for i in session.get_inputs()}
    inputs = windows(audio)
    if {"h", "c"} <= names:  # the sequence model: every window at once, LSTM h/c state
        h = np.zeros((1, 1, 128), np.float32)
        probs, h, c = session.run(None, {"input": inputs, "h": h, "c": h.copy()})
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        return (probs, [np.stack([h, c])]) if return_state else probs
    state = np.zeros((2, 1, 128), np.float32)
    feed: dict[str, np.ndarray] = {}
    if "sr" in names:
        feed["sr"] = np.array(SAMPLE_RATE, dtype=np.int64)
    out = np.empty(len(inputs), np.float32)
    states = []
    for k, window in enumerate(inputs):
        feed["input"], feed["state"] = window[None, :], state
        prob, state = session.run(None, feed)
        out[k] = float(np.asarray(prob).reshape(-1)[0])
        if return_state:
            states.append(state)
    return (out, states) if return_state else out


def vad_torchscript(module: Any, audio: np.ndarray) -> np.ndarray:
    """Speech probability of every 512-sample chunk, from the TorchScript model.

    ``module`` is ``torch.jit.load(silero_file("silero_vad.jit"))``; it keeps its state (and the
    64 samples of context) inside, so it is reset first and then called once per chunk.

    >>> import torch, warnings
    >>> with warnings.catch_warnings():  # torch 2.x: "torch.jit.load is deprecated"
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     jit = torch.jit.load(silero_file("silero_vad.jit"))
    >>> vad_torchscript(jit, noise(0.2).samples).shape
    (6,)
    """
    import torch

    chunks = _chunks(audio)
    module.reset_states()
    out = np.empty(len(chunks), np.float32)
    with torch.inference_mode():
        for k, chunk in enumerate(chunks):
            out[k] = float(module(torch.from_numpy(chunk)[None, :], SAMPLE_RATE))
    return out


def frame_accuracy(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of chunks where ``probs > threshold`` equals the speech label.

    >>> frame_accuracy(np.array([0.9, 0.2, 0.6]), np.array([True, False, False]))
    0.6666666666666666
    """
    probs, labels = np.asarray(probs), np.asarray(labels, dtype=bool)
    if probs.shape != labels.shape:
        raise ValueError(f"one label per chunk: probs {probs.shape}, labels {labels.shape}")
    return float(np.mean((probs > threshold) == labels))
