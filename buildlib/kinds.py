"""The one table of plugin kinds: where each lives, what it is called, where it goes.

Everything that differs between kinds is a column here; the rest of the build reads the table.
Row order is the order Open WebUI 0.12.4 tries the function classes
(open_webui/utils/plugin.py, load_function_module_by_id: Pipe, then Filter, Action, Event).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from buildlib import DIST, PLUGINS, BuildError

TEMPLATES = "templates"

# Hosts: where ids must be unique, and how the host loads a file.
FUNCTION = "function"  # Open WebUI Functions (Admin > Functions)
TOOL = "tool"  # Open WebUI Tools (Workspace > Tools)
PIPELINE = "pipeline"  # an Open WebUI Pipelines server
HAYHOOKS = "hayhooks"  # a Hayhooks server (`hayhooks run`), an OpenAI-compatible connection of Open WebUI


@dataclass(frozen=True)
class Kind:
    name: str  # manifest `kind`
    cls: str  # the class the host instantiates
    host: str  # FUNCTION, TOOL, PIPELINE or HAYHOOKS
    folder: str  # plugins/<folder>/ holds this kind (plugins/templates/ holds every kind)
    template: str  # plugins/templates/<template>.py starts a new plugin of this kind
    label: str  # the README table's "Kind" column
    deployable: bool  # `build.py deploy` installs it into Open WebUI
    can_be_global: bool  # Open WebUI applies `is_global` to this kind
    placeholder: str  # smallest valid body, used by deploy to read a hidden create error
    dist: str = "{folder}/{name}.py"  # path under dist/ ({folder}: the source folder, {name}: file stem)
    elsewhere: str = ""  # for kinds deploy skips: where the built file goes instead ({dist}: its path)
    # The build execs the built file the way Open WebUI's loader does; False: compiled only (its host
    # has its own loader and packages the build's Python lacks).
    loads: bool = True
    # Its packages belong to its own server's environment: listed as the manifest's
    # `server_requirements` (frontmatter `server_requirements:`), never as Open WebUI `requirements`.
    server_packages: bool = False

    @property
    def bundle(self) -> str | None:
        """The import bundle under dist/ that Open WebUI's Import button takes, if any."""
        return {FUNCTION: "functions.json", TOOL: "tools.json"}.get(self.host) if self.deployable else None

    @property
    def api(self) -> str:
        """The Open WebUI REST prefix: /api/v1/<api>/..."""
        return "tools" if self.host == TOOL else "functions"


KINDS: tuple[Kind, ...] = (
    Kind(
        name="pipe",
        cls="Pipe",
        host=FUNCTION,
        folder="functions",
        template="pipe",
        label="Pipe",
        deployable=True,
        can_be_global=False,
        placeholder="class Pipe:\n    def pipe(self, body: dict) -> str:\n        return ''\n",
    ),
    Kind(
        name="filter",
        cls="Filter",
        host=FUNCTION,
        folder="functions",
        template="filter",
        label="Filter",
        deployable=True,
        can_be_global=True,
        placeholder="class Filter:\n    def inlet(self, body: dict) -> dict:\n        return body\n",
    ),
    Kind(
        name="action",
        cls="Action",
        host=FUNCTION,
        folder="actions",
        template="action",
        label="Action",
        deployable=True,
        can_be_global=True,
        placeholder="class Action:\n    async def action(self, body: dict) -> None:\n        return None\n",
    ),
    Kind(
        name="event",
        cls="Event",
        host=FUNCTION,
        folder="events",
        template="event",
        label="Event",
        deployable=True,
        can_be_global=False,
        placeholder="class Event:\n    def event(self, event: dict) -> None:\n        return None\n",
    ),
    Kind(
        name="tool",
        cls="Tools",
        host=TOOL,
        folder="tools",
        template="tool",
        label="Tool",
        deployable=True,
        can_be_global=False,
        placeholder="class Tools:\n    pass\n",
    ),
    Kind(
        name="pipeline",
        cls="Pipeline",
        host=PIPELINE,
        folder="pipelines",
        template="pipeline",
        label="Pipeline",
        deployable=False,
        can_be_global=False,
        placeholder="class Pipeline:\n    pass\n",
        elsewhere="a Pipelines-server pipeline, not installable into Open WebUI (upload {dist} to a Pipelines server)",
    ),
    Kind(
        name="hayhooks",
        cls="PipelineWrapper",
        host=HAYHOOKS,
        folder="hayhooks",
        template="hayhooks",
        label="Hayhooks wrapper",
        deployable=False,
        can_be_global=False,
        placeholder="class PipelineWrapper:\n    def setup(self) -> None:\n        pass\n",
        # Hayhooks serves <pipelines-dir>/<name>/pipeline_wrapper.py as the model <name>.
        dist="{folder}/{name}/pipeline_wrapper.py",
        elsewhere=(
            "a Hayhooks pipeline wrapper, not installable into Open WebUI (serve it with "
            "`hayhooks run --pipelines-dir dist/hayhooks`, which loads {dist}, and add the Hayhooks server "
            "to Open WebUI as an OpenAI connection)"
        ),
        loads=False,
        server_packages=True,
    ),
)

BY_NAME = {k.name: k for k in KINDS}
# Names a host looks up on a plugin module: inlined code must never define them.
RESERVED = tuple(dict.fromkeys(k.cls for k in KINDS))
# Starting points for `build.py new`: one per kind, plus variants that are a kind's template
# with a different shape (a manifold is a pipe that offers several models).
STARTERS: dict[str, tuple[str, str]] = {k.name: (k.template, k.name) for k in KINDS} | {
    "manifold": ("manifold", "pipe")
}


def kind(name: str) -> Kind:
    try:
        return BY_NAME[name]
    except KeyError:
        raise BuildError(f"unknown plugin kind {name!r}; one of {', '.join(BY_NAME)}") from None


def folders() -> tuple[str, ...]:
    """Every plugins/ folder the build reads, in discovery order."""
    return (*dict.fromkeys(k.folder for k in KINDS), TEMPLATES)


def kinds_in(folder: str) -> tuple[Kind, ...]:
    return KINDS if folder == TEMPLATES else tuple(k for k in KINDS if k.folder == folder)


def dist_path(k: Kind, folder: str, stem: str) -> str:
    return f"{DIST}/{k.dist.format(folder=folder, name=stem)}"


def plugin_id(folder: str, stem: str) -> str:
    return f"template_{stem}" if folder == TEMPLATES else stem


def top_level_classes(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, ast.ClassDef)}


def detect(tree: ast.Module, folder: str, where: str) -> Kind:
    """The kind of a plugin file: the first class of its folder's kinds that it defines."""
    classes = top_level_classes(tree)
    allowed = kinds_in(folder)
    for k in allowed:
        if k.cls in classes:
            return k
    wanted = " or ".join(dict.fromkeys(k.cls for k in allowed))
    raise BuildError(f"{where}: no class {wanted} at the top level; {PLUGINS}/{folder}/ needs one")


def check_other_kinds(bound: set[str], own: Kind, where: str) -> None:
    """A plugin binds no other kind's class: pasted into the wrong host it would load as that kind."""
    others = sorted(name for name in bound if name in RESERVED and name != own.cls)
    if others:
        listed = ", ".join(others)
        raise BuildError(
            f"{where}: defines {listed}, a class Open WebUI looks for in another kind of plugin; pasted into "
            f"the wrong place the file would load as that kind. A {own.name} plugin defines only {own.cls} of "
            "these names: rename it"
        )
