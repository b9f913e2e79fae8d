"""The "Add to Memories" action, built and loaded like Open WebUI loads it, with a fake host in place of Open WebUI."""

import ast
import asyncio
import copy
import logging
import types
import uuid

import pytest

from tests.helpers import exception_names, find_built, load_built

mod = load_built("add_to_memories")

NEVER = object()


class Browser:
    """Records emitted events and answers dialogs like the 0.12.4 page (or fails to)."""

    def __init__(self, *answers):
        self.events = []
        self.calls = []
        self.answers = list(answers)

    async def emit(self, event):
        self.events.append(event)

    async def call(self, event):
        self.calls.append(event)
        answer = self.answers.pop(0) if self.answers else None
        if answer is NEVER:
            await asyncio.Event().wait()
        if isinstance(answer, Exception):
            raise answer
        return answer

    def notices(self):
        return [(e["data"]["type"], e["data"]["content"]) for e in self.events if e["type"] == "notification"]

    def statuses(self):
        return [(e["data"]["description"], e["data"]["done"]) for e in self.events if e["type"] == "status"]


class FakeHost:
    """Open WebUI's memories for one user, behind the methods of shared.host.MemoryHost.

    Behaves like 0.12.4's add_memory: the row goes in before the embedding, so a failed embedding
    leaves a row behind. Refusals are the built file's HostRefusal, as the real host raises them.
    """

    def __init__(
        self,
        user_id="user-1",
        rows=(),
        refuse=None,
        refuse_on_add=None,
        embed_error=None,
        role="user",
        settings=None,
        memory_on_when_unset=True,
    ):
        self.user_id = user_id
        self.on_when_unset = memory_on_when_unset  # False: the page of Open WebUI before 0.10
        self.role = role
        self.settings = settings  # the user record's settings (an object in Open WebUI), None = never saved
        self.rows = [mod.StoredMemory(f"old-{i}", text) for i, text in enumerate(rows)]
        self.vectors = set()
        self.refuse = refuse
        self.refuse_on_add = refuse_on_add
        self.embed_error = embed_error
        self.added = []
        self.deleted = []
        self.seen_users = []  # every user id the action looked up
        self.during_add = None  # an awaitable run between the insert and the embedding

    async def get_user(self, user_id):
        self.seen_users.append(user_id)
        if user_id != self.user_id:
            return None
        return types.SimpleNamespace(id=user_id, role=self.role, settings=self.settings)

    async def check_memories_permission(self, request, user):
        assert request is not None and user.id == self.user_id
        if self.refuse:
            raise mod.HostRefusal(self.refuse)

    def memory_on_when_unset(self):
        return self.on_when_unset

    async def memories(self, user_id):
        assert user_id == self.user_id
        rows = list(self.rows)  # the snapshot is taken, then the "query" yields like a real one
        await asyncio.sleep(0)
        return rows

    async def add_memory(self, request, user, content):
        assert request is not None and user.id == self.user_id
        if self.refuse_on_add:
            raise mod.HostRefusal(self.refuse_on_add)
        row = mod.StoredMemory(str(uuid.uuid4()), content.strip())
        self.rows.append(row)
        self.added.append(row.content)
        if self.during_add is not None:
            await self.during_add()
        await asyncio.sleep(0)
        if self.embed_error is not None:
            raise self.embed_error
        self.vectors.add(row.id)
        return row.id

    async def delete_memory(self, memory_id, user_id):
        assert user_id == self.user_id
        self.deleted.append(memory_id)
        before = len(self.rows)
        self.rows = [r for r in self.rows if r.id != memory_id]
        self.vectors.discard(memory_id)
        return len(self.rows) < before

    def contents(self):
        return [r.content for r in self.rows]


def store_of(host):
    """The action's store over `host`, for calling save_memory directly."""
    return mod._HostMemories(host, object(), types.SimpleNamespace(id=host.user_id, role="user"))


def chat(reply="The user likes green tea.", *, clicked="a1"):
    return {
        "model": "m",
        "chat_id": "c1",
        "session_id": "s1",
        "id": clicked,
        "messages": [
            {"id": "u1", "role": "user", "content": "What do I like?"},
            {"id": "a1", "role": "assistant", "content": reply},
            {"id": "u2", "role": "user", "content": "And else?"},
            {"id": "a2", "role": "assistant", "content": "Something else entirely."},
        ],
    }


