import pytest
from pydantic import BaseModel, Field

from shared.valves import Switch, as_switch, resolve_choice, resolve_switch


@pytest.mark.parametrize(
    ("stored", "switch"),
    [
        (True, "on"),
        (False, "off"),
        (None, "default"),
        ("", "default"),
        ("yes", "on"),
        ("0", "off"),
        ("ON", "on"),
        ("default", "default"),
        ("maybe", "default"),
        ("on", "on"),
        ("off", "off"),
    ],
)
def test_values_stored_before_the_dropdown_keep_their_meaning(stored, switch):
    assert as_switch(stored) == switch


def test_default_follows_the_administrator():
    assert resolve_switch("default", True) is True
    assert resolve_switch("default", False) is False
    assert resolve_switch("on", False) is True
    assert resolve_switch("off", True) is False
    assert resolve_switch(None, True) is True


def test_choice_falls_back_to_the_admin_value():
    assert resolve_choice("default", "16:9", ("1:1", "16:9")) == "16:9"
    assert resolve_choice("1:1", "16:9", ("1:1", "16:9")) == "1:1"
    assert resolve_choice("bogus", "16:9", ("1:1", "16:9")) == "16:9"


def test_a_switch_is_a_dropdown_in_open_webui():
    class UserValves(BaseModel):
        FEATURE: Switch = Field(default="default", description="x")

    schema = UserValves.model_json_schema()["properties"]["FEATURE"]
    assert schema["enum"] == ["default", "on", "off"]
