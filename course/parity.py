"""Side by side: a framework's own predictions next to its ONNX export's, with the difference.

A converted model is only as good as its agreement with the model it came from. This module
puts the two next to each other, one sample at a time (for a widget) or over a whole data set
(for a table), and measures the gap instead of assuming it::

    from course import parity
    row = parity.side_by_side(pipe.predict_proba, session, X_test, index=3,
                              framework="scikit-learn")
    print(row.summary())        # labels, probabilities, largest absolute difference
    row.plot()                  # grouped bars: original vs ONNX, per class

    parity.parity_summary(pipe.predict_proba, session, X_test).as_dict()

``session`` may be an ``onnxruntime.InferenceSession``, an ``onnx.ModelProto``, serialized
bytes or a path to a ``.onnx`` file. By default the ONNX model's *last* output is compared, which
is the probability tensor for scikit-learn classifiers converted with ``zipmap=False`` and the
only output for most PyTorch and Keras exports.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from course import figures
from course.palette import OKABE_ITO, WHITE

__all__ = [
    "OKABE_ITO",
    "ParitySummary",
    "SideBySide",
    "onnx_predictor",
    "parity_summary",
    "side_by_side",
]

#: The Okabe-Ito colour-blind-safe palette, in its usual order.

Predictor = Callable[[np.ndarray], Any]

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def _session(model: Any) -> Any:
    """An onnxruntime session for a session, ModelProto, bytes or path (CPU provider)."""
    import onnxruntime as ort

    if isinstance(model, ort.InferenceSession):
        return model
    if isinstance(model, (str, os.PathLike)) and not os.path.exists(model):
        raise FileNotFoundError(
            f"no ONNX model at {os.fspath(model)!r}: pass an existing .onnx path, a "
            "ModelProto or an onnxruntime.InferenceSession"
        )
    from course import _model

    try:
        source = _model.source(model)
    except TypeError:
        raise TypeError(
            "onnx_model must be an onnxruntime.InferenceSession, an onnx.ModelProto, serialized "
            f"bytes, a Conversion or a path to a .onnx file, got {type(model).__name__}"
        ) from None
    return _model.session(source)


def onnx_predictor(
    onnx_model: Any, *, output: int | str = -1
) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap an ONNX model as ``predict(inputs) -> np.ndarray`` returning one of its outputs.

    The model must have exactly one input. Inputs whose dtype or width disagree with what the
    model declares raise a ``ValueError`` that says how to fix the call (ONNX Runtime would
    otherwise answer with a terse ``INVALID_ARGUMENT``); nothing is cast silently.

    Args:
        onnx_model: an ``onnxruntime.InferenceSession``, ``onnx.ModelProto``, bytes or path.
        output: which output to return, by position (default: the last) or by name.

    Example::

        predict = onnx_predictor(session)          # the last output, e.g. probabilities
        predict(X_test[:5]).shape                  # (5, n_classes)
    """
    sess = _session(onnx_model)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        names = [i.name for i in inputs]
        raise ValueError(
            f"the ONNX model has {len(inputs)} inputs {names}; onnx_predictor needs a model with "
            "exactly one input (run session.run yourself for several)"
        )
    spec = inputs[0]
    outputs = [o.name for o in sess.get_outputs()]
    if isinstance(output, str):
        if output not in outputs:
            raise ValueError(f"the ONNX model has no output {output!r}; its outputs are {outputs}")
        out_name = output
    else:
        try:
            out_name = outputs[output]
        except (IndexError, TypeError):
            raise ValueError(
                f"output={output!r} is not a valid position: the model has {len(outputs)} "
                f"outputs {outputs}"
            ) from None
    want_dtype = _ORT_TO_NUMPY.get(spec.type)
    width = spec.shape[-1] if spec.shape and isinstance(spec.shape[-1], int) else None

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if want_dtype is not None and x.dtype != want_dtype:
            raise ValueError(
                f"the ONNX model's input {spec.name!r} is {spec.type} but the data is "
                f"{x.dtype}: cast it first, e.g. x.astype(np.{np.dtype(want_dtype).name})"
            )
        if width is not None and (x.ndim == 0 or x.shape[-1] != width):
            raise ValueError(
                f"the ONNX model's input {spec.name!r} expects {width} values per sample "
                f"(shape {spec.shape}), got data of shape {x.shape}"
            )
        result = sess.run([out_name], {spec.name: x})[0]
        if not isinstance(result, np.ndarray):
            raise TypeError(
                f"output {out_name!r} is a {type(result).__name__}, not a tensor; for "
                "scikit-learn classifiers convert with options={'zipmap': False}"
            )
        return result

    return predict


