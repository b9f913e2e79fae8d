"""shared/openai_wire.py: answers, streams and error bodies of the OpenAI chat-completions wire."""

from collections.abc import AsyncIterator

import pytest

from shared.openai_wire import (
    ModelCallError,
    ModelUnavailable,
    UnreadableLine,
    completion_text,
    error_from_status,
    error_text,
    reads_as_internals,
    sse_data,
    stream_text,
)


async def from_pieces(*pieces: str | bytes) -> AsyncIterator[str | bytes]:
    for piece in pieces:
        yield piece


async def test_sse_parsing_survives_split_lines_bytes_and_noise() -> None:
    lines = from_pieces(
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\ndata: {"choi',
        'ces":[{"delta":{"content":"Hi"}}]}\n\n',
        'data: {"event": {"type": "status", "data": {}}}\n\n: keep-alive\n\n',
        'data: {"choices":[{"delta":{"content":" there"}}]}\n\ndata: [DONE]\n\n',
        'data: {"choices":[{"delta":{"content":"after done"}}]}\n\n',
    )
    assert [t async for t in stream_text("m", lines)] == ["Hi", " there"]


async def test_sse_last_line_without_a_newline() -> None:
    items = [item async for item in sse_data(from_pieces(": ping\n", 'data: {"x": 1}'))]
    assert items == [{"x": 1}]


@pytest.mark.parametrize(
    "pieces",
    [
        ("data: {broken\n", 'data: {"choices": [{"delta": {"content": "x"}}]}\n'),
        ('data: {"choices": [{"delta": {"content": "x"}}]}\n', "data: <html>502 Bad Gateway"),
        ('data: {"choices": [{"delta": {"content": "x"}}]}\n', 'data: {"choi'),  # cut inside the last line
    ],
)
async def test_a_stream_line_that_is_not_json_is_a_failure_not_a_gap(pieces) -> None:
    with pytest.raises(UnreadableLine):
        [item async for item in sse_data(from_pieces(*pieces))]
    with pytest.raises(ModelCallError, match="the answer could not be read") as raised:
        [t async for t in stream_text("m", from_pieces(*pieces))]
    assert "a stream line that is not JSON" in raised.value.detail and not raised.value.retryable


async def test_upstream_error_text_is_scrubbed_of_key_shapes_and_bounded() -> None:
    line = 'data: {"error": {"message": "proxy refused key Bearer sk-live-abcdef123456"}}\n'
    with pytest.raises(ModelCallError) as raised:
        [t async for t in stream_text("m", from_pieces(line))]
    assert raised.value.reason == "proxy refused key Bearer ***"
    with pytest.raises(ModelCallError) as raised:
        completion_text("m", {"error": {"message": "bad key sk-live-abcdef123456 " + "x" * 5000}})
    assert "sk-live" not in str(raised.value) and len(raised.value.reason) <= 500
    failed = error_from_status("m", 500, {"detail": "GET https://h/v1?key=AIzaSyAAAAAAAAAAAAAAAA failed"})
    assert "AIzaSyAAA" not in failed.reason + failed.detail
    garbage = completion_text_error("<html>token=sk-live-abcdef123456</html>")
    assert "sk-live" not in garbage.detail and garbage.detail.startswith("a str instead of a chat completion: ")


def completion_text_error(payload: object) -> ModelCallError:
    with pytest.raises(ModelCallError) as raised:
        completion_text("m", payload)
    return raised.value


async def test_content_parts_in_a_delta_are_joined() -> None:
    chunk = 'data: {"choices":[{"delta":{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}}]}\n'
    assert [t async for t in stream_text("m", from_pieces(chunk))] == ["ab"]


async def test_an_error_line_raises_with_its_message_and_code() -> None:
    with pytest.raises(ModelCallError, match="boom") as raised:
        [t async for t in stream_text("m", from_pieces('data: {"error": {"detail": "boom"}}\n\n'))]
    assert raised.value.status is None and not raised.value.retryable
    line = 'data: {"error": {"message": "slow down", "code": 429}}\n'
    with pytest.raises(ModelCallError) as raised:
        [t async for t in stream_text("m", from_pieces(line))]
    assert raised.value.reason == "slow down" and raised.value.status == 429 and raised.value.retryable


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ({"error": {"message": "bad key", "type": "invalid_request_error"}}, "bad key"),
        ({"detail": "Open WebUI: Server Connection Error"}, "Open WebUI: Server Connection Error"),
        ({"error": {"detail": {"message": "nested"}}}, "nested"),
        ({"error": "plain"}, "plain"),
        ("  upstream text  ", "upstream text"),
        ({}, "no details given"),
        (None, "no details given"),
    ],
)
def test_error_text(payload, text) -> None:
    assert error_text(payload) == text


