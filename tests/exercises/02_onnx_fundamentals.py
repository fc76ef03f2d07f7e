"""Exercise self-tests for 02-onnx-fundamentals: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    # ONNX's text syntax and a Gemm node instead of onnx.helper with MatMul + Add
    "ex1-linear-relu": [
        '''
def build_linear_relu(W, b):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    n_in, n_out = W.shape
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
linear_relu (float[N,{n_in}] x) => (float[N,{n_out}] y) {{
    z = Gemm(x, W, b)
    y = Relu(z)
}}"""
    model = onnx.parser.parse_model(text)
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(W, np.float32), "W"),
            numpy_helper.from_array(np.asarray(b, np.float32), "b"),
        ]
    )
    return model
''',
        # weights as Constant nodes, Max(z, 0) for the ReLU, opset 13 and IR 7
        """
def build_linear_relu(W, b):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    W = np.asarray(W, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    def const(name, value):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name + "_value"))
    nodes = [
        const("W", W),
        const("b", b),
        const("zero", np.zeros((), np.float32)),
        helper.make_node("MatMul", ["x", "W"], ["xW"]),
        helper.make_node("Add", ["xW", "b"], ["z"]),
        helper.make_node("Max", ["z", "zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", W.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", W.shape[1]])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
""",
    ],
    # the full schema history instead of get_schema's version lookup
    "ex2-minimum-opsets": [
        """
def minimum_opsets(model):
    import onnx

    def norm(domain):
        return "" if domain in ("", "ai.onnx") else domain

    declared = {norm(i.domain): i.version for i in model.opset_import}
    history = {}
    for s in onnx.defs.get_all_schemas_with_history():
        history.setdefault((s.domain, s.name), []).append(s.since_version)
    result = {}
    for node in model.graph.node:
        d = norm(node.domain)
        in_force = max(v for v in history[(d, node.op_type)] if v <= declared[d])
        result[d] = max(result.get(d, 0), in_force)
    return result
""",
        # an upward search: the first opset at which every operator already has its declared schema
        """
def minimum_opsets(model):
    import onnx

    def norm(domain):
        return "" if domain == "ai.onnx" else domain

    def since(op, version, domain):
        try:
            return onnx.defs.get_schema(op, version, domain).since_version
        except Exception:
            return None

    declared = {norm(i.domain): int(i.version) for i in model.opset_import}
    used = {}
    for node in model.graph.node:
        used.setdefault(norm(node.domain), set()).add(node.op_type)
    result = {}
    for domain, ops in used.items():
        target = {op: since(op, declared[domain], domain) for op in ops}
        version = 1
        while any(since(op, version, domain) != want for op, want in target.items()):
            version += 1
        result[domain] = version
    return result
""",
    ],
    # a round trip through bytes, a rebuilt initializer list, other valid version numbers
    "ex3-repair": [
        """
def repair(model):
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load_model_from_string(model.SerializeToString())
    if not any(i.domain == "ai.onnx.ml" for i in m.opset_import):
        m.opset_import.append(helper.make_opsetid("ai.onnx.ml", 1))
    new = [
        numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)
        for t in m.graph.initializer
    ]
    del m.graph.initializer[:]
    m.graph.initializer.extend(new)
    m.ir_version = 10
    return m
""",
        # a new model built with make_model and make_tensor; default opset 17, ai.onnx.ml 2, IR 8
        """
def repair(model):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    g = model.graph
    weights = []
    for t in g.initializer:
        values = numpy_helper.to_array(t).astype(np.float32)
        weights.append(helper.make_tensor(t.name, TensorProto.FLOAT, values.shape, values.ravel().tolist()))
    graph = helper.make_graph(list(g.node), g.name, list(g.input), list(g.output), initializer=weights)
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 2)]
    return helper.make_model(graph, opset_imports=imports, ir_version=8)
""",
    ],
}

_EX1_TEMPLATE = """
def build_linear_relu(W, b):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    n_in, n_out = W.shape
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [{batch}, n_in])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [{batch}, n_out])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xW"]),
        helper.make_node("Add", ["xW", "b"], [{add_out}]),
    ]
    {relu}
    graph = helper.make_graph(
        nodes,
        "linear_relu",
        [x],
        [y],
        initializer=[
            numpy_helper.from_array(np.asarray(W, {dtype}), "W"),
            numpy_helper.from_array(np.asarray(b, {dtype}), "b"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
"""


def _ex1(batch='"batch"', relu=True, dtype="np.float32"):
    return _EX1_TEMPLATE.format(
        batch=batch,
        add_out='"z"' if relu else '"y"',
        relu='nodes.append(helper.make_node("Relu", ["z"], ["y"]))' if relu else "",
        dtype=dtype,
    )


WRONG = {
    "ex1-linear-relu": [
        (_ex1(batch="1"), {"ex1-batch", "ex1-values"}),  # a batch of one baked into the input
        (_ex1(relu=False), {"ex1-batch", "ex1-values"}),  # the activation forgotten
        (
            _ex1(dtype="np.float64"),
            {"ex1-batch", "ex1-valid", "ex1-values"},
        ),  # NumPy's default float64 weights in a float32 graph
    ],
    "ex2-minimum-opsets": [
        # the opset where each operator first appeared, ignoring later signature changes
        (
            """
def minimum_opsets(model):
    import onnx
    first = {}
    for s in onnx.defs.get_all_schemas_with_history():
        key = (s.domain, s.name)
        first[key] = min(first.get(key, 10**6), s.since_version)
    result = {}
    for node in model.graph.node:
        result[node.domain] = max(result.get(node.domain, 1), first[(node.domain, node.op_type)])
    return result
""",
            {"ex2-hidden", "ex2-visible"},
        ),
        # the declared opsets, unchanged
        (
            """
def minimum_opsets(model):
    return {i.domain: i.version for i in model.opset_import}
""",
            {"ex2-hidden", "ex2-visible"},
        ),
        # the newest schema of each operator instead of the one in force at the declared opset
        (
            """
def minimum_opsets(model):
    import onnx
    result = {}
    for node in model.graph.node:
        since = onnx.defs.get_schema(node.op_type, node.domain).since_version
        result[node.domain] = max(result.get(node.domain, 1), since)
    return result
""",
            {"ex2-hidden", "ex2-visible"},
        ),
    ],
    "ex3-repair": [
        # the opset import and the IR version fixed, the float64 weights left alone
        (
            """
def repair(model):
    from onnx import helper
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 3))
    model.ir_version = 8
    return model
""",
            {"ex3-faithful", "ex3-loads", "ex3-values"},
        ),
        # the ai.onnx.ml import copied from the main domain's version: too new for the runtime
        (
            """
def repair(model):
    import numpy as np
    from onnx import helper, numpy_helper
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 18))
    for t in model.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    model.ir_version = 8
    return model
""",
            {"ex3-loads", "ex3-values"},
        ),
        # rebuilt without the ai.onnx.ml Scaler: right numbers, but not a repair
        (
            """
def repair(model):
    import numpy as np
    from onnx import helper, numpy_helper
    scaler = model.graph.node[0]
    att = {a.name: np.array(helper.get_attribute_value(a), np.float32) for a in scaler.attribute}
    inits = [
        numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)
        for t in model.graph.initializer
    ]
    inits += [
        numpy_helper.from_array(att["offset"], "offset"),
        numpy_helper.from_array(att["scale"], "scale"),
    ]
    nodes = [
        helper.make_node("Sub", ["x", "offset"], ["centred"]),
        helper.make_node("Mul", ["centred", "scale"], ["scaled"]),
        *model.graph.node[1:],
    ]
    graph = helper.make_graph(
        nodes, "rebuilt", list(model.graph.input), list(model.graph.output), initializer=inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
""",
            {"ex3-faithful"},
        ),
    ],
}
