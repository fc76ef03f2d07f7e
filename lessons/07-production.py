# %% [markdown]
# # Lesson 7 — From a file to a service: serving, inference servers, graph surgery, complex models
#
# An `.onnx` file on disk answers nobody. In production a model sits behind a **service**: a
# process that accepts requests over the network, batches them, runs the model and answers,
# under load, with a latency the users can live with. This lesson starts such a service on your
# machine, queries it with the client NVIDIA ships for Triton, measures it under load, and then
# prepares models for it: edits their graphs, and exports the architectures that are harder
# than an MLP (a transformer, an LSTM, data-dependent control flow, a custom operator).
#
# **After this lesson you will be able to**
# 1. serve an ONNX model over the Open Inference Protocol (the protocol of Triton and KServe),
#    query it with `tritonclient` and with plain HTTP, and turn dynamic batching on and off;
# 2. load-test a service at several concurrencies and read throughput, latency percentiles and
#    server statistics, including what breaks under load;
# 3. write and validate a Triton model repository and `config.pbtxt`, and say what the TensorRT
#    execution provider needs (shape profiles, engine caches);
# 4. edit an ONNX graph with onnx-ir, the onnxscript rewriter and `onnx.compose`: rename,
#    insert preprocessing, append an argmax, remove and replace nodes, fold constants, merge
#    models, verifying every edit;
# 5. export a transformer encoder with a dynamic sequence length, an LSTM, `torch.cond` control
#    flow, a custom operator and a text decoder with its KV cache, verify them, and measure the
#    cost per generated token with and without the cache.
#
# **Prerequisites**: Lessons 2 (ONNX graphs), 3 (exporting from PyTorch) and 4 (ONNX Runtime,
# benchmarking); Python, NumPy, a little HTTP (a POST request with a JSON body).
#
# **Estimated time**: 2.5 to 4.5 hours for a first-time learner. Estimated, not measured on
# learners: about 4,600 words of text at 100-150 words a minute (30-45 min), about 50 code cells
# to run and read at 0.5-1 min each (25-50 min), and six exercises at 15-30 min each
# (90-180 min; the serving exercises need reading of HTTP replies). Running every cell takes
# under a minute of machine time (the course's tests check it on 2 cores).
#
# **How to check your answers**: in JupyterLab press *Validate* (nbgrader's button in the
# notebook toolbar). Without an instructor, run the visible test cells after each exercise: each
# prints nothing when your answer is right and says what was expected and what was got when it
# is not; `course.check()` runs them all for you.
#
# *A word on the measurements*: the server, the load generator and this notebook share your
# machine's cores, possibly with other work. Every figure below is measured when you run the
# notebook; rerun a cell before believing a small difference.

# %% [markdown]
# ## 0. Setup: the model we will serve
#
# The course's digits MLP (64 pixels in, 10 class scores out; trained in seconds and cached),
# exported with the exporter of Lesson 3. The lesson writes its files to a temporary folder,
# removed when the kernel stops.

# %%
import atexit
import contextlib
import json
import logging
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import matplotlib.pyplot as plt
import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pandas as pd
import torch
import tritonclient.http as httpclient
from IPython.display import HTML

import course.serve
from course import bench, convert, data, inspect, loadtest, triton_config, verify
from course.widgets import render_html

ort.set_default_logger_severity(3)  # the errors this lesson provokes are printed, not logged
WORK = data.workdir("lesson07")  # every file this lesson writes
OKABE_ITO = bench.OKABE_ITO


def show(figure) -> HTML:
    """Display a matplotlib Figure made by the course package (as an inline PNG)."""
    return HTML(render_html(figure))


split = data.load_digits_split()
mlp = data.train_torch_mlp(split)
digits_conv = convert.torch_to_onnx(mlp, split.X_test[:8])
digits_onnx = digits_conv.model
print(digits_conv.route)
print(f"parity with PyTorch: {digits_conv.report.passed}; export took {digits_conv.seconds:.1f} s")
print(
    "inputs:",
    [i.name for i in digits_onnx.graph.input],
    "outputs:",
    [o.name for o in digits_onnx.graph.output],
)

# %% [markdown]
# The exporter named the input `input` and the output `linear_2` (after the last `Linear`
# layer). Those names become the service's API; we keep them for now and fix them in
# Section 3.
#
# ## 1. Model serving with ONNX
#
# **Why it matters.** A service is judged by what its clients see: how many requests per second
# it answers (*throughput*) and how long each one waits (*latency*, usually its median and its
# tail, p99). Both depend less on the model than you might think: on protocol overhead, on
# how requests are scheduled, and on batching. You only find out by measuring.
#
# The course ships a small inference server, `course.serve`: it speaks the **Open Inference
# Protocol** (the protocol of NVIDIA Triton and KServe, also called "KServe v2", which defines an
# HTTP/REST API and an equivalent gRPC API; `course.serve` implements the REST half), reads
# models from a Triton-style **model repository**, runs them with ONNX Runtime and can **batch
# dynamically**. It also implements the three Triton extensions this lesson uses (binary tensor
# data, `/config`, `/stats`), so Triton's own HTTP client works against it unchanged. Section
# 2.2 sorts out what carries over to other servers.
#
# ### 1.1 A model repository
#
# One folder per model, one numbered subfolder per version, and a `config.pbtxt` with the
# serving settings. We serve the MLP twice, without and with dynamic batching, plus a heavier
# stand-in model (same structure, 64 → 2048 → 2048 → 10, random weights) to see how the
# model's cost changes the picture.


# %%
def heavy_mlp(width: int = 2048, features: int = 64, seed: int = 0) -> onnx.ModelProto:
    """An MLP with random weights, built with onnx.helper: compute-heavy, dynamic batch."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    shapes = [(features, width), (width, width), (width, 10)]
    nodes, weights, current = [], [], "x"
    for i, (n_in, n_out) in enumerate(shapes):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        weights.append(numpy_helper.from_array(w, f"W{i}"))
        out = "scores" if i == 2 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [out if i == 2 else f"m{i}"]))
        if i < 2:
            nodes.append(helper.make_node("Relu", [f"m{i}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "heavy_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 10])],
        weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


heavy_onnx = heavy_mlp()
macs = {  # multiply-adds per row = the weights of the matrix products
    name: sum(t.dims[0] * t.dims[1] for t in model.graph.initializer if len(t.dims) == 2)
    for name, model in (("digits", digits_onnx), ("heavy", heavy_onnx))
}
print(
    f"multiply-adds per row: digits {macs['digits']:,}, heavy {macs['heavy']:,} "
    f"({macs['heavy'] / macs['digits']:.0f}x)"
)
REPO = WORK / "models"
for name, model in (("digits", digits_onnx), ("heavy", heavy_onnx)):
    course.serve.add_model(REPO, name, model, max_batch_size=32)
    course.serve.add_model(
        REPO,
        f"{name}_batched",
        model,
        max_batch_size=32,
        dynamic_batching=True,
        max_queue_delay_microseconds=1000,
    )
print(triton_config.repository_tree(REPO))

# %%
print((REPO / "digits_batched" / "config.pbtxt").read_text())

# %% [markdown]
# `max_batch_size: 32` says the first dimension is a batch dimension (requests may carry 1 to
# 32 rows); `dynamic_batching` lets the server gather concurrent requests into one model run,
# waiting at most 1000 µs for company.
#
# ### 1.2 Start the server
#
# `course.serve.start` runs the server in a child process (`subprocess=True`, so that the
# server and this notebook's load generator do not share one Python interpreter) on a free port
# of the loopback interface, and returns once it accepts connections. Always stop what you
# start: the last cell of this section does, and `atexit` does if you skip it.

# %%
started = time.perf_counter()
server = course.serve.start(REPO, port=0, subprocess=True)
atexit.register(server.stop)  # a safety net: stopping twice is harmless
print(server, f"(started in {time.perf_counter() - started:.1f} s)")

# %% [markdown]
# ### 1.3 Query it: Triton's client, then plain HTTP
#
# `tritonclient.http` is the client NVIDIA publishes for Triton. Health, metadata, inference:

# %%
client = httpclient.InferenceServerClient(server.address)
print(
    "live:",
    client.is_server_live(),
    " ready:",
    client.is_server_ready(),
    " model ready:",
    client.is_model_ready("digits"),
)
metadata = client.get_model_metadata("digits")
metadata

# %%
rows = split.X_test[:4]
request_input = httpclient.InferInput("input", list(rows.shape), "FP32")
request_input.set_data_from_numpy(rows)
result = client.infer("digits", [request_input])
remote = result.as_numpy("linear_2")
local = verify.run_onnx(digits_onnx, rows)[0]
print("labels from the server:", remote.argmax(1), " true labels:", split.y_test[:4])
print(f"max |server - in-process onnxruntime| = {np.abs(remote - local).max():.1e}")

# %% [markdown]
# Nothing in the protocol needs that client. An inference request is a POST of a JSON object:
# each input has a `name`, a `shape`, a `datatype` (the protocol's names: `FP32`, `INT64`,
# `UINT8`, `BOOL`, ...) and its `data` flattened in row-major order.

# %%
request = {
    "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": rows[0].tolist()}]
}
response = httpx.post(f"{server.url}/v2/models/digits/infer", json=request, timeout=10)
answer = response.json()
output = answer["outputs"][0]
print(
    "HTTP", response.status_code, "| output:", output["name"], output["datatype"], output["shape"]
)
print("scores:", np.round(output["data"], 2))

# %% [markdown]
# `tritonclient` did not send JSON numbers: by default it uses the protocol's **binary tensor
# extension** (a JSON header, then the raw little-endian bytes; the header
# `Inference-Header-Content-Length` says where the JSON ends). The bytes on the wire, measured
# with the codec the server uses, for the digits (pixel values such as `0.3125`) and for
# arbitrary float32 values:

# %%
arbitrary = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
sizes = {}
for what, values in (("digits", split.X_test[:32]), ("arbitrary floats", arbitrary)):
    for rows_per_request in (1, 32):
        batch = values[:rows_per_request]
        as_json, _ = course.serve.encode_request(
            {"input": batch}, binary=False, binary_outputs=False
        )
        as_binary, _ = course.serve.encode_request({"input": batch})
        sizes[f"{what}, {rows_per_request} row(s)"] = {
            "JSON body (bytes)": len(as_json),
            "binary body (bytes)": len(as_binary),
            "JSON / binary": round(len(as_json) / len(as_binary), 2),
        }
pd.DataFrame(sizes).T

# %% [markdown]
# *What to notice*: the binary format costs 4 bytes per float32 plus a small header, whatever
# the values. JSON's cost depends on the values: short decimals such as the digits' multiples
# of 1/16 are cheap, arbitrary floats are spelt out with up to 17 significant digits, and every
# number must be parsed back.
#
# ### 1.4 Dynamic batching under load
#
# A load test sends the same kind of request from many concurrent clients and measures what
# they see. `course.loadtest` runs a *closed loop*: each of `concurrency` clients sends a
# request, waits for the answer, sends the next. Every test is bounded in requests and in time,
# and targets the loopback interface only. Each request carries one row, in the binary format.


# %%
def one_row_bodies(input_name: str, rows: np.ndarray) -> list:
    """Binary-format request bodies with one row each, cycled by the load generator."""
    return [course.serve.encode_request({input_name: rows[i : i + 1]}) for i in range(len(rows))]


def stats_of(model_name: str) -> dict:
    """This model's entry of the Triton statistics endpoint (counters since the server started)."""
    return client.get_inference_statistics(model_name)["model_stats"][0]


digit_bodies = one_row_bodies("input", split.X_test[:64])
LEVELS = (1, 8, 32)
sweeps = []
for model_name, label in (("digits", "batching off"), ("digits_batched", "batching on")):
    if model_name == "digits_batched":
        stats_before = stats_of(model_name)
    sweeps.append(
        loadtest.sweep(
            server.url,
            f"/v2/models/{model_name}/infer",
            digit_bodies,
            LEVELS,
            requests=300,
            time_limit_s=1.0,
            warmup=20,
            label=label,
        )
    )
stats_after = stats_of("digits_batched")
digits_table = pd.concat(sweeps, ignore_index=True)
digits_table[
    [
        "label",
        "concurrency",
        "ok",
        "errors",
        "throughput_rps",
        "p50_ms",
        "p99_ms",
        "mean_ms",
        "littles_law_ms",
    ]
].round(2)

# %%
show(loadtest.plot_sweep(digits_table, title="Digits MLP on course.serve (one row per request)"))

# %% [markdown]
# *What to see*: without batching, throughput stops growing after a few clients and latency
# grows with every client added; with batching, one client pays the queue delay (up to 1 ms
# waiting for company that never comes), while many clients share model runs.
#
# The server's statistics (Triton's format) count rows (`inference_count`) and model runs
# (`execution_count`) separately. Between the two snapshots around the batching sweep:

# %%
rows_done = stats_after["inference_count"] - stats_before["inference_count"]
runs_done = stats_after["execution_count"] - stats_before["execution_count"]
print(
    f"rows inferred: {rows_done}, model runs: {runs_done}, "
    f"mean rows per run: {rows_done / runs_done:.1f}"
)
{b["batch_size"]: b["compute_infer"]["count"] for b in stats_after["batch_stats"]}

# %% [markdown]
# For a model this small, where does the time go? Compare the server with ONNX Runtime called
# in this process on the same rows:

