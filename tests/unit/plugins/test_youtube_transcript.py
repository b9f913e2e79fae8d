"""youtube_transcript tool: the real youtube-transcript-api 1.2.4 against a loopback fake YouTube.

Every request the library makes goes through `FakeYouTube.route` (nothing can leave 127.0.0.1);
oEmbed goes to the fake's /oembed. PROXY_URL tests use loopback proxies that refuse or never answer.
The tool's seams are its attributes: `tool.youtube` (where requests go) and `tool.cache` (with a
fake clock here). No test measures time: a time limit is shown to work by the tool answering while
the fake still holds the request; how long that takes is in bench/bench_youtube_transcript.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import re
import threading
import time
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.youtube import (
    BlackHole,
    FakeProxy,
    FakeYouTube,
    Track,
    Video,
    closed_port_url,
    proxy_only,
    segments_for,
)
from tests.helpers import exception_names, load_built

VID = "abcDEF12_-x"
WATCH = f"https://www.youtube.com/watch?v={VID}"
ID_RE = re.compile(r"[A-Za-z0-9_-]{11}")
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY", "no_proxy")

PARSER = load_built("youtube_transcript")  # pure functions, shared by the hypothesis tests


class Events:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        self.items.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.items if e["type"] == kind]


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse name lookups other than loopback (requests and aiohttp's resolver), so a bug cannot
    send traffic off this machine; every refused lookup fails the test."""
    import socket

    import aiohttp.abc
    import aiohttp.connector

    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", None):
            looked_up.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: no lookups for {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    class GuardResolver(aiohttp.abc.AbstractResolver):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
            looked_up.append(host)
            raise OSError(f"test guard: no lookups for {host}")

        async def close(self) -> None:
            pass

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", GuardResolver)
    yield looked_up
    assert looked_up == [], f"name lookups attempted: {looked_up}"


@pytest.fixture(scope="module")
def yt() -> Iterator[FakeYouTube]:
    with FakeYouTube() as fake:
        yield fake


class FakeClock:
    """The cache's clock, moved by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mod(yt: FakeYouTube, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A fresh built module; every test's YouTube traffic goes to the fake."""
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    module = load_built("youtube_transcript")
    yt.reset()
    yield module
    yt.release.set()  # free any request a test left hanging
    assert yt.escaped == [], "a request tried to leave the fake"


def aimed_at(module: types.ModuleType, youtube: Any, clock: FakeClock) -> Any:
    """A Tools instance sending its requests through `youtube`, with an empty cache on `clock`."""
    tool = module.Tools()
    tool.youtube = youtube
    tool.cache = module._Cache(clock=clock)
    return tool


@pytest.fixture
def tool(mod: types.ModuleType, yt: FakeYouTube, clock: FakeClock) -> Any:
    return aimed_at(mod, mod._YouTube(oembed_endpoint=yt.oembed_endpoint, session_hook=yt.route), clock)


def english(count: int = 100, step: float = 3.0) -> Track:
    return Track("en", "English", segments=segments_for(count, step=step))


USER = {"id": "u1", "role": "user"}
ADMIN = {"id": "a1", "role": "admin"}


async def call(tool: Any, url: str = WATCH, language: str = "", user: dict | None = None, events=None) -> str:
    return await tool.get_youtube_transcript(url, language, __user__=user, __event_emitter__=events)


# --- URL parsing -------------------------------------------------------------------------------

VALID = [
    VID,
    f"  {VID}  ",
    WATCH,
    f"http://www.youtube.com/watch?v={VID}",
    f"https://youtube.com/watch?v={VID}",
    f"https://m.youtube.com/watch?v={VID}",
    f"https://music.youtube.com/watch?v={VID}&feature=share",
    f"https://WWW.YouTube.com/watch?v={VID}",
    f"www.youtube.com/watch?v={VID}",
    f"youtube.com/watch?v={VID}",
    f"//www.youtube.com/watch?v={VID}",
    f"https://www.youtube.com/watch?feature=youtu.be&v={VID}",
    f"https://www.youtube.com/watch?v={VID}&t=90s&list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG&index=3",
    f"https://www.youtube.com/watch?v={VID}&si=AbCdEfGhIjKlMnOp",
    f"https://youtu.be/{VID}",
    f"https://youtu.be/{VID}?si=xyz&t=12",
    f"youtu.be/{VID}",
    f"https://www.youtube.com/shorts/{VID}",
    f"https://youtube.com/shorts/{VID}?feature=share",
    f"https://www.youtube.com/embed/{VID}?start=30&autoplay=1",
    f"https://www.youtube-nocookie.com/embed/{VID}",
    f"https://youtube-nocookie.com/embed/{VID}",
    f"https://www.youtube.com/live/{VID}?si=abc",
    f"https://www.youtube.com/v/{VID}",
    f"https://www.youtube.com:443/watch?v={VID}",
    f"<https://youtu.be/{VID}>",
    f'"https://youtu.be/{VID}"',
    f"https://www.youtube.com/shorts/{VID}/",
]

INVALID = [
    "",
    "   ",
    "hello",
    VID[:10],
    VID + "x",
    "abcdefghij!",
    "https://vimeo.com/123456",
    f"https://example.com/watch?v={VID}",
    f"https://www.youtube.com.evil.example/watch?v={VID}",
    f"https://notyoutube.com/watch?v={VID}",
    f"https://evil.example/?u=https://youtu.be/{VID}",
    f"https://youtube.com@evil.example/watch?v={VID}",
    f"https://user:pw@www.youtube.com/watch?v={VID}",
    "https://www.youtube.com/playlist?list=PLx0sYbCqOb8TBPRdmBHs5Iftvv9TPboYG",
    "https://www.youtube.com/@somechannel",
    "https://www.youtube.com/results?search_query=cats",
    "https://www.youtube.com/watch?v=short",
    f"https://www.youtube.com/watch?v={VID}extra",
    f"ftp://www.youtube.com/watch?v={VID}",
    f"javascript://www.youtube.com/watch?v={VID}",
    f"https://www.youtube.com:8080/watch?v={VID}",
    f"https://youtu.be/{VID}/more",
    f"https://www.youtube.com/channel/{VID}",
    f"https://www.youtube.com/watch?v={VID} and more",
    "http://[::1/watch?v=" + VID,
    "https://youtu.be/",
    "x" * 5000,
    "https://www.youtube.com/embed/videoseries?list=PL123",  # a playlist player, not a video
]


@pytest.mark.parametrize("text", VALID)
def test_parser_accepts_every_video_link_form(text: str) -> None:
    ref = PARSER.parse_video(text)
    assert ref is not None and ref.video_id == VID


@pytest.mark.parametrize("text", INVALID)
def test_parser_refuses_everything_else(text: str) -> None:
    assert PARSER.parse_video(text) is None


@pytest.mark.parametrize(
    ("url", "start"),
    [
        (f"https://youtu.be/{VID}?t=90", 90),
        (f"https://youtu.be/{VID}?t=90s", 90),
        (f"https://youtu.be/{VID}?t=1m30s", 90),
        (f"https://youtu.be/{VID}?t=1h2m3s", 3723),
        (f"https://www.youtube.com/embed/{VID}?start=45", 45),
        (f"https://youtu.be/{VID}?t=abc", None),
        (WATCH, None),
    ],
)
def test_parser_reads_the_start_time(url: str, start: int | None) -> None:
    assert PARSER.parse_video(url).start == start


def test_parser_takes_non_strings() -> None:
    for value in (None, 12, b"abcDEF12_-x", ["x"]):
        assert PARSER.parse_video(value) is None


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_parser_never_raises_and_accepts_only_ids(text: str) -> None:
    ref = PARSER.parse_video(text)
    if ref is not None:
        assert ID_RE.fullmatch(ref.video_id)
        assert ref.video_id in text


URL_CHARS = st.sampled_from("abcXYZ019_-/?&=.:%#@~+!")


@settings(max_examples=1500)
@given(st.text(alphabet=URL_CHARS, max_size=80), st.sampled_from(["https://youtu.be/", "https://www.youtube.com/"]))
def test_parser_on_youtube_lookalikes(tail: str, prefix: str) -> None:
    text = prefix + tail
    ref = PARSER.parse_video(text)
    if ref is not None:
        assert ID_RE.fullmatch(ref.video_id) and ref.video_id in tail


video_ids = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=11, max_size=11
)
extra_params = st.lists(
    st.tuples(
        st.sampled_from(["t", "list", "si", "feature", "index", "pp", "ab_channel"]),
        st.text(alphabet="abcXYZ0189", max_size=12),
    ),
    max_size=4,
)


