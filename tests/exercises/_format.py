"""The format of the exercise self-test files (tests/exercises/NN_*.py), read by the lesson tests.

Each lesson's file holds two dicts keyed by the grade id of an exercise's solution cell:

- ``ALTERNATIVES[gid]``: other correct answers, written differently from the reference; a list
  of code strings (a bare string is one alternative). Every one must earn full marks.
- ``WRONG[gid]``: plausible wrong answers, each a pair ``(code, lost)`` where ``lost`` names
  exactly the test cells (grade ids) of that exercise that must lose points; the exercise's
  other test cells must keep full marks. A bare code string is a wrong answer whose outcome is
  not pinned ("loses something"), kept for files written before the outcomes were.

Issue 21's standard: per exercise, at least two alternatives and at least three wrong answers,
each with its exact outcome (:func:`shortfalls` lists what is missing).

The harness grades alternatives in runs (:func:`alternatives`: run k holds the k-th alternative
of every exercise) and wrong answers in runs holding at most one wrong answer per exercise
(:func:`wrong_runs`), then checks each wrong answer against its run's scores
(:func:`wrong_answer_problem`). Exercises are independent (a lesson's exercises never call each
other's functions), so answers to different exercises can share a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

MIN_ALTERNATIVES = 2
MIN_WRONG = 3


class Wrong(NamedTuple):
    """One wrong answer: the solution cell it replaces, its code, and the test cells it must fail
    (``None`` when not pinned)."""

    gid: str
    code: str
    lost: frozenset[str] | None


def exercise_of(grade_id: str) -> str:
    """The exercise of a cell: its grade id up to the first '-' (``ex2-visible`` -> ``ex2``)."""
    return grade_id.split("-", 1)[0]


def _as_list(value: str | Iterable[str], gid: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = list(value)
    if not all(isinstance(v, str) for v in items):
        raise TypeError(f"ALTERNATIVES[{gid!r}]: expected code strings, got {items!r}")
    return items


def alternatives(mod) -> list[dict[str, str]]:
    """Runs of alternative answers: run k maps each solution cell to its k-th alternative (cells
    with fewer alternatives are left out of the later runs)."""
    per_gid = {gid: _as_list(value, gid) for gid, value in mod.ALTERNATIVES.items()}
    longest = max((len(v) for v in per_gid.values()), default=0)
    return [
        {gid: codes[k] for gid, codes in per_gid.items() if k < len(codes)} for k in range(longest)
    ]


def _wrong_entry(gid: str, entry) -> Wrong:
    if isinstance(entry, str):
        return Wrong(gid, entry, None)
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
        code, lost = entry
        lost = frozenset([lost] if isinstance(lost, str) else lost)
        if not lost:
            raise ValueError(f"WRONG[{gid!r}]: a wrong answer must lose points somewhere")
        strays = sorted(g for g in lost if exercise_of(g) != exercise_of(gid))
        if strays:
            raise ValueError(
                f"WRONG[{gid!r}]: expected test cells of {exercise_of(gid)}, got {strays}"
            )
        return Wrong(gid, code, lost)
    raise TypeError(
        f"WRONG[{gid!r}]: expected a code string or a pair (code, lost test cells), got {entry!r}"
    )


def wrong_answers(mod) -> list[Wrong]:
    """Every wrong answer of the file, in file order."""
    return [_wrong_entry(gid, e) for gid, entries in mod.WRONG.items() for e in entries]


def first_wrong(mod, gid: str) -> str:
    """The code of the first wrong answer written for solution cell ``gid``."""
    for wrong in wrong_answers(mod):
        if wrong.gid == gid:
            return wrong.code
    raise KeyError(f"no wrong answer for {gid!r}; add one to WRONG")


def wrong_runs(mod) -> list[list[Wrong]]:
    """Wrong answers packed into runs: run k holds the k-th wrong answer of each exercise."""
    by_exercise: dict[str, list[Wrong]] = {}
    for wrong in wrong_answers(mod):
        by_exercise.setdefault(exercise_of(wrong.gid), []).append(wrong)
    longest = max((len(v) for v in by_exercise.values()), default=0)
    return [[w[k] for w in by_exercise.values() if k < len(w)] for k in range(longest)]


def run_cells(run: Iterable[Wrong]) -> dict[str, str]:
    """The replacements of one run, for ``harness.with_cells_replaced``."""
    return {w.gid: w.code for w in run}


def lost_cells(scores: Mapping[str, tuple[float, float]], exercise: str) -> frozenset[str]:
    """The graded cells of ``exercise`` that scored below their maximum."""
    return frozenset(
        gid for gid, (got, full) in scores.items() if exercise_of(gid) == exercise and got < full
    )


def wrong_answer_problem(
    wrong: Wrong, scores: Mapping[str, tuple[float, float]], label: str = ""
) -> str | None:
    """What is wrong with the grading of one wrong answer (None when its outcome is as stated)."""
    exercise = exercise_of(wrong.gid)
    lost = lost_cells(scores, exercise)
    what = f"wrong answer {label}for {wrong.gid}".replace("  ", " ")
    if wrong.lost is None:
        if lost:
            return None
        return f"{what}: expected it to lose points, it earned full marks"
    if lost == wrong.lost:
        return None
    return f"{what}: expected exactly {sorted(wrong.lost)} to lose points, got {sorted(lost)}"


def shortfalls(mod, exercises: Mapping[str, Iterable[str]]) -> list[str]:
    """What the file lacks against issue 21's standard; ``exercises`` maps each exercise to its
    solution cells' grade ids."""
    alts = {gid: _as_list(v, gid) for gid, v in mod.ALTERNATIVES.items()}
    wrongs = wrong_answers(mod)
    problems = []
    for ex, gids in sorted(exercises.items()):
        gids = set(gids)
        n_alt = sum(len(alts.get(g, [])) for g in gids)
        mine = [w for w in wrongs if w.gid in gids]
        if n_alt < MIN_ALTERNATIVES:
            problems.append(
                f"{ex}: expected at least {MIN_ALTERNATIVES} alternative correct answers, got {n_alt}"
            )
        if len(mine) < MIN_WRONG:
            problems.append(f"{ex}: expected at least {MIN_WRONG} wrong answers, got {len(mine)}")
        unpinned = sum(w.lost is None for w in mine)
        if unpinned:
            problems.append(
                f"{ex}: {unpinned} wrong answer(s) without the exact test cells they must fail"
            )
    return problems
