"""The one emulation of Open WebUI 0.12.4's plugin loader (open_webui/utils/plugin.py)."""

import os
import subprocess
import sys

import pytest

from buildlib import ROOT, BuildError
from buildlib.assemble import render_all
from buildlib.loader import compile_like_open_webui, load_check, load_like_open_webui, load_module_like_open_webui
from tests.unit.buildlib.conftest import PIPE, build_fails, plugin, run, write


def test_load_failure_fails_the_build(tree):
    body = PIPE.replace("        self.valves = self.Valves()", '        raise RuntimeError("no init")')
    write(tree, "plugins/functions/demo.py", plugin(body))
    build_fails(tree, "dist/functions/demo.py: does not load", "RuntimeError: no init")


def test_missing_package_is_skipped_plainly_or_strict(tree, capsys):
    write(tree, "plugins/tools/needs.py", plugin("import not_a_real_pkg_xyz\n\n\nclass Tools:\n    pass\n"))
    assert run(tree) == 0
    assert "load check skipped for dist/tools/needs.py: package not_a_real_pkg_xyz" in capsys.readouterr().out
    with pytest.raises(BuildError, match="missing package not_a_real_pkg_xyz"):
        run(tree, "--strict-load")


def test_loader_matches_open_webui(tree):
    """exec in a fresh module registered in sys.modules while it runs, __file__ gone afterwards."""
    plugins, _ = render_all(tree)
    module = load_module_like_open_webui(plugins[0])
    assert module.__name__.startswith("function_demo_")
    assert module.__name__ not in sys.modules
    assert not os.path.exists(module.__file__)
    assert load_like_open_webui(plugins[0]) >= 0
    assert not [m for m in sys.modules if m.startswith("function_demo_")]


def test_tools_load_under_a_tool_module_name(tree):
    write(tree, "plugins/tools/plain.py", plugin("class Tools:\n    pass\n"))
    plugins, _ = render_all(tree)
    tool = next(p for p in plugins if p.kind == "tool")
    assert load_module_like_open_webui(tool).__name__.startswith("tool_plain_")


def test_loader_compiles_with_postponed_annotations_like_open_webui():
    """open_webui/utils/plugin.py has `from __future__ import annotations`; its exec inherits it."""
    code = compile_like_open_webui("def f(x: int) -> str:\n    pass\n", "x.py")
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["f"].__annotations__ == {"x": "int", "return": "str"}


def test_load_check_without_pydantic_is_skipped(tree):
    """A bare interpreter (no site-packages) builds and says the load check was skipped."""
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); from buildlib.loader import load_check; "
        "print(load_check([], strict=False))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", probe, str(ROOT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "load check skipped: pydantic is not installed" in result.stdout
    assert load_check([], strict=True) == []
