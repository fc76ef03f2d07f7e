# %% [markdown]
# # Lesson 5 — Beyond ONNX: SavedModel, TorchScript, PMML, Core ML and TFLite
#
# ONNX is one format among several, and not always the right one. TensorFlow serves
# SavedModels, PyTorch has TorchScript and now `torch.export` and ExecuTorch, phones run
# Core ML and TFLite (now LiteRT), and classical statistics has exchanged PMML documents since
# the 1990s. This lesson puts **one network** (the course's small digits MLP, with the same
# weights everywhere) into every one of these formats that works on this machine, and measures
# them alike: file size, load time, latency and how far each output is from the original.
#
# **After this lesson you will be able to**
# 1. export a TensorFlow SavedModel with named signatures, inspect them from Python and load
#    the model back without its Python code;
# 2. explain trace versus script in TorchScript, reproduce the silent bug of tracing
#    data-dependent control flow, and place TorchScript next to `torch.export` and ExecuTorch;
# 3. read and write PMML, the XML format of classical ML, and evaluate it in pure Python;
# 4. convert a model to Core ML and to TFLite/LiteRT (float and int8) and run what runs here;
# 5. compare formats on size, load time, latency and parity, and say where ONNX is the wrong
#    choice.
#
# **Prerequisites**: Lessons 1-3 (what an exchange format is, converting to ONNX); PyTorch and
# Keras basics.
#
# **Estimated time**: 1.5 to 3 hours for a first-time learner. Estimated, not measured on
# learners: about 3,600 words of text at 100-150 words a minute (25-35 min), about 40 code cells
# to run and read at 0.5-1 min each (20-40 min), and four exercises at 10-25 min each
# (40-100 min). Running every cell takes under a minute
# of machine time (the course's tests check it on 2 cores).
#
# **How to check your answers**: in JupyterLab press *Validate* (nbgrader's button in the
# notebook toolbar). Without an instructor, run the visible test cells after each exercise (each
# prints nothing when your answer is right and says what was expected and what was got when it
# is not), or run `course.check()` for the course's self-check.

# %%
import time

LESSON_START = time.perf_counter()

import importlib.util
import io
import shutil
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from course import bench, data, formats, troubleshoot
from course.palette import PALE_GREY

tf = data.import_tensorflow()  # TensorFlow first, without its start-up lines on stderr
import keras
import torch
from threadpoolctl import threadpool_limits

# One thread for every runtime that lets us choose: these models are tiny, and on a small
# shared machine threads mostly spin against each other (Lesson 6 measures threading).
torch.set_num_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
threadpool_limits(1)  # NumPy's and scikit-learn's BLAS

OKABE_ITO = bench.OKABE_ITO
WORK = data.workdir("lesson05")  # every artifact of this lesson goes here
pd.set_option("display.max_colwidth", 80)
print(f"torch {torch.__version__}, tensorflow {tf.__version__}, keras {keras.__version__}")

# %% [markdown]
# ## The model every format will carry
#
# The course's digits MLP (64 pixel intensities scaled to [0, 1] in, two hidden layers of 64
# ReLU units, 10 classes out; trained in seconds and cached), with a softmax appended so every
# format returns probabilities. Its PyTorch output on the 450 test images is the **reference**
# every format is compared with. `LAYERS` holds its weights as plain NumPy arrays, `(inputs,
# outputs)` per layer, so other frameworks can receive exactly the same numbers.

# %%
split = data.load_digits_split()
X_test, y_test = split.X_test, split.y_test
mlp = data.train_torch_mlp(split)
model = torch.nn.Sequential(mlp, torch.nn.Softmax(dim=1)).eval()
with torch.inference_mode():
    reference = model(torch.from_numpy(X_test)).numpy()

LAYERS = [
    (layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy())
    for layer in mlp
    if isinstance(layer, torch.nn.Linear)
]
N_PARAMETERS = sum(w.size + b.size for w, b in LAYERS)
print("layer shapes (inputs, outputs):", [w.shape for w, _ in LAYERS])
print(f"{N_PARAMETERS:,} parameters, {N_PARAMETERS * 4:,} bytes as float32")
print(f"test accuracy of the reference: {np.mean(reference.argmax(1) == y_test):.1%}")

# %% [markdown]
# ## 1. TensorFlow SavedModel
#
# **Why it matters.** The SavedModel is TensorFlow's own deployment format: TensorFlow
# Serving, the TFLite converter, the TensorFlow.js converter and tf2onnx all start from one. It
# is a **folder**: `saved_model.pb` (a protobuf holding the computation as TensorFlow graphs,
# one per traced function, and the *signatures*), `variables/` (the weights, as a checkpoint),
# and `assets/` (files such as vocabularies). A **signature** is a named, typed entry point:
# named input tensors with dtypes and shapes in, a dict of named outputs out. Servers call
# signatures by name; `serving_default` is the one TensorFlow Serving uses unless told
# otherwise.
#
# We rebuild the MLP in Keras 3 and give it the PyTorch weights, so the SavedModel carries the
# same network.


# %%
def keras_twin(layers):
    """A Keras functional MLP with the given (inputs, outputs) weights, softmax at the end."""
    inputs = keras.Input(shape=(layers[0][0].shape[0],), name="pixels")
    x = inputs
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        dense = keras.layers.Dense(w.shape[1], activation="softmax" if last else "relu")
        x = dense(x)
        dense.set_weights([w, b])
    return keras.Model(inputs, x, name="digits_mlp")


keras_model = keras_twin(LAYERS)
twin_diff = np.abs(keras_model(X_test, training=False).numpy() - reference).max()
print(f"Keras twin vs PyTorch: largest |difference| {twin_diff:.1e}")

# %% [markdown]
# Keras 3 writes SavedModels with `model.export(path)` (one endpoint, `serve`). To choose the
# signatures ourselves we use its `ExportArchive`: `serving_default` returns the probabilities
# under the name `probabilities`, and `predict_label` returns the predicted digit.

# %%
SAVED_MODEL = WORK / "digits_savedmodel"
pixels_spec = [tf.TensorSpec([None, 64], tf.float32, name="pixels")]
archive = keras.export.ExportArchive()
archive.track(keras_model)
archive.add_endpoint(
    name="serving_default",
    fn=lambda pixels: {"probabilities": keras_model(pixels, training=False)},
    input_signature=pixels_spec,
)
archive.add_endpoint(
    name="predict_label",
    fn=lambda pixels: {"label": tf.argmax(keras_model(pixels, training=False), axis=1)},
    input_signature=pixels_spec,
)
with troubleshoot.capture():  # TensorFlow logs "Assets written to ..." even when not verbose
    archive.write_out(str(SAVED_MODEL), verbose=False)
for path in sorted(p for p in SAVED_MODEL.rglob("*") if p.is_file()):
    print(f"{path.stat().st_size:>8,} bytes  {path.relative_to(SAVED_MODEL)}")

# %% [markdown]
# **Inspection from Python.** `saved_model.pb` is a protobuf message; reading it shows what the
# `saved_model_cli show --dir ... --all` command prints: the tag set of each graph and every
# signature's inputs and outputs.

# %%
from tensorflow.core.protobuf import saved_model_pb2

proto = saved_model_pb2.SavedModel.FromString((SAVED_MODEL / "saved_model.pb").read_bytes())


def tensor_info(info):
    dims = [d.size for d in info.tensor_shape.dim]
    return f"{tf.dtypes.as_dtype(info.dtype).name}{dims} (graph tensor {info.name})"


for meta in proto.meta_graphs:
    print("tags:", list(meta.meta_info_def.tags))
    for key, signature in sorted(meta.signature_def.items()):
        if key.startswith("__"):
            continue  # TensorFlow's internal entry (saver), not a serving signature
        print(f"  signature {key!r}  method {signature.method_name}")
        for name, info in signature.inputs.items():
            print(f"    input  {name}: {tensor_info(info)}")
        for name, info in signature.outputs.items():
            print(f"    output {name}: {tensor_info(info)}")

# %% [markdown]
# **Loading back.** `tf.saved_model.load` needs only TensorFlow, not the Keras code that built
# the model: it returns a generic object whose `.signatures` are callable concrete functions.

# %%
loaded_savedmodel = tf.saved_model.load(str(SAVED_MODEL))
serve = loaded_savedmodel.signatures["serving_default"]
print("signatures:", list(loaded_savedmodel.signatures))
print("serving_default takes", serve.structured_input_signature[1])
print("serving_default returns", serve.structured_outputs)
savedmodel_probs = serve(pixels=tf.constant(X_test))["probabilities"].numpy()
labels = loaded_savedmodel.signatures["predict_label"](pixels=tf.constant(X_test[:8]))["label"]
print(f"largest |SavedModel − PyTorch|: {np.abs(savedmodel_probs - reference).max():.1e}")
print("predict_label on 8 images:", labels.numpy(), " true:", y_test[:8])

# %% [markdown]
# *What to notice*: the batch dimension is `-1` (any size) because the signature said `None`;
# the input is called `pixels` and the output `probabilities` because we named them (Keras'
# default names, `inputs`/`output_0`, are easy to get wrong in a client). A SavedModel runs
# wherever the TensorFlow runtime runs (servers, TF Serving), and needs it: that is hundreds of
# megabytes, which is why phones get TFLite instead (section 4).

