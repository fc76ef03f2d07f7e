"""course.tradeoffs: variant lookup, honest latency verdicts, and the widget's HTML report."""

from __future__ import annotations

import pandas as pd
import pytest

from course import tradeoffs


def _row(model, method, pc=False, cal=0, size=100.0, acc=0.97, lat=10.0, half=1.0, big=100.0):
    return {
        "model": model,
        "method": method,
        "per_channel": pc,
        "calibration": cal,
        "size_kb": size,
        "accuracy": acc,
        "latency_us": lat,
        "ci_low_us": lat - half,
        "ci_high_us": lat + half,
        "batch": 256,
        "latency_batch_us": big,
        "ci_low_batch_us": big - 5,
        "ci_high_batch_us": big + 5,
    }


TABLE = pd.DataFrame(
    [
        _row("MLP", "fp32"),
        _row("MLP", "dynamic", size=26.0, lat=20.0, big=70.0),
        _row("MLP", "dynamic", pc=True, size=28.0, lat=20.5, big=72.0),
        _row("MLP", "static", cal=10, size=27.0, acc=0.90, lat=10.5, big=60.0),
        _row("MLP", "static", cal=100, size=27.0, acc=0.97, lat=6.0, big=60.0),
        _row("MLP", "static", pc=True, cal=100, size=30.0, acc=0.975, lat=6.5, big=61.0),
        _row("MLP", "float16", size=50.0, lat=10.2, big=101.0),
        _row("CNN", "fp32", size=40.0, lat=12.0),
    ]
)


def test_find_variant_selects_by_every_option():
    row = tradeoffs.find_variant(TABLE, "MLP", "static", per_channel=True, calibration=100)
    assert row["size_kb"] == 30.0 and row["accuracy"] == 0.975
    row = tradeoffs.find_variant(TABLE, "MLP", "static", per_channel=False, calibration=10)
    assert row["accuracy"] == 0.90
    assert tradeoffs.find_variant(TABLE, "MLP", "dynamic", per_channel=True)["size_kb"] == 28.0


def test_find_variant_ignores_options_a_method_lacks():
    row = tradeoffs.find_variant(TABLE, "MLP", "float16", per_channel=True, calibration=300)
    assert row["method"] == "float16" and row["size_kb"] == 50.0
    row = tradeoffs.find_variant(TABLE, "MLP", "dynamic", per_channel=False, calibration=300)
    assert row["size_kb"] == 26.0


def test_find_variant_errors_name_what_exists():
    with pytest.raises(KeyError, match="methods \\['dynamic', 'float16', 'fp32', 'static'\\]"):
        tradeoffs.find_variant(TABLE, "MLP", "int4")
    with pytest.raises(KeyError, match="calibration \\[10, 100\\]"):
        tradeoffs.find_variant(TABLE, "MLP", "static", calibration=300)
    with pytest.raises(KeyError, match="models \\['CNN', 'MLP'\\]"):
        tradeoffs.find_variant(TABLE, "RNN", "fp32")
    with pytest.raises(ValueError, match="lacks columns"):
        tradeoffs.find_variant(TABLE.drop(columns=["accuracy"]), "MLP", "fp32")
    with pytest.raises(ValueError, match="lacks columns"):
        tradeoffs.find_variant([1, 2], "MLP", "fp32")


@pytest.mark.parametrize(
    ("candidate", "want"),
    [((5.0, 8.9), "faster"), ((12.1, 13.0), "slower"), ((8.0, 10.0), "no measurable difference")],
)
def test_interval_verdict(candidate, want):
    assert tradeoffs.interval_verdict((9.0, 11.0), candidate) == want


def test_interval_verdict_rejects_reversed_intervals():
    with pytest.raises(ValueError, match="low <= high"):
        tradeoffs.interval_verdict((2.0, 1.0), (1.0, 2.0))


def test_compare_variant_ratios_and_verdicts():
    c = tradeoffs.compare_variant(TABLE, "MLP", "static", calibration=100)
    assert c["variant"] == "static, 100 calibration samples"
    assert c["size_ratio"] == pytest.approx(0.27)
    assert c["accuracy_change_points"] == pytest.approx(0.0)
    assert c["speedup"] == pytest.approx(10.0 / 6.0)
    assert c["latency_verdict"] == "faster"
    assert c["batch"] == 256 and c["speedup_batch"] == pytest.approx(100 / 60)
    assert c["latency_verdict_batch"] == "faster"
    d = tradeoffs.compare_variant(TABLE, "MLP", "dynamic", per_channel=True)
    assert d["variant"] == "dynamic per-channel" and d["latency_verdict"] == "slower"
    bad = tradeoffs.compare_variant(TABLE, "MLP", "static", calibration=10)
    assert bad["accuracy_change_points"] == pytest.approx(-7.0)
    assert bad["latency_verdict"] == "no measurable difference"
    f = tradeoffs.compare_variant(TABLE, "MLP", "float16")
    assert f["latency_verdict_batch"] == "no measurable difference"


def test_compare_variant_without_batch_columns():
    slim = TABLE[list(tradeoffs.REQUIRED_COLUMNS)]
    c = tradeoffs.compare_variant(slim, "MLP", "dynamic")
    assert "speedup_batch" not in c and c["latency_verdict"] == "slower"
    html = tradeoffs.variant_html(slim, "MLP", "dynamic")
    assert "batch 256" not in html and "batch 1" in html


def test_compare_variant_with_batch_but_no_size_column():
    c = tradeoffs.compare_variant(TABLE.drop(columns=["batch"]), "MLP", "float16")
    assert c["batch"] is None
    assert "latency, batch large" in tradeoffs.variant_html(
        TABLE.drop(columns=["batch"]), "MLP", "float16"
    )


def test_variant_html_reports_everything():
    html = tradeoffs.variant_html(TABLE, "MLP", "static", True, 100)
    for text in (
        "MLP: static per-channel, 100 calibration samples",
        "30.0 KB",
        "0.30x the fp32 size",
        "+0.5 points vs fp32",
        "faster",
        "latency, batch 256",
        "confidence intervals",
    ):
        assert text in html, f"expected {text!r} in the report, got {html}"
    assert "slower" in tradeoffs.variant_html(TABLE, "MLP", "dynamic")
