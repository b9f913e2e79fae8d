"""The core of the pack's Hayhooks pipeline wrappers: Open WebUI events on a Hayhooks stream,
coalesced statuses, configuration from the environment, and a reply that always ends readably.

Hayhooks 2.1.0 serves a wrapper's chat method as an OpenAI model; Open WebUI 0.12.4 talks to it
as an OpenAI connection and turns every `data: {"event": ...}` line of the stream into a UI event
(open_webui/utils/middleware.py). Nothing here imports haystack or hayhooks: the wrappers in
plugins/hayhooks/ do, and hand their chunks to `relay` as plain objects read by attribute.
"""

import json
import logging
import math
import os
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

from shared.events import EventPayload, StatusGate, notification, status
from shared.hayhooks_files import strip_file_blocks
from shared.messages import for_reader
from shared.secrets import mask_key_shapes, redact
from shared.text import content_text, strip_blocks

_HAYHOOKS_LOG = logging.getLogger("openwebui_pack.hayhooks")

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT = 120.0
# One retry covers a dropped connection or a passing 5xx before any text is streamed; the
# OpenAI client's default (5 retries with backoff) kept a user waiting 14 s for an error.
DEFAULT_MAX_RETRIES = 1
DEFAULT_STATUS_INTERVAL = 0.5
# Header names a connection can send (Open WebUI 0.12.4 connection "headers" templates).
TASK_HEADER = "x-owui-task"  # {{TASK}}: title_generation, follow_up_generation, ... ; empty for a chat turn
BASE_URL_HEADER = "x-owui-base-url"  # a static value: Open WebUI's own address, for reading files
ROLE_HEADER = "x-openwebui-user-role"  # sent with ENABLE_FORWARD_USER_INFO_HEADERS


# --- events on the Hayhooks wire -----------------------------------------------------------------


class UIEvent:
    """One Open WebUI event on a Hayhooks stream.

    fastapi-openai-compat 1.4 (Hayhooks 2.1.0) writes any object with `to_event_dict()` as
    `data: {"event": ...}`; a plain dict would go out as Python text. Hayhooks' own event classes
    validate `data` and drop the 0.12.4 status fields (`action`, `urls`, `count`, ...), so this one
    hands the payload over unchanged.
    """

    __slots__ = ("payload",)

    def __init__(self, payload: EventPayload) -> None:
        self.payload = payload

    @property
    def type(self) -> str:
        return self.payload["type"]

    def to_event_dict(self) -> dict[str, Any]:
        return dict(self.payload)

    def __repr__(self) -> str:
        return f"UIEvent({self.payload!r})"


Item = UIEvent | str  # what a wrapper's stream yields: events and reply text


# --- configuration ---------------------------------------------------------------------------------


