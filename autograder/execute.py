"""Worker side: execute one submission's prepared notebook(s) in a sandboxed kernel.

A :class:`Job` carries everything a worker needs (the notebook with the instructor's test
cells already restored, the assignment's data files, the limits), so a worker needs no course
directory and no gradebook: the same job runs in a local process pool or on a Dask cluster.
The worker returns a :class:`JobResult`; the grader (the only writer of the gradebook) turns
it into scores.

The executor is nbgrader's own ``Execute`` preprocessor (so error and timeout handling are
nbgrader's), with:

- the kernel started by :class:`SandboxedKernelManager` (bubblewrap + rlimits, IPC sockets
  because the kernel has no network);
- a wall-time limit for the whole notebook, an output budget, a memory watch;
- a *guard* run in the kernel before the first and after every graded test cell: it raises a
  fresh random token, which must come back as an error (so error reporting still works) and
  reports library functions, IPython hooks and display machinery that the notebook replaced.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
import psutil
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader import utils as nbutils
from nbgrader.preprocessors import Execute
from traitlets.config import Config

from . import kernel_checks as kc
from . import sandbox as sb
from . import verdict as vd
from . import warm

#: Categories of a failed execution (``JobResult`` -> ``report.json``).
WALL, OUTPUT, CELL_TIMEOUT, KERNEL_DIED, KERNEL_BROKEN, TAMPERING, STARTUP, INTERNAL = (
    "wall-time",
    "output-limit",
    "cell-timeout",
    "kernel-died",
    "kernel-broken",
    "tampering",
    "kernel-start",
    "internal-error",
)
OUTPUT_MARK = "AUTOGRADER-OUTPUT-LIMIT"


@dataclass
class NotebookJob:
    name: str  #: notebook file name, e.g. ``00-template.ipynb``
    notebook: str  #: prepared notebook (nbformat 4 JSON), instructor's test cells restored
    plan: dict | None = None  #: the verdict plan (:class:`~autograder.verdict.VerdictPlan`)


@dataclass
class Job:
    """Everything a worker needs to execute one student's submission of one assignment."""

    student: str
    assignment: str
    notebooks: list[NotebookJob]
    files: dict[str, bytes]  #: data files for the working folder (relative path -> bytes)
    limits: sb.Limits
    config: dict  #: nbgrader configuration (traitlets Config as a plain dict)
    sandbox: str = "auto"  #: auto | bubblewrap | none
    threads: int = 1  #: threads per kernel (OMP/BLAS)
    guard: bool = True
    expose: tuple[str, ...] = ()
    #: the instructor's built course artefacts (:func:`course.artefacts.built_home`), shown
    #: read-only to both kernels so a lesson loads them instead of building them under the limits
    artefacts: str | None = None
    #: paths no sandbox mount may show (:func:`autograder.sandbox.check_mounts`)
    forbidden: tuple[str, ...] = ()
    #: the release's data files for the verdict kernel T (never the student's files)
    verdict_files: dict[str, bytes] = field(default_factory=dict)
    #: fork T from this worker's prepared process (:mod:`autograder.warm`) instead of starting
    #: it cold; for a worker that grades submission after submission (``grade``'s own pool)
    warm: bool = False

    def launcher(
        self,
        info: sb.SandboxInfo,
        jobdir: Path,
        files: dict[str, bytes],
        uid: int | None,
        network: sb.SharedNetwork | None,
    ) -> sb.KernelLauncher:
        """A kernel launcher under this job's limits, mounts and threads (S, T or a zygote)."""
        return sb.KernelLauncher(
            info,
            self.limits,
            jobdir,
            files=files,
            uid=uid,
            threads=self.threads,
            expose=self.expose,
            artefacts=self.artefacts,
            forbidden=self.forbidden,
            network=network,
        )


