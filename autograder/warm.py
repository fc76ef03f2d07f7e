"""A prepared verdict kernel per worker: T forked from a process that has imported what the
tests import, instead of started cold for each submission.

Starting the verdict kernel T costs every submission a kernel start-up and the imports of the
instructor's cells (scikit-learn alone is about 0.9 s of CPU), on top of the student's kernel S
doing the same. With a process pool, each worker keeps one **zygote** per notebook: a process in
a sandbox of its own (the same limits, mounts and release files as a cold T) that imports
IPython's kernel and the modules the plan's leading cells import (:func:`plan_imports`), and
nothing else: no cell runs there, and nothing of any submission ever reaches it. For each submission the zygote forks; the child
starts a fresh IPython kernel and is driven exactly like a cold T. When the child ends, the
zygote kills every other process of its sandbox and returns the sandbox's writable folders
(``/tmp``, ``/dev/shm``, the home and working folder) to their state before the first fork, so
no submission sees a file or a process of another; memory is the fork's copy, so none sees a
value of another either. The submission's S shares the zygote's network namespace (loopback
only), one submission after the other.

A zygote is used only where the fork is known to be safe: modules that start threads or gRPC
at import (TensorFlow, JAX, ...) are never imported before a fork, and a zygote whose process
has more threads after its imports than ONNX Runtime's one is not used; the worker then starts
T cold, as without a zygote. The ``grade`` command turns zygotes on for its own process pool
(:attr:`autograder.execute.Job.warm`).
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from . import sandbox as sb

#: marks the zygote's command line (to find its process in the sandbox's tree)
MARK = "autograder-zygote"

#: top-level packages never imported before a fork: they start threads, gRPC or CUDA at import,
#: which a forked child would not have
UNFORKABLE = frozenset(
    {
        "tensorflow",
        "tf_keras",
        "keras",
        "tf2onnx",
        "jax",
        "jaxlib",
        "tritonclient",
        "pytriton",
        "grpc",
        "distributed",
        "dask",
        "ray",
        "tensorrt",
        "pycuda",
        "cupy",
    }
)

_ZYGOTE = r"""
import importlib, json, os, signal, stat, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
OUT = os.dup(1)
os.dup2(2, 1)  # stray prints go to the log, never into the protocol
_, _, modules, HOME, WORKDIR, unforkable = sys.argv
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

def send(obj):
    os.write(OUT, (json.dumps(obj) + "\n").encode())

# as in T (the bridge's set-up): nothing is imported from the working folder
sys.path[:] = [p for p in sys.path if p not in ("", ".", os.getcwd())]
import ipykernel.kernelapp, ipykernel.ipkernel
imported, failed = [], []
for name in json.loads(modules):
    parent, _, last = name.rpartition(".")
    if parent in sys.modules and not isinstance(getattr(sys.modules[parent], last, sys), type(sys)):
        continue  # `from parent import last` names a function or a class: imported already
    try:
        importlib.import_module(name)
        imported.append(name)
    except BaseException as exc:
        failed.append(f"{name}: {type(exc).__name__}")
threads = len(os.listdir("/proc/self/task"))
allowed = 1 + ("onnxruntime" in sys.modules)  # its one idle thread forks safely (measured)
bad = sorted(set(json.loads(unforkable)) & {m.split(".")[0] for m in sys.modules})

def mounts():
    with open("/proc/self/mountinfo") as fh:
        return {line.split()[4].replace("\\040", " ") for line in fh}

MOUNTS = mounts()  # the sandbox's own (binds under /tmp: the socket folder, artefacts...)
ROOTS = ("/tmp", "/dev/shm", HOME)

def snapshot():
    # what the sandbox and the imports made (a module may keep a temporary folder it made)
    dirs, files = {}, {}
    for root in ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in MOUNTS]
            for d in dirnames:
                dirs[os.path.join(dirpath, d)] = stat.S_IMODE(os.lstat(os.path.join(dirpath, d)).st_mode)
            for f in filenames:
                p = os.path.join(dirpath, f)
                if p not in MOUNTS and os.path.isfile(p) and not os.path.islink(p):
                    with open(p, "rb") as fh:
                        files[p] = (stat.S_IMODE(os.lstat(p).st_mode), fh.read())
    return dirs, files

