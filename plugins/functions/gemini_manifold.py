"""
title: Gemini Manifold
author: Open WebUI Pack contributors
version: 0.1.0
description: Google Gemini chat models with thoughts, Google Search citations, native tool calls, files and retries.
license: MIT
required_open_webui_version: 0.12.4
requirements: google-genai>=1.54.0
"""

# Secrets: GOOGLE_API_KEY is a plain string valve shown as a password field. Open WebUI stores
# valves in its database in clear text unless the server runs with ENABLE_VALVE_ENCRYPTION=true
# (Fernet, keyed from WEBUI_SECRET_KEY: keep that key stable or the stored valves read back empty).
# pydantic SecretStr is not used on purpose: Open WebUI 0.12.4 silently drops it on save.

import asyncio
import base64
import binascii
import hashlib
import hmac
import importlib
import io
import ipaddress
import json
import logging
import mimetypes
import os
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import BaseModel, Field

from shared.events import Emitter, citation
from shared.secrets import redact

_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

API_VERSION = "v1beta"
MiB = 1024 * 1024
# Gemini refuses requests over 20 MB; base64 makes inline bytes 4/3 bigger, so attachments above
# this raw total go through the Files API instead.
INLINE_BUDGET = 14 * MiB
HOST_FILE_MAX_BYTES = 200 * MiB
IMAGE_URL_MAX_BYTES = 15 * MiB
IMAGE_URL_TIMEOUT = 20.0
IMAGE_URL_MAX_REDIRECTS = 3
LIST_TIMEOUT_MS = 15_000
LIST_FAILURE_TTL = 30.0  # a failed model listing is retried after this many seconds
NOTICE_LIMIT = 300  # characters of the error in the one-line notice that ends a cut-off reply
ERROR_LIMIT = 1000  # characters of an upstream error in an exception the user sees
UPLOAD_CACHE_TTL = 47 * 3600.0  # Files API keeps uploads 48 h
RETRYABLE_STATUS = frozenset({429, 500, 503})
MAX_SERVER_RETRY_DELAY = 60.0  # a longer requested wait fails at once with a clear message
CLIENT_CACHE_SIZE = 8
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Google's documented "no signature" value
CALL_ID_MARK = "~g"
PLACEHOLDER_IDS = frozenset({"setup", "error", "none"})
MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?", re.ASCII)  # gemini-2.5-flash, tunedModels/x-1
DEFAULT_DENYLIST = "*-tts*, *-image*, *-live*, *native-audio*, *embedding*"
GEMINI_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
EFFORT_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
EFFORT_LEVEL = {
    "none": "MINIMAL",  # Gemini 3 cannot switch thinking off; MINIMAL is the least there is
    "minimal": "MINIMAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    "xhigh": "HIGH",
}
OPENAI_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
FINISH_NOTES = {
    "MAX_TOKENS": "the reply reached the output token limit (max_tokens)",
    "SAFETY": "Gemini's safety filters blocked the rest of the reply",
    "RECITATION": "the reply resembled copyrighted material too closely",
    "LANGUAGE": "the reply needed a language Gemini does not support",
    "BLOCKLIST": "the reply contained blocklisted terms",
    "PROHIBITED_CONTENT": "the reply was stopped for prohibited content",
    "SPII": "the reply contained sensitive personal information",
    "MALFORMED_FUNCTION_CALL": "Gemini produced a tool call it could not format",
    "UNEXPECTED_TOOL_CALL": "Gemini called a tool that was not offered",
    "TOO_MANY_TOOL_CALLS": "Gemini made too many tool calls in a row",
    "MISSING_THOUGHT_SIGNATURE": "a tool call in the history lacked its thought signature",
    "IMAGE_SAFETY": "an image in the reply was blocked by the safety filters",
    "IMAGE_PROHIBITED_CONTENT": "an image in the reply was prohibited content",
    "OTHER": "Gemini stopped for an unspecified reason",
}
NO_KEY_MESSAGE = (
    "No Gemini API key: an admin sets GOOGLE_API_KEY in Admin Panel > Functions > Gemini Manifold > "
    "Valves, or you set your own GOOGLE_API_KEY in this function's user valves."
)


class GeminiError(RuntimeError):
    """A failure with a message a user can act on. It never carries the API key."""


class AttachmentError(ValueError):
    """An image or file that cannot be sent; the request goes on without it."""


class PrivateAddressError(OSError):
    """A link whose host resolves only to private, loopback or link-local addresses."""


# --- small helpers ---------------------------------------------------------------------------


def sub_model_id(model: str) -> str:
    # Open WebUI names sub-models "<function id>.<entry id>" whatever id the admin chose;
    # Gemini ids contain dots themselves, so split once.
    return model.split(".", 1)[1] if "." in model else model


def parse_globs(text: str) -> list[str]:
    return [g.strip().lower() for g in text.split(",") if g.strip()]


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def model_allowed(model_id: str, allow: list[str], deny: list[str]) -> bool:
    mid = model_id.lower()
    if allow and not any(fnmatchcase(mid, g) for g in allow):
        return False
    return not any(fnmatchcase(mid, g) for g in deny)


def thinking_family(model_id: str, thinking: bool | None) -> Literal["level", "budget", "alias"] | None:
    """How a model's thinking is configured: Gemini 3+ by level, 2.5 by token budget. A thinking
    model without a version in its id (Google's aliases such as gemini-flash-latest, which move
    from one generation to the next) is an "alias": set by budget, which 2.5 and 3 both accept."""
    match = re.search(r"gemini-(\d+)(?:\.(\d+))?", model_id.lower())
    if match:
        major, minor = int(match.group(1)), int(match.group(2) or 0)
        if major >= 3:
            return "level"
        if major == 2 and minor >= 5:
            return "budget"
        return None
    return "alias" if thinking else None


def thinking_level(model_id: str, level: str) -> str:
    level = level.upper()
    if "pro" in model_id.lower():
        # Pro models think at LOW or HIGH only.
        return "LOW" if level in ("MINIMAL", "LOW") else "HIGH"
    return level


def thinking_budget(model_id: str, budget: int) -> int:
    # Pro models cannot switch thinking off; 128 is their smallest budget.
    return max(budget, 128) if "pro" in model_id.lower() and budget >= 0 else budget


def thinking_config(
    model_id: str,
    thinking: bool | None,
    *,
    include_thoughts: bool,
    budget: int,
    level: str,
    effort: str | None,
    task: bool,
) -> dict[str, Any] | None:
    family = thinking_family(model_id, thinking)
    if family is None:
        return None
    config: dict[str, Any] = {}
    if task:
        # Title/tag/follow-up calls: as little thinking as the model allows.
        if family == "level":
            config["thinking_level"] = thinking_level(model_id, "MINIMAL")
        else:
            config["thinking_budget"] = thinking_budget(model_id, 0)
        return config
    if include_thoughts:
        config["include_thoughts"] = True
    if family == "level":
        chosen = EFFORT_LEVEL[effort] if effort else (level if level != "default" else None)
        if chosen:
            config["thinking_level"] = thinking_level(model_id, chosen)
    else:
        chosen_budget = EFFORT_BUDGET[effort] if effort else budget
        if family == "alias" and chosen_budget == -1 and level != "default":
            # An alias may stand for a Gemini 3 model: THINKING_LEVEL counts, as its budget.
            chosen_budget = EFFORT_BUDGET[level]
        if chosen_budget != -1:
            config["thinking_budget"] = thinking_budget(model_id, chosen_budget)
    return config or None


