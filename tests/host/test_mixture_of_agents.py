"""Mixture of Agents inside a real Open WebUI 0.12.4, whose OpenAI connection is the fake server.

The agents and the aggregator are real Open WebUI models (served by `fake_openai`), reached through
Open WebUI's own generate_chat_completion with the chatting user's access rules. The Pipelines
variant is driven the way open-webui/pipelines main.py drives it, against the same fake server.
"""

import concurrent.futures
import importlib.util
import json
import time
import uuid

import pytest

from buildlib import assemble as build  # build.build_plugin
from tests.helpers import exception_names
from tests.host import versions
from tests.host._server import ROOT

PIPE = "mixture_of_agents"
CONVERSATION = [
    {"role": "system", "content": "Answer in one line."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
    {"role": "user", "content": "Another?"},
]
FINAL = "Green, the colour of growth."


@pytest.fixture(scope="module")
def deployed(owui):
    owui.deploy(PIPE)
    return owui


@pytest.fixture
def agents(deployed, fake_openai):
    """Three models on the fake OpenAI connection, listed by Open WebUI; default valves using them."""
    fake_openai.clear()
    fake_openai.set("moa-a", reply="Green.", latency=0.05)
    fake_openai.set("moa-b", reply="Red.", latency=0.05)
    fake_openai.set("moa-agg", reply=FINAL, chunk_size=3, chunk_delay=0.01)
    for model in ("moa-a", "moa-b", "moa-agg"):
        deployed.wait_for_model(model)
    set_valves(deployed)
    return deployed


def set_valves(owui, **valves) -> None:
    values = {
        "models": ["moa-a", "moa-b"],
        "aggregator_model": "moa-agg",
        "num_layers": 2,
        "num_agents_per_layer": 3,
        "emit_interval": 0,
    } | valves
    owui.ok("POST", f"/api/v1/functions/id/{PIPE}/valves/update", json=values)


def statuses(socket) -> list[dict]:
    return socket.of_type("status")


def test_streamed_answer_and_statuses_on_the_socket(agents, fake_openai, socket):
    chunks = agents.chat(PIPE, CONVERSATION, stream=True, session_id=socket.sid)
    assert agents.text_of(chunks) == FINAL
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]
    assert len([p for p in pieces if p]) >= 5  # streamed in the aggregator's chunks, not in one piece

    requests = fake_openai.chat_requests()
    agent_models = sorted(r["model"] for r in requests if r["model"] != "moa-agg")
    assert agent_models == ["moa-a"] * 4 + ["moa-b"] * 2  # 3 agents round-robin over 2 models, 2 layers
    layer1 = [r for r in requests[:3]]
    assert all(r["messages"] == CONVERSATION for r in layer1)  # system prompt and history included
    final = fake_openai.chat_requests("moa-agg")
    assert len(final) == 1 and final[0]["stream"] is True
    assert "Green." in final[0]["messages"][0]["content"] and "Red." in final[0]["messages"][0]["content"]

    done = socket.wait_for("status", where=lambda d: d.get("done"))
    assert done["description"].startswith(
        "Mixture of Agents: 2 layers, 3 of 3 agents answered, combined by moa-agg in "
    )
    seen = statuses(socket)
    descriptions = [s["description"] for s in seen]
    assert descriptions[0] == "Layer 1/2: asking 3 agents"
    assert "Layer 2/2: 3/3 agents answered" in descriptions
    assert "Aggregating 3 answers with moa-agg" in descriptions
    assert all(set(s) == {"description", "done", "hidden"} for s in seen)
    assert [s["done"] for s in seen].count(True) == 1
    assert set(socket.types()) <= {"status", "chat:completion"}


def test_intermediate_blocks_in_a_ui_chat(agents, socket):
    set_valves(agents, show_intermediate=True, num_layers=1)
    completion = agents.chat_background(PIPE, CONVERSATION, socket)
    content = completion["content"]  # what the UI renders (the harness reads it on every version)
    assert content.startswith('<details type="mixture_of_agents" done="true">\n<summary>Layer 1 of 1: 3 of 3')
    assert content.endswith(FINAL)
    assert "**Agent 2** · `moa-b`" in content
    assert socket.wait_for("status", where=lambda d: d.get("done"))


def test_non_stream_answer(agents):
    result = agents.chat(PIPE, CONVERSATION)
    assert agents.text_of(result) == FINAL


