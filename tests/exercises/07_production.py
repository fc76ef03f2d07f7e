"""Exercise self-tests for 07-production: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    # nested lists and dtype names built from the dtype's kind and size; a table-driven parser
    "ex1-protocol": [
        """
def build_infer_request(inputs):
    import numpy as np
    tensors = []
    for name, value in inputs.items():
        array = np.asarray(value)
        if array.dtype == np.bool_:
            datatype = "BOOL"
        else:
            prefix = {"f": "FP", "i": "INT", "u": "UINT"}[array.dtype.kind]
            datatype = f"{prefix}{array.dtype.itemsize * 8}"
        tensors.append({"name": name, "datatype": datatype, "shape": [int(d) for d in array.shape],
                        "data": array.tolist()})
    return {"inputs": tensors}


def parse_infer_response(response):
    import numpy as np
    result = {}
    for out in response["outputs"]:
        kind = out["datatype"]
        dtype = np.bool_ if kind == "BOOL" else np.dtype(
            kind.replace("UINT", "uint").replace("INT", "int").replace("FP", "float"))
        flat = np.asarray(out["data"], dtype=dtype).ravel()
        result[out["name"]] = flat.reshape(tuple(out["shape"]))
    return result
""",
        # one table of (protocol, NumPy) names read both ways; a flat list parsed with np.ravel
        """
_KSERVE_TYPES = [
    ("FP16", "float16"), ("FP32", "float32"), ("FP64", "float64"),
    ("INT8", "int8"), ("INT16", "int16"), ("INT32", "int32"), ("INT64", "int64"),
    ("UINT8", "uint8"), ("UINT16", "uint16"), ("UINT32", "uint32"), ("UINT64", "uint64"),
    ("BOOL", "bool"),
]


def build_infer_request(inputs):
    import numpy as np
    to_protocol = {np.dtype(n): p for p, n in _KSERVE_TYPES}
    return {
        "inputs": [
            {
                "name": str(k),
                "shape": [*np.shape(v)],
                "datatype": to_protocol[np.asarray(v).dtype],
                "data": np.asarray(v).flatten().tolist(),
            }
            for k, v in inputs.items()
        ]
    }


def parse_infer_response(response):
    import numpy as np
    to_numpy = {p: np.dtype(n) for p, n in _KSERVE_TYPES}
    return {
        o["name"]: np.ravel(o["data"]).astype(to_numpy[o["datatype"]]).reshape(o["shape"])
        for o in response["outputs"]
    }
""",
    ],
    # urllib instead of httpx, np.array_split into chunks, metadata read once
    "ex2-client": [
        """
def classify_remote(url, model_name, images):
    import json
    import math
    import urllib.request
    import numpy as np

    def get(path):
        with urllib.request.urlopen(f"{url}/v2/models/{model_name}{path}", timeout=10) as reply:
            return json.load(reply)

    meta, config = get(""), get("/config")
    limit = config["max_batch_size"] or len(images)
    x = np.asarray(images).astype(np.float32)
    parts = np.array_split(x, math.ceil(len(x) / limit))
    labels = []
    for part in parts:
        body = json.dumps({"inputs": [{"name": meta["inputs"][0]["name"], "datatype": "FP32",
                                       "shape": list(part.shape), "data": part.tolist()}]}).encode()
        request = urllib.request.Request(f"{url}/v2/models/{model_name}/infer", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            out = json.load(reply)["outputs"][0]
        labels.extend(np.array(out["data"]).reshape(out["shape"]).argmax(axis=1).tolist())
    return np.array(labels, dtype=np.int64)
""",
        # one httpx.Client; labels written into a preallocated int64 array, the output picked by name
        """
def classify_remote(url, model_name, images):
    import httpx
    import numpy as np
    base = f"{url}/v2/models/{model_name}"
    x = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    with httpx.Client(timeout=10) as client:
        meta = client.get(base).json()
        limit = int(client.get(base + "/config").json().get("max_batch_size") or len(x))
        (inp,), (out,) = meta["inputs"], meta["outputs"]
        labels = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), limit):
            chunk = x[start : start + limit]
            body = {"inputs": [{"name": inp["name"], "shape": list(chunk.shape), "datatype": "FP32", "data": chunk.tolist()}]}
            reply = client.post(base + "/infer", json=body)
            reply.raise_for_status()
            (result,) = [o for o in reply.json()["outputs"] if o["name"] == out["name"]]
            labels[start : start + len(chunk)] = np.asarray(result["data"]).reshape(result["shape"]).argmax(axis=-1)
    return labels
