"""The instructor's grading pipeline, end to end, with real nbgrader and real sandboxes.

One module-scoped course (a copy of the repository's nbgrader_config.py and the template lesson,
released once) is graded with the adversarial corpus of tests/grading_corpus/cases.py; each case
has its expected outcome. Further tests: collect from LMS-style exports, a run killed and
resumed, a local Dask cluster, grading without a sandbox, feedback and exports.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import csv
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import harness
import nbformat
import psutil
import pytest

from autograder import sandbox as sb
from autograder.collect import collect
from autograder.course import Course
from autograder.export import build_report, export
from autograder.feedback import generate as generate_feedback
from autograder.feedback import hidden_lines
from autograder.grade import GradeOptions, grade, read_records

ROOT = harness.ROOT
ASSIGNMENT = "00-template"
LIMITS = sb.Limits(
    wall_s=90, cell_timeout_s=20, cpu_s=120, memory_mb=1024, processes=96, output_mb=2, disk_mb=256
)
# one xdist worker runs the whole module: its course fixtures are built once, not per worker
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420), pytest.mark.xdist_group("autograder")]

_spec = importlib.util.spec_from_file_location(
    "grading_corpus_cases", ROOT / "tests" / "grading_corpus" / "cases.py"
)
corpus_cases = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = corpus_cases
_spec.loader.exec_module(corpus_cases)
# AUTOGRADER_CORPUS=forge-input,network,... grades only these cases (and the blank one they are
# compared with): for working on the autograder on a busy machine
_ONLY = {s for s in os.environ.get("AUTOGRADER_CORPUS", "").split(",") if s}
CASES = [c for c in corpus_cases.cases() if not _ONLY or c.student in _ONLY | {"blank"}]


def _sleepers(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if any(marker in arg for arg in proc.info["cmdline"] or []):
                found.append(proc.pid)
    return found


def _ours(token: str) -> bool:
    """Whether a job belongs to this test process: its owner (named in the token) is gone (a
    killed run's orphan, a leak whoever made it) or is this process or one of its children. A
    job of another test worker (``pytest -n 2``: the instructor-path test grades too) is not."""
    if not sb.token_owner_alive(token):
        return True
    owner = int(token.split(".")[0])
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(owner)
        return owner == os.getpid() or os.getpid() in {p.pid for p in proc.parents()}
    return True


def _job_processes(grace_s: float = 20.0) -> list[str]:
    """This test's grading processes (they carry AUTOGRADER_JOB in their environment) that are
    still alive after ``grace_s``: a sandbox's wrapper may still be tearing down its killed
    kernel when grading returns (seen on 2 of 3 full runs, gone seconds later). Each is described
    (pid, parent, age, command line), so a failure says what was left."""
    deadline = time.monotonic() + grace_s
    while True:
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                token = proc.environ().get("AUTOGRADER_JOB")
                if token and _ours(token) and proc.status() != psutil.STATUS_ZOMBIE:
                    age = time.time() - proc.create_time()
                    cmd = " ".join(proc.cmdline())[:200]
                    found.append(f"pid {proc.pid} (parent {proc.ppid()}, {age:.0f} s old): {cmd}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("released")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    shutil.copytree(ROOT / "source" / ASSIGNMENT, root / "source" / ASSIGNMENT)
    result = Course(root).api.generate_assignment(ASSIGNMENT, force=True, create=True)
    assert result["success"], f"nbgrader generate_assignment failed: {result.get('error')}"
    return root


def _course_copy(released: Path, dest: Path) -> Course:
    shutil.copytree(released, dest)
    return Course(dest)


def _notebooks(root: Path) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    release = nbformat.read(root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    source = nbformat.read(root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    return release, source


def _submit(course: Course, student: str, data: bytes, name: str | None = None) -> None:
    folder = course.folder("submitted", student, ASSIGNMENT)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (name or f"{ASSIGNMENT}.ipynb")).write_bytes(data)


def _tree_hash(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _exercise_max(course: Course) -> dict[str, float]:
    out: dict[str, float] = {}
    with course.gradebook() as gb:
        for nb in gb.find_assignment(ASSIGNMENT).notebooks:
            for cell in nb.grade_cells:
                ex = cell.name.split("-", 1)[0]
                out[ex] = out.get(ex, 0.0) + float(cell.max_score)
    return out


def _outputs_text(nb: nbformat.NotebookNode) -> str:
    return json.dumps([c.get("outputs", []) for c in nb.cells])


@pytest.fixture(scope="module")
def corpus(released, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "course"
    course = _course_copy(released, root)
    release, source = _notebooks(root)
    marker = "SECRET-" + uuid.uuid4().hex
    (root / "secret-marker.txt").write_text(marker)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    ctx = corpus_cases.Context(release, source, root, marker, listener.getsockname()[1])
    for case in CASES:
        data = corpus_cases.build(case, ctx)
        if case.student == "ok-full":  # other students' work must stay unreadable
            nb = nbformat.reads(data.decode(), as_version=4)
            nb.cells.append(nbformat.v4.new_markdown_cell(f"my notes {marker}"))
            data = nbformat.writes(nb).encode()
        if case.student == "symlink-notebook":  # placed in submitted/ by hand, not by collect
            folder = course.folder("submitted", case.student, ASSIGNMENT)
            folder.mkdir(parents=True)
            target = root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
            (folder / f"{ASSIGNMENT}.ipynb").symlink_to(target)
            continue
        _submit(course, case.student, data, case.filename)
    before = {d: _tree_hash(root / d) for d in ("source", "release")}
    stream = io.StringIO()
    t0 = time.monotonic()
    summary = grade(
        course, ASSIGNMENT, GradeOptions(jobs=2, limits=LIMITS, progress=True, stream=stream)
    )
    seconds = time.monotonic() - t0
    yield {
        "course": course,
        "summary": summary,
        "records": read_records(course, ASSIGNMENT),
        "ctx": ctx,
        "listener": listener,
        "before": before,
        "seconds": seconds,
        "progress": stream.getvalue(),
        "max": _exercise_max(course),
    }
    listener.close()


def _autograded(course: Course, student: str, record: dict) -> nbformat.NotebookNode:
    if record["status"] == "graded":
        path = course.folder("autograded", student, ASSIGNMENT) / f"{ASSIGNMENT}.ipynb"
    else:
        path = course.grading_dir(ASSIGNMENT) / "partial" / student / f"{ASSIGNMENT}.ipynb"
    return nbformat.read(path, as_version=4)


def test_every_collected_submission_has_a_record(corpus):
    records = corpus["records"]
    want = {c.student for c in CASES}
    assert set(records) == want, f"records missing for {want - set(records)}"
    summary = corpus["summary"]
    assert len(summary.graded) + len(summary.failed) == len(CASES), summary.text()
    assert corpus["summary"].sandbox["isolated"], f"expected bubblewrap, got {summary.sandbox}"
    assert f"[{len(CASES)}/{len(CASES)}]" in corpus["progress"], corpus["progress"][-500:]


@pytest.mark.parametrize("case", CASES, ids=[c.student for c in CASES])
def test_corpus_case(corpus, case):
    course, record = corpus["course"], corpus["records"][case.student]
    status = record["status"]
    assert status == case.expect, (
        f"{case.kind}: expected {case.expect}, got {status} "
        f"({record.get('category')}: {record.get('reason')})"
    )
    if case.expect == "graded":
        got = {ex: v["score"] for ex, v in record["exercises"].items()}
        want = {
            ex: (corpus["max"][ex] if v == "full" else float(v)) for ex, v in case.scores.items()
        }
        assert got == want, f"{case.kind}: expected points per exercise {want}, got {got}"
        assert record["max_score"] == sum(corpus["max"].values()), (
            f"max score should stay {sum(corpus['max'].values())}, got {record['max_score']}"
        )
    else:
        assert record["category"] == case.category, (
            f"{case.kind}: expected failure category {case.category}, got "
            f"{record['category']} ({record['reason']})"
        )
        assert re.search(case.reason, record["reason"]), (
            f"{case.kind}: reason should match {case.reason!r}, got {record['reason']!r}"
        )
        assert record["score"] == 0.0, f"a failed submission scores 0, got {record['score']}"
    if case.notes:
        assert any(re.search(case.notes, n) for n in record["notes"]), (
            f"{case.kind}: a note matching {case.notes!r} expected, got {record['notes']}"
        )
    nb = None
    refused = ("corrupt-notebook", "empty-notebook", "not-a-notebook", "too-large")
    if case.expect == "graded" or case.category not in refused:
        nb = _autograded(course, case.student, record)
    text = _outputs_text(nb) if nb is not None else ""
    if "blank-score" in case.checks:
        blank = corpus["records"]["blank"]
        assert (record["score"], record["exercises"]) == (blank["score"], blank["exercises"]), (
            f"{case.kind}: a wrong notebook must score what the blank one does, "
            f"{blank['score']} {blank['exercises']}, got {record['score']} {record['exercises']}"
        )
        assert record.get("verdict") == "separate kernel", f"verdict path not used: {record}"
    if "not-pwned" in case.checks:
        assert "PWNED" not in text, (
            f"{case.kind}: the attack ran in the grader's kernel: {text[:800]}"
        )
    limit = LIMITS.memory_mb
    if "memory-error" in case.checks:
        assert "MemoryError" in text, "the memory hog should end in a MemoryError"
        assert record["peak_memory_mb"] < limit + 200, (
            f"resident memory should stay near the {limit} MB limit, got {record['peak_memory_mb']}"
        )
    if "process-limit" in case.checks:
        found = re.search(r"process limit reached after (\d+) processes", text)
        assert found and int(found.group(1)) < LIMITS.processes, (
            f"expected the process flood to stop below {LIMITS.processes}, got {found and found.group(0)}"
        )
    if "no-leftover" in case.checks:
        for marker in ("3600.11", "3600.22", "3600.33"):
            assert not _sleepers(marker), f"processes `sleep {marker}` survived the grading"
    if "no-secrets" in case.checks:
        ctx = corpus["ctx"]
        assert "READ: []" in text, f"the kernel read course files: {text[:2000]}"
        assert "WROTE: []" in text, f"the kernel wrote outside its sandbox: {text[:2000]}"
        assert ctx.marker not in text, "the secret marker reached the kernel's output"
        leaked = list(Path(ctx.course_root).glob("pwned-*")) + list(Path("/tmp").glob("pwned-*"))
        assert not leaked, f"files written outside the sandbox: {leaked}"
    if "connection-file" in case.checks and os.geteuid() == 0:
        # as root the connection file belongs to root once the kernel has read it
        assert "CONNECTION FILE REFUSED" in text, (
            f"the kernel could write its connection file on the grader's disk: {text[:800]}"
        )
    if "no-network" in case.checks:
        assert "network unreachable" in text, f"the kernel reached the network: {text[:1500]}"
        with pytest.raises(TimeoutError):
            corpus["listener"].accept()


def test_grading_left_nothing_behind(corpus):
    root = corpus["course"].root
    for folder, files in corpus["before"].items():
        assert _tree_hash(root / folder) == files, f"{folder}/ changed during grading"
    left = _job_processes()
    assert not left, f"expected no grading process alive 20 s after grading, got pids {left}"
    for student, rec in corpus["records"].items():
        assert rec.get("sandbox", {}).get("isolated", True), f"{student} graded without sandbox"


def test_grading_again_grades_nothing(corpus):
    course = corpus["course"]
    t0 = time.monotonic()
    summary = grade(course, ASSIGNMENT, GradeOptions(jobs=2, limits=LIMITS, progress=False))
    assert sorted(summary.skipped) == sorted(c.student for c in CASES), summary.text()
    assert not summary.graded and not summary.failed, summary.text()
    assert time.monotonic() - t0 < 30, "a run with nothing to grade should start no kernel"


def test_feedback_never_shows_hidden_tests(corpus):
    course = corpus["course"]
    result = generate_feedback(course, ASSIGNMENT)
    assert not result["problems"], result["problems"]
    source = corpus["ctx"].source
    secrets = hidden_lines([c.source for c in source.cells])
    assert secrets, "the template should have hidden tests"
    leak = course.folder("autograded", "leak-hidden", ASSIGNMENT) / f"{ASSIGNMENT}.ipynb"
    leaked = nbformat.read(leak, as_version=4)
    hidden_inputs = {
        line
        for cell in leaked.cells
        if "BEGIN HIDDEN TESTS" in cell.source
        for out in cell.get("outputs", [])
        for line in out.get("text", "").splitlines()
        if line.startswith("LEAK-ARGS:")
    }
    assert hidden_inputs and "LEAK:" in _outputs_text(leaked), (
        "the leaking notebook should have printed its caller and the hidden inputs"
    )
    page = (course.folder("feedback", "leak-hidden", ASSIGNMENT) / f"{ASSIGNMENT}.html").read_text()
    shown = [line for line in hidden_inputs if line in page]
    assert not shown, f"hidden inputs shown in feedback: {shown}"
    for student in corpus["records"]:
        pages = list(course.folder("feedback", student, ASSIGNMENT).glob("*.html"))
        assert pages, f"no feedback for {student}"
        html = re.sub(r"<[^>]+>", "", pages[0].read_text())
        import html as html_mod

        plain = re.sub(r"\s+", "", html_mod.unescape(html))
        shown = [s for s in secrets if s in plain]
        assert not shown, f"hidden test lines in {student}'s feedback: {shown}"
    failed = course.folder("feedback", "segfault", ASSIGNMENT) / f"{ASSIGNMENT}.html"
    assert "could not be graded" in failed.read_text(), "failed students get the reason"
    solution = next(
        c.source for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    )
    from autograder.feedback import CSP

    for student in corpus["records"]:
        for page in course.folder("feedback", student, ASSIGNMENT).glob("*.html"):
            text = page.read_text()
            head = re.search(r"<head[^>]*>", text)
            assert head and text[head.end() :].startswith(CSP), f"{page}: no CSP first in <head>"
    scripted = course.folder("feedback", "script-output", ASSIGNMENT) / f"{ASSIGNMENT}.html"
    page = scripted.read_text()
    assert "PWNED-BY-SCRIPT" in page, "the student's output should still be shown, as text"
    assert "<script>document.title" not in page, "a student's <script> is live in the feedback"
    linked = course.folder("feedback", "symlink-notebook", ASSIGNMENT) / f"{ASSIGNMENT}.html"
    page = linked.read_text()
    assert "symbolic link" in page and solution.strip().splitlines()[-1] not in page, (
        f"a linked notebook must be refused, not graded with the instructor's solutions: {page[:600]}"
    )


def test_export_files(corpus, tmp_path):
    course = corpus["course"]
    paths = export(course, ASSIGNMENT, tmp_path / "out")
    rows = list(csv.DictReader(paths["grades.csv"].open()))
    assert list(rows[0]) == [
        "assignment",
        "duedate",
        "timestamp",
        "student_id",
        "last_name",
        "first_name",
        "email",
        "raw_score",
        "late_submission_penalty",
        "score",
        "max_score",
    ], f"nbgrader's CSV columns expected, got {list(rows[0])}"
    by_student = {r["student_id"]: r for r in rows}
    assert set(by_student) == {c.student for c in CASES}, "one CSV row per student"
    report = json.loads(paths["report.json"].read_text())
    assert report["summary"]["students"] == len(CASES)
    for entry in report["students"]:
        assert entry["status"] in ("graded", "failed"), entry
        assert float(by_student[entry["student"]]["score"]) == entry["score"], entry
        if entry["status"] == "failed":
            assert entry["reason"] and entry["category"], entry
    assert paths["score-distribution.png"].read_bytes()[:4] == b"\x89PNG"
    assert report["sandbox"]["isolated"] is True


def _lite_correct(root: Path) -> bytes:
    release, source = _notebooks(root)
    ctx = corpus_cases.Context(release, source, root, "", 0)
    return nbformat.writes(corpus_cases.lite(corpus_cases.solved(ctx))).encode()


def test_resume_after_kill(released, tmp_path):
    course = _course_copy(released, tmp_path / "course")
    data = _lite_correct(course.root)
    students = [f"s{i}" for i in range(4)]
    for student in students:
        _submit(course, student, data)
    cmd = [
        sys.executable,
        "-m",
        "autograder",
        "--course",
        str(course.root),
        "grade",
        ASSIGNMENT,
        "--jobs",
        "2",
        "--quiet",
        "--cell-timeout",
        "20",
        "--memory",
        "1024",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = course.grading_dir(ASSIGNMENT) / "results"
    deadline = time.monotonic() + 180
    children: list[psutil.Process] = []
    try:
        while time.monotonic() < deadline and not list(results.glob("*.json")):
            with contextlib.suppress(psutil.Error):
                children = psutil.Process(proc.pid).children(recursive=True) or children
            assert proc.poll() is None, "the grading run ended before it was killed"
            time.sleep(0.2)
        assert list(results.glob("*.json")), "no submission graded within 180 s"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"processes of the killed run survived: {alive}"
    first = read_records(course, ASSIGNMENT)
    assert first and len(first) < len(students), f"kill came too late to test resuming: {first}"
    summary = grade(course, ASSIGNMENT, GradeOptions(jobs=2, limits=LIMITS, progress=False))
    assert sorted(summary.skipped) == sorted(first), summary.text()
    assert sorted(summary.graded) == sorted(set(students) - set(first)), summary.text()
    records = read_records(course, ASSIGNMENT)
    for student in students:
        assert records[student]["status"] == "graded", records[student]
        assert records[student]["exercises"]["ex1"]["score"] > 0, records[student]
    for student, rec in first.items():
        assert records[student]["graded_at"] == rec["graded_at"], f"{student} graded twice"
    stale = [
        p
        for p in Path(tempfile.gettempdir()).glob("autograder-job-*")
        if not psutil.pid_exists(int(p.name.split("-")[2]))
    ]
    assert not stale, f"job folders of the killed run were not cleaned: {stale}"
    with course.gradebook() as gb:
        subs = gb.find_assignment(ASSIGNMENT).submissions
        assert sorted(s.student_id for s in subs) == students, "one submission per student"
        scores = {s.student_id: s.score for s in subs}
    assert all(scores[s] == records[s]["score"] for s in students), scores
    left = _job_processes()
    assert not left, f"expected the resumed run to kill what the killed one left, got {left}"


_ORPHAN_MAKER = r"""
import os, signal, subprocess, sys, time
from autograder import sandbox as sb
token = sys.argv[1] if len(sys.argv) > 1 else sb.job_token()
env = {"PATH": os.environ["PATH"], "AUTOGRADER_JOB": token}
subprocess.Popen(["bwrap", "--die-with-parent", "--unshare-pid", "--dev-bind", "/", "/",
                  "sleep", "300"], env=env)
if len(sys.argv) == 1:
    time.sleep(0.001)  # killed while bubblewrap starts, as a worker killed with its grader
    os.kill(os.getpid(), signal.SIGKILL)
time.sleep(300)
"""


@pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap")
def test_a_sandbox_whose_worker_was_killed_is_killed_by_the_next_run():
    """bubblewrap's --die-with-parent misses a parent killed while it starts (its namespace init
    sets the signal late): such a sandbox outlives its worker. The next run's sweep kills what a
    dead owner left, and only that: a live owner's sandbox and an unmarked process stay."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(20):  # each leaves an orphan about 4 times in 10 (measured)
        subprocess.run([sys.executable, "-c", _ORPHAN_MAKER], env=env, check=False)
    time.sleep(1)
    orphans = {p.pid for p in sb.orphaned_job_processes()}
    live_token = sb.job_token()  # this process owns it, and runs
    pid, ticks, rand = live_token.split(".")
    reused = f"{pid}.{int(ticks) + 1}.{rand}"  # this pid, another start time: its owner is gone
    owner = subprocess.Popen([sys.executable, "-c", _ORPHAN_MAKER, live_token], env=env)
    dead = subprocess.Popen([sys.executable, "-c", _ORPHAN_MAKER, reused], env=env)
    unmarked = subprocess.Popen(["sleep", "300"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            len(sb.job_processes_alive(live_token)) == len(sb.job_processes_alive(reused)) == 3
        ):
            time.sleep(0.05)  # each: bubblewrap, its namespace's init and sleep
        kept, doomed = set(sb.job_processes_alive(live_token)), set(sb.job_processes_alive(reused))
        killed = set(sb.kill_orphans())
        assert orphans <= killed, f"expected the orphans {orphans} killed, got {killed}"
        assert doomed and doomed <= killed, f"expected {doomed} (a dead owner's) killed: {killed}"
        now = set(sb.job_processes_alive(live_token))
        assert kept and now == kept, f"a live owner's job was killed: {kept}, left {now}"
        assert unmarked.poll() is None, "an unmarked process was killed"
        left = [p.pid for p in sb.orphaned_job_processes()]
        assert not left, f"expected no orphan after the sweep, got {left}"
    finally:
        for proc in (owner, dead, unmarked):
            proc.kill()
            proc.wait()
        sb.kill_orphans()  # the owner's sandbox, now orphaned


def test_dask_local_cluster(released, tmp_path):
    distributed = pytest.importorskip("distributed")
    course = _course_copy(released, tmp_path / "course")
    data = _lite_correct(course.root)
    for student in ("d0", "d1"):
        _submit(course, student, data)
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        summary = grade(
            course,
            ASSIGNMENT,
            GradeOptions(cluster=cluster.scheduler_address, limits=LIMITS, progress=False),
        )
        worker_pids = {w.pid for w in cluster.workers.values() if hasattr(w, "pid")}
    assert sorted(summary.graded) == ["d0", "d1"], summary.text()
    records = read_records(course, ASSIGNMENT)
    for rec in records.values():
        pid = int(rec["worker"].rsplit(":", 1)[1])
        assert pid != os.getpid(), "the job should run on the Dask worker, not here"
        if worker_pids:
            assert pid in worker_pids, f"expected a worker pid in {worker_pids}, got {pid}"
        assert rec["sandbox"]["isolated"], rec["sandbox"]


def test_without_sandbox_it_says_so(released, tmp_path):
    course = _course_copy(released, tmp_path / "course")
    _submit(course, "plain", _lite_correct(course.root))
    stream = io.StringIO()
    summary = grade(
        course,
        ASSIGNMENT,
        GradeOptions(jobs=1, sandbox="none", limits=LIMITS, progress=True, stream=stream),
    )
    assert summary.graded == ["plain"], summary.text()
    assert summary.text().startswith("WARNING NO SANDBOX"), summary.text()
    assert "NO SANDBOX" in stream.getvalue(), stream.getvalue()
    report = build_report(course, ASSIGNMENT)
    assert report["sandbox"]["isolated"] is False and "NO SANDBOX" in report["sandbox"]["warning"]
    assert not _job_processes(), "no-sandbox grading left processes behind"


class _CrashingExecutor(cf.ThreadPoolExecutor):
    """Runs jobs in threads, except that the student "crash" always breaks its worker."""

    def submit(self, fn, job, *args, **kwargs):
        if job.student == "crash":
            future = cf.Future()
            future.set_exception(BrokenProcessPool("worker died"))
            return future
        return super().submit(fn, job, *args, **kwargs)


def test_a_crashing_worker_is_retried_then_reported(released, tmp_path):
    course = _course_copy(released, tmp_path / "course")
    data = _lite_correct(course.root)
    for student in ("crash", "fine"):
        _submit(course, student, data)
    with _CrashingExecutor(max_workers=1) as executor:
        summary = grade(
            course,
            ASSIGNMENT,
            GradeOptions(executor=executor, jobs=1, limits=LIMITS, progress=False),
        )
    assert summary.graded == ["fine"], summary.text()
    ((student, reason),) = summary.failed
    assert student == "crash" and "crashed twice" in reason, summary.failed
    assert read_records(course, ASSIGNMENT)["crash"]["category"] == "internal-error"


def test_wall_limit_stops_a_slow_notebook():
    from traitlets.config.loader import PyFileConfigLoader

    from autograder import execute as ex

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(3)") for _ in range(4)]
    text = nbformat.writes(nbformat.v4.new_notebook(cells=cells))
    limits = sb.Limits(wall_s=6, cell_timeout_s=20)
    job = ex.Job("w", ASSIGNMENT, [ex.NotebookJob("w.ipynb", text)], {}, limits, config)
    t0 = time.monotonic()
    outcome = ex.run_job(job).outcomes[0]
    took = time.monotonic() - t0
    assert not outcome.ok and outcome.category == "wall-time", (outcome.category, outcome.reason)
    assert "wall-time limit of 6 s" in outcome.reason, outcome.reason
    assert took < 20, f"the wall limit should stop the run near 6 s, took {took:.1f} s"
    assert not _job_processes(), "the stopped kernel left processes"


_PLANT = """
import glob, json, os, subprocess
paths = ["/tmp/planted", "/dev/shm/planted", "planted.txt", os.path.expanduser("~/.cache/planted")]
sleepers = [p for p in os.listdir("/proc") if p.isdigit()
            and open(f"/proc/{p}/cmdline", "rb").read().split(b"\\0")[0].endswith(b"sleep")]
found = {"files": [p for p in paths if os.path.exists(p)], "sleepers": sleepers,
         "data": open("data.txt").read(), "module": hasattr(json, "planted")}
assert found == {"files": [], "sleepers": [], "data": "from the release", "module": False}, (
    f"expected nothing of an earlier submission's verdict kernel, got {found}")
for p in paths:
    open(p, "w").write("planted")
open("data.txt", "w").write("changed")
json.planted = True
subprocess.Popen(["sleep", "600"], start_new_session=True)
print("PLANTED", os.getpid())
"""


def test_each_forked_verdict_kernel_starts_from_the_zygote_and_nothing_else():
    """A worker forks T from one prepared process per notebook (autograder.warm): a file in
    /tmp, /dev/shm, the home or the working folder, a changed release file, a module attribute
    or a process left by one submission's T is gone for the next, which is a fresh fork."""
    from traitlets.config.loader import PyFileConfigLoader

    from autograder import execute as ex
    from autograder import verdict as vd
    from autograder import warm

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    meta = {
        "nbgrader": {
            "grade": True,
            "grade_id": "t1",
            "points": 1,
            "solution": False,
            "locked": True,
            "schema_version": 3,
        }
    }
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_PLANT, metadata=meta)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    plan = vd.VerdictPlan([vd.VerdictCell("t1", _PLANT, [])], []).to_dict()
    job = ex.Job(
        "z",
        ASSIGNMENT,
        [ex.NotebookJob("z.ipynb", nbformat.writes(nb), plan)],
        {},
        LIMITS,
        config,
        sandbox="bubblewrap",
        verdict_files={"data.txt": b"from the release"},
        warm=True,
    )
    try:
        for run in range(3):
            outcome = ex.run_job(job).outcomes[0]
            assert outcome.ok and outcome.verdict, (outcome.category, outcome.reason)
            cell = nbformat.reads(outcome.notebook, as_version=4).cells[0]
            text = _outputs_text(nbformat.v4.new_notebook(cells=[cell]))
            assert "PLANTED" in text and "Error" not in text, f"run {run}: {text[:1500]}"
            assert not outcome.notes, outcome.notes
        (zygote,) = warm._POOL.values()
        assert zygote.children == 3, f"expected 3 forks of one zygote, got {zygote.children}"
    finally:
        warm.close_all()
    assert not warm._POOL
    assert not _job_processes(), "the zygote or a forked kernel outlived close_all()"


