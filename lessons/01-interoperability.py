# %% [markdown]
# # Lesson 1 — Why model interoperability matters
#
# A model is trained once, in one framework, and then used for years somewhere else: in a C++
# service, on a phone, in a browser, on an accelerator whose vendor ships its own runtime. This
# lesson shows why moving a model between those worlds is hard, what goes wrong, and how an
# exchange format such as ONNX turns a tangle of converters into a hub. Every number below is
# measured on your machine when you run the notebook.
#
# **After this lesson you will be able to**
# 1. explain the N × M converter problem and compute what a hub format saves;
# 2. recognise five ways a moved model breaks (operator gaps, numerical drift, fixed shapes,
#    preprocessing left behind, version skew) and reproduce each one;
# 3. place PMML, ONNX, Core ML, TorchScript, TFLite, StableHLO, GGUF and others on a timeline
#    and say who stands behind each;
# 4. export the same task from scikit-learn, PyTorch and Keras to ONNX, run all three with ONNX
#    Runtime, and measure how far each export is from its source.
#
# **Prerequisites**: Python and NumPy; having trained a model in any framework helps.
# **Estimated time**: 55-110 minutes.
# (For a first-time learner; estimated from the notebook's length, not yet timed with learners:
# the text read at 120-180 words per minute, half a minute to a minute to run and read each
# code cell, 10-20 minutes per exercise.)
#
# **How to check your answers**: in JupyterLab press *Validate* (nbgrader's button in the
# notebook toolbar). Without an instructor, run the visible test cells after each exercise:
# each one prints nothing when your answer is right and says what was expected and what was
# got when it is not. Hidden tests check more cases when the notebook is graded.

# %%
import time

LESSON_START = time.perf_counter()

import matplotlib.pyplot as plt
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from course import convert, data, parity, verify
from course.palette import PALE_GREY

OKABE_ITO = parity.OKABE_ITO
print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}")

# %% [markdown]
# ## 1. What model interoperability is, and why it matters
#
# *Interoperability* means that a model trained with one tool can be run, unchanged in
# behaviour, by another: a different runtime (ONNX Runtime, TensorRT, OpenVINO), a different
# language (C++, Java, JavaScript), or a different device (a phone's NPU, a browser's GPU).
# Research picks the framework that makes experiments fast; production picks the runtime that
# makes inference cheap; the two are rarely the same program.
#
# Without a common format, every framework needs its own converter to every runtime: with
# *N* frameworks and *M* runtimes that is up to **N × M** converters, each written, tested and
# kept in step with two moving targets. A *hub* format needs one exporter per framework and one
# importer per runtime: **N + M**. The diagram is drawn from the lists below; the counts in its
# titles are counted from the lines it draws.

# %%
FRAMEWORKS = ["PyTorch", "TensorFlow / Keras", "scikit-learn", "JAX", "XGBoost"]
RUNTIMES = ["ONNX Runtime", "TensorRT", "OpenVINO", "phone NPU", "web browser"]


def draw_ecosystem(ax, frameworks, runtimes, hub=None):
    """Draw frameworks (left) linked to runtimes (right), directly or through a hub.

    Returns the number of lines drawn, i.e. converters to maintain."""
    left = np.linspace(0, 1, len(frameworks))[::-1]
    right = np.linspace(0, 1, len(runtimes))[::-1]
    links = []
    if hub is None:
        links = [((0, y0), (1, y1)) for y0 in left for y1 in right]
    else:
        links = [((0, y0), (0.5, 0.5)) for y0 in left] + [((0.5, 0.5), (1, y1)) for y1 in right]
        ax.scatter([0.5], [0.5], s=1800, color=OKABE_ITO[2], zorder=3, label="hub format")
        ax.annotate(hub, (0.5, 0.5), ha="center", va="center", color="white", fontsize=9)
    for (x0, y0), (x1, y1) in links:
        ax.plot([x0, x1], [y0, y1], color=OKABE_ITO[7], alpha=0.45, lw=1)
    ax.scatter([0] * len(left), left, s=120, color=OKABE_ITO[0], zorder=3, label="framework")
    ax.scatter([1] * len(right), right, s=120, color=OKABE_ITO[1], zorder=3, label="runtime")
    for name, y in zip(frameworks, left, strict=True):
        ax.annotate(name, (-0.04, y), ha="right", va="center")
    for name, y in zip(runtimes, right, strict=True):
        ax.annotate(name, (1.04, y), ha="left", va="center")
    ax.set(xlim=(-0.75, 1.75), ylim=(-0.12, 1.12), xticks=[], yticks=[])
    ax.set_xlabel("training side  →  deployment side (no units)")
    return len(links)


fig, axes = plt.subplots(1, 2, figsize=(12, 4))
direct = draw_ecosystem(axes[0], FRAMEWORKS, RUNTIMES)
axes[0].set_title(f"Pairwise converters: N × M = {direct}")
through_hub = draw_ecosystem(axes[1], FRAMEWORKS, RUNTIMES, hub="ONNX")
axes[1].set_title(f"Through a hub format: N + M = {through_hub}")
fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=3, markerscale=0.5)
fig.suptitle(f"{len(FRAMEWORKS)} frameworks, {len(RUNTIMES)} runtimes: converters to maintain")
fig.tight_layout(rect=(0, 0.08, 1, 1))
plt.show()

