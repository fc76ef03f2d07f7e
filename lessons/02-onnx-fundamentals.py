# %% [markdown]
# # Lesson 2 — ONNX fundamentals: read it, write it, version it
#
# An `.onnx` file is not a black box: it is one protobuf message with a graph inside, made of
# nodes that name operators from versioned operator sets. In this lesson you open a real
# exported model field by field, then write one by hand, and find out (by measuring, on your
# machine) which versions your runtime accepts.
#
# **After this lesson you will be able to**
# 1. read any ONNX model field by field: ModelProto, GraphProto, NodeProto, initializers,
#    value_info, attributes and domains;
# 2. build a model by hand with `onnx.helper` (and with onnxscript), validate it with the checker
#    and shape inference (ONNX's and ONNX Runtime's symbolic one), and run it with ONNX Runtime
#    and the reference evaluator;
# 3. tell the IR version from the opset version, store weights as external data, and attach
#    metadata and functions;
# 4. read an operator's schema on your machine, pick a data type knowingly, and build models
#    with sequences, maps, optionals, sparse tensors and `Loop`/`Scan` subgraphs;
# 5. convert a model between opsets, measure what your runtime accepts, and fix the classic
#    version errors ("Unsupported model IR version", ai.onnx.ml opset mismatch, operator not
#    available at the requested opset).
#
# **Prerequisites**: Lesson 1 (why an exchange format), Python and NumPy; a little linear
# algebra (a matrix product). **Estimated time**: 80-150 minutes.
# (For a first-time learner; estimated from the notebook's length, not yet timed with learners:
# the text read at 120-180 words per minute, half a minute to a minute to run and read each
# code cell, 10-20 minutes per exercise.)
#
# **How to check your answers**: in JupyterLab press *Validate* (nbgrader's button in the
# notebook toolbar). Without an instructor, run the visible test cells after each exercise (each
# prints nothing when your answer is right and says what was expected and what was got when it
# is not), or run `course.check()` for the course's self-check.

# %%
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from course import anatomy, opsets
from course.palette import BLUE, GREEN, ORANGE, VERMILLION

ort.set_default_logger_severity(3)  # errors only: the errors this lesson provokes are printed
pd.set_option("display.max_colwidth", 90)
print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """An onnxruntime session on the CPU for an in-memory model."""
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


# %% [markdown]
# ## 1. Architecture and components
#
# **Why it matters.** Every converter, runtime and optimizer reads the same few structures.
# When a conversion fails or a runtime refuses a model, the answer is in those fields: which
# operator, which domain, which version, which type. Reading them is the first debugging skill.
#
# The structures nest like this:
#
# - **ModelProto**: the file. Holds the IR version, the list of operator sets it imports
#   (`opset_import`, one entry per *domain*), who produced it, free-form `metadata_props`,
#   model-local `functions`, and one graph.
# - **GraphProto**: the computation. Holds the **nodes** in topological order, the
#   **initializers** (constant tensors: the weights), and typed **inputs**, **outputs** and
#   optional **value_info** (types of intermediate tensors).
# - **NodeProto**: one operator call: `op_type` plus `domain` name the operator; `input` and
#   `output` are tensor *names* (edges are implicit: a name produced by one node and consumed
#   by another); **attributes** are the operator's constant parameters.
# - **TensorProto** (an initializer) and **ValueInfoProto** (a name with a type and a shape).
#
# ### 1.1 A real exported model, field by field
#
# We train a small scikit-learn pipeline (a scaler and a neural network) on the iris flowers
# and export it with skl2onnx. This model uses two operator domains: the default `ai.onnx`
# (tensors in, tensors out) and `ai.onnx.ml` (classical ML operators such as `Scaler`).

# %%
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skl2onnx import to_onnx

from course.data import load_iris_split

split = load_iris_split()
mlp = MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=2000, random_state=0)
pipe = make_pipeline(StandardScaler(), mlp).fit(split.X_train, split.y_train)
exported = to_onnx(
    pipe, split.X_train[:1], options={"zipmap": False}, target_opset={"": 18, "ai.onnx.ml": 3}
)
print(f"test accuracy of the scikit-learn pipeline: {pipe.score(split.X_test, split.y_test):.3f}")

# %% [markdown]
# The top of the ModelProto: versions, producer, and the operator sets it imports.

# %%
print("ir_version:      ", exported.ir_version)
print("producer:        ", exported.producer_name, exported.producer_version)
print("graph name:      ", exported.graph.name)
for imp in exported.opset_import:
    print(
        f"opset_import:     domain {imp.domain!r} ({imp.domain or 'ai.onnx'}), version {imp.version}"
    )


# %% [markdown]
# Inputs and outputs are ValueInfoProtos: a name, an element type and a shape. A dimension has
# a fixed value, a symbolic name, or neither (`?`: unknown, so any batch size is accepted).


# %%
def describe(value_info: onnx.ValueInfoProto) -> str:
    tensor = value_info.type.tensor_type
    dtype = helper.tensor_dtype_to_string(tensor.elem_type).removeprefix("TensorProto.")
    dims = [
        str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
        for d in tensor.shape.dim
    ]
    return f"{value_info.name}: {dtype}[{', '.join(dims)}]"


print("inputs: ", [describe(v) for v in exported.graph.input])
print("outputs:", [describe(v) for v in exported.graph.output])

# %% [markdown]
# The nodes, in order. Each row is one NodeProto; the edges of the graph are the tensor names.


# %%
def attribute_text(node: onnx.NodeProto) -> str:
    parts = []
    for attr in node.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, list) and len(value) > 3:
            value = f"[{len(value)} values]"
        parts.append(f"{attr.name}={value}")
    return ", ".join(parts)


pd.DataFrame(
    {
        "op_type": [n.op_type for n in exported.graph.node],
        "domain": [n.domain or "ai.onnx" for n in exported.graph.node],
        "inputs": [", ".join(n.input) for n in exported.graph.node],
        "outputs": [", ".join(n.output) for n in exported.graph.node],
        "attributes": [attribute_text(n) for n in exported.graph.node],
    }
)

# %% [markdown]
# The initializers are the trained weights, stored as TensorProtos inside the file.

# %%
pd.DataFrame(
    {
        "name": [t.name for t in exported.graph.initializer],
        "dtype": [
            helper.tensor_dtype_to_string(t.data_type).removeprefix("TensorProto.")
            for t in exported.graph.initializer
        ],
        "shape": [tuple(t.dims) for t in exported.graph.initializer],
        "values": [numpy_helper.to_array(t).size for t in exported.graph.initializer],
    }
)

# %% [markdown]
# Attributes are not decoration: the `Scaler` node's attributes *are* the fitted scaler. Its
# `offset` is the training mean and its `scale` is one over the standard deviation.

# %%
scaler_node = exported.graph.node[0]
attrs = {a.name: np.array(helper.get_attribute_value(a)) for a in scaler_node.attribute}
fitted = pipe.named_steps["standardscaler"]
print("offset == mean_:       ", np.allclose(attrs["offset"], fitted.mean_))
print("scale == 1 / scale_:   ", np.allclose(attrs["scale"], 1 / fitted.scale_))

# %% [markdown]
# The whole nesting in one picture, with the counts of this very model (drawn from the model by
# `course.anatomy.structure_figure`):

# %%
anatomy.structure_figure(exported, title="Structure of the exported iris pipeline (ModelProto)")

# %% [markdown]
# *What to see*: the file (blue) holds the graph (green), which holds the nodes (orange, the
# first one shown), the initializers (pink) and the typed inputs and outputs (light blue); the
# counts are this model's.
#
# **What to notice.** The exporter wrote `ai.onnx.ml` version 1 although we allowed 3: it stamps
# the lowest version its operators need. Names connect everything: a typo in one name breaks
# the graph. Nothing in the file is Python: any runtime in any language reads the same fields.
#
# ### 1.2 Build a model by hand with `onnx.helper`
#
# We now write a model ourselves: the prediction of a logistic regression trained on the same
# data. Three nodes: `Gemm` (a matrix product plus bias, with an attribute that transposes
# the weights), `Softmax` and `ArgMax`.

# %%
from sklearn.linear_model import LogisticRegression

logreg = LogisticRegression(max_iter=1000).fit(split.X_train, split.y_train)
W = logreg.coef_.astype(np.float32)  # (3 classes, 4 features)
b = logreg.intercept_.astype(np.float32)  # (3,)

x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
label_info = helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])
proba_info = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])
nodes = [
    helper.make_node("Gemm", ["x", "W", "b"], ["logits"], name="linear", transB=1),
    helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    helper.make_node("ArgMax", ["probabilities"], ["label"], name="argmax", axis=1, keepdims=0),
]
graph = helper.make_graph(
    nodes,
    "iris_logreg",
    inputs=[x_info],
    outputs=[label_info, proba_info],
    initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
)
imports = [helper.make_opsetid("", 18)]
hand = helper.make_model(
    graph,
    opset_imports=imports,
    ir_version=helper.find_min_ir_version_for(imports),
    producer_name="lesson 2, by hand",
)

# %% [markdown]
# Two checks before running anything. The **checker** validates the structure against the
# operator schemas; **shape inference** propagates types and shapes through the graph and, in
# strict mode, fails on any inconsistency. The inferred types of intermediate tensors appear in
# `value_info`.

# %%
onnx.checker.check_model(hand, full_check=True)
inferred = onnx.shape_inference.infer_shapes(hand, strict_mode=True)
print("checker: passed")
print("value_info after shape inference:", [describe(v) for v in inferred.graph.value_info])

# %% [markdown]
# Now run it with two independent engines: ONNX Runtime (optimized C++) and ONNX's own
# reference evaluator (plain NumPy, written from the specification), and compare both with
# scikit-learn. `course.verify.verify` does the bookkeeping and reports measured errors.

# %%
from course.verify import verify

report = verify(
    hand, split.X_test, [logreg.predict(split.X_test), logreg.predict_proba(split.X_test)]
)
report

# %% [markdown]
# The same check by hand, for one runtime, so nothing is hidden:

