"""<notif-inbox> embedded cross-origin, in headless Chromium.

The host page (examples/host-app, its own origin and its own cookie session) embeds notif's
component with one script tag and one element; notif runs on another origin with its real
processes: SQS → poller → worker → web → the host page's panel.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from playwright.sync_api import expect

from helpers import ROOT, free_port, notif_send, wait_until
from notif.auth import make_token

pytestmark = pytest.mark.e2e

BADGE = "notif-inbox [part=badge]"  # (Playwright's CSS reaches into the component's open shadow root)
ITEM = "notif-inbox li[data-notification-id]"
LIVE = "notif-inbox[state=live]"


def _host_app_module():
    spec = importlib.util.spec_from_file_location("host_app", ROOT / "examples" / "host-app" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Host:
    """The example host app, on a free port of its own (a separate origin from notif's)."""

    def __init__(self, notif: str, secret: str, port: int) -> None:
        module = _host_app_module()
        self.app = module.HostApp(notif, secret)
        self.server = module.serve(self.app, port)
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sign_in(self, context, user: str, wait_live: bool = True):
        page = context.new_page()
        page.goto(f"{self.url}/login")
        page.fill("input[name=user]", user)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.url}/")
        if wait_live:
            page.wait_for_selector(LIVE, timeout=15000)
        return page

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stack(processes, env):
    """notif (worker, poller, web) allowing one host origin, the host app on it, and a client of notif's API."""
    host_port = free_port()
    processes.env["NOTIF_CORS_ORIGINS"] = f"http://127.0.0.1:{host_port}"
    processes.start_worker()
    processes.start_poller()
    notif = processes.start_web()
    host = Host(notif, env["NOTIF_JWT_SECRET"], host_port)

    def api(user: str, method: str = "GET", path: str = "/api/notifications/counts", **kwargs):
        response = requests.request(method, notif + path, timeout=10, **kwargs,
                                    headers={"Authorization": f"Bearer {make_token(env['NOTIF_JWT_SECRET'], user)}"})
        response.raise_for_status()
        return response.json()

    yield SimpleNamespace(notif=notif, host=host, env=env, api=api)
    host.close()


def report(env, user: str, report_id: int = 42) -> None:
    notif_send(env, "--user", user, "--type", "REPORT_SUBMITTED", "--var", "submitterName=Ana",
               "--var", "branchName=North", "--var", f"reportId={report_id}")


def test_the_bell_counts_live_and_every_state_change_reaches_the_api_and_the_other_tab(stack, browser, tmp_path):
    context = browser.new_context(viewport={"width": 900, "height": 640})
    page = stack.host.sign_in(context, "ana")
    other = stack.host.sign_in(context, "ana")  # a second tab of the same user
    expect(page.locator(BADGE)).to_be_hidden()

    report(stack.env, "ana")  # onto SQS, as the host's backend would
    expect(page.locator(BADGE)).to_have_text("1", timeout=30000)  # no reload
    expect(other.locator(BADGE)).to_have_text("1", timeout=10000)
    assert page.locator("notif-inbox .bell").get_attribute("aria-label") == "Notifications, 1 unseen"
    assert stack.api("ana") == {"unread": 1, "unseen": 1, "total": 1}

    page.click("notif-inbox .bell")  # opening the panel marks what it shows seen
    item = page.locator(ITEM)
    expect(item).to_have_count(1)
    expect(item.locator(".title")).to_have_text("New report submitted")
    expect(page.locator(BADGE)).to_be_hidden(timeout=10000)
    expect(other.locator(BADGE)).to_be_hidden(timeout=10000)  # the other tab follows (`seen` event)
    wait_until(lambda: stack.api("ana") == {"unread": 1, "unseen": 0, "total": 1}, message="seen in the API")
    if os.environ.get("NOTIF_DOCS_SCREENSHOTS"):  # docs/img/notif-inbox.png: the open panel in a host page
        page.screenshot(path=str(Path(os.environ["NOTIF_DOCS_SCREENSHOTS"]) / "notif-inbox.png"))
    page.screenshot(path=str(tmp_path / "panel.png"))

    other.click("notif-inbox .bell")
    other_item = other.locator(ITEM)
    expect(other_item).to_have_class("item unread")

    # an action button calls the host's own API with the host's cookies (never notif's token), and reads the item
    page.click(f"{ITEM} .actions button:has-text('Approve')")
    expect(page.locator(f"{ITEM} .actions button")).to_have_text("Approve ✓", timeout=10000)
    assert stack.host.app.approved == {"ana": ["42"]}
    wait_until(lambda: stack.api("ana")["unread"] == 0, message="read in the API")
    expect(other_item).to_have_class("item", timeout=10000)  # the other tab follows (`read` event)

    page.click(f'{ITEM} [data-action="unread"]')
    wait_until(lambda: stack.api("ana")["unread"] == 1, message="unread again in the API")
    expect(other_item).to_have_class("item unread", timeout=10000)

    page.click(f'{ITEM} [data-action="read"]')
    wait_until(lambda: stack.api("ana")["unread"] == 0, message="read again in the API")
    expect(other_item).to_have_class("item", timeout=10000)

    page.click(f'{ITEM} [data-action="archive"]')
    wait_until(lambda: stack.api("ana") == {"unread": 0, "unseen": 0, "total": 0}, message="archived in the API")
    expect(page.locator(ITEM)).to_have_count(0, timeout=10000)
    expect(other.locator(ITEM)).to_have_count(0, timeout=10000)  # gone from the other tab's inbox too
    archived = stack.api("ana", path="/api/notifications?status=archived")["items"]
    assert [n["archived"] for n in archived] == [True]

    page.click('notif-inbox [role=tab][data-status="archived"]')
    expect(page.locator(ITEM)).to_have_count(1, timeout=10000)
    page.click(f'{ITEM} [data-action="unarchive"]')
    wait_until(lambda: stack.api("ana")["total"] == 1, message="back in the inbox")
    expect(other.locator(ITEM)).to_have_count(1, timeout=10000)
    context.close()