# %% [markdown]
# *What to see*: every line is a converter someone must maintain; compare the counts in the
# two titles. The pairwise count grows with the product of the two lists, the hub's with their
# sum.
#
# The hub has a price too: the format must be able to express what every framework can
# compute, and every runtime must implement all of it. The rest of this lesson is about where
# that promise leaks. (Exercise 1 asks when the hub does *not* pay off.)

# %% [markdown]
# ### A first round trip, in one minute
#
# Train on one side, deploy on the other. We use the course's small reference data:
# scikit-learn's bundled 8 × 8 handwritten digits (no download). The features are the pixel
# intensities (0-16) divided by 16, float32 values in [0, 1]. A scikit-learn pipeline (a scaler
# and a logistic regression, trained in seconds and cached on disk) is exported to one `.onnx`
# file.

# %%
split = data.load_digits_split()
X_test, y_test = split.X_test, split.y_test
pipe = data.train_sklearn_classifier(split)
workdir = data.workdir("lesson01")  # removed when the kernel stops
sklearn_conversion = convert.sklearn_to_onnx(pipe, X_test[:8], workdir / "digits.onnx")
print(f"{split.X_train.shape[0]} training images, {X_test.shape[0]} test images")
print(f"wrote {sklearn_conversion.path.name}: {sklearn_conversion.path.stat().st_size:,} bytes")

# %% [markdown]
# The deployment side needs neither scikit-learn nor the training code: ONNX Runtime and NumPy
# read the file and predict.

# %%
session = ort.InferenceSession(str(sklearn_conversion.path), providers=["CPUExecutionProvider"])
labels, probabilities = session.run(None, {session.get_inputs()[0].name: X_test[:8]})
print("ONNX Runtime predicts:", labels)
print("scikit-learn predicts:", pipe.predict(X_test[:8]))
print("true labels:          ", y_test[:8])

# %% [markdown]
# *What to notice*: one file carried the scaler and the classifier across; the two sides
# agree. The next section shows the ways this goes wrong.

# %% [markdown]
# ## 2. Common challenges when models move
#
# Besides the scikit-learn pipeline we need a PyTorch network for the same digits (two hidden
# layers, trained in seconds and cached).

# %%
mlp = data.train_torch_mlp(split)
print(mlp)

# %% [markdown]
# ### 2.1 Operator coverage gaps
#
# A converter translates each operation of the source framework into operators of the target
# format. When one has no translation, the conversion stops. Here a perfectly ordinary
# scikit-learn pipeline uses `SplineTransformer`, which the scikit-learn-to-ONNX converter
# (`skl2onnx`) does not cover. The course's `convert.sklearn_to_onnx` calls skl2onnx and
# re-raises its error with a hint.

# %%
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer

spline_pipe = make_pipeline(SplineTransformer(n_knots=3), LogisticRegression(max_iter=300))
spline_pipe.fit(split.X_train[:, :8], split.y_train)
try:
    convert.sklearn_to_onnx(spline_pipe, split.X_train[:5, :8])
except convert.ConversionError as exc:  # the converter's error, as the learner will meet it
    print(f"skl2onnx said: {str(exc.__cause__).splitlines()[0]}")
    print(f"hint: {exc.hint}")

# %% [markdown]
# *What to notice*: the model is fine and ONNX could express a spline; what is missing is the
# *converter's* mapping for this class. The fixes are to use a supported equivalent, or to
# register your own converter (Lesson 3). PyTorch and TensorFlow exporters fail the same way on
# operators they do not know.

# %% [markdown]
# ### 2.2 Numerical drift between runtimes
#
# Two correct implementations of the same float32 computation rarely agree to the last bit:
# they add in different orders, fuse operations, or use different math libraries. We export the
# PyTorch network (with a softmax appended, so it outputs probabilities) with the current
# exporter, `torch.onnx.export(..., dynamo=True)`, through `convert.torch_to_onnx`, which also
# runs the file with two runtimes, ONNX Runtime and ONNX's own NumPy reference evaluator, and
# compares both with PyTorch.

# %%
import torch

torch_probs_model = torch.nn.Sequential(mlp, torch.nn.Softmax(dim=1)).eval()
torch_conversion = convert.torch_to_onnx(torch_probs_model, X_test[:8])
torch_onnx = torch_conversion.model
torch_conversion


# %% [markdown]
# The conversion was checked on 8 images. Now all 450 test images, both runtimes against
# PyTorch, and the two runtimes against each other:


# %%
def torch_predict_proba(x):
    with torch.no_grad():
        return torch_probs_model(torch.from_numpy(x)).numpy()


report = verify.verify(torch_onnx, X_test, torch_predict_proba(X_test))
eps = np.finfo(np.float32).eps
ort_vs_ref = np.abs(
    verify.run_onnx(torch_onnx, X_test, runtime="onnxruntime")[0]
    - verify.run_onnx(torch_onnx, X_test, runtime="reference")[0]
).max()
rtol, atol = verify.default_tolerances(np.float32)
print(f"float32 machine epsilon:                        {eps:.2e}")
print(f"largest |PyTorch - runtime| over both runtimes: {report.max_abs_error:.2e}")
print(f"largest |ONNX Runtime - reference evaluator|:   {ort_vs_ref:.2e}")
print(f"tolerances course.verify uses for float32:      rtol {rtol:g}, atol {atol:g}")