# %%
labels, probabilities = session(hand).run(None, {"x": split.X_test})
reference_probabilities = ReferenceEvaluator(hand).run(None, {"x": split.X_test})[1]
print("labels equal to scikit-learn's:", bool((labels == logreg.predict(split.X_test)).all()))
print(
    f"max |onnxruntime - sklearn|   = {np.abs(probabilities - logreg.predict_proba(split.X_test)).max():.2e}"
)
print(
    f"max |onnxruntime - reference| = {np.abs(probabilities - reference_probabilities).max():.2e}"
)

# %% [markdown]
# The graph we wrote, drawn from the model itself:

# %%
from course import inspect as course_inspect

course_inspect.draw_graph(hand)

# %% [markdown]
# *What to see*: data flows from `x` through `Gemm` (which holds the 3×4 weight) and `Softmax`
# to the two outputs, `ArgMax` branching off for the label; edges carry the inferred shapes.
#
# ### 1.3 The same model with onnxscript, and in ONNX's text syntax
#
# Writing NodeProtos by hand gets long. **onnxscript** lets you write the graph as a Python
# function over typed tensors; the decorator turns it into ONNX (the PyTorch exporter uses it
# under the hood). The weights enter as `Constant` nodes here.

# %%
from onnxscript import FLOAT, INT64, script
from onnxscript import opset18 as op


@script()
def iris_logreg(x: FLOAT["batch", 4]) -> tuple[INT64["batch"], FLOAT["batch", 3]]:  # noqa: F821
    logits = op.Gemm(x, op.Constant(value=W), op.Constant(value=b), transB=1)
    probabilities = op.Softmax(logits, axis=1)
    label = op.ArgMax(probabilities, axis=1, keepdims=0)
    return label, probabilities


scripted = iris_logreg.to_model_proto()
onnx.checker.check_model(scripted, full_check=True)
scripted_probabilities = session(scripted).run(None, {"x": split.X_test})[1]
print(
    f"max |onnxscript - onnx.helper| = {np.abs(scripted_probabilities - probabilities).max():.2e}"
)

# %% [markdown]
# ONNX also has a readable **text syntax**: `onnx.printer.to_text` writes it and
# `onnx.parser.parse_model` reads it back. It is the quickest way to look at a small graph.

# %%
print(onnx.printer.to_text(scripted))

# %% [markdown]
# **What to notice.** Three ways to write the same model: `onnx.helper` (every field
# explicit), onnxscript (Python syntax, types from annotations) and the text syntax. All three
# give a ModelProto that the checker, shape inference and both runtimes treat the same. The
# runtimes agree with scikit-learn to about 1e-7, the rounding of float32.
#
# ### 1.4 When shape inference gives up: symbolic shapes
#
# ONNX's shape inference works operator by operator from the schemas. It cannot follow a shape
# that the graph *computes*: here the model reads its own input shape (`Shape`), multiplies the
# batch by the sequence length and `Reshape`s to that, as exporters do when they flatten
# `(batch, seq, 8)` to `(batch * seq, 8)`. ONNX Runtime ships a second, symbolic shape
# inference (`onnxruntime.tools.symbolic_shape_infer`, which computes with the `sympy`
# package) that evaluates such shape arithmetic. Some of ONNX Runtime's own tools (the
# transformer optimizer, the TensorRT provider's setup) ask for it.

# %%
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

flatten_imports = [helper.make_opsetid("", 18)]
flattening = helper.make_model(
    helper.make_graph(
        [
            helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
            helper.make_node("Gather", ["shape", "one"], ["seq"], axis=0),
            helper.make_node("Mul", ["batch", "seq"], ["rows"]),
            helper.make_node("Concat", ["rows", "minus_one"], ["new_shape"], axis=0),
            helper.make_node("Reshape", ["x", "new_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "W_flat"], ["y"]),
        ],
        "flatten_then_project",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],  # shape left to inference
        initializer=[
            numpy_helper.from_array(np.array([0]), "zero"),
            numpy_helper.from_array(np.array([1]), "one"),
            numpy_helper.from_array(np.array([-1]), "minus_one"),
            numpy_helper.from_array(np.ones((8, 4), np.float32), "W_flat"),
        ],
    ),
    opset_imports=flatten_imports,
    ir_version=helper.find_min_ir_version_for(flatten_imports),
)


def inferred_shapes(model: onnx.ModelProto, names=("flat", "y")) -> dict[str, list]:
    """The shapes shape inference recorded for the named tensors (value_info and outputs)."""
    found = {v.name: v for v in [*model.graph.value_info, *model.graph.output]}
    return {
        name: [d.dim_param or d.dim_value for d in found[name].type.tensor_type.shape.dim]
        for name in names
    }


print("onnx.shape_inference:", inferred_shapes(onnx.shape_inference.infer_shapes(flattening)))
symbolic = SymbolicShapeInference.infer_shapes(flattening, auto_merge=True)
print("symbolic (onnxruntime):", inferred_shapes(symbolic))

# %% [markdown]
# *What to notice*: ONNX's inference knows the result has two dimensions but names them
# `unk__…` (unknown); the symbolic one writes `batch*seq`. Neither changes what the model
# computes: they only annotate it, and tools that plan memory or fuse operators read the
# annotations.
#
# ## Exercise 1 (build, 4 points)
#
# Write `build_linear_relu(W, b)` that returns an `onnx.ModelProto` computing
# `y = relu(x @ W + b)`.
#
# - `W`: float32 array of shape `(n_in, n_out)`; `b`: float32 array of shape `(n_out,)`.
# - The model has exactly one input named `"x"`, float32, shape `[batch, n_in]` with a free
#   (symbolic) batch dimension, and one output named `"y"`, float32, shape `[batch, n_out]`.
# - `W` and `b` are stored inside the model (initializers or Constant nodes), not inputs.
# - It passes `onnx.checker.check_model(model, full_check=True)` and loads in the installed
#   onnxruntime.


# %% nbgrader={"solution": true, "grade_id": "ex1-linear-relu"}
def build_linear_relu(W: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    ### BEGIN SOLUTION
    n_in, n_out = W.shape
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xW"]),
            helper.make_node("Add", ["xW", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "linear_relu",
        [x],
        [y],
        initializer=[
            numpy_helper.from_array(np.asarray(W, np.float32), "W"),
            numpy_helper.from_array(np.asarray(b, np.float32), "b"),
        ],
    )
    imports = [helper.make_opsetid("", 18)]
    return helper.make_model(
        graph, opset_imports=imports, ir_version=helper.find_min_ir_version_for(imports)
    )
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1-valid", "points": 1}
import onnx as _onnx

_W1 = np.array([[1, -1, 0.5], [0, 2, -1], [0.5, 0.5, 0.5], [-1, 0, 1]], dtype=np.float32)
_b1 = np.array([0.1, -0.2, 0.0], dtype=np.float32)
_m1 = build_linear_relu(_W1, _b1)
assert isinstance(_m1, _onnx.ModelProto), f"expected an onnx.ModelProto, got {type(_m1).__name__}"
try:
    _onnx.checker.check_model(_m1, full_check=True)
except Exception as _exc:  # ValidationError, or InferenceError from strict shape inference
    raise AssertionError(
        f"expected a model that passes the checker (full_check=True), got: {str(_exc).strip()[:300]}"
    ) from None
_io = ([i.name for i in _m1.graph.input], [o.name for o in _m1.graph.output])
assert _io == (["x"], ["y"]), (
    f"expected exactly one input 'x' and one output 'y' (weights inside the model), "
    f"got inputs {_io[0]} and outputs {_io[1]}"
)

# %% nbgrader={"grade": true, "grade_id": "ex1-values", "points": 2}
import onnxruntime as _ort


def _run_ex1(model, x):
    sess = _ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


_x5 = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
_y5 = _run_ex1(_m1, _x5)
_want5 = np.maximum(_x5 @ _W1 + _b1, 0)
assert _y5.dtype == np.float32 and _y5.shape == (5, 3), (
    f"expected a float32 output of shape (5, 3), got {_y5.dtype} {_y5.shape}"
)
_err = float(np.abs(_y5 - _want5).max())
assert _err < 1e-5, f"expected relu(x @ W + b) within 1e-5, got max difference {_err:.3g}"
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(7)
_W2 = _rng.normal(size=(6, 2)).astype(np.float32)
_b2 = _rng.normal(size=2).astype(np.float32)
_m2 = build_linear_relu(_W2, _b2)
for _n in (1, 9):
    _x = _rng.normal(size=(_n, 6)).astype(np.float32)
    _got = _run_ex1(_m2, _x)
    _want = np.maximum(_x @ _W2 + _b2, 0)
    assert _got.shape == _want.shape and np.abs(_got - _want).max() < 1e-5, (
        f"W of shape (6, 2), batch {_n}: expected relu(x @ W + b) of shape {_want.shape}, "
        f"got shape {_got.shape} with max difference {np.abs(_got - _want).max() if _got.shape == _want.shape else 'n/a'}"
    )
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex1-batch", "points": 1}
from onnx.reference import ReferenceEvaluator as _Ref

_dim0 = _m1.graph.input[0].type.tensor_type.shape.dim[0]
assert not _dim0.HasField("dim_value"), (
    f"expected a free batch dimension on 'x', got the fixed size {_dim0.dim_value}"
)
for _n in (1, 64):
    _xb = np.random.default_rng(_n).normal(size=(_n, 4)).astype(np.float32)
    _yb = _run_ex1(_m1, _xb)
    assert _yb.shape == (_n, 3), f"batch {_n}: expected output shape ({_n}, 3), got {_yb.shape}"
### BEGIN HIDDEN TESTS
_xr = np.random.default_rng(3).normal(size=(4, 4)).astype(np.float32)
_yr = _Ref(_m1).run(None, {"x": _xr})[0]
_err_r = float(np.abs(_yr - np.maximum(_xr @ _W1 + _b1, 0)).max())
assert _err_r < 1e-5, (
    f"expected the reference evaluator to compute relu(x @ W + b) within 1e-5 too, "
    f"got max difference {_err_r:.3g}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The format and the IR
#
# **Why it matters.** Knowing how the bytes are laid out explains three everyday limits: why a
# model over 2 GB needs a second file, why an old runtime refuses a new file ("IR version"),
# and why you can add your own notes to a model without breaking it.
#
# ### 2.1 Protobuf serialization
#
# A model file is the protobuf encoding of one ModelProto: a sequence of *fields*, each a key
# (field number and wire type) followed by a value. The field numbers are fixed in `onnx.proto`
# forever, which is what lets old readers skip fields they do not know.

# %%
data = hand.SerializeToString()
print(f"{len(data)} bytes; the first 12: {data[:12].hex(' ')}")
key = data[0]
print(
    f"first key byte 0x{key:02x}: field {key >> 3} (ir_version), wire type {key & 7} (varint), value {data[1]}"
)
pd.DataFrame(anatomy.wire_fields(data))

# %% [markdown]
# *What to notice*: `ir_version` comes first (field 1), the graph is one length-delimited field
# holding nearly all bytes, and each `opset_import` entry is its own field (repeated fields
# simply repeat). Parsing the bytes back gives an identical message:

# %%
print("round trip identical:", onnx.load_model_from_string(data) == hand)

# %% [markdown]
# ### 2.2 IR version versus opset version
#
# Two version numbers, two different things:
#
# - the **IR version** (`model.ir_version`) versions the *file format*: which fields and types
#   may appear (for example IR 4 let initializers be left out of the inputs, later versions
#   added model-local functions, float8 and 4-bit types);
# - the **opset version** (one per domain in `opset_import`) versions the *operator
#   vocabulary*: which operators exist and what each means.
#
# Each onnx release raises one or both. Your installed onnx ships the table:

# %%
pd.DataFrame(
    helper.VERSION_TABLE[-8:],
    columns=["onnx release", "IR version", "ai.onnx opset", "ai.onnx.ml opset", "training opset"],
)

# %% [markdown]
# A pitfall hides here: `helper.make_model` stamps the **newest** IR version your onnx knows,
# whatever opset you use. A runtime older than your onnx package will refuse such a file
# (section 4 reproduces it). Stamp the lowest IR version your opsets need instead:

# %%
default_ir = helper.make_model(graph, opset_imports=imports).ir_version
print(f"make_model's default IR version: {default_ir}")
print(f"lowest IR version that can carry opset 18: {helper.find_min_ir_version_for(imports)}")

# %% [markdown]
# ### 2.3 External data: weights in a second file
#
# Protobuf cannot serialize a message over 2 GiB. ONNX's answer is **external data**: the
# tensor's bytes go to a side file and the TensorProto keeps only a reference (file, offset,
# length). We demonstrate the mechanism on a 1 MiB weight with a 1 KiB threshold: tensors
# above the threshold move out, smaller ones stay inside.

# %%
from pathlib import Path

from course import data as course_data

rng = np.random.default_rng(0)
big_W = rng.normal(size=(512, 512)).astype(np.float32)  # 1 MiB
small_b = rng.normal(size=128).astype(np.float32)  # 512 bytes
x_big = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 512])
y_big = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 128])
big = helper.make_model(
    helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xW"]),
            helper.make_node("Slice", ["xW", "starts", "ends", "axes"], ["first"]),
            helper.make_node("Add", ["first", "b"], ["y"]),
        ],
        "big",
        [x_big],
        [y_big],
        initializer=[
            numpy_helper.from_array(big_W, "W"),
            numpy_helper.from_array(small_b, "b"),
            numpy_helper.from_array(np.array([0]), "starts"),
            numpy_helper.from_array(np.array([128]), "ends"),
            numpy_helper.from_array(np.array([1]), "axes"),
        ],
    ),
    opset_imports=imports,
    ir_version=helper.find_min_ir_version_for(imports),
)
print(f"in memory: {big.ByteSize():,} bytes")

