"""
title: Mixture of Agents
author: Open WebUI Pack contributors
version: 0.1.0
description: Several models answer in layers, each refining the last; an aggregator streams one combined reply.
license: MIT
required_open_webui_version: 0.6.43
"""

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from shared.events import Emitter
from shared.host import ChatHost, HostRefusal, ModelNotFound
from shared.messages import is_admin
from shared.moa import (
    ASK_ADMIN,
    MODEL_VALVES,
    ChatMessage,
    MoaError,
    MoaSettings,
    MoaValves,
    check_settings,
    message_for,
    run_mixture,
    run_task,
    sampling_params,
    unavailable_error,
)
from shared.openai_wire import (
    ModelCallError,
    ModelUnavailable,
    completion_text,
    error_from_status,
    stream_text,
    unreadable,
)
from shared.retry import parse_retry_after
from shared.secrets import scrub_upstream

# Metadata key carrying the ids of the mixture pipes already running in this request.
CALLERS_KEY = "mixture_of_agents_callers"


def call_error(model: str, exc: Exception) -> ModelCallError:
    """What an exception from Open WebUI's chat call means for this model."""
    if isinstance(exc, ModelNotFound):  # an unknown id, or one the user may not use
        return ModelUnavailable(model, "it does not exist or you do not have access to it", access=True)
    if isinstance(exc, HostRefusal):  # an HTTP error from one of Open WebUI's routers
        return error_from_status(model, exc.status_code, {"detail": exc.detail})
    # Anything else raised on the way is a program's internals: the log and administrators get them.
    reason = "the call failed" if str(exc) else "the call failed without saying why"
    return ModelCallError(model, reason, detail=scrub_upstream(f"{type(exc).__name__}: {exc}", limit=500))


def text_body(text: str) -> Any:
    """A body's text decoded as JSON, or the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def response_body(response: Any) -> Any:
    """The decoded body of a starlette JSONResponse / PlainTextResponse."""
    raw = getattr(response, "body", b"")
    return text_body(raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw))


def response_error(model: str, response: Any) -> ModelCallError:
    headers = getattr(response, "headers", None) or {}
    retry_after = parse_retry_after(headers.get("retry-after"))
    return error_from_status(model, int(response.status_code), response_body(response), retry_after)


class OpenWebUIClient:
    """Calls models through Open WebUI's generate_chat_completion as the chatting user."""

    def __init__(
        self,
        host: ChatHost,
        request: Any,
        user: Any,
        params: dict[str, Any],
        callers: list[str],
        task: str | None = None,
    ) -> None:
        self.host = host
        self.request = request
        self.user = user
        self.params = params
        self.callers = callers
        self.task = task

    def form(self, model: str, messages: list[ChatMessage], stream: bool) -> dict[str, Any]:
        metadata: dict[str, Any] = {CALLERS_KEY: list(self.callers)}
        if self.task:
            # A pipe model (the pack's Gemini pipe, say) reads `task` as `__task__` and answers
            # in one quick call, without thinking or tools.
            metadata["task"] = self.task
        return {**self.params, "model": model, "messages": messages, "stream": stream, "metadata": metadata}

    async def call(self, model: str, form: dict[str, Any]) -> Any:
        try:
            return await self.host.chat_completion(self.request, form, self.user)
        except Exception as exc:
            raise call_error(model, exc) from None

    async def complete(self, model: str, messages: list[ChatMessage]) -> str:
        response = await self.call(model, self.form(model, messages, stream=False))
        return "".join([piece async for piece in self.pieces(model, response)])

    async def stream(self, model: str, messages: list[ChatMessage]) -> AsyncIterator[str]:
        response = await self.call(model, self.form(model, messages, stream=True))
        async with aclosing(self.pieces(model, response)) as pieces:
            async for piece in pieces:
                yield piece

    async def pieces(self, model: str, response: Any) -> AsyncIterator[str]:
        """Text from any of the shapes generate_chat_completion returns."""
        if isinstance(response, dict):
            yield completion_text(model, response)
            return
        if isinstance(response, str):
            # Open WebUI 0.6.43 to 0.12.4 (routers/openai.py) pass a body they could not decode on as
            # its text, even with HTTP 200 (JSON sent as text/html, or garbage): garbage is not an answer.
            body = text_body(response)
            if not isinstance(body, dict):
                raise unreadable(model, "a body that is not JSON", response)
            yield completion_text(model, body)
            return
        iterator = getattr(response, "body_iterator", None)
        status = getattr(response, "status_code", 200)
        if iterator is not None:  # StreamingResponse: SSE lines as str or bytes
            try:
                if isinstance(status, int) and status >= 400:
                    raise ModelCallError(model, f"HTTP {status}", status=status)
                async for piece in stream_text(model, iterator):
                    yield piece
            except ModelCallError:
                raise
            except Exception as exc:  # the upstream connection dropped mid-stream (aiohttp's errors)
                detail = scrub_upstream(f"{type(exc).__name__}: {exc}", limit=500)
                raise ModelCallError(model, "the answer broke off", retryable=True, detail=detail) from None
            finally:
                closer = getattr(iterator, "aclose", None)
                if closer is not None:
                    await closer()
            return
        if hasattr(response, "body") and isinstance(status, int):  # JSONResponse / PlainTextResponse
            if status >= 400:
                raise response_error(model, response)
            yield completion_text(model, response_body(response))
            return
        raise ModelCallError(
            model,
            "the answer could not be read",
            detail=f"Open WebUI returned a {type(response).__name__}",
        )


