"""Gemini answers as OpenAI chat completions: text, thoughts, tool calls, finish, usage, sources.

One `Reply` collects an answer, fed chunk by chunk (streaming) or once (not streaming), so both
modes read Gemini's responses with the same code. Responses are read by attribute, as the
google-genai SDK returns them.
"""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from shared.attachments import MiB
from shared.events import Emitter, citation, replace_streamed_text
from shared.gemini import encode_call_id, enum_name, explain_error
from shared.gemini_media import REPLY_IMAGE_LIMIT, code_block, image_markdown, url_source_title
from shared.messages import for_reader
from shared.secrets import redact

_REPLY_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

NOTICE_LIMIT = 300  # characters of the error in the one-line notice that ends a cut-off reply
REPLY_MAX_BYTES = 4 * MiB  # text, thoughts and tool-call arguments of one reply, unless told otherwise
CUT_OFF_CONNECTION = "The reply was cut off: the connection to Gemini dropped."
# Google Search sources link through this redirect host, which says nothing about the site.
REDIRECT_HOSTS = ("vertexaisearch.cloud.google.com",)
SOURCE_STATUS = {"url": "Read {{count}} web pages", "maps": "Used {{count}} places from Google Maps"}
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
    "MAX_TOKENS": "the reply reached its length limit; ask it to continue, or for a shorter answer",
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


@dataclass(frozen=True)
class Support:
    """A stretch of the answer and the sources behind it. `start`/`end` are UTF-8 byte offsets
    into the answer text (the Gemini API's Segment indices are measured in bytes)."""

    start: int | None
    end: int | None
    text: str | None
    uris: tuple[str, ...]


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
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # uri -> title, domain, snippets
    queries: list[str] = field(default_factory=list)
    supports: list[Support] = field(default_factory=list)
    server_parts: list[dict[str, Any]] = field(default_factory=list)  # Google Search steps (Gemini 3)
    # Code Gemini wrote and has not reported the run of yet: (code, language); images seen.
    pending_code: tuple[str, str] | None = None
    images: int = 0
    images_left_out: int = 0
    # How many bytes of text, thoughts and tool-call arguments the reply may have, how many it has,
    # and whether it was cut off there (it then ends with a note).
    max_bytes: int = REPLY_MAX_BYTES
    size: int = 0
    cut: bool = False

    def room_for(self, text: str) -> str:
        """`text`, shortened (on a character boundary) to what the size limit still takes."""
        data = text.encode()
        if self.size + len(data) <= self.max_bytes:
            self.size += len(data)
            return text
        self.cut = True
        kept = data[: max(0, self.max_bytes - self.size)].decode("utf-8", "ignore")
        self.size = self.max_bytes
        return kept


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """`value` (a chunk, an event, a completion) with every secret redacted from its strings:
    everything the reply shows is built from Gemini's answer, which a gateway could make echo the key."""
    if not any(secret and len(secret) >= 4 for secret in secrets):
        return value
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secrets) for v in value]
    return value


def _safety_note(candidate: Any) -> str:
    hits = []
    for rating in getattr(candidate, "safety_ratings", None) or []:
        probability = enum_name(getattr(rating, "probability", ""))
        if getattr(rating, "blocked", False) or probability in ("HIGH", "MEDIUM"):
            hits.append(enum_name(getattr(rating, "category", "")).removeprefix("HARM_CATEGORY_").lower())
    return f" ({', '.join(hits)})" if hits else ""


def _looks_like_domain(text: str) -> bool:
    return "." in text and " " not in text and "/" not in text


def _site(uri: str, title: str, domain: str) -> str:
    """The site's domain: Gemini's own, a title that is a domain (the Gemini API's usual title),
    or the link's host unless it is Google's redirect."""
    if domain:
        return domain.removeprefix("www.")
    if _looks_like_domain(title):
        return title.removeprefix("www.")
    host = (urlsplit(uri).hostname or "").removeprefix("www.")
    return "" if any(host.endswith(h) for h in REDIRECT_HOSTS) else host


def source_name(uri: str, title: str | None, domain: str | None) -> tuple[str, str]:
    """(name shown for a source, its domain): the page title, with the site's domain when the
    title does not already say it ("Lisbon - Wikipedia (wikipedia.org)")."""
    title, site = (title or "").strip(), _site(uri, (title or "").strip(), (domain or "").strip())
    name = title or site or uri
    if site and site.lower() not in name.lower():
        name = f"{name} ({site})"
    return name, site


