"""The Mixture-of-Agents pipe for Open WebUI, built and loaded like Open WebUI loads it.

The pipe's `host` is a fake with ChatHost's methods (shared/host.py): a model registry, the
access check, and a chat call that behaves like Open WebUI 0.12.4's open_webui/utils/chat.py and
routers/openai.py (its three return shapes, "Model not found", HTTP errors) and proxies to the
loopback fake OpenAI server.
"""

import asyncio
import copy
import json
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse

from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import load_built
from tests.unit.plugins.strategies import bodies

pipe_mod = load_built("mixture_of_agents", kind="pipe")

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "2"},
    {"role": "user", "content": "Another one?"},
]
ADMIN = SimpleNamespace(id="admin-1", role="admin")
USER = SimpleNamespace(id="user-1", role="user")
AGENTS = ("m-a", "m-b", "m-c")


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(models=(*AGENTS, "m-agg")) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake):
    fake.clear()
    for model in list(fake.behaviours):
        fake.reset(model)
    fake.set("m-agg", reply="The final answer.", chunk_size=4)
    fake.strict_models = False
    fake.api_key = None


class FakeOpenWebUI:
    """ChatHost as the pipe uses it, in front of the fake OpenAI server.

    `early_check=False` is a server whose access check cannot tell (may_use_model says yes):
    the chat call still refuses, as Open WebUI's does.
    """

    def __init__(self, fake: FakeOpenAI, *, early_check: bool = True) -> None:
        self.fake = fake
        self.registry = {m: {"id": m, "owned_by": "openai"} for m in (*AGENTS, "m-agg")}
        self.registry["mixture_of_agents"] = {"id": "mixture_of_agents", "pipe": {"type": "pipe"}}
        self.forbidden: set[str] = set()
        self.early_check = early_check
        self.forms: list[dict] = []
        self.request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(MODELS=self.registry)))
        self.request.state = SimpleNamespace()

    async def get_user(self, user_id: str) -> Any:
        return {"admin-1": ADMIN, "user-1": USER}.get(user_id)

    def models(self, request: Any) -> dict[str, Any] | None:
        assert request is self.request
        return self.registry

    def allowed(self, user: Any, model: dict) -> bool:
        return not (user.role == "user" and model["id"] in self.forbidden)

    async def may_use_model(self, user: Any, model: dict) -> bool:
        return self.allowed(user, model) if self.early_check else True

    async def chat_completion(self, request: Any, form: dict, user: Any) -> Any:
        self.forms.append(copy.deepcopy(form))
        model = self.registry.get(form["model"])
        if model is None or not self.allowed(user, model):
            raise pipe_mod.ModelNotFound(form["model"])
        kind = model.get("kind")
        if kind == "http-exception":
            raise pipe_mod.HostRefusal(500, "Open WebUI: Server Connection Error")
        if kind == "pipe-shapes":  # a pipe model: str SSE lines when streaming, a dict otherwise
            text = "piped answer"
            if not form.get("stream"):
                return {"choices": [{"message": {"role": "assistant", "content": text}}]}

            async def lines():
                for piece in ("piped ", "answer"):
                    yield f"data: {json.dumps({'choices': [{'delta': {'content': piece}}]})}\n\n"
                yield "data: [DONE]"

            return StreamingResponse(lines(), media_type="text/event-stream")
        return await self.proxy(form)

    async def proxy(self, form: dict) -> Any:
        """What routers/openai.py returns: StreamingResponse, dict (or text), JSON/PlainTextResponse on HTTP
        errors, an HTTPException (here HostRefusal) when the connection fails."""
        payload = {k: v for k, v in form.items() if k != "metadata"}
        session = aiohttp.ClientSession()
        try:
            response = await session.post(f"{self.fake.url}/chat/completions", json=payload)
        except aiohttp.ClientError:  # the router turns a transport failure into this HTTPException
            await session.close()
            raise pipe_mod.HostRefusal(500, "Open WebUI: Server Connection Error") from None
        except BaseException:
            await session.close()
            raise
        if response.status < 400 and "text/event-stream" in response.headers.get("Content-Type", ""):

            async def lines():
                try:
                    async for line in response.content:
                        yield line
                finally:
                    response.close()
                    await session.close()

            return StreamingResponse(lines(), status_code=response.status, media_type="text/event-stream")
        try:
            text = await response.text()
        except aiohttp.ClientError:
            raise pipe_mod.HostRefusal(500, "Open WebUI: Server Connection Error") from None
        finally:
            response.close()
            await session.close()
        try:
            body = json.loads(text)
        except ValueError:  # the router passes a body that is not JSON on as text
            if response.status >= 400:
                return PlainTextResponse(status_code=response.status, content=text)
            return text
        if response.status >= 400:
            return JSONResponse(status_code=response.status, content=body)
        return body


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict] = []

    async def __call__(self, event: dict) -> None:
        self.events.append(event)

    def descriptions(self) -> list[str]:
        return [e["data"]["description"] for e in self.events]


