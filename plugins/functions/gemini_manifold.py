"""
title: Gemini Manifold
author: Open WebUI Pack contributors
version: 0.1.0
description: Google Gemini chat models with thoughts, Google Search citations, native tool calls, files and retries.
license: MIT
required_open_webui_version: 0.6.43
requirements: google-genai>=1.54.0
"""

# Secrets: GOOGLE_API_KEY is a plain string valve shown as a password field. Open WebUI stores
# valves in its database in clear text unless the server runs with ENABLE_VALVE_ENCRYPTION=true
# (Fernet, keyed from WEBUI_SECRET_KEY: keep that key stable or the stored valves read back empty).
# pydantic SecretStr is not used on purpose: Open WebUI 0.12.4 silently drops it on save.

import asyncio
import hashlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from shared.attachments import (
    HOST_FILE_MAX_BYTES,
    IMAGE_URL_MAX_BYTES,
    AttachmentError,
    MiB,
    attachment_kind,
    context_file_ids,
    context_file_names,
    fetch_image,
    file_refs,
    read_host_file,
)
from shared.events import Emitter
from shared.gemini import (
    INLINE_BUDGET,
    Fetched,
    GeminiError,
    GeminiRequest,
    ModelInfo,
    RequestOptions,
    build_request,
    describe_error,
    explain_error,
    image_links,
    list_models,
    make_client,
    normalise_base_url,
    requested_model,
    sdk_takes_server_side_tools,
    upload_file,
    with_gemini_retries,
)
from shared.gemini_models import DEFAULT_DENYLIST, is_glob, model_allowed, parse_globs
from shared.gemini_reply import (
    Reply,
    StreamOptions,
    close_stream,
    completion,
    emit_sources,
    read_response,
    shown_source_ids,
    stream_reply,
)
from shared.host import FileHost
from shared.messages import for_reader, is_admin
from shared.secrets import redact
from shared.valves import Switch, as_switch, resolve_switch

_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

LIST_TIMEOUT_MS = 15_000
LIST_FAILURE_TTL = 30.0  # a failed model listing is retried after this many seconds
ERROR_LIMIT = 1000  # characters of an upstream error in an exception the user sees
UPLOAD_CACHE_TTL = 47 * 3600.0  # Files API keeps uploads 48 h
CLIENT_CACHE_SIZE = 8
SERVER_PARTS_CACHE_SIZE = 256  # replies whose Google Search steps are kept for their tool loop
NO_KEY_MESSAGE = (
    "Gemini has no API key yet. Ask your administrator to add one, or enter your own Gemini API "
    "key in this function's user valves."
)
NO_KEY_DETAIL = "set GOOGLE_API_KEY in Admin Panel > Functions > Gemini Manifold > Valves"


@dataclass(frozen=True)
class Settings:
    key: str
    admin_key: str
    base_url: str | None
    timeout: int
    max_retries: int
    options: RequestOptions

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.key, self.admin_key)


class Chat:
    """The request as Open WebUI framed it: the body, who reads the answer, and where it goes."""

    def __init__(self, body: dict, user: Any, metadata: Any) -> None:
        self.body, self.user = body, user
        self.metadata = metadata if isinstance(metadata, dict) else {}

    @property
    def admin(self) -> bool:
        return is_admin(self.user)

    @property
    def message_id(self) -> str | None:
        value = self.metadata.get("message_id")
        return value if isinstance(value, str) and value else None

    @property
    def builds_output(self) -> bool:
        # Open WebUI 0.12.4 builds the message from the stream (and so takes stream items that
        # replace its text) only for a chat message: with both a chat id and a message id
        # (open_webui/utils/middleware.py, get_event_emitter_and_caller and the stream handler).
        return bool(self.metadata.get("chat_id")) and self.message_id is not None


@dataclass
class Listing:
    at: float
    models: list[ModelInfo] | None
    error: str | None = None


