"""Small nbgrader notebooks for tests: cells with nbgrader metadata, and a notebook on disk.

Used by the learner-tool tests (tests/test_selfcheck.py) and by the doctests' one-lesson course
(conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import nbformat


def cell(source: str, grade_id: str | None = None, *, kind: str = "code", points: float = 0):
    maker = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
    c = maker(source)
    if grade_id:
        solution = kind == "answer"
        if solution:
            c = nbformat.v4.new_code_cell(source)
        c.metadata["nbgrader"] = {
            "grade": not solution,
            "solution": solution,
            "grade_id": grade_id,
            "locked": not solution,
            "schema_version": 3,
            **({} if solution else {"points": points}),
        }
    return c


def write_nb(folder: Path, name: str, cells: list, kernel: str = "python3") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    path = folder / name
    nbformat.write(nb, path)
    return path
