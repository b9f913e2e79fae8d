"""The Gemini manifold in a real Open WebUI (0.6.43 to 0.12.4), talking to the fake Gemini server.

The dist file is deployed with GOOGLE_API_BASE_URL pointing at `tests/fakes/gemini.py`; the fake
answers by looking at each request (so Open WebUI's own extra calls, like title generation, cannot
steal a scripted answer). Every test also checks that the key went only into the x-goog-api-key
header, and the last one scans the whole server log for it.

Where Open WebUI versions differ (tests/host/versions.py): before 0.10 the native tool loop runs
only when the chat asks for it (`params.function_calling = "native"`), and the google-genai SDK the
older versions install cannot ask for Gemini 3's search steps, so Gemini 3 then gets the chat's tools
without Google Search, as earlier models do.
"""

from __future__ import annotations

import base64
import html
import json
import time
import uuid
from typing import Any

import pytest

from tests.fakes import gemini as g
from tests.helpers import exception_names
from tests.host import versions

try:  # the server runs in this venv: its google-genai is the one the pipe uses
    from google.genai import types as genai_types
except ImportError:
    genai_types = None

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
REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"
# google-genai 3.x has ToolConfig.include_server_side_tool_invocations; 1.56/1.66 (Open WebUI 0.6-0.10) do not
SDK_SEARCH_STEPS = "include_server_side_tool_invocations" in getattr(
    getattr(genai_types, "ToolConfig", None), "model_fields", {}
)
# the chat's tools through Open WebUI's native tool loop: a request parameter before 0.10, the default after
NATIVE = {"params": {"function_calling": "native"}} if versions.NATIVE_TOOLS_NEED_PARAM else {}
# prompt-based tool calling: the default before 0.10 ("default"), "legacy" from 0.10
PROMPT_BASED = {"params": {"function_calling": "default" if versions.NATIVE_TOOLS_NEED_PARAM else "legacy"}}
GROUNDING_OFF = "Search grounding is off"


def _parts(request: dict) -> list[dict]:
    return [p for c in request.get("contents", []) for p in c.get("parts", [])]


def _declared(request: dict) -> list[str]:
    return [d["name"] for t in request.get("tools", []) for d in t.get("functionDeclarations", [])]


def reply_text(done: dict) -> str:
    """The visible reply of a background chat: the text of its `message` output items."""
    return "".join(
        part.get("text", "") for item in done["output"] if item["type"] == "message" for part in item["content"]
    )


def _system(request: dict) -> str:
    instruction = request.get("systemInstruction") or request.get("system_instruction") or {}
    return "".join(p.get("text", "") for p in instruction.get("parts", []))


