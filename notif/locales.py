"""Locales: which language a recipient's notification is written in.

A recipient's locale is the message's (``"recipients": [{"user_id": …, "locale": "fr-CA"}]``), else
the user's preference (``{"locale": "fr"}``, ``PUT /api/preferences``). It picks
``templates/<locale>/<TYPE>.toml`` with fallback along the tag (``fr-CA`` → ``fr`` → the default
``templates/<TYPE>.toml``): :meth:`notif.templates.TemplateStore.get`. A tag is BCP 47-ish — a
language of 2 or 3 letters, then up to three subtags (script, region, variant) of 2 to 8 letters or
digits, ``-`` or ``_`` between them, at most :data:`MAX_TAG` characters — and is compared in its
canonical case (``fr-CA``, ``zh-Hant-TW``), which is also the directory's name.

The preferences a locale may come from are read once for a whole batch or chunk
(:func:`preferences_of`), the same read the outbox's opt-outs use: never a query per recipient.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .models import Preference

MAX_TAG = 35  # characters of a locale tag (BCP 47's longest common forms fit well within it)
TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8}){0,3}$")
PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$"  # the same, for pydantic (no non-capturing groups there)
CHUNK = 1000  # users per preferences query


def problem(tag: object) -> str | None:
    """Why ``tag`` is not a locale tag, or None when it is."""
    if not isinstance(tag, str):
        return "a locale is a string such as `fr` or `fr-CA`"
    if len(tag) > MAX_TAG or not TAG.match(tag):
        return (f"{tag[:MAX_TAG + 5]!r} is not a locale tag: a language of 2 or 3 letters, then up to three "
                f"subtags of 2 to 8 letters or digits, such as `fr`, `fr-CA` or `zh-Hant-TW` (at most {MAX_TAG} "
                "characters)")
    return None


def normalize(tag: str) -> str:
    """The canonical form: ``fr_ca`` → ``fr-CA``, ``ZH-hant-tw`` → ``zh-Hant-TW`` (ValueError if not a tag)."""
    why = problem(tag)
    if why:
        raise ValueError(why)
    language, *rest = re.split(r"[-_]", tag)
    parts = [language.lower()]
    for i, part in enumerate(rest):
        if len(part) == 4 and part.isalpha() and i == 0:
            parts.append(part.title())  # a script
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            parts.append(part.upper())  # a region
        else:
            parts.append(part.lower())
    return "-".join(parts)


def chain(tag: str | None) -> list[str]:
    """The locales to try, most specific first: ``fr-CA`` → ``["fr-CA", "fr"]``; none for None or a bad tag."""
    if not tag or problem(tag):
        return []
    parts = normalize(tag).split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def is_locale_dir(name: str) -> bool:
    """Is a directory under a templates directory a locale's (``fr``, ``fr-CA``), not ``email``?"""
    return problem(name) is None and normalize(name) == name and name != "email"


def preferred(settings: dict | None) -> str | None:
    """The locale a user's preferences document names, if any."""
    locale = (settings or {}).get("locale")
    return locale if isinstance(locale, str) and not problem(locale) else None


def recipient_locale(recipient: dict | None) -> str | None:
    """The locale a message gave for its recipient (kept in the notification's ``recipient``), if any."""
    locale = (recipient or {}).get("locale")
    return locale if isinstance(locale, str) and not problem(locale) else None


def preferences_of(users: Iterable[str]) -> dict[str, dict]:
    """Every user's preferences document, by user id, in one query per :data:`CHUNK` users."""
    ids = sorted(set(users))
    found: dict[str, dict] = {}
    for start in range(0, len(ids), CHUNK):
        found.update((p.user_id, p.settings) for p in Preference.select(Preference.user_id, Preference.settings)
                     .where(Preference.user_id.in_(ids[start:start + CHUNK])))
    return found
