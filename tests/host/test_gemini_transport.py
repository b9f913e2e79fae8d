"""The Gemini manifold's transport features in a real Open WebUI (0.6.43 to 0.12.4), against the
fake Google of tests/fakes/gemini_vertex.py: Vertex AI with a service account (google-auth's own
sign-in against the loopback token endpoint), the second key on a 429, usage with timings and cost,
a large PDF uploaded to the Files API once over several turns, and a Veo video stored as an Open
WebUI file and shown with a player."""

from __future__ import annotations

import json
import re

import pytest

from tests.fakes import gemini as g
from tests.fakes.gemini_vertex import MP4, FakeGoogle
from tests.host.test_gemini_manifold import KEY, PIPE

SPARE = "AIzaSyHOSTSPARE-key-9876543210zyxwv"
FLASH = f"{PIPE}.gemini-2.5-flash"
VEO_ID = "veo-3.0-generate-001"
VEO = f"{PIPE}.{VEO_ID}"
MODELS = [*g.DEFAULT_MODELS, {"id": VEO_ID, "name": "Veo 3", "methods": ["predictLongRunning"]}]
PRICES = {"gemini-2.5-flash": {"input": 0.3, "output": 2.5, "cached": 0.03}}
VIDEO_LINK = re.compile(r"<video>(/api/v1/files/([0-9a-f-]+)/content)</video>")


def route(request: dict) -> object:
    parts = [p for c in request.get("contents", []) for p in c.get("parts", [])]
    files = [p.get("fileData") or p.get("file_data") for p in parts if "fileData" in p or "file_data" in p]
    if files:
        return g.reply(f"I read {len(files)} uploaded file(s).")
    return g.default_reply(request)


@pytest.fixture(scope="module")
def google(owui):
    with FakeGoogle(keys=(KEY, SPARE), models=MODELS, video_polls=0) as fake:
        fake.default = route
        valves = {"GOOGLE_API_KEY": KEY, "GOOGLE_API_BASE_URL": fake.url, "MAX_RETRIES": 0, "MODEL_CACHE_TTL": 0}
        owui.deploy(PIPE, valves={PIPE: valves})
        yield fake


@pytest.fixture(autouse=True)
def fresh(google):
    google.requests.clear()
    google.key_errors.clear()
    yield


def set_valves(owui, **valves):
    """Change some valves; the valves as they were, for `restore` (Open WebUI answers only the
    valves that were ever saved, so a merge would keep the changed ones)."""
    current = owui.ok("GET", f"/api/v1/functions/id/{PIPE}/valves")
    owui.ok("POST", f"/api/v1/functions/id/{PIPE}/valves/update", json={**current, **valves})
    return current


def restore(owui, valves: dict) -> None:
    owui.ok("POST", f"/api/v1/functions/id/{PIPE}/valves/update", json=valves)


def test_vertex_ai_signs_in_with_a_service_account_and_answers(owui, google):
    account = google.service_account()
    before = set_valves(
        owui, USE_VERTEX_AI=True, VERTEX_PROJECT="host-project", VERTEX_LOCATION="europe-west4",
        VERTEX_CREDENTIALS_JSON=json.dumps(account),
    )  # fmt: skip
    try:
        assert FLASH in {m["id"] for m in owui.models()}
        text = owui.text_of(owui.chat(FLASH, "hello vertex", stream=True))
    finally:
        restore(owui, before)
    assert text == "Echo: hello vertex"
    (request,) = google.generate_requests()
    assert request.path.startswith("/v1beta1/projects/host-project/locations/europe-west4/publishers/google/models/")
    assert google.tokens.get(request.headers["authorization"].removeprefix("Bearer ")) == account["client_email"]
    assert "x-goog-api-key" not in request.headers
    # the private key is nowhere in what the admin reads back
    valves = owui.ok("GET", f"/api/v1/functions/id/{PIPE}/valves")
    assert account["private_key"] not in json.dumps(valves)


def test_a_429_on_the_main_key_is_answered_with_the_second_key(owui, google, socket):
    before = set_valves(owui, GOOGLE_API_KEY_FALLBACK=SPARE)
    google.key_errors[KEY].append(g.error(429, "Resource has been exhausted (free tier)"))
    try:
        done = owui.chat_background(FLASH, "hello spare", socket)
    finally:
        restore(owui, before)
    assert "Echo: hello spare" in json.dumps(done)
    assert google.keys_used()[:2] == [KEY, SPARE]
    said = [s.get("description", "") for s in socket.of_type("status")]
    assert "Gemini's rate limit was reached for the main key; trying the second key" in said


def test_usage_shows_the_split_the_timings_and_the_cost(owui, google, socket):
    before = set_valves(owui, PRICES=json.dumps(PRICES))
    google.script(
        [g.text("priced"), g.finish(usage_metadata=g.usage(prompt=1000, candidates=200, thoughts=100, cached=400))]
    )
    try:
        chunks = owui.chat(FLASH, "what does it cost", stream=True)
    finally:
        restore(owui, before)
    (usage,) = [c["usage"] for c in chunks if c.get("usage")]
    assert (usage["cached_tokens"], usage["thoughts_tokens"], usage["answer_tokens"]) == (400, 100, 200)
    assert usage["cost"] == pytest.approx((600 * 0.3 + 400 * 0.03 + 300 * 2.5) / 1e6)
    assert usage["total_time_s"] >= usage["time_to_first_token_s"] >= 0


def test_a_large_pdf_goes_to_the_files_api_once_over_three_turns(owui, google):
    data = b"%PDF-1.7\n" + bytes(range(256)) * (15 * 1024 * 1024 // 256)  # above the 14 MB inline budget
    upload = owui.api("POST", "/api/v1/files/?process=false", files={"file": ("big.pdf", data, "application/pdf")})
    assert upload.status_code == 200, upload.text
    file = upload.json()
    item = {"type": "file", "id": file["id"], "name": "big.pdf", "file": file, "status": "uploaded"}
    for turn in range(3):
        assert owui.text_of(owui.chat(FLASH, f"turn {turn}", files=[item])) == "I read 1 uploaded file(s)."
    assert len(google.uploads()) == 1 and google.uploaded_bytes() == len(data)


def test_a_veo_video_is_stored_as_an_open_webui_file_and_shown(owui, google, socket):
    models = {m["id"] for m in owui.models()}
    assert VEO not in models  # the default filters list Gemini models only
    before = set_valves(owui, MODEL_ALLOWLIST="gemini-*, veo-*", VIDEO_NEGATIVE_PROMPT="text overlays")
    try:
        assert VEO in {m["id"] for m in owui.models()}
        done = owui.chat_background(VEO, "a paper boat on a river", socket)
    finally:
        restore(owui, before)
    text = json.dumps(done)
    link = VIDEO_LINK.search(text)
    assert link, text[:2000]
    served = owui.api("GET", link.group(1))
    assert served.status_code == 200 and served.content == MP4
    start = next(r for r in google.requests if r.path.endswith(":predictLongRunning"))
    assert start.json["instances"] == [{"prompt": "a paper boat on a river"}]
    assert start.json["parameters"]["negativePrompt"] == "text overlays"
    said = [s.get("description", "") for s in socket.of_type("status")]
    assert any(s.startswith("Video generated in") for s in said)