# %%
folder = course_data.workdir("lesson2_external")  # removed when the kernel stops
to_save = onnx.ModelProto()
to_save.CopyFrom(big)  # save_model rewrites the message it is given: keep `big` intact
onnx.save_model(
    to_save,
    folder / "big.onnx",
    save_as_external_data=True,
    all_tensors_to_one_file=True,
    location="big.weights",
    size_threshold=1024,
)
for path in sorted(folder.iterdir()):
    print(f"{path.name:12s} {path.stat().st_size:>10,} bytes")

# %% [markdown]
# Loading without the data shows what the `.onnx` file itself holds for `W`: a reference.

# %%
stub = onnx.load(folder / "big.onnx", load_external_data=False)
for tensor in stub.graph.initializer:
    where = {e.key: e.value for e in tensor.external_data} or "inside the .onnx file"
    print(f"{tensor.name:6s} {where}")
print(
    "and the saved copy in memory lost its bytes too:",
    to_save.graph.initializer[0].data_location == TensorProto.EXTERNAL,
)

# %% [markdown]
# A classic failure: handing a runtime the *bytes* of the `.onnx` file, which cannot say where
# the side file is. Reproduced (the runtime looks in the current directory), then fixed by
# giving the runtime the *path*, so it finds `big.weights` next to the model:

# %%
print("from bytes:", opsets.load_error(stub) or "loaded")
x_probe = rng.normal(size=(2, 512)).astype(np.float32)
from_path = ort.InferenceSession(str(folder / "big.onnx"), providers=["CPUExecutionProvider"])
y_path = from_path.run(None, {"x": x_probe})[0]
print(
    f"from path: loaded; max |y - numpy| = {np.abs(y_path - ((x_probe @ big_W)[:, :128] + small_b)).max():.2e}"
)

# %% [markdown]
# Why this matters at scale (arithmetic, not a measurement): the protobuf limit is
# `onnx.checker.MAXIMUM_PROTOBUF` bytes, so a model stored inside one message can hold at most
# this many float32 or float16 parameters:

# %%
limit = onnx.checker.MAXIMUM_PROTOBUF
print(
    f"limit {limit:,} bytes = {limit / 4 / 1e6:,.0f} M float32 or {limit / 2 / 1e6:,.0f} M float16 parameters"
)
print(
    f"a 7-billion-parameter model in float16 needs {7e9 * 2 / limit:.1f}x that: external data is mandatory"
)

# %% [markdown]
# Shape inference and the checker need the model in memory too, which a model over 2 GB cannot
# be. Both have a path-based form that works on the files instead:
# `onnx.shape_inference.infer_shapes_path(in_path, out_path)` and
# `onnx.checker.check_model(path)`. Shown on our small external-data model (the same calls
# serve a 20 GB one), the inferred shapes are written to a new file, next to the same weights
# file, which is neither loaded nor copied:

# %%
onnx.shape_inference.infer_shapes_path(str(folder / "big.onnx"), str(folder / "big-shapes.onnx"))
onnx.checker.check_model(str(folder / "big-shapes.onnx"))
with_shapes = onnx.load(folder / "big-shapes.onnx", load_external_data=False)
print("value_info written:", [describe(v) for v in with_shapes.graph.value_info])
for path in sorted(folder.iterdir()):
    print(f"{path.name:16s} {path.stat().st_size:>10,} bytes")

# %% [markdown]
# ### 2.4 Metadata
#
# `metadata_props` is a free-form string map inside the ModelProto: author, licence, training
# data, expected preprocessing. Runtimes carry it through untouched, and you can read it back.

# %%
helper.set_model_props(
    hand,
    {
        "author": "lesson 2",
        "license": "MIT",
        "training_data": "iris (scikit-learn)",
        "input_unit": "cm",
    },
)
meta = session(hand).get_modelmeta()
print("producer:", meta.producer_name)
print("custom metadata:", meta.custom_metadata_map)

# %% [markdown]
# ### 2.5 Functions
#
# A **function** (FunctionProto) names a subgraph so that nodes can call it like an operator.
# Model-local functions live in `model.functions` under a domain of your choosing; a runtime
# that has no special kernel for the function simply expands its body. Here: `Swish(x) = x *
# sigmoid(x)` in the domain `course.local`.

# %%
swish = helper.make_function(
    "course.local",
    "Swish",
    inputs=["X"],
    outputs=["Y"],
    nodes=[helper.make_node("Sigmoid", ["X"], ["s"]), helper.make_node("Mul", ["X", "s"], ["Y"])],
    opset_imports=[helper.make_opsetid("", 18)],
)
fn_imports = [helper.make_opsetid("", 18), helper.make_opsetid("course.local", 1)]
with_function = helper.make_model(
    helper.make_graph(
        [helper.make_node("Swish", ["x"], ["y"], domain="course.local")],
        "uses_swish",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    ),
    functions=[swish],
    opset_imports=fn_imports,
    ir_version=helper.find_min_ir_version_for(fn_imports[:1]),  # custom domains have no table
)
onnx.checker.check_model(with_function, full_check=True)
xs = np.linspace(-3, 3, 7, dtype=np.float32)
want = xs / (1 + np.exp(-xs))
for name, outputs in [
    ("onnxruntime", session(with_function).run(None, {"x": xs})),
    ("reference", ReferenceEvaluator(with_function).run(None, {"x": xs})),
]:
    print(f"{name:12s} max |Swish - numpy| = {np.abs(outputs[0] - want).max():.2e}")

# %% [markdown]
# **What to notice.** The format keeps the *operator vocabulary* (opsets) apart from the *file
# layout* (IR version). Weights can live outside the file; the file then needs its side file
# and a runtime loading it by path. Saving with external data rewrites the message you pass.
# Metadata and functions travel inside the model.
#
# ## 3. Operators and data types
#
# **Why it matters.** An operator's meaning is fixed by its *schema at a given opset*, not by
# its name: `Squeeze` at opset 11 takes its axes as an attribute, at opset 13 as an input.
# When a model fails to load, the schema says why.
#
# ### 3.1 The operator sets on your machine
#
# `onnx.defs` holds every schema the installed onnx knows, with its history.

# %%
from collections import Counter

all_schemas = onnx.defs.get_all_schemas_with_history()
for domain in ("", "ai.onnx.ml"):
    names = opsets.operator_names(domain)
    print(
        f"{domain or 'ai.onnx':11s} {len(names):4d} operators, latest opset {opsets.latest_opset(domain)}"
    )
print("ai.onnx.ml operators:", ", ".join(opsets.operator_names("ai.onnx.ml")))

# %%
import matplotlib.pyplot as plt

default_schemas = [s for s in all_schemas if s.domain == ""]
first_version = {}
for s in default_schemas:
    first_version[s.name] = min(first_version.get(s.name, 99), s.since_version)
