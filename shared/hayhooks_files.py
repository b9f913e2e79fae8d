"""File intake for the Hayhooks wrappers: every way a file reaches a wrapper, read within limits.

Open WebUI 0.12.4 never sends file parts to an OpenAI connection. What arrives:
(a) the document text its retrieval put into the conversation, `<source …>` blocks inside a
    `<context>` block (parsed only there: the RAG template's own instructions show an example
    `<source id="1">` outside it);
(b) file ids (`<attached_files>` tags with native tools, a source's `resource-id`) whose bytes can
    be read back from Open WebUI when the connection forwards the user's session (`Authorization`)
    and names Open WebUI's address in the X-OWUI-Base-Url header;
(c) a `files` list in the request body, `{filename, content (base64), size, type}`, from a client
    posting straight to Hayhooks;
(d) files uploaded to Hayhooks' `/v1/files` (kept in memory by `UploadStore`), referenced in the
    body as `files: [{"id": …}]` or `file_ids: […]`.
One bad file is reported and the others go on.
"""

import base64
import binascii
import html
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.text import content_text, tag_blocks

_FILES_LOG = logging.getLogger("openwebui_pack.hayhooks.files")

MAX_TEXT_CHARS = 60_000  # of one file's text given to the model
MAX_TOTAL_CHARS = 150_000  # of all files' text in one prompt
FETCH_TIMEOUT = 20.0

# Blocks are found with shared.text.tag_blocks (linear); a lazy `<x>(.*?)</x>` pattern would rescan
# the rest of the message for every opening tag that is never closed.
_ATTACHED_OPEN = re.compile(r"<attached_files\b[^<>]*>", re.IGNORECASE)
_ATTACHED_CLOSE = re.compile(r"</attached_files>", re.IGNORECASE)
_FILE_TAG = re.compile(r"<file\b([^<>]*)>", re.IGNORECASE)
# The look-behind starts a name only at its first character (a long word is scanned once).
_ATTR = re.compile(r'(?<![\w-])([A-Za-z_][\w-]*)="([^"]*)"')
_FILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/yaml", "application/x-yaml")
TEXT_SUFFIXES = frozenset({
    ".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".yaml", ".yml", ".toml", ".ini",
    ".cfg", ".conf", ".log", ".py", ".js", ".ts", ".html", ".htm", ".css", ".sql", ".sh", ".rst", ".tex",
    ".java", ".c", ".h", ".cpp", ".go", ".rs", ".rb", ".php", ".srt", ".vtt",
})  # fmt: skip
_KINDS = (
    (("application/pdf", ".pdf"), "PDF document"),
    (("image/",), "image"),
    (("audio/",), "audio file"),
    (("video/",), "video"),
    (("application/zip", ".zip", ".tar", ".gz", ".7z"), "archive"),
    (("officedocument", "msword", ".docx", ".doc", ".odt"), "word-processor document"),
    (("spreadsheet", "ms-excel", ".xlsx", ".xls", ".ods"), "spreadsheet"),
    (("presentation", "powerpoint", ".pptx", ".ppt"), "presentation"),
)


def _attrs(text: str) -> dict[str, str]:
    return {k.lower(): html.unescape(v) for k, v in _ATTR.findall(text)}


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


@dataclass
class IncomingFile:
    """A file as it arrived, before reading."""

    name: str
    origin: str  # "context", "open_webui", "request", "upload"
    content_type: str = ""
    size: int | None = None
    text: str | None = None  # (a): the text Open WebUI extracted
    data: bytes | None = None  # (b), (c), (d): the bytes
    file_id: str = ""
    problem: str | None = None  # why it cannot be read (reported; the others go on)
    source_ids: tuple[str, ...] = ()  # the [id]s Open WebUI's context gave this file's excerpts


