"""Every message a reader of either Mixture-of-Agents variant meets, on every failure path.

A user reads plain sentences: no exception class names, no valve (a setting only an administrator
can change), and whom to ask when only an administrator can help. An administrator reads the same
sentence with the detail added (which valve, what the upstream said). Texts scanned: status lines,
the collapsed layer blocks, the error line of a streamed reply, and the error raised before one.
"""

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import exception_names
from tests.unit.plugins.test_mixture_of_agents import ADMIN, AGENTS, USER, FakeOpenWebUI, Recorder, make_pipe, pipe_mod
from tests.unit.plugins.test_mixture_of_agents_pipeline import make_pipeline, pipeline_mod, serve

CONVERSATION = [{"role": "user", "content": "Name a prime."}]
VALVES = sorted(pipeline_mod.Pipeline.Valves.model_fields)
TITLES = [f.title for f in pipeline_mod.Pipeline.Valves.model_fields.values()]
INTERNALS = "ValueError: invalid literal for int() with base 10: 'x'"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(models=(*AGENTS, "m-agg")) as server:
        yield server


def reset(fake: FakeOpenAI) -> None:
    fake.clear()
    fake.reset()
    for model in (*AGENTS, "m-agg"):
        fake.set(model)  # brings back a model a case removed
    fake.set("m-agg", reply="The final answer.")
    fake.strict_models = False
    fake.api_key = None


@pytest.fixture(autouse=True)
def fresh(fake):
    reset(fake)


def assert_plain_for_a_user(text: str) -> None:
    assert exception_names(text) == [], text
    assert "valve" not in text.lower() and "For administrators" not in text, text
    for name in VALVES:
        assert f"`{name}`" not in text and not ("_" in name and name in text), (name, text)
    for title in TITLES:
        assert f'"{title}"' not in text, (title, text)


def raises_host(exc: Exception) -> Callable[[FakeOpenWebUI], None]:
    """The host's chat call raises `exc` for m-b (what Open WebUI itself raised)."""

    def setup(owui: FakeOpenWebUI) -> None:
        original = owui.chat_completion

        async def chat_completion(request: Any, form: dict, user: Any) -> Any:
            if form["model"] == "m-b":
                raise exc
            return await original(request, form, user)

        owui.chat_completion = chat_completion

    return setup


def returns_host(value: Any, model: str = "m-b") -> Callable[[FakeOpenWebUI], None]:
    def setup(owui: FakeOpenWebUI) -> None:
        original = owui.chat_completion

        async def chat_completion(request: Any, form: dict, user: Any) -> Any:
            if form["model"] == model:
                return value
            return await original(request, form, user)

        owui.chat_completion = chat_completion

    return setup


@dataclass
class Case:
    name: str
    fake: dict[str, dict] = field(default_factory=dict)  # model -> FakeOpenAI.set(**changes)
    valves: dict[str, Any] = field(default_factory=dict)
    host: Callable[[FakeOpenWebUI], None] | None = None  # the pipe's host only
    metadata: dict | None = None
    admin_detail: str = ""  # what an administrator reads and a user does not


