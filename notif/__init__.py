"""notif: SQS in; in-app, live SSE, Web Push and email out."""
__version__ = "0.1.0"