def assert_valid_statuses(events: list[dict]) -> None:
    assert events
    for event in events:
        assert event["type"] == "status"
        assert set(event["data"]) == {"description", "done", "hidden"}
    assert events[-1]["data"]["done"] is True


def make_pipe(**valves: Any) -> Any:
    pipe = pipe_mod.Pipe()
    values = {"models": list(AGENTS), "aggregator_model": "m-agg", "emit_interval": 0} | valves
    pipe.valves = pipe.Valves(**values)
    return pipe


async def run_pipe(
    pipe: Any,
    owui: FakeOpenWebUI,
    body: dict | None = None,
    *,
    user: Any = ADMIN,
    recorder: Recorder | None = None,
    task: str | None = None,
    metadata: dict | None = None,
) -> Any:
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": True} if body is None else body
    pipe.host = owui
    result = await pipe.pipe(
        body=body,
        __user__={"id": user.id, "role": user.role},
        __request__=owui.request,
        __event_emitter__=recorder,
        __task__=task,
        __metadata__=metadata or {},
    )
    if isinstance(result, str):
        return result
    return [piece async for piece in result]


@pytest.fixture
def owui(fake):
    return FakeOpenWebUI(fake)


# --- the Open WebUI pipe ------------------------------------------------------------------------


def test_the_pipe_keeps_an_open_webui_host() -> None:
    assert isinstance(pipe_mod.Pipe().host, pipe_mod.ChatHost)


async def test_pipe_streams_the_aggregated_answer_with_statuses(fake, owui) -> None:
    recorder = Recorder()
    pieces = await run_pipe(make_pipe(), owui, recorder=recorder)
    assert pieces == ["The ", "fina", "l an", "swer", "."]  # streamed as the fake sends it
    assert_valid_statuses(recorder.events)
    assert recorder.descriptions()[-2] == "Aggregating 3 answers with m-agg"
    requests = fake.chat_requests()
    assert sorted(r["model"] for r in requests[:3]) == list(AGENTS)  # layer 1, concurrently
    assert sorted(r["model"] for r in requests[3:6]) == list(AGENTS)  # layer 2
    assert requests[-1]["model"] == "m-agg" and requests[-1]["stream"] is True
    assert all(r["messages"] == CONVERSATION for r in requests[:3])  # the whole history, system prompt too
    layer2 = requests[3]["messages"][0]["content"]
    assert layer2.startswith("Be brief.\n\n") and "m-a says: Another one?" in layer2


async def test_pipe_sends_callers_and_sampling_params_but_not_tools(fake, owui) -> None:
    body = {
        "model": "mixture_of_agents",
        "messages": CONVERSATION,
        "stream": True,
        "temperature": 0.3,
        "tools": [{"type": "function", "function": {"name": "x"}}],
    }
    await run_pipe(make_pipe(num_layers=1), owui, body)
    for form in owui.forms:
        assert form["temperature"] == 0.3 and "tools" not in form
        assert form["metadata"] == {"mixture_of_agents_callers": ["mixture_of_agents"]}


async def test_pipe_handles_every_return_shape(fake, owui) -> None:
    owui.registry["piped"] = {"id": "piped", "pipe": {"type": "pipe"}, "kind": "pipe-shapes"}
    owui.registry["crashy"] = {"id": "crashy", "kind": "http-exception"}
    fake.set("m-b", fail_status=429, fail_times=1)  # JSONResponse 429, then fine
    fake.set("m-c", fail_status=400)  # JSONResponse 400: dropped
    recorder = Recorder()
    pipe = make_pipe(models=["piped", "m-b", "m-c", "crashy"], num_agents_per_layer=4, num_layers=1, max_retries=1)
    pipe.valves.aggregator_model = "piped"
    pieces = await run_pipe(pipe, owui, recorder=recorder)
    assert pieces == ["piped ", "answer"]
    references = owui.forms[-1]["messages"][0]["content"]
    assert "piped answer" in references and "m-b says" in references
    assert "m-c says" not in references
    text = " ".join(recorder.descriptions())
    assert "HTTP 400: The fake server was told to fail." in text
    assert "crashy" in text and "Server Connection Error" in text
    assert len(fake.chat_requests("m-b")) == 2