def button(host, **valves):
    action = mod.Action()
    timeout = valves.pop("CALL_TIMEOUT", None)
    action.valves = action.Valves(**valves)
    if timeout is not None:
        action.valves.CALL_TIMEOUT = timeout  # below the valve's minimum, to keep the test fast
    action.host = host
    return action


async def click(action, browser, body=None, user=None, call=True):
    return await action.action(
        body if body is not None else chat(),
        __user__=user if user is not None else {"id": "user-1", "role": "user"},
        __request__=object(),
        __event_emitter__=browser.emit,
        __event_call__=browser.call if call else None,
    )


# --- the text ----------------------------------------------------------------------------------


def test_reasoning_details_and_citations_are_removed():
    reply = (
        '<details type="reasoning" done="true" duration="3">\n<summary>Thought for 3 seconds</summary>\n'
        "> Let me think about [1].\n> <details><summary>nested</summary>deep</details>\n</details>\n"
        "Paris is the capital of France [1][2]. It has 2 million people[3, 4] and a river [5#seine].\n\n\n\n"
        '<details type="tool_calls" done="true"><summary>Tool</summary>{"a": 1}</details>\n'
        "<think>raw reasoning</think>Done."
    )
    assert mod.memory_text(reply) == ("Paris is the capital of France. It has 2 million people and a river.\n\nDone.")


def test_code_links_and_footnotes_are_kept():
    reply = (
        "Use `items[1]` here [1].\n"
        "```python\nx = values[2]  # [3]\nprint('<details>kept</details>')\n```\n"
        "See [2](https://example.org), the reference [1][docs], note[^1] and [1]: https://x.org"
    )
    assert mod.memory_text(reply) == (
        "Use `items[1]` here.\n"
        "```python\nx = values[2]  # [3]\nprint('<details>kept</details>')\n```\n"
        "See [2](https://example.org), the reference [1][docs], note[^1] and [1]: https://x.org"
    )


def test_unclosed_reasoning_and_other_reasoning_tags():
    assert mod.memory_text("Visible <think>still thinking") == "Visible"
    assert mod.memory_text("<|begin_of_thought|>x<|end_of_thought|>Solution") == "Solution"
    assert mod.memory_text("<Thought>x</Thought>A ◁think▷y◁/think▷B") == "A B"
    assert mod.memory_text('<details type="reasoning" done="true">only reasoning</details>') == ""


def test_clicked_message_then_last_assistant_fallback():
    body = chat("First reply [1].")
    assert mod.clicked_text(body) == "First reply."
    body["id"] = "missing"
    assert mod.clicked_text(body) == "Something else entirely."
    del body["id"]
    assert mod.clicked_text(body) == "Something else entirely."
    body["messages"][1]["content"] = [{"type": "text", "text": "Parts [2]"}, {"type": "image_url"}]
    body["id"] = "a1"
    assert mod.clicked_text(body) == "Parts"
    assert mod.clicked_text({"messages": []}) == ""


def test_normalized_ignores_case_width_spacing_and_end_punctuation():
    assert mod.normalized("  The user   likes GREEN tea. ") == mod.normalized("the user likes ｇｒｅｅｎ tea")
    assert mod.normalized("likes tea") != mod.normalized("likes coffee")


# --- dialogs -------------------------------------------------------------------------------------


async def test_edit_dialog_prefilled_and_edited_text_saved():
    host = FakeHost()
    browser = Browser("  The user likes oolong tea.  ")
    body = chat("The user likes green tea [1].")
    original = copy.deepcopy(body)
    assert await click(button(host), browser, body) is None
    assert body == original
    [ask] = browser.calls
    assert ask["type"] == "input"
    assert ask["data"]["value"] == "The user likes green tea."
    assert "1000 characters" in ask["data"]["message"]
    assert host.contents() == ["The user likes oolong tea."]
    assert browser.notices() == [("success", "Saved to your memories.")]
    assert browser.statuses() == [("Saving to memories…", False), ("Saved to memories", True)]
    assert {e["type"] for e in browser.events} == {"status", "notification"}


