"""A progress bar for grading runs (stderr; one line per submission when not a terminal)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts graded and failed submissions and draws a bar.

    Example:
        >>> import io
        >>> bar = Progress("00-template", total=2, stream=io.StringIO(), enabled=True)
        >>> bar.done("alice", "graded", "5/5")
        >>> bar.graded, bar.failed
        (1, 0)
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, enabled: bool = True):
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.graded = 0
        self.failed = 0
        self.start = time.monotonic()
        self._lock = threading.Lock()
        self._last = 0.0

    @property
    def finished(self) -> int:
        return self.graded + self.failed

    def line(self) -> str:
        width = 24
        frac = self.finished / self.total if self.total else 1.0
        filled = int(round(frac * width))
        elapsed = time.monotonic() - self.start
        eta = (elapsed / self.finished * (self.total - self.finished)) if self.finished else None
        eta_text = _clock(eta) if eta is not None else "?"
        return (
            f"grading {self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.finished}/{self.total}  graded {self.graded}  failed {self.failed}  "
            f"elapsed {_clock(elapsed)}  eta {eta_text}"
        )

    def draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        with self._lock:
            self.stream.write("\r" + self.line().ljust(100))
            self.stream.flush()

    def done(self, student: str, status: str, detail: str) -> None:
        if status == "graded":
            self.graded += 1
        else:
            self.failed += 1
        if not self.enabled:
            return
        if self.tty:
            self.draw(force=True)
        else:
            with self._lock:
                self.stream.write(f"[{self.finished}/{self.total}] {student}: {status} {detail}\n")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
