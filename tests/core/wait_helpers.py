"""Waiting on a condition in async tests, never a fixed sleep: a test that waits for what it
needs fails when it does not come, and takes no longer than it has to."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Return once `done()` holds (checked every 50 ms); AssertionError naming `what` after
    `timeout` seconds."""
    for _ in range(int(timeout / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")