@settings(max_examples=1000)
@given(
    video_ids,
    st.sampled_from(["www.youtube.com", "youtube.com", "m.youtube.com", "music.youtube.com", "YouTube.com"]),
    st.sampled_from(["watch", "shorts", "embed", "live", "v", "youtu.be"]),
    st.sampled_from(["https://", "http://", "", "//"]),
    extra_params,
)
def test_parser_accepts_generated_links(video_id: str, host: str, form: str, scheme: str, params: list) -> None:
    query = "&".join(f"{k}={v}" for k, v in params)
    if form == "watch":
        url = f"{scheme}{host}/watch?" + "&".join(filter(None, [query, f"v={video_id}"]))
    elif form == "youtu.be":
        url = f"{scheme}youtu.be/{video_id}" + (f"?{query}" if query else "")
    else:
        url = f"{scheme}{host}/{form}/{video_id}" + (f"?{query}" if query else "")
    ref = PARSER.parse_video(url)
    assert ref is not None and ref.video_id == video_id


@settings(max_examples=1000)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30))
def test_parser_refuses_ids_of_the_wrong_shape(raw: str) -> None:
    if ID_RE.fullmatch(raw.strip().strip("<>\"'`").strip()):
        return
    assert (
        PARSER.parse_video(f"https://youtu.be/{raw}") is None
        or PARSER.parse_video(f"https://youtu.be/{raw}").video_id in raw
    )


# --- formatting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "label"),
    [
        (0, "0:00"),
        (-5, "0:00"),
        (9.9, "0:09"),
        (61, "1:01"),
        (599, "9:59"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3725, "1:02:05"),
        (36000, "10:00:00"),
    ],
)
def test_clock_labels(seconds: float, label: str) -> None:
    assert PARSER.clock_label(seconds) == label


def test_paragraphs_follow_the_interval() -> None:
    segments = [(float(i * 10), f"s{i}") for i in range(13)]  # 0..120 s
    paragraphs = PARSER.paragraphs(segments, 30)
    assert [p[0] for p in paragraphs] == [0, 30, 60, 90, 120]
    assert paragraphs[0][1] == "s0 s1 s2"
    assert PARSER.paragraphs(segments, 0) == segments
    assert PARSER.paragraphs([], 30) == []


def test_language_lists_are_parsed_leniently() -> None:
    assert PARSER.parse_languages("de, en;fr  pt_BR, zh-Hans, EN, english!!, ") == [
        "de",
        "en",
        "fr",
        "pt-BR",
        "zh-Hans",
    ]
    assert PARSER.parse_languages("") == []


# --- tool surface ----------------------------------------------------------------------------


def test_exactly_one_public_method_with_param_docs(mod: types.ModuleType) -> None:
    tools = mod.Tools()
    public = [
        n
        for n in dir(tools)
        if not n.startswith("_") and callable(getattr(tools, n)) and not inspect.isclass(getattr(tools, n))
    ]
    assert public == ["get_youtube_transcript"]
    method = tools.get_youtube_transcript
    params = list(inspect.signature(method).parameters)
    assert params[:2] == ["url", "language"]
    assert all(p.startswith("__") and p.endswith("__") for p in params[2:])
    doc = method.__doc__
    assert ":param url:" in doc and ":param language:" in doc
    assert doc.strip().startswith("Get the title, channel and full transcript")


def test_valve_names_and_user_valve_widgets(mod: types.ModuleType) -> None:
    assert list(mod.Tools.Valves.model_fields) == [
        "TRANSCRIPT_LANGUAGE",
        "TRANSCRIPT_TRANSLATE",
        "GET_VIDEO_DETAILS",
        "INCLUDE_TIMESTAMPS",
        "TIMESTAMP_INTERVAL",
        "MAX_TRANSCRIPT_CHARS",
        "CITATION",
        "PROXY_URL",
        "CACHE_TTL",
        "REQUEST_TIMEOUT",
    ]
    assert list(mod.Tools.UserValves.model_fields) == [
        "TRANSCRIPT_LANGUAGE",
        "TRANSCRIPT_TRANSLATE",
        "INCLUDE_TIMESTAMPS",
    ]
    schema = mod.Tools.UserValves.model_json_schema()["properties"]
    # a string with an enum: the 0.12.4 valves form shows a dropdown
    assert schema["INCLUDE_TIMESTAMPS"]["type"] == "string"
    assert schema["INCLUDE_TIMESTAMPS"]["enum"] == ["default", "on", "off"]
    assert schema["INCLUDE_TIMESTAMPS"]["default"] == "default"
    assert mod.Tools.Valves.model_json_schema()["properties"]["PROXY_URL"]["input"]["type"] == "password"
    assert mod.Tools.UserValves(INCLUDE_TIMESTAMPS=True).INCLUDE_TIMESTAMPS == "on"
    assert mod.Tools.UserValves(INCLUDE_TIMESTAMPS=None).INCLUDE_TIMESTAMPS == "default"


ON_OFF_USER_VALVES = ["INCLUDE_TIMESTAMPS"]
TEXT_USER_VALVES = ["TRANSCRIPT_LANGUAGE", "TRANSCRIPT_TRANSLATE"]  # language codes: free text


def test_every_on_off_user_valve_is_a_dropdown(mod: types.ModuleType) -> None:
    schema = mod.Tools.UserValves.model_json_schema()["properties"]
    assert sorted(ON_OFF_USER_VALVES + TEXT_USER_VALVES) == sorted(schema)
    for name in ON_OFF_USER_VALVES:
        assert schema[name]["enum"] == ["default", "on", "off"], name
    for name in TEXT_USER_VALVES:
        assert "enum" not in schema[name] and schema[name]["type"] == "string", name


@pytest.mark.parametrize(
    ("stored", "meaning"),
    [("true", "on"), ("false", "off"), ("", "default"), ("yes", "on"), ("0", "off"), (False, "off"), ("on", "on")],
)
def test_user_valves_saved_as_text_keep_their_meaning(mod: types.ModuleType, stored: object, meaning: str) -> None:
    assert meaning == mod.Tools.UserValves(INCLUDE_TIMESTAMPS=stored).INCLUDE_TIMESTAMPS
    assert meaning == mod.Tools.UserValves.model_validate({"INCLUDE_TIMESTAMPS": stored}).INCLUDE_TIMESTAMPS


def test_the_tool_talks_to_youtube_with_one_cache_per_module(mod: types.ModuleType) -> None:
    first, second = mod.Tools(), mod.Tools()
    assert first.cache is second.cache and first.cache.clock is time.monotonic
    assert first.cache.max_entries == 64
    assert first.youtube.oembed_endpoint == "https://www.youtube.com/oembed"
    assert first.youtube.session_hook is None


