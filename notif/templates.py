"""Notification templates: one TOML file per type, rendered by Jinja2 in a sandbox.

A template (``templates/REPORT_SUBMITTED.toml``) holds the parts of a notification —
``title``, ``message``, optional ``html`` and ``actions`` — as Jinja2 strings, plus the
``channels`` it goes to by default and ``[sample]`` variables for ``notif templates check``.
Lookup is layered: a deployment's ``NOTIF_TEMPLATES_DIR`` first, then directories that
plugins add, then the built-ins. A recipient's locale (:mod:`notif.locales`) picks
``<dir>/<locale>/<TYPE>.toml`` first, along the tag's fallback (``fr-CA`` → ``fr``), in every
directory, before the default ``<dir>/<TYPE>.toml``; a localized template supplies the words
(its parts), while what a type does — channels, ``critical``, ``[escalate]``, a ``[digest]``
window — is the default template's. Rendering is sandboxed and bounded (:mod:`notif.sandbox`:
output size, loops, operators), HTML is autoescaped, and an undefined variable, a render that
fails or one that passes a bound is a :class:`~notif.errors.TemplateError` that names it.
:func:`output_problem` is the check rendered parts pass before they are stored: nothing the
store cannot hold, no link a page should not follow.
"""
from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from pydantic import ValidationError

from . import locales, sandbox
from .errors import TemplateError
from .inputs import html_link_problem, link_problem, unstorable
from .messages import MAX_ESCALATE_AFTER, MIN_ESCALATE_AFTER, Escalate
from .sandbox import BoundedSandbox, LimitExceeded

TEXT_ENV = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)
HTML_ENV = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=True)
ACTION_KEYS = ("id", "label", "url", "api_endpoint", "method")
LINK_KEYS = ("url", "api_endpoint")  # the action keys a page, an email or a service worker follows
# per-channel parts a template may override, and whether each is HTML
OVERRIDES = {"push": {"title": False, "body": False}, "email": {"subject": False, "text": False, "html": True}}


@dataclass(frozen=True, eq=False)  # hashed by identity: one object per loaded file
class Template:
    type: str
    title: str
    message: str
    html: str | None = None
    actions: tuple[dict, ...] = ()
    channels: tuple[str, ...] = ()
    sample: dict = field(default_factory=dict)
    path: str = ""
    overrides: dict = field(default_factory=dict)  # per channel: {"push": {"title", "body"}, "email": {...}}
    critical: bool = False  # delivered whatever the user's preferences say
    digest: dict = field(default_factory=dict)  # [digest]: window (seconds, digests by default), key, title, message, html
    escalate: dict = field(default_factory=dict)  # [escalate]: after (seconds), channels — when a message gives none
    locale: str | None = None  # the locale directory it was found in (None: the default template)


@dataclass(frozen=True)
class Rendered:
    title: str
    message: str
    html: str | None
    actions: list[dict]
    channel_content: dict | None = None


def builtin_dir() -> Path:
    return Path(str(resources.files("notif_templates")))


class TemplateStore:
    """Finds templates by type across layered directories and renders them."""

    def __init__(self, directories: Iterable[str | Path], max_output: int = sandbox.DEFAULT_MAX_OUTPUT) -> None:
        self.directories = [Path(d) for d in directories if d]
        self.max_output = max_output  # characters one rendered part may have (NOTIF_TEMPLATE_MAX_OUTPUT)

    @classmethod
    def from_settings(cls, settings, plugin_dirs: Iterable[str | Path] = ()) -> TemplateStore:
        return cls([settings.templates_dir, *plugin_dirs, builtin_dir()], settings.template_max_output)

    def types(self) -> list[str]:
        found: set[str] = set()
        for directory in self.directories:
            found.update(p.stem for p in directory.glob("*.toml"))
        return sorted(found)

    def get(self, type_: str, locale: str | None = None) -> Template:
        """The template of ``type_``, in ``locale`` if there is one: ``<dir>/<locale>/<TYPE>.toml`` along the
        tag's fallback (``fr-CA`` → ``fr``; in each, every directory in its order), else the default one."""
        for tag in locales.chain(locale):
            for directory in self.directories:
                path = directory / tag / f"{type_}.toml"
                if path.is_file():
                    return _load(str(path), path.stat().st_mtime_ns, tag)
        for directory in self.directories:
            path = directory / f"{type_}.toml"
            if path.is_file():
                return _load(str(path), path.stat().st_mtime_ns)
        searched = ", ".join(map(str, self.directories))
        raise TemplateError(f"unknown template {type_!r}: no {type_}.toml in {searched}", field="type")

    def render(self, type_: str, variables: dict[str, Any], locale: str | None = None) -> Rendered:
        return render(self.get(type_, locale), variables, self.max_output)

    def locales(self) -> list[str]:
        """Every locale some directory has templates for (its subdirectories named as tags: ``fr``, ``fr-CA``)."""
        found: set[str] = set()
        for directory in self.directories:
            if directory.is_dir():
                found.update(p.name for p in directory.iterdir() if p.is_dir() and locales.is_locale_dir(p.name))
        return sorted(found)

    def localized(self, type_: str | None) -> bool:
        """Has ``type_`` a template in any locale (so rendering it depends on the recipient's)?"""
        return bool(type_) and any(any(directory.glob(f"*/{type_}.toml")) for directory in self.directories
                                   if directory.is_dir())

    def is_critical(self, type_: str | None) -> bool:
        """Is ``type_`` a template marked ``critical`` (a label with no template is not)?"""
        if not type_:
            return False
        try:
            return self.get(type_).critical
        except TemplateError:
            return False


