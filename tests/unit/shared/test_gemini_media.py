"""Gemini media and built-in tools (shared/gemini_media.py and its wiring), through the built plugin,
the real google-genai SDK and the fake Gemini server: images made, stored once and sent back for
edits; code execution as Open WebUI's code-interpreter block; URL context and Google Maps sources;
YouTube links as video parts; settings a model cannot use left out with a status line."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from shared.gemini_media import (
    add_youtube_videos,
    code_block,
    file_ids_in,
    generated_image_ids,
    youtube_uri,
)
from tests.fakes import gemini as g
from tests.helpers import exception_names, load_built
from tests.unit.plugins.test_gemini_manifold import KEY, PNG, Sleeps, content_of, run

IMAGE_MODEL = "gemini_manifold.gemini-2.5-flash-image"
PRO_IMAGE = "gemini_manifold.gemini-3-pro-image-preview"
FLASH = "gemini_manifold.gemini-2.5-flash"
PRO3 = "gemini_manifold.gemini-3-pro-preview"
USER = {"id": "u1", "role": "user", "name": "Uma", "email": "uma@example.org"}
META = {"chat_id": "chat-1", "message_id": "msg-2"}
LINK = re.compile(r"!\[Image (\d+)\]\(/api/v1/files/([0-9a-f-]+)/content\)")


class FileStore:
    """Open WebUI's file store as the pipe uses it: reads (file_record, local_file_path) and writes
    (store_file), kept in a folder; `fail` makes the next writes raise."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records: dict[str, Any] = {}
        self.data: dict[str, bytes] = {}
        self.stored: list[dict[str, Any]] = []
        self.fail = False

    def add(self, file_id: str, data: bytes, mime: str = "image/png", owner: str = "u1") -> str:
        path = self.root / file_id
        path.write_bytes(data)
        self.data[file_id] = data
        self.records[file_id] = SimpleNamespace(
            user_id=owner, path=str(path), filename=file_id, meta={"content_type": mime}
        )
        return file_id

    async def file_record(self, file_id: str) -> Any:
        return self.records.get(file_id)

    async def local_file_path(self, stored_path: str) -> str:
        return stored_path

    async def store_file(self, data: bytes, mime: str, name: str, user: dict, *, chat_id=None, message_id=None) -> str:
        if self.fail:
            raise RuntimeError("disk full")
        file_id = f"0000000{len(self.stored)}-aaaa-bbbb-cccc-dddddddddddd"
        self.add(file_id, data, mime, user.get("id", ""))
        self.stored.append(
            {"id": file_id, "mime": mime, "name": name, "user": user.get("id"), "chat": chat_id, "message": message_id}
        )
        return file_id


@pytest.fixture(scope="module")
def mod():
    return load_built("gemini_manifold")


@pytest.fixture
def fake():
    with g.FakeGemini(api_key=KEY, models=g.DEFAULT_MODELS + g.IMAGE_MODELS) as server:
        yield server


@pytest.fixture
def files(tmp_path):
    return FileStore(tmp_path)


@pytest.fixture
def pipe(mod, fake, files):
    p = mod.Pipe()
    p.valves = p.Valves(GOOGLE_API_KEY=KEY, GOOGLE_API_BASE_URL=fake.url, MAX_RETRIES=0)
    p.sleep = Sleeps()
    p.host = files
    return p


def chat(text: str, model: str = FLASH, *, stream: bool = True, history: list | None = None) -> dict:
    return {"model": model, "messages": [*(history or []), {"role": "user", "content": text}], "stream": stream}


async def ask(pipe, body: dict, metadata: dict | None = None, **valves: Any) -> tuple[Any, Any]:
    user = dict(USER, valves=pipe.UserValves(**valves))
    return await run(pipe, body, __user__=user, __metadata__={**META, **(metadata or {})})


def statuses(events) -> list[str]:
    return [e["description"] for e in events.of("status")]