def test_a_venv_reached_through_a_link_runs_in_the_sandbox(tmp_path):
    link = tmp_path / "venv-link"
    link.symlink_to(Path(sys.prefix).resolve())
    info = sb.probe("bubblewrap")
    launcher = sb.KernelLauncher(
        info, sb.Limits(), tmp_path, uid=sb.UID_BASE + sb.UID_COUNT - 2 if info.privileged else None
    )
    launcher.prepare()
    code = "import course, sys; print('RAN', sys.prefix)"
    cmd = launcher.wrap([str(link / "bin" / "python"), "-c", code])
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, **launcher.popen_kwargs(log=False)
        )
    finally:
        launcher.close_files()
    assert proc.returncode == 0 and f"RAN {link}" in proc.stdout, (
        f"expected the linked venv's python to run in the sandbox, got {proc.returncode}: "
        f"{proc.stdout} {proc.stderr[-600:]}"
    )


def test_the_two_kernels_of_a_submission_share_a_loopback_and_nothing_else(tmp_path):
    """Lesson 7's tests start a server in T and call the student's client (in S) with its URL:
    S and T share one network namespace with only the loopback; the grader's own loopback, the
    outside network and another submission's namespace stay out of reach."""
    info = sb.probe("bubblewrap")
    net = sb.SharedNetwork.start()
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen()
    host_port = host.getsockname()[1]
    procs, launchers = [], []
    server = (
        "import socket, sys\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "print(s.getsockname()[1], flush=True)\n"
        "c, _ = s.accept(); c.sendall(b'answer from T'); c.close()\n"
    )
    client = (
        "import socket, sys\n"
        "port = int(sys.argv[1])\n"
        "print('GOT', socket.create_connection(('127.0.0.1', port), timeout=5).recv(64))\n"
        "for host, p in (('127.0.0.1', int(sys.argv[2])), ('1.1.1.1', 80)):\n"
        "    try:\n"
        "        socket.create_connection((host, p), timeout=3)\n"
        "        print('REACHED', host, p)\n"
        "    except OSError as exc:\n"
        "        print('UNREACHABLE', host, type(exc).__name__)\n"
    )

    def start(name: str, code: str, network, *args: str, uid_offset: int) -> subprocess.Popen:
        folder = tmp_path / name
        folder.mkdir()
        uid = sb.UID_BASE + sb.UID_COUNT - uid_offset if info.privileged else None
        launcher = sb.KernelLauncher(info, sb.Limits(), folder, uid=uid, network=network)
        launcher.prepare()
        cmd = launcher.wrap([sys.executable, "-S", "-c", code, *args])
        kw = launcher.popen_kwargs(log=False)
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
        )
        launcher.close_files()
        procs.append(proc)
        launchers.append(launcher)
        return proc

    try:
        t = start("t", server, net, uid_offset=4)
        port = t.stdout.readline().strip()
        assert port.isdigit(), f"the server in T did not start: {t.stderr.read()[-600:]}"
        s = start("s", client, net, port, str(host_port), uid_offset=5)
        out, err = s.communicate(timeout=60)
        assert "GOT b'answer from T'" in out, f"S did not reach T's server: {out} {err[-600:]}"
        assert "UNREACHABLE 127.0.0.1" in out and "UNREACHABLE 1.1.1.1" in out, (
            f"expected the grader's loopback and the outside unreachable from S, got {out}"
        )
        other = start("other", client, None, port, str(host_port), uid_offset=6)
        out, err = other.communicate(timeout=60)
        assert "GOT" not in out, f"a kernel outside the submission reached its server: {out}"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        net.close()
        host.close()


