"""Every lesson, graded by nbgrader itself: solutions earn full marks, the release earns nothing,
alternative correct answers pass, plausible wrong answers lose exactly the points they should,
within the time budget, offline. Exercise variants live in tests/exercises/<lesson>.py
(ALTERNATIVES and WRONG, in the format of tests/exercises/_format.py).

Each lesson is graded once (:func:`harness.graded`); its tests here and in tests/test_memory.py
are one xdist group, so they run in the worker that graded it. The course artefacts are built
from nothing once per session (:func:`harness.artefact_cache`).
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import harness
import nbformat
import pytest

LESSONS = harness.lessons()
pytestmark = pytest.mark.notebook


def _params():
    return [pytest.param(name, marks=pytest.mark.xdist_group(name), id=name) for name in LESSONS]


variants = harness.variants
fmt = harness.exercise_format()


def graded(lesson: str) -> dict:
    """The lesson's one grading (:func:`harness.graded`), shared with tests/test_memory.py."""
    run = harness.graded(lesson)
    return {
        "course": run.course,
        "release": run.release,
        "results": run.results,
        "alternative_runs": run.alternative_runs,
        "wrong_runs": run.wrong_runs,
    }


def test_lessons_listed_in_config():
    text = (harness.ROOT / "nbgrader_config.py").read_text()
    listed = re.findall(r'^\s+"(\d\d-[a-z0-9-]+)",$', text, flags=re.M)
    assert sorted(listed) == listed, (
        f"LESSONS in nbgrader_config.py should be in course order, got {listed}"
    )
    assert set(LESSONS) <= set(listed), (
        f"source/ has lessons missing from nbgrader_config.LESSONS: {sorted(set(LESSONS) - set(listed))}"
    )


@pytest.mark.parametrize("lesson", _params())
def test_a_lessons_tests_share_its_worker(lesson, request):
    """Under `--dist loadgroup` (make test) a lesson's tests are one group, run by one worker,
    which grades the lesson once for all of them (tests/conftest.py keeps the group)."""
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith(f"@{lesson}"), (
            f"expected the node id to name the xdist group @{lesson}, got {request.node.nodeid}"
        )


@pytest.mark.parametrize("lesson", _params())
def test_release_is_generated_exactly(lesson):
    """release/ is what `nbgrader generate_assignment` makes from source/: no drift, no hand edits."""
    fresh = graded(lesson)["release"]
    committed = harness.RELEASE / lesson
    assert committed.is_dir(), f"release/{lesson} is missing: run `make release`"
    cmp = filecmp.dircmp(fresh, committed)
    differ = cmp.left_only + cmp.right_only + cmp.diff_files
    assert not differ, (
        f"release/{lesson} differs from a fresh generate_assignment in {differ}: run `make release`"
    )
    for name in cmp.common_files:
        assert (fresh / name).read_bytes() == (committed / name).read_bytes(), (
            f"release/{lesson}/{name} drifted: run `make release`"
        )


@pytest.mark.parametrize("lesson", _params())
def test_release_hides_solutions_and_hidden_tests(lesson):
    nb_text = (harness.RELEASE / lesson / harness.notebook_path(lesson).name).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in nb_text, f"release/{lesson} still contains '### {marker}'"
    source = nbformat.read(harness.notebook_path(lesson), as_version=4)
    release = nbformat.reads(nb_text, as_version=4)
    rel = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in release.cells}
    for cell in source.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        for block in re.findall(
            r"### BEGIN (?:SOLUTION|HIDDEN TESTS)\n(.*?)### END", cell.source, re.S
        ):
            for line in block.strip().splitlines():
                if len(line.strip()) > 12:
                    assert line.strip() not in rel.get(gid, ""), (
                        f"{lesson}/{gid}: release leaks {line.strip()!r}"
                    )


# nbgrader finds its markers anywhere in a line (ClearHiddenTests checks `marker in line`)
_HIDDEN_BLOCK = re.compile(r"### BEGIN HIDDEN TESTS[^\n]*\n(.*?)### END HIDDEN TESTS", re.S)