def config_of(fake) -> dict:
    return fake.last_generate().get("generationConfig") or {}


def tools_of(fake) -> list[str]:
    return [name for tool in fake.last_generate().get("tools") or [] for name in tool]


# --- pure helpers --------------------------------------------------------------------------------


def test_youtube_links_of_every_form_name_one_video():
    for link in (
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42",
        "https://youtu.be/dQw4w9WgXcQ?si=x",
        "https://m.youtube.com/shorts/dQw4w9WgXcQ",
        "https://youtube.com/embed/dQw4w9WgXcQ",
    ):
        assert youtube_uri(link) == "https://www.youtube.com/watch?v=dQw4w9WgXcQ", link
    assert youtube_uri("https://www.youtube.com/@channel") is None
    assert youtube_uri("https://www.youtube.com/watch?v=short") is None


def test_youtube_videos_are_capped_newest_first_and_the_text_stays():
    contents = [{"role": "user", "parts": [{"text": f"https://youtu.be/{'a' * 10}{i} and"}]} for i in range(3)] + [
        {"role": "user", "parts": [{"text": "again https://youtu.be/aaaaaaaaaa2"}]}
    ]
    warnings = add_youtube_videos(contents, limit=2)
    videos = [p["file_data"]["file_uri"][-1] for c in contents for p in c["parts"] if "file_data" in p]
    assert videos == ["1", "2"]  # the newest message's video once, then the one before; the oldest left out
    assert contents[-1]["parts"][-1] == {"text": "again https://youtu.be/aaaaaaaaaa2"}
    assert warnings and "2 videos at most" in warnings[0]


def test_generated_images_are_found_newest_first_and_capped():
    history = [
        {"role": "assistant", "content": "![Image 1](/api/v1/files/a1/content) ![Image 2](/api/v1/files/a2/content)"},
        {"role": "user", "content": "![not a reply](/api/v1/files/u1/content)"},
        {"role": "assistant", "content": "done ![Image 1](http://owui.local:8080/api/v1/files/b1/content)"},
    ]
    assert generated_image_ids(history, 10) == ["b1", "a2", "a1"]
    assert generated_image_ids(history, 2) == ["b1", "a2"]
    assert generated_image_ids(history, 0) == []
    assert file_ids_in("[link](/api/v1/files/x/content)") == []  # a plain link is not an image


def test_the_code_block_is_open_webuis_code_interpreter_form():
    block = code_block('print("<hi>")\n```', "PYTHON", "<hi>\n", failed=False)
    assert block.startswith('<details type="code_interpreter" done="true" output="')
    output = re.search(r'output="([^"]*)"', block).group(1)
    assert json.loads(html.unescape(output)) == {"stdout": "<hi>\n"}
    assert '<summary>Analyzed</summary>\n````python\nprint("<hi>")\n```\n````\n</details>\n' in block
    failed = code_block("1/0", "PYTHON", "ZeroDivisionError", failed=True)
    assert json.loads(html.unescape(re.search(r'output="([^"]*)"', failed).group(1))) == {"stderr": "ZeroDivisionError"}


# --- images --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_an_image_reply_is_stored_once_and_shown_once(pipe, fake, files, stream):
    picture = PNG + b"\0" * 1000
    fake.script([g.text("Here is your cat."), g.image(picture), g.finish()])
    result, _ = await ask(pipe, chat("draw a cat", IMAGE_MODEL, stream=stream), IMAGE_ASPECT_RATIO="16:9")
    config = config_of(fake)
    assert config["responseModalities"] == ["TEXT", "IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9"}
    assert "thinkingConfig" not in config  # an image model takes no thinking configuration
    text = content_of(result)
    links = LINK.findall(text)
    assert len(links) == 1 and text.startswith("Here is your cat.")
    assert files.stored == [
        {
            "id": links[0][1],
            "mime": "image/png",
            "name": "gemini-image.png",
            "user": "u1",
            "chat": "chat-1",
            "message": "msg-2",
        }
    ]
    assert files.data[links[0][1]] == picture
    assert "empty reply" not in text


