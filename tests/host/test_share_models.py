"""`deploy --share-models` against a real Open WebUI: what a plain user sees and can chat with.

Open WebUI (0.6.43 to 0.12.4) shows a function's models to admins only until a workspace model entry
lets others read them: `access_grants` from 0.8, an `access_control` dict on 0.6.43 (None = every
user reads it; tests/host/versions.py). The module deploys the pack (default selection, valves from a file: the Gemini
manifold at the fake Gemini server, Mixture of Agents over two fake OpenAI models), signs in as the
plain user the host tier creates, and checks that user's view before and after sharing.

Isolation: other host tests may already have granted the plain user some of these models. The
module fixture removes the pack models' workspace entries first (the state of a fresh install) and
puts back what was there, grants included, at the end; valves are restored too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from buildlib.assemble import discover
from buildlib.kinds import TEMPLATES, plugin_id
from tests.fakes import gemini as g
from tests.host import versions
from tests.host._server import ROOT, USER_PASSWORD, build_subset

KEY = "AIzaSySHARE-key-0123456789abcdefghijklm"
GEMINI = "gemini_manifold"
MOA = "mixture_of_agents"
PIPES = (GEMINI, MOA)
AGENT, AGGREGATOR = "share-agent", "share-agg"
MOA_ANSWER = "Shared mixture answer."
GROUP = "share-models-test-group"


def pack_ids() -> list[str]:
    """Every plugin id of the pack (templates are not part of it)."""
    return sorted({plugin_id(folder, Path(source).stem) for folder, source in discover(ROOT) if folder != TEMPLATES})


def sign_in(owui, email: str, password: str) -> str:
    response = httpx.post(f"{owui.url}/api/v1/auths/signin", json={"email": email, "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def lines_for(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        if " (" in line and "): " in line and not line.startswith(" "):
            head, words = line.split("): ", 1)
            found[head.split(" (")[0]] = words
    return found


def pack_models(owui) -> list[str]:
    """The models the pack's pipes serve, as the admin sees them."""
    return sorted(
        m["id"]
        for m in owui.models()
        if m.get("pipe") and any(m["id"] == p or m["id"].startswith(f"{p}.") for p in PIPES)
    )


def entries(owui) -> dict[str, dict]:
    return {e["id"]: e for e in owui.ok("GET", "/api/v1/models/base")}


def readers(entry: dict) -> set[tuple[str, str]]:
    """Who may read a workspace model entry: (principal type, id); ("user", "*") is every user."""
    if versions.ACCESS_GRANTS:
        return {(g["principal_type"], g["principal_id"]) for g in entry["access_grants"] if g["permission"] == "read"}
    control = entry["access_control"]
    if control is None:
        return {("user", "*")}
    read = control.get("read") or {}
    return {("group", i) for i in read.get("group_ids") or []} | {("user", i) for i in read.get("user_ids") or []}


def restore(owui, entry: dict) -> None:
    """Put a workspace model entry back as it was, access included."""
    if versions.ACCESS_GRANTS:
        grants = [{k: g[k] for k in ("principal_type", "principal_id", "permission")} for g in entry["access_grants"]]
        form = {"id": entry["id"], "name": entry["name"], "access_grants": grants}
        owui.ok("POST", "/api/v1/models/model/access/update", json=form)
    else:
        keys = ("id", "base_model_id", "name", "meta", "params", "access_control", "is_active")
        owui.ok("POST", "/api/v1/models/create", json={k: entry.get(k) for k in keys})


@pytest.fixture(scope="module")
def pack(owui, fake_openai, tmp_path_factory) -> Iterator[dict]:
    fake_openai.set(AGENT, reply="An agent's view.")
    fake_openai.set(AGGREGATOR, reply=MOA_ANSWER)
    for model in (AGENT, AGGREGATOR):
        owui.wait_for_model(model)
    with g.FakeGemini(api_key=KEY) as fake:
        root = build_subset(tuple(pack_ids()), tmp_path_factory.mktemp("share-pack"))
        valves_file = root / "valves.json"
        valves_file.write_text(
            json.dumps(
                {
                    GEMINI: {"GOOGLE_API_KEY": KEY, "GOOGLE_API_BASE_URL": fake.url, "MAX_RETRIES": 1},
                    MOA: {
                        "models": [AGENT],
                        "aggregator_model": AGGREGATOR,
                        "num_layers": 1,
                        "num_agents_per_layer": 1,
                        "emit_interval": 0,
                        "show_intermediate": False,  # another module may have left it on
                    },
                }
            ),
            encoding="utf-8",
        )
        saved_valves = {
            p: owui.ok("GET", f"/api/v1/functions/id/{p}/valves")
            for p in PIPES
            if owui.api("GET", f"/api/v1/functions/id/{p}").status_code == 200
        }

        def deploy(*args: str) -> tuple[int, str]:
            result = owui.run_deploy(args=("--valves", str(valves_file), *args), root=root)
            output = result.stdout + result.stderr
            assert owui.admin.token not in output
            return result.returncode, output

        code, output = deploy()
        assert code == 0, output
        models = pack_models(owui)
        before = {i: e for i, e in entries(owui).items() if i in models}
        for model_id in before:  # back to a fresh install: no workspace entry for the pack's models
            owui.ok("POST", "/api/v1/models/model/delete", json={"id": model_id})
        user_token = sign_in(owui, owui.user.email, USER_PASSWORD)
        try:
            yield {"deploy": deploy, "models": models, "token": user_token}
        finally:
            for model_id in set(entries(owui)) & set(models):
                owui.ok("POST", "/api/v1/models/model/delete", json={"id": model_id})
            for entry in before.values():
                restore(owui, entry)
            for p in PIPES:
                owui.ok("POST", f"/api/v1/functions/id/{p}/valves/update", json=saved_valves.get(p, {}))
            owui.models()


