"""Deploy planning and decisions, without a server (the host tier runs the real thing)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import build as build_command
from buildlib import BuildError
from buildlib import deploy as build
from buildlib.deploy import DeployOptions

REPO = Path(__file__).resolve().parents[3]
NEW = build.NEWEST  # the facts of the newest tested Open WebUI

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
    assert build.valve_names(target()) == build.ValveFields(("A", "B"))
    assert build.valve_names(target(text='"""\n"""\nclass Pipe:\n    pass\n')) is None


INHERITED = """\"\"\"
title: T
\"\"\"
from typing import ClassVar

from pydantic import BaseModel, Field


class Common(BaseModel):
    models: list[str] = Field(default_factory=list)
    _cache: dict = {}
    LIMIT: ClassVar[int] = 3


class Shared(Common):
    aggregator_model: str = ""


class Extra(BaseModel):
    shown: bool = True


class Pipe:
    class Valves(Shared, Extra):
        own: int = 1
        models: list[str] = []

    def pipe(self, body):
        return "x"
"""


def test_inherited_valves_are_seen_through_the_files_own_classes(tmp_path):
    fields = build.valve_names(target(text=INHERITED))
    # pydantic's order: the last base's fields first, then the next base's, then the class's own
    assert fields == build.ValveFields(("shown", "models", "aggregator_model", "own"))
    root = write_root(tmp_path, {"id": "p", "text": INHERITED})
    targets, _ = build.select_targets(root, None)
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"p": {"aggregator_model": "m", "models": ["a"], "shown": False, "own": 2}}))
    assert build.load_valves(path, root, targets) == []
    assert targets[0].valves == {"aggregator_model": "m", "models": ["a"], "shown": False, "own": 2}
    path.write_text(json.dumps({"p": {"LIMIT": 1}}))
    with pytest.raises(BuildError, match=r"has no valve LIMIT \(its valves: shown, models, aggregator_model, own\)"):
        build.load_valves(path, root, targets)


def test_the_built_mixture_of_agents_valves_are_accepted(tmp_path):
    # the committed built file: its Valves inherits every field from the inlined MoaValves
    built = (REPO / "dist/functions/mixture_of_agents.py").read_text(encoding="utf-8")
    root = write_root(tmp_path, {"id": "mixture_of_agents", "text": built})
    targets, _ = build.select_targets(root, None)
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"mixture_of_agents": {"models": ["a", "b"], "aggregator_model": "c"}}))
    assert build.load_valves(path, root, targets) == []
    assert targets[0].valves == {"models": ["a", "b"], "aggregator_model": "c"}
    fields = build.valve_names(targets[0])
    assert fields is not None and fields.unresolved == ()
    assert {"models", "aggregator_model", "num_layers", "num_agents_per_layer"} <= set(fields.names)


def test_a_base_the_file_does_not_define_means_cannot_tell(tmp_path):
    text = PIPE.replace("class Valves(BaseModel):", "class Valves(somewhere.Settings):")
    assert build.valve_names(target(text=text)) == build.ValveFields(("A", "B"), ("somewhere.Settings",))
    root = write_root(tmp_path, {"id": "p", "text": text})
    targets, _ = build.select_targets(root, None)
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"p": {"A": 2, "HIDDEN": "x"}}))
    notes = build.load_valves(path, root, targets)
    assert notes == [
        "p: cannot check the valve name(s) HIDDEN: its Valves inherits from somewhere.Settings, "
        "which dist/functions/p.py does not define; Open WebUI checks the values"
    ]
    assert targets[0].valves == {"A": 2, "HIDDEN": "x"}


def test_valves_assigned_from_a_class_and_cycles_end():
    text = "class Base(BaseModel):\n    x: int = 1\n\nclass Pipe:\n    Valves = Base\n"
    assert build.valve_names(target(text=text)) == build.ValveFields(("x",))
    assert build.valve_names(target(text="class Pipe:\n    Valves = Imported\n")) == build.ValveFields(
        (), ("Imported",)
    )
    loop = "class A(B):\n    a: int = 1\n\nclass B(A):\n    b: int = 1\n\n"
    loop += "class Pipe:\n    class Valves(A):\n        pass\n"
    assert set(build.valve_names(target(text=loop)).names) == {"a", "b"}


def test_valves_file_is_checked(tmp_path):
    root = write_root(tmp_path, {"id": "p"})
    targets, _ = build.select_targets(root, None)
    good = tmp_path / "v.json"
    good.write_text(json.dumps({"p": {"A": 2}}))
    assert build.load_valves(good, root, targets) == []
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
    assert build.deploy_function(api, NEW, target(valves={"A": 2}), stored, dry_run=False) == ["unchanged", "active"]
    assert api.log == []


def test_new_function_is_created_then_activated_and_made_global():
    api = FakeApi(
        {
            ("POST", "/api/v1/functions/create"): {"id": "p", "is_active": False, "is_global": False},
            ("POST", "/api/v1/functions/id/p/toggle"): {"is_active": True, "is_global": False},
            ("POST", "/api/v1/functions/id/p/toggle/global"): {"is_active": True, "is_global": True},
        }
    )
    words = build.deploy_function(api, NEW, target(kind="filter", make_global=True), None, dry_run=False)
    assert words == ["created", "activated", "made global"]
    assert api.writes() == [
        ("POST", "/api/v1/functions/create"),
        ("POST", "/api/v1/functions/id/p/toggle"),
        ("POST", "/api/v1/functions/id/p/toggle/global"),
    ]


def test_dry_run_writes_nothing():
    api = FakeApi({})
    words = build.deploy_function(
        api, NEW, target(make_global=True, kind="action", valves={"A": 1}), None, dry_run=True
    )
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
        build.create_plugin(api, NEW, target())
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
    assert build.create_plugin(api, NEW, target(kind="tool"))["content"] == PIPE


def test_other_create_errors_are_shown_as_they_are():
    taken = build.ApiError("POST", "/api/v1/functions/create", 400, "Uh-oh! This id is already registered.")
    api = FakeApi({("POST", "/api/v1/functions/create"): taken})
    with pytest.raises(build.ApiError, match="already registered"):
        build.create_plugin(api, NEW, target())


def test_tool_sharing_is_idempotent():
    public = {"principal_type": "user", "principal_id": "*", "permission": "read", "id": "g1"}
    stored = {"content": PIPE, "name": "T", "meta": {"description": "d"}, "access_grants": [public]}
    api = FakeApi({("GET", "/api/v1/tools/id/p"): stored})
    assert build.deploy_tool(api, NEW, target(kind="tool"), share=True, dry_run=False) == ["unchanged", "shared"]
    assert api.writes() == []
    stored["access_grants"] = []
    api = FakeApi({("GET", "/api/v1/tools/id/p"): stored, ("POST", "/api/v1/tools/id/p/access/update"): {}})
    assert build.deploy_tool(api, NEW, target(kind="tool"), share=True, dry_run=False) == ["unchanged", "made shared"]
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
    assert build.valve_names(event) == build.ValveFields(("PREFIXES",))
    hidden = build.ApiError("POST", "/api/v1/functions/create", 400, "[ERROR: Error creating function]")
    creates = iter([hidden, {"id": "p"}])
    api = FakeApi(
        {
            ("POST", "/api/v1/functions/create"): lambda body: next(creates),
            ("POST", "/api/v1/functions/id/p/update"): {"id": "p"},
        }
    )
    build.create_plugin(api, NEW, event)
    assert "class Event:" in api.log[1][2]["content"]


def test_deploy_one_dispatches_by_host():
    api = FakeApi({("GET", "/api/v1/tools/id/p"): {"content": PIPE, "name": "T", "meta": {"description": "d"}}})
    options = DeployOptions("http://x", "t")
    assert build.deploy_one(api, NEW, target(kind="tool"), {}, options) == ["unchanged"]
    stored = {"content": PIPE, "name": "T", "meta": {"description": "d"}, "is_active": True}
    assert build.deploy_one(FakeApi({}), NEW, target(), {"p": stored}, options) == ["unchanged", "active"]
    with pytest.raises(BuildError, match="cannot be deployed"):
        build.deploy_one(FakeApi({}), NEW, target(kind="pipeline"), {}, options)


# --- sharing the pipes' models ---------------------------------------------------------------

BASE_MODELS = {
    "data": [
        {"id": "p", "name": "T", "pipe": {"type": "pipe"}},
        {"id": "m.one", "name": "M: One", "pipe": {"type": "pipe"}},
        {"id": "m.two", "name": "M: Two", "pipe": {"type": "pipe"}},
        {"id": "mx", "name": "not m's", "pipe": {"type": "pipe"}},
        {"id": "m.conn", "name": "a connection model, not a pipe", "owned_by": "openai"},
    ]
}
GROUPS = [{"id": "g-1", "name": "Staff"}, {"id": "g-2", "name": "Lab"}, {"id": "g-3", "name": "Lab"}]


class Entries:
    """The server's workspace model entries: GET /api/v1/models/base and the access endpoint."""

    def __init__(self, *entries: dict) -> None:
        self.by_id = {e["id"]: e for e in entries}
        self.forms: list[dict] = []

    def handlers(self) -> dict:
        return {
            ("GET", "/api/models/base"): BASE_MODELS,
            ("GET", "/api/v1/models/base"): lambda body: list(self.by_id.values()),
            ("POST", "/api/v1/models/model/access/update"): self.update,
            ("GET", "/api/v1/groups/"): GROUPS,
        }

    def update(self, form: dict) -> dict:
        self.forms.append(form)
        grants = [{**g, "id": g.get("id") or f"new-{len(self.forms)}"} for g in form["access_grants"]]
        entry = {**self.by_id.get(form["id"], {"id": form["id"], "name": form["name"]}), "access_grants": grants}
        self.by_id[form["id"]] = entry
        return entry


