"""Exercise self-tests for 01-interoperability: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    # sets built from the routes directly, keys in another order, counts cast to int
    "ex1-counts": [
        """
def converter_counts(routes):
    distinct = set(map(tuple, routes))
    frameworks = len({f for f, _ in routes})
    runtimes = len({r for _, r in routes})
    return {"hub": int(frameworks + runtimes), "direct": int(len(distinct))}
""",
        # order-keeping dedup with dict.fromkeys, NumPy's unique, NumPy int64 counts
        """
def converter_counts(routes):
    import numpy as np
    unique = list(dict.fromkeys(map(tuple, routes)))
    exporters = np.unique([f for f, _ in unique]).size
    importers = np.unique([r for _, r in unique]).size
    return dict(hub=np.int64(exporters + importers), direct=np.int64(len(unique)))
""",
    ],
    # to_onnx with an example array and a global zipmap option instead of convert_sklearn
    "ex2-export": [
        """
def export_with_preprocessing(scaler, classifier, n_features):
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.pipeline import make_pipeline
    example = np.zeros((1, n_features), dtype=np.float32)
    return to_onnx(make_pipeline(scaler, classifier), example, options={"zipmap": False})
""",
        # to_onnx with explicit initial types (skl2onnx refuses a named batch: TypeError), zipmap off by class, mixed opsets
        """
def export_with_preprocessing(scaler, classifier, n_features):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.pipeline import Pipeline
    steps = Pipeline(steps=[("prep", scaler), ("model", classifier)])
    return to_onnx(
        steps,
        initial_types=[("raw", FloatTensorType([None, n_features]))],
        options={type(classifier): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
""",
    ],
    # np.divide with an output dtype, the single output unpacked
    "ex3-predict": [
        """
def predict_digits(session, images):
    import numpy as np
    inp = session.get_inputs()[0]
    x = np.divide(images, 16, dtype=np.float32)
    (probabilities,) = session.run(None, {inp.name: x})
    return probabilities
""",
        # multiplication by the exact reciprocal 1/16, the output asked for by name
        """
def predict_digits(session, images):
    import numpy as np
    x = np.asarray(images).astype(np.float32) * np.float32(0.0625)
    out = session.get_outputs()[0].name
    return session.run([out], {session.get_inputs()[0].name: x})[0]
""",
    ],
}

WRONG = {
    "ex1-counts": [
        # assumes every framework needs every runtime (a full grid)
        (
            "def converter_counts(routes):\n"
            "    fw = {f for f, _ in routes}\n"
            "    rt = {r for _, r in routes}\n"
            "    return {'direct': len(fw) * len(rt), 'hub': len(fw) + len(rt)}\n",
            {"ex1-duplicates", "ex1-sparse"},
        ),
        # counts a pair listed twice twice
        (
            "def converter_counts(routes):\n"
            "    fw = {f for f, _ in routes}\n"
            "    rt = {r for _, r in routes}\n"
            "    return {'direct': len(routes), 'hub': len(fw) + len(rt)}\n",
            {"ex1-duplicates", "ex1-sparse"},
        ),
        # swaps the two answers
        (
            "def converter_counts(routes):\n"
            "    pairs = set(routes)\n"
            "    fw = {f for f, _ in pairs}\n"
            "    rt = {r for _, r in pairs}\n"
            "    return {'direct': len(fw) + len(rt), 'hub': len(pairs)}\n",
            {"ex1-duplicates", "ex1-grid", "ex1-sparse"},
        ),
        # a tool on both sides counted once: the hub as the union of names
        (
            "def converter_counts(routes):\n    pairs = set(routes)\n    names = {f for f, _ in pairs} | {r for _, r in pairs}\n    return {'direct': len(pairs), 'hub': len(names)}\n",
            {"ex1-sparse"},
        ),
    ],
    "ex2-export": [
        # the scaler is left behind (section 2.4's mistake)
        (
            "def export_with_preprocessing(scaler, classifier, n_features):\n"
            "    import numpy as np\n"
            "    from skl2onnx import to_onnx\n"
            "    x = np.zeros((1, n_features), dtype=np.float32)\n"
            "    return to_onnx(classifier, x, options={'zipmap': False})\n",
            {"ex2-other-models", "ex2-parity"},
        ),
        # ZipMap left on: the probabilities come back as a list of dicts
        (
            "def export_with_preprocessing(scaler, classifier, n_features):\n"
            "    import numpy as np\n"
            "    from skl2onnx import to_onnx\n"
            "    from sklearn.pipeline import make_pipeline\n"
            "    x = np.zeros((1, n_features), dtype=np.float32)\n"
            "    return to_onnx(make_pipeline(scaler, classifier), x)\n",
            {"ex2-other-models", "ex2-parity"},
        ),
        # the batch size frozen to 1
        (
            "def export_with_preprocessing(scaler, classifier, n_features):\n"
            "    from skl2onnx import convert_sklearn\n"
            "    from skl2onnx.common.data_types import FloatTensorType\n"
            "    from sklearn.pipeline import make_pipeline\n"
            "    return convert_sklearn(make_pipeline(scaler, classifier),\n"
            "                           initial_types=[('x', FloatTensorType([1, n_features]))],\n"
            "                           options={'zipmap': False})\n",
            {"ex2-other-models", "ex2-parity", "ex2-structure"},
        ),
    ],
    "ex3-predict": [
        # fixes the crash (name, dtype) but not the scaling: silently wrong
        (
            "def predict_digits(session, images):\n"
            "    import numpy as np\n"
            "    name = session.get_inputs()[0].name\n"
            "    return session.run(None, {name: np.asarray(images, dtype=np.float32)})[0]\n",
            {"ex3-float64", "ex3-parity"},
        ),
        # scales like 8-bit camera images instead of 0-16 intensities
        (
            "def predict_digits(session, images):\n"
            "    import numpy as np\n"
            "    name = session.get_inputs()[0].name\n"
            "    x = np.asarray(images, dtype=np.float32) / 255\n"
            "    return session.run(None, {name: x})[0]\n",
            {"ex3-float64", "ex3-parity"},
        ),
        # scales correctly but feeds float64: the runtime refuses the dtype
        (
            "def predict_digits(session, images):\n"
            "    name = session.get_inputs()[0].name\n"
            "    return session.run(None, {name: images / 16.0})[0]\n",
            {"ex3-float64", "ex3-parity", "ex3-runs"},
        ),
        # scales by the batch's brightest pixel instead of the training range 0-16
        (
            "def predict_digits(session, images):\n    import numpy as np\n    x = np.asarray(images, dtype=np.float32)\n    x = x / x.max()\n    return session.run(None, {session.get_inputs()[0].name: x})[0]\n",
            {"ex3-float64"},
        ),
    ],
}
