"""Every template in dist/templates/ inside a real Open WebUI (and the harness they rely on).

Deployed with `build.py deploy`, listed, run stream and non-stream, events seen on the socket,
dialogs answered, the action invoked through /api/chat/actions, the tool run through the native
tool loop, the filter's inlet and outlet observed, the event function's handler seen running on
real server events. template_pipeline is a Pipelines-server plugin: it is driven the way that
server drives it. Where the running Open WebUI version behaves differently, the test asserts that
version's behaviour or skips with the reason, through tests/host/versions.py.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from buildlib.assemble import build_plugin
from buildlib.loader import load_module_like_open_webui
from tests.host import versions
from tests.host._server import EVENT_CALL_TIMEOUT, HOST_PLUGINS, ROOT, USER_PASSWORD
from tests.host.conftest import NEVER, Late

FUNCTIONS = ("template_pipe", "template_manifold", "template_filter", "template_action")
FILTERED_MODEL = "host_filtered_fake_gpt"


@pytest.fixture(scope="module")
def templates(owui):
    owui.deploy(*FUNCTIONS, "template_tool")
    return owui


def statuses(socket) -> list[str]:
    return [d.get("description") for d in socket.of_type("status")]


# --- listing ------------------------------------------------------------------------


def test_templates_are_listed_with_manifold_sub_models(templates):
    models = {m["id"]: m for m in templates.models()}
    assert "template_pipe" in models
    assert models["template_manifold.upper"]["name"] == "Template/Upper case"
    assert models["template_manifold.lower"]["name"] == "Template/Lower case"
    assert "template_filter" not in models and "template_action" not in models
    stored = {f["id"]: f for f in templates.ok("GET", "/api/v1/functions/export")}
    assert {stored[i]["type"] for i in FUNCTIONS} == {"pipe", "filter", "action"}
    assert all(stored[i]["is_active"] for i in FUNCTIONS)
    tool = templates.ok("GET", "/api/v1/tools/id/template_tool")
    assert [s["name"] for s in tool["specs"]] == ["count_words"]
    assert set(tool["specs"][0]["parameters"]["properties"]) == {"text", "unique"}


# --- template_pipe ------------------------------------------------------------------


def test_pipe_non_stream_with_status_and_notification(templates, socket):
    result = templates.chat("template_pipe", "hello host", session_id=socket.sid)
    assert templates.text_of(result) == "echo: hello host "
    assert result["choices"][0]["finish_reason"] == "stop"
    socket.wait_for("status", where=lambda d: d.get("done"))
    assert statuses(socket) == ["Answering", "Answered"]
    assert socket.of_type("notification") == [{"type": "info", "content": "The template pipe got your message."}]


def test_pipe_stream_chunks(templates, socket):
    chunks = templates.chat("template_pipe", "one two three", stream=True, session_id=socket.sid)
    assert templates.text_of(chunks) == "echo: one two three "
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    if versions.ASYNC_GENERATOR_STREAM_FINISHES:
        assert len(chunks) >= 5  # one chunk per word, then the finish chunk
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    else:  # one chunk per word and nothing after them
        assert len(chunks) == 4 and chunks[-1]["choices"][0]["finish_reason"] is None
    socket.wait_for("status", where=lambda d: d.get("done"))


def test_pipe_events_reach_only_the_requesting_user(templates, socket, socket_for):
    other = socket_for(templates.user)
    response = templates.api(
        "POST", "/api/chat/completions", token=templates.user, json={"model": "template_pipe", "messages": []}
    )
    assert response.status_code in (400, 403, 404) and "not found" in response.text.lower()
    templates.grant_model("template_pipe")
    result = templates.chat("template_pipe", "as a user", token=templates.user, session_id=other.sid)
    assert templates.text_of(result) == "echo: as a user "
    other.wait_for("status", where=lambda d: d.get("done"))
    assert statuses(other) == ["Answering", "Answered"]
    assert socket.of_type("status") == []


# --- template_manifold ---------------------------------------------------------------


@pytest.mark.parametrize(("model", "expected"), [("upper", "MIXED CASE"), ("lower", "mixed case")])
def test_manifold_sub_models(templates, socket, model, expected):
    full = f"template_manifold.{model}"
    assert templates.text_of(templates.chat(full, "MiXeD CaSe", session_id=socket.sid)) == expected
    assert templates.text_of(templates.chat(full, "MiXeD CaSe", stream=True)) == expected
    done = socket.wait_for("status", where=lambda d: d.get("done"))
    assert done["description"] == f"{model.title()} case done"


# --- template_filter ----------------------------------------------------------------


@pytest.fixture(scope="module")
def filtered_model(templates):
    """A workspace model over the fake OpenAI model with the filter attached (not global)."""
    templates.deploy("template_filter", valves={"template_filter": {"MARK": " [marked]"}})
    if templates.api("GET", "/api/v1/models/model", params={"id": FILTERED_MODEL}).status_code != 200:
        templates.ok(
            "POST",
            "/api/v1/models/create",
            json={
                "id": FILTERED_MODEL,
                "base_model_id": "fake-gpt",
                "name": "Filtered fake GPT",
                "meta": {"filterIds": ["template_filter"]},
                "params": {},
            },
        )
    templates.models()
    yield FILTERED_MODEL
    templates.deploy("template_filter", valves={"template_filter": {"MARK": None}})


def test_filter_inlet_runs_on_an_api_completion(templates, socket, fake_openai, filtered_model):
    fake_openai.set("fake-gpt", reply="plain answer")
    result = templates.chat(filtered_model, "hello filter", session_id=socket.sid)
    # API-mode calls run inlet only; the outlet is the UI's (background) path
    assert templates.text_of(result) == "plain answer"
    assert socket.wait_for("status")["description"] == "Filter inlet saw 1 messages"
    assert fake_openai.chat_requests("fake-gpt")[-1]["messages"][-1]["content"] == "hello filter"


def test_filter_inlet_and_outlet_in_a_chat(templates, socket, fake_openai, filtered_model):
    fake_openai.set("fake-gpt", reply="chat answer")
    done = templates.chat_background(filtered_model, "hello chat", socket)
    if versions.OUTLET_INLINE:
        reply = socket.wait_for("chat:outlet")["messages"][-1]
    else:  # the outlet runs when the UI reports the finished reply
        assert done["content"] == "chat answer" and "chat:outlet" not in socket.types()
        messages = [
            {"role": "user", "content": "hello chat"},
            {"role": "assistant", "content": done["content"], "output": done["output"]},
        ]
        reply = templates.chat_completed(filtered_model, messages, socket)["messages"][-1]
    assert reply["output"][0]["content"][0]["text"] == "chat answer [marked]"  # what the UI shows
    if versions.INLINE_OUTLET_HAS_CONTENT or not versions.OUTLET_INLINE:
        assert reply["content"] == "chat answer [marked]"
    socket.wait_for("status", where=lambda d: d.get("done"))
    assert statuses(socket) == ["Filter inlet saw 1 messages", "Filter outlet done"]


def test_filter_made_global_runs_for_every_model(templates, socket):
    templates.ok("POST", "/api/v1/functions/id/template_filter/toggle/global")
    try:
        templates.chat("template_pipe", "global filter", session_id=socket.sid)
        socket.wait_for("status", where=lambda d: d.get("description", "").startswith("Filter inlet"))
    finally:
        stored = templates.ok("GET", "/api/v1/functions/id/template_filter")
        if stored["is_global"]:
            templates.ok("POST", "/api/v1/functions/id/template_filter/toggle/global")


# --- template_action ---------------------------------------------------------------


def action_body(socket, text: str = "the reply") -> dict:
    return {
        "model": "template_pipe",
        "chat_id": f"local:{socket.sid}",
        "id": "msg-assistant",
        "session_id": socket.sid,
        "messages": [
            {"id": "msg-user", "role": "user", "content": "hi"},
            {"id": "msg-assistant", "role": "assistant", "content": text},
        ],
    }


def test_action_asks_then_confirms(templates, socket):
    socket.answer("input", "my note")
    socket.answer("confirmation", True)
    assert templates.action("template_action", action_body(socket)) is None
    socket.wait_for("status", where=lambda d: d.get("done"))
    asked, confirmed = socket.calls
    assert (asked.type, asked.data["value"], asked.data["placeholder"]) == ("input", "the reply", "note")
    assert (confirmed.type, confirmed.data["message"]) == ("confirmation", "my note")
    assert socket.of_type("notification") == [{"type": "success", "content": "Noted: my note"}]
    assert statuses(socket) == ["Noted"]
    assert len(socket.of_type("request:interaction:done")) == (2 if versions.SENDS_INTERACTION_DONE else 0)


def test_action_cancelled_at_the_confirmation(templates, socket):
    socket.answer("input", "a note")
    socket.answer("confirmation", False)
    templates.action("template_action", action_body(socket))
    assert socket.wait_for("status", where=lambda d: d.get("done"))["description"] == "Cancelled"
    assert socket.of_type("notification") == [{"type": "info", "content": "Nothing was done."}]


def test_action_unanswered_dialog_times_out(templates, socket):
    templates.deploy("template_action", valves={"template_action": {"CALL_TIMEOUT": 1}})
    try:
        socket.answer("input", NEVER)
        templates.action("template_action", action_body(socket))
        assert socket.wait_for("status", where=lambda d: d.get("done"))["description"] == "Cancelled"
        # the plugin's own 1 s timeout fired, not the server's (10 s, 60 s on 0.6.43): its notice says so
        assert socket.of_type("notification") == [
            {"type": "info", "content": "No answer within 1 s: nothing was done."}
        ]
        assert [c.type for c in socket.calls] == ["input"]
    finally:
        templates.deploy("template_action", valves={"template_action": {"CALL_TIMEOUT": None}})


def test_action_late_answer_is_still_used(templates, socket):
    socket.answer("input", Late(0.3, "late note"))
    socket.answer("confirmation", lambda data: data["message"] == "late note")
    templates.action("template_action", action_body(socket))
    assert socket.wait_for("notification")["content"] == "Noted: late note"


def test_action_without_a_session_cannot_ask(templates, socket):
    body = {**action_body(socket), "session_id": None}
    templates.action("template_action", body)
    assert socket.wait_for("status", where=lambda d: d.get("done"))["description"] == "Cancelled"
    assert socket.calls == []


# --- template_tool ------------------------------------------------------------------


def test_tool_runs_in_the_native_tool_loop(templates, socket):
    run = templates.run_tool("template_tool", "count_words", {"text": "a b c b", "unique": "true"}, socket)
    assert run.result == "3 distinct words"  # "true" was coerced to the declared bool
    assert run.reply == "3 distinct words"
    call = next(item for item in run.output if item["type"] == "function_call")
    assert call["name"] == "count_words" and json.loads(call["arguments"])["text"] == "a b c b"
    assert "Counted 3 words" in statuses(socket)


def test_tool_valves_apply(templates, socket):
    templates.deploy("template_tool", valves={"template_tool": {"MAX_CHARS": 5}})
    try:
        run = templates.run_tool("template_tool", "count_words", {"text": "far too long"}, socket)
        assert run.result == "The text is longer than 5 characters; send a shorter one."
    finally:
        templates.deploy("template_tool", valves={"template_tool": {"MAX_CHARS": None}})


def test_shared_tool_runs_for_the_other_user(templates, socket, socket_for):
    templates.deploy("template_tool", args=("--share-tools",))
    other = socket_for(templates.user)
    run = templates.run_tool("template_tool", "count_words", {"text": "x y"}, other, token=templates.user)
    assert run.result == "2 words"
    assert "Counted 2 words" in statuses(other)
    assert "Counted 2 words" not in statuses(socket)


# --- template_pipeline (Pipelines server, driven like open-webui/pipelines main.py) ----


def template_pipeline():
    # built alone: a half-written plugin elsewhere in the tree must not break these tests
    plugin = build_plugin(ROOT, "templates", "plugins/templates/pipeline.py", {})
    return load_module_like_open_webui(plugin).Pipeline()


def test_pipeline_as_the_pipelines_server_drives_it():
    pipeline = template_pipeline()
    pipeline.valves = pipeline.Valves(PREFIX="> ")
    messages = [{"role": "user", "content": "hi there"}]
    out = list(
        pipeline.pipe(
            user_message="hi there",
            model_id="template_pipeline",
            messages=messages,
            body={"model": "template_pipeline", "messages": messages, "stream": True},
        )
    )
    text = "".join(c for c in out if isinstance(c, str))
    events = [c["event"] for c in out if isinstance(c, dict)]
    assert text == "> hi there "
    assert events == [
        {"type": "status", "data": {"description": "Answering", "done": False, "hidden": False}},
        {"type": "status", "data": {"description": "Answered", "done": True, "hidden": False}},
    ]
    # each dict is sent as one SSE `data:` line, which must be JSON
    assert all(json.loads(json.dumps(c)) == c for c in out if isinstance(c, dict))


def test_pipeline_wire_events_become_ui_events_in_open_webui(owui, fake_openai, socket):
    """The template pipeline's real output, served the way the Pipelines server streams it, through
    Open WebUI's OpenAI connection: the {"event": ...} lines must arrive as socket events."""
    messages = [{"role": "user", "content": "wire test"}]
    body = {"model": "template_pipeline", "messages": messages, "stream": True}
    items = list(template_pipeline().pipe(user_message="wire test", model_id="x", messages=messages, body=body))
    fake_openai.set("host-pipeline-wire", stream_items=items)
    owui.wait_for_model("host-pipeline-wire")

    done = owui.chat_background("host-pipeline-wire", "wire test", socket)
    answered = socket.wait_for("status", where=lambda d: d.get("description") == "Answered")
    assert answered == {"description": "Answered", "done": True, "hidden": False}
    assert [d["description"] for d in socket.of_type("status")][-2:] == ["Answering", "Answered"]
    assert "echo: wire test" in json.dumps(done["output"])


