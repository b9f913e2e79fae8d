"""`python3 build.py new KIND NAME`: a new plugin source started from a template."""

from __future__ import annotations

from pathlib import Path

from buildlib import PLUGINS, BuildError
from buildlib.frontmatter import fill_frontmatter
from buildlib.kinds import STARTERS, TEMPLATES, kind


def new_plugin(root: Path, starter: str, name: str, author: str, description: str) -> int:
    if starter not in STARTERS:
        raise BuildError(f"unknown kind {starter!r}; one of {', '.join(STARTERS)}")
    if not name.isidentifier() or name != name.lower():
        raise BuildError(f"name {name!r} must be a lower-case Python identifier (it becomes the plugin id)")
    template, kind_name = STARTERS[starter]
    target = root / PLUGINS / kind(kind_name).folder / f"{name}.py"
    if target.exists():
        raise BuildError(f"{target.relative_to(root).as_posix()} exists; not overwriting")
    text = (root / PLUGINS / TEMPLATES / f"{template}.py").read_text(encoding="utf-8")
    fill = {"title": name.replace("_", " ").title(), "author": author, "version": "0.1.0", "description": description}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(fill_frontmatter(text, fill), encoding="utf-8")
    print(
        f"created {target.relative_to(root).as_posix()} from {PLUGINS}/{TEMPLATES}/{template}.py; "
        "run `python3 build.py`"
    )
    return 0