def _as_array(values: Any, who: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    elif hasattr(values, "numpy") and not isinstance(values, np.ndarray):  # a tf tensor
        values = values.numpy()
    arr = np.asarray(values)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{who} returned {arr.dtype} values; expected numbers")
    return arr


def _label(vector: np.ndarray) -> int | None:
    return int(np.argmax(vector)) if vector.size > 1 else None


@dataclass(frozen=True)
class SideBySide:
    """One sample's prediction from the source framework and from its ONNX export.

    Attributes:
        framework: the source framework's name, as shown in titles.
        index: the sample's row in the inputs.
        original: the framework's output for that sample (1-D, e.g. class probabilities).
        onnx: the ONNX model's output for the same sample, same shape.

    Example::

        row = side_by_side(model_fn, session, X, index=0, framework="PyTorch")
        row.max_abs_diff, row.labels_agree
    """

    framework: str
    index: int
    original: np.ndarray
    onnx: np.ndarray

    @property
    def difference(self) -> np.ndarray:
        """Absolute difference per output value, computed in float64."""
        return np.abs(self.original.astype(np.float64) - self.onnx.astype(np.float64))

    @property
    def max_abs_diff(self) -> float:
        """The largest absolute difference over the sample's outputs."""
        return float(self.difference.max()) if self.difference.size else 0.0

    @property
    def original_label(self) -> int | None:
        """Arg-max of the original output (the predicted class); None for a single value."""
        return _label(self.original)

    @property
    def onnx_label(self) -> int | None:
        """Arg-max of the ONNX output; None for a single value."""
        return _label(self.onnx)

    @property
    def labels_agree(self) -> bool:
        """Whether both predict the same class (always True for single-value outputs)."""
        return self.original_label == self.onnx_label

    def summary(self) -> str:
        """A few lines: both predictions, both vectors, the measured difference."""
        verdict = "agree" if self.labels_agree else "DISAGREE"
        lines = [
            f"{self.framework}, sample {self.index}: original predicts {self.original_label}, "
            f"ONNX Runtime predicts {self.onnx_label} (labels {verdict})",
            f"  original: {np.array2string(self.original, precision=4, suppress_small=True)}",
            f"  ONNX    : {np.array2string(self.onnx, precision=4, suppress_small=True)}",
            f"  largest absolute difference: {self.max_abs_diff:.2e}",
        ]
        return "\n".join(lines)

    def to_frame(self):
        """A pandas DataFrame with one row per output value: original, onnx, abs_difference."""
        import pandas as pd

        return pd.DataFrame(
            {
                "original": self.original,
                "onnx": self.onnx,
                "abs_difference": self.difference,
            },
            index=pd.RangeIndex(self.original.size, name="class"),
        )

    def plot(self, ax: Any = None, image: np.ndarray | None = None):
        """Grouped bars, original vs ONNX per output value; returns the matplotlib Figure.

        Args:
            ax: draw the bars into this Axes (default: a new figure).
            image: optionally the input as a 2-D array (e.g. ``x.reshape(8, 8)``), drawn in
                grey to the left of the bars; only when ``ax`` is None.
        """
        if ax is not None and image is not None:
            raise ValueError("pass either ax or image, not both: image needs a figure of its own")
        if ax is not None:
            fig = ax.figure
        elif image is not None:
            img = np.asarray(image)
            if img.ndim != 2:
                raise ValueError(f"image must be 2-D (height x width), got shape {img.shape}")
            fig, (ax_img, ax) = figures.figure(
                (8, 3.2), ncols=2, gridspec_kw={"width_ratios": [1, 3]}
            )
            ax_img.imshow(img, cmap="gray_r")
            ax_img.set(title="input sample", xticks=[], yticks=[])
        else:
            fig, ax = figures.figure((6, 3.2))
        positions = np.arange(self.original.size)
        width = 0.4
        ax.bar(
            positions - width / 2,
            self.original,
            width,
            color=OKABE_ITO[0],
            label=f"{self.framework} (original)",
        )
        ax.bar(
            positions + width / 2,
            self.onnx,
            width,
            color=OKABE_ITO[1],
            label="ONNX Runtime (exported)",
            hatch="//",
            edgecolor=WHITE,
        )
        ax.set_xticks(positions)
        ax.set(
            xlabel="class (digit)",
            ylabel="predicted probability (0-1)",
            title=f"{self.framework}, sample {self.index}: max |difference| = "
            f"{self.max_abs_diff:.1e}",
        )
        low = min(0.0, float(self.original.min()), float(self.onnx.min()))
        high = max(1.0, float(self.original.max()), float(self.onnx.max()))
        ax.set_ylim(low, high * 1.3)  # head room for the legend above the bars
        ax.legend(loc="upper center", ncol=2, fontsize="small")
        return figures.finish(fig)

    def to_html(self, image: np.ndarray | None = None) -> str:
        """The summary and the bar chart (a PNG inlined as base64) as one HTML string.

        Meant for an ``ipywidgets.HTML`` widget's ``value``: the figure is closed after
        rendering, so nothing else is displayed.

        Example::

            html_widget.value = side_by_side(f, session, X, 3).to_html(image=X[3].reshape(8, 8))
        """
        import base64
        import html
        import io

        buffer = io.BytesIO()
        self.plot(image=image).savefig(buffer, format="png", dpi=80)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        return (
            f"<pre>{html.escape(self.summary())}</pre>"
            f'<img alt="{html.escape(self.framework)} vs ONNX Runtime, sample {self.index}" '
            f'src="data:image/png;base64,{encoded}"/>'
        )

    def _repr_html_(self) -> str:  # pragma: no cover - notebook display only
        return "<pre>" + self.summary() + "</pre>" + self.to_frame().to_html(float_format="%.6f")


def _check_inputs(inputs: Any) -> np.ndarray:
    arr = np.asarray(inputs)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(
            f"inputs must be a batch with one sample per row (at least 2-D, non-empty), got shape "
            f"{arr.shape}; for one sample use x[None, :]"
        )
    return arr


def _original_outputs(original: Predictor, batch: np.ndarray, framework: str) -> np.ndarray:
    if not callable(original):
        raise TypeError(
            f"original must be a function inputs -> predictions (e.g. pipe.predict_proba), got "
            f"{type(original).__name__}"
        )
    return _as_array(original(batch), f"the {framework} predictor")


def side_by_side(
    original: Predictor,
    onnx_model: Any,
    inputs: np.ndarray,
    index: int,
    *,
    framework: str = "model",
    output: int | str = -1,
) -> SideBySide:
    """Predict one sample with the source framework and with ONNX Runtime, side by side.

    Args:
        original: the framework's own prediction function, batch in, batch out
            (e.g. ``pipe.predict_proba``, a softmax over a torch module, ``keras_model.predict``).
        onnx_model: session, ModelProto, bytes or path (see :func:`onnx_predictor`).
        inputs: the data set, one sample per row, in the dtype the ONNX model declares.
        index: which row to compare (negative counts from the end, like Python).
        framework: a name for titles and messages.
        output: which ONNX output to compare (default: the last).

    Returns:
        A :class:`SideBySide` with both output vectors and the measured difference.

    Example::

        row = side_by_side(pipe.predict_proba, onx, X_test, 0, framework="scikit-learn")
        row.labels_agree, f"{row.max_abs_diff:.1e}"     # (True, '6.0e-08')
    """
    data = _check_inputs(inputs)
    n = data.shape[0]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index must be an integer row number, got {type(index).__name__}")
    if not -n <= index < n:
        raise IndexError(f"index {index} is out of range for {n} samples (0 to {n - 1})")
    row = int(index) % n
    batch = data[row : row + 1]
    predict = onnx_predictor(onnx_model, output=output)
    got = _as_array(predict(batch), "the ONNX model").reshape(-1)
    want = _original_outputs(original, batch, framework).reshape(-1)
    if want.shape != got.shape:
        raise ValueError(
            f"the {framework} predictor returned {want.size} values per sample but the ONNX "
            f"output has {got.size}: compare the same quantity (probabilities vs logits? "
            "pick another output=)"
        )
    return SideBySide(framework=framework, index=row, original=want, onnx=got)


@dataclass(frozen=True)
class ParitySummary:
    """How far an ONNX export is from its source over a whole data set.

    Attributes:
        framework: the source framework's name.
        n_samples: rows compared.
        max_abs_diff: the largest absolute difference over every output value.
        mean_abs_diff: the mean absolute difference.
        label_agreement: fraction of rows whose arg-max class agrees (1.0 = all).

    Example::

        parity_summary(pipe.predict_proba, onx, X_test).label_agreement    # 1.0
    """

    framework: str
    n_samples: int
    max_abs_diff: float
    mean_abs_diff: float
    label_agreement: float

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (one row of a table)."""
        return {
            "framework": self.framework,
            "n_samples": self.n_samples,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "label_agreement": self.label_agreement,
        }


def parity_summary(
    original: Predictor,
    onnx_model: Any,
    inputs: np.ndarray,
    *,
    framework: str = "model",
    output: int | str = -1,
) -> ParitySummary:
    """Compare the framework and its ONNX export over every row of ``inputs``.

    Args are as for :func:`side_by_side`, without ``index``.

    Example::

        s = parity_summary(pipe.predict_proba, onx, X_test, framework="scikit-learn")
        f"{s.max_abs_diff:.1e}", s.label_agreement          # ('2.4e-07', 1.0)
    """
    data = _check_inputs(inputs)
    got = _as_array(onnx_predictor(onnx_model, output=output)(data), "the ONNX model")
    want = _original_outputs(original, data, framework)
    got2, want2 = got.reshape(len(data), -1), want.reshape(len(data), -1)
    if got2.shape != want2.shape:
        raise ValueError(
            f"the {framework} predictor returned shape {want.shape} but the ONNX output has "
            f"shape {got.shape}: compare the same quantity (pick another output=)"
        )
    diff = np.abs(want2.astype(np.float64) - got2.astype(np.float64))
    if want2.shape[1] > 1:
        agreement = float(np.mean(want2.argmax(axis=1) == got2.argmax(axis=1)))
    else:
        agreement = 1.0
    return ParitySummary(
        framework=framework,
        n_samples=int(len(data)),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        label_agreement=agreement,
    )
