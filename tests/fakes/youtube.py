"""A fake YouTube on 127.0.0.1 for the youtube_transcript tool, plus a fake proxy.

    with FakeYouTube() as yt:
        yt.add(Video("dQw4w9WgXcQ", title="...", tracks=[Track("en", "English", segments=[(0, 2, "hi")])]))
        session = yt.route(requests.Session())  # its https://www.youtube.com requests reach the fake
        yt.oembed_endpoint                      # "http://127.0.0.1:PORT/oembed"
        yt.requests                             # Seen(method, path, query, headers, body) for each one
        yt.held()                               # paths of requests `hang` holds unanswered right now
        yt.escaped                              # requests to any other host (refused; must stay empty)
        yt.timeouts                             # the `timeout` each routed request was sent with
    with BlackHole() as hole:                   # a proxy that accepts connections and never answers
        hole.url, hole.accepted, hole.closed    # "http://127.0.0.1:PORT"; connections so far; dropped by clients

Wire format, as youtube-transcript-api 1.2.4 reads it (`_transcripts.py`, `_settings.py`, and the
shapes of its recorded responses under `youtube_transcript_api/test/assets/`):
- `GET /watch?v=ID` -> the watch page HTML with `"INNERTUBE_API_KEY":"..."` inside `ytcfg.set(...)`;
  variants: the EU consent form (`action="https://consent.youtube.com/s"`, hidden `name="v"`; the
  library sets a `CONSENT=YES+<v>` cookie and asks again), a reCAPTCHA page (`class="g-recaptcha"`,
  no key; the library raises IpBlocked), HTTP 429 (IpBlocked), a page without a key (unparsable).
- `POST /youtubei/v1/player?key=KEY` with `{"context": {"client": {"clientName": "ANDROID", ...}},
  "videoId": ID}` -> the player response: `playabilityStatus` {status OK | ERROR | LOGIN_REQUIRED |
  UNPLAYABLE, reason, errorScreen.playerErrorMessageRenderer.subreason.runs}, `captions.
  playerCaptionsTracklistRenderer` {captionTracks [{baseUrl, name.runs[0].text, vssId, languageCode,
  kind: "asr" for generated, isTranslatable, trackName}], translationLanguages [{languageCode,
  languageName.runs[0].text}]}, `videoDetails`. No `captions` key = subtitles disabled.
- `GET /api/timedtext?v=ID&...&lang=xx[&kind=asr][&tlang=yy]` (the track's baseUrl without
  `&fmt=srv3`) -> `<transcript><text start="s" dur="d">...</text></transcript>`, whose text is
  HTML-escaped once more (YouTube sends `&amp;#39;`; the library unescapes after parsing XML).
  A baseUrl with `&exp=xpe` means a PO token is required (the library refuses it before fetching).
- `GET /oembed?url=<watch url>&format=json` -> `{"title", "author_name", "author_url", "type":
  "video", "version": "1.0", "provider_name": "YouTube", ...}`; plain-text 401 "Unauthorized"
  (embedding off), 404 "Not Found" (private, removed), 400 "Bad Request" (not a video URL).

Stdlib + requests only; servers bind 127.0.0.1 and run in daemon threads.
"""

from __future__ import annotations

import html
import json
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape as xml_escape

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy

API_KEY = "AIzaSyFakeInnertubeKey_0123456789abcdef"
YOUTUBE_HOST = "www.youtube.com"
TRANSLATION_LANGUAGES = [("de", "German"), ("en", "English"), ("es", "Spanish"), ("fr", "French"), ("ja", "Japanese")]


@dataclass
class Track:
    code: str
    name: str
    segments: list[tuple[float, float, str]] = field(default_factory=list)  # (start, dur, text)
    generated: bool = False
    translatable: bool = True


