"""A cap on how many of a worker process's threads LOW work holds at once (``NOTIF_LOW_THREADS``).

Dramatiq's ``priority`` option orders a process's in-memory work queue, not its threads: under
a LOW flood every thread sits in a LOW transaction (an ingest batch of 50 messages × 200
recipients holds one for seconds) and a HIGH message that arrives waits for one to finish.
The cap keeps ``threads - cap`` threads for HIGH and NORMAL whatever LOW asks.

It is a gate on the consumer side, so that nothing is lost and nothing is hoarded: the
consumer of a LOW queue (``notif.low``, ``notif.deliver.low``) hands the worker another
message only while fewer than ``cap`` LOW messages are in this process (handed over and not
yet acknowledged); while the cap is reached it answers "nothing yet", as it does when its
queue is empty, and the messages stay in Redis for this or another worker. Its prefetch is the
cap too, so at most ``cap`` LOW messages per queue wait in this process's cache. A slot is
given back when the message is acknowledged, rejected or requeued (shutdown), whichever
consumer does it. Delay queues (retries waiting for their time) are not gated: when due they
go back onto the LOW queue, through the gate.

The bound is ``cap`` LOW messages per process, plus one for a moment when both LOW queues hand
over a message at the same instant (the check and the fetch are not one step: holding the
gate across a fetch that may long-poll for a second would keep an idle queue on a slot).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

from dramatiq.broker import Consumer, MessageProxy

from ..redis_keys import deliver_queue, ingest_queue

#: the queues whose work the cap bounds (their delay queues are not gated)
LOW_QUEUES = frozenset({ingest_queue("low"), deliver_queue("low")})


def low_threads(setting: int | None, threads: int) -> int | None:
    """The cap for a process of ``threads`` threads: ``setting`` if given (``0``: no cap), else half
    the threads (at least one; a one-thread worker has nothing to keep back, so no cap).

    ``None`` means no cap: LOW may hold every thread."""
    if setting is None:
        return threads // 2 if threads > 1 else None
    if setting == 0 or setting >= threads:
        return None
    return setting


class LowGate:
    """How many LOW messages this process holds, and whether it may take another."""

    def __init__(self, cap: int | None = None) -> None:
        self.cap = cap
        self._held: set[str] = set()  # message ids handed to the worker and not yet acked/nacked/requeued
        self._room = threading.Condition()

    @property
    def held(self) -> int:
        return len(self._held)

    def wait_for_room(self, timeout: float) -> bool:
        """True at once while under the cap; else wait up to ``timeout`` seconds for a slot."""
        with self._room:
            return self._room.wait_for(lambda: self.cap is None or len(self._held) < self.cap, timeout)

    def drained(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until this process holds no LOW message (every one acked)."""
        with self._room:
            return self._room.wait_for(lambda: not self._held, timeout)

    def take(self, message: MessageProxy) -> None:
        with self._room:
            self._held.add(message.message_id)

    def give_back(self, messages: Iterable[MessageProxy]) -> None:
        with self._room:
            for message in messages:
                self._held.discard(message.message_id)
            self._room.notify_all()


class GatedConsumer(Consumer):
    """A LOW queue's consumer that hands over a message only while its process's :class:`LowGate`
    has room (see the module's docstring)."""

    def __init__(self, inner: Consumer, gate: LowGate, timeout_ms: int) -> None:
        self.inner = inner
        self.gate = gate
        self.timeout = timeout_ms / 1000

    def __next__(self) -> MessageProxy | None:
        if not self.gate.wait_for_room(self.timeout):
            return None  # as an idle queue answers: the consumer thread runs its delayed messages, checks for stop
        message = next(self.inner)
        if message is not None:
            self.gate.take(message)
        return message

    def ack(self, message: MessageProxy) -> None:
        try:
            self.inner.ack(message)
        finally:
            self.gate.give_back([message])

    def nack(self, message: MessageProxy) -> None:
        try:
            self.inner.nack(message)
        finally:
            self.gate.give_back([message])

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        messages = list(messages)
        try:
            self.inner.requeue(messages)
        finally:
            self.gate.give_back(messages)

    def close(self) -> None:
        self.inner.close()

