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
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from shared.attachments import (
    HOST_FILE_MAX_BYTES,
    IMAGE_URL_MAX_BYTES,
    IMAGE_URL_TIMEOUT,
    AttachmentError,
    DownloadBudget,
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
    ImageResult,
    ModelInfo,
    RequestOptions,
    api_status,
    build_request,
    describe_error,
    explain_error,
    image_links,
    list_models,
    make_client,
    normalise_base_url,
    requested_model,
    sdk_takes_server_side_tools,
    with_gemini_retries,
)
from shared.gemini_media import IMAGE_ASPECT_RATIOS, IMAGE_SIZES, image_store, media_options, read_generated_images
from shared.gemini_models import DEFAULT_DENYLIST, is_glob, listed_name, model_allowed, model_capabilities, parse_globs
from shared.gemini_reply import (
    Reply,
    StreamOptions,
    close_stream,
    completion,
    emit_sources,
    read_response,
    settle_reply,
    shown_source_ids,
    stream_reply,
)
from shared.gemini_transport import (
    KeyRing,
    TransportSettings,
    Vertex,
    list_vertex_models,
    make_vertex_client,
    transport_settings,
)
from shared.gemini_uploads import UploadCache, UploadContext, attach_uploads, forget_refused
from shared.gemini_usage import Timing, UsageOptions, completion_with_usage, with_usage
from shared.gemini_video import (
    is_video_model,
    start_video,
    store_video,
    video_bytes,
    video_prompt,
    video_reply,
    wait_video,
)
from shared.host import FileHost
from shared.messages import for_reader, is_admin
from shared.secrets import redact
from shared.valves import Switch, as_switch, resolve_switch

_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