@dataclass
class Video:
    video_id: str
    title: str = "A test video"
    channel: str = "Test Channel"
    tracks: list[Track] = field(default_factory=list)
    translation_languages: list[tuple[str, str]] = field(default_factory=lambda: list(TRANSLATION_LANGUAGES))
    # "ok" | "unavailable" | "age_restricted" | "private" | "bot" | "unplayable"
    playability: str = "ok"
    captions: bool = True  # False: no `captions` in the player response (subtitles disabled)
    watch: str = "ok"  # "ok" | "consent" | "recaptcha" | "too_many" | "no_key"
    player_status: int = 200
    timedtext: str = "ok"  # "ok" | "empty" | "po_token"
    hang: str = ""  # "" | "watch" | "player" | "timedtext" | "oembed": hold that request unanswered;
    # "drop": close the connection on the watch page request without answering
    oembed_status: int = 200


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    held: bool = False  # True while `hang` keeps this request unanswered


def segments_for(count: int, *, step: float = 2.0, words: str = "word") -> list[tuple[float, float, str]]:
    """`count` captions of `step` seconds each, numbered so tests can find them."""
    return [(i * step, step, f"{words} {i}") for i in range(count)]


def watch_page(video: Video | None, video_id: str, consent_given: bool) -> tuple[int, str]:
    title = html.escape(video.title if video else "YouTube")
    if video is not None and video.watch == "too_many":
        return 429, "<html><body>We're sorry... but your computer is sending automated queries.</body></html>"
    if video is not None and video.watch == "recaptcha":
        return 200, (
            "<!DOCTYPE html><html><head><title>https://www.youtube.com/watch</title></head><body>"
            '<form id="captcha-form" action="index" method="post">'
            '<script src="https://www.google.com/recaptcha/api.js" async defer></script>'
            '<div id="recaptcha" class="g-recaptcha" data-sitekey="6LfwuyUTAAAAAOAmoS0fdqijC2PbbdH4kjq62Y1b">'
            "</div></form></body></html>"
        )
    if video is not None and video.watch == "consent" and not consent_given:
        return 200, (
            '<!DOCTYPE html><html lang="en"><head><title>Before you continue to YouTube</title></head><body>'
            '<form action="https://consent.youtube.com/s" method="POST">'
            '<input type="hidden" name="gl" value="DE"><input type="hidden" name="m" value="0">'
            '<input type="hidden" name="pc" value="yt"><input type="hidden" name="continue" '
            f'value="https://www.youtube.com/watch?v={video_id}&amp;cbrd=1">'
            '<input type="hidden" name="v" value="cb.20250601-07-p0.en+FX+120">'
            '<button type="submit">Accept all</button></form></body></html>'
        )
    config = {
        "INNERTUBE_API_VERSION": "v1",
        "INNERTUBE_CLIENT_NAME": "WEB",
        "INNERTUBE_CLIENT_VERSION": "2.20250601.01.00",
        "VISITOR_DATA": "CgtGYWtlVmlzaXRvcg%3D%3D",
    }
    if video is None or video.watch != "no_key":
        config = {"INNERTUBE_API_KEY": API_KEY, **config}
    return 200, (
        f'<!DOCTYPE html><html lang="en" dir="ltr"><head><title>{title} - YouTube</title>'
        f'<meta property="og:title" content="{title}">'
        f'<script nonce="fake">ytcfg.set({json.dumps(config, separators=(",", ":"))});</script>'
        '</head><body dir="ltr"><div id="player"></div></body></html>'
    )


def _runs(text: str) -> dict[str, Any]:
    return {"runs": [{"text": text}]}


def _error_screen(reason: str, subreasons: list[str]) -> dict[str, Any]:
    renderer: dict[str, Any] = {"reason": _runs(reason), "icon": {"iconType": "ERROR_OUTLINE"}}
    if subreasons:
        renderer["subreason"] = {"runs": [{"text": s} for s in subreasons]}
    return {"playerErrorMessageRenderer": renderer}


