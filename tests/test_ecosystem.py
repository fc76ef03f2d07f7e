"""Unit tests for course.ecosystem: operator history, opset support, contracts, pickle scans."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import onnx.defs
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from course import ecosystem, model_contract, opsets

LATEST = onnx.defs.onnx_opset_version()
SYSTEM = f"{os.system.__module__}.{os.system.__name__}"


class Payload:
    """Pickles as a call to os.system; the tests never unpickle it."""

    def __reduce__(self):
        return (os.system, ("echo never run",))


# ------------------------------------------------------------------ operator history


def test_schema_events_marks_first_versions_as_added():
    events = ecosystem.schema_events()
    assert list(events.columns) == ["operator", "opset", "event", "domain"]
    gelu = events[events.operator == "Gelu"]
    assert gelu.iloc[0].tolist()[1:3] == [20, "added"], gelu
    upsample = events[(events.operator == "Upsample") & (events.event == "deprecated")]
    assert upsample.opset.tolist() == [10], upsample
    usable = events[events.event != "deprecated"]
    assert (usable.groupby("operator").event.first() == "added").all()
    group_norm = events[events.operator == "GroupNormalization"]
    assert group_norm.event.tolist()[:2] == ["deprecated", "added"], group_norm
    assert events.opset.is_monotonic_increasing


def test_schema_events_other_domain_and_unknown_domain():
    ml = ecosystem.schema_events("ai.onnx.ml")
    assert "TreeEnsembleClassifier" in set(ml.operator) and set(ml.domain) == {"ai.onnx.ml"}
    with pytest.raises(ValueError, match="unknown operator domain"):
        ecosystem.schema_events("com.example")


def test_ir_version_dates_come_from_onnx_version_enum():
    dates = ecosystem.ir_version_dates()
    assert dates[1] == datetime.date(2017, 10, 10)
    assert dates[7] == datetime.date(2020, 5, 8)
    ordered = [dates[v] for v in sorted(dates)]
    assert ordered == sorted(ordered), "IR versions should be published in order"
    assert onnx.IR_VERSION not in dates  # the newest IR version is not dated yet


def test_opset_timeline_counts_and_releases():
    t = ecosystem.opset_timeline()
    assert list(t.index) == list(range(1, LATEST + 1))
    assert t.loc[18, "first_release"] == "1.13.0" and t.loc[18, "ir_version"] == 8
    assert t.loc[18, "ir_published"] == datetime.date(2021, 7, 30)
    assert t.loc[20, "added"] >= 1
    usable = sum(
        1 for op in opsets.operator_names() if not onnx.defs.get_schema(op, LATEST, "").deprecated
    )
    assert t.loc[LATEST, "operators_available"] == usable
    events = ecosystem.schema_events()
    assert int(t[["added", "changed", "deprecated"]].to_numpy().sum()) == len(events)


def test_opset_timeline_domain_without_release_column():
    t = ecosystem.opset_timeline("ai.onnx.preview.training")
    assert (t.first_release == "").all() and t.ir_version.isna().all()
    ml = ecosystem.opset_timeline("ai.onnx.ml")
    assert ml.loc[1, "first_release"] == "1.0"


def _truth_changed(start: int, end: int) -> set[str]:
    names = set()
    for op in opsets.operator_names():
        history = opsets.operator_history(op)
        if history[0] > start:
            continue
        before = onnx.defs.get_schema(op, start, "")
        after = onnx.defs.get_schema(op, end, "")
        if not before.deprecated and not after.deprecated and after.since_version > start:
            names.add(op)
    return names


@pytest.mark.parametrize("start, end", [(11, 13), (17, 21), (13, LATEST), (1, 7)])
def test_changes_between_matches_schemas_in_force(start, end):
    got = ecosystem.changes_between(start, end)
    assert set(got["changed"]) == _truth_changed(start, end)
    for name in got["added"]:
        assert opsets.operator_history(name)[0] > start
    assert all(v == sorted(v) for v in got.values())


def test_changes_between_known_cases_and_empty_range():
    assert "Gelu" in ecosystem.changes_between(19, 20)["added"]
    assert "Upsample" in ecosystem.changes_between(9, 10)["deprecated"]
    assert "ReduceMean" in ecosystem.changes_between(17, 18)["changed"]
    assert ecosystem.changes_between(13, 13) == {"added": [], "changed": [], "deprecated": []}
    assert "Normalizer" not in ecosystem.changes_between(1, 5, "ai.onnx.ml")["added"]


@pytest.mark.parametrize(
    "start, end, error, match",
    [
        (21, 17, ValueError, "swap them"),
        (0, 3, ValueError, "1 <= start"),
        (5, LATEST + 1, ValueError, "newest"),
        (True, 3, TypeError, "not booleans"),
        ("x", 3, TypeError, "opset numbers"),
    ],
)
def test_changes_between_rejects_bad_ranges(start, end, error, match):
    with pytest.raises(error, match=match):
        ecosystem.changes_between(start, end)


def test_changes_frame_lists_versions_inside_the_range():
    frame = ecosystem.changes_frame(17, 21)
    cast = frame[frame.operator == "Cast"].iloc[0]
    assert cast.event == "changed" and all(17 < v <= 21 for v in cast["at opsets"])
    assert set(frame.event) <= {"added", "changed", "deprecated"}


def test_changes_view_summary_and_empty_range():
    summary, table = ecosystem.changes_view((20, 21))
    assert summary.startswith("ai.onnx opset 20 -> 21:") and "1.16" in summary
    assert isinstance(table, pd.DataFrame) and len(table) > 5
    assert isinstance(table["at opsets"].iloc[0], str)
    assert len(ecosystem.changes_view((13, 13))) == 1


def test_ecosystem_explorer_updates_its_html():
    ex = ecosystem.ecosystem_explorer(17, 18)
    assert "ReduceMean" in ex.output.value and ex.error is None
    ex.controls["opsets_range"].value = (19, 20)
    assert "Gelu" in ex.output.value
    ex.controls["domain"].value = "ai.onnx.ml"  # clamps the range to ai.onnx.ml's newest opset
    assert ex.error is None and "ai.onnx.ml opset" in ex.output.value
    with pytest.raises(ValueError):
        ecosystem.ecosystem_explorer(5, 1)


def test_ecosystem_explorer_other_domain_is_offered():
    ex = ecosystem.ecosystem_explorer(1, 1, "ai.onnx.preview.training")
    assert ex.controls["domain"].value == "ai.onnx.preview.training"


def test_timeline_figure_labels(tmp_path):
    import matplotlib.pyplot as plt

    fig = ecosystem.timeline_figure()
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("opset") and "count" in ax.get_ylabel()
    assert "ai.onnx" in ax.get_title()
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"operators added"}
    _, own = plt.subplots()
    assert ecosystem.timeline_figure("ai.onnx.ml", ax=own) is own.figure
    plt.close("all")


# ------------------------------------------------------------------ opset support


def test_opset_support_measured_and_with_probe():
    row = ecosystem.OpsetSupport("tool", "converter", "1", (3, 9), 5, {2: "failed", 4: "ok"})
    assert row.measured == (4, 4)
    probe = pd.DataFrame({"outcome": ["ok", "ok"]}, index=pd.Index([6, 8], name="requested"))
    richer = row.with_probe(probe)
    assert richer.measured == (4, 8) and row.probed == {2: "failed", 4: "ok"}
    assert ecosystem.OpsetSupport("t", "runtime", "1", None).measured is None
    with pytest.raises(ValueError, match="outcome"):
        row.with_probe(pd.DataFrame({"x": [1]}))


def test_converter_support_reads_the_installed_tools():
    rows = {r.tool: r for r in ecosystem.converter_support()}
    assert set(rows) == {
        "torch.onnx (dynamo=True)",
        "tf2onnx",
        "skl2onnx",
        "onnxscript (authoring)",
    }
    from torch.onnx import _constants

    torch_row = rows["torch.onnx (dynamo=True)"]
    assert torch_row.declared[1] == _constants.ONNX_MAX_OPSET
    assert torch_row.default == _constants.ONNX_DEFAULT_OPSET
    import skl2onnx

    assert rows["skl2onnx"].declared[1] == skl2onnx.get_latest_tested_opset_version()
    tf_row = rows["tf2onnx"]
    assert tf_row.declared[0] <= tf_row.default <= tf_row.declared[1]
    assert rows["onnxscript (authoring)"].declared[0] == 1
    assert all(r.role == "converter" and r.source for r in rows.values())


def test_tf2onnx_constants_are_read_without_tensorflow():
    code = (
        "import sys; from course import ecosystem; row = ecosystem._tf2onnx_support(); "
        "print(row.declared, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("False"), f"TensorFlow was imported: {out.stdout}"


def test_tf2onnx_missing_or_without_tested_range(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        ecosystem.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tf2onnx" else real(name, *a),
    )
    assert ecosystem._tf2onnx_support().declared is None
    monkeypatch.setattr(ecosystem.importlib.util, "find_spec", real)

    class _Meta:
        def get_payload(self):
            return "no range stated here"

    monkeypatch.setattr(ecosystem.importlib.metadata, "metadata", lambda name: _Meta())
    assert ecosystem._tf2onnx_support().declared[0] == 1  # falls back to the constants' lowest
    assert ecosystem._version("surely-not-a-package") == "not installed"


def test_runtime_support_probes_both_runtimes(monkeypatch):
    ort_row, ref_row = ecosystem.runtime_support(versions=[1, 13, LATEST + 1])
    assert ort_row.probed[13] == "ok" and ort_row.probed[1] != "ok"
    assert ort_row.probed[LATEST + 1] == "opset too new"
    assert ref_row.declared == (1, LATEST) and ref_row.probed[13] == "ok"

    original = ecosystem._add_model

    def broken(opset):
        model = original(opset)
        model.graph.node[0].op_type = "NoSuchOperator"
        return model

    monkeypatch.setattr(ecosystem, "_add_model", broken)
    outcome = ecosystem._reference_probe([13])[13]
    assert outcome != "ok" and "NoSuchOperator" in outcome


def _identity_model(opset: int, scale: float = 1.0) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["y"])],
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        initializer=[numpy_helper.from_array(np.array(scale, np.float32), "s")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def test_probe_rows_classifies_each_outcome():
    x = np.ones((2, 4), np.float32)

    def convert(v):
        if v == 1:
            raise RuntimeError("cannot convert to opset 1\nmore text")
        if v == 3:
            return _identity_model(13)  # asked 3, stamped 13
        if v == 5:
            return _identity_model(5)  # onnxruntime has no Mul(5) kernel
        if v == 9:
            return _identity_model(13, scale=2.0)  # computes the wrong thing
        print("noise that must not escape")
        return _identity_model(v)

    probe = ecosystem._probe_rows(convert, [1, 3, 5, 9, 13], x, x.astype(np.float64))
    outcome = probe["outcome"].to_dict()
    assert outcome[1] == "conversion failed" and "cannot convert" in probe.loc[1, "note"]
    assert outcome[3] == "stamped opset 13 instead"
    assert outcome[5] == "onnxruntime refuses the result"
    assert outcome[9] == "wrong results" and probe.loc[9, "max |error|"] == 1.0
    assert outcome[13] == "ok" and probe.loc[13, "max |error|"] == 0.0
    assert str(probe["stamped"].dtype) == "Int64"


def test_probe_skl2onnx_measures_floor_and_ceiling():
    probe = ecosystem.probe_skl2onnx([5, 7, 23, LATEST + 1])
    assert probe.loc[5, "outcome"] == "onnxruntime refuses the result"
    assert probe.loc[7, "outcome"] == "ok" and probe.loc[7, "max |error|"] < 1e-4
    assert probe.loc[23, "outcome"] == "ok" and "latest tested" in probe.loc[23, "note"]
    assert probe.loc[LATEST + 1, "outcome"] == "conversion failed"


@pytest.mark.slow
def test_probe_torch_export_records_the_stamp(capfd):
    probe = ecosystem.probe_torch_export([18, LATEST + 1])
    assert probe.loc[18, "outcome"] == "ok" and probe.loc[18, "max |error|"] < 1e-5
    assert probe.loc[LATEST + 1, "stamped"] != LATEST + 1
    assert "treespec" not in " ".join(probe["note"])
    captured = capfd.readouterr()
    assert "torchvision" not in captured.err, "exporter log lines leaked"


def test_support_frame_and_figure():
    rows = [
        ecosystem.OpsetSupport("conv", "converter", "1.0", (7, 20), 15, {6: "failed", 21: "ok"}),
        ecosystem.OpsetSupport("run", "runtime", "2.0", None, None, {7: "ok", 30: "too new"}),
    ]
    frame = ecosystem.support_frame(rows)
    assert frame.loc["conv", "declared"] == "7-20" and frame.loc["run", "declared"] == ""
    assert frame.loc["conv", "measured (probe)"] == "21-21" and frame.loc["run", "probed"] == 2
    fig = ecosystem.support_figure(rows, title="t")
    ax = fig.axes[0]
    assert ax.get_title() == "t" and ax.get_xlabel() == "ai.onnx opset version"
    assert ax.get_xlim()[1] >= 30
    with pytest.raises(ValueError, match="at least one"):
        ecosystem.support_figure([])


# ------------------------------------------------------------------ model contract


def _linear_model(batch="batch", opset=18, extra=None) -> onnx.ModelProto:
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    imports = [helper.make_opsetid("", opset)] + (extra or [])
    model = helper.make_model(graph, opset_imports=imports, ir_version=8)
    return ecosystem.add_model_card(model, {"name": "linear", "version": "1"})


@pytest.fixture
def contract():
    sample = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    return ecosystem.contract_from_model(_linear_model(), sample)


def test_contract_from_model_records_the_promises(contract):
    assert contract.inputs == [ecosystem.TensorSpec("x", "float32", ("batch", 4))]
    assert contract.outputs[0].shape == ("batch", 3)
    assert contract.opsets == {"": (18, 18)} and contract.max_ir_version == 8
    assert contract.metadata_keys == ("name", "version")
    assert contract.expected[0].shape == (5, 3)
    same = ecosystem.contract_from_model(_linear_model(), {"x": contract.sample["x"]})
    np.testing.assert_array_equal(same.expected[0], contract.expected[0])
    assert ecosystem.contract_from_model(_linear_model()).expected is None


def test_check_contract_passes_for_the_same_model(contract):
    report = ecosystem.check_contract(_linear_model(), contract)
    assert report.passed, report.problems
    assert report.problems == [] and "contract PASSED" in str(report)
    assert "passed" in report._repr_html_() and list(report.to_frame().columns) == [
        "check",
        "passed",
        "detail",
    ]


def _problems(model, contract) -> str:
    report = ecosystem.check_contract(model, contract)
    assert not report.passed
    assert "FAILED" in str(report) and "FAILED" in report._repr_html_()
    return " | ".join(report.problems)


def test_check_contract_catches_regressions(contract):
    assert "fixed to 1" in _problems(_linear_model(batch=1), contract)
    renamed = _linear_model()
    renamed.graph.input[0].name = "pixels"
    renamed.graph.node[0].input[0] = "pixels"
    assert "missing" in _problems(renamed, contract)
    nudged = _linear_model()
    w = numpy_helper.to_array(nudged.graph.initializer[0]) * 1.5
    nudged.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "w"))
    assert "exceeds" in _problems(nudged, contract)
    newer = onnx.version_converter.convert_version(_linear_model(), 21)
    assert "allowed 18-18" in _problems(newer, contract)
    no_card = _linear_model()
    del no_card.metadata_props[:]
    assert "metadata 'name': missing" in _problems(no_card, contract)
    new_ir = _linear_model()
    new_ir.ir_version = 9
    assert "at most 8" in _problems(new_ir, contract)
    with_ml = _linear_model(extra=[helper.make_opsetid("ai.onnx.ml", 3)])
    assert "does not allow" in _problems(with_ml, contract)


def test_check_contract_dtype_rank_fixed_dims_and_dont_care(contract):
    contract.inputs = [ecosystem.TensorSpec("x", "float64", ("batch", 5))]
    text = _problems(_linear_model(), contract)
    assert "dtype float32, promised float64" in text and "axis 1 is 4, promised 5" in text
    contract.inputs = [ecosystem.TensorSpec("x", "float32", ("batch",))]
    assert "rank 2" in _problems(_linear_model(), contract)
    contract.inputs = [ecosystem.TensorSpec("x", "float32", (None, None))]
    contract.outputs = [ecosystem.TensorSpec("y", "float32", (None, 3))]
    contract.sample = None
    assert ecosystem.check_contract(_linear_model(batch=7), contract).passed


def test_check_contract_parity_edge_cases(contract):
    too_new = _linear_model(opset=LATEST + 1)
    contract.opsets = {"": (1, LATEST + 1)}
    text = _problems(too_new, contract)
    assert "does not load" in text and "loads in onnxruntime" in text
    contract.opsets = {"ai.onnx": (18, 18)}
    contract.sample = {"x": contract.sample["x"].astype(np.float64)}
    assert "parity on the sample" in _problems(_linear_model(), contract)
    contract.sample = {"x": np.ones((5, 4), np.float32)}
    contract.expected = [np.ones((5, 3)), np.ones(2)]
    assert "expected 2" in _problems(_linear_model(), contract)
    contract.expected = [np.ones((4, 3))]
    assert "output shape" in _problems(_linear_model(), contract)


def test_check_contract_needs_a_contract():
    with pytest.raises(TypeError, match="ModelContract"):
        ecosystem.check_contract(_linear_model(), {"inputs": []})


def test_dtype_falls_back_for_types_numpy_cannot_name():
    value = helper.make_tensor_value_info("s", TensorProto.STRING, [2])
    assert model_contract._dtype(value) == "object"
    undefined = helper.make_tensor_value_info("u", TensorProto.UNDEFINED, [2])
    assert model_contract._dtype(undefined) == "elem_type 0"
    unknown = helper.make_tensor_value_info("d", TensorProto.FLOAT, [None])
    assert model_contract._dims(unknown) == ("?",)


# ------------------------------------------------------------------ provenance


def test_add_model_card_replaces_and_keeps(tmp_path):
    model = _linear_model()
    updated = ecosystem.add_model_card(model, {"version": "2", "license": "MIT"})
    assert ecosystem.model_card(updated) == {"name": "linear", "version": "2", "license": "MIT"}
    assert ecosystem.model_card(model)["version"] == "1", "the input model must not change"
    onnx.save(updated, tmp_path / "m.onnx")
    assert ecosystem.model_card(tmp_path / "m.onnx")["license"] == "MIT"
    with pytest.raises(TypeError, match="json.dumps"):
        ecosystem.add_model_card(model, {"accuracy": 0.97})
    with pytest.raises(TypeError, match="ModelProto"):
        ecosystem.add_model_card(b"bytes", {})


def test_sha256_of_bytes_and_files(tmp_path):
    import hashlib

    path = tmp_path / "f.bin"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    assert ecosystem.sha256_of(path) == hashlib.sha256(data).hexdigest()
    assert ecosystem.sha256_of(data[:10]) == hashlib.sha256(data[:10]).hexdigest()
    with pytest.raises(FileNotFoundError):
        ecosystem.sha256_of(tmp_path / "missing")


def test_safetensors_header_reads_files_and_bytes(tmp_path):
    from safetensors.numpy import save, save_file

    arrays = {"w": np.zeros((2, 3), np.float32), "n": np.arange(4, dtype=np.int64)}
    save_file(arrays, tmp_path / "a.safetensors", metadata={"k": "v"})
    header = ecosystem.safetensors_header(tmp_path / "a.safetensors")
    assert header["w"]["shape"] == [2, 3] and header["n"]["dtype"] == "I64"
    assert header["__metadata__"] == {"k": "v"}
    assert ecosystem.safetensors_header(save(arrays))["n"]["shape"] == [4]


def test_safetensors_header_rejects_other_files(tmp_path):
    import torch

    torch.save({"w": torch.ones(2)}, tmp_path / "w.pt")
    with pytest.raises(ecosystem.NotSafetensorsError, match="pickle or zip"):
        ecosystem.safetensors_header(tmp_path / "w.pt")
    with pytest.raises(ecosystem.NotSafetensorsError, match="too short"):
        ecosystem.safetensors_header(b"abc")
    with pytest.raises(ecosystem.NotSafetensorsError, match="not JSON"):
        ecosystem.safetensors_header(struct.pack("<Q", 4) + b"\xff\xfe{]")
    with pytest.raises(ecosystem.NotSafetensorsError, match="not a JSON object"):
        ecosystem.safetensors_header(struct.pack("<Q", 2) + b"[]")
    with pytest.raises(FileNotFoundError):
        ecosystem.safetensors_header(tmp_path / "missing.safetensors")


# ------------------------------------------------------------------ pickle scans


@pytest.mark.parametrize("protocol", range(6))
def test_scan_pickle_finds_the_payload_at_every_protocol(protocol):
    scan = ecosystem.scan_pickle(pickle.dumps(Payload(), protocol=protocol))
    assert scan.imports == [SYSTEM] and not scan.safe and scan.calls >= 1
    assert scan.unsafe_imports == [SYSTEM]
    assert "UNSAFE" in str(scan)


@pytest.mark.parametrize("protocol", range(6))
def test_scan_pickle_plain_data_is_safe(protocol):
    data = {"cmd": "posix system", "w": [0.5, -1.0], "t": ("a", "b"), "n": None, "i": 3}
    scan = ecosystem.scan_pickle(pickle.dumps(data, protocol=protocol))
    assert scan.imports == [] and scan.safe and scan.calls == 0
    assert "safe" in str(scan)


@pytest.mark.parametrize("protocol", range(6))
def test_scan_pickle_resolves_memoized_module_names(protocol):
    data = pickle.dumps([os.system, os.getcwd, os.system], protocol=protocol)
    assert ecosystem.scan_pickle(data).imports == [SYSTEM, f"{os.getcwd.__module__}.getcwd"]


def test_scan_pickle_handcrafted_opcodes():
    inst = ecosystem.scan_pickle(b"(ios\nsystem\n.")  # INST: import and call in one opcode
    assert inst.imports == ["os.system"] and inst.calls == 1
    ext = ecosystem.scan_pickle(b"\x80\x02\x82\x01.")  # EXT1: the copyreg extension registry
    assert ext.imports == ["copyreg extension 1"]
    bare = ecosystem.scan_pickle(b"\x80\x04\x93.")  # STACK_GLOBAL with nothing before it
    assert bare.imports == ["?.?"]
    frame = inst.to_frame()
    assert list(frame.columns) == ["member", "position", "opcode", "detail", "allowed"]


def test_scan_pickle_torch_checkpoint_with_allowlist(tmp_path):
    import torch

    torch.save({"w": torch.ones(2, 2), "step": torch.tensor(3)}, tmp_path / "w.pt")
    strict = ecosystem.scan_pickle(tmp_path / "w.pt")
    assert set(strict.imports) <= ecosystem.TORCH_TENSOR_GLOBALS and not strict.safe
    allowed = ecosystem.scan_pickle(tmp_path / "w.pt", allowed=ecosystem.TORCH_TENSOR_GLOBALS)
    assert allowed.safe and allowed.findings[0].member.endswith("data.pkl")
    assert allowed.to_frame()["allowed"].iloc[0] in (True, "")
    raw = (tmp_path / "w.pt").read_bytes()
    assert ecosystem.scan_pickle(raw).imports == strict.imports


def test_scan_pickle_rejects_what_is_not_a_pickle(tmp_path):
    with pytest.raises(ValueError, match="not a readable pickle"):
        ecosystem.scan_pickle(b"\x80\x05definitely not a pickle")
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="no .pkl member"):
        ecosystem.scan_pickle(archive)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/data.pkl", b"garbage")
    with pytest.raises(ValueError, match="archive/data.pkl"):
        ecosystem.scan_pickle(archive)
    with pytest.raises(FileNotFoundError):
        ecosystem.scan_pickle(tmp_path / "missing.pkl")


def test_scan_pickle_numpy_array_imports_numpy_internals():
    scan = ecosystem.scan_pickle(pickle.dumps(np.arange(3.0)))
    assert scan.imports and all(name.startswith("numpy") for name in scan.imports)
    assert not scan.safe


def test_quiet_hides_prints_logs_and_warnings(capsys):
    import logging
    import warnings

    with ecosystem._quiet():
        print("hidden")
        logging.getLogger("course-test").warning("hidden log")
        warnings.warn("hidden warning", UserWarning, stacklevel=1)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert logging.root.manager.disable == 0


def test_json_round_trip_of_a_contract_header_is_plain_data():
    # the card values are strings, so a model card survives JSON export for a registry
    card = ecosystem.model_card(_linear_model())
    assert json.loads(json.dumps(card)) == card