def unhidden_hidden_cells(nb: nbformat.NotebookNode) -> list[str]:
    """Graded test cells named or described as hidden whose hidden part is missing or empty.

    A test cell counts as *named* hidden when its grade id contains "hidden", and as *described*
    hidden when one of its comment lines says "hidden" (outside the markers themselves). Such a
    cell must wrap at least one statement in ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN
    TESTS``, or students see everything it claims to hide.
    """
    problems = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        gid = meta.get("grade_id", "?")
        comments = [
            line
            for line in cell.source.splitlines()
            if line.lstrip().startswith("#") and "HIDDEN TESTS" not in line
        ]
        named = "hidden" in gid.lower()
        described = any("hidden" in line.lower() for line in comments)
        if not (named or described):
            continue
        hidden = [
            line
            for block in _HIDDEN_BLOCK.findall(cell.source)
            for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not hidden:
            why = "named" if named else "described"
            problems.append(
                f"{gid}: {why} as hidden, expected statements between '### BEGIN HIDDEN TESTS' "
                "and '### END HIDDEN TESTS', got none (students would see the whole cell)"
            )
    return problems


def test_hidden_cell_check_catches_a_cell_that_hides_nothing():
    def cell(gid, source):
        return nbformat.v4.new_code_cell(
            source,
            metadata={"nbgrader": {"grade": True, "solution": False, "grade_id": gid, "points": 1}},
        )

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        cell("ex1-hidden", "assert f(1) == 2"),  # named hidden, hides nothing
        cell("ex2-visible", "# the hidden cases\nassert f(2) == 3"),  # described hidden
        cell("ex3-hidden", "x = 1\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n"),  # empty
        cell("ex4-hidden", "x = 1\n### BEGIN HIDDEN TESTS\nassert f(3) == 4\n### END HIDDEN TESTS"),
        cell(
            "ex6-hidden",
            "for i in (1, 2):\n    ### BEGIN HIDDEN TESTS\n    assert f(i)\n### END HIDDEN TESTS",
        ),
        cell("ex5-visible", "assert f(0) == 1"),
    ]
    problems = unhidden_hidden_cells(nb)
    flagged = [p.split(":")[0] for p in problems]
    assert flagged == ["ex1-hidden", "ex2-visible", "ex3-hidden"], (
        f"expected the three cells that hide nothing to be flagged, got {problems}"
    )


@pytest.mark.parametrize("lesson", _params())
def test_cells_called_hidden_hide_something(lesson):
    """Cheap (no grading): a test cell named or described as hidden hides its content."""
    problems = unhidden_hidden_cells(nbformat.read(harness.notebook_path(lesson), as_version=4))
    assert not problems, f"{lesson}: " + "; ".join(problems)


@pytest.mark.parametrize("lesson", _params())
def test_solutions_earn_full_marks(lesson):
    sol = graded(lesson)["results"]["solution"]
    assert sol.scores, f"{lesson}: nbgrader found no graded cells"
    lost = {gid: s for gid, s in sol.scores.items() if s[0] != s[1]}
    assert not lost, f"{lesson}: solution cells lost points (got, max): {lost}\n" + "\n".join(
        sol.problems
    )
    assert not sol.problems, f"{lesson}: graded test cells would cost points: {sol.problems}"


@pytest.mark.parametrize("lesson", _params())
def test_runs_within_budget_offline(lesson):
    sol = graded(lesson)["results"]["solution"]
    assert sol.seconds is not None, f"{lesson}: no execution timing recorded"
    assert sol.seconds < harness.BUDGET_S, (
        f"{lesson}: ran {sol.seconds:.1f} s, budget {harness.BUDGET_S:.0f} s"
    )
    if os.environ.get("CI"):
        assert harness.network_is_blocked(), (
            "CI must run lessons with the network cut off: install bubblewrap"
        )


@pytest.mark.parametrize("lesson", _params())
def test_untouched_release_earns_nothing(lesson):
    blank = graded(lesson)["results"]["blank"]
    earned = {gid: s for gid, s in blank.scores.items() if s[0] > 0}
    assert not earned, f"{lesson}: the untouched student notebook earned points in {earned}"
    assert blank.scores.keys() == graded(lesson)["results"]["solution"].scores.keys()


