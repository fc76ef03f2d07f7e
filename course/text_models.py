# STAND-IN: replaced by the enc helper's module at merge
"""A BERT-like text encoder exported to ONNX (stand-in with the enc helper's two functions).

``encoder_onnx()`` returns the path of a float32 ONNX encoder (inputs ``input_ids`` and
``attention_mask``, int64 ``[batch, sequence]``; output ``last_hidden_state``), built from a
``transformers.BertConfig`` with seeded random weights and cached under
:func:`course.data.cache_dir`. ``sample_inputs(batch, seq)`` makes matching inputs.

Example::

    >>> # path = encoder_onnx(); feed = sample_inputs(2, 32)
    >>> # onnxruntime.InferenceSession(str(path)).run(None, feed)[0].shape -> (2, 32, 512)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["encoder_onnx", "sample_inputs"]

_VOCAB = 8192
_CONFIG = {
    "vocab_size": _VOCAB,
    "hidden_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "intermediate_size": 2048,
    "max_position_embeddings": 512,
}


def encoder_onnx() -> Path:
    """The encoder's ONNX file (built and cached on first call, then returned at once)."""
    from course import data

    key = "-".join(str(_CONFIG[k]) for k in sorted(_CONFIG))
    path = data.cache_dir() / f"stand-in-encoder-{key}.onnx"
    if path.is_file():
        return path
    import warnings

    from course._capture import quiet_native

    # the import and the export print notes and tracer warnings: none of the learner's business
    with quiet_native(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export(path)
    return path


def _export(path: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            config = BertConfig(**_CONFIG, attn_implementation="eager")
            self.bert = BertModel(config, add_pooling_layer=False)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            return out.last_hidden_state

    torch.manual_seed(0)
    model = Encoder().eval()
    feed = {k: torch.from_numpy(v) for k, v in sample_inputs(2, 16).items()}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad():
        torch.onnx.export(
            model,
            (feed["input_ids"], feed["attention_mask"]),
            str(tmp),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "last_hidden_state": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(path)


def sample_inputs(batch: int, seq: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Token ids and an all-ones attention mask, int64 ``[batch, seq]``."""
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(0, _VOCAB, size=(batch, seq), dtype=np.int64),
        "attention_mask": np.ones((batch, seq), dtype=np.int64),
    }
