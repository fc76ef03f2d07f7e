"""The instructor's course directory, seen through nbgrader's own configuration and API."""

from __future__ import annotations

import os
import re
import sys
from functools import cached_property
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

#: Student ids the pipeline accepts (they become folder names under ``submitted/``).
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
#: Assignment ids (folders of ``source/``).
ASSIGNMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CourseError(RuntimeError):
    """A problem with the course directory that the instructor has to fix (message says how)."""


def valid_student_id(student: str) -> bool:
    """True when ``student`` is safe as a folder name (no path separators, no ``..``).

    Example:
        >>> valid_student_id("jdoe_42"), valid_student_id("../etc")
        (True, False)
    """
    return bool(STUDENT_ID.match(student)) and ".." not in student


def _ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` from PATH: put this interpreter's scripts first."""
    bindir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in parts:
        os.environ["PATH"] = os.pathsep.join([bindir, *parts])


def find_root(start: Path | None = None) -> Path:
    """The course root: ``start`` or the nearest parent holding ``nbgrader_config.py``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file():
            return folder
    raise CourseError(
        f"no nbgrader_config.py in {here} or its parents: run from the course directory "
        "or pass --course DIR"
    )


class Course:
    """A course directory: ``source/``, ``release/``, ``submitted/``, ``autograded/``, the gradebook.

    Example:
        >>> course = Course(find_root())  # doctest: +SKIP
        >>> course.assignments()  # doctest: +SKIP
        ['00-template']
    """

    def __init__(self, root: Path | str | None = None):
        _ensure_tools_on_path()
        self.root = Path(root).resolve() if root else find_root()
        if not self.root.is_dir():
            raise CourseError(f"course directory {self.root} does not exist")
        config = Config()
        if (self.root / "nbgrader_config.py").is_file():
            config = PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()
        config.CourseDirectory.root = str(self.root)
        if "db_url" not in config.CourseDirectory:
            config.CourseDirectory.db_url = f"sqlite:///{self.root / 'gradebook.db'}"
        self.config = config

    # -- nbgrader objects -------------------------------------------------------------------

    @cached_property
    def coursedir(self):
        from nbgrader.coursedir import CourseDirectory

        return CourseDirectory(config=self.config)

    @cached_property
    def api(self):
        from nbgrader.apps import NbGraderAPI

        return NbGraderAPI(coursedir=self.coursedir, config=self.config)

    @property
    def db_url(self) -> str:
        return self.coursedir.db_url

    @property
    def course_id(self) -> str:
        return self.coursedir.course_id

    def gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(self.db_url, self.course_id)

    # -- folders ----------------------------------------------------------------------------

    def folder(self, step: str, student: str = ".", assignment: str = "") -> Path:
        """``source``/``release``/``submitted``/``autograded``/``feedback`` folder of a student."""
        name = getattr(self.coursedir, f"{step}_directory")
        path = self.root / name
        if student != ".":
            path = path / student
        return path / assignment if assignment else path

    def grading_dir(self, assignment: str) -> Path:
        """Where the autograder keeps its journal, reports and figures for an assignment."""
        return self.root / "grading" / assignment

    def assignments(self) -> list[str]:
        """Assignments in ``source/`` (a folder holding at least one notebook), sorted."""
        source = self.folder("source")
        if not source.is_dir():
            return []
        return sorted(p.name for p in source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))

    def check_assignment(self, assignment: str) -> None:
        if not ASSIGNMENT_ID.match(assignment) or assignment not in self.assignments():
            known = ", ".join(self.assignments()) or "none"
            raise CourseError(f"unknown assignment {assignment!r}: source/ has {known}")

    def notebook_names(self, assignment: str) -> list[str]:
        """Notebook ids of an assignment (file names without ``.ipynb``), from the gradebook."""
        from nbgrader.api import MissingEntry

        with self.gradebook() as gb:
            try:
                return sorted(nb.name for nb in gb.find_assignment(assignment).notebooks)
            except MissingEntry:
                raise CourseError(
                    f"assignment {assignment!r} is not in the gradebook yet: run "
                    f"`python -m autograder release {assignment}` first"
                ) from None

    def students_submitted(self, assignment: str) -> list[str]:
        """Students with a folder ``submitted/STUDENT/ASSIGNMENT``."""
        root = self.folder("submitted")
        if not root.is_dir():
            return []
        return sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and (p / assignment).is_dir() and valid_student_id(p.name)
        )
