#!/usr/bin/env python3
"""Build the Open WebUI plugin pack: one self-contained file per plugin in dist/.

    python3 build.py                 build dist/, manifest.json and the import bundles
    python3 build.py --check         exit 1 if the committed output differs from a rebuild
    python3 build.py new KIND NAME   start a plugin from a template
    python3 build.py deploy --url URL [--token T] [--only ID ...] [--valves F.json] [--dry-run]

Standard library only: it must run on a bare Python 3.11.
"""

from __future__ import annotations
import __future__

import argparse
import ast
import difflib
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PLUGINS = "plugins"
SHARED = "shared"
DIST = "dist"
MANIFEST = "manifest.json"

# plugin folder -> the kinds allowed there (checked against the class the file defines)
FOLDERS = {
    "functions": ("pipe", "filter"),
    "actions": ("action",),
    "tools": ("tool",),
    "pipelines": ("pipeline",),
    "templates": ("pipe", "filter", "action", "tool", "pipeline"),
}
# Open WebUI checks Pipe, then Filter, then Action (open_webui/utils/plugin.py:297-306)
CLASS_KIND = {"Pipe": "pipe", "Filter": "filter", "Action": "action", "Tools": "tool", "Pipeline": "pipeline"}
FUNCTION_CLASSES = ("Pipe", "Filter", "Action")
# ids are unique within what one host installs: Open WebUI functions, its tools, a Pipelines server
NAMESPACE = {"pipe": "function", "filter": "function", "action": "function", "tool": "tool", "pipeline": "pipeline"}
REQUIRED_KEYS = ("title", "author", "version", "description", "license", "required_open_webui_version")
# Open WebUI's replace_imports rewrites these substrings anywhere in the text (plugin.py:189-203)
REWRITTEN = re.compile(r"from (utils|apps|main|config)")
FRONTMATTER_KEY = re.compile(r"^\s*([a-z_]+):\s*(.*)\s*$", re.IGNORECASE)
REQUIREMENT = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?\s*((===|==|!=|~=|>=|<=|>|<)\s*[A-Za-z0-9.*+!_-]+)?$"
)
TEMPLATE_FOR = {
    "pipe": ("pipe.py", "functions"),
    "manifold": ("manifold.py", "functions"),
    "filter": ("filter.py", "functions"),
    "action": ("action.py", "actions"),
    "tool": ("tool.py", "tools"),
    "pipeline": ("pipeline.py", "pipelines"),
}


class BuildError(Exception):
    pass


# --- frontmatter ---------------------------------------------------------------


def parse_frontmatter(text: str, where: str) -> dict[str, str]:
    """Open WebUI's frontmatter rules (plugin.py:153-186), strict: errors instead of {}."""
    lines = text.splitlines()
    if not lines or lines[0] != '"""':
        raise BuildError(f'{where}: line 1 must be exactly """ (Open WebUI ignores the frontmatter otherwise)')
    meta: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if '"""' in line:
            break
        if not line.strip():
            continue
        match = FRONTMATTER_KEY.match(line)
        if not match:
            raise BuildError(f"{where}:{number}: frontmatter lines must be `key: value`, got {line.strip()!r}")
        key, value = match.group(1), match.group(2).strip()
        if key != key.lower():
            raise BuildError(f"{where}:{number}: frontmatter key {key!r} must be lower case")
        if key in meta:
            raise BuildError(f"{where}:{number}: frontmatter key {key!r} given twice")
        if "#" in value:
            raise BuildError(f"{where}:{number}: frontmatter value of {key!r} has a comment; values are data")
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


def parse_requirements(value: str, where: str) -> list[str]:
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


# --- module analysis -----------------------------------------------------------


@dataclass
class Module:
    """A parsed source file: its hoistable imports, shared dependencies and body text."""

    path: str  # relative to ROOT, posix
    text: str
    tree: ast.Module
    imports: list[ast.Import | ast.ImportFrom] = field(default_factory=list)
    shared: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)  # module -> names
    skip: dict[int, str] = field(default_factory=dict)  # first line -> replacement comment
    spans: list[tuple[int, int]] = field(default_factory=list)  # removed (start, end) lines
    docstring_end: int = 0


