"""The instructor quick path of README.md, run as written: from a fresh clone to a graded
class (release, collect an LMS-style zip, grade, feedback, export).

The commands are read from the documentation's code block, so the test fails when the text and
the tool disagree. The clone is a ``git clone`` of this repository (what is committed); the
pinned environment is the one running the tests (``make setup`` is checked with ``make -n``,
not run: it would install everything again). Three students hand in 00-template through a zip
named the ways learning-management systems name files: one all correct, one partly, one
untouched.
"""

from __future__ import annotations

import csv
import importlib
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import harness
import nbformat
import pytest

ROOT = harness.ROOT
DOC = ROOT / "README.md"
LESSON = "00-template"
template_variants = importlib.import_module("exercises.00_template")
_fmt = harness.exercise_format()
_FIRST_ALTERNATIVES = _fmt.alternatives(template_variants)[0]  # one answer per cell

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def quick_path() -> list[str]:
    text = DOC.read_text()
    section = text[text.index("### Instructor quick path") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README.md: the instructor quick path needs a ```bash block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_quick_path_is_a_handful_of_commands():
    commands = quick_path()
    assert commands[0] == (
        "git clone https://github.com/onnx-and-beyond/onnx-and-beyond && cd onnx-and-beyond"
    ), commands[0]
    assert commands[1] == "make setup", commands[1]
    steps = [shlex.split(c)[3] for c in commands[2:]]
    assert steps == ["release", "collect", "grade", "feedback", "export"], commands
    assert len(commands) <= 8, f"a handful of commands, got {len(commands)}"


def _lms_zip(path: Path, release: nbformat.NotebookNode) -> set[str]:
    """Three students as an LMS exports them; returns their student ids."""
    full = harness.with_cells_replaced(release, _FIRST_ALTERNATIVES)
    partial = harness.with_cells_replaced(
        release,
        {
            "ex1-converters": _FIRST_ALTERNATIVES["ex1-converters"],
            "ex2-export": _fmt.first_wrong(template_variants, "ex2-export"),  # ZipMap left on
        },
    )
    entries = {
        "submissions/doejane_12345_67890_00-template.ipynb": full,  # Canvas-like
        "submissions/roe_rroe7_attempt_2024-03-01-10-15-00_00-template.ipynb": partial,  # Blackboard
        "submissions/Ann Poe_42_assignsubmission_file_/00-template.ipynb": release,  # Moodle
    }
    with zipfile.ZipFile(path, "w") as z:
        for name, nb in entries.items():
            z.writestr(name, nbformat.writes(nb))
    return {"12345", "rroe7", "42"}


def test_fresh_clone_to_graded_class(tmp_path):
    clone = tmp_path / "onnx-and-beyond"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{ROOT}", str(clone)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dry = subprocess.run(["make", "-n", "setup"], cwd=clone, capture_output=True, text=True)
    assert dry.returncode == 0, f"`make setup` is not a target of the clone: {dry.stderr}"

    release = nbformat.read(clone / "release" / LESSON / f"{LESSON}.ipynb", as_version=4)
    archive = tmp_path / "Downloads" / "submissions.zip"
    archive.parent.mkdir()
    expected = _lms_zip(archive, release)

    env = dict(
        os.environ,
        PYTHONWARNINGS="ignore",
        HOME=str(tmp_path),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    outputs = {}
    for command in quick_path()[2:]:
        args = shlex.split(command.replace("01-interoperability", LESSON))
        assert args[:3] == [".venv/bin/python", "-m", "autograder"], command
        args = [sys.executable, "-m", "autograder", *args[3:]]
        args = [str(archive) if a == "~/Downloads/submissions.zip" else a for a in args]
        proc = subprocess.run(args, cwd=clone, env=env, capture_output=True, text=True, timeout=360)
        step = args[3]
        outputs[step] = proc.stdout + proc.stderr
        assert proc.returncode == 0, (
            f"`{command}` failed ({proc.returncode}):\n{outputs[step][-3000:]}"
        )

    assert "3 students collected" in outputs["collect"], outputs["collect"]
    grading = clone / "grading" / LESSON
    with open(grading / "grades.csv") as f:
        rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
    assert set(rows) == set(expected), (
        f"grades.csv students: expected {sorted(expected)}, got {rows}"
    )
    assert rows["12345"] == 5.0, f"the all-correct student should get 5/5, got {rows['12345']}"
    assert 0 < rows["rroe7"] < 5, f"the partly correct student should get partial credit: {rows}"
    assert rows["42"] == 0.0, f"the untouched notebook should earn nothing, got {rows['42']}"
    assert (grading / "report.json").is_file() and (grading / "score-distribution.png").is_file()
    hidden = 'converters_needed(2, 9, hub=True) == 11, "hub format with 2 frameworks'
    for student in expected:
        pages = list((clone / "feedback" / student / LESSON).glob("*.html"))
        assert pages, f"no feedback page for {student}: {outputs['feedback']}"
        text = pages[0].read_text()
        assert "BEGIN HIDDEN TESTS" not in text and hidden not in text, (
            f"{student}'s feedback shows a hidden test"
        )
