"""Bounded rendering: what a producer's variables can make a template do fails fast, with the reason."""
import time

import pytest

from notif.errors import TemplateError
from notif.sandbox import MAX_ITERATIONS, MAX_RANGE
from notif.templates import render_string

HUGE = 10**9

# (template, variables, words of the reason): each would take a worker's minutes, or gigabytes, unbounded
BOMBS = [
    ('{{ "x" * n }}', {"n": HUGE}, "`*` repetition would make 1000000000 characters"),
    ('{{ n * "x" }}', {"n": HUGE}, "`*` repetition"),
    ("{{ [0] * n }}", {"n": HUGE}, "`*` repetition"),
    ("{% for i in range(n) %}{% for j in range(n) %}x{% endfor %}{% endfor %}", {"n": HUGE},
     f"range() of 1000000000 numbers; at most {MAX_RANGE}"),
    ("{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}", {"n": MAX_RANGE},
     f"more than {MAX_ITERATIONS} loop iterations"),
    ("{% for i in items %}{% for j in items if false %}{% endfor %}{% endfor %}", {"items": list(range(50_000))},
     f"more than {MAX_ITERATIONS} loop iterations (for loop)"),
    ("{% for x in items recursive %}{% if x is iterable %}{{ loop(x) }}{% endif %}{% endfor %}",
     {"items": [[0] * 400] * 400}, f"more than {MAX_ITERATIONS} loop iterations (for loop)"),
    ("{{ 2 ** n }}", {"n": HUGE}, "`**` would make an integer of about 2000000000 bits"),
    ("{{ n ** n }}", {"n": 10**5}, "`**`"),
    ('{{ ("%" ~ n ~ "s") % "x" }}', {"n": HUGE}, "a %-format width would make 1000000000 characters"),
    ('{{ "%*s" % (n, "x") }}', {"n": HUGE}, "`*` widths"),
    ('{{ ("{:>" ~ n ~ "}").format("x") }}', {"n": HUGE}, "a format width"),
    ('{{ "{:>{w}}".format("x", w=n) }}', {"n": HUGE}, "a field inside a format spec"),
    ('{{ ("%" ~ n ~ "s")|format("x") }}', {"n": HUGE}, "a %-format width"),
    ('{{ "x"|center(n) }}', {"n": HUGE}, "center() would make"),
    ('{{ "x"|indent(n, true) }}', {"n": HUGE}, "indent() would make"),
    ('{{ "x".ljust(n) }}', {"n": HUGE}, "str.ljust() would make"),
    ('{{ "x".zfill(n) }}', {"n": HUGE}, "str.zfill()"),
    ('{{ "\t".expandtabs(n) }}', {"n": HUGE}, "str.expandtabs()"),
    ('{{ a|replace("", b) }}', {"a": "x" * 100_000, "b": "y" * 100_000}, "replace() would make 10000200000"),
    ('{{ a.replace("", b) }}', {"a": "x" * 100_000, "b": "y" * 100_000}, "str.replace()"),
    ("{{ items|join(b) }}", {"items": list(range(100_000)), "b": "y" * 100_000}, "join() would make"),
    ("{{ b.join(items) }}", {"items": list(range(100_000)), "b": "y" * 100_000}, "str.join()"),
    ('{{ range(n)|map("string")|join(b) }}', {"n": 10_000, "b": "y" * 100_000}, "join() would make"),
    ('{{ b.join(range(n)|map("string")) }}', {"n": 10_000, "b": "y" * 100_000}, "str.join() would make"),
    ('{{ items|join(",", attribute="s") }}', {"items": [{"s": "x" * 100_000}] * 3}, "join() would make"),
    ("{{ a|wordwrap(1, true, b) }}", {"a": "x" * 100_000, "b": "y" * 100_000}, "wordwrap() would make"),
    ("{{ items|batch(n, 0)|list }}", {"items": [1], "n": HUGE}, "batch()"),
    ("{{ items|slice(n)|list }}", {"items": [1], "n": HUGE}, "loop iterations (slice())"),
    ("{{ items|tojson(n) }}", {"items": [1], "n": HUGE}, "tojson indent"),
    ('{% set ns = namespace(s="x") %}{% for i in range(n) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}',
     {"n": 60}, "namespace attribute 's' would make"),
    ("{{ lipsum(n) }}", {"n": HUGE}, "'lipsum' is undefined"),
    ("{{ a }}{{ a }}", {"a": "x" * 200_000}, "output passes 262144 characters (NOTIF_TEMPLATE_MAX_OUTPUT)"),
]


@pytest.mark.parametrize("source, variables, words", BOMBS, ids=[b[0][:40] for b in BOMBS])
def test_a_template_bomb_fails_fast_naming_the_part_and_the_bound(source, variables, words):
    started = time.monotonic()
    with pytest.raises(TemplateError) as info:
        render_string(source, variables, part="template BOMB message")
    assert time.monotonic() - started < 2
    assert info.value.reason.startswith("template BOMB message: ")
    assert words in info.value.reason
    assert info.value.field == "variables"


def test_the_output_limit_is_the_one_given():
    assert render_string("{{ a }}", {"a": "x" * 100}, max_output=100) == "x" * 100
    with pytest.raises(TemplateError, match="output passes 99 characters"):
        render_string("{{ a }}", {"a": "x" * 100}, max_output=99)
    with pytest.raises(TemplateError, match="the limit is 99"):
        render_string('{{ "x" * 100 }}', {}, max_output=99)


@pytest.mark.parametrize("source, variables, expected", [
    ('{% for i in range(3) %}{{ i }}{% endfor %}|{{ "ab" * 3 }}|{{ 2 ** 10 }}|{{ "%05d" % 42 }}', {}, "012|ababab|1024|00042"),
    ('{{ "{:>5}".format("x") }}|{{ [1, 2]|join(",") }}|{{ "a b"|replace(" ", "-") }}|{{ "x"|center(5) }}', {},
     "    x|1,2|a-b|  x  "),
    ("{% for x in items %}{{ loop.index }}/{{ loop.length }}{% if not loop.last %},{% endif %}{% else %}none{% endfor %}",
     {"items": [1, 2, 3]}, "1/3,2/3,3/3"),
    ("{% for x in items %}{% else %}none{% endfor %}", {"items": []}, "none"),
    ("{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}", {"d": {"a": 1}}, "a=1"),
    ("{% for x in items recursive %}{{ x.n }}{% if x.c %}[{{ loop(x.c) }}]{% endif %}{% endfor %}",
     {"items": [{"n": 1, "c": [{"n": 2, "c": []}]}]}, "1[2]"),
    ('{% set ns = namespace(s="") %}{% for i in range(3) %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.s }}', {}, "012"),
    ("{% for i in range(n) %}.{% endfor %}", {"n": MAX_RANGE}, "." * MAX_RANGE),
])
def test_ordinary_templates_render_as_before(source, variables, expected):
    assert render_string(source, variables) == expected


def test_an_error_python_raises_while_rendering_is_a_template_error_not_a_crash():
    with pytest.raises(TemplateError, match="template T title: ZeroDivisionError"):
        render_string("{{ 1 / n }}", {"n": 0}, part="template T title")