def analyse(path: str, text: str) -> Module:
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise BuildError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    module = Module(path, text, tree)
    body = tree.body
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        module.docstring_end = first.end_lineno or 0
        body = body[1:]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or 0) > 0:
            raise BuildError(f"{path}:{node.lineno}: relative import; use `from shared.<module> import name`")
        if isinstance(node, ast.ImportFrom) and node.module == SHARED:
            raise BuildError(f"{path}:{node.lineno}: `from shared import ...`; use `from shared.<module> import name`")
        if isinstance(node, ast.Import) and any(a.name == SHARED or a.name.startswith("shared.") for a in node.names):
            raise BuildError(
                f"{path}:{node.lineno}: `import shared...` cannot be inlined; use `from shared.<module> import name`"
            )
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shared.") and node not in body:
            raise BuildError(f"{path}:{node.lineno}: shared imports must be at the top level of the module")
    for node in body:
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        span = (node.lineno, node.end_lineno or node.lineno)
        module.spans.append(span)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shared."):
            name = node.module.split(".", 1)[1]
            if "." in name:
                raise BuildError(f"{path}:{node.lineno}: shared modules are flat: shared/<module>.py")
            module.shared.setdefault(name, []).extend((a.name, a.asname) for a in node.names)
            if any(a.name == "*" for a in node.names):
                raise BuildError(f"{path}:{node.lineno}: star import from shared; name what you use")
            module.skip[span[0]] = "# " + " ".join(ast.get_source_segment(text, node).split()) + "  (inlined above)"
        else:
            module.imports.append(node)
            module.skip[span[0]] = ""
    return module


def defined_names(module: Module) -> dict[str, str]:
    """Top-level names the module binds itself (not via hoisted imports) -> what binds them."""
    names: dict[str, str] = {}

    def bind(target: ast.AST | None) -> None:
        for node in ast.walk(target) if target is not None else ():
            if isinstance(node, ast.Name):
                names.setdefault(node.id, "assignment")

    def visit(statements: list[ast.stmt], top: bool) -> None:
        for node in statements:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.setdefault(node.name, "def")
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    bind(target)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.For | ast.AsyncFor):
                bind(node.target)
            elif isinstance(node, ast.Import | ast.ImportFrom) and not top:
                # imports nested in try/if are not hoisted, so they bind like definitions
                for alias in node.names:
                    names.setdefault(alias.asname or alias.name.split(".")[0], "import")
            if isinstance(node, ast.With | ast.AsyncWith):
                for item in node.items:
                    bind(item.optional_vars)
            for attr in ("body", "orelse", "finalbody"):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    visit(getattr(node, attr, []) or [], False)
            for handler in getattr(node, "handlers", []) or []:
                visit(handler.body, False)

    visit(module.tree.body, True)
    return names


def import_bindings(imports: list[ast.Import | ast.ImportFrom]) -> dict[str, str]:
    """Name -> a key saying what it is bound to (so equal imports do not collide)."""
    bound: dict[str, str] = {}
    for node in imports:
        for alias in node.names:
            if isinstance(node, ast.Import):
                name = alias.asname or alias.name.split(".")[0]
                bound[name] = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
            else:
                bound[alias.asname or alias.name] = f"from {node.module} import {alias.name}"
    return bound


def body_text(module: Module) -> str:
    """The module's source without its docstring and with hoisted imports removed."""
    lines = module.text.splitlines()
    removed: set[int] = set()
    for start, end in module.spans:
        removed.update(range(start, end + 1))
    out: list[str] = []
    for number, line in enumerate(lines, start=1):
        if number <= module.docstring_end:
            continue
        if module.skip.get(number):
            out.append(module.skip[number])
        elif number not in removed:
            out.append(line)
    return "\n".join(out).strip("\n")


# --- imports ---------------------------------------------------------------------


def render_imports(nodes: list[ast.Import | ast.ImportFrom]) -> str:
    """Deduplicated imports: __future__, then stdlib, then third-party; sorted."""
    plain: set[tuple[str, str | None]] = set()
    froms: dict[str, set[tuple[str, str | None]]] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            plain.update((a.name, a.asname) for a in node.names)
        else:
            froms.setdefault(node.module or "", set()).update((a.name, a.asname) for a in node.names)

    def top(name: str) -> str:
        return name.split(".")[0]

    def group(name: str) -> int:
        if name == "__future__":
            return 0
        return 1 if top(name) in sys.stdlib_module_names else 2

    def alias(name: str, asname: str | None) -> str:
        return f"{name} as {asname}" if asname else name

    entries: list[tuple[int, str, str]] = []
    for name, asname in plain:
        entries.append((group(name), name, f"import {alias(name, asname)}"))
    for name, aliases in froms.items():
        listed = ", ".join(alias(n, a) for n, a in sorted(aliases, key=lambda x: (x[0], x[1] or "")))
        entries.append((group(name), name, f"from {name} import {listed}"))
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    lines: list[str] = []
    previous = None
    for grp, _, line in entries:
        if previous is not None and grp != previous:
            lines.append("")
        lines.append(line)
        previous = grp
    return "\n".join(lines)


# --- plugins -----------------------------------------------------------------------


@dataclass
class Plugin:
    id: str
    folder: str
    source: str  # relative posix path
    kind: str
    cls: str
    meta: dict[str, str]
    text: str = ""  # built text
    shared: list[str] = field(default_factory=list)

    @property
    def dist(self) -> str:
        return f"{DIST}/{self.folder}/{Path(self.source).name}"