def test_the_kernel_reads_the_built_artefacts_and_cannot_change_them(tmp_path):
    """Lessons 3, 4, 7 and 8 load transformers built at set-up: the sandbox shows the
    instructor's built artefacts read-only, where course.artefacts.folder looks first."""
    home = tmp_path / "cache" / "artefacts"
    (home / "text-encoder-test").mkdir(parents=True)
    (home / "text-encoder-test" / "encoder.onnx").write_bytes(b"built at set-up")
    info = sb.probe("bubblewrap")
    launcher = sb.KernelLauncher(
        info,
        sb.Limits(),
        tmp_path / "job",
        uid=sb.UID_BASE + sb.UID_COUNT - 3 if info.privileged else None,
        artefacts=str(home),
    )
    (tmp_path / "job").mkdir()
    launcher.prepare()
    code = (
        "from course import artefacts\n"
        "folder = artefacts.folder('text-encoder-test')\n"
        "print('READ', (folder / 'encoder.onnx').read_bytes().decode())\n"
        "try:\n"
        "    (folder / 'encoder.onnx').write_bytes(b'changed')\n"
        "    print('WROTE')\n"
        "except OSError as exc:\n"
        "    print('REFUSED', type(exc).__name__)\n"
    )
    cmd = launcher.wrap([sys.executable, "-c", code])
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=60,
            **launcher.popen_kwargs(log=False),
        )
    finally:
        launcher.close_files()
    assert "READ built at set-up" in proc.stdout, (
        f"expected the kernel to read the built artefact, got {proc.returncode}: "
        f"{proc.stdout} {proc.stderr[-600:]}"
    )
    assert "REFUSED" in proc.stdout, f"expected the artefact to be read-only, got {proc.stdout}"
    assert (home / "text-encoder-test" / "encoder.onnx").read_bytes() == b"built at set-up"