# --- success paths -----------------------------------------------------------------------------


async def test_transcript_with_header_timestamps_and_events(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, title="Big & <Bold>\n Talk", channel="Speaker  Channel", tracks=[english(100)]))
    events = Events()
    text = await call(tool, f"https://youtu.be/{VID}?t=90&si=share", events=events)
    header, body = text.split("\nTranscript:\n\n")
    assert "Title: Big & <Bold> Talk" in header
    assert "Channel: Speaker Channel" in header
    assert f"URL: {WATCH}" in header
    assert "Transcript language: English (en), captions written by the uploader" in header
    assert "Duration: about 5:00" in header
    assert "The shared link starts at 1:30." in header
    paragraphs = body.split("\n\n")
    assert [p.split("]")[0] for p in paragraphs] == ["[0:00", "[1:00", "[2:00", "[3:00", "[4:00"]
    assert paragraphs[0] == "[0:00] " + " ".join(f"word {i}" for i in range(20))

    statuses = events.of("status")
    assert statuses[0]["done"] is False and "Fetching" in statuses[0]["description"]
    assert statuses[-1]["done"] is True and "Big & <Bold> Talk" in statuses[-1]["description"]
    assert [e["type"] for e in events.items] == ["status", "citation", "status"]
    # one request of each kind (oEmbed runs alongside the transcript)
    assert sorted(yt.paths()) == ["/api/timedtext", "/oembed", "/watch", "/youtubei/v1/player"]


async def test_citation_groups_into_one_source_with_moment_links(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, title="Talk", tracks=[english(100)]))
    events = Events()
    await call(tool, events=events)
    (data,) = events.of("citation")
    assert "type" not in data  # Open WebUI 0.12.4 persists it with the message (open_webui/socket/main.py)
    assert data["source"] == {"name": "Talk", "id": WATCH, "url": WATCH}
    assert len(data["document"]) == len(data["metadata"]) == 5
    assert data["document"][1].startswith(f"[1:00]({WATCH}&t=60s) word 20")
    assert [m["url"] for m in data["metadata"]] == [f"{WATCH}&t={s}s" for s in (0, 60, 120, 180, 240)]
    # Citations.svelte (0.12.4) groups by metadata.source ?? source.id and names an http source by its
    # URL unless metadata.external is set
    groups: dict[str, dict] = {}
    for document, meta in zip(data["document"], data["metadata"], strict=True):
        key = meta.get("source") or data["source"]["id"]
        name = meta.get("name") if meta.get("external") else key
        groups.setdefault(key, {"name": name, "docs": []})["docs"].append(document)
    assert list(groups) == [WATCH] and groups[WATCH]["name"] == "Talk" and len(groups[WATCH]["docs"]) == 5


async def test_without_emitter_user_or_details(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(5)]))
    tool.valves.GET_VIDEO_DETAILS = False
    text = await tool.get_youtube_transcript(VID)
    assert "Title:" not in text and "[0:00] word 0 word 1 word 2 word 3 word 4" in text
    assert "/oembed" not in yt.paths()


async def test_a_failing_emitter_does_not_break_the_tool(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(5)]))

    async def broken(event: dict) -> None:
        raise RuntimeError("socket gone")

    assert "word 4" in await call(tool, events=broken)


async def test_captions_are_unescaped_and_flattened(yt: FakeYouTube, tool: Any) -> None:
    segments = [(0, 2, "it's <b>bold</b> & fine"), (2, 2, "two\nlines"), (4, 1, "   "), (5, 1, "end")]
    yt.add(Video(VID, tracks=[Track("en", "English", segments=segments)]))
    text = await call(tool)
    assert "[0:00] it's bold & fine two lines end" in text


async def test_generated_transcript_is_labelled(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[Track("en", "English", segments=segments_for(3), generated=True)]))
    text = await call(tool)
    assert "Transcript language: English (en), auto-generated captions" in text


async def test_manual_beats_generated_and_priority_order(yt: FakeYouTube, tool: Any) -> None:
    yt.add(
        Video(
            VID,
            tracks=[
                Track("en", "English", segments=segments_for(2, words="generated"), generated=True),
                Track("en", "English", segments=segments_for(2, words="manual")),
                Track("de", "German", segments=segments_for(2, words="deutsch")),
            ],
        )
    )
    assert "manual 0" in await call(tool)
    tool.valves.TRANSCRIPT_LANGUAGE = "de, en"
    assert "deutsch 0" in await call(tool)


async def test_regional_variants_match_the_base_language(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[Track("en-US", "English (United States)", segments=segments_for(2, words="us"))]))
    text = await call(tool)
    assert "us 0" in text and "(en-US)" in text
    other = "zyxwvut9876"
    yt.add(
        Video(
            other,
            tracks=[
                Track("en-GB", "English (United Kingdom)", segments=segments_for(2, words="gb")),
                Track("en", "English", segments=segments_for(2, words="plain")),
            ],
        )
    )
    assert "plain 0" in await call(tool, other)


async def test_language_argument_and_user_valves_override(yt: FakeYouTube, tool: Any) -> None:
    yt.add(
        Video(
            VID,
            tracks=[
                Track("en", "English", segments=segments_for(2, words="english")),
                Track("es", "Spanish", segments=segments_for(2, words="spanish")),
                Track("fr", "French", segments=segments_for(2, words="french")),
            ],
        )
    )
    assert "english 0" in await call(tool)
    assert "spanish 0" in await call(tool, language="es")
    assert "french 0" in await call(tool, user={"id": "u1", "valves": {"TRANSCRIPT_LANGUAGE": "fr"}})
    user_valves = tool.UserValves(TRANSCRIPT_LANGUAGE="fr")  # Open WebUI passes a pydantic instance
    assert "spanish 0" in await call(tool, language="es", user={"id": "u1", "valves": user_valves})
    assert "english 0" in await call(tool, language="not a code!")


async def test_translation_when_no_wanted_language(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[Track("es", "Spanish", segments=segments_for(3, words="hola"))]))
    tool.valves.TRANSCRIPT_TRANSLATE = "de"
    text = await call(tool)
    assert "Transcript language: German (de), machine-translated by YouTube from Spanish (es)" in text
    assert "[0:00] [de] hola 0" in text
    timedtext = [s for s in yt.requests if s.path == "/api/timedtext"]
    assert timedtext[-1].query["tlang"] == ["de"] and "fmt" not in timedtext[-1].query
    # the user can switch the administrator's translation off
    refused = await call(tool, user={"valves": {"TRANSCRIPT_TRANSLATE": "none"}})
    assert refused.startswith("The video has no transcript in en.")


async def test_no_transcript_in_wanted_languages_lists_available(yt: FakeYouTube, tool: Any) -> None:
    yt.add(
        Video(
            VID,
            tracks=[
                Track("es", "Spanish", segments=segments_for(2)),
                Track("fr", "French", segments=segments_for(2), generated=True),
            ],
        )
    )
    events = Events()
    text = await call(tool, events=events)
    assert text.startswith("The video has no transcript in en.")
    assert "Available transcripts: es (Spanish), fr (French, auto-generated)." in text
    assert "language" in text
    assert events.of("status")[-1] == {
        "description": "No transcript in the wanted languages",
        "done": True,
        "hidden": False,
    }


async def test_translation_impossible_lists_available(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[Track("es", "Spanish", segments=segments_for(2), translatable=False)]))
    tool.valves.TRANSCRIPT_TRANSLATE = "en"
    text = await call(tool)
    assert "cannot translate one into 'en'" in text and "es (Spanish)" in text


