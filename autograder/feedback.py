"""Per-student HTML feedback that shows no hidden test.

nbgrader's own ``generate_feedback`` renders each autograded notebook, with one more
preprocessor, :class:`RedactHiddenTests`, before the HTML export:

- hidden-test regions are cut from the test cells (as in the student's release);
- test cells that hold hidden tests keep only the error they raised, so a student's function
  that prints its arguments cannot show the hidden inputs;
- every output line that contains a line of a hidden test (spaces ignored) is replaced, so a
  hook that prints the cell being run, or a traceback quoting the hidden line, shows nothing;
- saved widget state is dropped (it could carry any text).

Students whose submission failed get a short page with the reason instead.
"""

from __future__ import annotations

import html
import re
import shutil

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader import utils as nbutils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode

from .course import Course
from .grade import read_records

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
REDACTED = "[hidden test line not shown]"


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", ANSI.sub("", text))


def hidden_lines(
    sources: list[str],
    begin: str = "BEGIN HIDDEN TESTS",
    end: str = "END HIDDEN TESTS",
    min_len: int = 8,
) -> set[str]:
    """Whitespace-free lines inside hidden-test regions that appear nowhere else.

    Example:
        >>> sorted(hidden_lines(["x = 1\\n### BEGIN HIDDEN TESTS\\nassert f(2) == 11\\n### END HIDDEN TESTS"]))
        ['assertf(2)==11']
    """
    hidden, visible = set(), set()
    for source in sources:
        inside = False
        for line in source.splitlines():
            if begin in line:
                inside = True
            elif end in line:
                inside = False
            else:
                (hidden if inside else visible).add(_norm(line))
    return {h for h in hidden - visible if len(h) >= min_len}


def _redact_text(text: str, secrets: set[str]) -> tuple[str, int]:
    out, count = [], 0
    for line in text.split("\n"):
        norm = _norm(line)
        if any(s in norm for s in secrets):
            out.append(REDACTED)
            count += 1
        else:
            out.append(line)
    return "\n".join(out), count


def _redact(value, secrets: set[str]):
    """Redact every string inside an output (dicts, lists, multi-line strings)."""
    if isinstance(value, str):
        return _redact_text(value, secrets)
    if isinstance(value, list):
        total, items = 0, []
        for item in value:
            new, n = _redact(item, secrets)
            items.append(new)
            total += n
        return items, total
    if isinstance(value, dict):
        total = 0
        for key in list(value):
            value[key], n = _redact(value[key], secrets)
            total += n
        return value, total
    return value, 0


class RedactHiddenTests(NbGraderPreprocessor):
    """Remove hidden tests, and anything that quotes them, from a notebook shown to a student."""

    begin_test_delimeter = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end_test_delimeter = Unicode("END HIDDEN TESTS").tag(config=True)
    min_line_length = Integer(8, help="Shorter hidden lines are too common to redact").tag(
        config=True
    )

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict):
        from nbgrader.api import Gradebook

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            sources = [c.source for c in notebook.source_cells]
        self.secrets = hidden_lines(
            sources, self.begin_test_delimeter, self.end_test_delimeter, self.min_line_length
        )
        self.redacted = 0
        nb.metadata.pop("widgets", None)
        nb, resources = super().preprocess(nb, resources)
        resources.setdefault("autograder", {})["redacted_lines"] = self.redacted
        return nb, resources

    def preprocess_cell(self, cell: NotebookNode, resources: ResourcesDict, index: int):
        had_hidden = False
        if nbutils.is_grade(cell) and self.begin_test_delimeter in cell.source:
            had_hidden = True
            lines, inside = [], False
            for line in cell.source.split("\n"):
                if self.begin_test_delimeter in line:
                    inside = True
                elif self.end_test_delimeter in line:
                    inside = False
                elif not inside:
                    lines.append(line)
            cell.source = "\n".join(lines)
        if cell.cell_type == "code":
            if had_hidden:
                cell.outputs = [o for o in cell.outputs if o.output_type == "error"]
            for output in cell.outputs:
                _, n = _redact(output, self.secrets)
                self.redacted += n
                _defuse(output)
        return cell, resources