@dataclass
class ReadFile:
    """A file after reading: its text for the prompt, or why there is none."""

    name: str
    size: int | None
    kind: str  # "text", or a kind like "PDF document"
    text: str = ""
    note: str = ""  # a sentence about what was done (truncated, summarised, refused)
    ok: bool = True
    origin: str = ""
    source_ids: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} ({human_size(self.size)})"


# --- (a) Open WebUI's context blocks, (b) file ids --------------------------------------------------


def _texts(messages: Any) -> list[str]:
    return [
        content_text(m.get("content"))
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, dict) and m.get("role") in ("system", "user")
    ]


def context_files(messages: Any) -> list[IncomingFile]:
    """The documents in Open WebUI's `<context>` block of the latest message that has one,
    one per file (the excerpts of a file joined in order)."""
    for text in reversed(_texts(messages)):
        blocks = [inner for _, inner in tag_blocks(text, "context")]
        if not blocks:
            continue
        by_name: OrderedDict[str, IncomingFile] = OrderedDict()
        for block in blocks:
            for raw_attrs, body in tag_blocks(block, "source"):
                attrs = _attrs(raw_attrs)
                name = attrs.get("name") or attrs.get("source") or f"source {attrs.get('id', len(by_name) + 1)}"
                file_id = attrs.get("resource-id", "") if attrs.get("resource-type") == "file" else ""
                item = by_name.setdefault(name, IncomingFile(name=name, origin="context", text="", file_id=file_id))
                item.text = f"{item.text}\n\n{body.strip()}" if item.text else body.strip()
                if attrs.get("id"):
                    item.source_ids = (*item.source_ids, attrs["id"])
        for item in by_name.values():
            item.size = len((item.text or "").encode("utf-8"))
        return list(by_name.values())
    return []


def attached_file_ids(messages: Any) -> list[tuple[str, str, str]]:
    """`(id, name, content_type)` of the `<attached_files>` tags (Open WebUI with native tools)."""
    found: list[tuple[str, str, str]] = []
    for text in _texts(messages):
        for _, block in tag_blocks(text, "attached_files"):
            for raw in _FILE_TAG.findall(block):
                attrs = _attrs(raw.rstrip("/"))
                if attrs.get("type", "file") == "file" and attrs.get("id"):
                    found.append((attrs["id"], attrs.get("name", attrs["id"]), attrs.get("content_type", "")))
    return list(OrderedDict((f[0], f) for f in found).values())


def strip_file_blocks(text: str) -> str:
    """The user's words without the `<attached_files>` block Open WebUI puts before them."""
    return without_tag_blocks(text, _ATTACHED_OPEN, _ATTACHED_CLOSE).strip()


def without_tag_blocks(text: str, opening: re.Pattern[str], closing: re.Pattern[str]) -> str:
    """`text` without its `opening…closing` blocks (and the blank space after each), in one pass;
    an opening tag that is never closed stays, and ends the search."""
    kept: list[str] = []
    pos = 0
    while (start := opening.search(text, pos)) is not None:
        end = closing.search(text, start.end())
        if end is None:
            break
        kept.append(text[pos : start.start()])
        pos = end.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    kept.append(text[pos:])
    return "".join(kept)


# --- (c) request files, (d) uploads -----------------------------------------------------------------


def request_files(body: Any, store: "UploadStore | None" = None) -> list[IncomingFile]:
    """The body's `files` list (base64 content, or an `id` of a /v1/files upload) and `file_ids`."""
    items = body.get("files") if isinstance(body, dict) else None
    found: list[IncomingFile] = []
    for index, entry in enumerate(items if isinstance(items, list) else []):
        if not isinstance(entry, dict):
            found.append(IncomingFile(name=f"file {index + 1}", origin="request", problem="it is not a file entry"))
            continue
        if "content" not in entry and entry.get("id") and store is not None:
            found.append(store.get(str(entry["id"])))
            continue
        found.append(_decoded(entry, index))
    ids = body.get("file_ids") if isinstance(body, dict) else None
    for file_id in ids if isinstance(ids, list) and store is not None else []:
        found.append(store.get(str(file_id)))
    return found


