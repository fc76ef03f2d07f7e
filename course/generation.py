"""A small Llama-style decoder, exported with its KV cache, and greedy generation (lessons 7, 8).

Text generation runs a decoder once per new token. Without a cache every step recomputes the
keys and values of the whole sequence; with a **KV cache** (``past_key_values``) each step feeds
only the newest token and the keys and values of the earlier ones, and gets them back, one
position longer (``present.*``). This module builds such a decoder without downloading anything
and measures both ways:

- :func:`decoder_config`: a ``transformers`` ``LlamaConfig`` (RoPE, RMSNorm, SwiGLU, grouped-query
  attention) of about 1.3 M parameters;
- :func:`build_decoder`: the model trained for a few seconds on a tiny local text (the Zen of
  Python, from the standard library's ``this`` module) with its own byte-level BPE tokenizer,
  saved with ``save_pretrained`` into the course cache: a local Hugging Face folder;
- :func:`decoder_onnx`: the decoder exported with ``torch.onnx.export(dynamo=True)`` through a
  wrapper that takes and returns the cache as flat tensors (``past_key_values.{i}.key`` in,
  ``present.{i}.key`` out: the names ONNX Runtime GenAI and Optimum use), checked with
  ``onnx.checker``, shape inference and a parity check against PyTorch;
- :func:`greedy_generate_onnx` (with or without the cache), :func:`greedy_generate_torch`
  (Hugging Face's own ``generate``, the reference) and :func:`greedy_generate_genai` (ONNX
  Runtime GenAI), each returning a :class:`Generation` with the time of every token;
- :func:`genai_model`: ONNX Runtime GenAI's model builder run on the local folder (offline).

``python -m course.artefacts`` builds the decoder, its ONNX export and the GenAI model once;
lessons call the same functions and get the cached files at once.

>>> config = decoder_config()
>>> config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads
(2, 4, 2)
>>> training_text().splitlines()[0]
'The Zen of Python, by Tim Peters'
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from course import artefacts

__all__ = [
    "Generation",
    "GenaiUnavailable",
    "build_decoder",
    "decoder_config",
    "decoder_io",
    "decoder_onnx",
    "encode",
    "decode",
    "genai_model",
    "greedy_generate_genai",
    "greedy_generate_onnx",
    "greedy_generate_torch",
    "latency_figure",
    "load_decoder",
    "past_bytes_per_token",
    "training_text",
]

#: the default decoder: small enough to train in seconds, large enough that recomputing a
#: sequence costs more than reading the cache
DEFAULTS: dict[str, int] = {
    "vocab_size": 384,
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
TRAIN_STEPS = 50
OPSET = 18
EOS = "<|endoftext|>"
_SHORT = {"layers": "num_hidden_layers", "heads": "num_attention_heads"}
_SHORT |= {"kv_heads": "num_key_value_heads", "context": "max_position_embeddings"}


class GenaiUnavailable(RuntimeError):
    """ONNX Runtime GenAI cannot build or run the model here; the message says why."""


# --------------------------------------------------------------------------- quiet imports


@contextlib.contextmanager
def _quiet() -> Iterator[list[str]]:
    """transformers, torchao (imported by transformers) and torch print to stderr from Python
    and C++; keep all of it, and transformers' progress bars, off a notebook's stderr."""
    import logging

    from course import _capture

    # torch's loggers write through handlers bound to the stderr of the moment they were made
    # (a notebook's own stream), which no redirection reaches: switch warnings off meanwhile
    with contextlib.ExitStack() as restore:
        restore.callback(logging.disable, logging.root.manager.disable)
        logging.disable(logging.WARNING)
        notes = restore.enter_context(_capture.quiet_native())
        if "transformers" in sys.modules:
            tf_logging = sys.modules["transformers"].utils.logging
        else:
            import transformers

            tf_logging = transformers.utils.logging
        level = tf_logging.get_verbosity()
        bars = tf_logging.is_progress_bar_enabled()
        tf_logging.set_verbosity_error()
        tf_logging.disable_progress_bar()
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield notes
        finally:
            tf_logging.set_verbosity(level)
            if bars:
                tf_logging.enable_progress_bar()


def _transformers() -> Any:
    """``transformers``, imported once with its chatter (torchao, pytree warnings) kept quiet."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local: never ask the Hub
    if "transformers" not in sys.modules:
        with _quiet():
            import transformers  # noqa: F401
            from transformers import LlamaForCausalLM  # noqa: F401 - the slow part, done once
    return sys.modules["transformers"]


