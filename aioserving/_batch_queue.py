"""Batch queue data structures: items (each with its own future), batches, one queue.

TF Serving's ``internal::Queue`` (shared_batch_scheduler.h): batches are formed
at submit time, the back batch is open, the others closed.  The scheduler in
``batching.py`` owns these and decides when they run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Hashable

from ._batch_exec import Arrays, RunFn
from ._batch_params import BatchingParameters
from .errors import Code, ServingError

QUEUE_FULL = "The batch scheduling queue to which this task was submitted is full"
QUEUE_CLOSED = "The batch scheduling queue to which this task was submitted is closed"
DEADLINE = "Deadline exceeded"


def fail(fut: asyncio.Future[Any], code: Code, message: str) -> None:
    if not fut.done():
        fut.set_exception(ServingError(code, message))


class Item:
    __slots__ = ("inputs", "rows", "future", "enqueued", "deadline", "nbytes")

    def __init__(
        self, inputs: Arrays, rows: int, future: asyncio.Future[Arrays], enqueued: float, deadline: float | None,
        nbytes: int = 0,
    ) -> None:
        self.inputs = inputs
        self.rows = rows
        self.nbytes = nbytes  # input bytes, counted only under a max_batch_bytes limit
        self.future = future
        self.enqueued = enqueued
        self.deadline = deadline


class Batch:
    __slots__ = ("items", "rows", "sig", "start", "nbytes")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.rows = 0
        self.nbytes = 0
        self.sig: tuple[Any, ...] | None = None
        self.start = 0.0  # loop.time() of the first item added


class Queue:
    __slots__ = ("key", "params", "run", "batches", "running", "pending", "closed", "idle")

    def __init__(self, key: Hashable, params: BatchingParameters, run: RunFn) -> None:
        self.key = key
        self.params = params
        self.run = run
        self.batches: deque[Batch] = deque([Batch()])  # back one is open
        self.running = 0
        self.pending = 0  # items enqueued, not yet taken
        self.closed = False
        self.idle: asyncio.Event | None = None  # set when closed and nothing runs

    # -- enqueue -------------------------------------------------------------
    def add(self, item: Item, sig: tuple[Any, ...], limit: int) -> None:
        open_ = self.batches[-1]
        if open_.items and not joins(open_, item.rows, item.nbytes, sig, limit, self.params.max_batch_bytes):
            open_ = Batch()
            self.batches.append(open_)
        if not open_.items:
            open_.start = item.enqueued
            open_.sig = sig
        open_.items.append(item)
        open_.rows += item.rows
        open_.nbytes += item.nbytes
        self.pending += 1

    # -- dequeue -------------------------------------------------------------
    def ready_batch(self, now: float) -> Batch | None:
        """Pop the next runnable batch (TF's Queue::ScheduleBatch), or None."""
        batches = self.batches
        params = self.params
        if len(batches) >= 2:
            if self.running >= params.num_batch_threads:
                return None
            batch = batches.popleft()
        else:
            open_ = batches[0]
            if not open_.items:
                return None
            full = open_.rows >= params.execution_batch_size or (
                params.max_batch_bytes > 0 and open_.nbytes >= params.max_batch_bytes)
            if params.adaptive:
                runnable = self.running == 0 or (full and self.running < params.num_batch_threads)
            else:
                runnable = self.running < params.num_batch_threads and (
                    full or self.closed or now >= open_.start + params.batch_timeout_micros * 1e-6
                )
            if not runnable:
                return None
            batches[0] = Batch()
            batch = open_
        self.pending -= len(batch.items)
        return batch

    def wake_time(self) -> float | None:
        """When the open batch's timeout makes it runnable (TF mode only)."""
        if self.params.adaptive or len(self.batches) >= 2 or self.running >= self.params.num_batch_threads:
            return None
        open_ = self.batches[0]
        if not open_.items:
            return None
        return open_.start + self.params.batch_timeout_micros * 1e-6

    def fail_pending(self, code: Code, message: str) -> None:
        for batch in self.batches:
            for item in batch.items:
                fail(item.future, code, message)
        self.batches = deque([Batch()])
        self.pending = 0



def joins(batch: Batch, rows: int, nbytes: int, sig: tuple[Any, ...], limit: int, max_bytes: int) -> bool:
    """Whether a task of ``rows`` / ``nbytes`` may join the non-empty open ``batch``."""
    return (batch.rows + rows <= limit and batch.sig == sig
            and (max_bytes <= 0 or batch.nbytes + nbytes <= max_bytes))


def fail_all(items: list[Item], code: Code, message: str) -> None:
    for item in items:
        fail(item.future, code, message)


def rows_of(inputs: Arrays) -> int:
    rows = -1
    for arr in inputs.values():
        if arr.ndim == 0:
            raise ServingError(Code.INVALID_ARGUMENT, "Batching session Run() input tensors must have at least one dimension")
        n = arr.shape[0]
        if rows < 0:
            rows = n
        elif n != rows:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                "Batching session Run() input tensors must have equal 0th-dimension size",
            )
    if rows < 0:
        raise ServingError(Code.INVALID_ARGUMENT, "Batching Run() must have at least one input tensor")
    return rows


def signature_of(inputs: Arrays, pad_variable_length: bool) -> tuple[Any, ...]:
    """What must match for two tasks to share a batch (mixed shapes never poison a batch)."""
    if pad_variable_length:
        return tuple(sorted((name, arr.ndim, arr.dtype.str) for name, arr in inputs.items()))
    return tuple(sorted((name, arr.shape[1:], arr.dtype.str) for name, arr in inputs.items()))


def split_sizes(rows: int, first: int, limit: int) -> list[int]:
    """TF's InputSplitMetadata: fill the open batch's free slots, then full batches, then the rest."""
    sizes = []
    if first > 0:
        take = min(first, rows)
        sizes.append(take)
        rows -= take
    while rows > 0:
        take = min(limit, rows)
        sizes.append(take)
        rows -= take
    return sizes
