"""The web process (``notif serve``): the ASGI app under uvicorn, assembled in one place."""
from __future__ import annotations

import contextlib
import gc
import signal
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette

from ..config import Settings
from ..logs import configure_logging
from .app import create_app

BACKLOG = 65535


class Server(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful shutdown on SIGTERM/SIGINT.

    (uvicorn re-raises the signal once it has shut down, so the process would end with
    -15: a process manager would count an ordinary stop as a crash.)
    """

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        app = self.config.app  # run_web gives uvicorn the app itself, not an import string
        live = getattr(app.state, "live", None) if isinstance(app, Starlette) else None  # end open SSE streams now
        if live is not None:
            live.shutting_down()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def run_web(settings: Settings, host: str, port: int) -> None:
    """``notif serve``: serve until SIGTERM/SIGINT, then end open streams and exit 0."""
    configure_logging(settings.log_format, settings.log_level, process="web")
    # backlog: connections the kernel queues before the process accepts them (it caps this at
    # net.core.somaxconn). uvicorn's 2048 overflowed in a reconnect storm: every connect past it waited for the
    # client's SYN retry, 1 s and then 3 s later (docs/benchmarks.md › SSE capacity of one web process)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_config=None, proxy_headers=True,
                            timeout_graceful_shutdown=25, backlog=BACKLOG)
    # what start-up built (the app, its routes and models, imported modules: ~100,000 objects) lives as long as
    # the process: out of the collector's sight, a full collection no longer walks it (~45 ms on the benchmark
    # machine, docs/benchmarks.md › The inbox at 10 million rows), a pause some request would wait through
    gc.collect()
    gc.freeze()
    Server(config).run()
