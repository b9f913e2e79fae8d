"""The Gemini manifold in a real Open WebUI 0.12.4, talking to the fake Gemini server.

The dist file is deployed with GOOGLE_API_BASE_URL pointing at `tests/fakes/gemini.py`; the fake
answers by looking at each request (so Open WebUI's own extra calls, like title generation, cannot
steal a scripted answer). Every test also checks that the key went only into the x-goog-api-key
header, and the last one scans the whole server log for it.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from tests.fakes import gemini as g

PIPE = "gemini_manifold"
TOOL = "template_tool"
KEY = "AIzaSyHOST-key-0123456789abcdefghijklm"
USER_KEY = "AIzaSyHOSTUSER-key-9876543210zyxwvut"
FLASH = f"{PIPE}.gemini-2.5-flash"
PRO3 = f"{PIPE}.gemini-3-pro-preview"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
SIGNATURE = b"host-signature\x00\xff" * 4


def _parts(request: dict) -> list[dict]:
    return [p for c in request.get("contents", []) for p in c.get("parts", [])]


def _declared(request: dict) -> list[str]:
    return [d["name"] for t in request.get("tools", []) for d in t.get("functionDeclarations", [])]


def reply_text(done: dict) -> str:
    """The visible reply of a background chat: the text of its `message` output items."""
    return "".join(
        part.get("text", "") for item in done["output"] if item["type"] == "message" for part in item["content"]
    )


def route(request: dict) -> Any:
    """The fake's answer, chosen from the request like a model would."""
    text = g.last_user_text(request)
    parts = _parts(request)
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    if responses:
        return g.reply(f"The tool said: {responses[-1]['response']['output']}")
    if "count the words" in text:
        name = next(n for n in _declared(request) if n.endswith("count_words"))
        return [
            g.thought("The user wants a word count; I will use the tool."),
            g.function_call(name, {"text": "one two three"}, id="fc-host", signature=SIGNATURE),
            g.finish(),
        ]
    if "think first" in text:
        return [g.thought("Weighing the options. "), g.thought("Settled."), g.text("Forty-two."), g.finish()]
    if "search the web" in text:
        return [
            g.text("Lisbon is the capital of Portugal."),
            g.grounded(
                [("https://example.org/lisbon", "example.org"), ("https://example.net/pt", "example.net")],
                ["capital of portugal"],
                [("Lisbon is the capital of Portugal.", [0, 1])],
            ),
            g.finish(),
        ]
    if any("inlineData" in p for p in parts):
        blob = next(p["inlineData"] for p in parts if "inlineData" in p)
        mime = blob.get("mimeType") or blob.get("mime_type")  # the SDK sends either spelling
        return g.reply(f"I see a {mime} image of {len(base64.urlsafe_b64decode(blob['data']))} bytes.")
    if "generate a concise" in text.lower() or "title" in text.lower():
        return g.reply('{"title": "Fake Gemini Chat"}')
    return g.reply(f"Echo: {text}")


@pytest.fixture(scope="module")
def gemini(owui):
    with g.FakeGemini(api_key=KEY) as fake:
        fake.default = route
        owui.deploy(
            PIPE,
            TOOL,
            valves={PIPE: {"GOOGLE_API_KEY": KEY, "GOOGLE_API_BASE_URL": fake.url, "MAX_RETRIES": 1}},
        )
        yield fake


@pytest.fixture(autouse=True)
def key_only_in_header(gemini):
    gemini.requests.clear()
    yield
    for rec in gemini.requests:
        assert KEY not in rec.path and KEY.encode() not in rec.body
        if "upload_id" not in rec.query:
            assert rec.headers.get("x-goog-api-key") in (KEY, USER_KEY)


def set_valves(owui, **valves):
    current = owui.ok("GET", f"/api/v1/functions/id/{PIPE}/valves")
    owui.ok("POST", f"/api/v1/functions/id/{PIPE}/valves/update", json={**current, **valves})


def test_sub_models_are_listed(owui, gemini):
    ttl = owui.ok("GET", f"/api/v1/functions/id/{PIPE}/valves").get("MODEL_CACHE_TTL")
    set_valves(owui, MODEL_CACHE_TTL=0)  # the deploy already listed: make this listing ask the fake again
    try:
        models = {m["id"]: m for m in owui.models()}
    finally:
        set_valves(owui, MODEL_CACHE_TTL=ttl)
    assert {FLASH, PRO3, f"{PIPE}.gemini-2.5-pro", f"{PIPE}.gemini-2.0-flash"} <= set(models)
    assert models[FLASH]["name"] == "Gemini 2.5 Flash"
    assert not [m for m in models if m.startswith(PIPE) and ("tts" in m or "embedding" in m or "gemma" in m)]
    listing = [r for r in gemini.requests if r.path == "/v1beta/models"]
    assert listing and all(r.method == "GET" and r.headers.get("x-goog-api-key") == KEY for r in listing)


