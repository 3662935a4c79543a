"""Unit tests for the batch scheduler (fake run functions; no TensorFlow, no server)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, AsyncIterator, Callable

import numpy as np
import pytest

from aioserving.batching import BatchingParameters, BatchScheduler, measure_overhead
from aioserving.errors import Code, ServingError

pytestmark = pytest.mark.timeout(20)

KEY = ("model", 1, "serving_default")


class FakeRun:
    """A blocking run(): records what it saw, optionally held at a gate, y = 2x + 1."""

    def __init__(self, name: str = "", log: list[str] | None = None, fail_on: float | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.name = name
        self.log = log
        self.fail_on = fail_on
        self.sizes: list[int] = []
        self.seen: list[dict[str, np.ndarray]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = asyncio.Event()

    def hold(self) -> None:
        self.gate.clear()
        self.started.clear()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        self.sizes.append(int(x.shape[0]))
        self.seen.append(inputs)
        if self.log is not None:
            self.log.append(self.name)
        self.loop.call_soon_threadsafe(self.started.set)
        assert self.gate.wait(10)
        if self.fail_on is not None and np.any(x == self.fail_on):
            raise ValueError("boom")
        return {"y": x * 2 + 1, "s": x.reshape(x.shape[0], -1).sum(axis=1)}


class Observer:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, int, int, int]] = []
        self.waits: list[float] = []

    def on_batch(self, key: Any, input_rows: int, padded_rows: int, queue_wait_s_list: list[float]) -> None:
        self.calls.append((key, input_rows, padded_rows, len(queue_wait_s_list)))
        self.waits.extend(queue_wait_s_list)


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., BatchScheduler]]:
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    made: list[BatchScheduler] = []

    def factory(num_batch_threads: int = 1, observer: Any = None) -> BatchScheduler:
        s = BatchScheduler(executor, num_batch_threads=num_batch_threads, observer=observer)
        made.append(s)
        return s

    yield factory
    for s in made:
        await s.close()
    executor.shutdown(wait=True)


def rows(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array([[v, v + 0.5] for v in values], np.float32)}


def expected(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    x = inputs["x"]
    return {"y": x * 2 + 1, "s": x.reshape(x.shape[0], -1).sum(axis=1)}


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])


async def settle(s: BatchScheduler, key: Any, depth: int) -> None:
    """Let freshly created submit tasks reach the queue (they enqueue on their first step)."""
    for _ in range(50):
        if s.queue_depth(key) == depth:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"queue depth {s.queue_depth(key)} != {depth}")


async def occupy(
    s: BatchScheduler, params: BatchingParameters, run: FakeRun, key: Any = KEY, n: int = 1
) -> asyncio.Task:
    """Start an n-row batch and hold it in run() so the only execution slot is busy."""
    run.hold()
    task = asyncio.create_task(s.submit(key, params, run, rows(*[-7] * n)), name="occupier")
    await run.started.wait()
    return task


async def release(run: FakeRun, task: asyncio.Task) -> None:
    run.gate.set()
    got = await task
    assert_same(got, expected(rows(*[-7] * len(got["y"]))))


# -- batch formation -------------------------------------------------------------


async def test_size_triggered_batches(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=4, batch_timeout_micros=10_000_000, num_batch_threads=1)
    inputs = [rows(i) for i in range(8)]
    got = await asyncio.gather(*(s.submit(KEY, p, run, x) for x in inputs))
    assert run.sizes == [4, 4]
    for g, x in zip(got, inputs):
        assert_same(g, expected(x))


async def test_item_that_does_not_fit_starts_next_batch(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=4, batch_timeout_micros=10_000_000, num_batch_threads=1)
    inputs = [rows(1, 2, 3), rows(4, 5), rows(6, 7)]  # 3 | 2+2: never exceed 4
    got = await asyncio.gather(*(s.submit(KEY, p, run, x) for x in inputs))
    assert run.sizes == [3, 4]
    for g, x in zip(got, inputs):
        assert_same(g, expected(x))


async def test_timeout_triggered_batch(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=100, batch_timeout_micros=30_000, num_batch_threads=1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    got = await asyncio.gather(*(s.submit(KEY, p, run, rows(i)) for i in range(3)))
    assert loop.time() - t0 >= 0.03
    assert run.sizes == [3]
    assert [float(g["s"][0]) for g in got] == [0.5, 2.5, 4.5]


async def test_timeout_zero_runs_at_once_then_takes_whatever_queued(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=100, batch_timeout_micros=0, num_batch_threads=1)
    first = await occupy(s, p, run)  # ran alone, immediately
    rest = [asyncio.create_task(s.submit(KEY, p, run, rows(i))) for i in range(3)]
    await settle(s, KEY, 3)
    assert run.sizes == [1]
    await release(run, first)
    got = await asyncio.gather(*rest)
    assert run.sizes == [1, 3]
    assert [float(g["s"][0]) for g in got] == [0.5, 2.5, 4.5]


async def test_single_item_is_passed_through_without_copy(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=8, num_batch_threads=1)
    x = rows(1, 2)
    await s.submit(KEY, p, run, x)
    assert run.seen[0]["x"] is x["x"]


# -- cancellation, deadlines, failures -------------------------------------------


async def test_cancelled_waiter_mid_window(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=100, batch_timeout_micros=50_000, num_batch_threads=1)
    tasks = [asyncio.create_task(s.submit(KEY, p, run, rows(i))) for i in range(3)]
    await settle(s, KEY, 3)
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert_same(done[0], expected(rows(0)))
    assert_same(done[2], expected(rows(2)))
    assert run.sizes == [2]
    assert s.queue_depth() == 0


async def test_all_dead_batch_does_not_stall_the_queue(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=2, batch_timeout_micros=10_000_000, num_batch_threads=1)
    first = await occupy(s, p, run, n=2)  # full, so it runs despite the long timeout
    dead = asyncio.create_task(s.submit(KEY, p, run, rows(1, 2)))
    live = asyncio.create_task(s.submit(KEY, p, run, rows(3, 4)))
    tail = asyncio.create_task(s.submit(KEY, p, run, rows(5)))  # open batch, long timeout
    await settle(s, KEY, 3)
    dead.cancel()
    await release(run, first)
    assert_same(await live, expected(rows(3, 4)))
    assert run.sizes == [2, 2]
    tail.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dead
    with pytest.raises(asyncio.CancelledError):
        await tail


async def test_deadline_expires_in_queue(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=100, num_batch_threads=1)
    loop = asyncio.get_running_loop()
    first = await occupy(s, p, run)
    late = asyncio.create_task(s.submit(KEY, p, run, rows(1), deadline=loop.time() + 0.02))
    ok = asyncio.create_task(s.submit(KEY, p, run, rows(2)))
    with pytest.raises(ServingError) as err:
        await late  # fails at its deadline while the slot is still busy
    assert (err.value.code, err.value.message) == (Code.DEADLINE_EXCEEDED, "Deadline exceeded")
    await release(run, first)
    assert_same(await ok, expected(rows(2)))
    assert run.sizes == [1, 1]  # the expired item was skipped when the batch formed


async def test_adaptive_lone_request_fails_at_its_deadline_while_running(make):
    """The idle adaptive path (a batch of one launched from submit) keeps the deadline: the
    caller gets DEADLINE_EXCEEDED while run() is still busy, and the scheduler serves on."""
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=8, adaptive=True, num_batch_threads=1)
    loop = asyncio.get_running_loop()
    run.hold()
    with pytest.raises(ServingError) as err:
        await s.submit(KEY, p, run, rows(1), deadline=loop.time() + 0.05)
    assert (err.value.code, err.value.message) == (Code.DEADLINE_EXCEEDED, "Deadline exceeded")
    assert run.sizes == [1]  # it was running, not queued
    run.gate.set()
    assert_same(await s.submit(KEY, p, run, rows(2)), expected(rows(2)))


async def test_deadline_already_passed(make):
    s = make()
    run = FakeRun()
    loop = asyncio.get_running_loop()
    with pytest.raises(ServingError) as err:
        await s.submit(KEY, BatchingParameters(), run, rows(1), deadline=loop.time() - 1)
    assert err.value.code == Code.DEADLINE_EXCEEDED
    assert run.sizes == []


async def test_run_exception_fails_only_its_batch(make):
    s = make()
    run = FakeRun(fail_on=99.0)
    p = BatchingParameters(max_batch_size=2, num_batch_threads=1)
    first = await occupy(s, p, run)
    bad = asyncio.create_task(s.submit(KEY, p, run, rows(99)))
    mate = asyncio.create_task(s.submit(KEY, p, run, rows(3)))
    after = asyncio.create_task(s.submit(KEY, p, run, rows(4)))
    await settle(s, KEY, 3)
    await release(run, first)
    results = await asyncio.gather(bad, mate, after, return_exceptions=True)
    assert run.sizes == [1, 2, 1]
    for r in results[:2]:
        assert isinstance(r, ServingError)
        assert (r.code, r.message) == (Code.INTERNAL, "ValueError: boom")
    assert_same(results[2], expected(rows(4)))


async def test_batch_cancelled_in_the_executor_fails_its_items():
    """A batch still waiting for a worker when the executor shuts down (cancel_futures) fails
    CANCELLED; the batch already running finishes normally."""
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    s = BatchScheduler(executor, num_batch_threads=2)
    run = FakeRun()
    p = BatchingParameters(max_batch_size=1, num_batch_threads=2)
    first = await occupy(s, p, run)
    queued = asyncio.create_task(s.submit(KEY, p, run, rows(3)))
    for _ in range(50):  # until its batch waits in the executor's queue behind the held one
        if executor._work_queue.qsize() == 1:
            break
        await asyncio.sleep(0)
    assert executor._work_queue.qsize() == 1
    executor.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(ServingError) as info:
        await queued
    assert (info.value.code, info.value.message) == (Code.CANCELLED, "Batch cancelled")
    await release(run, first)
    assert run.sizes == [1]
    await s.close()


async def test_serving_error_from_run_keeps_its_code(make):
    s = make()

    def run(inputs):
        raise ServingError(Code.INVALID_ARGUMENT, "bad input")

    with pytest.raises(ServingError) as err:
        await s.submit(KEY, BatchingParameters(), run, rows(1))
    assert (err.value.code, err.value.message) == (Code.INVALID_ARGUMENT, "bad input")


async def test_wrong_output_rows_is_failed_precondition(make):
    s = make()

    def run(inputs):
        return {"y": np.zeros((5,), np.float32)}

    with pytest.raises(ServingError) as err:
        await s.submit(KEY, BatchingParameters(), run, rows(1, 2))
    assert err.value.code == Code.FAILED_PRECONDITION
    assert err.value.message.startswith("Batched output tensor's 0th dimension does not equal")


# -- limits ----------------------------------------------------------------------


async def test_full_queue_is_unavailable_at_once(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=2, max_enqueued_batches=1, num_batch_threads=1)
    first = await occupy(s, p, run)
    queued = asyncio.create_task(s.submit(KEY, p, run, rows(1, 2)))  # fills the only batch
    await settle(s, KEY, 1)
    with pytest.raises(ServingError) as err:
        await s.submit(KEY, p, run, rows(3))
    assert (err.value.code, err.value.message) == (
        Code.UNAVAILABLE,
        "The batch scheduling queue to which this task was submitted is full",
    )
    await release(run, first)
    assert_same(await queued, expected(rows(1, 2)))


async def test_oversize_task_is_invalid_argument(make):
    s = make()
    run = FakeRun()
    with pytest.raises(ServingError) as err:
        await s.submit(KEY, BatchingParameters(max_batch_size=4), run, rows(1, 2, 3, 4, 5))
    assert (err.value.code, err.value.message) == (
        Code.INVALID_ARGUMENT,
        "Task size 5 is larger than maximum input batch size 4",
    )
    assert run.sizes == []


# -- padding and splitting -------------------------------------------------------


async def test_padding_to_allowed_batch_sizes(make):
    obs = Observer()
    s = make(observer=obs)
    run = FakeRun()
    p = BatchingParameters(max_batch_size=8, allowed_batch_sizes=(2, 4, 8), num_batch_threads=1)
    first = await occupy(s, p, run)
    a, b, c = rows(1), rows(2, 3), rows(4, 5, 6, 7, 8, 9)
    tasks = [asyncio.create_task(s.submit(KEY, p, run, x)) for x in (a, b, c)]
    await settle(s, KEY, 3)
    await release(run, first)
    got = await asyncio.gather(*tasks)
    assert run.sizes == [2, 4, 8]  # 1→2, 1+2→4, 6 (does not fit beside 3)→8
    for g, x in zip(got, (a, b, c)):
        assert_same(g, expected(x))
    assert obs.calls == [(KEY, 1, 2, 1), (KEY, 3, 4, 2), (KEY, 6, 8, 1)]
    # Pad rows repeat the first row of the batch's last item.
    np.testing.assert_array_equal(run.seen[0]["x"], np.repeat(rows(-7)["x"], 2, axis=0))
    np.testing.assert_array_equal(run.seen[1]["x"], rows(1, 2, 3, 2)["x"])


async def test_padding_uses_first_row_of_last_item(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=4, allowed_batch_sizes=(4,), num_batch_threads=1)
    first = await occupy(s, p, run)
    ta = asyncio.create_task(s.submit(KEY, p, run, rows(1)))
    tb = asyncio.create_task(s.submit(KEY, p, run, rows(2)))
    await settle(s, KEY, 2)
    await release(run, first)
    assert_same(await ta, expected(rows(1)))
    assert_same(await tb, expected(rows(2)))
    np.testing.assert_array_equal(run.seen[1]["x"], rows(1, 2, 2, 2)["x"])


async def test_large_batch_splitting_reassembles_in_order(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(
        max_batch_size=10, max_execution_batch_size=4, enable_large_batch_splitting=True, num_batch_threads=1
    )
    small, big = rows(100), rows(*range(9))
    got = await asyncio.gather(s.submit(KEY, p, run, small), s.submit(KEY, p, run, big))
    assert run.sizes == [4, 4, 2]  # 1 + 3 pieces of big, then 4, then 2
    assert_same(got[0], expected(small))
    assert_same(got[1], expected(big))
    with pytest.raises(ServingError) as err:
        await s.submit(KEY, p, run, rows(*range(11)))
    assert err.value.message == "Task size 11 is larger than maximum input batch size 10"


async def test_splitting_with_allowed_sizes_equals_unbatched(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(
        max_batch_size=16,
        max_execution_batch_size=4,
        enable_large_batch_splitting=True,
        allowed_batch_sizes=(2, 4),
        num_batch_threads=1,
    )
    inputs = [rows(*range(10 * k, 10 * k + n)) for k, n in enumerate([7, 1, 16, 3])]
    got = await asyncio.gather(*(s.submit(KEY, p, run, x) for x in inputs))
    for g, x in zip(got, inputs):
        assert_same(g, expected(x))
    assert all(n in (2, 4) for n in run.sizes), run.sizes
    assert sum(run.sizes) >= 27


async def test_pad_variable_length_inputs(make):
    s = make()
    seen: list[np.ndarray] = []

    def run(inputs):
        seen.append(inputs["x"])
        return {"y": inputs["x"]}

    p = BatchingParameters(max_batch_size=8, pad_variable_length_inputs=True, num_batch_threads=1)
    a = {"x": np.array([[1, 2]], np.int32)}
    b = {"x": np.array([[5, 6, 7], [8, 9, 10]], np.int32)}
    ga, gb = await asyncio.gather(s.submit(KEY, p, run, a), s.submit(KEY, p, run, b))
    assert len(seen) == 1
    np.testing.assert_array_equal(ga["y"], [[1, 2, 1]])  # padded with the tensor's first element
    np.testing.assert_array_equal(gb["y"], b["x"])


async def test_mixed_shapes_without_padding_never_share_a_batch(make):
    s = make()
    seen: list[tuple[int, ...]] = []

    def run(inputs):
        seen.append(inputs["x"].shape)
        return {"y": inputs["x"] + 1}

    p = BatchingParameters(max_batch_size=8, batch_timeout_micros=0, num_batch_threads=1)
    a = {"x": np.ones((1, 2), np.float32)}
    b = {"x": np.ones((1, 3), np.float32)}
    c = {"x": np.zeros((2, 2), np.float32)}
    ga, gb, gc = await asyncio.gather(*(s.submit(KEY, p, run, x) for x in (a, b, c)))
    assert seen == [(1, 2), (1, 3), (2, 2)]
    np.testing.assert_array_equal(gb["y"], b["x"] + 1)
    np.testing.assert_array_equal(gc["y"], c["x"] + 1)


# -- sharing and concurrency -----------------------------------------------------


async def test_two_keys_share_one_slot_round_robin(make):
    s = make(num_batch_threads=1)
    log: list[str] = []
    run_a, run_b = FakeRun("A", log), FakeRun("B", log)
    p = BatchingParameters(max_batch_size=1, max_enqueued_batches=100, num_batch_threads=1)
    first = await occupy(s, p, run_a, key="A")
    tasks = [asyncio.create_task(s.submit("A", p, run_a, rows(i))) for i in range(3)]
    tasks += [asyncio.create_task(s.submit("B", p, run_b, rows(i))) for i in range(3)]
    await settle(s, None, 6)
    assert s.queue_depth("A") == 3 and s.queue_depth("B") == 3
    await release(run_a, first)
    await asyncio.gather(*tasks)
    assert log == ["A", "A", "B", "A", "B", "A", "B"]


@pytest.mark.parametrize("mode", ["tf", "adaptive"])
async def test_64_concurrent_submitters_get_their_own_rows(make, mode):
    s = make(num_batch_threads=2)
    runs: list[int] = []

    def run(inputs):
        runs.append(inputs["x"].shape[0])
        return expected(inputs)

    p = BatchingParameters(
        max_batch_size=32, batch_timeout_micros=1000, num_batch_threads=2, adaptive=mode == "adaptive"
    )
    rng = np.random.default_rng(7)

    async def client(c: int) -> None:
        for k in range(5):
            n = int(rng.integers(1, 4))
            x = rows(*[c * 1000 + k * 10 + j for j in range(n)])
            assert_same(await s.submit(KEY, p, run, x), expected(x))

    await asyncio.gather(*(client(c) for c in range(64)))
    assert max(runs) > 1 and max(runs) <= 32


# -- closing ---------------------------------------------------------------------


async def test_close_fails_pending_and_waits_for_running(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=1, max_enqueued_batches=10, num_batch_threads=1)
    first = await occupy(s, p, run)
    pending = [asyncio.create_task(s.submit(KEY, p, run, rows(i))) for i in range(2)]
    await settle(s, KEY, 2)
    closing = asyncio.create_task(s.close())
    results = await asyncio.gather(*pending, return_exceptions=True)
    for r in results:
        assert isinstance(r, ServingError) and r.code == Code.UNAVAILABLE
    assert not closing.done()  # still waiting for the running batch
    await release(run, first)
    await closing
    with pytest.raises(ServingError) as err:
        await s.submit(KEY, p, run, rows(1))
    assert err.value.code == Code.UNAVAILABLE
    assert run.sizes == [1]


async def test_close_queues_only_matching(make):
    s = make(num_batch_threads=2)
    run_a, run_b = FakeRun("A"), FakeRun("B")
    p = BatchingParameters(max_batch_size=1, num_batch_threads=1)
    first_a = await occupy(s, p, run_a, key=("m", 1))
    first_b = await occupy(s, p, run_b, key=("m", 2))
    pa = asyncio.create_task(s.submit(("m", 1), p, run_a, rows(1)))
    pb = asyncio.create_task(s.submit(("m", 2), p, run_b, rows(2)))
    await settle(s, None, 2)
    closing = asyncio.create_task(s.close_queues(lambda key: key == ("m", 1)))
    with pytest.raises(ServingError) as err:
        await pa
    assert err.value.code == Code.UNAVAILABLE
    await release(run_a, first_a)
    await closing
    await release(run_b, first_b)
    assert_same(await pb, expected(rows(2)))


# -- adaptive --------------------------------------------------------------------


async def test_adaptive_concurrency_one_runs_immediately(make):
    obs = Observer()
    s = make(observer=obs)
    run = FakeRun()
    p = BatchingParameters(max_batch_size=64, adaptive=True, batch_timeout_micros=10_000_000, num_batch_threads=1)
    for i in range(10):
        assert_same(await s.submit(KEY, p, run, rows(i)), expected(rows(i)))
    assert run.sizes == [1] * 10
    assert max(obs.waits) < 0.05  # no window: a 10 s timeout is ignored in adaptive mode


async def test_adaptive_idle_queue_launches_inside_submit(make):
    """A lone request goes to the executor from submit() itself, with no extra loop
    iteration: the loop is kept blocked after the task's first step, and run() still starts."""
    s = make()
    entered = threading.Event()

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entered.set()
        return expected(inputs)

    p = BatchingParameters(max_batch_size=8, adaptive=True, num_batch_threads=1)
    task = asyncio.create_task(s.submit(KEY, p, run, rows(3)))
    await asyncio.sleep(0)  # the task runs up to its await on the item's future
    assert entered.wait(5)  # blocks the loop: only a launch made inside submit() can get here
    assert_same(await task, expected(rows(3)))

    # With a batch already running, the same request waits for the pump instead.
    gate = threading.Event()
    entered.clear()

    def slow(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        entered.set()
        assert gate.wait(5)
        return expected(inputs)

    first = asyncio.create_task(s.submit(KEY, p, slow, rows(1)))
    await asyncio.sleep(0)
    assert entered.wait(5)
    entered.clear()
    second = asyncio.create_task(s.submit(KEY, p, slow, rows(2)))
    await asyncio.sleep(0)
    assert s.queue_depth(KEY) == 1 and not entered.is_set()
    gate.set()
    assert_same(await first, expected(rows(1)))
    assert_same(await second, expected(rows(2)))


async def test_adaptive_batch_closes_at_max_batch_bytes(make):
    """Under a byte limit a batch also closes when the next task's inputs would pass it."""
    s = make()
    run = FakeRun()
    p = BatchingParameters(max_batch_size=64, adaptive=True, num_batch_threads=1, max_batch_bytes=3 * 8)
    first = await occupy(s, p, run)
    tasks = [asyncio.create_task(s.submit(KEY, p, run, rows(i))) for i in range(5)]  # 8 bytes each
    await settle(s, KEY, 5)
    await release(run, first)
    got = await asyncio.gather(*tasks)
    assert run.sizes == [1, 3, 2]
    for i, g in enumerate(got):
        assert_same(g, expected(rows(i)))


async def test_adaptive_batches_what_accumulates_while_running(make):
    s = make(num_batch_threads=2)
    run = FakeRun()
    p = BatchingParameters(max_batch_size=8, adaptive=True, num_batch_threads=2)
    first = await occupy(s, p, run)
    tasks = [asyncio.create_task(s.submit(KEY, p, run, rows(i))) for i in range(10)]
    await settle(s, KEY, 2)  # a full batch of 8 may run beside the one running; the rest waits
    assert run.sizes == [1, 8]
    await release(run, first)
    got = await asyncio.gather(*tasks)
    assert run.sizes == [1, 8, 2]
    for i, g in enumerate(got):
        assert_same(g, expected(rows(i)))


# -- parameters ------------------------------------------------------------------


def test_parameters_from_text_and_defaults(tmp_path):
    text = """
        max_batch_size { value: 128 }
        batch_timeout_micros { value: 500 }
        max_enqueued_batches { value: 1000000 }
        num_batch_threads { value: 4 }
        allowed_batch_sizes: 32
        allowed_batch_sizes: 128
        pad_variable_length_inputs: true
    """
    p = BatchingParameters.from_text(text)
    assert p == BatchingParameters(
        max_batch_size=128,
        batch_timeout_micros=500,
        max_enqueued_batches=1000000,
        num_batch_threads=4,
        allowed_batch_sizes=(32, 128),
        pad_variable_length_inputs=True,
    )
    f = tmp_path / "batching_params.pbtxt"
    f.write_text(text + "enable_large_batch_splitting { value: true } max_execution_batch_size { value: 128 }")
    q = BatchingParameters.from_file(f)
    assert (q.enable_large_batch_splitting, q.execution_batch_size) == (True, 128)
    d = BatchingParameters.from_text("")
    assert (d.max_batch_size, d.batch_timeout_micros, d.max_enqueued_batches) == (1000, 0, 10)
    assert d.num_batch_threads >= 1


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: 2 allowed_batch_sizes: 4",
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; expected 8",
        ),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 2 allowed_batch_sizes: 8",
            "allowed_batch_sizes entries must be monotonically increasing",
        ),
        ("num_batch_threads { value: 0 }", "num_batch_threads must be positive; was 0"),
        ("batch_timeout_micros { value: -1 }", "batch_timeout_micros must be non-negative; was -1"),
    ],
)
def test_parameters_validation(text, message):
    with pytest.raises(ServingError) as err:
        BatchingParameters.from_text(text)
    assert (err.value.code, err.value.message) == (Code.INVALID_ARGUMENT, message)