def _number(body: dict, key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise GeminiError(f"{key} must be a number from {low:g} to {high:g}, got {value!r}.")
    return float(value)


def _integer(body: dict, key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GeminiError(f"{key} must be a whole number from {low} to {high}, got {value!r}.")
    return value


def sampling_config(body: dict) -> dict[str, Any]:
    """OpenAI sampling parameters -> GenerateContentConfig fields, only those the request sets."""
    config: dict[str, Any] = {}
    for key, target, low, high in (("temperature", "temperature", 0.0, 2.0), ("top_p", "top_p", 0.0, 1.0)):
        value = _number(body, key, low, high)
        if value is not None:
            config[target] = value
    top_k = _integer(body, "top_k", 1, 1_000_000)
    if top_k is not None:
        config["top_k"] = top_k
    max_key = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    max_tokens = _integer(body, max_key, 1, 10_000_000)
    if max_tokens is not None:
        config["max_output_tokens"] = max_tokens
    seed = _integer(body, "seed", -(2**31), 2**31 - 1)
    if seed is not None:
        config["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise GeminiError(f"stop must be a string or a list of strings, got {stop!r}.")
        stops = [s for s in stops if s]
        if stops:
            config["stop_sequences"] = stops[:5]  # Gemini takes at most 5
    return config


def reasoning_effort(body: dict) -> str | None:
    effort = body.get("reasoning_effort")
    if effort is None or effort == "":
        return None
    if not isinstance(effort, str) or effort.lower() not in EFFORTS:
        raise GeminiError(f"reasoning_effort must be one of {', '.join(EFFORTS)}, got {effort!r}.")
    return effort.lower()


# --- tool names and call ids -----------------------------------------------------------------


def gemini_tool_name(name: str) -> str:
    """A function name Gemini accepts (letters, digits, _ . : -; starts with a letter or _; <= 64)."""
    clean = re.sub(r"[^A-Za-z0-9_.:-]", "_", name)
    if not clean or not (clean[0].isalpha() or clean[0] == "_"):
        clean = "_" + clean
    if len(clean) > 64:
        clean = clean[:55] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return clean


def function_declarations(tools: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """OpenAI tool specs -> Gemini function declarations, and Gemini name -> original name."""
    declarations: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    if not isinstance(tools, list):
        return declarations, names
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        spec = tool.get("function")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            continue
        name = gemini_tool_name(spec["name"])
        if name in names:
            continue
        names[name] = spec["name"]
        declaration: dict[str, Any] = {"name": name}
        if isinstance(spec.get("description"), str) and spec["description"].strip():
            declaration["description"] = spec["description"].strip()
        params = spec.get("parameters")
        if isinstance(params, dict) and params:
            # Passed as JSON Schema: Gemini's own Schema subset would reject common keywords.
            declaration["parameters_json_schema"] = params
        declarations.append(declaration)
    return declarations, names


def encode_call_id(gemini_id: str | None, signature: bytes | None) -> str:
    """An OpenAI tool-call id that carries Gemini's call id and thought signature.

    Open WebUI hands the id back unchanged in the assistant's `tool_calls` and the `tool` message,
    so the signature Gemini 3 requires on the next call survives the round trip.
    """
    call_id = "call_" + uuid.uuid4().hex[:24]
    if not gemini_id and not signature:
        return call_id
    payload = {"i": gemini_id, "s": base64.b64encode(signature).decode() if signature else None}
    packed = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{call_id}{CALL_ID_MARK}{packed}"


def decode_call_id(call_id: Any) -> tuple[str | None, bytes | None]:
    if not isinstance(call_id, str) or CALL_ID_MARK not in call_id:
        return None, None
    packed = call_id.rsplit(CALL_ID_MARK, 1)[1]
    try:
        payload = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
        gemini_id = payload.get("i")
        signature = base64.b64decode(payload["s"]) if payload.get("s") else None
    except (ValueError, TypeError, AttributeError, KeyError, binascii.Error):
        return None, None
    return (gemini_id if isinstance(gemini_id, str) else None), signature


# --- attachments -----------------------------------------------------------------------------


def sniff_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftyphevc"):
        return "image/heic"
    if data[4:12] in (b"ftypmif1", b"ftypmsf1", b"ftypheif"):
        return "image/heif"
    if data.startswith(b"BM"):
        return "image/bmp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def parse_data_uri(uri: str) -> tuple[str, bytes]:
    """(MIME type, bytes) of a data: URI; the bytes decide the type when they are recognisable."""
    header, sep, payload = uri.partition(",")
    if not sep or not header.lower().startswith("data:"):
        raise AttachmentError("it is not a valid data URI")
    params = header[5:].split(";")
    declared = params[0].strip().lower()
    if any(p.strip().lower() == "base64" for p in params[1:]):
        compact = re.sub(r"\s+", "", payload)
        try:
            data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError):
            try:
                data = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
            except (binascii.Error, ValueError):
                raise AttachmentError("its base64 data is corrupt") from None
    else:
        from urllib.parse import unquote_to_bytes

        data = unquote_to_bytes(payload)
    if not data:
        raise AttachmentError("it is empty")
    return sniff_mime(data) or declared or "application/octet-stream", data


def to_gemini_image(mime: str, data: bytes) -> tuple[str, bytes]:
    """Gemini reads PNG, JPEG, WEBP, HEIC and HEIF; GIF/BMP/TIFF are converted to PNG (Pillow)."""
    if mime in GEMINI_IMAGE_TYPES:
        return mime, data
    if not mime.startswith("image/"):
        raise AttachmentError(f"it is not an image ({mime})")
    try:
        image_module = importlib.import_module("PIL.Image")
        with image_module.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGBA").save(out, format="PNG")
    except Exception:
        raise AttachmentError(f"Gemini cannot read {mime} images and it could not be converted") from None
    return "image/png", out.getvalue()


def local_fetch_allowed() -> bool:
    # Same switch as Open WebUI's own URL fetching (open_webui/config.py ENABLE_LOCAL_WEB_FETCH).
    value = os.environ.get("ENABLE_LOCAL_WEB_FETCH", os.environ.get("ENABLE_RAG_LOCAL_WEB_FETCH", "false"))
    return value.strip().lower() == "true"


def _public_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_global
    except ValueError:
        return False


def _check_url(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AttachmentError("only http(s) image links can be fetched")
    if any(c in url for c in "\\\t\r\n"):
        raise AttachmentError("the link contains characters that are not allowed")
    host = parts.hostname
    literal = True
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = False
    if literal and not allow_private and not _public_ip(host):
        raise AttachmentError("the link points to a private network address")


_resolver_classes: dict[int, type] = {}


def _public_resolver(aiohttp: Any) -> Any:
    """A resolver that drops private addresses, so DNS cannot steer the fetch inside the network."""
    cls = _resolver_classes.get(id(aiohttp))
    if cls is None:

        class PublicResolver(aiohttp.ThreadedResolver):
            async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, Any]]:
                found = await super().resolve(host, port, family)
                public = [entry for entry in found if _public_ip(entry["host"])]
                if not public:
                    raise PrivateAddressError(f"{host} resolves only to private network addresses")
                return public

        cls = _resolver_classes[id(aiohttp)] = PublicResolver
    return cls()


async def fetch_image(url: str, *, max_bytes: int | None = None, timeout: float | None = None) -> tuple[str, bytes]:
    """Download an image link (size cap, timeout, public addresses only unless the host allows local)."""
    import aiohttp

    max_bytes = IMAGE_URL_MAX_BYTES if max_bytes is None else max_bytes
    timeout = IMAGE_URL_TIMEOUT if timeout is None else timeout
    allow_private = local_fetch_allowed()
    _check_url(url, allow_private)
    connector = aiohttp.TCPConnector(resolver=None if allow_private else _public_resolver(aiohttp))
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
            for _ in range(IMAGE_URL_MAX_REDIRECTS + 1):
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                        url = urljoin(url, response.headers["Location"])
                        _check_url(url, allow_private)
                        continue
                    if response.status != 200:
                        raise AttachmentError(f"the server answered HTTP {response.status}")
                    if (response.content_length or 0) > max_bytes:
                        raise AttachmentError(f"it is larger than {max_bytes // MiB} MB")
                    data = bytearray()
                    async for block in response.content.iter_chunked(64 * 1024):
                        data.extend(block)
                        if len(data) > max_bytes:
                            raise AttachmentError(f"it is larger than {max_bytes // MiB} MB")
                    header = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                    mime = sniff_mime(bytes(data[:64])) or header
                    if not mime.startswith("image/"):
                        raise AttachmentError(f"the link is not an image ({mime or 'unknown type'})")
                    return mime, bytes(data)
            raise AttachmentError("the link redirects too many times")
    except AttachmentError:
        raise
    except TimeoutError:
        raise AttachmentError(f"it did not download within {timeout:.0f} s") from None
    except (aiohttp.ClientError, OSError) as exc:
        if isinstance(getattr(exc, "os_error", None), PrivateAddressError) or isinstance(exc, PrivateAddressError):
            raise AttachmentError("the link points to a private network address") from None
        raise AttachmentError(f"it could not be downloaded ({type(exc).__name__})") from None


async def read_host_file(file_id: str, user: dict[str, Any] | None) -> tuple[bytes, str, str]:
    """The bytes, MIME type and name of a file uploaded to Open WebUI, if this user may read it."""
    files_module = importlib.import_module("open_webui.models.files")
    storage_module = importlib.import_module("open_webui.storage.provider")
    record = await files_module.Files.get_file_by_id(file_id)
    user = user or {}
    if record is None:
        raise AttachmentError("it no longer exists")
    if record.user_id != user.get("id") and user.get("role") != "admin":
        raise AttachmentError("it belongs to another user")
    if not record.path:
        raise AttachmentError("it has no stored content")
    try:
        local = Path(await asyncio.to_thread(storage_module.Storage.get_file, record.path))
        size = await asyncio.to_thread(lambda: local.stat().st_size)
        if size > HOST_FILE_MAX_BYTES:
            raise AttachmentError(f"it is larger than {HOST_FILE_MAX_BYTES // MiB} MB")
        data = await asyncio.to_thread(local.read_bytes)
    except OSError as exc:  # gone from storage: the chat goes on without it (not a Gemini failure)
        raise AttachmentError(f"its stored content cannot be read ({type(exc).__name__})") from None
    meta = record.meta or {}
    mime = meta.get("content_type") or mimetypes.guess_type(record.filename)[0] or "application/octet-stream"
    return data, mime, record.filename


def attachment_kind(mime: str) -> Literal["pdf", "audio", "video", "text"] | None:
    mime = mime.lower()
    if mime == "application/pdf":
        return "pdf"
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("video/"):
        return "video"
    if mime.startswith("text/") or mime in ("application/json", "application/xml", "application/x-yaml"):
        return "text"
    return None


@dataclass
class FileAttachment:
    file_id: str
    name: str
    mime: str


def file_refs(files: Any) -> list[FileAttachment]:
    """The `__files__` entries Gemini reads natively: PDF, audio, video and text documents."""
    refs: list[FileAttachment] = []
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict) or entry.get("type", "file") != "file":
            continue
        inner = entry.get("file") if isinstance(entry.get("file"), dict) else {}
        meta = inner.get("meta") if isinstance(inner.get("meta"), dict) else {}
        file_id = entry.get("id") or inner.get("id")
        name = entry.get("name") or inner.get("filename") or meta.get("name") or "file"
        if not isinstance(file_id, str) or not file_id or not isinstance(name, str):
            continue
        mime = meta.get("content_type") or entry.get("content_type") or mimetypes.guess_type(name)[0] or ""
        if isinstance(mime, str) and attachment_kind(mime):
            refs.append(FileAttachment(file_id, name, mime))
    return refs


# --- messages -> contents --------------------------------------------------------------------

ImageFetcher = Callable[[str], Awaitable[tuple[str, bytes]]]
FileReader = Callable[[str, Any], Awaitable[tuple[bytes, str, str]]]

_REASONING_BLOCK = re.compile(
    r"<details\b[^>]*\btype=\"reasoning\"[^>]*>.*?</details>\s*|<think>.*?</think>\s*", re.DOTALL
)


@dataclass
class Blob:
    """An inline_data part, kept so a large one can be moved to the Files API."""

    part: dict[str, Any]
    name: str

    @property
    def size(self) -> int:
        return len(self.part["inline_data"]["data"])


@dataclass
class Converted:
    system: str | None = None
    contents: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for item in content:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict) and item.get("type") in ("text", "input_text", "output_text"):
                value = item.get("text")
                if isinstance(value, str):
                    texts.append(value)
        return "\n".join(texts)
    return "" if content is None else str(content)


