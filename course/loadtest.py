"""A bounded load generator for HTTP inference servers on this machine, with latency percentiles.

A load test sends the same kind of request many times from several concurrent clients and
measures what a user of the service sees: requests per second (throughput) and the time each
request takes (latency: median, p90, p99). This module runs one closed-loop load test at a time:
``concurrency`` clients, each on its own keep-alive connection, send a request, wait for the
answer, and send the next, until ``requests`` requests were sent or ``time_limit_s`` passed.
Both bounds always apply, so a load test can never run away.

It talks to **loopback addresses only** (127.0.0.1, ::1, localhost) unless ``allow_remote=True``:
load-testing a server you do not own is an attack, not a measurement.

The client is a lean asyncio HTTP/1.1 client (raw sockets, no third-party HTTP library) running
in its own thread, so it works inside a Jupyter kernel whose event loop is already running.

Example::

    from course import loadtest
    body = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}'
    result = loadtest.run_load("http://127.0.0.1:8000", "/v2/models/mlp/infer", [body],
                               concurrency=8, requests=400, time_limit_s=5)
    result.throughput_rps, result.p50_ms, result.p99_ms
    frame = loadtest.sweep("http://127.0.0.1:8000", "/v2/models/mlp/infer", [body],
                           concurrencies=(1, 4, 16), requests=300, label="batching off")
    loadtest.plot_sweep(frame)
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from course import figures
from course.palette import OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd
    from matplotlib.figure import Figure

    from course.widgets import Explorer

__all__ = [
    "LoadResult",
    "LoadTestError",
    "dashboard_view",
    "littles_law_concurrency",
    "plot_operating_curve",
    "plot_sweep",
    "run_load",
    "serving_dashboard",
    "sweep",
]

#: Upper bounds that hold whatever the caller asks: a load test stays small and short.
MAX_REQUESTS = 20_000
MAX_CONCURRENCY = 256
MAX_TIME_LIMIT_S = 120.0
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class LoadTestError(RuntimeError):
    """A load test could not run as asked; the message says what to change."""


Body = bytes | tuple[bytes, int | None]


@dataclass
class LoadResult:
    """What one load test measured.

    ``latencies_ms`` holds one entry per answered request (error answers included: an error is
    a response too), ``errors`` counts every request that did not succeed: answers that were
    not HTTP 200, plus the ``unanswered`` requests (timeouts, closed connections), which have
    no latency; ``error_samples`` keeps the first few messages.
    ``stopped_by`` says which bound ended the test: ``"requests"`` or ``"time"``.

    Example::

        >>> r = LoadResult("demo", 2, sent=4, elapsed_s=0.5,
        ...                latencies_ms=np.array([10.0, 12.0, 11.0, 30.0]))
        >>> r.throughput_rps, r.p50_ms
        (8.0, 11.5)
    """

    label: str
    concurrency: int
    sent: int
    elapsed_s: float
    latencies_ms: np.ndarray
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    stopped_by: str = "requests"
    unanswered: int = 0

    @property
    def completed(self) -> int:
        """Requests that got an answer (successful or not)."""
        return int(self.latencies_ms.size)

    @property
    def ok(self) -> int:
        """Requests answered with HTTP 200."""
        return max(self.completed - (self.errors - self.unanswered), 0)

    @property
    def throughput_rps(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile of the latencies in milliseconds (NaN when none)."""
        if self.latencies_ms.size == 0:
            return float("nan")
        return float(np.percentile(self.latencies_ms, q))

    @property
    def p50_ms(self) -> float:
        """Median latency (ms)."""
        return self.percentile_ms(50)

    @property
    def p90_ms(self) -> float:
        """90th percentile latency (ms)."""
        return self.percentile_ms(90)

    @property
    def p99_ms(self) -> float:
        """99th percentile latency (ms): one request in a hundred is slower."""
        return self.percentile_ms(99)

    @property
    def mean_ms(self) -> float:
        """Mean latency (ms)."""
        return float(self.latencies_ms.mean()) if self.latencies_ms.size else float("nan")

    def to_row(self) -> dict[str, Any]:
        """A flat dict for a table (one row of :func:`sweep`'s DataFrame)."""
        return {
            "label": self.label,
            "concurrency": self.concurrency,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "unanswered": self.unanswered,
            "elapsed_s": self.elapsed_s,
            "throughput_rps": self.throughput_rps,
            "mean_ms": self.mean_ms,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "stopped_by": self.stopped_by,
        }

    def __repr__(self) -> str:
        return (
            f"LoadResult({self.label!r}, concurrency={self.concurrency}: {self.ok}/{self.sent} ok "
            f"in {self.elapsed_s:.2f} s, {self.throughput_rps:,.0f} req/s, p50 {self.p50_ms:.2f} ms,"
            f" p99 {self.p99_ms:.2f} ms, {self.errors} errors ({self.unanswered} unanswered), "
            f"stopped by {self.stopped_by})"
        )


