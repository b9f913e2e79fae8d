"""Attachments above the inline limit go through the Files API once per key and content, through
the real google-genai SDK against tests/fakes/gemini_vertex.py (Files with expirationTime and
sha256Hash, per-key file lists, 403 for a file Google no longer has)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from types import SimpleNamespace

import pytest

from tests.fakes import gemini as g
from tests.fakes.gemini_vertex import FILE_TTL, FakeGoogle
from tests.helpers import load_built
from tests.unit.plugins.test_gemini_manifold import FakeHost, body, content_of, pick, run

MAIN = "AIzaSyMAIN-key-0123456789abcdefghijklmn"
OWN = "AIzaSyOWN-key-9876543210zyxwvutsrqponm"
PDF = b"%PDF-1.7 " + b"z" * 4000
FILES = [{"type": "file", "id": "f1", "name": "report.pdf", "file": {"meta": {"content_type": "application/pdf"}}}]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def mod():
    return load_built("gemini_manifold")


@pytest.fixture
def clock():
    return Clock(1_900_000_000.0)


@pytest.fixture
def fake(clock):
    with FakeGoogle(keys=(MAIN, OWN)) as server:
        server.clock = clock
        yield server


def make_pipe(mod, fake, clock, tmp_path):
    pipe = mod.Pipe()
    pipe.valves = pipe.Valves(GOOGLE_API_KEY=MAIN, GOOGLE_API_BASE_URL=fake.url)
    pipe.inline_budget = 1000  # the PDF does not fit inline
    pipe.host = FakeHost(tmp_path, {"f1": (PDF, "application/pdf", "report.pdf")})
    pipe._uploads.wall_clock = clock

    async def no_sleep(_: float) -> None:
        return None

    pipe.sleep = no_sleep
    return pipe


def file_part(fake) -> dict:
    parts = [pick(p, "fileData", "file_data") for p in fake.last_generate()["contents"][-1]["parts"]]
    return next(p for p in parts if p)


async def chat(pipe, text: str, chat_id: str = "c1", user: dict | None = None):
    meta = {"chat_id": chat_id, "message_id": f"m-{text}"}
    user = user or {"id": "u1", "role": "user", "valves": pipe.UserValves()}
    return await run(pipe, body(text), __files__=FILES, __metadata__=meta, __user__=user)


async def test_a_large_pdf_is_uploaded_once_over_five_turns(mod, fake, clock, tmp_path):
    pipe = make_pipe(mod, fake, clock, tmp_path)
    for turn in range(5):
        result, _ = await chat(pipe, f"turn {turn}")
        assert content_of(result) == f"Echo: turn {turn}"
    assert len(fake.uploads()) == 1 and fake.uploaded_bytes() == len(PDF)
    (uploaded,) = fake.files.values()
    assert pick(file_part(fake), "fileUri", "file_uri").endswith(uploaded.name)


async def test_other_chats_of_the_same_key_reuse_the_upload_other_keys_do_not(mod, fake, clock, tmp_path):
    pipe = make_pipe(mod, fake, clock, tmp_path)
    await chat(pipe, "one", chat_id="c1")
    await chat(pipe, "two", chat_id="c2")
    assert len(fake.uploads()) == 1
    own = {"id": "u1", "role": "user", "valves": pipe.UserValves(GOOGLE_API_KEY=OWN)}  # the file's owner
    await chat(pipe, "three", chat_id="c3", user=own)
    await chat(pipe, "four", chat_id="c4", user=own)
    assert [r.headers["x-goog-api-key"] for r in fake.uploads()] == [MAIN, OWN]


async def test_a_restarted_pipe_finds_the_upload_in_the_key_s_file_list(mod, fake, clock, tmp_path):
    await chat(make_pipe(mod, fake, clock, tmp_path), "before the restart")
    fresh = make_pipe(mod, fake, clock, tmp_path)  # a new worker, a server restart, a changed function
    _, events = await chat(fresh, "after the restart")
    assert len(fake.uploads()) == 1
    assert any(r.path == "/v1beta/files" and r.method == "GET" for r in fake.requests)
    assert not any("Uploading" in s["description"] for s in events.of("status"))


async def test_an_upload_is_not_reused_in_its_last_hour(mod, fake, clock, tmp_path):
    pipe = make_pipe(mod, fake, clock, tmp_path)
    await chat(pipe, "first")
    clock.now += FILE_TTL - 1800  # half an hour before Google deletes it
    await chat(pipe, "later")
    assert len(fake.uploads()) == 2
    assert content_of((await chat(pipe, "again"))[0]) == "Echo: again" and len(fake.uploads()) == 2


async def test_a_file_google_no_longer_has_is_uploaded_again_next_turn(mod, fake, clock, tmp_path):
    pipe = make_pipe(mod, fake, clock, tmp_path)
    await chat(pipe, "first")
    fake.files.clear()  # deleted through the API before its expiry
    with pytest.raises(mod.GeminiError):
        await chat(pipe, "refused")
    result, _ = await chat(pipe, "retried")
    assert content_of(result) == "Echo: retried" and len(fake.uploads()) == 2


async def test_a_failing_file_list_only_means_an_upload(mod, fake, clock, tmp_path):
    pipe = make_pipe(mod, fake, clock, tmp_path)
    fake.list_files_error = g.error(500, "list broke")
    assert content_of((await chat(pipe, "y"))[0]) == "Echo: y" and len(fake.uploads()) == 1


# --- the pieces ------------------------------------------------------------------------------------


def test_sha256_hash_is_matched_in_every_spelling_google_uses(mod):
    digest = hashlib.sha256(b"data").digest()
    assert mod.same_content(base64.b64encode(digest.hex().encode()).decode(), digest)  # what Google sends
    assert mod.same_content(base64.b64encode(digest).decode(), digest)  # what the reference documents
    assert mod.same_content(digest.hex().upper(), digest)
    assert not mod.same_content(base64.b64encode(b"other").decode(), digest)
    assert not mod.same_content(None, digest) and not mod.same_content("%%%", digest)


def test_expiry_comes_from_expiration_time_else_creation(mod):
    at = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert mod.expiry_of(SimpleNamespace(expiration_time=at), 0) == at.timestamp()
    assert mod.expiry_of(SimpleNamespace(expiration_time=None, create_time=at), 0) == at.timestamp() + FILE_TTL
    assert mod.expiry_of(SimpleNamespace(), 100.0) == 100.0 + FILE_TTL - mod.REUSE_MARGIN


def test_the_cache_is_bounded_and_forgets_the_least_recently_used(mod):
    cache = mod.UploadCache(size=2, wall_clock=lambda: 0.0)
    entry = mod.Uploaded("u", "application/pdf", 10_000.0)
    cache.put("k", "a", entry)
    cache.put("k", "b", mod.Uploaded("v", "application/pdf", 10_000.0))
    assert cache.get("k", "a") == entry  # a is now the most recent
    cache.put("k", "c", mod.Uploaded("w", "application/pdf", 10_000.0))
    assert cache.get("k", "b") is None and cache.get("k", "a") == entry and len(cache) == 2
    assert cache.forget_uri("u") and cache.get("k", "a") is None
    assert cache.get("other key", "c") is None  # another key never sees it
