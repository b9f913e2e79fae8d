"""The pack's one convention for a user setting that follows the administrator's unless changed.

A user valve that overrides an on/off admin valve is a `Switch`: a dropdown with "default" (follow
the administrator), "on" and "off". Open WebUI 0.12.4 draws a `Literal` field as a dropdown
(its JSON schema has an `enum`; frontend src/lib/components/common/Valves.svelte) but an optional
bool (`bool | None`) as a free-text box, which is why a plain tri-state bool is not used.
A setting with more values than on/off is a `Literal` of "default" plus the allowed values.
"""

from typing import Any, Literal

FOLLOW_ADMIN = "default"

Switch = Literal["default", "on", "off"]

_SWITCH_ON_WORDS = frozenset({"on", "true", "yes", "1"})
_SWITCH_OFF_WORDS = frozenset({"off", "false", "no", "0"})


def as_switch(value: Any) -> Switch:
    """A stored or typed value as a Switch. Values saved before the dropdown existed (true, false,
    None, "yes", …) keep their meaning; anything unrecognised follows the administrator."""
    if isinstance(value, bool):
        return "on" if value else "off"
    word = str(value).strip().lower() if value is not None else ""
    if word in _SWITCH_ON_WORDS:
        return "on"
    if word in _SWITCH_OFF_WORDS:
        return "off"
    return "default"


def resolve_switch(user_value: Any, admin_value: bool) -> bool:
    """The setting in force: the user's choice when they made one, else the administrator's."""
    choice = as_switch(user_value)
    if choice == FOLLOW_ADMIN:
        return bool(admin_value)
    return choice == "on"


def resolve_choice(user_value: Any, admin_value: str, allowed: tuple[str, ...]) -> str:
    """The value in force for a `Literal["default", *allowed]` user valve."""
    word = str(user_value).strip() if user_value is not None else ""
    return word if word in allowed else admin_value
