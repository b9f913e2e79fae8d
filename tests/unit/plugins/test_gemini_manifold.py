"""Unit tier for the Gemini manifold: the built plugin, the real google-genai SDK, a fake Gemini server.

The pure parts (request building, replies, attachments) have their own tests in tests/unit/shared/.

Every reply, event, exception and log line a test produces is scanned for the API key (autouse
`no_key_leak`), and every request the fake saw must carry the key in `x-goog-api-key` only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import gemini as g
from tests.helpers import ROOT, exception_names, load_built

try:
    from google.genai import types as genai_types
except ImportError:  # the SDK is a requirement of this tier; the tests that need it fail clearly
    genai_types = None

# google-genai gained ToolConfig.include_server_side_tool_invocations after 1.66 (Open WebUI 0.6-0.10 ship
# 1.56/1.66): without it the pipe cannot keep Gemini 3's search steps and treats it like earlier models.
SDK_SEARCH_STEPS = "include_server_side_tool_invocations" in getattr(
    getattr(genai_types, "ToolConfig", None), "model_fields", {}
)

KEY = "AIzaSyTEST-key-0123456789abcdefghijkl"
USER_KEY = "AIzaSyUSER-key-9876543210zyxwvutsrqpo"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")

OUTPUTS: list[Any] = []  # everything the plugin handed back during the current test
LAST_EVENTS: list[Events] = []  # the events of the last run(), also when it raised


@pytest.fixture(scope="module")
def mod():
    return load_built("gemini_manifold")


def assert_key_only_in_header(server: g.FakeGemini) -> None:
    for rec in server.requests:
        assert KEY not in rec.path and KEY not in json.dumps(rec.query)
        assert KEY.encode() not in rec.body and USER_KEY.encode() not in rec.body
        if "upload_id" not in rec.query:  # the byte transfer is authorised by its upload id
            assert rec.headers.get("x-goog-api-key") in (KEY, USER_KEY)
        for name, value in rec.headers.items():
            if name != "x-goog-api-key":
                assert KEY not in value and USER_KEY not in value


@pytest.fixture
def fake():
    with g.FakeGemini(api_key=KEY) as server:
        yield server
        assert_key_only_in_header(server)


class Sleeps(list):
    """The pipe's sleep between retries: records each wait instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def pipe(mod, fake):
    p = mod.Pipe()
    p.valves = p.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=fake.url, MAX_RETRIES=2)
    p.sleep = Sleeps()
    return p


class FakeHost:
    """Open WebUI's file store as the pipe reads it (`file_record`, `local_file_path`)."""

    def __init__(self, root: Path, files: dict[str, tuple[bytes, str, str]], owner: str = "u1") -> None:
        self.records: dict[str, Any] = {}
        for file_id, (data, mime, name) in files.items():
            (root / file_id).write_bytes(data)
            meta = {"content_type": mime}
            self.records[file_id] = SimpleNamespace(user_id=owner, path=str(root / file_id), filename=name, meta=meta)

    async def file_record(self, file_id: str) -> Any:
        return self.records.get(file_id)

    async def local_file_path(self, stored_path: str) -> str:
        return stored_path


@pytest.fixture(autouse=True)
def no_key_leak(caplog):
    OUTPUTS.clear()
    caplog.set_level(logging.DEBUG)
    yield
    text = json.dumps(OUTPUTS, default=repr) + caplog.text
    for key in (KEY, USER_KEY):
        assert key not in text, "the API key leaked into a reply, event, exception or log line"


class caplog_records:
    """The log lines the pipe writes inside the block (its admin detail goes to the server log)."""

    def __enter__(self) -> list[str]:
        self.lines: list[str] = []
        self.handler = logging.Handler()
        self.handler.emit = lambda record: self.lines.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("openwebui_pack").addHandler(self.handler)
        return self.lines

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("openwebui_pack").removeHandler(self.handler)


class Events(list):
    async def __call__(self, event: dict) -> None:
        self.append(event)
        OUTPUTS.append(event)

    def of(self, kind: str) -> list[dict]:
        return [e["data"] for e in self if e["type"] == kind]


async def run(pipe, body: dict, **kwargs: Any) -> tuple[Any, Events]:
    """Call pipe() like Open WebUI does; a stream is consumed into its list of chunks."""
    events = Events()
    LAST_EVENTS[:] = [events]
    kwargs.setdefault("__user__", {"id": "u1", "role": "user", "valves": pipe.UserValves()})
    try:
        result = await pipe.pipe(body, __event_emitter__=events, **kwargs)
    except Exception as exc:
        OUTPUTS.append(str(exc))
        raise
    if isinstance(result, AsyncIterator):
        result = [item async for item in result]
    OUTPUTS.append(result)
    return result, events


def events_of_last_run() -> Events:
    return LAST_EVENTS[-1]


def body(text: str = "hi", *, model: str = "gemini_manifold.gemini-2.5-flash", stream: bool = True, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream, **extra}


def content_of(result: Any) -> str:
    if isinstance(result, dict):
        return result["choices"][0]["message"]["content"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in result if "choices" in c)


def replaced_text(result: list) -> str | None:
    """The text of the stream item that replaces the streamed message as a whole, if any."""
    items = [c for c in result if c.get("type") == "response.output_text.done"]
    assert len(items) <= 1
    return items[0]["text"] if items else None


def reasoning_of(result: Any) -> str:
    if isinstance(result, dict):
        return result["choices"][0]["message"].get("reasoning_content") or ""
    return "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in result if "choices" in c)


def tool_calls_of(result: Any) -> list[dict]:
    if isinstance(result, dict):
        return result["choices"][0]["message"].get("tool_calls") or []
    return [tc for c in result if "choices" in c for tc in c["choices"][0]["delta"].get("tool_calls") or []]


def finish_of(result: Any) -> str:
    if isinstance(result, dict):
        return result["choices"][0]["finish_reason"]
    return result[-1]["choices"][0]["finish_reason"]


def sent(fake) -> dict:
    return fake.last_generate()


def config_of(fake) -> dict:
    return sent(fake).get("generationConfig") or {}


def pick(d: dict, *names: str) -> Any:
    """A field the SDK may send in camelCase or snake_case (Google accepts both)."""
    for name in names:
        if name in d:
            return d[name]
    return None


# --- loading ---------------------------------------------------------------------------------


