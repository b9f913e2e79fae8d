"""The Hayhooks wrappers' core, without Haystack or Hayhooks: events, coalescing, config, failures."""

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from shared import events as ev
from shared import hayhooks as hh
from tests.helpers import exception_names


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Chunk:
    """What Haystack's StreamingChunk offers, read by attribute."""

    content: str = ""
    tool_calls: list | None = None
    tool_call_result: object | None = None
    finish_reason: str | None = None
    meta: dict = field(default_factory=dict)


async def agen(items):
    for item in items:
        yield item


async def collect(stream):
    return [item async for item in stream]


def statuses(items):
    return [i.payload["data"]["description"] for i in items if isinstance(i, hh.UIEvent) and i.type == "status"]


def config(**kw):
    return hh.PackConfig(api_key="sk-test-key", **kw)


# --- the event adapter -----------------------------------------------------------------------


def test_ui_event_hands_the_payload_over_unchanged():
    payload = ev.status("Searching", action="web_search", urls=["https://a.example"], count=2)
    event = hh.UIEvent(payload)
    assert event.to_event_dict() == payload
    assert event.type == "status"
    assert callable(event.to_event_dict)  # what fastapi-openai-compat looks for


# --- StatusGate: the Emitter's rule, pure --------------------------------------------------------


def test_gate_coalesces_latest_wins_and_done_always_goes_out():
    gate = ev.StatusGate(1.0)
    first = ev.status("a")
    assert gate.offer(first, 10.0) is first
    gate.sent(10.0)
    assert gate.offer(ev.status("b"), 10.2) is None
    assert gate.offer(ev.status("c"), 10.4) is None
    assert gate.due(10.5) is None
    assert gate.wait(10.5) == pytest.approx(0.5)
    held = gate.due(11.0)
    assert held["data"]["description"] == "c"
    gate.sent(11.0)
    assert gate.offer(ev.status("d"), 11.1) is None
    done = ev.status("finished", done=True)
    assert gate.offer(done, 11.2) is done
    assert gate.pending is None  # the done status supersedes what was held


def test_gate_without_interval_passes_everything():
    gate = ev.StatusGate(0)
    for i in range(3):
        event = ev.status(str(i))
        assert gate.offer(event, 1.0) is event


# --- config -----------------------------------------------------------------------------------------


def test_config_defaults_and_environment():
    cfg = hh.PackConfig.from_env({})
    assert (cfg.model, cfg.timeout, cfg.max_retries, cfg.base_url) == ("gpt-4o-mini", 120.0, 1, None)
    assert cfg.problem and "OPENAI_API_KEY" in cfg.problem
    cfg = hh.PackConfig.from_env(
        {
            "OPENAI_API_KEY": " k ",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1/",
            "HAYHOOKS_PACK_MODEL": "m",
            "HAYHOOKS_PACK_TIMEOUT": "7",
            "HAYHOOKS_PACK_PROGRESS_EVERY": "10",
            "HAYHOOKS_PACK_STATUS_INTERVAL": "0",
            "HAYHOOKS_PACK_NOTIFY": "yes",
        }
    )
    assert (cfg.api_key, cfg.base_url, cfg.model, cfg.timeout) == ("k", "http://127.0.0.1:9/v1", "m", 7.0)
    assert (cfg.progress_every, cfg.status_interval, cfg.notify_success, cfg.problem) == (10, 0.0, True, None)


def test_config_local_server_needs_no_key_and_bad_values_fall_back():
    cfg = hh.PackConfig.from_env({"OPENAI_BASE_URL": "http://localhost:11434/v1", "HAYHOOKS_PACK_TIMEOUT": "soon"})
    assert cfg.problem is None and cfg.key_for_client == "no-key" and cfg.timeout == 120.0
    assert hh.PackConfig.from_env({}, progress_every=10).progress_every == 10


# --- requests -----------------------------------------------------------------------------------------


def test_task_detection_and_admin_header():
    headers = {"x-owui-task": "title_generation"}
    assert hh.is_task({"stream": False})
    assert hh.is_task({}) is True  # Hayhooks' default is stream false
    assert hh.is_task({"stream": True}, headers)
    assert not hh.is_task({"stream": True}, {"x-owui-task": ""})
    assert hh.reader_is_admin({"x-openwebui-user-role": "admin"})
    assert not hh.reader_is_admin(None)


def test_chat_history_drops_tool_messages_and_cards():
    card = hh.tool_call_block("c1", "calculator", {"expression": "1+1"}, "2")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "1+1?"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": f"{card}\nIt is 2."},
        {"role": "tool", "content": "2"},
        {"role": "user", "content": "and {{ x }}?"},
    ]
    assert hh.chat_history(messages) == [
        {"role": "system", "text": "Be brief."},
        {"role": "user", "text": "1+1?"},
        {"role": "assistant", "text": "It is 2."},
        {"role": "user", "text": "and {{ x }}?"},
    ]
    assert hh.last_user_text(messages) == "and {{ x }}?"