# --------------------------------------------------------------------------- text and config


def training_text() -> str:
    """The Zen of Python (CPython's ``this`` module, ROT13-decoded): the decoder's training text.

    Read from the standard library, so it is on every machine and needs no download. Importing
    ``this`` prints the poem; the print is kept off your output.

    >>> text = training_text()
    >>> len(text.splitlines()), text.splitlines()[2]
    (21, 'Beautiful is better than ugly.')
    """
    import codecs

    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return codecs.decode(this.s, "rot13")


def decoder_config(**overrides: int) -> Any:
    """A ``transformers.LlamaConfig`` for the course's decoder (nothing is downloaded).

    ``overrides`` change any of :data:`DEFAULTS` (``layers``, ``heads``, ``kv_heads`` and
    ``context`` are accepted as short names). Token 0 is ``<|endoftext|>``: beginning, end and
    padding; the output layer shares the embedding's weights.

    >>> decoder_config(hidden_size=64, layers=1).hidden_size
    64
    >>> decoder_config(width=3)
    Traceback (most recent call last):
    ...
    TypeError: decoder_config() got unknown settings ['width']; known: ['context', 'heads', \
'hidden_size', 'intermediate_size', 'kv_heads', 'layers', 'max_position_embeddings', \
'num_attention_heads', 'num_hidden_layers', 'num_key_value_heads', 'vocab_size']
    """
    known = set(DEFAULTS) | set(_SHORT)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"decoder_config() got unknown settings {unknown}; known: {sorted(known)}")
    settings = dict(DEFAULTS)
    for key, value in overrides.items():
        settings[_SHORT.get(key, key)] = int(value)
    heads, kv = settings["num_attention_heads"], settings["num_key_value_heads"]
    if settings["hidden_size"] % heads or heads % kv:
        raise ValueError(
            f"hidden_size ({settings['hidden_size']}) must be a multiple of the heads ({heads}), "
            f"and the heads a multiple of kv_heads ({kv})"
        )
    transformers = _transformers()
    return transformers.LlamaConfig(
        **settings,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        attn_implementation="sdpa",
    )