# %% [markdown]
# ## 2. TorchScript, `torch.export` and ExecuTorch
#
# **Why it matters.** TorchScript was PyTorch's first answer to "run this model without
# Python": a `.pt` file holding a typed program that C++ `libtorch` executes. There are two ways
# to make one. **Tracing** (`torch.jit.trace`) runs the model once on an example input and
# records the tensor operations that happened; **scripting** (`torch.jit.script`) compiles the
# Python source of `forward`, control flow included. torch 2.13 marks both deprecated: calling
# `torch.jit.trace`, `torch.jit.script` or `torch.jit.load` raises a `DeprecationWarning` that
# says "Please switch to `torch.compile` or `torch.export`" (measured below: the warning is the
# point, so we print what torch said). Deprecated means it still works in this release and will
# not gain features; existing `.pt` files keep loading for now.

# %%
TORCHSCRIPT = WORK / "digits_traced.pt"
with troubleshoot.capture() as trace_log:
    traced = torch.jit.trace(model, torch.from_numpy(X_test[:4]))
    traced.save(str(TORCHSCRIPT))
    reloaded = torch.jit.load(str(TORCHSCRIPT))
with torch.inference_mode():
    ts_probs = reloaded(torch.from_numpy(X_test)).numpy()
print(
    f"saved {TORCHSCRIPT.stat().st_size:,} bytes; largest |TorchScript − eager|: "
    f"{np.abs(ts_probs - reference).max():.1e}"
)
print("torch said:", *sorted({w.split(". ")[0] for w in trace_log.warnings}), sep="\n  ")

# %%
print(reloaded.code)  # the recorded program: what the C++ runtime will execute

# %% [markdown]
# ### 2.1 The silent bug: tracing data-dependent control flow
#
# A realistic wrapper: images arrive either already scaled to [0, 1] or as raw scanner
# intensities 0-16, and the model scales them when it sees values above 1. The `if` depends on
# the *data*, not on shapes.


