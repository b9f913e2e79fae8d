"""The "Add to Memories" button in a real Open WebUI (0.6.43 to 0.12.4), with the fake embeddings server.

The action is called the way the browser calls it (POST /api/chat/actions/add_to_memories with the
socket's session id), and the socket client answers the dialogs. Where a version behaves differently
(see tests/host/versions.py and the constants below) the test asserts that version's behaviour.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import uuid

import pytest

from tests.helpers import exception_names
from tests.host import versions
from tests.host.conftest import EVENT_CALL_TIMEOUT, NEVER

ACTION = "add_to_memories"
MODEL = "fake-gpt"
DEFAULTS = {
    "EDIT_BEFORE_SAVE": True,
    "CONFIRMATION_REQUIRED": False,
    "MAX_MEMORY_LENGTH": 1000,
    "DEDUPLICATE": True,
    "CALL_TIMEOUT": 300,
    "priority": 0,
}


SAVED = "Saved to your memories."
MEMORY_OFF = "Saved. Memory is off in your settings, so chats won't use it until you turn it on."
# A user who never touched the Memory switch (Settings → Personalization): before 0.10 the page shows
# it off (`$settings?.memory ?? false`), so chats do not use memories and the notice says so; from
# 0.10 it follows the server's memories setting (on).
SAVED_SWITCH_UNSET = SAVED if versions.at_least("0.10.0") else MEMORY_OFF
DUPLICATE = "Already saved in your memories."
DUPLICATE_SWITCH_UNSET = DUPLICATE + ("" if versions.at_least("0.10.0") else MEMORY_OFF.removeprefix("Saved."))
# An unanswered or abandoned dialog: 0.12.4 answers {"error": ...} (the plugin quotes it); before, the
# host raises python-socketio's TimeoutError into the plugin, which reports a failed dialog.
DIALOG_RAISED = "The dialog failed: nothing was saved to your memories."
# ENABLE_MEMORIES and the `features.memories` permission do not exist in 0.6.43 (memories are always on).
NO_MEMORIES_SWITCH = "the server has no Memories setting and no memories permission to turn off"


def install(owui, **valves):
    owui.deploy(ACTION, valves={ACTION: {**DEFAULTS, **valves}})


def memories(owui, user=None):
    return [m["content"] for m in owui.ok("GET", "/api/v1/memories/", token=user)]


def body(socket, reply, *, chat_id=None, message_id="a1", **extra):
    return {
        "model": MODEL,
        "chat_id": chat_id or f"local:{socket.sid}",
        "id": message_id,
        "session_id": socket.sid,
        "messages": [
            {"id": "u1", "role": "user", "content": "Tell me about tea."},
            {"id": message_id, "role": "assistant", "content": reply},
        ],
        **extra,
    }


def notices(socket, timeout=10, count=1):
    socket.wait_for("notification", timeout, count=count)
    return [(n["type"], n["content"]) for n in socket.of_type("notification")]


@pytest.fixture(autouse=True)
def clean(owui):
    for user in (owui.admin, owui.user):
        if memories(owui, user):  # deleting an empty set makes Open WebUI log an error
            owui.ok("DELETE", "/api/v1/memories/delete/user", token=user)
    yield


def test_valves_form_shows_titles(owui):
    install(owui)
    spec = owui.ok("GET", f"/api/v1/functions/id/{ACTION}/valves/spec")
    assert {name: p["title"] for name, p in spec["properties"].items()} == {
        "EDIT_BEFORE_SAVE": "Edit before saving",
        "CONFIRMATION_REQUIRED": "Ask for confirmation",
        "MAX_MEMORY_LENGTH": "Longest memory (characters)",
        "DEDUPLICATE": "Skip duplicates",
        "CALL_TIMEOUT": "Dialog timeout (seconds)",
        "priority": "Button order",
    }


def test_button_is_global_with_its_icon(owui):
    install(owui)
    [model] = [m for m in owui.models() if m["id"] == MODEL]
    [button] = [a for a in model.get("actions", []) if a["id"] == ACTION]
    assert button["name"] == "Add to Memories"
    assert button["icon"].startswith("data:image/svg+xml;base64,")


def test_edited_text_is_saved_and_recalled_first(owui, socket):
    install(owui)
    owui.ok("POST", "/api/v1/memories/add", json={"content": "The user lives in Lisbon."})
    socket.answer("input", lambda data: data["value"].replace("green", "oolong"))
    reply = (
        '<details type="reasoning" done="true" duration="1"><summary>Thought</summary>\n> tea?\n</details>\n'
        "The user drinks green tea every morning [1][2]."
    )
    assert owui.action(ACTION, body(socket, reply)) is None
    [call] = socket.calls
    assert call.type == "input"
    assert call.data["value"] == "The user drinks green tea every morning."
    edited = "The user drinks oolong tea every morning."
    assert sorted(memories(owui)) == sorted(["The user lives in Lisbon.", edited])
    result = owui.ok("POST", "/api/v1/memories/query", json={"content": "which tea does the user drink", "k": 2})
    assert result["documents"][0][0] == edited
    assert notices(socket) == [("success", SAVED_SWITCH_UNSET)]
    statuses = socket.of_type("status")
    assert statuses[-1]["description"] == "Saved to memories"
    assert statuses[-1]["done"] is True


def test_saved_chat_reply_is_not_modified(owui, socket):
    install(owui, EDIT_BEFORE_SAVE=False)
    reply = "The user's cat is called Miso [1]."
    messages = {
        "u1": {"id": "u1", "parentId": None, "childrenIds": ["a1"], "role": "user", "content": "My cat?"},
        "a1": {"id": "a1", "parentId": "u1", "childrenIds": [], "role": "assistant", "content": reply},
    }
    chat = owui.ok(
        "POST",
        "/api/v1/chats/new",
        json={"chat": {"title": "cat", "history": {"messages": messages, "currentId": "a1"}, "messages": []}},
    )
    assert owui.action(ACTION, body(socket, reply, chat_id=chat["id"])) is None
    assert memories(owui) == ["The user's cat is called Miso."]
    saved = owui.ok("GET", f"/api/v1/chats/{chat['id']}")["chat"]["history"]["messages"]["a1"]
    assert saved["content"] == reply
    assert saved["statusHistory"][-1] == {"description": "Saved to memories", "done": True, "hidden": False}
    owui.ok("DELETE", f"/api/v1/chats/{chat['id']}")


@pytest.mark.parametrize("answer", [False, "", "   "])
def test_cancel_or_empty_writes_nothing(owui, socket, answer):
    install(owui)
    socket.answer("input", answer)
    owui.action(ACTION, body(socket, "The user likes jasmine tea."))
    assert memories(owui) == []
    [(kind, content)] = notices(socket)
    assert kind == "info"
    assert "nothing was saved" in content


def test_confirmation_cancel_then_confirm(owui, socket):
    install(owui, CONFIRMATION_REQUIRED=True)
    socket.answer("input", "The user likes rooibos.")
    socket.answer("confirmation", False, True)
    owui.action(ACTION, body(socket, "The user likes rooibos tea."))
    assert memories(owui) == []
    owui.action(ACTION, body(socket, "The user likes rooibos tea."))
    assert memories(owui) == ["The user likes rooibos."]
    assert [c.type for c in socket.calls] == ["input", "confirmation"] * 2


def test_server_timeout_writes_nothing(owui, socket):
    install(owui)
    socket.answer("input", NEVER)
    owui.action(ACTION, body(socket, "The user likes mint tea."), timeout=EVENT_CALL_TIMEOUT + 30)
    assert memories(owui) == []
    [(kind, content)] = notices(socket)
    assert kind == "info"
    if versions.EVENT_CALL_TIMEOUT_RETURNS_ERROR:
        assert content.startswith("Event call timed out")
        assert content.endswith("nothing was saved to your memories.")
    else:
        assert content == DIALOG_RAISED


def test_call_timeout_valve_writes_nothing(owui, socket):
    install(owui, CALL_TIMEOUT=1)
    socket.answer("input", NEVER)
    owui.action(ACTION, body(socket, "The user likes chai."))
    assert memories(owui) == []
    assert notices(socket) == [("info", "No answer within 1 s: nothing was saved to your memories.")]


def test_disconnect_writes_nothing(owui, socket, socket_for):
    install(owui)
    leaving = socket_for(owui.admin)
    leaving.answer("input", NEVER)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        click = pool.submit(owui.action, ACTION, body(leaving, "The user likes earl grey."), timeout=90)
        leaving.wait_for("input", 20)
        leaving.disconnect()
        assert click.result(timeout=90) is None
    assert memories(owui) == []
    # the other tab of the same user gets the notice
    [(kind, content)] = notices(socket)
    assert kind == "info"
    if versions.EVENT_CALL_TIMEOUT_RETURNS_ERROR:
        assert "disconnected" in content.lower()
    else:
        assert content == DIALOG_RAISED  # the call in flight runs into the host's timeout


def test_too_long_asks_again(owui, socket):
    install(owui, MAX_MEMORY_LENGTH=30)
    socket.answer("input", "x" * 31, "The user likes sencha.")
    owui.action(ACTION, body(socket, "The user likes sencha, a Japanese green tea."))
    assert memories(owui) == ["The user likes sencha."]
    assert [c.type for c in socket.calls] == ["input", "input"]
    assert notices(socket, count=2)[0] == (
        "warning",
        "Too long for a memory: 31 characters, the limit is 30. Shorten it in the dialog.",
    )


def test_clicking_twice_keeps_one(owui, socket):
    install(owui, EDIT_BEFORE_SAVE=False)
    reply = "The user prefers loose-leaf tea."
    owui.action(ACTION, body(socket, reply))
    owui.action(ACTION, body(socket, "the user prefers  LOOSE-LEAF tea [3]"))
    assert memories(owui) == [reply]
    assert notices(socket, count=2) == [("success", SAVED_SWITCH_UNSET), ("info", DUPLICATE_SWITCH_UNSET)]


def test_control_characters_are_not_stored(owui, socket):
    install(owui)
    socket.answer("input", lambda data: data["value"] + "\x00 Edited\x1b \u202eback\u202c.\r\nSecond line.")
    owui.action(ACTION, body(socket, "The user\x00 likes \u2066hojicha\u2069\x07 tea."))
    [call] = socket.calls
    assert call.data["value"] == "The user likes hojicha tea."
    assert memories(owui) == ["The user likes hojicha tea. Edited back.\nSecond line."]


def test_concurrent_clicks_keep_one(owui, socket):
    install(owui, EDIT_BEFORE_SAVE=False)
    reply = "The user brews tea in a clay pot."
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        clicks = [pool.submit(owui.action, ACTION, body(socket, reply)) for _ in range(4)]
        assert [c.result(timeout=60) for c in clicks] == [None] * 4
    assert memories(owui) == [reply]


def test_another_users_memories_are_untouched_and_unreachable(owui, socket, socket_for):
    install(owui, EDIT_BEFORE_SAVE=False)
    owui.grant_model(MODEL)
    owui.ok("POST", "/api/v1/memories/add", token=owui.user, json={"content": "The other user likes coffee."})
    spoof = {"user": {"id": owui.user.id}, "user_id": owui.user.id, "__user__": {"id": owui.user.id}}
    owui.action(ACTION, body(socket, "The admin likes matcha.", **spoof))
    assert memories(owui) == ["The admin likes matcha."]
    assert memories(owui, owui.user) == ["The other user likes coffee."]

    # the other user's own click writes only to their memories
    theirs = socket_for(owui.user)
    owui.action(ACTION, body(theirs, "The other user likes espresso."), token=owui.user)
    assert sorted(memories(owui, owui.user)) == ["The other user likes coffee.", "The other user likes espresso."]
    assert memories(owui) == ["The admin likes matcha."]


def test_embedding_failure_leaves_no_orphan(owui, socket, fake_embeddings):
    install(owui, EDIT_BEFORE_SAVE=False)
    owui.ok("POST", "/api/v1/memories/add", json={"content": "The user likes honey."})
    fake_embeddings.fail = True
    owui.action(ACTION, body(socket, "The user likes lapsang souchong."))
    fake_embeddings.fail = False
    assert memories(owui) == ["The user likes honey."]
    [(kind, content)] = notices(socket)
    assert kind == "error"
    assert content.startswith("Could not save to memories")
    assert "partial" not in content
    assert "sk-fake-embeddings" not in content
    # and it works again once the embedder is back
    owui.action(ACTION, body(socket, "The user likes lapsang souchong."))
    assert sorted(memories(owui)) == ["The user likes honey.", "The user likes lapsang souchong."]


@contextlib.contextmanager
def admin_config(owui, **changes):
    before = owui.ok("GET", "/api/v1/auths/admin/config")
    owui.ok("POST", "/api/v1/auths/admin/config", json={**before, **changes})
    try:
        yield
    finally:
        owui.ok("POST", "/api/v1/auths/admin/config", json=before)


def test_memories_turned_off(owui, socket):
    versions.skip_before("0.8.12", NO_MEMORIES_SWITCH)
    install(owui)
    socket.answer("input", "never asked")
    with admin_config(owui, ENABLE_MEMORIES=False):
        owui.action(ACTION, body(socket, "The user likes genmaicha."))
    assert socket.calls == []
    assert memories(owui) == []
    [(kind, content)] = notices(socket)
    assert kind == "warning"
    assert content.startswith("Memories are turned off on this server")


@contextlib.contextmanager
def memories_permission_off(owui):
    before = owui.ok("GET", "/api/v1/users/default/permissions")
    changed = {**before, "features": {**before["features"], "memories": False}}
    owui.ok("POST", "/api/v1/users/default/permissions", json=changed)
    try:
        yield
    finally:
        owui.ok("POST", "/api/v1/users/default/permissions", json=before)


def test_no_memories_permission(owui, socket_for):
    versions.skip_before("0.8.12", NO_MEMORIES_SWITCH)
    install(owui, EDIT_BEFORE_SAVE=False)
    owui.grant_model(MODEL)
    theirs = socket_for(owui.user)
    with memories_permission_off(owui):
        owui.action(ACTION, body(theirs, f"The other user likes tea {uuid.uuid4().hex[:6]}."), token=owui.user)
    assert memories(owui, owui.user) == []
    [(kind, content)] = notices(theirs)
    assert kind == "warning"
    assert content.startswith("You don't have permission to use memories")


def test_the_memories_permission_and_administrators(owui, socket):
    """0.8.12 checks the permission for administrators too (routers/memories.py); 0.10+ exempts them."""
    versions.skip_before("0.8.12", NO_MEMORIES_SWITCH)
    install(owui, EDIT_BEFORE_SAVE=False)
    with memories_permission_off(owui):
        owui.action(ACTION, body(socket, "The admin likes kukicha."))
    [(kind, content)] = notices(socket)
    if versions.at_least("0.10.0"):
        assert (kind, content) == ("success", SAVED_SWITCH_UNSET)
        assert memories(owui) == ["The admin likes kukicha."]
    else:
        assert kind == "warning"
        assert content.startswith("You don't have permission to use memories")
        assert "(For administrators: " in content
        assert memories(owui) == []


@contextlib.contextmanager
def memory_switch(owui, user, state):
    """The user's own Memory switch (Settings → Personalization), saved the way the page saves it."""
    owui.ok("POST", "/api/v1/users/user/settings/update", token=user, json={"ui": {"memory": state}})
    try:
        yield
    finally:
        # null resets a ui key to its default in 0.12.4 (Users.update_user_settings_by_id); before 0.12 the
        # null is stored, which the page and the plugin read as unset too
        owui.ok("POST", "/api/v1/users/user/settings/update", token=user, json={"ui": {"memory": None}})


