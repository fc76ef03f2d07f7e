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
import copy
import dataclasses
import fnmatch
import hashlib
import io
import json
import logging
import multiprocessing
import os
import shutil
import stat
import sys
import threading
import time
import uuid
import warnings
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nbformat

try:  # nbgrader's gradebook triggers harmless SQLAlchemy autoflush warnings on new submissions
    from sqlalchemy.exc import SAWarning
except ImportError:  # pragma: no cover
    SAWarning = Warning

from . import execute as ex
from . import sandbox as sb
from .course import Course
from .progress import Progress

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


# -- stage 1: prepare -------------------------------------------------------------------------


class Refused(Exception):
    """A submission that cannot be graded, with a reason a person can act on."""

    def __init__(self, category: str, reason: str):
        super().__init__(reason)
        self.category = category
        self.reason = reason


@dataclass
class SourceInfo:
    """The instructor's cells of one notebook, read once from the gradebook."""

    name: str
    cells: list[
        dict
    ]  #: in order: name, cell_type, source, locked, checksum, grade, solution, points
    kernelspec: dict | None

    @property
    def ids(self) -> set[str]:
        return {c["name"] for c in self.cells}


def load_sources(course: Course, assignment: str) -> dict[str, SourceInfo]:
    from nbgrader.api import MissingEntry

    out = {}
    with course.gradebook() as gb:
        try:
            a = gb.find_assignment(assignment)
        except MissingEntry:
            raise ex_course_error(assignment) from None
        for nb in a.notebooks:
            grades = {g.name: g for g in nb.grade_cells}
            solutions = {s.name for s in nb.solution_cells}
            cells = []
            for sc in nb.source_cells:
                g = grades.get(sc.name)
                cells.append(
                    {
                        "name": sc.name,
                        "cell_type": sc.cell_type,
                        "source": sc.source,
                        "locked": sc.locked,
                        "checksum": sc.checksum,
                        "grade": g is not None,
                        "solution": sc.name in solutions,
                        "points": float(g.max_score) if g is not None else 0.0,
                    }
                )
            spec = json.loads(nb.kernelspec) if nb.kernelspec else None
            out[nb.name] = SourceInfo(nb.name, cells, spec)
    return out


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _logger(name: str) -> tuple[logging.Logger, _ListHandler]:
    logger = logging.getLogger(f"autograder.nbgrader.{name}")
    logger.handlers.clear()
    handler = _ListHandler()
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    return logger, handler


#: Largest notebook prepare() reads (the size collect accepts).
MAX_NOTEBOOK_MB = 50