def _decoded(entry: dict[str, Any], index: int) -> IncomingFile:
    name = str(entry.get("filename") or entry.get("name") or f"file {index + 1}")
    declared = entry.get("size")
    item = IncomingFile(
        name=name,
        origin="request",
        content_type=str(entry.get("type") or entry.get("content_type") or ""),
        size=declared if isinstance(declared, int) and declared >= 0 else None,
    )
    content = entry.get("content")
    if not isinstance(content, str):
        item.problem = "it has no base64 content"
        return item
    try:
        item.data = base64.b64decode(
            content.split(",", 1)[1] if content.startswith("data:") else content, validate=True
        )
    except (binascii.Error, ValueError):
        item.problem = "its content is not valid base64"
        return item
    item.size = len(item.data)
    return item


class UploadStore:
    """Files uploaded through Hayhooks' `/v1/files`, kept in this process's memory (oldest dropped
    first past the limits). Lost when `hayhooks run` restarts."""

    def __init__(self, max_files: int = 50, max_bytes: int = 100 * 1024 * 1024) -> None:
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._files: OrderedDict[str, IncomingFile] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, filename: str | None, content_type: str | None, content: bytes, purpose: str) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        item = IncomingFile(
            name=filename or file_id,
            origin="upload",
            content_type=content_type or "",
            size=len(content),
            data=content,
            file_id=file_id,
        )
        with self._lock:
            self._files[file_id] = item
            while len(self._files) > self.max_files or sum(f.size or 0 for f in self._files.values()) > self.max_bytes:
                self._files.popitem(last=False)
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": item.name,
            "purpose": purpose,
        }

    def get(self, file_id: str) -> IncomingFile:
        with self._lock:
            item = self._files.get(file_id)
        if item is None:
            return IncomingFile(name=file_id, origin="upload", problem="no upload with this id is kept on the server")
        return IncomingFile(**{**item.__dict__})


# --- reading ------------------------------------------------------------------------------------------


def file_kind(name: str, content_type: str) -> str:
    """ "text" for text-like files, else a kind for a summary ("PDF document", "image", ...)."""
    lowered_type = (content_type or "").lower()
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if lowered_type.startswith(TEXT_TYPES) or suffix in TEXT_SUFFIXES or lowered_type.endswith(("+json", "+xml")):
        return "text"
    for marks, kind in _KINDS:
        if any(lowered_type.startswith(m) or m in lowered_type or suffix == m for m in marks):
            return kind
    return "file"


def decode_text(data: bytes) -> str | None:
    """The bytes as text (UTF-8, UTF-16 with a mark, Latin-1 when it reads as text), or None."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:4096]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    text = data.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text[:4096])
    return text if printable >= 0.95 * min(len(text), 4096) else None


def _clip(text: str, limit: int) -> tuple[str, str]:
    if len(text) <= limit:
        return text, ""
    return text[:limit], f"only its first {limit:,} characters were read"


def read_file(item: IncomingFile, *, max_bytes: int, max_chars: int = MAX_TEXT_CHARS) -> ReadFile:
    """Read one incoming file within the limits; never raises."""
    kind = "text" if item.text is not None else file_kind(item.name, item.content_type)
    result = ReadFile(item.name, item.size, kind, origin=item.origin, source_ids=item.source_ids)
    if item.problem:
        result.ok, result.note = False, f"could not be read: {item.problem}"
        return result
    if item.size is not None and item.size > max_bytes:
        result.ok, result.note = False, f"is larger than the {human_size(max_bytes)} limit"
        return result
    if item.text is not None:
        result.text, result.note = _clip(item.text, max_chars)
        return result
    data = item.data or b""
    text = decode_text(data) if kind in ("text", "file") else None
    if text is None:
        result.kind = kind if kind != "text" else "file"
        size = human_size(len(data))
        result.note = f"is a {result.kind} of {size}; its content is not text, so only its name and size are known"
        return result
    result.kind = "text"
    result.text, result.note = _clip(text, max_chars)
    return result


def budget(files: list[ReadFile], total: int = MAX_TOTAL_CHARS) -> list[ReadFile]:
    """Shorten the files' texts, in order, so that together they fit `total` characters."""
    left = total
    for f in files:
        if len(f.text) > left:
            f.text = f.text[: max(left, 0)]
            f.note = f.note or "only part of it fits in one question"
        left -= len(f.text)
    return files


