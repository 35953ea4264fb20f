"""The per-request deadline (crossdock.delivery.deadline): asyncio.timeout's behaviour on one
timer shared by every request of a destination."""

from __future__ import annotations

import asyncio

import pytest

from crossdock.delivery.deadline import Deadline


async def test_a_block_past_its_deadline_raises_timeout_error() -> None:
    deadline = Deadline(0.02)
    with pytest.raises(TimeoutError), deadline:
        await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation was taken back


async def test_a_block_done_in_time_keeps_its_result_and_the_next_one_its_own_deadline() -> None:
    deadline = Deadline(0.5)
    for _ in range(3):  # each entry counts from its own start, not the first one's
        with deadline:
            await asyncio.sleep(0.2)
    with pytest.raises(TimeoutError), deadline:
        await asyncio.sleep(5)


async def test_concurrent_tasks_each_time_out_on_their_own_deadline() -> None:
    deadline = Deadline(0.3)
    loop = asyncio.get_running_loop()

    async def wait(delay: float, naps: float) -> str:
        await asyncio.sleep(delay)
        try:
            with deadline:
                await asyncio.sleep(naps)
        except TimeoutError:
            return f"timeout at {loop.time() - start:.2f}"
        return "done"

    start = loop.time()
    results = await asyncio.gather(wait(0, 5), wait(0.15, 0.01), wait(0.15, 5), wait(0, 0.01))
    assert results[1] == results[3] == "done"
    first, third = (float(r.split()[-1]) for r in (results[0], results[2]))
    assert 0.3 <= first < third and third >= 0.45  # the later one was not cut short


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_timeout() -> None:
    deadline = Deadline(5)

    async def inside() -> None:
        with deadline:
            await asyncio.sleep(5)

    task = asyncio.create_task(inside())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_elsewhere_during_the_timeout_stays_a_cancellation() -> None:
    deadline = Deadline(0.02)
    cancelled = asyncio.Event()

    async def inside() -> None:
        with deadline:
            try:
                await asyncio.sleep(5)
            finally:
                # The deadline has cancelled us; someone else does too before we are out.
                asyncio.current_task().cancel()  # type: ignore[union-attr]
                cancelled.set()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(inside())
    assert cancelled.is_set()


async def test_other_errors_pass_through_and_the_deadline_is_left() -> None:
    deadline = Deadline(0.02)
    with pytest.raises(ValueError), deadline:
        raise ValueError("boom")
    await asyncio.sleep(0.05)  # its timer fires with no one inside: nothing is cancelled
    with deadline:
        await asyncio.sleep(0)


def test_one_deadline_serves_a_new_event_loop() -> None:
    deadline = Deadline(0.02)

    async def once() -> None:
        with pytest.raises(TimeoutError), deadline:
            await asyncio.sleep(5)
        with deadline:
            pass

    asyncio.run(once())
    asyncio.run(once())