# %% [markdown]
# *What to notice*: the differences (if any on your machine) are of the order of float32's
# machine epsilon: that is rounding, not a bug. So parity checks need a tolerance chosen from
# the data type, never `==`; a gap of 1e-2 in probabilities, on the other hand, is a bug.

# %% [markdown]
# ### 2.3 Dynamic shapes
#
# An exporter records the shapes it saw. Export with an example batch of 2 and nothing else,
# and the batch size 2 is frozen into the file; the runtime then refuses any other batch.

# %%
fixed = convert.torch_to_onnx(mlp, X_test[:2], dynamic_batch=False, verify=False).model
dims = [d.dim_value or d.dim_param for d in fixed.graph.input[0].type.tensor_type.shape.dim]
print("input shape recorded in the file:", dims)
fixed_session = ort.InferenceSession(fixed.SerializeToString(), providers=["CPUExecutionProvider"])
try:
    fixed_session.run(None, {fixed_session.get_inputs()[0].name: X_test[:5]})
except Exception as exc:  # onnxruntime's error for a batch the file does not allow
    message = " ".join(str(exc).split())
    print(f"{type(exc).__name__}: {message.split(' Please fix')[0]}")

# %%
dynamic_dims = [
    d.dim_value or d.dim_param for d in torch_onnx.graph.input[0].type.tensor_type.shape.dim
]
print("exported with dynamic_shapes={0: Dim('batch')}:", dynamic_dims)
for batch in (1, 5, len(X_test)):
    out = verify.run_onnx(torch_onnx, X_test[:batch])[0]
    print(f"  batch {batch:3d} -> output shape {out.shape}")

# %% [markdown]
# *What to notice*: declare every dimension that may vary (`dynamic_shapes` with
# `torch.export.Dim` in the current exporter; `None` in skl2onnx's input types) and test the
# exported file at several sizes, not only at the example's.

# %% [markdown]
# ### 2.4 Preprocessing that lives outside the model
#
# Training scripts often scale features in one step and fit the model in the next. Export only
# the model and the scaler stays behind in the training script: the deployed model receives raw
# features and answers confidently and wrongly. The wine data set bundled with scikit-learn
# shows it well: its 13 features range from about 0.1 to over 1,000.

# %%
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

wine = load_wine()
X_wine, y_wine = wine.data.astype(np.float32), wine.target
Xw_train, Xw_test, yw_train, yw_test = train_test_split(
    X_wine, y_wine, test_size=0.3, random_state=0, stratify=y_wine
)
scaler = StandardScaler().fit(Xw_train)  # step 1 of a typical training script
wine_clf = LogisticRegression(max_iter=1000).fit(scaler.transform(Xw_train), yw_train)  # step 2
means = Xw_train.mean(axis=0)
print(
    f"feature means range from {means.min():.2f} ({wine.feature_names[means.argmin()]}) "
    f"to {means.max():.0f} ({wine.feature_names[means.argmax()]})"
)

# %%
clf_only = convert.sklearn_to_onnx(wine_clf, Xw_train[:5])  # the classifier alone
print("the converter's own parity check:", "passed" if clf_only.passed else "FAILED")
deployed_labels = verify.run_onnx(clf_only.model, Xw_test)[0]  # raw features in, as in production
sklearn_accuracy = np.mean(wine_clf.predict(scaler.transform(Xw_test)) == yw_test)
deployed_accuracy = np.mean(deployed_labels == yw_test)
print(f"accuracy in the training script (scaled):      {sklearn_accuracy:.1%}")
print(f"accuracy of the exported classifier (raw in):   {deployed_accuracy:.1%}")
print(
    f"predictions that changed:                      "
    f"{np.mean(deployed_labels != wine_clf.predict(scaler.transform(Xw_test))):.1%}"
)

# %% [markdown]
# *What to notice*: nothing crashed and the conversion's own check passed, because it compares
# the exported classifier with the same classifier on the same inputs: the converter did its
# job. Only a check of the *whole* prediction path, raw input to answer, reveals the loss. The fix is to put the preprocessing *into* the exported model (a
# scikit-learn `Pipeline`, a Keras preprocessing layer, a step in `forward`). Exercise 2 asks
# you to do exactly that.

# %% [markdown]
# ### 2.5 Version skew
#
# An ONNX file records two versions: the *IR version* (the file format) and an *opset* per
# operator domain (which operator semantics it uses). A newer exporter may write versions an
# older runtime does not know. We simulate a file from a future exporter by stamping the next
# IR version into a copy of our model.

# %%
print("recent onnx releases (release, IR version, ai.onnx opset):")
for release, ir, opset, *_ in onnx.helper.VERSION_TABLE[-4:]:
    print(f"  onnx {release:7s} IR {ir:2d}  opset {opset}")
print(f"this file: IR {torch_onnx.ir_version}, opset {torch_onnx.opset_import[0].version}")

# %%
future = onnx.ModelProto()
future.CopyFrom(torch_onnx)
future.ir_version = onnx.IR_VERSION + 1
try:
    ort.InferenceSession(future.SerializeToString(), providers=["CPUExecutionProvider"])
except Exception as exc:  # the runtime's refusal, as a deployment would log it
    message = str(exc)
    print(f"onnxruntime {ort.__version__}: {message[message.find('Unsupported') :].strip()}")

