"""event_pipeline and the Hayhooks template, chatted with through Open WebUI 0.12.4 like the UI does."""

from __future__ import annotations

import pytest

from tests.hayhooks._hayhooks import PACK_MODEL, saved_chat_turn, stream_chat, text_and_events, ui_turn
from tests.helpers import exception_names

REPLY = "Fake servers answer quickly and never forget a test."
# the statuses each wrapper opens a turn with
OPENING = {"event_pipeline": "Asking the model", "template_hayhooks": "Thinking"}


@pytest.fixture(params=sorted(OPENING))
def model(request, need_wrapper, owui) -> str:
    name = need_wrapper(request.param)
    owui.wait_for_model(name)
    return name


def test_a_chat_turn_streams_the_answer_with_statuses_in_order(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, reply=REPLY, chunk_size=4)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "Tell me about fake servers")
    assert turn.content == REPLY
    statuses = turn.statuses()
    assert statuses[0] == (OPENING[model], False)
    assert statuses[-1][1] is True and statuses[-1][0].startswith("Answered in ")
    assert all(not done for _, done in statuses[:-1])  # one closing status, last
    assert turn.of_type("notification") == []  # no toast on success by default
    # exactly one wrapper call for the turn (no tool loop) and one streamed LLM call
    assert turn.wrapper_calls == 1
    assert [r["stream"] for r in turn.llm_requests] == [True]
    assert turn.llm_requests[0]["messages"][-1] == {"role": "user", "content": "Tell me about fake servers"}


def test_the_saved_chat_keeps_the_answer_and_its_status_history(owui, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, reply=REPLY, chunk_size=5)
    completion, message = saved_chat_turn(owui, socket, model, "Tell me about fake servers")
    assert completion["content"] == REPLY
    assert message["content"] == REPLY
    history = message["statusHistory"]
    assert history[0]["description"] == OPENING[model] and history[-1]["done"] is True
    assert history[-1]["description"].startswith("Answered in ")


def test_a_title_task_is_answered_as_plain_text(owui, hayhooks, fake_openai, model):
    fake_openai.set(PACK_MODEL, reply='{"title": "Fake Servers"}')
    posts = hayhooks.chat_posts()
    answer = owui.ok(
        "POST",
        "/api/v1/tasks/title/completions",
        json={"model": model, "messages": [{"role": "user", "content": "Tell me about fake servers"}], "chat_id": None},
    )
    assert answer["choices"][0]["message"]["content"] == '{"title": "Fake Servers"}'
    requests = fake_openai.chat_requests()
    assert len(requests) == 1 and not requests[0].get("stream")  # one plain LLM call, no stream
    assert hayhooks.chat_posts() - posts == 1


def test_an_upstream_500_ends_the_turn_readably(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, fail_status=500, fail_message="upstream exploded")
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "Tell me about fake servers")
    assert "The model service had a problem (HTTP 500)" in turn.content
    assert exception_names(turn.content) == []
    assert turn.statuses()[-1] == ("Stopped: the answer could not be finished", True)
    toasts = turn.of_type("notification")
    assert [t["type"] for t in toasts] == ["error"] and exception_names(toasts[0]["content"]) == []
    assert turn.wrapper_calls == 1
    assert 1 <= len(turn.llm_requests) <= 2  # the wrapper's one retry before any text


def test_a_stream_dropped_mid_reply_keeps_the_text_so_far(owui, hayhooks, fake_openai, socket, model):
    # the role chunk and three content chunks arrive, then the connection drops
    fake_openai.set(PACK_MODEL, reply=REPLY, chunk_size=4, cut_after=4)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "Tell me about fake servers")
    assert turn.content.startswith(REPLY[:12])
    assert REPLY not in turn.content
    assert "The answer is incomplete." in turn.content and exception_names(turn.content) == []
    assert turn.statuses()[-1] == ("Stopped: the answer could not be finished", True)
    assert [t["type"] for t in turn.of_type("notification")] == ["error"]
    assert turn.wrapper_calls == 1 and len(turn.llm_requests) == 1


def test_hayhooks_alone_streams_events_and_drops_them_without_stream(hayhooks, fake_openai, model):
    fake_openai.set(PACK_MODEL, reply=REPLY, chunk_size=6)
    text, events = text_and_events(stream_chat(hayhooks.url, model, "hi"))
    assert text == REPLY
    assert [e["type"] for e in events] == ["status", "status"]
    assert events[0]["data"]["description"] == OPENING[model] and events[-1]["data"]["done"] is True
    import httpx

    plain = httpx.post(
        f"{hayhooks.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False},
        timeout=30,
    ).json()
    assert plain["choices"][0]["message"]["content"] == REPLY
