"""Scheduling inference: one request per run, or dynamic batching of concurrent requests.

Both schedulers run onnxruntime in a thread pool, so the event loop keeps accepting and decoding
requests while a model runs, and both keep Triton-style statistics (:class:`ModelStats`).

:class:`DynamicBatcher` queues validated requests for one model version. When the model is idle
it takes the oldest request, waits until the queued requests that can share its batch (same
input datatypes and same shape after the first dimension) reach ``max_batch_size`` rows or the
oldest has waited ``max_queue_delay`` seconds, concatenates them along the first dimension, runs
the model once and splits the outputs back, row range by row range. Requests arriving during a run
wait for the next batch, so batches grow with the load. If a batched run fails, each of its
requests is run on its own, so a request that makes the model fail never fails its neighbours.

A model with an ``instance_group`` of N instances has N sessions (``ModelVersion.sessions``): a
run waits for a free instance, so up to N runs overlap, as Triton's instances do. The batcher
forms a batch whenever an instance is free, so with N instances the queue is shared by N
batches in flight. Without an ``instance_group`` the behaviour is the single-instance one: one
batch at a time; without batching, runs overlap on one session, up to the thread pool's size.

Example: a model whose configuration asks for dynamic batching gets a :class:`DynamicBatcher`
(:func:`make_scheduler`); the server starts it and awaits ``batcher.infer({"x": rows},
rows=len(rows))`` once per request::

    batcher = DynamicBatcher(model, executor, ModelStats(), max_batch_size=32, max_queue_delay=0.002)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from course.serve.protocol import ProtocolError
from course.serve.repository import ModelVersion

__all__ = ["DirectScheduler", "DynamicBatcher", "ModelStats", "Scheduler", "make_scheduler"]


@dataclass
class Duration:
    """A count and the total nanoseconds spent (Triton's ``StatisticDuration``)."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        """Record ``count`` events that took ``ns`` nanoseconds in all."""
        self.count += count
        self.ns += ns

    def to_json(self) -> dict[str, int]:
        """``{"count": ..., "ns": ...}``."""
        return {"count": self.count, "ns": self.ns}


@dataclass
class ModelStats:
    """Counters for one model version, reported in Triton's statistics format.

    ``inference_count`` counts rows (each row of a batched request is one inference),
    ``execution_count`` counts model runs: with dynamic batching the second grows slower.

    Example::

        >>> stats = ModelStats()
        >>> stats.record_execution(rows=8, requests=3, ns=1000)
        >>> stats.to_triton("mlp", "1")["batch_stats"][0]["batch_size"]
        8
    """

    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    inference_count: int = 0
    execution_count: int = 0
    batches: dict[int, Duration] = field(default_factory=dict)
    last_inference_ms: int = 0

    def record_execution(self, rows: int, requests: int, ns: int) -> None:
        """Record one successful model run over ``rows`` rows from ``requests`` requests."""
        self.execution_count += 1
        self.inference_count += rows
        self.compute_infer.add(ns, requests)
        self.batches.setdefault(rows, Duration()).add(ns)
        self.last_inference_ms = int(time.time() * 1000)

    def to_triton(self, name: str, version: str) -> dict[str, Any]:
        """One entry of Triton's ``model_stats`` list."""
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {
                "success": self.success.to_json(),
                "fail": self.fail.to_json(),
                "queue": self.queue.to_json(),
                "compute_infer": self.compute_infer.to_json(),
            },
            "batch_stats": [
                {"batch_size": size, "compute_infer": self.batches[size].to_json()}
                for size in sorted(self.batches)
            ],
        }


def _timed_run(
    model: ModelVersion, inputs: Mapping[str, np.ndarray], instance: int = 0
) -> tuple[dict[str, np.ndarray], int, int]:
    started = time.perf_counter_ns()
    outputs = model.run(inputs, instance)
    return outputs, started, time.perf_counter_ns()


def _failure(model: ModelVersion, exc: BaseException) -> ProtocolError:
    if isinstance(exc, ProtocolError):
        return exc
    return ProtocolError(
        f"model '{model.name}' version {model.version} failed on this request: {exc}", status=500
    )


#: A model whose runs take less than this (moving average) runs on the event loop's thread:
#: handing a 10-microsecond run to a worker thread costs more than the run itself.
INLINE_RUN_SECONDS = 0.0002