def _grounding(metadata: Any, reply: Reply) -> None:
    if metadata is None:
        return
    for query in getattr(metadata, "web_search_queries", None) or []:
        if query not in reply.queries:
            reply.queries.append(query)
    keys: list[str | None] = []
    for grounding_chunk in getattr(metadata, "grounding_chunks", None) or []:
        web = getattr(grounding_chunk, "web", None)
        place = getattr(grounding_chunk, "maps", None) if web is None else None
        found = web if web is not None else place
        uri = getattr(found, "uri", None) if found is not None else None
        keys.append(uri)
        if uri and uri not in reply.sources:
            name, site = source_name(uri, getattr(found, "title", None), getattr(web, "domain", None))
            about = getattr(place, "text", None) if place is not None else None
            kind = "web" if web is not None else "maps"
            reply.sources[uri] = {"title": name, "domain": site, "snippets": [about] if about else [], "kind": kind}
    for support in getattr(metadata, "grounding_supports", None) or []:
        segment = getattr(support, "segment", None)
        text = getattr(segment, "text", None)
        uris = tuple(
            keys[index]
            for index in getattr(support, "grounding_chunk_indices", None) or []
            if isinstance(index, int) and 0 <= index < len(keys) and keys[index]
        )
        for uri in uris:
            snippets = reply.sources[uri]["snippets"]
            if text and text not in snippets:
                snippets.append(text)
        found = Support(getattr(segment, "start_index", None), getattr(segment, "end_index", None), text, uris)  # type: ignore[arg-type]
        if uris and found not in reply.supports:
            reply.supports.append(found)


def _url_context(metadata: Any, reply: Reply) -> None:
    """The pages Gemini read for URL context, as sources, with why one could not be read."""
    for item in getattr(metadata, "url_metadata", None) or [] if metadata is not None else []:
        uri = getattr(item, "retrieved_url", None)
        if not isinstance(uri, str) or not uri or uri in reply.sources:
            continue
        name, site = source_name(uri, None, None)
        title = url_source_title(name, enum_name(getattr(item, "url_retrieval_status", None)))
        reply.sources[uri] = {"title": title, "domain": site, "snippets": [], "kind": "url"}


def shown_source_ids(sources: Any) -> list[str]:
    """The ids of the sources a message already shows, in the order Open WebUI numbers them:
    one per distinct `metadata[i].source` (else `source.id`), first come first
    (Open WebUI 0.12.4, frontend ContentRenderer.svelte getSourceIds and Citations.svelte)."""
    ids: list[str] = []
    for source in sources if isinstance(sources, list) else []:
        if not isinstance(source, dict):
            continue
        inner = source.get("source") if isinstance(source.get("source"), dict) else {}
        metadata = source.get("metadata") if isinstance(source.get("metadata"), list) else []
        for index, _ in enumerate(source.get("document") or []):
            meta = metadata[index] if index < len(metadata) and isinstance(metadata[index], dict) else {}
            sid = meta.get("source") or inner.get("id") or "N/A"
            if isinstance(sid, str) and sid not in ids:
                ids.append(sid)
    return ids


def _segment_end(data: bytes, text: str, support: Support) -> int | None:
    """Where a support's segment ends in the answer, as a byte offset on a character boundary.
    The offsets are trusted when the bytes they span are the segment's text; else the text is
    looked up (a proxy or an older model may count characters)."""
    start, end = support.start or 0, support.end
    if end is not None and 0 <= start < end <= len(data):
        spanned = data[start:end].decode("utf-8", "ignore")
        if not support.text or spanned.strip() == support.text.strip():
            while end < len(data) and data[end] & 0xC0 == 0x80:
                end += 1
            return end
    if support.text:
        at = text.find(support.text)
        if at >= 0:
            return len(text[: at + len(support.text)].encode())
    return None


def cite(text: str, reply: Reply, shown: list[str] | None = None) -> str:
    """The answer with Open WebUI's citation marks ("[1]", "[1][3]") after each grounded stretch.
    The numbers follow the order Open WebUI lists the message's sources: those it already shows
    (`shown`), then this reply's, one per distinct URL."""
    if not reply.supports or not reply.sources:
        return text
    order = list(shown or [])
    order += [uri for uri in reply.sources if uri not in order]
    numbers = {uri: order.index(uri) + 1 for uri in reply.sources}
    data = text.encode()
    marks: dict[int, list[int]] = {}
    for support in reply.supports:
        end = _segment_end(data, text, support)
        if end is None:
            continue
        at = marks.setdefault(end, [])
        at.extend(n for n in (numbers[u] for u in support.uris if u in numbers) if n not in at)
    pieces, last = [], 0
    for end in sorted(marks):
        pieces += [data[last:end], "".join(f"[{n}]" for n in sorted(marks[end])).encode()]
        last = end
    pieces.append(data[last:])
    return b"".join(pieces).decode("utf-8", "replace")