def route(request: dict) -> Any:
    """The fake's answer, chosen from the request like a model would."""
    text = g.last_user_text(request)
    parts = _parts(request)
    if _system(request).startswith("Available Tools:"):  # Open WebUI's prompt-based tool choice
        if "tally the words" in text:
            return g.reply(json.dumps({"tool_calls": [{"name": "count_words", "parameters": {"text": "a b c d"}}]}))
        return g.reply('{"tool_calls": []}')
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
        answer = "Lisbon is the capital of Portugal. It lies on the Tagus."
        return [
            g.text("Lisbon is the capital of Portugal. "),
            g.text("It lies on the Tagus."),
            g.grounded(
                [(REDIRECT + "lisbon", "example.org"), (REDIRECT + "tagus", "Tagus river - River Guide")],
                ["capital of portugal"],
                [("Lisbon is the capital of Portugal.", [0, 1]), ("It lies on the Tagus.", [1])],
                answer=answer,
            ),
            g.finish(),
        ]
    if any("inlineData" in p for p in parts):
        blob = next(p["inlineData"] for p in parts if "inlineData" in p)
        mime = blob.get("mimeType") or blob.get("mime_type")  # the SDK sends either spelling
        return g.reply(f"I see a {mime} image of {len(base64.urlsafe_b64decode(blob['data']))} bytes.")
    return g.task_reply(request) or g.reply(f"Echo: {text}")


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
    # the text, the pipe's finish chunk, then Open WebUI's own closing chunk (open_webui/functions.py),
    # which 0.6.43 and 0.8.12 send only after a string or a plain generator, not an async generator
    assert finishes == ([None, "stop", "stop"] if owui.at_least("0.10.0") else [None, "stop"])
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert len(usage) == 1  # the fake's usage(), once, with the split and timings beside OpenAI's counts
    assert {k: usage[0][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")} == {
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "total_tokens": 12,
    }
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
    reasoning = "".join(p["text"] for p in done["output"][0]["content"])
    # 0.6.43 sends the block inside `content`, its quote marks escaped ("&gt; "): the text is the same
    reasoning = html.unescape(reasoning).removeprefix("> ")
    assert reasoning == "Weighing the options. Settled."
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
    # not streamed: the completion carries Open WebUI's citation marks, in the order it lists the sources
    assert text == "Lisbon is the capital of Portugal.[1][2] It lies on the Tagus.[2]"
    assert gemini.generate_requests()[-1].json["tools"] == [{"googleSearch": {}}]
    cites = socket.of_type("citation")
    assert [c["source"]["url"] for c in cites] == [REDIRECT + "lisbon", REDIRECT + "tagus"]
    # the names Open WebUI lists (metadata `external` keeps them instead of the redirect URL)
    assert [c["source"]["name"] for c in cites] == ["example.org", "Tagus river - River Guide"]
    assert all(m["external"] is True and m["name"] == c["source"]["name"] for c in cites for m in c["metadata"])
    assert cites[0]["document"] == ["Lisbon is the capital of Portugal."]
    searched = socket.wait_for("status", where=lambda d: d.get("action") == "web_search")
    assert searched["urls"] == [REDIRECT + "lisbon", REDIRECT + "tagus"]
    # Gemini's search queries, shown as query chips, came before the citations
    queries = socket.wait_for("status", where=lambda d: d.get("action") == "web_search_queries_generated")
    assert queries["queries"] == ["capital of portugal"] and queries["done"] is True
    kinds = [(e["data"]["type"], (e["data"].get("data") or {}).get("action")) for e in list(socket.events)]
    first_citation = kinds.index(("citation", None))
    assert kinds.index(("status", "web_search_queries_generated")) < first_citation


def test_a_grounded_chat_reply_carries_citation_marks(owui, gemini, socket):
    """In a chat, Open WebUI 0.8+ takes the pipe's replacement text: the stored and shown text has the
    marks. 0.6.43 keeps the streamed text as it came (no marks); the sources are listed."""
    set_valves(owui, GOOGLE_SEARCH_GROUNDING=True)
    try:
        done = owui.chat_background(FLASH, "search the web: capital of Portugal?", socket, tool_ids=[])
    finally:
        set_valves(owui, GOOGLE_SEARCH_GROUNDING=False)
    if owui.at_least("0.8.0"):
        assert reply_text(done) == "Lisbon is the capital of Portugal.[1][2] It lies on the Tagus.[2]"
    else:
        assert reply_text(done) == "Lisbon is the capital of Portugal. It lies on the Tagus."
    messages = [i for i in done["output"] if i["type"] == "message"]
    assert len(messages) == 1  # replaced, not appended
    # the numbers are the positions Open WebUI gives the message's sources
    cites = [c for c in socket.of_type("citation") if c["source"]["url"].startswith(REDIRECT)]
    assert [c["source"]["url"] for c in cites] == [REDIRECT + "lisbon", REDIRECT + "tagus"]


def test_grounding_and_the_chats_tools(owui, gemini, socket):
    set_valves(owui, GOOGLE_SEARCH_GROUNDING=True)
    try:
        owui.chat_background(PRO3, "hello with tools", socket, tool_ids=[TOOL], **NATIVE)
        request = gemini.generate_requests()[-1].json
        if SDK_SEARCH_STEPS:
            # Gemini 3: Google Search and the chat's tool in one request
            assert {next(iter(t)) for t in request["tools"]} == {"googleSearch", "functionDeclarations"}
            assert request["toolConfig"] == {"includeServerSideToolInvocations": True}
        else:
            # an SDK that cannot ask for the search steps: the tool wins, as for earlier models
            assert [next(iter(t)) for t in request["tools"]] == ["functionDeclarations"]
            socket.wait_for("status", where=lambda d: d.get("description", "").startswith(GROUNDING_OFF))
        # Gemini 2.5: the tool wins and the status line says so (the fake refuses the mix, like Google)
        socket.clear()
        done = owui.chat_background(FLASH, "hello again with tools", socket, tool_ids=[TOOL], **NATIVE)
        assert reply_text(done) == "Echo: hello again with tools"
        request = gemini.generate_requests()[-1].json
        assert [next(iter(t)) for t in request["tools"]] == ["functionDeclarations"]
        socket.wait_for("status", where=lambda d: d.get("description", "").startswith(GROUNDING_OFF))
        # Open WebUI's builtin tools alone (time, ask_user...; 0.10+) leave grounding on, without a note
        socket.clear()
        owui.chat_background(FLASH, "hello without tools", socket, **NATIVE)
        request = gemini.generate_requests()[-1].json
        assert {"googleSearch": {}} in request["tools"]
        assert not [s for s in socket.of_type("status") if "grounding is off" in s.get("description", "")]
    finally:
        set_valves(owui, GOOGLE_SEARCH_GROUNDING=False)


def test_prompt_based_tool_calling_leaves_the_tools_to_open_webui(owui, gemini, socket):
    """Prompt-based tool calling (the default before 0.10, "legacy" after): Open WebUI asks the model
    which tool to run (a task call), runs it, and calls the pipe with the result in the chat; the
    pipe declares no tools to Gemini, so the tool cannot run twice."""
    done = owui.chat_background(FLASH, "Please tally the words in: a b c d", socket, tool_ids=[TOOL], **PROMPT_BASED)
    choice, answer = gemini.generate_requests()[-2:]
    assert _system(choice.json).startswith("Available Tools:") and "tools" not in choice.json
    assert "tools" not in answer.json
    assert "4 words" in json.dumps(answer.json["contents"])  # the tool's result, in Open WebUI's context
    assert reply_text(done).startswith("Echo: ")
    assert not [i for i in done["output"] if i["type"] == "function_call"]
    socket.wait_for("status", where=lambda d: d.get("description") == "Counted 4 words")


def test_image_input(owui, gemini):
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
    ]
    reply = owui.text_of(owui.chat(FLASH, [{"role": "user", "content": content}]))
    assert reply == f"I see a image/png image of {len(PNG)} bytes."