def test_parameters_parse_error_and_missing_file(tmp_path):
    with pytest.raises(ServingError) as err:
        BatchingParameters.from_text("max_batch_size: nonsense")
    assert err.value.code == Code.INVALID_ARGUMENT
    assert err.value.message.startswith("Error parsing text-format tensorflow.serving.BatchingParameters")
    with pytest.raises(ServingError) as err:
        BatchingParameters.from_file(tmp_path / "absent.pbtxt")
    assert err.value.code == Code.NOT_FOUND


async def test_measure_overhead_runs():
    assert 0 < await measure_overhead(4, 200) < 10_000


async def test_split_capacity_counts_the_empty_open_batch(make):
    s = make()
    run = FakeRun()
    p = BatchingParameters(
        max_batch_size=8,
        max_execution_batch_size=4,
        enable_large_batch_splitting=True,
        max_enqueued_batches=2,
        num_batch_threads=1,
    )
    first = await occupy(s, p, run, n=4)
    big = asyncio.create_task(s.submit(KEY, p, run, rows(*range(8))))  # exactly 2 batches of 4
    await settle(s, KEY, 2)
    with pytest.raises(ServingError) as err:
        await s.submit(KEY, p, run, rows(9))
    assert err.value.code == Code.UNAVAILABLE
    await release(run, first)
    assert_same(await big, expected(rows(*range(8))))
    assert run.sizes == [4, 4, 4]