def test_an_expired_token_fires_the_event_and_a_new_token_resumes_with_nothing_missed(stack, browser):
    stack.host.app.ttl = 3  # the page's first token lives three seconds; notif ends its stream then
    context = browser.new_context()
    context.add_init_script("window.expired = []; document.addEventListener('notif-token-expired', "
                            "(event) => window.expired.push(event.detail.reason));")
    held = []
    context.route("**/notif-token", lambda route: held.append(route))  # the host's refresh, held back for now
    page = stack.host.sign_in(context, "bo")
    page.evaluate("window.marker = 'no reload'")
    page.click("notif-inbox .bell")
    expect(page.locator("notif-inbox .empty")).to_be_visible()

    page.wait_for_function("window.expired.length === 1", timeout=20000)
    assert page.evaluate("window.expired") == ["token expired"]
    page.wait_for_selector("notif-inbox[state=expired]")
    wait_until(lambda: held, message="the host app asked for a new token")

    report(stack.env, "bo", 7)  # sent while the page has no stream
    wait_until(lambda: stack.api("bo")["total"] == 1, message="the notification stored")
    assert page.locator(ITEM).count() == 0

    stack.host.app.ttl = 600
    held[0].continue_()  # the host hands the element a new token: it resumes after its last event
    expect(page.locator(ITEM)).to_have_count(1, timeout=15000)
    page.wait_for_selector(LIVE)
    assert page.evaluate("window.marker") == "no reload"
    assert page.evaluate("window.expired") == ["token expired"]  # once
    report(stack.env, "bo", 8)  # and live again
    expect(page.locator(ITEM)).to_have_count(2, timeout=30000)
    context.close()


def test_turning_a_channel_off_in_the_preferences_view_changes_the_api(stack, browser):
    context = browser.new_context()
    stack.api("cy", "PUT", "/api/preferences", json={"locale": "fr"})  # kept by the view's saves (PUT replaces)
    page = stack.host.sign_in(context, "cy")
    options = stack.api("cy", path="/api/preferences/options")
    channel = next(name for name in ("email", "push", "in_app") if name in options["channels"])
    page.click("notif-inbox .bell")
    page.click('notif-inbox [data-action="preferences"]')
    toggle = page.locator(f'notif-inbox [data-preference-channel="{channel}"]')
    expect(toggle).to_be_checked()
    critical = [t["type"] for t in options["types"] if t["critical"]]
    assert critical, "a template marked critical (SECURITY_ALERT) is shown as always on"
    critical_toggle = page.locator(f'notif-inbox [data-preference-type="{critical[0]}"]')
    expect(critical_toggle).to_be_checked()
    expect(critical_toggle).to_be_disabled()

    toggle.uncheck()
    expect(page.locator("notif-inbox .prefs .note")).to_have_text("Preferences saved", timeout=10000)
    assert stack.api("cy", path="/api/preferences")["channels"] == {channel: False}
    assert stack.api("cy", path="/api/preferences")["locale"] == "fr"

    page.click('notif-inbox [data-action="preferences"]')  # back to the list, then to the view again: as saved
    page.click('notif-inbox [data-action="preferences"]')
    expect(page.locator(f'notif-inbox [data-preference-channel="{channel}"]')).not_to_be_checked()
    page.locator(f'notif-inbox [data-preference-channel="{channel}"]').check()
    expect(page.locator("notif-inbox .prefs .note")).to_have_text("Preferences saved", timeout=10000)
    assert stack.api("cy", path="/api/preferences")["channels"] == {}
    context.close()