def sharing(api, **options) -> build.ModelSharing:
    return build.ModelSharing.from_options(api, DeployOptions("http://x", "t", **options))


def test_no_sharing_option_means_no_sharing():
    assert sharing(FakeApi({})) is None
    assert sharing(FakeApi({}), share_models_with=[" , "]) is None


def test_every_sub_model_of_a_manifold_is_shared_and_a_second_run_changes_nothing():
    entries = Entries()
    api = FakeApi(entries.handlers())
    share = sharing(api, share_models=True)
    assert share.share(api, target(id="m"), changed=True, dry_run=False) == (
        "made shared",
        "  readable by all users: m.one, m.two",
    )
    assert [f["id"] for f in entries.forms] == ["m.one", "m.two"]
    assert entries.forms[0] == {"id": "m.one", "name": "M: One", "access_grants": [build.PUBLIC_READ]}
    assert share.share(api, target(id="p"), changed=False, dry_run=False)[0] == "made shared"
    again_api = FakeApi(entries.handlers())
    again = sharing(again_api, share_models=True)
    for plugin in ("m", "p"):
        assert again.share(again_api, target(id=plugin), changed=False, dry_run=False) == ("shared", None)
    assert again_api.writes() == []
    # one read of each list for the whole unchanged run
    assert [p for m, p, _ in again_api.log] == ["/api/models/base", "/api/v1/models/base"]


