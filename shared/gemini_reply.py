"""Gemini answers as OpenAI chat completions: text, thoughts, tool calls, finish, usage, sources.

One `Reply` collects an answer, fed chunk by chunk (streaming) or once (not streaming), so both
modes read Gemini's responses with the same code. Responses are read by attribute, as the
google-genai SDK returns them.
"""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.events import Emitter, citation
from shared.gemini import describe_error, encode_call_id, enum_name
from shared.secrets import redact

_REPLY_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

NOTICE_LIMIT = 300  # characters of the error in the one-line notice that ends a cut-off reply
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


def _safety_note(candidate: Any) -> str:
    hits = []
    for rating in getattr(candidate, "safety_ratings", None) or []:
        probability = enum_name(getattr(rating, "probability", ""))
        if getattr(rating, "blocked", False) or probability in ("HIGH", "MEDIUM"):
            hits.append(enum_name(getattr(rating, "category", "")).removeprefix("HARM_CATEGORY_").lower())
    return f" ({', '.join(hits)})" if hits else ""


def _grounding(metadata: Any, reply: Reply) -> None:
    if metadata is None:
        return
    for query in getattr(metadata, "web_search_queries", None) or []:
        if query not in reply.queries:
            reply.queries.append(query)
    keys: list[str | None] = []
    for grounding_chunk in getattr(metadata, "grounding_chunks", None) or []:
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


def _tool_call(part: Any, call: Any, reply: Reply, names: dict[str, str]) -> dict[str, Any]:
    tool_call = {
        "index": len(reply.tool_calls),
        "id": encode_call_id(getattr(call, "id", None), getattr(part, "thought_signature", None)),
        "type": "function",
        "function": {
            "name": names.get(call.name, call.name),
            "arguments": json.dumps(call.args or {}, ensure_ascii=False),
        },
    }
    reply.tool_calls.append(tool_call)
    return tool_call


def _prompt_feedback(response: Any, reply: Reply) -> None:
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and getattr(feedback, "block_reason", None):
        reason = enum_name(feedback.block_reason)
        detail = getattr(feedback, "block_reason_message", None) or "the prompt was refused before any reply"
        reply.blocked = f"Gemini blocked the prompt ({reason}): {detail}."
        reply.finish = "content_filter"


def _finish(candidate: Any, reply: Reply) -> None:
    reason = enum_name(getattr(candidate, "finish_reason", None))
    if reason and reason != "FINISH_REASON_UNSPECIFIED":
        reply.finish = OPENAI_FINISH.get(reason, "stop")
        if reason != "STOP":
            note = FINISH_NOTES.get(reason, "Gemini stopped early")
            if reason == "SAFETY":
                note += _safety_note(candidate)
            reply.finish_note = f"Gemini stopped ({reason}): {note}."


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
        call = getattr(part, "function_call", None)
        if call is not None and getattr(call, "name", None):
            deltas.append(("tool_call", _tool_call(part, call, reply, names)))
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
    _finish(candidate, reply)
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


async def close_stream(stream: Any) -> None:
    close = getattr(stream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a broken stream must not hide the real outcome
            _REPLY_LOG.debug("closing the Gemini stream failed", exc_info=True)


_DELTA_FIELDS = {"text": "content", "thought": "reasoning_content"}


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
                field_name = _DELTA_FIELDS.get(kind)
                yield chunk(model, {field_name: value} if field_name else {"tool_calls": [value]})
            response = await anext(stream, None)
    except Exception as exc:
        failure = redact(describe_error(exc, timeout=timeout), secrets, NOTICE_LIMIT)
        _REPLY_LOG.warning("Gemini stream cut off: %s", failure)
    finally:
        await close_stream(stream)
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
