"""The scheduler process (``notif scheduler``): periodic jobs, run by the leader of any number.

- :mod:`.process`: :func:`~.process.run_scheduler`, the one place the process is assembled;
- :mod:`.leader`: leader election through a Redis lock, with fencing terms;
- :mod:`.release`: scheduled sends and rate-limit deferrals released when due;
- :mod:`.sweeper`: the outbox sweep (lost and stuck deliveries enqueued again).
Closing due digest windows is :func:`notif.digests.close_due`.
"""