def test_grants_already_there_are_kept():
    theirs = {"id": "keep", "principal_type": "user", "principal_id": "u-7", "permission": "write"}
    entries = Entries({"id": "p", "name": "Renamed by the admin", "access_grants": [theirs]})
    api = FakeApi(entries.handlers())
    sharing(api, share_models=True).share(api, target(), changed=False, dry_run=False)
    kept = {k: theirs[k] for k in build.GRANT_KEYS}  # the server gives each grant a new id anyway
    assert entries.forms == [
        {"id": "p", "name": "Renamed by the admin", "access_grants": [kept, build.PUBLIC_READ]},
    ]


def test_groups_are_resolved_by_name_or_id():
    entries = Entries()
    api = FakeApi(entries.handlers())
    share = sharing(api, share_models_with=["Staff,g-3", "Staff"])
    assert share.audience == "groups Staff, g-3, Staff"
    assert [g["principal_id"] for g in share.grants] == ["g-1", "g-3"]
    word, detail = share.share(api, target(), changed=False, dry_run=False)
    assert (word, detail) == ("made shared", "  readable by groups Staff, g-3, Staff: p")
    assert entries.forms[0]["access_grants"] == [
        {"principal_type": "group", "principal_id": "g-1", "permission": "read"},
        {"principal_type": "group", "principal_id": "g-3", "permission": "read"},
    ]
    both = sharing(FakeApi(entries.handlers()), share_models=True, share_models_with=["Staff"])
    assert both.audience == "all users and group Staff" and both.grants[0] == build.PUBLIC_READ


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("Nobody", r"no group named 'Nobody' \(groups: Lab, Lab, Staff\)"),
        ("Lab", r"2 groups are named 'Lab'; pass the id of the one you mean: g-2, g-3"),
    ],
)
def test_unknown_or_ambiguous_group_is_an_error(group, message):
    with pytest.raises(BuildError, match=message):
        sharing(FakeApi(Entries().handlers()), share_models_with=[group])