async def test_bad_translate_setting_is_explained(yt: FakeYouTube, tool: Any) -> None:
    tool.valves.TRANSCRIPT_TRANSLATE = "english please"
    text = await call(tool, user=USER)
    assert "is not a language code" in text and "Ask an administrator" in text and yt.requests == []
    assert "TRANSCRIPT_TRANSLATE" not in text and "english please" not in text
    admins = await call(tool, user=ADMIN)
    assert admins.startswith(text + " (For administrators: the “Translate into” valve (TRANSCRIPT_TRANSLATE) is ")
    # the user's own setting: named by its title, for them to fix
    tool.valves.TRANSCRIPT_TRANSLATE = ""
    events = Events()
    own = await call(tool, user={**USER, "valves": {"TRANSCRIPT_TRANSLATE": "deutsch?"}}, events=events)
    assert own.startswith("Your “Translate into” setting for the YouTube Transcript tool is 'deutsch?'")
    assert "TRANSCRIPT_TRANSLATE" not in own and "administrator" not in own
    assert events.of("status")[-1]["description"] == "Your translation setting is not a language code"
    assert yt.requests == []


async def test_consent_page_is_passed(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(3)], watch="consent"))
    assert "word 2" in await call(tool)
    assert yt.paths().count("/watch") == 2


# --- output options ----------------------------------------------------------------------------


async def test_timestamps_off_by_admin_and_tristate_user_override(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(40)]))
    tool.valves.INCLUDE_TIMESTAMPS = False
    off = await call(tool)
    assert "[0:00]" not in off and "Timestamps are" not in off and "\n\nword 0 word 1" in off
    assert "[0:00] word 0" in await call(tool, user={"valves": {"INCLUDE_TIMESTAMPS": "true"}})
    assert "[0:00]" not in await call(tool, user={"valves": {"INCLUDE_TIMESTAMPS": ""}})
    tool.valves.INCLUDE_TIMESTAMPS = True
    assert "[0:00]" not in await call(tool, user={"valves": tool.UserValves(INCLUDE_TIMESTAMPS="false")})
    assert "[0:00]" in await call(tool, user={"valves": tool.UserValves()})
    assert "[0:00]" not in await call(tool, user={"valves": tool.UserValves(INCLUDE_TIMESTAMPS="off")})
    assert "[0:00]" in await call(tool, user={"valves": tool.UserValves(INCLUDE_TIMESTAMPS="default")})
    tool.valves.INCLUDE_TIMESTAMPS = False
    assert "[0:00]" in await call(tool, user={"valves": tool.UserValves(INCLUDE_TIMESTAMPS="on")})
    assert "[0:00]" not in await call(tool, user={"valves": {"INCLUDE_TIMESTAMPS": "default"}})


async def test_interval_controls_paragraphs(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(10, step=10)]))  # 0..100 s
    tool.valves.TIMESTAMP_INTERVAL = 30
    assert re.findall(r"^\[(\d+:\d\d)\]", await call(tool), re.M) == ["0:00", "0:30", "1:00", "1:30"]
    tool.valves.TIMESTAMP_INTERVAL = 0
    assert len(re.findall(r"^\[", await call(tool), re.M)) == 10


async def test_hour_long_videos_get_hour_timestamps(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(130, step=30)]))  # 65 minutes
    text = await call(tool)
    assert "[59:00]" in text and "[1:00:00]" in text and "[1:04:00]" in text
    assert "Duration: about 1:05:00" in text


async def test_long_transcripts_are_cut_with_a_note(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, title="Long", tracks=[english(100)]))
    tool.valves.MAX_TRANSCRIPT_CHARS = 500
    events = Events()
    text = await call(tool, events=events)
    body = text.split("\nTranscript:\n\n")[1].split("\n\n[The transcript was cut")[0]
    assert len(body) <= 500
    assert text.endswith(
        "[The transcript was cut at 500 characters: it covers 0:00 to 3:00 of 5:00. Tell the user the rest is missing.]"
    )
    assert "MAX_TRANSCRIPT_CHARS" not in text
    assert (await call(tool, user=ADMIN)).endswith(
        "Tell the user the rest is missing. (For administrators: the “Longest transcript” valve "
        "(MAX_TRANSCRIPT_CHARS) sets the limit; 0 means no limit.)]"
    )
    (data,) = events.of("citation")
    assert len(data["document"]) == 3  # only what the model got
    tool.valves.MAX_TRANSCRIPT_CHARS = 0
    assert "[4:00]" in await call(tool) and "cut at" not in await call(tool)


async def test_a_single_paragraph_over_the_limit_is_cut_at_a_word(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(100)]))
    tool.valves.MAX_TRANSCRIPT_CHARS = 50
    text = await call(tool)
    body = text.split("\nTranscript:\n\n")[1].split("\n\n")[0]
    assert body.endswith("…") and len(body) <= 50 and body.startswith("[0:00] word 0")
    assert "it covers 0:00 to 0:00 of 5:00" in text


async def test_citation_can_be_switched_off(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(5)]))
    tool.valves.CITATION = False
    events = Events()
    await call(tool, events=events)
    assert events.of("citation") == []


async def test_concurrent_users_get_their_own_formatting(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(20)]))
    with_ts, without = await asyncio.gather(
        call(tool, user={"valves": {"INCLUDE_TIMESTAMPS": "true"}}),
        call(tool, user={"valves": {"INCLUDE_TIMESTAMPS": "false"}}),
    )
    assert "[0:00]" in with_ts and "[0:00]" not in without


# --- errors ------------------------------------------------------------------------------------

ERRORS = [
    (Video(VID, captions=False), "has no transcript: subtitles are turned off", "Transcripts are disabled"),
    (Video(VID, playability="unavailable"), "is unavailable: it was removed", "The video is unavailable"),
    (Video(VID, playability="private"), "is private", "The video is private"),
    (Video(VID, playability="age_restricted"), "is age-restricted", "The video is age-restricted"),
    (Video(VID, playability="unplayable"), "not made this video available in your country", "The video is unplayable"),
    (
        Video(VID, playability="bot"),
        "blocking transcript requests from this server's IP",
        "YouTube blocked this server's IP",
    ),
    (
        Video(VID, watch="recaptcha"),
        "blocking transcript requests from this server's IP",
        "YouTube blocked this server's IP",
    ),
    (
        Video(VID, watch="too_many"),
        "blocking transcript requests from this server's IP",
        "YouTube blocked this server's IP",
    ),
    (Video(VID, watch="no_key"), "could not read", "YouTube's answer could not be read"),
    (Video(VID, player_status=500), "with an error (HTTP 500)", "YouTube answered with an error (HTTP 500)"),
    (Video(VID, tracks=[english(3)], timedtext="po_token"), "PO token", "YouTube asked for a browser check"),
    (Video(VID, tracks=[english(3)], timedtext="empty"), "empty or broken transcript", "YouTube returned an empty"),
    (Video(VID, hang="drop"), "Could not reach YouTube from this server", "Could not reach YouTube"),
]


@pytest.mark.parametrize(("video", "message", "short"), ERRORS, ids=[e[2] + "-" + e[0].watch for e in ERRORS])
async def test_failures_become_clear_sentences(
    yt: FakeYouTube, tool: Any, video: Video, message: str, short: str
) -> None:
    yt.add(video)
    events = Events()
    text = await call(tool, events=events)
    assert message in text
    assert "Traceback" not in text and not text.startswith("Error")
    assert API_KEY_FRAGMENT not in text
    statuses = events.of("status")
    assert statuses[-1]["done"] is True and statuses[-1]["description"].startswith(short)
    assert events.of("citation") == []


