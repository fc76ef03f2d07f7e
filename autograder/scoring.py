"""Stage 3 of grading, the single writer: an executed job is scored into the gradebook.

nbgrader's ``SaveAutoGrades`` (and the other autograde preprocessors) score the executed
notebook, forged results are refused, the notebook goes to ``autograded/``, and the journal
record (:mod:`autograder.journal`) is returned for :mod:`autograder.grade` to write. The
exercise of a grade id is ``course.selfcheck.exercise_of`` (one owner for the convention).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from datetime import UTC, datetime

import nbformat

from course.selfcheck import exercise_of

from . import execute as ex
from .course import Course
from .prepare import Refused, nbgrader_log

# -- stage 3: import --------------------------------------------------------------------------


def _statement_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of test cells whose (instructor's) code ends in a statement, not an expression."""
    import ast

    out = []
    for i, cell in enumerate(nb.cells):
        if not ex._is_test_cell(cell):
            continue
        try:
            body = ast.parse(cell.source).body
        except SyntaxError:
            continue
        if not body or not isinstance(body[-1], ast.Expr):
            out.append(i)
    return out


def _forged_results(nb: nbformat.NotebookNode) -> list[str]:
    """A number shown as a result of a test cell that ends in a statement was not the test's."""
    found = []
    for i in _statement_cells(nb):
        cell = nb.cells[i]
        if any(o.get("output_type") == "execute_result" for o in cell.get("outputs", [])):
            gid = cell.metadata["nbgrader"]["grade_id"]
            found.append(
                f"test cell {gid} shows a result value although its code ends in a statement "
                "(a forged partial-credit score)"
            )
    return found


def _partial_score(nb: nbformat.NotebookNode) -> tuple[float, float]:
    from nbgrader import utils as nbutils

    score = total = 0.0
    for cell in nb.cells:
        if nbutils.is_grade(cell):
            s, m = nbutils.determine_grade(cell)
            score += float(s or 0.0)
            total += float(m)
    return score, total