@dataclass
class NotebookOutcome:
    name: str
    ok: bool  #: ran to the end (scores can be taken from it)
    notebook: str | None  #: executed notebook (partial when not ok), JSON
    category: str | None = None
    reason: str | None = None
    failed_cell: int | None = None
    tampering: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_memory_mb: float = 0.0
    leftover_pids: list[int] = field(default_factory=list)
    kernel_log: str = ""
    notes: list[str] = field(default_factory=list)  #: what the verdict path noticed
    verdict: bool = False  #: test cells were run in the verdict kernel T


@dataclass
class JobResult:
    student: str
    assignment: str
    outcomes: list[NotebookOutcome]
    sandbox: dict
    host: str
    worker: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts its kernel through a :class:`~autograder.sandbox.KernelLauncher`."""

    def __init__(self, *, launcher: sb.KernelLauncher, **kw: Any):
        super().__init__(**kw)
        self.launcher = launcher
        if launcher.info.isolated:
            # no network inside: the kernel listens on Unix sockets in its own folder
            self.transport = "ipc"
            self.ip = str(launcher.sockdir / "k")
        self.connection_file = str(launcher.sockdir / "kernel.json")
        self.cache_ports = False

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return self.launcher.wrap(super().format_kernel_cmd(extra_arguments))

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        uid = self.launcher.uid
        if uid is not None and os.geteuid() == 0:
            os.chown(self.connection_file, uid, uid)
        kw.update(self.launcher.popen_kwargs())
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            process = getattr(self.provisioner, "process", None)
            if process is not None:
                self.launcher.started(process)
            else:
                self.launcher.close_files()

    async def _async_interrupt_kernel(self) -> None:
        if not self.launcher.interrupt():
            await super()._async_interrupt_kernel()

    interrupt_kernel = _async_interrupt_kernel

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        self.launcher.kill_all()
        with contextlib.suppress(Exception):
            await super()._async_kill_kernel(restart=restart)

    _kill_kernel = _async_kill_kernel


class ForkedKernelManager(SandboxedKernelManager):
    """T's kernel manager when T is forked from the worker's zygote (:mod:`autograder.warm`):
    the kernel is started by the zygote, in the zygote's sandbox, on this manager's connection
    file; the rest (client, interrupt, shutdown) is a sandboxed kernel's."""

    launcher: warm.ChildLauncher

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return AsyncKernelManager.format_kernel_cmd(self, extra_arguments)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        uid = self.launcher.uid
        if uid is not None and os.geteuid() == 0:
            os.chown(self.connection_file, uid, uid)
        args = [a for a in kernel_cmd if a.startswith("--")]
        child = await self.launcher.zygote.fork(self.connection_file, args)
        self.launcher.child = child
        self.launcher.kernel_pid = child.pid
        provisioner = self.provisioner
        assert provisioner is not None
        provisioner.process = child
        provisioner.pid = child.pid
        provisioner.pgid = child.pid
        self._reconcile_connection_info(provisioner.connection_info)


class GuardTimeout(Exception):
    pass


class _Abort(Exception):
    pass


def _is_test_cell(cell: nbformat.NotebookNode) -> bool:
    return (
        cell.cell_type == "code"
        and nbutils.is_grade(cell)
        and not nbutils.is_solution(cell)
        and bool(cell.source.strip())
    )


def describe_cell(nb: nbformat.NotebookNode, index: int | None) -> str:
    """``cell 12 (ex1-visible)`` or ``cell 5 (`while True: pass`)``: where something happened."""
    if index is None or not (0 <= index < len(nb.cells)):
        return "before the first cell"
    cell = nb.cells[index]
    grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    if grade_id:
        return f"cell {index + 1} ({grade_id})"
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    if len(first) > 60:
        first = first[:57] + "..."
    return f"cell {index + 1} (`{first}`)"


