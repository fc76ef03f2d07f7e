"""Grading throughput: this pipeline against plain sequential ``nbgrader autograde``.

``python -m benchmarks.grading_bench [--students 40] [--jobs N] [--out build/grading-bench.json]``

The same synthetic class (correct, partial, blank and a few bad submissions of the template
lesson) is graded in one run several ways, each in its own copy of a freshly released course:

1. plain nbgrader: one ``nbgrader autograde`` process for every student, sequential (baseline);
2. this pipeline with the sandbox (bubblewrap), ``--jobs`` submissions at once, the verdict
   computed in a second kernel forked from each worker's prepared process (the default), and
   the same with that kernel started cold for each submission (``--cold-verdict-kernel``);
3. the same with the tests in the student's kernel (``verdict=False``: the pipeline before the
   verdict kernel existed);
4. this pipeline without the sandbox (resource limits only), same jobs: the sandbox's cost;
5. one correct submission executed sandboxed and not, alternately (paired): the sandbox's
   overhead per submission (``--only overhead`` runs just this);
6. one correct submission executed with the verdict kernel and without, alternately (paired):
   the verdict path's cost per submission (``--only verdict`` runs just this).

``--only lessons [--lessons 04-onnx-runtime ...] [--forge 07-production ...] [--keep]`` grades,
with ``python -m autograder grade`` (sandbox, verdict kernel), each lesson's instructor
solutions, its untouched release and (``--forge``) every answer wrong behind a forging cell, in
a course of its own; it prints the scores and seconds per submission.

It prints a table and writes the figures, the machine's core count and the load average
(other work on the machine inflates every figure; the load is recorded, not subtracted).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = "00-template"


def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def make_course(dest: Path, assignment: str = ASSIGNMENT) -> Path:
    """A course of its own in ``dest``: the repository's nbgrader config and ``assignment``
    released from source/."""
    from autograder.course import Course

    dest.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", dest)
    shutil.copytree(ROOT / "source" / assignment, dest / "source" / assignment)
    result = Course(dest).api.generate_assignment(assignment, force=True, create=True)
    if not result.get("success"):
        raise RuntimeError(f"generate_assignment {assignment} failed: {result.get('error')}")
    return dest


def synthetic_class(course: Path, n: int) -> dict[str, str]:
    """``n`` submissions: 40% correct, 25% partial, 20% blank, 15% bad; student -> kind."""
    release = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    source = nbformat.read(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
    answers = {_gid(c): c.source for c in source.cells if _gid(c)}

    def solved(wrong_first: bool = False) -> bytes:
        nb = nbformat.from_dict(json.loads(nbformat.writes(release)))
        first = True
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = answers[_gid(cell)]
                if wrong_first and first:
                    name = cell.source.split("def ", 1)[1].split("(", 1)[0]
                    cell.source = f"def {name}(*args, **kwargs):\n    return 0\n"
                first = False
        return nbformat.writes(nb).encode()

    def crash() -> bytes:
        nb = nbformat.from_dict(json.loads(solved().decode()))
        index = next(i for i, c in enumerate(nb.cells) if _gid(c))
        nb.cells.insert(index, nbformat.v4.new_code_cell("import os\nos._exit(3)"))
        return nbformat.writes(nb).encode()

    kinds = []
    for i in range(n):
        frac = i / n
        kinds.append(
            "correct"
            if frac < 0.40
            else "partial"
            if frac < 0.65
            else "blank"
            if frac < 0.85
            else ("corrupt", "kernel-death", "edited-tests")[i % 3]
        )
    out = {}
    for i, kind in enumerate(kinds):
        student = f"student{i:03d}"
        if kind == "correct":
            data = solved()
        elif kind == "partial":
            data = solved(wrong_first=True)
        elif kind == "blank":
            data = nbformat.writes(release).encode()
        elif kind == "corrupt":
            data = solved()[:900]
        elif kind == "kernel-death":
            data = crash()
        else:
            nb = nbformat.reads(solved(wrong_first=True).decode(), 4)
            for cell in nb.cells:
                if cell.metadata.get("nbgrader", {}).get("grade"):
                    cell.source = "pass"
            data = nbformat.writes(nb).encode()
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / f"{ASSIGNMENT}.ipynb").write_bytes(data)
        out[student] = kind
    return out


def plain_nbgrader(course: Path) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"],
        cwd=course,
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.monotonic() - t0
    autograded = sorted(p.parent.parent.name for p in (course / "autograded").glob("*/*/*.ipynb"))
    return {"seconds": seconds, "exit": proc.returncode, "autograded": len(autograded)}


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (``/proc/stat``: user, nice,
    system, irq, softirq, steal), so a run's difference counts its kernels and sandboxes too."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def pipeline(
    course: Path, jobs: int, sandbox: str, verdict: bool = True, warm: bool = True
) -> dict:
    from autograder import sandbox as sb
    from autograder.course import Course
    from autograder.grade import GradeOptions, grade, read_records

    c = Course(course)
    t0, cpu0 = time.monotonic(), machine_cpu_s()
    summary = grade(
        c,
        ASSIGNMENT,
        GradeOptions(
            jobs=jobs,
            sandbox=sandbox,
            limits=sb.Limits(),
            progress=False,
            verdict=verdict,
            warm=warm,
        ),
    )
    seconds, cpu = time.monotonic() - t0, machine_cpu_s() - cpu0
    records = read_records(c, ASSIGNMENT)
    job_seconds = [r["seconds"] for r in records.values() if r.get("seconds")]
    return {
        "seconds": seconds,
        "machine_cpu_s": cpu,
        "graded": len(summary.graded),
        "failed": len(summary.failed),
        "records": len(records),
        "job_seconds_mean": statistics.mean(job_seconds),
        "job_seconds_median": statistics.median(job_seconds),
        "sandbox": summary.sandbox.get("kind"),
    }


def paired_overhead(course: Path, student: str, repeat: int) -> dict:
    """One correct submission executed with and without the sandbox, alternately (paired runs).

    Each run is a whole worker job: kernel start, the lesson, the integrity checks, teardown.
    """
    from autograder.course import Course
    from autograder.execute import run_job
    from autograder.grade import GradeOptions, load_sources, prepare

    c = Course(course)
    job, _ = prepare(c, ASSIGNMENT, student, load_sources(c, ASSIGNMENT), GradeOptions(), 1)
    times: dict[str, list[float]] = {"bubblewrap": [], "none": []}
    for k in range(repeat):
        for mode in ("bubblewrap", "none") if k % 2 == 0 else ("none", "bubblewrap"):
            job.sandbox = mode
            t0 = time.monotonic()
            result = run_job(job)
            assert result.outcomes[0].ok, result.outcomes[0].reason
            times[mode].append(time.monotonic() - t0)
    diffs = [b - n for b, n in zip(times["bubblewrap"], times["none"], strict=True)]
    return {
        "repeat": repeat,
        "bubblewrap_median_s": statistics.median(times["bubblewrap"]),
        "none_median_s": statistics.median(times["none"]),
        "paired_difference_median_s": statistics.median(diffs),
        "runs": times,
    }


def paired_verdict(course: Path, student: str, repeat: int) -> dict:
    """One correct submission graded with the verdict kernel and without it, alternately.

    Each run is a whole worker job (sandboxed): kernel start(s), the lesson, the tests (in T,
    or in the student's kernel with the guard after each), teardown.
    """
    from autograder.course import Course
    from autograder.execute import run_job
    from autograder.grade import GradeOptions, load_sources, prepare

    c = Course(course)
    sources = load_sources(c, ASSIGNMENT)
    jobs = {
        "verdict": prepare(c, ASSIGNMENT, student, sources, GradeOptions(verdict=True), 1)[0],
        "student-kernel": prepare(c, ASSIGNMENT, student, sources, GradeOptions(verdict=False), 1)[
            0
        ],
    }
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for k in range(repeat):
        order = ("verdict", "student-kernel") if k % 2 == 0 else ("student-kernel", "verdict")
        for mode in order:
            t0 = time.monotonic()
            result = run_job(jobs[mode])
            assert result.outcomes[0].ok, result.outcomes[0].reason
            times[mode].append(time.monotonic() - t0)
    ratios = [v / s for v, s in zip(times["verdict"], times["student-kernel"], strict=True)]
    return {
        "repeat": repeat,
        "verdict_median_s": statistics.median(times["verdict"]),
        "student_kernel_median_s": statistics.median(times["student-kernel"]),
        "paired_ratio_median": statistics.median(ratios),
        "runs": times,
        "load_average": os.getloadavg(),
    }


def _forge() -> str:
    """A forging route of issue 18, from the grading corpus (one home for the attacks): input
    transformers turn every assertion cell into ``pass`` and a replaced ``run_code`` swallows the
    remaining errors. With the tests in the student's kernel this once turned wrong answers into
    marks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "grading_corpus_cases", ROOT / "tests" / "grading_corpus" / "cases.py"
    )
    cases = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = cases  # its dataclasses look their module up there
    spec.loader.exec_module(cases)
    return cases.FORGE_INPUT + cases.FORGE_RUN_CODE


