# %% [markdown]
# # Lesson 3 — Converting models to ONNX, and what to do when it fails
#
# Most people meet ONNX with a model in hand and a converter that refuses it. This lesson
# converts the same kind of model from three frameworks, step by step with each library's own
# calls, then reproduces the failures learners report most, one cell each, and fixes them.
#
# **After this lesson you will be able to**
# 1. export a PyTorch model with `torch.onnx.export(..., dynamo=True)`, declare dynamic
#    dimensions with `torch.export.Dim`, and verify the result against eager PyTorch;
# 2. convert a Keras 3 model with tf2onnx through a route that works (SavedModel, or tf_keras);
# 3. convert scikit-learn pipelines with mixed column types, choose converter options and target
#    opsets, register a converter for your own transformer, keep float64 precision where float32
#    breaks parity, and convert XGBoost and LightGBM models with onnxmltools;
# 4. recognise the common conversion failures from their symptoms, fix them, and prove the fix
#    with a measured comparison.
#
# **Prerequisites**: lessons 1 and 2 (what a graph, an operator and an opset are); basic
# PyTorch, Keras and scikit-learn. **Estimated time**: 100-195 minutes.
# (For a first-time learner; estimated from the notebook's length, not yet timed with learners:
# the text read at 120-180 words per minute, half a minute to a minute to run and read each
# code cell, 10-20 minutes per exercise.)
#
# **How to check your answers**: in JupyterLab press *Validate* (nbgrader's button). Without
# an instructor, run the visible test cells after each exercise: they print nothing when your
# answer is right and say what was expected and what was got when it is not; `course.check()`
# runs them all.

# %% [markdown]
# ## 0. Setup
#
# TensorFlow reads `TF_CPP_MIN_LOG_LEVEL` once, when it is first imported, so we set it before
# anything else. The PyTorch exporter in torch 2.13 triggers an internal `FutureWarning` from its
# own pytree code on every export and logs "torchvision is not installed" notices; we silence
# exactly those two, so the warnings you do see are the ones that matter. Tiny models run
# fastest on one thread on a small shared machine.

# %%
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # before any TensorFlow import (section 2)

import copy
import importlib.util
import logging
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from course import data, inspect, troubleshoot, verify, widgets

warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
torch.set_num_threads(1)
# exported files go to a temporary folder, not next to the notebook
WORK = data.workdir("lesson03")  # every file this lesson writes; removed when the kernel stops
split = data.load_digits_split()  # 8x8 digit images as 64 float32 features in [0, 1]
print(f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}")
print(f"digits: {split.X_train.shape[0]} training and {split.X_test.shape[0]} test rows")


# %% [markdown]
# One small helper: an ONNX Runtime session on the CPU that logs only errors and uses one
# thread, plenty for models this small.


# %%
def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """An ONNX Runtime CPU session for a ModelProto (one thread: the models here are tiny)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


# %% [markdown]
# ### The map: three converters, three pipelines
#
# Each converter takes a model through a different pipeline. Knowing the stages tells you where
# to look when one fails: the numbered markers are the failures of section 4's gallery, placed at
# the stage where they happen. The figure is drawn by `course.troubleshoot`.

# %%
fig = troubleshoot.draw_export_pipelines()
plt.show()

# %% [markdown]
# *What to see*: PyTorch fails mostly while **capturing** the graph (control flow, shapes) or
# **translating** operators; a Keras 3 `Sequential` model fails at the very first step of
# tf2onnx's Keras reader;
# scikit-learn fails while **parsing** (a step without a converter) or surprises you in the
# **options** (ZipMap).

# %% [markdown]
# ## 1. PyTorch to ONNX
#
# **Why it matters.** `torch.onnx.export` is how almost every PyTorch model reaches ONNX
# Runtime, TensorRT or a browser. Since torch 2.9 it uses `torch.export` to capture the model
# (`dynamo=True` is the default); the older TorchScript-based exporter is legacy.
#
# We train a small digit classifier with three things that behave differently in training and
# in inference: input-noise augmentation written as an `if self.training:` branch, batch
# normalisation, and dropout (that matters in section 4).


# %%
class DigitNet(nn.Module):
    """64 pixels -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # noise augmentation, a common regulariser
            x = x + 0.05 * torch.randn_like(x)
        return self.body(x)


torch.manual_seed(0)
net = DigitNet()
optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
X_train, y_train = torch.from_numpy(split.X_train), torch.from_numpy(split.y_train)
for _ in range(80):  # full-batch steps: a fraction of a second
    optimizer.zero_grad()
    nn.functional.cross_entropy(net(X_train), y_train).backward()
    optimizer.step()
net.eval()  # inference behaviour: dropout off, batch norm uses its running statistics
with torch.no_grad():
    accuracy = (net(torch.from_numpy(split.X_test)).argmax(1).numpy() == split.y_test).mean()
print(f"test accuracy: {accuracy:.1%}")

# %% [markdown]
# ### 1.0 Before the first export: `onnxscript`
#
# The dynamo exporter writes ONNX through the `onnxscript` package, and torch's wheel does not
# depend on it: `pip install torch` alone gives "No module named 'onnxscript'" at the first
# export (pytorch #103764, ultralytics #20348). An `onnxscript` much older than your torch fails
# in other ways, so install the version your torch release was tested with. Check before you
# export:

# %%
from importlib import metadata

if importlib.util.find_spec("onnxscript") is None:
    print("onnxscript is missing: pip install onnxscript")
else:
    print(f"onnxscript {metadata.version('onnxscript')} is installed (torch {torch.__version__})")

# %% [markdown]
# To see what a learner without it gets, `troubleshoot.missing_package` hides the installed
# package while we export. That only works before the exporter has loaded `onnxscript` in this
# process, which is why it comes first.

# %%
if "onnxscript" in sys.modules:
    print("this kernel has already loaded onnxscript: restart it to see the error here")
else:
    with troubleshoot.missing_package("onnxscript"):
        no_onnxscript = troubleshoot.attempt(
            torch.onnx.export,
            nn.Linear(2, 2).eval(),
            (torch.ones(1, 2),),
            dynamo=True,
            verbose=False,
        )
    print(no_onnxscript.report())

# %% [markdown]
# ### 1.1 Export with an example input
#
# The exporter runs the model on **example inputs** to capture its graph. It returns an
# `ONNXProgram`. `verbose=False` keeps its progress lines quiet.

# %%
example = torch.from_numpy(split.X_test[:1])  # one row, float32, shape (1, 64)
fixed_program = torch.onnx.export(net, (example,), dynamo=True, verbose=False)
print(type(fixed_program).__name__)
print("inputs:", troubleshoot.input_signature(fixed_program.model_proto))

# %% [markdown]
# *What to notice*: the input's shape is `[1, 64]`. The example's batch size of 1 became part of
# the model; ONNX Runtime will refuse any other batch (section 4 shows the error).
#
# ### 1.2 Dynamic dimensions
#
# Declare which dimensions may vary with `dynamic_shapes`, keyed by the names of `forward`'s
# arguments, using `torch.export.Dim` (a name, and optionally a range).

# %%
batch = torch.export.Dim("batch", min=1, max=4096)
program = torch.onnx.export(
    net, (example,), dynamic_shapes={"x": {0: batch}}, dynamo=True, verbose=False
)
print("inputs:", troubleshoot.input_signature(program.model_proto))

# %% [markdown]
# The input is now `['batch', 64]`: a named, free dimension.
#
# **Coming from older code? `dynamic_axes`** (pytorch #165748, #150940). Tutorials written for
# the TorchScript exporter pass `input_names=[...]` and `dynamic_axes={...}`. With
# `dynamo=True` that argument is still accepted, but it is translated into `Dim.DYNAMIC` hints
# with deprecation warnings, and where the model pins the size you get a "Constraints violated"
# or "inferred a static shape" error instead of the result you had before. Watch what it says:

# %%
old_style = troubleshoot.attempt(
    torch.onnx.export, net, (example,), dynamo=True, verbose=False,
    input_names=["x"], dynamic_axes={"x": {0: "batch"}},
)  # fmt: skip
print(old_style.report())
print("inputs:", troubleshoot.input_signature(old_style.value.model_proto))

# %% [markdown]
# *What to notice*: it works here, with two warnings telling you to move on. The translation
# is mechanical: `dynamic_axes={"x": {0: "batch"}}` becomes
# `dynamic_shapes={"x": {0: torch.export.Dim("batch")}}`, where `"x"` is the `forward`
# argument's name.
#
# ### 1.3 A dynamic dimension the model itself fixes
#
# Declaring a dimension dynamic is a request, not a guarantee. Here is a model that treats each
# image as 8 rows of 8 pixels, with one common bug: a batch size typed into a `view`.


# %%
class RowConv(nn.Module):
    """(batch, 8, 8) image rows -> 10 logits; ``hard_coded`` reproduces a common bug."""

    def __init__(self, hard_coded: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4 * 8, 10)
        self.hard_coded = hard_coded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        if self.hard_coded:
            return self.head(h.view(4, -1))  # the bug: the batch size 4, typed in
        return self.head(h.flatten(1))  # the fix: keep dimension 0, whatever it is


rows4 = torch.from_numpy(split.X_test[:4].reshape(4, 8, 8))
dims = {"x": {0: torch.export.Dim("batch")}}
buggy = torch.onnx.export(
    RowConv(hard_coded=True).eval(), (rows4,), dynamic_shapes=dims, dynamo=True, verbose=False
)
flattened = torch.onnx.export(
    RowConv(hard_coded=False).eval(), (rows4,), dynamic_shapes=dims, dynamo=True, verbose=False
)
print("hard-coded view:", troubleshoot.input_signature(buggy.model_proto))
print("flatten(1):     ", troubleshoot.input_signature(flattened.model_proto))

# %% [markdown]
# *What to notice*: we asked for a dynamic batch both times, and the buggy model came back with
# a **fixed** batch of 4, silently. `torch.export` found that the code pins dimension 0 to 4 and
# suggested making it static; `torch.onnx.export` applies such suggestions and carries on
# (pytorch #148886 is a learner meeting exactly this; onnx/tutorials #163 and onnxruntime
# #19270 report the same "dynamic batch that is really fixed"). The habit that catches it:
# **read the exported input shape, and run the model at several batch sizes**.
#
# ### 1.4 The ONNXProgram
#
# The returned object holds the ONNX model and can run it.

# %%
program.save(WORK / "digitnet.onnx")
proto = program.model_proto  # an onnx.ModelProto, as in lesson 2
print("opsets:", {o.domain or "ai.onnx": o.version for o in proto.opset_import})
print("operators:", Counter(node.op_type for node in proto.graph.node))
print("file:", (WORK / "digitnet.onnx").stat().st_size, "bytes")
print("program(x) runs ONNX Runtime:", program(example)[0].shape)

