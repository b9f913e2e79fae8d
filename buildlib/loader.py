"""Load a built file the way Open WebUI 0.12.4 does (open_webui/utils/plugin.py,
load_function_module_by_id and load_tool_module_by_id), for the build's load check, the tests
and the benches: one emulation of the host's loader for all of them.
"""

from __future__ import annotations
import __future__

import os
import sys
import tempfile
import time
import types
import uuid
from typing import TYPE_CHECKING

from buildlib import BuildError
from buildlib.kinds import TOOL

if TYPE_CHECKING:
    from buildlib.assemble import Plugin


class MissingPackage(Exception):
    """The built file imports a package this Python does not have."""


def compile_like_open_webui(text: str, filename: str) -> types.CodeType:
    """Open WebUI's loader module starts with `from __future__ import annotations` and its
    `exec(content, ...)` inherits that flag: plugins run with postponed annotations. Say so
    explicitly rather than inherit whatever the caller has."""
    return compile(text, filename, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)


def load_module_like_open_webui(plugin: Plugin) -> types.ModuleType:
    """exec the text into a fresh module as Open WebUI does.

    The module is in sys.modules while its code runs (dataclasses and pydantic resolve postponed
    annotations through it) and `__file__` names a temp file that is gone afterwards.
    """
    prefix = "tool" if plugin.kind_row.host == TOOL else "function"
    name = f"{prefix}_{plugin.id}_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    handle, temp = tempfile.mkstemp(suffix=".py")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(plugin.text)
        module.__dict__["__file__"] = temp
        try:
            exec(compile_like_open_webui(plugin.text, plugin.dist), module.__dict__)
        except ModuleNotFoundError as exc:
            raise MissingPackage(exc.name or str(exc)) from None
    finally:
        sys.modules.pop(name, None)
        os.unlink(temp)
    return module


def load_like_open_webui(plugin: Plugin) -> float:
    """Load the plugin and instantiate its class, as Open WebUI does; seconds taken."""
    started = time.perf_counter()
    getattr(load_module_like_open_webui(plugin), plugin.cls)()
    return time.perf_counter() - started


def runtime_available() -> str | None:
    """The package the load check needs and this Python lacks, or None."""
    try:
        import pydantic  # noqa: F401
    except ImportError:
        return "pydantic"
    return None


def load_check(plugins: list[Plugin], strict: bool) -> list[str]:
    """Load every built file like Open WebUI; messages for the plugins that were skipped."""
    missing = runtime_available()
    if missing:
        if strict:
            raise BuildError(f"load check needs {missing!r}, which this Python does not have")
        return [f"load check skipped: {missing} is not installed in this Python (run it in the test venv)"]
    notes = []
    for p in plugins:
        if not p.kind_row.loads:
            # Another server loads it (Hayhooks imports the wrapper as a module): only compile it here.
            try:
                compile(p.text, p.dist, "exec", dont_inherit=True)
            except SyntaxError as exc:
                raise BuildError(f"{p.dist}: does not compile: {exc.msg} (line {exc.lineno})") from exc
            continue
        try:
            load_like_open_webui(p)
        except MissingPackage as exc:
            if strict:
                raise BuildError(f"{p.dist}: does not load: missing package {exc}") from None
            notes.append(f"load check skipped for {p.dist}: package {exc} is not installed in this Python")
        except Exception as exc:
            raise BuildError(
                f"{p.dist}: does not load the way Open WebUI loads it: {type(exc).__name__}: {exc}"
            ) from exc
    return notes
