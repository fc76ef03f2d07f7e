"""Exercise self-tests for 05-other-formats: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    # script, then freeze, then a save/load round trip through a file
    "ex1-export": [
        """
def export_torchscript(module, example):
    import tempfile, os
    frozen = torch.jit.freeze(torch.jit.script(module.eval()))
    path = os.path.join(tempfile.mkdtemp(), "m.pt")
    torch.jit.save(frozen, path)
    return torch.jit.load(path)
""",
        # a copy scripted, then eval() on the ScriptModule: the caller's module untouched
        """
def export_torchscript(module, example):
    import copy
    return torch.jit.script(copy.deepcopy(module)).eval()
""",
    ],
    # wildcard namespace lookups ({*}) and a dict from names to columns
    "ex2-evaluate": [
        """
def evaluate_regression_pmml(pmml_text, X):
    import xml.etree.ElementTree as ElementTree
    root = ElementTree.fromstring(pmml_text)
    schema = root.find("{*}RegressionModel/{*}MiningSchema")
    target = [f.get("name") for f in schema if f.get("usageType") in ("target", "predicted")]
    names = [f.get("name") for f in root.iterfind("{*}DataDictionary/{*}DataField")]
    column = {name: i for i, name in enumerate(n for n in names if n not in target)}
    table = root.find("{*}RegressionModel/{*}RegressionTable")
    X = np.array(X, dtype=float)
    y = np.zeros(X.shape[0]) + float(table.attrib.get("intercept", "0"))
    for p in table.iterfind("{*}NumericPredictor"):
        y = y + float(p.attrib["coefficient"]) * np.power(X[:, column[p.attrib["name"]]],
                                                          float(p.attrib.get("exponent", "1")))
    return y
""",
        # local tag names from one pass over the tree; coefficient and exponent vectors and a matrix product
        """
def evaluate_regression_pmml(pmml_text, X):
    def local(tag):
        return tag.rsplit("}", 1)[-1]

    root = ET.fromstring(pmml_text)
    found = {}
    for element in root.iter():
        found.setdefault(local(element.tag), []).append(element)
    targets = {
        f.get("name") for f in found.get("MiningField", []) if f.get("usageType") in ("predicted", "target")
    }
    columns = [f.get("name") for f in found["DataField"] if f.get("name") not in targets]
    (table,) = found["RegressionTable"]
    coef, power = np.zeros(len(columns)), np.ones(len(columns))
    for p in table:
        if local(p.tag) == "NumericPredictor":
            j = columns.index(p.get("name"))
            coef[j] = float(p.get("coefficient"))
            power[j] = float(p.get("exponent", "1"))
    X = np.asarray(X, dtype=np.float64)
    return float(table.get("intercept", "0")) + (X**power) @ coef
""",
    ],
    # signature runner API, quantization by hand with int8 clipping via np.clip on an int array
    "ex3-run": [
        """
def run_int8_tflite(model_content, X):
    interp = Interpreter(model_content=model_content)
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], list(X.shape), strict=False)
    interp.allocate_tensors()
    s_in, z_in = detail["quantization_parameters"]["scales"][0], detail["quantization_parameters"]["zero_points"][0]
    q = np.clip(np.rint(X / s_in).astype(np.int32) + int(z_in), -128, 127).astype(np.int8)
    interp.set_tensor(detail["index"], q)
    interp.invoke()
    out = interp.get_output_details()[0]
    s_out, z_out = out["quantization"]
    return ((interp.get_tensor(out["index"]).astype(np.int32) - z_out) * s_out).astype(np.float32)
""",
        # the signature runner (it resizes the input itself), quantization in float64
        """
def run_int8_tflite(model_content, X):
    runner = Interpreter(model_content=model_content).get_signature_runner()
    ((in_name, in_detail),) = runner.get_input_details().items()
    scale, zero = in_detail["quantization"]
    x = np.asarray(X, dtype=np.float64)
    q = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    outputs = runner(**{in_name: q})
    ((out_name, out_detail),) = runner.get_output_details().items()
    scale, zero = out_detail["quantization"]
    return ((outputs[out_name].astype(np.float32) - zero) * scale).astype(np.float32)
""",
    ],
    # per-layer list, summed at the end
    "ex4-bytes": [
        """
def parameter_bytes(layer_shapes, quantized, min_elements=1024):
    sizes = []
    for n_in, n_out in layer_shapes:
        count = n_in * n_out
        per_weight = 1 if (quantized and count >= min_elements) else 4
        sizes.append(count * per_weight + 4 * n_out)
    return int(sum(sizes))