class GradingClient(Execute):
    """nbgrader's Execute preprocessor, driving a sandboxed kernel under limits."""

    def __init__(
        self,
        nb: nbformat.NotebookNode,
        *,
        launcher: sb.KernelLauncher,
        job: Job,
        plan: dict | None = None,
        launcher_t: sb.KernelLauncher | None = None,
        **kw,
    ):
        super().__init__(**kw)
        self.nb = nb
        self.launcher = launcher
        self.launcher_t = launcher_t
        self.plan = vd.VerdictPlan.from_dict(plan) if plan else None
        self.verdict: vd.VerdictKernel | None = None
        self.km_t: SandboxedKernelManager | None = None
        self.notes: list[str] = []
        self.messages_in_cell = 0
        self.sigint: str | None = None
        self._since: float | None = None
        self._verdict_start: asyncio.Future | None = None
        self.job = job
        self.limits = job.limits
        self._output_bytes = 0
        self._abort_reason: str | None = None
        self._abort_category: str | None = None
        self._current: int | None = None
        self.tampering: list[str] = []
        self.broken: str | None = None
        self.peak_memory_mb = 0.0
        self.store_widget_state = True
        self.marks: dict[str, float] = {}

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        for channel in (kc.shell_channel, kc.iopub_channel):
            _poll_in_slices(channel)
        self._count_frames(kc.session)
        return kc

    def _count_frames(self, session) -> None:
        """Count every message's raw size before it is decoded (a huge one never is)."""
        original = session.deserialize
        budget = self.limits.output_mb * 1024 * 1024

        def deserialize(msg_list, *args, **kw):
            self._output_bytes += sum(len(f) for f in msg_list)
            if self._output_bytes > budget:
                self._output_abort()
                raise _Abort()
            return original(msg_list, *args, **kw)

        session.deserialize = deserialize

    def create_kernel_manager(self) -> SandboxedKernelManager:
        kw = {"config": self.config}
        if self.kernel_name:
            kw["kernel_name"] = self.kernel_name
        self.km = SandboxedKernelManager(launcher=self.launcher, **kw)
        self.km.client_class = "jupyter_client.asynchronous.AsyncKernelClient"
        return self.km

    # -- limits ---------------------------------------------------------------------------

    def abort(self, category: str, reason: str) -> None:
        """Stop the notebook now: kill the kernel and everything it started."""
        if self._abort_reason is None:
            self._abort_category, self._abort_reason = category, reason
        self.launcher.kill_all()
        task = getattr(self, "task_poll_for_reply", None)
        if task is not None and not task.done():
            task.cancel()

    def process_message(self, msg: dict, cell: nbformat.NotebookNode, cell_index: int):
        if self._abort_reason is not None:
            if msg.get("msg_type") == "status" and msg["content"].get("execution_state") == "idle":
                return super().process_message(msg, cell, cell_index)
            return None
        self._count(msg)
        self.messages_in_cell += 1
        if self._abort_reason is not None:
            return None
        if msg.get("msg_type") == "error" and OUTPUT_MARK in str(msg["content"].get("evalue")):
            self._output_abort()
            return None
        return super().process_message(msg, cell, cell_index)

    def _output_abort(self) -> None:
        self.abort(
            OUTPUT,
            f"the notebook wrote more than {self.limits.output_mb:g} MB of output "
            f"({describe_cell(self.nb, self._current)}); printing less (no loops of prints, "
            "no huge arrays) fixes it",
        )

    def _count(self, msg: dict) -> None:
        """Messages are counted (raw, before decoding) by :meth:`_count_frames`."""
        if self._output_bytes > self.limits.output_mb * 1024 * 1024:
            self._output_abort()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            with contextlib.suppress(Exception):
                self.peak_memory_mb = max(self.peak_memory_mb, self.launcher.memory_mb())

    # -- the guard ------------------------------------------------------------------------

    async def _run_hidden(
        self, code: str, timeout: float, texts: list[str] | None = None, interrupt: bool = False
    ) -> tuple[dict | None, list[dict]]:
        """Run code in the kernel outside the notebook; returns (reply content, error outputs).

        ``texts`` collects what the code printed; with ``interrupt`` the kernel is interrupted
        at the timeout (as a slow cell is) and given 10 s more to stop.
        """
        assert self.kc is not None
        msg_id = self.kc.execute(code, silent=False, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + timeout
        reply, errors, idle = None, [], False
        interrupted = False
        channels = (self.kc.shell_channel, self.kc.iopub_channel)
        got = True
        while reply is None or not idle:
            if self._abort_reason is not None:
                raise _Abort()
            if time.monotonic() > deadline:
                if not interrupt or interrupted:
                    raise GuardTimeout()
                interrupted = True
                self.launcher.interrupt()
                deadline = time.monotonic() + 10
            if not got:  # one poll over both channels: no reply waits out the other's timeout
                await vd.wait_any(channels, min(0.5, max(0.0, deadline - time.monotonic())))
            got = False
            if reply is None:
                with contextlib.suppress(Empty, asyncio.TimeoutError):
                    msg = await self.kc.get_shell_msg(timeout=0)
                    got = True
                    if msg["parent_header"].get("msg_id") == msg_id:
                        reply = msg["content"]
            with contextlib.suppress(Empty, asyncio.TimeoutError):
                msg = await self.kc.get_iopub_msg(timeout=0)
                got = True
                self._count(msg)
                if msg["parent_header"].get("msg_id") == msg_id:
                    if msg["msg_type"] == "error":
                        errors.append(msg["content"])
                    elif msg["msg_type"] == "stream" and texts is not None:
                        texts.append(str(msg["content"].get("text", "")))
                    elif (
                        msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    ):
                        idle = True
            if not await self.km.is_alive():
                raise DeadKernelError("Kernel died")
        return reply, errors

    async def guard(self, where: str) -> None:
        nonce = "AUTOGRADER-GUARD-" + secrets.token_hex(12)
        timeout = min(30.0, float(self.timeout or 30))
        try:
            reply, errors = await self._run_hidden(
                kc.kernel_code(kc.autograder_guard, nonce), timeout
            )
        except GuardTimeout:
            self.broken = (
                f"the kernel stopped answering {where}: the integrity check did not finish in "
                f"{timeout:g} s (memory exhausted, or IPython hooks that block every cell)"
            )
            raise _Abort() from None
        reply = reply or {}
        raised = str(reply.get("evalue", "")).startswith(nonce)
        shown = [e for e in errors if str(e.get("evalue", "")).startswith(nonce)]
        if reply.get("status") == "error" and not raised:
            # the check itself failed (MemoryError, a broken interpreter): no verdict possible
            self.broken = (
                f"the kernel could not run the integrity check {where}: "
                f"{reply.get('ename')}: {str(reply.get('evalue'))[:200]}"
            )
            raise _Abort()
        if not raised or not shown:
            self.tampering.append(
                f"error reporting is disabled {where}: a deliberate error in the kernel did not "
                "come back as an error (tracebacks or exceptions are suppressed)"
            )
            return
        payload = str(shown[0]["evalue"])[len(nonce) :]
        try:
            names = json.loads(payload)
        except ValueError:
            self.tampering.append(f"the integrity check {where} returned garbage: {payload[:200]}")
            return
        for name in names:
            self.tampering.append(f"{name} was replaced by code from the notebook ({where})")

    # -- the verdict path: S answers, T judges -------------------------------------------

    async def _s_request(self, code: str, timeout: float, interrupt: bool = False) -> dict:
        """Run a bridge request in S; its reply (untrusted: the notebook can forge it)."""
        nonce = vd.new_nonce()
        texts: list[str] = []
        reply, errors = await self._run_hidden(
            code.replace("@NONCE@", nonce), timeout, texts=texts, interrupt=interrupt
        )
        text = "".join(texts)
        at = text.rfind(nonce)
        if at < 0:
            why = (
                errors[0].get("ename", "") + ": " + str(errors[0].get("evalue"))[:200]
                if errors
                else "no reply"
            )
            return {"error": f"the notebook's kernel did not answer the grader ({why})"}
        try:
            out = json.loads(text[at + len(nonce) :].split("\n", 1)[0])
        except ValueError:
            return {"error": "the notebook's kernel sent a malformed reply"}
        return out if isinstance(out, dict) else {"error": "malformed reply"}

    async def _s_describe(self, names: list[str]) -> str:
        code = f"{vd.BRIDGE_MODULE}.describe('@NONCE@', {names!r}, {self._since!r})\n"
        out = await self._s_request(code, float(self.timeout or 60))
        if "error" in out:
            why = out["error"]
            out = {"names": {n: {"kind": "opaque", "why": why} for n in names}}
        elif isinstance(out.get("now"), (int, float)):
            self._since = float(out["now"])
        return json.dumps(out)

    async def _s_call(self, request: str) -> str:
        timeout = float(self.timeout or 60)
        code = f"{vd.BRIDGE_MODULE}.call('@NONCE@', {request!r})\n"
        try:
            out = await self._s_request(code, timeout, interrupt=True)
        except GuardTimeout:
            try:
                name = json.loads(request).get("name")
            except ValueError:
                name = "?"
            self.abort(
                CELL_TIMEOUT,
                f"{name}(...), called by {describe_cell(self.nb, self._current)}, ran past the "
                f"{timeout:g} s cell limit and did not stop when interrupted (SIGINT ignored, or "
                "a loop in compiled code)",
            )
            raise _Abort() from None
        return json.dumps(out)

    async def _start_verdict(self) -> vd.VerdictKernel:
        assert self.launcher_t is not None and self.plan is not None
        kw = {"config": self.config}
        name = self.kernel_name or self.nb.metadata.get("kernelspec", {}).get("name")
        if name:
            kw["kernel_name"] = name
        forked = isinstance(self.launcher_t, warm.ChildLauncher)
        km = (ForkedKernelManager if forked else SandboxedKernelManager)(
            launcher=self.launcher_t, **kw
        )
        km.client_class = "jupyter_client.asynchronous.AsyncKernelClient"
        self.km_t = km
        await km.start_kernel(extra_arguments=["--HistoryManager.hist_file=:memory:"])
        kc = km.client()
        kc.start_channels()
        self._count_frames(kc.session)
        await kc.wait_for_ready(timeout=self.startup_timeout)
        self.launcher_t.lock_sockets()
        self.launcher_t.find_kernel()
        if self.launcher_t.network is not None:
            self.launcher_t.network.check(self.launcher_t.kernel_pid)
        kernel = vd.VerdictKernel(self.plan, km, kc, float(self.timeout or 60))
        await kernel.setup()
        await kernel.run_ahead()
        return kernel

    async def _verdict_cell(self, index: int, cell: nbformat.NotebookNode) -> None:
        """Run test cell ``index`` in T; its outputs are T's, never S's."""
        if self.verdict is None:
            assert self._verdict_start is not None
            try:
                self.verdict = await self._verdict_start
            except Exception as exc:
                raise vd.VerdictKernelDied(f"the grader's kernel did not start: {exc}") from exc
        gid = cell.metadata["nbgrader"]["grade_id"]
        outputs = await self.verdict.run_until(gid, self._s_describe, self._s_call)
        if self._abort_reason is not None:
            raise _Abort()
        self.code_cells_executed += 1
        cell.execution_count = self.code_cells_executed
        cell.outputs = outputs

    async def stop_verdict(self) -> None:
        task = self._verdict_start
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self.verdict is not None:
            with contextlib.suppress(Exception):
                self.verdict.kc.stop_channels()
        if self.km_t is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.km_t.shutdown_kernel(now=True), 10)
        if self.launcher_t is not None:
            self.launcher_t.kill_all()

    # -- the run --------------------------------------------------------------------------

    async def run(self) -> None:
        """Execute every cell; raises DeadKernelError/CellTimeoutError/_Abort on failure."""
        self.reset_execution_trackers()
        watch: asyncio.Task | None = None
        self.marks["launch"] = time.monotonic()
        if self.plan is not None and self.launcher_t is not None:
            # T starts while S does: the two kernel start-ups overlap
            self._verdict_start = asyncio.ensure_future(self._start_verdict())
        async with self.async_setup_kernel():
            assert self.kc is not None and self.km is not None
            self.marks["ready"] = time.monotonic()
            self.launcher.lock_sockets()
            self.launcher.find_kernel()
            if self.launcher.network is not None:  # before any cell of the notebook runs
                self.launcher.network.check(self.launcher.kernel_pid)
            watch = asyncio.ensure_future(self._watch())
            try:
                info = await self.async_wait_for_reply(await _maybe(self.kc.kernel_info()))
                if info is not None and "language_info" in info["content"]:
                    self.nb.metadata["language_info"] = info["content"]["language_info"]
                limit = int(self.limits.output_mb * 1024 * 1024)
                setup = kc.kernel_code(kc.autograder_setup, limit, OUTPUT_MARK)
                reply, _ = await self._run_hidden(setup, float(self.timeout or 60))
                if (reply or {}).get("status") != "ok":
                    raise RuntimeError(f"the kernel refused the grader's setup: {reply}")
                verdict = self._verdict_start is not None
                if verdict:
                    reply, _ = await self._run_hidden(vd.bridge_source(), 60.0)
                    if (reply or {}).get("status") != "ok":
                        raise RuntimeError(f"the kernel refused the grader's bridge: {reply}")
                    await self._s_describe([])  # the clock for "files written since"
                guarded_once = False
                for index, cell in enumerate(self.nb.cells):
                    self._current = index
                    test = _is_test_cell(cell)
                    if test and verdict:
                        await self._verdict_cell(index, cell)
                        continue
                    self.messages_in_cell = 0
                    if test and self.job.guard and not guarded_once:
                        await self.guard(f"before {describe_cell(self.nb, index)}")
                        guarded_once = True
                    try:
                        await self.async_execute_cell(
                            cell, index, execution_count=self.code_cells_executed + 1
                        )
                    except CellTimeoutError:
                        self.sigint = self.launcher.sigint_state()  # while the kernel lives
                        raise
                    if self._abort_reason is not None:
                        raise _Abort()
                    if test and self.job.guard:
                        await self.guard(f"after {describe_cell(self.nb, index)}")
                self._current = None
                if verdict and self.job.guard:
                    # defence in depth: what the notebook changed in its own kernel is reported
                    # for review; it cannot change the verdict, which T computed
                    await self.guard("after the last cell")
                    for finding in self.tampering:
                        self.notes.append(
                            f"{finding}; the tests ran in the grader's own kernel, so this did "
                            "not change the score"
                        )
                    self.tampering = []
                if self.verdict is not None:
                    self.notes.extend(self.verdict.notes)
                self.marks["cells_done"] = time.monotonic()
                self.peak_memory_mb = max(self.peak_memory_mb, self.launcher.memory_mb())
                self.set_widgets_metadata()
            finally:
                watch.cancel()


