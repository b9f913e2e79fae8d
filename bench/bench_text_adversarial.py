"""Every plugin's text functions on 1 MB of adversarial text: the slowest case per function.

    .venv/bin/python bench/bench_text_adversarial.py [--size 1000000] [--runs 3]

Each built plugin (the files in dist/, loaded as Open WebUI loads them) is searched for the text
functions the pack inlines or defines (the table below); each one found runs on every adversarial
input: a unit repeated to `size` characters (tags, unclosed tags, brackets, citation marks,
backticks, fences, spaces, line breaks, key shapes), with and without a tail that does not match.
Target: the slowest input of every function <= 50 ms. The figure is the best of `runs` runs in CPU
time of this thread (a busy machine inflates wall time, not this); the wall time of that run is
printed beside it.
"""

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from buildlib.loader import MissingPackage, load_module_like_open_webui  # noqa: E402
from tests.helpers import built  # noqa: E402

TARGET_MS = 50.0
UNITS = [
    "<think>", "</think>", "<details>", '<details type="mixture_of_agents">', '<details type="', "<", "<t", "◁",
    "[", "[1", "[1#", "[1]", "[1] ", "`", "``", "```\n", "~~~\n", " ", "\t", "\n", " \n", "a", "Aa",
    "sk-", "Bearer ", "key=", "type=", "Error ", "<think>```\n<`[1]  ",
]  # fmt: skip
TAILS = ["", "x"]


def _history(module: Any) -> Callable[[str], object]:
    return lambda text: module.clean_history([{"role": "assistant", "content": text}])


# name in the module -> how to call it on one text
CALLS: dict[str, Callable[[Any], Callable[[str], object]]] = {
    "strip_blocks(all)": lambda m: lambda t: m.strip_blocks(t, details="all", reasoning_tags=True),
    "strip_reasoning": lambda m: m.strip_reasoning,
    "clean_history": _history,
    "escape_active_tags": lambda m: m.escape_active_tags,
    "capped_answer": lambda m: lambda t: m.capped_answer(t, m.MoaSettings(models=("a",))),
    "strip_citation_marks": lambda m: m.strip_citation_marks,
    "tidy_lines": lambda m: m.tidy_lines,
    "code_spans": lambda m: m.code_spans,
    "memory_text": lambda m: m.memory_text,
    "reads_as_internals": lambda m: m.reads_as_internals,
    "with_upstream_text": lambda m: lambda t: m.with_upstream_text("HTTP 500", t),
    "scrub_upstream": lambda m: m.scrub_upstream,
    "mask_key_shapes": lambda m: m.mask_key_shapes,
    "redact": lambda m: lambda t: m.redact(t, ("sk-secret-key-123",)),
    "parse_video": lambda m: m.parse_video,
    "parse_languages": lambda m: m.parse_languages,
    "normalized": lambda m: m.normalized,
    "without_controls": lambda m: m.without_controls,
}


def functions_of(module: Any) -> dict[str, Callable[[str], object]]:
    found = {}
    for label, make in CALLS.items():
        name = label.split("(")[0]
        if callable(getattr(module, name, None)):
            found[label] = make(module)
    return found


def measure(fn: Callable[[str], object], text: str, runs: int) -> tuple[float, float]:
    """(best CPU ms, wall ms of that run)."""
    best = (float("inf"), 0.0)
    for _ in range(runs):
        cpu, wall = time.thread_time(), time.perf_counter()
        fn(text)
        best = min(best, ((time.thread_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    inputs = [(f"{u!r}*+{t!r}", (u * (args.size // len(u)))[: args.size] + t) for u in UNITS for t in TAILS]
    worst_all = 0.0
    print(f"{len(inputs)} adversarial inputs of {args.size:,} characters; target <= {TARGET_MS:.0f} ms each")
    for plugin in built():
        path = ROOT / plugin.dist
        if path.exists():
            plugin = dataclasses.replace(plugin, text=path.read_text(encoding="utf-8"))
        try:
            module = load_module_like_open_webui(plugin)
        except MissingPackage as exc:
            print(f"\n{plugin.dist}: not loaded here (needs {exc})")
            continue
        functions = functions_of(module)
        if not functions:
            continue
        print(f"\n{plugin.dist}")
        for label, fn in functions.items():
            results = [(measure(fn, text, args.runs), name) for name, text in inputs]
            (cpu, wall), name = max(results)
            worst_all = max(worst_all, cpu)
            verdict = "ok" if cpu <= TARGET_MS else "OVER"
            print(f"  {label:22} slowest {cpu:7.1f} ms cpu ({wall:7.1f} ms wall) on {name:28} {verdict}")
    print(f"\nslowest of all: {worst_all:.1f} ms (target {TARGET_MS:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