class Scheduler:
    """Runs requests for one model version; ``infer`` returns every output by name.

    Runs go to the thread pool, except for models so fast (a moving average of their run time
    under :data:`INLINE_RUN_SECONDS`) that the hand-off to a thread would cost more than the run.
    """

    def __init__(self, model: ModelVersion, executor: Executor, stats: ModelStats) -> None:
        self.model = model
        self.executor = executor
        self.stats = stats
        self.inline_below = INLINE_RUN_SECONDS
        self._average_run: float | None = None
        self._free: asyncio.Queue[int] = asyncio.Queue()
        for instance in range(len(model.sessions)):
            self._free.put_nowait(instance)

    @property
    def instances(self) -> int:
        """How many instances (sessions) of the model run requests."""
        return len(self.model.sessions)

    async def _acquire(self) -> int:
        """Wait for a free instance; return its index (give it back with :meth:`_release`)."""
        return await self._free.get()

    def _release(self, instance: int) -> None:
        self._free.put_nowait(instance)

    async def _run(
        self, inputs: Mapping[str, np.ndarray], instance: int = 0
    ) -> tuple[dict[str, np.ndarray], int, int]:
        """Run the model once on ``instance``: inline when it is known to be fast, else in the
        thread pool."""
        if self._average_run is not None and self._average_run < self.inline_below:
            result = _timed_run(self.model, inputs, instance)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                self.executor, _timed_run, self.model, inputs, instance
            )
        seconds = (result[2] - result[1]) / 1e9
        average = self._average_run
        self._average_run = seconds if average is None else 0.8 * average + 0.2 * seconds
        return result

    @property
    def queued(self) -> int:
        """How many requests wait for a batch (always 0 without dynamic batching)."""
        return 0

    def start(self) -> None:
        """Start background work (needs a running event loop)."""

    async def stop(self) -> None:
        """Finish every accepted request, then stop."""

    async def infer(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Run the model on one validated request (``rows``: its batch size, 0 if unbatched)."""
        raise NotImplementedError


class DirectScheduler(Scheduler):
    """Each request is one model run (dynamic batching off).

    With an ``instance_group``, a request waits for a free instance (one run per instance at a
    time); without one, runs overlap on the single session, up to the thread pool's size.
    """

    async def infer(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Run the model on this request alone, in the thread pool."""
        submitted = time.perf_counter_ns()
        grouped = self.model.config.instance_count is not None
        instance = await self._acquire() if grouped else 0
        try:
            outputs, started, ended = await self._run(inputs, instance)
        except Exception as exc:
            raise _failure(self.model, exc) from exc
        finally:
            if grouped:
                self._release(instance)
        self.stats.queue.add(started - submitted)
        self.stats.record_execution(max(rows, 1), 1, ended - started)
        return outputs


class _Item:
    __slots__ = ("arrived", "future", "inputs", "rows", "signature")

    def __init__(
        self,
        inputs: dict[str, np.ndarray],
        rows: int,
        future: asyncio.Future[dict[str, np.ndarray]],
        arrived: float,
    ) -> None:
        self.inputs = inputs
        self.rows = rows
        self.future = future
        self.arrived = arrived
        self.signature = tuple((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items())


class DynamicBatcher(Scheduler):
    """Gathers concurrent requests into batches of at most ``max_batch_size`` rows.

    ``max_queue_delay`` (seconds) bounds how long the oldest queued request waits for others
    before its batch runs.
    """

    def __init__(
        self,
        model: ModelVersion,
        executor: Executor,
        stats: ModelStats,
        *,
        max_batch_size: int,
        max_queue_delay: float,
    ) -> None:
        super().__init__(model, executor, stats)
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max_queue_delay
        self._pending: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop accepting requests, run every queued one (without waiting), then end the loop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        while self._running:
            await asyncio.gather(*self._running)

    @property
    def queued(self) -> int:
        """How many requests wait for a batch."""
        return len(self._pending)

    async def infer(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Queue one validated request and wait for its share of a batch's outputs."""
        if self._closing or self._task is None:
            raise ProtocolError("the server is shutting down; retry on another server", 503)
        loop = asyncio.get_running_loop()
        item = _Item(inputs, rows, loop.create_future(), loop.time())
        self._pending.append(item)
        self._wakeup.set()
        return await item.future

    def _ready_rows(self, first: _Item) -> int:
        rows = 0
        for item in self._pending:
            if item.signature == first.signature:
                rows += item.rows
                if rows >= self.max_batch_size:
                    break
        return rows

    def _take(self, first: _Item) -> list[_Item]:
        batch: list[_Item] = []
        keep: deque[_Item] = deque()
        rows = 0
        for item in self._pending:
            if item.future.done():  # the client went away: nothing to answer
                continue
            if item.signature == first.signature and rows + item.rows <= self.max_batch_size:
                batch.append(item)
                rows += item.rows
            else:
                keep.append(item)
        self._pending = keep
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            # a batch forms when an instance is free to run it: with one instance, after the
            # previous batch; meanwhile requests queue and the next batch grows with the load
            instance = await self._acquire()
            first = self._pending[0]
            deadline = first.arrived + self.max_queue_delay
            if not self._closing and loop.time() < deadline:
                timer = loop.call_at(deadline, self._wakeup.set)
                try:
                    while (
                        not self._closing
                        and loop.time() < deadline
                        and self._ready_rows(first) < self.max_batch_size
                    ):
                        self._wakeup.clear()
                        await self._wakeup.wait()
                finally:
                    timer.cancel()
            batch = self._take(first)
            if not batch:
                self._release(instance)
                continue
            if self.instances == 1:
                await self._guarded(batch, instance)
            else:
                task = loop.create_task(self._guarded(batch, instance))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _guarded(self, batch: list[_Item], instance: int) -> None:
        """Run a batch on ``instance``, answer its requests, and give the instance back."""
        try:
            await self._execute(batch, instance)
        except Exception as exc:  # a bug here must not leave requests waiting forever
            for item in batch:
                self._answer(item, exception=_failure(self.model, exc))
        finally:
            self._release(instance)

    async def _execute(self, batch: list[_Item], instance: int = 0) -> None:
        loop = asyncio.get_running_loop()
        first = batch[0]
        if len(batch) == 1:
            inputs = first.inputs
        else:
            inputs = {
                name: np.concatenate([it.inputs[name] for it in batch]) for name in first.inputs
            }
        submitted = loop.time()
        try:
            outputs, started, ended = await self._run(inputs, instance)
            parts = self._split(outputs, batch)
        except Exception as exc:
            if len(batch) == 1:
                self._answer(first, exception=_failure(self.model, exc))
            else:
                await self._isolate(batch, instance)
            return
        waited = sum(submitted - item.arrived for item in batch)
        self.stats.queue.add(int(waited * 1e9), len(batch))
        self.stats.record_execution(sum(it.rows for it in batch), len(batch), ended - started)
        for item, part in zip(batch, parts, strict=True):
            self._answer(item, result=part)

    def _split(
        self, outputs: dict[str, np.ndarray], batch: list[_Item]
    ) -> list[dict[str, np.ndarray]]:
        if len(batch) == 1:
            return [outputs]
        total = sum(item.rows for item in batch)
        for name, value in outputs.items():
            if value.ndim == 0 or value.shape[0] != total:
                raise ProtocolError(
                    f"output '{name}' has shape {list(value.shape)}, not {total} rows: the model "
                    "does not keep the batch dimension, so it cannot be batched",
                    status=500,
                )
        parts = []
        start = 0
        for item in batch:
            end = start + item.rows
            parts.append({name: value[start:end] for name, value in outputs.items()})
            start = end
        return parts

    async def _isolate(self, batch: list[_Item], instance: int = 0) -> None:
        """A batched run failed: run each request alone so only the guilty ones fail."""
        for item in batch:
            try:
                outputs, started, ended = await self._run(item.inputs, instance)
            except Exception as exc:
                self._answer(item, exception=_failure(self.model, exc))
            else:
                self.stats.record_execution(item.rows, 1, ended - started)
                self._answer(item, result=outputs)

    @staticmethod
    def _answer(
        item: _Item,
        *,
        result: dict[str, np.ndarray] | None = None,
        exception: BaseException | None = None,
    ) -> None:
        if item.future.done():
            return
        if exception is not None:
            item.future.set_exception(exception)
        else:
            item.future.set_result(result if result is not None else {})


def make_scheduler(model: ModelVersion, executor: Executor, stats: ModelStats) -> Scheduler:
    """The scheduler a model's configuration asks for (dynamic batching or one run per request).

    Example:

        >>> from concurrent.futures import ThreadPoolExecutor
        >>> from course.serve.repository import add_model, load_repository
        >>> _ = add_model("models", "mlp", onnx.load("mlp.onnx"), max_batch_size=8, dynamic_batching=True)
        >>> with ThreadPoolExecutor(1) as pool:
        ...     type(make_scheduler(load_repository("models").get("mlp"), pool, ModelStats())).__name__
        'DynamicBatcher'
    """
    config = model.config
    if config.dynamic_batching is None:
        return DirectScheduler(model, executor, stats)
    return DynamicBatcher(
        model,
        executor,
        stats,
        max_batch_size=config.max_batch_size,
        max_queue_delay=config.dynamic_batching.max_queue_delay_microseconds / 1e6,
    )
