"""Retrying a call to a model server: which answers are worth another try, how long to wait.

One policy for every plugin of the pack. Retried: 408 (request timeout), 429 (rate limit or
quota) and 5xx server errors except 501 (not implemented) and 505 (HTTP version), which fail the
same way on every try. A server's own wait (Retry-After, Google's RetryInfo) is taken as given,
shorter or longer than the backoff: the server knows when it will take the request again (a caller
that cannot wait that long gives up instead, through `deadline` or its `classify`). The clock and
the sleep are parameters, so tests run without waiting.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

_NOT_RETRIED_5XX = frozenset({501, 505})


def retryable_status(status: int | None) -> bool:
    """True for HTTP statuses that may succeed when the same request is sent again."""
    if status is None:
        return False
    return status in (408, 429) or (500 <= status <= 599 and status not in _NOT_RETRIED_5XX)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (the form model servers send)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits base × factor**n, scaled by (1 - jitter … 1),
    at most `max_delay`; a wait the server asked for replaces it."""

    base: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.5

    def delay(
        self, attempt: int, retry_after: float | None = None, *, rand: Callable[[], float] = random.random
    ) -> float:
        if retry_after is not None:
            return retry_after
        return min(self.base * self.factor**attempt * (1.0 - self.jitter * rand()), self.max_delay)


@dataclass(frozen=True)
class RetryPlan:
    """What a failure means: retry it (after the server's wait, if it named one) or give up."""

    retry: bool
    retry_after: float | None = None


Classify = Callable[[BaseException], RetryPlan]
OnRetry = Callable[[BaseException, int, float], Awaitable[None]]


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    classify: Classify,
    max_retries: int,
    backoff: Backoff | None = None,
    on_retry: OnRetry | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Run `operation` until it succeeds, fails for good, or `max_retries` retries are used.

    `classify` decides per exception (an exception it does not plan to retry is raised as it is);
    `on_retry(exc, attempt, delay)` runs before each wait (attempt counts from 1); a retry whose wait
    would end after `deadline` (a `clock()` value) is not started: the failure is raised instead.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            plan = classify(exc)
            if not plan.retry or attempt >= max_retries:
                raise
            delay = (backoff or Backoff()).delay(attempt, plan.retry_after)
            if deadline is not None and clock() + delay > deadline:
                raise
            attempt += 1
            if on_retry is not None:
                await on_retry(exc, attempt, delay)
            await sleep(delay)
