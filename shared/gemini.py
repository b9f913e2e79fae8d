"""The Gemini API, host-independent: one request from an OpenAI chat body, errors, retries, SDK calls.

`build_request` is one pure step: an OpenAI chat body (plus the images and files already fetched)
becomes a complete `GeminiRequest` (model, contents, GenerateContentConfig as a dict, and which
attachments must go through the Files API). The SDK (google-genai) is imported on first use, in a
thread, so a plugin file loads with pydantic and the standard library alone.
"""

import asyncio
import base64
import binascii
import hashlib
import importlib
import io
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from shared.attachments import (
    AttachmentError,
    Blob,
    FileAttachment,
    MiB,
    attachment_kind,
    convert_image,
    parse_data_uri,
    upload_plan,
)
from shared.events import Emitter
from shared.gemini_media import MediaOptions, MediaPlan, add_generated_images, apply_media, plan_media
from shared.gemini_models import (
    EFFORTS,
    MODEL_ID,
    PLACEHOLDER_IDS,
    SIGNED_FORMS,
    combines_search_and_functions,
    model_capabilities,
    sub_model_id,
    thinking_config,
    thinking_family,
)
from shared.retry import Backoff, RetryPlan, retryable_status, with_retries
from shared.secrets import redact
from shared.text import content_text, strip_reasoning

_GEMINI_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

API_VERSION = "v1beta"
# Gemini refuses requests over 20 MB; base64 makes inline bytes 4/3 bigger, so attachments above
# this raw total go through the Files API instead.
INLINE_BUDGET = 14 * MiB
MAX_SERVER_RETRY_DELAY = 60.0  # a longer requested wait fails at once with a clear message
SKIP_SIGNATURE = "skip_thought_signature_validator"  # Google's documented "no signature" value
CALL_ID_MARK = "~g"
GEMINI_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)

Result = TypeVar("Result")


class GeminiError(RuntimeError):
    """A failure with a sentence a user can act on (`str(error)`) and the detail an administrator
    needs (`detail`: the valve, Google's answer, the exception). It never carries the API key."""

    def __init__(self, message: str, detail: str = "", *, connection: bool = False) -> None:
        super().__init__(message)
        self.detail = detail
        self.connection = connection


# --- request fields ------------------------------------------------------------------------------


def requested_model(body: Any) -> str:
    """The Gemini model id a chat body asks for; GeminiError when it is not one."""
    if not isinstance(body, dict):
        raise GeminiError("The request body must be a JSON object.")
    model = body.get("model")
    model_id = sub_model_id(model) if isinstance(model, str) else ""
    if not model_id or model_id in PLACEHOLDER_IDS:
        raise GeminiError(
            "This entry is not a model: the Gemini model list could not be loaded. Pick another "
            "model, or ask your administrator to set up Gemini.",
            "check the Gemini Manifold valves GOOGLE_API_KEY, GOOGLE_API_BASE_URL and MODEL_ALLOWLIST; "
            "the server log has the model list error",
        )
    if not MODEL_ID.fullmatch(model_id) or ".." in model_id:
        # The SDK puts the id in the URL path and refuses "?", "&" and ".." with a bare ValueError.
        raise GeminiError(f"{redact(model_id, (), 80)!r} is not a Gemini model id. Pick a model from the list.")
    return model_id


def normalise_base_url(value: str) -> str | None:
    value = value.strip().rstrip("/")
    if not value:
        return None
    if urlsplit(value).scheme not in ("http", "https"):
        raise GeminiError(
            "Gemini is not set up correctly: its API address is not valid.",
            "GOOGLE_API_BASE_URL must start with http:// or https://",
        )
    return value


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


# --- tool names and call ids ---------------------------------------------------------------------


def gemini_tool_name(name: str) -> str:
    """A function name Gemini accepts (letters, digits, _ . : -; starts with a letter or _; <= 64)."""
    clean = re.sub(r"[^A-Za-z0-9_.:-]", "_", name)
    if not clean or not (clean[0].isalpha() or clean[0] == "_"):
        clean = "_" + clean
    if len(clean) > 64:
        clean = clean[:55] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return clean


