"""A class on a shared server: nbgrader's exchange round trip, as docs/learners.md describes it.

The instructor releases 00-template to a temporary exchange; two students (their own home
folders and user names) fetch it, answer it and submit (one of them twice); the instructor
collects the latest submissions and autogrades them. Real nbgrader commands throughout; each
student has a home folder of their own, and ``--student`` stands for the login name a JupyterHub
account would give (this test does not create system accounts).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import harness
import nbformat
import pytest

ROOT = harness.ROOT
LESSON = "00-template"
COURSE_ID = "onnx-and-beyond"
template_variants = importlib.import_module("exercises.00_template")
_fmt = harness.exercise_format()
_FIRST_ALTERNATIVES = _fmt.alternatives(template_variants)[0]  # one answer per cell

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def nbgrader(*args: str, cwd: Path, user: str, exchange: Path, network: bool = True):
    env = dict(
        os.environ,
        USER=user,
        LOGNAME=user,
        HOME=str(cwd if user != "instructor" else cwd.parent),
        PYTHONWARNINGS="ignore",
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--Exchange.root={exchange}"]
    if not network:
        cmd = harness.sandbox_prefix() + cmd
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (
        f"nbgrader {' '.join(args)} as {user} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    )
    return proc


def test_release_fetch_submit_collect_grade(tmp_path):
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    course = tmp_path / "instructor" / "course"
    course.mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)  # its paths are relative to itself
    shutil.copytree(ROOT / "source" / LESSON, course / "source" / LESSON)

    nbgrader(
        "generate_assignment", LESSON, "--force", cwd=course, user="instructor", exchange=exchange
    )
    nbgrader("release_assignment", LESSON, cwd=course, user="instructor", exchange=exchange)
    released = exchange / COURSE_ID / "outbound" / LESSON / f"{LESSON}.ipynb"
    assert released.is_file(), f"release_assignment should publish {released}"
    listed = nbgrader("list", "--course", COURSE_ID, cwd=tmp_path, user="alice", exchange=exchange)
    assert f"{COURSE_ID} {LESSON}" in listed.stdout + listed.stderr

    answers = {
        "alice": [
            {"ex1-converters": _fmt.first_wrong(template_variants, "ex1-converters")},  # first try
            _FIRST_ALTERNATIVES,  # the one that counts
        ],
        "bob": [
            {
                "ex1-converters": _FIRST_ALTERNATIVES["ex1-converters"],
                "ex2-export": _fmt.first_wrong(template_variants, "ex2-export"),
            }
        ],
    }
    final = {}
    for student, attempts in answers.items():
        home = tmp_path / "home" / student
        home.mkdir(parents=True)
        nbgrader(
            "fetch_assignment",
            LESSON,
            "--course",
            COURSE_ID,
            cwd=home,
            user=student,
            exchange=exchange,
        )
        fetched = home / LESSON / f"{LESSON}.ipynb"
        assert fetched.is_file(), f"{student} should have fetched {fetched}"
        for attempt in attempts:
            nb = harness.with_cells_replaced(nbformat.read(fetched, as_version=4), attempt)
            nbformat.write(nb, fetched)
            nbgrader(
                "submit",
                LESSON,
                "--course",
                COURSE_ID,
                f"--student={student}",
                cwd=home,
                user=student,
                exchange=exchange,
            )
            time.sleep(1.1)  # submissions are told apart by their timestamp
        final[student] = fetched.read_bytes()
    inbound = sorted(p.name.split("+")[0] for p in (exchange / COURSE_ID / "inbound").iterdir())
    assert inbound == ["alice", "alice", "bob"], (
        f"expected 3 submissions in the exchange, got {inbound}"
    )

    nbgrader("collect", LESSON, cwd=course, user="instructor", exchange=exchange)
    for student in answers:
        got = course / "submitted" / student / LESSON / f"{LESSON}.ipynb"
        assert got.is_file(), f"collect should write {got}"
        assert got.read_bytes() == final[student], (
            f"{student}: collect should keep the latest submission"
        )
        assert (got.parent / "timestamp.txt").is_file()

    nbgrader(
        "autograde",
        LESSON,
        "--force",
        cwd=course,
        user="instructor",
        exchange=exchange,
        network=False,
    )
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        scores = {s: gb.find_submission(LESSON, s).score for s in answers}
        maximum = gb.find_assignment(LESSON).max_score
    assert scores["alice"] == maximum == 5, (
        f"alice's last submission is all correct: {scores}, max {maximum}"
    )
    assert 0 < scores["bob"] < maximum, f"bob left ZipMap on in exercise 2: {scores}"
