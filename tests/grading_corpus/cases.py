"""The adversarial grading corpus: submissions of the template lesson, each with its expected outcome.

Notebooks are built from the current ``00-template`` release at test time, so the corpus follows
the template.
Most cases are *lite*: only the exercise cells (solutions and tests) plus the attack, so that a
kernel run takes seconds. The verdict kernel runs the release's narrative cells itself, so a lite
notebook with right answers earns full marks (exercise 2's tests pass the instructor's fitted
``pipe`` to the student's function).

Expected outcomes: ``graded`` with a score per exercise (``"full"`` or a number), or ``failed``
with a category and a reason (regular expression). ``check`` names extra assertions made by
tests/test_autograder.py (no process left, nothing read or written outside the sandbox, no
hidden test in the feedback...).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat


@dataclass
class Case:
    student: str
    kind: str  #: the kind of submission (corpus table)
    expect: str  #: "graded" or "failed"
    scores: dict = field(default_factory=dict)  #: exercise -> "full" or points (graded)
    category: str | None = None  #: failure category (failed)
    reason: str | None = None  #: regex the reason must match (failed)
    notes: str | None = None  #: regex one of the record's notes must match
    checks: tuple[str, ...] = ()
    filename: str | None = None  #: file name in submitted/ (default: the assignment's)


@dataclass
class Context:
    release: nbformat.NotebookNode
    source: nbformat.NotebookNode
    course_root: Path
    marker: str  #: a unique string planted in files the kernel must not read
    port: int  #: a TCP port listening on the grader's loopback


def _gid(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def solved(ctx: Context) -> nbformat.NotebookNode:
    """The release with every solution cell answered as in the instructor's source."""
    nb = copy.deepcopy(ctx.release)
    answers = {_gid(c): c.source for c in ctx.source.cells if _gid(c)}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    return nb


def lite(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Only the exercise cells: fast to run."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if _gid(c)]
    return nb


def first_solution(nb) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))


def insert_before(nb, grade_id: str, code: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells) if _gid(c) == grade_id)
    nb.cells.insert(index, nbformat.v4.new_code_cell(code))
    return nb