def test_stream_and_non_stream_replies(owui, gemini):
    assert owui.text_of(owui.chat(FLASH, "hello there")) == "Echo: hello there"
    chunks = owui.chat(FLASH, "hello stream", stream=True)
    assert owui.text_of(chunks) == "Echo: hello stream"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    # the text, the pipe's finish chunk, then Open WebUI's own closing chunk (open_webui/functions.py:318)
    assert finishes == [None, "stop", "stop"]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage == [{"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}]  # the fake's usage()
    paths = [r.path for r in gemini.generate_requests()]
    assert paths == [
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    ]
    # the pipe sent the chat, not Open WebUI's extra body keys
    assert gemini.generate_requests()[-1].json["contents"] == [{"role": "user", "parts": [{"text": "hello stream"}]}]


def test_reasoning_is_shown_in_the_reasoning_block(owui, gemini, socket):
    done = owui.chat_background(FLASH, "think first, then answer", socket)
    kinds = [item["type"] for item in done["output"]]
    assert kinds[:2] == ["reasoning", "message"], kinds
    reasoning = done["output"][0]
    assert "".join(p["text"] for p in reasoning["content"]) == "Weighing the options. Settled."
    assert reply_text(done) == "Forty-two."
    assert "Weighing" not in done["output"][1]["content"][0]["text"]
    # the usage of the final chunk reached Open WebUI
    usage = [e.get("usage") for e in socket.of_type("chat:completion") if isinstance(e, dict) and e.get("usage")]
    assert usage and usage[-1]["prompt_tokens"] == 7


def test_grounding_citations_reach_the_socket(owui, gemini, socket):
    set_valves(owui, GOOGLE_SEARCH_GROUNDING=True)
    try:
        text = owui.text_of(owui.chat(FLASH, "search the web: capital of Portugal?", session_id=socket.sid))
        socket.wait_for("citation", count=2)
    finally:
        set_valves(owui, GOOGLE_SEARCH_GROUNDING=False)
    assert text == "Lisbon is the capital of Portugal."
    assert gemini.generate_requests()[-1].json["tools"] == [{"googleSearch": {}}]
    cites = socket.of_type("citation")
    assert [c["source"]["url"] for c in cites] == ["https://example.org/lisbon", "https://example.net/pt"]
    assert cites[0]["document"] == ["Lisbon is the capital of Portugal."]
    searched = socket.wait_for("status", where=lambda d: d.get("action") == "web_search")
    assert searched["urls"] == ["https://example.org/lisbon", "https://example.net/pt"]
    # Gemini's search queries, shown as query chips, came before the citations
    queries = socket.wait_for("status", where=lambda d: d.get("action") == "web_search_queries_generated")
    assert queries["queries"] == ["capital of portugal"] and queries["done"] is True
    kinds = [(e["data"]["type"], (e["data"].get("data") or {}).get("action")) for e in list(socket.events)]
    first_citation = kinds.index(("citation", None))
    assert kinds.index(("status", "web_search_queries_generated")) < first_citation


def test_image_input(owui, gemini):
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
    ]
    reply = owui.text_of(owui.chat(FLASH, [{"role": "user", "content": content}]))
    assert reply == f"I see a image/png image of {len(PNG)} bytes."


def test_a_tool_runs_through_open_webuis_tool_loop(owui, gemini, socket):
    done = owui.chat_background(PRO3, "Please count the words in: one two three", socket, tool_ids=[TOOL])
    output = done["output"]
    calls = [i for i in output if i["type"] == "function_call"]
    results = [i for i in output if i["type"] == "function_call_output"]
    assert len(calls) == 1 and calls[0]["name"].endswith("count_words")
    assert json.loads(calls[0]["arguments"]) == {"text": "one two three"}
    assert results[0]["output"][0]["text"] == "3 words"
    assert reply_text(done) == "The tool said: 3 words"
    first, second = gemini.generate_requests()[-2:]
    assert any(n.endswith("count_words") for n in _declared(first.json))
    # the second call carries Gemini's call id and thought signature back, and the tool's result
    model_turn = next(c for c in second.json["contents"] if c["role"] == "model")
    call_part = next(p for p in model_turn["parts"] if "functionCall" in p)
    assert call_part["functionCall"]["id"] == "fc-host"
    assert base64.urlsafe_b64decode(call_part["thoughtSignature"]) == SIGNATURE
    response = next(p["functionResponse"] for p in _parts(second.json) if "functionResponse" in p)
    assert response == {"id": "fc-host", "name": call_part["functionCall"]["name"], "response": {"output": "3 words"}}
    # the template tool's own status event reached the socket too
    socket.wait_for("status", where=lambda d: d.get("description") == "Counted 3 words")


def test_title_generation_is_one_plain_call(owui, gemini):
    messages = [
        {"role": "user", "content": "Tell me about fake servers"},
        {"role": "assistant", "content": "They answer like the real thing."},
    ]
    result = owui.ok("POST", "/api/v1/tasks/title/completions", json={"model": FLASH, "messages": messages})
    assert result["choices"][0]["message"]["content"] == '{"title": "Fake Gemini Chat"}'
    request = gemini.generate_requests()[-1]
    assert request.path.endswith(":generateContent") and "tools" not in request.json
    thinking = request.json["generationConfig"].get("thinkingConfig")
    assert thinking in ({"thinkingBudget": 0}, {"thinking_budget": 0})


def test_a_users_own_key_is_used_for_their_chats(owui, gemini):
    owui.grant_model(FLASH)
    owui.ok(
        "POST", f"/api/v1/functions/id/{PIPE}/valves/user/update", token=owui.user, json={"GOOGLE_API_KEY": USER_KEY}
    )
    gemini.api_key = USER_KEY
    try:
        assert owui.text_of(owui.chat(FLASH, "my own key", token=owui.user)) == "Echo: my own key"
    finally:
        gemini.api_key = KEY
        owui.ok("POST", f"/api/v1/functions/id/{PIPE}/valves/user/update", token=owui.user, json={})
    assert gemini.generate_requests()[-1].headers["x-goog-api-key"] == USER_KEY


def test_errors_are_clear_and_retries_show_a_status(owui, gemini, socket):
    gemini.script(g.error(503, "overloaded", retry_delay="0.1s"))
    reply = owui.text_of(owui.chat(FLASH, "retry me", session_id=socket.sid))
    assert reply == "Echo: retry me"
    socket.wait_for("status", where=lambda d: "retrying in 0.1 s" in d.get("description", ""))
    socket.wait_for("status", where=lambda d: d.get("done") is True and d.get("hidden") is True)  # "answered"
    # retries used up: the error, and the "retrying" status is closed (done) instead of spinning on
    socket.clear()
    gemini.script(*[g.error(503, "overloaded", retry_delay="0.1s")] * 2)
    detail = owui.chat(FLASH, "fail twice", session_id=socket.sid)["error"]["detail"]
    assert "Gemini had a server error after 1 retry (503 UNAVAILABLE: overloaded)" in detail
    socket.wait_for("status", where=lambda d: d.get("done") is True)
    statuses = socket.of_type("status")
    assert [s["done"] for s in statuses] == [False, True]
    assert statuses[-1]["description"] == "Gemini request failed after 1 retry"
    gemini.script(g.error(400, f"Bad request from key {KEY}"))
    result = owui.chat(FLASH, "fail me")
    detail = result["error"]["detail"]
    assert "Gemini rejected the request (400 INVALID_ARGUMENT" in detail and KEY not in detail
    assert "[redacted]" in detail


def test_the_key_is_never_in_the_server_log(owui, gemini):
    gemini.script(g.error(404, "models/gemini-2.5-flash is not found"))  # an error path through the logs too
    owui.chat(FLASH, "x")
    log = owui.log_path.read_text(encoding="utf-8", errors="replace")
    assert KEY not in log and USER_KEY not in log
    assert "gemini" in log.lower()  # the log is the right one: the pipe's calls are in it


@pytest.mark.parametrize("stream", [False, True])
def test_a_missing_key_is_a_clear_error(owui, gemini, stream):
    set_valves(owui, GOOGLE_API_KEY="")
    try:
        result = owui.chat(FLASH, f"no key {uuid.uuid4().hex[:6]}", stream=stream)
    finally:
        set_valves(owui, GOOGLE_API_KEY=KEY)
    error = result["error"] if isinstance(result, dict) else next(c["error"] for c in result if "error" in c)
    assert "GOOGLE_API_KEY" in error["detail"]


def test_user_switches_are_dropdowns_and_old_values_keep_their_meaning(owui, gemini):
    spec = owui.ok("GET", f"/api/v1/functions/id/{PIPE}/valves/user/spec", token=owui.user)
    assert spec["properties"]["INCLUDE_THOUGHTS"]["enum"] == ["default", "on", "off"]
    owui.grant_model(FLASH)
    # false is what the earlier optional-bool valve stored for "hide my thoughts"
    saved = owui.ok(
        "POST", f"/api/v1/functions/id/{PIPE}/valves/user/update", token=owui.user, json={"INCLUDE_THOUGHTS": False}
    )
    try:
        assert saved == {"INCLUDE_THOUGHTS": "off"}
        assert owui.text_of(owui.chat(FLASH, "think first, quietly", token=owui.user)) == "Forty-two."
    finally:
        owui.ok("POST", f"/api/v1/functions/id/{PIPE}/valves/user/update", token=owui.user, json={})
    (chat,) = [r.json for r in gemini.generate_requests() if g.last_user_text(r.json) == "think first, quietly"]
    thinking = chat.get("generationConfig", {}).get("thinkingConfig") or {}
    assert "includeThoughts" not in thinking and "include_thoughts" not in thinking