def test_loading_does_not_import_the_sdk():
    code = (
        "import sys; from tests.helpers import load_built; m = load_built('gemini_manifold'); m.Pipe();"
        "print('google.genai' in sys.modules, 'aiohttp' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.split() == ["False", "False"]


def test_valves_have_descriptions_bounds_and_a_password_key(mod):
    for cls in (mod.Pipe.Valves, mod.Pipe.UserValves):
        schema = cls.model_json_schema()
        for name, spec in schema["properties"].items():
            assert spec.get("description"), name
            if spec.get("type") == "integer":
                assert "minimum" in spec and "maximum" in spec, name
            if spec.get("type") == "string" and "enum" not in spec:
                assert "maxLength" in spec, name
        assert schema["properties"]["GOOGLE_API_KEY"]["input"] == {"type": "password"}
        assert "SecretStr" not in json.dumps(schema)
    names = set(mod.Pipe.Valves.model_fields)
    assert names == {
        "GOOGLE_API_KEY",
        "GOOGLE_API_BASE_URL",
        "MODEL_ALLOWLIST",
        "MODEL_DENYLIST",
        "MODEL_CACHE_TTL",
        "USE_PERMISSIVE_SAFETY",
        "INCLUDE_THOUGHTS",
        "THINKING_BUDGET",
        "THINKING_LEVEL",
        "GOOGLE_SEARCH_GROUNDING",
        "REQUEST_TIMEOUT",
        "MAX_RETRIES",
        "MAX_IMAGE_DOWNLOADS",
        "MAX_IMAGE_BYTES_TOTAL",
        "MAX_REPLY_BYTES",
        # media
        "IMAGE_ASPECT_RATIO",
        "IMAGE_SIZE",
        "IMAGE_HISTORY_LIMIT",
        "CODE_EXECUTION",
        "URL_CONTEXT",
        "GOOGLE_MAPS_GROUNDING",
        "YOUTUBE_AS_VIDEO",
        # transport
        "GOOGLE_API_KEY_FALLBACK",
        "USE_VERTEX_AI",
        "VERTEX_PROJECT",
        "VERTEX_LOCATION",
        "VERTEX_CREDENTIALS_JSON",
        "VIDEO_ASPECT_RATIO",
        "VIDEO_DURATION_SECONDS",
        "VIDEO_RESOLUTION",
        "VIDEO_NEGATIVE_PROMPT",
        "PRICES",
    }
    admin = mod.Pipe.Valves.model_json_schema()["properties"]
    for secret in ("GOOGLE_API_KEY_FALLBACK", "VERTEX_CREDENTIALS_JSON"):
        assert admin[secret]["input"] == {"type": "password"}, secret
    assert set(mod.Pipe.UserValves.model_fields) == {
        "GOOGLE_API_KEY",
        "INCLUDE_THOUGHTS",
        "GOOGLE_SEARCH_GROUNDING",
        "IMAGE_ASPECT_RATIO",
        "IMAGE_SIZE",
        "CODE_EXECUTION",
        "URL_CONTEXT",
        "GOOGLE_MAPS_GROUNDING",
        "VIDEO_ASPECT_RATIO",
        "VIDEO_DURATION_SECONDS",
        "VIDEO_RESOLUTION",
        "VIDEO_NEGATIVE_PROMPT",
    }
    assert mod.Pipe.Valves().MODEL_ALLOWLIST == "gemini-*"


def test_user_switches_are_dropdowns_that_keep_old_stored_values(mod):
    # Open WebUI 0.12.4 draws a field with an `enum` as a dropdown, an optional bool as a text box.
    properties = mod.Pipe.UserValves.model_json_schema()["properties"]
    for name in ("INCLUDE_THOUGHTS", "GOOGLE_SEARCH_GROUNDING"):
        assert properties[name]["enum"] == ["default", "on", "off"] and properties[name]["default"] == "default"
        for stored, switch in ((True, "on"), (False, "off"), (None, "default"), ("on", "on"), ("default", "default")):
            assert getattr(mod.Pipe.UserValves(**{name: stored}), name) == switch


@pytest.mark.parametrize(
    ("user", "admin", "expected"), [("default", True, True), ("off", True, False), (True, False, True)]
)
async def test_user_switches_override_the_admin(pipe, fake, user, admin, expected):
    fake.script([g.thought("plan"), g.text("Answer"), g.finish()])
    pipe.valves = pipe.valves.model_copy(update={"INCLUDE_THOUGHTS": admin})
    valves = pipe.UserValves(INCLUDE_THOUGHTS=user)
    result, _ = await run(pipe, body(), __user__={"id": "u1", "role": "user", "valves": valves})
    assert (reasoning_of(result) == "plan") is expected


# --- model list ------------------------------------------------------------------------------


async def test_pipes_without_a_key_says_what_to_do(mod):
    entries = await mod.Pipe().pipes()
    # everyone reads the model list: plain words, no valve names
    assert entries == [{"id": "setup", "name": "Gemini (not set up yet: no API key)"}]


async def test_pipes_without_a_key_lists_exact_allowlist_ids(mod):
    p = mod.Pipe()
    p.valves = p.Valves(MODEL_ALLOWLIST="gemini-2.5-flash, gemini-2.5-pro, gemini-3*")
    assert await p.pipes() == [
        {"id": "gemini-2.5-flash", "name": "gemini-2.5-flash"},
        {"id": "gemini-2.5-pro", "name": "gemini-2.5-pro"},
    ]


async def test_pipes_lists_generate_models_filtered_by_globs_all_pages(pipe, fake):
    fake.max_page_size = 3
    ids = [e["id"] for e in await pipe.pipes()]
    # gemma is outside the gemini-* allowlist, TTS is denied by default, embedding/imagen cannot chat.
    assert ids == ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview", "gemini-2.0-flash"]
    listing = [r for r in fake.requests if r.path == "/v1beta/models"]
    assert [r.query.get("pageToken") for r in listing] == [None, ["3"], ["6"]]
    pipe.valves = pipe.valves.model_copy(update={"MODEL_ALLOWLIST": "", "MODEL_DENYLIST": "*flash*"})
    ids = [e["id"] for e in await pipe.pipes()]
    assert ids == ["gemini-2.5-pro", "gemini-3-pro-preview", "gemma-3-27b-it"]  # filters apply without refetch
    assert len([r for r in fake.requests if r.path == "/v1beta/models"]) == 3
    pipe.valves = pipe.valves.model_copy(update={"MODEL_ALLOWLIST": "claude-*"})
    assert [e["id"] for e in await pipe.pipes()] == ["none"]


async def test_model_list_is_cached_per_key_hash_for_the_ttl(pipe, fake):
    await pipe.pipes()
    await pipe.pipes()
    assert len([r for r in fake.requests if r.path == "/v1beta/models"]) == 1
    assert all(KEY not in k for k in pipe._listings)
    pipe.valves = pipe.valves.model_copy(update={"MODEL_CACHE_TTL": 0})
    await pipe.pipes()
    assert len([r for r in fake.requests if r.path == "/v1beta/models"]) == 2


async def test_model_list_failure_names_the_fix_and_keeps_a_good_list(pipe, fake, mod):
    fake.list_error = g.error(403, f"Permission denied for key {KEY}")
    with caplog_records() as records:
        entries = await pipe.pipes()
    OUTPUTS.append(entries)
    assert entries == [{"id": "error", "name": "Gemini (the model list could not be loaded: see the server log)"}]
    assert any("403 PERMISSION_DENIED" in r and "[redacted]" in r for r in records)  # the admin's detail
    # a good list survives a later failure
    fake.list_error = None
    pipe._listings.clear()
    assert len(await pipe.pipes()) == 4
    fake.list_error = g.error(503, "down")
    pipe.valves = pipe.valves.model_copy(update={"MODEL_CACHE_TTL": 0})
    assert len(await pipe.pipes()) == 4


async def test_unreachable_server_gives_one_entry(mod):
    p = mod.Pipe()
    p.valves = p.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL="http://127.0.0.1:9")
    with caplog_records() as records:
        entries = await p.pipes()
    assert [e["id"] for e in entries] == ["error"] and exception_names(entries[0]["name"]) == []
    assert any("GOOGLE_API_BASE_URL" in r and "ClientConnectorError" in r for r in records)


async def test_a_users_own_key_never_fills_the_shared_model_list(pipe, fake):
    fake.api_key = USER_KEY
    user = {"id": "u2", "role": "user", "valves": pipe.UserValves(GOOGLE_API_KEY=USER_KEY)}
    result, _ = await run(pipe, body("hi"), __user__=user)
    assert content_of(result) == "Echo: hi"
    assert fake.generate_requests()[-1].headers["x-goog-api-key"] == USER_KEY
    assert pipe._listings == {}  # listing is the admin key's alone: Open WebUI shows it to everyone


# --- requests --------------------------------------------------------------------------------


async def test_stream_and_non_stream_reply(pipe, fake):
    result, _ = await run(pipe, body("hello"))
    assert content_of(result) == "Echo: hello" and finish_of(result) == "stop"
    assert fake.generate_requests()[-1].path.endswith("/gemini-2.5-flash:streamGenerateContent")
    assert fake.generate_requests()[-1].query == {"alt": ["sse"]}
    result, _ = await run(pipe, body("hello", stream=False))
    assert result["object"] == "chat.completion" and content_of(result) == "Echo: hello"
    assert fake.generate_requests()[-1].path.endswith("/gemini-2.5-flash:generateContent")


async def test_sub_model_id_is_split_on_the_first_dot_whatever_the_function_id(pipe, fake):
    await run(pipe, body(model="my_gemini.gemini-2.5-pro"))
    assert fake.generate_requests()[-1].model == "gemini-2.5-pro"


async def test_missing_key_is_a_clear_error(mod, fake):
    p = mod.Pipe()
    p.valves = p.Valves(GOOGLE_API_BASE_URL=fake.url)
    with pytest.raises(mod.GeminiError, match="no API key yet") as info:
        await run(p, body())
    assert "GOOGLE_API_KEY" not in str(info.value)  # a user cannot set the admin's valve
    with pytest.raises(mod.GeminiError, match=r"For administrators: set GOOGLE_API_KEY in Admin Panel"):
        await run(p, body(), __user__={"id": "a1", "role": "admin"})
    assert fake.requests == []


async def test_placeholder_entry_explains_itself(pipe, mod):
    with pytest.raises(mod.GeminiError, match="not a model"):
        await run(pipe, body(model="gemini_manifold.setup"))


async def test_sampling_parameters_only_when_set(pipe, fake, mod):
    await run(pipe, body())
    assert set(config_of(fake)) <= {"thinkingConfig"}
    await run(pipe, body(temperature=0.2, top_p=0.9, top_k=40, max_tokens=99, stop="END", seed=7))
    cfg = config_of(fake)
    assert pick(cfg, "temperature") == 0.2 and pick(cfg, "topP", "top_p") == 0.9
    assert pick(cfg, "topK", "top_k") == 40 and pick(cfg, "maxOutputTokens") == 99
    assert pick(cfg, "stopSequences") == ["END"] and cfg["seed"] == 7
    await run(pipe, body(max_completion_tokens=5, stop=["a", "b", "c", "d", "e", "f"]))
    assert pick(config_of(fake), "maxOutputTokens") == 5 and len(pick(config_of(fake), "stopSequences")) == 5
    for bad in ({"temperature": "hot"}, {"top_p": 3}, {"max_tokens": 0}, {"stop": [1]}, {"seed": True}):
        with pytest.raises(mod.GeminiError, match=next(iter(bad))):
            await run(pipe, body(**bad))


async def test_system_messages_become_the_system_instruction(pipe, fake):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": '<details type="reasoning" done="true">\n> x\n</details>\nSalut'},
        {"role": "user", "content": "again"},
        {"role": "user", "content": [{"type": "text", "text": "and again"}]},
        {"role": "moderator", "content": "ignored"},
    ]
    await run(pipe, {"model": "g.gemini-2.5-flash", "messages": messages, "stream": False})
    req = sent(fake)
    assert req["systemInstruction"]["parts"] == [{"text": "Be brief.\n\nUse French."}]
    assert req["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "Salut"}]},
        {"role": "user", "parts": [{"text": "again"}, {"text": "and again"}]},
    ]


