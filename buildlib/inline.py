"""Lean inlining: each `from shared.<module> import name` of a plugin becomes a copy of exactly
the top-level code of shared/<module>.py that `name` reaches, so every built file stands alone.

A top-level statement of a shared module is "reached" when it binds a name that the plugin
imports, or that a reached statement refers to (in its body, annotations, decorators, defaults or
base classes), across shared modules. Statements that bind nothing (a bare call, say) come along
once anything of their module is reached. Hoisted imports are kept only for the names reached code
uses; a `from __future__` import comes with its module. Reached statements keep their source order
and the comment lines written directly above them; a shared module's docstring is not copied.

References are resolved with Python's scoping rules (a parameter or local variable shadows a
module-level name), and a few dynamic forms are followed: string annotations, `getattr(x, "name")`
and `globals()["name"]`. A reached statement that calls `globals()`, `vars()` or `dir()` without a
literal name reaches its whole module.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from buildlib import SHARED, BuildError
from buildlib.kinds import RESERVED

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_WHOLE_NAMESPACE = ("globals", "vars", "dir", "locals")
EVERYTHING = "*"  # a reference to every top-level name of the module


# --- parsing ---------------------------------------------------------------------------------


@dataclass
class Part:
    """Top-level statements of a shared module that share lines (usually one statement)."""

    nodes: list[ast.stmt]
    start: int  # first line, decorators included
    end: int
    binds: frozenset[str]
    refs: frozenset[str]


@dataclass
class Source:
    """A parsed plugin or shared module: its hoisted imports, shared imports and statements."""

    path: str  # relative to the root, posix
    text: str
    tree: ast.Module
    imports: list[ast.Import | ast.ImportFrom] = field(default_factory=list)  # hoisted, not shared
    shared: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)  # module -> names
    skip: dict[int, str] = field(default_factory=dict)  # first line of an import -> replacement
    spans: list[tuple[int, int]] = field(default_factory=list)  # lines of the hoisted imports
    docstring_end: int = 0
    _parts: list[Part] | None = None
    _lines: list[str] | None = None
    _import_names: dict[str, str] | None = None
    _defined: dict[str, str] | None = None

    @property
    def import_names(self) -> dict[str, str]:
        if self._import_names is None:
            self._import_names = import_bindings(self.imports)
        return self._import_names

    @property
    def parts(self) -> list[Part]:
        if self._parts is None:
            self._parts = split_parts(self)
        return self._parts


def analyse(path: str, text: str) -> Source:
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise BuildError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    source = Source(path, text, tree)
    body = tree.body
    if body and _is_docstring(body[0]):
        source.docstring_end = body[0].end_lineno or 0
        body = body[1:]
    for node in ast.walk(tree):
        _check_import_form(path, node, body)
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            _hoist(source, node)
    return source


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _check_import_form(path: str, node: ast.AST, body: list[ast.stmt]) -> None:
    if isinstance(node, ast.ImportFrom) and (node.level or 0) > 0:
        raise BuildError(f"{path}:{node.lineno}: relative import; use `from shared.<module> import name`")
    if isinstance(node, ast.ImportFrom) and node.module == SHARED:
        raise BuildError(f"{path}:{node.lineno}: `from shared import ...`; use `from shared.<module> import name`")
    if isinstance(node, ast.Import) and any(a.name == SHARED or a.name.startswith(f"{SHARED}.") for a in node.names):
        raise BuildError(
            f"{path}:{node.lineno}: `import shared...` cannot be inlined; use `from shared.<module> import name`"
        )
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{SHARED}.") and node not in body:
        raise BuildError(f"{path}:{node.lineno}: shared imports must be at the top level of the module")


def _hoist(source: Source, node: ast.Import | ast.ImportFrom) -> None:
    span = (node.lineno, node.end_lineno or node.lineno)
    source.spans.append(span)
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{SHARED}."):
        name = node.module.split(".", 1)[1]
        if "." in name:
            raise BuildError(f"{source.path}:{node.lineno}: shared modules are flat: shared/<module>.py")
        if any(a.name == "*" for a in node.names):
            raise BuildError(f"{source.path}:{node.lineno}: star import from shared; name what you use")
        source.shared.setdefault(name, []).extend((a.name, a.asname) for a in node.names)
        source.skip[span[0]] = "# " + " ".join(_segment(source, node).split()) + "  (inlined above)"
    else:
        source.imports.append(node)
        source.skip[span[0]] = ""


def _segment(source: Source, node: ast.stmt) -> str:
    """The exact source text of `node` (ast.get_source_segment re-splits the whole file per call)."""
    if source._lines is None:
        source._lines = source.text.splitlines()
    lines = source._lines[node.lineno - 1 : node.end_lineno]
    lines[-1] = lines[-1][: node.end_col_offset]
    lines[0] = lines[0][node.col_offset :]
    return "\n".join(lines)


def split_parts(source: Source) -> list[Part]:
    """The module's top-level statements other than its docstring and hoisted imports."""
    statements = [
        n
        for n in source.tree.body[1 if source.docstring_end else 0 :]
        if not isinstance(n, ast.Import | ast.ImportFrom)
    ]
    parts: list[Part] = []
    for node in statements:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        end = node.end_lineno or node.lineno
        binds, refs = top_level_bindings(node), global_refs(node)
        if parts and start <= parts[-1].end:  # `a = 1; b = 2` on one line: one part
            last = parts.pop()
            parts.append(
                Part([*last.nodes, node], last.start, max(end, last.end), last.binds | binds, last.refs | refs)
            )
        else:
            parts.append(Part([node], start, end, frozenset(binds), frozenset(refs)))
    return parts