# %%
class DigitsWithScaling(torch.nn.Module):
    """The digits MLP, accepting pixels scaled to [0, 1] or raw intensities 0-16."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        if x.max() > 1.0:  # raw intensities: scale them like the training data
            x = x / 16.0
        return torch.softmax(self.net(x), dim=1)


scaling_model = DigitsWithScaling(mlp).eval()
raw_test = np.rint(X_test * 16).astype(np.float32)  # what the scanner delivers
print("scaled inputs range", X_test.min(), "to", X_test.max(), "| raw:", raw_test.max())

# %% [markdown]
# We trace it twice, as two teams would: once with a batch of scaled training images, once with
# a batch straight from the scanner (raw). Tracing records only the branch its example took; the
# `TracerWarning` is the only sign. Scripting compiles the `if` instead.

# %%
with troubleshoot.capture() as scaling_trace_log:
    traced_on_scaled = torch.jit.trace(scaling_model, torch.from_numpy(X_test[:4]))
    traced_on_raw = torch.jit.trace(scaling_model, torch.from_numpy(raw_test[:4]))
for line in sorted(set(scaling_trace_log.warnings)):
    if "TracerWarning" in line:
        print(line[:190], "...")

with troubleshoot.capture():
    scripted_scaling = torch.jit.script(scaling_model)  # (deprecated too)
print(scripted_scaling.code)


# %%
def probabilities(module, x):
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


INPUTS = {"scaled inputs [0, 1]": X_test, "raw inputs 0-16": raw_test}
VARIANTS = {
    "eager PyTorch": scaling_model,
    "traced on scaled images": traced_on_scaled,
    "traced on raw images": traced_on_raw,
    "scripted": scripted_scaling,
}
rows = {}
for variant, module in VARIANTS.items():
    row = {}
    for kind, x in INPUTS.items():
        probs = probabilities(module, x)
        row[f"accuracy, {kind}"] = np.mean(probs.argmax(1) == y_test)
        row[f"max |Δp| vs eager, {kind}"] = np.abs(probs - probabilities(scaling_model, x)).max()
    rows[variant] = row
scaling_table = pd.DataFrame(rows).T
scaling_table.style.format("{:.1%}", subset=[c for c in scaling_table if "accuracy" in c]).format(
    "{:.2f}", subset=[c for c in scaling_table if "Δp" in c]
)

# %%
fig, ax = plt.subplots(figsize=(9, 3.6))
positions = np.arange(len(scaling_table))
for k, kind in enumerate(INPUTS):
    ax.bar(
        positions + (k - 0.5) * 0.38,
        scaling_table[f"accuracy, {kind}"] * 100,
        width=0.38,
        color=OKABE_ITO[k],
        label=kind,
    )
ax.set_xticks(positions, scaling_table.index)
ax.set(
    ylabel="test accuracy (%)",
    ylim=(0, 105),
    xlabel="how the model was run",
    title="A trace keeps the branch its example took",
)
ax.legend(title="inputs sent", loc="lower left")
fig.tight_layout()
plt.show()

# %% [markdown]
# *What to see*: each trace is right on the kind of input it was traced with. Traced on raw
# images, it divides every input by 16, so pre-scaled images lose about half their accuracy;
# traced on scaled images, it never scales, so raw images keep most labels (a ReLU network
# barely changes its arg-max when its input is multiplied by 16) but their probabilities move
# by the amount in the table: a confidence threshold downstream would now misfire. No error at
# run time in either case, only a warning at export. Scripting keeps the `if` and matches the
# eager model everywhere.
#
# **Where `torch.export` stands.** `torch.export` is the capture PyTorch now recommends
# (ONNX's `dynamo=True` exporter, ExecuTorch and Core ML start from it). It refuses to guess:
# on this model it stops with an error instead of writing a silently wrong program.

# %%
refusal = troubleshoot.attempt(torch.export.export, scaling_model, (torch.from_numpy(X_test[:4]),))
print(refusal.report(max_lines=2, warnings=False))

# %% [markdown]
# The fix `torch.export` asks for is to express the branch as data: `torch.cond(predicate,
# true_fn, false_fn, operands)` keeps both branches in the graph (here `torch.where` would work
# too, since both branches are cheap).


# %%
class DigitsWithScalingCond(DigitsWithScaling):
    def forward(self, x):
        x = torch.cond(x.max() > 1.0, lambda t: t / 16.0, lambda t: t.clone(), (x,))
        return torch.softmax(self.net(x), dim=1)


with troubleshoot.capture():
    exported_cond = torch.export.export(
        DigitsWithScalingCond(mlp).eval(),
        (torch.from_numpy(X_test[:4]),),
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    ).module()
for kind, x in INPUTS.items():
    gap = np.abs(probabilities(exported_cond, x) - probabilities(scaling_model, x)).max()
    print(f"torch.export + torch.cond, {kind}: max |Δp| vs eager {gap:.1e}")

# %% [markdown]
# ### 2.2 `torch.export`, then ExecuTorch
#
# `torch.export.export` captures the whole model as an `ExportedProgram`: a graph of core ATen
# operators with the weights, and symbolic shapes (`Dim("batch")` lets the batch vary up to a
# bound). It saves to a `.pt2` file. One `ExportedProgram` feeds several back ends: below it
# becomes an ONNX file, an ExecuTorch program, and (section 4) a Core ML model.

# %%
batch = torch.export.Dim("batch", min=1, max=1024)
with troubleshoot.capture():
    exported = torch.export.export(
        model, (torch.from_numpy(X_test[:4]),), dynamic_shapes=({0: batch},)
    )
PT2 = WORK / "digits.pt2"
torch.export.save(exported, PT2)
ops = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
print(f"saved {PT2.stat().st_size:,} bytes; operators:", ", ".join(ops))
user_input = [n for n in exported.graph.nodes if n.op == "placeholder"][-1]
print(
    f"input {user_input.name}: shape {tuple(user_input.meta['val'].shape)}, symbol ranges "
    f"{exported.range_constraints}"
)

# %%
ONNX_FILE = WORK / "digits.onnx"
with troubleshoot.capture():  # the same program, as ONNX (nothing to optimise in an MLP)
    onnx_program = torch.onnx.export(exported, verbose=False, optimize=False)
onnx_program.save(str(ONNX_FILE))
onnx_ops = [node.op_type for node in onnx_program.model_proto.graph.node]
print(f"ONNX file: {ONNX_FILE.stat().st_size:,} bytes; operators:", ", ".join(onnx_ops))

# %% [markdown]
# **ExecuTorch** is PyTorch's on-device runtime (phones, microcontrollers): a small C++
# interpreter for `.pte` files, with *delegates* that hand parts of the graph to a fast
# backend. `to_edge_transform_and_lower` turns the program into ExecuTorch's edge dialect and
# gives every part the XNNPACK partitioner accepts to XNNPACK (optimised CPU kernels, the same
# library TFLite uses); `to_executorch()` produces the `.pte` bytes. This is the slowest step
# of the lesson, so we time it.

# %%
with troubleshoot.capture():  # importing ExecuTorch logs notices about optional kernels
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

start = time.perf_counter()
with troubleshoot.capture():
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    executorch_program = edge.to_executorch()
executorch_seconds = time.perf_counter() - start
PTE = WORK / "digits_xnnpack.pte"
PTE.write_bytes(executorch_program.buffer)
edge_nodes = [str(n.target) for n in edge.exported_program().graph.nodes if n.op == "call_function"]
print(f"lowered in {executorch_seconds:.1f} s (measured; includes one-time setup of the backend)")
print(f".pte file: {PTE.stat().st_size:,} bytes; top-level calls left in the graph:", edge_nodes)

# %%
with troubleshoot.capture():  # the runtime logs CPU probing lines to stderr
    method = Runtime.get().load_program(str(PTE)).load_method("forward")
pte_probs = method.execute([torch.from_numpy(X_test)])[0].numpy()
print(
    f"ExecuTorch output {pte_probs.shape}, largest |ExecuTorch − eager|: "
    f"{np.abs(pte_probs - reference).max():.1e}"
)

# %% [markdown]
# *What to notice*: the whole MLP became one `executorch_call_delegate` (plus the
# `getitem` that picks its output): every operator went to XNNPACK. TorchScript still loads
# where it was deployed, but new work starts from `torch.export`: ONNX for portability across
# runtimes, ExecuTorch for PyTorch's own on-device runtime, AOTInductor (not shown) for
# compiled server binaries. Each refuses data-dependent Python control flow instead of
# guessing.

# %% [markdown]
# ### 2.3 One production model in both formats: Silero VAD as TorchScript and as ONNX
#
# **Why it matters.** The digits MLP is ours. Real deployments meet models that someone else
# trained and shipped, often in more than one format, and the choice between the files is made
# on load time, latency, size and whether they compute the same thing. **Silero VAD**, a
# voice-activity detector trained in PyTorch by the Silero team, ships in its PyPI wheel
# (`silero-vad`, pinned by the course; nothing is downloaded) as TorchScript (`silero_vad.jit`)
# and as ONNX (`silero_vad.onnx`, among other variants Lesson 2 takes apart). Both take 16 kHz
# audio in chunks of 512 samples (32 ms) and carry a recurrent state from chunk to chunk: the
# TorchScript module keeps it inside itself, the ONNX graph takes it as an input and returns it
# as an output, so the caller carries it. `course.pretrained` finds the files and runs both
# over a stream. The audio is **synthetic** (speech-like voiced syllables, then noise and
# silence, made from a seed), not recorded speech.

# %%
from course import pretrained

VAD_JIT = pretrained.silero_file("silero_vad.jit")
VAD_ONNX = pretrained.silero_file("silero_vad.onnx")
for vad_path in (VAD_JIT, VAD_ONNX):
    print(f"{vad_path.name:16s} {vad_path.stat().st_size / 1024:7.0f} KB")


def load_jit():
    with troubleshoot.capture():  # torch.jit.load's DeprecationWarning, kept off stderr
        return torch.jit.load(str(VAD_JIT))


def load_onnx():
    return pretrained.silero_session(VAD_ONNX)


vad_load = bench.compare(
    {"TorchScript": load_jit, "ONNX Runtime": load_onnx}, warmup=1, repeat=5, warn=False
)
vad_load.to_frame()[["median_ms", "ci_low_ms", "ci_high_ms", "repeat"]].round(1)

# %% [markdown]
# Loading is a one-time cost per process, but it is what a cold start (a serverless function, a
# freshly scaled replica) pays before the first answer. Now the steady state: one 32 ms chunk,
# timed interleaved, with 95% intervals.

# %%
vad_jit, vad_session = load_jit(), load_onnx()
vad_stream = pretrained.speech_and_noise(seed=0, seconds=1.0)  # 8 s of synthetic audio
vad_chunk = vad_stream.samples[: pretrained.CHUNK]
vad_chunk_t = torch.from_numpy(vad_chunk)[None, :]
vad_feed = {
    "input": pretrained.windows(vad_chunk),
    "state": np.zeros((2, 1, 128), np.float32),
    "sr": np.array(pretrained.SAMPLE_RATE, dtype=np.int64),
}


def jit_chunk(module=vad_jit):
    with torch.inference_mode():
        return module(vad_chunk_t, pretrained.SAMPLE_RATE)


vad_latency = bench.compare(
    {"TorchScript": jit_chunk, "ONNX Runtime": bench.session_runner(vad_session, vad_feed)},
    repeat=50,
    warn=False,
)
vad_latency.plot()  # a Figure: shown once, as the cell's result

# %% [markdown]
# *What to see*: the median time per chunk of each runtime with its interval; where the
# intervals do not overlap, the faster one is faster on this machine. Either way, both stay far
# below the 32 ms of audio each chunk holds.
#
# **Do they compute the same thing?** The whole stream, chunk by chunk, with the state carried:

# %%
p_jit = pretrained.vad_torchscript(vad_jit, vad_stream.samples)
p_onnx = pretrained.vad_onnx(vad_session, vad_stream.samples)
vad_truth = vad_stream.frame_labels()
print(f"{len(p_jit)} chunks; largest |p_TorchScript - p_ONNX|: {np.abs(p_jit - p_onnx).max():.1e}")
print(f"same speech decision (p > 0.5) on {np.mean((p_jit > 0.5) == (p_onnx > 0.5)):.1%} of chunks")
print(
    f"frame accuracy on the synthetic labels: TorchScript {pretrained.frame_accuracy(p_jit, vad_truth):.3f}, "
    f"ONNX {pretrained.frame_accuracy(p_onnx, vad_truth):.3f}"
)

# %%
vad_fig, (vad_top, vad_bottom) = plt.subplots(2, 1, figsize=(11, 4.6), sharex=True)
vad_seconds = np.arange(len(vad_truth)) * pretrained.CHUNK / pretrained.SAMPLE_RATE
vad_top.fill_between(
    vad_seconds, 0, vad_truth.astype(float), step="post", color=PALE_GREY, label="synthetic speech"
)
vad_top.plot(vad_seconds, p_jit, color=OKABE_ITO[0], lw=2.5, label="TorchScript")
vad_top.plot(vad_seconds, p_onnx, color=OKABE_ITO[1], lw=1, ls="--", label="ONNX Runtime")
vad_top.set(ylabel="speech probability", title="Silero VAD, the same stream through both files")
vad_top.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
vad_bottom.semilogy(vad_seconds, np.maximum(np.abs(p_jit - p_onnx), 1e-9), color=OKABE_ITO[2])
vad_bottom.set(
    xlabel="time (s)",
    ylabel="|difference| (0 drawn at 1e-9)",
    title="Where the two runtimes part (log scale)",
)
vad_fig.tight_layout()
plt.show()
del vad_jit, vad_session  # free both runtimes' copies of the model before the next section

# %% [markdown]
# *What to notice*: the two files agree to float32 rounding over a whole stream although each
# chunk depends on every chunk before it through the state, so the rounding does not build up.
# The ONNX file is the one to choose for a non-PyTorch runtime (onnxruntime in C#, Java, the
# browser) and for quantization tools (Lesson 4 quantizes this model and shows where int8
# breaks it); the TorchScript file needs libtorch and a deprecated API. Neither file is the
# training code: both were exported by the model's authors, and the state handling you write
# around the ONNX file is part of the deployment.

# %% [markdown]
# ## 3. PMML: the XML format of classical machine learning
#
# **Why it matters.** The Predictive Model Markup Language (PMML) comes from the Data Mining
# Group; version 0.7 appeared in 1997 and 4.4 is current. A PMML file is an XML document: a
# `DataDictionary` declares every field with its type, then a model element
# (`RegressionModel`, `TreeModel`, `MiningModel` for ensembles, `Scorecard`, `NeuralNetwork`,
# ...) with a `MiningSchema` naming its inputs and target, and the parameters as attributes.
# Banks, insurers and databases score PMML with Java engines (JPMML), SAS, KNIME or inside
# the database, often because a regulator or a model-governance process can read the XML. It
# is strong for classical ML and weak for deep learning.
#
# A linear regression in PMML, written by hand with the standard library, from a model fitted
# on scikit-learn's bundled diabetes data (10 features, a disease-progression score):

# %%
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

diabetes = load_diabetes()
diabetes_X, diabetes_y = diabetes.data, diabetes.target
linreg = LinearRegression().fit(diabetes_X[:300], diabetes_y[:300])
PMML_NS = formats.PMML_NAMESPACE
ET.register_namespace("", PMML_NS)  # write <PMML xmlns="..."> rather than ns0: prefixes


def linear_regression_pmml(model, feature_names, target="progression"):
    """A PMML 4.4 RegressionModel for a fitted scikit-learn linear model."""
    root = ET.Element(f"{{{PMML_NS}}}PMML", version="4.4")
    ET.SubElement(root, f"{{{PMML_NS}}}Header", description="linear regression, by hand")
    fields = ET.SubElement(
        root, f"{{{PMML_NS}}}DataDictionary", numberOfFields=str(len(feature_names) + 1)
    )
    for name in [*feature_names, target]:
        ET.SubElement(
            fields, f"{{{PMML_NS}}}DataField", name=name, optype="continuous", dataType="double"
        )
    regression = ET.SubElement(root, f"{{{PMML_NS}}}RegressionModel", functionName="regression")
    schema = ET.SubElement(regression, f"{{{PMML_NS}}}MiningSchema")
    for name in feature_names:
        ET.SubElement(schema, f"{{{PMML_NS}}}MiningField", name=name)
    ET.SubElement(schema, f"{{{PMML_NS}}}MiningField", name=target, usageType="predicted")
    table = ET.SubElement(
        regression, f"{{{PMML_NS}}}RegressionTable", intercept=repr(float(model.intercept_))
    )
    for name, coefficient in zip(feature_names, model.coef_, strict=True):
        ET.SubElement(
            table, f"{{{PMML_NS}}}NumericPredictor", name=name, coefficient=repr(float(coefficient))
        )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


pmml_text = linear_regression_pmml(linreg, list(diabetes.feature_names))
LINEAR_PMML = WORK / "diabetes_linear.pmml"
LINEAR_PMML.write_text(pmml_text)
lines = pmml_text.splitlines()
print("\n".join(lines[:8] + ["  ..."] + lines[-8:]))
print(f"({len(lines)} lines, {LINEAR_PMML.stat().st_size:,} bytes)")

# %% [markdown]
# **Evaluating it in pure Python.** `sklearn-pmml-model` reads PMML into scikit-learn
# estimators, with no Java. The prediction for each row is `intercept + Σ coefficient × x`.

# %%
from sklearn_pmml_model.linear_model import PMMLLinearRegression

pmml_linreg = PMMLLinearRegression(pmml=str(LINEAR_PMML))
pmml_pred = pmml_linreg.predict(diabetes_X[300:])
print(
    f"largest |PMML − scikit-learn| on {len(pmml_pred)} held-out rows: "
    f"{np.abs(pmml_pred - linreg.predict(diabetes_X[300:])).max():.1e}"
)

# %% [markdown]
# A consumer implements a *subset* of the specification. The PMML 4.4 `NumericPredictor` has an
# `exponent` attribute (default 1): the term is `coefficient × x^exponent`. Set it to 2 on the
# first predictor and compare `sklearn-pmml-model` with what the specification says:

# %%
squared = ET.fromstring(pmml_text)
first = squared.find(
    f"{{{PMML_NS}}}RegressionModel/{{{PMML_NS}}}RegressionTable/{{{PMML_NS}}}NumericPredictor"
)
first.set("exponent", "2")
SQUARED_PMML = WORK / "diabetes_squared.pmml"
SQUARED_PMML.write_text(ET.tostring(squared, encoding="unicode"))
held_out = diabetes_X[300:]
by_the_spec = linreg.predict(held_out) + linreg.coef_[0] * (held_out[:, 0] ** 2 - held_out[:, 0])
by_the_library = PMMLLinearRegression(pmml=str(SQUARED_PMML)).predict(held_out)
print(
    f"{first.get('name')} now enters squared; largest |library − specification|: "
    f"{np.abs(by_the_library - by_the_spec).max():.2f} (target values range "
    f"{diabetes_y.min():.0f}-{diabetes_y.max():.0f})"
)

# %% [markdown]
# *What to notice*: the library silently read the squared term as linear. A standard on paper
# is only as portable as its consumers: test a PMML file with the engine that will score it
# (Exercise 2 asks you to write an evaluator that follows the specification).
#
# **Exporting PMML from scikit-learn** is usually done with `sklearn2pmml`, a Python front end
# to the Java library JPMML-SkLearn: it needs a Java runtime, and the package itself. We check
# for both and run it only when both are present.

# %%
java = shutil.which("java")
has_sklearn2pmml = importlib.util.find_spec("sklearn2pmml") is not None
if java:
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    print(f"Java found: {java} ({version.splitlines()[0] if version else 'version unknown'})")
else:
    print("Java not found: sklearn2pmml cannot run (install a JRE, e.g. OpenJDK 17).")
if not has_sklearn2pmml:
    print(
        "The sklearn2pmml package is not installed: skipped. (Its releases check the "
        "scikit-learn version, and this course pins scikit-learn 1.9.1, newer than they "
        "accept; the hand-written PMML above shows the format instead.)"
    )
elif java:
    from sklearn2pmml import sklearn2pmml
    from sklearn2pmml.pipeline import PMMLPipeline

    exported_pmml = WORK / "diabetes_sklearn2pmml.pmml"
    outcome = troubleshoot.attempt(
        sklearn2pmml, PMMLPipeline([("regressor", linreg)]), str(exported_pmml)
    )
    print("sklearn2pmml:", outcome.report(max_lines=3, warnings=False))

# %% [markdown]
# **The MLP in PMML.** PMML can describe a neural network too (`NeuralNetwork`: one `Neuron`
# per unit with its bias, one `Con` element per weight). `course.formats.mlp_to_pmml` writes
# our network's weights that way, and `sklearn-pmml-model` reads it back.

# %%
from sklearn_pmml_model.neural_network import PMMLMLPClassifier

MLP_PMML = WORK / "digits_mlp.pmml"
MLP_PMML.write_text(
    formats.mlp_to_pmml(
        LAYERS,
        class_labels=range(10),
        feature_names=[f"pixel{i}" for i in range(64)],
        target_name="digit",
    )
)
pmml_mlp = PMMLMLPClassifier(pmml=str(MLP_PMML))
pmml_probs = pmml_mlp.predict_proba(X_test)
mlp_pmml_text = MLP_PMML.read_text()
neuron_at = mlp_pmml_text.index("<Neuron ")
print(mlp_pmml_text[neuron_at - 40 : neuron_at + 180], "...")
print(
    f"{mlp_pmml_text.count('<Con '):,} <Con> elements, {MLP_PMML.stat().st_size:,} bytes "
    f"({MLP_PMML.stat().st_size / N_PARAMETERS:.0f} bytes per parameter); "
    f"largest |PMML − PyTorch|: {np.abs(pmml_probs - reference).max():.1e}"
)

# %% [markdown]
# *What to notice*: the PMML network agrees with PyTorch to float32 rounding (it is evaluated
# in float64), but every weight costs a line of XML, so the file is more than ten times the
# float32 weights. PMML is the right tool for a scorecard, a tree ensemble or a regression
# that a Java scoring engine or an auditor must read; for networks, tensors in binary formats
# win.

# %% [markdown]
# ## 4. Core ML and TensorFlow Lite / LiteRT
#
# ### 4.1 Core ML
#
# **Why it matters.** Core ML is Apple's on-device format and runtime: the operating system
# schedules a model across CPU, GPU and the Neural Engine. `coremltools` converts PyTorch (from
# `torch.export` or TorchScript) and TensorFlow models into an `.mlpackage` holding an *ML
# program* (a typed program in Core ML's MIL language) and its weights. Conversion runs on
# Linux; **prediction needs macOS**, because it calls the Core ML framework.

# %%
with troubleshoot.capture():  # notices about untested torch/TF versions, no native library
    import coremltools as ct
print(
    f"coremltools {ct.__version__}, native Core ML library present: "
    f"{importlib.util.find_spec('coremltools.libcoremlpython') is not None}"
)

# %%
start = time.perf_counter()
with troubleshoot.capture():  # progress bars and version notices
    mlmodel = ct.convert(
        exported.run_decompositions({}),
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
    )
MLPACKAGE = WORK / "digits.mlpackage"
mlmodel.save(str(MLPACKAGE))
print(f"converted in {time.perf_counter() - start:.1f} s; the package holds:")
for path in sorted(p for p in MLPACKAGE.rglob("*") if p.is_file()):
    print(f"  {path.stat().st_size:>7,} bytes  {path.relative_to(MLPACKAGE)}")
weight_bin = next(MLPACKAGE.rglob("weight.bin")).stat().st_size
print(f"weights: {weight_bin / N_PARAMETERS:.2f} bytes per parameter")

# %% [markdown]
# `model.mlmodel` is the program, `weight.bin` the weights; coremltools adds a debug-handle
# map (used by ExecuTorch's Core ML delegate) when it converts from `torch.export`. About 2
# bytes per parameter: an ML program stores and computes in **float16** by default
# (`compute_precision=ct.precision.FLOAT32` keeps float32). Since we cannot predict here, we
# inspect the converted model's specification, a protobuf like ONNX's.

# %%
spec = mlmodel.get_spec()
print(f"model type: {spec.WhichOneof('Type')}, specification version {spec.specificationVersion}")
for kind, features in (("input", spec.description.input), ("output", spec.description.output)):
    for feature in features:
        array = feature.type.multiArrayType
        ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
        dtype = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
        print(f"  {kind} {feature.name}: {dtype}, shape {list(array.shape)}, ranges {ranges}")
main = spec.mlProgram.functions["main"]
block = main.block_specializations[main.opset]
print("MIL operations:", ", ".join(op.type for op in block.operations))

# %%
if sys.platform == "darwin":
    coreml_probs = mlmodel.predict({spec.description.input[0].name: X_test})
    coreml_probs = next(iter(coreml_probs.values()))
    print(f"largest |Core ML − PyTorch|: {np.abs(coreml_probs - reference).max():.1e}")
else:
    print(
        f"Core ML prediction needs macOS; this is {sys.platform}: skipped. The specification "
        "above is what an iPhone or a Mac would load."
    )

# %% [markdown]
# ### 4.2 TensorFlow Lite / LiteRT
#
# **Why it matters.** TFLite (renamed **LiteRT** in 2024) is Google's on-device format: one
# FlatBuffer file (read in place, no parsing) with a small set of built-in operators, run by a
# runtime of a few hundred kilobytes on Android, iOS and Linux boards and in the browser.
# Microcontrollers, with kilobytes of RAM and no operating system, run the same `.tflite` files
# with a different, much smaller C++ runtime, **LiteRT for Microcontrollers** (formerly
# TensorFlow Lite Micro): no dynamic memory allocation, a fixed arena for the tensors, and only
# the operators you register. The converter starts from a SavedModel. Learners report that
# Keras 3 broke `TFLiteConverter.from_keras_model` (TensorFlow issue #63867 and Keras issue
# #19108, both TensorFlow 2.16); we measure it on this stack before taking the SavedModel route.

# %%
keras_route = troubleshoot.attempt(
    lambda: tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()
)
print(f"from_keras_model on TensorFlow {tf.__version__}:", keras_route.report(max_lines=2))
print("  it printed:", (keras_route.captured.stdout.strip().splitlines() or ["nothing"])[0])

# %% [markdown]
# On this stack it works: it writes a temporary SavedModel behind the scenes (its printout says
# so). The explicit route below is the one that works across versions, and it lets us pick
# the signature.

# %%
converter = tf.lite.TFLiteConverter.from_saved_model(
    str(SAVED_MODEL), signature_keys=["serving_default"]
)
with troubleshoot.capture():
    tflite_float = converter.convert()
TFLITE_FLOAT = WORK / "digits_float32.tflite"
TFLITE_FLOAT.write_bytes(tflite_float)
print(f"float32 TFLite: {len(tflite_float):,} bytes ({N_PARAMETERS * 4:,} of them weights)")

# %% [markdown]
# **Running it with LiteRT.** `ai_edge_litert.interpreter.Interpreter` replaces the deprecated
# `tf.lite.Interpreter`. The interpreter allocates every tensor up front, for the shapes in
# the file: the input is stored as `[1, 64]`, with `shape_signature` `[-1, 64]` saying the
# batch may change. To run another batch size you resize and allocate again.

# %%
from ai_edge_litert.interpreter import Interpreter

interpreter = Interpreter(model_content=tflite_float)
detail = interpreter.get_input_details()[0]
print(
    f"input {detail['name']}: shape {detail['shape']}, shape_signature "
    f"{detail['shape_signature']}, {detail['dtype'].__name__}"
)


def run_tflite(interpreter, x):
    """Run a float-input TFLite model on a batch of any size."""
    index = interpreter.get_input_details()[0]["index"]
    if tuple(interpreter.get_input_details()[0]["shape"]) != x.shape:
        interpreter.resize_tensor_input(index, x.shape)
        interpreter.allocate_tensors()
    interpreter.set_tensor(index, np.ascontiguousarray(x, dtype=np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


with troubleshoot.capture():  # the first run logs that LiteRT created its XNNPACK delegate
    interpreter.allocate_tensors()
tflite_probs = run_tflite(interpreter, X_test)
print(
    f"batch of {len(X_test)}: largest |TFLite − PyTorch| {np.abs(tflite_probs - reference).max():.1e}"
)

# %% [markdown]
# **A quantized variant: dynamic-range int8.** With `optimizations=[tf.lite.Optimize.DEFAULT]`
# and no calibration data, the converter stores weights as int8 (one float32 scale per output
# channel) and keeps float32 inputs, outputs and activations. Which tensors did it quantize?

# %%
converter.optimizations = [tf.lite.Optimize.DEFAULT]
with troubleshoot.capture():
    tflite_dynamic = converter.convert()
TFLITE_DYNAMIC = WORK / "digits_dynamic_int8.tflite"
TFLITE_DYNAMIC.write_bytes(tflite_dynamic)


def parameter_tensors(model_content):
    """The constant tensors (weights and biases) of a TFLite model: dtype, shape, bytes."""
    rows = []
    for t in Interpreter(model_content=model_content).get_tensor_details():
        shape = tuple(int(d) for d in t["shape"])
        if len(shape) == 1 or (len(shape) == 2 and shape[0] != 1):  # not a [1, n] activation
            kind = "bias" if len(shape) == 1 else "weights"
            rows.append(
                {
                    "tensor": f"{kind} {shape}",
                    "dtype": np.dtype(t["dtype"]).name,
                    "bytes": int(np.prod(shape)) * np.dtype(t["dtype"]).itemsize,
                }
            )
    return pd.DataFrame(rows).sort_values(["tensor", "bytes"]).reset_index(drop=True)


float_tensors, dynamic_tensors = parameter_tensors(tflite_float), parameter_tensors(tflite_dynamic)
tensors = pd.concat(
    [
        float_tensors.rename(columns={"dtype": "dtype float", "bytes": "bytes float"}),
        dynamic_tensors[["dtype", "bytes"]].rename(
            columns={"dtype": "dtype dynamic", "bytes": "bytes dynamic"}
        ),
    ],
    axis=1,
)
tensors

# %%
fig, ax = plt.subplots(figsize=(8, 3.4))
positions = np.arange(len(tensors))
ax.bar(
    positions - 0.2, tensors["bytes float"], width=0.4, color=OKABE_ITO[0], label="float32 model"
)
ax.bar(
    positions + 0.2,
    tensors["bytes dynamic"],
    width=0.4,
    color=OKABE_ITO[1],
    label="dynamic-range int8 model",
)
ax.set_xticks(positions, tensors["tensor"], rotation=15)
ax.set(
    ylabel="bytes stored",
    xlabel="parameter tensor (TFLite shape: outputs × inputs)",
    title="Dynamic-range quantization: which tensors became int8",
)
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# *What to see*: the two 64 × 64 weight matrices shrink four-fold (int8), but the 10 × 64 output
# layer (640 values) and every bias stay float32: the converter leaves small tensors alone
# (Exercise 4 asks you to predict these sizes). Now the accuracy cost, measured:

# %%
dynamic_interpreter = Interpreter(model_content=tflite_dynamic)
dynamic_interpreter.allocate_tensors()
dynamic_probs = run_tflite(dynamic_interpreter, X_test)
print(
    f"dynamic-range int8: {len(tflite_dynamic):,} bytes "
    f"({len(tflite_dynamic) / len(tflite_float):.0%} of float32), largest |int8 − PyTorch| "
    f"{np.abs(dynamic_probs - reference).max():.1e}, labels agree on "
    f"{np.mean(dynamic_probs.argmax(1) == reference.argmax(1)):.1%}"
)

# %% [markdown]
# **Full int8 with a representative dataset.** To run integer-only accelerators (many phone
# NPUs, microcontrollers) activations must be int8 too. The converter then needs a
# *representative dataset* to measure activation ranges (a few hundred training images), and
# with `inference_input_type = tf.int8` the model's inputs and outputs are int8: a real value
# `r` is stored as `q` with `r = scale × (q − zero_point)`.


# %%
def representative_images():
    for start in range(0, 200, 20):
        yield [split.X_train[start : start + 20]]


converter.representative_dataset = representative_images
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
with troubleshoot.capture():
    tflite_int8 = converter.convert()
TFLITE_INT8 = WORK / "digits_full_int8.tflite"
TFLITE_INT8.write_bytes(tflite_int8)
int8_interpreter = Interpreter(model_content=tflite_int8)
for kind, d in (
    ("input", int8_interpreter.get_input_details()[0]),
    ("output", int8_interpreter.get_output_details()[0]),
):
    scale, zero_point = d["quantization"]
    print(
        f"{kind}: {d['dtype'].__name__} {d['shape_signature']}, scale {scale:.6f}, "
        f"zero_point {zero_point}"
    )
print(f"file: {len(tflite_int8):,} bytes")

# %%
int8_interpreter.allocate_tensors()
wrong_feed = troubleshoot.attempt(run_tflite, int8_interpreter, X_test[:1])
print("feeding float32 pixels to the int8 model:", wrong_feed.report(max_lines=1))

# %% [markdown]
# *What to notice*: the int8 model will not take float pixels: a client must quantize inputs
# and dequantize outputs with the parameters stored in the file (Exercise 3). The conversion
# choices (dynamic range, full int8, float16) trade size and integer-only execution against
# accuracy; measure each on your data, as above.

# %% [markdown]
# ## 5. The honest comparison, with ONNX
#
# **Why it matters.** Format choice is usually argued from reputation. Here every format that
# runs on this machine carries the *same* network and is measured the same way by
# `course.formats.compare_formats`: size on disk (folders summed), load time (median of 3:
# reading the file and building the runtime's session or interpreter), latency for one image
# and for the 450-image batch (medians of 20 interleaved runs with 95% confidence intervals;
# one thread per runtime, except ExecuTorch's XNNPACK thread pool, which keeps its default),
# and the largest difference from the PyTorch reference. The plain `state_dict` (weights only; the code must rebuild the architecture) is
# the baseline.

# %%
import onnxruntime as ort

STATE_DICT = WORK / "digits_state_dict.pt"
torch.save(model.state_dict(), STATE_DICT)


def rebuild_from_state_dict(path):
    net = torch.nn.Sequential(
        torch.nn.Sequential(
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 10),
        ),
        torch.nn.Softmax(dim=1),
    )
    net.load_state_dict(torch.load(path, weights_only=True))
    return net.eval()


def torch_predict(module, x):
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def tflite_load(path):
    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def onnx_load(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predict(session, x):
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# %%
F = formats.FormatSpec
SPECS = [
    F(
        "PyTorch state_dict",
        STATE_DICT,
        rebuild_from_state_dict,
        torch_predict,
        "framework-native",
        f"torch {torch.__version__} (eager)",
    ),
    F(
        "TorchScript",
        TORCHSCRIPT,
        torch.jit.load,
        torch_predict,
        "framework-native",
        "torch.jit (libtorch)",
    ),
    F(
        "torch.export .pt2",
        PT2,
        lambda p: torch.export.load(p).module(),
        torch_predict,
        "framework-native",
        "torch (Python)",
    ),
    F(
        "SavedModel",
        SAVED_MODEL,
        lambda p: tf.saved_model.load(str(p)).signatures["serving_default"],
        lambda f, x: f(pixels=tf.constant(x))["probabilities"].numpy(),
        "framework-native",
        f"tensorflow {tf.__version__}",
    ),
    F("ONNX", ONNX_FILE, onnx_load, onnx_predict, "exchange", f"onnxruntime {ort.__version__}"),
    F(
        "PMML",
        MLP_PMML,
        lambda p: PMMLMLPClassifier(pmml=str(p)),
        lambda m, x: m.predict_proba(x),
        "exchange",
        "sklearn-pmml-model (scikit-learn)",
    ),
    F(
        "ExecuTorch .pte",
        PTE,
        lambda p: Runtime.get().load_program(str(p)).load_method("forward"),
        lambda m, x: m.execute([torch.from_numpy(x)])[0].numpy(),
        "on-device",
        "executorch runtime + XNNPACK",
    ),
    F("TFLite float32", TFLITE_FLOAT, tflite_load, run_tflite, "on-device", "ai-edge-litert"),
    F(
        "TFLite dynamic int8",
        TFLITE_DYNAMIC,
        tflite_load,
        run_tflite,
        "on-device",
        "ai-edge-litert",
    ),
    F(
        "Core ML",
        MLPACKAGE,
        lambda p: ct.models.MLModel(str(p)),
        (lambda m, x: next(iter(m.predict({m.get_spec().description.input[0].name: x}).values())))
        if sys.platform == "darwin"
        else None,
        "on-device",
        f"coremltools {ct.__version__}",
        skip_reason="" if sys.platform == "darwin" else "prediction needs macOS",
    ),
]
with troubleshoot.capture() as comparison_log:
    comparison = formats.compare_formats(SPECS, X_test, reference, repeat=20)
table = comparison.to_frame()
table.drop(columns=["latency_ci_ms"]).style.format(
    {
        "size_kb": "{:.1f}",
        "load_ms": "{:.2f}",
        "latency_ms": "{:.3f}",
        "batch_ms": "{:.3f}",
        "max_abs_diff": "{:.1e}",
        "label_agreement": "{:.1f}",
    },
    na_rep="n/a",
)

# %%
fig = comparison.plot(metrics=["size_kb", "load_ms", "latency_ms", "max_abs_diff"])
plt.show()

# %% [markdown]
# *What to see* (the numbers are this machine's, measured above): the binary tensor formats
# (ONNX, TFLite, `.pte`, TorchScript) sit close to the 35 KiB of float32 weights, the
# dynamic-range int8 TFLite file is the smallest, the SavedModel folder is several times larger
# (graphs for every signature and function) and PMML is the largest by far. Load time is where
# runtimes differ most: a SavedModel or a `.pt2` rebuilds Python objects and traced functions,
# while ONNX Runtime, LiteRT and ExecuTorch read a file into a session. For one image,
# per-call overhead dominates this tiny network, so latency says more about each runtime's
# calling path than about arithmetic. Every format that ran reproduces the reference to
# float32 rounding except the int8 variant, whose error is the price of quantization.

# %%
ranked = table[["size_kb", "load_ms", "latency_ms"]].dropna()
for column in ranked:
    order = ranked[column].sort_values()
    print(
        f"{column:>10}: smallest {order.index[0]} ({order.iloc[0]:.3g}), "
        f"largest {order.index[-1]} ({order.iloc[-1]:.3g}), ratio {order.iloc[-1] / order.iloc[0]:.0f}x"
    )

# %% [markdown]
# ### Try it: the format comparison explorer
#
# Choose formats and metrics (hold Ctrl or Shift to select several); the chart follows. The
# widget's logic is `course.formats.comparison_view`, a plain function the course's tests call
# without a browser; the chart is drawn into an `HTML` widget.

# %%
explorer = formats.format_explorer(
    comparison,
    formats=["ONNX", "TorchScript", "SavedModel", "TFLite float32", "TFLite dynamic int8", "PMML"],
    metrics=["size_kb", "latency_ms"],
)
explorer

# %% [markdown]
# ### Strengths and limits, and where ONNX is the wrong choice
#
# | format | made for | strengths | limits |
# |---|---|---|---|
# | SavedModel | TensorFlow serving and conversion | named, typed signatures; TF Serving, TFLite and TF.js converters read it | needs the TensorFlow runtime; folder of graphs larger than the weights |
# | TorchScript | PyTorch models in C++ (libtorch) | loads without Python; scripting keeps control flow | deprecated in torch 2.13; tracing silently drops data-dependent branches |
# | `torch.export` / `.pt2` | capturing PyTorch programs exactly | refuses to guess; the start of ONNX, ExecuTorch and Core ML exports | a `.pt2` file is run by PyTorch itself |
# | ExecuTorch `.pte` | PyTorch on phones and microcontrollers | small runtime, delegates (XNNPACK, Core ML, Vulkan, Qualcomm) | slowest export here; bounded dynamic shapes |
# | ONNX | exchange between frameworks and runtimes | one file for many runtimes and accelerators; classical ML too (`ai.onnx.ml`) | opset and converter gaps; not a training format |
# | PMML | classical ML in scoring engines | readable XML; mature in Java, SAS and database scorers | verbose; weak for deep learning; consumers implement subsets |
# | Core ML | Apple devices | Neural Engine and GPU scheduling by the OS; float16 by default | predicts only on Apple platforms |
# | TFLite / LiteRT | Android, iOS, embedded Linux; microcontrollers through LiteRT for Microcontrollers | FlatBuffer read in place; int8 for integer-only hardware | limited operator set; quantized I/O must be handled by the client |
#
# ONNX is the wrong choice when the target has a native format that its runtime is built
# around: an iPhone app wanting the Neural Engine (Core ML), a microcontroller (TFLite Micro),
# a team already on TensorFlow Serving (SavedModel), a regulated scoring engine that only reads
# PMML, or a PyTorch-only mobile stack (ExecuTorch). It is also the wrong place for training
# checkpoints (keep the framework's own `state_dict` or checkpoint) and for programs whose
# Python control flow no exporter can capture. ONNX shines when one model must reach several
# runtimes or hardware vendors, or cross from one framework to another.

# %% [markdown]
# ## Exercise 1 (debug, 4 points): the branch the trace forgot
#
# A colleague exported `DigitsWithScaling` with `torch.jit.trace` and shipped it; one kind of
# input now gets wrong answers (section 2.1). Write `export_torchscript(module, example)` that
# returns a TorchScript module (`torch.jit.ScriptModule`) which, after `torch.jit.save` and
# `torch.jit.load`, gives the same outputs as `module` in eager mode **for every input,
# whichever branch its control flow takes**. `example` is an example input tensor (you may
# ignore it). Do not edit the module's class: the tests also use other modules with
# data-dependent branches. (The deprecation warning torch prints is expected.)


# %% nbgrader={"solution": true, "grade_id": "ex1-export"}
def export_torchscript(module, example):
    ### BEGIN SOLUTION
    return torch.jit.script(module.eval())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1-roundtrip", "points": 1}
def _roundtrip(script_module):
    buffer = io.BytesIO()
    torch.jit.save(script_module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _ts = export_torchscript(scaling_model, torch.from_numpy(X_test[:4]))
    assert isinstance(_ts, torch.jit.ScriptModule), (
        f"expected a torch.jit.ScriptModule, got {type(_ts).__name__}"
    )
    _ts = _roundtrip(_ts)
    with torch.inference_mode():
        _err = float(
            (_ts(torch.from_numpy(X_test)) - scaling_model(torch.from_numpy(X_test))).abs().max()
        )
assert _err < 1e-6, f"scaled inputs after save/load: expected max difference < 1e-6, got {_err:.2e}"

# %% nbgrader={"grade": true, "grade_id": "ex1-raw", "points": 2}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _ts = _roundtrip(export_torchscript(scaling_model, torch.from_numpy(X_test[:4])))
    with torch.inference_mode():
        _got = _ts(torch.from_numpy(raw_test)).numpy()
        _want = scaling_model(torch.from_numpy(raw_test)).numpy()
_err = float(np.abs(_got - _want).max())
assert _err < 1e-6, (
    f"raw 0-16 inputs: expected the eager model's probabilities (max difference < 1e-6), got "
    f"max difference {_err:.2e}: which branch did your export keep?"
)
### BEGIN HIDDEN TESTS
with warnings.catch_warnings(record=True):  # recorded, so nothing reaches stderr
    _from_raw = _roundtrip(export_torchscript(scaling_model, torch.from_numpy(raw_test[:4])))
    with torch.no_grad():
        for _x in (X_test, raw_test, raw_test[:1], X_test[:1]):
            _gap = float(
                (_from_raw(torch.from_numpy(_x)) - scaling_model(torch.from_numpy(_x))).abs().max()
            )
            assert _gap < 1e-6, (
                f"exported from a raw example, inputs of shape {_x.shape}: expected max "
                f"difference < 1e-6, got {_gap:.2e}"
            )
### END HIDDEN TESTS


# %% nbgrader={"grade": true, "grade_id": "ex1-other-module", "points": 1}
class _ClipOrFlip(torch.nn.Module):
    """Another data-dependent branch: negative batches are flipped, others clipped."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x):
        if x.sum() < 0:
            x = -x
        else:
            x = torch.clamp(x, max=0.5)
        return self.linear(x)


