"""A fake Gemini API (Google AI, `v1beta`) on 127.0.0.1, for unit tests, host tests and benches.

    with FakeGemini(api_key="k") as fake:          # or fake.start() / fake.stop()
        fake.url                                   # "http://127.0.0.1:PORT" (GOOGLE_API_BASE_URL)
        fake.script(reply("Hello"))                # what the next generate call answers
        fake.script(error(429, retry_delay="0.01s"), reply("ok"))   # one 429, then a reply
        fake.requests                              # every request: Recorded(method, path, query, headers, body)

Wire format, as the google-genai SDK (3.4.0) sends and parses it (google/genai/models.py, files.py,
_api_client.py) and as the REST reference documents it:
- Auth: the `x-goog-api-key` header. With `api_key` set, anything else gets Google's answer to a bad
  key: 400 INVALID_ARGUMENT "API key not valid..." with an ErrorInfo detail (reason API_KEY_INVALID).
- `GET /v1beta/models?pageSize=N&pageToken=T` -> `{"models": [Model...], "nextPageToken": "..."}`.
  Model: `name` ("models/<id>"), `displayName`, `supportedGenerationMethods`, `inputTokenLimit`,
  `outputTokenLimit`, `thinking`. Pages hold min(pageSize or 50, `max_page_size`) models.
- `POST /v1beta/models/<id>:generateContent` -> one GenerateContentResponse (camelCase JSON).
- `POST /v1beta/models/<id>:streamGenerateContent?alt=sse` -> `text/event-stream`, HTTP/1.1 chunked,
  one `data: {GenerateContentResponse}\\r\\n\\r\\n` event per chunk, like Google's frontend.
- Files API (resumable upload): `POST /upload/v1beta/files` with `X-Goog-Upload-Protocol: resumable`,
  `X-Goog-Upload-Command: start`, `X-Goog-Upload-Header-Content-Length/-Type` and `{"file": {...}}`
  answers with an `X-Goog-Upload-URL` header; the bytes go to that URL (no key: its upload_id is the
  credential) in chunks with
  `X-Goog-Upload-Command: upload[, finalize]` and `X-Goog-Upload-Offset`; answers carry
  `X-Goog-Upload-Status: active|final`, the final one `{"file": File}`. `GET /v1beta/files/<id>` reads a
  file; `processing_polls` keeps new files in state PROCESSING for that many reads; `upload_error`
  (an `Error`) answers the next upload start instead, once.
- Errors: `{"error": {"code", "message", "status", "details": [...]}}` with the HTTP status; a
  `RetryInfo` detail (`"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"`) when
  a retry delay is given. Unknown models: 404 NOT_FOUND.

Scripted answers (`script(...)`) are used by generate calls in order; with none left the fake answers
`default_reply(request_json)`: the JSON Open WebUI's title, tag and follow-up prompts ask for
(`task_reply`), else "Echo: <last user text>". Like Google, it refuses (400) Google Search together
with function declarations unless the model is Gemini 3 and the request sets
`toolConfig.includeServerSideToolInvocations` (`tool_mix_error`). A scripted item is a list of chunks (dicts in
wire format: see `reply`, `thought`, `function_call`, `grounded`, `server_search`, `finish`), an `Error`, or a
`Stream` (chunks, then an in-stream error or a dropped connection, optional per-chunk delay).
Non-stream calls get the chunks merged into one response. Stdlib only; daemon thread.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Chunk = dict[str, Any]

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

DEFAULT_MODELS: list[dict[str, Any]] = [
    {"id": "gemini-2.5-flash", "name": "Gemini 2.5 Flash", "thinking": True},
    {"id": "gemini-2.5-pro", "name": "Gemini 2.5 Pro", "thinking": True},
    {"id": "gemini-3-pro-preview", "name": "Gemini 3 Pro Preview", "thinking": True},
    {"id": "gemini-2.0-flash", "name": "Gemini 2.0 Flash", "thinking": False},
    {"id": "gemini-2.5-flash-preview-tts", "name": "Gemini 2.5 Flash TTS", "thinking": False},
    {"id": "gemma-3-27b-it", "name": "Gemma 3 27B", "thinking": False},
    {"id": "gemini-embedding-001", "name": "Gemini Embedding", "methods": ["embedContent"]},
    {"id": "imagen-4.0-generate-001", "name": "Imagen 4", "methods": ["predict"]},
]

# The image models, for tests that make images (not in DEFAULT_MODELS, whose listing tests count).
IMAGE_MODELS: list[dict[str, Any]] = [
    {"id": "gemini-2.5-flash-image", "name": "Nano Banana", "thinking": False},
    {"id": "gemini-3-pro-image-preview", "name": "Gemini 3 Pro Image Preview", "thinking": True},
]


# --- builders for scripted chunks (wire format, camelCase) --------------------------------------


def _chunk(parts: list[dict[str, Any]], **candidate: Any) -> Chunk:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0, **candidate}],
        "modelVersion": "fake-gemini",
        "responseId": uuid.uuid4().hex[:16],
    }


def text(value: str) -> Chunk:
    """One chunk of answer text."""
    return _chunk([{"text": value}])


def thought(value: str) -> Chunk:
    """One chunk of thought summary (`thought: true`)."""
    return _chunk([{"text": value, "thought": True}])


def function_call(
    name: str, args: dict[str, Any] | None = None, *, id: str | None = None, signature: bytes | None = None
) -> Chunk:
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args or {}}}
    if id is not None:
        part["functionCall"]["id"] = id
    if signature is not None:
        part["thoughtSignature"] = base64.b64encode(signature).decode()
    return _chunk([part])


def usage(prompt: int = 7, candidates: int = 5, thoughts: int = 0, cached: int = 0) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
    }
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    if cached:
        meta["cachedContentTokenCount"] = cached
    return meta


def finish(reason: str = "STOP", *, usage_metadata: dict[str, Any] | None = None, **candidate: Any) -> Chunk:
    """The last chunk: finish reason and usage (Google sends them with the final text)."""
    chunk = _chunk([], finishReason=reason, **candidate)
    chunk["usageMetadata"] = usage_metadata or usage()
    return chunk


def _segment(answer: str | None, text: str) -> dict[str, Any]:
    """A Segment as Google sends it: UTF-8 byte offsets of `text` in the whole answer."""
    at = answer.find(text) if answer is not None else 0
    if at < 0:
        raise ValueError(f"{text!r} is not in the answer")
    start = len((answer or "")[:at].encode())
    segment: dict[str, Any] = {"endIndex": start + len(text.encode()), "text": text}
    if start:  # proto3 JSON leaves zero out
        segment["startIndex"] = start
    return segment


def grounded(
    sources: list[tuple[str, str]],
    queries: list[str],
    supports: list[tuple[str, list[int]]],
    *,
    answer: str | None = None,
) -> Chunk:
    """A chunk carrying groundingMetadata: (uri, title) sources, queries, (segment text, chunk
    indices) supports; with `answer` (the whole reply text) the offsets are where each segment is
    in it, in bytes, else they count from 0."""
    meta = {
        "webSearchQueries": queries,
        "groundingChunks": [{"web": {"uri": uri, "title": title}} for uri, title in sources],
        "groundingSupports": [
            {"segment": _segment(answer, seg), "groundingChunkIndices": idx} for seg, idx in supports
        ],
        "searchEntryPoint": {"renderedContent": "<div>search</div>"},
    }
    return _chunk([], groundingMetadata=meta)


def server_search(queries: list[str], *, id: str = "search-1", signature: bytes | None = b"search-sig") -> Chunk:
    """Gemini 3's Google Search step, shown with includeServerSideToolInvocations: a toolCall and
    its toolResponse part (the client sends both back in the next turn's history)."""
    call: dict[str, Any] = {"toolCall": {"id": id, "toolType": "GOOGLE_SEARCH_WEB", "args": {"queries": queries}}}
    if signature is not None:
        call["thoughtSignature"] = base64.b64encode(signature).decode()
    response = {"toolResponse": {"id": id, "toolType": "GOOGLE_SEARCH_WEB", "response": {"results": len(queries)}}}
    return _chunk([call, response])


def image(data: bytes, mime: str = "image/png", *, thought: bool = False) -> Chunk:
    """An image Gemini made: an `inlineData` part (base64 on the wire), as image models answer
    with responseModalities IMAGE; `thought` marks Gemini 3 Pro Image's drafts."""
    part: dict[str, Any] = {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}
    if thought:
        part["thought"] = True
    return _chunk([part])


def executable_code(code: str, language: str = "PYTHON") -> Chunk:
    """Code Gemini wrote for the codeExecution tool (an `executableCode` part)."""
    return _chunk([{"executableCode": {"language": language, "code": code}}])


def code_result(output: str, outcome: str = "OUTCOME_OK") -> Chunk:
    """The run of that code (a `codeExecutionResult` part: OUTCOME_OK, OUTCOME_FAILED, ...)."""
    return _chunk([{"codeExecutionResult": {"outcome": outcome, "output": output}}])


def url_context(urls: list[tuple[str, str]]) -> Chunk:
    """The pages Gemini read with the urlContext tool: candidate `urlContextMetadata` with each
    (retrievedUrl, urlRetrievalStatus), e.g. URL_RETRIEVAL_STATUS_SUCCESS or _ERROR."""
    meta = {"urlMetadata": [{"retrievedUrl": url, "urlRetrievalStatus": status} for url, status in urls]}
    return _chunk([], urlContextMetadata=meta)


def maps_grounded(places: list[tuple[str, str, str]], supports: list[tuple[str, list[int]]], *, answer: str) -> Chunk:
    """Google Maps grounding: groundingChunks with `maps` (uri, title, placeId, text) places."""
    meta = {
        "groundingChunks": [
            {"maps": {"uri": uri, "title": title, "text": about, "placeId": f"places/{index}"}}
            for index, (uri, title, about) in enumerate(places)
        ],
        "groundingSupports": [
            {"segment": _segment(answer, seg), "groundingChunkIndices": idx} for seg, idx in supports
        ],
    }
    return _chunk([], groundingMetadata=meta)


def blocked(reason: str = "SAFETY", message: str | None = None) -> Chunk:
    """A prompt blocked before generation: no candidates, promptFeedback.blockReason."""
    feedback: dict[str, Any] = {"blockReason": reason}
    if message:
        feedback["blockReasonMessage"] = message
    return {"promptFeedback": feedback, "usageMetadata": usage(candidates=0), "modelVersion": "fake-gemini"}


def reply(value: str = "Hello from the fake", *, reason: str = "STOP") -> list[Chunk]:
    """A whole answer: text then a finish chunk."""
    return [text(value), finish(reason)]


@dataclass
class Error:
    """An HTTP error with Google's error body."""

    status: int
    message: str = "fake failure"
    retry_delay: str | None = None
    status_name: str | None = None

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.retry_delay is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay})
        name = self.status_name or STATUS_NAMES.get(self.status, "UNKNOWN")
        return {"error": {"code": self.status, "message": self.message, "status": name, "details": details}}


