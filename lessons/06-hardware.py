# %% [markdown]
# # Lesson 6 — Hardware: GPUs, edge devices, accelerators, and honest benchmarks
#
# The same `.onnx` file runs on a laptop CPU, a data-centre GPU, a phone's NPU or an FPGA card.
# What changes is the *execution provider* that runs each node, the format the device wants,
# and how fast the result is. This lesson shows what an accelerator changes and, just as
# important, how to measure it without fooling yourself: every number below is measured on the
# machine that runs the notebook, and what cannot run here (a GPU, a phone) is detected and
# skipped with a message, never faked.
#
# **After this lesson you will be able to**
# 1. list the execution providers and devices your ONNX Runtime sees, choose providers in
#    priority order with a fallback that never crashes, and separate transfer time from compute
#    time with I/O binding;
# 2. prepare a model for an edge device: the ORT format, the operator list of a reduced build,
#    int8, and checks against size and latency budgets;
# 3. explain how TPUs, FPGAs and NPUs are reached from ONNX and what decides which nodes a
#    provider takes (partitioning);
# 4. count a model's FLOPs and bytes from its graph, measure this machine's peak GFLOP/s and
#    bandwidth, and place measured runs on a roofline;
# 5. benchmark across batch sizes and thread counts with warm-up, percentiles, confidence
#    intervals and interleaving, and pick a configuration that meets a p99 latency budget.
#
# **Prerequisites**: Lesson 2 (graphs, shapes), Lesson 4 (sessions, providers, quantization);
# Python and NumPy.
#
# **Estimated time**: 1.5 to 3 hours for a first-time learner. Estimated, not measured on
# learners: about 4,700 words of text at 100-150 words a minute (30-50 min), about 35 code cells
# to run and read at 0.5-1 min each (20-35 min), and four exercises at 10-20 min each
# (40-80 min), plus time with the two widgets. Running every cell takes under a minute
# of machine time (the course's tests check it on 2 cores).
#
# **How to check your answers**: in JupyterLab press *Validate* (nbgrader's button in the
# notebook toolbar). Without an instructor, run the visible test cells after each exercise (each
# prints nothing when your answer is right and says what was expected and what was got when it
# is not), or run `course.check()` for the course's self-check.
#
# *About the timings*: they come from whatever machine runs this notebook, possibly a small,
# busy, shared one. The setup cell prints the machine's load; when the load is above the number
# of cores, every timing is inflated and noisier. That is why every comparison below carries a
# confidence interval.

# %%
import time

LESSON_START = time.perf_counter()

import os
import subprocess
import sys
import warnings
from pathlib import Path

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from IPython.display import HTML, display
from onnx import TensorProto, helper, numpy_helper

from course import bench, convert, data, quantize, roofline, widgets
from course import graph_optimization as go

OKABE_ITO = bench.OKABE_ITO
CPU = "CPUExecutionProvider"
WORK = data.workdir("lesson06")  # every file this lesson writes
pd.set_option("display.max_colwidth", 70)
machine = bench.machine_info()
print(f"onnxruntime {ort.__version__} | files go to {WORK}")
print(
    f"{machine['cpu_model']}: {machine['physical_cores']} physical / {machine['logical_cores']} "
    f"logical cores, features {machine['cpu_features']}"
)
print(
    f"load average over the last minute: {machine['load_average_1min']} (cores: {os.cpu_count()})"
)

# %% [markdown]
# ## 0. Setup: two models with different appetites
#
# - The course's small **digits CNN** (two 3×3 convolutions, max-pool, linear; trained in
#   seconds and cached by `course.data`), exported with the exporter from Lesson 3. Its input is
#   `N × 1 × 8 × 8`. It is tiny: per-call overheads will matter more than arithmetic.
# - A **wide MLP** (512 → 2048 → 2048 → 512, three `Gemm` nodes, about 6 million random
#   weights) built directly with `onnx.helper` (Lesson 2). Its weights are random because only
#   its speed matters here; it is big enough that arithmetic and memory traffic dominate.

# %%
split = data.load_digits_split()
images_train = split.X_train.reshape(-1, 1, 8, 8)
images_test, y_test = split.X_test.reshape(-1, 1, 8, 8), split.y_test
cnn = data.train_torch_cnn(split)
conversion = convert.torch_to_onnx(
    cnn, images_test[:4], WORK / "cnn.onnx", input_names=["image"], output_names=["logits"]
)
CNN_PATH = conversion.path
print(conversion.route, "| parity passed:", conversion.report.passed)


