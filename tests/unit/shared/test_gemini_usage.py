"""Usage the way people ask for it: Google's token split, time to first token and total time, and
the cost from the PRICES valve, in the usage dict Open WebUI keeps and shows."""

from __future__ import annotations

import pytest

from tests.fakes import gemini as g
from tests.helpers import load_built
from tests.unit.plugins.test_gemini_manifold import KEY, body, run


@pytest.fixture(scope="module")
def mod():
    return load_built("gemini_manifold")


class Ticks:
    """A clock that moves 0.25 s each time it is read."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


@pytest.fixture
def fake():
    with g.FakeGemini(api_key=KEY) as server:
        yield server


def make_pipe(mod, fake, **valves):
    pipe = mod.Pipe()
    pipe.valves = pipe.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=fake.url, **valves)
    pipe.clock = Ticks()
    return pipe


PRICES = (
    '{"gemini-2.5-flash": {"input": 0.30, "output": 2.50, "cached": 0.03}, "gemini-2.5-*": {"input": 1, "output": 10}}'
)


def test_prices_are_parsed_and_checked(mod):
    prices = mod.parse_prices(PRICES)
    assert prices["gemini-2.5-flash"] == mod.Price(0.30, 2.50, 0.03, None)
    assert mod.price_of("gemini-2.5-flash", prices).cached == 0.03
    assert mod.price_of("gemini-2.5-pro", prices) == mod.Price(1.0, 10.0)  # the glob
    assert mod.price_of("gemini-3-pro-preview", prices) is None
    assert mod.parse_prices("") == {}
    for bad in (
        "[1]",
        "{",
        '{"m": {"input": 1}}',
        '{"m": {"input": -1, "output": 1}}',
        '{"m": {"input": true, "output": 1}}',
    ):
        with pytest.raises(mod.GeminiError, match="price table is not valid"):
            mod.parse_prices(bad)


def test_usage_is_split_timed_and_priced(mod):
    usage = {
        "prompt_tokens": 1_000_000,
        "completion_tokens": 300_000,
        "total_tokens": 1_300_000,
        "completion_tokens_details": {"reasoning_tokens": 100_000},
        "prompt_tokens_details": {"cached_tokens": 400_000},
    }
    timing = mod.Timing(lambda: 10.0)
    timing.first, timing.ended = 10.5, 12.0
    out = mod.enrich(usage, model_id="gemini-2.5-flash", prices=mod.parse_prices(PRICES), timing=timing)
    assert out["prompt_tokens_uncached"] == 600_000 and out["cached_tokens"] == 400_000
    assert out["thoughts_tokens"] == 100_000 and out["answer_tokens"] == 200_000
    assert out["time_to_first_token_s"] == 0.5 and out["total_time_s"] == 2.0
    # 0.6 M x 0.30 + 0.4 M x 0.03 + 0.1 M x 2.50 (thoughts bill as output) + 0.2 M x 2.50
    assert out["cost"] == pytest.approx(0.18 + 0.012 + 0.25 + 0.5)
    assert {k: out[k] for k in usage} == usage  # the OpenAI fields stay as they were
    unpriced = mod.enrich(usage, model_id="other", prices={}, timing=None)
    assert "cost" not in unpriced and "total_time_s" not in unpriced


async def test_a_streamed_reply_carries_the_split_the_timings_and_the_cost(mod, fake):
    pipe = make_pipe(mod, fake, PRICES=PRICES)
    meta = g.usage(prompt=2000, candidates=300, thoughts=700, cached=1000)
    fake.script([g.thought("hmm"), g.text("a"), g.text("b"), g.finish(usage_metadata=meta)])
    result, _ = await run(pipe, body())
    usage = result[-1]["usage"]
    assert usage["prompt_tokens"] == 2000 and usage["completion_tokens"] == 1000
    assert (usage["cached_tokens"], usage["thoughts_tokens"], usage["answer_tokens"]) == (1000, 700, 300)
    assert 0 < usage["time_to_first_token_s"] < usage["total_time_s"]
    assert usage["cost"] == pytest.approx((1000 * 0.30 + 1000 * 0.03 + 1000 * 2.50) / 1e6)
    assert all("usage" not in c for c in result[:-1])


async def test_a_completion_carries_them_too_and_no_price_means_no_cost(mod, fake):
    pipe = make_pipe(mod, fake)
    result, _ = await run(pipe, body(stream=False))
    usage = result["usage"]
    assert usage["prompt_tokens"] == 7 and usage["answer_tokens"] == 5 and "cost" not in usage
    assert usage["time_to_first_token_s"] == usage["total_time_s"] > 0


async def test_a_broken_price_table_costs_the_cost_line_not_the_chat(mod, fake, caplog):
    pipe = make_pipe(mod, fake, PRICES="{broken")
    result, _ = await run(pipe, body(stream=False))
    assert result["choices"][0]["message"]["content"].startswith("Echo:") and "cost" not in result["usage"]
    assert "price table" in caplog.text or "PRICES" in caplog.text


async def test_stopping_the_stream_closes_it(mod, fake):
    pipe = make_pipe(mod, fake)
    fake.script(g.Stream([g.text("a"), g.text("b"), g.finish()], delay=0.05))
    stream = await pipe.pipe(body(), __user__={"id": "u1", "role": "user"}, __event_emitter__=None)
    first = await anext(stream)
    assert first["choices"][0]["delta"]["content"] == "a"
    await stream.aclose()  # Open WebUI stops reading when the user stops the reply