@pytest.mark.parametrize("lesson", _params())
def test_exercises_meet_the_standard(lesson):
    nb = nbformat.read(harness.notebook_path(lesson), as_version=4)
    meta = [c.metadata["nbgrader"] for c in nb.cells if "nbgrader" in c.metadata]
    solutions = [m["grade_id"] for m in meta if m["solution"]]
    tests = [m for m in meta if m["grade"] and not m["solution"]]
    exercises = {harness.exercise_of(g) for g in solutions}
    points = sum(m["points"] for m in tests)
    want_ex, want_pts = (2, 5) if lesson.startswith("00") else (3, 10)
    assert len(exercises) >= want_ex, (
        f"{lesson}: expected at least {want_ex} exercises, got {sorted(exercises)}"
    )
    assert points >= want_pts, f"{lesson}: expected at least {want_pts} points, got {points}"
    hidden = [c for c in nb.cells if "BEGIN HIDDEN TESTS" in c.source]
    assert hidden, f"{lesson}: no hidden tests"
    for ex in exercises:
        cells = [m for m in tests if harness.exercise_of(m["grade_id"]) == ex]
        assert len(cells) >= 2, (
            f"{lesson}/{ex}: expected several graded cells for partial credit, got {len(cells)}"
        )
    mod = variants(lesson)
    assert mod is not None, (
        f"{lesson}: tests/exercises/{lesson.replace('-', '_')}.py (ALTERNATIVES, WRONG) is missing"
    )
    cells = {ex: [g for g in solutions if harness.exercise_of(g) == ex] for ex in exercises}
    short = fmt.shortfalls(mod, cells)  # issue 21: >= 2 alternatives, >= 3 pinned wrong answers
    assert not short, f"{lesson}: " + "; ".join(short)


@pytest.mark.parametrize("lesson", _params())
def test_alternative_answers_earn_full_marks(lesson):
    if variants(lesson) is None:
        pytest.fail(f"{lesson}: no exercise variants file")
    g = graded(lesson)
    assert g["alternative_runs"], f"{lesson}: no alternative correct answers to grade"
    for k, run in enumerate(g["alternative_runs"]):
        alt = g["results"][f"alternative{k}"]
        lost = {gid: s for gid, s in alt.scores.items() if s[0] != s[1]}
        assert not lost, (
            f"{lesson}: alternative correct answers #{k} ({sorted(run)}) lost points "
            f"(got, max): {lost}\n" + "\n".join(alt.problems)
        )


@pytest.mark.parametrize("lesson", _params())
def test_wrong_answers_lose_points(lesson):
    if variants(lesson) is None:
        pytest.fail(f"{lesson}: no exercise variants file")
    g = graded(lesson)
    problems = []
    for k, run in enumerate(g["wrong_runs"]):
        scores = g["results"][f"wrong{k}"].scores
        problems += [p for w in run if (p := fmt.wrong_answer_problem(w, scores, f"#{k} "))]
        # the exercises not in this run kept their solutions: they must keep full marks
        others = {harness.exercise_of(gid) for gid in scores} - {
            harness.exercise_of(w.gid) for w in run
        }
        strays = sorted(c for ex in others for c in fmt.lost_cells(scores, ex))
        if strays:
            problems.append(f"wrong run #{k} also cost points in untouched exercises: {strays}")
    assert not problems, f"{lesson}: " + "\n".join(problems)


# --------------------------------------------------------------------------- the course artefacts

FAKE_BUILDER = """
import os, time
from course import artefacts
from course.data import cache_dir


@artefacts.register("harness-test")
def build():
    target = cache_dir() / "harness-test.onnx"
    if target.is_file():
        return target
    with open(os.environ["HARNESS_TEST_LOG"], "a") as log:
        log.write(f"{os.getpid()}\\n")
    time.sleep(1)  # long enough for the other workers to be waiting on the lock
    (cache_dir() / "model-digits-made-on-the-way.pt").write_bytes(b"a trained model")
    partial = target.with_suffix(".partial")
    partial.write_bytes(b"an artefact")
    partial.replace(target)
    return target


@artefacts.register("harness-test-broken")
def broken():
    if os.environ.get("HARNESS_TEST_BREAK"):
        raise RuntimeError("the broken builder broke")
    return "nothing"
"""


