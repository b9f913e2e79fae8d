"""Bench the youtube_transcript tool: formatting, cached repeat calls, load time.

    .venv/bin/python bench/bench_youtube_transcript.py

Prints, next to each target:
- formatting a 3-hour transcript (5,400 captions) into the model text (target <= 20 ms), and with
  the citation event built too;
- a cached repeat call of get_youtube_transcript for that video (target <= 1 ms), after a first
  call that went through the real youtube-transcript-api to a loopback fake YouTube;
- exec + instantiate of dist/tools/youtube_transcript.py the way Open WebUI loads a tool
  (target <= 50 ms);
- how long the tool takes to answer when YouTube hangs (the watch page, the player request, the
  caption request, oEmbed) or a PROXY_URL proxy never answers, with REQUEST_TIMEOUT = 0.5 s
  (target: REQUEST_TIMEOUT + 1.5 s), and when the proxy refuses the connection (target: well
  under REQUEST_TIMEOUT, which stays at its default of 15 s). The tests check that these limits
  hold without measuring time; the figures are here.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from buildlib import loader  # noqa: E402
from tests.fakes.youtube import FakeProxy, FakeYouTube, Track, Video, closed_port_url, proxy_only  # noqa: E402
from tests.helpers import find_built, load_built  # noqa: E402

# the tool logs each failure's detail for administrators; the timing lines are what this prints
logging.getLogger("openwebui_pack").setLevel(logging.ERROR)

VIDEO_ID = "benchVideo0"
SENTENCE = "so the next thing we want to look at is how the model handles very long inputs"
WORDS = SENTENCE.split()


def three_hours() -> list[tuple[float, float, str]]:
    """5,400 captions of 2 s (3 h), 8-12 words each, like auto-generated captions."""
    captions = []
    for i in range(5400):
        n = 8 + i % 5
        captions.append((i * 2.0, 2.0, " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))))
    return captions


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def line(label: str, samples: list[float], target: float) -> None:
    median = statistics.median(samples)
    p95 = sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]
    verdict = "ok" if median <= target else "OVER"
    print(f"{label:<58} median {median:8.3f} ms   p95 {p95:8.3f} ms   target <= {target:g} ms  {verdict}")


def bench_formatting(mod: types.ModuleType) -> None:
    segments = tuple((s, " ".join(t.split())) for s, _, t in three_hours())
    ref = mod._VideoRef(VIDEO_ID)
    details = mod._Details("A three-hour lecture", "Bench Channel")
    settings = mod.resolve_settings(mod.Tools.Valves(MAX_TRANSCRIPT_CHARS=0), None, "")

    def fresh() -> object:
        return mod._Transcript(VIDEO_ID, "English", "en", True, None, segments, 10800.0, {})

    def render_only() -> None:
        mod.render(fresh(), details, ref, settings)

    def render_and_cite() -> None:
        _, body = mod.render(fresh(), details, ref, settings)
        mod.citation_event(ref, details, body)

    text, _ = mod.render(fresh(), details, ref, settings)
    paragraphs = text.count("\n\n[")
    print(f"3-hour transcript: {len(segments):,} captions -> {len(text):,} characters, {paragraphs} paragraphs")
    line("format 3 h transcript (render, no cache)", timed(render_only, 50), 20)
    line("format 3 h transcript + build the citation event", timed(render_and_cite, 50), 20)


def routed_tool(mod: types.ModuleType, yt: FakeYouTube) -> object:
    """A Tools instance whose requests all go to the loopback fake, with an empty cache."""
    tool = mod.Tools()
    tool.youtube = mod._YouTube(oembed_endpoint=yt.oembed_endpoint, session_hook=yt.route)
    tool.cache = mod._Cache()
    return tool


async def bench_cached_call(mod: types.ModuleType, yt: FakeYouTube) -> None:
    yt.add(Video(VIDEO_ID, title="A three-hour lecture", tracks=[Track("en", "English", segments=three_hours())]))
    tool = routed_tool(mod, yt)
    tool.valves.MAX_TRANSCRIPT_CHARS = 0  # the whole 3 hours, the worst case for a repeat call
    events: list[dict] = []

    async def emitter(event: dict) -> None:
        events.append(event)

    url = f"https://youtu.be/{VIDEO_ID}"
    started = time.perf_counter()
    first = await tool.get_youtube_transcript(url, __event_emitter__=emitter)
    first_ms = (time.perf_counter() - started) * 1000
    requests = len(yt.requests)
    print(
        f"first call (library + loopback fake, {requests} requests, {len(first):,} chars): {first_ms:8.1f} ms"
        "   (no target: network bound)"
    )
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        await tool.get_youtube_transcript(url, __event_emitter__=emitter)
        samples.append((time.perf_counter() - started) * 1000)
    assert len(yt.requests) == requests, "repeat calls must come from the cache"
    line("cached repeat call (3 h video, status + citation events)", samples, 1)
    tool.valves.CITATION = False
    samples = []
    for _ in range(200):
        started = time.perf_counter()
        await tool.get_youtube_transcript(url, __event_emitter__=emitter)
        samples.append((time.perf_counter() - started) * 1000)
    line("cached repeat call (3 h video, CITATION off)", samples, 1)


async def elapsed_ms(tool: object, url: str, expect: str) -> float:
    started = time.perf_counter()
    text = await tool.get_youtube_transcript(url)
    ms = (time.perf_counter() - started) * 1000
    assert expect in text, text
    return ms


async def bench_time_limits(mod: types.ModuleType, yt: FakeYouTube) -> None:
    timeout = 0.5
    target = (timeout + 1.5) * 1000
    for hang, path in (
        ("watch", "watch page"),
        ("player", "player request"),
        ("timedtext", "captions request"),
        ("oembed", "oEmbed request"),
    ):
        yt.reset()
        video_id = f"hang{hang:_<7}"[:11]
        yt.add(Video(video_id, tracks=[Track("en", "English", segments=[(0, 2, "hi")])], hang=hang))
        tool = routed_tool(mod, yt)
        tool.valves.REQUEST_TIMEOUT = timeout
        expect = "[0:00] hi" if hang == "oembed" else f"did not answer within {timeout:g} seconds"
        samples = [await elapsed_ms(tool, video_id, expect) for _ in range(3)]
        line(f"YouTube hangs at the {path} (REQUEST_TIMEOUT {timeout:g} s)", samples, target)
        yt.release.set()
    escaped: list[str] = []
    direct = mod.Tools()  # its own sessions, let out only through a 127.0.0.1 proxy
    direct.youtube = mod._YouTube(session_hook=lambda session: proxy_only(session, escaped))
    direct.cache = mod._Cache()
    direct.valves.GET_VIDEO_DETAILS = False
    with FakeProxy("hang") as black_hole:
        direct.valves.PROXY_URL = black_hole.url
        direct.valves.REQUEST_TIMEOUT = timeout
        samples = [await elapsed_ms(direct, "abcDEF12_-x", "did not answer within") for _ in range(3)]
    line(f"PROXY_URL proxy never answers (REQUEST_TIMEOUT {timeout:g} s)", samples, target)
    direct.valves.PROXY_URL = closed_port_url()
    direct.valves.REQUEST_TIMEOUT = 15.0
    samples = [
        await elapsed_ms(direct, "abcDEF12_-x", "Could not reach YouTube through this server's proxy") for _ in range(5)
    ]
    line("PROXY_URL proxy refuses connections (REQUEST_TIMEOUT 15 s)", samples, 15_000)
    assert escaped == [], escaped


def bench_load() -> None:
    plugin = find_built("youtube_transcript")
    import pydantic  # noqa: F401  (Open WebUI has it loaded long before any plugin)

    def load() -> None:
        loader.load_like_open_webui(plugin)

    line("exec + instantiate dist/tools/youtube_transcript.py", timed(load, 30), 50)
    lazy = [m for m in ("youtube_transcript_api", "aiohttp") if m in sys.modules]
    print(f"heavy modules imported by loading the tool: {lazy or 'none (imported on first call)'}")


def main() -> None:
    print(f"python {sys.version.split()[0]}")
    bench_load()  # first, before anything imports the library or aiohttp
    mod = load_built("youtube_transcript")
    bench_formatting(mod)
    with FakeYouTube() as yt:
        asyncio.run(bench_cached_call(mod, yt))
        asyncio.run(bench_time_limits(mod, yt))


if __name__ == "__main__":
    main()
