"""
title: YouTube Transcript
author: Open WebUI Pack contributors
version: 0.1.0
description: Title, channel and timestamped transcript of a YouTube video, with citations, a proxy and a cache.
license: MIT
required_open_webui_version: 0.6.43
"""

import asyncio
import functools
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, urlsplit
from xml.etree.ElementTree import ParseError as ElementTreeParseError  # what the caption parser raises

from pydantic import BaseModel, Field, field_validator

from shared.events import Emitter, EventEmitter, citation
from shared.messages import for_reader, is_admin
from shared.pool import Deadline, DeadlinePassed, DeadlinePool, PoolFull
from shared.valves import Switch, as_switch, resolve_switch

_LOG = logging.getLogger("openwebui_pack.youtube_transcript")

WATCH_URL = "https://www.youtube.com/watch?v={video_id}"
OEMBED_ENDPOINT = "https://www.youtube.com/oembed"

_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_VIDEO_HOSTS = frozenset(
    {
        "youtube.com",
        "www.youtube.com",
        "m.youtube.com",
        "music.youtube.com",
        "youtube-nocookie.com",
        "www.youtube-nocookie.com",
    }
)
_SHORT_HOSTS = frozenset({"youtu.be", "www.youtu.be"})
_ID_PATHS = frozenset({"shorts", "embed", "live", "v", "e"})
_START_TIME = re.compile(r"(?:(\d{1,4})h)?(?:(\d{1,5})m)?(?:(\d{1,7})s?)?")
_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
# TRANSCRIPT_TRANSLATE values that mean "never translate"
_NO_TRANSLATION = frozenset({"none", "off", "no", "false", "-"})
_MAX_INPUT = 2048

# --- data --------------------------------------------------------------------------------
# NamedTuples, not dataclasses: Open WebUI execs the file on every load and a dataclass costs ~5x
# more to define.


class _VideoRef(NamedTuple):
    video_id: str
    start: int | None = None  # the `t=` / `start=` offset of the shared link, in seconds


class _Details(NamedTuple):
    title: str
    channel: str


class _Body(NamedTuple):
    text: str
    paragraphs: tuple[tuple[float, str], ...]  # what the text includes, for the citation
    cut_at: float | None  # start of the first paragraph left out, when cut


class _Transcript(NamedTuple):
    video_id: str
    language: str
    language_code: str
    is_generated: bool
    translated_from: str | None  # "English (en)" when YouTube translated it
    segments: tuple[tuple[float, str], ...]  # (start seconds, text), empty texts dropped
    duration: float
    # rendered bodies memoised per (timestamps, interval, max_chars), so a cached repeat call
    # only builds the header; always pass a new dict
    bodies: dict[tuple[bool, int, int], _Body]


# oEmbed had no details for the video (embedding off, private): remembered briefly so repeat calls
# do not wait for it again
_NO_DETAILS = _Details("", "")
_NO_DETAILS_TTL = 300.0


class _CacheEntry(NamedTuple):
    expires: float
    value: Any


class _Settings(NamedTuple):
    languages: tuple[str, ...]
    translate_to: str
    timestamps: bool
    interval: int
    max_chars: int
    details: bool
    citation: bool
    proxy: str
    ttl: float
    timeout: float
    admin: bool = False  # the caller is an administrator: messages add the detail only they can act on