def files_prompt(files: list[ReadFile]) -> str:
    """The files as a block for the model, each under its name."""
    parts = []
    for f in files:
        if f.ok and f.text:
            parts.append(f'<file name="{html.escape(f.name)}">\n{f.text}\n</file>')
        else:
            reason = f.note or "it could not be read"
            parts.append(f'<file name="{html.escape(f.name)}" unreadable="true">The file {reason}.</file>')
    return "\n\n".join(parts)


# --- (b) reading a file back from Open WebUI ------------------------------------------------------------


def openwebui_base(value: str) -> str | None:
    """Open WebUI's address from the X-OWUI-Base-Url header: http(s), a host, no credentials."""
    value = (value or "").strip().rstrip("/")
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    if parts.query or parts.fragment:
        return None
    return value


async def fetch_openwebui_file(
    base: str,
    file_id: str,
    authorization: str,
    *,
    name: str,
    content_type: str = "",
    max_bytes: int,
    timeout: float = FETCH_TIMEOUT,
    client: Any = None,
) -> IncomingFile:
    """GET {base}/api/v1/files/{id}/content with the forwarded user token (size-capped, no
    redirects); a file that is not text also gets the text Open WebUI extracted
    (/api/v1/files/{id}/data/content). A failure is an `IncomingFile` with a `problem`."""
    import httpx

    item = IncomingFile(name=name, origin="open_webui", content_type=content_type, file_id=file_id)
    if not _FILE_ID.match(file_id):
        item.problem = "its id is not a file id"
        return item
    owned = client is None
    client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
    headers = {"Authorization": authorization}
    try:
        async with client.stream("GET", f"{base}/api/v1/files/{file_id}/content", headers=headers) as response:
            if response.status_code != 200:
                item.problem = _fetch_problem(response.status_code)
                return item
            item.content_type = item.content_type or response.headers.get("content-type", "").split(";")[0]
            data = bytearray()
            async for piece in response.aiter_bytes():
                data.extend(piece)
                if len(data) > max_bytes:
                    item.size = len(data)
                    return item  # read_file reports it as too large
        item.data, item.size = bytes(data), len(data)
        if file_kind(name, item.content_type) != "text" and decode_text(item.data) is None:
            extracted = await client.get(f"{base}/api/v1/files/{file_id}/data/content", headers=headers)
            text = extracted.json().get("content") if extracted.status_code == 200 else None
            if isinstance(text, str) and text.strip():
                item.text = text
    except (httpx.HTTPError, ValueError) as exc:
        _FILES_LOG.warning("reading file %s from Open WebUI failed: %s", file_id, exc)
        item.problem = "Open WebUI could not be reached to read it"
    finally:
        if owned:
            await client.aclose()
    return item


def _fetch_problem(code: int) -> str:
    if code in (401, 403):
        return "Open WebUI did not let this server read it (the connection does not forward your session)"
    if code == 404:
        return "Open WebUI no longer has it"
    return f"Open WebUI answered HTTP {code}"


def attach_to_question(history: list[dict[str, str]], block: str) -> list[dict[str, str]]:
    """`history` with `block` (the files) put before the words of its last user message."""
    if not block:
        return history
    out = [dict(m) for m in history]
    for m in reversed(out):
        if m["role"] == "user":
            m["text"] = f"Files the user attached:\n\n{block}\n\nThe user's message:\n{m['text']}"
            return out
    return [*out, {"role": "user", "text": f"Files the user attached:\n\n{block}"}]
