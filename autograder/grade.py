"""Grade one assignment for every collected student: safe, parallel, resumable.

Three stages per submission:

1. *prepare* (here, trusted): read ``submitted/STUDENT/ASSIGNMENT``, refuse what is not a
   notebook with a reason, put back deleted test cells, and run nbgrader's own sanitising
   preprocessors (``ClearOutput``, ``DeduplicateIds``, ``OverwriteKernelspec``,
   ``OverwriteCells``, ``CheckCellMetadata``): the instructor's test cells, hidden tests
   included, replace the student's copies. The result is a :class:`~autograder.execute.Job`.
2. *execute* (a worker: a local process or a Dask worker): the job's notebook runs in a
   sandboxed kernel (:mod:`autograder.execute`). The kernel never sees a file of the course.
3. *import* (here, the single writer): nbgrader's ``SaveAutoGrades`` (and the other
   autograde preprocessors) score the executed notebook into the gradebook, the notebook goes
   to ``autograded/``, and a journal record ``grading/ASSIGNMENT/results/STUDENT.json`` is
   written last, atomically. A run killed at any moment and started again skips the students
   whose record matches their submission, and grades the others again; the gradebook writes
   are idempotent (update-or-create), so nothing is counted twice.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import dataclasses
import io
import logging
import multiprocessing
import os
import shutil
import sys
import threading
import time
import warnings
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

try:  # nbgrader's gradebook triggers harmless SQLAlchemy autoflush warnings on new submissions
    from sqlalchemy.exc import SAWarning
except ImportError:  # pragma: no cover
    SAWarning = Warning

from . import execute as ex
from . import sandbox as sb
from .course import Course
from .journal import fingerprint, read_record, read_records, results_dir, write_record
from .prepare import (
    MAX_NOTEBOOK_MB,
    Refused,
    SourceInfo,
    check_sandbox_mounts,
    ex_course_error,
    forbidden_paths,
    load_sources,
    prepare,
    verdict_plan,
)
from .progress import Progress
from .scoring import exercise_of, import_result, refused_record

#: What this module offers; the stages live in their own modules (journal, prepare, scoring)
#: and their public names are re-exported here, where they were before the split.
__all__ = [
    "MAX_NOTEBOOK_MB",
    "GradeOptions",
    "GradeSummary",
    "Refused",
    "SourceInfo",
    "check_sandbox_mounts",
    "default_jobs",
    "ex_course_error",
    "exercise_of",
    "fingerprint",
    "forbidden_paths",
    "grade",
    "import_result",
    "load_sources",
    "prepare",
    "read_record",
    "read_records",
    "refused_record",
    "results_dir",
    "student_kernel_reason",
    "verdict_plan",
    "write_record",
]

log = logging.getLogger("autograder")


@dataclass
class GradeOptions:
    """How to grade (``python -m autograder grade --help`` documents each)."""

    jobs: int | None = None  #: parallel submissions (default: one per core)
    cluster: str | None = None  #: Dask scheduler address
    executor: cf.Executor | None = None  #: any concurrent.futures executor (overrides the two)
    sandbox: str = "auto"
    limits: sb.Limits = field(default_factory=sb.Limits)
    force: bool = False  #: grade again even students whose record is current
    students: list[str] | None = None
    progress: bool = True
    guard: bool = True
    #: run the test cells in a second kernel that never runs the student's code
    verdict: bool = True
    #: fork each submission's verdict kernel from its worker's prepared process (autograder.warm)
    warm: bool = True
    expose: tuple[str, ...] = ()
    stream: io.TextIOBase | None = None


@dataclass
class GradeSummary:
    assignment: str
    graded: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sandbox: dict = field(default_factory=dict)
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [
            f"{self.assignment}: graded {len(self.graded)}, failed {len(self.failed)}, "
            f"already graded {len(self.skipped)}, time {self.seconds:.1f} s"
        ]
        if not self.sandbox.get("isolated", True):
            lines.insert(0, "WARNING " + sb.NO_SANDBOX_WARNING)
        elif self.sandbox:
            lines.append(f"sandbox: {self.sandbox.get('kind')} ({self.sandbox.get('detail')})")
        lines += [f"NOTE {note}" for note in self.notes]
        for student, reason in self.failed:
            lines.append(f"  FAILED {student}: {reason}")
        if self.interrupted:
            lines.append("interrupted: run the same command again to grade the rest")
        return "\n".join(lines)


# -- executors --------------------------------------------------------------------------------


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class _Runner:
    """The executor (process pool, Dask, or given) and how many jobs it runs at once."""

    def __init__(self, options: GradeOptions):
        self.options = options
        self.client = None
        self.owned = True
        if options.executor is not None:
            self.executor = options.executor
            self.slots = options.jobs or default_jobs()
            self.owned = False
        elif options.cluster:
            from distributed import Client

            self.client = Client(options.cluster, timeout="30s")
            self.executor = self.client.get_executor(pure=False)
            self.slots = max(1, sum(self.client.nthreads().values()))
        else:
            self.slots = options.jobs or default_jobs()
            self.executor = self._pool()

    @property
    def pool(self) -> bool:
        """The executor is this grader's own process pool (its workers serve no one else)."""
        return self.owned and isinstance(self.executor, cf.ProcessPoolExecutor)

    def _pool(self) -> cf.ProcessPoolExecutor:
        # fork (when no thread runs here) starts workers with nbgrader already imported, in
        # milliseconds; otherwise spawn, which re-imports it in each worker (about a second)
        method = "fork" if threading.active_count() == 1 else "spawn"
        return cf.ProcessPoolExecutor(
            max_workers=self.slots,
            mp_context=multiprocessing.get_context(method),
            initializer=ex.worker_init,
        )

    def restart(self) -> None:
        """After a worker process died, a process pool is broken: start a new one."""
        if isinstance(self.executor, cf.ProcessPoolExecutor) and self.owned:
            self.kill()
            self.executor = self._pool()

    def kill(self) -> None:
        if isinstance(self.executor, cf.ProcessPoolExecutor) and self.owned:
            procs = list((getattr(self.executor, "_processes", None) or {}).values())
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.kill()
            self.executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self.owned:
            if self.client is not None:
                self.executor.shutdown(wait=False)
                self.client.close()
            else:
                self.executor.shutdown(wait=True, cancel_futures=True)


