"""``python -m autograder``: release, collect, grade, feedback, export (see autograder/README.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import sandbox as sb
from .course import Course, CourseError


def _course(args) -> Course:
    return Course(args.course)


def cmd_release(args) -> int:
    course = _course(args)
    names = args.assignments or course.assignments()
    failed = 0
    for name in names:
        course.check_assignment(name)
        result = course.api.generate_assignment(name, force=True, create=True)
        if result.get("success"):
            print(f"released {name}: {course.folder('release', assignment=name)}")
        else:
            failed += 1
            print(f"FAILED to release {name}:\n{result.get('error') or result.get('log')}")
    return 1 if failed else 0


def cmd_collect(args) -> int:
    from .collect import collect

    course = _course(args)
    report = collect(course, args.assignment, args.source, patterns=args.pattern)
    print(report.summary())
    print(f"report: {course.grading_dir(args.assignment) / 'collect.json'}")
    return 0


def _limits(args) -> sb.Limits:
    return sb.Limits(
        wall_s=args.wall,
        cell_timeout_s=args.cell_timeout,
        cpu_s=args.cpu,
        memory_mb=args.memory,
        processes=args.processes,
        output_mb=args.output,
        disk_mb=args.disk,
    )


def cmd_grade(args) -> int:
    from .export import write_report
    from .grade import GradeOptions, grade

    course = _course(args)
    options = GradeOptions(
        jobs=args.jobs,
        cluster=args.cluster,
        sandbox=args.sandbox,
        limits=_limits(args),
        force=args.force,
        students=args.student or None,
        progress=not args.quiet,
        guard=not args.no_guard,
        verdict=not args.tests_in_student_kernel,
        warm=not args.cold_verdict_kernel,
        expose=tuple(args.expose or ()),
    )
    summary = grade(course, args.assignment, options)
    report = write_report(
        course, args.assignment, course.grading_dir(args.assignment) / "report.json"
    )
    print(summary.text())
    print(f"report: {course.grading_dir(args.assignment) / 'report.json'}")
    if not report["sandbox"]["isolated"]:
        print("WARNING " + sb.NO_SANDBOX_WARNING)
    return 130 if summary.interrupted else 0


def cmd_feedback(args) -> int:
    from .feedback import generate

    course = _course(args)
    result = generate(course, args.assignment)
    print(
        f"feedback for {len(result['written'])} students in "
        f"{course.folder('feedback')}/STUDENT/{args.assignment}/ "
        f"({len(result['graded'])} graded, {len(result['failed'])} failed)"
    )
    for problem in result["problems"]:
        print(f"  FAILED {problem['student']}: {problem['error']}")
    return 1 if result["problems"] else 0


def cmd_export(args) -> int:
    from .export import export

    course = _course(args)
    paths = export(course, args.assignment, Path(args.out) if args.out else None)
    report = json.loads(paths["report.json"].read_text())
    for name, path in paths.items():
        print(f"{name}: {path}")
    s = report["summary"]
    print(
        f"{s['students']} students: {s['graded']} graded, {s['failed']} failed, {s['not_graded']} not graded"
    )
    if not report["sandbox"]["isolated"]:
        print("WARNING " + sb.NO_SANDBOX_WARNING)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m autograder",
        description="Grade a whole class with nbgrader, safely: release, collect, grade, "
        "feedback, export.",
    )
    p.add_argument(
        "--course", help="course directory (default: the one holding nbgrader_config.py)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("release", help="generate the student versions from source/")
    r.add_argument("assignments", nargs="*", help="assignments (default: all in source/)")
    r.set_defaults(func=cmd_release)

    c = sub.add_parser("collect", help="import an LMS export (folder or zip) into submitted/")
    c.add_argument("assignment")
    c.add_argument("source", help="folder or .zip exported by the learning-management system")
    c.add_argument(
        "--pattern",
        action="append",
        help="regular expression for file names with a (?P<student>...) group (repeatable)",
    )
    c.set_defaults(func=cmd_collect)

    d = sb.Limits()
    g = sub.add_parser("grade", help="autograde every collected submission in a sandbox")
    g.add_argument("assignment")
    g.add_argument("--jobs", type=int, help="submissions graded at once (default: one per core)")
    g.add_argument("--cluster", help="Dask scheduler address (tcp://host:8786) to run the jobs on")
    g.add_argument("--sandbox", choices=["auto", "bubblewrap", "none"], default="auto")
    g.add_argument("--wall", type=float, default=d.wall_s, help="seconds per notebook")
    g.add_argument(
        "--cell-timeout", type=int, default=None, help="seconds per cell (default: nbgrader's)"
    )
    g.add_argument("--cpu", type=int, default=d.cpu_s, help="CPU seconds per process")
    g.add_argument("--memory", type=int, default=d.memory_mb, help="MB of memory per process")
    g.add_argument("--processes", type=int, default=d.processes, help="processes and threads")
    g.add_argument("--output", type=float, default=d.output_mb, help="MB of notebook output")
    g.add_argument("--disk", type=int, default=d.disk_mb, help="MB of writable space")
    g.add_argument("--force", action="store_true", help="grade again students already graded")
    g.add_argument("--student", action="append", help="only this student (repeatable)")
    g.add_argument("--expose", action="append", help="extra host folder the kernel may read")
    g.add_argument("--no-guard", action="store_true", help="skip the in-kernel integrity checks")
    g.add_argument(
        "--tests-in-student-kernel",
        action="store_true",
        help="run the test cells in the student's kernel, as nbgrader does (forgeable; default: "
        "a separate verdict kernel that never runs student code)",
    )
    g.add_argument(
        "--cold-verdict-kernel",
        action="store_true",
        help="start the verdict kernel afresh for every submission (default: each worker forks "
        "it from a process that has imported what the tests import; see autograder.warm)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_grade)

    f = sub.add_parser("feedback", help="per-student HTML feedback (no hidden tests)")
    f.add_argument("assignment")
    f.set_defaults(func=cmd_feedback)

    e = sub.add_parser("export", help="grades.csv, report.json and a score-distribution figure")
    e.add_argument("assignment")
    e.add_argument("--out", help="folder (default: grading/ASSIGNMENT/)")
    e.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (CourseError, sb.SandboxUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