Delta = tuple[Literal["text", "thought", "tool_call", "image"], Any]


# Stores an image as an Open WebUI file: (MIME type, bytes) -> the URL that shows it.
ImageStore = Callable[[str, bytes], Awaitable[str]]


async def place_image(reply: Reply, value: tuple[int, int, str, bytes], store: ImageStore | None) -> str:
    """Store one image of the reply and put its markdown in its text slot; the text to show."""
    index, number, mime, data = value
    try:
        if store is None:
            raise RuntimeError("this call has no file store")
        text = image_markdown(await store(mime, data), number)
    except Exception as exc:  # the reply goes on without the image, and says so
        _REPLY_LOG.warning("storing image %s of a Gemini reply failed: %s: %s", number, type(exc).__name__, exc)
        text = f"\n\n⚠️ Image {number} could not be saved in Open WebUI, so it cannot be shown.\n\n"
    reply.text[index] = text
    return text


async def settle_reply(reply: Reply, deltas: list[Delta], store: ImageStore | None) -> None:
    """A whole (non-stream) reply made final: its images stored, code without a run shown."""
    for kind, value in deltas:
        if kind == "image":
            await place_image(reply, value, store)
    flush_code(reply)


def flush_code(reply: Reply) -> list[Delta]:
    """The code block of code Gemini wrote but did not report a run of (yet)."""
    if reply.pending_code is None:
        return []
    code, language = reply.pending_code
    reply.pending_code = None
    block = reply.room_for(code_block(code, language, None, failed=False))
    reply.text.append(block)
    return [("text", block)]


def _media_part(part: Any, reply: Reply) -> list[Delta]:
    """An image, code Gemini wrote, or the result of running it; [] for any other part.

    An image becomes an empty text slot (filled with its markdown once the pipe stored it) and an
    "image" delta (slot index, MIME type, bytes); a run becomes Open WebUI's code-interpreter block."""
    blob = getattr(part, "inline_data", None)
    if blob is not None and getattr(blob, "data", None):
        if getattr(part, "thought", None):  # a draft Gemini 3 Pro Image shows while it thinks
            return []
        if reply.images >= REPLY_IMAGE_LIMIT:
            reply.images_left_out += 1
            return flush_code(reply)
        reply.images += 1
        deltas = flush_code(reply)
        reply.text.append("")
        mime = getattr(blob, "mime_type", None) or "image/png"
        return [*deltas, ("image", (len(reply.text) - 1, reply.images, mime, blob.data))]
    code = getattr(part, "executable_code", None)
    if code is not None:
        deltas = flush_code(reply)
        reply.pending_code = (getattr(code, "code", None) or "", enum_name(getattr(code, "language", None)))
        return deltas
    result = getattr(part, "code_execution_result", None)
    if result is not None:
        code_text, language = reply.pending_code or ("", "python")
        reply.pending_code = None
        outcome = enum_name(getattr(result, "outcome", None))
        output = getattr(result, "output", None) or ""
        block = reply.room_for(code_block(code_text, language, output, failed=outcome not in ("OUTCOME_OK", "")))
        reply.text.append(block)
        return [("text", block)]
    return []


def _tool_call(part: Any, call: Any, reply: Reply, names: dict[str, str]) -> dict[str, Any] | None:
    arguments = json.dumps(call.args or {}, ensure_ascii=False)
    if reply.room_for(arguments) != arguments:
        return None  # a call cut short would run with broken arguments: it is left out
    tool_call = {
        "index": len(reply.tool_calls),
        "id": encode_call_id(getattr(call, "id", None), getattr(part, "thought_signature", None)),
        "type": "function",
        "function": {
            "name": names.get(call.name, call.name),
            "arguments": arguments,
        },
    }
    reply.tool_calls.append(tool_call)
    return tool_call


def _prompt_feedback(response: Any, reply: Reply) -> None:
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and getattr(feedback, "block_reason", None):
        reason = enum_name(feedback.block_reason)
        detail = getattr(feedback, "block_reason_message", None) or "the prompt was refused before any reply"
        reply.blocked = f"Gemini blocked the prompt: {detail}."
        _REPLY_LOG.info("Gemini blocked a prompt: %s", reason)  # the code is for the log, the reader gets the sentence
        reply.finish = "content_filter"