async def test_other_models_thinking_in_the_history_is_not_sent(pipe, fake):
    history = [
        "<thinking>Let me plan.</thinking>Plan A.",
        "<|begin_of_thought|>hmm<|end_of_thought|>\nPlan B.",
        "<think>x</think>Plan C.",
        '<details type="reasoning" done="true">\n> y\n</details>\nPlan D.',
        "◁think▷z◁/think▷Plan E.",
    ]
    messages = []
    for reply in history:
        messages += [{"role": "user", "content": "next?"}, {"role": "assistant", "content": reply}]
    messages.append({"role": "user", "content": "and now?"})
    await run(pipe, {"model": "g.gemini-2.5-flash", "messages": messages, "stream": False})
    model_turns = [c["parts"] for c in sent(fake)["contents"] if c["role"] == "model"]
    assert model_turns == [[{"text": f"Plan {letter}."}] for letter in "ABCDE"]


async def test_no_user_message_is_a_clear_error(pipe, mod):
    with pytest.raises(mod.GeminiError, match="no user message"):
        await run(pipe, {"model": "g.gemini-2.5-flash", "messages": [{"role": "system", "content": "x"}]})
    with pytest.raises(mod.GeminiError, match="messages"):
        await run(pipe, {"model": "g.gemini-2.5-flash", "messages": "hi"})


def _parts(fake) -> list[dict]:
    return sent(fake)["contents"][-1]["parts"]


def _inline(part: dict) -> dict:
    return pick(part, "inlineData", "inline_data")


async def test_images_from_data_uris_keep_their_real_mime_type(pipe, fake):
    png_uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    mislabelled = "data:image/jpeg;base64," + base64.b64encode(PNG).decode()
    gif_uri = "data:image/gif;base64," + base64.b64encode(GIF).decode()
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": png_uri}},
        {"type": "image_url", "image_url": {"url": mislabelled}},
        {"type": "image_url", "image_url": {"url": gif_uri}},
    ]
    await run(pipe, body(content, stream=False))
    parts = _parts(fake)
    assert parts[0] == {"text": "what is this?"}
    assert [pick(_inline(p), "mimeType", "mime_type") for p in parts[1:]] == ["image/png"] * 3
    assert base64.urlsafe_b64decode(_inline(parts[1])["data"]) == PNG


async def test_bad_images_and_unknown_parts_are_left_out_with_a_warning(pipe, fake):
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@not base64@@"}},
        {"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}},
        {"type": "image_url", "image_url": {}},
        {"type": "video_frames", "frames": [1, 2]},
        "stray string",
        42,
    ]
    result, events = await run(pipe, body(content))
    assert content_of(result).startswith("Echo: look")
    texts = [p["text"] for p in _parts(fake)]
    assert texts[0] == "look" and "base64" in texts[1] and "http" in texts[2]
    (note,) = events.of("notification")
    assert note["type"] == "warning" and "image 1 was left out" in note["content"]


async def test_audio_and_file_parts(pipe, fake):
    wav = b"RIFF\x24\x00\x00\x00WAVEfmt "
    pdf = b"%PDF-1.4 tiny"
    content = [
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"}},
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode()},
        },
        {"type": "text", "text": "summarise"},
    ]
    await run(pipe, body(content, stream=False))
    mimes = [pick(_inline(p), "mimeType", "mime_type") for p in _parts(fake)[:2]]
    assert mimes == ["audio/wav", "application/pdf"]


@pytest.fixture
def images():
    server = g.ImageServer(
        {
            "/cat.png": (200, "application/octet-stream", PNG, {}),
            "/moved": (302, "text/plain", b"", {"Location": "/cat.png"}),
            "/page": (200, "text/html", b"<html>secret intranet</html>", {}),
            "/huge.png": (200, "image/png", PNG + b"\0" * (2 * 1024 * 1024), {}),
            "/gone.png": (404, "text/plain", b"", {}),
        }
    )
    yield server
    server.close()


