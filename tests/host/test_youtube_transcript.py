"""youtube_transcript inside a real Open WebUI (0.6.43 to 0.12.4): stored spec, valves, the native tool loop.

The same assertions hold on every version: the harness asks for the native tool loop where it is not
the default (before 0.10) and reads the tool result from the final message on 0.6.43.

No request may leave 127.0.0.1: valid videos are only asked for with PROXY_URL pointing at a
loopback proxy that refuses (connection refused) or never answers (a black hole), which is how
"no internet" looks to the tool. A non-YouTube link is refused before any request. No test
measures time: the black hole still holding the connection when the answer arrives shows the tool
stopped waiting on its own (bench/bench_youtube_transcript.py has the figures).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fakes.youtube import STALL_PROBE_PIPE, BlackHole, FakeProxy, closed_port_url
from tests.helpers import exception_names, load_built

TOOL = "youtube_transcript"
FUNCTION = "get_youtube_transcript"
VIDEO = "https://www.youtube.com/watch?v=abcDEF12_-x&list=PL1&t=42s"
PROBE = "youtube_stall_probe"


@pytest.fixture(scope="module")
def deployed(owui):
    owui.deploy(TOOL, args=("--share-tools",))  # users need read access for their own valves
    return owui


@pytest.fixture
def proxied(deployed):
    """Deploy with valves for one test, then put the defaults back."""
    applied: list[str] = []

    def apply(**valves):
        applied.extend(valves)
        deployed.deploy(TOOL, valves={TOOL: valves})

    yield apply
    if applied:
        deployed.deploy(TOOL, valves={TOOL: dict.fromkeys(applied)})


def statuses(socket) -> list[dict]:
    return socket.of_type("status")


def test_stored_spec_has_the_method_and_parameter_descriptions(deployed):
    tool = deployed.ok("GET", f"/api/v1/tools/id/{TOOL}")
    assert [s["name"] for s in tool["specs"]] == [FUNCTION]
    spec = tool["specs"][0]
    assert spec["description"].startswith("Get the title, channel and full transcript")
    assert ":param" not in spec["description"]
    properties = spec["parameters"]["properties"]
    assert set(properties) == {"url", "language"}  # reserved __kwargs__ never reach the model
    assert properties["url"]["type"] == "string" and "11-character video id" in properties["url"]["description"]
    assert "language code" in properties["language"]["description"]
    assert spec["parameters"]["required"] == ["url"]


def test_valves_and_user_valves_specs(deployed):
    spec = deployed.ok("GET", f"/api/v1/tools/id/{TOOL}/valves/spec")
    assert list(spec["properties"]) == [
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
    assert spec["properties"]["PROXY_URL"]["input"] == {"type": "password"}
    # the labels the valves form shows (Valves.svelte reads `title`)
    assert [p["title"] for p in spec["properties"].values()] == [
        "Transcript languages",
        "Translate into",
        "Video title and channel",
        "Timestamps",
        "Paragraph length (seconds)",
        "Longest transcript (characters)",
        "Show the video as a source",
        "Proxy URL",
        "Cache time (seconds)",
        "Request timeout (seconds)",
    ]
    user_spec = deployed.ok("GET", f"/api/v1/tools/id/{TOOL}/valves/user/spec", token=deployed.user)
    timestamps = user_spec["properties"]["INCLUDE_TIMESTAMPS"]
    assert timestamps["type"] == "string" and timestamps["enum"] == ["default", "on", "off"]
    assert "enum" not in user_spec["properties"]["TRANSCRIPT_LANGUAGE"]  # language codes stay free text
    assert [p["title"] for p in user_spec["properties"].values()] == [
        "Transcript languages",
        "Translate into",
        "Timestamps",
    ]


def test_user_valves_round_trip_as_the_ui_sends_them(deployed):
    path = f"/api/v1/tools/id/{TOOL}/valves/user"
    # "Custom" with a choice, then "Default" (the UI sends null, the server drops it)
    saved = deployed.ok("POST", f"{path}/update", token=deployed.user, json={"INCLUDE_TIMESTAMPS": "off"})
    assert saved == {"INCLUDE_TIMESTAMPS": "off"}
    assert deployed.ok("GET", path, token=deployed.user) == {"INCLUDE_TIMESTAMPS": "off"}
    # the value the text box used to save keeps its meaning
    saved = deployed.ok("POST", f"{path}/update", token=deployed.user, json={"INCLUDE_TIMESTAMPS": "false"})
    assert saved == {"INCLUDE_TIMESTAMPS": "off"}
    assert deployed.ok("GET", path, token=deployed.user) == {"INCLUDE_TIMESTAMPS": "off"}
    saved = deployed.ok("POST", f"{path}/update", token=deployed.user, json={"INCLUDE_TIMESTAMPS": None})
    assert saved == {}
    assert deployed.ok("GET", path, token=deployed.user) == {}


def test_a_non_youtube_link_is_refused_in_the_tool_loop(deployed, socket):
    run = deployed.run_tool(TOOL, FUNCTION, {"url": "https://vimeo.com/76979871"}, socket)
    assert run.result.startswith("'https://vimeo.com/76979871' is not a YouTube video link")
    assert "11-character video id" in run.result
    assert run.reply == run.result  # the driver echoes what the model was given
    socket.wait_for("status", where=lambda d: d.get("done"))
    assert statuses(socket)[-1]["description"] == "Not a YouTube video link"


def test_no_internet_answers_within_request_timeout(deployed, socket, proxied):
    with FakeProxy("hang") as black_hole:
        proxied(PROXY_URL=black_hole.url, REQUEST_TIMEOUT=3)
        run = deployed.run_tool(TOOL, FUNCTION, {"url": VIDEO}, socket, timeout=60)
        assert "YouTube did not answer within 3 seconds" in run.result
        assert "Traceback" not in run.result
        # the answer came while the black hole still held the connection: the tool gave up by itself
        assert black_hole.held >= 1
        assert black_hole.targets and set(black_hole.targets) == {"www.youtube.com:443"}
    done = socket.wait_for("status", where=lambda d: d.get("done"))
    assert done["description"] == "YouTube did not answer in time"
    assert any(not d.get("done") and "Fetching" in d["description"] for d in statuses(socket))


def test_a_refused_proxy_is_a_quick_network_message(deployed, socket, proxied):
    proxied(PROXY_URL=closed_port_url(), REQUEST_TIMEOUT=20)
    run = deployed.run_tool(TOOL, FUNCTION, {"url": "abcDEF12_-x"}, socket)
    assert "Could not reach YouTube through this server's proxy" in run.result
    assert "did not answer" not in run.result  # the refusal itself, not REQUEST_TIMEOUT running out
    # the caller is the admin: the detail names the valve to check
    assert "(For administrators: the proxy in the “Proxy URL” valve (PROXY_URL) could not be reached" in run.result
    socket.wait_for("status", where=lambda d: d.get("done") and d.get("description") == "Could not reach the proxy")


def test_a_user_reads_a_plain_sentence_without_admin_settings(deployed, socket_for, proxied):
    proxied(PROXY_URL=closed_port_url(), REQUEST_TIMEOUT=20)
    theirs = socket_for(deployed.user)
    run = deployed.run_tool(TOOL, FUNCTION, {"url": "abcDEF12_-x"}, theirs, token=deployed.user)
    assert run.result == (
        "Could not reach YouTube through this server's proxy, so the transcript could not be fetched. "
        "Tell an administrator."
    )
    assert exception_names(run.result) == []
    done = theirs.wait_for("status", where=lambda d: d.get("done"))
    assert done["description"] == "Could not reach the proxy"
    for text in [run.result, *(s["description"] for s in statuses(theirs))]:
        assert "PROXY_URL" not in text and "REQUEST_TIMEOUT" not in text and exception_names(text) == []


def waited(condition, what, timeout: float = 60):
    """Poll until `condition()` is truthy (a wait, not a time limit under test); its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what() if callable(what) else what}")


