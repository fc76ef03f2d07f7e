"""Serve one ONNX model through PyTriton: a real Triton Inference Server, for comparison.

Run by ``python -m benchmarks.serve_bench --pytriton PYTHON`` with the Python of a separate
environment (PyTriton pins an older numpy than the course does)::

    make pytriton-env      # build/pytriton-venv, from benchmarks/pytriton-requirements.txt

It is not imported by the course and imports nothing from it. Triton runs the model through its
Python backend: each batch goes from Triton's C++ HTTP front end to this process (shared memory)
and onnxruntime runs it here, with the same dynamic batching settings as course.serve's
batched models (``max_batch_size``, ``max_queue_delay_microseconds``). Two models are served:
``batched``, one instance whose session has onnxruntime's default threads (all cores), and
``batched_xN`` (``--instances N``, N > 1), N instances with one session of ``cores // N``
threads each, as course.serve's ``instance_group`` gives them (PyTriton makes one Triton model
instance per function in the list it is bound to). Triton's own onnxruntime backend is not in
PyTriton's wheel. Every input and output of the model is served
(float32 and int64 tensors; dimensions after the batch one may be dynamic).

    PYTHON benchmarks/pytriton_server.py MODEL.onnx --http-port 8200 [--max-batch 32] [--delay-us 1000] [--instances 2]

Serves until it is terminated. Readiness is not announced on stdout (Triton's own log shares the
pipe and interleaves mid-line): the benchmark polls ``/v2/health/ready`` and the model's
``/v2/models/<name>/ready`` of each model.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, Triton, TritonConfig, TritonSecurityConfig

DTYPES = {
    "tensor(float)": np.float32,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def tensor(arg: ort.NodeArg) -> Tensor:
    """A PyTriton tensor for an onnxruntime input or output (batch dimension left out)."""
    shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape[1:])
    return Tensor(name=arg.name, dtype=DTYPES[arg.type], shape=shape)


def make_infer(model: str, threads: int | None) -> Callable[..., dict[str, np.ndarray]]:
    """A PyTriton inference function over its own onnxruntime session."""
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, inputs), strict=True))

    return infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--delay-us", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    threads = max(1, (os.cpu_count() or 1) // args.instances)
    models: dict[str, list[Callable[..., dict[str, np.ndarray]]]] = {
        "batched": [make_infer(args.model, None)]
    }
    if args.instances > 1:
        models[f"batched_x{args.instances}"] = [
            make_infer(args.model, threads) for _ in range(args.instances)
        ]

    config = TritonConfig(
        http_port=args.http_port, grpc_port=args.http_port + 1, metrics_port=args.http_port + 2
    )
    # the benchmark reads the batch sizes Triton ran from its statistics endpoint, which PyTriton
    # puts behind an access token by default; the other defaults stay protected
    security = TritonSecurityConfig(
        restricted_endpoints=[e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"]
    )
    with Triton(config=config, security_config=security) as triton:
        for name, functions in models.items():
            triton.bind(
                model_name=name,
                infer_func=functions,
                inputs=[tensor(a) for a in session.get_inputs()],
                outputs=[tensor(a) for a in session.get_outputs()],
                config=ModelConfig(
                    max_batch_size=args.max_batch,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=args.delay_us),
                ),
            )
        triton.serve()


if __name__ == "__main__":
    main()
