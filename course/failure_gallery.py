"""The failure gallery: the conversion failures learners report most, and where they happen.

Data, no logic beyond look-ups: :data:`GALLERY` lists each failure (symptom, cause, fix, how
to verify it, the public issues behind it), :data:`EXPORT_PIPELINES` the stages of each
converter's pipeline with the failures that happen there. :mod:`course.troubleshoot` (which
re-exports every name here) draws the pipelines and reproduces the failures.

Example::

    >>> failure("zipmap").framework
    'scikit-learn'
    >>> len(gallery_frame(["zipmap"]))
    1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EXPORT_PIPELINES", "GALLERY", "Failure", "Stage", "failure", "gallery_frame"]


# --------------------------------------------------------------------------------------------
# the failure gallery


@dataclass(frozen=True)
class Failure:
    """One failure learners report: what they see, why, what fixes it, how to check the fix."""

    key: str
    title: str
    framework: str
    stage: str
    symptom: str
    cause: str
    fix: str
    verify: str
    issues: tuple[str, ...]
    pain_point: int | None = None

    def text(self) -> str:
        """The entry as a few labelled lines."""
        return "\n".join(
            [
                self.title,
                f"  symptom: {self.symptom}",
                f"  cause:   {self.cause}",
                f"  fix:     {self.fix}",
                f"  verify:  {self.verify}",
                f"  reported in: {', '.join(self.issues)}",
            ]
        )


GALLERY: tuple[Failure, ...] = (
    Failure(
        "unsupported-operator",
        "An operator the exporter cannot translate",
        "PyTorch",
        "translate",
        "ConversionError / DispatchError: No ONNX function found for "
        "<OpOverload(op='aten._cdist_forward', ...)>",
        "the exporter has no ONNX translation for this ATen operator (at any opset)",
        "rewrite the operation with supported operators (cdist as a square root of summed "
        "squared differences), or register a custom translation (custom_translation_table)",
        "the export succeeds and the rewritten model matches the original within tolerance",
        ("pytorch #49005", "pytorch #131635", "optimum #1331"),
        1,
    ),
    Failure(
        "opset-too-low",
        "Opset too low for an operator",
        "PyTorch",
        "translate",
        "exporting with opset_version=15 logs 'Setting ONNX exporter to use operator set "
        "version 18', then 'No Previous Version of LayerNormalization exists'; the model "
        "stays at opset 18",
        "the operator (LayerNormalization) first exists in opset 17; no lower opset can "
        "express it as one node",
        "target an opset that has the operator (>= 17 here) and a runtime that supports it, or "
        "rewrite the operation",
        "read model.opset_import after export; load the model in the target runtime",
        ("pytorch #49005", "pytorch #131635", "optimum #1331"),
        1,
    ),
    Failure(
        "dynamic-axes",
        "dynamic_axes with the dynamo exporter",
        "PyTorch",
        "capture",
        "DeprecationWarning: from_dynamic_axes_to_dynamic_shapes is deprecated; or a "
        "'Constraints violated' / 'inferred a static shape' error",
        "torch >= 2.9 exports with torch.export by default (dynamo=True); dynamic_axes is "
        "translated to Dim.DYNAMIC hints keyed by forward() argument names",
        "declare dynamic_shapes with torch.export.Dim, keyed by forward() argument names",
        "the exported input shows a named dimension; run it at several sizes",
        ("pytorch #165748", "pytorch #150940"),
        4,
    ),
    Failure(
        "onnxscript-missing",
        "onnxscript missing or too old",
        "PyTorch",
        "translate",
        "ModuleNotFoundError: No module named 'onnxscript' from torch.onnx.export",
        "the dynamo exporter writes ONNX through onnxscript, which torch's wheel does not install",
        "install the onnxscript version pinned with your torch (pip install onnxscript==...)",
        "importlib.util.find_spec('onnxscript') is not None; a tiny export succeeds",
        ("pytorch #103764", "ultralytics #20348"),
        5,
    ),
    Failure(
        "data-dependent-branch",
        "Python if on a tensor value",
        "PyTorch",
        "capture",
        "torch.export: GuardOnDataDependentSymNode 'Could not guard on data-dependent "
        "expression'; the legacy tracer instead bakes in one branch (TracerWarning)",
        "the branch depends on tensor values, which a captured graph cannot know",
        "express the branch with torch.cond (it becomes an ONNX If), or compute both branches "
        "and torch.where between them",
        "run inputs that take each branch and compare with eager PyTorch",
        ("transformers #17773", "pytorch #143222"),
        6,
    ),
    Failure(
        "fixed-batch",
        "A batch dimension that is really fixed",
        "all",
        "runtime",
        "works at batch 1, then 'Got invalid dimensions for input: x ... index: 0 Got: 7 "
        "Expected: 1' (or a Gemm/Reshape error deep inside when the model hard-codes a size)",
        "the export recorded the example's batch size: no dynamic dimension was declared, or "
        "the model code fixes it (view(2, -1)) and the exporter accepted the fix silently",
        "declare the dimension dynamic (dynamic_shapes / None in initial_types / "
        "TensorSpec([None, ...])) and remove hard-coded sizes (flatten(1), view(x.shape[0], -1))",
        "read the input shape of the exported model; run it at batch 1, 7 and a large batch",
        ("onnx/tutorials #163", "onnxruntime #19270", "pytorch #148886"),
        7,
    ),
    Failure(
        "float64-input",
        "float64 data into a float32 model",
        "all",
        "runtime",
        "INVALID_ARGUMENT: Unexpected input data type. Actual: (tensor(double)) , expected: "
        "(tensor(float))",
        "NumPy and pandas default to float64; exported models declare float32 inputs",
        "cast at the boundary: X.astype(np.float32)",
        "session.get_inputs()[0].type says tensor(float); the cast data runs",
        ("onnxruntime #4130", "sklearn-onnx #1192"),
        9,
    ),
    Failure(
        "float32-drift",
        "float64 to float32 drift in scikit-learn models",
        "scikit-learn",
        "runtime",
        "a few predictions differ between scikit-learn and ONNX although most agree",
        "scikit-learn computes scalers and SVM kernels in float64; the ONNX graph computes in "
        "float32, and values near a tree threshold land on the other side",
        "train on float32 data, compute precision-hungry features (timestamps) relative to a "
        "reference before the model, or use double-precision converters where the runtime "
        "has them",
        "count disagreeing predictions on the whole test set, not on five rows",
        ("onnxruntime #4130", "sklearn-onnx #1192"),
        9,
    ),
    Failure(
        "zipmap",
        "ZipMap probabilities",
        "scikit-learn",
        "translate",
        "probabilities come back as a list of {class: probability} dicts; proba[:, 1] raises "
        "TypeError: list indices must be integers or slices, not tuple",
        "skl2onnx adds a ZipMap node after classifiers by default",
        "convert with options={'zipmap': False} (or {id(clf): {'zipmap': False}})",
        "the second output is a float32 ndarray of shape (batch, n_classes)",
        ("sklearn-onnx #202", "sklearn-onnx #218"),
        11,
    ),
    Failure(
        "eval-mode",
        "model.eval() forgotten",
        "PyTorch",
        "capture",
        "UserWarning 'Exporting a model while it is in training mode'; ONNX outputs differ "
        "from eager eval() outputs far beyond float32 tolerance",
        "in training mode dropout is random and batch norm uses the batch's statistics, and "
        "the export records that behaviour",
        "call model.eval() before exporting",
        "compare with the eager model in eval mode at tolerances chosen from the dtype "
        "(float32: rtol 1e-4, atol 1e-5)",
        ("onnxruntime #4589", "onnxruntime #18946"),
        8,
    ),
    Failure(
        "missing-converter",
        "A custom transformer without a converter",
        "scikit-learn",
        "parse",
        "MissingShapeCalculator: Unable to find a shape calculator for type <class "
        "'...YourTransformer'>",
        "skl2onnx only knows the estimators it ships converters for",
        "write a shape calculator and a converter and register them with "
        "update_registered_converter",
        "convert the pipeline and compare with pipeline.predict_proba",
        ("sklearn-onnx #359", "sklearn-onnx #1115"),
        10,
    ),
    Failure(
        "keras3-tf2onnx",
        "Keras 3 Sequential model with tf2onnx.convert.from_keras",
        "TensorFlow/Keras",
        "capture",
        "KeyError: 'keras_tensor_...' from tf2onnx.convert.from_keras",
        "tf2onnx 1.17 reads Keras 2 (tf_keras) model attributes; a Keras 3 Sequential model names "
        "its tensors differently, so the output-name lookup fails (lesson 3 measures that a "
        "functional model with the same layers converts)",
        "model.export(dir) to a SavedModel and convert that, or build the model with tf_keras "
        "(TF_USE_LEGACY_KERAS=1 before TensorFlow is imported)",
        "compare the ONNX outputs with model(x) at several batch sizes",
        ("tensorflow-onnx #2329", "tensorflow-onnx #2348", "tensorflow-onnx #2448", "keras #18430"),
        15,
    ),
)


def failure(key: str) -> Failure:
    """The gallery entry with this key.

    >>> failure("zipmap").pain_point
    11
    """
    for entry in GALLERY:
        if entry.key == key:
            return entry
    known = ", ".join(e.key for e in GALLERY)
    raise KeyError(f"no gallery entry {key!r}; the keys are: {known}")


def gallery_frame(keys: Sequence[str] | None = None) -> Any:
    """The gallery (or the entries named in ``keys``) as a pandas DataFrame, one row each.

    Example::

        gallery_frame()[["title", "symptom", "fix"]]
    """
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas is in the course environment
        raise ImportError("gallery_frame needs pandas: pip install pandas") from exc
    entries = GALLERY if keys is None else [failure(k) for k in keys]
    rows = [
        {
            "#": GALLERY.index(e) + 1,
            "title": e.title,
            "framework": e.framework,
            "symptom": e.symptom,
            "cause": e.cause,
            "fix": e.fix,
            "verify": e.verify,
            "issues": ", ".join(e.issues),
        }
        for e in entries
    ]
    return pd.DataFrame(rows).set_index("#")


# --------------------------------------------------------------------------------------------
# the export pipelines, drawn


@dataclass(frozen=True)
class Stage:
    """One step of a converter's pipeline, and the gallery failures that happen there."""

    name: str
    detail: str
    failures: tuple[str, ...] = ()


