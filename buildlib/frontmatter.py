"""The frontmatter docstring every plugin starts with, read by Open WebUI's own rules, strictly.

Open WebUI 0.12.4 (open_webui/utils/plugin.py, extract_frontmatter) reads `key: value` lines of a
docstring that starts on line 1 and silently returns nothing when the shape is off; here the same
shape is required and every deviation is an error.
"""

from __future__ import annotations

import re

from buildlib import BuildError

REQUIRED_KEYS = ("title", "author", "version", "description", "license", "required_open_webui_version")
FRONTMATTER_KEY = re.compile(r"^\s*([a-z_]+):\s*(.*)\s*$", re.IGNORECASE)
REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?\s*((===|==|!=|~=|>=|<=|>|<)\s*[A-Za-z0-9.*+!_-]+)?$"
)


def parse_frontmatter(text: str, where: str) -> dict[str, str]:
    """The frontmatter keys of `text`; BuildError where Open WebUI would ignore or misread them."""
    lines = text.splitlines()
    if not lines or lines[0] != '"""':
        raise BuildError(f'{where}: line 1 must be exactly """ (Open WebUI ignores the frontmatter otherwise)')
    meta: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if '"""' in line:
            break
        if not line.strip():
            continue
        key, value = _key_value(line, number, where)
        if key in meta:
            raise BuildError(f"{where}:{number}: frontmatter key {key!r} given twice")
        meta[key] = value
    else:
        raise BuildError(f'{where}: frontmatter docstring is not closed with """')
    missing = [k for k in REQUIRED_KEYS if not meta.get(k)]
    if missing:
        raise BuildError(f"{where}: frontmatter is missing {', '.join(missing)}")
    if meta["license"] != "MIT":
        raise BuildError(f"{where}: license must be MIT")
    parse_requirements(meta.get("requirements", ""), where)
    if meta.get("global", "false") not in ("true", "false"):
        raise BuildError(f"{where}: frontmatter `global` must be true or false")
    return meta


def _key_value(line: str, number: int, where: str) -> tuple[str, str]:
    match = FRONTMATTER_KEY.match(line)
    if not match:
        raise BuildError(f"{where}:{number}: frontmatter lines must be `key: value`, got {line.strip()!r}")
    key, value = match.group(1), match.group(2).strip()
    if key != key.lower():
        raise BuildError(f"{where}:{number}: frontmatter key {key!r} must be lower case")
    if "#" in value:
        raise BuildError(f"{where}:{number}: frontmatter value of {key!r} has a comment; values are data")
    return key, value


def parse_requirements(value: str, where: str) -> list[str]:
    """The `requirements` value as a list; Open WebUI splits it on commas and pip-installs each part."""
    if not value.strip():
        return []
    specs = [part.strip() for part in value.split(",")]
    for spec in specs:
        if not REQUIREMENT.match(spec):
            raise BuildError(
                f"{where}: requirement {spec!r} is not one specifier; Open WebUI splits requirements on "
                "commas, so a range like pkg>=1,<2 breaks"
            )
    return specs


def fill_frontmatter(text: str, values: dict[str, str]) -> str:
    """`text` with the frontmatter values of the keys in `values` replaced (used by `build.py new`)."""
    lines = text.splitlines()
    end = lines.index('"""', 1)
    for i in range(1, end):
        match = FRONTMATTER_KEY.match(lines[i])
        if match and match.group(1) in values:
            lines[i] = f"{match.group(1)}: {values[match.group(1)]}"
    return "\n".join(lines) + "\n"
