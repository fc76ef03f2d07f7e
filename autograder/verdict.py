"""The verdict path: test cells run in a kernel that never runs a line of the student's code.

Each submission runs in two sandboxed kernels:

- **S**, the student's kernel, runs the student's notebook (every cell except the test cells);
- **T**, the verdict kernel, runs only the instructor's cells, read by the grader from the
  release and the gradebook: the test cells, hidden tests included, and the narrative and
  setup cells they depend on (:func:`needed_cells`; never the solution cells). Hidden tests
  never reach S.

Before each cell of T, the grader finds (from the cell's syntax tree) the names it uses that
the instructor's solution cells define, asks S what they are, and binds them in T: data
(numbers, strings, arrays, ONNX models...) arrives as a value decoded by a strict decoder
(:mod:`autograder.bridge`: no pickle), a function becomes a proxy whose calls are sent to S with
their arguments as data (objects of T that are not data are sent as a reference to S's object
of the same global name), and anything else becomes a placeholder that fails the test with the
reason. Files the notebook wrote in its working folder, or at paths passed to its functions,
are copied into T (never over a file T already had). The outcome of each test cell is the
outputs T produced: nothing S does can change which test cells ran, what they asserted, or how
their outcome was recorded; S can only give answers.

This module holds the grader's side: the plan (built by the trusted grader in ``prepare``) and
the driver of T (used by :mod:`autograder.execute` in the worker). In ``grade``'s own process
pool, each worker forks T from a process that has imported what the plan imports
(:mod:`autograder.warm`) instead of starting it cold; T is driven the same either way.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

import nbformat

from . import bridge

BRIDGE_MODULE = "autograder_bridge"


def bridge_source() -> str:
    """Code that installs :mod:`autograder.bridge` in a kernel as the module ``autograder_bridge``."""
    text = Path(bridge.__file__).read_text()
    return (
        "def _autograder_install(text):\n"
        "    import sys, types\n"
        f"    mod = types.ModuleType({BRIDGE_MODULE!r})\n"
        f"    mod.__file__ = '<{BRIDGE_MODULE}>'\n"
        f"    sys.modules[{BRIDGE_MODULE!r}] = mod\n"
        "    exec(compile(text, mod.__file__, 'exec'), mod.__dict__)\n"
        "    return mod\n"
        f"{BRIDGE_MODULE} = _autograder_install({text!r})\n"
        "del _autograder_install\n"
    )


# -- the plan (grader side, trusted) --------------------------------------------------------------


def defined_names(source: str) -> set[str]:
    """Names a cell binds at top level: functions, classes and assigned variables (not imports
    or loop variables: T has its own modules, and a loop variable is no answer)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()

    def targets(node) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                names.add(sub.id)

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                targets(t)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets(node.target)
    return names


def used_names(source: str) -> set[str]:
    """Every name a cell reads (also inside its functions: they run with T's globals)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _base_name(node: ast.AST) -> str | None:
    """``rows`` for ``rows``, ``rows[0].x`` or ``rows.append``; None for anything else."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _changed_names(tree: ast.AST) -> set[str]:
    """Names a cell's own statements may change in place: ``d[k] = v``, ``obj.attr = v``,
    ``del d[k]``, ``d[k] += 1`` and statements that call a method, ``rows.append(x)``,
    ``model.eval()``, ``np.random.seed(0)`` (not in function bodies: they run when called)."""
    changed: set[str] = set()
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Attribute, ast.Subscript)) and not isinstance(node.ctx, ast.Load):
            changed.add(_base_name(node) or "")
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if isinstance(node.value.func, ast.Attribute):
                changed.add(_base_name(node.value.func) or "")
        stack.extend(ast.iter_child_nodes(node))
    return changed - {""}


