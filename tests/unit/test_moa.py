"""shared/moa.py: the Mixture-of-Agents algorithm with an in-process model client."""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import Emitter
from shared.moa import (
    DETAILS_TYPE,
    REFINE_PROMPT,
    SYNTHESIZE_PROMPT,
    MoaError,
    MoaSettings,
    MoaValves,
    ModelCallError,
    ModelUnavailable,
    assign_models,
    backoff_delay,
    clean_history,
    run_mixture,
    run_task,
    stream_text,
    with_references,
)

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
]


@dataclass
class Behaviour:
    reply: str | None = None
    latency: float = 0.0
    failures: list[ModelCallError] = field(default_factory=list)  # raised first, one per call
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    fail_after_chunks: ModelCallError | None = None


@dataclass
class Call:
    kind: str
    model: str
    messages: list[dict]
    at: float


class FakeModels:
    """A ModelClient whose models answer after a latency, fail on demand and stream in chunks."""

    def __init__(self, **behaviours: Behaviour) -> None:
        self.behaviours = behaviours
        self.calls: list[Call] = []

    def behaviour(self, model: str) -> Behaviour:
        return self.behaviours.setdefault(model, Behaviour())

    def answer(self, model: str, earlier: int) -> str:
        b = self.behaviour(model)
        return b.reply if b.reply is not None else f"{model} answer #{earlier}"

    def log(self, kind: str, model: str, messages: list[dict]) -> int:
        """Record the call; how many answers this model gave before (its layer, for one agent per model)."""
        earlier = sum(1 for c in self.calls if c.model == model)
        self.calls.append(Call(kind, model, messages, time.monotonic()))
        return earlier

    async def complete(self, model: str, messages: list[dict]) -> str:
        earlier = self.log("complete", model, messages)
        b = self.behaviour(model)
        await asyncio.sleep(b.latency)
        if b.failures:
            raise b.failures.pop(0)
        return self.answer(model, earlier)

    async def stream(self, model: str, messages: list[dict]) -> AsyncIterator[str]:
        earlier = self.log("stream", model, messages)
        b = self.behaviour(model)
        await asyncio.sleep(b.latency)
        if b.failures:
            raise b.failures.pop(0)
        for i, chunk in enumerate(b.chunks or [self.answer(model, earlier)]):
            if i and b.chunk_delay:
                await asyncio.sleep(b.chunk_delay)
            yield chunk
        if b.fail_after_chunks is not None:
            raise b.fail_after_chunks


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict] = []

    async def __call__(self, event: dict) -> None:
        self.events.append(event)

    @property
    def statuses(self) -> list[dict]:
        return [e["data"] for e in self.events]


def make(**overrides: Any) -> MoaSettings:
    values: dict[str, Any] = {
        "models": ("a", "b", "c"),
        "aggregator_model": "agg",
        "retry_base_delay": 0.001,
        "agent_timeout": 5.0,
    }
    return MoaSettings(**(values | overrides))


async def collect(conversation: Any, client: FakeModels, s: MoaSettings, recorder: Recorder | None = None) -> str:
    events = Emitter(recorder, status_interval=0)
    return "".join([piece async for piece in run_mixture(conversation, client, s, events)])


def assert_valid_events(events: list[dict]) -> None:
    """Only `status` events with the fields 0.12.4 reads, and the last one done."""
    assert events, "no events"
    for event in events:
        assert event["type"] == "status"
        data = event["data"]
        assert set(data) == {"description", "done", "hidden"}
        assert isinstance(data["description"], str) and data["description"]
        assert isinstance(data["done"], bool) and data["hidden"] is False
    assert events[-1]["data"]["done"] is True
    assert all(not e["data"]["done"] for e in events[:-1])


# --- assignment and prompts ---------------------------------------------------------------


def test_round_robin_when_fewer_models_than_agents() -> None:
    assert assign_models(["a", "b"], 5) == ["a", "b", "a", "b", "a"]
    assert assign_models(["a", "b", "c", "d"], 2) == ["a", "b"]
    assert assign_models([], 3) == []


