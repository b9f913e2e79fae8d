"""`python3 build.py deploy` against a real Open WebUI: idempotence, valves, errors, options.

Runs on every tested version (0.6.43, 0.8.12, 0.10.2, 0.12.4); where the server's answers differ,
the facts come from tests/host/versions.py, not from deploy's own table.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from buildlib.assemble import build_plugin
from buildlib.kinds import BY_NAME
from tests.host import versions
from tests.host._server import ROOT

FOLDER = {name: k.folder for name, k in BY_NAME.items()}
TEMPLATE = {name: k.template for name, k in BY_NAME.items()}
# deploy reads a load error when create tells it, or else when update does (through a placeholder)
LOAD_ERROR_SHOWN = versions.CREATE_ERROR_DETAIL_SHOWN or versions.UPDATE_ERROR_DETAIL_SHOWN


def template_text(kind: str) -> str:
    return build_plugin(ROOT, "templates", f"plugins/templates/{TEMPLATE[kind]}.py", {}).text


def make_root(path: Path, *plugins: dict) -> Path:
    """A deployable root (manifest.json + dist/) holding the given plugins.

    Each plugin: {"id", "kind", "text"?: built text (default: that kind's template), "global"?: bool,
    "template"?: bool (lives in plugins/templates/)}.
    """
    entries = []
    for p in plugins:
        folder = "templates" if p.get("template") else FOLDER[p["kind"]]
        text = p.get("text") or template_text(p["kind"])
        dist = f"dist/{folder}/{p['id']}.py"
        (path / dist).parent.mkdir(parents=True, exist_ok=True)
        (path / dist).write_text(text, encoding="utf-8")
        entries.append(
            {
                "id": p["id"],
                "kind": p["kind"],
                "title": f"Deploy test {p['id']}",
                "version": "0.1.0",
                "description": f"deploy test plugin {p['id']}",
                "requirements": [],
                "required_open_webui_version": "0.6.43",
                "global": bool(p.get("global")),
                "source": f"plugins/{folder}/{p['id']}.py",
                "dist": dist,
                "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "shared": [],
            }
        )
    (path / "manifest.json").write_text(json.dumps({"plugins": entries}, indent=2), encoding="utf-8")
    return path


def deploy(owui, root: Path, *ids: str, valves=None, args=()):
    result = owui.run_deploy(*ids, valves=valves, args=tuple(args), root=root)
    output = result.stdout + result.stderr
    assert owui.admin.token not in output, "deploy printed the token"
    return result.returncode, output


def lines_for(output: str) -> dict[str, str]:
    """plugin id -> the state words of its line."""
    found = {}
    for line in output.splitlines():
        if " (" in line and "): " in line:
            head, words = line.split("): ", 1)
            found[head.split(" (")[0]] = words
    return found


def stored_function(owui, plugin_id: str) -> dict:
    return owui.ok("GET", f"/api/v1/functions/id/{plugin_id}")


def user_reads_tool(owui, tool_id: str) -> bool:
    """Whether the plain user may read the tool (0.6.43 answers a forbidden read with 200 and null)."""
    response = owui.api("GET", f"/api/v1/tools/id/{tool_id}", token=owui.user)
    return response.status_code == 200 and bool(response.json())


def hidden_load_error(owui, dist: str) -> str:
    """What deploy says where the server tells neither on create nor on update why it cannot load."""
    return f"Open WebUI {owui.version_text} cannot load {dist} and does not say why"


# --- idempotence -----------------------------------------------------------------------


def test_first_run_installs_and_second_run_changes_nothing(owui, tmp_path):
    root = make_root(
        tmp_path,
        {"id": "dt_twice_pipe", "kind": "pipe"},
        {"id": "dt_twice_filter", "kind": "filter", "global": True},
        {"id": "dt_twice_action", "kind": "action"},
        {"id": "dt_twice_tool", "kind": "tool"},
    )
    code, output = deploy(owui, root)
    assert code == 0, output
    assert output.splitlines()[0] == f"Open WebUI {owui.version_text} at {owui.url}"
    assert lines_for(output) == {
        "dt_twice_pipe": "created, activated",
        "dt_twice_filter": "created, activated, made global",
        "dt_twice_action": "created, activated",
        "dt_twice_tool": "created",
    }
    assert "deployed 4 of 4 plugins" in output and "4 changed, 0 failed" in output
    assert stored_function(owui, "dt_twice_filter")["is_global"] is True
    assert stored_function(owui, "dt_twice_action")["is_global"] is False
    assert "dt_twice_pipe" in owui.model_ids()  # deploy refreshed the model list
    stored = stored_function(owui, "dt_twice_pipe")
    assert stored["content"] == (root / "dist/functions/dt_twice_pipe.py").read_text()
    assert stored["name"] == "Deploy test dt_twice_pipe"
    assert stored["meta"]["description"] == "deploy test plugin dt_twice_pipe"
    before = {f["id"]: f["updated_at"] for f in owui.ok("GET", "/api/v1/functions/export")}

    code, output = deploy(owui, root)
    assert code == 0, output
    assert lines_for(output) == {
        "dt_twice_pipe": "unchanged, active",
        "dt_twice_filter": "unchanged, active, global",
        "dt_twice_action": "unchanged, active",
        "dt_twice_tool": "unchanged",
    }
    assert "0 changed, 0 failed" in output
    after = {f["id"]: f["updated_at"] for f in owui.ok("GET", "/api/v1/functions/export")}
    assert after == before
    owui.ok("POST", "/api/v1/functions/id/dt_twice_filter/toggle/global")  # leave no global filter behind


def test_changed_text_is_updated_and_deactivated_function_reactivated(owui, tmp_path):
    root = make_root(tmp_path / "a", {"id": "dt_upd_pipe", "kind": "pipe"})
    assert deploy(owui, root)[0] == 0
    owui.ok("POST", "/api/v1/functions/id/dt_upd_pipe/toggle")  # an admin switched it off
    text = template_text("pipe").replace("echo: ", "changed: ")
    root = make_root(tmp_path / "b", {"id": "dt_upd_pipe", "kind": "pipe", "text": text})
    code, output = deploy(owui, root)
    assert code == 0, output
    assert lines_for(output)["dt_upd_pipe"] == "updated, activated"
    assert stored_function(owui, "dt_upd_pipe")["content"] == text
    assert owui.text_of(owui.chat("dt_upd_pipe", "x")) == "changed: x "


# --- valves -------------------------------------------------------------------------------


def test_valves_are_merged_with_the_stored_ones(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_valves_pipe", "kind": "pipe"})
    assert deploy(owui, root)[0] == 0
    owui.ok("POST", "/api/v1/functions/id/dt_valves_pipe/valves/update", json={"PREFIX": "a: ", "MAX_WORDS": 2})

    code, output = deploy(owui, root, valves={"dt_valves_pipe": {"PREFIX": "b: "}})
    assert code == 0, output
    assert lines_for(output)["dt_valves_pipe"] == "unchanged, active, valves updated"
    valves = owui.ok("GET", "/api/v1/functions/id/dt_valves_pipe/valves")
    assert valves == {"PREFIX": "b: ", "MAX_WORDS": 2}
    assert owui.text_of(owui.chat("dt_valves_pipe", "y")) == "b: y "

    code, output = deploy(owui, root, valves={"dt_valves_pipe": {"PREFIX": "b: "}})
    assert lines_for(output)["dt_valves_pipe"] == "unchanged, active"

    code, output = deploy(owui, root, valves={"dt_valves_pipe": {"MAX_WORDS": None}})
    assert code == 0, output
    assert owui.ok("GET", "/api/v1/functions/id/dt_valves_pipe/valves") == {"PREFIX": "b: "}


def test_valves_on_a_new_plugin_and_a_tool(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_valves_new", "kind": "pipe"}, {"id": "dt_valves_tool", "kind": "tool"})
    valves = {"dt_valves_new": {"PREFIX": "new: "}, "dt_valves_tool": {"MAX_CHARS": 7}}
    code, output = deploy(owui, root, valves=valves)
    assert code == 0, output
    assert lines_for(output) == {
        "dt_valves_new": "created, activated, valves updated",
        "dt_valves_tool": "created, valves updated",
    }
    assert owui.ok("GET", "/api/v1/tools/id/dt_valves_tool/valves") == {"MAX_CHARS": 7}
    assert lines_for(deploy(owui, root, valves=valves)[1]) == {
        "dt_valves_new": "unchanged, active",
        "dt_valves_tool": "unchanged",
    }


def test_valve_typos_and_bad_values_are_reported(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_valves_bad", "kind": "pipe"})
    code, output = deploy(owui, root, valves={"dt_valves_bad": {"PREFX": "x"}})
    assert code == 1
    assert "dt_valves_bad has no valve PREFX (its valves: PREFIX, MAX_WORDS)" in output
    code, output = deploy(owui, root, valves={"dt_nope": {"A": 1}})
    assert code == 1 and "no plugin dt_nope" in output
    code, output = deploy(owui, root, valves={"dt_valves_bad": {"MAX_WORDS": "soon", "PREFIX": "secret-value"}})
    assert code == 1
    assert "dt_valves_bad (pipe): FAILED: the server rejected the valves" in output
    assert "MAX_WORDS: integer, PREFIX: string" in output
    assert "secret-value" not in output  # valve values may be API keys


def test_mixture_of_agents_valves_from_a_file(owui):
    """Its Valves inherits every field from the inlined MoaValves: the name check must see them."""
    valves = {"mixture_of_agents": {"models": ["fake-gpt"], "aggregator_model": "fake-gpt", "num_layers": 1}}
    result = owui.run_deploy("mixture_of_agents", valves=valves)
    output = result.stdout + result.stderr
    try:
        assert result.returncode == 0, output
        assert "has no valve" not in output and "cannot check" not in output
        assert "valves updated" in lines_for(output)["mixture_of_agents"]
        stored = owui.ok("GET", "/api/v1/functions/id/mixture_of_agents/valves")
        assert {k: stored[k] for k in ("models", "aggregator_model", "num_layers")} == valves["mixture_of_agents"]
        assert owui.text_of(owui.chat("mixture_of_agents", "hi")).startswith("fake-gpt says:")
    finally:
        reset = {"mixture_of_agents": dict.fromkeys(valves["mixture_of_agents"])}
        assert owui.run_deploy("mixture_of_agents", valves=reset).returncode == 0


# --- failures -----------------------------------------------------------------------------


def test_broken_plugin_shows_the_real_error_and_others_still_deploy(owui, tmp_path):
    broken = template_text("pipe") + "\nimport dt_no_such_module\n"
    root = make_root(
        tmp_path,
        {"id": "dt_broken_pipe", "kind": "pipe", "text": broken},
        {"id": "dt_fine_pipe", "kind": "pipe"},
    )
    code, output = deploy(owui, root)
    assert code == 1, output
    states = lines_for(output)
    if LOAD_ERROR_SHOWN:
        assert states["dt_broken_pipe"].startswith("FAILED: Open WebUI cannot load dist/functions/dt_broken_pipe.py")
        assert "No module named 'dt_no_such_module'" in states["dt_broken_pipe"]
    else:  # 0.10.x: the reason is only in the server's log
        assert states["dt_broken_pipe"].startswith(
            f"FAILED: {hidden_load_error(owui, 'dist/functions/dt_broken_pipe.py')}"
        )
        assert states["dt_broken_pipe"].endswith("the server's log has the reason")
    assert states["dt_fine_pipe"] == "created, activated"
    assert "1 failed" in output
    # the placeholder used to read the error is gone
    assert owui.api("GET", "/api/v1/functions/id/dt_broken_pipe").status_code != 200


def test_broken_update_keeps_the_working_version(owui, tmp_path):
    root = make_root(tmp_path / "a", {"id": "dt_broken_upd", "kind": "pipe"})
    assert deploy(owui, root)[0] == 0
    broken = template_text("pipe") + "\nraise RuntimeError('dt load failure')\n"
    code, output = deploy(owui, make_root(tmp_path / "b", {"id": "dt_broken_upd", "kind": "pipe", "text": broken}))
    assert code == 1
    state = lines_for(output)["dt_broken_upd"]
    if versions.UPDATE_ERROR_DETAIL_SHOWN:
        assert "dt load failure" in state
    else:
        assert state.startswith(f"FAILED: {hidden_load_error(owui, 'dist/functions/dt_broken_upd.py')}")
    assert state.endswith("the installed version stays")
    assert stored_function(owui, "dt_broken_upd")["content"] == template_text("pipe")


def test_token_rules(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_token_pipe", "kind": "pipe"})
    command = [sys.executable, str(ROOT / "build.py"), "--root", str(root), "deploy", "--url", owui.url]
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENWEBUI_TOKEN"}
    missing = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert missing.returncode == 1 and "no token" in missing.stderr
    as_user = subprocess.run([*command, "--token", owui.user.token], capture_output=True, text=True, env=env)
    assert as_user.returncode == 1 and "deploying needs an admin" in as_user.stderr
    assert owui.user.token not in as_user.stdout + as_user.stderr
    bad = subprocess.run([*command, "--token", "not-a-token"], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "the token was refused" in bad.stderr and "not-a-token" not in bad.stderr


def test_unreachable_server(tmp_path):
    root = make_root(tmp_path, {"id": "dt_unreach", "kind": "pipe"})
    command = [sys.executable, str(ROOT / "build.py"), "--root", str(root), "deploy", "--url", "http://127.0.0.1:9"]
    result = subprocess.run([*command, "--token", "t"], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "cannot reach Open WebUI at http://127.0.0.1:9" in result.stderr


# --- options ------------------------------------------------------------------------------


def test_dry_run_changes_nothing(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_dry_pipe", "kind": "pipe"}, {"id": "dt_dry_tool", "kind": "tool"})
    code, output = deploy(owui, root, valves={"dt_dry_pipe": {"PREFIX": "p"}}, args=["--dry-run", "--share-tools"])
    assert code == 0, output
    assert lines_for(output) == {
        "dt_dry_pipe": "would create, would activate, would update valves",
        "dt_dry_tool": "would create, would share",
    }
    assert "nothing is changed" in output and "2 would change" in output
    assert owui.api("GET", "/api/v1/functions/id/dt_dry_pipe").status_code != 200
    assert owui.api("GET", "/api/v1/tools/id/dt_dry_tool").status_code != 200  # 404; 401 on 0.6.43


def test_share_tools(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_share_tool", "kind": "tool"})
    assert deploy(owui, root)[0] == 0
    assert not user_reads_tool(owui, "dt_share_tool")  # deploy creates tools private on every version
    _, output = deploy(owui, root, args=["--share-tools"])
    assert lines_for(output)["dt_share_tool"] == "unchanged, made shared"
    assert user_reads_tool(owui, "dt_share_tool")
    assert lines_for(deploy(owui, root, args=["--share-tools"])[1])["dt_share_tool"] == "unchanged, shared"


def test_only_selection_templates_and_pipelines(owui, tmp_path):
    root = make_root(
        tmp_path,
        {"id": "dt_only_a", "kind": "pipe"},
        {"id": "dt_only_b", "kind": "action"},
        {"id": "dt_only_tpl", "kind": "pipe", "template": True},
        {"id": "dt_only_line", "kind": "pipeline"},
    )
    code, output = deploy(owui, root, args=["--dry-run"])
    assert set(lines_for(output)) == {"dt_only_a", "dt_only_b", "dt_only_line"}  # templates only via --only
    assert "dt_only_line (pipeline): skipped; a Pipelines-server pipeline" in output
    code, output = deploy(owui, root, "dt_only_tpl", "dt_only_line", args=["--dry-run"])
    assert code == 0 and set(lines_for(output)) == {"dt_only_tpl", "dt_only_line"}
    code, output = deploy(owui, root, "dt_only_zzz")
    assert code == 1 and "--only: no plugin dt_only_zzz" in output


def test_stale_dist_is_refused(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_stale", "kind": "pipe"})
    (root / "dist/functions/dt_stale.py").write_text(template_text("pipe") + "# edited by hand\n")
    code, output = deploy(owui, root)
    assert code == 1 and "does not match manifest.json; run `python3 build.py`" in output


@pytest.mark.parametrize("kind", ["filter", "action", "tool"])
def test_every_kind_reports_its_load_error(owui, tmp_path, kind):
    broken = template_text(kind) + "\nundefined_name_for_deploy_test\n"
    code, output = deploy(owui, make_root(tmp_path, {"id": f"dt_broken_{kind}", "kind": kind, "text": broken}))
    assert code == 1
    state = lines_for(output)[f"dt_broken_{kind}"]
    if LOAD_ERROR_SHOWN:
        assert "name 'undefined_name_for_deploy_test' is not defined" in state
    else:
        folder = FOLDER[kind]
        assert state.startswith(f"FAILED: {hidden_load_error(owui, f'dist/{folder}/dt_broken_{kind}.py')}")


def test_an_update_keeps_who_may_read_a_tool(owui, tmp_path):
    """0.6.43 stores the access of a tool with its text: an update must not make a private tool public."""
    root = make_root(tmp_path / "a", {"id": "dt_keep_tool", "kind": "tool"})
    assert deploy(owui, root)[0] == 0
    text = template_text("tool") + "\n# changed\n"
    code, output = deploy(owui, make_root(tmp_path / "b", {"id": "dt_keep_tool", "kind": "tool", "text": text}))
    assert code == 0, output
    assert lines_for(output)["dt_keep_tool"] == "updated"
    assert not user_reads_tool(owui, "dt_keep_tool")


def test_event_functions_where_the_server_has_them(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_event", "kind": "event"})
    code, output = deploy(owui, root)
    assert code == 0, output
    if versions.HAS_EVENT_FUNCTIONS:
        assert lines_for(output)["dt_event"] == "created, activated"
        assert stored_function(owui, "dt_event")["type"] == "event"
        owui.ok("DELETE", "/api/v1/functions/id/dt_event/delete")  # it would log every server event
    else:
        assert lines_for(output)["dt_event"] == (
            f"skipped; Open WebUI {owui.version_text} has no event functions (0.10.2 has)"
        )
        assert "deployed 0 of 0 plugins" in output
        assert owui.api("GET", "/api/v1/functions/id/dt_event").status_code != 200


def test_a_plugin_made_for_a_newer_version_says_so(owui, tmp_path):
    root = make_root(tmp_path, {"id": "dt_newer_pipe", "kind": "pipe"})
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["plugins"][0]["required_open_webui_version"] = "99.0.0"
    (root / "manifest.json").write_text(json.dumps(manifest))
    code, output = deploy(owui, root)
    assert code == 0, output
    assert f"  it is made for Open WebUI 99.0.0 and later; this server runs {owui.version_text}" in output.splitlines()