PLAYABILITY: dict[str, dict[str, Any]] = {
    "unavailable": {
        "status": "ERROR",
        "reason": "This video is unavailable",
        "errorScreen": _error_screen("This video is unavailable", []),
    },
    "age_restricted": {
        "status": "LOGIN_REQUIRED",
        "reason": "This video may be inappropriate for some users.",
        "errorScreen": {
            "confirmDialogRenderer": {
                "title": _runs("You must sign in to view this video"),
                "dialogMessages": [_runs("This video may be inappropriate for some users.")],
            }
        },
    },
    "private": {
        "status": "LOGIN_REQUIRED",
        "reason": "This video is private",
        "messages": ["This is a private video. Please sign in to verify that you may see it."],
        "errorScreen": _error_screen("Private video", ["Sign in if you've been granted access to this video"]),
    },
    "bot": {
        "status": "LOGIN_REQUIRED",
        "reason": "Sign in to confirm you’re not a bot",
        "errorScreen": _error_screen("Sign in to confirm you’re not a bot", ["This helps protect our community. "]),
    },
    "unplayable": {
        "status": "UNPLAYABLE",
        "reason": "Video unavailable",
        "errorScreen": _error_screen(
            "Video unavailable", ["The uploader has not made this video available in your country"]
        ),
    },
}


def timedtext_url(video: Video, track: Track) -> str:
    url = (
        f"https://{YOUTUBE_HOST}/api/timedtext?v={video.video_id}&ei=FakeEventId&caps=asr&opi=112496729"
        "&xoaf=5&hl=en&ip=0.0.0.0&ipbits=0&expire=1900000000&sparams=ip,ipbits,expire,v,ei,caps,opi,xoaf"
        "&signature=FAKE0SIGNATURE.FAKE1SIGNATURE&key=yt8"
    )
    if track.generated:
        url += "&kind=asr"
    url += f"&lang={track.code}"
    if video.timedtext == "po_token":
        url += "&exp=xpe"
    return url + "&fmt=srv3"


def player_response(video: Video | None, video_id: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "responseContext": {"visitorData": "CgtGYWtlVmlzaXRvcg%3D%3D", "maxAgeSeconds": 0},
        "trackingParams": "CAAQu2kiEwjFakeTracking",
    }
    if video is None:
        response["playabilityStatus"] = PLAYABILITY["unavailable"]
        return response
    if video.playability != "ok":
        response["playabilityStatus"] = PLAYABILITY[video.playability]
        return response
    response["playabilityStatus"] = {"status": "OK", "playableInEmbed": True, "contextParams": "Q0FFU0FnZ0M="}
    if video.captions:
        tracks = [
            {
                "baseUrl": timedtext_url(video, t),
                "name": _runs(t.name + (" (auto-generated)" if t.generated else "")),
                "vssId": ("a." if t.generated else ".") + t.code,
                "languageCode": t.code,
                **({"kind": "asr"} if t.generated else {}),
                "isTranslatable": t.translatable,
                "trackName": "",
            }
            for t in video.tracks
        ]
        response["captions"] = {
            "playerCaptionsTracklistRenderer": {
                "captionTracks": tracks,
                "audioTracks": [{"captionTrackIndices": list(range(len(tracks))), "hasDefaultTrack": True}],
                "translationLanguages": [
                    {"languageCode": code, "languageName": _runs(name)} for code, name in video.translation_languages
                ],
                "defaultAudioTrackIndex": 0,
            }
        }
    last = max((s[0] + s[1] for t in video.tracks for s in t.segments), default=0)
    response["videoDetails"] = {
        "videoId": video_id,
        "title": video.title,
        "lengthSeconds": str(int(last)),
        "channelId": "UCFakeChannel0000000000",
        "author": video.channel,
        "isPrivate": False,
        "isLiveContent": False,
    }
    return response


def transcript_xml(segments: list[tuple[float, float, str]], translate_to: str | None) -> str:
    parts = ['<?xml version="1.0" encoding="utf-8" ?><transcript>']
    for start, dur, text in segments:
        shown = f"[{translate_to}] {text}" if translate_to else text
        # escaped twice, as YouTube does: once as HTML inside the text, once for XML
        parts.append(f'<text start="{start:g}" dur="{dur:g}">{xml_escape(html.escape(shown))}</text>')
    parts.append("</transcript>")
    return "".join(parts)