def _function_calling(params: Any) -> Any:
    return params.get("function_calling") if isinstance(params, dict) else None


def native_tool_calling(body: dict, metadata: Any) -> bool:
    """Whether the chat runs Open WebUI's native tool loop (the pipe returns the model's tool calls).

    Open WebUI decides the mode and writes it to `__metadata__["params"]["function_calling"]` on every
    version: 0.6.43 and 0.8.12 write "native" only when the chat or the model asks for it, else
    "default" (prompt-based: Open WebUI asks the model which tools to run itself, calling the pipe
    with `__task__="function_calling"`, and adds their results to the chat); 0.10 and later write
    the chat's or model's choice, "native" by default, and call prompt-based "legacy"
    (open_webui/main.py, the chat completion metadata). Without that entry (a direct call from
    another plugin) the request's own `params` and the model's settings decide, and the default is
    prompt-based: no tool calls are returned to a caller that did not ask for them.
    """
    meta = metadata if isinstance(metadata, dict) else {}
    mode = _function_calling(meta.get("params"))
    if mode is None:
        model = meta.get("model")
        info = model.get("info") if isinstance(model, dict) else None
        modes = (
            _function_calling(body.get("params")),
            _function_calling(info.get("params") if isinstance(info, dict) else None),
        )
        mode = next((m for m in modes if m is not None), None)
    return mode == "native"


def tool_specs(body: dict, tools: Any, metadata: Any) -> Any:
    """The tools offered to the model: `body['tools']` when Open WebUI put them there (it does only
    for its native tool loop; an explicit empty list opts out), else `__tools__` when the chat uses
    native tool calling, else none (prompt-based: Open WebUI runs the tools itself)."""
    if "tools" in body:
        return body["tools"]
    if not isinstance(tools, dict) or not native_tool_calling(body, metadata):
        return None
    # `__tools__` holds the chat's workspace tools (0.6.43, 0.8.12: open_webui/functions.py, get_tools)
    # or every tool of the chat, Open WebUI's builtin ones included (0.10 and later: metadata "tools").
    return [{"type": "function", "function": t.get("spec")} for t in tools.values() if isinstance(t, dict)]


def builtin_tool_names(tools: Any) -> frozenset[str]:
    """The names of Open WebUI's own builtin tools among `__tools__` or `__metadata__["tools"]` (time,
    ask_user, memory...): Open WebUI 0.8 and later add them to every chat with native function calling
    (open_webui/utils/tools.py, get_builtin_tools, entries of type "builtin"), so they do not mean the
    user turned tools on."""
    if not isinstance(tools, dict):
        return frozenset()
    return frozenset(name for name, t in tools.items() if isinstance(t, dict) and t.get("type") == "builtin")


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


# --- messages -> contents ------------------------------------------------------------------------

ImageResult = tuple[str, bytes] | AttachmentError  # a downloaded image link, or why it is missing
FileResult = tuple[bytes, str, str] | AttachmentError  # an uploaded file's bytes, MIME type, name


@dataclass
class Converted:
    system: str | None = None
    contents: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blobs: list[Blob] = field(default_factory=list)
    images: int = 0  # image parts seen in the whole chat
    # Images are named as the user sees them: by their place in their own message ("image 2"),
    # and an earlier message's as such ("image 1 of an earlier message").
    message_images: int = 0
    earlier: bool = False


def _image_url(item: Any) -> Any:
    """The URL of an image part of a user message (None when the item is not one)."""
    if not isinstance(item, dict) or item.get("type") not in ("image_url", "input_image"):
        return None
    image = item.get("image_url")
    return image.get("url") if isinstance(image, dict) else image


