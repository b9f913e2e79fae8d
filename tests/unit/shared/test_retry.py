import pytest

from shared.retry import Backoff, RetryPlan, parse_retry_after, retryable_status, with_retries


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_retried_statuses(status):
    assert retryable_status(status)


@pytest.mark.parametrize("status", [None, 200, 400, 401, 403, 404, 422, 501, 505])
def test_statuses_that_fail_the_same_way_every_time(status):
    assert not retryable_status(status)


def test_retry_after_header():
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-1") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_is_capped_and_honours_the_server():
    backoff = Backoff(base=1.0, factor=2.0, max_delay=30.0, jitter=0.5)
    assert [backoff.delay(n, rand=lambda: 0.0) for n in range(6)] == [1, 2, 4, 8, 16, 30]
    assert backoff.delay(1, rand=lambda: 1.0) == 1.0  # full jitter halves it
    assert backoff.delay(3, retry_after=0.05, rand=lambda: 0.0) == 0.05  # the server's wait, as given
    assert backoff.delay(0, retry_after=45.0, rand=lambda: 0.0) == 45.0  # not cut to max_delay


class Flaky(Exception):
    def __init__(self, status, after=None):
        super().__init__(status)
        self.status, self.after = status, after


def classify(exc):
    if isinstance(exc, Flaky):
        return RetryPlan(retryable_status(exc.status), exc.after)
    return RetryPlan(False)


async def test_retries_then_succeeds_with_notices_and_injected_sleep():
    failures = [Flaky(503), Flaky(429, 3.0)]
    slept, notices = [], []

    async def operation():
        if failures:
            raise failures.pop(0)
        return "ok"

    async def on_retry(exc, attempt, delay):
        notices.append((exc.status, attempt, delay))

    async def sleep(seconds):
        slept.append(seconds)

    backoff = Backoff(base=1.0, jitter=0.0)
    result = await with_retries(
        operation, classify=classify, max_retries=2, backoff=backoff, on_retry=on_retry, sleep=sleep
    )
    assert result == "ok"
    assert notices == [(503, 1, 1.0), (429, 2, 3.0)]
    assert slept == [1.0, 3.0]


async def test_gives_up_after_max_retries_and_on_errors_not_worth_retrying():
    calls = []

    async def always(status):
        calls.append(status)
        raise Flaky(status)

    async def no_sleep(_):
        return None

    with pytest.raises(Flaky):
        await with_retries(lambda: always(500), classify=classify, max_retries=2, sleep=no_sleep)
    assert calls == [500, 500, 500]
    calls.clear()
    with pytest.raises(Flaky):
        await with_retries(lambda: always(404), classify=classify, max_retries=5, sleep=no_sleep)
    assert calls == [404]
    calls.clear()
    with pytest.raises(ValueError):
        await with_retries(lambda: (_ for _ in ()).throw(ValueError()), classify=classify, max_retries=3)


async def test_a_retry_that_would_end_past_the_deadline_is_not_started():
    now = [100.0]
    slept = []

    async def operation():
        raise Flaky(503)

    async def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    with pytest.raises(Flaky):
        await with_retries(
            operation,
            classify=classify,
            max_retries=10,
            backoff=Backoff(base=1.0, jitter=0.0),
            deadline=104.0,
            clock=lambda: now[0],
            sleep=sleep,
        )
    assert slept == [1.0, 2.0]  # 100 -> 101 -> 103; the next wait (4 s) would end at 107
