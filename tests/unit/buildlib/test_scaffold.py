"""`build.py new`: a plugin started from each template lands in its kind's folder and builds."""

import pytest

from buildlib import ROOT, BuildError
from buildlib.frontmatter import parse_frontmatter
from buildlib.kinds import STARTERS
from buildlib.scaffold import new_plugin
from tests.unit.buildlib.conftest import plugin, read, run, write


def test_new_from_template(tree, capsys):
    write(tree, "plugins/templates/tool.py", plugin("class Tools:\n    pass\n", title="Template Tool"))
    assert new_plugin(tree, "tool", "weather", "Ann", "Says the weather.") == 0
    assert "created plugins/tools/weather.py from plugins/templates/tool.py" in capsys.readouterr().out
    meta = parse_frontmatter(read(tree, "plugins/tools/weather.py"), "x")
    assert (meta["title"], meta["author"], meta["version"]) == ("Weather", "Ann", "0.1.0")
    assert meta["description"] == "Says the weather."
    assert run(tree) == 0
    assert (tree / "dist/tools/weather.py").is_file()
    with pytest.raises(BuildError, match="exists; not overwriting"):
        new_plugin(tree, "tool", "weather", "Ann", "x")
    with pytest.raises(BuildError, match="must be a lower-case Python identifier"):
        new_plugin(tree, "tool", "Bad-Name", "Ann", "x")
    with pytest.raises(BuildError, match="unknown kind 'widget'"):
        new_plugin(tree, "widget", "w", "Ann", "x")


def test_starters_are_every_kind_and_the_manifold():
    assert set(STARTERS) == {"pipe", "manifold", "filter", "action", "event", "tool", "pipeline", "hayhooks"}
    assert STARTERS["manifold"] == ("manifold", "pipe")


def test_every_template_can_start_a_plugin(tmp_path):
    for rel in [
        *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "shared").glob("*.py"))),
        *[f"plugins/templates/{t}.py" for t, _ in STARTERS.values()],
    ]:
        write(tmp_path, rel, read(ROOT, rel))
    for starter in STARTERS:
        assert new_plugin(tmp_path, starter, f"my_{starter}", "Ann", "A test.") == 0
    assert (tmp_path / "plugins/events/my_event.py").is_file()
    assert (tmp_path / "plugins/functions/my_manifold.py").is_file()
    assert run(tmp_path, "--strict-load") == 0
    assert (tmp_path / "dist/events/my_event.py").is_file()
