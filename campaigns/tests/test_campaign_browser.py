"""An operator in a real browser (headless Chromium through Selenium) runs a campaign from a CSV file: uploads it,
reads the preview, imports it, creates a campaign for the file's tag, launches it, and watches its progress page
until the run is completed, sent by a real Celery worker through the sandbox, and delivered per the sandbox's
receipts to the live console. Beat's ticks are driven by the test (``until``), as in the other campaign tests.

It saves the progress page as campaign-progress.png in var/screenshots/ (or ADMIN_SCREENSHOTS_DIR:
`ADMIN_SCREENSHOTS_DIR=docs` refreshes the README's image).
"""
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from campaigns.models import Campaign, CampaignStatus, ContactImport, ImportStatus
from campaigns.tests.test_campaigns import messages_of, until
from inbound.tests.conftest import console  # noqa: F401  (the live console the sandbox posts receipts to)
from messaging.models import MessageStatus
from messaging.tests.admin_fixtures import admin_static_files_and_cache, make_user  # noqa: F401  (fixtures)
from messaging.tests.test_admin_browser import browser, screenshot  # noqa: F401  (the browser fixture)
from tests_support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CSV = """phone,name,date,tags
+55 11 98765-3001,Ana,12 May,spring
+55 11 98765-3002,Bruno,13 May,spring
not a phone,Nobody,14 May,spring
+55 11 98765-3003,Carla,15 May,spring
+55 11 98765-3001,Ana Maria,12 May,spring
"""


def says(browser, sentence: str) -> bool:
    """Whether the admin's message list (the page after a submit, once it has loaded) holds ``sentence``."""
    lists = browser.find_elements(By.CSS_SELECTOR, "ul.messagelist")
    try:
        return any(sentence in found.text for found in lists)
    except StaleElementReferenceException:
        return False


def run_action(browser, action: str) -> None:
    """Tick the changelist's only row and run ``action`` on it."""
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody input.action-select")
    assert len(rows) == 1
    rows[0].click()
    Select(browser.find_element(By.NAME, "action")).select_by_value(action)
    browser.find_element(By.NAME, "index").click()


def test_an_operator_runs_a_campaign_from_a_csv_upload_to_its_completed_progress_page(
    browser, console, evolution_sandbox, tmp_path
):
    live_server = console
    make_user("ops", groups=["Operators"])
    csv_file = tmp_path / "spring.csv"
    csv_file.write_text(CSV)
    admin = f"{live_server.url}/admin/campaigns"

    browser.get(f"{live_server.url}/admin/login/?next=/admin/campaigns/contactimport/add/")
    # Room for the runs table: the admin's navigation sidebar folded away, as an operator at work would.
    browser.execute_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("secret-pass-123", Keys.ENTER)
    wait_for(lambda: browser.current_url.endswith("/contactimport/add/"), timeout=15)

    # Upload: the page that follows is the preview; nothing is imported yet.
    browser.find_element(By.NAME, "file").send_keys(str(csv_file))
    browser.find_element(By.NAME, "_continue").click()
    upload = wait_for(lambda: ContactImport.objects.first(), timeout=15)
    wait_for(lambda: f"/contactimport/{upload.pk}/change/" in browser.current_url, timeout=15)
    preview = browser.find_element(By.ID, "content").text
    assert "not a phone" in preview and "Ana Maria" in preview
    assert (upload.status, upload.accepted, upload.rejected, upload.duplicates) == (ImportStatus.PREVIEW, 3, 1, 1)

    # Import it, in the background.
    browser.get(f"{admin}/contactimport/")
    run_action(browser, "start_import")
    wait_for(lambda: says(browser, "1 import(s) started"), timeout=15, what="the import started")
    wait_for(lambda: ContactImport.objects.get(pk=upload.pk).status == ImportStatus.DONE, timeout=30, what="imported")

    # A campaign for everyone tagged spring, then launched from the changelist.
    browser.get(f"{admin}/campaign/add/")
    browser.find_element(By.NAME, "name").send_keys("Spring reminder")
    instance = browser.find_element(By.NAME, "instance")
    instance.clear()
    instance.send_keys(evolution_sandbox.instance)
    browser.find_element(By.NAME, "text").send_keys("Hola {name}, tu cita es el {date}")
    # The live preview follows the typing: for a sample contact (no audience yet), then for the tag's first contact.
    preview = browser.find_element(By.ID, "campaign-preview")
    wait_for(lambda: preview.text == "Preview: To Ana (+5511987654321): cannot be written ({date} has no value).",
             timeout=10, what="the preview for the sample contact")
    Select(browser.find_element(By.NAME, "audience")).select_by_visible_text("spring")
    wait_for(lambda: preview.text == "Preview: To Ana Maria (+5511987653001): Hola Ana Maria, tu cita es el 12 May",
             timeout=10, what="the preview for the audience's first contact")
    rate = browser.find_element(By.NAME, "rate_per_minute")
    rate.clear()
    rate.send_keys("600")
    browser.find_element(By.NAME, "_save").click()
    campaign = wait_for(lambda: Campaign.objects.filter(name="Spring reminder").first(), timeout=15)
    wait_for(lambda: says(browser, "was added successfully"), timeout=15, what="the campaign saved")
    run_action(browser, "launch")
    wait_for(lambda: says(browser, "Launched: Spring reminder."), timeout=15, what="the campaign launched")

    until(lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED, timeout=60, what="completed")
    assert sorted(messages_of(campaign).values_list("text", flat=True)) == [
        "Hola Ana Maria, tu cita es el 12 May", "Hola Bruno, tu cita es el 13 May", "Hola Carla, tu cita es el 15 May",
    ]
    assert set(messages_of(campaign).values_list("status", flat=True)) == {MessageStatus.SENT}
    assert sorted(m["number"] for m in evolution_sandbox.sent_messages()) == [
        "5511987653001", "5511987653002", "5511987653003"]
    wait_for(lambda: messages_of(campaign).filter(delivered_at__isnull=False).count() == 3, what="receipts")

    browser.get(f"{admin}/campaign/{campaign.pk}/change/")
    assert "Completed" in browser.find_element(By.CSS_SELECTOR, ".field-status").text
    runs = browser.find_elements(By.CSS_SELECTOR, ".field-runs table tr")
    header = [cell.text for cell in runs[0].find_elements(By.TAG_NAME, "th")]
    cells = dict(zip(header, (cell.text for cell in runs[1].find_elements(By.TAG_NAME, "td"))))
    assert (cells["run"], cells["status"], cells["total"], cells["sent"], cells["delivered"], cells["failed"]) == (
        "1", "completed", "3", "3", "3", "0")
    screenshot(browser, "campaign-progress")