torch.manual_seed(0)
_module = _ClipOrFlip().eval()
_positive = torch.rand(4, 3)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _ts = _roundtrip(export_torchscript(_module, _positive))
    with torch.inference_mode():
        for _x in (_positive, -_positive - 1):
            _e = float((_ts(_x) - _module(_x)).abs().max())
            assert _e < 1e-6, (
                f"another module with a data-dependent branch, input sum {float(_x.sum()):.2f}: "
                f"expected max difference < 1e-6, got {_e:.2e}"
            )

# %% [markdown]
# ## Exercise 2 (build, 4 points): a PMML evaluator from the specification
#
# Write `evaluate_regression_pmml(pmml_text, X)` with the standard library's XML parser
# (`xml.etree.ElementTree`). `pmml_text` is a PMML document (a string) holding one
# `RegressionModel` with one `RegressionTable`; `X` is a 2-D float array whose columns are the
# document's `DataField`s **other than the target**, in the order the `DataDictionary` lists
# them. The target is the `MiningField` whose `usageType` is `"predicted"` or `"target"`.
# Return a float64 array of shape `(n_rows,)` with, for each row,
# `intercept + Σ coefficient × x[name] ** exponent` over the table's `NumericPredictor`s
# (`exponent` defaults to 1; a field without a predictor does not contribute). The document
# may use any PMML 4.x namespace, and the predictors may appear in any order.


