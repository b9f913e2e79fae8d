"""Gemini's media and built-in tools: images it makes and edits, code it runs, pages and places it
reads, YouTube videos it watches. Pure helpers, host-independent, used by shared/gemini.py (the
request) and shared/gemini_reply.py (the reply).

Images Gemini makes are stored as Open WebUI files by the pipe and shown with a markdown image
pointing at `/api/v1/files/<id>/content`, in the message text itself: the text is what every Open
WebUI version saves with the message, so the image shows once and survives a reload. The same
links, found again in the chat's earlier replies, are how an edit gets the earlier images back.
"""

import html
import json
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from shared.attachments import AttachmentError, Blob, read_host_file
from shared.gemini_models import Capabilities
from shared.text import strip_blocks
from shared.valves import resolve_choice, resolve_switch

_MEDIA_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

IMAGE_ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_SIZES = ("1K", "2K", "4K")
YOUTUBE_LIMIT = 10  # Gemini takes at most 10 videos in one request
REPLY_IMAGE_LIMIT = 8  # images one reply may store; more are left out with a note
# An Open WebUI file link (relative, or with the server's origin) and a markdown image showing one.
_FILE_LINK = r"(?:https?://[^\s()<>]{1,200})?/api/v1/files/([A-Za-z0-9-]{1,64})/content"
MARKDOWN_FILE_IMAGE = re.compile(r"!\[[^\]\n]{0,200}\]\(" + _FILE_LINK + r"\)")
YOUTUBE_LINK = re.compile(r"https?://(?:www\.|m\.|music\.)?(?:youtube\.com|youtu\.be)/[^\s<>()\"'\]]*")
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
HISTORY_IMAGES_NOTE = "Images made earlier in this chat, newest first:"
# Gemini's URL retrieval statuses (UrlRetrievalStatus), in words.
URL_FAILURES = {
    "URL_RETRIEVAL_STATUS_ERROR": "it could not be retrieved",
    "URL_RETRIEVAL_STATUS_PAYWALL": "it is behind a paywall",
    "URL_RETRIEVAL_STATUS_UNSAFE": "it was judged unsafe",
}
# The built-in tools a valve turns on: option name, capability, the Tool field, its name in words,
# and what the model would do with it.
BUILTIN_TOOLS = (
    ("code_execution", "code", "code_execution", "Code execution", "run code"),
    ("url_context", "urls", "url_context", "URL context", "read web pages"),
    ("maps", "maps", "google_maps", "Google Maps grounding", "use Google Maps"),
)


@dataclass(frozen=True)
class MediaOptions:
    """What the valves decide about media and built-in tools."""

    aspect_ratio: str = "default"
    image_size: str = "default"
    history_images: int = 3  # earlier generated images sent back for an edit
    code_execution: bool = False
    url_context: bool = False
    maps: bool = False
    youtube: bool = True


@dataclass
class MediaPlan:
    """What the model's capabilities and the media valves add to one request."""

    config: dict[str, Any] = field(default_factory=dict)  # GenerateContentConfig fields
    tools: list[dict[str, Any]] = field(default_factory=list)  # built-in tools to add
    search: bool = True  # Google Search grounding may be offered
    functions: bool = True  # the chat's tools may be offered
    images: bool = False  # the model makes images (earlier ones go back to it for edits)
    videos: bool = False  # YouTube links go as video parts
    notes: list[str] = field(default_factory=list)  # one status line per setting left out
    warnings: list[str] = field(default_factory=list)  # what was left out of the request


# --- the request ---------------------------------------------------------------------------------