#: Outputs that can carry script: shown as inert text in feedback.
ACTIVE = ("text/html", "application/javascript", "image/svg+xml", "text/markdown")
#: The first thing in every feedback page's <head>: nothing on the page runs script.
CSP = (
    '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    "style-src 'unsafe-inline'; img-src data:; font-src data:; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'\">"
)


def _defuse(output) -> None:
    """A student's HTML, JavaScript, SVG or Markdown output becomes inert text."""
    data = output.get("data")
    if not isinstance(data, dict):
        return
    for mime in [m for m in data if m in ACTIVE or "javascript" in m or m.endswith("+html")]:
        value = data.pop(mime)
        text = "".join(value) if isinstance(value, list) else str(value)
        data.setdefault("text/plain", f"[{mime} output shown as text]\n{text}")
    if not data:
        data["text/plain"] = "[output removed]"


def add_csp(page: str) -> str:
    """Put the Content-Security-Policy first in the page's <head>.

    Example:
        >>> add_csp("<html><head><script>x()</script></head></html>").count("script-src 'none'")
        1
    """
    if CSP in page:
        return page
    found = re.search(r"<head[^>]*>", page, flags=re.IGNORECASE)
    if found is None:
        return CSP + page
    return page[: found.end()] + CSP + page[found.end() :]


def failure_page(student: str, assignment: str, record: dict) -> str:
    reason = html.escape(record.get("reason") or "unknown reason")
    return f"""<!DOCTYPE html>
<html lang="en"><head>{CSP}<meta charset="utf-8"><title>{html.escape(assignment)}: not graded</title>
<style>body{{font-family:sans-serif;max-width:46em;margin:3em auto;line-height:1.5}}
.box{{border-left:6px solid #D55E00;padding:0.5em 1em;background:#fff4ec}}</style></head>
<body><h1>{html.escape(assignment)}: your submission could not be graded</h1>
<p>Student: <code>{html.escape(student)}</code></p>
<div class="box"><p><strong>Why:</strong> {reason}</p></div>
<p>Score recorded: {record.get("score", 0):g} / {record.get("max_score", 0):g}.
Fix the problem and submit again, or ask your instructor.</p></body></html>
"""


def generate(course: Course, assignment: str) -> dict:
    """Write ``feedback/STUDENT/ASSIGNMENT/*.html`` for every student with a grading record."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.apps import NbGraderAPI
    from nbgrader.preprocessors import GetGrades
    from traitlets.config import Config

    course.check_assignment(assignment)
    records = read_records(course, assignment)
    config = Config(course.config)
    config.merge(
        Config(
            {
                "GenerateFeedback": {
                    "preprocessors": [GetGrades, RedactHiddenTests, CSSHTMLHeaderPreprocessor]
                }
            }
        )
    )
    graded = sorted(s for s, r in records.items() if r["status"] == "graded")
    failed = sorted(s for s, r in records.items() if r["status"] != "graded")
    written, problems = [], []
    if graded:
        api = NbGraderAPI(coursedir=course.coursedir, config=config)
        for student in graded:
            result = api.generate_feedback(assignment, student, force=True)
            for page in course.folder("feedback", student, assignment).glob("*.html"):
                page.write_text(add_csp(page.read_text()))
            if result.get("success"):
                written.append(student)
            else:
                problems.append(
                    {
                        "student": student,
                        "error": (result.get("error") or result.get("log") or "")[-800:],
                    }
                )
    notebooks = course.notebook_names(assignment)
    for student in failed:
        folder = course.folder("feedback", student, assignment)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        page = failure_page(student, assignment, records[student])
        for name in notebooks:
            (folder / f"{name}.html").write_text(page)
        written.append(student)
    return {"written": written, "graded": graded, "failed": failed, "problems": problems}
