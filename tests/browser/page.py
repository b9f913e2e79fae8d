"""What the browser tests do on Open WebUI 0.12.4's chat page, by role, label and text.

The names below are the ones Open WebUI 0.12.4's compiled frontend gives its elements (read from the
live DOM): `#chat-input` (the message box, a contenteditable), `#response-content-container` (one
reply's body), `.chat-assistant` (one reply with its status line and buttons), the model picker's
button "Selected model: …" and its options "Select … model", the buttons under a reply
("Regenerate", "Add to Memories", …).
"""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import count_check

REPLY_TIMEOUT = 60_000  # ms: a reply on 2 busy cores
# watches the last reply from the moment Enter is pressed: when its body first shows text
FIRST_WORD_WATCH = """() => {
  window.__firstWord = null;
  window.__enterAt = performance.now();
  const seen = () => {
    const bodies = document.querySelectorAll('#response-content-container');
    const last = bodies[bodies.length - 1];
    if (last && last.innerText.trim() && window.__firstWord === null) {
      window.__firstWord = performance.now() - window.__enterAt;
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(seen);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def check(condition: Any, message: str = "") -> None:
    """One page check: counted for the tier's closing figures."""
    count_check()
    assert condition, message


def new_chat(page: Page, url: str, model: str | None = None) -> None:
    page.goto(url + "/" + (f"?model={model}" if model else ""))
    page.locator("#chat-input").wait_for()


def send(page: Page, text: str, *, watch_first_word: bool = False) -> None:
    box = page.locator("#chat-input")
    box.click()
    box.fill(text)
    if watch_first_word:
        page.evaluate(FIRST_WORD_WATCH)
    box.press("Enter")


def first_word_seconds(page: Page, timeout: float = 30_000) -> float:
    page.wait_for_function("() => window.__firstWord !== null", timeout=timeout)
    return float(page.evaluate("() => window.__firstWord")) / 1000


def last_reply(page: Page) -> Locator:
    return page.locator(".chat-assistant").last


def reply_body(page: Page) -> Locator:
    return page.locator("#response-content-container").last


def wait_done(page: Page) -> Locator:
    """The last reply once it is finished (its Regenerate button shows), settled a moment."""
    page.get_by_role("button", name="Regenerate").last.wait_for(timeout=REPLY_TIMEOUT)
    time.sleep(0.1)
    return last_reply(page)


def ask(page: Page, url: str, text: str, model: str | None = None) -> Locator:
    new_chat(page, url, model)
    send(page, text)
    return wait_done(page)


def open_model_picker(page: Page) -> list[tuple[str, str]]:
    """(name shown, model id) of every model the picker lists."""
    page.get_by_role("button", name=re.compile(r"^Selected model")).first.click()
    listbox = page.get_by_role("listbox", name="Available models")
    expect(listbox).to_be_visible()
    options = listbox.get_by_role("option")
    expect(options.first).to_be_visible()
    found = options.evaluate_all(
        "els => els.map(e => [e.querySelector('.line-clamp-1')?.innerText || e.innerText, e.dataset.value])"
    )
    page.keyboard.press("Escape")
    return [(str(name).strip(), str(value)) for name, value in found]


def toast(page: Page, text: str | re.Pattern) -> Locator:
    """Open WebUI's notices (svelte-sonner toasts) showing `text` (a substring, or a pattern)."""
    return page.locator("[data-sonner-toast]").filter(has_text=text)


def set_valves(stack: Any, plugin_id: str, **values: Any) -> dict:
    """Change a function's stored valves through the REST API; returns the previous values."""
    from tests.browser.conftest import api

    before = api(stack, "GET", f"/api/v1/functions/id/{plugin_id}/valves") or {}
    api(stack, "POST", f"/api/v1/functions/id/{plugin_id}/valves/update", json={**before, **values})
    return before


def restore_valves(stack: Any, plugin_id: str, values: dict) -> None:
    from tests.browser.conftest import api

    api(stack, "POST", f"/api/v1/functions/id/{plugin_id}/valves/update", json=values)
