"""A clock tests move by hand, for code that takes an injectable clock (and sleep)."""

from __future__ import annotations

import asyncio


class ManualClock:
    """Epoch seconds that move only when a test says (`advance`) or when the code under test
    sleeps through `sleep` (which records how long it asked for and yields once)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