def test_artefacts_are_built_once_per_session_and_found_by_a_lesson(tmp_path, monkeypatch):
    """With a builder registered for the test: three workers asking at once build it once; a
    lesson run's cache links the artefact but no trained model; the lesson, sandboxed, finds it
    with the same builder (no second build)."""
    (tmp_path / "fake_builder.py").write_text(FAKE_BUILDER)
    log = tmp_path / "builds.log"
    monkeypatch.setenv("HARNESS_TEST_LOG", str(log))
    base = tmp_path / "session"
    ask = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'tests'); import harness; "
        f"harness.artefact_cache(Path({str(base)!r}), ('fake_builder',), ({str(tmp_path)!r},), "
        "('harness-test',))"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", ask], cwd=harness.ROOT, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [w.communicate(timeout=300)[1].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], f"a worker failed: {errors}"
    builds = log.read_text().splitlines()
    assert len(builds) == 1, f"expected one build for three workers, got {len(builds)}: {builds}"
    record = json.loads((base / "built.json").read_text())
    assert any(line.startswith("harness-test: ") for line in record["built"]), record
    assert record["seconds"] >= 1, f"expected the build's time recorded, got {record}"

    cache = harness.seed_cache(tmp_path / "lesson-cache", base / "cache")
    artefact = cache / "harness-test.onnx"
    assert artefact.read_bytes() == b"an artefact", sorted(p.name for p in cache.iterdir())
    assert harness.trained_models(cache) == [], "a lesson run must start with no trained model"
    assert harness.trained_models(base / "cache") == ["model-digits-made-on-the-way.pt"]

    course = harness.Course("00-template", tmp_path / "course", cache=cache)
    lesson = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import fake_builder; "
        "from course import artefacts; print(artefacts.builders()['harness-test']())"
    )
    proc = subprocess.run(
        harness.sandbox_prefix() + [sys.executable, "-c", lesson],
        cwd=harness.ROOT,
        env=course.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"the lesson could not call the builder:\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip() == str(artefact), (
        f"expected the lesson's builder to return {artefact}, got {proc.stdout.strip()!r}"
    )
    assert len(log.read_text().splitlines()) == 1, "the lesson built the artefact again"


def test_a_failed_artefact_build_is_reported_to_every_lesson(tmp_path, monkeypatch):
    (tmp_path / "fake_builder.py").write_text(FAKE_BUILDER)
    monkeypatch.setenv("HARNESS_TEST_LOG", str(tmp_path / "builds.log"))
    monkeypatch.setenv("HARNESS_TEST_BREAK", "1")
    for _ in range(2):  # the failure is recorded once and reported to each caller
        with pytest.raises(RuntimeError, match="the broken builder broke"):
            harness.artefact_cache(
                tmp_path / "session",
                ("fake_builder",),
                (str(tmp_path),),
                ("harness-test", "harness-test-broken"),
            )
    assert len((tmp_path / "builds.log").read_text().splitlines()) == 1


def test_session_artefacts_are_found_again_offline(tmp_path):
    """The session's artefacts, built from nothing once (time in build/artefacts-build.json),
    are found in a lesson's cache by their own builders: `python -m course.artefacts` run again,
    with no network, builds nothing and changes no file."""
    cache = harness.artefact_cache()
    record = json.loads((harness.artefact_dir() / "built.json").read_text())
    print(f"course artefacts built in {record['seconds']} s: {record['built']}")
    start = time.monotonic()
    seeded = harness.seed_cache(tmp_path / "cache", cache)
    before = {p: p.stat().st_mtime_ns for p in seeded.rglob("*")}
    proc = subprocess.run(
        harness.sandbox_prefix() + [sys.executable, "-m", "course.artefacts"],
        cwd=harness.ROOT,
        env=dict(os.environ, COURSE_CACHE_DIR=str(seeded), PYTHONWARNINGS="ignore"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"course.artefacts failed on a built cache:\n{proc.stderr[-3000:]}"
    after = {p: p.stat().st_mtime_ns for p in seeded.rglob("*")}
    assert after == before, (
        "expected the builders to find every artefact in the cache, got changes: "
        + textwrap.shorten(str(set(after.items()) ^ set(before.items())), 1000)
    )
    print(f"found again in {time.monotonic() - start:.1f} s: {proc.stdout.strip()}")