def _finish(candidate: Any, reply: Reply) -> None:
    reason = enum_name(getattr(candidate, "finish_reason", None))
    if reason and reason != "FINISH_REASON_UNSPECIFIED":
        reply.finish = OPENAI_FINISH.get(reason, "stop")
        if reason != "STOP":
            note = FINISH_NOTES.get(reason, "the reply ended early")
            if reason == "SAFETY":
                note += _safety_note(candidate)
            reply.finish_note = f"Gemini stopped: {note}."
            _REPLY_LOG.info("Gemini stopped a reply: %s", reason)


def _wire_part(part: Any) -> dict[str, Any]:
    """A part of the reply as the SDK takes it back in the next request's history."""
    dump = getattr(part, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return {k: v for k, v in vars(part).items() if v is not None}


def read_response(response: Any, reply: Reply, *, include_thoughts: bool, names: dict[str, str]) -> list[Delta]:
    """One GenerateContentResponse (a stream chunk or the whole answer) -> new deltas."""
    deltas: list[Delta] = []
    _prompt_feedback(response, reply)
    if getattr(response, "usage_metadata", None) is not None:
        reply.usage = response.usage_metadata
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        return deltas
    candidate = candidates[0]
    content = getattr(candidate, "content", None)
    for part in (getattr(content, "parts", None) or []) if content is not None else []:
        if reply.cut:
            break
        text = getattr(part, "text", None)  # the common case first: a stream is mostly text parts
        if text:
            thought = bool(getattr(part, "thought", None))
            if thought and not include_thoughts:
                continue
            if not thought and reply.pending_code is not None:
                deltas.extend(flush_code(reply))
            text = reply.room_for(text)
            if text:
                (reply.thoughts if thought else reply.text).append(text)
                deltas.append(("thought" if thought else "text", text))
            continue
        call = getattr(part, "function_call", None)
        if call is not None and getattr(call, "name", None):
            tool_call = _tool_call(part, call, reply, names)
            if tool_call is not None:
                deltas.append(("tool_call", tool_call))
        elif getattr(part, "tool_call", None) is not None or getattr(part, "tool_response", None) is not None:
            reply.server_parts.append(_wire_part(part))
        else:
            deltas.extend(_media_part(part, reply))
    _grounding(getattr(candidate, "grounding_metadata", None), reply)
    _url_context(getattr(candidate, "url_context_metadata", None), reply)
    _finish(candidate, reply)
    return deltas


def closing_text(reply: Reply) -> str:
    """The readable notice a reply ends with when Gemini did not simply finish."""
    if reply.cut:
        size = f"{reply.max_bytes / MiB:g} MB" if reply.max_bytes >= MiB else f"{reply.max_bytes // 1024} KB"
        return f"\n\n⚠️ The reply was cut off here: it reached the largest reply this server takes ({size})."
    if reply.images_left_out:
        return f"\n\n⚠️ {reply.images_left_out} more images were left out: one reply shows {REPLY_IMAGE_LIMIT} at most."
    if reply.blocked:
        return f"⚠️ {reply.blocked}"
    if reply.finish_note:
        return f"\n\n⚠️ {reply.finish_note}" if reply.text else f"⚠️ {reply.finish_note}"
    if not any(reply.text) and not reply.tool_calls and not reply.images:
        return "⚠️ Gemini returned an empty reply."
    return ""


def finish_reason(reply: Reply) -> str:
    if reply.cut:
        return "length"
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


def completion(
    model: str, reply: Reply, shown: list[str] | None = None, secrets: tuple[str, ...] = ()
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": cite("".join(reply.text), reply, shown) + closing_text(reply),
    }
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
    return scrub(result, secrets)


async def emit_sources(emitter: Emitter, reply: Reply, secrets: tuple[str, ...] = ()) -> None:
    """What Google Search did, as Open WebUI shows its own web search: the queries (as chips),
    then the sources as citations under the reply, and a status listing them."""
    if reply.queries:
        queries = scrub(reply.queries, secrets)
        await emitter.status("Searched Google", done=True, action="web_search_queries_generated", queries=queries)
    if not reply.sources:
        return
    for uri, source in reply.sources.items():
        documents = source["snippets"] or [source["title"]]
        # `external` makes Open WebUI 0.12.4 list the source by its name instead of its URL
        # (frontend Citations.svelte); the redirect URL stays the link.
        meta = {"source": uri, "name": source["title"], "url": uri, "external": True, "domain": source["domain"]}
        event = citation(documents, name=source["title"], url=uri, metadata=[meta] * len(documents))
        await emitter.emit(scrub(event, secrets))
    urls = scrub(list(reply.sources), secrets)
    kinds = {source.get("kind", "web") for source in reply.sources.values()}
    # Open WebUI draws `web_search` with the list of sites; pages read for URL context and Google
    # Maps places say what they are instead of "Searched".
    said = "Used {{count}} sources"
    if len(kinds) == 1:
        said = SOURCE_STATUS.get(next(iter(kinds)), "Searched {{count}} sites")
    items = [{"title": src["title"] or src["domain"] or uri, "link": uri} for uri, src in reply.sources.items()]
    await emitter.status(said, done=True, action="web_search", urls=urls, items=scrub(items, secrets))


async def close_stream(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream must not hide the real outcome
            _REPLY_LOG.debug("closing the Gemini stream failed", exc_info=True)


_DELTA_FIELDS = {"text": "content", "thought": "reasoning_content"}


@dataclass
class StreamOptions:
    include_thoughts: bool
    names: dict[str, str]
    secrets: tuple[str, ...]
    timeout: float
    admin: bool = False
    shown: list[str] | None = None  # sources the message already shows (for citation numbers)
    can_replace: bool = False  # Open WebUI builds the message from the stream (a chat, not an API call)
    on_done: Callable[[Reply], None] | None = None
    max_bytes: int = REPLY_MAX_BYTES  # text, thoughts and tool-call arguments; the reply stops there
    store_image: ImageStore | None = None  # where the images Gemini makes are kept


async def stream_reply(
    stream: Any, first: Any, *, model: str, emitter: Emitter, options: StreamOptions
) -> AsyncIterator[dict[str, Any]]:
    """OpenAI chunks from a Gemini stream. A failure after text was sent keeps that text and ends
    with a one-line notice plus an error toast: an exception would make Open WebUI drop it all.

    Google Search's supports arrive with the last chunks, after most of the text was sent; in a
    chat the text is then replaced once with the citation marks in it (`replace_streamed_text` in shared/events.py)."""
    reply = Reply(max_bytes=options.max_bytes)
    secrets = options.secrets
    failure = None
    try:
        response, include_thoughts, names = first, options.include_thoughts, options.names
        while response is not None:
            deltas = read_response(response, reply, include_thoughts=include_thoughts, names=names)
            for kind, value in deltas:
                if kind == "image":
                    kind, value = "text", await place_image(reply, value, options.store_image)
                field_name = _DELTA_FIELDS.get(kind)
                # only the value comes from Gemini: scrubbing it, not the whole chunk, keeps the per-chunk cost small
                value = scrub(value, secrets)
                yield chunk(model, {field_name: value} if field_name else {"tool_calls": [value]})
            # A reply at its size limit stops here: the stream is closed below, the note follows.
            response = None if reply.cut else await anext(stream, None)
        for _, value in flush_code(reply):
            yield chunk(model, {"content": scrub(value, secrets)})
    except Exception as exc:
        failure = explain_error(exc, timeout=options.timeout)
        _REPLY_LOG.warning(
            "Gemini stream cut off: %s (%s)", failure.sentence, redact(failure.detail, options.secrets, 2000)
        )
    finally:
        await close_stream(stream)
    if failure is not None:
        notice = CUT_OFF_CONNECTION if failure.connection else f"The reply was cut off: {failure.sentence}"
        yield chunk(model, {"content": "\n\n⚠️ " + redact(notice, options.secrets, NOTICE_LIMIT)})
        said = "the connection dropped." if failure.connection else failure.sentence
        toast = for_reader(f"Gemini stopped mid-reply: {said}", failure.detail, admin=options.admin)
        await emitter.notify(redact(toast, options.secrets, NOTICE_LIMIT * 3), "error")
    else:
        tail = closing_text(reply)
        if tail:
            yield chunk(model, {"content": scrub(tail, secrets)})
        text = "".join(reply.text)
        if options.can_replace and text and not reply.tool_calls:
            cited = cite(text, reply, options.shown)
            if cited != text:
                yield scrub(replace_streamed_text(cited + tail), secrets)
    last = chunk(model, {}, finish_reason(reply) if failure is None else "stop")
    usage = openai_usage(reply.usage)
    if usage:
        last["usage"] = usage
    yield last
    if options.on_done is not None:
        options.on_done(reply)
    await emit_sources(emitter, reply, secrets)