def _blob_part(out: Converted, mime: str, data: bytes, name: str) -> dict[str, Any]:
    part = {"inline_data": {"mime_type": mime, "data": data}}
    out.blobs.append(Blob(part, name))
    return part


async def _image_part(out: Converted, url: Any, fetch: ImageFetcher, index: int) -> dict[str, Any]:
    label = f"image {index}"
    try:
        if not isinstance(url, str) or not url:
            raise AttachmentError("it has no URL")
        if url.startswith("data:"):
            mime, data = parse_data_uri(url)
        elif url.startswith(("http://", "https://")):
            mime, data = await fetch(url)
        else:
            raise AttachmentError("only data: URIs and http(s) links are supported")
        mime, data = to_gemini_image(mime, data)
    except AttachmentError as exc:
        out.warnings.append(f"{label} was left out: {exc}")
        return {"text": f"[{label} could not be read: {exc}]"}
    return _blob_part(out, mime, data, label)


async def _user_parts(out: Converted, content: Any, fetch: ImageFetcher) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        return [{"text": str(content)}] if content not in (None, "") else []
    parts: list[dict[str, Any]] = []
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind in ("text", "input_text"):
            value = item.get("text")
            if isinstance(value, str) and value:
                parts.append({"text": value})
        elif kind in ("image_url", "input_image"):
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(await _image_part(out, url, fetch, len(out.blobs) + 1))
        elif kind == "input_audio":
            audio = item.get("input_audio") if isinstance(item.get("input_audio"), dict) else {}
            fmt = str(audio.get("format") or "wav").lower()
            try:
                _, data = parse_data_uri(f"data:audio/{fmt};base64,{audio.get('data') or ''}")
                parts.append(_blob_part(out, f"audio/{fmt}", data, "audio"))
            except AttachmentError as exc:
                out.warnings.append(f"an audio clip was left out: {exc}")
        elif kind == "file":
            spec = item.get("file") if isinstance(item.get("file"), dict) else {}
            name = str(spec.get("filename") or "file")
            try:
                mime, data = parse_data_uri(str(spec.get("file_data") or ""))
                parts.append(_blob_part(out, mime, data, name))
            except AttachmentError as exc:
                out.warnings.append(f"{name} was left out: {exc}")
        else:
            _LOG.debug("skipping a message part of type %r", kind)
    return parts