@pytest.mark.parametrize(
    ("answer", "notice"),
    [
        (False, "Cancelled: nothing was saved to your memories."),
        (None, "Cancelled: nothing was saved to your memories."),
        (True, "Cancelled: nothing was saved to your memories."),
        ({"error": "Client session disconnected."}, "Client session disconnected: nothing was saved"),
        (
            {"error": "Event call timed out. The browser tab may be inactive or closed."},
            "Event call timed out. The browser tab may be inactive or closed: nothing was saved",
        ),
        (RuntimeError("socket broke"), "The dialog failed: nothing was saved"),
        ("", "The text was empty: nothing was saved to your memories."),
        ("  \n ", "The text was empty: nothing was saved to your memories."),
    ],
)
async def test_edit_dialog_without_usable_answer_writes_nothing(answer, notice):
    host = FakeHost()
    browser = Browser(answer)
    await click(button(host), browser)
    assert host.added == []
    [(kind, content)] = browser.notices()
    assert kind == "info"
    assert content.startswith(notice)
    assert browser.statuses() == []


async def test_dialog_timeout_from_valve():
    host = FakeHost()
    browser = Browser(NEVER)
    await click(button(host, CALL_TIMEOUT=0.05), browser)
    assert host.added == []
    assert browser.notices() == [("info", "No answer within 0.05 s: nothing was saved to your memories.")]


async def test_no_event_call_means_nothing_written():
    host = FakeHost()
    browser = Browser()
    await click(button(host), browser, call=False)
    assert host.added == []
    assert browser.notices() == [("info", "There is no open chat to ask in: nothing was saved to your memories.")]


async def test_without_editing_the_text_is_saved_directly():
    host = FakeHost()
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser)
    assert browser.calls == []
    assert host.contents() == ["The user likes green tea."]


@pytest.mark.parametrize(
    ("answer", "saved"),
    [(True, True), ("stale text from the input dialog", True), (False, False), (None, False), ("", False)],
)
async def test_confirmation(answer, saved):
    host = FakeHost()
    browser = Browser("Edited text.", answer)
    await click(button(host, CONFIRMATION_REQUIRED=True), browser)
    assert [c["type"] for c in browser.calls] == ["input", "confirmation"]
    assert "> Edited text." in browser.calls[1]["data"]["message"]
    assert host.contents() == (["Edited text."] if saved else [])
    if not saved:
        assert browser.notices() == [("info", "Cancelled: nothing was saved to your memories.")]


async def test_confirmation_only_and_its_timeout():
    host = FakeHost()
    browser = Browser(NEVER)
    action = button(host, EDIT_BEFORE_SAVE=False, CONFIRMATION_REQUIRED=True, CALL_TIMEOUT=0.05)
    await click(action, browser)
    assert [c["type"] for c in browser.calls] == ["confirmation"]
    assert host.added == []
    assert browser.notices() == [("info", "No answer within 0.05 s: nothing was saved to your memories.")]


# --- length -------------------------------------------------------------------------------------


async def test_too_long_without_editing():
    host = FakeHost()
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False, MAX_MEMORY_LENGTH=10), browser)
    assert host.added == []
    assert browser.notices() == [
        ("warning", "Too long for a memory: 25 characters, the limit is 10. Nothing was saved.")
    ]


async def test_too_long_edit_again_then_saved():
    host = FakeHost()
    browser = Browser("x" * 11, "short one")
    await click(button(host, MAX_MEMORY_LENGTH=10), browser)
    assert [c["data"]["value"] for c in browser.calls] == ["The user likes green tea.", "x" * 11]
    assert "11 characters" in browser.calls[1]["data"]["message"]
    assert host.contents() == ["short one"]
    assert browser.notices()[0] == (
        "warning",
        "Too long for a memory: 11 characters, the limit is 10. Shorten it in the dialog.",
    )


async def test_too_long_rounds_are_bounded():
    host = FakeHost()
    browser = Browser(*["y" * 20] * 10)
    await click(button(host, MAX_MEMORY_LENGTH=10), browser)
    assert len(browser.calls) == 3
    assert host.added == []
    assert browser.notices()[-1] == (
        "warning",
        "Too long for a memory: 20 characters, the limit is 10. Nothing was saved.",
    )


async def test_empty_message_without_editing():
    host = FakeHost()
    browser = Browser()
    body = chat("<details type='reasoning'>only thoughts</details>")
    await click(button(host, EDIT_BEFORE_SAVE=False), browser, body)
    assert host.added == []
    assert browser.notices() == [("info", "This message has no text to remember: nothing was saved.")]


# --- duplicates ----------------------------------------------------------------------------------


