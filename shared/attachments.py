"""Attachments a chat sends to a model: data URIs, image links, uploaded files, and their size.

Everything here is independent of the model server and of Open WebUI's internals: the host's
file store is reached through the `host` object a plugin passes in (see shared/host.py).

Image links are downloaded with a size cap and a timeout, and only from public addresses unless
the server allows local fetching (the same switch as Open WebUI's own URL fetching): a link in a
chat must not become a way to read the server's private network (shared/netguard.py judges the
addresses), nor, through different messages for different failures, a way to map it.
"""

import asyncio
import base64
import binascii
import importlib
import io
import logging
import mimetypes
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from shared.messages import is_admin
from shared.netguard import BlockedAddressError, check_host, guarded_connector
from shared.text import content_text

_ATTACH_LOG = logging.getLogger("openwebui_pack.attachments")

MiB = 1024 * 1024
HOST_FILE_MAX_BYTES = 200 * MiB
IMAGE_URL_MAX_BYTES = 15 * MiB
IMAGE_URL_TIMEOUT = 20.0
IMAGE_URL_MAX_REDIRECTS = 3


class AttachmentError(ValueError):
    """An image or file that cannot be sent; the request goes on without it."""


# --- bytes and data URIs -------------------------------------------------------------------------


# (offset, signatures, MIME type): the bytes that open each file type models read.
_SIGNATURES: tuple[tuple[int, tuple[bytes, ...], str], ...] = (
    (0, (b"\x89PNG\r\n\x1a\n",), "image/png"),
    (0, (b"\xff\xd8\xff",), "image/jpeg"),
    (0, (b"GIF87a", b"GIF89a"), "image/gif"),
    (4, (b"ftypheic", b"ftypheix", b"ftyphevc"), "image/heic"),
    (4, (b"ftypmif1", b"ftypmsf1", b"ftypheif"), "image/heif"),
    (0, (b"BM",), "image/bmp"),
    (0, (b"%PDF-",), "application/pdf"),
)