def _tool_call_parts(tool_calls: Any, names: dict[str, str], calls: dict[str, tuple[str, str | None]]) -> list:
    by_original = {original: gname for gname, original in names.items()}
    parts: list[dict[str, Any]] = []
    for call in tool_calls if isinstance(tool_calls, list) else []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        original = function.get("name")
        if not isinstance(original, str) or not original:
            continue
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            try:
                args = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                args = {"arguments": arguments}
        else:
            args = arguments if isinstance(arguments, dict) else {}
        if not isinstance(args, dict):
            args = {"value": args}
        gemini_id, signature = decode_call_id(call.get("id"))
        name = by_original.get(original) or gemini_tool_name(original)
        fc: dict[str, Any] = {"name": name, "args": args}
        if gemini_id:
            fc["id"] = gemini_id
        part: dict[str, Any] = {"function_call": fc}
        if signature:
            part["thought_signature"] = signature
        parts.append(part)
        if isinstance(call.get("id"), str):
            calls[call["id"]] = (name, gemini_id)
    return parts


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def add_missing_signatures(contents: list[dict[str, Any]]) -> None:
    """Gemini 3 rejects a current-turn function call without a thought signature. Where the real
    one is gone (calls made by another model or client), send Google's documented skip value; older
    turns are not validated, so marking every unsigned model turn is safe and needs no turn logic."""
    for content in contents:
        if content["role"] != "model":
            continue
        calls = [p for p in content["parts"] if "function_call" in p]
        if calls and not any(p.get("thought_signature") for p in calls):
            calls[0]["thought_signature"] = base64.urlsafe_b64decode(SKIP_SIGNATURE)


async def convert_messages(
    messages: Any,
    *,
    names: dict[str, str],
    fetch: ImageFetcher,
    needs_signatures: bool,
) -> Converted:
    """OpenAI chat messages -> Gemini system instruction and contents (user/model turns)."""
    if not isinstance(messages, list):
        raise GeminiError("The request has no messages list.")
    out = Converted()
    system: list[str] = []
    calls: dict[str, tuple[str, str | None]] = {}
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = text_of(content).strip()
            if text:
                system.append(text)
        elif role == "user":
            _append(out.contents, "user", await _user_parts(out, content, fetch))
        elif role == "assistant":
            text = _REASONING_BLOCK.sub("", text_of(content))
            parts: list[dict[str, Any]] = [{"text": text}] if text.strip() else []
            parts.extend(_tool_call_parts(message.get("tool_calls"), names, calls))
            _append(out.contents, "model", parts)
        elif role == "tool":
            result = text_of(content)
            call = calls.get(message.get("tool_call_id")) if isinstance(message.get("tool_call_id"), str) else None
            if call is None:
                # A result whose call is not in the history: give the model the text at least.
                _append(out.contents, "user", [{"text": f"Tool result: {result}"}] if result else [])
                continue
            response: dict[str, Any] = {"name": call[0], "response": {"output": result}}
            if call[1]:
                response["id"] = call[1]
            _append(out.contents, "user", [{"function_response": response}])
        else:
            _LOG.debug("skipping a message with role %r", role)
    if not any(c["role"] == "user" for c in out.contents):
        raise GeminiError("The request has no user message for Gemini to answer.")
    if needs_signatures:
        add_missing_signatures(out.contents)
    out.system = "\n\n".join(system) or None
    return out


async def attach_files(out: Converted, refs: list[FileAttachment], read: FileReader, user: Any) -> None:
    """Put the chat's attached documents in front of the last user message."""
    parts: list[dict[str, Any]] = []
    for ref in refs:
        try:
            data, mime, name = await read(ref.file_id, user)
        except AttachmentError as exc:
            out.warnings.append(f"{ref.name} was left out: {exc}")
            continue
        mime = ref.mime if attachment_kind(ref.mime) else mime
        kind = attachment_kind(mime)
        if kind is None:
            continue
        if kind == "text":
            mime = "text/plain"  # Gemini reads any text as text/plain; code/markdown types it may not know
        parts.append(_blob_part(out, mime, data, name or ref.name))
    if not parts:
        return
    for content in reversed(out.contents):
        if content["role"] == "user":
            content["parts"][:0] = parts
            return


def upload_plan(blobs: list[Blob], budget: int | None = None) -> list[Blob]:
    """The largest inline blobs to move to the Files API until the rest fits in one request."""
    budget = INLINE_BUDGET if budget is None else budget
    total = sum(b.size for b in blobs)
    chosen: list[Blob] = []
    for blob in sorted(blobs, key=lambda b: b.size, reverse=True):
        if total <= budget:
            break
        chosen.append(blob)
        total -= blob.size
    return chosen


# --- response processing (shared by stream and non-stream) -----------------------------------