""",
    ],
    "ex3-stats": [
        """
def batching_summary(before, after):
    def delta(*path):
        a, b = after, before
        for key in path:
            a, b = a[key], b[key]
        return a - b
    runs = delta("execution_count")
    if runs == 0:
        raise ValueError("the model did not run between these snapshots")
    requests = delta("inference_stats", "success", "count")
    rows = delta("inference_count")
    return dict(requests=requests, rows=rows, executions=runs, mean_batch=rows / runs,
                runs_saved=(requests - runs) / requests)
""",
        # pandas: both snapshots flattened by json_normalize, one diff
        """
def batching_summary(before, after):
    import pandas as pd
    columns = ["inference_stats.success.count", "inference_count", "execution_count"]
    delta = pd.json_normalize([before, after])[columns].diff().iloc[1]
    requests, rows, runs = (int(delta[c]) for c in columns)
    if runs <= 0:
        raise ValueError(f"expected model runs between the snapshots, got {runs}")
    return {
        "requests": requests,
        "rows": rows,
        "executions": runs,
        "mean_batch": rows / runs,
        "runs_saved": 1.0 - runs / requests,
    }
""",
    ],
    # Triton's own protobuf message, printed with text_format; backend instead of platform
    "ex4-config": [
        """
def write_config(model, name, max_batch_size, max_queue_delay_us):
    import onnx
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as pb

    config = pb.ModelConfig(name=name, backend="onnxruntime", max_batch_size=max_batch_size)
    for values, field in ((model.graph.input, config.input), (model.graph.output, config.output)):
        for value in values:
            tensor = value.type.tensor_type
            np_type = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
            kind = {"f": "FP", "i": "INT", "u": "UINT", "b": "BOOL"}[np_type.kind]
            data_type = "TYPE_BOOL" if kind == "BOOL" else f"TYPE_{kind}{np_type.itemsize * 8}"
            entry = field.add(name=value.name, data_type=pb.DataType.Value(data_type))
            dims = [d.dim_value or -1 for d in tensor.shape.dim][1:]
            if dims:
                entry.dims.extend(dims)
            else:
                entry.dims.append(1)
                entry.reshape.shape.extend([])
                entry.reshape.SetInParent()
    config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    return text_format.MessageToString(config)
""",
        # the text assembled as indented blocks, types from onnx's NumPy dtype names
        r"""
def write_config(model, name, max_batch_size, max_queue_delay_us):
    import onnx
    triton = {
        "float16": "FP16", "float32": "FP32", "float64": "FP64", "bool": "BOOL",
        "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
        "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    }

    def entries(values):
        blocks = []
        for v in values:
            t = v.type.tensor_type
            dtype = triton[onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name]
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim[1:]]
            body = [f'    name: "{v.name}"', f"    data_type: TYPE_{dtype}"]
            if dims:
                body.append(f"    dims: [ {', '.join(map(str, dims))} ]")
            else:
                body += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
            blocks.append("  {\n" + "\n".join(body) + "\n  }")
        return ",\n".join(blocks)

    return (
        f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch_size}\n'
        f"input [\n{entries(model.graph.input)}\n]\noutput [\n{entries(model.graph.output)}\n]\n"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n"
    )
""",
    ],
    # plain onnx.helper on a copy of the GraphProto: rename the input's uses, prepend two nodes
    "ex5-standardize": [
        """
def with_standardization(model, mean, std):
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    edited = onnx.ModelProto()
    edited.CopyFrom(model)
    graph = edited.graph
    name = graph.input[0].name
    inner = name + "__standardized"
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == name:
                node.input[i] = inner
    graph.initializer.extend([
        numpy_helper.from_array(np.asarray(mean, np.float32), "mu"),
        numpy_helper.from_array(np.asarray(std, np.float32), "sigma"),
    ])
    new_nodes = [helper.make_node("Sub", [name, "mu"], ["centered"]),
                 helper.make_node("Div", ["centered", "sigma"], [inner])]
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(new_nodes + old)
    return edited
""",
        # onnx.compose: a two-node preprocessing model merged in front of the original
        """
