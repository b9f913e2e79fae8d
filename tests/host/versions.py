"""Where the host-tier harness differs by Open WebUI version: the one place that says so.

The harness runs in the same venv as the server it starts (`open-webui serve` from the running
python's venv), so the version is read once from that venv's installed package metadata. Supported:
0.6.43, 0.8.12, 0.10.2 and 0.12.4 (`OWUI_VERSION=<v> bash tests/run.sh tests/host`).

Every fact below names the Open WebUI versions and modules it comes from; tests ask these helpers
(or `owui.version`) instead of comparing version strings themselves.
"""

from __future__ import annotations

import html
import json
import re
from importlib.metadata import PackageNotFoundError, version

import pytest


def parse(text: str) -> tuple[int, ...]:
    """ "0.10.2" -> (0, 10, 2); a suffix such as "rc1" on a part is ignored."""
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)
    return tuple(parts)


try:
    OWUI_VERSION_TEXT = version("open-webui")
except PackageNotFoundError:  # the unit tier may run without Open WebUI; the host tier then fails to start
    OWUI_VERSION_TEXT = "0.0.0"
OWUI_VERSION = parse(OWUI_VERSION_TEXT)


def at_least(text: str) -> bool:
    """True when the running Open WebUI is `text` or newer."""
    return parse(text) <= OWUI_VERSION


def skip_before(text: str, reason: str) -> None:
    """Skip the calling test on versions older than `text`, saying why in plain words."""
    if not at_least(text):
        pytest.skip(f"Open WebUI {OWUI_VERSION_TEXT}: {reason} (from {text})")


# --- server start ------------------------------------------------------------------------

# 0.6.43 has no /ready: the SPA fallback answers it with 200 text/html before the app is up
# (open_webui/main.py); /health answers {"status": true} once the app serves requests.
READY_PATH = "/ready" if at_least("0.8.0") else "/health"

# WEBSOCKET_EVENT_CALLER_TIMEOUT does not exist in 0.6.43: an unanswered __event_call__ waits
# python-socketio's default of 60 s there (open_webui/socket/main.py, sio.call without timeout).
EVENT_CALL_TIMEOUT_CONFIGURABLE = at_least("0.8.0")
SOCKETIO_DEFAULT_CALL_TIMEOUT = 60

# Only 0.12.4 answers an unanswered __event_call__ with this dict; 0.6.43 to 0.10.2 raise
# socketio.exceptions.TimeoutError inside the plugin (0.10.2 catches only the builtin TimeoutError).
EVENT_CALL_TIMEOUT_RETURNS_ERROR = at_least("0.12.0")
EVENT_CALL_TIMEOUT_ERROR = {"error": "Event call timed out. The browser tab may be inactive or closed."}


# With no session (session_id None) a call answers {"error": "Client session disconnected."} from 0.10;
# 0.6.43 and 0.8.12 hand it to python-socketio, which raises "Cannot use call() to broadcast."
EVENT_CALL_WITHOUT_SESSION_RETURNS_ERROR = at_least("0.10.0")
EVENT_CALL_NO_SESSION_ERROR = {"error": "Client session disconnected."}

# 0.12.4 sends `request:interaction:done` after each answered call; older versions send nothing.
SENDS_INTERACTION_DONE = at_least("0.12.0")


def event_call_timeout(configured: float) -> float:
    """How long the server waits for an unanswered __event_call__ with the harness's setting."""
    return configured if EVENT_CALL_TIMEOUT_CONFIGURABLE else SOCKETIO_DEFAULT_CALL_TIMEOUT


# --- plugins and features -------------------------------------------------------------------

# Event functions (a module with a top-level Event class) exist from 0.10 (open_webui/events.py,
# utils/plugin.py); 0.6.43 and 0.8.12 refuse such a file on create.
HAS_EVENT_FUNCTIONS = at_least("0.10.0")

# Outlet filters run inline at the end of a UI-like (background) completion, followed by a
# `chat:outlet` event, from 0.10 (utils/middleware.py); before, only POST /api/chat/completed runs them.
OUTLET_INLINE = at_least("0.10.0")

# An async-generator pipe's stream ends with a finish chunk (finish_reason "stop") and [DONE] from
# 0.10; 0.6.43 and 0.8.12 send only the pipe's own chunks (open_webui/functions.py).
ASYNC_GENERATOR_STREAM_FINISHES = at_least("0.10.0")

# A file the loader refuses sets the installed function inactive (its content stays) before 0.12: the
# update route loads the new text under the installed id (utils/plugin.py, load_function_module_by_id).
REFUSED_UPDATE_DEACTIVATES = not at_least("0.12.0")

# A failed upstream completion (API call, no chat) keeps the provider's HTTP status, except in 0.10.x,
# which answers 400 with the provider's message (open_webui/main.py, process_chat).
UPSTREAM_ERROR_STATUS_KEPT = not (at_least("0.10.0") and not at_least("0.12.0"))


def upstream_error_status(provider_status: int) -> int:
    """The HTTP status /api/chat/completions answers when the provider failed with `provider_status`."""
    return provider_status if UPSTREAM_ERROR_STATUS_KEPT else 400


# 0.10.x hands inline outlets the finished reply in `output` only: its `content` is "" (utils/middleware.py,
# temporary chats); 0.12 fills both.
INLINE_OUTLET_HAS_CONTENT = at_least("0.12.0")