def test_a_tool_runs_through_open_webuis_tool_loop(owui, gemini, socket):
    done = owui.chat_background(PRO3, "Please count the words in: one two three", socket, tool_ids=[TOOL], **NATIVE)
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


@pytest.mark.parametrize("model", [FLASH, PRO3, f"{PIPE}.gemini-2.0-flash"])
def test_follow_ups_title_and_tags_after_a_chat(owui, gemini, socket, model):
    """A saved chat, sent as the UI sends it, with Open WebUI's background tasks: each pack model
    answers the follow-up, title and tag prompts with one plain call, and the follow-ups are stored
    under the reply."""
    user_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
    user_message = {"id": user_id, "parentId": None, "childrenIds": [message_id], "role": "user",
                    "content": "Tell me about fake servers", "timestamp": 1}  # fmt: skip
    assistant = {"id": message_id, "parentId": user_id, "childrenIds": [], "role": "assistant", "content": "",
                 "model": model, "modelName": model, "timestamp": 2}  # fmt: skip
    chat = owui.ok("POST", "/api/v1/chats/new", json={"chat": {
        "title": "New Chat", "models": [model],
        "history": {"currentId": message_id, "messages": {user_id: user_message, message_id: assistant}},
        "messages": [user_message, assistant],
    }})  # fmt: skip
    response = owui.api("POST", "/api/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": "Tell me about fake servers"}], "stream": True,
        "session_id": socket.sid, "chat_id": chat["id"], "id": message_id, "parent_id": user_id,
        "user_message": user_message, "parent_message": user_message,  # 0.6.43 requires parent_message
        "background_tasks": {"title_generation": True, "tags_generation": True, "follow_up_generation": True},
    })  # fmt: skip
    assert response.status_code == 200, response.text
    socket.wait_done(60, message_id=message_id)
    follow_ups = socket.wait_for("chat:message:follow_ups", 30)
    assert follow_ups["follow_ups"] == g.TASK_ANSWERS[0][1]["follow_ups"]
    stored: dict = {}
    tags: list = []
    for _ in range(200):  # the tasks run one after another after the reply: poll the stored chat
        stored = owui.ok("GET", f"/api/v1/chats/{chat['id']}")
        tags = owui.ok("GET", f"/api/v1/chats/{chat['id']}/tags")
        asked = [r for r in gemini.generate_requests() if g.task_reply(r.json)]
        if stored["title"] == "Fake Gemini Chat" and len(asked) == 3 and tags:
            break
        time.sleep(0.1)
    assert stored["chat"]["history"]["messages"][message_id]["followUps"] == follow_ups["follow_ups"]
    assert stored["title"] == "Fake Gemini Chat"
    assert {t["name"].lower() for t in tags} == {"technology", "testing"}
    tasks = [r for r in gemini.generate_requests() if g.task_reply(r.json)]
    prompts = {g.task_kind(r.json) for r in tasks}
    assert prompts == {k for k, _ in g.TASK_ANSWERS}  # follow-ups, tags, title: each once
    assert len(tasks) == 3
    for task in tasks:
        assert task.path.endswith(":generateContent") and "tools" not in task.json
        thinking = (task.json.get("generationConfig") or {}).get("thinkingConfig") or {}
        assert "includeThoughts" not in thinking and "include_thoughts" not in thinking


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
    # the admin reads the plain sentence and the detail
    assert "Gemini had a server error after 1 retry. Try again shortly." in detail
    assert "For administrators: 503 UNAVAILABLE: overloaded" in detail
    socket.wait_for("status", where=lambda d: d.get("done") is True)
    statuses = socket.of_type("status")
    assert [s["done"] for s in statuses] == [False, True]
    assert statuses[-1]["description"] == "Gemini request failed after 1 retry"
    gemini.script(g.error(400, f"Bad request from key {KEY}"))
    result = owui.chat(FLASH, "fail me")
    detail = result["error"]["detail"]
    assert "Gemini rejected the request: Bad request from key" in detail and KEY not in detail
    assert "[redacted]" in detail and "400 INVALID_ARGUMENT" in detail


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
    assert "no API key yet" in error["detail"] and "GOOGLE_API_KEY" in error["detail"]  # the admin's detail


