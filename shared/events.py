"""Open WebUI 0.12.4 events: typed builders, a per-request emitter, and the wire form.

Only event types and fields that the 0.12.4 frontend handles are built here
(Chat.svelte:1468-1802). Plugins never write event dicts by hand.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypedDict

_EVENTS_LOG = logging.getLogger("openwebui_pack.events")


class EventPayload(TypedDict):
    type: str
    data: Any


EventEmitter = Callable[[EventPayload], Awaitable[Any]]
EventCaller = Callable[[EventPayload], Awaitable[Any]]

NotificationType = Literal["info", "success", "warning", "error"]
StatusAction = Literal[
    "web_search",
    "knowledge_search",
    "web_search_queries_generated",
    "queries_generated",
    "sources_retrieved",
]


# --- builders ---------------------------------------------------------------


def status(  # noqa: PLR0913 - one keyword per field of Open WebUI's status event
    description: str,
    *,
    done: bool = False,
    hidden: bool = False,
    action: StatusAction | None = None,
    urls: list[str] | None = None,
    items: list[dict[str, str]] | None = None,  # web_search sites {"title", "link"}: 0.12.4 lists titles
    query: str | None = None,
    queries: list[str] | None = None,
    count: int | None = None,
) -> EventPayload:
    """A status line under the message; the last one is shown, `done=False` shimmers."""
    data: dict[str, Any] = {"description": description, "done": done, "hidden": hidden}
    if action is not None:
        data["action"] = action
    if urls is not None:
        data["urls"] = list(urls)
    if items is not None:
        data["items"] = [dict(item) for item in items]
    if query is not None:
        data["query"] = query
    if queries is not None:
        data["queries"] = list(queries)
    if count is not None:
        data["count"] = count
    return {"type": "status", "data": data}


def notification(content: str, type: NotificationType = "info") -> EventPayload:
    """A toast. The UI reads the key `content` (a `message` key shows an empty toast)."""
    return {"type": "notification", "data": {"type": type, "content": content}}


def citation(
    documents: list[str],
    *,
    name: str,
    url: str | None = None,
    metadata: list[dict[str, Any]] | None = None,
    event_type: Literal["citation", "source"] = "citation",
) -> EventPayload:
    """A source shown under the reply; persisted with the message (it has no `type` key).

    Citations are grouped by `metadata[i]["source"]`, so each entry gets one; an http(s)
    source becomes a link.
    """
    src = url or name
    meta = [dict(m) for m in metadata] if metadata else [{} for _ in documents]
    if len(meta) != len(documents):
        raise ValueError("citation: metadata must have one entry per document")
    for m in meta:
        m.setdefault("source", src)
        m.setdefault("name", name)
        if url:
            m.setdefault("url", url)
    source: dict[str, Any] = {"name": name, "id": src}
    if url:
        source["url"] = url
    return {"type": event_type, "data": {"document": list(documents), "metadata": meta, "source": source}}


def code_execution(
    id: str,
    *,
    name: str,
    code: str,
    language: str = "python",
    output: str | None = None,
    error: str | None = None,
    files: list[dict[str, Any]] | None = None,
) -> EventPayload:
    """A code-execution card, upserted by `id`; not persisted (its data has a `type` key)."""
    result: dict[str, Any] = {}
    if output is not None:
        result["output"] = output
    if error is not None:
        result["error"] = error
    if files is not None:
        result["files"] = list(files)
    data = {"type": "code_execution", "id": id, "name": name, "code": code, "language": language}
    data["result"] = result
    return {"type": "citation", "data": data}


class FileRef(TypedDict, total=False):
    type: Literal["image", "file"]
    url: str
    name: str
    size: int
    content_type: str


def files(items: list[FileRef]) -> EventPayload:
    """Files attached to the message; replaces the message's file list in the UI."""
    return {"type": "files", "data": {"files": [dict(f) for f in items]}}


def embeds(items: list[str], *, replace: bool = False) -> EventPayload:
    """HTML snippets or URLs rendered in sandboxed iframes under the message."""
    return {"type": "embeds", "data": {"embeds": list(items), "replace": replace}}


def chat_title(title: str) -> EventPayload:
    """Sets the chat title in the UI (data is a plain string; not persisted by the emitter)."""
    return {"type": "chat:title", "data": title}


def follow_ups(suggestions: list[str]) -> EventPayload:
    return {"type": "chat:message:follow_ups", "data": {"follow_ups": list(suggestions)}}


def message_error(content: str) -> EventPayload:
    """Shows an error block on the message."""
    return {"type": "chat:message:error", "data": {"error": {"content": content}}}


