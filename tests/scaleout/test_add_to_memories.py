"""Add to Memories on two workers: dialogs and notices reach a socket the other worker holds, and
concurrent clicks on both workers leave one memory.

Which worker handles a request is chosen, not hoped for: `workers.client(pid)` is a kept-alive
connection that worker accepted (the test-only probe action answers its pid, and after every test
each pinned connection is asked again), and `workers.worker_of(socket)` is the worker holding that
socket's Socket.IO session. A dialog answered while the action runs on the other worker can only
have gone through Redis.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid

import pytest

ACTION = "add_to_memories"
MODEL = "fake-gpt"
TRIALS = 20
CLICKS = 20


def install(owui, **valves):
    owui.deploy(ACTION, valves={ACTION: {"EDIT_BEFORE_SAVE": True, "DEDUPLICATE": True, **valves}})


def memories(owui, user=None):
    return [m["content"] for m in owui.ok("GET", "/api/v1/memories/", token=user)]


def clear_memories(owui, user=None):
    if memories(owui, user):  # deleting an empty set makes Open WebUI log an error
        owui.ok("DELETE", "/api/v1/memories/delete/user", token=user)


def body(socket, reply, message_id="a1"):
    return {
        "model": MODEL,
        "chat_id": f"local:{socket.sid}",
        "id": message_id,
        "session_id": socket.sid,
        "messages": [
            {"id": "u1", "role": "user", "content": "Tell me about tea."},
            {"id": message_id, "role": "assistant", "content": reply},
        ],
    }


@pytest.fixture(autouse=True)
def clean(owui):
    clear_memories(owui)
    yield
    clear_memories(owui)


def test_the_two_workers_are_separate_processes(workers):
    assert len(workers.pids) == 2
    for pid in workers.pids:
        assert workers.probe(pid)["pid"] == pid


def test_a_dialog_is_answered_by_a_socket_on_the_other_worker(owui, workers, socket_for):
    install(owui)
    for holder in workers.pids:
        socket = workers.socket_on(holder, owui.admin, socket_for)
        runner = workers.other(holder)
        socket.answer("input", lambda data, runner=runner: data["value"].replace("green", f"worker {runner}"))
        assert workers.action(runner, ACTION, body(socket, "The user drinks green tea [1].")) is None
        [call] = socket.calls
        assert call.type == "input"
        assert call.data["value"] == "The user drinks green tea."
        assert memories(owui) == [f"The user drinks worker {runner} tea."]
        # the notice and the final status, emitted on the runner, reached the socket too
        assert socket.wait_for("notification")["content"] == "Saved to your memories."
        assert socket.wait_for("status", where=lambda d: d.get("done"))["description"] == "Saved to memories"
        clear_memories(owui)


def test_status_events_reach_sockets_on_both_workers(owui, workers, socket_for):
    """An action on one worker notifies every socket of the user, on either worker."""
    install(owui, EDIT_BEFORE_SAVE=False)
    sockets = {pid: workers.socket_on(pid, owui.admin, socket_for) for pid in workers.pids}
    runner = workers.pids[0]
    workers.action(runner, ACTION, body(sockets[runner], "The user likes barley tea."))
    for pid, socket in sockets.items():
        statuses = socket.wait_for("status", where=lambda d: d.get("done"))
        assert statuses["description"] == "Saved to memories", pid
        assert [d["description"] for d in socket.of_type("status")] == ["Saving to memories…", "Saved to memories"]


def _concurrent_clicks(owui, workers, socket, reply: str) -> list[str]:
    """CLICKS clicks at once, half handled by each worker; the user's memories afterwards."""
    clients = [workers.client(workers.pids[i % 2], i // 2) for i in range(CLICKS)]
    go = threading.Barrier(CLICKS)

    def click(client):
        go.wait(timeout=30)
        return workers.post_action(client, ACTION, body(socket, reply), timeout=120)

    with concurrent.futures.ThreadPoolExecutor(CLICKS) as pool:
        results = list(pool.map(click, clients))
    assert results == [None] * CLICKS
    return memories(owui)


def test_concurrent_clicks_on_both_workers_keep_one(owui, workers, socket, capsys):
    install(owui, EDIT_BEFORE_SAVE=False)
    copies = []
    for trial in range(TRIALS):
        reply = f"The user keeps tea leaves in tin number {trial} ({uuid.uuid4().hex[:6]})."
        saved = _concurrent_clicks(owui, workers, socket, reply)
        assert set(saved) == {reply}
        copies.append(len(saved))
        clear_memories(owui)
    duplicates = sum(1 for n in copies if n > 1)
    with capsys.disabled():
        print(f"\nscale-out duplicates: {duplicates} of {TRIALS} trials had more than one copy; copies {copies}")
    assert copies == [1] * TRIALS