async def test_image_urls_are_fetched_with_caps(pipe, fake, images, monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_WEB_FETCH", "true")
    pipe.image_max_bytes = 1024 * 1024
    urls = ["/cat.png", "/moved", "/page", "/huge.png", "/gone.png"]
    content = [{"type": "image_url", "image_url": {"url": images.url + u}} for u in urls]
    content.append({"type": "text", "text": "?"})
    _, events = await run(pipe, body(content, stream=False))
    parts = _parts(fake)
    assert [pick(_inline(p), "mimeType", "mime_type") for p in parts[:2]] == ["image/png", "image/png"]
    # one sentence for a page and a 404 alike (the server log tells them apart); a size cap says so
    failed = "[image {} could not be read: the link could not be downloaded as an image]"
    assert parts[2]["text"] == failed.format(3) and parts[4]["text"] == failed.format(5)
    assert "larger than 1 MB" in parts[3]["text"]
    assert "intranet" not in json.dumps(sent(fake))
    assert len(events.of("notification")) == 1


async def test_attached_files_go_inline_or_through_the_files_api(pipe, fake, tmp_path):
    store = {
        "f-pdf": (b"%PDF-1.7 " + b"x" * 3000, "application/pdf", "report.pdf"),
        "f-txt": (b"plain notes", "text/markdown", "notes.md"),
        "f-vid": (b"\0\0\0\x18ftypmp42" + b"v" * 5000, "video/mp4", "clip.mp4"),
        "f-zip": (b"PK", "application/zip", "x.zip"),
    }
    pipe.host = FakeHost(tmp_path, store, owner="u1")  # "f-gone" has no record
    pipe.inline_budget = 4000
    fake.processing_polls = 1
    files = [
        {"type": "file", "id": "f-pdf", "name": "report.pdf", "file": {"meta": {"content_type": "application/pdf"}}},
        {"type": "file", "id": "f-txt", "name": "notes.md", "file": {"meta": {"content_type": "text/markdown"}}},
        {"type": "file", "file": {"id": "f-vid", "filename": "clip.mp4", "meta": {"content_type": "video/mp4"}}},
        {"type": "file", "id": "f-zip", "name": "x.zip"},
        {"type": "file", "id": "f-gone", "name": "gone.pdf"},
        {"type": "image", "id": "img", "url": "/api/v1/files/img"},
        {"type": "collection", "id": "kb"},
        "junk",
    ]
    _, events = await run(pipe, body("summarise"), __files__=files)
    parts = _parts(fake)
    assert parts[-1] == {"text": "summarise"}
    kinds = [("file" if pick(p, "fileData", "file_data") else "inline") for p in parts[:-1]]
    assert kinds == ["inline", "inline", "file"]  # the video is the largest: it moves to the Files API
    assert pick(_inline(parts[1]), "mimeType", "mime_type") == "text/plain"
    file_data = pick(parts[2], "fileData", "file_data")
    assert pick(file_data, "mimeType", "mime_type") == "video/mp4"
    (uploaded,) = fake.files.values()
    assert bytes(uploaded.data) == store["f-vid"][0] and uploaded.state == "ACTIVE"
    assert any("gone.pdf was left out" in n["content"] for n in events.of("notification"))
    assert any("Uploading clip.mp4" in s["description"] for s in events.of("status"))
    # the same bytes are not uploaded twice for the same key
    await run(pipe, body("again"), __files__=files)
    assert len(fake.files) == 1 and pick(_parts(fake)[2], "fileData", "file_data") == file_data


async def test_a_failed_upload_closes_its_status(pipe, fake, mod, tmp_path):
    pipe.host = FakeHost(tmp_path, {"f-vid": (b"\0\0\0\x18ftypmp42" + b"v" * 5000, "video/mp4", "clip.mp4")})
    pipe.inline_budget = 4000
    fake.upload_error = g.error(400, "Upload refused")
    files = [{"type": "file", "id": "f-vid", "name": "clip.mp4", "file": {"meta": {"content_type": "video/mp4"}}}]
    with pytest.raises(mod.GeminiError, match="Upload refused"):
        await run(pipe, body("watch"), __files__=files)
    statuses = events_of_last_run().of("status")
    assert statuses[0]["description"].startswith("Uploading clip.mp4") and statuses[0]["done"] is False
    assert statuses[-1] == {"description": "Uploading clip.mp4 failed", "done": True, "hidden": False}
    assert fake.generate_requests() == []


# --- thinking --------------------------------------------------------------------------------


async def test_thoughts_go_to_the_reasoning_block_in_both_modes(pipe, fake):
    script = [g.thought("Planning. "), g.thought("Done."), g.text("Answer"), g.finish()]
    fake.script(script, script)
    result, _ = await run(pipe, body())
    assert reasoning_of(result) == "Planning. Done." and content_of(result) == "Answer"
    first_content = next(i for i, c in enumerate(result) if c["choices"][0]["delta"].get("content"))
    assert all("reasoning_content" in c["choices"][0]["delta"] for c in result[:first_content])
    result, _ = await run(pipe, body(stream=False))
    assert reasoning_of(result) == "Planning. Done." and content_of(result) == "Answer"
    assert pick(config_of(fake)["thinkingConfig"], "includeThoughts", "include_thoughts") is True


async def test_thoughts_can_be_hidden_by_the_user(pipe, fake):
    fake.script([g.thought("secret plan"), g.text("Answer"), g.finish()])
    user = {"id": "u1", "role": "user", "valves": pipe.UserValves(INCLUDE_THOUGHTS=False)}
    result, _ = await run(pipe, body(), __user__=user)
    assert reasoning_of(result) == "" and "secret plan" not in json.dumps(result)
    assert "thinkingConfig" not in config_of(fake)


ALIASES = [
    {"id": "gemini-flash-latest", "name": "Gemini Flash Latest", "thinking": True},
    {"id": "gemini-flash-lite-latest", "name": "Gemini Flash-Lite Latest", "thinking": True},
    {"id": "gemini-pro-latest", "name": "Gemini Pro Latest", "thinking": True},
    {"id": "gemini-nothink-latest", "name": "Gemini No Thinking", "thinking": False},
]


@pytest.mark.parametrize(
    ("model", "valves", "extra", "expected"),
    [
        ("gemini-2.5-flash", {"THINKING_BUDGET": 2048}, {}, {"thinking_budget": 2048}),
        ("gemini-2.5-flash", {}, {"reasoning_effort": "low"}, {"thinking_budget": 1024}),
        ("gemini-2.5-pro", {"THINKING_BUDGET": 0}, {}, {"thinking_budget": 128}),
        ("gemini-3-pro-preview", {"THINKING_LEVEL": "minimal"}, {}, {"thinking_level": "LOW"}),
        ("gemini-3-pro-preview", {"THINKING_LEVEL": "low"}, {"reasoning_effort": "high"}, {"thinking_level": "HIGH"}),
        ("gemini-3-flash", {"THINKING_LEVEL": "medium"}, {}, {"thinking_level": "MEDIUM"}),
        ("gemini-2.0-flash", {"THINKING_BUDGET": 999}, {"reasoning_effort": "high"}, None),
        # Google's version-less aliases: the model list says they think; a budget works on 2.5 and 3
        ("gemini-flash-latest", {}, {"reasoning_effort": "low"}, {"thinking_budget": 1024}),
        ("gemini-flash-latest", {"THINKING_BUDGET": 2048, "THINKING_LEVEL": "high"}, {}, {"thinking_budget": 2048}),
        ("gemini-flash-lite-latest", {"THINKING_LEVEL": "high"}, {}, {"thinking_budget": 24576}),
        ("gemini-flash-lite-latest", {}, {"reasoning_effort": "none"}, {"thinking_budget": 0}),
        ("gemini-pro-latest", {"THINKING_BUDGET": 0}, {}, {"thinking_budget": 128}),
        ("gemini-pro-latest", {}, {}, None),
        ("gemini-nothink-latest", {"THINKING_BUDGET": 512}, {}, None),  # the list says it does not think
    ],
)
async def test_thinking_budget_and_level(pipe, fake, model, valves, extra, expected):
    fake.models += [{"id": "gemini-3-flash", "name": "Gemini 3 Flash"}, *ALIASES]
    await pipe.pipes()  # the model list says which models think
    pipe.valves = pipe.valves.model_copy(update={"INCLUDE_THOUGHTS": False, **valves})
    await run(pipe, body(model=f"g.{model}", **extra))
    got = config_of(fake).get("thinkingConfig")
    normalised = {k.replace("thinkingBudget", "thinking_budget").replace("thinkingLevel", "thinking_level"): v
                  for k, v in (got or {}).items()}  # fmt: skip
    assert (normalised or None) == expected


async def test_bad_reasoning_effort_is_a_clear_error(pipe, mod):
    with pytest.raises(mod.GeminiError, match="reasoning_effort"):
        await run(pipe, body(reasoning_effort="max"))


# --- grounding, usage ------------------------------------------------------------------------


REDIRECT = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"
CHAT = {"chat_id": "c1", "message_id": "m1", "session_id": "s1"}  # a chat message, as the UI sends it


def grounded_answer(answer: str = "Paris is the capital. It is on the Seine.") -> list[dict]:
    sources = [(REDIRECT + "AAA", "example.org"), (REDIRECT + "BBB", "Seine facts - River Guide")]
    supports = [("Paris is the capital.", [0, 1]), ("It is on the Seine.", [1])]
    return [g.text(answer), g.grounded(sources, ["capital of france"], supports, answer=answer), g.finish()]


async def test_grounding_sources_become_citations(pipe, fake):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    fake.script(grounded_answer())
    result, events = await run(pipe, body("capital?"), __metadata__=dict(CHAT))
    assert sent(fake)["tools"] == [{"googleSearch": {}}]
    assert content_of(result) == "Paris is the capital. It is on the Seine."  # as streamed
    # once the supports are known, the message is replaced with the citation marks in it
    assert replaced_text(result) == "Paris is the capital.[1][2] It is on the Seine.[2]"
    cites = events.of("citation")
    # titles, not the long redirect URLs: Open WebUI lists a source by name when `external` is set
    assert [c["source"]["name"] for c in cites] == ["example.org", "Seine facts - River Guide"]
    assert [c["source"]["url"] for c in cites] == [REDIRECT + "AAA", REDIRECT + "BBB"]
    assert all(m["external"] is True and m["source"] == c["source"]["url"] for c in cites for m in c["metadata"])
    assert cites[0]["metadata"][0]["domain"] == "example.org"
    assert cites[1]["document"] == ["Paris is the capital.", "It is on the Seine."]
    (status,) = [s for s in events.of("status") if s.get("action") == "web_search"]
    assert status["urls"] == [REDIRECT + "AAA", REDIRECT + "BBB"] and status["done"] is True
    # the search queries come first, as chips (StatusItem.svelte renders `queries` for this action)
    (queries,) = [s for s in events.of("status") if s.get("action") == "web_search_queries_generated"]
    assert queries["queries"] == ["capital of france"] and queries["done"] is True
    order = [(e["type"], e["data"].get("action")) for e in events]
    assert order == [
        ("status", "web_search_queries_generated"),
        ("citation", None),
        ("citation", None),
        ("status", "web_search"),
    ]


async def test_citation_marks_in_every_mode(pipe, fake):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    answer = "Ça coûte 3 €. Lisbon is the capital of Portugal."  # offsets are UTF-8 bytes
    lisbon = "Lisbon is the capital of Portugal."

    def one_source(uri: str) -> list[dict]:
        return [g.text(answer), g.grounded([(uri, "a.example")], ["q"], [(lisbon, [0])], answer=answer), g.finish()]

    # not streaming: the completion carries the marks, numbered after the document Open WebUI shows
    rag = {"source": {"id": "f1"}, "document": ["x"], "metadata": [{"file_id": "f1", "source": "notes.md"}]}
    fake.script(one_source(REDIRECT + "A"), one_source(REDIRECT + "B"))
    result, _ = await run(pipe, body("?", stream=False), __metadata__={**CHAT, "sources": [rag]})
    assert content_of(result) == f"Ça coûte 3 €. {lisbon}[2]"
    # a later round of the same message (a tool loop) counts the sources it already showed
    result, _ = await run(pipe, body("?", stream=False), __metadata__={**CHAT, "sources": [rag]})
    assert content_of(result) == f"Ça coûte 3 €. {lisbon}[3]"
    # an API caller's stream (no chat message): nothing can replace the text, so no marks
    fake.script(grounded_answer())
    result, events = await run(pipe, body("?"))
    assert replaced_text(result) is None and len(events.of("citation")) == 2
    # a reply without supports is left as it is
    fake.script([g.text("Plain."), g.grounded([(REDIRECT + "A", "a.example")], ["q"], []), g.finish()])
    result, _ = await run(pipe, body("?"), __metadata__=dict(CHAT))
    assert replaced_text(result) is None and content_of(result) == "Plain."


async def test_grounding_from_user_valve_in_non_stream(pipe, fake):
    fake.script([g.text("x"), g.grounded([("https://e.com", "e.com")], ["q"], []), g.finish()])
    user = {"id": "u1", "role": "user", "valves": pipe.UserValves(GOOGLE_SEARCH_GROUNDING=True)}
    _, events = await run(pipe, body(stream=False), __user__=user)
    assert events.of("citation")[0]["document"] == ["e.com"]
    assert [s["queries"] for s in events.of("status") if s.get("action") == "web_search_queries_generated"] == [["q"]]


async def test_usage_is_reported_in_the_final_chunk(pipe, fake):
    meta = g.usage(prompt=11, candidates=4, thoughts=6, cached=2)
    fake.script([g.text("a"), g.finish(usage_metadata=meta)], [g.text("a"), g.finish(usage_metadata=meta)])
    result, _ = await run(pipe, body())
    expected = {
        "prompt_tokens": 11,
        "completion_tokens": 10,
        "total_tokens": 21,
        "completion_tokens_details": {"reasoning_tokens": 6},
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    # the OpenAI-shaped counts Open WebUI reads; the split and the timings come on top of them
    usage = result[-1]["usage"]
    assert {k: usage[k] for k in expected} == expected and all("usage" not in c for c in result[:-1])
    assert usage["cached_tokens"] == 2 and usage["thoughts_tokens"] == 6
    result, _ = await run(pipe, body(stream=False))
    assert {k: result["usage"][k] for k in expected} == expected


# --- errors and retries ----------------------------------------------------------------------


async def test_retries_honour_the_servers_retry_delay_with_a_status(pipe, fake):
    fake.script(g.error(429, retry_delay="0.05s"), g.error(503, retry_delay="0.01s"), g.reply("finally"))
    result, events = await run(pipe, body())
    assert content_of(result) == "finally"
    statuses = [s["description"] for s in events.of("status")]
    assert statuses[0].startswith("Gemini answered 429 RESOURCE_EXHAUSTED; retrying in 0.1 s (1 of 2)")
    assert statuses[1].startswith("Gemini answered 503 UNAVAILABLE; retrying in 0.0 s (2 of 2)")
    assert events.of("status")[-1]["done"] is True
    assert pipe.sleep == [0.05, 0.01]  # the waits Google asked for, not the backoff
    assert len(fake.generate_requests()) == 3


@pytest.mark.parametrize(("status", "tries"), [(408, 2), (502, 2), (504, 2), (501, 1), (505, 1), (409, 1)])
async def test_the_packs_retry_policy_decides_what_is_retried(pipe, fake, mod, status, tries):
    pipe.valves = pipe.valves.model_copy(update={"MAX_RETRIES": 1})
    fake.script(g.error(status, "nope"), g.reply("second try"))
    if tries == 2:
        result, _ = await run(pipe, body(stream=False))
        assert content_of(result) == "second try"
        assert len(pipe.sleep) == 1 and 0.5 <= pipe.sleep[0] <= 1.0  # no RetryInfo: the backoff
    else:
        with pytest.raises(mod.GeminiError):
            await run(pipe, body(stream=False))
        assert pipe.sleep == []
    assert len(fake.generate_requests()) == tries


async def test_retries_give_up_after_max_retries_with_a_clear_message(pipe, fake, mod):
    fake.script(*[g.error(500, retry_delay="0s")] * 3)
    with pytest.raises(mod.GeminiError, match=r"server error after 2 retries. Try again shortly.$"):
        await run(pipe, body(stream=False))
    fake.script(*[g.error(500, retry_delay="0s")] * 3)
    with pytest.raises(mod.GeminiError, match=r"after 2 retries. .*For administrators: 500 INTERNAL"):
        await run(pipe, body(stream=False), __user__={"id": "a1", "role": "admin"})
    assert len(fake.generate_requests()) == 6


@pytest.mark.parametrize("stream", [True, False])
async def test_a_failed_retry_closes_its_status(pipe, fake, mod, stream):
    pipe.valves = pipe.valves.model_copy(update={"MAX_RETRIES": 1})
    fake.script(g.error(503, "overloaded", retry_delay="0.01s"), g.error(503, "still overloaded", retry_delay="0.01s"))
    with pytest.raises(mod.GeminiError, match=r"server error after 1 retry"):
        await run(pipe, body(stream=stream))
    statuses = events_of_last_run().of("status")
    assert statuses[0]["done"] is False and "retrying" in statuses[0]["description"]
    assert statuses[-1] == {"description": "Gemini request failed after 1 retry", "done": True, "hidden": False}


async def test_client_errors_are_not_retried(pipe, fake, mod):
    fake.script(g.error(400, "Invalid JSON payload"))
    with pytest.raises(mod.GeminiError, match=r"rejected the request: Invalid JSON payload\.$"):
        await run(pipe, body())
    assert len(fake.generate_requests()) == 1
    with pytest.raises(mod.GeminiError, match="does not know this model"):
        await run(pipe, body(model="g.gemini-0-nope"))


async def test_long_server_delays_fail_at_once(pipe, fake, mod):
    fake.script(g.error(429, "quota", retry_delay="3600s"))
    with pytest.raises(mod.GeminiError, match="asks to wait 3600 s"):
        await run(pipe, body())


async def test_a_rejected_key_is_named_and_redacted(pipe, fake, mod):
    fake.api_key = "something-else"
    with pytest.raises(mod.GeminiError, match="rejected the API key") as info:
        await run(pipe, body())
    assert KEY not in str(info.value)


async def test_upstream_messages_echoing_the_key_are_redacted(pipe, fake, mod):
    fake.script(g.error(400, f"Bad key {KEY} for project"))
    with pytest.raises(mod.GeminiError, match=r"\[redacted\]"):
        await run(pipe, body())
    # a long message is shortened only after redaction: no half key at the cut
    for pad in range(930, 1000, 7):
        fake.script(g.error(400, "x" * pad + KEY))
        with pytest.raises(mod.GeminiError) as info:
            await run(pipe, body())
        assert KEY[:8] not in str(info.value)


async def test_invalid_user_valves_never_echo_the_key(pipe, fake, mod):
    user = {"id": "u1", "role": "user", "valves": {"GOOGLE_API_KEY": USER_KEY * 20, "INCLUDE_THOUGHTS": "maybe"}}
    result, _ = await run(pipe, body("hi"), __user__=user)  # falls back to the admin's settings
    assert content_of(result) == "Echo: hi"


async def test_safety_blocks_and_finish_reasons_are_readable(pipe, fake):
    fake.script([g.blocked("SAFETY")])
    result, _ = await run(pipe, body())
    assert "Gemini blocked the prompt: " in content_of(result) and finish_of(result) == "content_filter"
    ratings = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]
    fake.script([g.text("Step one"), g.finish("SAFETY", safetyRatings=ratings)])
    result, _ = await run(pipe, body(stream=False))
    assert content_of(result).startswith("Step one\n\n⚠️ Gemini stopped: Gemini's safety filters")
    assert "dangerous_content" in content_of(result) and finish_of(result) == "content_filter"
    fake.script([g.text("Long"), g.finish("MAX_TOKENS")])
    result, _ = await run(pipe, body())
    assert "reached its length limit" in content_of(result) and "MAX_TOKENS" not in content_of(result)
    assert finish_of(result) == "length"
    fake.script([g.finish("RECITATION")])
    result, _ = await run(pipe, body())
    assert content_of(result).startswith("⚠️ Gemini stopped: the reply resembled")
    fake.script([g.finish("STOP")])
    result, _ = await run(pipe, body())
    assert content_of(result) == "⚠️ Gemini returned an empty reply."


async def test_permissive_safety_is_sent_when_enabled(pipe, fake):
    await run(pipe, body())
    assert "safetySettings" not in sent(fake)
    pipe.valves = pipe.valves.model_copy(update={"USE_PERMISSIVE_SAFETY": True})
    await run(pipe, body())
    assert {s["threshold"] for s in sent(fake)["safetySettings"]} == {"BLOCK_NONE"}
    assert len(sent(fake)["safetySettings"]) == 4


QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details.\n"
    "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, "
    "limit: 10\n* Quota exceeded for metric: generativelanguage.googleapis.com/"
    "generate_content_free_tier_input_token_count, limit: 250000\r\n\tPlease retry in 5.2s.\n" + "More. " * 200
)