HTTP_CASES = [
    Case(f"http {status}", fake={"m-b": {"fail_status": status, "fail_message": message}})
    for status, message in [
        (400, "context too long"),
        (408, "request timeout"),
        (413, "too large"),
        (429, "slow down"),
        (500, INTERNALS),
        (502, "bad gateway"),
        (503, "overloaded"),
    ]
] + [
    Case("http 401", fake={"m-b": {"fail_status": 401}}, admin_detail="API key"),
    Case("http 403", fake={"m-b": {"fail_status": 403}}, admin_detail="API key"),
    Case("http 404", fake={"m-b": {"fail_status": 404}}, admin_detail='"Agent models" and "Aggregator model" valves'),
    Case("html error page", fake={"m-b": {"fail_status": 502, "fail_body": "<!DOCTYPE html><h1>Bad</h1>"}}),
    Case("aggregator 500", fake={"m-agg": {"fail_status": 500, "fail_message": INTERNALS}}, admin_detail=INTERNALS),
    Case("aggregator 404", fake={"m-agg": {"fail_status": 404}}, admin_detail="valves"),
]
TRANSPORT_CASES = [
    Case("agent timeout", fake={"m-b": {"latency": 0.5}}, valves={"agent_timeout": 0.1}),
    Case("aggregator timeout", fake={"m-agg": {"latency": 0.5}}, valves={"agent_timeout": 0.1}, admin_detail="valve"),
    Case("dropped connection", fake={"m-b": {"fail_mode": "drop"}}),
    Case("aggregator dropped", fake={"m-agg": {"fail_mode": "drop"}}),
    Case("stream cut halfway", fake={"m-agg": {"fail_mode": "cut"}}),
    Case("body that is not json", fake={"m-b": {"fail_mode": "garbage"}}),
    Case("body cut halfway", fake={"m-b": {"fail_mode": "cut"}}),
    Case("aggregator body not json", fake={"m-agg": {"fail_mode": "garbage"}}),
]
SETUP_CASES = [
    Case("no agent models", valves={"models": []}, admin_detail='"Agent models" valve'),
    Case("unknown model", valves={"models": ["m-a", "nope"]}, admin_detail="valves"),
    Case("unknown aggregator", valves={"aggregator_model": "nope"}, admin_detail="valves"),
    Case(
        "too few answers",
        fake={m: {"fail_status": 500, "fail_message": INTERNALS} for m in AGENTS},
        valves={"min_successful_agents": 2},
        admin_detail='"Minimum answers per layer" valve',
    ),
]
PIPE_CASES = [
    Case("itself as aggregator", valves={"aggregator_model": "mixture_of_agents"}, admin_detail="valves"),
    Case("a loop", metadata={"mixture_of_agents_callers": ["mixture_of_agents"]}, admin_detail="valves"),
    Case("host error", host=raises_host(pipe_mod.HostRefusal(500, INTERNALS))),
    Case("host exception", host=raises_host(RuntimeError("ClientPayloadError: Response payload is not completed"))),
    Case("host bare exception", host=raises_host(Exception())),
    Case("host model not found", host=raises_host(pipe_mod.ModelNotFound("m-b")), admin_detail="access"),
    Case("answer without choices", host=returns_host({"object": "chat.completion"})),
    Case("answer of an odd type", host=returns_host(42)),
    Case("answer with an error", host=returns_host({"error": {"message": "KeyError: 'x'"}})),
]


@dataclass
class Seen:
    texts: list[str] = field(default_factory=list)

    def add(self, text: Any) -> None:
        if isinstance(text, str) and text:
            self.texts.append(text)

    @property
    def all(self) -> str:
        return "\n".join(self.texts)


def configure(fake: FakeOpenAI, case: Case) -> None:
    if case.name in ("http 404", "unknown model", "unknown aggregator", "aggregator 404"):
        fake.strict_models = True
    for model, changes in case.fake.items():
        fake.set(model, **changes)
    if case.name == "http 404":
        fake.remove("m-b")
    if case.name == "aggregator 404":
        fake.remove("m-agg")


def run_the_pipe(fake: FakeOpenAI, case: Case, user: Any, stream: bool) -> Seen:
    owui = FakeOpenWebUI(fake)
    if case.host is not None:
        case.host(owui)
    pipe = make_pipe(show_intermediate=True, max_retries=0, **case.valves)
    pipe.host = owui
    recorder = Recorder()
    seen = Seen()

    async def go() -> None:
        try:
            result = await pipe.pipe(
                body={"model": "mixture_of_agents", "messages": CONVERSATION, "stream": stream},
                __user__={"id": user.id, "role": user.role},
                __request__=owui.request,
                __event_emitter__=recorder,
                __metadata__=case.metadata or {},
            )
            pieces = [result] if isinstance(result, str) else [p async for p in result]
        except pipe_mod.MoaError as exc:
            seen.add(str(exc))
            return
        for piece in pieces:
            seen.add(piece["error"]["detail"] if isinstance(piece, dict) else piece)

    asyncio.run(go())
    for text in recorder.descriptions():
        seen.add(text)
    return seen


