"""The shared edge checks: unstorable strings and safe links."""
import pytest

from notif.inputs import html_link_problem, is_safe_link, link_problem, unstorable


def test_a_nul_anywhere_is_found_with_its_path():
    assert unstorable({"title": "ok", "data": {"items": [{"name": "fine"}, {"name": "bad\x00"}]}}) == (
        "data.items.1.name", "contains a NUL character, which cannot be stored")
    assert unstorable({"variables": {"bad\x00key": 1}})[0] == "variables"
    assert unstorable({"title": "\ud800"})[1].startswith("contains a lone surrogate (U+D800)")
    assert unstorable({"title": "ok", "n": 3, "list": ["é", "日本"]}) is None
    assert unstorable("x\x00") == ("body", "contains a NUL character, which cannot be stored")


@pytest.mark.parametrize("url", ["https://app.example.com/r/7", "http://localhost:3000/x", "mailto:a@example.com",
                                 "/reports/7", "reports/7?tab=2", "?tab=2", "#top", "HTTPS://EXAMPLE.COM/"])
def test_safe_links(url):
    assert is_safe_link(url), link_problem(url)


@pytest.mark.parametrize("url, reason", [
    ("javascript:alert(1)", "`javascript:` scheme"),
    ("JaVaScRiPt:alert(1)", "`javascript:` scheme"),
    ("java\tscript:alert(1)", "whitespace or a control character"),
    (" javascript:alert(1)", "whitespace or a control character"),
    ("\x01javascript:alert(1)", "whitespace or a control character"),
    ("data:text/html,<script>alert(1)</script>", "`data:` scheme"),
    ("vbscript:msgbox", "`vbscript:` scheme"),
    ("file:///etc/passwd", "`file:` scheme"),
    ("//evil.example/x", "starts with //"),
    ("/\\evil.example/x", "backslash"),
    ("https:evil.example", "needs a host"),
    ("", "is empty"),
    (42, "must be a string"),
])
def test_unsafe_links_are_refused_with_the_reason(url, reason):
    assert reason in link_problem(url)


@pytest.mark.parametrize("html, problem", [
    ('<p><a href="https://app.example.com/r/7">r</a> <img src="/logo.png"> <a href="#top">top</a> <a href="">x</a></p>',
     None),
    ('<a href="javascript:alert(1)">x</a>', "<a href>: uses the `javascript:` scheme"),
    ('<a href="&#106;avascript:alert(1)">x</a>', "<a href>: uses the `javascript:` scheme"),  # references decoded
    ('<a href="java&#9;script:alert(1)">x</a>', "<a href>: contains whitespace or a control character"),
    ('<iframe src="data:text/html,x"></iframe>', "<iframe src>: uses the `data:` scheme"),
    ('<form action="javascript:x"><button formaction="/ok">b</button></form>', "<form action>"),
    ('<svg><a xlink:href="javascript:x"/></svg>', "<a xlink:href>"),
    ('<object data="//evil.example/x"></object>', "<object data>: starts with //"),
])
def test_links_in_html_are_checked_attribute_by_attribute(html, problem):
    found = html_link_problem(html)
    assert found == problem if problem is None else problem in found
