"""The notebook harness: grade lessons with nbgrader itself, in a throw-away course directory.

Used by tests/test_lessons.py and tests/test_memory.py for every assignment in source/, and by the
exercise self-tests. Grading runs the real ``nbgrader`` command line with the repository's
nbgrader_config.py (only the course root and gradebook are redirected to a temporary folder), with
the network cut off by bubblewrap where it is installed.

One run per lesson serves every check of its solutions (:func:`graded`): nbgrader grades the
solution notebook once, alone, starting from a course cache that holds the set-up artefacts but no
trained digits model (a student's first run), while the kernel's process tree is sampled for
memory; that run gives the scores, the time (build/lesson-timings.json), the peak memory
(build/lesson-memory.json) and the executed notebook the website shows (build/executed/). The
blank release, the alternative and the wrong answers are then graded in one more nbgrader call.

The course artefacts (:mod:`course.artefacts`: transformers exported to ONNX...) are built from
nothing once per test session, whatever the number of xdist workers (:func:`artefact_cache`), into
a private folder; every lesson run's cache starts with hard links to them.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import fcntl
import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source"
RELEASE = ROOT / "release"
BUILD = ROOT / "build"
TIMINGS = BUILD / "lesson-timings.json"
MEMORY = BUILD / "lesson-memory.json"
ARTEFACTS_RECORD = BUILD / "artefacts-build.json"
BUDGET_S = 60.0
# Binder gives a session 1 to 2 GB for the server and the kernels together
MEMORY_LIMIT_BYTES = 1.5e9
# matplotlib's backend in JupyterLab: the kept notebooks hold the figures as the student sees them
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# the test session's private artefact folder, shared by the xdist workers (tests/conftest.py)
ARTEFACTS_ENV = "COURSE_TEST_ARTEFACTS"


def lessons() -> list[str]:
    """Every assignment in source/ (a folder holding a notebook), in course order."""
    return sorted(
        p.parent.name for p in SOURCE.glob("*/*.ipynb") if ".ipynb_checkpoints" not in str(p)
    )


def notebook_path(lesson: str) -> Path:
    (nb,) = [p for p in (SOURCE / lesson).glob("*.ipynb")]
    return nb


def sandbox_prefix() -> list[str]:
    """Command prefix that runs a command with no network (bubblewrap), or [] when unavailable."""
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return []
    probe = subprocess.run(
        [bwrap, "--dev-bind", "/", "/", "--unshare-net", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return []
    return [bwrap, "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent", "--"]


def network_is_blocked() -> bool:
    return bool(sandbox_prefix())


@dataclass
class GradedNotebook:
    student: str
    scores: dict[str, tuple[float, float]]  # grade_id -> (auto_score, max_score), autograded cells
    notebook: nbformat.NotebookNode
    seconds: float | None  # kernel execution time, first cell start to last cell end
    log: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(s for s, _ in self.scores.values())

    @property
    def max_score(self) -> float:
        return sum(m for _, m in self.scores.values())


class Course:
    """A temporary nbgrader course directory holding one lesson.

    Its lessons run with ``COURSE_CACHE_DIR`` set to ``cache``: by default a folder of its own
    that starts with the session's artefacts (:func:`artefact_cache`) and no trained model.
    """

    def __init__(self, lesson: str, workdir: Path, cache: Path | None = None):
        self.lesson = lesson
        self.dir = workdir
        shutil.copytree(SOURCE / lesson, workdir / "source" / lesson)
        self.nb_name = notebook_path(lesson).name
        self.db = workdir / "gradebook.db"
        self.cache = cache if cache is not None else seed_cache(workdir / "cache")

    def env(self) -> dict[str, str]:
        """The environment nbgrader and the lesson's kernel run in."""
        bindir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
        return dict(
            os.environ,
            PYTHONWARNINGS="ignore",
            PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
            COURSE_CACHE_DIR=str(self.cache),
            MPLBACKEND=INLINE_BACKEND,
        )

    def nbgrader(
        self,
        *args: str,
        network: bool = False,
        timeout: float | None = None,
        probe: MemoryProbe | None = None,
    ) -> subprocess.CompletedProcess:
        """Run ``nbgrader ARGS`` on this course; ``probe`` samples the kernels it starts.

        ``timeout`` (seconds for the whole call) defaults to ``$COURSE_NBGRADER_TIMEOUT`` or 900:
        a mutation run of several notebooks on a busy machine may need more."""
        if timeout is None:
            timeout = float(os.environ.get("COURSE_NBGRADER_TIMEOUT", 900))
        cmd = [
            sys.executable,
            "-m",
            "nbgrader",
            *args,
            f"--CourseDirectory.root={self.dir}",
            f"--CourseDirectory.db_url=sqlite:///{self.db}",
        ]
        if not network:
            cmd = sandbox_prefix() + cmd
        with subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        ) as proc:
            if probe is not None:
                probe.start(proc.pid)
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                raise
            finally:
                if probe is not None:
                    probe.stop()
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def generate(self) -> Path:
        proc = self.nbgrader("generate_assignment", self.lesson, "--force", network=True)
        if proc.returncode != 0:
            raise RuntimeError(f"generate_assignment failed:\n{proc.stdout}\n{proc.stderr}")
        return self.dir / "release" / self.lesson

    def submit(self, student: str, nb: nbformat.NotebookNode) -> None:
        target = self.dir / "submitted" / student / self.lesson
        target.mkdir(parents=True, exist_ok=True)
        for extra in (SOURCE / self.lesson).iterdir():  # data files travel with the notebook
            if extra.suffix != ".ipynb" and extra.is_file():
                shutil.copy(extra, target / extra.name)
        nbformat.write(nb, target / self.nb_name)

    def autograde(
        self, students: list[str], probe: MemoryProbe | None = None
    ) -> dict[str, GradedNotebook]:
        """Grade the submitted ``students`` in one nbgrader call (one kernel after another)."""
        only = [f"--student={students[0]}"] if len(students) == 1 else []
        proc = self.nbgrader("autograde", self.lesson, "--force", *only, probe=probe)
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(
                f"nbgrader autograde failed (exit {proc.returncode}):\n{log[-4000:]}"
            )
        return {s: self._read(s, log) for s in students}

    def _read(self, student: str, log: str) -> GradedNotebook:
        from nbgrader.api import Gradebook

        path = self.dir / "autograded" / student / self.lesson / self.nb_name
        if not path.exists():
            raise AssertionError(
                f"{student}: nbgrader left no autograded notebook (kernel died?)\n{log[-3000:]}"
            )
        nb = nbformat.read(path, as_version=4)
        with Gradebook(f"sqlite:///{self.db}") as gb:
            sub = gb.find_submission_notebook(
                self.nb_name.removesuffix(".ipynb"), self.lesson, student
            )
            scores = {
                g.name: (float(g.auto_score or 0.0), float(g.max_score))
                for g in sub.grades
                if g.cell_type == "code"
            }
        return GradedNotebook(
            student, scores, nb, execution_seconds(nb), log, test_cell_problems(nb)
        )