async def test_duplicate_is_not_saved_twice():
    host = FakeHost(rows=["the user likes GREEN  tea"])
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser)
    assert host.added == []
    assert browser.notices() == [("info", "Already saved in your memories.")]


async def test_clicking_twice_keeps_one():
    host = FakeHost()
    action = button(host, EDIT_BEFORE_SAVE=False)
    await click(action, Browser())
    await click(action, Browser())
    assert host.contents() == ["The user likes green tea."]


async def test_concurrent_clicks_keep_one():
    host = FakeHost()
    action = button(host, EDIT_BEFORE_SAVE=False)
    await asyncio.gather(*(click(action, Browser()) for _ in range(5)))
    assert host.contents() == ["The user likes green tea."]


async def test_deduplicate_off_saves_again():
    host = FakeHost(rows=["The user likes green tea."])
    await click(button(host, EDIT_BEFORE_SAVE=False, DEDUPLICATE=False), Browser())
    assert host.contents() == ["The user likes green tea."] * 2


# --- failures --------------------------------------------------------------------------------------


async def test_embedding_failure_rolls_back_the_row(caplog):
    host = FakeHost(rows=["kept memory"], embed_error=RuntimeError("401 from https://e.example/v1?key=SECRET123"))
    browser = Browser()
    caplog.set_level(logging.DEBUG)
    await click(button(host, EDIT_BEFORE_SAVE=False), browser)
    assert host.added == ["The user likes green tea."]
    assert host.contents() == ["kept memory"]
    assert len(host.deleted) == 1
    [(kind, content)] = browser.notices()
    assert kind == "error"
    assert content.startswith("Could not save to memories")
    assert "partial" not in content
    assert browser.statuses()[-1] == ("Not saved to memories", True)
    assert "SECRET123" not in caplog.text
    assert "SECRET123" not in str(browser.events)


async def test_rollback_only_deletes_its_own_row():
    host = FakeHost(embed_error=RuntimeError("embedding down"))

    async def someone_else_adds():
        host.rows.append(mod.StoredMemory("other", "Another memory"))

    host.during_add = someone_else_adds
    await click(button(host, EDIT_BEFORE_SAVE=False), Browser())
    assert host.contents() == ["Another memory"]


async def test_ambiguous_rollback_deletes_nothing_and_says_so():
    host = FakeHost(embed_error=RuntimeError("embedding down"))

    async def same_text_from_elsewhere():
        host.rows.append(mod.StoredMemory("twin", "The user likes green tea."))

    host.during_add = same_text_from_elsewhere
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False, DEDUPLICATE=False), browser)
    assert host.deleted == []
    assert "A partial entry may remain" in browser.notices()[0][1]


async def test_cancelled_request_still_rolls_back():
    host = FakeHost()
    started = asyncio.Event()

    async def hang():
        started.set()
        await asyncio.Event().wait()

    host.during_add = hang
    task = asyncio.ensure_future(click(button(host, EDIT_BEFORE_SAVE=False), Browser()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert host.rows == []


@pytest.mark.parametrize(
    ("status_code", "text"),
    [(404, "Memories are turned off on this server"), (403, "You don't have permission to use memories")],
)
async def test_memories_disabled_or_forbidden(status_code, text):
    host = FakeHost(refuse=status_code)
    browser = Browser("never asked")
    await click(button(host), browser)
    assert browser.calls == []
    assert host.added == []
    [(kind, content)] = browser.notices()
    assert kind == "warning"
    assert content.startswith(text)


async def test_refused_at_write_time():
    host = FakeHost(refuse_on_add=404)
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser)
    assert browser.notices()[0][0] == "warning"
    assert browser.statuses()[-1] == ("Not saved to memories", True)


async def test_unreadable_memories_write_nothing():
    host = FakeHost()

    async def broken(user_id):
        raise RuntimeError("db down")

    host.memories = broken
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser)
    assert host.added == []
    assert browser.notices() == [("error", "Could not read your memories: nothing was saved. Try again later.")]


def test_refusal_matches_open_webui_http_errors():
    from fastapi import HTTPException

    assert mod._refusal(HTTPException(status_code=404)).status_code == 404
    assert mod._refusal(HTTPException(status_code=403)).status_code == 403
    assert mod._refusal(HTTPException(status_code=400)) is None
    assert mod._refusal(RuntimeError("x")) is None