# --- scopes ----------------------------------------------------------------------------------


def _params(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def _outer_parts(node: ast.AST) -> list[tuple[ast.expr, bool]]:
    """What a def/class/lambda evaluates in the enclosing scope: (expression, is an annotation)."""
    outer: list[tuple[ast.expr, bool]] = [(d, False) for d in getattr(node, "decorator_list", [])]
    if isinstance(node, ast.ClassDef):
        outer += [(b, False) for b in node.bases] + [(k.value, False) for k in node.keywords]
        return outer
    args: ast.arguments = node.args  # type: ignore[attr-defined]
    outer += [(d, False) for d in [*args.defaults, *args.kw_defaults] if d is not None]
    if isinstance(node, _FUNCTIONS):
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        outer += [(a.annotation, True) for a in every if a is not None and a.annotation is not None]
        if node.returns is not None:
            outer.append((node.returns, True))
    return outer


def scope_bindings(nodes: list[ast.AST]) -> set[str]:
    """Names bound in one scope (nested scopes' bodies excluded), minus those declared global."""
    bound: set[str] = set()
    declared: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Global):
            declared.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            bound.update(node.names)  # an enclosing function's variable, never the module's
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                bound.add(node.name)
            stack.extend(expr for expr, _ in _outer_parts(node))
        elif isinstance(node, _COMPREHENSIONS):
            stack.append(node.generators[0].iter)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return bound - declared


def top_level_bindings(node: ast.stmt) -> set[str]:
    return scope_bindings([node])


def global_refs(node: ast.AST) -> set[str]:
    """Module-level names `node` refers to (EVERYTHING when it reads the namespace as a whole)."""
    found: set[str] = set()
    _Refs(found).visit(node, ())
    return found


