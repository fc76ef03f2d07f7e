"""Size, accuracy and latency of model variants, compared with a baseline and judged honestly.

A lesson measures a table of variants once (float32, dynamic/static int8, per-channel,
calibration sizes, float16), one row per variant; this module looks a choice up and compares
it with the baseline: size ratio, accuracy change in points, and a latency verdict that says
"no measurable difference" when the confidence intervals overlap. It is the logic behind the
quantization explorer widget, and needs no browser::

    from course import tradeoffs
    cmp = tradeoffs.compare_variant(table, model="CNN", method="static", per_channel=True,
                                    calibration=100)
    cmp["latency_verdict"], cmp["size_ratio"]      # ('slower', 0.27)
    tradeoffs.variant_html(table, model="CNN", method="dynamic")   # a small HTML report

Table columns (one row per variant): ``model``, ``method``, ``per_channel`` (bool),
``calibration`` (samples; 0 where the method takes none), ``size_kb``, ``accuracy`` (0-1),
``latency_us`` with ``ci_low_us`` and ``ci_high_us`` (median and its confidence interval).
Optional: ``latency_batch_us``, ``ci_low_batch_us``, ``ci_high_batch_us`` (a larger batch) and
``batch`` (its size).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from course.palette import BLACK, GREEN, VERMILLION

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    import pandas as pd

__all__ = [
    "CALIBRATED_METHODS",
    "PER_CHANNEL_METHODS",
    "REQUIRED_COLUMNS",
    "compare_variant",
    "find_variant",
    "interval_verdict",
    "variant_html",
]

REQUIRED_COLUMNS = (
    "model",
    "method",
    "per_channel",
    "calibration",
    "size_kb",
    "accuracy",
    "latency_us",
    "ci_low_us",
    "ci_high_us",
)
#: Methods whose result depends on the calibration set size.
CALIBRATED_METHODS = ("static",)
#: Methods that have a per-channel option.
PER_CHANNEL_METHODS = ("dynamic", "static")


def _check_table(table: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in getattr(table, "columns", ())]
    if missing:
        raise ValueError(
            f"the variants table lacks columns {missing}; expected {list(REQUIRED_COLUMNS)}"
        )


def find_variant(
    table: pd.DataFrame, model: str, method: str, per_channel: bool = False, calibration: int = 0
) -> pd.Series:
    """The row of ``table`` for one choice; options a method does not have are ignored.

    ``per_channel`` matters only for dynamic and static int8, ``calibration`` only for static.
    Raises ``KeyError`` naming the values the table does have when there is no such row.

    Example::

        >>> row = find_variant(table, "MLP", "float16", per_channel=True, calibration=300)
        >>> row["method"], bool(row["per_channel"])
        ('float16', False)
    """
    _check_table(table)
    mask = (table["model"] == model) & (table["method"] == method)
    if not mask.any():
        raise KeyError(
            f"no variant for model={model!r}, method={method!r}; the table has models "
            f"{sorted(table['model'].unique())} and methods {sorted(table['method'].unique())}"
        )
    if method in PER_CHANNEL_METHODS:
        mask &= table["per_channel"] == bool(per_channel)
    if method in CALIBRATED_METHODS:
        mask &= table["calibration"] == int(calibration)
    rows = table[mask]
    if rows.empty:
        options = table[(table["model"] == model) & (table["method"] == method)]
        raise KeyError(
            f"no {method} variant of {model} with per_channel={per_channel}, "
            f"calibration={calibration}; available: per_channel "
            f"{sorted(options['per_channel'].unique().tolist())}, calibration "
            f"{sorted(options['calibration'].unique().tolist())}"
        )
    return rows.iloc[0]


def interval_verdict(baseline: tuple[float, float], candidate: tuple[float, float]) -> str:
    """Compare two latency intervals ``(low, high)``: ``"faster"`` when the candidate's whole
    interval lies below the baseline's, ``"slower"`` when above, otherwise
    ``"no measurable difference"``.

    Example::

        >>> interval_verdict((10.0, 12.0), (6.0, 7.0))
        'faster'
        >>> interval_verdict((10.0, 12.0), (11.0, 13.0))
        'no measurable difference'
    """
    (b_lo, b_hi), (c_lo, c_hi) = baseline, candidate
    for lo, hi in (baseline, candidate):
        if lo > hi:
            raise ValueError(f"an interval must be (low, high) with low <= high, got {(lo, hi)}")
    if c_hi < b_lo:
        return "faster"
    if c_lo > b_hi:
        return "slower"
    return "no measurable difference"


def compare_variant(
    table: pd.DataFrame,
    model: str,
    method: str,
    per_channel: bool = False,
    calibration: int = 0,
    *,
    baseline: str = "fp32",
) -> dict[str, Any]:
    """Compare one variant with the ``baseline`` method of the same model.

    Returns a dict: ``variant`` (a label), ``size_kb``, ``size_ratio`` (variant / baseline),
    ``accuracy``, ``accuracy_change_points`` (percentage points, negative = worse),
    ``latency_us``, ``speedup`` (baseline median / variant median), ``latency_verdict`` (from
    the intervals, see :func:`interval_verdict`), and the same two for the larger batch when
    the table has it (``batch``, ``speedup_batch``, ``latency_verdict_batch``).

    Example::

        >>> compare_variant(table, "CNN", "dynamic")["latency_verdict"]
        'slower'
    """
    row = find_variant(table, model, method, per_channel, calibration)
    base = find_variant(table, model, baseline)
    label = method
    if method in PER_CHANNEL_METHODS and per_channel:
        label += " per-channel"
    if method in CALIBRATED_METHODS:
        label += f", {int(calibration)} calibration samples"
    out: dict[str, Any] = {
        "model": model,
        "variant": label,
        "size_kb": float(row["size_kb"]),
        "size_ratio": float(row["size_kb"] / base["size_kb"]),
        "accuracy": float(row["accuracy"]),
        "accuracy_change_points": float(100 * (row["accuracy"] - base["accuracy"])),
        "latency_us": float(row["latency_us"]),
        "speedup": float(base["latency_us"] / row["latency_us"]),
        "latency_verdict": interval_verdict(
            (base["ci_low_us"], base["ci_high_us"]), (row["ci_low_us"], row["ci_high_us"])
        ),
    }
    if "latency_batch_us" in table.columns:
        out["batch"] = int(row["batch"]) if "batch" in table.columns else None
        out["latency_batch_us"] = float(row["latency_batch_us"])
        out["speedup_batch"] = float(base["latency_batch_us"] / row["latency_batch_us"])
        out["latency_verdict_batch"] = interval_verdict(
            (base["ci_low_batch_us"], base["ci_high_batch_us"]),
            (row["ci_low_batch_us"], row["ci_high_batch_us"]),
        )
    return out


_VERDICT_COLOUR = {"faster": GREEN, "slower": VERMILLION, "no measurable difference": BLACK}


def variant_html(table: pd.DataFrame, *choice: Any, baseline: str = "fp32", **options: Any) -> str:
    """A small HTML report of :func:`compare_variant`, for an ``ipywidgets.HTML`` value.

    Takes the arguments of :func:`compare_variant`: ``model``, ``method``, ``per_channel``,
    ``calibration`` (by position or by name) and ``baseline``.

    Example::

        >>> "per-channel" in variant_html(table, "MLP", "static", True, 100)
        True
    """
    c = compare_variant(table, *choice, baseline=baseline, **options)

    def verdict(word: str) -> str:
        return f"<b style='color:{_VERDICT_COLOUR[word]}'>{html.escape(word)}</b>"

    rows: list[Sequence[str]] = [
        ("file size", f"{c['size_kb']:.1f} KB", f"{c['size_ratio']:.2f}x the {baseline} size"),
        (
            "test accuracy",
            f"{c['accuracy']:.3f}",
            f"{c['accuracy_change_points']:+.1f} points vs {baseline}",
        ),
        (
            "latency, batch 1",
            f"{c['latency_us']:.1f} µs",
            f"{c['speedup']:.2f}x {baseline}'s speed: {verdict(c['latency_verdict'])}",
        ),
    ]
    if "latency_batch_us" in c:
        size = c["batch"] if c["batch"] is not None else "large"
        rows.append(
            (
                f"latency, batch {size}",
                f"{c['latency_batch_us']:.1f} µs",
                f"{c['speedup_batch']:.2f}x {baseline}'s speed: "
                f"{verdict(c['latency_verdict_batch'])}",
            )
        )
    body = "".join(
        f"<tr><td>{html.escape(a)}</td><td style='text-align:right'>{html.escape(b)}</td>"
        f"<td>{cmt}</td></tr>"
        for a, b, cmt in rows
    )
    return (
        f"<div><b>{html.escape(c['model'])}: {html.escape(c['variant'])}</b>"
        f"<table>{body}</table>"
        "<small>Verdicts compare 95% confidence intervals of the median latency.</small></div>"
    )