def _number(env: Mapping[str, str], name: str, default: float, low: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low:
        _HAYHOOKS_LOG.warning("%s=%r is not a number >= %g; using %g", name, raw, low, default)
        return default
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    _HAYHOOKS_LOG.warning("%s=%r is not true or false; using %s", name, raw, default)
    return default


@dataclass(frozen=True)
class PackConfig:
    """Settings read from the environment of `hayhooks run` (the wrappers have no valves)."""

    api_key: str = ""
    base_url: str | None = None  # None: api.openai.com
    model: str = DEFAULT_MODEL
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    status_interval: float = DEFAULT_STATUS_INTERVAL  # seconds between two status updates; 0: no coalescing
    progress_every: int = 0  # a "writing" status every N streamed chunks; 0: none
    notify_success: bool = False  # a success toast at the end of a turn
    max_file_bytes: int = 10 * 1024 * 1024
    max_files: int = 20
    fetch_files: bool = True  # read attached files from Open WebUI when the connection allows it

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, progress_every: int = 0) -> "PackConfig":
        """`progress_every`: the wrapper's default for HAYHOOKS_PACK_PROGRESS_EVERY."""
        env = os.environ if env is None else env
        return cls(
            api_key=env.get("OPENAI_API_KEY", "").strip(),
            base_url=env.get("OPENAI_BASE_URL", "").strip().rstrip("/") or None,
            model=env.get("HAYHOOKS_PACK_MODEL", "").strip() or DEFAULT_MODEL,
            timeout=_number(env, "HAYHOOKS_PACK_TIMEOUT", DEFAULT_TIMEOUT, 1),
            max_retries=int(_number(env, "HAYHOOKS_PACK_MAX_RETRIES", DEFAULT_MAX_RETRIES, 0)),
            status_interval=_number(env, "HAYHOOKS_PACK_STATUS_INTERVAL", DEFAULT_STATUS_INTERVAL, 0),
            progress_every=int(_number(env, "HAYHOOKS_PACK_PROGRESS_EVERY", progress_every, 0)),
            notify_success=_switch(env, "HAYHOOKS_PACK_NOTIFY", False),
            max_file_bytes=int(_number(env, "HAYHOOKS_PACK_MAX_FILE_MB", 10, 0.001) * 1024 * 1024),
            max_files=int(_number(env, "HAYHOOKS_PACK_MAX_FILES", 20, 1)),
            fetch_files=_switch(env, "HAYHOOKS_PACK_FETCH_FILES", True),
        )

    @property
    def problem(self) -> str | None:
        """Why no request can succeed (for administrators), or None."""
        if not self.api_key and self.base_url is None:
            return "OPENAI_API_KEY is not set in the environment of `hayhooks run`"
        return None

    @property
    def key_for_client(self) -> str:
        """The key the OpenAI client gets: a local OpenAI-compatible server may need none."""
        return self.api_key or "no-key"


# --- requests ------------------------------------------------------------------------------------------


def header(headers: Any, name: str) -> str:
    """A request header's value ("" when absent); `headers` is Starlette's Headers or None."""
    if headers is None:
        return ""
    try:
        return str(headers.get(name) or "").strip()
    except Exception:
        return ""


def is_task(body: Mapping[str, Any], headers: Any = None) -> bool:
    """Open WebUI's background tasks (title, tags, follow-ups, queries) call with `stream: false`;
    a connection with header templates also names the task in X-OWUI-Task."""
    return not body.get("stream", False) or bool(header(headers, TASK_HEADER))


def reader_is_admin(headers: Any) -> bool:
    return header(headers, ROLE_HEADER).lower() == "admin"


def chat_history(messages: Any) -> list[dict[str, str]]:
    """The conversation as `{"role", "text"}` items for a prompt: system, user and assistant text;
    tool messages left out, and the blocks a reply shows but a model must not read again
    (tool-call and reasoning `<details>`) taken out of earlier answers."""
    history = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            continue
        text = content_text(message.get("content"))
        if role == "assistant":
            text = strip_blocks(text, details="all").strip()
        if text.strip():
            history.append({"role": role, "text": text})
    return history


def last_user_text(messages: Any) -> str:
    for item in reversed(chat_history(messages)):
        if item["role"] == "user":
            return item["text"]
    return ""


_CONTEXT_END = re.compile(r"</context>", re.IGNORECASE)


def question_text(text: str) -> str:
    """The user's own words in a message Open WebUI wrapped: its RAG template and `<context>`
    block come first (open_webui/utils/middleware.py, apply_source_context_to_messages), an
    `<attached_files>` block too."""
    last = None
    for last in _CONTEXT_END.finditer(text):  # noqa: B007 - the last one is wanted
        pass
    after = text[last.end() :] if last is not None else text
    return strip_file_blocks(after).strip() or text.strip()


