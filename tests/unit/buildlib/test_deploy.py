"""Deploy planning and decisions, without a server (the host tier runs the real thing)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from buildlib import BuildError
from buildlib import deploy as build
from buildlib.deploy import DeployOptions

PIPE = """\"\"\"
title: T
\"\"\"
from pydantic import BaseModel


class Pipe:
    class Valves(BaseModel):
        A: int = 1
        B: str = ""

    def pipe(self, body):
        return "x"
"""


def write_root(path: Path, *entries: dict) -> Path:
    plugins = []
    for e in entries:
        text = e.get("text", PIPE)
        folder = e.get("folder", "functions")
        dist = f"dist/{folder}/{e['id']}.py"
        (path / dist).parent.mkdir(parents=True, exist_ok=True)
        (path / dist).write_text(text)
        plugins.append(
            {
                "id": e["id"],
                "kind": e.get("kind", "pipe"),
                "title": e.get("title", e["id"]),
                "description": "d",
                "global": e.get("global", False),
                "source": f"plugins/{folder}/{e['id']}.py",
                "dist": dist,
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
        )
    (path / "manifest.json").write_text(json.dumps({"plugins": plugins}))
    return path


class FakeApi:
    """Scripted stand-in for OpenWebUIApi: handlers keyed by (method, path) return or raise."""

    def __init__(self, handlers: dict) -> None:
        self.handlers = handlers
        self.log: list[tuple[str, str, object]] = []

    def call(self, method: str, path: str, body: object = None) -> object:
        self.log.append((method, path, body))
        handler = self.handlers.get((method, path))
        if handler is None:
            raise AssertionError(f"unexpected call {method} {path}")
        result = handler(body) if callable(handler) else handler
        if isinstance(result, Exception):
            raise result
        return result

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.log if m != "GET"]


def target(**changes) -> build.DeployTarget:
    fields = {
        "id": "p",
        "kind": "pipe",
        "title": "T",
        "description": "d",
        "make_global": False,
        "text": PIPE,
        "dist": "dist/functions/p.py",
    }
    return build.DeployTarget(**{**fields, **changes})


def test_stored_content_is_what_open_webui_rewrites_it_to():
    text = "from utils.x import y\nfrom configparser import C\nfrom mainly import m\nfrom appsy import a\n"
    assert build.open_webui_stored(text) == (
        "from open_webui.utils.x import y\nfrom open_webui.configparser import C\n"
        "from open_webui.mainly import m\nfrom open_webui.appsy import a\n"
    )
    assert build.open_webui_stored(build.open_webui_stored(text)) == build.open_webui_stored(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"detail": "No module named x"}', "No module named x"),
        (b'{"detail": [{"loc": ["body", "meta"], "msg": "Field required"}]}', "body.meta: Field required"),
        (b'{"detail": {"a": 1}}', '{"a": 1}'),
        (b"Internal Server Error", "Internal Server Error"),
        (b"", "(empty body)"),
    ],
)
def test_error_detail(raw, expected):
    assert build.error_detail(raw) == expected


def test_default_selection_skips_templates_and_pipelines(tmp_path):
    root = write_root(
        tmp_path,
        {"id": "a"},
        {"id": "tpl", "folder": "templates"},
        {"id": "line", "kind": "pipeline", "folder": "pipelines"},
        {"id": "t", "kind": "tool", "folder": "tools"},
    )
    targets, notes = build.select_targets(root, None)
    assert [(t.id, t.kind, t.api) for t in targets] == [("a", "pipe", "functions"), ("t", "tool", "tools")]
    assert len(notes) == 1 and notes[0].startswith("line (pipeline): skipped")
    targets, notes = build.select_targets(root, ["tpl", "a", "tpl"])
    assert [t.id for t in targets] == ["tpl", "a"]


def test_shared_id_across_kinds_deploys_the_function_and_notes_the_pipeline(tmp_path):
    root = write_root(tmp_path, {"id": "moa"}, {"id": "moa", "kind": "pipeline", "folder": "pipelines"})
    targets, notes = build.select_targets(root, ["moa"])
    assert [t.kind for t in targets] == ["pipe"] and "moa (pipeline): skipped" in notes[0]


def test_selection_errors(tmp_path):
    with pytest.raises(BuildError, match=r"no manifest\.json"):
        build.select_targets(tmp_path, None)
    root = write_root(tmp_path, {"id": "a"})
    with pytest.raises(BuildError, match=r"--only: no plugin zz in manifest\.json"):
        build.select_targets(root, ["zz"])
    (root / "dist/functions/a.py").write_text(PIPE + "# changed\n")
    with pytest.raises(BuildError, match=r"does not match manifest\.json"):
        build.select_targets(root, None)
    (root / "dist/functions/a.py").unlink()
    with pytest.raises(BuildError, match="is missing"):
        build.select_targets(root, None)


def test_global_applies_to_filters_and_actions_only(tmp_path):
    root = write_root(tmp_path, {"id": "p", "global": True}, {"id": "f", "kind": "filter", "global": True})
    targets, _ = build.select_targets(root, None)
    assert {t.id: t.make_global for t in targets} == {"p": False, "f": True}


def test_valve_names_come_from_the_built_text():
    assert build.valve_names(target()) == ["A", "B"]
    assert build.valve_names(target(text='"""\n"""\nclass Pipe:\n    pass\n')) is None


def test_valves_file_is_checked(tmp_path):
    root = write_root(tmp_path, {"id": "p"})
    targets, _ = build.select_targets(root, None)
    good = tmp_path / "v.json"
    good.write_text(json.dumps({"p": {"A": 2}}))
    build.load_valves(good, root, targets)
    assert targets[0].valves == {"A": 2}
    for content, message in [
        ({"p": {"C": 1}}, "p has no valve C \\(its valves: A, B\\)"),
        ({"q": {}}, "no plugin q"),
        ({"p": 1}, "expected"),
    ]:
        good.write_text(json.dumps(content))
        with pytest.raises(BuildError, match=message):
            build.load_valves(good, root, targets)
    good.write_text("{not json")
    with pytest.raises(BuildError, match="--valves"):
        build.load_valves(good, root, targets)


def test_merged_valves_keep_stored_ones_and_null_resets():
    assert build.merged_valves({"A": 1, "B": "x"}, {"B": "y"}) == {"A": 1, "B": "y"}
    assert build.merged_valves({"A": 1, "B": "x"}, {"B": None}) == {"A": 1}
    assert build.merged_valves(None, {"A": 3}) == {"A": 3}


def test_unchanged_function_makes_no_writes():
    stored = {"content": PIPE, "name": "T", "meta": {"description": "d"}, "is_active": True, "valves": {"A": 2}}
    api = FakeApi({})
    assert build.deploy_function(api, target(valves={"A": 2}), stored, dry_run=False) == ["unchanged", "active"]
    assert api.log == []


def test_new_function_is_created_then_activated_and_made_global():
    api = FakeApi(
        {
            ("POST", "/api/v1/functions/create"): {"id": "p", "is_active": False, "is_global": False},
            ("POST", "/api/v1/functions/id/p/toggle"): {"is_active": True, "is_global": False},
            ("POST", "/api/v1/functions/id/p/toggle/global"): {"is_active": True, "is_global": True},
        }
    )
    words = build.deploy_function(api, target(kind="filter", make_global=True), None, dry_run=False)
    assert words == ["created", "activated", "made global"]
    assert api.writes() == [
        ("POST", "/api/v1/functions/create"),
        ("POST", "/api/v1/functions/id/p/toggle"),
        ("POST", "/api/v1/functions/id/p/toggle/global"),
    ]


def test_dry_run_writes_nothing():
    api = FakeApi({})
    words = build.deploy_function(api, target(make_global=True, kind="action", valves={"A": 1}), None, dry_run=True)
    assert words == ["created", "activated", "made global", "valves updated"]
    assert api.log == []


def test_hidden_create_error_is_read_through_a_placeholder_update():
    hidden = build.ApiError("POST", "/api/v1/functions/create", 400, "[ERROR: Error creating function]")
    creates = iter([hidden, {"id": "p"}])
    api = FakeApi(
        {
            ("POST", "/api/v1/functions/create"): lambda body: next(creates),
            ("POST", "/api/v1/functions/id/p/update"): build.ApiError("POST", "u", 400, "No module named 'zz'"),
            ("DELETE", "/api/v1/functions/id/p/delete"): True,
        }
    )
    with pytest.raises(BuildError, match=r"cannot load dist/functions/p\.py: No module named 'zz'"):
        build.create_plugin(api, target())
    placeholder = api.log[1][2]
    assert "class Pipe" in placeholder["content"] and placeholder["id"] == "p"
    assert api.writes()[-1] == ("DELETE", "/api/v1/functions/id/p/delete")


def test_create_that_fails_only_once_ends_up_created():
    hidden = build.ApiError("POST", "/api/v1/tools/create", 400, "[ERROR: Error creating tool]")
    creates = iter([hidden, {"id": "p"}])
    api = FakeApi(
        {
            ("POST", "/api/v1/tools/create"): lambda body: next(creates),
            ("POST", "/api/v1/tools/id/p/update"): {"id": "p", "content": PIPE},
        }
    )
    assert build.create_plugin(api, target(kind="tool"))["content"] == PIPE


def test_other_create_errors_are_shown_as_they_are():
    taken = build.ApiError("POST", "/api/v1/functions/create", 400, "Uh-oh! This id is already registered.")
    api = FakeApi({("POST", "/api/v1/functions/create"): taken})
    with pytest.raises(build.ApiError, match="already registered"):
        build.create_plugin(api, target())


def test_tool_sharing_is_idempotent():
    public = {"principal_type": "user", "principal_id": "*", "permission": "read", "id": "g1"}
    stored = {"content": PIPE, "name": "T", "meta": {"description": "d"}, "access_grants": [public]}
    api = FakeApi({("GET", "/api/v1/tools/id/p"): stored})
    assert build.deploy_tool(api, target(kind="tool"), share=True, dry_run=False) == ["unchanged", "shared"]
    assert api.writes() == []
    stored["access_grants"] = []
    api = FakeApi({("GET", "/api/v1/tools/id/p"): stored, ("POST", "/api/v1/tools/id/p/access/update"): {}})
    assert build.deploy_tool(api, target(kind="tool"), share=True, dry_run=False) == ["unchanged", "made shared"]
    assert api.log[-1][2] == {"access_grants": [build.PUBLIC_READ]}


def test_token_is_required_and_never_echoed(tmp_path, capsys):
    root = write_root(tmp_path, {"id": "a"})
    with pytest.raises(BuildError, match="no token"):
        build.deploy(root, DeployOptions("http://127.0.0.1:9", None))
    secret = "sk-very-secret-token"
    with pytest.raises(BuildError, match="cannot reach Open WebUI") as caught:
        build.deploy(root, DeployOptions("http://127.0.0.1:9", secret))
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err + str(caught.value)


def test_event_functions_are_deployed_as_functions_and_never_global(tmp_path):
    root = write_root(tmp_path, {"id": "ev", "kind": "event", "folder": "events", "global": True})
    targets, notes = build.select_targets(root, None)
    assert [(t.id, t.api, t.make_global) for t in targets] == [("ev", "functions", False)] and notes == []
    event = target(kind="event", text='"""\n"""\nclass Event:\n    class Valves:\n        PREFIXES: str = ""\n')
    assert build.valve_names(event) == ["PREFIXES"]
    hidden = build.ApiError("POST", "/api/v1/functions/create", 400, "[ERROR: Error creating function]")
    creates = iter([hidden, {"id": "p"}])
    api = FakeApi(
        {
            ("POST", "/api/v1/functions/create"): lambda body: next(creates),
            ("POST", "/api/v1/functions/id/p/update"): {"id": "p"},
        }
    )
    build.create_plugin(api, event)
    assert "class Event:" in api.log[1][2]["content"]


def test_deploy_one_dispatches_by_host():
    api = FakeApi({("GET", "/api/v1/tools/id/p"): {"content": PIPE, "name": "T", "meta": {"description": "d"}}})
    options = DeployOptions("http://x", "t")
    assert build.deploy_one(api, target(kind="tool"), {}, options) == ["unchanged"]
    stored = {"content": PIPE, "name": "T", "meta": {"description": "d"}, "is_active": True}
    assert build.deploy_one(FakeApi({}), target(), {"p": stored}, options) == ["unchanged", "active"]
    with pytest.raises(BuildError, match="cannot be deployed"):
        build.deploy_one(FakeApi({}), target(kind="pipeline"), {}, options)