# %%
session = bench.ort_session(digits_onnx)
per_row = bench.benchmark(bench.session_runner(session, split.X_test[:1]), repeat=100, warmup=10)
per_32 = bench.benchmark(bench.session_runner(session, split.X_test[:32]), repeat=100, warmup=10)
best = digits_table.loc[digits_table["throughput_rps"].idxmax()]
print(
    f"in-process onnxruntime: {per_row.median * 1e6:.0f} µs for 1 row, "
    f"{per_32.median * 1e6 / 32:.1f} µs per row in a batch of 32"
)
print(
    f"best server throughput: {best['throughput_rps']:,.0f} requests/s ({best['label']}, "
    f"{best['concurrency']} clients) = {1e6 / best['throughput_rps']:.0f} µs per request"
)

# %% [markdown]
# *What to notice*: the MLP computes a row in microseconds; each request costs the server
# far more than that in HTTP parsing, decoding and scheduling. Batching shares the model
# run, not the HTTP work, so it cannot help much here. With a model that costs more than the
# protocol, the picture changes. The same load on the heavy stand-in model, at 32 clients:

# %%
heavy_bodies = one_row_bodies("x", np.random.default_rng(1).random((64, 64), dtype=np.float32))
heavy_before = stats_of("heavy_batched")
heavy_table = pd.concat(
    [
        loadtest.sweep(
            server.url,
            f"/v2/models/{model_name}/infer",
            heavy_bodies,
            (32,),
            requests=240,
            time_limit_s=1.0,
            warmup=32,
            label=label,
        )
        for model_name, label in (
            ("heavy", "heavy, batching off"),
            ("heavy_batched", "heavy, batching on"),
        )
    ],
    ignore_index=True,
)
heavy_after = stats_of("heavy_batched")
print(
    "heavy model with batching: mean rows per run",
    round(
        (heavy_after["inference_count"] - heavy_before["inference_count"])
        / (heavy_after["execution_count"] - heavy_before["execution_count"]),
        1,
    ),
)
heavy_session = bench.ort_session(heavy_onnx)
heavy_x = np.random.default_rng(2).random((32, 64), dtype=np.float32)
heavy_32 = bench.benchmark(bench.session_runner(heavy_session, heavy_x), repeat=15, warmup=2)
heavy_1 = bench.benchmark(bench.session_runner(heavy_session, heavy_x[:1]), repeat=15, warmup=2)
heavy_table[["label", "concurrency", "ok", "throughput_rps", "p50_ms", "p99_ms"]].round(2)


# %%
def throughput_at(table: pd.DataFrame, label: str, level: int) -> float:
    picked = table[(table["label"] == label) & (table["concurrency"] == level)]
    return float(picked["throughput_rps"].iloc[0])


names = ["digits MLP", "heavy MLP"]
off = [
    throughput_at(digits_table, "batching off", 32),
    throughput_at(heavy_table, "heavy, batching off", 32),
]
on = [
    throughput_at(digits_table, "batching on", 32),
    throughput_at(heavy_table, "heavy, batching on", 32),
]
ceiling = [32 / per_32.median, 32 / heavy_32.median]
single = [1 / per_row.median, 1 / heavy_1.median]

fig, ax = plt.subplots(figsize=(8, 3.6))
position = np.arange(len(names))
for shift, values, colour, label in (
    (-0.3, single, OKABE_ITO[5], "in-process, 1 row per run"),
    (-0.1, off, OKABE_ITO[0], "server, batching off"),
    (0.1, on, OKABE_ITO[1], "server, batching on"),
    (0.3, ceiling, OKABE_ITO[2], "in-process, 32 rows per run"),
):
    ax.bar(position + shift, values, width=0.2, color=colour, label=label)
ax.set_xticks(position, names)
ax.set_yscale("log")
ax.set(ylabel="rows per second (log scale)", title="32 concurrent clients: server vs in-process")
ax.legend(fontsize="small", loc="upper right")
plt.show()
for i, name in enumerate(names):
    print(
        f"{name}: batching on / off = {on[i] / off[i]:.2f}x; server with batching reaches "
        f"{on[i] / ceiling[i]:.2%} of in-process onnxruntime at batch 32"
    )

# %% [markdown]
# *What to see*: for the tiny MLP the server stays orders of magnitude below what ONNX Runtime
# computes in-process: the protocol, not the model, is the bottleneck, and batching cannot
# remove it. For the heavy model the model's work matters, so one batched run serving many
# requests pays off: compare the two middle bars of each group, and the printed ratios, which
# are your machine's (a busy machine leaves the batcher fewer requests to gather).
#
# ### 1.5 What breaks under load
#
# **Latency grows once throughput saturates.** In a closed loop, Little's law ties the three
# numbers together: clients in flight = throughput × mean latency. Once throughput stops
# growing, every extra client adds only waiting time. Compare the `mean_ms` and
# `littles_law_ms` columns above: they agree, whatever the server does.
#
# **Clients give up.** Real clients have timeouts. The same heavy load without batching, with
# clients that wait at most the median latency measured above:

# %%
patience_s = (
    float(heavy_table.loc[heavy_table["label"] == "heavy, batching off", "p50_ms"].iloc[0]) / 1000
)
impatient = loadtest.run_load(
    server.url,
    "/v2/models/heavy/infer",
    heavy_bodies,
    concurrency=32,
    requests=200,
    time_limit_s=1.5,
    timeout_s=patience_s,
)
print(f"client timeout {patience_s * 1000:.1f} ms:", impatient)
print("first error:", impatient.error_samples[:1])

# %% [markdown]
# A timed-out request is not free: the server may still compute it, for nobody. (Load tests
# that wait for every answer hide this; an *open-loop* test, which sends at a fixed rate whatever
# the answers, shows queues growing without bound once the rate exceeds the capacity.)
#
# **Requests the server refuses.** A batch larger than `max_batch_size`, or float64 data (NumPy's
# default) for a float32 model: the server answers 400 with a message, and the client raises it.

# %%
for bad_rows, what in (
    (split.X_test[:64], "64 rows"),
    (split.X_test[:2].astype(np.float64), "float64"),
):
    bad = httpclient.InferInput(
        "input", list(bad_rows.shape), "FP64" if bad_rows.dtype == np.float64 else "FP32"
    )
    bad.set_data_from_numpy(bad_rows)
    try:
        client.infer("digits", [bad])
    except Exception as exc:  # tritonclient raises InferenceServerException
        print(f"{what}: {type(exc).__name__}: {exc}")

# %% [markdown]
# ### 1.6 Try it: a serving dashboard
#
# The dashboard reads the measurements taken above (no new load): pick a number of clients and
# a configuration to see its throughput, latency, Little's law check and comparisons. Its logic
# is the plain function `course.loadtest.dashboard_view`, printed once here:

# %%
all_measurements = pd.concat([digits_table, heavy_table], ignore_index=True)
HTML(loadtest.dashboard_view(all_measurements, 32, "batching on"))

# %%
loadtest.serving_dashboard(all_measurements)

# %% [markdown]
# Stop the server (it answers every request already received, then exits):

# %%
client.close()
server.stop()
print("server still running:", server.running)

# %% [markdown]
# ### 1.7 A transformer encoder behind the server
#
# The MLPs above stand for cheap models. Text services mostly serve transformers: a request
# carries token ids and the model returns one vector per token. The course's text encoder
# (`course.text_models`, a BERT-style encoder built from a `transformers` configuration and
# exported to ONNX; built once at set-up and cached) takes `input_ids` and `attention_mask`
# (int64, `[batch, tokens]`) and returns `last_hidden_state`. Every request here has the same
# number of tokens, `ENCODER_TOKENS`: a search query or a short question to a classifier is that
# short, and short requests are the ones a server gathers in numbers. (`course.serve` batches
# requests of the same shape only; servers for text pad requests to a common length, or bucket
# them by length, before batching.)
#
# **What batching can give, before any server.** Batching helps when one request leaves the
# cores idle: a matrix product over few rows cannot keep them busy. A request of `t` tokens
# already gives each of the encoder's matrix products `t` rows, so the longer the requests, the
# less batching is left to gain. Measure it in this process, without a server: rows per second
# at batch 1 and at batch 32, for short and longer requests. (*All cores* is one run using
# every core; *one thread per core at once* runs one single-threaded session per core side by
# side, what a server with one model instance per core does.)

# %%
from course import text_models

ENCODER_TOKENS = 8  # as benchmarks/serve_bench.py sends
encoder_path = text_models.encoder_onnx()
CORES = os.cpu_count() or 1


def encoder_session(threads: int | None):
    """An onnxruntime session of the encoder with ``threads`` threads (None: all cores)."""
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(encoder_path), options, providers=["CPUExecutionProvider"])


def rows_per_second(session, feed: dict, side_by_side: int = 1, seconds: float = 0.3) -> float:
    """Rows per second of ``side_by_side`` threads each running ``session`` on ``feed`` at once
    (a session may run in several threads), for about ``seconds`` (at least two runs per thread
    after one warm-up run)."""
    rows = len(feed["input_ids"])

    def loop(_: int) -> tuple[int, float]:
        session.run(None, feed)
        began, runs = time.perf_counter(), 0
        while runs < 2 or time.perf_counter() - began < seconds:
            session.run(None, feed)
            runs += 1
        return runs, time.perf_counter() - began

    with ThreadPoolExecutor(side_by_side) as pool:
        return sum(rows * runs / took for runs, took in pool.map(loop, range(side_by_side)))


feeds = {
    (tokens, batch): text_models.sample_inputs(batch, tokens, seed=1)
    for tokens in (8, 32)
    for batch in (1, 32)
}
ceiling_rows = {key: {"tokens": key[0], "batch": key[1]} for key in feeds}
all_cores = encoder_session(None)
for key, feed in feeds.items():
    ceiling_rows[key]["all cores"] = rows_per_second(all_cores, feed)
del all_cores  # each session holds its own copy of the weights: one at a time
one_thread = encoder_session(1)  # kept for the server's comparison below
for key, feed in feeds.items():
    ceiling_rows[key]["one thread per core at once"] = rows_per_second(one_thread, feed, CORES)
ceiling_table = pd.DataFrame(list(ceiling_rows.values()))
ceiling_table["best (rows/s)"] = ceiling_table[["all cores", "one thread per core at once"]].max(
    axis=1
)
best = ceiling_table.set_index(["tokens", "batch"])["best (rows/s)"]
for tokens in (8, 32):
    print(
        f"{tokens} tokens per request: batch 32 gives {best[tokens, 32] / best[tokens, 1]:.2f}x "
        "the rows per second of batch 1 (the best layout of each)"
    )
ceiling_table.round(1)

# %% [markdown]
# *What to see*: compare the two printed ratios. Each is the most any server's dynamic batching
# can give for this model, at that request length, on this CPU, however good its batcher; the
# shorter requests usually leave batching more to gain (on a busy machine, rerun the cell before
# reading much into a small difference). Compare the two layouts too: at batch 1, one
# single-threaded run per core usually beats one run split over all cores, because a small run
# cannot keep several threads busy. A server gets that layout from *model instances*: Triton's `instance_group { count: N }`,
# which `course.serve` reads too, loads N copies of the model, each with `cores // N` threads,
# and sends each batch to whichever copy is free.
#
# Now the server, under 32 clients sending one request of one row each: the same encoder with
# batching off, and with batching on and one instance per core. Without batching `course.serve`
# already overlaps one single-threaded run per core on one session, so the two differ only in
# batching. (The full benchmark below adds batching with one all-core instance. Each instance
# holds its own copy of the weights, so the notebook runs one configuration at a time, each in
# its own server, to stay small in memory.)

# %%
encoder_rows = text_models.sample_inputs(64, ENCODER_TOKENS, seed=1)
encoder_parameters = sum(
    int(np.prod(t.dims)) for t in onnx.load(str(encoder_path)).graph.initializer
)
ENC_REPO = WORK / "encoder-models"  # one repository per configuration
ENC_CONFIGS = {  # model name -> (label, dynamic batching, instance count or None)
    "encoder": ("batching off", False, None),
    "encoder_instances": (f"batching on, {CORES} instances", True, CORES),
}
for model_name, (_, batched, instances) in ENC_CONFIGS.items():
    course.serve.add_model(
        ENC_REPO / model_name,
        model_name,
        encoder_path,
        max_batch_size=32,
        dynamic_batching=batched,
        max_queue_delay_microseconds=1000,
        instance_count=instances,
    )
print((ENC_REPO / "encoder_instances" / "encoder_instances" / "config.pbtxt").read_text())
# the in-process answer to compare with, then the notebook's copy of the weights is freed while
# the server holds its own copies (one per instance); it is loaded again for the comparison below
local_states = one_thread.run(None, {k: v[:1] for k, v in encoder_rows.items()})[0]
del one_thread
started = time.perf_counter()
enc_server = course.serve.start(ENC_REPO / "encoder_instances", port=0, subprocess=True)
atexit.register(enc_server.stop)
enc_client = httpclient.InferenceServerClient(enc_server.address)
print(
    f"encoder: {encoder_parameters / 1e6:.1f} M parameters, {ENCODER_TOKENS} tokens per request; "
    f"server started in {time.perf_counter() - started:.1f} s"
)
enc_inputs = []
for name in ("input_ids", "attention_mask"):
    tensor = httpclient.InferInput(name, [1, ENCODER_TOKENS], "INT64")
    tensor.set_data_from_numpy(encoder_rows[name][:1])
    enc_inputs.append(tensor)
remote_states = enc_client.infer("encoder_instances", enc_inputs).as_numpy("last_hidden_state")
print(
    f"output {remote_states.shape}; max |server - in-process| = "
    f"{np.abs(remote_states - local_states).max():.1e}"
)

# %% [markdown]
# The load: 32 clients, each request one row, with each configuration in turn (the running
# server, then one without batching in its place); then ONNX Runtime in this process on the same
# rows at the batch sizes the server ran (batch 1 without batching, the server's mean batch size
# with it), in the layout both configurations use: one single-threaded run per core at once.
# The test lasts a few seconds, so the figures are rough: rerun the cell before trusting a small
# difference.

