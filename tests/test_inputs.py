"""The shared edge checks: unstorable strings and safe links."""
import pytest

from notif.inputs import is_safe_link, link_problem, unstorable


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
