"""Load plugins the way Open WebUI does, from the text the build produces right now."""

import builtins
import functools
import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from buildlib.assemble import Plugin, render_all  # noqa: E402
from buildlib.loader import load_module_like_open_webui  # noqa: E402


@functools.lru_cache(maxsize=1)
def built() -> list[Plugin]:
    """Every plugin built in memory from the current sources (not the committed dist/)."""
    plugins, _ = render_all(ROOT)
    return plugins


def find_built(plugin_id: str, kind: str | None = None) -> Plugin:
    matches = [p for p in built() if p.id == plugin_id and kind in (None, p.kind)]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} built plugins match id={plugin_id!r} kind={kind!r}")
    return matches[0]


def load_built(plugin_id: str, kind: str | None = None) -> types.ModuleType:
    """A fresh module exec'd from the built text, as open_webui/utils/plugin.py does.

    `kind` tells apart ids shared across hosts (the "mixture_of_agents" pipe and pipeline).
    """
    return load_module_like_open_webui(find_built(plugin_id, kind))


# Names of exception classes a user must never read: every builtin one, anything ending in Error,
# Exception or Exc, and the transport errors of the HTTP clients the pack's plugins use.
_TRANSPORT_ERRORS = {
    "ClientPayloadError", "ServerDisconnectedError", "ClientConnectorError", "ReadTimeout", "ConnectTimeout",
    "ReadError", "RemoteProtocolError", "ConnectError", "PoolTimeout", "WriteTimeout", "APIError", "ClientError",
    "ServerError", "IncompleteRead", "CancelledError", "StopAsyncIteration", "StopIteration",
}  # fmt: skip
_BUILTIN_ERRORS = {
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
}
_CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception|Exc|Timeout)\b|\b[A-Z][a-z]+[A-Z][A-Za-z0-9]+\b")


def exception_names(text: str) -> list[str]:
    """Exception class names in a message meant for a user (empty: the message reads as a sentence)."""
    found = []
    for match in _CLASS_NAME.finditer(text):
        name = match.group()
        if name in _BUILTIN_ERRORS or name in _TRANSPORT_ERRORS or name.endswith(("Error", "Exception", "Exc")):
            found.append(name)
    return found
