from __future__ import annotations

import asyncio

from opsmind.clock import RealClock, SimClock


async def test_sim_clock_wakes_sleepers_in_order_only_when_advanced() -> None:
    clock = SimClock(start=1000.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, d: float) -> None:
        await clock.sleep(d)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper("b", 20)), asyncio.create_task(sleeper("a", 10))]
    await asyncio.sleep(0)
    await clock.advance(5)
    assert woke == []
    await clock.advance(30)
    assert woke == [("a", 1010.0), ("b", 1020.0)]
    assert clock.now() == 1035.0
    await asyncio.gather(*tasks)


async def test_sim_clock_runs_a_day_of_loop_iterations_fast() -> None:
    clock = SimClock(start=0.0)
    ticks = 0

    async def loop() -> None:
        nonlocal ticks
        while True:
            await clock.sleep(15)
            ticks += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await clock.advance(86400)
    task.cancel()
    assert ticks == 86400 // 15


async def test_real_clock_is_wall_time() -> None:
    import time

    c = RealClock()
    assert abs(c.now() - time.time()) < 1
    await c.sleep(0)
