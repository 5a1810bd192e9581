"""Security headers: a Content-Security-Policy without inline script on the page and its files,
no framing, no sniffing, no referrer; nosniff on every API answer too."""
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers import auth, token
from notif.models import Notification
from notif.web.page import STATIC

PAGE_FILES = ["/", "/sw.js", "/static/inbox.js", "/static/inbox.css", "/static/inbox.html"]


@pytest.fixture
def client(asgi, pg):
    return asgi["client"]


def policy(response) -> dict[str, str]:
    return {d.split()[0]: d.partition(" ")[2] for d in response.headers["content-security-policy"].split("; ")}


@pytest.mark.parametrize("path", PAGE_FILES)
def test_the_page_and_its_files_allow_only_their_own_scripts_and_no_framing(client, path):
    response = client.get(path)
    assert response.status_code == 200
    csp = policy(response)
    assert csp["default-src"] == "'none'" and csp["script-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_api_answers_are_nosniff_whatever_their_status(client, app_client):
    answers = [client.get("/api/notifications", headers=auth("u1")), client.get("/api/notifications"),  # 200, 401
               client.get("/api/notifications?cursor=%00", headers=auth("u1")),  # 422 from the edge
               client.get("/api/notifications?limit=0", headers=auth("u1")),  # 422 from FastAPI
               client.get("/events"), client.get("/healthz"), client.get("/nowhere"),  # 401 (SSE route), 404
               app_client(NOTIF_MAX_BODY="10").put("/api/preferences", content=b"x" * 11)]  # 413
    assert [a.status_code for a in answers] == [200, 401, 422, 422, 401, 200, 404, 413]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert policy(answer)["default-src"] == "'none'" and policy(answer)["frame-ancestors"] == "'none'"


def test_an_action_may_call_the_host_app_named_by_notif_public_url(app_client):
    response = app_client(NOTIF_PUBLIC_URL="https://host.example/app").get("/")
    assert policy(response)["connect-src"] == "'self' https://host.example"


class ScriptFinder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inline: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and not attributes.get("src"):
            self.inline.append("<script> without src")
        self.inline += [f"<{tag} {name}=…>" for name in attributes if name.startswith("on")]
        self.inline += [f"<{tag} {name}=javascript:…>" for name, value in attributes.items()
                        if value and re.match(r"\s*javascript:", value, re.IGNORECASE)]


def test_the_shipped_page_has_no_inline_script_the_policy_would_block():
    for html in Path(STATIC).glob("*.html"):
        finder = ScriptFinder()
        finder.feed(html.read_text())
        assert finder.inline == [], f"{html.name}: {finder.inline}"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does it)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def test_in_a_browser_the_page_works_under_its_policy_and_injected_script_does_not_run(web, pg, browser):
    """The markup of a stored notification carries an inline handler: the component drops it (its parser
    meets it first, in a document without a browsing context, where the page's policy refuses it too), and the
    page itself (the component's constructed stylesheet, its scripts, the service worker) runs under the
    policy as it is; an inline handler injected into the page is refused."""
    Notification.create(user_id="csp", key="k1", title="t", message="m", priority="normal", correlation_id="c",
                        html='<p>hello</p><img src="/nowhere.png" onerror="document.body.dataset.pwned = 1">')
    page = browser.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{web['base']}/?token={token('csp')}")
    page.wait_for_selector("notif-inbox[state=live]", timeout=15000)
    page.wait_for_selector("body[data-service-worker=registered]", timeout=15000)
    item = page.locator("notif-inbox li.item", has_text="hello")
    item.wait_for(timeout=10000)
    assert item.locator("img").get_attribute("onerror") is None  # dropped before it reached the page
    assert item.locator("img").get_attribute("src") == "/nowhere.png"  # (what is harmless stays)
    assert page.evaluate("() => document.body.dataset.pwned") is None
    assert all("inline event handler" in v for v in violations), violations  # nothing else: styles, scripts pass
    # the second line: an inline handler that did reach the page (page.evaluate is not subject to the policy)
    with page.expect_console_message(lambda m: "inline event handler" in m.text, timeout=15000):
        page.evaluate("""() => document.body.insertAdjacentHTML("beforeend",
            '<img src="/nowhere.png" onerror="document.body.dataset.pwned = 1">')""")
    assert page.evaluate("() => document.body.dataset.pwned") is None
    assert violations and all("script-src" in v for v in violations), violations
