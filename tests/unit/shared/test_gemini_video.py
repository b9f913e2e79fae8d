"""Veo video generation through the real google-genai SDK against tests/fakes/gemini_vertex.py:
the long-running operation started, polled with a status line, the video fetched, stored as an
Open WebUI file and shown; stopped when the user stops the reply."""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

import pytest

from tests.fakes import gemini as g
from tests.fakes.gemini_vertex import MP4, FakeGoogle
from tests.helpers import exception_names, load_built
from tests.unit.plugins.test_gemini_manifold import body, run

KEY = "AIzaSyVEO-key-0123456789abcdefghijklmnop"
VEO = "veo-3.0-generate-001"
MODELS = [*g.DEFAULT_MODELS, {"id": VEO, "name": "Veo 3", "methods": ["predictLongRunning"]}]


@pytest.fixture(scope="module")
def mod():
    return load_built("gemini_manifold")


@pytest.fixture
def fake():
    with FakeGoogle(keys=(KEY,), models=MODELS, video_polls=2) as server:
        yield server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Waits(list):
    """The pipe's sleep: each poll's wait moves the clock on instead of waiting."""

    def __init__(self, clock: Clock, stop_at: int | None = None) -> None:
        super().__init__()
        self.clock, self.stop_at = clock, stop_at

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.stop_at is not None and len(self) >= self.stop_at:
            raise asyncio.CancelledError  # the user stopped the reply
        self.clock.now += seconds


class Store:
    """Open WebUI's file storage as the pipe uses it (FileHost.store_file)."""

    def __init__(self, fail: bool = False) -> None:
        self.files: list[tuple[bytes, str, str, dict, dict]] = []
        self.fail = fail

    async def store_file(self, data, mime, name, user, *, chat_id=None, message_id=None) -> str:
        if self.fail:
            raise RuntimeError("storage is read-only")
        self.files.append((data, mime, name, user, {"chat_id": chat_id, "message_id": message_id}))
        return f"file-{len(self.files)}"


def make_pipe(mod, fake, *, stop_at: int | None = None, **valves):
    pipe = mod.Pipe()
    settings = {"GOOGLE_API_KEY": KEY, "GOOGLE_API_BASE_URL": fake.url, "MODEL_ALLOWLIST": "gemini-*, veo-*", **valves}
    pipe.valves = pipe.Valves(**settings)
    pipe.clock = Clock()
    pipe.sleep = Waits(pipe.clock, stop_at)
    pipe.host = Store()
    return pipe


META = {"chat_id": "c1", "message_id": "m1"}


async def test_veo_models_are_listed_when_the_filters_allow_them(mod, fake):
    listed = [m["id"] for m in await make_pipe(mod, fake).pipes()]
    assert VEO in listed
    assert VEO not in [m["id"] for m in await make_pipe(mod, fake, MODEL_ALLOWLIST="gemini-*").pipes()]


async def test_a_veo_reply_is_the_stored_video_with_a_player(mod, fake):
    pipe = make_pipe(mod, fake, VIDEO_NEGATIVE_PROMPT="blur")
    user = {
        "id": "u1",
        "role": "user",
        "valves": pipe.UserValves(VIDEO_ASPECT_RATIO="9:16", VIDEO_DURATION_SECONDS="6"),
    }
    result, events = await run(
        pipe, body("a cat on a skateboard", model=f"gemini_manifold.{VEO}"), __user__=user, __metadata__=META
    )
    assert result.startswith("<video>/api/v1/files/file-1/content</video>")
    assert "[Download the video](/api/v1/files/file-1/content)" in result
    (stored,) = pipe.host.files
    assert stored[0] == MP4 and stored[1] == "video/mp4" and stored[3]["id"] == "u1" and stored[4] == META
    start = next(r for r in fake.requests if r.path.endswith(":predictLongRunning"))
    assert start.json == {
        "instances": [{"prompt": "a cat on a skateboard"}],
        "parameters": {"aspectRatio": "9:16", "durationSeconds": 6, "resolution": "720p", "sampleCount": 1,
                       "negativePrompt": "blur"},
    }  # fmt: skip
    assert start.headers["x-goog-api-key"] == KEY
    statuses = [s["description"] for s in events.of("status")]
    polls = ["Generating the video… 0 s", "Generating the video… 10 s", "Generating the video… 20 s"]
    assert statuses == [*polls, "Video generated in 30 s"]  # the fake is done at its third read
    assert events.of("status")[-1]["done"] is True
    assert not fake.generate_requests()