async def test_pipe_non_stream_joins_the_answer(fake, owui) -> None:
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": False}
    pieces = await run_pipe(make_pipe(num_layers=1), owui, body)
    assert "".join(pieces) == "The final answer."


async def test_a_non_stream_failure_is_raised_by_pipe_itself(fake, owui) -> None:
    """Open WebUI 0.6.43 loses an exception raised while it reads a returned generator (the caller
    gets `null`): not streaming, pipe() gathers the answer and raises, and returns a string."""
    pipe = make_pipe(num_layers=1)
    pipe.host = owui
    kwargs = {"__user__": {"id": ADMIN.id, "role": ADMIN.role}, "__request__": owui.request, "__metadata__": {}}
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": False}
    assert await pipe.pipe(body=body, **kwargs) == "The final answer."
    for model in AGENTS:
        fake.set(model, fail_status=400)
    with pytest.raises(pipe_mod.MoaError, match="stopped in layer 1"):
        await pipe.pipe(body=body, **kwargs)


async def test_task_calls_use_only_the_aggregator(fake, owui) -> None:
    fake.set("m-agg", reply='{"title": "Primes"}')
    recorder = Recorder()
    body = {"model": "mixture_of_agents", "messages": [{"role": "user", "content": "### Task: title"}], "stream": False}
    answer = await run_pipe(make_pipe(), owui, body, task="title_generation", recorder=recorder)
    assert answer == '{"title": "Primes"}'
    assert [r["model"] for r in fake.chat_requests()] == ["m-agg"]
    assert recorder.events == []


@pytest.mark.parametrize("task", ["title_generation", "tags_generation", "follow_up_generation"])
async def test_a_task_is_one_plain_call_that_tells_the_aggregator_it_is_a_task(fake, owui, task) -> None:
    reply = '<think>{"follow_ups": ["no"]}</think>{"follow_ups": ["Is 3 prime?", "Show me 5 primes"]}'
    fake.set("m-agg", reply=reply)
    prompt = "### Task:\nPredict 3-5 useful messages this user might naturally send next ..."
    body = {"model": "mixture_of_agents", "messages": [{"role": "user", "content": prompt}], "stream": False}
    body["tools"] = [{"type": "function", "function": {"name": "x"}}]
    answer = await run_pipe(make_pipe(), owui, body, task=task)
    assert answer == '{"follow_ups": ["Is 3 prime?", "Show me 5 primes"]}'  # what Open WebUI 0.12.4 parses
    [form] = owui.forms
    assert form["stream"] is False and "tools" not in form
    # a pipe aggregator (the pack's Gemini pipe) reads `task` as __task__: no thinking, no tools
    assert form["metadata"] == {"mixture_of_agents_callers": ["mixture_of_agents"], "task": task}


@pytest.mark.parametrize(
    ("valves", "user", "message"),
    [
        ({"models": []}, ADMIN, 'no agent models to ask yet. (For administrators: Set the "Agent models" valve'),
        ({"models": []}, USER, "no agent models to ask yet. Ask an administrator to set it up."),
        ({"models": ["m-a", "nope"]}, ADMIN, "cannot use the model `nope`: Open WebUI has no model with this id"),
        ({"aggregator_model": "gone"}, ADMIN, "cannot use the model `gone`"),
        ({"models": ["m-a", "m-b"]}, USER, "cannot use the model `m-b`: you do not have access to it"),
        ({"aggregator_model": "mixture_of_agents"}, ADMIN, "that is this mixture itself"),
        ({"models": ["moa-preset"]}, ADMIN, "that is this mixture itself"),
    ],
)
async def test_misconfiguration_raises_before_streaming_naming_the_model(fake, owui, valves, user, message) -> None:
    owui.forbidden = {"m-b"}
    owui.registry["moa-preset"] = {"id": "moa-preset", "info": {"base_model_id": "mixture_of_agents"}}
    with pytest.raises(pipe_mod.MoaError) as raised:
        await run_pipe(make_pipe(**valves), owui, user=user)
    assert message in str(raised.value)
    assert fake.chat_requests() == []  # nothing was called