# --- failures ----------------------------------------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _status_code(excs: list[BaseException]) -> int | None:
    for e in excs:
        code = getattr(e, "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _class_names(excs: list[BaseException]) -> set[str]:
    return {cls.__name__ for e in excs for cls in type(e).__mro__}


_BY_STATUS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (lambda c: c in (401, 403), "The model service turned down the Hayhooks server's credentials."),
    (lambda c: c == 404, "The model service does not offer the model this server is set up for."),
    (lambda c: c == 429, "The model service is busy right now; try again in a moment."),
    (lambda c: c >= 500, "The model service had a problem (HTTP {code}); try again in a moment."),
    (lambda c: c >= 400, "The model service refused the request (HTTP {code})."),
)


def describe_failure(exc: BaseException, timeout: float) -> str:
    """A plain sentence for what went wrong talking to the model (no class names, no keys).

    Read by duck typing across the exception chain: the OpenAI client's errors carry
    `status_code`; timeouts and broken connections are told apart by their class names
    (openai, httpx and the standard library name them that way).
    """
    excs = _chain(exc)
    code = _status_code(excs)
    if code is not None:
        for test, sentence in _BY_STATUS:
            if test(code):
                return sentence.format(code=code)
    names = _class_names(excs)
    if names & {"APITimeoutError", "TimeoutException", "TimeoutError", "ReadTimeout"}:
        return f"The model service did not answer within {timeout:g} seconds."
    if names & {"RemoteProtocolError", "ReadError", "IncompleteRead", "ChunkedEncodingError"}:
        return "The connection to the model service broke off."
    if names & {"APIConnectionError", "ConnectError", "ConnectionError", "TransportError", "OSError"}:
        return "The model service could not be reached."
    return "Something went wrong while writing the answer."


# --- tool-call blocks ------------------------------------------------------------------------------------


def tool_call_block(call_id: str, name: str, arguments: Any, result: Any) -> str:
    """A finished tool call as Open WebUI draws it: a collapsed "View Result from <name>" card.

    The attribute form Open WebUI 0.8.12 wrote into message content (open_webui/utils/middleware.py,
    escaped with html.escape); 0.12.4 stores tool calls as output items but still renders this
    block from text (frontend Markdown `details` extension + ToolCallDisplay, which HTML-decodes
    `arguments` and `result` and parses them as JSON). Starts on its own line, as the Markdown
    block tokenizer needs.
    """
    result_text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    attrs = (
        f'type="tool_calls" done="true" id="{escape(str(call_id))}" name="{escape(str(name))}" '
        f'arguments="{escape(json.dumps(arguments))}" '
        f'result="{escape(json.dumps(result_text, ensure_ascii=False))}" files="" embeds="{escape(json.dumps([]))}"'
    )
    return f"<details {attrs}>\n<summary>Tool Executed</summary>\n</details>\n"


@dataclass
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class ToolCallTracker:
    """Collects the streamed tool-call deltas of a model turn, so the full arguments are known
    when the model finishes asking (before the tools run): a hook's start callback only sees the
    first delta, where the arguments are still empty."""

    calls: dict[int, _PendingCall] = field(default_factory=dict)

    def observe(self, chunk: Any) -> list[tuple[str, str, dict[str, Any]]]:
        """Feed one chunk; the `(id, name, arguments)` of the calls complete with it."""
        for delta in getattr(chunk, "tool_calls", None) or []:
            index = getattr(delta, "index", None)
            call = self.calls.setdefault(index if isinstance(index, int) else len(self.calls), _PendingCall())
            call.id = call.id or str(getattr(delta, "id", None) or "")
            call.name = call.name or str(getattr(delta, "tool_name", None) or "")
            call.arguments += str(getattr(delta, "arguments", None) or "")
        done = getattr(chunk, "finish_reason", None) == "tool_calls" or getattr(chunk, "tool_call_result", None)
        if not done or not self.calls:
            return []
        ready = []
        for call in self.calls.values():
            try:
                arguments = json.loads(call.arguments) if call.arguments.strip() else {}
            except ValueError:
                arguments = {}
            ready.append((call.id, call.name, arguments if isinstance(arguments, dict) else {}))
        self.calls = {}
        return ready