@pytest.mark.parametrize(
    "then", [g.error(500, "stream broke"), "drop", g.error(429, QUOTA_MESSAGE)], ids=["500", "drop", "quota"]
)
async def test_a_mid_stream_failure_keeps_the_text_and_notifies(pipe, fake, then, mod):
    fake.script(g.Stream([g.text("Part one, "), g.text("part two")], then=then))
    result, events = await run(pipe, body())
    text = content_of(result)
    assert text.startswith("Part one, part two\n\n⚠️ The reply was cut off: ")
    notice = text.split("\n\n", 1)[1]
    assert "\n" not in notice and "\r" not in notice and "\t" not in notice and "  " not in notice  # one line
    assert len(notice) <= mod.NOTICE_LIMIT + 40
    assert exception_names(text) == [] and "GOOGLE_" not in text
    if then == "drop":
        assert notice == "⚠️ The reply was cut off: the connection to Gemini dropped."
    (note,) = events.of("notification")
    assert note["type"] == "error" and note["content"].startswith("Gemini stopped mid-reply")
    assert exception_names(note["content"]) == [] and "For administrators" not in note["content"]
    assert finish_of(result) == "stop"
    # an admin's toast adds the detail (Google's quota message, the transport error); the reply does not
    fake.script(g.Stream([g.text("Part one, "), g.text("part two")], then=then))
    result, events = await run(pipe, body(), __user__={"id": "a1", "role": "admin"})
    assert content_of(result).split("\n\n", 1)[1] == notice
    (note,) = events.of("notification")
    assert "For administrators:" in note["content"] and "\n" not in note["content"]
    if isinstance(then, g.Error) and then.status == 429:
        assert "limit: 10 * Quota exceeded" in note["content"] and note["content"].endswith("…")


async def test_a_failure_before_the_first_chunk_raises(pipe, fake, mod):
    fake.script(g.Stream([], then=g.error(400, "early")))
    with pytest.raises(mod.GeminiError, match="rejected the request"):
        await run(pipe, body(stream=True))


async def test_request_timeout_is_named(pipe, fake, mod):
    # model_copy skips validation: a 1 s timeout (the valve's minimum is 5) keeps the test fast
    pipe.valves = pipe.valves.model_copy(update={"REQUEST_TIMEOUT": 1, "MAX_RETRIES": 0})
    fake.script(g.Stream([g.text("a"), g.text("b")], delay=1.5))  # the stream opens, then stalls
    result, _ = await run(pipe, body())
    assert content_of(result).startswith("a\n\n⚠️ The reply was cut off: Gemini did not answer within 1 s.")
    fake.script(g.Stream([g.text("x"), g.text("y")], delay=1.5))
    with pytest.raises(mod.GeminiError, match=r"did not answer within 1 s\.$"):
        await run(pipe, body(stream=False))
    fake.script(g.Stream([g.text("x"), g.text("y")], delay=1.5))
    with pytest.raises(mod.GeminiError, match=r"For administrators: TimeoutError; the limit is the REQUEST_TIMEOUT"):
        await run(pipe, body(stream=False), __user__={"id": "a1", "role": "admin"})


