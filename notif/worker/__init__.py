"""The worker process (``dramatiq notif.actors``): actors, broker, middleware, metrics.

- :mod:`.process`: :func:`~.process.build_worker`, the one place the worker is assembled;
- :mod:`.tasks`: the actors (ingest and deliver, per priority) and :class:`~.tasks.Tasks`;
- :mod:`.broker`: the Redis broker and pipelined enqueueing;
- :mod:`.middleware`, :mod:`.metrics`: heartbeat, Prometheus in multi-process mode.
"""
