"""Check your answers without an instructor: ``course.check()`` in a lesson notebook.

The saved notebook is copied (with the files beside it) to a temporary folder and run from top to
bottom in a fresh kernel, the way a grader runs it; then every *visible* test cell is reported per
exercise: passed, failed (with the assertion's message) or not run (and why). Nothing is sent
anywhere and your notebook is never modified. Hidden tests are not in your copy of the notebook,
so they cannot run here: your instructor's grading runs them.

In a lesson notebook (save it first, Ctrl+S)::

    import course
    course.check()                      # every exercise of this notebook
    course.check(exercise="ex2")        # one exercise (``2`` works too)

Anywhere else, name the notebook::

    course.check("release/00-template/00-template.ipynb")

Results are remembered (keyed by the notebook's code), so checking an unchanged notebook again is
instant; an exercise whose answer cells still hold the ``raise NotImplementedError()`` stub is
reported as *not started* without running anything when no exercise has been started.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import nbformat

from course import _capture
from course.palette import GREEN, GREY, ORANGE, VERMILLION

__all__ = [
    "CheckReport",
    "ExerciseResult",
    "SelfCheckError",
    "TestResult",
    "check",
    "current_notebook",
    "memory_headroom",
    "read_exercises",
]

#: Set in the environment of the kernel that runs a copy of a notebook, so that a
#: ``course.check()`` cell inside that copy does not start a check of its own.
NESTED_ENV = "COURSE_SELFCHECK_RUNNING"
#: Bumped when the meaning of a cached report changes.
_CACHE_VERSION = 1
_STUB = re.compile(r"raise\s+NotImplementedError\b")
_ANSI = _capture.ANSI
#: A check runs a second kernel beside the reader's: this much free memory is asked for.
CHECK_MEMORY_BYTES = 1.5e9
#: Where the container's memory limit and use are read (cgroup v2, then v1).
CGROUP_FILES = [
    (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
    (
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
        Path("/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ),
]
_IGNORED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "feedback", ".course-cache")

Status = Literal["passed", "failed", "error", "not started", "not run"]


class SelfCheckError(RuntimeError):
    """The check could not start (the message says what to do)."""


@dataclass
class TestResult:
    """One visible test cell of an exercise."""

    grade_id: str
    points: float
    status: Status
    message: str = ""  #: why it failed or did not run ("" when passed)
    stderr: str = ""  #: what the cell wrote to stderr (a grader scores such a cell 0)

    @property
    def passed(self) -> bool:
        return self.status == "passed" and not self.stderr


@dataclass
class ExerciseResult:
    """The visible tests of one exercise (cells whose grade ids share the prefix, ``ex1-...``)."""

    exercise: str
    answer_cells: list[str]
    tests: list[TestResult]
    started: bool  #: an answer cell no longer raises the NotImplementedError stub
    answer_error: str = ""  #: the error an answer cell itself raised, if any

    @property
    def points(self) -> float:
        return float(sum(t.points for t in self.tests))

    @property
    def points_passed(self) -> float:
        return float(sum(t.points for t in self.tests if t.passed))

    @property
    def passed(self) -> bool:
        return bool(self.tests) and all(t.passed for t in self.tests)

    @property
    def status(self) -> str:
        """``passed``, ``failing``, ``not started`` or ``not run``."""
        if self.passed:
            return "passed"
        if not self.started:
            return "not started"
        if all(t.status == "not run" for t in self.tests):
            return "not run"
        return "failing"


@dataclass
class CheckReport:
    """What ``check()`` found: per exercise, which visible tests pass.

    ``print(report)`` gives the text; in a notebook it shows as a table.
    """

    notebook: Path
    exercises: list[ExerciseResult]
    executed: bool  #: the notebook ran (False when nothing was started, or inside a check)
    seconds: float = 0.0  #: time the run took (0 when not run or remembered)
    cached: bool = False  #: the result was remembered from an earlier run of the same code
    problem: str = ""  #: something that stopped the run early (timeout, kernel died)
    notices: list[str] = field(default_factory=list)  #: advice (unsaved changes, stderr)
    nested: bool = False  #: called inside the copy that a check is running: nothing was checked

    @property
    def passed(self) -> bool:
        """Every visible test of every exercise checked passes."""
        return bool(self.exercises) and all(e.passed for e in self.exercises)

    @property
    def points(self) -> float:
        return float(sum(e.points for e in self.exercises))

    @property
    def points_passed(self) -> float:
        return float(sum(e.points_passed for e in self.exercises))

    def exercise(self, name: str | int) -> ExerciseResult:
        """One exercise's result (``"ex2"`` or ``2``)."""
        key = _exercise_key(name)
        for result in self.exercises:
            if result.exercise == key:
                return result
        known = ", ".join(e.exercise for e in self.exercises) or "none"
        raise KeyError(f"no exercise {key!r} in {self.notebook.name}; it has {known}")

    def rows(self) -> list[dict[str, Any]]:
        """One row per visible test: exercise, test, points, status, message."""
        return [
            {
                "exercise": e.exercise,
                "test": t.grade_id,
                "points": t.points,
                "status": "passed" if t.passed else t.status,
                "message": t.message or _stderr_note(t),
            }
            for e in self.exercises
            for t in e.tests
        ]

    def to_frame(self):
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(
            self.rows(), columns=["exercise", "test", "points", "status", "message"]
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notebook"] = str(self.notebook)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckReport:
        exercises = [
            ExerciseResult(**{**e, "tests": [TestResult(**t) for t in e["tests"]]})
            for e in data["exercises"]
        ]
        return cls(**{**data, "notebook": Path(data["notebook"]), "exercises": exercises})

    def headline(self) -> str:
        if self.nested:
            return "course.check() does nothing inside the copy that a check is running."
        done = sum(e.passed for e in self.exercises)
        text = (
            f"{self.notebook.name}: {done} of {len(self.exercises)} exercises pass their "
            f"visible tests (test cells worth {_num(self.points_passed)} of {_num(self.points)} "
            "points pass)"
        )
        if not self.executed and not self.nested:
            text += "; nothing started yet, so nothing was run"
        elif self.cached:
            text += "; remembered from an earlier check of the same code"
        elif self.seconds:
            text += f"; checked in {self.seconds:.0f} s"
        return text

    def __str__(self) -> str:
        lines = [self.headline()]
        if self.problem:
            lines.append(f"  problem: {self.problem}")
        for e in self.exercises:
            lines.append(
                f"{e.exercise}: {e.status.upper()} ({_num(e.points_passed)}/{_num(e.points)} points)"
            )
            if e.answer_error:
                lines.append(f"  your answer cell raised {e.answer_error}")
            for t in e.tests:
                mark = "ok  " if t.passed else "FAIL" if t.status != "not started" else "... "
                why = t.message or _stderr_note(t)
                lines.append(
                    f"  {mark} {t.grade_id} ({_num(t.points)} pt)" + (f": {why}" if why else "")
                )
        lines.extend(f"note: {n}" for n in self.notices)
        if self.exercises and not self.nested:
            lines.append(_HIDDEN_NOTE)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"passed": GREEN, "failing": VERMILLION, "not started": GREY}
        parts = [f"<p><b>{html.escape(self.headline())}</b></p>"]
        if self.problem:
            parts.append(f"<p style='color:#D55E00'>Problem: {html.escape(self.problem)}</p>")
        if self.exercises:
            parts.append(
                "<table><thead><tr><th>exercise</th><th>test</th><th>points</th>"
                "<th>result</th><th>why</th></tr></thead><tbody>"
            )
            for e in self.exercises:
                c = colour.get(e.status, ORANGE)
                for i, t in enumerate(e.tests):
                    head = (
                        f"<td rowspan='{len(e.tests)}' style='color:{c}'><b>{e.exercise}</b><br>"
                        f"{html.escape(e.status)}</td>"
                        if i == 0
                        else ""
                    )
                    why = t.message or _stderr_note(t)
                    if i == 0 and e.answer_error:
                        why = f"your answer cell raised {e.answer_error}. {why}".strip()
                    shown = "passed" if t.passed else t.status
                    parts.append(
                        f"<tr>{head}<td><code>{html.escape(t.grade_id)}</code></td>"
                        f"<td>{_num(t.points)}</td><td>{html.escape(shown)}</td>"
                        f"<td style='text-align:left'>{html.escape(why)}</td></tr>"
                    )
            parts.append("</tbody></table>")
        parts.extend(f"<p>Note: {html.escape(n)}</p>" for n in self.notices)
        if self.exercises and not self.nested:
            parts.append(f"<p><i>{html.escape(_HIDDEN_NOTE)}</i></p>")
        return "\n".join(parts)

    def __repr__(self) -> str:
        return (
            f"CheckReport({self.notebook.name!r}, exercises_passed="
            f"{sum(e.passed for e in self.exercises)}/{len(self.exercises)})"
        )