async def test_each_agent_keeps_its_model_in_every_layer() -> None:
    client = FakeModels()
    await collect(CONVERSATION, client, make(models=("a", "b"), num_agents_per_layer=3, num_layers=3))
    agents = [c.model for c in client.calls if c.kind == "complete"]
    assert agents == ["a", "b", "a"] * 3
    assert [c.model for c in client.calls if c.kind == "stream"] == ["agg"]


async def test_layer_one_gets_the_whole_conversation_unchanged() -> None:
    client = FakeModels()
    await collect(CONVERSATION, client, make(num_layers=1))
    for call in client.calls[:3]:
        assert call.messages == CONVERSATION


async def test_later_layers_get_the_previous_answers_as_references() -> None:
    client = FakeModels()
    await collect(CONVERSATION, client, make(num_layers=2))
    layer2 = [c for c in client.calls if c.kind == "complete"][3:]
    assert [c.model for c in layer2] == ["a", "b", "c"]
    for call in layer2:
        system = call.messages[0]
        assert system["role"] == "system"
        assert system["content"].startswith("You are terse.\n\n" + REFINE_PROMPT)
        for model in ("a", "b", "c"):
            assert f"{model} answer #0" in system["content"]
        assert call.messages[1:] == CONVERSATION[1:]  # history kept, only the system message grew
    aggregator = client.calls[-1]
    assert SYNTHESIZE_PROMPT in aggregator.messages[0]["content"]
    for model in ("a", "b", "c"):
        assert f"{model} answer #1" in aggregator.messages[0]["content"]
        assert f"{model} answer #0" not in aggregator.messages[0]["content"]


def test_references_without_a_system_message_and_with_list_content() -> None:
    plain = with_references([{"role": "user", "content": "hi"}], "INSTR", ["x"])
    assert plain[0]["role"] == "system" and plain[0]["content"].startswith("INSTR")
    assert '<answer number="1">\nx\n</answer>' in plain[0]["content"]
    parts = with_references([{"role": "system", "content": [{"type": "text", "text": "S"}]}], "I", ["x"])
    assert parts[0]["content"][0] == {"type": "text", "text": "S"}
    assert parts[0]["content"][1]["text"].startswith("I")


def test_history_drops_our_layer_blocks_and_junk() -> None:
    block = f'<details type="{DETAILS_TYPE}" done="true">\n<summary>Layer 1</summary>\n\nold\n</details>\n\n'
    history = clean_history(
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": block + "the answer"},
            "not a message",
            {"role": "user", "content": None},
            {"content": 5},
        ]
    )
    assert history == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "the answer"},
        {"role": "user", "content": ""},
        {"role": "user", "content": "5"},
    ]


async def test_agents_reasoning_is_not_passed_on() -> None:
    client = FakeModels(a=Behaviour(reply="<think>long musing</think>Paris"))
    await collect(CONVERSATION, client, make(models=("a",), num_agents_per_layer=1, num_layers=1))
    assert "Paris" in client.calls[-1].messages[0]["content"]
    assert "musing" not in client.calls[-1].messages[0]["content"]


# --- failures ----------------------------------------------------------------------------------


async def test_a_failed_agent_is_dropped_with_a_status() -> None:
    client = FakeModels(b=Behaviour(failures=[ModelCallError("b", "HTTP 400: bad", status=400)]))
    recorder = Recorder()
    answer = await collect(CONVERSATION, client, make(num_layers=1), recorder)
    assert answer == "agg answer #0"
    assert any("1 dropped (b: HTTP 400: bad)" in s["description"] for s in recorder.statuses)
    references = client.calls[-1].messages[0]["content"]
    assert "a answer #0" in references and "c answer #0" in references and "b answer" not in references
    assert len([c for c in client.calls if c.model == "b"]) == 1  # 400 is not retried
    assert_valid_events(recorder.events)