# --------------------------------------------------------------------------------------------
# the client


def _target(url: str, allow_remote: bool) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise LoadTestError(f"only plain http:// URLs are supported, got {url!r}")
    host = parts.hostname
    if not host:
        raise LoadTestError(f"no host in {url!r}: give e.g. 'http://127.0.0.1:8000'")
    port = parts.port or 80
    if not allow_remote and not _is_loopback(host):
        raise LoadTestError(
            f"{host} is not a loopback address: this load generator only targets servers on this "
            "machine (127.0.0.1, ::1, localhost). Load-test only servers you own, and pass "
            "allow_remote=True if you really mean it"
        )
    return host, port


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _raw_request(host: str, port: int, path: str, body: Body, headers: dict[str, str]) -> bytes:
    if isinstance(body, tuple):
        payload, header_length = body
    else:
        payload, header_length = body, None
    if not isinstance(payload, bytes | bytearray):
        raise LoadTestError(
            f"request bodies must be bytes (or (bytes, json_header_length)), got "
            f"{type(payload).__name__}: encode them first, e.g. json.dumps(obj).encode()"
        )
    shown_host = f"[{host}]" if ":" in host else host
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {shown_host}:{port}",
        f"Content-Length: {len(payload)}",
    ]
    given = {k.lower() for k in headers}
    if "content-type" not in given:
        kind = "application/octet-stream" if header_length is not None else "application/json"
        lines.append(f"Content-Type: {kind}")
    if header_length is not None:
        lines.append(f"Inference-Header-Content-Length: {header_length}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + bytes(payload)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError):
        raise ConnectionError(f"not an HTTP response: {status_line[:80]!r}") from None
    length = None
    keep_alive = True
    for line in header_lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            keep_alive = False
        elif name == "transfer-encoding" and "chunked" in value.lower():
            raise ConnectionError("chunked responses are not supported by this load generator")
    body = await reader.readexactly(length) if length else b""
    return status, body, keep_alive


@dataclass
class _Shared:
    requests: list[bytes]
    limit: int
    deadline: float
    next_index: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    unanswered: int = 0
    samples: list[str] = field(default_factory=list)
    stopped_by: str = "requests"
    created: float = field(default_factory=time.perf_counter)

    def take(self) -> int | None:
        if self.next_index >= self.limit:
            return None
        if time.perf_counter() >= self.deadline:
            self.stopped_by = "time"
            return None
        index = self.next_index
        self.next_index += 1
        return index

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(message)


async def _connect(
    host: str, port: int, timeout_s: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _client(
    host: str,
    port: int,
    shared: _Shared,
    timeout_s: float,
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
) -> None:
    reader, writer = connection if connection is not None else (None, None)
    try:
        while (index := shared.take()) is not None:
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await _connect(host, port, timeout_s)
                assert reader is not None
                writer.write(shared.requests[index % len(shared.requests)])
                status, body, keep_alive = await asyncio.wait_for(_read_response(reader), timeout_s)
            except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                shared.unanswered += 1
                shared.error(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            shared.latencies.append(time.perf_counter() - started)
            if status != 200:
                shared.error(f"HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
            if not keep_alive:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _run(host: str, port: int, shared: _Shared, concurrency: int, timeout_s: float) -> float:
    """Open the connections first (not timed), then let every client loop; return the wall time."""
    opened = await asyncio.gather(
        *(_connect(host, port, timeout_s) for _ in range(concurrency)), return_exceptions=True
    )
    connections = [c if isinstance(c, tuple) else None for c in opened]
    for failure in (c for c in opened if isinstance(c, BaseException)):
        shared.samples.append(f"connect: {type(failure).__name__}: {failure}")
    if all(c is None for c in connections):
        raise LoadTestError(
            f"cannot connect to {host}:{port}: {shared.samples[0]} (is the server running, and "
            "is the URL right?)"
        )
    shared.deadline += time.perf_counter() - shared.created
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(host, port, shared, timeout_s, connection) for connection in connections)
    )
    return time.perf_counter() - started


def _in_thread(coroutine: Any) -> Any:
    """Run a coroutine to completion in a fresh event loop on its own thread."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="course.loadtest", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_load(
    url: str,
    path: str,
    bodies: Sequence[Body],
    *,
    concurrency: int = 1,
    requests: int = 200,
    time_limit_s: float = 10.0,
    warmup: int = 0,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
    label: str = "",
    allow_remote: bool = False,
) -> LoadResult:
    """Send ``requests`` POST requests from ``concurrency`` closed-loop clients; measure them.

    Args:
        url: the server, e.g. ``"http://127.0.0.1:8000"`` (loopback only unless ``allow_remote``).
        path: the endpoint, e.g. ``"/v2/models/mlp/infer"``.
        bodies: request bodies, used in turn: ``bytes`` (sent as JSON) or ``(bytes,
            json_header_length)`` for the Open Inference Protocol's binary tensor format.
        concurrency: clients sending at the same time (each waits for its answer first).
        requests: how many requests to send in all (at most 20,000).
        time_limit_s: stop sending new requests after this many seconds (at most 120).
        warmup: requests sent first and not measured (connections, caches, first runs).
        timeout_s: give up on one request after this long (counted as an error).
        headers: extra HTTP headers.
        label: a name for the result (e.g. ``"batching on"``).

    Returns a :class:`LoadResult`. HTTP errors and timeouts are counted, not raised.

    Example::

        >>> from course import serve
        >>> _ = serve.add_model("models", "mlp", "mlp.onnx")      # a model repository
        >>> body = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", '
        >>> body += b'"data": [1, 2, 3, 4]}]}'
        >>> with serve.start("models") as server:                   # on a free local port
        ...     r = run_load(server.url, "/v2/models/mlp/infer", [body], concurrency=2,
        ...                  requests=20, warmup=2)
        >>> r.sent, r.errors, r.p99_ms >= r.p50_ms
        (20, 0, True)
    """
    host, port = _target(url, allow_remote)
    if not bodies:
        raise LoadTestError("bodies is empty: give at least one request body")
    for name, value, high in (
        ("concurrency", concurrency, MAX_CONCURRENCY),
        ("requests", requests, MAX_REQUESTS),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
            raise LoadTestError(f"{name} must be an integer from 1 to {high}, got {value!r}")
    if not 0 < time_limit_s <= MAX_TIME_LIMIT_S:
        raise LoadTestError(
            f"time_limit_s must be in (0, {MAX_TIME_LIMIT_S:.0f}] seconds, got {time_limit_s!r}"
        )
    if not isinstance(warmup, int) or warmup < 0 or warmup > MAX_REQUESTS:
        raise LoadTestError(f"warmup must be an integer from 0 to {MAX_REQUESTS}, got {warmup!r}")
    if not path.startswith("/"):
        raise LoadTestError(f"path must start with '/', got {path!r}")
    raw = [_raw_request(host, port, path, body, dict(headers or {})) for body in bodies]
    if warmup:
        warm = _Shared(raw, warmup, time.perf_counter() + time_limit_s)
        _in_thread(_run(host, port, warm, min(concurrency, warmup), timeout_s))
    shared = _Shared(raw, requests, time.perf_counter() + time_limit_s)
    elapsed = _in_thread(_run(host, port, shared, concurrency, timeout_s))
    return LoadResult(
        label=label or f"concurrency {concurrency}",
        concurrency=concurrency,
        sent=shared.next_index,
        elapsed_s=elapsed,
        latencies_ms=np.asarray(shared.latencies, dtype=float) * 1000.0,
        errors=shared.errors,
        error_samples=shared.samples,
        unanswered=shared.unanswered,
        stopped_by=shared.stopped_by,
    )


def sweep(
    url: str,
    path: str,
    bodies: Sequence[Body],
    concurrencies: Sequence[int] = (1, 4, 16),
    *,
    requests: int = 300,
    time_limit_s: float = 5.0,
    warmup: int = 20,
    label: str = "",
    timeout_s: float = 10.0,
    allow_remote: bool = False,
) -> pd.DataFrame:
    """Run :func:`run_load` at each concurrency; return one row per load test.

    Each level sends at most ``requests`` requests within ``time_limit_s`` seconds, after
    ``warmup`` unmeasured ones. The columns are :meth:`LoadResult.to_row`'s, plus
    ``littles_law_ms`` (concurrency / throughput: the mean latency Little's law predicts for a
    closed loop; compare it with ``mean_ms``).

    Example::

        >>> from course import serve
        >>> _ = serve.add_model("models", "mlp", "mlp.onnx")
        >>> body = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", '
        >>> body += b'"data": [1, 2, 3, 4]}]}'
        >>> with serve.start("models") as server:
        ...     frame = sweep(server.url, "/v2/models/mlp/infer", [body], (1, 4), requests=20,
        ...                   warmup=2, label="batching off")
        >>> frame[["label", "concurrency", "errors"]].values.tolist()
        [['batching off', 1, 0], ['batching off', 4, 0]]
    """
    import pandas as pd

    if not concurrencies:
        raise LoadTestError("concurrencies is empty: give at least one level, e.g. (1, 4, 16)")
    rows = []
    for level in concurrencies:
        result = run_load(
            url,
            path,
            bodies,
            concurrency=level,
            requests=requests,
            time_limit_s=time_limit_s,
            warmup=warmup,
            timeout_s=timeout_s,
            label=label or path,
            allow_remote=allow_remote,
        )
        row = result.to_row()
        row["littles_law_ms"] = (
            1000.0 * level / result.throughput_rps if result.throughput_rps else float("nan")
        )
        row["first_error"] = result.error_samples[0] if result.error_samples else ""
        rows.append(row)
    return pd.DataFrame(rows)


def littles_law_concurrency(throughput_rps: float, latency_ms: float) -> float:
    """Requests in flight that Little's law implies: L = throughput x latency.

    In a closed loop (every client waits for its answer) the concurrency is fixed, so the
    latency must grow as throughput saturates: latency = concurrency / throughput.

    Example::

        >>> littles_law_concurrency(2000.0, 4.0)
        8.0
    """
    if throughput_rps < 0 or latency_ms < 0:
        raise ValueError("throughput and latency must be non-negative")
    return throughput_rps * latency_ms / 1000.0


# --------------------------------------------------------------------------------------------
# plots and the dashboard


def _check_frame(frame: pd.DataFrame) -> None:
    needed = {"label", "concurrency", "throughput_rps", "p50_ms", "p99_ms"}
    missing = needed - set(frame.columns)
    if missing:
        raise ValueError(
            f"the table lacks columns {sorted(missing)}: pass sweep(...)'s result "
            "(several sweeps joined with pandas.concat)"
        )
    if frame.empty:
        raise ValueError("the table is empty: run sweep(...) first")


def plot_sweep(
    frame: pd.DataFrame,
    *,
    title: str | None = None,
    highlight: tuple[str, int] | None = None,
) -> Figure:
    """Throughput and latency (p50 solid, p99 dashed) against concurrency, one colour per label.

    ``highlight=(label, concurrency)`` rings that measurement in both panels. Returns a
    matplotlib Figure (not registered with pyplot, so it is shown once).

    Example::

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"label": ["off", "off", "on", "on"], "concurrency": [1, 8, 1, 8],
        ...     "throughput_rps": [500.0, 1000.0, 480.0, 2400.0], "mean_ms": [2.0, 8.0, 2.1, 3.3],
        ...     "p50_ms": [2.0, 7.5, 2.0, 3.1], "p99_ms": [3.0, 20.0, 3.2, 6.0], "errors": [0] * 4})
        >>> fig = plot_sweep(frame, highlight=("on", 8))   # sweep(...) results, pandas.concat-ed
        >>> len(fig.axes)
        2
    """
    _check_frame(frame)
    fig, (left, right) = figures.figure((10, 3.6), ncols=2)
    for i, (label, part) in enumerate(frame.groupby("label", sort=False)):
        part = part.sort_values("concurrency")
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        left.plot(part["concurrency"], part["throughput_rps"], "o-", color=colour, label=label)
        right.plot(part["concurrency"], part["p50_ms"], "o-", color=colour, label=f"{label}: p50")
        right.plot(part["concurrency"], part["p99_ms"], "s--", color=colour, label=f"{label}: p99")
        if highlight is not None and highlight[0] == label:
            chosen = part[part["concurrency"] == highlight[1]]
            for ax, column in ((left, "throughput_rps"), (right, "p50_ms"), (right, "p99_ms")):
                _ring(ax, chosen["concurrency"], chosen[column])
    left.set(
        xlabel="concurrent clients (count)",
        ylabel="throughput (requests/s)",
        title="Throughput",
    )
    right.set(
        xlabel="concurrent clients (count)",
        ylabel="latency per request (ms)",
        title="Latency: median (p50) and tail (p99)",
    )
    levels = sorted({int(c) for c in frame["concurrency"]})
    for ax in (left, right):
        if levels[-1] / max(levels[0], 1) >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(level) for level in levels])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    return figures.finish(fig, title=title)


def _ring(ax: Any, x: Any, y: Any) -> None:
    """Circle the highlighted point(s) of a plot."""
    ax.plot(
        x, y, "o", markersize=13, markerfacecolor="none", markeredgecolor=OKABE_ITO[7],
        markeredgewidth=1.5,
    )  # fmt: skip


def plot_operating_curve(
    frame: pd.DataFrame, *, highlight: tuple[str, int] | None = None, title: str | None = None
) -> Figure:
    """Latency against throughput, one line per label, each point a concurrency level.

    The classic operating curve of a service: moving right along a line adds clients; where
    the line turns upwards, throughput has saturated and extra clients only add latency.
    ``highlight=(label, concurrency)`` rings one point.

    Example::

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"label": ["off", "off", "on", "on"], "concurrency": [1, 8, 1, 8],
        ...     "throughput_rps": [500.0, 1000.0, 480.0, 2400.0], "mean_ms": [2.0, 8.0, 2.1, 3.3],
        ...     "p50_ms": [2.0, 7.5, 2.0, 3.1], "p99_ms": [3.0, 20.0, 3.2, 6.0], "errors": [0] * 4})
        >>> fig = plot_operating_curve(frame, highlight=("on", 8))
        >>> fig.axes[0].get_xlabel()
        'throughput (requests/s)'
    """
    _check_frame(frame)
    fig, ax = figures.figure((6, 3.4))
    for i, (label, part) in enumerate(frame.groupby("label", sort=False)):
        part = part.sort_values("concurrency")
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        ax.plot(part["throughput_rps"], part["p50_ms"], "o-", color=colour, label=f"{label}: p50")
        ax.plot(part["throughput_rps"], part["p99_ms"], "s--", color=colour, label=f"{label}: p99")
        for _, row in part.iterrows():
            ax.annotate(
                str(int(row["concurrency"])),
                (row["throughput_rps"], row["p50_ms"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize="x-small",
                color=colour,
            )
        if highlight is not None and highlight[0] == label:
            chosen = part[part["concurrency"] == highlight[1]]
            for column in ("p50_ms", "p99_ms"):
                _ring(ax, chosen["throughput_rps"], chosen[column])
    ax.set(
        xlabel="throughput (requests/s)",
        ylabel="latency per request (ms)",
        title=title or "Operating curve (numbers: concurrent clients)",
    )
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="upper left")
    return figures.finish(fig)


def dashboard_view(frame: pd.DataFrame, concurrency: int, label: str) -> str:
    """HTML describing one measured setting of a load-test table: what a client would see.

    Picks the row of ``frame`` with this ``label`` whose concurrency is closest to
    ``concurrency``, and reports its throughput and latencies, Little's law's check, the
    change from this label's lowest concurrency, and the other labels' figures at the same
    concurrency.

    Example::

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"label": ["off", "off"], "concurrency": [1, 8],
        ...     "throughput_rps": [500.0, 1000.0], "mean_ms": [2.0, 8.0],
        ...     "p50_ms": [2.0, 7.5], "p99_ms": [3.0, 20.0], "errors": [0, 0]})
        >>> "1,000 requests/s" in dashboard_view(frame, 8, "off")
        True
    """
    _check_frame(frame)
    labels = list(dict.fromkeys(frame["label"]))
    if label not in labels:
        raise ValueError(f"no measurements labelled {label!r}; the table has {labels}")
    part = frame[frame["label"] == label]
    level = _nearest_level(frame, label, concurrency)
    row = part[part["concurrency"] == level].iloc[0]
    base = part.iloc[int(np.argmin(part["concurrency"].to_numpy()))]
    lines = [
        f"<b>{html.escape(str(label))}, {level} concurrent clients</b> (measured)",
        f"throughput: {row['throughput_rps']:,.0f} requests/s",
        f"latency: median {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms",
    ]
    if "mean_ms" in row and row["throughput_rps"] > 0:
        predicted = 1000.0 * level / row["throughput_rps"]
        lines.append(
            f"Little's law: {level} in flight / {row['throughput_rps']:,.0f} per s = "
            f"{predicted:.2f} ms mean latency predicted, {row['mean_ms']:.2f} ms measured"
        )
    if int(base["concurrency"]) != level and base["throughput_rps"] > 0:
        lines.append(
            f"vs {int(base['concurrency'])} client(s): throughput x"
            f"{row['throughput_rps'] / base['throughput_rps']:.2f}, median latency x"
            f"{row['p50_ms'] / base['p50_ms']:.2f}"
        )
    others = [
        frame[(frame["label"] == other) & (frame["concurrency"] == level)]
        for other in labels
        if other != label
    ]
    others = [o.iloc[0] for o in others if len(o)]
    if others:
        lines.append(f"other configurations at {level} clients:")
        lines += [
            f"&nbsp;&nbsp;{html.escape(str(o['label']))}: {o['throughput_rps']:,.0f} requests/s, "
            f"median {o['p50_ms']:.2f} ms, p99 {o['p99_ms']:.2f} ms"
            for o in others
        ]
    if "errors" in row and row["errors"]:
        lines.append(f"<span style='color:{OKABE_ITO[3]}'>errors: {int(row['errors'])}</span>")
    return "<br>".join(lines)


class _Html:
    """HTML that course.widgets.render_html shows as HTML, not as escaped text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text