def test_saved_with_memory_off_says_chats_will_not_use_it(owui, socket_for):
    install(owui, EDIT_BEFORE_SAVE=False)
    owui.grant_model(MODEL)
    theirs = socket_for(owui.user)
    with memory_switch(owui, owui.user, False):
        assert owui.ok("GET", "/api/v1/users/user/settings", token=owui.user)["ui"]["memory"] is False
        owui.action(ACTION, body(theirs, "The other user likes white tea."), token=owui.user)
        assert memories(owui, owui.user) == ["The other user likes white tea."]
        assert notices(theirs) == [("success", MEMORY_OFF)]
    # switched on again: the plain notice; back to unset: that version's default
    with memory_switch(owui, owui.user, True):
        owui.action(ACTION, body(theirs, "The other user likes yellow tea."), token=owui.user)
    owui.action(ACTION, body(theirs, "The other user likes green tea."), token=owui.user)
    assert notices(theirs, count=3)[1:] == [("success", SAVED), ("success", SAVED_SWITCH_UNSET)]


def test_an_embedding_failure_reads_as_a_sentence_for_users_and_a_detail_for_admins(
    owui, socket, socket_for, fake_embeddings
):
    install(owui, EDIT_BEFORE_SAVE=False)
    owui.grant_model(MODEL)
    theirs = socket_for(owui.user)
    fake_embeddings.fail = True
    try:
        owui.action(ACTION, body(theirs, "The other user likes pu-erh."), token=owui.user)
        owui.action(ACTION, body(socket, "The admin likes pu-erh."))
    finally:
        fake_embeddings.fail = False
    [(kind, users)] = notices(theirs)
    [(_, admins)] = notices(socket)
    assert kind == "error"
    assert users == (
        "Could not save to memories: the server could not index the text. Try again later; if it keeps "
        "happening, tell an administrator."
    )
    assert admins.startswith(users + " (For administrators: Embedding the memory failed: ")
    assert "Admin Panel → Settings → Documents → Embedding" in admins
    for text in (users, admins):
        assert exception_names(text) == [], text
        assert "sk-fake-embeddings" not in text