def test_dry_run_shares_nothing():
    entries = Entries()
    api = FakeApi(entries.handlers())
    share = sharing(api, share_models=True)
    assert share.share(api, target(id="m"), changed=False, dry_run=True) == (
        "made shared",
        "  would be readable by all users: m.one, m.two",
    )
    new = share.share(api, target(id="brand_new"), changed=True, dry_run=True)
    assert new == ("made shared", "  its models would be readable by all users once it is installed")
    assert api.writes() == []


def test_a_pipe_without_models_fails_clearly():
    api = FakeApi(Entries().handlers())
    with pytest.raises(BuildError, match="Open WebUI lists no model for it"):
        sharing(api, share_models=True).share(api, target(id="broken"), changed=True, dry_run=False)


def test_deploy_shares_pipes_only_and_says_so(tmp_path, capsys, monkeypatch):
    root = write_root(tmp_path, {"id": "p"}, {"id": "f", "kind": "filter"})
    stored = {"content": PIPE, "meta": {"description": "d"}, "is_active": True}
    entries = Entries()
    api = FakeApi(
        {
            **entries.handlers(),
            ("GET", "/api/v1/auths/"): {"role": "admin"},
            ("GET", "/api/version"): {"version": "0.12.4"},
            ("GET", "/api/v1/functions/export?include_valves=true"): [{**stored, "id": i, "name": i} for i in "pf"],
            ("GET", "/api/models"): {"data": []},
        }
    )
    api.url = "http://x"
    monkeypatch.setattr(build, "OpenWebUIApi", lambda *a, **k: api)
    assert build.deploy(root, DeployOptions("http://x", "t", share_models=True)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "Open WebUI 0.12.4 at http://x",
        "p (pipe): unchanged, active, made shared",
        "  readable by all users: p",
        "f (filter): unchanged, active",
    ]
    assert "stay private until a deploy shares them" in out[4]
    assert "1 changed, 0 failed" in out[-1]
    assert [f["id"] for f in entries.forms] == ["p"]
    assert build.deploy(root, DeployOptions("http://x", "t", share_models=True, dry_run=True)) == 0
    assert "p (pipe): unchanged, active, shared" in capsys.readouterr().out


def test_the_command_line_options():
    args = build_command.parser().parse_args(
        ["deploy", "--url", "u", "--share-models", "--share-models-with", "a,b", "--share-models-with", "c"]
    )
    assert args.share_models is True and args.share_models_with == ["a,b", "c"]
    args = build_command.parser().parse_args(["deploy", "--url", "u"])
    assert args.share_models is False and args.share_models_with is None


# --- per-version facts -----------------------------------------------------------------------

OLD, V08, V010 = build.Host.of("0.6.43"), build.Host.of("0.8.12"), build.Host.of("0.10.2")


@pytest.mark.parametrize(
    ("text", "key"),
    [("0.10.2", (0, 10, 2)), ("v0.6.43", (0, 6, 43)), ("0.12.4-dev", (0, 12, 4)), ("1.0rc1", (1, 0)), ("", ())],
)
def test_version_key(text, key):
    assert build.version_key(text) == key


@pytest.mark.parametrize(
    ("version", "row"),
    [
        ("0.6.43", "0.6.43"),
        ("0.7.2", "0.6.43"),  # between tested versions: the newest tested one not newer
        ("0.8.12", "0.8.12"),
        ("0.9.5", "0.8.12"),
        ("0.10.2", "0.10.2"),
        ("0.12.4", "0.12.4"),
        ("0.13.0", "0.12.4"),
        ("0.5.0", "0.6.43"),  # older than every row: the oldest rules, and a note says so
        ("", "0.12.4"),  # the server did not say: the newest rules, and a note says so
    ],
)
def test_facts_for_a_version(version, row):
    assert build.facts_for(version).version == row