# --- one chat turn ------------------------------------------------------------------------------------


def elapsed_text(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


_WORD = re.compile(r"\S+")


class Turn:
    """One streamed chat turn: coalesced statuses, the text streamed so far, a readable end.

    Status updates go through the Emitter's rule (shared.events.StatusGate): closer together than
    `status_interval` seconds they are coalesced, the latest wins, and a held one goes out with
    the next item of the stream once its slot has come; a `done` status always goes out.
    `clock` is injectable so tests need no sleeps.
    """

    def __init__(
        self,
        config: PackConfig,
        *,
        admin: bool = False,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[int], str] | None = None,
    ) -> None:
        self.config = config
        self.admin = admin
        self.clock = clock
        self.started = clock()
        self.gate = StatusGate(config.status_interval)
        self.progress = progress  # words so far -> the "writing" status line
        self.parts: list[str] = []
        self.chunks = 0
        self.words = 0
        self._midword = False
        self.failed = False
        self.statuses_sent = 0

    # events
    def status(self, description: str, *, done: bool = False, **fields: Any) -> list[UIEvent]:
        return self.offer(status(description, done=done, **fields))

    def offer(self, event: EventPayload) -> list[UIEvent]:
        if event.get("type") != "status":
            return [UIEvent(event)]
        out = self.gate.offer(event, self.clock())
        return [self._sent(out)] if out is not None else []

    def due(self) -> list[UIEvent]:
        """A held status whose slot has come."""
        out = self.gate.due(self.clock())
        return [self._sent(out)] if out is not None else []

    def flush(self) -> list[UIEvent]:
        out = self.gate.take()
        return [self._sent(out)] if out is not None else []

    def step(self, description: str, **fields: Any) -> list[UIEvent]:
        """The status of a slow step (a model call), sent at once, after anything held.

        A wrapper can only send while it yields, and nothing is yielded while it waits for the
        model: a status held back by the interval would sit unseen until the step ends and then be
        superseded, so the reader would never see "Using 3 documents" or "Writing the answer". This
        costs at most two statuses per step, never per chunk."""
        out = self.flush()
        self.gate.pending = None
        out.append(self._sent(status(description, **fields)))
        return out

    def _sent(self, event: EventPayload) -> UIEvent:
        self.gate.sent(self.clock())
        self.statuses_sent += 1
        return UIEvent(event)

    @staticmethod
    def notify(content: str, type: str = "info") -> UIEvent:
        return UIEvent(notification(content, type))  # type: ignore[arg-type]

    # text
    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add_text(self, piece: str) -> str:
        self.parts.append(piece)
        found = _WORD.findall(piece)
        self.words += len(found) - (1 if found and self._midword and not piece[:1].isspace() else 0)
        self._midword = bool(piece) and not piece[-1:].isspace()
        return piece

    def separated(self, block: str) -> str:
        """`block` (a `<details>` card) on its own lines after the text so far, to be yielded as
        the next piece of text (`relay` counts it in)."""
        text = self.text
        lead = "" if not text or text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
        return lead + block + "\n"

    def chunk_progress(self) -> list[UIEvent]:
        """Count one streamed chunk; every `progress_every` chunks, a "writing" status."""
        self.chunks += 1
        every = self.config.progress_every
        if self.progress is None or every <= 0 or self.chunks % every:
            return []
        return self.status(self.progress(self.words))

    def elapsed(self) -> float:
        return self.clock() - self.started

    # the end
    def finish(self, description: str, *, success: str | None = None) -> list[UIEvent]:
        """The closing status (and the optional success toast): nothing held is sent after it."""
        out = self.status(description, done=True)
        if success and self.config.notify_success:
            out.append(self.notify(success, "success"))
        return out

    def fail(self, exc: BaseException | None, sentence: str | None = None, detail: str = "") -> list[Item]:
        """End the turn readably: a closing status, one error toast, a last line; text kept."""
        self.failed = True
        if exc is not None:
            _HAYHOOKS_LOG.error("chat turn failed: %s", mask_key_shapes(f"{type(exc).__name__}: {exc}"), exc_info=exc)
            sentence = sentence or describe_failure(exc, self.config.timeout)
            detail = detail or redact(mask_key_shapes(str(exc), 240), [self.config.api_key])
        sentence = sentence or "Something went wrong while writing the answer."
        message = for_reader(sentence, detail, admin=self.admin)
        out: list[Item] = [*self.status("Stopped: the answer could not be finished", done=True)]
        out.append(self.notify(message, "error"))
        if self.text.strip():
            out.append(self.add_text(f"\n\n_The answer is incomplete. {sentence}_"))
        else:
            out.append(self.add_text(sentence))
        return out


