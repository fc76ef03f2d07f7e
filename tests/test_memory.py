"""Binder's limits: every lesson, solutions included, peaks under 1.5 GB of memory.

mybinder.org gives a session 1 to 2 GB for the server and the kernels together. Each source
notebook runs top to bottom in a fresh kernel (nbclient, a cold model cache, no network where
bubblewrap is installed) while the kernel's process tree is sampled every 50 ms.

The limit is checked on the memory a container limit cannot take back: the anonymous and shared
memory of the kernel and its subprocesses (RssAnon + RssShmem, summed over the tree). A kernel's
resident size also counts pages of the libraries' files (torch, TensorFlow, ...) mapped from the
page cache; the kernel maps more of them when more of those files happen to be cached (right after
`pip install`, or while another process uses the same libraries), so the same lesson measured
1.30 to 1.51 GB by that figure from one run to the next, and under a container limit those clean
pages are reclaimed rather than counted against the kernel. That figure (the highest VmHWM of any
process) and the tree's proportional set size are recorded beside the limit's in
build/lesson-memory.json, and printed.

The executed notebook is kept in build/executed/ for the course website (tools/site.py), so the
site's build does not run the lessons a second time. Figures are rendered inline, as in
JupyterLab, so that the kept outputs hold them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import harness
import nbformat
import pytest

from tools import site

LIMIT_BYTES = 1.5e9
RESULTS = harness.BUILD / "lesson-memory.json"

PROBE = r"""
import json, os, shutil, sys, threading, time
from pathlib import Path
import nbformat, psutil
from nbclient import NotebookClient

notebook, work, executed = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
folder = work / notebook.parent.name
shutil.copytree(notebook.parent, folder)
nb = nbformat.read(folder / notebook.name, as_version=4)
client = NotebookClient(nb, timeout=120, kernel_name="onnx-and-beyond",
                        resources={"metadata": {"path": str(folder)}})

def status(pid, *fields):  # bytes of these /proc/PID/status fields, 0 once the process is gone
    try:
        text = open(f"/proc/{pid}/status").read()
    except OSError:
        return 0
    return sum(
        int(line.split()[1]) * 1024
        for line in text.splitlines()
        if line.split(":")[0] in fields
    )

def hwm(pid):
    return status(pid, "VmHWM")

peak = {"private": 0, "tree": 0, "process": 0, "processes": 0}
stop = threading.Event()

def sample(pid):
    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        total = private = 0
        for p in procs:
            try:
                private += status(p.pid, "RssAnon", "RssShmem")
                total += p.memory_full_info().pss
                peak["process"] = max(peak["process"], hwm(p.pid))
            except psutil.Error:
                pass
        peak["private"] = max(peak["private"], private)
        peak["tree"] = max(peak["tree"], total)
        peak["processes"] = max(peak["processes"], len(procs))
        stop.wait(0.05)

t0 = time.monotonic()
with open(work / "kernel.log", "wb") as log:
    with client.setup_kernel(stdout=log, stderr=log):
        pid = client.km.provisioner.process.pid
        sampler = threading.Thread(target=sample, args=(pid,), daemon=True)
        sampler.start()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
        stop.set()
        sampler.join()
        peak["process"] = max(peak["process"], hwm(pid))
        client.set_widgets_metadata()  # the widgets' state, for the site's static copies
peak["seconds"] = time.monotonic() - t0
nbformat.write(nb, executed)
print("RESULT " + json.dumps(peak))
"""


def _record(lesson: str, row: dict) -> None:
    harness.BUILD.mkdir(exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[lesson] = row
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("lesson", harness.lessons())
def test_lesson_peak_memory_fits_binder(lesson, tmp_path):
    env = dict(
        os.environ,
        COURSE_CACHE_DIR=str(tmp_path / "cache"),  # a first run: models are trained
        MPLBACKEND=site.INLINE_BACKEND,
        PYTHONWARNINGS="ignore",
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    )
    work = tmp_path / "work"
    work.mkdir()
    stamp = site.fingerprint(lesson)
    executed = tmp_path / "executed.ipynb"
    cmd = [
        sys.executable,
        "-c",
        PROBE,
        str(harness.notebook_path(lesson)),
        str(work),
        str(executed),
    ]
    proc = subprocess.run(
        harness.sandbox_prefix() + cmd,
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        cwd=harness.ROOT,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"{lesson}: running the solution notebook failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    site.keep_executed(lesson, nbformat.read(executed, as_version=4), stamp)
    row = json.loads(lines[-1].removeprefix("RESULT "))
    peak = row["private"]
    resident = max(row["tree"], row["process"])
    row.update(
        peak_mb=round(peak / 1e6),
        resident_peak_mb=round(resident / 1e6),
        limit_mb=round(LIMIT_BYTES / 1e6),
    )
    _record(lesson, row)
    print(
        f"{lesson}: peak {peak / 1e6:.0f} MB anonymous + shared memory, {resident / 1e6:.0f} MB "
        f"resident with mapped library files, in {row['seconds']:.0f} s "
        f"({row['processes']} processes)"
    )
    assert row["processes"] >= 1 and peak > 50e6, f"{lesson}: the sampler saw no kernel ({row})"
    assert peak < LIMIT_BYTES, (
        f"{lesson}: peak memory {peak / 1e6:.0f} MB (anonymous + shared, over the kernel's "
        f"processes), expected under {LIMIT_BYTES / 1e6:.0f} MB "
        f"(Binder gives 1-2 GB for the server and kernels together)"
    )
