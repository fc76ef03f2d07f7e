"""Exercise self-tests for 03-converting: other correct answers, and plausible wrong ones."""

ALTERNATIVES = {
    # Dim.DYNAMIC hints in the tuple form, a copy in eval mode, the file written and read back
    "ex1-export": [
        """
def export_tagger(model, example):
    import copy
    import tempfile
    from pathlib import Path
    import onnx
    import torch
    frozen = copy.deepcopy(model).eval()
    path = Path(tempfile.mkdtemp()) / "tagger.onnx"
    dynamic = torch.export.Dim.DYNAMIC
    program = torch.onnx.export(
        frozen, (example,), dynamic_shapes=({0: dynamic, 1: dynamic},), dynamo=True, verbose=False
    )
    program.save(path)
    return onnx.load(path)
""",
        # torch.export.export first, the ExportedProgram handed to the ONNX exporter
        """
def export_tagger(model, example):
    import torch
    model.eval()
    batch, seq = torch.export.Dim("b"), torch.export.Dim("s")
    program = torch.export.export(model, (example,), dynamic_shapes={"x": {0: batch, 1: seq}})
    return torch.onnx.export(program, dynamo=True, verbose=False).model_proto
""",
    ],
    # the SavedModel read by tf2onnx's loader, as the command line does
    "ex2-keras": [
        """
def keras_to_onnx(model, export_dir):
    import tf2onnx
    model.export(str(export_dir), verbose=False)
    graph_def, inputs, outputs, renames = tf2onnx.tf_loader.from_saved_model(
        str(export_dir), None, None, return_tensors_to_rename=True
    )
    proto, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=inputs, output_names=outputs, tensors_to_rename=renames, opset=17
    )
    return proto
""",
        # no SavedModel: a tf.function around the model in inference mode, traced by tf2onnx
        """
def keras_to_onnx(model, export_dir):
    import tensorflow as tf
    import tf2onnx
    n = int(model.inputs[0].shape[-1])
    spec = (tf.TensorSpec((None, n), tf.float32, name="x"),)

    @tf.function(input_signature=spec)
    def serve(x):
        return model(x, training=False)

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=17)
    return proto
""",
    ],
    # explicit initial types per column, ZipMap off for the classifier by id, ai.onnx.ml 2
    "ex3-convert": [
        """
def convert_table_pipeline(pipeline, sample):
    import pandas as pd
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    types = [
        (c, FloatTensorType([None, 1]) if pd.api.types.is_numeric_dtype(sample[c]) else StringTensorType([None, 1]))
        for c in sample.columns
    ]
    classifier = pipeline.steps[-1][1]
    return convert_sklearn(
        pipeline, initial_types=types, options={id(classifier): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 2},
    )
""",
        # to_onnx on one row, ZipMap switched off by the classifier's class, ai.onnx 16
        """
def convert_table_pipeline(pipeline, sample):
    from skl2onnx import to_onnx
    last = pipeline.steps[-1][1]
    return to_onnx(
        pipeline, sample.iloc[:1], options={type(last): {"zipmap": False}},
        target_opset={"": 16, "ai.onnx.ml": 3},
    )
""",
    ],
    # a copy in eval mode, a batch-3 example, a named dimension with a range
    "ex4-repair": [
        """
def repaired_export(model, X):
    import copy
    import torch
    frozen = copy.deepcopy(model).eval()
    example = torch.tensor(X[:3], dtype=torch.float32)
    rows = torch.export.Dim("rows", min=1, max=100000)
    return torch.onnx.export(
        frozen, (example,), dynamic_shapes=({0: rows},), dynamo=True, verbose=False
    ).model_proto
""",
        # inference mode by train(False), Dim.DYNAMIC in a list, a float32 tensor made by as_tensor
        """
def repaired_export(model, X):
    import torch
    model.train(False)
    example = torch.as_tensor(X[:4], dtype=torch.float32)
    return torch.onnx.export(
        model, (example,), dynamic_shapes=[{0: torch.export.Dim.DYNAMIC}], dynamo=True, verbose=False
    ).model_proto
""",
    ],
    "ex5-predict": [
        """
def predict_run(signature, batch, dtype):
    import numpy as np
    _, declared, dims = signature
    if np.dtype(dtype) != np.dtype(declared):
        return "wrong dtype"
    first = dims[0]
    return "runs" if not isinstance(first, int) or first == batch else "wrong shape"
""",
        # a verdict table over (dtype ok, shape ok), dtypes compared as strings
        """
def predict_run(signature, batch, dtype):
    _, declared, dims = signature
    dtype_ok = str(dtype) == str(declared)
    shape_ok = not isinstance(dims[0], int) or int(dims[0]) == int(batch)
    verdicts = {
        (True, True): "runs",
        (True, False): "wrong shape",
        (False, True): "wrong dtype",
        (False, False): "wrong dtype",
    }
    return verdicts[(dtype_ok, shape_ok)]
""",
    ],
}

