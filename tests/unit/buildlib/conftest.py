"""A small plugin tree in a temp folder, and helpers to build it the way `python3 build.py` does."""

import textwrap
from pathlib import Path

import pytest

from buildlib import BuildError
from buildlib.assemble import build, check

FRONT = '''"""
title: {title}
author: Tester
version: 1.2.3
description: A test plugin.
license: MIT
required_open_webui_version: 0.12.4
{extra}"""
'''

PIPE = """
from pydantic import BaseModel

from shared.alpha import greet


class Pipe:
    class Valves(BaseModel):
        X: int = 1

    def __init__(self):
        self.valves = self.Valves()

    def pipe(self, body: dict) -> str:
        return greet(body["who"])
"""


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def plugin(body: str, *, title: str = "Demo", extra: str = "") -> str:
    return FRONT.format(title=title, extra=extra) + textwrap.dedent(body)


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text(encoding="utf-8")


def run(root: Path, *flags: str) -> int:
    """`python3 build.py [--check] [--strict-load]` on `root`, in this process."""
    if "--check" in flags:
        return check(root)
    return build(root, strict_load="--strict-load" in flags)


def build_fails(root: Path, *fragments: str) -> str:
    with pytest.raises(BuildError) as caught:
        run(root)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def tree(tmp_path):
    write(
        tmp_path,
        "shared/alpha.py",
        '''
        """Alpha greets."""

        import json

        from shared.beta import shout


        def greet(who):
            return shout(json.dumps(who))
        ''',
    )
    write(
        tmp_path,
        "shared/beta.py",
        '''
        """Beta shouts."""

        import json
        import logging

        _BETA_LOG = logging.getLogger("beta")


        def shout(text):
            _BETA_LOG.debug("shouting")
            return json.loads(text).upper()
        ''',
    )
    write(tmp_path, "plugins/functions/demo.py", plugin(PIPE))
    return tmp_path