def plugin_id(folder: str, stem: str) -> str:
    return f"template_{stem}" if folder == "templates" else stem


def discover(root: Path) -> list[tuple[str, str]]:
    found = []
    for folder in FOLDERS:
        base = root / PLUGINS / folder
        if not base.is_dir():
            continue
        for path in sorted(base.glob("*.py")):
            if path.name.startswith("_"):
                continue
            found.append((folder, path.relative_to(root).as_posix()))
    return found


def load_shared(root: Path, name: str, cache: dict[str, Module], where: str) -> Module:
    if name not in cache:
        path = root / SHARED / f"{name}.py"
        if not path.is_file():
            raise BuildError(f"{where}: no module {SHARED}/{name}.py")
        cache[name] = analyse(f"{SHARED}/{name}.py", path.read_text(encoding="utf-8"))
    return cache[name]


def shared_order(root: Path, plugin: Module, cache: dict[str, Module]) -> list[Module]:
    """Shared modules the plugin needs, dependencies first; fails on a cycle."""
    order: list[Module] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str], where: str) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            raise BuildError(f"{plugin.path}: import cycle between shared modules: {cycle}")
        state[name] = "active"
        module = load_shared(root, name, cache, where)
        for dep in sorted(module.shared):
            visit(dep, [*chain, name], module.path)
        state[name] = "done"
        order.append(module)

    for name in sorted(plugin.shared):
        visit(name, [], plugin.path)
    return order


def check_names(plugin: Module, inlined: list[Module]) -> None:
    owners: dict[str, tuple[str, str]] = {}  # name -> (path, binding)
    for module in [*inlined, plugin]:
        bindings = {n: f"{k} in {module.path}" for n, k in defined_names(module).items()}
        for name, binding in import_bindings(module.imports).items():
            bindings.setdefault(name, binding)
        for name, binding in bindings.items():
            if name.startswith("__") and name.endswith("__"):
                continue
            if name in owners and owners[name][1] != binding:
                raise BuildError(
                    f"{module.path}: top-level name {name!r} is also defined in {owners[name][0]}; "
                    "rename one (inlined code shares the plugin's namespace)"
                )
            owners.setdefault(name, (module.path, binding))
    for module in [*inlined, plugin]:
        for dep, names in module.shared.items():
            available = defined_names(inlined_by_name(inlined, dep))
            for name, asname in names:
                if name not in available:
                    raise BuildError(f"{module.path}: shared/{dep}.py has no top-level name {name!r}")
                if asname and asname != name:
                    raise BuildError(f"{module.path}: `import {name} as {asname}` from shared is not supported")


def inlined_by_name(inlined: list[Module], name: str) -> Module:
    for module in inlined:
        if module.path == f"{SHARED}/{name}.py":
            return module
    raise BuildError(f"internal: shared/{name}.py not inlined")


def detect_class(module: Module, folder: str) -> tuple[str, str]:
    classes = {n.name for n in module.tree.body if isinstance(n, ast.ClassDef)}
    if folder in ("tools",):
        order = ("Tools",)
    elif folder == "pipelines":
        order = ("Pipeline",)
    elif folder == "templates":
        order = (*FUNCTION_CLASSES, "Tools", "Pipeline")
    else:
        order = FUNCTION_CLASSES
    for cls in order:
        if cls in classes:
            kind = CLASS_KIND[cls]
            if kind not in FOLDERS[folder]:
                raise BuildError(f"{module.path}: a {kind} does not belong in plugins/{folder}/")
            return cls, kind
    wanted = " or ".join(c for c in order if CLASS_KIND[c] in FOLDERS[folder])
    raise BuildError(f"{module.path}: no class {wanted} at the top level; plugins/{folder}/ needs one")