def _write_autograded(course: Course, assignment: str, student: str, notebooks: dict) -> None:
    final = course.folder("autograded", student, assignment)
    staging = course.grading_dir(assignment) / "tmp" / f"{student}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(course.folder("submitted", student, assignment), staging, symlinks=True)
    for link in [p for p in staging.rglob("*") if p.is_symlink()]:
        link.unlink()
    for old in staging.glob("*.ipynb"):
        old.unlink()
    for name, nb in notebooks.items():
        nbformat.write(nb, staging / name)
    final.parent.mkdir(parents=True, exist_ok=True)
    trash = None
    if final.exists():
        trash = staging.with_name(staging.name + "-old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
    os.replace(staging, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def _forget(course: Course, assignment: str, student: str) -> None:
    """A failed submission leaves no stale scores: drop an earlier run's grades and notebook."""
    from nbgrader.api import MissingEntry

    with course.gradebook() as gb:
        gb.update_or_create_student(student)
        with contextlib.suppress(MissingEntry):
            gb.remove_submission(assignment, student)
    shutil.rmtree(course.folder("autograded", student, assignment), ignore_errors=True)


def import_result(
    course: Course, assignment: str, result: ex.JobResult, meta: dict, fp: str
) -> dict:
    """Stage 3: score an executed job into the gradebook (or record why it failed)."""
    student = result.student
    notes = list(meta.get("notes", []))
    record = {
        "student": student,
        "assignment": assignment,
        "fingerprint": fp,
        "graded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": result.seconds,
        "sandbox": result.sandbox,
        "host": result.host,
        "notes": notes,
        "peak_memory_mb": max((o.peak_memory_mb for o in result.outcomes), default=0.0),
        "processes_killed_at_end": sum(len(o.leftover_pids) for o in result.outcomes),
        "worker": f"{result.host}:{result.worker}",
    }
    executed = {}
    failure = None
    for outcome in result.outcomes:
        nb = nbformat.reads(outcome.notebook, as_version=4) if outcome.notebook else None
        if nb is not None:
            executed[outcome.name] = nb
        notes.extend(outcome.notes)
        record["verdict"] = "separate kernel" if outcome.verdict else "student's kernel"
        tampering = list(outcome.tampering) + (_forged_results(nb) if nb is not None else [])
        if not outcome.ok and failure is None:
            failure = (outcome.category, outcome.reason, outcome)
        elif tampering and failure is None:
            shown = "; ".join(dict.fromkeys(tampering))
            failure = (
                ex.TAMPERING,
                f"tampering detected in {outcome.name}: {shown[:900]}; no score was recorded: "
                "review the notebook by hand (grading/{a}/partial/{s}/)".format(
                    a=assignment, s=student
                ),
                outcome,
            )
        if tampering:
            record["tampering"] = tampering
    if failure is not None:
        category, reason, outcome = failure
        _forget(course, assignment, student)
        partial_dir = course.grading_dir(assignment) / "partial" / student
        shutil.rmtree(partial_dir, ignore_errors=True)
        partial_dir.mkdir(parents=True, exist_ok=True)
        score_before = 0.0
        for name, nb in executed.items():
            nbformat.write(nb, partial_dir / name)
            with contextlib.suppress(Exception):
                score_before += _partial_score(nb)[0]
        record.update(
            status="failed",
            category=category,
            reason=reason,
            score=0.0,
            max_score=_max_score(course, assignment),
            score_before_failure=score_before,
            kernel_log=outcome.kernel_log[-1500:],
        )
        return record

    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    logger, handler = nbgrader_log("import")
    folder = course.folder("submitted", student, assignment)
    try:
        timestamp = course.coursedir.get_existing_timestamp(str(folder))
    except Exception:  # nbgrader cannot parse it: grade without a submission time
        timestamp = None
        notes.append("timestamp.txt is unreadable: graded without a submission time")
    with Gradebook(course.db_url, course.course_id) as gb:
        gb.update_or_create_student(student)
        if timestamp:
            gb.update_or_create_submission(assignment, student, timestamp=timestamp)
        else:
            gb.update_or_create_submission(assignment, student)
    classes = [
        c for c in Autograde(config=course.config).autograde_preprocessors if c is not Execute
    ]
    final = {}
    for name, nb in executed.items():
        resources = {
            "nbgrader": {
                "student": student,
                "assignment": assignment,
                "notebook": name[: -len(".ipynb")],
                "db_url": course.db_url,
            }
        }
        for cls in classes:
            pp = cls(config=course.config, log=logger)
            nb, resources = pp(nb, resources)
        final[name] = nb
    _write_autograded(course, assignment, student, final)
    cells, exercises = {}, {}
    with Gradebook(course.db_url, course.course_id) as gb:
        sub = gb.find_submission(assignment, student)
        score, max_score = float(sub.score), float(sub.max_score)
        late = float(sub.late_submission_penalty or 0.0)
        for snb in sub.notebooks:
            for g in snb.grades:
                s = float(g.score or 0.0)
                cells[g.name] = {"score": s, "max_score": float(g.max_score)}
                ex_ = exercises.setdefault(exercise_of(g.name), {"score": 0.0, "max_score": 0.0})
                ex_["score"] += s
                ex_["max_score"] += float(g.max_score)
                if g.needs_manual_grade:
                    notes.append(f"{g.name} needs manual grading")
    notes.extend(m for m in handler.messages if "late" in m)
    record.update(
        status="graded",
        category=None,
        reason=None,
        score=score,
        max_score=max_score,
        late_penalty=late,
        cells=cells,
        exercises=exercises,
    )
    return record


_MAX_SCORES: dict[tuple[str, str], float] = {}


def _max_score(course: Course, assignment: str) -> float:
    key = (course.db_url, assignment)
    if key not in _MAX_SCORES:
        with course.gradebook() as gb:
            _MAX_SCORES[key] = float(gb.find_assignment(assignment).max_score)
    return _MAX_SCORES[key]


def refused_record(
    course: Course, assignment: str, student: str, refusal: Refused, fp: str, notes: list[str]
) -> dict:
    try:
        _forget(course, assignment, student)
        max_score = _max_score(course, assignment)
    except Exception as exc:  # the gradebook itself is the problem: still record the failure
        notes = [*notes, f"the gradebook could not be updated: {exc!r}"]
        max_score = None
    return {
        "student": student,
        "assignment": assignment,
        "fingerprint": fp,
        "graded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "failed",
        "category": refusal.category,
        "reason": refusal.reason,
        "score": 0.0,
        "max_score": max_score,
        "notes": notes,
        "seconds": 0.0,
        "sandbox": {},
    }