# --- the harness itself: fake OpenAI and embeddings through the real host ----------------


def test_fake_openai_through_open_webui(owui, fake_openai):
    fake_openai.set("host-fake-b", reply="bee", chunk_size=1)
    assert owui.wait_for_model("host-fake-b")["name"] == "host-fake-b"
    assert owui.text_of(owui.chat("host-fake-b", "x")) == "bee"
    chunks = owui.chat("host-fake-b", "x", stream=True)
    assert owui.text_of(chunks) == "bee"
    assert [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")][1:4] == ["b", "e", "e"]
    request = fake_openai.chat_requests("host-fake-b")[-1]
    assert request["stream"] is True and request["messages"][-1] == {"role": "user", "content": "x"}
    assert fake_openai.requests_to("/chat/completions")[-1].headers["authorization"] == "Bearer sk-fake-openai"


def test_fake_openai_failure_reaches_the_caller(owui, fake_openai):
    fake_openai.set("host-fake-err", fail_status=429, fail_message="slow down")
    owui.wait_for_model("host-fake-err")
    response = owui.api("POST", "/api/chat/completions", json={"model": "host-fake-err", "messages": []})
    assert response.status_code == versions.upstream_error_status(429)
    assert "slow down" in response.text


def test_fake_openai_latency_and_recovery(owui, fake_openai):
    fake_openai.set("host-fake-slow", latency=0.3, fail_status=500, fail_times=1)
    owui.wait_for_model("host-fake-slow")
    first = owui.api("POST", "/api/chat/completions", json={"model": "host-fake-slow", "messages": []})
    assert first.status_code == versions.upstream_error_status(500)
    assert owui.text_of(owui.chat("host-fake-slow", "again")) == "host-fake-slow says: again"
    # the failed try, then the delayed answer: the fake recorded both (its latency is timed in bench/)
    assert len(fake_openai.requests_to("/chat/completions")) == 2


def test_fake_embeddings_back_memories(owui, fake_embeddings):
    added = owui.ok("POST", "/api/v1/memories/add", json={"content": "The user likes green tea"})
    owui.ok("POST", "/api/v1/memories/add", json={"content": "The user's cat is called Biscuit"})
    found = owui.ok("POST", "/api/v1/memories/query", json={"content": "which tea does the user like", "k": 1})
    assert found["documents"] == [["The user likes green tea"]]
    assert "The user likes green tea" in fake_embeddings.embedded_texts()
    fake_embeddings.fail = True
    failed = owui.api("POST", "/api/v1/memories/add", json={"content": "not embedded"})
    assert failed.status_code >= 400
    owui.ok("DELETE", f"/api/v1/memories/{added['id']}")


@pytest.fixture(scope="module")
def probe(owui):
    owui.install("host_event_call_probe", (HOST_PLUGINS / "event_call_probe.py").read_text(encoding="utf-8"))
    return "host_event_call_probe"


def probe_result(owui, probe, events: list[dict], session_id: str | None) -> dict:
    return owui.chat(probe, json.dumps(events), session_id=session_id, timeout=EVENT_CALL_TIMEOUT + 30)


def call_probe(owui, probe, events: list[dict], session_id: str | None) -> list:
    return json.loads(owui.text_of(probe_result(owui, probe, events, session_id)))


def test_socket_answers_event_calls(owui, socket, probe):
    socket.answer("confirmation", True, False)
    socket.answer("input", "first", Late(0.2, "second"))
    socket.answer("execute", lambda data: {"ran": data["code"]})
    events = [
        {"type": "confirmation", "data": {"title": "t", "message": "m"}},
        {"type": "confirmation", "data": {"title": "t", "message": "m"}},
        {"type": "input", "data": {"title": "t", "message": "m"}},
        {"type": "input", "data": {"title": "t", "message": "m"}},
        {"type": "input", "data": {"title": "t", "message": "m"}},
        {"type": "execute", "data": {"code": "return 1+1"}},
    ]
    assert call_probe(owui, probe, events, socket.sid) == [
        True,
        False,
        "first",
        "second",
        "second",
        {"ran": "return 1+1"},
    ]
    assert [c.type for c in socket.calls] == ["confirmation"] * 2 + ["input"] * 3 + ["execute"]
    if versions.EVENT_CALL_WITHOUT_SESSION_RETURNS_ERROR:
        assert call_probe(owui, probe, events[:1], None) == [versions.EVENT_CALL_NO_SESSION_ERROR]
    else:  # python-socketio refuses a call to no session: the pipe raises
        assert "error" in probe_result(owui, probe, events[:1], None)


def test_never_answered_call_hits_the_server_timeout(owui, socket, probe):
    socket.answer("confirmation", NEVER)
    result = probe_result(owui, probe, [{"type": "confirmation", "data": {"title": "t", "message": "m"}}], socket.sid)
    if versions.EVENT_CALL_TIMEOUT_RETURNS_ERROR:
        assert json.loads(owui.text_of(result)) == [versions.EVENT_CALL_TIMEOUT_ERROR]
    else:  # the timeout is raised inside the pipe, which fails
        assert "error" in result and "choices" not in result
    # the call reached the browser once and was never answered: the server's own timeout ended it
    assert [c.type for c in socket.calls] == ["confirmation"]


def test_server_is_offline_and_loopback_only(owui):
    assert owui.url.startswith("http://127.0.0.1:")
    config = owui.ok("GET", "/api/config")
    assert config["version"] == versions.OWUI_VERSION_TEXT
    assert httpx.get(f"{owui.url}/health", timeout=5).json() == {"status": True}


def test_fake_openai_speaks_the_wire_format_the_openai_sdk_parses(fake_openai):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=fake_openai.url, api_key="sk-any", max_retries=0)
    tools = [{"type": "function", "function": {"name": "count_words", "parameters": {"type": "object"}}}]
    fake_openai.set("sdk-model", reply="done", tool_calls=[{"name": "count_words", "arguments": {"text": "a b"}}])
    first = client.chat.completions.create(model="sdk-model", messages=[{"role": "user", "content": "go"}], tools=tools)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("count_words", {"text": "a b"})
    stream = client.chat.completions.create(
        model="sdk-model",
        messages=[{"role": "user", "content": "go"}],
        tools=tools,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert pieces[0].id and pieces[0].function.name == "count_words"
    arguments = "".join(p.function.arguments or "" for p in pieces)
    assert json.loads(arguments) == {"text": "a b"}
    assert chunks[-1].usage is not None and chunks[-2].choices[0].finish_reason == "tool_calls"
    history = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "2 words"},
    ]
    after = client.chat.completions.create(model="sdk-model", messages=history, tools=tools)
    assert after.choices[0].message.content == "done"
    fake_openai.set("sdk-model", fail_status=429, fail_message="slow down")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="sdk-model", messages=[{"role": "user", "content": "go"}])
    assert caught.value.body == {
        "message": "slow down",
        "type": "rate_limit_exceeded",
        "param": None,
        "code": "rate_limit_exceeded",
    }