# --- tools -----------------------------------------------------------------------------------

COUNT_TOOL = {
    "type": "function",
    "function": {
        "name": "count_words",
        "description": "Count the words in a text.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}


async def test_tool_call_round_trip_keeps_ids_and_thought_signatures(pipe, fake):
    signature = b"\x00opaque-signature\xff" * 8
    fake.script(
        [
            g.thought("I should count."),
            g.function_call("count_words", {"text": "a b c"}, id="fc-1", signature=signature),
            g.function_call("count_words", {"text": "d"}, id="fc-2"),
            g.finish(),
        ]
    )
    request = body("count these", model="g.gemini-3-pro-preview", tools=[COUNT_TOOL])
    result, _ = await run(pipe, request)
    assert finish_of(result) == "tool_calls"
    calls = tool_calls_of(result)
    assert [c["index"] for c in calls] == [0, 1]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"text": "a b c"}, {"text": "d"}]
    decl = sent(fake)["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "count_words" and pick(decl, "parametersJsonSchema", "parameters_json_schema")
    # Open WebUI runs the tools and calls again with the results
    request["messages"] += [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{k: v for k, v in c.items() if k != "index"} for c in calls],
        },
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "3 words"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "1 words"},
    ]
    fake.script(g.reply("3 and 1"))
    result, _ = await run(pipe, request)
    assert content_of(result) == "3 and 1"
    contents = sent(fake)["contents"]
    model_turn, results = contents[1], contents[2]
    assert model_turn["role"] == "model" and results["role"] == "user"
    first, second = model_turn["parts"]
    assert first["functionCall"] == {"id": "fc-1", "name": "count_words", "args": {"text": "a b c"}}
    assert base64.urlsafe_b64decode(first["thoughtSignature"]) == signature
    assert "thoughtSignature" not in second and second["functionCall"]["id"] == "fc-2"
    assert [p["functionResponse"] for p in results["parts"]] == [
        {"id": "fc-1", "name": "count_words", "response": {"output": "3 words"}},
        {"id": "fc-2", "name": "count_words", "response": {"output": "1 words"}},
    ]


async def test_foreign_tool_calls_get_the_skip_signature_on_gemini_3(pipe, fake):
    messages = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "get time!", "arguments": "{bad json"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "noon"},
        {"role": "tool", "tool_call_id": "call_unknown", "content": "orphan"},
    ]  # fmt: skip
    tool = {"type": "function", "function": {"name": "get time!", "parameters": {"type": "object"}}}
    await run(pipe, {"model": "g.gemini-3-pro-preview", "messages": messages, "tools": [tool], "stream": True})
    model_turn = sent(fake)["contents"][1]["parts"][0]
    assert model_turn["functionCall"] == {"name": "get_time_", "args": {"arguments": "{bad json"}}
    assert model_turn["thoughtSignature"] == "skip_thought_signature_validator"
    assert sent(fake)["contents"][2]["parts"][1] == {"text": "Tool result: orphan"}
    # Gemini calls the sanitised name; Open WebUI gets its own name back
    fake.script([g.function_call("get_time_", {}), g.finish()])
    result, _ = await run(pipe, {"model": "g.gemini-3-pro-preview", "messages": messages[:1], "tools": [tool]})
    assert tool_calls_of(result)[0]["function"]["name"] == "get time!"


NATIVE = {"params": {"function_calling": "native"}}


@pytest.mark.parametrize(
    ("extra", "metadata", "offered"),
    [
        ({}, NATIVE, True),  # native tool calling, as every version writes it into the metadata
        ({}, {"params": {"function_calling": "default"}}, False),  # 0.6.43 / 0.8.12 prompt-based
        ({}, {"params": {"function_calling": "legacy"}}, False),  # 0.10+ prompt-based
        ({}, None, False),  # a direct call that does not ask for native tool calling
        ({"params": {"function_calling": "native"}}, None, True),  # ... or that does, in the request
        ({}, {"model": {"info": {"params": {"function_calling": "native"}}}}, True),  # ... or the model's settings
        ({"params": {"function_calling": "native"}}, {"params": {"function_calling": "default"}}, False),
        ({"tools": []}, NATIVE, False),  # an explicit empty list opts out
    ],
)
async def test_dunder_tools_are_offered_only_with_native_tool_calling(pipe, fake, extra, metadata, offered):
    dunder = {"count_words": {"spec": COUNT_TOOL["function"], "callable": None}}
    await run(pipe, body(**extra), __tools__=dunder, __metadata__=metadata)
    declared = [d["name"] for t in sent(fake).get("tools", []) for d in t.get("functionDeclarations", [])]
    assert declared == (["count_words"] if offered else [])


async def test_prompt_based_tool_calling_gets_one_plain_task_call(pipe, fake):
    """Before 0.10 the default: Open WebUI asks the model which tools to use (a task), runs them itself,
    and then calls the pipe again with their results in the chat and no tools."""
    dunder = {"count_words": {"spec": COUNT_TOOL["function"], "callable": None}}
    prompt_based = {"params": {"function_calling": "default"}, "task": "function_calling"}
    fake.script(g.reply('{"tool_calls": [{"name": "count_words", "parameters": {"text": "a b"}}]}'))
    result, events = await run(
        pipe, body("count a b", stream=False), __tools__=dunder, __metadata__=prompt_based, __task__="function_calling"
    )
    assert result == '{"tool_calls": [{"name": "count_words", "parameters": {"text": "a b"}}]}'
    assert "tools" not in sent(fake) and list(events) == []
    await run(pipe, body("count a b"), __tools__=dunder, __metadata__={"params": {"function_calling": "default"}})
    assert "tools" not in sent(fake)


async def test_grounding_keeps_function_tools_while_answering_tool_results(pipe, fake):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    call = {"id": "call_1", "type": "function", "function": {"name": "count_words", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "count"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "0"},
    ]
    await run(pipe, {"model": "g.gemini-2.5-flash", "messages": messages, "tools": [COUNT_TOOL]})
    assert [list(t) for t in sent(fake)["tools"]] == [["functionDeclarations"]]