def with_standardization(model, mean, std):
    import numpy as np
    from onnx import compose, helper, numpy_helper
    x = model.graph.input[0]
    pre_graph = helper.make_graph(
        [
            helper.make_node("Sub", [x.name, "pre_mean"], ["pre_centred"]),
            helper.make_node("Div", ["pre_centred", "pre_std"], ["pre_out"]),
        ],
        "standardize",
        [x],
        [helper.make_tensor_value_info("pre_out", x.type.tensor_type.elem_type, None)],
        initializer=[
            numpy_helper.from_array(np.asarray(mean, np.float32), "pre_mean"),
            numpy_helper.from_array(np.asarray(std, np.float32), "pre_std"),
        ],
    )
    default = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    pre = helper.make_model(pre_graph, opset_imports=default, ir_version=model.ir_version)
    return compose.merge_models(pre, model, io_map=[("pre_out", x.name)])
""",
    ],
    # torch.onnx.export directly, dynamic_shapes keyed by the forward argument's name
    "ex6-encoder": [
        """
def export_encoder(model, tokens):
    import torch
    shapes = {"tokens": {0: torch.export.Dim("b"), 1: torch.export.Dim("s", min=2, max=256)}}
    program = torch.onnx.export(model, (tokens,), dynamo=True, dynamic_shapes=shapes, verbose=False)
    return program.model_proto
""",
        # torch.export.export first (tuple dynamic shapes), then the ONNX exporter on the ExportedProgram
        """
def export_encoder(model, tokens):
    import torch
    seq = torch.export.Dim("seq", min=2, max=1024)
    program = torch.export.export(model.eval(), (tokens,), dynamic_shapes=({0: torch.export.Dim("rows"), 1: seq},))
    return torch.onnx.export(program, dynamo=True, verbose=False).model_proto
""",
    ],
}

WRONG = {
    # NumPy's dtype names instead of the protocol's; a parser that forgets shape and dtype
    "ex1-protocol": [
        (
            """
def build_infer_request(inputs):
    import numpy as np
    return {"inputs": [{"name": n, "shape": list(np.shape(v)), "datatype": np.asarray(v).dtype.name,
                        "data": np.asarray(v).ravel().tolist()} for n, v in inputs.items()]}


def parse_infer_response(response):
    import numpy as np
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in response["outputs"]}
""",
            {"ex1-hidden", "ex1-visible"},
        ),
        (
            """
def build_infer_request(inputs):
    import numpy as np
    names = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32",
             "uint8": "UINT8", "bool": "BOOL"}
    return {"inputs": [{"name": n, "shape": list(np.shape(v)),
                        "datatype": names[np.asarray(v).dtype.name],
                        "data": np.asarray(v).ravel().tolist()} for n, v in inputs.items()]}


def parse_infer_response(response):
    import numpy as np
    return {o["name"]: np.array(o["data"], dtype=np.float32) for o in response["outputs"]}
""",
            {"ex1-hidden", "ex1-visible"},
        ),
        # every tensor declared FP32: right for the visible test's float32 rows only
        (
            """
def build_infer_request(inputs):
    import numpy as np
    return {"inputs": [{"name": n, "shape": list(np.shape(v)), "datatype": "FP32",
                        "data": np.asarray(v).ravel().tolist()} for n, v in inputs.items()]}


def parse_infer_response(response):
    import numpy as np
    types = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_, "UINT8": np.uint8}
    return {o["name"]: np.array(o["data"], dtype=types[o["datatype"]]).reshape(o["shape"]) for o in response["outputs"]}
""",
            {"ex1-hidden"},
        ),
    ],
    # the dtype fixed but no chunking; chunking with the input name and batch limit hard-coded
    "ex2-client": [
        (
            """
def classify_remote(url, model_name, images):
    import httpx
    import numpy as np
    meta = httpx.get(f"{url}/v2/models/{model_name}").json()
    x = np.asarray(images, np.float32)
    body = {"inputs": [{"name": meta["inputs"][0]["name"], "shape": list(x.shape),
                        "datatype": "FP32", "data": x.ravel().tolist()}]}
    out = httpx.post(f"{url}/v2/models/{model_name}/infer", json=body).json()["outputs"][0]
    return np.array(out["data"]).reshape(out["shape"]).argmax(1)
""",
            {"ex2-hidden"},
        ),
        (
            """
