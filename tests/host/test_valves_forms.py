"""The valves forms an admin and a user see, on every Open WebUI version the suite runs.

Open WebUI builds each valves form from the JSON schema its `/valves/spec` and `/valves/user/spec`
endpoints return for the loaded plugin. Every field of the plugin's own `Valves`/`UserValves`
(inherited ones included: Mixture of Agents' come from a shared base class) must be in that form,
with the human title the plugin gives it (not one pydantic made from the field name).
"""

import pytest

from tests.helpers import find_built, load_built
from tests.host import versions

PLUGINS = [
    ("gemini_manifold", "pipe"),
    ("mixture_of_agents", "pipe"),
    ("add_to_memories", "action"),
    ("youtube_transcript", "tool"),
    ("template_pipe", "pipe"),
    ("template_manifold", "pipe"),
    ("template_filter", "filter"),
    ("template_action", "action"),
    ("template_tool", "tool"),
    ("template_event", "event"),
]


@pytest.fixture(scope="module")
def deployed(owui):
    ids = [plugin_id for plugin_id, kind in PLUGINS if kind != "event" or versions.HAS_EVENT_FUNCTIONS]
    owui.deploy(*ids)
    return owui


@pytest.mark.parametrize(("plugin_id", "kind"), PLUGINS)
def test_every_valve_is_in_the_form_with_its_title(deployed, plugin_id, kind):
    if kind == "event":
        versions.skip_before("0.10.0", "event functions do not exist in this version")
    plugin = find_built(plugin_id, kind)
    cls = getattr(load_built(plugin_id, kind), plugin.cls)
    api = "tools" if kind == "tool" else "functions"
    for form, model in (
        ("valves/spec", getattr(cls, "Valves", None)),
        ("valves/user/spec", getattr(cls, "UserValves", None)),
    ):
        if model is None:
            continue
        spec = deployed.ok("GET", f"/api/v1/{api}/id/{plugin_id}/{form}") or {}
        properties = spec.get("properties") or {}
        assert sorted(properties) == sorted(model.model_fields), f"{plugin_id} {form}"
        for name, field in model.model_fields.items():
            # an explicit title: pydantic leaves `field.title` empty when it makes one from the name
            assert field.title, f"{plugin_id} {form} {name} has no title of its own"
            assert properties[name].get("title") == field.title, f"{plugin_id} {form} {name}"