async def test_an_image_only_reply_is_not_called_empty_and_drafts_are_not_shown(pipe, fake, files):
    fake.script([g.image(b"draft", thought=True), g.image(PNG), g.finish()])
    result, _ = await ask(pipe, chat("draw", PRO_IMAGE))
    assert len(LINK.findall(content_of(result))) == 1 and len(files.stored) == 1
    assert "empty" not in content_of(result)


async def test_an_image_that_cannot_be_stored_is_said_plainly(pipe, fake, files):
    files.fail = True
    fake.script([g.text("Done."), g.image(PNG), g.finish()])
    result, _ = await ask(pipe, chat("draw", IMAGE_MODEL))
    text = content_of(result)
    assert "Image 1 could not be saved in Open WebUI" in text and "disk full" not in text
    assert not exception_names(text)


async def test_editing_sends_the_chats_earlier_images_newest_first_capped(pipe, fake, files):
    old, new, foreign = files.add("old-1", b"old"), files.add("new-2", b"new"), files.add("x-3", b"x", owner="u2")
    history = [
        {"role": "user", "content": "draw a cat"},
        {"role": "assistant", "content": f"A cat. ![Image 1](/api/v1/files/{old}/content)"},
        {"role": "user", "content": "a hat"},
        {
            "role": "assistant",
            "content": f"![Image 1](/api/v1/files/{foreign}/content) ![Image 2](/api/v1/files/{new}/content)",
        },
    ]
    pipe.valves = pipe.valves.model_copy(update={"IMAGE_HISTORY_LIMIT": 3})
    await ask(pipe, chat("make the hat red", IMAGE_MODEL, history=history))
    contents = fake.last_generate()["contents"]
    last = contents[-1]["parts"]
    assert last[0]["text"].startswith("Images made earlier in this chat, newest first")
    import base64

    sent = [base64.b64decode(p["inlineData"]["data"]) for p in last if "inlineData" in p]
    assert sent == [b"new", b"old"]  # another user's file is never read
    assert last[-1] == {"text": "make the hat red"}
    model_texts = [p["text"] for c in contents if c["role"] == "model" for p in c["parts"] if "text" in p]
    assert "/api/v1/files/" not in json.dumps(model_texts) and "A cat. [image]" in model_texts
    pipe.valves = pipe.valves.model_copy(update={"IMAGE_HISTORY_LIMIT": 1})
    await ask(pipe, chat("again", IMAGE_MODEL, history=history))
    assert len([p for p in fake.last_generate()["contents"][-1]["parts"] if "inlineData" in p]) == 1


async def test_a_text_model_gets_no_image_settings_nor_earlier_images(pipe, fake, files):
    files.add("old-1", b"old")
    history = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "![Image 1](/api/v1/files/old-1/content)"},
    ]
    await ask(pipe, chat("describe", FLASH, history=history), IMAGE_ASPECT_RATIO="1:1")
    config = config_of(fake)
    assert "responseModalities" not in config and "imageConfig" not in config
    assert not [p for c in fake.last_generate()["contents"] for p in c["parts"] if "inlineData" in p]


async def test_image_size_goes_to_gemini_3_pro_image_and_is_ignored_with_a_note_elsewhere(pipe, fake):
    _, events = await ask(pipe, chat("draw", PRO_IMAGE), IMAGE_SIZE="2K")
    assert config_of(fake)["imageConfig"] == {"imageSize": "2K"}
    assert not [s for s in statuses(events) if "image size" in s]
    _, events = await ask(pipe, chat("draw", IMAGE_MODEL), IMAGE_SIZE="2K")
    assert "imageConfig" not in config_of(fake)
    assert "The image size setting is ignored: this model makes images of one size" in statuses(events)


