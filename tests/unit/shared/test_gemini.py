"""shared/gemini.py, gemini_models.py and gemini_reply.py: the pure Gemini core, without a server."""

import asyncio
import base64
from types import SimpleNamespace

import pytest
from google.genai import errors

from shared.attachments import AttachmentError, FileAttachment
from shared.events import Emitter
from shared.gemini import (
    Fetched,
    GeminiError,
    RequestOptions,
    api_status,
    build_request,
    decode_call_id,
    describe_error,
    encode_call_id,
    explain_error,
    gemini_tool_name,
    image_links,
    requested_model,
    with_gemini_retries,
)
from shared.gemini_models import model_tier, model_version, thinking_budget, thinking_family, thinking_level
from shared.gemini_reply import Reply, cite, completion, emit_sources, read_response, shown_source_ids, source_name
from tests.helpers import exception_names

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class Events(list):
    async def __call__(self, event: dict) -> None:
        self.append(event)

    def of(self, kind: str) -> list[dict]:
        return [e["data"] for e in self if e["type"] == kind]


def api_error(code: int, status: str, message: str = "busy", retry_delay: str | None = None) -> errors.APIError:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}] if retry_delay else []
    return errors.APIError(code, {"error": {"code": code, "status": status, "message": message, "details": details}})


# --- models ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "thinking", "form"),
    [
        ("gemini-2.5-flash", None, "budget"),
        ("gemini-2.5-pro", None, "budget"),
        ("gemini-3-pro-preview", None, "level"),
        ("gemini-3.1-flash-lite", None, "level"),
        ("gemini-2.0-flash", True, None),
        ("gemini-1.5-pro", None, None),
        ("gemini-flash-latest", True, "alias"),
        ("gemini-flash-latest", None, None),  # unknown to the model list: no thinking settings
        ("gemini-nothink-latest", False, None),
    ],
)
def test_thinking_forms_come_from_the_version_table(model, thinking, form):
    assert thinking_family(model, thinking) == form


def test_pro_models_have_a_narrower_thinking_range():
    assert model_version("gemini-2.5-pro") == (2, 5) and model_version("gemini-pro-latest") is None
    assert model_tier("gemini-pro-latest").min_budget == 128 and model_tier("gemini-2.5-flash").min_budget == 0
    assert [thinking_level("gemini-3-pro-preview", lv) for lv in ("minimal", "low", "medium", "high")] == [
        "LOW", "LOW", "HIGH", "HIGH",
    ]  # fmt: skip
    assert thinking_level("gemini-3-flash", "medium") == "MEDIUM"
    assert thinking_budget("gemini-2.5-pro", 0) == 128 and thinking_budget("gemini-2.5-pro", -1) == -1
    assert thinking_budget("gemini-2.5-flash", 0) == 0


def test_model_ids_are_checked_before_they_reach_a_url():
    assert requested_model({"model": "my_gemini.gemini-2.5-pro"}) == "gemini-2.5-pro"
    assert requested_model({"model": "tunedModels/x-1"}) == "tunedModels/x-1"
    for bad in ({"model": "g.a&b"}, {"model": "g.../models"}, {"model": "g.setup"}, {"model": 5}, "x"):
        with pytest.raises(GeminiError):
            requested_model(bad)


# --- the request -------------------------------------------------------------------------------

TOOL = {"type": "function", "function": {"name": "count words", "parameters": {"type": "object"}}}