# %% [markdown]
# *What to notice*: the fix is on the *export* side: ask the exporter for the opset the
# deployment runtime supports (`opset_version=` in PyTorch, `target_opset=` in skl2onnx,
# `opset=` in tf2onnx) and check the runtime's compatibility table. `onnx.version_converter`
# can move some models between opsets. Lesson 2 measures what this runtime accepts.

# %% [markdown]
# ## 3. A brief history of exchange formats
#
# ONNX was not the first attempt, and it is not the only format in use. Each entry below gives
# the year of the first public release or announcement (what "first" means is stated where it
# matters), who stands behind it, and what kind of format it is.

# %%
FORMATS = pd.DataFrame(
    [
        (
            "PMML",
            1997,
            "Data Mining Group (DMG)",
            "classical ML",
            "XML; v0.7 July 1997 from UIC's National Center for Data Mining, then DMG",
        ),
        (
            "PFA",
            2015,
            "Data Mining Group (DMG)",
            "classical ML",
            "JSON scoring engines; v0.8 published 2015",
        ),
        (
            "SavedModel",
            2017,
            "Google (TensorFlow)",
            "framework-native",
            "tf.saved_model public in TensorFlow 1.0, Feb 2017",
        ),
        ("Core ML", 2017, "Apple", "on-device", "announced at WWDC, June 2017"),
        (
            "TFLite",
            2017,
            "Google",
            "on-device",
            "developer preview Nov 2017; renamed LiteRT in 2024",
        ),
        (
            "ONNX",
            2017,
            "Facebook + Microsoft (now LF AI & Data)",
            "graph exchange",
            "announced September 2017",
        ),
        (
            "NNEF",
            2017,
            "Khronos Group",
            "graph exchange",
            "1.0 provisional Dec 2017, ratified Aug 2018",
        ),
        (
            "TorchScript",
            2018,
            "Facebook (PyTorch 1.0)",
            "framework-native",
            "PyTorch 1.0 preview Oct 2018, release Dec 2018",
        ),
        (
            "OpenVINO IR",
            2018,
            "Intel",
            "compiler / runtime IR",
            "OpenVINO toolkit first release, May 2018",
        ),
        (
            "StableHLO",
            2022,
            "OpenXLA (Google and partners)",
            "compiler / runtime IR",
            "work began 2022; first tagged release v0.9.0, March 2023",
        ),
        ("safetensors", 2022, "Hugging Face", "weights only", "first release 2022"),
        ("ExecuTorch", 2023, "Meta (PyTorch)", "on-device", "announced Oct 2023; alpha April 2024"),
        (
            "GGUF",
            2023,
            "ggml / llama.cpp (G. Gerganov)",
            "weights only",
            "August 2023, replacing GGML/GGJT files",
        ),
    ],
    columns=["format", "year", "behind it", "kind", "first public release"],
)
FORMATS

# %%
kinds = list(dict.fromkeys(FORMATS["kind"]))
colour = {kind: OKABE_ITO[i] for i, kind in enumerate(kinds)}
ordered = FORMATS.sort_values(["year", "format"]).reset_index(drop=True)
fig, ax = plt.subplots(figsize=(11, 5.2))
for row, fmt in ordered.iterrows():
    ax.scatter(fmt["year"], row, s=90, color=colour[fmt["kind"]], zorder=3)
    ax.annotate(
        f"{fmt['format']} ({fmt['behind it']})",
        (fmt["year"], row),
        xytext=(8, 0),
        textcoords="offset points",
        va="center",
        fontsize=9,
    )
    ax.plot([1996, fmt["year"]], [row, row], color=PALE_GREY, lw=0.8, zorder=1)
for kind in kinds:
    ax.scatter([], [], color=colour[kind], label=kind)
ax.set(
    xlim=(1996, 2031),
    ylim=(-1, len(ordered)),
    yticks=[],
    xlabel="year of first public release or announcement (calendar year)",
    title="Model exchange formats: a timeline",
)
ax.legend(title="kind of format", loc="upper left", fontsize="small")
fig.tight_layout()
plt.show()

# %% [markdown]
# *What to see*: a long gap after PMML, then a burst in 2017-2018 when deep learning moved to
# production and to phones, and a new wave from 2022 for compilers and large language models.
#
# Three families coexist. *Exchange formats* (PMML, PFA, NNEF, ONNX) are specifications owned by
# a consortium, meant to be written by many tools and read by many runtimes. *Framework-native
# formats* (SavedModel, TorchScript, and today `torch.export`) serialise one framework's
# programs. *Deployment formats* (Core ML, TFLite/LiteRT, OpenVINO IR, ExecuTorch, StableHLO,
# GGUF) belong to one runtime or compiler; safetensors and GGUF store weights, not a full
# computation graph (GGUF adds metadata that llama.cpp's known architectures interpret).
#
# **Sources** (titles, by publisher): Data Mining Group, *PMML 4.4 — General Structure* and
# *Portable Format for Analytics (PFA)* (dmg.org); Facebook/Microsoft, *Facebook and Microsoft
# introduce new open ecosystem for interchangeable AI frameworks* (September 2017); Khronos
# Group, *Khronos Group Releases NNEF 1.0 Standard for Neural Network Exchange* (20 December
# 2017); Apple, *Core ML* developer documentation (WWDC 2017); TensorFlow, *RELEASE.md: Release
# 1.0.0* and *Using the SavedModel format*; Google Developers Blog, *Announcing TensorFlow Lite*
# (November 2017); PyTorch blog, *The road to 1.0: production ready PyTorch* (May 2018); Intel,
# *OpenVINO toolkit* documentation; OpenXLA, *StableHLO Specification* and the *StableHLO
# v0.9.0* release notes; Hugging Face, *Safetensors* documentation; PyTorch blog, *PyTorch Edge:
# Enabling On-Device Inference Across Mobile and Edge Devices with ExecuTorch* (October 2023);
# ggml, *GGUF* specification (`docs/gguf.md`).

