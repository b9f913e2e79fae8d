"""The YouTube Transcript tool on the chat page: listed in the chat's tools menu, and a refused link.

A fake OpenAI model ("yt-caller") plays the LLM: it asks for the tool with a Vimeo link, then answers
once the result is back. No request leaves 127.0.0.1: the tool refuses the link before any request.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.page import check, new_chat, reply_body, send, wait_done

CALLER = "yt-caller"
FUNCTION = "get_youtube_transcript"
LINK = "https://vimeo.com/76979871"
REFUSED = f"'{LINK}' is not a YouTube video link"
ANSWER = "That link is not a YouTube video, so there is no transcript."


@pytest.fixture
def caller(stack):
    stack.openai.set(CALLER, tool_calls=[{"name": FUNCTION, "arguments": {"url": LINK}}], reply=ANSWER)
    yield CALLER


def open_tools_menu(page):
    page.locator("#integration-menu-button").click()
    page.get_by_role("menuitem", name=re.compile(r"^Tools")).click()
    return page.get_by_role("menu").last


def test_the_tool_is_listed_in_the_chats_tools_menu(user_page, stack, shots):
    page = user_page  # deploy --share-tools: a plain user has it too
    new_chat(page, stack.url)
    menu = open_tools_menu(page)
    item = menu.get_by_role("menuitemcheckbox").filter(has_text="YouTube Transcript")
    expect(item).to_have_count(1)
    shots.step("tools menu", page)
    check(item.get_attribute("aria-checked") == "false", "off until the user turns it on")
    page.keyboard.press("Escape")


def test_a_refused_link_shows_the_result_block_and_the_sentence(admin_page, stack, shots, caller):
    page = admin_page
    new_chat(page, stack.url, caller)
    menu = open_tools_menu(page)
    menu.get_by_role("menuitemcheckbox").filter(has_text="YouTube Transcript").click()
    page.keyboard.press("Escape")
    shots.step("tool on", page)
    send(page, f"Get me the transcript of {LINK}")
    reply = wait_done(page)
    shots.step("reply", page)
    body = reply_body(page)
    expect(body).to_contain_text(ANSWER)
    block = body.get_by_role("button").filter(has_text=FUNCTION)
    expect(block).to_have_count(1)
    check(REFUSED not in body.inner_text(), "the result block starts collapsed")
    block.click()
    expect(reply).to_contain_text(REFUSED)
    shots.step("result opened", page)
    status = reply.get_by_role("button", name="Toggle status history")
    expect(status).to_have_text("Not a YouTube video link")
    assert stack.openai.chat_requests(CALLER)  # the fake played the LLM (not a page check)