async def test_too_few_answers_stop_the_run_with_a_clear_message() -> None:
    failing = [ModelCallError("x", "HTTP 400: bad", status=400)]
    client = FakeModels(a=Behaviour(failures=list(failing)), b=Behaviour(failures=list(failing)))
    recorder = Recorder()
    with pytest.raises(MoaError) as raised:
        await collect(CONVERSATION, client, make(min_successful_agents=2), recorder)
    message = str(raised.value)
    assert "layer 1 of 2" in message and "1 of 3 agents answered, at least 2 needed" in message
    assert "a: HTTP 400: bad" in message
    assert not [c for c in client.calls if c.kind == "stream"]  # no aggregator
    assert_valid_events(recorder.events)
    assert recorder.statuses[-1]["description"].startswith("Stopped:")


async def test_min_successful_agents_is_capped_at_the_agent_count() -> None:
    client = FakeModels()
    answer = await collect(CONVERSATION, client, make(num_agents_per_layer=2, min_successful_agents=5))
    assert answer == "agg answer #0"


async def test_all_agents_failing_stops_even_with_the_minimum_of_one() -> None:
    client = FakeModels(**{m: Behaviour(failures=[ModelCallError(m, "HTTP 400", status=400)]) for m in "abc"})
    with pytest.raises(MoaError, match="0 of 3 agents answered"):
        await collect(CONVERSATION, client, make(num_layers=1))


async def test_rate_limits_and_server_errors_are_retried_with_backoff() -> None:
    client = FakeModels(
        a=Behaviour(failures=[ModelCallError("a", "HTTP 429", status=429), ModelCallError("a", "HTTP 503", status=503)])
    )
    recorder = Recorder()
    await collect(CONVERSATION, client, make(num_layers=1, max_retries=2, retry_base_delay=0.05), recorder)
    calls = [c.at for c in client.calls if c.model == "a"]
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.025 and calls[2] - calls[1] >= 0.05  # 0.05 s doubling, jitter 0.5-1
    assert any("retry 1/2" in s["description"] for s in recorder.statuses)
    assert "a answer" in client.calls[-1].messages[0]["content"]


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    s = make(retry_base_delay=1.0, retry_max_delay=5.0)
    for attempt, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 5), (5, 5)]):
        assert low <= backoff_delay(attempt, s, None) <= high
    assert backoff_delay(0, s, 3.0) == 3.0
    assert backoff_delay(0, s, 60.0) == 5.0


async def test_retries_give_up_after_max_retries() -> None:
    client = FakeModels(a=Behaviour(failures=[ModelCallError("a", "HTTP 500", status=500)] * 3))
    await collect(CONVERSATION, client, make(num_layers=1, max_retries=1))
    assert len([c for c in client.calls if c.model == "a"]) == 2
    assert "a answer" not in client.calls[-1].messages[0]["content"]


async def test_retry_after_is_honoured() -> None:
    client = FakeModels(a=Behaviour(failures=[ModelCallError("a", "HTTP 429", status=429, retry_after=0.15)]))
    await collect(CONVERSATION, client, make(models=("a",), num_agents_per_layer=1, num_layers=1))
    first, second = [c.at for c in client.calls if c.model == "a"]
    assert second - first >= 0.14


async def test_a_slow_agent_times_out_and_is_dropped() -> None:
    client = FakeModels(c=Behaviour(latency=1.0))
    recorder = Recorder()
    started = time.monotonic()
    await collect(CONVERSATION, client, make(num_layers=1, agent_timeout=0.1), recorder)
    assert time.monotonic() - started < 0.8
    assert any("c: no answer within 0.1 s" in s["description"] for s in recorder.statuses)


async def test_an_unknown_model_stops_at_once_naming_it() -> None:
    client = FakeModels(b=Behaviour(failures=[ModelUnavailable("b", "it does not exist")]), a=Behaviour(latency=1.0))
    started = time.monotonic()
    with pytest.raises(MoaError, match="cannot use the model `b`: it does not exist"):
        await collect(CONVERSATION, client, make())
    assert time.monotonic() - started < 0.5  # the other agents were cancelled


async def test_empty_models_is_a_clear_error() -> None:
    with pytest.raises(MoaError, match="`models` valve"):
        await collect(CONVERSATION, FakeModels(), make(models=()))


async def test_aggregator_defaults_to_the_first_model() -> None:
    client = FakeModels()
    await collect(CONVERSATION, client, make(aggregator_model=""))
    assert client.calls[-1].kind == "stream" and client.calls[-1].model == "a"


