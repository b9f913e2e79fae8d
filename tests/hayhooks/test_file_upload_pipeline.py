"""file_upload_pipeline: per-file progress, a summary and a grounded answer.

Through Open WebUI 0.12.4 no `files` key reaches an OpenAI connection: an attached file arrives as
the RAG text inside the user message (`<context><source name=...>`). Straight to Hayhooks, a client
may send the `files` list (`{filename, content (base64), size, type}`), as examples/hayhooks_client.py
does.
"""

from __future__ import annotations

import base64
import time
import uuid

import pytest

from tests.hayhooks._hayhooks import PACK_MODEL, stream_chat, text_and_events, ui_turn
from tests.helpers import exception_names

MODEL = "file_upload_pipeline"
ANSWER = "The notes say fake servers answer on 127.0.0.1."
NOTE = "Fake servers answer on 127.0.0.1."
CONTEXT = f'<context>\n<source id="1" name="notes.txt">{NOTE}</source>\n</context>\n\nWhat do my notes say?'


@pytest.fixture
def model(need_wrapper, owui) -> str:
    name = need_wrapper(MODEL)
    owui.wait_for_model(name)
    return name


def prompt_text(request: dict) -> str:
    return "\n".join(str(m.get("content")) for m in request["messages"])


def test_a_document_in_the_chat_is_read_summarised_and_cited(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, reply=ANSWER, chunk_size=5)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, CONTEXT)
    assert turn.content == ANSWER
    statuses = turn.statuses()
    assert statuses[0] == ("Looking for files", False)
    assert (f"Read 1 of 1 files ({len(NOTE)} bytes)", True) in statuses
    assert statuses[-1][1] is True and statuses[-1][0].startswith("Answered from 1 file in ")
    sources = turn.of_type("source")
    assert [s["source"]["name"] for s in sources] == ["notes.txt"] and sources[0]["document"] == [NOTE]
    assert turn.of_type("notification") == []
    assert turn.wrapper_calls == 1 and len(turn.llm_requests) == 1
    assert NOTE in prompt_text(turn.llm_requests[0])


def test_no_files_answers_from_the_conversation(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, reply="Nothing attached.")
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "What do my notes say?")
    assert turn.content == "Nothing attached."
    assert ("No files in this chat: answering from the conversation alone", True) in turn.statuses()
    assert turn.statuses()[-1][0].startswith("Answered without files")


def test_a_file_uploaded_to_open_webui_reaches_the_wrapper_as_its_text(owui, hayhooks, fake_openai, socket, model):
    marker = f"zebra-{uuid.uuid4().hex[:8]}"
    upload = owui.api(
        "POST", "/api/v1/files/?process=true", files={"file": ("secret.txt", f"The word is {marker}.", "text/plain")}
    )
    assert upload.status_code == 200, upload.text
    file = upload.json()
    for _ in range(200):  # extraction and embedding run in the background: poll the status
        state = owui.ok("GET", f"/api/v1/files/{file['id']}/process/status")
        if state.get("status") in ("completed", "failed"):
            break
        time.sleep(0.1)
    assert state.get("status") == "completed", state
    fake_openai.set(PACK_MODEL, reply=lambda body: f"It says {marker}." if body.get("stream") else '{"queries": []}')
    item = {"type": "file", "id": file["id"], "name": "secret.txt", "file": file, "status": "uploaded"}
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, "What is the word?", files=[item])
    assert turn.content == f"It says {marker}."
    assert any(d.startswith("Read 1 of 1 files") and done for d, done in turn.statuses())
    streamed = [r for r in turn.llm_requests if r.get("stream")]
    assert len(streamed) == 1 and marker in prompt_text(streamed[0])
    # Open WebUI's retrieval query task may call the model once more first, always without stream
    assert 1 <= turn.wrapper_calls <= 2
    assert [s["source"]["name"] for s in turn.of_type("source")][-1] == "secret.txt"


def test_the_files_list_a_client_sends_with_one_bad_file(hayhooks, fake_openai, model):
    fake_openai.set(PACK_MODEL, reply=ANSWER)
    good = base64.b64encode(NOTE.encode()).decode()
    files = [
        {"filename": "notes.txt", "content": good, "size": len(NOTE), "type": ".txt"},
        {"filename": "broken.bin", "content": "%%% not base64 %%%", "size": 12, "type": ".bin"},
    ]
    text, events = text_and_events(stream_chat(hayhooks.url, model, "What do my notes say?", files=files))
    assert text == ANSWER
    statuses = [(e["data"]["description"], e["data"]["done"]) for e in events if e["type"] == "status"]
    assert ("Read 1 of 2 files (33 bytes); 1 not read", True) in statuses
    (warning,) = [e["data"] for e in events if e["type"] == "notification"]
    assert warning["type"] == "warning"
    assert (
        warning["content"] == "Some files were not read: broken.bin could not be read: its content is not valid base64."
    )
    assert exception_names(warning["content"]) == []
    prompt = prompt_text(fake_openai.chat_requests()[-1])
    assert NOTE in prompt and 'name="broken.bin" unreadable="true"' in prompt


def test_an_upstream_500_ends_the_turn_readably(owui, hayhooks, fake_openai, socket, model):
    fake_openai.set(PACK_MODEL, fail_status=500)
    turn = ui_turn(owui, hayhooks, fake_openai, socket, model, CONTEXT)
    assert "The model service had a problem (HTTP 500)" in turn.content
    assert exception_names(turn.content) == [] and turn.wrapper_calls == 1
    assert turn.statuses()[-1] == ("Stopped: the answer could not be finished", True)