def test_an_origin_not_in_cors_origins_is_refused_by_the_browser(stack, browser):
    stranger = Host(stack.notif, stack.env["NOTIF_JWT_SECRET"], free_port())  # same app, an origin notif does not list
    try:
        context = browser.new_context()
        refused = []
        context.on("console", lambda message: refused.append(message.text) if "CORS policy" in message.text else None)
        page = stranger.sign_in(context, "dee", wait_live=False)
        fetch = """async ([server, token]) => {
          try { const r = await fetch(server + "/api/notifications/counts", {headers: {Authorization: "Bearer " + token}});
                return "read " + r.status; }
          catch (error) { return error.name; }
        }"""
        user_token = make_token(stack.env["NOTIF_JWT_SECRET"], "dee")
        assert page.evaluate(fetch, [stack.notif, user_token]) == "TypeError"  # the browser withheld the answer
        wait_until(lambda: refused, message="the browser's CORS refusal")
        assert page.locator("notif-inbox").get_attribute("state") != "live"
        report(stack.env, "dee")
        wait_until(lambda: stack.api("dee")["total"] == 1, message="the notification stored")
        assert page.locator(BADGE).is_hidden()  # nothing reached the stranger's page

        allowed = stack.host.sign_in(context, "dee")  # the listed origin, same browser, same user: it reads
        assert allowed.evaluate(fetch, [stack.notif, user_token]) == "read 200"
        expect(allowed.locator(BADGE)).to_have_text("1", timeout=10000)
        context.close()
    finally:
        stranger.close()


def test_keyboard_screen_reader_strings_and_load_more(stack, browser):
    from notif.models import Notification
    for n in range(24):
        Notification.create(user_id="eve", key=f"k{n}", title=f"Item {n}", message="m", priority="normal",
                            correlation_id="c")
    # markup that would run in a host page without a Content-Security-Policy, were it inserted as it is
    Notification.create(user_id="eve", key="evil", title="Evil", message="m", priority="normal", correlation_id="c",
                        html='<img src="/x.png" onerror="window.pwned = 1"><script>window.pwned = 2</script>'
                             '<a href="javascript:window.pwned = 3">link</a><svg onload="window.pwned = 4"></svg>')
    context = browser.new_context()
    page = stack.host.sign_in(context, "eve")
    bell = page.locator("notif-inbox .bell")
    expect(page.locator(BADGE)).to_have_text("25")
    expect(bell).to_have_attribute("aria-label", "Notifications, 25 unseen")

    bell.focus()
    page.keyboard.press("Enter")  # a real button: the keyboard opens it
    expect(bell).to_have_attribute("aria-expanded", "true")
    expect(page.locator(ITEM)).to_have_count(20)  # a page
    evil = page.locator(ITEM).first
    expect(evil.locator(".title")).to_have_text("Evil")
    evil.locator(".body a").click()
    assert evil.locator(".body").inner_html() == '<img src="/x.png"><a>link</a>'
    assert page.evaluate("window.pwned") is None  # the host page has no policy: the component's sanitizer held
    expect(page.locator(BADGE)).to_have_text("5", timeout=10000)  # what it showed is seen, the rest not yet
    page.click('notif-inbox [data-action="more"]')
    expect(page.locator(ITEM)).to_have_count(25)
    expect(page.locator(ITEM).last.locator(".title")).to_have_text("Item 0")  # newest first, down to the oldest
    expect(page.locator(BADGE)).to_be_hidden(timeout=10000)
    expect(page.locator('notif-inbox [data-action="more"]')).to_be_hidden()

    page.keyboard.press("Escape")  # closes, and gives the focus back to the bell
    expect(page.locator("notif-inbox [part=panel]")).to_be_hidden()
    assert page.evaluate("document.querySelector('notif-inbox').shadowRoot.activeElement.className") == "bell"

    report(stack.env, "eve")  # announced to screen readers as it arrives
    expect(page.locator("notif-inbox [aria-live=polite][role=status]").first).to_have_text(
        "New notification: New report submitted", timeout=30000)

    page.evaluate("document.querySelector('notif-inbox').strings = {heading: 'Benachrichtigungen', tabAll: 'Alle'}")
    bell.click()
    expect(page.locator("notif-inbox h2")).to_have_text("Benachrichtigungen")
    expect(page.locator('notif-inbox [role=tab][data-status="inbox"]')).to_have_text("Alle")
    expect(page.locator('notif-inbox [role=tab][data-status="archived"]')).to_have_text("Archived")  # the rest kept
    context.close()