def _bound_and_read(source: str) -> tuple[set[str], set[str]] | None:
    """Every name a cell binds or may change (imports, definitions, assignments, also inside
    its functions; see :func:`_changed_names`) and every name it reads; None when Python cannot
    parse it (an IPython magic)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    bound: set[str] = _changed_names(tree)
    read: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound |= set(node.names)
    return bound, read


def needed_cells(sources: list[str], always: list[bool]) -> list[bool]:
    """Which cells a notebook's graded cells depend on, by the names they bind and read.

    ``always[i]`` marks the cells that must run (tests, solutions). Working back from the last
    cell, any other cell is needed when it binds or changes in place a name that a needed cell
    after it reads, or when it cannot be parsed. The rest (the demonstrations: benchmarks,
    plots, widgets, whose results no graded cell reads) can be left out of a run that only
    grades.

    >>> needed_cells(["import numpy as np", "x = np.ones(3)", "plot(x)", "assert f(x)"],
    ...              [False, False, False, True])
    [True, True, False, True]
    """
    needed: set[str] = set()
    keep = [False] * len(sources)
    for i in range(len(sources) - 1, -1, -1):
        names = _bound_and_read(sources[i])
        keep[i] = always[i] or names is None or bool(names[0] & needed)
        if keep[i] and names is not None:
            needed |= names[1]
    return keep


@dataclass
class VerdictCell:
    grade_id: str | None  #: the test's grade id, None for a narrative/setup cell
    source: str
    uses: list[str]  #: names of the notebook this cell reads (bound from S before it runs)


@dataclass
class VerdictPlan:
    """The instructor's cells T runs, in the instructor's order."""

    cells: list[VerdictCell]
    student_names: list[str]

    def to_dict(self) -> dict:
        return {
            "cells": [c.__dict__ for c in self.cells],
            "student_names": self.student_names,
        }

    @classmethod
    def from_dict(cls, data: dict) -> VerdictPlan:
        return cls([VerdictCell(**c) for c in data["cells"]], list(data["student_names"]))


def is_test(cell: dict) -> bool:
    return bool(cell.get("grade")) and not cell.get("solution") and cell["cell_type"] == "code"


def make_plan(instructor_nb: nbformat.NotebookNode, gradebook_cells: list[dict]) -> VerdictPlan:
    """The plan for one notebook: tests of the gradebook, the release's cells they need.

    ``instructor_nb`` is the release (or source) notebook from the course folder; its solution
    cells are skipped (their names are what T fetches from S); its test cells are replaced by
    the gradebook's copies (with the hidden tests); of its other cells, only those the tests
    depend on are kept (:func:`needed_cells`).
    """
    by_id = {c["name"]: c for c in gradebook_cells}
    student: set[str] = set()
    for c in gradebook_cells:
        if c.get("solution") and c["cell_type"] == "code":
            student |= defined_names(c["source"])
    cells: list[VerdictCell] = []
    seen_tests: set[str] = set()
    for cell in instructor_nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        gid = meta.get("grade_id")
        ref = by_id.get(gid) if gid else None
        if meta.get("solution") or (ref is not None and ref.get("solution")):
            continue
        if ref is not None and is_test(ref):
            source, grade_id = ref["source"], gid
            seen_tests.add(gid)
        else:
            source, grade_id = cell.source, None
        if not source.strip():
            continue
        cells.append(VerdictCell(grade_id, source, sorted(used_names(source) & student)))
    for c in gradebook_cells:  # tests the release notebook lacks: at the end, as nbgrader would
        if is_test(c) and c["name"] not in seen_tests:
            uses = sorted(used_names(c["source"]) & student)
            cells.append(VerdictCell(c["name"], c["source"], uses))
    # T runs only what the tests depend on: a demonstration no test reads (a benchmark, a plot,
    # a widget) would cost every submission its time again and decide nothing
    keep = needed_cells([c.source for c in cells], [c.grade_id is not None for c in cells])
    cells = [c for c, k in zip(cells, keep, strict=True) if k]
    return VerdictPlan(cells, sorted(student))


# -- the driver of T (worker side) ----------------------------------------------------------------


class VerdictKernelDied(RuntimeError):
    """T died or stopped answering: no verdict can be given for the rest of the notebook."""


@dataclass
class VerdictKernel:
    """Runs the plan's cells in T, one test at a time, asking S (``ask``) for the notebook's names."""

    plan: VerdictPlan
    km: object  #: a started SandboxedKernelManager
    kc: object  #: its started AsyncKernelClient
    timeout: float  #: per cell
    next_cell: int = 0
    count: int = 0
    notes: list[str] = field(default_factory=list)

    async def execute(self, code: str, on_request=None, timeout: float | None = None):
        """Run code in T; returns (status, outputs). ``on_request(prompt)`` answers input()."""
        kc = self.kc
        msg_id = kc.execute(code, silent=False, store_history=False, allow_stdin=True)
        deadline = time.monotonic() + (timeout or self.timeout)
        outputs: list = []
        status, idle, interrupted = None, False, False
        channels = (kc.iopub_channel, kc.stdin_channel, kc.shell_channel)
        got = True
        while status is None or not idle:
            if time.monotonic() > deadline:
                if interrupted:
                    raise VerdictKernelDied("the grader's kernel did not stop when interrupted")
                interrupted = True
                await _maybe(self.km.interrupt_kernel())
                deadline = time.monotonic() + 10
            if not got:
                await wait_any(channels, min(0.5, max(0.0, deadline - time.monotonic())))
            got = False
            with contextlib.suppress(Empty, asyncio.TimeoutError):
                msg = await kc.get_iopub_msg(timeout=0)
                got = True
                if msg["parent_header"].get("msg_id") == msg_id:
                    kind = msg["msg_type"]
                    if kind == "status" and msg["content"]["execution_state"] == "idle":
                        idle = True
                    elif kind in ("stream", "display_data", "execute_result", "error"):
                        outputs.append(nbformat.v4.output_from_msg(msg))
                    elif kind == "clear_output":
                        outputs.clear()
            with contextlib.suppress(Empty, asyncio.TimeoutError):
                msg = await kc.get_stdin_msg(timeout=0)
                got = True
                if msg["msg_type"] == "input_request":
                    prompt = msg["content"].get("prompt", "")
                    answer = json.dumps({"error": "no input in the grader's kernel"})
                    if on_request is not None and prompt.startswith(bridge.REQUEST):
                        answer = await on_request(prompt[len(bridge.REQUEST) :])
                        deadline = time.monotonic() + (timeout or self.timeout)
                    kc.input(answer)
            if status is None:
                with contextlib.suppress(Empty, asyncio.TimeoutError):
                    msg = await kc.get_shell_msg(timeout=0)
                    got = True
                    if msg["parent_header"].get("msg_id") == msg_id:
                        status = msg["content"].get("status", "error")
            if not got and not await self.km.is_alive():
                raise VerdictKernelDied("the grader's kernel died")
        if interrupted:
            outputs.append(
                nbformat.v4.new_output(
                    "error",
                    ename="TimeoutError",
                    evalue=f"the test ran past the {self.timeout:g} s cell limit",
                    traceback=[],
                )
            )
            status = "error"
        return status, outputs

    async def setup(self) -> None:
        code = bridge_source() + f"{BRIDGE_MODULE}.setup_verdict_kernel()\n"
        status, outputs = await self.execute(code, timeout=120)
        if status != "ok":
            raise RuntimeError(f"the grader's kernel refused the bridge: {outputs}")

    async def _bind(self, names: list[str], ask) -> None:
        answer = await ask(names)
        with contextlib.suppress(ValueError, AttributeError):
            parsed = json.loads(answer)
            if not names and not parsed.get("files"):
                return  # nothing to bind: T need not be asked
        code = f"{BRIDGE_MODULE}.bind({answer!r})\n"
        status, outputs = await self.execute(code, timeout=120)
        if status != "ok":
            self.notes.append(f"binding {names} failed: {outputs}"[:300])

    async def run_ahead(self) -> None:
        """Run the leading cells that need nothing of the notebook (imports, data, models),
        while the student's kernel works through the notebook."""
        while self.next_cell < len(self.plan.cells):
            cell = self.plan.cells[self.next_cell]
            if cell.grade_id is not None or cell.uses:
                return
            self.next_cell += 1
            await self.execute(cell.source)

    async def run_until(self, grade_id: str, ask, call) -> list:
        """Run T's cells up to the test ``grade_id``; returns the test's outputs."""
        first = True
        while self.next_cell < len(self.plan.cells):
            cell = self.plan.cells[self.next_cell]
            self.next_cell += 1
            # S has run the notebook up to this test: one look at its files before the first
            # cell; then only cells that read the notebook's names (and tests) ask S again
            if first or cell.uses or cell.grade_id is not None:
                await self._bind(cell.uses, ask)
            first = False
            status, outputs = await self.execute(cell.source, on_request=call)
            if cell.grade_id == grade_id:
                self.count += 1
                return outputs
        return [
            nbformat.v4.new_output(
                "error",
                ename="AutograderError",
                evalue=f"test {grade_id} is not in the instructor's notebook (or came twice)",
                traceback=[],
            )
        ]


async def wait_any(channels, timeout: float) -> None:
    """Return when one of the kernel client's ``channels`` has a message, or after ``timeout``
    seconds: one poll over all the sockets, so a reply on one channel is never waiting out a
    timeout on another."""
    import zmq
    import zmq.asyncio

    poller = zmq.asyncio.Poller()
    for channel in channels:
        poller.register(channel.socket, zmq.POLLIN)
    await poller.poll(max(0, int(timeout * 1000)))


async def _maybe(value):
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


def new_nonce() -> str:
    return "AUTOGRADER-REPLY-" + secrets.token_hex(12) + ":"
