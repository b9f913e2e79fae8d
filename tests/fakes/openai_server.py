"""A fake OpenAI-compatible chat server on 127.0.0.1, for unit and host tests.

    with FakeOpenAI() as fake:                  # or fake.start() / fake.stop()
        fake.url                                # "http://127.0.0.1:PORT/v1" (OpenAI base URL)
        fake.set("fake-gpt", reply="hello", latency=0.5)
        fake.set("flaky", fail_status=429, fail_times=2)      # 2 failures, then the reply
        fake.set("caller", tool_calls=[{"name": "count_words", "arguments": {"text": "a b"}}])
        fake.set("gone", fail_mode="drop")                    # hangs up without answering
        fake.set("agent", tool_calls=[...], tool_reply="42")  # tool call first, "42" once the result is back
        fake.set("flaky-stream", cut_after=5)                 # 5 well-formed chunks, then the connection drops
        fake.requests                           # every request seen: RecordedRequest(method, path, headers, json)

Wire format (from the OpenAI API reference and the openai-python types):
- `GET /v1/models` -> `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`.
- `POST /v1/chat/completions`:
  - non-stream -> a `chat.completion` object (`choices[0].message`, `finish_reason`, `usage`);
  - `"stream": true` -> `text/event-stream` lines `data: {chat.completion.chunk}` then `data: [DONE]`;
    the first chunk carries `delta.role`, the last one `finish_reason` (and `usage` when
    `stream_options.include_usage` is set);
  - tool calls: while the conversation has no `role: tool` message after the last user turn, a model
    with `tool_calls` answers with them (`finish_reason: "tool_calls"`; streamed as `delta.tool_calls`
    fragments: id/type/name first, then the arguments in pieces); afterwards it answers with `tool_reply`
    (str or fn(body); default `reply`), as a Haystack Agent's second LLM call expects;
  - `cut_after` (streams only): the first N chunks of the stream exactly as a healthy answer would
    send them, then the connection closes without the finishing chunk, `[DONE]` or the chunked-encoding
    terminator: a provider dropping mid-reply (the SDK client sees an incomplete body);
  - failures -> the HTTP status with `{"error": {"message", "type", "param", "code"}}`, or `fail_body`
    as it is (an HTML error page, say); `fail_mode` breaks the transport instead: "drop" closes the
    connection without an answer, "garbage" answers 200 with a body that is not JSON, "cut" starts
    the stream (or the JSON body) and closes the connection halfway.
- A model that was never `set` answers `"<model> says: <last user text>"`; an unknown model only fails
  when `strict_models` is true (404 `model_not_found`, like OpenAI).
- `api_key` (optional): requests without `Authorization: Bearer <api_key>` get 401 `invalid_api_key`.

Stdlib only; the server runs in a daemon thread and binds 127.0.0.1 only.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[[dict], str]

ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    at: float = field(default_factory=time.monotonic)


@dataclass
class Behaviour:
    """How one model answers. Every field can be changed with FakeOpenAI.set()."""

    reply: Reply | None = None  # str, or a function of the request body; None = the echo default
    latency: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between streamed chunks
    chunk_size: int = 8  # characters per streamed content chunk
    fail_status: int | None = None  # HTTP status to fail with
    fail_message: str = "The fake server was told to fail."
    fail_times: int | None = None  # fail only the first N requests (None = always)
    fail_body: str | None = None  # sent as it is (text/html) instead of the JSON error
    fail_mode: str | None = None  # "drop" | "garbage" | "cut": a broken transport (see the module docstring)
    tool_calls: list[dict] | None = None  # [{"name": str, "arguments": dict | str, "id"?: str}]
    reasoning: str | None = None  # sent as delta.reasoning_content before the text
    usage: dict | None = None
    # Stream these instead of `reply`, as the Pipelines server sends what a pipeline yields:
    # a str becomes a content chunk, a dict is sent as its own `data:` line (e.g. {"event": ...}).
    stream_items: list[str | dict] | None = None
    tool_reply: Reply | None = None  # the answer once the conversation carries the tool result
    cut_after: int | None = None  # streams: drop the connection after this many chunks (every request)
    seen: int = 0  # requests answered so far (for fail_times)


def openai_error(status: int, message: str, *, param: str | None = None) -> dict:
    kind, code = ERROR_TYPES.get(status, ("api_error", None))
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            return str(content or "")
    return ""


def wants_tool_calls(messages: list[dict]) -> bool:
    """True while no tool result follows the last user message."""
    for message in reversed(messages or []):
        if message.get("role") == "tool":
            return False
        if message.get("role") == "user":
            return True
    return True


def tool_call_items(calls: list[dict]) -> list[dict]:
    items = []
    for index, call in enumerate(calls):
        arguments = call.get("arguments", {})
        items.append(
            {
                "index": index,
                "id": call.get("id") or f"call_{index}_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    return items


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up early (a cancelled run, a closed keep-alive connection) is expected
        # here, not an error worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 in a daemon thread, with a request log."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self._handler = handler
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("server is not started")
        return self._server.server_address[1]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        if self._server is not None:
            return self
        server = _QuietHTTPServer(("127.0.0.1", self._port), self._handler)
        server.owner = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.path.split("?")[0].endswith(path_suffix)]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Real servers (uvicorn, any asyncio server) set TCP_NODELAY; without it a small chunk on a
    # reused keep-alive connection waits ~40 ms for a delayed ACK, which would pass for our latency.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def owner(self):
        return self.server.owner  # type: ignore[attr-defined]

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    def record(self, body: Any) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner.record(RecordedRequest(self.command, self.path, headers, body))

    def send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorised(self) -> bool:
        key = getattr(self.owner, "api_key", None)
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self.send_json(401, openai_error(401, "Incorrect API key provided."))
        return False


class _ChatHandler(JsonHandler):
    def do_GET(self) -> None:
        self.record(None)
        if not self.authorised():
            return
        if self.path.split("?")[0].rstrip("/").endswith("/models"):
            self.send_json(200, {"object": "list", "data": self.owner.model_list()})
            return
        self.send_json(404, openai_error(404, f"Unknown path {self.path}"))

    def do_POST(self) -> None:
        body = self.read_json()
        self.record(body)
        if not self.authorised():
            return
        if not self.path.split("?")[0].rstrip("/").endswith("/chat/completions"):
            self.send_json(404, openai_error(404, f"Unknown path {self.path}"))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            self.send_json(400, openai_error(400, "'model' and 'messages' are required.", param="messages"))
            return
        fake: FakeOpenAI = self.owner
        model = str(body["model"])
        if fake.strict_models and model not in fake.behaviours:
            self.send_json(404, openai_error(404, f"The model `{model}` does not exist."))
            return
        behaviour, fail = fake.next_behaviour(model)
        if behaviour.latency:
            time.sleep(behaviour.latency)
        if fail and behaviour.fail_mode:
            self.break_transport(behaviour.fail_mode, bool(body.get("stream")))
            return
        if fail:
            status = behaviour.fail_status or 500
            if behaviour.fail_body is not None:
                self.send_raw(status, "text/html", behaviour.fail_body.encode())
            else:
                self.send_json(status, openai_error(status, behaviour.fail_message))
            return
        if body.get("stream"):
            self.stream(model, body, behaviour)
        else:
            self.send_json(200, completion(model, body, behaviour))

    def stream(self, model: str, body: dict, behaviour: Behaviour) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for index, chunk in enumerate(chunks(model, body, behaviour)):
                if behaviour.cut_after is not None and index >= behaviour.cut_after:
                    self.close_connection = True  # mid-stream drop: no finish chunk, no [DONE], no terminator
                    return
                if index and behaviour.chunk_delay:
                    time.sleep(behaviour.chunk_delay)
                self.write_chunk(f"data: {json.dumps(chunk)}\n\n")
            self.write_chunk("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-stream (a cancel test)

    def send_raw(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def break_transport(self, mode: str, stream: bool) -> None:
        self.close_connection = True
        if mode == "garbage":
            self.send_raw(200, "application/json", b"<html>not json {")
        elif mode == "cut" and stream:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.write_chunk('data: {"choices": [{"index": 0, "delta": {"content": "Half"}}]}\n\n')
        elif mode == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "400")
            self.end_headers()
            self.wfile.write(b'{"choices": [{"mess')
            self.wfile.flush()
        # "drop": nothing at all; the connection closes when the handler returns

    def write_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def reply_text(model: str, body: dict, behaviour: Behaviour) -> str:
    reply = behaviour.reply
    if behaviour.tool_reply is not None and not wants_tool_calls(body.get("messages", [])):
        reply = behaviour.tool_reply
    if reply is None:
        return f"{model} says: {last_user_text(body.get('messages', []))}"
    if callable(reply):
        return reply(body)
    return reply


def usage_of(behaviour: Behaviour, text: str) -> dict:
    if behaviour.usage is not None:
        return behaviour.usage
    completion_tokens = max(1, len(text.split()))
    return {"prompt_tokens": 10, "completion_tokens": completion_tokens, "total_tokens": 10 + completion_tokens}


def completion(model: str, body: dict, behaviour: Behaviour) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if behaviour.tool_calls and body.get("tools") is not None and wants_tool_calls(body["messages"]):
        items = tool_call_items(behaviour.tool_calls)
        message["tool_calls"] = [{k: v for k, v in item.items() if k != "index"} for item in items]
        finish, text = "tool_calls", ""
    else:
        text = reply_text(model, body, behaviour)
        message["content"] = text
        finish = "stop"
    if behaviour.reasoning:
        message["reasoning_content"] = behaviour.reasoning
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage_of(behaviour, text),
    }


def chunks(model: str, body: dict, behaviour: Behaviour) -> Iterator[dict]:
    ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict, finish: str | None = None, **extra: Any) -> dict:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            **extra,
        }

    yield chunk({"role": "assistant", "content": ""})
    if behaviour.reasoning:
        yield chunk({"reasoning_content": behaviour.reasoning})
    if behaviour.tool_calls and body.get("tools") is not None and wants_tool_calls(body["messages"]):
        text, finish = "", "tool_calls"
        for item in tool_call_items(behaviour.tool_calls):
            arguments = item["function"]["arguments"]
            head = {**item, "function": {"name": item["function"]["name"], "arguments": ""}}
            yield chunk({"tool_calls": [head]})
            for start in range(0, len(arguments), 16):
                piece = {"index": item["index"], "function": {"arguments": arguments[start : start + 16]}}
                yield chunk({"tool_calls": [piece]})
    elif behaviour.stream_items is not None:
        text, finish = "", "stop"
        for item in behaviour.stream_items:
            if isinstance(item, dict):
                yield item
            else:
                text += item
                yield chunk({"content": item})
    else:
        text, finish = reply_text(model, body, behaviour), "stop"
        size = max(1, behaviour.chunk_size)
        for start in range(0, len(text), size):
            yield chunk({"content": text[start : start + size]})
    yield chunk({}, finish)
    if (body.get("stream_options") or {}).get("include_usage"):
        last = chunk({})
        last["choices"] = []
        last["usage"] = usage_of(behaviour, text)
        yield last


class FakeOpenAI(LoopbackServer):
    """OpenAI-compatible chat completions; see the module docstring."""

    def __init__(self, models: tuple[str, ...] = ("fake-gpt",), *, api_key: str | None = None, port: int = 0) -> None:
        super().__init__(_ChatHandler, port)
        self.api_key = api_key
        self.strict_models = False
        self.behaviours: dict[str, Behaviour] = {m: Behaviour() for m in models}

    @property
    def url(self) -> str:
        """The OpenAI base URL (ends in /v1)."""
        return f"{self.base}/v1"

    def set(self, model: str, **changes: Any) -> Behaviour:
        """Add the model if new, then change its behaviour (fields of Behaviour); resets fail_times counting."""
        with self.lock:
            behaviour = self.behaviours.setdefault(model, Behaviour())
            for key, value in changes.items():
                if not hasattr(behaviour, key):
                    raise TypeError(f"unknown behaviour field {key!r}")
                setattr(behaviour, key, value)
            behaviour.seen = 0
            return behaviour

    def reset(self, model: str | None = None) -> None:
        """Forget behaviours (all, or one model's) and keep the model list."""
        with self.lock:
            for name in [model] if model else list(self.behaviours):
                self.behaviours[name] = Behaviour()

    def snapshot(self) -> dict[str, Behaviour]:
        with self.lock:
            return {name: dataclasses.replace(b) for name, b in self.behaviours.items()}

    def restore(self, snapshot: dict[str, Behaviour]) -> None:
        with self.lock:
            self.behaviours = {name: dataclasses.replace(b) for name, b in snapshot.items()}

    def remove(self, model: str) -> None:
        with self.lock:
            self.behaviours.pop(model, None)

    def model_list(self) -> list[dict]:
        with self.lock:
            names = list(self.behaviours)
        return [{"id": name, "object": "model", "created": 1700000000, "owned_by": "fake"} for name in names]

    def next_behaviour(self, model: str) -> tuple[Behaviour, bool]:
        """The model's behaviour and whether this request fails; counts the request."""
        with self.lock:
            behaviour = self.behaviours.get(model) or Behaviour()
            behaviour.seen += 1
            fail = (behaviour.fail_status is not None or behaviour.fail_mode is not None) and (
                behaviour.fail_times is None or behaviour.seen <= behaviour.fail_times
            )
            return behaviour, fail

    def chat_requests(self, model: str | None = None) -> list[dict]:
        """The JSON bodies of the chat completion requests (for one model, or all)."""
        return [
            r.json
            for r in self.requests_to("/chat/completions")
            if isinstance(r.json, dict) and (model is None or r.json.get("model") == model)
        ]


if __name__ == "__main__":
    import sys

    with FakeOpenAI(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as fake:
        print(f"fake OpenAI at {fake.url}", flush=True)
        threading.Event().wait()