async def relay(
    turn: Turn,
    items: AsyncIterable[Any],
    *,
    tracker: ToolCallTracker | None = None,
    on_calls: Callable[[list[tuple[str, str, dict[str, Any]]]], list[Item]] | None = None,
) -> AsyncIterator[Item]:
    """What Hayhooks' streaming generator yields, made safe for Open WebUI.

    Text chunks become reply text; `UIEvent`s pass (statuses through the gate); strings from
    callbacks (tool-call cards) are text. Tool-call and tool-result chunks are dropped: passed on
    as OpenAI `tool_calls` deltas, Open WebUI would run its own tool loop on them and call the
    wrapper again and again (up to its 256-iteration limit). With a `tracker`, `on_calls` gets
    each finished set of calls, with full arguments, before the tools run.
    """
    async for item in items:
        for held in turn.due():
            yield held
        if isinstance(item, UIEvent):
            for out in turn.offer(item.payload):
                yield out
            continue
        if isinstance(item, str):
            if item:
                yield turn.add_text(item)
            continue
        if tracker is not None:
            ready = tracker.observe(item)
            if ready and on_calls is not None:
                for out in on_calls(ready):
                    yield out
        if getattr(item, "tool_calls", None) or getattr(item, "tool_call_result", None):
            continue
        content = getattr(item, "content", None)
        if isinstance(content, str) and content:
            yield turn.add_text(content)
            for out in turn.chunk_progress():
                yield out


async def guarded(turn: Turn, body: AsyncIterable[Item]) -> AsyncIterator[Item]:
    """`body`'s items; an exception in it ends the turn readably instead of cutting the stream
    (Open WebUI 0.12.4 stores an empty message when the stream breaks). Cancellation (the client
    left) is not caught."""
    try:
        async for item in body:
            yield item
    except Exception as exc:
        for item in turn.fail(exc):
            yield item


# --- Haystack pieces (imported lazily: this module loads without Haystack) ---------------------------

# ChatPromptBuilder template: the conversation as messages. Message text is a template *value*,
# so braces a user types are never rendered as Jinja.
HISTORY_TEMPLATE = """{% message role="system" %}{{ system_prompt }}{% endmessage %}
{% for m in history %}{% message role=m.role %}{{ m.text }}{% endmessage %}
{% endfor %}"""

SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely, in the language of the question."


def build_generator(config: PackConfig) -> Any:
    """Haystack's OpenAIChatGenerator with the pack's settings (explicit retries and timeout)."""
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.utils import Secret

    return OpenAIChatGenerator(
        api_key=Secret.from_token(config.key_for_client),
        model=config.model,
        api_base_url=config.base_url,
        timeout=config.timeout,
        max_retries=config.max_retries,
    )


def chat_messages(history: list[dict[str, str]], system_prompt: str = SYSTEM_PROMPT) -> list[Any]:
    """`history` as Haystack ChatMessages, after one system message (Open WebUI's own system
    prompt, when the conversation has one, comes after it and takes precedence)."""
    from haystack.dataclasses import ChatMessage

    make = {"system": ChatMessage.from_system, "user": ChatMessage.from_user, "assistant": ChatMessage.from_assistant}
    return [ChatMessage.from_system(system_prompt)] + [make[m["role"]](m["text"]) for m in history]