def test_dropped_agent_and_failed_layer(agents, fake_openai, socket):
    fake_openai.set("moa-b", fail_status=400, fail_message="bad request for b")
    chunks = agents.chat(PIPE, CONVERSATION, stream=True, session_id=socket.sid)
    assert agents.text_of(chunks) == FINAL
    socket.wait_for("status", where=lambda d: d.get("done"))
    assert any("dropped (moa-b: HTTP 400: bad request for b)" in s["description"] for s in statuses(socket))
    assert len(fake_openai.chat_requests("moa-b")) == 1  # failed in layer 1: not asked in layer 2
    done = statuses(socket)[-1]
    assert done["done"] and done["description"].startswith(
        "Mixture of Agents: 2 layers, 2 of 3 agents answered, combined by moa-agg in "
    )

    socket.clear()
    set_valves(agents, min_successful_agents=3)
    chunks = agents.chat(PIPE, CONVERSATION, stream=True, session_id=socket.sid)
    errors = [c["error"] for c in chunks if "error" in c]
    assert len(errors) == 1
    assert errors[0]["detail"].startswith("Mixture of Agents stopped in layer 1 of 2: 2 of 3 agents answered")
    done = socket.wait_for("status", where=lambda d: d.get("done"))
    assert done["description"].startswith("Stopped: ")

    # not streaming, the failure is raised by pipe(): API callers get it as the error detail
    response = agents.api("POST", "/api/chat/completions", json={"model": PIPE, "messages": CONVERSATION})
    assert response.status_code == 200
    assert response.json()["error"]["detail"].startswith("Mixture of Agents stopped in layer 1 of 2")


def test_failed_layer_in_a_ui_chat_keeps_the_blocks_and_shows_the_error(agents, fake_openai, socket):
    for model in ("moa-a", "moa-b"):
        fake_openai.set(model, fail_status=400, fail_message=f"{model} refuses")
    set_valves(agents, show_intermediate=True)
    completion = agents.chat_background(PIPE, CONVERSATION, socket)
    content = completion["content"]
    assert content.startswith('<details type="mixture_of_agents" done="true">\n<summary>Layer 1 of 2: 0 of 3')
    errors = [d["error"] for d in socket.of_type("chat:completion") if isinstance(d, dict) and d.get("error")]
    assert errors == [{"detail": errors[0]["detail"]}]
    assert errors[0]["detail"].startswith("Mixture of Agents stopped in layer 1 of 2: 0 of 3 agents answered")
    assert not fake_openai.chat_requests("moa-agg")


VALVE_WORDS = ("valve", "models`", "aggregator_model", "Agent models", "Aggregator model", "For administrators")


def test_a_user_without_access_to_an_agent_model_gets_a_clear_message(agents, fake_openai, socket_for):
    agents.grant_model(PIPE)
    other = socket_for(agents.user)
    result = agents.chat(PIPE, CONVERSATION, token=agents.user, session_id=other.sid)
    detail = result["error"]["detail"]
    assert detail == (
        "Mixture of Agents cannot use the model `moa-a`: you do not have access to it. "
        "Ask an administrator to give you access to the model `moa-a`."
    )
    chunks = agents.chat(PIPE, CONVERSATION, stream=True, token=agents.user)
    assert chunks[-1]["error"]["detail"] == detail
    assert exception_names(detail) == [] and not [w for w in VALVE_WORDS if w in detail]
    assert fake_openai.chat_requests() == []  # refused before any model was called
    # the administrator's advice went to the server log
    assert 'Give this user access to the model `moa-a`, or change the "Agent models"' in agents.log_path.read_text()

    for model in ("moa-a", "moa-b", "moa-agg"):
        agents.grant_model(model)
    assert agents.text_of(agents.chat(PIPE, CONVERSATION, token=agents.user)) == FINAL


@pytest.mark.parametrize(
    ("valves", "message"),
    [
        ({"models": []}, "no agent models"),
        ({"models": ["moa-a", "no-such-model"]}, "cannot use the model `no-such-model`"),
        ({"aggregator_model": PIPE}, f"cannot use `{PIPE}`: that is this mixture itself"),
    ],
)
def test_misconfiguration_names_the_model(agents, fake_openai, valves, message):
    set_valves(agents, **valves)
    result = agents.chat(PIPE, CONVERSATION)
    assert message in result["error"]["detail"]
    assert fake_openai.chat_requests() == []


def task_replies(body: dict) -> str:
    """moa-agg as a model that follows Open WebUI 0.12.4's task prompts (open_webui/config.py)."""
    prompt = body["messages"][-1]["content"] if body.get("messages") else ""
    if isinstance(prompt, str) and prompt.startswith("### Task:"):
        # 0.12.4's follow-up prompt, and the one of 0.6.43 to 0.10.2
        if "Predict 3-5 useful messages" in prompt or "Suggest 3-5 relevant follow-up" in prompt:
            return '{"follow_ups": ["Name a third colour.", "Why is green calming?"]}'
        if '"tags"' in prompt:
            return '<think>colours { maybe art }</think>{"tags": ["Colours", "Art"]}'
        if '"title"' in prompt:
            return '{"title": "Naming Colours"}'
    return FINAL