def test_black_holed_calls_leave_other_chats_their_threads(deployed, socket, proxied):
    """16 calls stuck on a proxy that never answers hold only the tool's own few threads.

    While they are all in flight, a plain chat and a chat whose reply needs a job on asyncio's
    default executor (as Open WebUI's own chat path does for an attached image) both complete, and
    the black hole has still dropped none of the tool's connections: nothing had to be let go for
    them to get through. bench/bench_youtube_stall.py has the latencies, before and after.
    """
    module = load_built(TOOL)
    workers, calls = module._WORKERS, 16
    assert calls <= workers + module._QUEUE  # all of them are taken (none refused as busy)
    deployed.install(PROBE, STALL_PROBE_PIPE)
    # one call first, alone: the harness installs its driver pipe on first use
    assert deployed.run_tool(TOOL, FUNCTION, {"url": "https://vimeo.com/1"}, socket).result.startswith("'https://")

    def probe() -> dict:
        return json.loads(deployed.text_of(deployed.chat(PROBE, json.dumps([TOOL]))))

    with BlackHole() as hole, ThreadPoolExecutor(calls) as clients:
        proxied(PROXY_URL=hole.url, REQUEST_TIMEOUT=20, GET_VIDEO_DETAILS=False)
        before = probe()["pools"][TOOL]  # the module's pool counts every call since it was loaded
        runs = [
            clients.submit(deployed.run_tool, TOOL, FUNCTION, {"url": VIDEO}, socket, timeout=120) for _ in range(calls)
        ]
        last: list[dict] = []

        def all_in_flight() -> dict | None:
            last[:] = [probe()]
            pool = last[0]["pools"][TOOL]
            return last[0] if pool and (pool["running"], pool["waiting"]) == (workers, calls - workers) else None

        seen = waited(all_in_flight, lambda: f"{calls} calls in the tool's pool (last seen: {last})")
        plain = deployed.text_of(deployed.chat("fake-gpt", "hello while YouTube hangs"))
        assert plain == "fake-gpt says: hello while YouTube hangs"
        # both chats got through while every black-holed fetch still held its connection
        assert (hole.accepted, hole.closed) == (workers, 0)
        assert not seen["ran_on"].startswith("youtube-transcript")
        assert seen["tool_threads"] == workers
        results = [run.result(180).result for run in runs]
        timed_out = "YouTube did not answer within 20 seconds through this server's proxy"
        busy = "The YouTube Transcript tool is busy with other requests right now"
        assert all(r.startswith((timed_out, busy)) for r in results), results
        assert sum(r.startswith(timed_out) for r in results) >= workers
        assert all(exception_names(r) == [] for r in results)
        # a fetch that never started made no connection (one that started late may have found its
        # deadline passed before its first request, and made none either)
        done = waited(lambda: (p := probe()["pools"][TOOL])["running"] + p["waiting"] == 0 and p, "the pool is idle")
        started, expired, refused = (done[k] - before[k] for k in ("started", "expired", "refused"))
        assert started + expired == calls and refused == 0
        assert workers <= hole.accepted <= started and set(hole.targets) == {"www.youtube.com:443"}
        waited(lambda: hole.closed == hole.accepted, "every connection dropped by its fetch's own timeout")
