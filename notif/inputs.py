"""Checks every edge shares: strings the store cannot hold, and links safe to put on a page.

Messages from SQS and requests to the web edge both pass through here, so a producer and a
browser get the same rule in the same words (docs/security.md).
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

SAFE_SCHEMES = ("https", "http", "mailto")
#: a topic's name: letters, digits and ``_ . : -``, starting with a letter or digit (messages and the topics API)
TOPIC_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MAX_USER_ID = 255  # characters in a user id, wherever one enters
MAX_LINK = 2000

# PostgreSQL's text cannot hold NUL; UTF-8 cannot hold a lone surrogate (JSON can carry both as escapes).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# Browsers drop tabs and newlines inside URLs and trim control characters and spaces around them,
# so "java\tscript:" is javascript:; a link holding any of them is refused outright.
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\s]")


def _describe(char: str) -> str:
    return "a NUL character" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"


def unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first string (or key) in ``value`` the store cannot hold, as ``(field path, problem)``.

    Walks dicts and lists; the path reads like ``data.items.3.name`` (``body`` at the top).
    """
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            found = _UNSTORABLE.search(item)
            if found:
                return where or "body", f"contains {_describe(found.group())}, which cannot be stored"
        elif isinstance(item, dict):
            for key, sub in item.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and (found := _UNSTORABLE.search(key)):
                    return (where or "body"), f"has a key with {_describe(found.group())}, which cannot be stored"
                stack.append((name, sub))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}.{i}" if where else str(i), sub) for i, sub in enumerate(item))
    return None


def link_problem(url: Any) -> str | None:
    """Why ``url`` may not become a link on a page, in an email or in a service worker; None if it may.

    Allowed: ``https:``, ``http:``, ``mailto:`` and relative paths (``/reports/7``, ``reports/7``,
    ``?tab=2``, ``#top``). Refused: every other scheme (``javascript:``, ``data:``, ``vbscript:``,
    ``file:``…), network-path references (``//host``, which leave the site without saying so),
    backslashes (browsers read them as slashes), control characters and whitespace.
    """
    if not isinstance(url, str):
        return f"must be a string, got {type(url).__name__}"
    if not url:
        return "is empty"
    if len(url) > MAX_LINK:
        return f"is {len(url)} characters; the limit is {MAX_LINK}"
    if _CONTROL_OR_SPACE.search(url):
        return "contains whitespace or a control character (encode it, e.g. %20)"
    if "\\" in url:
        return "contains a backslash (browsers read it as /)"
    scheme = _SCHEME.match(url)
    if scheme:
        if scheme.group(1).lower() not in SAFE_SCHEMES:
            return f"uses the `{scheme.group(1).lower()}:` scheme; links may be https:, http:, mailto: or relative paths"
        if scheme.group(1).lower() in ("http", "https") and not url[scheme.end():].startswith("//"):
            return f"`{scheme.group(1).lower()}:` needs a host (`{scheme.group(1).lower()}://host/…`)"
        return None
    if url.startswith("//"):
        return "starts with // (a link to another host): write https://host/… instead"
    return None


def is_safe_link(url: Any) -> bool:
    return link_problem(url) is None


#: attributes whose value a browser follows, loads or submits to: each must be a safe link in stored HTML
LINK_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "xlink:href", "data", "poster", "background"})


class _LinkFinder(HTMLParser):
    """Collects the first unsafe link attribute (values arrive with character references decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if self.problem is None and name in LINK_ATTRIBUTES and value:  # (empty: this page; harmless)
                problem = link_problem(value)
                if problem:
                    self.problem = f"<{tag} {name}>: {problem}"

    handle_startendtag = handle_starttag


def html_link_problem(html: str) -> str | None:
    """Why ``html`` may not be put on a page: its first link attribute (``href``, ``src``,
    ``action``… see LINK_ATTRIBUTES) that :func:`link_problem` refuses; None if every one is safe."""
    finder = _LinkFinder()
    finder.feed(html)
    finder.close()
    return finder.problem