async def test_vertex_ai_makes_the_video_with_google_genai_itself(mod, fake):
    account = fake.service_account()
    pipe = make_pipe(
        mod, fake, GOOGLE_API_KEY="", USE_VERTEX_AI=True, VERTEX_PROJECT="p1", VERTEX_LOCATION="us-central1",
        VERTEX_CREDENTIALS_JSON=json.dumps(account), VIDEO_RESOLUTION="1080p",
    )  # fmt: skip
    result, _ = await run(pipe, body("waves", model=f"gemini_manifold.{VEO}", stream=False), __metadata__=META)
    assert "<video>/api/v1/files/file-1/content</video>" in result
    assert pipe.host.files[0][0] == MP4
    start = next(r for r in fake.requests if r.path.endswith(":predictLongRunning"))
    assert start.path == f"/v1beta1/projects/p1/locations/us-central1/publishers/google/models/{VEO}:predictLongRunning"
    assert start.json["parameters"]["resolution"] == "1080p" and start.json["instances"][0]["prompt"] == "waves"
    assert sum(r.path.endswith(":fetchPredictOperation") for r in fake.requests) == 3


async def test_stopping_the_reply_cancels_the_operation(mod, fake):
    pipe = make_pipe(mod, fake, stop_at=2)
    with pytest.raises(asyncio.CancelledError):
        await run(pipe, body("slow", model=f"gemini_manifold.{VEO}"))
    (operation,) = fake.operations.values()
    assert operation.cancelled and not pipe.host.files


async def test_a_stopped_video_closes_its_status(mod, fake):
    from tests.unit.plugins.test_gemini_manifold import events_of_last_run

    pipe = make_pipe(mod, fake, stop_at=1)
    with pytest.raises(asyncio.CancelledError):
        await run(pipe, body("slow", model=f"gemini_manifold.{VEO}"))
    statuses = events_of_last_run().of("status")
    assert statuses[-1] == {"description": "Video generation stopped after 0 s", "done": True, "hidden": False}


async def test_a_filtered_video_says_so_plainly(mod, fake):
    pipe = make_pipe(mod, fake)
    fake.next_operation = {"filtered": True}
    with pytest.raises(mod.GeminiError, match="safety filters held it back") as caught:
        await run(pipe, body("x", model=f"gemini_manifold.{VEO}"))
    assert not exception_names(str(caught.value))


async def test_a_failed_operation_gives_google_s_reason_without_the_key(mod, fake):
    pipe = make_pipe(mod, fake)
    fake.next_operation = {"error": g.Error(400, f"prompt refused ({KEY})")}
    with pytest.raises(mod.GeminiError, match="Veo could not make the video: prompt refused") as caught:
        await run(pipe, body("x", model=f"gemini_manifold.{VEO}"))
    assert KEY not in str(caught.value)


async def test_a_video_that_cannot_be_stored_is_a_plain_message(mod, fake):
    pipe = make_pipe(mod, fake)
    pipe.host = Store(fail=True)
    with pytest.raises(mod.GeminiError, match="could not be stored in Open WebUI") as caught:
        await run(pipe, body("x", model=f"gemini_manifold.{VEO}"), __user__={"id": "u1", "role": "user"})
    assert "RuntimeError" not in str(caught.value)


async def test_tasks_and_empty_prompts_make_no_video(mod, fake):
    pipe = make_pipe(mod, fake)
    assert await pipe.pipe(body("title please", model=f"gemini_manifold.{VEO}"), __task__="title_generation") == ""
    with pytest.raises(mod.GeminiError, match="Describe the video"):
        await run(pipe, {"model": f"gemini_manifold.{VEO}", "messages": [{"role": "user", "content": " "}]})
    assert not fake.operations


def test_a_long_wait_gives_up_and_cancels(mod):
    class Client:
        vertexai = False
        cancelled: ClassVar[list[str]] = []

        class aio:
            class operations:
                @staticmethod
                async def get(op):
                    return op

            class _api_client:
                @staticmethod
                async def async_request(method, path, body):
                    Client.cancelled.append(path)

    class Op:
        done = False
        name = "models/veo/operations/1"

    clock = Clock()

    async def sleep(seconds):
        clock.now += seconds

    emitter = mod.Emitter(None)
    with pytest.raises(mod.GeminiError, match="had not finished the video after 1 min"):
        asyncio.run(mod.wait_video(Client, Op(), emitter=emitter, clock=clock, sleep=sleep, interval=30, max_wait=60))
    assert Client.cancelled == ["models/veo/operations/1:cancel"]