def reply_text(result: Any, component: str | None = None) -> str:
    """The first reply's text of a generator's (or a pipeline's `component`'s) result."""
    if component is not None:
        result = (result or {}).get(component) or {}
    replies = (result or {}).get("replies") or []
    text = getattr(replies[0], "text", None) if replies else None
    return text if isinstance(text, str) else ""


async def quick_reply(generator: Any, history: list[dict[str, str]], config: PackConfig, *, admin: bool) -> str:
    """One plain LLM call for `stream: false` (Open WebUI's title, tags and follow-up tasks):
    no events (Hayhooks drops them there), no tools; a failure is a sentence, never an HTTP 500."""
    if config.problem:
        return for_reader(NOT_CONFIGURED, config.problem, admin=admin)
    try:
        return reply_text(await generator.run_async(messages=chat_messages(history)))
    except Exception as exc:
        _HAYHOOKS_LOG.error("plain completion failed: %s", mask_key_shapes(str(exc)), exc_info=exc)
        return describe_failure(exc, config.timeout)


NOT_CONFIGURED = "The Hayhooks server is not set up to reach a model yet; ask your administrator."


# --- follow-ups and cited links ------------------------------------------------------------------------

FOLLOW_UP_COUNT = 3
_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https?://[^\s)]+)\)|(?<![(\w])(https?://[^\s<>()\[\]\"']+)")


def follow_up_request(question: str, answer: str) -> list[dict[str, str]]:
    """The history for one cheap LLM call that suggests follow-up questions."""
    return [
        {
            "role": "user",
            "text": (
                f"A user asked:\n{question[:2000]}\n\nThe assistant answered:\n{answer[:4000]}\n\n"
                f"Suggest {FOLLOW_UP_COUNT} short follow-up questions the user might ask next, in the language "
                "of the question, written as the user would ask them. Reply with a JSON array of strings only."
            ),
        }
    ]


def parse_follow_ups(text: str, limit: int = FOLLOW_UP_COUNT) -> list[str]:
    """Questions from the model's reply: a JSON array (possibly in a code fence), else one per line."""
    found: list[Any] = []
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        try:
            parsed = json.loads(text[start : end + 1])
            found = parsed if isinstance(parsed, list) else []
        except ValueError:
            found = []
    if not found:  # one question per line, list marks taken off
        lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line) for line in text.splitlines()]
        found = [line for line in lines if line.rstrip().endswith("?")]
    questions = []
    for item in found:
        q = " ".join(str(item).split()).strip("\"' ")
        if 3 <= len(q) <= 200 and q not in questions:
            questions.append(q)
    return questions[:limit]


def fallback_follow_ups(question: str) -> list[str]:
    """Sensible suggestions when the follow-up call fails."""
    q = question.lower()
    if q.startswith(("how", "wie", "comment")):
        return ["Can you show me an example?", "What are the steps, one by one?", "What are common mistakes here?"]
    if q.startswith(("why", "warum", "pourquoi")):
        return ["What are the main reasons?", "Are there counter-arguments?", "Can you give a concrete example?"]
    return ["Can you explain that in more detail?", "Can you give an example?", "What should I know next about this?"]


def cited_links(text: str, limit: int = 10) -> list[tuple[str, str]]:
    """`(title, url)` of the http(s) links an answer cites, in order, without duplicates."""
    links: OrderedDict[str, str] = OrderedDict()
    for title, url, bare in _LINK.findall(strip_blocks(text, details="all")):
        link = (url or bare).rstrip(".,;:!?")
        if link not in links:
            links[link] = title.strip() or link
    return [(title, url) for url, title in list(links.items())[:limit]]