# %%
def wide_mlp(sizes=(512, 2048, 2048, 512), seed=0) -> onnx.ModelProto:
    """Gemm + Relu layers with random (He-scaled) float32 weights and a free batch dimension."""
    rng = np.random.default_rng(seed)
    nodes, inits, previous = [], [], "features"
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.normal(0, np.sqrt(2 / n_in), (n_in, n_out)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(n_out, np.float32), f"b{i}"),
        ]
        last = i == len(sizes) - 2
        out = "output" if last else f"h{i}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [out], name=f"gemm{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
            previous = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "wide_mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


WIDE_PATH = WORK / "wide_mlp.onnx"
onnx.save(wide_mlp(), WIDE_PATH)
wide_x = np.random.default_rng(1).random((256, 512), dtype=np.float32)
print({p.name: f"{p.stat().st_size / 1e6:.2f} MB" for p in (CNN_PATH, WIDE_PATH)})

# %% [markdown]
# ## 1. ONNX with GPU acceleration
#
# ### 1.1 Execution providers: who runs the nodes
#
# *Why it matters*: ONNX Runtime does not "support GPUs" in general; it has one **execution
# provider** (EP) per kind of hardware, each compiled into a different package and each with its
# own requirements. Whether a provider is usable depends on three things: the package you
# installed (is the EP compiled in?), the system libraries (CUDA, cuDNN, TensorRT, a vendor SDK),
# and the device itself. The table below comes from `course.roofline.provider_table()`; its two
# last columns are computed live from *your* onnxruntime.

# %%
roofline.provider_table()

# %% [markdown]
# Recent onnxruntime versions can also list the hardware **devices** they found and which EP
# would drive each one (`onnxruntime.get_ep_devices()`), independent of any model:

# %%
for device in ort.get_ep_devices():
    hw = device.device
    print(f"{device.ep_name:28s} -> {hw.type.name} device from {hw.vendor} (id {hw.device_id})")
print("providers compiled into this package:", ort.get_available_providers())

# %% [markdown]
# *What to notice*: `known_to_this_build` is True for almost every row (the names exist in
# every package), while `available_here` is True only for what the installed wheel contains;
# the pip package `onnxruntime` is the CPU build. The ROCm provider for AMD GPUs is missing
# from the list of known names in recent releases: AMD GPUs go through MIGraphX.

# %% [markdown]
# ### 1.2 Provider priority and fallback
#
# The `providers` argument is an ordered preference: onnxruntime offers each node to the first
# provider, gives what it cannot take to the next, and so on, and the CPU provider comes last as
# the fallback. It is a broad fallback, not a complete one: it has kernels for the common
# operators and types, not for every combination the ONNX specification allows (measured in the
# next cell). Asking for a provider the package lacks is not an
# error: onnxruntime prints a warning and silently runs on the CPU (Lesson 4 showed it). On a
# machine with `onnxruntime-gpu` but a broken CUDA install, the failure happens when the session
# starts. Deployment code should therefore *choose* providers from what is available, and then
# check what it got. `roofline.choose_providers` does the first part; here is what the same
# preference gives on three machines (the first one is yours, live).
#
# First, how complete is the last resort? For a dozen everyday operators we build a one-node
# model for every tensor type the ONNX specification allows for them, and ask the CPU provider
# to load it. A missing kernel is an error when the session is created (`NOT_IMPLEMENTED`), not
# a silent fallback:

# %%
SCANNED_OPS = ["Add", "Mul", "MatMul", "Relu", "Abs", "Neg", "Sqrt", "Exp", "Max", "Sum"]
SCANNED_OPS += ["ReduceSum", "Softmax"]
SCAN_OPSET = 21
NUMERIC = {name: getattr(TensorProto, name.upper()) for name in ("float", "double", "float16")}
NUMERIC |= {"bfloat16": TensorProto.BFLOAT16}
NUMERIC |= {
    f"{s}int{b}": getattr(TensorProto, f"{s.upper()}INT{b}")
    for s in ("", "u")
    for b in (8, 16, 32, 64)
}


def cpu_kernel_missing(op_type: str, elem_type: int) -> str | None:
    """None if the CPU provider loads a one-node `op_type` model for this type, else its error."""
    n_inputs = onnx.defs.get_schema(op_type, SCAN_OPSET).min_input
    inputs = [helper.make_tensor_value_info(f"x{i}", elem_type, [2, 3]) for i in range(n_inputs)]
    if op_type == "MatMul":
        inputs[1] = helper.make_tensor_value_info("x1", elem_type, [3, 2])
    node = helper.make_node(op_type, [i.name for i in inputs], ["y"])
    graph = helper.make_graph(
        [node], op_type, inputs, [helper.make_tensor_value_info("y", elem_type, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", SCAN_OPSET)])
    try:
        ort.InferenceSession(model.SerializeToString(), providers=[CPU])
        return None
    except Exception as error:
        return str(error).split(" : ")[-1]


kernel_rows = []
for op_type in SCANNED_OPS:
    allowed = onnx.defs.get_schema(op_type, SCAN_OPSET).type_constraints[0].allowed_type_strs
    for type_name, elem_type in NUMERIC.items():
        if f"tensor({type_name})" in allowed:
            missing = cpu_kernel_missing(op_type, elem_type)
            kernel_rows.append(
                {"operator": op_type, "type": type_name, "cpu_kernel": missing is None}
            )
kernels = pd.DataFrame(kernel_rows)
gaps = kernels[~kernels.cpu_kernel]
print(
    f"onnxruntime {ort.__version__}, CPU provider: {len(kernels)} (operator, type) pairs the "
    f"ONNX spec allows, {len(gaps)} without a kernel"
)
print(
    "float32 pairs without a kernel:", gaps[gaps["type"] == "float"]["operator"].tolist() or "none"
)
first_gap = gaps.iloc[0]
print(
    f"for example, {first_gap['operator']} on {first_gap['type']}:",
    cpu_kernel_missing(first_gap["operator"], NUMERIC[first_gap["type"]]),
)
gaps.groupby("operator")["type"].apply(", ".join).to_frame("types without a CPU kernel")

# %% [markdown]
# *What to notice*: the gaps are in the less common types (bfloat16 almost everywhere, some
# small integer types); float32, the type of most exported models, is covered. The same holds
# for operators: contrib and quantized operators exist per provider, and Lesson 4's history of
# `ConvInteger` (int8 × int8 missing on the CPU for years) shows a gap that real models hit. So a
# model that loads on a GPU provider can fail on the CPU fallback, and the other way round: test
# the model on the provider list you will deploy.
#
# Now the preference list on three machines:

# %%
preference = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "QNNExecutionProvider", CPU]
machines = {
    "this machine": ort.get_available_providers(),
    "GPU server (onnxruntime-gpu)": ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU],
    "Snapdragon laptop (onnxruntime-qnn)": ["QNNExecutionProvider", CPU],
}
for name, available in machines.items():
    print(f"{name:38s} -> {roofline.choose_providers(preference, available)}")

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    session = roofline.session_with_fallback(CNN_PATH, preference)
print("the session runs on:", session.get_providers(), "| warnings:", len(caught))
print("logits for two test images:", session.run(None, {"image": images_test[:2]})[0].argmax(1))

# %% [markdown]
# *What to notice*: no warning, and the session says which providers it really uses. A typo
# in a provider name is a bug, not a missing GPU, so `choose_providers(["CudaExecutionProvider"])`
# raises with the correct spelling instead of falling back. When a GPU is mandatory (a benchmark
# that must not quietly measure the CPU), call `session.disable_fallback()` and assert
# `session.get_providers()[0]`.

# %% [markdown]
# ### 1.3 Where the data lives: I/O binding, run here on the CPU
#
# *Why it matters*: on a GPU, `session.run(None, {name: numpy_array})` copies the input to the
# device, computes, and copies the outputs back, every call. For small models the copies can
# cost more than the compute. **I/O binding** lets you say where inputs and outputs live:
# bind an input already on the device (an `OrtValue` created there once), keep outputs on the
# device for the next model, and the copies leave the timed loop. `roofline.transfer_runners`
# prepares three variants of the same inference; the function below times them per batch size.
# It is written once for any device: here it runs with `device="cpu"`, and section 1.4 calls it
# with `device="cuda"` when a GPU is present.


# %%
def transfer_costs(session, sample, batches, device="cpu", repeat=20):
    """Median ms of run() versus I/O binding per batch size; 'copies' is run() minus resident."""
    rows = []
    for b in batches:
        x = np.ascontiguousarray(np.resize(sample, (b, *sample.shape[1:])))
        runners = roofline.transfer_runners(session, x, device=device)
        cmp = bench.compare(runners, repeat=repeat, warn=False)
        ms = {name: cmp[name].median * 1e3 for name in runners}
        rows.append(
            {
                "batch": b,
                "run() ms": ms["run(): host in, host out"],
                "bound, input copied ms": ms["binding: host in, device out"],
                "bound, device-resident ms": ms["binding: device in, device out"],
                "copies ms": ms["run(): host in, host out"] - ms["binding: device in, device out"],
                "intervals overlap": cmp.overlap,
            }
        )
    return pd.DataFrame(rows).set_index("batch")


cpu_session = bench.ort_session(CNN_PATH)
runners = roofline.transfer_runners(cpu_session, images_test[:8])
runners["binding: device in, device out"]()
same = np.array_equal(
    runners["binding: device in, device out"].outputs()[0],
    cpu_session.run(None, {"image": images_test[:8]})[0],
)
print("bound outputs equal run()'s outputs:", same)
transfer_costs(cpu_session, images_test, (1, 64))

# %% [markdown]
# *What to notice*: on the CPU, "device" memory *is* host memory, so the three variants do the
# same work; where the intervals overlap the honest reading is "no measurable difference". On a
# GPU the "copies" column becomes the PCIe transfer time, and it is often most of the latency at
# batch 1.

# %% [markdown]
# ### 1.4 CPU versus CUDA, when a GPU is here
#
# The next cells measure latency and throughput per batch size on the CPU and on the CUDA
# provider (same model, same inputs, same statistics), then the transfer share with the
# function above, then how onnxruntime split the graph between CUDA and CPU. They need the
# `onnxruntime-gpu` package, an NVIDIA driver and a GPU; `roofline.cuda_status()` checks all
# three by starting a real session, and the cells skip with its reason otherwise.

# %%
gpu = roofline.cuda_status()
print("GPU path:", "runs" if gpu else "skipped", "|", gpu.reason)
GPU_BATCHES = (1, 8, 64, 256)


def latency_by_provider(model_path, sample, batches, provider_sets, repeat=20):
    """One bench.latency_by_batch frame per provider list (same model, same inputs)."""
    frames = {}
    for label, providers in provider_sets.items():
        session = bench.ort_session(model_path, providers=providers)
        if session.get_providers()[0] != providers[0]:
            raise RuntimeError(f"{label}: asked for {providers}, got {session.get_providers()}")
        frames[label] = bench.latency_by_batch(session, sample, batches, repeat=repeat)
    return frames


def plot_by_provider(frames, title):
    """Latency (with 95% CI) and throughput per batch size, one line per provider."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (label, frame) in enumerate(frames.items()):
        b, colour = frame.index.to_numpy(), OKABE_ITO[i]
        err = [frame["median_ms"] - frame["ci_low_ms"], frame["ci_high_ms"] - frame["median_ms"]]
        left.errorbar(
            b, frame["median_ms"], yerr=err, fmt="o-", capsize=3, color=colour, label=label
        )
        right.plot(b, frame["throughput_per_s"], "s-", color=colour, label=label)
    for ax, ylabel, name in (
        (left, "latency per call (ms)", "Latency"),
        (right, "throughput (samples/s)", "Throughput"),
    ):
        ax.set(xscale="log", yscale="log", xlabel="batch size (samples)", ylabel=ylabel, title=name)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# %%
if gpu:
    cuda = roofline.choose_providers(["CUDAExecutionProvider"])
    gpu_frames = latency_by_provider(WIDE_PATH, wide_x, GPU_BATCHES, {"CPU": [CPU], "CUDA": cuda})
    plot_by_provider(gpu_frames, f"Wide MLP: CPU versus {gpu.device}")
    plt.show()
    cuda_session = bench.ort_session(WIDE_PATH, providers=cuda)
    display(transfer_costs(cuda_session, wide_x, (1, 256), device="cuda"))
    display(roofline.provider_assignment(CNN_PATH, cuda).groupby("provider")["nodes"].sum())
else:
    print(
        "Skipped: no usable CUDA GPU here, so no GPU figure or table is shown (none is faked).\n"
        f"Reason: {gpu.reason}.\n"
        "On a GPU machine with onnxruntime-gpu this cell plots CPU versus CUDA latency and\n"
        "throughput for batch sizes 1-256, the per-call copy cost measured with I/O binding, and\n"
        "how many CNN nodes the CUDA provider took."
    )

# %% [markdown]
# *What to look for when it runs*: at batch 1 a GPU is often *not* faster than the CPU for a
# model this size (launch and copy overheads), and its advantage grows with the batch until the
# GPU is busy; the transfer table shows how much of the batch-1 latency is copying. Always
# compare at the batch size you will deploy.

# %% [markdown]
# ## 2. ONNX on edge devices and mobile
#
# *Why it matters*: a phone or a microcontroller-class board gives you budgets, not a
# machine: megabytes of app download, tens of megabytes of RAM, a frame time (16.7 ms at
# 60 frames per second) and a battery. Three levers from ONNX Runtime: int8 weights and
# activations (smaller, and the format NPUs want), the **ORT format** (a FlatBuffers file the
# minimal runtime loads without the protobuf parser), and a **reduced operator build** that
# compiles only the kernels your models use.
#
# ### 2.1 int8 for the edge, measured
#
# Static QDQ quantization with 200 calibration images (Lesson 4 explains the method), through
# `course.quantize`, which also measures size, accuracy and batch-1 latency before and after:

# %%
int8_report = quantize.quantize_static_int8(
    CNN_PATH,
    WORK / "cnn_int8.onnx",
    images_train[:200],
    eval_set=(images_test, y_test),
    latency_repeat=20,
)
INT8_PATH = int8_report.path
int8_report.to_frame()

# %% [markdown]
# *What to notice*: the file shrinks (not by the full 4× on a model this small: the graph, the
# scales and the QuantizeLinear/DequantizeLinear nodes take room too) and accuracy barely moves.
# Latency on this CPU may well be *worse*: the QDQ nodes add work and a tiny model has little
# arithmetic to save. On an NPU the picture flips, because many NPUs run only integer kernels:
# int8 is the ticket in, not an optimisation.
#
# ### 2.2 The ORT format and the required-operators config
#
# The converter ships with the Python package. Run on a folder, it converts every `.onnx` file
# and writes **one** configuration listing the operators (and, with `--enable_type_reduction`,
# the data types) that all of them need, which is what an app with several models compiles:

# %%
edge_dir = WORK / "edge"
edge_dir.mkdir()
for src in (CNN_PATH, INT8_PATH):
    (edge_dir / src.name).write_bytes(src.read_bytes())
command = [
    sys.executable,
    "-m",
    "onnxruntime.tools.convert_onnx_models_to_ort",
    str(edge_dir),
    "--enable_type_reduction",
    "--optimization_style",
    "Fixed",
]
started = time.perf_counter()
converter = subprocess.run(command, capture_output=True, text=True)
print(f"exit code {converter.returncode} after {time.perf_counter() - started:.1f} s")
print("\n".join(line for line in converter.stdout.splitlines() if "Converted" in line))
print(sorted(p.name for p in edge_dir.iterdir()))

# %%
config = edge_dir / "required_operators_and_types.config"
print(config.read_text())

# %% [markdown]
# Each line is `domain;opset;operator{types}`. A minimal build compiles just these kernels:
# `./build.sh --minimal_build --include_ops_by_config required_operators_and_types.config
# --enable_reduced_operator_type_support` (ONNX Runtime documentation, "Reduced operator
# kernel build"). Note the `com.microsoft` entries: the converter saved the models *after* graph
# optimisation for this CPU, fusing operators; for an Arm phone pass `--target_platform arm`,
# and for NNAPI or Core ML use `--optimization_style Runtime` so the phone's provider sees
# unfused nodes.
#
# ### 2.3 Checking variants against budgets
#
# A budget is a set of limits you check every candidate against, with the measurement next to
# it. Here the budgets are illustrative (a 20 KB model file and a 0.05 ms batch-1 median; pick
# your device's numbers), and every figure is measured:

# %%
budget = {"max_file_kb": 20.0, "max_median_ms": 0.05}
rows = []
for label, onnx_path, latency in (
    ("float32", CNN_PATH, int8_report.latency_before),
    ("static int8", INT8_PATH, int8_report.latency_after),
):
    ort_path = edge_dir / (onnx_path.stem + ".ort")
    rows.append(
        {
            "variant": label,
            ".onnx KB": onnx_path.stat().st_size / 1024,
            ".ort KB": ort_path.stat().st_size / 1024,
            "accuracy": int8_report.accuracy_before
            if label == "float32"
            else int8_report.accuracy_after,
            "median ms (batch 1)": latency.median * 1e3,
        }
    )
edge_table = pd.DataFrame(rows).set_index("variant")
edge_table["fits size"] = edge_table[".ort KB"] <= budget["max_file_kb"]
edge_table["fits latency"] = edge_table["median ms (batch 1)"] <= budget["max_median_ms"]
edge_table.round(4)

# %% [markdown]
# *What to notice*: the verdict comes from the table, not from a belief that int8 is faster.
# On the device itself, repeat the latency measurement there: a desktop CPU says little about
# a phone.
#
# ### 2.4 The neighbours: LiteRT and ExecuTorch
#
# Lesson 5 covers them in depth; in one table, for orientation:
#
# | | ONNX Runtime Mobile | LiteRT (formerly TensorFlow Lite) | ExecuTorch |
# |---|---|---|---|
# | model file | `.ort` (or `.onnx`) | `.tflite` (FlatBuffers) | `.pte` |
# | from PyTorch | `torch.onnx.export`, then the ORT converter | `ai-edge-torch` | `torch.export`, `to_edge`, `to_executorch` |
# | accelerators | QNN, Core ML, XNNPACK providers (NNAPI too, deprecated in Android 15) | GPU delegate; NPUs through LiteRT 2.x's `CompiledModel` API with vendor accelerators (Qualcomm, MediaTek) | XNNPACK, Core ML, QNN, Vulkan backends |
# | reduced build | operator config (above) | selective operator registration | selective build |
#
# The vocabulary differs (provider, delegate, accelerator, backend); the idea is the same: a
# small runtime, a compact file, and hardware-specific kernels for the parts that can be
# offloaded. On Android the ground moved recently: Android 15 deprecated NNAPI (Android's "NNAPI
# Migration Guide"), and LiteRT's older delegates for NNAPI and for Qualcomm's Hexagon DSP give
# way to LiteRT 2.x's `CompiledModel` API, which compiles a model for the NPU ahead of time or on
# the device through vendor plug-ins (LiteRT documentation, "NPU acceleration with LiteRT").

# %% [markdown]
# ## 3. Specialized hardware: TPUs, FPGAs and NPUs
#
# *Why it matters*: an accelerator only helps with the nodes it takes. How a model reaches it:
#
# - **TPUs** (Google) run programs compiled by **XLA**. Frameworks lower to XLA through
#   StableHLO (JAX, TensorFlow, PyTorch/XLA); ONNX Runtime has no TPU provider (the cell below
#   checks your package's list of known names). An ONNX model reaches a TPU by being translated
#   into one of those frameworks (Google's `jaxonnxruntime` project translates ONNX graphs into
#   JAX), and the small Edge TPU (Coral) runs int8 `.tflite` files compiled by its own compiler.
# - **FPGAs**: AMD's **Vitis AI** provider sends the subgraphs its DPU (a processor overlay
#   configured into the FPGA fabric of Zynq and Versal boards and Alveo cards) supports to the
#   device and leaves the rest on the CPU; models must be quantized (QDQ int8) first.
# - **NPUs**: Qualcomm Hexagon through the **QNN** provider, Intel NPUs through **OpenVINO**,
#   Apple's Neural Engine through **Core ML**, Huawei Ascend through **CANN**, Rockchip through
#   **RKNPU**, and AMD Ryzen AI through the same **Vitis AI** provider. The Ryzen AI NPU is not an
#   FPGA overlay: its XDNA architecture is a fixed 2-D array of AI Engine compute and memory
#   tiles (Linux kernel documentation, "AMD NPU"); the first generation runs int8 (QDQ) models,
#   and XDNA 2 (Ryzen AI 300 "Strix" and later) also compiles float models to bfloat16 (Ryzen AI
#   Software documentation). Most NPUs want quantized (QDQ), float16 or bfloat16 models and fixed
#   shapes.

# %%
known = ort.get_all_providers()
print("providers this onnxruntime knows by name:", len(known))
print("any TPU provider among them?", [p for p in known if "TPU" in p.upper()] or "none")
print(
    "NPU/FPGA-capable ones:",
    [
        p
        for p in known
        if p.startswith(("QNN", "VitisAI", "OpenVINO", "CoreML", "CANN", "Rknpu", "VSINPU"))
    ],
)

# %% [markdown]
# ### 3.1 The specialised hardware inside this CPU, measured
#
# Everything above about TPUs, FPGAs and NPUs is *cited*: this machine has none of them, so the
# lesson can only report what their vendors document. The CPU, though, has its own
# specialised units, and those we can read and measure. Integer dot-product instructions
# (**VNNI**: AVX512-VNNI, AVX-VNNI; Arm's `asimddp` and `i8mm`) multiply four int8 pairs and
# accumulate in int32 in one instruction; **AMX** (Intel Sapphire Rapids and later) adds tile
# registers and a matrix unit for int8 and bfloat16; **AVX512-BF16** converts and multiplies
# bfloat16. ONNX Runtime's int8 kernels (MLAS) pick a code path from these at run time. Linux
# lists the CPU's features in `/proc/cpuinfo`:

# %%
CPU_UNITS = {
    "avx2": "256-bit vectors (ORT's baseline fast path on x86)",
    "fma": "fused multiply-add (float32)",
    "avx512f": "512-bit vectors",
    "avx512_vnni": "int8 dot products, 512-bit (AVX512-VNNI)",
    "avx_vnni": "int8 dot products, 256-bit (AVX-VNNI)",
    "avx512_bf16": "bfloat16 dot products",
    "amx_int8": "AMX matrix unit, int8",
    "amx_bf16": "AMX matrix unit, bfloat16",
    "asimddp": "Arm int8 dot products (SDOT/UDOT)",
    "i8mm": "Arm int8 matrix multiply (SMMLA)",
}


def cpu_flags() -> set[str]:
    """The feature flags Linux reports for the first CPU (x86 'flags', Arm 'Features')."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


flags = cpu_flags()
print(f"{machine['cpu_model']}: {len(flags)} feature flags read from /proc/cpuinfo")
pd.DataFrame(
    [
        {"flag": f, "what it gives": what, "present here": f in flags}
        for f, what in CPU_UNITS.items()
    ]
).set_index("flag")

# %% [markdown]
# A flag says the instruction exists; whether it pays is a measurement. The same 256 × 1024 by
# 1024 × 1024 product, once as a float32 `MatMul`, once as `MatMulInteger` (uint8 activations,
# int8 weights, int32 result: what dynamic quantization produces), one thread each:


# %%
def matmul_model(integer: bool, m: int = 256, k: int = 1024, n: int = 1024) -> onnx.ModelProto:
    """One MatMul (float32) or MatMulInteger (uint8 x int8 -> int32) node with constant weights."""
    rng = np.random.default_rng(0)
    if integer:
        weights = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weights = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "matmul",
        [helper.make_tensor_value_info("a", a_type, [m, k])],
        [helper.make_tensor_value_info("y", y_type, [m, n])],
        [weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


unit_rng = np.random.default_rng(1)
unit_inputs = {
    "float32 MatMul": unit_rng.standard_normal((256, 1024), dtype=np.float32),
    "int8 MatMulInteger": unit_rng.integers(0, 256, (256, 1024), dtype=np.uint8),
}
unit_runners = {
    name: bench.session_runner(
        bench.ort_session(matmul_model("int8" in name).SerializeToString(), intra_op_threads=1), x
    )
    for name, x in unit_inputs.items()
}
units = bench.compare(unit_runners, repeat=15, warn=False)
operations = 2 * 256 * 1024 * 1024
for name in unit_runners:
    r = units[name]
    print(
        f"{name:19s} median {r.median * 1e3:6.2f} ms -> {operations / r.median / 1e9:6.1f} G ops/s"
    )
print(
    f"int8 speed-up over float32: {units.speedup('int8 MatMulInteger', 'float32 MatMul'):.2f}x",
    "(intervals overlap)" if units.overlap else "",
)

# %% [markdown]
# *What to notice*: with VNNI present, the integer product should run clearly faster than the
# float one; without it, int8 can be no faster, which is
# Lesson 4's "int8 model slower" problem seen at its root. The line between what this lesson
# *measured* and what it *cites*:
#
# | measured here, on this machine | cited from vendor documentation |
# |---|---|
# | the CPU's feature flags (above) | TPUs: XLA, no ONNX Runtime provider |
# | int8 versus float32 matrix throughput (above) | Vitis AI DPU on FPGAs; XDNA AI-Engine arrays in Ryzen AI |
# | which (operator, type) pairs the CPU provider has (1.2) | Hexagon, Intel NPU, Apple Neural Engine: which operators and types they take |
# | which provider runs each node (3.3, below; also in every profiling trace's `provider` field, Lesson 4) | speed-ups on any of those devices |
#
# ### 3.2 What must hold for a node to be offloaded
#
# When a session starts, onnxruntime asks each provider, in priority order, which nodes it can
# run (`GetCapability`); the provider answers node by node, and a compiling provider groups
# what it takes into subgraphs it compiles. A node is taken only if **all** of these hold:
#
# 1. the operator type *and its opset version* have a kernel in that provider;
# 2. the data types are supported (an int8-only NPU refuses float32 `Conv`);
# 3. shapes are static where the device needs it (many NPUs compile for fixed shapes);
# 4. attributes are within the device's limits (kernel sizes, strides, dilations, groups);
# 5. the subgraph is big enough to be worth a launch (TensorRT's `trt_min_subgraph_size`).
#
# Every edge between a device subgraph and a CPU node is a copy, so a model that is 90%
# offloaded in five fragments can be slower than the CPU alone.
#
# ### 3.3 The assignment on this machine, measured
#
# onnxruntime ≥ 1.23 records its assignment when asked
# (`session.record_ep_graph_assignment_info`); `roofline.provider_assignment` reads it:

# %%
assignment = roofline.provider_assignment(CNN_PATH)
print(
    assignment.groupby("provider")["nodes"].sum().to_dict(),
    "| nodes in the file:",
    len(onnx.load(CNN_PATH).graph.node),
)
assignment

# %%
optimized = go.optimize(CNN_PATH, "all")
print("as exported:                          ", go.operator_counts(onnx.load(CNN_PATH)))
print("after the CPU provider's optimisations:", go.operator_counts(optimized))

# %% [markdown]
# *What to notice*: here every node goes to the CPU provider, one "subgraph" per node (the CPU
# provider runs kernels, it does not compile). After optimisation the `Relu` nodes have been
# fused into the convolutions, and on x86 CPUs with AVX2 or AVX-512 the convolutions move to a
# blocked memory layout (`com.microsoft.nchwc` operators with `ReorderOutput` nodes). The
# optimised graph is specific to the provider and even to the CPU, which is why a `.ort` file
# made for one target is not a universal artefact. With a GPU or NPU provider first in the
# list, the same call lists that provider's subgraphs and node counts, and the 1.4 cell prints
# them for CUDA when a GPU is present.
#
# ### 3.4 What would change with an accelerator: a what-if partition
#
# Without the device we cannot *measure* its assignment, but we can predict the shape of the
# split from the rules of 3.2. `roofline.partition(model, supported)` groups supported
# nodes that are connected into subgraphs and counts the tensors crossing between device and
# CPU. The supported sets below are illustrations, not any vendor's real list.

# %%
scenarios = {
    "GPU-like: every operator": (CNN_PATH, {"Conv", "Relu", "MaxPool", "Reshape", "Gemm"}, 1),
    "NPU without Reshape": (CNN_PATH, {"Conv", "Relu", "MaxPool", "Gemm"}, 1),
    "same NPU, min 2 nodes per subgraph": (CNN_PATH, {"Conv", "Relu", "MaxPool", "Gemm"}, 2),
    "int8-only NPU on the float model": (CNN_PATH, {"QuantizeLinear", "DequantizeLinear"}, 1),
    "int8-only NPU on the QDQ model": (
        INT8_PATH,
        {"QuantizeLinear", "DequantizeLinear", "Conv", "MaxPool", "Gemm"},
        1,
    ),
}
partitions = {
    name: roofline.partition(path, ops, min_subgraph_nodes=k)
    for name, (path, ops, k) in scenarios.items()
}
for name, part in partitions.items():
    print(f"{name:36s} {part}")


# %%
SHORT_NAMES = {
    "QuantizeLinear": "Q",
    "DequantizeLinear": "DQ",
    "MaxPool": "Pool",
    "Reshape": "Resh",
}


def draw_partitions(partitions):
    """One row per scenario, one box per node (graph order), coloured by where it would run."""
    fig, ax = plt.subplots(figsize=(11, 0.75 * len(partitions) + 1.2))
    colours = {"accelerator": OKABE_ITO[0], "cpu": OKABE_ITO[1]}
    widest = max(p.total for p in partitions.values())
    for row, (name, part) in enumerate(partitions.items()):
        for col, (node, where) in enumerate(part.device.items()):
            ax.add_patch(plt.Rectangle((col, -row - 0.4), 0.9, 0.8, color=colours[where]))
            label = SHORT_NAMES.get(part.op_types[node], part.op_types[node])
            ax.text(col + 0.45, -row, label, ha="center", va="center", fontsize=6.5, color="white")
        ax.text(
            -0.3, -row, f"{name}\n{part.transfers} transfers", ha="right", va="center", fontsize=8
        )
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, ["on the accelerator", "on the CPU"], loc="lower right", ncol=2)
    ax.set(xlim=(-0.2, widest), ylim=(-len(partitions) - 0.4, 0.6), yticks=[])
    ax.set_xlabel("node position in the graph (topological order, count)")
    ax.set_title("Where each node would run, for illustrative provider capabilities")
    fig.tight_layout()
    return fig


draw_partitions(partitions)
plt.show()

# %% [markdown]
# *What to see*: dropping one unsupported node in the middle (Reshape) cuts the graph in two
# and doubles the transfers; a minimum subgraph size sends the lone Gemm back to the CPU; an
# integer-only device takes nothing of the float model, and most of the QDQ model (the
# quantize/dequantize pairs mark exactly where int8 tensors flow, which is what such providers
# look for). Real providers decide per node with more rules, so on the device check with
# `provider_assignment` and then *measure*.

# %% [markdown]
# ## 4. Benchmarking performance across platforms
#
# *Why it matters*: "the GPU is 10× faster" means nothing without the batch size, the threads,
# the percentiles and the interval. The method, each item of which this course's `bench`
# module implements:
#
# | pitfall | what to do |
# |---|---|
# | first calls include allocation, kernel selection, cache warm-up | warm up, then time |
# | the mean hides the tail, one run hides the noise | report median *and* p90/p99, with a confidence interval |
# | the machine drifts (other work, turbo, heat) | interleave candidates in shuffled rounds |
# | threads change everything | fix and record intra-/inter-op threads |
# | the OS moves threads between cores | pin (`taskset`, `os.sched_setaffinity`, ORT's `session.intra_op_thread_affinities`) and record it |
# | one batch size is one point of a curve | sweep batch sizes; report latency *and* throughput |
#
# ### 4.1 The first call is not the typical call

# %%
started = time.perf_counter()
fresh = bench.ort_session(WIDE_PATH)
created_ms = (time.perf_counter() - started) * 1e3
started = time.perf_counter()
fresh.run(None, {"features": wide_x[:1]})
first_ms = (time.perf_counter() - started) * 1e3
warm = bench.benchmark(bench.session_runner(fresh, wide_x[:1]), warmup=5, repeat=20)
print(
    f"session creation {created_ms:.1f} ms, first run {first_ms:.2f} ms, warmed-up median {warm.median * 1e3:.2f} ms "
    f"(95% CI {warm.ci_low * 1e3:.2f}-{warm.ci_high * 1e3:.2f}), p99 {warm.p99 * 1e3:.2f} ms"
)
print(
    "this process may run on CPUs",
    sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "n/a",
)

# %% [markdown]
# *What to notice*: compare the first run with the warmed-up median; a benchmark that times a
# handful of calls after creating the session reports mostly start-up. Pinning (`taskset -c 0
# python bench.py`) makes runs repeatable on a quiet machine; on a shared one, record the load
# (printed in the setup cell) with the numbers instead.
#
# ### 4.2 The roof of this machine
#
# Two measurements bound everything that follows: the **peak arithmetic rate**, measured with
# a 1024 × 1024 float32 matmul in onnxruntime (2·1024³ FLOPs per run, so arithmetic dominates
# overhead), and the **memory bandwidth**, measured by copying a 64 MB array (bytes read plus
# written per second, one thread). The roof takes the *best* run: an upper bound, as a roof
# must be (the best of the default thread count and of one thread, since on a shared machine
# either can win); the medians show what a busy machine gives typically.

# %%
peak = roofline.measure_peak_gflops(1024, repeat=6)
peak_one = roofline.measure_peak_gflops(1024, intra_op_threads=1, repeat=6)
bandwidth = roofline.measure_bandwidth_gbs(64, repeat=6)
roof = roofline.Roof(max(peak.best_gflops, peak_one.best_gflops), bandwidth.best_gbs)
print(
    f"peak, default threads: best {peak.best_gflops:.1f} GFLOP/s, median {peak.median_gflops:.1f}"
)
print(
    f"peak, 1 thread:        best {peak_one.best_gflops:.1f} GFLOP/s, median {peak_one.median_gflops:.1f}"
)
print(
    f"bandwidth (64 MB copy): best {bandwidth.best_gbs:.1f} GB/s, median {bandwidth.median_gbs:.1f}"
)
print(f"ridge point: {roof.ridge:.1f} FLOP/byte (below it a computation is memory-bound)")

# %% [markdown]
# ### 4.3 FLOPs and bytes from the graph
#
# `roofline.model_cost` fixes the batch size, runs ONNX shape inference, and counts every
# node: a multiply-add is 2 FLOPs (`Gemm`: 2·M·N·K, plus M·N for the bias; `Conv`: 2 × output
# elements × input channels per group × kernel size, plus the bias), elementwise operators one
# FLOP per element, reshapes none. Bytes are each node's inputs (weights included) and outputs,
# as if nothing stayed in cache: an upper bound on traffic, so the intensity is a lower bound.

# %%
costs = {
    (name, b): roofline.model_cost(path, b)
    for name, path in (("digits CNN", CNN_PATH), ("wide MLP", WIDE_PATH))
    for b in (1, 128)
}
pd.DataFrame(
    [
        {
            "model": name,
            "batch": b,
            "MFLOP": c.flops / 1e6,
            "MB moved": c.bytes_moved / 1e6,
            "weights MB": c.weight_bytes / 1e6,
            "FLOP/byte": c.intensity,
            "bound (roofline)": roof.bound(c.intensity),
        }
        for (name, b), c in costs.items()
    ]
).set_index(["model", "batch"]).round(3)

# %%
costs[("digits CNN", 128)].by_op_type()

# %% [markdown]
# *What to notice*: at batch 1 the wide MLP reads each weight once for two FLOPs (intensity
# near 0.5 FLOP/byte: memory-bound); at batch 128 every weight serves 128 rows and the
# intensity rises. The CNN's convolutions reuse each weight at every pixel, so even batch 1 has some
# reuse; almost all its FLOPs are in `Conv`.
#
# ### 4.4 Measured runs under the roof
#
# Now the latency of both models at several batch sizes (interleaved, 15 runs each, default
# threads), through the same `latency_by_provider` function as the GPU section, here with the
# CPU provider only. Each (model, batch) becomes a point: x = its intensity, y = FLOPs / median
# seconds.

# %%
CPU_BATCHES = (1, 16, 128)
cpu_frames = {
    name: latency_by_provider(path, sample, CPU_BATCHES, {"CPU": [CPU]}, repeat=15)["CPU"]
    for name, path, sample in (
        ("digits CNN", CNN_PATH, images_test),
        ("wide MLP", WIDE_PATH, wide_x),
    )
}
points = [
    roofline.RooflinePoint(
        "matmul probe 1024³", peak.flops, 3 * 1024 * 1024 * 4, float(np.min(peak.samples))
    )
]
for name in ("digits CNN", "wide MLP"):
    for b in (1, 128):
        cost = costs[(name, b)]
        seconds = cpu_frames[name].loc[b, "median_ms"] / 1e3
        points.append(
            roofline.RooflinePoint(f"{name}, batch {b}", cost.flops, cost.bytes_moved, seconds)
        )
roofline.plot_roofline(roof, points, title=f"Roofline of this machine ({machine['cpu_model']})")

# %% [markdown]
# *What to see*: the probe sits on the roof by construction (it defined it). Read every other
# point by its position: far below its attainable rate means the call overhead (input checks,
# allocation, scheduling, for a few hundred thousand FLOPs) sets the latency, not arithmetic or
# memory; a larger batch moves a point right (more FLOPs per byte of weights) and up (overhead
# spread over more rows). A point *above* the bandwidth slope is possible: that roof assumes
# every byte comes from main memory at the rate of a one-thread copy, while a small model's
# weights stay in cache and several threads can read faster than one. A point above
# the *flat* part means the machine was busier while the roof was measured than while the point
# was (rerun both; the load is printed in the setup cell). The next cell reads each point for
# you; the roofline then says which limit to attack: overhead (batch, fuse, fewer calls), memory
# (fewer bytes: int8, fusion) or compute (a faster device).


# %%
def reading(point):
    """One line of interpretation for a measured point, from its position under the roof."""
    fraction, bound = point.fraction_of(roof), roof.bound(point.intensity)
    if fraction > 1.05:
        if bound == "memory":
            return "above the bandwidth slope: cache, or more threads than the 1-thread copy"
        return "above the peak: the roof was measured at a busier moment, rerun both"
    if fraction >= 0.5:
        return f"near its {bound} limit: only fewer bytes or a faster device helps"
    return "far below its limit: per-call overhead dominates, batch or fuse"


for point in points:
    print(
        f"{point.label:24s} {point.gflops:7.2f} GFLOP/s at {point.intensity:6.2f} FLOP/B, "
        f"{point.fraction_of(roof):6.1%} of attainable: {reading(point)}"
    )

# %% [markdown]
# ### 4.5 Latency versus batch, throughput versus threads

# %%
plot_by_provider(
    cpu_frames, "Latency and throughput versus batch size, CPU provider, measured here"
)
plt.show()

# %% [markdown]
# *What to see*: latency grows with the batch while throughput rises and then flattens; the
# flat part is where the machine is busy. A latency budget picks a point on the left plot, a cost
# budget on the right one.

# %%
threads_frame = roofline.throughput_by_threads(WIDE_PATH, wide_x, (1, 2), batch=32, repeat=15)
display(threads_frame.round(3))
roofline.plot_throughput_by_threads(
    threads_frame, title="Wide MLP, batch 32: throughput versus intra-op threads"
)

# %% [markdown]
# *What to see*: two threads approach twice the throughput only if the machine has two idle
# cores; on a shared machine they may not. If the intervals overlap, the honest statement is
# "no measurable difference", whatever the medians say.

# %% [markdown]
# ### 4.6 Try it: batch size and threads, live
#
# The explorer measures one configuration at a time (10 runs after a warm-up, so a click takes
# well under a second) and places it on this machine's roof. Its logic is the plain function
# `roofline.operating_point_view`, called once here so that a static copy shows a result.

# %%
EXPLORER_MODELS = {"digits CNN": (CNN_PATH, images_test[:64]), "wide MLP": (WIDE_PATH, wide_x[:64])}
explorer_caches = {name: ({}, {}) for name in EXPLORER_MODELS}


def explore(model, batch, threads):
    """The explorer's update: measure (model, batch, threads), place it on the roofline."""
    path, sample = EXPLORER_MODELS[model]
    sessions, model_costs = explorer_caches[model]
    return roofline.operating_point_view(
        path,
        sample,
        roof,
        batch=batch,
        intra_op_threads=threads,
        repeat=10,
        sessions=sessions,
        costs=model_costs,
    )


HTML(widgets.render_html(explore("wide MLP", 16, 1)))

# %%
widgets.explorer(
    explore,
    title="Batch size and threads: latency, throughput and the roofline, measured live",
    model=list(EXPLORER_MODELS),
    batch=W.SelectionSlider(
        options=[1, 4, 16, 64], value=16, description="batch", continuous_update=False
    ),
    threads=W.Dropdown(options=[1, 2], value=1, description="threads"),
)

# %% [markdown]
# *Try*: the CNN at batch 1 and 64 (how much of the roof does each reach?); the wide MLP at
# batch 64 with 1 and 2 threads (does the second thread pay?).

# %% [markdown]
# ## Exercises
#
# ## Exercise 1 (build, 4 points): count the FLOPs of Gemm and Conv nodes
#
# Write `gemm_conv_flops(model, batch)` returning a dict `{node name: FLOPs}` with one entry for
# **every `Gemm` and `Conv` node** of the `onnx.ModelProto` `model` (no other operators), when
# the first dimension of every graph input is `batch` (other dimensions are fixed in the model).
# Conventions (the ones of section 4.3):
#
# - a multiply-add counts 2 FLOPs; `Gemm` of an M×K by a K×N matrix: `2*M*N*K`, plus `M*N`
#   when it has a bias input `C` (attributes `transA`/`transB` say which side is transposed;
#   `alpha` and `beta` are free);
# - `Conv`: `2 * (output elements) * (input channels per group) * (kernel height * width)`, plus
#   one per output element when it has a bias input `B`;
# - return Python ints (or NumPy integers). Shape inference (`onnx.shape_inference`) gives the
#   output shapes once the batch dimension is fixed. (After you finish, compare with
#   `roofline.model_cost`, which does this for more operators.)


# %% nbgrader={"solution": true, "grade_id": "ex1-flops"}
def gemm_conv_flops(model, batch):
    ### BEGIN SOLUTION
    import math

    m = onnx.ModelProto()
    m.CopyFrom(model)
    weights = {t.name for t in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name not in weights:
            inp.type.tensor_type.shape.dim[0].dim_value = batch
    m = onnx.shape_inference.infer_shapes(m)
    shapes = {t.name: tuple(t.dims) for t in m.graph.initializer}
    for vi in [*m.graph.input, *m.graph.value_info, *m.graph.output]:
        shapes.setdefault(vi.name, tuple(d.dim_value for d in vi.type.tensor_type.shape.dim))
    flops = {}
    for node in m.graph.node:
        if node.op_type not in ("Gemm", "Conv"):
            continue
        out = math.prod(shapes[node.output[0]])
        bias = out if len(node.input) > 2 and node.input[2] else 0
        if node.op_type == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            a = shapes[node.input[0]]
            k = a[0] if trans_a else a[1]
        else:
            k = math.prod(shapes[node.input[1]][1:])
        flops[node.name] = 2 * out * k + bias
    return flops
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1-gemm", "points": 1}
_fc = helper.make_graph(
    [helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="fc", transB=1)],
    "fc",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
    [
        numpy_helper.from_array(np.ones((16, 32), np.float32), "w"),
        numpy_helper.from_array(np.ones(16, np.float32), "c"),
    ],
)
_fc_model = helper.make_model(_fc, opset_imports=[helper.make_opsetid("", 18)])
_got = gemm_conv_flops(_fc_model, 4)
assert isinstance(_got, dict), f"expected a dict node name -> FLOPs, got {type(_got).__name__}"
assert set(_got) == {"fc"}, f"expected one entry for the node 'fc', got keys {sorted(_got)}"
assert int(_got["fc"]) == 2 * 4 * 16 * 32 + 4 * 16, (
    f"Gemm (4x32) by (32x16) with a bias: expected {2 * 4 * 16 * 32 + 4 * 16} FLOPs, got {_got['fc']}"
)
### BEGIN HIDDEN TESTS
# A arrives transposed (K x M, from a Transpose node), so transA=1; B is stored K x N (transB=0)
_fc_t = helper.make_graph(
    [
        helper.make_node("Transpose", ["x"], ["xt"], name="to_km", perm=[1, 0]),
        helper.make_node("Gemm", ["xt", "w", "c"], ["y"], name="fc_t", transA=1),
    ],
    "fc_t",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 24])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 40])],
    [
        numpy_helper.from_array(np.ones((24, 40), np.float32), "w"),
        numpy_helper.from_array(np.ones(40, np.float32), "c"),
    ],
)
_fc_t_model = helper.make_model(_fc_t, opset_imports=[helper.make_opsetid("", 18)])
for _b in (3, 5):
    _got = gemm_conv_flops(_fc_t_model, _b)
    assert set(_got) == {"fc_t"}, (
        f"Gemm with transA=1: expected one entry for the node 'fc_t', got keys {sorted(_got)}"
    )
    _want = 2 * _b * 40 * 24 + _b * 40
    assert int(_got["fc_t"]) == _want, (
        f"Gemm with transA=1 (A is 24x{_b}, so K = 24), batch {_b}: expected {_want} FLOPs, got {_got['fc_t']}"
    )
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex1-cnn", "points": 1}
_cnn_model = onnx.load(CNN_PATH)
_names = {op: [n.name for n in _cnn_model.graph.node if n.op_type == op] for op in ("Conv", "Gemm")}
for _b in (1, 8):
    _got = gemm_conv_flops(_cnn_model, _b)
    _want = {
        _names["Conv"][0]: 2 * (_b * 8 * 8 * 8) * (1 * 3 * 3) + _b * 8 * 8 * 8,
        _names["Conv"][1]: 2 * (_b * 16 * 8 * 8) * (8 * 3 * 3) + _b * 16 * 8 * 8,
        _names["Gemm"][0]: 2 * _b * 10 * 256 + _b * 10,
    }
    assert set(_got) == set(_want), (
        f"the digits CNN: expected keys {sorted(_want)}, got {sorted(_got)}"
    )
    for _k, _v in _want.items():
        assert int(_got[_k]) == _v, (
            f"digits CNN, batch {_b}, node {_k}: expected {_v} FLOPs, got {_got[_k]}"
        )


