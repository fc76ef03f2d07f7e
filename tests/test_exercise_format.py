"""The exercise self-test format (tests/exercises/_format.py) and the files written in it.

Cheap: nothing is graded here; tests/test_lessons.py grades the answers these functions hand it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "tests" / "exercises"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fmt = _load(EXERCISES / "_format.py", "exercise_format")
FILES = sorted(p for p in EXERCISES.glob("[0-9][0-9]_*.py"))


def _mod(alternatives, wrong):
    return SimpleNamespace(ALTERNATIVES=alternatives, WRONG=wrong)


def test_exercise_of_takes_the_grade_id_up_to_the_first_dash():
    assert fmt.exercise_of("ex2-visible") == "ex2"
    assert fmt.exercise_of("ex10-a-b") == "ex10"
    assert fmt.exercise_of("ex3") == "ex3"


def test_alternatives_accept_a_bare_string_and_lists_of_any_length():
    mod = _mod({"ex1-a": "one", "ex2-a": ["two", "three", "four"], "ex3-a": ["five", "six"]}, {})
    assert fmt.alternatives(mod) == [
        {"ex1-a": "one", "ex2-a": "two", "ex3-a": "five"},
        {"ex2-a": "three", "ex3-a": "six"},
        {"ex2-a": "four"},
    ]
    assert fmt.alternatives(_mod({}, {})) == []


def test_alternatives_refuse_what_is_not_code():
    with pytest.raises(TypeError, match="ex1-a"):
        fmt.alternatives(_mod({"ex1-a": ["ok", 3]}, {}))


def test_wrong_answers_read_bare_strings_and_pinned_pairs():
    mod = _mod(
        {},
        {
            "ex1-a": ["bare", ("pinned", {"ex1-t1", "ex1-t2"}), ("one", "ex1-t3")],
            "ex2-a": [("x", frozenset({"ex2-t"}))],
        },
    )
    assert fmt.wrong_answers(mod) == [
        fmt.Wrong("ex1-a", "bare", None),
        fmt.Wrong("ex1-a", "pinned", frozenset({"ex1-t1", "ex1-t2"})),
        fmt.Wrong("ex1-a", "one", frozenset({"ex1-t3"})),
        fmt.Wrong("ex2-a", "x", frozenset({"ex2-t"})),
    ]
    gid, code, lost = fmt.wrong_answers(mod)[1]  # a plain tuple for the harness
    assert (gid, code, lost) == ("ex1-a", "pinned", frozenset({"ex1-t1", "ex1-t2"}))


@pytest.mark.parametrize(
    "entry, error, match",
    [
        (("code", set()), ValueError, "must lose points"),
        (("code", {"ex2-t"}), ValueError, r"expected test cells of ex1, got \['ex2-t'\]"),
        (("code", {"ex1-t"}, "extra"), TypeError, "pair"),
        (42, TypeError, "pair"),
    ],
)
def test_wrong_answers_refuse_malformed_entries(entry, error, match):
    with pytest.raises(error, match=match):
        fmt.wrong_answers(_mod({}, {"ex1-a": [entry]}))


def test_wrong_runs_hold_at_most_one_answer_per_exercise():
    mod = _mod(
        {},
        {
            "ex1-a": ["a0", "a1", "a2"],
            "ex1-b": ["b0"],  # a second solution cell of exercise 1
            "ex2-a": [("c0", {"ex2-t"})],
        },
    )
    runs = fmt.wrong_runs(mod)
    assert [fmt.run_cells(r) for r in runs] == [
        {"ex1-a": "a0", "ex2-a": "c0"},
        {"ex1-a": "a1"},
        {"ex1-a": "a2"},
        {"ex1-b": "b0"},
    ]
    for run in runs:
        exercises = [fmt.exercise_of(w.gid) for w in run]
        assert len(exercises) == len(set(exercises)), f"two answers of one exercise in {run}"


SCORES = {
    "ex1-t1": (0.0, 1.0),
    "ex1-t2": (2.0, 2.0),
    "ex1-t3": (0.0, 1.0),
    "ex2-t": (1.0, 1.0),
}


def test_lost_cells_are_the_exercises_cells_below_their_maximum():
    assert fmt.lost_cells(SCORES, "ex1") == {"ex1-t1", "ex1-t3"}
    assert fmt.lost_cells(SCORES, "ex2") == frozenset()


def test_a_wrong_answer_must_lose_exactly_the_cells_it_names():
    exact = fmt.Wrong("ex1-a", "c", frozenset({"ex1-t1", "ex1-t3"}))
    assert fmt.wrong_answer_problem(exact, SCORES) is None
    short = fmt.Wrong("ex1-a", "c", frozenset({"ex1-t1"}))
    problem = fmt.wrong_answer_problem(short, SCORES, "#2 ")
    assert problem == (
        "wrong answer #2 for ex1-a: expected exactly ['ex1-t1'] to lose points, "
        "got ['ex1-t1', 'ex1-t3']"
    )
    full = fmt.Wrong("ex2-a", "c", frozenset({"ex2-t"}))
    assert "got []" in fmt.wrong_answer_problem(full, SCORES)


def test_an_unpinned_wrong_answer_only_has_to_lose_something():
    assert fmt.wrong_answer_problem(fmt.Wrong("ex1-a", "c", None), SCORES) is None
    problem = fmt.wrong_answer_problem(fmt.Wrong("ex2-a", "c", None), SCORES)
    assert problem == "wrong answer for ex2-a: expected it to lose points, it earned full marks"


def test_shortfalls_name_what_an_exercise_lacks():
    mod = _mod(
        {"ex1-a": ["x", "y"], "ex2-a": "only one"},
        {
            "ex1-a": [("w", {"ex1-t"}), ("w", {"ex1-t"}), ("w", {"ex1-u"})],
            "ex2-a": [("w", {"ex2-t"}), "unpinned"],
        },
    )
    assert fmt.shortfalls(mod, {"ex1": ["ex1-a"], "ex2": ["ex2-a"]}) == [
        "ex2: expected at least 2 alternative correct answers, got 1",
        "ex2: expected at least 3 wrong answers, got 2",
        "ex2: 1 wrong answer(s) without the exact test cells they must fail",
    ]


def _solution_cells(lesson_file: Path) -> dict[str, list[str]]:
    lesson = lesson_file.stem.replace("_", "-")
    (nb_path,) = (ROOT / "source" / lesson).glob("*.ipynb")
    nb = nbformat.read(nb_path, as_version=4)
    cells: dict[str, list[str]] = {}
    tests: set[str] = set()
    for c in nb.cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cells.setdefault(fmt.exercise_of(meta["grade_id"]), []).append(meta["grade_id"])
        elif meta.get("grade"):
            tests.add(meta["grade_id"])
    return cells, tests


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_exercise_files_are_well_formed(path):
    """Every file parses in the format, names only the lesson's cells, and meets issue 21."""
    mod = _load(path, f"exercises_{path.stem}")
    solutions, tests = _solution_cells(path)
    solution_ids = {g for ids in solutions.values() for g in ids}
    runs = fmt.alternatives(mod)
    named = {g for run in runs for g in run} | set(mod.WRONG)
    assert named <= solution_ids, (
        f"{path.name}: expected solution cells of the lesson, got unknown {sorted(named - solution_ids)}"
    )
    for wrong in fmt.wrong_answers(mod):
        if wrong.lost is not None:
            assert wrong.lost <= tests, (
                f"{path.name}: wrong answer for {wrong.gid} names unknown test cells "
                f"{sorted(wrong.lost - tests)}"
            )
        compile(wrong.code, f"{path.name}:{wrong.gid}", "exec")
    for run in runs:
        for gid, code in run.items():
            compile(code, f"{path.name}:{gid}", "exec")
    assert fmt.shortfalls(mod, solutions) == []