def test_the_table_is_ordered_and_says_what_each_version_does():
    keys = [build.version_key(f.version) for f in build.HOST_FACTS]
    assert keys == sorted(keys)
    old, v08, v010, v012 = build.HOST_FACTS
    assert old.access is build.CONTROL and old.missing_tool_status == 401
    assert all(f.access is build.GRANTS and f.missing_tool_status == 404 for f in (v08, v010, v012))
    assert [(f.create_error_shown, f.update_error_shown) for f in build.HOST_FACTS] == [
        (True, True),
        (True, True),
        (False, False),
        (False, True),
    ]
    assert [f.event_functions for f in build.HOST_FACTS] == [False, False, True, True]


def test_host_notes():
    assert build.Host.of("0.8.12").notes() == []
    assert build.Host.of("0.9.1").notes() == []
    assert build.Host.of("0.5.9").notes() == [
        "Open WebUI 0.5.9 is older than 0.6.43, the oldest version deploy is tested with"
    ]
    assert "did not say its version" in build.Host.of("").notes()[0]
    assert build.Host.of("").name == "Open WebUI (version unknown)"


def test_the_version_comes_from_api_version():
    assert build.detect_host(FakeApi({("GET", "/api/version"): {"version": "0.8.12"}})).facts.version == "0.8.12"
    missing = build.ApiError("GET", "/api/version", 404, "Not Found")
    assert build.detect_host(FakeApi({("GET", "/api/version"): missing})) == build.Host("", build.HOST_FACTS[-1])


def test_event_functions_are_skipped_where_the_server_has_none():
    event = target(id="ev", kind="event")
    kept, notes = build.installable(V08, [event, target()])
    assert [t.id for t in kept] == ["p"]
    assert notes == ["ev (event): skipped; Open WebUI 0.8.12 has no event functions (0.10.2 has)"]
    assert build.installable(V010, [event])[0] == [event]


def test_older_than_the_plugin_requires():
    assert V08.older_than("0.10.2") and not V08.older_than("0.8.12") and not V08.older_than("")
    assert not build.Host.of("").older_than("0.12.4")


def test_a_load_error_shown_on_create_is_reported_without_a_placeholder():
    # 0.6.43 and 0.8.12 pass the loader's exception on
    shown = build.ApiError("POST", "/api/v1/functions/create", 400, "[ERROR: No module named 'zz']")
    api = FakeApi({("POST", "/api/v1/functions/create"): shown})
    with pytest.raises(BuildError, match=r"^Open WebUI cannot load dist/functions/p\.py: No module named 'zz'$"):
        build.create_plugin(api, V08, target())
    assert len(api.log) == 1


def test_where_create_and_update_both_hide_the_error_deploy_says_the_log_has_it():
    # 0.10.2: the placeholder trick would learn nothing
    hidden = build.ApiError("POST", "/api/v1/functions/create", 400, "[ERROR: Error creating function]")
    api = FakeApi({("POST", "/api/v1/functions/create"): hidden})
    with pytest.raises(BuildError) as caught:
        build.create_plugin(api, V010, target())
    assert str(caught.value) == (
        "Open WebUI 0.10.2 cannot load dist/functions/p.py and does not say why "
        "(it answers only 'Error creating function'); the server's log has the reason"
    )
    assert len(api.log) == 1  # no placeholder was made


def test_a_hidden_update_error_keeps_the_installed_version_and_points_at_the_log():
    stored = {"content": "old", "name": "T", "meta": {"description": "d"}}
    failed = build.ApiError("POST", "u", 400, "[ERROR: Error updating function]")
    api = FakeApi({("POST", "/api/v1/functions/id/p/update"): failed})
    with pytest.raises(BuildError, match=r"0\.10\.2 cannot load .* the server's log has the reason; the installed"):
        build.deploy_content(api, V010, target(), stored, dry_run=False)
    real = build.ApiError("POST", "u", 400, "dt load failure")
    api = FakeApi({("POST", "/api/v1/functions/id/p/update"): real})
    with pytest.raises(BuildError, match=r"^Open WebUI cannot load dist/functions/p\.py: dt load failure; the inst"):
        build.deploy_content(api, NEW, target(), stored, dry_run=False)


# --- 0.6.43: access_control dicts ----------------------------------------------------------------