introduced = Counter(first_version.values())
changed = Counter(
    s.since_version for s in default_schemas if s.since_version != first_version[s.name]
)
versions = np.arange(1, opsets.latest_opset() + 1)
fig, ax = plt.subplots(figsize=(10, 3.6))
ax.bar(versions, [introduced[v] for v in versions], color=BLUE, label="operators introduced")
ax.bar(
    versions,
    [changed[v] for v in versions],
    bottom=[introduced[v] for v in versions],
    color=ORANGE,
    label="operators changed (new schema version)",
)
ax.set(
    xlabel="opset version (ai.onnx)",
    ylabel="operators (count)",
    title=f"What each opset added or changed (onnx {onnx.__version__}, read from onnx.defs)",
    xticks=versions,
)
ax.margins(y=0.08)
ax.legend()
plt.show()

# %% [markdown]
# The same counts as numbers, computed from `onnx.defs` on your machine:

# %%
later = versions[versions > 1]
print(
    f"opset 1 introduced {introduced[1]} of the {len(first_version)} operators "
    f"({introduced[1] / len(first_version):.0%}); opsets 2-{versions[-1]} introduced "
    f"{sum(introduced[v] for v in later)} more and made {sum(changed[v] for v in later)} "
    "schema changes"
)
print(
    "opsets that added at least as many operators as they changed:",
    [int(v) for v in later if introduced[v] >= changed[v]],
)
print(
    "opsets with the most changes:",
    [(int(v), changed[v]) for v in sorted(later, key=lambda v: -changed[v])[:3]],
)

# %% [markdown]
# *What to see*: opset 1 holds the largest single batch of operators, but not a majority of
# today's; since then ONNX has grown mostly by *changing* operators (new types such as bfloat16,
# attributes turned into inputs), in waves, while a few opsets added at least as many operators
# as they changed (the list above). So "the same operator" can mean different schemas at
# different opsets: read the schema at the model's opset.
#
# ### 3.2 What a schema says
#
# A schema states the version it took effect (`since_version`), its inputs and outputs (with
# type variables such as `T`), its attributes and the types each type variable may take.

# %%
gemm = onnx.defs.get_schema("Gemm", 18)
print("since_version:", gemm.since_version)
print("inputs: ", [(f.name, f.type_str, str(f.option).rsplit(".", 1)[-1]) for f in gemm.inputs])
print("outputs:", [(f.name, f.type_str) for f in gemm.outputs])
print("attributes:", sorted(gemm.attributes))
print("T may be:", sorted(gemm.type_constraints[0].allowed_type_strs))

# %% [markdown]
# ### 3.3 Try it: the operator explorer
#
# Pick an operator and an opset: the explorer shows the schema in force, the opsets where the
# operator changed (the version in force in brackets), and a one-node model built from that
# schema and run on your machine. Try `Squeeze` at opsets 11 and 13, `Gelu` at 18 and 20,
# `Clip` at 6 and 11, `Relu` at 1. Its logic is the plain function
# `course.widgets.operator_info`, built on `course.opsets` (`schema_at`, `tiny_example`).

# %%
from course.widgets import operator_explorer

operator_explorer("Squeeze", opset=11)

# %% [markdown]
# ### 3.4 Data types
#
# ONNX tensors carry one element type each. The types, what they are for, and their range and
# precision read from the number formats on your machine (`ml_dtypes`, the NumPy extension
# onnx uses for the new formats):

# %%
import ml_dtypes

uses = {
    "DOUBLE": "scientific code, classical ML (scikit-learn works in float64)",
    "FLOAT": "the default for training and inference",
    "FLOAT16": "GPU inference; half the memory; overflows above 65504",
    "BFLOAT16": "training and inference on TPUs/GPUs; float32's range, few digits",
    "FLOAT8E4M3FN": "8-bit weights/activations (more precision, less range)",
    "FLOAT8E5M2": "8-bit gradients (more range, less precision)",
    "INT8": "quantized inference (with a scale and zero point)",
    "UINT8": "quantized activations, images",
    "INT4": "weight-only quantization of large models",
    "INT64": "indices, shapes, labels",
    "BOOL": "masks and conditions",
    "STRING": "text features and labels (ai.onnx.ml encoders)",
}


def number_info(np_type):
    """finfo for floating types, iinfo for integers, None for bool and string."""
    for info in (ml_dtypes.finfo, ml_dtypes.iinfo):
        try:
            return info(np_type)
        except ValueError:
            pass
    return None


rows = []
for name, use in uses.items():
    enum = getattr(TensorProto, name)
    info = number_info(helper.tensor_dtype_to_np_dtype(enum))
    rows.append(
        {
            "type": name,
            "enum": enum,
            "bits": getattr(info, "bits", None),
            "largest finite": float(info.max) if info is not None else None,
            "relative precision (eps)": float(info.eps) if hasattr(info, "eps") else None,
            "typical use": use,
        }
    )
pd.DataFrame(rows).set_index("type")

# %% [markdown]
# Precision and range, measured through ONNX Runtime itself: we cast float32 values of every
# magnitude to each 16- and 8-bit type and back (`Cast`, then `Cast`), and plot the relative
# error of the round trip.


# %%
def cast_round_trip(values: np.ndarray, to: int, engine: str = "onnxruntime") -> np.ndarray:
    """values (float32) -> type `to` -> float32, computed by onnxruntime or the reference."""
    cast_imports = [helper.make_opsetid("", 23)]
    model = helper.make_model(
        helper.make_graph(
            [
                helper.make_node("Cast", ["x"], ["t"], to=to),
                helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT),
            ],
            "round_trip",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(values)])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(values)])],
        ),
        opset_imports=cast_imports,
        ir_version=helper.find_min_ir_version_for(cast_imports),
    )
    if engine == "onnxruntime":
        return session(model).run(None, {"x": values})[0]
    with np.errstate(over="ignore", invalid="ignore"):  # float16 overflow is the point here
        return ReferenceEvaluator(model).run(None, {"x": values})[0]


magnitudes = np.logspace(-10, 6, 8000).astype(np.float32)
bins = magnitudes.reshape(200, 40)  # 200 bins of 40 neighbouring values each
fig, ax = plt.subplots(figsize=(9, 4))
palette = {
    "FLOAT16": BLUE,
    "BFLOAT16": ORANGE,
    "FLOAT8E4M3FN": GREEN,
    "FLOAT8E5M2": VERMILLION,
}
for name, colour in palette.items():
    back = cast_round_trip(magnitudes, getattr(TensorProto, name)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        rel = np.abs(back - magnitudes) / magnitudes
    rel = np.where(np.isfinite(rel), rel, 1.0).reshape(bins.shape).max(axis=1)
    ax.loglog(bins.mean(axis=1), rel.clip(1e-9, 1.0), color=colour, label=name.lower(), lw=1.8)
ax.set(
    xlabel="magnitude of the float32 value (unitless)",
    ylabel="largest relative error in the bin",
    title="Range and precision of 16- and 8-bit types (Cast round trip in onnxruntime)",
    ylim=(1e-5, 2),
)
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# *What to see*: each curve is flat where the type is precise, at half its eps from the table
# (float16 5e-4, bfloat16 4e-3, float8e4m3fn 6e-2, float8e5m2 1e-1), and climbs to 100% where
# values underflow to zero (left) or overflow or saturate (right); bfloat16 keeps float32's
# range, float16 stops at 65504.
#
# Where the specification leaves room, runtimes can differ. The same casts on five values, by
# ONNX Runtime and by the reference evaluator:

# %%
sample = np.array([0.1, 1.7, -3.3, 300.0, 70000.0], dtype=np.float32)
rows = []
for name in ("FLOAT16", "BFLOAT16", "FLOAT8E4M3FN", "INT8", "INT4"):
    to = getattr(TensorProto, name)
    a, r = cast_round_trip(sample, to), cast_round_trip(sample, to, engine="reference")
    rows.append(
        {
            "type": name,
            "onnxruntime": a.tolist(),
            "reference": r.tolist(),
            "agree": bool(np.array_equal(a, r)),
        }
    )
pd.DataFrame(rows).set_index("type")

# %% [markdown]
# *What to notice*: float16 overflows to `inf` and float8e4m3fn *saturates* at its largest
# value 448, as the `Cast` schema specifies. The integer rows are different: 300 and 70000 do
# not fit in int8 or int4, and for a float that does not fit an integer type the schema says
# only this (read from the installed onnx):

# %%
cast_rules = [line.strip(" *") for line in onnx.defs.get_schema("Cast", 23).doc.splitlines()]
start = cast_rules.index("Casting from floating point to:")
print(cast_rules[start], next(r for r in cast_rules[start:] if r.startswith("fixed point")))

# %% [markdown]
# "Undefined" means that the int8 and int4 values in the table are what *these two engines on
# this machine* did (here they keep the low bits of some integer conversion, so 300 can come
# back as 44), not a rule: another runtime, build or processor may clamp, wrap differently or
# return anything, and the `agree` column says whether even these two engines agreed. Never
# rely on an out-of-range cast; quantize with `QuantizeLinear`, which scales, rounds and
# saturates as its schema specifies.
#
# Strings are tensors too. An `ai.onnx.ml` `LabelEncoder` maps strings to integers:

# %%
print(opsets.tiny_example("LabelEncoder", 2, domain="ai.onnx.ml").text())

# %% [markdown]
# ### 3.5 Beyond tensors: sequences, maps, optionals and sparse tensors
#
# A value in ONNX has a *type*, and a tensor is only one kind. The IR also defines
# **sequences** (an ordered list of values of one type), **maps** (keys of an integer or string
# type to values), **optionals** (a value that may be absent) and **sparse tensors** (only the
# non-zero values and their indices). Classical-ML models meet them first: skl2onnx's ZipMap
# returns a sequence of maps (lesson 3). `onnx.helper` builds each type; one small model per
# type below, each run by both engines. `run_both` returns each engine's outputs, or its error.


# %%
def run_both(model: onnx.ModelProto, feeds: dict) -> dict:
    """The outputs of onnxruntime and of the reference evaluator (or their error message)."""
    onnx.checker.check_model(model, full_check=True)
    results = {}
    engines = {
        "onnxruntime": lambda: session(model),
        "reference": lambda: ReferenceEvaluator(model),
    }
    for engine, make in engines.items():
        try:
            results[engine] = make().run(None, feeds)
        except Exception as exc:  # an engine without support for the type says so
            results[engine] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
    return results


def small_model(nodes, inputs, outputs, initializers=(), ml=False) -> onnx.ModelProto:
    imports_ = [helper.make_opsetid("", 21)] + (
        [helper.make_opsetid("ai.onnx.ml", 3)] if ml else []
    )
    return helper.make_model(
        helper.make_graph(nodes, "types", inputs, outputs, initializer=list(initializers)),
        opset_imports=imports_,
        ir_version=helper.find_min_ir_version_for(imports_),
    )


float_row = helper.make_tensor_type_proto(TensorProto.FLOAT, [3])
sequence_model = small_model(  # a (rows, 3) tensor -> a sequence of rows -> its length, last row
    [
        helper.make_node("SplitToSequence", ["x"], ["rows"], axis=0, keepdims=0),
        helper.make_node("SequenceLength", ["rows"], ["count"]),
        helper.make_node("SequenceAt", ["rows", "last"], ["last_row"]),
    ],
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
    [
        helper.make_value_info("rows", helper.make_sequence_type_proto(float_row)),
        helper.make_tensor_value_info("count", TensorProto.INT64, []),
        helper.make_tensor_value_info("last_row", TensorProto.FLOAT, [3]),
    ],
    [numpy_helper.from_array(np.array(-1), "last")],
)
string_to_float = helper.make_map_type_proto(
    TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, [])
)
map_model = small_model(  # a map {feature name: value} -> a dense row in a fixed order
    [
        helper.make_node(
            "DictVectorizer",
            ["record"],
            ["row"],
            domain="ai.onnx.ml",
            string_vocabulary=["age", "income", "children"],
        )
    ],  # fmt: skip
    [helper.make_value_info("record", string_to_float)],
    [helper.make_tensor_value_info("row", TensorProto.FLOAT, [1, 3])],
    ml=True,
)
optional_model = small_model(  # an input that may be left out: is it there?
    [helper.make_node("OptionalHasElement", ["maybe"], ["present"])],
    [helper.make_value_info("maybe", helper.make_optional_type_proto(float_row))],
    [helper.make_tensor_value_info("present", TensorProto.BOOL, [])],
)
sparse_weight = helper.make_sparse_tensor(  # a 3 x 3 matrix with two non-zero values
    numpy_helper.from_array(np.array([5.0, 7.0], np.float32), "W_sparse"),
    numpy_helper.from_array(np.array([1, 8]), "W_sparse_indices"),  # flat positions
    [3, 3],
)
sparse_model = small_model(
    [
        helper.make_node("Constant", [], ["W_dense"], sparse_value=sparse_weight),
        helper.make_node("MatMul", ["x", "W_dense"], ["y"]),
    ],
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
)
grid = np.arange(12, dtype=np.float32).reshape(4, 3)
type_demos = {
    "sequence": (sequence_model, {"x": grid}),
    "map": (map_model, {"record": {"income": 52.5, "age": 41.0}}),
    "optional, given": (optional_model, {"maybe": np.ones(3, np.float32)}),
    "optional, absent": (optional_model, {"maybe": None}),
    "sparse constant": (sparse_model, {"x": np.eye(3, dtype=np.float32)}),
}