def image_links(messages: Any) -> list[str]:
    """The http(s) image links of the user messages, each once, in order: fetched before the
    request is built, so that building it is pure."""
    links: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) and message.get("role") == "user" else None
        for item in content if isinstance(content, list) else []:
            url = _image_url(item)
            if isinstance(url, str) and url.startswith(("http://", "https://")) and url not in links:
                links.append(url)
    return links


def _blob_part(out: Converted, mime: str, data: bytes, name: str) -> dict[str, Any]:
    part = {"inline_data": {"mime_type": mime, "data": data}}
    out.blobs.append(Blob(part, name))
    return part


def _image_part(out: Converted, url: Any, images: Mapping[str, ImageResult]) -> dict[str, Any]:
    out.images += 1
    out.message_images += 1
    label = f"image {out.message_images}" + (" of an earlier message" if out.earlier else "")
    try:
        if not isinstance(url, str) or not url:
            raise AttachmentError("it has no URL")
        if url.startswith("data:"):
            mime, data = parse_data_uri(url)
        elif url.startswith(("http://", "https://")):
            fetched = images.get(url, AttachmentError("it was not downloaded"))
            if isinstance(fetched, AttachmentError):
                raise fetched
            mime, data = fetched
        else:
            raise AttachmentError("only data: URIs and http(s) links are supported")
        mime, data = convert_image(mime, data, GEMINI_IMAGE_TYPES, "Gemini")
    except AttachmentError as exc:
        out.warnings.append(f"{label} was left out: {exc}")
        return {"text": f"[{label} could not be read: {exc}]"}
    return _blob_part(out, mime, data, label)


def _data_part(out: Converted, uri: str, mime: str | None, name: str, what: str) -> dict[str, Any] | None:
    try:
        sniffed, data = parse_data_uri(uri)
    except AttachmentError as exc:
        out.warnings.append(f"{what} was left out: {exc}")
        return None
    return _blob_part(out, mime or sniffed, data, name)


def _user_part(out: Converted, item: Any, images: Mapping[str, ImageResult]) -> dict[str, Any] | None:
    kind = item.get("type") if isinstance(item, dict) else None
    if kind in ("text", "input_text"):
        value = item.get("text")
        return {"text": value} if isinstance(value, str) and value else None
    if kind in ("image_url", "input_image"):
        return _image_part(out, _image_url(item), images)
    if kind == "input_audio":
        audio = item.get("input_audio") if isinstance(item.get("input_audio"), dict) else {}
        fmt = str(audio.get("format") or "wav").lower()
        return _data_part(
            out, f"data:audio/{fmt};base64,{audio.get('data') or ''}", f"audio/{fmt}", "audio", "an audio clip"
        )
    if kind == "file":
        spec = item.get("file") if isinstance(item.get("file"), dict) else {}
        name = str(spec.get("filename") or "file")
        return _data_part(out, str(spec.get("file_data") or ""), None, name, name)
    _GEMINI_LOG.debug("skipping a message part of type %r", kind)
    return None


