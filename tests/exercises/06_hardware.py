"""Exercise self-tests for 06-hardware: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    # the course's counter, filtered to the two operator types
    "ex1-flops": [
        """
def gemm_conv_flops(model, batch):
    from course import roofline
    cost = roofline.model_cost(model, batch)
    return {n.name: n.flops for n in cost.nodes if n.op_type in ("Gemm", "Conv")}
""",
        # the shapes measured by running the graph on zeros in onnx's reference evaluator
        """
def gemm_conv_flops(model, batch):
    import numpy as np
    from onnx.reference import ReferenceEvaluator
    weights = {t.name: tuple(t.dims) for t in model.graph.initializer}
    feeds = {}
    for inp in model.graph.input:
        if inp.name in weights:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else batch for d in inp.type.tensor_type.shape.dim]
        dims[0] = batch
        feeds[inp.name] = np.zeros(dims, np.float32)
    values = ReferenceEvaluator(model).run(None, feeds, intermediate=True)
    flops = {}
    for node in model.graph.node:
        if node.op_type not in ("Gemm", "Conv"):
            continue
        outputs = values[node.output[0]].size
        if node.op_type == "Conv":
            per_output = int(np.prod(weights[node.input[1]][1:]))
        else:
            a = values[node.input[0]].shape
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            per_output = a[0] if trans_a else a[1]
        bias = outputs if len(node.input) > 2 and node.input[2] else 0
        flops[node.name] = int(2 * outputs * per_output + bias)
    return flops
""",
    ],
    # dict.fromkeys keeps the preference order and drops duplicates; SessionOptions passed along
    "ex2-providers": [
        """
def pick_providers(preferred, available):
    cpu = "CPUExecutionProvider"
    kept = [p for p in dict.fromkeys(preferred) if p in set(available) and p != cpu]
    return kept + [cpu]


def open_session(model_path, preferred):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model_path), options, providers=pick_providers(preferred, ort.get_available_providers())
    )
""",
        # a tuple ordered by first mention; the session opened from the model's bytes
        """
def pick_providers(preferred, available):
    cpu = "CPUExecutionProvider"
    wanted = [p for p in preferred if p != cpu and p in available]
    return tuple(sorted(set(wanted), key=wanted.index)) + (cpu,)


def open_session(model_path, preferred):
    from pathlib import Path
    providers = list(pick_providers(preferred, ort.get_available_providers()))
    return ort.InferenceSession(Path(model_path).read_bytes(), providers=providers)
""",
    ],
    # a doubling search then bisection, with the asymptote checked first
    "ex3-roofline": [
        """
def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):
    memory = intensity * bandwidth_gbs
    return peak_gflops if memory >= peak_gflops else memory


def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):
    ridge = peak_gflops / bandwidth_gbs

    def reaches(m):
        return 2 * m * n * k >= ridge * itemsize * (m * k + k * n + m * n)

    if 2 * n * k <= ridge * itemsize * (k + n):
        return None
    hi = 1
    while not reaches(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return hi
""",
        # exact rational arithmetic (fractions) for the closed form; NumPy for the bound
        """
def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):
    return float(np.minimum(peak_gflops, np.multiply(intensity, bandwidth_gbs)))


def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):
    import math
    from fractions import Fraction
    r = Fraction(peak_gflops) / Fraction(bandwidth_gbs) * itemsize
    slope = 2 * n * k - r * (k + n)
    if slope <= 0:
        return None
    return max(1, math.ceil(r * k * n / slope))
""",
    ],
    # pandas, sorted by throughput
    "ex4-budget": [
        """
def pick_configuration(measured, p99_budget_ms):
    import pandas as pd
    rows = [
        {"key": key, "p99": np.percentile(v, 99), "throughput": key[0] * 1000 / np.median(v)}
        for key, v in measured.items()
    ]
    frame = pd.DataFrame(rows)
    ok = frame[frame["p99"] <= p99_budget_ms]
    if ok.empty:
        return None
    return ok.sort_values("throughput", ascending=False).iloc[0]["key"]
""",
        # vectorised: throughputs of the failing configurations masked to -inf, argmax
        """
def pick_configuration(measured, p99_budget_ms):
    keys = list(measured)
    p99 = np.array([np.percentile(measured[k], 99) for k in keys])
    throughput = np.array([k[0] / np.median(measured[k]) for k in keys])
    throughput = np.where(p99 <= p99_budget_ms, throughput, -np.inf)
    if not np.isfinite(throughput).any():
        return None
    return keys[int(np.argmax(throughput))]
""",
    ],
}

_FLOPS_HEAD = """
def gemm_conv_flops(model, batch):
    import math
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name for t in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name not in inits:
            inp.type.tensor_type.shape.dim[0].dim_value = batch
    m = onnx.shape_inference.infer_shapes(m)
    shapes = {t.name: tuple(t.dims) for t in m.graph.initializer}
    for vi in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        shapes.setdefault(vi.name, tuple(d.dim_value for d in vi.type.tensor_type.shape.dim))
    result = {}
    for node in m.graph.node:
        if node.op_type not in ("Gemm", "Conv"):
            continue
        y = shapes[node.output[0]]
        out = math.prod(y)
        bias = out if len(node.input) > 2 and node.input[2] else 0
        a = shapes[node.input[0]]
        gemm_k = a[0] if any(at.name == "transA" and at.i for at in node.attribute) else a[1]
