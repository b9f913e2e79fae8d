"""Attachments too large to send inline go through Gemini's Files API once per content, not once per turn.

Open WebUI sends a chat's files with every turn, so the same PDF comes back each time. Its upload
is remembered by (who uploaded it, the SHA-256 of its bytes): "who" is a salted hash of the API key
(or of the Vertex AI setup), never the key itself, so every chat of the same key reuses it. An upload
is trusted, without asking Google again, until shortly before the `expirationTime` Google gave it
(48 h after upload): a `files.get` per turn would add a round trip to every reply for a case that
needs someone deleting the file through the API by hand, and a file gone early is forgotten when
Gemini refuses it (`forget`), so the next turn uploads it again.

When the pipe has no record (a restart, another worker, a changed function), the key's own file list
is asked once for a file with the same `sha256Hash` before uploading: Google keeps the file, so the
bytes need not travel again.
"""

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.attachments import Blob, MiB
from shared.events import Emitter
from shared.gemini import GeminiError, enum_name, explain_error, upload_file

_UPLOAD_LOG = logging.getLogger("openwebui_pack.gemini_manifold")

FILES_KEPT_FOR = 48 * 3600.0  # the Files API deletes an upload this long after it was made
REUSE_MARGIN = 3600.0  # an upload is not reused in the last hour before Google deletes it
UPLOAD_CACHE_SIZE = 256  # uploads remembered (per key and content), the oldest forgotten first
LIST_LIMIT = 500  # files of the key's list looked through for the same content


@dataclass(frozen=True)
class Uploaded:
    uri: str
    mime: str
    expires: float  # wall-clock seconds (time.time) when Google deletes the file


def expiry_of(file: Any, now: float) -> float:
    """When Google deletes the file: its expirationTime, else 48 h from its creation (or now)."""
    for name, offset in (("expiration_time", 0.0), ("create_time", FILES_KEPT_FOR)):
        value = getattr(file, name, None)
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            return value.timestamp() + offset
    return now + FILES_KEPT_FOR - REUSE_MARGIN


def same_content(sha256_hash: Any, digest: bytes) -> bool:
    """Whether a File's sha256Hash names these bytes. Google documents it as base64 of the digest
    and sends base64 of the digest's hex spelling; both are accepted, and plain hex too."""
    if not isinstance(sha256_hash, str) or not sha256_hash:
        return False
    if sha256_hash.lower() == digest.hex():
        return True
    try:
        decoded = base64.b64decode(sha256_hash, validate=True)
    except (binascii.Error, ValueError):
        return False
    return decoded == digest or decoded.decode("ascii", "replace").lower() == digest.hex()


class UploadCache:
    """Files API uploads by (key identity, content SHA-256), bounded, each until its expiry."""

    def __init__(self, size: int = UPLOAD_CACHE_SIZE, wall_clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.wall_clock = wall_clock
        self._entries: OrderedDict[tuple[str, str], Uploaded] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, identity: str, sha: str) -> Uploaded | None:
        entry = self._entries.get((identity, sha))
        if entry is None:
            return None
        if entry.expires - REUSE_MARGIN <= self.wall_clock():
            del self._entries[(identity, sha)]
            return None
        self._entries.move_to_end((identity, sha))
        return entry

    def put(self, identity: str, sha: str, entry: Uploaded) -> None:
        self._entries[(identity, sha)] = entry
        self._entries.move_to_end((identity, sha))
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget_uri(self, uri: str) -> bool:
        """Drop every entry for an uploaded file Gemini no longer reads."""
        gone = [k for k, v in self._entries.items() if v.uri == uri]
        for k in gone:
            del self._entries[k]
        return bool(gone)


async def find_uploaded(client: Any, digest: bytes, now: float, limit: int = LIST_LIMIT) -> Any | None:
    """A file of this key with the same bytes, processed and not about to expire (None if none)."""
    seen = 0
    pager = await client.aio.files.list(config={"page_size": 100})
    async for file in pager:
        seen += 1
        usable = enum_name(getattr(file, "state", None)) == "ACTIVE" and getattr(file, "uri", None)
        if (
            usable
            and same_content(getattr(file, "sha256_hash", None), digest)
            and expiry_of(file, now) > now + REUSE_MARGIN
        ):
            return file
        if seen >= limit:
            break
    return None


@dataclass
class UploadContext:
    client: Any
    identity: str  # a salted hash of the key (or Vertex AI setup): never the key itself
    emitter: Emitter
    timeout: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep


async def _obtain(cache: UploadCache, ctx: UploadContext, blob: Blob, data: bytes, mime: str) -> Uploaded:
    digest = hashlib.sha256(data).digest()
    sha = digest.hex()
    cached = cache.get(ctx.identity, sha)
    if cached is not None:
        return cached
    now = cache.wall_clock()
    try:
        found = await find_uploaded(ctx.client, digest, now)
    except Exception as exc:  # the list is a shortcut: without it the file is uploaded
        _UPLOAD_LOG.info("listing Gemini files failed (%s): uploading %s", type(exc).__name__, blob.name)
        found = None
    if found is None:
        await ctx.emitter.status(f"Uploading {blob.name} ({len(data) / MiB:.1f} MB) to Gemini")
        try:
            found = await upload_file(
                ctx.client, data, mime, blob.name, timeout=ctx.timeout, clock=ctx.clock, sleep=ctx.sleep
            )
        except BaseException as exc:  # close the status: done=False would shimmer next to the error
            await ctx.emitter.status(f"Uploading {blob.name} failed", done=True)
            if not isinstance(exc, Exception):
                raise
            text = explain_error(exc, timeout=ctx.timeout, upload=blob.name)
            raise GeminiError(text.sentence, text.detail, connection=text.connection) from None
        await ctx.emitter.status(f"Uploaded {blob.name}", done=True)
    else:
        _UPLOAD_LOG.debug("%s is already in Gemini's Files API: not uploaded again", blob.name)
    entry = Uploaded(found.uri, found.mime_type or mime, expiry_of(found, now))
    cache.put(ctx.identity, sha, entry)
    return entry


async def attach_uploads(cache: UploadCache, ctx: UploadContext, blobs: list[Blob]) -> None:
    """Point each blob's part at its Files API upload, uploading only what this key does not have."""
    for blob in blobs:
        inline = blob.inline or blob.part.get("inline_data")
        if inline is None:
            continue
        entry = await _obtain(cache, ctx, blob, inline["data"], inline["mime_type"])
        blob.inline = inline
        blob.part.pop("inline_data", None)
        blob.part["file_data"] = {"file_uri": entry.uri, "mime_type": entry.mime}


def forget_refused(cache: UploadCache, blobs: list[Blob], status: int | None) -> bool:
    """After Gemini refused a request (400/403/404) that named uploaded files: forget them, so the
    next turn uploads them again (one of them may have been deleted before its expiry)."""
    if status not in (400, 403, 404):
        return False
    uris = [b.part["file_data"]["file_uri"] for b in blobs if "file_data" in b.part]
    return any([cache.forget_uri(uri) for uri in uris])