class _QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that time out drop their connection mid-request: expected here, not an error
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _QuietTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeYouTube:
    def __init__(self) -> None:
        self.videos: dict[str, Video] = {}
        self.requests: list[Seen] = []
        self.escaped: list[str] = []
        self.timeouts: list[Any] = []  # what requests passed to the adapter as `timeout`, per request
        self.release = threading.Event()  # set to answer (drop) requests held by `hang`
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def __enter__(self) -> FakeYouTube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeYouTube:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-youtube", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base(self) -> str:
        assert self._server is not None, "FakeYouTube is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def oembed_endpoint(self) -> str:
        return f"{self.base}/oembed"

    # --- videos and requests ---

    def add(self, *videos: Video) -> None:
        for video in videos:
            self.videos[video.video_id] = video

    def reset(self) -> None:
        self.videos.clear()
        with self._lock:
            self.requests.clear()
            self.escaped.clear()
            self.timeouts.clear()
        self.release.clear()

    def paths(self) -> list[str]:
        with self._lock:
            return [s.path for s in self.requests]

    def held(self) -> list[str]:
        """Paths of the requests still held unanswered. A client that already gave up on one has
        proved it stops waiting at its own time limit, whatever that limit is in seconds."""
        with self._lock:
            return [s.path for s in self.requests if s.held]

    def route(self, session: requests.Session) -> requests.Session:
        """Send every request of `session` to this fake (other hosts are refused and recorded)."""
        adapter = LoopbackAdapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)


class LoopbackAdapter(HTTPAdapter):
    """Rewrites https://www.youtube.com/... to the fake's loopback address; nothing else leaves."""

    def __init__(self, fake: FakeYouTube) -> None:
        super().__init__(max_retries=0)
        self.fake = fake

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        if parts.hostname != YOUTUBE_HOST:
            with self.fake._lock:
                self.fake.escaped.append(request.url or "")
            raise requests.exceptions.ConnectionError(f"fake YouTube refuses requests to {parts.hostname}")
        with self.fake._lock:
            self.fake.timeouts.append(kwargs.get("timeout"))
        request.url = f"{self.fake.base}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        request.headers["Host"] = YOUTUBE_HOST
        kwargs["proxies"] = {}  # the fake is the network; PROXY_URL is tested with FakeProxy
        return super().send(request, *args, **kwargs)


class LoopbackProxyOnly(HTTPAdapter):
    """Lets a request out only through a proxy on 127.0.0.1 (for PROXY_URL tests); records the rest."""

    def __init__(self, escaped: list[str]) -> None:
        super().__init__(max_retries=0)
        self.escaped = escaped

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        proxy = select_proxy(request.url or "", kwargs.get("proxies") or {})
        if not proxy or urlsplit(proxy).hostname != "127.0.0.1":
            self.escaped.append(request.url or "")
            raise requests.exceptions.ConnectionError("only loopback proxies are allowed in tests")
        return super().send(request, *args, **kwargs)


