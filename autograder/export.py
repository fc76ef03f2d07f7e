"""Exports of a graded assignment: ``grades.csv`` (nbgrader's columns), ``report.json`` (one entry
per collected student) and a figure of the score distribution per exercise."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from course.palette import BLACK, OKABE_ITO

from . import sandbox as sb
from .course import Course
from .grade import fingerprint, read_records

REPORT_KEYS = (
    "status",
    "score",
    "max_score",
    "reason",
    "category",
    "exercises",
    "cells",
    "notes",
    "tampering",
    "late_penalty",
    "score_before_failure",
    "seconds",
    "peak_memory_mb",
    "processes_killed_at_end",
    "graded_at",
)


def build_report(course: Course, assignment: str) -> dict:
    """``report.json``: one entry per collected student, with the grading run's sandbox.

    Example:
        >>> report = build_report(Course("."), "00-template")  # doctest: +SKIP
        >>> report["students"][0]["status"]  # doctest: +SKIP
        'graded'
    """
    records = read_records(course, assignment)
    students = sorted(set(course.students_submitted(assignment)) | set(records))
    entries = []
    sandboxes = Counter()
    unisolated = []
    for student in students:
        rec = records.get(student)
        folder = course.folder("submitted", student, assignment)
        entry = {"student": student}
        if rec is None:
            entry.update(
                status="not graded",
                score=0.0,
                max_score=None,
                reason=f"not graded yet: run `python -m autograder grade {assignment}`",
            )
        else:
            entry.update({k: rec[k] for k in REPORT_KEYS if k in rec})
            if folder.is_dir() and rec.get("fingerprint") != fingerprint(folder):
                entry["stale"] = True
                entry.setdefault("notes", []).append(
                    "the submission changed after it was graded: run grade again"
                )
            box = rec.get("sandbox") or {}
            if box:
                entry["sandbox"] = box.get("kind")
                sandboxes[box.get("kind")] += 1
                if not box.get("isolated"):
                    unisolated.append(student)
        entries.append(entry)
    graded = [e for e in entries if e["status"] == "graded"]
    failed = [e for e in entries if e["status"] == "failed"]
    max_score = next((e["max_score"] for e in entries if e.get("max_score") is not None), None)
    report = {
        "assignment": assignment,
        "course_id": course.course_id,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": {
            "students": len(entries),
            "graded": len(graded),
            "failed": len(failed),
            "not_graded": len(entries) - len(graded) - len(failed),
            "max_score": max_score,
            "mean_score": round(sum(e["score"] for e in graded) / len(graded), 3)
            if graded
            else None,
            "failed_by_category": dict(Counter(e.get("category") for e in failed)),
        },
        "sandbox": {
            "kinds": dict(sandboxes),
            "isolated": not unisolated,
        },
        "students": entries,
    }
    if unisolated:
        report["sandbox"]["warning"] = sb.NO_SANDBOX_WARNING
        report["sandbox"]["unisolated_students"] = unisolated
    return report


def write_report(course: Course, assignment: str, path: Path) -> dict:
    report = build_report(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)
    return report


def write_grades_csv(course: Course, assignment: str, path: Path) -> Path:
    """nbgrader's own CSV export (its columns), for this assignment."""
    from nbgrader.plugins.export import CsvExportPlugin

    path.parent.mkdir(parents=True, exist_ok=True)
    plugin = CsvExportPlugin(config=course.config, to=str(path), assignment=[assignment])
    with course.gradebook() as gb:
        plugin.export(gb)
    return path


def plot_distribution(report: dict, path: Path) -> Path:
    """Histogram of points per exercise over graded students (failed ones counted in the title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    graded = [e for e in report["students"] if e["status"] == "graded"]
    exercises = sorted({ex for e in graded for ex in e.get("exercises", {})})
    n = max(1, len(exercises))
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(exercises):
            ax.axis("off")
            continue
        name = exercises[k]
        scores = [e["exercises"][name]["score"] for e in graded if name in e["exercises"]]
        top = max(e["exercises"][name]["max_score"] for e in graded if name in e["exercises"])
        values = Counter(round(s, 2) for s in scores)
        xs = sorted(set(values) | {0.0, float(top)})
        ax.bar(
            [str(x) for x in xs],
            [values.get(x, 0) for x in xs],
            color=OKABE_ITO[k % len(OKABE_ITO)],
            edgecolor=BLACK,
            linewidth=0.5,
            label=f"{len(scores)} graded",
        )
        ax.set(title=f"{name} (max {top:g} points)", xlabel="points", ylabel="students (count)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best", fontsize=8, frameon=False)
    failed = report["summary"]["failed"]
    fig.suptitle(
        f"{report['assignment']}: score distribution per exercise "
        f"({len(graded)} graded, {failed} failed and not shown)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def export(course: Course, assignment: str, out: Path | None = None) -> dict[str, Path]:
    """Write grades.csv, report.json and score-distribution.png into ``out``."""
    course.check_assignment(assignment)
    out = Path(out) if out else course.grading_dir(assignment)
    report = write_report(course, assignment, out / "report.json")
    return {
        "grades.csv": write_grades_csv(course, assignment, out / "grades.csv"),
        "report.json": out / "report.json",
        "score-distribution.png": plot_distribution(report, out / "score-distribution.png"),
    }