def _nearest_level(frame: pd.DataFrame, label: str, concurrency: int) -> int:
    levels = frame.loc[frame["label"] == label, "concurrency"].to_numpy()
    return int(levels[int(np.argmin(np.abs(levels - concurrency)))])


def serving_dashboard(frame: pd.DataFrame) -> Explorer:
    """A widget over :func:`dashboard_view`: pick the clients and the configuration.

    Works from measurements already taken (no server needed), so it keeps working after the
    server is stopped. End a notebook cell with it to display it.

    Example::

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"label": ["off", "off", "on", "on"], "concurrency": [1, 8, 1, 8],
        ...     "throughput_rps": [500.0, 1000.0, 480.0, 2400.0], "mean_ms": [2.0, 8.0, 2.1, 3.3],
        ...     "p50_ms": [2.0, 7.5, 2.0, 3.1], "p99_ms": [3.0, 20.0, 3.2, 6.0], "errors": [0] * 4})
        >>> dashboard = serving_dashboard(frame)    # a widget: no server needed any more
    """
    _check_frame(frame)
    import ipywidgets as W

    from course import widgets

    levels = sorted({int(c) for c in frame["concurrency"]})
    labels = list(dict.fromkeys(frame["label"]))

    def update(concurrency: int, configuration: str) -> list[Any]:
        text = _Html(dashboard_view(frame, concurrency, configuration))
        level = _nearest_level(frame, configuration, concurrency)
        return [text, plot_operating_curve(frame, highlight=(configuration, level))]

    return widgets.explorer(
        update,
        title="Serving dashboard: measured throughput and latency",
        concurrency=W.SelectionSlider(
            options=levels, value=levels[-1], description="clients", continuous_update=False
        ),
        configuration=labels,
    )