def test_refusals_are_told_by_type_not_shape():
    assert mod._refusal(mod.HostRefusal(404)).status_code == 404
    assert mod._refusal(mod.HostRefusal(500)) is None

    class LooksLikeOne(Exception):
        status_code = 404

    assert mod._refusal(LooksLikeOne()) is None


async def test_other_refusals_at_the_check_are_a_failure():
    host = FakeHost(refuse=500)
    browser = Browser("never asked")
    await click(button(host), browser)
    assert browser.calls == [] and host.added == []
    assert browser.notices() == [("error", "Could not reach your memories: nothing was saved. Try again later.")]


# --- the user --------------------------------------------------------------------------------------


async def test_only_the_signed_in_user_is_written():
    host = FakeHost(user_id="user-1")
    action = button(host, EDIT_BEFORE_SAVE=False)
    body = chat()
    body.update(user_id="user-2", user={"id": "user-2"})
    await click(action, Browser(), body, user={"id": "user-1"})
    assert host.seen_users == ["user-1"]
    assert host.contents() == ["The user likes green tea."]


async def test_a_failing_user_lookup_writes_nothing():
    host = FakeHost()

    async def broken(user_id):
        raise RuntimeError("db down")

    host.get_user = broken
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser)
    assert host.added == []
    assert browser.notices() == [("error", "Add to memories needs a signed-in user in a chat.")]


def test_the_action_talks_to_open_webui_through_the_host_seam():
    assert isinstance(mod.Action().host, mod.MemoryHost)


async def test_no_user_no_write():
    host = FakeHost()
    action = button(host, EDIT_BEFORE_SAVE=False)
    browser = Browser()
    await click(action, browser, user={})
    assert host.seen_users == []
    assert browser.notices() == [("error", "Add to memories needs a signed-in user in a chat.")]


# --- packaging ---------------------------------------------------------------------------------------


def test_valves_and_frontmatter():
    valves = mod.Action.Valves()
    assert valves.model_dump() == {
        "EDIT_BEFORE_SAVE": True,
        "CONFIRMATION_REQUIRED": False,
        "MAX_MEMORY_LENGTH": 1000,
        "DEDUPLICATE": True,
        "CALL_TIMEOUT": 300,
        "priority": 0,
    }
    plugin = find_built("add_to_memories")
    assert plugin.kind == "action"
    assert plugin.meta["global"] == "true"
    assert plugin.meta["icon_url"].startswith("data:image/svg+xml;base64,")
    assert len(plugin.meta["icon_url"]) < 1000
    # Open WebUI's modules are imported on first use, inside functions, never at load
    top = [n for n in ast.parse(plugin.text).body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not [n for n in top if "open_webui" in ast.dump(n)]
    assert "open_webui" in plugin.text


@pytest.mark.parametrize(
    ("answers", "options", "outcome"),
    [
        (["ok text"], {}, "saved"),
        ([False], {}, "cancelled"),
        ([""], {}, "empty"),
        (["x" * 20] * 3, {"max_length": 10}, "too_long"),
        ([], {"edit": False}, "saved"),
        ([False], {"edit": False, "confirm": True}, "cancelled"),
    ],
)
async def test_save_memory_outcomes(answers, options, outcome):
    browser = Browser(*answers)
    events = mod.Emitter(browser.emit, browser.call)
    got = await mod.save_memory(
        "Some text", store=store_of(FakeHost()), events=events, options=mod.SaveOptions(**options)
    )
    assert got == outcome


# --- the user's Memory switch --------------------------------------------------------------------

MEMORY_OFF = "Saved. Memory is off in your settings, so chats won't use it until you turn it on."


def clicker(memory=NEVER, role="user"):
    """`__user__` as Open WebUI 0.12.4 passes it: the user record dumped, settings included."""
    ui = {} if memory is NEVER else {"memory": memory}
    return {"id": "user-1", "role": role, "settings": {"ui": {"theme": "dark", **ui}}}


@pytest.mark.parametrize(
    ("settings", "off"),
    [
        ({"ui": {"memory": False}}, True),
        ({"ui": {"memory": True}}, False),
        ({"ui": {}}, False),  # never touched: the server default, on while memories are enabled
        ({"ui": None}, False),
        ({}, False),
        (None, False),
        (types.SimpleNamespace(ui={"memory": False}), True),  # a user record's settings object
        (types.SimpleNamespace(ui={"memory": True}), False),
    ],
)
def test_memory_switch_is_read_from_ui_settings(settings, off):
    assert mod.memory_switched_off(settings) is off


@pytest.mark.parametrize(
    ("settings", "off"),
    [
        ({"ui": {"memory": False}}, True),
        ({"ui": {"memory": True}}, False),
        ({"ui": {}}, True),  # never touched: the page of Open WebUI before 0.10 shows it off
        ({"ui": {"memory": None}}, True),  # null, as the settings update stores it before 0.12
        (None, True),
    ],
)
def test_memory_switch_where_unset_means_off(settings, off):
    assert mod.memory_switched_off(settings, on_when_unset=False) is off


async def test_saved_with_memory_never_set_on_a_host_where_that_is_off():
    browser = Browser()
    host = FakeHost(memory_on_when_unset=False)
    await click(button(host, EDIT_BEFORE_SAVE=False), browser, user=clicker())
    assert browser.notices() == [("success", MEMORY_OFF)]
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser, user=clicker(memory=True))
    assert browser.notices() == [("info", "Already saved in your memories.")]