def plan_media(
    caps: Capabilities,
    media: MediaOptions,
    *,
    grounding: bool,
    declarations: bool,
    combines: bool,
    user_tools: bool = True,
    answering: bool = False,
) -> MediaPlan:
    """Fit the settings to what the model can do. `combines`: the model takes built-in tools and
    function declarations in one request (Gemini 3 with the SDK's server-side tool steps). On other
    models the chat's own tools (`user_tools`) and a tool loop being answered (`answering`) win, with
    a status line; Open WebUI's builtin tools alone give way to the built-in tools, as they do to
    Google Search (shared/gemini.py plan_tools)."""
    plan = MediaPlan(images=caps.images, videos=media.youtube and caps.video_input)
    if grounding and not caps.search:
        plan.search = False
        plan.notes.append("Search grounding is off for this reply: this model cannot search")
    if declarations and not caps.tools:
        plan.functions = False
        plan.notes.append("The chat's tools are off for this reply: this model cannot call tools")
    functions = declarations and plan.functions
    for option, capability, tool, name, verb in BUILTIN_TOOLS:
        if not getattr(media, option):
            continue
        if not getattr(caps, capability):
            plan.notes.append(f"{name} is off for this reply: this model cannot {verb}")
        elif functions and not combines and (user_tools or answering):
            if not answering:
                plan.notes.append(f"{name} is off for this reply because tools are on")
        else:
            plan.tools.append({tool: {}})
            plan.functions = plan.functions and (combines or not functions)
    if caps.images:
        plan.config["response_modalities"] = ["TEXT", "IMAGE"]
        image_config: dict[str, Any] = {}
        if media.aspect_ratio in IMAGE_ASPECT_RATIOS:
            image_config["aspect_ratio"] = media.aspect_ratio
        if media.image_size in IMAGE_SIZES:
            if caps.image_sizes:
                image_config["image_size"] = media.image_size
            else:
                plan.notes.append("The image size setting is ignored: this model makes images of one size")
        if image_config:
            plan.config["image_config"] = image_config
    return plan


def apply_media(contents: list[dict[str, Any]], plan: MediaPlan) -> None:
    """The contents as the plan wants them: earlier replies cleaned, YouTube links as videos."""
    clean_model_turns(contents)
    if plan.videos:
        plan.warnings += add_youtube_videos(contents)


def file_ids_in(text: str) -> list[str]:
    """The Open WebUI file ids of the markdown images in a text, in order."""
    if "/api/v1/files/" not in text:
        return []
    return [match.group(1) for match in MARKDOWN_FILE_IMAGE.finditer(text)]


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(i.get("text") or "" for i in content if isinstance(i, dict) and isinstance(i.get("text"), str))
    return ""


def generated_image_ids(messages: Any, limit: int) -> list[str]:
    """The files of the images this chat's replies showed, newest first, at most `limit`."""
    found: list[str] = []
    for message in reversed(messages if isinstance(messages, list) else []):
        if len(found) >= limit:
            break
        if isinstance(message, dict) and message.get("role") == "assistant":
            for file_id in reversed(file_ids_in(_message_text(message))):
                if file_id not in found:
                    found.append(file_id)
    return found[: max(limit, 0)]


def clean_model_turns(contents: list[dict[str, Any]]) -> None:
    """Earlier replies as Gemini reads them back: without the image links (the images go as inputs
    when the model edits) and without Open WebUI's code-run blocks (their markup is not the answer)."""
    for content in contents:
        if content.get("role") != "model":
            continue
        for part in content["parts"]:
            text = part.get("text")
            if not isinstance(text, str) or ("/api/v1/files/" not in text and "<details" not in text):
                continue
            text = MARKDOWN_FILE_IMAGE.sub("[image]", text)
            part["text"] = strip_blocks(text, details=("code_interpreter",), reasoning_tags=False)


def add_generated_images(contents: list[dict[str, Any]], blobs: list[Blob], images: list[tuple[str, bytes]]) -> None:
    """Put the chat's earlier generated images (newest first) in front of the last user message."""
    if not images:
        return
    for content in reversed(contents):
        if content["role"] == "user":
            parts: list[dict[str, Any]] = [{"text": HISTORY_IMAGES_NOTE}]
            for number, (mime, data) in enumerate(images, 1):
                part = {"inline_data": {"mime_type": mime, "data": data}}
                blobs.append(Blob(part, f"earlier image {number}"))
                parts.append(part)
            content["parts"][:0] = parts
            return


def youtube_uri(link: str) -> str | None:
    """The watch URL of a YouTube video link (watch, shorts, live, embed, youtu.be), or None."""
    split = urlsplit(link)
    host = (split.hostname or "").lower()
    path = split.path.strip("/").split("/")
    if host == "youtu.be":
        video = path[0] if path else ""
    elif path and path[0] == "watch":
        video = (parse_qs(split.query).get("v") or [""])[0]
    elif len(path) >= 2 and path[0] in ("shorts", "live", "embed"):
        video = path[1]
    else:
        return None
    return f"https://www.youtube.com/watch?v={video}" if _YOUTUBE_ID.fullmatch(video) else None