def build_plugin(root: Path, folder: str, source: str, cache: dict[str, Module]) -> Plugin:
    text = (root / source).read_text(encoding="utf-8")
    meta = parse_frontmatter(text, source)
    stem = Path(source).stem
    if not stem.isidentifier() or stem != stem.lower():
        raise BuildError(f"{source}: file name must be a lower-case Python identifier (it becomes the id)")
    module = analyse(source, text)
    cls, kind = detect_class(module, folder)
    inlined = shared_order(root, module, cache)
    check_names(module, inlined)

    frontmatter = "\n".join(text.splitlines()[: module.docstring_end])
    imports = [n for m in [*inlined, module] for n in m.imports]
    notice = f"# Generated by build.py from {source}; do not edit. Change the source and run `python3 build.py`."
    parts = [f"{frontmatter}\n{notice}"]
    rendered = render_imports(imports)
    if rendered:
        parts.append(rendered)
    for shared_module in inlined:
        digest = hashlib.sha256(shared_module.text.encode("utf-8")).hexdigest()[:16]
        parts.append(
            f"# --- begin inlined: {shared_module.path} (sha256:{digest}) ---\n"
            f"{body_text(shared_module)}\n"
            f"# --- end inlined: {shared_module.path} ---"
        )
    parts.append(body_text(module))
    built = "\n\n\n".join(p for p in parts if p) + "\n"
    match = REWRITTEN.search(built)
    if match:
        line = built.count("\n", 0, match.start()) + 1
        raise BuildError(
            f"{source}: the built file contains {match.group(0)!r} (line {line}), which Open WebUI's "
            "replace_imports rewrites; reword it (e.g. `import configparser`)"
        )
    return Plugin(
        id=plugin_id(folder, stem),
        folder=folder,
        source=source,
        kind=kind,
        cls=cls,
        meta=meta,
        text=built,
        shared=[m.path for m in inlined],
    )


# --- loader emulation ------------------------------------------------------------


class MissingPackage(Exception):
    pass


def compile_like_open_webui(text: str, filename: str) -> types.CodeType:
    """Open WebUI's loader module starts with `from __future__ import annotations` and its
    `exec(content, …)` inherits that flag (open_webui/utils/plugin.py:1,242,291): plugins run
    with postponed annotations. Say so explicitly rather than inherit whatever the caller has."""
    return compile(text, filename, "exec", flags=__future__.annotations.compiler_flag, dont_inherit=True)


def load_module_like_open_webui(plugin: Plugin) -> types.ModuleType:
    """exec the text into a fresh module as open_webui/utils/plugin.py does.

    The module is in sys.modules while its code runs (dataclasses and pydantic resolve postponed
    annotations through it) and `__file__` names a temp file that is gone afterwards.
    """
    name = f"{'tool' if plugin.kind == 'tool' else 'function'}_{plugin.id}_{uuid.uuid4().hex}"
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
    try:
        import pydantic  # noqa: F401
    except ImportError:
        return "pydantic"
    return None


# --- outputs -----------------------------------------------------------------------


def manifest_entry(p: Plugin) -> dict:
    digest = hashlib.sha256(p.text.encode("utf-8")).hexdigest()
    entry = {
        "id": p.id,
        "kind": p.kind,
        "title": p.meta["title"],
        "version": p.meta["version"],
        "description": p.meta["description"],
        "requirements": parse_requirements(p.meta.get("requirements", ""), p.source),
        "required_open_webui_version": p.meta["required_open_webui_version"],
        "global": p.meta.get("global") == "true",
        "source": p.source,
        "dist": p.dist,
        "sha256": digest,
        "shared": p.shared,
    }
    return entry


def bundle(plugins: list[Plugin], kinds: tuple[str, ...]) -> str:
    items = [
        {"id": p.id, "name": p.meta["title"], "content": p.text, "meta": {"description": p.meta["description"]}}
        for p in plugins
        if p.kind in kinds and p.folder != "templates"
    ]
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


README = "README.md"
TABLE_START = "<!-- plugin table: generated by build.py from manifest.json -->"
TABLE_END = "<!-- end of plugin table -->"
KIND_LABEL = {"pipe": "Pipe", "filter": "Filter", "action": "Action", "tool": "Tool", "pipeline": "Pipeline"}


def readme_table(entries: list[dict]) -> str:
    rows = ["| Plugin | Kind | Id | Version | What it does | File |", "|---|---|---|---|---|---|"]
    for e in sorted(entries, key=lambda e: (e["source"].startswith(f"{PLUGINS}/templates/"), e["kind"], e["id"])):
        cell = e["description"].replace("|", "\\|")
        link = f"[{e['dist']}]({e['dist']})"
        rows.append(f"| {e['title']} | {KIND_LABEL[e['kind']]} | `{e['id']}` | {e['version']} | {cell} | {link} |")
    return "\n".join(rows)


def render_readme(root: Path, entries: list[dict]) -> str | None:
    path = root / README
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        return text
    return f"{text[: start + len(TABLE_START)]}\n{readme_table(entries)}\n{text[end:]}"


def render_all(root: Path) -> tuple[list[Plugin], dict[str, str]]:
    """Every generated file (relative path -> text), built in memory."""
    cache: dict[str, Module] = {}
    plugins = [build_plugin(root, folder, source, cache) for folder, source in discover(root)]
    seen: dict[tuple[str, str], str] = {}
    for p in plugins:
        key = (NAMESPACE[p.kind], p.id)
        if key in seen:
            raise BuildError(f"{p.source}: id {p.id!r} is also used by {seen[key]}")
        seen[key] = p.source
    outputs = {p.dist: p.text for p in plugins}
    entries = [manifest_entry(p) for p in sorted(plugins, key=lambda p: (p.id, p.kind))]
    outputs[MANIFEST] = json.dumps({"plugins": entries}, indent=2, ensure_ascii=False) + "\n"
    outputs[f"{DIST}/functions.json"] = bundle(plugins, ("pipe", "filter", "action"))
    outputs[f"{DIST}/tools.json"] = bundle(plugins, ("tool",))
    readme = render_readme(root, entries)
    if readme is not None:
        outputs[README] = readme
    return plugins, outputs