def classify_remote(url, model_name, images):
    import httpx
    import numpy as np
    x = np.asarray(images, np.float32)
    labels = []
    for start in range(0, len(x), 16):
        chunk = x[start:start + 16]
        body = {"inputs": [{"name": "input", "shape": list(chunk.shape), "datatype": "FP32",
                            "data": chunk.ravel().tolist()}]}
        out = httpx.post(f"{url}/v2/models/{model_name}/infer", json=body).json()["outputs"][0]
        labels.append(np.array(out["data"]).reshape(out["shape"]).argmax(1))
    return np.concatenate(labels)
""",
            {"ex2-hidden"},
        ),
        # chunking off by one: the last, partial chunk is never sent
        (
            """
def classify_remote(url, model_name, images):
    import numpy as np
    meta = httpx.get(f"{url}/v2/models/{model_name}", timeout=10).json()
    step = httpx.get(f"{url}/v2/models/{model_name}/config", timeout=10).json()["max_batch_size"]
    x = np.asarray(images, dtype=np.float32)
    labels = []
    for start in range(0, len(x) - step + 1, step):
        chunk = x[start : start + step]
        body = {"inputs": [{"name": meta["inputs"][0]["name"], "shape": list(chunk.shape), "datatype": "FP32", "data": chunk.ravel().tolist()}]}
        out = httpx.post(f"{url}/v2/models/{model_name}/infer", json=body, timeout=10).json()["outputs"][0]
        labels.append(np.array(out["data"]).reshape(out["shape"]).argmax(1))
    return np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
""",
            {"ex2-hidden", "ex2-visible"},
        ),
    ],
    # totals instead of differences; requests per run instead of rows per run
    "ex3-stats": [
        (
            """
def batching_summary(before, after):
    runs = after["execution_count"]
    if runs == 0:
        raise ValueError("no runs")
    requests = after["inference_stats"]["success"]["count"]
    rows = after["inference_count"]
    return {"requests": requests, "rows": rows, "executions": runs, "mean_batch": rows / runs,
            "runs_saved": 1 - runs / requests}
""",
            {"ex3-hidden"},
        ),
        (
            """
def batching_summary(before, after):
    requests = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    rows = after["inference_count"] - before["inference_count"]
    runs = after["execution_count"] - before["execution_count"]
    if runs == 0:
        raise ValueError("no runs")
    return {"requests": requests, "rows": rows, "executions": runs, "mean_batch": requests / runs,
            "runs_saved": runs / requests}
""",
            {"ex3-hidden"},
        ),
        # no ValueError: a snapshot pair without runs gives NaN instead
        (
            """
def batching_summary(before, after):
    requests = after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    rows = after["inference_count"] - before["inference_count"]
    runs = after["execution_count"] - before["execution_count"]
    nan = float("nan")
    return {"requests": requests, "rows": rows, "executions": runs,
            "mean_batch": rows / runs if runs else nan, "runs_saved": 1 - runs / requests if requests else nan}
""",
            {"ex3-hidden"},
        ),
    ],
    # the batch dimension kept in dims; a rank-1 output without the reshape Triton needs
    "ex4-config": [
        (
            """
def write_config(model, name, max_batch_size, max_queue_delay_us):
    types = {1: "TYPE_FP32", 2: "TYPE_UINT8", 7: "TYPE_INT64"}
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch_size}"]
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            lines.append(f'{kind} {{ name: "{v.name}" data_type: {types[t.elem_type]} dims: {dims} }}')
    lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}")
    return "\\n".join(lines)
""",
            {"ex4-hidden", "ex4-visible"},
        ),
        (
            """
def write_config(model, name, max_batch_size, max_queue_delay_us):
    types = {1: "TYPE_FP32", 2: "TYPE_UINT8", 7: "TYPE_INT64"}
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch_size}"]
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for v in values:
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim][1:]
            lines.append(f'{kind} {{ name: "{v.name}" data_type: {types[t.elem_type]} dims: {dims} }}')
    lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}")
    return "\\n".join(lines)
