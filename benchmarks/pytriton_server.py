"""Serve one ONNX model through PyTriton: a real Triton Inference Server, for comparison.

Run by ``python -m benchmarks.serve_bench --pytriton PYTHON`` with the Python of a separate
environment (PyTriton pins an older numpy than the course does)::

    make pytriton-env      # build/pytriton-venv, from benchmarks/pytriton-requirements.txt

It is not imported by the course and imports nothing from it. Triton runs the model through its
Python backend: each batch goes from Triton's C++ HTTP front end to this process (shared memory)
and onnxruntime runs it here, with the same dynamic batching settings as course.serve's
``batched`` model (``max_batch_size``, ``max_queue_delay_microseconds``). Triton's own
onnxruntime backend is not in PyTriton's wheel.

    PYTHON benchmarks/pytriton_server.py MODEL.onnx --http-port 8200 [--max-batch 32] [--delay-us 1000]

Prints ``READY`` once the model is loaded, then serves until it is terminated.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import DEFAULT_PROTECTED_ENDPOINTS, Triton, TritonConfig, TritonSecurityConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--delay-us", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    (source,) = session.get_inputs()
    (target,) = session.get_outputs()

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {target.name: session.run(None, {source.name: inputs[source.name]})[0]}

    config = TritonConfig(
        http_port=args.http_port, grpc_port=args.http_port + 1, metrics_port=args.http_port + 2
    )
    # the benchmark reads the batch sizes Triton ran from its statistics endpoint, which PyTriton
    # puts behind an access token by default; the other defaults stay protected
    security = TritonSecurityConfig(
        restricted_endpoints=[e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"]
    )
    with Triton(config=config, security_config=security) as triton:
        triton.bind(
            model_name="batched",
            infer_func=infer,
            inputs=[Tensor(name=source.name, dtype=np.float32, shape=tuple(source.shape[1:]))],
            outputs=[Tensor(name=target.name, dtype=np.float32, shape=tuple(target.shape[1:]))],
            config=ModelConfig(
                max_batch_size=args.max_batch,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.delay_us),
            ),
        )
        print("READY", flush=True)
        triton.serve()


if __name__ == "__main__":
    main()