@functools.lru_cache(maxsize=512)
def _load(path: str, mtime_ns: int, locale: str | None = None) -> Template:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError(f"template file {path} is unreadable: {exc}", field="type") from None
    missing = [k for k in ("title", "message") if not isinstance(raw.get(k), str)]
    if missing:
        raise TemplateError(f"template file {path} lacks {', '.join(missing)}", field="type")
    digest = raw.get("digest", {})
    if not isinstance(digest, dict):
        raise TemplateError(f"template file {path}: [digest] must be a table", field="type")
    window = digest.get("window")
    if window is not None and (not isinstance(window, int) or isinstance(window, bool) or window < 1):
        raise TemplateError(f"template file {path}: [digest] window must be a whole number of seconds >= 1", field="type")
    return Template(
        type=Path(path).stem,
        locale=locale,
        escalate=_escalate(path, raw.get("escalate")),
        digest={k: v for k, v in digest.items() if k in ("window", "key", "title", "message", "html")},
        title=raw["title"],
        message=raw["message"],
        html=raw.get("html"),
        actions=tuple(raw.get("actions", ())),
        channels=tuple(raw.get("channels", ())),
        sample=dict(raw.get("sample", {})),
        path=path,
        critical=bool(raw.get("critical", False)),
        overrides={ch: {k: str(v) for k, v in raw[ch].items() if k in parts}
                   for ch, parts in OVERRIDES.items() if isinstance(raw.get(ch), dict)},
    )


def _escalate(path: str, section: object) -> dict:
    """A template's ``[escalate]`` (``after``, ``channels``), checked as a message's ``escalate`` is."""
    if section is None:
        return {}
    try:
        spec = Escalate.model_validate(section)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "section"
        raise TemplateError(f"template file {path}: [escalate] {where}: {error['msg'].removeprefix('Value error, ')}"
                            f" (after: whole seconds, {MIN_ESCALATE_AFTER} to {MAX_ESCALATE_AFTER})",
                            field="type") from None
    return {"after": spec.after, "channels": tuple(spec.channels)}


@functools.lru_cache(maxsize=2048)
def _compile(source: str, html: bool) -> jinja2.Template:
    return (HTML_ENV if html else TEXT_ENV).from_string(source)


def render_string(source: str, variables: dict[str, Any], *, html: bool = False, part: str = "",
                  max_output: int = sandbox.DEFAULT_MAX_OUTPUT) -> str:
    where = part or "template"
    try:
        return sandbox.render(_compile(source, html), variables, max_output)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{where}: missing variable ({exc.message})", field="variables") from None
    except LimitExceeded as exc:
        raise TemplateError(f"{where}: {exc}", field="variables") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"{where}: {exc}", field="type") from None
    except Exception as exc:  # a TypeError, a ZeroDivisionError…: rendering is pure, it would fail again
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc}", field="variables") from None


@functools.lru_cache(maxsize=512)
def required_variables(template: Template) -> frozenset[str]:
    """Every variable any part of the template uses."""
    sources = [template.title, template.message, template.html or ""]
    sources += [v for parts in template.overrides.values() for v in parts.values()]
    sources += [str(v) for action in template.actions for v in action.values()]
    names: set[str] = set()
    for source in sources:
        try:
            names |= meta.find_undeclared_variables(TEXT_ENV.parse(source))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {template.type} does not parse: {exc}", field="type") from None
    return frozenset(names)


def render(template: Template, variables: dict[str, Any], max_output: int = sandbox.DEFAULT_MAX_OUTPUT) -> Rendered:
    where = f"template {template.type}"
    bounded = functools.partial(render_string, max_output=max_output)
    missing = sorted(required_variables(template) - set(variables))
    if missing:
        raise TemplateError(f"{where}: missing variables: {', '.join(missing)}", field="variables")
    actions = []
    for i, action in enumerate(template.actions):
        actions.append({
            k: bounded(str(action[k]), variables, part=f"{where} actions[{i}].{k}")
            for k in ACTION_KEYS if k in action
        })
    content = {
        channel: {k: bounded(v, variables, html=OVERRIDES[channel][k], part=f"{where} {channel}.{k}")
                  for k, v in parts.items()}
        for channel, parts in template.overrides.items()
    }
    return Rendered(
        title=bounded(template.title, variables, part=f"{where} title"),
        message=bounded(template.message, variables, part=f"{where} message"),
        html=None if template.html is None else bounded(template.html, variables, html=True, part=f"{where} html"),
        actions=actions,
        channel_content=content or None,
    )


