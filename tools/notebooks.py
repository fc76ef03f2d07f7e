"""Build the instructor notebooks in source/ from their reviewable twins in lessons/.

Each lesson is written as a jupytext "percent" script, ``lessons/NN-slug.py``: prose in
``# %% [markdown]`` cells, code in ``# %%`` cells, nbgrader markup as cell metadata
(``# %% nbgrader={"solution": true, "grade_id": "ex1-answer"}``). A diff of that file reads like
prose; the notebook nbgrader needs is generated from it, stored without outputs, with stable cell
ids so that ``nbgrader generate_assignment`` gives the same release every time.

    python -m tools.notebooks build            # every lesson
    python -m tools.notebooks build 01-interoperability
    python -m tools.notebooks check            # exit 1 when a notebook is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
LESSONS_DIR = ROOT / "lessons"
SOURCE_DIR = ROOT / "source"
KERNELSPEC = {
    "name": "onnx-and-beyond",
    "display_name": "Python 3 (ONNX and Beyond)",
    "language": "python",
}
_JUPYTEXT_KEYS = ("lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker", "title")


def _normalise_nbgrader(meta: dict, where: str) -> dict:
    """Fill nbgrader's required fields from the short form an author writes."""
    unknown = set(meta) - {"grade", "solution", "grade_id", "points", "locked", "task"}
    if unknown:
        raise ValueError(f"{where}: unknown nbgrader keys {sorted(unknown)}")
    if "grade_id" not in meta:
        raise ValueError(f"{where}: an nbgrader cell needs a grade_id")
    grade = bool(meta.get("grade", False))
    solution = bool(meta.get("solution", False))
    out = {
        "grade": grade,
        "grade_id": meta["grade_id"],
        "locked": bool(meta.get("locked", not solution)),
        "schema_version": 3,
        "solution": solution,
        "task": bool(meta.get("task", False)),
    }
    if grade:
        if "points" not in meta:
            raise ValueError(f"{where}: graded cell {meta['grade_id']!r} needs points")
        out["points"] = meta["points"]
    return out


def build_notebook(script: Path) -> nbformat.NotebookNode:
    """Return the instructor notebook for one lesson script (no outputs, stable ids)."""
    nb = jupytext.read(script)
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        for key in _JUPYTEXT_KEYS:
            cell.metadata.pop(key, None)
        if "nbgrader" in cell.metadata:
            where = f"{script.name}, cell {index}"
            cell.metadata["nbgrader"] = _normalise_nbgrader(cell.metadata["nbgrader"], where)
            cell_id = cell.metadata["nbgrader"]["grade_id"]
            if cell_id in seen:
                raise ValueError(f"{where}: grade_id {cell_id!r} is used twice")
        else:
            cell_id = f"cell-{index:03d}"
        seen.add(cell_id)
        cell["id"] = cell_id
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python", "version": "3.11"},
    }
    nb.nbformat, nb.nbformat_minor = 4, 5
    nbformat.validate(nb)
    return nb


def target_for(script: Path) -> Path:
    slug = script.stem
    return SOURCE_DIR / slug / f"{slug}.ipynb"


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def scripts(names: list[str] | None = None) -> list[Path]:
    found = sorted(LESSONS_DIR.glob("[0-9][0-9]-*.py"))
    if names:
        found = [p for p in found if p.stem in names]
        missing = set(names) - {p.stem for p in found}
        if missing:
            raise SystemExit(f"no lessons/{sorted(missing)[0]}.py")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build", "check"])
    parser.add_argument("lessons", nargs="*", help="lesson ids (default: all)")
    args = parser.parse_args(argv)
    stale = []
    for script in scripts(args.lessons):
        target = target_for(script)
        text = render(build_notebook(script))
        current = target.read_text() if target.exists() else None
        if current == text:
            continue
        if args.action == "build":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
        else:
            stale.append(str(target.relative_to(ROOT)))
    if stale:
        print("out of date (run `make notebooks`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
