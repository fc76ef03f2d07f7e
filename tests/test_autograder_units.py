"""Fast unit tests of the autograder's pure parts (no kernel, no course): exit reasons, feedback
redaction, LMS name matching, path checks, forged results, the progress bar."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from autograder import sandbox as sb
from autograder.collect import _match, _safe_relative
from autograder.course import valid_student_id
from autograder.feedback import REDACTED, _redact, hidden_lines
from autograder.grade import exercise_of, fingerprint
from autograder.prepare import _without_hidden
from autograder.progress import Progress
from autograder.scoring import _forged_results


@pytest.mark.parametrize(
    ("code", "sandboxed", "words"),
    [
        (128 + signal.SIGSEGV, True, "segmentation fault"),
        (-signal.SIGSEGV, False, "segmentation fault"),
        (128 + signal.SIGXCPU, True, "CPU"),
        (128 + signal.SIGKILL, True, "SIGKILL"),
        (3, True, "exited with code 3"),
        (0, False, "exited with code 0"),
    ],
)
def test_kernel_exit_in_words(code, sandboxed, words):
    got = sb.describe_exit(code, sandboxed=sandboxed)
    assert words in got, f"exit {code} (sandboxed={sandboxed}): expected {words!r} in {got!r}"


def test_limits_describe_and_no_sandbox_probe():
    text = sb.Limits(wall_s=60, memory_mb=2048).describe()
    assert "wall 60 s" in text and "memory 2048 MB" in text, text
    info = sb.probe("none")
    assert not info.isolated and info.to_dict()["warning"] == sb.NO_SANDBOX_WARNING
    with pytest.raises(ValueError, match="auto, bubblewrap or none"):
        sb.probe("docker")


SOURCE = """got = f(3)
assert got == 9, f"expected 9, got {got}"
### BEGIN HIDDEN TESTS
assert f(11) == 121, "secret case"
assert f(0) == 0
### END HIDDEN TESTS
"""


def test_hidden_lines_skip_short_and_visible_lines():
    secrets = hidden_lines([SOURCE, "x = 1\nassert f(0) == 0\n"])
    assert secrets == {'assertf(11)==121,"secretcase"'}, secrets


def test_redaction_reaches_nested_outputs_and_ansi():
    secrets = hidden_lines([SOURCE])
    output = {
        "output_type": "error",
        "traceback": ["\x1b[0;31m----> 4\x1b[0m assert f(11) == 121, \x1b[0;34m'secret case'"],
        "evalue": "ok",
    }
    new, count = _redact(output, secrets)
    assert count == 0, "single quotes differ from the source: not the same line"
    output["traceback"] = ['----> 4 assert f(11) == 121, "secret case"', "AssertionError"]
    new, count = _redact(output, secrets)
    assert count == 1 and new["traceback"][0] == REDACTED, new
    text, count = _redact("In: ['', 'assert  f(11)==121,  \"secret case\"']", secrets)
    assert count == 1 and text == REDACTED, text


def test_without_hidden_is_the_release_text():
    assert (
        _without_hidden(SOURCE).strip() == 'got = f(3)\nassert got == 9, f"expected 9, got {got}"'
    )


def _test_cell(source: str, outputs: list) -> nbformat.NotebookNode:
    cell = new_code_cell(source, outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "ex1-t", "points": 1, "solution": False}
    return cell


def test_forged_result_in_a_statement_cell_is_found():
    forged = new_output("execute_result", data={"text/plain": "1000"}, execution_count=1)
    nb = new_notebook(
        cells=[
            _test_cell("assert f(1) == 2", [forged]),
            _test_cell("score = 1\nscore", [forged]),  # a cell that ends in an expression may
        ]
    )
    found = _forged_results(nb)
    assert len(found) == 1 and "ex1-t" in found[0], found


@pytest.mark.parametrize(
    ("path", "student", "attempt", "original"),
    [
        (
            "doe_jdoe1_attempt_2024-03-01-10-00-00_00-template.ipynb",
            "jdoe1",
            "2024-03-01-10-00-00",
            "00-template.ipynb",
        ),
        ("doejane_LATE_12345_678_lesson (1).ipynb", "12345", "678", "lesson (1).ipynb"),
        ("Jane Doe_42_assignsubmission_file_/x.ipynb", "42", "", "x.ipynb"),
        ("export/alice/00-template/00-template.ipynb", "alice", "", "00-template.ipynb"),
    ],
)
def test_lms_names(path, student, attempt, original):
    from autograder.collect import PATTERNS

    cand = _match(path.split("/"), "00-template", PATTERNS)
    assert cand is not None, f"{path} should match"
    assert (cand.student, cand.attempt, cand.original) == (student, attempt, original), cand


def test_unsafe_paths_are_refused():
    assert _safe_relative("/etc/passwd")[1] == "absolute path"
    assert _safe_relative("C:\\Users\\x.ipynb")[1] == "absolute path"
    assert "'..'" in _safe_relative("a/../../b.ipynb")[1]
    assert _safe_relative("a\\b.ipynb") == ("a/b.ipynb", None)
    assert not valid_student_id("..") and not valid_student_id("a/b")
    assert valid_student_id("jane.doe@uni")


def test_fingerprint_changes_with_content(tmp_path):
    (tmp_path / "a.ipynb").write_text("1")
    first = fingerprint(tmp_path)
    (tmp_path / "a.ipynb").write_text("2")
    assert fingerprint(tmp_path) != first, "a changed submission must be graded again"
    assert exercise_of("ex12-hidden") == "ex12"


def test_progress_bar_counts_and_draws():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = Progress("00-template", total=3, stream=stream)
    bar.done("a", "graded", "5/5")
    bar.done("b", "failed", "(kernel-died) ...")
    bar.close()
    assert (bar.graded, bar.failed) == (1, 1)
    assert "2/3" in stream.getvalue() and "failed 1" in stream.getvalue(), stream.getvalue()


@pytest.mark.parametrize(
    "path",
    [
        "export/zed/x_77777_attempt_2099-01-01-00-00-00_00-template.ipynb",
        "export/Ann Poe_42_assignsubmission_file_/x_77777_attempt_2099-01-01_00-template.ipynb",
        "export/Ann Poe_42_assignsubmission_file_/doe_LATE_77777_1_00-template.ipynb",
    ],
)
def test_a_name_claiming_another_students_id_is_refused(path):
    from autograder.collect import PATTERNS, Impersonation

    with pytest.raises(Impersonation, match="77777"):
        _match(path.split("/"), "00-template", PATTERNS, root_depth=1)
    # at the export's top the LMS wrote the whole flat name: that one is trusted
    flat = _match(["export", path.split("/")[-1]], "00-template", PATTERNS, root_depth=1)
    assert flat is not None and flat.student == "77777", flat


def test_bridge_codec_round_trip_and_refusals():
    import base64
    import io as _io
    import json

    import numpy as np
    import onnx
    from onnx import helper

    from autograder import bridge

    model = helper.make_model(helper.make_graph([], "g", [], []))

    class Yes(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    value = {
        "n": Yes(0),
        (1, "k"): [1.5, float("nan"), None, True, b"\x00", {3, 4}, 2**70, 1j],
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.int64(7),
        "m": model,
        "$x": "$literal",
    }
    got = bridge.loads(bridge.dumps(value))
    assert type(got["n"]) is int and got["n"] != 1, "a subclass must arrive as a plain int"
    assert got[(1, "k")][-2:] == [2**70, 1j] and np.isnan(got[(1, "k")][1])
    assert got["a"].dtype == np.float32 and got["a"].tolist() == value["a"].tolist()
    assert type(got["s"]) is np.int64 and isinstance(got["m"], onnx.ModelProto)
    assert got["$x"] == "$literal"
    with pytest.raises(bridge.Unencodable, match="numpy array of Python objects"):
        bridge.dumps(np.array([object()], dtype=object))
    with pytest.raises(bridge.Unencodable, match="function"):
        bridge.dumps(lambda: 0)
    buf = _io.BytesIO()
    np.save(buf, np.array([print, 1], dtype=object), allow_pickle=True)
    evil = json.dumps({"$ndarray": base64.b64encode(buf.getvalue()).decode()})
    with pytest.raises(ValueError, match="allow_pickle|Object arrays"):
        bridge.loads(evil)
    with pytest.raises(bridge.NotData):
        bridge.loads(json.dumps({"$pickle": "gASV"}))


def test_verdict_plan_reads_names_from_the_instructors_cells():
    from autograder.verdict import make_plan

    def cell(source, **meta):
        c = new_code_cell(source)
        if meta:
            c.metadata["nbgrader"] = meta
        return c

    nb = new_notebook(
        cells=[
            cell("import numpy as np\ndata = np.arange(3)"),
            cell("def f(x):\n    return 0", grade_id="ex1", solution=True, grade=False),
            cell("timing = [f(data) for _ in range(1000)]"),  # a demonstration no test reads
            cell("%matplotlib inline"),  # not Python: kept, it might matter
            cell("assert f(data) == 1", grade_id="ex1-t", grade=True, solution=False),
        ]
    )
    gradebook = [
        {
            "name": "ex1",
            "cell_type": "code",
            "source": "def f(x):\n    return x.sum()\nK = 1",
            "grade": False,
            "solution": True,
        },
        {
            "name": "ex1-t",
            "cell_type": "code",
            "source": "assert f(data) == 3  # hidden too",
            "grade": True,
            "solution": False,
        },
    ]
    plan = make_plan(nb, gradebook)
    assert plan.student_names == ["K", "f"], plan.student_names  # not imports
    sources = [c.source for c in plan.cells]
    assert sources == [
        "import numpy as np\ndata = np.arange(3)",
        "%matplotlib inline",
        "assert f(data) == 3  # hidden too",
    ], f"expected the setup, the magic and the test (not the timing demo), got {sources}"
    assert plan.cells[2].grade_id == "ex1-t" and plan.cells[2].uses == ["f"], plan.cells[2]


def test_mounts_never_show_the_course(tmp_path, monkeypatch):
    root = tmp_path / "course"  # a course folder that is itself named like the package
    (root / "source").mkdir(parents=True)
    (root / "nbgrader_config.py").write_text("")
    monkeypatch.chdir(tmp_path)
    sb._PACKAGE.clear()
    found = sb._course_package()
    assert found and all(not p.startswith(str(tmp_path)) for p in found), found
    forbidden = ["~" + str(root), str(root / "source"), str(root / "gradebook.db")]
    sb.check_mounts([*found, str(root / ".venv")], forbidden)
    for bad in (str(tmp_path), str(root), str(root / "source" / "x")):
        with pytest.raises(sb.MountRefused, match="refused"):
            sb.check_mounts([bad], forbidden)
    link = tmp_path / "link"
    link.symlink_to(root)
    with pytest.raises(sb.MountRefused):
        sb.check_mounts([str(link)], forbidden)


def test_prepare_opens_no_link_no_fifo_no_huge_file(tmp_path):
    import os

    from autograder.prepare import MAX_NOTEBOOK_MB, Refused, _read_submitted

    secret = tmp_path / "solution.ipynb"
    secret.write_text("{}")
    (tmp_path / "link.ipynb").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo.ipynb")
    with open(tmp_path / "huge.ipynb", "wb") as fh:
        fh.truncate(MAX_NOTEBOOK_MB * 2**20 + 1)
    for name, category in [
        ("link.ipynb", "not-a-notebook"),
        ("fifo.ipynb", "not-a-notebook"),
        ("huge.ipynb", "too-large"),
    ]:
        with pytest.raises(Refused) as info:
            _read_submitted(tmp_path / name)
        assert info.value.category == category, (name, info.value.reason)
    assert _read_submitted(secret) == b"{}"


def test_feedback_pages_run_no_script():
    from autograder.feedback import CSP, _defuse, add_csp

    page = add_csp("<html><head><script src='x.js'></script></head><body></body></html>")
    assert page.index(CSP) < page.index("<script"), "the policy must come before any script"
    out = new_output(
        "display_data", data={"text/html": "<script>alert(1)</script>", "text/plain": "x"}
    )
    _defuse(out)
    assert set(out["data"]) == {"text/plain"}, out


def test_bridge_sends_torch_tensors_and_pickles_only_towards_the_student():
    import torch

    from autograder import bridge

    state = {"w": torch.ones(2, 3, dtype=torch.bfloat16) / 3, "i": torch.arange(4)}
    back = bridge.loads(bridge.dumps(state))
    assert back["w"].dtype == torch.bfloat16 and torch.equal(back["w"], state["w"]), back
    # T -> S: an instructor's object that is not data travels pickled (S may unpickle it)
    wire = bridge.encode((range(3),), bridge._ref_of)
    assert "$pickle" in str(wire), wire
    assert bridge.decode(wire, unpickle=True) == (range(3),)
    # S -> T: never unpickled
    with pytest.raises(bridge.NotData, match="unknown tag"):
        bridge.decode(wire)


def test_bridge_sends_torchscript_and_the_classes_of_test_cells(monkeypatch):
    """Lesson 5's exercise 1 returns a TorchScript module (it crosses as torch's archive) and
    its tests call it with a module whose class only a test cell defines (it crosses with the
    class's source, never one written inside hidden-test markers)."""
    import linecache
    import sys
    import types

    import torch

    from autograder import bridge

    class Branchy(torch.nn.Module):
        def forward(self, x):
            return -x if x.sum() < 0 else x * 2

    scripted = torch.jit.script(Branchy())
    back = bridge.loads(bridge.dumps(scripted))
    x = torch.ones(2)
    assert isinstance(back, torch.jit.ScriptModule) and torch.equal(back(-x), x), back
    assert torch.equal(back(x), 2 * x), "the branch must survive the crossing"

    t_main = types.ModuleType("__main__")
    cell = "import torch\nclass _Test(torch.nn.Module):\n    def forward(self, x):\n        return x + 1\n"
    hidden = (
        "### BEGIN HIDDEN TESTS\nclass _Hidden:\n    def f(self):\n        return 1\n"
        "### END HIDDEN TESTS\n"
    )
    for name, text in (("<cell-a>", cell), ("<cell-b>", hidden)):
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
        exec(compile(text, name, "exec"), t_main.__dict__)
    monkeypatch.setitem(sys.modules, "__main__", t_main)
    monkeypatch.setattr(bridge, "_user_ns", lambda: t_main.__dict__)
    wire = bridge.encode((t_main._Test(),), bridge._ref_of)
    assert "$pickle-classes" in str(wire), wire
    with pytest.raises(bridge.Unencodable, match="hidden test"):
        bridge.encode((t_main._Hidden(),), bridge._ref_of)
    s_main = types.ModuleType("__main__")
    s_main.torch = torch
    monkeypatch.setitem(sys.modules, "__main__", s_main)
    monkeypatch.setattr(bridge, "_user_ns", lambda: s_main.__dict__)
    (module,) = bridge.decode(wire, unpickle=True)
    assert torch.equal(module(x), x + 1) and "_Test" in s_main.__dict__, module
    with pytest.raises(bridge.NotData, match="unknown tag"):
        bridge.decode(wire)  # T never unpickles


def test_bridge_rebuilds_an_onnxruntime_session_in_the_verdict_kernel(tmp_path, monkeypatch):
    """Lessons 4 and 6 return sessions: model bytes, providers and options cross; a path T
    passes reaches S with T's file."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from autograder import bridge

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "relu.onnx"
    path.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.intra_op_num_threads, so.log_severity_level = 1, 3
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    back = bridge.loads(bridge.dumps(session))
    got = back.get_session_options()
    assert (
        isinstance(back, ort.InferenceSession) and back.get_providers() == session.get_providers()
    )
    assert (got.graph_optimization_level, got.intra_op_num_threads, got.log_severity_level) == (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        1,
        3,
    ), got
    assert back.run(None, {"x": np.array([-1.0, 2.0], np.float32)})[0].tolist() == [0.0, 2.0]
    with pytest.raises(bridge.NotData):
        bridge.decode({"$ortsession": {"model": "", "providers": [], "options": {"x": 1}}})
    monkeypatch.chdir(tmp_path)
    sent = bridge._paths_for_student([path, "relu.onnx", "not a path", 3])
    assert [e["path"] for e in sent] == [str(path), str(path)] and sent[0]["data"], sent


def test_an_object_that_is_not_data_stays_in_the_students_kernel(monkeypatch):
    """Lesson 4's tests make the student's ImageCalibrationReader and call get_next() on it:
    the instance stays in S, its methods run there, their results come back as data."""
    import json

    from autograder import bridge

    class Reader:
        def __init__(self, n):
            self.items = iter(range(n))

        def get_next(self):
            return next(self.items, None)

    ns = {"Reader": Reader, "iter": iter}
    replies = []
    monkeypatch.setattr(bridge, "_user_ns", lambda: ns)
    monkeypatch.setattr(bridge, "_reply", lambda nonce, payload: replies.append(payload))

    def grader(prompt):  # the grader's round trip: T's request runs in S, S's reply to T
        bridge.call("nonce", prompt[len(bridge.REQUEST) :])
        return json.dumps(replies.pop())

    monkeypatch.setattr(bridge, "_raw_input", grader)
    reader = bridge.StudentFunction("Reader")(3)
    assert isinstance(reader, bridge.StudentObject) and "Reader" in repr(reader), reader
    assert [reader.get_next() for _ in range(4)] == [0, 1, 2, None]
    assert list(bridge.StudentFunction("iter")([5, 6])) == [5, 6]
    with pytest.raises(bridge.NotTransferable, match="no attribute"):
        reader.missing()


def test_a_lesson_listed_in_the_config_is_graded_in_the_students_kernel(tmp_path):
    from autograder.course import Course
    from autograder.grade import student_kernel_reason

    (tmp_path / "source").mkdir()
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.Autograder.tests_in_student_kernel = {'07-x': 'a server in the tests'}\n"
    )
    course = Course(tmp_path)
    assert student_kernel_reason(course, "07-x") == "a server in the tests"
    assert student_kernel_reason(course, "01-y") is None
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    assert student_kernel_reason(Course(tmp_path), "07-x") is None
    repository = Course(Path(__file__).resolve().parent.parent)
    listed = [a for a in repository.assignments() if student_kernel_reason(repository, a)]
    assert listed == [], (
        f"expected every lesson graded in the verdict kernel (the two kernels share a loopback, "
        f"so lesson 7's server in T reaches the client in S), got {listed}"
    )


def test_autograder_docstring_examples_run():
    """The autograder's docstring examples (the plan's cell selection, the zygote's imports, the
    limits and job markers of a sandbox)."""
    import doctest

    from autograder import sandbox, verdict, warm

    for module in (sandbox, verdict, warm):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, (
            f"expected every example of {module.__name__} to pass, got {result}"
        )


def test_a_worker_forked_from_a_grader_that_ran_jobs_leaves_its_zygotes_alone(tmp_path):
    """A pool worker forked from a process that ran jobs itself (and so holds zygotes) starts
    with none of its own: at exit it must not stop the parent's, and it sweeps killed workers'
    sandboxes before its own first job."""
    from multiprocessing import util

    from autograder import execute, warm

    closed = tmp_path / "closed"

    class ParentsZygote:
        def close(self) -> None:
            closed.write_text("the worker stopped its parent's zygote")

    cleaned = list(execute._CLEANED)
    warm._POOL["parent's"] = ParentsZygote()  # type: ignore[assignment]
    execute._CLEANED[:] = [True]
    try:
        pid = os.fork()
        if pid == 0:  # the worker: as multiprocessing starts one, then as it ends
            code = 1
            try:
                util._finalizer_registry.clear()
                execute.worker_init()
                code = 0 if not warm._POOL else 2
                code = code or (3 if execute._CLEANED else 0)
                warm.close_all()  # what its finalizer runs at exit
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        assert code == 0, f"expected exit 0, got {code} (2: inherited zygotes, 3: no sweep)"
        assert not closed.exists(), closed.read_text()
        assert "parent's" in warm._POOL, "the parent's table changed"
    finally:
        warm._POOL.pop("parent's", None)
        execute._CLEANED[:] = cleaned
