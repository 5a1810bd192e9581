"""Security headers on every response, as a pure ASGI middleware (streams pass untouched).

Every response: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (the
inbox page's URL may carry ``?token=``: it must not travel to the sites its links open) and
``X-Frame-Options: DENY``. The inbox page, the service worker and the static files get a
Content-Security-Policy that allows scripts and styles from this origin only — no inline
script, no framing; everything else (JSON, SSE) a policy that allows nothing at all.
FastAPI's own ``/docs`` and ``/redoc`` pages load Swagger UI and ReDoc from a CDN with an
inline script, so they are left without a policy.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_PATHS = ("/", "/sw.js")
PAGE_PREFIXES = ("/static/",)
UNPOLICED = ("/docs", "/docs/oauth2-redirect", "/redoc")
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def page_policy(public_url: str | None = None) -> str:
    """The inbox page's policy; an action's ``api_endpoint`` may call the host app (NOTIF_PUBLIC_URL)."""
    connect = "'self'"
    if public_url:
        parts = urlsplit(public_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            connect += f" {parts.scheme}://{parts.netloc}"
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
            f"connect-src {connect}; worker-src 'self'; manifest-src 'self'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    def __init__(self, app: ASGIApp, public_url: str | None = None) -> None:
        self.app = app
        self.page = page_policy(public_url)
        # each answer's headers, encoded once: (name, value) pairs, the policy last
        common = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                  (b"x-frame-options", b"DENY")]
        self._page_headers = (*common, (b"content-security-policy", self.page.encode()))
        self._api_headers = (*common, (b"content-security-policy", API_POLICY.encode()))
        self._unpoliced_headers = tuple(common)

    def _headers(self, path: str) -> tuple[tuple[bytes, bytes], ...]:
        if path in PAGE_PATHS or path.startswith(PAGE_PREFIXES):
            return self._page_headers
        return self._unpoliced_headers if path in UNPOLICED else self._api_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        ours = self._headers(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # added unless the route set its own (header names arrive lower-case in ASGI)
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(header for header in ours if header[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