def test_one_pure_step_builds_the_whole_request():
    body = {
        "model": "g.gemini-3-pro-preview",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}},
                {"type": "image_url", "image_url": {"url": "https://example.org/gone.png"}},
            ]},
        ],
        "temperature": 0.5,
        "reasoning_effort": "low",
        "tools": [TOOL],
    }  # fmt: skip
    fetched = Fetched(
        images={
            "https://example.org/cat.png": ("image/png", PNG),
            "https://example.org/gone.png": AttachmentError("HTTP 404"),
        },
        files=[
            (FileAttachment("f1", "a.pdf", "application/pdf"), (b"%PDF-1.4" + b"x" * 100, "application/pdf", "a.pdf")),
            (FileAttachment("f2", "b.pdf", "application/pdf"), AttachmentError("it no longer exists")),
        ],
    )
    assert image_links(body["messages"]) == ["https://example.org/cat.png", "https://example.org/gone.png"]
    request = build_request(
        body, model_id="gemini-3-pro-preview", thinking=None, task=False, fetched=fetched,
        options=RequestOptions(permissive_safety=True, inline_budget=100),
    )  # fmt: skip
    assert request.model == "gemini-3-pro-preview" and request.names == {"count_words": "count words"}
    parts = request.contents[0]["parts"]
    assert [next(iter(p)) for p in parts] == ["inline_data", "text", "inline_data", "text"]
    assert parts[3]["text"] == "[image 2 could not be read: HTTP 404]"
    assert request.warnings == ["image 2 was left out: HTTP 404", "b.pdf was left out: it no longer exists"]
    assert [b.name for b in request.uploads] == ["a.pdf"]  # over the inline budget: the Files API
    config = request.config
    assert config["system_instruction"] == "Be brief." and config["temperature"] == 0.5
    assert config["thinking_config"] == {"include_thoughts": True, "thinking_level": "LOW"}
    assert len(config["safety_settings"]) == 4
    assert config["tools"] == [
        {"function_declarations": [{"name": "count_words", "parameters_json_schema": {"type": "object"}}]}
    ]
    assert config["automatic_function_calling"] == {"disable": True}
    assert request.include_thoughts is True


def test_task_requests_get_no_tools_files_or_thoughts():
    body = {"model": "g.gemini-2.5-flash", "messages": [{"role": "user", "content": "title?"}], "tools": [TOOL]}
    fetched = Fetched(files=[(FileAttachment("f1", "a.pdf", "application/pdf"), (b"%PDF", "application/pdf", "a"))])
    request = build_request(
        body, model_id="gemini-2.5-flash", thinking=None, task=True, fetched=fetched,
        options=RequestOptions(grounding=True),
    )  # fmt: skip
    assert request.contents == [{"role": "user", "parts": [{"text": "title?"}]}]
    assert "tools" not in request.config and request.config["thinking_config"] == {"thinking_budget": 0}
    assert request.include_thoughts is False and request.uploads == []


def test_call_id_codec():
    call_id = encode_call_id("abc", b"\x01\x02")
    assert call_id.startswith("call_") and decode_call_id(call_id) == ("abc", b"\x01\x02")
    assert decode_call_id(encode_call_id(None, None)) == (None, None)
    for junk in ("call_x~g!!!", "call_x~g" + base64.urlsafe_b64encode(b"[1]").decode(), None, 5):
        assert decode_call_id(junk) == (None, None)
    assert gemini_tool_name("a" * 80) != gemini_tool_name("a" * 81)
    assert len(gemini_tool_name("x" * 200)) == 64 and gemini_tool_name("9lives") == "_9lives"


# --- errors and retries ------------------------------------------------------------------------


def test_errors_are_recognised_by_type():
    class LookAlike(Exception):
        __module__ = "google.genai.errors"
        code, status, message = 503, "UNAVAILABLE", "busy"

    assert api_status(api_error(503, "UNAVAILABLE")) == 503
    assert api_status(LookAlike()) is None
    server = explain_error(api_error(503, "UNAVAILABLE"))
    assert server.sentence == "Gemini had a server error. Try again shortly."
    assert server.detail == "503 UNAVAILABLE: busy"
    assert describe_error(api_error(503, "UNAVAILABLE")) == (
        "Gemini had a server error. Try again shortly. (503 UNAVAILABLE: busy)"
    )
    refused = explain_error(ConnectionRefusedError())
    assert refused.sentence == "Gemini could not be reached." and refused.connection
    assert "ConnectionRefusedError" in refused.detail and "GOOGLE_API_BASE_URL" in refused.detail
    late = explain_error(TimeoutError(), timeout=5)
    assert late.sentence == "Gemini did not answer within 5 s." and "REQUEST_TIMEOUT" in late.detail
    odd = explain_error(KeyError("x"))
    assert odd.sentence == "The Gemini request failed unexpectedly." and odd.detail.startswith("KeyError")
    for text in (server, refused, late, odd):
        assert exception_names(text.sentence) == [] and "GOOGLE_" not in text.sentence