def error(status: int, message: str = "fake failure", *, retry_delay: str | None = None) -> Error:
    return Error(status, message, retry_delay)


@dataclass
class Stream:
    """Chunks sent with `delay` seconds between them, then `then`: an Error sent in the stream, "drop"
    (the connection closes without the final chunk), or None (a normal end)."""

    chunks: list[Chunk]
    delay: float = 0.0
    then: Error | str | None = None


Script = list[Chunk] | Error | Stream


def merge(chunks: list[Chunk]) -> Chunk:
    """What Google's non-stream endpoint returns for the same answer: one response, parts joined."""
    out: Chunk = {"modelVersion": "fake-gemini", "responseId": uuid.uuid4().hex[:16]}
    parts: list[dict[str, Any]] = []
    candidate: dict[str, Any] = {"index": 0}
    seen_candidate = False
    for chunk in chunks:
        for key in ("usageMetadata", "promptFeedback"):
            if key in chunk:
                out[key] = chunk[key]
        for cand in chunk.get("candidates", []):
            seen_candidate = True
            for key, value in cand.items():
                if key != "content":
                    candidate[key] = value
            for part in cand.get("content", {}).get("parts", []):
                last = parts[-1] if parts else None
                if (
                    last is not None
                    and "text" in part
                    and "text" in last
                    and bool(last.get("thought")) == bool(part.get("thought"))
                    and "thoughtSignature" not in last
                ):
                    last["text"] += part["text"]
                    if "thoughtSignature" in part:
                        last["thoughtSignature"] = part["thoughtSignature"]
                else:
                    parts.append(dict(part))
    if seen_candidate:
        candidate["content"] = {"role": "model", "parts": parts}
        out["candidates"] = [candidate]
    return out


