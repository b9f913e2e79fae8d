"""What a Gemini reply cost: tokens split the way Google bills them, timings, and a price.

Open WebUI 0.12.4 keeps the `usage` dict of a reply's last chunk (or of a completion) with the
message and shows every key of it under the reply's info button (frontend ResponseMessage.svelte:
the JSON, one `key: value` line each); across the rounds of a tool loop it adds up the token and
cost keys (open_webui/utils/response.py, merge_usage: `cost` is one of them) and keeps the latest
value of the others. So the split and the timings are plain extra keys, and the price is `cost`.
"""

import fnmatch
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.gemini import GeminiError

PER_TOKENS = 1_000_000  # prices are per million tokens, as Google lists them
PRICE_FIELDS = ("input", "output", "cached", "thoughts")


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens. `cached` defaults to the input price, `thoughts` to the
    output price (Google bills thinking tokens as output)."""

    input: float
    output: float
    cached: float | None = None
    thoughts: float | None = None


def parse_prices(text: str) -> dict[str, Price]:
    """The PRICES valve: JSON `{"<model id or glob>": {"input": 0.3, "output": 2.5, "cached": 0.03}}`."""
    text = text.strip()
    if not text:
        return {}
    detail = 'PRICES must be JSON like {"gemini-2.5-flash": {"input": 0.3, "output": 2.5}} (dollars per million tokens)'
    try:
        table = json.loads(text)
    except ValueError:
        raise GeminiError("Gemini is not set up correctly: its price table is not valid.", detail) from None
    if not isinstance(table, dict):
        raise GeminiError("Gemini is not set up correctly: its price table is not valid.", detail)
    prices: dict[str, Price] = {}
    for model, entry in table.items():
        if not isinstance(entry, dict) or not {"input", "output"} <= entry.keys():
            raise GeminiError("Gemini is not set up correctly: its price table is not valid.", detail)
        values = {k: entry.get(k) for k in PRICE_FIELDS}
        if any(
            v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v < 0) for v in values.values()
        ):
            raise GeminiError("Gemini is not set up correctly: its price table is not valid.", detail)
        prices[str(model)] = Price(**{k: (float(v) if v is not None else None) for k, v in values.items()})  # type: ignore[arg-type]
    return prices


def price_of(model_id: str, prices: dict[str, Price]) -> Price | None:
    """The model's price: its exact id first, else the first matching glob."""
    if model_id in prices:
        return prices[model_id]
    return next((p for pattern, p in prices.items() if fnmatch.fnmatchcase(model_id, pattern)), None)


def _count(usage: dict[str, Any], *path: str) -> int:
    value: Any = usage
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class Timing:
    """When the call started, when its first text (or thought, or tool call) arrived, when it ended."""

    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    first: float | None = None
    ended: float | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()


def enrich(usage: dict[str, Any], *, model_id: str, prices: dict[str, Price], timing: Timing | None) -> dict[str, Any]:
    """The OpenAI usage dict with Google's split (prompt, cached, thoughts, output), the timings
    in seconds and, when the model has a price, the reply's `cost` in US dollars."""
    prompt = _count(usage, "prompt_tokens")
    cached = _count(usage, "prompt_tokens_details", "cached_tokens")
    thoughts = _count(usage, "completion_tokens_details", "reasoning_tokens")
    output = max(_count(usage, "completion_tokens") - thoughts, 0)
    out = dict(usage)
    out.update(
        {"prompt_tokens_uncached": prompt - cached, "cached_tokens": cached, "thoughts_tokens": thoughts,
         "answer_tokens": output}
    )  # fmt: skip
    if timing is not None:
        end = timing.ended if timing.ended is not None else timing.clock()
        if timing.first is not None:
            out["time_to_first_token_s"] = round(timing.first - timing.started, 3)
        out["total_time_s"] = round(end - timing.started, 3)
    price = price_of(model_id, prices)
    if price is not None:
        cached_price = price.input if price.cached is None else price.cached
        thoughts_price = price.output if price.thoughts is None else price.thoughts
        cost = (
            (prompt - cached) * price.input + cached * cached_price + thoughts * thoughts_price + output * price.output
        ) / PER_TOKENS
        out["cost"] = round(cost, 8)
    return out


def _has_content(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls"):
            return True
    return False


@dataclass
class UsageOptions:
    model_id: str
    prices: dict[str, Price] = field(default_factory=dict)


async def with_usage(
    chunks: AsyncIterator[dict[str, Any]], timing: Timing, options: UsageOptions
) -> AsyncIterator[dict[str, Any]]:
    """The stream, with the time of its first text noted and its usage chunk enriched."""
    try:
        async for chunk in chunks:
            if timing.first is None and _has_content(chunk):
                timing.first = timing.clock()
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                timing.ended = timing.clock()
                chunk = {
                    **chunk,
                    "usage": enrich(usage, model_id=options.model_id, prices=options.prices, timing=timing),
                }
            yield chunk
    finally:  # a stopped reply closes the Gemini stream now, not when the garbage collector runs
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def completion_with_usage(result: dict[str, Any], timing: Timing, options: UsageOptions) -> dict[str, Any]:
    """A non-streamed completion with its usage enriched (its first token is its whole answer)."""
    usage = result.get("usage")
    if not isinstance(usage, dict):
        return result
    timing.ended = timing.clock()
    timing.first = timing.ended
    return {**result, "usage": enrich(usage, model_id=options.model_id, prices=options.prices, timing=timing)}
