"""Add to Memories figures: load cost of the built file, and text extraction on large replies.

    .venv/bin/python bench/bench_add_to_memories.py

Loading is timed like Open WebUI does it (exec of the dist text into a fresh module, then
`Action()`), side by side with the template action. Extraction (`memory_text`: reasoning and
<details> blocks, citation markers) is timed on realistic replies of growing size and on inputs
built to provoke regex backtracking; time should grow linearly with size.
"""

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from buildlib import assemble, loader  # noqa: E402

# built on their own, so a half-written plugin elsewhere in the tree does not stop the bench
_CACHE: dict = {}
OURS = assemble.build_plugin(ROOT, "actions", "plugins/actions/add_to_memories.py", _CACHE)
TEMPLATE = assemble.build_plugin(ROOT, "templates", "plugins/templates/action.py", _CACHE)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return median_ms(samples)


def bench_load(runs: int = 30) -> None:
    ours, template = OURS, TEMPLATE
    loader.load_like_open_webui(ours)  # warm pydantic and the stdlib imports, as in a running server
    print(f"exec + instantiate like Open WebUI (median of {runs}):")
    for plugin in (ours, template):
        samples = [loader.load_like_open_webui(plugin) for _ in range(runs)]
        print(f"  {plugin.dist:40s} {median_ms(samples):6.2f} ms  ({len(plugin.text) / 1024:.1f} KiB)")


def reply(paragraphs: int) -> str:
    block = (
        '<details type="reasoning" done="true" duration="4">\n<summary>Thought for 4 seconds</summary>\n'
        "> The user asks about tea [1]. Let me check `pot[2]` sizes.\n</details>\n"
        "Green tea is brewed at 80 °C [1][2]. Oolong sits between green and black tea [3, 4].\n\n"
        "```python\ntemps = {'green': 80}  # see [5]\nprint(temps['green'])\n```\n\n"
        "<think>should I mention matcha?</think>Matcha is whisked, not steeped [6#matcha].\n\n"
    )
    return block * paragraphs


def bench_extract(runs: int = 9) -> None:
    mod = loader.load_module_like_open_webui(OURS)
    print(f"memory_text on a reply (median of {runs}):")
    for paragraphs in (10, 100, 1000, 5000):
        text = reply(paragraphs)
        ms = timed(lambda t=text: mod.memory_text(t), runs)
        rate = len(text) / 1024 / 1024 / (ms / 1000)
        print(f"  {len(text) / 1024:8.0f} KiB  {ms:8.2f} ms  ({rate:5.1f} MiB/s)")
    print("adversarial inputs, 400 KiB each (median of 3):")
    cases = {
        "unclosed <details ×45k": "<details " * 45_000,
        "unclosed [1,1,1… ": "[" + "1," * 200_000,
        "'[1' ×130k": "[1" * 136_000,
        "lone backticks ×200k": "` a" * 136_000,
        "unclosed fence + text": "```\n" + "x[1] " * 80_000,
        "unclosed <think> + cites": "<think>" + "[1] " * 100_000,
    }
    for name, text in cases.items():
        ms = timed(lambda t=text: mod.memory_text(t), 3)
        print(f"  {name:26s} {ms:8.2f} ms")


if __name__ == "__main__":
    bench_load()
    bench_extract()