WRONG = {
    "ex1-export": [
        # only the batch is dynamic: the sequence length stays 5
        (
            "def export_tagger(model, example):\n    import torch\n    model.eval()\n    return torch.onnx.export(model, (example,), dynamic_shapes={'x': {0: torch.export.Dim('batch')}}, dynamo=True, verbose=False).model_proto\n",
            {"ex1-hidden", "ex1-parity", "ex1-shape"},
        ),
        # no dynamic dimension at all
        (
            "def export_tagger(model, example):\n    import torch\n    model.eval()\n    return torch.onnx.export(model, (example,), dynamo=True, verbose=False).model_proto\n",
            {"ex1-hidden", "ex1-parity", "ex1-shape"},
        ),
        # the legacy exporter with the batch axis only
        (
            "def export_tagger(model, example):\n    import io\n    import onnx\n    import torch\n    model.eval()\n    buffer = io.BytesIO()\n    torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=['x'], dynamic_axes={'x': {0: 'batch'}})\n    return onnx.load_from_string(buffer.getvalue())\n",
            {"ex1-hidden", "ex1-parity", "ex1-shape"},
        ),
        # both dimensions dynamic with dynamo, but model.eval() forgotten: Dropout stays in training mode
        (
            "def export_tagger(model, example):\n    import torch\n    shapes = {'x': {0: torch.export.Dim('batch'), 1: torch.export.Dim('seq')}}\n    return torch.onnx.export(model, (example,), dynamic_shapes=shapes, dynamo=True, verbose=False).model_proto\n",
            {"ex1-hidden", "ex1-parity"},
        ),
    ],
    "ex2-keras": [
        # from_keras on a Keras 3 Sequential model: the KeyError
        (
            "def keras_to_onnx(model, export_dir):\n    import tensorflow as tf\n    import tf2onnx\n    n = model.inputs[0].shape[-1]\n    proto, _ = tf2onnx.convert.from_keras(model, input_signature=[tf.TensorSpec([None, n], tf.float32)], opset=17)\n    return proto\n",
            {"ex2-opset", "ex2-parity"},
        ),
        # a batch fixed at 1
        (
            "def keras_to_onnx(model, export_dir):\n    import tensorflow as tf\n    import tf2onnx\n    n = model.inputs[0].shape[-1]\n    proto, _ = tf2onnx.convert.from_function(tf.function(model), input_signature=[tf.TensorSpec([1, n], tf.float32, name='x')], opset=17)\n    return proto\n",
            {"ex2-opset", "ex2-parity"},
        ),
        # tf2onnx's default opset instead of 17
        (
            "def keras_to_onnx(model, export_dir):\n    import tensorflow as tf\n    import tf2onnx\n    n = model.inputs[0].shape[-1]\n    proto, _ = tf2onnx.convert.from_function(tf.function(model), input_signature=[tf.TensorSpec([None, n], tf.float32, name='x')])\n    return proto\n",
            {"ex2-opset"},
        ),
    ],
    "ex3-convert": [
        # ZipMap left on: probabilities come back as a list of dicts
        (
            "def convert_table_pipeline(pipeline, sample):\n    from skl2onnx import to_onnx\n    return to_onnx(pipeline, sample, target_opset={'': 17, 'ai.onnx.ml': 3})\n",
            {"ex3-opsets", "ex3-tensor"},
        ),
        # a newer opset than production reads
        (
            "def convert_table_pipeline(pipeline, sample):\n    from skl2onnx import to_onnx\n    return to_onnx(pipeline, sample, options={'zipmap': False}, target_opset=19)\n",
            {"ex3-opsets"},
        ),
        # every column declared with a batch of 1
        (
            "def convert_table_pipeline(pipeline, sample):\n    import pandas as pd\n    from skl2onnx import convert_sklearn\n    from skl2onnx.common.data_types import FloatTensorType, StringTensorType\n    types = [(c, FloatTensorType([1, 1]) if pd.api.types.is_numeric_dtype(sample[c]) else StringTensorType([1, 1])) for c in sample.columns]\n    return convert_sklearn(pipeline, initial_types=types, options={'zipmap': False}, target_opset={'': 17, 'ai.onnx.ml': 3})\n",
            {"ex3-opsets", "ex3-tensor"},
        ),
        # no target_opset: skl2onnx picks the newest opset some converters need
        (
            "def convert_table_pipeline(pipeline, sample):\n    from skl2onnx import to_onnx\n    return to_onnx(pipeline, sample, options={'zipmap': False})\n",
            {"ex3-opsets"},
        ),
    ],
    "ex4-repair": [
        # float32 and a dynamic batch, but still in training mode (a batch of 2 dodges batch norm's error)
        (
            "def repaired_export(model, X):\n    import torch\n    example = torch.from_numpy(X[:2].astype('float32'))\n    return torch.onnx.export(model, (example,), dynamic_shapes={'x': {0: torch.export.Dim('batch')}}, dynamo=True, verbose=False).model_proto\n",
            {"ex4-hidden", "ex4-parity"},
        ),
        # eval mode and float32, but the batch of 1 is baked in
        (
            "def repaired_export(model, X):\n    import torch\n    model.eval()\n    return torch.onnx.export(model, (torch.from_numpy(X[:1].astype('float32')),), dynamo=True, verbose=False).model_proto\n",
            {"ex4-hidden", "ex4-parity", "ex4-runs"},
        ),
        # eval mode and a dynamic batch, but a float64 example: the export succeeds, the model does not load
        (
            "def repaired_export(model, X):\n    import torch\n    model.eval()\n    return torch.onnx.export(model, (torch.from_numpy(X[:2]),), dynamic_shapes={'x': {0: torch.export.Dim('batch')}}, dynamo=True, verbose=False).model_proto\n",
            {"ex4-hidden", "ex4-parity", "ex4-runs"},
        ),
    ],
    "ex5-predict": [
        # the shape checked before the dtype
        (
            "def predict_run(signature, batch, dtype):\n    _, declared, dims = signature\n    if isinstance(dims[0], int) and dims[0] != batch:\n        return 'wrong shape'\n    return 'runs' if dtype == declared else 'wrong dtype'\n",
            {"ex5-hidden"},
        ),
        # a dynamic dimension read as a mismatch
        (
            "def predict_run(signature, batch, dtype):\n    _, declared, dims = signature\n    if dtype != declared:\n        return 'wrong dtype'\n    return 'runs' if dims[0] == batch else 'wrong shape'\n",
            {"ex5-hidden", "ex5-visible"},
        ),
        # the dtype forgotten
        (
            "def predict_run(signature, batch, dtype):\n    _, declared, dims = signature\n    return 'wrong shape' if isinstance(dims[0], int) and dims[0] != batch else 'runs'\n",
            {"ex5-hidden", "ex5-visible"},
        ),
        # a dimension is taken as dynamic only when it is named 'batch'
        (
            "def predict_run(signature, batch, dtype):\n    _, declared, dims = signature\n    if dtype != declared:\n        return 'wrong dtype'\n    return 'runs' if dims[0] in ('batch', batch) else 'wrong shape'\n",
            {"ex5-hidden"},
        ),
        # only a batch larger than the fixed dimension is refused
        (
            "def predict_run(signature, batch, dtype):\n    _, declared, dims = signature\n    if dtype != declared:\n        return 'wrong dtype'\n    return 'wrong shape' if isinstance(dims[0], int) and batch > dims[0] else 'runs'\n",
            {"ex5-hidden"},
        ),
    ],
}