async def test_aggregator_is_retried_before_its_first_token_only() -> None:
    client = FakeModels(agg=Behaviour(failures=[ModelCallError("agg", "HTTP 503", status=503)], chunks=["x", "y"]))
    assert await collect(CONVERSATION, client, make(num_layers=1)) == "xy"
    broken = FakeModels(agg=Behaviour(chunks=["x"], fail_after_chunks=ModelCallError("agg", "HTTP 502", status=502)))
    with pytest.raises(MoaError, match="The aggregator agg failed: HTTP 502"):
        await collect(CONVERSATION, broken, make(num_layers=1))
    assert len([c for c in broken.calls if c.kind == "stream"]) == 1


async def test_aggregator_silence_times_out() -> None:
    client = FakeModels(agg=Behaviour(latency=1.0))
    with pytest.raises(MoaError, match=r"sent nothing for 0\.2 s"):
        await collect(CONVERSATION, client, make(num_layers=1, agent_timeout=0.2))


# --- streaming, events, intermediate blocks ---------------------------------------------------------


async def test_the_final_answer_streams_as_it_arrives() -> None:
    client = FakeModels(agg=Behaviour(chunks=["Hel", "lo", "!"], chunk_delay=0.1))
    arrivals: list[tuple[str, float]] = []
    async for piece in run_mixture(CONVERSATION, client, make(num_layers=1), Emitter(None)):
        arrivals.append((piece, time.monotonic()))
    assert [p for p, _ in arrivals] == ["Hel", "lo", "!"]
    assert arrivals[1][1] - arrivals[0][1] >= 0.09
    assert arrivals[2][1] - arrivals[1][1] >= 0.09


async def test_event_sequence() -> None:
    recorder = Recorder()
    await collect(CONVERSATION, FakeModels(), make(num_layers=2), recorder)
    assert_valid_events(recorder.events)
    descriptions = [s["description"] for s in recorder.statuses]
    assert descriptions[0] == "Layer 1/2: asking 3 agents"
    assert "Layer 1/2: 3/3 agents answered" in descriptions
    assert descriptions.index("Layer 2/2: asking 3 agents") > descriptions.index("Layer 1/2: 3/3 agents answered")
    assert descriptions[-2] == "Aggregating 3 answers with agg"
    assert descriptions[-1].startswith("Mixture of Agents: 2 layers × 3 agents, combined by agg in ")


async def test_coalesced_statuses_still_end_with_done() -> None:
    recorder = Recorder()
    events = Emitter(recorder, status_interval=10)
    client = FakeModels(a=Behaviour(latency=0.01), b=Behaviour(latency=0.02))
    pieces = [p async for p in run_mixture(CONVERSATION, client, make(), events)]
    assert pieces
    assert_valid_events(recorder.events)
    assert len(recorder.events) == 2  # the first status, then (coalesced away) ... the final one


async def test_no_statuses_when_the_indicator_is_off() -> None:
    recorder = Recorder()
    await collect(CONVERSATION, FakeModels(), make(enable_status_indicator=False), recorder)
    assert recorder.events == []


async def test_show_intermediate_puts_each_layer_in_a_collapsed_block() -> None:
    client = FakeModels(
        a=Behaviour(reply="A says <details> and </think> tags"),
        b=Behaviour(failures=[ModelCallError("b", "HTTP 400", status=400)] * 2),
    )
    text = await collect(CONVERSATION, client, make(show_intermediate=True))
    blocks = text.split("</details>\n\n")
    assert len(blocks) == 3 and blocks[-1] == "agg answer #0"
    first = blocks[0]
    assert first.startswith(
        f'<details type="{DETAILS_TYPE}" done="true">\n<summary>Layer 1 of 2: 2 of 3 agents answered</summary>\n'
    )
    assert "**Agent 2** · `b`: no answer (HTTP 400)" in first
    assert "A says &lt;details> and &lt;/think> tags" in first  # cannot close our block or start reasoning
    assert blocks[1].startswith(f'<details type="{DETAILS_TYPE}" done="true">\n<summary>Layer 2 of 2')