def test_a_user_reads_plain_sentences(owui, gemini, socket):
    owui.grant_model(FLASH)
    gemini.script(*[g.error(503, f"overloaded, key {KEY}", retry_delay="0.1s")] * 2)
    detail = owui.chat(FLASH, "fail for a user", token=owui.user)["error"]["detail"]
    assert detail == "Gemini had a server error after 1 retry. Try again shortly."
    set_valves(owui, GOOGLE_API_KEY="")
    try:
        detail = owui.chat(FLASH, f"no key {uuid.uuid4().hex[:6]}", token=owui.user)["error"]["detail"]
    finally:
        set_valves(owui, GOOGLE_API_KEY=KEY)
    assert "no API key yet" in detail and "GOOGLE_API_KEY" not in detail and "For administrators" not in detail
    assert exception_names(detail) == []


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


def test_an_attached_text_file_reaches_gemini_once(owui, gemini):
    """Open WebUI puts the file's text into the chat (its document context); the pipe does not send
    it again as a file part."""
    marker = f"zebra-{uuid.uuid4().hex[:8]}"
    upload = owui.api(
        "POST",
        "/api/v1/files/?process=true",
        files={"file": ("notes.txt", f"The secret word is {marker}.", "text/plain")},
    )
    assert upload.status_code == 200, upload.text
    file = upload.json()
    for _ in range(100):  # extraction and embedding run in the background: poll the status
        status = owui.ok("GET", f"/api/v1/files/{file['id']}/process/status")
        if status.get("status") in ("completed", "failed"):
            break
        time.sleep(0.1)
    assert status.get("status") == "completed", status
    item = {"type": "file", "id": file["id"], "name": "notes.txt", "file": file, "status": "uploaded"}
    owui.text_of(owui.chat(FLASH, "What is the secret word?", files=[item]))
    request = gemini.generate_requests()[-1]
    assert request.body.count(marker.encode()) == 1  # in Open WebUI's context, not again as a part
    assert not [p for p in _parts(request.json) if "inlineData" in p]


def test_an_attached_pdf_is_read_from_open_webuis_file_store(owui, gemini):
    """The pipe reads the file's bytes itself (Open WebUI's file record and storage; the record lookup is
    synchronous before 0.10) and sends the PDF to Gemini natively."""
    data = b"%PDF-1.4 host test " + uuid.uuid4().hex.encode()
    upload = owui.api("POST", "/api/v1/files/?process=false", files={"file": ("report.pdf", data, "application/pdf")})
    assert upload.status_code == 200, upload.text
    file = upload.json()
    item = {"type": "file", "id": file["id"], "name": "report.pdf", "file": file, "status": "uploaded"}
    reply = owui.text_of(owui.chat(FLASH, "What does the report say?", files=[item]))
    assert reply == f"I see a application/pdf image of {len(data)} bytes."
    parts = [p for p in _parts(gemini.generate_requests()[-1].json) if "inlineData" in p]
    assert len(parts) == 1 and base64.urlsafe_b64decode(parts[0]["inlineData"]["data"]) == data