async def test_a_chat_stopped_during_a_retry_wait_closes_its_status():
    async def op():
        raise api_error(503, "UNAVAILABLE")

    async def sleep(_):
        raise asyncio.CancelledError

    events = Events()
    with pytest.raises(asyncio.CancelledError):
        await with_gemini_retries(op, max_retries=3, emitter=Emitter(events), sleep=sleep)
    assert [s["done"] for s in events.of("status")] == [False, True]
    assert events.of("status")[-1]["description"] == "Gemini request stopped"


async def test_backoff_without_retry_info_grows():
    waits: list[float] = []
    calls = 0

    async def op():
        nonlocal calls
        calls += 1
        if calls < 4:
            raise api_error(503, "UNAVAILABLE")
        return "ok"

    async def sleep(s):
        waits.append(s)

    events = Events()
    result = await with_gemini_retries(op, max_retries=3, emitter=Emitter(events), sleep=sleep)
    assert result == "ok" and len(waits) == 3
    assert 0.5 <= waits[0] <= 1 and 1 <= waits[1] <= 2 and 2 <= waits[2] <= 4  # shared/retry.py's Backoff
    assert [s["description"][:40] for s in events.of("status")][:1] == ["Gemini answered 503 UNAVAILABLE; retryin"]


async def test_the_servers_retry_info_wait_is_taken_exactly():
    waits = []
    failures = [api_error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="0.05s")]

    async def op():
        if failures:
            raise failures.pop()
        return "ok"

    async def sleep(s):
        waits.append(s)

    assert await with_gemini_retries(op, max_retries=1, emitter=Emitter(None), sleep=sleep) == "ok"
    assert waits == [0.05]


async def test_a_long_server_wait_fails_at_once_with_the_wait():
    calls = 0

    async def op():
        nonlocal calls
        calls += 1
        raise api_error(429, "RESOURCE_EXHAUSTED", "quota", retry_delay="3600s")

    with pytest.raises(GeminiError, match="asks to wait 3600 s"):
        await with_gemini_retries(op, max_retries=2, emitter=Emitter(None))
    assert calls == 1


# --- replies -----------------------------------------------------------------------------------


def test_a_response_becomes_an_openai_completion():
    part = SimpleNamespace
    response = SimpleNamespace(
        prompt_feedback=None,
        usage_metadata=SimpleNamespace(prompt_token_count=3, candidates_token_count=2, total_token_count=5),
        candidates=[
            SimpleNamespace(
                content=SimpleNamespace(
                    parts=[
                        part(text="hidden plan", thought=True, function_call=None),
                        part(text="Hi", thought=None, function_call=None),
                        part(
                            function_call=SimpleNamespace(name="count_words", args={"t": 1}, id="fc"),
                            thought_signature=b"s",
                        ),
                    ]
                ),
                finish_reason="STOP",
                grounding_metadata=None,
                safety_ratings=None,
            )
        ],
    )
    reply = Reply()
    deltas = read_response(response, reply, include_thoughts=False, names={"count_words": "count words"})
    assert [kind for kind, _ in deltas] == ["text", "tool_call"]
    result = completion("g.gemini-2.5-flash", reply)
    message = result["choices"][0]["message"]
    assert message["content"] == "Hi" and "reasoning_content" not in message
    assert message["tool_calls"][0]["function"] == {"name": "count words", "arguments": '{"t": 1}'}
    assert decode_call_id(message["tool_calls"][0]["id"]) == ("fc", b"s")
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


# --- Google Search with the chat's tools -------------------------------------------------------

WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
BUILTIN = {"get_current_timestamp": {"type": "builtin", "spec": {"name": "get_current_timestamp"}}}


def grounded_request(model: str, tools: list, *, dunder: dict | None = None, messages: list | None = None):
    body = {"model": f"g.{model}", "messages": messages or [{"role": "user", "content": "weather?"}], "tools": tools}
    return build_request(
        body, model_id=model, thinking=None, task=False, tools=dunder, options=RequestOptions(grounding=True)
    )