""",
        # vectorised with NumPy: a (layers, 2) array, bytes per weight by np.where
        """
def parameter_bytes(layer_shapes, quantized, min_elements=1024):
    shapes = np.array(layer_shapes, dtype=np.int64).reshape(-1, 2)
    weights = shapes[:, 0] * shapes[:, 1]
    per_weight = np.where(bool(quantized) & (weights >= min_elements), 1, 4)
    return int((weights * per_weight).sum() + 4 * shapes[:, 1].sum())
""",
    ],
}

WRONG = {
    "ex1-export": [
        # the colleague's export: tracing keeps only the branch the example took
        (
            "def export_torchscript(module, example):\n    return torch.jit.trace(module, example)\n",
            {"ex1-other-module", "ex1-raw"},
        ),
        # tracing with a raw example: now the other branch is baked in
        (
            "def export_torchscript(module, example):\n"
            "    return torch.jit.trace(module, example * 16 + 1)\n",
            {"ex1-other-module", "ex1-raw", "ex1-roundtrip"},
        ),
        # the eager module returned as it is: not TorchScript, nothing to save
        (
            """def export_torchscript(module, example):
    return module.eval()
""",
            {"ex1-other-module", "ex1-raw", "ex1-roundtrip"},
        ),
    ],
    "ex2-evaluate": [
        # predictors matched to columns by position, not by name
        (
            "def evaluate_regression_pmml(pmml_text, X):\n"
            "    root = ET.fromstring(pmml_text)\n"
            "    table = root.find('{*}RegressionModel/{*}RegressionTable')\n"
            "    X = np.asarray(X, dtype=np.float64)\n"
            "    y = np.full(len(X), float(table.get('intercept')))\n"
            "    for j, p in enumerate(table.findall('{*}NumericPredictor')):\n"
            "        y += float(p.get('coefficient')) * X[:, j] ** float(p.get('exponent', 1))\n"
            "    return y\n",
            {"ex2-exponent", "ex2-order"},
        ),
        # the exponent attribute ignored, as sklearn-pmml-model does
        (
            "def evaluate_regression_pmml(pmml_text, X):\n"
            "    root = ET.fromstring(pmml_text)\n"
            "    fields = [f.get('name') for f in root.iter() if f.tag.endswith('DataField')][:-1]\n"
            "    table = next(e for e in root.iter() if e.tag.endswith('RegressionTable'))\n"
            "    X = np.asarray(X, dtype=np.float64)\n"
            "    y = np.full(len(X), float(table.get('intercept')))\n"
            "    for p in table:\n"
            "        y += float(p.get('coefficient')) * X[:, fields.index(p.get('name'))]\n"
            "    return y\n",
            {"ex2-exponent"},
        ),
        # the PMML 4.4 namespace hard-coded
        (
            "def evaluate_regression_pmml(pmml_text, X):\n"
            "    ns = {'p': 'http://www.dmg.org/PMML-4_4'}\n"
            "    root = ET.fromstring(pmml_text)\n"
            "    fields = [f.get('name') for f in root.findall('p:DataDictionary/p:DataField', ns)][:-1]\n"
            "    table = root.find('p:RegressionModel/p:RegressionTable', ns)\n"
            "    X = np.asarray(X, dtype=np.float64)\n"
            "    y = np.full(len(X), float(table.get('intercept')))\n"
            "    for p in table.findall('p:NumericPredictor', ns):\n"
            "        y += float(p.get('coefficient')) * X[:, fields.index(p.get('name'))] ** float(p.get('exponent', 1))\n"
            "    return y\n",
            {"ex2-exponent", "ex2-order"},
        ),
        # columns taken in MiningSchema order instead of DataDictionary order
        (
            "def evaluate_regression_pmml(pmml_text, X):\n    import numpy as np\n    root = ET.fromstring(pmml_text)\n    ns = root.tag.split('}')[0] + '}' if root.tag.startswith('{') else ''\n    model = root.find(ns + 'RegressionModel')\n    fields = model.find(ns + 'MiningSchema').findall(ns + 'MiningField')\n    columns = [f.get('name') for f in fields if f.get('usageType') not in ('predicted', 'target')]\n    table = model.find(ns + 'RegressionTable')\n    X = np.asarray(X, dtype=np.float64)\n    out = np.full(len(X), float(table.get('intercept', 0)))\n    for p in table.findall(ns + 'NumericPredictor'):\n        out += float(p.get('coefficient')) * X[:, columns.index(p.get('name'))] ** float(p.get('exponent', 1))\n    return out\n",
            {"ex2-exponent"},
        ),
    ],
    "ex3-run": [
        # float pixels fed to the int8 input: LiteRT refuses the dtype
        (
            "def run_int8_tflite(model_content, X):\n"
            "    interp = Interpreter(model_content=model_content)\n"
            "    d = interp.get_input_details()[0]\n"
            "    interp.resize_tensor_input(d['index'], X.shape)\n"
            "    interp.allocate_tensors()\n"
            "    interp.set_tensor(d['index'], X.astype(np.float32))\n"
            "    interp.invoke()\n"
            "    return interp.get_tensor(interp.get_output_details()[0]['index']).astype(np.float32)\n",
            {"ex3-batches", "ex3-parity", "ex3-runs"},
        ),
        # input quantized, but the output returned as raw int8 codes
        (
            "def run_int8_tflite(model_content, X):\n"
            "    interp = Interpreter(model_content=model_content)\n"
            "    d = interp.get_input_details()[0]\n"
            "    interp.resize_tensor_input(d['index'], X.shape)\n"
            "    interp.allocate_tensors()\n"
            "    s, z = d['quantization']\n"
            "    interp.set_tensor(d['index'], np.clip(np.round(X / s) + z, -128, 127).astype(np.int8))\n"
            "    interp.invoke()\n"
            "    return interp.get_tensor(interp.get_output_details()[0]['index']).astype(np.float32)\n",
            {"ex3-parity", "ex3-runs"},
        ),
        # no resize: the tensors stay allocated for a batch of one
        (
            "def run_int8_tflite(model_content, X):\n"
            "    interp = Interpreter(model_content=model_content)\n"
            "    interp.allocate_tensors()\n"
            "    d = interp.get_input_details()[0]\n"
            "    s, z = d['quantization']\n"
            "    interp.set_tensor(d['index'], np.clip(np.round(X / s) + z, -128, 127).astype(np.int8))\n"
            "    interp.invoke()\n"
            "    o = interp.get_output_details()[0]\n"
            "    so, zo = o['quantization']\n"
            "    return (so * (interp.get_tensor(o['index']).astype(np.float32) - zo)).astype(np.float32)\n",
            {"ex3-batches", "ex3-parity", "ex3-runs"},
        ),
        # no clipping: pixels above 1 wrap around int8
        (
            "def run_int8_tflite(model_content, X):\n    interpreter = Interpreter(model_content=model_content)\n    inp = interpreter.get_input_details()[0]\n    interpreter.resize_tensor_input(inp['index'], X.shape)\n    interpreter.allocate_tensors()\n    scale, zero = inp['quantization']\n    q = (np.round(np.asarray(X, dtype=np.float32) / scale) + zero).astype(np.int8)\n    interpreter.set_tensor(inp['index'], q)\n    interpreter.invoke()\n    out = interpreter.get_output_details()[0]\n    scale, zero = out['quantization']\n    return (scale * (interpreter.get_tensor(out['index']).astype(np.float32) - zero)).astype(np.float32)\n",
            {"ex3-parity"},
        ),
    ],
    "ex4-bytes": [
        # every weight matrix int8, however small
        (
            "def parameter_bytes(layer_shapes, quantized, min_elements=1024):\n"
            "    return int(sum(i * o * (1 if quantized else 4) + 4 * o for i, o in layer_shapes))\n",
            {"ex4-dynamic", "ex4-other-shapes"},
        ),
        # biases forgotten
        (
            "def parameter_bytes(layer_shapes, quantized, min_elements=1024):\n"
            "    return int(sum(i * o * (1 if quantized and i * o >= min_elements else 4)\n"
            "                   for i, o in layer_shapes))\n",
            {"ex4-dynamic", "ex4-float", "ex4-other-shapes"},
        ),
        # biases quantized to int8 along with the weights
        (
            "def parameter_bytes(layer_shapes, quantized, min_elements=1024):\n"
            "    total = 0\n"
            "    for i, o in layer_shapes:\n"
            "        q = quantized and i * o >= min_elements\n"
            "        total += (i * o + o) * (1 if q else 4)\n"
            "    return int(total)\n",
            {"ex4-dynamic", "ex4-other-shapes"},
        ),
    ],
}
