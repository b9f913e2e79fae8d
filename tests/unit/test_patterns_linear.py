"""Every regular expression of every built plugin runs in linear time on adversarial text.

Plugins run their patterns on text any user or upstream writes (history, answers, error bodies,
transcripts), on the server's event loop: a pattern that backtracks quadratically there stalls
every other user of the worker. This test loads each plugin's file in dist/ as Open WebUI does,
collects every compiled `re.Pattern` reachable from the module and its classes, and every regex
literal passed to a `re.*` function in its source (found with `ast`), and runs each one the way the
plugin uses it on 10 KB and 40 KB of repeated tags, brackets, backticks, spaces and the like.

How growth is measured: Python's `re` has no step counter, so the proxy is the ratio of two timings
in one run, 40 KB against 10 KB. Linear work gives about 4, quadratic about 16; the bound is 8. The
timings are of this thread's CPU time (time.thread_time), which other processes on a busy machine
do not inflate; each is the best of several runs (short calls are looped until they take a
half a millisecond), and a pair over the bound is measured twice more before it counts. No timing is
compared with a fixed number of seconds.
"""

import ast
import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buildlib.loader import MissingPackage, load_module_like_open_webui
from tests.helpers import ROOT, built

SMALL, LARGE = 10_000, 40_000
BOUND = 8.0  # LARGE / SMALL is 4: linear work grows about 4x, quadratic about 16x
FINDINGS_PER_PATTERN = 3

# What a long message, answer or error body may repeat: tags, brackets, backticks, spaces ...
UNITS = [
    "<think>", "</think>", "<details>", '<details type="', "</details", "<", "<t", "<|", "◁", "[", "[1", "[1,",
    "[1#", "[1]", "[1] ", "`", "``", "```\n", "~~~\n", " ", "\t", "\n", " \n", "a", "A", "Aa", "0", "1.", "-", "_",
    "sk-", "Bearer ", "key=", "key ", "type=", "type", '"', "'", "\\", '<source id="', "data: ", "{", "gemini-",
    "&", ".", ":", "h", "m", "s", "1h", "Error ", "File ",
]  # fmt: skip
TAILS = ["", "x", "!\n"]  # a run that ends in text a pattern does not expect forces its failure path

ANCHORED = {"match", "fullmatch"}
SCANNING = {"search", "sub", "subn", "findall", "finditer", "split"}
RE_FUNCTIONS = ANCHORED | SCANNING | {"compile"}


