"""The `hayhooks` kind: Hayhooks pipeline wrappers built into dist/hayhooks/<name>/pipeline_wrapper.py."""

import json

import pytest

from buildlib import ROOT, kinds
from buildlib.scaffold import new_plugin
from tests.unit.buildlib.conftest import build_fails, plugin, read, run, write

WRAPPER = """
class BasePipelineWrapper:
    pass


class PipelineWrapper(BasePipelineWrapper):
    def setup(self) -> None:
        pass
"""


def test_kind_row():
    row = kinds.kind("hayhooks")
    assert (row.cls, row.host, row.folder, row.template, row.label) == (
        "PipelineWrapper",
        kinds.HAYHOOKS,
        "hayhooks",
        "hayhooks",
        "Hayhooks wrapper",
    )
    assert not row.deployable and row.bundle is None and not row.loads and row.server_packages
    assert "hayhooks run --pipelines-dir dist/hayhooks" in row.elsewhere
    assert "PipelineWrapper" in kinds.RESERVED
    assert kinds.dist_path(row, "hayhooks", "rag") == "dist/hayhooks/rag/pipeline_wrapper.py"
    # The template stays out of the served folder.
    assert kinds.dist_path(row, "templates", "hayhooks") == "dist/templates/hayhooks/pipeline_wrapper.py"
    assert "hayhooks" in kinds.folders() and "hayhooks" in kinds.STARTERS


def test_build_puts_a_wrapper_in_its_model_folder_and_lists_server_requirements(tree):
    extra = "server_requirements: hayhooks==2.1.0, haystack-ai==3.4.1\n"
    write(tree, "plugins/hayhooks/rag_demo.py", plugin("import hayhooks_not_installed\n" + WRAPPER, extra=extra))
    run(tree)  # the wrapper imports a package this Python lacks: compiled, never exec'd
    assert "class PipelineWrapper" in read(tree, "dist/hayhooks/rag_demo/pipeline_wrapper.py")
    entry = {p["id"]: p for p in json.loads(read(tree, "manifest.json"))["plugins"]}["rag_demo"]
    assert entry["kind"] == "hayhooks" and entry["requirements"] == []
    assert entry["server_requirements"] == ["hayhooks==2.1.0", "haystack-ai==3.4.1"]
    assert entry["dist"] == "dist/hayhooks/rag_demo/pipeline_wrapper.py"
    assert "rag_demo" not in read(tree, "dist/functions.json")


def test_open_webui_requirements_key_is_refused(tree):
    write(tree, "plugins/hayhooks/w.py", plugin(WRAPPER, extra="requirements: hayhooks\n"))
    assert "server_requirements" in build_fails(tree)


def test_server_requirements_only_for_server_kinds(tree):
    write(tree, "plugins/tools/t.py", plugin("class Tools:\n    pass\n", extra="server_requirements: x\n"))
    assert "only for kinds served outside Open WebUI" in build_fails(tree)


def test_a_wrapper_must_define_pipeline_wrapper_and_no_other_kind(tree):
    write(tree, "plugins/hayhooks/w.py", plugin("class Wrapper:\n    pass\n"))
    assert "no class PipelineWrapper" in build_fails(tree)
    write(tree, "plugins/hayhooks/w.py", plugin(WRAPPER + "\nfrom haystack import Pipeline\n"))
    assert "defines Pipeline" in build_fails(tree)


def test_syntax_errors_are_still_caught(tree):
    write(tree, "plugins/hayhooks/w.py", plugin(WRAPPER + "\ndef broken(:\n    pass\n"))
    build_fails(tree)


def test_new_from_the_template(tmp_path, capsys):
    (tmp_path / "plugins/templates").mkdir(parents=True)
    (tmp_path / "plugins/templates/hayhooks.py").write_text((ROOT / "plugins/templates/hayhooks.py").read_text())
    new_plugin(tmp_path, "hayhooks", "my_wrapper", "Me", "Does things.")
    text = (tmp_path / "plugins/hayhooks/my_wrapper.py").read_text()
    assert text.startswith('"""\ntitle: My Wrapper\nauthor: Me\n')
    assert "class PipelineWrapper(BasePipelineWrapper)" in text


@pytest.mark.parametrize(
    "name", ["event_pipeline", "enhanced_event_pipeline", "interactive_pipeline", "file_upload_pipeline"]
)
def test_the_pack_wrappers_are_built(name):
    manifest = {p["id"]: p for p in json.loads((ROOT / "manifest.json").read_text())["plugins"]}
    entry = manifest[name]
    assert entry["kind"] == "hayhooks" and entry["dist"] == f"dist/hayhooks/{name}/pipeline_wrapper.py"
    assert entry["requirements"] == [] and entry["required_open_webui_version"] == "0.12.4"
    text = (ROOT / entry["dist"]).read_text()
    assert "headers: Headers | None = None" in text and "from starlette.datastructures import Headers" in text