def run_the_pipeline(fake: FakeOpenAI, case: Case, role: str, stream: bool) -> Seen:
    configure(fake, case)
    pipeline = make_pipeline(fake, show_intermediate=True, max_retries=0, **case.valves)
    body = {"model": "mixture_of_agents", "messages": CONVERSATION, "stream": stream, "user": {"id": "u", "role": role}}
    result, items = serve(pipeline, body)
    seen = Seen()
    for item in [result] if isinstance(result, dict) else items:
        if isinstance(item, dict) and "event" in item:
            seen.add(item["event"]["data"]["description"])
        elif isinstance(item, dict):
            seen.add(item["error"]["detail"])
        else:
            seen.add(item)
    return seen


FAILURE_WORDS = re.compile(r"dropped|[Ss]topped|cannot|failed|no answer|broke off|sent nothing|Ask an administrator")


def failed(seen: Seen) -> bool:
    """The run shows a failure somewhere (a dropped agent, a stop, an error)."""
    return bool(FAILURE_WORDS.search(seen.all))


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
@pytest.mark.parametrize("case", HTTP_CASES + TRANSPORT_CASES + SETUP_CASES + PIPE_CASES, ids=lambda c: c.name)
def test_the_pipe_tells_a_user_in_plain_words_and_an_admin_the_detail(fake, case, stream) -> None:
    configure(fake, case)
    as_user = run_the_pipe(fake, case, USER, stream)
    # a 200 body that is not JSON, which Open WebUI 0.12.4 (routers/openai.py) hands on as text,
    # is a failed call too, not an answer
    assert failed(as_user), as_user.texts
    for text in as_user.texts:
        assert_plain_for_a_user(text)
    reset(fake)
    configure(fake, case)
    as_admin = run_the_pipe(fake, case, ADMIN, stream)
    if case.admin_detail:
        assert "(For administrators: " in as_admin.all and case.admin_detail in as_admin.all, as_admin.texts


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
@pytest.mark.parametrize("case", HTTP_CASES + TRANSPORT_CASES + SETUP_CASES, ids=lambda c: c.name)
def test_the_pipeline_tells_a_user_in_plain_words_and_an_admin_the_detail(fake, case, stream) -> None:
    as_user = run_the_pipeline(fake, case, "user", stream)
    assert failed(as_user), as_user.texts
    for text in as_user.texts:
        assert_plain_for_a_user(text)
    reset(fake)
    as_admin = run_the_pipeline(fake, case, "admin", stream)
    if case.admin_detail:
        assert "(For administrators: " in as_admin.all and case.admin_detail in as_admin.all, as_admin.texts


def test_a_user_without_access_is_told_whom_to_ask(fake) -> None:
    owui = FakeOpenWebUI(fake)
    owui.forbidden = {"m-b"}
    for user, expected in [
        (USER, "Ask an administrator to give you access to the model `m-b`."),
        (ADMIN, "(For administrators: Give this user access to the model `m-b`, or change the"),
    ]:
        pipe = make_pipe()
        pipe.host = owui
        if user is ADMIN:
            owui.allowed = lambda u, m: m["id"] != "m-b"  # an administrator without access (no bypass)
        with pytest.raises(pipe_mod.MoaError) as raised:
            asyncio.run(
                pipe.pipe(
                    body={"model": "mixture_of_agents", "messages": CONVERSATION},
                    __user__={"id": user.id, "role": user.role},
                    __request__=owui.request,
                )
            )
        text = str(raised.value)
        assert text.startswith("Mixture of Agents cannot use the model `m-b`: you do not have access to it.")
        assert expected in text
        if user is USER:
            assert_plain_for_a_user(text)
        else:
            assert "Ask an administrator" not in text


def test_the_valve_advice_goes_to_the_server_log(fake, caplog) -> None:
    run_the_pipe(fake, Case("no agent models", valves={"models": []}), USER, True)
    assert 'Set the "Agent models" valve' in caplog.text


def test_every_valve_has_a_title_and_a_description() -> None:
    for valves in (pipe_mod.Pipe.Valves, pipeline_mod.Pipeline.Valves):
        for name, info in valves.model_fields.items():
            assert info.title and info.title != name.replace("_", " ").title(), name  # set, not generated
            assert info.description, name
        schema = valves.model_json_schema()["properties"]  # what the valves form shows
        assert {p["title"] for p in schema.values()} == {f.title for f in valves.model_fields.values()}
    assert pipe_mod.Pipe.Valves.model_fields["models"].title == "Agent models"