async def test_saved_with_memory_off_says_chats_will_not_use_it():
    host = FakeHost()
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser, user=clicker(memory=False))
    assert host.contents() == ["The user likes green tea."]
    assert browser.notices() == [("success", MEMORY_OFF)]
    assert browser.statuses()[-1] == ("Saved to memories", True)


@pytest.mark.parametrize("memory", [True, NEVER])
async def test_saved_with_memory_on_or_unset_is_the_plain_notice(memory):
    browser = Browser()
    await click(button(FakeHost(), EDIT_BEFORE_SAVE=False), browser, user=clicker(memory=memory))
    assert browser.notices() == [("success", "Saved to your memories.")]


async def test_duplicate_with_memory_off_says_so_too():
    host = FakeHost(rows=["The user likes green tea."])
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser, user=clicker(memory=False))
    assert host.added == []
    assert browser.notices() == [
        ("info", "Already saved in your memories. Memory is off in your settings, so chats won't use it until you "
         "turn it on."),
    ]  # fmt: skip


async def test_memory_switch_from_the_user_record_when_user_has_no_settings():
    host = FakeHost(settings=types.SimpleNamespace(ui={"memory": False}))
    browser = Browser()
    await click(button(host, EDIT_BEFORE_SAVE=False), browser, user={"id": "user-1", "role": "user"})
    assert browser.notices() == [("success", MEMORY_OFF)]


# --- what a user reads -------------------------------------------------------------------------------

ADMIN_ONLY = (
    "EDIT_BEFORE_SAVE", "CONFIRMATION_REQUIRED", "MAX_MEMORY_LENGTH", "DEDUPLICATE", "CALL_TIMEOUT",
    "Admin Panel", "embedding", "Embedding", "For administrators", "server log", "ENABLE_MEMORIES",
)  # fmt: skip


def _db_down(user_id):
    raise RuntimeError("database is locked")


async def _db_down_async(*args):
    _db_down(None)


def _scenarios():
    """(name, host, valves, browser answers, __user__ changes): every way a click can end."""
    embed = RuntimeError("500 from http://embed.local/v1/embeddings?key=SECRET123")
    return [
        ("saved", FakeHost(), {}, ["ok text"], {}),
        ("memory off", FakeHost(), {"EDIT_BEFORE_SAVE": False}, [], {"settings": {"ui": {"memory": False}}}),
        ("cancel", FakeHost(), {}, [False], {}),
        ("dialog error", FakeHost(), {}, [{"error": "Client session disconnected."}], {}),
        ("dialog raised", FakeHost(), {}, [RuntimeError("socket broke")], {}),
        ("dialog timeout", FakeHost(), {"CALL_TIMEOUT": 0.01}, [NEVER], {}),
        ("no caller", FakeHost(), {}, None, {}),
        ("empty edit", FakeHost(), {}, [""], {}),
        ("empty reply", FakeHost(), {"EDIT_BEFORE_SAVE": False}, [], {"body": chat("")}),
        ("too long", FakeHost(), {"MAX_MEMORY_LENGTH": 5}, ["x" * 9] * 3, {}),
        ("too long direct", FakeHost(), {"EDIT_BEFORE_SAVE": False, "MAX_MEMORY_LENGTH": 5}, [], {}),
        ("confirm no", FakeHost(), {"CONFIRMATION_REQUIRED": True}, ["t", False], {}),
        ("duplicate", FakeHost(rows=["The user likes green tea."]), {"EDIT_BEFORE_SAVE": False}, [], {}),
        ("off (404)", FakeHost(refuse=404), {}, [], {}),
        ("forbidden (403)", FakeHost(refuse=403), {}, [], {}),
        ("check failed (500)", FakeHost(refuse=500), {}, [], {}),
        ("refused on add", FakeHost(refuse_on_add=404), {"EDIT_BEFORE_SAVE": False}, [], {}),
        ("embedding failed", FakeHost(embed_error=embed), {"EDIT_BEFORE_SAVE": False}, [], {}),
        ("read failed", FakeHost(), {"EDIT_BEFORE_SAVE": False}, [], {"memories": _db_down_async}),
        ("lookup failed", FakeHost(), {}, [], {"get_user": _db_down_async}),
        ("no user", FakeHost(), {}, [], {"user": {}}),
    ]