def wait_until(check, timeout: float = 20.0):
    """Poll `check()` until it returns something truthy (background tasks end after the reply)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


ASK = "Name a colour."


def test_follow_ups_title_and_tags_of_a_saved_ui_chat(agents, fake_openai, socket):
    """As the 0.12.4 UI sends it: a saved chat, then the reply with the background tasks switched on."""
    fake_openai.set("moa-agg", reply=task_replies, chunk_size=3)
    user_id, reply_id = str(uuid.uuid4()), str(uuid.uuid4())
    history = {
        user_id: {"id": user_id, "parentId": None, "childrenIds": [reply_id], "role": "user", "content": ASK},
        reply_id: {"id": reply_id, "parentId": user_id, "childrenIds": [], "role": "assistant", "content": ""},
    }
    chat = agents.ok(
        "POST",
        "/api/v1/chats/new",
        json={"chat": {"title": "New Chat", "history": {"messages": history, "currentId": reply_id}, "messages": []}},
    )
    response = agents.api(
        "POST",
        "/api/chat/completions",
        json={
            "model": PIPE,
            "messages": [{"role": "user", "content": ASK}],
            "stream": True,
            "session_id": socket.sid,
            "chat_id": chat["id"],
            "id": reply_id,
            "parent_message": history[user_id],  # 0.6.43 requires it for a saved chat (the UI sends it)
            "background_tasks": {"title_generation": True, "tags_generation": True, "follow_up_generation": True},
        },
    )
    assert response.status_code == 200, response.text
    assert socket.wait_done(60, message_id=reply_id)
    follow_ups = socket.wait_for("chat:message:follow_ups", 30)
    assert follow_ups == {"follow_ups": ["Name a third colour.", "Why is green calming?"]}

    def saved() -> dict | None:
        stored = agents.ok("GET", f"/api/v1/chats/{chat['id']}")
        message = stored["chat"]["history"]["messages"][reply_id]
        tags = (stored.get("meta") or {}).get("tags")
        return stored if message.get("followUps") and stored["title"] == "Naming Colours" and tags else None

    stored = wait_until(saved)
    assert stored, agents.ok("GET", f"/api/v1/chats/{chat['id']}")
    message = stored["chat"]["history"]["messages"][reply_id]
    # 0.10.2 stores the reply as `output` items only (its `content` stays empty)
    assert (message.get("content") or versions.message_text(message.get("output") or [])) == FINAL
    assert message["followUps"] == ["Name a third colour.", "Why is green calming?"]  # shown under the reply
    # the reasoning before the JSON was dropped (0.6.43 stores the tags in another order)
    assert sorted(stored["meta"]["tags"]) == ["art", "colours"]
    # each task was one plain aggregator call: not the mixture, no tools, no stream
    tasks = [r for r in fake_openai.chat_requests() if r["messages"][-1]["content"].startswith("### Task:")]
    assert len(tasks) == 3 and {r["model"] for r in tasks} == {"moa-agg"}
    assert all(r["stream"] is False and "tools" not in r for r in tasks)
    assert len(fake_openai.chat_requests()) == 6 + 1 + 3  # the mixture's reply, then the three tasks
    agents.ok("DELETE", f"/api/v1/chats/{chat['id']}")


def test_title_task_is_one_aggregator_call(agents, fake_openai):
    fake_openai.set("moa-agg", reply='{"title": "Colours"}')
    response = agents.ok(
        "POST",
        "/api/v1/tasks/title/completions",
        json={"model": PIPE, "messages": CONVERSATION[1:], "chat_id": None},
    )
    assert response["choices"][0]["message"]["content"] == '{"title": "Colours"}'
    assert [r["model"] for r in fake_openai.chat_requests()] == ["moa-agg"]


# --- the Pipelines variant, driven like open-webui/pipelines main.py ---------------------------------


def test_pipeline_as_the_pipelines_server_drives_it(fake_openai, tmp_path):
    fake_openai.clear()
    fake_openai.set("moa-a", reply="Green.")
    fake_openai.set("moa-b", reply="Red.")
    fake_openai.set("moa-agg", reply=FINAL, chunk_size=3)
    # built alone: a half-written plugin elsewhere in the tree must not break this test
    plugin = build.build_plugin(ROOT, "pipelines", "plugins/pipelines/mixture_of_agents.py", {})
    # the server imports PIPELINES_DIR/<stem>.py as module <stem> and instantiates Pipeline()
    path = tmp_path / "mixture_of_agents.py"
    path.write_text(plugin.text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("mixture_of_agents", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pipeline = module.Pipeline()
    # the server merges valves.json over the defaults and rebuilds the Valves
    stored = {
        "models": ["moa-a", "moa-b"],
        "aggregator_model": "moa-agg",
        "emit_interval": 0,
        "openai_api_base": fake_openai.url,
        "openai_api_key": "sk-fake-openai",
    }
    pipeline.valves = pipeline.valves.__class__(**(pipeline.valves.model_dump() | stored))
    body = {"model": PIPE, "messages": CONVERSATION, "stream": True, "user": {"id": "u", "role": "user"}}

    def run() -> list:
        result = pipeline.pipe(user_message="Another?", model_id=PIPE, messages=CONVERSATION, body=body)
        return list(result)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:  # run_in_threadpool
        out = pool.submit(run).result(timeout=60)
    assert all(isinstance(c, str) or (isinstance(c, dict) and set(c) == {"event"}) for c in out)
    assert "".join(c for c in out if isinstance(c, str)) == FINAL
    events = [c["event"] for c in out if isinstance(c, dict)]
    assert {e["type"] for e in events} == {"status"}
    assert events[-1]["data"]["done"] is True
    assert all(json.loads(json.dumps(c)) == c for c in out if isinstance(c, dict))  # one JSON `data:` line each
    assert len(fake_openai.chat_requests()) == 7
    headers = [r.headers["authorization"] for r in fake_openai.requests_to("/chat/completions")]
    assert set(headers) == {"Bearer sk-fake-openai"}


# --- upstream text that is not an answer, or carries a key ------------------------------------------

LEAKED = "sk-live-0123456789abcdef"
KEY_ERROR = {"error": {"message": f"proxy refused key Bearer {LEAKED}"}}


def test_a_body_that_is_not_json_is_a_dropped_agent(agents, fake_openai, socket):
    fake_openai.set("moa-b", fail_mode="garbage")  # HTTP 200 with "<html>not json {"
    set_valves(agents, num_layers=1)
    chunks = agents.chat(PIPE, CONVERSATION, stream=True, session_id=socket.sid)
    assert agents.text_of(chunks) == FINAL
    done = socket.wait_for("status", where=lambda d: d.get("done"))
    assert done["description"].startswith("Mixture of Agents: 1 layer, 2 of 3 agents answered")
    assert any("moa-b: the answer could not be read" in s["description"] for s in statuses(socket))
    assert "not json" not in json.dumps(fake_openai.chat_requests("moa-agg"))


def test_an_aggregator_stream_cut_midway_keeps_the_text_and_ends_with_a_note(agents, fake_openai, socket):
    fake_openai.set("moa-agg", fail_mode="cut")  # one chunk ("Half"), then the connection closes
    set_valves(agents, num_layers=1, max_retries=0)
    log_before = len(agents.log_path.read_text())
    chunks = agents.chat(PIPE, CONVERSATION, stream=True, session_id=socket.sid)
    assert not [c for c in chunks if "error" in c]
    text = agents.text_of(chunks)
    assert text.startswith("Half\n\n*(The reply broke off here: the aggregator moa-agg failed")
    assert exception_names(text) == []
    done = socket.wait_for("status", where=lambda d: d.get("done"))
    assert done["description"].endswith("; the reply broke off")
    log = agents.log_path.read_text()[log_before:]
    ours = [line for line in log.splitlines() if "broke off after" in line]
    assert len(ours) == 1 and "Traceback" not in log


@pytest.mark.parametrize(
    "changes",
    [
        {"fail_status": 200, "fail_body": json.dumps(KEY_ERROR)},  # an HTTP 200 body that is an error
        {"fail_status": 502, "fail_message": f"proxy refused key Bearer {LEAKED}"},
    ],
    ids=["http 200 error body", "http 502"],
)
def test_no_key_shape_reaches_statuses_or_the_reply(agents, fake_openai, socket, changes):
    fake_openai.set("moa-b", **changes)
    fake_openai.set("moa-agg", stream_items=["Kept. ", KEY_ERROR])  # an SSE error line after text
    set_valves(agents, num_layers=1, show_intermediate=True, max_retries=0)
    chunks = agents.chat(PIPE, CONVERSATION, stream=True, session_id=socket.sid)
    socket.wait_for("status", where=lambda d: d.get("done"))
    shown = json.dumps(chunks) + json.dumps(socket.events)
    assert "moa-b: proxy refused key Bearer ***" in shown or "moa-b: HTTP 502: proxy refused key Bearer ***" in shown
    assert LEAKED not in shown and "0123456789abcdef" not in shown
