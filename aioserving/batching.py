"""The batch scheduler: TF Serving's SharedBatchScheduler semantics on one asyncio loop.

One :class:`BatchScheduler` owns every batch queue (one per caller-chosen key:
servable version, signature, non-batch shapes).  All queues share one executor
and a pool of ``num_batch_threads`` execution slots, served round-robin, one
batch per turn (``shared_batch_scheduler.h``: "The batch thread pool
round-robins through the queues, running one batch from a queue and then moving
to the next queue").

Per queue, as in TF's ``internal::Queue``: batches are formed at submit time
(rows counted on dim 0); the back batch is open, the others closed.  A task
that does not fit the open batch closes it and opens the next one, unless the
queue already holds ``max_enqueued_batches`` batches → UNAVAILABLE at once.
The open batch becomes runnable when it is full, when its oldest task is
``batch_timeout_micros`` old, or when the queue closes; closed batches are
runnable at once.  With ``enable_large_batch_splitting`` a task is split into
pieces (the first fills the open batch, then pieces of
``max_execution_batch_size``) that each carry their own future and are
reassembled in order.

Adaptive mode (``BatchingParameters.adaptive``, aioserving's own): the rule is
*work-conserving*.  If none of the queue's batches is running, whatever is
queued runs now (so at concurrency 1 latency equals no batching).  While one
runs, arrivals accumulate; the next batch goes when it finishes and takes
everything queued up to ``max_batch_size``.  Only *full* batches may run
concurrently (up to ``num_batch_threads``).  There is deliberately no timer:
a wait only helps throughput when the executor is the bottleneck, and then a
batch is already running and its run time *is* the accumulation window; when
the executor is idle a timer only adds latency.  The run time adapts the batch
size by itself (a slower run → more arrivals queued → bigger next batch).

Each queued item holds its own :class:`asyncio.Future` (HOUSE_STYLE §4); done
futures (cancelled clients) and expired deadlines are skipped when a batch is
formed; every ``set_result``/``set_exception`` is guarded.  Merge, run and
split happen in the executor (``_batch_exec.execute_batch``), never on the loop.

Micro-benchmark (trivial ``run``, see ``tests/test_batching.py::bench``): call
:func:`measure_overhead` inside a running loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import time
from typing import Any, Callable, Hashable, Protocol

import numpy as np

from ._batch_exec import Arrays, RunFn, execute_batch, round_to_allowed
from ._batch_params import BatchingParameters
from ._batch_queue import (
    DEADLINE,
    QUEUE_CLOSED,
    QUEUE_FULL,
    Batch,
    Item,
    Queue,
    fail,
    fail_all,
    joins,
    rows_of,
    signature_of,
    split_sizes,
)
from .errors import Code, ServingError

__all__ = ["BatchingParameters", "BatchScheduler", "BatchObserver", "measure_overhead"]

logger = logging.getLogger(__name__)

class BatchObserver(Protocol):
    def on_batch(
        self, key: Hashable, input_rows: int, padded_rows: int, queue_wait_s_list: list[float]
    ) -> None: ...


class _NullObserver:
    def on_batch(self, key: Hashable, input_rows: int, padded_rows: int, queue_wait_s_list: list[float]) -> None:
        pass


class BatchScheduler:
    """Owns all batch queues; they share one executor; round-robin fairness across queues.

    Create it inside the running loop.  ``num_batch_threads`` is the shared pool of
    execution slots (batches running at once across all queues); by default the
    executor's worker count.  Each queue may additionally cap its own concurrency
    with its ``BatchingParameters.num_batch_threads``.
    """

    def __init__(
        self,
        executor: concurrent.futures.Executor,
        *,
        num_batch_threads: int | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._executor = executor
        if num_batch_threads is None:
            num_batch_threads = getattr(executor, "_max_workers", None) or os.cpu_count() or 1
        if num_batch_threads < 1:
            raise ServingError(Code.INVALID_ARGUMENT, f"num_batch_threads must be positive; was {num_batch_threads}")
        self.num_batch_threads = num_batch_threads
        self.observer: BatchObserver = observer if observer is not None else _NullObserver()
        self._free = num_batch_threads
        self._queues: dict[Hashable, Queue] = {}
        self._rr: list[Queue] = []  # round-robin order
        self._next = 0
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._pump_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._closed = False

    # -- public API ------------------------------------------------------------
    async def submit(
        self,
        key: Hashable,
        params: BatchingParameters,
        run: RunFn,
        inputs: Arrays,
        *,
        deadline: float | None = None,
    ) -> Arrays:
        """Queue ``inputs`` (validated; equal dim-0 rows) and return this request's output rows."""
        loop = self._loop
        now = loop.time()
        if self._closed:
            raise ServingError(Code.UNAVAILABLE, QUEUE_CLOSED)
        if deadline is not None and deadline <= now:
            raise ServingError(Code.DEADLINE_EXCEEDED, DEADLINE)
        rows = rows_of(inputs)
        if rows > params.max_batch_size:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Task size {rows} is larger than maximum input batch size {params.max_batch_size}",
            )
        queue = self._queues.get(key)
        if queue is None:
            queue = Queue(key, params, run)
            self._queues[key] = queue
            self._rr.append(queue)
        else:
            queue.run = run
            queue.params = params  # a reloaded config applies to batches formed from now on
        if (params.adaptive and queue.running == 0 and queue.pending == 0 and self._free > 0
                and not self._pump_scheduled and rows <= params.execution_batch_size):
            # Adaptive, nothing queued or running here and a free slot: run it now as a batch of
            # its own, without queueing it and pumping (any other queue that could run has already
            # been pumped into the free slots), so a lone request pays no more than batching off.
            fut: asyncio.Future[Arrays] = loop.create_future()
            batch = Batch()
            batch.items.append(Item(inputs, rows, fut, now, deadline))
            batch.rows = rows
            batch.start = now
            self._launch(queue, batch, now)
            return await (fut if deadline is None else self._until(fut, deadline))
        sig = signature_of(inputs, params.pad_variable_length_inputs)
        limit = params.execution_batch_size
        open_ = queue.batches[-1]
        nbytes = sum(a.nbytes for a in inputs.values()) if params.max_batch_bytes > 0 else 0
        fits = rows <= limit and (not open_.items or joins(open_, rows, nbytes, sig, limit, params.max_batch_bytes))

        if fits or not params.enable_large_batch_splitting:
            if not fits and len(queue.batches) >= params.max_enqueued_batches:
                raise ServingError(Code.UNAVAILABLE, QUEUE_FULL)
            fut = loop.create_future()
            queue.add(Item(inputs, rows, fut, now, deadline, nbytes), sig, limit)
            self._kick()
            return await (fut if deadline is None else self._until(fut, deadline))
        return await self._submit_split(queue, sig, inputs, rows, now, deadline)

    async def _until(self, fut: asyncio.Future[Arrays], deadline: float) -> Arrays:
        """An item's result; at ``deadline`` it fails DEADLINE_EXCEEDED, queued or running."""
        handle = self._loop.call_at(deadline, fail, fut, Code.DEADLINE_EXCEEDED, DEADLINE)
        try:
            return await fut
        finally:
            handle.cancel()

    def queue_depth(self, key: Hashable | None = None) -> int:
        """Tasks enqueued and not yet taken into a running batch (one queue, or all)."""
        if key is not None:
            queue = self._queues.get(key)
            return queue.pending if queue is not None else 0
        return sum(q.pending for q in self._rr)

    async def close_queues(self, predicate: Callable[[Hashable], bool]) -> None:
        """Stop the queues whose key matches: pending items fail UNAVAILABLE, running batches finish."""
        matched = [q for q in self._rr if predicate(q.key)]
        await self._close(matched)

    async def close(self) -> None:
        """Fail everything pending with UNAVAILABLE and wait for running batches."""
        self._closed = True
        await self._close(list(self._rr))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running:
            await asyncio.wait([asyncio.wrap_future(f) for f in self._running])

    # -- internals ----------------------------------------------------------------
    async def _close(self, queues: list[Queue]) -> None:
        waits = []
        for queue in queues:
            queue.closed = True
            queue.fail_pending(Code.UNAVAILABLE, QUEUE_CLOSED)
            if self._queues.get(queue.key) is queue:
                del self._queues[queue.key]
            if queue in self._rr:
                self._rr.remove(queue)
            if queue.running:
                queue.idle = asyncio.Event()
                waits.append(queue.idle.wait())
        if self._rr:
            self._next %= len(self._rr)
        else:
            self._next = 0
        for wait in waits:
            await wait

    async def _submit_split(
        self, queue: Queue, sig: tuple[Any, ...], inputs: Arrays, rows: int, now: float, deadline: float | None
    ) -> Arrays:
        params = queue.params
        limit = params.execution_batch_size
        batches = queue.batches
        open_ = batches[-1]
        # A non-matching open batch gets closed, so it offers no free rows.
        open_rows = 0 if not open_.items else open_.rows if open_.sig == sig else limit
        # SchedulingCapacity(): free rows in the open batch plus whole new batches.
        capacity = (params.max_enqueued_batches - len(batches)) * limit + (limit - open_rows)
        if rows > capacity:
            raise ServingError(Code.UNAVAILABLE, QUEUE_FULL)
        sizes = split_sizes(rows, limit - open_rows, limit)
        loop = self._loop
        items: list[Item] = []
        start = 0
        for size in sizes:
            piece = {name: arr[start : start + size] for name, arr in inputs.items()}
            start += size
            item = Item(piece, size, loop.create_future(), now, deadline)
            queue.add(item, sig, limit)
            items.append(item)
        self._kick()
        handle = None
        if deadline is not None:
            handle = loop.call_at(deadline, fail_all, items, Code.DEADLINE_EXCEEDED, DEADLINE)
        try:
            outputs = [await item.future for item in items]
        except BaseException:
            for item in items:
                item.future.cancel()  # the other pieces get skipped
            raise
        finally:
            if handle is not None:
                handle.cancel()
        return {name: np.concatenate([out[name] for out in outputs], axis=0) for name in outputs[0]}

    def _kick(self) -> None:
        # Pump once per loop iteration: requests that arrive in the same iteration
        # (one epoll wake-up) join the same batch instead of racing for slots.
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        now = self._loop.time()
        rr = self._rr
        while self._free > 0 and rr:
            n = len(rr)
            for _ in range(n):
                queue = rr[self._next % n]
                self._next = (self._next + 1) % n
                launched = False
                # A batch whose items are all dead is dropped; look again in the same queue.
                while (batch := queue.ready_batch(now)) is not None:
                    if self._launch(queue, batch, now):
                        launched = True
                        break
                if launched:
                    break
            else:
                break
        self._arm_timer()

    def _arm_timer(self) -> None:
        when = float("inf")
        if self._free > 0:
            for queue in self._rr:
                t = queue.wake_time()
                if t is not None and t < when:
                    when = t
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when != float("inf"):
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        self._pump()

    def _launch(self, queue: Queue, batch: Batch, now: float) -> bool:
        """Start ``batch`` in the executor; False if every item in it was dead."""
        live: list[Item] = []
        for item in batch.items:
            fut = item.future
            if fut.done():
                continue
            if item.deadline is not None and item.deadline <= now:
                fut.set_exception(ServingError(Code.DEADLINE_EXCEEDED, DEADLINE))
                continue
            live.append(item)
        if not live:
            return False
        params = queue.params
        rows = [item.rows for item in live]
        total = sum(rows)
        padded = round_to_allowed(params.allowed_batch_sizes, total) if total else 0
        try:
            self.observer.on_batch(queue.key, total, padded, [now - item.enqueued for item in live])
        except Exception:
            logger.exception("batch observer failed")
        try:
            cfut = self._executor.submit(
                execute_batch,
                queue.run,
                [item.inputs for item in live],
                rows,
                padded,
                params.pad_variable_length_inputs,
            )
        except RuntimeError as exc:  # executor shut down
            for item in live:
                fail(item.future, Code.UNAVAILABLE, f"Batch executor unavailable: {exc}")
            return False
        self._free -= 1
        queue.running += 1
        self._running.add(cfut)
        # Straight from the worker thread to _on_done: one loop hop, as with a plain
        # run_in_executor (whose asyncio future would add a second hop here).
        cfut.add_done_callback(functools.partial(self._done_threadsafe, queue, live))
        return True

    def _done_threadsafe(self, queue: Queue, items: list[Item], cfut: concurrent.futures.Future[list[Arrays]]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._on_done, queue, items, cfut)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _on_done(self, queue: Queue, items: list[Item], cfut: concurrent.futures.Future[list[Arrays]]) -> None:
        self._running.discard(cfut)
        self._free += 1
        queue.running -= 1
        try:
            results = cfut.result()  # done: one look at its state, not three
        except concurrent.futures.CancelledError:
            fail_all(items, Code.CANCELLED, "Batch cancelled")
        except ServingError as exc:
            fail_all(items, exc.code, exc.message)
        except BaseException as exc:  # noqa: BLE001 - the batch's callers get INTERNAL
            logger.error("batch run failed for %r", queue.key, exc_info=exc)
            fail_all(items, Code.INTERNAL, f"{type(exc).__name__}: {exc}"[:200])
        else:
            for item, result in zip(items, results):
                if not item.future.done():
                    item.future.set_result(result)
        if queue.closed and queue.running == 0 and queue.idle is not None:
            queue.idle.set()
        if any(q.pending for q in self._rr):  # a freed slot matters only to queued work
            self._kick()


async def measure_overhead(concurrency: int, requests: int = 20000, *, adaptive: bool = False) -> float:
    """Mean wall time per request (µs) of ``submit()`` with a trivial run, at a given concurrency."""
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        scheduler = BatchScheduler(executor)
        params = BatchingParameters(max_batch_size=max(concurrency, 1), num_batch_threads=1, adaptive=adaptive)
        x = np.zeros((1, 4), np.float32)

        def run(inputs: Arrays) -> Arrays:
            return {"y": inputs["x"]}

        per_worker = requests // concurrency

        async def worker() -> None:
            for _ in range(per_worker):
                await scheduler.submit("bench", params, run, {"x": x})

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        await scheduler.close()
        return elapsed / (per_worker * concurrency) * 1e6
    finally:
        executor.shutdown(wait=True)
