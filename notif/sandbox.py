"""The Jinja2 sandbox templates render in, bounded: one message's variables cannot burn a worker.

Jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` keeps templates away from
Python's internals, but not from work: ``{{ "x" * n }}`` with ``n = 10**9`` or two nested
``range(n)`` loops hold a worker for minutes and its memory with it. Template authors are
trusted; the variables a producer sends are not, so every place a variable can make the
work grow is bounded, per rendered part (a title, a message, an action's url…):

- output: at most ``max_output`` characters (``NOTIF_TEMPLATE_MAX_OUTPUT``); rendering
  streams (``generate()``) and stops as soon as that is passed;
- loops: every item a ``{% for %}`` takes (recursive loops too) and every number a
  ``range()`` makes count against ``MAX_ITERATIONS``; one ``range()`` holds at most
  ``MAX_RANGE`` numbers;
- operators: ``*`` repeating a string or list, ``**``, and ``%`` formatting widths are
  checked before they run (``intercepted_binops``);
- filters and string methods whose result grows with an argument (``center``, ``indent``,
  ``ljust``, ``rjust``, ``zfill``, ``expandtabs``, ``replace``, ``join``, ``wordwrap``,
  ``batch``, ``slice``, ``tojson``, ``format`` widths) are checked before they run;
  so is what a ``namespace()`` attribute (the one value that outlives a loop iteration)
  is set to; ``lipsum`` is gone.

Passing a bound raises :class:`LimitExceeded` (a Jinja2 ``SecurityError``), which
:mod:`notif.templates` turns into a dead letter that names the template, the part and the bound.
"""
from __future__ import annotations

import contextvars
import copy
import functools
import re
import string
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace

DEFAULT_MAX_OUTPUT = 256 * 1024  # characters per rendered part: what one SQS message can carry, once
MAX_RANGE = 10_000  # numbers in one range() (Jinja2's sandbox allows 100,000)
MAX_ITERATIONS = 100_000  # loop items and range() numbers per rendered part
MAX_POWER_BITS = 10_000  # the size of an integer `**` may make
MAX_JSON_INDENT = 16


class LimitExceeded(SecurityError):
    """A render passed one of the bounds above; the message says which."""


@dataclass
class Budget:
    """What one rendered part may still spend."""

    max_output: int = DEFAULT_MAX_OUTPUT
    iterations: int = MAX_ITERATIONS

    def spend(self, count: int, what: str) -> None:
        self.iterations -= count
        if self.iterations < 0:
            raise LimitExceeded(f"more than {MAX_ITERATIONS} loop iterations ({what})")

    def grow(self, size: Any, what: str) -> None:
        if isinstance(size, int) and size > self.max_output:
            raise LimitExceeded(f"{what} would make {size} characters; "
                                f"the limit is {self.max_output} (NOTIF_TEMPLATE_MAX_OUTPUT)")


_budget: contextvars.ContextVar[Budget] = contextvars.ContextVar("notif_template_budget")


def _current() -> Budget:
    return _budget.get(None) or Budget()  # (outside render(): the per-call bounds still hold)


def render(template: jinja2.Template, variables: dict[str, Any], max_output: int = DEFAULT_MAX_OUTPUT) -> str:
    """``template`` rendered with ``variables`` within the bounds; raises LimitExceeded past one."""
    token = _budget.set(Budget(max_output))
    chunks = cast("Generator[str, None, None]", template.generate(variables))
    try:
        out: list[str] = []
        size = 0
        for chunk in chunks:
            size += len(chunk)
            if size > max_output:
                raise LimitExceeded(f"output passes {max_output} characters (NOTIF_TEMPLATE_MAX_OUTPUT)")
            out.append(chunk)
        return "".join(out)
    finally:
        chunks.close()
        _budget.reset(token)


# -- sizes, estimated before the work is done ------------------------------------------------
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(fmt: Any) -> None:
    if not isinstance(fmt, str):
        return
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for number in (width, precision):
            if number == "*":
                raise LimitExceeded("`*` widths in %-formatting are not allowed in templates")
            if number:
                _current().grow(int(number), "a %-format width")


def _check_brace_format(fmt: str) -> None:
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # format() itself says what is wrong
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise LimitExceeded("a field inside a format spec is not allowed in templates")
        for number in re.findall(r"\d+", spec or ""):
            _current().grow(int(number), "a format width")


def _replaced_size(s: Any, old: Any, new: Any, count: Any = None) -> int:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    times = len(s) + 1 if old == "" else s.count(old)
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(s) + times * (len(new) - len(old))


def _joined_size(items: list | tuple | str, sep: Any, attribute: Any = None) -> int:
    def size(item: Any) -> int:
        if attribute is not None and isinstance(item, dict):
            item = item.get(attribute)
        return len(item) if isinstance(item, str) else 20
    return sum(size(item) for item in items) + max(len(items) - 1, 0) * len(str(sep))


def _materialized(items: Any) -> list | tuple | str:
    # (join() makes a list of a lazy iterable anyway; what it yields was bounded where it was made)
    return items if isinstance(items, (list, tuple, str)) else list(items)


def _lines(s: Any) -> int:
    return s.count("\n") + 1 if isinstance(s, str) else 1