DIRS, FILES = snapshot()

def wipe(root):
    # what was there before the first fork (mounts, the sandbox's and the imports' folders and
    # files) stays, its files rewritten below; everything else goes
    with os.scandir(root) as it:
        for entry in list(it):
            path = entry.path
            if path in MOUNTS or path in FILES:
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    wipe(path)
                    if path not in DIRS and not any(m.startswith(path + "/") for m in MOUNTS):
                        os.rmdir(path)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                pass

def restore():
    for root in ROOTS:
        wipe(root)
    for path in sorted(DIRS):
        if not os.path.isdir(path) or os.path.islink(path):
            os.mkdir(path)
            os.chmod(path, DIRS[path])
    for path, (mode, data) in FILES.items():
        if os.path.islink(path):  # never write through a link a kernel left
            os.unlink(path)
        try:
            with open(path, "rb") as fh:
                same = fh.read() == data
        except OSError:
            same = False
        if not same:
            if os.path.lexists(path) and not os.path.isfile(path):
                os.unlink(path)
            with open(path, "wb") as fh:
                fh.write(data)
        if stat.S_IMODE(os.stat(path).st_mode) != mode:
            os.chmod(path, mode)

def others():
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in (1, me):
            try:
                with open(f"/proc/{name}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(name))
            except (OSError, IndexError):
                pass
    return found

def kill_others():
    for _ in range(100):
        pids = others()
        if not pids:
            return 0
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
    return len(others())

# the clean-up kills every other process it sees: only in a pid namespace of its own
own_pids = os.getpid() <= 2
ok = threads <= allowed and not bad and own_pids
send({"ready": ok, "threads": threads, "unforkable": bad, "own_pids": own_pids,
      "imported": imported, "failed": failed})
if not ok:
    sys.exit(0)
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setsid()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            os.close(OUT)
            os.chdir(WORKDIR)
            sys.argv = ["ipykernel_launcher"]
            from ipykernel.kernelapp import IPKernelApp
            IPKernelApp.launch_instance(argv=["-f", req["connection_file"], *req["args"]])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
        os._exit(code)
    send({"pid": pid})
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            pass
    left = kill_others()
    try:
        restore()
        clean = left == 0
    except OSError as exc:
        print("restore failed:", exc, file=sys.stderr)
        clean = False
    send({"exit": os.waitstatus_to_exitcode(status), "clean": clean})
    if not clean:
        break
"""


def plan_imports(plan: dict) -> list[str]:
    r"""The modules the plan's leading cells import, in order: the cells a cold T runs before
    its first test in any case (:meth:`~autograder.verdict.VerdictKernel.run_ahead`), so an
    import's side effects (a logging level, a warnings filter) come before the same cells and
    tests as without a zygote. Statements in function bodies are left out (they run when
    called); ``from a.b import c`` gives ``a.b`` and ``a.b.c`` (which may be a module); the
    packages a fork is unsafe after (:data:`UNFORKABLE`) are left out.

    >>> plan_imports({"cells": [
    ...     {"grade_id": None, "uses": [], "source": "import numpy as np\nimport tensorflow"},
    ...     {"grade_id": None, "uses": [], "source": "from sklearn.pipeline import make_pipeline"},
    ...     {"grade_id": None, "uses": [], "source": "def f():\n    import scipy"},
    ...     {"grade_id": "ex1", "uses": ["f"], "source": "import onnx"}]})
    ['numpy', 'sklearn.pipeline', 'sklearn.pipeline.make_pipeline']
    """
    names: list[str] = []
    for cell in plan.get("cells", []):
        if cell.get("grade_id") is not None or cell.get("uses"):
            break
        try:
            tree = ast.parse(cell["source"])
        except SyntaxError:
            continue
        stack: list[ast.AST] = list(tree.body)
        while stack:
            node = stack.pop(0)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.append(node.module)
                names += [f"{node.module}.{a.name}" for a in node.names if a.name != "*"]
            stack[:0] = list(ast.iter_child_nodes(node))
    return [n for n in dict.fromkeys(names) if n.split(".")[0] not in UNFORKABLE]


def kernel_python(kernel_name: str | None) -> str:
    """The interpreter the notebook's kernelspec starts (as jupyter_client resolves it)."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv0 = sys.executable
    with contextlib.suppress(Exception):
        argv0 = KernelSpecManager().get_kernel_spec(kernel_name or "python3").argv[0]
    version = sys.version_info
    if argv0 in {"python", f"python{version[0]}", f"python{version[0]}.{version[1]}"}:
        argv0 = sys.executable
    return argv0


class ZygoteError(RuntimeError):
    """The zygote could not be started, or stopped answering."""


class Unforkable(ZygoteError):
    """The zygote started, but a fork of it would not be safe (T starts cold)."""


class ForkedKernel:
    """The forked T, as jupyter_client's provisioner sees a kernel process (``Popen``-like)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, zygote: Zygote):
        self.pid = pid
        self.zygote = zygote
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            zygote = self.zygote
            zygote.read_messages()
            if zygote.last_exit is not None:
                self.returncode = zygote.last_exit
            elif zygote.proc is None or zygote.proc.poll() is not None:
                # the zygote is gone, and its sandbox with it: so is this kernel
                with contextlib.suppress(psutil.Error):
                    if psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE:
                        return None
                self.returncode = -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("forked kernel", timeout or 0)
            time.sleep(0.01)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)  # the child is its session's leader
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)


class Zygote:
    """One worker's prepared process for one notebook's verdict kernels (see the module doc)."""

    def __init__(self, key: str, launcher: sb.KernelLauncher, network, uid_hold) -> None:
        self.key = key
        self.launcher = launcher
        self.network = network
        self._uid_hold = uid_hold
        self.proc: subprocess.Popen | None = None
        self.host_pid: int | None = None
        self.status: dict = {}
        self.children = 0
        self.last_exit: int | None = None
        self.clean = True
        self._buf = b""
        self._messages: list[dict] = []

    # -- the process ------------------------------------------------------------------------

    def start(self, modules: list[str], python: str, timeout: float = 120.0) -> None:
        """Start the zygote and wait until it has imported ``modules``; raise if it cannot fork."""
        argv = [python, "-c", _ZYGOTE, MARK, json.dumps(modules), sb.HOME, sb.WORKDIR]
        argv.append(json.dumps(sorted(UNFORKABLE)))
        cmd = self.launcher.wrap(argv)  # first: it opens the files bubblewrap copies in
        kw = self.launcher.popen_kwargs(log=True)
        # the protocol on stdin/stdout; what the zygote and its kernels print goes to the log
        kw.update(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.launcher._log)
        self.proc = subprocess.Popen(cmd, **kw)  # noqa: S603
        self.launcher.started(self.proc)
        status = self._next("ready", timeout)
        self.status = status
        if not status.get("ready"):
            why = (
                f"it imported {', '.join(status['unforkable'])}"
                if status.get("unforkable")
                else "it is not in a pid namespace of its own"
                if not status.get("own_pids")
                else f"{status.get('threads')} threads after its imports"
            )
            raise Unforkable(f"the prepared verdict kernel cannot fork safely: {why}")
        wrappers = ("bwrap", "prlimit", "setpriv", "nsenter")
        deadline = time.monotonic() + 10
        while self.host_pid is None and time.monotonic() < deadline:
            self.launcher._track()
            for proc in list(self.launcher._seen.values()):
                with contextlib.suppress(psutil.Error, IndexError):
                    cmd = proc.cmdline()
                    if MARK in cmd and os.path.basename(cmd[0]) not in wrappers:
                        self.host_pid = proc.pid
            if self.host_pid is None:
                time.sleep(0.02)
        if self.host_pid is None:
            raise ZygoteError("the prepared verdict kernel's process was not found")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.clean

    def read_messages(self, timeout: float = 0.0) -> None:
        """Read what the zygote said (without blocking beyond ``timeout``)."""
        if self.proc is None or self.proc.stdout is None:
            return
        fd = self.proc.stdout.fileno()
        with contextlib.suppress(OSError, ValueError):
            if select.select([fd], [], [], timeout)[0]:
                data = os.read(fd, 65536)
                if not data:
                    self.clean = False  # the zygote is gone
                self._buf += data
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if isinstance(msg, dict):
                    if "exit" in msg:
                        self.last_exit = int(msg["exit"])
                        self.clean = bool(msg.get("clean"))
                    self._messages.append(msg)

    def _take(self, key: str) -> dict | None:
        for i, msg in enumerate(self._messages):
            if key in msg:
                return self._messages.pop(i)
        return None

    def _gone(self, key: str) -> ZygoteError:
        tail = self.launcher.log_tail(300).strip()
        return ZygoteError(f"the prepared verdict kernel did not say {key!r} ({tail or 'no log'})")

    def _next(self, key: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self._take(key)
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0 or self.proc is None or self.proc.poll() is not None:
                self.read_messages(0)
                msg = self._take(key)
                if msg is not None:
                    return msg
                raise self._gone(key)
            self.read_messages(min(left, 0.5))

    async def _anext(self, key: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            self.read_messages(0)
            msg = self._take(key)
            if msg is not None:
                return msg
            if time.monotonic() > deadline or self.proc is None or self.proc.poll() is not None:
                raise self._gone(key)
            await asyncio.sleep(0.005)

    # -- one submission's T -----------------------------------------------------------------

    async def fork(self, connection_file: str, args: list[str]) -> ForkedKernel:
        """A new T: the zygote forks, the child starts a kernel on ``connection_file``."""
        if not self.alive() or self.proc is None or self.proc.stdin is None:
            raise ZygoteError("the prepared verdict kernel is gone")
        self.last_exit = None
        self._messages.clear()
        request = {"connection_file": connection_file, "args": args}
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            ns_pid = int((await self._anext("pid", 30))["pid"])
            self.children += 1
            host = None
            deadline = time.monotonic() + 10
            while host is None and time.monotonic() < deadline:
                with contextlib.suppress(psutil.Error):
                    for child in psutil.Process(self.host_pid).children():
                        if _ns_pid(child.pid) == ns_pid:
                            host = child.pid
                if host is None:
                    await asyncio.sleep(0.005)
            if host is None:
                raise ZygoteError("the forked verdict kernel's process was not found")
        except (OSError, ValueError, ZygoteError):
            self.close()  # in an unknown state: the next submission starts a new zygote
            raise
        return ForkedKernel(host, self)

    def end(self, child: ForkedKernel, timeout: float = 20.0) -> None:
        """Stop ``child`` and wait until the zygote has cleaned its sandbox; a zygote that does
        not is closed (the next submission starts a new one)."""
        child.kill()
        try:
            if child.returncode is None:
                self._next("exit", timeout)
                child.returncode = self.last_exit
        except ZygoteError:
            self.clean = False
        if not self.clean:
            self.close()

    def close(self) -> None:
        self.clean = False
        if self.proc is not None:
            with contextlib.suppress(Exception):
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
        self.launcher.kill_all()
        self.launcher.close_files()
        if self.proc is not None and self.proc.stdout is not None:
            with contextlib.suppress(Exception):
                self.proc.stdout.close()
        if self.network is not None:
            self.network.close()
        self._uid_hold.close()
        shutil.rmtree(self.launcher.jobdir, ignore_errors=True)
        _POOL.pop(self.key, None)


def _ns_pid(pid: int) -> int | None:
    """The pid of host process ``pid`` in its own (innermost) pid namespace."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


class ChildLauncher:
    """What the worker needs of a forked T's sandbox, in the shape of
    :class:`~autograder.sandbox.KernelLauncher` (its sandbox is the zygote's)."""

    def __init__(self, zygote: Zygote) -> None:
        self.zygote = zygote
        self.info = zygote.launcher.info
        self.uid = zygote.launcher.uid
        self.network = zygote.network
        self.sockdir = zygote.launcher.sockdir / f"s{zygote.children}-{os.urandom(4).hex()}"
        self.kernel_pid: int | None = None
        self.killed: set[int] = set()
        self.child: ForkedKernel | None = None

    def prepare(self) -> None:
        self.sockdir.mkdir(mode=0o700)
        if self.uid is not None and os.geteuid() == 0:
            os.chown(self.sockdir, self.uid, self.uid)

    lock_sockets = sb.KernelLauncher.lock_sockets
    interrupt = sb.KernelLauncher.interrupt
    sigint_state = sb.KernelLauncher.sigint_state

    def find_kernel(self, timeout: float = 10.0) -> int | None:
        return self.kernel_pid

    def kill_all(self) -> list[int]:
        if self.child is not None:
            self.zygote.end(self.child)
        shutil.rmtree(self.sockdir, ignore_errors=True)
        return []

    def close_files(self) -> None:
        pass

    def memory_mb(self) -> float:
        with contextlib.suppress(psutil.Error, TypeError):
            return psutil.Process(self.kernel_pid).memory_info().rss / 1024 / 1024
        return 0.0

    def exit_description(self) -> str | None:
        code = self.child.poll() if self.child is not None else None
        return None if code is None else sb.describe_exit(code, sandboxed=False)

    def log_tail(self, chars: int = 600) -> str:
        return self.zygote.launcher.log_tail(chars)


_POOL: dict[str, Zygote] = {}
_ATEXIT: list = []
_COLD: dict[str, str] = {}  #: keys whose zygote could not fork safely, and why


def _key(job, nbjob, modules: list[str], python: str) -> str:
    digest = hashlib.sha256()
    files = sorted((k, hashlib.sha256(v).hexdigest()) for k, v in job.verdict_files.items())
    parts = [job.assignment, nbjob.name, modules, python, repr(job.limits), job.threads]
    parts += [list(job.expose), job.artefacts, list(job.forbidden), files]
    digest.update(json.dumps(parts, default=str).encode())
    return digest.hexdigest()[:16]


def zygote_for(job, nbjob, info: sb.SandboxInfo, kernel_name: str | None, jobdir_prefix: str):
    """This worker's zygote for a notebook's verdict kernels, started if need be; None where T
    must start cold (no sandbox, the zygote cannot fork safely). Raises :class:`ZygoteError`
    when a new zygote fails to start (the caller starts T cold and says so)."""
    if nbjob.plan is None or not info.isolated:
        return None
    modules = plan_imports(nbjob.plan)
    python = kernel_python(kernel_name)
    key = _key(job, nbjob, modules, python)
    if key in _COLD:
        return None
    zygote = _POOL.get(key)
    if zygote is not None and zygote.alive():
        return zygote
    if zygote is not None:
        zygote.close()
    while len(_POOL) >= 2:  # a worker grades one or two notebooks at a time: keep memory low
        next(iter(_POOL.values())).close()
    jobdir = Path(tempfile.mkdtemp(prefix=f"{jobdir_prefix}{os.getpid()}-zygote-"))
    os.chmod(jobdir, 0o711)
    hold = contextlib.ExitStack()
    network = None
    try:
        uid = hold.enter_context(sb.uid_slot()) if info.privileged else None
        network = sb.SharedNetwork.start()
        launcher = job.launcher(info, jobdir, job.verdict_files, uid, network)
        launcher.prepare()
        zygote = Zygote(key, launcher, network, hold)
        if not _ATEXIT:  # a grader that ran jobs itself (a pool's worker: worker_init)
            _ATEXIT.append(atexit.register(close_all))
        _POOL[key] = zygote
        zygote.start(modules, python)
    except BaseException as exc:
        if key in _POOL:
            _POOL[key].close()  # its process, uid, network and folder
        else:
            hold.close()
            if network is not None:
                network.close()
            shutil.rmtree(jobdir, ignore_errors=True)
        if isinstance(exc, ZygoteError):
            _COLD[key] = str(exc)
            if isinstance(exc, Unforkable):
                return None
        raise
    return zygote


def forget_inherited() -> None:
    """In a worker just forked from a process that ran jobs itself: the zygotes in the table are
    that process's (its children), so this one neither uses nor stops them."""
    _POOL.clear()
    _ATEXIT.clear()


def close_all() -> None:
    """Stop every zygote of this process (a worker's, or a grader's that ran jobs itself)."""
    for zygote in list(_POOL.values()):
        zygote.close()
