"""Gemini media in a real Open WebUI (0.6.43 to 0.12.4), against the fake Gemini server: images made
and stored as Open WebUI files (served back, kept in the saved chat once), edits that send the
earlier image back, code execution as the code-interpreter block, URL-context sources, YouTube
links as video parts, and image models in the model list."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any

import pytest

from tests.fakes import gemini as g
from tests.host.test_gemini_manifold import KEY, PIPE, PNG, TOOL, _parts

IMAGE = f"{PIPE}.gemini-2.5-flash-image"
FLASH = f"{PIPE}.gemini-2.5-flash"
LINK = re.compile(r"!\[Image (\d+)\]\(/api/v1/files/([0-9a-f-]+)/content\)")
PICTURE = PNG + b"host-image" * 100


def route(request: dict) -> Any:
    """The fake's answer, chosen from the request like a model would."""
    text = g.last_user_text(request)
    parts = _parts(request)
    config = request.get("generationConfig") or {}
    tools = [name for tool in request.get("tools") or [] for name in tool]
    if "IMAGE" in (config.get("responseModalities") or []) and "title" not in text.lower():
        inputs = [p["inlineData"] for p in parts if "inlineData" in p]
        said = f"Edited {len(inputs)} images." if inputs else "A new image."
        return [
            g.text(said),
            g.image(PICTURE if not inputs else base64.b64decode(inputs[0]["data"]) + b"!"),
            g.finish(),
        ]
    if "codeExecution" in tools:
        return [g.executable_code("print(6 * 7)"), g.code_result("42\n"), g.text("The answer is 42."), g.finish()]
    if "urlContext" in tools:
        return [
            g.text("The page is about fado."),
            g.url_context(
                [
                    ("https://example.org/fado", "URL_RETRIEVAL_STATUS_SUCCESS"),
                    ("https://x.example/", "URL_RETRIEVAL_STATUS_ERROR"),
                ]
            ),
            g.finish(),
        ]
    videos = [p["fileData"] for p in parts if "fileData" in p]
    if videos:
        video = videos[0]
        return g.reply(f"I watched {video.get('fileUri') or video.get('file_uri')}.")
    return g.task_reply(request) or g.reply(f"Echo: {text}")


@pytest.fixture(scope="module")
def gemini(owui):
    with g.FakeGemini(api_key=KEY, models=g.DEFAULT_MODELS + g.IMAGE_MODELS) as fake:
        fake.default = route
        owui.deploy(
            PIPE,
            TOOL,
            valves={
                PIPE: {"GOOGLE_API_KEY": KEY, "GOOGLE_API_BASE_URL": fake.url, "MAX_RETRIES": 0, "MODEL_CACHE_TTL": 0}
            },
        )
        yield fake


def set_valves(owui, **valves):
    current = owui.ok("GET", f"/api/v1/functions/id/{PIPE}/valves")
    owui.ok("POST", f"/api/v1/functions/id/{PIPE}/valves/update", json={**current, **valves})


def test_image_models_are_listed_with_a_clear_name(owui, gemini):
    models = {m["id"]: m for m in owui.models()}
    assert models[IMAGE]["name"] == "Nano Banana (gemini-2.5-flash-image, makes images)"


