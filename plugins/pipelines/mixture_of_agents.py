"""
title: Mixture of Agents (Pipelines)
author: Open WebUI Pack contributors
version: 0.1.0
description: Mixture of Agents for the Pipelines server; agents and aggregator on one OpenAI-compatible endpoint.
license: MIT
required_open_webui_version: 0.6.43
"""

import asyncio
import contextlib
import json
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from pydantic import Field

from shared.events import Emitter, EventPayload, wire
from shared.messages import is_admin
from shared.moa import (
    ChatMessage,
    MoaError,
    MoaSettings,
    MoaValves,
    check_settings,
    message_for,
    run_mixture,
    run_task,
    sampling_params,
)
from shared.openai_wire import ModelCallError, completion_text, error_from_status, stream_text
from shared.retry import parse_retry_after
from shared.secrets import redact, scrub_upstream

# Open WebUI's built-in task prompts (title, tags, follow-ups, queries) all start like this and
# quote the chat in <chat_history>; Pipelines never learn the task name, so such requests get one
# aggregator call, not the mixture. The RAG template starts the same way but quotes <context>.
TASK_PROMPT_START = "### Task:"
TASK_PROMPT_MARK = "<chat_history>"


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What a broken connection raises: aiohttp's errors, and the socket's own (a reset, a cut
    read) that some aiohttp versions let through unwrapped."""
    try:
        import aiohttp
    except ImportError:  # the pipeline's requirement; the call itself says so
        return (ConnectionError, asyncio.IncompleteReadError)
    return (aiohttp.ClientError, ConnectionError, asyncio.IncompleteReadError)


TRANSPORT_ERRORS = _transport_errors()


class OpenAIEndpoint:
    """An OpenAI-compatible `/chat/completions` endpoint reached with aiohttp."""

    def __init__(self, session: Any, base_url: str, api_key: str, params: dict[str, Any]) -> None:
        self.session = session
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.params = params

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def unreachable(self, model: str, exc: Exception) -> ModelCallError:
        """A transport failure: a plain phrase for everyone, aiohttp's own words for the log."""
        import aiohttp

        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = "cannot reach the endpoint"
        elif isinstance(exc, aiohttp.ServerTimeoutError):
            reason = "the endpoint did not answer in time"
        else:  # dropped connection, truncated body, reset
            reason = "the connection to the endpoint broke off"
        detail = scrub_upstream(f"{type(exc).__name__}: {exc}", (self.api_key,), 500)
        return ModelCallError(model, reason, retryable=True, detail=detail)

    def scrubbed(self, exc: ModelCallError) -> ModelCallError:
        """The error without this endpoint's key: an upstream may quote it in any error text, an HTTP
        200 body or a stream's error line included, and the reason reaches status lines."""
        exc.reason = scrub_upstream(exc.reason, (self.api_key,))
        exc.detail = scrub_upstream(exc.detail, (self.api_key,))
        exc.args = tuple(scrub_upstream(str(arg), (self.api_key,)) for arg in exc.args)
        return exc

    async def failure(self, model: str, response: Any) -> ModelCallError:
        # Some upstreams echo the key in their error text; it reaches status lines from here.
        text = redact(await response.text(), (self.api_key,))
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return error_from_status(model, response.status, body, parse_retry_after(response.headers.get("Retry-After")))

    async def complete(self, model: str, messages: list[ChatMessage]) -> str:
        try:
            return await self._complete(model, messages)
        except ModelCallError as exc:
            raise self.scrubbed(exc) from None

    async def stream(self, model: str, messages: list[ChatMessage]) -> AsyncIterator[str]:
        try:
            async with contextlib.aclosing(self._stream(model, messages)) as pieces:
                async for piece in pieces:
                    yield piece
        except ModelCallError as exc:
            raise self.scrubbed(exc) from None

    async def _complete(self, model: str, messages: list[ChatMessage]) -> str:

        payload = {**self.params, "model": model, "messages": messages, "stream": False}
        try:
            async with self.session.post(self.url, json=payload, headers=self.headers()) as response:
                if response.status >= 400:
                    raise await self.failure(model, response)
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    raise ModelCallError(model, "the endpoint did not answer with JSON") from None
                return completion_text(model, data)
        except TRANSPORT_ERRORS as exc:
            raise self.unreachable(model, exc) from None

    async def _stream(self, model: str, messages: list[ChatMessage]) -> AsyncIterator[str]:

        payload = {**self.params, "model": model, "messages": messages, "stream": True}
        try:
            async with self.session.post(self.url, json=payload, headers=self.headers()) as response:
                if response.status >= 400:
                    raise await self.failure(model, response)
                if "text/event-stream" in response.headers.get("Content-Type", ""):
                    async for piece in stream_text(model, response.content):
                        yield piece
                    return
                try:  # some servers ignore "stream" and answer in one piece
                    data = await response.json(content_type=None)
                except ValueError:
                    raise ModelCallError(model, "the endpoint answered neither SSE nor JSON") from None
                yield completion_text(model, data)
        except TRANSPORT_ERRORS as exc:
            raise self.unreachable(model, exc) from None


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_FINISHED = object()