# Filters whose result grows with an argument. Each check takes the filter's own arguments (without the
# context Jinja2 passes some filters) and may return a replacement for the value (join: a list, not a generator).
def _center(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    _current().grow(width, "center()")


def _indent(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    _current().grow(len(str(s)) + _lines(s) * (len(width) if isinstance(width, str) else int(width)), "indent()")


def _format(value: Any, *_: Any, **__: Any) -> None:
    _check_percent_format(str(value))


def _replace(s: Any, old: Any, new: Any, count: Any = None, *_: Any, **__: Any) -> None:
    _current().grow(_replaced_size(str(s), str(old), str(new), count), "replace()")


def _join(value: Any, d: Any = "", attribute: Any = None, *_: Any, **__: Any) -> Any:
    items = _materialized(value)
    _current().grow(_joined_size(items, d, attribute), "join()")
    return items


def _wordwrap(s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *_: Any,
              **__: Any) -> None:
    if isinstance(s, str) and isinstance(width, int):
        lines = len(s) // max(width, 1) + _lines(s)
        _current().grow(len(s) + lines * len(wrapstring if isinstance(wrapstring, str) else "\n"), "wordwrap()")


def _batch(value: Any, linecount: Any, *_: Any, **__: Any) -> None:
    _current().grow(linecount, "batch()")


def _slice(value: Any, slices: Any, *_: Any, **__: Any) -> None:
    _current().spend(int(slices), "slice()")


def _tojson(value: Any, indent: Any = None, *_: Any, **__: Any) -> None:
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise LimitExceeded(f"tojson indent {indent}; at most {MAX_JSON_INDENT}")


FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "center": _center, "indent": _indent, "format": _format, "replace": _replace, "join": _join,
    "wordwrap": _wordwrap, "batch": _batch, "slice": _slice, "tojson": _tojson,
}


def _bounded_filter(original: Callable[..., Any], check: Callable[..., Any]) -> Callable[..., Any]:
    skip = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0  # the context Jinja2 passes first

    @functools.wraps(original)  # keeps jinja_pass_arg: Jinja2 still passes the context it asks for
    def bounded(*args: Any, **kwargs: Any) -> Any:
        value = check(*args[skip:], **kwargs)
        if value is not None:
            args = (*args[:skip], value, *args[skip + 1:])
        return original(*args, **kwargs)

    return bounded


def _check_str_method(name: str, owner: str, args: tuple, kwargs: dict) -> tuple:
    """The arguments to call ``owner.name`` with, once checked (join: a list, not a generator)."""
    budget = _current()
    if name in ("center", "ljust", "rjust", "zfill") and args:
        budget.grow(args[0], f"str.{name}()")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int):
            budget.grow(len(owner) + owner.count("\t") * tabsize, "str.expandtabs()")
    elif name == "replace" and len(args) >= 2:
        budget.grow(_replaced_size(owner, *args[:3]), "str.replace()")
    elif name == "join" and args:
        items = _materialized(args[0])
        budget.grow(_joined_size(items, owner), "str.join()")
        return (items, *args[1:])
    elif name in ("format", "format_map"):
        _check_brace_format(owner)
    return args


def _power(left: Any, right: Any) -> None:
    if (isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
            and left.bit_length() * right > MAX_POWER_BITS):
        raise LimitExceeded(f"`**` would make an integer of about {left.bit_length() * right} bits; "
                            f"at most {MAX_POWER_BITS}")


def _repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
            _current().grow(len(seq) * times, "`*` repetition")


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitExceeded(f"range() of {len(numbers)} numbers; at most {MAX_RANGE}")
    _current().spend(len(numbers), "range()")
    return numbers


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _current()
    for item in iterable:
        budget.spend(1, "for loop")
        yield item


class _BoundedNamespace(Namespace):
    """``namespace()``, the one way a value outlives a loop iteration: it cannot grow past the limit."""

    def __setitem__(self, name: str, value: Any) -> None:
        if isinstance(value, (str, list, tuple, dict)):
            _current().grow(len(value), f"namespace attribute {name!r}")
        super().__setitem__(name, value)


class _CountingCodeGenerator(CodeGenerator):
    """Compiles ``{% for x in items %}`` as ``for x in environment.counted(items)``."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        node = copy.copy(node)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None,
                               lineno=node.iter.lineno)
        super().visit_For(node, frame)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the bounds above."""

    code_generator_class = _CountingCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _range
        self.globals["namespace"] = _BoundedNamespace
        self.globals.pop("lipsum", None)
        for name, check in FILTER_CHECKS.items():
            self.filters[name] = _bounded_filter(self.filters[name], check)

    counted = staticmethod(_counted)  # what `{% for %}` iterates through (_CountingCodeGenerator)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _repeat(left, right)
        elif operator == "**":
            _power(left, right)
        elif operator == "%":
            _check_percent_format(left)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, LoopContext) and args:  # loop(children) in a recursive loop: counted too
            args = (_counted(args[0]), *args[1:])
        method = getattr(obj, "__wrapped__", obj)  # (the sandbox hands str.format out wrapped)
        owner = getattr(method, "__self__", None)
        if isinstance(owner, str):
            args = _check_str_method(getattr(method, "__name__", ""), owner, args, kwargs)
        return super().call(context, obj, *args, **kwargs)