def test_error_from_status_tells_setup_problems_from_passing_ones() -> None:
    missing = error_from_status("m", 404, {"error": {"message": "The model `m` does not exist."}})
    assert isinstance(missing, ModelUnavailable) and not missing.retryable
    assert missing.reason == "the model was not found (HTTP 404: The model `m` does not exist.)"
    refused = error_from_status("m", 401, {"error": {"message": "Incorrect API key sk-abc"}})
    assert isinstance(refused, ModelUnavailable)
    assert refused.reason == "the endpoint refused the credentials (HTTP 401)"  # the key is not quoted
    busy = error_from_status("m", 429, {"error": {"message": "later"}}, retry_after=2.0)
    assert type(busy) is ModelCallError and busy.retryable and busy.retry_after == 2.0
    assert str(busy) == "m: HTTP 429: later"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(408, True), (429, True), (500, True), (502, True), (503, True), (400, False), (501, False), (505, False)],
)
def test_retryable_follows_the_packs_one_retry_policy(status, retryable) -> None:
    assert error_from_status("m", status, {}).retryable is retryable
    assert ModelCallError("m", "x", status=status).retryable is retryable


def test_a_caller_may_say_retryable_itself() -> None:
    assert ModelCallError("m", "connection reset", retryable=True).retryable
    assert not ModelCallError("m", "x").retryable


def test_completion_text() -> None:
    assert completion_text("m", {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}) == "hi"
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]}
    assert completion_text("m", parts) == "ab"
    assert completion_text("m", {"choices": [{"message": {"content": None}}]}) == ""
    with pytest.raises(ModelCallError, match="quota exceeded"):
        completion_text("m", {"error": {"message": "quota exceeded"}})
    with pytest.raises(ModelCallError, match="the answer has no message"):
        completion_text("m", {"choices": []})
    with pytest.raises(ModelCallError, match="the answer could not be read") as raised:
        completion_text("m", "text")
    assert raised.value.detail == "a str instead of a chat completion: text"


@pytest.mark.parametrize(
    "text",
    [
        "ValueError: invalid literal",
        'Traceback (most recent call last):\n  File "app.py", line 3',
        "Response payload is not completed: <TransferEncodingError: 400>",
        "httpx.ReadTimeout",
        "<!DOCTYPE html><html><body>502 Bad Gateway</body></html>",
        "<class 'KeyError'>",
    ],
)
def test_an_upstream_text_that_reads_as_internals_goes_to_the_detail(text) -> None:
    assert reads_as_internals(text)
    failed = error_from_status("m", 500, {"detail": text})
    assert failed.reason == "HTTP 500" and failed.detail == text
    missing = error_from_status("m", 404, text)
    assert missing.reason == "the model was not found (HTTP 404)" and missing.detail == text.strip()[:300]
    with pytest.raises(ModelCallError) as raised:
        completion_text("m", {"error": {"message": text}})
    assert raised.value.reason == "the model reported an error" and raised.value.detail == text


@pytest.mark.parametrize(
    "text", ["Open WebUI: Server Connection Error", "Gateway Timeout", "Rate limit reached, slow down", "Server error"]
)
def test_an_upstream_sentence_stays_in_the_reason(text) -> None:
    assert not reads_as_internals(text)
    failed = error_from_status("m", 502, {"detail": text})
    assert failed.reason == f"HTTP 502: {text}" and failed.detail == ""


async def test_an_error_line_with_internals_keeps_them_out_of_the_reason() -> None:
    line = 'data: {"error": {"message": "KeyError: \'choices\'"}}\n'
    with pytest.raises(ModelCallError) as raised:
        [t async for t in stream_text("m", from_pieces(line))]
    assert raised.value.reason == "the model reported an error" and "KeyError" in raised.value.detail
