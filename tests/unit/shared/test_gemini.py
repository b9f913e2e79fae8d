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
    gemini_tool_name,
    image_links,
    requested_model,
    with_gemini_retries,
)
from shared.gemini_models import model_tier, model_version, thinking_budget, thinking_family, thinking_level
from shared.gemini_reply import Reply, completion, read_response

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
    assert describe_error(api_error(503, "UNAVAILABLE")) == (
        "Gemini had a server error (503 UNAVAILABLE: busy). Try again shortly."
    )
    assert describe_error(ConnectionRefusedError()).startswith(
        "The connection to Gemini failed (ConnectionRefusedError)"
    )
    assert describe_error(TimeoutError(), timeout=5) == "Gemini did not answer within REQUEST_TIMEOUT (5 s)."


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
