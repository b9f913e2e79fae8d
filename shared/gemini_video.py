"""Veo video generation: start Google's long-running operation, poll it with a status line, fetch the
video, store it as an Open WebUI file (shared/host.py FileHost.store_file) and answer with a player.

On Vertex AI google-genai starts the operation itself (`models.generate_videos`); on the Gemini API
google-genai 3.6 refuses that call, so the operation is started with the same REST request Google
documents (`POST models/<veo>:predictLongRunning`, `{"instances": [{"prompt"}], "parameters": {...}}`)
through the client's own request path (its key, address and timeout), and read back with the SDK's
`GenerateVideosOperation`. Polling (`operations.get`) and the download (`files.download`) are the
SDK's public calls in both cases.
"""

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.attachments import MiB
from shared.events import Emitter
from shared.gemini import GeminiError, load_genai
from shared.secrets import redact
from shared.text import content_text

_VIDEO_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

VIDEO_POLL_SECONDS = 10.0  # Google's own examples poll every 10-20 s; a video takes 1-6 minutes
VIDEO_MAX_WAIT = 20 * 60.0  # an operation still running after this is given up (and cancelled)
VIDEO_MAX_BYTES = 512 * MiB
VIDEO_ASPECT_RATIOS = ("16:9", "9:16")
VIDEO_RESOLUTIONS = ("720p", "1080p")
_FILE_NAME = re.compile(r"files/([a-z0-9-]+)")


def is_video_model(model_id: str) -> bool:
    return model_id.startswith("veo-")


@dataclass(frozen=True)
class VideoOptions:
    aspect_ratio: str = "16:9"
    duration_seconds: int = 8
    resolution: str = "720p"
    negative_prompt: str = ""

    def parameters(self) -> dict[str, Any]:
        """The generation parameters, as the REST API names them."""
        out: dict[str, Any] = {
            "aspectRatio": self.aspect_ratio,
            "durationSeconds": self.duration_seconds,
            "resolution": self.resolution,
            "sampleCount": 1,
        }
        if self.negative_prompt.strip():
            out["negativePrompt"] = self.negative_prompt.strip()
        return out

    def config(self) -> dict[str, Any]:
        """The same parameters as google-genai's GenerateVideosConfig fields."""
        out: dict[str, Any] = {
            "aspect_ratio": self.aspect_ratio,
            "duration_seconds": self.duration_seconds,
            "resolution": self.resolution,
            "number_of_videos": 1,
        }
        if self.negative_prompt.strip():
            out["negative_prompt"] = self.negative_prompt.strip()
        return out


def video_prompt(messages: Any) -> str:
    """What the video should show: the text of the last user message."""
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            text = content_text(message.get("content")).strip()
            if text:
                return text
            break
    raise GeminiError("Describe the video you want in your message: Veo makes a video from a text prompt.")


async def start_video(client: Any, model: str, prompt: str, options: VideoOptions) -> Any:
    """Start the long-running operation: a google-genai GenerateVideosOperation."""
    _, types = await load_genai()
    if client.vertexai:
        return await client.aio.models.generate_videos(
            model=model, source=types.GenerateVideosSource(prompt=prompt), config=options.config()
        )
    body = {"instances": [{"prompt": prompt}], "parameters": options.parameters()}
    response = await client.aio._api_client.async_request("post", f"models/{model}:predictLongRunning", body)
    return types.GenerateVideosOperation.from_api_response(json.loads(response.body or "{}"), is_vertex_ai=False)


async def cancel_video(client: Any, operation: Any) -> None:
    """Ask Google to stop the operation (best effort: the user stopped the reply)."""
    name = getattr(operation, "name", None)
    if not name:
        return
    try:
        await asyncio.wait_for(client.aio._api_client.async_request("post", f"{name}:cancel", {}), 10)
    except Exception as exc:  # the reply is stopped either way
        _VIDEO_LOG.info("cancelling the Veo operation failed: %s", type(exc).__name__)


def _elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