def _poll_in_slices(channel, step: float = 0.5) -> None:
    """Make a channel's ``get_msg`` poll in short slices up to its timeout.

    A message that arrives without waking the poller (nbclient#312: executions stalling after
    widget cells until the cell timeout) is then picked up within ``step`` seconds instead.
    """
    original = channel.get_msg

    async def get_msg(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = step if deadline is None else max(0.0, min(step, deadline - time.monotonic()))
            try:
                return await original(timeout=wait)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


async def _maybe(value):
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


def _execute_one(
    job: Job, nbjob: NotebookJob, info: sb.SandboxInfo, uid: int | None, uid_t: int | None = None
) -> NotebookOutcome:
    t0 = time.monotonic()
    jobdir = Path(tempfile.mkdtemp(prefix=f"{JOBDIR_PREFIX}{os.getpid()}-"))
    os.chmod(jobdir, 0o711)
    nb = nbformat.reads(nbjob.notebook, as_version=4)
    network = None
    zygote = None
    zygote_note = None
    if nbjob.plan is not None and info.isolated and job.warm:
        try:
            name = nb.metadata.get("kernelspec", {}).get("name")
            zygote = warm.zygote_for(job, nbjob, info, name, JOBDIR_PREFIX)
        except Exception as exc:  # T starts cold, as without a zygote
            zygote_note = f"the verdict kernel started cold: {exc}"[:300]
    if zygote is not None:
        network = zygote.network
    elif nbjob.plan is not None and info.isolated:
        # S and T share one loopback (a test's server in T, the student's client in S) and
        # nothing else: a network namespace of the submission's own
        try:
            network = sb.SharedNetwork.start()
        except RuntimeError as exc:
            shutil.rmtree(jobdir, ignore_errors=True)
            return NotebookOutcome(
                name=nbjob.name,
                ok=False,
                notebook=nbjob.notebook,
                category=STARTUP,
                reason=f"the kernels did not start: {exc}",
                verdict=True,
            )
    launcher = job.launcher(info, jobdir, job.files, uid, network)
    launcher.prepare()
    launcher_t: sb.KernelLauncher | warm.ChildLauncher | None = None
    if zygote is not None:
        launcher_t = warm.ChildLauncher(zygote)
        launcher_t.prepare()
    elif nbjob.plan is not None:
        (jobdir / "verdict").mkdir()
        os.chmod(jobdir / "verdict", 0o711)
        launcher_t = job.launcher(info, jobdir / "verdict", job.verdict_files, uid_t, network)
        launcher_t.prepare()
    config = Config(job.config)
    client = GradingClient(
        nb, launcher=launcher, job=job, config=config, plan=nbjob.plan, launcher_t=launcher_t
    )
    if job.limits.cell_timeout_s is not None:
        client.timeout = int(job.limits.cell_timeout_s)
    client.interrupt_on_timeout = True
    client.allow_errors = True
    client.shutdown_kernel = "immediate"
    outcome = NotebookOutcome(name=nbjob.name, ok=False, notebook=None)
    loop = asyncio.new_event_loop()
    timer = loop.call_later(
        max(1.0, job.limits.wall_s),
        lambda: client.abort(
            WALL,
            f"the notebook ran past the wall-time limit of {job.limits.wall_s:g} s "
            f"(stopped in {describe_cell(client.nb, client._current)}); an infinite loop, a long "
            "sleep or very slow code",
        ),
    )
    try:
        loop.run_until_complete(client.run())
        outcome.ok = True
    except (_Abort, DeadKernelError, CellTimeoutError, RuntimeError, Exception) as exc:
        outcome.failed_cell = client._current
        where = describe_cell(client.nb, client._current)
        if client._abort_reason is not None:
            outcome.category, outcome.reason = client._abort_category, client._abort_reason
        elif isinstance(exc, vd.VerdictKernelDied):
            outcome.category = KERNEL_DIED
            died = launcher_t.exit_description() if launcher_t is not None else None
            outcome.reason = (
                f"{exc} ({died or 'no answer'}) while running {where}: the grader's kernel "
                "runs only the instructor's cells, so the notebook's values (a huge array?) "
                "exhausted it"
            )
        elif client.broken is not None:
            outcome.category, outcome.reason = KERNEL_BROKEN, client.broken
        elif isinstance(exc, CellTimeoutError):
            outcome.category = CELL_TIMEOUT
            state = client.sigint
            if state is not None:
                why = f"the notebook {state} SIGINT, the interrupt signal"
            else:
                why = (
                    "SIGINT was not ignored: the kernel was busy in compiled code, a handler "
                    "swallowed KeyboardInterrupt, or it was still sending output "
                    f"({client.messages_in_cell} messages in this cell)"
                )
            outcome.reason = (
                f"{where} ran past the {client.timeout} s cell limit and did not stop when "
                f"interrupted ({why})"
            )
        elif isinstance(exc, DeadKernelError) or (
            client.km is not None and launcher.exit_description() is not None
        ):
            outcome.category = KERNEL_DIED
            died = launcher.exit_description() or "died"
            outcome.reason = f"the kernel {died} while running {where}"
            limit = job.limits.memory_mb
            if client.peak_memory_mb > 0.7 * limit or "MemoryError" in launcher.log_tail():
                outcome.reason += (
                    f"; it used up to {client.peak_memory_mb:.0f} MB of the {limit} MB memory "
                    "limit: probably out of memory"
                )
        elif client.kc is None and client.code_cells_executed == 0:
            outcome.category = STARTUP
            outcome.reason = f"the kernel did not start: {exc}"
        else:
            outcome.category = INTERNAL
            outcome.reason = f"grading error {type(exc).__name__}: {exc}"
            outcome.kernel_log = traceback.format_exc()[-2000:]
    finally:
        timer.cancel()
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.wait_for(client.stop_verdict(), 20))
        if launcher_t is not None:
            launcher_t.kill_all()
            outcome.leftover_pids += sorted(launcher_t.killed)
            launcher_t.close_files()
        with contextlib.suppress(Exception):
            if client.km is not None and client.kc is not None:
                loop.run_until_complete(asyncio.wait_for(client._async_cleanup_kernel(), 15))
        atexit.unregister(client._cleanup_kernel)
        launcher.kill_all()
        outcome.leftover_pids += sorted(launcher.killed)
        launcher.close_files()
        if network is not None and zygote is None:  # a zygote's namespace outlives the job
            network.close()
        with contextlib.suppress(Exception):
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:  # nbclient's pollers, cut short by an abort
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    outcome.tampering = list(client.tampering)
    outcome.notes = list(dict.fromkeys(client.notes + ([zygote_note] if zygote_note else [])))
    outcome.verdict = nbjob.plan is not None
    outcome.peak_memory_mb = round(client.peak_memory_mb, 1)
    outcome.kernel_log = outcome.kernel_log or launcher.log_tail(1500)
    outcome.notebook = nbformat.writes(client.nb)
    marks = {"prepare": t0, **client.marks, "end": time.monotonic()}
    order = [k for k in ("prepare", "launch", "ready", "cells_done", "end") if k in marks]
    outcome.seconds = {
        f"{a}->{b}": round(marks[b] - marks[a], 3) for a, b in zip(order, order[1:], strict=False)
    }
    outcome.seconds["total"] = round(marks["end"] - t0, 3)
    shutil.rmtree(jobdir, ignore_errors=True)
    return outcome