def shown(value) -> str:
    """A short description of one result: a list's length and items, an array's dtype, shape, values."""
    if isinstance(value, list):
        items = "; ".join(shown(v) for v in value[:2])
        return f"list of {len(value)} [{items}{'; …' if len(value) > 2 else ''}]"
    a = np.asarray(value)
    return f"{a.dtype}{list(a.shape)} {np.array2string(a.ravel()[:3], separator=' ')}"


def signature(model: onnx.ModelProto) -> str:
    """The graph's typed inputs and outputs, from the first line of ONNX's text syntax."""
    return onnx.printer.to_text(model.graph).splitlines()[0].split(" ", 1)[1].rstrip(" {")


def engine_outputs(result) -> str:
    """One engine's outputs, separated by '|', or its error message."""
    return result if isinstance(result, str) else " | ".join(shown(out) for out in result)


pd.DataFrame(
    [
        {
            "type": name,
            "signature (onnx.printer)": signature(model),
            **{engine: engine_outputs(out) for engine, out in run_both(model, feeds).items()},
        }
        for name, (model, feeds) in type_demos.items()
    ]
).set_index("type")

# %% [markdown]
# *What to notice*: a sequence comes back to Python as a list of arrays and a map goes in as a
# dict; an optional input is left out by passing `None`. The engines agree on the values but
# not always on the packaging (the reference evaluator returns the map model's row as float64 of
# shape `(3,)`, ONNX Runtime as float32 `(1, 3)`, as declared), and the reference evaluator does
# not run the sparse constant at all. The `MatMul` that reads it is the ordinary dense
# operator: storing a constant as sparse saves space in the file, not arithmetic.
#
# ### 3.6 Control flow: `Loop` and `Scan` run subgraphs
#
# An operator's attribute can be a whole graph. `If` (lesson 3 meets it), `Loop` and `Scan`
# carry their bodies as `GraphProto` attributes, and the runtime runs the body once per
# iteration. **Scan** walks along an axis of its inputs with a carried state, like a
# recurrent network: here a running sum over the rows of a matrix. The body takes the state
# and one row and returns the new state and one output row; the scan outputs are stacked.

# %%
sum_in = helper.make_tensor_value_info("sum_in", TensorProto.FLOAT, [3])
row_in = helper.make_tensor_value_info("row", TensorProto.FLOAT, [3])
scan_body = helper.make_graph(
    [
        helper.make_node("Add", ["sum_in", "row"], ["sum_out"]),
        helper.make_node("Identity", ["sum_out"], ["running"]),
    ],
    "running_sum_body",
    [sum_in, row_in],  # state first, then one slice of each scanned input
    [
        helper.make_tensor_value_info("sum_out", TensorProto.FLOAT, [3]),  # new state
        helper.make_tensor_value_info("running", TensorProto.FLOAT, [3]),  # one output row
    ],
)
scan_model = small_model(
    [
        helper.make_node(
            "Scan", ["start", "rows"], ["total", "sums"], num_scan_inputs=1, body=scan_body
        )
    ],
    [
        helper.make_tensor_value_info("start", TensorProto.FLOAT, [3]),
        helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 3]),
    ],
    [
        helper.make_tensor_value_info("total", TensorProto.FLOAT, [3]),
        helper.make_tensor_value_info("sums", TensorProto.FLOAT, ["n", 3]),
    ],
)
scanned = run_both(scan_model, {"start": np.zeros(3, np.float32), "rows": grid})
for engine, (total, sums) in scanned.items():
    print(
        f"{engine:12s} sums equal np.cumsum: {np.array_equal(sums, np.cumsum(grid, axis=0))}, "
        f"final state equals the column totals: {np.array_equal(total, grid.sum(axis=0))}"
    )
print("running sums:\n", scanned["onnxruntime"][1])

# %% [markdown]
# **Loop** repeats its body up to a trip count `M` while a condition stays true. Its body
# receives the iteration number, the condition and the carried values, and returns the new
# condition, the new carried values and, optionally, values stacked over the iterations. Here:
# five steps of `x <- x / 2 + 1`, which converges to 2. Pass the condition explicitly: ONNX
# lets you leave it out, but the reference evaluator of onnx 1.23 then runs no iteration.

# %%
loop_body = helper.make_graph(
    [
        helper.make_node("Mul", ["x_in", "half"], ["halved"]),
        helper.make_node("Add", ["halved", "one"], ["x_out"]),
        helper.make_node("Identity", ["keep_going"], ["keep_going_out"]),
        helper.make_node("Identity", ["x_out"], ["x_trace"]),
    ],
    "halve_and_add_one",
    [
        helper.make_tensor_value_info("step", TensorProto.INT64, []),
        helper.make_tensor_value_info("keep_going", TensorProto.BOOL, []),
        helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [2]),
    ],
    [
        helper.make_tensor_value_info("keep_going_out", TensorProto.BOOL, []),
        helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [2]),  # carried
        helper.make_tensor_value_info("x_trace", TensorProto.FLOAT, [2]),  # stacked
    ],
    initializer=[
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ],
)
loop_model = small_model(
    [helper.make_node("Loop", ["steps", "go", "x0"], ["x_final", "trace"], body=loop_body)],
    [
        helper.make_tensor_value_info("steps", TensorProto.INT64, []),
        helper.make_tensor_value_info("x0", TensorProto.FLOAT, [2]),
    ],
    [
        helper.make_tensor_value_info("x_final", TensorProto.FLOAT, [2]),
        helper.make_tensor_value_info("trace", TensorProto.FLOAT, ["steps", 2]),
    ],
    [numpy_helper.from_array(np.array(True), "go")],
)
looped = run_both(loop_model, {"steps": np.array(5), "x0": np.array([0.0, 10.0], np.float32)})
print("trace (onnxruntime):\n", looped["onnxruntime"][1])
print("engines agree:", all(np.array_equal(a, r) for a, r in zip(*looped.values(), strict=True)))

# %% [markdown]
# *What to notice*: the bodies are ordinary graphs with their own inputs and outputs, and they
# may read tensors of the enclosing graph by name (none here). Exporters produce `Loop` for
# `for` loops whose count depends on data and `Scan` or `Loop` for recurrent layers; where the
# count is fixed at export, tracing unrolls the loop into a long flat graph instead.
#
# ## Exercise 2 (reason, 3 points)
#
# A model declares opset 18 but may only use operators whose meaning has not changed since,
# say, opset 13. Then it could be stamped with opset 13 and run on older runtimes unchanged.
#
# Write `minimum_opsets(model)` returning a dict `{domain: version}` with, **for each domain
# used by at least one node** (`""` for ai.onnx, `"ai.onnx.ml"`), the smallest opset version at
# which every node of that domain resolves to the **same schema version** as at the opset the
# model declares for that domain. Consider the nodes of the main graph; the models use only the
# standard domains. A model may declare the default domain in its opset imports as `"ai.onnx"`
# instead of `""` (the checker and ONNX Runtime accept both); its key in your dict is `""` either
# way. Hint: `onnx.defs.get_schema(op_type, max_inclusive_version, domain)`
# returns the schema in force at a version, and its `since_version` says when it took effect.