def append(nb, code: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells.append(nbformat.v4.new_code_cell(code))
    return nb


def wrong_first_exercise(nb) -> nbformat.NotebookNode:
    """Exercise 1 answered wrongly (returns 0)."""
    nb = copy.deepcopy(nb)
    cell = first_solution(nb)
    name = cell.source.split("def ", 1)[1].split("(", 1)[0]
    cell.source = f"def {name}(*args, **kwargs):\n    return 0\n"
    return nb


def wrong_everything(nb) -> nbformat.NotebookNode:
    """Every exercise answered wrongly: each function of a solution cell returns 0."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution") and "def " in cell.source:
            names = [part.split("(", 1)[0] for part in cell.source.split("def ")[1:]]
            cell.source = "".join(f"def {n}(*args, **kwargs):\n    return 0\n" for n in names)
    return nb


def _ex1_tests(nb) -> list[str]:
    return [
        _gid(c)
        for c in nb.cells
        if _gid(c) and _gid(c).startswith("ex1-") and c.metadata["nbgrader"].get("grade")
    ]


LOOP = "x = 0\nwhile True:\n    x += 1\n"
SLEEP = "import time\ntime.sleep(100000)\n"
SIGINT_IGNORED = (
    "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
)
MEMORY = (
    "blocks = []\n"
    "try:\n"
    "    while True:\n"
    "        blocks.append(bytearray(64 * 2**20))\n"
    "finally:\n"
    "    held_mb = 64 * len(blocks)\n"
    "    blocks.clear()\n"
)
FORK_FLOOD = (
    "import subprocess\n"
    "children = []\n"
    "try:\n"
    "    for _ in range(100000):\n"
    "        children.append(subprocess.Popen(['sleep', '3600.11']))\n"
    "except OSError as exc:\n"
    "    print('process limit reached after', len(children), 'processes:', exc)\n"
)
ORPHANS = (
    "import os, subprocess\n"
    "subprocess.Popen(['sleep', '3600.22'], start_new_session=True)\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        os.execvp('sleep', ['sleep', '3600.33'])\n"
    "    os._exit(0)\n"
)
OS_EXIT = "import os\nos._exit(3)\n"
SEGFAULT = "import ctypes\nctypes.string_at(0)\n"
OUTPUT_FLOOD = "while True:\n    print('x' * 100000)\n"
#: one display message larger than the whole output limit: counted from its raw bytes, never
#: decoded (issue 18: it used to be parsed before it was counted)
ONE_HUGE_MESSAGE = (
    "from IPython.display import display\ndisplay({'text/plain': 'x' * (3 * 2**20)}, raw=True)\n"
)
#: a handler swallows the interrupt: the reason must not claim SIGINT was ignored
SWALLOWS_INTERRUPT = (
    "import time\n"
    "while True:\n"
    "    try:\n"
    "        time.sleep(0.5)\n"
    "    except KeyboardInterrupt:\n"
    "        pass\n"
)
#: the kernel grows its own connection file on the grader's disk (issue 18)
CONNECTION_FILE = (
    "import ipykernel\n"
    "try:\n"
    "    with open(ipykernel.get_connection_file(), 'a') as fh:\n"
    "        fh.write(' ' * 4096)\n"
    "    print('CONNECTION FILE WRITTEN')\n"
    "except OSError as exc:\n"
    "    print('CONNECTION FILE REFUSED', type(exc).__name__)\n"
)
TAMPER_TRACEBACK = "get_ipython().showtraceback = lambda *args, **kwargs: None\n"
TAMPER_TESTING = (
    "import numpy.testing\n"
    "numpy.testing.assert_allclose = lambda *args, **kwargs: None\n"
    "import builtins\n"
    "_real_print = builtins.print\n"
    "def print(*args, **kwargs):\n"
    "    return _real_print(*args, **kwargs)\n"
    "builtins.print = print\n"
)
TAMPER_HOOK = (
    "seen = []\n"
    "def remember(info):\n"
    "    seen.append(info.raw_cell)\n"
    "get_ipython().events.register('pre_run_cell', remember)\n"
)
FORGED_SCORE = (
    "def converters_needed(*args, **kwargs):\n"
    "    ip = get_ipython()\n"
    "    ip.kernel.session.send(ip.kernel.iopub_socket, 'execute_result',\n"
    "        {'data': {'text/plain': '1000'}, 'metadata': {}, 'execution_count': 1},\n"
    "        parent=ip.kernel.get_parent(), ident=b'execute_result')\n"
    "    return -1\n"
)
LEAK_HIDDEN = (
    "import sys, linecache\n"
    "def converters_needed(n_frameworks, n_runtimes, hub):\n"
    "    caller = sys._getframe(1).f_code.co_filename\n"
    "    print('LEAK:', ''.join(linecache.getlines(caller)))\n"
    "    print('LEAK-ARGS:', n_frameworks, n_runtimes, hub)\n"
    "    return n_frameworks + n_runtimes if hub else n_frameworks * n_runtimes\n"
)
LEAK_LATER = "print('LEAK-HISTORY:', In)\n"


# -- forging routes: each once gave an all-wrong notebook full marks when the tests ran in the
# student's kernel (issue 18); with the verdict kernel each must score what a blank notebook does
FORGE_RUN_CODE = (
    "import functools\n"
    "ip = get_ipython()\n"
    "async def _quiet(orig, code_obj, result=None, *, async_=False):\n"
    "    try:\n"
    "        exec(code_obj, ip.user_global_ns, ip.user_ns)\n"
    "    except Exception as exc:\n"
    "        if 'AUTOGRADER' in str(exc):\n"
    "            raise\n"
    "    return False\n"
    "ip.run_code = functools.partial(_quiet, ip.run_code)\n"
)
FORGE_RUN_CELL = (
    "import functools\n"
    "ip = get_ipython()\n"
    "def _run_cell(orig, raw_cell, *args, **kwargs):\n"
    "    if 'assert' in raw_cell and 'AUTOGRADER' not in raw_cell:\n"
    "        raw_cell = 'pass'\n"
    "    return orig(raw_cell, *args, **kwargs)\n"
    "_run_cell.__module__ = 'IPython.core.interactiveshell'\n"
    "ip.run_cell = functools.partial(_run_cell, ip.run_cell)\n"
)
FORGE_AST = (
    "import ast\n"
    "class SafeNodes(ast.NodeTransformer):\n"
    "    def visit_Module(self, node):\n"
    "        handler = ast.ExceptHandler(type=ast.Name('Exception', ast.Load()), name=None,\n"
    "                                    body=[ast.Pass()])\n"
    "        node.body = [ast.Try(body=[s], handlers=[handler], orelse=[], finalbody=[])\n"
    "                     for s in node.body]\n"
    "        return ast.fix_missing_locations(node)\n"
    "SafeNodes.__module__ = 'IPython.core.interactiveshell'\n"
    "SafeNodes.__qualname__ = 'InteractiveShell.ast_transformers'\n"
    "get_ipython().ast_transformers.append(SafeNodes())\n"
)
FORGE_INPUT = (
    "import inspect\n"
    "def _rewrite(lines):\n"
    "    text = ''.join(lines)\n"
    "    if 'assert' in text and 'AUTOGRADER' not in text:\n"
    "        return ['pass\\n']\n"
    "    return lines\n"
    "_rewrite.__module__ = 'IPython.core.inputtransformer2'\n"
    "ip = get_ipython()\n"
    "ip.input_transformers_cleanup.append(_rewrite)\n"
    "ip.input_transformers_post.append(_rewrite)\n"
)
FORGE_TRACER = (
    "import sys, ast, functools\n"
    "def _tracer(state, frame, event, arg):\n"
    "    if event == 'call' and frame.f_code.co_name == 'transform_ast':\n"
    "        node = frame.f_locals.get('node')\n"
    "        if node is not None and any(isinstance(n, ast.Assert) for n in ast.walk(node)):\n"
    "            node.body = [ast.Pass()]\n"
    "    return None\n"
    "sys.settrace(functools.partial(_tracer, {}))\n"
)
FORGE_EXCEPTIONS = (
    "import builtins\n"
    "class AssertionError(Exception):\n"
    "    pass\n"
    "builtins.AssertionError = AssertionError\n"
    "get_ipython().set_custom_exc((Exception,), lambda shell, etype, evalue, tb, tb_offset=None: None)\n"
)
FORGE_OUTPUTS = (
    "ip = get_ipython()\n"
    "_session = ip.kernel.session\n"
    "_send = _session.send\n"
    "def _send_no_errors(stream, msg_or_type, content=None, *args, **kwargs):\n"
    "    kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type.get('msg_type')\n"
    "    if kind == 'error':\n"
    "        return None\n"
    "    if kind == 'execute_reply' and isinstance(content, dict):\n"
    "        content = dict(content, status='ok')\n"
    "    return _send(stream, msg_or_type, content, *args, **kwargs)\n"
    "_session.send = _send_no_errors\n"
)
FORGE_EQUALITY = (
    "class Yes(int):\n"
    "    def __eq__(self, other):\n"
    "        return True\n"
    "    __hash__ = int.__hash__\n"
    "def converters_needed(*args, **kwargs):\n"
    "    return Yes(0)\n"
)
FORGE_LIBRARIES = (
    "import onnx.checker, numpy.testing, unittest\n"
    "unittest.TestCase.assertEqual = lambda *args, **kwargs: None\n"
    "onnx.checker.check_model = lambda *args, **kwargs: None\n"
    "numpy.testing.assert_allclose = lambda *args, **kwargs: None\n"
)
FORGE_BRIDGE = (
    "import io, json, base64, sys, pickle\n"
    "import numpy as np\n"
    "class Boom:\n"
    "    def __reduce__(self):\n"
    "        return (print, ('PWNED-BY-PICKLE',))\n"
    "buf = io.BytesIO()\n"
    "np.save(buf, np.array([Boom()], dtype=object), allow_pickle=True)\n"
    "evil = {'$ndarray': base64.b64encode(buf.getvalue()).decode()}\n"
    "bridge = sys.modules['autograder_bridge']\n"
    "def call(nonce, request):\n"
    "    print(nonce + json.dumps({'value': json.dumps(evil), 'stdout': 'all tests passed'}))\n"
    "def describe(nonce, names, since=None):\n"
    "    entries = {n: {'kind': 'data', 'wire': evil} for n in names}\n"
    "    print(nonce + json.dumps({'names': entries, 'files': {}}))\n"
    "bridge.call, bridge.describe = call, describe\n"
)
FORGE_MODULE = (
    "for name in ('onnxruntime.py', 'onnx.py', 'sitecustomize.py', 'usercustomize.py'):\n"
    "    with open(name, 'w') as fh:\n"
    "        fh.write('print(\"PWNED-BY-MODULE\")\\n')\n"
    "import os\n"
    "os.makedirs('numpy', exist_ok=True)\n"
    "open('numpy/__init__.py', 'w').write('print(\"PWNED-BY-MODULE\")\\n')\n"
)
SCRIPT_OUTPUT = (
    "from IPython.display import HTML, Javascript, display\n"
    "display(HTML('<b>bold</b><script>document.title = \"PWNED-BY-SCRIPT\"</script>'))\n"
    "display(Javascript('document.title = \"PWNED-BY-JS\"'))\n"
)
#: student -> (kind, attack code)
FORGERIES = {
    "forge-run-code": (
        "run_code replaced by a functools.partial that swallows errors",
        FORGE_RUN_CODE,
    ),
    "forge-run-cell": ("run_cell replaced: test cells become `pass`", FORGE_RUN_CELL),
    "forge-ast": ("AST transformer claiming to be IPython's wraps statements in try", FORGE_AST),
    "forge-input": ("input transformers rewrite every cell with an assert", FORGE_INPUT),
    "forge-tracer": (
        "sys.settrace tracer (a partial) rewrites the AST in transform_ast",
        FORGE_TRACER,
    ),
    "forge-exceptions": (
        "AssertionError replaced, set_custom_exc swallows errors",
        FORGE_EXCEPTIONS,
    ),
    "forge-outputs": ("kernel session drops error messages and rewrites replies", FORGE_OUTPUTS),
    "forge-equality": ("answer is an int subclass whose == is always true", FORGE_EQUALITY),
    "forge-libraries": ("onnx.checker, numpy.testing, unittest replaced", FORGE_LIBRARIES),
    "forge-bridge": ("the grader's bridge in the kernel replaced: pickle payloads", FORGE_BRIDGE),
    "forge-module": ("onnxruntime.py, numpy/ written for the grader to import", FORGE_MODULE),
}


def escape_code(ctx: Context) -> str:
    root = str(ctx.course_root)
    return f"""
import os, socket
MARK, ROOT = {ctx.marker!r}, {root!r}
found = []
for target in [ROOT + "/secret-marker.txt", ROOT + "/gradebook.db",
               ROOT + "/source/00-template/00-template.ipynb",
               ROOT + "/submitted/ok-full/00-template/00-template.ipynb",
               "../../secret-marker.txt", "/etc/shadow", "/root/.bash_history"]:
    try:
        data = open(target, "rb").read()
        found.append(target + (" (marker!)" if MARK.encode() in data else ""))
    except Exception:
        pass
skip = {{"proc", "sys", "dev", "usr", "etc", ".venv", ".pyenv", "site-packages"}}
for base in ["/", os.path.dirname(ROOT)]:
    for dirpath, dirs, files in os.walk(base):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            if name.endswith((".db", ".ipynb")) or "secret" in name or MARK in name:
                found.append(os.path.join(dirpath, name))
written = []
for target in [ROOT + "/pwned-" + MARK, "/tmp/pwned-" + MARK, "/usr/pwned-" + MARK]:
    try:
        open(target, "w").write(MARK)
        written.append(target)
    except Exception:
        pass
print("READ:", found)
print("WROTE:", [w for w in written if not w.startswith("/tmp/")])
"""


def network_code(ctx: Context) -> str:
    return f"""
import socket, urllib.request
reached = []
for host, port in [("127.0.0.1", {ctx.port}), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
    try:
        socket.create_connection((host, port), timeout=3).close()
        reached.append((host, port))
    except OSError:
        pass
try:
    urllib.request.urlopen("http://pypi.org/simple/", timeout=3)
    reached.append("pypi.org")
except Exception:
    pass
print("NETWORK-REACHED" if reached else "network unreachable", reached)
"""


def cases() -> list[Case]:
    # lite notebooks with right answers earn everything: the verdict kernel runs the release's
    # narrative itself (exercise 2's tests get the instructor's fitted pipeline, not the student's)
    full1 = {"ex1": "full", "ex2": "full"}
    ex1_wrong = {"ex1": 0, "ex2": "full"}
    return [
        Case(
            "ok-full",
            "correct, full notebook (with the widget)",
            "graded",
            {"ex1": "full", "ex2": "full"},
        ),
        Case("blank", "untouched release", "graded", {"ex1": 0, "ex2": 0}),
        Case(
            "partial",
            "full notebook, exercise 1 wrong, exercise 2 right",
            "graded",
            {"ex1": 0, "ex2": "full"},
        ),
        Case("loop", "infinite loop (interrupted at the cell limit)", "graded", full1, notes=None),
        Case("sleep", "long sleep (interrupted at the cell limit)", "graded", full1),
        Case(
            "loop-sigint-ignored",
            "busy loop that ignores the interrupt",
            "failed",
            category="cell-timeout",
            reason=r"did not stop when interrupted \(the notebook ignored SIGINT",
        ),
        Case(
            "memory",
            "memory exhaustion (capped by RLIMIT_DATA)",
            "graded",
            full1,
            checks=("memory-error",),
        ),
        Case(
            "fork-flood",
            "process flood (capped by RLIMIT_NPROC)",
            "graded",
            full1,
            checks=("no-leftover", "process-limit"),
        ),
        Case(
            "orphans",
            "processes left running (setsid, double fork)",
            "graded",
            full1,
            checks=("no-leftover",),
        ),
        Case(
            "os-exit",
            "kernel death: os._exit(3)",
            "failed",
            category="kernel-died",
            reason=r"exited with code 3",
        ),
        Case(
            "segfault",
            "kernel death: segmentation fault",
            "failed",
            category="kernel-died",
            reason=r"segmentation fault",
        ),
        Case(
            "output-flood",
            "output flood (print in a loop)",
            "failed",
            category="output-limit",
            reason=r"more than .* MB of output",
        ),
        Case(
            "one-huge-message",
            "one display message larger than the output limit",
            "failed",
            category="output-limit",
            reason=r"more than .* MB of output",
        ),
        Case(
            "loop-swallows-interrupt",
            "a loop whose handler swallows KeyboardInterrupt",
            "failed",
            category="cell-timeout",
            reason=r"SIGINT was not ignored",
        ),
        Case(
            "connection-file",
            "appends to its own connection file (on the grader's disk)",
            "graded",
            full1,
            checks=("connection-file",),
        ),
        Case(
            "corrupt",
            "corrupt notebook (truncated JSON)",
            "failed",
            category="corrupt-notebook",
            reason=r"not valid notebook JSON",
        ),
        Case(
            "empty",
            "empty file",
            "failed",
            category="empty-notebook",
            reason=r"is empty",
        ),
        Case(
            "renamed",
            "renamed notebook (my_homework.ipynb)",
            "graded",
            full1,
            notes=r"renamed",
            filename="my_homework.ipynb",
        ),
        Case(
            "old-format",
            "old notebook format (nbformat 3)",
            "graded",
            full1,
            notes=r"converted from notebook format 3",
        ),
        Case("wrong-kernel", "wrong kernel (julia) in the metadata", "graded", full1),
        Case(
            "deleted-tests",
            "test cells deleted (put back and run)",
            "graded",
            full1,
            notes=r"was missing",
        ),
        Case(
            "edited-tests",
            "wrong answer, test cells edited to pass",
            "graded",
            ex1_wrong,
            notes=r"was edited",
        ),
        Case(
            "duplicated-tests",
            "wrong answer, test cells duplicated and edited, fake 100-point cell",
            "graded",
            ex1_wrong,
            notes=r"ex1-bonus|duplicates",
        ),
        Case(
            "tamper-traceback",
            "wrong answer, error display disabled (showtraceback replaced)",
            "graded",
            ex1_wrong,
            notes=r"error reporting is disabled|showtraceback",
        ),
        Case(
            "tamper-testing",
            "testing functions replaced (numpy.testing, builtins.print)",
            "graded",
            full1,
            notes=r"numpy\.testing\.assert_allclose",
        ),
        Case(
            "tamper-hook",
            "IPython hook watching every cell",
            "graded",
            full1,
            notes=r"pre_run_cell",
        ),
        Case(
            "forged-score",
            "wrong answer that sends a forged score (execute_result)",
            "graded",
            ex1_wrong,
        ),
        *[
            Case(
                student,
                f"all wrong + {kind}",
                "graded",
                {"ex1": 0, "ex2": 0},
                checks=("blank-score", "not-pwned"),
            )
            for student, (kind, _code) in FORGERIES.items()
        ],
        Case(
            "script-output",
            "outputs live script (HTML <script>, JavaScript) for the instructor's browser",
            "graded",
            full1,
            checks=("feedback-inert",),
        ),
        Case(
            "symlink-notebook",
            "submitted/ holds a symbolic link to the instructor's source notebook",
            "failed",
            category="not-a-notebook",
            reason=r"symbolic link",
            checks=("feedback-clean",),
        ),
        Case(
            "oversized",
            "a 60 MB notebook",
            "failed",
            category="too-large",
            reason=r"MB",
        ),
        Case(
            "read-secrets",
            "reads hidden tests, solutions, gradebook, other students; writes outside",
            "graded",
            full1,
            checks=("no-secrets",),
        ),
        Case(
            "network",
            "network access (internet and the grader's loopback)",
            "graded",
            full1,
            checks=("no-network",),
        ),
        Case(
            "leak-hidden",
            "prints hidden tests and their inputs (for the feedback)",
            "graded",
            full1,
            checks=("feedback-clean",),
        ),
    ]


def build(case: Case, ctx: Context) -> bytes:
    """The submitted file's bytes for a case."""
    good = solved(ctx)
    lite_good = lite(good)
    s = case.student
    if s == "ok-full":
        nb = good
    elif s == "blank":
        nb = ctx.release
    elif s == "partial":
        nb = wrong_first_exercise(good)
    elif s == "loop":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), LOOP)
    elif s == "sleep":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), SLEEP)
    elif s == "loop-sigint-ignored":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), SIGINT_IGNORED)
    elif s == "memory":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), MEMORY)
    elif s == "fork-flood":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), FORK_FLOOD)
    elif s == "orphans":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), ORPHANS)
    elif s == "os-exit":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), OS_EXIT)
    elif s == "segfault":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), SEGFAULT)
    elif s == "output-flood":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), OUTPUT_FLOOD)
    elif s == "one-huge-message":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), ONE_HUGE_MESSAGE)
    elif s == "loop-swallows-interrupt":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), SWALLOWS_INTERRUPT)
    elif s == "connection-file":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), CONNECTION_FILE)
    elif s == "corrupt":
        return nbformat.writes(ctx.release).encode()[:700]  # a truncated upload
    elif s == "empty":
        return b""
    elif s == "renamed":
        nb = lite_good
    elif s == "old-format":
        v3 = nbformat.convert(lite_good, 3)
        return json.dumps(v3).encode()
    elif s == "wrong-kernel":
        nb = copy.deepcopy(lite_good)
        nb.metadata["kernelspec"] = {
            "name": "julia-1.10",
            "display_name": "Julia 1.10",
            "language": "julia",
        }
        nb.metadata["language_info"] = {"name": "julia", "version": "1.10.0"}
    elif s == "deleted-tests":
        nb = copy.deepcopy(lite_good)
        tests = set(_ex1_tests(nb))
        nb.cells = [c for c in nb.cells if _gid(c) not in tests]
    elif s == "edited-tests":
        nb = wrong_first_exercise(lite_good)
        for cell in nb.cells:
            if _gid(cell) in _ex1_tests(nb):
                cell.source = "pass  # tests edited by the student\n"
    elif s == "duplicated-tests":
        nb = wrong_first_exercise(lite_good)
        extra = []
        for cell in nb.cells:
            if _gid(cell) in _ex1_tests(nb):
                dup = copy.deepcopy(cell)
                dup.id = "copy-" + dup.id  # JupyterLab gives a pasted cell a new id
                dup.source = "pass  # a copy that always passes\n"
                extra.append((nb.cells.index(cell), dup))
        for index, dup in reversed(extra):
            nb.cells.insert(index + 1, dup)
        fake = nbformat.v4.new_code_cell("pass")
        fake.metadata["nbgrader"] = {
            "grade": True,
            "grade_id": "ex1-bonus",
            "points": 100,
            "solution": False,
            "locked": True,
            "schema_version": 3,
            "task": False,
        }
        nb.cells.append(fake)
    elif s == "tamper-traceback":
        nb = insert_before(
            wrong_first_exercise(lite_good), _gid(first_solution(lite_good)), TAMPER_TRACEBACK
        )
    elif s == "tamper-testing":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), TAMPER_TESTING)
    elif s == "tamper-hook":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), TAMPER_HOOK)
    elif s in FORGERIES:
        wrong = wrong_everything(lite_good)
        if s == "forge-equality":
            nb = copy.deepcopy(wrong)
            first_solution(nb).source = FORGE_EQUALITY
        else:
            nb = insert_before(wrong, _gid(first_solution(wrong)), FORGERIES[s][1])
    elif s == "script-output":
        nb = append(lite_good, SCRIPT_OUTPUT)
    elif s == "symlink-notebook":
        return b""  # the test's fixture makes the link (to source/)
    elif s == "oversized":
        nb = copy.deepcopy(lite_good)
        nb.cells.append(nbformat.v4.new_markdown_cell("x" * (60 * 2**20)))
    elif s == "forged-score":
        nb = copy.deepcopy(lite_good)
        first_solution(nb).source = FORGED_SCORE
    elif s == "read-secrets":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), escape_code(ctx))
    elif s == "network":
        nb = insert_before(lite_good, _gid(first_solution(lite_good)), network_code(ctx))
    elif s == "leak-hidden":
        nb = copy.deepcopy(lite_good)
        first_solution(nb).source = LEAK_HIDDEN
        nb = append(nb, LEAK_LATER)
    else:
        raise KeyError(s)
    return nbformat.writes(nb).encode()