def test_question_text_skips_the_rag_template():
    text = 'Use <source id="1"> ...\n<context>\n<source id="1" name="a">x</source>\n</context>\nWhat is x?'
    assert hh.question_text(text) == "What is x?"
    assert hh.question_text("<attached_files>\n<file id='1'/>\n</attached_files>\n\nHi") == "Hi"
    assert hh.question_text("plain") == "plain"


# --- failures -------------------------------------------------------------------------------------------


class APIStatusError(Exception):
    def __init__(self, code):
        super().__init__(f"Error code: {code} - sk-test-key")
        self.status_code = code


class APITimeoutError(Exception):
    pass


class RemoteProtocolError(Exception):
    pass


class APIConnectionError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (APIStatusError(500), "HTTP 500"),
        (APIStatusError(401), "credentials"),
        (APIStatusError(429), "busy"),
        (APIStatusError(404), "does not offer"),
        (APITimeoutError("x"), "within 5 seconds"),
        (RemoteProtocolError("peer closed"), "broke off"),
        (APIConnectionError("x"), "could not be reached"),
        (KeyError("x"), "Something went wrong"),
    ],
)
def test_describe_failure_is_a_plain_sentence(exc, words):
    sentence = hh.describe_failure(exc, 5)
    assert words in sentence
    assert exception_names(sentence) == []


def test_describe_failure_reads_the_cause_chain():
    try:
        try:
            raise APIStatusError(503)
        except APIStatusError as inner:
            raise RuntimeError("component failed") from inner
    except RuntimeError as outer:
        assert "HTTP 503" in hh.describe_failure(outer, 5)


async def test_guarded_ends_readably_keeping_the_text():
    clock = Clock()
    turn = hh.Turn(config(), clock=clock)

    async def body():
        yield turn.add_text("Half an ans")
        raise APIStatusError(500)

    items = await collect(hh.guarded(turn, body()))
    texts = [i for i in items if isinstance(i, str)]
    assert texts[0] == "Half an ans"
    assert texts[-1].startswith("\n\n_The answer is incomplete.") and "HTTP 500" in texts[-1]
    toasts = [i.payload["data"] for i in items if isinstance(i, hh.UIEvent) and i.type == "notification"]
    assert len(toasts) == 1 and toasts[0]["type"] == "error"
    assert "sk-test-key" not in json.dumps([i.payload for i in items if isinstance(i, hh.UIEvent)])
    assert exception_names(toasts[0]["content"]) == []
    last_status = [i for i in items if isinstance(i, hh.UIEvent) and i.type == "status"][-1]
    assert last_status.payload["data"]["done"] is True


async def test_failure_detail_only_for_administrators():
    turn = hh.Turn(config(), admin=True)
    items = turn.fail(None, hh.NOT_CONFIGURED, "OPENAI_API_KEY is not set")
    toast = next(i for i in items if isinstance(i, hh.UIEvent) and i.type == "notification")
    assert "For administrators: OPENAI_API_KEY is not set" in toast.payload["data"]["content"]
    assert items[-1] == hh.NOT_CONFIGURED  # no text streamed: the sentence is the reply
    user = hh.Turn(config()).fail(None, hh.NOT_CONFIGURED, "OPENAI_API_KEY is not set")
    assert "OPENAI_API_KEY" not in json.dumps([i.payload if isinstance(i, hh.UIEvent) else i for i in user])


async def test_cancellation_is_not_swallowed():
    import asyncio

    turn = hh.Turn(config())

    async def body():
        yield "a"
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await collect(hh.guarded(turn, body()))


# --- relay -----------------------------------------------------------------------------------------------


async def test_relay_streams_text_and_drops_tool_call_chunks():
    turn = hh.Turn(config(status_interval=0))
    delta = SimpleNamespace(index=0, id="c1", tool_name="calculator", arguments='{"expression": "2*3"}')
    chunks = [
        Chunk("Hel"),
        Chunk("lo"),
        Chunk(tool_calls=[delta]),
        Chunk(finish_reason="tool_calls"),
        Chunk(tool_call_result=SimpleNamespace(result="6")),
        Chunk(finish_reason="tool_call_results"),
        hh.UIEvent(ev.notification("hi")),
        "<card>",
        Chunk(""),
    ]
    items = await collect(hh.relay(turn, agen(chunks)))
    assert [i for i in items if isinstance(i, str)] == ["Hel", "lo", "<card>"]
    assert [i.type for i in items if isinstance(i, hh.UIEvent)] == ["notification"]
    assert turn.text == "Hello<card>"