# %% nbgrader={"solution": true, "grade_id": "ex2-minimum-opsets"}
def minimum_opsets(model: onnx.ModelProto) -> dict[str, int]:
    ### BEGIN SOLUTION
    declared = {("" if i.domain == "ai.onnx" else i.domain): i.version for i in model.opset_import}
    needed: dict[str, int] = {}
    for node in model.graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        schema = onnx.defs.get_schema(node.op_type, declared[domain], domain)
        needed[domain] = max(needed.get(domain, 1), schema.since_version)
    return needed
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex2-visible", "points": 1}
import onnx as _onnx
from onnx import TensorProto as _TP
from onnx import helper as _h
from onnx import numpy_helper as _nh


def _restamped(model, domain, version):
    copy = _onnx.ModelProto()
    copy.CopyFrom(model)
    for imp in copy.opset_import:
        if imp.domain == domain:
            imp.version = version
    return copy


def _passes_checker(model):
    try:
        _onnx.checker.check_model(model, full_check=True)
        return True
    except Exception:
        return False


_squeeze = _h.make_model(
    _h.make_graph(
        [_h.make_node("Squeeze", ["x", "axes"], ["y"])],
        "squeeze",
        [_h.make_tensor_value_info("x", _TP.FLOAT, [2, 1, 3])],
        [_h.make_tensor_value_info("y", _TP.FLOAT, [2, 3])],
        initializer=[_nh.from_array(np.array([1], dtype=np.int64), "axes")],
    ),
    opset_imports=[_h.make_opsetid("", 18)],
    ir_version=8,
)
_got = minimum_opsets(_squeeze)
assert isinstance(_got, dict) and set(_got) == {""}, (
    f"expected a dict with the one domain used, {{'': version}}, got {_got!r}"
)
_v = _got[""]
assert isinstance(_v, int) and 1 <= _v <= 18, f"expected an int between 1 and 18, got {_v!r}"
assert _passes_checker(_restamped(_squeeze, "", _v)), (
    f"Squeeze with an axes input: the model stamped with your answer {_v} fails the checker; "
    "the axes input does not exist there (your answer is too low)"
)
assert not _passes_checker(_restamped(_squeeze, "", _v - 1)), (
    f"Squeeze with an axes input still passes the checker at opset {_v - 1}: "
    f"your answer {_v} is not the smallest"
)

# %% nbgrader={"grade": true, "grade_id": "ex2-hidden", "points": 2}
_x4 = _h.make_tensor_value_info("x", _TP.FLOAT, [2, 3])
_mixed = _h.make_model(
    _h.make_graph(
        [
            _h.make_node(
                "Scaler", ["x"], ["s"], domain="ai.onnx.ml", offset=[0.0] * 3, scale=[1.0] * 3
            ),
            _h.make_node("Relu", ["s"], ["r"]),
            _h.make_node("Reshape", ["r", "shape"], ["f"]),
            _h.make_node("Softmax", ["f"], ["y"], axis=-1),
        ],
        "mixed",
        [_x4],
        [_h.make_tensor_value_info("y", _TP.FLOAT, [3, 2])],
        initializer=[_nh.from_array(np.array([3, 2], dtype=np.int64), "shape")],
    ),
    opset_imports=[_h.make_opsetid("", 17), _h.make_opsetid("ai.onnx.ml", 3)],
    ir_version=8,
)
_got = minimum_opsets(_mixed)
assert isinstance(_got, dict) and set(_got) == {"", "ai.onnx.ml"}, (
    f"a model using ai.onnx and ai.onnx.ml nodes: expected keys {{'', 'ai.onnx.ml'}}, got {_got!r}"
)
assert _passes_checker(
    _restamped(_restamped(_mixed, "", _got[""]), "ai.onnx.ml", _got["ai.onnx.ml"])
), f"the model stamped with your answer {_got} fails the checker (an answer is too low)"


### BEGIN HIDDEN TESTS
def _expected(model):
    def norm(domain):
        return "" if domain == "ai.onnx" else domain

    declared = {norm(i.domain): i.version for i in model.opset_import}
    out = {}
    for n in model.graph.node:
        d = norm(n.domain)
        since = _onnx.defs.get_schema(n.op_type, declared[d], d).since_version
        out[d] = max(out.get(d, 1), since)
    return out


_want = _expected(_mixed)
assert _got == _want, (
    f"Relu, Reshape, Softmax at declared opset 17 and Scaler at ai.onnx.ml 3: expected the "
    f"smallest opsets with the same schemas, {_want}, got {_got}"
)
_unused = _restamped(_squeeze, "", 16)
_unused.opset_import.append(_h.make_opsetid("ai.onnx.ml", 2))  # imported, never used
_got2 = minimum_opsets(_unused)
_want2 = _expected(_unused)
assert _got2 == _want2, (
    f"Squeeze at opset 16 with an unused ai.onnx.ml import: expected {_want2!r}, got {_got2!r}"
)
_aliased = _restamped(_mixed, "", 17)  # a copy whose default domain is declared as "ai.onnx"
for _imp in _aliased.opset_import:
    if _imp.domain == "":
        _imp.domain = "ai.onnx"
try:
    _got3 = minimum_opsets(_aliased)
except Exception as _exc:
    _got3 = f"{type(_exc).__name__}: {_exc}"
assert _got3 == _want, (
    f"the mixed model with its default domain imported as 'ai.onnx' (the same domain as ''): "
    f"expected {_want!r}, got {_got3!r}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Version compatibility
#
# **Why it matters.** "It works on my machine" for models usually means "my runtime is newer
# than yours". Three rules decide whether a runtime loads a model:
#
# 1. the model's **IR version** must not exceed the highest IR version the runtime reads;
# 2. each imported **opset** must be one the runtime supports *for that domain* (ai.onnx and
#    ai.onnx.ml have separate version numbers and separate limits);
# 3. every node needs a **kernel** in the runtime for the schema version in force (a runtime
#    may drop very old opsets, and an operator may be missing at a given opset).
#
# ### 4.1 What does *your* onnxruntime accept? Measured
#
# Rather than quoting a compatibility table, we build one tiny model per version and try to
# load it (`course.opsets.probe_opsets` and `probe_ir_versions`).

# %%
probe_ir = opsets.probe_ir_versions()
probe_ai = opsets.probe_opsets("")
probe_ml = opsets.probe_opsets("ai.onnx.ml")
for probe in (probe_ir, probe_ai, probe_ml):
    low, high = probe.accepted_range
    print(f"onnxruntime {ort.__version__} loads {probe.what:17s} {low} to {high}")
opsets.probe_figure(
    probe_ir,
    probe_ai,
    probe_ml,
    title=f"What onnxruntime {ort.__version__} loads (measured on this machine)",
)

# %% [markdown]
# *What to see*: a green band per row; to the right of it the runtime refuses versions newer
# than it knows, and on the left of the ai.onnx row it has no kernels for the oldest opsets.
#
# The runtime's reasons, in its own words:

# %%
pd.concat([p.to_frame().assign(probe=p.what) for p in (probe_ir, probe_ai, probe_ml)]).query(
    "outcome != 'accepted'"
).groupby(["probe", "outcome"]).head(1)

# %% [markdown]
# ### 4.2 Troubleshooting: "Unsupported model IR version"
#
# A model exported by a newer toolchain (newer onnx, newer exporter) carries a newer IR
# version than an older runtime reads (onnxruntime issues #20559, #15874). Here we stamp the
# IR version one past what this runtime accepts, as the next onnx release would:

# %%
from_newer_tool = onnx.ModelProto()
from_newer_tool.CopyFrom(hand)
from_newer_tool.ir_version = probe_ir.accepted_range[1] + 1
print("load:", opsets.load_error(from_newer_tool))

# %% [markdown]
# The fix: stamp the lowest IR version the model's opsets need (or export with an older
# onnx), and check again. Lowering the IR version is safe only while the model uses no newer
# format feature (the checker tells you).

# %%
from_newer_tool.ir_version = helper.find_min_ir_version_for(from_newer_tool.opset_import)
onnx.checker.check_model(from_newer_tool, full_check=True)
print(f"IR version {from_newer_tool.ir_version}:", opsets.load_error(from_newer_tool) or "loads")

# %% [markdown]
# ### 4.3 Troubleshooting: the ai.onnx.ml opset mismatch
#
# Models for classical ML import *two* opsets, and each has its own limit in the runtime. A
# model whose ai.onnx.ml stamp is newer than the runtime supports fails to load (onnxruntime
# issues #5905, #11898: "Current official support for domain ai.onnx.ml is till opset ...").
# It happens when a tool stamps the newest ai.onnx.ml version it knows, or when models are
# merged or edited by hand. (The installed skl2onnx stamps the lowest version its operators
# need: our export says ai.onnx.ml 1.) We reproduce the failure with the exported pipeline
# stamped one ai.onnx.ml version past what this runtime accepts:

# %%
newer_ml = onnx.ModelProto()
newer_ml.CopyFrom(exported)
for imp in newer_ml.opset_import:
    if imp.domain == "ai.onnx.ml":
        imp.version = probe_ml.accepted_range[1] + 1
print("load:", opsets.load_error(newer_ml))

# %% [markdown]
# Two fixes. When you convert, pin the target opset **per domain**
# (`target_opset={"": 18, "ai.onnx.ml": 3}`, as in section 1), not with a single number. When
# you only have the model, lower the ai.onnx.ml stamp to what the runtime accepts, but only
# after checking that none of the model's ai.onnx.ml operators changed between the two
# versions (their histories below), then check and compare outputs:

# %%
runtime_ml = probe_ml.accepted_range[1]
ml_ops = sorted({n.op_type for n in newer_ml.graph.node if n.domain == "ai.onnx.ml"})
print({op_type: opsets.operator_history(op_type, "ai.onnx.ml") for op_type in ml_ops})
for imp in newer_ml.opset_import:
    if imp.domain == "ai.onnx.ml":
        imp.version = runtime_ml
onnx.checker.check_model(newer_ml, full_check=True)
print(f"ai.onnx.ml {runtime_ml}:", opsets.load_error(newer_ml) or "loads")
same = session(newer_ml).run(None, {"X": split.X_test})[1]
print(
    f"max |restamped - exported| = {np.abs(same - session(exported).run(None, {'X': split.X_test})[1]).max():.1e}"
)

# %% [markdown]
# ### 4.4 Troubleshooting: operator not available at the requested opset
#
# `Gelu` became an ONNX operator in opset 20. Asking for it at opset 18 fails in the checker
# and in the runtime (pytorch issues #49005, #131635 report the same class of error from the
# exporter):


# %%
def gelu_model(opset: int, nodes: list[onnx.NodeProto], initializers=()) -> onnx.ModelProto:
    imports_ = [helper.make_opsetid("", opset)]
    return helper.make_model(
        helper.make_graph(
            nodes,
            "gelu",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
            initializer=list(initializers),
        ),
        opset_imports=imports_,
        ir_version=helper.find_min_ir_version_for(imports_),
    )


gelu_18 = gelu_model(18, [helper.make_node("Gelu", ["x"], ["y"])])
try:
    onnx.checker.check_model(gelu_18)
except onnx.checker.ValidationError as exc:
    print("checker:", str(exc).splitlines()[0])
print("runtime:", opsets.load_error(gelu_18)[:120])
try:
    opsets.schema_at("Gelu", 18)
except opsets.OperatorNotAvailableError as exc:
    print("schema: ", exc)

# %% [markdown]
# Two fixes. Raise the opset to 20 (when every target runtime supports it), or rewrite the
# operator with older ones: `gelu(x) = 0.5 · x · (1 + erf(x / √2))` exists at opset 18. Both
# give the same numbers:

# %%
gelu_20 = gelu_model(20, [helper.make_node("Gelu", ["x"], ["y"])])
rewritten_18 = gelu_model(
    18,
    [
        helper.make_node("Div", ["x", "sqrt2"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["one_plus"]),
        helper.make_node("Mul", ["x", "one_plus"], ["x_one_plus"]),
        helper.make_node("Mul", ["x_one_plus", "half"], ["y"]),
    ],
    [
        numpy_helper.from_array(np.array(np.sqrt(2), np.float32), "sqrt2"),
        numpy_helper.from_array(np.array(1, np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ],
)
xs = np.linspace(-4, 4, 101, dtype=np.float32)
y20, y18 = (session(m).run(None, {"x": xs})[0] for m in (gelu_20, rewritten_18))
print(f"max |Gelu at opset 20 - rewrite at opset 18| = {np.abs(y20 - y18).max():.2e}")

# %% [markdown]
# ### 4.5 Converting between opsets
#
# `onnx.version_converter.convert_version` rewrites a model for another opset, using one
# adapter per operator change. We convert the hand-built model to every opset and measure:
# does the result pass the checker, load, and give the same probabilities?

# %%
from onnx import version_converter

rows = []
for target in range(7, opsets.latest_opset() + 1):
    try:
        converted = version_converter.convert_version(hand, target)
        onnx.checker.check_model(converted, full_check=True)
        p = session(converted).run(None, {"x": split.X_test})[1]
        rows.append(
            {
                "target opset": target,
                "result": "ok",
                "max |Δ prob|": float(np.abs(p - probabilities).max()),
            }
        )
    except Exception as exc:  # the converter's own message says which adapter is missing
        rows.append(
            {
                "target opset": target,
                "result": str(exc).split("failed: ")[-1][:60],
                "max |Δ prob|": None,
            }
        )
conversion = pd.DataFrame(rows).set_index("target opset")
conversion.reset_index().groupby("result", sort=False).agg(
    from_opset=("target opset", "min"),
    to_opset=("target opset", "max"),
    largest_probability_change=("max |Δ prob|", "max"),
)

# %% [markdown]
# Up-conversion works; down-conversion stops where an adapter is missing (here `Gemm` has no
# adapter below its opset-13 schema). When a conversion is possible it may change the graph:
# `ReduceMean` takes `axes` as an attribute up to opset 17 and as an input from 18.

# %%
reduce_17 = helper.make_model(
    helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=1)],
        "reduce",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1])],
    ),
    opset_imports=[helper.make_opsetid("", 17)],
    ir_version=8,
)
reduce_18 = version_converter.convert_version(reduce_17, 18)
print(onnx.printer.to_text(reduce_18.graph))
x3 = rng.normal(size=(4, 3)).astype(np.float32)
diff = np.abs(
    session(reduce_18).run(None, {"x": x3})[0] - session(reduce_17).run(None, {"x": x3})[0]
).max()
print(f"max |opset 18 - opset 17| = {diff:.1e}")