def execution_seconds(nb: nbformat.NotebookNode) -> float | None:
    starts, ends = [], []
    for cell in nb.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            starts.append(
                datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
            )
            ends.append(
                datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            )
    if not starts:
        return None
    return (max(ends) - min(starts)).total_seconds()


def test_cell_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What in the graded test cells would cost points silently: stderr output or a numeric result."""
    problems = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                problems.append(
                    f"{meta['grade_id']}: writes to stderr ({out['text'][:200]!r}); nbgrader scores it 0"
                )
            if out.get("output_type") == "execute_result":
                text = out.get("data", {}).get("text/plain", "")
                try:
                    float(text)
                    problems.append(
                        f"{meta['grade_id']}: ends in the number {text}; nbgrader takes it as the score"
                    )
                except ValueError:
                    pass
            if out.get("output_type") == "error":
                problems.append(
                    f"{meta['grade_id']}: raised {out.get('ename')}: {out.get('evalue', '')[:300]}"
                )
    return problems


def with_cells_replaced(
    nb: nbformat.NotebookNode, replacements: dict[str, str]
) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose solution cells (by grade_id) hold other code."""
    nb = copy.deepcopy(nb)
    ids = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    for grade_id, source in replacements.items():
        if grade_id not in ids:
            raise KeyError(f"no cell with grade_id {grade_id!r}")
        cell = ids[grade_id]
        if not cell.metadata["nbgrader"].get("solution"):
            raise ValueError(f"{grade_id!r} is not a solution cell")
        cell.source = source
    return nb