def proxy_only(session: requests.Session, escaped: list[str]) -> requests.Session:
    adapter = LoopbackProxyOnly(escaped)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _Handler(BaseHTTPRequestHandler):
    owner: FakeYouTube
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _seen(self, body: bytes = b"") -> Seen:
        parts = urlsplit(self.path)
        seen = Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
        self.owner.record(seen)
        return seen

    def _send(self, status: int, body: str | bytes, content_type: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _hold(self, seen: Seen) -> None:
        """Never answer (until the fake is released or stopped); the client must time out."""
        seen.held = True
        self.owner.release.wait(60)
        seen.held = False
        self.close_connection = True

    def do_GET(self) -> None:
        seen = self._seen()
        query = {k: v[0] for k, v in seen.query.items()}
        if seen.path == "/watch":
            return self._watch(seen, query)
        if seen.path == "/api/timedtext":
            return self._timedtext(seen, query)
        if seen.path == "/oembed":
            return self._oembed(seen, query)
        return self._send(404, "<html><body>404 Not Found</body></html>", "text/html; charset=utf-8")

    def _watch(self, seen: Seen, query: dict[str, str]) -> None:
        video_id = query.get("v", "")
        video = self.owner.videos.get(video_id)
        if video is not None and video.hang == "watch":
            return self._hold(seen)
        if video is not None and video.hang == "drop":
            self.close_connection = True
            return None
        consent = "CONSENT=YES+cb.20250601-07-p0.en+FX+120" in self.headers.get("Cookie", "")
        status, page = watch_page(video, video_id, consent)
        return self._send(status, page, "text/html; charset=utf-8")

    def _timedtext(self, seen: Seen, query: dict[str, str]) -> None:
        video = self.owner.videos.get(query.get("v", ""))
        track = None
        if video is not None:
            generated = query.get("kind") == "asr"
            track = next((t for t in video.tracks if t.code == query.get("lang") and t.generated == generated), None)
        if video is None or track is None or "fmt" in query:
            return self._send(404, "", "text/html; charset=utf-8")
        if video.hang == "timedtext":
            return self._hold(seen)
        if video.timedtext == "empty":
            return self._send(200, "", "text/xml; charset=UTF-8")
        return self._send(200, transcript_xml(track.segments, query.get("tlang")), "text/xml; charset=UTF-8")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = self._seen(self.rfile.read(length) if length else b"")
        if seen.path != "/youtubei/v1/player":
            return self._send(404, "", "text/html; charset=utf-8")
        try:
            body = json.loads(seen.body or b"{}")
            video_id = body["videoId"]
            client = body["context"]["client"]["clientName"]
        except (ValueError, KeyError, TypeError):
            error = {
                "error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}
            }
            return self._send(400, json.dumps(error), "application/json; charset=UTF-8")
        if seen.query.get("key") != [API_KEY] or not client:
            return self._api_error(400, "API key not valid.", "INVALID_ARGUMENT")
        video = self.owner.videos.get(video_id)
        if video is not None and video.hang == "player":
            return self._hold(seen)
        if video is not None and video.player_status != 200:
            error = {
                "error": {"code": video.player_status, "message": "Internal error encountered.", "status": "INTERNAL"}
            }
            return self._send(video.player_status, json.dumps(error), "application/json; charset=UTF-8")
        return self._send(200, json.dumps(player_response(video, video_id)), "application/json; charset=UTF-8")

    def _api_error(self, code: int, message: str, status: str) -> None:
        error = {"error": {"code": code, "message": message, "status": status}}
        self._send(code, json.dumps(error), "application/json; charset=UTF-8")

    def _oembed(self, seen: Seen, query: dict[str, str]) -> None:
        target = urlsplit(query.get("url", ""))
        video_id = parse_qs(target.query).get("v", [""])[0]
        if target.hostname not in ("www.youtube.com", "youtube.com", "youtu.be") or not video_id:
            return self._send(400, "Bad Request", "text/html; charset=utf-8")
        video = self.owner.videos.get(video_id)
        if video is not None and video.hang == "oembed":
            return self._hold(seen)
        if video is None or video.playability in ("unavailable", "private"):
            return self._send(404, "Not Found", "text/html; charset=utf-8")
        if video.oembed_status != 200:
            text = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(video.oembed_status, "Error")
            return self._send(video.oembed_status, text, "text/html; charset=utf-8")
        data = {
            "title": video.title,
            "author_name": video.channel,
            "author_url": "https://www.youtube.com/@testchannel",
            "type": "video",
            "height": 113,
            "width": 200,
            "version": "1.0",
            "provider_name": "YouTube",
            "provider_url": "https://www.youtube.com/",
            "thumbnail_height": 360,
            "thumbnail_width": 480,
            "thumbnail_url": f"https://i.ytimg.com/vi/{video_id}/hqdefault.jpg",
            "html": f'<iframe width="200" height="113" src="https://www.youtube.com/embed/{video_id}?feature=oembed" '
            'frameborder="0" allowfullscreen title="video"></iframe>',
        }
        return self._send(200, json.dumps(data), "application/json")


# --- proxies --------------------------------------------------------------------------------


class FakeProxy:
    """An HTTP proxy on 127.0.0.1 that never gets anyone anywhere.

    mode "refuse": answers every request (CONNECT or absolute-URI) with 403 and records its target.
    mode "hang": accepts connections and never answers (a black hole), so clients must time out;
    `held` counts the connections it is holding unanswered right now.
    """

    def __init__(self, mode: str = "refuse") -> None:
        assert mode in ("refuse", "hang")
        self.mode = mode
        self.targets: list[str] = []
        self.held = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None

    def __enter__(self) -> FakeProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeProxy:
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                if proxy.mode == "hang":
                    proxy._count_held(1)
                    try:
                        proxy._read_target(self.rfile)
                        proxy.release.wait(60)
                    finally:
                        proxy._count_held(-1)
                    return
                proxy._read_target(self.rfile)
                while self.rfile.readline(8192).strip():
                    pass  # headers
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

        server = _QuietTCPServer(("127.0.0.1", 0), Handler)
        self._server = server
        threading.Thread(target=server.serve_forever, name=f"fake-proxy-{self.mode}", daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _read_target(self, rfile: Any) -> None:
        line = rfile.readline(8192).decode("latin-1").strip()
        if line:
            self.targets.append(line.split(" ")[1] if " " in line else line)

    def _count_held(self, change: int) -> None:
        with self._lock:
            self.held += change


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts every connection, reads what comes and never answers.

    As a PROXY_URL it is a proxy (or a network) that has gone silent: clients only get away by their
    own timeouts. `accepted` counts connections, `closed` those the client dropped (its timeout
    fired), `targets` the first request line of each (`CONNECT host:443 ...` -> "host:443");
    `accepted_at` / `closed_at` are time.monotonic() stamps, for benches.
    """

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.accepted_at: list[float] = []
        self.closed_at: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def __enter__(self) -> BlackHole:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._sock is not None, "BlackHole is not started"
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self.accepted_at)

    @property
    def closed(self) -> int:
        with self._lock:
            return len(self.closed_at)

    def start(self) -> BlackHole:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        sock.settimeout(0.1)
        self._sock = sock
        threading.Thread(target=self._accept, args=(sock,), name="black-hole", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for conn in self._conns:
                conn.close()

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted_at.append(time.monotonic())
                self._conns.append(conn)
            threading.Thread(target=self._swallow, args=(conn,), name="black-hole-conn", daemon=True).start()

    def _swallow(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        head = b""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:  # the client gave up and closed the connection
                with self._lock:
                    self.closed_at.append(time.monotonic())
                break
            if head is not None:
                head += data
                if b"\n" in head or len(head) > 8192:
                    line = head.split(b"\n", 1)[0].decode("latin-1").strip()
                    with self._lock:
                        self.targets.append(line.split(" ")[1] if " " in line else line)
                    head = None
        conn.close()


# A test-only pipe (install it with OpenWebUI.install) whose reply needs one job on asyncio's default
# executor, as Open WebUI's own chat path does for an attached image (`Storage.get_file` through
# asyncio.to_thread in open_webui/utils/files.py, 0.12.4). It answers with JSON: the thread the job
# ran on, the live threads whose names start with "youtube-transcript", and `stats()` of the
# `_POOL` of every loaded tool module named in the message (a JSON list of tool ids).
STALL_PROBE_PIPE = '''"""
title: YouTube Stall Probe
author: Open WebUI Pack contributors
version: 0.1.0
description: Test-only pipe that runs one job on the default executor and reports the tool's pool.
license: MIT
required_open_webui_version: 0.6.43
"""

import asyncio
import json
import sys
import threading


class Pipe:
    async def pipe(self, body: dict, __task__=None) -> str:
        if __task__:
            return ""
        ran_on = await asyncio.to_thread(lambda: threading.current_thread().name)
        tool_ids = json.loads(body["messages"][-1]["content"])
        pools = {}
        for tool_id in tool_ids:
            pool = getattr(sys.modules.get(f"tool_{tool_id}"), "_POOL", None)
            pools[tool_id] = pool.stats() if pool is not None else None
        threads = [t.name for t in threading.enumerate() if t.name.startswith("youtube-transcript")]
        return json.dumps({"ran_on": ran_on, "tool_threads": len(threads), "pools": pools})
'''


def closed_port_url() -> str:
    """An http:// URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
