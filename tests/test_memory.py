"""Binder's limits: every lesson, solutions included, peaks under 1.5 GB of memory.

mybinder.org gives a session 1 to 2 GB for the server and the kernels together. The figures come
from the lesson's one graded run of its solutions (:func:`harness.graded`, shared with
tests/test_lessons.py: these tests are in the lesson's xdist group): nbgrader runs the source
notebook top to bottom in a fresh kernel, from a course cache that holds the set-up artefacts and
no trained model (a first run: the digits models are trained), with no network where bubblewrap
is installed, while the kernel's process tree is sampled every 50 ms (:class:`harness.MemoryProbe`).

The limit is checked on the memory a container limit cannot take back: the anonymous and shared
memory of the kernel and its subprocesses (RssAnon + RssShmem, summed over the tree). A kernel's
resident size also counts pages of the libraries' files (torch, TensorFlow, ...) mapped from the
page cache; the kernel maps more of them when more of those files happen to be cached (right after
`pip install`, or while another process uses the same libraries), so the same lesson measured
1.30 to 1.51 GB by that figure from one run to the next, and under a container limit those clean
pages are reclaimed rather than counted against the kernel. That figure (the highest VmHWM of any
process) and the tree's proportional set size are recorded beside the limit's in
build/lesson-memory.json, and printed.

The executed notebook of that run is kept in build/executed/ for the course website
(tools/site.py), so the site's build does not run the lessons again. Figures are rendered inline,
as in JupyterLab, so that the kept outputs hold them.
"""

from __future__ import annotations

import harness
import nbformat
import pytest

from tools import site

LIMIT_BYTES = harness.MEMORY_LIMIT_BYTES
RESULTS = harness.MEMORY
pytestmark = pytest.mark.notebook


def _params():
    return [
        pytest.param(name, marks=pytest.mark.xdist_group(name), id=name)
        for name in harness.lessons()
    ]


@pytest.mark.parametrize("lesson", _params())
def test_lesson_peak_memory_fits_binder(lesson):
    run = harness.graded(lesson)
    row = run.memory
    peak = row["private"]
    resident = max(row["tree"], row["process"])
    print(
        f"{lesson}: peak {peak / 1e6:.0f} MB anonymous + shared memory, {resident / 1e6:.0f} MB "
        f"resident with mapped library files, in {row['seconds'] or 0:.0f} s "
        f"({row['processes']} processes)"
    )
    assert row["processes"] >= 1 and peak > 50e6, f"{lesson}: the sampler saw no kernel ({row})"
    assert peak < LIMIT_BYTES, (
        f"{lesson}: peak memory {peak / 1e6:.0f} MB (anonymous + shared, over the kernel's "
        f"processes), expected under {LIMIT_BYTES / 1e6:.0f} MB "
        f"(Binder gives 1-2 GB for the server and kernels together)"
    )


@pytest.mark.parametrize("lesson", _params())
def test_memory_is_measured_on_a_first_run(lesson):
    """The measured run starts as a student's first: no trained model in its course cache."""
    run = harness.graded(lesson)
    assert run.cold_start == [], (
        f"{lesson}: expected the measured run to start with no trained model, got {run.cold_start}"
    )


@pytest.mark.parametrize("lesson", _params())
def test_the_run_is_kept_for_the_website(lesson):
    run = harness.graded(lesson)
    assert run.executed is not None, (
        f"{lesson}: the solutions' run had errors, so nothing was kept: {run.errors}"
    )
    kept = site.reusable_executed(lesson)
    assert kept is not None, f"{lesson}: build/executed/{lesson}.ipynb does not match the lesson"
    code = [c for c in kept.cells if c.cell_type == "code"]
    ran = [c for c in code if c.get("execution_count")]
    assert len(ran) == len(code), f"{lesson}: {len(code) - len(ran)} code cells did not run"
    shown = [
        o
        for c in code
        for o in c.get("outputs", [])
        if {"image/png", "image/svg+xml"} & set(o.get("data", {}))
        or any(tag in str(o.get("data", {}).get("text/html", "")) for tag in ("<svg", "<img"))
    ]
    assert shown, f"{lesson}: the kept run shows no figure (is matplotlib's backend inline?)"
    assert nbformat.validate(kept) is None