# %% [markdown]
# ## 4. ONNX and its role: one task, three frameworks, one runtime
#
# The promise of a hub format, tested: the same task (classify the digits) trained in
# scikit-learn, PyTorch and Keras; each model exported to ONNX by its own converter; all three
# files run by the same ONNX Runtime; each compared with its source framework on all the test
# images. We already have the scikit-learn and PyTorch exports; Keras comes next.
#
# Keras 3 is the default `keras` in TensorFlow 2.21. tf2onnx's `from_keras`, the call most
# tutorials show, was written for Keras 2: with the installed tf2onnx 1.17 it fails on a Keras 3
# `Sequential` model (`KeyError: 'keras_tensor_…'`, tensorflow-onnx issues #2329, #2348) and
# converts a functional one only because that model still has the `output_names` attribute
# tf2onnx reads (Lesson 3 measures both and shows why). The route that works for every Keras 3
# model: `model.export()` writes a TensorFlow SavedModel, and tf2onnx converts the SavedModel.
# `convert.keras_to_onnx` takes that route and says so in `.route`.

# %%
data.import_tensorflow()  # TensorFlow, without its start-up log lines on stderr
keras_model = data.train_keras_mlp(split)
keras_conversion = convert.keras_to_onnx(keras_model, X_test[:8])
keras_onnx = keras_conversion.model
print(keras_conversion.route)
print("passed its own parity check:", keras_conversion.passed)

# %%
sklearn_onnx = sklearn_conversion.model  # exported in section 1
print(sklearn_conversion.route)


# %% [markdown]
# Three converters, three files: what did each write? An ONNX model is a graph of standard
# operators, and the table counts them per file (`course.inspect.operator_histogram`).

# %%
from course import inspect

operators = (
    pd.DataFrame(
        {
            name: inspect.operator_histogram(model)
            for name, model in [
                ("scikit-learn", sklearn_onnx),
                ("PyTorch", torch_onnx),
                ("Keras", keras_onnx),
            ]
        }
    )
    .fillna(0)
    .astype(int)
)
operators

# %%
inspect.draw_graph(torch_onnx, title="The PyTorch export as an ONNX graph (from the file)")

# %% [markdown]
# *What to see*: each converter wrote its own operator sequence for the same task (PyTorch
# `Gemm`, Keras `MatMul` + `Add`, scikit-learn the `ai.onnx.ml` operators `Scaler` and
# `LinearClassifier`), yet one runtime executes all three, because each operator has one
# specification. The diagram reads top to bottom: input, layers with their weight shapes,
# output.