def existing_outputs(root: Path) -> dict[str, str]:
    found = {}
    dist = root / DIST
    if dist.is_dir():
        for path in sorted(dist.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    for name in (MANIFEST, README):
        if (root / name).is_file():
            found[name] = (root / name).read_text(encoding="utf-8")
    return found


def load_check(plugins: list[Plugin], strict: bool) -> list[str]:
    """Load every built file like Open WebUI; messages for the plugins that were skipped."""
    missing = runtime_available()
    if missing:
        if strict:
            raise BuildError(f"load check needs {missing!r}, which this Python does not have")
        return [f"load check skipped: {missing} is not installed in this Python (run it in the test venv)"]
    notes = []
    for p in plugins:
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


def cmd_build(root: Path, strict_load: bool) -> int:
    plugins, outputs = render_all(root)
    notes = load_check(plugins, strict_load)
    old = existing_outputs(root)
    for rel in sorted(set(old) - set(outputs)):
        if rel.startswith(f"{DIST}/"):
            (root / rel).unlink()
    changed = 0
    for rel, text in sorted(outputs.items()):
        path = root / rel
        if old.get(rel) != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed += 1
    for note in notes:
        print(note)
    print(f"built {len(plugins)} plugins; {changed} files written, {len(outputs) - changed} unchanged")
    return 0


def cmd_check(root: Path) -> int:
    _, outputs = render_all(root)
    old = existing_outputs(root)
    stale = sorted(rel for rel in set(outputs) | set(old) if outputs.get(rel) != old.get(rel))
    if not stale:
        print(f"dist/ and {MANIFEST} are up to date ({len(outputs)} files)")
        return 0
    print(f"{len(stale)} generated files differ from a rebuild:")
    for rel in stale:
        state = "missing" if rel not in old else "extra" if rel not in outputs else "differs"
        print(f"  {rel} ({state})")
    first = stale[0]
    diff = difflib.unified_diff(
        old.get(first, "").splitlines(),
        outputs.get(first, "").splitlines(),
        f"committed/{first}",
        f"rebuilt/{first}",
        lineterm="",
        n=2,
    )
    shown = list(diff)[:40]
    if shown:
        print("\n".join(shown))
    print("run `python3 build.py` and commit dist/, manifest.json and README.md")
    return 1


def cmd_new(root: Path, kind: str, name: str, author: str, description: str) -> int:
    if kind not in TEMPLATE_FOR:
        raise BuildError(f"unknown kind {kind!r}; one of {', '.join(TEMPLATE_FOR)}")
    if not name.isidentifier() or name != name.lower():
        raise BuildError(f"name {name!r} must be a lower-case Python identifier (it becomes the plugin id)")
    template, folder = TEMPLATE_FOR[kind]
    target = root / PLUGINS / folder / f"{name}.py"
    if target.exists():
        raise BuildError(f"{target.relative_to(root).as_posix()} exists; not overwriting")
    text = (root / PLUGINS / "templates" / template).read_text(encoding="utf-8")
    fill = {
        "title": name.replace("_", " ").title(),
        "author": author,
        "version": "0.1.0",
        "description": description,
    }
    lines = text.splitlines()
    end = lines.index('"""', 1)
    for i in range(1, end):
        match = FRONTMATTER_KEY.match(lines[i])
        if match and match.group(1) in fill:
            lines[i] = f"{match.group(1)}: {fill[match.group(1)]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"created {target.relative_to(root).as_posix()} from plugins/templates/{template}; run `python3 build.py`")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail if dist/ or manifest.json is stale")
    parser.add_argument("--strict-load", action="store_true", help="fail instead of skipping the load check")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command")
    new = sub.add_parser("new", help="start a plugin from a template")
    new.add_argument("kind", choices=sorted(TEMPLATE_FOR))
    new.add_argument("name")
    new.add_argument("--author", default="Your Name")
    new.add_argument("--description", default="What this plugin does, in one line.")
    deploy = sub.add_parser("deploy", help="install the built pack into a running Open WebUI")
    add_deploy_arguments(deploy)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.command == "new":
            return cmd_new(root, args.kind, args.name, args.author, args.description)
        if args.command == "deploy":
            return cmd_deploy(root, args)
        if args.check:
            return cmd_check(root)
        return cmd_build(root, args.strict_load)
    except BuildError as exc:
        print(f"build.py: error: {exc}", file=sys.stderr)
        return 1