def message(content: str) -> EventPayload:
    """Appends to the message's `content`.

    Does NOT change the visible reply in 0.12.4: the UI renders the structured `output`,
    and the final save overwrites `content` (Open WebUI 0.12.4, open_webui/socket/main.py and
    frontend Chat.svelte). Return or yield text instead.
    """
    return {"type": "message", "data": {"content": content}}


def replace(content: str) -> EventPayload:
    """Replaces the message's `content`.

    Does NOT change the visible reply in 0.12.4 (same reason as `message`); an Action edits a
    message by returning `{"messages": [{"id": ..., "content": ...}]}`.
    """
    return {"type": "replace", "data": {"content": content}}


def confirmation(title: str, message: str) -> EventPayload:
    return {"type": "confirmation", "data": {"title": title, "message": message}}


def input_request(title: str, message: str, placeholder: str = "", value: str = "") -> EventPayload:
    return {
        "type": "input",
        "data": {"title": title, "message": message, "placeholder": placeholder, "value": value},
    }


def execute_request(code: str) -> EventPayload:
    return {"type": "execute", "data": {"code": code}}


def wire(event: EventPayload) -> dict[str, EventPayload]:
    """The chunk an OpenAI-style stream carries so Open WebUI turns it into a UI event.

    For the Pipelines server, Hayhooks or any OpenAI-compatible server: yield this dict
    (or send it as one `data:` line) and Open WebUI 0.12.4's streaming middleware
    (open_webui/utils/middleware.py) emits `event` to the chat.
    """
    return {"event": event}


def replace_streamed_text(text: str) -> dict[str, Any]:
    """A stream item (yielded by a pipe, not emitted) that replaces the reply's streamed text as a whole.

    Open WebUI reads Responses API events inside a Chat Completions stream: a
    `response.output_text.done` without `output_index` sets the text of the last output item, the
    message being streamed, and the output items are what it stores and shows (0.8.12 and 0.10.2:
    open_webui/utils/middleware.py, 0.12.4: open_webui/utils/response.py,
    handle_responses_streaming_event). 0.10.2 drops `response.output_item.done` there, so this is
    the event every version from 0.8 takes. 0.6.43 builds the message from the streamed text alone
    and ignores it: the reply keeps its text without the marks, and its sources are listed."""
    return {"type": "response.output_text.done", "content_index": 0, "text": text}


# --- sending -------------------------------------------------------------------


async def send(event_emitter: EventEmitter | None, event: EventPayload) -> bool:
    """Send one event through `__event_emitter__`; False when there is none or it failed (logged).

    Never raises: a broken socket must not break the reply the user is waiting for.
    """
    if event_emitter is None:
        return False
    try:
        await event_emitter(event)
    except Exception:
        _EVENTS_LOG.exception("emitting %s event failed", event.get("type"))
        return False
    return True


# --- status coalescing ---------------------------------------------------------


class StatusGate:
    """The status coalescing rule on its own: no event loop, no clock (the caller passes `now`).

    Each status costs Open WebUI 0.12.4 a socket emit and a database write (the message's
    `statusHistory`), so updates closer together than `interval` seconds are coalesced: `offer`
    returns the event when it may go out now, or holds it (the latest held one wins) and returns
    None; `due` hands back the held one once its slot has come, `take` hands it back at once. A
    `done=True` status, or any status when `interval <= 0`, goes out at once and drops what is
    held (it supersedes it). The caller reports every send with `sent(now)`.
    """

    def __init__(self, interval: float = 0.0) -> None:
        self.interval = interval
        self.last = float("-inf")
        self.pending: EventPayload | None = None

    def offer(self, event: EventPayload, now: float) -> EventPayload | None:
        if event["data"].get("done") or self.interval <= 0:
            self.pending = None
            return event
        if self.pending is None and now - self.last >= self.interval:
            return event
        self.pending = event
        return None

    def wait(self, now: float) -> float:
        """Seconds until a held status may go out."""
        return max(0.0, self.interval - (now - self.last))

    def due(self, now: float) -> EventPayload | None:
        """The held status, taken, when its slot has come; else None."""
        if self.pending is not None and now - self.last >= self.interval:
            return self.take()
        return None

    def take(self) -> EventPayload | None:
        event, self.pending = self.pending, None
        return event

    def sent(self, now: float) -> None:
        self.last = now


# --- per-request emitter ------------------------------------------------------