# %%
def session_for(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def keras_predict_proba(x):
    return keras_model(x, training=False).numpy()


CANDIDATES = {  # framework -> (its own prediction function, the ONNX Runtime session)
    "scikit-learn": (pipe.predict_proba, session_for(sklearn_onnx)),
    "PyTorch": (torch_predict_proba, session_for(torch_onnx)),
    "Keras": (keras_predict_proba, session_for(keras_onnx)),
}
summaries = pd.DataFrame(
    [
        parity.parity_summary(original, session, X_test, framework=name).as_dict()
        for name, (original, session) in CANDIDATES.items()
    ]
).set_index("framework")
summaries.style.format(
    {"max_abs_diff": "{:.1e}", "mean_abs_diff": "{:.1e}", "label_agreement": "{:.1%}"}
)

# %%
fig, ax = plt.subplots(figsize=(7, 3.4))
floor = 1e-10  # exact agreement (0) cannot be drawn on a log axis: shown at this floor
values = summaries["max_abs_diff"].clip(lower=floor)
ax.bar(values.index, values, color=[OKABE_ITO[i] for i in range(len(values))])
ax.axhline(eps, color=OKABE_ITO[7], ls="--", label=f"float32 epsilon ({eps:.1e})")
ax.axhline(1e-5, color=OKABE_ITO[3], ls=":", label="float32 tolerance atol (1e-5)")
ax.set(
    yscale="log",
    ylim=(floor / 2, 1e-3),
    ylabel="max |source − ONNX Runtime| (probability)",
    xlabel="source framework",
    title=f"Three frameworks, one runtime: {len(X_test)} test images each",
)
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %% [markdown]
# *What to see*: every export stays below the float32 tolerance, most near machine epsilon,
# and the predicted labels agree (table above): three converters, one runtime, one verification
# routine. A bar at the bottom of the axis means the two agreed exactly.

# %% [markdown]
# ### Try it: original and ONNX side by side
#
# Pick a framework and a test image; the widget predicts it with the original framework and
# with ONNX Runtime and shows the probabilities and the measured difference. Its logic is
# `course.parity.side_by_side`, a plain function the course's unit tests call without a
# browser; the result is drawn into an `HTML` widget.

# %%
import ipywidgets as widgets


def compare_sample(framework: str, index: int) -> parity.SideBySide:
    original, session = CANDIDATES[framework]
    return parity.side_by_side(original, session, X_test, index, framework=framework)


framework_picker = widgets.Dropdown(options=list(CANDIDATES), description="framework")
sample_picker = widgets.IntSlider(min=0, max=len(X_test) - 1, value=0, description="test image")
view = widgets.HTML()


def _update(_change=None):
    result = compare_sample(framework_picker.value, sample_picker.value)
    view.value = result.to_html(image=X_test[sample_picker.value].reshape(8, 8))


framework_picker.observe(_update, names="value")
sample_picker.observe(_update, names="value")
_update()
widgets.VBox([widgets.HBox([framework_picker, sample_picker]), view])

# %% [markdown]
# *What to notice*: the bars coincide for every framework and image; where the model is
# unsure (two tall bars), both runtimes are unsure in the same way.

# %% [markdown]
# ## Exercise 1 (reason, 3 points): when does a hub format pay off?
#
# Real ecosystems are not complete grids: a team needs only some (framework, runtime) routes.
# Write `converter_counts(routes)` where `routes` is a list of `(framework, runtime)` pairs of
# strings that must work (a pair may be listed more than once). Return a dict with two integer
# entries:
#
# - `"direct"`: converters needed without a hub, one per distinct pair;
# - `"hub"`: converters needed with a hub format, one exporter per distinct framework plus one
#   importer per distinct runtime appearing in `routes` (a tool that is both a framework and a
#   runtime, such as TensorFlow, needs both: it counts on each side).
#
# For example, `[("PyTorch", "TensorRT"), ("PyTorch", "OpenVINO")]` needs 2 direct converters
# but 3 with a hub: for sparse needs, the hub costs more.


# %% nbgrader={"solution": true, "grade_id": "ex1-counts"}
def converter_counts(routes):
    ### BEGIN SOLUTION
    pairs = set(routes)
    frameworks = {framework for framework, _ in pairs}
    runtimes = {runtime for _, runtime in pairs}
    return {"direct": len(pairs), "hub": len(frameworks) + len(runtimes)}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1-grid", "points": 1}
_grid = [
    (f, r) for f in ["PyTorch", "Keras", "scikit-learn"] for r in ["ORT", "TRT", "CoreML", "TFLite"]
]
_got = converter_counts(_grid)
assert isinstance(_got, dict), f"expected a dict, got {type(_got).__name__}"
assert _got == {"direct": 12, "hub": 7}, (
    f"3 frameworks x 4 runtimes, every pair needed: expected {{'direct': 12, 'hub': 7}}, got {_got}"
)
_kinds = {k: type(v).__name__ for k, v in _got.items()}
assert all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in _got.values()), (
    f"expected integer counts (int or a NumPy integer), got types {_kinds}"
)

# %% nbgrader={"grade": true, "grade_id": "ex1-duplicates", "points": 1}
_routes = [("PyTorch", "ORT"), ("PyTorch", "ORT"), ("Keras", "ORT"), ("PyTorch", "TRT")]
_got = converter_counts(_routes)
assert _got.get("direct") == 3, (
    f"a pair listed twice needs one converter: expected direct == 3, got {_got.get('direct')!r}"
)
assert _got.get("hub") == 4, (
    f"frameworks {{PyTorch, Keras}} + runtimes {{ORT, TRT}}: expected hub == 4, got {_got.get('hub')!r}"
)