def sniff_mime(data: bytes) -> str | None:
    """The MIME type the first bytes show, for the image and document types models read."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for offset, signatures, mime in _SIGNATURES:
        if any(data.startswith(signature, offset) for signature in signatures):
            return mime
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
        data = unquote_to_bytes(payload)
    if not data:
        raise AttachmentError("it is empty")
    return sniff_mime(data) or declared or "application/octet-stream", data


def convert_image(mime: str, data: bytes, accepted: frozenset[str], reader: str) -> tuple[str, bytes]:
    """The image as `reader` (the model's name, for the message) reads it: kept when its type is
    `accepted`, else converted to PNG with Pillow (when the server has it)."""
    if mime in accepted:
        return mime, data
    if not mime.startswith("image/"):
        raise AttachmentError(f"it is not an image ({mime})")
    try:
        image_module = importlib.import_module("PIL.Image")
        with image_module.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGBA").save(out, format="PNG")
    except Exception:
        raise AttachmentError(f"{reader} cannot read {mime} images and it could not be converted") from None
    return "image/png", out.getvalue()


# --- image links ---------------------------------------------------------------------------------


def local_fetch_allowed() -> bool:
    # Same switch as Open WebUI's own URL fetching (Open WebUI 0.12.4, open_webui/config.py,
    # ENABLE_LOCAL_WEB_FETCH; older servers call it ENABLE_RAG_LOCAL_WEB_FETCH).
    value = os.environ.get("ENABLE_LOCAL_WEB_FETCH", os.environ.get("ENABLE_RAG_LOCAL_WEB_FETCH", "false"))
    return value.strip().lower() == "true"


# The one sentence a user reads about an image link that was refused, could not be reached, did not
# answer, or answered with something else than an image: telling those apart would let a chat probe
# which addresses and ports answer behind the server (the administrator's log has the reason).
IMAGE_LINK_FAILED = "the link could not be downloaded as an image"


class ImageLinkError(AttachmentError):
    """An image link that was not downloaded: `str()` is what the user reads, `detail` the reason
    for the server log; `too_large` when the only problem is its size."""

    def __init__(self, message: str = IMAGE_LINK_FAILED, detail: str = "", *, too_large: bool = False) -> None:
        super().__init__(message)
        self.detail = detail or message
        self.too_large = too_large


def _check_url(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageLinkError(detail="only http(s) links are fetched")
    if any(c in url for c in "\\\t\r\n"):
        raise ImageLinkError(detail="the link contains characters that are not allowed")
    if allow_private:
        return
    try:
        check_host(parts.hostname)
    except BlockedAddressError as exc:
        raise ImageLinkError(detail=f"refused: {exc}") from None


def _client_host(url: str) -> str | None:
    """The host aiohttp will connect to for `url` (yarl's IDNA-mapped spelling), None if it has none."""
    try:
        import yarl  # aiohttp's URL type; installed with it

        return yarl.URL(url).raw_host
    except ImportError:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _too_large(max_bytes: int) -> ImageLinkError:
    size = f"{max_bytes // MiB} MB" if max_bytes >= MiB else f"{max_bytes // 1024} KB"
    return ImageLinkError(f"it is larger than {size}", f"larger than {max_bytes} bytes", too_large=True)


class DownloadBudget:
    """The bytes all image links of one request may download together, shared by concurrent
    downloads: each block counts as it arrives, so the total never goes over."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.left = max_bytes

    def take(self, count: int) -> None:
        if count > self.left:
            self.left = 0
            size = f"{self.max_bytes // MiB} MB" if self.max_bytes >= MiB else f"{self.max_bytes // 1024} KB"
            raise ImageLinkError(
                f"the image links of this request together are larger than {size}",
                f"over the request's download budget of {self.max_bytes} bytes",
                too_large=True,
            )
        self.left -= count

    def give_back(self, count: int) -> None:
        self.left = min(self.max_bytes, self.left + max(0, count))


async def _read_image(response: Any, max_bytes: int, budget: DownloadBudget | None) -> tuple[str, bytes]:
    if response.status != 200:
        raise ImageLinkError(detail=f"the server answered HTTP {response.status}")
    if (response.content_length or 0) > max_bytes:
        raise _too_large(max_bytes)
    data = bytearray()
    budget = budget or DownloadBudget(max_bytes)
    # A declared length is taken from the budget at once: concurrent downloads then cannot each
    # take part of it and all end up over (what is not read after all is given back).
    counted = response.content_length or 0
    budget.take(counted)
    try:
        async for block in response.content.iter_chunked(64 * 1024):
            if len(data) + len(block) > max_bytes:
                raise _too_large(max_bytes)
            if len(data) + len(block) > counted:
                budget.take(len(data) + len(block) - counted)
                counted = len(data) + len(block)
            data.extend(block)
    except BaseException:
        budget.give_back(counted - len(data))
        raise
    header = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    mime = sniff_mime(bytes(data[:64])) or header
    if not mime.startswith("image/"):
        raise ImageLinkError(detail=f"not an image ({mime or 'unknown type'})")
    return mime, bytes(data)


def _blocked_reason(exc: BaseException) -> str | None:
    """The guard's refusal inside an aiohttp connection error, if that is what it is."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, BlockedAddressError):
            return str(seen)
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return None


def _log_url(url: str) -> str:
    # Host and path only: a query string may carry someone's token.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"[:200]


async def _download(
    session: Any, url: str, allow_private: bool, max_bytes: int, max_redirects: int, budget: DownloadBudget | None
) -> Any:
    for _ in range(max_redirects + 1):
        host = _client_host(url)
        if not host:
            raise ImageLinkError(detail="the link has no host the client can connect to")
        if not allow_private:
            try:
                check_host(host)
            except BlockedAddressError as exc:
                raise ImageLinkError(detail=f"refused: {exc}") from None
        async with session.get(url, allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                _check_url(url, allow_private)  # every hop is judged like the first link
                continue
            return await _read_image(response, max_bytes, budget)
    raise ImageLinkError(detail=f"more than {max_redirects} redirects")


async def fetch_image(
    url: str,
    *,
    max_bytes: int = IMAGE_URL_MAX_BYTES,
    timeout: float = IMAGE_URL_TIMEOUT,
    max_redirects: int = IMAGE_URL_MAX_REDIRECTS,
    budget: DownloadBudget | None = None,
) -> tuple[str, bytes]:
    """Download an image link: at most `max_bytes` (and what is left of the request's `budget`),
    within `timeout` seconds for all redirects together, and only from public addresses unless
    the server allows local fetching.

    The host is judged as the HTTP client spells it (shared/netguard.py), and every address the
    connection goes to is judged again when it is made, on every redirect hop."""
    import aiohttp

    allow_private = local_fetch_allowed()
    try:
        _check_url(url, allow_private)
        if timeout <= 0:
            raise ImageLinkError(detail="no time was left for downloads in this request")
        connector = aiohttp.TCPConnector() if allow_private else guarded_connector(aiohttp)
        # trust_env stays off: a proxy would resolve the host itself, past the address check.
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            download = _download(session, url, allow_private, max_bytes, max_redirects, budget)
            return await asyncio.wait_for(download, timeout)
    except ImageLinkError as exc:
        _ATTACH_LOG.info("image link %s was not downloaded: %s", _log_url(url), exc.detail)
        raise
    except TimeoutError:
        _ATTACH_LOG.info("image link %s was not downloaded: no answer within %.3g s", _log_url(url), timeout)
        raise ImageLinkError(detail=f"no answer within {timeout:.3g} s") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        reason = _blocked_reason(exc)
        detail = f"refused: {reason}" if reason else f"{type(exc).__name__}: {exc}"
        _ATTACH_LOG.info("image link %s was not downloaded: %s", _log_url(url), detail)
        raise ImageLinkError(detail=detail) from None


# --- files uploaded to the host ------------------------------------------------------------------


async def read_host_file(
    host: Any, file_id: str, user: dict[str, Any] | None, *, max_bytes: int = HOST_FILE_MAX_BYTES
) -> tuple[bytes, str, str]:
    """The bytes, MIME type and name of a file uploaded to Open WebUI, if this user may read it.

    `host` has `file_record(file_id)` and `local_file_path(stored_path)` (shared/host.py)."""
    record = await host.file_record(file_id)
    user = user or {}
    if record is None:
        raise AttachmentError("it no longer exists")
    if record.user_id != user.get("id") and not is_admin(user):
        raise AttachmentError("it belongs to another user")
    if not record.path:
        raise AttachmentError("it has no stored content")
    try:
        local = Path(await host.local_file_path(record.path))
        size = await asyncio.to_thread(lambda: local.stat().st_size)
        if size > max_bytes:
            raise AttachmentError(f"it is larger than {max_bytes // MiB} MB")
        data = await asyncio.to_thread(local.read_bytes)
    except OSError as exc:  # gone from storage: the chat goes on without it (not a model failure)
        _ATTACH_LOG.warning("stored file %s cannot be read: %s: %s", file_id, type(exc).__name__, exc)
        raise AttachmentError("its stored content cannot be read") from None
    meta = record.meta or {}
    mime = meta.get("content_type") or mimetypes.guess_type(record.filename)[0] or "application/octet-stream"
    return data, mime, record.filename


AttachmentKind = Literal["pdf", "audio", "video", "text"]


def attachment_kind(mime: str) -> AttachmentKind | None:
    """The kind of document a model reads natively, or None."""
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
    """The `__files__` entries a model reads natively: PDF, audio, video and text documents."""
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


def context_file_ids(metadata: Any) -> frozenset[str]:
    """The files whose text Open WebUI already put into the chat as document context.

    Open WebUI 0.12.4 extracts an attached file's text, adds it to the messages (its RAG
    template, open_webui/utils/middleware.py, chat_completion_files_handler) and lists it in
    `__metadata__["sources"]`: each source's `source` is the file item, and its `metadata`
    entries carry `file_id`."""
    sources = metadata.get("sources") if isinstance(metadata, dict) else None
    ids: set[str] = set()
    for source in sources if isinstance(sources, list) else []:
        if not isinstance(source, dict):
            continue
        item = source.get("source")
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            ids.add(item["id"])
        for meta in source.get("metadata") or []:
            if isinstance(meta, dict) and isinstance(meta.get("file_id"), str):
                ids.add(meta["file_id"])
    return frozenset(ids)


# Open WebUI 0.6.43 wraps each document of the chat's context as <source id="1" name="notes.txt">
# (open_webui/utils/middleware.py, process_chat_payload); the name is the attached file item's.
_CONTEXT_SOURCE = re.compile(r'<source id="[^"]*" name="([^"]*)">')


def context_file_names(messages: Any) -> frozenset[str]:
    """The names of the documents Open WebUI put into the user messages as document context.

    For Open WebUI 0.6.43, which lists no `sources` in `__metadata__` (0.8 and later do: use
    `context_file_ids` there); the context text names each file instead."""
    names: set[str] = set()
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "user":
            names.update(_CONTEXT_SOURCE.findall(content_text(message.get("content"))))
    return frozenset(names)


# --- inline or uploaded --------------------------------------------------------------------------


@dataclass
class Blob:
    """An inline_data part, kept so a large one can be moved to a files API."""

    part: dict[str, Any]
    name: str
    # The inline_data once the part points at an uploaded file instead (a second upload, with
    # another key, starts from it again).
    inline: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return len((self.inline or self.part["inline_data"])["data"])


def upload_plan(blobs: list[Blob], budget: int) -> list[Blob]:
    """The largest inline blobs to move to a files API until the rest fits in `budget` bytes."""
    total = sum(b.size for b in blobs)
    chosen: list[Blob] = []
    for blob in sorted(blobs, key=lambda b: b.size, reverse=True):
        if total <= budget:
            break
        chosen.append(blob)
        total -= blob.size
    return chosen