def _read_submitted(path: Path) -> bytes:
    """A submitted file's bytes: never through a link, only a regular file, capped in size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise Refused(
                "not-a-notebook",
                f"{path.name} is a symbolic link (to {os.readlink(path)!r}), not a submitted "
                "file: refused and not read; collect the student's own file",
            ) from None
        raise Refused("missing-notebook", f"{path.name} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(
                "not-a-notebook", f"{path.name} is not a regular file: refused and not read"
            )
        if st.st_size > MAX_NOTEBOOK_MB * 2**20:
            raise Refused(
                "too-large",
                f"{path.name} is {st.st_size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_MB} MB "
                "limit for a notebook (large outputs or embedded data?): ask for the notebook "
                "with outputs cleared",
            )
        chunks, left = [], MAX_NOTEBOOK_MB * 2**20 + 1
        while left > 0:
            chunk = os.read(fd, min(left, 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        raw = b"".join(chunks)
        if len(raw) > MAX_NOTEBOOK_MB * 2**20:
            raise Refused("too-large", f"{path.name} grew past {MAX_NOTEBOOK_MB} MB while read")
        return raw
    finally:
        os.close(fd)


def _check_folder(course: Course, folder: Path) -> None:
    """``submitted/STUDENT/ASSIGNMENT`` must be a real folder inside ``submitted/``."""
    root = course.folder("submitted").resolve()
    try:
        inside = folder.resolve().relative_to(root)
    except ValueError:
        inside = None
    parts = [folder.parent, folder]
    if inside is None or any(p.is_symlink() for p in parts):
        raise Refused(
            "not-a-notebook",
            f"{folder} is (or goes through) a symbolic link out of submitted/: refused and "
            "not read",
        )


def _read_notebook(path: Path, notes: list[str]) -> nbformat.NotebookNode:
    raw = _read_submitted(path)
    if not raw.strip():
        raise Refused(
            "empty-notebook",
            f"{path.name} is empty ({len(raw)} bytes): the student uploaded an empty file; ask "
            "for the notebook again (JupyterLab: File > Download)",
        )
    if raw[:2] == b"PK":
        raise Refused(
            "not-a-notebook", f"{path.name} is a zip archive, not a notebook: ask for the .ipynb"
        )
    try:
        text = raw.decode("utf-8-sig")
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        raise Refused(
            "corrupt-notebook",
            f"{path.name} is not text (byte {exc.start} is not UTF-8): the file is damaged or "
            "not a notebook; ask the student to download it again from JupyterLab",
        ) from None
    except json.JSONDecodeError as exc:
        raise Refused(
            "corrupt-notebook",
            f"{path.name} is not valid notebook JSON ({exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}): the file is damaged (truncated upload or edited by hand); ask the "
            "student to download it again from JupyterLab",
        ) from None
    if not isinstance(data, dict) or "nbformat" not in data:
        raise Refused(
            "not-a-notebook",
            f"{path.name} is JSON but not a Jupyter notebook (no 'nbformat' field)",
        )
    version = data.get("nbformat")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises many kinds
        raise Refused(
            "not-a-notebook",
            f"{path.name} could not be read as a notebook (format {version}): {exc}"[:400],
        ) from None
    if version != 4:
        notes.append(f"converted from notebook format {version} to 4")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    ids = [c.get("id") for c in nb.cells]
    if len(set(ids)) != len(ids):
        notes.append("duplicate cell ids renumbered (cells copied and pasted?)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nb)
    except Exception:
        # repair what a student's tools commonly break: missing ids, stray fields
        with contextlib.suppress(Exception):
            from nbformat.validator import normalize

            _, nb = normalize(nb)
            nb = nbformat.from_dict(nb)
        try:
            nbformat.validate(nb)
            notes.append("repaired notebook metadata that did not follow the format")
        except Exception as exc:
            raise Refused(
                "not-a-notebook",
                f"{path.name} does not follow the notebook format: {str(exc)[:300]}",
            ) from None
    return nb


def _unique_ids(nb: nbformat.NotebookNode) -> None:
    seen: set[str] = set()
    for cell in nb.cells:
        cid = cell.get("id")
        if not cid or cid in seen:
            cid = uuid.uuid4().hex[:12]
            cell["id"] = cid
        seen.add(cid)


def _pre_sanitise(nb: nbformat.NotebookNode, src: SourceInfo, notes: list[str]) -> None:
    """Drop nbgrader metadata the instructor never wrote (cells claiming unknown grade ids), and
    keep one cell per grade id (the last, as nbgrader's DeduplicateIds does)."""
    kept: set[str] = set()
    for index in range(len(nb.cells) - 1, -1, -1):
        meta = nb.cells[index].get("metadata", {}).get("nbgrader")
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid is None:
            continue
        if gid in kept:
            del nb.cells[index].metadata["nbgrader"]
            notes.append(
                f"cell {index + 1} duplicates {gid}: duplicates ignored, run as an ordinary cell"
            )
        kept.add(gid)
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        if not isinstance(meta, dict):
            del cell.metadata["nbgrader"]
            notes.append(f"cell {index + 1}: invalid nbgrader metadata removed")
            continue
        gid = meta.get("grade_id")
        if gid is not None and gid not in src.ids:
            del cell.metadata["nbgrader"]
            notes.append(
                f"cell {index + 1} claims grade id {gid!r}, which the assignment does not have: "
                "treated as an ordinary cell"
            )
        elif gid is None and (meta.get("grade") or meta.get("solution") or meta.get("locked")):
            del cell.metadata["nbgrader"]
            notes.append(f"cell {index + 1}: nbgrader metadata without a grade id removed")


def _restore_missing(nb: nbformat.NotebookNode, src: SourceInfo, notes: list[str]) -> None:
    """Put back graded test cells the student deleted, after the nearest surviving neighbour."""
    from nbgrader.preprocessors import OverwriteCells

    transformer = OverwriteCells()
    present = {
        c.metadata.get("nbgrader", {}).get("grade_id"): i
        for i, c in enumerate(nb.cells)
        if c.metadata.get("nbgrader", {}).get("grade_id")
    }
    order = [c["name"] for c in src.cells]
    for pos, cell in enumerate(src.cells):
        if not cell["grade"] or cell["name"] in present or cell["solution"]:
            continue

        class _Source:
            pass

        s = _Source()
        s.name, s.cell_type, s.source = cell["name"], cell["cell_type"], cell["source"]
        s.locked, s.checksum = cell["locked"], cell["checksum"]
        new = nbformat.from_dict(transformer.missing_cell_transform(s, cell["points"]))
        after = None
        for prev in reversed(order[:pos]):
            if prev in present:
                after = present[prev]
                break
        index = after + 1 if after is not None else len(nb.cells)
        nb.cells.insert(index, new)
        present = {
            c.metadata.get("nbgrader", {}).get("grade_id"): i
            for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("grade_id")
        }
        notes.append(f"test cell {cell['name']} was missing: the instructor's copy was put back")


def _without_hidden(source: str) -> str:
    lines, inside = [], False
    for line in source.split("\n"):
        if "BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "END HIDDEN TESTS" in line:
            inside = False
        elif not inside:
            lines.append(line)
    return "\n".join(lines)


def _edited_cells(nb: nbformat.NotebookNode, src: SourceInfo) -> list[str]:
    """Locked instructor cells whose text the student changed (hidden tests aside)."""
    by_id = {c["name"]: c for c in src.cells}
    notes = []
    for cell in nb.cells:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        ref = by_id.get(gid)
        if ref is None or not ref["locked"] or ref["solution"]:
            continue
        mine = cell.source.strip()
        if mine not in (ref["source"].strip(), _without_hidden(ref["source"]).strip()):
            kind = "test cell" if ref["grade"] else "cell"
            notes.append(f"{kind} {gid} was edited: the instructor's version was graded")
    return notes


def _change_notes(messages: list[str]) -> list[str]:
    notes = []
    for msg in messages:
        if "has changed" in msg and "checksum" in msg:
            continue  # reported by _edited_cells, which knows the release's hidden-free copy
        elif "exists multiple times" in msg:
            notes.append(
                msg.replace("Cell with id", "cell").replace("!", "") + ": duplicates ignored"
            )
        elif "has changed" in msg:
            notes.append(msg.replace("Attribute", "attribute"))
        else:
            notes.append(msg)
    return notes


def _sanitise(course: Course, nb, resources: dict, notes: list[str]):
    from nbgrader.converters import Autograde

    logger, handler = _logger("sanitise")
    classes = Autograde(config=course.config).sanitize_preprocessors
    for cls in classes:
        pp = cls(config=course.config, log=logger)
        if hasattr(pp, "add_missing_cells"):
            pp.add_missing_cells = False  # done by _restore_missing, robustly
        nb, resources = pp(nb, resources)
    notes.extend(_change_notes(handler.messages))
    return nb, resources


def _instructor_notebook(course: Course, assignment: str, name: str) -> nbformat.NotebookNode:
    """The release's notebook (or the source's): the narrative cells the verdict kernel runs."""
    for kind in ("release", "source"):
        path = course.folder(kind, assignment=assignment) / f"{name}.ipynb"
        if path.is_file():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return nbformat.read(path, as_version=4)
    raise Refused(ex.INTERNAL, f"no {name}.ipynb in release/{assignment} or source/{assignment}")


_PLANS: dict[tuple[str, str, str], dict] = {}


def verdict_plan(course: Course, assignment: str, src: SourceInfo) -> dict:
    key = (str(course.root), assignment, src.name)
    if key not in _PLANS:
        from . import verdict as vd

        nb = _instructor_notebook(course, assignment, src.name)
        _PLANS[key] = vd.make_plan(nb, src.cells).to_dict()
    return _PLANS[key]


def _data_files(
    course: Course,
    assignment: str,
    submitted: Path | None,
    limits: sb.Limits,
) -> dict:
    """Files for the kernel's working folder: the student's extras, then the release's data
    (``submitted=None``: the release's data only, for the verdict kernel)."""
    files: dict[str, bytes] = {}
    ignore = list(course.coursedir.ignore) + ["*.ipynb", "timestamp.txt"]

    def add_from(root: Path) -> None:
        if not root.is_dir():
            return
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_symlink() or not path.is_file():
                continue
            if any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in ignore):
                continue
            files[str(rel)] = path.read_bytes()

    if submitted is not None:
        add_from(submitted)
    release = course.folder("release", assignment=assignment)
    add_from(release if release.is_dir() else course.folder("source", assignment=assignment))
    total = sum(len(v) for v in files.values())
    if total > limits.disk_mb * 1024 * 1024 // 2:
        raise Refused(
            "too-large",
            f"the submission's files take {total / 2**20:.0f} MB, more than half the "
            f"{limits.disk_mb} MB disk limit: remove large files or raise --disk",
        )
    return files