# %% nbgrader={"solution": true, "grade_id": "ex2-evaluate"}
def evaluate_regression_pmml(pmml_text, X):
    ### BEGIN SOLUTION
    root = ET.fromstring(pmml_text)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    model = root.find(f"{ns}RegressionModel")
    targets = {
        field.get("name")
        for field in model.find(f"{ns}MiningSchema").findall(f"{ns}MiningField")
        if field.get("usageType") in ("predicted", "target")
    }
    columns = [
        field.get("name")
        for field in root.find(f"{ns}DataDictionary").findall(f"{ns}DataField")
        if field.get("name") not in targets
    ]
    table = model.find(f"{ns}RegressionTable")
    X = np.asarray(X, dtype=np.float64)
    prediction = np.full(len(X), float(table.get("intercept", 0.0)))
    for predictor in table.findall(f"{ns}NumericPredictor"):
        column = X[:, columns.index(predictor.get("name"))]
        exponent = float(predictor.get("exponent", 1))
        prediction += float(predictor.get("coefficient")) * column**exponent
    return prediction
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex2-linear", "points": 1}
_got = evaluate_regression_pmml(pmml_text, diabetes_X)
assert isinstance(_got, np.ndarray) and _got.shape == (len(diabetes_X),), (
    f"expected an array of shape ({len(diabetes_X)},), got "
    f"{getattr(_got, 'shape', type(_got).__name__)}"
)
_err = float(np.abs(_got - linreg.predict(diabetes_X)).max())
assert _err < 1e-8, (
    f"the lesson's linear PMML: expected scikit-learn's predictions (max error < 1e-8), got "
    f"max error {_err:.2e}"
)