# %%
encoder_bodies = [
    course.serve.encode_request({k: v[i : i + 1] for k, v in encoder_rows.items()})
    for i in range(len(encoder_rows["input_ids"]))
]


def load_encoder(url: str, client, model_name: str) -> tuple:
    """32 clients against one configuration: the load test's row and the mean batch size."""
    before = client.get_inference_statistics(model_name)["model_stats"][0]
    frame = loadtest.sweep(
        url,
        f"/v2/models/{model_name}/infer",
        encoder_bodies,
        (32,),
        requests=64,
        time_limit_s=1.0,
        warmup=16,
        label=ENC_CONFIGS[model_name][0],
    )
    after = client.get_inference_statistics(model_name)["model_stats"][0]
    batch = (after["inference_count"] - before["inference_count"]) / (
        after["execution_count"] - before["execution_count"]
    )
    return frame, batch


measured = {"encoder_instances": load_encoder(enc_server.url, enc_client, "encoder_instances")}
enc_client.close()
enc_server.stop()
with course.serve.start(ENC_REPO / "encoder", port=0, subprocess=True) as off_server:
    off_client = httpclient.InferenceServerClient(off_server.address)
    measured["encoder"] = load_encoder(off_server.url, off_client, "encoder")
    off_client.close()
order = list(ENC_CONFIGS)  # batching off first
encoder_table = pd.concat([measured[m][0] for m in order], ignore_index=True)
mean_batches = [measured[m][1] for m in order]
encoder_table["mean batch"] = mean_batches
in_process = {}  # batch size -> in-process rows per second, one single-threaded run per core
one_thread = encoder_session(1)  # the servers have stopped: the notebook's copy again
for size in sorted({max(1, round(b)) for b in mean_batches}):
    feed = {k: np.resize(v, (size, ENCODER_TOKENS)) for k, v in encoder_rows.items()}
    in_process[size] = rows_per_second(one_thread, feed, CORES)
encoder_table["in-process, same batch (rows/s)"] = [
    in_process[max(1, round(b))] for b in mean_batches
]
encoder_table["server / in-process"] = (
    encoder_table["throughput_rps"] / encoder_table["in-process, same batch (rows/s)"]
)
enc_off = encoder_table["throughput_rps"].iloc[0]
for _, row in encoder_table.iloc[1:].iterrows():  # the batched configurations
    print(
        f"{row['label']}: {row['throughput_rps'] / enc_off:.2f}x the throughput without "
        f"batching (in-process, batch {max(1, round(row['mean batch']))} / batch 1: "
        f"{row['in-process, same batch (rows/s)'] / in_process[1]:.2f}x)"
    )
encoder_table[
    [
        "label",
        "ok",
        "throughput_rps",
        "p50_ms",
        "p99_ms",
        "mean batch",
        "in-process, same batch (rows/s)",
        "server / in-process",
    ]
].round(2)

# %% [markdown]
# *What to see*: compare the last column with the digits MLP's: for the encoder the model's
# compute, not the protocol, takes most of the server's time. The gain from batching is bounded
# by the figure printed in brackets, the in-process gain of the server's batches over batch 1,
# which the first table of this section measured for short and long requests. For a transformer
# on a CPU that bound is modest, because one request of a few tokens already gives each matrix
# product several rows; a GPU, with thousands of arithmetic units to keep busy, gains far more
# from batching. With several instances the batches are smaller than with one (the queue feeds
# several batches in flight), and each runs on one core. Server, load generator and notebook
# share your cores, and any other work on the machine shows up in these figures.
#
# **The full benchmark and a real Triton.** `benchmarks/serve_bench.py` (in the course
# repository, run by `make benchmarks`, not in the notebook: it runs for minutes) measures the
# same at 1, 8 and 32 clients on the encoder and three MLPs, the in-process study above at 8, 16
# and 32 tokens, and can serve the same configurations with a real NVIDIA Triton Inference
# Server (through PyTriton, from a separate Python environment, since PyTriton pins an older
# NumPy), loaded by the same client. If you ran it on this machine, its figures are shown
# below; if not, the cell says how to run it.

# %%
del one_thread  # the encoder's weights are not needed in the sections that follow
REPO_ROOT = Path(course.serve.__file__).resolve().parents[2]
SERVE_RESULTS = REPO_ROOT / "benchmarks" / "results" / "serve.json"
PYTRITON_PYTHON = REPO_ROOT / "build" / "pytriton-venv" / "bin" / "python"
run_it = (
    "`make benchmarks` (the serving part alone: "
    "`python -m benchmarks.serve_bench --pytriton build/pytriton-venv/bin/python`)"
)
shown = pd.DataFrame()
if SERVE_RESULTS.is_file():
    saved = json.loads(SERVE_RESULTS.read_text())
    machine = saved["machine"]
    print(
        f"measured by `{saved['command']}` on this machine, {saved['when']}: "
        f"{machine['logical_cores']} cores shared by client and server, load average "
        f"{machine['load_before']:.1f} before, {machine['load_after']:.1f} after"
        + (" (a busy machine: rerun it on a quiet one)" if saved.get("measured_under_load") else "")
    )
    for study in saved.get("batching_study", []):
        print(
            f"in-process encoder, {study['tokens']} tokens: batch {study['batch']} gives "
            f"{study['gain']:.2f}x batch 1"
        )
    for name, entry in saved["summary"].items():
        for config, gain in entry["batching_gain_at_32"].items():
            print(
                f"{name}, batching {config}, 32 clients: {gain:.2f}x no batching (in-process "
                f"ceiling {entry['in_process_batching_gain_at_32'][config]:.2f}x); server = "
                f"{entry['server_vs_in_process_at_32'][config]:.1%} of in-process onnxruntime"
            )
        for config, ratios in entry.get("course_serve_vs_triton", {}).items():
            print(
                f"{name}, batching {config}: course.serve / Triton = "
                + ", ".join(f"{ratio:.2f}x at {level} clients" for level, ratio in ratios.items())
            )
    full_table = pd.DataFrame(saved["rows"])
    if not any("triton" in server_name for server_name in full_table["server"]):
        print(
            "No Triton rows in that run."
            + (
                f" The Triton environment exists: in {REPO_ROOT}, run {run_it}."
                if PYTRITON_PYTHON.is_file()
                else f" Build the Triton environment (`make pytriton-env`), then run {run_it}."
            )
        )
    shown = (
        full_table.loc[
            full_table["concurrency"] == 32,
            [
                "server",
                "model",
                "batching",
                "instances",
                "throughput",
                "p50_ms",
                "p99_ms",
                "mean_batch",
                "ratio",
            ],
        ]
        .rename(columns={"throughput": "requests/s", "ratio": "server / in-process"})
        .round(2)
    )
else:
    print(
        f"No benchmark results at {SERVE_RESULTS}. In the course repository ({REPO_ROOT}), run "
        + (
            run_it
            if PYTRITON_PYTHON.is_file()
            else "`make pytriton-env` (a separate Python 3.12 environment with PyTriton; set "
            "PYTRITON_PYTHON=/path/to/python3.12 if `python3.12` is not on your PATH), "
            f"then {run_it}; without Triton: `python -m benchmarks.serve_bench`"
        )
        + " (add `--quick` for a shorter run)."
    )
shown

# %% [markdown]
# ## Exercise 1 (build, 4 points): speak the protocol
#
# Write two functions.
#
# `build_infer_request(inputs)` takes a dict `{input name: numpy array}` and returns the JSON
# object (a Python `dict`, ready for `json.dumps`) of an Open Inference Protocol inference
# request: `{"inputs": [{"name": ..., "shape": [...], "datatype": ..., "data": [...]}, ...]}`,
# with the protocol's datatype names (`float32` → `"FP32"`, `float64` → `"FP64"`,
# `int32` → `"INT32"`, `int64` → `"INT64"`, `uint8` → `"UINT8"`, `bool` → `"BOOL"`) and the data
# as Python numbers (flat in row-major order, or nested lists).
#
# `parse_infer_response(response)` takes a response JSON object (a `dict`, with every output
# given as JSON `data`) and returns `{output name: numpy array}` with each array's shape and
# dtype taken from the response (`"FP32"` → `float32`, `"INT64"` → `int64`, and so on).
#
# The tests send your request to a real `course.serve` server.


# %% nbgrader={"solution": true, "grade_id": "ex1-protocol"}
def build_infer_request(inputs: dict) -> dict:
    ### BEGIN SOLUTION
    names = {
        "float32": "FP32",
        "float64": "FP64",
        "float16": "FP16",
        "int8": "INT8",
        "int16": "INT16",
        "int32": "INT32",
        "int64": "INT64",
        "uint8": "UINT8",
        "uint16": "UINT16",
        "uint32": "UINT32",
        "uint64": "UINT64",
        "bool": "BOOL",
    }
    tensors = []
    for name, value in inputs.items():
        array = np.asarray(value)
        tensors.append(
            {
                "name": name,
                "shape": list(array.shape),
                "datatype": names[array.dtype.name],
                "data": array.ravel().tolist(),
            }
        )
    return {"inputs": tensors}
    ### END SOLUTION


def parse_infer_response(response: dict) -> dict:
    ### BEGIN SOLUTION
    dtypes = {
        "FP32": np.float32,
        "FP64": np.float64,
        "FP16": np.float16,
        "INT8": np.int8,
        "INT16": np.int16,
        "INT32": np.int32,
        "INT64": np.int64,
        "UINT8": np.uint8,
        "UINT16": np.uint16,
        "UINT32": np.uint32,
        "UINT64": np.uint64,
        "BOOL": np.bool_,
    }
    return {
        out["name"]: np.array(out["data"], dtype=dtypes[out["datatype"]]).reshape(out["shape"])
        for out in response["outputs"]
    }
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1-visible", "points": 2}
import json as _json
import tempfile as _tempfile

import httpx as _httpx
import numpy as _np

import course.serve as _serve
from course.verify import run_onnx as _run_onnx

_rows = split.X_test[:3]
_req = build_infer_request({"input": _rows})
assert isinstance(_req, dict) and isinstance(_req.get("inputs"), list), (
    f"expected a dict with an 'inputs' list, got {type(_req).__name__}: {str(_req)[:200]}"
)
_decoded = _serve.decode_request(_json.dumps(_req).encode())  # the server's own codec
assert _np.array_equal(_decoded.inputs["input"], _rows), (
    f"the request decodes to {_decoded.inputs['input'].shape} "
    f"{_decoded.inputs['input'].dtype}, expected the rows you sent, shape {_rows.shape}"
)
_root = _tempfile.mkdtemp(dir=WORK)  # removed with WORK when the kernel stops
_serve.add_model(_root, "digits", digits_onnx, max_batch_size=8)
_srv = _serve.start(_root, port=0)
try:
    _resp = _httpx.post(f"{_srv.url}/v2/models/digits/infer", json=_req, timeout=10)
finally:
    _srv.stop()
assert _resp.status_code == 200, (
    f"expected HTTP 200 from the server, got {_resp.status_code}: {_resp.text[:300]}"
)
_parsed = parse_infer_response(_resp.json())
_want = _run_onnx(digits_onnx, _rows)[0]
assert set(_parsed) == {"linear_2"}, f"expected outputs {{'linear_2'}}, got {set(_parsed)}"
assert _parsed["linear_2"].shape == (3, 10) and _parsed["linear_2"].dtype == _np.float32, (
    f"expected a float32 array of shape (3, 10), got {_parsed['linear_2'].dtype} "
    f"{_parsed['linear_2'].shape}"
)
assert _np.allclose(_parsed["linear_2"], _want, atol=1e-5), (
    "expected the parsed scores to equal onnxruntime's (within 1e-5), got a difference of up to "
    f"{_np.abs(_parsed['linear_2'] - _want).max():.2e}"
)

# %% nbgrader={"grade": true, "grade_id": "ex1-hidden", "points": 2}
import json as _json

import numpy as _np

import course.serve as _serve

_cases = {
    "ids": _np.array([[3, -1, 7]], dtype=_np.int64),
    "mask": _np.array([[True, False, True]]),
    "raw": _np.arange(6, dtype=_np.uint8).reshape(2, 3),
}
_decoded = _serve.decode_request(_json.dumps(build_infer_request(_cases)).encode()).inputs
for _name, _arr in _cases.items():
    assert _name in _decoded, f"input '{_name}' is missing from the request"
    assert _decoded[_name].dtype == _arr.dtype and _np.array_equal(_decoded[_name], _arr), (
        f"input '{_name}': expected {_arr.dtype} {_arr.shape}, the server decodes "
        f"{_decoded[_name].dtype} {_decoded[_name].shape}"
    )
_outs = [
    ("scores", _np.array([[0.5, -1.25, 2.0], [1.0, 0.0, 3.5]], _np.float32), False),
    ("label", _np.array([2, 0], _np.int64), False),
    ("flags", _np.array([[[True, False], [False, True]]]), False),
]
_body, _ = _serve.encode_response("m", "1", _outs)
_got = parse_infer_response(_json.loads(_body))
for _name, _arr, _ in _outs:
    assert _name in _got, f"output '{_name}' is missing from your parsed response"
    assert _got[_name].dtype == _arr.dtype and _got[_name].shape == _arr.shape, (
        f"output '{_name}': expected {_arr.dtype} {_arr.shape}, got "
        f"{_got[_name].dtype} {_got[_name].shape}"
    )
    assert _np.array_equal(_got[_name], _arr), (
        f"output '{_name}': expected {_arr.tolist()}, got {_got[_name].tolist()}"
    )