JOBDIR_PREFIX = "autograder-job-"
_CLEANED: list[bool] = []


def clean_stale_jobs() -> list[str]:
    """Kill the sandboxes and remove the job folders left by workers that were killed (the
    folder names its worker's pid; each sandboxed process, its worker's pid and start time)."""
    removed = [f"process {pid}" for pid in sb.kill_orphans()]
    for path in Path(tempfile.gettempdir()).glob(f"{JOBDIR_PREFIX}*"):
        pid = path.name[len(JOBDIR_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def run_job(job: Job) -> JobResult:
    """Execute a job's notebooks one after the other, each in a fresh sandboxed kernel.

    This is the function executors run (``ProcessPoolExecutor`` or a Dask cluster).
    """
    t0 = time.monotonic()
    if not _CLEANED:
        _CLEANED.append(True)
        clean_stale_jobs()
    info = sb.probe(job.sandbox)
    outcomes = []
    two = any(nbjob.plan is not None for nbjob in job.notebooks)
    with contextlib.ExitStack() as stack:
        uid = stack.enter_context(sb.uid_slot()) if info.privileged else None
        uid_t = stack.enter_context(sb.uid_slot()) if info.privileged and two else None
        for nbjob in job.notebooks:
            outcomes.append(_execute_one(job, nbjob, info, uid, uid_t))
    return JobResult(
        student=job.student,
        assignment=job.assignment,
        outcomes=outcomes,
        sandbox=info.to_dict(),
        host=socket.gethostname(),
        worker=os.getpid(),
        seconds=round(time.monotonic() - t0, 3),
    )


def worker_init() -> None:
    """Process-pool initializer: the worker dies with the grader (and its sandboxes with it)."""
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    # Ctrl-C goes to the grader, which cancels the run; workers are killed with it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # forked from a process that ran jobs itself: its zygotes are not ours, and this worker
    # sweeps what killed workers left before its own first job
    warm.forget_inherited()
    _CLEANED.clear()
    # a worker that ends normally stops its zygotes and removes their folders (a pool's worker
    # leaves through os._exit: atexit would not run, multiprocessing's finalizers do)
    from multiprocessing import util

    util.Finalize(None, warm.close_all, exitpriority=10)