@pytest.mark.skipif(not SDK_SEARCH_STEPS, reason="this google-genai has no include_server_side_tool_invocations")
async def test_gemini_3_grounds_and_calls_the_chats_tools_in_one_request(pipe, fake):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    fake.script(
        [
            g.server_search(["weather in lisbon"], id="s-1", signature=b"search-signature"),
            g.function_call("count_words", {"text": "sunny"}, id="fc-1", signature=b"call-signature"),
            g.finish(),
        ]
    )
    request = body("count the words of the weather report", model="g.gemini-3-pro-preview", tools=[COUNT_TOOL])
    result, events = await run(pipe, request, __metadata__=dict(CHAT))
    first = sent(fake)
    assert [list(t) for t in first["tools"]] == [["googleSearch"], ["functionDeclarations"]]
    assert first["toolConfig"] == {"includeServerSideToolInvocations": True}
    assert not [s for s in events.of("status") if "grounding is off" in s.get("description", "")]
    (call,) = tool_calls_of(result)
    assert content_of(result) == ""  # the search step is not shown as text
    # Open WebUI runs the tool and calls again: the search step goes back before the call
    request["messages"] += [
        {"role": "assistant", "content": "", "tool_calls": [{k: v for k, v in call.items() if k != "index"}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "1 words"},
    ]
    fake.script(g.reply("One word."))
    result, _ = await run(pipe, request, __metadata__=dict(CHAT))
    assert content_of(result) == "One word."
    second = sent(fake)
    assert [list(t) for t in second["tools"]] == [["googleSearch"], ["functionDeclarations"]]
    model_turn = second["contents"][1]["parts"]
    assert [next(k for k in p if k != "thoughtSignature") for p in model_turn] == [
        "toolCall",
        "toolResponse",
        "functionCall",
    ]
    assert model_turn[0]["toolCall"]["id"] == "s-1"
    assert base64.urlsafe_b64decode(model_turn[0]["thoughtSignature"]) == b"search-signature"
    assert base64.urlsafe_b64decode(model_turn[2]["thoughtSignature"]) == b"call-signature"


async def test_gemini_3_with_an_older_sdk_uses_the_chats_tools_and_says_grounding_is_off(pipe, fake, mod, monkeypatch):
    """google-genai before include_server_side_tool_invocations (the SDK of older Open WebUI installs)."""

    async def older_sdk() -> bool:
        return False

    monkeypatch.setattr(mod, "sdk_takes_server_side_tools", older_sdk)
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    result, events = await run(pipe, body("count", model="g.gemini-3-pro-preview", tools=[COUNT_TOOL]))
    assert content_of(result) == "Echo: count"
    request = sent(fake)
    assert [list(t) for t in request["tools"]] == [["functionDeclarations"]] and "toolConfig" not in request
    notes = [s["description"] for s in events.of("status") if "grounding" in s.get("description", "")]
    assert notes == ["Search grounding is off for this reply because tools are on"]
    # without the chat's tools Gemini 3 still searches
    await run(pipe, body("search", model="g.gemini-3-pro-preview"))
    assert sent(fake)["tools"] == [{"googleSearch": {}}]


async def test_earlier_models_use_the_chats_tools_and_say_grounding_is_off(pipe, fake):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    result, events = await run(pipe, body("count", tools=[COUNT_TOOL]))
    assert content_of(result) == "Echo: count"
    assert [list(t) for t in sent(fake)["tools"]] == [["functionDeclarations"]]
    notes = [s for s in events.of("status") if "grounding" in s.get("description", "")]
    assert notes == [
        {"description": "Search grounding is off for this reply because tools are on", "done": True, "hidden": False}
    ]
    # Open WebUI's builtin tools (added to every chat) leave grounding on, without a note
    builtin = {"get_current_timestamp": {"type": "builtin", "spec": {"name": "get_current_timestamp"}}}
    tools = [{"type": "function", "function": builtin["get_current_timestamp"]["spec"]}]
    _, events = await run(pipe, body("time?", tools=tools), __tools__=builtin)
    assert sent(fake)["tools"] == [{"googleSearch": {}}]
    assert not [s for s in events.of("status") if "grounding" in s.get("description", "")]
    # 0.8.12 lists them only in the metadata; `__tools__` holds the workspace tools alone
    _, events = await run(pipe, body("time?", tools=tools), __tools__={}, __metadata__={"tools": builtin})
    assert sent(fake)["tools"] == [{"googleSearch": {}}]
    assert not [s for s in events.of("status") if "grounding" in s.get("description", "")]
    # the fake refuses the mix like Google does, so sending both would have failed here
    assert g.tool_mix_error("gemini-2.5-flash", {"tools": [{"googleSearch": {}}, {"functionDeclarations": []}]})


async def test_a_text_file_open_webui_put_in_the_chat_is_not_sent_again(pipe, fake, tmp_path):
    store = {
        "f-txt": (b"plain notes", "text/plain", "notes.txt"),
        "f-pdf": (b"%PDF-1.7 tiny", "application/pdf", "report.pdf"),
    }
    pipe.host = FakeHost(tmp_path, store, owner="u1")
    files = [
        {"type": "file", "id": "f-txt", "name": "notes.txt", "file": {"meta": {"content_type": "text/plain"}}},
        {"type": "file", "id": "f-pdf", "name": "report.pdf", "file": {"meta": {"content_type": "application/pdf"}}},
    ]
    # Open WebUI 0.12.4 extracted both and lists them in the request's sources (its document context)
    sources = [
        {"source": {"id": fid, "type": "file"}, "document": ["..."], "metadata": [{"file_id": fid}]} for fid in store
    ]
    await run(pipe, body("summarise", stream=False), __files__=files, __metadata__={"sources": sources})
    mimes = [pick(_inline(p), "mimeType", "mime_type") for p in _parts(fake) if _inline(p)]
    assert mimes == ["application/pdf"]  # the text once (Open WebUI's context); the PDF natively
    assert b"plain notes" not in fake.generate_requests()[-1].body
    # without Open WebUI's context (file context off, or an API caller) the pipe sends the text itself
    await run(pipe, body("summarise", stream=False), __files__=files)
    mimes = [pick(_inline(p), "mimeType", "mime_type") for p in _parts(fake) if _inline(p)]
    assert mimes == ["text/plain", "application/pdf"]


async def test_open_webui_0_6_document_context_is_recognised_by_name(pipe, fake, tmp_path):
    """0.6.43 lists no sources in the metadata; its document context names each file, and
    `__files__` is None in a chat without files (0.6 to 0.10)."""
    store = {"f-txt": (b"plain notes", "text/plain", "notes.txt"), "f-md": (b"# other", "text/markdown", "other.md")}
    pipe.host = FakeHost(tmp_path, store, owner="u1")
    files = [
        {"type": "file", "id": fid, "name": name, "file": {"meta": {"content_type": mime}}}
        for fid, (_, mime, name) in store.items()
    ]
    context = '### Task:\nUse the context.\n<context>\n<source id="1" name="notes.txt">plain notes</source>\n</context>'
    request = {"model": "gemini_manifold.gemini-2.5-flash", "messages": [{"role": "user", "content": context}]}
    await run(pipe, request, __files__=files, __metadata__={"chat_id": "c1", "files": files})
    assert [pick(_inline(p), "mimeType", "mime_type") for p in _parts(fake) if _inline(p)] == ["text/plain"]
    # the file the context does not name is sent
    assert base64.b64encode(b"# other") in fake.generate_requests()[-1].body
    # 0.8 and later list the sources: an empty list means nothing is in the context, names aside
    await run(pipe, request, __files__=files, __metadata__={"sources": []})
    assert len([p for p in _parts(fake) if _inline(p)]) == 2
    result, _ = await run(pipe, body("no files", stream=False), __files__=None, __metadata__={"files": None})
    assert content_of(result) == "Echo: no files"


# --- what users read -------------------------------------------------------------------------

VALVE_NAMES = ("GOOGLE_API_KEY", "GOOGLE_API_BASE_URL", "REQUEST_TIMEOUT", "MODEL_ALLOWLIST", "MAX_RETRIES")
USER = {"id": "u1", "role": "user"}
ADMIN = {"id": "a1", "role": "admin"}


async def readable_messages(mod, fake, tmp_path, user: dict) -> list[str]:
    """Every message a reader meets on the failure paths: errors, cut-off notices, toasts, statuses."""
    seen: list[str] = []

    def make(**valves: Any) -> Any:
        p = mod.Pipe()
        p.valves = p.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=fake.url, MAX_RETRIES=1).model_copy(update=valves)
        p.sleep = Sleeps()
        return p

    async def attempt(p: Any, request: dict, **kwargs: Any) -> None:
        kwargs.setdefault("__user__", {**user, "valves": p.UserValves()})
        try:
            result, events = await run(p, request, **kwargs)
            seen.append(content_of(result))
        except mod.GeminiError as exc:
            seen.append(str(exc))
            events = events_of_last_run()
        finally:
            with fake._lock:
                fake._scripts.clear()  # what a failure left unused must not answer the next attempt
        seen.extend(str(e["data"].get("content") or e["data"].get("description") or "") for e in events)

    pipe = make()
    for status in (400, 401, 403, 404, 409, 429, 500, 503):
        for stream in (True, False):
            fake.script(*[g.error(status, f"upstream says no ({status})")] * 2)
            await attempt(pipe, body(stream=stream))
    fake.api_key = "another-key"
    await attempt(pipe, body())  # Google's answer to a bad key
    fake.api_key = KEY
    for then in ("drop", g.error(500, "broke"), g.error(429, QUOTA_MESSAGE)):
        fake.script(g.Stream([g.text("Part one")], then=then))
        await attempt(pipe, body())
    fake.script(g.Stream([], then=g.error(400, "early")))
    await attempt(pipe, body())
    fake.script(g.error(429, "quota", retry_delay="3600s"))
    await attempt(pipe, body())
    slow = make(MAX_RETRIES=0)
    slow.valves = slow.valves.model_copy(update={"REQUEST_TIMEOUT": 1})
    for stream in (True, False):
        fake.script(g.Stream([g.text("a"), g.text("b")], delay=1.5))
        await attempt(slow, body(stream=stream))
    await attempt(make(GOOGLE_API_BASE_URL="http://127.0.0.1:9"), body())  # nothing listens
    await attempt(make(GOOGLE_API_BASE_URL="ftp://proxy"), body())
    await attempt(make(GOOGLE_API_KEY=""), body())
    await attempt(pipe, body(model="gemini_manifold.error"))
    await attempt(pipe, body(model="g.gemini-0-nope"))
    await attempt(pipe, body(temperature="hot"))
    await attempt(pipe, {"model": "g.gemini-2.5-flash", "messages": [{"role": "system", "content": "x"}]})
    for stopped in ([g.blocked("SAFETY")], [g.text("Step"), g.finish("SAFETY")], [g.finish("MAX_TOKENS")]):
        fake.script(stopped)
        await attempt(pipe, body())
    # attachments that cannot be read: a broken data URI, a link nobody answers, a file gone from storage
    pipe.host = FakeHost(tmp_path, {"f-pdf": (b"%PDF-1.4", "application/pdf", "gone.pdf")}, owner=user["id"])
    await asyncio.to_thread(Path(pipe.host.records["f-pdf"].path).unlink)
    files = [{"type": "file", "id": "f-pdf", "name": "gone.pdf", "file": {"meta": {"content_type": "application/pdf"}}}]
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}},
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/cat.png"}},
    ]
    await attempt(pipe, body(content), __files__=files)
    fake.upload_error = g.error(400, "Upload refused")
    pipe.inline_budget = 1
    pipe.host = FakeHost(tmp_path, {"f-vid": (b"\0\0\0\x18ftypmp42" + b"v" * 50, "video/mp4", "clip.mp4")})
    pipe.host.records["f-vid"].user_id = user["id"]
    video = [{"type": "file", "id": "f-vid", "name": "clip.mp4", "file": {"meta": {"content_type": "video/mp4"}}}]
    await attempt(pipe, body("watch"), __files__=video)
    # the pipe's model list entries, which everyone reads
    seen += [e["name"] for e in await make(GOOGLE_API_KEY="").pipes()]
    seen += [e["name"] for e in await make(GOOGLE_API_BASE_URL="http://127.0.0.1:9").pipes()]
    seen += [e["name"] for e in await make(GOOGLE_API_BASE_URL="ftp://proxy").pipes()]
    return [m for m in seen if m]