### BEGIN HIDDEN TESTS
_req = build_infer_request({"x": _np.float32([1.5]), "y": _np.zeros((2, 0, 3), _np.float64)})
_d = _serve.decode_request(_json.dumps(_req).encode()).inputs
_got_shapes = (_d["x"].shape, _d["y"].shape)
assert _got_shapes == ((1,), (2, 0, 3)), (
    f"a 1-D and an empty tensor: expected shapes ((1,), (2, 0, 3)), got {_got_shapes}"
)
_f64 = _np.array([[0.1, -2.5, 1e-3]], _np.float64)
_i32 = _np.array([7, -3, 2**31 - 1], _np.int32)
_resp64, _ = _serve.encode_response(
    "m64", "1", [("score64", _f64, False), ("count32", _i32, False)]
)
_parsed64 = parse_infer_response(_json.loads(_resp64))
for _key64, _arr64 in (("score64", _f64), ("count32", _i32)):
    _out64 = _parsed64.get(_key64)
    _got64 = None if _out64 is None else (_out64.dtype, _out64.shape, _out64.tolist())
    assert _got64 == (_arr64.dtype, _arr64.shape, _arr64.tolist()), (
        f"output '{_key64}' (FP64 and INT32 outputs): expected {_arr64.dtype} {_arr64.shape} "
        f"{_arr64.tolist()}, got {_got64}"
    )
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 (debug, 3 points): a client that breaks in production
#
# A colleague's client worked in their notebook on a handful of images and fails in production.
# It is below, with what it does against a server whose `digits` model has
# `max_batch_size: 16`; fix the first error and the next one appears (there are three). Write a fixed `classify_remote(url, model_name, images)` that returns
# the predicted labels (`int64` array of length N) for **any** number N ≥ 1 of images (an
# `N × 64` array of any float dtype), for **any** single-input, single-output classifier model
# on that server: read the input name, output name and `max_batch_size` from the server
# (`GET {url}/v2/models/{model_name}` gives the metadata, `.../config` the configuration),
# never assume them. Use `httpx` (or `urllib`) with JSON bodies.


# %%
def classify_remote_broken(url: str, model_name: str, images: np.ndarray) -> np.ndarray:
    datatype = {"float64": "FP64", "float32": "FP32"}[images.dtype.name]
    body = {
        "inputs": [
            {
                "name": "pixels",
                "shape": list(images.shape),
                "datatype": datatype,
                "data": images.ravel().tolist(),
            }
        ]
    }
    reply = httpx.post(f"{url}/v2/models/{model_name}/infer", json=body, timeout=10)
    if reply.status_code != 200:
        raise RuntimeError(f"HTTP {reply.status_code}: {reply.json()['error']}")
    scores = np.array(reply.json()["outputs"][0]["data"]).reshape(len(images), -1)
    return scores.argmax(axis=1)


EX_REPO = WORK / "exercise-models"
course.serve.add_model(EX_REPO, "digits", digits_onnx, max_batch_size=16)
with course.serve.start(EX_REPO, port=0) as demo_server:
    try:
        print(
            classify_remote_broken(demo_server.url, "digits", split.X_test[:40].astype(np.float64))
        )
    except RuntimeError as exc:
        print(f"40 images, float64: {exc}")


# %% nbgrader={"solution": true, "grade_id": "ex2-client"}
def classify_remote(url: str, model_name: str, images: np.ndarray) -> np.ndarray:
    ### BEGIN SOLUTION
    meta = httpx.get(f"{url}/v2/models/{model_name}", timeout=10).json()
    config = httpx.get(f"{url}/v2/models/{model_name}/config", timeout=10).json()
    input_name, output_name = meta["inputs"][0]["name"], meta["outputs"][0]["name"]
    step = config.get("max_batch_size", 0) or len(images)
    images = np.asarray(images, dtype=np.float32)
    labels = []
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        body = {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(chunk.shape),
                    "datatype": "FP32",
                    "data": chunk.ravel().tolist(),
                }
            ]
        }
        reply = httpx.post(f"{url}/v2/models/{model_name}/infer", json=body, timeout=10)
        reply.raise_for_status()
        out = next(o for o in reply.json()["outputs"] if o["name"] == output_name)
        labels.append(np.array(out["data"], dtype=np.float32).reshape(out["shape"]).argmax(1))
    return np.concatenate(labels).astype(np.int64)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex2-visible", "points": 1}
import tempfile as _tempfile

import numpy as _np

import course.serve as _serve
from course.verify import run_onnx as _run_onnx

_root = _tempfile.mkdtemp(dir=WORK)  # removed with WORK when the kernel stops
_serve.add_model(_root, "digits", digits_onnx, max_batch_size=16)
_images = split.X_test[:10].astype(_np.float64)
_srv = _serve.start(_root, port=0)
try:
    _got = classify_remote(_srv.url, "digits", _images)
finally:
    _srv.stop()
_want = _run_onnx(digits_onnx, _images.astype(_np.float32))[0].argmax(1)
_got = _np.asarray(_got)
assert _got.shape == (10,), f"expected 10 labels, got shape {_got.shape}"
assert _np.array_equal(_got, _want), f"expected labels {_want.tolist()}, got {_got.tolist()}"

# %% nbgrader={"grade": true, "grade_id": "ex2-hidden", "points": 2}
import tempfile as _tempfile

import numpy as _np
import onnx as _onnx

import course.serve as _serve
from course.verify import run_onnx as _run_onnx

### BEGIN HIDDEN TESTS
_root = _tempfile.mkdtemp(dir=WORK)  # removed with WORK when the kernel stops
_serve.add_model(_root, "digits", digits_onnx, max_batch_size=16)
_renamed = _onnx.compose.add_prefix(digits_onnx, "v2_")  # input v2_input, output v2_linear_2
_serve.add_model(_root, "renamed", _renamed, max_batch_size=8)
_images = _np.random.default_rng(7).random((45, 64))  # float64, more rows than max_batch_size
_want = _run_onnx(digits_onnx, _images.astype(_np.float32))[0].argmax(1)
_srv = _serve.start(_root, port=0)
try:
    _big = _np.asarray(classify_remote(_srv.url, "digits", _images))
    _other = _np.asarray(classify_remote(_srv.url, "renamed", _images[:20]))
finally:
    _srv.stop()