""",
            {"ex4-hidden"},
        ),
        # a type table that knows only the visible tests' types (float32, uint8, int64)
        (
            "def write_config(model, name, max_batch_size, max_queue_delay_us):\n    types = {1: 'TYPE_FP32', 2: 'TYPE_UINT8', 7: 'TYPE_INT64'}\n    lines = [f'name: \"{name}\"', 'platform: \"onnxruntime_onnx\"', f'max_batch_size: {max_batch_size}']\n    for kind, values in (('input', model.graph.input), ('output', model.graph.output)):\n        for v in values:\n            t = v.type.tensor_type\n            dims = [d.dim_value if d.HasField('dim_value') else -1 for d in t.shape.dim][1:]\n            shape = f\"dims: [ {', '.join(map(str, dims))} ]\" if dims else 'dims: [ 1 ] reshape: { shape: [ ] }'\n            lines.append(f'{kind} {{ name: \"{v.name}\" data_type: {types.get(t.elem_type, \"TYPE_FP32\")} {shape} }}')\n    lines.append(f'dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}')\n    return '\\n'.join(lines) + '\\n'\n",
            {"ex4-hidden"},
        ),
    ],
    # multiplying by the standard deviation; the right arithmetic under a new input name
    "ex5-standardize": [
        (
            """
def with_standardization(model, mean, std):
    import numpy as np
    import onnx_ir as ir
    m = ir.from_proto(model)
    g = m.graph
    old = g.inputs[0]
    raw = ir.val("raw_x", old.dtype, old.shape)
    mu = ir.val("mu", const_value=ir.tensor(np.asarray(mean, np.float32), name="mu"))
    sd = ir.val("sd", const_value=ir.tensor(np.asarray(std, np.float32), name="sd"))
    g.register_initializer(mu)
    g.register_initializer(sd)
    sub = ir.node("Sub", [raw, mu])
    mul = ir.node("Mul", [sub.outputs[0], sd])
    old.replace_all_uses_with(mul.outputs[0])
    g.insert_before(g[0], [sub, mul])
    g.inputs[0] = raw
    ir.convenience.rename_values([old, raw], ["x_std", old.name])
    return ir.to_proto(m)
""",
            {"ex5-hidden"},
        ),
        (
            """
def with_standardization(model, mean, std):
    import numpy as np
    import onnx_ir as ir
    m = ir.from_proto(model)
    g = m.graph
    old = g.inputs[0]
    raw = ir.val("raw_features", old.dtype, old.shape)
    mu = ir.val("mu", const_value=ir.tensor(np.asarray(mean, np.float32), name="mu"))
    sd = ir.val("sd", const_value=ir.tensor(np.asarray(std, np.float32), name="sd"))
    g.register_initializer(mu)
    g.register_initializer(sd)
    sub = ir.node("Sub", [raw, mu])
    div = ir.node("Div", [sub.outputs[0], sd])
    old.replace_all_uses_with(div.outputs[0])
    g.insert_before(g[0], [sub, div])
    g.inputs[0] = raw
    return ir.to_proto(m)
""",
            {"ex5-visible"},
        ),
        # the right graph, but built by editing the caller's model in place
        (
            """
def with_standardization(model, mean, std):
    import numpy as np
    from onnx import helper, numpy_helper
    graph = model.graph
    name = graph.input[0].name
    for node in graph.node:
        for i, value in enumerate(node.input):
            if value == name:
                node.input[i] = name + "_std"
    graph.initializer.extend([numpy_helper.from_array(np.asarray(mean, np.float32), "mu_" + str(len(graph.initializer))),
                              numpy_helper.from_array(np.asarray(std, np.float32), "sd_" + str(len(graph.initializer)))])
    mu, sd = graph.initializer[-2].name, graph.initializer[-1].name
    nodes = [helper.make_node("Sub", [name, mu], [name + "_c"]), helper.make_node("Div", [name + "_c", sd], [name + "_std"])]
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    return model
""",
            {"ex5-hidden", "ex5-visible"},
        ),
    ],
    # the default export (only the batch dynamic); only the sequence dynamic
    "ex6-encoder": [
        (
            """
def export_encoder(model, tokens):
    from course import convert
    return convert.torch_to_onnx(model, tokens).model
""",
            {"ex6-hidden", "ex6-visible"},
        ),
        (
            """
def export_encoder(model, tokens):
    import torch
    from course import convert
    length = torch.export.Dim("length", min=2, max=512)
    return convert.torch_to_onnx(model, tokens, dynamic_shapes=({1: length},)).model
""",
            {"ex6-hidden", "ex6-visible"},
        ),
        # int32 token ids in the example: the exported input is int32, the int64 tokens are refused
        (
            """
def export_encoder(model, tokens):
    import torch
    shapes = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("length", min=2, max=512)},)
    example = tokens.to(torch.int32)
    return torch.onnx.export(model, (example,), dynamic_shapes=shapes, dynamo=True, verbose=False).model_proto
""",
            {"ex6-hidden", "ex6-visible"},
        ),
    ],
}
