"""Exercise self-tests for 04-onnx-runtime: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    # defaults left implicit (ALL and sequential are ORT's defaults), os.fspath, keyword options
    "ex1-session": [
        """
def serving_session(model_path, optimized_path):
    opts = ort.SessionOptions()
    for key, value in {"intra_op_num_threads": 1, "inter_op_num_threads": 1, "log_severity_level": 3}.items():
        setattr(opts, key, value)
    opts.optimized_model_filepath = os.fspath(optimized_path)
    return ort.InferenceSession(os.fspath(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
""",
        # the model as bytes, the enums built from their values, a tuple of providers
        """
def serving_session(model_path, optimized_path):
    from pathlib import Path
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel(99)  # ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode(0)  # ORT_SEQUENTIAL
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.optimized_model_filepath = str(Path(optimized_path))
    return ort.InferenceSession(
        Path(model_path).read_bytes(), sess_options=options, providers=("CPUExecutionProvider",)
    )
""",
    ],
    # the whole calibration set as one batch, no pre-processing, per-tensor, 50 images
    "ex2-quantize": [
        """
class ImageCalibrationReader(CalibrationDataReader):
    def __init__(self, images, input_name):
        self.feed = {input_name: np.asarray(images, dtype=np.float32).reshape(-1, 1, 8, 8)}
        self.done = False

    def get_next(self):
        if self.done:
            return None
        self.done = True
        return self.feed


def quantize_cnn(model_path, out_path, images):
    quantize_static(
        str(model_path), str(out_path), ImageCalibrationReader(images[:50], "input"),
        quant_format=QuantFormat.QDQ,
    )
""",
        # batches of 16 from array_split in a generator; keyword arguments, uint8 activations, the input name read from the model
        """
class ImageCalibrationReader(CalibrationDataReader):
    def __init__(self, images, input_name):
        x = np.asarray(images, np.float32).reshape(len(images), 1, 8, 8)
        parts = np.array_split(x, max(1, -(-len(x) // 16)))
        self._batches = ({input_name: part} for part in parts)

    def get_next(self):
        return next(self._batches, None)


def quantize_cnn(model_path, out_path, images):
    from onnxruntime.quantization import CalibrationMethod, QuantType
    name = onnx.load(str(model_path)).graph.input[0].name
    quantize_static(
        model_input=model_path,
        model_output=out_path,
        calibration_data_reader=ImageCalibrationReader(images, name),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
""",
    ],
    # a temporary file, options passed by keyword
    "ex3-fused": [
        """
def nodes_fused(model_path, level):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "optimized.onnx")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = level
        so.optimized_model_filepath = out
        ort.InferenceSession(str(model_path), sess_options=so, providers=["CPUExecutionProvider"])
        return len(onnx.load(str(model_path)).graph.node) - len(onnx.load(out).graph.node)
""",
        # the model loaded once and handed over as bytes; mkstemp, removed afterwards
        """
def nodes_fused(model_path, level):
    import tempfile
    original = onnx.load(str(model_path))
    handle, out = tempfile.mkstemp(suffix=".onnx")
    os.close(handle)
    try:
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        so.optimized_model_filepath = out
        so.log_severity_level = 3
        ort.InferenceSession(original.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return len(original.graph.node) - len(onnx.load(out).graph.node)
    finally:
        os.remove(out)
""",
    ],
    # a different valid method: the ratio of the two medians' own bootstrap intervals (conservative)
    "ex4-decide": [
        """
def _median_ci(x, seed):
    x = np.asarray(x, dtype=float)
    rng = np.random.default_rng(seed)
    meds = np.median(x[rng.integers(0, len(x), size=(4000, len(x)))], axis=1)
    return np.quantile(meds, 0.025), np.quantile(meds, 0.975)


def speedup_interval(baseline_ms, candidate_ms):
    b_lo, b_hi = _median_ci(baseline_ms, 7)
    c_lo, c_hi = _median_ci(candidate_ms, 8)
    return b_lo / c_hi, b_hi / c_lo


def verdict(baseline_ms, candidate_ms):
    low, high = speedup_interval(baseline_ms, candidate_ms)
    return "faster" if low > 1 else "slower" if high < 1 else "no measurable difference"
""",
        # the basic (pivotal) bootstrap interval instead of the percentile one, another seed
        """
def speedup_interval(baseline_ms, candidate_ms):
    b = np.asarray(baseline_ms, dtype=np.float64)
    c = np.asarray(candidate_ms, dtype=np.float64)
    rng = np.random.default_rng(12345)
    point = np.median(b) / np.median(c)
    ratios = np.array([
        np.median(rng.choice(b, b.size)) / np.median(rng.choice(c, c.size)) for _ in range(3000)
    ])
    q_low, q_high = np.percentile(ratios, [2.5, 97.5])
    return 2 * point - q_high, 2 * point - q_low


def verdict(baseline_ms, candidate_ms):
    low, high = speedup_interval(baseline_ms, candidate_ms)
    if high < 1:
        return "slower"
    return "faster" if low > 1 else "no measurable difference"
""",
    ],
    # NumPy all the way (claim_holds is a numpy.bool_), the baseline chosen by sorting
    "ex5-audit": [
        """
def audit_claim(times_s, baseline, candidate, claimed_speedup, n_samples):
    t = np.array([times_s[baseline], times_s[candidate]], dtype=np.float64)
    per_sample = t / n_samples * 1e3
    measured = per_sample[0] / per_sample[1]
    error = np.float64(claimed_speedup) / measured - 1
    return dict(
        speedup=measured,
        baseline_ms_per_sample=per_sample[0],
        candidate_ms_per_sample=per_sample[1],
        relative_error=error,
        claim_holds=np.abs(error) <= 0.05,
    )


def best_baseline(times_s, candidate, claimed_speedup):
    ranked = sorted(
        (abs(claimed_speedup * times_s[candidate] / t - 1), name)
        for name, t in times_s.items()
        if name != candidate
    )
    return ranked[0][1] if ranked and ranked[0][0] <= 0.05 else None
""",
        # the error from the time ratio directly; the best baseline kept in a loop
        """
def audit_claim(times_s, baseline, candidate, claimed_speedup, n_samples):
    tb, tc = float(times_s[baseline]), float(times_s[candidate])
    error = claimed_speedup * tc / tb - 1
    return {
        "claim_holds": abs(error) <= 0.05,
        "relative_error": error,
        "speedup": tb / tc,
        "baseline_ms_per_sample": tb * 1000 / n_samples,
        "candidate_ms_per_sample": tc * 1000 / n_samples,
    }


def best_baseline(times_s, candidate, claimed_speedup):
    best, best_error = None, None
    for name in times_s:
        if name == candidate:
            continue
        report = audit_claim(times_s, name, candidate, claimed_speedup, 1)
        if report["claim_holds"] and (best is None or abs(report["relative_error"]) < best_error):
            best, best_error = name, abs(report["relative_error"])
    return best
""",
    ],
}

_EX2_READER = """
class ImageCalibrationReader(CalibrationDataReader):
    def __init__(self, images, input_name):
        self.feeds = iter([{input_name: np.asarray(img, np.float32).reshape(1, 1, 8, 8)} for img in images])

    def get_next(self):
        return next(self.feeds, None)
"""

_EX3_FIXED_OPTIONS = """
def nodes_fused(model_path, level):
    out = str(WORK / "ex3-optimized.onnx")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = level
    so.optimized_model_filepath = out
    ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    before = len(onnx.load(str(model_path)).graph.node)
    after = len(onnx.load(out).graph.node)
    return {result}
"""

WRONG = {
    "ex1-session": [
        # the optimised graph is never saved
        (
            "def serving_session(model_path, optimized_path):\n    so = ort.SessionOptions()\n    so.intra_op_num_threads = 1\n    so.inter_op_num_threads = 1\n    so.log_severity_level = 3\n    return ort.InferenceSession(str(model_path), so, providers=['CPUExecutionProvider'])\n",
            {"ex1-saved"},
        ),
        # threads left at ORT's default (0: one per core)
        (
            "def serving_session(model_path, optimized_path):\n    so = ort.SessionOptions()\n    so.optimized_model_filepath = str(optimized_path)\n    so.log_severity_level = 3\n    return ort.InferenceSession(str(model_path), so, providers=['CPUExecutionProvider'])\n",
            {"ex1-options"},
        ),
        # extended instead of all
        (
            "def serving_session(model_path, optimized_path):\n    so = ort.SessionOptions()\n    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED\n    so.optimized_model_filepath = str(optimized_path)\n    so.intra_op_num_threads = 1\n    so.inter_op_num_threads = 1\n    so.log_severity_level = 3\n    return ort.InferenceSession(str(model_path), so, providers=['CPUExecutionProvider'])\n",
            {"ex1-options"},
        ),
    ],
    "ex2-quantize": [
        # flat vectors: the CNN wants N x 1 x 8 x 8
        (
            "class ImageCalibrationReader(CalibrationDataReader):\n    def __init__(self, images, input_name):\n        self.feeds = iter([{input_name: images[i:i + 1]} for i in range(len(images))])\n\n    def get_next(self):\n        return next(self.feeds, None)\n\n\ndef quantize_cnn(model_path, out_path, images):\n    quantize_static(str(model_path), str(out_path), ImageCalibrationReader(images, 'input'))\n",
            {"ex2-model", "ex2-reader"},
        ),
        # dynamic quantization: no calibration, no QDQ nodes
        (
            _EX2_READER
            + "\n\ndef quantize_cnn(model_path, out_path, images):\n    quantize_dynamic(str(model_path), str(out_path), weight_type=QuantType.QInt8)\n",
            {"ex2-model"},
        ),
        # the calibration images as 8-bit pixels (0-255): accuracy collapses
        (
            "class ImageCalibrationReader(CalibrationDataReader):\n    def __init__(self, images, input_name):\n        pixels = np.asarray(images, np.float32).reshape(-1, 1, 1, 8, 8) * 255\n        self.feeds = iter([{input_name: p} for p in pixels])\n\n    def get_next(self):\n        return next(self.feeds, None)\n\n\ndef quantize_cnn(model_path, out_path, images):\n    quantize_static(str(model_path), str(out_path), ImageCalibrationReader(images, 'input'))\n",
            {"ex2-model", "ex2-reader"},
        ),
        # QOperator format: QLinearConv instead of QDQ pairs
        (
            _EX2_READER
            + "\n\ndef quantize_cnn(model_path, out_path, images):\n    quantize_static(str(model_path), str(out_path), ImageCalibrationReader(images, 'input'), quant_format=QuantFormat.QOperator)\n",
            {"ex2-model"},
        ),
    ],
    "ex3-fused": [
        # the colleague's code as given
        (
            "def nodes_fused(model_path, level):\n    out = str(WORK / 'ex3-optimized.onnx')\n    so = ort.SessionOptions()\n    session = ort.InferenceSession(str(model_path), so, providers=['CPUExecutionProvider'])\n    so.graph_optimization_level = level\n    so.optimized_model_filepath = out\n    before = len(onnx.load(str(model_path)).graph.node)\n    after = len(onnx.load(out).graph.node)\n    return after - before\n",
            {"ex3-levels", "ex3-mlp"},
        ),
        # options fixed, the sign not
        (_EX3_FIXED_OPTIONS.format(result="after - before"), {"ex3-levels", "ex3-mlp"}),
        # the level is never applied (ORT's default, all, every time)
        (
            "def nodes_fused(model_path, level):\n    out = str(WORK / 'ex3-optimized.onnx')\n    so = ort.SessionOptions()\n    so.log_severity_level = 3\n    so.optimized_model_filepath = out\n    ort.InferenceSession(str(model_path), so, providers=['CPUExecutionProvider'])\n    return len(onnx.load(str(model_path)).graph.node) - len(onnx.load(out).graph.node)\n",
            {"ex3-levels"},
        ),
        # counts the fused operators the optimiser added instead of the nodes it removed
        (
            "def nodes_fused(model_path, level):\n    out = str(WORK / 'ex3-optimized.onnx')\n    so = ort.SessionOptions()\n    so.graph_optimization_level = level\n    so.optimized_model_filepath = out\n    so.log_severity_level = 3\n    ort.InferenceSession(str(model_path), so, providers=['CPUExecutionProvider'])\n    return sum(n.op_type.startswith('Fused') for n in onnx.load(out).graph.node)\n",
            {"ex3-levels"},
        ),
    ],
    "ex4-decide": [
        # means, no interval: noise and outliers decide
        (
            "def speedup_interval(baseline_ms, candidate_ms):\n    r = np.mean(baseline_ms) / np.mean(candidate_ms)\n    return r * 0.95, r * 1.05\n\n\ndef verdict(baseline_ms, candidate_ms):\n    return 'faster' if np.mean(candidate_ms) < np.mean(baseline_ms) else 'slower'\n",
            {"ex4-verdict"},
        ),
        # the ratio upside down (candidate / baseline)
        (
            "def speedup_interval(baseline_ms, candidate_ms):\n    rng = np.random.default_rng(0)\n    b, c = np.asarray(baseline_ms), np.asarray(candidate_ms)\n    r = [np.median(rng.choice(c, len(c))) / np.median(rng.choice(b, len(b))) for _ in range(1000)]\n    return tuple(np.quantile(r, [0.025, 0.975]))\n\n\ndef verdict(baseline_ms, candidate_ms):\n    low, high = speedup_interval(baseline_ms, candidate_ms)\n    return 'faster' if low > 1 else 'slower' if high < 1 else 'no measurable difference'\n",
            {"ex4-interval", "ex4-verdict"},
        ),
        # medians compared, the interval ignored
        (
            "def speedup_interval(baseline_ms, candidate_ms):\n    r = np.median(baseline_ms) / np.median(candidate_ms)\n    return r, r\n\n\ndef verdict(baseline_ms, candidate_ms):\n    return 'faster' if np.median(candidate_ms) < np.median(baseline_ms) else 'slower'\n",
            {"ex4-verdict"},
        ),
    ],
    "ex5-audit": [
        # 5% of the claim instead of the measurement
        (
            'def audit_claim(times_s, baseline, candidate, claimed_speedup, n_samples):\n    speedup = times_s[baseline] / times_s[candidate]\n    error = (claimed_speedup - speedup) / claimed_speedup\n    return {\n        "speedup": speedup,\n        "baseline_ms_per_sample": 1000 * times_s[baseline] / n_samples,\n        "candidate_ms_per_sample": 1000 * times_s[candidate] / n_samples,\n        "relative_error": error,\n        "claim_holds": abs(error) <= 0.05,\n    }\n\n\ndef best_baseline(times_s, candidate, claimed_speedup):\n    fits = {n: abs(claimed_speedup * times_s[candidate] / t - 1) for n, t in times_s.items() if n != candidate}\n    fits = {n: e for n, e in fits.items() if e <= 0.05}\n    return min(fits, key=fits.get) if fits else None\n',
            {"ex5-ratios"},
        ),
        # speed-up upside down (candidate / baseline)
        (
            'def audit_claim(times_s, baseline, candidate, claimed_speedup, n_samples):\n    speedup = times_s[candidate] / times_s[baseline]\n    error = (claimed_speedup - speedup) / speedup\n    return {\n        "speedup": speedup,\n        "baseline_ms_per_sample": 1000 * times_s[baseline] / n_samples,\n        "candidate_ms_per_sample": 1000 * times_s[candidate] / n_samples,\n        "relative_error": error,\n        "claim_holds": abs(error) <= 0.05,\n    }\n\n\ndef best_baseline(times_s, candidate, claimed_speedup):\n    fits = {n: abs(claimed_speedup * times_s[candidate] / t - 1) for n, t in times_s.items() if n != candidate}\n    fits = {n: e for n, e in fits.items() if e <= 0.05}\n    return min(fits, key=fits.get) if fits else None\n',
            {"ex5-bert", "ex5-ratios"},
        ),
        # the first baseline that fits, not the closest
        (
            'def audit_claim(times_s, baseline, candidate, claimed_speedup, n_samples):\n    speedup = times_s[baseline] / times_s[candidate]\n    error = (claimed_speedup - speedup) / speedup\n    return {\n        "speedup": speedup,\n        "baseline_ms_per_sample": 1000 * times_s[baseline] / n_samples,\n        "candidate_ms_per_sample": 1000 * times_s[candidate] / n_samples,\n        "relative_error": error,\n        "claim_holds": abs(error) <= 0.05,\n    }\n\n\ndef best_baseline(times_s, candidate, claimed_speedup):\n    for name, t in times_s.items():\n        if name != candidate and abs(claimed_speedup * times_s[candidate] / t - 1) <= 0.05:\n            return name\n    return None\n',
            {"ex5-bert"},
        ),
        # hard-coded from the visible test
        (
            'def audit_claim(times_s, baseline, candidate, claimed_speedup, n_samples):\n    speedup = times_s[baseline] / times_s[candidate]\n    error = (claimed_speedup - speedup) / speedup\n    return {\n        "speedup": speedup,\n        "baseline_ms_per_sample": 1000 * times_s[baseline] / n_samples,\n        "candidate_ms_per_sample": 1000 * times_s[candidate] / n_samples,\n        "relative_error": error,\n        "claim_holds": abs(error) <= 0.05,\n    }\n\n\ndef best_baseline(times_s, candidate, claimed_speedup):\n    return {3.0: "x", 2.0: "y"}.get(claimed_speedup)\n',
            {"ex5-bert"},
        ),
    ],
}