async def test_closing_the_reply_cancels_agents_and_still_reports_done() -> None:
    client = FakeModels(a=Behaviour(latency=5), b=Behaviour(latency=5), c=Behaviour(latency=5))
    recorder = Recorder()
    reply = run_mixture(CONVERSATION, client, make(show_intermediate=True), Emitter(recorder))
    task = asyncio.ensure_future(reply.__anext__())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await reply.aclose()
    assert_valid_events(recorder.events)
    assert recorder.statuses[-1]["description"] == "Mixture of Agents stopped"


# --- tasks and the wire helpers ----------------------------------------------------------------------


async def test_task_is_one_call_to_the_aggregator() -> None:
    client = FakeModels(agg=Behaviour(reply='{"title": "Sums"}'))
    assert await run_task(CONVERSATION, client, make()) == '{"title": "Sums"}'
    assert [(c.kind, c.model) for c in client.calls] == [("complete", "agg")]


async def test_sse_parsing_survives_split_lines_bytes_and_noise() -> None:
    async def lines() -> AsyncIterator[str | bytes]:
        yield b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\ndata: {"choi'
        yield 'ces":[{"delta":{"content":"Hi"}}]}\n\n'
        yield 'data: {"event": {"type": "status", "data": {}}}\n\n: keep-alive\n\n'
        yield 'data: {"choices":[{"delta":{"content":" there"}}]}\n\ndata: [DONE]\n\n'
        yield 'data: {"choices":[{"delta":{"content":"after done"}}]}\n\n'

    assert [t async for t in stream_text("m", lines())] == ["Hi", " there"]

    async def error_line() -> AsyncIterator[str]:
        yield 'data: {"error": {"detail": "boom"}}\n\n'

    with pytest.raises(ModelCallError, match="boom"):
        [t async for t in stream_text("m", error_line())]


def test_valves_accept_comma_separated_models() -> None:
    valves = MoaValves(models=" a, b ,,c ")
    assert valves.models == ["a", "b", "c"]
    assert MoaSettings.from_valves(valves).models == ("a", "b", "c")


# --- anything goes: only clear errors ----------------------------------------------------------------

message_st = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["system", "user", "assistant", "tool", ""]),
            "content": st.one_of(st.text(), st.none()),
        }
    ),
    st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=3),
    st.text(max_size=5),
    st.none(),
)
conversation_st = st.one_of(st.lists(message_st, max_size=5), st.none(), st.text(max_size=5), st.integers())
failure_st = st.sampled_from([None, 400, 404, 429, 500])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    conversation=conversation_st,
    models=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=4),
    aggregator=st.sampled_from(["", "agg", "a"]),
    layers=st.integers(1, 3),
    agents=st.integers(1, 4),
    minimum=st.integers(1, 5),
    show=st.booleans(),
    indicator=st.booleans(),
    retries=st.integers(0, 2),
    failures=st.dictionaries(st.sampled_from(["a", "b", "c", "d", "agg"]), failure_st),
)
def test_any_settings_and_body_end_in_an_answer_or_a_clear_error(
    conversation, models, aggregator, layers, agents, minimum, show, indicator, retries, failures
) -> None:
    def error(model: str, status: int) -> ModelCallError:
        return (
            ModelUnavailable(model, "gone", status=404) if status == 404 else ModelCallError(model, "x", status=status)
        )

    client = FakeModels(
        **{m: Behaviour(failures=[error(m, s)] * 2) for m, s in failures.items() if s is not None},
    )
    s = make(
        models=tuple(models),
        aggregator_model=aggregator,
        num_layers=layers,
        num_agents_per_layer=agents,
        min_successful_agents=minimum,
        show_intermediate=show,
        enable_status_indicator=indicator,
        max_retries=retries,
    )
    recorder = Recorder()

    async def run() -> None:
        try:
            text = await collect(conversation, client, s, recorder)
            assert text
        except MoaError as exc:
            assert str(exc)
        if indicator and recorder.events:
            assert_valid_events(recorder.events)

    asyncio.run(run())
