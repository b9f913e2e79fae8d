"""The valves forms as Open WebUI 0.12.4 draws them from each plugin's schema.

The admin's forms (Admin Panel → Functions, Workspace → Tools) and a user's (the chat's Valves button,
the tools menu): the Gemini key is a masked password field, on/off settings are switches (admin
booleans) or dropdowns (users' default/on/off choices), and every valve has a human title and a
description.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import api
from tests.browser.page import check, new_chat
from tests.browser.stack import FLASH

# each row of the form: its title, the Default/Custom toggle, the control once Custom, the description
ROWS = """form => Array.from(form.querySelectorAll(':scope > div > div')).map(row => ({
  title: (row.children[0]?.children[0]?.innerText || '').trim(),
  toggle: (row.children[0]?.querySelector('button')?.innerText || '').trim(),
  description: (row.querySelector('p')?.innerText || '').trim(),
  switches: row.querySelectorAll('[role=switch]').length,
  selects: row.querySelectorAll('select').length,
}))"""
NAME_LIKE = re.compile(r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)+$")


def rows(dialog) -> list[dict]:
    return dialog.locator("form").first.evaluate(ROWS)


def show_every_control(dialog, count: int) -> None:
    """Switch each valve still on "Default" to "Custom", which shows its input (nothing is saved)."""
    form = dialog.locator("form").first
    for index in range(count):
        toggle = form.locator(":scope > div > div").nth(index).locator("button").first
        if toggle.inner_text().strip() == "Default":
            toggle.click()


def check_form(dialog, spec: dict, label: str) -> list[dict]:
    properties = spec["properties"]
    expect(dialog.locator("form").first).to_be_visible()
    show_every_control(dialog, len(properties))
    found = rows(dialog)
    check(len(found) == len(properties), f"{label}: {len(found)} rows for {len(properties)} valves")
    by_title = {row["title"]: row for row in found}
    for name, prop in properties.items():
        title = prop.get("title") or ""
        row = by_title.get(title)
        check(row is not None, f"{label}: no row titled {title!r} for {name}: {[r['title'] for r in found]}")
        check(title != name and not NAME_LIKE.match(title), f"{label}: {name} is titled with its field name")
        check(row["description"], f"{label}: {name} ({title}) has no description")
        if prop.get("type") == "boolean":
            check(row["switches"] == 1, f"{label}: {title} (on/off) is not a switch: {row}")
        if prop.get("enum"):
            check(row["selects"] == 1, f"{label}: {title} ({prop['enum']}) is not a dropdown: {row}")
    return found


def open_function_valves(page, url: str, plugin_id: str):
    page.goto(url + "/admin/functions")
    row = page.locator(f"xpath=//a[contains(@href, 'id={plugin_id}')]/ancestor::*[.//button[@aria-label='Valves']][1]")
    row.get_by_role("button", name="Valves").first.click()
    dialog = page.get_by_role("dialog").last
    expect(dialog).to_be_visible()
    return dialog


@pytest.mark.parametrize("plugin_id", ["gemini_manifold", "mixture_of_agents", "add_to_memories"])
def test_the_admins_function_valves_forms(admin_page, stack, shots, plugin_id):
    page = admin_page
    dialog = open_function_valves(page, stack.url, plugin_id)
    spec = api(stack, "GET", f"/api/v1/functions/id/{plugin_id}/valves/spec")
    check_form(dialog, spec, plugin_id)
    shots.step(f"{plugin_id} valves", page)
    if plugin_id == "gemini_manifold":
        secrets = ("GOOGLE_API_KEY", "GOOGLE_API_KEY_FALLBACK", "VERTEX_CREDENTIALS_JSON")
        for name in secrets:
            field = dialog.locator(f"#valve-{name}")
            masked = field.evaluate("e => e.type === 'password' || getComputedStyle(e).webkitTextSecurity === 'disc'")
            check(masked, f"{name} is shown in clear")
        reveal = dialog.get_by_role("button", name="Make password visible in the user interface")
        check(reveal.count() == len(secrets), f"{reveal.count()} password fields, {len(secrets)} secrets")
    dialog.get_by_role("button", name="Close").first.click()  # nothing saved


def test_the_admins_tool_valves_form(admin_page, stack, shots):
    page = admin_page
    page.goto(stack.url + "/workspace/tools")
    row = page.locator(
        "xpath=//a[contains(@href, 'id=youtube_transcript')]/ancestor::*[.//button[@aria-label='Valves']][1]"
    )
    row.get_by_role("button", name="Valves").first.click()
    dialog = page.get_by_role("dialog").last
    spec = api(stack, "GET", "/api/v1/tools/id/youtube_transcript/valves/spec")
    check_form(dialog, spec, "youtube_transcript")
    shots.step("youtube valves", page)
    dialog.get_by_role("button", name="Close").first.click()


def test_a_users_gemini_valves_form(user_page, stack, shots):
    page = user_page
    new_chat(page, stack.url, FLASH)
    page.locator("#model-valves-button").click()
    dialog = page.get_by_role("dialog").last
    spec = api(stack, "GET", "/api/v1/functions/id/gemini_manifold/valves/user/spec", token=stack.user.token)
    check_form(dialog, spec, "gemini_manifold (user)")
    shots.step("user valves", page)
    page.keyboard.press("Escape")


def test_a_users_youtube_valves_form(user_page, stack, shots):
    page = user_page
    new_chat(page, stack.url)
    page.locator("#integration-menu-button").click()
    page.get_by_role("menuitem", name=re.compile(r"^Tools")).click()
    page.get_by_role("menu").last.get_by_role("button", name="Valves").first.click()
    dialog = page.get_by_role("dialog").last
    spec = api(stack, "GET", "/api/v1/tools/id/youtube_transcript/valves/user/spec", token=stack.user.token)
    check_form(dialog, spec, "youtube_transcript (user)")
    shots.step("user tool valves", page)
    page.keyboard.press("Escape")