# %% nbgrader={"grade": true, "grade_id": "ex2-order", "points": 1}
def _pmml_variant(
    namespace, reverse=False, exponents=None, drop=(), target_first=False, schema_reversed=False
):
    """The lesson's document in another namespace, predictor order, exponents or field order."""
    root = ET.fromstring(pmml_text)
    for element in root.iter():
        element.tag = element.tag.replace(PMML_NS, namespace)
    dictionary = root.find(f"{{{namespace}}}DataDictionary")
    if target_first:
        target = dictionary.findall(f"{{{namespace}}}DataField")[-1]
        dictionary.remove(target)
        dictionary.insert(0, target)
    if schema_reversed:  # the MiningSchema may list the fields in another order
        schema = root.find(f"{{{namespace}}}RegressionModel/{{{namespace}}}MiningSchema")
        fields = schema.findall(f"{{{namespace}}}MiningField")
        for field in fields:
            schema.remove(field)
        for field in reversed(fields):
            schema.append(field)
    table = root.find(f"{{{namespace}}}RegressionModel/{{{namespace}}}RegressionTable")
    predictors = table.findall(f"{{{namespace}}}NumericPredictor")
    for p in predictors:
        table.remove(p)
        if (exponents or {}).get(p.get("name")):
            p.set("exponent", str(exponents[p.get("name")]))
    for p in reversed(predictors) if reverse else predictors:
        if p.get("name") not in drop:
            table.append(p)
    return ET.tostring(root, encoding="unicode")