assert _big.shape == (45,), (
    f"45 images, max_batch_size 16: expected 45 labels, got shape {_big.shape}"
)
assert _np.array_equal(_big, _want), (
    f"45 images: expected the model's 45 labels, got {int((_big != _want).sum())} different "
    f"(first at index {int(_np.argmax(_big != _want))}: expected "
    f"{_want[_np.argmax(_big != _want)]}, got {_big[_np.argmax(_big != _want)]})"
)
assert _other.shape == (20,) and _np.array_equal(_other, _want[:20]), (
    "a model whose input is 'v2_input' (max_batch_size 8): expected 20 labels equal to the "
    f"model's, got {_other.tolist()[:20]}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 (reason, 3 points): read the server's statistics
#
# Write `batching_summary(before, after)`: given two snapshots of one model's statistics (the
# `model_stats[0]` entry of `GET /v2/models/{name}/stats`, like `stats_before` and
# `stats_after` above), return a dict for what happened **between** them:
#
# - `"requests"`: successful requests (`inference_stats.success.count`),
# - `"rows"`: rows inferred (`inference_count`),
# - `"executions"`: model runs (`execution_count`),
# - `"mean_batch"`: rows per model run,
# - `"runs_saved"`: the fraction of model runs batching saved compared with one run per
#   request, `1 - executions / requests`.
#
# Raise `ValueError` when no model run happened between the snapshots.


# %% nbgrader={"solution": true, "grade_id": "ex3-stats"}
def batching_summary(before: dict, after: dict) -> dict:
    ### BEGIN SOLUTION
    requests = (
        after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"]
    )
    rows = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    if executions <= 0:
        raise ValueError("no model run between the two snapshots")
    return {
        "requests": requests,
        "rows": rows,
        "executions": executions,
        "mean_batch": rows / executions,
        "runs_saved": 1 - executions / requests,
    }
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex3-visible", "points": 1}
_s = batching_summary(stats_before, stats_after)
_rows = stats_after["inference_count"] - stats_before["inference_count"]
_runs = stats_after["execution_count"] - stats_before["execution_count"]
assert _s["rows"] == _rows and _s["executions"] == _runs, (
    f"expected {_rows} rows and {_runs} executions between the snapshots, got {_s['rows']} and "
    f"{_s['executions']}"
)
assert abs(_s["mean_batch"] - _rows / _runs) < 1e-9, (
    f"expected mean_batch {_rows / _runs:.3f}, got {_s['mean_batch']}"
)


# %% nbgrader={"grade": true, "grade_id": "ex3-hidden", "points": 2}
def _snapshot(success: int, rows: int, runs: int) -> dict:
    return {
        "inference_count": rows,
        "execution_count": runs,
        "inference_stats": {"success": {"count": success, "ns": 0}, "fail": {"count": 0, "ns": 0}},
    }


_s = batching_summary(_snapshot(10, 40, 10), _snapshot(16, 64, 12))  # 6 requests of 4 rows, 2 runs
for _key, _want in {
    "requests": 6,
    "rows": 24,
    "executions": 2,
    "mean_batch": 12.0,
    "runs_saved": 1 - 2 / 6,
}.items():
    assert abs(_s.get(_key, float("nan")) - _want) < 1e-9, (
        f"6 requests of 4 rows each in 2 runs: '{_key}' should be {_want:.4g}, got {_s.get(_key)!r}"
    )
try:
    batching_summary(_snapshot(5, 5, 5), _snapshot(5, 5, 5))
except ValueError:
    pass
else:
    raise AssertionError("no run between the snapshots: expected ValueError, nothing was raised")
### BEGIN HIDDEN TESTS
_s = batching_summary(_snapshot(0, 0, 0), _snapshot(3, 3, 3))
assert abs(_s["runs_saved"]) < 1e-12 and _s["mean_batch"] == 1.0, (
    "3 requests of 1 row in 3 runs (no batching): expected runs_saved 0 and mean_batch 1.0, got "
    f"{_s['runs_saved']!r} and {_s['mean_batch']!r}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Inference servers: Triton and TensorRT
#
# **Why it matters.** In production you rarely write the server: you hand a model repository to
# an inference server (NVIDIA Triton, KServe, Seldon MLServer, TorchServe) and configure it. The
# skills that transfer are the repository layout, the configuration, the protocol, and knowing
# what a GPU backend such as TensorRT needs from your model.
#
# ### 2.1 Triton's model repository and `config.pbtxt`
#
# Triton reads the same layout as above. Its `config.pbtxt` is a protobuf text message of type
# `ModelConfig`; `course.triton_config` builds one from the ONNX file and validates it with
# Triton's own schema (shipped inside `tritonclient`) plus the checks Triton's ONNX Runtime
# backend makes against the model. Triton itself is not installed here (it runs as a Linux
# service, usually a container with GPUs), so we validate and then serve the folder with
# `course.serve`.

# %%
config_text = triton_config.model_config(
    digits_onnx,
    "digits",
    max_batch_size=32,
    dynamic_batching=True,
    max_queue_delay_microseconds=1000,
    instance_count=2,
)
print(config_text)

# %% [markdown]
# With `max_batch_size > 0`, `dims` leave out the batch dimension: Triton adds it. Writing the
# full shape is the most common mistake; here is what Triton says about it, and about a wrong
# data type, reproduced by the validator:

# %%
mistakes = {
    "batch dimension in dims": config_text.replace("dims: 64", "dims: -1\n  dims: 64"),
    "wrong data type": config_text.replace("TYPE_FP32", "TYPE_FP64", 1),
    "unknown field": config_text.replace("max_batch_size", "max_batch"),
}
for what, text in mistakes.items():
    try:
        triton_config.check_config(text, digits_onnx, name="digits")
    except triton_config.TritonConfigError as exc:
        print(f"{what}:\n  {exc.problems[0]}\n")

# %%
TRITON = WORK / "triton-repository"
triton_config.write_model(TRITON, "digits", digits_onnx, config_text)
print(triton_config.repository_tree(TRITON))
print("course.serve loads it:", course.serve.load_repository(TRITON).names())

# %% [markdown]
# ### 2.2 One protocol, several servers
#
# The Open Inference Protocol (KServe's "v2" protocol, adopted by Triton, Seldon MLServer and
# others) fixes the HTTP endpoints and the JSON:
#
# | method | path | what |
# |---|---|---|
# | GET | `/v2/health/live`, `/v2/health/ready` | is the server up, ready |
# | GET | `/v2` | server metadata (name, version, extensions) |
# | GET | `/v2/models/{name}[/versions/{v}]` | model metadata: inputs, outputs, datatypes, shapes |
# | GET | `/v2/models/{name}/ready` | can the model answer |
# | POST | `/v2/models/{name}[/versions/{v}]/infer` | inference |
#
# The same endpoints exist as gRPC methods (`ServerLive`, `ModelMetadata`, `ModelInfer`, ...;
# `tritonclient.grpc` is the gRPC twin of the HTTP client). What a client may rely on is this
# core; everything else is an **extension**, and a server lists the ones it implements in its
# metadata (`GET /v2` → `extensions`). Section 1 used three of Triton's: the binary tensor data
# (`tritonclient`'s default encoding), `GET /v2/models/{name}/config` (Exercise 2 reads
# `max_batch_size` from it) and `GET /v2/models/{name}/stats` (Exercise 3). So the code of
# Section 1 is not portable as it stands:
#
# - **Triton**: runs unchanged, only the address differs (`InferenceServerClient("triton:8000")`).
# - **KServe** (an `InferenceService` running, say, MLServer or KServe's Python server): the JSON
#   `infer` request of Exercise 1 works, but `/config` and `/stats` are Triton's, not the
#   protocol's, so the code that reads them needs another source for `max_batch_size` and the
#   statistics; binary tensor data is supported by some runtimes and not others (check the
#   metadata). And the address is not a host name alone: KServe's ingress routes by the HTTP
#   `Host` header (`<service>.<namespace>.<domain>`), so a client that connects to the ingress IP
#   sends that header with every request (`httpx.post(url, headers={"Host": ...})`).
#
# A portable client asks first. What `course.serve` says about itself, and which call of this
# lesson needs which extension:

# %%
LESSON_CALLS = {
    "JSON infer (Exercise 1)": None,
    "binary tensors (tritonclient's default)": "binary_tensor_data",
    "GET .../config (Exercise 2)": "model_configuration",
    "GET .../stats (Exercise 3)": "statistics",
}
with course.serve.start(TRITON, port=0) as probe:
    server_metadata = httpx.get(f"{probe.url}/v2", timeout=10).json()
offered = set(server_metadata.get("extensions", []))
print(server_metadata["name"], server_metadata["version"], "lists the extensions", sorted(offered))
for call, extension in LESSON_CALLS.items():
    verdict = (
        "core protocol"
        if extension is None
        else (
            f"needs '{extension}': " + ("offered here" if extension in offered else "NOT offered")
        )
    )
    print(f"  {call:42s} {verdict}")

# %% [markdown]
# *What to notice*: the check costs one request at start-up, and it turns a 404 in production
# into a clear message before the first request. The test of Exercise 1 sent your JSON to
# `course.serve`; Triton and the KServe runtimes accept the same body.
#
# ### 2.3 The TensorRT execution provider
#
# TensorRT compiles a network into an *engine* tuned for one GPU, one precision and a range of
# input shapes. Through ONNX Runtime's `TensorrtExecutionProvider` (or Triton's TensorRT
# accelerator for ONNX models) that means three things to provide:
#
# - **shape profiles**: for each dynamic dimension a minimum, an optimum and a maximum; inputs
#   outside the range force a rebuild (or fail);
# - **an engine cache** (and a timing cache) on disk: building an engine takes seconds to
#   minutes, so without a cache every process start pays it again;
# - **precision** and a workspace size for the builder. FP16 is a switch (`trt_fp16_enable`).
#   INT8 is no longer a switch: TensorRT 10.1 deprecated the calibrators of *implicit* quantization
#   (`IInt8EntropyCalibrator2` and friends, which the `trt_int8_enable` and
#   `trt_int8_calibration_table_name` options drive) in favour of **explicit quantization**: the
#   model itself carries `QuantizeLinear`/`DequantizeLinear` pairs with their scales, exactly
#   the QDQ model Lesson 4's static quantization writes, and TensorRT fuses them into int8
#   kernels. FP8 (Hopper GPUs and later) and INT4 weights come the same way, as Q/DQ nodes;
#   TensorRT 11 removes the implicit route and its precision flags (NVIDIA's "TensorRT 10.x to
#   11.x" migration guide).
#
# And one artefact to ship instead of a cache directory: an **EPContext model** (Lesson 4,
# §2.3). With `trt_dump_ep_context_model` (or the session option `ep.context_enable`), plus
# `trt_ep_context_file_path` and `trt_dump_ep_context_embed_mode`, the first session writes an
# ONNX file whose `EPContext` node holds the built engine (embedded, or a path beside it);
# production machines load that file and skip the build. The engine is valid for one GPU
# architecture and one TensorRT version, so build it per target, in CI, from the `.onnx`.
#
# It all needs an NVIDIA GPU, the `onnxruntime-gpu` package and TensorRT libraries matching its
# CUDA version. First, what runs anywhere: the explicitly quantized (QDQ) model TensorRT wants
# for INT8, made on this CPU with the calibration route of Lesson 4:

# %%
from course import quantize

qdq_report = quantize.quantize_static_int8(
    digits_onnx, WORK / "digits.qdq.onnx", split.X_train[:128], latency_repeat=3
)
qdq_ops = inspect.operator_histogram(onnx.load(WORK / "digits.qdq.onnx"))
print({op: n for op, n in qdq_ops.items() if "uantizeLinear" in op or op in ("Gemm", "MatMul")})
context_options = {
    "trt_dump_ep_context_model": "True",
    "trt_ep_context_file_path": str(WORK / "digits_ctx.onnx"),
    "trt_dump_ep_context_embed_mode": "1",
}
print("EPContext options to add to the provider options:", context_options)

# %% [markdown]
# The TensorRT run itself, where the provider exists (it is skipped with a message where it
# does not):

# %%
trt_options = triton_config.tensorrt_provider_options(
    digits_onnx, batch=(1, 8, 32), cache_dir=WORK / "trt-cache", fp16=True
)
print("providers of this onnxruntime:", ort.get_available_providers())
if triton_config.tensorrt_available():
    path = WORK / "digits.onnx"
    onnx.save(digits_onnx, path)
    for attempt in ("first session (builds the engine)", "second session (engine cache)"):
        started = time.perf_counter()
        trt_session = ort.InferenceSession(
            str(path), providers=triton_config.tensorrt_providers(trt_options)
        )
        print(f"{attempt}: {time.perf_counter() - started:.1f} s")
    trt_out = trt_session.run(None, {"input": split.X_test[:8]})[0]
    cpu_out = verify.run_onnx(digits_onnx, split.X_test[:8])[0]
    print(f"max |TensorRT fp16 - CPU fp32| = {np.abs(trt_out - cpu_out).max():.2e}")
else:
    print("TensorrtExecutionProvider is not available on this machine: skipping the TensorRT run.")
    print("These are the provider options the lesson would pass:")
    for key, value in trt_options.items():
        print(f"  {key} = {value}")

# %% [markdown]
# In Triton, the same choice is a section of `config.pbtxt`. The validator accepts it;
# `course.serve`, which runs on the CPU only, refuses what it does not implement instead of
# silently ignoring it:

# %%
trt_config = triton_config.model_config(
    digits_onnx,
    "digits",
    max_batch_size=32,
    tensorrt={"precision_mode": "FP16", "max_workspace_size_bytes": "1073741824"},
)
print(trt_config[trt_config.index("optimization") :])
trt_repo = WORK / "triton-tensorrt"
triton_config.write_model(trt_repo, "digits", digits_onnx, trt_config)
try:
    course.serve.load_repository(trt_repo)
except course.serve.ConfigError as exc:
    print("course.serve:", exc)

# %% [markdown]
# *What to notice* in this section: the repository layout and the protocol are shared by the
# servers, the configuration is not (Triton's `config.pbtxt`, KServe's `InferenceService`
# resource); validate a configuration against the model before deploying it, and check that
# the server you use really implements every key you set.
#
# ## Exercise 4 (build, 3 points): a Triton configuration by hand
#
# Write `write_config(model, name, max_batch_size, max_queue_delay_us)` returning the text of a
# `config.pbtxt` for an ONNX model (an `onnx.ModelProto` whose inputs and outputs all have a
# dynamic first dimension) with: the `name`, `platform: "onnxruntime_onnx"`, the
# `max_batch_size`, one `input` entry per graph input and one `output` entry per graph output
# (`name`, `data_type` such as `TYPE_FP32`, `TYPE_UINT8`, `TYPE_INT64`, and `dims` without the
# batch dimension, `-1` for any other dimension of variable size, such as a sequence length),
# and `dynamic_batching` with `max_queue_delay_microseconds`. Triton requires
# at least one dim: a tensor whose only dimension is the batch (shape `[N]`) is written
# `dims: [ 1 ]` with `reshape: { shape: [ ] }`.
#
# Write the text yourself (f-strings, or Triton's protobuf with `google.protobuf.text_format`):
# the tests disable `course.triton_config.model_config` while they call your function.


# %% nbgrader={"solution": true, "grade_id": "ex4-config"}
def write_config(model, name: str, max_batch_size: int, max_queue_delay_us: int) -> str:
    ### BEGIN SOLUTION
    types = {
        1: "TYPE_FP32",
        2: "TYPE_UINT8",
        3: "TYPE_INT8",
        5: "TYPE_INT16",
        6: "TYPE_INT32",
        7: "TYPE_INT64",
        9: "TYPE_BOOL",
        10: "TYPE_FP16",
        11: "TYPE_FP64",
    }
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {max_batch_size}"]
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim][1:]
            shape = (
                f"dims: [ {', '.join(map(str, dims))} ]"
                if dims
                else "dims: [ 1 ] reshape: { shape: [ ] }"
            )
            lines.append(
                f'{kind} {{ name: "{value.name}" data_type: {types[tensor.elem_type]} {shape} }}'
            )
    lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}")
    return "\n".join(lines) + "\n"
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex4-visible", "points": 1}
import tempfile as _tempfile
from unittest import mock as _mock

import course.serve as _serve
from course import triton_config as _tc


def _call_without_generator(*args):
    with _mock.patch.object(
        _tc,
        "model_config",
        side_effect=AssertionError(
            "write the configuration yourself: model_config is disabled in this test"
        ),
    ):
        return write_config(*args)


_text = _call_without_generator(digits_onnx, "digits", 16, 500)
assert isinstance(_text, str), f"expected the config text (a str), got {type(_text).__name__}"
_cfg = _tc.check_config(_text, digits_onnx, name="digits")  # Triton's schema and checks
assert (_cfg.max_batch_size, len(_cfg.input), len(_cfg.output)) == (16, 1, 1), (
    f"expected max_batch_size 16 with 1 input and 1 output entry, got {_cfg.max_batch_size}, "
    f"{len(_cfg.input)} input(s), {len(_cfg.output)} output(s)"
)
assert _cfg.dynamic_batching.max_queue_delay_microseconds == 500, (
    "expected dynamic_batching with max_queue_delay_microseconds 500, got "
    f"{_cfg.dynamic_batching.max_queue_delay_microseconds if _cfg.HasField('dynamic_batching') else 'no dynamic_batching'}"
)
_root = _tempfile.mkdtemp(dir=WORK)  # removed with WORK when the kernel stops
_tc.write_model(_root, "digits", digits_onnx, _text)
_loaded = _serve.load_repository(_root).get("digits").config
assert _loaded.max_batch_size == 16 and _loaded.batching, (
    "expected course.serve to read max_batch_size 16 with batching on, got max_batch_size "
    f"{_loaded.max_batch_size}, batching {_loaded.batching}"
)

# %% nbgrader={"grade": true, "grade_id": "ex4-hidden", "points": 2}
import numpy as _np
from onnx import TensorProto as _TP
from onnx import helper as _helper
from onnx import numpy_helper as _nh

from course import triton_config as _tc

_graph = _helper.make_graph(
    [
        _helper.make_node("Cast", ["pixels"], ["f"], to=_TP.FLOAT),
        _helper.make_node("MatMul", ["f", "W"], ["logits"]),
        _helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ],
    "raw_classifier",
    [_helper.make_tensor_value_info("pixels", _TP.UINT8, ["N", 64])],
    [
        _helper.make_tensor_value_info("logits", _TP.FLOAT, ["N", 10]),
        _helper.make_tensor_value_info("label", _TP.INT64, ["N"]),
    ],
    [_nh.from_array(_np.zeros((64, 10), _np.float32), "W")],
)
_raw_model = _helper.make_model(_graph, opset_imports=[_helper.make_opsetid("", 18)], ir_version=10)
_text = _call_without_generator(_raw_model, "raw", 4, 0)
_problems = _tc.validate_config(_text, _raw_model, name="raw")
assert not _problems, "expected a configuration Triton accepts, got these problems:\n" + "\n".join(
    _problems
)
_cfg = _tc.parse_config(_text)
assert sorted(t.name for t in _cfg.input) == ["pixels"] and sorted(t.name for t in _cfg.output) == [
    "label",
    "logits",
], (
    f"expected input pixels and outputs label, logits; got {[t.name for t in _cfg.input]} and "
    f"{[t.name for t in _cfg.output]}"
)
### BEGIN HIDDEN TESTS
assert (_cfg.max_batch_size, _cfg.HasField("dynamic_batching")) == (4, True), (
    "raw model, max_batch_size 4: expected (max_batch_size, dynamic_batching) == (4, True), got "
    f"({_cfg.max_batch_size}, {_cfg.HasField('dynamic_batching')})"
)


def _entries4(cfg):
    """name -> (data type, dims, reshape or None) for every input and output entry."""
    dtype = type(cfg).DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name["data_type"]
    return {
        t.name: (
            dtype.enum_type.values_by_number[t.data_type].name,
            list(t.dims),
            list(t.reshape.shape) if t.HasField("reshape") else None,
        )
        for t in [*cfg.input, *cfg.output]
    }


