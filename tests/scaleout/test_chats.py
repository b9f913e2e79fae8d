"""A Mixture of Agents chat and a Gemini chat on two workers, each run by one worker while the
chatting socket is held by the other: the reply, the statuses and the final message reach it
through Redis.

Each worker keeps its own model list (`app.state.MODELS`, filled by GET /api/models), so the lists
are refreshed on both workers before chatting.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.fakes import gemini as g
from tests.host import versions

MOA = "mixture_of_agents"
FINAL = "Green, the colour of growth."
GEMINI = "gemini_manifold"
GEMINI_KEY = "AIzaSySCALEOUT-key-0123456789abcdefghij"
FLASH = f"{GEMINI}.gemini-2.5-flash"


def refresh_models(owui, workers, wanted, attempts: int = 100):
    """Each worker keeps its own copy of the model list (the OpenAI connection's list included):
    ask each until it lists every wanted model."""
    for pid in workers.pids:
        missing: list[str] = []
        for _ in range(attempts):
            response = workers.client(pid).get("/api/models", headers={"Authorization": f"Bearer {owui.admin.token}"})
            missing = sorted(set(wanted) - {m["id"] for m in response.json()["data"]})
            if not missing:
                break
            time.sleep(0.2)
        assert not missing, (pid, missing)


def background_chat_on(owui, workers, pid, model, text, socket):
    """A UI-like chat (session, `local:` chat, message id) handled by worker `pid`; its final message."""
    message_id = str(uuid.uuid4())
    response = workers.client(pid).post(
        "/api/chat/completions",
        headers={"Authorization": f"Bearer {owui.admin.token}"},
        json={
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "stream": True,
            "session_id": socket.sid,
            "chat_id": f"local:{socket.sid}",
            "id": message_id,
        },
        timeout=120,
    )
    assert response.status_code == 200 and response.json().get("status"), response.text[:2000]
    return message_id, versions.normalise_completion(socket.wait_done(90, message_id=message_id))


@pytest.fixture(scope="module")
def moa(owui, workers, fake_openai):
    owui.deploy(MOA)
    fake_openai.set("moa-a", reply="Green.", latency=0.05)
    fake_openai.set("moa-b", reply="Red.", latency=0.05)
    fake_openai.set("moa-agg", reply=FINAL, chunk_size=3, chunk_delay=0.01)
    for model in ("moa-a", "moa-b", "moa-agg"):
        owui.wait_for_model(model)
    valves = {"models": ["moa-a", "moa-b"], "aggregator_model": "moa-agg", "num_layers": 2, "emit_interval": 0}
    owui.ok("POST", f"/api/v1/functions/id/{MOA}/valves/update", json=valves)
    refresh_models(owui, workers, [MOA, "moa-a", "moa-b", "moa-agg"])
    return owui


@pytest.mark.parametrize("runner_index", [0, 1])
def test_a_moa_chat_run_by_the_other_worker(moa, workers, socket_for, runner_index):
    runner = workers.pids[runner_index]
    socket = workers.socket_on(workers.other(runner), moa.admin, socket_for)
    _, done = background_chat_on(moa, workers, runner, MOA, "Name a colour.", socket)
    assert FINAL in done["content"]
    descriptions = [d.get("description") for d in socket.of_type("status")]
    assert descriptions, "no status reached the socket on the other worker"
    assert any(d.get("done") for d in socket.of_type("status"))


@pytest.fixture(scope="module")
def gemini(owui, workers):
    with g.FakeGemini(api_key=GEMINI_KEY) as fake:
        owui.deploy(GEMINI, valves={GEMINI: {"GOOGLE_API_KEY": GEMINI_KEY, "GOOGLE_API_BASE_URL": fake.url}})
        refresh_models(owui, workers, [FLASH])
        yield fake


@pytest.mark.parametrize("runner_index", [0, 1])
def test_a_gemini_chat_run_by_the_other_worker(owui, gemini, workers, socket_for, runner_index):
    runner = workers.pids[runner_index]
    socket = workers.socket_on(workers.other(runner), owui.admin, socket_for)
    _, done = background_chat_on(owui, workers, runner, FLASH, "hello from the other worker", socket)
    assert done["content"] == "Echo: hello from the other worker"
    generate = [r for r in gemini.generate_requests() if "gemini-2.5-flash" in r.path]
    assert generate and all(r.headers.get("x-goog-api-key") == GEMINI_KEY for r in generate)