def _user_parts(out: Converted, content: Any, images: Mapping[str, ImageResult]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        return [{"text": str(content)}] if content not in (None, "") else []
    parts = [_user_part(out, item, images) for item in content]
    return [part for part in parts if part is not None]


def _call_args(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            args = {"arguments": arguments}
    else:
        args = arguments if isinstance(arguments, dict) else {}
    return args if isinstance(args, dict) else {"value": args}


def _tool_call_parts(
    tool_calls: Any,
    names: dict[str, str],
    calls: dict[str, tuple[str, str | None]],
    server_parts: Mapping[str, list[dict[str, Any]]],
) -> list:
    by_original = {original: gname for gname, original in names.items()}
    parts: list[dict[str, Any]] = []
    first = tool_calls[0] if isinstance(tool_calls, list) and tool_calls else None
    if isinstance(first, dict) and isinstance(first.get("id"), str):
        # The Google Search steps Gemini took before these calls go back with them.
        parts.extend(dict(part) for part in server_parts.get(first["id"], ()))
    for call in tool_calls if isinstance(tool_calls, list) else []:
        if not isinstance(call, dict):
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        original = function.get("name")
        if not isinstance(original, str) or not original:
            continue
        gemini_id, signature = decode_call_id(call.get("id"))
        name = by_original.get(original) or gemini_tool_name(original)
        fc: dict[str, Any] = {"name": name, "args": _call_args(function.get("arguments"))}
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


def _tool_result(out: Converted, message: dict, calls: dict[str, tuple[str, str | None]]) -> None:
    result = content_text(message.get("content"))
    call_id = message.get("tool_call_id")
    call = calls.get(call_id) if isinstance(call_id, str) else None
    if call is None:
        # A result whose call is not in the history: give the model the text at least.
        _append(out.contents, "user", [{"text": f"Tool result: {result}"}] if result else [])
        return
    response: dict[str, Any] = {"name": call[0], "response": {"output": result}}
    if call[1]:
        response["id"] = call[1]
    _append(out.contents, "user", [{"function_response": response}])


def convert_messages(
    messages: Any,
    *,
    names: dict[str, str],
    images: Mapping[str, ImageResult],
    needs_signatures: bool,
    server_parts: Mapping[str, list[dict[str, Any]]] | None = None,
) -> Converted:
    """OpenAI chat messages -> Gemini system instruction and contents (user/model turns)."""
    if not isinstance(messages, list):
        raise GeminiError("The request has no messages list.")
    out = Converted()
    system: list[str] = []
    calls: dict[str, tuple[str, str | None]] = {}
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=-1)
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = content_text(content).strip()
            if text:
                system.append(text)
        elif role == "user":
            out.message_images, out.earlier = 0, index != last_user
            _append(out.contents, "user", _user_parts(out, content, images))
        elif role == "assistant":
            # Thinking shown in Open WebUI (this model's or another's) is not sent back as text.
            text = strip_reasoning(content_text(content))
            parts: list[dict[str, Any]] = [{"text": text}] if text else []
            parts.extend(_tool_call_parts(message.get("tool_calls"), names, calls, server_parts or {}))
            _append(out.contents, "model", parts)
        elif role == "tool":
            _tool_result(out, message, calls)
        else:
            _GEMINI_LOG.debug("skipping a message with role %r", role)
    if not any(c["role"] == "user" for c in out.contents):
        raise GeminiError("The request has no user message for Gemini to answer.")
    if needs_signatures:
        add_missing_signatures(out.contents)
    out.system = "\n\n".join(system) or None
    return out


def attach_files(out: Converted, files: list[tuple[FileAttachment, FileResult]]) -> None:
    """Put the chat's attached documents (already read) in front of the last user message."""
    parts: list[dict[str, Any]] = []
    for ref, read in files:
        if isinstance(read, AttachmentError):
            out.warnings.append(f"{ref.name} was left out: {read}")
            continue
        data, mime, name = read
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


# --- the request ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestOptions:
    """What the valves decide about a request."""

    include_thoughts: bool = True
    grounding: bool = False
    permissive_safety: bool = False
    thinking_budget: int = -1
    thinking_level: str = "default"
    inline_budget: int = INLINE_BUDGET  # raw bytes sent inline; the largest attachments above it are uploaded
    # The installed SDK can ask for Gemini 3's search steps (ToolConfig.include_server_side_tool_invocations).
    sdk_server_side_tools: bool = True
    media: MediaOptions = field(default_factory=MediaOptions)  # images, code execution, URL context, Maps, YouTube


@dataclass
class Fetched:
    """What the request needs from outside the body, gathered before it is built: the chat's
    attachments (downloaded or read), and the Google Search steps of earlier replies that ended in
    tool calls (by the first call's id), which Gemini 3 wants back with the tool results."""

    images: dict[str, ImageResult] = field(default_factory=dict)
    files: list[tuple[FileAttachment, FileResult]] = field(default_factory=list)
    server_parts: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    generated: list[tuple[str, bytes]] = field(default_factory=list)  # earlier generated images, newest first


@dataclass
class GeminiRequest:
    """One complete generateContent call: what to send and what must be uploaded first."""

    model: str
    contents: list[dict[str, Any]]
    config: dict[str, Any]  # GenerateContentConfig fields
    names: dict[str, str]  # Gemini function name -> the tool's own name
    uploads: list[Blob]  # inline parts to move to the Files API before sending
    warnings: list[str]
    include_thoughts: bool
    notes: list[str] = field(default_factory=list)  # status lines about how the request was shaped
    grounded: bool = False  # Google Search is among the tools


GROUNDING_OFF_NOTE = "Search grounding is off for this reply because tools are on"


@dataclass
class ToolPlan:
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_config: dict[str, Any] | None = None
    note: str | None = None

    @property
    def grounded(self) -> bool:
        return any("google_search" in tool for tool in self.tools)


def plan_tools(
    grounding: bool,
    declarations: list[dict[str, Any]],
    contents: list[dict[str, Any]],
    *,
    model_id: str,
    user_tools: bool,
    sdk_server_side_tools: bool = True,
) -> ToolPlan:
    """Which tools a request offers. Gemini 3 takes Google Search and function declarations
    together (the search steps then come back in the reply, to be sent again with the tool
    results). Earlier models take one or the other: the chat's own tools win, and the status line
    says grounding is off; Open WebUI's builtin tools alone do not turn it off."""
    functions = [{"function_declarations": declarations}] if declarations else []
    if not grounding:
        return ToolPlan(functions)
    if combines_search_and_functions(model_id) and (sdk_server_side_tools or not declarations):
        config = {"include_server_side_tool_invocations": True} if declarations else None
        return ToolPlan([{"google_search": {}}, *functions], config)
    current = contents[-1]["parts"] if contents else []
    if any("function_response" in p for p in current):
        return ToolPlan(functions)  # a tool loop is answering: its results need the declarations
    if user_tools:
        return ToolPlan(functions, note=GROUNDING_OFF_NOTE)
    return ToolPlan([{"google_search": {}}])


def build_request(
    body: dict,
    *,
    model_id: str,
    thinking: bool | None,
    options: RequestOptions,
    task: bool,
    tools: Any = None,
    metadata: Any = None,
    fetched: Fetched | None = None,
) -> GeminiRequest:
    """The complete Gemini request for an OpenAI chat body. `thinking` is what the model list says
    about the model (None when unknown); `task` marks Open WebUI's title/tag/follow-up calls, which
    get no tools, no files and as little thinking as the model allows."""
    fetched = fetched or Fetched()
    declarations, names = function_declarations(None if task else tool_specs(body, tools, metadata))
    converted = convert_messages(
        body.get("messages"),
        names=names,
        images=fetched.images,
        needs_signatures=thinking_family(model_id, thinking) in SIGNED_FORMS,
        server_parts=fetched.server_parts,
    )
    # 0.8.12 passes only the workspace tools as `__tools__`; its builtin ones are in the metadata
    builtin = builtin_tool_names(tools) | builtin_tool_names(
        metadata.get("tools") if isinstance(metadata, dict) else None
    )
    user_tools = any(original not in builtin for original in names.values())
    media = MediaPlan()
    if not task:
        attach_files(converted, fetched.files)
        current = converted.contents[-1]["parts"] if converted.contents else []
        media = plan_media(
            model_capabilities(model_id, thinking), options.media, grounding=options.grounding,
            declarations=bool(declarations), user_tools=user_tools,
            answering=any("function_response" in p for p in current),
            combines=combines_search_and_functions(model_id) and options.sdk_server_side_tools,
        )  # fmt: skip
        apply_media(converted.contents, media)
        add_generated_images(converted.contents, converted.blobs, fetched.generated if media.images else [])
        declarations = declarations if media.functions else []
    config: dict[str, Any] = {**sampling_config(body), **media.config}
    if converted.system:
        config["system_instruction"] = converted.system
    if options.permissive_safety:
        config["safety_settings"] = [{"category": c, "threshold": "BLOCK_NONE"} for c in SAFETY_CATEGORIES]
    thinking_cfg = thinking_config(
        model_id,
        thinking,
        include_thoughts=options.include_thoughts,
        budget=options.thinking_budget,
        level=options.thinking_level,
        effort=reasoning_effort(body),
        task=task,
    )
    if thinking_cfg:
        config["thinking_config"] = thinking_cfg
    plan = (
        ToolPlan()
        if task
        else plan_tools(
            options.grounding and media.search, declarations, converted.contents, model_id=model_id,
            user_tools=user_tools, sdk_server_side_tools=options.sdk_server_side_tools,
        )
    )  # fmt: skip
    if plan.tools or media.tools:
        config["tools"] = plan.tools + media.tools
    if plan.tool_config or (media.tools and declarations):  # built-in tools next to the chat's (Gemini 3)
        config["tool_config"] = {**(plan.tool_config or {}), "include_server_side_tool_invocations": True}
    # Tools run in Open WebUI, never inside the SDK.
    config["automatic_function_calling"] = {"disable": True}
    return GeminiRequest(
        model=model_id,
        contents=converted.contents,
        config=config,
        names=names,
        uploads=upload_plan(converted.blobs, options.inline_budget),
        warnings=converted.warnings + media.warnings,
        include_thoughts=options.include_thoughts and not task,
        notes=([plan.note] if plan.note else []) + media.notes,
        grounded=plan.grounded,
    )


# --- errors and retries --------------------------------------------------------------------------


def _loaded_type(module: str, name: str) -> type | None:
    """A class of a library that is already imported; None when it is not (then no exception of
    that library can exist, so nothing needs importing to recognise one)."""
    cls = getattr(sys.modules.get(module), name, None)
    return cls if isinstance(cls, type) else None


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of a google-genai APIError."""
    api_error = _loaded_type("google.genai.errors", "APIError")
    if api_error is None or not isinstance(exc, api_error):
        return None
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def server_retry_delay(exc: BaseException) -> float | None:
    """The wait Google's RetryInfo detail asks for, in seconds."""
    details = getattr(exc, "details", None)
    error = details.get("error", details) if isinstance(details, dict) else None
    for item in (error or {}).get("details") or [] if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _connection_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    # The SDK talks through aiohttp when it is installed (Open WebUI has it), else httpx.
    types = (_loaded_type("aiohttp", "ClientError"), _loaded_type("httpx", "TransportError"))
    return any(cls is not None and isinstance(exc, cls) for cls in types)


@dataclass(frozen=True)
class ErrorText:
    """A failure in words: the sentence for everyone, the administrator's detail, and whether the
    connection itself failed (a reply cut off that way says so)."""

    sentence: str
    detail: str = ""
    connection: bool = False


def _one_line(text: str) -> str:
    # Google's own messages can span lines (quota errors list their limits as bullets).
    return " ".join(text.split())


def explain_error(
    exc: BaseException, *, retries: int = 0, timeout: float | None = None, upload: str | None = None
) -> ErrorText:
    """What a user reads about a failure, and what an administrator reads in addition. `upload`
    names the file when the failure is a Files API upload's (its 404 is not about the model)."""
    text = _error_text(exc, retries=retries, timeout=timeout)
    status = api_status(exc)
    if upload is not None and status is not None:
        said = "Gemini's Files API was not found at the API address" if status == 404 else text.sentence
        text = ErrorText(f"Uploading {upload} to Gemini failed: {said.rstrip('.')}.", text.detail)
    return ErrorText(_one_line(text.sentence), _one_line(text.detail), text.connection)


def describe_error(exc: BaseException, *, retries: int = 0, timeout: float | None = None) -> str:
    """The whole story of a failure on one line, for the server log."""
    text = explain_error(exc, retries=retries, timeout=timeout)
    return f"{text.sentence} ({text.detail})" if text.detail else text.sentence


def _api_error_text(exc: BaseException, status: int, retries: int) -> ErrorText:
    name = getattr(exc, "status", None) or ""
    message = str(getattr(exc, "message", None) or "").strip()
    code = f"{status} {name}".strip()
    head = code + (f": {message}" if message else "")
    after = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
    if status == 400 and ("API key" in message or "API_KEY" in str(getattr(exc, "details", ""))):
        return ErrorText(
            "Gemini rejected the API key. If you entered your own key in this function's user valves, "
            "check it; otherwise tell your administrator.",
            f"{head}; check GOOGLE_API_KEY in the function's Valves (or the user's own key)",
        )
    if status in (401, 403):
        return ErrorText(
            "Gemini refused access to this model with the current API key.",
            f"{head}; check that the key is valid and may use this model",
        )
    if status == 404:
        return ErrorText("Gemini does not know this model. Pick another model from the list.", head)
    if status == 429:
        return ErrorText(f"Gemini's rate limit or quota was reached{after}. Wait a little and try again.", head)
    if status >= 500:
        return ErrorText(f"Gemini had a server error{after}. Try again shortly.", head)
    # Google's message says what was wrong with the request (too large, unsupported file, ...).
    said = f": {message.rstrip('.')}." if message else "."
    return ErrorText(f"Gemini rejected the request{said}", code)


def _error_text(exc: BaseException, *, retries: int, timeout: float | None) -> ErrorText:
    status = api_status(exc)
    if status is not None:
        return _api_error_text(exc, status, retries)
    if isinstance(exc, GeminiError):
        return ErrorText(str(exc), exc.detail, exc.connection)
    name = type(exc).__name__
    if isinstance(exc, TimeoutError):
        sentence = f"Gemini did not answer within {timeout:g} s." if timeout else "Gemini did not answer in time."
        return ErrorText(sentence, f"{name}; the limit is the REQUEST_TIMEOUT valve")
    if (type(exc).__module__ or "").startswith("google.auth"):  # Vertex AI's sign-in (google-auth)
        return ErrorText(
            "Gemini could not sign in to Vertex AI with its Google Cloud credentials.",
            f"google-auth {name}: {exc}; check VERTEX_CREDENTIALS_JSON (empty = application default credentials)",
        )
    if _connection_error(exc):
        return ErrorText(
            "Gemini could not be reached.",
            f"{name}: {exc}; check GOOGLE_API_BASE_URL and the network",
            connection=True,
        )
    return ErrorText("The Gemini request failed unexpectedly.", f"{name}: {exc}")


def _retry_plan(exc: BaseException) -> RetryPlan:
    if not retryable_status(api_status(exc)):
        return RetryPlan(retry=False)
    delay = server_retry_delay(exc)
    return RetryPlan(retry=delay is None or delay <= MAX_SERVER_RETRY_DELAY, retry_after=delay)


async def with_gemini_retries(
    operation: Callable[[], Awaitable[Result]],
    *,
    max_retries: int,
    emitter: Emitter,
    timeout: float | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    backoff: Backoff | None = None,
    secrets: tuple[str, ...] = (),
) -> Result:
    """Run `operation`, retrying what the pack's retry policy retries (shared/retry.py), with
    backoff or the server's RetryInfo delay; a failure becomes a GeminiError with a clear message.

    A "retrying" status is always closed (done) before this returns or raises: a status left
    at done=False keeps shimmering next to the error in Open WebUI."""
    retries = 0

    async def on_retry(exc: BaseException, attempt: int, delay: float) -> None:
        nonlocal retries
        retries = attempt
        answer = redact(f"{api_status(exc)} {getattr(exc, 'status', None) or ''}".strip(), secrets, 80)
        await emitter.status(f"Gemini answered {answer}; retrying in {delay:.1f} s ({attempt} of {max_retries})")

    try:
        result = await with_retries(
            operation,
            classify=_retry_plan,
            max_retries=max_retries,
            backoff=backoff,
            on_retry=on_retry,
            sleep=sleep,
        )
    except Exception as exc:
        if retries:
            tries = f"{retries} {'retry' if retries == 1 else 'retries'}"
            await emitter.status(f"Gemini request failed after {tries}", done=True)
        text = explain_error(exc, retries=retries, timeout=timeout)
        sentence = text.sentence
        wait = server_retry_delay(exc)
        if retryable_status(api_status(exc)) and retries < max_retries and wait and wait > MAX_SERVER_RETRY_DELAY:
            sentence += f" Gemini asks to wait {wait:.0f} s before retrying."
        raise GeminiError(sentence, text.detail, connection=text.connection) from None
    except BaseException:  # a chat stopped while waiting must not keep a spinning status either
        if retries:
            await emitter.status("Gemini request stopped", done=True)
        raise
    if retries:
        await emitter.status("Gemini answered", done=True, hidden=True)
    return result


# --- SDK calls -----------------------------------------------------------------------------------


@dataclass
class ModelInfo:
    id: str
    name: str
    thinking: bool | None


_genai_modules: dict[str, Any] = {}  # the SDK, once imported


async def load_genai() -> tuple[Any, Any]:
    """google.genai and its types, imported on first use in a thread (the import takes ~0.7 s)."""
    if "genai" not in _genai_modules:
        genai = await asyncio.to_thread(importlib.import_module, "google.genai")
        _genai_modules["types"] = importlib.import_module("google.genai.types")
        _genai_modules["genai"] = genai
    return _genai_modules["genai"], _genai_modules["types"]


async def sdk_takes_server_side_tools() -> bool:
    """Whether the installed google-genai knows ToolConfig.include_server_side_tool_invocations
    (older versions refuse the field; the pipe then treats Gemini 3 like earlier models)."""
    _, types = await load_genai()
    return "include_server_side_tool_invocations" in getattr(types.ToolConfig, "model_fields", {})


async def make_client(key: str, base_url: str | None, timeout_ms: int) -> Any:
    """A google-genai client for the Gemini API (never Vertex AI) that makes one attempt per call."""
    genai, types = await load_genai()
    options = types.HttpOptions(
        base_url=base_url,
        api_version=API_VERSION,
        timeout=timeout_ms,
        # One attempt per SDK call: the caller retries itself, with a status the user can see.
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    # Building a client loads SSL contexts (tens of ms): keep it off the event loop.
    return await asyncio.to_thread(lambda: genai.Client(api_key=key, vertexai=False, http_options=options))


async def list_models(client: Any) -> list[ModelInfo]:
    """Every model of this key that answers generateContent (all pages), and the Veo video models
    (they answer predictLongRunning; shared/gemini_video.py)."""
    models: list[ModelInfo] = []
    pager = await client.aio.models.list(config={"page_size": 1000})
    async for model in pager:
        actions = getattr(model, "supported_actions", None) or []
        video = "predictLongRunning" in actions and str(model.name or "").startswith("models/veo-")
        if "generateContent" not in actions and not video:
            continue
        model_id = str(model.name or "").removeprefix("models/")
        if model_id:
            models.append(ModelInfo(model_id, model.display_name or model_id, getattr(model, "thinking", None)))
    return models


def enum_name(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


async def upload_file(
    client: Any,
    data: bytes,
    mime: str,
    name: str,
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Any:
    """Upload through the Files API and wait until Gemini has processed the file: the File
    (shared/gemini_uploads.py keeps it, with its expiry, for later turns)."""
    file = await client.aio.files.upload(file=io.BytesIO(data), config={"mime_type": mime, "display_name": name})
    deadline = clock() + timeout
    delay = 0.5
    while enum_name(getattr(file, "state", None)) == "PROCESSING":
        if clock() > deadline:
            raise GeminiError(f"Gemini was still processing {name} after {timeout:g} s.")
        await sleep(delay)
        delay = min(delay * 2, 5.0)
        file = await client.aio.files.get(name=file.name)
    if enum_name(getattr(file, "state", None)) == "FAILED":
        raise GeminiError(f"Gemini could not process {name}.")
    return file