# %% nbgrader={"grade": true, "grade_id": "ex1-sparse", "points": 1}
_sparse = [("PyTorch", "TensorRT"), ("PyTorch", "OpenVINO")]
_got = converter_counts(_sparse)
assert _got == {"direct": 2, "hub": 3}, (
    f"one framework to two runtimes: expected {{'direct': 2, 'hub': 3}}, got {_got}"
)
### BEGIN HIDDEN TESTS
assert converter_counts([]) == {"direct": 0, "hub": 0}, (
    f"no routes: expected zero converters, got {converter_counts([])}"
)
_chain = [(f"F{i}", f"R{i}") for i in range(6)] + [("F0", "R1")]
assert converter_counts(_chain) == {"direct": 7, "hub": 12}, (
    f"6 one-to-one routes plus one extra: expected {{'direct': 7, 'hub': 12}}, "
    f"got {converter_counts(_chain)}"
)
_big = [(f"F{i}", f"R{j}") for i in range(8) for j in range(6)] * 2
assert converter_counts(_big) == {"direct": 48, "hub": 14}, (
    f"8 x 6 grid listed twice: expected {{'direct': 48, 'hub': 14}}, got {converter_counts(_big)}"
)
# a tool that is both a framework and a runtime needs an exporter *and* an importer
_both = [("TensorFlow", "TensorFlow"), ("TensorFlow", "ORT"), ("PyTorch", "TensorFlow")]
assert converter_counts(_both) == {"direct": 3, "hub": 4}, (
    "TensorFlow as a framework and as a runtime: expected {'direct': 3, 'hub': 4} (2 exporters + "
    f"2 importers), got {converter_counts(_both)}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 2 (build, 4 points): ship the preprocessing with the model
#
# Section 2.4 exported the wine classifier without its scaler. Write
# `export_with_preprocessing(scaler, classifier, n_features)` that returns an
# `onnx.ModelProto` which takes **raw** features and applies the fitted `scaler` and then the
# fitted `classifier`. Contract:
#
# - one float32 input of shape `(batch, n_features)` whose batch size is free (not fixed);
# - its **last** output is the float32 probability tensor of shape `(batch, n_classes)`
#   (a plain tensor, not ZipMap's list of dictionaries);
# - the probabilities match `classifier.predict_proba(scaler.transform(X))` within 1e-4.
#
# Do not refit anything: the scaler and classifier are already trained. Any scikit-learn
# scaler and classifier that `skl2onnx` supports must work, not only the wine pair.


# %% nbgrader={"solution": true, "grade_id": "ex2-export"}
def export_with_preprocessing(scaler, classifier, n_features):
    ### BEGIN SOLUTION
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline([("scaler", scaler), ("classifier", classifier)])
    return convert_sklearn(
        pipeline,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=18,
    )
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex2-structure", "points": 1}
_model = export_with_preprocessing(scaler, wine_clf, Xw_train.shape[1])
assert isinstance(_model, onnx.ModelProto), (
    f"expected an onnx.ModelProto, got {type(_model).__name__}"
)
onnx.checker.check_model(_model)
assert len(_model.graph.input) == 1, f"expected one input, got {len(_model.graph.input)}"
_dims = _model.graph.input[0].type.tensor_type.shape.dim
assert len(_dims) == 2 and _dims[1].dim_value == Xw_train.shape[1], (
    f"expected input shape (batch, {Xw_train.shape[1]}), got {[d.dim_value or d.dim_param for d in _dims]}"
)
assert not _dims[0].HasField("dim_value"), (
    f"the batch dimension must be free, but it is fixed to {_dims[0].dim_value}"
)

# %% nbgrader={"grade": true, "grade_id": "ex2-parity", "points": 2}
_session = ort.InferenceSession(_model.SerializeToString(), providers=["CPUExecutionProvider"])
_probs = _session.run(None, {_session.get_inputs()[0].name: Xw_test[:5]})[-1]
assert isinstance(_probs, np.ndarray), (
    f"expected the last output to be a probability array, got {type(_probs).__name__} (ZipMap on?)"
)
_want = wine_clf.predict_proba(scaler.transform(Xw_test[:5]))
assert _probs.shape == _want.shape, (
    f"expected probabilities of shape {_want.shape}, got {_probs.shape}"
)
_err = float(np.abs(_probs - _want).max())
assert _err < 1e-4, (
    f"expected probabilities within 1e-4 of scaler + classifier on raw features, got max error "
    f"{_err:.2e} (is the scaler inside the model?)"
)
### BEGIN HIDDEN TESTS
_all = _session.run(None, {_session.get_inputs()[0].name: Xw_test})[-1]
_err = float(np.abs(_all - wine_clf.predict_proba(scaler.transform(Xw_test))).max())
assert _err < 1e-4, f"whole wine test set: expected max error < 1e-4, got {_err:.2e}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex2-other-models", "points": 1}
from sklearn.datasets import load_iris
from sklearn.preprocessing import MinMaxScaler
from sklearn.tree import DecisionTreeClassifier

_Xi, _yi = load_iris(return_X_y=True)
_Xi = _Xi.astype(np.float32)
_mm = MinMaxScaler().fit(_Xi[::2])
_tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(_mm.transform(_Xi[::2]), _yi[::2])
_s = ort.InferenceSession(
    export_with_preprocessing(_mm, _tree, 4).SerializeToString(), providers=["CPUExecutionProvider"]
)
_p = _s.run(None, {_s.get_inputs()[0].name: _Xi[1::2]})[-1]
assert isinstance(_p, np.ndarray) and _p.shape == (75, 3), (
    f"MinMaxScaler + DecisionTreeClassifier on iris: expected a (75, 3) probability array, got "
    f"{getattr(_p, 'shape', type(_p).__name__)}"
)
_err = float(np.abs(_p - _tree.predict_proba(_mm.transform(_Xi[1::2]))).max())
assert _err < 1e-4, (
    f"MinMaxScaler + DecisionTreeClassifier on iris: max error {_err:.2e}, expected < 1e-4"
)
### BEGIN HIDDEN TESTS
_one = _s.run(None, {_s.get_inputs()[0].name: _Xi[:1]})[-1]
assert _one.shape == (1, 3), f"batch of one: expected shape (1, 3), got {_one.shape}"
### END HIDDEN TESTS

# %% [markdown]
# ## Exercise 3 (debug, 4 points): why does the deployed model disagree?
#
# A colleague deployed the PyTorch digits model exported in section 2.2 (`torch_onnx`, which
# outputs probabilities). In production, images arrive from a scanner as **raw pixel
# intensities 0-16** (shape `(N, 64)`, dtype `uint8`, sometimes `float64`). The colleague's
# prediction code is below; it fails, and "fixing" the first error only makes it fail silently.
# Run it, find every problem, and write `predict_digits(session, images)` that returns float32
# probabilities of shape `(N, 10)`, equal (within 1e-5) to what the PyTorch model predicts for
# the same images prepared the way its training data was prepared (section 2), whatever the
# input dtype.

# %%
raw_images = np.rint(X_test * 16).astype(np.uint8)  # what the scanner delivers
torch_session = CANDIDATES["PyTorch"][1]


def predict_digits_buggy(session, images):
    return session.run(None, {"images": images})[0]


try:
    predict_digits_buggy(torch_session, raw_images[:3])