def add_youtube_videos(contents: list[dict[str, Any]], limit: int = YOUTUBE_LIMIT) -> list[str]:
    """A video part before each user text that links a YouTube video (the newest messages first,
    each video once, at most `limit`); the text stays. Returns a warning when some were left out."""
    seen: set[str] = set()
    skipped = 0
    for content in reversed(contents):
        if content["role"] != "user":
            continue
        parts: list[dict[str, Any]] = []
        for part in content["parts"]:
            text = part.get("text")
            if isinstance(text, str) and "youtu" in text:
                for link in YOUTUBE_LINK.findall(text):
                    uri = youtube_uri(link)
                    if uri is None or uri in seen:
                        continue
                    seen.add(uri)
                    if len(seen) > limit:
                        skipped += 1
                        continue
                    parts.append({"file_data": {"file_uri": uri}})
            parts.append(part)
        content["parts"] = parts
    return [f"{skipped} YouTube links were sent as text only: Gemini watches {limit} videos at most"] if skipped else []


# --- the reply -----------------------------------------------------------------------------------


def _fence(code: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", code)), default=2)
    return "`" * (longest + 1)


def code_block(code: str, language: str, output: str | None, failed: bool) -> str:
    """Code Gemini ran, as Open WebUI's own code-interpreter block: a `<details
    type="code_interpreter">` with the run's output as HTML-escaped JSON in its `output` attribute
    (the form Open WebUI's middleware writes, open_webui/utils/middleware.py before 0.12, and that
    0.12.4's frontend still draws as an "Analyzed" block)."""
    fence = _fence(code)
    lang = (language or "python").lower()
    head = '<details type="code_interpreter" done="true"'
    if output is not None:
        result = {"stderr" if failed else "stdout": output}
        head += f' output="{html.escape(json.dumps(result, ensure_ascii=False))}"'
    return f"{head}>\n<summary>Analyzed</summary>\n{fence}{lang}\n{code}\n{fence}\n</details>\n"


def image_markdown(url: str, number: int) -> str:
    return f"\n\n![Image {number}]({url})\n\n"


def url_source_title(name: str, status: str) -> str:
    """A URL-context source's name, with why Gemini could not read it when it could not."""
    failure = URL_FAILURES.get(status)
    return f"{name} (not read: {failure})" if failure else name


# --- the pipe's side: settings, earlier images, the image store ----------------------------------


def media_options(valves: Any, user_valves: Any) -> MediaOptions:
    """The media settings in force: each user valve where the user chose, else the admin's."""

    def choice(name: str, allowed: tuple[str, ...]) -> str:
        return resolve_choice(getattr(user_valves, name, None), getattr(valves, name), allowed)

    def switch(name: str) -> bool:
        return resolve_switch(getattr(user_valves, name, None), getattr(valves, name))

    return MediaOptions(
        aspect_ratio=choice("IMAGE_ASPECT_RATIO", IMAGE_ASPECT_RATIOS),
        image_size=choice("IMAGE_SIZE", IMAGE_SIZES),
        history_images=valves.IMAGE_HISTORY_LIMIT,
        code_execution=switch("CODE_EXECUTION"),
        url_context=switch("URL_CONTEXT"),
        maps=switch("GOOGLE_MAPS_GROUNDING"),
        youtube=valves.YOUTUBE_AS_VIDEO,
    )


async def read_generated_images(host: Any, messages: Any, user: Any, limit: int) -> list[tuple[str, bytes]]:
    """The chat's earlier generated images (newest first, at most `limit`) read back from Open
    WebUI's file store, those this user may read; one that is gone is skipped."""
    images: list[tuple[str, bytes]] = []
    for file_id in generated_image_ids(messages, limit):
        try:
            data, mime, _ = await read_host_file(host, file_id, user if isinstance(user, dict) else None)
        except AttachmentError as exc:
            _MEDIA_LOG.info("earlier image %s is not sent back: %s", file_id, exc)
            continue
        if mime.startswith("image/"):
            images.append((mime, data))
    return images


def image_store(host: Any, user: Any, metadata: Any) -> Any:
    """An ImageStore (shared/gemini_reply.py) that keeps each image as a file of the chatting user,
    linked to the chat message, and answers the link Open WebUI serves it at."""
    meta = metadata if isinstance(metadata, dict) else {}
    owner = user if isinstance(user, dict) else {}

    async def store(mime: str, data: bytes) -> str:
        extension = mimetypes.guess_extension(mime) or ".png"
        name = f"gemini-image{extension}"
        file_id = await host.store_file(
            data, mime, name, owner, chat_id=meta.get("chat_id"), message_id=meta.get("message_id")
        )
        return f"/api/v1/files/{file_id}/content"

    return store