def last_user_text(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents") or []):
        if content.get("role") == "user":
            texts = [p["text"] for p in content.get("parts", []) if "text" in p]
            if texts:
                return " ".join(texts)
    return ""


# Open WebUI 0.12.4's task prompts (open_webui/config.py, DEFAULT_*_PROMPT_TEMPLATE) and the
# JSON each expects back.
TASK_ANSWERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Predict 3-5 useful messages", {"follow_ups": ["Tell me more", "Give an example", "Compare the options"]}),
    ("Generate 1-3 broad tags", {"tags": ["Technology", "Testing"]}),
    ("Generate a concise", {"title": "Fake Gemini Chat"}),
)


# The same tasks in the words of Open WebUI 0.6.43 to 0.10.2 (open_webui/config.py), by the
# TASK_ANSWERS opening they stand for (the title and tags prompts open alike in every version).
TASK_OPENING_ALIASES: dict[str, str] = {
    "Suggest 3-5 relevant follow-up questions": "Predict 3-5 useful messages",
}


def task_kind(body: dict[str, Any]) -> str | None:
    """The TASK_ANSWERS opening of the task prompt a request carries (any version's words), or None."""
    text = last_user_text(body)
    for opening, _ in TASK_ANSWERS:
        if opening in text:
            return opening
    return next((kind for alias, kind in TASK_OPENING_ALIASES.items() if alias in text), None)