except Exception as exc:  # the first symptom
    print(f"{type(exc).__name__}: {str(exc)[:200]}")


# %% nbgrader={"solution": true, "grade_id": "ex3-predict"}
def predict_digits(session, images):
    ### BEGIN SOLUTION
    x = np.asarray(images, dtype=np.float32) / np.float32(16.0)  # the model was trained on [0, 1]
    name = session.get_inputs()[0].name  # the exporter named the input; do not guess it
    return session.run(None, {name: x})[0]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex3-runs", "points": 1}
_p = predict_digits(torch_session, raw_images[:4])
assert isinstance(_p, np.ndarray), f"expected a numpy array, got {type(_p).__name__}"
assert _p.shape == (4, 10) and _p.dtype == np.float32, (
    f"expected float32 probabilities of shape (4, 10), got {_p.dtype} {_p.shape}"
)
assert np.allclose(_p.sum(axis=1), 1, atol=1e-5), f"each row must sum to 1, got {_p.sum(axis=1)}"

# %% nbgrader={"grade": true, "grade_id": "ex3-parity", "points": 2}
with torch.no_grad():
    _reference = torch.softmax(
        mlp(torch.from_numpy(raw_images[:20] / np.float32(16))), dim=1
    ).numpy()
_err = float(np.abs(predict_digits(torch_session, raw_images[:20]) - _reference).max())
assert _err < 1e-5, (
    f"expected the same probabilities as PyTorch on the same images (max error < 1e-5), got "
    f"{_err:.2e}: what did training do to the pixels before the first layer?"
)
### BEGIN HIDDEN TESTS
with torch.inference_mode():
    _reference = torch.softmax(mlp(torch.from_numpy(raw_images / np.float32(16))), dim=1).numpy()
_got = predict_digits(torch_session, raw_images)
assert float(np.abs(_got - _reference).max()) < 1e-5, "whole test set: probabilities differ"
assert np.mean(_got.argmax(1) == y_test) > 0.9, "whole test set: accuracy should exceed 90%"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "ex3-float64", "points": 1}
_p64 = predict_digits(torch_session, raw_images[:20].astype(np.float64))
assert isinstance(_p64, np.ndarray) and _p64.dtype == np.float32, (
    f"float64 images: expected float32 probabilities, got {getattr(_p64, 'dtype', type(_p64).__name__)}"
)
assert float(np.abs(_p64 - predict_digits(torch_session, raw_images[:20])).max()) < 1e-6, (
    "float64 and uint8 versions of the same images must give the same probabilities"
)
### BEGIN HIDDEN TESTS
with torch.inference_mode():
    _ref = torch.softmax(mlp(torch.from_numpy(raw_images[20:60] / np.float32(16))), dim=1).numpy()
_e = float(np.abs(predict_digits(torch_session, raw_images[20:60].astype(np.int64)) - _ref).max())
assert _e < 1e-5, f"int64 images: expected max error < 1e-5, got {_e:.2e}"
# a dim scan: no pixel reaches 16, so the scale must come from the model's training, not the batch
_dim = raw_images[60:90] // 2
with torch.inference_mode():
    _ref = torch.softmax(mlp(torch.from_numpy(_dim / np.float32(16))), dim=1).numpy()
_e = float(np.abs(predict_digits(torch_session, _dim) - _ref).max())
assert _e < 1e-5, (
    f"images whose brightest pixel is {int(_dim.max())}: expected max error < 1e-5, got {_e:.2e}"
)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - Interoperability lets each side choose its best tool: a hub format replaces up to N × M
#   converters with N + M, and pays off when many frameworks meet many runtimes.
# - Models break in transit in five recurring ways, each shown above: operators without a
#   converter, float rounding differences between runtimes, shapes frozen at export, preprocessing
#   left in the training script, and files newer than the runtime.
# - Exchange formats go back to PMML (1997); ONNX (2017) is today's broadest hub for neural
#   networks and classical ML, alongside framework-native, on-device and compiler formats.
# - scikit-learn, PyTorch and Keras models of the same task all ran in one ONNX Runtime, each
#   within float32 rounding of its source, as measured here.
#
# **Common pitfalls**
# - Comparing outputs with `==`, or with a tolerance unrelated to the dtype.
# - Exporting with one example batch and no dynamic dimension, then serving other batch sizes.
# - Exporting the estimator but not the scaler, tokenizer or normalisation in front of it.
# - Feeding float64 or integer arrays to a float32 model, or guessing the input's name.
# - Letting the newest exporter pick an opset the production runtime does not support.
# - Expecting `tf2onnx.convert.from_keras` to accept a Keras 3 model: it fails on Sequential
#   models; export a SavedModel and convert that.
#
# **Further reading**
# - ONNX, *Open Neural Network Exchange — Introduction to ONNX* (onnx.ai documentation).
# - ONNX Runtime, *Compatibility* (ONNX opset and IR versions supported by each release).
# - PyTorch, *torch.onnx — Export a PyTorch model to ONNX* (the `dynamo=True` exporter).
# - sklearn-onnx, *Convert a pipeline* and *Choose appropriate output of a classifier* (ZipMap).
# - tensorflow-onnx, *README* (SavedModel and function conversion) and issue #2329.
# - Data Mining Group, *PMML 4.4 — General Structure*.

# %%
print(f"lesson ran in {time.perf_counter() - LESSON_START:.1f} s on this machine")
