"""The Gemini manifold under load and attack: image-link budgets, the reply size cap, upstream
text that echoes the API key, and the messages about failed uploads and images.

Uses the fixtures of test_gemini_manifold.py (the built plugin, the real SDK, the fake Gemini); its
autouse key-leak scan covers every reply, event, exception and log line here too.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from tests.fakes import gemini as g
from tests.unit.plugins import test_gemini_manifold as base
from tests.unit.plugins.test_gemini_manifold import (
    KEY,
    OUTPUTS,
    PNG,
    FakeHost,
    _inline,
    _parts,
    body,
    content_of,
    finish_of,
    pick,
    reasoning_of,
    run,
    tool_calls_of,
)

# The fixtures of test_gemini_manifold.py, the autouse key-leak scan among them.
mod, fake, pipe, no_key_leak = base.mod, base.fake, base.pipe, base.no_key_leak


def _image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture
def images():
    server = g.ImageServer({f"/{n}.png": (200, "image/png", PNG + b"\0" * 5000, {}) for n in range(30)})
    yield server
    server.close()


@pytest.fixture
def local(monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_WEB_FETCH", "true")


# --- image links: count, bytes and time for the whole request ------------------------------------


async def test_image_links_have_a_count_budget_newest_first(pipe, fake, images, local):
    pipe.valves = pipe.valves.model_copy(update={"MAX_IMAGE_DOWNLOADS": 2})
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "old"}, _image(images.url + "/0.png")]},
        {"role": "assistant", "content": "seen"},
        {"role": "user", "content": [_image(images.url + "/1.png"), _image(images.url + "/2.png")]},
    ]
    _, events = await run(pipe, {"model": "g.gemini-2.5-flash", "messages": messages, "stream": False})
    contents = fake.last_generate()["contents"]
    assert [bool(_inline(p)) for p in contents[-1]["parts"]] == [True, True]  # the newest message's
    assert contents[0]["parts"][1]["text"] == (
        "[image 1 of an earlier message could not be read: only 2 image links are downloaded for one request]"
    )
    (note,) = events.of("notification")
    assert "image 1 of an earlier message was left out" in note["content"]


async def test_image_links_share_one_byte_budget(pipe, fake, images, local):
    # 20 links of 5 KB each with a 12 KB budget: at most two are downloaded in full, not 20.
    pipe.valves = pipe.valves.model_copy(update={"MAX_IMAGE_DOWNLOADS": 20, "MAX_IMAGE_BYTES_TOTAL": 12_000})
    content = [_image(f"{images.url}/{n}.png") for n in range(20)] + [{"type": "text", "text": "?"}]
    await run(pipe, body(content, stream=False))
    parts = _parts(fake)
    kept = [p for p in parts if _inline(p)]
    assert 1 <= len(kept) <= 2
    assert sum(len(PNG) + 5000 for _ in kept) <= 12_000
    assert sum("together are larger than 11 KB" in p.get("text", "") for p in parts) == 20 - len(kept)


async def test_image_downloads_share_one_deadline_within_the_request_timeout(pipe, fake, images, local, mod):
    pipe.valves = pipe.valves.model_copy(update={"REQUEST_TIMEOUT": 5})
    ticks = iter(range(0, 1000))
    pipe.clock = lambda: float(next(ticks))  # each reading one second later
    seen: list[float] = []
    real = mod.fetch_image

    async def recording(url, **kwargs):
        seen.append(kwargs["timeout"])
        return await real(url, **kwargs)

    pipe_fetch = mod.fetch_image
    mod.fetch_image = recording
    try:
        content = [_image(f"{images.url}/{n}.png") for n in range(8)] + [{"type": "text", "text": "?"}]
        await run(pipe, body(content, stream=False))
    finally:
        mod.fetch_image = pipe_fetch
    # one deadline, 5 s after the start (REQUEST_TIMEOUT < 20 s): later downloads get what is left
    assert seen[0] <= 5 and seen == sorted(seen, reverse=True) and seen[-1] <= 0
    texts = [p.get("text", "") for p in _parts(fake)]
    assert any("could not be downloaded as an image" in t for t in texts)


# --- the reply size cap --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_a_reply_stops_at_its_size_limit_with_a_note(pipe, fake, stream):
    pipe.valves = pipe.valves.model_copy(update={"MAX_REPLY_BYTES": 1024})
    fake.script([g.thought("t" * 300), *(g.text("é" * 100) for _ in range(30)), g.finish()])
    result, _ = await run(pipe, body(stream=stream))
    content = content_of(result)
    answer, _, note = content.partition("\n\n⚠️ ")
    assert len(answer.encode()) + len(reasoning_of(result).encode()) <= 1024
    assert note == "The reply was cut off here: it reached the largest reply this server takes (1 KB)."
    assert finish_of(result) == "length"


async def test_a_reply_under_the_limit_is_untouched(pipe, fake):
    fake.script(g.reply("short answer"))
    result, _ = await run(pipe, body())
    assert content_of(result) == "short answer" and finish_of(result) == "stop"


# --- upstream text that carries the key ----------------------------------------------------------

ECHO = f"echo {KEY} echo"
LEAK_CASES = {
    "reply text": [g.text(ECHO), g.finish()],
    "thought": [g.thought(ECHO), g.text("ok"), g.finish()],
    "blocked message": [g.blocked("SAFETY", ECHO)],
    "grounding": [
        g.text("Lisbon is big."),
        g.grounded([(f"https://x.example/{KEY}", ECHO)], [ECHO], [("Lisbon is big.", [0])]),
        g.finish(),
    ],
    "tool call arguments": [g.function_call("count", {"q": ECHO}), g.finish()],
    "error message": g.error(400, ECHO),
    "error status": g.Error(429, "slow down", status_name=KEY),
    "in-stream error": g.Stream([g.text("part")], then=g.error(500, ECHO)),
}
COUNT_TOOL = {"type": "function", "function": {"name": "count", "parameters": {"type": "object"}}}


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("case", sorted(LEAK_CASES))
async def test_upstream_text_never_shows_the_key(pipe, fake, mod, case, stream, caplog):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True, "MAX_RETRIES": 1})
    scripted = LEAK_CASES[case]
    fake.script(*([scripted] * 3))
    request = body("Lisbon?", stream=stream, tools=[COUNT_TOOL] if "tool" in case else [])
    metadata = {"chat_id": "c1", "message_id": "m1", "params": {"function_calling": "native"}}
    admin = {"id": "a1", "role": "admin", "valves": pipe.UserValves()}  # admins read the upstream detail too
    with contextlib.suppress(mod.GeminiError):
        await run(pipe, request, __metadata__=metadata, __user__=admin)
    # no_key_leak scans OUTPUTS and the log after the test; the redaction marker shows it ran
    assert "[redacted]" in json.dumps(OUTPUTS, ensure_ascii=False, default=repr) + caplog.text


async def test_model_names_from_the_list_are_redacted(mod):
    models = [{"id": "gemini-2.5-flash", "name": f"Flash {KEY}", "thinking": True}]
    with g.FakeGemini(api_key=KEY, models=models) as server:
        p = mod.Pipe()
        p.valves = p.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=server.url)
        entries = await p.pipes()
    OUTPUTS.append(entries)
    assert entries == [{"id": "gemini-2.5-flash", "name": "Flash [redacted]"}]


# --- messages ------------------------------------------------------------------------------------


async def test_a_404_from_the_files_api_is_an_upload_failure(pipe, fake, mod, tmp_path):
    pipe.host = FakeHost(tmp_path, {"f-vid": (b"\0\0\0\x18ftypmp42" + b"v" * 5000, "video/mp4", "clip.mp4")})
    pipe.inline_budget = 4000
    fake.upload_error = g.error(404, "Method not found.")
    files = [{"type": "file", "id": "f-vid", "name": "clip.mp4", "file": {"meta": {"content_type": "video/mp4"}}}]
    with pytest.raises(mod.GeminiError) as caught:
        await run(pipe, body("watch"), __files__=files)
    message = str(caught.value)
    assert message.startswith("Uploading clip.mp4 to Gemini failed: Gemini's Files API was not found")
    assert "model" not in message


async def test_failed_images_are_numbered_as_the_user_sees_them(pipe, fake):
    bad = "data:image/png;base64,@@"
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a"}, _image(bad)]},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": [_image(bad), {"type": "text", "text": "c"}, _image(bad)]},
    ]
    _, events = await run(pipe, {"model": "g.gemini-2.5-flash", "messages": messages, "stream": True})
    (note,) = events.of("notification")
    labels = [w.split(" was left out")[0] for w in note["content"].removeprefix("Gemini: ").split("; ")]
    assert labels == ["image 1 of an earlier message", "image 1", "image 2"]
    assert pick(fake.last_generate(), "contents")[-1]["parts"][0]["text"].startswith("[image 1 could not")
    assert tool_calls_of([]) == []