async def test_access_is_enforced_by_the_call_when_the_early_check_cannot_tell(fake) -> None:
    owui = FakeOpenWebUI(fake, early_check=False)
    owui.forbidden = {"m-agg"}
    pieces = await run_pipe(make_pipe(num_layers=1), owui, user=USER)
    error = pieces[-1]
    assert error == {
        "error": {
            "detail": "Mixture of Agents cannot use the model `m-agg`: it does not exist or you do not have access "
            "to it. Ask an administrator to give you access to the model `m-agg`."
        }
    }


async def test_a_loop_through_another_model_is_refused(fake, owui) -> None:
    with pytest.raises(pipe_mod.MoaError, match="called by itself"):
        await run_pipe(make_pipe(), owui, metadata={"mixture_of_agents_callers": ["mixture_of_agents"]})


async def test_layer_failure_mid_stream_keeps_the_blocks_and_ends_with_an_error_line(fake, owui) -> None:
    for model in AGENTS:
        fake.set(model, fail_status=400)
    recorder = Recorder()
    pieces = await run_pipe(make_pipe(show_intermediate=True), owui, recorder=recorder)
    assert pieces[0].startswith('<details type="mixture_of_agents" done="true">\n<summary>Layer 1 of 2: 0 of 3')
    assert pieces[-1]["error"]["detail"].startswith("Mixture of Agents stopped in layer 1 of 2: 0 of 3 agents")
    assert_valid_statuses(recorder.events)
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": False}
    with pytest.raises(pipe_mod.MoaError, match="stopped in layer 1"):
        await run_pipe(make_pipe(), owui, body)


async def test_history_from_earlier_mixture_replies_is_cleaned(fake, owui) -> None:
    block = '<details type="mixture_of_agents" done="true">\n<summary>Layer 1 of 1</summary>\n\nold\n</details>\n\n'
    messages = [*CONVERSATION[:2], {"role": "assistant", "content": block + "7"}, CONVERSATION[3]]
    body = {"model": "mixture_of_agents", "messages": messages, "stream": True}
    await run_pipe(make_pipe(num_layers=1), owui, body)
    assert fake.chat_requests()[0]["messages"][2] == {"role": "assistant", "content": "7"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=bodies,
    models=st.lists(st.sampled_from([*AGENTS, "unknown", "mixture_of_agents"]), max_size=4),
    aggregator=st.sampled_from(["", "m-agg", "unknown"]),
    layers=st.integers(1, 2),
    agents=st.integers(1, 4),
    minimum=st.integers(1, 4),
    show=st.booleans(),
    failing=st.sets(st.sampled_from([*AGENTS, "m-agg"])),
    task=st.sampled_from([None, "title_generation"]),
    user=st.sampled_from([ADMIN, USER]),
)
def test_pipe_any_valves_and_body_give_an_answer_or_a_clear_error(
    fake, owui, body, models, aggregator, layers, agents, minimum, show, failing, task, user
) -> None:
    fake.clear()
    for model in (*AGENTS, "m-agg"):
        fake.set(model, fail_status=400 if model in failing else None)
    owui.forbidden = {"m-c"}
    pipe = make_pipe(
        models=models,
        aggregator_model=aggregator,
        num_layers=layers,
        num_agents_per_layer=agents,
        min_successful_agents=minimum,
        show_intermediate=show,
        max_retries=0,
    )
    recorder = Recorder()

    async def run() -> None:
        try:
            result = await run_pipe(pipe, owui, body, user=user, task=task, recorder=recorder)
        except pipe_mod.MoaError as exc:
            assert str(exc)
            return
        if isinstance(result, list):
            for piece in result:
                assert isinstance(piece, str) or set(piece) == {"error"}
        if recorder.events:
            assert_valid_statuses(recorder.events)

    asyncio.run(run())


async def test_an_access_check_that_fails_refuses_the_model(fake, owui) -> None:
    async def broken(user: Any, model: dict) -> bool:
        raise Exception("Model not found")  # how Open WebUI 0.12.4's check_model_access refuses

    owui.may_use_model = broken
    with pytest.raises(pipe_mod.MoaError, match="cannot use the model `m-a`: you do not have access to it"):
        await run_pipe(make_pipe(), owui, user=USER)
    assert fake.chat_requests() == []


async def test_an_unknown_user_is_asked_to_sign_in_again(fake, owui) -> None:
    stranger = SimpleNamespace(id="nobody", role="user")
    with pytest.raises(pipe_mod.MoaError, match="could not load your user account"):
        await run_pipe(make_pipe(), owui, user=stranger)


