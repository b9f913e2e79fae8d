"""The OpenAI chat-completions wire: answers, streams and error bodies, whoever serves them.

Open WebUI's own chat path, the Pipelines server and any OpenAI-compatible endpoint all speak
this format, so the parsing lives here, apart from any host: a plugin hands in the decoded body
or the stream's lines and gets text back, or a `ModelCallError` that says whether another try
may help.
"""

import json
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from shared.retry import retryable_status
from shared.secrets import scrub_upstream
from shared.text import content_text

# Upstream text kept in an error: enough for any message, bounded for the log and the status line.
UPSTREAM_TEXT_LIMIT = 500


class ModelCallError(Exception):
    """One call to a model failed. `retryable`: worth another try (see shared/retry.py for the
    statuses; a dropped connection is retryable too, which its caller says).

    `reason` is a phrase any user may read ("HTTP 429: slow down", "cannot reach the model
    server"); `detail` is what only the server log and an administrator need (the exception, the
    upstream's own text when it reads like a program's internals).
    """

    def __init__(
        self,
        model: str,
        reason: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(f"{model}: {reason}")
        self.model = model
        self.reason = reason
        self.status = status
        self.retryable = retryable_status(status) if retryable is None else retryable
        self.retry_after = retry_after
        self.detail = detail


class ModelUnavailable(ModelCallError):
    """The model cannot be used at all (unknown, no access, credentials refused): a setup problem.

    `access`: the user may simply lack access to the model, which an administrator can grant.
    """

    def __init__(
        self, model: str, reason: str, *, status: int | None = None, access: bool = False, detail: str = ""
    ) -> None:
        super().__init__(model, reason, status=status, retryable=False, detail=detail)
        self.access = access


# What marks a text as a program's internals rather than a sentence: exception class names
# (TimeoutError, OSError, HTTPError, ClientPayloadError, ReadTimeout, StopIteration ...),
# tracebacks, reprs.
_INTERNALS = re.compile(
    r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception|Exc|Timeout|Interrupt|Iteration|Exit|Warning|Group)\b"
    r"|\bIncompleteRead\b|Traceback \(most recent call last\)|\bFile \"|<class '|\bobject at 0x"
    r"|(?i:\A\s*<(?:!doctype|html|head|body)\b)"  # an HTML error page
)


def reads_as_internals(text: str) -> bool:
    """Whether `text` names exception classes or quotes a traceback (not for a user's eyes).

    Only the start is read (the part a message would quote), so the work is bounded.
    """
    return bool(_INTERNALS.search(text, 0, 4 * UPSTREAM_TEXT_LIMIT))


def with_upstream_text(prefix: str, text: str) -> tuple[str, str]:
    """(reason, detail) for an upstream's error text: quoted after `prefix` when it reads as a sentence.

    The text is scrubbed of key shapes first (a proxy may quote the key it refused) and cut.
    """
    text = scrub_upstream(text, limit=UPSTREAM_TEXT_LIMIT)
    if not text or reads_as_internals(text):
        return prefix, text
    return (f"{prefix}: {text}" if prefix else text), ""


def _reported(text: str) -> tuple[str, str]:
    """(reason, detail) for an error the model's answer carries."""
    reason, detail = with_upstream_text("", text)
    return reason or "the model reported an error", detail


def error_text(payload: Any) -> str:
    """The human part of an OpenAI / Open WebUI error body."""
    if isinstance(payload, dict):
        inner = payload.get("error", payload)
        if isinstance(inner, dict):
            for key in ("message", "detail", "content"):
                value = inner.get(key)
                if isinstance(value, str) and value:
                    return value
                if isinstance(value, dict):
                    return error_text(value)
        elif isinstance(inner, str) and inner:
            return inner
        detail = payload.get("detail")
        if isinstance(detail, str) and detail:
            return detail
    if isinstance(payload, str) and payload.strip():
        return payload.strip()[:300]
    return "no details given"


