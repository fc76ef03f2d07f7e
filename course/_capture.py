"""The inside layer that keeps what libraries print away from a notebook's stderr (not public).

A notebook test cell that writes to stderr scores 0, and onnxruntime, TensorFlow and torch write
there from Python (warnings, logging) and from C++ (file descriptor 2). One set of tools:

- :func:`strip_ansi`: terminal colour codes out of a message;
- :class:`LogListHandler` and :func:`captured_logs`: log records kept as lines;
- :func:`fd_capture`: what C/C++ code writes to a file descriptor, kept;
- :func:`filtered_stderr_fd`: the same, re-emitting every line not known to be noise
  (:data:`TF_IMPORT_NOISE`);
- :func:`quiet_native`: logs and file descriptor 2 kept as notes, for library calls (such as
  onnxruntime's quantization tools) whose chatter is never the learner's business.

>>> strip_ansi("\\x1b[96mstep 1/3\\x1b[0m")
'step 1/3'
>>> import logging
>>> with captured_logs() as lines:
...     logging.getLogger("demo").warning("kept, not printed")
>>> lines
['WARNING demo: kept, not printed']
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Lines TensorFlow's C++ runtime writes to stderr while it loads, before it reads
# TF_CPP_MIN_LOG_LEVEL (absl logging is not initialised yet). They are informational only.
TF_IMPORT_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
    "cpu_feature_guard.cc",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "TF-TRT Warning",
)


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (torch's export errors contain them)."""
    return ANSI.sub("", text)


class LogListHandler(logging.Handler):
    """Keeps each record as ``"LEVEL logger: message"`` (colour codes removed; a logged
    exception adds its type and last line)."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record must not break the capture
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]  # a logged exception: keep its last line, the useful one
            last = (str(exc).strip().splitlines() or [""])[-1]
            message += f" [{type(exc).__name__}: {last}]"
        self.lines.append(f"{record.levelname} {record.name}: {strip_ansi(message)}")


def warning_lines(caught: Iterable[warnings.WarningMessage]) -> list[str]:
    """``"Category: message"`` for each distinct recorded warning, colour codes removed."""
    lines: list[str] = []
    for w in caught:
        line = f"{w.category.__name__}: {strip_ansi(str(w.message))}"
        if line not in lines:
            lines.append(line)
    return lines


@contextlib.contextmanager
def captured_logs(level: int = logging.WARNING) -> Iterator[list[str]]:
    """Keep the records that reach the root logger (at ``level`` and above) as lines, and keep
    them off stderr: while the block runs, the root logger's own handlers are set aside."""
    handler = LogListHandler(level)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [handler]
    try:
        yield handler.lines
    finally:
        root.handlers = saved


@contextlib.contextmanager
def fd_capture(fd: int) -> Iterator[Callable[[], str]]:
    """Point file descriptor ``fd`` at a temporary file; yield a reader for what was written
    (complete once the block has ended)."""
    text: list[str] = []
    stream = {1: sys.stdout, 2: sys.stderr}.get(fd)
    if stream is not None:
        stream.flush()
    try:
        saved = os.dup(fd)
    except OSError:  # pragma: no cover - no such descriptor (embedded interpreter)
        yield lambda: ""
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield lambda: "".join(text)
        finally:
            if stream is not None:
                stream.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            text.append(tmp.read().decode(errors="replace"))


@contextlib.contextmanager
def filtered_stderr_fd(noise: tuple[str, ...]) -> Iterator[None]:
    """Capture what C/C++ code writes to file descriptor 2; re-emit every line not in ``noise``."""
    with fd_capture(2) as read:
        yield
    kept = [ln for ln in read().splitlines() if ln.strip() and not any(n in ln for n in noise)]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")


@contextlib.contextmanager
def quiet_native() -> Iterator[list[str]]:
    """Keep root-logger warnings and whatever is written to stderr (``sys.stderr`` and file
    descriptor 2) as note lines (first line of each, colour codes removed, duplicates dropped):
    for library calls whose chatter must not reach a notebook's stderr. The list is complete
    once the block ends."""
    notes: list[str] = []
    py_err = io.StringIO()  # in a notebook sys.stderr is the kernel's stream, not fd 2
    with captured_logs() as lines, fd_capture(2) as read, contextlib.redirect_stderr(py_err):
        yield notes
    found = [ln.split(": ", 1)[-1] for ln in lines] + [
        strip_ansi(ln).strip() for ln in (read() + py_err.getvalue()).splitlines()
    ]
    for line in found:
        first = line.strip().splitlines()[0] if line.strip() else ""
        if first and first not in notes:
            notes.append(first)