# %% [markdown]
# What breaks if you only *re-stamp* the version instead of converting:

# %%
restamped = onnx.ModelProto()
restamped.CopyFrom(reduce_17)
restamped.opset_import[0].version = 18
try:
    onnx.checker.check_model(restamped)
except onnx.checker.ValidationError as exc:
    print("checker:", str(exc).splitlines()[0])
try:
    version_converter.convert_version(gelu_20, 18)
except RuntimeError as exc:
    print("down-converting Gelu:", str(exc).split("failed: ")[-1])

# %% [markdown]
# **What to notice.** Compatibility is measured per runtime and per domain, not assumed from
# version numbers. Convert with `version_converter` (never by editing the stamp), then check
# and compare outputs. When conversion is impossible, rewrite the operator.

# %% [markdown]
# ### 4.6 A real model in three exports: Silero VAD
#
# *Why it matters*: the models above are ours, a few nodes each. Models you download were
# exported by someone else, with an exporter and an opset you did not choose, and the same model
# can reach you as several files. **Silero VAD** (a voice-activity detector trained in PyTorch by
# the Silero team) ships inside its PyPI wheel, `silero-vad`, pinned by the course: no download.
# The wheel holds six ONNX files of one model; `course.pretrained` finds them with
# `importlib.resources`. Read three of them the way this lesson taught: IR version, opset
# imports, producer, inputs and outputs.

# %%
from course import pretrained

VAD_FILES = ["silero_vad.onnx", "silero_vad_16k_op15.onnx", "silero_vad_op18_ifless.onnx"]


def io_text(values) -> str:
    return ", ".join(f"{v.name} {onnx.helper.printable_type(v.type)}" for v in values)


vad_rows = []
for vad_name in VAD_FILES:
    vad_path = pretrained.silero_file(vad_name)
    vad_model = onnx.load(vad_path)
    vad_tree = pretrained.graph_tree(vad_path)
    vad_rows.append(
        {
            "file": vad_name,
            "KB": vad_path.stat().st_size // 1024,
            "ir_version": vad_model.ir_version,
            "opsets": {o.domain or "ai.onnx": o.version for o in vad_model.opset_import},
            "producer": f"{vad_model.producer_name} {vad_model.producer_version}".strip(),
            "inputs": io_text(vad_model.graph.input),
            "outputs": io_text(vad_model.graph.output),
            "graphs": len(vad_tree),
            "If nodes": sum(row["If"] for row in vad_tree),
            "nodes (all graphs)": sum(row["nodes"] for row in vad_tree),
        }
    )
pd.DataFrame(vad_rows).set_index("file").T

# %% [markdown]
# *What to notice*: three producers (spox, a Python library that writes ONNX directly, and two
# releases of `torch.onnx`), three opsets, two IR versions, for one model. Each takes the audio
# (`input`, 64 samples of the previous chunk plus 512 new ones at 16 kHz), the sample rate `sr`
# as a scalar, and the recurrent **state** `state` (`[2, batch, 128]`: an LSTM's hidden and cell
# vectors), and returns the speech probability `output` and the next state `stateN`. The graph
# holds no memory between calls: the caller feeds `stateN` back as `state` on the next chunk.
#
# **Control flow.** Count the `If` nodes. Every `If` carries two subgraphs, and a subgraph can
# hold more `If`s: walk the tree of the opset-15 file.

# %%
vad_tree = pd.DataFrame(pretrained.graph_tree(pretrained.silero_file("silero_vad_16k_op15.onnx")))
print(f"{len(vad_tree)} graphs, nested {vad_tree.depth.max()} deep; the first levels:")
vad_tree[vad_tree.depth <= 2][["depth", "nodes", "If", "path"]]

# %% [markdown]
# Follow each main-graph `If`'s condition back to its inputs (as in 1.1) and you find shapes:
# "is this dimension 1?" (squeeze it or not) and "is the state empty?" (a first call starts
# the LSTM from zeros). Python `if`s on shapes in the model's code, kept by the exporter as graph
# control flow. The spox file adds one more at the top, `If(sr == 16000)`, whose two branches
# are the 16 kHz and the 8 kHz networks. Runtimes must run subgraphs, and tools must walk into
# them: a tool that reads only `graph.node` sees a fraction of this model. Now compare two
# exports operator by operator,
# counting inside every subgraph:

# %%
ops_15 = pretrained.operator_counts(pretrained.silero_file("silero_vad_16k_op15.onnx"))
ops_18 = pretrained.operator_counts(pretrained.silero_file("silero_vad_op18_ifless.onnx"))
op_diff = pd.DataFrame({"opset 15 (torch 2.3)": ops_15, "opset 18 (torch 2.9)": ops_18})
op_diff = op_diff.fillna(0).astype(int)
op_diff = op_diff[op_diff.iloc[:, 0] != op_diff.iloc[:, 1]]
print("only in opset 15:", sorted(op_diff.index[op_diff.iloc[:, 1] == 0]))
print("only in opset 18:", sorted(op_diff.index[op_diff.iloc[:, 0] == 0]))

# %%
import matplotlib.pyplot as plt

from course.palette import BLUE, ORANGE

vad_fig, vad_ax = plt.subplots(figsize=(9, 6))
vad_pos = np.arange(len(op_diff))
vad_ax.barh(vad_pos - 0.2, op_diff.iloc[:, 0], height=0.4, color=BLUE, label=op_diff.columns[0])
vad_ax.barh(vad_pos + 0.2, op_diff.iloc[:, 1], height=0.4, color=ORANGE, label=op_diff.columns[1])
vad_ax.set_yticks(vad_pos, op_diff.index)
vad_ax.set_xscale("symlog")
vad_ax.set(xlabel="nodes in all graphs (symmetric log scale)", ylabel="operator")
vad_ax.set_title("Silero VAD: operators whose count differs between two exports")
vad_ax.legend()
vad_fig.tight_layout()
plt.show()