_want_raw = {
    "pixels": ("TYPE_UINT8", [64], None),
    "logits": ("TYPE_FP32", [10], None),
    "label": ("TYPE_INT64", [1], []),
}
assert _entries4(_cfg) == _want_raw, f"raw model: expected {_want_raw}, got {_entries4(_cfg)}"
_mixed = _helper.make_graph(  # int64 ids, a bool mask, an fp16 gain of shape [N]; two outputs
    [
        _helper.make_node("Cast", ["ids"], ["idf"], to=_TP.FLOAT),
        _helper.make_node("Cast", ["mask"], ["maskf"], to=_TP.FLOAT),
        _helper.make_node("Mul", ["idf", "maskf"], ["kept"]),
        _helper.make_node("ReduceSum", ["kept", "axes"], ["total"], keepdims=0),
        _helper.make_node("Cast", ["gain"], ["gainf"], to=_TP.FLOAT),
        _helper.make_node("Mul", ["total", "gainf"], ["score"]),
        _helper.make_node("Cast", ["kept"], ["kept32"], to=_TP.INT32),
    ],
    "mixed",
    [
        _helper.make_tensor_value_info("ids", _TP.INT64, ["N", 7]),
        _helper.make_tensor_value_info("mask", _TP.BOOL, ["N", 7]),
        _helper.make_tensor_value_info("gain", _TP.FLOAT16, ["N"]),
    ],
    [
        _helper.make_tensor_value_info("score", _TP.FLOAT, ["N"]),
        _helper.make_tensor_value_info("kept32", _TP.INT32, ["N", 7]),
    ],
    [_nh.from_array(_np.array([1], _np.int64), "axes")],
)
_mixed_model = _helper.make_model(
    _mixed, opset_imports=[_helper.make_opsetid("", 18)], ir_version=10
)
_mixed_text = _call_without_generator(_mixed_model, "mixed", 8, 250)
_mixed_problems = _tc.validate_config(_mixed_text, _mixed_model, name="mixed")
assert not _mixed_problems, (
    "mixed types: expected a configuration Triton accepts, got these problems:\n"
    + "\n".join(_mixed_problems)
)
_mixed_cfg = _tc.parse_config(_mixed_text)
_want_mixed = {
    "ids": ("TYPE_INT64", [7], None),
    "mask": ("TYPE_BOOL", [7], None),
    "gain": ("TYPE_FP16", [1], []),
    "score": ("TYPE_FP32", [1], []),
    "kept32": ("TYPE_INT32", [7], None),
}
assert _entries4(_mixed_cfg) == _want_mixed, (
    f"mixed types: expected {_want_mixed}, got {_entries4(_mixed_cfg)}"
)
_got_batching = (
    _mixed_cfg.max_batch_size,
    _mixed_cfg.dynamic_batching.max_queue_delay_microseconds,
)
assert _got_batching == (8, 250), (
    f"mixed types: expected (max_batch_size, max_queue_delay_microseconds) == (8, 250), got "
    f"{_got_batching}"
)
_seq = _helper.make_graph(  # a variable sequence length: named ("T") in the input, unnamed after
    [
        _helper.make_node("Cast", ["tokens"], ["tf"], to=_TP.FLOAT),
        _helper.make_node("Unsqueeze", ["tf", "axis2"], ["tf3"]),
        _helper.make_node("Mul", ["tf3", "E"], ["embedded"]),
    ],
    "sequence",
    [_helper.make_tensor_value_info("tokens", _TP.INT64, ["N", "T"])],
    [_helper.make_tensor_value_info("embedded", _TP.FLOAT, ["N", None, 4])],
    [
        _nh.from_array(_np.array([2], _np.int64), "axis2"),
        _nh.from_array(_np.ones((1, 4), _np.float32), "E"),
    ],
)
_seq_model = _helper.make_model(_seq, opset_imports=[_helper.make_opsetid("", 18)], ir_version=10)
_seq_text = _call_without_generator(_seq_model, "sequence", 8, 100)
_seq_problems = _tc.validate_config(_seq_text, _seq_model, name="sequence")
assert not _seq_problems, (
    "sequence model: expected a configuration Triton accepts, got these problems:\n"
    + "\n".join(_seq_problems)
)
_want_seq = {"tokens": ("TYPE_INT64", [-1], None), "embedded": ("TYPE_FP32", [-1, 4], None)}
_got_seq = _entries4(_tc.parse_config(_seq_text))
assert _got_seq == _want_seq, (
    f"a variable sequence length (dims -1): expected {_want_seq}, got {_got_seq}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Advanced transformations and graph editing
#
# **Why it matters.** The exported graph is rarely the graph you want to serve: its names leak
# into the API, the preprocessing lives in a Python client that drifts from the training code,
# the postprocessing is done three times in three clients. Editing the graph moves that work
# into the model, where every runtime and every client gets the same thing. Each edit below is
# done with a maintained library (onnx-ir, the onnxscript rewriter and optimizer, `onnx.compose`)
# and verified with ONNX Runtime and the reference evaluator against the original model.
#
# The original's outputs on raw test images are the reference for every edit:

# %%
raw_pixels = np.rint(split.X_test * 16).astype(np.uint8)  # digits pixels are 0..16 integers
x_test = split.X_test  # what the model was trained on: pixels / 16
reference_logits = verify.run_onnx(digits_onnx, x_test)[0]
print(
    "raw pixel range:",
    raw_pixels.min(),
    "to",
    raw_pixels.max(),
    "| scaled back equals the model's input:",
    np.array_equal(raw_pixels / np.float32(16), x_test),
)

# %% [markdown]
# ### 3.1 Rename inputs and outputs (onnx-ir)
#
# onnx-ir loads a model into an in-memory graph of Python objects (nodes, values, their uses)
# that stays consistent as you edit it, then writes a ModelProto back. Renaming a value renames
# it everywhere it is used.

# %%
model = ir.from_proto(digits_onnx)
ir.convenience.rename_values([model.graph.inputs[0], model.graph.outputs[0]], ["pixels", "logits"])
renamed = ir.to_proto(model)
print([i.name for i in renamed.graph.input], "->", [o.name for o in renamed.graph.output])
verify.verify(renamed, x_test, {"logits": reference_logits})

# %% [markdown]
# ### 3.2 Insert preprocessing
#
# Clients should send what they have: raw 0..16 pixel values as `uint8` (a quarter of the bytes
# of float32). We insert `Cast` and a multiplication by 1/16 in front of the first node, give
# the graph a new `uint8` input, and point every use of the old input to the scaled tensor.

# %%
model = ir.from_proto(renamed)
graph = model.graph
old_input = graph.inputs[0]
new_input = ir.val("pixels_u8", ir.DataType.UINT8, ir.Shape([old_input.shape[0], 64]))
scale = ir.val("pixel_scale", const_value=ir.tensor(np.float32(1 / 16), name="pixel_scale"))
graph.register_initializer(scale)
cast = ir.node("Cast", [new_input], {"to": ir.DataType.FLOAT}, name="to_float")
scaled = ir.node("Mul", [cast.outputs[0], scale], name="scale_pixels")
old_input.replace_all_uses_with(scaled.outputs[0])
graph.insert_before(graph[0], [cast, scaled])
graph.inputs[0] = new_input
ir.convenience.rename_values([new_input], ["pixels"])
with_preprocessing = ir.to_proto(model)
print(
    "input now:",
    with_preprocessing.graph.input[0].name,
    onnx.helper.tensor_dtype_to_string(
        with_preprocessing.graph.input[0].type.tensor_type.elem_type
    ),
)
verify.verify(with_preprocessing, raw_pixels, {"logits": reference_logits})

# %% [markdown]
# ### 3.3 Append an argmax
#
# Every client computes `argmax` over the scores; the model can do it once. We append a
# `Softmax` (probabilities) and an `ArgMax` over them (the label), as new graph outputs.

# %%
model = ir.from_proto(with_preprocessing)
graph = model.graph
logits = graph.outputs[0]
softmax = ir.node("Softmax", [logits], {"axis": -1}, name="softmax")
argmax = ir.node("ArgMax", [softmax.outputs[0]], {"axis": -1, "keepdims": 0}, name="argmax")
graph.extend([softmax, argmax])
probabilities, label = softmax.outputs[0], argmax.outputs[0]
ir.convenience.rename_values([probabilities, label], ["probabilities", "label"])
probabilities.dtype, probabilities.shape = ir.DataType.FLOAT, logits.shape  # graph outputs
label.dtype, label.shape = ir.DataType.INT64, ir.Shape([logits.shape[0]])  # need a type
graph.outputs.extend([probabilities, label])
with_argmax = ir.to_proto(model)
print("outputs:", [o.name for o in with_argmax.graph.output])
reference_label = reference_logits.argmax(axis=1)
verify.verify(with_argmax, raw_pixels, {"logits": reference_logits, "label": reference_label})

# %% [markdown]
# ### 3.4 Remove nodes
#
# The server's clients want scores and labels, not probabilities, and the `ArgMax` does not need
# the `Softmax` (softmax preserves the order, so the largest score wins either way). We point
# the `ArgMax` at the scores, drop the `probabilities` output, and remove the `Softmax` node.

# %%
model = ir.from_proto(with_argmax)
graph = model.graph
softmax_node = graph.node("softmax")
argmax_node = graph.node("argmax")
argmax_node.replace_input_with(0, softmax_node.inputs[0])
graph.outputs.remove(softmax_node.outputs[0])
graph.remove(softmax_node, safe=True)  # safe: refuses if anything still used its output
served = ir.to_proto(model)
print("operators:", inspect.operator_histogram(served))
verify.verify(served, raw_pixels, {"logits": reference_logits, "label": reference_label})

# %% [markdown]
# ### 3.5 Replace nodes with a rewrite rule
#
# The onnxscript **rewriter** matches a pattern of nodes and replaces it with another, in every
# place it occurs. A real reason to do so: ONNX Runtime's 4-bit weight-only quantizer
# (`MatMulNBitsQuantizer`, made for large language models) quantizes `MatMul` nodes and leaves
# `Gemm` alone (measured below). Rewriting each `Gemm` as `MatMul` + `Add`, then letting the
# optimizer fold the transposed weights, makes the layers quantizable.

# %%
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from onnxscript import optimizer
from onnxscript.rewriter import pattern

# importing the quantizer sets the root logger to INFO (a side effect of that module): undo it
logging.getLogger().setLevel(logging.WARNING)


def gemm_pattern(op, x, w, b):
    return op.Gemm(x, w, b, transB=1)


def matmul_add(op, x, w, b):
    return op.Add(op.MatMul(x, op.Transpose(w, perm=[1, 0])), b)


rule = pattern.RewriteRule(gemm_pattern, matmul_add)
model = ir.from_proto(served)
print("Gemm nodes replaced:", rule.apply_to_model(model))
rewritten = optimizer.optimize(ir.to_proto(model))  # folds Transpose(constant weights)
print("operators:", inspect.operator_histogram(rewritten))
verify.verify(rewritten, raw_pixels, {"logits": reference_logits, "label": reference_label})

# %%
logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
quantized = {}
for name, model_proto in (("with Gemm", served), ("with MatMul + Add", rewritten)):
    quantizer = MatMulNBitsQuantizer(
        onnx.ModelProto.FromString(model_proto.SerializeToString()),
        block_size=32,
        is_symmetric=True,
    )
    quantizer.process()
    q_model = quantizer.model.model
    labels = verify.run_onnx(q_model, raw_pixels)[1]
    quantized[name] = {
        "4-bit MatMulNBits nodes": inspect.operator_histogram(q_model).get("MatMulNBits", 0),
        "size (kB)": round(q_model.ByteSize() / 1000, 1),
        "test accuracy": round(float((labels == split.y_test).mean()), 4),
    }
print(f"accuracy before quantization: {(reference_label == split.y_test).mean():.4f}")
pd.DataFrame(quantized).T

# %% [markdown]
# ### 3.6 Fold constants
#
# Preprocessing written as a formula, here in onnxscript as you would write it in NumPy, leaves
# arithmetic on constants in the graph: every request would recompute `16 - 0`. The optimizer
# evaluates every node whose inputs are all constants, then removes what is no longer used.

# %%
from onnxscript import FLOAT, UINT8, script
from onnxscript import opset18 as op

PIXEL_MIN, PIXEL_MAX = 0.0, 16.0


@script()
def preprocess(raw: UINT8["batch", 64]) -> FLOAT["batch", 64]:
    x = op.Cast(raw, to=1)
    return (x - PIXEL_MIN) / (PIXEL_MAX - PIXEL_MIN)


as_written = preprocess.to_model_proto()
folded = optimizer.optimize(as_written)
print("as written:", inspect.operator_histogram(as_written))
print("folded:    ", inspect.operator_histogram(folded))
verify.verify(folded, raw_pixels[:8], [x_test[:8]])

# %% [markdown]
# ### 3.7 Merge two models
#
# `onnx.compose.merge_models` connects outputs of one model to inputs of another (`io_map`),
# prefixing names if they clash. Preprocessing kept as its own small model, then merged in
# front of the classifier, gives the same service model as the in-place edit of 3.2:

# %%
folded.opset_import[0].version = renamed.opset_import[0].version  # merge needs equal opsets
folded.ir_version = renamed.ir_version
merged = onnx.compose.merge_models(
    folded, renamed, io_map=[("return_val", "pixels")], prefix1="pre_"
)
print(
    "inputs:",
    [i.name for i in merged.graph.input],
    "outputs:",
    [o.name for o in merged.graph.output],
)
verify.verify(merged, raw_pixels, {"logits": reference_logits})

# %%
inspect.draw_graph(served, title="The served digits model after Section 3's edits")

# %% [markdown]
# *What to see*: raw `uint8` pixels enter, `Cast` and the scaling run first, then the three
# layers, and the graph returns the scores and the label computed by `ArgMax`.
#
# *What to notice* in this section: every edit was verified against the original on the whole
# test set, by two independent runtimes. Graph edits fail silently more often than loudly (a
# dangling input, a wrong axis): verification is part of the edit.

# %% [markdown]
# ## Exercise 5 (build, 3 points): move the scaler into the model
#
# A scikit-learn pipeline standardizes its inputs (`StandardScaler`: `(x - mean_) / scale_`)
# before a logistic regression. Only the regression was converted to ONNX (`logreg_onnx` below,
# input `X`, outputs `label` and `probabilities`), so every client must standardize its data
# itself. Write `with_standardization(model, mean, std)` returning a new ONNX model whose input
# keeps the **same name, dtype (float32) and shape** but takes raw features, and which computes
# `(x - mean) / std` before the original graph. `mean` and `std` are float arrays of one value
# per feature. Do not modify `model`. Any graph library is fine (onnx-ir, `onnx.helper`,
# `onnx.compose`).

# %%
from skl2onnx import to_onnx

pipeline = data.train_sklearn_classifier(split)  # StandardScaler + LogisticRegression
scaler, logreg = pipeline.steps[0][1], pipeline.steps[-1][1]
logreg_onnx = to_onnx(logreg, split.X_train[:1], options={"zipmap": False}, target_opset=18)
print(
    "inputs:",
    [i.name for i in logreg_onnx.graph.input],
    "outputs:",
    [o.name for o in logreg_onnx.graph.output],
)


# %% nbgrader={"solution": true, "grade_id": "ex5-standardize"}
def with_standardization(
    model: onnx.ModelProto, mean: np.ndarray, std: np.ndarray
) -> onnx.ModelProto:
    ### BEGIN SOLUTION
    edited = ir.from_proto(model)  # from_proto copies nothing back: the original stays as it is
    graph = edited.graph
    old = graph.inputs[0]
    raw = ir.val(old.name + "_raw", old.dtype, old.shape)
    mean_v = ir.val(
        "std_mean", const_value=ir.tensor(np.asarray(mean, np.float32), name="std_mean")
    )
    std_v = ir.val("std_std", const_value=ir.tensor(np.asarray(std, np.float32), name="std_std"))
    graph.register_initializer(mean_v)
    graph.register_initializer(std_v)
    sub = ir.node("Sub", [raw, mean_v])
    div = ir.node("Div", [sub.outputs[0], std_v])
    old.replace_all_uses_with(div.outputs[0])
    graph.insert_before(graph[0], [sub, div])
    graph.inputs[0] = raw
    name = old.name
    ir.convenience.rename_values([old], [name + "_standardized"])
    ir.convenience.rename_values([raw], [name])
    return ir.to_proto(edited)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex5-visible", "points": 1}
import onnx as _onnx

_before = logreg_onnx.SerializeToString()
_fused = with_standardization(logreg_onnx, scaler.mean_, scaler.scale_)
assert isinstance(_fused, _onnx.ModelProto), (
    f"expected an onnx.ModelProto, got {type(_fused).__name__}"
)
_onnx.checker.check_model(_fused, full_check=True)
assert logreg_onnx.SerializeToString() == _before, (
    "expected the original model unchanged, got it modified: edit a copy"
)
_inp = _fused.graph.input[0]
assert (len(_fused.graph.input), _inp.name, _inp.type.tensor_type.elem_type) == (1, "X", 1), (
    "expected one float32 input named 'X', got "
    f"{[(i.name, i.type.tensor_type.elem_type) for i in _fused.graph.input]}"
)

# %% nbgrader={"grade": true, "grade_id": "ex5-hidden", "points": 2}
import numpy as _np

from course.verify import run_onnx as _run_onnx

for _rows in (split.X_test[:7], split.X_test[100:133]):
    _label, _proba = _run_onnx(_fused, _rows)
    _want = pipeline.predict_proba(_rows)
    assert _np.allclose(_proba, _want, atol=1e-5), (
        f"batch of {len(_rows)} raw rows: expected the scikit-learn pipeline's probabilities "
        f"(within 1e-5), got a difference of up to {_np.abs(_proba - _want).max():.2e}"
    )
    assert _np.array_equal(_label, pipeline.predict(_rows)), (
        f"batch of {len(_rows)} raw rows: expected the pipeline's labels "
        f"{pipeline.predict(_rows).tolist()}, got {_np.asarray(_label).tolist()}"
    )
### BEGIN HIDDEN TESTS
_m, _s = _np.linspace(0, 1, 64), _np.linspace(0.5, 2, 64)
_x = split.X_test[:5]
_got = _run_onnx(with_standardization(logreg_onnx, _m, _s), _x)[1]
_exp = _run_onnx(logreg_onnx, ((_x - _m) / _s).astype(_np.float32))[1]
assert _np.allclose(_got, _exp, atol=1e-5), (
    "another mean and std: expected the probabilities of (x - mean) / std in the original model "
    f"(within 1e-5), got a difference of up to {_np.abs(_got - _exp).max():.2e}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Complex architectures
#
# **Why it matters.** MLPs export trivially. Models with sequences of varying length, loops,
# branches that depend on the data, or operators the exporter has never heard of are where
# exports break, and where a model that exported fine fails on the first input of a different
# shape. Each architecture below is exported with the dynamo exporter, verified, and timed.
#
# ### 4.1 A transformer encoder with a dynamic sequence length
#
# A one-layer encoder over token ids (embedding, self-attention, feed-forward), mean-pooled into
# four class scores. Untrained weights: exporting does not care what the weights are.
#
# Requests to a text model carry sequences of every length. Lesson 3 showed the trap for the
# batch axis: a dimension you do not declare dynamic is frozen at the example's size, the export
# verifies on the example, and the first request of another size fails with "Got invalid
# dimensions". `course.convert.torch_to_onnx` declares only axis 0 dynamic by default, so the
# sequence axis needs declaring too: that is Exercise 6.


# %%
class TinyEncoder(torch.nn.Module):
    def __init__(self, vocab: int = 32, width: int = 32, heads: int = 4, layers: int = 1):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        layer = torch.nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=64, dropout=0.0, batch_first=True
        )
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(width, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


torch.manual_seed(0)
encoder = TinyEncoder().eval()
tokens = torch.randint(0, 32, (2, 10))
with torch.no_grad():
    print("PyTorch scores for 2 sequences of 10 tokens:\n", encoder(tokens).numpy().round(3))

# %% [markdown]
# ## Exercise 6 (build, 4 points): a truly dynamic sequence length
#
# Write `export_encoder(model, tokens)` that exports a sequence model like `TinyEncoder` (input:
# an `int64` tensor `batch × sequence`) to ONNX with **both** the batch and the sequence length
# dynamic, and returns the `onnx.ModelProto`. Use the dynamo exporter (`torch.onnx.export(...,
# dynamo=True, dynamic_shapes=...)` or `course.convert.torch_to_onnx(..., dynamic_shapes=...)`).
# The tests run it with ONNX Runtime at several batch sizes and lengths (from 2 to 40 tokens) and
# compare with PyTorch.


# %% nbgrader={"solution": true, "grade_id": "ex6-encoder"}
def export_encoder(model: torch.nn.Module, tokens: torch.Tensor) -> onnx.ModelProto:
    ### BEGIN SOLUTION
    batch = torch.export.Dim("batch")
    length = torch.export.Dim("length", min=2, max=512)
    conversion = convert.torch_to_onnx(
        model,
        tokens,
        dynamic_shapes=({0: batch, 1: length},),
        verify_inputs=torch.randint(0, 32, (3, 17)),
    )
    return conversion.model
    ### END SOLUTION


# %%
encoder_onnx = export_encoder(encoder, tokens)

# %% nbgrader={"grade": true, "grade_id": "ex6-visible", "points": 2}
import numpy as _np
import onnx as _onnx
import torch as _torch

from course.verify import run_onnx as _run_onnx

assert isinstance(encoder_onnx, _onnx.ModelProto), (
    f"expected an onnx.ModelProto, got {type(encoder_onnx).__name__}"
)
_gen = _torch.Generator().manual_seed(3)
for _shape in ((2, 10), (3, 7)):
    _t = _torch.randint(0, 32, _shape, generator=_gen)
    with _torch.no_grad():
        _want = encoder(_t).numpy()
    _got = _run_onnx(encoder_onnx, _t.numpy())[0]
    assert _got.shape == _want.shape and _np.allclose(_got, _want, atol=1e-4), (
        f"tokens of shape {_shape}: expected scores of shape {_want.shape} close to PyTorch's, "
        f"got shape {_got.shape}"
        + (f", max error {_np.abs(_got - _want).max():.2e}" if _got.shape == _want.shape else "")
    )

# %% nbgrader={"grade": true, "grade_id": "ex6-hidden", "points": 2}
import numpy as _np
import torch as _torch

from course.verify import run_onnx as _run_onnx

### BEGIN HIDDEN TESTS
_gen = _torch.Generator().manual_seed(4)
for _shape in ((1, 2), (5, 40), (4, 23)):
    _t = _torch.randint(0, 32, _shape, generator=_gen)
    with _torch.no_grad():
        _want = encoder(_t).numpy()
    try:
        _got = _run_onnx(encoder_onnx, _t.numpy())[0]
    except Exception as _exc:
        raise AssertionError(
            f"tokens of shape {_shape}: onnxruntime failed: {str(_exc)[:200]}"
        ) from None
    assert _np.allclose(_got, _want, atol=1e-4), (
        f"tokens of shape {_shape}: expected PyTorch's scores (within 1e-4), got a max error of "
        f"{_np.abs(_got - _want).max():.2e}"
    )
### END HIDDEN TESTS

# %% [markdown]
# Your exported encoder, if Exercise 6 is done: its input shape and the operators attention
# became (`LayerNormalization`, `Softmax`, batched `MatMul`s):

# %%
if "encoder_onnx" in globals() and isinstance(encoder_onnx, onnx.ModelProto):
    print("input:", inspect.summary(encoder_onnx).inputs[0])
    print("operators:", inspect.operator_histogram(encoder_onnx))
else:
    print("Exercise 6 is not done yet: export_encoder did not return a model.")

# %% [markdown]
# ### 4.2 An LSTM over sequences of any length
#
# Recurrent layers export as ONNX's own `LSTM` operator, which loops over the time steps inside
# the runtime. The time axis must be dynamic too. Here `torch.export.Dim.AUTO` lets the tracer
# mark every axis it can keep dynamic (a named `Dim` makes `torch.export` reject this model,
# and the exporter falls back to slower strategies); verifying at another length proves the
# axis stayed dynamic:


# %%
class SequenceClassifier(torch.nn.Module):
    def __init__(self, features: int = 8, hidden: int = 16, classes: int = 3):
        super().__init__()
        self.lstm = torch.nn.LSTM(features, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, classes)

    def forward(self, series: torch.Tensor) -> torch.Tensor:
        _, (last_hidden, _) = self.lstm(series)
        return self.head(last_hidden[-1])


torch.manual_seed(0)
lstm = SequenceClassifier().eval()
series = torch.randn(2, 12, 8)
lstm_conv = convert.torch_to_onnx(
    lstm,
    series,
    dynamic_shapes=({0: torch.export.Dim.AUTO, 1: torch.export.Dim.AUTO},),
    verify_inputs=torch.randn(5, 31, 8),
)
print("operators:", inspect.operator_histogram(lstm_conv.model))
lstm_conv.report

# %% [markdown]
# ### 4.3 Data-dependent control flow: `torch.cond` becomes an ONNX `If`
#
# A Python `if` on a tensor's *value* cannot be captured (Lesson 3 showed the exporter refusing
# it): `torch.cond(predicate, true_fn, false_fn, operands)` puts both branches in the graph and
# decides at run time. A gate that runs a different layer on large inputs; we verify on inputs
# that take each branch:


# %%
class Gated(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.small = torch.nn.Linear(4, 4)
        self.large = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(
            x.abs().mean() > 1.0,  # a decision on the data
            lambda t: self.large(t),
            lambda t: torch.relu(self.small(t)),
            (x,),
        )


torch.manual_seed(0)
gated = Gated().eval()
small_x, large_x = torch.randn(3, 4) * 0.1, torch.randn(3, 4) * 10
gated_conv = convert.torch_to_onnx(gated, small_x, verify_inputs=large_x)
print("operators:", inspect.operator_histogram(gated_conv.model))
gated_conv.report

# %% [markdown]
# ### 4.4 A custom operator
#
# Some layers are custom operators: kernels registered with `torch.library`, opaque to
# `torch.export`. Here a "scaled swish" `x · sigmoid(1.5 x)`, whose eager implementation could
# be a hand-written kernel. The exporter has no translation for it:


# %%
@torch.library.custom_op("course::scaled_swish", mutates_args=())
def scaled_swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.5 * x)


@scaled_swish.register_fake
def _(x):
    return torch.empty_like(x)


class SwishNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.course.scaled_swish(self.linear(x))


torch.manual_seed(0)
swish_net = SwishNet().eval()
swish_x = torch.randn(4, 8)
try:
    convert.torch_to_onnx(swish_net, swish_x)
except convert.ConversionError as exc:
    print(str(exc).splitlines()[0][:300])

# %% [markdown]
# We give the exporter a translation written in onnxscript: a function in our own domain,
# `com.course`, with type annotations (without them the exporter cannot count the function's
# outputs). The exporter inlines it into standard operators, so every runtime can run it:

# %%
import onnxscript

COURSE_OPS = onnxscript.values.Opset("com.course", 1)


@script(COURSE_OPS, default_opset=op)
def ScaledSwish(x: FLOAT) -> FLOAT:
    return op.Mul(x, op.Sigmoid(op.Mul(op.CastLike(1.5, x), x)))


@contextlib.contextmanager
def quiet_exporter():
    """Keep the exporter's progress and deprecation messages off stderr for one call."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export")]
    loggers += [
        logging.getLogger(n) for n in logging.root.manager.loggerDict if n.startswith("torch.onnx.")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


with quiet_exporter():
    program = torch.onnx.export(
        swish_net,
        (swish_x,),
        dynamo=True,
        verbose=False,
        opset_version=18,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        custom_translation_table={torch.ops.course.scaled_swish.default: ScaledSwish},
    )
swish_onnx = program.model_proto
with torch.no_grad():
    swish_expected = swish_net(swish_x).numpy()
print("operators:", inspect.operator_histogram(swish_onnx))
verify.verify(swish_onnx, swish_x.numpy(), [swish_expected])

# %% [markdown]
# To keep the operator as **one node** (for a runtime with a fused kernel: a TensorRT plugin,
# an onnxruntime-extensions custom op), a rewrite rule with `as_function=True` packs the matched
# nodes into a model-local function in the `com.course` domain. Runtimes without a kernel for
# it run the function's body, so the model still runs everywhere:


# %%
def swish_body(op, x, beta):
    return op.Mul(x, op.Sigmoid(op.Mul(beta, x)))


def swish_node(op, x, beta):
    return op.ScaledSwish(x, beta, _domain="com.course")


model = ir.from_proto(swish_onnx)
print(
    "patterns packed:",
    pattern.RewriteRule(swish_body, swish_node, as_function=True).apply_to_model(model),
)
packed = ir.to_proto(model)
print("nodes:", [f"{n.domain or 'ai.onnx'}::{n.op_type}" for n in packed.graph.node])
print("functions:", [f"{f.domain}::{f.name}" for f in packed.functions])
verify.verify(packed, swish_x.numpy(), [swish_expected])

# %% [markdown]
# ### 4.5 How fast are they?
#
# Each exported model in ONNX Runtime against PyTorch eager, on one small input, with the
# medians and tails of `course.bench` (single runs of tiny models; your machine's numbers):

# %%
cases = {
    "LSTM (2 x 12 steps)": (lstm, lstm_conv.model, series),
    "torch.cond gate (3 x 4)": (gated, gated_conv.model, large_x),
    "custom op (4 x 8)": (swish_net, packed, swish_x),
}
if "encoder_onnx" in globals() and isinstance(encoder_onnx, onnx.ModelProto):
    cases = {"encoder (2 x 10 tokens)": (encoder, encoder_onnx, tokens), **cases}
timing_rows = []
for name, (module, onnx_model, example) in cases.items():
    runner = bench.session_runner(
        bench.ort_session(onnx_model, intra_op_threads=1), example.numpy()
    )
    with torch.no_grad():
        eager = bench.benchmark(lambda m=module, x=example: m(x), repeat=20, warmup=3)
    onnx_time = bench.benchmark(runner, repeat=20, warmup=3)
    timing_rows.append(
        {
            "model": name,
            "PyTorch eager (µs)": eager.median * 1e6,
            "onnxruntime (µs)": onnx_time.median * 1e6,
            "onnxruntime p90 (µs)": onnx_time.p90 * 1e6,
        }
    )
timings = pd.DataFrame(timing_rows).set_index("model")
timings.round(1)

# %%
fig, ax = plt.subplots(figsize=(8, 3.4))
position = np.arange(len(timings))
ax.barh(
    position + 0.2,
    timings["PyTorch eager (µs)"],
    height=0.4,
    color=OKABE_ITO[0],
    label="PyTorch eager",
)
ax.barh(
    position - 0.2, timings["onnxruntime (µs)"], height=0.4, color=OKABE_ITO[1], label="onnxruntime"
)
ax.set_yticks(position, timings.index)
ax.set(xlabel="median latency per call (µs)", title="One small input, single thread (onnxruntime)")
ax.legend(fontsize="small")
plt.show()

# %% [markdown]
# *What to see*: for inputs this small, per-call overhead dominates, and ONNX Runtime's is
# usually lower than eager PyTorch's; which wins, by how much, is your machine's answer.
#
# *What to notice* in this section: each architecture exported only once every varying axis,
# every data-dependent branch and every custom operator was spelt out for the exporter, and
# each export was verified on inputs other than the example it was traced with.

# %% [markdown]
# ### 4.6 A decoder that generates text: exporting the KV cache
#
# **Why it matters.** The language models you use every day are *decoders*: they produce one
# token per call, append it to the sequence and call again. Without help, call *n* recomputes
# the keys and values of attention for all *n* tokens so far, though only the newest one is
# new. A **KV cache** keeps them: the model takes the cached keys and values of earlier tokens
# as inputs (`past_key_values`) and returns them one position longer (`present`). Exporting a
# decoder means exporting that contract, and the loop around it is yours to write.
#
# The course's decoder is a Llama-style model (rotary positions, RMSNorm, SwiGLU, grouped-query
# attention) built from a `transformers` config with nothing downloaded, trained for a few
# seconds on the Zen of Python (from CPython's `this` module) with its own byte-level BPE
# tokenizer, and saved with `save_pretrained`: a local Hugging Face folder. Set-up
# (`python -m course.artefacts`) built, trained and exported it; these calls find the files in
# the course cache. transformers 5 keeps the cache in a `DynamicCache` object, which
# `torch.export` cannot take as a graph input, so `course.generation` exports a small wrapper
# that takes and returns the cache as flat tensors, with `torch.onnx.export(dynamo=True)`.

# %%
from course import generation

decoder_dir = generation.build_decoder()  # the local Hugging Face folder (cached)
decoder_path = generation.decoder_onnx(with_past=True, folder=decoder_dir)
decoder, _ = generation.load_decoder(decoder_dir)
training = json.loads((decoder_dir / "training.json").read_text())
export_record = json.loads(decoder_path.with_suffix(".json").read_text())
print(
    f"{training['parameters']:,} parameters, trained {training['steps']} steps on "
    f"{training['tokens']} tokens of {training['text']}: loss {training['losses'][0]:.2f} -> "
    f"{training['losses'][-1]:.2f} ({training['seconds']:.0f} s at set-up)"
)
print(export_record["route"])
print(
    f"export {export_record['export_seconds']:.0f} s at set-up; parity with PyTorch passed: "
    f"{export_record['parity_passed']} ({export_record['parity_cases']} output comparisons)"
)

# %% [markdown]
# The graph's inputs and outputs, read from the file. Symbolic dimensions are named by the
# exporter after the `torch.export.Dim`s the wrapper declared:

# %%
io_table = pd.DataFrame(generation.decoder_io(decoder_path))
io_table["shape"] = io_table["shape"].map(lambda dims: " x ".join(map(str, dims)))
io_table.set_index(["kind", "name"])

# %% [markdown]
# Each layer has a key and a value tensor of shape *batch x kv_heads x past_sequence x
# head_dim*. The model has 4 query heads but only 2 key/value heads (grouped-query attention:
# two query heads share one cached head), which halves the cache. Its size per token is
# arithmetic on the config, checked here against a real step: the prompt goes in with an
# **empty** past (length 0), the next token with the 7 positions it returned.

# %%
cfg = decoder.config
session_dec = bench.ort_session(decoder_path, intra_op_threads=1)
prompt_ids = generation.encode("The Zen of Python, by Tim Peters\n\nBeautiful is", decoder_dir)
past_names = [i.name for i in session_dec.get_inputs() if i.name.startswith("past_key_values")]
head_dim = cfg.hidden_size // cfg.num_attention_heads
empty_past = {
    n: np.zeros((1, cfg.num_key_value_heads, 0, head_dim), np.float32) for n in past_names
}
step1 = session_dec.run(
    None,
    {
        "input_ids": np.array([prompt_ids]),
        "attention_mask": np.ones((1, len(prompt_ids)), np.int64),
        **empty_past,
    },
)
next_id = int(step1[0][0, -1].argmax())
step2 = session_dec.run(
    None,
    {
        "input_ids": np.array([[next_id]]),
        "attention_mask": np.ones((1, len(prompt_ids) + 1), np.int64),
        **dict(zip(past_names, step1[1:], strict=True)),
    },
)
print(f"prompt of {len(prompt_ids)} tokens -> logits {step1[0].shape}, present {step1[1].shape}")
print(f"1 more token        -> logits {step2[0].shape}, present {step2[1].shape}")
bytes_per_token = generation.past_bytes_per_token(cfg)
measured = sum(a.nbytes for a in step2[1:]) / (len(prompt_ids) + 1)
print(f"cache per token: {bytes_per_token} bytes from the config, {measured:.0f} bytes measured")

# %% [markdown]
# Now the loop, three ways, 48 new tokens each: Hugging Face's own `generate` in PyTorch (the
# reference), onnxruntime **with** the cache (one token per call after the prompt), and
# onnxruntime **without** it (the whole sequence every call, through the same graph with an
# empty past). Greedy decoding takes the most likely token each time, so the three must agree
# token for token.

# %%
NEW_TOKENS = 48
generation.greedy_generate_onnx(session_dec, prompt_ids, 4)  # warm-up
runs = {
    "torch": generation.greedy_generate_torch(decoder_dir, prompt_ids, NEW_TOKENS, model=decoder),
    "cache": generation.greedy_generate_onnx(session_dec, prompt_ids, NEW_TOKENS),
    "no cache": generation.greedy_generate_onnx(
        session_dec, prompt_ids, NEW_TOKENS, use_cache=False
    ),
}
for run in runs.values():
    diff = run.first_difference(runs["torch"])
    verdict = "same tokens as PyTorch" if diff is None else f"differs from token {diff}"
    print(f"{run.engine:32s} {len(run.tokens)} tokens, {verdict}")
print("\n" + generation.decode(runs["cache"].sequence, decoder_dir))

# %% [markdown]
# The cost of each token, measured in those loops (the first token of each run also reads the
# whole prompt, the *prefill*):

# %%
cost = pd.DataFrame(
    {
        run.engine: {
            "first token incl. prompt (ms)": run.seconds[0] * 1e3,
            "median later token (ms)": run.decode_ms_per_token,
            "last token (ms)": run.seconds[-1] * 1e3,
            "total (ms)": sum(run.seconds) * 1e3,
        }
        for run in runs.values()
    }
).T
print(f"machine load (1-min average) while measuring: {bench.machine_info()['load_average_1min']}")
cost.round(2)

# %% [markdown]
# Per token, against its position. Single calls of a small model are easily disturbed by
# other work on the machine, so each onnxruntime loop runs three times and the plot keeps the
# fastest time of each token (`Generation.best_of`):

# %%
repeats = {
    use_cache: generation.Generation.best_of(
        [
            generation.greedy_generate_onnx(
                session_dec, prompt_ids, NEW_TOKENS, use_cache=use_cache
            )
            for _ in range(3)
        ]
    )
    for use_cache in (True, False)
}
show(
    generation.latency_figure(
        [repeats[True], repeats[False]],
        title=f"{NEW_TOKENS} new tokens, onnxruntime on one thread: with and without the KV cache",
    )
)

# %% [markdown]
# *What to see*: with the cache, every token after the first costs about the same, whatever
# its position; without it, the cost climbs with the position, because call *n* recomputes
# all *n* tokens. Summed over a generation of *N* tokens that is about *N²/2* token-passes
# against *N*. The price of the cache is memory, growing by the bytes per token printed above
# for every sequence in flight, which is what serving systems for large models manage.
# PyTorch's `generate` uses a cache too; its per-token cost includes Python's overhead per
# call, which a small model makes visible.
#
# *What to notice*: the exported contract is the list of graph inputs and outputs above. Any
# loop that feeds `present.*` back as `past_key_values.*` (yours, or ONNX Runtime GenAI's in
# Lesson 8) can drive this file.

# %% [markdown]
# ## Summary
#
# - A model becomes a service behind a protocol. The core of the Open Inference Protocol (REST
#   or gRPC) is shared by Triton, KServe's runtimes and the course's server, so a 5-line JSON
#   request works against all of them; extensions (`/config`, `/stats`, binary tensors) and
#   routing (KServe's `Host` header) differ, so check the server's `extensions` first.
# - Measure a service under load: throughput and latency percentiles at several concurrencies,
#   plus the server's statistics. For tiny models the protocol dominates; dynamic batching pays
#   when the model's work dominates, and costs latency when the load is light.
# - Triton's `config.pbtxt` leaves the batch dimension out of `dims`; validate it against the
#   model before deploying. TensorRT needs shape profiles and an engine cache; int8 comes from
#   a QDQ model (explicit quantization), and a prebuilt engine ships as an EPContext model.
# - Edit graphs with a maintained library (onnx-ir, the onnxscript rewriter and optimizer,
#   `onnx.compose`) and verify every edit against the original.
# - Transformers need every varying axis declared dynamic; LSTMs export as one operator; data
#   decisions need `torch.cond`; custom operators need a translation (and can ship as functions).
# - A decoder exports with its KV cache as flat tensors (`past_key_values.*` in, `present.*`
#   out); with the cache each new token costs about the same at any position, without it the
#   cost grows with the position.
#
# **Common pitfalls**
# - Load-testing with one client, or only measuring the median: the tail (p99) is what users feel.
# - Dynamic batching with a queue delay on a lightly loaded service: every request waits.
# - NumPy's float64 default in clients: the server expects FP32 and says 400.
# - Requests larger than `max_batch_size`, and clients that hard-code input names.
# - `dims` with the batch dimension in `config.pbtxt`; configuration keys a server ignores.
# - Relying on Triton's `/config` or `/stats` against a server that does not list them.
# - Exporting with only the batch dynamic and testing at the example's sequence length only.
# - Graph edits without verification; edits that mutate a model other code still uses.
#
# **Further reading**
# - *KServe documentation*: "Open Inference Protocol (V2 Inference Protocol)".
# - *NVIDIA Triton Inference Server documentation*: "Model Repository", "Model Configuration"
#   (dynamic batching, reshape), "ONNX Runtime backend" (TensorRT optimization).
# - *ONNX Runtime documentation*: "TensorRT Execution Provider" (shape profiles, engine caches)
#   and "EP Context Design" (EPContext models).
# - *NVIDIA TensorRT documentation*: "Working with Quantized Types" (explicit quantization) and
#   the "TensorRT 10.x to 11.x" migration guide.
# - *onnx-ir documentation* ("Getting started", the convenience functions) and *onnxscript
#   documentation*: "Pattern-based rewriting" and the optimizer.
# - *PyTorch tutorials*: "Export a model with control flow to ONNX" and "Extending the ONNX
#   exporter operator support".
# - Little, J. D. C., "A Proof for the Queuing Formula: L = λW", Operations Research, 1961.
# - Dean, J. and Barroso, L. A., "The Tail at Scale", Communications of the ACM, 2013.