def forbidden_paths(course: Course) -> tuple[str, ...]:
    """What no sandbox mount may show: the course root (it may hold the venv, not be in one),
    source/, release/, submitted/, autograded/, feedback/, grading/ and the gradebook."""
    paths = ["~" + str(course.root)]
    for step in ("source", "release", "submitted", "autograded", "feedback"):
        paths.append(str(course.folder(step)))
    paths.append(str(course.root / "grading"))
    db = course.db_url
    if db.startswith("sqlite:///"):
        paths.append(os.path.abspath(db[len("sqlite:///") :]))
    return tuple(paths)


def check_sandbox_mounts(course: Course, options: GradeOptions) -> None:
    """Refuse to grade when a sandbox mount would show part of the course (exit status 1)."""
    from .course import CourseError

    try:
        sb.check_mounts(sb.mounts(tuple(options.expose)), list(forbidden_paths(course)))
    except sb.MountRefused as exc:
        raise CourseError(str(exc)) from None


def prepare(
    course: Course,
    assignment: str,
    student: str,
    sources: dict[str, SourceInfo],
    options: GradeOptions,
    threads: int,
) -> tuple[ex.Job, dict]:
    """Stage 1: a Job with the instructor's cells restored, and what was noticed on the way."""
    folder = course.folder("submitted", student, assignment)
    _check_folder(course, folder)
    notes: list[str] = []
    notebooks = []
    present = sorted(p.name for p in folder.glob("*.ipynb"))
    names = sorted(sources)
    for name in names:
        path = folder / f"{name}.ipynb"
        if not path.exists() and not path.is_symlink():
            others = [p for p in present if p[:-6] not in sources]
            if len(names) == 1 and len(others) == 1:
                path = folder / others[0]
                notes.append(f"{others[0]} graded as {name}.ipynb (renamed by the student)")
            else:
                found = ", ".join(present) or "no notebook"
                raise Refused(
                    "missing-notebook",
                    f"no {name}.ipynb in submitted/{student}/{assignment} (found: {found})",
                )
        nb = _read_notebook(path, notes)
        src = sources[name]
        _pre_sanitise(nb, src, notes)
        if not any(c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells):
            notes.append(
                "the notebook has none of the assignment's cells (work copied into a new "
                "notebook?): the instructor's tests were appended at the end"
            )
        notes.extend(_edited_cells(nb, src))
        _restore_missing(nb, src, notes)
        _unique_ids(nb)
        resources = {
            "nbgrader": {
                "student": student,
                "assignment": assignment,
                "notebook": name,
                "db_url": course.db_url,
            },
            "metadata": {"path": str(folder)},
        }
        try:
            nb, _ = _sanitise(course, nb, resources, notes)
        except Exception as exc:
            raise Refused(
                "unreadable-cells",
                f"nbgrader could not restore the instructor's cells in {name}.ipynb: {exc}"[:400],
            ) from None
        plan = verdict_plan(course, assignment, src) if options.verdict else None
        notebooks.append(ex.NotebookJob(f"{name}.ipynb", nbformat.writes(nb), plan))
    job = ex.Job(
        student=student,
        assignment=assignment,
        notebooks=notebooks,
        files=_data_files(course, assignment, folder, options.limits),
        limits=options.limits,
        config=copy.deepcopy(course.config),
        sandbox=options.sandbox,
        threads=threads,
        guard=options.guard,
        expose=tuple(options.expose),
        forbidden=forbidden_paths(course),
        verdict_files=(
            _data_files(course, assignment, None, options.limits) if options.verdict else {}
        ),
    )
    return job, {"notes": notes}


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


def exercise_of(grade_id: str) -> str:
    """The exercise a cell belongs to: its grade id up to the first '-' (``ex2-visible`` -> ``ex2``)."""
    return grade_id.split("-", 1)[0]


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

    logger, handler = _logger("import")
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


def ex_course_error(assignment: str) -> Exception:
    from .course import CourseError

    return CourseError(
        f"assignment {assignment!r} has no notebooks in the gradebook: run "
        f"`python -m autograder release {assignment}`"
    )
