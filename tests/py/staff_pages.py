"""Drives the staff pages in headless Chromium (Debian's, through Playwright): sign in with a
token, open the inbox, open a petition, accept, assign to a village, start, answer; transfer a
second one to another commune. Prints a JSON report; exits non-zero when a step fails.

Usage: python staff_pages.py BASE_URL TOKEN FIRST_ID SECOND_ID
"""

import json
import os
import sys

from playwright.sync_api import sync_playwright

base, token, first, second = sys.argv[1:5]
chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
report = {}

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
    page = browser.new_page()
    # Without a session the inbox answers with the sign-in form.
    response = page.goto(base + "/xu-ly")
    report["unauthenticated_status"] = response.status
    page.fill("#token", token)
    page.click("#sign-in")
    page.wait_for_selector("#inbox")
    report["inbox_url"] = page.url
    report["inbox_unit"] = page.inner_text("#unit")
    report["inbox_counts"] = page.inner_text("#counts")
    report["inbox_first_row"] = page.get_attribute("#inbox tbody tr:first-child", "data-id")
    report["inbox_ids"] = page.eval_on_selector_all("#inbox tbody tr", "rows => rows.map(r => r.dataset.id)")
    report["overdue_rows"] = page.eval_on_selector_all("#inbox tr.overdue", "rows => rows.map(r => r.dataset.id)")
    report["chart_drawn"] = page.evaluate(
        "() => { const c = document.getElementById('state-chart'); return !!c && c.width > 0 && typeof Chart !== 'undefined' }"
    )

    # Open the first petition from the inbox and work it through.
    page.click(f"#inbox tr[data-id='{first}'] a")
    page.wait_for_selector("#state")
    report["opened_state"] = page.get_attribute("#state", "data-state")
    page.click("#do-accept")
    page.wait_for_selector("#done")
    report["after_accept"] = page.get_attribute("#state", "data-state")
    page.fill("#form-assign input[name=unit]", "00004-001")
    page.click("#do-assign")
    page.wait_for_selector("#done")
    report["after_assign"] = page.get_attribute("#state", "data-state")
    report["handler_after_assign"] = page.inner_text("#handler")
    page.click("#do-start")
    page.wait_for_selector("#done")
    page.fill("#form-answer textarea[name=answer]", "Đã thu gom rác và lắp biển cấm đổ rác.")
    page.click("#do-answer")
    page.wait_for_selector("#answer")
    report["after_answer"] = page.get_attribute("#state", "data-state")
    report["answer"] = page.inner_text("#answer")
    report["history"] = page.inner_text("#history")

    # Transfer the second one to a neighbouring commune, with a reason.
    page.goto(base + f"/xu-ly/{second}")
    # The unit field offers the province's communes by name (a datalist): 00097 is one of them.
    report["transfer_list"] = page.get_attribute("#form-transfer input[name=unit]", "list")
    report["transfer_choice"] = page.text_content("#units option[value='00097']")
    page.fill("#form-transfer input[name=unit]", "00097")
    page.fill("#form-transfer textarea[name=note]", "Thuộc thẩm quyền phường khác")
    page.click("#do-transfer")
    page.wait_for_selector("#done")
    report["after_transfer"] = page.get_attribute("#state", "data-state")
    report["handler_after_transfer"] = page.inner_text("#handler")
    browser.close()

print(json.dumps(report, ensure_ascii=False))
