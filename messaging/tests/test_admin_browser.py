"""An operator in a real browser (headless Chromium through Selenium): find a failed message by phone, open it,
see its attempts, resend it, and watch the resend reach "sent" through the Celery worker and the sandbox.

It also saves screenshots of the changelist, a message page and the dashboard, into var/screenshots/ (or
the folder in ADMIN_SCREENSHOTS_DIR: `ADMIN_SCREENSHOTS_DIR=docs make test` refreshes the README's images).
"""
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from evolution import instances
from messaging import services
from tests_support import wait_for
from messaging.models import AttemptOutcome, MessageStatus, OutboundMessage
from messaging.tests.admin_fixtures import (  # noqa: F401  (fixtures)
    CHANGELIST,
    DASHBOARD,
    admin_static_files_and_cache,
    make_message,
    make_user,
    page,
)

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = "+5511987650502"


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        # .ci/run installs them; a developer's machine may not have them yet.
        pytest.skip(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="admin-browser-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never tries to download a browser or a driver.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name: str) -> Path:
    folder = Path(os.environ.get("ADMIN_SCREENSHOTS_DIR") or Path(settings.BASE_DIR) / "var" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script(
        "return Math.max(document.documentElement.scrollHeight,"
        " document.getElementById('content').getBoundingClientRect().bottom + window.scrollY + 40)"
    )
    driver.set_window_size(1400, min(max(height, 700), 2200))  # the whole page, within reason
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def a_message_whose_sends_failed_while_evolution_said_it_was_connected(evolution_sandbox, settings) -> OutboundMessage:
    """The story behind the failure: WhatsApp's session broke under Evolution, which answered each send 500
    "Connection Closed" while its connectionState still said open, so the instance was not paused and the message
    spent its one retry and failed. (A disconnection Evolution reports pauses the instance instead: its messages
    wait, none fails.) The sandbox fails a number ending 0502 twice, then sends it: the resend goes out."""
    settings.MESSAGING_MAX_RETRIES = 1
    message, _ = services.accept_message(phone="+55 11 98765-0502", text="Seu pedido #4821 saiu para entrega.")
    failed = wait_for(lambda: (m := OutboundMessage.objects.get(pk=message.pk)).is_final and m, timeout=30)
    assert failed.status == MessageStatus.FAILED, failed.status
    assert instances.paused_reason(evolution_sandbox.instance) is None
    return failed


def test_an_operator_finds_a_failed_message_by_phone_and_resends_it_until_sent(
    browser, live_server, celery_worker, evolution_sandbox, settings
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    # Some history around it, so the pages (and the screenshots) look like a day of work.
    call_command("seed_fake_data", messages=400, days=1, stdout=open(os.devnull, "w"))
    failed = a_message_whose_sends_failed_while_evolution_said_it_was_connected(evolution_sandbox, settings)
    make_user("sam", groups=["Support"])  # resend is all the Support role may do, and all this needs

    browser.get(f"{live_server.url}/admin/login/?next={CHANGELIST}")
    # A narrow window's worth of room for the table: start with the admin's navigation sidebar folded away.
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    browser.find_element(By.NAME, "username").send_keys("sam")
    browser.find_element(By.NAME, "password").send_keys("secret-pass-123", Keys.ENTER)
    wait_for(lambda: browser.current_url.endswith(CHANGELIST), timeout=15)
    screenshot(browser, "admin-changelist")

    # Find it the way a person reads a number out, not the way it is stored.
    search = browser.find_element(By.ID, "searchbar")
    search.send_keys("98765 0502", Keys.ENTER)
    wait_for(lambda: "q=98765" in browser.current_url, timeout=15)
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert len(rows) == 1 and PHONE in rows[0].text and "Failed" in rows[0].text

    rows[0].find_element(By.LINK_TEXT, PHONE).click()
    wait_for(lambda: f"/{failed.pk}/change/" in browser.current_url, timeout=15)
    attempts = browser.find_elements(By.CSS_SELECTOR, "#attempts-group tbody tr.has_original, #attempts-group tbody tr.form-row")
    attempt_texts = [row.text for row in attempts if row.text.strip()]
    assert len(attempt_texts) == failed.attempt_count == settings.MESSAGING_MAX_RETRIES + 1
    assert all("Connection Closed" in text for text in attempt_texts)
    screenshot(browser, "admin-message")

    browser.find_element(By.ID, "msg-resend").click()
    resend = wait_for(lambda: OutboundMessage.objects.filter(resend_of=failed).first(), timeout=15)
    wait_for(lambda: f"/{resend.pk}/change/" in browser.current_url, timeout=15)
    assert f"Resent as #{resend.pk}." in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text

    def page_says_sent():
        browser.refresh()
        return browser.find_element(By.CSS_SELECTOR, ".field-status_badge .msg-badge").text == "Sent"

    wait_for(page_says_sent, timeout=30, interval=0.5)
    resend.refresh_from_db()
    assert (resend.status, resend.phone, resend.text) == (MessageStatus.SENT, PHONE, failed.text)
    assert [m["number"] for m in evolution_sandbox.sent_messages()] == ["5511987650502"]
    assert OutboundMessage.objects.get(pk=failed.pk).status == MessageStatus.FAILED  # history kept

    browser.get(f"{live_server.url}{DASHBOARD}")
    assert "Sent vs failed per hour" in browser.find_element(By.ID, "hourly-chart").text
    assert browser.find_elements(By.CSS_SELECTOR, "#hourly-chart svg rect")
    screenshot(browser, "admin-dashboard")


def sideways_scrollers(driver) -> list[str]:
    """The page, or any box in it, that hides part of its content behind a horizontal scroll (empty when it fits).

    Django wraps the changelist and inline tables in boxes with overflow-x: auto, so a too-wide table scrolls
    inside its box while the page itself looks fine.
    """
    return driver.execute_script("""
        var found = [], page = document.documentElement;
        if (page.scrollWidth > page.clientWidth) found.push("page by " + (page.scrollWidth - page.clientWidth) + "px");
        document.querySelectorAll("#content *").forEach(function (box) {
            var overflow = getComputedStyle(box).overflowX;
            if ((overflow === "auto" || overflow === "scroll") && box.scrollWidth > box.clientWidth + 1) {
                found.push((box.id || box.className || box.tagName) + " by " + (box.scrollWidth - box.clientWidth) + "px");
            }
        });
        return found;
    """)


def right_edge_in_view(driver, selector: str) -> bool:
    return driver.execute_script(
        "var r = document.querySelector(arguments[0]).getBoundingClientRect();"
        " return r.width > 0 && r.right <= document.documentElement.clientWidth;", selector,
    )


def test_on_a_1366_pixel_screen_the_changelist_and_the_attempts_fit_without_sideways_scrolling(browser, live_server):
    """The smallest common laptop screen, with the navigation sidebar open: every column in view."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    # The widest rows an operator meets: long texts and errors, and a message with every column of attempts filled.
    long_error = "Evolution API answered 500: Connection Closed while sending to 5511987654321@s.whatsapp.net " * 2
    attempts = [
        (AttemptOutcome.TEMPORARY_ERROR, 500, "server_error", long_error),
        (AttemptOutcome.TEMPORARY_ERROR, 503, "server_error", long_error),
        (AttemptOutcome.PERMANENT_ERROR, 400, "not_on_whatsapp", long_error),
    ]
    failed = make_message(
        "failed", text="Olá Carlos, seu pedido #4821 saiu para entrega e chega hoje entre 14h e 18h. " * 3,
        attempts=attempts, last_error_kind="not_on_whatsapp", last_error=long_error,
    )
    failed.attempts.update(task_id=str(uuid.uuid4()), evolution_message_id="3EB0C767D26A1D9F7A12B4")
    for _ in range(10):
        make_message(text="Seu código de verificação é 482113. Não compartilhe este código com ninguém. " * 2)
    make_user("boss", superuser=True)  # the admin's navigation sidebar open, as a first visit shows it

    browser.set_window_size(1366, 768)
    browser.get(f"{live_server.url}/admin/login/?next={CHANGELIST}")
    browser.find_element(By.NAME, "username").send_keys("boss")
    browser.find_element(By.NAME, "password").send_keys("secret-pass-123", Keys.ENTER)
    wait_for(lambda: browser.current_url.endswith(CHANGELIST), timeout=15)
    assert browser.find_element(By.ID, "nav-sidebar").is_displayed()
    assert sideways_scrollers(browser) == []
    assert right_edge_in_view(browser, "#result_list th.column-sent")

    browser.get(f"{live_server.url}{page(failed.pk)}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#attempts-group tbody tr.has_original")) == 3
    assert sideways_scrollers(browser) == []
    assert right_edge_in_view(browser, "#attempts-group th.column-task")
