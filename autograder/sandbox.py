"""Isolation for one submission's kernel: bubblewrap namespaces plus resource limits.

The kernel of each submission runs as::

    prlimit (cpu, data, fsize, nofile, nproc, core) -- bwrap (namespaces, read-only system)
        -- setpriv (a throw-away uid, no capabilities) -- python -m ipykernel_launcher

What the kernel sees (``--sandbox bubblewrap``):

- no network (own network namespace, loopback only), own pid/ipc/uts namespaces;
- the system read-only: ``/usr``, ``/etc``, ``/sys``, the Python installation and the
  ``course`` helpers package; nothing else of the host: no course directory, no ``source/``,
  no gradebook, no other student's work;
- writable: its own ``/home/student`` (the working folder holds a copy of the assignment's
  data files), ``/tmp`` and ``/dev/shm``, each a size-limited tmpfs that vanishes with it;
- limits: CPU seconds, data memory, file size, open files, processes (``RLIMIT_NPROC`` counts
  only the sandbox's own uid when the grader runs as root), core dumps off;
- every process it starts lives in its pid namespace and dies with it.

Without bubblewrap (``--sandbox none`` or not installed) the same limits apply but nothing is
isolated; the grader says so loudly and ``report.json`` records it.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

#: The sandbox's home and working folder (the kernel's current directory).
HOME = "/home/student"
WORKDIR = f"{HOME}/work"
#: uids handed to sandboxes when the grader runs as root (one per concurrent kernel).
UID_BASE = int(os.environ.get("AUTOGRADER_UID_BASE", "61000"))
UID_COUNT = 1000

NO_SANDBOX_WARNING = (
    "NO SANDBOX: student code runs with the grader's privileges (resource limits only): it can "
    "read the course directory, hidden tests and other students' work, and use the network."
)


@dataclass(frozen=True)
class Limits:
    """Resource limits for one notebook's kernel (and every process it starts).

    Example:
        >>> Limits(wall_s=60, cell_timeout_s=30, memory_mb=2048).describe()  # doctest: +ELLIPSIS
        'wall 60 s, cell 30 s, CPU 900 s, memory 2048 MB, 256 processes, ...'
        >>> Limits().describe()  # doctest: +ELLIPSIS
        "wall 900 s, cell nbgrader's timeout, CPU 900 s, ..."
    """

    wall_s: float = 900.0  #: whole notebook, kernel start included
    cell_timeout_s: int | None = None  #: per cell (None: nbgrader's Execute.timeout)
    cpu_s: int = 900  #: CPU seconds per process (RLIMIT_CPU)
    memory_mb: int = 4096  #: data segment per process (RLIMIT_DATA: heap and anonymous maps)
    processes: int = 256  #: tasks (processes and threads) of the sandbox uid (RLIMIT_NPROC)
    output_mb: float = 20.0  #: everything the notebook sends back (outputs, widget messages)
    disk_mb: int = 512  #: each writable tmpfs, and the largest file (RLIMIT_FSIZE)
    open_files: int = 4096  #: RLIMIT_NOFILE

    def describe(self) -> str:
        cell = "nbgrader's timeout" if self.cell_timeout_s is None else f"{self.cell_timeout_s} s"
        return (
            f"wall {self.wall_s:g} s, cell {cell}, CPU {self.cpu_s} s, "
            f"memory {self.memory_mb} MB, {self.processes} processes, "
            f"output {self.output_mb:g} MB, disk {self.disk_mb} MB"
        )


@dataclass(frozen=True)
class SandboxInfo:
    """Which isolation a worker can give a kernel."""

    kind: str  #: "bubblewrap" or "none"
    isolated: bool
    detail: str
    privileged: bool = False  #: root: each kernel gets its own uid (RLIMIT_NPROC is its own)

    def to_dict(self) -> dict:
        out = asdict(self)
        if not self.isolated:
            out["warning"] = NO_SANDBOX_WARNING
        return out


class SandboxUnavailable(RuntimeError):
    """``--sandbox bubblewrap`` was asked for and bubblewrap cannot run here."""


_PROBED: dict[str, SandboxInfo] = {}


def probe(mode: str = "auto") -> SandboxInfo:
    """Find out (once per process) whether kernels can run in bubblewrap here.

    ``mode``: ``"auto"`` (bubblewrap when it works, else limits only), ``"bubblewrap"`` (raise
    :class:`SandboxUnavailable` when it does not work) or ``"none"``.

    Example:
        >>> probe("none").isolated
        False
    """
    if mode not in ("auto", "bubblewrap", "none"):
        raise ValueError(f"sandbox mode must be auto, bubblewrap or none, got {mode!r}")
    if mode == "none":
        return SandboxInfo("none", False, "sandbox disabled (--sandbox none)")
    if "bwrap" not in _PROBED:
        _PROBED["bwrap"] = _probe_bwrap()
    info = _PROBED["bwrap"]
    if not info.isolated and mode == "bubblewrap":
        raise SandboxUnavailable(f"bubblewrap cannot isolate kernels here: {info.detail}")
    return info


def _probe_bwrap() -> SandboxInfo:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return SandboxInfo("none", False, "bubblewrap (bwrap) is not installed")
    privileged = os.geteuid() == 0
    with tempfile.TemporaryDirectory(prefix="autograder-probe-") as tmp:
        launcher = KernelLauncher(
            SandboxInfo("bubblewrap", True, "probe", privileged),
            Limits(),
            Path(tmp),
            files={"probe.txt": b"ok"},
            uid=UID_BASE + UID_COUNT - 1 if privileged else None,
        )
        launcher.prepare()
        code = "import os; assert open('probe.txt').read() == 'ok'; open('/tmp/w', 'w').write('w')"
        cmd = launcher.wrap([sys.executable, "-S", "-c", code])
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=60, **launcher.popen_kwargs(log=False)
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return SandboxInfo("none", False, f"bubblewrap failed to start: {exc}")
        finally:
            launcher.close_files()
        if proc.returncode != 0:
            return SandboxInfo(
                "none", False, f"bubblewrap probe failed: {(proc.stderr or proc.stdout)[-300:]}"
            )
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip()
    mode = "per-kernel uid" if privileged else "user namespace, grader's uid"
    return SandboxInfo("bubblewrap", True, f"{version} ({mode})", privileged)


@contextlib.contextmanager
def uid_slot():
    """Reserve a uid no other concurrent sandbox on this machine uses (root only).

    The reservation is an ``flock`` on a file in a root-only folder, so it holds across the
    processes and threads of every grader on the machine and vanishes when its holder dies.
    """
    folder = Path(tempfile.gettempdir()) / "autograder-uids"
    folder.mkdir(mode=0o700, exist_ok=True)
    for uid in range(UID_BASE, UID_BASE + UID_COUNT - 1):
        fd = os.open(folder / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield uid
        finally:
            os.close(fd)
        return
    raise RuntimeError(f"all {UID_COUNT} sandbox uids are in use")


class MountRefused(RuntimeError):
    """A folder the sandbox would show the kernel is, or holds, part of the course."""


def _python_roots(kernel_argv0: str | None = None) -> list[str]:
    """Folders the kernel's Python needs: the environment and the interpreter it is based on,
    each under the path the kernelspec uses and under its real path (a venv reached through a
    symbolic link is found under both)."""
    found = {sys.prefix, sys.base_prefix, str(Path(os.path.realpath(sys.executable)).parent.parent)}
    if kernel_argv0 and os.path.isabs(kernel_argv0):
        found.add(str(Path(kernel_argv0).parent.parent))
        found.add(str(Path(os.path.realpath(kernel_argv0)).parent.parent))
    roots = set()
    for r in found:
        for path in (os.path.abspath(r), os.path.realpath(r)):
            if path and path != "/usr" and not path.startswith("/usr/") and path != "/":
                roots.add(path)
    return sorted(roots)


_PACKAGE: dict[str, list[str]] = {}


def _course_package() -> list[str]:
    """The ``course`` helpers package, found as the kernel's interpreter imports it.

    The lookup runs in the kernel's Python with a neutral working folder, so a folder named
    ``course`` around the grader (the course directory itself!) is never taken for it; only a
    real package (with ``__init__.py``) counts, by its real path.
    """
    if "course" not in _PACKAGE:
        code = (
            "import importlib.util, json\n"
            "s = importlib.util.find_spec('course')\n"
            "print(json.dumps(None if s is None or not s.origin else s.origin))\n"
        )
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONNOUSERSITE": "1"}
        origin = None
        with tempfile.TemporaryDirectory(prefix="autograder-find-") as neutral:
            with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
                out = subprocess.run(
                    [sys.executable, "-c", code],
                    cwd=neutral,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                import json

                origin = json.loads(out.stdout.strip().splitlines()[-1])
        if origin and os.path.basename(origin) == "__init__.py":
            _PACKAGE["course"] = [os.path.realpath(os.path.dirname(origin))]
        else:
            _PACKAGE["course"] = []
    return list(_PACKAGE["course"])


def check_mounts(mounts: list[str], forbidden: list[str]) -> None:
    """Refuse (:class:`MountRefused`) a mount that is or holds a forbidden path, or lies inside
    one; a path given as ``"~PATH"`` may hold mounts (the course root may hold the venv) but no
    mount may be it or hold it.

    Example:
        >>> check_mounts(["/srv/course/.venv"], ["~/srv/course", "/srv/course/source"])
        >>> check_mounts(["/srv"], ["~/srv/course"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        autograder.sandbox.MountRefused: the sandbox would show /srv ...
    """
    for mount in mounts:
        real = os.path.realpath(mount)
        for bad in forbidden:
            holder = bad.startswith("~")
            b = os.path.realpath(bad[1:] if holder else bad)
            inside = real.startswith(b.rstrip("/") + "/") and not holder
            if real == b or b.startswith(real.rstrip("/") + "/") or inside:
                raise MountRefused(
                    f"the sandbox would show {mount} (real path {real}) to student code, and it "
                    f"is or holds {bad}: refused. Install the course package and the Python "
                    "environment outside the course directory, or run the grader from elsewhere"
                )


def mounts(expose: tuple[str, ...] = (), kernel_argv0: str | None = None) -> list[str]:
    """Every host folder bound into a kernel's sandbox (read-only)."""
    return [*_python_roots(kernel_argv0), *_course_package(), *expose]


#: Run by the grader's interpreter as a submission's network holder: a process that owns a
#: fresh network namespace (and, without root, the user namespace that owns it) with only the
#: loopback, up. Both kernels of the submission join it, so a server the tests start in T is
#: reachable from the student's client in S and nothing outside is reachable from either.
_HOLDER = r"""
import ctypes, fcntl, os, signal, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: dies with the grader's worker
uid, gid = os.getuid(), os.getgid()
flags = 0x40000000 | (0 if uid == 0 else 0x10000000)  # CLONE_NEWNET (| CLONE_NEWUSER)
if libc.unshare(flags) != 0:
    sys.exit("unshare failed: " + os.strerror(ctypes.get_errno()))
if uid != 0:  # the same uid and gid inside, so bubblewrap runs unprivileged as before
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
req = struct.pack("16sH14x", b"lo", 0)
got = fcntl.ioctl(s, 0x8913, req)  # SIOCGIFFLAGS
fl = struct.unpack("16sH14x", got)[1] | 0x1  # IFF_UP
fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", fl))  # SIOCSIFFLAGS
s.close()
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.read()  # until the grader closes the pipe (or kills this process)
"""


class SharedNetwork:
    """One network namespace (loopback only) shared by the two kernels of a submission.

    The holder is a direct child of the grader that is itself in the namespace: its pid cannot
    be reused while the grader has not reaped it, so ``/proc/PID/ns/net`` names the namespace
    safely; each kernel is checked to be in it (:meth:`check`) before any cell runs.

    Example:
        >>> net = SharedNetwork.start()  # doctest: +SKIP
        >>> net.prefix()[0]  # doctest: +SKIP
        'nsenter'
    """

    def __init__(self, proc: subprocess.Popen, inode: int, privileged: bool):
        self.proc = proc
        self.inode = inode
        self.privileged = privileged

    @classmethod
    def start(cls, timeout: float = 30.0) -> SharedNetwork:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _HOLDER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        assert proc.stdout is not None
        ready = b""
        with contextlib.suppress(OSError, ValueError):
            import select

            if select.select([proc.stdout], [], [], timeout)[0]:
                ready = proc.stdout.readline()
        host = os.stat("/proc/self/ns/net").st_ino
        inode = None
        with contextlib.suppress(OSError):
            inode = os.stat(f"/proc/{proc.pid}/ns/net").st_ino
        if ready.strip() != b"ready" or inode is None or inode == host:
            proc.kill()
            err = b""
            with contextlib.suppress(Exception):
                err = proc.communicate(timeout=5)[1]
            raise RuntimeError(
                "could not create the network namespace the two kernels share: "
                + (err.decode("utf-8", "replace")[-300:] or "no answer")
            )
        return cls(proc, inode, os.geteuid() == 0)

    def prefix(self) -> list[str]:
        """The command that puts what follows it (bubblewrap) into the shared namespace."""
        pid = self.proc.pid
        args = ["nsenter", f"--net=/proc/{pid}/ns/net"]
        if not self.privileged:  # the namespace belongs to the holder's user namespace
            args += [f"--user=/proc/{pid}/ns/user", "--preserve-credentials"]
        return [*args, "--"]

    def check(self, pid: int | None) -> None:
        """Raise unless process ``pid`` (a kernel) is in this namespace."""
        try:
            inode = os.stat(f"/proc/{pid}/ns/net").st_ino
        except (OSError, TypeError) as exc:
            raise RuntimeError(f"cannot see the kernel's network namespace: {exc}") from exc
        if inode != self.inode:
            raise RuntimeError("a kernel is not in the submission's own network namespace")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.communicate(timeout=5)


def _fontlist() -> str | None:
    """Matplotlib's font cache, so a kernel does not spend seconds rebuilding it."""
    base = os.environ.get("MPLCONFIGDIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "matplotlib"
    )
    found = sorted(glob.glob(os.path.join(base, "fontlist-v*.json")))
    return found[-1] if found else None


@dataclass
class KernelLauncher:
    """Builds the command line that starts one kernel under the limits, in the sandbox if any.

    ``files`` (relative path -> bytes) are copied into the kernel's working folder.
    """

    info: SandboxInfo
    limits: Limits
    jobdir: Path
    files: dict[str, bytes] = field(default_factory=dict)
    uid: int | None = None
    threads: int = 1
    expose: tuple[str, ...] = ()
    #: a folder of built course artefacts, bound read-only and named by $COURSE_ARTEFACTS_DIR
    artefacts: str | None = None
    #: folders no mount may be, hold or lie in (the course root, source/, the gradebook...)
    forbidden: tuple[str, ...] = ()
    #: the network namespace this kernel shares with the other kernel of its submission
    #: (None: a namespace of its own)
    network: SharedNetwork | None = None
    _fds: list[int] = field(default_factory=list, repr=False)
    popen: subprocess.Popen | None = field(default=None, repr=False)
    kernel_pid: int | None = None
    _seen: dict[int, psutil.Process] = field(default_factory=dict, repr=False)
    #: the job's marker, in every process of the sandbox's environment (:func:`job_token`)
    token: str = field(default_factory=lambda: job_token())
    killed: set[int] = field(default_factory=set)

    @property
    def sockdir(self) -> Path:
        return self.jobdir / "sock"

    @property
    def workdir(self) -> Path:
        """The kernel's working folder as seen from the grader (only without a sandbox)."""
        return self.jobdir / "work"

    @property
    def log_path(self) -> Path:
        return self.jobdir / "kernel.log"

    def prepare(self) -> None:
        """Create the job's folders (and, without a sandbox, the working folder's files)."""
        self.sockdir.mkdir(parents=True, exist_ok=True)
        if self.info.isolated and self.uid is not None:
            os.chown(self.sockdir, self.uid, self.uid)
        os.chmod(self.sockdir, 0o700)
        if not self.info.isolated:
            self.workdir.mkdir(parents=True, exist_ok=True)
            for rel, data in self.files.items():
                target = self.workdir / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            fontlist = _fontlist()
            if fontlist:  # as in the sandbox: no font-cache rebuild in each kernel
                mpl = self.jobdir / "home" / ".config" / "matplotlib"
                mpl.mkdir(parents=True, exist_ok=True)
                shutil.copy(fontlist, mpl / os.path.basename(fontlist))

    def environment(self) -> dict[str, str]:
        """Environment of the kernel (the sandbox starts from an empty one)."""
        home = HOME if self.info.isolated else str(self.jobdir / "home")
        threads = str(self.threads)
        env = {
            "HOME": home,
            "PATH": os.pathsep.join(
                [os.path.join(sys.prefix, "bin"), "/usr/local/bin", "/usr/bin", "/bin"]
            ),
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp" if self.info.isolated else str(self.jobdir / "tmp"),
            "MPLCONFIGDIR": f"{home}/.config/matplotlib",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "NBGRADER_EXECUTION": "autograde",
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
            "AUTOGRADER_JOB": self.token,
        }
        if self.artefacts:  # course.artefacts.folder looks here before building anything
            env["COURSE_ARTEFACTS_DIR"] = self.artefacts
        if not self.info.isolated:
            for sub in ("home", "tmp", "home/.config/matplotlib"):
                (self.jobdir / sub).mkdir(parents=True, exist_ok=True)
        return env

    def rlimits(self) -> list[str]:
        mb = 1024 * 1024
        nproc = self.limits.processes
        if self.uid is None:
            # the limit counts every task of the grader's own uid: allow for what runs already
            nproc += _tasks_of_uid(os.getuid())
        return [
            "prlimit",
            f"--cpu={self.limits.cpu_s}:{self.limits.cpu_s + 5}",
            f"--data={self.limits.memory_mb * mb}",
            f"--fsize={self.limits.disk_mb * mb}",
            f"--nofile={self.limits.open_files}",
            f"--nproc={nproc}",
            "--core=0",
            "--",
        ]

    def wrap(self, argv: list[str]) -> list[str]:
        """The full command line that runs ``argv`` (a kernel command) under the limits."""
        if not self.info.isolated:
            return self.rlimits() + list(argv)
        shared = self.network.prefix() if self.network is not None else []
        return self.rlimits() + shared + self._bwrap(argv[0] if argv else None) + list(argv)

    def _bwrap(self, argv0: str | None = None) -> list[str]:
        args = ["bwrap", "--die-with-parent", "--new-session"]
        # a shared network: nsenter (see wrap) put bubblewrap in the submission's namespace
        net = [] if self.network is not None else ["--unshare-net"]
        if self.info.privileged:
            args += ["--unshare-ipc", "--unshare-pid", *net, "--unshare-uts"]
            args += ["--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--unshare-user", "--unshare-ipc", "--unshare-pid", *net, "--unshare-uts"]
            args += ["--unshare-cgroup-try", "--disable-userns"]
        # the system, read-only; the top-level links of a merged /usr stay links
        args += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        args += ["--ro-bind", "/etc", "/etc", "--ro-bind-try", "/sys", "/sys"]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--perms", "1777", "--size", str(64 * 1024 * 1024), "--tmpfs", "/dev/shm"]
        size = str(self.limits.disk_mb * 1024 * 1024)
        args += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
        shown = (*self.expose, *([self.artefacts] if self.artefacts else []))
        binds = [os.path.abspath(b) for b in mounts(shown, argv0)]
        check_mounts(binds, list(self.forbidden))
        # the longest first would hide nothing; parents before children keep both visible
        binds = sorted(dict.fromkeys(binds), key=lambda b: (b.count("/"), b))
        made: set[str] = {"/", "/usr", "/etc", "/sys", "/proc", "/dev", "/tmp"}
        for path in [*binds, str(self.sockdir)]:
            for parent in reversed(Path(path).parents):
                p = str(parent)
                if p not in made and not any(p.startswith(b + "/") for b in binds):
                    args += ["--perms", "0755", "--dir", p]
                    made.add(p)
        for path in binds:
            args += ["--ro-bind", os.path.realpath(path), path]
            made.add(path)
        args += ["--bind", str(self.sockdir), str(self.sockdir)]
        # the student's home and working folder: a size-limited tmpfs
        args += ["--perms", "1777", "--size", size, "--tmpfs", HOME]
        for sub in (WORKDIR, f"{HOME}/.config", f"{HOME}/.config/matplotlib", f"{HOME}/.cache"):
            args += ["--perms", "0777", "--dir", sub]
        fontlist = _fontlist()
        files = dict(self.files)
        if fontlist:
            files[f"../.config/matplotlib/{os.path.basename(fontlist)}"] = Path(
                fontlist
            ).read_bytes()
        dirs_made: set[str] = set()
        for rel, data in sorted(files.items()):
            dest = os.path.normpath(f"{WORKDIR}/{rel}")
            for parent in reversed(Path(dest).parents):
                p = str(parent)
                if p.startswith(WORKDIR + "/") and p not in dirs_made:
                    args += ["--perms", "0777", "--dir", p]
                    dirs_made.add(p)
            args += ["--perms", "0666", "--file", str(self._fd_for(data)), dest]
        args += ["--chdir", WORKDIR, "--clearenv"]
        for key, value in self.environment().items():
            args += ["--setenv", key, value]
        if self.info.privileged:
            uid = str(self.uid)
            args += ["--", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            args += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        args += ["--"]
        return args

    def _fd_for(self, data: bytes) -> int:
        """A file descriptor bubblewrap reads ``data`` from (an unlinked temporary file)."""
        fd, path = tempfile.mkstemp(dir=self.jobdir)
        os.unlink(path)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        self._fds.append(fd)
        return fd

    def popen_kwargs(self, log: bool = True) -> dict:
        """Keyword arguments for ``subprocess.Popen`` of the wrapped command."""
        kw: dict = {"pass_fds": tuple(self._fds), "cwd": str(self.jobdir)}
        if log:
            fh = open(self.log_path, "ab")  # noqa: SIM115  (closed with the job)
            self._fds.append(fh.fileno())
            self._log = fh
            kw.update(stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if self.info.isolated:
            kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            kw["env"] = self.environment()
        return kw

    def close_files(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        log = getattr(self, "_log", None)
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()
            self._log = None

    def started(self, popen: subprocess.Popen) -> None:
        """Record the launched process (the sandbox's outermost process)."""
        self.popen = popen
        self.close_files()
        self._track()

    def _track(self) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.popen.pid)
            self._seen.setdefault(root.pid, root)
            for child in root.children(recursive=True):
                self._seen.setdefault(child.pid, child)

    def find_kernel(self, timeout: float = 10.0) -> int | None:
        """The host pid of the kernel process itself (to interrupt it and watch its memory)."""
        deadline = time.monotonic() + timeout
        while self.kernel_pid is None and time.monotonic() < deadline and self.popen:
            self._track()
            for proc in list(self._seen.values()):
                with contextlib.suppress(psutil.Error, IndexError):
                    cmd = proc.cmdline()
                    wrapper = os.path.basename(cmd[0]) in ("bwrap", "prlimit", "setpriv", "nsenter")
                    if not wrapper and any("ipykernel_launcher" in a for a in cmd):
                        self.kernel_pid = proc.pid
                        break
            if self.kernel_pid is None:
                time.sleep(0.02)
        return self.kernel_pid

    def lock_sockets(self) -> None:
        """Once the kernel listens, its socket folder stops being writable by it."""
        if self.info.isolated and self.uid is not None and os.geteuid() == 0:
            with contextlib.suppress(OSError):
                os.chown(self.sockdir, 0, 0)
                os.chmod(self.sockdir, 0o755)
            # the kernel has read its connection file: it must not grow it on the host's disk
            for path in self.sockdir.glob("*.json"):
                with contextlib.suppress(OSError):
                    os.chown(path, 0, 0)
                    os.chmod(path, 0o444)

    def interrupt(self) -> bool:
        """SIGINT to the kernel's process group (what Jupyter's interrupt button does)."""
        pid = self.kernel_pid or self.find_kernel(timeout=1.0)
        if pid is None:
            return False
        try:
            os.killpg(os.getpgid(pid), signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGINT)
        return True

    def sigint_state(self) -> str | None:
        """``"ignored"`` or ``"blocked"`` when the kernel's process disposes of SIGINT so (from
        ``/proc``); None when it takes it normally or cannot be read."""
        pid = self.kernel_pid
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError:
            return None
        bit = 1 << (signal.SIGINT - 1)
        for key, word in (("SigIgn", "ignored"), ("SigBlk", "blocked")):
            with contextlib.suppress(KeyError, ValueError):
                if int(fields[key].strip(), 16) & bit:
                    return word
        return None

    def memory_mb(self) -> float:
        """Resident memory of the kernel and its children now."""
        self._track()
        total = 0
        for proc in list(self._seen.values()):
            with contextlib.suppress(psutil.Error):
                outer = self.popen.pid if (self.popen and self.info.isolated) else -1
                if proc.is_running() and proc.pid != outer:
                    total += proc.memory_info().rss
        return total / 1024 / 1024

    def kill_all(self) -> list[int]:
        """SIGKILL every process of the job; returns the pids of processes the notebook started
        that were still running (the kernel and the sandbox's own processes not counted)."""
        self._track()
        alive = []
        own = {self.kernel_pid, self.popen.pid if self.popen else None}
        for proc in [p for p in self._seen.values()]:
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    cmd = proc.cmdline()
                    wrapper = bool(cmd) and os.path.basename(cmd[0]) in ("bwrap", "setpriv")
                    if proc.pid not in own and not wrapper:
                        alive.append(proc.pid)
                    proc.kill()
        if self.popen is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        if not self.info.isolated:
            alive += _kill_marked(self.token)
        _wait_dead([p for p in self._seen.values()], timeout=5.0)
        # processes of this job outside the tree seen (started after the last look, or left by
        # the sandbox's wrappers as they die): found by the job's marker, killed, waited for
        stragglers = []
        for pid in job_processes_alive(self.token):
            with contextlib.suppress(psutil.Error):
                if pid != os.getpid():
                    proc = psutil.Process(pid)
                    proc.kill()
                    stragglers.append(proc)
        _wait_dead(stragglers, timeout=5.0)
        self.killed.update(alive)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        return alive

    def exit_description(self) -> str | None:
        """Why the kernel's process ended, in words (None while it runs)."""
        if self.popen is None:
            return None
        code = self.popen.poll()
        if code is None:
            return None
        return describe_exit(code, sandboxed=self.info.isolated)

    def log_tail(self, chars: int = 600) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - chars))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


_SIGNAL_WORDS = {
    signal.SIGSEGV: "crashed with a segmentation fault (compiled code or ctypes misuse)",
    signal.SIGABRT: "aborted (often a failed memory allocation in compiled code)",
    signal.SIGBUS: "crashed with a bus error",
    signal.SIGFPE: "crashed with a floating-point exception",
    signal.SIGILL: "crashed with an illegal instruction",
    signal.SIGKILL: "was killed (SIGKILL)",
    signal.SIGTERM: "was terminated (SIGTERM)",
    signal.SIGXCPU: "ran out of CPU time (the CPU limit)",
    signal.SIGXFSZ: "wrote a file larger than the disk limit",
}


def describe_exit(code: int, sandboxed: bool) -> str:
    """A kernel process's exit status in words (bubblewrap reports a signal as 128 + N)."""
    sig = None
    if code < 0:
        sig = -code
    elif sandboxed and code > 128:
        sig = code - 128
    if sig is not None:
        with contextlib.suppress(ValueError):
            name = signal.Signals(sig).name
            return f"{_SIGNAL_WORDS.get(signal.Signals(sig), 'was killed by ' + name)} [{name}]"
        return f"was killed by signal {sig}"
    return f"exited with code {code} (exit(), quit(), sys.exit() or os._exit() in the notebook?)"


def _wait_dead(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until every process has exited. A zombie has exited: the orphaned ones are reaped
    by the machine's init, which can take a second, and holds nothing but its pid meanwhile."""
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending and time.monotonic() < deadline:
        still = []
        for proc in pending:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    still.append(proc)
        pending = still
        if pending:
            time.sleep(0.01)


def _tasks_of_uid(uid: int) -> int:
    total = 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if proc.info["uids"].real == uid:
                total += proc.info["num_threads"] or 1
    return total


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (with the pid, names one process)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def job_token() -> str:
    """A job's marker: the process that owns the job (its pid and start time) and a random part.

    Every process of the job's sandbox carries it as ``$AUTOGRADER_JOB``, so a later run can
    tell a sandbox whose owner was killed (:func:`kill_orphans`).

    Example:
        >>> pid, ticks, rand = job_token().split(".")
        >>> int(pid) == os.getpid(), ticks.isdigit(), len(rand)
        (True, True, 16)
        >>> token_owner_alive(job_token())
        True
    """
    pid = os.getpid()
    return f"{pid}.{_start_ticks(pid)}.{os.urandom(8).hex()}"


def token_owner_alive(token: str) -> bool:
    """Whether the process that owns a job (named in its token) still runs; a token without an
    owner (an older grader's) counts as alive, so nothing is killed on a guess."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return True
    return _start_ticks(int(parts[0])) == int(parts[1])


def orphaned_job_processes() -> list[psutil.Process]:
    """Processes of jobs whose owner is gone: a grader's worker killed (``kill -9``, the OOM
    killer) in the few milliseconds while bubblewrap starts leaves a sandbox behind, because
    bubblewrap's namespace init sets its parent-death signal only after it starts (measured:
    a parent killed 0-4 ms after starting ``bwrap --die-with-parent`` left 136 of 300 sandboxes
    running)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            token = proc.environ().get("AUTOGRADER_JOB")
            if token and not token_owner_alive(token):
                found.append(proc)
    return found


def kill_orphans() -> list[int]:
    """Kill what :func:`orphaned_job_processes` finds (a grading worker does before its first
    job); returns their pids."""
    procs = orphaned_job_processes()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _wait_dead(procs, timeout=5.0)
    return [proc.pid for proc in procs]


def _kill_marked(token: str) -> list[int]:
    """Without a sandbox: kill processes that carry this job's marker in their environment."""
    killed = []
    me = os.getuid()
    for proc in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if proc.info["uids"].real != me or proc.pid == os.getpid():
                continue
            if proc.environ().get("AUTOGRADER_JOB") == token:
                proc.kill()
                killed.append(proc.pid)
    return killed


def job_processes_alive(token: str) -> list[int]:
    """Pids of processes that still carry a job's marker (for tests and the no-sandbox mode)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("AUTOGRADER_JOB") == token:
                found.append(proc.pid)
    return found