LIST_TIMEOUT_MS = 15_000
LIST_FAILURE_TTL = 30.0  # a failed model listing is retried after this many seconds
ERROR_LIMIT = 1000  # characters of an upstream error in an exception the user sees
CLIENT_CACHE_SIZE = 8
SERVER_PARTS_CACHE_SIZE = 256  # replies whose Google Search steps are kept for their tool loop
IMAGE_DOWNLOADS_AT_ONCE = 4  # image links of one request downloaded at the same time
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
    transport: TransportSettings = field(default_factory=TransportSettings)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.key, self.admin_key, *self.transport.secrets)


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
            description="Comma-separated glob patterns of model ids to hide (speech, live and embedding "
            "models by default: this pipe returns text and images).",
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
            description="Seconds one Gemini call may take, streaming included. The image links of a "
            "request are downloaded within this time too (and within 20 s together).",
        )
        MAX_RETRIES: int = Field(
            title="Retries",
            default=2,
            ge=0,
            le=10,
            description="Retries after rate limits (429), timeouts (408) and server errors (5xx), with backoff.",
        )
        MAX_IMAGE_DOWNLOADS: int = Field(
            title="Image links per request",
            default=10,
            ge=0,
            le=100,
            description="Most image links (http/https) downloaded for one request, the newest message's "
            "first; the others are left out with a note. 0 = image links are not downloaded.",
        )
        MAX_IMAGE_BYTES_TOTAL: int = Field(
            title="Image link download budget (bytes)",
            default=32 * MiB,
            ge=0,
            le=512 * MiB,
            description="Bytes the image links of one request may download together (each link at most "
            "15 MB). 33554432 = 32 MB.",
        )
        MAX_REPLY_BYTES: int = Field(
            title="Largest reply (bytes)",
            default=4 * MiB,
            ge=1024,
            le=256 * MiB,
            description="Bytes of text and thoughts one reply may have; a longer reply stops there and "
            "ends with a note. 4194304 = 4 MB.",
        )
        # media (images, code execution, URL context, Maps, YouTube video)
        IMAGE_ASPECT_RATIO: Literal["default", *IMAGE_ASPECT_RATIOS] = Field(  # type: ignore[valid-type]
            title="Image aspect ratio",
            default="default",
            description="Shape of the images the image models make (default = the model's own, square "
            "or the input image's).",
        )
        IMAGE_SIZE: Literal["default", *IMAGE_SIZES] = Field(  # type: ignore[valid-type]
            title="Image size",
            default="default",
            description="Resolution of the images Gemini 3 Pro Image makes (1K, 2K, 4K); other image "
            "models make one size.",
        )
        IMAGE_HISTORY_LIMIT: int = Field(
            title="Earlier images sent for edits",
            default=3,
            ge=0,
            le=10,
            description="How many of the chat's earlier generated images (newest first) go back to an "
            "image model, so it can edit them. 0 = none.",
        )
        CODE_EXECUTION: bool = Field(
            title="Code execution",
            default=False,
            description="Let Gemini write and run Python code; the code and its output show as Open "
            "WebUI's code block.",
        )
        URL_CONTEXT: bool = Field(
            title="URL context",
            default=False,
            description="Let Gemini read the web pages linked in the chat; the pages become sources.",
        )
        GOOGLE_MAPS_GROUNDING: bool = Field(
            title="Google Maps grounding",
            default=False,
            description="Ground answers about places with Google Maps; the places become sources.",
        )
        YOUTUBE_AS_VIDEO: bool = Field(
            title="YouTube links as video",
            default=True,
            description="Send YouTube links in the user's messages as videos Gemini watches (the link's "
            "text stays in the message).",
        )
        # transport (Vertex AI, fallback key, Veo, usage and prices, upload reuse)
        GOOGLE_API_KEY_FALLBACK: str = Field(
            title="Second Gemini API key (rate limits)",
            default="",
            max_length=512,
            description="Used once for a request the main key got a rate limit or quota answer (429) "
            "for, e.g. a paid key behind a free-tier one. Stored like the main key.",
            json_schema_extra={"input": {"type": "password"}},
        )
        USE_VERTEX_AI: bool = Field(
            title="Use Vertex AI",
            default=False,
            description="Reach Gemini through Google Cloud's Vertex AI (project, location and credentials "
            "below) instead of the Gemini API and its keys. API address above, when set, is used for "
            "Vertex AI too.",
        )
        VERTEX_PROJECT: str = Field(
            title="Vertex AI project",
            default="",
            max_length=256,
            description="Google Cloud project id for Vertex AI.",
        )
        VERTEX_LOCATION: str = Field(
            title="Vertex AI location",
            default="global",
            max_length=64,
            description="Vertex AI region, e.g. us-central1, or global.",
        )
        VERTEX_CREDENTIALS_JSON: str = Field(
            title="Vertex AI service account key (JSON)",
            default="",
            max_length=16_384,
            description="The service account key file's JSON. Empty = the server's application default "
            "credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud login, metadata server).",
            json_schema_extra={"input": {"type": "password"}},
        )
        VIDEO_ASPECT_RATIO: Literal["16:9", "9:16"] = Field(
            title="Video aspect ratio (Veo)",
            default="16:9",
            description="Aspect ratio of the videos Veo models make.",
        )
        VIDEO_DURATION_SECONDS: int = Field(
            title="Video length (Veo, seconds)",
            default=8,
            ge=4,
            le=8,
            description="Seconds of video Veo makes (4 to 8; some Veo models take only 8).",
        )
        VIDEO_RESOLUTION: Literal["720p", "1080p"] = Field(
            title="Video resolution (Veo)",
            default="720p",
            description="Resolution of the videos Veo models make.",
        )
        VIDEO_NEGATIVE_PROMPT: str = Field(
            title="What videos should not show (Veo)",
            default="",
            max_length=2000,
            description="A negative prompt sent with every video request (empty = none).",
        )
        PRICES: str = Field(
            title="Price table (usage cost)",
            default="",
            max_length=16_384,
            description='JSON of US dollars per million tokens by model id or glob, e.g. {"gemini-2.5-flash": '
            '{"input": 0.3, "output": 2.5, "cached": 0.03}}; the reply\'s cost is added to its usage. '
            "Empty = no cost shown.",
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

        # media (images, code execution, URL context, Maps, YouTube video)
        IMAGE_ASPECT_RATIO: Literal["default", *IMAGE_ASPECT_RATIOS] = Field(  # type: ignore[valid-type]
            title="Image aspect ratio",
            default="default",
            description="Shape of the images the image models make (default = the admin's setting).",
        )
        IMAGE_SIZE: Literal["default", *IMAGE_SIZES] = Field(  # type: ignore[valid-type]
            title="Image size",
            default="default",
            description="Resolution of Gemini 3 Pro Image's images (default = the admin's setting).",
        )
        CODE_EXECUTION: Switch = Field(
            title="Code execution",
            default="default",
            description="Let Gemini run Python code (default = the admin's setting).",
        )
        URL_CONTEXT: Switch = Field(
            title="URL context",
            default="default",
            description="Let Gemini read linked web pages (default = the admin's setting).",
        )
        GOOGLE_MAPS_GROUNDING: Switch = Field(
            title="Google Maps grounding",
            default="default",
            description="Ground answers about places with Google Maps (default = the admin's setting).",
        )

        @field_validator("CODE_EXECUTION", "URL_CONTEXT", "GOOGLE_MAPS_GROUNDING", mode="before")
        @classmethod
        def _media_switch(cls, value: Any) -> Switch:
            return as_switch(value)

        # transport (Vertex AI, fallback key, Veo, usage and prices, upload reuse)
        VIDEO_ASPECT_RATIO: Literal["default", "16:9", "9:16"] = Field(
            title="Video aspect ratio (Veo)",
            default="default",
            description="Shape of the videos Veo models make (default = the admin's setting).",
        )
        VIDEO_DURATION_SECONDS: Literal["default", "4", "6", "8"] = Field(
            title="Video length (Veo, seconds)",
            default="default",
            description="Seconds of video Veo makes (default = the admin's setting).",
        )
        VIDEO_RESOLUTION: Literal["default", "720p", "1080p"] = Field(
            title="Video resolution (Veo)",
            default="default",
            description="Resolution of the videos Veo models make (default = the admin's setting).",
        )
        VIDEO_NEGATIVE_PROMPT: str = Field(
            title="What videos should not show (Veo)",
            default="",
            max_length=2000,
            description="Your negative prompt for Veo videos (empty = the admin's).",
        )

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
        self._uploads = UploadCache()  # by key identity and content, until Google's expiry
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
            media=media_options(valves, user_valves),
        )
        return Settings(
            key=own_key.strip() or admin_key,
            admin_key=admin_key,
            base_url=normalise_base_url(valves.GOOGLE_API_BASE_URL),
            timeout=valves.REQUEST_TIMEOUT,
            max_retries=valves.MAX_RETRIES,
            options=options,
            transport=transport_settings(valves, user_valves),
        )

    def _identity(self, settings: Settings, key: str | None = None) -> str:
        """Who the Files API uploads of a request belong to: a salted hash, never the key itself."""
        vertex = settings.transport.vertex
        return self._digest(vertex.identity if vertex else key or settings.key, settings.base_url)

    async def _chat_client(self, settings: Settings) -> Any:
        """The client of a chat request: the user's (or admin's) key, or Vertex AI."""
        return await self._client(settings.key, settings.base_url, settings.timeout * 1000, settings.transport.vertex)

    async def _client(self, key: str, base_url: str | None, timeout_ms: int, vertex: Vertex | None = None) -> Any:
        cache_key = (self._digest(vertex.identity if vertex else key), base_url, timeout_ms)
        client = self._clients.get(cache_key)
        if client is not None:
            return client
        if vertex is not None:
            client = await make_vertex_client(vertex, base_url, timeout_ms)
        else:
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
        try:
            vertex = transport_settings(valves, None).vertex
        except GeminiError as exc:
            _LOG.warning("Gemini is not set up: %s", exc.detail)
            return [{"id": "error", "name": "Gemini (not set up correctly: see the server log)"}]
        if not key and vertex is None:
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
        listing = await self._listing(key, base_url, vertex)
        if listing.models is None:
            return [{"id": "error", "name": "Gemini (the model list could not be loaded: see the server log)"}]
        # Names come from Gemini's model list (or a gateway's): redacted like any upstream text.
        entries = [
            {"id": m.id, "name": redact(listed_name(m.id, m.name), (key,), 200)}
            for m in listing.models
            if model_allowed(m.id, allow, deny)
        ]
        return entries or [{"id": "none", "name": "Gemini (no model matches the function's model filters)"}]

    async def _listing(self, key: str, base_url: str | None, vertex: Vertex | None = None) -> Listing:
        digest = self._digest(vertex.identity if vertex else key, base_url)
        listing = self._listings.get(digest)
        now = self.clock()
        ttl = self.valves.MODEL_CACHE_TTL if listing is None or listing.models is not None else LIST_FAILURE_TTL
        if listing is not None and now - listing.at < ttl:
            return listing
        try:
            client = await self._client(key, base_url, LIST_TIMEOUT_MS, vertex)
            models = await (list_vertex_models(client) if vertex else list_models(client))
            listing = Listing(now, models)
        except Exception as exc:
            hidden = (key, *TransportSettings(vertex=vertex).secrets)
            message = redact(describe_error(exc), hidden, ERROR_LIMIT)
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
            if not settings.key and settings.transport.vertex is None:
                raise GeminiError(NO_KEY_MESSAGE, NO_KEY_DETAIL)
            if is_video_model(model_id):
                chat = Chat(body, __user__, __metadata__)
                return await self._video(body, model_id, settings, emitter, task=bool(__task__), chat=chat)
            fetched = await self._fetch(body, None if __task__ else __files__, __user__, __metadata__)
            if not __task__ and model_capabilities(model_id).images:  # earlier images go back for edits
                limit = settings.options.media.history_images
                fetched.generated = await read_generated_images(self.host, body.get("messages"), __user__, limit)
            options = replace(settings.options, sdk_server_side_tools=await sdk_takes_server_side_tools())
            request = build_request(
                body, model_id=model_id, thinking=self._model_thinking(model_id), options=options,
                task=bool(__task__), tools=__tools__, metadata=__metadata__, fetched=fetched,
            )  # fmt: skip
            if not __task__:
                if request.warnings:
                    warning = "Gemini: " + "; ".join(request.warnings) + "."
                    await emitter.notify(redact(warning, secrets, ERROR_LIMIT * 3), "warning")
                for note in request.notes:
                    await emitter.status(note, done=True)
            client = await self._chat_client(settings)
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
        fetched.images = await self._fetch_images(image_links(body.get("messages")))
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

    async def _fetch_images(self, links: list[str]) -> dict[str, ImageResult]:
        """Download a request's image links, the newest message's first, within one count, one byte
        budget and one deadline for them all (REQUEST_TIMEOUT, and IMAGE_URL_TIMEOUT at most)."""
        valves = self.valves
        wanted = links[::-1]
        kept, dropped = wanted[: valves.MAX_IMAGE_DOWNLOADS], wanted[valves.MAX_IMAGE_DOWNLOADS :]
        over = f"only {valves.MAX_IMAGE_DOWNLOADS} image links are downloaded for one request"
        results: dict[str, ImageResult] = {url: AttachmentError(over) for url in dropped}
        budget = DownloadBudget(valves.MAX_IMAGE_BYTES_TOTAL)
        deadline = self.clock() + min(float(valves.REQUEST_TIMEOUT), IMAGE_URL_TIMEOUT)
        gate = asyncio.Semaphore(IMAGE_DOWNLOADS_AT_ONCE)

        async def download(url: str) -> None:
            async with gate:
                left = deadline - self.clock()
                try:
                    results[url] = await fetch_image(url, max_bytes=self.image_max_bytes, timeout=left, budget=budget)
                except AttachmentError as exc:
                    results[url] = exc

        await asyncio.gather(*(download(url) for url in kept))
        return results

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
        ring = self._ring(
            client, settings, emitter, lambda other, key: self._upload(other, settings, request, emitter, key)
        )
        timing, usage = Timing(self.clock), UsageOptions(model, settings.transport.prices)

        async def retrying(operation: Callable[[], Awaitable[Any]]) -> Any:
            return await with_gemini_retries(
                operation, max_retries=settings.max_retries, emitter=emitter, timeout=settings.timeout,
                sleep=self.sleep, secrets=settings.secrets,
            )  # fmt: skip

        # Citation numbers continue after the sources the message already shows: Open WebUI's own
        # (attached documents) and this pipe's earlier rounds of the same message.
        shown = shown_source_ids(chat.metadata.get("sources"))
        shown += [uri for uri in self._shown.get(chat.message_id or "", []) if uri not in shown]
        if task or not chat.body.get("stream"):
            response = await retrying(
                lambda: ring.call(
                    lambda c: self._forgetting(
                        request, c.aio.models.generate_content(model=model, contents=contents, config=config)
                    )
                )
            )
            reply = Reply(max_bytes=self.valves.MAX_REPLY_BYTES)
            deltas = read_response(response, reply, include_thoughts=request.include_thoughts, names=request.names)
            await settle_reply(reply, deltas, None if task else image_store(self.host, chat.user, chat.metadata))
            if task:
                return redact("".join(reply.text).strip(), settings.secrets)
            self._remember(chat.message_id, reply)
            await emit_sources(emitter, reply, settings.secrets)
            result = completion(str(chat.body["model"]), reply, shown, settings.secrets)
            return completion_with_usage(result, timing, usage)

        async def open_stream(client: Any) -> tuple[Any, Any]:
            stream = await client.aio.models.generate_content_stream(model=model, contents=contents, config=config)
            try:
                return stream, await anext(stream)
            except StopAsyncIteration:
                return stream, None
            except BaseException:
                await close_stream(stream)
                raise

        stream, first = await retrying(lambda: ring.call(lambda c: self._forgetting(request, open_stream(c))))
        options = StreamOptions(
            include_thoughts=request.include_thoughts, names=request.names, secrets=settings.secrets,
            timeout=settings.timeout, admin=chat.admin, shown=shown, can_replace=chat.builds_output,
            on_done=lambda reply: self._remember(chat.message_id, reply), max_bytes=self.valves.MAX_REPLY_BYTES,
            store_image=image_store(self.host, chat.user, chat.metadata),
        )  # fmt: skip
        reply_stream = stream_reply(stream, first, model=str(chat.body["model"]), emitter=emitter, options=options)
        return with_usage(reply_stream, timing, usage)

    def _ring(
        self, client: Any, settings: Settings, emitter: Emitter,
        on_switch: Callable[[Any, str], Awaitable[None]] | None = None,
    ) -> KeyRing:  # fmt: skip
        """The main key's client, and the second key's for a 429 (never with Vertex AI)."""
        fallback = settings.transport.fallback_key
        if not fallback or fallback == settings.key or settings.transport.vertex is not None:
            return KeyRing(client, None, emitter)

        async def second() -> Any:
            return await self._client(fallback, settings.base_url, settings.timeout * 1000)

        async def switched(other: Any) -> None:
            if on_switch is not None:
                await on_switch(other, fallback)

        return KeyRing(client, second, emitter, switched)

    async def _forgetting(self, request: GeminiRequest, call: Awaitable[Any]) -> Any:
        """A generate call; when Gemini refuses it, its uploaded files are forgotten (one may be gone)."""
        try:
            return await call
        except Exception as exc:
            if request.uploads and forget_refused(self._uploads, request.uploads, api_status(exc)):
                _LOG.info("Gemini refused a request with uploaded files: they are uploaded again next time")
            raise

    async def _video(
        self, body: dict, model_id: str, settings: Settings, emitter: Emitter, *, task: bool, chat: Chat
    ) -> str:
        """A Veo model's reply: the video, generated, stored as an Open WebUI file and shown."""
        if task:
            return ""  # Open WebUI's title and tag prompts are not worth a video
        prompt, options = video_prompt(body.get("messages")), settings.transport.video
        client = await self._chat_client(settings)
        ring = self._ring(client, settings, emitter)
        operation = await with_gemini_retries(
            lambda: ring.call(lambda c: start_video(c, model_id, prompt, options)),
            max_retries=settings.max_retries, emitter=emitter, timeout=settings.timeout, sleep=self.sleep,
            secrets=settings.secrets,
        )  # fmt: skip
        operation = await wait_video(ring.client, operation, emitter=emitter, clock=self.clock, sleep=self.sleep)
        data, mime = await video_bytes(ring.client, operation, secrets=settings.secrets)
        url = await store_video(self.host, data, mime, f"{model_id}.mp4", chat.user, chat.metadata)
        return video_reply(url, model_id, options)

    async def _upload(
        self, client: Any, settings: Settings, request: GeminiRequest, emitter: Emitter, key: str | None = None
    ) -> None:
        """Move the attachments that do not fit inline to the Files API, once per key and content
        (shared/gemini_uploads.py); `key` names the second key when the request moved to it."""
        if not request.uploads:
            return
        if settings.transport.vertex is not None:  # Vertex AI has no Files API: they stay inline
            await emitter.status("Large attachments are sent inline: Vertex AI has no Files API", done=True)
            return
        identity = self._identity(settings, key)
        context = UploadContext(client, identity, emitter, settings.timeout, self.clock, self.sleep)
        await attach_uploads(self._uploads, context, request.uploads)