# %% [markdown]
# *What to notice*: no `BatchNormalization` and no `Dropout` node. In eval mode, batch norm is
# an affine map, so the exporter's optimizer folded it into the first `Gemm`; dropout is the
# identity and disappeared. The graph is three operators deep.
#
# ### 1.5 Verification against eager PyTorch
#
# A conversion is finished when it is verified: same inputs, both models, measured difference,
# at several batch sizes, with tolerances chosen from the dtype (float32: `rtol=1e-4`,
# `atol=1e-5`). `course.verify.verify` runs ONNX Runtime and ONNX's reference evaluator and
# reports the largest errors.

# %%
report = None
for n in (1, 7, 256):
    rows = split.X_test[:n]
    with torch.no_grad():
        expected = net(torch.from_numpy(rows)).numpy()
    case = verify.verify(proto, rows, expected, case=f"batch {n}")
    report = case if report is None else report + case
report

# %% [markdown]
# *What to notice*: every row passes; the largest absolute errors are a few millionths, float32
# rounding from a different order of operations, not a conversion bug. Both runtimes agree, and
# every batch size runs.

# %% [markdown]
# Here is the graph itself, drawn from the exported model.

# %%
inspect.draw_graph(proto, title="DigitNet exported with a dynamic batch")

# %% [markdown]
# *What to see*: three nodes for five PyTorch layers; the first `Gemm` holds 32 x 64 weights with
# batch norm already folded in, and every edge carries the symbolic `batch` dimension.

# %% [markdown]
# ### 1.6 The legacy TorchScript exporter, and why it is being left
#
# `dynamo=False` selects the TorchScript-based exporter. It **traces**: it runs the model once
# and records the operations that happened. It is fast and often works, but it cannot see
# control flow, it trusts `dynamic_axes` blindly, and it lives on TorchScript, which torch
# itself now deprecates: in the installed torch, `torch.jit.script` and `torch.jit.trace` warn
# that they are deprecated and point to `torch.compile` and `torch.export`. Measured:

# %%
print(troubleshoot.attempt(torch.jit.script, nn.Linear(2, 2)).report())

# %% [markdown]
# The legacy exporter warns too, and its warning is the point of this cell:

# %%
legacy = troubleshoot.attempt(
    torch.onnx.export, RowConv(hard_coded=True).eval(), (rows4,), WORK / "legacy.onnx",
    dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}},
)  # fmt: skip
print(legacy.report())
legacy_proto = onnx.load(WORK / "legacy.onnx")
print("inputs:", troubleshoot.input_signature(legacy_proto))
rows7 = split.X_test[:7].reshape(7, 8, 8)
print("batch 7:", troubleshoot.attempt(session(legacy_proto).run, None, {"x": rows7}).report())

# %% [markdown]
# *What to notice*: the legacy export of the buggy model **claims** a dynamic batch, and fails
# at batch 7 deep inside the graph, in a `Gemm` node. The dynamo exporter gave the same model an
# honest fixed input instead. Neither can make the bug go away: only `flatten(1)` does.

# %% [markdown]
# ### 1.7 Control flow: `torch.cond` becomes an ONNX `If`
#
# A Python `if` on a tensor's **value** is invisible to tracing and impossible for
# `torch.export` to capture (transformers #17773, pytorch #143222).


# %%
class SignFlip(nn.Module):
    """Doubles the input when its sum is positive, negates it otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return -x


positive, negative = torch.tensor([[1.0, 2.0]]), torch.tensor([[-1.0, -2.0]])
traced = troubleshoot.attempt(
    torch.onnx.export, SignFlip().eval(), (positive,), WORK / "signflip_legacy.onnx",
    dynamo=False, input_names=["x"],
)  # fmt: skip
print(traced.report())
traced_proto = onnx.load(WORK / "signflip_legacy.onnx")
print("operators:", [n.op_type for n in traced_proto.graph.node])
print(
    "legacy ONNX on a negative input:", session(traced_proto).run(None, {"x": negative.numpy()})[0]
)
print("eager PyTorch on the same input: ", SignFlip()(negative).numpy())

# %% [markdown]
# The tracer warned, recorded the branch the example took (`Mul` by 2), and produced a model
# that is wrong for every negative input. The dynamo exporter refuses instead:

# %%
refused = troubleshoot.attempt(
    torch.onnx.export, SignFlip().eval(), (positive,), dynamo=True, verbose=False
)
print(refused.report(max_lines=2))


# %% [markdown]
# The fix is to say "this is a branch" with `torch.cond(predicate, true_fn, false_fn, operands)`.
# Both branches are captured, and the exporter turns them into an ONNX `If` node.


# %%
class SignFlipCond(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(x.sum() > 0, lambda t: t * 2, lambda t: -t, (x,))


cond_program = torch.onnx.export(
    SignFlipCond().eval(), (positive,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
    dynamo=True, verbose=False,
)  # fmt: skip
cond_proto = cond_program.model_proto
print("operators:", [n.op_type for n in cond_proto.graph.node])
for x in (positive, negative):
    print(
        x.numpy(),
        "->",
        session(cond_proto).run(None, {"x": x.numpy()})[0],
        "eager:",
        SignFlipCond()(x).numpy(),
    )

# %% [markdown]
# *What to notice*: `ReduceSum`, `Greater`, then `If` with two subgraphs; both inputs give the
# eager answer. When a branch is cheap, `torch.where(condition, a, b)` (compute both, select) is
# an alternative that needs no subgraphs.

# %% [markdown]
# ### 1.8 A transformer encoder at realistic width
#
# **Why it matters.** The digits network has a few thousand parameters: exporting it proves the
# mechanics, but it hides what a real text model brings, two dynamic dimensions (batch *and*
# sequence length), an attention mask, and enough weights that a file's size and a call's
# latency are dominated by matrix products. `course.text_models` builds a BERT-shaped encoder of
# BERT-base width (768 hidden units, 12 heads, 3072 intermediate) with four layers, from a
# `transformers` config alone: random, seeded weights, saved with `save_pretrained` to a folder
# in the course cache, nothing downloaded. This is the code that builds and exports it:

# %%
from inspect import getsource

from course import text_models

print(getsource(text_models.build_encoder))
print(getsource(text_models.export_dynamo))

# %% [markdown]
# Building and exporting take about a minute, so `make course` (`python -m course.artefacts`) ran
# them once; here the same calls find the files in the cache and return at once.

# %%
start = time.perf_counter()
hf_folder = text_models.build_encoder()
encoder_path = text_models.encoder_onnx()
encoder = text_models.load_encoder()
print(f"cached build + load: {time.perf_counter() - start:.1f} s")
print("Hugging Face folder:", sorted(p.name for p in hf_folder.iterdir()))
print(f"parameters: {sum(p.numel() for p in encoder.parameters()) / 1e6:.1f} M")
print(f"ONNX file: {encoder_path.stat().st_size / 1e6:.1f} MB")
print("inputs:", troubleshoot.input_signature(onnx.load(encoder_path, load_external_data=False)))

# %% [markdown]
# *What to notice*: the parameter count and the file's size (four bytes a parameter), and the
# symbolic `batch` and `sequence` dimensions that `dynamic_shapes` gave both inputs.
#
# Parity, on shapes the export never saw (it was traced with batch 2 and 16 tokens): three
# sentences of 37 tokens with padding, then one of 128.

# %%
encoder_report = None
for n_rows, n_tokens in ((3, 37), (1, 128)):
    enc_feeds = text_models.sample_inputs(n_rows, n_tokens, seed=1)
    with torch.no_grad():
        enc_out = encoder(**{k: torch.from_numpy(v) for k, v in enc_feeds.items()})
    enc_case = verify.verify(
        encoder_path, enc_feeds, [enc_out.last_hidden_state.numpy(), enc_out.pooler_output.numpy()],
        atol=1e-4, rtol=1e-3, runtimes=("onnxruntime",), case=f"{n_rows} x {n_tokens}",
    )  # fmt: skip
    encoder_report = enc_case if encoder_report is None else encoder_report + enc_case
del encoder, enc_out  # 143 MB of weights this lesson needs no more
encoder_report

# %% [markdown]
# *What to notice*: the report's verdict for both outputs at both shapes. The tolerances are
# looser than the digits model's (`atol=1e-4`): four layers of 768-wide sums accumulate more
# float32 rounding; the largest errors, in the report, are what to compare them with.
#
# The attention mask is an input, not decoration: a padded sentence must give its real tokens the
# same vectors as the sentence alone. Measured on the ONNX model:

# %%
encoder_session = ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])
enc_padded = text_models.sample_inputs(2, 24, seed=2)  # row 1 is padded
real_tokens = int(enc_padded["attention_mask"][1].sum())
enc_alone = {k: v[1:2, :real_tokens] for k, v in enc_padded.items()}
in_batch = encoder_session.run(["last_hidden_state"], enc_padded)[0][1, :real_tokens]
by_itself = encoder_session.run(["last_hidden_state"], enc_alone)[0][0]
print(f"row 1: {real_tokens} real tokens of 24; largest difference, padded vs alone:")
print(f"  with its mask:    {np.abs(in_batch - by_itself).max():.2e}")
no_mask = dict(enc_padded, attention_mask=np.ones_like(enc_padded["attention_mask"]))
unmasked = encoder_session.run(["last_hidden_state"], no_mask)[0][1, :real_tokens]
print(f"  mask set to ones: {np.abs(unmasked - by_itself).max():.2e}")
del encoder_session

# %% [markdown]
# *What to notice*: with the mask, the padding changes the real tokens' vectors by float32
# rounding at most; with the mask set to ones, the real tokens attend to the padding too, and
# the second line shows how far their vectors move. A serving stack that batches sentences of
# unequal length must send the mask.
#
# **Hugging Face's own exporter.** `optimum-onnx` wraps this export for Hub models (`optimum-cli
# export onnx`) and works offline from a local folder such as `hf_folder`. Can it run here? Its
# version 0.1.0 declares `transformers>=4.36,<4.58` and `optimum~=2.1.0` (its wheel's metadata);
# checked against what is installed:

# %%

from packaging.specifiers import SpecifierSet

optimum_needs = SpecifierSet(">=4.36,<4.58")  # optimum-onnx 0.1.0's transformers requirement
transformers_version = metadata.version("transformers")
print(f"transformers installed: {transformers_version}; optimum-onnx 0.1.0 accepts it: "
      f"{transformers_version in optimum_needs}")  # fmt: skip
print("optimum importable here:", importlib.util.find_spec("optimum") is not None)

# %% [markdown]
# *What to notice*: the course's transformers 5 is outside optimum-onnx's range, so pip cannot
# install both (the course pins transformers 5 for the current PyTorch); until an optimum-onnx
# release accepts transformers 5, `torch.onnx.export(dynamo=True)` as above is the route, and
# what optimum adds (task-specific output names, a config for each architecture) is a few lines
# of your own.

# %% [markdown]
# ## Exercise 1 (build, 4 points): a sequence model with two dynamic dimensions
#
# `Tagger` reads a batch of sequences of 8 features, shape `(batch, seq, 8)`, and returns 3
# scores per step, shape `(batch, seq, 3)`. Write `export_tagger(model, example)` that exports
# it with the dynamo exporter so that **both the batch and the sequence length are dynamic**,
# and returns the `onnx.ModelProto`. The ONNX model must reproduce the model **in inference
# mode** (within float32 tolerance) at any batch size and sequence length. `example` is a
# float32 tensor of shape `(2, 5, 8)`.


# %%
class Tagger(nn.Module):
    """(batch, seq, 8) -> (batch, seq, 3): a per-step projection, a convolution over time."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.mix = nn.Conv1d(16, 16, kernel_size=3, padding=1)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.proj(x))
        h = torch.relu(self.mix(h.transpose(1, 2))).transpose(1, 2)
        return self.out(self.drop(h))


