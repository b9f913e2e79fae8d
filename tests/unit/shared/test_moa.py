"""shared/moa.py: the Mixture-of-Agents algorithm with an in-process model client.

Every test runs on an event loop with virtual time: `asyncio.sleep`, the loop's timers and so the
mixture's `agent_timeout` cut advance a counter instead of waiting, and the loop's clock is given
to the mixture as its `MoaTiming` clock. A model that "takes 5 s" costs nothing, and what a test
reads off the clock (when a call started, when the run ended) is exact, never wall-clock time.
"""

import asyncio
import json
import selectors
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
    MoaTiming,
    MoaValves,
    assign_models,
    clean_history,
    run_mixture,
    run_task,
    with_references,
)
from shared.openai_wire import ModelCallError, ModelUnavailable

T = TypeVar("T")

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
]


# --- virtual time ------------------------------------------------------------------------------


class _JumpingSelector(selectors.DefaultSelector):
    """When the loop would block until its next timer, jump the clock there instead."""

    def __init__(self, loop: "VirtualTimeLoop") -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Nothing is scheduled and nothing can arrive (these tests have no I/O): a deadlock.
            raise RuntimeError("every task is waiting and no timer is set")
        self._loop.now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run(main: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


def test_virtual_time_jumps_to_the_next_timer() -> None:
    async def main() -> tuple[float, float]:
        await asyncio.sleep(2.5)
        middle = now()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await asyncio.sleep(100)
        return middle, now()

    assert run(main()) == (2.5, 3.5)


# --- a model client -------------------------------------------------------------------------------


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
    at: float  # virtual time


class FakeModels:
    """A ModelClient whose models answer after a latency, fail on demand and stream in chunks."""

    def __init__(self, **behaviours: Behaviour) -> None:
        self.behaviours = behaviours
        self.calls: list[Call] = []
        self.cancelled: list[str] = []  # models whose call was cancelled while it ran
        self.log: list[tuple[str, str]] = []  # ("sent", chunk) as the stream hands each one over

    def behaviour(self, model: str) -> Behaviour:
        return self.behaviours.setdefault(model, Behaviour())

    def answer(self, model: str, earlier: int) -> str:
        b = self.behaviour(model)
        return b.reply if b.reply is not None else f"{model} answer #{earlier}"

    def record(self, kind: str, model: str, messages: list[dict]) -> int:
        """Record the call; how many answers this model gave before (its layer, for one agent per model)."""
        earlier = sum(1 for c in self.calls if c.model == model)
        self.calls.append(Call(kind, model, messages, now()))
        return earlier

    async def wait(self, model: str, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled.append(model)
            raise

    async def complete(self, model: str, messages: list[dict]) -> str:
        earlier = self.record("complete", model, messages)
        b = self.behaviour(model)
        await self.wait(model, b.latency)
        if b.failures:
            raise b.failures.pop(0)
        return self.answer(model, earlier)

    async def stream(self, model: str, messages: list[dict]) -> AsyncIterator[str]:
        earlier = self.record("stream", model, messages)
        b = self.behaviour(model)
        await self.wait(model, b.latency)
        if b.failures:
            raise b.failures.pop(0)
        for i, chunk in enumerate(b.chunks or [self.answer(model, earlier)]):
            if i and b.chunk_delay:
                await self.wait(model, b.chunk_delay)
            self.log.append(("sent", chunk))
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


class Sleeps:
    """The mixture's sleep before a retry: records the wait, then waits in virtual time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)


def make(**overrides: Any) -> MoaSettings:
    values: dict[str, Any] = {
        "models": ("a", "b", "c"),
        "aggregator_model": "agg",
        "retry_base_delay": 0.001,
        "agent_timeout": 5.0,
    }
    return MoaSettings(**(values | overrides))


def timing(sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> MoaTiming:
    return MoaTiming(clock=now, sleep=sleep)


async def collect_async(
    conversation: Any,
    client: FakeModels,
    s: MoaSettings,
    recorder: Recorder | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    status_interval: float = 0,
) -> str:
    events = Emitter(recorder, status_interval=status_interval, clock=now)
    return "".join([piece async for piece in run_mixture(conversation, client, s, events, timing(sleep))])


def collect(conversation: Any, client: FakeModels, s: MoaSettings, recorder: Recorder | None = None, **kw: Any) -> str:
    return run(collect_async(conversation, client, s, recorder, **kw))


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


def test_each_agent_keeps_its_model_in_every_layer() -> None:
    client = FakeModels()
    collect(CONVERSATION, client, make(models=("a", "b"), num_agents_per_layer=3, num_layers=3))
    agents = [c.model for c in client.calls if c.kind == "complete"]
    assert agents == ["a", "b", "a"] * 3
    assert [c.model for c in client.calls if c.kind == "stream"] == ["agg"]


def test_layer_one_gets_the_whole_conversation_unchanged() -> None:
    client = FakeModels()
    collect(CONVERSATION, client, make(num_layers=1))
    for call in client.calls[:3]:
        assert call.messages == CONVERSATION


def test_later_layers_get_the_previous_answers_as_references() -> None:
    client = FakeModels()
    collect(CONVERSATION, client, make(num_layers=2))
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
            {"role": "assistant", "content": block + block + "the answer"},
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


def test_history_keeps_other_blocks_and_an_answer_that_quotes_our_block() -> None:
    thinking = '<details type="reasoning" done="true">\n<summary>Thought</summary>\nhm\n</details>\n'
    quoted = f'```\n<details type="{DETAILS_TYPE}">\n```\nthe answer'
    history = clean_history(
        [{"role": "assistant", "content": thinking + "x"}, {"role": "assistant", "content": quoted}]
    )
    assert history[0]["content"] == thinking.strip() + "\nx"  # not ours: the host decides what to do with it
    assert history[1]["content"] == quoted  # inside a code fence, the block is text


def test_agents_reasoning_is_not_passed_on() -> None:
    client = FakeModels(a=Behaviour(reply="<think>long musing</think>Paris"))
    collect(CONVERSATION, client, make(models=("a",), num_agents_per_layer=1, num_layers=1))
    assert "Paris" in client.calls[-1].messages[0]["content"]
    assert "musing" not in client.calls[-1].messages[0]["content"]


# --- concurrency and time -----------------------------------------------------------------------


def test_agents_of_a_layer_run_at_the_same_time() -> None:
    client = FakeModels(**{m: Behaviour(latency=1.0) for m in ("a", "b", "c", "agg")})
    recorder = Recorder()
    collect(CONVERSATION, client, make(num_layers=2), recorder)
    starts = [(c.model, c.at) for c in client.calls]
    # one layer takes as long as its slowest agent: 1 s, not 3 s
    assert starts == [("a", 0.0), ("b", 0.0), ("c", 0.0), ("a", 1.0), ("b", 1.0), ("c", 1.0), ("agg", 2.0)]
    assert recorder.statuses[-1]["description"].endswith("combined by agg in 3.0 s")


# --- failures ----------------------------------------------------------------------------------


def test_a_failed_agent_is_dropped_with_a_status() -> None:
    client = FakeModels(b=Behaviour(failures=[ModelCallError("b", "HTTP 400: bad", status=400)]))
    recorder = Recorder()
    answer = collect(CONVERSATION, client, make(num_layers=1), recorder)
    assert answer == "agg answer #0"
    assert any("1 dropped (b: HTTP 400: bad)" in s["description"] for s in recorder.statuses)
    references = client.calls[-1].messages[0]["content"]
    assert "a answer #0" in references and "c answer #0" in references and "b answer" not in references
    assert len([c for c in client.calls if c.model == "b"]) == 1  # 400 is not retried
    assert_valid_events(recorder.events)


def test_too_few_answers_stop_the_run_with_a_clear_message() -> None:
    failing = [ModelCallError("x", "HTTP 400: bad", status=400)]
    client = FakeModels(a=Behaviour(failures=list(failing)), b=Behaviour(failures=list(failing)))
    recorder = Recorder()
    with pytest.raises(MoaError) as raised:
        collect(CONVERSATION, client, make(min_successful_agents=2), recorder)
    message = str(raised.value)
    assert "layer 1 of 2" in message and "1 of 3 agents answered, at least 2 needed" in message
    assert "a: HTTP 400: bad" in message
    assert not [c for c in client.calls if c.kind == "stream"]  # no aggregator
    assert_valid_events(recorder.events)
    assert recorder.statuses[-1]["description"].startswith("Stopped:")


def test_min_successful_agents_is_capped_at_the_agent_count() -> None:
    client = FakeModels()
    answer = collect(CONVERSATION, client, make(num_agents_per_layer=2, min_successful_agents=5))
    assert answer == "agg answer #0"


def test_all_agents_failing_stops_even_with_the_minimum_of_one() -> None:
    client = FakeModels(**{m: Behaviour(failures=[ModelCallError(m, "HTTP 400", status=400)]) for m in "abc"})
    with pytest.raises(MoaError, match="0 of 3 agents answered"):
        collect(CONVERSATION, client, make(num_layers=1))


def test_an_unexpected_failure_is_described_without_internals() -> None:
    class Broken(FakeModels):
        async def complete(self, model: str, messages: list[dict]) -> str:
            if model == "b":
                raise KeyError("choices")
            return await super().complete(model, messages)

    recorder = Recorder()
    collect(CONVERSATION, Broken(), make(num_layers=1), recorder)
    line = next(s["description"] for s in recorder.statuses if "dropped" in s["description"])
    assert line.endswith("1 dropped (b: an unexpected error)")
    assert "KeyError" not in line


def test_rate_limits_and_server_errors_are_retried_with_backoff() -> None:
    client = FakeModels(
        a=Behaviour(failures=[ModelCallError("a", "HTTP 429", status=429), ModelCallError("a", "HTTP 503", status=503)])
    )
    recorder, sleeps = Recorder(), Sleeps()
    collect(CONVERSATION, client, make(num_layers=1, max_retries=2, retry_base_delay=0.05), recorder, sleep=sleeps)
    calls = [c.at for c in client.calls if c.model == "a"]
    assert len(calls) == 3
    first, second = sleeps.waits
    assert 0.025 <= first <= 0.05 and 0.05 <= second <= 0.1  # 0.05 s doubling, jitter 0.5-1
    assert calls[1] - calls[0] == pytest.approx(first) and calls[2] - calls[1] == pytest.approx(second)
    assert any("a failed (HTTP 429); retry 1/2 in " in s["description"] for s in recorder.statuses)
    assert any("retry 2/2" in s["description"] for s in recorder.statuses)
    assert "a answer" in client.calls[-1].messages[0]["content"]


@pytest.mark.parametrize(("status", "retried"), [(408, True), (500, True), (501, False), (505, False), (400, False)])
def test_which_statuses_are_retried(status: int, retried: bool) -> None:
    client = FakeModels(a=Behaviour(failures=[ModelCallError("a", f"HTTP {status}", status=status)]))
    collect(CONVERSATION, client, make(models=("a", "b"), num_agents_per_layer=2, num_layers=1))
    assert len([c for c in client.calls if c.model == "a"]) == (2 if retried else 1)


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    backoff = make(retry_base_delay=1.0, retry_max_delay=5.0).backoff
    assert [backoff.delay(n, rand=lambda: 0.0) for n in range(5)] == [1, 2, 4, 5, 5]
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(5)] == [0.5, 1, 2, 4, 5]
    assert backoff.delay(0, 3.0, rand=lambda: 0.0) == 3.0  # the server's Retry-After wins when longer
    assert MoaSettings(models=("a",)).backoff.max_delay == 20.0


def test_retries_give_up_after_max_retries() -> None:
    client = FakeModels(a=Behaviour(failures=[ModelCallError("a", "HTTP 500", status=500)] * 3))
    collect(CONVERSATION, client, make(num_layers=1, max_retries=1))
    assert len([c for c in client.calls if c.model == "a"]) == 2
    assert "a answer" not in client.calls[-1].messages[0]["content"]


def test_retry_after_is_honoured() -> None:
    client = FakeModels(a=Behaviour(failures=[ModelCallError("a", "HTTP 429", status=429, retry_after=0.15)]))
    sleeps = Sleeps()
    collect(CONVERSATION, client, make(models=("a",), num_agents_per_layer=1, num_layers=1), sleep=sleeps)
    assert sleeps.waits == [0.15]
    first, second = [c.at for c in client.calls if c.model == "a"]
    assert second - first == pytest.approx(0.15)


def test_retries_stay_within_the_agent_timeout() -> None:
    client = FakeModels(a=Behaviour(failures=[ModelCallError("a", "HTTP 503: busy", status=503)] * 20))
    recorder, sleeps = Recorder(), Sleeps()
    s = make(models=("a", "b"), num_agents_per_layer=2, num_layers=1, max_retries=10, retry_base_delay=1.0)
    collect(CONVERSATION, client, s, recorder, sleep=sleeps)
    assert 2 <= len(sleeps.waits) < 10 and sum(sleeps.waits) <= 5.0  # a retry past 5 s is not started
    # the agent is dropped with the server's reason, not with a timeout
    assert any("1 dropped (a: HTTP 503: busy)" in s["description"] for s in recorder.statuses)


def test_a_retry_after_longer_than_the_agent_timeout_is_not_waited_for() -> None:
    client = FakeModels(a=Behaviour(failures=[ModelCallError("a", "HTTP 429: later", status=429, retry_after=60)]))
    sleeps = Sleeps()
    recorder = Recorder()
    collect(CONVERSATION, client, make(num_layers=1), recorder, sleep=sleeps)
    assert sleeps.waits == []
    assert any("1 dropped (a: HTTP 429: later)" in s["description"] for s in recorder.statuses)


def test_a_slow_agent_times_out_and_is_dropped() -> None:
    client = FakeModels(c=Behaviour(latency=1000.0))
    recorder = Recorder()
    collect(CONVERSATION, client, make(num_layers=1, agent_timeout=0.1), recorder)
    assert client.cancelled == ["c"]
    assert client.calls[-1].model == "agg" and client.calls[-1].at == pytest.approx(0.1)  # cut at the timeout
    assert any("c: no answer within 0.1 s" in s["description"] for s in recorder.statuses)


def test_an_unknown_model_stops_at_once_naming_it() -> None:
    client = FakeModels(b=Behaviour(failures=[ModelUnavailable("b", "it does not exist")]), a=Behaviour(latency=1.0))

    async def main() -> float:
        with pytest.raises(MoaError, match="cannot use the model `b`: it does not exist"):
            await collect_async(CONVERSATION, client, make())
        return now()

    assert run(main()) == 0.0  # nobody waited for the slow agent
    assert client.cancelled == ["a"]  # the other agents were cancelled


def test_empty_models_is_a_clear_error() -> None:
    with pytest.raises(MoaError) as raised:
        collect(CONVERSATION, FakeModels(), make(models=()))
    assert str(raised.value) == "Mixture of Agents has no agent models to ask yet. Ask an administrator to set it up."
    assert raised.value.text_for(admin=True) == (
        'Mixture of Agents has no agent models to ask yet. (For administrators: Set the "Agent models" valve '
        "to one or more model ids (comma-separated, as listed in the model selector).)"
    )


def test_aggregator_defaults_to_the_first_model() -> None:
    client = FakeModels()
    collect(CONVERSATION, client, make(aggregator_model=""))
    assert client.calls[-1].kind == "stream" and client.calls[-1].model == "a"


def test_aggregator_is_retried_before_its_first_token_only() -> None:
    client = FakeModels(agg=Behaviour(failures=[ModelCallError("agg", "HTTP 503", status=503)], chunks=["x", "y"]))
    recorder = Recorder()
    assert collect(CONVERSATION, client, make(num_layers=1), recorder) == "xy"
    assert any(s["description"].startswith("Aggregating: agg failed (HTTP 503); retry 1/2") for s in recorder.statuses)
    broken = FakeModels(agg=Behaviour(chunks=["x"], fail_after_chunks=ModelCallError("agg", "HTTP 502", status=502)))
    assert collect(CONVERSATION, broken, make(num_layers=1)).startswith("x\n\n*(The reply broke off here")
    assert len([c for c in broken.calls if c.kind == "stream"]) == 1


def test_aggregator_silence_times_out() -> None:
    client = FakeModels(agg=Behaviour(latency=1.0))
    with pytest.raises(MoaError, match=r"sent nothing for 0\.2 s"):
        collect(CONVERSATION, client, make(num_layers=1, agent_timeout=0.2))
    assert client.cancelled == ["agg"]


def test_aggregator_gaps_are_each_bounded_by_the_timeout() -> None:
    slow = FakeModels(agg=Behaviour(chunks=["a", "b", "c"], chunk_delay=0.15))
    assert collect(CONVERSATION, slow, make(num_layers=1, agent_timeout=0.2)) == "abc"  # 0.3 s in all
    stuck = FakeModels(agg=Behaviour(chunks=["a", "b"], chunk_delay=0.3))
    # the first piece came in time: the reply keeps it and says where and why it stopped
    assert collect(CONVERSATION, stuck, make(num_layers=1, agent_timeout=0.2)) == (
        "a\n\n*(The reply broke off here: the aggregator agg sent nothing more for 0.2 s.)*"
    )


def test_aggregator_with_an_empty_answer_is_an_error() -> None:
    client = FakeModels(agg=Behaviour(chunks=["", ""]))
    with pytest.raises(MoaError, match="The aggregator agg returned an empty answer"):
        collect(CONVERSATION, client, make(num_layers=1))


# --- a model that failed is not asked again ------------------------------------------------------


def busy(model: str) -> ModelCallError:
    return ModelCallError(model, "HTTP 503: busy", status=503, retry_after=2.0)


def test_a_model_that_exhausted_its_retries_is_not_asked_in_later_layers() -> None:
    # b: 1 s, a Retry-After of 2 s, 1 s again: it fails for good at 4 s. The others take 1 s a call.
    client = FakeModels(**{m: Behaviour(latency=1.0) for m in ("a", "c", "agg")})
    client.behaviours["b"] = Behaviour(latency=1.0, failures=[busy("b")] * 10)
    recorder = Recorder()
    collect(CONVERSATION, client, make(max_retries=1, retry_base_delay=0.001), recorder)
    assert [c.at for c in client.calls if c.model == "b"] == [0.0, 3.0]  # layer 1 only
    assert [(c.model, c.at) for c in client.calls if c.at >= 4.0] == [("a", 4.0), ("c", 4.0), ("agg", 5.0)]
    descriptions = [s["description"] for s in recorder.statuses]
    assert "Layer 2/2: asking 2 agents (b left out after failing)" in descriptions
    assert "Layer 2/2: 2/3 agents answered" in descriptions
    # what happened, on the injected clock: asking b again would have made it 9.0 s
    assert descriptions[-1] == "Mixture of Agents: 2 layers, 2 of 3 agents answered, combined by agg in 6.0 s"


def test_a_model_that_failed_with_a_non_retryable_error_or_timed_out_is_not_asked_again() -> None:
    client = FakeModels(
        b=Behaviour(failures=[ModelCallError("b", "HTTP 400: bad", status=400)] * 3), c=Behaviour(latency=1000.0)
    )
    recorder = Recorder()
    text = collect(CONVERSATION, client, make(num_layers=3, show_intermediate=True, agent_timeout=0.5), recorder)
    assert len([c for c in client.calls if c.model == "b"]) == 1
    assert len([c for c in client.calls if c.model == "c"]) == 1 and client.cancelled == ["c"]
    layer2 = text.split("</details>\n\n")[1]
    assert "<summary>Layer 2 of 3: 1 of 3 agents answered</summary>" in layer2
    assert "**Agent 2** · `b`: no answer (not asked again after failing in layer 1)" in layer2
    assert "**Agent 3** · `c`: no answer (not asked again after failing in layer 1)" in layer2
    assert recorder.statuses[-1]["description"] == (
        "Mixture of Agents: 3 layers, 1 of 3 agents answered, combined by agg in 0.5 s"
    )


def test_a_model_that_answered_for_another_agent_or_answered_empty_is_asked_again() -> None:
    # agents 1 and 3 share model a: one failure of a, one answer, so a still works
    shared = FakeModels(a=Behaviour(failures=[ModelCallError("a", "HTTP 400", status=400)]))
    collect(CONVERSATION, shared, make(models=("a", "b"), num_agents_per_layer=3))
    assert len([c for c in shared.calls if c.model == "a"]) == 4
    empty = FakeModels(b=Behaviour(reply=""))
    collect(CONVERSATION, empty, make())
    assert len([c for c in empty.calls if c.model == "b"]) == 2


def test_the_summary_counts_in_words() -> None:
    recorder = Recorder()
    collect(CONVERSATION, FakeModels(), make(models=("a",), num_agents_per_layer=1, num_layers=1), recorder)
    assert recorder.statuses[-1]["description"] == (
        "Mixture of Agents: 1 layer, 1 of 1 agent answered, combined by agg in 0.0 s"
    )


# --- streaming, events, intermediate blocks ---------------------------------------------------------


def test_the_final_answer_streams_as_it_arrives() -> None:
    client = FakeModels(agg=Behaviour(chunks=["Hel", "lo", "!"], chunk_delay=0.1))

    async def main() -> list[tuple[str, float]]:
        arrivals = []
        async for piece in run_mixture(CONVERSATION, client, make(num_layers=1), Emitter(None), timing()):
            client.log.append(("got", piece))
            arrivals.append((piece, now()))
        return arrivals

    arrivals = run(main())
    # each piece reaches the caller before the model produces the next one
    assert client.log == [("sent", "Hel"), ("got", "Hel"), ("sent", "lo"), ("got", "lo"), ("sent", "!"), ("got", "!")]
    assert [at for _, at in arrivals] == pytest.approx([0.0, 0.1, 0.2])


def test_event_sequence() -> None:
    recorder = Recorder()
    collect(CONVERSATION, FakeModels(), make(num_layers=2), recorder)
    assert_valid_events(recorder.events)
    descriptions = [s["description"] for s in recorder.statuses]
    assert descriptions[0] == "Layer 1/2: asking 3 agents"
    assert "Layer 1/2: 3/3 agents answered" in descriptions
    assert descriptions.index("Layer 2/2: asking 3 agents") > descriptions.index("Layer 1/2: 3/3 agents answered")
    assert descriptions[-2] == "Aggregating 3 answers with agg"
    assert descriptions[-1] == "Mixture of Agents: 2 layers, 3 of 3 agents answered, combined by agg in 0.0 s"


def test_coalesced_statuses_still_end_with_done() -> None:
    recorder = Recorder()
    client = FakeModels(a=Behaviour(latency=0.01), b=Behaviour(latency=0.02))
    assert collect(CONVERSATION, client, make(), recorder, status_interval=10)
    assert_valid_events(recorder.events)
    assert len(recorder.events) == 2  # the first status, then (coalesced away) ... the final one


def test_no_statuses_when_the_indicator_is_off() -> None:
    recorder = Recorder()
    collect(CONVERSATION, FakeModels(), make(enable_status_indicator=False), recorder)
    assert recorder.events == []


def test_show_intermediate_puts_each_layer_in_a_collapsed_block() -> None:
    client = FakeModels(
        a=Behaviour(reply="A says <details>, </summary> and <think tags"),
        b=Behaviour(failures=[ModelCallError("b", "HTTP 400", status=400)] * 2),
    )
    text = collect(CONVERSATION, client, make(show_intermediate=True))
    blocks = text.split("</details>\n\n")
    assert len(blocks) == 3 and blocks[-1] == "agg answer #0"
    first = blocks[0]
    assert first.startswith(
        f'<details type="{DETAILS_TYPE}" done="true">\n<summary>Layer 1 of 2: 2 of 3 agents answered</summary>\n'
    )
    assert "**Agent 2** · `b`: no answer (HTTP 400)" in first
    # cannot open or close a block of ours, nor start reasoning
    assert "A says &lt;details>, &lt;/summary> and &lt;think tags" in first
    assert blocks[1].startswith(f'<details type="{DETAILS_TYPE}" done="true">\n<summary>Layer 2 of 2')
    assert clean_history([{"role": "assistant", "content": text}])[0]["content"] == "agg answer #0"


def test_closing_the_reply_cancels_agents_and_still_reports_done() -> None:
    client = FakeModels(a=Behaviour(latency=5), b=Behaviour(latency=5), c=Behaviour(latency=5))
    recorder = Recorder()

    async def main() -> None:
        reply = run_mixture(CONVERSATION, client, make(show_intermediate=True), Emitter(recorder), timing())
        task = asyncio.ensure_future(reply.__anext__())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await reply.aclose()

    run(main())
    assert sorted(client.cancelled) == ["a", "b", "c"]
    assert_valid_events(recorder.events)
    assert recorder.statuses[-1]["description"] == "Mixture of Agents stopped"


# --- tasks ---------------------------------------------------------------------------------------------


def test_task_is_one_call_to_the_aggregator() -> None:
    client = FakeModels(agg=Behaviour(reply='{"title": "Sums"}'))
    assert run(run_task(CONVERSATION, client, make(), timing())) == '{"title": "Sums"}'
    assert [(c.kind, c.model) for c in client.calls] == [("complete", "agg")]


def test_a_task_answer_loses_the_aggregators_reasoning() -> None:
    # Open WebUI 0.12.4 parses from the first "{" to the last "}": a "{" in the thoughts would break it
    reply = '<think>maybe {"follow_ups": []}?</think>\n{"follow_ups": ["And 4+4?", "Why?"]}'
    client = FakeModels(agg=Behaviour(reply=reply))
    assert run(run_task(CONVERSATION, client, make(), timing())) == '{"follow_ups": ["And 4+4?", "Why?"]}'


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (Behaviour(latency=10), r"gave no answer within 5 s"),
        (Behaviour(failures=[ModelUnavailable("agg", "gone")]), r"cannot use the model `agg`: gone"),
        (Behaviour(failures=[ModelCallError("agg", "HTTP 400: no", status=400)]), r"aggregator agg failed: HTTP 400"),
    ],
)
def test_task_failures_are_clear_errors(behaviour: Behaviour, message: str) -> None:
    with pytest.raises(MoaError, match=message):
        run(run_task(CONVERSATION, FakeModels(agg=behaviour), make(), timing()))


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
    try:
        assert collect(conversation, client, s, recorder)
    except MoaError as exc:
        assert str(exc)
    if indicator and recorder.events:
        assert_valid_events(recorder.events)


def test_every_valve_has_its_own_title() -> None:
    for name, info in MoaValves.model_fields.items():
        # pydantic would generate "Aggregator Model" from the name; the valves form shows the title
        assert info.title and info.title != name.replace("_", " ").title(), name
        assert info.description, name


# --- bounds and scrubbing --------------------------------------------------------------------------


def test_agent_answers_are_cut_before_the_next_layer_and_the_aggregator_read_them() -> None:
    client = FakeModels(a=Behaviour(reply="<think>" + "t" * 5000 + "</think>" + "w" * 3000))
    collect(CONVERSATION, client, make(max_answer_chars=1000, num_layers=2))
    references = client.calls[-1].messages[0]["content"]
    assert "w" * 1000 + "\n\n[The rest of this answer was cut: it was longer than 1,000 characters.]" in references
    assert "w" * 1001 not in references and "t" * 10 not in references


def test_the_reply_is_cut_with_a_note_at_its_longest_and_the_stream_is_closed() -> None:
    client = FakeModels(agg=Behaviour(chunks=["x" * 600] * 5))
    recorder = Recorder()
    reply = collect(CONVERSATION, client, make(num_layers=1, max_reply_chars=1000), recorder)
    assert reply == "x" * 1000 + (
        "\n\n*(The reply was cut here: it reached the longest reply this mixture sends, 1,000 characters.)*"
    )
    assert recorder.statuses[-1]["description"].endswith("; cut at 1,000 characters")
    assert [sent for what, sent in client.log if what == "sent"] == ["x" * 600] * 2  # not read further


def test_upstream_words_in_statuses_and_blocks_are_scrubbed_of_keys() -> None:
    leak = ModelCallError("b", "proxy refused key Bearer sk-live-0123456789abcdef\nline two")
    client = FakeModels(b=Behaviour(failures=[leak] * 3))
    recorder = Recorder()
    reply = collect(CONVERSATION, client, make(num_layers=1, show_intermediate=True, max_retries=1), recorder)
    shown = reply + json.dumps(recorder.events)
    assert "sk-live" not in shown and "0123456789abcdef" not in shown
    assert "b: proxy refused key Bearer ***" in shown
    assert all("\n" not in s["description"] for s in recorder.statuses)


def test_an_unexpected_failure_detail_is_scrubbed_and_bounded(caplog) -> None:
    class Broken(Exception):
        pass

    client = FakeModels(b=Behaviour(failures=[Broken("GET https://h/v1?key=AIzaSyAAAAAAAAAAAAAAAAAA " + "x" * 900)]))
    collect(CONVERSATION, client, make(num_layers=1))
    warnings = [r.getMessage() for r in caplog.records if "gave no answer" in r.getMessage()]
    assert warnings and "AIzaSyAAAA" not in warnings[0] and len(warnings[0]) < 700


def test_history_without_our_blocks_is_not_scanned_and_comes_through_unchanged() -> None:
    text = "<details type='reasoning'>kept</details>" + "<think>" * 10_000
    assert clean_history([{"role": "assistant", "content": text}])[0]["content"] == text