API_KEY_FRAGMENT = "AIzaSy"


async def test_unknown_video_is_unavailable(yt: FakeYouTube, tool: Any) -> None:
    assert "is unavailable" in await call(tool, "https://youtu.be/ZZZZZZZZZZZ")


async def test_refusal_for_non_video_links(yt: FakeYouTube, tool: Any) -> None:
    events = Events()
    text = await call(tool, "https://vimeo.com/76979871", events=events)
    assert text.startswith("'https://vimeo.com/76979871' is not a YouTube video link")
    assert events.of("status") == [{"description": "Not a YouTube video link", "done": True, "hidden": False}]
    playlist = await call(tool, "https://www.youtube.com/playlist?list=PL123")
    assert "does not point to a single video" in playlist
    assert "No video was given" in await call(tool, "   ")
    assert yt.requests == []


async def test_only_urls_built_from_the_id_are_fetched(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(3)]))
    await call(tool, f"https://www.youtube.com/watch?v={VID}&list=PL1&next=https://evil.example/x&t=5")
    watch = next(s for s in yt.requests if s.path == "/watch")
    assert watch.query == {"v": [VID]}
    oembed = next(s for s in yt.requests if s.path == "/oembed")
    assert oembed.query == {"url": [WATCH], "format": ["json"]}
    assert all(s.path in ("/watch", "/youtubei/v1/player", "/api/timedtext", "/oembed") for s in yt.requests)


# --- time limits and the network ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["watch", "player", "timedtext"])
async def test_hanging_youtube_times_out_within_request_timeout(yt: FakeYouTube, tool: Any, where: str) -> None:
    yt.add(Video(VID, tracks=[english(3)], hang=where))
    tool.valves.REQUEST_TIMEOUT = 0.5
    events = Events()
    text = await call(tool, events=events)
    assert "did not answer within 0.5 seconds" in text
    # answered while YouTube still held the request: the tool stopped waiting on its own
    assert yt.held() == [{"watch": "/watch", "player": "/youtubei/v1/player", "timedtext": "/api/timedtext"}[where]]
    assert events.of("status")[-1]["done"] is True


async def test_hanging_oembed_only_drops_the_title(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(3)], hang="oembed"))
    tool.valves.REQUEST_TIMEOUT = 0.5
    text = await call(tool)
    assert yt.held() == ["/oembed"]  # the tool answered without waiting for oEmbed
    assert "Title:" not in text and "[0:00] word 0" in text


@pytest.mark.parametrize("status", [401, 404])
async def test_oembed_refusal_drops_the_title_and_is_remembered(yt: FakeYouTube, tool: Any, status: int) -> None:
    yt.add(Video(VID, tracks=[english(3)], oembed_status=status))
    text = await call(tool)
    assert "Title:" not in text and "word 2" in text
    await call(tool)
    assert yt.paths().count("/oembed") == 1


@pytest.fixture
def raw(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Iterator[types.SimpleNamespace]:
    """The tool's own sessions, allowed out only through a 127.0.0.1 proxy.

    `raw.tool()` makes a Tools instance, `raw.youtube` is where its requests go, `raw.escaped`
    lists what tried to leave without a loopback proxy (it must stay empty).
    """
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
    module = load_built("youtube_transcript")
    escaped: list[str] = []
    youtube = module._YouTube(session_hook=lambda session: proxy_only(session, escaped))
    yield types.SimpleNamespace(youtube=youtube, escaped=escaped, tool=lambda: aimed_at(module, youtube, clock))
    assert escaped == []


async def test_proxy_url_carries_every_request(raw: types.SimpleNamespace) -> None:
    tool = raw.tool()
    with FakeProxy("refuse") as proxy:
        tool.valves.PROXY_URL = proxy.url
        tool.valves.GET_VIDEO_DETAILS = False
        text = await call(tool)
        assert "Could not reach YouTube through this server's proxy" in text
        assert proxy.targets == ["www.youtube.com:443"]
        # oEmbed (aiohttp) goes through the same proxy
        assert await raw.youtube.fetch_details(VID, proxy.url, 2.0) is None
        assert proxy.targets == ["www.youtube.com:443", "www.youtube.com:443"]


async def test_proxy_url_beats_proxies_from_the_environment(
    raw: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = raw.tool()
    with FakeProxy("refuse") as env_proxy, FakeProxy("refuse") as valve_proxy:
        monkeypatch.setenv("HTTPS_PROXY", env_proxy.url)
        tool.valves.GET_VIDEO_DETAILS = False
        tool.valves.PROXY_URL = valve_proxy.url
        await call(tool)
        assert valve_proxy.targets == ["www.youtube.com:443"] and env_proxy.targets == []
        # without PROXY_URL the environment's proxy is honoured, for the transcript and for oEmbed
        tool.valves.PROXY_URL = ""
        await call(tool)
        assert await raw.youtube.fetch_details(VID, "", 2.0) is None
        assert env_proxy.targets == ["www.youtube.com:443", "www.youtube.com:443"]


async def test_refused_proxy_is_a_quick_network_message(raw: types.SimpleNamespace) -> None:
    tool = raw.tool()
    tool.valves.PROXY_URL = closed_port_url()
    text = await call(tool)
    assert "Could not reach YouTube through this server's proxy" in text
    assert "did not answer" not in text  # the refusal itself, not REQUEST_TIMEOUT running out
    assert "could not be reached or refused the connection" in await call(tool, user=ADMIN)


async def test_black_hole_proxy_times_out(raw: types.SimpleNamespace) -> None:
    tool = raw.tool()
    with FakeProxy("hang") as proxy:
        tool.valves.PROXY_URL = proxy.url
        tool.valves.REQUEST_TIMEOUT = 0.5
        text = await call(tool)
        assert "did not answer within 0.5 seconds" in text
        assert proxy.held >= 1  # answered while the proxy still held the connection


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "127.0.0.1:3128", "http://", "not a url"])
async def test_bad_proxy_url_is_explained_without_requests(raw: types.SimpleNamespace, proxy: str) -> None:
    tool = raw.tool()
    tool.valves.PROXY_URL = proxy
    events = Events()
    text = await call(tool, events=events)
    assert text.startswith(
        "The YouTube Transcript tool is not set up correctly on this server, so no request was sent."
    )
    assert "PROXY_URL" not in text and proxy not in text
    assert events.of("status")[-1]["description"] == "The tool is not set up correctly"
    assert "“Proxy URL” valve (PROXY_URL) is not an http:// or https:// proxy URL" in await call(tool, user=ADMIN)


async def test_proxy_credentials_never_reach_the_message(raw: types.SimpleNamespace) -> None:
    tool = raw.tool()
    tool.valves.PROXY_URL = closed_port_url().replace("http://", "http://alice:s3cret@")
    text = await call(tool)
    assert "s3cret" not in text and "alice" not in text


# --- cache -------------------------------------------------------------------------------------


async def test_repeat_calls_come_from_the_cache(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, title="Cached", tracks=[english(10)]))
    first = await call(tool)
    count = len(yt.requests)
    events = Events()
    second = await call(tool, f"https://youtu.be/{VID}", language="EN", events=events)
    assert second == first and len(yt.requests) == count
    assert [e["done"] for e in events.of("status")] == [True]  # no "Fetching" for a cache hit
    assert len(events.of("citation")) == 1


async def test_cache_key_includes_languages_and_translation(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, tracks=[english(3), Track("es", "Spanish", segments=segments_for(3, words="hola"))]))
    await call(tool)
    before = yt.paths().count("/youtubei/v1/player")
    assert "hola 0" in await call(tool, language="es")
    tool.valves.TRANSCRIPT_TRANSLATE = "de"
    await call(tool)
    assert yt.paths().count("/youtubei/v1/player") == before + 2


