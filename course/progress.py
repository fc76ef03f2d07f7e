"""The course map and your progress, read from the lesson notebooks in your copy of the course.

Lessons are discovered, never listed here: every folder of ``release/`` holding a notebook, plus
the ids named in ``LESSONS`` of ``nbgrader_config.py`` (lessons announced but not yet published
are shown as *coming*). A lesson's title, objectives and estimated time are read from the first
cell of its notebook. Progress runs ``course.check`` on every lesson you have started.

Example (the "start here" notebook does this)::

    from course import progress
    progress.course_map()                 # a table: lesson, what it teaches, time, exercises
    report = progress.check_progress()    # runs the lessons you have started (remembered)
    report.to_frame(); report.plot()
"""

from __future__ import annotations

import ast
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from course import figures, selfcheck
from course.palette import GREEN, LIGHT_GREY, ORANGE, VERMILLION, WHITE

__all__ = [
    "Lesson",
    "Progress",
    "check_progress",
    "course_map",
    "course_root",
    "discover_lessons",
    "estimated_minutes",
    "lesson_info",
]

_LESSON_ID = re.compile(r"^\d\d-[a-z0-9-]+$")
_COLOURS = {"passed": GREEN, "failing": VERMILLION, "not started": LIGHT_GREY}
_COLOURS["not run"] = ORANGE


@dataclass
class Lesson:
    """One lesson of the course map."""

    id: str  #: folder name, e.g. ``01-interoperability``
    title: str
    objectives: list[str] = field(default_factory=list)
    estimated: str = ""  #: as the lesson states it, e.g. ``45 minutes``
    minutes: int | None = None  #: parsed from ``estimated`` (upper end of a range)
    notebook: Path | None = None  #: the student notebook; None while the lesson is coming
    exercises: dict[str, float] = field(default_factory=dict)  #: exercise -> points

    @property
    def available(self) -> bool:
        return self.notebook is not None

    @property
    def number(self) -> int:
        return int(self.id[:2])


def course_root(start: str | Path | None = None) -> Path:
    """The folder holding ``release/``: ``start`` (default: the working folder) or a parent.

    Example:
        >>> (course_root() / "release").is_dir()   # the working folder holds release/
        True
    """
    here = Path(start or Path.cwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / "release").is_dir():
            return folder
    raise FileNotFoundError(
        f"no release/ folder in {here} or its parents: open this from the course's folder, "
        "or pass root='path/to/onnx-and-beyond'"
    )


