"""The inbox page in headless Chromium against the whole stack: SQS → poller → worker → web → browser."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from notif.auth import make_token

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does it)", pytrace=False)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def full_stack(processes, env):
    processes.start_worker()
    processes.start_poller()
    return processes.start_web()


def notif_send(env, *args):
    result = subprocess.run([sys.executable, "-m", "notif.cli", "send", *args], env={**env, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_sent_notification_appears_live_and_the_badge_counts_it(full_stack, browser, env, tmp_path):
    page = browser.new_page()
    user_token = make_token(env["NOTIF_JWT_SECRET"], "pat")
    page.goto(f"{full_stack}/?token={user_token}")
    page.wait_for_selector("#status.live", timeout=15000)
    page.wait_for_selector("body[data-service-worker=registered]", timeout=15000)  # ready to show pushes
    assert page.locator("#badge").inner_text() == "0"
    assert "token=" not in page.url  # kept out of the history

    notif_send(env, "--user", "pat", "--type", "REPORT_SUBMITTED", "--var", "submitterName=Ana",
               "--var", "branchName=North", "--var", "reportId=42", "--priority", "high")
    item = page.locator("#list li").first
    item.wait_for(timeout=30000)
    assert item.locator(".title").inner_text() == "New report submitted"
    assert "Ana has submitted a new report for North" in item.inner_text()
    assert item.locator(".actions a").get_attribute("href") == "/reports/42"
    page.wait_for_function("document.querySelector('#badge').textContent === '1'", timeout=10000)
    page.screenshot(path=str(tmp_path / "inbox.png"))

    # a second tab of the same user: marking read in one updates the badge in the other
    other = browser.new_page()
    other.goto(f"{full_stack}/?token={user_token}")
    other.wait_for_selector("#status.live", timeout=15000)
    assert other.locator("#list li.unread").count() == 1
    item.click()
    page.wait_for_function("document.querySelector('#badge').textContent === '0'", timeout=10000)
    other.wait_for_function("document.querySelector('#badge').textContent === '0'", timeout=10000)
    assert other.locator("#list li.unread").count() == 0


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
    page.wait_for_selector("#status.live", timeout=15000)
    notif_send(env, "--user", "quinn", "--title", "before", "--message", "while connected")
    page.locator("#list li", has_text="before").wait_for(timeout=30000)

    web = processes.procs["web"]
    web.terminate()  # the web process goes away (a deploy, a crash) …
    assert web.wait(30) == 0
    page.wait_for_selector("#status:not(.live)", timeout=15000)
    notif_send(env, "--user", "quinn", "--title", "meanwhile", "--message", "sent while the page was cut off")
    processes.start_web(port=int(base.rsplit(":", 1)[1]), name="web2")  # … and comes back
    page.locator("#list li", has_text="meanwhile").wait_for(timeout=30000)  # replayed on reconnect, no reload
    page.wait_for_function("document.querySelector('#badge').textContent === '2'", timeout=10000)
    assert page.locator("#list li").count() == 2  # nothing twice