def test_gemini_3_gets_search_and_the_chats_tools_together():
    request = grounded_request("gemini-3-pro-preview", [WEATHER])
    assert request.config["tools"] == [
        {"google_search": {}},
        {"function_declarations": [{"name": "weather", "parameters_json_schema": {"type": "object"}}]},
    ]
    assert request.config["tool_config"] == {"include_server_side_tool_invocations": True}
    assert request.notes == [] and request.grounded
    alone = grounded_request("gemini-3-pro-preview", [])
    assert alone.config["tools"] == [{"google_search": {}}] and "tool_config" not in alone.config


def test_earlier_models_use_the_chats_tools_and_say_grounding_is_off():
    request = grounded_request("gemini-2.5-flash", [WEATHER])
    assert [list(t) for t in request.config["tools"]] == [["function_declarations"]]
    assert request.notes == ["Search grounding is off for this reply because tools are on"]
    assert not request.grounded and "tool_config" not in request.config
    # Open WebUI's builtin tools alone (added to every chat) do not turn grounding off
    builtin = grounded_request(
        "gemini-2.5-flash", [{"type": "function", "function": BUILTIN["get_current_timestamp"]["spec"]}], dunder=BUILTIN
    )
    assert builtin.config["tools"] == [{"google_search": {}}] and builtin.notes == []
    # answering the tool results of this reply: the declarations, and no second note
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    loop = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    answering = grounded_request("gemini-2.5-flash", [WEATHER], messages=loop)
    assert [list(t) for t in answering.config["tools"]] == [["function_declarations"]] and answering.notes == []


def test_the_search_steps_go_back_with_the_tool_results():
    step = SimpleNamespace(tool_call=SimpleNamespace(id="s1"), model_dump=lambda **_: {"tool_call": {"id": "s1"}})
    result = SimpleNamespace(
        tool_response=SimpleNamespace(id="s1"), model_dump=lambda **_: {"tool_response": {"id": "s1"}}
    )
    call = SimpleNamespace(function_call=SimpleNamespace(name="weather", args={}, id="fc"), thought_signature=b"s")
    candidate = SimpleNamespace(content=SimpleNamespace(parts=[step, result, call]), finish_reason="STOP")
    reply = Reply()
    read_response(SimpleNamespace(candidates=[candidate]), reply, include_thoughts=True, names={})
    assert reply.server_parts == [{"tool_call": {"id": "s1"}}, {"tool_response": {"id": "s1"}}]
    call_id = reply.tool_calls[0]["id"]
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{k: v for k, v in reply.tool_calls[0].items() if k != "index"}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
    ]
    body = {"model": "g.gemini-3-pro-preview", "messages": messages, "tools": [WEATHER]}
    request = build_request(
        body, model_id="gemini-3-pro-preview", thinking=None, task=False, options=RequestOptions(grounding=True),
        fetched=Fetched(server_parts={call_id: reply.server_parts}),
    )  # fmt: skip
    model_turn = request.contents[1]["parts"]
    assert model_turn[:2] == reply.server_parts and "function_call" in model_turn[2]


# --- sources and citation marks ----------------------------------------------------------------


def web_metadata(chunks: list[tuple[str, str | None]], supports: list[tuple[int | None, int | None, str, list[int]]]):
    return SimpleNamespace(
        web_search_queries=["q"],
        grounding_chunks=[SimpleNamespace(web=SimpleNamespace(uri=u, title=t, domain=None)) for u, t in chunks],
        grounding_supports=[
            SimpleNamespace(segment=SimpleNamespace(start_index=s, end_index=e, text=t), grounding_chunk_indices=idx)
            for s, e, t, idx in supports
        ],
    )


def grounded_reply(answer: str, metadata) -> Reply:
    candidate = SimpleNamespace(
        content=SimpleNamespace(parts=[SimpleNamespace(text=answer, thought=None, function_call=None)]),
        grounding_metadata=metadata,
        finish_reason="STOP",
    )
    reply = Reply()
    read_response(SimpleNamespace(candidates=[candidate]), reply, include_thoughts=True, names={})
    return reply


REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"


