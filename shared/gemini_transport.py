"""How the Gemini manifold reaches Google: Vertex AI clients, and the second API key for rate limits.

Vertex AI authenticates with Google Cloud credentials instead of an API key: a service account key
(the JSON file Google Cloud's console hands out) or, without one, the server's application default
credentials (google-auth finds them: GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, the metadata
server). google-genai builds the Vertex AI client (`genai.Client(vertexai=True, project=, location=,
credentials=)`) and refreshes the access token itself through google-auth.
"""

import asyncio
import importlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.events import Emitter
from shared.gemini import GeminiError, ModelInfo, api_status, load_genai
from shared.gemini_usage import Price, parse_prices
from shared.gemini_video import VIDEO_ASPECT_RATIOS, VIDEO_RESOLUTIONS, VideoOptions
from shared.valves import resolve_choice

_TRANSPORT_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

VERTEX_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")
# Veo and Imagen answer predict calls, not generateContent: listed only when the model filters let them.
VERTEX_PREDICT_PREFIXES = ("veo-", "imagen-")

Answer = TypeVar("Answer")


def parse_service_account(text: str) -> dict[str, Any] | None:
    """The service account key in VERTEX_CREDENTIALS_JSON (None when empty: application default
    credentials). A key that is not one is refused without repeating any of it (it holds a private key)."""
    text = text.strip()
    if not text:
        return None
    detail = "VERTEX_CREDENTIALS_JSON must be a service account key (JSON with type service_account)"
    try:
        info = json.loads(text)
    except ValueError:
        raise GeminiError("Gemini is not set up correctly: its Vertex AI credentials are not valid.", detail) from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise GeminiError("Gemini is not set up correctly: its Vertex AI credentials are not valid.", detail)
    missing = [name for name in SERVICE_ACCOUNT_FIELDS if not isinstance(info.get(name), str) or not info[name]]
    if missing:
        raise GeminiError(
            "Gemini is not set up correctly: its Vertex AI credentials are not valid.",
            f"the service account key lacks {', '.join(missing)}",
        )
    return info


def account_secrets(info: dict[str, Any] | None) -> tuple[str, ...]:
    """The parts of a service account key no message may show."""
    if not info:
        return ()
    return tuple(str(info[name]) for name in ("private_key", "private_key_id") if info.get(name))


@dataclass(frozen=True)
class Vertex:
    project: str
    location: str
    account: dict[str, Any] | None  # None: the server's application default credentials

    @property
    def identity(self) -> str:
        """What tells two Vertex AI setups apart (hashed by the caller before it is kept anywhere)."""
        who = (self.account or {}).get("client_email", "adc")
        key_id = (self.account or {}).get("private_key_id", "")
        return f"vertex:{self.project}:{self.location}:{who}:{key_id}"


def _credentials(account: dict[str, Any] | None) -> Any:
    if account is None:
        return None  # google-genai asks google.auth.default() on the first call
    service_account = importlib.import_module("google.oauth2.service_account")
    try:
        return service_account.Credentials.from_service_account_info(account, scopes=list(VERTEX_SCOPES))
    except (ValueError, KeyError) as exc:
        raise GeminiError(
            "Gemini is not set up correctly: its Vertex AI credentials are not valid.",
            f"the service account key was refused by google-auth ({type(exc).__name__})",
        ) from None


async def make_vertex_client(vertex: Vertex, base_url: str | None, timeout_ms: int) -> Any:
    """A google-genai client for Vertex AI that makes one attempt per call (the caller retries)."""
    if not vertex.project:
        raise GeminiError(
            "Gemini is not set up correctly: Vertex AI needs a Google Cloud project.",
            "set VERTEX_PROJECT (and VERTEX_LOCATION) in the function's Valves",
        )
    genai, types = await load_genai()
    options = types.HttpOptions(base_url=base_url, timeout=timeout_ms, retry_options=types.HttpRetryOptions(attempts=1))

    def build() -> Any:
        credentials = _credentials(vertex.account)
        return genai.Client(
            vertexai=True,
            project=vertex.project,
            location=vertex.location or "global",
            credentials=credentials,
            http_options=options,
        )

    # Parsing the RSA key and loading SSL contexts take tens of ms: off the event loop.
    return await asyncio.to_thread(build)


