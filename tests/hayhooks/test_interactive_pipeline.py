"""interactive_pipeline: progress per step, sources and follow-up suggestions, through Open WebUI 0.12.4."""

from __future__ import annotations

import json

import pytest

from tests.hayhooks._hayhooks import PACK_MODEL, saved_chat_turn, ui_turn
from tests.helpers import exception_names

MODEL = "interactive_pipeline"
ANSWER = "Fake servers are quick. See [the guide](https://example.org/guide) for more."
SUGGESTIONS = ["How do I start one?", "Can it fail on purpose?", "What does it record?"]
# what Open WebUI puts into the user message for an attached file (RAG), before the question
CONTEXT = (
    '<context>\n<source id="1" name="notes.txt">Fake servers answer on 127.0.0.1.</source>\n</context>\n\n'
    "Tell me about fake servers"
)


STEPS = ("Reading the question", "Using", "Writing the answer", "Suggesting follow-up questions", "Answered in")


def step_of(description: str) -> str:
    return next(step for step in STEPS if description.startswith(step))


def scripted(body: dict) -> str:
    """The streamed answer; the plain call (the follow-up suggestions) gets a JSON array."""
    return ANSWER if body.get("stream") else json.dumps(SUGGESTIONS)


@pytest.fixture
def model(need_wrapper, owui) -> str:
    name = need_wrapper(MODEL)
    owui.wait_for_model(name)
    return name


def test_steps_sources_and_follow_ups_arrive_in_order(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, reply=scripted, chunk_size=4)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, CONTEXT)
    assert turn.content == ANSWER
    statuses = turn.statuses()
    assert statuses[0] == ("Reading the question", False)
    # The steps in between come within the 0.5 s status interval of each other with a fast model:
    # each is held and replaced by the next (the latest wins), and the closing status supersedes
    # what is still held. Those that go out keep the order of the steps.
    steps = [STEPS.index(step_of(d)) for d, _ in statuses]
    assert steps == sorted(steps)
    assert statuses[-1][1] is True and statuses[-1][0].startswith("Answered in ")
    assert statuses[-1][0].endswith("· 2 sources")
    kinds = [e["type"] for e in turn.events]
    # the document's source before the answer's link, the suggestions before the closing status
    sources = [e["data"]["source"] for e in turn.events if e["type"] == "source"]
    assert [s["name"] for s in sources] == ["notes.txt", "the guide"]
    assert sources[1]["url"] == "https://example.org/guide"
    assert kinds.index("chat:message:follow_ups") < len(kinds) - 1
    assert turn.of_type("chat:message:follow_ups") == [{"follow_ups": SUGGESTIONS}]
    # one wrapper call; its two LLM calls: the streamed answer, then the plain suggestions call
    assert turn.wrapper_calls == 1
    assert [bool(r.get("stream")) for r in turn.llm_requests] == [True, False]


def test_the_saved_chat_keeps_answer_sources_and_status_history(owui, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, reply=scripted)
    completion, message = saved_chat_turn(owui, socket, model, CONTEXT)
    assert message["content"] == ANSWER == completion["content"]
    assert [s["source"]["name"] for s in message["sources"]] == ["notes.txt", "the guide"]
    history = message["statusHistory"]
    assert history[0]["description"] == "Reading the question" and history[-1]["done"] is True
    assert history[-1]["description"].endswith("· 2 sources")


def test_a_long_reply_gets_coalesced_progress_statuses(owui, hayhooks, fake_openai, socket, model):
    words = " ".join(f"w{i}" for i in range(300))
    fake_openai.set(PACK_MODEL, reply=lambda body: words if body.get("stream") else "[]", chunk_size=3)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "Write a lot")
    assert turn.content == words
    progress = [d for d, _ in turn.statuses() if d.startswith("Writing the answer (")]
    # a status every 10 chunks at most, coalesced to one per 0.5 s: far fewer than the chunks
    assert len(progress) <= len(words) // 3 // 10
    # no suggestions from the model: the wrapper's own fallbacks
    assert len(turn.of_type("chat:message:follow_ups")[0]["follow_ups"]) == 3


def test_an_upstream_500_ends_the_turn_readably(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, fail_status=500)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "Tell me about fake servers")
    assert "The model service had a problem (HTTP 500)" in turn.content
    assert exception_names(turn.content) == [] and turn.wrapper_calls == 1
    assert turn.statuses()[-1] == ("Stopped: the answer could not be finished", True)
    assert turn.of_type("chat:message:follow_ups") == []


def test_a_stream_dropped_mid_reply_keeps_the_text_so_far(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, reply=scripted, chunk_size=4, cut_after=5)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "Tell me about fake servers")
    assert turn.content.startswith(ANSWER[:16]) and "The answer is incomplete." in turn.content
    assert exception_names(turn.content) == [] and turn.wrapper_calls == 1