_HIDDEN_NOTE = (
    "Only the visible tests ran: your instructor's grading also runs hidden tests, "
    "so passing here is necessary, not sufficient."
)


def _num(x: float) -> str:
    return f"{x:g}"


def _stderr_note(t: TestResult) -> str:
    if not t.stderr:
        return ""
    return (
        "the test passed but wrote to stderr (a grader scores such a cell 0): "
        + t.stderr.strip().splitlines()[0][:200]
    )


def _exercise_key(name: str | int) -> str:
    if isinstance(name, bool) or not isinstance(name, (str, int)):
        raise TypeError(f"exercise should be a name like 'ex2' or a number like 2, got {name!r}")
    return f"ex{name}" if isinstance(name, int) or str(name).isdigit() else str(name)


def exercise_of(grade_id: str) -> str:
    """The exercise a cell belongs to: its grade id up to the first dash (``ex2-hidden`` -> ``ex2``).

    Example:
        >>> exercise_of("ex2-visible")
        'ex2'
    """
    return grade_id.split("-", 1)[0]


# -- reading the notebook ---------------------------------------------------------------------


@dataclass
class _Cell:
    index: int
    grade_id: str
    kind: Literal["answer", "test"]
    points: float
    source: str


def _graded_cells(nb: nbformat.NotebookNode) -> list[_Cell]:
    cells = []
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader") or {}
        if cell.cell_type != "code" or "grade_id" not in meta:
            continue
        if meta.get("solution") and not meta.get("grade"):
            cells.append(_Cell(index, meta["grade_id"], "answer", 0.0, cell.source))
        elif meta.get("grade") and not meta.get("solution"):
            points = float(meta.get("points") or 0)
            cells.append(_Cell(index, meta["grade_id"], "test", points, cell.source))
    return cells