# --- deploy ------------------------------------------------------------------------
# Installs dist/ into a running Open WebUI through its REST API (contract §7). Every change is
# read-before-write, so a second run changes nothing: the toggle endpoints flip state, and the
# valves update endpoint replaces the whole stored set.

FUNCTION_KINDS = ("pipe", "filter", "action")
GLOBAL_KINDS = ("filter", "action")  # Open WebUI applies is_global to these only
PUBLIC_READ = {"principal_type": "user", "principal_id": "*", "permission": "read"}
# the create endpoints hide the loader's exception behind this (open_webui/constants.py:16-23)
HIDDEN_CREATE_ERROR = "[ERROR: Error creating"
# open_webui/utils/plugin.py:189-203, applied to the content before it is stored
OPEN_WEBUI_IMPORT_REWRITES = (
    ("from utils", "from open_webui.utils"),
    ("from apps", "from open_webui.apps"),
    ("from main", "from open_webui.main"),
    ("from config", "from open_webui.config"),
)
DRY_RUN_WORDS = {
    "created": "would create",
    "updated": "would update",
    "activated": "would activate",
    "made global": "would make global",
    "made shared": "would share",
    "valves updated": "would update valves",
}
PLACEHOLDER_CLASS = {
    "pipe": "class Pipe:\n    def pipe(self, body: dict) -> str:\n        return ''\n",
    "filter": "class Filter:\n    def inlet(self, body: dict) -> dict:\n        return body\n",
    "action": "class Action:\n    async def action(self, body: dict) -> None:\n        return None\n",
    "tool": "class Tools:\n    pass\n",
}


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="Open WebUI base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", default=None, help="admin token (default: env OPENWEBUI_TOKEN)")
    parser.add_argument(
        "--only", nargs="+", default=None, metavar="ID", help="deploy only these plugin ids (templates too)"
    )
    parser.add_argument("--valves", type=Path, default=None, help="JSON file {plugin_id: {valve: value}}")
    parser.add_argument("--share-tools", action="store_true", help="give all users read access to the tools")
    parser.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    parser.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)


class ApiError(Exception):
    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def error_detail(raw: bytes) -> str:
    """The `detail` of a FastAPI error body (validation errors listed), else the text."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:2000] or "(empty body)"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" if isinstance(d, dict) else str(d)
            for d in detail
        )
    return detail if isinstance(detail, str) else json.dumps(detail)


class OpenWebUIApi:
    """Minimal JSON client (urllib: build.py stays stdlib-only). The token is only ever a header."""

    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.calls = 0

    def call(self, method: str, path: str, body: object = None):  # -> the decoded JSON
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        self.calls += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(method, path, exc.code, error_detail(exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BuildError(f"cannot reach Open WebUI at {self.url}: {reason}") from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise BuildError(f"{method} {path}: the answer is not JSON; is {self.url} an Open WebUI?") from None


@dataclass
class DeployTarget:
    id: str
    kind: str
    title: str
    description: str
    make_global: bool
    text: str
    dist: str
    valves: dict | None = None

    @property
    def api(self) -> str:
        return "tools" if self.kind == "tool" else "functions"

    def form(self, content: str | None = None) -> dict:
        return {
            "id": self.id,
            "name": self.title,
            "content": self.text if content is None else content,
            "meta": {"description": self.description},
        }


def open_webui_stored(text: str) -> str:
    """The content Open WebUI stores for `text`: it rewrites some imports before saving."""
    for old, new in OPEN_WEBUI_IMPORT_REWRITES:
        text = text.replace(old, new)
    return text


def is_template(entry: dict) -> bool:
    return str(entry.get("source", "")).startswith(f"{PLUGINS}/templates/")


def select_targets(root: Path, only: list[str] | None) -> tuple[list[DeployTarget], list[str]]:
    """What to deploy (default: the pack without templates) and notes on what is skipped."""
    path = root / MANIFEST
    if not path.is_file():
        raise BuildError(f"no {MANIFEST} in {root}; run `python3 build.py` first")
    entries = json.loads(path.read_text(encoding="utf-8"))["plugins"]
    if only:
        known = {e["id"] for e in entries}
        unknown = [i for i in only if i not in known]
        if unknown:
            listed = ", ".join(sorted(known))
            raise BuildError(f"--only: no plugin {', '.join(unknown)} in {MANIFEST} (known: {listed})")
        chosen = [e for i in dict.fromkeys(only) for e in entries if e["id"] == i]
    else:
        chosen = [e for e in entries if not is_template(e)]
    targets, notes = [], []
    for entry in chosen:
        if entry["kind"] not in (*FUNCTION_KINDS, "tool"):
            notes.append(
                f"{entry['id']} ({entry['kind']}): skipped; a Pipelines-server pipeline, not installable into "
                f"Open WebUI (upload {entry['dist']} to a Pipelines server)"
            )
            continue
        dist = root / entry["dist"]
        if not dist.is_file():
            raise BuildError(f"{entry['dist']} is missing; run `python3 build.py`")
        text = dist.read_text(encoding="utf-8")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != entry["sha256"]:
            raise BuildError(f"{entry['dist']} does not match {MANIFEST}; run `python3 build.py`")
        targets.append(
            DeployTarget(
                id=entry["id"],
                kind=entry["kind"],
                title=entry["title"],
                description=entry["description"],
                make_global=bool(entry.get("global")) and entry["kind"] in GLOBAL_KINDS,
                text=text,
                dist=entry["dist"],
            )
        )
    return targets, notes


def valve_names(target: DeployTarget) -> list[str] | None:
    """Field names of the plugin class's Valves (None: it has no Valves), read from the built text."""
    cls = {"pipe": "Pipe", "filter": "Filter", "action": "Action", "tool": "Tools"}[target.kind]
    for node in ast.parse(target.text).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for inner in node.body:
                if isinstance(inner, ast.ClassDef) and inner.name == "Valves":
                    return [
                        n.target.id
                        for n in inner.body
                        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
                    ]
    return None