def _configured_lessons(root: Path) -> list[str]:
    """Ids in ``LESSONS = [...]`` of nbgrader_config.py, read without running the file."""
    config = root / "nbgrader_config.py"
    if not config.is_file():
        return []
    try:
        tree = ast.parse(config.read_text())
    except SyntaxError:
        return []
    for node in tree.body:
        if (
            isinstance(node, ast.Assign | ast.AnnAssign)
            and any(
                isinstance(t, ast.Name) and t.id == "LESSONS"
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            )
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            return [
                e.value
                for e in node.value.elts
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
    return []


def _release_notebook(root: Path, lesson: str) -> Path | None:
    folder = root / "release" / lesson
    if not folder.is_dir():
        return None
    named = folder / f"{lesson}.ipynb"
    if named.is_file():
        return named
    found = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    return found[0] if found else None


def estimated_minutes(text: str) -> int | None:
    """Minutes in a time such as ``45 minutes``, ``60-90 min``, ``1.5 hours`` (upper end).

    Example:
        >>> estimated_minutes("60-90 minutes"), estimated_minutes("1.5 hours")
        (90, 90)
    """
    m = re.search(
        r"(\d+(?:\.\d+)?)(?:\s*(?:-|–|to)\s*(\d+(?:\.\d+)?))?\s*(h|hours?|min|minutes?)\b", text
    )
    if not m:
        return None
    value = float(m.group(2) or m.group(1))
    return round(value * 60) if m.group(3).startswith("h") else round(value)


def lesson_info(notebook: str | Path, lesson_id: str | None = None) -> Lesson:
    """Title, objectives, estimated time and exercises of a lesson notebook (nothing is run).

    Example:
        >>> info = lesson_info("release/00-demo/00-demo.ipynb")
        >>> info.title, info.minutes, info.exercises
        ('Lesson 0 — Demo', 10, {'ex1': 2.0})
    """
    path = Path(notebook)
    nb = nbformat.read(path, as_version=4)
    intro = "\n\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
    title_match = re.search(r"^#\s+(.+)$", intro, flags=re.M)
    title = title_match.group(1).strip() if title_match else path.stem
    objectives: list[str] = []
    after = re.search(r"able to\**:?\s*\n(.*?)(?:\n\s*\n|\Z)", intro, flags=re.S)
    if after:
        for item in re.split(r"\n\s*(?:\d+\.|[-*])\s+", "\n" + after.group(1)):
            item = " ".join(item.split()).rstrip(";.")
            if item:
                objectives.append(item)
    est = re.search(r"Estimated time\**:?\**\s*([^.\n]*(?:\.\d[^.\n]*)?)", intro)
    estimated = est.group(1).strip().rstrip(".") if est else ""
    exercises = {ex: info["points"] for ex, info in selfcheck.read_exercises(path).items()}
    return Lesson(
        id=lesson_id or path.parent.name,
        title=title,
        objectives=objectives,
        estimated=estimated,
        minutes=estimated_minutes(estimated),
        notebook=path.resolve(),
        exercises=exercises,
    )


def discover_lessons(root: str | Path | None = None) -> list[Lesson]:
    """Every lesson of the course in order: published ones read from ``release/``, announced
    ones (in ``nbgrader_config.LESSONS`` or ``source/`` but not released yet) as *coming*.

    Example:
        >>> [lesson.id for lesson in discover_lessons()]
        ['00-demo']
    """
    base = course_root(root)
    ids = set(_configured_lessons(base))
    for folder in ("release", "source"):  # folder names only: source/ is never read
        if (base / folder).is_dir():
            ids |= {p.name for p in (base / folder).iterdir() if p.is_dir()}
    lessons = []
    for lesson in sorted(i for i in ids if _LESSON_ID.match(i)):
        notebook = _release_notebook(base, lesson)
        if notebook is not None:
            lessons.append(lesson_info(notebook, lesson))
        else:
            title = lesson[3:].replace("-", " ").capitalize()
            described = _readme_descriptions(base).get(lesson)
            lessons.append(Lesson(lesson, title, [described] if described else []))
    return lessons


def _readme_descriptions(root: Path) -> dict[str, str]:
    """``{lesson id: text}`` from a README table row such as ``| 3 | `03-converting` | text |``."""
    readme = root / "README.md"
    if not readme.is_file():
        return {}
    found = {}
    for m in re.finditer(
        r"^\|[^|\n]*\|\s*`(\d\d-[a-z0-9-]+)`\s*\|([^|\n]+)\|", readme.read_text(), re.M
    ):
        found[m.group(1)] = m.group(2).strip()
    return found


class _Table:
    """A list of row dicts that shows as an HTML table (links allowed) and converts to pandas."""

    def __init__(self, rows: list[dict[str, Any]], html_rows: list[dict[str, str]]):
        self.rows = rows
        self._html_rows = html_rows

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def _repr_html_(self) -> str:
        if not self._html_rows:
            return "<p>No lessons found.</p>"
        head = "".join(f"<th>{html.escape(k)}</th>" for k in self._html_rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{v}</td>" for v in r.values()) + "</tr>"
            for r in self._html_rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return "\n".join(" | ".join(str(v) for v in r.values()) for r in self.rows)


def _link(lesson: Lesson, root: Path) -> str:
    if lesson.notebook is None:
        return html.escape(lesson.title) + " <i>(coming)</i>"
    rel = lesson.notebook.relative_to(root).as_posix()
    return f"<a href='{html.escape(rel)}'>{html.escape(lesson.title)}</a>"


def _inline_markdown(text: str) -> str:
    """Escape ``text`` for HTML, rendering `code`, **bold** and *emphasis* as the lesson does."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<em>\1</em>", out)


def course_map(root: str | Path | None = None) -> _Table:
    """The course map: per lesson its title (a link to the notebook), what it teaches, the
    estimated time and the exercises with their points.

    Example:
        >>> course_map().to_frame().columns.tolist()
        ['lesson', 'title', 'you will be able to', 'estimated time', 'exercises', 'points']
    """
    base = course_root(root)
    rows, shown = [], []
    for lesson in discover_lessons(base):
        teaches = "; ".join(lesson.objectives)
        rows.append(
            {
                "lesson": lesson.id,
                "title": lesson.title,
                "you will be able to": teaches,
                "estimated time": lesson.estimated or ("coming" if not lesson.available else ""),
                "exercises": len(lesson.exercises),
                "points": sum(lesson.exercises.values()),
            }
        )
        items = "".join(f"<li>{_inline_markdown(o)}</li>" for o in lesson.objectives)
        shown.append(
            {
                "lesson": f"<code>{html.escape(lesson.id)}</code>",
                "title": _link(lesson, base),
                "you will be able to": f"<ul style='margin:0'>{items}</ul>" if items else "",
                "estimated time": html.escape(rows[-1]["estimated time"]),
                "exercises": str(len(lesson.exercises)) if lesson.available else "",
                "points": f"{sum(lesson.exercises.values()):g}" if lesson.available else "",
            }
        )
    return _Table(rows, shown)


@dataclass
class Progress:
    """Per lesson, how many exercises pass their visible tests in your copy."""

    root: Path
    lessons: list[Lesson]
    reports: dict[str, selfcheck.CheckReport]  #: lesson id -> report (available lessons only)
    errors: dict[str, str] = field(default_factory=dict)  #: lesson id -> why it was not checked

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for lesson in self.lessons:
            report = self.reports.get(lesson.id)
            counts = {"passed": 0, "failing": 0, "not started": 0, "not run": 0}
            points = passed_points = 0.0
            if report is not None:
                for e in report.exercises:
                    counts[e.status] += 1
                points, passed_points = report.points, report.points_passed
            if not lesson.available:
                status = "coming"
            elif lesson.id in self.errors:
                status = "could not check: " + self.errors[lesson.id]
            elif report is not None and report.problem:
                status = "stopped: " + report.problem
            elif counts["passed"] == len(lesson.exercises) and lesson.exercises:
                status = "done"
            elif counts["passed"] or counts["failing"]:
                status = "in progress"
            else:
                status = "not started"
            out.append(
                {
                    "lesson": lesson.id,
                    "exercises": len(lesson.exercises),
                    **counts,
                    "points passing": passed_points,
                    "points": points,
                    "status": status,
                }
            )
        return out

    def to_frame(self):
        """The rows as a pandas DataFrame indexed by lesson."""
        import pandas as pd

        return pd.DataFrame(self.rows()).set_index("lesson")

    @property
    def exercises_passed(self) -> int:
        return sum(r["passed"] for r in self.rows())

    @property
    def exercises_total(self) -> int:
        return sum(r["exercises"] for r in self.rows())

    def plot(self, ax=None):
        """A horizontal stacked bar per lesson: exercises passing, failing, not started.

        Returns the matplotlib Figure.
        """
        rows = [r for r in self.rows() if r["status"] != "coming"]
        if ax is None:  # a pyplot figure: start-here shows it with plt.show()
            fig, ax = figures.figure((7, 0.45 * max(len(rows), 2) + 1.4), pyplot=True)
        else:
            fig = ax.figure
        names = [r["lesson"] for r in rows]
        left = [0] * len(rows)
        for key in ("passed", "failing", "not run", "not started"):
            values = [r[key] for r in rows]
            if key == "not run" and not any(values):
                continue
            ax.barh(names, values, left=left, color=_COLOURS[key], label=key, edgecolor=WHITE)
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.invert_yaxis()
        ax.set_xlabel("exercises (count)")
        ax.set_title(
            f"Your progress: {self.exercises_passed} of {self.exercises_total} exercises "
            "pass their visible tests"
        )
        ax.xaxis.get_major_locator().set_params(integer=True)
        figures.legend_below(ax, offset=-0.18, ncol=4, fontsize="small")
        return figures.finish(fig)

    def __repr__(self) -> str:
        return self.to_frame().to_string()

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>{self.exercises_passed} of {self.exercises_total} exercises pass their "
            "visible tests</b> (your instructor's grading also runs hidden tests).</p>"
        )
        rows = self.rows()
        if not rows:
            return head
        cols = list(rows[0])
        table = "<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        table += "</tr></thead><tbody>"
        for r in rows:
            table += (
                "<tr>"
                + "".join(
                    f"<td>{html.escape(f'{r[c]:g}' if isinstance(r[c], float) else str(r[c]))}</td>"
                    for c in cols
                )
                + "</tr>"
            )
        return head + table + "</tbody></table>"


def check_progress(
    root: str | Path | None = None,
    *,
    execute: str = "auto",
    timeout: float = 300.0,
    verbose: bool = True,
) -> Progress:
    """Check every published lesson in your copy (``release/``) with ``course.check``.

    Lessons you have not started are read, not run; started ones run once in a fresh kernel
    (up to a minute each) and are remembered until their code changes.

    Example:
        >>> check_progress().to_frame()["status"].tolist()   # ex1 not started: nothing ran
        ['not started']
    """
    base = course_root(root)
    lessons = discover_lessons(base)
    reports: dict[str, selfcheck.CheckReport] = {}
    errors: dict[str, str] = {}
    for lesson in lessons:
        if lesson.notebook is None:
            continue
        if not lesson.exercises:
            errors[lesson.id] = "no graded exercises in the notebook"
            continue
        try:
            reports[lesson.id] = selfcheck.check(
                lesson.notebook,
                execute=execute,
                timeout=timeout,
                verbose=verbose,  # type: ignore[arg-type]
            )
        except selfcheck.SelfCheckError as exc:
            errors[lesson.id] = str(exc)
    return Progress(base, lessons, reports, errors)