@pytest.mark.parametrize("stream", [False, True])
def test_an_image_is_an_open_webui_file_shown_once(owui, gemini, stream):
    owui.grant_model(IMAGE)
    text = owui.text_of(owui.chat(IMAGE, "draw a cat", stream=stream, token=owui.user))
    links = LINK.findall(text)
    assert text.startswith("A new image.") and len(links) == 1
    served = owui.api("GET", f"/api/v1/files/{links[0][1]}/content", token=owui.user)
    assert served.status_code == 200 and served.content == PICTURE
    assert owui.api("GET", f"/api/v1/files/{links[0][1]}/content", token=owui.admin).status_code in (200, 404)
    sent = gemini.generate_requests()[-1].json
    assert sent["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    assert "thinkingConfig" not in sent["generationConfig"]


def test_a_saved_chat_keeps_the_image_once_after_a_reload(owui, gemini, socket):
    """A UI chat: the reply is saved with the chat; read back (a reload), the image shows once."""
    user_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
    user_message = {"id": user_id, "parentId": None, "childrenIds": [message_id], "role": "user",
                    "content": "draw a cat", "timestamp": 1}  # fmt: skip
    assistant = {"id": message_id, "parentId": user_id, "childrenIds": [], "role": "assistant", "content": "",
                 "model": IMAGE, "modelName": IMAGE, "timestamp": 2}  # fmt: skip
    chat = owui.ok("POST", "/api/v1/chats/new", json={"chat": {
        "title": "cats", "models": [IMAGE],
        "history": {"currentId": message_id, "messages": {user_id: user_message, message_id: assistant}},
        "messages": [user_message, assistant],
    }})  # fmt: skip
    response = owui.api("POST", "/api/chat/completions", json={
        "model": IMAGE, "messages": [{"role": "user", "content": "draw a cat"}], "stream": True,
        "session_id": socket.sid, "chat_id": chat["id"], "id": message_id, "parent_id": user_id,
        "user_message": user_message, "parent_message": user_message,  # 0.6.43 requires parent_message
    })  # fmt: skip
    assert response.status_code == 200, response.text
    socket.wait_done(60, message_id=message_id)
    content = ""
    for _ in range(100):  # the reply is written to the chat as the stream ends: poll it
        saved = owui.ok("GET", f"/api/v1/chats/{chat['id']}")
        messages = saved["chat"].get("history", {}).get("messages", {})
        stored = messages.get(message_id) or {}
        # 0.10 stores the reply as `output` items and leaves `content` empty; the page renders those
        content = stored.get("content") or "".join(
            part.get("text", "")
            for item in stored.get("output") or []
            if item.get("type") == "message"
            for part in item.get("content") or []
        )
        if content:
            break
        time.sleep(0.1)
    links = LINK.findall(content)
    assert len(links) == 1, (content, json.dumps(stored)[:3000])
    assert owui.api("GET", f"/api/v1/files/{links[0][1]}/content").content == PICTURE


def test_an_edit_sends_the_earlier_image_back(owui, gemini):
    first = owui.text_of(owui.chat(IMAGE, "draw a cat"))
    history = [
        {"role": "user", "content": "draw a cat"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "give it a hat"},
    ]
    second = owui.text_of(owui.chat(IMAGE, history))
    assert second.startswith("Edited 1 images.")
    sent = gemini.generate_requests()[-1].json
    inputs = [base64.b64decode(p["inlineData"]["data"]) for p in _parts(sent) if "inlineData" in p]
    assert inputs == [PICTURE]
    file_id = LINK.findall(second)[0][1]
    assert owui.api("GET", f"/api/v1/files/{file_id}/content").content == PICTURE + b"!"


def test_code_execution_shows_the_code_interpreter_block(owui, gemini):
    set_valves(owui, CODE_EXECUTION=True)
    try:
        text = owui.text_of(owui.chat(FLASH, "what is six times seven?"))
    finally:
        set_valves(owui, CODE_EXECUTION=False)
    assert text.startswith('<details type="code_interpreter" done="true" output="')
    assert "```python\nprint(6 * 7)\n```\n</details>\nThe answer is 42." in text
    assert gemini.generate_requests()[-1].json["tools"] == [{"codeExecution": {}}]


def test_url_context_pages_are_sources(owui, gemini, socket):
    set_valves(owui, URL_CONTEXT=True)
    try:
        text = owui.text_of(owui.chat(FLASH, "read https://example.org/fado", session_id=socket.sid))

        socket.wait_for("citation", count=2)
    finally:
        set_valves(owui, URL_CONTEXT=False)
    assert text == "The page is about fado."
    names = [c["source"]["name"] for c in socket.of_type("citation")]
    assert names == ["example.org", "x.example (not read: it could not be retrieved)"]


def test_a_youtube_link_is_watched(owui, gemini):
    text = owui.text_of(owui.chat(FLASH, "summarise https://youtu.be/dQw4w9WgXcQ please"))
    assert text == "I watched https://www.youtube.com/watch?v=dQw4w9WgXcQ."
    parts = _parts(gemini.generate_requests()[-1].json)
    assert parts[-1]["text"] == "summarise https://youtu.be/dQw4w9WgXcQ please"


def test_a_setting_the_model_cannot_use_is_a_status_line(owui, gemini, socket):
    set_valves(owui, CODE_EXECUTION=True)
    try:
        text = owui.text_of(owui.chat(IMAGE, "draw", session_id=socket.sid))
        note = socket.wait_for("status", where=lambda d: "Code execution is off" in d.get("description", ""))
    finally:
        set_valves(owui, CODE_EXECUTION=False)
    assert note["description"] == "Code execution is off for this reply: this model cannot run code"
    assert LINK.findall(text) and "codeExecution" not in str(gemini.generate_requests()[-1].json.get("tools"))