def _by_hand(exponents=None, drop=()):
    names = list(diabetes.feature_names)
    out = np.full(len(diabetes_X), float(linreg.intercept_))
    for j, name in enumerate(names):
        if name not in drop:
            out += linreg.coef_[j] * diabetes_X[:, j] ** (exponents or {}).get(name, 1)
    return out


_doc = _pmml_variant("http://www.dmg.org/PMML-4_3", reverse=True)
_err = float(np.abs(evaluate_regression_pmml(_doc, diabetes_X) - _by_hand()).max())
assert _err < 1e-8, (
    f"PMML 4.3 namespace, predictors in reverse order: expected the same predictions, got max "
    f"error {_err:.2e} (match predictors to columns by name, and do not hard-code a namespace)"
)

# %% nbgrader={"grade": true, "grade_id": "ex2-exponent", "points": 2}
_exp = {"bmi": 2}
_err = float(
    np.abs(
        evaluate_regression_pmml(_pmml_variant(PMML_NS, exponents=_exp), diabetes_X)
        - _by_hand(_exp)
    ).max()
)
assert _err < 1e-8, (
    f'with exponent="2" on bmi: expected coefficient × bmi², got max error {_err:.2e}'
)
### BEGIN HIDDEN TESTS
_exp = {"age": 3, "s5": 2}
_doc = _pmml_variant(
    "http://www.dmg.org/PMML-4_2",
    reverse=True,
    exponents=_exp,
    drop=("s1", "sex"),
    target_first=True,
)
_hidden_gap = np.abs(
    evaluate_regression_pmml(_doc, diabetes_X) - _by_hand(_exp, drop=("s1", "sex"))
).max()
assert float(_hidden_gap) < 1e-8, (
    "exponents 3 and 2, two fields without predictors, target listed first: expected max "
    f"error < 1e-8, got {float(_hidden_gap):.2e}"
)
_doc = _pmml_variant(PMML_NS, schema_reversed=True)
_hidden_gap = float(np.abs(evaluate_regression_pmml(_doc, diabetes_X) - _by_hand()).max())
assert _hidden_gap < 1e-8, (
    "MiningSchema listing the fields in reverse order: expected the columns in DataDictionary "
    f"order (max error < 1e-8), got max error {_hidden_gap:.2e}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 (build, 4 points): run the full-int8 TFLite model
#
# Write `run_int8_tflite(model_content, X)`: `model_content` is the bytes of a TFLite model
# whose input and output are int8 (like `tflite_int8` from section 4.2), `X` a float32 array of
# pixel rows scaled to [0, 1] (a scanner may overshoot that range a little), of **any batch
# size**. Quantize the input with the input's `scale` and `zero_point`
# (`q = round(r / scale) + zero_point`, clipped to int8's range [-128, 127]), run the model with
# `ai_edge_litert.interpreter.Interpreter`, and return the output dequantized with the
# **output's** `scale` and `zero_point` to **float32** probabilities of shape `(len(X), 10)`.


# %% nbgrader={"solution": true, "grade_id": "ex3-run"}
def run_int8_tflite(model_content, X):
    ### BEGIN SOLUTION
    interpreter = Interpreter(model_content=model_content)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], X.shape)
    interpreter.allocate_tensors()
    scale, zero_point = inp["quantization"]
    q = np.clip(np.round(np.asarray(X, dtype=np.float32) / scale) + zero_point, -128, 127)
    interpreter.set_tensor(inp["index"], q.astype(np.int8))
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    scale, zero_point = out["quantization"]
    raw = interpreter.get_tensor(out["index"]).astype(np.float32)
    return (scale * (raw - zero_point)).astype(np.float32)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex3-runs", "points": 1}
_p = run_int8_tflite(tflite_int8, X_test[:5])
assert isinstance(_p, np.ndarray) and _p.dtype == np.float32, (
    f"expected a float32 numpy array, got {getattr(_p, 'dtype', type(_p).__name__)}"
)
assert _p.shape == (5, 10), f"batch of 5: expected shape (5, 10), got {_p.shape}"
assert _p.min() >= -0.01 and _p.max() <= 1.01, (
    f"expected probabilities in [0, 1], got values from {_p.min():.3g} to {_p.max():.3g} "
    "(dequantized?)"
)
_sums = _p.sum(axis=1)
assert np.all(np.abs(_sums - 1) < 0.05), (
    f"expected each row to sum to 1 ± 0.05, got row sums {_sums.round(3)}"
)

