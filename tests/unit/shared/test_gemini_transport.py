"""Vertex AI and the second API key, through the real google-genai SDK and google-auth against
tests/fakes/gemini_vertex.py (a loopback Vertex AI endpoint and OAuth token endpoint)."""

from __future__ import annotations

import json

import pytest

from tests.fakes import gemini as g
from tests.fakes.gemini_vertex import FakeGoogle
from tests.helpers import exception_names, load_built
from tests.unit.plugins.test_gemini_manifold import body, content_of, pick, run

MAIN = "AIzaSyMAIN-key-0123456789abcdefghijklmn"
SPARE = "AIzaSySPARE-key-9876543210zyxwvutsrqpo"


@pytest.fixture(scope="module")
def mod():
    return load_built("gemini_manifold")


@pytest.fixture
def fake():
    with FakeGoogle(keys=(MAIN, SPARE)) as server:
        yield server


class Sleeps(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def vertex_pipe(mod, fake, account: dict | None, **valves):
    pipe = mod.Pipe()
    pipe.valves = pipe.Valves(
        USE_VERTEX_AI=True,
        VERTEX_PROJECT="fake-project",
        VERTEX_LOCATION="us-central1",
        VERTEX_CREDENTIALS_JSON=json.dumps(account) if account else "",
        GOOGLE_API_BASE_URL=fake.url,
        **valves,
    )
    pipe.sleep = Sleeps()
    return pipe


def keyed_pipe(mod, fake, **valves):
    pipe = mod.Pipe()
    pipe.valves = pipe.Valves(**{"GOOGLE_API_KEY": MAIN, "GOOGLE_API_BASE_URL": fake.url, "MAX_RETRIES": 2, **valves})
    pipe.sleep = Sleeps()
    return pipe


# --- service account keys ------------------------------------------------------------------------


def test_a_service_account_key_is_checked_without_being_repeated(mod):
    assert mod.parse_service_account("  ") is None  # empty: application default credentials
    secret = "-----BEGIN PRIVATE KEY-----secret"
    for text in ("{not json " + secret, json.dumps({"type": "user", "private_key": secret}), "[1]"):
        with pytest.raises(mod.GeminiError) as caught:
            mod.parse_service_account(text)
        assert secret not in str(caught.value) and secret not in caught.value.detail
    with pytest.raises(mod.GeminiError) as caught:
        mod.parse_service_account(json.dumps({"type": "service_account", "private_key": secret}))
    assert "client_email" in caught.value.detail and secret not in caught.value.detail
    info = {"type": "service_account", "private_key": secret, "client_email": "a@b", "token_uri": "http://t"}
    assert mod.parse_service_account(json.dumps(info)) == info
    assert mod.account_secrets(info) == (secret,)


# --- Vertex AI -----------------------------------------------------------------------------------


async def test_vertex_ai_signs_in_with_the_service_account_and_answers(mod, fake):
    account = fake.service_account()
    pipe = vertex_pipe(mod, fake, account)
    result, _ = await run(pipe, body("hello vertex", model="gemini_manifold.gemini-2.5-flash"))
    assert content_of(result) == "Echo: hello vertex"
    (request,) = fake.generate_requests()
    assert request.path == (
        "/v1beta1/projects/fake-project/locations/us-central1/publishers/google/models/gemini-2.5-flash"
        ":streamGenerateContent"
    )
    token = request.headers["authorization"].removeprefix("Bearer ")
    assert fake.tokens[token] == account["client_email"]  # issued by the fake for a JWT google-auth signed
    assert "x-goog-api-key" not in request.headers
    # the token is kept: a second reply signs in no second time
    result, _ = await run(pipe, body("again", stream=False))
    assert content_of(result) == "Echo: again" and fake.token_requests == 1


async def test_vertex_ai_lists_google_models_without_an_api_key(mod, fake):
    pipe = vertex_pipe(mod, fake, fake.service_account(), MODEL_ALLOWLIST="gemini-2.5-*")
    listed = await pipe.pipes()
    assert [m["id"] for m in listed] == ["gemini-2.5-flash", "gemini-2.5-pro"]
    assert any(r.path == "/v1beta1/publishers/google/models" for r in fake.requests)


async def test_a_refused_service_account_reads_as_a_sign_in_failure(mod, fake):
    account = fake.service_account()
    fake.accounts.clear()  # the token endpoint no longer knows the key: google-auth's grant is refused
    pipe = vertex_pipe(mod, fake, account)
    with pytest.raises(mod.GeminiError) as caught:
        await run(pipe, body(), __user__={"id": "u1", "role": "user"})
    assert "could not sign in to Vertex AI" in str(caught.value)
    assert not exception_names(str(caught.value)) and account["private_key"] not in str(caught.value)
    with pytest.raises(mod.GeminiError) as caught:
        await run(pipe, body(), __user__={"id": "a1", "role": "admin"})
    assert "VERTEX_CREDENTIALS_JSON" in str(caught.value)  # the admin is told which valve
    assert not fake.generate_requests()


async def test_broken_vertex_credentials_say_so_before_any_call(mod, fake):
    pipe = vertex_pipe(mod, fake, None)
    pipe.valves.VERTEX_CREDENTIALS_JSON = '{"type": "service_account"'
    with pytest.raises(mod.GeminiError, match="Vertex AI credentials are not valid"):
        await run(pipe, body())
    assert await pipe.pipes() == [{"id": "error", "name": "Gemini (not set up correctly: see the server log)"}]
    assert not fake.requests


async def test_vertex_ai_without_a_project_is_a_setup_message(mod, fake):
    pipe = vertex_pipe(mod, fake, fake.service_account())
    pipe.valves.VERTEX_PROJECT = ""
    with pytest.raises(mod.GeminiError, match="needs a Google Cloud project"):
        await run(pipe, body())


async def test_vertex_ai_keeps_large_attachments_inline(mod, fake, tmp_path):
    from tests.unit.plugins.test_gemini_manifold import FakeHost

    pipe = vertex_pipe(mod, fake, fake.service_account())
    pipe.inline_budget = 100
    pipe.host = FakeHost(tmp_path, {"f1": (b"%PDF-1.7 " + b"x" * 500, "application/pdf", "big.pdf")})
    files = [{"type": "file", "id": "f1", "name": "big.pdf", "file": {"meta": {"content_type": "application/pdf"}}}]
    _, events = await run(pipe, body("read it"), __files__=files)
    parts = fake.last_generate()["contents"][-1]["parts"]
    assert any("inlineData" in p or "inline_data" in p for p in parts) and not fake.uploads()
    assert any("Vertex AI has no Files API" in s["description"] for s in events.of("status"))


# --- the second key ------------------------------------------------------------------------------


async def test_a_429_on_the_main_key_moves_the_request_to_the_second_key(mod, fake):
    pipe = keyed_pipe(mod, fake, GOOGLE_API_KEY_FALLBACK=SPARE)
    fake.key_errors[MAIN].append(g.error(429, "Quota exceeded for the free tier"))
    result, events = await run(pipe, body("hi"))
    assert content_of(result) == "Echo: hi"
    assert fake.keys_used() == [MAIN, SPARE]
    assert pipe.sleep == []  # no backoff: the second key is tried at once
    statuses = [s["description"] for s in events.of("status")]
    assert statuses[0] == "Gemini's rate limit was reached for the main key; trying the second key"
    assert statuses[-1].startswith("Gemini answered with the second key")
    assert events.of("status")[-1]["done"] is True


async def test_the_second_key_is_used_once_then_the_usual_retries_follow(mod, fake):
    pipe = keyed_pipe(mod, fake, GOOGLE_API_KEY_FALLBACK=SPARE, MAX_RETRIES=1)
    fake.key_errors[MAIN].append(g.error(429))
    fake.key_errors[SPARE].extend([g.error(429, retry_delay="0.5s"), g.error(429)])
    with pytest.raises(mod.GeminiError, match="rate limit or quota was reached after 1 retry"):
        await run(pipe, body("hi", stream=False))
    assert fake.keys_used() == [MAIN, SPARE, SPARE]
    assert pipe.sleep == [0.5]


async def test_without_a_second_key_a_429_retries_as_before(mod, fake):
    pipe = keyed_pipe(mod, fake)
    fake.key_errors[MAIN].append(g.error(429, retry_delay="0.01s"))
    result, _ = await run(pipe, body("hi"))
    assert content_of(result) == "Echo: hi" and fake.keys_used() == [MAIN, MAIN]


async def test_other_failures_of_the_main_key_do_not_use_the_second_key(mod, fake):
    pipe = keyed_pipe(mod, fake, GOOGLE_API_KEY_FALLBACK=SPARE, MAX_RETRIES=0)
    fake.key_errors[MAIN].append(g.error(400, "Bad request"))
    with pytest.raises(mod.GeminiError, match="Bad request"):
        await run(pipe, body("hi"))
    assert fake.keys_used() == [MAIN]


async def test_the_second_key_uploads_the_files_it_reads_itself(mod, fake, tmp_path):
    from tests.unit.plugins.test_gemini_manifold import FakeHost

    pipe = keyed_pipe(mod, fake, GOOGLE_API_KEY_FALLBACK=SPARE)
    pipe.inline_budget = 100
    pipe.host = FakeHost(tmp_path, {"f1": (b"%PDF-1.7 " + b"y" * 500, "application/pdf", "doc.pdf")})
    files = [{"type": "file", "id": "f1", "name": "doc.pdf", "file": {"meta": {"content_type": "application/pdf"}}}]
    fake.key_errors[MAIN].append(g.error(429))
    result, _ = await run(pipe, body("read"), __files__=files)
    assert content_of(result) == "Echo: read"
    starts = fake.uploads()
    assert [r.headers["x-goog-api-key"] for r in starts] == [MAIN, SPARE]
    sent = [pick(p, "fileData", "file_data") for p in fake.last_generate()["contents"][-1]["parts"]]
    second_file = fake.files[list(fake.files)[-1]]
    assert pick(next(s for s in sent if s), "fileUri", "file_uri").endswith(second_file.name)


async def test_the_second_key_never_shows(mod, fake):
    pipe = keyed_pipe(mod, fake, GOOGLE_API_KEY_FALLBACK=SPARE)
    fake.key_errors[MAIN].append(g.error(429))
    fake.key_errors[SPARE].append(g.error(400, f"echo {SPARE} back"))
    with pytest.raises(mod.GeminiError) as caught:
        await run(pipe, body("hi"), __user__={"id": "a", "role": "admin"})
    assert SPARE not in str(caught.value) and MAIN not in str(caught.value)
    schema = mod.Pipe.Valves.model_json_schema()["properties"]
    assert schema["GOOGLE_API_KEY_FALLBACK"]["input"] == {"type": "password"}
    assert schema["VERTEX_CREDENTIALS_JSON"]["input"] == {"type": "password"}
