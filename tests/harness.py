"""The notebook harness: grade lessons with nbgrader itself, in a throw-away course directory.

Used by tests/test_lessons.py for every assignment in source/, and by the exercise self-tests.
Grading runs the real ``nbgrader`` command line with the repository's nbgrader_config.py (only
the course root and gradebook are redirected to a temporary folder), with the network cut off by
bubblewrap where it is installed.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source"
RELEASE = ROOT / "release"
BUILD = ROOT / "build"
TIMINGS = BUILD / "lesson-timings.json"
BUDGET_S = 60.0


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
    """A temporary nbgrader course directory holding one lesson."""

    def __init__(self, lesson: str, workdir: Path):
        self.lesson = lesson
        self.dir = workdir
        shutil.copytree(SOURCE / lesson, workdir / "source" / lesson)
        self.nb_name = notebook_path(lesson).name
        self.db = workdir / "gradebook.db"

    def nbgrader(
        self, *args: str, network: bool = False, timeout: float = 900
    ) -> subprocess.CompletedProcess:
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
        bindir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
        env = dict(
            os.environ,
            PYTHONWARNINGS="ignore",
            PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
        )
        return subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
        )

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

    def autograde(self, students: list[str]) -> dict[str, GradedNotebook]:
        only = [f"--student={students[0]}"] if len(students) == 1 else []
        proc = self.nbgrader("autograde", self.lesson, "--force", *only)
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


def exercise_of(grade_id: str) -> str:
    """Exercise a cell belongs to: the grade_id up to its first '-' (``ex2-visible`` -> ``ex2``)."""
    return grade_id.split("-", 1)[0]


@contextlib.contextmanager
def timing_lock():
    """Serialise the timed solution runs of parallel test workers, so that a lesson's measured time
    is not inflated by another lesson's kernel running on the same two cores."""
    BUILD.mkdir(exist_ok=True)
    with open(BUILD / ".timing.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_timing(lesson: str, seconds: float | None, network_blocked: bool) -> None:
    BUILD.mkdir(exist_ok=True)
    data = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
    data[lesson] = {
        "seconds": seconds,
        "budget_s": BUDGET_S,
        "network_blocked": network_blocked,
        "cores": os.cpu_count(),
    }
    TIMINGS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