@dataclass
class Reply:
    """Everything one answer produced; fed chunk by chunk (stream) or once (non-stream)."""

    text: list[str] = field(default_factory=list)
    thoughts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str | None = None
    finish_note: str | None = None
    blocked: str | None = None
    usage: Any = None
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _safety_note(candidate: Any) -> str:
    hits = []
    for rating in getattr(candidate, "safety_ratings", None) or []:
        probability = _enum_name(getattr(rating, "probability", ""))
        if getattr(rating, "blocked", False) or probability in ("HIGH", "MEDIUM"):
            hits.append(_enum_name(getattr(rating, "category", "")).removeprefix("HARM_CATEGORY_").lower())
    return f" ({', '.join(hits)})" if hits else ""


def _grounding(metadata: Any, reply: Reply) -> None:
    if metadata is None:
        return
    for query in getattr(metadata, "web_search_queries", None) or []:
        if query not in reply.queries:
            reply.queries.append(query)
    chunks = getattr(metadata, "grounding_chunks", None) or []
    keys: list[str | None] = []
    for grounding_chunk in chunks:
        web = getattr(grounding_chunk, "web", None)
        uri = getattr(web, "uri", None) if web is not None else None
        keys.append(uri)
        if uri and uri not in reply.sources:
            title = getattr(web, "title", None) or getattr(web, "domain", None) or uri
            reply.sources[uri] = {"title": title, "snippets": []}
    for support in getattr(metadata, "grounding_supports", None) or []:
        text = getattr(getattr(support, "segment", None), "text", None)
        for index in getattr(support, "grounding_chunk_indices", None) or []:
            if text and 0 <= index < len(keys) and keys[index]:
                snippets = reply.sources[keys[index]]["snippets"]
                if text not in snippets:
                    snippets.append(text)


Delta = tuple[Literal["text", "thought", "tool_call"], Any]


def read_response(response: Any, reply: Reply, *, include_thoughts: bool, names: dict[str, str]) -> list[Delta]:
    """One GenerateContentResponse (a stream chunk or the whole answer) -> new deltas."""
    deltas: list[Delta] = []
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and getattr(feedback, "block_reason", None):
        reason = _enum_name(feedback.block_reason)
        detail = getattr(feedback, "block_reason_message", None) or "the prompt was refused before any reply"
        reply.blocked = f"Gemini blocked the prompt ({reason}): {detail}."
        reply.finish = "content_filter"
    if getattr(response, "usage_metadata", None) is not None:
        reply.usage = response.usage_metadata
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        return deltas
    candidate = candidates[0]
    content = getattr(candidate, "content", None)
    for part in (getattr(content, "parts", None) or []) if content is not None else []:
        call = getattr(part, "function_call", None)
        if call is not None and getattr(call, "name", None):
            name = names.get(call.name, call.name)
            arguments = json.dumps(call.args or {}, ensure_ascii=False)
            tool_call = {
                "index": len(reply.tool_calls),
                "id": encode_call_id(getattr(call, "id", None), getattr(part, "thought_signature", None)),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            reply.tool_calls.append(tool_call)
            deltas.append(("tool_call", tool_call))
            continue
        text = getattr(part, "text", None)
        if not text:
            continue
        if getattr(part, "thought", None):
            if include_thoughts:
                reply.thoughts.append(text)
                deltas.append(("thought", text))
        else:
            reply.text.append(text)
            deltas.append(("text", text))
    _grounding(getattr(candidate, "grounding_metadata", None), reply)
    reason = _enum_name(getattr(candidate, "finish_reason", None))
    if reason and reason != "FINISH_REASON_UNSPECIFIED":
        reply.finish = OPENAI_FINISH.get(reason, "stop")
        if reason != "STOP":
            note = FINISH_NOTES.get(reason, "Gemini stopped early")
            if reason == "SAFETY":
                note += _safety_note(candidate)
            reply.finish_note = f"Gemini stopped ({reason}): {note}."
    return deltas


def closing_text(reply: Reply) -> str:
    """The readable notice a reply ends with when Gemini did not simply finish."""
    if reply.blocked:
        return f"⚠️ {reply.blocked}"
    if reply.finish_note:
        return f"\n\n⚠️ {reply.finish_note}" if reply.text else f"⚠️ {reply.finish_note}"
    if not reply.text and not reply.tool_calls:
        return "⚠️ Gemini returned an empty reply."
    return ""


def finish_reason(reply: Reply) -> str:
    if reply.tool_calls and reply.finish in (None, "stop"):
        return "tool_calls"
    return reply.finish or "stop"


def openai_usage(meta: Any) -> dict[str, Any] | None:
    if meta is None:
        return None
    prompt = getattr(meta, "prompt_token_count", None) or 0
    answer = getattr(meta, "candidates_token_count", None) or 0
    thoughts = getattr(meta, "thoughts_token_count", None) or 0
    tools = getattr(meta, "tool_use_prompt_token_count", None) or 0
    usage: dict[str, Any] = {
        "prompt_tokens": prompt + tools,
        "completion_tokens": answer + thoughts,
        "total_tokens": getattr(meta, "total_token_count", None) or prompt + tools + answer + thoughts,
    }
    if thoughts:
        usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    cached = getattr(meta, "cached_content_token_count", None)
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def completion(model: str, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(reply.text) + closing_text(reply)}
    if reply.thoughts:
        message["reasoning_content"] = "".join(reply.thoughts)
    if reply.tool_calls:
        message["tool_calls"] = [{k: v for k, v in call.items() if k != "index"} for call in reply.tool_calls]
    result: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(reply)}],
    }
    usage = openai_usage(reply.usage)
    if usage:
        result["usage"] = usage
    return result


async def emit_sources(emitter: Emitter, reply: Reply) -> None:
    """What Google Search did, as Open WebUI shows its own web search: the queries (as chips),
    then the sources as citations under the reply, and a status listing them."""
    if reply.queries:
        await emitter.status("Searched Google", done=True, action="web_search_queries_generated", queries=reply.queries)
    if not reply.sources:
        return
    for uri, source in reply.sources.items():
        documents = source["snippets"] or [source["title"]]
        await emitter.emit(citation(documents, name=source["title"], url=uri))
    await emitter.status("Searched {{count}} sites", done=True, action="web_search", urls=list(reply.sources))