class _Refs:
    def __init__(self, found: set[str]) -> None:
        self.found = found

    def visit(self, node: ast.AST, scopes: tuple[frozenset[str], ...]) -> None:
        # one branch per kind of node that opens a scope or names something: flatter as a dispatch
        if isinstance(node, ast.Name):
            local = any(node.id in s for s in scopes)
            # a store inside a function to a name that is not local there is a `global` assignment
            if not local and (isinstance(node.ctx, ast.Load) or scopes):
                self.found.add(node.id)
        elif isinstance(node, (*_FUNCTIONS, ast.Lambda)):
            self.outer(node, scopes)
            body = node.body if isinstance(node.body, list) else [node.body]
            inner = (*scopes, frozenset(_params(node.args) | scope_bindings(body)))
            for child in body:
                self.visit(child, inner)
        elif isinstance(node, ast.ClassDef):
            # the class body's own names are invisible to its methods, and reads in the body
            # itself count as module references (a conservative reading of class scope)
            self.outer(node, scopes)
            for child in node.body:
                self.visit(child, scopes)
        elif isinstance(node, _COMPREHENSIONS):
            self.comprehension(node, scopes)
        elif isinstance(node, ast.AnnAssign):
            self.visit(node.target, scopes)
            self.annotation(node.annotation, scopes)
            if node.value is not None:
                self.visit(node.value, scopes)
        elif isinstance(node, ast.Call):
            self.call(node, scopes)
        elif isinstance(node, ast.Subscript) and _is_namespace_call(node.value):
            self.literal_name(node.slice)
            self.visit(node.value, scopes)
        else:
            for child in ast.iter_child_nodes(node):
                self.visit(child, scopes)

    def outer(self, node: ast.AST, scopes: tuple[frozenset[str], ...]) -> None:
        for expr, is_annotation in _outer_parts(node):
            if is_annotation:
                self.annotation(expr, scopes)
            else:
                self.visit(expr, scopes)

    def annotation(self, expr: ast.expr, scopes: tuple[frozenset[str], ...]) -> None:
        for node in ast.walk(expr):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                try:
                    parsed = ast.parse(node.value, mode="eval")
                except SyntaxError:
                    continue
                self.visit(parsed.body, scopes)
        self.visit(expr, scopes)

    def comprehension(self, node: ast.AST, scopes: tuple[frozenset[str], ...]) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter, scopes)
        targets = {n.id for g in generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        inner = (*scopes, frozenset(targets))
        for i, generator in enumerate(generators):
            if i:
                self.visit(generator.iter, inner)
            for condition in generator.ifs:
                self.visit(condition, inner)
        for attr in ("elt", "key", "value"):
            if getattr(node, attr, None) is not None:
                self.visit(getattr(node, attr), inner)

    def call(self, node: ast.Call, scopes: tuple[frozenset[str], ...]) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) >= 2:
            self.literal_name(node.args[1])
        if isinstance(func, ast.Name) and func.id in _WHOLE_NAMESPACE and not node.args:
            self.found.add(EVERYTHING)
        if isinstance(func, ast.Attribute) and func.attr == "get" and _is_namespace_call(func.value) and node.args:
            self.literal_name(node.args[0])
        for child in ast.iter_child_nodes(node):
            self.visit(child, scopes)

    def literal_name(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            self.found.add(node.value)


def _is_namespace_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _WHOLE_NAMESPACE


# --- names -----------------------------------------------------------------------------------


def defined_names(source: Source) -> dict[str, str]:
    """Top-level names the module binds itself (not through hoisted imports) -> what binds them."""
    if source._defined is not None:
        return source._defined
    names: dict[str, str] = {}
    for node in source.tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        what = "def" if isinstance(node, (*_FUNCTIONS, ast.ClassDef)) else "assignment"
        for name in sorted(top_level_bindings(node)):
            names.setdefault(name, what)
    source._defined = names
    return names


def import_binding(node: ast.Import | ast.ImportFrom, alias: ast.alias) -> tuple[str, str]:
    """(bound name, what it is bound to): equal imports in two modules do not collide."""
    if isinstance(node, ast.Import):
        name = alias.asname or alias.name.split(".")[0]
        return name, f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
    return alias.asname or alias.name, f"from {node.module} import {alias.name}"


def import_bindings(imports: list[ast.Import | ast.ImportFrom]) -> dict[str, str]:
    bound: dict[str, str] = {}
    for node in imports:
        for alias in node.names:
            name, binding = import_binding(node, alias)
            bound[name] = binding
    return bound


# --- reach -----------------------------------------------------------------------------------


@dataclass
class Inlined:
    """What one shared module contributes to a built file."""

    source: Source
    parts: list[Part]  # in source order
    imports: list[ast.Import | ast.ImportFrom]  # only the names the parts use

    @property
    def binds(self) -> set[str]:
        return {name for part in self.parts for name in part.binds}

    def text(self) -> str:
        return render_parts(self.source, self.parts)

    def marker(self) -> str:
        digest = hashlib.sha256(self.source.text.encode("utf-8")).hexdigest()[:16]
        return f"{self.source.path} (sha256:{digest})"


def load_shared(root: Path, name: str, cache: dict[str, Source], where: str) -> Source:
    if name not in cache:
        path = root / SHARED / f"{name}.py"
        if not path.is_file():
            raise BuildError(f"{where}: no module {SHARED}/{name}.py")
        cache[name] = analyse(f"{SHARED}/{name}.py", path.read_text(encoding="utf-8"))
    return cache[name]


def shared_order(root: Path, plugin: Source, cache: dict[str, Source]) -> list[Source]:
    """Every shared module the plugin imports, transitively, dependencies first; fails on a cycle."""
    order: list[Source] = []
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


def _module_name(source: Source) -> str:
    return Path(source.path).stem


class _Reach:
    """Worklist over (shared module, name) until nothing new is reached."""

    def __init__(self, modules: list[Source]) -> None:
        self.modules = {_module_name(m): m for m in modules}
        self.chosen: dict[str, set[int]] = {name: set() for name in self.modules}
        self.used_imports: dict[str, set[str]] = {name: set() for name in self.modules}
        self.seen: set[tuple[str, str]] = set()
        self.queue: list[tuple[str, str]] = []

    def run(self, roots: list[tuple[str, str]]) -> None:
        self.queue.extend(roots)
        while self.queue:
            module, name = self.queue.pop()
            if (module, name) in self.seen:
                continue
            self.seen.add((module, name))
            self.reach(module, name)

    def reach(self, module: str, name: str) -> None:
        source = self.modules[module]
        if name == EVERYTHING:
            for part in source.parts:
                self.queue.extend((module, n) for n in part.binds)
            return
        for index, part in enumerate(source.parts):
            if name in part.binds:
                self.choose(module, index)
        if name in source.import_names:
            self.used_imports[module].add(name)
        for dep, names in source.shared.items():
            if any(n == name for n, _ in names):
                self.queue.append((dep, name))

    def choose(self, module: str, index: int) -> None:
        chosen = self.chosen[module]
        if index in chosen:
            return
        first = not chosen
        chosen.add(index)
        parts = self.modules[module].parts
        self.queue.extend((module, ref) for ref in parts[index].refs)
        if first:
            # statements that bind nothing run for their effect: they come with the module
            for other, part in enumerate(parts):
                if not part.binds:
                    self.choose(module, other)

    def inlined(self, order: list[Source]) -> list[Inlined]:
        result = []
        for source in order:
            name = _module_name(source)
            if not self.chosen[name]:
                continue
            parts = [source.parts[i] for i in sorted(self.chosen[name])]
            result.append(Inlined(source, parts, _pruned_imports(source.imports, self.used_imports[name])))
        return result


def _pruned_imports(imports: list[ast.Import | ast.ImportFrom], used: set[str]) -> list[ast.Import | ast.ImportFrom]:
    kept: list[ast.Import | ast.ImportFrom] = []
    for node in imports:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            kept.append(node)  # a compiler directive for the module's code, not a name
            continue
        names = [a for a in node.names if import_binding(node, a)[0] in used]
        if not names:
            continue
        if isinstance(node, ast.Import):
            kept.append(ast.Import(names=names))
        else:
            kept.append(ast.ImportFrom(module=node.module, names=names, level=0))
    return kept


def inline(root: Path, plugin: Source, cache: dict[str, Source]) -> list[Inlined]:
    """The shared code the plugin reaches, module by module, dependencies first."""
    order = shared_order(root, plugin, cache)
    check_shared_imports([*order, plugin], {_module_name(m): m for m in order})
    reach = _Reach(order)
    reach.run([(dep, name) for dep, names in sorted(plugin.shared.items()) for name, _ in names])
    inlined = reach.inlined(order)
    check_names(plugin, inlined)
    return inlined


# --- checks ----------------------------------------------------------------------------------


def check_shared_imports(sources: list[Source], modules: dict[str, Source]) -> None:
    for source in sources:
        for dep, names in source.shared.items():
            available = defined_names(modules[dep])
            for name, asname in names:
                if name not in available:
                    raise BuildError(f"{source.path}: shared/{dep}.py has no top-level name {name!r}")
                if asname and asname != name:
                    raise BuildError(f"{source.path}: `import {name} as {asname}` from shared is not supported")


def check_names(plugin: Source, inlined: list[Inlined]) -> None:
    """Inlined code shares the plugin's namespace: no name may mean two things, none may be reserved."""
    owners: dict[str, tuple[str, str]] = {}  # name -> (path, binding)
    modules: list[tuple[str, dict[str, str]]] = []
    for item in inlined:
        bindings = {n: f"definition in {item.source.path}" for n in sorted(item.binds)}
        for name, binding in import_bindings(item.imports).items():
            bindings.setdefault(name, binding)
        reserved = sorted(n for n in bindings if n in RESERVED)
        if reserved:
            raise BuildError(
                f"{item.source.path}: defines {', '.join(reserved)}, a name Open WebUI looks up on a plugin "
                f"module to tell what kind of plugin it is; inlined into {plugin.path} it would be mistaken "
                "for the plugin's own class. Rename it"
            )
        modules.append((item.source.path, bindings))
    plugin_bindings = {n: f"{k} in {plugin.path}" for n, k in defined_names(plugin).items()}
    for name, binding in import_bindings(plugin.imports).items():
        plugin_bindings.setdefault(name, binding)
    modules.append((plugin.path, plugin_bindings))
    for path, bindings in modules:
        for name, binding in bindings.items():
            if name.startswith("__") and name.endswith("__"):
                continue
            if name in owners and owners[name][1] != binding:
                raise BuildError(
                    f"{path}: top-level name {name!r} is also defined in {owners[name][0]}; "
                    "rename one (inlined code shares the plugin's namespace)"
                )
            owners.setdefault(name, (path, binding))


# --- text --------------------------------------------------------------------------------------


def _is_block(part: Part) -> bool:
    return any(isinstance(n, (*_FUNCTIONS, ast.ClassDef)) for n in part.nodes)


def render_parts(source: Source, parts: list[Part]) -> str:
    """The chosen parts in source order, each with the comment lines written directly above it."""
    lines = source.text.splitlines()
    every = source.parts
    position = {id(p): i for i, p in enumerate(every)}
    out: list[str] = []
    previous: Part | None = None
    for part in parts:
        index = position[id(part)]
        # comments belong to a part when nothing but comment lines separates them from it
        low = max(
            [every[index - 1].end if index else source.docstring_end, *(e for _, e in source.spans if e < part.start)]
        )
        start = part.start
        while start - 1 > low and lines[start - 2].lstrip().startswith("#"):
            start -= 1
        if previous is not None:
            out.extend([""] * _gap(previous, part, lines, position[id(previous)] + 1 == index))
        out.extend(lines[start - 1 : part.end])
        previous = part
    return "\n".join(out)


def _gap(previous: Part, part: Part, lines: list[str], adjacent: bool) -> int:
    """Blank lines between two copied parts: two around a def or class, else as in the source."""
    if _is_block(previous) or _is_block(part):
        return 2
    if adjacent:
        between = lines[previous.end : part.start - 1]
        return min(2, sum(1 for line in between if not line.strip()))
    return 1


def body_text(source: Source) -> str:
    """A plugin's source without its docstring, hoisted imports removed, shared imports noted."""
    lines = source.text.splitlines()
    removed: set[int] = set()
    for start, end in source.spans:
        removed.update(range(start, end + 1))
    out: list[str] = []
    for number, line in enumerate(lines, start=1):
        if number <= source.docstring_end:
            continue
        if source.skip.get(number):
            out.append(source.skip[number])
        elif number not in removed:
            out.append(line)
    return "\n".join(out).strip("\n")


def render_imports(nodes: list[ast.Import | ast.ImportFrom]) -> str:
    """Deduplicated imports: __future__, then stdlib, then third-party; sorted."""
    plain: set[tuple[str, str | None]] = set()
    froms: dict[str, set[tuple[str, str | None]]] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            plain.update((a.name, a.asname) for a in node.names)
        else:
            froms.setdefault(node.module or "", set()).update((a.name, a.asname) for a in node.names)

    def group(name: str) -> int:
        if name == "__future__":
            return 0
        return 1 if name.split(".")[0] in sys.stdlib_module_names else 2

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