# %% nbgrader={"grade": true, "grade_id": "ex1-strided-grouped", "points": 2}
def _strided_model():
    rng = np.random.default_rng(6)
    nodes = [
        helper.make_node(
            "Conv", ["x", "wc"], ["c"], name="grouped", group=2, strides=[2, 2], kernel_shape=[3, 3]
        ),
        helper.make_node("Relu", ["c"], ["r"], name="act"),
        helper.make_node("Flatten", ["r"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wg"], ["g"], name="head", transB=1),
        helper.make_node("MatMul", ["g", "wm"], ["y"], name="extra"),
    ]
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 2, 3, 3)).astype(np.float32), "wc"),
        numpy_helper.from_array(rng.standard_normal((5, 96)).astype(np.float32), "wg"),
        numpy_helper.from_array(rng.standard_normal((5, 3)).astype(np.float32), "wm"),
    ]
    graph = helper.make_graph(
        nodes,
        "strided",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


_got = gemm_conv_flops(_strided_model(), 2)
assert set(_got) == {"grouped", "head"}, (
    f"only Gemm and Conv nodes count (not MatMul, Relu, Flatten): expected keys ['grouped', 'head'], got {sorted(_got)}"
)
assert int(_got["head"]) == 2 * 2 * 5 * 96, (
    f"Gemm without bias: expected {2 * 2 * 5 * 96} FLOPs, got {_got['head']}"
)
### BEGIN HIDDEN TESTS
for _b in (1, 3):
    _got = gemm_conv_flops(_strided_model(), _b)
    # output 4x4 (stride 2), 2 input channels per group, 3x3 kernel, no bias
    _want = 2 * (_b * 6 * 4 * 4) * (2 * 3 * 3)
    assert int(_got["grouped"]) == _want, (
        f"grouped strided Conv at batch {_b}: expected {_want} FLOPs, got {_got['grouped']}"
    )
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 (debug, 3 points): a session that never crashes without a GPU
#
# A colleague's service creates its session like this:
#
# ```python
# def open_fast_session(model_path, preferred=("TensorrtExecutionProvider", "CUDAExecutionProvider")):
#     return ort.InferenceSession(str(model_path), providers=list(preferred))
# ```
#
# On this CPU-only package it prints a warning per missing provider and quietly runs on the CPU;
# on a GPU server whose TensorRT libraries are missing it fails at start-up. Write:
#
# - `pick_providers(preferred, available)`: the providers of `preferred` that are in `available`,
#   **in the order of `preferred`**, each once, followed by `"CPUExecutionProvider"` exactly
#   once, last (even when `preferred` does not mention it or mentions it earlier);
# - `open_session(model_path, preferred)`: an `ort.InferenceSession` on
#   `pick_providers(preferred, ort.get_available_providers())`, which emits no warning.
#
# (Write them yourself; `roofline.choose_providers` is the course's version.)


# %% nbgrader={"solution": true, "grade_id": "ex2-providers"}
def pick_providers(preferred, available):
    ### BEGIN SOLUTION
    chosen = []
    for name in preferred:
        if name in available and name != "CPUExecutionProvider" and name not in chosen:
            chosen.append(name)
    return [*chosen, "CPUExecutionProvider"]
    ### END SOLUTION


def open_session(model_path, preferred):
    ### BEGIN SOLUTION
    providers = pick_providers(preferred, ort.get_available_providers())
    return ort.InferenceSession(str(model_path), providers=providers)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex2-pick", "points": 1}
_gpu_box = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
_cases = [
    (
        (["CUDAExecutionProvider", "TensorrtExecutionProvider"], _gpu_box),
        ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"],
    ),
    (
        (["TensorrtExecutionProvider", "CUDAExecutionProvider"], ["CPUExecutionProvider"]),
        ["CPUExecutionProvider"],
    ),
    (
        (["QNNExecutionProvider"], ["QNNExecutionProvider", "CPUExecutionProvider"]),
        ["QNNExecutionProvider", "CPUExecutionProvider"],
    ),
]
for (_pref, _avail), _want in _cases:
    _got = pick_providers(_pref, _avail)
    assert list(_got) == _want, f"pick_providers({_pref}, {_avail}): expected {_want}, got {_got}"

# %% nbgrader={"grade": true, "grade_id": "ex2-session", "points": 1}
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter("always")
    _s = open_session(CNN_PATH, ["TensorrtExecutionProvider", "CUDAExecutionProvider"])
_messages = [str(w.message)[:120] for w in _caught]
assert not _messages, f"expected no warnings when GPU providers are missing, got {_messages}"
assert isinstance(_s, ort.InferenceSession), (
    f"expected an InferenceSession, got {type(_s).__name__}"
)
assert _s.get_providers()[-1] == CPU, f"expected the CPU provider last, got {_s.get_providers()}"
_shape = _s.run(None, {"image": images_test[:3]})[0].shape
assert _shape == (3, 10), f"the CNN on 3 images: expected logits of shape (3, 10), got {_shape}"

# %% nbgrader={"grade": true, "grade_id": "ex2-edge-cases", "points": 1}
_got = pick_providers([], _gpu_box)
assert list(_got) == ["CPUExecutionProvider"], (
    f"nothing preferred: expected only the CPU provider, got {_got}"
)
_got = pick_providers(["CPUExecutionProvider", "CUDAExecutionProvider"], _gpu_box)
assert list(_got) == ["CUDAExecutionProvider", "CPUExecutionProvider"], (
    f"the CPU provider goes last, once: expected ['CUDAExecutionProvider', 'CPUExecutionProvider'], got {_got}"
)
### BEGIN HIDDEN TESTS
_dup = pick_providers(["CUDAExecutionProvider"] * 2 + ["OpenVINOExecutionProvider"], _gpu_box)
assert list(_dup) == ["CUDAExecutionProvider", CPU], (
    f"duplicates and unavailable providers: expected ['CUDAExecutionProvider', '{CPU}'], got {_dup}"
)
_tup = pick_providers(("DmlExecutionProvider", CPU), (CPU, "DmlExecutionProvider"))
assert list(_tup) == ["DmlExecutionProvider", CPU], (
    f"tuples as arguments: expected ['DmlExecutionProvider', '{CPU}'], got {_tup}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 (reason, 3 points): when does a Gemm become compute-bound?
#
# A `Gemm` multiplies an M×K activation matrix by a K×N weight matrix (no bias): `2*M*N*K`
# FLOPs, and at best it moves `itemsize * (M*K + K*N + M*N)` bytes (read both operands, write
# the result once). M is the batch size. Write:
#
# - `attainable_gflops(intensity, peak_gflops, bandwidth_gbs)`: the roofline bound
#   `min(peak, intensity * bandwidth)` in GFLOP/s, for an intensity in FLOP/byte;
# - `compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4)`: the **smallest batch
#   M ≥ 1** at which the Gemm's intensity reaches the ridge point `peak / bandwidth` (is at
#   least equal to it: a batch whose intensity equals the ridge exactly counts), or `None` when
#   no batch size ever reaches it (the intensity has a limit as M grows: find it).


# %% nbgrader={"solution": true, "grade_id": "ex3-roofline"}
def attainable_gflops(intensity, peak_gflops, bandwidth_gbs):
    ### BEGIN SOLUTION
    return min(peak_gflops, intensity * bandwidth_gbs)
    ### END SOLUTION


def compute_bound_batch(k, n, peak_gflops, bandwidth_gbs, itemsize=4):
    ### BEGIN SOLUTION
    import math

    ridge = peak_gflops / bandwidth_gbs
    # 2MNK >= ridge * s * (MK + KN + MN)  <=>  M * (2NK - r s (K + N)) >= r s K N
    slope = 2 * n * k - ridge * itemsize * (k + n)
    if slope <= 0:
        return None
    m = max(1, math.ceil(ridge * itemsize * k * n / slope))
    while m > 1 and 2 * (m - 1) * n * k >= ridge * itemsize * ((m - 1) * k + k * n + (m - 1) * n):
        m -= 1  # guard against float rounding in the division above
    return m
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex3-attainable", "points": 1}
for _args, _want in (
    ((2.0, 400.0, 25.0), 50.0),
    ((100.0, 400.0, 25.0), 400.0),
    ((16.0, 400.0, 25.0), 400.0),
):
    _got = attainable_gflops(*_args)
    assert abs(_got - _want) < 1e-9, (
        f"attainable_gflops{_args}: expected {_want} GFLOP/s, got {_got}"
    )


# %% nbgrader={"grade": true, "grade_id": "ex3-batch", "points": 2}
def _gemm_intensity(m, k, n, itemsize=4):
    return 2 * m * n * k / (itemsize * (m * k + k * n + m * n))


def _check_batch(k, n, peak, bw, itemsize=4):
    got = compute_bound_batch(k, n, peak, bw, itemsize)
    ridge = peak / bw
    assert isinstance(got, (int, np.integer)) and got >= 1, (
        f"compute_bound_batch({k}, {n}, {peak}, {bw}, {itemsize}): expected a batch size >= 1, got {got!r}"
    )
    assert _gemm_intensity(got, k, n, itemsize) >= ridge, (
        f"K={k}, N={n}: expected an intensity of at least the ridge {ridge:.2f} FLOP/byte at your "
        f"batch {got}, got {_gemm_intensity(got, k, n, itemsize):.2f} FLOP/byte"
    )
    assert got == 1 or _gemm_intensity(got - 1, k, n, itemsize) < ridge, (
        f"K={k}, N={n}, ridge {ridge:.2f}: expected the smallest batch that reaches the ridge, "
        f"got {got}, but batch {got - 1} already reaches it"
    )


_check_batch(1024, 1024, 400.0, 25.0)
_check_batch(512, 2048, 200.0, 20.0)
_got = compute_bound_batch(16, 16, 400.0, 25.0)
assert _got is None, (
    f"K = N = 16 with a ridge of 16 FLOP/byte: the intensity never gets there, expected None, got {_got!r}"
)
### BEGIN HIDDEN TESTS
_check_batch(4096, 4096, 1000.0, 50.0)
_check_batch(4096, 4096, 1000.0, 50.0, itemsize=1)
_check_batch(256, 256, 10.0, 100.0)
# a ridge of 1280 / 25 = 51.2 FLOP/byte, met exactly (not exceeded) at one batch: that batch counts
_check_batch(256, 256, 1280.0, 25.0)
_check_batch(256, 512, 1280.0, 25.0)
_small_layer = compute_bound_batch(64, 64, 989.0, 3.35)
assert _small_layer is None, (
    f"a 64x64 layer never reaches a ridge of ~295 FLOP/byte: expected None, got {_small_layer!r}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 4 (reason, 3 points): meet a p99 latency budget
#
# An edge box was benchmarked at several (batch size, intra-op threads) configurations, 200
# calls each; `MEASURED` maps each configuration to its per-call latencies in milliseconds (the
# data are fixed so that grading is deterministic). Write `pick_configuration(measured,
# p99_budget_ms)` returning the configuration key with the **highest throughput**, defined as
# `batch / median latency` (samples per second), among those whose **99th percentile latency**
# (`np.percentile(..., 99)`) is at most the budget; `None` when none meets it. Any positive
# latencies are valid (a large model may take seconds per call); when two configurations tie
# exactly on throughput, either is accepted.


# %%
def _edge_measurements(seed=2024):
    """(batch, threads) -> 200 latencies in ms: lognormal noise, and a few spikes in one config."""
    rng = np.random.default_rng(seed)
    medians = {
        (1, 1): 1.2,
        (1, 4): 0.9,
        (8, 1): 6.5,
        (8, 4): 2.6,
        (32, 1): 24.0,
        (32, 4): 6.5,
        (64, 1): 46.0,
        (64, 4): 15.0,
    }
    out = {}
    for key, med in medians.items():
        samples = med * rng.lognormal(0.0, 0.05, 200)
        if key == (32, 4):  # a garbage-collection pause or a noisy neighbour, 4% of calls
            samples[rng.choice(200, 8, replace=False)] = rng.uniform(28.0, 34.0, 8)
        out[key] = samples
    return out


MEASURED = _edge_measurements()
pd.DataFrame(
    {
        key: {
            "median ms": np.median(v),
            "p99 ms": np.percentile(v, 99),
            "samples/s": key[0] * 1e3 / np.median(v),
        }
        for key, v in MEASURED.items()
    }
).T.round(2)


# %% nbgrader={"solution": true, "grade_id": "ex4-budget"}
def pick_configuration(measured, p99_budget_ms):
    ### BEGIN SOLUTION
    best, best_throughput = None, -1.0
    for (batch, threads), latencies in measured.items():
        if np.percentile(latencies, 99) > p99_budget_ms:
            continue
        throughput = batch / (np.median(latencies) / 1e3)
        if throughput > best_throughput:
            best, best_throughput = (batch, threads), throughput
    return best
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex4-visible", "points": 1}
_got = pick_configuration(MEASURED, 10.0)
assert _got == (8, 4), (
    f"budget 10 ms: expected (8, 4), the fastest configuration whose p99 is <= 10 ms, got {_got!r}"
)
_got = pick_configuration(MEASURED, 0.5)
assert _got is None, f"budget 0.5 ms: no configuration meets it, expected None, got {_got!r}"

# %% nbgrader={"grade": true, "grade_id": "ex4-tail", "points": 2}
_got = pick_configuration(MEASURED, 20.0)
assert _got is not None and tuple(_got) in MEASURED, (
    f"budget 20 ms: expected a configuration key, got {_got!r}"
)
_p99 = np.percentile(MEASURED[tuple(_got)], 99)
assert _p99 <= 20.0, (
    f"budget 20 ms: expected a configuration whose p99 is <= 20 ms, got {_got} with a p99 of "
    f"{_p99:.1f} ms: look at the tail, not the median"
)


### BEGIN HIDDEN TESTS
def _expect4(measured, budget, want, why):
    got = pick_configuration(measured, budget)
    got = tuple(got) if got is not None else None
    assert got == want, f"budget {budget} ms ({why}): expected {want}, got {got}"


_expect4(MEASURED, 20.0, (64, 4), "the highest throughput among p99 <= 20 ms")
_expect4(MEASURED, 100.0, (32, 4), "every tail fits")
_small = {(2, 1): np.full(50, 4.0), (4, 2): np.r_[np.full(45, 5.0), np.full(5, 9.0)]}
_expect4(_small, 6.0, (2, 1), "10% slow calls put the p99 of (4, 2) above 6 ms")
_expect4(_small, 9.0, (4, 2), "a p99 equal to the budget meets it")
# one spike in 200 calls: above the budget at the maximum, not at the 99th percentile
_spiky = {(2, 1): np.full(200, 4.0), (16, 2): np.r_[np.full(199, 5.0), 40.0]}
_expect4(_spiky, 6.0, (16, 2), "one call in 200 at 40 ms leaves the p99 at 5 ms")
# a model that takes seconds per call: under one sample per second is still a throughput
_slow = {(1, 1): np.full(200, 2500.0), (1, 2): np.full(200, 1600.0), (2, 2): np.full(200, 3000.0)}
_expect4(_slow, 2000.0, (1, 2), "1.6 s per call, the only one within 2 s")
_expect4(_slow, 5000.0, (2, 2), "2 samples in 3 s beat 1 in 1.6 s")
# an exact tie on throughput (2 samples in 4 ms, 4 in 8 ms): either configuration is accepted
_tie = {(2, 1): np.full(50, 4.0), (4, 2): np.full(50, 8.0), (1, 1): np.full(50, 3.0)}
_got = pick_configuration(_tie, 10.0)
_got = tuple(_got) if _got is not None else None
assert _got in {(2, 1), (4, 2)}, f"budget 10 ms, a tie: expected (2, 1) or (4, 2), got {_got}"
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - Hardware is reached through **execution providers**; the package decides which exist, the
#   drivers and the device decide which start. Choose from what is available, in priority order,
#   CPU last, and check `get_providers()`; never let a benchmark fall back silently. The CPU
#   fallback is broad, not complete: some (operator, type) pairs have no CPU kernel (measured).
# - On a GPU, separate copies from compute with **I/O binding**; compare CPU and GPU at the batch
#   size you deploy.
# - For the **edge**: int8 (QDQ), the ORT format, and a reduced build from the generated
#   operator config; judge variants against explicit size and latency budgets, measured.
# - **TPUs** are reached through XLA/StableHLO, **FPGAs** and many **NPUs** through providers
#   (Vitis AI, QNN, OpenVINO, Core ML) that take only the nodes whose operator, version, types,
#   shapes and attributes they support; the split costs a transfer at every boundary. The
#   CPU's own int8 and bfloat16 units (VNNI, AMX, AVX512-BF16) can be read from
#   `/proc/cpuinfo` and measured; accelerators you do not have can only be cited.
# - The **roofline** bounds performance by peak GFLOP/s and bandwidth; FLOPs and bytes come from
#   the graph. Tiny models sit far below the roof (overhead-bound); batching raises intensity.
# - Benchmark with warm-up, medians and tails, intervals, interleaving, recorded threads and load.
#
# **Common pitfalls**
# - Installing `onnxruntime` and `onnxruntime-gpu` together (they overwrite each other); a
#   CUDA/cuDNN version that does not match the onnxruntime-gpu build.
# - Timing the first call (session start-up, TensorRT engine build) as if it were typical.
# - Comparing a GPU at batch 256 with a CPU at batch 1, or throughput with latency.
# - Reading the mean or the median against a latency SLO that is about the p99.
# - Converting to `.ort` with x86 optimisations and shipping it to an Arm phone.
# - Assuming int8 is faster: measure on the target; on NPUs it is mandatory, on CPUs optional.
#
# **Further reading**
# - *ONNX Runtime documentation*: "Execution Providers" (CUDA, TensorRT, OpenVINO, QNN, Vitis
#   AI, Core ML, NNAPI pages), "I/O Binding", "ORT model format", "Reduced operator kernel build".
# - Williams, Waterman and Patterson, "Roofline: An Insightful Visual Performance Model for
#   Multicore Architectures", Communications of the ACM 52(4), 2009.
# - OpenXLA, *StableHLO specification*; Google, *Cloud TPU documentation*: "Introduction to
#   Cloud TPU".
# - AMD, *Ryzen AI Software documentation*: "Model quantization" and "Vitis AI Execution Provider";
#   Linux kernel documentation, "AMD NPU" (the XDNA array of AI Engine tiles).
# - Google, *LiteRT documentation*: "NPU acceleration with LiteRT" (the `CompiledModel` API);
#   Android developers, "NNAPI Migration Guide".
# - Georg Hager and Gerhard Wellein, *Introduction to High Performance Computing for Scientists
#   and Engineers*, CRC Press 2010 (benchmarking and performance models).

# %%
print(f"lesson ran in {time.perf_counter() - LESSON_START:.1f} s on this machine")