# --- errors and retries ----------------------------------------------------------------------


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of a google-genai APIError (duck-typed: the SDK is imported lazily)."""
    code = getattr(exc, "code", None)
    if type(exc).__module__.startswith("google.genai") and isinstance(code, int):
        return code
    return None


def server_retry_delay(exc: BaseException) -> float | None:
    details = getattr(exc, "details", None)
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error or {}).get("details") or [] if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def describe_error(exc: BaseException, *, retries: int = 0, timeout: float | None = None) -> str:
    """One line a user can act on. Google's own messages can span lines (quota errors list their
    limits as bullets); the whitespace is collapsed so a notice stays on its line."""
    return " ".join(_error_text(exc, retries=retries, timeout=timeout).split())


def _error_text(exc: BaseException, *, retries: int, timeout: float | None) -> str:
    status = api_status(exc)
    if status is not None:
        name = getattr(exc, "status", None) or ""
        message = str(getattr(exc, "message", None) or "").strip()
        head = f"{status} {name}".strip() + (f": {message}" if message else "")
        after = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
        if status == 400 and ("API key" in message or "API_KEY" in str(getattr(exc, "details", ""))):
            return f"Gemini rejected the API key ({head}). Check GOOGLE_API_KEY."
        if status in (401, 403):
            return f"Gemini refused access ({head}). Check that the API key is valid and may use this model."
        if status == 404:
            return f"Gemini does not know this model ({head}). Pick another model or refresh the model list."
        if status == 429:
            return f"Gemini's rate limit or quota was reached{after} ({head}). Wait a little and try again."
        if status >= 500:
            return f"Gemini had a server error{after} ({head}). Try again shortly."
        return f"Gemini rejected the request ({head})."
    if isinstance(exc, GeminiError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        limit = f" within REQUEST_TIMEOUT ({timeout:g} s)" if timeout else " in time"
        return f"Gemini did not answer{limit}."
    name = type(exc).__name__
    if isinstance(exc, OSError) or type(exc).__module__.startswith("aiohttp"):
        return f"The connection to Gemini failed ({name}). Check GOOGLE_API_BASE_URL and the network."
    return f"Gemini request failed ({name}: {exc})."


async def with_retries(
    operation: Callable[[], Awaitable[Any]],
    *,
    max_retries: int,
    emitter: Emitter,
    timeout: float | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Any:
    """Run `operation`, retrying 429/500/503 with backoff (or the server's RetryInfo delay).

    A "retrying" status is always closed (done) before this returns or raises: a status left
    at done=False keeps shimmering next to the error in Open WebUI."""
    attempt = 0
    try:
        while True:
            try:
                result = await operation()
            except Exception as exc:
                status = api_status(exc)
                if status not in RETRYABLE_STATUS or attempt >= max_retries:
                    raise GeminiError(describe_error(exc, retries=attempt, timeout=timeout)) from None
                delay = server_retry_delay(exc)
                if delay is None:
                    delay = min(2.0**attempt, 30.0) * (1.0 + random.random() / 4)
                elif delay > MAX_SERVER_RETRY_DELAY:
                    raise GeminiError(
                        describe_error(exc, retries=attempt) + f" Gemini asks to wait {delay:.0f} s before retrying."
                    ) from None
                answer = f"{status} {getattr(exc, 'status', None) or ''}".strip()
                await emitter.status(
                    f"Gemini answered {answer}; retrying in {delay:.1f} s ({attempt + 1} of {max_retries})"
                )
                attempt += 1
                await sleep(delay)
                continue
            if attempt:
                await emitter.status("Gemini answered", done=True, hidden=True)
            return result
    except Exception:
        if attempt:
            tries = f"{attempt} {'retry' if attempt == 1 else 'retries'}"
            await emitter.status(f"Gemini request failed after {tries}", done=True)
        raise
    except BaseException:  # a chat stopped while waiting must not keep a spinning status either
        if attempt:
            await emitter.status("Gemini request stopped", done=True)
        raise


# --- the pipe --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    key: str
    admin_key: str
    base_url: str | None
    include_thoughts: bool
    grounding: bool
    timeout: int
    max_retries: int
    safety: bool
    budget: int
    level: str

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.key, self.admin_key)


@dataclass
class ModelInfo:
    id: str
    name: str
    thinking: bool | None


@dataclass
class Listing:
    at: float
    models: list[ModelInfo] | None
    error: str | None = None


def normalise_base_url(value: str) -> str | None:
    value = value.strip().rstrip("/")
    if not value:
        return None
    if urlsplit(value).scheme not in ("http", "https"):
        raise GeminiError("GOOGLE_API_BASE_URL must start with http:// or https://.")
    return value


_genai_modules: dict[str, Any] = {}


async def load_genai() -> tuple[Any, Any]:
    """google.genai and its types, imported on first use in a thread (the import takes ~0.7 s)."""
    if "genai" not in _genai_modules:
        genai = await asyncio.to_thread(importlib.import_module, "google.genai")
        _genai_modules["types"] = importlib.import_module("google.genai.types")
        _genai_modules["genai"] = genai
    return _genai_modules["genai"], _genai_modules["types"]


def tool_specs(body: dict, tools: Any, metadata: Any) -> Any:
    """The tools offered to the chat: `body['tools']` (native function calling; an explicit empty
    list opts out), else `__tools__`, unless the chat uses legacy prompt-based tool calling."""
    if "tools" in body:
        return body["tools"]
    params = metadata.get("params") if isinstance(metadata, dict) else None
    if isinstance(params, dict) and params.get("function_calling") == "legacy":
        return None  # Open WebUI ran the tools itself before calling the pipe
    if not isinstance(tools, dict):
        return None
    return [{"type": "function", "function": t.get("spec")} for t in tools.values() if isinstance(t, dict)]


def request_config(
    body: dict,
    *,
    model_id: str,
    thinking: bool | None,
    settings: Settings,
    converted: Converted,
    declarations: list[dict[str, Any]],
    task: bool,
) -> dict[str, Any]:
    """The GenerateContentConfig (as a dict) for one call."""
    config: dict[str, Any] = sampling_config(body)
    effort = reasoning_effort(body)
    if converted.system:
        config["system_instruction"] = converted.system
    if settings.safety:
        config["safety_settings"] = [{"category": c, "threshold": "BLOCK_NONE"} for c in SAFETY_CATEGORIES]
    thinking_cfg = thinking_config(
        model_id,
        thinking,
        include_thoughts=settings.include_thoughts,
        budget=settings.budget,
        level=settings.level,
        effort=effort,
        task=task,
    )
    if thinking_cfg:
        config["thinking_config"] = thinking_cfg
    tools: list[dict[str, Any]] = []
    if settings.grounding and not task:
        # Search and function calling do not mix in one plain generateContent request, so search
        # wins, except while a tool loop is answering (its results need the declarations).
        current = converted.contents[-1]["parts"] if converted.contents else []
        if not any("function_response" in p for p in current):
            tools.append({"google_search": {}})
            declarations = []
    if declarations and not task:
        tools.append({"function_declarations": declarations})
    if tools:
        config["tools"] = tools
    # Tools run in Open WebUI, never inside the SDK.
    config["automatic_function_calling"] = {"disable": True}
    return config


class Pipe:
    class Valves(BaseModel):
        GOOGLE_API_KEY: str = Field(
            default="",
            max_length=512,
            description="Gemini API key from Google AI Studio. Sent only in the x-goog-api-key header. "
            "Stored in clear text unless Open WebUI runs with ENABLE_VALVE_ENCRYPTION=true.",
            json_schema_extra={"input": {"type": "password"}},
        )
        GOOGLE_API_BASE_URL: str = Field(
            default="",
            max_length=2048,
            description="Empty = Google's endpoint. Set a URL for a gateway or proxy (the API version "
            "v1beta is added to it).",
        )
        MODEL_ALLOWLIST: str = Field(
            default="gemini-*",
            max_length=4096,
            description="Comma-separated glob patterns of model ids to list (empty = all). Exact ids are "
            "listed even without an admin key, for users who bring their own.",
        )
        MODEL_DENYLIST: str = Field(
            default=DEFAULT_DENYLIST,
            max_length=4096,
            description="Comma-separated glob patterns of model ids to hide (speech, image, live and "
            "embedding models by default: this pipe returns text).",
        )
        MODEL_CACHE_TTL: int = Field(
            default=600, ge=0, le=86_400, description="Seconds the model list is kept before it is fetched again."
        )
        USE_PERMISSIVE_SAFETY: bool = Field(
            default=False, description="Ask Gemini not to block on its four harm categories (BLOCK_NONE)."
        )
        INCLUDE_THOUGHTS: bool = Field(
            default=True, description="Show Gemini's thought summaries in Open WebUI's reasoning block."
        )
        THINKING_BUDGET: int = Field(
            default=-1,
            ge=-1,
            le=32_768,
            description="Thinking tokens for Gemini 2.5 models and version-less aliases such as "
            "gemini-flash-latest: -1 = the model decides, 0 = off (Flash), up to 32768. A chat's "
            "reasoning_effort overrides it.",
        )
        THINKING_LEVEL: Literal["default", "minimal", "low", "medium", "high"] = Field(
            default="default",
            description="Thinking level for Gemini 3 models (Pro models use low or high); aliases such "
            "as gemini-flash-latest get it as a token budget when THINKING_BUDGET is -1. A chat's "
            "reasoning_effort overrides it.",
        )
        GOOGLE_SEARCH_GROUNDING: bool = Field(
            default=False,
            description="Let Gemini search Google and cite its sources. Gemini then gets no other tools "
            "in that request (the API does not mix them), except to answer tool results.",
        )
        REQUEST_TIMEOUT: int = Field(
            default=300, ge=5, le=3600, description="Seconds one Gemini call may take, streaming included."
        )
        MAX_RETRIES: int = Field(default=2, ge=0, le=10, description="Retries after 429/500/503 answers, with backoff.")

    class UserValves(BaseModel):
        GOOGLE_API_KEY: str = Field(
            default="",
            max_length=512,
            description="Your own Gemini API key; used instead of the admin's for your chats.",
            json_schema_extra={"input": {"type": "password"}},
        )
        INCLUDE_THOUGHTS: bool | None = Field(
            default=None, description="Show thought summaries (Default = the admin's setting)."
        )
        GOOGLE_SEARCH_GROUNDING: bool | None = Field(
            default=None, description="Ground answers with Google Search (Default = the admin's setting)."
        )

    def __init__(self) -> None:
        self.valves = self.Valves()
        # Caches shared by all users, keyed by a salted hash of the key (never the key itself):
        # the admin key's model list (what everyone sees anyway), SDK clients, Files API uploads.
        self._salt = os.urandom(16)
        self._listings: dict[str, Listing] = {}
        self._clients: dict[tuple[str, str | None, int], Any] = {}
        self._uploads: dict[tuple[str, str], tuple[float, str, str]] = {}

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
        thoughts = getattr(user_valves, "INCLUDE_THOUGHTS", None)
        grounding = getattr(user_valves, "GOOGLE_SEARCH_GROUNDING", None)
        admin_key = valves.GOOGLE_API_KEY.strip()
        return Settings(
            key=own_key.strip() or admin_key,
            admin_key=admin_key,
            base_url=normalise_base_url(valves.GOOGLE_API_BASE_URL),
            include_thoughts=valves.INCLUDE_THOUGHTS if thoughts is None else bool(thoughts),
            grounding=valves.GOOGLE_SEARCH_GROUNDING if grounding is None else bool(grounding),
            timeout=valves.REQUEST_TIMEOUT,
            max_retries=valves.MAX_RETRIES,
            safety=valves.USE_PERMISSIVE_SAFETY,
            budget=valves.THINKING_BUDGET,
            level=valves.THINKING_LEVEL,
        )

    async def _client(self, key: str, base_url: str | None, timeout_ms: int) -> Any:
        cache_key = (self._digest(key), base_url, timeout_ms)
        client = self._clients.get(cache_key)
        if client is not None:
            return client
        genai, types = await load_genai()
        options = types.HttpOptions(
            base_url=base_url,
            api_version=API_VERSION,
            timeout=timeout_ms,
            # One attempt per SDK call: this pipe retries itself, with a status the user can see.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        # Building a client loads SSL contexts (tens of ms): keep it off the event loop, once per key.
        client = await asyncio.to_thread(lambda: genai.Client(api_key=key, vertexai=False, http_options=options))
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
            return [{"id": "setup", "name": "Gemini: set GOOGLE_API_KEY in this function's Valves"}]
        try:
            base_url = normalise_base_url(valves.GOOGLE_API_BASE_URL)
        except GeminiError as exc:
            return [{"id": "error", "name": f"Gemini: {exc}"}]
        listing = await self._listing(key, base_url)
        if listing.models is None:
            return [{"id": "error", "name": f"Gemini: model list failed. {listing.error}"}]
        entries = [{"id": m.id, "name": m.name} for m in listing.models if model_allowed(m.id, allow, deny)]
        return entries or [{"id": "none", "name": "Gemini: no model matches MODEL_ALLOWLIST / MODEL_DENYLIST"}]

    async def _listing(self, key: str, base_url: str | None) -> Listing:
        digest = self._digest(key, base_url)
        listing = self._listings.get(digest)
        now = time.monotonic()
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
            return await self._pipe(body, settings, emitter, __task__, __files__, __tools__, __metadata__, __user__)
        except Exception as exc:
            message = redact(describe_error(exc, timeout=self.valves.REQUEST_TIMEOUT), secrets, ERROR_LIMIT)
            _LOG.warning("Gemini request failed: %s", message)
            raise GeminiError(message) from None

    async def _pipe(
        self,
        body: Any,
        settings: Settings,
        emitter: Emitter,
        task: str | None,
        files: Any,
        tools: Any,
        metadata: Any,
        user: Any,
    ) -> str | dict | AsyncIterator[dict]:
        if not isinstance(body, dict):
            raise GeminiError("The request body must be a JSON object.")
        model = body.get("model")
        model_id = sub_model_id(model) if isinstance(model, str) else ""
        if not model_id or model_id in PLACEHOLDER_IDS:
            raise GeminiError(
                "This entry is not a model: the Gemini model list could not be loaded. Check the Gemini "
                "Manifold valves (GOOGLE_API_KEY, GOOGLE_API_BASE_URL, MODEL_ALLOWLIST)."
            )
        if not MODEL_ID.fullmatch(model_id) or ".." in model_id:
            # The SDK puts the id in the URL path and refuses "?", "&" and ".." with a bare ValueError.
            raise GeminiError(f"{redact(model_id, (), 80)!r} is not a Gemini model id. Pick a model from the list.")
        if not settings.key:
            raise GeminiError(NO_KEY_MESSAGE)
        thinking = self._model_thinking(model_id)
        specs = None if task else tool_specs(body, tools, metadata)
        declarations, names = function_declarations(specs)
        converted = await convert_messages(
            body.get("messages"),
            names=names,
            fetch=fetch_image,
            needs_signatures=thinking_family(model_id, thinking) in ("level", "alias"),
        )
        if not task:
            await attach_files(converted, file_refs(files), read_host_file, user)
        config = request_config(
            body, model_id=model_id, thinking=thinking, settings=settings, converted=converted,
            declarations=declarations, task=bool(task),
        )  # fmt: skip

        if converted.warnings and not task:
            await emitter.notify("Gemini: " + "; ".join(converted.warnings) + ".", "warning")

        client = await self._client(settings.key, settings.base_url, settings.timeout * 1000)
        await self._upload(client, settings, converted, emitter)
        contents = converted.contents
        model_name = str(model)

        def generate() -> Awaitable[Any]:
            return client.aio.models.generate_content(model=model_id, contents=contents, config=config)

        if task:
            response = await with_retries(
                generate, max_retries=settings.max_retries, emitter=emitter, timeout=settings.timeout
            )
            reply = Reply()
            read_response(response, reply, include_thoughts=False, names=names)
            return "".join(reply.text).strip()

        include = settings.include_thoughts
        if not body.get("stream"):
            response = await with_retries(
                generate, max_retries=settings.max_retries, emitter=emitter, timeout=settings.timeout
            )
            reply = Reply()
            read_response(response, reply, include_thoughts=include, names=names)
            await emit_sources(emitter, reply)
            return completion(model_name, reply)

        async def open_stream() -> tuple[Any, Any]:
            stream = await client.aio.models.generate_content_stream(model=model_id, contents=contents, config=config)
            try:
                return stream, await anext(stream)
            except StopAsyncIteration:
                return stream, None
            except BaseException:
                await _close(stream)
                raise

        stream, first = await with_retries(
            open_stream, max_retries=settings.max_retries, emitter=emitter, timeout=settings.timeout
        )
        return stream_reply(
            stream, first, model=model_name, include_thoughts=include, names=names, emitter=emitter,
            secrets=settings.secrets, timeout=settings.timeout,
        )  # fmt: skip

    async def _upload(self, client: Any, settings: Settings, converted: Converted, emitter: Emitter) -> None:
        """Move attachments that do not fit inline to the Files API (cached per key and content)."""
        for blob in upload_plan(converted.blobs):
            inline = blob.part["inline_data"]
            data, mime = inline["data"], inline["mime_type"]
            cache_key = (self._digest(settings.key, settings.base_url), hashlib.sha256(data).hexdigest())
            cached = self._uploads.get(cache_key)
            if cached is None or cached[0] < time.monotonic():
                await emitter.status(f"Uploading {blob.name} ({len(data) / MiB:.1f} MB) to Gemini")
                try:
                    uri, mime = await upload_file(client, data, mime, blob.name, timeout=settings.timeout)
                except BaseException:  # close the status: done=False would shimmer next to the error
                    await emitter.status(f"Uploading {blob.name} failed", done=True)
                    raise
                if len(self._uploads) > 256:
                    self._uploads.clear()
                self._uploads[cache_key] = (time.monotonic() + UPLOAD_CACHE_TTL, uri, mime)
                await emitter.status(f"Uploaded {blob.name}", done=True)
            else:
                _, uri, mime = cached
            blob.part.pop("inline_data")
            blob.part["file_data"] = {"file_uri": uri, "mime_type": mime}


async def list_models(client: Any) -> list[ModelInfo]:
    """Every model of this key that answers generateContent (all pages)."""
    models: list[ModelInfo] = []
    pager = await client.aio.models.list(config={"page_size": 1000})
    async for model in pager:
        if "generateContent" not in (getattr(model, "supported_actions", None) or []):
            continue
        model_id = str(model.name or "").removeprefix("models/")
        if model_id:
            models.append(ModelInfo(model_id, model.display_name or model_id, getattr(model, "thinking", None)))
    return models


async def upload_file(client: Any, data: bytes, mime: str, name: str, *, timeout: float) -> tuple[str, str]:
    """Upload through the Files API and wait until Gemini has processed the file."""
    file = await client.aio.files.upload(file=io.BytesIO(data), config={"mime_type": mime, "display_name": name})
    deadline = time.monotonic() + timeout
    delay = 0.5
    while _enum_name(getattr(file, "state", None)) == "PROCESSING":
        if time.monotonic() > deadline:
            raise GeminiError(f"Gemini was still processing {name} after {timeout:g} s.")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
        file = await client.aio.files.get(name=file.name)
    if _enum_name(getattr(file, "state", None)) == "FAILED":
        raise GeminiError(f"Gemini could not process {name}.")
    return file.uri, file.mime_type or mime


async def _close(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream must not hide the real outcome
            _LOG.debug("closing the Gemini stream failed", exc_info=True)


async def stream_reply(
    stream: Any,
    first: Any,
    *,
    model: str,
    include_thoughts: bool,
    names: dict[str, str],
    emitter: Emitter,
    secrets: tuple[str, ...],
    timeout: float,
) -> AsyncIterator[dict[str, Any]]:
    """OpenAI chunks from a Gemini stream. A failure after text was sent keeps that text and ends
    with a one-line notice plus an error toast: an exception would make Open WebUI drop it all."""
    reply = Reply()
    failure: str | None = None
    try:
        response = first
        while response is not None:
            for kind, value in read_response(response, reply, include_thoughts=include_thoughts, names=names):
                if kind == "text":
                    yield chunk(model, {"content": value})
                elif kind == "thought":
                    yield chunk(model, {"reasoning_content": value})
                else:
                    yield chunk(model, {"tool_calls": [value]})
            response = await anext(stream, None)
    except Exception as exc:
        failure = redact(describe_error(exc, timeout=timeout), secrets, NOTICE_LIMIT)
        _LOG.warning("Gemini stream cut off: %s", failure)
    finally:
        await _close(stream)
    if failure is not None:
        yield chunk(model, {"content": f"\n\n⚠️ The reply was cut off: {failure}"})
        await emitter.notify(f"Gemini stopped mid-reply: {failure}", "error")
    else:
        tail = closing_text(reply)
        if tail:
            yield chunk(model, {"content": tail})
    last = chunk(model, {}, finish_reason(reply) if failure is None else "stop")
    usage = openai_usage(reply.usage)
    if usage:
        last["usage"] = usage
    yield last
    await emit_sources(emitter, reply)