async def test_users_read_plain_sentences_and_admins_get_the_detail(mod, fake, tmp_path, monkeypatch):
    monkeypatch.setenv("ENABLE_LOCAL_WEB_FETCH", "true")  # let the unanswered loopback link be tried
    (tmp_path / "user").mkdir()
    (tmp_path / "admin").mkdir()
    for_user = await readable_messages(mod, fake, tmp_path / "user", USER)
    for_admin = await readable_messages(mod, fake, tmp_path / "admin", ADMIN)
    assert len(for_user) > 50
    for message in for_user:
        assert exception_names(message) == [], message
        assert not [name for name in VALVE_NAMES if name in message], message
        assert "For administrators" not in message and KEY not in message
    text = "\n".join(for_admin)
    assert KEY not in text
    # the detail an admin needs is in their messages: the valve, Google's answer, the exception
    for needed in ("GOOGLE_API_KEY", "GOOGLE_API_BASE_URL", "REQUEST_TIMEOUT", "ClientConnectorError", "500 INTERNAL"):
        assert needed in text, needed


def test_every_valve_has_a_human_title(mod):
    for cls in (mod.Pipe.Valves, mod.Pipe.UserValves):
        for name, info in cls.model_fields.items():
            generated = name.replace("_", " ").title()
            assert info.title and info.title != generated, name
            assert cls.model_json_schema()["properties"][name]["title"] == info.title
            assert info.description, name


# --- tasks -----------------------------------------------------------------------------------


async def test_task_calls_are_one_cheap_plain_call(pipe, fake):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    fake.script([g.thought("hmm"), g.text('  {"title": "Chat about cats"}  '), g.finish()])
    request = body("Generate a title", stream=True, tools=[COUNT_TOOL])
    result, events = await run(pipe, request, __task__="title_generation", __files__=[{"type": "file", "id": "x"}])
    assert result == '{"title": "Chat about cats"}'
    assert list(events) == []
    req = fake.generate_requests()[-1]
    assert req.path.endswith(":generateContent") and "tools" not in req.json
    thinking = (req.json.get("generationConfig") or {}).get("thinkingConfig")
    assert thinking in ({"thinkingBudget": 0}, {"thinking_budget": 0})


@pytest.mark.parametrize(
    ("task", "prompt", "key"),
    [
        ("title_generation", "### Task:\nGenerate a concise, 3-5 word title", "title"),
        ("tags_generation", "### Task:\nGenerate 1-3 broad tags categorizing the main themes", "tags"),
        ("follow_up_generation", "### Task:\nPredict 3-5 useful messages this user might naturally send", "follow_ups"),
    ],
)
@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-3-pro-preview", "gemini-2.0-flash"])
async def test_each_model_answers_open_webuis_tasks_with_one_plain_call(pipe, fake, task, prompt, key, model):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    history = f"{prompt}\n<chat_history>\nUSER: hi\nASSISTANT: hello\n</chat_history>"
    result, events = await run(pipe, body(history, model=f"g.{model}", tools=[COUNT_TOOL]), __task__=task)
    assert key in json.loads(result) and list(events) == []
    (request,) = fake.generate_requests()  # one call: no retry, no tool loop, no upload
    assert request.path.endswith(":generateContent")
    assert "tools" not in request.json and "toolConfig" not in request.json
    thinking = (request.json.get("generationConfig") or {}).get("thinkingConfig") or {}
    assert "includeThoughts" not in thinking and "include_thoughts" not in thinking  # no thoughts


@pytest.mark.parametrize(("model", "budget"), [("gemini-flash-latest", 0), ("gemini-pro-latest", 128)])
async def test_task_calls_on_aliases_use_the_smallest_budget(pipe, fake, model, budget):
    fake.models += ALIASES
    await pipe.pipes()
    pipe.valves = pipe.valves.model_copy(update={"THINKING_LEVEL": "high", "THINKING_BUDGET": 4096})
    await run(pipe, body(model=f"g.{model}", reasoning_effort="high"), __task__="title_generation")
    assert config_of(fake)["thinkingConfig"] in ({"thinkingBudget": budget}, {"thinking_budget": budget})


async def test_task_calls_on_gemini_3_use_the_lowest_level(pipe, fake):
    await run(pipe, body(model="g.gemini-3-pro-preview"), __task__="tags_generation")
    thinking = config_of(fake)["thinkingConfig"]
    assert pick(thinking, "thinkingLevel", "thinking_level") == "LOW"


# --- robustness ------------------------------------------------------------------------------

_text = st.text(max_size=20)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, width=16) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _json}),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["image_url", "input_image"]),
            "image_url": st.one_of(
                _json,
                st.fixed_dictionaries(
                    {
                        "url": st.sampled_from(
                            ["data:image/png;base64,iVBORw0KGgo=", "data:,", "data:image/png;base64,%%", "x"]
                        )
                    }
                ),
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_audio", "file", "mystery"]), "input_audio": _json, "file": _json}
    ),
    _json,
)
_message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "other"]) | _text,
        "content": st.one_of(_text, st.lists(_part, max_size=3), _json),
    },
    optional={
        "tool_calls": st.one_of(
            _json,
            st.lists(
                st.fixed_dictionaries(
                    {"id": _text, "function": st.fixed_dictionaries({"name": _text, "arguments": _text | _json})}
                ),
                max_size=2,
            ),
        ),
        "tool_call_id": _text | _json,
    },
)
# Ids a client can send that are not Gemini model ids (the SDK refuses "?", "&" and ".." itself).
_odd_model = st.sampled_from(["g.gemini-2.5-flash?alt=json", "g.a&b", "g.../models", "g.gemini 2.5", "g.ü"]) | (
    _text.map(lambda t: "g." + t)
)
_body = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["g.gemini-2.5-flash", "g.gemini-3-pro-preview", "g.setup", "gemini-2.0-flash"])
        | _odd_model
        | _json,
        "messages": st.one_of(st.lists(_message, max_size=4), _json),
    },
    optional={
        "stream": st.booleans() | _json,
        "temperature": _json | st.floats(0, 2),
        "top_p": _json,
        "top_k": _json | st.integers(1, 50),
        "max_tokens": _json | st.integers(1, 100),
        "stop": _json | st.lists(_text, max_size=3),
        "seed": _json,
        "reasoning_effort": st.sampled_from(["low", "high", "bogus"]) | _json,
        "tools": st.one_of(
            _json, st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": _json}), max_size=2)
        ),
    },
)


# Bodies close to what Open WebUI sends (a known model, a user message last), so that many reach
# the fake server and come back, mixed with arbitrary JSON.
_known_model = st.sampled_from(["g.gemini-2.5-flash", "g.gemini-3-pro-preview", "gemini-2.0-flash"])
_plausible_body = st.fixed_dictionaries(
    {
        "model": st.one_of(_known_model, _known_model, _known_model, _odd_model),
        "messages": st.lists(_message, max_size=3).map(lambda ms: [*ms, {"role": "user", "content": "hi"}]),
        "stream": st.booleans(),
    },
    optional={
        "temperature": st.floats(0, 2),
        "top_k": st.integers(1, 50),
        "stop": st.lists(_text, max_size=3),
        "reasoning_effort": st.sampled_from(["low", "high", "none"]),
        "tools": st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": _json}), max_size=2),
    },
)


def test_hypothesis_generated_bodies_never_crash(mod):
    """>= 1,000 generated bodies: pipe() answers or raises a clear GeminiError, never an internal one."""
    with g.FakeGemini(api_key=KEY) as server:
        p = mod.Pipe()
        p.valves = p.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=server.url, MAX_RETRIES=0)
        loop = asyncio.new_event_loop()
        counts = {"ok": 0, "error": 0}
        kinds: dict[str, int] = {}

        async def one(request: Any, files: Any) -> None:
            try:
                result = await p.pipe(request, __event_emitter__=Events(), __files__=files, __user__={"id": "u"})
                if isinstance(result, AsyncIterator):
                    result = [item async for item in result]
                OUTPUTS.append(result)
                counts["ok"] += 1
            except mod.GeminiError as exc:
                OUTPUTS.append(str(exc))
                # pipe() wraps anything unexpected (TypeError, KeyError...) as "Gemini request failed
                # (<type>: ...)": that is an internal bug, not a clear error for a bad body.
                assert "failed unexpectedly" not in str(exc), str(exc)
                counts["error"] += 1
                kinds[str(exc)[:40]] = kinds.get(str(exc)[:40], 0) + 1

        @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(
            request=st.one_of(_plausible_body, _plausible_body, _body, _json),
            files=st.none() | st.lists(_json, max_size=2),
        )
        def check(request: Any, files: Any) -> None:
            loop.run_until_complete(one(request, files))

        try:
            check()
        finally:
            loop.close()
        assert counts["ok"] + counts["error"] >= 1000
        assert counts["ok"] > 50 and counts["error"] > 50, (counts, kinds)
