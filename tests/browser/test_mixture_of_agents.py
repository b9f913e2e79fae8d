"""Mixture of Agents on the chat page, its agents and aggregator on the fake OpenAI connection.

The status line changes while the layers run and ends with the true summary; with "Show each layer's
answers" on, each layer's answers are one collapsed block before the final answer.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import record_figure
from tests.browser.page import (
    check,
    first_word_seconds,
    new_chat,
    reply_body,
    restore_valves,
    send,
    set_valves,
    wait_done,
)
from tests.browser.stack import AGGREGATOR, MOA, MOA_FINAL

SUMMARY = f"Mixture of Agents: 2 layers, 3 of 3 agents answered, combined by {AGGREGATOR} in "


def status_line(page):
    return page.locator(".chat-assistant").last.get_by_role("button", name="Toggle status history")


def test_the_status_line_moves_and_ends_with_the_summary(user_page, stack, shots):
    page = user_page  # a plain user: deploy shared the pipe, the stack shared its agents
    new_chat(page, stack.url, MOA)
    send(page, "Name a colour.", watch_first_word=True)
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = status_line(page)
        text = line.first.inner_text(timeout=1000).strip() if line.count() else ""
        if text and (not seen or seen[-1] != text):
            seen.append(text)
            shots.step(f"status {len(seen)}", page)
        if text.startswith(SUMMARY):
            break
        time.sleep(0.05)
    seconds = first_word_seconds(page)
    record_figure("Mixture of Agents (2 layers x 3 agents, fake agents 0.3 s each)", seconds)
    print(f"Enter to first streamed word, Mixture of Agents: {seconds * 1000:.0f} ms")
    wait_done(page)
    check(len(seen) >= 3, f"the status line did not move: {seen}")
    check(seen[0].startswith("Layer 1/2"), seen)
    check(any(s.startswith("Aggregating 3 answers") for s in seen), seen)
    check(seen[-1].startswith(SUMMARY) and seen[-1].endswith(" s"), seen)
    expect(status_line(page)).to_have_text(seen[-1])  # it stays after the reply
    expect(reply_body(page)).to_have_text(MOA_FINAL)


@pytest.fixture
def intermediate(stack):
    before = set_valves(stack, MOA, show_intermediate=True)
    yield
    restore_valves(stack, MOA, before)


def test_each_layer_is_one_collapsed_block(admin_page, stack, shots, intermediate):
    page = admin_page
    new_chat(page, stack.url, MOA)
    send(page, "Name a colour.")
    wait_done(page)
    shots.step("intermediate blocks", page)
    body = reply_body(page)
    blocks = body.locator("button[aria-expanded]")
    expect(blocks).to_have_count(2)
    check(blocks.all_inner_texts() == ["Layer 1 of 2: 3 of 3 agents answered", "Layer 2 of 2: 3 of 3 agents answered"],
          blocks.all_inner_texts())  # fmt: skip
    check(all(b.get_attribute("aria-expanded") == "false" for b in blocks.all()), "blocks start collapsed")
    check(body.locator(".markdown-prose, p").last.inner_text().strip() == MOA_FINAL, body.inner_text())
    check("<details" not in body.inner_text(), body.inner_text())
    blocks.first.click()
    expect(body).to_contain_text("Agent 2")
    shots.step("layer 1 opened", page)
