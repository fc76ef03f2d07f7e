"""Unit tests for course.opsets: schema history, tiny examples, runtime probes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from course import opsets


def test_latest_opset_matches_onnx():
    assert opsets.latest_opset() == onnx.defs.onnx_opset_version()
    assert opsets.latest_opset("ai.onnx") == opsets.latest_opset("")
    assert opsets.latest_opset("ai.onnx.ml") >= 3
    with pytest.raises(ValueError, match="unknown operator domain"):
        opsets.latest_opset("com.example")


def test_operator_names_per_domain():
    default, ml = opsets.operator_names(), opsets.operator_names("ai.onnx.ml")
    assert "Relu" in default and "Relu" not in ml
    assert "TreeEnsembleClassifier" in ml and "TreeEnsembleClassifier" not in default
    assert default == sorted(default)


def test_operator_history_is_ascending_and_starts_at_introduction():
    history = opsets.operator_history("Squeeze")
    assert history[0] == 1 and 13 in history, history
    assert history == sorted(history)
    assert opsets.operator_history("Gelu")[0] == 20


def test_operator_history_unknown_name_suggests():
    with pytest.raises(ValueError, match="did you mean Relu"):
        opsets.operator_history("Relux")
    with pytest.raises(ValueError, match="domain 'ai.onnx.ml'"):
        opsets.operator_history("Relu", "ai.onnx.ml")


def test_schema_at_resolves_the_version_in_force():
    assert opsets.schema_at("Squeeze", 12).since_version == 11
    assert opsets.schema_at("Squeeze", 18).since_version == 13
    assert opsets.schema_at("Relu").since_version == opsets.operator_history("Relu")[-1]


def test_schema_at_too_early_names_the_first_opset():
    with pytest.raises(opsets.OperatorNotAvailableError, match="introduced in opset 20"):
        opsets.schema_at("Gelu", 18)


def test_schema_at_deprecated_operator():
    with pytest.raises(opsets.OperatorNotAvailableError, match="deprecated from opset 10"):
        opsets.schema_at("Upsample", 12)
    assert opsets.schema_at("Upsample", 9).since_version == 9


@pytest.mark.parametrize("opset, where", [(11, "attribute"), (13, "input")])
def test_tiny_example_follows_signature_changes(opset, where):
    ex = opsets.tiny_example("Squeeze", opset)
    node = ex.model.graph.node[0]
    if where == "attribute":
        assert [a.name for a in node.attribute] == ["axes"] and len(node.input) == 1
    else:
        assert not node.attribute and len(node.input) == 2
    assert ex.model.opset_import[0].version == opset
    (out,) = ex.outputs.values()
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out, ex.inputs["data"][:, 0, :])
    assert ex.runtime == "onnxruntime"


def test_tiny_example_generic_elementwise_matches_numpy():
    ex = opsets.tiny_example("Add", 14)
    np.testing.assert_allclose(ex.outputs["C"], ex.inputs["A"] + ex.inputs["B"], rtol=1e-6)
    assert not np.array_equal(ex.inputs["A"], ex.inputs["B"])  # a visible, non-trivial example
    onnx.checker.check_model(ex.model, full_check=True)


def test_tiny_example_bool_and_variadic_outputs():
    ex = opsets.tiny_example("And")
    np.testing.assert_array_equal(ex.outputs["C"], ex.inputs["A"] & ex.inputs["B"])
    split = opsets.tiny_example("Split", 11)
    assert [v.shape for v in split.outputs.values()] == [(2, 1), (2, 3)]


def test_tiny_example_old_opset_falls_back_to_reference():
    ex = opsets.tiny_example("Relu", 1)  # no type inference and no onnxruntime kernel at opset 1
    assert ex.runtime == "onnx.reference"
    assert "onnxruntime refused it" in ex.note
    np.testing.assert_array_equal(ex.outputs["Y"], np.maximum(ex.inputs["X"], 0))
    assert "computed by onnx.reference" in ex.text()


def test_tiny_example_ml_domain_imports_both_domains():
    ex = opsets.tiny_example("LabelEncoder", 2, "ai.onnx.ml")
    assert {i.domain for i in ex.model.opset_import} == {"", "ai.onnx.ml"}
    assert ex.outputs["Y"].tolist() == [0, 1, -1]
    assert "input X object" in ex.text()


def test_tiny_example_without_recipe_says_what_exists():
    with pytest.raises(ValueError, match="no tiny example for LSTM"):
        opsets.tiny_example("LSTM")


def test_tiny_example_ir_version_is_minimal_for_its_opset():
    assert opsets.tiny_example("Relu", 13).model.ir_version == 7
    assert opsets.tiny_example("Pad", 2).model.ir_version >= 3  # opset 2: no release of its own


def test_text_lists_the_model_and_values():
    text = opsets.tiny_example("Softmax", 13).text()
    assert "Softmax" in text and "input input float32[2, 3]" in text and "output" in text


def test_probe_opsets_finds_the_accepted_range():
    probe = opsets.probe_opsets()
    low, high = probe.accepted_range
    assert low <= 7 and high == opsets.latest_opset(), probe.outcomes
    assert probe.outcomes[high + 1] == "opset too new"
    assert "official support" in probe.messages[high + 1]
    assert probe.outcomes[1] == "no kernel at this opset"
    frame = probe.to_frame()
    assert list(frame.columns) == ["outcome", "runtime says"] and len(frame) == len(probe.outcomes)


def test_probe_ml_domain():
    probe = opsets.probe_opsets("ai.onnx.ml", versions=[1, 99])
    assert probe.outcomes == {1: "accepted", 99: "opset too new"}
    assert probe.what == "opset ai.onnx.ml"
    with pytest.raises(ValueError, match="supports ai.onnx"):
        opsets.probe_opsets("com.microsoft")


def test_probe_ir_versions():
    probe = opsets.probe_ir_versions(versions=[7, onnx.IR_VERSION + 5])
    assert probe.accepted == [7]
    assert probe.outcomes[onnx.IR_VERSION + 5] == "IR version too new"
    assert "Unsupported model IR version" in probe.messages[onnx.IR_VERSION + 5]
    empty = opsets.ProbeResult("x", {1: "rejected"})
    assert empty.accepted_range is None


@pytest.mark.parametrize(
    "message, kind",
    [
        ("Unsupported model IR version: 15", "IR version too new"),
        ("model ir_version 2 is too old", "IR version rejected"),
        ("Current official support for domain ai.onnx is till opset 28.", "opset too new"),
        (
            "NOT_IMPLEMENTED : Could not find an implementation for Add(1)",
            "no kernel at this opset",
        ),
        ("something else", "rejected"),
    ],
)
def test_classify(message, kind):
    assert opsets._classify(message) == kind


def test_load_error_is_short_and_empty_on_success(tmp_path):
    good = opsets.tiny_example("Relu", 14).model
    assert opsets.load_error(good) == "" and opsets.load_error(good.SerializeToString()) == ""
    newer = onnx.ModelProto()
    newer.CopyFrom(good)
    newer.ir_version = onnx.IR_VERSION + 1
    assert opsets.load_error(newer).startswith("Unsupported model IR version")
    assert opsets.load_error(b"not a model")  # some message, never an exception


def test_probe_figure_draws_one_row_per_probe():
    probes = (
        opsets.probe_ir_versions(versions=[7, 99]),
        opsets.probe_opsets(versions=[1, 13, 99]),
    )
    fig = opsets.probe_figure(*probes, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ir_version", "opset ai.onnx"]
    assert len(ax.patches) == 5 and ax.get_title() == "t"
    labels = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"accepted", "IR version too new / opset too new", "no kernel at this opset"} == labels
    with pytest.raises(ValueError, match="at least one"):
        opsets.probe_figure()


def test_load_error_drops_the_status_prefix():
    gelu = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Gelu", ["x"], ["y"])],
            "g",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 18)],
        ir_version=8,
    )
    message = opsets.load_error(gelu)
    assert message.startswith("This is an invalid model") and "Gelu" in message, message