async def test_image_models_are_listed_with_a_clear_name(pipe, fake):
    entries = {e["id"]: e["name"] for e in await pipe.pipes()}
    assert entries["gemini-2.5-flash-image"] == "Nano Banana (gemini-2.5-flash-image, makes images)"
    assert entries["gemini-3-pro-image-preview"] == "Gemini 3 Pro Image Preview (makes images)"
    assert entries["gemini-2.5-flash"] == "Gemini 2.5 Flash"


# --- code execution ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_code_execution_renders_open_webuis_code_block(pipe, fake, stream):
    fake.script(
        [
            g.text("Let me compute. "),
            g.executable_code("print(2 ** 10)"),
            g.code_result("1024\n"),
            g.text("It is 1024."),
            g.finish(),
        ]
    )
    result, _ = await ask(pipe, chat("2^10?", stream=stream), CODE_EXECUTION="on")
    assert tools_of(fake) == ["codeExecution"]
    text = content_of(result)
    assert text.startswith('Let me compute. <details type="code_interpreter" done="true" output="')
    assert "```python\nprint(2 ** 10)\n```\n</details>\nIt is 1024." in text
    output = re.search(r'output="([^"]*)"', text).group(1)
    assert json.loads(html.unescape(output)) == {"stdout": "1024\n"}


async def test_code_without_a_run_still_shows(pipe, fake):
    fake.script([g.executable_code("x = 1"), g.finish()])
    result, _ = await ask(pipe, chat("x"), CODE_EXECUTION="on")
    assert '<details type="code_interpreter" done="true">' in content_of(result)
    assert "```python\nx = 1\n```" in content_of(result)


async def test_code_execution_follows_the_admin_unless_the_user_chose(pipe, fake):
    await ask(pipe, chat("x"))
    assert tools_of(fake) == []
    pipe.valves = pipe.valves.model_copy(update={"CODE_EXECUTION": True})
    await ask(pipe, chat("x"))
    assert tools_of(fake) == ["codeExecution"]
    await ask(pipe, chat("x"), CODE_EXECUTION="off")
    assert tools_of(fake) == []


async def test_settings_a_model_cannot_use_are_left_out_with_one_status_line(pipe, fake):
    pipe.valves = pipe.valves.model_copy(update={"GOOGLE_SEARCH_GROUNDING": True})
    result, events = await ask(pipe, chat("draw", IMAGE_MODEL), CODE_EXECUTION="on", URL_CONTEXT="on")
    assert tools_of(fake) == [] and "Echo" in content_of(result)
    said = statuses(events)
    assert "Code execution is off for this reply: this model cannot run code" in said
    assert "URL context is off for this reply: this model cannot read web pages" in said
    assert "Search grounding is off for this reply: this model cannot search" in said


TOOL = {"type": "function", "function": {"name": "lookup", "description": "d", "parameters": {"type": "object"}}}


async def test_built_in_tools_next_to_the_chats_tools(pipe, fake):
    body = dict(chat("x"), tools=[TOOL])
    _, events = await ask(pipe, body, CODE_EXECUTION="on")
    assert tools_of(fake) == ["functionDeclarations"]  # Gemini 2.5 takes one or the other
    assert "Code execution is off for this reply because tools are on" in statuses(events)
    await ask(pipe, dict(chat("x", PRO3), tools=[TOOL]), CODE_EXECUTION="on")
    sent = fake.last_generate()
    assert set(tools_of(fake)) == {"functionDeclarations", "codeExecution"}
    assert sent["toolConfig"]["includeServerSideToolInvocations"] is True


async def test_open_webuis_builtin_tools_alone_give_way_to_built_in_tools(pipe, fake):
    # Open WebUI 0.8+ adds its builtin tools (time, ask_user...) to every chat with native tool calling
    builtin = {"tools": {"lookup": {"type": "builtin"}}}
    _, events = await ask(pipe, dict(chat("x"), tools=[TOOL]), builtin, URL_CONTEXT="on")
    assert tools_of(fake) == ["urlContext"] and not [s for s in statuses(events) if "off" in s]


