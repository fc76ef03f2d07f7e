"""Stage 1 of grading, trusted: a submission becomes a :class:`~autograder.execute.Job`.

Read ``submitted/STUDENT/ASSIGNMENT``, refuse what is not a notebook with a reason
(:class:`Refused`), put back deleted test cells, and run nbgrader's own sanitising
preprocessors (``ClearOutput``, ``DeduplicateIds``, ``OverwriteKernelspec``,
``OverwriteCells``, ``CheckCellMetadata``): the instructor's test cells, hidden tests included,
replace the student's copies. Also the sandbox's mount check (:func:`check_sandbox_mounts`).
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import json
import logging
import os
import stat
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from . import execute as ex
from . import sandbox as sb
from .course import Course

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .grade import GradeOptions

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


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def nbgrader_log(name: str) -> tuple[logging.Logger, ListHandler]:
    logger = logging.getLogger(f"autograder.nbgrader.{name}")
    logger.handlers.clear()
    handler = ListHandler()
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

    logger, handler = nbgrader_log("sanitise")
    classes = Autograde(config=course.config).sanitize_preprocessors
    for cls in classes:
        pp = cls(config=course.config, log=logger)
        if hasattr(pp, "add_missing_cells"):
            pp.add_missing_cells = False  # done by _restore_missing, robustly
        nb, resources = pp(nb, resources)
    notes.extend(_change_notes(handler.messages))
    return nb, resources


def _instructor_notebook(course: Course, assignment: str, name: str) -> nbformat.NotebookNode:
    """The release's notebook (or the source's): where T's narrative cells come from."""
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


def artefacts_home() -> str | None:
    """The folder of this machine's built course artefacts (transformers exported to ONNX, ...),
    or None when `python -m course.artefacts` has not built any: the kernels are shown it
    read-only, so a lesson that loads an artefact does not build it under a kernel's limits."""
    from course import artefacts

    home = artefacts.built_home()
    return str(home) if home is not None else None


def check_sandbox_mounts(course: Course, options: GradeOptions) -> None:
    """Refuse to grade when a sandbox mount would show part of the course (exit status 1)."""
    from .course import CourseError

    try:
        shown = (*options.expose, *filter(None, [artefacts_home()]))
        sb.check_mounts(sb.mounts(shown), list(forbidden_paths(course)))
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
        artefacts=artefacts_home(),
        forbidden=forbidden_paths(course),
        verdict_files=(
            _data_files(course, assignment, None, options.limits) if options.verdict else {}
        ),
    )
    return job, {"notes": notes}


def ex_course_error(assignment: str) -> Exception:
    from .course import CourseError

    return CourseError(
        f"assignment {assignment!r} has no notebooks in the gradebook: run "
        f"`python -m autograder release {assignment}`"
    )