EXPORT_PIPELINES: dict[str, tuple[Stage, ...]] = {
    "PyTorch\ntorch.onnx.export(dynamo=True)": (
        Stage("nn.Module", "+ example inputs\n+ dynamic_shapes", ("eval-mode",)),
        Stage(
            "torch.export",
            "capture an FX graph\n(ExportedProgram)",
            ("data-dependent-branch", "dynamic-axes", "fixed-batch"),
        ),
        Stage("decompose", "to core ATen\noperators"),
        Stage(
            "translate",
            "ATen -> ONNX via\nonnxscript (torchlib)",
            ("unsupported-operator", "opset-too-low", "onnxscript-missing"),
        ),
        Stage("optimize", "fold constants,\nremove dead nodes"),
        Stage("ONNXProgram", ".model_proto\n.save(path)"),
    ),
    "Keras 3\ntf2onnx": (
        Stage("keras.Model", "Sequential or\nfunctional", ("keras3-tf2onnx",)),
        Stage("model.export()", "SavedModel with a\n'serve' signature"),
        Stage("load + freeze", "tf.function graph,\nvariables -> constants"),
        Stage("rewrite", "TF ops -> ONNX ops\nat the chosen opset"),
        Stage("optimize", "transposes, identities,\nconstant folding"),
        Stage("ModelProto", "input_signature sets\nnames and shapes", ("fixed-batch",)),
    ),
    "scikit-learn\nskl2onnx": (
        Stage("Pipeline", "fitted estimator\n+ sample or initial_types", ("float64-input",)),
        Stage("parse", "one operator per step,\nshape calculators", ("missing-converter",)),
        Stage("convert", "each step -> ai.onnx +\nai.onnx.ml nodes", ("float32-drift",)),
        Stage("options", "zipmap, target_opset\nper domain", ("zipmap",)),
        Stage("ModelProto", "one input per column\nfor DataFrames"),
    ),
}
