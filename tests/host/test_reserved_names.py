"""Tool files and Pipelines files from the build cannot become Open WebUI functions.

Open WebUI (open_webui/utils/plugin.py, load_function_module_by_id) takes any pasted file whose
module has a top-level Pipe, Filter, Action or Event (Event from 0.10) as a function of that type.
The build keeps those names out of every other kind of file, inlined shared code included (the
events module's payload type is `EventPayload`, not `Event`), so the real loader refuses such a file
on create and on update, and an installed function keeps its content after an attempt to overwrite
it with one (before 0.12 the refusal also switches it off; it works again once switched back on).
"""

from __future__ import annotations

import pytest

from buildlib.assemble import build_plugin, discover
from buildlib.inline import analyse
from buildlib.kinds import detect
from tests.host import versions
from tests.host._server import ROOT

NO_FUNCTION_CLASS = "No Function class found in the module"
INSTALLED = "reserved_names_pipe"


def non_function_files() -> list:
    """Every built tool and Pipelines file, each built on its own from the current sources.

    Hayhooks wrappers are left out: they import `hayhooks`, which Open WebUI does not have, so
    pasting one fails at import before any class is looked for."""
    cache: dict = {}
    found = []
    for folder, source in discover(ROOT):
        text = (ROOT / source).read_text(encoding="utf-8")
        if detect(analyse(source, text).tree, folder, source).name in ("tool", "pipeline"):
            found.append(build_plugin(ROOT, folder, source, cache))
    return found


NON_FUNCTIONS = non_function_files()


def form(function_id: str, content: str) -> dict:
    return {"id": function_id, "name": function_id, "content": content, "meta": {"description": "reserved names"}}


def test_the_pack_has_tool_and_pipeline_files_to_try():
    assert {p.kind for p in NON_FUNCTIONS} == {"tool", "pipeline"}


@pytest.mark.parametrize("plugin", NON_FUNCTIONS, ids=lambda p: p.dist)
def test_pasting_it_into_functions_is_refused(owui, plugin):
    function_id = f"reserved_{plugin.id}_{plugin.kind}"
    offset = owui.log_path.stat().st_size
    response = owui.api("POST", "/api/v1/functions/create", json=form(function_id, plugin.text))
    assert response.status_code == 400, response.text
    assert owui.api("GET", f"/api/v1/functions/id/{function_id}").status_code != 200
    assert function_id not in {f["id"] for f in owui.ok("GET", "/api/v1/functions/")}
    # the server log shows it is the loader's refusal (the create endpoint hides the reason from 0.10)
    log = owui.log_path.read_bytes()[offset:].decode("utf-8", "replace")
    assert NO_FUNCTION_CLASS in log
    if versions.CREATE_ERROR_DETAIL_SHOWN:
        assert NO_FUNCTION_CLASS in response.json()["detail"]


@pytest.fixture(scope="module")
def installed(owui):
    pipe = build_plugin(ROOT, "templates", "plugins/templates/pipe.py", {})
    record = owui.install(INSTALLED, pipe.text)
    yield record
    owui.api("DELETE", f"/api/v1/functions/id/{INSTALLED}/delete")


@pytest.mark.parametrize("plugin", NON_FUNCTIONS, ids=lambda p: p.dist)
def test_it_cannot_replace_an_installed_function(owui, installed, plugin):
    offset = owui.log_path.stat().st_size
    response = owui.api("POST", f"/api/v1/functions/id/{INSTALLED}/update", json=form(INSTALLED, plugin.text))
    assert response.status_code == 400, response.text
    if versions.UPDATE_ERROR_DETAIL_SHOWN:
        assert NO_FUNCTION_CLASS in response.json()["detail"]
    else:  # 0.10 hides the reason: the server log shows it is the loader's refusal
        assert NO_FUNCTION_CLASS in owui.log_path.read_bytes()[offset:].decode("utf-8", "replace")
    stored = owui.ok("GET", f"/api/v1/functions/id/{INSTALLED}")
    assert stored["content"] == installed["content"]
    assert stored["type"] == "pipe"
    if versions.REFUSED_UPDATE_DEACTIVATES:
        assert stored["is_active"] is False
        owui.ok("POST", f"/api/v1/functions/id/{INSTALLED}/toggle")
        owui.models()
    else:
        assert stored["is_active"] is True
    assert INSTALLED in {f["id"] for f in owui.ok("GET", "/api/v1/functions/")}
    assert owui.text_of(owui.chat(INSTALLED, "still here")) == "echo: still here "