torch.manual_seed(1)
tagger = Tagger()  # freshly built modules are in training mode


# %% nbgrader={"solution": true, "grade_id": "ex1-export"}
def export_tagger(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    """Export ``model`` with dynamic batch and sequence dimensions; return the ModelProto."""
    ### BEGIN SOLUTION
    model.eval()
    shapes = {"x": {0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")}}
    exported = torch.onnx.export(
        model, (example,), dynamic_shapes=shapes, dynamo=True, verbose=False
    )
    return exported.model_proto
    ### END SOLUTION


# %%
tagger_onnx = export_tagger(tagger, torch.randn(2, 5, 8))


# %% nbgrader={"grade": true, "grade_id": "ex1-shape", "points": 1}
assert isinstance(tagger_onnx, onnx.ModelProto), (
    f"expected an onnx.ModelProto, got {type(tagger_onnx).__name__}"
)
_dims = [d.dim_param or d.dim_value for d in tagger_onnx.graph.input[0].type.tensor_type.shape.dim]
assert len(_dims) == 3 and _dims[2] == 8, f"expected an input of shape [batch, seq, 8], got {_dims}"
assert isinstance(_dims[0], str) and isinstance(_dims[1], str), (
    f"expected dimensions 0 and 1 to be named (dynamic), got {_dims}"
)
_legacy = [n.name for n in tagger_onnx.graph.node if n.name.startswith("/")] + [
    i.name for i in tagger_onnx.graph.initializer if i.name.startswith("onnx::")
]
assert not _legacy, (
    "expected the dynamo exporter (torch.onnx.export(..., dynamo=True)), got names the "
    f"TorchScript exporter writes: {_legacy[:3]}"
)

# %% nbgrader={"grade": true, "grade_id": "ex1-parity", "points": 2}
_eval_tagger = copy.deepcopy(tagger).eval()
# graph optimisations off: ONNX Runtime's optimiser would otherwise hide a training-mode Dropout
_plain_options = ort.SessionOptions()
_plain_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
_sess = ort.InferenceSession(
    tagger_onnx.SerializeToString(), _plain_options, providers=["CPUExecutionProvider"]
)
_name = _sess.get_inputs()[0].name
for _b, _s in [(1, 3), (7, 5), (4, 17)]:
    _x = torch.randn(_b, _s, 8, generator=torch.Generator().manual_seed(_b * 100 + _s))
    with torch.no_grad():
        _want = _eval_tagger(_x).numpy()
    _got = _sess.run(None, {_name: _x.numpy()})[0]
    assert _got.shape == _want.shape, (
        f"batch {_b}, seq {_s}: expected shape {_want.shape}, got {_got.shape}"
    )
    _err = float(np.abs(_got - _want).max())
    assert np.allclose(_got, _want, rtol=1e-4, atol=1e-5), (
        f"batch {_b}, seq {_s}: expected the eval-mode model's output within float32 tolerance, "
        f"got max error {_err:.2e} (is the export in inference mode?)"
    )

# %% nbgrader={"grade": true, "grade_id": "ex1-hidden", "points": 1}
_out_dims = [
    d.dim_param or d.dim_value for d in tagger_onnx.graph.output[0].type.tensor_type.shape.dim
]
assert len(_out_dims) == 3 and _out_dims[2] == 3, (
    f"expected an output [batch, seq, 3], got {_out_dims}"
)
### BEGIN HIDDEN TESTS
for _b, _s in [(16, 64), (3, 1)]:
    _x = torch.randn(_b, _s, 8, generator=torch.Generator().manual_seed(7 + _s))
    with torch.no_grad():
        _want = _eval_tagger(_x).numpy()
    _got = _sess.run(None, {_name: _x.numpy()})[0]
    assert _got.shape == _want.shape, (
        f"batch {_b}, seq {_s}: expected shape {_want.shape}, got {_got.shape}"
    )
    assert np.allclose(_got, _want, rtol=1e-4, atol=1e-5), (
        f"batch {_b}, seq {_s}: expected the eval-mode output within float32 tolerance, "
        f"got max error {float(np.abs(_got - _want).max()):.2e}"
    )
### END HIDDEN TESTS

# %% [markdown]
# ## 2. TensorFlow/Keras to ONNX with tf2onnx
#
# **Why it matters.** Keras models run in TensorFlow Serving and LiteRT; ONNX takes them to
# ONNX Runtime, TensorRT and the other runtimes of lesson 4. The converter is **tf2onnx**. In the
# pinned stack the default `keras` is **Keras 3**, and tf2onnx 1.17's Keras reader predates it.
#
# `course.data.import_tensorflow()` imports TensorFlow without the C++ start-up lines that
# TensorFlow 2.21 prints even with `TF_CPP_MIN_LOG_LEVEL=3`; we also quiet the Python loggers
# of TensorFlow and tf2onnx (deprecation notices about TF1-era functions tf2onnx calls).

# %%
tf = data.import_tensorflow()
import keras
import tf2onnx

tf.get_logger().setLevel("ERROR")
logging.getLogger("tf2onnx").setLevel(logging.ERROR)
print(f"tensorflow {tf.__version__}, keras {keras.__version__}, tf2onnx {tf2onnx.__version__}")

# %% [markdown]
# The course's reference Keras model is a small trained MLP built with the **functional** API.
# We also stack the very same trained layers the **Sequential** way, the most common way to
# write a Keras model.

# %%
keras_mlp = data.train_keras_mlp(split)  # functional: Input -> Dense(relu) -> Dense(softmax)
keras_seq = keras.Sequential([keras.Input((64,), name="pixels"), *keras_mlp.layers[1:]])
keras_probs = keras_seq(split.X_test).numpy()
print(f"{type(keras_mlp).__name__} and {type(keras_seq).__name__}, same weights;",
      f"test accuracy {(keras_probs.argmax(1) == split.y_test).mean():.1%}")  # fmt: skip

# %% [markdown]
# The `tf_keras` route (2.4) needs a separate Python process, which takes a few seconds to
# start TensorFlow. We start it now, in the background, and read its result later. It gets the
# trained weights in a file.

# %%
np.savez(WORK / "keras_weights.npz", *keras_seq.get_weights())
TF_KERAS_ROUTE = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"   # must be set before TensorFlow is imported
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
import tf2onnx
keras = tf.keras                            # tf_keras (Keras 2), because of the variable
weights = np.load(sys.argv[1])
w = [weights[f"arr_{i}"] for i in range(len(weights.files))]
model = keras.Sequential([
    keras.Input((w[0].shape[0],), name="pixels"),
    keras.layers.Dense(w[0].shape[1], activation="relu"),
    keras.layers.Dense(w[2].shape[1], activation="softmax"),
])
model.set_weights(w)
spec = [tf.TensorSpec([None, w[0].shape[0]], tf.float32, name="pixels")]
tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=sys.argv[2])
print(f"converted a {keras.__name__.split('.')[0]} {type(model).__name__} with from_keras")
"""
tf_keras_job = subprocess.Popen(
    [sys.executable, "-c", TF_KERAS_ROUTE, str(WORK / "keras_weights.npz"), str(WORK / "tf_keras.onnx")],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
)  # fmt: skip

# %% [markdown]
# ### 2.1 The Keras 3 failure, live
#
# `tf2onnx.convert.from_keras` is the call most tutorials show (tensorflow-onnx #2329, #2348,
# #2448; keras #18430):

# %%
pixels_spec = [tf.TensorSpec([None, 64], tf.float32, name="pixels")]
keras3_attempt = troubleshoot.attempt(
    tf2onnx.convert.from_keras, keras_seq, input_signature=pixels_spec, opset=17
)
print("Sequential:", keras3_attempt.report())
functional_attempt = troubleshoot.attempt(
    tf2onnx.convert.from_keras, keras_mlp, input_signature=None, opset=17
)
print("functional:", functional_attempt.report())

# %% [markdown]
# So `from_keras` fails on the Sequential model (`KeyError: 'keras_tensor_…'`) and converts the
# functional one. The difference is one attribute. tf2onnx 1.17 takes the output names from
# `model.output_names` when the model has it, else from the output tensors' names, and looks
# them up among the names of the function it traced. Measured on the installed Keras:

# %%
for kind, model in (("functional", keras_mlp), ("Sequential", keras_seq)):
    print(
        f"{kind:10s} has output_names: {hasattr(model, 'output_names')!s:5s}",
        f"-> tf2onnx looks up {getattr(model, 'output_names', [t.name for t in model.outputs])}",
    )
functional_onnx = functional_attempt.value[0]
functional_input = functional_onnx.graph.input[0].name
functional_probs = session(functional_onnx).run(None, {functional_input: split.X_test})[0]
print(f"functional export vs Keras: max |error| {np.abs(functional_probs - keras_probs).max():.1e}")

# %% [markdown]
# *What to notice*: a Keras 3 functional `Model` still has `output_names` (its output layers'
# names, which also name the outputs of its traced function), so the lookup succeeds and the
# export matches Keras. A Keras 3 `Sequential` has no such attribute; tf2onnx falls back to the
# symbolic tensor name `keras_tensor_…`, which names nothing in the traced function. So the
# precise statement is: in tf2onnx 1.17 with TensorFlow 2.21, `from_keras` **fails for Keras 3
# Sequential models and works for functional ones**, through code written for Keras 2 that
# happens to still fit. Nothing guarantees it will next release; the routes below do not
# depend on Keras internals and work for both kinds.
#
# ### 2.2 The SavedModel route
#
# Keras 3 writes a TensorFlow **SavedModel** with `model.export(path)`, a format that belongs to
# TensorFlow, not to Keras, and tf2onnx reads TensorFlow graphs well. The SavedModel's `serve`
# function gets its **input signature** when it is written, so give it there: a name, a dtype,
# and a shape where `None` marks a dynamic dimension. From a terminal the conversion is
#
# ```
# python -m tf2onnx.convert --saved-model DIR --output model.onnx --opset 17
# ```
#
# and from Python, load the SavedModel and hand its `serve` function to `from_function` (the
# same converter, without starting another TensorFlow):

# %%
saved_dir = WORK / "digits_savedmodel"
written = troubleshoot.attempt(
    keras_seq.export, saved_dir, input_signature=pixels_spec, verbose=False
)
print("model.export:", written.report(), "->", sorted(p.name for p in saved_dir.iterdir()))
reloaded = tf.saved_model.load(str(saved_dir))
keras_onnx, _ = tf2onnx.convert.from_function(reloaded.serve, input_signature=pixels_spec, opset=17)
print("inputs:", troubleshoot.input_signature(keras_onnx))
print("outputs:", [o.name for o in keras_onnx.graph.output])
print("opsets:", {o.domain or "ai.onnx": o.version for o in keras_onnx.opset_import})

# %% [markdown]
# *What to notice*: the dynamic batch is named `unk__…` by tf2onnx, and the output keeps
# TensorFlow's tensor name `Identity:0`.
#
# ### 2.3 Input signatures and opsets
#
# `from_function` converts any `tf.function`; wrapping the Keras model in one is the in-memory
# version of the same route, handy to try another signature without writing a SavedModel. A
# number in the `TensorSpec` fixes that dimension. The `opset` defaults to tf2onnx's preferred
# version (`tf2onnx.constants.PREFERRED_OPSET`); choose it for the runtime you deploy to.

# %%
print("tf2onnx's default opset:", tf2onnx.constants.PREFERRED_OPSET)
one_row_spec = [tf.TensorSpec([1, 64], tf.float32, name="pixels")]
keras_onnx_fixed, _ = tf2onnx.convert.from_function(
    tf.function(keras_seq), input_signature=one_row_spec, opset=17
)
print("fixed signature:", troubleshoot.input_signature(keras_onnx_fixed))

# %% [markdown]
# ## Exercise 2 (build, 3 points): Keras 3 through a route that works
#
# Write `keras_to_onnx(model, export_dir)` that converts a **Keras 3** model with one input of
# `n` features to ONNX with tf2onnx at **opset 17**, with a **dynamic batch**, and returns the
# `onnx.ModelProto`. `export_dir` is a folder you may write to. The test model is a Sequential
# model (the kind `from_keras` cannot read).


# %% nbgrader={"solution": true, "grade_id": "ex2-keras"}
def keras_to_onnx(model, export_dir) -> onnx.ModelProto:
    """Convert a Keras 3 model (one input of n features) to ONNX, opset 17, dynamic batch."""
    ### BEGIN SOLUTION
    n_features = model.inputs[0].shape[-1]
    spec = [tf.TensorSpec([None, n_features], tf.float32, name="features")]
    model.export(str(export_dir), input_signature=spec, verbose=False)
    loaded = tf.saved_model.load(str(export_dir))
    proto, _ = tf2onnx.convert.from_function(loaded.serve, input_signature=spec, opset=17)
    return proto
    ### END SOLUTION


# %%
keras.utils.set_random_seed(3)
ex2_model = keras.Sequential(
    [keras.Input((12,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(4)]
)
ex2_onnx = keras_to_onnx(ex2_model, WORK / "ex2_savedmodel")

# %% nbgrader={"grade": true, "grade_id": "ex2-opset", "points": 1}
assert isinstance(ex2_onnx, onnx.ModelProto), (
    f"expected an onnx.ModelProto, got {type(ex2_onnx).__name__}"
)
_opsets = {o.domain or "ai.onnx": o.version for o in ex2_onnx.opset_import}
assert _opsets.get("ai.onnx") == 17, f"expected opset 17 for the ai.onnx domain, got {_opsets}"
_x5 = np.random.default_rng(5).random((5, 12), dtype=np.float32)
_run5 = troubleshoot.attempt(session(ex2_onnx).run, None, {ex2_onnx.graph.input[0].name: _x5})
assert _run5.ok, (
    f"expected the model to run on 5 rows, got {_run5.error_type}: {_run5.message[:200]}"
)
assert _run5.value[0].shape == (5, 4), (
    f"expected an output of shape (5, 4) for 5 rows, got {_run5.value[0].shape}"
)

# %% nbgrader={"grade": true, "grade_id": "ex2-parity", "points": 2}
_sess2 = session(ex2_onnx)
for _n in (1, 33):
    _x = np.random.default_rng(_n).random((_n, 12), dtype=np.float32)
    _want = ex2_model(_x).numpy()
    _run = troubleshoot.attempt(_sess2.run, None, {_sess2.get_inputs()[0].name: _x})
    assert _run.ok, (
        f"batch {_n}: expected the model to run, got {_run.error_type}: {_run.message[:200]}"
    )
    _got = _run.value[0]
    assert _got.shape == _want.shape, (
        f"batch {_n}: expected Keras' output shape {_want.shape}, got {_got.shape}"
    )
    assert np.allclose(_got, _want, rtol=1e-4, atol=1e-5), (
        f"batch {_n}: expected Keras' output within float32 tolerance, "
        f"got max error {float(np.abs(_got - _want).max()):.2e}"
    )
### BEGIN HIDDEN TESTS
_d0 = ex2_onnx.graph.input[0].type.tensor_type.shape.dim[0]
assert not _d0.HasField("dim_value"), f"expected a dynamic batch dimension, got {_d0.dim_value}"
_x = np.random.default_rng(9).random((300, 12), dtype=np.float32)
_got300 = _sess2.run(None, {_sess2.get_inputs()[0].name: _x})[0]
_want300 = ex2_model(_x).numpy()
assert _got300.shape == _want300.shape and np.allclose(_got300, _want300, rtol=1e-4, atol=1e-5), (
    f"batch 300: expected Keras' output of shape {_want300.shape} within float32 tolerance, got "
    f"shape {_got300.shape}"
    + (
        f", max error {float(np.abs(_got300 - _want300).max()):.2e}"
        if _got300.shape == _want300.shape
        else ""
    )
)
### END HIDDEN TESTS

# %% [markdown]
# ### 2.4 The tf_keras route, in a separate process
#
# `from_keras` works with **tf_keras** (Keras 2 packaged separately), which TensorFlow uses as
# `tf.keras` when `TF_USE_LEGACY_KERAS=1` is set **before TensorFlow is imported**. This kernel
# imported TensorFlow with Keras 3 already, and a module is imported once per process, so setting
# the variable now would change nothing: the route runs in the fresh Python process started at
# the top of this section.

# %%
job_out, job_err = tf_keras_job.communicate(timeout=180)
print(job_out.strip() or f"the tf_keras process failed:\n{job_err[-2000:]}")
tf_keras_onnx = onnx.load(WORK / "tf_keras.onnx")
print("inputs:", troubleshoot.input_signature(tf_keras_onnx))

# %% [markdown]
# ### 2.5 Verification
#
# Both routes must reproduce the Keras 3 model's probabilities at several batch sizes.

# %%
keras_report = None
for name, model in (("SavedModel route", keras_onnx), ("tf_keras route", tf_keras_onnx)):
    for n in (1, 7, 256):
        case = verify.verify(
            model,
            split.X_test[:n],
            keras_probs[:n],
            case=f"{name}, batch {n}",
            runtimes=("onnxruntime",),
        )
        keras_report = case if keras_report is None else keras_report + case
print(
    f"all within tolerance: {keras_report.passed}; largest error {keras_report.max_abs_error:.1e}"
)
keras_report

# %% [markdown]
# *What to notice*: both routes reproduce Keras within float32 rounding. The SavedModel route
# needs no second process and no legacy package; prefer it for Keras 3 models.

# %% [markdown]
# ### 2.6 A tf2onnx export in production: Magika
#
# *Why it matters*: the Keras models above are ours. **Magika**, Google's file-type classifier
# (it tells a PNG from a ZIP from Python source by reading bytes, not the file name), ships its
# model as ONNX inside its PyPI wheel (`magika`, pinned by the course; nothing is downloaded)
# and runs it with onnxruntime, not TensorFlow. Read the file the way Lesson 2 taught: it says
# which converter made it, and its node names say what the model was written in.

# %%
from course import pretrained

magika_model = onnx.load(pretrained.magika_file())
print("producer:", magika_model.producer_name, magika_model.producer_version)
print("opsets:", {o.domain or "ai.onnx": o.version for o in magika_model.opset_import})
for magika_value in (*magika_model.graph.input, *magika_model.graph.output):
    print(f"{magika_value.name:13s}", onnx.helper.printable_type(magika_value.type))
magika_prefixes = Counter(node.name.split("/")[0] for node in magika_model.graph.node)
print("node-name prefixes:", dict(magika_prefixes.most_common(3)))
print("operators:", dict(Counter(n.op_type for n in magika_model.graph.node).most_common(8)))

# %% [markdown]
# *What to notice*: `tf2onnx` wrote it, at opset 15 plus the `ai.onnx.ml` domain (Lesson 2,
# 4.3). The node names begin with `jax2tf_`: the model was written in JAX, turned into a
# TensorFlow function by `jax2tf`, and that function was converted by tf2onnx, the same
# converter as in 2.2, from a TensorFlow graph as there. The input is **int32** byte values
# (0-255, and 256 for padding), 2048 per file, with a symbolic batch dimension (`unk__…`, a name
# tf2onnx invents when the TensorFlow signature leaves a dimension unknown). Shipping ONNX lets
# the same file run from Python and from the Rust command-line tool the wheel also installs
# (`magika` on your PATH), with no TensorFlow at run time.
#
# The model reads the first and the last 1024 bytes of a file (whitespace stripped, padded with
# 256); `course.pretrained.magika_features` builds that input as Magika 1.0.3 does. Classify a
# few files that are on this machine, and two made here:

# %%
import io
import zipfile

import matplotlib

magika_session = session(magika_model)
mpl_data = Path(matplotlib.get_data_path())
zip_bytes = io.BytesIO()
with zipfile.ZipFile(zip_bytes, "w") as archive:
    archive.writestr("notes.txt", "hello " * 200)
magika_samples = {
    "course/palette.py": Path(pretrained.__file__).with_name("palette.py").read_bytes(),
    "matplotlib's hand.png": (mpl_data / "images" / "hand.png").read_bytes(),
    "matplotlib's home.svg": (mpl_data / "images" / "home.svg").read_bytes(),
    "Magika's config.min.json": (pretrained.magika_file().parent / "config.min.json").read_bytes(),
    "a ZIP made here": zip_bytes.getvalue(),
    "an HTML string": b"<!DOCTYPE html><html><head><title>t</title></head><body>hi</body></html>",
}
for magika_label, content in magika_samples.items():
    magika_kind, probability = pretrained.magika_classify(magika_session, content)
    print(f"{magika_label:26s} {len(content):7,d} bytes -> {magika_kind:8s} p = {probability:.3f}")

# %% [markdown]
# *What to notice*: a converted model in production is the file plus the code around it: here
# the byte extraction and the label list (`config.min.json`, shipped beside the model). Get the
# preprocessing wrong (no whitespace stripping, a different padding value) and the same ONNX
# file answers worse, with no error: the model is only half of what a converter must carry over.

# %% [markdown]
# ## 3. scikit-learn to ONNX with skl2onnx
#
# **Why it matters.** A scikit-learn model is rarely one estimator: it is a pipeline with
# preprocessing, often over a table with numeric and text columns. Converting the **whole
# pipeline** moves the preprocessing into the ONNX graph, so the serving code cannot get it
# wrong.
#
# ### 3.1 A pipeline over mixed column types
#
# A generated table of loan applications (no download): two numeric columns and two text
# columns; a `ColumnTransformer` scales the numbers and one-hot encodes the text.

# %%
import pandas as pd
from skl2onnx import to_onnx, update_registered_converter
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

rng = np.random.default_rng(0)
applications = pd.DataFrame(
    {
        "age": rng.integers(18, 80, 600).astype(np.float32),
        "income": rng.normal(50, 15, 600).astype(np.float32),
        "city": rng.choice(["Oslo", "Lima", "Pune"], 600),
        "plan": rng.choice(["free", "pro"], 600),
    }
)
score = (
    0.08 * (applications.income - 50) - 0.04 * (applications.age - 45)
    + 1.0 * (applications.plan == "pro") - 0.8 * (applications.city == "Lima")
)  # fmt: skip
approved = (score + rng.normal(0, 0.5, 600) > 0).astype(int).to_numpy()
prep = ColumnTransformer(
    [
        ("num", StandardScaler(), ["age", "income"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
    ]
)
loan_pipe = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))]).fit(
    applications, approved
)
print(f"training accuracy: {loan_pipe.score(applications, approved):.1%}")

# %% [markdown]
# `to_onnx` takes a sample of the data to learn the input types. With a DataFrame, **each
# column becomes its own graph input**, typed from the column: float for numbers, string for
# text. Feed it one `(n, 1)` array per column.

# %%
loan_zipmap = to_onnx(loan_pipe, applications[:1])
print("inputs:", troubleshoot.input_signature(loan_zipmap))
print("outputs:", [o.name for o in loan_zipmap.graph.output])


def column_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """One (n, 1) array per column: float32 for numbers, str objects for text."""
    return {
        c: frame[[c]].to_numpy(np.float32 if pd.api.types.is_numeric_dtype(frame[c]) else object)
        for c in frame.columns
    }


labels, probabilities = session(loan_zipmap).run(None, column_feeds(applications[:3]))
print("labels:", labels, "\nprobabilities:", probabilities)

# %% [markdown]
# ### 3.2 Classifier options: ZipMap off
#
# By default the probabilities come back as a **list of dicts** `{class: probability}` (the
# `ZipMap` operator). Most code wants a `(batch, n_classes)` array; the option `zipmap=False`
# removes the node (sklearn-onnx #202, #218).
#
# ### 3.3 Target opsets, per domain
#
# A converted pipeline uses two operator domains: `ai.onnx` (Add, MatMul…) and `ai.onnx.ml`
# (Scaler, OneHotEncoder, LinearClassifier…), versioned independently. `target_opset` takes one
# number for `ai.onnx` or a dict per domain; pin both for the runtime you deploy to (lesson 2).

# %%
loan_onnx = to_onnx(
    loan_pipe, applications[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3}
)
print("opsets:", {o.domain or "ai.onnx": o.version for o in loan_onnx.opset_import})
labels, probabilities = session(loan_onnx).run(None, column_feeds(applications))
print(type(probabilities).__name__, probabilities.dtype, probabilities.shape)
print(
    f"max probability error: {np.abs(probabilities - loan_pipe.predict_proba(applications)).max():.1e}"
)

# %% [markdown]
# *What to notice*: the `ai.onnx.ml` version in the model may be **lower** than the one you
# asked for: skl2onnx records the highest version it actually needs, never above the target.
#
# ### 3.4 A custom transformer: register a shape calculator and a converter
#
# skl2onnx converts the estimators it knows. Your own transformer stops it at the parse stage
# (sklearn-onnx #359, #1115):

# %%
from sklearn.base import BaseEstimator, TransformerMixin


class Log1pClip(BaseEstimator, TransformerMixin):
    """log(1 + max(x, floor)): tames skewed, sometimes negative, amounts."""

    def __init__(self, floor: float = 0.0) -> None:
        self.floor = floor

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.log1p(np.maximum(X, self.floor))


amounts = rng.exponential(3.0, (400, 4)).astype(np.float32) - 0.5
skewed_pipe = make_pipeline(Log1pClip(), LogisticRegression(max_iter=500)).fit(
    amounts, (amounts[:, 0] > 2).astype(int)
)
missing = troubleshoot.attempt(to_onnx, skewed_pipe, amounts[:1])
print(missing.report(max_lines=1))

# %% [markdown]
# Two functions teach skl2onnx the new step. The **shape calculator** declares the output type
# and shape from the input's (here: same shape). The **converter** emits ONNX nodes; skl2onnx's
# `algebra` module lets us write them as nested operator calls at the target opset.

# %%
from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxLog, OnnxMax


def log1p_clip_shape(operator):
    """Output: same type and shape as the input, (batch, n_features)."""
    operator.outputs[0].type = operator.inputs[0].type.__class__(operator.inputs[0].type.shape)


def log1p_clip_converter(scope, operator, container):
    """log(max(x, floor) + 1) with standard ONNX operators."""
    opv, x = container.target_opset, operator.inputs[0]
    floor = np.array([operator.raw_operator.floor], dtype=np.float32)
    clipped = OnnxMax(x, floor, op_version=opv)
    result = OnnxLog(
        OnnxAdd(clipped, np.array([1.0], dtype=np.float32), op_version=opv),
        op_version=opv,
        output_names=operator.outputs[:1],
    )
    result.add_to(scope, container)


update_registered_converter(Log1pClip, "CourseLog1pClip", log1p_clip_shape, log1p_clip_converter)
skewed_onnx = to_onnx(skewed_pipe, amounts[:1], options={"zipmap": False}, target_opset=17)
print("operators:", [n.op_type for n in skewed_onnx.graph.node])
verify.verify(
    skewed_onnx, amounts, [skewed_pipe.predict(amounts), skewed_pipe.predict_proba(amounts)]
)

# %% [markdown]
# *What to notice*: the custom step became `Max`, `Add`, `Log`, then the classifier; labels match
# exactly and probabilities within float32 tolerance. Registration is per process: run it before
# every conversion, for example in the module that defines the transformer.
#
# ### 3.5 Gradient boosting: XGBoost and LightGBM through onnxmltools
#
# Gradient-boosted trees are the most common models on tables, and neither XGBoost nor LightGBM
# is part of scikit-learn. Their converters live in **onnxmltools** (built on skl2onnx, with
# the same `initial_types`); each model's trees become one `ai.onnx.ml`
# `TreeEnsembleClassifier`. The data: a binary task bundled with scikit-learn (569 breast-tumour
# samples, 30 measurements each). One thread each, 60 small trees: a fraction of a second.

# %%
import lightgbm
import onnxmltools
import xgboost
from onnxmltools.convert.common.data_types import FloatTensorType as MLFloatTensorType
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

X_bc, y_bc = load_breast_cancer(return_X_y=True)
Xb_train, Xb_test, yb_train, yb_test = train_test_split(
    X_bc.astype(np.float32), y_bc, test_size=0.5, random_state=0, stratify=y_bc
)
xgb_model = xgboost.XGBClassifier(
    n_estimators=60, max_depth=4, learning_rate=0.2, n_jobs=1, random_state=0
).fit(Xb_train, yb_train)
lgbm_model = lightgbm.LGBMClassifier(
    n_estimators=60, num_leaves=15, learning_rate=0.2, n_jobs=1, random_state=0, verbose=-1
).fit(Xb_train, yb_train)
boost_types = [("features", MLFloatTensorType([None, Xb_train.shape[1]]))]
print(
    f"xgboost {xgboost.__version__}, lightgbm {lightgbm.__version__}, onnxmltools {onnxmltools.__version__}"
)
too_new = troubleshoot.attempt(
    onnxmltools.convert_xgboost, xgb_model, initial_types=boost_types, target_opset=17
)
print("target_opset=17:", too_new.report(max_lines=1))

# %% [markdown]
# The converters have their own opset ceiling, below skl2onnx's (the same kind of failure as
# 4.2): the installed onnxmltools refuses 17 and names its maximum. We convert at 15, then measure
# each export against its library on the held-out half.

# %%
boosted = {
    "XGBoost": (
        xgb_model,
        onnxmltools.convert_xgboost(xgb_model, initial_types=boost_types, target_opset=15),
    ),
    "LightGBM": (
        lgbm_model,
        onnxmltools.convert_lightgbm(
            lgbm_model, initial_types=boost_types, target_opset=15, zipmap=False
        ),
    ),
}
boost_rows = []
for name, (model, exported) in boosted.items():
    boost_labels, boost_probs = session(exported).run(None, {"features": Xb_test})
    library_probs = model.predict_proba(Xb_test)
    declared = [  # "?" for a dimension the file leaves free
        d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
        for d in exported.graph.output[0].type.tensor_type.shape.dim
    ]
    boost_rows.append(
        {
            "library": name,
            "operators": ", ".join(sorted({n.op_type for n in exported.graph.node})),
            "library's predict_proba dtype": str(library_probs.dtype),
            "labels agree": f"{(boost_labels == model.predict(Xb_test)).mean():.1%}",
            "max |probability error|": float(np.abs(boost_probs - library_probs).max()),
            "label shape declared / returned": f"{declared} / {list(boost_labels.shape)}",
        }
    )
pd.DataFrame(boost_rows).set_index("library")

# %% [markdown]
# *What to notice*: both exports reproduce their library's labels and probabilities within
# float32 rounding (the measured maximum error). XGBoost works in float32 (its `predict_proba`
# is float32); LightGBM works in float64 and its export in float32, the gap of section 4.4:
# invisible on these rows, but a row within float32 rounding of one of its thresholds can take
# the other branch (onnx PR #3897 describes exactly this for LightGBM; 4.4 builds such rows).
# Look at the last column too: the converters declare label shapes of `[0]` and `[1]`, while
# ONNX Runtime returns one label per row. It computes the right values and, at its default log
# level, warns about LightGBM's mismatch (our `session` helper logs errors only); code that
# trusts the declared shapes would be wrong. Read the output signature of every export, not
# only the input's.

# %% [markdown]
# ## Exercise 3 (build, 3 points): a mixed-type pipeline, probabilities as a tensor
#
# Write `convert_table_pipeline(pipeline, sample)` that converts a fitted scikit-learn
# classifier pipeline over a pandas DataFrame to ONNX and returns the `onnx.ModelProto`, with:
# one graph input per column, named like the column; a **free batch** size; a second output that
# is a **float32 probability array** of shape `(batch, n_classes)`; `ai.onnx` opset at most
# **17** and `ai.onnx.ml` opset at most **3** (the runtime in production reads no newer). `sample` is a few
# rows of the training DataFrame.


# %% nbgrader={"solution": true, "grade_id": "ex3-convert"}
def convert_table_pipeline(pipeline, sample: pd.DataFrame) -> onnx.ModelProto:
    """Convert a fitted DataFrame pipeline: one input per column, probabilities as a tensor."""
    ### BEGIN SOLUTION
    return to_onnx(
        pipeline, sample, options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    ### END SOLUTION


# %%
rng3 = np.random.default_rng(3)
visits = pd.DataFrame(
    {
        "minutes": rng3.gamma(2.0, 5.0, 300).astype(np.float32),
        "pages": rng3.integers(1, 30, 300).astype(np.float32),
        "device": rng3.choice(["phone", "tablet", "desktop"], 300),
    }
)
bought = np.where(visits.pages > 12, 2, np.where(visits.device == "desktop", 1, 0))
visits_pipe = Pipeline(
    [
        (
            "prep",
            ColumnTransformer(
                [
                    ("num", StandardScaler(), ["minutes", "pages"]),
                    ("cat", OneHotEncoder(), ["device"]),
                ]
            ),
        ),
        ("clf", LogisticRegression(max_iter=1000)),
    ]
).fit(visits, bought)
visits_onnx = convert_table_pipeline(visits_pipe, visits[:2])

# %% nbgrader={"grade": true, "grade_id": "ex3-tensor", "points": 1}
assert isinstance(visits_onnx, onnx.ModelProto), (
    f"expected an onnx.ModelProto, got {type(visits_onnx).__name__}"
)
_names = [i.name for i in visits_onnx.graph.input]
assert _names == ["minutes", "pages", "device"], (
    f"expected inputs named after the columns, got {_names}"
)
_out = session(visits_onnx).run(None, column_feeds(visits[:5]))
assert isinstance(_out[1], np.ndarray), (
    f"expected probabilities as a numpy array, got {type(_out[1]).__name__} (is ZipMap still on?)"
)
assert _out[1].shape == (5, 3) and _out[1].dtype == np.float32, (
    f"expected float32 probabilities of shape (5, 3), got {_out[1].dtype} {_out[1].shape}"
)

# %% nbgrader={"grade": true, "grade_id": "ex3-opsets", "points": 2}
_op = {o.domain or "ai.onnx": o.version for o in visits_onnx.opset_import}
assert _op.get("ai.onnx", 99) <= 17, f"expected ai.onnx opset at most 17, got {_op}"
assert _op.get("ai.onnx.ml", 0) <= 3, f"expected ai.onnx.ml opset at most 3, got {_op}"
_lab, _proba = session(visits_onnx).run(None, column_feeds(visits))
_err = float(np.abs(_proba - visits_pipe.predict_proba(visits)).max())
assert _err < 1e-5, (
    f"expected probabilities within 1e-5 of scikit-learn's, got max error {_err:.2e}"
)
### BEGIN HIDDEN TESTS
_agree3 = float(np.mean(_lab == visits_pipe.predict(visits)))
assert _agree3 == 1.0, f"300 rows: expected the labels of scikit-learn, got {_agree3:.1%} equal"
_one = session(visits_onnx).run(None, column_feeds(visits[7:8]))[1]
assert _one.shape == (1, 3), f"batch 1: expected probabilities (1, 3), got {_one.shape}"
# nearest neighbours: skl2onnx uses the newest ai.onnx opset it knows unless told otherwise
from sklearn.base import clone as _clone3
from sklearn.neighbors import KNeighborsClassifier as _KNN3

_knn_pipe = Pipeline([("prep", _clone3(visits_pipe[0])), ("clf", _KNN3(7))]).fit(visits, bought)
_knn = convert_table_pipeline(_knn_pipe, visits[:2])
_knn_opsets = {o.domain or "ai.onnx": o.version for o in _knn.opset_import}
assert _knn_opsets.get("ai.onnx", 99) <= 17 and _knn_opsets.get("ai.onnx.ml", 0) <= 3, (
    f"a k-nearest-neighbours pipeline: expected ai.onnx <= 17 and ai.onnx.ml <= 3, got {_knn_opsets}"
)
_knn_proba = session(_knn).run(None, column_feeds(visits))[1]
_knn_err = float(np.abs(_knn_proba - _knn_pipe.predict_proba(visits)).max())
assert _knn_err < 1e-5, (
    f"k-nearest neighbours: expected probabilities within 1e-5, got max error {_knn_err:.2e}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Troubleshooting: a gallery of real failures
#
# **Why it matters.** The same dozen failures account for most conversion questions in the
# converters' issue trackers. Each entry below has a symptom (what you see), a cause, a fix, and
# a way to verify the fix; the issue numbers point to public reports where learners hit it. The
# whole gallery, from `course.troubleshoot.GALLERY`:

# %%
pd.set_option("display.max_colwidth", 90)
troubleshoot.gallery_frame()[["title", "framework", "symptom", "fix", "issues"]]

# %% [markdown]
# Entries 3, 4, 5 (dynamic_axes, onnxscript, control flow) were reproduced in section 1, entry
# 11 (custom transformer) in section 3 and entry 12 (Keras 3) in section 2. The rest follow,
# one failure and one fix each.
#
# ### 4.1 An operator the exporter cannot translate (1)
#
# *Symptom*: `No ONNX function found for <OpOverload(op='aten._cdist_forward', …)>`
# (pytorch #49005, #131635; optimum #1331).


# %%
class Nearest(nn.Module):
    """Distance from each row to 3 learned prototypes."""

    def __init__(self, rewrite: bool) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(
            torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
        )
        self.rewrite = rewrite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rewrite:  # the same distances with operators every exporter knows
            return ((x[:, None, :] - self.prototypes[None]) ** 2).sum(-1).sqrt()
        return torch.cdist(x, self.prototypes)


cdist_export = troubleshoot.attempt(
    torch.onnx.export, Nearest(rewrite=False).eval(), (example,), dynamo=True, verbose=False
)
print(cdist_export.report(max_lines=1))
rewritten = torch.onnx.export(
    Nearest(rewrite=True).eval(),
    (example,),
    dynamic_shapes={"x": {0: batch}},
    dynamo=True,
    verbose=False,
)
rows = split.X_test[:50]
with torch.no_grad():
    want = Nearest(rewrite=False)(torch.from_numpy(rows)).numpy()  # the original, with cdist
verify.verify(rewritten.model_proto, rows, want)

# %% [markdown]
# *Cause*: the exporter has no translation for this ATen operator at any opset. *Fix*: rewrite
# it with supported operators (or register one with `custom_translation_table`). *Verify*: the
# rewritten model matches the original model's output.
#
# ### 4.2 Opset too low for an operator (2)
#
# *Symptom*: you ask for opset 15 and get a model at opset 18, with log lines about a failed
# version conversion.


# %%
class Normed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, (64,))


low = troubleshoot.attempt(
    torch.onnx.export, Normed().eval(), (example,), opset_version=15, dynamo=True, verbose=False
)
for line in low.captured.log:
    print(line[:300])
print("opset of the result:", low.value.model_proto.opset_import[0].version)

# %% [markdown]
# *Cause*: `LayerNormalization` first exists in opset 17; no lower opset can express it as one
# node, and the exporter's down-conversion gives up. *Fix*: target an opset that has the operator
# (17 or later) and a runtime that loads it, or rewrite the operation with older operators.
# *Verify*: read `model.opset_import` after every export, and load the file in the runtime you
# deploy.
#
# ### 4.3 Works at batch 1, fails at batch 7 (6)
#
# *Symptom*: the model from 1.1 (exported with one example row) runs on one row and fails on
# seven (onnx/tutorials #163, onnxruntime #19270):

# %%
fixed_session = session(fixed_program.model_proto)
print("batch 1:", troubleshoot.attempt(fixed_session.run, None, {"x": split.X_test[:1]}).report())
print("batch 7:", troubleshoot.attempt(fixed_session.run, None, {"x": split.X_test[:7]}).report())

# %% [markdown]
# *Cause*: no dynamic dimension was declared, so the example's size was recorded. *Fix*:
# `dynamic_shapes` (1.2) in PyTorch, `None` in tf2onnx's `TensorSpec` and in skl2onnx's
# `initial_types`; remove sizes typed into the model (1.3). *Verify*: the dynamic export runs at
# 1, 7 and 300 rows and matches PyTorch (the report of 1.5 did exactly that).
#
# ### 4.4 float64 into a float32 model, and float32 drift (7, 8)
#
# *Symptom*: NumPy and pandas give float64 by default (onnxruntime #4130):

# %%
as_float64 = split.X_test[:7].astype(np.float64)  # what np.loadtxt or a DataFrame gives you
print(troubleshoot.attempt(session(proto).run, None, {"x": as_float64}).report())
print("cast first:", session(proto).run(None, {"x": as_float64.astype(np.float32)})[0].shape)

# %% [markdown]
# The cast is the fix when float32 is precise enough for your features. It is not always:
# float32 has 24 bits of mantissa, so near a Unix timestamp (1.7e9 s) consecutive float32 values
# are **128 s** apart. scikit-learn computes a scaler in float64, the ONNX graph in float32, and
# rows close to a tree's threshold land on the other side (sklearn-onnx #1192):

# %%
from sklearn.tree import DecisionTreeClassifier

print("float32 spacing at 1.7e9 s:", np.spacing(np.float32(1.7e9)), "s")


def transactions(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two days of payments: Unix time (s) and amount; flagged at night or when large."""
    when = 1.7e9 + rng.uniform(0, 2 * 86400, n)
    amount = rng.gamma(2.0, 40.0, n)
    night = (when % 86400) < 6 * 3600
    return np.column_stack([when, amount]), ((night & (amount > 60)) | (amount > 250)).astype(int)


rng4 = np.random.default_rng(0)
T_train, f_train = transactions(3000, rng4)
T_day, f_day = transactions(20000, rng4)  # a day of traffic to score
drift_pipe = make_pipeline(
    StandardScaler(), DecisionTreeClassifier(max_depth=8, random_state=0)
).fit(T_train, f_train)
drift_onnx = to_onnx(
    drift_pipe,
    T_train[:1].astype(np.float32),
    options={"zipmap": False},
    target_opset={"": 17, "ai.onnx.ml": 3},
)
onnx_flags = session(drift_onnx).run(None, {"X": T_day.astype(np.float32)})[0]
print(
    f"disagreements with scikit-learn: {(onnx_flags != drift_pipe.predict(T_day)).sum()} of {len(T_day)}"
)

# %% [markdown]
# *Cause*: the precision lost when the timestamp becomes float32, before the scaler. *Fix*:
# compute precision-hungry features in float64 **before** the model, here time relative to a
# reference, so that float32 only has to hold two days of seconds:

# %%
T0 = 1.7e9  # reference time, a constant of the feature pipeline
relative = np.array([T0, 0.0])
drift_fixed = make_pipeline(
    StandardScaler(), DecisionTreeClassifier(max_depth=8, random_state=0)
).fit(T_train - relative, f_train)
fixed_onnx = to_onnx(
    drift_fixed,
    (T_train[:1] - relative).astype(np.float32),
    options={"zipmap": False},
    target_opset={"": 17, "ai.onnx.ml": 3},
)
fixed_flags = session(fixed_onnx).run(None, {"X": (T_day - relative).astype(np.float32)})[0]
print(
    f"disagreements: {(fixed_flags != drift_fixed.predict(T_day - relative)).sum()} of {len(T_day)}"
)

# %% [markdown]
# *Verify*: count disagreements over a realistic volume: a handful in twenty thousand never
# shows up in a five-row check.
#
# **The other fix: float64 end to end.** When the features cannot change, convert in double
# precision: declare the input `DoubleTensorType` (or give `to_onnx` a float64 sample), and the
# scaler computes in float64. With the installed skl2onnx that is not yet enough:

# %%
from skl2onnx.common.data_types import DoubleTensorType

double_onnx = to_onnx(
    drift_pipe,
    initial_types=[("X", DoubleTensorType([None, 2]))],
    options={"zipmap": False},
    target_opset={"": 17, "ai.onnx.ml": 3},
)
tree_node = next(n for n in double_onnx.graph.node if n.op_type == "TreeEnsembleClassifier")
print("nodes:", [n.op_type for n in double_onnx.graph.node])
print("opsets:", {o.domain or "ai.onnx": o.version for o in double_onnx.opset_import})
print(
    "thresholds stored as:",
    {a.name: onnx.AttributeProto.AttributeType.Name(a.type) for a in tree_node.attribute}[
        "nodes_values"
    ],
)
print("load:", troubleshoot.attempt(session, double_onnx).report(max_lines=1))
tree_schema = onnx.defs.get_schema("TreeEnsembleClassifier", 3, "ai.onnx.ml")
print(
    "the schema's probability output:", tree_schema.outputs[1].type_str,
    "| threshold attributes:", sorted(a for a in tree_schema.attributes if a.startswith("nodes_values")),
)  # fmt: skip

# %% [markdown]
# *Cause*: the scaler became float64 `Sub` and `Div`, but the tree kept its thresholds as
# float32 numbers (`nodes_values`, a FLOATS attribute) and skl2onnx declared float64
# probabilities, which `TreeEnsembleClassifier` never outputs: ONNX Runtime refuses the model.
# Since `ai.onnx.ml` opset 3 the node can hold its thresholds as a float64 tensor,
# `nodes_values_as_tensor` (added by onnx PR #3897 because float thresholds made ONNX disagree
# with LightGBM, which compares in double; ONNX Runtime implements it since release 1.11, PR
# #10821). *Fix*: put the fitted tree's exact thresholds there, declare the probabilities
# float32 and stamp `ai.onnx.ml` 3. `exact_thresholds=False` keeps the float32 thresholds, to
# measure what each half of the fix does.


# %%
def double_precision_tree(model, tree, exact_thresholds: bool = True) -> onnx.ModelProto:
    """A loadable copy of skl2onnx's float64 DecisionTree model, thresholds exact if asked."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    node = next(n for n in fixed.graph.node if n.op_type == "TreeEnsembleClassifier")
    attrs = {a.name: a for a in node.attribute}
    if exact_thresholds:
        node_ids = list(attrs["nodes_nodeids"].ints)  # one tree: skl2onnx kept sklearn's node ids
        node.attribute.remove(attrs["nodes_values"])
        exact = onnx.numpy_helper.from_array(tree.tree_.threshold[node_ids])  # float64
        node.attribute.append(onnx.helper.make_attribute("nodes_values_as_tensor", exact))
    for output in fixed.graph.output:
        if output.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE:
            output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT  # what the node outputs
    for imp in fixed.opset_import:
        if imp.domain == "ai.onnx.ml":
            imp.version = max(imp.version, 3)
    onnx.checker.check_model(fixed, full_check=True)
    return fixed


# %% [markdown]
# A day of traffic rarely lands within float32 rounding of a threshold, so we also build the
# worst case: for every split of the tree, a real row that reaches it, with the split's feature
# moved **between the exact threshold and its float32 rounding** (a window about 1e-7 wide in
# scaled units). scikit-learn sends such a row one way; a float32 threshold sends it the other.

# %%
fitted_tree, fitted_scaler = drift_pipe[-1].tree_, drift_pipe[0]
reaches = drift_pipe[-1].decision_path(fitted_scaler.transform(T_day))  # rows x nodes, sparse
window_rows = []
for node in np.flatnonzero(fitted_tree.children_left >= 0):  # every split
    visitors = reaches[:, node].nonzero()[0]
    if len(visitors):
        row = T_day[visitors[0]].copy()
        f, threshold = fitted_tree.feature[node], fitted_tree.threshold[node]
        between = (threshold + float(np.float32(threshold))) / 2  # in the window
        row[f] = between * fitted_scaler.scale_[f] + fitted_scaler.mean_[f]  # back to raw units
        window_rows.append(row)
window_rows = np.array(window_rows)

variants = {
    "float32 input (the first export)": (drift_onnx, np.float32),
    "float64 input, float32 thresholds": (
        double_precision_tree(double_onnx, drift_pipe[-1], exact_thresholds=False),
        np.float64,
    ),
    "float64 input, float64 thresholds": (
        double_precision_tree(double_onnx, drift_pipe[-1]),
        np.float64,
    ),
}
pd.DataFrame(
    {
        f"disagreements in {len(rows)} {label}": [
            int((session(m).run(None, {"X": rows.astype(dt)})[0] != drift_pipe.predict(rows)).sum())
            for m, dt in variants.values()
        ]
        for label, rows in (("rows of traffic", T_day), ("rows next to thresholds", window_rows))
    },
    index=list(variants),
)

# %% [markdown]
# *Verify*: compare with scikit-learn on realistic data **and** on rows built to sit next to
# the thresholds. float64 input repairs the traffic (the timestamps survive); only float64
# thresholds repair every row, because then ONNX compares exactly what scikit-learn compares.
#
# ### 4.5 ZipMap outputs surprise downstream code (9)
#
# *Symptom*: code written against `predict_proba` breaks on the ONNX output (sklearn-onnx #202,
# #218):

# %%
zipmapped = session(loan_zipmap).run(None, column_feeds(applications[:4]))[1]
print("output type:", type(zipmapped).__name__, "of", type(zipmapped[0]).__name__)
print(troubleshoot.attempt(lambda p: p[:, 1], zipmapped).report())
print("zipmap=False:", session(loan_onnx).run(None, column_feeds(applications[:4]))[1][:, 1])

# %% [markdown]
# *Fix*: `options={"zipmap": False}` (3.2). *Verify*: the probabilities are an `ndarray` of
# shape `(batch, n_classes)`.
#
# ### 4.6 Numerical drift: `model.eval()` forgotten (10)
#
# *Symptom*: the ONNX model "works" but disagrees with PyTorch far beyond float32 tolerance
# (onnxruntime #4589, #18946). The exporter warns, and the warning is the point of this cell:

# %%
in_training = copy.deepcopy(net).train()  # as a model is right after its training loop
rows = split.X_test[:64]
train_export = troubleshoot.attempt(
    torch.onnx.export, in_training, (torch.from_numpy(rows),), dynamo=True, verbose=False
)
print(train_export.report())
print("operators:", [n.op_type for n in train_export.value.model_proto.graph.node])
with torch.no_grad():
    eval_logits = net(torch.from_numpy(rows)).numpy()
verify.verify(train_export.value.model_proto, rows, eval_logits)

# %% [markdown]
# *Cause*: in training mode the export records training behaviour: the noise branch
# (`RandomNormalLike`, `Mul`, `Add`) and dropout (a `Dropout` node in training mode). The two
# runtimes even disagree with each other, since they treat the training-mode `Dropout`
# differently; with a dynamic batch, training-mode batch norm refuses to export at all (it needs
# more than one value per channel). *Fix*: `model.eval()` before exporting (the model of 1.2
# was exported in eval mode and passed). *Verify*: compare with the **eval-mode** model at
# tolerances chosen from the dtype, as in 1.5; a too-tight tolerance (say `atol=1e-9` for
# float32) fails correct models, a too-loose one hides this bug.

# %% [markdown]
# ### 4.7 The conversion explorer
#
# Exports take seconds, so the explorer reuses the models exported above (PyTorch 1.1/1.2,
# Keras 2.2/2.3) plus the course's scikit-learn digits classifier converted twice. Choose a
# framework, an export (dynamic or fixed batch), a batch size and the dtype of the incoming
# data; the explorer runs ONNX Runtime and measures the largest error against the source
# framework. Its logic is `course.troubleshoot.ConversionExplorer`, tested without a browser.

# %%
from skl2onnx.common.data_types import FloatTensorType

digits_pipe = data.train_sklearn_classifier(split)  # StandardScaler + LogisticRegression


def torch_reference(raw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(raw.astype(np.float32))).numpy()


def sklearn_options(rows: int | None):
    return dict(
        initial_types=[("x", FloatTensorType([rows, 64]))],
        options={"zipmap": False},
        target_opset=17,
    )


explorer = troubleshoot.ConversionExplorer(
    {
        ("PyTorch", "dynamic batch"): troubleshoot.ExplorerCase(
            proto, torch_reference, source="PyTorch"
        ),
        ("PyTorch", "fixed batch 1"): troubleshoot.ExplorerCase(
            fixed_program.model_proto, torch_reference, source="PyTorch"
        ),
        ("Keras", "dynamic batch"): troubleshoot.ExplorerCase(
            keras_onnx, lambda raw: keras_seq(raw.astype(np.float32)).numpy(), source="Keras"
        ),
        ("Keras", "fixed batch 1"): troubleshoot.ExplorerCase(
            keras_onnx_fixed, lambda raw: keras_seq(raw.astype(np.float32)).numpy(), source="Keras"
        ),
        ("scikit-learn", "dynamic batch"): troubleshoot.ExplorerCase(
            to_onnx(digits_pipe, **sklearn_options(None)),
            digits_pipe.predict_proba,
            output=1,
            source="scikit-learn",
        ),
        ("scikit-learn", "fixed batch 1"): troubleshoot.ExplorerCase(
            to_onnx(digits_pipe, **sklearn_options(1)),
            digits_pipe.predict_proba,
            output=1,
            source="scikit-learn",
        ),
    },
    data=split.X_test.astype(np.float64),  # raw rows as they arrive: float64
)
print(explorer.run("scikit-learn", "dynamic batch", batch=7, dtype="float64"))
print(explorer.run("scikit-learn", "dynamic batch", batch=7, dtype="float64", cast=True))

# %% [markdown]
# A sweep over batch sizes, with float32 input, measured now:

# %%
fig = troubleshoot.outcome_grid(explorer.sweep([1, 7, 64, 300], dtype="float32"))
plt.show()

# %% [markdown]
# *What to see*: every dynamic export runs at every batch size within tolerance (the printed
# numbers are the measured largest errors; the scikit-learn rows compare float32 ONNX with
# float64 scikit-learn), while every fixed export runs at batch 1 only.

# %%
import ipywidgets

widgets.explorer(
    lambda framework, export, batch, dtype, cast: explorer.run(
        framework, export, batch, dtype, cast
    ).text(),
    title="Conversion explorer",
    framework=explorer.frameworks,
    export=explorer.exports("PyTorch"),
    batch=ipywidgets.IntSlider(value=7, min=1, max=64, description="batch"),
    dtype=list(explorer.DTYPES),
    cast=False,
)

# %% [markdown]
# Things to try: float64 without and with the cast; float16 with the cast (the data loses
# precision before the model sees it: compare the error with float32's); the fixed exports at
# batch 7.

# %% [markdown]
# ## Exercise 4 (debug, 4 points): repair an export that fails the way it fails in real life
#
# A colleague's `broken_export` is meant to give the serving team an ONNX version of `served`
# (a `DigitNet` straight out of its training loop). The data arrives from pandas as float64.
# Run it, read the error, and find the other problems the first one hides.

# %%
served = copy.deepcopy(net).train()  # straight out of a training loop
incoming = split.X_test.astype(np.float64)  # as the data arrives


def broken_export(model: nn.Module, X: np.ndarray) -> onnx.ModelProto:
    example = torch.from_numpy(X[:1])
    return torch.onnx.export(model, (example,), dynamo=True, verbose=False).model_proto


print(troubleshoot.attempt(broken_export, served, incoming).report(max_lines=3))

# %% [markdown]
# Write `repaired_export(model, X)` returning an `onnx.ModelProto` that ONNX Runtime runs on
# **float32** batches of **any size** and that reproduces the model **in inference mode** within
# float32 tolerance. `X` is the float64 data shown above; `model` is a `DigitNet`.


# %% nbgrader={"solution": true, "grade_id": "ex4-repair"}
def repaired_export(model: nn.Module, X: np.ndarray) -> onnx.ModelProto:
    """Export ``model`` for serving: float32 input, dynamic batch, inference mode."""
    ### BEGIN SOLUTION
    model.eval()
    example = torch.from_numpy(X[:2].astype(np.float32))
    shapes = {"x": {0: torch.export.Dim("batch")}}
    return torch.onnx.export(
        model, (example,), dynamic_shapes=shapes, dynamo=True, verbose=False
    ).model_proto
    ### END SOLUTION


# %%
served_onnx = repaired_export(served, incoming)

# %% nbgrader={"grade": true, "grade_id": "ex4-runs", "points": 1}
assert isinstance(served_onnx, onnx.ModelProto), (
    f"expected an onnx.ModelProto, got {type(served_onnx).__name__}"
)
_s4 = session(served_onnx)
_in4 = _s4.get_inputs()[0]
assert _in4.type == "tensor(float)", f"expected a float32 input, got {_in4.type}"
_o7 = troubleshoot.attempt(_s4.run, None, {_in4.name: split.X_test[:7]})
assert _o7.ok, (
    f"expected the model to run on 7 float32 rows, got {_o7.error_type}: {_o7.message[:200]}"
)

# %% nbgrader={"grade": true, "grade_id": "ex4-parity", "points": 2}
_eval_net = copy.deepcopy(net).eval()
_rows = split.X_test[:64]
with torch.no_grad():
    _want = _eval_net(torch.from_numpy(_rows)).numpy()
_got = _s4.run(None, {_in4.name: _rows})[0]
_err = float(np.abs(_got - _want).max())
assert np.allclose(_got, _want, rtol=1e-4, atol=1e-5), (
    f"expected the inference-mode logits within float32 tolerance, got max error {_err:.2e}"
)

# %% nbgrader={"grade": true, "grade_id": "ex4-hidden", "points": 1}
for _n in (1, 500):
    _r = np.resize(split.X_test, (_n, 64)).astype(np.float32)
    _o = troubleshoot.attempt(_s4.run, None, {_in4.name: _r})
    assert _o.ok, f"batch {_n}: expected the model to run, got {_o.error_type}"
    ### BEGIN HIDDEN TESTS
    with torch.no_grad():
        _w = _eval_net(torch.from_numpy(_r)).numpy()
    assert np.allclose(_o.value[0], _w, rtol=1e-4, atol=1e-5), (
        f"batch {_n}: expected the inference-mode logits within float32 tolerance, "
        f"got max error {float(np.abs(_o.value[0] - _w).max()):.2e}"
    )
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 5 (reason, 3 points): will it run?
#
# Before you call a model, its input signature tells you whether ONNX Runtime will accept your
# array. Write `predict_run(signature, batch, dtype)` where `signature` is
# `(name, dtype_name, dims)` as returned by `troubleshoot.input_signature(model)[0]` (a fixed
# dimension is an `int`, a dynamic one a `str`), `batch` the number of rows you feed, and `dtype`
# the NumPy dtype name of your array (`"float32"`, `"float64"`, …). The other dimensions of your
# array always match the model. Return `"runs"`, `"wrong dtype"` or `"wrong shape"`: what ONNX
# Runtime does. When both the dtype and the shape are wrong, ONNX Runtime reports one of them
# (the explorer above lets you find out which).


# %% nbgrader={"solution": true, "grade_id": "ex5-predict"}
def predict_run(signature: tuple, batch: int, dtype: str) -> str:
    """'runs', 'wrong dtype' or 'wrong shape': what ONNX Runtime does with this input."""
    ### BEGIN SOLUTION
    _, declared, dims = signature
    if dtype != declared:
        return "wrong dtype"
    if isinstance(dims[0], int) and dims[0] != batch:
        return "wrong shape"
    return "runs"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex5-visible", "points": 1}
def _actual(model: onnx.ModelProto, batch: int, dtype: str) -> str:
    """What ONNX Runtime really does (measured, not predicted)."""
    name, _, dims = troubleshoot.input_signature(model)[0]
    shape = [batch] + [d if isinstance(d, int) else 3 for d in dims[1:]]
    run = troubleshoot.attempt(session(model).run, None, {name: np.zeros(shape, dtype=dtype)})
    if run.ok:
        return "runs"
    return "wrong dtype" if "data type" in run.message else "wrong shape"


for _model, _b, _dt in [
    (proto, 7, "float32"),
    (fixed_program.model_proto, 7, "float32"),
    (proto, 1, "float64"),
]:
    _sig = troubleshoot.input_signature(_model)[0]
    _got, _want = predict_run(_sig, _b, _dt), _actual(_model, _b, _dt)
    assert _got == _want, f"signature {_sig}, batch {_b}, {_dt}: expected {_want!r}, got {_got!r}"

# %% nbgrader={"grade": true, "grade_id": "ex5-hidden", "points": 2}
_cases = [
    (fixed_program.model_proto, 1, "float32"),
    (proto, 300, "float16"),
    (buggy.model_proto, 4, "float32"),
    (buggy.model_proto, 5, "float32"),
]
### BEGIN HIDDEN TESTS
from sklearn.linear_model import LogisticRegression as _LR5

_sk5 = to_onnx(  # skl2onnx leaves a free dimension unnamed: "?"
    _LR5(max_iter=200).fit(split.X_train, split.y_train), split.X_train[:1],
    options={"zipmap": False},
)  # fmt: skip
_cases += [
    (fixed_program.model_proto, 7, "float64"),
    (buggy.model_proto, 9, "float16"),
    (flattened.model_proto, 9, "float32"),
    (buggy.model_proto, 2, "float32"),  # smaller than the fixed batch
    (keras_onnx, 3, "float32"),  # tf2onnx names a free dimension unk__N
    (keras_onnx, 3, "float64"),
    (keras_onnx_fixed, 5, "float32"),
    (_sk5, 9, "float32"),
]
### END HIDDEN TESTS
for _model, _b, _dt in _cases:
    _sig = troubleshoot.input_signature(_model)[0]
    _got, _want = predict_run(_sig, _b, _dt), _actual(_model, _b, _dt)
    assert _got == _want, (
        f"signature {_sig}, batch {_b}, {_dt}: expected {_want!r} (what ONNX Runtime does), "
        f"got {_got!r}"
    )

# %% [markdown]
# ## Summary
#
# - **PyTorch**: `torch.onnx.export(model.eval(), (example,), dynamo=True,
#   dynamic_shapes={"x": {0: Dim("batch")}})`; read the exported input shape; verify at several
#   batch sizes; `torch.cond` for data-dependent branches. The TorchScript exporter is legacy,
#   and torch now warns that TorchScript itself (`torch.jit.script`, `torch.jit.trace`) is
#   deprecated.
# - **Keras 3**: `model.export(dir)`, then tf2onnx on the SavedModel (CLI or `from_function` on
#   the loaded `serve`). tf2onnx 1.17's `from_keras` fails on Keras 3 Sequential models and
#   converts functional ones only because they still carry `output_names`; it is supported with
#   tf_keras, in a process that set `TF_USE_LEGACY_KERAS=1` before importing TensorFlow.
# - **scikit-learn**: convert the whole pipeline; DataFrames give one input per column;
#   `zipmap=False`; `target_opset` per domain; `update_registered_converter` for your own steps;
#   `DoubleTensorType` plus float64 tree thresholds (`ai.onnx.ml` 3) where float32 breaks
#   parity; onnxmltools for XGBoost and LightGBM (its own opset ceiling, and read its output
#   signature).
# - A conversion is done when a measured comparison at dtype-appropriate tolerances says so.
# - In your own projects, `course.convert.torch_to_onnx`, `keras_to_onnx` and `sklearn_to_onnx`
#   run these routes and verify the result in one call; `course.troubleshoot.attempt` keeps a
#   failure and its warnings in one object you can read.
#
# **Common pitfalls**: a batch fixed by the example or by the model's own code; forgetting
# `model.eval()`; float64 data into float32 models, and features that float32 cannot hold
# (timestamps) and float32 tree thresholds; ZipMap lists; `from_keras` with a Keras 3
# Sequential model; `dynamic_axes` habits from the legacy exporter; asking for an opset older
# than an operator, or newer than the converter supports; a missing `onnxscript`; trusting a
# converter's declared output shapes.
#
# **Further reading**
# - PyTorch documentation: *torch.onnx — TorchDynamo-based ONNX Exporter* and *torch.export —
#   Dynamic shapes*.
# - PyTorch tutorials: *Export a model with control flow to ONNX*.
# - tf2onnx README: *Getting started* and *CLI reference* (github.com/onnx/tensorflow-onnx).
# - Fratantonio et al., *Magika: AI-Powered Content-Type Detection* (arXiv:2409.13768), and the
#   `magika` repository (github.com/google/magika): the model of section 2.6.
# - Keras documentation: *Model export for inference* (`model.export`).
# - skl2onnx documentation: *Convert a pipeline with ColumnTransformer*, *Probabilities as a
#   vector or as a ZipMap*, *Implement a new converter*, *Issues when switching to float*.
# - onnx pull request #3897, *Update TreeEnsembleClassifier and TreeEnsembleRegressor to support
#   tensor as attributes* (why float64 thresholds exist); onnxmltools README (supported
#   libraries).
# - ONNX Runtime documentation: *Python API — InferenceSession*.
