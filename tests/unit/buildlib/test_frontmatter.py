"""Frontmatter read by Open WebUI's rules, strictly."""

import pytest

from buildlib import BuildError
from buildlib.frontmatter import fill_frontmatter, parse_frontmatter, parse_requirements
from tests.unit.buildlib.conftest import build_fails, plugin


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("class Pipe:\n    pass\n", 'line 1 must be exactly """'),
        ('#!/usr/bin/env python\n"""\ntitle: x\n"""\n', 'line 1 must be exactly """'),
        ('"""title: x\n"""\n', 'line 1 must be exactly """'),
        ('"""\ntitle: x\n', 'frontmatter docstring is not closed with """'),
        ('"""\ntitle: x\nauthor: y\n"""\nclass Pipe:\n    pass\n', "frontmatter is missing version, description"),
        (plugin("class Pipe:\n    pass\n", title="Demo  # nice"), "has a comment"),
        (plugin("class Pipe:\n    pass\n", extra="A long prose line\n"), "frontmatter lines must be `key: value`"),
        (plugin("class Pipe:\n    pass\n", extra="Requirements: x\n"), "must be lower case"),
        (plugin("class Pipe:\n    pass\n", extra="title: again\n"), "frontmatter key 'title' given twice"),
        (plugin("class Pipe:\n    pass\n", extra="requirements: pkg>=1,<2\n"), "'<2' is not one specifier"),
        (plugin("class Pipe:\n    pass\n", extra="requirements: pkg>=1 pkg2\n"), "is not one specifier"),
        (plugin("class Pipe:\n    pass\n", extra="global: yes\n"), "`global` must be true or false"),
        (plugin("class Pipe:\n    pass\n").replace("license: MIT", "license: GPL"), "license must be MIT"),
    ],
)
def test_bad_frontmatter(text, message):
    with pytest.raises(BuildError) as caught:
        parse_frontmatter(text, "plugins/functions/demo.py")
    assert message in str(caught.value)
    assert str(caught.value).startswith("plugins/functions/demo.py")


def test_bad_frontmatter_fails_the_build(tree):
    (tree / "plugins/functions/demo.py").write_text("class Pipe:\n    pass\n")
    build_fails(tree, "plugins/functions/demo.py", 'line 1 must be exactly """')


def test_good_frontmatter():
    meta = parse_frontmatter(plugin("", extra="requirements: a>=1, b==2\nglobal: true\n"), "x")
    assert meta["title"] == "Demo" and meta["version"] == "1.2.3" and meta["global"] == "true"
    assert parse_requirements(meta["requirements"], "x") == ["a>=1", "b==2"]
    assert parse_requirements("  ", "x") == []


def test_fill_frontmatter_replaces_only_the_named_values():
    text = plugin("class Pipe:\n    pass\n")
    filled = fill_frontmatter(text, {"title": "Weather", "author": "Ann"})
    meta = parse_frontmatter(filled, "x")
    assert (meta["title"], meta["author"], meta["version"]) == ("Weather", "Ann", "1.2.3")
    assert filled.endswith("class Pipe:\n    pass\n")
