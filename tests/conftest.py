import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def pytest_terminal_summary(terminalreporter):
    """Print each lesson's measured execution time (also kept in build/lesson-timings.json)."""
    if not harness.TIMINGS.exists():
        return
    data = json.loads(harness.TIMINGS.read_text())
    terminalreporter.section("lesson execution time (solutions, nbgrader autograde)")
    for lesson, row in sorted(data.items()):
        secs = row["seconds"]
        shown = f"{secs:6.1f} s" if secs is not None else "   n/a"
        net = "network blocked" if row["network_blocked"] else "NETWORK NOT BLOCKED (no bubblewrap)"
        terminalreporter.write_line(
            f"{lesson:28s} {shown}  (budget {row['budget_s']:.0f} s, {net})"
        )
