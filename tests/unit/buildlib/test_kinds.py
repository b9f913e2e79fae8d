"""The kind table and what is read from it: folders, classes, hosts, dist layout."""

import ast
import dataclasses

import pytest

from buildlib import ROOT, BuildError, kinds
from tests.unit.buildlib.conftest import build_fails, plugin, read, run, write


def test_every_kind_has_a_template_a_distinct_class_and_a_folder():
    assert [k.name for k in kinds.KINDS] == ["pipe", "filter", "action", "event", "tool", "pipeline", "hayhooks"]
    assert len({k.cls for k in kinds.KINDS}) == len(kinds.KINDS)
    assert kinds.RESERVED == ("Pipe", "Filter", "Action", "Event", "Tools", "Pipeline", "PipelineWrapper")
    for k in kinds.KINDS:
        assert (ROOT / "plugins/templates" / f"{k.template}.py").is_file(), k.name
        assert f"class {k.cls}" in k.placeholder
        ast.parse(k.placeholder)
        assert k.deployable or k.elsewhere, k.name
    assert kinds.folders() == ("functions", "actions", "events", "tools", "pipelines", "hayhooks", "templates")


def test_function_classes_follow_open_webui_lookup_order():
    functions = [k.cls for k in kinds.KINDS if k.host == kinds.FUNCTION]
    assert functions == ["Pipe", "Filter", "Action", "Event"]


def test_hosts_apis_bundles_and_labels():
    by = kinds.BY_NAME
    assert {k: by[k].api for k in by} == {
        "pipe": "functions",
        "filter": "functions",
        "action": "functions",
        "event": "functions",
        "tool": "tools",
        "pipeline": "functions",
        "hayhooks": "functions",
    }
    assert {k: by[k].bundle for k in by} == {
        "pipe": "functions.json",
        "filter": "functions.json",
        "action": "functions.json",
        "event": "functions.json",
        "tool": "tools.json",
        "pipeline": None,
        "hayhooks": None,
    }
    assert [k.name for k in kinds.KINDS if k.can_be_global] == ["filter", "action"]
    assert by["event"].label == "Event" and by["tool"].label == "Tool"


def test_dist_layout_is_one_column():
    assert kinds.dist_path(kinds.kind("pipe"), "functions", "demo") == "dist/functions/demo.py"
    assert kinds.dist_path(kinds.kind("tool"), "templates", "tool") == "dist/templates/tool.py"
    wrapped = dataclasses.replace(kinds.kind("pipeline"), name="hayhooks", dist="hayhooks/{name}/pipeline_wrapper.py")
    assert kinds.dist_path(wrapped, "hayhooks", "rag") == "dist/hayhooks/rag/pipeline_wrapper.py"


def test_unknown_kind():
    with pytest.raises(BuildError, match="unknown plugin kind 'widget'"):
        kinds.kind("widget")


def test_plugin_ids():
    assert kinds.plugin_id("functions", "demo") == "demo"
    assert kinds.plugin_id("templates", "pipe") == "template_pipe"


@pytest.mark.parametrize(
    ("folder", "source", "expected"),
    [
        ("functions", "class Filter:\n    pass\nclass Pipe:\n    pass\n", "pipe"),
        ("functions", "class Filter:\n    pass\n", "filter"),
        ("events", "class Event:\n    pass\n", "event"),
        ("templates", "class Pipeline:\n    pass\n", "pipeline"),
        ("templates", "class Event:\n    pass\n", "event"),
    ],
)
def test_detect(folder, source, expected):
    assert kinds.detect(ast.parse(source), folder, "x.py").name == expected


def test_missing_class(tree):
    write(tree, "plugins/actions/act.py", plugin("class Helper:\n    pass\n"))
    build_fails(tree, "plugins/actions/act.py: no class Action")


def test_class_in_wrong_folder(tree):
    write(tree, "plugins/functions/act.py", plugin("class Tools:\n    pass\n"))
    build_fails(tree, "no class Pipe or Filter at the top level")


@pytest.mark.parametrize(
    ("rel", "body", "other"),
    [
        ("plugins/tools/both.py", "class Tools:\n    pass\n\n\nclass Pipe:\n    pass\n", "Pipe"),
        ("plugins/functions/both.py", "class Pipe:\n    pass\n\n\nclass Tools:\n    pass\n", "Tools"),
        ("plugins/functions/both.py", "class Pipe:\n    pass\n\n\nclass Filter:\n    pass\n", "Filter"),
        ("plugins/pipelines/both.py", "from threading import Event\n\n\nclass Pipeline:\n    pass\n", "Event"),
        ("plugins/events/both.py", "class Event:\n    pass\n\n\nAction = None\n", "Action"),
        ("plugins/templates/both.py", "class Action:\n    pass\n\n\nclass Pipeline:\n    pass\n", "Pipeline"),
    ],
)
def test_a_plugin_must_not_define_the_class_of_another_kind(tree, rel, body, other):
    write(tree, rel, plugin(body))
    build_fails(tree, rel, f"defines {other}", "Open WebUI looks for")


def test_event_plugins_build_into_their_folder_and_the_functions_bundle(tree):
    write(
        tree,
        "plugins/events/audit.py",
        plugin("class Event:\n    def event(self, event: dict) -> None:\n        pass\n"),
    )
    assert run(tree) == 0
    assert (tree / "dist/events/audit.py").is_file()
    assert '"id": "audit"' in read(tree, "dist/functions.json")
    assert '"kind": "event"' in read(tree, "manifest.json")
