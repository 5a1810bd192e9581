"""Monitoring: what happened (recorded once, :mod:`.record`) and how things stand (read, :mod:`.snapshot`).

- :mod:`.metrics`: every Prometheus family notif exports (a leaf: nothing of notif's);
- :mod:`.record`: the write side, one call per event: its Prometheus figure and the
  rolling counter behind ``notif stats``;
- :mod:`.heartbeat`: each process says it is alive;
- :mod:`.snapshot`: the read side: queue depths, rates, dead letters, held work and live
  processes, for ``notif stats``, ``/readyz`` and ``/metrics`` at scrape time;
- :mod:`.exposition`: serving a process's ``/metrics`` and the scrape-time collector.
"""
