import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import pytest  # noqa: E402

_MADE: list[str] = []  # the artefact folder this process made (the controller), removed at the end


def pytest_configure(config):
    """One private artefact folder per test session, for every xdist worker: the controller
    makes it before the workers start, and they inherit ``$COURSE_TEST_ARTEFACTS``. A folder
    given in the environment is used as it is (and kept)."""
    if hasattr(config, "workerinput") or os.environ.get(harness.ARTEFACTS_ENV):
        return
    path = tempfile.mkdtemp(prefix="course-artefacts-")
    os.environ[harness.ARTEFACTS_ENV] = path
    _MADE.append(path)


def _module_fixture_file(item) -> str | None:
    """The test file of ``item`` when it uses a module-scoped fixture (a server, a browser, a
    trained model...), else None."""
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info else ():
        if defs and defs[-1].scope == "module":
            return item.nodeid.split("::")[0]
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under ``--dist loadgroup`` (make test), keep each xdist group in one worker, and make the
    tests of a file that use its module-scoped fixtures a group, so that each such fixture (a
    JupyterLab and Chromium, a server, trained and quantized models) is built by one worker only.

    pytest-xdist 3.8 names the group by appending ``@GROUP`` to ``item._nodeid``, which pytest 9
    no longer reads (the node id is ``item._id``): the suffix was lost, loadgroup behaved as load,
    and a lesson's tests, spread over both workers, had each worker grade the lesson (most lessons
    graded twice). The suffix is put here where pytest 9 keeps the id.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    for item in items:
        groups = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
        if not groups and (path := _module_fixture_file(item)):
            groups = {path}
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(groups))}")


def pytest_unconfigure(config):
    for path in _MADE:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop(harness.ARTEFACTS_ENV, None)


def pytest_terminal_summary(terminalreporter):
    """Print the artefacts' build, each lesson's measured execution time and peak memory (kept in
    build/artefacts-build.json, build/lesson-timings.json and build/lesson-memory.json)."""
    row = (
        json.loads(harness.ARTEFACTS_RECORD.read_text())
        if harness.ARTEFACTS_RECORD.exists()
        else {}
    )
    if row.get("cache", "").startswith(
        os.environ.get(harness.ARTEFACTS_ENV) or "//"
    ):  # this session's
        terminalreporter.section("course artefacts (python -m course.artefacts, once)")
        state = "built" if row["returncode"] == 0 else f"FAILED (exit {row['returncode']})"
        terminalreporter.write_line(
            f"{state} in {row['seconds']:.1f} s: {', '.join(row['built']) or 'no builder'}"
        )
    if not harness.TIMINGS.exists():
        return
    data = json.loads(harness.TIMINGS.read_text())
    memory = json.loads(harness.MEMORY.read_text()) if harness.MEMORY.exists() else {}
    terminalreporter.section(
        "lesson execution time and peak memory (solutions, nbgrader autograde)"
    )
    for lesson, row in sorted(data.items()):
        secs = row["seconds"]
        shown = f"{secs:6.1f} s" if secs is not None else "   n/a"
        net = "network blocked" if row["network_blocked"] else "NETWORK NOT BLOCKED (no bubblewrap)"
        peak = memory.get(lesson, {}).get("peak_mb")
        mem = f"{peak:5d} MB" if peak is not None else "     n/a"
        terminalreporter.write_line(
            f"{lesson:28s} {shown}  {mem}  (budget {row['budget_s']:.0f} s, "
            f"{harness.MEMORY_LIMIT_BYTES / 1e6:.0f} MB, {net})"
        )