def task_reply(body: dict[str, Any]) -> list[Chunk] | None:
    """The JSON answer to an Open WebUI task prompt (title, tags, follow-ups), None for a chat."""
    kind = task_kind(body)
    return reply(json.dumps(dict(TASK_ANSWERS)[kind])) if kind else None


def default_reply(body: dict[str, Any]) -> list[Chunk]:
    return task_reply(body) or reply(f"Echo: {last_user_text(body)}")


# Google's built-in tools (Google Search, code execution, URL context, Maps): like Search, each is
# refused next to function declarations unless the model is Gemini 3 and the steps are asked for.
SERVER_TOOLS = ("googleSearch", "google_search", "codeExecution", "code_execution", "urlContext", "url_context",
                "googleMaps", "google_maps")  # fmt: skip


def tool_mix_error(model: str, body: dict[str, Any]) -> Error | None:
    """Google's refusal of Google Search and function declarations in one request, unless the
    model is Gemini 3 and the request asks for the search steps back (includeServerSideToolInvocations)."""
    tools = body.get("tools") or []
    searches = any(name in t for t in tools for name in SERVER_TOOLS)
    functions = any("functionDeclarations" in t or "function_declarations" in t for t in tools)
    config = body.get("toolConfig") or {}
    steps = config.get("includeServerSideToolInvocations") or config.get("include_server_side_tool_invocations")
    if searches and functions and not (model.startswith("gemini-3") and steps):
        return Error(400, "Tool use with function calling is unsupported for this model or request.")
    return None


# --- the server ---------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def model(self) -> str | None:
        match = re.match(r"/v1beta/models/([^:]+):", self.path)
        return match.group(1) if match else None


@dataclass
class FakeFile:
    name: str
    mime_type: str
    display_name: str
    size: int
    data: bytearray
    polls_left: int
    state: str = "PROCESSING"

    def resource(self, base: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "displayName": self.display_name,
            "mimeType": self.mime_type,
            "sizeBytes": str(self.size),
            "uri": f"{base}/v1beta/{self.name}",
            "state": self.state,
            "source": "UPLOADED",
        }