def test_sources_are_named_by_title_and_site():
    assert source_name(REDIRECT + "AbC", "example.org", None) == ("example.org", "example.org")
    assert source_name(REDIRECT + "AbC", "Lisbon - Wikipedia", "en.wikipedia.org") == (
        "Lisbon - Wikipedia (en.wikipedia.org)",
        "en.wikipedia.org",
    )
    assert source_name("https://www.python.org/doc", None, None) == ("python.org", "python.org")
    assert source_name(REDIRECT + "x", "Guide", None) == ("Guide", "")  # the redirect host says nothing
    assert source_name("https://bbc.co.uk/n", "News at bbc.co.uk", None)[0] == "News at bbc.co.uk"


def test_citation_marks_go_where_the_supports_end_counted_in_bytes():
    answer = "Café au lait costs €3. Paris is the capital. Lisbon too."
    first, second = "Café au lait costs €3.", "Paris is the capital."
    start2 = len(answer[: answer.index(second)].encode())
    metadata = web_metadata(
        [(REDIRECT + "a", "cafe.example"), (REDIRECT + "b", "paris.example")],
        [(None, len(first.encode()), first, [0]), (start2, start2 + len(second.encode()), second, [1, 0])],
    )
    reply = grounded_reply(answer, metadata)
    assert cite(answer, reply) == "Café au lait costs €3.[1] Paris is the capital.[1][2] Lisbon too."
    # the sources Open WebUI already shows for the message come first in its numbering
    assert cite(answer, reply, ["doc-1"]) == "Café au lait costs €3.[2] Paris is the capital.[2][3] Lisbon too."
    assert completion("m", reply, ["doc-1"])["choices"][0]["message"]["content"].startswith("Café au lait costs €3.[2]")


def test_citation_marks_fall_back_to_the_segment_text():
    answer = "Ünïcödé first. Then a fact."
    fact = "Then a fact."
    char_end = answer.index(fact) + len(fact)  # a proxy counting characters, not bytes
    reply = grounded_reply(answer, web_metadata([(REDIRECT + "a", "facts.example")], [(15, char_end, fact, [0])]))
    assert cite(answer, reply) == "Ünïcödé first. Then a fact.[1]"
    lost = grounded_reply(answer, web_metadata([(REDIRECT + "a", "x.example")], [(0, 999, "not in it", [0])]))
    assert cite(answer, lost) == answer


def test_shown_sources_are_counted_as_open_webui_numbers_them():
    rag = {
        "source": {"id": "file-1", "name": "notes.md", "type": "file"},
        "document": ["chunk a", "chunk b"],
        "metadata": [{"file_id": "file-1", "source": "notes.md"}, {"file_id": "file-1", "source": "notes.md"}],
    }
    web = {"source": {"id": "https://e.org", "name": "e.org"}, "document": ["x"], "metadata": [{}]}
    assert shown_source_ids([rag, web, {}, "junk"]) == ["notes.md", "https://e.org"]
    assert shown_source_ids(None) == []


async def test_sources_are_emitted_with_their_titles_for_the_list():
    reply = grounded_reply("A fact.", web_metadata([(REDIRECT + "a", "facts.example")], [(0, 7, "A fact.", [0])]))
    events = Events()
    await emit_sources(Emitter(events), reply)
    (cite_event,) = events.of("citation")
    assert cite_event["source"] == {"name": "facts.example", "id": REDIRECT + "a", "url": REDIRECT + "a"}
    assert cite_event["metadata"] == [
        {"source": REDIRECT + "a", "name": "facts.example", "url": REDIRECT + "a", "external": True,
         "domain": "facts.example"}
    ]  # fmt: skip


def test_gemini_3_with_an_sdk_too_old_for_search_steps_is_treated_like_earlier_models():
    body = {
        "model": "g.gemini-3-pro-preview",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [WEATHER],
    }
    options = RequestOptions(grounding=True, sdk_server_side_tools=False)
    request = build_request(body, model_id="gemini-3-pro-preview", thinking=None, task=False, options=options)
    assert [list(t) for t in request.config["tools"]] == [["function_declarations"]]
    assert request.notes == ["Search grounding is off for this reply because tools are on"]