class Pipe:
    class Valves(BaseModel):
        GOOGLE_API_KEY: str = Field(
            title="Gemini API key",
            default="",
            max_length=512,
            description="Gemini API key from Google AI Studio. Sent only in the x-goog-api-key header. "
            "Stored in clear text unless Open WebUI runs with ENABLE_VALVE_ENCRYPTION=true.",
            json_schema_extra={"input": {"type": "password"}},
        )
        GOOGLE_API_BASE_URL: str = Field(
            title="API address (gateway or proxy)",
            default="",
            max_length=2048,
            description="Empty = Google's endpoint. Set a URL for a gateway or proxy (the API version "
            "v1beta is added to it).",
        )
        MODEL_ALLOWLIST: str = Field(
            title="Models to list",
            default="gemini-*",
            max_length=4096,
            description="Comma-separated glob patterns of model ids to list (empty = all). Exact ids are "
            "listed even without an admin key, for users who bring their own.",
        )
        MODEL_DENYLIST: str = Field(
            title="Models to hide",
            default=DEFAULT_DENYLIST,
            max_length=4096,
            description="Comma-separated glob patterns of model ids to hide (speech, image, live and "
            "embedding models by default: this pipe returns text).",
        )
        MODEL_CACHE_TTL: int = Field(
            title="Model list refresh (seconds)",
            default=600,
            ge=0,
            le=86_400,
            description="Seconds the model list is kept before it is fetched again.",
        )
        USE_PERMISSIVE_SAFETY: bool = Field(
            title="Permissive safety filters",
            default=False,
            description="Ask Gemini not to block on its four harm categories (BLOCK_NONE).",
        )
        INCLUDE_THOUGHTS: bool = Field(
            title="Show thought summaries",
            default=True,
            description="Show Gemini's thought summaries in Open WebUI's reasoning block.",
        )
        THINKING_BUDGET: int = Field(
            title="Thinking budget (Gemini 2.5, tokens)",
            default=-1,
            ge=-1,
            le=32_768,
            description="Thinking tokens for Gemini 2.5 models and version-less aliases such as "
            "gemini-flash-latest: -1 = the model decides, 0 = off (Flash), up to 32768. A chat's "
            "reasoning_effort overrides it.",
        )
        THINKING_LEVEL: Literal["default", "minimal", "low", "medium", "high"] = Field(
            title="Thinking level (Gemini 3)",
            default="default",
            description="Thinking level for Gemini 3 models (Pro models use low or high); aliases such "
            "as gemini-flash-latest get it as a token budget when THINKING_BUDGET is -1. A chat's "
            "reasoning_effort overrides it.",
        )
        GOOGLE_SEARCH_GROUNDING: bool = Field(
            title="Google Search grounding",
            default=False,
            description="Let Gemini search Google and cite its sources. Gemini 3 gets the chat's tools "
            "too; earlier models get the chat's tools instead when a tool is on (the status line says so).",
        )
        REQUEST_TIMEOUT: int = Field(
            title="Request timeout (seconds)",
            default=300,
            ge=5,
            le=3600,
            description="Seconds one Gemini call may take, streaming included.",
        )
        MAX_RETRIES: int = Field(
            title="Retries",
            default=2,
            ge=0,
            le=10,
            description="Retries after rate limits (429), timeouts (408) and server errors (5xx), with backoff.",
        )

    class UserValves(BaseModel):
        GOOGLE_API_KEY: str = Field(
            title="Your Gemini API key",
            default="",
            max_length=512,
            description="Your own Gemini API key; used instead of the admin's for your chats.",
            json_schema_extra={"input": {"type": "password"}},
        )
        INCLUDE_THOUGHTS: Switch = Field(
            title="Show thought summaries",
            default="default",
            description="Show thought summaries (default = the admin's setting).",
        )
        GOOGLE_SEARCH_GROUNDING: Switch = Field(
            title="Google Search grounding",
            default="default",
            description="Ground answers with Google Search (default = the admin's setting).",
        )

        @field_validator("INCLUDE_THOUGHTS", "GOOGLE_SEARCH_GROUNDING", mode="before")
        @classmethod
        def _stored_switch(cls, value: Any) -> Switch:
            # Values saved when these were optional booleans (true, false, null) keep their meaning.
            return as_switch(value)

    def __init__(self) -> None:
        self.valves = self.Valves()
        # Open WebUI's file store, the clock and the sleep between retries: tests replace them.
        self.host: Any = FileHost()
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
        self.inline_budget = INLINE_BUDGET
        self.image_max_bytes = IMAGE_URL_MAX_BYTES
        # Caches shared by all users, keyed by a salted hash of the key (never the key itself):
        # the admin key's model list (what everyone sees anyway), SDK clients, Files API uploads.
        self._salt = os.urandom(16)
        self._listings: dict[str, Listing] = {}
        self._clients: dict[tuple[str, str | None, int], Any] = {}
        self._uploads: dict[tuple[str, str], tuple[float, str, str]] = {}
        # Google Search steps of replies that ended in tool calls, by the first call's id: Gemini 3
        # wants them back with the tool results. The sources each chat message already showed.
        self._server_parts: dict[str, list[dict[str, Any]]] = {}
        self._shown: dict[str, list[str]] = {}

    # --- settings and clients

    def _digest(self, key: str, base_url: str | None = None) -> str:
        return hmac.new(self._salt, f"{key}\n{base_url or ''}".encode(), hashlib.sha256).hexdigest()[:32]

    def _settings(self, user: Any) -> Settings:
        valves = self.valves
        user_valves = user.get("valves") if isinstance(user, dict) else None
        if isinstance(user_valves, dict):  # Open WebUI passes a UserValves instance; API callers may not
            try:
                user_valves = self.UserValves.model_validate(user_valves)
            except ValueError:  # its message would quote the values, the key among them
                user_valves = None
        own_key = getattr(user_valves, "GOOGLE_API_KEY", "") or ""
        admin_key = valves.GOOGLE_API_KEY.strip()
        options = RequestOptions(
            include_thoughts=resolve_switch(getattr(user_valves, "INCLUDE_THOUGHTS", None), valves.INCLUDE_THOUGHTS),
            grounding=resolve_switch(
                getattr(user_valves, "GOOGLE_SEARCH_GROUNDING", None), valves.GOOGLE_SEARCH_GROUNDING
            ),
            permissive_safety=valves.USE_PERMISSIVE_SAFETY,
            thinking_budget=valves.THINKING_BUDGET,
            thinking_level=valves.THINKING_LEVEL,
            inline_budget=self.inline_budget,
        )
        return Settings(
            key=own_key.strip() or admin_key,
            admin_key=admin_key,
            base_url=normalise_base_url(valves.GOOGLE_API_BASE_URL),
            timeout=valves.REQUEST_TIMEOUT,
            max_retries=valves.MAX_RETRIES,
            options=options,
        )

    async def _client(self, key: str, base_url: str | None, timeout_ms: int) -> Any:
        cache_key = (self._digest(key), base_url, timeout_ms)
        client = self._clients.get(cache_key)
        if client is not None:
            return client
        client = await make_client(key, base_url, timeout_ms)
        if len(self._clients) >= CLIENT_CACHE_SIZE:
            self._clients.pop(next(iter(self._clients)))
        self._clients[cache_key] = client
        return client

    # --- model list

    async def pipes(self) -> list[dict[str, str]]:
        valves = self.valves
        allow, deny = parse_globs(valves.MODEL_ALLOWLIST), parse_globs(valves.MODEL_DENYLIST)
        key = valves.GOOGLE_API_KEY.strip()
        if not key:
            exact = [g for g in allow if not is_glob(g)]
            if exact:
                return [{"id": g, "name": g} for g in exact]
            # Everyone sees these entries: plain words; choosing one tells an admin the valve to set.
            return [{"id": "setup", "name": "Gemini (not set up yet: no API key)"}]
        try:
            base_url = normalise_base_url(valves.GOOGLE_API_BASE_URL)
        except GeminiError as exc:
            _LOG.warning("Gemini is not set up: %s", exc.detail)
            return [{"id": "error", "name": "Gemini (not set up correctly: see the server log)"}]
        listing = await self._listing(key, base_url)
        if listing.models is None:
            return [{"id": "error", "name": "Gemini (the model list could not be loaded: see the server log)"}]
        entries = [{"id": m.id, "name": m.name} for m in listing.models if model_allowed(m.id, allow, deny)]
        return entries or [{"id": "none", "name": "Gemini (no model matches the function's model filters)"}]

    async def _listing(self, key: str, base_url: str | None) -> Listing:
        digest = self._digest(key, base_url)
        listing = self._listings.get(digest)
        now = self.clock()
        ttl = self.valves.MODEL_CACHE_TTL if listing is None or listing.models is not None else LIST_FAILURE_TTL
        if listing is not None and now - listing.at < ttl:
            return listing
        try:
            client = await self._client(key, base_url, LIST_TIMEOUT_MS)
            models = await list_models(client)
            listing = Listing(now, models)
        except Exception as exc:
            message = redact(describe_error(exc), (key,), ERROR_LIMIT)
            _LOG.warning("Gemini model list failed: %s", message)
            if listing is not None and listing.models is not None:
                # Keep serving the last good list; try again after a short pause.
                listing = Listing(now - self.valves.MODEL_CACHE_TTL + LIST_FAILURE_TTL, listing.models)
            else:
                listing = Listing(now, None, message)
        self._listings[digest] = listing
        return listing

    def _model_thinking(self, model_id: str) -> bool | None:
        """Whether the admin key's model list says this model thinks (None when unknown)."""
        if not self.valves.GOOGLE_API_KEY.strip():
            return None
        try:
            digest = self._digest(
                self.valves.GOOGLE_API_KEY.strip(), normalise_base_url(self.valves.GOOGLE_API_BASE_URL)
            )
        except GeminiError:
            return None
        listing = self._listings.get(digest)
        for model in (listing.models or []) if listing else []:
            if model.id == model_id:
                return model.thinking
        return None

    # --- chat

    async def pipe(
        self,
        body: dict,
        __user__: dict | None = None,
        __event_emitter__: Callable[[dict], Awaitable[Any]] | None = None,
        __task__: str | None = None,
        __files__: list | None = None,
        __tools__: dict | None = None,
        __metadata__: dict | None = None,
    ) -> str | dict | AsyncIterator[dict]:
        secrets: tuple[str, ...] = (self.valves.GOOGLE_API_KEY.strip(),)
        try:
            settings = self._settings(__user__)
            secrets = settings.secrets
            emitter = Emitter(None if __task__ else __event_emitter__)
            model_id = requested_model(body)
            if not settings.key:
                raise GeminiError(NO_KEY_MESSAGE, NO_KEY_DETAIL)
            fetched = await self._fetch(body, None if __task__ else __files__, __user__, __metadata__)
            options = replace(settings.options, sdk_server_side_tools=await sdk_takes_server_side_tools())
            request = build_request(
                body, model_id=model_id, thinking=self._model_thinking(model_id), options=options,
                task=bool(__task__), tools=__tools__, metadata=__metadata__, fetched=fetched,
            )  # fmt: skip
            if not __task__:
                if request.warnings:
                    await emitter.notify("Gemini: " + "; ".join(request.warnings) + ".", "warning")
                for note in request.notes:
                    await emitter.status(note, done=True)
            client = await self._client(settings.key, settings.base_url, settings.timeout * 1000)
            await self._upload(client, settings, request, emitter)
            chat = Chat(body, __user__, __metadata__)
            return await self._send(client, request, settings, emitter, task=bool(__task__), chat=chat)
        except Exception as exc:
            text = explain_error(exc, timeout=self.valves.REQUEST_TIMEOUT)
            sentence, detail = redact(text.sentence, secrets, ERROR_LIMIT), redact(text.detail, secrets, ERROR_LIMIT)
            _LOG.warning("Gemini request failed: %s%s", sentence, f" ({detail})" if detail else "")
            raise GeminiError(for_reader(sentence, detail, admin=is_admin(__user__))) from None

    async def _fetch(self, body: dict, files: Any, user: Any, metadata: Any) -> Fetched:
        """Download the chat's image links and read its attached files, before the request is built.

        A text file whose text Open WebUI already put into the chat (its document context) is not
        sent again; PDF, audio and video files go to Gemini itself, which reads them natively."""
        fetched = Fetched(server_parts=self._server_parts)
        for url in image_links(body.get("messages")):
            try:
                fetched.images[url] = await fetch_image(url, max_bytes=self.image_max_bytes)
            except AttachmentError as exc:
                fetched.images[url] = exc
        in_context = context_file_ids(metadata)
        # Open WebUI 0.6.43 lists no sources in the metadata; its document context names the files.
        listed = isinstance(metadata, dict) and "sources" in metadata
        named = frozenset() if listed else context_file_names(body.get("messages"))
        for ref in file_refs(files):
            if attachment_kind(ref.mime) == "text" and (ref.file_id in in_context or ref.name in named):
                _LOG.debug("%s is in Open WebUI's document context: not sent again", ref.name)
                continue
            try:
                read = await read_host_file(self.host, ref.file_id, user, max_bytes=HOST_FILE_MAX_BYTES)
            except AttachmentError as exc:
                fetched.files.append((ref, exc))
            else:
                fetched.files.append((ref, read))
        return fetched

    def _remember(self, message_id: str | None, reply: Reply) -> None:
        """Keep what the next call for the same chat message needs: the Google Search steps that
        came before tool calls, and the sources this message now shows."""
        if reply.tool_calls and reply.server_parts:
            if len(self._server_parts) >= SERVER_PARTS_CACHE_SIZE:
                self._server_parts.pop(next(iter(self._server_parts)))
            self._server_parts[reply.tool_calls[0]["id"]] = reply.server_parts
        if message_id and reply.sources:
            if len(self._shown) >= SERVER_PARTS_CACHE_SIZE and message_id not in self._shown:
                self._shown.pop(next(iter(self._shown)))
            shown = self._shown.setdefault(message_id, [])
            shown.extend(uri for uri in reply.sources if uri not in shown)

    async def _send(
        self, client: Any, request: GeminiRequest, settings: Settings, emitter: Emitter, *, task: bool, chat: Chat
    ) -> str | dict | AsyncIterator[dict]:
        """The one generate call, with retries: a string for tasks, a completion, or a stream."""
        model, contents, config = request.model, request.contents, request.config

        async def retrying(operation: Callable[[], Awaitable[Any]]) -> Any:
            return await with_gemini_retries(
                operation, max_retries=settings.max_retries, emitter=emitter, timeout=settings.timeout,
                sleep=self.sleep,
            )  # fmt: skip

        # Citation numbers continue after the sources the message already shows: Open WebUI's own
        # (attached documents) and this pipe's earlier rounds of the same message.
        shown = shown_source_ids(chat.metadata.get("sources"))
        shown += [uri for uri in self._shown.get(chat.message_id or "", []) if uri not in shown]
        if task or not chat.body.get("stream"):
            response = await retrying(
                lambda: client.aio.models.generate_content(model=model, contents=contents, config=config)
            )
            reply = Reply()
            read_response(response, reply, include_thoughts=request.include_thoughts, names=request.names)
            if task:
                return "".join(reply.text).strip()
            self._remember(chat.message_id, reply)
            await emit_sources(emitter, reply)
            return completion(str(chat.body["model"]), reply, shown)

        async def open_stream() -> tuple[Any, Any]:
            stream = await client.aio.models.generate_content_stream(model=model, contents=contents, config=config)
            try:
                return stream, await anext(stream)
            except StopAsyncIteration:
                return stream, None
            except BaseException:
                await close_stream(stream)
                raise

        stream, first = await retrying(open_stream)
        options = StreamOptions(
            include_thoughts=request.include_thoughts, names=request.names, secrets=settings.secrets,
            timeout=settings.timeout, admin=chat.admin, shown=shown, can_replace=chat.builds_output,
            on_done=lambda reply: self._remember(chat.message_id, reply),
        )  # fmt: skip
        return stream_reply(stream, first, model=str(chat.body["model"]), emitter=emitter, options=options)

    async def _upload(self, client: Any, settings: Settings, request: GeminiRequest, emitter: Emitter) -> None:
        """Move the attachments that do not fit inline to the Files API (cached per key and content)."""
        for blob in request.uploads:
            inline = blob.part["inline_data"]
            data, mime = inline["data"], inline["mime_type"]
            cache_key = (self._digest(settings.key, settings.base_url), hashlib.sha256(data).hexdigest())
            cached = self._uploads.get(cache_key)
            if cached is None or cached[0] < self.clock():
                await emitter.status(f"Uploading {blob.name} ({len(data) / MiB:.1f} MB) to Gemini")
                try:
                    uri, mime = await upload_file(
                        client, data, mime, blob.name, timeout=settings.timeout, clock=self.clock, sleep=self.sleep
                    )
                except BaseException:  # close the status: done=False would shimmer next to the error
                    await emitter.status(f"Uploading {blob.name} failed", done=True)
                    raise
                if len(self._uploads) > 256:
                    self._uploads.clear()
                self._uploads[cache_key] = (self.clock() + UPLOAD_CACHE_TTL, uri, mime)
                await emitter.status(f"Uploaded {blob.name}", done=True)
            else:
                _, uri, mime = cached
            blob.part.pop("inline_data")
            blob.part["file_data"] = {"file_uri": uri, "mime_type": mime}