class Emitter:
    """Wraps `__event_emitter__` / `__event_call__` for one request.

    Emitting never raises into the plugin. Status updates closer together than
    `status_interval` seconds are coalesced (latest wins) and the pending one is sent
    when the interval ends; a `done=True` status is always sent at once, after anything
    pending that it does not supersede. Make one per request: it holds request state.
    """

    def __init__(
        self,
        event_emitter: EventEmitter | None = None,
        event_call: EventCaller | None = None,
        *,
        status_interval: float = 0.0,
        call_timeout: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit_fn = event_emitter
        self._call_fn = event_call
        self._interval = status_interval
        self._call_timeout = call_timeout
        self._clock = clock
        self._gate = StatusGate(status_interval)
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Why the last dialog got no answer, for a notice the user can act on; None if answered.
        self.call_problem: str | None = None

    @property
    def can_emit(self) -> bool:
        return self._emit_fn is not None

    @property
    def can_call(self) -> bool:
        return self._call_fn is not None

    async def emit(self, event: EventPayload) -> bool:
        """Send one event; False when there is no emitter or it failed (logged)."""
        return await send(self._emit_fn, event)

    async def status(self, description: str, *, done: bool = False, **fields: Any) -> None:
        event = status(description, done=done, **fields)
        if done or self._interval <= 0:
            self._cancel_flush()
            async with self._lock:
                await self._send_status(self._gate.offer(event, self._clock()) or event)
            return
        now = self._gate.offer(event, self._clock())
        if now is not None:
            async with self._lock:
                await self._send_status(now)
            return
        if self._flush_task is None:
            self._schedule_flush()

    async def flush(self) -> None:
        """Send a coalesced status now (call before returning if no final status follows)."""
        self._cancel_flush()
        async with self._lock:
            event = self._gate.take()
            if event is not None:
                await self._send_status(event)

    async def notify(self, content: str, type: NotificationType = "info") -> bool:
        return await self.emit(notification(content, type))

    async def _send_status(self, event: EventPayload) -> None:
        self._gate.sent(self._clock())
        await self.emit(event)

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            delay = self._gate.wait(self._clock())
            self._flush_handle = asyncio.get_running_loop().call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._flush_handle = None
        self._flush_task = asyncio.ensure_future(self._run_flush())

    async def _run_flush(self) -> None:
        try:
            async with self._lock:
                event = self._gate.take()
                if event is not None:
                    await self._send_status(event)
        finally:
            self._flush_task = None
        if self._gate.pending is not None:
            # It came in while this flush was sending: it gets the next slot.
            self._schedule_flush()

    def _cancel_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    # --- interactive calls: anything but a clear answer means "cancel" ---

    async def call(self, event: EventPayload, timeout: float | None = None) -> Any | None:
        """Send an `__event_call__`; None on no caller, error answer, exception or timeout.

        Then `call_problem` says which; it is None after an answer (a Cancel click included).
        """
        self.call_problem = None
        if self._call_fn is None:
            self.call_problem = "There is no open chat to ask in"
            return None
        limit = self._call_timeout if timeout is None else timeout
        try:
            answer = await asyncio.wait_for(self._call_fn(event), limit)
        except TimeoutError:
            _EVENTS_LOG.info("%s call got no answer within %.0f s", event["type"], limit)
            self.call_problem = f"No answer within {limit:g} s"
            return None
        except Exception:
            _EVENTS_LOG.exception("%s call failed", event["type"])
            self.call_problem = "The dialog failed"
            return None
        if isinstance(answer, dict) and "error" in answer:
            # e.g. "Client session disconnected." or the host's own timeout.
            _EVENTS_LOG.info("%s call answered with an error: %s", event["type"], answer["error"])
            self.call_problem = str(answer["error"]).rstrip(".") or "The dialog failed"
            return None
        return answer

    async def confirm(self, title: str, message: str, *, timeout: float | None = None) -> bool:
        answer = await self.call(confirmation(title, message), timeout)
        # Confirm sends True, Cancel sends False. After an `input` dialog in the same tab,
        # Confirm sends that dialog's stale text instead of True (Chat.svelte:5133-5140),
        # so a non-empty string is a click on Confirm too.
        return answer is True or (isinstance(answer, str) and answer != "")

    async def ask(
        self,
        title: str,
        message: str,
        placeholder: str = "",
        default: str = "",
        *,
        timeout: float | None = None,
    ) -> str | None:
        """The text the user entered (possibly ""), or None when cancelled or unanswered."""
        answer = await self.call(input_request(title, message, placeholder, default), timeout)
        return answer if isinstance(answer, str) else None

    async def execute(self, js: str, *, timeout: float | None = None) -> object | None:
        """Run JavaScript in the user's tab; its return value, or None."""
        return await self.call(execute_request(js), timeout)