"""

WRONG = {
    "ex1-flops": [
        # multiply-adds counted once (MACs, not FLOPs)
        (
            _FLOPS_HEAD
            + """
        if node.op_type == "Gemm":
            k = gemm_k
        else:
            k = math.prod(shapes[node.input[1]][1:])
        result[node.name] = out * k + bias
    return result
""",
            {"ex1-cnn", "ex1-gemm", "ex1-strided-grouped"},
        ),
        # groups ignored: all input channels counted for every output channel
        (
            _FLOPS_HEAD
            + """
        if node.op_type == "Gemm":
            k = gemm_k
        else:
            w = shapes[node.input[1]]
            k = shapes[node.input[0]][1] * math.prod(w[2:])
        result[node.name] = 2 * out * k + bias
    return result
""",
            {"ex1-strided-grouped"},
        ),
        # input spatial size used for the output (strides ignored)
        (
            _FLOPS_HEAD
            + """
        if node.op_type == "Gemm":
            result[node.name] = 2 * out * gemm_k + bias
        else:
            x, w = shapes[node.input[0]], shapes[node.input[1]]
            out_in = x[0] * w[0] * math.prod(x[2:])
            result[node.name] = 2 * out_in * math.prod(w[1:]) + (out_in if bias else 0)
    return result
""",
            {"ex1-strided-grouped"},
        ),
        # the bias forgotten
        (
            _FLOPS_HEAD
            + """
        if node.op_type == "Gemm":
            k = gemm_k
        else:
            k = math.prod(shapes[node.input[1]][1:])
        result[node.name] = 2 * out * k
    return result
""",
            {"ex1-cnn", "ex1-gemm"},
        ),
        # transA ignored: K read from the second dimension of A even when A is stored transposed
        (
            _FLOPS_HEAD
            + """
        if node.op_type == "Gemm":
            k = a[1]
        else:
            k = math.prod(shapes[node.input[1]][1:])
        result[node.name] = 2 * out * k + bias
    return result
""",
            {"ex1-gemm"},
        ),
        # every node with weights counted, MatMul included
        (
            _FLOPS_HEAD.replace('("Gemm", "Conv")', '("Gemm", "Conv", "MatMul")')
            + """
        if node.op_type == "Gemm":
            k = gemm_k
        elif node.op_type == "MatMul":
            k = shapes[node.input[0]][-1]
        else:
            k = math.prod(shapes[node.input[1]][1:])
        result[node.name] = 2 * out * k + bias
    return result