def exercises_only(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without the narrative code cells its exercises do not depend on.

    The cells kept are those :func:`autograder.verdict.needed_cells` finds (the verdict kernel
    keeps the same for its tests): the exercises' cells and what they depend on by name. What it
    drops are the demonstrations (benchmarks, plots, widgets) whose results no exercise reads.
    The runs of alternative and wrong answers use it: the exercises not under test keep their
    solutions in those runs and must keep full marks there, so a cell dropped wrongly shows up
    as lost points, not as a silent change. The solutions' run (timed, and kept for the
    website) and the blank release run the whole notebook.
    """
    from autograder.verdict import needed_cells

    nb = copy.deepcopy(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    graded = [bool(c.metadata.get("nbgrader", {}).get("grade_id")) for c in code]
    keep = needed_cells([c.source for c in code], graded)
    dropped = {id(c) for c, k in zip(code, keep, strict=True) if not k}
    nb.cells = [c for c in nb.cells if id(c) not in dropped]
    return nb


def exercise_of(grade_id: str) -> str:
    """Exercise a cell belongs to (``ex2-visible`` -> ``ex2``): the course's one rule,
    :func:`course.selfcheck.exercise_of`."""
    from course.selfcheck import exercise_of as rule

    return rule(grade_id)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (across processes: the xdist workers) in the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def timing_lock() -> contextlib.AbstractContextManager[None]:
    """Serialise the timed solution runs of parallel test workers, so that a lesson's measured time
    is not inflated by another lesson's kernel running on the same two cores."""
    return file_lock(BUILD / ".timing.lock")


def _record(path: Path, lesson: str, row: dict[str, Any]) -> None:
    """Set ``lesson``'s row of a JSON table in build/ (the workers take turns)."""
    with file_lock(BUILD / ".records.lock"):
        data = json.loads(path.read_text()) if path.exists() else {}
        data[lesson] = row
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def record_timing(lesson: str, seconds: float | None, network_blocked: bool) -> None:
    _record(
        TIMINGS,
        lesson,
        {
            "seconds": seconds,
            "budget_s": BUDGET_S,
            "network_blocked": network_blocked,
            "cores": os.cpu_count(),
        },
    )


# --------------------------------------------------------------------------- the course cache


def artefact_dir() -> Path:
    """The test session's private artefact folder: tests/conftest.py makes one per session and
    hands it to the xdist workers in ``$COURSE_TEST_ARTEFACTS``; elsewhere (tests/mutants.py),
    one per process, removed when it exits (about 0.9 GB: set the variable to a folder of your
    own to keep one build for several runs)."""
    path = os.environ.get(ARTEFACTS_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="course-artefacts-")
        os.environ[ARTEFACTS_ENV] = path
        atexit.register(shutil.rmtree, path, True)
    return Path(path)


