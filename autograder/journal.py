"""The grading journal: one record per student and assignment, written last and atomically.

``grading/ASSIGNMENT/results/STUDENT.json`` says how a submission was graded and which files
it was (:func:`fingerprint`); a run killed at any moment and started again skips the students
whose record matches their submission (:mod:`autograder.grade`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from .course import Course

# -- the journal ------------------------------------------------------------------------------


def results_dir(course: Course, assignment: str) -> Path:
    return course.grading_dir(assignment) / "results"


def read_record(course: Course, assignment: str, student: str) -> dict | None:
    path = results_dir(course, assignment) / f"{student}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_records(course: Course, assignment: str) -> dict[str, dict]:
    folder = results_dir(course, assignment)
    records = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            rec = json.loads(path.read_text())
            records[rec["student"]] = rec
    return records


def write_record(course: Course, assignment: str, record: dict) -> None:
    folder = results_dir(course, assignment)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{record['student']}.json"
    tmp = folder / f".{record['student']}.json.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def fingerprint(folder: Path) -> str:
    """A hash of everything a student submitted (names and contents)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()