def test_call_errors_from_the_host_are_recognised_by_type() -> None:
    unknown = pipe_mod.call_error("m", pipe_mod.ModelNotFound("m"))
    assert isinstance(unknown, pipe_mod.ModelUnavailable)
    assert unknown.reason == "it does not exist or you do not have access to it"
    refused = pipe_mod.call_error("m", pipe_mod.HostRefusal(503, "busy"))
    assert refused.reason == "HTTP 503: busy" and refused.retryable
    other = pipe_mod.call_error("m", Exception("Model not found"))  # not from the host: just a failure
    assert type(other) is pipe_mod.ModelCallError and not other.retryable
    assert pipe_mod.call_error("m", RuntimeError()).reason == "the call failed without saying why"


# --- upstream text that is not an answer, or carries a key -------------------------------------------

LEAKED_KEY = "sk-live-0123456789abcdef"
KEY_ERROR = {"error": {"message": f"proxy refused key Bearer {LEAKED_KEY}", "code": 502}}
# Each way an upstream can put a key in text the pipe shows: (model, FakeOpenAI.set changes)
KEY_PATHS = {
    "HTTP 500 body": ("m-b", {"fail_status": 500, "fail_message": f"bad key Bearer {LEAKED_KEY}"}),
    "HTTP 200 error body": ("m-b", {"fail_status": 200, "fail_body": json.dumps(KEY_ERROR)}),
    "HTTP 200 body not JSON": ("m-b", {"fail_status": 200, "fail_body": f"<html>key={LEAKED_KEY}</html>"}),
    "aggregator SSE error line": ("m-agg", {"stream_items": [KEY_ERROR]}),
    "aggregator SSE line not JSON": ("m-agg", {"stream_items": ["Half", {"x": f"Bearer {LEAKED_KEY}"}]}),
}


@pytest.mark.parametrize("path", KEY_PATHS)
@pytest.mark.parametrize("user", [ADMIN, USER], ids=["admin", "user"])
async def test_no_key_reaches_statuses_blocks_errors_or_the_log(fake, owui, path, user, caplog) -> None:
    model, changes = KEY_PATHS[path]
    fake.set(model, **changes)
    recorder = Recorder()
    pipe = make_pipe(num_layers=1, show_intermediate=True, max_retries=0)
    try:
        shown = await run_pipe(pipe, owui, user=user, recorder=recorder)
    except pipe_mod.MoaError as exc:
        shown = [str(exc)]
    everything = json.dumps(shown) + json.dumps(recorder.events) + caplog.text
    assert LEAKED_KEY not in everything and "0123456789abcdef" not in everything


async def test_a_body_that_is_not_json_is_a_failed_agent_not_an_answer(fake, owui) -> None:
    fake.set("m-b", fail_mode="garbage")  # HTTP 200, "<html>not json {"
    recorder = Recorder()
    await run_pipe(make_pipe(num_layers=1, max_retries=0), owui, recorder=recorder)
    assert "Layer 1/1: 2/3 agents answered, 1 dropped (m-b: the answer could not be read)" in recorder.descriptions()
    assert "not json" not in owui.forms[-1]["messages"][0]["content"]  # the aggregator never reads it


async def test_a_stream_that_breaks_keeps_its_text_and_ends_with_a_note(fake, owui, caplog) -> None:
    fake.set("m-agg", fail_mode="cut")  # one chunk, then the connection closes mid-stream
    recorder = Recorder()
    pieces = await run_pipe(make_pipe(num_layers=1, max_retries=0), owui, user=ADMIN, recorder=recorder)
    assert pieces == ["Half", "\n\n*(The reply broke off here: the aggregator m-agg failed (the answer broke off).)*"]
    assert recorder.descriptions()[-1].endswith("; the reply broke off")
    [line] = [r for r in caplog.records if "broke off" in r.getMessage()]
    assert line.exc_info is None and "\n" not in line.getMessage()
    assert "Traceback" not in caplog.text


async def test_the_reply_ends_with_a_note_at_its_longest(fake, owui) -> None:
    fake.set("m-agg", reply="x" * 3000, chunk_size=700)
    pieces = await run_pipe(make_pipe(num_layers=1, max_reply_chars=2000), owui)
    text = "".join(pieces)
    assert text.startswith("x" * 2000 + "\n\n*(The reply was cut here") and text.split("\n")[0] == "x" * 2000
    assert text.endswith("longest reply this mixture sends, 2,000 characters.)*")
