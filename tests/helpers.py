"""Load plugins the way Open WebUI does, from the text the build produces right now."""

import functools
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