def artefact_cache(
    base: Path | None = None,
    modules: tuple[str, ...] = (),
    pythonpath: tuple[str, ...] = (),
    names: tuple[str, ...] = (),
) -> Path:
    """The course cache holding every :mod:`course.artefacts` artefact, built from nothing the
    first time any worker of the session asks (``python -m course.artefacts`` into
    ``base/cache``, under a file lock), found there afterwards.

    ``modules`` are imported before the build (they may register more builders: the harness's own
    test uses one), with ``pythonpath`` prepended to the import path; ``names`` limits the build
    to those builders (default: every one). The build's time and output are kept in
    ``base/built.json`` and build/artefacts-build.json. Raises when the build failed.
    """
    base = base or artefact_dir()
    cache, record = base / "cache", base / "built.json"
    with file_lock(base / ".lock"):
        if not record.exists():
            cache.mkdir(parents=True, exist_ok=True)
            script = (
                "import importlib, sys\n"
                f"for name in {list(modules)!r}:\n"
                "    importlib.import_module(name)\n"
                "from course.artefacts import main\n"
                f"sys.exit(main({list(names)!r}))\n"
            )
            env = dict(os.environ, COURSE_CACHE_DIR=str(cache), PYTHONWARNINGS="ignore")
            env["PYTHONPATH"] = os.pathsep.join(
                [*pythonpath, str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            )
            start = time.monotonic()
            with timing_lock():  # a build takes the cores: no lesson is timed meanwhile
                proc = subprocess.run(
                    [sys.executable, "-c", script],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
            row = {
                "seconds": round(time.monotonic() - start, 1),
                "returncode": proc.returncode,
                "built": [line for line in proc.stdout.splitlines() if ": " in line][1:],
                "output": (proc.stdout + proc.stderr)[-4000:],
                "cache": str(cache),
            }
            record.write_text(json.dumps(row, indent=2) + "\n")
            if str(base) == os.environ.get(ARTEFACTS_ENV):  # the session's: for its summary
                BUILD.mkdir(exist_ok=True)
                ARTEFACTS_RECORD.write_text(record.read_text())
    row = json.loads(record.read_text())
    if row["returncode"] != 0:
        raise RuntimeError(
            f"`python -m course.artefacts` failed (exit {row['returncode']}) building the "
            f"course artefacts into {cache}:\n{row['output']}"
        )
    return cache


def seed_cache(dest: Path, artefacts: Path | None = None) -> Path:
    """A course cache for one lesson run, as a student's first run after set-up finds it: the
    artefacts of :func:`artefact_cache` (hard links) and no trained model."""
    from tools import site

    return site.first_run_cache(dest, artefacts if artefacts is not None else artefact_cache())


def trained_models(cache: Path) -> list[str]:
    """The trained digits models in a course cache (``model-*`` files)."""
    return sorted(p.name for p in cache.glob("model-*"))


# --------------------------------------------------------------------------- memory


class MemoryProbe:
    """Samples, every 50 ms, the memory of the kernels a command starts (each ``ipykernel``
    process below it, with its own subprocesses).

    ``peak`` holds the highest ``private`` (RssAnon + RssShmem, summed over a kernel's tree: what
    a container limit cannot take back), ``tree`` (proportional set size, summed), ``process``
    (the highest VmHWM of any process: resident size with mapped library files) and
    ``processes`` (the most processes in the tree at once).
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = {"private": 0, "tree": 0, "process": 0, "processes": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _status(pid: int, *fields: str) -> int:
        """Bytes of these /proc/PID/status fields, 0 once the process is gone."""
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return 0
        return sum(
            int(line.split()[1]) * 1024
            for line in text.splitlines()
            if line.split(":")[0] in fields
        )

    def _kernels(self, root: Any) -> list[Any]:
        import psutil

        found = []
        for p in root.children(recursive=True):
            try:
                if any("ipykernel" in part for part in p.cmdline()):
                    found.append(p)
            except psutil.Error:
                pass
        return found

    def _sample(self, pid: int) -> None:
        import psutil

        try:
            root = psutil.Process(pid)
        except psutil.Error:
            return
        kernels: list[Any] = []
        while not self._stop.is_set():
            if not any(k.is_running() for k in kernels):  # look again only when they are gone
                try:
                    kernels = self._kernels(root)
                except psutil.Error:
                    break
            for kernel in kernels:
                try:
                    procs = [kernel, *kernel.children(recursive=True)]
                except psutil.Error:
                    continue
                total = private = 0
                for p in procs:
                    try:
                        private += self._status(p.pid, "RssAnon", "RssShmem")
                        total += p.memory_full_info().pss
                        hwm = self._status(p.pid, "VmHWM")
                        self.peak["process"] = max(self.peak["process"], hwm)
                    except psutil.Error:
                        pass
                self.peak["private"] = max(self.peak["private"], private)
                self.peak["tree"] = max(self.peak["tree"], total)
                self.peak["processes"] = max(self.peak["processes"], len(procs))
            self._stop.wait(self.interval)

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._sample, args=(pid,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# --------------------------------------------------------------------------- one run per lesson


@functools.cache
def variants(lesson: str) -> ModuleType | None:
    """tests/exercises/<lesson>.py (ALTERNATIVES and WRONG answers), or None when missing."""
    path = ROOT / "tests" / "exercises" / f"{lesson.replace('-', '_')}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"variants_{lesson}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@functools.cache
def exercise_format() -> ModuleType:
    """tests/exercises/_format.py: how ALTERNATIVES and WRONG are read and checked."""
    path = ROOT / "tests" / "exercises" / "_format.py"
    spec = importlib.util.spec_from_file_location("exercise_format", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@dataclass
class LessonRun:
    """Everything one lesson's grading gave: the solutions' run serves every check of them."""

    course: Course
    release: Path  # the release nbgrader generated
    results: dict[str, GradedNotebook]  # solution, blank, alternative0..., wrong0...
    alternative_runs: list[dict[str, str]]  # the answers of alternative{k}, by grade_id
    wrong_runs: list[Any]  # the answers of wrong{k} (tests/exercises/_format.py's Wrong)
    memory: dict[str, Any]  # the solutions' run: peak memory (MemoryProbe.peak and MB figures)
    cold_start: list[str]  # trained models in the cache as the solutions' run began (none)
    trained: list[str]  # ... and as it ended
    executed: Path | None  # the executed notebook kept for the website
    errors: list[str]  # the solutions' run: errors in cells not tagged raises-exception


_GRADED: dict[str, LessonRun | Exception] = {}


def graded(lesson: str) -> LessonRun:
    """Grade ``lesson`` once per test process (the xdist group of its tests keeps them in one);
    a grading that failed fails every test that asks again, without grading again."""
    if lesson not in _GRADED:
        try:
            _GRADED[lesson] = _grade(lesson)
        except Exception as exc:
            _GRADED[lesson] = exc
            raise
    got = _GRADED[lesson]
    if isinstance(got, Exception):
        raise RuntimeError(f"{lesson}: its grading failed (see the first test that asked)") from got
    return got


def _grade(lesson: str) -> LessonRun:
    """Grade ``lesson`` once per test process (the xdist group of its tests keeps them in one).

    First the solutions, alone among the timed runs and sampled for memory, from a cache with
    the artefacts and no trained model; then the blank release, the alternative answers and the
    wrong answers (run k carries the k-th wrong answer of every exercise) in one nbgrader call,
    sharing the cache the solutions' run filled.
    """
    from tools import site

    work = Path(tempfile.mkdtemp(prefix=f"harness-{lesson}-"))
    atexit.register(shutil.rmtree, work, True)  # the course, its cache and the graded copies
    course = Course(lesson, work)
    release_dir = course.generate()
    source_nb = nbformat.read(notebook_path(lesson), as_version=4)
    stamp = site.fingerprint(lesson)  # what the kept notebook ran, taken before it runs
    course.submit("solution", source_nb)
    cold_start = trained_models(course.cache)
    probe = MemoryProbe()
    with timing_lock():  # one timed run at a time across xdist workers
        results = course.autograde(["solution"], probe=probe)
    solution = results["solution"]
    trained = trained_models(course.cache)
    record_timing(lesson, solution.seconds, network_is_blocked())
    memory = dict(probe.peak)
    memory.update(
        seconds=solution.seconds,
        peak_mb=round(memory["private"] / 1e6),
        resident_peak_mb=round(max(memory["tree"], memory["process"]) / 1e6),
        limit_mb=round(MEMORY_LIMIT_BYTES / 1e6),
    )
    _record(MEMORY, lesson, memory)
    executed = None
    errors = [
        out for cell in solution.notebook.cells for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
        and "raises-exception" not in cell.get("metadata", {}).get("tags", [])
    ]  # fmt: skip
    if not errors:  # the website shows a run that nbclient would have completed
        executed = site.keep_executed(lesson, solution.notebook, stamp)

    shutil.rmtree(work / "submitted" / "solution")
    release_nb = nbformat.read(release_dir / course.nb_name, as_version=4)
    course.submit("blank", release_nb)
    mod = variants(lesson)
    alternative_runs: list[dict[str, str]] = []
    wrong_runs: list[Any] = []
    if mod is not None:
        fmt = exercise_format()
        alternative_runs = fmt.alternatives(mod)  # run k: the k-th alternative of each exercise
        for k, run in enumerate(alternative_runs):
            course.submit(f"alternative{k}", exercises_only(with_cells_replaced(source_nb, run)))
        wrong_runs = fmt.wrong_runs(mod)  # run k: at most one wrong answer per exercise
        for k, run in enumerate(wrong_runs):
            wrong = with_cells_replaced(source_nb, fmt.run_cells(run))
            course.submit(f"wrong{k}", exercises_only(wrong))
    results.update(course.autograde([d.name for d in sorted((work / "submitted").iterdir())]))
    return LessonRun(
        course,
        release_dir,
        results,
        alternative_runs,
        wrong_runs,
        memory,
        cold_start,
        trained,
        executed,
        [f"{e.get('ename')}: {str(e.get('evalue'))[:300]}" for e in errors],
    )