def control(read_groups=(), read_users=(), write_groups=(), write_users=()) -> dict:
    return {
        "read": {"group_ids": list(read_groups), "user_ids": list(read_users)},
        "write": {"group_ids": list(write_groups), "user_ids": list(write_users)},
    }


def group(i: str, permission: str = "read") -> dict:
    return {"principal_type": "group", "principal_id": i, "permission": permission}


def test_access_control_as_grants_and_back():
    c = build.CONTROL
    assert c.grants(None) == [build.PUBLIC_READ]
    assert c.grants({}) == []
    value = control(read_groups=["g"], read_users=["u"], write_users=["w"])
    grants = c.grants(value)
    assert grants == [
        group("g"),
        {"principal_type": "user", "principal_id": "u", "permission": "read"},
        {"principal_type": "user", "principal_id": "w", "permission": "write"},
    ]
    assert c.control(grants) == value
    assert c.control([build.PUBLIC_READ, group("g")]) is None  # readable by all covers the group


@pytest.mark.parametrize(
    ("stored", "wanted", "expected"),
    [
        ({}, [build.PUBLIC_READ], (True, None)),
        (None, [build.PUBLIC_READ], (False, None)),  # already public
        (None, [group("g")], (False, None)),  # public already lets the group read
        ({}, [group("g")], (True, control(read_groups=["g"]))),
        ({"read": {"group_ids": ["g"]}}, [group("g")], (False, control(read_groups=["g"]))),  # a short form
        (control(read_users=["u"]), [group("g")], (True, control(read_groups=["g"], read_users=["u"]))),
    ],
)
def test_access_control_plan(stored, wanted, expected):
    assert build.CONTROL.plan({"access_control": stored}, wanted) == expected


def test_no_entry_yet_means_one_is_made():
    assert build.CONTROL.plan(None, [build.PUBLIC_READ]) == (True, None)
    assert build.CONTROL.plan(None, [group("g")]) == (True, control(read_groups=["g"]))


def test_public_read_cannot_keep_write_grants_on_0_6():
    with pytest.raises(BuildError, match=r"would drop the 1 write grant\(s\) it has; share it with groups"):
        build.CONTROL.plan({"access_control": control(write_groups=["g"])}, [build.PUBLIC_READ])


TOOL = PIPE.replace("class Pipe:", "class Tools:")


def test_0_6_tools_are_created_private_and_updates_keep_their_access():
    created = []
    api = FakeApi(
        {
            ("GET", "/api/v1/tools/id/p"): build.ApiError("GET", "/api/v1/tools/id/p", 401, "not found"),
            ("POST", "/api/v1/tools/create"): lambda body: created.append(body) or {**body, "id": "p"},
        }
    )
    assert build.deploy_tool(api, OLD, target(kind="tool", text=TOOL), share=False, dry_run=False) == ["created"]
    assert created[0]["access_control"] == {}
    stored = {"content": "old", "name": "T", "meta": {"description": "d"}, "access_control": control(read_users=["u"])}
    api = FakeApi(
        {("GET", "/api/v1/tools/id/p"): stored, ("POST", "/api/v1/tools/id/p/update"): lambda body: {**stored, **body}}
    )
    assert build.deploy_tool(api, OLD, target(kind="tool", text=TOOL), share=False, dry_run=False) == ["updated"]
    assert api.log[-1][2]["access_control"] == control(read_users=["u"])  # a form without it would make it public
    # on the newer versions a 401 is not "missing"
    api = FakeApi({("GET", "/api/v1/tools/id/p"): build.ApiError("GET", "/api/v1/tools/id/p", 401, "no")})
    with pytest.raises(build.ApiError):
        build.deploy_tool(api, NEW, target(kind="tool"), share=False, dry_run=False)


def test_0_6_share_tools_sets_access_control_through_the_update_form():
    stored = {"content": PIPE, "name": "T", "meta": {"description": "d"}, "access_control": {}}
    api = FakeApi({("GET", "/api/v1/tools/id/p"): stored, ("POST", "/api/v1/tools/id/p/update"): {}})
    assert build.deploy_tool(api, OLD, target(kind="tool"), share=True, dry_run=False) == ["unchanged", "made shared"]
    form = api.log[-1][2]
    assert form["access_control"] is None and form["content"] == PIPE and form["id"] == "p"
    stored["access_control"] = None
    api = FakeApi({("GET", "/api/v1/tools/id/p"): stored})
    assert build.deploy_tool(api, OLD, target(kind="tool"), share=True, dry_run=False) == ["unchanged", "shared"]
    assert api.writes() == []