# %% [markdown]
# *What to see*: the opset-15 export keeps the LSTM as one `LSTM` node and its shape logic as
# `Shape`/`Gather`/`Slice`/`Unsqueeze` chains and `Constant` nodes; the opset-18 export writes
# the LSTM cell out as `Gemm`, `Sigmoid`, `Tanh` and `Mul`, stores weights as initializers (no
# `Constant`), and has one `If` left, on the sample rate (each branch a full copy of the
# network: hence twice the `Conv`s). "If-less" means no `If` inside the network. Different graphs; the same function? Run both on the same audio
# (synthetic speech and noise made from a seed, chunk by chunk with the state carried):

# %%
vad_clip = pretrained.speech_and_noise(seed=0, seconds=0.5)
p15 = pretrained.vad_onnx("silero_vad_16k_op15.onnx", vad_clip.samples)
p18 = pretrained.vad_onnx("silero_vad_op18_ifless.onnx", vad_clip.samples)
print(f"{len(p15)} chunks; largest |p_opset15 - p_opset18| = {np.abs(p15 - p18).max():.1e}")

# %% [markdown]
# *What to notice*: the opset, the exporter and the graph's shape change; the numbers agree to
# float32 rounding. When a runtime rejects one export (an old runtime and opset 18, or a tool
# that cannot walk into `If`), another export of the same model, or `version_converter`, is the
# way out; which one you can use is measured, as in 4.1.

# %% [markdown]
# ## Exercise 3 (debug, 4 points)
#
# A colleague edited a model by hand: a scaler (`ai.onnx.ml` `Scaler`) followed by a linear
# layer (`MatMul`, `Add`). It no longer loads. The function below rebuilds it with the same
# three faults for any seed (the weights change with the seed).


# %%
def make_broken_model(seed: int = 0) -> onnx.ModelProto:
    """y = ((x - offset) * scale) @ W + b, broken the way hand edits break models."""
    r = np.random.default_rng(seed)
    n_in, n_out = 3 + seed % 3, 2 + seed % 2
    scaler = helper.make_node(
        "Scaler",
        ["x"],
        ["scaled"],
        domain="ai.onnx.ml",
        offset=r.normal(size=n_in).round(3).tolist(),
        scale=r.uniform(0.5, 2.0, size=n_in).round(3).tolist(),
    )
    graph = helper.make_graph(
        [
            scaler,
            helper.make_node("MatMul", ["scaled", "W"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["y"]),
        ],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
        initializer=[
            numpy_helper.from_array(r.normal(size=(n_in, n_out)), "W"),
            numpy_helper.from_array(r.normal(size=n_out), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = onnx.IR_VERSION + 1  # saved by a newer tool
    return model


broken = make_broken_model(0)
try:
    onnx.checker.check_model(broken, full_check=True)
except Exception as exc:
    print("checker:", str(exc).splitlines()[0])
print("runtime:", opsets.load_error(broken)[:100])

# %% [markdown]
# Write `repair(model)` that returns a repaired model (a copy, or the same object) which
#
# - passes `onnx.checker.check_model(model, full_check=True)` and loads in the installed
#   onnxruntime;
# - computes what the colleague meant, `((x - offset) * scale) @ W + b` in float32, with the
#   offset, scale, W and b stored in the broken model;
# - keeps the nodes as they are (same operators in the same order): repair, do not rebuild.
#
# Fix one error at a time: run the checker, read the message, fix, repeat. Your function must
# work for any seed, so fix the *kind* of fault, not this one model.


# %% nbgrader={"solution": true, "grade_id": "ex3-repair"}
def repair(model: onnx.ModelProto) -> onnx.ModelProto:
    ### BEGIN SOLUTION
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    imported = {imp.domain for imp in fixed.opset_import}
    for domain in sorted({node.domain for node in fixed.graph.node} - imported):
        # any version this runtime supports for that domain (measured in section 4.1)
        fixed.opset_import.append(helper.make_opsetid(domain, 3 if domain == "ai.onnx.ml" else 18))
    for tensor in fixed.graph.initializer:
        if tensor.data_type == TensorProto.DOUBLE:
            values = numpy_helper.to_array(tensor).astype(np.float32)
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    fixed.ir_version = helper.find_min_ir_version_for(fixed.opset_import)
    return fixed
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex3-loads", "points": 1}
import onnx as _onnx
import onnxruntime as _ort3


def _session3(model):
    return _ort3.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


_fixed0 = repair(make_broken_model(0))
assert isinstance(_fixed0, _onnx.ModelProto), (
    f"expected an onnx.ModelProto, got {type(_fixed0).__name__}"
)
try:
    _onnx.checker.check_model(_fixed0, full_check=True)
except Exception as _exc:  # ValidationError, or InferenceError from strict shape inference
    raise AssertionError(
        f"expected the repaired model to pass the checker (full_check=True), got: "
        f"{str(_exc).strip()[:300]}"
    ) from None
try:
    _session3(_fixed0)
except Exception as _exc:
    raise AssertionError(
        f"expected onnxruntime to load the repaired model, got: {str(_exc).strip()[-160:]}"
    ) from None

# %% nbgrader={"grade": true, "grade_id": "ex3-values", "points": 2}
from onnx import helper as _h
from onnx import numpy_helper as _nh


def _intended(seed, x):
    original = make_broken_model(seed)
    att = {a.name: np.array(_h.get_attribute_value(a)) for a in original.graph.node[0].attribute}
    w = {t.name: _nh.to_array(t) for t in original.graph.initializer}
    return ((x - att["offset"]) * att["scale"]) @ w["W"] + w["b"]


def _check_values(seed, batch):
    fixed = repair(make_broken_model(seed))
    n_in = fixed.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    x = np.random.default_rng(100 + seed).normal(size=(batch, n_in)).astype(np.float32)
    got = _session3(fixed).run(None, {"x": x})[0]
    want = _intended(seed, x)
    assert got.dtype == np.float32 and got.shape == want.shape, (
        f"seed {seed}: expected float32 output of shape {want.shape}, got {got.dtype} {got.shape}"
    )
    err = float(np.abs(got - want).max())
    assert err < 1e-4, (
        f"seed {seed}: expected ((x - offset) * scale) @ W + b within 1e-4, got max error {err:.3g}"
    )


_check_values(0, 5)
### BEGIN HIDDEN TESTS
_check_values(1, 3)
_check_values(5, 7)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex3-faithful", "points": 1}
for _seed in (0, 2):
    _fixed = repair(make_broken_model(_seed))
    _ops = [(n.op_type, n.domain) for n in _fixed.graph.node]
    assert _ops == [("Scaler", "ai.onnx.ml"), ("MatMul", ""), ("Add", "")], (
        f"seed {_seed}: expected the nodes kept as Scaler (ai.onnx.ml), MatMul, Add; got {_ops}"
    )
    _dtypes = {t.name: t.data_type for t in _fixed.graph.initializer}
    assert set(_dtypes.values()) == {_onnx.TensorProto.FLOAT}, (
        f"seed {_seed}: expected float32 initializers (data_type 1), got {_dtypes}"
    )
### BEGIN HIDDEN TESTS
_ml = [i.version for i in _fixed.opset_import if i.domain == "ai.onnx.ml"]
assert len(_ml) == 1, f"expected one ai.onnx.ml opset import, got {len(_ml)}"
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - An ONNX file is one protobuf **ModelProto**: IR version, opset imports per domain,
#   metadata, functions, and a **GraphProto** of **nodes** (operator calls connected by tensor
#   names), **initializers** (weights) and typed inputs, outputs and value_info.
# - Build models with `onnx.helper`, onnxscript or the text syntax; always run the checker and
#   strict shape inference, and compare two runtimes (onnxruntime, `onnx.reference`).
# - The **IR version** versions the file format; the **opset** versions the operators, one
#   number per domain. An operator's meaning is its schema at the model's opset.
# - Weights over 2 GiB must be **external data**; load, check and shape-infer such models by
#   path (`infer_shapes_path`).
# - Besides tensors, values can be sequences, maps, optionals and sparse tensors; `Loop` and
#   `Scan` run subgraphs. Run such models in both engines: their support differs.
# - Where ONNX's shape inference leaves `unk__` dimensions, ONNX Runtime's symbolic shape
#   inference can compute them.
# - What a runtime accepts is measured, not assumed: probe it, then stamp the lowest IR version
#   and opsets your model needs, convert with `version_converter`, and verify outputs.
# - A real model (Silero VAD) reaches you as several exports: different producers, opsets, IR
#   versions and graphs (nested `If`s, an `LSTM` node or its cell written out), one function.
#   Count operators in every subgraph, and treat recurrent state as an input and an output.
#
# **Common pitfalls**
# - `helper.make_model` stamps the newest IR version: older runtimes refuse the file.
# - Pinning only the main opset: the ai.onnx.ml stamp can exceed the runtime's limit.
# - Editing `opset_import` instead of converting: operators whose signature changed break.
# - float64 NumPy weights in a float32 graph: the checker reports an inconsistent type.
# - Forgetting the `ai.onnx.ml` opset import when adding an ML operator by hand.
# - Passing an external-data model to a runtime as bytes; saving with external data rewrites
#   the in-memory message.
# - Casting to int8 or int4 to quantize: an out-of-range float-to-integer cast is undefined in
#   the specification, and engines differ; use `QuantizeLinear`.
#
# **Further reading**
# - *Open Neural Network Exchange Intermediate Representation (ONNX IR) Specification*
#   (onnx/docs/IR.md in the ONNX repository).
# - *ONNX Operators* and *ONNX-ML Operators* (onnx/docs/Operators.md, Operators-ml.md).
# - *ONNX Versioning* (onnx/docs/Versioning.md) and *ONNX Runtime compatibility*
#   (onnxruntime.ai documentation, "Compatibility").
# - *External Data* (onnx/docs/ExternalData.md) and *Python API Overview* in the ONNX docs
#   (shape inference, `infer_shapes_path`, sequences and control flow with `onnx.helper`).
# - ONNX Runtime, `onnxruntime/python/tools/symbolic_shape_infer.py` (its docstring and
#   `--help`).
# - *onnxscript documentation*, "Tutorial".
# - Silero Team, *Silero VAD: pre-trained enterprise-grade Voice Activity Detector*
#   (github.com/snakers4/silero-vad; the `silero-vad` package on PyPI).
# - *Protocol Buffers documentation*, "Encoding".
# - Micikevicius et al., *FP8 Formats for Deep Learning* (2022).