def user_sees(owui, token: str) -> set[str]:
    return set(owui.model_ids(token=token))


def chat_reply(owui, model: str, token: str) -> str:
    return owui.text_of(owui.chat(model, f"hello {model}", token=token))


def test_the_pack_serves_a_model_per_pipe_and_one_per_gemini_model(pack):
    models = pack["models"]
    assert MOA in models
    gemini = [m for m in models if m.startswith(f"{GEMINI}.")]
    assert f"{GEMINI}.gemini-2.5-flash" in gemini and len(gemini) >= 3


def test_before_sharing_a_plain_user_sees_none_of_the_pack_models(owui, pack):
    token = pack["token"]
    assert not user_sees(owui, token) & set(pack["models"])
    for model in pack["models"]:
        response = owui.api(
            "POST",
            "/api/chat/completions",
            token=token,
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code != 200, model
    # a dry run says what it would share and changes nothing
    code, output = pack["deploy"]("--share-models", "--dry-run")
    assert code == 0, output
    states = lines_for(output)
    assert states[MOA] == "unchanged, active, would share"
    assert states[GEMINI] == "unchanged, active, would share"
    assert f"  would be readable by all users: {MOA}" in output.splitlines()
    assert not set(entries(owui)) & set(pack["models"])
    assert not user_sees(owui, token) & set(pack["models"])


def test_an_unknown_group_is_a_clear_error_and_changes_nothing(owui, pack):
    code, output = pack["deploy"]("--share-models-with", "no-such-group-here")
    assert code == 1
    assert "--share-models-with: no group named 'no-such-group-here'" in output
    assert lines_for(output) == {}
    assert not set(entries(owui)) & set(pack["models"])


def test_sharing_with_a_group_reaches_its_members_only(owui, pack):
    token = pack["token"]
    group = owui.ok("POST", "/api/v1/groups/create", json={"name": GROUP, "description": "deploy sharing test"})
    try:
        owui.ok("POST", f"/api/v1/groups/id/{group['id']}/users/add", json={"user_ids": [owui.user.id]})
        code, output = pack["deploy"]("--share-models-with", GROUP)
        assert code == 0, output
        assert lines_for(output)[MOA] == "unchanged, active, made shared"
        assert f"  readable by group {GROUP}: {MOA}" in output.splitlines()
        stored = entries(owui)
        for model in pack["models"]:
            assert readers(stored[model]) == {("group", group["id"])}, model
        assert set(pack["models"]) <= user_sees(owui, token)
        flash = f"{GEMINI}.gemini-2.5-flash"
        assert chat_reply(owui, flash, token) == f"Echo: hello {flash}"
    finally:
        owui.ok("DELETE", f"/api/v1/groups/id/{group['id']}/delete")
    assert not user_sees(owui, token) & set(pack["models"])


def test_after_share_models_a_plain_user_chats_with_every_pack_model(owui, pack):
    token = pack["token"]
    code, output = pack["deploy"]("--share-models")
    assert code == 0, output
    states = lines_for(output)
    assert states[MOA] == "unchanged, active, made shared"
    assert states[GEMINI] == "unchanged, active, made shared"
    gemini = [m for m in pack["models"] if m.startswith(f"{GEMINI}.")]
    shared = [
        sorted(line.split(": ", 1)[1].split(", ")) for line in output.splitlines() if line.startswith("  readable")
    ]
    assert sorted(shared) == sorted([[MOA], gemini]), output
    assert "stay private until a deploy shares them" in output
    assert set(pack["models"]) <= user_sees(owui, token)

    assert all(("user", "*") in readers(e) for i, e in entries(owui).items() if i in pack["models"])
    # Mixture of Agents calls its agent models as the chatting user: a connection model is
    # admin-only too until the admin grants it (the access dialog of Admin > Settings > Models)
    for model in (AGENT, AGGREGATOR):
        owui.grant_model(model)
    assert chat_reply(owui, MOA, token) == MOA_ANSWER
    for model in gemini:
        assert chat_reply(owui, model, token) == f"Echo: hello {model}", model


def test_a_second_run_changes_nothing_and_only_selects(owui, pack):
    before = {i: e["updated_at"] for i, e in entries(owui).items() if i in pack["models"]}
    assert set(before) == set(pack["models"])
    code, output = pack["deploy"]("--share-models")
    assert code == 0, output
    states = lines_for(output)
    assert states[MOA] == "unchanged, active, shared" and states[GEMINI] == "unchanged, active, shared"
    assert "readable by" not in output
    assert "0 changed, 0 failed" in output
    assert {i: e["updated_at"] for i, e in entries(owui).items() if i in pack["models"]} == before

    code, output = pack["deploy"]("--share-models", "--only", GEMINI)
    assert code == 0, output
    assert lines_for(output) == {GEMINI: "unchanged, active, shared"}
    code, output = pack["deploy"]("--share-models", "--dry-run")
    assert lines_for(output)[GEMINI] == "unchanged, active, shared" and "0 would change" in output