DIGEST_TEMPLATE = "DIGEST"  # renders a digest whose items' template has no [digest] title and message


def render_digest(store: TemplateStore, type_: str | None, context: dict[str, Any],
                  locale: str | None = None) -> Rendered:
    """A digest notification: the items' template's ``[digest]`` parts, else the built-in DIGEST —
    each in ``locale`` if it has one (the template in that locale's ``[digest]``, else DIGEST in it).

    ``context`` has ``count``, ``items`` (each with title, message, type, data, variables,
    created_at), ``batch_key`` and ``user_id``.
    """
    template = None
    if type_:
        try:
            template = store.get(type_, locale)
        except TemplateError:
            template = None  # the type's template went away since: the generic digest still works
    parts = template.digest if template is not None else {}
    if not (isinstance(parts.get("title"), str) and isinstance(parts.get("message"), str)):
        return render(store.get(DIGEST_TEMPLATE, locale), context, store.max_output)
    where = f"template {type_} [digest]"
    html = parts.get("html")
    bounded = functools.partial(render_string, max_output=store.max_output)
    return Rendered(
        title=bounded(parts["title"], context, part=f"{where} title"),
        message=bounded(parts["message"], context, part=f"{where} message"),
        html=None if html is None else bounded(str(html), context, html=True, part=f"{where} html"),
        actions=[],
    )


def digest_sample(store: TemplateStore, template: Template, count: int = 2) -> dict[str, Any]:
    """A digest context of ``count`` items made from the template's sample variables."""
    rendered = render(template, template.sample, store.max_output)
    item = {"id": 1, "key": "sample", "type": template.type, "title": rendered.title, "message": rendered.message,
            "data": None, "variables": dict(template.sample), "created_at": "2026-01-01T00:00:00.000Z"}
    return {"count": count, "items": [item] * count, "batch_key": template.type, "user_id": "user-1"}


def check_localized(store: TemplateStore, type_: str, locale: str) -> Template:
    """``notif templates check`` of ``<locale>/<TYPE>.toml``: it parses, has a default template, uses the same
    variables and has the same actions (ids and keys) as the default, and renders its sample (its own
    ``[sample]``, else the default's) — and its ``[digest]`` — into what ingest would store. TemplateError otherwise."""
    template = store.get(type_, locale)
    try:
        default = store.get(type_)
    except TemplateError:
        raise TemplateError(f"{template.path}: a localized template without a default ({type_}.toml in none of "
                            f"{', '.join(map(str, store.directories))})", field="type") from None
    ours, theirs = required_variables(template), required_variables(default)
    if ours != theirs:
        diff = [f"{name} only here" for name in sorted(ours - theirs)]
        diff += [f"{name} only in the default" for name in sorted(theirs - ours)]
        raise TemplateError(f"variables differ from the default template's: {', '.join(diff)}", field="type")
    shape = [(a.get("id"), sorted(a)) for a in template.actions]
    if shape != [(a.get("id"), sorted(a)) for a in default.actions]:
        raise TemplateError(f"actions differ from the default template's: {shape} here, "
                            f"{[(a.get('id'), sorted(a)) for a in default.actions]} there", field="type")
    sample = template.sample or default.sample
    problem = output_problem(render(template, sample, store.max_output))
    if problem:
        raise TemplateError(f"{problem[0]}: {problem[1]} (with the [sample] variables)")
    if template.digest.get("title"):
        render_digest(store, type_, digest_sample(store, replace(template, sample=sample)), locale)
    return template


def output_problem(rendered: Rendered) -> tuple[str, str] | None:
    """Why ``rendered`` may not be stored, as ``(field, problem)``; None if it may.

    A string the store cannot hold (a template can make a NUL the variables did not carry),
    an action ``url`` or ``api_endpoint`` that is not a safe link (:func:`notif.inputs.link_problem`),
    or an unsafe link (``href``, ``src``, ``action``…) in the HTML, the email's included.
    """
    parts = {"title": rendered.title, "message": rendered.message, "html": rendered.html,
             "actions": rendered.actions, "channel_content": rendered.channel_content}
    found = unstorable(parts)
    if found:
        return found
    for i, action in enumerate(rendered.actions):
        for key in LINK_KEYS:
            if key in action and (problem := link_problem(action[key])):
                return f"actions.{i}.{key}", problem
    html = {"html": rendered.html, "channel_content.email.html": (rendered.channel_content or {}).get("email", {}).get("html")}
    for field_name, source in html.items():
        if source and (problem := html_link_problem(source)):
            return field_name, problem
    return None
