"""notif's own inbox page (a host of <notif-inbox>) in headless Chromium against the whole stack:
SQS → poller → worker → web → browser. The component's cross-origin behaviour: tests/e2e/test_inbox_component.py."""
import pytest
from playwright.sync_api import expect

from helpers import notif_send, token
from notif.auth import make_token
from notif.inputs import is_safe_link
from notif.models import Notification

pytestmark = pytest.mark.e2e

LIVE = "notif-inbox[state=live]"
ITEMS = "notif-inbox li.item"  # (Playwright's CSS reaches into the component's open shadow root)
UNREAD_TAB = 'notif-inbox [role=tab][data-status="unread"]'


@pytest.fixture
def full_stack(processes, env):
    processes.start_worker()
    processes.start_poller()
    return processes.start_web()


def test_a_sent_notification_appears_live_and_is_counted_unread(full_stack, browser, env, tmp_path):
    page = browser.new_page()
    user_token = make_token(env["NOTIF_JWT_SECRET"], "pat")
    page.goto(f"{full_stack}/?token={user_token}")
    page.wait_for_selector(LIVE, timeout=15000)
    page.wait_for_selector("body[data-service-worker=registered]", timeout=15000)  # ready to show pushes
    expect(page.locator(UNREAD_TAB)).to_have_text("Unread")
    assert "token=" not in page.url  # kept out of the history

    notif_send(env, "--user", "pat", "--type", "REPORT_SUBMITTED", "--var", "submitterName=Ana",
               "--var", "branchName=North", "--var", "reportId=42", "--priority", "high")
    item = page.locator(ITEMS).first
    item.wait_for(timeout=30000)
    assert item.locator(".title").inner_text() == "New report submitted"
    assert "Ana has submitted a new report for North" in item.inner_text()
    assert item.locator(".actions a").get_attribute("href") == "/reports/42"
    expect(page.locator(UNREAD_TAB)).to_have_text("Unread (1)", timeout=10000)
    page.screenshot(path=str(tmp_path / "inbox.png"))

    # a second tab of the same user: marking read in one updates the other
    other = browser.new_page()
    other.goto(f"{full_stack}/?token={user_token}")
    other.wait_for_selector(LIVE, timeout=15000)
    expect(other.locator(f"{ITEMS}.unread")).to_have_count(1, timeout=10000)
    item.locator(".title").click()
    expect(page.locator(UNREAD_TAB)).to_have_text("Unread", timeout=10000)
    expect(other.locator(UNREAD_TAB)).to_have_text("Unread", timeout=10000)
    expect(other.locator(f"{ITEMS}.unread")).to_have_count(0, timeout=10000)


def test_a_bad_token_shows_the_login_form_with_the_reason(full_stack, browser):
    page = browser.new_page()
    page.goto(f"{full_stack}/?token=not-a-jwt")
    page.wait_for_selector("#login:not([hidden])", timeout=15000)
    assert "Token refused: token is malformed" in page.locator("#login-reason").inner_text()


def test_the_page_reconnects_by_itself_and_catches_up(processes, browser, env):
    processes.start_worker()
    processes.start_poller()
    base = processes.start_web()
    page = browser.new_page()
    page.goto(f"{base}/?token={make_token(env['NOTIF_JWT_SECRET'], 'quinn')}")
    page.wait_for_selector(LIVE, timeout=15000)
    notif_send(env, "--user", "quinn", "--title", "before", "--message", "while connected")
    page.locator(ITEMS, has_text="before").wait_for(timeout=30000)

    web = processes.procs["web"]
    web.terminate()  # the web process goes away (a deploy, a crash) …
    assert web.wait(30) == 0
    page.wait_for_selector("notif-inbox:not([state=live])", timeout=15000)
    notif_send(env, "--user", "quinn", "--title", "meanwhile", "--message", "sent while the page was cut off")
    processes.start_web(port=int(base.rsplit(":", 1)[1]), name="web2")  # … and comes back
    page.locator(ITEMS, has_text="meanwhile").wait_for(timeout=30000)  # replayed on reconnect, no reload
    expect(page.locator(UNREAD_TAB)).to_have_text("Unread (2)", timeout=10000)
    assert page.locator(ITEMS).count() == 2  # nothing twice


# Links as notif.inputs.link_problem judges them; links.js's safeLink must agree on every one.
LINK_CASES = ["https://app.example.com/r/7", "http://localhost:3000/x", "mailto:a@example.com", "/reports/7",
              "reports/7?tab=2", "?tab=2", "#top", "HTTPS://EXAMPLE.COM/", "javascript:alert(1)", "JaVaScRiPt:alert(1)",
              "java\tscript:alert(1)", " javascript:alert(1)", "\x01javascript:alert(1)", "javascript\n:alert(1)",
              "\u00a0javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox",
              "file:///etc/passwd", "//evil.example/x", "/\\evil.example/x", "\\\\evil.example", "https:evil.example",
              "http:/evil.example", "", "x" * 2001, 42, None, ["/r/7"]]