class FakeGemini:
    def __init__(
        self,
        api_key: str | None = None,
        models: list[dict[str, Any]] | None = None,
        *,
        max_page_size: int = 1000,
        processing_polls: int = 0,
    ) -> None:
        self.api_key = api_key
        self.models = [dict(m) for m in (models or DEFAULT_MODELS)]
        self.max_page_size = max_page_size
        self.processing_polls = processing_polls
        self.requests: list[Recorded] = []
        self.files: dict[str, FakeFile] = {}
        self.list_error: Error | None = None
        self.upload_error: Error | None = None  # answers the next Files API upload start, then clears
        self.default: Callable[[dict[str, Any]], Script] = default_reply
        self._scripts: deque[Script] = deque()
        self._uploads: dict[str, str] = {}  # upload id -> file name
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> FakeGemini:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-gemini", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # behaviour
    def script(self, *items: Script) -> None:
        with self._lock:
            self._scripts.extend(items)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self.files.clear()
            self.list_error = None
            self.upload_error = None
            self.default = default_reply

    def next_script(self, body: dict[str, Any]) -> Script:
        with self._lock:
            if self._scripts:
                return self._scripts.popleft()
        return self.default(body)

    # queries
    def generate_requests(self) -> list[Recorded]:
        return [r for r in self.requests if "Content" in r.path and r.method == "POST"]

    def last_generate(self) -> dict[str, Any]:
        found = self.generate_requests()
        assert found, "no generate request arrived"
        return found[-1].json

    def record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGemini
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    # plumbing
    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err: Error) -> None:
        self._send_json(err.status, err.body())

    def _authorised(self) -> bool:
        key = self.fake.api_key
        if key is None or self.headers.get("x-goog-api-key") == key:
            return True
        self._send_json(
            400,
            {
                "error": {
                    "code": 400,
                    "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                        }
                    ],
                }
            },
        )
        return False

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        body = self._read() if method == "POST" else b""
        rec = Recorded(method, split.path, parse_qs(split.query), {k.lower(): v for k, v in self.headers.items()}, body)
        self.fake.record(rec)
        # The upload URL's upload_id is the credential for the byte transfer (the SDK sends no key).
        if "upload_id" not in rec.query and not self._authorised():
            return
        path = split.path
        if method == "GET" and path == "/v1beta/models":
            return self._list_models(rec)
        if method == "GET" and path.startswith("/v1beta/files/"):
            return self._get_file(path.removeprefix("/v1beta/"))
        if method == "POST" and path == "/upload/v1beta/files":
            if "upload_id" in rec.query:
                return self._upload_bytes(rec)
            return self._start_upload(rec)
        match = re.fullmatch(r"/v1beta/models/([^:/]+):(generateContent|streamGenerateContent)", path)
        if method == "POST" and match:
            return self._generate(match.group(1), match.group(2) == "streamGenerateContent", rec)
        self._send_error(Error(404, f"Unknown path {path}"))

    def _safely(self, method: str) -> None:
        try:
            self._handle(method)
        except Exception as exc:  # a broken scripted answer shows up as a 500, not a dropped socket
            self._send_error(Error(500, f"fake Gemini failed: {type(exc).__name__}: {exc}"))

    def do_GET(self) -> None:
        self._safely("GET")

    def do_POST(self) -> None:
        self._safely("POST")

    # endpoints
    def _list_models(self, rec: Recorded) -> None:
        if self.fake.list_error is not None:
            return self._send_error(self.fake.list_error)
        size = int((rec.query.get("pageSize") or ["50"])[0]) or 50
        size = max(1, min(size, self.fake.max_page_size))
        start = int((rec.query.get("pageToken") or ["0"])[0] or 0)
        page = self.fake.models[start : start + size]
        payload: dict[str, Any] = {
            "models": [
                {
                    "name": f"models/{m['id']}",
                    "version": "001",
                    "displayName": m.get("name", m["id"]),
                    "description": m.get("description", ""),
                    "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": m.get("methods", ["generateContent", "countTokens"]),
                    **({"thinking": m["thinking"]} if "thinking" in m else {}),
                }
                for m in page
            ]
        }
        if start + size < len(self.fake.models):
            payload["nextPageToken"] = str(start + size)
        self._send_json(200, payload)

    def _known(self, model: str) -> bool:
        return any(m["id"] == model for m in self.fake.models)

    def _generate(self, model: str, stream: bool, rec: Recorded) -> None:
        if not self._known(model):
            return self._send_error(
                Error(404, f"models/{model} is not found for API version v1beta, or is not supported")
            )
        refusal = tool_mix_error(model, rec.json or {})
        if refusal is not None:
            return self._send_error(refusal)
        item = self.fake.next_script(rec.json or {})
        if isinstance(item, Error):
            return self._send_error(item)
        if isinstance(item, Stream):
            chunks, delay, then = item.chunks, item.delay, item.then
        else:
            chunks, delay, then = item, 0.0, None
        if not stream:
            time.sleep(delay * max(len(chunks) - 1, 0))  # a slow answer takes as long as its stream
            if isinstance(then, Error):
                return self._send_error(then)
            return self._send_json(200, merge(chunks))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            for index, chunk in enumerate(chunks):
                if delay and index:
                    time.sleep(delay)
                self._write_chunk(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
            if isinstance(then, Error):
                self._write_chunk(b"data: " + json.dumps(then.body()).encode() + b"\r\n\r\n")
            if then == "drop":
                self.close_connection = True
                self.wfile.flush()
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _start_upload(self, rec: Recorded) -> None:
        headers = rec.headers
        if headers.get("x-goog-upload-protocol") != "resumable" or headers.get("x-goog-upload-command") != "start":
            return self._send_error(Error(400, "expected a resumable upload start"))
        failure, self.fake.upload_error = self.fake.upload_error, None
        if failure is not None:
            return self._send_error(failure)
        meta = (rec.json or {}).get("file") or {}
        file_id = uuid.uuid4().hex[:12]
        name = f"files/{file_id}"
        self.fake.files[name] = FakeFile(
            name=name,
            mime_type=headers.get("x-goog-upload-header-content-type") or meta.get("mimeType", ""),
            display_name=meta.get("displayName", ""),
            size=int(headers.get("x-goog-upload-header-content-length") or 0),
            data=bytearray(),
            polls_left=self.fake.processing_polls,
        )
        upload_id = uuid.uuid4().hex
        self.fake._uploads[upload_id] = name
        url = f"{self.fake.url}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
        self._send_json(200, {}, {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})

    def _upload_bytes(self, rec: Recorded) -> None:
        name = self.fake._uploads.get(rec.query["upload_id"][0])
        if name is None:
            return self._send_error(Error(404, "unknown upload"))
        file = self.fake.files[name]
        offset = int(rec.headers.get("x-goog-upload-offset") or 0)
        if offset != len(file.data):
            return self._send_error(Error(400, f"bad offset {offset}, have {len(file.data)}"))
        file.data.extend(rec.body)
        if "finalize" in (rec.headers.get("x-goog-upload-command") or ""):
            if len(file.data) != file.size:
                return self._send_error(Error(400, "size mismatch"))
            if file.polls_left <= 0:
                file.state = "ACTIVE"
            return self._send_json(200, {"file": file.resource(self.fake.url)}, {"X-Goog-Upload-Status": "final"})
        self._send_json(200, {}, {"X-Goog-Upload-Status": "active"})

    def _get_file(self, name: str) -> None:
        file = self.fake.files.get(name)
        if file is None:
            return self._send_error(Error(404, f"File {name} not found"))
        if file.state == "PROCESSING":
            file.polls_left -= 1
            if file.polls_left <= 0:
                file.state = "ACTIVE"
        self._send_json(200, file.resource(self.fake.url))


# --- image links ---------------------------------------------------------------------------------

ImageRoute = tuple[int, str, bytes, dict[str, str]]  # status, Content-Type, body, extra headers


class ImageServer:
    """A loopback web server for image-link tests: `routes` maps a path to its answer (404 else);
    `drip` maps a path to (image bytes, seconds between 64-byte pieces): a link that answers slowly.
    `served` counts the body bytes sent."""

    def __init__(self, routes: dict[str, ImageRoute], drip: dict[str, tuple[bytes, float]] | None = None) -> None:
        outer = self
        self.drip = drip or {}
        self.served = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _drip(self, data: bytes, delay: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for at in range(0, len(data), 64):
                        self.wfile.write(data[at : at + 64])
                        self.wfile.flush()
                        time.sleep(delay)
                except OSError:  # the client gave up
                    pass

            def do_GET(self) -> None:
                if self.path in outer.drip:
                    return self._drip(*outer.drip[self.path])
                status, ctype, data, headers = outer.routes.get(self.path, (404, "text/plain", b"no", {}))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v.encode().decode("latin-1"))  # UTF-8 on the wire, as servers send it
                self.end_headers()
                try:
                    self.wfile.write(data)
                except OSError:  # the client stopped reading (a size cap)
                    return
                with outer.lock:
                    outer.served += len(data)

        self.routes = routes
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
