"""course.selfcheck and course.progress: real kernels run real notebooks (no mocks of nbclient).

Small synthetic notebooks with nbgrader metadata cover every outcome quickly; the course's own
00-template release, answered with the alternative and wrong answers of tests/exercises, shows
the check agrees with what the lesson's tests say; one notebook calls ``course.check()`` from its
own kernel, as a reader does.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import harness
import matplotlib.pyplot as plt
import nbformat
import pytest
from notebooks import cell, write_nb

from course import progress, selfcheck

ROOT = harness.ROOT
TEMPLATE = ROOT / "release" / "00-template" / "00-template.ipynb"
template_variants = importlib.import_module("exercises.00_template")
_fmt = harness.exercise_format()
_FIRST_ALTERNATIVES = _fmt.alternatives(template_variants)[0]  # one answer per cell


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv(selfcheck.NESTED_ENV, raising=False)


STUB = "def double(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"


def lesson_cells(answer: str = STUB, ex2: str = "def half(x):\n    raise NotImplementedError()"):
    return [
        cell(
            "# Lesson 9 — Doubling\n\n**After this lesson you will be able to**\n1. double;\n"
            "2. halve.\n\n**Prerequisites**: none. **Estimated time**: 1.5 hours.",
            kind="markdown",
        ),
        cell("import sys\nBASE = 2"),
        cell(answer, "ex1-answer", kind="answer"),
        cell(
            "got = double(3)\nassert got == 6, f'double(3): expected 6, got {got!r}'",
            "ex1-visible",
            points=1,
        ),
        cell(
            "assert double(-1) == -2, f'double(-1): expected -2, got {double(-1)!r}'",
            "ex1-more",
            points=2,
        ),
        cell(ex2, "ex2-answer", kind="answer"),
        cell(
            "assert half(4) == 2, f'half(4): expected 2, got {half(4)!r}'", "ex2-visible", points=1
        ),
        cell("print('warned', file=sys.stderr)\nassert half(2) == 1", "ex2-quiet", points=1),
    ]


# -- reading, no kernel ---------------------------------------------------------------------------


def test_untouched_release_is_not_started_and_runs_nothing():
    t0 = time.perf_counter()
    report = selfcheck.check(TEMPLATE)
    assert time.perf_counter() - t0 < 5, "an untouched notebook should be read, not run"
    assert not report.executed and not report.passed
    assert [e.exercise for e in report.exercises] == ["ex1", "ex2"]
    assert {e.status for e in report.exercises} == {"not started"}, [
        e.status for e in report.exercises
    ]
    assert report.points == 5 and report.points_passed == 0
    assert "nothing started yet" in str(report) and "hidden tests" in str(report)
    assert "not started" in report._repr_html_()


def test_read_exercises_groups_cells_by_prefix():
    info = selfcheck.read_exercises(TEMPLATE)
    assert info == {
        "ex1": {
            "answers": ["ex1-converters"],
            "tests": ["ex1-visible", "ex1-hidden"],
            "points": 2.0,
            "started": False,
        },
        "ex2": {
            "answers": ["ex2-export"],
            "tests": ["ex2-visible", "ex2-hidden"],
            "points": 3.0,
            "started": False,
        },
    }
    assert selfcheck.exercise_of("ex12-visible-part") == "ex12"


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("missing.ipynb",), {}, "no notebook at"),
        ((ROOT / "README.md",), {}, "not a notebook"),
        ((TEMPLATE,), {"exercise": "ex9"}, "no exercise 'ex9'"),
        ((TEMPLATE,), {"kernel_name": "no-such-kernel", "execute": "always"}, "no Jupyter kernel"),
    ],
)
def test_bad_input_names_the_fix(args, kwargs, message):
    with pytest.raises(selfcheck.SelfCheckError, match=message):
        selfcheck.check(*args, **kwargs)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="execute should be"):
        selfcheck.check(TEMPLATE, execute="sometimes")
    with pytest.raises(TypeError, match="exercise should be"):
        selfcheck.check(TEMPLATE, exercise=1.5)
    plain = write_nb(tmp_path, "plain.ipynb", [cell("x = 1")])
    with pytest.raises(selfcheck.SelfCheckError, match="no graded test cells"):
        selfcheck.check(plain)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(selfcheck.SelfCheckError, match="could not be read"):
        selfcheck.check(broken)


def test_never_mode_reads_a_started_notebook_without_running(tmp_path):
    path = write_nb(tmp_path / "l", "l.ipynb", lesson_cells("def double(x):\n    return 2 * x"))
    report = selfcheck.check(path, execute="never")
    assert not report.executed
    assert report.exercise(1).started and not report.exercise("ex2").started
    with pytest.raises(KeyError, match="no exercise 'ex7'"):
        report.exercise(7)


def test_current_notebook_from_the_session_environment(tmp_path, monkeypatch):
    path = write_nb(tmp_path / "lesson", "lesson.ipynb", lesson_cells())
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    assert selfcheck.current_notebook() == path.resolve()
    # an API path relative to the server root, from a kernel running in the notebook's folder
    monkeypatch.chdir(path.parent)
    monkeypatch.setenv("JPY_SESSION_NAME", "course/lesson/lesson.ipynb")
    assert selfcheck.current_notebook() == path.resolve()
    assert selfcheck.check().notebook == path.resolve()
    monkeypatch.setenv("JPY_SESSION_NAME", "elsewhere/missing.ipynb")
    with pytest.raises(selfcheck.SelfCheckError, match="pass its path"):
        selfcheck.current_notebook()


class _Shell:
    def __init__(self, user_ns):
        self.user_ns = user_ns


def test_vscode_notebook_and_unsaved_answers_are_noticed(tmp_path, monkeypatch):
    path = write_nb(tmp_path / "lesson", "lesson.ipynb", lesson_cells())
    ran_but_unsaved = "def double(x):\n    return x + x"
    shell = _Shell({"__vsc_ipynb_file__": str(path), "In": ["", "import course", ran_but_unsaved]})
    monkeypatch.setattr(selfcheck, "_ipython", lambda: shell)
    report = selfcheck.check()
    assert report.notebook == path.resolve()
    assert any("ex1-answer" in n and "save it" in n for n in report.notices), report.notices
    shell.user_ns["In"] = ["", STUB]  # what ran is what is saved: nothing to say
    assert selfcheck.check().notices == []


def test_nested_call_does_nothing(monkeypatch):
    monkeypatch.setenv(selfcheck.NESTED_ENV, "1")
    report = selfcheck.check()
    assert report.nested and not report.executed and not report.exercises
    assert "does nothing" in str(report)


# -- running a copy -------------------------------------------------------------------------------


def test_mixed_outcomes_with_messages(tmp_path, capfd):
    path = write_nb(
        tmp_path / "l",
        "l.ipynb",
        lesson_cells(
            "def double(x):\n    return 2 * x if x < 0 else x ** 2",
            "def half(x):\n    return x // 2",
        ),
    )
    (path.parent / "data.txt").write_text("files beside the notebook travel with the copy")
    before = path.read_bytes()
    report = selfcheck.check(path, verbose=False)
    out, err = capfd.readouterr()
    assert err == "" and out == "", (
        f"check() should be silent with verbose=False, got {out!r} {err!r}"
    )
    assert path.read_bytes() == before, "check() must never modify the reader's notebook"
    assert report.executed and not report.cached and report.seconds > 0
    ex1, ex2 = report.exercises
    assert ex1.status == "failing"
    first, second = ex1.tests
    assert first.status == "failed" and first.message == "double(3): expected 6, got 9"
    assert second.status == "passed" and second.passed
    assert ex1.points_passed == 2 and ex1.points == 3
    visible, quiet = ex2.tests
    assert visible.passed
    assert quiet.status == "passed" and not quiet.passed and "warned" in quiet.stderr
    assert any("wrote to stderr" in n for n in report.notices)
    frame = report.to_frame()
    assert list(frame["status"]) == ["failed", "passed", "passed", "passed"], frame
    assert "stderr" in frame["message"].iloc[3]
    text = str(report)
    assert "FAIL ex1-visible (1 pt): double(3): expected 6, got 9" in text
    assert "double(3): expected 6, got 9" in report._repr_html_()
    assert "exercises_passed=0/2" in repr(report)
    assert not (path.parent / "kernel.log").exists()


def test_errors_in_answers_and_tests_are_explained(tmp_path):
    answer = "def double(x):\n    return undefined_name * x\nraise ValueError('oops')"
    path = write_nb(tmp_path / "l", "l.ipynb", lesson_cells(answer))
    report = selfcheck.check(path, verbose=False, exercise="ex1")
    (ex1,) = report.exercises
    assert ex1.answer_error == "ValueError: oops"
    assert ex1.tests[0].status == "error"
    assert ex1.tests[0].message.startswith("NameError: name 'undefined_name' is not defined")
    assert "answer cell failed first" in ex1.tests[0].message
    assert "your answer cell raised ValueError: oops" in str(report)
    assert "your answer cell raised ValueError: oops" in report._repr_html_()


def test_started_and_not_started_exercises_in_one_run(tmp_path):
    path = write_nb(tmp_path / "l", "l.ipynb", lesson_cells("def double(x):\n    return 2 * x"))
    report = selfcheck.check(path, verbose=False)
    ex1, ex2 = report.exercises
    assert ex1.status == "passed" and ex1.passed
    assert ex2.status == "not started"
    assert {t.status for t in ex2.tests} == {"not started"}
    assert "still raises NotImplementedError" in ex2.tests[0].message


def test_results_are_remembered_until_the_code_changes(tmp_path, capsys):
    path = write_nb(tmp_path / "l", "l.ipynb", lesson_cells("def double(x):\n    return 2 * x"))
    first = selfcheck.check(path)
    assert "running a copy in a fresh kernel" in capsys.readouterr().out
    t0 = time.perf_counter()
    again = selfcheck.check(path, exercise=1)
    assert time.perf_counter() - t0 < 2 and again.cached
    assert "remembered" in again.headline()
    assert [e.exercise for e in again.exercises] == ["ex1"] and again.passed
    assert first.rows()[:2] == again.rows()
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].source = "def double(x):\n    return 3 * x"
    nbformat.write(nb, path)
    changed = selfcheck.check(path, verbose=False)
    assert not changed.cached and changed.exercise(1).status == "failing"
    # a damaged memory is thrown away, not trusted
    for stored in (Path(os.environ["COURSE_CACHE_DIR"]) / "selfcheck").glob("*.json"):
        stored.write_text(json.dumps({"broken": True}))
    rerun = selfcheck.check(path, verbose=False)
    assert not rerun.cached and rerun.exercise(1).status == "failing"


def test_limits_stop_a_run_with_a_reason(tmp_path):
    cells = lesson_cells("import time\ntime.sleep(30)\ndef double(x):\n    return 2 * x")
    path = write_nb(tmp_path / "slow", "slow.ipynb", cells)
    report = selfcheck.check(path, verbose=False, cell_timeout=2)
    assert "ran longer than 2 s" in report.problem
    assert report.exercise(1).status == "not run"
    assert all(t.status == "not run" for t in report.exercise(1).tests)
    assert not list((Path(os.environ["COURSE_CACHE_DIR"]) / "selfcheck").glob("*.json")), (
        "a stopped run must not be remembered"
    )
    whole = selfcheck.check(path, verbose=False, timeout=0, use_cache=False)
    assert "whole-notebook limit" in whole.problem and "problem:" in str(whole)
    assert "Problem:" in whole._repr_html_()


def test_a_dying_kernel_is_reported(tmp_path):
    path = write_nb(tmp_path / "l", "l.ipynb", lesson_cells("import os\nos._exit(3)"))
    report = selfcheck.check(path, verbose=False)
    assert "the kernel died in cell 2" in report.problem
    assert report.exercise(1).tests[0].status == "not run"


def test_kernel_falls_back_to_python3(tmp_path):
    path = write_nb(
        tmp_path / "l", "l.ipynb", lesson_cells("def double(x):\n    return 2 * x"), kernel="gone"
    )
    assert selfcheck.check(path, verbose=False).exercise(1).passed


@pytest.mark.slow
def test_template_answers_agree_with_the_lessons_own_tests(tmp_path):
    """The alternative answers pass every visible test; wrong ones fail with their messages."""
    release = nbformat.read(TEMPLATE, as_version=4)
    good = harness.with_cells_replaced(release, _FIRST_ALTERNATIVES)
    mixed = harness.with_cells_replaced(
        release,
        {
            "ex1-converters": _fmt.first_wrong(template_variants, "ex1-converters"),
            "ex2-export": _FIRST_ALTERNATIVES["ex2-export"],
        },
    )
    for name, nb in (("good", good), ("mixed", mixed)):
        (tmp_path / name).mkdir()
        nbformat.write(nb, tmp_path / name / TEMPLATE.name)
    report = selfcheck.check(tmp_path / "good" / TEMPLATE.name, verbose=False)
    assert report.passed, str(report)
    assert report.points_passed == 5
    report = selfcheck.check(tmp_path / "mixed" / TEMPLATE.name, verbose=False)
    assert report.exercise("ex1").status == "failing"
    assert report.exercise("ex2").passed
    assert "expected 12 converters, got 7" in report.exercise("ex1").tests[0].message


@pytest.mark.slow
def test_check_from_inside_a_notebook_kernel(tmp_path):
    """A reader's cell ``course.check()``: the kernel finds its notebook from the Jupyter session,
    checks a copy (whose own ``course.check()`` cell does nothing) and writes nothing to stderr."""
    cells = lesson_cells("def double(x):\n    return 2 * x")
    cells.append(cell("import course\nreport = course.check()\nprint(report.headline())\nreport"))
    path = write_nb(tmp_path / "lesson", "lesson.ipynb", cells)
    code = (
        "import nbformat, sys\n"
        "from nbclient import NotebookClient\n"
        f"nb = nbformat.read({str(path)!r}, as_version=4)\n"
        f"c = NotebookClient(nb, kernel_name='python3', timeout=120, allow_errors=True, "
        f"resources={{'metadata': {{'path': {str(path.parent)!r}}}}})\n"
        "c.execute(env=dict(__import__('os').environ, JPY_SESSION_NAME=" + repr(str(path)) + "))\n"
        "nbformat.write(nb, sys.argv[1])\n"
    )
    out = tmp_path / "executed.ipynb"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = nbformat.read(out, as_version=4).cells[-1]
    streams = {o.get("name"): o.get("text", "") for o in last.outputs if o.output_type == "stream"}
    assert "stderr" not in streams, f"course.check() wrote to stderr: {streams['stderr']!r}"
    assert "lesson.ipynb: 1 of 2 exercises pass" in streams.get("stdout", ""), last.outputs
    html = [o for o in last.outputs if o.output_type == "execute_result"]
    assert html and "text/html" in html[0].data, "the report should show as a table"


# -- progress ------------------------------------------------------------------------------------


def make_course(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    write_nb(root / "release" / "01-first", "01-first.ipynb", lesson_cells())
    write_nb(
        root / "release" / "02-second",
        "notebook.ipynb",
        lesson_cells("def double(x):\n    return 2 * x", "def half(x):\n    return x / 2"),
    )
    write_nb(
        root / "release" / "03-empty",
        "03-empty.ipynb",
        [cell("# Lesson 3 — Empty", kind="markdown")],
    )
    (root / "release" / "04-folder-only").mkdir()
    (root / "source" / "05-in-source").mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(
        'c = get_config()\nLESSONS = ["01-first", "02-second", "06-announced"]\n'
    )
    (root / "README.md").write_text("| 6 | `06-announced` | what comes next |\n")
    return root


def test_course_map_discovers_lessons(tmp_path, monkeypatch):
    root = make_course(tmp_path)
    monkeypatch.chdir(root / "release" / "01-first")
    assert progress.course_root() == root.resolve()
    lessons = progress.discover_lessons(root)
    assert [lesson.id for lesson in lessons] == [
        "01-first",
        "02-second",
        "03-empty",
        "04-folder-only",
        "05-in-source",
        "06-announced",
    ]
    first = lessons[0]
    assert first.title == "Lesson 9 — Doubling" and first.number == 1
    assert first.objectives == ["double", "halve"]
    assert (first.estimated, first.minutes) == ("1.5 hours", 90)
    assert first.exercises == {"ex1": 3.0, "ex2": 2.0}
    assert lessons[1].notebook.name == "notebook.ipynb"
    assert not lessons[3].available and lessons[5].objectives == ["what comes next"]
    table = progress.course_map(root)
    frame = table.to_frame()
    assert len(table) == 6 and frame.loc[0, "points"] == 5
    assert frame.loc[5, "estimated time"] == "coming"
    shown = table._repr_html_()
    assert "<a href='release/01-first/01-first.ipynb'>" in shown and "(coming)" in shown
    assert "01-first | Lesson 9" in repr(table)
    assert progress._Table([], [])._repr_html_() == "<p>No lessons found.</p>"


def test_config_without_a_lesson_list(tmp_path):
    root = tmp_path / "c"
    (root / "release").mkdir(parents=True)
    (root / "nbgrader_config.py").write_text("c = get_config(\n")
    assert progress._configured_lessons(root) == []
    (root / "nbgrader_config.py").write_text("c = get_config()\nOTHER = ['01-x']\n")
    assert progress._configured_lessons(root) == []
    assert progress.discover_lessons(root) == []


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("10 minutes", 10),
        ("60-90 min", 90),
        ("1 hour", 60),
        ("2 to 3 hours", 180),
        ("a while", None),
    ],
)
def test_estimated_minutes(text, minutes):
    assert progress.estimated_minutes(text) == minutes


def test_course_root_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no release/ folder"):
        progress.course_root(tmp_path)


def test_progress_checks_started_lessons_only(tmp_path):
    root = make_course(tmp_path)
    mine = progress.check_progress(root, verbose=False)
    assert set(mine.reports) == {"01-first", "02-second"}
    assert not mine.reports["01-first"].executed and mine.reports["02-second"].executed
    rows = {r["lesson"]: r for r in mine.rows()}
    assert rows["01-first"]["status"] == "not started" and rows["01-first"]["not started"] == 2
    assert rows["02-second"]["passed"] == 1 and rows["02-second"]["failing"] == 1
    assert rows["02-second"]["status"] == "in progress"
    assert rows["03-empty"]["status"].startswith("could not check: no graded exercises")
    assert rows["06-announced"]["status"] == "coming"
    assert (mine.exercises_passed, mine.exercises_total) == (1, 4)
    frame = mine.to_frame()
    assert frame.loc["02-second", "points passing"] == 4  # ex1 (3) and ex2-visible (1)
    assert "1 of 4 exercises pass" in mine._repr_html_() and "02-second" in repr(mine)
    fig = mine.plot()
    ax = fig.axes[0]
    assert ax.get_xlabel() == "exercises (count)" and "1 of 4" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "passed",
        "failing",
        "not started",
    ]
    fig.savefig(tmp_path / "progress.png")

    plt.close(fig)
    # every exercise passing: the lesson is done
    nb = nbformat.read(root / "release" / "02-second" / "notebook.ipynb", as_version=4)
    nb.cells[7].source = "assert half(2) == 1"
    nbformat.write(nb, root / "release" / "02-second" / "notebook.ipynb")
    mine = progress.check_progress(root, verbose=False)
    rows = {r["lesson"]: r for r in mine.rows()}
    assert rows["02-second"]["status"] == "done", rows["02-second"]
    fig, ax = plt.subplots()
    assert mine.plot(ax=ax) is fig
    plt.close(fig)


def test_progress_reports_a_stopped_run_and_a_check_error(tmp_path, monkeypatch):
    root = make_course(tmp_path)
    nb_path = root / "release" / "01-first" / "01-first.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[2].source = "import time\ntime.sleep(20)\ndef double(x):\n    return 2 * x"
    nbformat.write(nb, nb_path)
    real = selfcheck.check

    def short(path, **kwargs):
        if Path(path).name == "notebook.ipynb":
            raise selfcheck.SelfCheckError("cannot read it")
        return real(path, cell_timeout=1, **kwargs)

    monkeypatch.setattr(selfcheck, "check", short)
    mine = progress.check_progress(root, verbose=False)
    rows = {r["lesson"]: r for r in mine.rows()}
    assert rows["01-first"]["status"].startswith("stopped: cell 2 ran longer than 1 s"), rows
    assert rows["02-second"]["status"] == "could not check: cannot read it"
    assert rows["01-first"]["not run"] == 1
    fig = mine.plot()
    assert "not run" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_objectives_render_their_inline_markdown():
    got = progress._inline_markdown("use `onnx.helper`, *Validate* or **bold**; 2*3*4 <x>")
    assert got == (
        "use <code>onnx.helper</code>, <em>Validate</em> or <b>bold</b>; 2*3*4 &lt;x&gt;"
    ), got


def _cgroup(tmp_path, limit: str, used: str, monkeypatch) -> None:
    (tmp_path / "max").write_text(limit + "\n")
    (tmp_path / "current").write_text(used + "\n")
    monkeypatch.setattr(
        selfcheck,
        "CGROUP_FILES",
        [(tmp_path / "missing", tmp_path / "missing2"), (tmp_path / "max", tmp_path / "current")],
    )


def test_memory_headroom_reads_the_container_limit(tmp_path, monkeypatch):
    _cgroup(tmp_path, "2000000000", "1500000000", monkeypatch)
    assert selfcheck.memory_headroom() == 5e8
    _cgroup(tmp_path, "max", "1500000000", monkeypatch)
    assert selfcheck.memory_headroom() is None
    _cgroup(tmp_path, "9223372036854771712", "1", monkeypatch)
    assert selfcheck.memory_headroom() is None
    monkeypatch.setattr(selfcheck, "CGROUP_FILES", [(tmp_path / "no", tmp_path / "nope")])
    assert selfcheck.memory_headroom() is None


def test_a_check_on_a_tight_session_says_what_to_do(tmp_path, monkeypatch, capsys):
    _cgroup(tmp_path, "2000000000", "1200000000", monkeypatch)  # Binder-like: 0.8 GB left
    path = write_nb(tmp_path / "l", "l.ipynb", lesson_cells("def double(x):\n    return 2 * x"))
    report = selfcheck.check(path)
    printed = capsys.readouterr().out
    assert "only 0.8 GB of memory is left" in printed and "start-here.ipynb" in printed, printed
    assert any("Shut Down Kernel" in n for n in report.notices), report.notices
    assert report.exercise(1).passed, "the check still runs"