def pipe_id_of(body: dict[str, Any]) -> str:
    # Open WebUI replaces a wrapping workspace model's id by the pipe's before calling it.
    return str(body.get("model") or "mixture_of_agents").split(".", 1)[0]


def callers_of(metadata: Any) -> list[str]:
    callers = metadata.get(CALLERS_KEY) if isinstance(metadata, dict) else None
    return [str(c) for c in callers] if isinstance(callers, list) else []


def is_mixture(model_id: str, info: dict[str, Any], mixture_ids: list[str]) -> bool:
    """The model is one of the running mixture pipes, directly or as a workspace model over one."""
    if info.get("pipe") is not None and model_id.split(".", 1)[0] in mixture_ids:
        return True
    meta = info.get("info")
    base = meta.get("base_model_id") if isinstance(meta, dict) else None
    return isinstance(base, str) and base.split(".", 1)[0] in mixture_ids


async def check_models(model_ids: list[str], request: Any, user: Any, host: ChatHost, mixture_ids: list[str]) -> None:
    """Fail before any model call (and before streaming) on an unknown, forbidden or recursive model."""
    registry = host.models(request)
    if registry is None:
        return
    for model_id in model_ids:
        info = registry.get(model_id)
        if info is None:
            raise unavailable_error(model_id, "Open WebUI has no model with this id")
        if is_mixture(model_id, info, mixture_ids):
            raise MoaError(
                f"Mixture of Agents cannot use `{model_id}`: that is this mixture itself, and calling it "
                "would never end.",
                advice=ASK_ADMIN,
                detail=f"Remove it from the {MODEL_VALVES}.",
            )
        try:
            allowed = await host.may_use_model(user, info)
        except Exception:
            # Open WebUI 0.12.4's check_model_access (open_webui/utils/models.py) refuses with a
            # bare Exception("Model not found"); a check that fails any other way refuses too,
            # as the chat call would.
            allowed = False
        if not allowed:
            raise unavailable_error(model_id, "you do not have access to it", access=True)


async def load_user(host: ChatHost, user: dict[str, Any]) -> Any:
    found = await host.get_user(user["id"])
    if found is None:
        raise MoaError("Mixture of Agents could not load your user account; sign in again.")
    return found


async def mixture_reply(
    messages: Any, client: OpenWebUIClient, settings: MoaSettings, events: Emitter, admin: bool
) -> AsyncIterator[str | dict[str, Any]]:
    """The streamed reply; a failure after it began is its last chunk, not an exception."""
    try:
        async with aclosing(run_mixture(messages, client, settings, events)) as pieces:
            async for piece in pieces:
                yield piece
    except MoaError as exc:
        # Open WebUI (0.6.43 to 0.12.4, open_webui/utils/middleware.py) shows this line as the
        # message's error block and keeps the text so far; an exception raised now would wipe that text.
        yield {"error": {"detail": message_for(exc, admin=admin)}}


class Pipe:
    class Valves(MoaValves):
        pass

    def __init__(self) -> None:
        self.valves = self.Valves()
        self.host = ChatHost()

    async def pipe(
        self,
        body: dict,
        __user__: dict | None = None,
        __request__: Any = None,
        __event_emitter__: Any = None,
        __task__: str | None = None,
        __metadata__: dict | None = None,
    ) -> str | AsyncIterator[str | dict[str, Any]]:
        # Everything that can be checked is checked here, before a generator is returned:
        # 0.12.4 shows an exception raised now as an error block and a toast, its text as it is.
        admin = is_admin(__user__)
        try:
            return await self.start(body, __user__, __request__, __event_emitter__, __task__, __metadata__, admin=admin)
        except MoaError as exc:
            raise MoaError(message_for(exc, admin=admin)) from None

    async def start(
        self, body: Any, user_info: Any, request: Any, emitter: Any, task: str | None, metadata: Any, *, admin: bool
    ) -> str | AsyncIterator[str | dict[str, Any]]:
        body = body if isinstance(body, dict) else {}
        settings = MoaSettings.from_valves(self.valves)
        check_settings(settings)
        if request is None or not isinstance(user_info, dict) or "id" not in user_info:
            raise MoaError("Mixture of Agents runs inside Open WebUI chats only: no request or user was passed.")
        user = await load_user(self.host, user_info)
        own_id = pipe_id_of(body)
        callers = callers_of(metadata)
        if own_id in callers:
            raise MoaError(
                f"Mixture of Agents `{own_id}` was called by itself through another model, which would never end.",
                advice=ASK_ADMIN,
                detail=f"One of the models in the {MODEL_VALVES} leads back to this mixture: remove it.",
            )
        chain = [*callers, own_id]
        client = OpenWebUIClient(self.host, request, user, sampling_params(body), chain, task)
        if task:
            # Titles, tags and follow-ups want one quick answer, not the whole mixture.
            await check_models([settings.aggregator], request, user, self.host, chain)
            return await run_task(body.get("messages"), client, settings)
        await check_models(settings.models_in_use(), request, user, self.host, chain)
        events = Emitter(emitter, status_interval=self.valves.emit_interval)
        if not body.get("stream"):
            # The whole answer is gathered here, so a failure is raised by pipe() itself, which every
            # version answers with {"error": {"detail": ...}}: Open WebUI 0.6.43 loses an exception
            # raised while it reads a returned generator (open_webui/functions.py, get_message_content),
            # and the API caller would get `null`.
            async with aclosing(run_mixture(body.get("messages"), client, settings, events)) as pieces:
                return "".join([piece async for piece in pieces])
        return mixture_reply(body.get("messages"), client, settings, events, admin)
