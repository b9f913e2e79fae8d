"""enhanced_event_pipeline: a Haystack Agent whose tools run inside Hayhooks, chatted with through Open WebUI.

The fake LLM asks for the calculator first (streamed `tool_calls`) and answers once the request carries
the `role: "tool"` result, as a real model does with a Haystack Agent. Open WebUI must see one model
call per chat turn: the Agent's tool-call chunks never reach it (forwarded, Open WebUI would run its
own tool loop on them and call the wrapper again, up to 256 times).
"""

from __future__ import annotations

import html
import json

import pytest

from tests.hayhooks._hayhooks import PACK_MODEL, saved_chat_turn, stream_chat, text_and_events, ui_turn
from tests.helpers import exception_names

MODEL = "enhanced_event_pipeline"
ANSWER = "17 × 23 is 391."
CALCULATOR = [{"name": "calculator", "arguments": {"expression": "17*23"}, "id": "call_calc_1"}]


@pytest.fixture
def model(need_wrapper, owui) -> str:
    name = need_wrapper(MODEL)
    owui.wait_for_model(name)
    return name


def test_a_tool_call_runs_inside_the_wrapper_and_shows_as_statuses_and_a_card(
    owui, hayhooks, fake_openai, socket, model
):
    fake_openai.set(PACK_MODEL, tool_calls=CALCULATOR, tool_reply=ANSWER, chunk_size=4)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "What is 17 times 23?")
    # one wrapper call for the turn: Open WebUI ran no tool loop of its own
    assert turn.wrapper_calls == 1
    assert not [o for o in turn.completion.get("output") or [] if o.get("type") == "function_call"]
    # the Agent's two LLM calls: the tool call, then the answer with the tool result
    assert len(turn.llm_requests) == 2
    tool_messages = [m for m in turn.llm_requests[1]["messages"] if m.get("role") == "tool"]
    assert len(tool_messages) == 1 and "391" in json.dumps(tool_messages[0])
    assert [t["function"]["name"] for t in turn.llm_requests[0]["tools"]] == [
        "calculator",
        "current_time",
        "convert_units",
    ]
    # the card, then the answer
    content = turn.content
    assert '<details type="tool_calls" done="true"' in content and 'name="calculator"' in content
    assert "391" in html.unescape(content.split("<details", 1)[1].split("</details>", 1)[0])
    assert content.rstrip().endswith(ANSWER)
    statuses = turn.statuses()
    assert statuses[0] == ("Thinking", False)
    assert ("17 × 23 = 391", True) in statuses
    assert statuses[-1][1] is True and statuses[-1][0].startswith("Used calculator · ")


def test_the_saved_chat_keeps_the_card_the_answer_and_the_statuses(owui, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, tool_calls=CALCULATOR, tool_reply=ANSWER)
    completion, message = saved_chat_turn(owui, socket, model, "What is 17 times 23?")
    assert message["content"] == completion["content"] and message["content"].rstrip().endswith(ANSWER)
    descriptions = [s["description"] for s in message["statusHistory"]]
    assert "17 × 23 = 391" in descriptions and descriptions[-1].startswith("Used calculator")


def test_no_tool_needed_is_one_llm_call(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, reply="Hello there.")
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "Say hello")
    assert turn.content == "Hello there." and turn.wrapper_calls == 1 and len(turn.llm_requests) == 1
    assert turn.statuses()[-1][0].startswith("No tools needed")


def test_a_title_task_is_plain_text_without_tools(owui, fake_openai, model):
    fake_openai.set(PACK_MODEL, reply='{"title": "Multiplication"}', tool_calls=CALCULATOR)
    answer = owui.ok(
        "POST",
        "/api/v1/tasks/title/completions",
        json={"model": model, "messages": [{"role": "user", "content": "What is 17 times 23?"}], "chat_id": None},
    )
    assert answer["choices"][0]["message"]["content"] == '{"title": "Multiplication"}'
    (request,) = fake_openai.chat_requests()
    assert not request.get("stream") and "tools" not in request


def test_a_stream_dropped_after_the_tool_call_keeps_the_card_and_the_text(owui, hayhooks, fake_openai, socket, model):
    # the tool-call stream has 5 chunks and completes; the answer's stream drops after 8 of its 16
    fake_openai.set(PACK_MODEL, tool_calls=CALCULATOR, tool_reply=ANSWER * 3, chunk_size=3, cut_after=8)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "What is 17 times 23?")
    content = turn.content
    assert 'name="calculator"' in content
    after_card = content.split("</details>", 1)[1].strip()
    assert after_card.startswith((ANSWER * 3)[:21]) and "The answer is incomplete." in after_card
    assert exception_names(content) == [] and turn.wrapper_calls == 1 and len(turn.llm_requests) == 2
    assert turn.statuses()[-1] == ("Stopped: the answer could not be finished", True)
    assert [t["type"] for t in turn.of_type("notification")] == ["error"]


def test_an_upstream_500_ends_the_turn_readably(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, fail_status=500)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "What is 17 times 23?")
    assert "The model service had a problem (HTTP 500)" in turn.content
    assert exception_names(turn.content) == [] and turn.wrapper_calls == 1
    assert turn.statuses()[-1] == ("Stopped: the answer could not be finished", True)


def test_hayhooks_alone_carries_no_tool_call_deltas(hayhooks, fake_openai, model):
    fake_openai.set(PACK_MODEL, tool_calls=CALCULATOR, tool_reply=ANSWER)
    items = stream_chat(hayhooks.url, model, "What is 17 times 23?")
    deltas = [c.get("delta") or {} for i in items for c in i.get("choices") or []]
    assert not [d for d in deltas if d.get("tool_calls")]
    assert not [c for i in items for c in i.get("choices") or [] if c.get("finish_reason") == "tool_calls"]
    text, events = text_and_events(items)
    assert text.rstrip().endswith(ANSWER) and events[-1]["data"]["done"] is True
