"""Gather requests made within a few milliseconds on the event loop and answer them with one call.

A reconnect storm brings thousands of new SSE streams within a second or two, and each
needs the same few things: a Redis slot lease, a SUBSCRIBE, a database replay. One at a
time, each is a round trip (and for the database a thread hop) of its own; gathered, a
batch of hundreds costs about what one did. :class:`MicroBatcher` is that gathering, once:
the first request of a batch waits at most ``window_ms`` for others (or until ``size`` are
waiting), then one call answers them all, in order. At most ``concurrent`` calls run at once.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Req = TypeVar("Req")
Ans = TypeVar("Ans")


class MicroBatcher(Generic[Req, Ans]):
    """``await batcher.ask(request)``: the answer ``call(requests)`` gave for it (or its exception)."""

    def __init__(self, call: Callable[[list[Req]], Awaitable[list[Ans]]], window_ms: float, size: int,
                 concurrent: int = 4) -> None:
        self.call = call
        self.window = window_ms / 1000
        self.size = max(1, size)
        self.concurrent = max(1, concurrent)
        self.pending: list[tuple[Req, asyncio.Future]] = []
        self.timer: asyncio.TimerHandle | None = None
        self.running: set[asyncio.Task] = set()
        self._gate: asyncio.Semaphore | None = None  # made on the loop, on first use

    async def ask(self, request: Req) -> Ans:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self.pending.append((request, future))
        if len(self.pending) >= self.size:
            self.flush()
        elif self.timer is None:
            self.timer = loop.call_later(self.window, self.flush)
        return await future

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, []
        if batch:
            task = asyncio.create_task(self._answer(batch))
            self.running.add(task)
            task.add_done_callback(self.running.discard)

    async def _answer(self, batch: list[tuple[Req, asyncio.Future]]) -> None:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.concurrent)
        try:
            async with self._gate:
                live = [(r, f) for r, f in batch if not f.done()]  # one whose asker is gone is not asked for
                if not live:
                    return
                answers = await self.call([r for r, _ in live])
            for (_, future), answer in zip(live, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("batch cancelled"))
            if not isinstance(exc, Exception):
                raise
