"""Small ONNX graphs built with onnx.helper, shared by the unit tests (no training, no export).

mlp()                 x[batch, 4] -> MatMul/Add/Relu -> MatMul -> y[batch, 3], weights as
                      initializers (or as Constant nodes with constant_weights=True)
unary("Relu", dims)   one-node model
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(initializers))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def unary(op: str = "Relu", dims=("batch", 3), elem=TensorProto.FLOAT) -> onnx.ModelProto:
    return model(
        [helper.make_node(op, ["x"], ["y"], name=f"{op.lower()}_0")],
        [helper.make_tensor_value_info("x", elem, list(dims))],
        [helper.make_tensor_value_info("y", elem, list(dims))],
    )


def mlp(
    n_in: int = 4,
    hidden: int = 8,
    n_out: int = 3,
    *,
    batch: str | int = "batch",
    constant_weights: bool = False,
    seed: int = 0,
) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    weights = {
        "w1": rng.standard_normal((n_in, hidden)).astype(np.float32),
        "b1": rng.standard_normal(hidden).astype(np.float32),
        "w2": rng.standard_normal((hidden, n_out)).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="matmul_0"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="add_0"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu_0"),
        helper.make_node("MatMul", ["h2", "w2"], ["y"], name="matmul_1"),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    if constant_weights:
        nodes = [
            helper.make_node("Constant", [], [t.name], value=t, name=f"const_{t.name}")
            for t in inits
        ] + nodes
        inits = []
    return model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n_out])],
        inits,
    )