async def test_cache_expires_and_can_be_off(yt: FakeYouTube, tool: Any, clock: FakeClock) -> None:
    yt.add(Video(VID, tracks=[english(3)]))
    tool.valves.CACHE_TTL = 60
    await call(tool)
    await call(tool)
    assert yt.paths().count("/youtubei/v1/player") == 1
    clock.advance(61)
    await call(tool)
    assert yt.paths().count("/youtubei/v1/player") == 2
    tool.valves.CACHE_TTL = 0
    tool.cache.clear()
    await call(tool)
    await call(tool)
    assert yt.paths().count("/youtubei/v1/player") == 4


def test_an_entry_lives_exactly_its_ttl(mod: types.ModuleType, clock: FakeClock) -> None:
    cache = mod._Cache(clock=clock)
    cache.put(cache.transcripts, "k", "v", 60)
    clock.advance(59.9)
    assert cache.get(cache.transcripts, "k") == "v"
    clock.advance(0.1)
    assert cache.get(cache.transcripts, "k") is None and "k" not in cache.transcripts
    cache.put(cache.details, "k", "v", 0)  # a ttl of 0 means no caching
    assert cache.get(cache.details, "k") is None


async def test_missing_details_are_remembered_for_five_minutes_at_most(
    yt: FakeYouTube, tool: Any, clock: FakeClock
) -> None:
    yt.add(Video(VID, tracks=[english(3)], oembed_status=404))
    await call(tool)
    clock.advance(299)
    await call(tool)
    assert yt.paths().count("/oembed") == 1
    clock.advance(1)
    assert "Title:" not in await call(tool)
    assert yt.paths().count("/oembed") == 2
    assert yt.paths().count("/youtubei/v1/player") == 1  # the transcript itself is still cached (1 h)


async def test_cache_size_is_capped(yt: FakeYouTube, tool: Any, mod: types.ModuleType, clock: FakeClock) -> None:
    tool.cache = mod._Cache(clock=clock, max_entries=2)
    ids = ["aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc"]
    for video_id in ids:
        yt.add(Video(video_id, tracks=[english(2)]))
        await call(tool, video_id)
    assert len(tool.cache.transcripts) == 2 and len(tool.cache.details) == 2
    await call(tool, ids[0])  # evicted first: fetched again
    assert yt.paths().count("/youtubei/v1/player") == 4


async def test_failures_are_not_cached(yt: FakeYouTube, tool: Any) -> None:
    yt.add(Video(VID, captions=False))
    await call(tool)
    yt.add(Video(VID, tracks=[english(3)]))
    assert "word 2" in await call(tool)


async def test_the_guards_stop_direct_traffic(raw: types.SimpleNamespace, no_dns: list[str]) -> None:
    """The safety net of this module: without a loopback proxy nothing leaves, and it is noticed."""
    escaped = raw.escaped
    assert await raw.youtube.fetch_details(VID, "", 1.0) is None
    tool = raw.tool()
    tool.valves.GET_VIDEO_DETAILS = False
    assert "Could not reach YouTube from this server" in await call(tool)
    assert no_dns == ["www.youtube.com"] and escaped == [WATCH]
    no_dns.clear()
    escaped.clear()


# --- the tool's own threads --------------------------------------------------------------------
# youtube-transcript-api blocks; it runs on the module's bounded pool (shared/pool.py), never on
# asyncio's default executor, which Open WebUI needs for its own work. Time is moved by hand: the
# pools here get the test's clock, and nothing waits for a deadline to pass on the wall clock.