def load_valves(path: Path, root: Path, targets: list[DeployTarget]) -> None:
    """Attach the valves file's entries to the targets; typos in ids or valve names are errors."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BuildError(f"--valves {path}: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise BuildError(f"--valves {path}: expected {{plugin_id: {{valve: value}}}}")
    known = {e["id"] for e in json.loads((root / MANIFEST).read_text(encoding="utf-8"))["plugins"]}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BuildError(f"--valves {path}: no plugin {', '.join(unknown)} in {MANIFEST}")
    for target in targets:
        if target.id not in data:
            continue
        names = valve_names(target)
        wrong = sorted(set(data[target.id]) - set(names or []))
        if wrong:
            have = ", ".join(names) if names else "none"
            raise BuildError(f"--valves {path}: {target.id} has no valve {', '.join(wrong)} (its valves: {have})")
        target.valves = data[target.id]


def create_plugin(api: OpenWebUIApi, target: DeployTarget) -> dict:
    """Create; when the server hides why, learn it through the update endpoint, which does not."""
    try:
        return api.call("POST", f"/api/v1/{target.api}/create", target.form())
    except ApiError as exc:
        if exc.status != 400 or HIDDEN_CREATE_ERROR not in exc.detail:
            raise
    # create a harmless placeholder under the same id, update it with our text, then delete it
    placeholder = target.form(f'"""\ntitle: {target.title}\n"""\n\n' + PLACEHOLDER_CLASS[target.kind])
    try:
        api.call("POST", f"/api/v1/{target.api}/create", placeholder)
    except ApiError as exc:
        raise BuildError(f"Open WebUI refused to create it ({exc.detail}); its log says why") from None
    try:
        return api.call("POST", f"/api/v1/{target.api}/id/{target.id}/update", target.form())
    except ApiError as exc:
        api.call("DELETE", f"/api/v1/{target.api}/id/{target.id}/delete")
        raise BuildError(f"Open WebUI cannot load {target.dist}: {exc.detail}") from None


def content_differs(stored: dict, target: DeployTarget) -> bool:
    return (
        stored.get("content") != open_webui_stored(target.text)
        or stored.get("name") != target.title
        or (stored.get("meta") or {}).get("description") != target.description
    )


def merged_valves(stored: dict | None, ours: dict) -> dict:
    # a null in the file means "back to the default": the server drops None values anyway
    merged = {**(stored or {}), **ours}
    return {k: v for k, v in merged.items() if v is not None}


def deploy_content(api: OpenWebUIApi, target: DeployTarget, stored: dict | None, dry_run: bool) -> tuple[str, dict]:
    if stored is None:
        return "created", ({} if dry_run else create_plugin(api, target))
    if content_differs(stored, target):
        if dry_run:
            return "updated", stored
        return "updated", api.call("POST", f"/api/v1/{target.api}/id/{target.id}/update", target.form())
    return "unchanged", stored


def deploy_valves(api: OpenWebUIApi, target: DeployTarget, stored: dict | None, dry_run: bool) -> str | None:
    if target.valves is None:
        return None
    merged = merged_valves(stored, target.valves)
    if merged == (stored or {}):
        return None
    if not dry_run:
        try:
            api.call("POST", f"/api/v1/{target.api}/id/{target.id}/valves/update", merged)
        except ApiError as exc:
            spec = api.call("GET", f"/api/v1/{target.api}/id/{target.id}/valves/spec") or {}
            props = spec.get("properties", {}) if isinstance(spec, dict) else {}
            types_ = ", ".join(f"{k}: {props.get(k, {}).get('type', '?')}" for k in sorted(target.valves))
            # values are never shown: valves hold API keys
            raise BuildError(f"the server rejected the valves ({exc.detail}); expected types: {types_}") from None
    return "valves updated"


def deploy_function(api: OpenWebUIApi, target: DeployTarget, stored: dict | None, dry_run: bool) -> list[str]:
    state, current = deploy_content(api, target, stored, dry_run)
    words = [state]
    changed_valves = deploy_valves(api, target, (stored or {}).get("valves"), dry_run)
    if current.get("is_active"):
        words.append("active")
    else:
        if not dry_run:
            current = api.call("POST", f"/api/v1/functions/id/{target.id}/toggle")
            if not current.get("is_active"):
                raise BuildError("toggling did not activate it (changed concurrently?); run deploy again")
        words.append("activated")
    if target.make_global:
        if current.get("is_global"):
            words.append("global")
        else:
            if not dry_run:
                current = api.call("POST", f"/api/v1/functions/id/{target.id}/toggle/global")
                if not current.get("is_global"):
                    raise BuildError("toggling did not make it global (changed concurrently?); run deploy again")
            words.append("made global")
    if changed_valves:
        words.append(changed_valves)
    return words


def deploy_tool(api: OpenWebUIApi, target: DeployTarget, share: bool, dry_run: bool) -> list[str]:
    try:
        stored = api.call("GET", f"/api/v1/tools/id/{target.id}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        stored = None
    state, current = deploy_content(api, target, stored, dry_run)
    words = [state]
    valves = None
    if target.valves is not None and stored is not None:
        valves = api.call("GET", f"/api/v1/tools/id/{target.id}/valves")
    changed_valves = deploy_valves(api, target, valves, dry_run)
    if share:
        grants = [
            {k: g.get(k) for k in ("principal_type", "principal_id", "permission")}
            for g in (current.get("access_grants") or [])
        ]
        if PUBLIC_READ in grants:
            words.append("shared")
        else:
            if not dry_run:
                grants.append(PUBLIC_READ)
                api.call("POST", f"/api/v1/tools/id/{target.id}/access/update", {"access_grants": grants})
            words.append("made shared")
    if changed_valves:
        words.append(changed_valves)
    return words


def check_admin(api: OpenWebUIApi) -> None:
    try:
        me = api.call("GET", "/api/v1/auths/")
    except ApiError as exc:
        raise BuildError(f"the token was refused ({exc}); pass an admin's token") from None
    role = me.get("role") if isinstance(me, dict) else None
    if role != "admin":
        raise BuildError(f"the token belongs to a user with role {role!r}; deploying needs an admin")


def cmd_deploy(root: Path, args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("OPENWEBUI_TOKEN")
    if not token:
        raise BuildError("no token: pass --token or set OPENWEBUI_TOKEN (an admin's API key or JWT)")
    started = time.perf_counter()
    targets, notes = select_targets(root, args.only)
    if args.valves is not None:
        load_valves(args.valves, root, targets)
    api = OpenWebUIApi(args.url, token, timeout=args.timeout)
    check_admin(api)
    functions = {
        f["id"]: f for f in api.call("GET", "/api/v1/functions/export?include_valves=true") or [] if isinstance(f, dict)
    }
    if args.dry_run:
        print(f"dry run against {api.url}: nothing is changed")
    for note in notes:
        print(note)
    failed, changed = 0, 0
    for target in targets:
        try:
            if target.kind == "tool":
                words = deploy_tool(api, target, args.share_tools, args.dry_run)
            else:
                words = deploy_function(api, target, functions.get(target.id), args.dry_run)
        except (ApiError, BuildError) as exc:
            failed += 1
            print(f"{target.id} ({target.kind}): FAILED: {exc}", flush=True)
            continue
        if any(w not in ("unchanged", "active", "global", "shared") for w in words):
            changed += 1
        shown = [DRY_RUN_WORDS.get(w, w) for w in words] if args.dry_run else words
        print(f"{target.id} ({target.kind}): {', '.join(shown)}", flush=True)
    if not args.dry_run and targets:
        try:
            models = api.call("GET", "/api/models")
            listed = len(models.get("data", [])) if isinstance(models, dict) else 0
            print(f"refreshed /api/models: {listed} models listed")
        except ApiError as exc:
            failed += 1
            print(f"refreshing /api/models FAILED: {exc}")
    took = time.perf_counter() - started
    ok = len(targets) - failed
    print(
        f"{'checked' if args.dry_run else 'deployed'} {ok} of {len(targets)} plugins in {took:.2f} s; "
        f"{changed} {'would change' if args.dry_run else 'changed'}, {failed} failed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
