"""Fast unit tests of the autograder's pure parts (no kernel, no course): exit reasons, feedback
redaction, LMS name matching, path checks, forged results, the progress bar."""

from __future__ import annotations

import io
import signal

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from autograder import sandbox as sb
from autograder.collect import _match, _safe_relative
from autograder.course import valid_student_id
from autograder.feedback import REDACTED, _redact, hidden_lines
from autograder.grade import _forged_results, _without_hidden, exercise_of, fingerprint
from autograder.progress import Progress


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