def wrong_answers(source: str) -> str:
    """Every name a solution cell defines, answered wrongly: functions and classes return 0,
    variables are 0."""
    import ast

    from autograder.verdict import defined_names

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    callables = {
        n.name
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    lines = [
        f"def {name}(*args, **kwargs):\n    return 0\n" if name in callables else f"{name} = 0\n"
        for name in sorted(defined_names(source))
    ]
    return "".join(lines) or "pass\n"


def lesson_submissions(course: Path, lesson: str, forge: bool) -> dict[str, str]:
    """The instructor's solutions, the untouched release and (``forge``) every answer wrong
    with a forging cell first, each as one student of ``course``; student -> kind."""
    release = nbformat.read(course / "release" / lesson / f"{lesson}.ipynb", 4)
    source = nbformat.read(course / "source" / lesson / f"{lesson}.ipynb", 4)
    answers = {_gid(c): c.source for c in source.cells if _gid(c)}
    solved = nbformat.reads(nbformat.writes(release), 4)
    for cell in solved.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = answers[_gid(cell)]
    subs = {"solutions": solved, "blank": release}
    if forge:
        forged = nbformat.reads(nbformat.writes(solved), 4)
        for cell in forged.cells:
            if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
                cell.source = wrong_answers(cell.source)
        forged.cells.insert(0, nbformat.v4.new_code_cell(_forge()))
        subs["forged"] = forged
    for student, nb in subs.items():
        folder = course / "submitted" / student / lesson
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{lesson}.ipynb")
    return {s: s for s in subs}


def grade_lessons(work: Path, lessons: list[str], jobs: int, forge: list[str]) -> dict:
    """Each lesson's solutions and blank release (and forged answers) graded by
    ``python -m autograder grade`` (sandbox, verdict kernel) in a course of its own."""

    out = {}
    for lesson in lessons:
        course = make_course(work / lesson, lesson)
        lesson_submissions(course, lesson, lesson in forge)
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "autograder", "--course", str(course), "grade", lesson]
            + ["--jobs", str(jobs), "--sandbox", "bubblewrap", "--quiet"],
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - t0
        report = json.loads((course / "grading" / lesson / "report.json").read_text())
        entries = report if isinstance(report, list) else report.get("students", report)
        row: dict = {"seconds": round(seconds, 1), "exit": proc.returncode}
        for e in entries:
            row[e["student"]] = {
                k: e.get(k)
                for k in ("status", "score", "max_score", "verdict", "seconds", "reason")
                if e.get(k) is not None
            }
        if proc.returncode != 0:
            row["stderr"] = proc.stderr[-1500:]
        out[lesson] = row
        print(f"  {lesson}: {json.dumps(row)}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grading_bench", description=__doc__)
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=None, help="default: one per core")
    parser.add_argument("--repeat", type=int, default=6, help="paired runs for the overhead")
    parser.add_argument(
        "--only", choices=["throughput", "overhead", "verdict", "lessons"], help="run one part"
    )
    parser.add_argument(
        "--lessons",
        nargs="*",
        help="with --only lessons: the lessons to grade (default: every lesson of source/)",
    )
    parser.add_argument(
        "--forge", nargs="*", default=["07-production"], help="lessons also graded forged"
    )
    parser.add_argument("--keep", action="store_true", help="keep the graded courses (printed)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "grading-bench.json")
    args = parser.parse_args(argv)
    from autograder.grade import default_jobs

    jobs = args.jobs or default_jobs()
    work = Path(tempfile.mkdtemp(prefix="grading-bench-"))
    figures: dict = {"students": args.students, "jobs": jobs, "cores": os.cpu_count()}
    load = {"start": os.getloadavg()}
    try:
        if args.only == "lessons":
            names = args.lessons or sorted(
                p.name for p in (ROOT / "source").iterdir() if p.name[:2].isdigit()
            )
            figures["lessons"] = grade_lessons(work / "lessons", names, jobs, args.forge)
            load["after_lessons"] = os.getloadavg()
            figures["load_average"] = load
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(figures, indent=2) + "\n")
            print(f"written: {args.out}")
            return 0
        base = make_course(work / "released")
        if args.only in (None, "throughput"):
            courses = {}
            for name in ("plain", "sandbox", "cold", "today", "nosandbox"):
                courses[name] = work / name
                shutil.copytree(base, courses[name])
                kinds = synthetic_class(courses[name], args.students)
            figures["kinds"] = {
                k: list(kinds.values()).count(k) for k in sorted(set(kinds.values()))
            }
            plain = plain_nbgrader(courses["plain"])
            load["after_plain"] = os.getloadavg()
            sandboxed = pipeline(courses["sandbox"], jobs, "bubblewrap")
            load["after_sandbox"] = os.getloadavg()
            cold = pipeline(courses["cold"], jobs, "bubblewrap", warm=False)
            load["after_cold"] = os.getloadavg()
            today = pipeline(courses["today"], jobs, "bubblewrap", verdict=False)
            load["after_today"] = os.getloadavg()
            bare = pipeline(courses["nosandbox"], jobs, "none")
            load["after_nosandbox"] = os.getloadavg()
            n = args.students
            figures.update(
                plain=plain,
                sandboxed=sandboxed,
                cold_verdict_kernel=cold,
                student_kernel_verdict=today,
                nosandbox=bare,
                verdict_vs_student_kernel_run_ratio=sandboxed["seconds"] / today["seconds"],
                cold_vs_student_kernel_run_ratio=cold["seconds"] / today["seconds"],
                throughput_plain_per_min=60 * n / plain["seconds"],
                throughput_pipeline_per_min=60 * n / sandboxed["seconds"],
                throughput_ratio=plain["seconds"] / sandboxed["seconds"],
                sandbox_vs_bare_run_ratio=sandboxed["seconds"] / bare["seconds"],
            )
        if args.only in (None, "verdict"):
            course = work / "verdict"
            shutil.copytree(base, course)
            kinds = synthetic_class(course, 1)
            figures["verdict"] = paired_verdict(course, next(iter(kinds)), args.repeat)
            load["after_verdict"] = os.getloadavg()
        if args.only in (None, "overhead"):
            course = work / "overhead"
            shutil.copytree(base, course)
            kinds = synthetic_class(course, 1)
            figures["overhead"] = paired_overhead(course, next(iter(kinds)), args.repeat)
            load["after_overhead"] = os.getloadavg()
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    figures["load_average"] = load
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{ASSIGNMENT}, {os.cpu_count()} cores, jobs={jobs}")
    if "plain" in figures:
        plain, sandboxed, bare = figures["plain"], figures["sandboxed"], figures["nosandbox"]
        print(f"{args.students} submissions {figures['kinds']}")
        print(
            f"  plain nbgrader autograde, sequential: {plain['seconds']:7.1f} s "
            f"({plain['autograded']} notebooks in autograded/, exit {plain['exit']})"
        )
        print(
            f"  this pipeline, sandboxed:             {sandboxed['seconds']:7.1f} s "
            f"({sandboxed['graded']} graded, {sandboxed['failed']} failed, "
            f"{sandboxed['records']} in report.json; machine CPU "
            f"{sandboxed['machine_cpu_s']:.1f} s)"
        )
        cold = figures["cold_verdict_kernel"]
        print(
            f"  same, verdict kernel started cold:    {cold['seconds']:7.1f} s "
            f"({figures['cold_vs_student_kernel_run_ratio']:.2f} x the student's kernel's; "
            f"machine CPU {cold['machine_cpu_s']:.1f} s)"
        )
        today = figures["student_kernel_verdict"]
        print(
            f"  same, tests in the student's kernel:  {today['seconds']:7.1f} s "
            f"(verdict kernel / student's kernel: "
            f"{figures['verdict_vs_student_kernel_run_ratio']:.2f} x; machine CPU "
            f"{today['machine_cpu_s']:.1f} s)"
        )
        print(f"  this pipeline, no sandbox:            {bare['seconds']:7.1f} s")
        print(f"  throughput ratio (plain / pipeline):  {figures['throughput_ratio']:7.2f} x")
    if "verdict" in figures:
        v = figures["verdict"]
        print(
            f"  one correct submission, {v['repeat']} paired runs: verdict kernel "
            f"{v['verdict_median_s']:.2f} s, tests in the student's kernel "
            f"{v['student_kernel_median_s']:.2f} s (medians); paired ratio "
            f"{v['paired_ratio_median']:.2f} x (load {v['load_average'][0]:.1f})"
        )
    if "overhead" in figures:
        o = figures["overhead"]
        frac = o["paired_difference_median_s"] / o["bubblewrap_median_s"]
        figures["overhead"]["fraction"] = frac
        print(
            f"  one correct submission, {o['repeat']} paired runs: sandboxed "
            f"{o['bubblewrap_median_s']:.2f} s, not {o['none_median_s']:.2f} s (medians); "
            f"sandbox overhead {o['paired_difference_median_s']:+.2f} s ({100 * frac:+.1f}%)"
        )
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"  load average (1, 5, 15 min) at each step: {load}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