class RecordingExecutor(concurrent.futures.ThreadPoolExecutor):
    """Stands in for asyncio's default executor and remembers every job given to it."""

    def __init__(self) -> None:
        super().__init__(2, thread_name_prefix="default-executor")
        self.jobs: list[str] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        self.jobs.append(getattr(fn, "__qualname__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
async def default_executor() -> AsyncIterator[RecordingExecutor]:
    executor = RecordingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    yield executor
    executor.shutdown(wait=False)


class Gate:
    """A job that holds its pool thread until `open()`; `entered` is set once it runs."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, deadline: Any) -> str:
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return "done"

    def open(self) -> None:
        self.gate.set()


def pool_on(mod: types.ModuleType, clock: FakeClock, workers: int = 1, queue: int = 2) -> Any:
    return mod.DeadlinePool("youtube-transcript-test", workers=workers, queue=queue, clock=clock)


def pooled_tool(mod: types.ModuleType, yt: FakeYouTube, clock: FakeClock, pool: Any, hook: Any = None) -> Any:
    youtube = mod._YouTube(oembed_endpoint=yt.oembed_endpoint, session_hook=hook or yt.route, pool=pool)
    return aimed_at(mod, youtube, clock)


async def until(condition: Any, what: str) -> None:
    """Yield to the loop (and the pool's threads) until `condition()` holds; no time is measured."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


async def test_the_default_executor_is_never_used(
    yt: FakeYouTube, mod: types.ModuleType, clock: FakeClock, default_executor: RecordingExecutor
) -> None:
    pool = pool_on(mod, clock, workers=2)
    tool = pooled_tool(mod, yt, clock, pool)
    yt.add(Video(VID, title="Pooled", tracks=[english(3)]), Video("hangsWatch0", tracks=[english(3)], hang="watch"))
    assert "Title: Pooled" in await call(tool)
    tool.valves.REQUEST_TIMEOUT = 0.3
    assert "did not answer within 0.3 seconds" in await call(tool, "hangsWatch0")
    assert default_executor.jobs == []
    assert pool.stats()["started"] == 2
    # every Tools instance of a module uses the module's one pool
    assert mod.Tools().youtube.pool is mod._POOL and mod._POOL.workers == mod._WORKERS <= 4


def test_a_waiting_call_whose_deadline_passed_never_starts(mod: types.ModuleType, clock: FakeClock) -> None:
    pool = pool_on(mod, clock)
    blocker = Gate()
    first = pool.submit(pool.deadline(60), blocker)
    assert blocker.entered.wait(10)
    started: list[float] = []
    waiting = pool.submit(pool.deadline(5), lambda deadline: started.append(deadline.remaining()))
    assert pool.stats()["waiting"] == 1
    clock.advance(5)  # its deadline is now, while it still waits for the only thread
    blocker.open()
    assert first.result(10) == "done"
    with pytest.raises(mod.DeadlinePassed):
        waiting.result(10)
    assert started == []
    stats = pool.stats()
    assert (stats["started"], stats["expired"], stats["running"], stats["waiting"]) == (1, 1, 0, 0)


def test_a_call_that_starts_gets_what_is_left_of_its_deadline(mod: types.ModuleType, clock: FakeClock) -> None:
    pool = pool_on(mod, clock)
    deadline = pool.deadline(15)
    clock.advance(4)  # waited 4 s for a thread
    assert pool.submit(deadline, lambda given: (given is deadline, given.remaining())).result(10) == (True, 11)


def test_the_queue_is_bounded(mod: types.ModuleType, clock: FakeClock) -> None:
    pool = pool_on(mod, clock, workers=1, queue=2)
    blocker = Gate()
    pool.submit(pool.deadline(60), blocker)
    queued = [pool.submit(pool.deadline(60), lambda deadline: "queued") for _ in range(2)]
    with pytest.raises(mod.PoolFull):
        pool.submit(pool.deadline(60), lambda deadline: "refused")
    assert pool.stats()["refused"] == 1 and pool.stats()["waiting"] == 2
    blocker.open()
    assert [f.result(10) for f in queued] == ["queued", "queued"]
    # room again once they are over
    assert pool.submit(pool.deadline(60), lambda deadline: "later").result(10) == "later"


async def test_a_caller_that_stops_waiting_takes_its_call_out_of_the_queue(
    mod: types.ModuleType, clock: FakeClock
) -> None:
    pool = pool_on(mod, clock)
    blocker = Gate()
    pool.submit(pool.deadline(60), blocker)
    ran: list[str] = []
    waiter = asyncio.ensure_future(pool.run(pool.deadline(60), lambda deadline: ran.append("ran")))
    await until(lambda: pool.stats()["waiting"] == 1, "the call is queued")
    waiter.cancel()  # the chat was stopped
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.stats()["waiting"] == 0  # no thread is taken later by a call nobody waits for
    # a deadline that has passed ends the wait at once, also without ever starting the call
    with pytest.raises(mod.DeadlinePassed):
        await pool.run(mod.Deadline(clock() - 1, clock), lambda deadline: ran.append("late"))
    blocker.open()
    await until(lambda: pool.stats()["running"] == 0, "the blocker is over")
    assert ran == [] and pool.stats()["expired"] == 2


def test_at_most_workers_threads_however_many_calls(mod: types.ModuleType, clock: FakeClock) -> None:
    pool = pool_on(mod, clock, workers=2, queue=8)
    gates = [Gate() for _ in range(6)]
    futures = [pool.submit(pool.deadline(60), gate) for gate in gates]
    assert gates[0].entered.wait(10) and gates[1].entered.wait(10)
    names = [t.name for t in threading.enumerate() if t.name.startswith("youtube-transcript-test")]
    assert len(names) == 2 and pool.stats()["running"] == 2 and pool.stats()["waiting"] == 4
    for gate in gates:
        gate.open()
    assert [f.result(10) for f in futures] == ["done"] * 6


async def test_a_full_pool_refuses_at_once_with_a_plain_sentence(
    yt: FakeYouTube, mod: types.ModuleType, clock: FakeClock
) -> None:
    pool = pool_on(mod, clock, workers=1, queue=0)
    tool = pooled_tool(mod, yt, clock, pool)
    yt.add(Video(VID, tracks=[english(3)]))
    blocker = Gate()
    pool.submit(pool.deadline(60), blocker)
    events = Events()
    text = await call(tool, user=USER, events=events)
    assert text == (
        f"The YouTube Transcript tool is busy with other requests right now, so the transcript of {WATCH} was "
        "not fetched. Try again in a minute."
    )
    assert events.of("status")[-1]["description"] == "The tool is busy"
    assert "all 1 of the tool's fetches were waiting for YouTube" in await call(tool, user=ADMIN)
    assert [p for p in yt.paths() if p != "/oembed"] == []  # nothing was sent for the transcript
    blocker.open()
    await until(lambda: pool.stats()["running"] == 0, "the blocker is over")
    assert "[0:00] word 0" in await call(tool)  # the next call, once a thread is free, works


async def test_a_queued_call_past_its_deadline_sends_nothing(
    yt: FakeYouTube, mod: types.ModuleType, clock: FakeClock
) -> None:
    pool = pool_on(mod, clock, workers=1, queue=1)
    tool = pooled_tool(mod, yt, clock, pool)
    tool.valves.GET_VIDEO_DETAILS = False
    yt.add(Video(VID, tracks=[english(3)]))
    blocker = Gate()
    pool.submit(pool.deadline(600), blocker)
    answer = asyncio.ensure_future(call(tool, user=ADMIN))
    await until(lambda: pool.stats()["waiting"] == 1, "the tool's fetch is queued")
    clock.advance(15)  # REQUEST_TIMEOUT (15 s) has passed while it waited
    blocker.open()
    text = await answer
    assert text.startswith("The YouTube Transcript tool is busy with other requests right now")
    assert "were all waiting for YouTube for 15 seconds" in text
    assert yt.requests == [] and pool.stats()["started"] == 1 and pool.stats()["expired"] == 1


def slowed(yt: FakeYouTube, clock: FakeClock, steps: list[float]) -> Any:
    """A session hook: each request the library sends takes the next of `steps` (hand-moved) seconds."""
    left = iter(steps)

    def hook(session: Any) -> Any:
        session = yt.route(session)
        send = session.request

        def request(*args: Any, **kwargs: Any) -> Any:
            response = send(*args, **kwargs)
            clock.advance(next(left, 0.0))
            return response

        session.request = request
        return session

    return hook


async def test_timeouts_reach_the_library_session(yt: FakeYouTube, mod: types.ModuleType, clock: FakeClock) -> None:
    pool = pool_on(mod, clock)
    tool = pooled_tool(mod, yt, clock, pool, slowed(yt, clock, [3.0, 2.0]))
    tool.valves.GET_VIDEO_DETAILS = False
    yt.add(Video(VID, tracks=[english(3)]))
    assert "[0:00] word 0" in await call(tool)
    assert yt.paths() == ["/watch", "/youtubei/v1/player", "/api/timedtext"]
    # (connect, read) of each request: what was left of REQUEST_TIMEOUT (15 s) when it went out
    assert yt.timeouts == [(15.0, 15.0), (12.0, 12.0), (10.0, 10.0)]


async def test_no_request_goes_out_once_the_deadline_passed(
    yt: FakeYouTube, mod: types.ModuleType, clock: FakeClock
) -> None:
    pool = pool_on(mod, clock)
    tool = pooled_tool(mod, yt, clock, pool, slowed(yt, clock, [16.0]))  # the watch page took too long
    tool.valves.GET_VIDEO_DETAILS = False
    yt.add(Video(VID, tracks=[english(3)]))
    assert "did not answer within 15 seconds" in await call(tool)
    await until(lambda: pool.stats()["running"] == 0, "the fetch is over")
    assert yt.paths() == ["/watch"]  # the player request was never sent


async def test_a_black_holed_fetch_lets_go_of_its_thread_by_its_own_timeout(raw: types.SimpleNamespace) -> None:
    tool = raw.tool()
    tool.valves.GET_VIDEO_DETAILS = False
    with BlackHole() as hole:
        tool.valves.PROXY_URL = hole.url
        tool.valves.REQUEST_TIMEOUT = 0.5
        assert "did not answer within 0.5 seconds" in await call(tool)
        pool = raw.youtube.pool
        await until(lambda: pool.stats()["running"] == 0, "the thread is free")
        # the fetch dropped the connection by its own timeout: the black hole never lets go
        await until(lambda: hole.closed == hole.accepted == 1, "the client closed its connection")
        assert hole.targets == ["www.youtube.com:443"]


# --- what a user reads -------------------------------------------------------------------------
# The tool's text goes to the model, which passes it on: it is user-facing, like the status lines
# and the citation. A user reads no exception names and no setting only an administrator changes.

ADMIN_ONLY = (
    "PROXY_URL", "REQUEST_TIMEOUT", "MAX_TRANSCRIPT_CHARS", "CACHE_TTL", "TIMESTAMP_INTERVAL", "GET_VIDEO_DETAILS",
    "CITATION", "TRANSCRIPT_LANGUAGE", "TRANSCRIPT_TRANSLATE", "INCLUDE_TIMESTAMPS", "Proxy URL", "Request timeout",
    "Longest transcript", "valve", "For administrators", "youtube-transcript-api", "server log", "pip ",
)  # fmt: skip


def _texts(events: Events, returned: str) -> list[str]:
    texts = [returned] + [status["description"] for status in events.of("status")]
    for cite in events.of("citation"):
        texts += [cite["source"]["name"], *cite["document"], *(m["name"] for m in cite["metadata"])]
    return texts


def _scenarios() -> list[tuple[str, Video | None, dict, dict, str]]:
    """(name, video, admin valves, the user's valves, url) for every way a call can end."""
    spanish_only = [Track("es", "Spanish", segments=segments_for(2), translatable=False)]
    return [
        *((f"error {short} / {video.watch}", video, {}, {}, WATCH) for video, _, short in ERRORS),
        ("no wanted language", Video(VID, tracks=spanish_only), {}, {}, WATCH),
        ("cannot translate", Video(VID, tracks=spanish_only), {"TRANSCRIPT_TRANSLATE": "en"}, {}, WATCH),
        ("bad admin translate", None, {"TRANSCRIPT_TRANSLATE": "english please"}, {}, WATCH),
        ("bad own translate", None, {}, {"TRANSCRIPT_TRANSLATE": "deutsch?"}, WATCH),
        ("bad proxy url", None, {"PROXY_URL": "socks5://127.0.0.1:1080"}, {}, WATCH),
        ("cut", Video(VID, tracks=[english(100)]), {"MAX_TRANSCRIPT_CHARS": 500}, {}, WATCH),
        ("timeout", Video(VID, tracks=[english(3)], hang="watch"), {"REQUEST_TIMEOUT": 0.3}, {}, WATCH),
        ("not youtube", None, {}, {}, "https://vimeo.com/76979871"),
        ("playlist", None, {}, {}, "https://www.youtube.com/playlist?list=PL123"),
        ("nothing given", None, {}, {}, " "),
        ("success", Video(VID, title="Talk", tracks=[english(10)]), {}, {}, WATCH),
    ]


async def _run_all(mod: types.ModuleType, yt: FakeYouTube, clock: FakeClock, role: str) -> dict[str, list[str]]:
    produced = {}
    for name, video, valves, user_valves, url in _scenarios():
        yt.release.set()  # let go of a request the last scenario left hanging
        yt.reset()
        if video is not None:
            yt.add(video)
        tool = aimed_at(mod, mod._YouTube(oembed_endpoint=yt.oembed_endpoint, session_hook=yt.route), clock)
        for valve, value in valves.items():
            setattr(tool.valves, valve, value)
        events = Events()
        returned = await call(tool, url, user={"id": "u1", "role": role, "valves": user_valves}, events=events)
        produced[name] = _texts(events, returned)
    yt.release.set()
    return produced


def _explained(mod: types.ModuleType, role: str) -> dict[str, list[str]]:
    """The failures the fake YouTube cannot stage, explained the way the tool explains them."""
    import requests
    import youtube_transcript_api as yta

    wrapped = "HTTPSConnectionPool(host='www.youtube.com', port=443): Max retries exceeded (NewConnectionError)"
    failures = {
        "blocked (proxy)": (yta.RequestBlocked(VID), "http://127.0.0.1:3128"),
        "proxy refused": (requests.exceptions.ProxyError(wrapped), "http://127.0.0.1:3128"),
        "network (proxy)": (requests.exceptions.ConnectionError(wrapped), "http://127.0.0.1:3128"),
        "network": (requests.exceptions.ConnectionError(wrapped), ""),
        "read timeout (proxy)": (requests.exceptions.ReadTimeout(wrapped), "http://127.0.0.1:3128"),
        "our timeout": (TimeoutError(), ""),
        "unexpected": (KeyError("videoDetails"), ""),
        "unreadable": (yta.YouTubeDataUnparsable(VID), ""),
        "pool full (proxy)": (mod.PoolFull("youtube-transcript", 4, 16), "http://127.0.0.1:3128"),
        "waited for a thread": (mod.DeadlinePassed("youtube-transcript", 4), ""),
    }
    produced = {}
    for name, (exc, proxy) in failures.items():
        settings = mod.resolve_settings(mod.Tools.Valves(PROXY_URL=proxy), None, "", admin=role == "admin")
        problem = mod.explain(exc, VID, settings)
        produced[name] = [problem.text_for(role == "admin"), problem.short]
    return produced


def _missing_package(mod: types.ModuleType, monkeypatch: pytest.MonkeyPatch, role: str) -> list[str]:
    def no_package() -> None:
        raise ImportError("No module named 'youtube_transcript_api'")

    monkeypatch.setattr(mod, "_problems", no_package)
    settings = mod.resolve_settings(mod.Tools.Valves(), None, "")
    problem = mod.explain(RuntimeError("x"), VID, settings)
    monkeypatch.undo()
    return [problem.text_for(role == "admin"), problem.short]


async def test_no_text_a_user_reads_names_an_exception_or_an_admin_setting(
    mod: types.ModuleType, yt: FakeYouTube, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    produced = await _run_all(mod, yt, clock, "user")
    produced |= _explained(mod, "user")
    produced["missing package"] = _missing_package(mod, monkeypatch, "user")
    for name, texts in produced.items():
        for text in texts:
            assert exception_names(text) == [], (name, text)
            assert [word for word in ADMIN_ONLY if word in text] == [], (name, text)
            assert "127.0.0.1:3128" not in text, (name, text)


async def test_an_administrator_gets_the_detail_and_still_no_exception_names(
    mod: types.ModuleType, yt: FakeYouTube, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    admins = await _run_all(mod, yt, clock, "admin") | _explained(mod, "admin")
    admins["missing package"] = _missing_package(mod, monkeypatch, "admin")
    users = await _run_all(mod, yt, clock, "user") | _explained(mod, "user")
    users["missing package"] = _missing_package(mod, monkeypatch, "user")
    for name, texts in admins.items():
        for text in texts:
            assert exception_names(text) == [], (name, text)
        # the same sentence, then the detail; the status line is the same for both
        assert admins[name][0].startswith(users[name][0].removesuffix("]")), name
        assert admins[name][1:] == users[name][1:], name
    detailed = {name for name, texts in admins.items() if "(For administrators: " in texts[0]}
    assert detailed == {
        "error YouTube blocked this server's IP / ok",
        "error YouTube blocked this server's IP / recaptcha",
        "error YouTube blocked this server's IP / too_many",
        "error YouTube's answer could not be read / no_key",
        "error Could not reach YouTube / ok",
        "bad admin translate",
        "bad proxy url",
        "cut",
        "timeout",
        "blocked (proxy)",
        "proxy refused",
        "network (proxy)",
        "network",
        "read timeout (proxy)",
        "our timeout",
        "unexpected",
        "unreadable",
        "pool full (proxy)",
        "waited for a thread",
        "missing package",
    }
    assert "PROXY_URL" in admins["error YouTube blocked this server's IP / ok"][0]
    assert "REQUEST_TIMEOUT" in admins["timeout"][0]
    assert "pip install youtube-transcript-api" in admins["missing package"][0]


# --- valve titles -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["Valves", "UserValves"])
def test_every_valve_has_a_human_title(mod: types.ModuleType, which: str) -> None:
    model = getattr(mod.Tools, which)
    titles = {name: field.title for name, field in model.model_fields.items()}
    assert all(titles.values()), titles
    for name, title in titles.items():
        assert title != name.replace("_", " ").title(), name  # not the label Open WebUI would generate
        assert model.model_fields[name].description, name
    assert len(set(titles.values())) == len(titles)
    schema = model.model_json_schema()["properties"]
    assert {name: prop["title"] for name, prop in schema.items()} == titles  # what the valves form shows


def test_a_user_valve_has_the_title_of_the_valve_it_overrides(mod: types.ModuleType) -> None:
    admin = mod.Tools.Valves.model_fields
    for name, field in mod.Tools.UserValves.model_fields.items():
        assert field.title == admin[name].title, name