# --- template_event (an event function: Open WebUI calls it on server events) --------------


def log_size(owui) -> int:
    return owui.log_path.stat().st_size


def wait_for_log(owui, offset: int, needle: str, timeout: float = 10) -> str:
    """The server log written after `offset`, once it holds `needle` (the handler runs in a task)."""
    deadline = time.monotonic() + timeout
    while True:
        text = owui.log_path.read_bytes()[offset:].decode("utf-8", "replace")
        if needle in text:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not in the server log within {timeout}s; it got:\n{text[-3000:]}")
        time.sleep(0.1)


@pytest.fixture
def event_function(owui):
    """template_event deployed and active; removed afterwards (it sees every server event)."""
    versions.skip_before("0.10.0", "event functions do not exist in this version")
    owui.deploy("template_event")
    yield owui
    owui.api("DELETE", "/api/v1/functions/id/template_event/delete")


def test_event_function_is_installed_as_the_event_type(event_function):
    owui = event_function
    stored = owui.ok("GET", "/api/v1/functions/id/template_event")
    assert stored["type"] == "event" and stored["is_active"] is True
    assert "template_event" not in owui.model_ids()


def test_event_handler_runs_when_the_admin_adds_a_user(event_function):
    owui = event_function
    offset = log_size(owui)
    # Open WebUI 0.12.4 publishes user.created from POST /api/v1/auths/add (open_webui/routers/auths.py)
    # and dispatches it to every active event function (open_webui/events.py, dispatch_event_functions).
    form = {"name": "Event Probe", "email": "event-probe@host.test", "password": USER_PASSWORD, "role": "user"}
    new = owui.ok("POST", "/api/v1/auths/add", json=form)
    try:
        text = wait_for_log(owui, offset, f"template_event saw user.created subject=user:{new['id']}")
        line = next(x for x in text.splitlines() if "template_event saw user.created" in x)
        assert f"actor={owui.admin.id}" in line
        assert "event-probe@host.test" not in line  # ids only, no e-mail addresses in the log
    finally:
        owui.ok("DELETE", f"/api/v1/users/{new['id']}")


def test_event_handler_sees_its_own_valves_update_with_the_new_valves(event_function):
    owui = event_function
    offset = log_size(owui)
    try:
        owui.deploy("template_event", valves={"template_event": {"PREFIXES": "function.valves"}})
        wait_for_log(owui, offset, "template_event saw function.valves_updated subject=function:template_event")
        # the stored valves are loaded before each call: other events are now filtered out
        offset = log_size(owui)
        new = owui.ok(
            "POST",
            "/api/v1/auths/add",
            json={"name": "Quiet", "email": "event-quiet@host.test", "password": USER_PASSWORD, "role": "user"},
        )
        owui.ok("DELETE", f"/api/v1/users/{new['id']}")
        owui.ok("POST", "/api/v1/functions/id/template_event/valves/update", json={"PREFIXES": "function.valves"})
        text = wait_for_log(owui, offset, "template_event saw function.valves_updated")
        assert "template_event saw user." not in text
    finally:
        owui.deploy("template_event", valves={"template_event": {"PREFIXES": None}})