# %% nbgrader={"grade": true, "grade_id": "ex3-parity", "points": 2}
_p = run_int8_tflite(tflite_int8, X_test)
_agree = float(np.mean(_p.argmax(1) == reference.argmax(1)))
_err = float(np.abs(_p - reference).max())
assert _agree >= 0.95, (
    f"whole test set: expected labels to agree with the float model on >= 95% of images, got "
    f"{_agree:.1%}"
)
assert _err < 0.2, f"whole test set: expected max |int8 − float| < 0.2, got {_err:.3f}"
### BEGIN HIDDEN TESTS
_mean_err = float(np.abs(_p - reference).mean())
assert _mean_err < 0.01, f"whole test set: expected mean |int8 − float| < 0.01, got {_mean_err:.4f}"


def _int8_reference(X):
    """The contract computed step by step: quantize (round, clip), run, dequantize (output's)."""
    interpreter = Interpreter(model_content=tflite_int8)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], X.shape)
    interpreter.allocate_tensors()
    scale, zero = inp["quantization"]
    q = np.clip(np.round(X.astype(np.float64) / scale) + zero, -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], q)
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    scale, zero = out["quantization"]
    raw = interpreter.get_tensor(out["index"]).astype(np.float64)
    return (scale * (raw - zero)).astype(np.float32), scale


# pixels outside [0, 1] (a scanner's overshoot) must be clipped to int8's range, not wrapped;
# every pixel lies 0.3 or 0.7 of a step past a level, far from a tie, so rounding is unambiguous
# in float32 and float64 alike, and truncation differs from it
_in_scale = Interpreter(model_content=tflite_int8).get_input_details()[0]["quantization"][0]
_rng3 = np.random.default_rng(11)
_levels = _rng3.integers(-45, 300, (40, 64)) + _rng3.choice([0.3, 0.7], (40, 64))
_wide = (_levels * _in_scale).astype(np.float32)
_want_wide, _out_scale = _int8_reference(_wide)
_steps = float(np.abs(run_int8_tflite(tflite_int8, _wide) - _want_wide).max() / _out_scale)
assert _steps < 0.01, (
    f"inputs from {_wide.min():.2f} to {_wide.max():.2f}: expected exactly the model's output for "
    "inputs quantized with the "
    "input's scale and zero point (rounded, clipped to [-128, 127]) and dequantized with the "
    f"output's, got a difference of {_steps:.2f} output steps"
)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex3-batches", "points": 1}
_one = run_int8_tflite(tflite_int8, X_test[7:8])
_many = run_int8_tflite(tflite_int8, X_test[:32])
assert _one.shape == (1, 10) and _many.shape == (32, 10), (
    f"batches of 1 and 32: expected shapes (1, 10) and (32, 10), got {_one.shape} and {_many.shape}"
)
_gap = float(np.abs(_one[0] - _many[7]).max())
assert _gap < 1e-6, (
    "image 7 alone and inside a batch of 32: expected the same probabilities (max difference "
    f"< 1e-6), got max difference {_gap:.2e}"
)
### BEGIN HIDDEN TESTS
_rng = np.random.default_rng(5)
_idx = _rng.choice(len(X_test), 97, replace=False)
_sub = run_int8_tflite(tflite_int8, X_test[_idx])
assert _sub.shape == (97, 10), f"batch of 97: expected (97, 10), got {_sub.shape}"
_agree = float(np.mean(_sub.argmax(1) == reference[_idx].argmax(1)))
assert _agree >= 0.95, (
    f"batch of 97: expected labels to agree with the float model on >= 95% of images, got "
    f"{_agree:.1%}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 (reason, 3 points): predict the bytes of the weights
#
# Section 4.2 showed which tensors dynamic-range quantization turned into int8. Write
# `parameter_bytes(layer_shapes, quantized, min_elements=1024)` that **predicts**, without
# converting anything, how many bytes the weight and bias tensors of a TFLite model of dense
# layers take. `layer_shapes` lists `(inputs, outputs)` per dense layer (each with a bias);
# `quantized=False` is the float32 model, `quantized=True` the dynamic-range one, where a
# weight matrix with at least `min_elements` values is stored as int8 and everything else stays
# float32. Count tensor data only (not the per-channel scales). Return an `int`. The tests
# compare your prediction with the bytes measured in this lesson's files.


# %% nbgrader={"solution": true, "grade_id": "ex4-bytes"}
def parameter_bytes(layer_shapes, quantized, min_elements=1024):
    ### BEGIN SOLUTION
    total = 0
    for inputs, outputs in layer_shapes:
        weights = inputs * outputs
        total += weights * (1 if quantized and weights >= min_elements else 4)
        total += outputs * 4
    return int(total)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex4-float", "points": 1}
MLP_SHAPES = [w.shape for w, _ in LAYERS]
_measured = int(parameter_tensors(tflite_float)["bytes"].sum())
_got = parameter_bytes(MLP_SHAPES, quantized=False)
assert type(_got) is int, f"expected an int, got {type(_got).__name__}"
assert _got == _measured, (
    f"float32 model: expected the {_measured} bytes measured in its weight and bias tensors, "
    f"got a prediction of {_got} bytes"
)

# %% nbgrader={"grade": true, "grade_id": "ex4-dynamic", "points": 1}
_measured = int(parameter_tensors(tflite_dynamic)["bytes"].sum())
_got = parameter_bytes(MLP_SHAPES, quantized=True)
assert _got == _measured, (
    f"dynamic-range model: expected the {_measured} bytes measured, got a prediction of {_got} "
    "bytes: which tensors stayed float32?"
)

# %% nbgrader={"grade": true, "grade_id": "ex4-other-shapes", "points": 1}
for _shapes, _q, _kw in [
    ([(32, 32)], True, {}),
    ([(31, 33), (33, 2)], True, {}),
    ([(100, 100)], True, {"min_elements": 20_000}),
]:
    _want = sum(
        i * o * (1 if _q and i * o >= _kw.get("min_elements", 1024) else 4) + 4 * o
        for i, o in _shapes
    )
    assert parameter_bytes(_shapes, _q, **_kw) == _want, (
        f"parameter_bytes({_shapes}, quantized={_q}, {_kw}): expected {_want}, "
        f"got {parameter_bytes(_shapes, _q, **_kw)}"
    )
### BEGIN HIDDEN TESTS
for _shapes, _q, _min in [
    ([(784, 128), (128, 10)], True, 1024),
    ([(8, 128)], True, 1024),
    ([(784, 128), (128, 10)], False, 1024),
    ([(10, 10)], True, 100),
]:
    _want = sum(i * o * (1 if _q and i * o >= _min else 4) + 4 * o for i, o in _shapes)
    assert parameter_bytes(_shapes, _q, min_elements=_min) == _want, (
        f"parameter_bytes({_shapes}, quantized={_q}, min_elements={_min}): expected {_want}, "
        f"got {parameter_bytes(_shapes, _q, min_elements=_min)}"
    )
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - **SavedModel**: TensorFlow's folder format; signatures are named, typed entry points that
#   servers call; `tf.saved_model.load` needs TensorFlow but not the model's Python code.
# - **TorchScript**: trace records one run, script compiles the code; tracing silently drops
#   data-dependent branches. Deprecated in torch 2.13: `torch.export` (which refuses to guess)
#   feeds ONNX, ExecuTorch (`.pte` with XNNPACK, run here) and Core ML.
# - **PMML**: XML for classical ML, evaluable in pure Python; consumers implement subsets of
#   the specification, and networks in XML are large.
# - **Core ML** converts anywhere but predicts only on Apple platforms; **TFLite/LiteRT** runs
#   float, dynamic-range int8 and full int8 models, the last with quantized inputs and outputs.
# - Measured on one network: sizes, load times and latencies differ by large factors between
#   formats, while every float format reproduces the reference to rounding.
# - A production model shipped as TorchScript and ONNX (Silero VAD): the same function to
#   float32 rounding over a stateful stream; load time and per-chunk latency measured, the
#   state an input/output you carry in ONNX and hidden inside the TorchScript module.
#
# **Common pitfalls**
# - Tracing a model with `if`s on tensor values, and trusting the trace because it ran.
# - Measuring a folder format's size with `os.path.getsize` (it returns the directory entry).
# - Calling a TFLite model on a new batch size without `resize_tensor_input` and
#   `allocate_tensors`; feeding float to an int8 model, or forgetting to dequantize its output.
# - Assuming every PMML consumer implements the whole specification.
# - Expecting Core ML predictions on Linux, or forgetting that ML programs default to float16.
# - Using `tf.lite.Interpreter` (deprecated) instead of `ai_edge_litert`.
#
# **Further reading**
# - TensorFlow, *Using the SavedModel format* and *TensorFlow Serving: SignatureDefs*.
# - PyTorch, *TorchScript* (`torch.jit`) and *torch.export* documentation; *ExecuTorch:
#   Exporting to ExecuTorch* and *XNNPACK Backend*.
# - Data Mining Group, *PMML 4.4 — Regression* and *PMML 4.4 — Neural Network Models*;
#   sklearn-pmml-model's README.
# - Apple, *coremltools documentation: Converting from PyTorch* and *ML Programs*.
# - Google AI Edge, *LiteRT: Model conversion overview* and *Post-training quantization*.
# - TensorFlow issue #63867 and Keras issue #19108 (Keras 3 and `from_keras_model`).
# - Silero Team, *Silero VAD* (github.com/snakers4/silero-vad): the model of section 2.3.

# %%
print(f"lesson ran in {time.perf_counter() - LESSON_START:.1f} s on this machine")