def read_exercises(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """The exercises of a notebook from its nbgrader cells, without running anything.

    Returns ``{exercise: {"answers": [grade ids], "tests": [grade ids], "points": float,
    "started": bool}}`` in notebook order.

    Example:
        >>> read_exercises("release/00-demo/00-demo.ipynb")["ex1"]
        {'answers': ['ex1-answer'], 'tests': ['ex1-visible'], 'points': 2.0, 'started': False}
    """
    nb = _read(Path(notebook))
    return {
        ex: {
            "answers": [c.grade_id for c in cells if c.kind == "answer"],
            "tests": [c.grade_id for c in cells if c.kind == "test"],
            "points": float(sum(c.points for c in cells if c.kind == "test")),
            "started": _started(cells),
        }
        for ex, cells in _by_exercise(_graded_cells(nb)).items()
    }


def _by_exercise(cells: list[_Cell]) -> dict[str, list[_Cell]]:
    groups: dict[str, list[_Cell]] = {}
    for cell in cells:
        groups.setdefault(exercise_of(cell.grade_id), []).append(cell)
    return groups


def _started(cells: list[_Cell]) -> bool:
    answers = [c for c in cells if c.kind == "answer"]
    return not answers or any(not _STUB.search(c.source) for c in answers)


def _read(path: Path) -> nbformat.NotebookNode:
    if not path.is_file():
        raise SelfCheckError(f"no notebook at {path}: pass the path of a lesson notebook (.ipynb)")
    if path.suffix != ".ipynb":
        raise SelfCheckError(f"{path} is not a notebook: pass the path of a .ipynb file")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several types for unreadable JSON
        raise SelfCheckError(
            f"{path} could not be read as a notebook ({type(exc).__name__}: {exc}); "
            "if it was being saved, wait a second and check again"
        ) from exc


# -- finding the notebook this kernel belongs to ----------------------------------------------


def current_notebook() -> Path:
    """The notebook file of the running kernel (VS Code or a Jupyter server started it).

    Raises ``SelfCheckError`` (saying to pass the path) when it cannot be told.

    Example:
        >>> os.environ["JPY_SESSION_NAME"] = "release/00-demo/00-demo.ipynb"  # Jupyter sets it
        >>> current_notebook().name
        '00-demo.ipynb'
        >>> del os.environ["JPY_SESSION_NAME"]
    """
    candidates: list[str] = []
    shell = _ipython()
    if shell is not None and shell.user_ns.get("__vsc_ipynb_file__"):
        candidates.append(str(shell.user_ns["__vsc_ipynb_file__"]))
    if os.environ.get("JPY_SESSION_NAME"):
        candidates.append(os.environ["JPY_SESSION_NAME"])
    for name in candidates:
        path = Path(name).expanduser()
        if not path.is_absolute():
            # an API path relative to the server's root: the kernel runs in the notebook's folder
            beside = Path.cwd() / path.name
            path = beside if beside.is_file() else Path.cwd() / path
        if path.suffix == ".ipynb" and path.is_file():
            return path.resolve()
    raise SelfCheckError(
        "could not tell which notebook this is (no Jupyter session or VS Code notebook found): "
        "pass its path, e.g. course.check('release/00-template/00-template.ipynb')"
    )


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is part of every Jupyter install
        return None
    return get_ipython()


def _unsaved_cells(cells: list[_Cell]) -> list[str]:
    """Answer cells whose saved text differs from what this kernel last ran of the same cell."""
    shell = _ipython()
    history = shell.user_ns.get("In") if shell is not None else None
    if not history:
        return []
    ran = [h.strip() for h in history if isinstance(h, str) and h.strip()]
    unsaved = []
    for cell in cells:
        if cell.kind != "answer" or not cell.source.strip():
            continue
        saved = cell.source.strip()
        first = saved.splitlines()[0].strip()
        same_cell = [h for h in ran if h.splitlines()[0].strip() == first]
        if same_cell and same_cell[-1] != saved:
            unsaved.append(cell.grade_id)
    return unsaved


# -- running a copy -----------------------------------------------------------------------------


def memory_headroom() -> float | None:
    """Bytes the container may still use (its cgroup limit minus its use); None when unlimited.

    Example:
        >>> headroom = memory_headroom()
        >>> headroom is None or headroom > 0
        True
    """
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit_text = limit_file.read_text().strip()
            used = float(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or float(limit_text) > 2**50:  # no limit set
            return None
        return float(limit_text) - used
    return None


def _memory_notice() -> str:
    free = memory_headroom()
    if free is None or free >= CHECK_MEMORY_BYTES:
        return ""
    return (
        f"only {free / 1e9:.1f} GB of memory is left in this session and a check runs a second "
        f"copy of the lesson (up to {CHECK_MEMORY_BYTES / 1e9:.1f} GB): if the session stops, "
        "shut down this notebook's kernel (Kernel > Shut Down Kernel) and run the check from "
        "start-here.ipynb instead"
    )


def _cache_key(folder: Path, nb: nbformat.NotebookNode, kernel: str) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION}|{kernel}|".encode())
    for cell in nb.cells:
        if cell.cell_type == "code":
            digest.update(cell.source.encode() + b"\0")
    for extra in sorted(folder.iterdir()):
        if extra.is_file() and extra.suffix != ".ipynb":
            st = extra.stat()
            digest.update(f"{extra.name}|{st.st_size}|{st.st_mtime_ns}\0".encode())
    try:
        from importlib.metadata import version

        digest.update(version("onnx-and-beyond").encode())
    except Exception:  # pragma: no cover - the package is installed in every course setup
        pass
    return digest.hexdigest()[:32]


def _cache_dir() -> Path:
    from course.data import cache_dir

    path = cache_dir() / "selfcheck"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _kernel_name(nb: nbformat.NotebookNode, wanted: str | None) -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    available = KernelSpecManager().find_kernel_specs()
    if wanted:
        if wanted not in available:
            raise SelfCheckError(
                f"no Jupyter kernel named {wanted!r}; installed: {', '.join(sorted(available))}"
            )
        return wanted
    named = nb.metadata.get("kernelspec", {}).get("name")
    if named in available:
        return named
    if "python3" in available:
        return "python3"
    raise SelfCheckError(  # pragma: no cover - ipykernel always installs python3
        "no Python kernel found: run `make setup` (or `python -m ipykernel install --user`)"
    )


def _error_text(output: dict) -> tuple[str, str]:
    ename = output.get("ename", "Error")
    evalue = _ANSI.sub("", str(output.get("evalue", ""))).strip()
    return ename, evalue


def _run_copy(
    path: Path, nb: nbformat.NotebookNode, kernel: str, cell_timeout: int, total_timeout: float
) -> tuple[nbformat.NotebookNode, set[int], str, float]:
    """Run a copy of the notebook's folder; return the executed notebook, the cells that ran,
    a problem ("" when none) and the seconds taken."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    work = Path(tempfile.mkdtemp(prefix="course-check-"))
    ran: set[int] = set()
    problem = ""
    start = time.monotonic()
    try:
        folder = work / path.parent.name
        shutil.copytree(path.parent, folder, ignore=_IGNORED)
        copy = nbformat.from_dict(json.loads(json.dumps(nb)))
        for cell in copy.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        client = NotebookClient(
            copy,
            timeout=cell_timeout,
            allow_errors=True,
            kernel_name=kernel,
            resources={"metadata": {"path": str(folder)}},
            shutdown_kernel="immediate",
        )
        env = dict(os.environ, MPLBACKEND="Agg", PYDEVD_DISABLE_FILE_VALIDATION="1")
        env[NESTED_ENV] = "1"
        env.pop("JPY_SESSION_NAME", None)
        with open(work / "kernel.log", "wb") as log:
            with client.setup_kernel(env=env, stdout=log, stderr=log):
                for index, cell in enumerate(copy.cells):
                    if cell.cell_type != "code":
                        continue
                    if time.monotonic() - start > total_timeout:
                        problem = (
                            f"stopped after {total_timeout:.0f} s (the whole-notebook limit) "
                            f"before cell {index}"
                        )
                        break
                    try:
                        client.execute_cell(cell, index)
                    except CellTimeoutError:
                        problem = (
                            f"cell {index} ran longer than {cell_timeout} s and was stopped; "
                            "look for a loop that never ends or work that is too big"
                        )
                        break
                    except DeadKernelError:
                        problem = (
                            f"the kernel died in cell {index} (out of memory, or a crash in a "
                            "library); restart your kernel and run the cells one by one to see which"
                        )
                        break
                    ran.add(index)
        return copy, ran, problem, time.monotonic() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _results(
    cells: list[_Cell], executed: nbformat.NotebookNode | None, ran: set[int], problem: str
) -> list[ExerciseResult]:
    out = []
    for ex, group in _by_exercise(cells).items():
        started = _started(group)
        answer_error = ""
        answer_failed: set[str] = set()
        if executed is not None:
            for c in group:
                if c.kind != "answer" or c.index not in ran:
                    continue
                for o in executed.cells[c.index].get("outputs", []):
                    if o.get("output_type") == "error":
                        ename, evalue = _error_text(o)
                        if ename != "NotImplementedError":
                            answer_error = f"{ename}: {evalue}".rstrip(": ")
                            answer_failed.add(c.grade_id)
        tests = []
        for c in group:
            if c.kind != "test":
                continue
            tests.append(_test_result(c, executed, ran, problem, started, answer_error))
        out.append(
            ExerciseResult(
                ex, [c.grade_id for c in group if c.kind == "answer"], tests, started, answer_error
            )
        )
    return out


def _test_result(
    c: _Cell,
    executed: nbformat.NotebookNode | None,
    ran: set[int],
    problem: str,
    started: bool,
    answer_error: str,
) -> TestResult:
    if executed is None:
        return TestResult(
            c.grade_id, c.points, "not started", "write your answer in the exercise's answer cell"
        )
    if c.index not in ran:
        why = problem or "the run stopped before this cell"
        return TestResult(c.grade_id, c.points, "not run", why)
    outputs = executed.cells[c.index].get("outputs", [])
    stderr = "".join(
        o.get("text", "")
        for o in outputs
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    )
    errors = [o for o in outputs if o.get("output_type") == "error"]
    if not errors:
        return TestResult(c.grade_id, c.points, "passed", "", stderr)
    ename, evalue = _error_text(errors[0])
    if ename == "NotImplementedError" or (
        not started and ename in {"NameError", "NotImplementedError"}
    ):
        return TestResult(
            c.grade_id,
            c.points,
            "not started",
            "the answer cell still raises NotImplementedError: write your answer there",
            stderr,
        )
    if ename == "AssertionError":
        message = evalue or "an assertion failed (it gives no message)"
        return TestResult(c.grade_id, c.points, "failed", message, stderr)
    message = f"{ename}: {evalue}".rstrip(": ")
    if answer_error:
        message += " (your answer cell failed first, see above)"
    return TestResult(c.grade_id, c.points, "error", message, stderr)


def check(
    notebook: str | Path | None = None,
    *,
    exercise: str | int | None = None,
    execute: Literal["auto", "always", "never"] = "auto",
    cell_timeout: int = 60,
    timeout: float = 300.0,
    kernel_name: str | None = None,
    use_cache: bool = True,
    verbose: bool = True,
) -> CheckReport:
    """Run a copy of a lesson notebook in a fresh kernel and report its visible tests per exercise.

    Args:
        notebook: the ``.ipynb`` to check; by default the notebook this kernel belongs to (save
            it first: the saved file is what runs).
        exercise: only this exercise (``"ex2"`` or ``2``); by default all of them.
        execute: ``"auto"`` runs the notebook unless no exercise has been started (then every
            test is *not started* at once); ``"always"`` runs it anyway; ``"never"`` only reads it.
        cell_timeout: seconds one cell may run; timeout: seconds the whole run may take.
        kernel_name: the kernel to run (default: the notebook's own, else ``python3``).
        use_cache: reuse the result of an earlier check of the very same code.
        verbose: print one line before a run that takes a while.

    Returns:
        A ``CheckReport``: ``.passed``, ``.exercises``, ``.rows()``, ``.to_frame()``; it prints as
        text and shows as a table in a notebook.

    Example:
        >>> report = check("release/00-demo/00-demo.ipynb")   # ex1 not started: nothing runs
        >>> report.passed, report.exercise("ex1").status
        (False, 'not started')
    """
    if execute not in ("auto", "always", "never"):
        raise ValueError(f"execute should be 'auto', 'always' or 'never', got {execute!r}")
    if os.environ.get(NESTED_ENV):
        return CheckReport(Path(str(notebook or "this notebook")), [], False, nested=True)
    path = Path(notebook).expanduser().resolve() if notebook is not None else current_notebook()
    nb = _read(path)
    cells = _graded_cells(nb)
    if not any(c.kind == "test" for c in cells):
        raise SelfCheckError(
            f"{path.name} has no graded test cells (nbgrader metadata): open a lesson notebook "
            "from release/ and check that one"
        )
    groups = _by_exercise(cells)
    wanted = None
    if exercise is not None:
        wanted = _exercise_key(exercise)
        if wanted not in groups:
            raise SelfCheckError(
                f"{path.name} has no exercise {wanted!r}; it has {', '.join(groups)}"
            )
    notices = []
    unsaved = _unsaved_cells(cells) if notebook is None else []
    if unsaved:
        notices.append(
            f"answer cell(s) {', '.join(unsaved)} differ from what you last ran: the SAVED "
            "notebook is what gets checked, so save it (Ctrl+S) and check again"
        )
    any_started = any(_started(g) for g in groups.values())
    report: CheckReport
    if execute == "never" or (execute == "auto" and not any_started):
        report = CheckReport(path, _results(cells, None, set(), ""), False, notices=notices)
    else:
        kernel = _kernel_name(nb, kernel_name)
        key = _cache_key(path.parent, nb, kernel)
        cached = _cache_dir() / f"{key}.json" if use_cache else None
        if cached is not None and cached.is_file():
            try:
                report = CheckReport.from_dict(json.loads(cached.read_text()))
                report.notebook, report.cached, report.notices = path, True, notices
            except (ValueError, TypeError, KeyError):
                cached.unlink(missing_ok=True)
                return check(
                    path,
                    exercise=exercise,
                    execute=execute,
                    cell_timeout=cell_timeout,
                    timeout=timeout,
                    kernel_name=kernel_name,
                    use_cache=False,
                    verbose=verbose,
                )
        else:
            low_memory = _memory_notice()
            if low_memory:
                notices.append(low_memory)
            if verbose:
                print(
                    f"Checking {path.name}: running a copy in a fresh kernel "
                    f"(up to {timeout:.0f} s)...",
                    flush=True,
                )
                if low_memory:
                    print("Note: " + low_memory, flush=True)
            executed, ran, problem, seconds = _run_copy(path, nb, kernel, cell_timeout, timeout)
            report = CheckReport(
                path,
                _results(cells, executed, ran, problem),
                True,
                seconds,
                problem=problem,
                notices=notices,
            )
            if cached is not None and not problem:
                stored = report.to_dict()
                stored["notices"] = []
                cached.write_text(json.dumps(stored))
    if wanted is not None:
        report.exercises = [e for e in report.exercises if e.exercise == wanted]
    stderr_cells = [t.grade_id for e in report.exercises for t in e.tests if t.stderr]
    if stderr_cells:
        report.notices.append(
            f"{', '.join(stderr_cells)} wrote to stderr (a warning?): nbgrader scores such a test "
            "cell 0, so silence the warning in your answer"
        )
    return report