async def list_vertex_models(client: Any) -> list[ModelInfo]:
    """Google's publisher models on Vertex AI (their model info names no generation methods)."""
    models: list[ModelInfo] = []
    pager = await client.aio.models.list(config={"page_size": 1000, "query_base": True})
    async for model in pager:
        model_id = str(model.name or "").rsplit("/", 1)[-1]
        if model_id:
            models.append(ModelInfo(model_id, model.display_name or model_id, None))
    return models


# --- the second key ------------------------------------------------------------------------------


class KeyRing:
    """The main key's client, and the fallback key's for when Google answers the main key with 429
    (rate limit or quota). The first 429 moves the request to the fallback key at once, once; what
    follows (retries with backoff) stays on the fallback key. `on_switch` runs before the first call
    with the fallback key (files uploaded with the main key are not readable with another key)."""

    def __init__(
        self,
        client: Any,
        fallback: Callable[[], Awaitable[Any]] | None,
        emitter: Emitter,
        on_switch: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self._fallback = fallback
        self._emitter = emitter
        self._on_switch = on_switch
        self.switched = False

    async def call(self, operation: Callable[[Any], Awaitable[Answer]]) -> Answer:
        try:
            return await operation(self.client)
        except Exception as exc:
            if self.switched or self._fallback is None or api_status(exc) != 429:
                raise
        self.switched = True
        await self._emitter.status("Gemini's rate limit was reached for the main key; trying the second key")
        try:
            self.client = await self._fallback()
            if self._on_switch is not None:
                await self._on_switch(self.client)
            answer = await operation(self.client)
        except BaseException:  # close the status: done=False would shimmer next to the error
            await self._emitter.status("The second key did not get an answer either", done=True)
            raise
        await self._emitter.status("Gemini answered with the second key (the main key hit its rate limit)", done=True)
        return answer


# --- the valves, read once per request -----------------------------------------------------------


@dataclass(frozen=True)
class TransportSettings:
    fallback_key: str = ""
    vertex: Vertex | None = None  # set: Vertex AI instead of the Gemini API
    prices: dict[str, Price] = field(default_factory=dict)
    video: VideoOptions = field(default_factory=VideoOptions)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.fallback_key, *account_secrets(self.vertex.account if self.vertex else None))


def _user_text(user_valves: Any, name: str) -> str:
    value = getattr(user_valves, name, "") if user_valves is not None else ""
    return value.strip() if isinstance(value, str) else ""


def transport_settings(valves: Any, user_valves: Any) -> TransportSettings:
    """The transport valves in force for one request (the user's video choices over the admin's)."""
    vertex = None
    if valves.USE_VERTEX_AI:
        account = parse_service_account(valves.VERTEX_CREDENTIALS_JSON)
        vertex = Vertex(valves.VERTEX_PROJECT.strip(), valves.VERTEX_LOCATION.strip() or "global", account)
    duration = resolve_choice(getattr(user_valves, "VIDEO_DURATION_SECONDS", None), "", ("4", "6", "8"))
    video = VideoOptions(
        aspect_ratio=resolve_choice(
            getattr(user_valves, "VIDEO_ASPECT_RATIO", None), valves.VIDEO_ASPECT_RATIO, VIDEO_ASPECT_RATIOS
        ),
        duration_seconds=int(duration) if duration else valves.VIDEO_DURATION_SECONDS,
        resolution=resolve_choice(
            getattr(user_valves, "VIDEO_RESOLUTION", None), valves.VIDEO_RESOLUTION, VIDEO_RESOLUTIONS
        ),
        negative_prompt=_user_text(user_valves, "VIDEO_NEGATIVE_PROMPT") or valves.VIDEO_NEGATIVE_PROMPT.strip(),
    )
    try:
        prices = parse_prices(valves.PRICES)
    except GeminiError as exc:  # a broken price table costs the cost line, not the chat
        _TRANSPORT_LOG.warning("Gemini usage shows no cost: %s", exc.detail)
        prices = {}
    return TransportSettings(
        fallback_key=valves.GOOGLE_API_KEY_FALLBACK.strip(), vertex=vertex, prices=prices, video=video
    )