# The functions create endpoint hides the loader's reason from 0.10 ("Error creating function");
# update hides it only in 0.10.x (routers/functions.py).
CREATE_ERROR_DETAIL_SHOWN = not at_least("0.10.0")
UPDATE_ERROR_DETAIL_SHOWN = not (at_least("0.10.0") and not at_least("0.12.0"))

# Before 0.10 prompt-based tool calling ("default") is the default and the native tool loop runs only
# when the request (or model) asks for params.function_calling = "native" (open_webui/main.py).
NATIVE_TOOLS_NEED_PARAM = not at_least("0.10.0")

# 0.6.43 to 0.10.2 list the evaluation "arena-model" in /api/models (ENABLE_EVALUATION_ARENA_MODELS).
LISTS_ARENA_MODEL = not at_least("0.12.0")

# --- access control --------------------------------------------------------------------------

# 0.8+ share models and tools with `access_grants` lists through .../access/update endpoints;
# 0.6.43 stores an `access_control` dict ({"read": {"user_ids", "group_ids"}, "write": ...};
# None = public read) set through the model/tool create and update forms (models/models.py).
ACCESS_GRANTS = at_least("0.8.0")

# A tool created through the API is public (access_control None) in 0.6.43, private from 0.8; 0.6.43's
# GET /api/v1/tools/id/{id} answers 401 for a missing tool (404 from 0.8) and 200 null when not readable.
NEW_TOOLS_PUBLIC = not at_least("0.8.0")
MISSING_TOOL_STATUS = 404 if at_least("0.8.0") else 401

# POST /api/v1/users/user/settings/update replaces the whole `ui` dict (and stores null) before 0.12;
# 0.12 merges `ui` keys and deletes a key set to null (models/users.py).
USER_SETTINGS_UI_MERGED = at_least("0.12.0")


def access_control_with_reader(access_control: dict | None, user_id: str) -> dict:
    """0.6.43: `access_control` with `user_id` added to the readers.

    None (a new workspace entry) gives a private dict that only `user_id` (and the owner) may read.
    """
    if access_control is None:
        return {"read": {"group_ids": [], "user_ids": [user_id]}, "write": {"group_ids": [], "user_ids": []}}
    read = dict(access_control.get("read") or {})
    users = list(read.get("user_ids") or [])
    if user_id not in users:
        users.append(user_id)
    return {**access_control, "read": {"group_ids": list(read.get("group_ids") or []), "user_ids": users}}


# --- the final chat:completion ----------------------------------------------------------------

# 0.6.43 sends {done, content, title}: tool calls as `<details type="tool_calls" ...>` blocks inside
# `content`; 0.8.12 sends `content` and `output` items; 0.10+ only `output` (utils/middleware.py).
COMPLETION_HAS_OUTPUT = at_least("0.8.0")

_DETAILS = re.compile(r'<details type="(?P<type>[a-z_]+)"(?P<attrs>[^>]*)>(?P<body>.*?)</details>\n?', re.S)
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def output_from_content(content: str) -> list[dict]:
    """0.6.43's final `content` as the `output` items newer versions send (tool calls, reasoning, message).

    Each `<details type="tool_calls">` becomes a `function_call` item and, when it has a result, a
    `function_call_output`; `<details type="reasoning">` a `reasoning` item; the remaining text one
    `message` item.
    """
    items: list[dict] = []
    for match in _DETAILS.finditer(content):
        attrs = {k: html.unescape(v) for k, v in _ATTR.findall(match["attrs"])}
        if match["type"] == "tool_calls":
            call_id = attrs.get("id", "")
            items.append(
                {"type": "function_call", "call_id": call_id, "name": attrs.get("name", ""),
                 "arguments": _json_text(attrs.get("arguments", "{}"))}
            )  # fmt: skip
            if "result" in attrs:
                result = _json_value(attrs["result"])
                text = result if isinstance(result, str) else json.dumps(result)
                items.append({"type": "function_call_output", "call_id": call_id,
                              "output": [{"type": "input_text", "text": text}]})  # fmt: skip
        elif match["type"] == "reasoning":
            body = re.sub(r"<summary>.*?</summary>", "", match["body"], flags=re.S).strip()
            text = "\n".join(line.removeprefix("> ").removeprefix(">") for line in body.splitlines())
            items.append({"type": "reasoning", "content": [{"type": "output_text", "text": text}]})
    text = _DETAILS.sub("", content).strip()
    if text:
        items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
    return items


def _json_value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_text(text: str) -> str:
    """The tool arguments as the JSON string newer versions send (0.6.43 double-encodes them)."""
    value = _json_value(text)
    return value if isinstance(value, str) else json.dumps(value)


def normalise_completion(data: dict) -> dict:
    """The final `chat:completion` data with both `output` and `content`, on every version.

    0.6.43 lacks `output` (derived from `content`), 0.10+ lack `content` (the message items' text).
    The socket still records the raw events for tests of a version's own shape.
    """
    data = dict(data)
    if "output" not in data:
        data["output"] = output_from_content(str(data.get("content") or ""))
    if "content" not in data:
        data["content"] = message_text(data["output"])
    return data


def message_text(output: list[dict]) -> str:
    texts = []
    for item in output or []:
        if item.get("type") != "message":
            continue
        parts = item.get("content")
        if isinstance(parts, str):
            texts.append(parts)
            continue
        texts.extend(str(p.get("text", "")) for p in parts or [] if isinstance(p, dict))
    return "\n".join(texts)
