"""start-here.ipynb: stored without outputs, up to date with tools/start_here.py, and it runs in a
reader's copy of the course, showing the course map and the reader's own progress."""

from __future__ import annotations

import importlib
import json
import shutil
import sys

import harness
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = harness.ROOT
sys.path.insert(0, str(ROOT))
from tools import start_here  # noqa: E402

template_variants = importlib.import_module("exercises.00_template")
_fmt = harness.exercise_format()
_FIRST_ALTERNATIVES = _fmt.alternatives(template_variants)[0]  # one answer per cell


def test_start_here_is_stored_without_outputs_and_up_to_date():
    nb = json.loads((ROOT / "start-here.ipynb").read_text())
    dirty = [
        c["id"]
        for c in nb["cells"]
        if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])
    ]
    assert not dirty, f"start-here.ipynb must be stored without outputs, cells {dirty} have some"
    assert (ROOT / "start-here.ipynb").read_text() == start_here.render(), (
        "start-here.ipynb is out of date: run `python -m tools.start_here`"
    )
    assert start_here.main(["--check"]) == 0


def test_start_here_names_no_lesson():
    """Lessons are discovered when it runs, so adding one never needs this notebook rebuilt."""
    text = (ROOT / "start-here.ipynb").read_text()
    named = [lesson for lesson in harness.lessons() if lesson in text]
    assert not named, f"start-here.ipynb should discover lessons, not name them: {named}"


@pytest.mark.slow
def test_start_here_runs_in_a_readers_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "course"
    copy.mkdir()
    for name in ("start-here.ipynb", "nbgrader_config.py", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "release", copy / "release")
    # the reader has answered lesson 0 (correctly) and nothing else
    lesson0 = copy / "release" / "00-template" / "00-template.ipynb"
    answered = harness.with_cells_replaced(
        nbformat.read(lesson0, as_version=4), _FIRST_ALTERNATIVES
    )
    nbformat.write(answered, lesson0)
    nb = nbformat.read(copy / "start-here.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=240, kernel_name="onnx-and-beyond", resources={"metadata": {"path": str(copy)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    stderr = [o["text"] for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, f"start-here.ipynb wrote to stderr: {stderr}"
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    for lesson in sorted(p.parent.name for p in (ROOT / "release").glob("*/*.ipynb")):
        assert f"release/{lesson}/{lesson}.ipynb" in html, f"the course map should link {lesson}"
    assert "lessons published" in text, text
    (result,) = [o for o in nb.cells[5].outputs if o.output_type == "execute_result"]
    progress_html = result["data"]["text/html"]
    checking = "".join(o.get("text", "") for o in nb.cells[5].outputs)
    assert "Checking 00-template.ipynb" in checking, "only the started lesson should run"
    assert "Checking 01" not in checking, checking
    assert "<td>00-template</td>" in progress_html and "<td>done</td>" in progress_html, (
        progress_html
    )
    assert "2 of " in progress_html, "lesson 0's two exercises should count as passing"
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the progress chart should be drawn"
    shown = "".join(o.get("data", {}).get("text/html", "") for o in nb.cells[-1].outputs)
    assert "00-template.ipynb: 2 of 2 exercises pass" in shown, shown[:500]