def test_0_6_dry_run_of_a_new_tool_would_share_it():
    api = FakeApi({("GET", "/api/v1/tools/id/p"): build.ApiError("GET", "x", 401, "not found")})
    words = build.deploy_tool(api, OLD, target(kind="tool"), share=True, dry_run=True)
    assert words == ["created", "made shared"] and api.writes() == []


class OldEntries(Entries):
    """0.6.43's workspace model entries: access_control, no access endpoint."""

    def handlers(self) -> dict:
        return {
            ("GET", "/api/models/base"): BASE_MODELS,
            ("GET", "/api/v1/models/base"): lambda body: list(self.by_id.values()),
            ("POST", "/api/v1/models/create"): self.create,
            ("POST", "/api/v1/models/model/update"): self.update,
            ("GET", "/api/v1/groups/"): GROUPS,
        }

    def create(self, form: dict) -> dict:
        assert form["id"] not in self.by_id
        return self.update(form)

    def update(self, form: dict) -> dict:
        self.forms.append(form)
        self.by_id[form["id"]] = {"is_active": True, "base_model_id": None, "user_id": "admin", **form}
        return self.by_id[form["id"]]


def test_0_6_models_are_shared_through_create_then_update_and_a_second_run_changes_nothing():
    entries = OldEntries()
    api = FakeApi(entries.handlers())
    share = build.ModelSharing.from_options(api, DeployOptions("http://x", "t", share_models_with=["Staff"]), OLD)
    assert share.share(api, target(id="m"), changed=True, dry_run=False) == (
        "made shared",
        "  readable by group Staff: m.one, m.two",
    )
    assert api.writes() == [("POST", "/api/v1/models/create")] * 2
    assert entries.forms[0] == {
        "id": "m.one",
        "name": "M: One",
        "meta": {},
        "params": {},
        "access_control": control(read_groups=["g-1"]),
    }
    # all users as well: the existing entries are updated whole, access_control None = every user reads
    api = FakeApi(entries.handlers())
    options = DeployOptions("http://x", "t", share_models=True, share_models_with=["Staff"])
    share = build.ModelSharing.from_options(api, options, OLD)
    assert share.share(api, target(id="m"), changed=False, dry_run=False)[0] == "made shared"
    assert api.writes() == [("POST", "/api/v1/models/model/update")] * 2
    assert entries.forms[-1]["access_control"] is None and entries.forms[-1]["is_active"] is True
    api = FakeApi(entries.handlers())
    share = build.ModelSharing.from_options(api, options, OLD)
    assert share.share(api, target(id="m"), changed=False, dry_run=False) == ("shared", None)
    assert api.writes() == []


def test_deploy_reports_the_version_skips_events_and_notes_the_required_version(tmp_path, capsys, monkeypatch):
    root = write_root(tmp_path, {"id": "p"}, {"id": "ev", "kind": "event", "folder": "events"})
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["plugins"][0]["required_open_webui_version"] = "0.10.2"
    (root / "manifest.json").write_text(json.dumps(manifest))
    stored = {"content": PIPE, "meta": {"description": "d"}, "is_active": True, "id": "p", "name": "p"}
    api = FakeApi(
        {
            ("GET", "/api/v1/auths/"): {"role": "admin"},
            ("GET", "/api/version"): {"version": "0.8.12"},
            ("GET", "/api/v1/functions/export?include_valves=true"): [stored],
            ("GET", "/api/models"): {"data": []},
        }
    )
    api.url = "http://x"
    monkeypatch.setattr(build, "OpenWebUIApi", lambda *a, **k: api)
    assert build.deploy(root, DeployOptions("http://x", "t", only=["p", "ev"])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "Open WebUI 0.8.12 at http://x",
        "ev (event): skipped; Open WebUI 0.8.12 has no event functions (0.10.2 has)",
        "p (pipe): unchanged, active",
        "  it is made for Open WebUI 0.10.2 and later; this server runs 0.8.12",
    ]
    assert "deployed 1 of 1 plugins" in out[-1]