def drive(job: Callable[[Callable[[Any], None]], Awaitable[None]]) -> Iterator[Any]:
    """Run an async job on a private event loop in a worker thread; yield what it puts.

    The Pipelines server calls `pipe` from a threadpool, and a caller may also have a loop
    running in its own thread: a private loop works in both. Closing the iterator early
    (the client went away) cancels the job.
    """
    items: queue.SimpleQueue[Any] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()
    running: list[asyncio.Task[Any]] = []

    async def main() -> None:
        task = asyncio.current_task()
        if task is not None:
            running.append(task)
        try:
            await job(items.put)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:
            items.put(_Failed(exc))

    def work() -> None:
        try:
            loop.run_until_complete(main())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            items.put(_FINISHED)

    worker = threading.Thread(target=work, name="mixture-of-agents", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _FINISHED:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        if worker.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(lambda: [t.cancel() for t in running])


def is_task_request(messages: list[Any], streaming: bool) -> bool:
    if streaming or not messages or not isinstance(messages[-1], dict):
        return False
    content = messages[-1].get("content")
    return (
        messages[-1].get("role") == "user"
        and isinstance(content, str)
        and content.startswith(TASK_PROMPT_START)
        and TASK_PROMPT_MARK in content
    )


class Pipeline:
    class Valves(MoaValves):
        openai_api_base: str = Field(
            default_factory=lambda: os.getenv("OPENAI_API_BASE_URL", "https://api.openai.com/v1"),
            title="API base URL",
            description="OpenAI-compatible base URL serving every agent and the aggregator (ends in /v1).",
        )
        openai_api_key: str = Field(
            default_factory=lambda: os.getenv("OPENAI_API_KEY", ""),
            title="API key",
            description="API key for that endpoint; never logged or shown in messages.",
            json_schema_extra={"input": {"type": "password"}},
        )

    def __init__(self) -> None:
        self.name = "Mixture of Agents"
        self.valves = self.Valves()

    async def on_startup(self) -> None:
        pass

    async def on_shutdown(self) -> None:
        pass

    def pipe(
        self, user_message: str, model_id: str, messages: list[dict], body: dict
    ) -> str | dict | Iterator[str | dict]:
        # Called synchronously in the server's threadpool. Streaming: a generator of text and
        # {"event": ...} dicts, each sent as one `data:` line. Not streaming: the answer as a str,
        # because the server would join event dicts into the text.
        body = body if isinstance(body, dict) else {}
        streaming = bool(body.get("stream", True))
        valves = self.valves.model_copy()  # one request sees one set of valves
        conversation = messages if isinstance(messages, list) else body.get("messages")
        task = is_task_request(conversation if isinstance(conversation, list) else [], streaming)
        # Open WebUI 0.12.4 (routers/openai.py) adds the chatting user, role included, to the body.
        admin = is_admin(body.get("user"))
        job = pipeline_job(valves, conversation, sampling_params(body), streaming, task, admin)
        if streaming:
            return drive(job)
        try:
            return "".join(item for item in drive(job) if isinstance(item, str))
        except MoaError as exc:
            # The server returns a dict as it is, and Open WebUI shows `error` as the message's
            # error; an exception would reach the user as a bare "Internal Server Error".
            return {"error": {"detail": redact(message_for(exc, admin=admin), (valves.openai_api_key,))}}


class KeyFilter:
    """Streamed text with the key replaced, even when the key is split across two pieces: a piece's
    end that could be the key's beginning waits for the next piece (or the end) before it is sent."""

    def __init__(self, key: str) -> None:
        self.key = key if len(key) >= 4 else ""
        self.held = ""

    def feed(self, piece: str) -> str:
        if not self.key:
            return piece
        text = redact(self.held + piece, (self.key,))
        tail_start = max(0, len(text) - len(self.key) + 1)
        start = text.find(self.key[0], tail_start)
        while start >= 0 and not self.key.startswith(text[start:]):
            start = text.find(self.key[0], start + 1)
        cut = len(text) if start < 0 else start
        self.held = text[cut:]
        return text[:cut]

    def flush(self) -> str:
        rest, self.held = self.held, ""
        return rest


def without_key(item: Any, key: tuple[str, ...]) -> Any:
    """`item` (text, or an event or error dict) with the key replaced in every string it holds."""
    if isinstance(item, str):
        return redact(item, key)
    if isinstance(item, dict):
        return {name: without_key(value, key) for name, value in item.items()}
    if isinstance(item, list):
        return [without_key(value, key) for value in item]
    return item


def pipeline_job(
    valves: Any, conversation: Any, params: dict[str, Any], streaming: bool, task: bool, admin: bool = False
) -> Callable[[Callable[[Any], None]], Awaitable[None]]:
    async def job(put: Callable[[Any], None]) -> None:
        import aiohttp

        key = (valves.openai_api_key,)
        text_filter = KeyFilter(valves.openai_api_key)

        def put_shown(item: Any) -> None:
            # The last line behind OpenAIEndpoint.scrubbed: nothing this job sends carries the key,
            # not even an answer that quotes it.
            if isinstance(item, str):
                item = text_filter.feed(item)
                if not item:
                    return
            put(without_key(item, key))

        def flush() -> None:
            rest = text_filter.flush()
            if rest:
                put(rest)

        async def to_wire(event: EventPayload) -> None:
            put_shown(wire(event))

        settings = MoaSettings.from_valves(valves)
        events = Emitter(to_wire if streaming else None, status_interval=valves.emit_interval)
        try:
            check_settings(settings)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                client = OpenAIEndpoint(session, valves.openai_api_base, valves.openai_api_key, params)
                try:
                    if task:
                        put_shown(await run_task(conversation, client, settings))
                        return
                    async with contextlib.aclosing(run_mixture(conversation, client, settings, events)) as pieces:
                        async for piece in pieces:
                            put_shown(piece)
                finally:
                    flush()
        except MoaError as exc:
            if not streaming:
                raise
            # Open WebUI 0.12.4 (open_webui/utils/middleware.py) shows a `data: {"error": ...}` line
            # of a streamed reply as the message's error.
            put({"error": {"detail": redact(message_for(exc, admin=admin), (valves.openai_api_key,))}})

    return job