def test_grading_refuses_a_mount_that_shows_the_course(released, tmp_path):
    from autograder.course import CourseError

    course = _course_copy(released, tmp_path / "course")
    options = GradeOptions(jobs=1, limits=LIMITS, progress=False, expose=(str(tmp_path),))
    with pytest.raises(CourseError, match="refused"):
        grade(course, ASSIGNMENT, options)


# -- collect ----------------------------------------------------------------------------------


def _zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            z.writestr(info, target)
    return path


def test_collect_lms_zip(released, tmp_path):
    course = _course_copy(released, tmp_path / "course")
    nb = _lite_correct(course.root)
    other = nb.replace(b"hub", b"hub ")  # a different file, to tell which one was chosen
    archive = _zip(
        tmp_path / "export.zip",
        {
            "export/doe_jdoe1_attempt_2024-03-01-10-00-00_00-template.ipynb": nb,
            "export/doe_jdoe1_attempt_2024-03-02-09-00-00_00-template.ipynb": other,
            "export/roe_1234_5678_my homework.ipynb": nb,
            "export/Ann Poe_42_assignsubmission_file_/00-template.ipynb": nb,
            "export/Ann Poe_42_assignsubmission_file_/notes.txt": b"hello",
            "export/zed/00-template.ipynb": nb,
            "export/zed/00-template (1).ipynb": other,
            # impersonation: names chosen by students, claiming others' ids from their folders
            "export/zed/x_42_attempt_2099-01-01-00-00-00_00-template.ipynb": b"forged",
            "export/Ann Poe_42_assignsubmission_file_/y_777_attempt_2099-01-01_00-template.ipynb": (
                b"forged"
            ),
            "export/__MACOSX/._x.ipynb": b"junk",
            "export/README.txt": b"export",
            "/etc/evil_1_attempt_2024_x.ipynb": nb,
            "export/../../evil_2_attempt_2024-01-01_x.ipynb": nb,
        },
        links={"export/lnk_3_attempt_2024-01-01_x.ipynb": "/etc/passwd"},
    )
    report = collect(course, ASSIGNMENT, archive)
    got = {r["student"]: r for r in report.collected}
    assert sorted(got) == ["1234", "42", "jdoe1", "zed"], report.summary()
    sub = course.folder("submitted")
    assert (sub / "jdoe1" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes() == other, (
        "the latest attempt should win"
    )
    assert (sub / "zed" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes() == other, (
        "a browser duplicate 'name (1)' is the newer download"
    )
    assert any("renamed from my homework.ipynb" in n for n in got["1234"]["notes"]), got["1234"]
    assert (sub / "42" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_bytes() == nb, (
        "another student's file must never displace 42's"
    )
    claims = [r for r in report.refused if "claims student" in r["reason"]]
    assert len(claims) == 2, f"both impersonating files should be refused: {report.refused}"
    assert not (sub / "777").exists(), "an id claimed from another student's folder was filed"
    stamp = (sub / "jdoe1" / ASSIGNMENT / "timestamp.txt").read_text()
    assert stamp.startswith("2024-03-02 09:00:00"), f"attempt time expected, got {stamp}"
    refused = {r["path"]: r["reason"] for r in report.refused}
    assert any("absolute" in v for v in refused.values()), refused
    assert any("'..'" in v for v in refused.values()), refused
    assert any("link" in v for v in refused.values()), refused
    assert not (tmp_path / "evil_2_attempt_2024-01-01_x.ipynb").exists()
    written = {p.relative_to(sub).parts[0] for p in sub.rglob("*") if p.is_file()}
    assert written == set(got), f"only the matched students' folders, got {written}"
    with course.gradebook() as gb:
        assert gb.find_student("jdoe1").last_name == "doe"


def test_collect_folder_reports_what_it_could_not_match(released, tmp_path):
    course = _course_copy(released, tmp_path / "course")
    nb = _lite_correct(course.root)
    export_dir = tmp_path / "export"
    (export_dir / "alice" / ASSIGNMENT).mkdir(parents=True)
    (export_dir / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_bytes(nb)
    (export_dir / "lonely.ipynb").write_bytes(nb)
    (export_dir / "jo_bad id!_attempt_2024-01-01_y.ipynb").write_bytes(nb)
    secret = tmp_path / "secret.ipynb"
    secret.write_bytes(b"secret")
    (export_dir / "bob").mkdir()
    (export_dir / "bob" / "00-template.ipynb").symlink_to(secret)
    (export_dir / "carol").symlink_to(tmp_path / "course")
    report = collect(course, ASSIGNMENT, export_dir)
    assert [r["student"] for r in report.collected] == ["alice"], report.summary()
    unmatched = {r["path"]: r["reason"] for r in report.unmatched}
    assert "lonely.ipynb" in unmatched, unmatched
    assert any("not usable" in v for v in unmatched.values()), unmatched
    refused = {r["path"] for r in report.refused}
    assert {"bob/00-template.ipynb", "carol"} <= refused, refused
    assert not course.folder("submitted", "bob").exists()
    summary = report.summary()
    assert "UNMATCHED: lonely.ipynb" in summary and "REFUSED" in summary, summary


def test_cli_release_and_errors(released, tmp_path):
    course = _course_copy(released, tmp_path / "course")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "--course", str(course.root), "grade", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 1 and "unknown assignment 'nope'" in run.stderr, run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "autograder", "--course", str(course.root), "release", ASSIGNMENT],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (course.root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").exists()
