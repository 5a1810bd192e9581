"""The web process (``notif serve``): inbox API, health, and (later) SSE and the inbox page."""
from .app import create_app

__all__ = ["create_app"]
