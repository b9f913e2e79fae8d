"""The templates, built and loaded like Open WebUI loads them, with recorded events."""

import logging

import pytest

from tests.helpers import load_built


class Events:
    def __init__(self, answers=None):
        self.events = []
        self.calls = []
        self.answers = list(answers or [])

    async def emit(self, event):
        self.events.append(event)

    async def call(self, event):
        self.calls.append(event)
        return self.answers.pop(0) if self.answers else None

    def types(self):
        return [e["type"] for e in self.events]


async def collect(gen):
    return "".join([chunk async for chunk in gen])


async def test_pipe_streams_text_and_reports():
    pipe = load_built("template_pipe").Pipe()
    rec = Events()
    body = {"model": "template_pipe", "messages": [{"role": "user", "content": "hi there"}], "stream": True}
    assert await collect(pipe.pipe(body, __event_emitter__=rec.emit)) == "echo: hi there "
    assert rec.types() == ["status", "notification", "status"]
    assert rec.events[-1]["data"]["done"] is True


async def test_pipe_task_call_is_plain_and_silent():
    pipe = load_built("template_pipe").Pipe()
    rec = Events()
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "name this"}]}]}
    assert await collect(pipe.pipe(body, __event_emitter__=rec.emit, __task__="title_generation")) == "name this"
    assert rec.events == []


async def test_manifold_lists_and_dispatches_on_first_dot():
    module = load_built("template_manifold")
    pipe = module.Pipe()
    assert pipe.pipes() == [
        {"id": "upper", "name": "Template/Upper case"},
        {"id": "lower", "name": "Template/Lower case"},
    ]
    body = {"model": "my.custom.id.upper", "messages": [{"role": "user", "content": "MiXed"}]}
    assert module.sub_model(body["model"]) == "custom.id.upper"
    body["model"] = "any_id.lower"
    assert await pipe.pipe(body) == "mixed"
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        await pipe.pipe({"model": "x.nope", "messages": [{"content": "a"}]})


async def test_filter_inlet_stream_outlet():
    module = load_built("template_filter")
    flt = module.Filter()
    flt.valves.MARK = " [checked]"
    rec = Events()
    body = {"messages": [{"role": "user", "content": "a"}]}
    assert await flt.inlet(body, __event_emitter__=rec.emit) is body
    chunk = {"choices": [{"delta": {"content": "x"}}]}
    assert flt.stream(chunk) is chunk
    out = {
        "messages": [
            {
                "role": "assistant",
                "content": "hello",
                "output": [{"type": "message", "content": [{"type": "output_text", "text": "hello"}]}],
            }
        ]
    }
    result = await flt.outlet(out, __event_emitter__=rec.emit)
    reply = result["messages"][-1]
    assert reply["content"] == "hello [checked]"
    assert reply["output"][0]["content"][0]["text"] == "hello [checked]"
    assert [e["data"]["description"] for e in rec.events] == ["Filter inlet saw 1 messages", "Filter outlet done"]


BODY = {"id": "m2", "messages": [{"id": "m1", "content": "q"}, {"id": "m2", "content": "the answer"}]}


async def test_action_asks_confirms_and_reports():
    action = load_built("template_action").Action()
    rec = Events(answers=["my note", True])
    assert await action.action(BODY, __event_emitter__=rec.emit, __event_call__=rec.call) is None
    assert [c["type"] for c in rec.calls] == ["input", "confirmation"]
    assert rec.calls[0]["data"]["value"] == "the answer"
    assert rec.events[0] == {"type": "notification", "data": {"type": "success", "content": "Noted: my note"}}
    assert rec.events[-1]["data"]["done"] is True


@pytest.mark.parametrize(
    ("answers", "notice"),
    [
        ([False], "Nothing was done."),
        ([None], "Nothing was done."),
        ([{"error": "Client session disconnected."}], "Client session disconnected: nothing was done."),
        (["note", False], "Nothing was done."),
        (["note", None], "Nothing was done."),
    ],
)
async def test_action_cancel_outcomes(answers, notice):
    action = load_built("template_action").Action()
    rec = Events(answers=answers)
    await action.action(BODY, __event_emitter__=rec.emit, __event_call__=rec.call)
    assert rec.events[0] == {"type": "notification", "data": {"type": "info", "content": notice}}
    assert rec.events[-1]["data"] == {"description": "Cancelled", "done": True, "hidden": False}


async def test_tool_counts_and_refuses_long_text():
    tools = load_built("template_tool").Tools()
    rec = Events()
    assert await tools.count_words("a b A", __event_emitter__=rec.emit) == "3 words"
    assert await tools.count_words("a b A", unique=True) == "2 distinct words"
    tools.valves.MAX_CHARS = 2
    assert "longer than 2 characters" in await tools.count_words("a b A")
    assert rec.events[0]["data"]["description"] == "Counted 3 words"


def test_pipeline_yields_text_and_wire_events_like_the_pipelines_server_expects():
    pipeline = load_built("template_pipeline").Pipeline()
    chunks = list(pipeline.pipe(user_message="hello", model_id="template_pipeline", messages=[], body={}))
    assert all(isinstance(c, str | dict) for c in chunks)
    assert chunks[0] == {
        "event": {"type": "status", "data": {"description": "Answering", "done": False, "hidden": False}}
    }
    assert chunks[-1]["event"]["data"]["done"] is True
    assert "".join(c for c in chunks if isinstance(c, str)) == "echo: hello "


async def test_event_logs_the_events_its_prefixes_select(caplog):
    handler = load_built("template_event").Event()
    payload = {
        "event": "user.created",
        "subject": {"type": "user", "id": "u1"},
        "actor": {"id": "a1", "email": "ann@example.test", "type": "user"},
        "data": {"role": "user"},
    }
    with caplog.at_level(logging.INFO, logger="openwebui_pack.template_event"):
        await handler.event(payload, __event_name__="user.created", __id__="template_event")
        handler.valves.PREFIXES = "auth., chat."
        await handler.event(payload, __event_name__="user.created", __id__="template_event")
        await handler.event({"event": "auth.signup"}, __id__="template_event")
    assert caplog.messages == [
        "template_event saw user.created subject=user:u1 actor=a1",
        "template_event saw auth.signup",
    ]
    assert "ann@example.test" not in caplog.text


@pytest.mark.parametrize("template", ["pipe", "manifold", "filter", "action", "event", "tool", "pipeline"])
def test_every_template_valve_has_a_human_title(template):
    # Open WebUI 0.12.4's valves form shows the schema's title; pydantic makes one from the field name
    # ("Max Words") when none is given, so an explicit title is the only way to a readable label.
    module = load_built(f"template_{template}")
    cls = next(
        getattr(module, name)
        for name in ("Pipe", "Filter", "Action", "Event", "Tools", "Pipeline")
        if hasattr(module, name)
    )
    for valves in (getattr(cls, "Valves", None), getattr(cls, "UserValves", None)):
        for name, field in (valves.model_fields if valves else {}).items():
            assert field.title, f"{template}: {name} has no title"
            assert field.description, f"{template}: {name} has no description"