class _Problem(Exception):
    """A failure explained for whoever reads it.

    `message` goes to the model, which passes it on to the user: plain sentences that name no
    exception and no setting an administrator alone can change. `detail` is for administrators
    (which valve, what to check); it is logged and added to the message when the caller is one.
    `short` goes to the status line.
    """

    def __init__(self, message: str, short: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.short = short
        self.detail = detail

    def text_for(self, admin: bool) -> str:
        return for_reader(self.message, self.detail, admin=admin)


# --- URL parsing ---------------------------------------------------------------------------


def parse_video(text: object) -> _VideoRef | None:
    """The video a link or bare id points to; None for anything else. Never raises."""
    if not isinstance(text, str):
        return None
    candidate = text.strip().strip("<>\"'`").strip()
    if not candidate or len(candidate) > _MAX_INPUT or any(c.isspace() for c in candidate):
        return None
    if _VIDEO_ID.fullmatch(candidate):
        return _VideoRef(candidate)
    if "://" not in candidate:
        candidate = ("https:" if candidate.startswith("//") else "https://") + candidate
    try:
        parts = urlsplit(candidate)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or port not in (None, 80, 443):
        return None
    if parts.username is not None or parts.password is not None:
        return None
    query = parse_qs(parts.query)
    segments = [s for s in parts.path.split("/") if s]
    video_id: str | None = None
    if host in _SHORT_HOSTS:
        video_id = segments[0] if len(segments) == 1 else None
    elif host in _VIDEO_HOSTS:
        if segments == ["watch"]:
            video_id = (query.get("v") or [None])[0]
        elif len(segments) == 2 and segments[0].lower() in _ID_PATHS and segments[1] != "videoseries":
            # /embed/videoseries?list=… is a playlist player whose path happens to be 11 characters
            video_id = segments[1]
    if video_id is None or not _VIDEO_ID.fullmatch(video_id):
        return None
    return _VideoRef(video_id, _start_seconds(query))


def _start_seconds(query: dict[str, list[str]]) -> int | None:
    for key in ("t", "start"):
        for value in query.get(key, []):
            match = _START_TIME.fullmatch(value.strip().lower())
            if match and any(match.groups()):
                h, m, s = (int(g or 0) for g in match.groups())
                return h * 3600 + m * 60 + s
    return None


def _is_youtube_link(text: str) -> bool:
    candidate = text.strip().strip("<>\"'`").strip()
    if "://" not in candidate:
        candidate = "https://" + candidate
    try:
        host = urlsplit(candidate).hostname or ""
    except ValueError:
        return False
    return host in _VIDEO_HOSTS or host in _SHORT_HOSTS


def refusal(text: str) -> str:
    shown = text.strip()
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    accepted = (
        "Give a link like https://www.youtube.com/watch?v=VIDEO_ID or https://youtu.be/VIDEO_ID "
        "(shorts, embed and live links work too), or the 11-character video id."
    )
    if not shown:
        return f"No video was given. {accepted}"
    if _is_youtube_link(shown):
        return (
            f"The YouTube link {shown!r} does not point to a single video (playlists, channels and "
            f"searches are not supported). {accepted}"
        )
    return f"{shown!r} is not a YouTube video link, so no transcript was fetched. {accepted}"


# --- settings ------------------------------------------------------------------------------


def parse_languages(text: str) -> list[str]:
    """Language codes from a comma or space separated list; anything else is dropped."""
    codes: list[str] = []
    for part in re.split(r"[,\s;]+", text or ""):
        if _LANGUAGE_CODE.fullmatch(part):
            code = part.replace("_", "-")
            if code.lower() not in (c.lower() for c in codes):
                codes.append(code)
    return codes


def _user_value(user_valves: object, name: str) -> str:
    value = user_valves.get(name) if isinstance(user_valves, dict) else getattr(user_valves, name, None)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.strip() if isinstance(value, str) else ""


def resolve_settings(valves: Any, user_valves: object, language: str, *, admin: bool = False) -> _Settings | _Problem:
    """Admin valves, then the user's overrides (empty = admin default), then the call's language."""
    configured = _user_value(user_valves, "TRANSCRIPT_LANGUAGE") or valves.TRANSCRIPT_LANGUAGE
    languages = parse_languages(language if isinstance(language, str) else "")
    for code in parse_languages(configured) or ["en"]:
        if code.lower() not in (c.lower() for c in languages):
            languages.append(code)

    own_translate = _user_value(user_valves, "TRANSCRIPT_TRANSLATE")
    translate = own_translate or valves.TRANSCRIPT_TRANSLATE.strip()
    if translate.lower() in _NO_TRANSLATION:
        translate = ""
    if translate and not _LANGUAGE_CODE.fullmatch(translate):
        return _bad_translation(translate, users_own=bool(own_translate))
    timestamps = resolve_switch(_user_value(user_valves, "INCLUDE_TIMESTAMPS"), valves.INCLUDE_TIMESTAMPS)

    proxy = valves.PROXY_URL.strip()
    if proxy:
        try:
            parts = urlsplit(proxy)
            scheme, host = parts.scheme.lower(), parts.hostname
        except ValueError:
            scheme, host = "", None
        if scheme not in ("http", "https") or not host:
            return _Problem(
                "The YouTube Transcript tool is not set up correctly on this server, so no request was sent. "
                "Ask an administrator to check the tool's settings.",
                "The tool is not set up correctly",
                "the “Proxy URL” valve (PROXY_URL) is not an http:// or https:// proxy URL; use one such as "
                "http://user:password@proxy:8080, or leave it empty.",
            )
    return _Settings(
        languages=tuple(languages),
        translate_to=translate.replace("_", "-"),
        timestamps=timestamps,
        interval=valves.TIMESTAMP_INTERVAL,
        max_chars=valves.MAX_TRANSCRIPT_CHARS,
        details=valves.GET_VIDEO_DETAILS,
        citation=valves.CITATION,
        proxy=proxy,
        ttl=float(valves.CACHE_TTL),
        timeout=float(valves.REQUEST_TIMEOUT),
        admin=admin,
    )


def _bad_translation(value: str, *, users_own: bool) -> _Problem:
    if users_own:
        # the user's own setting: they can fix it themselves, so it is named (by its title)
        return _Problem(
            f"Your “Translate into” setting for the YouTube Transcript tool is {value!r}, which is not a "
            "language code such as 'en' or 'de', so no transcript was fetched. Change it in your settings "
            "for this tool (or set it to none).",
            "Your translation setting is not a language code",
        )
    return _Problem(
        "The YouTube Transcript tool is set to translate into something that is not a language code, so no "
        "transcript was fetched. Ask an administrator to check the tool's settings.",
        "The tool's translation setting is not a language code",
        f"the “Translate into” valve (TRANSCRIPT_TRANSLATE) is {value!r}; set a language code such as en, or "
        "leave it empty.",
    )


# --- formatting ----------------------------------------------------------------------------


def clock_label(seconds: float) -> str:
    """`m:ss` under an hour, `h:mm:ss` from an hour on (as YouTube writes them)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def moment_url(video_id: str, seconds: float) -> str:
    return f"{WATCH_URL.format(video_id=video_id)}&t={max(0, int(seconds))}s"


def paragraphs(segments: Sequence[tuple[float, str]], interval: int) -> list[tuple[float, str]]:
    """Segments joined into paragraphs of about `interval` seconds (0 = one per caption)."""
    result: list[tuple[float, str]] = []
    start = 0.0
    texts: list[str] = []
    for seg_start, text in segments:
        if texts and (interval <= 0 or seg_start - start >= interval):
            result.append((start, " ".join(texts)))
            texts = []
        if not texts:
            start = seg_start
        texts.append(text)
    if texts:
        result.append((start, " ".join(texts)))
    return result


def render_body(transcript: _Transcript, *, timestamps: bool, interval: int, max_chars: int) -> _Body:
    key = (timestamps, interval, max_chars)
    cached = transcript.bodies.get(key)
    if cached is not None:
        return cached
    pieces: list[str] = []
    included: list[tuple[float, str]] = []
    used = 0
    cut_at: float | None = None
    for start, text in paragraphs(transcript.segments, interval):
        piece = f"[{clock_label(start)}] {text}" if timestamps else text
        cost = len(piece) + (2 if pieces else 0)
        if max_chars and used + cost > max_chars:
            if not pieces:
                # the first paragraph alone is over the limit: keep its first words
                kept = piece[: max(0, max_chars - 1)]
                kept = kept.rsplit(" ", 1)[0] if " " in kept else kept
                pieces.append(kept + "…")
                prefix = len(piece) - len(text)
                included.append((start, text[: max(0, len(kept) - prefix)] + "…"))
            cut_at = start
            break
        pieces.append(piece)
        included.append((start, text))
        used += cost
    body = _Body("\n\n".join(pieces), tuple(included), cut_at)
    if len(transcript.bodies) >= 4:
        transcript.bodies.pop(next(iter(transcript.bodies)))
    transcript.bodies[key] = body
    return body


def describe_language(transcript: _Transcript) -> str:
    name = f"{transcript.language} ({transcript.language_code})"
    if transcript.translated_from:
        return f"{name}, machine-translated by YouTube from {transcript.translated_from}"
    if transcript.is_generated:
        return f"{name}, auto-generated captions (may contain recognition errors)"
    return f"{name}, captions written by the uploader"


def render(transcript: _Transcript, details: _Details | None, ref: _VideoRef, settings: _Settings) -> tuple[str, _Body]:
    body = render_body(
        transcript, timestamps=settings.timestamps, interval=settings.interval, max_chars=settings.max_chars
    )
    lines: list[str] = []
    if details is not None:
        lines += [f"Title: {details.title}", f"Channel: {details.channel}"]
    lines += [
        f"URL: {WATCH_URL.format(video_id=ref.video_id)}",
        f"Transcript language: {describe_language(transcript)}",
        f"Duration: about {clock_label(transcript.duration)}",
    ]
    if ref.start:
        lines.append(f"The shared link starts at {clock_label(ref.start)}.")
    if settings.timestamps:
        lines.append(
            f"Timestamps are [m:ss] or [h:mm:ss]; link a moment as {WATCH_URL.format(video_id=ref.video_id)}"
            "&t=SECONDSs."
        )
    lines += ["", "Transcript:", "", body.text or "(The transcript is empty.)"]
    if body.cut_at is not None:
        shown_until = clock_label(body.cut_at)
        note = (
            f"The transcript was cut at {settings.max_chars:,} characters: it covers 0:00 to {shown_until} of "
            f"{clock_label(transcript.duration)}. Tell the user the rest is missing."
        )
        detail = "the “Longest transcript” valve (MAX_TRANSCRIPT_CHARS) sets the limit; 0 means no limit."
        lines += ["", f"[{for_reader(note, detail, admin=settings.admin)}]"]
    return "\n".join(lines), body


def citation_event(ref: _VideoRef, details: _Details | None, body: _Body) -> Any:
    video_url = WATCH_URL.format(video_id=ref.video_id)
    name = details.title if details else f"YouTube video {ref.video_id}"
    documents: list[str] = []
    metadata: list[dict[str, Any]] = []
    for start, text in body.paragraphs or ((0.0, ""),):
        at = moment_url(ref.video_id, start)
        # Markdown link: the 0.12.4 citation modal renders documents as markdown, so each
        # paragraph's timestamp opens the video at that moment.
        documents.append(f"[{clock_label(start)}]({at}) {text}")
        # All paragraphs share `source` so Citations.svelte (0.12.4 frontend) groups them into one source;
        # `external` keeps the title as its name instead of the URL.
        metadata.append({"source": video_url, "name": name, "url": at, "external": True, "start": int(start)})
    return citation(documents, name=name, url=video_url, metadata=metadata)


# --- cache ---------------------------------------------------------------------------------


class _Cache:
    """Transcripts and video details fetched lately: each kept for its ttl (seconds of `clock`), the
    least recently used dropped past `max_entries` per table. Failures are never cached, so a retry
    always goes out."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 64) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self.transcripts: OrderedDict[tuple[str, tuple[str, ...], str], _CacheEntry] = OrderedDict()
        self.details: OrderedDict[str, _CacheEntry] = OrderedDict()

    def get(self, table: "OrderedDict[Any, _CacheEntry]", key: Any) -> Any:
        entry = table.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            del table[key]
            return None
        table.move_to_end(key)
        return entry.value

    def put(self, table: "OrderedDict[Any, _CacheEntry]", key: Any, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        table[key] = _CacheEntry(self.clock() + ttl, value)
        table.move_to_end(key)
        while len(table) > self.max_entries:
            table.popitem(last=False)

    def clear(self) -> None:
        self.transcripts.clear()
        self.details.clear()


# One cache per loaded module, shared by every call: it holds public YouTube data, not per-user
# state, and one module instance serves a whole worker.
_CACHE = _Cache()


# --- fetching (youtube-transcript-api, synchronous: runs in a worker thread) ------------

# youtube-transcript-api blocks, so it runs on threads, but never on asyncio's default executor:
# Open WebUI runs its own blocking work there (0.12.4: attached images' `Storage.get_file` in
# open_webui/utils/files.py, password checks in open_webui/utils/auth.py) and it has only
# min(32, CPUs + 4) threads, so fetches stuck on a dead proxy stalled other users' chats. One pool
# per loaded module = per Open WebUI worker, for every user: _WORKERS fetches at once, _QUEUE more
# waiting (a call past that is told the tool is busy), none started after its deadline.
_WORKERS = 4
_QUEUE = 16
_POOL = DeadlinePool("youtube-transcript", workers=_WORKERS, queue=_QUEUE)


@functools.cache
def _session_class() -> type:
    import requests

    class TimeoutSession(requests.Session):
        """youtube-transcript-api never passes a timeout; without one a dead proxy hangs the thread.

        Each request may take what is left of the call's deadline to connect (through a proxy: to
        get the CONNECT answer too) and as much between two reads, so the thread is free about
        when the tool answers; none is sent once the deadline has passed.
        """

        def __init__(self, deadline: Deadline) -> None:
            super().__init__()
            self.deadline = deadline

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            left = self.deadline.remaining()
            if left <= 0:
                raise requests.exceptions.Timeout("the call's deadline passed before this request")
            kwargs.setdefault("timeout", (left, left))
            if self.proxies:
                # requests lets HTTP(S)_PROXY from the environment override session proxies;
                # passed per request, PROXY_URL wins
                kwargs.setdefault("proxies", dict(self.proxies))
            return super().request(method, url, *args, **kwargs)

    return TimeoutSession


def _pick(transcripts: Sequence[Any], wanted: Sequence[str]) -> Any | None:
    """The first wanted language: exact code (manual before generated), then the same base language."""
    for code in wanted:
        exact = [t for t in transcripts if t.language_code.lower() == code.lower()]
        base = code.split("-")[0].lower()
        regional = [t for t in transcripts if t.language_code.split("-")[0].lower() == base]
        for group in (exact, regional):
            if group:
                return min(group, key=lambda t: t.is_generated)  # manual first, then list order
    return None


def _language_name(name: str) -> str:
    # YouTube names generated tracks "English (auto-generated)"; the tool says so itself
    return name.removesuffix(" (auto-generated)").strip() or name


def _available(transcripts: Sequence[Any]) -> str:
    labels = [
        f"{t.language_code} ({_language_name(t.language)}{', auto-generated' if t.is_generated else ''})"
        for t in transcripts
    ]
    return ", ".join(labels) if labels else "none"


class _YouTube:
    """Where the tool's requests go. Only URLs built from a video id are fetched, never one a user
    gave; tests aim an instance at a loopback fake (`session_hook` gets each new requests session,
    `oembed_endpoint` replaces YouTube's oEmbed URL) and give it a pool of their own (`pool`, with
    a hand-moved clock)."""

    def __init__(
        self,
        oembed_endpoint: str = OEMBED_ENDPOINT,
        session_hook: Callable[[Any], Any] | None = None,
        pool: DeadlinePool | None = None,
    ) -> None:
        self.oembed_endpoint = oembed_endpoint
        self.session_hook = session_hook
        self.pool = _POOL if pool is None else pool

    def open_session(self, deadline: Deadline) -> Any:
        """A new requests session per call: the library's client is not thread-safe."""
        session = _session_class()(deadline)
        return session if self.session_hook is None else self.session_hook(session)

    def fetch_transcript(
        self, deadline: Deadline, video_id: str, languages: Sequence[str], translate_to: str, proxy: str
    ) -> _Transcript:
        """The transcript in the first wanted language, else one YouTube translates (synchronous:
        runs on a thread of `pool`; every request it makes ends by `deadline`)."""
        from youtube_transcript_api import YouTubeTranscriptApi
        from youtube_transcript_api.proxies import GenericProxyConfig

        proxy_config = GenericProxyConfig(http_url=proxy, https_url=proxy) if proxy else None
        api = YouTubeTranscriptApi(proxy_config=proxy_config, http_client=self.open_session(deadline))
        transcripts = list(api.list(video_id))
        chosen = _pick(transcripts, languages)
        translated_from = None
        if chosen is None and translate_to:
            sources = sorted((t for t in transcripts if t.is_translatable), key=lambda t: t.is_generated)
            for source in sources:
                codes = {lang.language_code.lower(): lang.language_code for lang in source.translation_languages}
                if translate_to.lower() in codes:
                    translated_from = f"{_language_name(source.language)} ({source.language_code})"
                    chosen = source.translate(codes[translate_to.lower()])
                    break
            if chosen is None:
                raise _Problem(
                    f"The video has no transcript in {', '.join(languages)}, and YouTube cannot translate one "
                    f"into {translate_to!r}. Available transcripts: {_available(transcripts)}. Call the tool again "
                    "with `language` set to one of these codes to get that transcript.",
                    "No transcript in the wanted languages",
                )
        if chosen is None:
            raise _Problem(
                f"The video has no transcript in {', '.join(languages)}. Available transcripts: "
                f"{_available(transcripts)}. Call the tool again with `language` set to one of these codes "
                "to get that transcript (the tool's “Translate into” setting can have YouTube translate one "
                "instead).",
                "No transcript in the wanted languages",
            )
        fetched = chosen.fetch()
        segments = tuple(
            (s.start, " ".join(s.text.split())) for s in fetched.snippets if s.text and not s.text.isspace()
        )
        last = fetched.snippets[-1] if fetched.snippets else None
        return _Transcript(
            video_id=video_id,
            language=_language_name(chosen.language),
            language_code=chosen.language_code,
            is_generated=chosen.is_generated and translated_from is None,
            translated_from=translated_from,
            segments=segments,
            duration=(last.start + last.duration) if last else 0.0,
            bodies={},
        )

    async def fetch_details(self, video_id: str, proxy: str, timeout: float) -> _Details | None:
        """Title and channel from YouTube's oEmbed endpoint.

        `_NO_DETAILS` when YouTube answered but has none to give (worth remembering for a while),
        None when it could not be asked (network, timeout: worth retrying).
        """
        import aiohttp

        url = f"{self.oembed_endpoint}?url={quote(WATCH_URL.format(video_id=video_id), safe='')}&format=json"
        # Without PROXY_URL, HTTP(S)_PROXY / NO_PROXY count, as for requests on the transcript side.
        # Read here, not with aiohttp's trust_env: that reads them and ~/.netrc on asyncio's default
        # executor (aiohttp 3.x, ClientSession._request), which the tool leaves to Open WebUI.
        via = proxy or _environment_proxy(url)
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.get(url, proxy=via, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    # 401: embedding disabled, 404: private or deleted, 400: bad id
                    _LOG.info("oEmbed answered HTTP %s for %s", response.status, video_id)
                    return _NO_DETAILS if 400 <= response.status < 500 else None
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            _LOG.info("oEmbed failed for %s: %s", video_id, type(exc).__name__)
            return None
        title = data.get("title") if isinstance(data, dict) else None
        channel = data.get("author_name") if isinstance(data, dict) else None
        if not isinstance(title, str) or not title.strip():
            return _NO_DETAILS
        # one line each in the header, whatever the uploader typed
        return _Details(" ".join(title.split()), " ".join(channel.split()) if isinstance(channel, str) else "unknown")


def _environment_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY and NO_PROXY give for `url`, if any (environment only: no lookups)."""
    from urllib.request import getproxies_environment, proxy_bypass_environment

    parts = urlsplit(url)
    proxies = getproxies_environment()
    if not proxies or proxy_bypass_environment(parts.hostname or "", proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


def _blocked(exc: Any, url: str, settings: _Settings) -> _Problem:
    if settings.proxy:
        return _Problem(
            "YouTube is blocking transcript requests from this server, even through its proxy, so the "
            "transcript could not be fetched. Tell an administrator.",
            "YouTube blocked the request (proxy)",
            "the proxy in the “Proxy URL” valve (PROXY_URL) is blocked too; try another, preferably "
            "residential, proxy.",
        )
    return _Problem(
        "YouTube is blocking transcript requests from this server's IP address (it does so for most cloud "
        "servers and after many requests), so the transcript could not be fetched. Try again later, or tell "
        "an administrator if it keeps happening.",
        "YouTube blocked this server's IP",
        "set the tool's “Proxy URL” valve (PROXY_URL) to an HTTP(S) proxy, preferably a residential one, "
        "to get around it.",
    )


def _unplayable(exc: Any, url: str, settings: _Settings) -> _Problem:
    reason = (exc.reason or "").strip()
    if "private" in reason.lower():
        return _Problem(f"The video {url} is private, so its transcript cannot be read.", "The video is private")
    details = "; ".join([reason, *[s.strip() for s in exc.sub_reasons if s.strip()]]) or "no reason given"
    return _Problem(
        f"YouTube will not play the video {url} for this server ({details}), so its transcript cannot be read.",
        "The video is unplayable",
    )


def _request_failed(exc: Any, url: str, settings: _Settings) -> _Problem:
    status_code = re.match(r"\s*(\d{3})", exc.reason or "")
    code = f" (HTTP {status_code.group(1)})" if status_code else ""
    return _Problem(
        f"YouTube answered the transcript request with an error{code}. Try again later.",
        f"YouTube answered with an error{code}",
    )


def _network_timeout(exc: Any, url: str, settings: _Settings) -> _Problem:
    via = " through this server's proxy" if settings.proxy else ""
    check = "the proxy in the “Proxy URL” valve (PROXY_URL)" if settings.proxy else "the server's network"
    return _Problem(
        f"YouTube did not answer within {settings.timeout:g} seconds{via}, so the transcript of {url} could "
        "not be fetched. Try again later.",
        "YouTube did not answer in time",
        f"check {check}, or raise the “Request timeout” valve (REQUEST_TIMEOUT).",
    )


def _busy(exc: Any, url: str, settings: _Settings) -> _Problem:
    """No thread of the tool's pool was free: refused at once (`PoolFull`), or waited until the
    deadline (`DeadlinePassed`); either way no request was sent for this call."""
    stuck = (
        f"all {exc.workers} of the tool's fetches were waiting for YouTube and {exc.queue} more calls were queued"
        if isinstance(exc, PoolFull)
        else f"the tool's {exc.workers} fetches were all waiting for YouTube for {settings.timeout:g} seconds"
    )
    where = "the proxy in the “Proxy URL” valve (PROXY_URL)" if settings.proxy else "the server's network"
    return _Problem(
        "The YouTube Transcript tool is busy with other requests right now, so the transcript of "
        f"{url} was not fetched. Try again in a minute.",
        "The tool is busy",
        f"{stuck}; when that keeps happening YouTube or {where} is not answering.",
    )


def _network_error(exc: Any, url: str, settings: _Settings) -> _Problem:
    _LOG.warning("network error fetching the transcript of %s: %s", url, type(exc).__name__)
    if settings.proxy:
        return _Problem(
            "Could not reach YouTube through this server's proxy, so the transcript could not be fetched. "
            "Try again later, or tell an administrator if it keeps happening.",
            "Could not reach YouTube",
            "a network error on the way through the proxy in the “Proxy URL” valve (PROXY_URL); check the "
            "proxy and the server's network (the server log names the error).",
        )
    return _Problem(
        "Could not reach YouTube from this server, so the transcript could not be fetched. Try again later, "
        "or tell an administrator if it keeps happening.",
        "Could not reach YouTube",
        "a network error: the server may have no internet access. Check its network, or set the “Proxy URL” "
        "valve (PROXY_URL); the server log names the error.",
    )


def _fixed(message: str, short: str, detail: str = "") -> Callable[[Any, str, _Settings], _Problem]:
    """A problem whose message only names the video (`{url}`)."""
    return lambda exc, url, settings: _Problem(message.format(url=url), short, detail)


@functools.cache
def _problems() -> tuple[tuple[tuple[type, ...], Callable[[Any, str, _Settings], _Problem]], ...]:
    """(exception types, explanation) in the order they are checked; the library's first."""
    import requests
    import youtube_transcript_api as yta

    return (
        ((yta.RequestBlocked,), _blocked),  # IpBlocked is a subclass
        (
            (yta.TranscriptsDisabled,),
            _fixed(
                "The video {url} has no transcript: subtitles are turned off for it (or YouTube made none).",
                "Transcripts are disabled for this video",
            ),
        ),
        (
            (yta.AgeRestricted,),
            _fixed(
                "The video {url} is age-restricted: YouTube only shows its transcript to signed-in users, so "
                "this tool cannot read it.",
                "The video is age-restricted",
            ),
        ),
        (
            (yta.VideoUnavailable, yta.InvalidVideoId),
            _fixed(
                "The video {url} is unavailable: it was removed, or the link or id is wrong.",
                "The video is unavailable",
            ),
        ),
        ((yta.VideoUnplayable,), _unplayable),
        (
            (yta.PoTokenRequired,),
            _fixed(
                "YouTube requires an extra browser check (a PO token) for the transcript of {url}; this tool "
                "cannot pass it. Try again later.",
                "YouTube asked for a browser check",
            ),
        ),
        ((yta.YouTubeRequestFailed,), _request_failed),
        (
            (yta.YouTubeDataUnparsable, yta.FailedToCreateConsentCookie),
            _fixed(
                "YouTube sent a page this tool could not read (YouTube may have changed it), so the transcript "
                "of {url} could not be fetched. Try again later.",
                "YouTube's answer could not be read",
                "if it keeps happening, update the youtube-transcript-api package on the server.",
            ),
        ),
        (
            (requests.exceptions.ProxyError,),
            _fixed(
                "Could not reach YouTube through this server's proxy, so the transcript could not be fetched. "
                "Tell an administrator.",
                "Could not reach the proxy",
                "the proxy in the “Proxy URL” valve (PROXY_URL) could not be reached or refused the connection; "
                "check that it runs and that the URL is right.",
            ),
        ),
        ((requests.exceptions.Timeout,), _network_timeout),
        ((requests.exceptions.RequestException,), _network_error),
    )


def explain(exc: BaseException, video_id: str, settings: _Settings) -> _Problem:
    """A library or network failure as sentences the model can pass on."""
    if isinstance(exc, _Problem):
        return exc
    url = WATCH_URL.format(video_id=video_id)
    if isinstance(exc, (PoolFull, DeadlinePassed)):
        return _busy(exc, url, settings)
    if isinstance(exc, TimeoutError):
        return _network_timeout(exc, url, settings)
    try:
        problems = _problems()
    except ImportError:
        _LOG.error("youtube-transcript-api is not installed")
        return _Problem(
            "This server cannot fetch YouTube transcripts: a package the tool needs is not installed. Tell an "
            "administrator.",
            "A package the tool needs is missing",
            "install youtube-transcript-api in Open WebUI's Python environment (pip install youtube-transcript-api).",
        )
    for kinds, problem in problems:
        if isinstance(exc, kinds):
            return problem(exc, url, settings)
    if isinstance(exc, ElementTreeParseError):
        # YouTube sometimes answers the caption request with an empty body instead of XML
        return _Problem(
            f"YouTube returned an empty or broken transcript for {url}. Try again later.",
            "YouTube returned an empty transcript",
        )
    _LOG.error("unexpected failure fetching the transcript of %s", video_id, exc_info=exc)
    return _Problem(
        f"The transcript of {url} could not be fetched because of an unexpected error. Try again later.",
        "Could not get the transcript",
        "the server log has the error and its traceback.",
    )


async def obtain(
    ref: _VideoRef, settings: _Settings, emitter: Emitter, youtube: _YouTube, cache: _Cache
) -> tuple[_Transcript, _Details | None]:
    """Transcript and details from the cache or YouTube, both within one REQUEST_TIMEOUT."""
    key = (ref.video_id, tuple(c.lower() for c in settings.languages), settings.translate_to.lower())
    transcript = cache.get(cache.transcripts, key)
    details = cache.get(cache.details, ref.video_id) if settings.details else None
    need_details = settings.details and details is None
    if transcript is not None and not need_details:
        return transcript, None if details is _NO_DETAILS else details

    await emitter.status(f"Fetching the YouTube transcript of {ref.video_id}…")
    deadline = youtube.pool.deadline(settings.timeout)
    details_task = (
        asyncio.ensure_future(youtube.fetch_details(ref.video_id, settings.proxy, settings.timeout))
        if need_details
        else None
    )
    try:
        if transcript is None:
            try:
                # the tool's own threads, never asyncio's default executor (see _POOL)
                transcript = await youtube.pool.run(
                    deadline,
                    youtube.fetch_transcript,
                    ref.video_id,
                    settings.languages,
                    settings.translate_to,
                    settings.proxy,
                )
            except Exception as exc:
                raise explain(exc, ref.video_id, settings) from None
            cache.put(cache.transcripts, key, transcript, settings.ttl)
        if details_task is not None:
            try:
                details = await asyncio.wait_for(details_task, deadline.remaining())
            except TimeoutError:
                details = None
            if details is _NO_DETAILS:
                cache.put(cache.details, ref.video_id, details, min(settings.ttl, _NO_DETAILS_TTL))
            elif details is not None:
                cache.put(cache.details, ref.video_id, details, settings.ttl)
    finally:
        if details_task is not None and not details_task.done():
            details_task.cancel()
            # Wait for it to stop, so no request of this call goes out after the tool has answered.
            await asyncio.wait({details_task})
    return transcript, None if details is _NO_DETAILS else details


async def _told(problem: _Problem, emitter: Emitter, admin: bool) -> str:
    """Ends the call on `problem`: the status line, the log, and the text for this reader."""
    if problem.detail:
        _LOG.warning("%s: %s", problem.short, problem.detail)
    await emitter.status(problem.short, done=True)
    return problem.text_for(admin)


# --- the tool ------------------------------------------------------------------------------


class Tools:
    class Valves(BaseModel):
        TRANSCRIPT_LANGUAGE: str = Field(
            default="en",
            title="Transcript languages",
            description="Transcript languages in order of preference, comma-separated codes (e.g. en, de, es). "
            "A code also matches its regional variants (en matches en-US).",
        )
        TRANSCRIPT_TRANSLATE: str = Field(
            default="",
            title="Translate into",
            description="When none of the preferred languages exists, have YouTube translate a transcript into "
            "this language code (e.g. en). Empty = off.",
        )
        GET_VIDEO_DETAILS: bool = Field(
            default=True, title="Video title and channel", description="Add the video's title and channel (oEmbed)."
        )
        INCLUDE_TIMESTAMPS: bool = Field(
            default=True, title="Timestamps", description="Start each paragraph with [m:ss]."
        )
        TIMESTAMP_INTERVAL: int = Field(
            default=60,
            title="Paragraph length (seconds)",
            ge=0,
            le=3600,
            description="Seconds of speech per paragraph (0 = one line per caption).",
        )
        MAX_TRANSCRIPT_CHARS: int = Field(
            default=100_000,
            title="Longest transcript (characters)",
            ge=0,
            description="Longer transcripts are cut, with a note saying so (0 = no limit).",
        )
        CITATION: bool = Field(
            default=True,
            title="Show the video as a source",
            description="Show the video as a source, with a link per paragraph.",
        )
        PROXY_URL: str = Field(
            default="",
            title="Proxy URL",
            description="HTTP(S) proxy for all YouTube requests, e.g. http://user:pass@host:8080 (for servers "
            "whose IP YouTube blocks). Empty = direct.",
            json_schema_extra={"input": {"type": "password"}},
        )
        CACHE_TTL: int = Field(
            default=3600,
            title="Cache time (seconds)",
            ge=0,
            description="Seconds a fetched transcript is reused (0 = no cache).",
        )
        REQUEST_TIMEOUT: float = Field(
            default=15.0,
            title="Request timeout (seconds)",
            gt=0,
            le=300,
            description="Seconds to wait for YouTube before giving up.",
        )

    class UserValves(BaseModel):
        TRANSCRIPT_LANGUAGE: str = Field(
            default="",
            title="Transcript languages",
            description="Your preferred transcript languages, comma-separated codes. Empty = the administrator's "
            "setting.",
        )
        TRANSCRIPT_TRANSLATE: str = Field(
            default="",
            title="Translate into",
            description="Language code to translate into when none of your languages exists. Empty = the "
            "administrator's setting; none = never translate.",
        )
        INCLUDE_TIMESTAMPS: Switch = Field(
            default="default",
            title="Timestamps",
            description="Timestamps in the transcript: on, off, or default (the administrator's setting).",
        )

        @field_validator("INCLUDE_TIMESTAMPS", mode="before")
        @classmethod
        def _switch(cls, value: object) -> Switch:
            # values saved when this was a text box ("true", "false", empty) keep their meaning
            return as_switch(value)

    def __init__(self) -> None:
        self.valves = self.Valves()
        # Plain objects, not callables: Open WebUI (get_functions_from_tool in open_webui/utils/tools.py,
        # 0.6.43 to 0.12.4) offers the model every public callable attribute of Tools.
        self.cache = _CACHE
        self.youtube = _YouTube()

    async def get_youtube_transcript(
        self,
        url: str,
        language: str = "",
        __user__: dict | None = None,
        __event_emitter__: EventEmitter | None = None,
    ) -> str:
        """
        Get the title, channel and full transcript (what is said, with timestamps) of a YouTube video.
        Use it whenever the user shares a YouTube link or asks about a video's content.
        :param url: The YouTube video link (watch, youtu.be, shorts, embed or live) or the 11-character video id.
        :param language: Optional language code to prefer, such as "en" or "de".
            Leave empty to use the configured languages.
        """
        valves = self.valves  # read once: Open WebUI replaces it per request
        emitter = Emitter(__event_emitter__)
        ref = parse_video(url)
        if ref is None:
            await emitter.status("Not a YouTube video link", done=True)
            return refusal(url if isinstance(url, str) else "")
        user_valves = __user__.get("valves") if isinstance(__user__, dict) else None
        admin = is_admin(__user__)
        settings = resolve_settings(valves, user_valves, language, admin=admin)
        if isinstance(settings, _Problem):
            return await _told(settings, emitter, admin)
        try:
            transcript, details = await obtain(ref, settings, emitter, self.youtube, self.cache)
        except _Problem as problem:
            return await _told(problem, emitter, admin)
        text, body = render(transcript, details, ref, settings)
        if settings.citation:
            await emitter.emit(citation_event(ref, details, body))
        label = f"“{details.title}”" if details else ref.video_id
        await emitter.status(
            f"Got the transcript of {label} ({clock_label(transcript.duration)}, {transcript.language})", done=True
        )
        return text
