"""The poller process (``notif poll``): SQS → Dramatiq, weighted by priority, with backpressure.

- :mod:`.process`: :func:`~.process.run_poller`, the one place the process is assembled;
- :mod:`.poller`: :class:`~.poller.Poller`, one receiving thread per priority;
- :mod:`.weights`: sharing receives by weight so that no priority starves.
"""
