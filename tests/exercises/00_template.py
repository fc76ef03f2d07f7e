"""Exercise self-tests for 00-template: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    "ex1-converters": """
def converters_needed(n_frameworks, n_runtimes, hub):
    if hub:
        return int(n_frameworks) + int(n_runtimes)
    return int(sum(n_runtimes for _ in range(n_frameworks)))
""",
    "ex2-export": """
def export_pipeline(pipeline, n_features):
    import numpy as np
    from skl2onnx import to_onnx
    sample = np.zeros((1, n_features), dtype=np.float32)
    return to_onnx(pipeline, sample, options={id(pipeline.steps[-1][1]): {"zipmap": False}})
""",
}

WRONG = {
    # the classic mix-up, and forgetting the hub case entirely
    "ex1-converters": [
        "def converters_needed(n_frameworks, n_runtimes, hub):\n    return n_frameworks * n_runtimes if hub else n_frameworks + n_runtimes\n",
        "def converters_needed(n_frameworks, n_runtimes, hub):\n    return n_frameworks * n_runtimes\n",
    ],
    # ZipMap left on (probabilities become a list of dicts); a fixed batch of one
    "ex2-export": [
        "def export_pipeline(pipeline, n_features):\n    import numpy as np\n    from skl2onnx import to_onnx\n    return to_onnx(pipeline, np.zeros((1, n_features), dtype=np.float32))\n",
        "def export_pipeline(pipeline, n_features):\n    from skl2onnx import convert_sklearn\n    from skl2onnx.common.data_types import FloatTensorType\n    return convert_sklearn(pipeline, initial_types=[('x', FloatTensorType([1, n_features]))], options={'zipmap': False})\n",
    ],
}