def student_kernel_reason(course: Course, assignment: str) -> str | None:
    """Why the course runs this assignment's tests in the student's kernel, or None.

    ``c.Autograder.tests_in_student_kernel = {assignment: reason}`` in nbgrader_config.py, for a
    lesson whose tests cannot run in a separate kernel (the old, forgeable path: see the README's
    known limits). Honest students then keep their marks; the report and the summary say so.
    """
    section = course.config.get("Autograder", {})
    listed = dict(section.get("tests_in_student_kernel", {}) or {})
    return listed.get(assignment)


def grade(course: Course, assignment: str, options: GradeOptions | None = None) -> GradeSummary:
    """Grade every collected submission of ``assignment`` that has no current record.

    Example:
        >>> summary = grade(Course("."), "00-template", GradeOptions(jobs=2))  # doctest: +SKIP
        >>> print(summary.text())  # doctest: +SKIP
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        return _grade(course, assignment, options)


def _grade(course: Course, assignment: str, options: GradeOptions | None) -> GradeSummary:
    options = options or GradeOptions()
    t0 = time.monotonic()
    course.check_assignment(assignment)
    sources = load_sources(course, assignment)
    if not sources:
        raise ex_course_error(assignment)
    info = sb.probe(options.sandbox)
    if info.isolated:
        check_sandbox_mounts(course, options)
    summary = GradeSummary(assignment, sandbox=info.to_dict())
    stream = options.stream
    reason = student_kernel_reason(course, assignment)
    if options.verdict and reason:
        options = dataclasses.replace(options, verdict=False)
        summary.notes.append(
            f"tests run in the student's kernel, as nbgrader_config.py asks "
            f"(Autograder.tests_in_student_kernel): {reason}"
        )
    students = course.students_submitted(assignment)
    if options.students:
        unknown = sorted(set(options.students) - set(students))
        if unknown:
            raise ValueError(f"no collected submission for {', '.join(unknown)}")
        students = [s for s in students if s in options.students]
    staging = course.grading_dir(assignment) / "tmp"
    shutil.rmtree(staging, ignore_errors=True)  # what a killed run left half-written
    todo = collections.deque()
    fingerprints = {}
    for student in students:
        fp = fingerprint(course.folder("submitted", student, assignment))
        fingerprints[student] = fp
        rec = read_record(course, assignment, student)
        if (
            not options.force
            and rec is not None
            and rec.get("fingerprint") == fp
            and rec.get("status") in ("graded", "failed")
        ):
            summary.skipped.append(student)
        else:
            todo.append(student)
    if not info.isolated and options.progress:
        print("WARNING " + sb.NO_SANDBOX_WARNING, file=stream or sys.stderr)
    progress = Progress(assignment, len(todo), stream=stream, enabled=options.progress)
    if not todo:
        summary.seconds = time.monotonic() - t0
        return summary
    runner = _Runner(options)
    threads = max(1, default_jobs() // max(1, runner.slots)) if not options.cluster else 1
    inflight: dict[cf.Future, tuple[str, ex.Job, dict]] = {}
    retries: collections.Counter = collections.Counter()

    def finish(record: dict) -> None:
        write_record(course, assignment, record)
        if record["status"] == "graded":
            summary.graded.append(record["student"])
            detail = f"{record['score']:g}/{record['max_score']:g}"
        else:
            summary.failed.append((record["student"], record["reason"]))
            detail = f"({record['category']}) {record['reason'][:120]}"
        progress.done(record["student"], record["status"], detail)

    try:
        while todo or inflight:
            while todo and len(inflight) < 2 * runner.slots:
                student = todo.popleft()
                fp = fingerprints[student]
                try:
                    job, meta = prepare(course, assignment, student, sources, options, threads)
                except Refused as refusal:
                    finish(refused_record(course, assignment, student, refusal, fp, []))
                    continue
                except Exception as exc:  # never let one submission stop the run
                    refusal = Refused(ex.INTERNAL, f"could not prepare the submission: {exc!r}")
                    finish(refused_record(course, assignment, student, refusal, fp, []))
                    continue
                # the grader's own pool: each worker grades submission after submission, so
                # it keeps a prepared verdict kernel to fork T from (autograder.warm)
                job.warm = options.warm and runner.pool
                inflight[runner.executor.submit(ex.run_job, job)] = (student, job, meta)
            done, _ = cf.wait(list(inflight), timeout=0.5, return_when=cf.FIRST_COMPLETED)
            progress.draw()
            broken = False
            for fut in done:
                student, job, meta = inflight.pop(fut)
                fp = fingerprints[student]
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    broken = True
                    retries[student] += 1
                    if retries[student] <= 1:
                        todo.appendleft(student)
                        continue
                    finish(
                        refused_record(
                            course,
                            assignment,
                            student,
                            Refused(
                                ex.INTERNAL,
                                "the grading worker process crashed twice while running this "
                                "submission",
                            ),
                            fp,
                            meta["notes"],
                        )
                    )
                    continue
                except Exception as exc:  # a worker-side bug: record it, keep grading others
                    finish(
                        refused_record(
                            course,
                            assignment,
                            student,
                            Refused(ex.INTERNAL, f"grading error {type(exc).__name__}: {exc}"),
                            fp,
                            meta["notes"],
                        )
                    )
                    continue
                try:
                    record = import_result(course, assignment, result, meta, fp)
                except Exception as exc:
                    refusal = Refused(ex.INTERNAL, f"could not save the grades: {exc!r}")
                    record = refused_record(course, assignment, student, refusal, fp, [])
                finish(record)
            if broken:
                for fut, (student, _job, _meta) in list(inflight.items()):
                    inflight.pop(fut)
                    todo.appendleft(student)
                runner.restart()
    except KeyboardInterrupt:
        summary.interrupted = True
        runner.kill()
    finally:
        progress.close()
        if not summary.interrupted:
            runner.close()
    summary.seconds = time.monotonic() - t0
    return summary