def error_from_status(model: str, status: int, body: Any, retry_after: float | None = None) -> ModelCallError:
    """The exception for an HTTP error answer; 401/403/404 mean the setup is wrong."""
    reason, detail = with_upstream_text(f"HTTP {status}", error_text(body))
    if status == 404:
        return ModelUnavailable(model, f"the model was not found ({reason})", status=status, detail=detail)
    if status in (401, 403):
        # Upstream messages for a bad key may quote part of it; keep only the status.
        return ModelUnavailable(model, f"the endpoint refused the credentials (HTTP {status})", status=status)
    return ModelCallError(model, reason, status=status, retry_after=retry_after, detail=detail)


def completion_text(model: str, payload: Any) -> str:
    """`choices[0].message.content` of a chat.completion, or the error it carries."""
    if not isinstance(payload, dict):
        sample = payload if isinstance(payload, str) else ""
        raise unreadable(model, f"a {type(payload).__name__} instead of a chat completion", sample)
    choices = payload.get("choices")
    if not choices and payload.get("error"):
        reason, detail = _reported(error_text(payload))
        raise ModelCallError(model, reason, detail=detail)
    try:
        content = choices[0]["message"].get("content")
    except (TypeError, KeyError, IndexError, AttributeError):
        raise ModelCallError(model, "the answer has no message") from None
    return content_text(content, separator="")


class UnreadableLine(ValueError):
    """A `data:` line of a stream that is not JSON: the stream is garbage, not an answer."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


_SSE_DONE = object()


def _sse_json(line: str) -> object:
    line = line.strip()
    if not line.startswith("data:"):
        return None  # comments (": keep-alive"), `event:` and `id:` lines, blank separators
    data = line[5:].strip()
    if data == "[DONE]":
        return _SSE_DONE
    try:
        return json.loads(data)
    except ValueError:
        raise UnreadableLine(line) from None


async def sse_data(lines: AsyncIterator[str | bytes]) -> AsyncIterator[dict[str, Any]]:
    """JSON objects from `data:` lines, up to `data: [DONE]`; the pieces may split or join lines anywhere.

    A `data:` line that is not JSON raises `UnreadableLine`, a stream cut inside its last line too.
    """
    buffer = ""
    async for piece in lines:
        buffer += piece.decode("utf-8", "replace") if isinstance(piece, bytes | bytearray) else str(piece)
        *complete, buffer = buffer.split("\n")
        for line in complete:
            item = _sse_json(line)
            if item is _SSE_DONE:
                return
            if isinstance(item, dict):
                yield item
    item = _sse_json(buffer)
    if isinstance(item, dict):
        yield item


def unreadable(model: str, what: str, sample: str = "") -> ModelCallError:
    """The error for an answer that is not the format asked for (`what` says what it was)."""
    shown = " ".join(scrub_upstream(sample, limit=120).split())
    return ModelCallError(model, "the answer could not be read", detail=f"{what}: {shown}" if shown else what)


async def stream_text(model: str, lines: AsyncIterator[str | bytes]) -> AsyncIterator[str]:
    """The content deltas of an OpenAI SSE stream. An error line raises `ModelCallError`, and so does
    a line that is not JSON: garbage is not an answer."""
    async with aclosing(sse_data(lines)) as items:
        try:
            async for item in items:
                text = _delta_text(model, item)
                if text:
                    yield text
        except UnreadableLine as exc:
            raise unreadable(model, "a stream line that is not JSON", exc.line) from None


def _delta_text(model: str, item: dict[str, Any]) -> str:
    choices = item.get("choices")
    if not choices:
        if item.get("error"):
            error = item["error"]
            code = error.get("code") if isinstance(error, dict) else None
            reason, detail = _reported(error_text(item))
            raise ModelCallError(model, reason, status=code if isinstance(code, int) else None, detail=detail)
        return ""  # usage chunks, {"event": ...} lines of nested pipes, selected_model_id
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    return content_text(delta.get("content"), separator="") if isinstance(delta, dict) else ""