UNSAFE_ROWS = {  # as if stored before the rule (or by anything that skipped it): straight into the table
    "html": '<p>see <a id="bad" href="javascript:alert(3)">this</a>, <a id="good" href="/reports/8">that</a>'
            '<iframe id="frame" src="javascript:alert(4)"></iframe></p>',
    "actions": [{"id": "evil", "label": "Evil link", "url": "javascript:alert(1)"},
                {"id": "view", "label": "View", "url": "/reports/7"},
                {"id": "call", "label": "Evil call", "api_endpoint": "javascript:alert(2)", "method": "POST"},
                {"id": "approve", "label": "Approve", "api_endpoint": "/api/reports/7/approve", "method": "POST"}],
}


def test_the_page_never_renders_an_unsafe_link_and_does_render_a_safe_one(web, pg, browser):
    Notification.create(user_id="links", key="k1", title="Links", message="m", priority="normal", correlation_id="c",
                        **UNSAFE_ROWS)
    page = browser.new_page()
    page.goto(f"{web['base']}/?token={token('links')}")
    page.locator(ITEMS).first.wait_for(timeout=15000)
    item = page.locator(ITEMS).first
    assert item.locator(".actions a").evaluate_all("els => els.map(e => [e.textContent, e.getAttribute('href')])") == \
        [["View", "/reports/7"]]
    assert item.locator(".actions button").all_inner_texts() == ["Approve"]
    assert item.locator(".actions .inert").all_inner_texts() == ["Evil link", "Evil call"]  # labels, as text
    assert item.locator(".body a", has_text="that").get_attribute("href") == "/reports/8"
    assert item.locator(".body a", has_text="this").get_attribute("href") is None
    assert item.locator(".body iframe").count() == 0  # not an element a notification may show
    assert "javascript:" not in item.inner_html()

    # one rule in both languages: safeLink (links.js, inside notif-inbox.js) says what link_problem says
    page.add_script_tag(url="/static/links.js")
    assert page.evaluate("cases => cases.map(c => safeLink(c) !== null)", LINK_CASES) == \
        [is_safe_link(case) for case in LINK_CASES]


def test_the_service_worker_opens_and_calls_only_safe_links(web, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{web['base']}/?token={token('sw-user')}")
    page.wait_for_selector("body[data-service-worker=registered]", timeout=15000)
    worker = context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker")
    clicks = worker.evaluate("""async (cases) => {
      const followed = [], pending = [];
      self.clients.openWindow = async (url) => { followed.push(["open", url]); };
      self.fetch = async (url) => { followed.push(["fetch", url]); return new Response(""); };
      for (const [action, data] of cases) {
        const event = new Event("notificationclick");
        Object.assign(event, { action, notification: { data, close() {} }, waitUntil: (promise) => pending.push(promise) });
        self.dispatchEvent(event);
      }
      await Promise.all(pending);
      return followed;
    }""", [
        ["evil", {"actions": UNSAFE_ROWS["actions"], "url": "javascript:alert(5)"}],  # unsafe action, unsafe data.url
        ["evil", {"actions": UNSAFE_ROWS["actions"], "url": "/inbox"}],  # unsafe action: data.url instead
        ["view", {"actions": UNSAFE_ROWS["actions"]}],
        ["call", {"actions": UNSAFE_ROWS["actions"]}],  # an unsafe endpoint is not called
        ["approve", {"actions": UNSAFE_ROWS["actions"]}],
        ["", {"url": "data:text/html,x"}],
    ])
    assert sorted(clicks) == [["fetch", "/api/reports/7/approve"], ["open", "/"], ["open", "/"], ["open", "/inbox"],
                              ["open", "/reports/7"]]  # (a fetch starts at once, a window after matchAll)
    context.close()


def test_the_page_shows_an_update_in_place_and_drops_a_retracted_one(web, pg, browser):
    from notif.deliver import deliver_batch
    from notif.ingest import ingest_batch
    from notif.runtime import Runtime
    from test_ingest import Enqueued, literal, put, receive

    rt = Runtime.start(web["settings"])

    def send(body):
        put(web["sqs"], web["queue"], body)
        ingest_batch(rt, receive(web["sqs"], web["queue"], expect=1), Enqueued(), deliver_batch)

    try:
        page = browser.new_page()
        page.goto(f"{web['base']}/?token={token('upd')}")
        page.wait_for_selector(LIVE, timeout=15000)
        send(literal("upd", "page-1"))
        send(literal("upd", "page-2"))
        expect(page.locator(ITEMS)).to_have_count(2, timeout=10000)
        expect(page.locator(UNREAD_TAB)).to_have_text("Unread (2)", timeout=10000)
        send({"update": "page-1", "title": "Edited live"})
        expect(page.locator(f"{ITEMS} .title")).to_have_text(["Hello", "Edited live"], timeout=10000)
        send({"retract": "page-2"})
        expect(page.locator(ITEMS)).to_have_count(1, timeout=10000)
        expect(page.locator(UNREAD_TAB)).to_have_text("Unread (1)", timeout=10000)
    finally:
        rt.redis.close()
