"""Write ``start-here.ipynb``, the course's front door for students and self-learners.

The notebook holds no lesson names: it discovers the lessons when it runs (``course.progress``),
so it never needs rebuilding when a lesson is added. It is stored without outputs.

    python -m tools.start_here            # write start-here.ipynb
    python -m tools.start_here --check    # exit 1 when the file is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "start-here.ipynb"
KERNELSPEC = {
    "name": "onnx-and-beyond",
    "display_name": "Python 3 (ONNX and Beyond)",
    "language": "python",
}

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        """# Start here: ONNX and Beyond

Welcome. This course is about moving machine-learning models between the tools that train them
and the runtimes that use them: ONNX first, and the formats, runtimes and hardware around it.
Each lesson is one notebook of short, runnable cells, plots and widgets computed on your
machine, and exercises that are checked automatically.

**How to work through a lesson**
1. Open it from the course map below (or from the `release/` folder in the file browser).
2. Run the cells from the top (*Shift+Enter*), read, change things, run again.
3. Write your answer where a cell says `# YOUR CODE HERE` (delete the `raise NotImplementedError()`
   line), then run the test cell below it: it prints nothing when your answer is right, and says
   what was expected and what it got when it is not.
4. Check the whole notebook: press **Validate** in the notebook toolbar where nbgrader is
   installed, or, with no instructor, run `course.check()` in a new cell at the end of the
   lesson (save first, *Ctrl+S*: the saved file is what gets checked).

**On Binder** (mybinder.org): there is no GPU, memory is 1-2 GB, and the session is
**temporary**: it stops after about 10 minutes without activity and everything in it is lost.
Download your notebooks (*File > Download*) before you leave, and upload them next time.

**In a class** on a shared JupyterHub: fetch each lesson from the *Assignments* tab, work in
your fetched copy, and submit it from the same tab; your instructor's grading also runs hidden
tests.""",
    ),
    ("markdown", "## The course map"),
    (
        "code",
        """import course
from course import progress

root = progress.course_root()
progress.course_map(root)""",
    ),
    (
        "code",
        """lessons = progress.discover_lessons(root)
published = [lesson for lesson in lessons if lesson.available]
minutes = sum(lesson.minutes or 0 for lesson in published)
points = sum(sum(lesson.exercises.values()) for lesson in published)
print(
    f"{len(published)} of {len(lessons)} lessons published: about {minutes / 60:.1f} hours "
    f"of study, {sum(len(lesson.exercises) for lesson in published)} exercises, {points:g} points"
)""",
    ),
    (
        "markdown",
        """## Your progress

The next cell checks **your own copy** of every published lesson with `course.check`: a lesson
you have not started is only read; a lesson you have started runs once, top to bottom, in a
fresh kernel (up to a minute each, the first time), and its result is remembered until you
change its code. Only the *visible* tests can run here: passing them is necessary, not
sufficient. Save your lesson notebooks first (*Ctrl+S*).""",
    ),
    (
        "code",
        """mine = progress.check_progress(root)
mine""",
    ),
    (
        "code",
        """import matplotlib.pyplot as plt

mine.plot()
plt.show()""",
    ),
    (
        "markdown",
        "*What to see*: one bar per published lesson, split into the exercises that pass their "
        "visible tests (green), the ones that fail (vermillion) and the ones not started (grey).",
    ),
    (
        "markdown",
        """## What failed, and why

For every lesson you have started, the table below lists each visible test with the message of
the assertion that failed. To check one lesson on its own, run
`course.check("release/NN-lesson/NN-lesson.ipynb")` here, or `course.check()` inside the lesson.""",
    ),
    (
        "code",
        """from IPython.display import display

started = [report for report in mine.reports.values() if report.executed]
for report in started:
    display(report)
if not started:
    print("No lesson started yet: open one from the course map above.")""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The start-here notebook: no outputs, stable cell ids, the course kernel."""
    nb = nbformat.v4.new_notebook()
    for index, (kind, source) in enumerate(CELLS):
        maker = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = maker(source)
        cell["id"] = f"start-{index:02d}"
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python", "version": "3.11"},
    }
    nbformat.validate(nb)
    return nb


def render() -> str:
    return nbformat.writes(build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(f"{TARGET.name} is out of date: run `python -m tools.start_here`")
            return 1
        print(f"{TARGET.name} is up to date")
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