async def wait_video(
    client: Any,
    operation: Any,
    *,
    emitter: Emitter,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    interval: float = VIDEO_POLL_SECONDS,
    max_wait: float = VIDEO_MAX_WAIT,
) -> Any:
    """Poll until the operation is done, with a status line showing the time so far. A stopped
    reply (cancellation) or a wait past `max_wait` cancels the operation at Google too."""
    started = clock()
    try:
        while not operation.done:
            waited = clock() - started
            if waited > max_wait:
                raise GeminiError(f"Veo had not finished the video after {_elapsed(waited)}.")
            await emitter.status(f"Generating the video… {_elapsed(waited)}")
            await sleep(interval)
            operation = await client.aio.operations.get(operation)
    except BaseException as exc:
        await cancel_video(client, operation)
        stopped = "stopped" if not isinstance(exc, Exception) else "failed"
        await emitter.status(f"Video generation {stopped} after {_elapsed(clock() - started)}", done=True)
        raise
    await emitter.status(f"Video generated in {_elapsed(clock() - started)}", done=True)
    return operation


def _failure(operation: Any, secrets: tuple[str, ...]) -> GeminiError | None:
    error = getattr(operation, "error", None)
    if error:
        message = error.get("message") if isinstance(error, dict) else str(error)
        said = redact(str(message or "no reason given"), secrets, 300).rstrip(".")
        return GeminiError(f"Veo could not make the video: {said}.")
    result = getattr(operation, "response", None) or getattr(operation, "result", None)
    videos = getattr(result, "generated_videos", None) or []
    if not videos or getattr(videos[0], "video", None) is None:
        reasons = getattr(result, "rai_media_filtered_reasons", None) or []
        why = "; ".join(redact(str(r), secrets, 200) for r in reasons)
        return GeminiError("Veo made no video: Google's safety filters held it back" + (f" ({why})." if why else "."))
    return None


async def video_bytes(client: Any, operation: Any, *, secrets: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """The finished operation's first video: (bytes, MIME type)."""
    failure = _failure(operation, secrets)
    if failure is not None:
        raise failure
    video = operation.response.generated_videos[0].video
    mime = getattr(video, "mime_type", None) or "video/mp4"
    data = getattr(video, "video_bytes", None)
    if data:
        return data, mime
    match = _FILE_NAME.search(str(getattr(video, "uri", "") or ""))
    if match is None:
        raise GeminiError("Veo's video could not be downloaded: its address is not a Gemini file.")
    data = await client.aio.files.download(file=f"files/{match.group(1)}")
    if len(data) > VIDEO_MAX_BYTES:
        raise GeminiError("Veo's video is larger than this server takes.")
    return data, mime


# --- Open WebUI file storage -----------------------------------------------------------------------


async def store_video(host: Any, data: bytes, mime: str, name: str, user: Any, metadata: Any) -> str:
    """Store the video as an Open WebUI file of the chatting user, linked to the chat message
    (shared/host.py FileHost.store_file); the link Open WebUI serves it at."""
    meta = metadata if isinstance(metadata, dict) else {}
    owner = user if isinstance(user, dict) else {}
    try:
        file_id = await host.store_file(
            data, mime, name, owner, chat_id=meta.get("chat_id"), message_id=meta.get("message_id")
        )
    except Exception as exc:
        raise GeminiError(
            "The video was made but could not be stored in Open WebUI.", f"{type(exc).__name__}: {exc}"
        ) from None
    return f"/api/v1/files/{file_id}/content"


def video_reply(url: str, model: str, options: VideoOptions) -> str:
    """The reply: Open WebUI 0.12.4 draws `<video>URL</video>` as a player (frontend
    Markdown/HTMLToken.svelte takes the element's text as its source), then a download link."""
    return (
        f"<video>{url}</video>\n\n"
        f"[Download the video]({url}) · {model}, {options.duration_seconds} s, "
        f"{options.aspect_ratio}, {options.resolution}"
    )
