"""The "Add to Memories" button under a reply, its dialog, the notice and Settings → Personalization.

The reply is a grounded Gemini answer with a thought summary: the dialog is prefilled with the answer
alone, without the thoughts or the citation marks.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api
from tests.browser.page import ask, check, restore_valves, set_valves, toast
from tests.browser.stack import FLASH, GROUNDED_ANSWER

EDITED = "The user is planning a trip to Lisbon."
SAVED = re.compile(r"^\s*Saved to your memories\.\s*$")


@pytest.fixture
def grounded_reply(admin_page, stack):
    before = set_valves(stack, "gemini_manifold", GOOGLE_SEARCH_GROUNDING=True)
    for memory in api(stack, "GET", "/api/v1/memories/"):
        api(stack, "DELETE", f"/api/v1/memories/{memory['id']}")
    try:
        yield ask(admin_page, stack.url, "search the web: the capital of Portugal?", FLASH)
    finally:
        restore_valves(stack, "gemini_manifold", before)
        for memory in api(stack, "GET", "/api/v1/memories/"):
            api(stack, "DELETE", f"/api/v1/memories/{memory['id']}")


def open_dialog(page, reply):
    # the buttons under the reply (Open WebUI 0.12.4 draws them after the reply's body)
    button = page.get_by_role("button", name="Add to Memories").last
    expect(button).to_be_visible()
    button.click()
    dialog = page.get_by_role("dialog", name="Add to memories")
    expect(dialog).to_be_visible()
    return dialog


def test_edit_and_save_then_the_memory_is_listed(admin_page, stack, shots, grounded_reply):
    page = admin_page
    dialog = open_dialog(page, grounded_reply)
    box = dialog.get_by_role("textbox", name="What should be remembered?")
    shots.step("dialog", page)
    prefilled = box.input_value()
    check(prefilled == GROUNDED_ANSWER, f"prefilled with {prefilled!r}")
    check("Looking it up" not in prefilled and "[1]" not in prefilled, prefilled)
    box.fill(EDITED)
    dialog.get_by_role("button", name="Confirm").click()
    expect(toast(page, SAVED)).to_be_visible()
    shots.step("notice", page)
    page.get_by_role("button", name="User menu").click()
    page.get_by_role("menuitem", name="Settings").click()
    settings = page.get_by_role("dialog").last
    settings.get_by_role("tab", name="Personalization").click()
    expect(settings).to_contain_text("Saved Memories")
    expect(settings.get_by_text(EDITED, exact=True)).to_be_visible()
    shots.step("personalization", page)
    page.keyboard.press("Escape")


def test_cancel_writes_nothing(admin_page, stack, shots, grounded_reply):
    page = admin_page
    dialog = open_dialog(page, grounded_reply)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    shots.step("cancelled", page)
    expect(toast(page, "Cancelled: nothing was saved to your memories.")).to_be_visible()
    check(not toast(page, SAVED).count(), "no saved notice")
    check(api(stack, "GET", "/api/v1/memories/") == [], "nothing was saved")