def _config_key(config: Any, train_steps: int, seed: int) -> str:
    settings = {k: getattr(config, k) for k in DEFAULTS}
    versions = {p: importlib.metadata.version(p) for p in ("torch", "transformers", "tokenizers")}
    key = json.dumps(
        {
            "settings": settings,
            "train_steps": train_steps,
            "seed": seed,
            "text": hashlib.sha256(training_text().encode()).hexdigest()[:16],
            "versions": versions,
        },
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _home(config: Any, train_steps: int, seed: int) -> Path:
    from course import artefacts

    return artefacts.folder(f"decoder-{_config_key(config, train_steps, seed)}")


@contextlib.contextmanager
def _atomic_dir(target: Path) -> Iterator[Path]:
    """Build a folder under a temporary name, then move it to ``target`` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}-"))
    tmp.chmod(0o755)  # mkdtemp's folder is private; the cache is readable like its files
    try:
        yield tmp
        if target.exists():  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- the decoder


def _tokenizer(text: str, vocab_size: int) -> Any:
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on ``text``, as a transformers
    ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([text], trainer)
    transformers = _transformers()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=EOS
    )


def build_decoder(config: Any = None, *, train_steps: int = TRAIN_STEPS, seed: int = 0) -> Path:
    """Build (once) the decoder and return its local Hugging Face folder in the course cache.

    The folder holds ``config.json``, ``generation_config.json``, ``model.safetensors``, the
    tokenizer (``tokenizer.json``) and ``training.json`` (loss per step, seconds). The model is
    trained for ``train_steps`` steps on the whole of :func:`training_text` (AdamW, learning
    rate 3e-3 after 5 warm-up steps), enough to recite it; ``train_steps=0`` keeps the random
    weights.
    Cached by config, steps, seed and library versions: a second call returns at once.

    >>> tiny = build_decoder(decoder_config(hidden_size=32, layers=1, intermediate_size=64),
    ...                      train_steps=0)
    >>> sorted(p.name for p in tiny.iterdir())[:3]
    ['config.json', 'generation_config.json', 'model.safetensors']
    """
    if not isinstance(train_steps, int) or train_steps < 0:
        raise ValueError(f"train_steps must be an int >= 0, got {train_steps!r}")
    config = decoder_config() if config is None else config
    home = _home(config, train_steps, seed)
    folder = home / "hf"
    if (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists():
        return folder
    transformers = _transformers()
    import torch

    text = training_text()
    with _quiet():
        tokenizer = _tokenizer(text, config.vocab_size)
        ids = torch.tensor([tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]])
        torch.manual_seed(seed)
        model = transformers.LlamaForCausalLM(config)
        losses: list[float] = []
        start = time.perf_counter()
        if train_steps:
            model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
            schedule = torch.optim.lr_scheduler.LambdaLR(  # 5 steps of warm-up, then constant
                optimizer, lambda step: min(1.0, (step + 1) / 5)
            )
            for _ in range(train_steps):
                loss = model(input_ids=ids, labels=ids).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(round(float(loss), 4))
        model.eval()
        seconds = time.perf_counter() - start
        generation = transformers.GenerationConfig(
            bos_token_id=0, eos_token_id=0, pad_token_id=0, do_sample=False
        )
        with _atomic_dir(home) as tmp:
            model.save_pretrained(tmp / "hf")
            generation.save_pretrained(tmp / "hf")
            tokenizer.save_pretrained(tmp / "hf")
            (tmp / "hf" / "training.json").write_text(
                json.dumps(
                    {
                        "text": "the Zen of Python (CPython's this module)",
                        "tokens": int(ids.shape[1]),
                        "steps": train_steps,
                        "seconds": round(seconds, 2),
                        "losses": losses,
                        "parameters": sum(p.numel() for p in model.parameters()),
                        "torch_threads": torch.get_num_threads(),
                    },
                    indent=1,
                )
            )
    return folder


def _folder(folder: str | Path | None) -> Path:
    folder = build_decoder() if folder is None else Path(folder)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(
            f"{folder} is not a Hugging Face model folder (no config.json): build one with "
            "course.generation.build_decoder()"
        )
    return folder


def load_decoder(folder: str | Path | None = None) -> tuple[Any, Any]:
    """The PyTorch model (eval mode) and tokenizer of a folder made by :func:`build_decoder`
    (default: the course's decoder, built if needed)."""
    folder = _folder(folder)
    transformers = _transformers()
    with _quiet():
        model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def encode(text: str, folder: str | Path | None = None) -> list[int]:
    """Token ids of ``text`` with the decoder's tokenizer (no special tokens added)."""
    return list(_tokenizer_of(_folder(folder)).encode(text).ids)


def decode(ids: Sequence[int], folder: str | Path | None = None) -> str:
    """The text of token ids, with the decoder's tokenizer."""
    return _tokenizer_of(_folder(folder)).decode([int(i) for i in ids])


def _tokenizer_of(folder: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json"))


# --------------------------------------------------------------------------- ONNX export


def _flat_past_module(model: Any) -> Any:
    """Wrap a causal LM so that its cache goes in and out as flat tensors.

    transformers 5 keeps the cache in a ``DynamicCache`` object, which ``torch.export`` cannot
    take as a graph input; the wrapper rebuilds one from ``2 x layers`` tensors and returns the
    updated keys and values as tensors again.
    """
    import torch

    transformers = _transformers()

    class FlatPastDecoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner
            self.layers = inner.config.num_hidden_layers

        def forward(self, input_ids: Any, attention_mask: Any, *past: Any) -> tuple[Any, ...]:
            if not past:
                return (self.inner(input_ids=input_ids, attention_mask=attention_mask).logits,)
            cache = transformers.DynamicCache(config=self.inner.config)
            for i in range(self.layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=True
            )
            flat = []
            for layer in out.cache.layers:
                flat += [layer.keys, layer.values]
            return (out.logits, *flat)

    return FlatPastDecoder(model).eval()


def _past_names(layers: int) -> tuple[list[str], list[str]]:
    inputs = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    outputs = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return inputs, outputs


def decoder_onnx(
    with_past: bool = True, folder: str | Path | None = None, *, opset: int = OPSET
) -> Path:
    """Export (once) the decoder of ``folder`` to ONNX; returns the ``.onnx`` path.

    ``with_past=True``: inputs ``input_ids`` [batch, sequence], ``attention_mask`` [batch,
    total_sequence] and ``past_key_values.{i}.key/value`` [batch, kv_heads, past_sequence,
    head_dim]; outputs ``logits`` and ``present.{i}.key/value``, one position longer per new
    token. A past of length 0 is allowed: the same graph reads a whole prompt (no cache yet)
    and then one token at a time. ``with_past=False``: ``input_ids`` and ``attention_mask`` in,
    ``logits`` out; every step recomputes the whole sequence.

    The exporter is ``torch.onnx.export(dynamo=True)`` with every sequence axis dynamic; the
    file is checked with ``onnx.checker`` (full check, with shape inference) and against
    PyTorch with onnxruntime and ``onnx.reference`` on two inputs other than the example (an
    empty past with a 7-token prompt, and one token after a past of 9). The route, times and
    parity are written beside the model (``decoder-with-past.json``). Why dynamo: the legacy
    TorchScript exporter (``dynamo=False``) also traces this wrapper, faster, but it freezes the
    Python branches of transformers' cache and mask code at the example's shapes (its
    TracerWarnings say so) and writes about three times as many nodes; ``torch.export`` records
    symbolic shapes and guards instead.

    Example::

        path = decoder_onnx()                      # the course's decoder, with its KV cache
        decoder_io(path)[:3]
    """
    folder = _folder(folder)
    name = "decoder-with-past.onnx" if with_past else "decoder.onnx"
    path = folder.parent / "onnx" / name
    if path.exists():
        return path
    import onnx
    import torch

    from course import convert, verify

    model, _ = load_decoder(folder)
    config = model.config
    layers, kv = config.num_hidden_layers, config.num_key_value_heads
    head_dim = config.hidden_size // config.num_attention_heads
    gen = torch.Generator().manual_seed(0)

    def example(batch: int, past: int, new: int) -> tuple[Any, ...]:
        ids = torch.randint(0, config.vocab_size, (batch, new), generator=gen)
        mask = torch.ones(batch, past + new, dtype=torch.int64)
        if not with_past:
            return (ids, mask)
        cache = [torch.randn(batch, kv, past, head_dim, generator=gen) for _ in range(2 * layers)]
        return (ids, mask, *cache)

    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence")
    total = torch.export.Dim("total_sequence")
    shapes: tuple[Any, ...] = ({0: batch, 1: sequence}, {0: batch, 1: total})
    past_in, present_out = _past_names(layers)
    if with_past:
        past_len = torch.export.Dim("past_sequence")
        shapes = (*shapes, tuple({0: batch, 2: past_len} for _ in range(2 * layers)))
    wrapper = _flat_past_module(model)
    decode_step = example(1, 9, 1)  # one token after a past of 9: what every later step feeds
    with _quiet(), torch.no_grad():
        conversion = convert.torch_to_onnx(
            wrapper,
            example(2, 5, 3),
            dynamic_shapes=shapes,
            opset=opset,
            input_names=["input_ids", "attention_mask", *(past_in if with_past else [])],
            output_names=["logits", *(present_out if with_past else [])],
            verify_inputs=example(1, 0, 7) if with_past else example(1, 0, 11),
        )
        conversion.report += verify.verify(
            conversion.model,
            [a.numpy() for a in decode_step],
            [t.numpy() for t in wrapper(*decode_step)],
            case="decode step",
        )
    if not conversion.passed:
        raise convert.ConversionError(
            f"the exported decoder differs from PyTorch:\n{conversion.report}",
            "check the export wrapper (flat past in, present out) and the dynamic axes",
        )
    onnx.checker.check_model(conversion.model, full_check=True)  # with strict shape inference
    onnx.helper.set_model_props(
        conversion.model,
        {
            "source": "course.generation.decoder_onnx (transformers LlamaForCausalLM)",
            "context": str(config.max_position_embeddings),
            "vocab_size": str(config.vocab_size),
            "kv_cache": "past_key_values.{i}.key/value in, present.{i}.key/value out"
            if with_past
            else "none: every call reads the whole sequence",
            "exported_with": f"torch {torch.__version__}, opset {opset}",
        },
    )
    path.parent.mkdir(exist_ok=True)
    record = {
        "route": conversion.route,
        "export_seconds": round(conversion.seconds, 2),
        "verify_seconds": round(conversion.verify_seconds, 2),
        "parity_passed": conversion.passed,
        "parity_cases": len(conversion.report.rows),
        "torch": importlib.metadata.version("torch"),
        "transformers": importlib.metadata.version("transformers"),
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=1))
    tmp = path.with_name(f".tmp-{os.getpid()}-{name}")
    onnx.save(conversion.model, tmp)
    os.replace(tmp, path)  # the .onnx file appears complete or not at all
    return path


def decoder_io(path: str | Path) -> list[dict[str, Any]]:
    """The graph inputs and outputs of an exported decoder: kind, name, element type, shape
    (symbolic dimensions by name).

    >>> from onnx import TensorProto, helper
    >>> graph = helper.make_graph([helper.make_node("Identity", ["past_key_values.0.key"],
    ...     ["present.0.key"])], "g",
    ...     [helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT,
    ...                                    ["batch", 2, "past_sequence", 64])],
    ...     [helper.make_tensor_value_info("present.0.key", TensorProto.FLOAT,
    ...                                    ["batch", 2, "past_sequence", 64])])
    >>> onnx.save(helper.make_model(graph), "tiny.onnx")
    >>> decoder_io("tiny.onnx")[0]
    {'kind': 'input', 'name': 'past_key_values.0.key', 'dtype': 'float32', 'shape': ['batch', 2, 'past_sequence', 64]}
    """
    import onnx

    from course import inspect

    info = inspect.summary(onnx.load(str(path), load_external_data=False))
    rows = []
    for kind, values in (("input", info.inputs), ("output", info.outputs)):
        for v in values:
            rows.append(
                {"kind": kind, "name": v.name, "dtype": v.dtype, "shape": list(v.shape or ())}
            )
    return rows


def past_bytes_per_token(config: Any) -> int:
    """Bytes the KV cache grows by per token and per sequence: keys and values (2) x layers x
    kv_heads x head_dim x 4 bytes (float32).

    >>> past_bytes_per_token(decoder_config())   # 2 x 2 layers x 2 kv heads x 64 x 4 bytes
    2048
    """
    head_dim = config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 4


# --------------------------------------------------------------------------- generation


@dataclass
class Generation:
    """Greedy generation: the new tokens and what each cost.

    ``seconds[k]`` is the time of the model call (and argmax) that produced ``tokens[k]``;
    ``positions[k]`` is how many tokens the sequence held before that call (the prompt's length
    for the first token, which also reads the whole prompt: the *prefill*).

    >>> g = Generation("demo", [5, 6], [7, 8, 9], [0.004, 0.001, 0.001], [2, 3, 4])
    >>> g.sequence, round(g.decode_ms_per_token, 3)
    ([5, 6, 7, 8, 9], 1.0)
    """

    engine: str
    prompt: list[int]
    tokens: list[int]
    seconds: list[float]
    positions: list[int]
    notes: list[str] = field(default_factory=list)

    @property
    def sequence(self) -> list[int]:
        """The prompt followed by the new tokens."""
        return [*self.prompt, *self.tokens]

    @property
    def decode_ms_per_token(self) -> float:
        """Median milliseconds per token after the first (the prefill excluded)."""
        later = self.seconds[1:] or self.seconds
        return float(np.median(later)) * 1e3 if later else float("nan")

    @staticmethod
    def best_of(runs: Sequence[Generation]) -> Generation:
        """One generation from repeated runs of the same request: per token, the fastest time
        (the least disturbed by other work on the machine). The runs must agree token for token.

        >>> a = Generation("x", [1], [2, 3], [0.002, 0.004], [1, 2])
        >>> b = Generation("x", [1], [2, 3], [0.003, 0.001], [1, 2])
        >>> Generation.best_of([a, b]).seconds
        [0.002, 0.001]
        """
        if not runs:
            raise ValueError("best_of needs at least one Generation")
        first = runs[0]
        for run in runs[1:]:
            if run.tokens != first.tokens or run.positions != first.positions:
                raise ValueError(
                    f"best_of combines repeats of one request; {run.engine} produced other tokens"
                )
        fastest = [float(min(times)) for times in zip(*(r.seconds for r in runs), strict=True)]
        notes = [*first.notes, f"fastest of {len(runs)} runs per token"]
        return Generation(first.engine, first.prompt, first.tokens, fastest, first.positions, notes)

    def first_difference(self, other: Generation) -> int | None:
        """Index of the first new token where the two generations differ (None: identical)."""
        for k, (a, b) in enumerate(zip(self.tokens, other.tokens, strict=False)):
            if a != b:
                return k
        if len(self.tokens) != len(other.tokens):
            return min(len(self.tokens), len(other.tokens))
        return None


def _check_request(prompt_ids: Sequence[int], max_new_tokens: int, vocab: int, context: int):
    prompt = [int(t) for t in np.asarray(prompt_ids).reshape(-1)]
    if not prompt:
        raise ValueError("prompt_ids is empty: give at least one token id (encode(text))")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    bad = [t for t in prompt if not 0 <= t < vocab]
    if bad:
        raise ValueError(
            f"token ids {bad[:5]} are outside the vocabulary [0, {vocab}): encode the prompt "
            "with this decoder's tokenizer (course.generation.encode)"
        )
    if len(prompt) + max_new_tokens > context:
        raise ValueError(
            f"{len(prompt)} prompt tokens + {max_new_tokens} new ones exceed the decoder's "
            f"context of {context} positions (max_position_embeddings): shorten the prompt or "
            "ask for fewer tokens"
        )
    return prompt


def _session(model: Any, threads: int | None) -> Any:
    from course import bench

    if type(model).__name__ == "InferenceSession":
        return model
    if not Path(model).exists():
        raise FileNotFoundError(
            f"no ONNX model at {model}: export one with course.generation.decoder_onnx()"
        )
    return bench.ort_session(str(model), intra_op_threads=threads)


def greedy_generate_onnx(
    model: str | Path | Any,
    prompt_ids: Sequence[int],
    max_new_tokens: int = 32,
    *,
    use_cache: bool = True,
    eos_token_id: int | None = None,
    threads: int | None = None,
) -> Generation:
    """Greedy generation with onnxruntime from a decoder made by :func:`decoder_onnx`.

    ``model`` is the ``.onnx`` path or an ``onnxruntime.InferenceSession``. With
    ``use_cache=True`` the first call reads the prompt with an empty past, and every later call
    feeds only the newest token plus the ``present.*`` tensors of the previous call as
    ``past_key_values.*``. With ``use_cache=False`` every call feeds the whole sequence (and an
    empty past, if the graph has past inputs): the work of every step grows with the sequence.
    Generation stops after ``max_new_tokens``, or after ``eos_token_id`` when given.

    Example::

        run = greedy_generate_onnx(decoder_onnx(), encode("Beautiful is"), 16)
        decode(run.tokens), run.decode_ms_per_token
    """
    session = _session(model, threads)
    inputs = {i.name: i for i in session.get_inputs()}
    past_names = [n for n in inputs if n.startswith("past_key_values.")]
    if use_cache and not past_names:
        raise ValueError(
            "this decoder was exported without past key/values (no past_key_values.* inputs): "
            "use use_cache=False, or export with decoder_onnx(with_past=True)"
        )
    vocab = session.get_outputs()[0].shape[-1]
    vocab = vocab if isinstance(vocab, int) else 1 << 31
    context = int(session.get_modelmeta().custom_metadata_map.get("context", 1 << 31))
    prompt = _check_request(prompt_ids, max_new_tokens, vocab, context)
    empty = {}
    for name in past_names:
        _, heads, _, head_dim = inputs[name].shape
        empty[name] = np.zeros((1, heads, 0, head_dim), np.float32)
    present_to_past = {n.replace("past_key_values.", "present."): n for n in past_names}
    output_names = [o.name for o in session.get_outputs()]
    sequence, past = list(prompt), dict(empty)
    tokens, seconds, positions = [], [], []
    for step in range(max_new_tokens):
        fresh = sequence if (step == 0 or not use_cache) else sequence[-1:]
        feeds = {
            "input_ids": np.asarray([fresh], np.int64),
            "attention_mask": np.ones((1, len(sequence)), np.int64),
            **(past if use_cache else empty),
        }
        start = time.perf_counter()
        outputs = session.run(None, feeds)
        token = int(outputs[0][0, -1].argmax())
        seconds.append(time.perf_counter() - start)
        positions.append(len(sequence))
        tokens.append(token)
        sequence.append(token)
        if use_cache:
            past = {
                present_to_past[n]: v
                for n, v in zip(output_names[1:], outputs[1:], strict=True)
                if n in present_to_past
            }
        if eos_token_id is not None and token == eos_token_id:
            break
    engine = "onnxruntime, KV cache" if use_cache else "onnxruntime, no cache"
    return Generation(engine, prompt, tokens, seconds, positions)


def greedy_generate_torch(
    folder: str | Path | None,
    prompt_ids: Sequence[int],
    max_new_tokens: int = 32,
    *,
    eos_token_id: int | None = None,
    model: Any = None,
) -> Generation:
    """The reference: Hugging Face's own ``generate`` (greedy, its ``DynamicCache``) in PyTorch.

    Per-token times come from a streamer that ``generate`` calls with every new token. Pass an
    already loaded ``model`` (from :func:`load_decoder`) to skip loading it again.

    Example::

        ref = greedy_generate_torch(None, encode("Beautiful is"), 16)
    """
    import torch

    transformers = _transformers()
    if model is None:
        model, _ = load_decoder(folder)
    config = model.config
    prompt = _check_request(
        prompt_ids, max_new_tokens, config.vocab_size, config.max_position_embeddings
    )
    stamps: list[float] = []

    class _Clock(transformers.generation.streamers.BaseStreamer):
        def put(self, value: Any) -> None:
            stamps.append(time.perf_counter())

        def end(self) -> None:
            pass

    # without eos_token_id: an id the model never produces, so that nothing stops or suppresses
    # a token (min_new_tokens would forbid the end-of-text token, changing the argmax)
    stop = eos_token_id if eos_token_id is not None else config.vocab_size
    settings = transformers.GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=stop,
        pad_token_id=0,
        bos_token_id=0,
    )
    ids = torch.tensor([prompt])
    with _quiet(), torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            generation_config=settings,
            streamer=_Clock(),
        )
    tokens = [int(t) for t in out[0, len(prompt) :]]
    seconds = list(np.diff(stamps))[: len(tokens)]
    positions = list(range(len(prompt), len(prompt) + len(tokens)))
    return Generation("PyTorch (transformers generate)", prompt, tokens, seconds, positions)