def adversarial(size: int) -> Iterator[tuple[str, str]]:
    for unit in UNITS:
        run = unit * (size // len(unit))
        for tail in TAILS:
            yield f"{unit!r}*{size}+{tail!r}", run + tail


# --- where the patterns are -------------------------------------------------------------------------


@dataclasses.dataclass
class Found:
    where: str  # "name" in the module, or "re.sub at line 12"
    pattern: re.Pattern[str]
    uses: set[str]  # how the plugin calls it: match, search, sub ...


def _flags(node: ast.expr | None) -> int | None:
    """The value of a flags expression made of re.X names and `|`; None if it is anything else."""
    if node is None:
        return 0
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "re":
        value = getattr(re, node.attr, None)
        return int(value) if isinstance(value, re.RegexFlag) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _flags(node.left), _flags(node.right)
        return None if left is None or right is None else left | right
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    return None


# Where a function's flags argument stands when it is passed by position.
_FLAGS_POSITION = {"compile": 1, "search": 2, "match": 2, "fullmatch": 2, "findall": 2, "finditer": 2, "split": 3}
_FLAGS_POSITION |= {"sub": 4, "subn": 4}


def literal_patterns(source: str) -> list[Found]:
    """Regex literals passed straight to a re function (`re.sub(r"…", …)`), with the use."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        func = node.func
        if not (isinstance(func.value, ast.Name) and func.value.id == "re" and func.attr in RE_FUNCTIONS):
            continue
        if not node.args or not isinstance(node.args[0], ast.Constant) or not isinstance(node.args[0].value, str):
            continue
        flags_node = next((k.value for k in node.keywords if k.arg == "flags"), None)
        position = _FLAGS_POSITION[func.attr]
        if flags_node is None and len(node.args) > position:
            flags_node = node.args[position]
        flags = _flags(flags_node)
        if flags is None:
            continue
        uses = set() if func.attr == "compile" else {func.attr}
        found.append(Found(f"re.{func.attr} at line {node.lineno}", re.compile(node.args[0].value, flags), uses))
    return found


def uses_by_name(source: str) -> dict[str, set[str]]:
    """For each name, the re.Pattern methods called on it (`_CODE.finditer(…)` -> finditer)."""
    uses: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ANCHORED | SCANNING:
            target = node.value
            name = (
                target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else ""
            )
            if name:
                uses.setdefault(name, set()).add(node.attr)
    return uses


def _namespaces(module: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "", vars(module)
    seen: set[int] = set()
    stack = [(name, value) for name, value in vars(module).items() if isinstance(value, type)]
    while stack:
        name, cls = stack.pop()
        if id(cls) in seen or cls.__module__ != module.__name__:
            continue
        seen.add(id(cls))
        yield f"{name}.", vars(cls)
        stack += [(f"{name}.{n}", v) for n, v in vars(cls).items() if isinstance(v, type)]


def compiled_patterns(module: Any, source: str) -> list[Found]:
    """Every re.Pattern in the module's namespace and its classes' (nested ones too)."""
    uses = uses_by_name(source)
    found: dict[int, Found] = {}
    for prefix, namespace in _namespaces(module):
        for name, value in namespace.items():
            values = value if isinstance(value, list | tuple) else [value]
            for item in values:
                if isinstance(item, re.Pattern) and isinstance(item.pattern, str) and id(item) not in found:
                    found[id(item)] = Found(prefix + name, item, uses.get(name, set()))
    return list(found.values())


def built_files() -> list[Any]:
    """Every plugin as its file in dist/ holds it (`python3 build.py --check` keeps dist/ current);
    one not built yet as the build makes it now."""
    plugins = []
    for plugin in built():
        path = ROOT / plugin.dist
        plugins.append(dataclasses.replace(plugin, text=path.read_text(encoding="utf-8")) if path.exists() else plugin)
    return plugins


def all_patterns(plugin: Any) -> list[Found]:
    """The module's compiled patterns and the source's literals, each pattern once with all its uses.

    A plugin whose package is not installed here (it cannot be loaded) is read from its source
    alone: every literal pattern, not the ones it builds at run time.
    """
    try:
        found = compiled_patterns(load_module_like_open_webui(plugin), plugin.text)
    except MissingPackage:
        found = []
    unique: dict[tuple[str, int], Found] = {}
    for item in found + literal_patterns(plugin.text):
        key = (item.pattern.pattern, item.pattern.flags)
        if key in unique:
            unique[key].uses |= item.uses
        else:
            unique[key] = item
    return list(unique.values())


# --- how long a use takes ---------------------------------------------------------------------------


def runner(found: Found) -> Callable[[str], object]:
    """The plugin's own use of the pattern; a pattern whose use is unknown is scanned (the worst)."""
    pattern = found.pattern
    if found.uses and found.uses <= ANCHORED:
        return lambda text: (pattern.match(text), pattern.fullmatch(text))
    return lambda text: sum(1 for _ in pattern.finditer(text))


def seconds(run: Callable[[str], object], text: str, repeats: int) -> float:
    """The best time of `repeats` runs; a run is looped until it takes half a millisecond. A run that
    already takes long is timed once: noise cannot make it look slower than it is by much."""
    best = float("inf")
    for _ in range(repeats):
        loops, start = 0, time.thread_time()
        while True:
            run(text)
            loops += 1
            elapsed = time.thread_time() - start
            if elapsed > 0.0005:
                break
        best = min(best, elapsed / loops)
        if elapsed > 0.05:
            break
    return best


def growth(run: Callable[[str], object], small: str, large: str, repeats: int) -> float:
    return seconds(run, large, repeats) / seconds(run, small, repeats)


_MEASURED: dict[tuple[str, int, frozenset[str]], list[str]] = {}  # plugins share inlined patterns


def super_linear(found: Found) -> list[str]:
    key = (found.pattern.pattern, found.pattern.flags, frozenset(found.uses))
    if key not in _MEASURED:
        _MEASURED[key] = _super_linear(found)
    return [f"{found.where} {line}" for line in _MEASURED[key]]


def _super_linear(found: Found) -> list[str]:
    run = runner(found)
    slow = []
    for (name, small), (_, large) in zip(adversarial(SMALL), adversarial(LARGE), strict=True):
        ratio = growth(run, small, large, 2)
        if ratio > BOUND:  # measured again, more carefully, before it counts
            ratio = min(ratio, *(growth(run, small, large, 4) for _ in range(2)))
        if ratio > BOUND:
            slow.append(f"/{found.pattern.pattern[:80]}/ on {name}: {ratio:.0f}x for 4x the text")
            if len(slow) == FINDINGS_PER_PATTERN:
                break  # enough to show it; a quadratic pattern takes seconds per 40 KB input
    return slow


PLUGINS = built_files()


def test_the_patterns_are_found_in_the_built_files() -> None:
    everything = {f"{p.id}/{f.where.split(' at ')[0]}" for p in PLUGINS for f in all_patterns(p)}
    # a few that must be seen, so the collection cannot silently find nothing
    assert {"mixture_of_agents/_BLOCK_TOKENS", "mixture_of_agents/_INTERNALS", "mixture_of_agents/_ACTIVE_TAG"} <= (
        everything
    )
    assert {"mixture_of_agents/_KEY_SHAPES", "add_to_memories/re.sub"} <= everything


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: f"{p.kind}:{p.id}")
def test_every_pattern_is_linear_on_adversarial_text(plugin) -> None:
    slow = [line for found in all_patterns(plugin) for line in super_linear(found)]
    assert not slow, f"{plugin.dist}: super-linear patterns:\n" + "\n".join(slow)