# --- URL context and Google Maps -----------------------------------------------------------------


async def test_url_context_pages_become_sources_with_their_status(pipe, fake):
    fake.script(
        [
            g.text("The page says hello."),
            g.url_context(
                [
                    ("https://example.org/a", "URL_RETRIEVAL_STATUS_SUCCESS"),
                    ("https://news.example/b", "URL_RETRIEVAL_STATUS_PAYWALL"),
                ]
            ),
            g.finish(),
        ]
    )
    result, events = await ask(
        pipe, chat("summarise https://example.org/a and https://news.example/b"), URL_CONTEXT="on"
    )
    assert tools_of(fake) == ["urlContext"]
    names = [c["source"]["name"] for c in events.of("citation")]
    assert names == ["example.org", "news.example (not read: it is behind a paywall)"]
    assert "Read {{count}} web pages" in statuses(events)
    assert content_of(result) == "The page says hello."


async def test_maps_places_become_sources_with_citation_marks(pipe, fake):
    answer = "Try Café Luso. It has fado."
    fake.script(
        [
            g.text(answer),
            g.maps_grounded(
                [("https://maps.google.com/?cid=1", "Café Luso", "Fado house in Bairro Alto")],
                [("Try Café Luso.", [0])],
                answer=answer,
            ),
            g.finish(),
        ]
    )
    result, events = await ask(pipe, chat("fado in lisbon?", stream=False), GOOGLE_MAPS_GROUNDING="on")
    assert tools_of(fake) == ["googleMaps"]
    citation = events.of("citation")[0]
    assert citation["source"]["name"] == "Café Luso (maps.google.com)"
    assert citation["document"] == [
        "Fado house in Bairro Alto",
        "Try Café Luso.",
    ]  # the place, then the answer it backs
    assert content_of(result).startswith("Try Café Luso.[1]")
    assert "Used {{count}} places from Google Maps" in statuses(events)


# --- YouTube -------------------------------------------------------------------------------------


async def test_a_youtube_link_is_sent_as_a_video_and_the_text_stays(pipe, fake):
    text = "What happens in https://youtu.be/dQw4w9WgXcQ ?"
    await ask(pipe, chat(text))
    parts = fake.last_generate()["contents"][-1]["parts"]
    video = parts[0]["fileData"]
    assert (video.get("fileUri") or video.get("file_uri")) == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    assert parts[1:] == [{"text": text}] and "mimeType" not in video  # Google reads a YouTube URI without one
    pipe.valves = pipe.valves.model_copy(update={"YOUTUBE_AS_VIDEO": False})
    await ask(pipe, chat(text))
    assert fake.last_generate()["contents"][-1]["parts"] == [{"text": text}]


def test_media_valves_exist_with_user_switches(mod):
    valves, user = mod.Pipe.Valves(), mod.Pipe.UserValves()
    assert (valves.IMAGE_ASPECT_RATIO, valves.IMAGE_SIZE, valves.IMAGE_HISTORY_LIMIT) == ("default", "default", 3)
    assert (valves.CODE_EXECUTION, valves.URL_CONTEXT, valves.GOOGLE_MAPS_GROUNDING, valves.YOUTUBE_AS_VIDEO) == (
        False, False, False, True,
    )  # fmt: skip
    schema = mod.Pipe.UserValves.model_json_schema()["properties"]
    for name in ("CODE_EXECUTION", "URL_CONTEXT", "GOOGLE_MAPS_GROUNDING"):
        assert schema[name]["enum"] == ["default", "on", "off"] and getattr(user, name) == "default"
        assert getattr(mod.Pipe.UserValves(**{name: True}), name) == "on"
    assert "16:9" in schema["IMAGE_ASPECT_RATIO"]["enum"] and schema["IMAGE_SIZE"]["enum"] == [
        "default",
        "1K",
        "2K",
        "4K",
    ]