""",
            {"ex1-strided-grouped"},
        ),
    ],
    "ex2-providers": [
        # the colleague's code, unchanged in spirit: ask for everything, let ORT warn
        (
            "def pick_providers(preferred, available):\n"
            "    return list(preferred)\n\n\n"
            "def open_session(model_path, preferred):\n"
            "    return ort.InferenceSession(str(model_path), providers=list(preferred))\n",
            {"ex2-edge-cases", "ex2-pick", "ex2-session"},
        ),
        # the order of `available` instead of the preference
        (
            "def pick_providers(preferred, available):\n"
            "    chosen = [p for p in available if p in preferred and p != 'CPUExecutionProvider']\n"
            "    return chosen + ['CPUExecutionProvider']\n\n\n"
            "def open_session(model_path, preferred):\n"
            "    return ort.InferenceSession(str(model_path),\n"
            "        providers=pick_providers(preferred, ort.get_available_providers()))\n",
            {"ex2-pick"},
        ),
        # no CPU fallback appended
        (
            "def pick_providers(preferred, available):\n"
            "    return [p for p in preferred if p in available]\n\n\n"
            "def open_session(model_path, preferred):\n"
            "    return ort.InferenceSession(str(model_path),\n"
            "        providers=pick_providers(preferred, ort.get_available_providers()) or None)\n",
            {"ex2-edge-cases", "ex2-pick"},
        ),
        # a correct pick, but the session is still opened with the raw preference
        (
            "def pick_providers(preferred, available):\n"
            "    out = []\n"
            "    for p in preferred:\n"
            "        if p in available and p not in out and p != 'CPUExecutionProvider':\n"
            "            out.append(p)\n"
            "    return out + ['CPUExecutionProvider']\n\n\n"
            "def open_session(model_path, preferred):\n"
            "    return ort.InferenceSession(str(model_path), providers=list(preferred))\n",
            {"ex2-session"},
        ),
    ],
    "ex3-roofline": [
        # max instead of min, and a ridge upside down
        (
            "def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):\n"
            "    return max(peak_gflops, intensity * bandwidth_gbs)\n\n\n"
            "def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):\n"
            "    ridge = bandwidth_gbs / peak_gflops\n"
            "    m = 1\n"
            "    while 2 * m * n * k < ridge * itemsize * (m * k + k * n + m * n):\n"
            "        m += 1\n"
            "    return m\n",
            {"ex3-attainable", "ex3-batch"},
        ),
        # one batch too small (floor instead of ceiling)
        (
            "def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):\n"
            "    return min(peak_gflops, intensity * bandwidth_gbs)\n\n\n"
            "def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):\n"
            "    r = peak_gflops / bandwidth_gbs * itemsize\n"
            "    slope = 2 * n * k - r * (k + n)\n"
            "    if slope <= 0:\n"
            "        return None\n"
            "    return max(1, int(r * k * n // slope))\n",
            {"ex3-batch"},
        ),
        # the output M*N left out of the bytes: too optimistic an intensity
        (
            "def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):\n"
            "    return min(peak_gflops, intensity * bandwidth_gbs)\n\n\n"
            "def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):\n"
            "    ridge = peak_gflops / bandwidth_gbs\n"
            "    for m in range(1, 10**6):\n"
            "        if 2 * m * n * k >= ridge * itemsize * (m * k + k * n):\n"
            "            return m\n"
            "    return None\n",
            {"ex3-batch"},
        ),
        # the closed form in floats with nothing more: where the ridge is met exactly, the
        # rounded quotient lands a hair above the integer and the ceiling one batch too far
        (
            "def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):\n"
            "    return min(peak_gflops, intensity * bandwidth_gbs)\n\n\n"
            "def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):\n"
            "    import math\n"
            "    ridge = peak_gflops / bandwidth_gbs\n"
            "    slope = 2 * n * k - ridge * itemsize * (k + n)\n"
            "    if slope <= 0:\n"
            "        return None\n"
            "    return max(1, math.ceil(ridge * itemsize * k * n / slope))\n",
            {"ex3-batch"},
        ),
        # "reaches" read as "exceeds": a batch that meets the ridge exactly is skipped
        (
            "def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):\n"
            "    return min(peak_gflops, intensity * bandwidth_gbs)\n\n\n"
            "def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):\n"
            "    ridge = peak_gflops / bandwidth_gbs\n"
            "    if 2 * n * k <= ridge * itemsize * (k + n):\n"
            "        return None\n"
            "    m = 1\n"
            "    while 2 * m * n * k <= ridge * itemsize * (m * k + k * n + m * n):\n"
            "        m += 1\n"
            "    return m\n",
            {"ex3-batch"},
        ),
        # gives up at a fixed cap instead of recognising the asymptote
        (
            "def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):\n"
            "    return min(peak_gflops, intensity * bandwidth_gbs)\n\n\n"
            "def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):\n"
            "    ridge = peak_gflops / bandwidth_gbs\n"
            "    m = 1\n"
            "    while m < 4096 and 2 * m * n * k < ridge * itemsize * (m * k + k * n + m * n):\n"
            "        m += 1\n"
            "    return m\n",
            {"ex3-batch"},
        ),
    ],
    "ex4-budget": [
        # the median checked against the budget instead of the p99
        (
            "def pick_configuration(measured, p99_budget_ms):\n"
            "    ok = {k: v for k, v in measured.items() if np.median(v) <= p99_budget_ms}\n"
            "    if not ok:\n"
            "        return None\n"
            "    return max(ok, key=lambda k: k[0] / np.median(ok[k]))\n",
            {"ex4-tail", "ex4-visible"},
        ),
        # calls per second instead of samples per second (batch ignored)
        (
            "def pick_configuration(measured, p99_budget_ms):\n"
            "    ok = {k: v for k, v in measured.items() if np.percentile(v, 99) <= p99_budget_ms}\n"
            "    if not ok:\n"
            "        return None\n"
            "    return max(ok, key=lambda k: 1 / np.median(ok[k]))\n",
            {"ex4-tail", "ex4-visible"},
        ),
        # the mean instead of the p99
        (
            "def pick_configuration(measured, p99_budget_ms):\n"
            "    ok = {k: v for k, v in measured.items() if np.mean(v) <= p99_budget_ms}\n"
            "    if not ok:\n"
            "        return None\n"
            "    return max(ok, key=lambda k: k[0] / np.median(ok[k]))\n",
            {"ex4-tail", "ex4-visible"},
        ),
        # a p99 equal to the budget rejected
        (
            "def pick_configuration(measured, p99_budget_ms):\n"
            "    ok = {k: v for k, v in measured.items() if np.percentile(v, 99) < p99_budget_ms}\n"
            "    if not ok:\n"
            "        return None\n"
            "    return max(ok, key=lambda k: k[0] / np.median(ok[k]))\n",
            {"ex4-tail"},
        ),
        # the slowest call instead of the 99th percentile judged against the budget
        (
            "def pick_configuration(measured, p99_budget_ms):\n    ok = {k: v for k, v in measured.items() if np.max(v) <= p99_budget_ms}\n    if not ok:\n        return None\n    return max(ok, key=lambda k: k[0] / np.median(ok[k]))\n",
            {"ex4-tail"},
        ),
    ],
}