def _ambiguous_rollback_host():
    host = FakeHost(embed_error=RuntimeError("embedding down"))

    async def twin():
        host.rows.append(mod.StoredMemory("twin", "The user likes green tea."))

    host.during_add = twin
    return host


async def _texts_of(role):
    """Every notice and status a user with `role` reads, per scenario."""
    produced = {}
    scenarios = [
        *_scenarios(),
        ("partial entry", _ambiguous_rollback_host(), {"EDIT_BEFORE_SAVE": False, "DEDUPLICATE": False}, [], {}),
    ]
    for name, host, valves, answers, changes in scenarios:
        host.role = role
        for attr in ("memories", "get_user"):
            if attr in changes:
                setattr(host, attr, changes[attr])
        browser = Browser(*(answers or []))
        user = {**clicker(role=role), **({"settings": changes["settings"]} if "settings" in changes else {})}
        user = changes.get("user", user)
        await click(button(host, **valves), browser, changes.get("body"), user=user, call=answers is not None)
        produced[name] = [text for _, text in browser.notices()] + [text for text, _ in browser.statuses()]
        assert produced[name], name
    return produced


async def test_no_message_names_an_exception_or_an_admin_setting_for_a_user():
    for name, texts in (await _texts_of("user")).items():
        for text in texts:
            assert exception_names(text) == [], (name, text)
            assert not [word for word in ADMIN_ONLY if word in text], (name, text)
            assert "SECRET123" not in text, (name, text)


async def test_an_administrator_reads_the_detail_but_no_exception_names():
    produced = await _texts_of("admin")
    for name, texts in produced.items():
        for text in texts:
            assert exception_names(text) == [], (name, text)
            assert "SECRET123" not in text, (name, text)
    [embedding] = [t for t in produced["embedding failed"] if t.startswith("Could not save")]
    assert embedding.startswith("Could not save to memories: the server could not index the text.")
    assert embedding.endswith(
        "(For administrators: Embedding the memory failed: 500 from http://embed.local/v1/embeddings?key=***; "
        "check Admin Panel → Settings → Documents → Embedding and the server log.)"
    )
    assert "(For administrators: turn on Memories in Admin Panel → Settings → General.)" in produced["off (404)"][0]
    assert "Admin Panel → Users → Groups" in produced["forbidden (403)"][0]
    assert "database is locked" in produced["read failed"][0]
    assert "database is locked" in produced["lookup failed"][0]
    # with no signed-in user there is no role to trust: the plain sentence
    assert produced["no user"] == ["Add to memories needs a signed-in user in a chat."]
    # what every user reads is the same sentence first; only the end differs
    users = await _texts_of("user")
    for name, texts in produced.items():
        for admin_text, user_text in zip(texts, users[name], strict=True):
            assert admin_text.startswith(user_text), name


# --- valve titles -------------------------------------------------------------------------------------


def test_every_valve_has_a_human_title():
    fields = mod.Action.Valves.model_fields
    titles = {name: field.title for name, field in fields.items()}
    assert all(titles.values()), titles
    for name, title in titles.items():
        assert title != name.replace("_", " ").title(), name  # not the label Open WebUI would generate
        assert fields[name].description, name
    assert len(set(titles.values())) == len(titles)
    schema = mod.Action.Valves.model_json_schema()["properties"]
    assert {name: prop["title"] for name, prop in schema.items()} == titles  # what the valves form shows
