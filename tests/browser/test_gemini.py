"""The Gemini manifold on the chat page, against the fake Gemini (tests/browser/stack.py: gemini_route).

What a person sees: the answer growing word by word in one place, the thought summary in Open WebUI's
collapsible "Thought…" block above the answer, Google Search grounding as the search line, the
sources chip, source titles and inline citation marks, and Gemini's refusals as plain sentences.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import record_figure
from tests.browser.page import (
    ask,
    check,
    first_word_seconds,
    new_chat,
    reply_body,
    restore_valves,
    send,
    set_valves,
)
from tests.browser.stack import FLASH, REDIRECT
from tests.helpers import exception_names

PIPE = "gemini_manifold"
RAW = ("<details", "</details>", "<think", "<summary", "thought: true", "[1]", "[2]")


def test_a_streamed_answer_grows_in_place(admin_page, stack, shots):
    page = admin_page
    new_chat(page, stack.url, FLASH)
    send(page, "hello there", watch_first_word=True)
    seconds = first_word_seconds(page)
    record_figure("Gemini 2.5 Flash (fake Gemini)", seconds)
    print(f"Enter to first streamed word, Gemini: {seconds * 1000:.0f} ms")
    body = reply_body(page)
    body.evaluate("e => { e.dataset.watched = 'yes' }")  # the same element must carry the whole answer
    lengths = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = body.inner_text()
        if not lengths or len(text) != lengths[-1]:
            lengths.append(len(text))
        if text.endswith("That is all I can say about it."):
            break
        time.sleep(0.05)
    shots.step("streamed", page)
    check(len(lengths) >= 4, f"the answer did not grow in steps: lengths seen {lengths}")
    check(lengths == sorted(lengths), f"the answer shrank while streaming: {lengths}")
    check(page.locator("#response-content-container[data-watched=yes]").count() == 1, "the answer was re-rendered")
    expect(body).to_have_text("Echo: hello there. That is all I can say about it.")
    check(page.locator("#response-content-container").count() == 1, "one reply")


def test_a_thinking_answer_shows_the_thought_block_above_it(admin_page, stack, shots):
    page = admin_page
    reply = ask(page, stack.url, "think first, then answer", FLASH)
    shots.step("thinking reply", page)
    body = reply_body(page)
    thought = body.get_by_role("button", name="Thought")
    expect(thought).to_have_count(1)
    check(thought.get_attribute("aria-expanded") == "false", "the thought block starts collapsed")
    answer = body.locator(".markdown-prose").last
    expect(answer).to_have_text("The answer is forty-two.")
    check(thought.bounding_box()["y"] < answer.bounding_box()["y"], "the thought block is above the answer")
    text = reply.inner_text()
    check("Weighing the options" not in text, "thoughts hidden until the block is opened")
    check(not [r for r in RAW if r in text], f"raw markup on the page: {text!r}")
    thought.click()
    expect(body).to_contain_text("Weighing the options. Settled on forty-two.")
    shots.step("thought block opened", page)
    check(not [r for r in RAW if r in reply.inner_text()], reply.inner_text())


@pytest.fixture
def grounding(stack):
    before = set_valves(stack, PIPE, GOOGLE_SEARCH_GROUNDING=True)
    yield
    restore_valves(stack, PIPE, before)


def test_grounding_shows_searches_sources_and_citation_marks(admin_page, stack, shots, grounding):
    page = admin_page
    reply = ask(page, stack.url, "search the web: what is the capital of Portugal?", FLASH)
    shots.step("grounded reply", page)
    # the search line, above the answer
    search_line = reply.get_by_role("button", name="Toggle status history")
    expect(search_line).to_have_text("Searched 2 sites")
    # inline citation marks: Open WebUI shows [1][2] as source chips in the sentence they support
    body = reply_body(page)
    # (the first chip stands for sources 1 and 2: "[1][2]" after the first sentence)
    expect(body.locator("button[aria-label='Lisbon - City Guide +1 more sources']")).to_have_count(1)
    expect(body.locator("button[aria-label='View source: Tagus river - River Guide']")).to_have_count(1)
    check("[1]" not in body.inner_text() and "[2]" not in body.inner_text(), body.inner_text())
    # the sources chip, and the titles in it
    chip = reply.get_by_role("button", name="Toggle 2 sources")
    expect(chip).to_have_text("2 Sources")
    chip.click()
    expect(reply).to_contain_text("Tagus river - River Guide")
    shots.step("sources opened", page)
    check(REDIRECT not in body.inner_text(), body.inner_text())


@pytest.mark.tolerate_blocked(
    r"^https://www\.google\.com/s2/favicons\?",
    "Open WebUI 0.12.4's search line (WebSearchResults.svelte) loads each listed site's favicon from Google",
)
def test_the_search_line_lists_titles_not_redirect_urls(admin_page, stack, shots, grounding):
    page = admin_page
    reply = ask(page, stack.url, "search the web: what is the capital of Portugal?", FLASH)
    search_line = reply.get_by_role("button", name="Toggle status history")
    search_line.click()
    shots.step("search line opened", page)
    links = search_line.get_by_role("link")
    expect(links).to_have_count(2)
    check(links.all_inner_texts() == ["Lisbon - City Guide", "Tagus river - River Guide"], links.all_inner_texts())
    check(REDIRECT not in reply.inner_text(), f"a redirect URL is shown: {reply.inner_text()!r}")


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("blocked prompt, please", "Gemini blocked the prompt"),
        ("cut off in the middle", "Gemini stopped"),
    ],
)
def test_refusals_read_as_plain_sentences(user_page, stack, shots, prompt, expected):
    page = user_page
    ask(page, stack.url, prompt, FLASH)
    shots.step("refusal", page)
    text = reply_body(page).inner_text()
    notice = next((line for line in text.splitlines() if expected in line), "")
    check(notice, f"no {expected!r} sentence in {text!r}")
    check(notice.startswith("⚠️ ") and notice.endswith("."), f"not a sentence: {notice!r}")
    check(exception_names(text) == [], f"exception names in {text!r}")
    check(not [c for c in "{}<>" if c in text] and "Traceback" not in text, f"raw detail in {text!r}")