# --------------------------------------------------------------------------- ONNX Runtime GenAI


def _genai() -> Any:
    try:
        import onnxruntime_genai
    except ImportError as exc:  # the reason is measured, not assumed
        raise GenaiUnavailable(
            f"onnxruntime-genai does not import here ({type(exc).__name__}: {exc}); "
            "pip install onnxruntime-genai==0.18.0"
        ) from exc
    return onnxruntime_genai


def genai_model(folder: str | Path | None = None) -> Path:
    """Build (once) an ONNX Runtime GenAI model folder from the decoder's Hugging Face folder.

    Runs GenAI's model builder (``python -m onnxruntime_genai.models.builder -i FOLDER -o OUT
    -p fp32 -e cpu``) offline (``HF_HUB_OFFLINE=1``) on the local folder; the output holds
    ``model.onnx`` (+ ``.data``), ``genai_config.json`` and the tokenizer. Raises
    :class:`GenaiUnavailable` with the builder's own last lines when it cannot.

    Example::

        genai_dir = genai_model()
        sorted(p.name for p in genai_dir.iterdir())
    """
    folder = _folder(folder)
    out = folder.parent / "genai"
    if (out / "genai_config.json").exists():
        return out
    _genai()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    with _atomic_dir(out) as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "onnxruntime_genai.models.builder",
                "-i",
                str(folder),
                "-o",
                str(tmp),
                "-p",
                "fp32",
                "-e",
                "cpu",
                "-c",
                str(tmp / ".hf-cache"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        if proc.returncode != 0 or not (tmp / "genai_config.json").exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise GenaiUnavailable(
                "onnxruntime-genai's model builder failed on the local folder: " + " | ".join(tail)
            )
        shutil.rmtree(tmp / ".hf-cache", ignore_errors=True)
        (tmp / "build.json").write_text(
            json.dumps(
                {
                    "command": "python -m onnxruntime_genai.models.builder -p fp32 -e cpu",
                    "seconds": round(time.perf_counter() - start, 2),
                    "onnxruntime_genai": importlib.metadata.version("onnxruntime-genai"),
                },
                indent=1,
            )
        )
    return out


def greedy_generate_genai(
    genai_folder: str | Path, prompt_ids: Sequence[int], max_new_tokens: int = 32
) -> Generation:
    """Greedy generation with ONNX Runtime GenAI (its own loop, KV cache and search, in C++).

    Per-token times are measured around each ``generate_next_token()`` call (the first one
    includes reading the prompt). GenAI stops at the model's end-of-text token
    (``eos_token_id`` in ``genai_config.json``), included; compare it with the other engines
    run with the same ``eos_token_id``.

    Example::

        run = greedy_generate_genai(genai_model(), encode("Beautiful is"), 16)
    """
    og = _genai()
    genai_folder = Path(genai_folder)
    if not (genai_folder / "genai_config.json").exists():
        raise FileNotFoundError(
            f"{genai_folder} has no genai_config.json: build one with "
            "course.generation.genai_model()"
        )
    settings = json.loads((genai_folder / "genai_config.json").read_text())["model"]
    prompt = _check_request(
        prompt_ids, max_new_tokens, settings["vocab_size"], settings["context_length"]
    )
    model = og.Model(str(genai_folder))
    params = og.GeneratorParams(model)
    total = len(prompt) + max_new_tokens
    params.set_search_options(do_sample=False, max_length=total)
    generator = og.Generator(model, params)
    seconds: list[float] = []
    start = time.perf_counter()
    generator.append_tokens(np.asarray(prompt, np.int32))  # runs the prompt: the prefill
    prefill = time.perf_counter() - start
    while not generator.is_done():
        start = time.perf_counter()
        generator.generate_next_token()
        seconds.append(time.perf_counter() - start)
    tokens = [int(t) for t in generator.get_sequence(0)[len(prompt) :]]
    if seconds:
        seconds[0] += prefill
    positions = list(range(len(prompt), len(prompt) + len(tokens)))
    return Generation("onnxruntime-genai", prompt, tokens, seconds[: len(tokens)], positions)


# --------------------------------------------------------------------------- figure


def latency_figure(runs: Sequence[Generation], *, title: str | None = None) -> Any:
    """Per-token latency against the position in the sequence, one line per generation run.

    >>> a = Generation("KV cache", [1] * 4, [2] * 3, [0.004, 0.001, 0.001], [4, 5, 6])
    >>> b = Generation("no cache", [1] * 4, [2] * 3, [0.004, 0.005, 0.006], [4, 5, 6])
    >>> latency_figure([a, b]).axes[0].get_ylabel()
    'time for the token (ms)'
    """
    import matplotlib.pyplot as plt

    from course.palette import OKABE_ITO

    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    markers = "os^Dv<>"
    for k, run in enumerate(runs):
        ms = np.asarray(run.seconds) * 1e3
        ax.plot(
            run.positions[: len(ms)],
            ms,
            marker=markers[k % len(markers)],
            ms=3.5,
            lw=1.4,
            color=OKABE_ITO[k % len(OKABE_ITO)],
            label=f"{run.engine} (median {run.decode_ms_per_token:.2f} ms after the first)",
        )
    ax.set_ylim(bottom=0)
    ax.set_xlabel("tokens already in the sequence (position)")
    ax.set_ylabel("time for the token (ms)")
    ax.set_title(title or "Greedy generation: the cost of each new token (first = prompt)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    plt.close(fig)
    return fig


# --------------------------------------------------------------------------- artefacts


@artefacts.register("decoder")
def _build_decoder_artefact() -> Path:
    """The course's decoder (trained, saved) and its ONNX export with the KV cache."""
    return decoder_onnx(with_past=True, folder=build_decoder())


@artefacts.register("decoder-genai")
def _build_genai_artefact() -> Path | str:
    """The same decoder built by ONNX Runtime GenAI's model builder (when it installs)."""
    try:
        return genai_model(build_decoder())
    except GenaiUnavailable as exc:
        return f"not built: {exc}"