async def test_relay_reports_full_tool_arguments_before_the_tools_run():
    turn = hh.Turn(config(status_interval=0))
    seen = []

    def on_calls(calls):
        seen.extend(calls)
        return turn.status("running")

    parts = [
        SimpleNamespace(index=0, id="c1", tool_name="calculator", arguments=None),
        SimpleNamespace(index=0, id=None, tool_name=None, arguments='{"expre'),
        SimpleNamespace(index=0, id=None, tool_name=None, arguments='ssion": "17*23"}'),
    ]
    chunks = [Chunk(tool_calls=[p]) for p in parts] + [Chunk(finish_reason="tool_calls")]
    items = await collect(hh.relay(turn, agen(chunks), tracker=hh.ToolCallTracker(), on_calls=on_calls))
    assert seen == [("c1", "calculator", {"expression": "17*23"})]
    assert statuses(items) == ["running"]


async def test_progress_status_every_n_chunks_for_the_bench():
    # 1,000 chunks with a status every 10 and no coalescing: 100 statuses.
    turn = hh.Turn(config(status_interval=0, progress_every=10), progress=lambda w: f"{w} words")
    items = await collect(hh.relay(turn, agen([Chunk(f"w{i} ") for i in range(1000)])))
    assert len(statuses(items)) == 100
    assert statuses(items)[0] == "10 words" and statuses(items)[-1] == "1000 words"


async def test_progress_is_coalesced_by_the_interval_without_sleeping():
    clock = Clock()
    turn = hh.Turn(config(status_interval=1.0, progress_every=1), clock=clock, progress=lambda w: f"{w} words")

    async def ticking():
        for i in range(10):
            clock.now += 0.25
            yield Chunk(f"w{i} ")

    items = await collect(hh.relay(turn, ticking()))
    sent = statuses(items)
    assert sent[0] == "1 words"
    assert 2 <= len(sent) <= 4  # one per second of a 2.5 s stream, the latest each time
    final = turn.finish("done")
    assert statuses(final) == ["done"] and turn.gate.pending is None


def test_word_count_across_chunks():
    turn = hh.Turn(config())
    for piece in ["Hel", "lo wor", "ld ", "and ", "more"]:
        turn.add_text(piece)
    assert turn.words == 4


def test_success_toast_only_when_switched_on():
    assert [i.type for i in hh.Turn(config()).finish("ok", success="Ready")] == ["status"]
    on = hh.Turn(config(notify_success=True)).finish("ok", success="Ready")
    assert [i.type for i in on] == ["status", "notification"]
    assert on[1].payload["data"]["type"] == "success"


# --- tool-call card -----------------------------------------------------------------------------------------


def test_tool_call_block_has_the_form_open_webui_draws():
    block = hh.tool_call_block("c1", 'calc"x', {"expression": "1<2"}, 'say "hi"')
    assert block.startswith('<details type="tool_calls" done="true" id="c1" name="calc&quot;x" arguments="')
    assert "<summary>Tool Executed</summary>\n</details>\n" in block
    import html
    import re

    attrs = dict(re.findall(r'(\w+)="(.*?)"', block.split(">", 1)[0]))
    assert json.loads(html.unescape(attrs["arguments"])) == {"expression": "1<2"}
    assert json.loads(html.unescape(attrs["result"])) == 'say "hi"'


def test_separated_puts_a_card_on_its_own_lines():
    turn = hh.Turn(config())
    assert turn.separated("<d>") == "<d>\n"
    turn.add_text("Let me check.")
    assert turn.separated("<d>") == "\n\n<d>\n"


# --- follow-ups and links ---------------------------------------------------------------------------------


def test_parse_follow_ups():
    assert hh.parse_follow_ups('```json\n["Why?", "How so?", "What next?", "More?"]\n```') == [
        "Why?",
        "How so?",
        "What next?",
    ]
    assert hh.parse_follow_ups("1. Can you expand?\n- Is it safe?\nSure, here they are:") == [
        "Can you expand?",
        "Is it safe?",
    ]
    assert hh.parse_follow_ups("no questions here") == []
    assert len(hh.fallback_follow_ups("How do I do it?")) == 3


def test_cited_links():
    text = "See [the docs](https://docs.example/a). Also https://b.example/x, and [x](https://docs.example/a)."
    assert hh.cited_links(text) == [
        ("the docs", "https://docs.example/a"),
        ("https://b.example/x", "https://b.example/x"),
    ]


def test_a_slow_step_sends_what_is_held_then_itself():
    clock = Clock()
    turn = hh.Turn(config(status_interval=0.5), clock=clock)
    assert [e.payload["data"]["description"] for e in turn.status("Reading the question")] == ["Reading the question"]
    assert turn.status("Using 2 documents from this chat", action="sources_retrieved", count=2) == []  # held
    sent = turn.step("Writing the answer")
    assert [e.payload["data"]["description"] for e in sent] == [
        "Using 2 documents from this chat",
        "Writing the answer",
    ]
    assert sent[0].payload["data"]["action"] == "sources_retrieved" and sent[0].payload["data"]["count"] == 2
    assert turn.status("Writing the answer (3 words so far)") == []  # the interval holds again after a step
