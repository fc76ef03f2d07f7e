"""Exercise self-tests for 00-template: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    "ex1-converters": [
        """
def converters_needed(n_frameworks, n_runtimes, hub):
    if hub:
        return int(n_frameworks) + int(n_runtimes)
    return int(sum(n_runtimes for _ in range(n_frameworks)))
""",
        # the converters enumerated: one per (framework, runtime) pair, or one per tool
        """
def converters_needed(n_frameworks, n_runtimes, hub):
    import itertools
    frameworks, runtimes = range(n_frameworks), range(n_runtimes)
    if hub:
        return len([*frameworks, *runtimes])
    return len(list(itertools.product(frameworks, runtimes)))
""",
    ],
    "ex2-export": [
        """
def export_pipeline(pipeline, n_features):
    import numpy as np
    from skl2onnx import to_onnx
    sample = np.zeros((1, n_features), dtype=np.float32)
    return to_onnx(pipeline, sample, options={id(pipeline.steps[-1][1]): {"zipmap": False}})
""",
        # to_onnx with explicit initial types, ZipMap off by the classifier's class, opset 17
        """
def export_pipeline(pipeline, n_features):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    classifier = pipeline.steps[-1][1]
    return to_onnx(
        pipeline,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        options={type(classifier): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
""",
    ],
}

WRONG = {
    # the classic mix-up, and forgetting the hub case entirely
    "ex1-converters": [
        (
            "def converters_needed(n_frameworks, n_runtimes, hub):\n    return n_frameworks * n_runtimes if hub else n_frameworks + n_runtimes\n",
            {"ex1-hidden", "ex1-visible"},
        ),
        (
            "def converters_needed(n_frameworks, n_runtimes, hub):\n    return n_frameworks * n_runtimes\n",
            {"ex1-hidden"},
        ),
        # hard-coded to the visible test
        (
            """def converters_needed(n_frameworks, n_runtimes, hub):
    return 12
""",
            {"ex1-hidden"},
        ),
    ],
    # ZipMap left on (probabilities become a list of dicts); a fixed batch of one
    "ex2-export": [
        (
            "def export_pipeline(pipeline, n_features):\n    import numpy as np\n    from skl2onnx import to_onnx\n    return to_onnx(pipeline, np.zeros((1, n_features), dtype=np.float32))\n",
            {"ex2-hidden"},
        ),
        (
            "def export_pipeline(pipeline, n_features):\n    from skl2onnx import convert_sklearn\n    from skl2onnx.common.data_types import FloatTensorType\n    return convert_sklearn(pipeline, initial_types=[('x', FloatTensorType([1, n_features]))], options={'zipmap': False})\n",
            {"ex2-hidden"},
        ),
        # ZipMap's 'columns' mode: one output per class instead of a probability tensor
        (
            """def export_pipeline(pipeline, n_features):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    return convert_sklearn(pipeline, initial_types=[('x', FloatTensorType([None, n_features]))], options={'zipmap': 'columns'}, target_opset=18)
""",
            {"ex2-hidden"},
        ),
    ],
}
